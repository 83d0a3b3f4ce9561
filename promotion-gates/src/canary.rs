//! The canary analysis gate: canary against baseline, metric by metric, with the Mann–Whitney U
//! test, as Kayenta judges a canary.
//!
//! Each [`CanaryMetric`] names two PromQL queries, one for the canary and one for the baseline
//! (typically the same expression with `{track="canary"}` and `{track="baseline"}`). At each
//! evaluation the gate fetches both as range queries over the `lookback` window that ends now,
//! `step` apart, and compares the two sample sets:
//!
//! 1. **Samples.** Every point of every series the query returns is a sample; NaN and infinite
//!    points are dropped (and counted in the evidence). Fewer than `min_samples` on either side
//!    classifies the metric **no data**.
//! 2. **Test.** A two-sided Mann–Whitney U test ([`mann_whitney_u`]): ranks with ties averaged,
//!    the normal approximation with tie and continuity corrections (the numbers
//!    `scipy.stats.mannwhitneyu(canary, baseline, method="asymptotic")` gives). The difference is
//!    *significant* when the p-value is below the significance level (default 0.05).
//! 3. **Effect.** The change of the canary's median from the baseline's, relative (`+12 %`; from
//!    a zero median any change is infinitely large) or absolute, as the metric's [`Tolerance`]
//!    says. The metric is classified **high** when the canary is significantly higher *and* its
//!    median rose by more than the tolerance, **low** for the mirror image, and **pass**
//!    otherwise ([`Classification`]).
//! 4. **Direction.** The metric's [`Direction`] says which change counts against the canary: a
//!    latency or error rate that goes up ([`Direction::Increase`], the default), a throughput
//!    that goes down ([`Direction::Decrease`]), or either. A change the other way passes.
//!
//! # Score and verdict
//!
//! The score is the weighted share of passing metrics among those with data, 0–100. Then, in
//! order:
//!
//! - a **critical** metric that fails: [`Verdict::Fail`], with score 0 (as Kayenta does);
//! - no metric with data: [`Verdict::Inconclusive`];
//! - a score below the marginal threshold (default 75): [`Verdict::Fail`];
//! - a critical metric without data: [`Verdict::Inconclusive`] — it cannot be vouched for;
//! - a score below the pass threshold (default 95), a *marginal* canary:
//!   [`Verdict::Inconclusive`], so the phase pauses for a human decision;
//! - otherwise [`Verdict::Pass`].
//!
//! Metrics without data do not count towards the score; the evidence names them.
//!
//! # Waiting for the window
//!
//! When the engine recorded when the phase started (always, inside a pipeline), the gate waits
//! until the phase has run for a whole `lookback` ([`Verdict::Pending`], `retry_after` exactly
//! until then), so that the window holds only data from after the canary was deployed; a
//! window with too few samples after that is a real gap and makes the metric no data.
//!
//! # Evidence
//!
//! For each metric: both queries and request URLs, each sample set's digest (the SHA-256 of the
//! raw response, also attached as `<metric> canary` and `<metric> baseline`), sample and series
//! counts, both medians, the U statistic, z and p-value, the effect, the classification and
//! whether it counts against the canary; and the score, the thresholds and the result. Facts:
//! `score` (one decimal, `none` without data) and `result` (`pass`, `marginal`, `fail`,
//! `nodata`).
//!
//! Prometheus errors are [`GateError`]s naming the request URL, mapped as for the
//! [metric gate](crate::metrics::PrometheusError); the engine counts them against the phase's
//! consecutive-error limit. Every setting is checked when the gate is built
//! ([`CanaryConfigError`] names the metric and the field).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use promotion_core::clock::{add, elapsed};
use promotion_core::{Digest, Evidence, Gate, GateContext, GateError, GateName, Verdict};
use serde_json::{json, Value};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::metrics::{fmt_num, num};
use crate::prometheus::{
    configure_prometheus, Prometheus, PrometheusConfigError, QueryResponse, QueryResult,
    DEFAULT_TIMEOUT, MAX_POINTS_PER_SERIES, MIN_INTERVAL,
};

/// The analysis window unless configured otherwise (ten minutes).
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(600);

/// The resolution of the range queries unless configured otherwise (ten seconds).
pub const DEFAULT_STEP: Duration = Duration::from_secs(10);

/// Samples needed on each side unless configured otherwise.
pub const DEFAULT_MIN_SAMPLES: usize = 10;

/// The smallest `min_samples` accepted: with fewer the normal approximation means nothing.
pub const MIN_MIN_SAMPLES: usize = 3;

/// The significance level unless configured otherwise.
pub const DEFAULT_SIGNIFICANCE: f64 = 0.05;

/// The pass threshold of the score unless configured otherwise.
pub const DEFAULT_PASS_SCORE: f64 = 95.0;

/// The marginal threshold of the score unless configured otherwise.
pub const DEFAULT_MARGINAL_SCORE: f64 = 75.0;

/// Which change of a metric counts against the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Higher is worse (latency, errors, saturation).
    #[default]
    Increase,
    /// Lower is worse (throughput, success rate).
    Decrease,
    /// Any change is worse.
    Either,
}

impl Direction {
    /// `increase`, `decrease` or `either`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Increase => "increase",
            Direction::Decrease => "decrease",
            Direction::Either => "either",
        }
    }
}

/// How far the canary's median may move in the harmful direction before a significant
/// difference counts against it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// As a fraction of the baseline's median (`0.1` = 10 %). From a zero median any change is
    /// beyond it.
    Relative(f64),
    /// In the metric's unit (`0.001` for an error ratio that is often zero).
    Absolute(f64),
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance::Relative(0.0)
    }
}

impl Tolerance {
    fn value(self) -> f64 {
        match self {
            Tolerance::Relative(t) | Tolerance::Absolute(t) => t,
        }
    }
    fn to_json(self) -> Value {
        match self {
            Tolerance::Relative(t) => json!({ "relative": t }),
            Tolerance::Absolute(t) => json!({ "absolute": t }),
        }
    }
    fn describe(self) -> String {
        match self {
            Tolerance::Relative(t) => format!("{}%", fmt_num(t * 100.0)),
            Tolerance::Absolute(t) => fmt_num(t),
        }
    }
}

/// One metric compared between canary and baseline.
///
/// ```
/// use promotion_gates::canary::{CanaryMetric, Direction, Tolerance};
///
/// let p99 = |track: &str| format!(
///     r#"histogram_quantile(0.99, sum by (le) (rate(http_duration_seconds_bucket{{track="{track}"}}[1m])))"#
/// );
/// let latency = CanaryMetric::new("p99-latency", p99("canary"), p99("baseline"))
///     .direction(Direction::Increase)
///     .tolerance(Tolerance::Relative(0.10))
///     .weight(2.0)
///     .critical(true);
/// assert_eq!(latency.name(), "p99-latency");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryMetric {
    name: String,
    canary_query: String,
    baseline_query: String,
    direction: Direction,
    tolerance: Tolerance,
    weight: f64,
    critical: bool,
}

