//! The metric gate: one Prometheus query, measured on a schedule and judged against thresholds,
//! with the semantics of an Argo Rollouts `AnalysisRun`.
//!
//! A [`MetricGate`] measures a PromQL query (an error rate, a p99 latency, a saturation) `count`
//! times, `interval` apart, the first measurement `initial_delay` after the phase started. Each
//! measurement is judged against a **success condition** and a **failure condition**, typed
//! comparisons such as `result < 0.01` ([`Condition`]):
//!
//! | success condition | failure condition | the measurement is |
//! |---|---|---|
//! | met | not met, or not set | successful |
//! | not met | not set | failed |
//! | not set, or not met | met | failed (the failure condition wins when both are met) |
//! | not set | not met | successful |
//! | not met | not met | inconclusive |
//!
//! A query may return several series (or, measured over a window, several points): every value
//! is judged and the worst counts (failed, then inconclusive, then successful). An **empty
//! result** is *no data* and a **NaN** (such as `0/0` when there was no traffic) is *no value*:
//! both make the measurement inconclusive, never successful. Infinities compare as numbers.
//!
//! The measurements are tallied as Argo does, in order, and the analysis stops at the first
//! measurement that decides it:
//!
//! - more failed measurements than `failure_limit` (default 0): [`Verdict::Fail`](promotion_core::Verdict::Fail);
//! - more inconclusive measurements than `inconclusive_limit` (default 0):
//!   [`Verdict::Inconclusive`](promotion_core::Verdict::Inconclusive), so the phase pauses for a human decision;
//! - `count` measurements taken without either: [`Verdict::Pass`](promotion_core::Verdict::Pass);
//! - otherwise the analysis is still running: [`Verdict::Pending`](promotion_core::Verdict::Pending) with `retry_after` exactly
//!   the time until the next measurement is due (during the initial delay, until the first).
//!
//! # One schedule, recomputed at every evaluation
//!
//! Measurement *k* (from 0) is the query's value at the fixed instant
//! `phase start + initial_delay + k × interval`, where the phase start is the one the engine
//! recorded in [`GateContext::state`](promotion_core::GateContext::state). Every evaluation measures **every** instant that is due —
//! one `/api/v1/query` call while only the first is due, otherwise one `/api/v1/query_range`
//! call covering them all (step `interval`) — and recomputes the tallies from those values
//! alone. So:
//!
//! - the decision is a pure function of the query's values at fixed instants
//!   ([`MetricGate::judge`] and [`MetricGate::assess`]), and the evidence lists every value it
//!   used: an auditor can replay it from the log;
//! - a replica that takes over, a host that calls late, or an evaluation after an error (the
//!   engine records an error without evidence, so an error would wipe tallies carried in facts)
//!   all arrive at the same result;
//! - a late call does not shorten the analysis: the measurements are still `interval` apart;
//! - a phase that re-samples every round (`all_pass_in_same_round`) re-measures the same
//!   instants and reaches the same verdict while Prometheus retains the data.
//!
//! The tallies are also declared as facts for approval rules and reports: `status` (`running`,
//! `successful`, `failed`, `inconclusive`, or `error` when the consecutive-error limit failed
//! the gate), `measured`, `successful`, `failed`, `inconclusive` and `consecutive_errors`.
//!
//! Without a recorded phase start (a gate evaluated outside a pipeline, with no state) there is
//! no schedule: the gate answers [`GateError::Misconfigured`](promotion_core::GateError::Misconfigured).
//!
//! # Instant and range measurements
//!
//! [`QueryMode::Instant`] (the default) measures the query's instant value. With
//! [`QueryMode::Range`] a measurement is every point of the query over the `window` before its
//! instant, `step` apart (Argo's `rangeQuery`): all of them must satisfy the conditions. The
//! window and the interval must be whole multiples of the step, so that every window holds the
//! same grid of points whether it is fetched alone or with the others.
//!
//! # Errors
//!
//! Prometheus down, an HTTP error, a response that is not the Prometheus API's JSON: a
//! [`GateError`](promotion_core::GateError) naming the request URL and the problem ([`PrometheusError`] says how each maps),
//! never a verdict. The engine records it and counts errors in a row; when this evaluation's
//! error would make more consecutive errors than `consecutive_error_limit` (default 4, as in
//! Argo), the gate answers [`Verdict::Fail`](promotion_core::Verdict::Fail) instead, with the error as evidence. The engine's
//! own [`PhasePolicy::consecutive_error_limit`](promotion_core::PhasePolicy) applies as well;
//! whichever is lower ends the phase first.
//!
//! A query that returns a string or a range vector, or that Prometheus rejects (HTTP 400, such as
//! a PromQL syntax error), is [`GateError::Misconfigured`](promotion_core::GateError::Misconfigured). Every setting is checked when the gate
//! is built: [`MetricConfigError`] names the field.
//!
//! The gate needs a tokio runtime with I/O and time enabled, like every HTTP gate here.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use promotion_core::GateName;
use serde_json::{json, Value};

