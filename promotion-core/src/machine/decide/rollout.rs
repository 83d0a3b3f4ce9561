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
}