impl CanaryMetric {
    /// A metric named `name` (unique in the gate), measured by `canary_query` on the canary and
    /// by `baseline_query` on the baseline. Defaults: an increase is bad, no tolerance, weight
    /// 1, not critical.
    pub fn new(
        name: impl Into<String>,
        canary_query: impl Into<String>,
        baseline_query: impl Into<String>,
    ) -> Self {
        CanaryMetric {
            name: name.into(),
            canary_query: canary_query.into(),
            baseline_query: baseline_query.into(),
            direction: Direction::Increase,
            tolerance: Tolerance::default(),
            weight: 1.0,
            critical: false,
        }
    }
    /// Which change counts against the canary.
    pub fn direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }
    /// How far the median may move the harmful way.
    pub fn tolerance(mut self, tolerance: Tolerance) -> Self {
        self.tolerance = tolerance;
        self
    }
    /// The metric's weight in the score (positive).
    pub fn weight(mut self, weight: f64) -> Self {
        self.weight = weight;
        self
    }
    /// Whether the canary fails whenever this metric fails, whatever the score.
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }
    /// The metric's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// What the comparison of one metric found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Classification {
    /// No significant difference, or one within the tolerance.
    Pass,
    /// The canary is significantly higher, beyond the tolerance.
    High,
    /// The canary is significantly lower, beyond the tolerance.
    Low,
    /// Too few samples on one side.
    NoData,
}

impl Classification {
    /// `pass`, `high`, `low` or `nodata`.
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Pass => "pass",
            Classification::High => "high",
            Classification::Low => "low",
            Classification::NoData => "nodata",
        }
    }
}

/// The result of a two-sided Mann–Whitney U test of `x` against `y`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of `x`: the pairs in which `x`'s value is larger, ties counting one half.
    pub u: f64,
    /// U of `y`: `x.len() × y.len() − u`.
    pub u_other: f64,
    /// The standard score with tie and continuity corrections, positive when `x` tends larger.
    pub z: f64,
    /// The two-sided p-value of the normal approximation, in `[0, 1]`.
    pub p_value: f64,
}

/// The two-sided Mann–Whitney U test of `x` against `y` with the normal approximation, tie
/// correction and continuity correction: the statistic and p-value of SciPy's
/// `mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)`.
///
/// `None` when either side is empty or holds a NaN. When every value is the same there is no
/// evidence of a difference: `z` is 0 and the p-value 1.
///
/// ```
/// use promotion_gates::canary::mann_whitney_u;
///
/// let t = mann_whitney_u(&[19.0, 22.0, 16.0, 29.0, 24.0], &[20.0, 11.0, 17.0, 12.0]).unwrap();
/// assert_eq!(t.u, 17.0);
/// assert!((t.p_value - 0.111_346_886_533_140_41).abs() < 1e-9);
/// ```
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> Option<MannWhitney> {
    if x.is_empty() || y.is_empty() || x.iter().chain(y).any(|v| v.is_nan()) {
        return None;
    }
    let n1 = x.len() as f64;
    let n2 = y.len() as f64;
    let n = n1 + n2;
    let mut all: Vec<(f64, bool)> = x
        .iter()
        .map(|v| (*v, true))
        .chain(y.iter().map(|v| (*v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0;
    let mut position = 1.0;
    for group in all.chunk_by(|a, b| a.0 == b.0) {
        let t = group.len() as f64;
        let average_rank = position + (t - 1.0) / 2.0;
        let in_x = group.iter().filter(|(_, is_x)| *is_x).count() as f64;
        rank_sum_x += average_rank * in_x;
        tie_term += t * t * t - t;
        position += t;
    }
    let u = rank_sum_x - n1 * (n1 + 1.0) / 2.0;
    let u_other = n1 * n2 - u;
    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    let sigma = variance.max(0.0).sqrt();
    if sigma <= 0.0 || !sigma.is_finite() {
        return Some(MannWhitney {
            u,
            u_other,
            z: 0.0,
            p_value: 1.0,
        });
    }
    let distance = (u - mean).abs();
    let corrected = (distance - 0.5) / sigma;
    let p_value = (2.0 * Normal::standard().sf(corrected)).clamp(0.0, 1.0);
    let z = if distance > 0.5 {
        (u - mean).signum() * corrected
    } else {
        0.0
    };
    Some(MannWhitney {
        u,
        u_other,
        z,
        p_value,
    })
}

/// The median (the mean of the middle two for an even count); `None` when empty.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted.get(mid).copied()
    } else {
        Some((sorted.get(mid.checked_sub(1)?)? + sorted.get(mid)?) / 2.0)
    }
}

/// The relative change from `baseline` to `canary`; from zero, any change is infinite.
fn relative_change(canary: f64, baseline: f64) -> f64 {
    if baseline != 0.0 {
        (canary - baseline) / baseline.abs()
    } else if canary == baseline {
        0.0
    } else if canary > baseline {
        f64::INFINITY
    } else {
        f64::NEG_INFINITY
    }
}

/// What the comparison of one metric's samples found (pure).
#[derive(Debug, Clone, PartialEq)]
struct MetricReport {
    classification: Classification,
    counts_against: bool,
    test: Option<MannWhitney>,
    canary_median: Option<f64>,
    baseline_median: Option<f64>,
    absolute_change: Option<f64>,
    relative_change: Option<f64>,
    significant: bool,
    reason: String,
}

fn percent(change: f64) -> String {
    if change.is_finite() {
        format!("{:+.1}%", change * 100.0)
    } else if change > 0.0 {
        "up from zero".to_owned()
    } else {
        "down from zero".to_owned()
    }
}

fn fmt_p(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.2e}")
    }
}

/// Compares one metric's samples.
fn compare(
    metric: &CanaryMetric,
    canary: &[f64],
    baseline: &[f64],
    significance: f64,
    min_samples: usize,
) -> MetricReport {
    let canary_median = median(canary);
    let baseline_median = median(baseline);
    let (absolute_change, relative) = match (canary_median, baseline_median) {
        (Some(c), Some(b)) => (Some(c - b), Some(relative_change(c, b))),
        _ => (None, None),
    };
    let no_data = |reason: String| MetricReport {
        classification: Classification::NoData,
        counts_against: false,
        test: None,
        canary_median,
        baseline_median,
        absolute_change,
        relative_change: relative,
        significant: false,
        reason,
    };
    if canary.len() < min_samples || baseline.len() < min_samples {
        return no_data(format!(
            "too few samples: canary {}, baseline {} (at least {min_samples} each)",
            canary.len(),
            baseline.len()
        ));
    }
    let (Some(test), Some(abs), Some(rel), Some(mc), Some(mb)) = (
        mann_whitney_u(canary, baseline),
        absolute_change,
        relative,
        canary_median,
        baseline_median,
    ) else {
        return no_data("no comparable samples".to_owned());
    };
    let significant = test.p_value < significance;
    let beyond = |up: bool| {
        let moved = match metric.tolerance {
            Tolerance::Relative(_) => rel,
            Tolerance::Absolute(_) => abs,
        };
        let moved = if up { moved } else { -moved };
        moved > metric.tolerance.value()
    };
    let mean_u = test.u + test.u_other;
    let higher = test.u * 2.0 > mean_u;
    let lower = test.u * 2.0 < mean_u;
    let classification = if significant && higher && beyond(true) {
        Classification::High
    } else if significant && lower && beyond(false) {
        Classification::Low
    } else {
        Classification::Pass
    };
    let counts_against = match classification {
        Classification::High => metric.direction != Direction::Decrease,
        Classification::Low => metric.direction != Direction::Increase,
        Classification::Pass | Classification::NoData => false,
    };
    let medians = format!(
        "median {} vs {} ({})",
        fmt_num(mc),
        fmt_num(mb),
        match metric.tolerance {
            Tolerance::Relative(_) => percent(rel),
            Tolerance::Absolute(_) => format!("{:+}", abs),
        }
    );
    let p = fmt_p(test.p_value);
    let reason = match classification {
        Classification::High | Classification::Low => {
            let way = if classification == Classification::High {
                "higher"
            } else {
                "lower"
            };
            let harmless = if counts_against {
                String::new()
            } else {
                format!(
                    "; only {} counts against it",
                    match metric.direction {
                        Direction::Increase => "an increase",
                        _ => "a decrease",
                    }
                )
            };
            format!(
                "canary {way}: {medians}, p = {p}, beyond the tolerance {}{harmless}",
                metric.tolerance.describe()
            )
        }
        _ if significant => format!(
            "canary differs (p = {p}) but {medians} is within the tolerance {}",
            metric.tolerance.describe()
        ),
        _ => format!("no significant difference: {medians}, p = {p}"),
    };
    MetricReport {
        classification,
        counts_against,
        test: Some(test),
        canary_median,
        baseline_median,
        absolute_change,
        relative_change: relative,
        significant,
        reason,
    }
}

