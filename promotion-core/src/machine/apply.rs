//! apply: folds one event into the state.
//!
//! Total and pure: every event, even one that makes no sense in the current state, is folded
//! without failing or panicking, so that any log replays. The per-stage part
//! ([`apply_stage`]) and the gate bookkeeping ([`record_gate`]) are shared with
//! [`decide`](super::decide), which looks ahead at the state its events will produce.

use chrono::{DateTime, Utc};

use super::event::{Actor, Event, EventBody, FailureReason, Outcome};
use super::state::{
    ApprovalRecord, GateRecord, OverrideRecord, PhaseState, RejectionRecord, ReleaseState,
    StageState, StageStatus,
};
use crate::digest::Digest;
use crate::gate::PhaseId;
use crate::name::GateName;

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

pub(super) fn apply_stage(s: &mut StageState, actor: &Actor, at: DateTime<Utc>, body: &EventBody) {
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

pub(super) fn record_gate(
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
