//! The pure, replayable state machine.
//!
//! One event stream per release holds its whole journey through the pipeline.
//! [`decide`] turns a [`Command`] into events or a typed [`Refusal`]; [`apply`] folds an event
//! into the [`ReleaseState`]; [`plan`] says what should happen next. All three are pure and
//! deterministic: no I/O, no clock, no randomness. Replaying a stream rebuilds the state exactly.
//!
//! Per stage:
//!
//! ```text
//! Waiting → Ready → Checking → AwaitingApproval → Scheduled → RollingOut(step k)
//!         → Verifying → Soaking → Promoted
//!    any active state → Failed | Rejected | Aborted | RollingBack → RolledBack
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::clock::{add, elapsed};
use crate::digest::Digest;
use crate::gate::{Evidence, PhaseId, PhasePolicy};
use crate::name::{GateName, PipelineName, PrincipalId, StageName};
use crate::pipeline::{Percent, Pipeline, RolloutStep, Stage};
use crate::principal::Principal;
use crate::release::{Release, ReleaseId};
use crate::vecmap::VecMap;

// ---------------------------------------------------------------------------------------------
// Events: the log's format. Add variants and optional fields; never rename or remove.
// ---------------------------------------------------------------------------------------------

/// One recorded fact about a release, with when it happened and who or what caused it.
///
/// Events are the audit log's format for years: the serialised form is a public schema, and a
/// golden log written by version 1 is kept as a test fixture that must always replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened (engine clock).
    pub at: DateTime<Utc>,
    /// Who or what caused it.
    pub actor: Actor,
    /// The host's id of the request that caused it, when it was submitted with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<crate::name::RequestId>,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
}

/// Who or what caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The engine, following the pipeline definition.
    Engine,
    /// An authenticated principal.
    Principal {
        /// The principal's id.
        id: PrincipalId,
    },
    /// A gate, reporting its verdict.
    Gate {
        /// The gate's name.
        name: GateName,
    },
    /// The host's deployer, reporting a deployment or rollback.
    Deployer,
}

impl Actor {
    fn principal(p: &Principal) -> Self {
        Actor::Principal { id: p.id.clone() }
    }
}

/// A gate's recorded outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed.
    Fail,
    /// Could not judge; waits for a human.
    Inconclusive,
    /// Not decided yet.
    Pending {
        /// Milliseconds until it should be asked again.
        retry_after_ms: u64,
    },
    /// The gate could not decide (error); never a pass.
    Error {
        /// The error with its causes.
        message: String,
    },
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Pending { .. } => "pending",
            Outcome::Error { .. } => "error",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Error { message } => write!(f, "error: {message}"),
            other => f.write_str(other.label()),
        }
    }
}

/// What an approval was bound to when given. If any part changes, it no longer counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalBinding {
    /// The release approved.
    pub release: ReleaseId,
    /// Digest of the entry gates' verdicts and evidence on record at the time.
    pub evidence_digest: Digest,
    /// The pipeline version in force.
    pub pipeline_version: String,
}

/// Why a stage failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureReason {
    /// A gate's verdict was fail.
    GateFailed {
        /// Phase of the gate.
        phase: PhaseId,
        /// The gate.
        gate: GateName,
    },
    /// A gate could not decide, round after round.
    GateErrored {
        /// Phase of the gate.
        phase: PhaseId,
        /// The gate.
        gate: GateName,
        /// Its last error.
        message: String,
    },
    /// The phase did not pass within its timeout.
    TimedOut {
        /// The phase.
        phase: PhaseId,
    },
    /// A human judged an inconclusive gate as failed.
    JudgedFailed {
        /// Phase of the gate.
        phase: PhaseId,
        /// The gate.
        gate: GateName,
        /// Who judged.
        by: PrincipalId,
    },
    /// The deployer failed.
    DeploymentFailed {
        /// Rollout step (zero-based).
        step: u32,
        /// The deployer's error.
        error: String,
    },
}

impl FailureReason {
    fn phase(&self) -> Option<PhaseId> {
        match self {
            FailureReason::GateFailed { phase, .. }
            | FailureReason::GateErrored { phase, .. }
            | FailureReason::TimedOut { phase }
            | FailureReason::JudgedFailed { phase, .. } => Some(*phase),
            FailureReason::DeploymentFailed { .. } => None,
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::GateFailed { phase, gate } => {
                write!(f, "gate `{gate}` failed in the {phase} phase")
            }
            FailureReason::GateErrored {
                phase,
                gate,
                message,
            } => write!(
                f,
                "gate `{gate}` could not decide in the {phase} phase: {message}"
            ),
            FailureReason::TimedOut { phase } => write!(f, "the {phase} phase timed out"),
            FailureReason::JudgedFailed { phase, gate, by } => write!(
                f,
                "`{by}` judged inconclusive gate `{gate}` ({phase}) as failed"
            ),
            FailureReason::DeploymentFailed { step, error } => {
                write!(f, "deployment of step {} failed: {error}", step + 1)
            }
        }
    }
}

/// What happened, as recorded in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventBody {
    /// The release entered the pipeline.
    Registered {
        /// The release, in full.
        release: Arc<Release>,
        /// Pipeline name.
        pipeline: PipelineName,
        /// Pipeline version at registration.
        pipeline_version: String,
        /// Who registered it.
        initiator: Principal,
    },
    /// The engine began deciding under a different pipeline version.
    PipelineVersionAdopted {
        /// Previous version.
        from: String,
        /// New version.
        to: String,
    },
    /// Every required upstream has promoted the release.
    StageReady {
        /// The stage.
        stage: StageName,
    },
    /// Promotion into the stage began (entry gates start).
    StageStarted {
        /// The stage.
        stage: StageName,
    },
    /// A gate was evaluated.
    GateEvaluated {
        /// The stage.
        stage: StageName,
        /// The phase.
        phase: PhaseId,
        /// Sampling round, from 1.
        round: u32,
        /// The gate.
        gate: GateName,
        /// Its outcome.
        #[serde(flatten)]
        outcome: Outcome,
        /// Attempts it took (retries after errors).
        attempts: u32,
        /// Digest of the evidence.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence_digest: Option<Digest>,
        /// The evidence.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence: Option<Box<Evidence>>,
    },
    /// The phase did not pass this round; it is sampled again at `next_round_at`.
    PhaseWaiting {
        /// The stage.
        stage: StageName,
        /// The phase.
        phase: PhaseId,
        /// When to sample again.
        next_round_at: DateTime<Utc>,
        /// Since when every gate has been passing, when they are.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        passing_since: Option<DateTime<Utc>>,
    },
    /// The phase waits for a human to judge an inconclusive gate.
    PhasePaused {
        /// The stage.
        stage: StageName,
        /// The phase.
        phase: PhaseId,
        /// The inconclusive gate.
        gate: GateName,
    },
    /// Every gate of the phase passed.
    PhasePassed {
        /// The stage.
        stage: StageName,
        /// The phase.
        phase: PhaseId,
    },
    /// The phase failed; the stage is Failed.
    PhaseFailed {
        /// The stage.
        stage: StageName,
        /// The phase.
        phase: PhaseId,
        /// Why.
        reason: FailureReason,
    },
    /// A human judged an inconclusive gate.
    GateJudged {
        /// The stage.
        stage: StageName,
        /// The phase.
        phase: PhaseId,
        /// The gate.
        gate: GateName,
        /// Pass (true) or fail.
        pass: bool,
        /// Who judged, with their groups at the time.
        principal: Principal,
        /// Their comment.
        comment: String,
    },
    /// Break glass: a failed gate was overridden.
    GateOverridden {
        /// The stage.
        stage: StageName,
        /// The phase.
        phase: PhaseId,
        /// The gate.
        gate: GateName,
        /// Who overrode it, with their groups at the time.
        principal: Principal,
        /// The written justification.
        justification: String,
        /// The gate's outcome that was overridden.
        overridden: Outcome,
    },
    /// Entry gates passed; approvals are awaited.
    ApprovalRequested {
        /// The stage.
        stage: StageName,
        /// Digest approvals must be bound to.
        evidence_digest: Digest,
    },
    /// An eligible principal approved.
    ApprovalGiven {
        /// The stage.
        stage: StageName,
        /// Who, with their groups at the time.
        principal: Principal,
        /// Their comment.
        comment: String,
        /// What the approval is bound to.
        binding: ApprovalBinding,
    },
    /// An eligible principal rejected; the stage is Rejected.
    ApprovalRejected {
        /// The stage.
        stage: StageName,
        /// Who, with their groups at the time.
        principal: Principal,
        /// Their comment.
        comment: String,
    },
    /// Gates and approvals are satisfied; deployment may begin.
    StageScheduled {
        /// The approvals that counted.
        approvers: Vec<PrincipalId>,
        /// The stage.
        stage: StageName,
    },
    /// The engine is about to ask the deployer to deploy a rollout step. Recorded before the
    /// call, so that the log holds every deployment attempted, even one whose outcome was never
    /// recorded because the process stopped during the call. The step's next `step_deployed` or
    /// `deployment_failed` is the outcome; another `deployment_started` for the same step before
    /// it means the earlier attempt's outcome is unknown and the step is deployed again.
    DeploymentStarted {
        /// The stage.
        stage: StageName,
        /// Step (zero-based).
        step: u32,
        /// Traffic weight to deploy.
        weight: Percent,
        /// Attempt at this step, from 1.
        attempt: u32,
    },
    /// The deployer deployed a rollout step.
    StepDeployed {
        /// The stage.
        stage: StageName,
        /// Step (zero-based).
        step: u32,
        /// Traffic weight.
        weight: Percent,
    },
    /// The deployer failed to deploy a step.
    DeploymentFailed {
        /// The stage.
        stage: StageName,
        /// Step (zero-based).
        step: u32,
        /// Traffic weight attempted.
        weight: Percent,
        /// The deployer's error.
        error: String,
    },
    /// A rollout step's analysis passed.
    StepCompleted {
        /// The stage.
        stage: StageName,
        /// Step (zero-based).
        step: u32,
    },
    /// The rollout finished; verification gates start.
    VerificationStarted {
        /// The stage.
        stage: StageName,
    },
    /// Verification passed; the release soaks until `until`.
    SoakStarted {
        /// The stage.
        stage: StageName,
        /// End of the soak.
        until: DateTime<Utc>,
    },
    /// The release is promoted in the stage.
    StagePromoted {
        /// The stage.
        stage: StageName,
    },
    /// A rollback began.
    RollbackStarted {
        /// The stage.
        stage: StageName,
        /// Why.
        reason: String,
    },
    /// The deployer failed to roll back; it is retried.
    RollbackFailed {
        /// The stage.
        stage: StageName,
        /// The deployer's error.
        error: String,
    },
    /// The stage was rolled back.
    RolledBack {
        /// The stage.
        stage: StageName,
    },
    /// A principal aborted the promotion into the stage.
    StageAborted {
        /// The stage.
        stage: StageName,
        /// Who, with their groups at the time.
        principal: Principal,
        /// Why.
        reason: String,
    },
}

