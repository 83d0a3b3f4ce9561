//! Configuring a [`MetricGate`]: the query mode, the schedule, the conditions and the limits,
//! every one checked when the gate is built ([`MetricConfigError`] names the field).

use std::time::Duration;

use promotion_core::GateName;

use crate::prometheus::{
    configure_prometheus, PrometheusConfigError, MAX_POINTS_PER_SERIES, MIN_INTERVAL,
};

use super::{fmt_num, Condition, MetricGate};

/// How each measurement reads the query.
#[allow(missing_docs)] // the fields are named for what they hold
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
        step: Duration,
    },
}

/// A metric gate configured wrongly; returned by [`MetricGateBuilder::build`]. Names the gate
/// and the field.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricConfigError {
    /// The gate's name is not a valid gate name.
    #[error("metric gate: {0}")]
    InvalidName(#[from] promotion_core::InvalidName),
    /// The Prometheus URL, timeout or client is unusable.
    #[error("metric gate `{gate}`: {source}")]
    Prometheus {
        gate: String,
        /// What is wrong.
        #[source]
        source: PrometheusConfigError,
    },
    /// The query is empty.
    #[error("metric gate `{gate}`: query: the query is empty")]
    EmptyQuery { gate: String },
    /// Neither a success nor a failure condition: every measurement would pass unjudged.
    #[error(
        "metric gate `{gate}`: neither success_condition nor failure_condition is set; \
         every measurement would pass without being judged"
    )]
    NoCondition { gate: String },
    /// A condition's threshold is NaN or infinite.
    #[error("metric gate `{gate}`: {field}: the threshold {} is not a finite number", fmt_num(*.value))]
    InvalidThreshold {
        gate: String,
        /// `success_condition` or `failure_condition`.
        field: &'static str,
        /// The threshold as given.
        value: f64,
    },
    /// `count` is zero.
    #[error("metric gate `{gate}`: count: at least one measurement is needed")]
    ZeroCount { gate: String },
    /// A duration is out of range.
    #[error("metric gate `{gate}`: {field} {value:?}: {problem}")]
    InvalidDuration {
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
        gate: String,
        /// `failure_limit` or `inconclusive_limit`.
        field: &'static str,
        limit: u32,
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
        gate: String,
        /// Points needed.
        points: u64,
    },
}

/// Builder for [`MetricGate`]; every setting is validated in
/// [`build`](MetricGateBuilder::build).
#[derive(Debug, Clone)]
pub struct MetricGateBuilder {
    pub(super) name: String,
    pub(super) prometheus_url: String,
    pub(super) timeout: Duration,
    pub(super) client: Option<reqwest::Client>,
    pub(super) query: String,
    pub(super) mode: QueryMode,
    pub(super) success: Option<Condition>,
    pub(super) failure: Option<Condition>,
    pub(super) initial_delay: Duration,
    pub(super) interval: Duration,
    pub(super) count: u32,
    pub(super) failure_limit: u32,
    pub(super) inconclusive_limit: u32,
    pub(super) consecutive_error_limit: u32,
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
