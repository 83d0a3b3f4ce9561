//! Approvals and human decisions: approving and rejecting a stage, break-glass overrides of
//! failed entry gates, judgements of inconclusive gates, and which approvals still count
//! ([`valid_approvals`], bound to the [`entry_digest`]; [`approvals_under`] for what-if).

use chrono::{DateTime, Utc};

use super::super::apply::apply_stage;
use super::super::command::Refusal;
use super::super::event::{Actor, ApprovalBinding, EventBody, FailureReason};
use super::super::state::{PhaseState, ReleaseState, StageState, StageStatus};
use super::{finished, group_list, wrong, Decision};
use crate::clock::elapsed;
use crate::digest::Digest;
use crate::gate::PhaseId;
use crate::name::{GateName, PrincipalId, StageName};
use crate::pipeline::{Pipeline, Stage};
use crate::principal::Principal;
use crate::release::Release;
use crate::text::has_visible_text;

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
            if let Some(why) = self_interest(self.state, st, &principal.id) {
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
                if us
                    .approvers
                    .iter()
                    .any(|a| a.same_person(principal.id.as_str()))
                {
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
        if valid
            .iter()
            .any(|p| p.id.same_person(principal.id.as_str()))
        {
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
        if !has_visible_text(comment) {
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
        if !has_visible_text(justification) {
            return Err(Refusal::EmptyJustification("an override"));
        }
        let stake = self.stake(name, st, principal, "override a gate")?;
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
                self_interest: stake,
            },
        );
        let mut after = st.clone();
        if let Some(e) = self.events.last() {
            apply_stage(&mut after, &e.actor, self.now, &e.body);
        }
        self.settle(spec, &after, phase)
    }

    /// Separation of duties for break glass and judgement: refuses a person with a stake in
    /// the release unless the pipeline allows it, in which case the stake is returned to be
    /// recorded in the event.
    fn stake(
        &self,
        name: &StageName,
        st: &StageState,
        principal: &Principal,
        action: &'static str,
    ) -> Result<Option<String>, Refusal> {
        let Some(why) = self_interest(self.state, st, &principal.id) else {
            return Ok(None);
        };
        if self.pipeline.allows_self_override() {
            return Ok(Some(why.to_owned()));
        }
        Err(Refusal::SelfDecision {
            stage: name.clone(),
            principal: principal.id.clone(),
            action,
            why,
        })
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
        if !has_visible_text(comment) {
            return Err(Refusal::EmptyJustification("a judgement"));
        }
        let stake = self.stake(name, st, principal, "judge a gate")?;
        self.emit(
            Actor::principal(principal),
            EventBody::GateJudged {
                stage: name.clone(),
                phase,
                gate: gate.clone(),
                pass,
                principal: principal.clone(),
                comment: comment.to_owned(),
                self_interest: stake,
            },
        );
        let mut after = st.clone();
        if let Some(e) = self.events.last() {
            apply_stage(&mut after, &e.actor, self.now, &e.body);
        }
        self.settle(spec, &after, phase)
    }
}

/// What the approvals recorded for a stage amount to under a pipeline's approval policy: the
/// answer of [`approvals_under`].
///
/// Read through its accessors; only [`approvals_under`] builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApprovalCheck {
    pub(crate) counted: Vec<Principal>,
    pub(crate) satisfied: bool,
}

impl ApprovalCheck {
    /// The approvers that count, each once, in the order they approved.
    pub fn counted(&self) -> &[Principal] {
        &self.counted
    }
    /// Whether they satisfy the policy's rule, given the facts the stage's entry gates
    /// reported.
    pub fn satisfied(&self) -> bool {
        self.satisfied
    }
}

