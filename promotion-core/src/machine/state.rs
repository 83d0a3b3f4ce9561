//! State: what the events of one release fold into.
//!
//! [`ReleaseState`] holds a [`StageState`] per stage that has left Waiting; each stage keeps
//! its [`StageStatus`], the progress of its current [`PhaseState`]s and the approvals,
//! rejections and overrides recorded there. Only [`apply`](super::apply) changes it.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::apply::apply;
use super::event::{ApprovalBinding, Event, FailureReason, Outcome};
use crate::digest::Digest;
use crate::gate::PhaseId;
use crate::name::{GateName, PipelineName, PrincipalId, StageName};
use crate::pipeline::Percent;
use crate::principal::Principal;
use crate::release::Release;
use crate::vecmap::VecMap;

/// Where a release stands in one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StageStatus {
    /// Upstream stages have not promoted it yet.
    #[default]
    Waiting,
    /// Upstreams are satisfied; promotion has not started.
    Ready,
    /// Entry gates are running.
    Checking,
    /// Entry gates passed; approvals are awaited.
    AwaitingApproval,
    /// Approved; deployment is about to start.
    Scheduled,
    /// Rollout step `step` (zero-based) is being deployed or analysed.
    RollingOut {
        /// Current step.
        step: u32,
    },
    /// Verification gates are running.
    Verifying,
    /// Healthy so far; promoted when the soak ends.
    Soaking {
        /// End of the soak.
        until: DateTime<Utc>,
    },
    /// Promoted.
    Promoted,
    /// Being rolled back.
    RollingBack,
    /// A gate or the deployer failed.
    Failed,
    /// An approver rejected it.
    Rejected,
    /// A principal aborted it.
    Aborted,
    /// Rolled back.
    RolledBack,
}

impl StageStatus {
    /// Promoted, Failed, Rejected, Aborted or RolledBack.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            StageStatus::Promoted
                | StageStatus::Failed
                | StageStatus::Rejected
                | StageStatus::Aborted
                | StageStatus::RolledBack
        )
    }
    /// A short name (`rolling_out`).
    pub fn label(&self) -> &'static str {
        match self {
            StageStatus::Waiting => "waiting",
            StageStatus::Ready => "ready",
            StageStatus::Checking => "checking",
            StageStatus::AwaitingApproval => "awaiting_approval",
            StageStatus::Scheduled => "scheduled",
            StageStatus::RollingOut { .. } => "rolling_out",
            StageStatus::Verifying => "verifying",
            StageStatus::Soaking { .. } => "soaking",
            StageStatus::Promoted => "promoted",
            StageStatus::RollingBack => "rolling_back",
            StageStatus::Failed => "failed",
            StageStatus::Rejected => "rejected",
            StageStatus::Aborted => "aborted",
            StageStatus::RolledBack => "rolled_back",
        }
    }
}

impl fmt::Display for StageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageStatus::RollingOut { step } => write!(f, "rolling out (step {})", step + 1),
            StageStatus::Soaking { until } => write!(f, "soaking until {until}"),
            other => f.write_str(&other.label().replace('_', " ")),
        }
    }
}

/// The latest result of one gate in a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateRecord {
    /// Latest outcome.
    pub outcome: Outcome,
    /// Digest of the latest evidence.
    pub evidence_digest: Option<Digest>,
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// Round it was recorded in.
    pub round: u32,
    /// Rounds in a row that ended in an error.
    pub consecutive_errors: u32,
    /// Who overrode it (break glass), if anyone.
    pub overridden_by: Option<PrincipalId>,
    /// Who judged it and how, if it was inconclusive.
    pub judged: Option<(PrincipalId, bool)>,
    /// Facts its latest evidence declared.
    pub facts: std::collections::BTreeMap<String, String>,
}

impl GateRecord {
    /// Passed, overridden, or judged as a pass.
    pub fn is_satisfied(&self) -> bool {
        self.outcome == Outcome::Pass
            || self.overridden_by.is_some()
            || matches!(self.judged, Some((_, true)))
    }
    pub(super) fn is_settled_by_human(&self) -> bool {
        self.overridden_by.is_some() || self.judged.is_some()
    }
}

/// Progress of one phase (entry, the current step's analysis, or verification).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhaseState {
    /// When the phase started.
    pub started_at: Option<DateTime<Utc>>,
    /// Last sampling round.
    pub round: u32,
    /// Latest record per gate.
    pub gates: VecMap<GateName, GateRecord>,
    /// When the next round is due.
    pub next_round_at: Option<DateTime<Utc>>,
    /// Since when every gate has been passing.
    pub passing_since: Option<DateTime<Utc>>,
    /// The inconclusive gate the phase waits on.
    pub paused_on: Option<GateName>,
    /// Whether the phase passed.
    pub passed: bool,
}

/// A recorded approval.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    /// Who, with groups at the time.
    pub principal: Principal,
    pub at: DateTime<Utc>,
    pub comment: String,
    /// What it was bound to.
    pub binding: ApprovalBinding,
    /// Voided by a change of pipeline version after it was given: it never counts again,
    /// whatever version acts later.
    pub voided: bool,
}