/// The overall result of a canary analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CanaryResult {
    Pass,
    Marginal,
    Fail,
    NoData,
}

impl CanaryResult {
    fn as_str(self) -> &'static str {
        match self {
            CanaryResult::Pass => "pass",
            CanaryResult::Marginal => "marginal",
            CanaryResult::Fail => "fail",
            CanaryResult::NoData => "nodata",
        }
    }
}

/// Score and result (pure).
#[derive(Debug, Clone, PartialEq)]
struct Overall {
    score: Option<f64>,
    result: CanaryResult,
    reason: String,
}

fn judge_overall(
    metrics: &[CanaryMetric],
    reports: &[MetricReport],
    pass: f64,
    marginal: f64,
) -> Overall {
    let pairs: Vec<(&CanaryMetric, &MetricReport)> = metrics.iter().zip(reports).collect();
    let named = |filter: &dyn Fn(&CanaryMetric, &MetricReport) -> bool| -> Vec<String> {
        pairs
            .iter()
            .filter(|(m, r)| filter(m, r))
            .map(|(m, r)| format!("{} {}", m.name, r.reason))
            .collect()
    };
    let has_data = |r: &MetricReport| r.classification != Classification::NoData;
    let critical_failures = named(&|m, r| m.critical && r.counts_against);
    if !critical_failures.is_empty() {
        return Overall {
            score: Some(0.0),
            result: CanaryResult::Fail,
            reason: format!("critical metric {}", critical_failures.join("; ")),
        };
    }
    let total: f64 = pairs
        .iter()
        .filter(|(_, r)| has_data(r))
        .map(|(m, _)| m.weight)
        .sum();
    if pairs.iter().all(|(_, r)| !has_data(r)) || total <= 0.0 {
        return Overall {
            score: None,
            result: CanaryResult::NoData,
            reason: format!("no metric has data: {}", named(&|_, _| true).join("; ")),
        };
    }
    let passing: f64 = pairs
        .iter()
        .filter(|(_, r)| has_data(r) && !r.counts_against)
        .map(|(m, _)| m.weight)
        .sum();
    let score = 100.0 * passing / total;
    let failing = named(&|_, r| r.counts_against).join("; ");
    if score < marginal {
        return Overall {
            score: Some(score),
            result: CanaryResult::Fail,
            reason: format!(
                "score {} below the marginal threshold {}: {failing}",
                fmt_score(score),
                fmt_num(marginal)
            ),
        };
    }
    let critical_missing = named(&|m, r| m.critical && !has_data(r));
    if !critical_missing.is_empty() {
        return Overall {
            score: Some(score),
            result: CanaryResult::NoData,
            reason: format!(
                "critical metric without data: {}",
                critical_missing.join("; ")
            ),
        };
    }
    if score < pass {
        return Overall {
            score: Some(score),
            result: CanaryResult::Marginal,
            reason: format!(
                "score {} is marginal (pass ≥ {}, marginal ≥ {}): {failing}",
                fmt_score(score),
                fmt_num(pass),
                fmt_num(marginal)
            ),
        };
    }
    let with_data = pairs.iter().filter(|(_, r)| has_data(r)).count();
    let ok = pairs
        .iter()
        .filter(|(_, r)| has_data(r) && !r.counts_against)
        .count();
    let mut reason = format!(
        "score {} (pass ≥ {}): {ok} of {with_data} metrics with data pass",
        fmt_score(score),
        fmt_num(pass)
    );
    let missing = named(&|_, r| !has_data(r));
    if !missing.is_empty() {
        reason.push_str(&format!("; without data: {}", missing.join("; ")));
    }
    if !failing.is_empty() {
        reason.push_str(&format!("; failing: {failing}"));
    }
    Overall {
        score: Some(score),
        result: CanaryResult::Pass,
        reason,
    }
}

fn fmt_score(score: f64) -> String {
    format!("{score:.1}")
}

/// A canary gate configured wrongly; returned by [`CanaryGateBuilder::build`]. Names the gate,
/// the metric and the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CanaryConfigError {
    /// The gate's name is not a valid gate name.
    #[error("canary gate: {0}")]
    InvalidName(#[from] promotion_core::InvalidName),
    /// The Prometheus URL, timeout or client is unusable.
    #[error("canary gate `{gate}`: {source}")]
    Prometheus {
        /// The gate.
        gate: String,
        /// What is wrong.
        #[source]
        source: PrometheusConfigError,
    },
    /// No metric to compare.
    #[error("canary gate `{gate}`: no metric to compare")]
    NoMetrics {
        /// The gate.
        gate: String,
    },
    /// A metric's name is blank or used twice.
    #[error("canary gate `{gate}`: metric name `{metric}`: {problem}")]
    InvalidMetricName {
        /// The gate.
        gate: String,
        /// The name as given.
        metric: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A metric's query is empty.
    #[error("canary gate `{gate}`: metric `{metric}`: {field} is empty")]
    EmptyQuery {
        /// The gate.
        gate: String,
        /// The metric.
        metric: String,
        /// `canary_query` or `baseline_query`.
        field: &'static str,
    },
    /// A metric's weight is not a positive finite number.
    #[error("canary gate `{gate}`: metric `{metric}`: weight {} must be a positive finite number", fmt_num(*.weight))]
    InvalidWeight {
        /// The gate.
        gate: String,
        /// The metric.
        metric: String,
        /// The weight as given.
        weight: f64,
    },
    /// A metric's tolerance is negative or not finite.
    #[error("canary gate `{gate}`: metric `{metric}`: tolerance {} must be a finite number ≥ 0", fmt_num(*.tolerance))]
    InvalidTolerance {
        /// The gate.
        gate: String,
        /// The metric.
        metric: String,
        /// The tolerance as given.
        tolerance: f64,
    },
    /// The score thresholds are out of order or out of 0–100.
    #[error(
        "canary gate `{gate}`: score thresholds pass {} and marginal {}: need 0 ≤ marginal ≤ pass ≤ 100",
        fmt_num(*.pass), fmt_num(*.marginal)
    )]
    InvalidThresholds {
        /// The gate.
        gate: String,
        /// The pass threshold as given.
        pass: f64,
        /// The marginal threshold as given.
        marginal: f64,
    },
    /// The significance level is not strictly between 0 and 1.
    #[error("canary gate `{gate}`: significance {} must be between 0 and 1", fmt_num(*.value))]
    InvalidSignificance {
        /// The gate.
        gate: String,
        /// The level as given.
        value: f64,
    },
    /// `min_samples` is below [`MIN_MIN_SAMPLES`].
    #[error("canary gate `{gate}`: min_samples {value} is below {MIN_MIN_SAMPLES}")]
    TooFewMinSamples {
        /// The gate.
        gate: String,
        /// The value as given.
        value: usize,
    },
    /// The lookback or step is out of range.
    #[error("canary gate `{gate}`: {field} {value:?}: {problem}")]
    InvalidDuration {
        /// The gate.
        gate: String,
        /// `lookback`, `step` or `timeout`.
        field: &'static str,
        /// The duration as given.
        value: Duration,
        /// What is wrong.
        problem: String,
    },
    /// The window holds more points than Prometheus returns, or fewer than `min_samples`.
    #[error("canary gate `{gate}`: lookback and step give {points} points per series; {problem}")]
    WindowPoints {
        /// The gate.
        gate: String,
        /// Points per series in the window.
        points: u64,
        /// What is wrong.
        problem: String,
    },
}

