//! What a report holds, as serialised: the DORA metrics, gate statistics and verdicts,
//! approvals, overrides and the release table of each pipeline.

use chrono::{DateTime, NaiveDate, Utc};
use promotion_core::{Digest, ReleaseId};
use serde::{Deserialize, Serialize};

use super::DurationStats;

/// The four DORA metrics of one pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dora {
    /// Production promotions in the period.
    pub production_promotions: u64,
    /// Production promotions per day.
    pub deployments_per_day: f64,
    /// Production promotions per week.
    pub deployments_per_week: f64,
    /// Commit to production promotion.
    pub lead_time: Option<DurationStats>,
    /// Production deployments (rollouts) started in the period.
    pub production_deployments: u64,
    /// Of those, the ones that failed.
    pub failed_deployments: u64,
    /// `failed_deployments / production_deployments`, when there were deployments.
    pub change_failure_rate: Option<f64>,
    /// Failure to the next promotion into the same stage.
    pub time_to_restore: Option<DurationStats>,
    /// Failures in the period not restored by its end.
    pub unrestored_failures: u64,
    /// The failures, with when they were restored.
    pub failures: Vec<FailureEntry>,
}

/// A failed production deployment.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureEntry {
    pub release: ReleaseId,
    pub release_name: String,
    pub stage: String,
    /// When it failed (first failure event).
    pub failed_at: DateTime<Utc>,
    /// What the first failure event said.
    pub what: String,
    /// When the next promotion into the stage happened, if it did by the period's end.
    pub restored_at: Option<DateTime<Utc>>,
    /// The release that restored it.
    pub restored_by: Option<String>,
}

/// Evaluations of one gate in the period.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateStats {
    pub stage: String,
    /// The phase (`entry`, `analysis:0`, `verification`).
    pub phase: String,
    pub gate: String,
    /// Evaluations recorded.
    pub evaluations: u64,
    /// Pass verdicts.
    pub passed: u64,
    /// Fail verdicts.
    pub failed: u64,
    /// Inconclusive verdicts.
    pub inconclusive: u64,
    /// Errors (no verdict).
    pub errors: u64,
    /// Pending answers.
    pub pending: u64,
    /// passed / (passed + failed + inconclusive).
    pub pass_rate: Option<f64>,
}

/// The latest verdict of a gate, across releases.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateVerdict {
    pub stage: String,
    pub phase: String,
    pub gate: String,
    /// `pass`, `fail`, `inconclusive`, `pending` or `error`.
    pub outcome: String,
    /// The error message, for an error.
    pub error: Option<String>,
    /// The evidence's summary.
    pub summary: Option<String>,
    /// Who produced the evidence.
    pub producer: Option<String>,
    /// The evidence's digest.
    pub evidence_digest: Option<Digest>,
    /// Attachments of the evidence.
    pub attachments: u64,
    pub at: DateTime<Utc>,
    pub release: ReleaseId,
    pub release_name: String,
    /// Who overrode this verdict (break glass), if anyone.
    pub overridden_by: Option<String>,
}

/// An approval or rejection.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalEntry {
    pub release: ReleaseId,
    pub release_name: String,
    pub stage: String,
    /// `approved` or `rejected`.
    pub decision: String,
    pub principal: String,
    /// Their groups at the time.
    pub groups: Vec<String>,
    pub at: DateTime<Utc>,
    /// Their comment.
    pub comment: String,
    /// The evidence digest an approval was bound to.
    pub evidence_digest: Option<Digest>,
    /// The pipeline version an approval was bound to.
    pub pipeline_version: Option<String>,
}

/// A break-glass override.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverrideEntry {
    pub release: ReleaseId,
    pub release_name: String,
    pub stage: String,
    pub phase: String,
    pub gate: String,
    pub principal: String,
    /// Their groups at the time.
    pub groups: Vec<String>,
    pub at: DateTime<Utc>,
    /// The written justification.
    pub justification: String,
    /// The outcome that was overridden.
    pub overridden: String,
    /// The overrider's stake in the release (builder, contributor, initiator), when the
    /// pipeline let such a person break glass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_interest: Option<String>,
}

