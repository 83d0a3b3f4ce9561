//! Configuring a [`CanaryGate`]: its metrics, lookback, step, sample and score thresholds, every
//! setting checked when the gate is built ([`CanaryConfigError`] names the metric and field).

use std::time::Duration;

use promotion_core::GateName;

use crate::prometheus::{
    configure_prometheus, PrometheusConfigError, MAX_POINTS_PER_SERIES, MIN_INTERVAL,
};

use crate::metrics::fmt_num;

use super::{CanaryGate, CanaryMetric, MIN_MIN_SAMPLES};

/// A canary gate configured wrongly; returned by [`CanaryGateBuilder::build`]. Names the gate,
/// the metric and the field.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CanaryConfigError {
    /// The gate's name is not a valid gate name.
    #[error("canary gate: {0}")]
    InvalidName(#[from] promotion_core::InvalidName),
    /// The Prometheus URL, timeout or client is unusable.
    #[error("canary gate `{gate}`: {source}")]
    Prometheus {
        gate: String,
        /// What is wrong.
        #[source]
        source: PrometheusConfigError,
    },
    /// No metric to compare.
    #[error("canary gate `{gate}`: no metric to compare")]
    NoMetrics { gate: String },
    /// A metric's name is blank or used twice.
    #[error("canary gate `{gate}`: metric name `{metric}`: {problem}")]
    InvalidMetricName {
        gate: String,
        /// The name as given.
        metric: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A metric's query is empty.
    #[error("canary gate `{gate}`: metric `{metric}`: {field} is empty")]
    EmptyQuery {
        gate: String,
        metric: String,
        /// `canary_query` or `baseline_query`.
        field: &'static str,
    },
    /// A metric's weight is not a positive finite number.
    #[error("canary gate `{gate}`: metric `{metric}`: weight {} must be a positive finite number", fmt_num(*.weight))]
    InvalidWeight {
        gate: String,
        metric: String,
        /// The weight as given.
        weight: f64,
    },
    /// A metric's tolerance is negative or not finite.
    #[error("canary gate `{gate}`: metric `{metric}`: tolerance {} must be a finite number ≥ 0", fmt_num(*.tolerance))]
    InvalidTolerance {
        gate: String,
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
        gate: String,
        /// The pass threshold as given.
        pass: f64,
        /// The marginal threshold as given.
        marginal: f64,
    },
    /// The significance level is not strictly between 0 and 1.
    #[error("canary gate `{gate}`: significance {} must be between 0 and 1", fmt_num(*.value))]
    InvalidSignificance {
        gate: String,
        /// The level as given.
        value: f64,
    },
    /// `min_samples` is below [`MIN_MIN_SAMPLES`].
    #[error("canary gate `{gate}`: min_samples {value} is below {MIN_MIN_SAMPLES}")]
    TooFewMinSamples {
        gate: String,
        /// The value as given.
        value: usize,
    },
    /// The lookback or step is out of range.
    #[error("canary gate `{gate}`: {field} {value:?}: {problem}")]
    InvalidDuration {
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
    pub(super) name: String,
    pub(super) prometheus_url: String,
    pub(super) timeout: Duration,
    pub(super) client: Option<reqwest::Client>,
    pub(super) metrics: Vec<CanaryMetric>,
    pub(super) lookback: Duration,
    pub(super) step: Duration,
    pub(super) min_samples: usize,
    pub(super) significance: f64,
    pub(super) pass: f64,
    pub(super) marginal: f64,
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
    /// The analysis window, ending at each evaluation (default [`DEFAULT_LOOKBACK`](super::DEFAULT_LOOKBACK)).
    pub fn lookback(mut self, lookback: Duration) -> Self {
        self.lookback = lookback;
        self
    }
    /// The resolution of the range queries (default [`DEFAULT_STEP`](super::DEFAULT_STEP), at least one second).
    pub fn step(mut self, step: Duration) -> Self {
        self.step = step;
        self
    }
    /// Samples needed on each side of a metric (default [`DEFAULT_MIN_SAMPLES`](super::DEFAULT_MIN_SAMPLES)).
    pub fn min_samples(mut self, n: usize) -> Self {
        self.min_samples = n;
        self
    }
    /// The significance level of the test (default [`DEFAULT_SIGNIFICANCE`](super::DEFAULT_SIGNIFICANCE)).
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
    /// Limits each request to Prometheus (default [`DEFAULT_TIMEOUT`](crate::prometheus::DEFAULT_TIMEOUT)).
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
