//! Memory per release in flight: 10,000 releases in one process.
//!
//! Drives 10,000 releases through a realistic five-stage pipeline (the same one as
//! `benches/engine.rs`) on an auto-advancing [`ManualClock`] to a mid-point: `dev` and
//! `integration` promoted (five minutes of sampled integration tests, a QA approval),
//! `compliance` awaiting its second approval. Two configurations:
//!
//! 1. `in-memory`: one [`Engine`] over one [`InMemoryStore`], the test store, which keeps
//!    every event in RAM; the releases are driven one after another. Then it loads every
//!    release's [`ReleaseState`] and keeps all 10,000 of them too. Reported: store events +
//!    states per release.
//! 2. `sqlite`: the library's default for hosts, one [`Engine`] over the embedded SQLite
//!    [`AuditStore`] (`AuditStore::open_sqlite` in a temporary directory, signed checkpoints),
//!    run in a child process so that it starts from a fresh heap. The releases are driven 500
//!    at a time with `futures::future::join_all`, so that durable appends are group-committed.
//!    The engine holds no state between calls and SQLite's page caches are bounded, so the
//!    figure is the process's whole RSS growth from before opening the store to the end,
//!    divided by 10,000. Separately, it loads and holds every release's [`ReleaseState`]
//!    (read from SQLite and replayed, as the engine does within a call) to give the size of
//!    one state.
//!
//! The workspace forbids `unsafe_code`, so a counting `#[global_allocator]` is not possible;
//! the figures are growths of the process's resident memory (`RssAnon`, and `VmRSS` for the
//! SQLite configuration, from `/proc/self/status`, Linux only), which include allocator
//! overhead and the spare capacity of growing vectors, as a host would see them.
//! Goal: under 20 KiB per release in flight.
//!
//! Run with `cargo bench --bench memory` (both, under a minute after the build), or name one:
//! `cargo bench --bench memory -- in-memory` or `cargo bench --bench memory -- sqlite`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use futures::future::join_all;
use promotion::audit::{AuditOptions, AuditStore, CheckpointSigner};
use promotion::machine::{GateRecord, PhaseState};
use promotion::testing::RecordingDeployer;
use promotion::HostCommand;
use promotion::*;

const RELEASES: usize = 10_000;
const GOAL_BYTES: u64 = 20 * 1024;
/// Releases driven at once in the SQLite configuration.
const CONCURRENT: usize = 500;
/// Set (to `sqlite`) in the child process that runs the second configuration.
const CHILD_ENV: &str = "PROMOTION_BENCH_MEMORY_CHILD";

#[path = "common/mod.rs"]
mod common;
use common::{release, t0, who};

/// The realistic pipeline of `benches/engine.rs` (production verification: 30 minutes).
fn realistic_pipeline() -> Pipeline {
    common::realistic_pipeline(Duration::from_secs(30 * 60))
}

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
        .submit(
            &id,
            HostCommand::approve("integration", &who("quinn", &["qa"]), "tested").unwrap(),
        )
        .await
        .expect("approved");
    let p = engine.run_until_blocked(&id).await.expect("advanced");
    assert_eq!(p.status("compliance"), StageStatus::AwaitingApproval);
    engine
        .submit(
            &id,
            HostCommand::approve("compliance", &who("sam", &["sre"]), "change record ok").unwrap(),
        )
        .await
        .expect("approved");
    id
}

fn per_release(bytes: u64) -> u64 {
    bytes / RELEASES as u64
}