/// A recorded rejection.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionRecord {
    /// Who, with groups at the time.
    pub principal: Principal,
    pub at: DateTime<Utc>,
    pub comment: String,
}

/// A recorded break-glass override.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRecord {
    pub gate: GateName,
    pub phase: PhaseId,
    pub principal: PrincipalId,
    pub justification: String,
    pub at: DateTime<Utc>,
}

/// Everything known about a release in one stage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StageState {
    /// Where it stands.
    pub status: StageStatus,
    /// Who started the promotion, if a principal did.
    pub started_by: Option<PrincipalId>,
    /// When promotion into the stage started.
    pub started_at: Option<DateTime<Utc>>,
    /// Entry phase.
    pub entry: PhaseState,
    /// Approvals given.
    pub approvals: Vec<ApprovalRecord>,
    /// The rejection, if any.
    pub rejection: Option<RejectionRecord>,
    /// Approvers that counted when the stage was scheduled.
    pub approvers: Vec<PrincipalId>,
    /// Break-glass overrides.
    pub overrides: Vec<OverrideRecord>,
    /// Current rollout step (zero-based).
    pub step: u32,
    /// When the current step was deployed, if it was.
    pub step_deployed_at: Option<DateTime<Utc>>,
    /// Deployment attempts recorded at the current step (`deployment_started`); 0 in logs
    /// written before attempts were recorded.
    pub deploy_attempts: u32,
    /// Current step's analysis.
    pub analysis: PhaseState,
    /// Weight currently deployed.
    pub deployed: Option<Percent>,
    /// Verification phase.
    pub verification: PhaseState,
    /// Why it failed.
    pub failure: Option<FailureReason>,
    /// Why it is being or was rolled back.
    pub rollback_reason: Option<String>,
    /// Failed rollback attempts and the time of the last one.
    pub rollback_failures: (u32, Option<DateTime<Utc>>),
    /// When it was promoted.
    pub promoted_at: Option<DateTime<Utc>>,
}

impl StageState {
    /// The state of phase `id`, when it is the stage's current one.
    pub fn phase(&self, id: PhaseId) -> &PhaseState {
        match id {
            PhaseId::Entry => &self.entry,
            PhaseId::Analysis { .. } => &self.analysis,
            PhaseId::Verification => &self.verification,
        }
    }
    pub(super) fn phase_mut(&mut self, id: PhaseId) -> &mut PhaseState {
        match id {
            PhaseId::Entry => &mut self.entry,
            PhaseId::Analysis { .. } => &mut self.analysis,
            PhaseId::Verification => &mut self.verification,
        }
    }
    /// The phase whose gates run in the current status.
    pub fn current_phase(&self) -> Option<PhaseId> {
        match self.status {
            StageStatus::Checking => Some(PhaseId::Entry),
            StageStatus::RollingOut { step } if self.step_deployed_at.is_some() => {
                Some(PhaseId::Analysis { step })
            }
            StageStatus::Verifying => Some(PhaseId::Verification),
            _ => None,
        }
    }
}

/// The state of one release, folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReleaseState {
    /// The release, once registered.
    pub release: Option<Arc<Release>>,
    /// Pipeline name.
    pub pipeline: Option<PipelineName>,
    /// Pipeline version currently in force.
    pub pipeline_version: String,
    /// Who registered the release.
    pub initiator: Option<Principal>,
    /// Stages that have left Waiting.
    pub stages: VecMap<StageName, StageState>,
    /// Number of events applied (the stream version).
    pub version: u64,
}

static WAITING: StageState = StageState {
    status: StageStatus::Waiting,
    started_by: None,
    started_at: None,
    entry: PhaseState {
        started_at: None,
        round: 0,
        gates: VecMap::new(),
        next_round_at: None,
        passing_since: None,
        paused_on: None,
        passed: false,
    },
    approvals: Vec::new(),
    rejection: None,
    approvers: Vec::new(),
    overrides: Vec::new(),
    step: 0,
    step_deployed_at: None,
    deploy_attempts: 0,
    analysis: PhaseState {
        started_at: None,
        round: 0,
        gates: VecMap::new(),
        next_round_at: None,
        passing_since: None,
        paused_on: None,
        passed: false,
    },
    deployed: None,
    verification: PhaseState {
        started_at: None,
        round: 0,
        gates: VecMap::new(),
        next_round_at: None,
        passing_since: None,
        paused_on: None,
        passed: false,
    },
    failure: None,
    rollback_reason: None,
    rollback_failures: (0, None),
    promoted_at: None,
};

impl ReleaseState {
    /// The state of `stage` (Waiting when nothing has happened there).
    pub fn stage(&self, stage: &str) -> &StageState {
        self.stages.get(stage).unwrap_or(&WAITING)
    }
    /// The status of `stage`.
    pub fn status(&self, stage: &str) -> StageStatus {
        self.stage(stage).status
    }
    /// Rebuilds a state from events.
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        events.into_iter().fold(ReleaseState::default(), apply)
    }
}