pub use crate::prometheus::{
    Point, Prometheus, PrometheusConfigError, PrometheusError, QueryResponse, QueryResult, Series,
    DEFAULT_TIMEOUT, MAX_POINTS_PER_SERIES, MAX_RESPONSE_BYTES, MIN_INTERVAL,
};

mod analysis;
mod builder;
mod condition;
mod evaluate;
mod evidence;

pub use analysis::{AnalysisStatus, Assessment, MeasurementPhase, Tallies};
use analysis::{Judged, Reading};
pub use builder::{MetricConfigError, MetricGateBuilder, QueryMode};
pub use condition::{Comparison, Condition, ConditionParseError};
#[cfg(test)]
use evaluate::{describe, measurement_values};
pub use evidence::{
    DecisiveReading, Endpoint, ErrorEvidence, ErrorStatus, EvidenceTallies, MeasuredEvidence,
    MeasurementRecord, MeasurementValues, MetricEvidence, MetricSettings, MetricValue,
    ModeSettings, SeriesSummary, SeriesValue, WaitingEvidence,
};

/// Measures a Prometheus query on a schedule and judges each measurement against typed
/// thresholds, as an Argo Rollouts `AnalysisRun` does. See the [module documentation](self)
/// for the schedule, the judgement and the errors.
///
/// Evidence names the Prometheus URL, the query and the request, lists every measurement (its
/// instant, phase, reason and values), the tallies and the decision, and attaches the digest of
/// the raw response; its data is a [`MetricEvidence`] (read it back with
/// `serde_json::from_value`). Facts: `status`, `measured`, `successful`, `failed`,
/// `inconclusive`, `consecutive_errors`.
///
/// ```
/// use std::time::Duration;
/// use promotion_gates::metrics::{AnalysisStatus, Condition, MeasurementPhase, MetricGate};
///
/// let gate = MetricGate::builder(
///     "http://prometheus:9090",
///     r#"sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))"#,
/// )
/// .name("error-rate")
/// .success_condition("result < 0.01".parse()?)
/// .failure_condition(Condition::ge(0.05))
/// .count(5)
/// .interval(Duration::from_secs(60))
/// .failure_limit(1)
/// .build()?;
///
/// // The decision is a pure function of the measured values.
/// assert_eq!(gate.judge(&[0.002]), MeasurementPhase::Successful);
/// assert_eq!(gate.judge(&[0.03]), MeasurementPhase::Inconclusive); // neither condition
/// assert_eq!(gate.judge(&[0.002, 0.07]), MeasurementPhase::Failed); // the worst series counts
/// assert_eq!(gate.judge(&[]), MeasurementPhase::Inconclusive); // no data
/// assert_eq!(gate.judge(&[f64::NAN]), MeasurementPhase::Inconclusive);
///
/// use MeasurementPhase::*;
/// assert_eq!(gate.assess(&[Successful, Failed]).status, AnalysisStatus::Running);
/// assert_eq!(gate.assess(&[Successful, Failed, Failed]).status, AnalysisStatus::Failed);
/// assert_eq!(gate.assess(&[Successful; 5]).status, AnalysisStatus::Successful);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MetricGate {
    name: GateName,
    prometheus: Prometheus,
    query: String,
    mode: QueryMode,
    success: Option<Condition>,
    failure: Option<Condition>,
    initial_delay: Duration,
    interval: Duration,
    count: u32,
    failure_limit: u32,
    inconclusive_limit: u32,
    consecutive_error_limit: u32,
}

/// The measurement instants of one evaluation, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Schedule {
    first_ms: i64,
    interval_ms: i64,
    count: u32,
}

impl Schedule {
    /// Instant `k` (from 0).
    fn at_ms(&self, k: u32) -> i64 {
        self.first_ms
            .saturating_add(self.interval_ms.saturating_mul(i64::from(k)))
    }
    /// How many instants are at or before `now_ms`.
    fn due(&self, now_ms: i64) -> u32 {
        if now_ms < self.first_ms {
            return 0;
        }
        if self.count <= 1 || self.interval_ms <= 0 {
            return self.count.min(1);
        }
        let passed = (now_ms - self.first_ms) / self.interval_ms + 1;
        u32::try_from(passed).unwrap_or(u32::MAX).min(self.count)
    }
}

fn time_of(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A number as Prometheus writes it (`NaN`, `+Inf`).
pub(crate) fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        v.to_string()
    }
}

/// A number as JSON: finite numbers as numbers, the rest as Prometheus writes them.
pub(crate) fn num(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        json!(fmt_num(v))
    }
}

/// Labels as PromQL writes a selector: `{job="api",track="canary"}` (empty when none).
pub(crate) fn fmt_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
mod tests;
