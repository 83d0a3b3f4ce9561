//! Commands and refusals: what can be asked of the state machine, and why it can say no.
//!
//! A [`Command`] comes from a principal (approve, reject, override, judge, start, abort, roll
//! back) or from the engine (gate rounds, deployment intents and results, ticks);
//! [`decide`](super::decide) answers with events or a [`Refusal`].

use super::event::Outcome;
use super::state::StageStatus;
use crate::gate::{Evidence, PhaseId};
use crate::name::{GateName, PrincipalId, StageName};
use crate::principal::Principal;
use crate::release::{Release, ReleaseId};

/// The result of one gate evaluation, as the engine reports it to [`decide`](super::decide).
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq)]
pub struct GateResult {
    pub gate: GateName,
    pub outcome: Outcome,
    /// Its evidence, if it gave a verdict.
    pub evidence: Option<Evidence>,
    /// Attempts taken.
    pub attempts: u32,
}

/// Something a principal or the engine asks the state machine to do.
#[allow(missing_docs)] // fields are named for what they hold; the variant's doc says what it means
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// Enter the release into the pipeline.
    Register {
        release: Release,
        /// Who registers it.
        initiator: Principal,
    },
    /// Start promotion into a Ready stage: by a principal, or by the engine for auto-start
    /// stages.
    Start {
        stage: StageName,
        /// The principal; `None` for the engine.
        by: Option<Principal>,
    },
    /// Record one sampling round of a phase (engine).
    RecordRound {
        stage: StageName,
        phase: PhaseId,
        /// Results of the gates evaluated.
        results: Vec<GateResult>,
    },
    /// Approve the stage.
    Approve {
        stage: StageName,
        principal: Principal,
        comment: String,
    },
    /// Reject the stage.
    Reject {
        stage: StageName,
        /// The rejecting principal.
        principal: Principal,
        comment: String,
    },
    /// Break glass: count a failed entry gate as passed.
    Override {
        stage: StageName,
        gate: GateName,
        /// A principal in a break-glass group.
        principal: Principal,
        /// Written justification.
        justification: String,
    },
    /// Judge an inconclusive gate.
    Judge {
        stage: StageName,
        gate: GateName,
        /// Pass (true) or fail.
        pass: bool,
        principal: Principal,
        comment: String,
    },
    /// Record that the deployer is about to be asked to deploy the current step (engine): the
    /// intent, appended before the call.
    BeginDeployment {
        stage: StageName,
        /// Step (zero-based).
        step: u32,
    },
    /// Record the deployer's result for the current step (engine).
    RecordDeployment {
        stage: StageName,
        /// Step (zero-based).
        step: u32,
        /// Ok, or the deployer's error.
        result: Result<(), String>,
    },
    /// Record the deployer's rollback result (engine).
    RecordRollback {
        stage: StageName,
        /// Ok, or the deployer's error.
        result: Result<(), String>,
    },
    /// Abort promotion into a stage; a deployed stage is rolled back.
    Abort {
        stage: StageName,
        principal: Principal,
        reason: String,
    },
    /// Roll back a deployed or promoted stage.
    RollBack {
        stage: StageName,
        principal: Principal,
        reason: String,
    },
    /// Let time-driven transitions happen (soak end, phase timeout, empty phases) (engine).
    Tick { stage: StageName },
}

