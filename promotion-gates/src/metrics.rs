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
//! - more failed measurements than `failure_limit` (default 0): [`Verdict::Fail`];
//! - more inconclusive measurements than `inconclusive_limit` (default 0):
//!   [`Verdict::Inconclusive`], so the phase pauses for a human decision;
//! - `count` measurements taken without either: [`Verdict::Pass`];
//! - otherwise the analysis is still running: [`Verdict::Pending`] with `retry_after` exactly
//!   the time until the next measurement is due (during the initial delay, until the first).
//!
//! # One schedule, recomputed at every evaluation
//!
//! Measurement *k* (from 0) is the query's value at the fixed instant
//! `phase start + initial_delay + k × interval`, where the phase start is the one the engine
//! recorded in [`GateContext::state`]. Every evaluation measures **every** instant that is due —
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
//! no schedule: the gate answers [`GateError::Misconfigured`].
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
//! [`GateError`] naming the request URL and the problem ([`PrometheusError`] says how each maps),
//! never a verdict. The engine records it and counts errors in a row; when this evaluation's
//! error would make more consecutive errors than `consecutive_error_limit` (default 4, as in
//! Argo), the gate answers [`Verdict::Fail`] instead, with the error as evidence. The engine's
//! own [`PhasePolicy::consecutive_error_limit`](promotion_core::PhasePolicy) applies as well;
//! whichever is lower ends the phase first.
//!
//! A query that returns a string or a range vector, or that Prometheus rejects (HTTP 400, such as
//! a PromQL syntax error), is [`GateError::Misconfigured`]. Every setting is checked when the gate
//! is built: [`MetricConfigError`] names the field.
//!
//! The gate needs a tokio runtime with I/O and time enabled, like every HTTP gate here.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use promotion_core::clock::{add, elapsed};
use promotion_core::machine::GateRecord;
use promotion_core::{Evidence, Gate, GateContext, GateError, GateName, Outcome, Verdict};
use serde_json::{json, Value};

use crate::prometheus::{configure_prometheus, millis};
pub use crate::prometheus::{
    Point, Prometheus, PrometheusConfigError, PrometheusError, QueryResponse, QueryResult, Series,
    DEFAULT_TIMEOUT, MAX_POINTS_PER_SERIES, MAX_RESPONSE_BYTES, MIN_INTERVAL,
};

// ---------------------------------------------------------------------------------------------
// Conditions
// ---------------------------------------------------------------------------------------------

/// How a [`Condition`] compares the measured value with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    /// `result < threshold`
    Lt,
    /// `result <= threshold`
    Le,
    /// `result > threshold`
    Gt,
    /// `result >= threshold`
    Ge,
    /// `result == threshold`
    Eq,
    /// `result != threshold`
    Ne,
}

impl Comparison {
    /// The operator as written (`<=`).
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Eq => "==",
            Comparison::Ne => "!=",
        }
    }
}

/// A typed comparison of a measured value with a threshold: `result < 0.01`.
///
/// A NaN never meets a condition, whatever the operator. Parse one from text with
/// [`str::parse`] (`"result < 0.01"`, or just `"< 0.01"`).
///
/// ```
/// use promotion_gates::metrics::Condition;
///
/// let c: Condition = "result < 0.01".parse()?;
/// assert_eq!(c, Condition::lt(0.01));
/// assert!(c.holds(0.002));
/// assert!(!c.holds(f64::NAN));
/// assert_eq!(c.to_string(), "result < 0.01");
/// # Ok::<(), promotion_gates::metrics::ConditionParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    comparison: Comparison,
    threshold: f64,
}

impl Condition {
    /// `result <comparison> threshold`. The builders refuse a threshold that is not finite.
    pub fn new(comparison: Comparison, threshold: f64) -> Self {
        Condition {
            comparison,
            threshold,
        }
    }
    /// `result < threshold`
    pub fn lt(threshold: f64) -> Self {
        Self::new(Comparison::Lt, threshold)
    }
    /// `result <= threshold`
    pub fn le(threshold: f64) -> Self {
        Self::new(Comparison::Le, threshold)
    }
    /// `result > threshold`
    pub fn gt(threshold: f64) -> Self {
        Self::new(Comparison::Gt, threshold)
    }
    /// `result >= threshold`
    pub fn ge(threshold: f64) -> Self {
        Self::new(Comparison::Ge, threshold)
    }
    /// `result == threshold`
    pub fn eq(threshold: f64) -> Self {
        Self::new(Comparison::Eq, threshold)
    }
    /// `result != threshold`
    pub fn ne(threshold: f64) -> Self {
        Self::new(Comparison::Ne, threshold)
    }
    /// The operator.
    pub fn comparison(&self) -> Comparison {
        self.comparison
    }
    /// The threshold.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }
    /// Whether `value` meets the condition (never for NaN).
    pub fn holds(&self, value: f64) -> bool {
        if value.is_nan() {
            return false;
        }
        let t = self.threshold;
        match self.comparison {
            Comparison::Lt => value < t,
            Comparison::Le => value <= t,
            Comparison::Gt => value > t,
            Comparison::Ge => value >= t,
            Comparison::Eq => value == t,
            Comparison::Ne => value != t,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "result {} {}",
            self.comparison.symbol(),
            fmt_num(self.threshold)
        )
    }
}

/// Text that is not a condition; returned by [`Condition`]'s [`FromStr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid condition `{text}`: {problem} (expected such as `result < 0.01`)")]
pub struct ConditionParseError {
    /// The text as given.
    pub text: String,
    /// What is wrong.
    pub problem: String,
}

impl FromStr for Condition {
    type Err = ConditionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |problem: &str| ConditionParseError {
            text: s.to_owned(),
            problem: problem.to_owned(),
        };
        let rest = s.trim();
        let rest = rest.strip_prefix("result").unwrap_or(rest).trim_start();
        // Two-character operators first.
        let ops = [
            ("<=", Comparison::Le),
            (">=", Comparison::Ge),
            ("==", Comparison::Eq),
            ("!=", Comparison::Ne),
            ("<", Comparison::Lt),
            (">", Comparison::Gt),
        ];
        let Some((comparison, number)) = ops
            .iter()
            .find_map(|(sym, op)| rest.strip_prefix(sym).map(|n| (*op, n.trim())))
        else {
            return Err(err("no comparison operator (<, <=, >, >=, ==, !=)"));
        };
        if number.is_empty() {
            return Err(err("no threshold after the operator"));
        }
        let threshold: f64 = number
            .parse()
            .map_err(|_| err(&format!("`{number}` is not a number")))?;
        if !threshold.is_finite() {
            return Err(err("the threshold must be a finite number"));
        }
        Ok(Condition::new(comparison, threshold))
    }
}

// ---------------------------------------------------------------------------------------------
// Judging measurements (pure)
// ---------------------------------------------------------------------------------------------

/// How one measurement came out (Argo's measurement phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MeasurementPhase {
    /// Met the success condition (or did not meet the failure condition).
    Successful,
    /// Could not be judged: no data, NaN, or neither condition met.
    Inconclusive,
    /// Met the failure condition (or did not meet the success condition).
    Failed,
}

impl MeasurementPhase {
    /// `successful`, `failed` or `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            MeasurementPhase::Successful => "successful",
            MeasurementPhase::Inconclusive => "inconclusive",
            MeasurementPhase::Failed => "failed",
        }
    }
}

/// Where an analysis stands after its measurements so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnalysisStatus {
    /// More measurements are due.
    Running,
    /// `count` measurements without passing either limit.
    Successful,
    /// More failed measurements than the failure limit.
    Failed,
    /// More inconclusive measurements than the inconclusive limit.
    Inconclusive,
}

