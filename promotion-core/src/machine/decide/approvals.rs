//! Approvals and human decisions: approving and rejecting a stage, break-glass overrides of
//! failed entry gates, judgements of inconclusive gates, and which approvals still count
//! ([`valid_approvals`], bound to the [`entry_digest`]).

use chrono::{DateTime, Utc};

use super::super::apply::apply_stage;
use super::super::command::Refusal;
use super::super::event::{Actor, ApprovalBinding, EventBody, FailureReason};
use super::super::state::{PhaseState, ReleaseState, StageState, StageStatus};
use super::{finished, group_list, wrong, Decision};
use crate::clock::elapsed;
use crate::digest::Digest;
use crate::gate::PhaseId;
use crate::name::{GateName, StageName};
use crate::pipeline::{Pipeline, Stage};
use crate::principal::Principal;
use crate::release::Release;

impl<'a> Decision<'a> {
    pub(super) fn approve(
        &mut self,
        name: &StageName,
        principal: &Principal,
        comment: &str,
    ) -> Result<(), Refusal> {
        let (spec, st) = self.stage(name)?;
        let Some(policy) = &spec.spec.approval else {
            return Err(Refusal::NoApprovalRequired(name.clone()));
        };
        match st.status {
            StageStatus::AwaitingApproval => {}
            StageStatus::Checking if !policy.after_gates => {}
            StageStatus::Checking => return Err(Refusal::GatesNotPassed(name.clone())),
            s if s.is_terminal() => return Err(finished(name, s, "approve")),
            s => return Err(wrong(name, s, "approve")),
        }
        self.check_approver(spec, policy, principal)?;
        let release = self.state.release.as_ref().ok_or(Refusal::NotRegistered)?;
        if !policy.allow_self_approval {
            let why = if release.contributors().contains(&principal.id) {
                Some("they contributed to the release")
            } else if self
                .state
                .initiator
                .as_ref()
                .is_some_and(|i| i.id == principal.id)
                || st.started_by.as_ref() == Some(&principal.id)
            {
                Some("they started this promotion")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Refusal::SelfApproval {
                    stage: name.clone(),
                    principal: principal.id.clone(),
                    why,
                });
            }
        }
        if policy.distinct_from_upstream {
            for u in &spec.upstream {
                let us = self.state.stage(u.as_str());
                if us.approvers.contains(&principal.id) {
                    return Err(Refusal::NotDistinct {
                        stage: name.clone(),
                        principal: principal.id.clone(),
                        upstream: u.clone(),
                    });
                }
            }
        }
        let digest = entry_digest(&st.entry);
        let mut valid = valid_approvals(
            self.pipeline,
            self.state,
            spec,
            st,
            policy,
            &digest,
            self.now,
        );
        if valid.iter().any(|p| p.id == principal.id) {
            return Err(Refusal::DuplicateApproval {
                stage: name.clone(),
                principal: principal.id.clone(),
            });
        }
        self.emit(
            Actor::principal(principal),
            EventBody::ApprovalGiven {
                stage: name.clone(),
                principal: principal.clone(),
                comment: comment.to_owned(),
                binding: ApprovalBinding {
                    release: release.id(),
                    evidence_digest: digest,
                    pipeline_version: self.pipeline.version().to_owned(),
                },
            },
        );
        valid.push(principal);
        if st.status == StageStatus::AwaitingApproval
            && policy.rule.is_satisfied_with(&valid, &facts_of(&st.entry))
        {
            self.emit(
                Actor::Engine,
                EventBody::StageScheduled {
                    stage: name.clone(),
                    approvers: valid.iter().map(|p| p.id.clone()).collect(),
                },
            );
        }
        Ok(())
    }

    fn check_approver(
        &self,
        spec: &Stage,
        policy: &crate::ApprovalPolicy,
        principal: &Principal,
    ) -> Result<(), Refusal> {
        if policy.rule.is_eligible(principal) {
            return Ok(());
        }
        Err(Refusal::NotEligible {
            stage: spec.name.clone(),
            principal: principal.id.clone(),
            groups: group_list(policy.rule.groups().into_iter()),
        })
    }

    pub(super) fn reject(
        &mut self,
        name: &StageName,
        principal: &Principal,
        comment: &str,
    ) -> Result<(), Refusal> {
        let (spec, st) = self.stage(name)?;
        let Some(policy) = &spec.spec.approval else {
            return Err(Refusal::NoApprovalRequired(name.clone()));
        };
        match st.status {
            StageStatus::Ready | StageStatus::Checking | StageStatus::AwaitingApproval => {}
            s if s.is_terminal() => return Err(finished(name, s, "reject")),
            s => return Err(wrong(name, s, "reject")),
        }
        self.check_approver(spec, policy, principal)?;
        if comment.trim().is_empty() {
            return Err(Refusal::EmptyJustification("a rejection"));
        }
        self.emit(
            Actor::principal(principal),
            EventBody::ApprovalRejected {
                stage: name.clone(),
                principal: principal.clone(),
                comment: comment.to_owned(),
            },
        );
        Ok(())
    }

    pub(super) fn override_gate(
        &mut self,
        name: &StageName,
        gate: &GateName,
        principal: &Principal,
        justification: &str,
    ) -> Result<(), Refusal> {
        let (spec, st) = self.stage(name)?;
        let bg = self.pipeline.break_glass_groups();
        if !bg.iter().any(|g| principal.groups.contains(g)) {
            return Err(Refusal::NotPrivileged {
                principal: principal.id.clone(),
                action: "override a gate",
                why: if bg.is_empty() {
                    "the pipeline names no break-glass group".into()
                } else {
                    format!("only members of {} may", group_list(bg.iter()))
                },
            });
        }
        if justification.trim().is_empty() {
            return Err(Refusal::EmptyJustification("an override"));
        }
        let phase = PhaseId::Entry;
        if !spec.gate_names(phase).contains(gate) {
            return Err(Refusal::UnknownGate {
                stage: name.clone(),
                phase,
                gate: gate.to_string(),
            });
        }
        let entry_failed = st.status == StageStatus::Failed
            && st.failure.as_ref().and_then(FailureReason::phase) == Some(PhaseId::Entry);
        if st.status != StageStatus::Checking && !entry_failed {
            return Err(if st.status.is_terminal() {
                finished(name, st.status, "override an entry gate")
            } else {
                wrong(name, st.status, "override an entry gate")
            });
        }
        // Reviving a failed stage must not bypass its upstreams: one may have been rolled
        // back since the stage failed.
        if entry_failed {
            if let Some(refusal) = self.unavailable(spec) {
                return Err(refusal);
            }
        }
        let Some(record) = st.entry.gates.get(gate) else {
            return Err(Refusal::NothingToOverride {
                stage: name.clone(),
                gate: gate.clone(),
                outcome: "not evaluated yet".into(),
            });
        };
        if record.is_satisfied() {
            return Err(Refusal::NothingToOverride {
                stage: name.clone(),
                gate: gate.clone(),
                outcome: "satisfied".into(),
            });
        }
        self.emit(
            Actor::principal(principal),
            EventBody::GateOverridden {
                stage: name.clone(),
                phase,
                gate: gate.clone(),
                principal: principal.clone(),
                justification: justification.to_owned(),
                overridden: record.outcome.clone(),
            },
        );
        let mut after = st.clone();
        if let Some(e) = self.events.last() {
            apply_stage(&mut after, &e.actor, self.now, &e.body);
        }
        self.settle(spec, &after, phase)
    }

    /// After a human settled a gate: pass or fail the phase if that follows, else wait.
    fn settle(&mut self, spec: &Stage, after: &StageState, phase: PhaseId) -> Result<(), Refusal> {
        match self.conclude(spec, after, phase, after.phase(phase), None, &[]) {
            Err(Refusal::NothingDue(_)) => Ok(()),
            other => other,
        }
    }

    pub(super) fn judge(
        &mut self,
        name: &StageName,
        gate: &GateName,
        pass: bool,
        principal: &Principal,
        comment: &str,
    ) -> Result<(), Refusal> {
        let (spec, st) = self.stage(name)?;
        let Some(phase) = st.current_phase() else {
            return Err(Refusal::NotAwaitingJudgement {
                stage: name.clone(),
                gate: gate.clone(),
            });
        };
        if st.phase(phase).paused_on.as_ref() != Some(gate) {
            return Err(Refusal::NotAwaitingJudgement {
                stage: name.clone(),
                gate: gate.clone(),
            });
        }
        let approver = spec
            .spec
            .approval
            .as_ref()
            .is_some_and(|p| p.rule.is_eligible(principal));
        let breakglass = self
            .pipeline
            .break_glass_groups()
            .iter()
            .any(|g| principal.groups.contains(g));
        if !approver && !breakglass {
            self.require_operator(principal, "judge an inconclusive gate")?;
        }
        if comment.trim().is_empty() {
            return Err(Refusal::EmptyJustification("a judgement"));
        }
        self.emit(
            Actor::principal(principal),
            EventBody::GateJudged {
                stage: name.clone(),
                phase,
                gate: gate.clone(),
                pass,
                principal: principal.clone(),
                comment: comment.to_owned(),
            },
        );
        let mut after = st.clone();
        if let Some(e) = self.events.last() {
            apply_stage(&mut after, &e.actor, self.now, &e.body);
        }
        self.settle(spec, &after, phase)
    }
}

