//! The kinds that watch a rollout's live signals in Prometheus: `metric` (a query against
//! conditions) and `canary` (canary against baseline).

use promotion_gates::canary::{CanaryMetric, Direction as CanaryDirection, Tolerance};
use promotion_gates::metrics::{Condition, QueryMode};
use promotion_gates::{CanaryGate, MetricGate};
use serde::Deserialize;

use super::{built, Built};
use crate::duration::DurationValue;
use crate::error::ConfigError;
use crate::registry::{BuildContext, Settings};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeDoc {
    window: DurationValue,
    step: DurationValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricSettings {
    prometheus: String,
    query: String,
    #[serde(default)]
    success: Option<String>,
    #[serde(default)]
    failure: Option<String>,
    #[serde(default)]
    range: Option<RangeDoc>,
    #[serde(default)]
    initial_delay: Option<DurationValue>,
    #[serde(default)]
    interval: Option<DurationValue>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    failure_limit: Option<u32>,
    #[serde(default)]
    inconclusive_limit: Option<u32>,
    #[serde(default)]
    consecutive_error_limit: Option<u32>,
    #[serde(default)]
    timeout: Option<DurationValue>,
}

fn condition(
    settings: &Settings,
    key: &str,
    text: Option<String>,
) -> Result<Option<Condition>, ConfigError> {
    text.map(|t| {
        t.parse::<Condition>()
            .map_err(|e| settings.error(Some(key), format!("`{t}`: {e}")))
    })
    .transpose()
}

/// `kind = "metric"`: [`MetricGate`].
pub fn metric(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: MetricSettings = settings.deserialize()?;
    let mut b = MetricGate::builder(s.prometheus, s.query);
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    if let Some(c) = condition(settings, "success", s.success)? {
        b = b.success_condition(c);
    }
    if let Some(c) = condition(settings, "failure", s.failure)? {
        b = b.failure_condition(c);
    }
    if let Some(r) = s.range {
        b = b.mode(QueryMode::Range {
            window: r.window.0,
            step: r.step.0,
        });
    }
    if let Some(d) = s.initial_delay {
        b = b.initial_delay(d.0);
    }
    if let Some(d) = s.interval {
        b = b.interval(d.0);
    }
    if let Some(n) = s.count {
        b = b.count(n);
    }
    if let Some(n) = s.failure_limit {
        b = b.failure_limit(n);
    }
    if let Some(n) = s.inconclusive_limit {
        b = b.inconclusive_limit(n);
    }
    if let Some(n) = s.consecutive_error_limit {
        b = b.consecutive_error_limit(n);
    }
    if let Some(d) = s.timeout {
        b = b.timeout(d.0);
    }
    built(settings, b.build())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanaryMetricDoc {
    name: String,
    canary: String,
    baseline: String,
    #[serde(default)]
    direction: Option<CanaryDirectionDoc>,
    #[serde(default)]
    relative_tolerance: Option<f64>,
    #[serde(default)]
    absolute_tolerance: Option<f64>,
    #[serde(default)]
    weight: Option<f64>,
    #[serde(default)]
    critical: Option<bool>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum CanaryDirectionDoc {
    Increase,
    Decrease,
    Either,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanarySettings {
    prometheus: String,
    metrics: Vec<CanaryMetricDoc>,
    #[serde(default)]
    lookback: Option<DurationValue>,
    #[serde(default)]
    step: Option<DurationValue>,
    #[serde(default)]
    min_samples: Option<usize>,
    #[serde(default)]
    significance: Option<f64>,
    #[serde(default)]
    pass_score: Option<f64>,
    #[serde(default)]
    marginal_score: Option<f64>,
    #[serde(default)]
    timeout: Option<DurationValue>,
}

/// `kind = "canary"`: [`CanaryGate`].
pub fn canary(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: CanarySettings = settings.deserialize()?;
    let mut b = CanaryGate::builder(s.prometheus);
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    for m in s.metrics {
        let mut metric = CanaryMetric::new(m.name.clone(), m.canary, m.baseline);
        if let Some(d) = m.direction {
            metric = metric.direction(match d {
                CanaryDirectionDoc::Increase => CanaryDirection::Increase,
                CanaryDirectionDoc::Decrease => CanaryDirection::Decrease,
                CanaryDirectionDoc::Either => CanaryDirection::Either,
            });
        }
        match (m.relative_tolerance, m.absolute_tolerance) {
            (Some(_), Some(_)) => {
                let problem = format!("metric `{}` sets both tolerances; choose one", m.name);
                return Err(settings.error(Some("metrics"), problem));
            }
            (Some(r), None) => metric = metric.tolerance(Tolerance::Relative(r)),
            (None, Some(a)) => metric = metric.tolerance(Tolerance::Absolute(a)),
            (None, None) => {}
        }
        if let Some(w) = m.weight {
            metric = metric.weight(w);
        }
        if let Some(c) = m.critical {
            metric = metric.critical(c);
        }
        b = b.metric(metric);
    }
    if let Some(d) = s.lookback {
        b = b.lookback(d.0);
    }
    if let Some(d) = s.step {
        b = b.step(d.0);
    }
    if let Some(n) = s.min_samples {
        b = b.min_samples(n);
    }
    if let Some(a) = s.significance {
        b = b.significance(a);
    }
    match (s.pass_score, s.marginal_score) {
        (None, None) => {}
        (pass, marginal) => {
            b = b.score_thresholds(pass.unwrap_or(95.0), marginal.unwrap_or(75.0));
        }
    }
    if let Some(d) = s.timeout {
        b = b.timeout(d.0);
    }
    built(settings, b.build())
}

#[cfg(test)]
mod tests {
    use crate::builtin::tests::ctx;
    use crate::registry::{GateRegistry, Settings};

    #[test]
    fn metric_and_canary_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let r = GateRegistry::builtin();
        let build = |kind: &str, text: &str| {
            let settings = Settings::parse("g.toml", text).unwrap();
            r.construct(kind, &settings, &ctx(dir.path(), None))
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        let err = build(
            "metric",
            "prometheus = \"http://p:9090\"\nquery = \"up\"\nsuccess = \"result ~ 3\"\n",
        );
        assert!(
            err.starts_with("g.toml:") && err.contains("`result ~ 3`"),
            "{err}"
        );
        let err = build("metric", "prometheus = \"http://p:9090\"\nquery = \"up\"\n");
        assert!(err.contains("condition"), "no condition at all: {err}");
        let err = build(
            "canary",
            "prometheus = \"http://p:9090\"\n[[metrics]]\nname = \"e\"\ncanary = \"a\"\nbaseline = \"b\"\n\
             relative_tolerance = 0.1\nabsolute_tolerance = 0.1\n",
        );
        assert!(err.contains("both tolerances; choose one"), "{err}");
        let err = build("canary", "prometheus = \"http://p:9090\"\nmetrics = []\n");
        assert!(err.starts_with("g.toml:"), "{err}");
    }
}
