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
//! - a **critical** metric that fails: [`Verdict::Fail`](promotion_core::Verdict::Fail), with score 0 (as Kayenta does);
//! - no metric with data: [`Verdict::Inconclusive`](promotion_core::Verdict::Inconclusive);
//! - a score below the marginal threshold (default 75): [`Verdict::Fail`](promotion_core::Verdict::Fail);
//! - a critical metric without data: [`Verdict::Inconclusive`](promotion_core::Verdict::Inconclusive) — it cannot be vouched for;
//! - a score below the pass threshold (default 95), a *marginal* canary:
//!   [`Verdict::Inconclusive`](promotion_core::Verdict::Inconclusive), so the phase pauses for a human decision;
//! - otherwise [`Verdict::Pass`](promotion_core::Verdict::Pass).
//!
//! Metrics without data do not count towards the score; the evidence names them.
//!
//! # Waiting for the window
//!
//! When the engine recorded when the phase started (always, inside a pipeline), the gate waits
//! until the phase has run for a whole `lookback` ([`Verdict::Pending`](promotion_core::Verdict::Pending), `retry_after` exactly
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
//! Prometheus errors are [`GateError`](promotion_core::GateError)s naming the request URL, mapped as for the
//! [metric gate](crate::metrics::PrometheusError); the engine counts them against the phase's
//! consecutive-error limit. Every setting is checked when the gate is built
//! ([`CanaryConfigError`] names the metric and the field).

use std::time::Duration;

use serde_json::{json, Value};

mod builder;
mod gate;
mod judge;
mod stats;

use crate::metrics::fmt_num;
pub use builder::{CanaryConfigError, CanaryGateBuilder};
pub use gate::CanaryGate;
#[cfg(test)]
use gate::{samples, SampleSet};
use judge::{compare, fmt_score, judge_overall, CanaryResult};
use stats::{fmt_p, median, percent, relative_change, MetricReport};
pub use stats::{mann_whitney_u, Classification, MannWhitney};

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

#[cfg(test)]
mod tests;