/// The type of an [`EventBody`], without its fields.
///
/// Unlike [`EventBody`], this enum is deliberately *not* `#[non_exhaustive]`: a projection that
/// matches on [`EventBody::event_kind`] without a catch-all arm (the evidence report, the DORA
/// metrics) stops compiling when a new event kind is added, so the new kind is handled where it
/// must be instead of being silently ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)] // each variant stands for the `EventBody` variant of the same name
pub enum EventKind {
    Registered,
    PipelineVersionAdopted,
    StageReady,
    StageStarted,
    GateEvaluated,
    PhaseWaiting,
    PhasePaused,
    PhasePassed,
    PhaseFailed,
    GateJudged,
    GateOverridden,
    ApprovalRequested,
    ApprovalGiven,
    ApprovalRejected,
    StageScheduled,
    DeploymentStarted,
    StepDeployed,
    DeploymentFailed,
    StepCompleted,
    VerificationStarted,
    SoakStarted,
    StagePromoted,
    RollbackStarted,
    RollbackFailed,
    RolledBack,
    StageAborted,
}

impl EventKind {
    /// Every kind, in the order the variants are declared.
    pub const ALL: [EventKind; 26] = [
        EventKind::Registered,
        EventKind::PipelineVersionAdopted,
        EventKind::StageReady,
        EventKind::StageStarted,
        EventKind::GateEvaluated,
        EventKind::PhaseWaiting,
        EventKind::PhasePaused,
        EventKind::PhasePassed,
        EventKind::PhaseFailed,
        EventKind::GateJudged,
        EventKind::GateOverridden,
        EventKind::ApprovalRequested,
        EventKind::ApprovalGiven,
        EventKind::ApprovalRejected,
        EventKind::StageScheduled,
        EventKind::DeploymentStarted,
        EventKind::StepDeployed,
        EventKind::DeploymentFailed,
        EventKind::StepCompleted,
        EventKind::VerificationStarted,
        EventKind::SoakStarted,
        EventKind::StagePromoted,
        EventKind::RollbackStarted,
        EventKind::RollbackFailed,
        EventKind::RolledBack,
        EventKind::StageAborted,
    ];

    /// The kind's name as serialised in the `type` field (`gate_evaluated`).
    pub fn as_str(self) -> &'static str {
        use EventKind::*;
        match self {
            Registered => "registered",
            PipelineVersionAdopted => "pipeline_version_adopted",
            StageReady => "stage_ready",
            StageStarted => "stage_started",
            GateEvaluated => "gate_evaluated",
            PhaseWaiting => "phase_waiting",
            PhasePaused => "phase_paused",
            PhasePassed => "phase_passed",
            PhaseFailed => "phase_failed",
            GateJudged => "gate_judged",
            GateOverridden => "gate_overridden",
            ApprovalRequested => "approval_requested",
            ApprovalGiven => "approval_given",
            ApprovalRejected => "approval_rejected",
            StageScheduled => "stage_scheduled",
            DeploymentStarted => "deployment_started",
            StepDeployed => "step_deployed",
            DeploymentFailed => "deployment_failed",
            StepCompleted => "step_completed",
            VerificationStarted => "verification_started",
            SoakStarted => "soak_started",
            StagePromoted => "stage_promoted",
            RollbackStarted => "rollback_started",
            RollbackFailed => "rollback_failed",
            RolledBack => "rolled_back",
            StageAborted => "stage_aborted",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EventBody {
    /// The event's type, as serialised (`gate_evaluated`).
    pub fn kind(&self) -> &'static str {
        self.event_kind().as_str()
    }

    /// The event's type as an [`EventKind`], for exhaustive matches in projections.
    pub fn event_kind(&self) -> EventKind {
        use EventBody::*;
        match self {
            Registered { .. } => EventKind::Registered,
            PipelineVersionAdopted { .. } => EventKind::PipelineVersionAdopted,
            StageReady { .. } => EventKind::StageReady,
            StageStarted { .. } => EventKind::StageStarted,
            GateEvaluated { .. } => EventKind::GateEvaluated,
            PhaseWaiting { .. } => EventKind::PhaseWaiting,
            PhasePaused { .. } => EventKind::PhasePaused,
            PhasePassed { .. } => EventKind::PhasePassed,
            PhaseFailed { .. } => EventKind::PhaseFailed,
            GateJudged { .. } => EventKind::GateJudged,
            GateOverridden { .. } => EventKind::GateOverridden,
            ApprovalRequested { .. } => EventKind::ApprovalRequested,
            ApprovalGiven { .. } => EventKind::ApprovalGiven,
            ApprovalRejected { .. } => EventKind::ApprovalRejected,
            StageScheduled { .. } => EventKind::StageScheduled,
            DeploymentStarted { .. } => EventKind::DeploymentStarted,
            StepDeployed { .. } => EventKind::StepDeployed,
            DeploymentFailed { .. } => EventKind::DeploymentFailed,
            StepCompleted { .. } => EventKind::StepCompleted,
            VerificationStarted { .. } => EventKind::VerificationStarted,
            SoakStarted { .. } => EventKind::SoakStarted,
            StagePromoted { .. } => EventKind::StagePromoted,
            RollbackStarted { .. } => EventKind::RollbackStarted,
            RollbackFailed { .. } => EventKind::RollbackFailed,
            RolledBack { .. } => EventKind::RolledBack,
            StageAborted { .. } => EventKind::StageAborted,
        }
    }

    /// The stage the event concerns, if any.
    pub fn stage(&self) -> Option<&StageName> {
        use EventBody::*;
        match self {
            Registered { .. } | PipelineVersionAdopted { .. } => None,
            StageReady { stage }
            | StageStarted { stage }
            | GateEvaluated { stage, .. }
            | PhaseWaiting { stage, .. }
            | PhasePaused { stage, .. }
            | PhasePassed { stage, .. }
            | PhaseFailed { stage, .. }
            | GateJudged { stage, .. }
            | GateOverridden { stage, .. }
            | ApprovalRequested { stage, .. }
            | ApprovalGiven { stage, .. }
            | ApprovalRejected { stage, .. }
            | StageScheduled { stage, .. }
            | DeploymentStarted { stage, .. }
            | StepDeployed { stage, .. }
            | DeploymentFailed { stage, .. }
            | StepCompleted { stage, .. }
            | VerificationStarted { stage }
            | SoakStarted { stage, .. }
            | StagePromoted { stage }
            | RollbackStarted { stage, .. }
            | RollbackFailed { stage, .. }
            | RolledBack { stage }
            | StageAborted { stage, .. } => Some(stage),
        }
    }
}

impl Serialize for PhaseId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PhaseId::Entry => s.serialize_str("entry"),
            PhaseId::Verification => s.serialize_str("verification"),
            PhaseId::Analysis { step } => s.collect_str(&format_args!("analysis:{step}")),
        }
    }
}

impl<'de> Deserialize<'de> for PhaseId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "entry" => Ok(PhaseId::Entry),
            "verification" => Ok(PhaseId::Verification),
            other => other
                .strip_prefix("analysis:")
                .and_then(|n| n.parse().ok())
                .map(|step| PhaseId::Analysis { step })
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown phase `{other}`; expected entry, verification or analysis:<step>"
                    ))
                }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

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
    fn is_settled_by_human(&self) -> bool {
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    /// Who, with groups at the time.
    pub principal: Principal,
    /// When.
    pub at: DateTime<Utc>,
    /// Comment.
    pub comment: String,
    /// What it was bound to.
    pub binding: ApprovalBinding,
}

/// A recorded rejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionRecord {
    /// Who, with groups at the time.
    pub principal: Principal,
    /// When.
    pub at: DateTime<Utc>,
    /// Why.
    pub comment: String,
}