/// The approvals on `st` that still count under `policy` at `now`: bound to this release, to
/// the entry evidence `digest` and to the pipeline's current version, and not expired. Each
/// principal counts once.
pub fn valid_approvals<'s>(
    pipeline: &Pipeline,
    state: &ReleaseState,
    spec: &Stage,
    st: &'s StageState,
    policy: &crate::ApprovalPolicy,
    digest: &Digest,
    now: DateTime<Utc>,
) -> Vec<&'s Principal> {
    let release = state.release.as_deref().map(Release::id);
    // Distinctness is a property of the set counted now, not only of the moment an approval
    // was given: an upstream (with any-upstream availability) may be approved later by the
    // same person.
    let approved_upstream = |p: &Principal| {
        policy.distinct_from_upstream
            && spec
                .upstream
                .iter()
                .any(|u| state.stage(u.as_str()).approvers.contains(&p.id))
    };
    let mut out: Vec<&Principal> = Vec::new();
    for a in &st.approvals {
        let fresh = policy.expiry.is_none_or(|e| elapsed(a.at, now) < e);
        let bound = a.binding.evidence_digest == *digest
            && a.binding.pipeline_version == pipeline.version()
            && Some(a.binding.release) == release;
        if fresh
            && bound
            && !approved_upstream(&a.principal)
            && !out.iter().any(|p| p.id == a.principal.id)
        {
            out.push(&a.principal);
        }
    }
    out
}

/// The facts the entry gates of a phase reported, for approval conditions.
pub fn facts_of(ps: &PhaseState) -> impl Fn(&GateName, &str, &str) -> bool + '_ {
    move |gate, fact, value| {
        ps.gates
            .get(gate)
            .and_then(|r| r.facts.get(fact))
            .is_some_and(|v| v == value)
    }
}

/// The digest approvals are bound to: every entry gate's latest outcome, evidence digest and
/// human settlement.
pub fn entry_digest(ps: &PhaseState) -> Digest {
    let items: Vec<serde_json::Value> = ps
        .gates
        .iter()
        .map(|(g, r)| {
            serde_json::json!({
                "gate": g,
                "outcome": r.outcome.label(),
                "evidence": r.evidence_digest,
                "overridden_by": r.overridden_by,
                "judged": r.judged.as_ref().map(|(p, pass)| (p, pass)),
            })
        })
        .collect();
    Digest::of_canonical(&items).unwrap_or_else(|_| Digest::of(b""))
}
