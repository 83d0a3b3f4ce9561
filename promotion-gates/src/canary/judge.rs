//! Judging a canary: each metric compared with the baseline, then the score (0–100) and the
//! overall verdict — pass, marginal or fail — from the metrics' classifications.

use crate::metrics::fmt_num;

use super::{
    fmt_p, mann_whitney_u, median, percent, relative_change, CanaryMetric, Classification,
    Direction, MetricReport, Tolerance,
};

/// Compares one metric's samples.
pub(super) fn compare(
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
pub(super) enum CanaryResult {
    Pass,
    Marginal,
    Fail,
    NoData,
}

impl CanaryResult {
    pub(super) fn as_str(self) -> &'static str {
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
pub(super) struct Overall {
    pub(super) score: Option<f64>,
    pub(super) result: CanaryResult,
    pub(super) reason: String,
}

pub(super) fn judge_overall(
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

pub(super) fn fmt_score(score: f64) -> String {
    format!("{score:.1}")
}