/// A recorded break-glass override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRecord {
    /// The gate.
    pub gate: GateName,
    /// Its phase.
    pub phase: PhaseId,
    /// Who.
    pub principal: PrincipalId,
    /// Why.
    pub justification: String,
    /// When.
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
    fn phase_mut(&mut self, id: PhaseId) -> &mut PhaseState {
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

// ---------------------------------------------------------------------------------------------
// apply
// ---------------------------------------------------------------------------------------------

/// Folds one event into the state. Pure and total: it never fails and never panics.
pub fn apply(mut state: ReleaseState, event: &Event) -> ReleaseState {
    apply_mut(&mut state, event);
    state
}

/// [`apply`] in place.
pub fn apply_mut(state: &mut ReleaseState, event: &Event) {
    state.version += 1;
    let at = event.at;
    use EventBody as E;
    match &event.body {
        E::Registered {
            release,
            pipeline,
            pipeline_version,
            initiator,
        } => {
            state.release = Some(release.clone());
            state.pipeline = Some(pipeline.clone());
            state.pipeline_version.clone_from(pipeline_version);
            state.initiator = Some(initiator.clone());
        }
        E::PipelineVersionAdopted { to, .. } => state.pipeline_version.clone_from(to),
        body => {
            let Some(stage) = body.stage() else { return };
            if !state.stages.contains_key(stage) {
                state.stages.insert(stage.clone(), StageState::default());
            }
            if let Some(s) = state.stages.get_mut(stage) {
                apply_stage(s, &event.actor, at, body);
            }
        }
    }
}

fn apply_stage(s: &mut StageState, actor: &Actor, at: DateTime<Utc>, body: &EventBody) {
    use EventBody as E;
    match body {
        E::Registered { .. } | E::PipelineVersionAdopted { .. } => {}
        E::StageReady { .. } => s.status = StageStatus::Ready,
        E::StageStarted { .. } => {
            s.status = StageStatus::Checking;
            s.started_at = Some(at);
            s.started_by = match actor {
                Actor::Principal { id } => Some(id.clone()),
                _ => None,
            };
            s.entry = PhaseState {
                started_at: Some(at),
                ..PhaseState::default()
            };
        }
        E::GateEvaluated {
            phase,
            round,
            gate,
            outcome,
            evidence_digest,
            evidence,
            ..
        } => {
            let ps = s.phase_mut(*phase);
            let facts = evidence
                .as_ref()
                .map(|e| e.facts.clone())
                .unwrap_or_default();
            record_gate(ps, gate, outcome, *evidence_digest, facts, at, *round);
        }
        E::PhaseWaiting {
            phase,
            next_round_at,
            passing_since,
            ..
        } => {
            let ps = s.phase_mut(*phase);
            ps.next_round_at = Some(*next_round_at);
            ps.passing_since = *passing_since;
        }
        E::PhasePaused { phase, gate, .. } => s.phase_mut(*phase).paused_on = Some(gate.clone()),
        E::PhasePassed { phase, .. } => {
            let ps = s.phase_mut(*phase);
            ps.passed = true;
            ps.next_round_at = None;
        }
        E::PhaseFailed { reason, .. } => {
            s.status = StageStatus::Failed;
            s.failure = Some(reason.clone());
        }
        E::GateJudged {
            phase,
            gate,
            pass,
            principal,
            ..
        } => {
            let ps = s.phase_mut(*phase);
            ps.paused_on = None;
            if let Some(r) = ps.gates.get_mut(gate) {
                r.judged = Some((principal.id.clone(), *pass));
            }
        }
        E::GateOverridden {
            phase,
            gate,
            principal,
            justification,
            ..
        } => {
            let ps = s.phase_mut(*phase);
            if let Some(r) = ps.gates.get_mut(gate) {
                r.overridden_by = Some(principal.id.clone());
            }
            ps.next_round_at = None;
            s.overrides.push(OverrideRecord {
                gate: gate.clone(),
                phase: *phase,
                principal: principal.id.clone(),
                justification: justification.clone(),
                at,
            });
            if s.status == StageStatus::Failed
                && s.failure.as_ref().and_then(FailureReason::phase) == Some(PhaseId::Entry)
            {
                s.status = StageStatus::Checking;
                s.failure = None;
            }
        }
        E::ApprovalRequested { .. } => s.status = StageStatus::AwaitingApproval,
        E::ApprovalGiven {
            principal,
            comment,
            binding,
            ..
        } => s.approvals.push(ApprovalRecord {
            principal: principal.clone(),
            at,
            comment: comment.clone(),
            binding: binding.clone(),
        }),
        E::ApprovalRejected {
            principal, comment, ..
        } => {
            s.status = StageStatus::Rejected;
            s.rejection = Some(RejectionRecord {
                principal: principal.clone(),
                at,
                comment: comment.clone(),
            });
        }
        E::StageScheduled { approvers, .. } => {
            s.status = StageStatus::Scheduled;
            s.approvers.clone_from(approvers);
            s.deploy_attempts = 0;
        }
        E::DeploymentStarted { attempt, .. } => s.deploy_attempts = *attempt,
        E::StepDeployed { step, weight, .. } => {
            s.status = StageStatus::RollingOut { step: *step };
            s.step = *step;
            s.step_deployed_at = Some(at);
            s.deployed = Some(*weight);
            s.analysis = PhaseState {
                started_at: Some(at),
                ..PhaseState::default()
            };
        }
        E::DeploymentFailed { step, error, .. } => {
            s.status = StageStatus::Failed;
            s.failure = Some(FailureReason::DeploymentFailed {
                step: *step,
                error: error.clone(),
            });
        }
        E::StepCompleted { step, .. } => {
            s.analysis.passed = true;
            s.status = StageStatus::RollingOut {
                step: step.saturating_add(1),
            };
            s.step = step.saturating_add(1);
            s.step_deployed_at = None;
            s.deploy_attempts = 0;
        }
        E::VerificationStarted { .. } => {
            s.status = StageStatus::Verifying;
            s.verification = PhaseState {
                started_at: Some(at),
                ..PhaseState::default()
            };
        }
        E::SoakStarted { until, .. } => s.status = StageStatus::Soaking { until: *until },
        E::StagePromoted { .. } => {
            s.status = StageStatus::Promoted;
            s.promoted_at = Some(at);
        }
        E::RollbackStarted { reason, .. } => {
            s.status = StageStatus::RollingBack;
            s.rollback_reason = Some(reason.clone());
        }
        E::RollbackFailed { .. } => {
            s.rollback_failures = (s.rollback_failures.0.saturating_add(1), Some(at));
        }
        E::RolledBack { .. } => {
            s.status = StageStatus::RolledBack;
            s.deployed = None;
        }
        E::StageAborted { .. } => s.status = StageStatus::Aborted,
    }
}

fn record_gate(
    ps: &mut PhaseState,
    gate: &GateName,
    outcome: &Outcome,
    evidence_digest: Option<Digest>,
    facts: std::collections::BTreeMap<String, String>,
    at: DateTime<Utc>,
    round: u32,
) {
    ps.round = ps.round.max(round);
    ps.next_round_at = None;
    let consecutive_errors = match (outcome, ps.gates.get(gate)) {
        (Outcome::Error { .. }, Some(prev)) => prev.consecutive_errors.saturating_add(1),
        (Outcome::Error { .. }, None) => 1,
        _ => 0,
    };
    ps.gates.insert(
        gate.clone(),
        GateRecord {
            outcome: outcome.clone(),
            evidence_digest,
            at,
            round,
            consecutive_errors,
            overridden_by: None,
            judged: None,
            facts,
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Commands and refusals
// ---------------------------------------------------------------------------------------------

/// The result of one gate evaluation, as the engine reports it to [`decide`].
#[derive(Debug, Clone, PartialEq)]
pub struct GateResult {
    /// The gate.
    pub gate: GateName,
    /// Its outcome.
    pub outcome: Outcome,
    /// Its evidence, if it gave a verdict.
    pub evidence: Option<Evidence>,
    /// Attempts taken.
    pub attempts: u32,
}

/// Something a principal or the engine asks the state machine to do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// Enter the release into the pipeline.
    Register {
        /// The release.
        release: Release,
        /// Who registers it.
        initiator: Principal,
    },
    /// Start promotion into a Ready stage: by a principal, or by the engine for auto-start
    /// stages.
    Start {
        /// The stage.
        stage: StageName,
        /// The principal; `None` for the engine.
        by: Option<Principal>,
    },
    /// Record one sampling round of a phase (engine).
    RecordRound {
        /// The stage.
        stage: StageName,
        /// The phase.
        phase: PhaseId,
        /// Results of the gates evaluated.
        results: Vec<GateResult>,
    },
    /// Approve the stage.
    Approve {
        /// The stage.
        stage: StageName,
        /// The approver.
        principal: Principal,
        /// Comment.
        comment: String,
    },
    /// Reject the stage.
    Reject {
        /// The stage.
        stage: StageName,
        /// The rejecting principal.
        principal: Principal,
        /// Comment.
        comment: String,
    },
    /// Break glass: count a failed entry gate as passed.
    Override {
        /// The stage.
        stage: StageName,
        /// The gate.
        gate: GateName,
        /// A principal in a break-glass group.
        principal: Principal,
        /// Written justification.
        justification: String,
    },
    /// Judge an inconclusive gate.
    Judge {
        /// The stage.
        stage: StageName,
        /// The gate.
        gate: GateName,
        /// Pass (true) or fail.
        pass: bool,
        /// The judge.
        principal: Principal,
        /// Comment.
        comment: String,
    },
    /// Record that the deployer is about to be asked to deploy the current step (engine): the
    /// intent, appended before the call.
    BeginDeployment {
        /// The stage.
        stage: StageName,
        /// Step (zero-based).
        step: u32,
    },
    /// Record the deployer's result for the current step (engine).
    RecordDeployment {
        /// The stage.
        stage: StageName,
        /// Step (zero-based).
        step: u32,
        /// Ok, or the deployer's error.
        result: Result<(), String>,
    },
    /// Record the deployer's rollback result (engine).
    RecordRollback {
        /// The stage.
        stage: StageName,
        /// Ok, or the deployer's error.
        result: Result<(), String>,
    },
    /// Abort promotion into a stage; a deployed stage is rolled back.
    Abort {
        /// The stage.
        stage: StageName,
        /// Who.
        principal: Principal,
        /// Why.
        reason: String,
    },
    /// Roll back a deployed or promoted stage.
    RollBack {
        /// The stage.
        stage: StageName,
        /// Who.
        principal: Principal,
        /// Why.
        reason: String,
    },
    /// Let time-driven transitions happen (soak end, phase timeout, empty phases) (engine).
    Tick {
        /// The stage.
        stage: StageName,
    },
}

/// Why a command was refused. A refused command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The release has not been registered.
    #[error("the release is not registered")]
    NotRegistered,
    /// The release is already registered.
    #[error("release {0} is already registered")]
    AlreadyRegistered(ReleaseId),
    /// The state belongs to another pipeline.
    #[error("the release runs in pipeline `{recorded}`, not `{given}`")]
    WrongPipeline {
        /// Pipeline recorded.
        recorded: String,
        /// Pipeline given.
        given: String,
    },
    /// No such stage.
    #[error("pipeline has no stage `{0}`")]
    UnknownStage(String),
    /// No such gate.
    #[error("stage `{stage}` has no {phase} gate `{gate}`")]
    UnknownGate {
        /// Stage.
        stage: StageName,
        /// Phase.
        phase: PhaseId,
        /// Gate.
        gate: String,
    },
    /// An upstream stage has not promoted the release.
    #[error("stage `{stage}` cannot start: upstream `{upstream}` is {status}, not promoted")]
    UpstreamNotPromoted {
        /// Stage.
        stage: StageName,
        /// The upstream.
        upstream: StageName,
        /// Its status.
        status: StageStatus,
    },
    /// The stage only starts when a principal starts it.
    #[error("stage `{0}` starts only when a principal starts it")]
    ManualStartRequired(StageName),
    /// The command does not fit the stage's status.
    #[error("stage `{stage}` is {status}; cannot {action}")]
    WrongStatus {
        /// Stage.
        stage: StageName,
        /// Its status.
        status: StageStatus,
        /// What was attempted.
        action: &'static str,
    },
    /// The stage is finished.
    #[error("stage `{stage}` is finished ({status}); cannot {action}")]
    StageFinished {
        /// Stage.
        stage: StageName,
        /// Its status.
        status: StageStatus,
        /// What was attempted.
        action: &'static str,
    },
    /// The stage has no approval policy.
    #[error("stage `{0}` requires no approval")]
    NoApprovalRequired(StageName),
    /// Approvals are accepted only after the entry gates pass.
    #[error("stage `{0}` accepts approvals only after its entry gates pass")]
    GatesNotPassed(StageName),
    /// The principal is in none of the eligible groups.
    #[error("`{principal}` may not approve or reject stage `{stage}`: not in any of {groups}")]
    NotEligible {
        /// Stage.
        stage: StageName,
        /// Principal.
        principal: PrincipalId,
        /// Eligible groups.
        groups: String,
    },
    /// Self-approval.
    #[error("`{principal}` may not approve stage `{stage}`: {why}")]
    SelfApproval {
        /// Stage.
        stage: StageName,
        /// Principal.
        principal: PrincipalId,
        /// Contributor or initiator.
        why: &'static str,
    },
    /// Already approved an upstream stage.
    #[error("`{principal}` approved upstream stage `{upstream}`; stage `{stage}` needs different approvers")]
    NotDistinct {
        /// Stage.
        stage: StageName,
        /// Principal.
        principal: PrincipalId,
        /// The upstream.
        upstream: StageName,
    },
    /// The principal already has a valid approval on the stage.
    #[error("`{principal}` has already approved stage `{stage}`")]
    DuplicateApproval {
        /// Stage.
        stage: StageName,
        /// Principal.
        principal: PrincipalId,
    },
    /// The principal lacks the privilege.
    #[error("`{principal}` may not {action}: {why}")]
    NotPrivileged {
        /// Principal.
        principal: PrincipalId,
        /// What was attempted.
        action: &'static str,
        /// Which groups would allow it.
        why: String,
    },
    /// Justification or reason missing.
    #[error("{0} needs a written justification")]
    EmptyJustification(&'static str),
    /// The gate has nothing to override.
    #[error("gate `{gate}` of stage `{stage}` is {outcome}; there is nothing to override")]
    NothingToOverride {
        /// Stage.
        stage: StageName,
        /// Gate.
        gate: GateName,
        /// Its outcome.
        outcome: String,
    },
    /// The gate is not inconclusive.
    #[error("stage `{stage}` is not waiting for a judgement on gate `{gate}`")]
    NotAwaitingJudgement {
        /// Stage.
        stage: StageName,
        /// Gate.
        gate: GateName,
    },
    /// Results do not fit the phase.
    #[error("round results for stage `{stage}` {phase}: {problem}")]
    BadRound {
        /// Stage.
        stage: StageName,
        /// Phase.
        phase: PhaseId,
        /// What was wrong.
        problem: String,
    },
    /// Nothing time-driven is due.
    #[error("nothing is due in stage `{0}`")]
    NothingDue(StageName),
    /// A downstream stage has moved on; roll it back or abort it first.
    #[error("stage `{stage}` cannot be rolled back while downstream `{downstream}` is {status}")]
    DownstreamInProgress {
        /// Stage.
        stage: StageName,
        /// Downstream.
        downstream: StageName,
        /// Its status.
        status: StageStatus,
    },
}

// ---------------------------------------------------------------------------------------------
// decide
// ---------------------------------------------------------------------------------------------

/// Decides what a command means: the events to append, or a refusal. Pure.
pub fn decide(
    pipeline: &Pipeline,
    state: &ReleaseState,
    command: &Command,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Refusal> {
    let mut d = Decision {
        pipeline,
        state,
        now,
        events: Vec::new(),
    };
    if let Command::Register { release, initiator } = command {
        if let Some(r) = &state.release {
            return Err(Refusal::AlreadyRegistered(r.id()));
        }
        d.emit(
            Actor::principal(initiator),
            EventBody::Registered {
                release: Arc::new(release.clone()),
                pipeline: pipeline.name().clone(),
                pipeline_version: pipeline.version().to_owned(),
                initiator: initiator.clone(),
            },
        );
        for s in pipeline.stages().iter().filter(|s| s.upstream.is_empty()) {
            d.emit(
                Actor::Engine,
                EventBody::StageReady {
                    stage: s.name.clone(),
                },
            );
        }
        return Ok(d.events);
    }
    if state.release.is_none() {
        return Err(Refusal::NotRegistered);
    }
    if let Some(recorded) = &state.pipeline {
        if recorded != pipeline.name() {
            return Err(Refusal::WrongPipeline {
                recorded: recorded.to_string(),
                given: pipeline.name().to_string(),
            });
        }
    }
    if state.pipeline_version != pipeline.version() {
        d.emit(
            Actor::Engine,
            EventBody::PipelineVersionAdopted {
                from: state.pipeline_version.clone(),
                to: pipeline.version().to_owned(),
            },
        );
    }
    d.command(command)?;
    Ok(d.events)
}

struct Decision<'a> {
    pipeline: &'a Pipeline,
    state: &'a ReleaseState,
    now: DateTime<Utc>,
    events: Vec<Event>,
}

impl<'a> Decision<'a> {
    fn emit(&mut self, actor: Actor, body: EventBody) {
        self.events.push(Event {
            at: self.now,
            actor,
            request: None,
            body,
        });
    }

    fn stage(&self, name: &StageName) -> Result<(&'a Stage, &'a StageState), Refusal> {
        let spec = self
            .pipeline
            .stage(name.as_str())
            .ok_or_else(|| Refusal::UnknownStage(name.to_string()))?;
        Ok((spec, self.state.stage(name.as_str())))
    }

    fn require_operator(&self, p: &Principal, action: &'static str) -> Result<(), Refusal> {
        let ops = self.pipeline.operator_groups();
        if ops.is_empty() || ops.iter().any(|g| p.groups.contains(g)) {
            return Ok(());
        }
        Err(Refusal::NotPrivileged {
            principal: p.id.clone(),
            action,
            why: format!("only members of {} may", group_list(ops.iter())),
        })
    }

    fn command(&mut self, command: &Command) -> Result<(), Refusal> {
        match command {
            Command::Register { .. } => Ok(()),
            Command::Start { stage, by } => self.start(stage, by.as_ref()),
            Command::RecordRound {
                stage,
                phase,
                results,
            } => self.record_round(stage, *phase, results),
            Command::Approve {
                stage,
                principal,
                comment,
            } => self.approve(stage, principal, comment),
            Command::Reject {
                stage,
                principal,
                comment,
            } => self.reject(stage, principal, comment),
            Command::Override {
                stage,
                gate,
                principal,
                justification,
            } => self.override_gate(stage, gate, principal, justification),
            Command::Judge {
                stage,
                gate,
                pass,
                principal,
                comment,
            } => self.judge(stage, gate, *pass, principal, comment),
            Command::BeginDeployment { stage, step } => self.begin_deployment(stage, *step),
            Command::RecordDeployment {
                stage,
                step,
                result,
            } => self.record_deployment(stage, *step, result),
            Command::RecordRollback { stage, result } => self.record_rollback(stage, result),
            Command::Abort {
                stage,
                principal,
                reason,
            } => self.abort(stage, principal, reason),
            Command::RollBack {
                stage,
                principal,
                reason,
            } => self.roll_back(stage, principal, reason),
            Command::Tick { stage } => self.tick(stage),
        }
    }

    /// Why `spec` may not be entered now, by its availability rule; `None` when it may.
    fn unavailable(&self, spec: &Stage) -> Option<Refusal> {
        let status = |u: &StageName| self.state.status(u.as_str());
        let blocking = match spec.spec.availability {
            crate::pipeline::Availability::AllUpstreams => spec
                .upstream
                .iter()
                .find(|u| status(u) != StageStatus::Promoted),
            crate::pipeline::Availability::AnyUpstream => {
                if spec
                    .upstream
                    .iter()
                    .any(|u| status(u) == StageStatus::Promoted)
                {
                    None
                } else {
                    spec.upstream.first()
                }
            }
        };
        blocking.map(|u| Refusal::UpstreamNotPromoted {
            stage: spec.name.clone(),
            upstream: u.clone(),
            status: status(u),
        })
    }

    fn start(&mut self, name: &StageName, by: Option<&Principal>) -> Result<(), Refusal> {
        let (spec, st) = self.stage(name)?;
        match st.status {
            StageStatus::Ready => {}
            StageStatus::Waiting => {
                return Err(self
                    .unavailable(spec)
                    .unwrap_or_else(|| wrong(name, st.status, "start")));
            }
            status => return Err(wrong(name, status, "start")),
        }
        let actor = match by {
            Some(p) => {
                self.require_operator(p, "start a promotion")?;
                Actor::principal(p)
            }
            None if spec.spec.auto_start => Actor::Engine,
            None => return Err(Refusal::ManualStartRequired(name.clone())),
        };
        self.emit(
            actor,
            EventBody::StageStarted {
                stage: name.clone(),
            },
        );
        Ok(())
    }

    fn record_round(
        &mut self,
        name: &StageName,
        phase: PhaseId,
        results: &[GateResult],
    ) -> Result<(), Refusal> {
        let (spec, st) = self.stage(name)?;
        let bad = |problem: String| Refusal::BadRound {
            stage: name.clone(),
            phase,
            problem,
        };
        if st.current_phase() != Some(phase) {
            return Err(wrong(name, st.status, "record gate results for this phase"));
        }
        let ps = st.phase(phase);
        if let Some(g) = &ps.paused_on {
            return Err(bad(format!("the phase waits for a judgement on `{g}`")));
        }
        if results.is_empty() {
            return Err(bad("no results".into()));
        }
        if self.now < phase_not_before(spec, st, phase) {
            return Err(bad("the phase's first evaluation is not due yet".into()));
        }
        let names = spec.gate_names(phase);
        for (i, r) in results.iter().enumerate() {
            if !names.contains(&r.gate) {
                return Err(Refusal::UnknownGate {
                    stage: name.clone(),
                    phase,
                    gate: r.gate.to_string(),
                });
            }
            if results.iter().take(i).any(|o| o.gate == r.gate) {
                return Err(bad(format!("gate `{}` reported twice", r.gate)));
            }
            if ps
                .gates
                .get(&r.gate)
                .is_some_and(GateRecord::is_settled_by_human)
            {
                return Err(bad(format!(
                    "gate `{}` was settled by a human and is not evaluated again",
                    r.gate
                )));
            }
        }
        let round = ps.round.saturating_add(1);
        let mut after = ps.clone();
        for r in results {
            let digest = r.evidence.as_ref().map(Evidence::digest);
            let facts = r
                .evidence
                .as_ref()
                .map(|e| e.facts.clone())
                .unwrap_or_default();
            record_gate(
                &mut after, &r.gate, &r.outcome, digest, facts, self.now, round,
            );
            self.emit(
                Actor::Gate {
                    name: r.gate.clone(),
                },
                EventBody::GateEvaluated {
                    stage: name.clone(),
                    phase,
                    round,
                    gate: r.gate.clone(),
                    outcome: r.outcome.clone(),
                    attempts: r.attempts,
                    evidence_digest: digest,
                    evidence: r.evidence.clone().map(Box::new),
                },
            );
        }
        let evaluated: Vec<&GateName> = results.iter().map(|r| &r.gate).collect();
        self.conclude(spec, st, phase, &after, Some(&evaluated), results)
    }

    /// Decides what a phase's latest records mean. `evaluated` is `None` for a tick.
    fn conclude(
        &mut self,
        spec: &Stage,
        st: &StageState,
        phase: PhaseId,
        ps: &PhaseState,
        evaluated: Option<&[&GateName]>,
        results: &[GateResult],
    ) -> Result<(), Refusal> {
        let name = &spec.name;
        let Some(def) = spec.phase(phase) else {
            return Err(Refusal::BadRound {
                stage: name.clone(),
                phase,
                problem: "the stage has no such phase".into(),
            });
        };
        let policy = def.policy;
        let names = spec.gate_names(phase);
        let record = |g: &GateName| ps.gates.get(g);
        // 1. A fail verdict (not overridden): fail at once when fail_fast.
        for g in names {
            if let Some(r) = record(g) {
                let failed = match r.judged {
                    Some((ref by, false)) => Some(FailureReason::JudgedFailed {
                        phase,
                        gate: g.clone(),
                        by: by.clone(),
                    }),
                    _ if r.outcome == Outcome::Fail
                        && r.overridden_by.is_none()
                        && r.judged.is_none()
                        && policy.fail_fast =>
                    {
                        Some(FailureReason::GateFailed {
                            phase,
                            gate: g.clone(),
                        })
                    }
                    _ => None,
                };
                if let Some(reason) = failed {
                    return self.fail_phase(spec, st, phase, reason);
                }
            }
        }
        // 2. Too many consecutive errors.
        for g in names {
            if let Some(r) = record(g) {
                if let Outcome::Error { message } = &r.outcome {
                    if r.consecutive_errors >= policy.consecutive_error_limit
                        && !r.is_settled_by_human()
                    {
                        let reason = FailureReason::GateErrored {
                            phase,
                            gate: g.clone(),
                            message: message.clone(),
                        };
                        return self.fail_phase(spec, st, phase, reason);
                    }
                }
            }
        }
        // 3. Inconclusive: wait for a human.
        for g in names {
            if let Some(r) = record(g) {
                if r.outcome == Outcome::Inconclusive
                    && r.judged.is_none()
                    && r.overridden_by.is_none()
                {
                    self.emit(
                        Actor::Engine,
                        EventBody::PhasePaused {
                            stage: name.clone(),
                            phase,
                            gate: g.clone(),
                        },
                    );
                    return Ok(());
                }
            }
        }
        // 4. Passing?
        let satisfied = |g: &GateName| record(g).is_some_and(GateRecord::is_satisfied);
        let passing = match evaluated {
            None => {
                names
                    .iter()
                    .all(|g| record(g).is_some_and(GateRecord::is_settled_by_human) && satisfied(g))
                    || (!policy.resamples_all() && names.iter().all(satisfied))
            }
            Some(evaluated) if policy.all_pass_in_same_round => names.iter().all(|g| {
                record(g).is_some_and(|r| {
                    (r.is_settled_by_human() && r.is_satisfied())
                        || (evaluated.contains(&g) && r.outcome == Outcome::Pass)
                })
            }),
            Some(_) => names.iter().all(satisfied),
        };
        let deadline = phase_deadline(spec, st, phase);
        if passing {
            let since = ps.passing_since.unwrap_or(self.now);
            if evaluated.is_none() || elapsed(since, self.now) >= policy.min_success {
                return self.pass_phase(spec, st, phase, ps);
            }
            let next = add(self.now, policy.next_round_in());
            self.emit(
                Actor::Engine,
                EventBody::PhaseWaiting {
                    stage: name.clone(),
                    phase,
                    next_round_at: next,
                    passing_since: Some(since),
                },
            );
            return Ok(());
        }
        if deadline.is_some_and(|d| self.now >= d) {
            return self.fail_phase(spec, st, phase, FailureReason::TimedOut { phase });
        }
        if evaluated.is_none() {
            return Err(Refusal::NothingDue(name.clone()));
        }
        // Ask again at the earliest time any unsatisfied gate wants: a pending gate says when
        // itself; a failing or erroring one is resampled on the phase's interval.
        let wait = results
            .iter()
            .filter(|r| r.outcome != Outcome::Pass)
            .map(|r| match r.outcome {
                Outcome::Pending { retry_after_ms } => Duration::from_millis(retry_after_ms),
                _ => policy.next_round_in(),
            })
            .min()
            .unwrap_or(policy.next_round_in());
        let mut next = add(self.now, wait);
        if let Some(d) = deadline {
            next = next.min(d);
        }
        self.emit(
            Actor::Engine,
            EventBody::PhaseWaiting {
                stage: name.clone(),
                phase,
                next_round_at: next,
                passing_since: None,
            },
        );
        Ok(())
    }

    fn fail_phase(
        &mut self,
        spec: &Stage,
        st: &StageState,
        phase: PhaseId,
        reason: FailureReason,
    ) -> Result<(), Refusal> {
        let text = reason.to_string();
        self.emit(
            Actor::Engine,
            EventBody::PhaseFailed {
                stage: spec.name.clone(),
                phase,
                reason,
            },
        );
        if st.deployed.is_some() && spec.auto_rollback() {
            self.emit(
                Actor::Engine,
                EventBody::RollbackStarted {
                    stage: spec.name.clone(),
                    reason: text,
                },
            );
        }
        Ok(())
    }

    fn pass_phase(
        &mut self,
        spec: &Stage,
        st: &StageState,
        phase: PhaseId,
        ps: &PhaseState,
    ) -> Result<(), Refusal> {
        let name = spec.name.clone();
        // An empty phase has nothing to report; "gates passed" would claim checks that never ran.
        if !spec.gate_names(phase).is_empty() {
            self.emit(
                Actor::Engine,
                EventBody::PhasePassed {
                    stage: name.clone(),
                    phase,
                },
            );
        }
        match phase {
            PhaseId::Entry => match &spec.spec.approval {
                None => self.emit(
                    Actor::Engine,
                    EventBody::StageScheduled {
                        stage: name,
                        approvers: Vec::new(),
                    },
                ),
                Some(policy) => {
                    let digest = entry_digest(ps);
                    let valid = valid_approvals(
                        self.pipeline,
                        self.state,
                        spec,
                        st,
                        policy,
                        &digest,
                        self.now,
                    );
                    if policy.rule.is_satisfied_with(&valid, &facts_of(ps)) {
                        let approvers = valid.iter().map(|p| p.id.clone()).collect();
                        self.emit(
                            Actor::Engine,
                            EventBody::StageScheduled {
                                stage: name,
                                approvers,
                            },
                        );
                    } else {
                        self.emit(
                            Actor::Engine,
                            EventBody::ApprovalRequested {
                                stage: name,
                                evidence_digest: digest,
                            },
                        );
                    }
                }
            },
            PhaseId::Analysis { step } => {
                self.emit(
                    Actor::Engine,
                    EventBody::StepCompleted {
                        stage: name.clone(),
                        step,
                    },
                );
                if step as usize + 1 >= spec.steps().len() {
                    self.emit(
                        Actor::Engine,
                        EventBody::VerificationStarted { stage: name },
                    );
                }
            }
            PhaseId::Verification => match spec.spec.soak {
                Some(soak) if !soak.is_zero() => {
                    self.emit(
                        Actor::Engine,
                        EventBody::SoakStarted {
                            stage: name,
                            until: add(self.now, soak),
                        },
                    );
                }
                _ => self.promote(spec),
            },
        }
        Ok(())
    }

    fn promote(&mut self, spec: &Stage) {
        self.emit(
            Actor::Engine,
            EventBody::StagePromoted {
                stage: spec.name.clone(),
            },
        );
        for d in &spec.downstream {
            let Some(ds) = self.pipeline.stage(d.as_str()) else {
                continue;
            };
            if self.state.status(d.as_str()) != StageStatus::Waiting {
                continue;
            }
            let promoted = |u: &StageName| {
                *u == spec.name || self.state.status(u.as_str()) == StageStatus::Promoted
            };
            let available = match ds.spec.availability {
                crate::pipeline::Availability::AllUpstreams => ds.upstream.iter().all(promoted),
                crate::pipeline::Availability::AnyUpstream => true,
            };
            if available {
                self.emit(Actor::Engine, EventBody::StageReady { stage: d.clone() });
            }
        }
    }

    fn approve(
        &mut self,
        name: &StageName,
        principal: &Principal,
        comment: &str,
    ) -> Result<(), Refusal> {
        let (spec, st) = self.stage(name)?;
        let Some(policy) = &spec.spec.approval else {
            return Err(Refusal::NoApprovalRequired(name.clone()));
        };
        match st.status {
            StageStatus::AwaitingApproval => {}
            StageStatus::Checking if !policy.after_gates => {}
            StageStatus::Checking => return Err(Refusal::GatesNotPassed(name.clone())),
            s if s.is_terminal() => return Err(finished(name, s, "approve")),
            s => return Err(wrong(name, s, "approve")),
        }
        self.check_approver(spec, policy, principal)?;
        let release = self.state.release.as_ref().ok_or(Refusal::NotRegistered)?;
        if !policy.allow_self_approval {
            let why = if release.contributors().contains(&principal.id) {
                Some("they contributed to the release")
            } else if self
                .state
                .initiator
                .as_ref()
                .is_some_and(|i| i.id == principal.id)
                || st.started_by.as_ref() == Some(&principal.id)
            {
                Some("they started this promotion")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Refusal::SelfApproval {
                    stage: name.clone(),
                    principal: principal.id.clone(),
                    why,
                });
            }
        }
        if policy.distinct_from_upstream {
            for u in &spec.upstream {
                let us = self.state.stage(u.as_str());
                if us.approvers.contains(&principal.id) {
                    return Err(Refusal::NotDistinct {
                        stage: name.clone(),
                        principal: principal.id.clone(),
                        upstream: u.clone(),
                    });
                }
            }
        }
        let digest = entry_digest(&st.entry);
        let mut valid = valid_approvals(
            self.pipeline,
            self.state,
            spec,
            st,
            policy,
            &digest,
            self.now,
        );
        if valid.iter().any(|p| p.id == principal.id) {
            return Err(Refusal::DuplicateApproval {
                stage: name.clone(),
                principal: principal.id.clone(),
            });
        }
        self.emit(
            Actor::principal(principal),
            EventBody::ApprovalGiven {
                stage: name.clone(),
                principal: principal.clone(),
                comment: comment.to_owned(),
                binding: ApprovalBinding {
                    release: release.id(),
                    evidence_digest: digest,
                    pipeline_version: self.pipeline.version().to_owned(),
                },
            },
        );
        valid.push(principal);
        if st.status == StageStatus::AwaitingApproval
            && policy.rule.is_satisfied_with(&valid, &facts_of(&st.entry))
        {
            self.emit(
                Actor::Engine,
                EventBody::StageScheduled {
                    stage: name.clone(),
                    approvers: valid.iter().map(|p| p.id.clone()).collect(),
                },
            );
        }
        Ok(())
    }

    fn check_approver(
        &self,
        spec: &Stage,
        policy: &crate::ApprovalPolicy,
        principal: &Principal,
    ) -> Result<(), Refusal> {
        if policy.rule.is_eligible(principal) {
            return Ok(());
        }
        Err(Refusal::NotEligible {
            stage: spec.name.clone(),
            principal: principal.id.clone(),
            groups: group_list(policy.rule.groups().into_iter()),
        })
    }

    fn reject(
        &mut self,
        name: &StageName,
        principal: &Principal,
        comment: &str,
    ) -> Result<(), Refusal> {
        let (spec, st) = self.stage(name)?;
        let Some(policy) = &spec.spec.approval else {
            return Err(Refusal::NoApprovalRequired(name.clone()));
        };
        match st.status {
            StageStatus::Ready | StageStatus::Checking | StageStatus::AwaitingApproval => {}
            s if s.is_terminal() => return Err(finished(name, s, "reject")),
            s => return Err(wrong(name, s, "reject")),
        }
        self.check_approver(spec, policy, principal)?;
        if comment.trim().is_empty() {
            return Err(Refusal::EmptyJustification("a rejection"));
        }
        self.emit(
            Actor::principal(principal),
            EventBody::ApprovalRejected {
                stage: name.clone(),
                principal: principal.clone(),
                comment: comment.to_owned(),
            },
        );
        Ok(())
    }

    fn override_gate(
        &mut self,
        name: &StageName,
        gate: &GateName,
        principal: &Principal,
        justification: &str,
    ) -> Result<(), Refusal> {
        let (spec, st) = self.stage(name)?;
        let bg = self.pipeline.break_glass_groups();
        if !bg.iter().any(|g| principal.groups.contains(g)) {
            return Err(Refusal::NotPrivileged {
                principal: principal.id.clone(),
                action: "override a gate",
                why: if bg.is_empty() {
                    "the pipeline names no break-glass group".into()
                } else {
                    format!("only members of {} may", group_list(bg.iter()))
                },
            });
        }
        if justification.trim().is_empty() {
            return Err(Refusal::EmptyJustification("an override"));
        }
        let phase = PhaseId::Entry;
        if !spec.gate_names(phase).contains(gate) {
            return Err(Refusal::UnknownGate {
                stage: name.clone(),
                phase,
                gate: gate.to_string(),
            });
        }
        let entry_failed = st.status == StageStatus::Failed
            && st.failure.as_ref().and_then(FailureReason::phase) == Some(PhaseId::Entry);
        if st.status != StageStatus::Checking && !entry_failed {
            return Err(if st.status.is_terminal() {
                finished(name, st.status, "override an entry gate")
            } else {
                wrong(name, st.status, "override an entry gate")
            });
        }
        // Reviving a failed stage must not bypass its upstreams: one may have been rolled
        // back since the stage failed.
        if entry_failed {
            if let Some(refusal) = self.unavailable(spec) {
                return Err(refusal);
            }
        }
        let Some(record) = st.entry.gates.get(gate) else {
            return Err(Refusal::NothingToOverride {
                stage: name.clone(),
                gate: gate.clone(),
                outcome: "not evaluated yet".into(),
            });
        };
        if record.is_satisfied() {
            return Err(Refusal::NothingToOverride {
                stage: name.clone(),
                gate: gate.clone(),
                outcome: "satisfied".into(),
            });
        }
        self.emit(
            Actor::principal(principal),
            EventBody::GateOverridden {
                stage: name.clone(),
                phase,
                gate: gate.clone(),
                principal: principal.clone(),
                justification: justification.to_owned(),
                overridden: record.outcome.clone(),
            },
        );
        let mut after = st.clone();
        if let Some(e) = self.events.last() {
            apply_stage(&mut after, &e.actor, self.now, &e.body);
        }
        self.settle(spec, &after, phase)
    }

    /// After a human settled a gate: pass or fail the phase if that follows, else wait.
    fn settle(&mut self, spec: &Stage, after: &StageState, phase: PhaseId) -> Result<(), Refusal> {
        match self.conclude(spec, after, phase, after.phase(phase), None, &[]) {
            Err(Refusal::NothingDue(_)) => Ok(()),
            other => other,
        }
    }

    fn judge(
        &mut self,
        name: &StageName,
        gate: &GateName,
        pass: bool,
        principal: &Principal,
        comment: &str,
    ) -> Result<(), Refusal> {
        let (spec, st) = self.stage(name)?;
        let Some(phase) = st.current_phase() else {
            return Err(Refusal::NotAwaitingJudgement {
                stage: name.clone(),
                gate: gate.clone(),
            });
        };
        if st.phase(phase).paused_on.as_ref() != Some(gate) {
            return Err(Refusal::NotAwaitingJudgement {
                stage: name.clone(),
                gate: gate.clone(),
            });
        }
        let approver = spec
            .spec
            .approval
            .as_ref()
            .is_some_and(|p| p.rule.is_eligible(principal));
        let breakglass = self
            .pipeline
            .break_glass_groups()
            .iter()
            .any(|g| principal.groups.contains(g));
        if !approver && !breakglass {
            self.require_operator(principal, "judge an inconclusive gate")?;
        }
        if comment.trim().is_empty() {
            return Err(Refusal::EmptyJustification("a judgement"));
        }
        self.emit(
            Actor::principal(principal),
            EventBody::GateJudged {
                stage: name.clone(),
                phase,
                gate: gate.clone(),
                pass,
                principal: principal.clone(),
                comment: comment.to_owned(),
            },
        );
        let mut after = st.clone();
        if let Some(e) = self.events.last() {
            apply_stage(&mut after, &e.actor, self.now, &e.body);
        }
        self.settle(spec, &after, phase)
    }

    /// Stage `name`'s spec and state and its rollout step `step`, when that step is the one
    /// to deploy now.
    fn deploy_due(
        &self,
        name: &StageName,
        step: u32,
        what: &'static str,
    ) -> Result<(&'a Stage, &'a StageState, &'a RolloutStep), Refusal> {
        let (spec, st) = self.stage(name)?;
        let due = match st.status {
            StageStatus::Scheduled => step == 0,
            StageStatus::RollingOut { step: s } => s == step && st.step_deployed_at.is_none(),
            _ => false,
        };
        if !due {
            return Err(wrong(name, st.status, what));
        }
        let planned = spec
            .steps()
            .get(step as usize)
            .ok_or_else(|| wrong(name, st.status, "deploy past the last rollout step"))?;
        Ok((spec, st, planned))
    }

    fn begin_deployment(&mut self, name: &StageName, step: u32) -> Result<(), Refusal> {
        let (_, st, planned) = self.deploy_due(name, step, "begin a deployment of this step")?;
        let (weight, attempt) = (planned.weight, st.deploy_attempts.saturating_add(1));
        self.emit(
            Actor::Engine,
            EventBody::DeploymentStarted {
                stage: name.clone(),
                step,
                weight,
                attempt,
            },
        );
        Ok(())
    }

    fn record_deployment(
        &mut self,
        name: &StageName,
        step: u32,
        result: &Result<(), String>,
    ) -> Result<(), Refusal> {
        let (spec, _, planned) = self.deploy_due(name, step, "record a deployment of this step")?;
        let (weight, auto_rollback) = (planned.weight, spec.auto_rollback());
        match result {
            Ok(()) => self.emit(
                Actor::Deployer,
                EventBody::StepDeployed {
                    stage: name.clone(),
                    step,
                    weight,
                },
            ),
            Err(error) => {
                self.emit(
                    Actor::Deployer,
                    EventBody::DeploymentFailed {
                        stage: name.clone(),
                        step,
                        weight,
                        error: error.clone(),
                    },
                );
                if auto_rollback {
                    self.emit(
                        Actor::Engine,
                        EventBody::RollbackStarted {
                            stage: name.clone(),
                            reason: format!("deployment of step {} failed: {error}", step + 1),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    fn record_rollback(
        &mut self,
        name: &StageName,
        result: &Result<(), String>,
    ) -> Result<(), Refusal> {
        let (_, st) = self.stage(name)?;
        if st.status != StageStatus::RollingBack {
            return Err(wrong(name, st.status, "record a rollback"));
        }
        match result {
            Ok(()) => self.emit(
                Actor::Deployer,
                EventBody::RolledBack {
                    stage: name.clone(),
                },
            ),
            Err(error) => self.emit(
                Actor::Deployer,
                EventBody::RollbackFailed {
                    stage: name.clone(),
                    error: error.clone(),
                },
            ),
        }
        Ok(())
    }

    fn abort(&mut self, name: &StageName, p: &Principal, reason: &str) -> Result<(), Refusal> {
        let (_, st) = self.stage(name)?;
        if st.status.is_terminal() {
            return Err(finished(name, st.status, "abort"));
        }
        if st.status == StageStatus::RollingBack {
            return Err(wrong(name, st.status, "abort"));
        }
        self.require_operator(p, "abort a promotion")?;
        if reason.trim().is_empty() {
            return Err(Refusal::EmptyJustification("an abort"));
        }
        self.emit(
            Actor::principal(p),
            EventBody::StageAborted {
                stage: name.clone(),
                principal: p.clone(),
                reason: reason.to_owned(),
            },
        );
        if st.deployed.is_some() {
            self.emit(
                Actor::principal(p),
                EventBody::RollbackStarted {
                    stage: name.clone(),
                    reason: format!("aborted by {}: {reason}", p.id),
                },
            );
        }
        Ok(())
    }

    fn roll_back(&mut self, name: &StageName, p: &Principal, reason: &str) -> Result<(), Refusal> {
        let (spec, st) = self.stage(name)?;
        let allowed = match st.status {
            StageStatus::RollingOut { .. }
            | StageStatus::Verifying
            | StageStatus::Soaking { .. }
            | StageStatus::Promoted
            | StageStatus::Failed => st.deployed.is_some(),
            _ => false,
        };
        if !allowed {
            return Err(wrong(name, st.status, "roll back (nothing is deployed)"));
        }
        if st.status == StageStatus::Promoted {
            for d in &spec.downstream {
                let status = self.state.status(d.as_str());
                let moved_on = !matches!(
                    status,
                    StageStatus::Waiting
                        | StageStatus::Failed
                        | StageStatus::Rejected
                        | StageStatus::Aborted
                        | StageStatus::RolledBack
                );
                if moved_on {
                    return Err(Refusal::DownstreamInProgress {
                        stage: name.clone(),
                        downstream: d.clone(),
                        status,
                    });
                }
            }
        }
        self.require_operator(p, "roll back a stage")?;
        if reason.trim().is_empty() {
            return Err(Refusal::EmptyJustification("a rollback"));
        }
        self.emit(
            Actor::principal(p),
            EventBody::RollbackStarted {
                stage: name.clone(),
                reason: format!("{}: {reason}", p.id),
            },
        );
        Ok(())
    }

    fn tick(&mut self, name: &StageName) -> Result<(), Refusal> {
        let (spec, st) = self.stage(name)?;
        if let StageStatus::Soaking { until } = st.status {
            if self.now >= until {
                self.promote(spec);
                return Ok(());
            }
            return Err(Refusal::NothingDue(name.clone()));
        }
        let Some(phase) = st.current_phase() else {
            return Err(Refusal::NothingDue(name.clone()));
        };
        if next_in_phase(spec, st, phase, self.now) != PhaseNext::Tick {
            return Err(Refusal::NothingDue(name.clone()));
        }
        self.conclude(spec, st, phase, st.phase(phase), None, &[])
    }
}

fn wrong(stage: &StageName, status: StageStatus, action: &'static str) -> Refusal {
    Refusal::WrongStatus {
        stage: stage.clone(),
        status,
        action,
    }
}

fn finished(stage: &StageName, status: StageStatus, action: &'static str) -> Refusal {
    Refusal::StageFinished {
        stage: stage.clone(),
        status,
        action,
    }
}

fn group_list<'g>(groups: impl Iterator<Item = &'g crate::Group>) -> String {
    let v: Vec<String> = groups.map(|g| format!("`{g}`")).collect();
    v.join(", ")
}

/// The approvals on `st` that still count under `policy` at `now`: bound to this release, to
/// the entry evidence `digest` and to the pipeline's current version, and not expired. Each
/// principal counts once.
pub fn valid_approvals<'s>(
    pipeline: &Pipeline,
    state: &ReleaseState,
    spec: &Stage,
    st: &'s StageState,
    policy: &crate::ApprovalPolicy,
    digest: &Digest,
    now: DateTime<Utc>,
) -> Vec<&'s Principal> {
    let release = state.release.as_deref().map(Release::id);
    // Distinctness is a property of the set counted now, not only of the moment an approval
    // was given: an upstream (with any-upstream availability) may be approved later by the
    // same person.
    let approved_upstream = |p: &Principal| {
        policy.distinct_from_upstream
            && spec
                .upstream
                .iter()
                .any(|u| state.stage(u.as_str()).approvers.contains(&p.id))
    };
    let mut out: Vec<&Principal> = Vec::new();
    for a in &st.approvals {
        let fresh = policy.expiry.is_none_or(|e| elapsed(a.at, now) < e);
        let bound = a.binding.evidence_digest == *digest
            && a.binding.pipeline_version == pipeline.version()
            && Some(a.binding.release) == release;
        if fresh
            && bound
            && !approved_upstream(&a.principal)
            && !out.iter().any(|p| p.id == a.principal.id)
        {
            out.push(&a.principal);
        }
    }
    out
}

/// The facts the entry gates of a phase reported, for approval conditions.
pub fn facts_of(ps: &PhaseState) -> impl Fn(&GateName, &str, &str) -> bool + '_ {
    move |gate, fact, value| {
        ps.gates
            .get(gate)
            .and_then(|r| r.facts.get(fact))
            .is_some_and(|v| v == value)
    }
}

/// The digest approvals are bound to: every entry gate's latest outcome, evidence digest and
/// human settlement.
pub fn entry_digest(ps: &PhaseState) -> Digest {
    let items: Vec<serde_json::Value> = ps
        .gates
        .iter()
        .map(|(g, r)| {
            serde_json::json!({
                "gate": g,
                "outcome": r.outcome.label(),
                "evidence": r.evidence_digest,
                "overridden_by": r.overridden_by,
                "judged": r.judged.as_ref().map(|(p, pass)| (p, pass)),
            })
        })
        .collect();
    Digest::of_canonical(&items).unwrap_or_else(|_| Digest::of(b""))
}

// ---------------------------------------------------------------------------------------------
// plan
// ---------------------------------------------------------------------------------------------

/// A side effect (or a tick) the engine should perform next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start an auto-start stage.
    Start {
        /// The stage.
        stage: StageName,
    },
    /// Evaluate these gates of the phase now.
    Evaluate {
        /// The stage.
        stage: StageName,
        /// The phase.
        phase: PhaseId,
        /// The gates to evaluate.
        gates: Vec<GateName>,
    },
    /// Deploy a rollout step.
    Deploy {
        /// The stage.
        stage: StageName,
        /// Step (zero-based).
        step: u32,
        /// Traffic weight.
        weight: Percent,
    },
    /// Roll the stage back.
    RollBack {
        /// The stage.
        stage: StageName,
    },
    /// Submit a [`Command::Tick`].
    Tick {
        /// The stage.
        stage: StageName,
    },
}

impl Action {
    /// The stage the action concerns.
    pub fn stage(&self) -> &StageName {
        match self {
            Action::Start { stage }
            | Action::Evaluate { stage, .. }
            | Action::Deploy { stage, .. }
            | Action::RollBack { stage }
            | Action::Tick { stage } => stage,
        }
    }
}

/// What a release waits for before it can move on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// A time: a sampling round, a pause, a soak, a retry.
    Until {
        /// The stage.
        stage: StageName,
        /// When.
        at: DateTime<Utc>,
        /// What happens then.
        reason: &'static str,
    },
    /// Approvals.
    Approval {
        /// The stage.
        stage: StageName,
        /// The rule, in words.
        rule: String,
        /// Approvals given so far that still count.
        valid: Vec<PrincipalId>,
    },
    /// A human decision on an inconclusive gate.
    Judgement {
        /// The stage.
        stage: StageName,
        /// The phase.
        phase: PhaseId,
        /// The gate.
        gate: GateName,
    },
    /// A principal must start the stage.
    ManualStart {
        /// The stage.
        stage: StageName,
    },
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiting::Until { stage, at, reason } => write!(f, "{stage}: {reason} at {at}"),
            Waiting::Approval { stage, rule, valid } => {
                write!(f, "{stage}: approval {rule} ({} valid so far)", valid.len())
            }
            Waiting::Judgement { stage, phase, gate } => write!(
                f,
                "{stage}: a human decision on inconclusive gate `{gate}` ({phase})"
            ),
            Waiting::ManualStart { stage } => write!(f, "{stage}: a principal to start it"),
        }
    }
}

