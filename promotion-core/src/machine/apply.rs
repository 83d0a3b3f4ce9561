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
        E::PipelineVersionAdopted { to, .. } => {
            state.pipeline_version.clone_from(to);
            // Approvals are bound to the version they were given under; once another version
            // is in force they are void for good, even if an engine of the old version acts
            // again later.
            for s in state.stages.values_mut() {
                for a in &mut s.approvals {
                    a.voided = true;
                }
            }
        }
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
        E::Registered { .. } | E::PipelineVersionAdopted { .. } | E::AttemptRefused { .. } => {}
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
            voided: false,
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::gate::Evidence;
    use crate::machine::ApprovalBinding;
    use crate::pipeline::Percent;
    use crate::testing::sample_release;

    /// The state `events` (at `t0`, by the engine) fold into.
    fn folded(events: Vec<EventBody>) -> ReleaseState {
        let events: Vec<Event> = events.into_iter().map(ev).collect();
        ReleaseState::replay(events.iter())
    }

    fn gate_evaluated(phase: PhaseId, round: u32, outcome: Outcome) -> EventBody {
        EventBody::GateEvaluated {
            stage: stage("dev"),
            phase,
            round,
            gate: gate("unit"),
            outcome,
            attempts: 1,
            evidence_digest: None,
            evidence: None,
        }
    }

    #[test]
    fn registration_records_release_pipeline_version_and_initiator() {
        let s = registered(&pipeline()).state().clone();
        assert_eq!(s.release.as_deref(), Some(&sample_release()));
        assert_eq!(s.pipeline.as_ref().map(|p| p.as_str()), Some("shop"));
        assert_eq!(s.pipeline_version, "1");
        assert_eq!(s.initiator, Some(ci()));
        assert_eq!(s.version, 2, "registered and dev's stage_ready");
        assert_eq!(s.status("dev"), StageStatus::Ready);
        assert_eq!(s.status("prod"), StageStatus::Waiting);
        assert!(
            !s.stages.contains_key("prod"),
            "a waiting stage is not stored"
        );
    }

    #[test]
    fn a_new_pipeline_version_replaces_the_recorded_one() {
        let s = folded(vec![EventBody::PipelineVersionAdopted {
            from: "1".into(),
            to: "2".into(),
        }]);
        assert_eq!(s.pipeline_version, "2");
        assert_eq!(s.version, 1);
    }

    #[test]
    fn starting_opens_the_entry_phase_and_remembers_who_started() {
        let mut s = ReleaseState::default();
        let started = Event {
            actor: Actor::Principal {
                id: who("ann", &[]).id,
            },
            at: at(60),
            ..ev(EventBody::StageStarted {
                stage: stage("dev"),
                by: None,
            })
        };
        apply_mut(&mut s, &started);
        let st = s.stage("dev");
        assert_eq!(st.status, StageStatus::Checking);
        assert_eq!(st.started_at, Some(at(60)));
        assert_eq!(st.started_by, Some(who("ann", &[]).id));
        assert_eq!(st.entry.started_at, Some(at(60)));
        assert_eq!(st.current_phase(), Some(PhaseId::Entry));

        let by_engine = folded(vec![EventBody::StageStarted {
            stage: stage("dev"),
            by: None,
        }]);
        assert_eq!(by_engine.stage("dev").started_by, None);
    }

    #[test]
    fn gate_results_are_recorded_with_round_facts_and_a_count_of_consecutive_errors() {
        let error = || Outcome::Error {
            message: "down".into(),
        };
        let evidence = Evidence::new("probe", t0(), "ok").with_fact("tickets", "closed");
        let s = folded(vec![
            EventBody::StageStarted {
                stage: stage("dev"),
                by: None,
            },
            gate_evaluated(PhaseId::Entry, 1, error()),
            gate_evaluated(PhaseId::Entry, 2, error()),
        ]);
        let r = s.stage("dev").entry.gates.get("unit").unwrap().clone();
        assert_eq!((r.round, r.consecutive_errors), (2, 2));
        assert_eq!(s.stage("dev").entry.round, 2);

        let s = apply(
            s,
            &ev(EventBody::GateEvaluated {
                stage: stage("dev"),
                phase: PhaseId::Entry,
                round: 3,
                gate: gate("unit"),
                outcome: Outcome::Pass,
                attempts: 1,
                evidence_digest: Some(evidence.digest()),
                evidence: Some(Box::new(evidence.clone())),
            }),
        );
        let r = s.stage("dev").entry.gates.get("unit").unwrap();
        assert_eq!(r.consecutive_errors, 0, "a verdict resets the error count");
        assert!(r.is_satisfied());
        assert_eq!(r.evidence_digest, Some(evidence.digest()));
        assert_eq!(r.facts.get("tickets").map(String::as_str), Some("closed"));
    }

    #[test]
    fn a_waiting_phase_keeps_its_next_round_until_a_gate_is_evaluated() {
        let s = folded(vec![
            EventBody::StageStarted {
                stage: stage("dev"),
                by: None,
            },
            EventBody::PhaseWaiting {
                stage: stage("dev"),
                phase: PhaseId::Entry,
                next_round_at: at(300),
                passing_since: Some(t0()),
            },
        ]);
        assert_eq!(s.stage("dev").entry.next_round_at, Some(at(300)));
        assert_eq!(s.stage("dev").entry.passing_since, Some(t0()));
        let s = apply(s, &ev(gate_evaluated(PhaseId::Entry, 2, Outcome::Pass)));
        assert_eq!(s.stage("dev").entry.next_round_at, None);
    }

    #[test]
    fn a_judgement_ends_the_pause_and_settles_the_gate() {
        let s = folded(vec![
            EventBody::StageStarted {
                stage: stage("dev"),
                by: None,
            },
            gate_evaluated(PhaseId::Entry, 1, Outcome::Inconclusive),
            EventBody::PhasePaused {
                stage: stage("dev"),
                phase: PhaseId::Entry,
                gate: gate("unit"),
            },
        ]);
        assert_eq!(s.stage("dev").entry.paused_on, Some(gate("unit")));
        let s = apply(
            s,
            &ev(EventBody::GateJudged {
                stage: stage("dev"),
                phase: PhaseId::Entry,
                gate: gate("unit"),
                pass: true,
                principal: sre("ann"),
                comment: "known flake".into(),
                self_interest: None,
            }),
        );
        let entry = &s.stage("dev").entry;
        assert_eq!(entry.paused_on, None);
        let r = entry.gates.get("unit").unwrap();
        assert_eq!(r.judged, Some((sre("ann").id, true)));
        assert!(r.is_satisfied());
    }

    #[test]
    fn an_override_revives_a_stage_failed_at_entry_but_not_one_failed_later() {
        let failed_in = |phase: PhaseId| {
            folded(vec![
                EventBody::StageStarted {
                    stage: stage("dev"),
                    by: None,
                },
                gate_evaluated(phase, 1, Outcome::Fail),
                EventBody::PhaseFailed {
                    stage: stage("dev"),
                    phase,
                    reason: FailureReason::GateFailed {
                        phase,
                        gate: gate("unit"),
                    },
                },
            ])
        };
        let overridden = |phase: PhaseId| {
            ev(EventBody::GateOverridden {
                stage: stage("dev"),
                phase,
                gate: gate("unit"),
                principal: who("ivy", &["ic"]),
                justification: "hotfix".into(),
                overridden: Outcome::Fail,
                self_interest: None,
            })
        };
        let s = apply(failed_in(PhaseId::Entry), &overridden(PhaseId::Entry));
        let st = s.stage("dev");
        assert_eq!(st.status, StageStatus::Checking);
        assert_eq!(st.failure, None);
        assert_eq!(st.overrides.len(), 1);
        assert_eq!(st.overrides[0].justification, "hotfix");
        assert_eq!(
            st.entry.gates.get("unit").unwrap().overridden_by,
            Some(who("ivy", &[]).id)
        );

        let s = apply(
            failed_in(PhaseId::Verification),
            &overridden(PhaseId::Verification),
        );
        assert_eq!(s.status("dev"), StageStatus::Failed);
        assert!(s.stage("dev").failure.is_some());
    }

    #[test]
    fn approvals_are_collected_and_a_rejection_ends_the_stage() {
        let binding = ApprovalBinding {
            release: sample_release().id(),
            evidence_digest: crate::Digest::of(b"x"),
            pipeline_version: "1".into(),
        };
        let s = folded(vec![
            EventBody::ApprovalRequested {
                stage: stage("prod"),
                evidence_digest: crate::Digest::of(b"x"),
            },
            EventBody::ApprovalGiven {
                stage: stage("prod"),
                principal: sre("ann"),
                comment: "ok".into(),
                binding: binding.clone(),
            },
        ]);
        let st = s.stage("prod");
        assert_eq!(st.status, StageStatus::AwaitingApproval);
        assert_eq!(st.approvals.len(), 1);
        assert_eq!(st.approvals[0].binding, binding);
        let s = apply(
            s,
            &ev(EventBody::ApprovalRejected {
                stage: stage("prod"),
                principal: sre("bob"),
                comment: "not today".into(),
            }),
        );
        assert_eq!(s.status("prod"), StageStatus::Rejected);
        assert_eq!(
            s.stage("prod")
                .rejection
                .as_ref()
                .map(|r| r.comment.as_str()),
            Some("not today")
        );
    }

    #[test]
    fn deployment_steps_move_the_rollout_and_reset_attempts() {
        let p10 = Percent::new(10).unwrap();
        let s = folded(vec![
            EventBody::StageScheduled {
                stage: stage("prod"),
                approvers: vec![sre("ann").id],
            },
            EventBody::DeploymentStarted {
                stage: stage("prod"),
                step: 0,
                weight: p10,
                attempt: 2,
            },
        ]);
        let st = s.stage("prod");
        assert_eq!(st.status, StageStatus::Scheduled);
        assert_eq!(st.approvers, vec![sre("ann").id]);
        assert_eq!(st.deploy_attempts, 2);
        assert_eq!(st.current_phase(), None);

        let s = apply(
            s,
            &ev(EventBody::StepDeployed {
                stage: stage("prod"),
                step: 0,
                weight: p10,
            }),
        );
        let st = s.stage("prod");
        assert_eq!(st.status, StageStatus::RollingOut { step: 0 });
        assert_eq!(st.deployed, Some(p10));
        assert_eq!(st.step_deployed_at, Some(t0()));
        assert_eq!(st.current_phase(), Some(PhaseId::Analysis { step: 0 }));

        let s = apply(
            s,
            &ev(EventBody::StepCompleted {
                stage: stage("prod"),
                step: 0,
            }),
        );
        let st = s.stage("prod");
        assert_eq!(st.status, StageStatus::RollingOut { step: 1 });
        assert_eq!((st.step, st.deploy_attempts), (1, 0));
        assert_eq!(st.step_deployed_at, None);
        assert_eq!(st.current_phase(), None, "step 1 is not deployed yet");
        assert_eq!(st.deployed, Some(p10), "still deployed at the last weight");
    }

    #[test]
    fn scheduling_starts_counting_deployment_attempts_afresh() {
        let s = folded(vec![
            EventBody::DeploymentStarted {
                stage: stage("prod"),
                step: 0,
                weight: Percent::new(10).unwrap(),
                attempt: 3,
            },
            EventBody::StageScheduled {
                stage: stage("prod"),
                approvers: vec![],
            },
        ]);
        assert_eq!(s.stage("prod").deploy_attempts, 0);
    }

    #[test]
    fn a_failed_deployment_fails_the_stage_with_its_error() {
        let s = folded(vec![EventBody::DeploymentFailed {
            stage: stage("prod"),
            step: 1,
            weight: Percent::new(100).unwrap(),
            error: "quota".into(),
        }]);
        assert_eq!(s.status("prod"), StageStatus::Failed);
        assert_eq!(
            s.stage("prod").failure,
            Some(FailureReason::DeploymentFailed {
                step: 1,
                error: "quota".into()
            })
        );
    }

    #[test]
    fn verification_soak_and_promotion_follow_each_other() {
        let s = folded(vec![EventBody::VerificationStarted {
            stage: stage("prod"),
        }]);
        assert_eq!(s.status("prod"), StageStatus::Verifying);
        assert_eq!(s.stage("prod").verification.started_at, Some(t0()));
        assert_eq!(s.stage("prod").current_phase(), Some(PhaseId::Verification));
        let s = apply(
            s,
            &ev(EventBody::SoakStarted {
                stage: stage("prod"),
                until: at(3600),
            }),
        );
        assert_eq!(s.status("prod"), StageStatus::Soaking { until: at(3600) });
        let s = apply(
            s,
            &Event {
                at: at(3600),
                ..ev(EventBody::StagePromoted {
                    stage: stage("prod"),
                })
            },
        );
        assert_eq!(s.status("prod"), StageStatus::Promoted);
        assert_eq!(s.stage("prod").promoted_at, Some(at(3600)));
    }

    #[test]
    fn rollbacks_count_failures_and_end_with_nothing_deployed() {
        let s = folded(vec![
            EventBody::StepDeployed {
                stage: stage("prod"),
                step: 0,
                weight: Percent::new(10).unwrap(),
            },
            EventBody::RollbackStarted {
                stage: stage("prod"),
                reason: "errors".into(),
                by: None,
            },
            EventBody::RollbackFailed {
                stage: stage("prod"),
                error: "timeout".into(),
            },
            EventBody::RollbackFailed {
                stage: stage("prod"),
                error: "timeout".into(),
            },
        ]);
        let st = s.stage("prod");
        assert_eq!(st.status, StageStatus::RollingBack);
        assert_eq!(st.rollback_reason.as_deref(), Some("errors"));
        assert_eq!(st.rollback_failures, (2, Some(t0())));
        let s = apply(
            s,
            &ev(EventBody::RolledBack {
                stage: stage("prod"),
            }),
        );
        assert_eq!(s.status("prod"), StageStatus::RolledBack);
        assert_eq!(s.stage("prod").deployed, None);
    }

    #[test]
    fn an_abort_ends_the_stage() {
        let s = folded(vec![
            EventBody::StageStarted {
                stage: stage("dev"),
                by: None,
            },
            EventBody::StageAborted {
                stage: stage("dev"),
                principal: sre("ann"),
                reason: "wrong build".into(),
            },
        ]);
        assert_eq!(s.status("dev"), StageStatus::Aborted);
        assert!(s.status("dev").is_terminal());
    }

    #[test]
    fn replay_is_the_fold_of_apply_and_counts_every_event() {
        let pipeline = pipeline();
        let scenario = awaiting_approval(&pipeline);
        let replayed = ReleaseState::replay(scenario.history().iter());
        assert_eq!(&replayed, scenario.state());
        assert_eq!(replayed.version, scenario.history().len() as u64);
    }
}
