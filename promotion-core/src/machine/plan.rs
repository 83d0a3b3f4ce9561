//! plan: what should happen next for a release, at a given time.
//!
//! [`plan`] reads the state and the pipeline and lists the [`Action`]s the engine should
//! perform now (start, evaluate gates, deploy, roll back, tick) and what the release is
//! [`Waiting`] for (a time, approvals, a judgement, a manual start). The phase timing helpers
//! here (first evaluation, deadline, next step in a phase) are shared with
//! [`decide`](super::decide), so that both agree on when something is due.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::decide::{entry_digest, valid_approvals};
use super::state::{GateRecord, ReleaseState, StageState, StageStatus};
use crate::clock::add;
use crate::gate::{PhaseId, PhasePolicy};
use crate::name::{GateName, PrincipalId, StageName};
use crate::pipeline::{Percent, Pipeline, Stage};

/// A side effect (or a tick) the engine should perform next.
///
/// The enum is exhaustive, its variants are not: a driver of [`plan`] that matches on it must
/// handle a new kind of action (skipping one would stall the release), but a variant can gain
/// a field without breaking it, so patterns end in `..`.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start an auto-start stage.
    #[non_exhaustive]
    Start { stage: StageName },
    /// Evaluate these gates of the phase now.
    #[non_exhaustive]
    Evaluate {
        stage: StageName,
        phase: PhaseId,
        /// The gates to evaluate.
        gates: Vec<GateName>,
    },
    /// Deploy a rollout step.
    #[non_exhaustive]
    Deploy {
        stage: StageName,
        /// Step (zero-based).
        step: u32,
        /// Traffic weight.
        weight: Percent,
    },
    /// Roll the stage back.
    #[non_exhaustive]
    RollBack { stage: StageName },
    /// Submit a [`Command::Tick`](super::Command::Tick).
    #[non_exhaustive]
    Tick { stage: StageName },
}

impl Action {
    /// The stage the action concerns.
    pub fn stage(&self) -> &StageName {
        match self {
            Action::Start { stage }
            | Action::Evaluate { stage, .. }
            | Action::Deploy { stage, .. }
            | Action::RollBack { stage }
            | Action::Tick { stage } => stage,
        }
    }
}

/// What a release waits for before it can move on.
///
/// The enum is exhaustive, its variants are not: a host that tells people what to do about
/// each wait (as `promote run` does) must handle a new kind of wait, which would otherwise
/// leave a release stuck with no hint, but a variant can gain a field without breaking it, so
/// patterns end in `..`.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// A time: a sampling round, a pause, a soak, a retry.
    #[non_exhaustive]
    Until {
        stage: StageName,
        at: DateTime<Utc>,
        /// What happens then.
        reason: &'static str,
    },
    /// Approvals.
    #[non_exhaustive]
    Approval {
        stage: StageName,
        /// The rule, in words.
        rule: String,
        /// Approvals given so far that still count.
        valid: Vec<PrincipalId>,
    },
    /// A human decision on an inconclusive gate.
    #[non_exhaustive]
    Judgement {
        stage: StageName,
        phase: PhaseId,
        gate: GateName,
    },
    /// A principal must start the stage.
    #[non_exhaustive]
    ManualStart { stage: StageName },
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiting::Until { stage, at, reason } => write!(f, "{stage}: {reason} at {at}"),
            Waiting::Approval { stage, rule, valid } => {
                write!(f, "{stage}: approval {rule} ({} valid so far)", valid.len())
            }
            Waiting::Judgement { stage, phase, gate } => write!(
                f,
                "{stage}: a human decision on inconclusive gate `{gate}` ({phase})"
            ),
            Waiting::ManualStart { stage } => write!(f, "{stage}: a principal to start it"),
        }
    }
}

/// What should happen next for a release: the answer of [`plan`].
///
/// Read through its accessors; only [`plan`] builds one, so a field can be added without
/// breaking a host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Plan {
    pub(crate) actions: Vec<Action>,
    pub(crate) waiting: Vec<Waiting>,
}

