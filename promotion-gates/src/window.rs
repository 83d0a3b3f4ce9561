//! The deployment window gate: releases enter a stage only at agreed times, never during a
//! freeze.
//!
//! A [`Window`] allows deployments on some weekdays between two wall-clock times in an IANA
//! time zone (Mon–Thu 09:00–16:00 Europe/Berlin); a gate may have several, and an instant in
//! any of them is inside. A [`Freeze`] forbids deployments between two instants for a reason
//! (holidays, an incident), and a freeze wins over every window.
//!
//! The gate is evaluated at the engine's clock ([`GateContext::now`]):
//!
//! - inside a window and not frozen: [`Verdict::Pass`], naming the window(s) and when
//!   deployment stops being allowed;
//! - otherwise: [`Verdict::Pending`] with `retry_after` exactly the time until the next
//!   instant at which deployment is allowed (a window opening that is not frozen, or a freeze
//!   ending inside a window), so the engine schedules the release instead of failing it. The
//!   evidence says which rule decided (outside the windows, or the freeze and its reason) and
//!   gives the next opening in RFC 3339, in UTC and in the zone of the window that opens;
//! - when no such instant exists within the search horizon (366 days by default; a freeze
//!   "until further notice", or freezes covering every window): [`Verdict::Fail`], saying so.
//!
//! # Wall-clock semantics
//!
//! A window covers exactly the instants at which the zone's clocks read a time in
//! `[start, end)` on one of its days. Across daylight-saving changes this means:
//!
//! - **spring forward** (clocks jump 02:00 → 03:00): a window 01:30–03:30 lasts one hour of
//!   real time that night; a window starting in the skipped hour (02:30–04:00) opens at the
//!   jump (03:00 local); a window entirely inside the skipped hour does not open that day;
//! - **fall back** (clocks go 03:00 → 02:00): a window 01:30–03:30 lasts three hours; a time
//!   read twice opens the window twice (02:30–03:30 opens at the first 02:30, closes at 03:00
//!   summer time when the clocks go back to 02:00, and opens again at the second 02:30); a
//!   window that ended before the repeated hour reopens when the clocks go back into it.
//!
//! Windows may **cross midnight**: `22:00`–`02:00` on `fri` covers Friday 22:00 to Saturday
//! 02:00 (the days name the day the window opens). `24:00` is accepted as an end
//! (`00:00`–`24:00` is a whole day); a window whose start equals its end is refused. Freezes
//! cover `[from, to)`: deployment is allowed again at `to`.
//!
//! # Configuration from TOML
//!
//! ```toml
//! horizon_days = 366   # optional
//!
//! [[window]]
//! name = "business hours"          # optional; evidence names the window by it
//! days = ["mon-thu"]               # mon … sun, or ranges such as mon-fri
//! start = "09:00"
//! end = "16:00"
//! zone = "Europe/Berlin"
//!
//! [[freeze]]
//! from = "2026-12-20T00:00:00Z"    # RFC 3339 with an offset; a TOML date-time works too
//! to = "2027-01-02T00:00:00Z"      # optional: without it, until further notice
//! reason = "holidays"
//! ```
//!
//! An unknown zone, day or time, an empty window or freeze, a missing reason or a malformed
//! document is a [`WindowConfigError`] naming the entry (`windows.toml line 7: window 2`).
//! The document's digest is recorded in every verdict's evidence.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveTime, Offset, SecondsFormat, TimeDelta,
    TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use promotion_core::{Evidence, Gate, GateContext, GateError, GateKind, GateName, Verdict};
use serde::Deserialize;
use serde_json::json;

use crate::input::{line_of, located};

/// How far ahead the gate looks for the next opening unless configured otherwise.
pub const DEFAULT_HORIZON_DAYS: u32 = 366;

/// The longest search horizon accepted, in days (ten years).
pub const MAX_HORIZON_DAYS: u32 = 3660;

const DAY_SECS: u32 = 86_400;

/// A deployment window or freeze configured wrongly, naming the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowConfigError {
    /// The gate's name is not a valid gate name.
    #[error("deployment window gate: {0}")]
    InvalidName(#[from] promotion_core::InvalidName),
    /// A window names a time zone that is not in the IANA database.
    #[error("{entry}: unknown time zone `{zone}` (expected an IANA name such as Europe/Berlin)")]
    UnknownZone {
        /// The entry (`window 2`, `windows.toml line 7: window 2`).
        entry: String,
        /// The zone as given.
        zone: String,
    },
    /// A window names a day that is not a weekday.
    #[error("{entry}: unknown day `{day}` (expected mon, tue, wed, thu, fri, sat, sun or a range such as mon-fri)")]
    InvalidDay {
        /// The entry.
        entry: String,
        /// The day as given.
        day: String,
    },
    /// A window names no day.
    #[error("{entry}: no days given")]
    NoDays {
        /// The entry.
        entry: String,
    },
    /// A start or end is not a time of day.
    #[error("{entry}: invalid {which} time `{time}` (expected HH:MM from 00:00 to 23:59, or 24:00 as an end)")]
    InvalidTime {
        /// The entry.
        entry: String,
        /// `start` or `end`.
        which: &'static str,
        /// The time as given.
        time: String,
    },
    /// A window starts when it ends.
    #[error("{entry}: starts and ends at {time}; a window must have a length (00:00 to 24:00 is a whole day)")]
    EmptyWindow {
        /// The entry.
        entry: String,
        /// The start (and end).
        time: String,
    },
    /// A freeze's bound is not an RFC 3339 date-time with an offset.
    #[error("{entry}: invalid {which} `{value}` (expected an RFC 3339 date-time with an offset, such as 2026-12-20T00:00:00Z)")]
    InvalidInstant {
        /// The entry.
        entry: String,
        /// `from` or `to`.
        which: &'static str,
        /// The value as given.
        value: String,
    },
    /// A freeze ends before or when it starts.
    #[error("{entry}: ends at {to}, which is not after its start {from}")]
    EmptyFreeze {
        /// The entry.
        entry: String,
        /// The start, RFC 3339.
        from: String,
        /// The end, RFC 3339.
        to: String,
    },
    /// A freeze has no reason.
    #[error("{entry}: a freeze needs a reason (holidays, an incident id)")]
    NoReason {
        /// The entry.
        entry: String,
    },
    /// The gate has no window: it would never allow a deployment.
    #[error("deployment window gate: no window configured (use Window::anytime() to allow any time outside freezes)")]
    NoWindows,
    /// The search horizon is not a whole number of days from 1 to [`MAX_HORIZON_DAYS`].
    #[error("deployment window gate: a search horizon of {horizon:?} is not a whole number of days from 1 to {MAX_HORIZON_DAYS}")]
    InvalidHorizon {
        /// The horizon as given.
        horizon: Duration,
    },
    /// A configuration document is malformed.
    #[error("{what}: {message}")]
    Document {
        /// The document and line (`windows.toml line 3`).
        what: String,
        /// What is wrong.
        message: String,
    },
    /// A configuration document could not be read.
    #[error("cannot read {path}: {message}")]
    Unreadable {
        /// The path.
        path: String,
        /// What the system said.
        message: String,
    },
}

/// Weekdays as a bit set, Monday = bit 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Days(u8);