/// Builder for [`CanaryGate`]; every setting is validated in
/// [`build`](CanaryGateBuilder::build).
#[derive(Debug, Clone)]
pub struct CanaryGateBuilder {
    name: String,
    prometheus_url: String,
    timeout: Duration,
    client: Option<reqwest::Client>,
    metrics: Vec<CanaryMetric>,
    lookback: Duration,
    step: Duration,
    min_samples: usize,
    significance: f64,
    pass: f64,
    marginal: f64,
}

impl CanaryGateBuilder {
    /// Names the gate (default `canary-analysis`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Adds a metric to compare.
    pub fn metric(mut self, metric: CanaryMetric) -> Self {
        self.metrics.push(metric);
        self
    }
    /// The analysis window, ending at each evaluation (default [`DEFAULT_LOOKBACK`]).
    pub fn lookback(mut self, lookback: Duration) -> Self {
        self.lookback = lookback;
        self
    }
    /// The resolution of the range queries (default [`DEFAULT_STEP`], at least one second).
    pub fn step(mut self, step: Duration) -> Self {
        self.step = step;
        self
    }
    /// Samples needed on each side of a metric (default [`DEFAULT_MIN_SAMPLES`]).
    pub fn min_samples(mut self, n: usize) -> Self {
        self.min_samples = n;
        self
    }
    /// The significance level of the test (default [`DEFAULT_SIGNIFICANCE`]).
    pub fn significance(mut self, alpha: f64) -> Self {
        self.significance = alpha;
        self
    }
    /// The score at or above which the canary passes, and the one below which it fails
    /// (defaults 95 and 75); in between it is marginal.
    pub fn score_thresholds(mut self, pass: f64, marginal: f64) -> Self {
        self.pass = pass;
        self.marginal = marginal;
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
    pub fn build(self) -> Result<CanaryGate, CanaryConfigError> {
        let name = GateName::new(self.name)?;
        let gate = name.as_str().to_owned();
        let prometheus = configure_prometheus(&self.prometheus_url, self.timeout, self.client)
            .map_err(|source| CanaryConfigError::Prometheus {
                gate: gate.clone(),
                source,
            })?;
        if self.metrics.is_empty() {
            return Err(CanaryConfigError::NoMetrics { gate });
        }
        for (i, m) in self.metrics.iter().enumerate() {
            let metric = m.name.clone();
            let problem = if m.name.trim().is_empty() {
                Some("it is blank")
            } else if m.name.trim() != m.name {
                Some("it starts or ends with whitespace")
            } else if self.metrics.iter().take(i).any(|o| o.name == m.name) {
                Some("it is used twice")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(CanaryConfigError::InvalidMetricName {
                    gate,
                    metric,
                    problem,
                });
            }
            for (field, q) in [
                ("canary_query", &m.canary_query),
                ("baseline_query", &m.baseline_query),
            ] {
                if q.trim().is_empty() {
                    return Err(CanaryConfigError::EmptyQuery {
                        gate,
                        metric,
                        field,
                    });
                }
            }
            if !(m.weight.is_finite() && m.weight > 0.0) {
                return Err(CanaryConfigError::InvalidWeight {
                    gate,
                    metric,
                    weight: m.weight,
                });
            }
            let t = m.tolerance.value();
            if !(t.is_finite() && t >= 0.0) {
                return Err(CanaryConfigError::InvalidTolerance {
                    gate,
                    metric,
                    tolerance: t,
                });
            }
        }
        let (pass, marginal) = (self.pass, self.marginal);
        if !(pass.is_finite()
            && marginal.is_finite()
            && (0.0..=100.0).contains(&marginal)
            && (0.0..=100.0).contains(&pass)
            && marginal <= pass)
        {
            return Err(CanaryConfigError::InvalidThresholds {
                gate,
                pass,
                marginal,
            });
        }
        if !(self.significance > 0.0 && self.significance < 1.0) {
            return Err(CanaryConfigError::InvalidSignificance {
                gate,
                value: self.significance,
            });
        }
        if self.min_samples < MIN_MIN_SAMPLES {
            return Err(CanaryConfigError::TooFewMinSamples {
                gate,
                value: self.min_samples,
            });
        }
        if self.step < MIN_INTERVAL {
            return Err(CanaryConfigError::InvalidDuration {
                gate,
                field: "step",
                value: self.step,
                problem: "the step must be at least one second".to_owned(),
            });
        }
        if self.lookback < self.step {
            return Err(CanaryConfigError::InvalidDuration {
                gate,
                field: "lookback",
                value: self.lookback,
                problem: format!("the window must be at least one step ({:?})", self.step),
            });
        }
        let points = u64::try_from(self.lookback.as_millis() / self.step.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        if points > MAX_POINTS_PER_SERIES {
            return Err(CanaryConfigError::WindowPoints {
                gate,
                points,
                problem: format!("Prometheus allows {MAX_POINTS_PER_SERIES}"),
            });
        }
        if points < self.min_samples as u64 {
            return Err(CanaryConfigError::WindowPoints {
                gate,
                points,
                problem: format!(
                    "fewer than min_samples {}, so no metric could ever have enough",
                    self.min_samples
                ),
            });
        }
        Ok(CanaryGate {
            name,
            prometheus,
            metrics: self.metrics,
            lookback: self.lookback,
            step: self.step,
            min_samples: self.min_samples,
            significance: self.significance,
            pass,
            marginal,
        })
    }
}

/// Compares canary and baseline metric by metric with the Mann–Whitney U test and scores the
/// canary 0–100: pass, marginal (inconclusive, for a human to judge) or fail. See the
/// [module documentation](self).
///
/// ```
/// use std::time::Duration;
/// use promotion_gates::canary::{CanaryGate, CanaryMetric, Direction, Tolerance};
///
/// let errors = |track: &str| format!(
///     r#"sum(rate(http_requests_total{{track="{track}",code=~"5.."}}[1m])) / sum(rate(http_requests_total{{track="{track}"}}[1m]))"#
/// );
/// let gate = CanaryGate::builder("http://prometheus:9090")
///     .metric(CanaryMetric::new("error-ratio", errors("canary"), errors("baseline"))
///         .tolerance(Tolerance::Absolute(0.001))
///         .critical(true))
///     .metric(CanaryMetric::new("cpu", "avg(rate(cpu_seconds_total{track=\"canary\"}[1m]))",
///                                      "avg(rate(cpu_seconds_total{track=\"baseline\"}[1m]))")
///         .direction(Direction::Increase)
///         .tolerance(Tolerance::Relative(0.2)))
///     .lookback(Duration::from_secs(15 * 60))
///     .step(Duration::from_secs(15))
///     .score_thresholds(90.0, 70.0)
///     .build()?;
/// assert_eq!(gate.metrics().len(), 2);
/// # Ok::<(), promotion_gates::canary::CanaryConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CanaryGate {
    name: GateName,
    prometheus: Prometheus,
    metrics: Vec<CanaryMetric>,
    lookback: Duration,
    step: Duration,
    min_samples: usize,
    significance: f64,
    pass: f64,
    marginal: f64,
}

/// The samples of one query's answer.
#[derive(Debug, Clone, PartialEq)]
struct SampleSet {
    values: Vec<f64>,
    dropped: usize,
    series: usize,
}

fn samples(result: &QueryResult) -> Result<SampleSet, String> {
    let series: Vec<&crate::prometheus::Series> = match result {
        QueryResult::Matrix(s) | QueryResult::Vector(s) => s.iter().collect(),
        QueryResult::Scalar(p) => {
            let finite = p.value.is_finite();
            return Ok(SampleSet {
                values: if finite { vec![p.value] } else { Vec::new() },
                dropped: usize::from(!finite),
                series: 1,
            });
        }
        QueryResult::String { value, .. } => {
            return Err(format!(
                "the query returns the string {value:?}, not numbers"
            ))
        }
    };
    let mut values = Vec::new();
    let mut dropped = 0;
    for s in &series {
        for p in &s.points {
            if p.value.is_finite() {
                values.push(p.value);
            } else {
                dropped += 1;
            }
        }
    }
    Ok(SampleSet {
        values,
        dropped,
        series: series.len(),
    })
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl CanaryGate {
    /// A gate querying the Prometheus server at `prometheus_url`. Add at least one metric.
    pub fn builder(prometheus_url: impl Into<String>) -> CanaryGateBuilder {
        CanaryGateBuilder {
            name: "canary-analysis".to_owned(),
            prometheus_url: prometheus_url.into(),
            timeout: DEFAULT_TIMEOUT,
            client: None,
            metrics: Vec::new(),
            lookback: DEFAULT_LOOKBACK,
            step: DEFAULT_STEP,
            min_samples: DEFAULT_MIN_SAMPLES,
            significance: DEFAULT_SIGNIFICANCE,
            pass: DEFAULT_PASS_SCORE,
            marginal: DEFAULT_MARGINAL_SCORE,
        }
    }

    /// The metrics compared.
    pub fn metrics(&self) -> &[CanaryMetric] {
        &self.metrics
    }

    /// The Prometheus server.
    pub fn prometheus(&self) -> &Prometheus {
        &self.prometheus
    }

    fn config_json(&self) -> Value {
        json!({
            "prometheus": self.prometheus.url().as_str(),
            "lookback_seconds": self.lookback.as_secs_f64(),
            "step_seconds": self.step.as_secs_f64(),
            "min_samples": self.min_samples,
            "significance": self.significance,
            "score_thresholds": { "pass": self.pass, "marginal": self.marginal },
        })
    }
}

fn set_json(
    evidence: &SampleSet,
    response: &QueryResponse,
    query: &str,
    median: Option<f64>,
) -> Value {
    json!({
        "query": query,
        "request": response.url,
        "digest": Digest::of(&response.body).to_string(),
        "result_type": response.result.result_type(),
        "series": evidence.series,
        "samples": evidence.values.len(),
        "dropped": evidence.dropped,
        "median": median.map(num),
        "warnings": response.warnings,
    })
}

#[async_trait]
impl Gate for CanaryGate {
    fn name(&self) -> &str {
        self.name.as_str()
    }

    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let now = ctx.now();
        let started = ctx
            .state
            .stage(ctx.stage.as_str())
            .phase(ctx.phase)
            .started_at;
        if let Some(started) = started {
            let ready = add(started, self.lookback);
            if now < ready {
                let summary = format!(
                    "{}: collecting samples; the {:?} analysis window is full at {}",
                    self.name,
                    self.lookback,
                    rfc3339(ready)
                );
                let evidence = Evidence::new(self.name.as_str(), now, summary).with_data(json!({
                    "config": self.config_json(),
                    "phase_started_at": rfc3339(started),
                    "window_full_at": rfc3339(ready),
                    "result": "running",
                }));
                return Ok(Verdict::Pending {
                    evidence,
                    retry_after: elapsed(now, ready).max(Duration::from_millis(1)),
                });
            }
        }
        let end_ms = now.timestamp_millis();
        let start_ms =
            end_ms.saturating_sub(i64::try_from(self.lookback.as_millis()).unwrap_or(i64::MAX));
        let end = DateTime::from_timestamp_millis(end_ms).unwrap_or(now);
        let start = DateTime::from_timestamp_millis(start_ms).unwrap_or(now);

        let requests = self.metrics.iter().flat_map(|m| {
            [&m.canary_query, &m.baseline_query]
                .into_iter()
                .map(|q| self.prometheus.range(q, start, end, self.step))
        });
        let responses = futures::future::join_all(requests).await;
        let mut answers: Vec<QueryResponse> = Vec::with_capacity(responses.len());
        for r in responses {
            answers.push(r.map_err(GateError::from)?);
        }

        let mut reports = Vec::with_capacity(self.metrics.len());
        let mut metric_data = Vec::with_capacity(self.metrics.len());
        let mut evidence_attachments: Vec<(String, &QueryResponse)> = Vec::new();
        for (m, pair) in self.metrics.iter().zip(answers.chunks(2)) {
            let (Some(canary), Some(baseline)) = (pair.first(), pair.get(1)) else {
                return Err(GateError::other(format!(
                    "canary gate `{}`: metric `{}` is missing an answer",
                    self.name, m.name
                )));
            };
            let set_of = |response: &QueryResponse, which: &str| {
                samples(&response.result).map_err(|problem| {
                    GateError::Misconfigured(format!(
                        "canary gate `{}`: metric `{}`: the {which} query: {problem} ({})",
                        self.name, m.name, response.url
                    ))
                })
            };
            let c = set_of(canary, "canary")?;
            let b = set_of(baseline, "baseline")?;
            let report = compare(m, &c.values, &b.values, self.significance, self.min_samples);
            metric_data.push(json!({
                "name": m.name,
                "weight": m.weight,
                "critical": m.critical,
                "direction": m.direction.as_str(),
                "tolerance": m.tolerance.to_json(),
                "canary": set_json(&c, canary, &m.canary_query, report.canary_median),
                "baseline": set_json(&b, baseline, &m.baseline_query, report.baseline_median),
                "mann_whitney": report.test.map(|t| json!({
                    "u": t.u,
                    "u_baseline": t.u_other,
                    "z": t.z,
                    "p_value": t.p_value,
                })),
                "significant": report.significant,
                "change": {
                    "absolute": report.absolute_change.map(num),
                    "relative": report.relative_change.map(num),
                },
                "classification": report.classification.as_str(),
                "counts_against": report.counts_against,
                "reason": report.reason,
            }));
            evidence_attachments.push((format!("{} canary", m.name), canary));
            evidence_attachments.push((format!("{} baseline", m.name), baseline));
            reports.push(report);
        }
        let overall = judge_overall(&self.metrics, &reports, self.pass, self.marginal);
        let score_text = overall.score.map_or_else(|| "none".to_owned(), fmt_score);
        let summary = match overall.result {
            CanaryResult::Pass => format!("{}: canary passes: {}", self.name, overall.reason),
            CanaryResult::Marginal => format!("{}: canary marginal: {}", self.name, overall.reason),
            CanaryResult::Fail => format!("{}: canary fails: {}", self.name, overall.reason),
            CanaryResult::NoData => {
                format!("{}: canary inconclusive: {}", self.name, overall.reason)
            }
        };
        let mut evidence = Evidence::new(self.name.as_str(), now, summary)
            .with_data(json!({
                "config": self.config_json(),
                "phase_started_at": started.map(rfc3339),
                "window": { "start": rfc3339(start), "end": rfc3339(end) },
                "metrics": metric_data,
                "score": overall.score.map(num),
                "result": overall.result.as_str(),
            }))
            .with_fact("score", score_text)
            .with_fact("result", overall.result.as_str());
        for (name, response) in evidence_attachments {
            evidence = evidence.with_attachment(name, &response.body);
        }
        Ok(match overall.result {
            CanaryResult::Pass => Verdict::Pass(evidence),
            CanaryResult::Fail => Verdict::Fail(evidence),
            CanaryResult::Marginal | CanaryResult::NoData => Verdict::Inconclusive(evidence),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use promotion_core::testing::GateProbe;
    use promotion_core::{Actor, Event, EventBody, ReleaseState, StageName};

    use crate::prometheus::{Point, Series};

    /// Equal to within `1e-9` relative: statrs' and SciPy's normal tails differ in the tenth digit.
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1e-300)
    }

    // Reference values: scipy 1.17.1,
    // `mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)`.
    /// A name, `x`, `y`, and SciPy's U and p-value.
    type Reference = (&'static str, &'static [f64], &'static [f64], f64, f64);

    const REFERENCE: [Reference; 6] = [
        (
            "no ties (textbook)",
            &[19.0, 22.0, 16.0, 29.0, 24.0],
            &[20.0, 11.0, 17.0, 12.0],
            17.0,
            0.111_346_886_533_140_41,
        ),
        (
            "ties",
            &[1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0],
            &[2.0, 3.0, 4.0, 4.0, 5.0, 5.0, 6.0, 7.0, 7.0],
            13.5,
            0.031_758_957_148_063_71,
        ),
        (
            "separated",
            &[150.0, 151.0, 152.0, 153.0, 154.0, 155.0, 156.0],
            &[100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0],
            49.0,
            0.002_165_029_333_038_375_7,
        ),
        (
            "lower",
            &[0.8, 1.1, 0.9, 1.0, 0.7, 1.2, 0.95, 1.05, 0.85, 1.15],
            &[1.3, 1.1, 1.4, 1.6, 1.2, 1.5, 1.25, 1.45, 1.35, 1.55, 1.65],
            3.0,
            0.000_284_655_772_538_534_9,
        ),
        (
            "the same values in another order",
            &[1.0, 2.0, 3.0, 4.0],
            &[4.0, 3.0, 2.0, 1.0],
            8.0,
            1.0,
        ),
        (
            "all tied",
            &[5.0, 5.0, 5.0],
            &[5.0, 5.0, 5.0, 5.0],
            6.0,
            1.0,
        ),
    ];

    #[test]
    fn u_and_p_match_scipy() {
        for (name, x, y, u, p) in REFERENCE {
            let t = mann_whitney_u(x, y).unwrap();
            assert_eq!(t.u, u, "{name}: U");
            assert_eq!(t.u + t.u_other, (x.len() * y.len()) as f64, "{name}");
            assert!(close(t.p_value, p), "{name}: p {} vs {p}", t.p_value);
        }
        // 30 against 25 values with many ties, generated by formula.
        let x: Vec<f64> = (0..30).map(|i| f64::from((i * 37) % 23)).collect();
        let y: Vec<f64> = (0..25).map(|i| f64::from((i * 17) % 19 + 3)).collect();
        let t = mann_whitney_u(&x, &y).unwrap();
        assert_eq!(t.u, 314.5);
        assert!(close(t.p_value, 0.309_996_470_450_387_03), "{}", t.p_value);
    }

    #[test]
    fn z_is_signed_towards_the_larger_side_and_swapping_mirrors_the_test() {
        let (_, x, y, _, _) = REFERENCE[0];
        let t = mann_whitney_u(x, y).unwrap();
        // (|17 − 10| − 0.5) / sqrt(5·4/12 · 10)
        assert!(close(t.z, 1.592_168_332_809_065_7), "{}", t.z);
        let s = mann_whitney_u(y, x).unwrap();
        assert_eq!((s.u, s.u_other), (t.u_other, t.u));
        assert!(close(s.z, -t.z));
        assert!(close(s.p_value, t.p_value));
        // No difference at all: z is 0, not the −0.5 of the continuity correction.
        let (_, x, y, _, _) = REFERENCE[4];
        assert_eq!(mann_whitney_u(x, y).unwrap().z, 0.0);
    }

    #[test]
    fn no_test_without_values_or_with_nan() {
        assert_eq!(mann_whitney_u(&[], &[1.0]), None);
        assert_eq!(mann_whitney_u(&[1.0], &[]), None);
        assert_eq!(mann_whitney_u(&[1.0, f64::NAN], &[1.0]), None);
        // One value each is a test, if a weak one.
        let t = mann_whitney_u(&[2.0], &[1.0]).unwrap();
        assert_eq!(t.u, 1.0);
        assert_eq!(t.p_value, 1.0);
    }

    #[test]
    fn medians_and_relative_changes() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(relative_change(110.0, 100.0), 0.1);
        assert_eq!(relative_change(-90.0, -100.0), 0.1);
        assert_eq!(relative_change(0.0, 0.0), 0.0);
        assert_eq!(relative_change(0.001, 0.0), f64::INFINITY);
        assert_eq!(relative_change(-1.0, 0.0), f64::NEG_INFINITY);
    }

    fn metric() -> CanaryMetric {
        CanaryMetric::new("latency", "canary", "baseline")
    }

    const HIGH: [f64; 7] = [150.0, 151.0, 152.0, 153.0, 154.0, 155.0, 156.0];
    const BASE: [f64; 7] = [100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0];

    #[test]
    fn a_significant_rise_beyond_the_tolerance_is_high() {
        let r = compare(&metric(), &HIGH, &BASE, 0.05, 5);
        assert_eq!(r.classification, Classification::High);
        assert!(r.counts_against);
        assert!(r.significant);
        assert_eq!(r.canary_median, Some(153.0));
        assert_eq!(r.baseline_median, Some(103.0));
        assert_eq!(r.absolute_change, Some(50.0));
        assert_eq!(
            r.reason,
            "canary higher: median 153 vs 103 (+48.5%), p = 0.002, beyond the tolerance 0%"
        );
        // Within a 50 % tolerance the same difference passes.
        let tolerant = metric().tolerance(Tolerance::Relative(0.5));
        let r = compare(&tolerant, &HIGH, &BASE, 0.05, 5);
        assert_eq!(r.classification, Classification::Pass);
        assert!(!r.counts_against);
        assert_eq!(
            r.reason,
            "canary differs (p = 0.002) but median 153 vs 103 (+48.5%) is within the tolerance 50%"
        );
        // An absolute tolerance in the metric's unit.
        let absolute = metric().tolerance(Tolerance::Absolute(49.0));
        assert_eq!(
            compare(&absolute, &HIGH, &BASE, 0.05, 5).classification,
            Classification::High
        );
        let absolute = metric().tolerance(Tolerance::Absolute(50.0));
        assert_eq!(
            compare(&absolute, &HIGH, &BASE, 0.05, 5).classification,
            Classification::Pass
        );
        // A stricter significance level no longer sees it (p ≈ 0.0022).
        assert_eq!(
            compare(&metric(), &HIGH, &BASE, 0.001, 5).classification,
            Classification::Pass
        );
    }

    #[test]
    fn the_direction_decides_whether_a_change_counts_against_the_canary() {
        let r = compare(
            &metric().direction(Direction::Decrease),
            &HIGH,
            &BASE,
            0.05,
            5,
        );
        assert_eq!(r.classification, Classification::High);
        assert!(!r.counts_against);
        assert!(
            r.reason.ends_with("; only a decrease counts against it"),
            "{}",
            r.reason
        );
        assert!(
            compare(
                &metric().direction(Direction::Either),
                &HIGH,
                &BASE,
                0.05,
                5
            )
            .counts_against
        );

        let r = compare(&metric(), &BASE, &HIGH, 0.05, 5);
        assert_eq!(r.classification, Classification::Low);
        assert!(!r.counts_against, "a drop in latency is an improvement");
        assert!(
            r.reason.ends_with("; only an increase counts against it"),
            "{}",
            r.reason
        );
        for d in [Direction::Decrease, Direction::Either] {
            let r = compare(&metric().direction(d), &BASE, &HIGH, 0.05, 5);
            assert_eq!(r.classification, Classification::Low);
            assert!(r.counts_against, "{d:?}");
        }
    }

    #[test]
    fn no_significant_difference_passes_and_too_few_samples_is_no_data() {
        // The same noise, 1 % higher: p ≈ 0.72 (scipy).
        let base: Vec<f64> = (0..9).map(|k| f64::from(90 + (k * 7919) % 21)).collect();
        let canary: Vec<f64> = base.iter().map(|v| v * 1.01).collect();
        let r = compare(&metric(), &canary, &base, 0.05, 5);
        assert_eq!(r.classification, Classification::Pass);
        assert!(!r.significant);
        let t = r.test.unwrap();
        assert_eq!(t.u, 45.0);
        assert!(close(t.p_value, 0.723_932_039_613_975_7), "{}", t.p_value);
        assert!(
            r.reason.starts_with("no significant difference: median"),
            "{}",
            r.reason
        );

        let r = compare(&metric(), &HIGH[..4], &BASE, 0.05, 5);
        assert_eq!(r.classification, Classification::NoData);
        assert!(!r.counts_against);
        assert!(r.test.is_none());
        assert_eq!(
            r.reason,
            "too few samples: canary 4, baseline 7 (at least 5 each)"
        );
        assert_eq!(
            compare(&metric(), &[], &[], 0.05, 3).classification,
            Classification::NoData
        );
    }

    #[test]
    fn any_rise_from_a_zero_median_is_beyond_a_relative_tolerance() {
        let zeros = [0.0; 8];
        let errors = [0.0, 0.01, 0.02, 0.01, 0.03, 0.02, 0.01, 0.02];
        let r = compare(
            &metric().tolerance(Tolerance::Relative(10.0)),
            &errors,
            &zeros,
            0.05,
            5,
        );
        assert_eq!(r.classification, Classification::High);
        assert_eq!(r.relative_change, Some(f64::INFINITY));
        assert!(r.reason.contains("(up from zero)"), "{}", r.reason);
        // An absolute tolerance can allow it.
        let r = compare(
            &metric().tolerance(Tolerance::Absolute(0.05)),
            &errors,
            &zeros,
            0.05,
            5,
        );
        assert_eq!(r.classification, Classification::Pass);
    }

    fn report(classification: Classification, counts_against: bool) -> MetricReport {
        MetricReport {
            classification,
            counts_against,
            test: None,
            canary_median: None,
            baseline_median: None,
            absolute_change: None,
            relative_change: None,
            significant: false,
            reason: classification.as_str().to_owned(),
        }
    }

    fn weighted(name: &str, weight: f64, critical: bool) -> CanaryMetric {
        CanaryMetric::new(name, "c", "b")
            .weight(weight)
            .critical(critical)
    }

    #[test]
    fn the_score_is_the_weighted_share_of_passing_metrics_with_data() {
        use Classification::*;
        let pass = report(Pass, false);
        let high = report(High, true);
        let harmless = report(Low, false);
        let none = report(NoData, false);

        let ms = [weighted("a", 1.0, false), weighted("b", 3.0, false)];
        let o = judge_overall(&ms, &[pass.clone(), harmless.clone()], 95.0, 75.0);
        assert_eq!((o.score, o.result), (Some(100.0), CanaryResult::Pass));
        assert_eq!(
            o.reason,
            "score 100.0 (pass ≥ 95): 2 of 2 metrics with data pass"
        );

        let o = judge_overall(&ms, &[pass.clone(), high.clone()], 95.0, 75.0);
        assert_eq!((o.score, o.result), (Some(25.0), CanaryResult::Fail));
        assert_eq!(
            o.reason,
            "score 25.0 below the marginal threshold 75: b high"
        );

        let ms = [weighted("a", 9.0, false), weighted("b", 1.0, false)];
        let o = judge_overall(&ms, &[pass.clone(), high.clone()], 95.0, 75.0);
        assert_eq!((o.score, o.result), (Some(90.0), CanaryResult::Marginal));
        assert_eq!(
            o.reason,
            "score 90.0 is marginal (pass ≥ 95, marginal ≥ 75): b high"
        );
        // With lower thresholds the same canary passes, naming what failed.
        let o = judge_overall(&ms, &[pass.clone(), high.clone()], 90.0, 50.0);
        assert_eq!(o.result, CanaryResult::Pass);
        assert!(o.reason.ends_with("; failing: b high"), "{}", o.reason);

        // A metric without data does not count.
        let o = judge_overall(&ms, &[none.clone(), pass.clone()], 95.0, 75.0);
        assert_eq!((o.score, o.result), (Some(100.0), CanaryResult::Pass));
        assert!(
            o.reason.ends_with("; without data: a nodata"),
            "{}",
            o.reason
        );
        let o = judge_overall(&ms, &[none.clone(), none.clone()], 95.0, 75.0);
        assert_eq!((o.score, o.result), (None, CanaryResult::NoData));
        assert_eq!(o.reason, "no metric has data: a nodata; b nodata");
    }

    #[test]
    fn critical_metrics_fail_the_canary_or_leave_it_undecided() {
        use Classification::*;
        let ms = [weighted("errors", 1.0, true), weighted("cpu", 9.0, false)];
        let o = judge_overall(&ms, &[report(High, true), report(Pass, false)], 95.0, 75.0);
        assert_eq!((o.score, o.result), (Some(0.0), CanaryResult::Fail));
        assert_eq!(o.reason, "critical metric errors high");
        // A harmless change of a critical metric is fine.
        let o = judge_overall(&ms, &[report(Low, false), report(Pass, false)], 95.0, 75.0);
        assert_eq!(o.result, CanaryResult::Pass);
        // A critical metric without data cannot be vouched for, even at 100.
        let o = judge_overall(
            &ms,
            &[report(NoData, false), report(Pass, false)],
            95.0,
            75.0,
        );
        assert_eq!((o.score, o.result), (Some(100.0), CanaryResult::NoData));
        assert_eq!(o.reason, "critical metric without data: errors nodata");
        // But a score below marginal still fails.
        let o = judge_overall(
            &ms,
            &[report(NoData, false), report(High, true)],
            95.0,
            75.0,
        );
        assert_eq!(o.result, CanaryResult::Fail);
    }

    #[test]
    fn samples_are_every_finite_point_of_every_series() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let series = |values: &[f64]| Series {
            labels: Default::default(),
            points: values.iter().map(|v| Point { at, value: *v }).collect(),
        };
        let m = QueryResult::Matrix(vec![
            series(&[1.0, f64::NAN, 2.0]),
            series(&[f64::INFINITY, 3.0]),
        ]);
        assert_eq!(
            samples(&m),
            Ok(SampleSet {
                values: vec![1.0, 2.0, 3.0],
                dropped: 2,
                series: 2
            })
        );
        assert_eq!(
            samples(&QueryResult::Matrix(vec![])),
            Ok(SampleSet {
                values: vec![],
                dropped: 0,
                series: 0
            })
        );
        assert!(samples(&QueryResult::String {
            at,
            value: "x".into()
        })
        .unwrap_err()
        .contains("string"));
    }

    fn builder() -> CanaryGateBuilder {
        CanaryGate::builder("http://127.0.0.1:9090").metric(metric())
    }

    #[test]
    fn bad_settings_are_typed_errors_naming_metric_and_field() {
        let err = |b: CanaryGateBuilder| b.build().unwrap_err().to_string();
        assert_eq!(
            err(CanaryGate::builder("http://127.0.0.1:9090")),
            "canary gate `canary-analysis`: no metric to compare"
        );
        assert_eq!(
            err(builder().metric(metric())),
            "canary gate `canary-analysis`: metric name `latency`: it is used twice"
        );
        assert_eq!(
            err(builder().metric(CanaryMetric::new(" ", "a", "b"))),
            "canary gate `canary-analysis`: metric name ` `: it is blank"
        );
        assert_eq!(
            err(builder().metric(CanaryMetric::new("errors", "a", ""))),
            "canary gate `canary-analysis`: metric `errors`: baseline_query is empty"
        );
        assert_eq!(
            err(builder().metric(CanaryMetric::new("errors", "a", "b").weight(0.0))),
            "canary gate `canary-analysis`: metric `errors`: weight 0 must be a positive finite number"
        );
        assert!(
            err(builder().metric(CanaryMetric::new("e", "a", "b").weight(f64::NAN)))
                .contains("weight NaN")
        );
        assert_eq!(
            err(builder().metric(
                CanaryMetric::new("errors", "a", "b").tolerance(Tolerance::Relative(-0.1))
            )),
            "canary gate `canary-analysis`: metric `errors`: tolerance -0.1 must be a finite number ≥ 0"
        );
        assert!(err(builder().metric(
            CanaryMetric::new("e", "a", "b").tolerance(Tolerance::Absolute(f64::INFINITY))
        ))
        .contains("tolerance +Inf"));
        assert_eq!(
            err(builder().score_thresholds(70.0, 80.0)),
            "canary gate `canary-analysis`: score thresholds pass 70 and marginal 80: need 0 ≤ marginal ≤ pass ≤ 100"
        );
        assert!(err(builder().score_thresholds(101.0, 80.0)).contains("pass 101"));
        assert!(err(builder().score_thresholds(f64::NAN, 80.0)).contains("pass NaN"));
        assert!(builder().score_thresholds(80.0, 80.0).build().is_ok());
        for alpha in [0.0, 1.0, f64::NAN] {
            assert!(
                err(builder().significance(alpha)).contains("significance"),
                "{alpha}"
            );
        }
        assert_eq!(
            err(builder().min_samples(2)),
            "canary gate `canary-analysis`: min_samples 2 is below 3"
        );
        assert!(err(builder().step(Duration::from_millis(500))).contains("step 500ms"));
        assert!(err(builder()
            .lookback(Duration::from_secs(5))
            .step(Duration::from_secs(10)))
        .contains("lookback 5s"));
        assert_eq!(
            err(builder()
                .lookback(Duration::from_secs(60))
                .step(Duration::from_secs(10))),
            "canary gate `canary-analysis`: lookback and step give 7 points per series; fewer \
             than min_samples 10, so no metric could ever have enough"
        );
        assert!(err(builder()
            .lookback(Duration::from_secs(86_400))
            .step(Duration::from_secs(1)))
        .contains("86401 points per series; Prometheus allows 11000"));
        assert!(err(builder().timeout(Duration::ZERO)).contains("timeout"));
        assert!(matches!(
            CanaryGate::builder("http://a b").metric(metric()).build(),
            Err(CanaryConfigError::Prometheus {
                source: PrometheusConfigError::InvalidUrl { .. },
                ..
            })
        ));
        assert!(matches!(
            builder().name(" bad").build(),
            Err(CanaryConfigError::InvalidName(_))
        ));
    }

    #[test]
    fn the_gate_waits_until_the_window_holds_only_data_from_the_phase() {
        let t0: DateTime<Utc> = "2026-11-26T09:00:00Z".parse().unwrap();
        let ev = Event {
            at: t0,
            actor: Actor::Engine,
            request: None,
            body: EventBody::StageStarted {
                stage: StageName::new("test").unwrap(),
            },
        };
        let state = ReleaseState::replay([&ev]);
        let gate = builder().build().unwrap();
        let probe = GateProbe::new()
            .state(state)
            .at("2026-11-26T09:01:00Z".parse().unwrap());
        // No request is made before the window is full.
        let Ok(Verdict::Pending {
            evidence,
            retry_after,
        }) = block_on(probe.evaluate(&gate))
        else {
            panic!("expected pending")
        };
        assert_eq!(retry_after, Duration::from_secs(540));
        assert_eq!(evidence.data["window_full_at"], "2026-11-26T09:10:00Z");
        assert_eq!(
            evidence.summary,
            "canary-analysis: collecting samples; the 600s analysis window is full at \
             2026-11-26T09:10:00Z"
        );
    }
}
