//! Replica benchmarks: durable appends with 1 and 8 replicas on PostgreSQL beside SQLite, and
//! promotions per second that replicas complete together.
//!
//! A plain `main` (no criterion), one process, printing a table:
//!
//! 1. `append`: each replica is an [`AuditStore`] of its own (its own connections and writer
//!    thread, as a separate process would have) over the same log, with 8 concurrent appender
//!    tasks, each appending one `GateEvaluated` event with evidence at a time to its own stream
//!    with `ExpectedVersion::Exact` and waiting for the durable acknowledgement. Checkpoints
//!    are signed. Configurations: SQLite file and PostgreSQL schema, with 1 and 8 replicas,
//!    interleaved over 3 rounds of 2 s each so that the machine's drift hits all alike.
//! 2. `promote`: 40 releases through the five-stage pipeline of `tests/support` (no-op gates,
//!    a three-step canary: 35 stage transitions, 7 deployer calls and about 60 events per
//!    release), driven to production by 1 or 2 replica engines at once (leases and fencing
//!    on), on SQLite and on PostgreSQL. Reports releases and stage promotions per second.
//!
//! PostgreSQL is read from `PROMOTION_TEST_POSTGRES_URL`; without it the PostgreSQL rows are
//! skipped (said in the table). Run with `cargo bench --bench replicas`, or name parts:
//! `cargo bench --bench replicas -- promote`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::error::Error;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::gate_event;
use promotion::audit::postgres::harness::{open_store, SchemaGuard};
use promotion::audit::{AuditOptions, AuditStore, CheckpointSigner};
use promotion::{
    Engine, EventStore, ExpectedVersion, Principal, ReleaseId, ReplicaId, ReplicaOptions, StreamId,
    SystemClock,
};

type Res<T> = Result<T, Box<dyn Error>>;

const ROUNDS: usize = 3;
const SLICE: Duration = Duration::from_secs(2);
const APPENDERS_PER_REPLICA: u64 = 8;
const RELEASES: usize = 40;

fn options() -> Res<AuditOptions> {
    let signer = CheckpointSigner::from_seed("bench.promotion.test", [7u8; 32])?;
    Ok(AuditOptions::new("bench.promotion.test").signer(signer))
}

fn runtime() -> Res<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Where a configuration keeps its log.
enum Place {
    Sqlite(std::path::PathBuf),
    Postgres { url: String, guard: SchemaGuard },
}

impl Place {
    fn open(&self) -> Res<AuditStore> {
        Ok(match self {
            Place::Sqlite(path) => AuditStore::open_sqlite(path, options()?)?,
            Place::Postgres { url, guard } => open_store(url, &guard.schema, options()?),
        })
    }
    fn name(&self) -> &'static str {
        match self {
            Place::Sqlite(_) => "SQLite",
            Place::Postgres { .. } => "PostgreSQL",
        }
    }
}

fn place(kind: &str, dir: &Path, n: usize, url: Option<&str>) -> Option<Place> {
    match kind {
        "sqlite" => Some(Place::Sqlite(dir.join(format!("bench-{n}.db")))),
        _ => url.map(|url| Place::Postgres {
            url: url.to_owned(),
            guard: SchemaGuard::new(url),
        }),
    }
}

/// One append configuration: its replicas' stores and the streams' versions.
struct AppendConfig {
    place: Place,
    replicas: Vec<AuditStore>,
    versions: Vec<Arc<AtomicU64>>,
    appends: u64,
    seconds: f64,
}

impl AppendConfig {
    fn new(place: Place, replicas: usize) -> Res<Self> {
        let stores = (0..replicas)
            .map(|_| place.open())
            .collect::<Res<Vec<_>>>()?;
        let streams = replicas as u64 * APPENDERS_PER_REPLICA;
        Ok(AppendConfig {
            place,
            replicas: stores,
            versions: (0..streams).map(|_| Arc::new(AtomicU64::new(0))).collect(),
            appends: 0,
            seconds: 0.0,
        })
    }

