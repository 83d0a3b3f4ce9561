//! Reports from the log: DORA metrics, gate pass rates, approvals and overrides, and where
//! recent releases stand — a pure function of the events, serialisable as JSON for hosts that
//! build their own dashboards, and the input of [`render_html`](crate::render_html).
//!
//! # What is counted
//!
//! A report covers a [`Period`] `[from, to)` and is **as of `to`**: events at or after `to` are
//! ignored altogether, so a report for a past week never changes. Metrics count events inside
//! the period; the release table shows each release's state at `to`. Releases are grouped by
//! the pipeline they were registered in. Production is every stage whose name is in
//! [`ReportOptions::production_stages`] (default `production` and `prod`).
//!
//! - **Deployment frequency**: production promotions (`stage_promoted` in a production stage)
//!   in the period, per day (divided by the period's length in days) and per week (× 7).
//! - **Lead time for changes**: for each of those promotions, the promotion's time minus the
//!   release's source commit time. Median and 90th percentile.
//! - **Change failure rate**: failed production deployments / production deployments. A
//!   production deployment is a release's rollout into a production stage, dated by its first
//!   `step_deployed` (or `deployment_failed`) event, counted when that date is in the period.
//!   It failed when, after it started, an analysis or verification phase failed, a step failed
//!   to deploy, or a rollback started (automatic or asked for by a person, before or after the
//!   promotion). A deployment counts once however many of these happened; a failed entry gate
//!   deploys nothing and is not a deployment failure.
//! - **Time to restore**: for each such failure in the period, the time from its first failure
//!   event to the next promotion into the same stage (of any release) before `to`. Median and
//!   90th percentile; failures not restored by `to` are counted as unrestored.
//! - **Gate pass rates**: per stage, phase and gate, the evaluations in the period by outcome;
//!   the pass rate is passes / (passes + fails + inconclusive). Errors (the gate could not
//!   decide) and pending answers are counted but are not verdicts.
//! - **Approval waits**: from `approval_requested` to the stage being scheduled, rejected or
//!   aborted, for requests in the period; requests still open at `to` are counted as pending.
//! - **Overrides**: every break-glass override in the period, with who and why.
//!
//! - **Compliance** of a release, as of `to`: `blocked` when a stage failed, was rejected,
//!   aborted or rolled back (or is rolling back); otherwise `exception` when a break-glass
//!   override was used; otherwise `compliant` once a production stage promoted it (every gate
//!   passed or was judged, every approval given); otherwise `in_progress`.
//!
//! Statistics: the median is the middle value (the mean of the two middle values for an even
//! count); the 90th percentile is the nearest-rank value (the ⌈0.9·n⌉-th smallest). Durations
//! are in seconds.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use promotion_core::{Event, EventBody, EventStore, Outcome, PhaseId, ReleaseState, StoreError};
use serde::{Deserialize, Serialize};

mod finish;
mod model;
mod projections;

use finish::{compliance, finish};
pub use model::{
    ApprovalEntry, Compliance, Dora, FailureEntry, GateStats, GateVerdict, LeadTimePoint,
    OverrideEntry, PassRatePoint, PipelineReport, RefusedAttempt, ReleaseRow, StageCell,
};
use projections::{PipelineFacts, Scope};

/// Why a report could not be made.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The period ends before it starts, or is empty.
    #[error("report period from {from} to {to} is empty: it must end after it starts")]
    EmptyPeriod {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    /// The store could not be read.
    #[error("reading the event store: {0}")]
    Store(#[from] StoreError),
}

/// The span a report covers: events with `from <= at < to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// Start, inclusive.
    pub from: DateTime<Utc>,
    /// End, exclusive; the report shows the state as of this time.
    pub to: DateTime<Utc>,
}

impl Period {
    /// The period `[from, to)`; `to` must be after `from`.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Self, ReportError> {
        if to <= from {
            return Err(ReportError::EmptyPeriod { from, to });
        }
        Ok(Period { from, to })
    }
    /// The `days` days up to `to`.
    pub fn days_until(to: DateTime<Utc>, days: u32) -> Result<Self, ReportError> {
        Self::new(to - ChronoDuration::days(i64::from(days)), to)
    }
    /// Whether `at` is inside.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.to
    }
    /// Its length in days (fractional).
    pub fn days(&self) -> f64 {
        seconds(self.from, self.to) / 86_400.0
    }
}

/// How a report is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOptions {
    /// Names of the stages that are production.
    pub production_stages: BTreeSet<String>,
    /// How many of the most recently registered releases the release table shows, per pipeline.
    pub recent_releases: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            production_stages: ["production", "prod"].map(str::to_owned).into(),
            recent_releases: 10,
        }
    }
}

/// Durations: count, median, 90th percentile, extremes and mean, in seconds.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DurationStats {
    /// Number of samples.
    pub count: u64,
    pub median_seconds: f64,
    /// 90th percentile (nearest rank).
    pub p90_seconds: f64,
    pub min_seconds: f64,
    pub max_seconds: f64,
    pub mean_seconds: f64,
}

impl DurationStats {
    /// Statistics of `samples` (seconds); `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut s: Vec<f64> = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let (first, last) = (*s.first()?, *s.last()?);
        let middle = n / 2;
        let median = if n % 2 == 1 {
            *s.get(middle)?
        } else {
            (*s.get(middle.checked_sub(1)?)? + *s.get(middle)?) / 2.0
        };
        // Nearest rank: the ceil(0.9 n)-th smallest, 1-based.
        let rank = (n * 9).div_ceil(10).max(1);
        let p90 = *s.get(rank - 1)?;
        Some(DurationStats {
            count: n as u64,
            median_seconds: median,
            p90_seconds: p90,
            min_seconds: first,
            max_seconds: last,
            mean_seconds: s.iter().sum::<f64>() / n as f64,
        })
    }
}

