//! What the state machine's unit tests share: names, people, gate results, commands and two
//! small pipelines.
//!
//! `pipeline()` is the one most tests use:
//!
//! ```text
//! dev (entry: unit, scan) → prod (approval: 1 of sre; rollout 10 % [analysis: errors] → 100 %;
//!                                 verification: smoke; soak 1 h)
//! ```
//!
//! with `ic` as the break-glass group and no operator group (anyone may start and abort).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Command, Event, EventBody, GateResult, Outcome};
use crate::approval::{ApprovalPolicy, ApprovalRule};
use crate::gate::PhaseId;
use crate::name::{GateName, StageName};
use crate::pipeline::{Pipeline, RolloutPlan, RolloutStep, StageSpec};
use crate::principal::Principal;
use crate::testing::{sample_time, ScriptedGate};

pub(crate) fn t0() -> DateTime<Utc> {
    sample_time()
}

/// `t0` plus `s` seconds.
pub(crate) fn at(s: u64) -> DateTime<Utc> {
    crate::clock::add(t0(), secs(s))
}

pub(crate) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub(crate) fn stage(name: &str) -> StageName {
    StageName::new(name).unwrap()
}

pub(crate) fn gate(name: &str) -> GateName {
    GateName::new(name).unwrap()
}

pub(crate) fn who(id: &str, groups: &[&str]) -> Principal {
    Principal::new(id, groups.iter().copied()).unwrap()
}

/// Who registers releases.
pub(crate) fn ci() -> Principal {
    who("ci-bot", &["ci"])
}

/// An SRE who neither contributed to the sample release nor registered it.
pub(crate) fn sre(id: &str) -> Principal {
    who(id, &["sre"])
}

/// An event at `t0` by the engine.
pub(crate) fn ev(body: EventBody) -> Event {
    Event {
        at: t0(),
        actor: super::Actor::Engine,
        request: None,
        body,
    }
}

pub(crate) fn result(name: &str, outcome: Outcome) -> GateResult {
    GateResult {
        gate: gate(name),
        outcome,
        evidence: None,
        attempts: 1,
    }
}

pub(crate) fn pass(name: &str) -> GateResult {
    result(name, Outcome::Pass)
}

pub(crate) fn fail(name: &str) -> GateResult {
    result(name, Outcome::Fail)
}

pub(crate) fn round(stage_name: &str, phase: PhaseId, results: Vec<GateResult>) -> Command {
    Command::RecordRound {
        stage: stage(stage_name),
        phase,
        results,
    }
}

/// Both entry gates of `dev` pass.
pub(crate) fn dev_passes() -> Command {
    round("dev", PhaseId::Entry, vec![pass("unit"), pass("scan")])
}

pub(crate) fn start(stage_name: &str, by: Option<Principal>) -> Command {
    Command::Start {
        stage: stage(stage_name),
        by,
    }
}

pub(crate) fn tick(stage_name: &str) -> Command {
    Command::Tick {
        stage: stage(stage_name),
    }
}

pub(crate) fn approve(stage_name: &str, principal: Principal) -> Command {
    Command::Approve {
        stage: stage(stage_name),
        principal,
        comment: "looks good".into(),
    }
}

pub(crate) fn begin(stage_name: &str, step: u32) -> Command {
    Command::BeginDeployment {
        stage: stage(stage_name),
        step,
    }
}

pub(crate) fn deployed(stage_name: &str, step: u32, result: Result<(), String>) -> Command {
    Command::RecordDeployment {
        stage: stage(stage_name),
        step,
        result,
    }
}

pub(crate) fn rolled_back(stage_name: &str, result: Result<(), String>) -> Command {
    Command::RecordRollback {
        stage: stage(stage_name),
        result,
    }
}

pub(crate) fn abort(stage_name: &str, principal: Principal, reason: &str) -> Command {
    Command::Abort {
        stage: stage(stage_name),
        principal,
        reason: reason.into(),
    }
}

pub(crate) fn roll_back(stage_name: &str, principal: Principal, reason: &str) -> Command {
    Command::RollBack {
        stage: stage(stage_name),
        principal,
        reason: reason.into(),
    }
}

/// The `prod` stage of [`pipeline`], with its parts adjustable.
pub(crate) fn prod(approval: ApprovalPolicy) -> StageSpec {
    StageSpec::new("prod")
        .after("dev")
        .approval(approval)
        .rollout(RolloutPlan::new([
            RolloutStep::new(10).analysis(ScriptedGate::passing("errors")),
            RolloutStep::new(100),
        ]))
        .verification_gate(ScriptedGate::passing("smoke"))
        .soak(secs(3600))
}

pub(crate) fn one_sre() -> ApprovalPolicy {
    ApprovalPolicy::new(ApprovalRule::quorum("sre", 1).unwrap())
}

/// Two distinct SREs must approve.
pub(crate) fn two_sres() -> ApprovalPolicy {
    ApprovalPolicy::new(ApprovalRule::quorum("sre", 2).unwrap())
}

pub(crate) fn dev() -> StageSpec {
    StageSpec::new("dev")
        .entry_gate(ScriptedGate::passing("unit"))
        .entry_gate(ScriptedGate::passing("scan"))
}

/// `dev` then `prod`, as in the module doc.
pub(crate) fn pipeline() -> Pipeline {
    pipeline_with(dev(), prod(one_sre()))
}

pub(crate) fn pipeline_with(dev: StageSpec, prod: StageSpec) -> Pipeline {
    Pipeline::builder("shop", "1")
        .break_glass_group("ic")
        .stage(dev)
        .stage(prod)
        .build()
        .unwrap()
}

/// The sample release registered in `p` by [`ci`].
pub(crate) fn registered(p: &Pipeline) -> crate::testing::Scenario<'_> {
    crate::testing::Scenario::new(p).given_registered(&crate::testing::sample_release(), &ci())
}

/// In [`pipeline`]: `dev` promoted, `prod` awaiting approval (at `t0`: nothing in `dev`
/// waits for time).
pub(crate) fn awaiting_approval(p: &Pipeline) -> crate::testing::Scenario<'_> {
    registered(p).given_advanced()
}
