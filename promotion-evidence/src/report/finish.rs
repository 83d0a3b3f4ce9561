//! From the facts gathered per pipeline to its [`PipelineReport`]: the DORA arithmetic over
//! the period, sorting into pipeline order, compliance of a release, and pass-rate buckets.

use std::collections::BTreeMap;

use chrono::{Duration as ChronoDuration, NaiveDate};
use promotion_core::{ReleaseState, StageStatus};

use super::model::{
    Compliance, Dora, FailureEntry, GateStats, GateVerdict, LeadTimePoint, PassRatePoint,
    PipelineReport, ReleaseRow,
};
use super::projections::{Deployment, PipelineFacts, Promotion};
use super::{seconds, DurationStats, Period, ReportOptions};

pub(super) fn compliance(
    state: &ReleaseState,
    overrides: u64,
    options: &ReportOptions,
) -> Compliance {
    let blocked = state.stages().any(|(_, s)| {
        matches!(
            s.status(),
            StageStatus::Failed
                | StageStatus::Rejected
                | StageStatus::Aborted
                | StageStatus::RolledBack
                | StageStatus::RollingBack
        )
    });
    if blocked {
        Compliance::Blocked
    } else if overrides > 0 {
        Compliance::Exception
    } else if state.stages().any(|(name, s)| {
        options.production_stages.contains(name.as_str()) && s.status() == StageStatus::Promoted
    }) {
        Compliance::Compliant
    } else {
        Compliance::InProgress
    }
}

pub(super) fn finish(
    name: String,
    acc: PipelineFacts,
    period: Period,
    options: &ReportOptions,
) -> PipelineReport {
    let mut stages: Vec<(usize, String)> = acc
        .stage_rank
        .iter()
        .map(|(s, r)| (*r, s.clone()))
        .collect();
    stages.sort();
    let stages: Vec<String> = stages.into_iter().map(|(_, s)| s).collect();
    let production_stages: Vec<String> = stages
        .iter()
        .filter(|s| options.production_stages.contains(s.as_str()))
        .cloned()
        .collect();

    // Deployment frequency and lead time: promotions inside the period.
    let mut promotions: Vec<&Promotion> = acc
        .production
        .promotions
        .iter()
        .filter(|p| period.contains(p.at))
        .collect();
    promotions
        .sort_by(|a, b| (a.at, &a.release_name, &a.stage).cmp(&(b.at, &b.release_name, &b.stage)));
    let lead: Vec<f64> = promotions.iter().map(|p| p.lead_seconds).collect();
    let count = promotions.len() as u64;
    let per_day = count as f64 / period.days();

    // Change failure rate and time to restore.
    let deployments: Vec<&Deployment> = acc
        .production
        .deployments
        .iter()
        .filter(|d| period.contains(d.started))
        .collect();
    let failed = deployments.iter().filter(|d| d.failure.is_some()).count() as u64;
    let mut restores = Vec::new();
    let mut failures = Vec::new();
    let mut unrestored = 0;
    let mut all_failures: Vec<&Deployment> = acc
        .production
        .deployments
        .iter()
        .filter(|d| {
            d.failure
                .as_ref()
                .is_some_and(|(at, _)| period.contains(*at))
        })
        .collect();
    all_failures.sort_by(|a, b| {
        (a.failure.as_ref().map(|f| f.0), a.release)
            .cmp(&(b.failure.as_ref().map(|f| f.0), b.release))
    });
    for d in all_failures {
        let Some((at, what)) = &d.failure else {
            continue;
        };
        let restore = acc
            .production
            .promotions
            .iter()
            .filter(|p| p.stage == d.stage && p.at > *at)
            .min_by(|a, b| (a.at, &a.release_name).cmp(&(b.at, &b.release_name)));
        match restore {
            Some(p) => restores.push(seconds(*at, p.at)),
            None => unrestored += 1,
        }
        failures.push(FailureEntry {
            release: d.release,
            release_name: d.release_name.clone(),
            stage: d.stage.clone(),
            failed_at: *at,
            what: what.clone(),
            restored_at: restore.map(|p| p.at),
            restored_by: restore.map(|p| p.release_name.clone()),
        });
    }

    let mut gates: Vec<GateStats> = acc.gates.stats.into_values().collect();
    for g in &mut gates {
        let verdicts = g.passed + g.failed + g.inconclusive;
        g.pass_rate = (verdicts > 0).then(|| g.passed as f64 / verdicts as f64);
    }
    let rank = |s: &str| stages.iter().position(|x| x == s).unwrap_or(usize::MAX);
    gates.sort_by(|a, b| {
        (rank(&a.stage), &a.phase, &a.gate).cmp(&(rank(&b.stage), &b.phase, &b.gate))
    });
    let mut latest: Vec<GateVerdict> = acc.gates.latest.into_values().collect();
    latest.sort_by(|a, b| {
        (rank(&a.stage), &a.phase, &a.gate).cmp(&(rank(&b.stage), &b.phase, &b.gate))
    });

    let mut releases = acc.releases;
    releases.sort_by(|a, b| (b.0, &a.1.name, a.1.release).cmp(&(a.0, &b.1.name, b.1.release)));
    let releases_total = releases.len() as u64;
    let mut releases: Vec<ReleaseRow> = releases
        .into_iter()
        .take(options.recent_releases)
        .map(|(_, r)| r)
        .collect();
    for r in &mut releases {
        r.stages.sort_by_key(|c| rank(&c.stage));
    }

    let mut approvals = acc.approvals.entries;
    approvals.sort_by(|a, b| {
        (a.at, a.release, &a.stage, &a.principal).cmp(&(b.at, b.release, &b.stage, &b.principal))
    });
    let mut overrides = acc.overrides.entries;
    overrides.sort_by(|a, b| {
        (a.at, a.release, &a.stage, &a.gate).cmp(&(b.at, b.release, &b.stage, &b.gate))
    });

    PipelineReport {
        pipeline: name,
        versions: acc.versions.into_iter().collect(),
        stages,
        production_stages,
        releases_total,
        dora: Dora {
            production_promotions: count,
            deployments_per_day: per_day,
            deployments_per_week: per_day * 7.0,
            lead_time: DurationStats::of(&lead),
            production_deployments: deployments.len() as u64,
            failed_deployments: failed,
            change_failure_rate: (!deployments.is_empty())
                .then(|| failed as f64 / deployments.len() as f64),
            time_to_restore: DurationStats::of(&restores),
            unrestored_failures: unrestored,
            failures,
        },
        gates,
        latest_verdicts: latest,
        approval_wait: DurationStats::of(&acc.approvals.waits),
        approvals_pending: acc.approvals.pending,
        approvals,
        overrides,
        releases,
        lead_times: promotions
            .iter()
            .map(|p| LeadTimePoint {
                at: p.at,
                release_name: p.release_name.clone(),
                seconds: p.lead_seconds,
            })
            .collect(),
        pass_rates: buckets(&acc.gates.verdicts_by_day, period),
    }
}

