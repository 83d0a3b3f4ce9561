//! Fixtures shared by the benchmarks, so that every bench measures the same releases and the
//! same realistic pipeline. Included with `#[path = "common/mod.rs"] mod common;`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(dead_code)] // each bench uses a different part

use std::time::Duration;

use chrono::{DateTime, Utc};
use promotion::testing::ScriptedGate;
use promotion::*;

pub(crate) fn t0() -> DateTime<Utc> {
    "2026-11-26T09:00:00Z".parse().expect("valid time")
}

pub(crate) fn release(tag: &str) -> Release {
    Release::builder(
        format!("api {tag}"),
        "git@example.com:shop/api",
        "c".repeat(40),
        "2026-11-26T08:00:00Z".parse().expect("valid time"),
    )
    .artifact("api-image", format!("sha256:{}", "ab".repeat(32)))
    .artifact("api-chart", format!("sha256:{}", "cd".repeat(32)))
    .builder("ci.example.com")
    .contributor("dana")
    .contributor("lee")
    .label("tag", tag)
    .label("team", "checkout")
    .build()
    .expect("valid release")
}

pub(crate) fn who(id: &str, groups: &[&str]) -> Principal {
    Principal::new(id, groups.iter().copied()).expect("valid principal")
}

/// Approvers the drivers use, per stage, in order.
pub(crate) fn approvers(stage: &str) -> Vec<Principal> {
    match stage {
        "integration" => vec![who("quinn", &["qa"])],
        "compliance" => vec![who("sam", &["sre"]), who("sec", &["security"])],
        _ => Vec::new(),
    }
}

/// A realistic five-stage pipeline: gated dev, an integration stage whose tests must stay
/// green for five minutes (sampled every minute) and need a QA approval, a compliance stage
/// needing an SRE and a security approval, a three-step canary with analysis, and production
/// with three verification gates sampled every minute for `verification_min_success`, then
/// a six-hour soak.
pub(crate) fn realistic_pipeline(verification_min_success: Duration) -> Pipeline {
    let every_minute = |min_success: Duration| PhasePolicy {
        interval: Some(Duration::from_secs(60)),
        min_success,
        ..PhasePolicy::default()
    };
    Pipeline::builder("shop", "1")
        .break_glass_group("incident-commanders")
        .stage(
            StageSpec::new("dev")
                .entry_gate(ScriptedGate::passing("unit-tests"))
                .entry_gate(ScriptedGate::passing("lint")),
        )
        .stage(
            StageSpec::new("integration")
                .after("dev")
                .entry_gate(ScriptedGate::passing("integration-tests"))
                .entry_policy(every_minute(Duration::from_secs(300)))
                .approval(ApprovalPolicy::new(
                    ApprovalRule::quorum("qa", 1).expect("valid rule"),
                )),
        )
        .stage(
            StageSpec::new("compliance")
                .after("integration")
                .entry_gate(ScriptedGate::passing("change-record"))
                .entry_gate(ScriptedGate::passing("sbom-scan"))
                .approval(
                    ApprovalPolicy::new(ApprovalRule::all([
                        ApprovalRule::quorum("sre", 1).expect("valid rule"),
                        ApprovalRule::quorum("security", 1).expect("valid rule"),
                    ]))
                    .distinct_from_upstream(),
                ),
        )
        .stage(
            StageSpec::new("canary")
                .after("compliance")
                .rollout(RolloutPlan::new([
                    RolloutStep::new(1)
                        .pause(Duration::from_secs(600))
                        .analysis(ScriptedGate::passing("error-rate")),
                    RolloutStep::new(10)
                        .pause(Duration::from_secs(600))
                        .analysis(ScriptedGate::passing("error-rate")),
                    RolloutStep::new(100),
                ])),
        )
        .stage(
            StageSpec::new("production")
                .after("canary")
                .verification_gate(ScriptedGate::passing("smoke"))
                .verification_gate(ScriptedGate::passing("error-rate"))
                .verification_gate(ScriptedGate::passing("latency-p99"))
                .verification_policy(every_minute(verification_min_success))
                .soak(Duration::from_secs(6 * 3600)),
        )
        .build()
        .expect("valid pipeline")
}

/// A production verification gate's result, as the engine records it: a pass with evidence.
pub(crate) fn gate_event(round: u32) -> Event {
    let at = t0() + chrono::Duration::minutes(i64::from(round));
    let gate = GateName::new("error-rate").expect("valid gate name");
    let evidence = Evidence::new(
        "prometheus:error-rate",
        at,
        "error rate 0.12 % over 5m (threshold 1 %)",
    )
    .with_data(serde_json::json!({ "value": 0.12, "threshold": 1.0, "window": "5m" }));
    Event {
        at,
        actor: Actor::Gate { name: gate.clone() },
        request: None,
        body: EventBody::GateEvaluated {
            stage: StageName::new("production").expect("valid stage name"),
            phase: PhaseId::Verification,
            round,
            gate,
            outcome: Outcome::Pass,
            attempts: 1,
            evidence_digest: Some(evidence.digest()),
            evidence: Some(Box::new(evidence)),
        },
    }
}
