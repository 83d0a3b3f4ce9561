//! The [`MetricGate`] at evaluation time: measuring every due instant in one Prometheus request,
//! judging each measurement, tallying them as Argo does, and writing the evidence and facts.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use promotion_core::clock::{add, elapsed};
use promotion_core::machine::GateRecord;
use promotion_core::{Evidence, Gate, GateContext, GateError, Outcome, Verdict};
use serde::Serialize;

use crate::prometheus::{
    millis, Prometheus, PrometheusError, QueryResponse, QueryResult, Series, DEFAULT_TIMEOUT,
};

use super::evidence::{
    DecisiveReading, Endpoint, ErrorEvidence, ErrorStatus, EvidenceTallies, MeasuredEvidence,
    MeasurementRecord, MeasurementValues, MetricSettings, MetricValue, ModeSettings, SeriesSummary,
    SeriesValue, WaitingEvidence,
};
use super::{
    fmt_labels, fmt_num, rfc3339, time_of, AnalysisStatus, Assessment, Condition, Judged,
    MeasurementPhase, MetricGate, MetricGateBuilder, QueryMode, Reading, Schedule, Tallies,
};

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

    pub(super) fn judge_readings(&self, readings: &[Reading]) -> Judged {
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

    pub(super) fn schedule(&self, started: DateTime<Utc>) -> Schedule {
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
    ) -> Result<(QueryResponse, Endpoint), PrometheusError> {
        let first = schedule.first_ms;
        let last = schedule.at_ms(due.saturating_sub(1));
        let (window, step) = self.window_step_ms();
        if due == 1 && self.mode == QueryMode::Instant {
            let r = self.prometheus.instant(&self.query, time_of(first)).await?;
            return Ok((r, Endpoint::Query));
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
        Ok((r, Endpoint::QueryRange))
    }

    /// The readings of each due measurement.
    pub(super) fn readings(
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
            .gate(ctx.gate.as_str())
    }

    fn settings(&self) -> MetricSettings {
        MetricSettings {
            prometheus: self.prometheus.url().as_str().to_owned(),
            query: self.query.clone(),
            mode: match self.mode {
                QueryMode::Instant => ModeSettings::Instant {},
                QueryMode::Range { window, step } => ModeSettings::Range {
                    window_seconds: window.as_secs_f64(),
                    step_seconds: step.as_secs_f64(),
                },
            },
            success_condition: self.success,
            failure_condition: self.failure,
            initial_delay_seconds: self.initial_delay.as_secs_f64(),
            interval_seconds: self.interval.as_secs_f64(),
            count: self.count,
            failure_limit: self.failure_limit,
            inconclusive_limit: self.inconclusive_limit,
            consecutive_error_limit: self.consecutive_error_limit,
        }
    }

    /// Evidence data as JSON; the typed evidence always converts, but a failure would be an
    /// error naming the gate rather than evidence with a hole in it.
    fn data(&self, evidence: &impl Serialize) -> Result<serde_json::Value, GateError> {
        serde_json::to_value(evidence).map_err(|e| GateError::Other {
            message: format!("metric gate `{}`: cannot write its evidence", self.name),
            source: Some(Box::new(e)),
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
            .filter(|r| matches!(r.outcome(), Outcome::Error { .. }))
            .map_or(0, GateRecord::consecutive_errors);
        let errors = before.saturating_add(1);
        if errors <= self.consecutive_error_limit {
            return Err(error);
        }
        let report = error.report();
        let summary = format!(
            "{}: {errors} measurement errors in a row, more than the limit {}; last: {report}",
            self.name, self.consecutive_error_limit
        );
        let data = self.data(&ErrorEvidence {
            config: self.settings(),
            status: ErrorStatus::Error,
            error: report,
            consecutive_errors: errors,
        })?;
        let evidence = Evidence::new(self.name.as_str(), now, summary)
            .with_data(data)
            .with_fact("status", "error")
            .with_fact("consecutive_errors", errors.to_string());
        Ok(Verdict::Fail(evidence))
    }
}

pub(super) fn measurement_values(readings: &[Reading], ranged: bool) -> MeasurementValues {
    if !ranged {
        return MeasurementValues::Instant(
            readings
                .iter()
                .map(|r| SeriesValue {
                    labels: r.labels.clone(),
                    value: MetricValue(r.value),
                })
                .collect(),
        );
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
    MeasurementValues::Range(
        by_series
            .values()
            .map(|(labels, values)| {
                let numbers: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
                SeriesSummary {
                    labels: (*labels).clone(),
                    points: values.len(),
                    nan_points: values.len() - numbers.len(),
                    min: numbers.iter().copied().reduce(f64::min).map(MetricValue),
                    max: numbers.iter().copied().reduce(f64::max).map(MetricValue),
                }
            })
            .collect(),
    )
}

/// The values of a measurement in a few words (`0.002`, `3 values from 0.001 to 0.004`).
pub(super) fn describe(readings: &[Reading]) -> String {
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
            .started_at()
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
        let first_measurement_at = time_of(schedule.first_ms);
        let facts = |ev: Evidence, status: AnalysisStatus, t: &Tallies| {
            ev.with_fact("status", status.as_str())
                .with_fact("measured", t.measured.to_string())
                .with_fact("successful", t.successful.to_string())
                .with_fact("failed", t.failed.to_string())
                .with_fact("inconclusive", t.inconclusive.to_string())
                .with_fact("consecutive_errors", "0")
        };

        if due == 0 {
            let first = first_measurement_at;
            let retry_after = elapsed(now, first).max(Duration::from_millis(1));
            let data = self.data(&WaitingEvidence {
                config: self.settings(),
                phase_started_at: started,
                first_measurement_at,
                next_measurement_at: first,
                measurements: Vec::new(),
                status: AnalysisStatus::Running,
            })?;
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
        let measurements: Vec<MeasurementRecord> = (1..)
            .zip(per_measurement.iter().zip(&judged))
            .take(counted)
            .map(|(index, (readings, j))| MeasurementRecord {
                index,
                at: time_of(schedule.at_ms(index - 1)),
                phase: j.phase,
                reason: j.reason.clone(),
                values: measurement_values(readings, ranged),
                decisive: j
                    .decisive
                    .and_then(|i| readings.get(i))
                    .map(|r| DecisiveReading {
                        labels: r.labels.clone(),
                        at: r.at,
                        value: MetricValue(r.value),
                    }),
            })
            .collect();

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
        let data = self.data(&MeasuredEvidence {
            config: self.settings(),
            phase_started_at: started,
            first_measurement_at,
            request: response.url.clone(),
            endpoint,
            result_type: response.result.result_type().to_owned(),
            warnings: response.warnings.clone(),
            measurements,
            tallies: EvidenceTallies {
                measured: tallies.measured,
                successful: tallies.successful,
                failed: tallies.failed,
                inconclusive: tallies.inconclusive,
                consecutive_errors: 0,
            },
            status,
            next_measurement_at: (status == AnalysisStatus::Running)
                .then(|| time_of(schedule.at_ms(due))),
        })?;
        let evidence = Evidence::new(n, now, summary)
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