/// Whether the approvals recorded for `stage` in `state` satisfy `pipeline`'s approval policy
/// for that stage at `at`, and which of them count: what a what-if replay of a release's
/// history under a new pipeline version asks. `None` when `pipeline` has no such stage or the
/// stage needs no approval.
///
/// The recorded approvals are taken as if they had been given under `pipeline`'s version (to
/// the engine, a new version voids them). Otherwise they count as the engine counts them: bound
/// to this release and to the stage's current entry evidence
/// ([`StageState::entry_digest`]), not expired at `at`, one per principal, and not from an
/// approver of an upstream stage when the policy asks for distinct approvers. When the policy
/// forbids self-approval, approvals from a contributor to the release or from whoever started
/// the release or the stage do not count either: the engine refuses those when they are
/// given, but a policy that newly forbids them must not count those given before.
pub fn approvals_under(
    pipeline: &Pipeline,
    state: &ReleaseState,
    stage: &str,
    at: DateTime<Utc>,
) -> Option<ApprovalCheck> {
    let spec = pipeline.stage(stage)?;
    let policy = spec.spec.approval.as_ref()?;
    let st = state.stage(stage);
    let digest = entry_digest(&st.entry);
    let counted: Vec<&Principal> = counted_approvals(state, spec, st, policy, &digest, None, at)
        .into_iter()
        .filter(|p| policy.allow_self_approval || self_interest(state, st, &p.id).is_none())
        .collect();
    let satisfied = policy
        .rule
        .is_satisfied_with(&counted, &facts_of(&st.entry));
    Some(ApprovalCheck {
        counted: counted.into_iter().cloned().collect(),
        satisfied,
    })
}

/// Why `principal` may not approve its own promotion, if it is its own: it contributed to the
/// release, or it started the release's promotion or this stage.
/// Why `principal` has a stake in the release that bars them from deciding on it, if they do.
///
/// Who counts: the release's builder (the identity that built it, e.g. a person running a
/// local build or a CI account) and every listed contributor ("they contributed to the
/// release"), the principal who registered the release and the one who started promotion into
/// this stage ("they started this promotion"). Ids are compared as people, not bytes
/// ([`PrincipalId::same_person`]): case and Unicode look-alikes of a contributor are that
/// contributor.
pub(super) fn self_interest(
    state: &ReleaseState,
    st: &StageState,
    principal: &PrincipalId,
) -> Option<&'static str> {
    let is = |other: &str| principal.same_person(other);
    if state
        .release
        .as_ref()
        .is_some_and(|r| is(r.builder_id()) || r.contributors().iter().any(|c| is(c.as_str())))
    {
        Some("they contributed to the release")
    } else if state.initiator.as_ref().is_some_and(|i| is(i.id.as_str()))
        || st.started_by.as_ref().is_some_and(|s| is(s.as_str()))
    {
        Some("they started this promotion")
    } else {
        None
    }
}

/// The approvals on `st` that still count under `policy` at `now`: bound to this release, to
/// the entry evidence `digest` and to the pipeline's current version, and not expired. Each
/// principal counts once.
pub(crate) fn valid_approvals<'s>(
    pipeline: &Pipeline,
    state: &ReleaseState,
    spec: &Stage,
    st: &'s StageState,
    policy: &crate::ApprovalPolicy,
    digest: &Digest,
    now: DateTime<Utc>,
) -> Vec<&'s Principal> {
    let version = Some(pipeline.version());
    counted_approvals(state, spec, st, policy, digest, version, now)
}

