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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start an auto-start stage.
    Start {
        /// The stage.
        stage: StageName,
    },
    /// Evaluate these gates of the phase now.
    Evaluate {
        /// The stage.
        stage: StageName,
        /// The phase.
        phase: PhaseId,
        /// The gates to evaluate.
        gates: Vec<GateName>,
    },
    /// Deploy a rollout step.
    Deploy {
        /// The stage.
        stage: StageName,
        /// Step (zero-based).
        step: u32,
        /// Traffic weight.
        weight: Percent,
    },
    /// Roll the stage back.
    RollBack {
        /// The stage.
        stage: StageName,
    },
    /// Submit a [`Command::Tick`](super::Command::Tick).
    Tick {
        /// The stage.
        stage: StageName,
    },
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// A time: a sampling round, a pause, a soak, a retry.
    Until {
        /// The stage.
        stage: StageName,
        /// When.
        at: DateTime<Utc>,
        /// What happens then.
        reason: &'static str,
    },
    /// Approvals.
    Approval {
        /// The stage.
        stage: StageName,
        /// The rule, in words.
        rule: String,
        /// Approvals given so far that still count.
        valid: Vec<PrincipalId>,
    },
    /// A human decision on an inconclusive gate.
    Judgement {
        /// The stage.
        stage: StageName,
        /// The phase.
        phase: PhaseId,
        /// The gate.
        gate: GateName,
    },
    /// A principal must start the stage.
    ManualStart {
        /// The stage.
        stage: StageName,
    },
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

/// What should happen next for a release.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Things to do now, in pipeline order.
    pub actions: Vec<Action>,
    /// Things to wait for.
    pub waiting: Vec<Waiting>,
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
pub const ROLLBACK_RETRY: Duration = Duration::from_secs(30);

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
