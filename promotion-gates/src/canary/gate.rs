//! The [`CanaryGate`] at evaluation time: the range queries for canary and baseline, the samples
//! they yield, and the evidence of the comparison.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use promotion_core::clock::{add, elapsed};
use promotion_core::{Digest, Evidence, Gate, GateContext, GateError, GateName, Verdict};
use serde_json::{json, Value};

use crate::prometheus::{Prometheus, QueryResponse, QueryResult, DEFAULT_TIMEOUT};

use crate::metrics::num;

use super::{
    compare, fmt_score, judge_overall, CanaryGateBuilder, CanaryMetric, CanaryResult,
    DEFAULT_LOOKBACK, DEFAULT_MARGINAL_SCORE, DEFAULT_MIN_SAMPLES, DEFAULT_PASS_SCORE,
    DEFAULT_SIGNIFICANCE, DEFAULT_STEP,
};

/// Compares canary and baseline metric by metric with the Mann–Whitney U test and scores the
/// canary 0–100: pass, marginal (inconclusive, for a human to judge) or fail. See the
/// [module documentation](super).
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
    pub(super) name: GateName,
    pub(super) prometheus: Prometheus,
    pub(super) metrics: Vec<CanaryMetric>,
    pub(super) lookback: Duration,
    pub(super) step: Duration,
    pub(super) min_samples: usize,
    pub(super) significance: f64,
    pub(super) pass: f64,
    pub(super) marginal: f64,
}

/// The samples of one query's answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SampleSet {
    pub(super) values: Vec<f64>,
    pub(super) dropped: usize,
    pub(super) series: usize,
}

pub(super) fn samples(result: &QueryResult) -> Result<SampleSet, String> {
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
            .started_at();
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