/// [`valid_approvals`], with the pipeline version approvals must have been given under as
/// `version`, or `None` to take them as given under any version.
fn counted_approvals<'s>(
    state: &ReleaseState,
    spec: &Stage,
    st: &'s StageState,
    policy: &crate::ApprovalPolicy,
    digest: &Digest,
    version: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<&'s Principal> {
    let release = state.release.as_deref().map(Release::id);
    // Distinctness is a property of the set counted now, not only of the moment an approval
    // was given: an upstream (with any-upstream availability) may be approved later by the
    // same person.
    let approved_upstream = |p: &Principal| {
        policy.distinct_from_upstream
            && spec.upstream.iter().any(|u| {
                state
                    .stage(u.as_str())
                    .approvers
                    .iter()
                    .any(|a| a.same_person(p.id.as_str()))
            })
    };
    let mut out: Vec<&Principal> = Vec::new();
    for a in &st.approvals {
        // Version `None` (what-if under a candidate pipeline) takes approvals as given under
        // any version; otherwise a voided approval never counts again.
        if a.voided && version.is_some() {
            continue;
        }
        let fresh = policy.expiry.is_none_or(|e| elapsed(a.at, now) < e);
        let bound = a.binding.evidence_digest == *digest
            && version.is_none_or(|v| a.binding.pipeline_version == v)
            && Some(a.binding.release) == release;
        if fresh
            && bound
            && !approved_upstream(&a.principal)
            && !out
                .iter()
                .any(|p| p.id.same_person(a.principal.id.as_str()))
        {
            out.push(&a.principal);
        }
    }
    out
}

/// The facts the entry gates of a phase reported, for approval conditions.
pub(crate) fn facts_of(ps: &PhaseState) -> impl Fn(&GateName, &str, &str) -> bool + '_ {
    move |gate, fact, value| {
        ps.gates
            .get(gate)
            .and_then(|r| r.facts.get(fact))
            .is_some_and(|v| v == value)
    }
}

impl StageState {
    /// The entry evidence an approval given now is bound to
    /// ([`ApprovalBinding::evidence_digest`]): a digest of every entry gate's latest outcome,
    /// evidence digest and human settlement (override, judgement). Re-running, overriding or
    /// judging an entry gate changes it, and approvals bound to the old digest no longer count.
    pub fn entry_digest(&self) -> Digest {
        entry_digest(&self.entry)
    }
}

