//! decide: turns a command into events, or a refusal.
//!
//! This file holds the entry point, the checks every command shares (registration, pipeline,
//! pipeline version, stage lookup, operator privilege, upstream availability) and the dispatch
//! to the handlers, which live by concern:
//!
//! - [`phases`]: starting a stage, recording gate rounds, concluding a phase, ticks and
//!   timeouts;
//! - [`approvals`]: approvals, rejections, break-glass overrides, judgements of inconclusive
//!   gates, and which approvals still count;
//! - [`rollout`]: deployment intents and results, promotion, rollback and abort.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::command::{Command, Refusal};
use super::event::{Actor, Event, EventBody};
use super::state::{ReleaseState, StageState, StageStatus};
use crate::name::StageName;
use crate::pipeline::{Pipeline, Stage};
use crate::principal::Principal;

mod approvals;
#[cfg(test)]
mod attacks;
mod phases;
mod rollout;
#[cfg(test)]
mod verifications;

pub use approvals::{approvals_under, ApprovalCheck};
pub(crate) use approvals::{entry_digest, facts_of, valid_approvals};

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
        check_verified(pipeline, command)?;
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
    check_free_text(pipeline, command)?;
    check_verified(pipeline, command)?;
    d.command(command)?;
    Ok(d.events)
}

/// Refuses a person's command whose verification the pipeline does not accept for the action
/// in the stage ([`Pipeline::accepted_for`]), or, where it has no rule for it, without a
/// verification when the pipeline [requires one](Pipeline::requires_verified).
fn check_verified(pipeline: &Pipeline, command: &Command) -> Result<(), Refusal> {
    use crate::ActionKind as A;
    let (principal, action, stage) = match command {
        Command::Register { initiator, .. } => (initiator, A::Register, None),
        Command::Start { by: Some(p), stage } => (p, A::Start, Some(stage)),
        Command::Approve {
            principal, stage, ..
        } => (principal, A::Approve, Some(stage)),
        Command::Reject {
            principal, stage, ..
        } => (principal, A::Reject, Some(stage)),
        Command::Override {
            principal, stage, ..
        } => (principal, A::Override, Some(stage)),
        Command::Judge {
            principal, stage, ..
        } => (principal, A::Judge, Some(stage)),
        Command::Abort {
            principal, stage, ..
        } => (principal, A::Abort, Some(stage)),
        Command::RollBack {
            principal, stage, ..
        } => (principal, A::RollBack, Some(stage)),
        _ => return Ok(()),
    };
    let presented = principal.verified.as_ref().map(crate::Verification::kind);
    match pipeline.accepted_for(stage.map(StageName::as_str), action) {
        Some(required) if presented.is_some_and(|k| required.contains(&k)) => Ok(()),
        Some(required) => Err(Refusal::VerificationNotAccepted {
            principal: principal.id.clone(),
            action,
            stage: stage.cloned(),
            presented,
            required: required.clone(),
        }),
        None if presented.is_some() || !pipeline.requires_verified() => Ok(()),
        None if action == A::Register => Ok(()),
        None => Err(Refusal::Unverified {
            principal: principal.id.clone(),
            action: action.describe(),
        }),
    }
}

/// Bounds the free text of a person's command and refuses terminal controls in it
/// ([`check_text`](crate::text::check_text)), before anything else is looked at.
fn check_free_text(pipeline: &Pipeline, command: &Command) -> Result<(), Refusal> {
    let (what, text) = match command {
        Command::Approve { comment, .. } => ("an approval comment", comment),
        Command::Reject { comment, .. } => ("a rejection comment", comment),
        Command::Override { justification, .. } => ("an override's justification", justification),
        Command::Judge { comment, .. } => ("a judgement's comment", comment),
        Command::Abort { reason, .. } => ("an abort's reason", reason),
        Command::RollBack { reason, .. } => ("a rollback's reason", reason),
        _ => return Ok(()),
    };
    crate::text::check_text(what, text, pipeline.max_text_len())?;
    Ok(())
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
