//! The reference gates inside the engine, on the virtual clock: what their verdicts make the
//! engine do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::executor::block_on;
use promotion::gates::window::Window;
use promotion::gates::{ChangeRecordGate, DeploymentWindowGate};
use promotion::testing::RecordingDeployer;
use promotion::HostCommand;
use promotion::*;

fn release() -> Release {
    Release::builder(
        "api 2.0",
        "git@example.com:shop/api",
        "d".repeat(40),
        "2026-11-27T08:00:00Z".parse().unwrap(),
    )
    .artifact("image", format!("sha256:{}", "cd".repeat(32)))
    .builder("ci")
    .build()
    .unwrap()
}

fn engine(pipeline: Pipeline, clock: &ManualClock) -> (Engine, RecordingDeployer) {
    let deployer = RecordingDeployer::new();
    let engine = Engine::new(
        pipeline,
        Arc::new(InMemoryStore::new()),
        Arc::new(deployer.clone()),
        Arc::new(clock.clone()),
    );
    (engine, deployer)
}

#[test]
fn outside_its_window_a_release_waits_for_the_next_opening_instead_of_failing() {
    let window = DeploymentWindowGate::builder()
        .window(Window::new(["mon-fri"], "09:00", "17:00", "Europe/Berlin").unwrap())
        .build()
        .unwrap();
    let pipeline = Pipeline::builder("shop", "1")
        .stage(StageSpec::new("production").entry_gate(window))
        .build()
        .unwrap();
    // Saturday 2026-11-28, 12:00 UTC: the next opening is Monday 09:00 CET = 08:00 UTC.
    let saturday: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
    let clock = ManualClock::at(saturday);
    let (engine, deployer) = engine(pipeline, &clock);
    let id = block_on(engine.register(release(), &Principal::new("ci", ["ci"]).unwrap())).unwrap();
    let p = block_on(engine.advance(&id)).unwrap();
    assert_eq!(p.status("production"), StageStatus::Checking);
    let monday: DateTime<Utc> = "2026-11-30T08:00:00Z".parse().unwrap();
    assert_eq!(p.next_wakeup(), Some(monday));
    assert!(
        deployer.calls().is_empty(),
        "nothing deploys outside the window"
    );
    // A minute early: still waiting. At the opening: it deploys.
    clock.set(monday - chrono::Duration::minutes(1));
    let p = block_on(engine.advance(&id)).unwrap();
    assert_eq!(p.status("production"), StageStatus::Checking);
    clock.set(monday);
    let p = block_on(engine.advance(&id)).unwrap();
    assert_eq!(p.status("production"), StageStatus::Promoted);
    assert_eq!(deployer.weights("production"), [100]);
}

#[test]
fn a_high_risk_change_record_brings_in_the_change_advisory_board() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("change.toml");
    std::fs::write(
        &record,
        r#"summary = "New payment provider"
release_notes = "Card payments move to PayCo."
rollback_plan = "shipctl rollback checkout"
ticket = "CHG-1234"
[risk]
level = "high"
assessment = "All card payments take the new path."
"#,
    )
    .unwrap();
    let pipeline = Pipeline::builder("shop", "1")
        .stage(
            StageSpec::new("compliance")
                .entry_gate(
                    ChangeRecordGate::builder(record.display().to_string())
                        .build()
                        .unwrap(),
                )
                .approval(ApprovalPolicy::new(ApprovalRule::all([
                    ApprovalRule::quorum("sre", 1).unwrap(),
                    ApprovalRule::when("change-record", "risk", "high", {
                        ApprovalRule::quorum("cab", 1).unwrap()
                    })
                    .unwrap(),
                ]))),
        )
        .build()
        .unwrap();
    let clock = ManualClock::at("2026-11-26T09:00:00Z".parse().unwrap());
    let (engine, _) = engine(pipeline, &clock);
    let id = block_on(engine.register(release(), &Principal::new("ci", ["ci"]).unwrap())).unwrap();
    block_on(engine.advance(&id)).unwrap();
    let sre = Principal::new("sam", ["sre"]).unwrap();
    block_on(engine.submit(&id, HostCommand::approve("compliance", &sre, "ok").unwrap())).unwrap();
    let p = block_on(engine.advance(&id)).unwrap();
    assert_eq!(p.status("compliance"), StageStatus::AwaitingApproval);
    let cab = Principal::new("carl", ["cab"]).unwrap();
    block_on(engine.submit(
        &id,
        HostCommand::approve("compliance", &cab, "risk accepted").unwrap(),
    ))
    .unwrap();
    let p = block_on(engine.advance(&id)).unwrap();
    assert_eq!(p.status("compliance"), StageStatus::Promoted);
}
