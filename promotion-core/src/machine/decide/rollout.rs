//! Rollout: promotion into downstream stages, deployment intents and results for each rollout
//! step, rollback results, and the abort and rollback commands of principals.

use super::super::command::Refusal;
use super::super::event::{Actor, EventBody};
use super::super::state::{StageState, StageStatus};
use super::{finished, wrong, Decision};
use crate::name::StageName;
use crate::pipeline::{RolloutStep, Stage};
use crate::principal::Principal;

impl<'a> Decision<'a> {
    pub(super) fn promote(&mut self, spec: &Stage) {
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

    pub(super) fn begin_deployment(&mut self, name: &StageName, step: u32) -> Result<(), Refusal> {
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

    pub(super) fn record_deployment(
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
                            by: None,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    pub(super) fn record_rollback(
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

    pub(super) fn abort(
        &mut self,
        name: &StageName,
        p: &Principal,
        reason: &str,
    ) -> Result<(), Refusal> {
        let (_, st) = self.stage(name)?;
        if st.status.is_terminal() {
            return Err(finished(name, st.status, "abort"));
        }
        if st.status == StageStatus::RollingBack {
            return Err(wrong(name, st.status, "abort"));
        }
        self.require_operator(p, "abort a promotion")?;
        if !crate::text::has_visible_text(reason) {
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
                    by: None,
                },
            );
        }
        Ok(())
    }

    pub(super) fn roll_back(
        &mut self,
        name: &StageName,
        p: &Principal,
        reason: &str,
    ) -> Result<(), Refusal> {
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
        if !crate::text::has_visible_text(reason) {
            return Err(Refusal::EmptyJustification("a rollback"));
        }
        self.emit(
            Actor::principal(p),
            EventBody::RollbackStarted {
                stage: name.clone(),
                reason: format!("{}: {reason}", p.id),
                by: Some(p.clone()),
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::gate::PhaseId;
    use crate::machine::fixtures::*;
    use crate::machine::{Actor, EventBody, EventKind as K, FailureReason, Refusal, StageStatus};
    use crate::pipeline::{Availability, Percent, Pipeline, RolloutPlan, RolloutStep, StageSpec};
    use crate::testing::{Scenario, ScriptedGate};

    fn weight(w: u8) -> Percent {
        Percent::new(w).unwrap()
    }

    /// In `p` (shaped like [`pipeline`]): `prod` approved by ann and scheduled.
    fn scheduled(p: &Pipeline) -> Scenario<'_> {
        awaiting_approval(p).given_command(approve("prod", sre("ann")))
    }

    /// `prod` deployed at 10 % (step 0), its analysis not run yet.
    fn canary(p: &Pipeline) -> Scenario<'_> {
        scheduled(p).given_commands([begin("prod", 0), deployed("prod", 0, Ok(()))])
    }

    /// `prod` fully deployed and verifying.
    fn verifying(p: &Pipeline) -> Scenario<'_> {
        canary(p).given_commands([
            round("prod", PhaseId::Analysis { step: 0 }, vec![pass("errors")]),
            begin("prod", 1),
            deployed("prod", 1, Ok(())),
            tick("prod"),
        ])
    }

    #[test]
    fn a_deployment_is_recorded_as_begun_with_its_attempt_number() {
        let p = pipeline();
        let started = |attempt| EventBody::DeploymentStarted {
            stage: stage("prod"),
            step: 0,
            weight: weight(10),
            attempt,
        };
        scheduled(&p)
            .when(begin("prod", 0))
            .then_events([started(1)]);
        scheduled(&p)
            .given_command(begin("prod", 0))
            .when(begin("prod", 0))
            .then_events([started(2)]);
    }

    #[test]
    fn only_the_due_step_is_deployed() {
        let p = pipeline();
        scheduled(&p)
            .when(begin("prod", 1))
            .then_refused(Refusal::WrongStatus {
                stage: stage("prod"),
                status: StageStatus::Scheduled,
                action: "begin a deployment of this step",
            });
        canary(&p)
            .when(deployed("prod", 0, Ok(())))
            .then_refused(Refusal::WrongStatus {
                stage: stage("prod"),
                status: StageStatus::RollingOut { step: 0 },
                action: "record a deployment of this step",
            });
    }

    #[test]
    fn a_deployed_step_is_recorded_by_the_deployer() {
        let p = pipeline();
        scheduled(&p)
            .given_command(begin("prod", 0))
            .when(deployed("prod", 0, Ok(())))
            .then(|events| {
                assert_eq!(events.len(), 1);
                assert_eq!(events[0].actor, Actor::Deployer);
                assert_eq!(
                    events[0].body,
                    EventBody::StepDeployed {
                        stage: stage("prod"),
                        step: 0,
                        weight: weight(10),
                    }
                );
            });
    }

    #[test]
    fn a_failed_deployment_rolls_back_unless_rollback_is_manual() {
        let failed = |p: &Pipeline| {
            scheduled(p)
                .given_command(begin("prod", 0))
                .when(deployed("prod", 0, Err("quota exceeded".into())))
                .then(|_| {})
        };
        let auto = failed(&pipeline());
        assert_eq!(
            auto.iter().map(|e| e.body.clone()).collect::<Vec<_>>(),
            [
                EventBody::DeploymentFailed {
                    stage: stage("prod"),
                    step: 0,
                    weight: weight(10),
                    error: "quota exceeded".into(),
                },
                EventBody::RollbackStarted {
                    stage: stage("prod"),
                    reason: "deployment of step 1 failed: quota exceeded".into(),
                    by: None,
                },
            ]
        );
        let manual = pipeline_with(
            dev(),
            prod(one_sre()).rollout(
                RolloutPlan::new([RolloutStep::new(10), RolloutStep::new(100)]).manual_rollback(),
            ),
        );
        let events = failed(&manual);
        let kinds: Vec<K> = events.iter().map(|e| e.body.event_kind()).collect();
        assert_eq!(kinds, [K::DeploymentFailed]);
    }

    #[test]
    fn a_passed_analysis_completes_the_step_and_the_last_starts_verification() {
        let p = pipeline();
        canary(&p)
            .when(round(
                "prod",
                PhaseId::Analysis { step: 0 },
                vec![pass("errors")],
            ))
            .then_kinds(&[K::GateEvaluated, K::PhasePassed, K::StepCompleted]);
        canary(&p)
            .given_commands([
                round("prod", PhaseId::Analysis { step: 0 }, vec![pass("errors")]),
                begin("prod", 1),
                deployed("prod", 1, Ok(())),
            ])
            .when(tick("prod"))
            .then_events([
                EventBody::StepCompleted {
                    stage: stage("prod"),
                    step: 1,
                },
                EventBody::VerificationStarted {
                    stage: stage("prod"),
                },
            ]);
    }

    #[test]
    fn a_failed_analysis_rolls_the_deployed_stage_back() {
        let p = pipeline();
        canary(&p)
            .when(round(
                "prod",
                PhaseId::Analysis { step: 0 },
                vec![fail("errors")],
            ))
            .then(|events| {
                assert_eq!(
                    events[2].body,
                    EventBody::RollbackStarted {
                        stage: stage("prod"),
                        reason: "gate `errors` failed in the analysis of step 1 phase".into(),
                        by: None,
                    }
                );
            });
    }

    #[test]
    fn verification_starts_the_soak_and_the_soak_ends_in_promotion() {
        let p = pipeline();
        verifying(&p)
            .when(round("prod", PhaseId::Verification, vec![pass("smoke")]))
            .then(|events| {
                assert_eq!(
                    events.last().map(|e| &e.body),
                    Some(&EventBody::SoakStarted {
                        stage: stage("prod"),
                        until: at(3600),
                    })
                );
            });
        let soaking =
            verifying(&p).given_command(round("prod", PhaseId::Verification, vec![pass("smoke")]));
        soaking
            .clone()
            .at(at(3599))
            .when(tick("prod"))
            .then_refused(Refusal::NothingDue(stage("prod")));
        soaking
            .at(at(3600))
            .when(tick("prod"))
            .then_events([EventBody::StagePromoted {
                stage: stage("prod"),
            }]);
    }

    #[test]
    fn a_failed_verification_fails_the_stage_and_rolls_back() {
        let p = pipeline();
        verifying(&p)
            .when(round("prod", PhaseId::Verification, vec![fail("smoke")]))
            .then_state(|s| {
                assert_eq!(s.status("prod"), StageStatus::RollingBack);
                assert_eq!(
                    s.stage("prod").failure,
                    Some(FailureReason::GateFailed {
                        phase: PhaseId::Verification,
                        gate: gate("smoke"),
                    })
                );
            });
    }

    #[test]
    fn promotion_readies_downstream_stages_by_their_availability() {
        let fan_in = |availability| {
            Pipeline::builder("shop", "1")
                .stage(StageSpec::new("a"))
                .stage(StageSpec::new("b").manual_start())
                .stage(
                    StageSpec::new("c")
                        .after("a")
                        .after("b")
                        .availability(availability),
                )
                .build()
                .unwrap()
        };
        let promote_a = |p: &Pipeline| {
            registered(p)
                .given_commands([
                    start("a", None),
                    tick("a"),
                    begin("a", 0),
                    deployed("a", 0, Ok(())),
                    tick("a"),
                ])
                .when(tick("a"))
                .then(|_| {})
                .into_iter()
                .map(|e| e.body)
                .collect::<Vec<_>>()
        };
        let promoted = || EventBody::StagePromoted { stage: stage("a") };
        assert_eq!(promote_a(&fan_in(Availability::AllUpstreams)), [promoted()]);
        assert_eq!(
            promote_a(&fan_in(Availability::AnyUpstream)),
            [promoted(), EventBody::StageReady { stage: stage("c") }]
        );
    }

    #[test]
    fn a_rollback_result_is_recorded_only_while_rolling_back() {
        let p = pipeline();
        let rolling_back =
            canary(&p).given_command(roll_back("prod", sre("ann"), "error budget burnt"));
        rolling_back
            .clone()
            .when(rolled_back("prod", Ok(())))
            .then_events([EventBody::RolledBack {
                stage: stage("prod"),
            }]);
        rolling_back
            .when(rolled_back("prod", Err("api timeout".into())))
            .then_events([EventBody::RollbackFailed {
                stage: stage("prod"),
                error: "api timeout".into(),
            }]);
        canary(&p)
            .when(rolled_back("prod", Ok(())))
            .then_refused(Refusal::WrongStatus {
                stage: stage("prod"),
                status: StageStatus::RollingOut { step: 0 },
                action: "record a rollback",
            });
    }

    #[test]
    fn an_abort_rolls_back_what_is_deployed() {
        let p = pipeline();
        registered(&p)
            .given_command(start("dev", None))
            .when(abort("dev", sre("ann"), "wrong build"))
            .then_kinds(&[K::StageAborted]);
        canary(&p)
            .when(abort("prod", sre("ann"), "wrong build"))
            .then(|events| {
                assert_eq!(
                    events[1].body,
                    EventBody::RollbackStarted {
                        stage: stage("prod"),
                        reason: "aborted by ann: wrong build".into(),
                        by: None,
                    }
                );
            });
    }

    #[test]
    fn an_abort_needs_a_reason_an_operator_and_an_open_stage() {
        let p = pipeline();
        canary(&p)
            .when(abort("prod", sre("ann"), ""))
            .then_refused(Refusal::EmptyJustification("an abort"));
        canary(&p)
            .when(abort("dev", sre("ann"), "late"))
            .then_refused(Refusal::StageFinished {
                stage: stage("dev"),
                status: StageStatus::Promoted,
                action: "abort",
            });
        canary(&p)
            .given_command(roll_back("prod", sre("ann"), "errors"))
            .when(abort("prod", sre("ann"), "errors"))
            .then_refused(Refusal::WrongStatus {
                stage: stage("prod"),
                status: StageStatus::RollingBack,
                action: "abort",
            });
        let with_ops = Pipeline::builder("shop", "1")
            .operator_group("ops")
            .stage(dev())
            .build()
            .unwrap();
        registered(&with_ops)
            .when(abort("dev", sre("ann"), "wrong build"))
            .then_refused(Refusal::NotPrivileged {
                principal: sre("ann").id,
                action: "abort a promotion",
                why: "only members of `ops` may".into(),
            });
    }

    #[test]
    fn only_a_deployed_stage_is_rolled_back_and_only_with_a_reason() {
        let p = pipeline();
        registered(&p)
            .given_command(start("dev", None))
            .when(roll_back("dev", sre("ann"), "bad"))
            .then_refused(Refusal::WrongStatus {
                stage: stage("dev"),
                status: StageStatus::Checking,
                action: "roll back (nothing is deployed)",
            });
        canary(&p)
            .when(roll_back("prod", sre("ann"), " "))
            .then_refused(Refusal::EmptyJustification("a rollback"));
        canary(&p)
            .when(roll_back("prod", sre("ann"), "latency"))
            .then_events([EventBody::RollbackStarted {
                stage: stage("prod"),
                reason: "ann: latency".into(),
                by: Some(sre("ann")),
            }]);
    }

    #[test]
    fn a_promoted_stage_is_not_rolled_back_under_a_downstream_in_progress() {
        let p = pipeline();
        awaiting_approval(&p)
            .when(roll_back("dev", sre("ann"), "bad"))
            .then_refused(Refusal::DownstreamInProgress {
                stage: stage("dev"),
                downstream: stage("prod"),
                status: StageStatus::AwaitingApproval,
            });
        awaiting_approval(&p)
            .given_command(abort("prod", sre("ann"), "not this one"))
            .when(roll_back("dev", sre("ann"), "bad"))
            .then_kinds(&[K::RollbackStarted]);
    }

    #[test]
    fn an_empty_rollout_pause_ends_on_a_tick_once_it_is_over() {
        let p = pipeline_with(
            dev(),
            prod(one_sre()).rollout(RolloutPlan::new([
                RolloutStep::new(50).pause(secs(600)),
                RolloutStep::new(100).analysis(ScriptedGate::passing("errors")),
            ])),
        );
        let paused = scheduled(&p).given_commands([begin("prod", 0), deployed("prod", 0, Ok(()))]);
        paused
            .clone()
            .at(at(599))
            .when(tick("prod"))
            .then_refused(Refusal::NothingDue(stage("prod")));
        paused
            .at(at(600))
            .when(tick("prod"))
            .then_kinds(&[K::StepCompleted]);
    }
}