impl AnalysisStatus {
    /// `running`, `successful`, `failed` or `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisStatus::Running => "running",
            AnalysisStatus::Successful => "successful",
            AnalysisStatus::Failed => "failed",
            AnalysisStatus::Inconclusive => "inconclusive",
        }
    }
}

/// Counts of measurements by phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tallies {
    /// Measurements counted.
    pub measured: u32,
    /// Successful ones.
    pub successful: u32,
    /// Failed ones.
    pub failed: u32,
    /// Inconclusive ones.
    pub inconclusive: u32,
}

/// The outcome of [`MetricGate::assess`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    /// Where the analysis stands.
    pub status: AnalysisStatus,
    /// The measurements counted: up to and including the one that decided.
    pub tallies: Tallies,
}

/// One value inside a measurement: which series, when, what.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    labels: BTreeMap<String, String>,
    at: DateTime<Utc>,
    value: f64,
}

/// The judgement of one measurement and the reading that decided it, if one did.
#[derive(Debug, Clone, PartialEq)]
struct Judged {
    phase: MeasurementPhase,
    reason: String,
    decisive: Option<usize>,
}

// ---------------------------------------------------------------------------------------------
// The gate
// ---------------------------------------------------------------------------------------------

/// How each measurement reads the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryMode {
    /// The query's value at the measurement's instant.
    #[default]
    Instant,
    /// Every point of the query over `window` before the measurement's instant, `step` apart
    /// (the instant itself included); all must satisfy the conditions.
    Range {
        /// How far back each measurement looks.
        window: Duration,
        /// The resolution.
        step: Duration,
    },
}

/// A metric gate configured wrongly; returned by [`MetricGateBuilder::build`]. Names the gate
/// and the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricConfigError {
    /// The gate's name is not a valid gate name.
    #[error("metric gate: {0}")]
    InvalidName(#[from] promotion_core::InvalidName),
    /// The Prometheus URL, timeout or client is unusable.
    #[error("metric gate `{gate}`: {source}")]
    Prometheus {
        /// The gate.
        gate: String,
        /// What is wrong.
        #[source]
        source: PrometheusConfigError,
    },
    /// The query is empty.
    #[error("metric gate `{gate}`: query: the query is empty")]
    EmptyQuery {
        /// The gate.
        gate: String,
    },
    /// Neither a success nor a failure condition: every measurement would pass unjudged.
    #[error(
        "metric gate `{gate}`: neither success_condition nor failure_condition is set; \
         every measurement would pass without being judged"
    )]
    NoCondition {
        /// The gate.
        gate: String,
    },
    /// A condition's threshold is NaN or infinite.
    #[error("metric gate `{gate}`: {field}: the threshold {} is not a finite number", fmt_num(*.value))]
    InvalidThreshold {
        /// The gate.
        gate: String,
        /// `success_condition` or `failure_condition`.
        field: &'static str,
        /// The threshold as given.
        value: f64,
    },
    /// `count` is zero.
    #[error("metric gate `{gate}`: count: at least one measurement is needed")]
    ZeroCount {
        /// The gate.
        gate: String,
    },
    /// A duration is out of range.
    #[error("metric gate `{gate}`: {field} {value:?}: {problem}")]
    InvalidDuration {
        /// The gate.
        gate: String,
        /// `interval`, `window`, `step` or `timeout`.
        field: &'static str,
        /// The duration as given.
        value: Duration,
        /// What is wrong.
        problem: String,
    },
    /// A limit is not below `count`: that many bad measurements could never end the analysis.
    #[error(
        "metric gate `{gate}`: {field} {limit} must be less than count {count}, or \
         {what} measurements could never decide the analysis"
    )]
    LimitNotBelowCount {
        /// The gate.
        gate: String,
        /// `failure_limit` or `inconclusive_limit`.
        field: &'static str,
        /// The limit.
        limit: u32,
        /// The count.
        count: u32,
        /// `failed` or `inconclusive`.
        what: &'static str,
    },
    /// The measurements would need more points per series than Prometheus returns.
    #[error(
        "metric gate `{gate}`: count, interval, window and step need {points} points per \
         series in one range query; Prometheus allows {MAX_POINTS_PER_SERIES}"
    )]
    TooManyPoints {
        /// The gate.
        gate: String,
        /// Points needed.
        points: u64,
    },
}

/// Builder for [`MetricGate`]; every setting is validated in
/// [`build`](MetricGateBuilder::build).
#[derive(Debug, Clone)]
pub struct MetricGateBuilder {
    name: String,
    prometheus_url: String,
    timeout: Duration,
    client: Option<reqwest::Client>,
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

impl MetricGateBuilder {
    /// Names the gate (default `metric`); evidence and facts are reported under it.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// The condition a successful measurement meets.
    pub fn success_condition(mut self, condition: Condition) -> Self {
        self.success = Some(condition);
        self
    }
    /// The condition a failed measurement meets.
    pub fn failure_condition(mut self, condition: Condition) -> Self {
        self.failure = Some(condition);
        self
    }
    /// How each measurement reads the query (default [`QueryMode::Instant`]).
    pub fn mode(mut self, mode: QueryMode) -> Self {
        self.mode = mode;
        self
    }
    /// Wait this long after the phase starts before the first measurement (default none).
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }
    /// Time between measurements (default one minute; at least [`MIN_INTERVAL`] when `count`
    /// is more than one).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
    /// Measurements to take (default 1).
    pub fn count(mut self, count: u32) -> Self {
        self.count = count;
        self
    }
    /// Failed measurements tolerated (default 0); one more fails the gate.
    pub fn failure_limit(mut self, limit: u32) -> Self {
        self.failure_limit = limit;
        self
    }
    /// Inconclusive measurements tolerated (default 0); one more makes the gate inconclusive.
    pub fn inconclusive_limit(mut self, limit: u32) -> Self {
        self.inconclusive_limit = limit;
        self
    }
    /// Errors in a row tolerated (default 4); one more fails the gate.
    pub fn consecutive_error_limit(mut self, limit: u32) -> Self {
        self.consecutive_error_limit = limit;
        self
    }
    /// Limits each request to Prometheus (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Sends requests with `client` (TLS roots, proxies, an `Authorization` header).
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<MetricGate, MetricConfigError> {
        let name = GateName::new(self.name)?;
        let gate = name.as_str().to_owned();
        let prometheus = configure_prometheus(&self.prometheus_url, self.timeout, self.client)
            .map_err(|source| MetricConfigError::Prometheus {
                gate: gate.clone(),
                source,
            })?;
        if self.query.trim().is_empty() {
            return Err(MetricConfigError::EmptyQuery { gate });
        }
        if self.success.is_none() && self.failure.is_none() {
            return Err(MetricConfigError::NoCondition { gate });
        }
        for (field, c) in [
            ("success_condition", self.success),
            ("failure_condition", self.failure),
        ] {
            if let Some(c) = c.filter(|c| !c.threshold.is_finite()) {
                return Err(MetricConfigError::InvalidThreshold {
                    gate,
                    field,
                    value: c.threshold,
                });
            }
        }
        if self.count == 0 {
            return Err(MetricConfigError::ZeroCount { gate });
        }
        let duration_error = |field, value, problem: &str| MetricConfigError::InvalidDuration {
            gate: gate.clone(),
            field,
            value,
            problem: problem.to_owned(),
        };
        if self.count > 1 && self.interval < MIN_INTERVAL {
            return Err(duration_error(
                "interval",
                self.interval,
                "measurements must be at least one second apart",
            ));
        }
        let points = match self.mode {
            QueryMode::Instant => u64::from(self.count),
            QueryMode::Range { window, step } => {
                if step < MIN_INTERVAL {
                    return Err(duration_error(
                        "step",
                        step,
                        "the step must be at least one second",
                    ));
                }
                if window.is_zero() || window.as_millis() % step.as_millis() != 0 {
                    return Err(duration_error(
                        "window",
                        window,
                        &format!("the window must be a positive multiple of the step {step:?}"),
                    ));
                }
                if self.count > 1 && self.interval.as_millis() % step.as_millis() != 0 {
                    return Err(duration_error(
                        "interval",
                        self.interval,
                        &format!(
                            "with range measurements the interval must be a multiple of the \
                             step {step:?}"
                        ),
                    ));
                }
                let span = u128::from(self.count - 1)
                    .saturating_mul(self.interval.as_millis())
                    .saturating_add(window.as_millis());
                u64::try_from(span / step.as_millis())
                    .unwrap_or(u64::MAX)
                    .saturating_add(1)
            }
        };
        if points > MAX_POINTS_PER_SERIES {
            return Err(MetricConfigError::TooManyPoints { gate, points });
        }
        for (field, limit, what) in [
            ("failure_limit", self.failure_limit, "failed"),
            (
                "inconclusive_limit",
                self.inconclusive_limit,
                "inconclusive",
            ),
        ] {
            if limit >= self.count {
                return Err(MetricConfigError::LimitNotBelowCount {
                    gate,
                    field,
                    limit,
                    count: self.count,
                    what,
                });
            }
        }
        Ok(MetricGate {
            name,
            prometheus,
            query: self.query,
            mode: self.mode,
            success: self.success,
            failure: self.failure,
            initial_delay: self.initial_delay,
            interval: self.interval,
            count: self.count,
            failure_limit: self.failure_limit,
            inconclusive_limit: self.inconclusive_limit,
            consecutive_error_limit: self.consecutive_error_limit,
        })
    }
}

