//! Windows and freezes: a [`Window`] is some weekdays from a start to an end time in an IANA zone,
//! a [`Freeze`] a period with no deployments; both answer whether an instant is inside them and
//! when they next open or close.

use std::str::FromStr;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Timelike, Utc,
    Weekday,
};
use chrono_tz::Tz;
use serde_json::json;

use super::{WindowConfigError, DAY_SECS};

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

pub(super) fn utc(t: DateTime<Utc>) -> String {
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
    pub(super) name: Option<String>,
    days: Days,
    pub(super) start: u32,
    pub(super) end: u32,
    pub(super) zone: Tz,
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

    pub(super) fn parse<S: AsRef<str>>(
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
    pub(super) fn readings(&self, date: NaiveDate, secs: u32) -> Vec<DateTime<Utc>> {
        let Some(time) = NaiveTime::from_num_seconds_from_midnight_opt(secs % DAY_SECS, 0) else {
            return Vec::new();
        };
        match self.zone.from_local_datetime(&date.and_time(time)) {
            LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
            LocalResult::Ambiguous(a, b) => vec![a.with_timezone(&Utc), b.with_timezone(&Utc)],
            LocalResult::None => Vec::new(),
        }
    }

    pub(super) fn to_json(&self) -> serde_json::Value {
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
    pub(super) from: DateTime<Utc>,
    pub(super) to: Option<DateTime<Utc>>,
    pub(super) reason: String,
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

    pub(super) fn checked(
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

    pub(super) fn to_json(&self) -> serde_json::Value {
        json!({
            "reason": self.reason,
            "from": utc(self.from),
            "to": self.to.map(utc),
        })
    }
}

pub(super) fn parse_instant(
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
