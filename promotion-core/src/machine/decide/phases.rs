//! Phases: starting a stage, recording a round of gate results, and concluding what a phase's
//! records mean (fail, pause for a judgement, wait for the next round, pass), including on a
//! tick when a phase times out or an empty phase's pause ends.

use std::time::Duration;

use super::super::apply::record_gate;
use super::super::command::{GateResult, Refusal};
use super::super::event::{Actor, EventBody, FailureReason, Outcome};
use super::super::plan::{next_in_phase, phase_deadline, phase_not_before, PhaseNext};
use super::super::state::{GateRecord, PhaseState, StageState, StageStatus};
use super::{entry_digest, facts_of, valid_approvals, wrong, Decision};
use crate::clock::{add, elapsed};
use crate::gate::{Evidence, PhaseId};
use crate::name::{GateName, StageName};
use crate::pipeline::Stage;
use crate::principal::Principal;

impl<'a> Decision<'a> {
    pub(super) fn start(
        &mut self,
        name: &StageName,
        by: Option<&Principal>,
    ) -> Result<(), Refusal> {
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
                by: by.cloned(),
            },
        );
        Ok(())
    }

    pub(super) fn record_round(
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
    pub(super) fn conclude(
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
                    by: None,
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

    pub(super) fn tick(&mut self, name: &StageName) -> Result<(), Refusal> {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::gate::{PhaseId, PhasePolicy};
    use crate::machine::fixtures::*;
    use crate::machine::{Actor, Command, EventBody, EventKind as K, FailureReason, Outcome};
    use crate::machine::{Refusal, StageStatus};
    use crate::name::PipelineName;
    use crate::pipeline::{Pipeline, StageSpec};
    use crate::testing::{sample_release, Scenario, ScriptedGate};

    /// `dev` with an entry policy of `policy`, then the usual `prod`.
    fn dev_policy(policy: PhasePolicy) -> Pipeline {
        pipeline_with(dev().entry_policy(policy), prod(one_sre()))
    }

    fn not_fail_fast() -> PhasePolicy {
        PhasePolicy {
            fail_fast: false,
            ..PhasePolicy::default()
        }
    }

    fn waiting(next_round_at: chrono::DateTime<chrono::Utc>) -> EventBody {
        EventBody::PhaseWaiting {
            stage: stage("dev"),
            phase: PhaseId::Entry,
            next_round_at,
            passing_since: None,
        }
    }

    fn bad_round(problem: &str) -> Refusal {
        Refusal::BadRound {
            stage: stage("dev"),
            phase: PhaseId::Entry,
            problem: problem.into(),
        }
    }

    #[test]
    fn registering_records_the_release_and_readies_the_stages_without_upstreams() {
        let p = pipeline();
        Scenario::new(&p)
            .when(Command::Register {
                release: sample_release(),
                initiator: ci(),
            })
            .then_events([
                EventBody::Registered {
                    release: Arc::new(sample_release()),
                    pipeline: PipelineName::new("shop").unwrap(),
                    pipeline_version: "1".into(),
                    initiator: ci(),
                },
                EventBody::StageReady {
                    stage: stage("dev"),
                },
            ]);
    }

    #[test]
    fn a_release_registers_once_and_nothing_happens_before_it_does() {
        let p = pipeline();
        registered(&p)
            .when(Command::Register {
                release: sample_release(),
                initiator: ci(),
            })
            .then_refused(Refusal::AlreadyRegistered(sample_release().id()));
        Scenario::new(&p)
            .when(start("dev", None))
            .then_refused(Refusal::NotRegistered);
    }

    #[test]
    fn a_release_is_decided_only_under_its_own_pipeline() {
        let shop = pipeline();
        let other = Pipeline::builder("other", "1")
            .stage(dev())
            .build()
            .unwrap();
        Scenario::new(&other)
            .given(registered(&shop).history().to_vec())
            .when(start("dev", None))
            .then_refused(Refusal::WrongPipeline {
                recorded: "shop".into(),
                given: "other".into(),
            });
    }

    #[test]
    fn a_new_pipeline_version_is_adopted_before_the_command_takes_effect() {
        let v1 = pipeline();
        let v2 = Pipeline::builder("shop", "2")
            .break_glass_group("ic")
            .stage(dev())
            .stage(prod(one_sre()))
            .build()
            .unwrap();
        Scenario::new(&v2)
            .given(registered(&v1).history().to_vec())
            .when(start("dev", None))
            .then_events([
                EventBody::PipelineVersionAdopted {
                    from: "1".into(),
                    to: "2".into(),
                },
                EventBody::StageStarted {
                    stage: stage("dev"),
                    by: None,
                },
            ]);
    }

    #[test]
    fn the_engine_starts_an_auto_start_stage_and_a_principal_any_ready_stage() {
        let p = pipeline();
        registered(&p).when(start("dev", None)).then(|events| {
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].actor, Actor::Engine);
            assert_eq!(events[0].body.event_kind(), K::StageStarted);
        });
        registered(&p)
            .when(start("dev", Some(sre("ann"))))
            .then_state(|s| {
                assert_eq!(s.status("dev"), StageStatus::Checking);
                assert_eq!(s.stage("dev").started_by, Some(sre("ann").id));
            });
    }

    #[test]
    fn a_manual_start_stage_waits_for_a_principal() {
        let p = pipeline_with(dev(), prod(one_sre()).manual_start());
        let ready = registered(&p).given_advanced();
        assert_eq!(ready.state().status("prod"), StageStatus::Ready);
        ready
            .clone()
            .when(start("prod", None))
            .then_refused(Refusal::ManualStartRequired(stage("prod")));
        ready
            .when(start("prod", Some(sre("ann"))))
            .then_kinds(&[K::StageStarted]);
    }

    #[test]
    fn a_stage_starts_only_when_ready_and_known() {
        let p = pipeline();
        registered(&p)
            .when(start("prod", None))
            .then_refused(Refusal::UpstreamNotPromoted {
                stage: stage("prod"),
                upstream: stage("dev"),
                status: StageStatus::Ready,
            });
        registered(&p)
            .when(start("nope", None))
            .then_refused(Refusal::UnknownStage("nope".into()));
        registered(&p)
            .given_command(start("dev", None))
            .when(start("dev", None))
            .then_refused(Refusal::WrongStatus {
                stage: stage("dev"),
                status: StageStatus::Checking,
                action: "start",
            });
    }

    #[test]
    fn with_operator_groups_only_operators_start_a_stage() {
        let p = Pipeline::builder("shop", "1")
            .operator_group("ops")
            .stage(dev())
            .build()
            .unwrap();
        registered(&p)
            .when(start("dev", Some(who("eve", &["qa"]))))
            .then_refused(Refusal::NotPrivileged {
                principal: who("eve", &[]).id,
                action: "start a promotion",
                why: "only members of `ops` may".into(),
            });
        registered(&p)
            .when(start("dev", Some(who("olga", &["ops"]))))
            .then_kinds(&[K::StageStarted]);
    }

    #[test]
    fn passing_entry_gates_schedule_a_stage_without_approvals() {
        let p = pipeline();
        registered(&p)
            .given_command(start("dev", None))
            .when(dev_passes())
            .then(|events| {
                assert_eq!(events[0].actor, Actor::Gate { name: gate("unit") });
                assert!(matches!(
                    events[1].body,
                    EventBody::GateEvaluated { round: 1, .. }
                ));
                assert_eq!(
                    events[2..]
                        .iter()
                        .map(|e| e.body.clone())
                        .collect::<Vec<_>>(),
                    [
                        EventBody::PhasePassed {
                            stage: stage("dev"),
                            phase: PhaseId::Entry
                        },
                        EventBody::StageScheduled {
                            approvers: vec![],
                            stage: stage("dev")
                        },
                    ]
                );
            });
    }

    #[test]
    fn a_failing_gate_fails_the_phase_at_once_when_fail_fast() {
        let p = pipeline();
        registered(&p)
            .given_command(start("dev", None))
            .when(round(
                "dev",
                PhaseId::Entry,
                vec![pass("unit"), fail("scan")],
            ))
            .then_state(|s| {
                assert_eq!(s.status("dev"), StageStatus::Failed);
                assert_eq!(
                    s.stage("dev").failure,
                    Some(FailureReason::GateFailed {
                        phase: PhaseId::Entry,
                        gate: gate("scan")
                    })
                );
            });
    }

    #[test]
    fn without_fail_fast_a_failing_gate_is_sampled_again() {
        let p = dev_policy(not_fail_fast());
        let events = registered(&p)
            .given_command(start("dev", None))
            .when(round(
                "dev",
                PhaseId::Entry,
                vec![pass("unit"), fail("scan")],
            ))
            .then_kinds(&[K::GateEvaluated, K::GateEvaluated, K::PhaseWaiting]);
        assert_eq!(
            events[2].body,
            waiting(at(30)),
            "the default retry interval"
        );
    }

    #[test]
    fn a_pending_gate_is_asked_again_when_it_says() {
        let p = pipeline();
        let pending = result(
            "scan",
            Outcome::Pending {
                retry_after_ms: 5_000,
            },
        );
        let events = registered(&p)
            .given_command(start("dev", None))
            .when(round("dev", PhaseId::Entry, vec![pass("unit"), pending]))
            .then_kinds(&[K::GateEvaluated, K::GateEvaluated, K::PhaseWaiting]);
        assert_eq!(events[2].body, waiting(at(5)));
    }

    #[test]
    fn an_inconclusive_gate_pauses_the_phase_and_blocks_further_rounds() {
        let p = pipeline();
        let paused = registered(&p)
            .given_command(start("dev", None))
            .when(round(
                "dev",
                PhaseId::Entry,
                vec![result("unit", Outcome::Inconclusive), pass("scan")],
            ))
            .then_continue();
        assert_eq!(
            paused.history().last().map(|e| &e.body),
            Some(&EventBody::PhasePaused {
                stage: stage("dev"),
                phase: PhaseId::Entry,
                gate: gate("unit")
            })
        );
        paused
            .when(dev_passes())
            .then_refused(bad_round("the phase waits for a judgement on `unit`"));
    }

    #[test]
    fn a_gate_that_keeps_erroring_fails_the_phase_at_the_limit() {
        let p = dev_policy(PhasePolicy {
            consecutive_error_limit: 2,
            ..PhasePolicy::default()
        });
        let error = || {
            round(
                "dev",
                PhaseId::Entry,
                vec![
                    pass("unit"),
                    result(
                        "scan",
                        Outcome::Error {
                            message: "registry down".into(),
                        },
                    ),
                ],
            )
        };
        registered(&p)
            .given_commands([start("dev", None), error()])
            .when(error())
            .then_state(|s| {
                assert_eq!(
                    s.stage("dev").failure,
                    Some(FailureReason::GateErrored {
                        phase: PhaseId::Entry,
                        gate: gate("scan"),
                        message: "registry down".into()
                    })
                );
            });
    }

    #[test]
    fn round_results_must_fit_the_phase() {
        let p = pipeline();
        let checking = registered(&p).given_command(start("dev", None));
        checking
            .clone()
            .when(round("dev", PhaseId::Entry, vec![]))
            .then_refused(bad_round("no results"));
        checking
            .clone()
            .when(round("dev", PhaseId::Entry, vec![pass("lint")]))
            .then_refused(Refusal::UnknownGate {
                stage: stage("dev"),
                phase: PhaseId::Entry,
                gate: "lint".into(),
            });
        checking
            .clone()
            .when(round(
                "dev",
                PhaseId::Entry,
                vec![pass("unit"), fail("unit")],
            ))
            .then_refused(bad_round("gate `unit` reported twice"));
        checking
            .when(round("dev", PhaseId::Verification, vec![pass("unit")]))
            .then_refused(Refusal::WrongStatus {
                stage: stage("dev"),
                status: StageStatus::Checking,
                action: "record gate results for this phase",
            });
    }

    #[test]
    fn a_delayed_phase_refuses_results_before_its_first_evaluation_is_due() {
        let p = dev_policy(PhasePolicy {
            delay: secs(60),
            ..PhasePolicy::default()
        });
        let checking = registered(&p).given_command(start("dev", None));
        checking
            .clone()
            .at(at(59))
            .when(dev_passes())
            .then_refused(bad_round("the phase's first evaluation is not due yet"));
        checking.at(at(60)).when(dev_passes()).then_kinds(&[
            K::GateEvaluated,
            K::GateEvaluated,
            K::PhasePassed,
            K::StageScheduled,
        ]);
    }

    #[test]
    fn with_min_success_gates_must_keep_passing_before_the_phase_passes() {
        let p = dev_policy(PhasePolicy {
            interval: Some(secs(60)),
            min_success: secs(120),
            ..PhasePolicy::default()
        });
        let first = registered(&p)
            .given_command(start("dev", None))
            .when(dev_passes())
            .then_continue();
        assert_eq!(
            first.history().last().map(|e| &e.body),
            Some(&EventBody::PhaseWaiting {
                stage: stage("dev"),
                phase: PhaseId::Entry,
                next_round_at: at(60),
                passing_since: Some(t0()),
            })
        );
        first.clone().at(at(60)).when(dev_passes()).then_kinds(&[
            K::GateEvaluated,
            K::GateEvaluated,
            K::PhaseWaiting,
        ]);
        first
            .at(at(60))
            .given_command(dev_passes())
            .at(at(120))
            .when(dev_passes())
            .then_kinds(&[
                K::GateEvaluated,
                K::GateEvaluated,
                K::PhasePassed,
                K::StageScheduled,
            ]);
    }

    #[test]
    fn a_gate_that_passed_stays_passed_unless_all_must_pass_in_one_round() {
        let second_round = |policy: PhasePolicy| {
            let p = dev_policy(policy);
            let kinds: Vec<K> = registered(&p)
                .given_commands([
                    start("dev", None),
                    round("dev", PhaseId::Entry, vec![pass("unit"), fail("scan")]),
                ])
                .at(at(30))
                .when(round("dev", PhaseId::Entry, vec![pass("scan")]))
                .then(|_| {})
                .iter()
                .map(|e| e.body.event_kind())
                .collect();
            kinds
        };
        assert_eq!(
            second_round(not_fail_fast()),
            [K::GateEvaluated, K::PhasePassed, K::StageScheduled]
        );
        assert_eq!(
            second_round(PhasePolicy {
                all_pass_in_same_round: true,
                ..not_fail_fast()
            }),
            [K::GateEvaluated, K::PhaseWaiting]
        );
    }

    #[test]
    fn a_phase_that_has_not_passed_by_its_timeout_fails_on_a_tick() {
        let p = dev_policy(PhasePolicy {
            timeout: Some(secs(600)),
            ..not_fail_fast()
        });
        let failing = registered(&p).given_commands([
            start("dev", None),
            round("dev", PhaseId::Entry, vec![pass("unit"), fail("scan")]),
        ]);
        failing
            .clone()
            .at(at(599))
            .when(tick("dev"))
            .then_refused(Refusal::NothingDue(stage("dev")));
        failing
            .at(at(600))
            .when(tick("dev"))
            .then_events([EventBody::PhaseFailed {
                stage: stage("dev"),
                phase: PhaseId::Entry,
                reason: FailureReason::TimedOut {
                    phase: PhaseId::Entry,
                },
            }]);
    }

    #[test]
    fn the_next_round_is_never_later_than_the_timeout() {
        let p = dev_policy(PhasePolicy {
            timeout: Some(secs(10)),
            ..not_fail_fast()
        });
        let events = registered(&p)
            .given_command(start("dev", None))
            .when(round(
                "dev",
                PhaseId::Entry,
                vec![pass("unit"), fail("scan")],
            ))
            .then_kinds(&[K::GateEvaluated, K::GateEvaluated, K::PhaseWaiting]);
        assert_eq!(events[2].body, waiting(at(10)));
    }

    #[test]
    fn an_empty_phase_passes_on_a_tick_without_claiming_gates_passed() {
        let p = Pipeline::builder("shop", "1")
            .stage(StageSpec::new("dev"))
            .build()
            .unwrap();
        registered(&p)
            .given_command(start("dev", None))
            .when(tick("dev"))
            .then_events([EventBody::StageScheduled {
                approvers: vec![],
                stage: stage("dev"),
            }]);
    }

    #[test]
    fn a_tick_with_nothing_due_is_refused() {
        let p = pipeline();
        registered(&p)
            .given_command(start("dev", None))
            .when(tick("dev"))
            .then_refused(Refusal::NothingDue(stage("dev")));
        registered(&p)
            .when(tick("dev"))
            .then_refused(Refusal::NothingDue(stage("dev")));
    }

    #[test]
    fn a_gate_settled_by_a_human_is_not_evaluated_again() {
        let p = pipeline_with(
            dev().entry_gate(ScriptedGate::passing("lint")),
            prod(one_sre()),
        );
        registered(&p)
            .given_commands([
                start("dev", None),
                round(
                    "dev",
                    PhaseId::Entry,
                    vec![pass("unit"), result("scan", Outcome::Inconclusive)],
                ),
                Command::Judge {
                    stage: stage("dev"),
                    gate: gate("scan"),
                    pass: true,
                    principal: sre("ann"),
                    comment: "known false positive".into(),
                },
            ])
            .when(round("dev", PhaseId::Entry, vec![pass("scan")]))
            .then_refused(bad_round(
                "gate `scan` was settled by a human and is not evaluated again",
            ));
    }
}