/// Measures a Prometheus query on a schedule and judges each measurement against typed
/// thresholds, as an Argo Rollouts `AnalysisRun` does. See the [module documentation](self)
/// for the schedule, the judgement and the errors.
///
/// Evidence names the Prometheus URL, the query and the request, lists every measurement (its
/// instant, phase, reason and values), the tallies and the decision, and attaches the digest of
/// the raw response. Facts: `status`, `measured`, `successful`, `failed`, `inconclusive`,
/// `consecutive_errors`.
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

impl MetricGate {
    /// A gate measuring `query` on the Prometheus server at `prometheus_url`. Set at least one
    /// condition.
    pub fn builder(
        prometheus_url: impl Into<String>,
        query: impl Into<String>,
    ) -> MetricGateBuilder {
        MetricGateBuilder {
            name: "metric".to_owned(),
            prometheus_url: prometheus_url.into(),
            timeout: DEFAULT_TIMEOUT,
            client: None,
            query: query.into(),
            mode: QueryMode::Instant,
            success: None,
            failure: None,
            initial_delay: Duration::ZERO,
            interval: Duration::from_secs(60),
            count: 1,
            failure_limit: 0,
            inconclusive_limit: 0,
            consecutive_error_limit: 4,
        }
    }

    /// The PromQL query.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The Prometheus server.
    pub fn prometheus(&self) -> &Prometheus {
        &self.prometheus
    }

    /// The success condition, if set.
    pub fn success_condition(&self) -> Option<Condition> {
        self.success
    }

    /// The failure condition, if set.
    pub fn failure_condition(&self) -> Option<Condition> {
        self.failure
    }

    /// Judges one measurement made of `values` (one per series, or every point of a window):
    /// the worst value counts; no values is no data, inconclusive.
    pub fn judge(&self, values: &[f64]) -> MeasurementPhase {
        let readings: Vec<Reading> = values
            .iter()
            .map(|v| Reading {
                labels: BTreeMap::new(),
                at: DateTime::<Utc>::UNIX_EPOCH,
                value: *v,
            })
            .collect();
        self.judge_readings(&readings).phase
    }

    /// Tallies measurements in order, stopping at the first that passes a limit; successful
    /// once `count` are counted without.
    pub fn assess(&self, measurements: &[MeasurementPhase]) -> Assessment {
        let mut tallies = Tallies::default();
        for phase in measurements.iter().take(self.count as usize) {
            tallies.measured += 1;
            match phase {
                MeasurementPhase::Successful => tallies.successful += 1,
                MeasurementPhase::Failed => tallies.failed += 1,
                MeasurementPhase::Inconclusive => tallies.inconclusive += 1,
            }
            if tallies.failed > self.failure_limit {
                return Assessment {
                    status: AnalysisStatus::Failed,
                    tallies,
                };
            }
            if tallies.inconclusive > self.inconclusive_limit {
                return Assessment {
                    status: AnalysisStatus::Inconclusive,
                    tallies,
                };
            }
        }
        let status = if tallies.measured >= self.count {
            AnalysisStatus::Successful
        } else {
            AnalysisStatus::Running
        };
        Assessment { status, tallies }
    }

    /// Argo's judgement of one value.
    fn judge_value(&self, value: f64) -> MeasurementPhase {
        if value.is_nan() {
            return MeasurementPhase::Inconclusive;
        }
        let success = self.success.map(|c| c.holds(value));
        let failure = self.failure.map(|c| c.holds(value));
        let (success, failure) = match (success, failure) {
            (Some(s), Some(f)) => (s, f),
            (Some(s), None) => (s, !s),
            (None, Some(f)) => (!f, f),
            (None, None) => (true, false),
        };
        if failure {
            MeasurementPhase::Failed
        } else if success {
            MeasurementPhase::Successful
        } else {
            MeasurementPhase::Inconclusive
        }
    }

    fn judge_readings(&self, readings: &[Reading]) -> Judged {
        if readings.is_empty() {
            return Judged {
                phase: MeasurementPhase::Inconclusive,
                reason: "no data: the query returned nothing".to_owned(),
                decisive: None,
            };
        }
        let phases: Vec<MeasurementPhase> =
            readings.iter().map(|r| self.judge_value(r.value)).collect();
        let worst = phases
            .iter()
            .copied()
            .max()
            .unwrap_or(MeasurementPhase::Inconclusive);
        let decisive = phases.iter().position(|p| *p == worst);
        let reading = decisive.and_then(|i| readings.get(i));
        let ranged = matches!(self.mode, QueryMode::Range { .. });
        let what = |r: &Reading| {
            let at = if ranged {
                format!(" at {}", rfc3339(r.at))
            } else {
                String::new()
            };
            format!("{}{}{at}", fmt_num(r.value), fmt_labels(&r.labels))
        };
        let conditions = |s: Option<Condition>, f: Option<Condition>| match (s, f) {
            (Some(s), Some(f)) => format!("{s} nor {f}"),
            (Some(c), None) | (None, Some(c)) => c.to_string(),
            (None, None) => "no condition".to_owned(),
        };
        let reason = match (worst, reading) {
            (MeasurementPhase::Successful, _) => match (readings, self.success) {
                ([one], Some(s)) => format!("{} meets {s}", what(one)),
                (many, Some(s)) => format!("all {} values meet {s}", many.len()),
                ([one], None) => format!(
                    "{} does not meet the failure condition {}",
                    what(one),
                    conditions(None, self.failure)
                ),
                (many, None) => format!(
                    "none of {} values meets the failure condition {}",
                    many.len(),
                    conditions(None, self.failure)
                ),
            },
            (MeasurementPhase::Failed, Some(r)) => match self.failure {
                Some(f) if f.holds(r.value) => {
                    format!("{} meets the failure condition {f}", what(r))
                }
                _ => format!(
                    "{} does not meet the success condition {}",
                    what(r),
                    conditions(self.success, None)
                ),
            },
            (MeasurementPhase::Inconclusive, Some(r)) if r.value.is_nan() => format!(
                "{}: no value (NaN, such as 0/0 when there was no traffic)",
                what(r)
            ),
            (MeasurementPhase::Inconclusive, Some(r)) => format!(
                "{} meets neither {}",
                what(r),
                conditions(self.success, self.failure)
            ),
            (_, None) => "no reading".to_owned(),
        };
        Judged {
            phase: worst,
            reason,
            decisive: (worst != MeasurementPhase::Successful)
                .then_some(decisive)
                .flatten(),
        }
    }

