//! The [`DeploymentWindowGate`] at evaluation time: whether now is inside a window and outside
//! every freeze, and otherwise when the next opening is, across daylight-saving changes.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Offset, SecondsFormat, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use promotion_core::{Evidence, Gate, GateContext, GateError, GateKind, GateName, Verdict};
use serde_json::json;

use super::{utc, DeploymentWindowGateBuilder, Freeze, Window, DAY_SECS, DEFAULT_HORIZON_DAYS};

/// Allows a release in only inside a deployment window and outside every freeze; otherwise
/// pending until the next opening (or failing when none comes within the horizon). See the
/// [module documentation](super) for the rules, daylight saving and the TOML form.
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
    pub(super) name: GateName,
    pub(super) windows: Vec<Window>,
    pub(super) freezes: Vec<Freeze>,
    pub(super) horizon: TimeDelta,
    pub(super) sources: Vec<(String, Vec<u8>)>,
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