fn status(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// `/proc/loadavg`'s three load averages, for the record.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Configuration 1: one [`Engine`] over one [`InMemoryStore`] (every event in RAM), plus all
/// 10,000 [`ReleaseState`]s held.
fn in_memory() {
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
    println!("== configuration 1: InMemoryStore (the test store: every event in RAM) ==");
    println!(
        "drove {RELEASES} releases one after another to `compliance` awaiting its second \
         approval in {driven:.1?} ({:.0} µs per release)",
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
        "store (events) per release: {} bytes; ReleaseState per release: {} bytes (its \
         Release shared with the stored Registered event)",
        per_release(store_bytes),
        per_release(state_bytes)
    );
    println!(
        "[in-memory store] memory per release in flight: {total} bytes (goal < {GOAL_BYTES}): \
         {}",
        status(total < GOAL_BYTES)
    );
    drop(states);
}

/// Resident memory of this process, from `/proc/self/status`.
#[derive(Clone, Copy)]
struct Rss {
    anon: u64,
    file: u64,
    shmem: u64,
    total: u64,
}

fn rss() -> Rss {
    let get = |f: &str| proc_status_bytes(f).expect("/proc/self/status (Linux)");
    Rss {
        anon: get("RssAnon"),
        file: get("RssFile"),
        shmem: get("RssShmem"),
        total: get("VmRSS"),
    }
}

fn kib(bytes: u64) -> String {
    format!("{} KiB", bytes / 1024)
}

/// Configuration 2, run in a child process (a fresh heap): the library's default for hosts,
/// the engine over the embedded SQLite [`AuditStore`] with signed checkpoints. The engine
/// holds nothing between calls; SQLite's page caches are bounded.
fn sqlite_child() {
    let dir = tempfile::Builder::new()
        .prefix("promotion-memory-bench")
        .tempdir()
        .expect("temporary directory");
    let path = dir.path().join("audit.db");
    let tags: Vec<String> = (0..RELEASES).map(|i| format!("1.{i}")).collect();
    let pipeline = Arc::new(realistic_pipeline());
    let base = rss();

    let signer = CheckpointSigner::from_seed("bench", [1; 32]).expect("valid signer");
    let audit = AuditStore::open_sqlite(&path, AuditOptions::new("bench").signer(signer))
        .expect("audit store");
    let engine = Engine::new(
        pipeline,
        Arc::new(audit.clone()),
        Arc::new(RecordingDeployer::new()),
        Arc::new(ManualClock::auto_advancing(t0())),
    );
    let opened = rss();

    // Drive the releases CONCURRENT at a time, so that durable appends are group-committed.
    let started = Instant::now();
    let mut ids: Vec<ReleaseId> = Vec::with_capacity(RELEASES);
    let mut marks: Vec<(usize, Rss)> = Vec::new();
    for chunk in tags.chunks(CONCURRENT) {
        let driven = block_on(join_all(
            chunk
                .iter()
                .map(|tag| drive_to_midpoint(&engine, release(tag))),
        ));
        ids.extend(driven);
        if [1_000, 2_500, 5_000, 7_500, RELEASES].contains(&ids.len()) {
            marks.push((ids.len(), rss()));
        }
    }
    let driven = started.elapsed();
    let after = rss();
    let peak = proc_status_bytes("VmHWM").expect("VmHWM (Linux)");
    let entries = block_on(audit.size()).expect("log size");
    let disk: u64 = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .sum();

    // One release's state as the engine holds it during a call: load every release's state
    // (read and decoded from SQLite, replayed) and hold all of them.
    let loading = Instant::now();
    let states: Vec<ReleaseState> = ids
        .iter()
        .map(|id| block_on(engine.state(id)).expect("state"))
        .collect();
    let loaded = loading.elapsed();
    let with_states = rss();
    assert!(states
        .iter()
        .all(|s| s.status("compliance") == StageStatus::AwaitingApproval));

    println!(
        "== configuration 2: the default for hosts: AuditStore::open_sqlite (signed \
         checkpoints, WAL, synchronous = FULL), file in {} ==",
        dir.path().display()
    );
    println!(
        "drove {RELEASES} releases, {CONCURRENT} at a time (futures::future::join_all), to \
         `compliance` awaiting its second approval in {driven:.1?} ({:.0} µs per release); \
         {entries} entries in the log ({:.1} per release), {:.1} MiB on disk",
        driven.as_secs_f64() * 1e6 / RELEASES as f64,
        entries as f64 / RELEASES as f64,
        disk as f64 / 1_048_576.0
    );
    println!(
        "RSS before opening the store: {} anon, {} file, {} shmem, {} total",
        kib(base.anon),
        kib(base.file),
        kib(base.shmem),
        kib(base.total)
    );
    println!(
        "RSS growth from before opening the store (RssAnon / VmRSS):  opened: {} / {}",
        kib(opened.anon - base.anon),
        kib(opened.total - base.total)
    );
    for (n, r) in &marks {
        println!(
            "  {n:>6} releases in flight: {} / {}",
            kib(r.anon.saturating_sub(base.anon)),
            kib(r.total.saturating_sub(base.total))
        );
    }
    println!(
        "  peak VmRSS (VmHWM) while driving: {} ({} above the start)",
        kib(peak),
        kib(peak.saturating_sub(base.total))
    );
    if let [(n1, r1), .., (n2, r2)] = marks.as_slice() {
        println!(
            "  marginal growth from {n1} to {n2} releases: {} / {} bytes per release",
            r2.anon.saturating_sub(r1.anon) / (n2 - n1) as u64,
            r2.total.saturating_sub(r1.total) / (n2 - n1) as u64
        );
    }
    let growth_anon = per_release(after.anon.saturating_sub(base.anon));
    let growth_total = per_release(after.total.saturating_sub(base.total));
    let state_bytes = per_release(with_states.anon.saturating_sub(after.anon));
    println!(
        "loaded and held all {RELEASES} ReleaseStates in {loaded:.1?}: RssAnon +{}",
        kib(with_states.anon.saturating_sub(after.anon))
    );
    println!(
        "[SQLite audit store, default] memory per release in flight: {growth_total} bytes of \
         VmRSS growth ({growth_anon} bytes of RssAnon), everything since before opening the \
         store divided by {RELEASES} (goal < {GOAL_BYTES}): {}",
        status(growth_total.max(growth_anon) < GOAL_BYTES)
    );
    println!(
        "[SQLite audit store, default] one release's ReleaseState as the engine holds it during \
         a call: {state_bytes} bytes (its own Release included; not kept between calls)"
    );
    drop(states);
    drop(engine);
    drop(audit);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo bench -- --list` lists benchmarks; this one has no criterion entries.
        println!("memory_per_release: bench");
        return;
    }
    if std::env::var(CHILD_ENV).as_deref() == Ok("sqlite") {
        sqlite_child();
        return;
    }
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |p: &str| parts.is_empty() || parts.iter().any(|a| a == p);
    println!("memory bench: load average at start {}", loadavg());
    if run("in-memory") {
        in_memory();
    }
    if run("sqlite") {
        // A child process, so that the first configuration's freed memory cannot be reused
        // and hide this one's growth.
        let status = std::process::Command::new(std::env::current_exe().expect("this binary"))
            .env(CHILD_ENV, "sqlite")
            .status()
            .expect("child process");
        assert!(
            status.success(),
            "the SQLite configuration failed: {status}"
        );
    }
    println!("memory bench: load average at end {}", loadavg());
}