/// The digest approvals are bound to: every entry gate's latest outcome, evidence digest and
/// human settlement.
pub(crate) fn entry_digest(ps: &PhaseState) -> Digest {
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

#[cfg(test)]
mod tests {
    use super::{approvals_under, entry_digest, ApprovalCheck};
    use crate::approval::{ApprovalPolicy, ApprovalRule};
    use crate::gate::PhaseId;
    use crate::machine::fixtures::*;
    use crate::machine::{ApprovalBinding, Command, EventBody, EventKind as K, FailureReason};
    use crate::machine::{Outcome, PhaseState, Refusal, StageStatus};
    use crate::pipeline::Pipeline;
    use crate::principal::Principal;
    use crate::testing::{sample_release, Scenario};

    fn reject(stage_name: &str, principal: Principal, comment: &str) -> Command {
        Command::Reject {
            stage: stage(stage_name),
            principal,
            comment: comment.into(),
        }
    }

    fn override_gate(
        stage_name: &str,
        gate_name: &str,
        principal: Principal,
        why: &str,
    ) -> Command {
        Command::Override {
            stage: stage(stage_name),
            gate: gate(gate_name),
            principal,
            justification: why.into(),
        }
    }

    fn judge(gate_name: &str, pass: bool, comment: &str) -> Command {
        Command::Judge {
            stage: stage("dev"),
            gate: gate(gate_name),
            pass,
            principal: sre("ann"),
            comment: comment.into(),
        }
    }

    fn ivy() -> Principal {
        who("ivy", &["ic"])
    }

    /// `dev` failed on its `scan` gate.
    fn dev_failed(p: &Pipeline) -> Scenario<'_> {
        registered(p).given_commands([
            start("dev", None),
            round("dev", PhaseId::Entry, vec![pass("unit"), fail("scan")]),
        ])
    }

    /// `dev` paused on its inconclusive `unit` gate.
    fn dev_paused(p: &Pipeline) -> Scenario<'_> {
        registered(p).given_commands([
            start("dev", None),
            round(
                "dev",
                PhaseId::Entry,
                vec![result("unit", Outcome::Inconclusive), pass("scan")],
            ),
        ])
    }

    #[test]
    fn an_approval_that_satisfies_the_rule_schedules_the_stage() {
        let p = pipeline();
        let waiting = awaiting_approval(&p);
        let digest = entry_digest(&waiting.state().stage("prod").entry);
        waiting.when(approve("prod", sre("ann"))).then_events([
            EventBody::ApprovalGiven {
                stage: stage("prod"),
                principal: sre("ann"),
                comment: "looks good".into(),
                binding: ApprovalBinding {
                    release: sample_release().id(),
                    evidence_digest: digest,
                    pipeline_version: "1".into(),
                },
            },
            EventBody::StageScheduled {
                approvers: vec![sre("ann").id],
                stage: stage("prod"),
            },
        ]);
    }

    #[test]
    fn a_quorum_of_two_schedules_on_the_second_approval() {
        let p = pipeline_with(dev(), prod(two_sres()));
        awaiting_approval(&p)
            .when(approve("prod", sre("ann")))
            .then_kinds(&[K::ApprovalGiven]);
        awaiting_approval(&p)
            .given_command(approve("prod", sre("ann")))
            .when(approve("prod", sre("bob")))
            .then(|events| {
                assert_eq!(
                    events.last().map(|e| &e.body),
                    Some(&EventBody::StageScheduled {
                        approvers: vec![sre("ann").id, sre("bob").id],
                        stage: stage("prod"),
                    })
                );
            });
    }

    #[test]
    fn only_members_of_the_rule_s_groups_may_approve_or_reject() {
        let p = pipeline();
        let refusal = Refusal::NotEligible {
            stage: stage("prod"),
            principal: who("eve", &[]).id,
            groups: "`sre`".into(),
        };
        awaiting_approval(&p)
            .when(approve("prod", who("eve", &["qa"])))
            .then_refused(refusal.clone());
        awaiting_approval(&p)
            .when(reject("prod", who("eve", &["qa"]), "no"))
            .then_refused(refusal);
    }

    #[test]
    fn contributors_and_initiators_may_not_approve_their_own_release() {
        let p = pipeline();
        let self_approval = |id: &str, why| Refusal::SelfApproval {
            stage: stage("prod"),
            principal: who(id, &[]).id,
            why,
        };
        awaiting_approval(&p)
            .when(approve("prod", sre("dana")))
            .then_refused(self_approval("dana", "they contributed to the release"));
        awaiting_approval(&p)
            .when(approve("prod", sre("ci-bot")))
            .then_refused(self_approval("ci-bot", "they started this promotion"));
        let lenient = pipeline_with(dev(), prod(one_sre().allow_self_approval()));
        awaiting_approval(&lenient)
            .when(approve("prod", sre("dana")))
            .then_kinds(&[K::ApprovalGiven, K::StageScheduled]);
    }

    #[test]
    fn an_approver_counts_once() {
        let p = pipeline_with(dev(), prod(two_sres()));
        awaiting_approval(&p)
            .given_command(approve("prod", sre("ann")))
            .when(approve("prod", sre("ann")))
            .then_refused(Refusal::DuplicateApproval {
                stage: stage("prod"),
                principal: sre("ann").id,
            });
    }

    #[test]
    fn distinct_approvers_are_required_across_stages_when_asked() {
        let p = pipeline_with(
            dev().approval(one_sre()),
            prod(one_sre().distinct_from_upstream()),
        );
        let prod_waits = registered(&p)
            .given_advanced()
            .given_command(approve("dev", sre("ann")))
            .given_advanced();
        assert_eq!(
            prod_waits.state().status("prod"),
            StageStatus::AwaitingApproval
        );
        prod_waits
            .clone()
            .when(approve("prod", sre("ann")))
            .then_refused(Refusal::NotDistinct {
                stage: stage("prod"),
                principal: sre("ann").id,
                upstream: stage("dev"),
            });
        prod_waits
            .when(approve("prod", sre("bob")))
            .then_kinds(&[K::ApprovalGiven, K::StageScheduled]);
    }

    #[test]
    fn approvals_wait_for_the_entry_gates_unless_the_policy_says_otherwise() {
        let strict = pipeline_with(dev().approval(one_sre()), prod(one_sre()));
        registered(&strict)
            .given_command(start("dev", None))
            .when(approve("dev", sre("ann")))
            .then_refused(Refusal::GatesNotPassed(stage("dev")));

        let early = pipeline_with(dev().approval(one_sre().before_gates()), prod(one_sre()));
        registered(&early)
            .given_command(start("dev", None))
            .when(approve("dev", sre("ann")))
            .then_kinds(&[K::ApprovalGiven]);
        // The early approval is bound to the evidence on record when it was given (none):
        // once the gates have reported, it no longer counts and approval is requested.
        registered(&early)
            .given_commands([start("dev", None), approve("dev", sre("ann"))])
            .when(dev_passes())
            .then_kinds(&[
                K::GateEvaluated,
                K::GateEvaluated,
                K::PhasePassed,
                K::ApprovalRequested,
            ]);
    }

    #[test]
    fn approving_needs_an_approval_policy_and_an_open_stage() {
        let p = pipeline();
        registered(&p)
            .when(approve("dev", sre("ann")))
            .then_refused(Refusal::NoApprovalRequired(stage("dev")));
        registered(&p)
            .when(approve("prod", sre("ann")))
            .then_refused(Refusal::WrongStatus {
                stage: stage("prod"),
                status: StageStatus::Waiting,
                action: "approve",
            });
        awaiting_approval(&p)
            .given_command(reject("prod", sre("bob"), "not today"))
            .when(approve("prod", sre("ann")))
            .then_refused(Refusal::StageFinished {
                stage: stage("prod"),
                status: StageStatus::Rejected,
                action: "approve",
            });
    }

    #[test]
    fn a_rejection_needs_a_comment_and_ends_the_stage() {
        let p = pipeline();
        awaiting_approval(&p)
            .when(reject("prod", sre("bob"), "  "))
            .then_refused(Refusal::EmptyJustification("a rejection"));
        awaiting_approval(&p)
            .when(reject("prod", sre("bob"), "freeze week"))
            .then_state(|s| {
                assert_eq!(s.status("prod"), StageStatus::Rejected);
                let r = s.stage("prod").rejection.as_ref().unwrap();
                assert_eq!(
                    (r.principal.id.as_str(), r.comment.as_str()),
                    ("bob", "freeze week")
                );
            });
    }

    #[test]
    fn a_break_glass_override_revives_a_failed_entry_phase() {
        let p = pipeline();
        dev_failed(&p)
            .when(override_gate("dev", "scan", ivy(), "CVE is not reachable"))
            .then(|events| {
                assert_eq!(
                    events[0].body,
                    EventBody::GateOverridden {
                        stage: stage("dev"),
                        phase: PhaseId::Entry,
                        gate: gate("scan"),
                        principal: ivy(),
                        justification: "CVE is not reachable".into(),
                        overridden: Outcome::Fail,
                        self_interest: None,
                    }
                );
                let kinds: Vec<K> = events.iter().map(|e| e.body.event_kind()).collect();
                assert_eq!(
                    kinds,
                    [K::GateOverridden, K::PhasePassed, K::StageScheduled]
                );
            });
    }

    #[test]
    fn only_break_glass_members_override_and_only_with_a_justification() {
        let p = pipeline();
        dev_failed(&p)
            .when(override_gate("dev", "scan", sre("ann"), "urgent"))
            .then_refused(Refusal::NotPrivileged {
                principal: sre("ann").id,
                action: "override a gate",
                why: "only members of `ic` may".into(),
            });
        dev_failed(&p)
            .when(override_gate("dev", "scan", ivy(), ""))
            .then_refused(Refusal::EmptyJustification("an override"));
        let no_break_glass = Pipeline::builder("shop", "1").stage(dev()).build().unwrap();
        dev_failed(&no_break_glass)
            .when(override_gate("dev", "scan", ivy(), "urgent"))
            .then_refused(Refusal::NotPrivileged {
                principal: ivy().id,
                action: "override a gate",
                why: "the pipeline names no break-glass group".into(),
            });
    }

    #[test]
    fn an_override_needs_a_known_unsatisfied_entry_gate_of_an_open_stage() {
        let p = pipeline();
        dev_failed(&p)
            .when(override_gate("dev", "lint", ivy(), "urgent"))
            .then_refused(Refusal::UnknownGate {
                stage: stage("dev"),
                phase: PhaseId::Entry,
                gate: "lint".into(),
            });
        let nothing = |outcome: &str| Refusal::NothingToOverride {
            stage: stage("dev"),
            gate: gate("unit"),
            outcome: outcome.into(),
        };
        dev_failed(&p)
            .when(override_gate("dev", "unit", ivy(), "urgent"))
            .then_refused(nothing("satisfied"));
        registered(&p)
            .given_command(start("dev", None))
            .when(override_gate("dev", "unit", ivy(), "urgent"))
            .then_refused(nothing("not evaluated yet"));
        registered(&p)
            .given_advanced()
            .when(override_gate("dev", "unit", ivy(), "urgent"))
            .then_refused(Refusal::StageFinished {
                stage: stage("dev"),
                status: StageStatus::Promoted,
                action: "override an entry gate",
            });
    }

    #[test]
    fn a_judgement_settles_an_inconclusive_gate_either_way() {
        let p = pipeline();
        dev_paused(&p)
            .when(judge("unit", true, "flaky runner"))
            .then_kinds(&[K::GateJudged, K::PhasePassed, K::StageScheduled]);
        dev_paused(&p)
            .when(judge("unit", false, "real regression"))
            .then_state(|s| {
                assert_eq!(
                    s.stage("dev").failure,
                    Some(FailureReason::JudgedFailed {
                        phase: PhaseId::Entry,
                        gate: gate("unit"),
                        by: sre("ann").id,
                    })
                );
            });
    }

    #[test]
    fn a_judgement_needs_a_paused_gate_a_comment_and_a_judge() {
        let p = pipeline();
        dev_paused(&p)
            .when(judge("scan", true, "fine"))
            .then_refused(Refusal::NotAwaitingJudgement {
                stage: stage("dev"),
                gate: gate("scan"),
            });
        registered(&p)
            .when(judge("unit", true, "fine"))
            .then_refused(Refusal::NotAwaitingJudgement {
                stage: stage("dev"),
                gate: gate("unit"),
            });
        dev_paused(&p)
            .when(judge("unit", true, " "))
            .then_refused(Refusal::EmptyJustification("a judgement"));
        let with_ops = Pipeline::builder("shop", "1")
            .operator_group("ops")
            .stage(dev())
            .build()
            .unwrap();
        dev_paused(&with_ops)
            .when(judge("unit", true, "fine"))
            .then_refused(Refusal::NotPrivileged {
                principal: sre("ann").id,
                action: "judge an inconclusive gate",
                why: "only members of `ops` may".into(),
            });
    }

    #[test]
    fn expired_approvals_no_longer_count() {
        let p = pipeline_with(dev(), prod(two_sres().expires_after(secs(600))));
        let ann_approved = awaiting_approval(&p).given_command(approve("prod", sre("ann")));
        ann_approved
            .clone()
            .at(at(599))
            .when(approve("prod", sre("bob")))
            .then_kinds(&[K::ApprovalGiven, K::StageScheduled]);
        ann_approved
            .at(at(600))
            .when(approve("prod", sre("bob")))
            .then_kinds(&[K::ApprovalGiven]);
    }

    #[test]
    fn approvals_given_under_another_pipeline_version_no_longer_count() {
        let v1 = pipeline_with(dev(), prod(two_sres()));
        let v2 = Pipeline::builder("shop", "2")
            .stage(dev())
            .stage(prod(two_sres()))
            .build()
            .unwrap();
        let history = awaiting_approval(&v1)
            .given_command(approve("prod", sre("ann")))
            .history()
            .to_vec();
        Scenario::new(&v2)
            .given(history.clone())
            .when(approve("prod", sre("bob")))
            .then_kinds(&[K::PipelineVersionAdopted, K::ApprovalGiven]);
        Scenario::new(&v2)
            .given(history)
            .when(approve("prod", sre("ann")))
            .then_kinds(&[K::PipelineVersionAdopted, K::ApprovalGiven]);
    }

    #[test]
    fn the_entry_digest_follows_outcomes_and_human_settlements() {
        let p = pipeline();
        let state_after = |commands: Vec<Command>| -> PhaseState {
            registered(&p)
                .given_commands(commands)
                .state()
                .stage("dev")
                .entry
                .clone()
        };
        let failed = state_after(vec![
            start("dev", None),
            round("dev", PhaseId::Entry, vec![pass("unit"), fail("scan")]),
        ]);
        let passed = state_after(vec![start("dev", None), dev_passes()]);
        assert_ne!(entry_digest(&failed), entry_digest(&passed));
        assert_eq!(entry_digest(&passed), entry_digest(&passed.clone()));
        let mut overridden = failed.clone();
        if let Some(r) = overridden.gates.get_mut("scan") {
            r.overridden_by = Some(ivy().id);
        }
        assert_ne!(entry_digest(&failed), entry_digest(&overridden));
        assert_eq!(
            entry_digest(&PhaseState::default()),
            entry_digest(&PhaseState::default())
        );
    }

    #[test]
    fn approvals_under_a_new_version_count_as_if_given_under_it() {
        let policy = || two_sres().expires_after(secs(600));
        let v1 = pipeline_with(dev(), prod(policy()));
        let approved = awaiting_approval(&v1)
            .given_command(approve("prod", sre("ann")))
            .given_command(approve("prod", sre("bob")));
        let state = approved.state();
        let version = |v: &str, prod| {
            Pipeline::builder("shop", v)
                .stage(dev())
                .stage(prod)
                .build()
                .unwrap()
        };
        let ids = |c: &ApprovalCheck| -> Vec<String> {
            c.counted.iter().map(|p| p.id.to_string()).collect()
        };
        let v2 = version("2", prod(policy()));
        let check = approvals_under(&v2, state, "prod", at(599)).unwrap();
        assert!(check.satisfied);
        assert_eq!(ids(&check), ["ann", "bob"]);
        let expired = approvals_under(&v2, state, "prod", at(600)).unwrap();
        assert!(!expired.satisfied && expired.counted.is_empty());
        let three = ApprovalPolicy::new(ApprovalRule::quorum("sre", 3).unwrap());
        let short = approvals_under(&version("3", prod(three)), state, "prod", at(0)).unwrap();
        assert!(!short.satisfied);
        assert_eq!(ids(&short), ["ann", "bob"]);
        assert_eq!(approvals_under(&v2, state, "dev", at(0)), None);
        assert_eq!(approvals_under(&v2, state, "qa", at(0)), None);
    }

    #[test]
    fn approvals_under_a_policy_that_newly_forbids_self_approval_leave_those_out() {
        let lenient = pipeline_with(dev(), prod(one_sre().allow_self_approval()));
        let approved = awaiting_approval(&lenient).given_command(approve("prod", sre("dana")));
        let check = approvals_under(&lenient, approved.state(), "prod", at(0)).unwrap();
        assert!(check.satisfied);
        let strict = approvals_under(&pipeline(), approved.state(), "prod", at(0)).unwrap();
        assert!(!strict.satisfied && strict.counted.is_empty());
    }

    #[test]
    fn a_stage_s_entry_digest_is_its_entry_phase_s() {
        let p = pipeline();
        let passed = registered(&p).given_commands([start("dev", None), dev_passes()]);
        let dev = passed.state().stage("dev");
        assert_eq!(dev.entry_digest(), entry_digest(&dev.entry));
        assert_ne!(dev.entry_digest(), entry_digest(&PhaseState::default()));
    }
}
