//! Criterion benchmarks of the state machine and the engine.
//!
//! What is measured (each group's name is the prefix of its benchmark ids):
//!
//! - `decide_apply`: [`decide`] + [`apply_mut`] throughput on realistic commands, in events per
//!   second. `record_round_3_gates` is one sampling round of a three-gate verification phase
//!   (three `Pass` results with evidence, so three `GateEvaluated` events and one
//!   `PhaseWaiting`); `full_pipeline` replays every command of a whole five-stage promotion
//!   (register, entry gates, three approvals, a three-step canary rollout, a sampled
//!   verification phase and a soak) from an empty state.
//! - `replay`: rebuilding a [`ReleaseState`] from a stream of 1,000,000 events, generated
//!   once by driving `decide` (a registration, four promoted stages, then a verification
//!   phase sampled every minute). Goal: at least 1,000,000 events/s on one core.
//! - `engine`: [`Engine`] overhead with no-op gates ([`ScriptedGate::passing`]), an
//!   [`InMemoryStore`], a [`ManualClock`] and `futures::executor::block_on`: register a
//!   release and run it to `Promoted` in every stage of a five-stage pipeline. The throughput
//!   is events appended per second; divide the time by five for the time per stage.
//! - `phase_wall_time`: one phase of ten concurrent gates that each take 100 ms of real time,
//!   on [`SystemClock`] under a tokio multi-thread runtime. Goal: within 5 % of 100 ms. A
//!   summary line with the overhead is printed after each benchmark.
//!
//! Run with `cargo bench --bench engine` (all groups, about a minute) or, for one group,
//! `cargo bench --bench engine -- replay`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::{OnceCell, RefCell};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use futures::executor::block_on;
use promotion::machine::apply_mut;
use promotion::testing::{RecordingDeployer, ScriptedGate};
use promotion::HostCommand;
use promotion::*;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

#[path = "common/mod.rs"]
mod common;
use common::{approvers, realistic_pipeline, release, t0, who};

/// Five chained stages, each with one no-op entry gate, no approvals, no waits.
fn simple_pipeline() -> Pipeline {
    let names = ["dev", "integration", "compliance", "canary", "production"];
    let mut builder = Pipeline::builder("shop", "1");
    for (i, name) in names.iter().enumerate() {
        let mut stage = StageSpec::new(*name).entry_gate(ScriptedGate::passing("checks"));
        if i > 0 {
            stage = stage.after(names[i - 1]);
        }
        builder = builder.stage(stage);
    }
    builder.build().expect("valid pipeline")
}

const STAGES: [&str; 5] = ["dev", "integration", "compliance", "canary", "production"];

/// What a gate would report: a pass with a summary and a little structured data.
fn pass_result(gate: &GateName, now: DateTime<Utc>, round: u32) -> GateResult {
    let evidence = Evidence::new(format!("ci:{gate}"), now, "412 checks, 0 failed")
        .with_data(serde_json::json!({ "passed": 412, "failed": 0, "round": round }));
    GateResult {
        gate: gate.clone(),
        outcome: Outcome::Pass,
        evidence: Some(evidence),
        attempts: 1,
    }
}

