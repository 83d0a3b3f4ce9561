//! State: what the events of one release fold into.
//!
//! [`ReleaseState`] holds a [`StageState`] per stage that has left Waiting; each stage keeps
//! its [`StageStatus`], the progress of its current [`PhaseState`]s and the approvals,
//! rejections and overrides recorded there. Only [`apply`](super::apply) changes it.
//!
//! The structs are `#[non_exhaustive]` with crate-private fields: a host reads them through
//! accessors that lend slices, iterators and references (never the core's own containers),
//! and builds a state only by replaying events, so that a new field is not a breaking change.

use std::collections::BTreeMap;
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
///
/// Deliberately *not* `#[non_exhaustive]`, unlike the structs of this module: a host that
/// matches on it exhaustively (to render a status, to decide whether to page someone) has to
/// handle a new status where it matters, so a new status is a breaking change, announced as
/// one. A host that only asks whether a stage is finished uses
/// [`is_terminal`](Self::is_terminal), which a new status keeps up to date.
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
///
/// Read through its accessors; only [`apply`](super::apply) builds one, so fields can be added
/// without breaking a host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GateRecord {
    pub(crate) outcome: Outcome,
    pub(crate) evidence_digest: Option<Digest>,
    pub(crate) at: DateTime<Utc>,
    pub(crate) round: u32,
    pub(crate) consecutive_errors: u32,
    pub(crate) overridden_by: Option<PrincipalId>,
    pub(crate) judged: Option<(PrincipalId, bool)>,
    pub(crate) facts: BTreeMap<String, String>,
}

impl GateRecord {
    /// The outcome of the latest evaluation, as the gate reported it (an override or a
    /// judgement does not change it; see [`is_satisfied`](Self::is_satisfied)).
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }
    /// Digest of the latest evaluation's evidence, when the gate produced any.
    pub fn evidence_digest(&self) -> Option<&Digest> {
        self.evidence_digest.as_ref()
    }
    /// When the latest evaluation was recorded.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }
    /// The sampling round of the latest evaluation (1 for the phase's first).
    pub fn round(&self) -> u32 {
        self.round
    }
    /// How many evaluations in a row, up to the latest, ended in an error (0 after any
    /// other outcome).
    pub fn consecutive_errors(&self) -> u32 {
        self.consecutive_errors
    }
    /// Who overrode the gate (break glass) since its latest evaluation, if anyone.
    pub fn overridden_by(&self) -> Option<&PrincipalId> {
        self.overridden_by.as_ref()
    }
    /// Who judged the inconclusive gate since its latest evaluation, and whether as a pass.
    pub fn judged(&self) -> Option<(&PrincipalId, bool)> {
        self.judged.as_ref().map(|(by, pass)| (by, *pass))
    }
    /// The facts the latest evaluation's evidence declared (empty without evidence); what
    /// approval rules and policies read.
    pub fn facts(&self) -> &BTreeMap<String, String> {
        &self.facts
    }
    /// The fact `name` of the latest evaluation's evidence.
    pub fn fact(&self, name: &str) -> Option<&str> {
        self.facts.get(name).map(String::as_str)
    }
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
///
/// Read through its accessors; only [`apply`](super::apply) changes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PhaseState {
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) round: u32,
    pub(crate) gates: VecMap<GateName, GateRecord>,
    pub(crate) next_round_at: Option<DateTime<Utc>>,
    pub(crate) passing_since: Option<DateTime<Utc>>,
    pub(crate) paused_on: Option<GateName>,
    pub(crate) passed: bool,
}

impl PhaseState {
    /// When the phase started; `None` for a phase the stage has not reached.
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        self.started_at
    }
    /// The highest sampling round recorded so far (0 before the first).
    pub fn round(&self) -> u32 {
        self.round
    }
    /// The latest record of every gate evaluated in the phase, by gate name in name order.
    pub fn gates(&self) -> impl ExactSizeIterator<Item = (&GateName, &GateRecord)> {
        self.gates.iter()
    }
    /// The latest record of gate `name`; `None` when it has not been evaluated in the phase.
    pub fn gate(&self, name: &str) -> Option<&GateRecord> {
        self.gates.get(name)
    }
    /// When the next sampling round is due, while the phase waits between rounds.
    pub fn next_round_at(&self) -> Option<DateTime<Utc>> {
        self.next_round_at
    }
    /// Since when every gate of the phase has been passing, while it waits for its
    /// stable-for window.
    pub fn passing_since(&self) -> Option<DateTime<Utc>> {
        self.passing_since
    }
    /// The inconclusive gate the phase waits on for a human judgement.
    pub fn paused_on(&self) -> Option<&GateName> {
        self.paused_on.as_ref()
    }
    /// Whether the phase passed.
    pub fn passed(&self) -> bool {
        self.passed
    }
}