impl Days {
    fn contains(self, d: Weekday) -> bool {
        self.0 & (1 << d.num_days_from_monday()) != 0
    }
    fn insert(&mut self, d: Weekday) {
        self.0 |= 1 << d.num_days_from_monday();
    }
    fn names(self) -> Vec<&'static str> {
        const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }
    fn parse<S: AsRef<str>>(entry: &str, days: &[S]) -> Result<Days, WindowConfigError> {
        let mut set = Days(0);
        for given in days {
            let given = given.as_ref();
            let bad = || WindowConfigError::InvalidDay {
                entry: entry.to_owned(),
                day: given.to_owned(),
            };
            let day = |s: &str| Weekday::from_str(s.trim()).map_err(|_| bad());
            match given.split_once('-') {
                None => set.insert(day(given)?),
                Some((a, b)) => {
                    let (mut d, last) = (day(a)?, day(b)?);
                    set.insert(d);
                    while d != last {
                        d = d.succ();
                        set.insert(d);
                    }
                }
            }
        }
        if set.0 == 0 {
            return Err(WindowConfigError::NoDays {
                entry: entry.to_owned(),
            });
        }
        Ok(set)
    }
}

/// Seconds after midnight of an `HH:MM` time; `24:00` only when `end_of_day` is allowed.
fn parse_time(
    entry: &str,
    which: &'static str,
    given: &str,
    end_of_day: bool,
) -> Result<u32, WindowConfigError> {
    if end_of_day && given.trim() == "24:00" {
        return Ok(DAY_SECS);
    }
    NaiveTime::parse_from_str(given.trim(), "%H:%M")
        .map(|t| t.num_seconds_from_midnight())
        .map_err(|_| WindowConfigError::InvalidTime {
            entry: entry.to_owned(),
            which,
            time: given.to_owned(),
        })
}

fn hhmm(secs: u32) -> String {
    format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A recurring deployment window: some weekdays, from a start to an end time, in a zone.
///
/// ```
/// use promotion_gates::window::Window;
///
/// let w = Window::new(["mon-thu"], "09:00", "16:00", "Europe/Berlin")?.named("business hours");
/// assert!(w.contains("2026-11-26T14:59:59Z".parse()?)); // Thursday 15:59:59 CET
/// assert!(!w.contains("2026-11-26T15:00:00Z".parse()?)); // 16:00 CET: closed
/// assert!(!w.contains("2026-11-27T09:00:00Z".parse()?)); // Friday
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    name: Option<String>,
    days: Days,
    start: u32,
    end: u32,
    zone: Tz,
}

impl Window {
    /// A window on `days` (`mon` … `sun`, full names too, or ranges such as `mon-fri` and
    /// `fri-mon`) from `start` to `end` (`HH:MM`; `end` may be `24:00`, and an end before the
    /// start crosses midnight) in the IANA zone `zone`.
    pub fn new<I, S>(days: I, start: &str, end: &str, zone: &str) -> Result<Self, WindowConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let days: Vec<S> = days.into_iter().collect();
        let shown: Vec<&str> = days.iter().map(AsRef::as_ref).collect();
        let entry = format!("window `{} {start}-{end} {zone}`", shown.join(","));
        Self::parse(&entry, &days, start, end, zone)
    }

    fn parse<S: AsRef<str>>(
        entry: &str,
        days: &[S],
        start: &str,
        end: &str,
        zone: &str,
    ) -> Result<Self, WindowConfigError> {
        let days = Days::parse(entry, days)?;
        let start_s = parse_time(entry, "start", start, false)?;
        let end_s = parse_time(entry, "end", end, true)?;
        if start_s == end_s {
            return Err(WindowConfigError::EmptyWindow {
                entry: entry.to_owned(),
                time: start.trim().to_owned(),
            });
        }
        let zone = Tz::from_str(zone.trim()).map_err(|_| WindowConfigError::UnknownZone {
            entry: entry.to_owned(),
            zone: zone.to_owned(),
        })?;
        Ok(Window {
            name: None,
            days,
            start: start_s,
            end: end_s,
            zone,
        })
    }

    /// Every day, all day, in UTC: for a gate that only enforces freezes.
    pub fn anytime() -> Self {
        Window {
            name: Some("any time".to_owned()),
            days: Days(0x7f),
            start: 0,
            end: DAY_SECS,
            zone: Tz::UTC,
        }
    }

    /// Names the window; evidence refers to it by this name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The window's name, or its description (`mon,tue 09:00-16:00 Europe/Berlin`).
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => self.description(),
        }
    }

    /// Days, times and zone: `mon,tue,wed,thu 09:00-16:00 Europe/Berlin`.
    pub fn description(&self) -> String {
        format!(
            "{} {}-{} {}",
            self.days.names().join(","),
            hhmm(self.start),
            hhmm(self.end),
            self.zone.name()
        )
    }

    /// The zone the times are read in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// Whether the window runs past midnight into the next day.
    pub fn crosses_midnight(&self) -> bool {
        self.end < self.start
    }

    /// Whether the zone's clocks read a time inside the window at `at`.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.zone).naive_local();
        let s = local.time().num_seconds_from_midnight();
        let today = self.days.contains(local.weekday());
        if self.crosses_midnight() {
            (today && s >= self.start)
                || (self.days.contains(local.weekday().pred()) && s < self.end)
        } else {
            today && s >= self.start && s < self.end
        }
    }

    /// The instants at which the clocks read `secs` after midnight on `date` (two when the
    /// time is repeated, none when it is skipped).
    fn readings(&self, date: NaiveDate, secs: u32) -> Vec<DateTime<Utc>> {
        let Some(time) = NaiveTime::from_num_seconds_from_midnight_opt(secs % DAY_SECS, 0) else {
            return Vec::new();
        };
        match self.zone.from_local_datetime(&date.and_time(time)) {
            LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
            LocalResult::Ambiguous(a, b) => vec![a.with_timezone(&Utc), b.with_timezone(&Utc)],
            LocalResult::None => Vec::new(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "days": self.days.names(),
            "start": hhmm(self.start),
            "end": hhmm(self.end),
            "zone": self.zone.name(),
        })
    }
}

/// A period in which no deployment is allowed, whatever the windows say.
///
/// ```
/// use promotion_gates::window::Freeze;
///
/// let f = Freeze::parse("2026-12-20T00:00:00Z", Some("2027-01-02T00:00:00+00:00"), "holidays")?;
/// assert!(f.covers("2026-12-24T12:00:00Z".parse()?));
/// assert!(!f.covers("2027-01-02T00:00:00Z".parse()?)); // the end is excluded
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
    reason: String,
}

impl Freeze {
    /// A freeze from `from` until just before `to`.
    pub fn new(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        reason: impl Into<String>,
    ) -> Result<Self, WindowConfigError> {
        let reason = reason.into();
        let entry = format!("freeze `{reason}`");
        Self::checked(&entry, from, Some(to), reason)
    }

    /// A freeze from `from` with no end yet (an incident).
    pub fn until_further_notice(
        from: DateTime<Utc>,
        reason: impl Into<String>,
    ) -> Result<Self, WindowConfigError> {
        let reason = reason.into();
        let entry = format!("freeze `{reason}`");
        Self::checked(&entry, from, None, reason)
    }

    /// A freeze from RFC 3339 date-times with offsets; `to` of `None` is until further notice.
    pub fn parse(from: &str, to: Option<&str>, reason: &str) -> Result<Self, WindowConfigError> {
        let entry = format!("freeze `{reason}`");
        let from = parse_instant(&entry, "from", from)?;
        let to = to.map(|t| parse_instant(&entry, "to", t)).transpose()?;
        Self::checked(&entry, from, to, reason.to_owned())
    }

    fn checked(
        entry: &str,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
        reason: String,
    ) -> Result<Self, WindowConfigError> {
        if reason.trim().is_empty() {
            return Err(WindowConfigError::NoReason {
                entry: entry.to_owned(),
            });
        }
        if let Some(to) = to {
            if to <= from {
                return Err(WindowConfigError::EmptyFreeze {
                    entry: entry.to_owned(),
                    from: utc(from),
                    to: utc(to),
                });
            }
        }
        Ok(Freeze {
            from,
            to,
            reason: reason.trim().to_owned(),
        })
    }

    /// Whether `at` is inside the freeze.
    pub fn covers(&self, at: DateTime<Utc>) -> bool {
        at >= self.from && self.to.is_none_or(|to| at < to)
    }