/// Why a command was refused. A refused command changes nothing.
#[allow(missing_docs)] // fields are named for what they hold; the variant's doc says what it means
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
        stage: StageName,
        phase: PhaseId,
        gate: String,
    },
    /// An upstream stage has not promoted the release.
    #[error("stage `{stage}` cannot start: upstream `{upstream}` is {status}, not promoted")]
    UpstreamNotPromoted {
        stage: StageName,
        upstream: StageName,
        status: StageStatus,
    },
    /// The stage only starts when a principal starts it.
    #[error("stage `{0}` starts only when a principal starts it")]
    ManualStartRequired(StageName),
    /// The command does not fit the stage's status.
    #[error("stage `{stage}` is {status}; cannot {action}")]
    WrongStatus {
        stage: StageName,
        status: StageStatus,
        /// What was attempted.
        action: &'static str,
    },
    /// The stage is finished.
    #[error("stage `{stage}` is finished ({status}); cannot {action}")]
    StageFinished {
        stage: StageName,
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
        stage: StageName,
        principal: PrincipalId,
        /// Eligible groups.
        groups: String,
    },
    /// Self-approval.
    #[error("`{principal}` may not approve stage `{stage}`: {why}")]
    SelfApproval {
        stage: StageName,
        principal: PrincipalId,
        /// Contributor or initiator.
        why: &'static str,
    },
    /// Already approved an upstream stage.
    #[error("`{principal}` approved upstream stage `{upstream}`; stage `{stage}` needs different approvers")]
    NotDistinct {
        stage: StageName,
        principal: PrincipalId,
        upstream: StageName,
    },
    /// The principal already has a valid approval on the stage.
    #[error("`{principal}` has already approved stage `{stage}`")]
    DuplicateApproval {
        stage: StageName,
        principal: PrincipalId,
    },
    /// The principal lacks the privilege.
    #[error("`{principal}` may not {action}: {why}")]
    NotPrivileged {
        principal: PrincipalId,
        /// What was attempted.
        action: &'static str,
        /// Which groups would allow it.
        why: String,
    },
    /// Justification or reason missing, or holding nothing a reader can see (only spaces or
    /// invisible characters).
    #[error("{0} needs a written justification")]
    EmptyJustification(&'static str),
    /// A person with a stake in the release tried to override or judge its gates, and the
    /// pipeline does not allow it.
    #[error("`{principal}` may not {action} on stage `{stage}`: {why}")]
    SelfDecision {
        stage: StageName,
        principal: PrincipalId,
        /// What they tried (`override a gate`, `judge a gate`).
        action: &'static str,
        /// Contributor or initiator.
        why: &'static str,
    },
    /// The pipeline requires verified people and the principal's verification is missing.
    #[error("`{principal}` may not {action}: the pipeline requires a verified identity (from the roster, an SSH signature or an OIDC token), and the command carries none")]
    Unverified {
        principal: PrincipalId,
        /// What they tried.
        action: &'static str,
    },
    /// The pipeline accepts `action` in `stage` only from principals verified in another way
    /// than the command's ([`Pipeline::accepted_for`](crate::Pipeline::accepted_for)).
    #[error("`{principal}` may not {} {}: {} requires {}, and the command carries {}",
        action.describe(),
        stage.as_ref().map_or_else(|| "here".to_owned(), |s| format!("in stage `{s}`")),
        action,
        crate::verification::kind_list(required),
        presented.map_or("no verification (the caller's word)", |k| k.as_str()),
    )]
    VerificationNotAccepted {
        principal: PrincipalId,
        action: crate::ActionKind,
        /// `None` for registering, which has no stage.
        stage: Option<StageName>,
        /// How the command's principal was verified, if at all.
        presented: Option<crate::VerificationKind>,
        /// The kinds the pipeline accepts here.
        required: std::collections::BTreeSet<crate::VerificationKind>,
    },
    /// A comment, justification or reason is too long or holds a terminal control character.
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
    /// The gate has nothing to override.
    #[error("gate `{gate}` of stage `{stage}` is {outcome}; there is nothing to override")]
    NothingToOverride {
        stage: StageName,
        gate: GateName,
        outcome: String,
    },
    /// The gate is not inconclusive.
    #[error("stage `{stage}` is not waiting for a judgement on gate `{gate}`")]
    NotAwaitingJudgement { stage: StageName, gate: GateName },
    /// Results do not fit the phase.
    #[error("round results for stage `{stage}` {phase}: {problem}")]
    BadRound {
        stage: StageName,
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
        stage: StageName,
        downstream: StageName,
        status: StageStatus,
    },
}

impl Refusal {
    /// Whether the refusal is about *who* asked — not eligible, not privileged, a stake in the
    /// release, already counted, approved upstream — rather than about the release's state.
    /// The engine records such refusals of a person's command in the security stream.
    pub fn is_about_who(&self) -> bool {
        matches!(
            self,
            Refusal::NotEligible { .. }
                | Refusal::SelfApproval { .. }
                | Refusal::NotDistinct { .. }
                | Refusal::DuplicateApproval { .. }
                | Refusal::NotPrivileged { .. }
                | Refusal::SelfDecision { .. }
                | Refusal::Unverified { .. }
                | Refusal::VerificationNotAccepted { .. }
        )
    }
}
