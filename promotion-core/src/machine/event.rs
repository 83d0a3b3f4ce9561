//! Events: the log's format. Add variants and optional fields; never rename or remove.
//!
//! An [`Event`] is one recorded fact about a release; its [`EventBody`] says what happened,
//! [`Actor`] who or what caused it. The serialised form is a public schema that logs written
//! years ago must still replay under, which is why [`PhaseId`] is (de)serialised here by hand.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Digest;
use crate::gate::{Evidence, PhaseId};
use crate::name::{GateName, PipelineName, PrincipalId, StageName};
use crate::pipeline::Percent;
use crate::principal::Principal;
use crate::release::{Release, ReleaseId};

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
    pub(crate) fn principal(p: &Principal) -> Self {
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
    pub(super) fn label(&self) -> &'static str {
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
#[allow(missing_docs)] // fields are named for what they hold; the variant's doc says what it means
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureReason {
    /// A gate's verdict was fail.
    GateFailed {
        /// Phase of the gate.
        phase: PhaseId,
        gate: GateName,
    },
    /// A gate could not decide, round after round.
    GateErrored {
        /// Phase of the gate.
        phase: PhaseId,
        gate: GateName,
        /// Its last error.
        message: String,
    },
    /// The phase did not pass within its timeout.
    TimedOut { phase: PhaseId },
    /// A human judged an inconclusive gate as failed.
    JudgedFailed {
        /// Phase of the gate.
        phase: PhaseId,
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
    pub(super) fn phase(&self) -> Option<PhaseId> {
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
#[allow(missing_docs)] // fields are named for what they hold; the variant's doc says what it means
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
    StageReady { stage: StageName },
    /// Promotion into the stage began (entry gates start).
    StageStarted {
        stage: StageName,
        /// The principal who started it, with how they were verified (an SSH-signed start
        /// keeps its statement and signature here); `None` for the engine, and in logs
        /// written before starts recorded it (the actor still names the person).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Principal>,
    },
    /// A gate was evaluated.
    GateEvaluated {
        stage: StageName,
        phase: PhaseId,
        /// Sampling round, from 1.
        round: u32,
        gate: GateName,
        #[serde(flatten)]
        outcome: Outcome,
        /// Attempts it took (retries after errors).
        attempts: u32,
        /// Digest of the evidence.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence_digest: Option<Digest>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence: Option<Box<Evidence>>,
    },
    /// The phase did not pass this round; it is sampled again at `next_round_at`.
    PhaseWaiting {
        stage: StageName,
        phase: PhaseId,
        /// When to sample again.
        next_round_at: DateTime<Utc>,
        /// Since when every gate has been passing, when they are.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        passing_since: Option<DateTime<Utc>>,
    },
    /// The phase waits for a human to judge an inconclusive gate.
    PhasePaused {
        stage: StageName,
        phase: PhaseId,
        /// The inconclusive gate.
        gate: GateName,
    },
    /// Every gate of the phase passed.
    PhasePassed { stage: StageName, phase: PhaseId },
    /// The phase failed; the stage is Failed.
    PhaseFailed {
        stage: StageName,
        phase: PhaseId,
        reason: FailureReason,
    },
    /// A human judged an inconclusive gate.
    GateJudged {
        stage: StageName,
        phase: PhaseId,
        gate: GateName,
        /// Pass (true) or fail.
        pass: bool,
        /// Who judged, with their groups at the time.
        principal: Principal,
        /// Their comment.
        comment: String,
        /// Set when the principal had a stake in the release (see
        /// [`Pipeline::allows_self_override`](crate::Pipeline::allows_self_override)) and the
        /// pipeline let them decide anyway: what their stake was. Absent in older logs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        self_interest: Option<String>,
    },
    /// Break glass: a failed gate was overridden.
    GateOverridden {
        stage: StageName,
        phase: PhaseId,
        gate: GateName,
        /// Who overrode it, with their groups at the time.
        principal: Principal,
        /// The written justification.
        justification: String,
        /// The gate's outcome that was overridden.
        overridden: Outcome,
        /// Set when the principal had a stake in the release (see
        /// [`Pipeline::allows_self_override`](crate::Pipeline::allows_self_override)) and the
        /// pipeline let them decide anyway: what their stake was. Absent in older logs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        self_interest: Option<String>,
    },
    /// Entry gates passed; approvals are awaited.
    ApprovalRequested {
        stage: StageName,
        /// Digest approvals must be bound to.
        evidence_digest: Digest,
    },
    /// An eligible principal approved.
    ApprovalGiven {
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
        stage: StageName,
    },
    /// The engine is about to ask the deployer to deploy a rollout step. Recorded before the
    /// call, so that the log holds every deployment attempted, even one whose outcome was never
    /// recorded because the process stopped during the call. The step's next `step_deployed` or
    /// `deployment_failed` is the outcome; another `deployment_started` for the same step before
    /// it means the earlier attempt's outcome is unknown and the step is deployed again.
    DeploymentStarted {
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
        stage: StageName,
        /// Step (zero-based).
        step: u32,
        /// Traffic weight.
        weight: Percent,
    },
    /// The deployer failed to deploy a step.
    DeploymentFailed {
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
        stage: StageName,
        /// Step (zero-based).
        step: u32,
    },
    /// The rollout finished; verification gates start.
    VerificationStarted { stage: StageName },
    /// Verification passed; the release soaks until `until`.
    SoakStarted {
        stage: StageName,
        /// End of the soak.
        until: DateTime<Utc>,
    },
    /// The release is promoted in the stage.
    StagePromoted { stage: StageName },
    /// A rollback began.
    RollbackStarted {
        stage: StageName,
        reason: String,
        /// The principal who asked for the rollback, with how they were verified; `None` for
        /// the engine's own rollbacks (a failed gate or deployment, an abort, which records
        /// its principal in `stage_aborted`) and in logs written before rollbacks recorded it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Principal>,
    },
    /// The deployer failed to roll back; it is retried.
    RollbackFailed {
        stage: StageName,
        /// The deployer's error.
        error: String,
    },
    /// The stage was rolled back.
    RolledBack { stage: StageName },
    /// A principal aborted the promotion into the stage.
    StageAborted {
        stage: StageName,
        /// Who, with their groups at the time.
        principal: Principal,
        reason: String,
    },
    /// A person's command was refused because of who they are (not eligible, not privileged,
    /// a stake in the release, already counted, approved upstream). Recorded in the store's
    /// security stream ([`StreamId::security`](crate::StreamId::security)), never in the
    /// release's own stream, so a security review sees who tried without the attempt changing
    /// anything.
    AttemptRefused {
        /// The release the command was for.
        release: ReleaseId,
        /// The stage it named.
        stage: StageName,
        /// What was tried, in words (`approve`, `override a gate of`).
        action: String,
        /// Who tried, with the groups they claimed.
        principal: Principal,
        /// The refusal, as the engine worded it.
        refusal: String,
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
    AttemptRefused,
}

impl EventKind {
    /// Every kind, in the order the variants are declared.
    pub const ALL: [EventKind; 27] = [
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
        EventKind::AttemptRefused,
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
            AttemptRefused => "attempt_refused",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EventBody {
    /// The person whose decision this event records (a judgement, an override, an approval, a
    /// rejection, an abort), with how they were verified; `None` for the engine's own events,
    /// the registration and refused attempts. Status and reports use it to show decisions
    /// recorded without a verification.
    pub fn decided_by(&self) -> Option<&Principal> {
        match self {
            EventBody::GateJudged { principal, .. }
            | EventBody::GateOverridden { principal, .. }
            | EventBody::ApprovalGiven { principal, .. }
            | EventBody::ApprovalRejected { principal, .. }
            | EventBody::StageAborted { principal, .. } => Some(principal),
            _ => None,
        }
    }

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
            AttemptRefused { .. } => EventKind::AttemptRefused,
        }
    }

    /// The stage the event concerns, if any.
    pub fn stage(&self) -> Option<&StageName> {
        use EventBody::*;
        match self {
            Registered { .. } | PipelineVersionAdopted { .. } | AttemptRefused { .. } => None,
            StageReady { stage }
            | StageStarted { stage, .. }
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

#[cfg(test)]
mod tests {
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