    /// Why deployments are frozen.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The first frozen instant.
    pub fn from(&self) -> DateTime<Utc> {
        self.from
    }

    /// The first instant after the freeze, if it has an end.
    pub fn to(&self) -> Option<DateTime<Utc>> {
        self.to
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "reason": self.reason,
            "from": utc(self.from),
            "to": self.to.map(utc),
        })
    }
}

fn parse_instant(
    entry: &str,
    which: &'static str,
    given: &str,
) -> Result<DateTime<Utc>, WindowConfigError> {
    DateTime::parse_from_rfc3339(given.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| WindowConfigError::InvalidInstant {
            entry: entry.to_owned(),
            which,
            value: given.to_owned(),
        })
}

/// The configuration document, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigDoc {
    horizon_days: Option<u32>,
    #[serde(default)]
    window: Vec<toml::Spanned<WindowDoc>>,
    #[serde(default)]
    freeze: Vec<toml::Spanned<FreezeDoc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowDoc {
    name: Option<String>,
    days: Vec<String>,
    start: String,
    end: String,
    zone: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreezeDoc {
    from: toml::Value,
    to: Option<toml::Value>,
    reason: String,
}

/// A TOML string or date-time as text.
fn instant_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Builder for [`DeploymentWindowGate`].
#[derive(Debug, Clone)]
pub struct DeploymentWindowGateBuilder {
    name: String,
    windows: Vec<Window>,
    freezes: Vec<Freeze>,
    horizon: Duration,
    sources: Vec<(String, Vec<u8>)>,
}

impl DeploymentWindowGateBuilder {
    /// Names the gate (default `deployment-window`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Adds a window; an instant in any window is inside.
    pub fn window(mut self, window: Window) -> Self {
        self.windows.push(window);
        self
    }
    /// Adds a freeze; a freeze wins over every window.
    pub fn freeze(mut self, freeze: Freeze) -> Self {
        self.freezes.push(freeze);
        self
    }
    /// Looks this far ahead for the next opening (default 366 days); with none in it, the
    /// gate fails. Whole days from 1 to [`MAX_HORIZON_DAYS`].
    pub fn horizon(mut self, horizon: Duration) -> Self {
        self.horizon = horizon;
        self
    }
    /// Adds the windows and freezes of a TOML document (see the [module documentation](self));
    /// `source` names it in errors and evidence. Its `horizon_days`, if any, replaces the
    /// horizon.
    pub fn toml(mut self, text: &str, source: &str) -> Result<Self, WindowConfigError> {
        let doc: ConfigDoc = toml::from_str(text).map_err(|e| WindowConfigError::Document {
            what: located(source, e.span().map(|span| line_of(text, span.start))),
            message: e.message().trim_end().to_owned(),
        })?;
        for (i, w) in doc.window.iter().enumerate() {
            let entry = format!(
                "{source} line {}: window {}",
                line_of(text, w.span().start),
                i + 1
            );
            let w = w.get_ref();
            let mut window = Window::parse(&entry, &w.days, &w.start, &w.end, &w.zone)?;
            window.name = w.name.clone();
            self.windows.push(window);
        }
        for (i, f) in doc.freeze.iter().enumerate() {
            let entry = format!(
                "{source} line {}: freeze {}",
                line_of(text, f.span().start),
                i + 1
            );
            let f = f.get_ref();
            let from = parse_instant(&entry, "from", &instant_text(&f.from))?;
            let to = match &f.to {
                None => None,
                Some(v) => Some(parse_instant(&entry, "to", &instant_text(v))?),
            };
            self.freezes
                .push(Freeze::checked(&entry, from, to, f.reason.clone())?);
        }
        if let Some(days) = doc.horizon_days {
            self.horizon = Duration::from_secs(u64::from(days) * u64::from(DAY_SECS));
        }
        self.sources
            .push((source.to_owned(), text.as_bytes().to_vec()));
        Ok(self)
    }
    /// Reads [`toml`](Self::toml) from a file.
    pub fn toml_file(self, path: impl AsRef<Path>) -> Result<Self, WindowConfigError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| WindowConfigError::Unreadable {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| WindowConfigError::Document {
            what: format!(
                "{shown} line {}",
                line_of(e.as_bytes(), e.utf8_error().valid_up_to())
            ),
            message: "not valid UTF-8".to_owned(),
        })?;
        self.toml(&text, &shown)
    }
    /// Validates the configuration.
    pub fn build(self) -> Result<DeploymentWindowGate, WindowConfigError> {
        let name = GateName::new(self.name)?;
        if self.windows.is_empty() {
            return Err(WindowConfigError::NoWindows);
        }
        let invalid = WindowConfigError::InvalidHorizon {
            horizon: self.horizon,
        };
        let secs = self.horizon.as_secs();
        if secs == 0
            || secs % u64::from(DAY_SECS) != 0
            || secs / u64::from(DAY_SECS) > u64::from(MAX_HORIZON_DAYS)
            || self.horizon.subsec_nanos() != 0
        {
            return Err(invalid);
        }
        let horizon = i64::try_from(secs)
            .ok()
            .and_then(TimeDelta::try_seconds)
            .ok_or(invalid)?;
        Ok(DeploymentWindowGate {
            name,
            windows: self.windows,
            freezes: self.freezes,
            horizon,
            sources: self.sources,
        })
    }
}

/// Allows a release in only inside a deployment window and outside every freeze; otherwise
/// pending until the next opening (or failing when none comes within the horizon). See the
/// [module documentation](self) for the rules, daylight saving and the TOML form.
///
/// ```
/// use std::time::Duration;
/// use futures::executor::block_on;
/// use promotion_core::testing::GateProbe;
/// use promotion_core::Verdict;
/// use promotion_gates::window::{DeploymentWindowGate, Freeze, Window};
///
/// let gate = DeploymentWindowGate::builder()
///     .window(Window::new(["mon-thu"], "09:00", "16:00", "Europe/Berlin")?.named("business hours"))
///     .freeze(Freeze::parse("2026-12-20T00:00:00Z", Some("2027-01-02T00:00:00Z"), "holidays")?)
///     .build()?;
///
/// // Thursday 2026-11-26 10:00 in Berlin: inside.
/// let probe = GateProbe::new().at("2026-11-26T09:00:00Z".parse()?);
/// let Verdict::Pass(evidence) = block_on(probe.evaluate(&gate))? else { panic!() };
/// assert_eq!(evidence.facts["window"], "business hours");
///
/// // Thursday 17:00 in Berlin: wait until Monday 09:00 CET, 2026-11-30T08:00:00Z.
/// let probe = GateProbe::new().at("2026-11-26T16:00:00Z".parse()?);
/// let Verdict::Pending { retry_after, evidence } = block_on(probe.evaluate(&gate))? else { panic!() };
/// assert_eq!(retry_after, Duration::from_secs((3 * 24 + 16) * 3600));
/// assert_eq!(evidence.data["next_opening"]["utc"], "2026-11-30T08:00:00Z");
/// assert_eq!(evidence.data["next_opening"]["local"], "2026-11-30T09:00:00+01:00");
///
/// // The same gate from TOML.
/// let from_toml = DeploymentWindowGate::builder()
///     .toml(r#"
///         [[window]]
///         name = "business hours"
///         days = ["mon-thu"]
///         start = "09:00"
///         end = "16:00"
///         zone = "Europe/Berlin"
///
///         [[freeze]]
///         from = "2026-12-20T00:00:00Z"
///         to = "2027-01-02T00:00:00Z"
///         reason = "holidays"
///     "#, "windows.toml")?
///     .build()?;
/// let Verdict::Pending { retry_after: again, .. } = block_on(probe.evaluate(&from_toml))? else { panic!() };
/// assert_eq!(again, retry_after);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct DeploymentWindowGate {
    name: GateName,
    windows: Vec<Window>,
    freezes: Vec<Freeze>,
    horizon: TimeDelta,
    sources: Vec<(String, Vec<u8>)>,
}