impl Plan {
    /// What to do now, in pipeline order.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }
    /// What the release waits for; empty when it waits for nothing (it has actions to
    /// perform, or every reachable stage is finished).
    pub fn waiting(&self) -> &[Waiting] {
        &self.waiting
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PhaseNext {
    Tick,
    Evaluate(Vec<GateName>),
    Until(DateTime<Utc>, &'static str),
    Judgement(GateName),
}

pub(super) fn phase_not_before(spec: &Stage, st: &StageState, phase: PhaseId) -> DateTime<Utc> {
    let ps = st.phase(phase);
    let start = ps.started_at.unwrap_or(DateTime::<Utc>::MIN_UTC);
    let delay = spec.phase(phase).map_or(Duration::ZERO, |p| p.policy.delay);
    let pause = match phase {
        PhaseId::Analysis { step } => spec
            .steps()
            .get(step as usize)
            .map_or(Duration::ZERO, |s| s.pause),
        _ => Duration::ZERO,
    };
    add(start, pause.saturating_add(delay))
}

pub(super) fn phase_deadline(
    spec: &Stage,
    st: &StageState,
    phase: PhaseId,
) -> Option<DateTime<Utc>> {
    let policy: PhasePolicy = spec.phase(phase)?.policy;
    let timeout = policy.timeout?;
    Some(add(phase_not_before(spec, st, phase), timeout))
}

pub(super) fn next_in_phase(
    spec: &Stage,
    st: &StageState,
    phase: PhaseId,
    now: DateTime<Utc>,
) -> PhaseNext {
    let ps = st.phase(phase);
    let names = spec.gate_names(phase);
    let Some(def) = spec.phase(phase) else {
        return PhaseNext::Tick;
    };
    if let Some(g) = &ps.paused_on {
        return PhaseNext::Judgement(g.clone());
    }
    if names.is_empty() {
        let nb = phase_not_before(spec, st, phase);
        return if now >= nb {
            PhaseNext::Tick
        } else {
            PhaseNext::Until(nb, "the rollout pause ends")
        };
    }
    let not_before = phase_not_before(spec, st, phase);
    if now < not_before {
        return PhaseNext::Until(not_before, "the first evaluation is due");
    }
    let to_sample: Vec<GateName> = names
        .iter()
        .filter(|g| {
            let r = ps.gates.get(*g);
            if r.is_some_and(GateRecord::is_settled_by_human) {
                return false;
            }
            def.policy.resamples_all() || !r.is_some_and(GateRecord::is_satisfied)
        })
        .cloned()
        .collect();
    if to_sample.is_empty() {
        return PhaseNext::Tick;
    }
    let deadline = phase_deadline(spec, st, phase);
    if deadline.is_some_and(|d| now >= d) {
        return PhaseNext::Tick;
    }
    match ps.next_round_at {
        Some(next) if next > now => PhaseNext::Until(
            deadline.map_or(next, |d| next.min(d)),
            "the next sampling round",
        ),
        _ => PhaseNext::Evaluate(to_sample),
    }
}

/// Rollback retry wait after a failed rollback.
pub(crate) const ROLLBACK_RETRY: Duration = Duration::from_secs(30);

/// Says what should happen next for a release: actions to perform now, and what it waits for.
/// Pure.
pub fn plan(pipeline: &Pipeline, state: &ReleaseState, now: DateTime<Utc>) -> Plan {
    let mut out = Plan::default();
    if state.release.is_none() {
        return out;
    }
    for spec in pipeline.stages() {
        let st = state.stage(spec.name.as_str());
        let stage = spec.name.clone();
        match st.status {
            StageStatus::Waiting => {}
            StageStatus::Ready if spec.spec.auto_start => out.actions.push(Action::Start { stage }),
            StageStatus::Ready => out.waiting.push(Waiting::ManualStart { stage }),
            StageStatus::Checking | StageStatus::Verifying | StageStatus::RollingOut { .. }
                if st.current_phase().is_some() =>
            {
                let Some(phase) = st.current_phase() else {
                    continue;
                };
                match next_in_phase(spec, st, phase, now) {
                    PhaseNext::Tick => out.actions.push(Action::Tick { stage }),
                    PhaseNext::Evaluate(gates) => out.actions.push(Action::Evaluate {
                        stage,
                        phase,
                        gates,
                    }),
                    PhaseNext::Until(at, reason) => {
                        out.waiting.push(Waiting::Until { stage, at, reason })
                    }
                    PhaseNext::Judgement(gate) => {
                        out.waiting.push(Waiting::Judgement { stage, phase, gate })
                    }
                }
            }
            StageStatus::Scheduled | StageStatus::RollingOut { .. } => {
                if let Some(s) = spec.steps().get(st.step as usize) {
                    out.actions.push(Action::Deploy {
                        stage,
                        step: st.step,
                        weight: s.weight,
                    });
                }
            }
            StageStatus::AwaitingApproval => {
                if let Some(policy) = &spec.spec.approval {
                    let digest = entry_digest(&st.entry);
                    let valid = valid_approvals(pipeline, state, spec, st, policy, &digest, now)
                        .iter()
                        .map(|p| p.id.clone())
                        .collect();
                    out.waiting.push(Waiting::Approval {
                        stage,
                        rule: policy.rule.to_string(),
                        valid,
                    });
                }
            }
            StageStatus::Soaking { until } => {
                if now >= until {
                    out.actions.push(Action::Tick { stage });
                } else {
                    out.waiting.push(Waiting::Until {
                        stage,
                        at: until,
                        reason: "the soak ends",
                    });
                }
            }
            StageStatus::RollingBack => match st.rollback_failures.1 {
                Some(last) if now < add(last, ROLLBACK_RETRY) => out.waiting.push(Waiting::Until {
                    stage,
                    at: add(last, ROLLBACK_RETRY),
                    reason: "the rollback is retried",
                }),
                _ => out.actions.push(Action::RollBack { stage }),
            },
            StageStatus::Checking | StageStatus::Verifying => {}
            StageStatus::Promoted
            | StageStatus::Failed
            | StageStatus::Rejected
            | StageStatus::Aborted
            | StageStatus::RolledBack => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::{ApprovalPolicy, ApprovalRule};
    use crate::gate::PhasePolicy;
    use crate::machine::fixtures::*;
    use crate::machine::{Command, Outcome};
    use crate::pipeline::{RolloutPlan, RolloutStep};
    use crate::testing::Scenario;

    fn plan_of(s: &Scenario<'_>, p: &Pipeline) -> Plan {
        plan(p, s.state(), s.now())
    }

    fn until(stage_name: &str, at: DateTime<Utc>, reason: &'static str) -> Waiting {
        Waiting::Until {
            stage: stage(stage_name),
            at,
            reason,
        }
    }

    fn evaluate(stage_name: &str, phase: PhaseId, gates: &[&str]) -> Action {
        Action::Evaluate {
            stage: stage(stage_name),
            phase,
            gates: gates.iter().map(|g| gate(g)).collect(),
        }
    }

    fn dev_policy(policy: PhasePolicy) -> Pipeline {
        pipeline_with(dev().entry_policy(policy), prod(one_sre()))
    }

    fn not_fail_fast() -> PhasePolicy {
        PhasePolicy {
            fail_fast: false,
            ..PhasePolicy::default()
        }
    }

    /// `dev` after a round where `unit` passed and `scan` failed.
    fn dev_retrying(p: &Pipeline) -> Scenario<'_> {
        registered(p).given_commands([
            start("dev", None),
            round("dev", PhaseId::Entry, vec![pass("unit"), fail("scan")]),
        ])
    }

    #[test]
    fn an_unregistered_release_has_nothing_to_do() {
        let p = pipeline();
        assert_eq!(plan(&p, &ReleaseState::default(), t0()), Plan::default());
    }

    #[test]
    fn a_ready_stage_is_started_or_waits_for_a_principal() {
        let p = pipeline();
        let actions = plan_of(&registered(&p), &p).actions;
        assert_eq!(
            actions,
            [Action::Start {
                stage: stage("dev")
            }]
        );

        let manual = pipeline_with(dev(), prod(one_sre()).manual_start());
        let s = registered(&manual).given_advanced();
        let next = plan_of(&s, &manual);
        assert!(next.actions.is_empty());
        assert_eq!(
            next.waiting,
            [Waiting::ManualStart {
                stage: stage("prod")
            }]
        );
    }

    #[test]
    fn a_started_phase_evaluates_its_gates_once_its_delay_is_over() {
        let p = pipeline();
        let s = registered(&p).given_command(start("dev", None));
        assert_eq!(
            plan_of(&s, &p).actions,
            [evaluate("dev", PhaseId::Entry, &["unit", "scan"])]
        );

        let delayed = dev_policy(PhasePolicy {
            delay: secs(60),
            ..PhasePolicy::default()
        });
        let s = registered(&delayed).given_command(start("dev", None));
        assert_eq!(
            plan_of(&s, &delayed).waiting,
            [until("dev", at(60), "the first evaluation is due")]
        );
        assert_eq!(
            plan_of(&s.at(at(60)), &delayed).actions,
            [evaluate("dev", PhaseId::Entry, &["unit", "scan"])]
        );
    }

    #[test]
    fn the_next_round_samples_only_unsatisfied_gates_unless_all_are_resampled() {
        let p = dev_policy(not_fail_fast());
        let s = dev_retrying(&p);
        assert_eq!(
            plan_of(&s, &p).waiting,
            [until("dev", at(30), "the next sampling round")]
        );
        assert_eq!(
            plan_of(&s.at(at(30)), &p).actions,
            [evaluate("dev", PhaseId::Entry, &["scan"])]
        );

        let all = dev_policy(PhasePolicy {
            all_pass_in_same_round: true,
            ..not_fail_fast()
        });
        let s = dev_retrying(&all).at(at(30));
        assert_eq!(
            plan_of(&s, &all).actions,
            [evaluate("dev", PhaseId::Entry, &["unit", "scan"])]
        );
    }

    #[test]
    fn a_phase_past_its_timeout_is_ticked_and_its_rounds_never_wait_past_it() {
        let p = dev_policy(PhasePolicy {
            timeout: Some(secs(600)),
            interval: Some(secs(900)),
            ..not_fail_fast()
        });
        let s = dev_retrying(&p);
        assert_eq!(
            plan_of(&s, &p).waiting,
            [until("dev", at(600), "the next sampling round")]
        );
        assert_eq!(
            plan_of(&s.at(at(600)), &p).actions,
            [Action::Tick {
                stage: stage("dev")
            }]
        );
    }

    #[test]
    fn a_paused_phase_waits_for_a_judgement() {
        let p = pipeline();
        let s = registered(&p).given_commands([
            start("dev", None),
            round(
                "dev",
                PhaseId::Entry,
                vec![pass("unit"), result("scan", Outcome::Inconclusive)],
            ),
        ]);
        let next = plan_of(&s, &p);
        assert!(next.actions.is_empty());
        assert_eq!(
            next.waiting,
            [Waiting::Judgement {
                stage: stage("dev"),
                phase: PhaseId::Entry,
                gate: gate("scan"),
            }]
        );
    }

    #[test]
    fn a_stage_awaiting_approval_lists_the_approvals_that_count() {
        let two = ApprovalPolicy::new(ApprovalRule::quorum("sre", 2).unwrap());
        let rule = two.rule.to_string();
        let p = pipeline_with(dev(), prod(two));
        let s = awaiting_approval(&p).given_command(approve("prod", sre("ann")));
        assert_eq!(
            plan_of(&s, &p).waiting,
            [Waiting::Approval {
                stage: stage("prod"),
                rule,
                valid: vec![sre("ann").id],
            }]
        );
    }

    #[test]
    fn a_scheduled_stage_deploys_each_step_in_turn() {
        let p = pipeline();
        let s = awaiting_approval(&p).given_command(approve("prod", sre("ann")));
        assert_eq!(
            plan_of(&s, &p).actions,
            [Action::Deploy {
                stage: stage("prod"),
                step: 0,
                weight: Percent::new(10).unwrap(),
            }]
        );
        let s = s.given_commands([
            begin("prod", 0),
            deployed("prod", 0, Ok(())),
            round("prod", PhaseId::Analysis { step: 0 }, vec![pass("errors")]),
        ]);
        assert_eq!(
            plan_of(&s, &p).actions,
            [Action::Deploy {
                stage: stage("prod"),
                step: 1,
                weight: Percent::new(100).unwrap(),
            }]
        );
    }

    #[test]
    fn a_rollout_pause_without_analysis_waits_then_ticks() {
        let p = pipeline_with(
            dev(),
            prod(one_sre()).rollout(RolloutPlan::new([
                RolloutStep::new(50).pause(secs(600)),
                RolloutStep::new(100),
            ])),
        );
        let s = awaiting_approval(&p).given_commands([
            approve("prod", sre("ann")),
            begin("prod", 0),
            deployed("prod", 0, Ok(())),
        ]);
        assert_eq!(
            plan_of(&s, &p).waiting,
            [until("prod", at(600), "the rollout pause ends")]
        );
        assert_eq!(
            plan_of(&s.at(at(600)), &p).actions,
            [Action::Tick {
                stage: stage("prod")
            }]
        );
    }

    #[test]
    fn a_soaking_stage_waits_for_the_soak_to_end_then_ticks() {
        let p = pipeline();
        let s = awaiting_approval(&p).given_commands([
            approve("prod", sre("ann")),
            begin("prod", 0),
            deployed("prod", 0, Ok(())),
            round("prod", PhaseId::Analysis { step: 0 }, vec![pass("errors")]),
            begin("prod", 1),
            deployed("prod", 1, Ok(())),
            tick("prod"),
            round("prod", PhaseId::Verification, vec![pass("smoke")]),
        ]);
        assert_eq!(
            plan_of(&s, &p).waiting,
            [until("prod", at(3600), "the soak ends")]
        );
        assert_eq!(
            plan_of(&s.at(at(3600)), &p).actions,
            [Action::Tick {
                stage: stage("prod")
            }]
        );
    }

    #[test]
    fn a_failed_rollback_is_retried_after_a_pause() {
        let p = pipeline();
        let s = awaiting_approval(&p).given_commands([
            approve("prod", sre("ann")),
            begin("prod", 0),
            deployed("prod", 0, Ok(())),
            roll_back("prod", sre("ann"), "errors"),
        ]);
        let roll_back_now = [Action::RollBack {
            stage: stage("prod"),
        }];
        assert_eq!(plan_of(&s, &p).actions, roll_back_now);
        let s = s
            .at(at(10))
            .given_command(rolled_back("prod", Err("timeout".into())));
        assert_eq!(
            plan_of(&s, &p).waiting,
            [until("prod", at(40), "the rollback is retried")]
        );
        assert_eq!(plan_of(&s.at(at(40)), &p).actions, roll_back_now);
    }

    #[test]
    fn finished_stages_ask_for_nothing() {
        let p = pipeline();
        let s = awaiting_approval(&p).given_command(Command::Reject {
            stage: stage("prod"),
            principal: sre("bob"),
            comment: "freeze".into(),
        });
        assert_eq!(plan_of(&s, &p), Plan::default());
        let s = awaiting_approval(&p)
            .given_command(approve("prod", sre("ann")))
            .given_advanced();
        assert_eq!(s.state().status("prod"), StageStatus::Promoted);
        assert_eq!(plan_of(&s, &p), Plan::default());
    }
}