    fn run(&mut self, rt: &tokio::runtime::Runtime) -> Res<()> {
        let deadline = Instant::now() + SLICE;
        let started = Instant::now();
        let count = Arc::new(AtomicU64::new(0));
        rt.block_on(async {
            let mut tasks = Vec::new();
            for (i, version) in self.versions.iter().enumerate() {
                let store = self.replicas[i / APPENDERS_PER_REPLICA as usize].clone();
                let (version, count) = (version.clone(), count.clone());
                let stream = StreamId::new(format!("release-{i:064x}")).expect("valid stream");
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let v = version.load(Ordering::SeqCst);
                        let round = u32::try_from(v).unwrap_or(u32::MAX);
                        let next = store
                            .append(&stream, ExpectedVersion::Exact(v), &[gate_event(round)])
                            .await
                            .expect("append");
                        version.store(next, Ordering::SeqCst);
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            for t in tasks {
                t.await.expect("appender task");
            }
        });
        self.appends += count.load(Ordering::Relaxed);
        self.seconds += started.elapsed().as_secs_f64();
        Ok(())
    }
}

fn append_part(dir: &Path, url: Option<&str>) -> Res<()> {
    let rt = runtime()?;
    let mut configs = Vec::new();
    for (n, (kind, replicas)) in [("sqlite", 1), ("sqlite", 8), ("pg", 1), ("pg", 8)]
        .into_iter()
        .enumerate()
    {
        match place(kind, dir, n, url) {
            Some(p) => configs.push((replicas, AppendConfig::new(p, replicas)?)),
            None => println!("append  PostgreSQL, {replicas} replica(s): skipped (no PROMOTION_TEST_POSTGRES_URL)"),
        }
    }
    for _ in 0..ROUNDS {
        for (_, c) in &mut configs {
            c.run(&rt)?;
        }
    }
    println!(
        "{:<8}{:<12}{:>9}{:>11}{:>14}",
        "part", "backend", "replicas", "appenders", "appends/s"
    );
    for (replicas, c) in &configs {
        println!(
            "{:<8}{:<12}{:>9}{:>11}{:>14.0}",
            "append",
            c.place.name(),
            replicas,
            *replicas as u64 * APPENDERS_PER_REPLICA,
            c.appends as f64 / c.seconds
        );
    }
    Ok(())
}

fn promote_once(place: &Place, replicas: usize) -> Res<(f64, u64)> {
    let stores = (0..replicas)
        .map(|_| place.open())
        .collect::<Res<Vec<_>>>()?;
    let ci = Principal::new("ci", ["ci"])?;
    let registrar = Engine::new(
        support::pipeline(),
        Arc::new(stores[0].clone()),
        Arc::new(support::Ledger::default()),
        Arc::new(SystemClock),
    );
    let rt = runtime()?;
    let ids: Vec<ReleaseId> = rt.block_on(async {
        let mut ids = Vec::new();
        for i in 0..RELEASES {
            ids.push(registrar.register(support::release(i), &ci).await?);
        }
        Ok::<_, promotion::EngineError>(ids)
    })?;
    let ledger = support::Ledger::default();
    let engines = stores
        .iter()
        .enumerate()
        .map(|(i, store)| {
            let name = format!("replica-{i}");
            Ok(Engine::new(
                support::pipeline(),
                Arc::new(store.clone()),
                Arc::new(ledger.for_replica(&name)),
                Arc::new(SystemClock),
            )
            .replica(ReplicaOptions::new(
                ReplicaId::new(name)?,
                Duration::from_secs(30),
            ))?)
        })
        .collect::<Res<Vec<_>>>()?;
    let started = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = engines
            .into_iter()
            .enumerate()
            .map(|(i, engine)| {
                let ids = ids.clone();
                tokio::spawn(async move { support::drive_all(&engine, &ids, i).await })
            })
            .collect();
        for t in tasks {
            t.await.expect("replica task");
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let calls = ledger.calls().len();
    assert_eq!(
        calls,
        RELEASES * support::STEPS_PER_RELEASE,
        "every step once"
    );
    let events = rt.block_on(stores[0].size())?;
    Ok((seconds, events))
}

fn promote_part(dir: &Path, url: Option<&str>) -> Res<()> {
    println!(
        "{:<8}{:<12}{:>9}{:>11}{:>14}{:>14}{:>12}",
        "part", "backend", "replicas", "releases", "releases/s", "promotions/s", "events/s"
    );
    for (n, (kind, replicas)) in [("sqlite", 1), ("sqlite", 2), ("pg", 1), ("pg", 2)]
        .into_iter()
        .enumerate()
    {
        let Some(place) = place(kind, dir, 100 + n, url) else {
            println!("promote PostgreSQL, {replicas} replica(s): skipped (no PROMOTION_TEST_POSTGRES_URL)");
            continue;
        };
        let (seconds, events) = promote_once(&place, replicas)?;
        println!(
            "{:<8}{:<12}{:>9}{:>11}{:>14.1}{:>14.1}{:>12.0}",
            "promote",
            place.name(),
            replicas,
            RELEASES,
            RELEASES as f64 / seconds,
            (RELEASES * 5) as f64 / seconds,
            events as f64 / seconds
        );
    }
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |part: &str| args.is_empty() || args.iter().any(|a| a == part);
    let url = std::env::var("PROMOTION_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    let dir = tempfile::tempdir()?;
    println!(
        "replica benchmarks, {} CPUs, load {} at start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    if want("append") {
        append_part(dir.path(), url.as_deref())?;
    }
    if want("promote") {
        promote_part(dir.path(), url.as_deref())?;
    }
    println!("load {} at end", loadavg());
    Ok(())
}