/// Whether a release went through its gates as the pipeline asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compliance {
    /// Promoted to production with every gate passed and every approval given.
    Compliant,
    /// A break-glass override was used.
    Exception,
    /// A stage failed, was rejected, aborted or rolled back.
    Blocked,
    /// On its way.
    InProgress,
}

impl Compliance {
    /// Its serialised name (`in_progress`).
    pub fn class(self) -> &'static str {
        match self {
            Compliance::Compliant => "compliant",
            Compliance::Exception => "exception",
            Compliance::Blocked => "blocked",
            Compliance::InProgress => "in_progress",
        }
    }
    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            Compliance::Compliant => "compliant",
            Compliance::Exception => "exception",
            Compliance::Blocked => "blocked",
            Compliance::InProgress => "in progress",
        }
    }
}

/// Where a release stands in one stage.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageCell {
    pub stage: String,
    /// Its status (`promoted`, `awaiting_approval`, …).
    pub status: String,
    /// Overrides used in this stage.
    pub overrides: u64,
}

/// A recent release.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRow {
    pub release: ReleaseId,
    pub name: String,
    /// Its source commit.
    pub commit: String,
    /// When the commit was made.
    pub committed_at: DateTime<Utc>,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
    /// Its stages, in pipeline order.
    pub stages: Vec<StageCell>,
    pub compliance: Compliance,
    /// Overrides used, all stages.
    pub overrides: u64,
}

/// A production promotion's lead time.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadTimePoint {
    /// When it was promoted.
    pub at: DateTime<Utc>,
    pub release_name: String,
    /// Commit to promotion, seconds.
    pub seconds: f64,
}

/// Gate verdicts in one bucket of time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassRatePoint {
    /// The bucket's first day (UTC).
    pub day: NaiveDate,
    /// The bucket's length in days.
    pub days: u32,
    /// Pass verdicts.
    pub passed: u64,
    /// Pass, fail and inconclusive verdicts.
    pub verdicts: u64,
}

/// Everything about one pipeline.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineReport {
    pub pipeline: String,
    /// Pipeline versions releases were registered or decided under.
    pub versions: Vec<String>,
    /// Its stages, in the order releases reach them.
    pub stages: Vec<String>,
    /// Which of them are production.
    pub production_stages: Vec<String>,
    /// Releases registered up to the report's end.
    pub releases_total: u64,
    /// DORA metrics.
    pub dora: Dora,
    /// Gate pass rates.
    pub gates: Vec<GateStats>,
    /// Each gate's latest verdict.
    pub latest_verdicts: Vec<GateVerdict>,
    /// Time approvals took.
    pub approval_wait: Option<DurationStats>,
    /// Approval requests still open at the end.
    pub approvals_pending: u64,
    /// Approvals and rejections in the period.
    pub approvals: Vec<ApprovalEntry>,
    /// Break-glass overrides in the period.
    pub overrides: Vec<OverrideEntry>,
    /// The most recently registered releases, newest first.
    pub releases: Vec<ReleaseRow>,
    /// Lead time of each production promotion in the period, in time order.
    pub lead_times: Vec<LeadTimePoint>,
    /// Gate verdicts over time.
    pub pass_rates: Vec<PassRatePoint>,
}

/// A command refused because of who gave it, as the security stream recorded it.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedAttempt {
    pub at: DateTime<Utc>,
    pub release: ReleaseId,
    pub stage: String,
    /// What was tried (`approve`, `override a gate of`).
    pub action: String,
    pub principal: String,
    /// The groups they claimed.
    pub groups: Vec<String>,
    /// Why it was refused.
    pub refusal: String,
}

impl RefusedAttempt {
    /// The attempt an event records, if it is an
    /// [`AttemptRefused`](promotion_core::EventBody::AttemptRefused).
    pub fn of(event: &promotion_core::Event) -> Option<Self> {
        let promotion_core::EventBody::AttemptRefused {
            release,
            stage,
            action,
            principal,
            refusal,
        } = &event.body
        else {
            return None;
        };
        Some(RefusedAttempt {
            at: event.at,
            release: *release,
            stage: stage.to_string(),
            action: action.clone(),
            principal: principal.id.to_string(),
            groups: principal.groups.iter().map(ToString::to_string).collect(),
            refusal: refusal.clone(),
        })
    }
}