fn record_round(
    stage: &StageName,
    phase: PhaseId,
    gates: &[GateName],
    now: DateTime<Utc>,
    round: u32,
) -> Command {
    Command::RecordRound {
        stage: stage.clone(),
        phase,
        results: gates.iter().map(|g| pass_result(g, now, round)).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// A pure driver: plan → command → decide → apply, with no engine, store or clock.
// ---------------------------------------------------------------------------------------------

struct PureRun {
    state: ReleaseState,
    now: DateTime<Utc>,
    events: Vec<Event>,
    /// Every command with the time it was decided at (when asked to keep them).
    commands: Vec<(Command, DateTime<Utc>)>,
}

/// Drives one release through `pipeline` as the engine would, with passing gates and the
/// [`approvers`], until every stage is finished, `stop` says so, or `max_events` events were
/// decided.
fn drive_pure(
    pipeline: &Pipeline,
    keep_commands: bool,
    max_events: usize,
    stop: impl Fn(&ReleaseState) -> bool,
) -> PureRun {
    let mut run = PureRun {
        state: ReleaseState::default(),
        now: t0(),
        events: Vec::new(),
        commands: Vec::new(),
    };
    let submit = |run: &mut PureRun, command: Command| {
        let events = decide(pipeline, &run.state, &command, run.now).expect("command accepted");
        for e in &events {
            apply_mut(&mut run.state, e);
        }
        run.events.extend(events);
        if keep_commands {
            run.commands.push((command, run.now));
        }
    };
    let register = Command::Register {
        release: release("1"),
        initiator: who("ci-bot", &["ci"]),
    };
    submit(&mut run, register);
    while run.events.len() < max_events && !stop(&run.state) {
        let next = plan(pipeline, &run.state, run.now);
        if let Some(action) = next.actions().first().cloned() {
            let command = match action {
                Action::Start { stage, .. } => Command::Start { stage, by: None },
                Action::Tick { stage, .. } => Command::Tick { stage },
                Action::Evaluate {
                    stage,
                    phase,
                    gates,
                    ..
                } => {
                    let round = run.state.stage(stage.as_str()).phase(phase).round() + 1;
                    record_round(&stage, phase, &gates, run.now, round)
                }
                Action::Deploy { stage, step, .. } => Command::RecordDeployment {
                    stage,
                    step,
                    result: Ok(()),
                },
                Action::RollBack { stage, .. } => Command::RecordRollback {
                    stage,
                    result: Ok(()),
                },
            };
            submit(&mut run, command);
            continue;
        }
        match next.waiting().first().cloned() {
            None => break,
            Some(Waiting::Until { at, .. }) => run.now = run.now.max(at),
            Some(Waiting::Approval { stage, .. }) => {
                let given = run.state.stage(stage.as_str()).approvals();
                let principal = approvers(stage.as_str())
                    .into_iter()
                    .find(|p| !given.iter().any(|a| a.principal().id == p.id))
                    .expect("an approver is left");
                let approve = Command::Approve {
                    stage,
                    principal,
                    comment: "looks good".into(),
                };
                submit(&mut run, approve);
            }
            Some(other) => panic!("the pure driver cannot handle: {other}"),
        }
    }
    run
}

// ---------------------------------------------------------------------------------------------
// 1. decide + apply throughput
// ---------------------------------------------------------------------------------------------

fn bench_decide_apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide_apply");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // One sampling round of production's verification phase, again and again: the phase needs
    // ten years of green rounds (5.3 M), so it never passes during the benchmark. (One year,
    // 526 K rounds, was fewer than warm-up and measurement take on a fast run: the phase then
    // passed and the next round was refused.)
    let pipeline = realistic_pipeline(Duration::from_secs(10 * 365 * 24 * 3600));
    let production = StageName::new("production").expect("valid name");
    let verification_running = |s: &ReleaseState| {
        s.stage("production").status() == StageStatus::Verifying
            && s.stage("production").verification().round() >= 1
    };
    let run = drive_pure(&pipeline, false, usize::MAX, verification_running);
    assert!(verification_running(&run.state));
    let gates = pipeline
        .stage("production")
        .expect("stage")
        .gate_names(PhaseId::Verification)
        .to_vec();
    let mut state = run.state;
    let mut now = run.now;
    let mut round = state.stage("production").verification().round();
    group.throughput(Throughput::Elements(gates.len() as u64 + 1));
    group.bench_function("record_round_3_gates", |b| {
        b.iter_batched(
            || {
                now += chrono::Duration::seconds(60);
                round += 1;
                (
                    record_round(&production, PhaseId::Verification, &gates, now, round),
                    now,
                )
            },
            |(command, at)| {
                let events = decide(&pipeline, &state, &command, at).expect("accepted");
                for e in &events {
                    apply_mut(&mut state, e);
                }
                debug_assert_eq!(events.len(), 4);
                events
            },
            BatchSize::SmallInput,
        )
    });

    // Every command of a whole promotion, from an empty state.
    let pipeline = realistic_pipeline(Duration::from_secs(30 * 60));
    let run = drive_pure(&pipeline, true, usize::MAX, |_| false);
    for s in STAGES {
        assert_eq!(run.state.status(s), StageStatus::Promoted, "{s}");
    }
    let commands = run.commands;
    println!(
        "decide_apply/full_pipeline: {} commands, {} events per promotion",
        commands.len(),
        run.events.len()
    );
    group.throughput(Throughput::Elements(run.events.len() as u64));
    group.bench_function("full_pipeline", |b| {
        b.iter(|| {
            let mut state = ReleaseState::default();
            for (command, at) in &commands {
                let events = decide(&pipeline, &state, command, *at).expect("accepted");
                for e in &events {
                    apply_mut(&mut state, e);
                }
            }
            state
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// 2. Replay of 1,000,000 events
// ---------------------------------------------------------------------------------------------

const REPLAY_EVENTS: usize = 1_000_000;

/// Builds the 1,000,000-event stream by driving `decide`: a registration, four stages
/// promoted, then production's verification phase sampled every minute.
fn million_events() -> Vec<Event> {
    let started = Instant::now();
    let pipeline = realistic_pipeline(Duration::from_secs(365 * 24 * 3600));
    let mut events = drive_pure(&pipeline, false, REPLAY_EVENTS, |_| false).events;
    events.truncate(REPLAY_EVENTS);
    assert_eq!(events.len(), REPLAY_EVENTS);
    let gate_evaluated = events
        .iter()
        .filter(|e| e.body.kind() == "gate_evaluated")
        .count();
    println!(
        "replay: generated {} events ({} gate_evaluated) by driving decide in {:.1?}",
        events.len(),
        gate_evaluated,
        started.elapsed()
    );
    let state = ReleaseState::replay(events.iter());
    assert_eq!(state.version(), REPLAY_EVENTS as u64);
    assert_eq!(state.status("production"), StageStatus::Verifying);
    events
}

fn bench_replay(c: &mut Criterion) {
    // Built on first use, so that a filter excluding this group skips the generation.
    let events: OnceCell<Vec<Event>> = OnceCell::new();
    let mut group = c.benchmark_group("replay");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .throughput(Throughput::Elements(REPLAY_EVENTS as u64));
    group.bench_function("replay_1m_events", |b| {
        let events = events.get_or_init(million_events);
        b.iter(|| ReleaseState::replay(black_box(events).iter()))
    });
    group.bench_function("apply_mut_fold_1m_events", |b| {
        let events = events.get_or_init(million_events);
        b.iter(|| {
            let mut state = ReleaseState::default();
            for e in black_box(events) {
                apply_mut(&mut state, e);
            }
            state
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// 3. Engine overhead per stage transition
// ---------------------------------------------------------------------------------------------

fn engine(pipeline: &Arc<Pipeline>, clock: ManualClock) -> (Engine, Arc<InMemoryStore>) {
    let store = Arc::new(InMemoryStore::new());
    let engine = Engine::new(
        pipeline.clone(),
        store.clone(),
        Arc::new(RecordingDeployer::new()),
        Arc::new(clock),
    );
    (engine, store)
}

/// Registers and runs a release to Promoted everywhere; returns the events appended.
fn run_simple(pipeline: &Arc<Pipeline>, r: &Release) -> usize {
    let (engine, store) = engine(pipeline, ManualClock::at(t0()));
    block_on(async {
        let id = engine
            .register(r.clone(), &who("ci-bot", &["ci"]))
            .await
            .expect("registered");
        let p = engine.run_until_blocked(&id).await.expect("advanced");
        debug_assert_eq!(p.status("production"), StageStatus::Promoted);
        count(&store, &id).await
    })
}

/// Registers and runs a release through the realistic pipeline, approving as it goes.
fn run_realistic(pipeline: &Arc<Pipeline>, r: &Release) -> usize {
    let (engine, store) = engine(pipeline, ManualClock::auto_advancing(t0()));
    block_on(async {
        let id = engine
            .register(r.clone(), &who("ci-bot", &["ci"]))
            .await
            .expect("registered");
        loop {
            let p = engine.run_until_blocked(&id).await.expect("advanced");
            let Some(Waiting::Approval { stage, .. }) = p.waiting().first() else {
                debug_assert_eq!(p.status("production"), StageStatus::Promoted);
                break;
            };
            let given = p.state().stage(stage.as_str()).approvals();
            let principal = approvers(stage.as_str())
                .into_iter()
                .find(|a| !given.iter().any(|g| g.principal().id == a.id))
                .expect("an approver is left");
            engine
                .submit(
                    &id,
                    HostCommand::approve(stage.as_str(), &principal, "looks good").unwrap(),
                )
                .await
                .expect("approved");
        }
        count(&store, &id).await
    })
}

async fn count(store: &InMemoryStore, id: &ReleaseId) -> usize {
    store
        .read(&StreamId::for_release(id))
        .await
        .expect("readable")
        .len()
}

fn bench_engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let r = release("1");

    let simple = Arc::new(simple_pipeline());
    let events = run_simple(&simple, &r);
    println!("engine/simple_5_stages_to_promoted: {events} events appended per run (5 stages)");
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function("simple_5_stages_to_promoted", |b| {
        b.iter(|| run_simple(&simple, &r))
    });

    let realistic = Arc::new(realistic_pipeline(Duration::from_secs(30 * 60)));
    let events = run_realistic(&realistic, &r);
    println!(
        "engine/realistic_5_stages_to_promoted: {events} events appended per run (5 stages, \
         3 approvals)"
    );
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function("realistic_5_stages_to_promoted", |b| {
        b.iter(|| run_realistic(&realistic, &r))
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// 4. Wall time of a phase of ten concurrent 100 ms gates
// ---------------------------------------------------------------------------------------------

/// A gate that takes 100 ms of real time on the tokio timer, then passes.
#[derive(Debug)]
struct TokioSleepGate(String);

#[async_trait]
impl Gate for TokioSleepGate {
    fn name(&self) -> &str {
        &self.0
    }
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        tokio::time::sleep(GATE_LATENCY).await;
        Ok(Verdict::Pass(Evidence::new(
            self.name(),
            ctx.now(),
            "slept 100 ms",
        )))
    }
}

const GATE_LATENCY: Duration = Duration::from_millis(100);

fn ten_gate_pipeline(gate: impl Fn(usize) -> GateSpec) -> Arc<Pipeline> {
    let mut stage = StageSpec::new("prod");
    for i in 0..10 {
        stage = stage.entry_gate(gate(i));
    }
    Arc::new(
        Pipeline::builder("shop", "1")
            .stage(stage)
            .build()
            .expect("valid pipeline"),
    )
}

fn bench_phase_wall_time(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("phase_wall_time");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let variants = [
        (
            "10_gates_100ms_tokio_sleep",
            ten_gate_pipeline(|i| GateSpec::new(Arc::new(TokioSleepGate(format!("g{i}"))))),
        ),
        (
            "10_gates_100ms_scripted_latency_system_clock",
            ten_gate_pipeline(|i| {
                ScriptedGate::passing(format!("g{i}"))
                    .with_latency(GATE_LATENCY)
                    .into()
            }),
        ),
    ];
    for (name, pipeline) in variants {
        let samples: RefCell<Vec<Duration>> = RefCell::new(Vec::new());
        let mut tag = 0u64;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    tag += 1;
                    let engine = Engine::new(
                        pipeline.clone(),
                        Arc::new(InMemoryStore::new()),
                        Arc::new(RecordingDeployer::new()),
                        Arc::new(SystemClock),
                    );
                    let id = rt
                        .block_on(engine.register(release(&tag.to_string()), &who("ci", &["ci"])))
                        .expect("registered");
                    let start = Instant::now();
                    let p = rt.block_on(engine.advance(&id)).expect("advanced");
                    let took = start.elapsed();
                    assert_eq!(p.status("prod"), StageStatus::Promoted);
                    samples.borrow_mut().push(took);
                    total += took;
                }
                total
            })
        });
        let mut s = samples.into_inner();
        if s.is_empty() {
            continue; // filtered out
        }
        s.sort();
        let mean = s.iter().sum::<Duration>() / s.len().max(1) as u32;
        let overhead = (mean.as_secs_f64() / GATE_LATENCY.as_secs_f64() - 1.0) * 100.0;
        println!(
            "phase_wall_time/{name}: {} runs (incl. warm-up), min {:.2?}, median {:.2?}, \
             mean {:.2?}, max {:.2?}; mean overhead vs 100 ms: {overhead:+.2} % (goal < 5 %)",
            s.len(),
            s.first().copied().unwrap_or_default(),
            s.get(s.len() / 2).copied().unwrap_or_default(),
            mean,
            s.last().copied().unwrap_or_default(),
        );
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_decide_apply(&mut c);
    bench_replay(&mut c);
    bench_engine(&mut c);
    bench_phase_wall_time(&mut c);
    c.final_summary();
}