/// A recorded approval.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApprovalRecord {
    pub(crate) principal: Principal,
    pub(crate) at: DateTime<Utc>,
    pub(crate) comment: String,
    pub(crate) binding: ApprovalBinding,
    pub(crate) voided: bool,
}

impl ApprovalRecord {
    /// Who approved, with the groups they were in when they did.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
    /// When the approval was recorded.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }
    /// The approver's comment.
    pub fn comment(&self) -> &str {
        &self.comment
    }
    /// What the approval was bound to; if any part has changed since, it no longer counts.
    pub fn binding(&self) -> &ApprovalBinding {
        &self.binding
    }
    /// Whether a change of pipeline version after it was given voided it: a voided approval
    /// never counts again, whatever version acts later.
    pub fn is_voided(&self) -> bool {
        self.voided
    }
}

/// A recorded rejection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RejectionRecord {
    pub(crate) principal: Principal,
    pub(crate) at: DateTime<Utc>,
    pub(crate) comment: String,
}

impl RejectionRecord {
    /// Who rejected, with the groups they were in when they did.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
    /// When the rejection was recorded.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }
    /// The rejecter's comment.
    pub fn comment(&self) -> &str {
        &self.comment
    }
}

/// A recorded break-glass override.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OverrideRecord {
    pub(crate) gate: GateName,
    pub(crate) phase: PhaseId,
    pub(crate) principal: PrincipalId,
    pub(crate) justification: String,
    pub(crate) at: DateTime<Utc>,
}

impl OverrideRecord {
    /// The gate overridden.
    pub fn gate(&self) -> &GateName {
        &self.gate
    }
    /// The phase the gate was overridden in.
    pub fn phase(&self) -> PhaseId {
        self.phase
    }
    /// Who overrode it.
    pub fn principal(&self) -> &PrincipalId {
        &self.principal
    }
    /// Why, in the overrider's words.
    pub fn justification(&self) -> &str {
        &self.justification
    }
    /// When the override was recorded.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }
}

/// Everything known about a release in one stage.
///
/// Read through its accessors; only [`apply`](super::apply) changes it, and a host cannot
/// build one:
///
/// ```compile_fail
/// use promotion_core::{StageState, StageStatus};
/// let forged = StageState { status: StageStatus::Promoted, ..StageState::default() };
/// ```
///
/// nor reach the map that holds a phase's gates, by field or by name (the core may change
/// how it stores them without a host noticing):
///
/// ```compile_fail
/// fn gate_count(phase: &promotion_core::machine::PhaseState) -> usize {
///     phase.gates.len()
/// }
/// ```
///
/// ```compile_fail
/// use promotion_core::vecmap::VecMap;
/// ```
///
/// A host reads a stage through accessors, and builds a state the way the engine does, from
/// events:
///
/// ```
/// use promotion_core::machine::{Actor, Event, EventBody};
/// use promotion_core::{ReleaseState, StageName, StageStatus};
///
/// let started = Event {
///     at: chrono::DateTime::UNIX_EPOCH,
///     actor: Actor::Engine,
///     request: None,
///     body: EventBody::StageStarted { stage: StageName::new("test").unwrap(), by: None },
/// };
/// let state = ReleaseState::replay([&started]);
/// let test = state.stage("test");
/// assert_eq!(test.status(), StageStatus::Checking);
/// assert_eq!(test.entry().started_at(), Some(started.at));
/// assert_eq!(test.entry().gates().count(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StageState {
    pub(crate) status: StageStatus,
    pub(crate) started_by: Option<PrincipalId>,
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) entry: PhaseState,
    pub(crate) approvals: Vec<ApprovalRecord>,
    pub(crate) rejection: Option<RejectionRecord>,
    pub(crate) approvers: Vec<PrincipalId>,
    pub(crate) overrides: Vec<OverrideRecord>,
    pub(crate) step: u32,
    pub(crate) step_deployed_at: Option<DateTime<Utc>>,
    /// Deployment attempts recorded at the current step (`deployment_started`); 0 in logs
    /// written before attempts were recorded.
    pub(crate) deploy_attempts: u32,
    pub(crate) analysis: PhaseState,
    pub(crate) deployed: Option<Percent>,
    pub(crate) verification: PhaseState,
    pub(crate) failure: Option<FailureReason>,
    pub(crate) rollback_reason: Option<String>,
    /// Failed rollback attempts and the time of the last one.
    pub(crate) rollback_failures: (u32, Option<DateTime<Utc>>),
    pub(crate) promoted_at: Option<DateTime<Utc>>,
}