/// What should happen next for a release.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Things to do now, in pipeline order.
    pub actions: Vec<Action>,
    /// Things to wait for.
    pub waiting: Vec<Waiting>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PhaseNext {
    Tick,
    Evaluate(Vec<GateName>),
    Until(DateTime<Utc>, &'static str),
    Judgement(GateName),
}

fn phase_not_before(spec: &Stage, st: &StageState, phase: PhaseId) -> DateTime<Utc> {
    let ps = st.phase(phase);
    let start = ps.started_at.unwrap_or(DateTime::<Utc>::MIN_UTC);
    let delay = spec.phase(phase).map_or(Duration::ZERO, |p| p.policy.delay);
    let pause = match phase {
        PhaseId::Analysis { step } => spec
            .steps()
            .get(step as usize)
            .map_or(Duration::ZERO, |s| s.pause),
        _ => Duration::ZERO,
    };
    add(start, pause.saturating_add(delay))
}

fn phase_deadline(spec: &Stage, st: &StageState, phase: PhaseId) -> Option<DateTime<Utc>> {
    let policy: PhasePolicy = spec.phase(phase)?.policy;
    let timeout = policy.timeout?;
    Some(add(phase_not_before(spec, st, phase), timeout))
}

fn next_in_phase(spec: &Stage, st: &StageState, phase: PhaseId, now: DateTime<Utc>) -> PhaseNext {
    let ps = st.phase(phase);
    let names = spec.gate_names(phase);
    let Some(def) = spec.phase(phase) else {
        return PhaseNext::Tick;
    };
    if let Some(g) = &ps.paused_on {
        return PhaseNext::Judgement(g.clone());
    }
    if names.is_empty() {
        let nb = phase_not_before(spec, st, phase);
        return if now >= nb {
            PhaseNext::Tick
        } else {
            PhaseNext::Until(nb, "the rollout pause ends")
        };
    }
    let not_before = phase_not_before(spec, st, phase);
    if now < not_before {
        return PhaseNext::Until(not_before, "the first evaluation is due");
    }
    let to_sample: Vec<GateName> = names
        .iter()
        .filter(|g| {
            let r = ps.gates.get(*g);
            if r.is_some_and(GateRecord::is_settled_by_human) {
                return false;
            }
            def.policy.resamples_all() || !r.is_some_and(GateRecord::is_satisfied)
        })
        .cloned()
        .collect();
    if to_sample.is_empty() {
        return PhaseNext::Tick;
    }
    let deadline = phase_deadline(spec, st, phase);
    if deadline.is_some_and(|d| now >= d) {
        return PhaseNext::Tick;
    }
    match ps.next_round_at {
        Some(next) if next > now => PhaseNext::Until(
            deadline.map_or(next, |d| next.min(d)),
            "the next sampling round",
        ),
        _ => PhaseNext::Evaluate(to_sample),
    }
}

/// Rollback retry wait after a failed rollback.
pub const ROLLBACK_RETRY: Duration = Duration::from_secs(30);

/// Says what should happen next for a release: actions to perform now, and what it waits for.
/// Pure.
pub fn plan(pipeline: &Pipeline, state: &ReleaseState, now: DateTime<Utc>) -> Plan {
    let mut out = Plan::default();
    if state.release.is_none() {
        return out;
    }
    for spec in pipeline.stages() {
        let st = state.stage(spec.name.as_str());
        let stage = spec.name.clone();
        match st.status {
            StageStatus::Waiting => {}
            StageStatus::Ready if spec.spec.auto_start => out.actions.push(Action::Start { stage }),
            StageStatus::Ready => out.waiting.push(Waiting::ManualStart { stage }),
            StageStatus::Checking | StageStatus::Verifying | StageStatus::RollingOut { .. }
                if st.current_phase().is_some() =>
            {
                let Some(phase) = st.current_phase() else {
                    continue;
                };
                match next_in_phase(spec, st, phase, now) {
                    PhaseNext::Tick => out.actions.push(Action::Tick { stage }),
                    PhaseNext::Evaluate(gates) => out.actions.push(Action::Evaluate {
                        stage,
                        phase,
                        gates,
                    }),
                    PhaseNext::Until(at, reason) => {
                        out.waiting.push(Waiting::Until { stage, at, reason })
                    }
                    PhaseNext::Judgement(gate) => {
                        out.waiting.push(Waiting::Judgement { stage, phase, gate })
                    }
                }
            }
            StageStatus::Scheduled | StageStatus::RollingOut { .. } => {
                if let Some(s) = spec.steps().get(st.step as usize) {
                    out.actions.push(Action::Deploy {
                        stage,
                        step: st.step,
                        weight: s.weight,
                    });
                }
            }
            StageStatus::AwaitingApproval => {
                if let Some(policy) = &spec.spec.approval {
                    let digest = entry_digest(&st.entry);
                    let valid = valid_approvals(pipeline, state, spec, st, policy, &digest, now)
                        .iter()
                        .map(|p| p.id.clone())
                        .collect();
                    out.waiting.push(Waiting::Approval {
                        stage,
                        rule: policy.rule.to_string(),
                        valid,
                    });
                }
            }
            StageStatus::Soaking { until } => {
                if now >= until {
                    out.actions.push(Action::Tick { stage });
                } else {
                    out.waiting.push(Waiting::Until {
                        stage,
                        at: until,
                        reason: "the soak ends",
                    });
                }
            }
            StageStatus::RollingBack => match st.rollback_failures.1 {
                Some(last) if now < add(last, ROLLBACK_RETRY) => out.waiting.push(Waiting::Until {
                    stage,
                    at: add(last, ROLLBACK_RETRY),
                    reason: "the rollback is retried",
                }),
                _ => out.actions.push(Action::RollBack { stage }),
            },
            StageStatus::Checking | StageStatus::Verifying => {}
            StageStatus::Promoted
            | StageStatus::Failed
            | StageStatus::Rejected
            | StageStatus::Aborted
            | StageStatus::RolledBack => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Human-readable form
// ---------------------------------------------------------------------------------------------

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Engine => f.write_str("engine"),
            Actor::Principal { id } => write!(f, "{id}"),
            Actor::Gate { name } => write!(f, "gate {name}"),
            Actor::Deployer => f.write_str("deployer"),
        }
    }
}

impl fmt::Display for EventBody {
    /// One line a release manager understands, without the time and the stage.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EventBody as E;
        match self {
            E::Registered {
                release,
                pipeline,
                pipeline_version,
                initiator,
            } => write!(
                f,
                "release `{}` ({}) registered in pipeline {pipeline} version {pipeline_version} by {}",
                release.name(),
                release.id().short(),
                initiator.id
            ),
            E::PipelineVersionAdopted { from, to } => {
                write!(
                    f,
                    "pipeline version {from} replaced by {to}; earlier approvals void"
                )
            }
            E::StageReady { .. } => f.write_str("ready: upstream stages promoted"),
            E::StageStarted { .. } => f.write_str("promotion started; entry gates run"),
            E::GateEvaluated {
                phase,
                round,
                gate,
                outcome,
                attempts,
                evidence,
                ..
            } => {
                write!(f, "{phase} gate `{gate}` round {round}: {outcome}")?;
                if let Some(e) = evidence {
                    write!(f, " — {}", e.summary)?;
                }
                if *attempts > 1 {
                    write!(f, " ({attempts} attempts)")?;
                }
                Ok(())
            }
            E::PhaseWaiting {
                phase,
                next_round_at,
                ..
            } => write!(f, "{phase} not passed yet; next round at {next_round_at}"),
            E::PhasePaused { phase, gate, .. } => write!(
                f,
                "{phase} paused: gate `{gate}` is inconclusive and needs a human decision"
            ),
            E::PhasePassed { phase, .. } => write!(f, "{phase} gates passed"),
            E::PhaseFailed { reason, .. } => write!(f, "FAILED: {reason}"),
            E::GateJudged {
                gate,
                pass,
                principal,
                comment,
                ..
            } => write!(
                f,
                "{} judged gate `{gate}` {}: {comment}",
                principal.id,
                if *pass { "pass" } else { "fail" }
            ),
            E::GateOverridden {
                gate,
                principal,
                justification,
                overridden,
                ..
            } => write!(
                f,
                "BREAK GLASS: {} overrode gate `{gate}` ({overridden}): {justification}",
                principal.id
            ),
            E::ApprovalRequested {
                evidence_digest, ..
            } => write!(
                f,
                "approval requested (evidence {})",
                evidence_digest.short(12)
            ),
            E::ApprovalGiven {
                principal, comment, ..
            } => {
                write!(f, "approved by {}", principal.id)?;
                if !comment.is_empty() {
                    write!(f, ": {comment}")?;
                }
                Ok(())
            }
            E::ApprovalRejected {
                principal, comment, ..
            } => write!(f, "REJECTED by {}: {comment}", principal.id),
            E::StageScheduled { approvers, .. } if approvers.is_empty() => {
                f.write_str("scheduled for deployment")
            }
            E::StageScheduled { approvers, .. } => {
                let names: Vec<&str> = approvers.iter().map(PrincipalId::as_str).collect();
                write!(
                    f,
                    "scheduled for deployment; approved by {}",
                    names.join(", ")
                )
            }
            E::DeploymentStarted {
                step,
                weight,
                attempt,
                ..
            } => {
                write!(f, "deploying rollout step {} at {weight}", step + 1)?;
                if *attempt > 1 {
                    write!(
                        f,
                        " (attempt {attempt}: the outcome of the last one was not recorded)"
                    )?;
                }
                Ok(())
            }
            E::StepDeployed { step, weight, .. } => {
                write!(f, "rollout step {} deployed at {weight}", step + 1)
            }
            E::DeploymentFailed {
                step,
                weight,
                error,
                ..
            } => write!(
                f,
                "DEPLOYMENT FAILED at step {} ({weight}): {error}",
                step + 1
            ),
            E::StepCompleted { step, .. } => write!(f, "rollout step {} complete", step + 1),
            E::VerificationStarted { .. } => f.write_str("rollout complete; verification starts"),
            E::SoakStarted { until, .. } => write!(f, "soaking until {until}"),
            E::StagePromoted { .. } => f.write_str("PROMOTED"),
            E::RollbackStarted { reason, .. } => write!(f, "ROLLBACK started: {reason}"),
            E::RollbackFailed { error, .. } => write!(f, "rollback failed (will retry): {error}"),
            E::RolledBack { .. } => f.write_str("ROLLED BACK"),
            E::StageAborted {
                principal, reason, ..
            } => write!(f, "ABORTED by {}: {reason}", principal.id),
        }
    }
}

#[cfg(test)]
mod event_kind_tests {
    use super::EventKind;

    /// `EventKind::as_str` is the serialised `type` of the body: checked against serde for the
    /// kinds a small release produces, and for uniqueness across all kinds.
    #[test]
    fn kind_names_are_the_serialised_types_and_unique() {
        let mut names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventKind::ALL.len());
        let body = super::EventBody::StageReady {
            stage: crate::StageName::new("dev").unwrap(),
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["type"], body.event_kind().as_str());
        assert_eq!(body.kind(), "stage_ready");
    }
}