    fn schedule(&self, started: DateTime<Utc>) -> Schedule {
        Schedule {
            first_ms: add(started, self.initial_delay).timestamp_millis(),
            interval_ms: millis(self.interval).max(1),
            count: self.count,
        }
    }

    /// Window and step in milliseconds (zero window for instant measurements).
    fn window_step_ms(&self) -> (i64, i64) {
        match self.mode {
            QueryMode::Instant => (0, millis(self.interval).max(1)),
            QueryMode::Range { window, step } => (millis(window), millis(step).max(1)),
        }
    }

    /// One request covering the first `due` measurements.
    async fn fetch(
        &self,
        schedule: &Schedule,
        due: u32,
    ) -> Result<(QueryResponse, &'static str), PrometheusError> {
        let first = schedule.first_ms;
        let last = schedule.at_ms(due.saturating_sub(1));
        let (window, step) = self.window_step_ms();
        if due == 1 && self.mode == QueryMode::Instant {
            let r = self.prometheus.instant(&self.query, time_of(first)).await?;
            return Ok((r, "query"));
        }
        let step = Duration::from_millis(u64::try_from(step).unwrap_or(1));
        let r = self
            .prometheus
            .range(
                &self.query,
                time_of(first.saturating_sub(window)),
                time_of(last),
                step,
            )
            .await?;
        Ok((r, "query_range"))
    }

    /// The readings of each due measurement.
    fn readings(
        &self,
        result: &QueryResult,
        schedule: &Schedule,
        due: u32,
    ) -> Result<Vec<Vec<Reading>>, String> {
        let series: Vec<Series> = match result {
            QueryResult::Scalar(p) => vec![Series {
                labels: BTreeMap::new(),
                points: vec![*p],
            }],
            QueryResult::Vector(s) => s.clone(),
            QueryResult::Matrix(s) if due > 1 || self.mode != QueryMode::Instant => s.clone(),
            QueryResult::Matrix(_) => {
                return Err(
                    "the query returns a range vector; an instant measurement needs a \
                            number per series (wrap it in rate(), avg_over_time() or similar)"
                        .to_owned(),
                )
            }
            QueryResult::String { value, .. } => {
                return Err(format!(
                    "the query returns the string {value:?}, not a number"
                ))
            }
        };
        let (window, _) = self.window_step_ms();
        Ok((0..due)
            .map(|k| {
                let to = schedule.at_ms(k);
                let from = to.saturating_sub(window);
                let mut out = Vec::new();
                for s in &series {
                    for p in &s.points {
                        let at = p.at.timestamp_millis();
                        if at >= from && at <= to {
                            out.push(Reading {
                                labels: s.labels.clone(),
                                at: p.at,
                                value: p.value,
                            });
                        }
                    }
                }
                out
            })
            .collect())
    }

    fn record<'s>(&self, ctx: &'s GateContext<'_>) -> Option<&'s GateRecord> {
        ctx.state
            .stage(ctx.stage.as_str())
            .phase(ctx.phase)
            .gates
            .get(ctx.gate)
    }

    fn config_json(&self) -> Value {
        let mode = match self.mode {
            QueryMode::Instant => json!({ "instant": {} }),
            QueryMode::Range { window, step } => json!({
                "range": { "window_seconds": window.as_secs_f64(), "step_seconds": step.as_secs_f64() }
            }),
        };
        json!({
            "prometheus": self.prometheus.url().as_str(),
            "query": self.query,
            "mode": mode,
            "success_condition": self.success.map(|c| c.to_string()),
            "failure_condition": self.failure.map(|c| c.to_string()),
            "initial_delay_seconds": self.initial_delay.as_secs_f64(),
            "interval_seconds": self.interval.as_secs_f64(),
            "count": self.count,
            "failure_limit": self.failure_limit,
            "inconclusive_limit": self.inconclusive_limit,
            "consecutive_error_limit": self.consecutive_error_limit,
        })
    }

    /// An error from this evaluation: past the consecutive-error limit a fail verdict, else the
    /// error itself.
    fn after_error(
        &self,
        ctx: &GateContext<'_>,
        now: DateTime<Utc>,
        error: GateError,
    ) -> Result<Verdict, GateError> {
        let before = self
            .record(ctx)
            .filter(|r| matches!(r.outcome, Outcome::Error { .. }))
            .map_or(0, |r| r.consecutive_errors);
        let errors = before.saturating_add(1);
        if errors <= self.consecutive_error_limit {
            return Err(error);
        }
        let report = error.report();
        let summary = format!(
            "{}: {errors} measurement errors in a row, more than the limit {}; last: {report}",
            self.name, self.consecutive_error_limit
        );
        let evidence = Evidence::new(self.name.as_str(), now, summary)
            .with_data(json!({
                "config": self.config_json(),
                "status": "error",
                "error": report,
                "consecutive_errors": errors,
            }))
            .with_fact("status", "error")
            .with_fact("consecutive_errors", errors.to_string());
        Ok(Verdict::Fail(evidence))
    }
}

fn readings_json(readings: &[Reading], ranged: bool) -> Value {
    if !ranged {
        return readings
            .iter()
            .map(|r| json!({ "labels": r.labels, "value": num(r.value) }))
            .collect();
    }
    // A window holds many points: per series their count, NaNs, minimum and maximum.
    let mut by_series: BTreeMap<String, (&BTreeMap<String, String>, Vec<f64>)> = BTreeMap::new();
    for r in readings {
        by_series
            .entry(fmt_labels(&r.labels))
            .or_insert_with(|| (&r.labels, Vec::new()))
            .1
            .push(r.value);
    }
    by_series
        .values()
        .map(|(labels, values)| {
            let numbers: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
            let min = numbers.iter().copied().reduce(f64::min);
            let max = numbers.iter().copied().reduce(f64::max);
            json!({
                "labels": labels,
                "points": values.len(),
                "nan_points": values.len() - numbers.len(),
                "min": min.map(num),
                "max": max.map(num),
            })
        })
        .collect()
}

/// The values of a measurement in a few words (`0.002`, `3 values from 0.001 to 0.004`).
fn describe(readings: &[Reading]) -> String {
    match readings {
        [] => "no data".to_owned(),
        [one] => format!("{}{}", fmt_num(one.value), fmt_labels(&one.labels)),
        many => {
            let numbers: Vec<f64> = many
                .iter()
                .map(|r| r.value)
                .filter(|v| !v.is_nan())
                .collect();
            match (
                numbers.iter().copied().reduce(f64::min),
                numbers.iter().copied().reduce(f64::max),
            ) {
                (Some(lo), Some(hi)) => format!(
                    "{} values from {} to {}",
                    many.len(),
                    fmt_num(lo),
                    fmt_num(hi)
                ),
                _ => format!("{} NaN values", many.len()),
            }
        }
    }
}