impl StageState {
    /// Where the release stands in the stage.
    pub fn status(&self) -> StageStatus {
        self.status
    }
    /// Who started the promotion into the stage, when a principal did (not the engine).
    pub fn started_by(&self) -> Option<&PrincipalId> {
        self.started_by.as_ref()
    }
    /// When promotion into the stage started.
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        self.started_at
    }
    /// The entry phase: the gates that run before approval.
    pub fn entry(&self) -> &PhaseState {
        &self.entry
    }
    /// Approvals given, in the order they were recorded, including ones that no longer
    /// count (see [`approvals_under`](super::approvals_under)).
    pub fn approvals(&self) -> &[ApprovalRecord] {
        &self.approvals
    }
    /// The rejection that ended the stage, if one did.
    pub fn rejection(&self) -> Option<&RejectionRecord> {
        self.rejection.as_ref()
    }
    /// The approvers that counted when the stage was scheduled (empty before).
    pub fn approvers(&self) -> &[PrincipalId] {
        &self.approvers
    }
    /// Break-glass overrides, in the order they were recorded.
    pub fn overrides(&self) -> &[OverrideRecord] {
        &self.overrides
    }
    /// The current rollout step (zero-based).
    pub fn step(&self) -> u32 {
        self.step
    }
    /// When the current step was deployed; `None` until it is.
    pub fn step_deployed_at(&self) -> Option<DateTime<Utc>> {
        self.step_deployed_at
    }
    /// Deployment attempts recorded at the current step (`deployment_started`); 0 in logs
    /// written before attempts were recorded.
    pub fn deploy_attempts(&self) -> u32 {
        self.deploy_attempts
    }
    /// The current step's analysis phase.
    pub fn analysis(&self) -> &PhaseState {
        &self.analysis
    }
    /// The traffic weight currently deployed; `None` before the first step and after a
    /// rollback.
    pub fn deployed(&self) -> Option<Percent> {
        self.deployed
    }
    /// The verification phase, after the last step.
    pub fn verification(&self) -> &PhaseState {
        &self.verification
    }
    /// Why the stage failed, while it stands failed.
    pub fn failure(&self) -> Option<&FailureReason> {
        self.failure.as_ref()
    }
    /// Why the stage is being, or was, rolled back.
    pub fn rollback_reason(&self) -> Option<&str> {
        self.rollback_reason.as_deref()
    }
    /// How many rollback attempts have failed.
    pub fn rollback_failures(&self) -> u32 {
        self.rollback_failures.0
    }
    /// When the last rollback attempt failed.
    pub fn last_rollback_failure_at(&self) -> Option<DateTime<Utc>> {
        self.rollback_failures.1
    }
    /// When the stage was promoted.
    pub fn promoted_at(&self) -> Option<DateTime<Utc>> {
        self.promoted_at
    }
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
///
/// Read through its accessors; only [`apply`](super::apply) changes it. A host builds one
/// with [`replay`](Self::replay) (or starts from `default()`, a release with no events).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ReleaseState {
    pub(crate) release: Option<Arc<Release>>,
    pub(crate) pipeline: Option<PipelineName>,
    pub(crate) pipeline_version: String,
    pub(crate) initiator: Option<Principal>,
    pub(crate) stages: VecMap<StageName, StageState>,
    pub(crate) version: u64,
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
    /// The release, once registered.
    pub fn release(&self) -> Option<&Arc<Release>> {
        self.release.as_ref()
    }
    /// The name of the pipeline the release was registered in, once registered.
    pub fn pipeline(&self) -> Option<&PipelineName> {
        self.pipeline.as_ref()
    }
    /// The pipeline version in force: the one registered with, or the last one adopted
    /// (empty before registration).
    pub fn pipeline_version(&self) -> &str {
        &self.pipeline_version
    }
    /// Who registered the release, with their groups at the time.
    pub fn initiator(&self) -> Option<&Principal> {
        self.initiator.as_ref()
    }
    /// Every stage that has left Waiting, by stage name in name order. A stage not listed is
    /// Waiting; [`stage`](Self::stage) answers for any name.
    pub fn stages(&self) -> impl ExactSizeIterator<Item = (&StageName, &StageState)> {
        self.stages.iter()
    }
    /// The number of events applied: the stream version the next append expects.
    pub fn version(&self) -> u64 {
        self.version
    }
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::testing::sample_release;

    /// A gate record whose every field holds a value no other field holds.
    fn record(name: &str, round: u32) -> GateRecord {
        GateRecord {
            outcome: Outcome::Inconclusive,
            evidence_digest: Some(Digest::of(name.as_bytes())),
            at: at(u64::from(round)),
            round,
            consecutive_errors: round + 100,
            overridden_by: Some(who("ora", &[]).id),
            judged: Some((who("jude", &[]).id, true)),
            facts: [("risk".to_owned(), name.to_owned())].into(),
        }
    }

    /// A phase whose gates were recorded out of name order.
    fn phase(started: u64) -> PhaseState {
        let mut gates = VecMap::new();
        gates.insert(gate("zeta"), record("zeta", 2));
        gates.insert(gate("alpha"), record("alpha", 3));
        PhaseState {
            started_at: Some(at(started)),
            round: 3,
            gates,
            next_round_at: Some(at(started + 1)),
            passing_since: Some(at(started + 2)),
            paused_on: Some(gate("alpha")),
            passed: true,
        }
    }

    /// A stage in which every field holds a value no other field of the same type holds, so
    /// that an accessor handing out the wrong field is caught.
    fn busy_stage() -> StageState {
        let binding = ApprovalBinding {
            release: sample_release().id(),
            evidence_digest: Digest::of(b"entry"),
            pipeline_version: "7".into(),
        };
        StageState {
            status: StageStatus::RollingBack,
            started_by: Some(who("stan", &[]).id),
            started_at: Some(at(1)),
            entry: phase(10),
            approvals: vec![
                ApprovalRecord {
                    principal: sre("amy"),
                    at: at(20),
                    comment: "lgtm".into(),
                    binding: binding.clone(),
                    voided: true,
                },
                ApprovalRecord {
                    principal: sre("bob"),
                    at: at(21),
                    comment: "ok".into(),
                    binding,
                    voided: false,
                },
            ],
            rejection: Some(RejectionRecord {
                principal: sre("rex"),
                at: at(22),
                comment: "no".into(),
            }),
            approvers: vec![sre("amy").id],
            overrides: vec![OverrideRecord {
                gate: gate("zeta"),
                phase: PhaseId::Analysis { step: 1 },
                principal: who("ora", &[]).id,
                justification: "INC-9".into(),
                at: at(23),
            }],
            step: 1,
            step_deployed_at: Some(at(30)),
            deploy_attempts: 4,
            analysis: phase(40),
            deployed: Some(Percent::new(25).unwrap()),
            verification: phase(50),
            failure: Some(FailureReason::TimedOut {
                phase: PhaseId::Verification,
            }),
            rollback_reason: Some("canary burned".into()),
            rollback_failures: (2, Some(at(60))),
            promoted_at: Some(at(70)),
        }
    }

    #[test]
    fn stage_accessors_hand_out_their_own_field() {
        let st = busy_stage();
        assert_eq!(st.status(), StageStatus::RollingBack);
        assert_eq!(st.started_by(), Some(&who("stan", &[]).id));
        assert_eq!(st.started_at(), Some(at(1)));
        assert_eq!(st.entry().started_at(), Some(at(10)));
        assert_eq!(st.analysis().started_at(), Some(at(40)));
        assert_eq!(st.verification().started_at(), Some(at(50)));
        let approvers: Vec<&str> = st
            .approvals()
            .iter()
            .map(|a| a.principal().id.as_str())
            .collect();
        assert_eq!(approvers, ["amy", "bob"], "in the order recorded");
        let amy = &st.approvals()[0];
        assert_eq!((amy.at(), amy.comment()), (at(20), "lgtm"));
        assert_eq!(amy.binding().pipeline_version, "7");
        assert!(amy.is_voided() && !st.approvals()[1].is_voided());
        let rejection = st.rejection().unwrap();
        assert_eq!(
            (
                rejection.principal().id.as_str(),
                rejection.at(),
                rejection.comment()
            ),
            ("rex", at(22), "no")
        );
        assert_eq!(st.approvers(), [sre("amy").id]);
        let o = &st.overrides()[0];
        assert_eq!(o.gate(), &gate("zeta"));
        assert_eq!(o.phase(), PhaseId::Analysis { step: 1 });
        assert_eq!(o.principal().as_str(), "ora");
        assert_eq!((o.justification(), o.at()), ("INC-9", at(23)));
        assert_eq!(st.step(), 1);
        assert_eq!(st.step_deployed_at(), Some(at(30)));
        assert_eq!(st.deploy_attempts(), 4);
        assert_eq!(st.deployed(), Some(Percent::new(25).unwrap()));
        assert_eq!(
            st.failure(),
            Some(&FailureReason::TimedOut {
                phase: PhaseId::Verification
            })
        );
        assert_eq!(st.rollback_reason(), Some("canary burned"));
        assert_eq!(st.rollback_failures(), 2);
        assert_eq!(st.last_rollback_failure_at(), Some(at(60)));
        assert_eq!(st.promoted_at(), Some(at(70)));
    }

    #[test]
    fn phase_accessors_list_gates_in_name_order_and_find_them_by_name() {
        let ps = phase(10);
        assert_eq!(ps.round(), 3);
        assert_eq!(ps.next_round_at(), Some(at(11)));
        assert_eq!(ps.passing_since(), Some(at(12)));
        assert_eq!(ps.paused_on(), Some(&gate("alpha")));
        assert!(ps.passed());
        let gates = ps.gates();
        assert_eq!(gates.len(), 2);
        let names: Vec<&str> = gates.map(|(g, _)| g.as_str()).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        let alpha = ps.gate("alpha").unwrap();
        assert_eq!(alpha.outcome(), &Outcome::Inconclusive);
        assert_eq!(alpha.evidence_digest(), Some(&Digest::of(b"alpha")));
        assert_eq!((alpha.at(), alpha.round()), (at(3), 3));
        assert_eq!(alpha.consecutive_errors(), 103);
        assert_eq!(alpha.overridden_by().map(|p| p.as_str()), Some("ora"));
        assert_eq!(
            alpha.judged().map(|(by, pass)| (by.as_str(), pass)),
            Some(("jude", true))
        );
        assert_eq!(alpha.fact("risk"), Some("alpha"));
        assert_eq!(alpha.facts().len(), 1);
        assert_eq!(alpha.fact("owner"), None);
        assert!(ps.gate("beta").is_none());
    }

    #[test]
    fn release_accessors_read_registration_and_list_only_stages_that_left_waiting() {
        let mut s = registered(&pipeline()).state().clone();
        s.stages.insert(stage("prod"), busy_stage());
        assert_eq!(s.release().map(|r| r.id()), Some(sample_release().id()));
        assert_eq!(s.pipeline().map(|p| p.as_str()), Some("shop"));
        assert_eq!(s.pipeline_version(), "1");
        assert_eq!(s.initiator(), Some(&ci()));
        assert_eq!(s.version(), 2);
        let stages: Vec<(&str, StageStatus)> = s
            .stages()
            .map(|(name, st)| (name.as_str(), st.status()))
            .collect();
        assert_eq!(
            stages,
            [
                ("dev", StageStatus::Ready),
                ("prod", StageStatus::RollingBack)
            ]
        );
        assert_eq!(s.stage("qa"), &StageState::default(), "unknown: Waiting");
        assert_eq!(s.status("qa"), StageStatus::Waiting);
    }
}