/// Verdicts per day, or per week for periods longer than 62 days.
fn buckets(by_day: &BTreeMap<NaiveDate, (u64, u64)>, period: Period) -> Vec<PassRatePoint> {
    let first = period.from.date_naive();
    let last = (period.to - ChronoDuration::nanoseconds(1)).date_naive();
    let span = (last - first).num_days().max(0) + 1;
    let days: u32 = if span > 62 { 7 } else { 1 };
    let mut out = Vec::new();
    let mut day = first;
    while day <= last {
        let end = day + ChronoDuration::days(i64::from(days));
        let (passed, verdicts) = by_day
            .range(day..end)
            .fold((0, 0), |(p, v), (_, (dp, dv))| (p + dp, v + dv));
        out.push(PassRatePoint {
            day,
            days,
            passed,
            verdicts,
        });
        day = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    #[test]
    fn long_periods_bucket_by_week() {
        let to: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
        let mut by_day = BTreeMap::new();
        by_day.insert(to.date_naive() - ChronoDuration::days(1), (1, 2));
        let short = buckets(&by_day, Period::days_until(to, 7).unwrap());
        assert_eq!(short.len(), 7);
        assert_eq!(short.last().map(|b| (b.passed, b.verdicts)), Some((1, 2)));
        let long = buckets(&by_day, Period::days_until(to, 70).unwrap());
        assert_eq!(long.len(), 10);
        assert!(long.iter().all(|b| b.days == 7));
        assert_eq!(long.iter().map(|b| b.verdicts).sum::<u64>(), 2);
    }
}