#[async_trait]
impl Gate for MetricGate {
    fn name(&self) -> &str {
        self.name.as_str()
    }

    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let now = ctx.now();
        let Some(started) = ctx
            .state
            .stage(ctx.stage.as_str())
            .phase(ctx.phase)
            .started_at
        else {
            return Err(GateError::Misconfigured(format!(
                "metric gate `{}`: no start is recorded for the {} phase of stage {}; the \
                 analysis schedule counts from it (evaluate the gate in a pipeline, or give \
                 the probe a state)",
                self.name, ctx.phase, ctx.stage
            )));
        };
        let schedule = self.schedule(started);
        let due = schedule.due(now.timestamp_millis());
        let mut data = json!({
            "config": self.config_json(),
            "phase_started_at": rfc3339(started),
            "first_measurement_at": rfc3339(time_of(schedule.first_ms)),
        });
        let set = |data: &mut Value, key: &str, value: Value| {
            if let Some(map) = data.as_object_mut() {
                map.insert(key.to_owned(), value);
            }
        };
        let facts = |ev: Evidence, status: AnalysisStatus, t: &Tallies| {
            ev.with_fact("status", status.as_str())
                .with_fact("measured", t.measured.to_string())
                .with_fact("successful", t.successful.to_string())
                .with_fact("failed", t.failed.to_string())
                .with_fact("inconclusive", t.inconclusive.to_string())
                .with_fact("consecutive_errors", "0")
        };

        if due == 0 {
            let first = time_of(schedule.first_ms);
            let retry_after = elapsed(now, first).max(Duration::from_millis(1));
            set(&mut data, "status", json!("running"));
            set(&mut data, "measurements", json!([]));
            set(&mut data, "next_measurement_at", json!(rfc3339(first)));
            let summary = format!(
                "{}: initial delay, first of {} measurements at {}",
                self.name,
                self.count,
                rfc3339(first)
            );
            let ev = Evidence::new(self.name.as_str(), now, summary).with_data(data);
            return Ok(Verdict::Pending {
                evidence: facts(ev, AnalysisStatus::Running, &Tallies::default()),
                retry_after,
            });
        }

        let (response, endpoint) = match self.fetch(&schedule, due).await {
            Ok(r) => r,
            Err(e) => return self.after_error(ctx, now, e.into()),
        };
        let per_measurement = match self.readings(&response.result, &schedule, due) {
            Ok(r) => r,
            Err(problem) => {
                let e = GateError::Misconfigured(format!(
                    "metric gate `{}`: {problem} (query `{}`, {})",
                    self.name, self.query, response.url
                ));
                return self.after_error(ctx, now, e);
            }
        };
        let judged: Vec<Judged> = per_measurement
            .iter()
            .map(|r| self.judge_readings(r))
            .collect();
        let phases: Vec<MeasurementPhase> = judged.iter().map(|j| j.phase).collect();
        let Assessment { status, tallies } = self.assess(&phases);
        let counted = tallies.measured as usize;
        let ranged = matches!(self.mode, QueryMode::Range { .. });
        let measurements: Vec<Value> = per_measurement
            .iter()
            .zip(&judged)
            .take(counted)
            .enumerate()
            .map(|(k, (readings, j))| {
                let decisive = j.decisive.and_then(|i| readings.get(i)).map(
                    |r| json!({ "labels": r.labels, "at": rfc3339(r.at), "value": num(r.value) }),
                );
                json!({
                    "index": k + 1,
                    "at": rfc3339(time_of(schedule.at_ms(k as u32))),
                    "phase": j.phase.as_str(),
                    "reason": j.reason,
                    "values": readings_json(readings, ranged),
                    "decisive": decisive,
                })
            })
            .collect();
        set(&mut data, "request", json!(response.url));
        set(&mut data, "endpoint", json!(endpoint));
        set(
            &mut data,
            "result_type",
            json!(response.result.result_type()),
        );
        set(&mut data, "warnings", json!(response.warnings));
        set(&mut data, "measurements", json!(measurements));
        set(
            &mut data,
            "tallies",
            json!({
                "measured": tallies.measured,
                "successful": tallies.successful,
                "failed": tallies.failed,
                "inconclusive": tallies.inconclusive,
                "consecutive_errors": 0,
            }),
        );
        set(&mut data, "status", json!(status.as_str()));