/// When something happens, and in which window's zone to show it.
#[derive(Debug, Clone)]
struct Moment {
    at: DateTime<Utc>,
    zone: Tz,
    window: Option<String>,
}

impl Moment {
    fn local(&self) -> DateTime<Tz> {
        self.at.with_timezone(&self.zone)
    }
    fn to_json(&self) -> serde_json::Value {
        json!({
            "utc": utc(self.at),
            "local": self.local().to_rfc3339_opts(SecondsFormat::Secs, true),
            "zone": self.zone.name(),
            "window": self.window,
        })
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({})",
            self.local().format("%a %Y-%m-%d %H:%M %Z"),
            utc(self.at)
        )
    }
}

impl DeploymentWindowGate {
    /// A gate with no windows yet; add at least one.
    pub fn builder() -> DeploymentWindowGateBuilder {
        DeploymentWindowGateBuilder {
            name: "deployment-window".to_owned(),
            windows: Vec::new(),
            freezes: Vec::new(),
            horizon: Duration::from_secs(u64::from(DEFAULT_HORIZON_DAYS) * u64::from(DAY_SECS)),
            sources: Vec::new(),
        }
    }

    /// The windows.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// The freezes.
    pub fn freezes(&self) -> &[Freeze] {
        &self.freezes
    }

    /// Whether deployment is allowed at `at`: inside a window and in no freeze.
    pub fn allows(&self, at: DateTime<Utc>) -> bool {
        !self.freezes.iter().any(|f| f.covers(at)) && self.windows.iter().any(|w| w.contains(at))
    }

    /// The first instant at or after `now`, and no later than the horizon, at which deployment
    /// is allowed.
    pub fn next_opening(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.allows(now) {
            return Some(now);
        }
        let limit = now.checked_add_signed(self.horizon)?;
        self.candidates(now, limit, true)
            .into_iter()
            .find(|t| self.allows(*t))
    }

    /// The first instant after `now`, and no later than the horizon, at which deployment stops
    /// being allowed (`None` if it stays allowed).
    pub fn next_closing(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let limit = now.checked_add_signed(self.horizon)?;
        self.candidates(now, limit, false)
            .into_iter()
            .find(|t| !self.allows(*t))
    }

    /// The instants in `(now, limit]` at which being allowed can change: the clocks reading a
    /// window's start (`opening`) or end, a zone changing its offset, a freeze ending
    /// (`opening`) or starting. Sorted, without duplicates.
    fn candidates(
        &self,
        now: DateTime<Utc>,
        limit: DateTime<Utc>,
        opening: bool,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let two_days = TimeDelta::days(2);
        let mut zones: Vec<Tz> = Vec::new();
        for w in &self.windows {
            if !zones.contains(&w.zone) {
                zones.push(w.zone);
            }
            let first = now
                .checked_sub_signed(two_days)
                .unwrap_or(now)
                .with_timezone(&w.zone)
                .date_naive();
            let last = limit
                .checked_add_signed(two_days)
                .unwrap_or(limit)
                .with_timezone(&w.zone)
                .date_naive();
            let secs = if opening { w.start } else { w.end };
            for date in first.iter_days().take_while(|d| *d <= last) {
                out.extend(w.readings(date, secs));
            }
        }
        for zone in zones {
            out.extend(offset_changes(zone, now, limit));
        }
        for f in &self.freezes {
            if opening {
                out.extend(f.to);
            } else {
                out.push(f.from);
            }
        }
        out.retain(|t| *t > now && *t <= limit);
        out.sort();
        out.dedup();
        out
    }

    fn moment(&self, at: DateTime<Utc>) -> Moment {
        let open = self.windows.iter().find(|w| w.contains(at));
        let zone_of = open.or(self.windows.first()).map_or(Tz::UTC, |w| w.zone);
        Moment {
            at,
            zone: zone_of,
            window: open.map(Window::label),
        }
    }

    fn config_json(&self) -> serde_json::Value {
        json!({
            "windows": self.windows.iter().map(Window::to_json).collect::<Vec<_>>(),
            "freezes": self.freezes.iter().map(Freeze::to_json).collect::<Vec<_>>(),
            "horizon_days": self.horizon.num_days(),
        })
    }

    fn horizon_text(&self) -> String {
        match self.horizon.num_days() {
            1 => "1 day".to_owned(),
            n => format!("{n} days"),
        }
    }
}

