//! The deployment window gate: releases enter a stage only at agreed times, never during a
//! freeze.
//!
//! A [`Window`] allows deployments on some weekdays between two wall-clock times in an IANA
//! time zone (Mon–Thu 09:00–16:00 Europe/Berlin); a gate may have several, and an instant in
//! any of them is inside. A [`Freeze`] forbids deployments between two instants for a reason
//! (holidays, an incident), and a freeze wins over every window.
//!
//! The gate is evaluated at the engine's clock ([`GateContext::now`](promotion_core::GateContext::now)):
//!
//! - inside a window and not frozen: [`Verdict::Pass`](promotion_core::Verdict::Pass), naming the window(s) and when
//!   deployment stops being allowed;
//! - otherwise: [`Verdict::Pending`](promotion_core::Verdict::Pending) with `retry_after` exactly the time until the next
//!   instant at which deployment is allowed (a window opening that is not frozen, or a freeze
//!   ending inside a window), so the engine schedules the release instead of failing it. The
//!   evidence says which rule decided (outside the windows, or the freeze and its reason) and
//!   gives the next opening in RFC 3339, in UTC and in the zone of the window that opens;
//! - when no such instant exists within the search horizon (366 days by default; a freeze
//!   "until further notice", or freezes covering every window): [`Verdict::Fail`](promotion_core::Verdict::Fail), saying so.
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

use std::time::Duration;

mod builder;
mod gate;
mod schedule;

pub use builder::DeploymentWindowGateBuilder;
pub use gate::DeploymentWindowGate;
use schedule::{parse_instant, utc};
pub use schedule::{Freeze, Window};

/// How far ahead the gate looks for the next opening unless configured otherwise.
pub const DEFAULT_HORIZON_DAYS: u32 = 366;

/// The longest search horizon accepted, in days (ten years).
pub const MAX_HORIZON_DAYS: u32 = 3660;

const DAY_SECS: u32 = 86_400;

/// A deployment window or freeze configured wrongly, naming the entry.
#[allow(missing_docs)] // the fields are named for what they hold
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
        entry: String,
        /// The day as given.
        day: String,
    },
    /// A window names no day.
    #[error("{entry}: no days given")]
    NoDays { entry: String },
    /// A start or end is not a time of day.
    #[error("{entry}: invalid {which} time `{time}` (expected HH:MM from 00:00 to 23:59, or 24:00 as an end)")]
    InvalidTime {
        entry: String,
        /// `start` or `end`.
        which: &'static str,
        /// The time as given.
        time: String,
    },
    /// A window starts when it ends.
    #[error("{entry}: starts and ends at {time}; a window must have a length (00:00 to 24:00 is a whole day)")]
    EmptyWindow {
        entry: String,
        /// The start (and end).
        time: String,
    },
    /// A freeze's bound is not an RFC 3339 date-time with an offset.
    #[error("{entry}: invalid {which} `{value}` (expected an RFC 3339 date-time with an offset, such as 2026-12-20T00:00:00Z)")]
    InvalidInstant {
        entry: String,
        /// `from` or `to`.
        which: &'static str,
        /// The value as given.
        value: String,
    },
    /// A freeze ends before or when it starts.
    #[error("{entry}: ends at {to}, which is not after its start {from}")]
    EmptyFreeze {
        entry: String,
        /// The start, RFC 3339.
        from: String,
        /// The end, RFC 3339.
        to: String,
    },
    /// A freeze has no reason.
    #[error("{entry}: a freeze needs a reason (holidays, an incident id)")]
    NoReason { entry: String },
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
        path: String,
        /// What the system said.
        message: String,
    },
}

#[cfg(test)]
mod tests;
