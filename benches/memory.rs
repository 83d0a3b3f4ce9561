//! Memory per release in flight: 10,000 releases held in one process.
//!
//! Drives 10,000 releases with one [`Engine`] over one [`InMemoryStore`] on an auto-advancing
//! [`ManualClock`] through a realistic five-stage pipeline (the same one as
//! `benches/engine.rs`) to a mid-point: `dev` and `integration` promoted (five minutes of
//! sampled integration tests, a QA approval), `compliance` awaiting its second approval.
//! Then it loads every release's [`ReleaseState`] and keeps all 10,000 of them too.
//!
//! The workspace forbids `unsafe_code`, so a counting `#[global_allocator]` is not possible;
//! the figure is the growth of the process's anonymous resident memory (`RssAnon` in
//! `/proc/self/status`, Linux only), which includes allocator overhead and the spare
//! capacity of growing vectors, as a host would see it. Goal: under 20 KiB per release.
//!
//! Run with `cargo bench --bench memory`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::executor::block_on;
use promotion::machine::{GateRecord, PhaseState};
use promotion::testing::{RecordingDeployer, ScriptedGate};
use promotion::*;

const RELEASES: usize = 10_000;
const GOAL_BYTES: u64 = 20 * 1024;

fn t0() -> DateTime<Utc> {
    "2026-11-26T09:00:00Z".parse().expect("valid time")
}

fn release(tag: &str) -> Release {
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

fn who(id: &str, groups: &[&str]) -> Principal {
    Principal::new(id, groups.iter().copied()).expect("valid principal")
}

/// The realistic pipeline of `benches/engine.rs` (production verification: 30 minutes).
fn realistic_pipeline() -> Pipeline {
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
                .verification_policy(every_minute(Duration::from_secs(30 * 60)))
                .soak(Duration::from_secs(6 * 3600)),
        )
        .build()
        .expect("valid pipeline")
}

/// A field of `/proc/self/status` in bytes (`RssAnon`, `VmRSS`).
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line
        .trim_start_matches(field)
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn rss_anon() -> u64 {
    proc_status_bytes("RssAnon").expect("/proc/self/status with RssAnon (Linux)")
}

/// Takes one release to `compliance` awaiting its second approval.
async fn drive_to_midpoint(engine: &Engine, r: Release) -> ReleaseId {
    let id = engine
        .register(r, &who("ci-bot", &["ci"]))
        .await
        .expect("registered");
    let p = engine.run_until_blocked(&id).await.expect("advanced");
    assert_eq!(p.status("integration"), StageStatus::AwaitingApproval);
    engine
        .approve(&id, "integration", &who("quinn", &["qa"]), "tested")
        .await
        .expect("approved");
    let p = engine.run_until_blocked(&id).await.expect("advanced");
    assert_eq!(p.status("compliance"), StageStatus::AwaitingApproval);
    engine
        .approve(&id, "compliance", &who("sam", &["sre"]), "change record ok")
        .await
        .expect("approved");
    id
}

fn per_release(bytes: u64) -> u64 {
    bytes / RELEASES as u64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo bench -- --list` lists benchmarks; this one has no criterion entries.
        println!("memory_per_release: bench");
        return;
    }
    let pipeline = Arc::new(realistic_pipeline());
    let clock = ManualClock::auto_advancing(t0());
    let store = Arc::new(InMemoryStore::new());
    let engine = Engine::new(
        pipeline,
        store.clone(),
        Arc::new(RecordingDeployer::new()),
        Arc::new(clock),
    );
    let tags: Vec<String> = (0..RELEASES).map(|i| format!("1.{i}")).collect();

    let base = rss_anon();
    let started = Instant::now();
    let mut ids = Vec::with_capacity(RELEASES);
    for tag in &tags {
        ids.push(block_on(drive_to_midpoint(&engine, release(tag))));
    }
    let driven = started.elapsed();
    let with_store = rss_anon();

    let states: Vec<ReleaseState> = ids
        .iter()
        .map(|id| block_on(engine.state(id)).expect("state"))
        .collect();
    let with_states = rss_anon();

    // Shape of one release's history, for the breakdown.
    let events: Vec<Event> = block_on(store.read(&StreamId::for_release(&ids[0])))
        .expect("readable")
        .into_iter()
        .map(|r| r.event)
        .collect();
    let json_bytes: usize = events
        .iter()
        .map(|e| serde_json::to_vec(e).expect("serialisable").len())
        .sum();
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for e in &events {
        match kinds.iter_mut().find(|(k, _)| *k == e.body.kind()) {
            Some((_, n)) => *n += 1,
            None => kinds.push((e.body.kind(), 1)),
        }
    }
    assert_eq!(states.len(), RELEASES);
    assert!(states
        .iter()
        .all(|s| s.status("compliance") == StageStatus::AwaitingApproval));

    let store_bytes = with_store.saturating_sub(base);
    let state_bytes = with_states.saturating_sub(with_store);
    let total = per_release(with_states.saturating_sub(base));
    println!(
        "drove {RELEASES} releases to `compliance` awaiting its second approval in {driven:.1?} \
         ({:.0} µs per release)",
        driven.as_secs_f64() * 1e6 / RELEASES as f64
    );
    println!(
        "history per release: {} events ({} bytes as JSON, {} bytes inline: size_of::<Event>() \
         = {})",
        events.len(),
        json_bytes,
        events.len() * std::mem::size_of::<Event>(),
        std::mem::size_of::<Event>()
    );
    println!(
        "inline sizes: ReleaseState {} B, StageState {} B, PhaseState {} B, GateRecord {} B, \
         Release {} B",
        std::mem::size_of::<ReleaseState>(),
        std::mem::size_of::<StageState>(),
        std::mem::size_of::<PhaseState>(),
        std::mem::size_of::<GateRecord>(),
        std::mem::size_of::<Release>()
    );
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
    println!("  {}", kinds.join(", "));
    println!(
        "RssAnon: {} KiB at start, {} KiB with the store, {} KiB with the store and the states",
        base / 1024,
        with_store / 1024,
        with_states / 1024
    );
    println!(
        "store (events) per release: {} bytes; ReleaseState per release: {} bytes",
        per_release(store_bytes),
        per_release(state_bytes)
    );
    println!(
        "memory per release in flight: {total} bytes (goal < {GOAL_BYTES}): {}",
        if total < GOAL_BYTES { "met" } else { "MISSED" }
    );
    drop(states);
}