/// The instants in `(from, to]` at which `zone` changes its UTC offset.
fn offset_changes(zone: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let offset = |t: i64| {
        DateTime::from_timestamp(t, 0).map(|d| zone.offset_from_utc_datetime(&d.naive_utc()).fix())
    };
    const STEP: i64 = 3600;
    let (start, end) = (from.timestamp(), to.timestamp());
    let mut out = Vec::new();
    let mut prev_t = start;
    let mut prev = offset(start);
    let mut t = start;
    while t < end {
        t = (t + STEP).min(end);
        let cur = offset(t);
        if cur != prev {
            // Bisect to the first second with the new offset.
            let (mut lo, mut hi) = (prev_t, t);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == prev {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            out.extend(DateTime::from_timestamp(hi, 0));
        }
        prev_t = t;
        prev = cur;
    }
    out
}

#[async_trait]
impl Gate for DeploymentWindowGate {
    fn name(&self) -> &str {
        self.name.as_str()
    }

    fn kind(&self) -> GateKind {
        GateKind::Compliance
    }

    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let now = ctx.now();
        let open: Vec<&Window> = self.windows.iter().filter(|w| w.contains(now)).collect();
        let frozen: Vec<&Freeze> = self.freezes.iter().filter(|f| f.covers(now)).collect();
        let mut data = json!({
            "now": utc(now),
            "windows_open": open.iter().map(|w| w.label()).collect::<Vec<_>>(),
            "freezes_active": frozen.iter().map(|f| f.to_json()).collect::<Vec<_>>(),
            "config": self.config_json(),
        });
        let set = |data: &mut serde_json::Value, key: &str, value: serde_json::Value| {
            if let Some(map) = data.as_object_mut() {
                map.insert(key.to_owned(), value);
            }
        };
        let attach = |mut ev: Evidence| {
            for (name, bytes) in &self.sources {
                ev = ev.with_attachment(name.clone(), bytes);
            }
            ev
        };

        if frozen.is_empty() {
            if let Some(first) = open.first() {
                let label = first.label();
                let closing = self.next_closing(now).map(|t| Moment {
                    at: t,
                    zone: first.zone,
                    window: Some(label.clone()),
                });
                set(&mut data, "decision", json!("open"));
                set(
                    &mut data,
                    "allowed_until",
                    closing
                        .as_ref()
                        .map_or(serde_json::Value::Null, Moment::to_json),
                );
                let summary = match &closing {
                    Some(c) => format!("inside deployment window {label} until {c}"),
                    None => format!(
                        "inside deployment window {label}, open throughout the next {}",
                        self.horizon_text()
                    ),
                };
                let ev = Evidence::new(self.name(), now, summary)
                    .with_data(data)
                    .with_fact("window", label);
                return Ok(Verdict::Pass(attach(ev)));
            }
        }

        let reason = if frozen.is_empty() {
            set(&mut data, "decision", json!("outside_windows"));
            "outside deployment windows".to_owned()
        } else {
            set(&mut data, "decision", json!("frozen"));
            let parts: Vec<String> = frozen
                .iter()
                .map(|f| match f.to {
                    Some(to) => format!("freeze \"{}\" until {}", f.reason, utc(to)),
                    None => format!("freeze \"{}\" until further notice", f.reason),
                })
                .collect();
            parts.join(", ")
        };

        match self.next_opening(now) {
            Some(next) => {
                let moment = self.moment(next);
                let retry_after = (next - now).to_std().unwrap_or(Duration::ZERO);
                set(&mut data, "next_opening", moment.to_json());
                set(
                    &mut data,
                    "retry_after_seconds",
                    json!(retry_after.as_secs()),
                );
                let by = moment
                    .window
                    .as_deref()
                    .map(|w| format!(", window {w}"))
                    .unwrap_or_default();
                let summary = format!("{reason}; next opening {moment}{by}");
                let ev = Evidence::new(self.name(), now, summary).with_data(data);
                Ok(Verdict::Pending {
                    evidence: attach(ev),
                    retry_after,
                })
            }
            None => {
                set(&mut data, "next_opening", serde_json::Value::Null);
                let limit = now.checked_add_signed(self.horizon).unwrap_or(now);
                let ahead: Vec<String> = self
                    .freezes
                    .iter()
                    .filter(|f| !f.covers(now) && f.from > now && f.from <= limit)
                    .map(|f| match f.to {
                        Some(to) => format!("\"{}\" {} to {}", f.reason, utc(f.from), utc(to)),
                        None => {
                            format!("\"{}\" from {} until further notice", f.reason, utc(f.from))
                        }
                    })
                    .collect();
                let ahead = if ahead.is_empty() {
                    String::new()
                } else {
                    format!("; freezes ahead: {}", ahead.join(", "))
                };
                let summary = format!(
                    "no deployment window opens within {}: {reason}{ahead}",
                    self.horizon_text()
                );
                let ev = Evidence::new(self.name(), now, summary).with_data(data);
                Ok(Verdict::Fail(attach(ev)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use promotion_core::testing::GateProbe;
    use promotion_core::Digest;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn data(name: &str) -> String {
        format!("{}/tests/data/window/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn gate(windows: impl IntoIterator<Item = Window>) -> DeploymentWindowGate {
        windows
            .into_iter()
            .fold(DeploymentWindowGate::builder(), |b, w| b.window(w))
            .build()
            .unwrap()
    }

    fn daily(start: &str, end: &str, zone: &str) -> Window {
        Window::new(["mon-sun"], start, end, zone).unwrap()
    }

    fn eval(g: &DeploymentWindowGate, at: &str) -> Verdict {
        block_on(GateProbe::new().at(t(at)).evaluate(g)).unwrap()
    }

    /// Pass evidence, checking the verdict.
    fn pass(g: &DeploymentWindowGate, at: &str) -> Evidence {
        match eval(g, at) {
            Verdict::Pass(e) => e,
            other => panic!("expected a pass at {at}, got {other:?}"),
        }
    }

    /// The next opening (UTC) of a pending verdict, checking `retry_after` against it.
    fn pending(g: &DeploymentWindowGate, at: &str) -> (String, Duration, Evidence) {
        match eval(g, at) {
            Verdict::Pending {
                evidence,
                retry_after,
            } => {
                let next = evidence.data["next_opening"]["utc"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                assert_eq!(t(at) + TimeDelta::from_std(retry_after).unwrap(), t(&next));
                (next, retry_after, evidence)
            }
            other => panic!("expected pending at {at}, got {other:?}"),
        }
    }

    fn until(ev: &Evidence) -> &str {
        ev.data["allowed_until"]["utc"].as_str().unwrap()
    }

    const H: u64 = 3600;

    fn business_hours() -> DeploymentWindowGate {
        gate([Window::new(["mon-thu"], "09:00", "16:00", "Europe/Berlin")
            .unwrap()
            .named("business hours")])
    }

    #[test]
    fn inside_a_window_passes_naming_it_and_when_it_closes() {
        let g = business_hours();
        assert_eq!(g.kind(), GateKind::Compliance);
        assert_eq!(g.name(), "deployment-window");
        // Thursday 2026-11-26 10:00 CET.
        let ev = pass(&g, "2026-11-26T09:00:00Z");
        assert_eq!(ev.facts["window"], "business hours");
        assert_eq!(until(&ev), "2026-11-26T15:00:00Z");
        assert_eq!(
            ev.data["allowed_until"]["local"],
            "2026-11-26T16:00:00+01:00"
        );
        assert_eq!(
            ev.summary,
            "inside deployment window business hours until Thu 2026-11-26 16:00 CET (2026-11-26T15:00:00Z)"
        );
        assert_eq!(ev.data["decision"], "open");
        assert_eq!(ev.data["windows_open"], json!(["business hours"]));
        // The first second and the last second of the window; the end is excluded.
        pass(&g, "2026-11-26T08:00:00Z");
        pass(&g, "2026-11-26T14:59:59Z");
        pending(&g, "2026-11-26T15:00:00Z");
        pending(&g, "2026-11-26T07:59:59Z");
    }

    #[test]
    fn outside_every_window_is_pending_until_the_next_opening_exactly() {
        let g = business_hours();
        // Thursday 17:00 CET → Monday 09:00 CET.
        let (next, retry, ev) = pending(&g, "2026-11-26T16:00:00Z");
        assert_eq!(next, "2026-11-30T08:00:00Z");
        assert_eq!(retry, Duration::from_secs((3 * 24 + 16) * H));
        assert_eq!(ev.data["decision"], "outside_windows");
        assert_eq!(
            ev.data["next_opening"]["local"],
            "2026-11-30T09:00:00+01:00"
        );
        assert_eq!(ev.data["next_opening"]["zone"], "Europe/Berlin");
        assert_eq!(ev.data["next_opening"]["window"], "business hours");
        assert_eq!(ev.data["retry_after_seconds"], json!(retry.as_secs()));
        assert_eq!(
            ev.summary,
            "outside deployment windows; next opening Mon 2026-11-30 09:00 CET \
             (2026-11-30T08:00:00Z), window business hours"
        );
        // Sub-second precision: the wait is exact to the nanosecond.
        let (_, retry, _) = pending(&g, "2026-11-26T16:00:00.25Z");
        assert_eq!(
            retry,
            Duration::from_secs((3 * 24 + 16) * H) - Duration::from_millis(250)
        );
    }

    #[test]
    fn berlin_spring_forward_shortens_a_window_across_the_gap() {
        // 2027-03-28: at 01:00Z clocks jump from 02:00 CET to 03:00 CEST.
        let g = gate([daily("01:30", "03:30", "Europe/Berlin")]);
        let (next, retry, _) = pending(&g, "2027-03-28T00:00:00Z"); // 01:00 CET
        assert_eq!(next, "2027-03-28T00:30:00Z"); // 01:30 CET
        assert_eq!(retry, Duration::from_secs(30 * 60));
        let ev = pass(&g, "2027-03-28T00:45:00Z");
        assert_eq!(until(&ev), "2027-03-28T01:30:00Z"); // 03:30 CEST: one real hour
        assert_eq!(
            ev.data["allowed_until"]["local"],
            "2027-03-28T03:30:00+02:00"
        );
        pass(&g, "2027-03-28T01:00:00Z"); // 03:00 CEST, right after the jump
        let (next, retry, ev) = pending(&g, "2027-03-28T01:30:00Z");
        assert_eq!(next, "2027-03-28T23:30:00Z"); // Monday 01:30 CEST
        assert_eq!(
            ev.data["next_opening"]["local"],
            "2027-03-29T01:30:00+02:00"
        );
        assert_eq!(retry, Duration::from_secs(22 * H));
    }

    #[test]
    fn berlin_spring_forward_opens_a_window_that_starts_in_the_skipped_hour_at_the_jump() {
        let g = gate([daily("02:30", "04:00", "Europe/Berlin")]);
        let (next, retry, ev) = pending(&g, "2027-03-28T00:00:00Z");
        assert_eq!(next, "2027-03-28T01:00:00Z");
        assert_eq!(
            ev.data["next_opening"]["local"],
            "2027-03-28T03:00:00+02:00"
        );
        assert_eq!(retry, Duration::from_secs(H));
        // A window entirely inside the skipped hour does not open that day.
        let g = gate([daily("02:15", "02:45", "Europe/Berlin")]);
        let (next, retry, _) = pending(&g, "2027-03-27T12:00:00Z");
        assert_eq!(next, "2027-03-29T00:15:00Z"); // Monday 02:15 CEST
        assert_eq!(retry, Duration::from_secs(36 * H + 15 * 60));
    }

    #[test]
    fn berlin_fall_back_lengthens_a_window_across_the_repeated_hour() {
        // 2026-10-25: at 01:00Z clocks go back from 03:00 CEST to 02:00 CET.
        let g = gate([daily("01:30", "03:30", "Europe/Berlin")]);
        let (next, retry, _) = pending(&g, "2026-10-24T23:00:00Z"); // 01:00 CEST
        assert_eq!(next, "2026-10-24T23:30:00Z");
        assert_eq!(retry, Duration::from_secs(30 * 60));
        let ev = pass(&g, "2026-10-24T23:30:00Z");
        assert_eq!(until(&ev), "2026-10-25T02:30:00Z"); // 03:30 CET: three real hours
        pass(&g, "2026-10-25T00:59:59Z"); // 02:59:59 CEST
        pass(&g, "2026-10-25T01:00:00Z"); // 02:00 CET
        let (next, _, _) = pending(&g, "2026-10-25T02:30:00Z");
        assert_eq!(next, "2026-10-26T00:30:00Z"); // Monday 01:30 CET
    }

    #[test]
    fn berlin_fall_back_opens_a_window_twice_when_its_start_is_read_twice() {
        let g = gate([daily("02:30", "03:30", "Europe/Berlin")]);
        let ev = pass(&g, "2026-10-25T00:45:00Z"); // 02:45 CEST
        assert_eq!(until(&ev), "2026-10-25T01:00:00Z"); // clocks go back to 02:00
        let (next, retry, ev) = pending(&g, "2026-10-25T01:00:00Z"); // 02:00 CET
        assert_eq!(next, "2026-10-25T01:30:00Z"); // the second 02:30
        assert_eq!(
            ev.data["next_opening"]["local"],
            "2026-10-25T02:30:00+01:00"
        );
        assert_eq!(retry, Duration::from_secs(30 * 60));
        let ev = pass(&g, "2026-10-25T01:30:00Z");
        assert_eq!(until(&ev), "2026-10-25T02:30:00Z");
        // A window that ended before the repeated hour reopens when the clocks go back.
        let g = gate([daily("01:30", "02:30", "Europe/Berlin")]);
        let (next, retry, _) = pending(&g, "2026-10-25T00:30:00Z"); // 02:30 CEST
        assert_eq!(next, "2026-10-25T01:00:00Z"); // 02:00 CET
        assert_eq!(retry, Duration::from_secs(30 * 60));
        assert_eq!(
            until(&pass(&g, "2026-10-25T01:00:00Z")),
            "2026-10-25T01:30:00Z"
        );
    }

    #[test]
    fn new_york_business_hours_across_both_changes() {
        let g = gate([Window::new(["mon-fri"], "09:00", "17:00", "America/New_York").unwrap()]);
        // Friday 2026-10-30 17:00 EDT → Monday 2026-11-02 09:00 EST (clocks went back on Sunday).
        let (next, retry, ev) = pending(&g, "2026-10-30T21:00:00Z");
        assert_eq!(next, "2026-11-02T14:00:00Z");
        assert_eq!(
            ev.data["next_opening"]["local"],
            "2026-11-02T09:00:00-05:00"
        );
        assert_eq!(retry, Duration::from_secs(65 * H));
        // Friday 2027-03-12 17:00 EST → Monday 2027-03-15 09:00 EDT (clocks went forward).
        let (next, retry, ev) = pending(&g, "2027-03-12T22:00:00Z");
        assert_eq!(next, "2027-03-15T13:00:00Z");
        assert_eq!(
            ev.data["next_opening"]["local"],
            "2027-03-15T09:00:00-04:00"
        );
        assert_eq!(retry, Duration::from_secs(63 * H));
        // A window over the repeated hour of 2026-11-01 (01:00-02:00 EDT, then again EST).
        let g = gate([daily("01:00", "02:30", "America/New_York")]);
        let ev = pass(&g, "2026-11-01T05:45:00Z"); // 01:45 EDT
        assert_eq!(until(&ev), "2026-11-01T07:30:00Z"); // 02:30 EST
        assert_eq!(
            ev.data["allowed_until"]["local"],
            "2026-11-01T02:30:00-05:00"
        );
    }

    #[test]
    fn a_freeze_wins_and_ending_inside_a_window_is_pending_until_its_end() {
        let g = DeploymentWindowGate::builder()
            .window(Window::new(["mon-thu"], "09:00", "16:00", "Europe/Berlin").unwrap())
            .freeze(
                Freeze::new(
                    t("2026-12-02T12:00:00Z"),
                    t("2026-12-03T10:30:00Z"),
                    "incident INC-42",
                )
                .unwrap(),
            )
            .build()
            .unwrap();
        // Thursday 10:00 CET: inside the window, but frozen.
        let (next, retry, ev) = pending(&g, "2026-12-03T09:00:00Z");
        assert_eq!(next, "2026-12-03T10:30:00Z");
        assert_eq!(retry, Duration::from_secs(90 * 60));
        assert_eq!(ev.data["decision"], "frozen");
        assert_eq!(
            ev.data["windows_open"],
            json!(["mon,tue,wed,thu 09:00-16:00 Europe/Berlin"])
        );
        assert_eq!(ev.data["freezes_active"][0]["reason"], "incident INC-42");
        assert_eq!(
            ev.data["next_opening"]["local"],
            "2026-12-03T11:30:00+01:00"
        );
        assert!(
            ev.summary.starts_with(
                "freeze \"incident INC-42\" until 2026-12-03T10:30:00Z; next opening Thu 2026-12-03 11:30 CET"
            ),
            "{}",
            ev.summary
        );
        pass(&g, "2026-12-03T10:30:00Z");
        pending(&g, "2026-12-03T10:29:59Z");
    }

    #[test]
    fn a_freeze_ending_outside_the_windows_waits_for_the_next_window() {
        let g = DeploymentWindowGate::builder()
            .window(Window::new(["mon-thu"], "09:00", "16:00", "Europe/Berlin").unwrap())
            .freeze(
                Freeze::parse(
                    "2026-12-20T00:00:00Z",
                    Some("2027-01-02T00:00:00Z"),
                    "holidays",
                )
                .unwrap(),
            )
            .build()
            .unwrap();
        let (next, _, ev) = pending(&g, "2026-12-21T09:00:00Z");
        assert_eq!(next, "2027-01-04T08:00:00Z");
        assert_eq!(ev.data["decision"], "frozen");
    }

    #[test]
    fn overlapping_windows_join_and_are_all_named() {
        let g = gate([
            Window::new(["mon-fri"], "09:00", "12:00", "Europe/Berlin")
                .unwrap()
                .named("morning"),
            Window::new(["mon-fri"], "11:00", "17:00", "Europe/Berlin")
                .unwrap()
                .named("afternoon"),
        ]);
        let ev = pass(&g, "2026-11-26T10:30:00Z");
        assert_eq!(ev.data["windows_open"], json!(["morning", "afternoon"]));
        assert_eq!(ev.facts["window"], "morning");
        assert_eq!(until(&ev), "2026-11-26T16:00:00Z");
        // Across zones: London 09-17 and New York 09-17 make one stretch 09:00Z-22:00Z.
        let g = gate([
            Window::new(["mon-fri"], "09:00", "17:00", "Europe/London").unwrap(),
            Window::new(["mon-fri"], "09:00", "17:00", "America/New_York").unwrap(),
        ]);
        let ev = pass(&g, "2026-11-26T16:00:00Z");
        assert_eq!(until(&ev), "2026-11-26T22:00:00Z");
        assert_eq!(ev.data["windows_open"].as_array().unwrap().len(), 2);
        let (next, _, ev) = pending(&g, "2026-11-26T22:00:00Z");
        assert_eq!(next, "2026-11-27T09:00:00Z");
        assert_eq!(ev.data["next_opening"]["zone"], "Europe/London");
    }

    #[test]
    fn windows_may_cross_midnight() {
        let w = Window::new(["fri"], "22:00", "02:00", "UTC").unwrap();
        assert!(w.crosses_midnight());
        let g = gate([w]);
        pass(&g, "2026-11-27T22:00:00Z"); // Friday
        let ev = pass(&g, "2026-11-28T01:00:00Z"); // Saturday
        assert_eq!(until(&ev), "2026-11-28T02:00:00Z");
        let (next, retry, _) = pending(&g, "2026-11-28T02:00:00Z");
        assert_eq!(next, "2026-12-04T22:00:00Z");
        assert_eq!(retry, Duration::from_secs((6 * 24 + 20) * H));
        // Thursday night is not Friday night.
        pending(&g, "2026-11-26T23:00:00Z");
        pending(&g, "2026-11-27T01:00:00Z");
        // 24:00 ends at midnight; 00:00 as an end means the same.
        let g = gate([Window::new(["thu"], "20:00", "24:00", "UTC").unwrap()]);
        assert_eq!(
            until(&pass(&g, "2026-11-26T23:00:00Z")),
            "2026-11-27T00:00:00Z"
        );
        let g = gate([Window::new(["thu"], "20:00", "00:00", "UTC").unwrap()]);
        assert_eq!(
            until(&pass(&g, "2026-11-26T23:00:00Z")),
            "2026-11-27T00:00:00Z"
        );
        // A whole-week window stays open throughout the horizon.
        let g = gate([Window::anytime()]);
        let ev = pass(&g, "2026-11-26T23:00:00Z");
        assert_eq!(ev.data["allowed_until"], serde_json::Value::Null);
        assert_eq!(
            ev.summary,
            "inside deployment window any time, open throughout the next 366 days"
        );
    }

    #[test]
    fn no_opening_within_the_horizon_fails_saying_why() {
        let g = DeploymentWindowGate::builder()
            .window(Window::anytime())
            .freeze(
                Freeze::until_further_notice(t("2026-11-20T00:00:00Z"), "incident INC-7").unwrap(),
            )
            .build()
            .unwrap();
        let Verdict::Fail(ev) = eval(&g, "2026-11-26T09:00:00Z") else {
            panic!("expected a fail")
        };
        assert_eq!(
            ev.summary,
            "no deployment window opens within 366 days: freeze \"incident INC-7\" until further notice"
        );
        assert_eq!(ev.data["decision"], "frozen");
        assert_eq!(ev.data["next_opening"], serde_json::Value::Null);
        // A permanent freeze starting tomorrow, evaluated outside the windows.
        let g = DeploymentWindowGate::builder()
            .window(Window::new(["mon-thu"], "09:00", "16:00", "Europe/Berlin").unwrap())
            .freeze(Freeze::until_further_notice(t("2026-11-27T00:00:00Z"), "migration").unwrap())
            .build()
            .unwrap();
        let Verdict::Fail(ev) = eval(&g, "2026-11-26T16:00:00Z") else {
            panic!("expected a fail")
        };
        assert_eq!(
            ev.summary,
            "no deployment window opens within 366 days: outside deployment windows; \
             freezes ahead: \"migration\" from 2026-11-27T00:00:00Z until further notice"
        );
        // A short horizon.
        let g = DeploymentWindowGate::builder()
            .window(Window::new(["mon-thu"], "09:00", "16:00", "Europe/Berlin").unwrap())
            .horizon(Duration::from_secs(24 * H))
            .build()
            .unwrap();
        let Verdict::Fail(ev) = eval(&g, "2026-11-26T16:00:00Z") else {
            panic!("expected a fail")
        };
        assert_eq!(
            ev.summary,
            "no deployment window opens within 1 day: outside deployment windows"
        );
        // ...but the same gate waits when the opening is within a day.
        pending(&g, "2026-11-25T16:00:00Z");
    }

    /// The next allowed instant by brute force, minute by minute (every boundary in these
    /// configurations falls on a whole minute).
    fn brute_force(
        g: &DeploymentWindowGate,
        from: DateTime<Utc>,
        limit: i64,
    ) -> Option<DateTime<Utc>> {
        (0..limit)
            .map(|m| from + TimeDelta::minutes(m))
            .find(|t| g.allows(*t))
    }

    #[test]
    fn the_next_opening_matches_a_minute_by_minute_search_across_dst_weekends() {
        let g = DeploymentWindowGate::builder()
            .window(daily("01:30", "02:30", "Europe/Berlin"))
            .window(daily("02:15", "02:45", "Europe/Berlin"))
            .window(Window::new(["sat", "sun"], "23:30", "01:10", "America/New_York").unwrap())
            .window(Window::new(["sun"], "03:00", "03:20", "Europe/Berlin").unwrap())
            .freeze(
                Freeze::parse("2026-10-25T00:40:00Z", Some("2026-10-25T01:10:00Z"), "x").unwrap(),
            )
            .freeze(
                Freeze::parse("2027-03-28T00:50:00Z", Some("2027-03-28T01:05:00Z"), "y").unwrap(),
            )
            .horizon(Duration::from_secs(7 * 24 * H))
            .build()
            .unwrap();
        for start in [
            "2026-10-24T20:00:00Z",
            "2026-10-31T20:00:00Z",
            "2027-03-13T20:00:00Z",
            "2027-03-27T20:00:00Z",
        ] {
            let start = t(start);
            // Every 7 minutes over 36 hours.
            for step in 0..(36 * 60 / 7) {
                let now = start + TimeDelta::minutes(7 * step);
                let expected = brute_force(&g, now, 3 * 24 * 60);
                assert_eq!(g.next_opening(now), expected, "from {now}");
                let verdict = block_on(GateProbe::new().at(now).evaluate(&g)).unwrap();
                match (verdict, expected) {
                    (Verdict::Pass(_), Some(e)) => assert_eq!(e, now),
                    (Verdict::Pending { retry_after, .. }, Some(e)) => {
                        assert_eq!(now + TimeDelta::from_std(retry_after).unwrap(), e);
                        // Asking again when told to passes.
                        let again = block_on(GateProbe::new().at(e).evaluate(&g)).unwrap();
                        assert!(matches!(again, Verdict::Pass(_)), "at {e}");
                    }
                    (v, e) => panic!("from {now}: {v:?} but expected {e:?}"),
                }
                // The closing matches too.
                if g.allows(now) {
                    let closing = (1..3 * 24 * 60)
                        .map(|m| now + TimeDelta::minutes(m))
                        .find(|t| !g.allows(*t));
                    let got = g.next_closing(now).map(|c| {
                        // Brute force sees minutes only: round up.
                        let m = (c - now).num_seconds();
                        now + TimeDelta::minutes((m + 59) / 60)
                    });
                    assert_eq!(got, closing, "closing from {now}");
                }
            }
        }
    }

    #[test]
    fn the_toml_sample_configures_the_gate_and_its_digest_is_evidence() {
        let g = DeploymentWindowGate::builder()
            .name("shop-windows")
            .toml_file(data("windows.toml"))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(g.name(), "shop-windows");
        assert_eq!(g.windows().len(), 3);
        assert_eq!(g.freezes().len(), 2);
        assert!(g.windows()[2].crosses_midnight());
        assert_eq!(g.freezes()[0].from(), t("2026-12-18T15:00:00Z"));
        assert_eq!(g.freezes()[1].reason(), "Black Friday");
        // Thursday 10:00 CET: Berlin is open; New York opens at 14:00Z, so open until 18:00Z.
        let ev = pass(&g, "2026-11-26T09:00:00Z");
        assert_eq!(ev.facts["window"], "berlin business hours");
        assert_eq!(until(&ev), "2026-11-26T18:00:00Z");
        let bytes = std::fs::read(data("windows.toml")).unwrap();
        assert_eq!(ev.attachments.len(), 1);
        assert_eq!(ev.attachments[0].name, data("windows.toml"));
        assert_eq!(ev.attachments[0].digest, Digest::of(&bytes));
        assert_eq!(ev.data["config"]["windows"][2]["days"], json!(["sat"]));
        // Black Friday (no window on Fridays anyway): the freeze decides; Saturday night opens.
        let (next, retry, ev) = pending(&g, "2026-11-27T10:00:00Z");
        assert_eq!(ev.data["decision"], "frozen");
        assert!(ev.summary.starts_with("freeze \"Black Friday\""));
        assert_eq!(next, "2026-11-28T22:00:00Z");
        assert_eq!(retry, Duration::from_secs(36 * H));
        assert_eq!(ev.data["next_opening"]["window"], "saturday maintenance");
        // Before the holidays: every window until 4 January is frozen.
        let (next, _, ev) = pending(&g, "2026-12-17T19:00:00Z");
        assert_eq!(ev.data["decision"], "outside_windows");
        assert_eq!(next, "2027-01-04T08:00:00Z");
    }

    fn toml_error(name: &str) -> String {
        DeploymentWindowGate::builder()
            .toml_file(data(name))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_toml_entries_are_typed_errors_naming_the_entry() {
        let f = data("");
        assert_eq!(
            toml_error("bad-zone.toml"),
            format!("{f}bad-zone.toml line 7: window 2: unknown time zone `Europe/Berln` (expected an IANA name such as Europe/Berlin)")
        );
        assert!(toml_error("bad-day.toml").starts_with(&format!(
            "{f}bad-day.toml line 1: window 1: unknown day `thurs-fry`"
        )));
        assert!(toml_error("bad-time.toml").starts_with(&format!(
            "{f}bad-time.toml line 1: window 1: invalid start time `9 am`"
        )));
        assert!(toml_error("empty-window.toml").starts_with(&format!(
            "{f}empty-window.toml line 1: window 1: starts and ends at 09:00"
        )));
        assert_eq!(
            toml_error("backwards-freeze.toml"),
            format!("{f}backwards-freeze.toml line 7: freeze 1: ends at 2026-12-20T00:00:00Z, which is not after its start 2027-01-02T00:00:00Z")
        );
        assert!(toml_error("freeze-without-offset.toml").starts_with(&format!("{f}freeze-without-offset.toml line 7: freeze 1: invalid from `2026-12-20T00:00:00`")));
        assert!(
            toml_error("freeze-without-reason.toml").starts_with(&format!(
                "{f}freeze-without-reason.toml line 7: freeze 1: a freeze needs a reason"
            ))
        );
        assert!(matches!(
            DeploymentWindowGate::builder().toml_file(data("bad-zone.toml")),
            Err(WindowConfigError::UnknownZone { zone, .. }) if zone == "Europe/Berln"
        ));
    }

    #[test]
    fn malformed_toml_documents_are_errors_naming_file_and_line() {
        let f = data("");
        let e = toml_error("syntax-error.toml");
        assert!(
            e.starts_with(&format!("{f}syntax-error.toml line 3: ")),
            "{e}"
        );
        let e = toml_error("missing-zone.toml");
        assert!(
            e.starts_with(&format!("{f}missing-zone.toml line 1: ")) && e.contains("zone"),
            "{e}"
        );
        let e = toml_error("unknown-key.toml");
        assert!(
            e.starts_with(&format!("{f}unknown-key.toml line 6: ")) && e.contains("timezone"),
            "{e}"
        );
        let e = toml_error("no-such-file.toml");
        assert!(
            e.starts_with(&format!("cannot read {f}no-such-file.toml: ")),
            "{e}"
        );
        assert!(matches!(
            DeploymentWindowGate::builder().toml("horizon_days = \"long\"", "inline"),
            Err(WindowConfigError::Document { what, .. }) if what == "inline line 1"
        ));
    }

    #[test]
    fn bad_configuration_in_code_is_a_typed_error_at_construction() {
        assert_eq!(
            Window::new(["mon"], "09:00", "16:00", "Mars/Olympus").unwrap_err(),
            WindowConfigError::UnknownZone {
                entry: "window `mon 09:00-16:00 Mars/Olympus`".into(),
                zone: "Mars/Olympus".into()
            }
        );
        assert!(
            matches!(Window::new(["funday"], "09:00", "16:00", "UTC"), Err(WindowConfigError::InvalidDay { day, .. }) if day == "funday")
        );
        assert!(matches!(
            Window::new(Vec::<&str>::new(), "09:00", "16:00", "UTC"),
            Err(WindowConfigError::NoDays { .. })
        ));
        assert!(matches!(
            Window::new(["mon"], "24:00", "16:00", "UTC"),
            Err(WindowConfigError::InvalidTime { which: "start", .. })
        ));
        assert!(matches!(
            Window::new(["mon"], "09:00", "16:60", "UTC"),
            Err(WindowConfigError::InvalidTime { which: "end", .. })
        ));
        assert!(matches!(
            Window::new(["mon"], "00:00", "00:00", "UTC"),
            Err(WindowConfigError::EmptyWindow { .. })
        ));
        assert!(matches!(
            Freeze::new(t("2026-12-20T00:00:00Z"), t("2026-12-20T00:00:00Z"), "x"),
            Err(WindowConfigError::EmptyFreeze { .. })
        ));
        assert!(matches!(
            Freeze::new(t("2026-12-20T00:00:00Z"), t("2026-12-21T00:00:00Z"), ""),
            Err(WindowConfigError::NoReason { .. })
        ));
        assert!(matches!(
            Freeze::parse("2026-12-20", None, "x"),
            Err(WindowConfigError::InvalidInstant { which: "from", .. })
        ));
        assert!(matches!(
            DeploymentWindowGate::builder().build(),
            Err(WindowConfigError::NoWindows)
        ));
        assert!(matches!(
            DeploymentWindowGate::builder()
                .window(Window::anytime())
                .horizon(Duration::ZERO)
                .build(),
            Err(WindowConfigError::InvalidHorizon { horizon }) if horizon.is_zero()
        ));
        assert!(matches!(
            DeploymentWindowGate::builder()
                .window(Window::anytime())
                .horizon(Duration::from_secs(4000 * 24 * H))
                .build(),
            Err(WindowConfigError::InvalidHorizon { .. })
        ));
        assert!(matches!(
            DeploymentWindowGate::builder()
                .window(Window::anytime())
                .horizon(Duration::from_secs(36 * H))
                .build(),
            Err(WindowConfigError::InvalidHorizon { .. })
        ));
        assert!(matches!(
            DeploymentWindowGate::builder()
                .window(Window::anytime())
                .name("")
                .build(),
            Err(WindowConfigError::InvalidName(_))
        ));
        // Day ranges wrap around the week, full names are accepted.
        let w = Window::new(["fri-mon", "Wednesday"], "09:00", "10:00", "UTC").unwrap();
        assert_eq!(w.description(), "mon,wed,fri,sat,sun 09:00-10:00 UTC");
        assert_eq!(w.label(), w.description());
        assert_eq!(w.zone(), Tz::UTC);
    }
}
