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