/// A report over every pipeline found in the log.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub period: Period,
    /// The pipelines, by name.
    pub pipelines: Vec<PipelineReport>,
    /// Commands refused because of who gave them (not eligible, not privileged, a stake in the
    /// release…), from the store's security stream, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_attempts: Vec<RefusedAttempt>,
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

fn phase_label(p: PhaseId) -> String {
    match p {
        PhaseId::Entry => "entry".into(),
        PhaseId::Verification => "verification".into(),
        PhaseId::Analysis { step } => format!("analysis:{step}"),
    }
}

fn outcome_label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::Inconclusive => "inconclusive",
        Outcome::Pending { .. } => "pending",
        Outcome::Error { .. } => "error",
    }
}

impl Report {
    /// The report of every stream of `store` over `period`, with the default options.
    pub async fn from_store(store: &dyn EventStore, period: Period) -> Result<Self, ReportError> {
        Self::from_store_with(store, period, &ReportOptions::default()).await
    }

    /// The report of every stream of `store` over `period`.
    pub async fn from_store_with(
        store: &dyn EventStore,
        period: Period,
        options: &ReportOptions,
    ) -> Result<Self, ReportError> {
        let mut streams = Vec::new();
        for stream in store.streams().await? {
            let events: Vec<Event> = store
                .read(&stream)
                .await?
                .into_iter()
                .map(|r| r.event)
                .collect();
            streams.push(events);
        }
        Ok(Self::from_streams(&streams, period, options))
    }

    /// The report of `streams` (each one release's events, in order) over `period`. Pure.
    /// Streams that do not start with a registration are ignored.
    pub fn from_streams(streams: &[Vec<Event>], period: Period, options: &ReportOptions) -> Self {
        let mut pipelines: BTreeMap<String, PipelineFacts> = BTreeMap::new();
        let mut refused_attempts = Vec::new();
        for events in streams {
            refused_attempts.extend(
                events
                    .iter()
                    .filter(|e| period.contains(e.at))
                    .filter_map(RefusedAttempt::of),
            );
            let events: Vec<&Event> = events.iter().filter(|e| e.at < period.to).collect();
            let Some(EventBody::Registered {
                release,
                pipeline,
                pipeline_version,
                ..
            }) = events.first().map(|e| &e.body)
            else {
                continue;
            };
            let acc = pipelines.entry(pipeline.to_string()).or_default();
            acc.begin_release(pipeline_version);
            let registered_at = events.first().map_or(period.from, |e| e.at);
            let id = release.id();
            let name = release.name().to_owned();
            let committed = release.source().committed_at;
            let scope = Scope {
                period,
                options,
                release: id,
                name: &name,
                committed,
            };
            for (position, e) in events.iter().enumerate() {
                acc.apply(&scope, position, e);
            }
            acc.end_release();
            let overrides_by_stage = &acc.overrides.by_stage;
            let state = ReleaseState::replay(events.iter().copied());
            acc.releases.push((
                registered_at,
                ReleaseRow {
                    release: id,
                    name,
                    commit: release.source().commit.clone(),
                    committed_at: committed,
                    registered_at,
                    stages: Vec::new(),
                    compliance: Compliance::InProgress,
                    overrides: overrides_by_stage.values().sum(),
                },
            ));
            if let Some((_, row)) = acc.releases.last_mut() {
                let mut cells: Vec<StageCell> = state
                    .stages()
                    .map(|(s, st)| StageCell {
                        stage: s.to_string(),
                        status: st.status().label().to_owned(),
                        overrides: overrides_by_stage.get(s.as_str()).copied().unwrap_or(0),
                    })
                    .collect();
                cells.sort_by(|a, b| a.stage.cmp(&b.stage));
                row.stages = cells;
                row.compliance = compliance(&state, row.overrides, options);
            }
        }
        refused_attempts.sort_by_key(|a: &RefusedAttempt| a.at);
        Report {
            period,
            pipelines: pipelines
                .into_iter()
                .map(|(name, acc)| finish(name, acc, period, options))
                .collect(),
            refused_attempts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_use_the_documented_definitions() {
        let s = DurationStats::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.count, 4);
        assert_eq!(s.median_seconds, 2.5); // mean of the two middle values
        assert_eq!(s.p90_seconds, 4.0); // ceil(3.6) = 4th smallest
        assert_eq!(s.min_seconds, 1.0);
        assert_eq!(s.max_seconds, 4.0);
        assert_eq!(s.mean_seconds, 2.5);
        let odd = DurationStats::of(&[10.0, 30.0, 20.0]).unwrap();
        assert_eq!(odd.median_seconds, 20.0);
        assert_eq!(odd.p90_seconds, 30.0); // ceil(2.7) = 3rd
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(DurationStats::of(&ten).unwrap().p90_seconds, 9.0); // 9th of 10
        assert_eq!(DurationStats::of(&[7.0]).unwrap().p90_seconds, 7.0);
        assert!(DurationStats::of(&[]).is_none());
    }

    #[test]
    fn periods_must_not_be_empty() {
        let t: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
        assert!(matches!(
            Period::new(t, t),
            Err(ReportError::EmptyPeriod { .. })
        ));
        let p = Period::days_until(t, 7).unwrap();
        assert_eq!(p.days(), 7.0);
        assert!(p.contains(p.from));
        assert!(!p.contains(p.to));
    }
}