        let last = counted.saturating_sub(1);
        let latest = per_measurement
            .get(last)
            .map(|r| describe(r))
            .unwrap_or_default();
        let reason = judged
            .get(last)
            .map(|j| j.reason.clone())
            .unwrap_or_default();
        let n = self.name.as_str();
        let count = self.count;
        let summary = match status {
            AnalysisStatus::Successful => format!(
                "{n}: {} of {count} measurements successful, {} failed, {} inconclusive; \
                 latest {latest}",
                tallies.successful, tallies.failed, tallies.inconclusive
            ),
            AnalysisStatus::Failed => format!(
                "{n}: measurement {} of {count} failed: {reason} ({} failed, limit {})",
                tallies.measured, tallies.failed, self.failure_limit
            ),
            AnalysisStatus::Inconclusive => format!(
                "{n}: measurement {} of {count} inconclusive: {reason} ({} inconclusive, \
                 limit {})",
                tallies.measured, tallies.inconclusive, self.inconclusive_limit
            ),
            AnalysisStatus::Running => format!(
                "{n}: {} of {count} measurements taken ({} successful, {} failed, {} \
                 inconclusive), next at {}; latest {latest}",
                tallies.measured,
                tallies.successful,
                tallies.failed,
                tallies.inconclusive,
                rfc3339(time_of(schedule.at_ms(due)))
            ),
        };
        let mut evidence = Evidence::new(n, now, summary);
        if status == AnalysisStatus::Running {
            set(
                &mut data,
                "next_measurement_at",
                json!(rfc3339(time_of(schedule.at_ms(due)))),
            );
        }
        evidence = evidence
            .with_data(data)
            .with_attachment(response.url.clone(), &response.body);
        let evidence = facts(evidence, status, &tallies);
        Ok(match status {
            AnalysisStatus::Successful => Verdict::Pass(evidence),
            AnalysisStatus::Failed => Verdict::Fail(evidence),
            AnalysisStatus::Inconclusive => Verdict::Inconclusive(evidence),
            AnalysisStatus::Running => {
                let next = time_of(schedule.at_ms(due));
                Verdict::Pending {
                    evidence,
                    retry_after: elapsed(now, next).max(Duration::from_millis(1)),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use promotion_core::testing::GateProbe;
    use promotion_core::{Actor, Event, EventBody, ReleaseState, StageName};

    const URL: &str = "http://127.0.0.1:9090";

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn builder() -> MetricGateBuilder {
        MetricGate::builder(URL, "error_ratio").name("error-rate")
    }

    fn reading(labels: &[(&str, &str)], at: DateTime<Utc>, value: f64) -> Reading {
        Reading {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            at,
            value,
        }
    }

    /// A state in which stage `test` started (entry phase) at `at`.
    fn started(at: DateTime<Utc>) -> ReleaseState {
        let ev = Event {
            at,
            actor: Actor::Engine,
            request: None,
            body: EventBody::StageStarted {
                stage: StageName::new("test").unwrap(),
            },
        };
        ReleaseState::replay([&ev])
    }

    #[test]
    fn conditions_parse_display_and_compare() {
        let c: Condition = "result < 0.01".parse().unwrap();
        assert_eq!(c, Condition::lt(0.01));
        assert_eq!(c.to_string(), "result < 0.01");
        assert_eq!(
            "  >=1e-3 ".parse::<Condition>().unwrap(),
            Condition::ge(0.001)
        );
        assert_eq!(
            "result<=5".parse::<Condition>().unwrap(),
            Condition::le(5.0)
        );
        assert_eq!(
            "result == 1".parse::<Condition>().unwrap(),
            Condition::eq(1.0)
        );
        assert_eq!(
            "result != 0".parse::<Condition>().unwrap(),
            Condition::ne(0.0)
        );
        assert_eq!(
            "result > -2.5".parse::<Condition>().unwrap(),
            Condition::gt(-2.5)
        );
        for (text, problem) in [
            ("result ~ 1", "no comparison operator"),
            ("result <", "no threshold"),
            ("result < abc", "`abc` is not a number"),
            ("result < NaN", "finite"),
            ("result < inf", "finite"),
        ] {
            let err = text.parse::<Condition>().unwrap_err();
            assert_eq!(err.text, text);
            assert!(err.problem.contains(problem), "{text}: {err}");
            assert!(err.to_string().contains("expected such as `result < 0.01`"));
        }
        let v = 0.5;
        assert!(Condition::lt(1.0).holds(v) && !Condition::lt(0.5).holds(v));
        assert!(Condition::le(0.5).holds(v) && !Condition::le(0.4).holds(v));
        assert!(Condition::gt(0.4).holds(v) && !Condition::gt(0.5).holds(v));
        assert!(Condition::ge(0.5).holds(v) && !Condition::ge(0.6).holds(v));
        assert!(Condition::eq(0.5).holds(v) && !Condition::eq(0.6).holds(v));
        assert!(Condition::ne(0.6).holds(v) && !Condition::ne(0.5).holds(v));
        // NaN meets nothing, not even `!=`; infinities compare as numbers.
        for c in [Condition::lt(1.0), Condition::ne(1.0), Condition::ge(-1.0)] {
            assert!(!c.holds(f64::NAN), "{c}");
        }
        assert!(Condition::gt(1e300).holds(f64::INFINITY));
        assert!(!Condition::lt(1e300).holds(f64::INFINITY));
    }

    #[test]
    fn each_value_is_judged_as_argo_does() {
        use MeasurementPhase::*;
        let success_only = builder()
            .success_condition(Condition::lt(0.01))
            .build()
            .unwrap();
        assert_eq!(success_only.judge(&[0.005]), Successful);
        assert_eq!(success_only.judge(&[0.02]), Failed);

        let failure_only = builder()
            .failure_condition(Condition::gt(0.05))
            .build()
            .unwrap();
        assert_eq!(failure_only.judge(&[0.02]), Successful);
        assert_eq!(failure_only.judge(&[0.07]), Failed);

        let both = builder()
            .success_condition(Condition::lt(0.01))
            .failure_condition(Condition::gt(0.05))
            .build()
            .unwrap();
        assert_eq!(both.judge(&[0.005]), Successful);
        assert_eq!(both.judge(&[0.07]), Failed);
        assert_eq!(
            both.judge(&[0.03]),
            Inconclusive,
            "neither condition is met"
        );

        // Both met: the failure condition wins.
        let overlapping = builder()
            .success_condition(Condition::lt(1.0))
            .failure_condition(Condition::gt(0.5))
            .build()
            .unwrap();
        assert_eq!(overlapping.judge(&[0.7]), Failed);

        // No data and no value are inconclusive under any conditions.
        for g in [&success_only, &failure_only, &both] {
            assert_eq!(g.judge(&[]), Inconclusive);
            assert_eq!(g.judge(&[f64::NAN]), Inconclusive);
        }
        // The worst value of a measurement counts.
        assert_eq!(both.judge(&[0.001, 0.03]), Inconclusive);
        assert_eq!(both.judge(&[0.001, f64::NAN, 0.09]), Failed);
        assert_eq!(both.judge(&[0.001, 0.002]), Successful);
        // Infinities are numbers.
        assert_eq!(both.judge(&[f64::INFINITY]), Failed);
        assert_eq!(success_only.judge(&[f64::NEG_INFINITY]), Successful);
    }

    #[test]
    fn the_reason_names_the_value_the_series_and_the_condition() {
        let g = builder()
            .success_condition(Condition::lt(0.01))
            .failure_condition(Condition::gt(0.05))
            .build()
            .unwrap();
        let at = t("2026-11-26T09:00:00Z");
        let j = g.judge_readings(&[
            reading(&[("pod", "a")], at, 0.001),
            reading(&[("pod", "b")], at, 0.08),
        ]);
        assert_eq!(j.phase, MeasurementPhase::Failed);
        assert_eq!(j.decisive, Some(1));
        assert_eq!(
            j.reason,
            "0.08{pod=\"b\"} meets the failure condition result > 0.05"
        );
        let j = g.judge_readings(&[reading(&[], at, 0.03)]);
        assert_eq!(
            j.reason,
            "0.03 meets neither result < 0.01 nor result > 0.05"
        );
        let j = g.judge_readings(&[reading(&[("track", "canary")], at, f64::NAN)]);
        assert_eq!(
            j.reason,
            "NaN{track=\"canary\"}: no value (NaN, such as 0/0 when there was no traffic)"
        );
        let j = g.judge_readings(&[]);
        assert_eq!(j.reason, "no data: the query returned nothing");
        assert_eq!(j.decisive, None);
        let j = g.judge_readings(&[reading(&[], at, 0.001), reading(&[], at, 0.002)]);
        assert_eq!(j.reason, "all 2 values meet result < 0.01");
        assert_eq!(j.decisive, None);

        let success_only = builder()
            .success_condition(Condition::lt(0.01))
            .build()
            .unwrap();
        let j = success_only.judge_readings(&[reading(&[], at, 0.02)]);
        assert_eq!(
            j.reason,
            "0.02 does not meet the success condition result < 0.01"
        );
        let failure_only = builder()
            .failure_condition(Condition::gt(0.05))
            .build()
            .unwrap();
        let j = failure_only.judge_readings(&[reading(&[], at, 0.02)]);
        assert_eq!(
            j.reason,
            "0.02 does not meet the failure condition result > 0.05"
        );
        // In range mode the reason says when.
        let ranged = builder()
            .success_condition(Condition::lt(0.01))
            .mode(QueryMode::Range {
                window: Duration::from_secs(60),
                step: Duration::from_secs(10),
            })
            .build()
            .unwrap();
        let j = ranged.judge_readings(&[
            reading(&[], at, 0.001),
            reading(&[], t("2026-11-26T09:00:10Z"), 0.5),
        ]);
        assert_eq!(
            j.reason,
            "0.5 at 2026-11-26T09:00:10Z does not meet the success condition result < 0.01"
        );
    }

    #[test]
    fn tallies_stop_at_the_first_measurement_past_a_limit() {
        use MeasurementPhase::*;
        let g = builder()
            .success_condition(Condition::lt(0.01))
            .count(5)
            .interval(Duration::from_secs(60))
            .failure_limit(1)
            .inconclusive_limit(1)
            .build()
            .unwrap();
        let a = g.assess(&[]);
        assert_eq!(a.status, AnalysisStatus::Running);
        assert_eq!(a.tallies, Tallies::default());
        let a = g.assess(&[Successful, Failed, Inconclusive]);
        assert_eq!(a.status, AnalysisStatus::Running);
        assert_eq!(
            a.tallies,
            Tallies {
                measured: 3,
                successful: 1,
                failed: 1,
                inconclusive: 1
            }
        );
        // The second failure decides; what comes after it is not counted.
        let a = g.assess(&[Failed, Successful, Failed, Inconclusive, Inconclusive]);
        assert_eq!(a.status, AnalysisStatus::Failed);
        assert_eq!(a.tallies.measured, 3);
        assert_eq!(a.tallies.inconclusive, 0);
        // Whichever limit is passed first decides.
        let a = g.assess(&[Inconclusive, Inconclusive, Failed, Failed]);
        assert_eq!(a.status, AnalysisStatus::Inconclusive);
        assert_eq!(a.tallies.measured, 2);
        // Within the limits to the end: successful, even with a failure and an inconclusive.
        let a = g.assess(&[Successful, Failed, Inconclusive, Successful, Successful]);
        assert_eq!(a.status, AnalysisStatus::Successful);
        assert_eq!(a.tallies.successful, 3);
        // Measurements past `count` are ignored.
        let a = g.assess(&[Successful; 7]);
        assert_eq!(a.tallies.measured, 5);
        assert_eq!(a.status, AnalysisStatus::Successful);

        // With the default limits of zero, one bad measurement decides.
        let strict = builder()
            .success_condition(Condition::lt(0.01))
            .count(3)
            .build()
            .unwrap();
        assert_eq!(
            strict.assess(&[Successful, Failed]).status,
            AnalysisStatus::Failed
        );
        assert_eq!(
            strict.assess(&[Inconclusive]).status,
            AnalysisStatus::Inconclusive
        );
    }

    #[test]
    fn the_schedule_counts_due_instants_in_milliseconds() {
        let s = Schedule {
            first_ms: 10_000,
            interval_ms: 1_000,
            count: 3,
        };
        assert_eq!(s.due(9_999), 0);
        assert_eq!(s.due(10_000), 1);
        assert_eq!(s.due(10_999), 1);
        assert_eq!(s.due(11_000), 2);
        assert_eq!(s.due(12_000), 3);
        assert_eq!(s.due(1_000_000), 3);
        assert_eq!(s.at_ms(0), 10_000);
        assert_eq!(s.at_ms(2), 12_000);
        let once = Schedule {
            first_ms: 10_000,
            interval_ms: 60_000,
            count: 1,
        };
        assert_eq!(once.due(9_000), 0);
        assert_eq!(once.due(500_000), 1);

        // The schedule counts from the phase start plus the initial delay, in whole ms.
        let g = builder()
            .success_condition(Condition::lt(0.01))
            .initial_delay(Duration::from_millis(1500))
            .interval(Duration::from_secs(2))
            .count(4)
            .build()
            .unwrap();
        let s = g.schedule(t("2026-11-26T09:00:00.000900Z"));
        assert_eq!(
            time_of(s.first_ms),
            t("2026-11-26T09:00:01.500Z"),
            "sub-millisecond start truncated"
        );
        assert_eq!(time_of(s.at_ms(3)), t("2026-11-26T09:00:07.500Z"));
    }

    #[test]
    fn times_and_numbers_are_written_as_prometheus_reads_them() {
        assert_eq!(fmt_num(f64::NAN), "NaN");
        assert_eq!(fmt_num(f64::INFINITY), "+Inf");
        assert_eq!(fmt_num(f64::NEG_INFINITY), "-Inf");
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(num(f64::NAN), json!("NaN"));
        assert_eq!(num(2.0), json!(2.0));
        let mut labels = BTreeMap::new();
        assert_eq!(fmt_labels(&labels), "");
        labels.insert("track".to_owned(), "canary".to_owned());
        labels.insert("job".to_owned(), "a\"b".to_owned());
        assert_eq!(fmt_labels(&labels), r#"{job="a\"b",track="canary"}"#);
    }

    #[test]
    fn a_range_answer_splits_into_the_scheduled_measurements() {
        let g = builder()
            .success_condition(Condition::lt(0.01))
            .count(3)
            .interval(Duration::from_secs(10))
            .build()
            .unwrap();
        let s = Schedule {
            first_ms: 1_795_683_600_000,
            interval_ms: 10_000,
            count: 3,
        };
        let p = |ms: i64, value: f64| Point {
            at: time_of(ms),
            value,
        };
        // Series a has all three instants, series b misses the second.
        let result = QueryResult::Matrix(vec![
            Series {
                labels: [("pod".to_owned(), "a".to_owned())].into(),
                points: vec![
                    p(s.at_ms(0), 0.001),
                    p(s.at_ms(1), 0.002),
                    p(s.at_ms(2), 0.003),
                ],
            },
            Series {
                labels: [("pod".to_owned(), "b".to_owned())].into(),
                points: vec![p(s.at_ms(0), 0.004), p(s.at_ms(2), 0.005)],
            },
        ]);
        let m = g.readings(&result, &s, 3).unwrap();
        let values: Vec<Vec<f64>> = m
            .iter()
            .map(|r| r.iter().map(|x| x.value).collect())
            .collect();
        assert_eq!(
            values,
            vec![vec![0.001, 0.004], vec![0.002], vec![0.003, 0.005]]
        );
        // Only the due measurements are read.
        assert_eq!(g.readings(&result, &s, 2).unwrap().len(), 2);
        // A series that has vanished leaves its measurement empty: no data.
        let empty = QueryResult::Matrix(vec![]);
        assert!(g.readings(&empty, &s, 2).unwrap().iter().all(Vec::is_empty));

        // Range measurements take every point of their window, the instant included.
        let ranged = builder()
            .success_condition(Condition::lt(0.01))
            .count(2)
            .interval(Duration::from_secs(10))
            .mode(QueryMode::Range {
                window: Duration::from_secs(10),
                step: Duration::from_secs(5),
            })
            .build()
            .unwrap();
        let grid: Vec<Point> = (-2..=2)
            .map(|i| p(s.first_ms + i * 5_000, i as f64))
            .collect();
        let result = QueryResult::Matrix(vec![Series {
            labels: BTreeMap::new(),
            points: grid,
        }]);
        let m = ranged.readings(&result, &s, 2).unwrap();
        let values: Vec<Vec<f64>> = m
            .iter()
            .map(|r| r.iter().map(|x| x.value).collect())
            .collect();
        assert_eq!(values, vec![vec![-2.0, -1.0, 0.0], vec![0.0, 1.0, 2.0]]);
    }

    #[test]
    fn scalars_count_and_strings_or_range_vectors_are_refused() {
        let g = builder()
            .success_condition(Condition::lt(0.01))
            .build()
            .unwrap();
        let s = Schedule {
            first_ms: 1_795_683_600_000,
            interval_ms: 60_000,
            count: 1,
        };
        let scalar = QueryResult::Scalar(Point {
            at: time_of(s.first_ms),
            value: 0.5,
        });
        let m = g.readings(&scalar, &s, 1).unwrap();
        assert_eq!(m[0].len(), 1);
        assert_eq!(m[0][0].value, 0.5);
        let string = QueryResult::String {
            at: time_of(s.first_ms),
            value: "abc".into(),
        };
        assert!(g
            .readings(&string, &s, 1)
            .unwrap_err()
            .contains("the string \"abc\""));
        let range_vector = QueryResult::Matrix(vec![]);
        assert!(g
            .readings(&range_vector, &s, 1)
            .unwrap_err()
            .contains("range vector"));
    }

    #[test]
    fn bad_settings_are_typed_errors_naming_the_field() {
        let ok = || builder().success_condition(Condition::lt(0.01));
        let err = |b: MetricGateBuilder| b.build().unwrap_err();

        let e = err(builder());
        assert!(matches!(e, MetricConfigError::NoCondition { .. }));
        let e = err(builder().success_condition(Condition::lt(f64::NAN)));
        assert!(
            matches!(&e, MetricConfigError::InvalidThreshold { gate, field: "success_condition", value }
                if gate == "error-rate" && value.is_nan()),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "metric gate `error-rate`: success_condition: the threshold NaN is not a finite number"
        );
        let e = err(ok().failure_condition(Condition::gt(f64::INFINITY)));
        assert_eq!(
            e.to_string(),
            "metric gate `error-rate`: failure_condition: the threshold +Inf is not a finite number"
        );
        let e = err(MetricGate::builder(URL, "  ").success_condition(Condition::lt(1.0)));
        assert_eq!(
            e.to_string(),
            "metric gate `metric`: query: the query is empty"
        );
        assert!(matches!(
            err(ok().count(0)),
            MetricConfigError::ZeroCount { .. }
        ));
        let e = err(ok().count(3).interval(Duration::from_millis(500)));
        assert!(
            matches!(
                &e,
                MetricConfigError::InvalidDuration {
                    field: "interval",
                    ..
                }
            ),
            "{e}"
        );
        // One measurement needs no interval.
        assert!(ok().count(1).interval(Duration::ZERO).build().is_ok());
        let e = err(ok().count(3).failure_limit(3));
        assert_eq!(
            e.to_string(),
            "metric gate `error-rate`: failure_limit 3 must be less than count 3, or failed \
             measurements could never decide the analysis"
        );
        let e = err(ok().count(2).inconclusive_limit(5));
        assert!(matches!(
            e,
            MetricConfigError::LimitNotBelowCount {
                field: "inconclusive_limit",
                limit: 5,
                count: 2,
                ..
            }
        ));
        let e = err(ok().count(20_000).interval(Duration::from_secs(1)));
        assert!(matches!(
            e,
            MetricConfigError::TooManyPoints { points: 20_000, .. }
        ));
        let range = |window: u64, step: u64| QueryMode::Range {
            window: Duration::from_secs(window),
            step: Duration::from_secs(step),
        };
        let e = err(ok().mode(QueryMode::Range {
            window: Duration::from_secs(60),
            step: Duration::from_millis(100),
        }));
        assert!(matches!(
            e,
            MetricConfigError::InvalidDuration { field: "step", .. }
        ));
        let e = err(ok().mode(range(0, 5)));
        assert!(matches!(
            e,
            MetricConfigError::InvalidDuration {
                field: "window",
                ..
            }
        ));
        let e = err(ok().mode(range(62, 5)));
        assert!(
            e.to_string()
                .contains("window 62s: the window must be a positive multiple of the step 5s"),
            "{e}"
        );
        let e = err(ok()
            .mode(range(60, 7))
            .count(2)
            .interval(Duration::from_secs(63)));
        assert!(matches!(
            e,
            MetricConfigError::InvalidDuration {
                field: "window",
                ..
            }
        ));
        let e = err(ok()
            .mode(range(60, 5))
            .count(2)
            .interval(Duration::from_secs(62)));
        assert!(matches!(
            e,
            MetricConfigError::InvalidDuration {
                field: "interval",
                ..
            }
        ));
        // (count - 1) × interval + window = 3 × 3600 + 600 s at 1 s: 11 401 points.
        let e = err(ok()
            .mode(range(600, 1))
            .count(4)
            .interval(Duration::from_secs(3600)));
        assert!(matches!(
            e,
            MetricConfigError::TooManyPoints { points: 11_401, .. }
        ));
        assert!(ok()
            .mode(range(600, 1))
            .count(2)
            .interval(Duration::from_secs(60))
            .build()
            .is_ok());

        let e = err(MetricGate::builder("ftp://prom", "up").success_condition(Condition::lt(1.0)));
        assert_eq!(
            e.to_string(),
            "metric gate `metric`: prometheus_url `ftp://prom`: the scheme must be http or https"
        );
        let e = err(MetricGate::builder("not a url", "up").success_condition(Condition::lt(1.0)));
        assert!(matches!(
            e,
            MetricConfigError::Prometheus {
                source: PrometheusConfigError::InvalidUrl { .. },
                ..
            }
        ));
        let e = err(ok().timeout(Duration::ZERO));
        assert!(matches!(
            e,
            MetricConfigError::Prometheus {
                source: PrometheusConfigError::ZeroTimeout,
                ..
            }
        ));
        assert!(matches!(
            err(ok().name(" bad")),
            MetricConfigError::InvalidName(_)
        ));
    }

    #[test]
    fn without_a_recorded_phase_start_the_gate_is_misconfigured() {
        let g = builder()
            .success_condition(Condition::lt(0.01))
            .build()
            .unwrap();
        let r = block_on(GateProbe::new().evaluate(&g));
        assert!(
            matches!(&r, Err(GateError::Misconfigured(m)) if m.contains("no start is recorded for the entry phase of stage test")),
            "{r:?}"
        );
    }

    #[test]
    fn outside_a_tokio_runtime_the_query_is_a_typed_error() {
        let t0 = t("2026-11-26T09:00:00Z");
        let g = builder()
            .success_condition(Condition::lt(0.01))
            .build()
            .unwrap();
        let probe = GateProbe::new().state(started(t0)).at(t0);
        let r = block_on(probe.evaluate(&g));
        assert!(
            matches!(&r, Err(GateError::Misconfigured(m))
                if m.starts_with("querying http://127.0.0.1:9090/api/v1/query?query=error_ratio&time=1795683600.000")
                    && m.ends_with("needs a tokio runtime with I/O and time enabled")),
            "{r:?}"
        );
    }

    #[test]
    fn range_values_are_summarised_per_series_and_instant_values_listed() {
        let at = t("2026-11-26T09:00:00Z");
        let readings = [
            reading(&[("pod", "a")], at, 0.5),
            reading(&[("pod", "a")], at, f64::NAN),
            reading(&[("pod", "a")], at, 0.1),
            reading(&[("pod", "b")], at, f64::INFINITY),
        ];
        assert_eq!(
            readings_json(&readings, true),
            json!([
                { "labels": { "pod": "a" }, "points": 3, "nan_points": 1, "min": 0.1, "max": 0.5 },
                { "labels": { "pod": "b" }, "points": 1, "nan_points": 0, "min": "+Inf", "max": "+Inf" },
            ])
        );
        assert_eq!(
            readings_json(&readings[..2], false),
            json!([
                { "labels": { "pod": "a" }, "value": 0.5 },
                { "labels": { "pod": "a" }, "value": "NaN" },
            ])
        );
        assert_eq!(describe(&[]), "no data");
        assert_eq!(describe(&readings[..1]), "0.5{pod=\"a\"}");
        assert_eq!(describe(&readings[..3]), "3 values from 0.1 to 0.5");
        assert_eq!(describe(&readings[1..2]), "NaN{pod=\"a\"}");
    }

    #[test]
    fn during_the_initial_delay_the_gate_waits_exactly_until_the_first_measurement() {
        let t0 = t("2026-11-26T09:00:00Z");
        let g = builder()
            .success_condition(Condition::lt(0.01))
            .initial_delay(Duration::from_secs(300))
            .count(3)
            .build()
            .unwrap();
        let probe = GateProbe::new()
            .state(started(t0))
            .at(t("2026-11-26T09:01:30Z"));
        // No request is made: the Prometheus URL is never contacted before the first instant.
        let Ok(Verdict::Pending {
            evidence,
            retry_after,
        }) = block_on(probe.evaluate(&g))
        else {
            panic!("expected pending")
        };
        assert_eq!(retry_after, Duration::from_secs(210));
        assert_eq!(
            evidence.summary,
            "error-rate: initial delay, first of 3 measurements at 2026-11-26T09:05:00Z"
        );
        assert_eq!(
            evidence.data["first_measurement_at"],
            "2026-11-26T09:05:00Z"
        );
        assert_eq!(evidence.data["phase_started_at"], "2026-11-26T09:00:00Z");
        assert_eq!(evidence.facts["status"], "running");
        assert_eq!(evidence.facts["measured"], "0");
        assert!(evidence.attachments.is_empty());
    }
}
