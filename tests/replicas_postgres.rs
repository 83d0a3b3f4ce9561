//! Replicas on one PostgreSQL: engines in separate tasks and in separate processes drive the
//! same 50 releases at once, and a replica process SIGKILLed mid-rollout is taken over.
//!
//! Needs `PROMOTION_TEST_POSTGRES_URL`; without it each test says loudly that it is skipped,
//! and under CI (`CI` set) it fails instead. Each test works in a schema of its own, dropped
//! afterwards. Child processes are this test binary re-run with `PROMOTION_REPLICA_CHILD` set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use promotion::audit::postgres::harness::{open_store, SchemaGuard};
use promotion::audit::{AuditOptions, AuditStore, CheckpointSigner};
use promotion::*;
use support::*;

/// The test database, or `None` after saying loudly that the test is skipped.
fn url() -> Option<String> {
    required_env(
        &["PROMOTION_TEST_POSTGRES_URL"],
        "the PostgreSQL replica tests",
    )
    .map(|mut v| v.remove(0))
}

fn options() -> AuditOptions {
    AuditOptions::new("replicas.promotion.test")
        .signer(CheckpointSigner::from_seed("replicas.promotion.test", [5u8; 32]).unwrap())
}

fn ci() -> Principal {
    Principal::new("ci", ["ci"]).unwrap()
}

fn engine(store: AuditStore, deployer: Arc<dyn Deployer>, name: &str, ttl: Duration) -> Engine {
    let mut replica = ReplicaOptions::new(ReplicaId::new(name).unwrap(), ttl);
    replica.poll = ttl / 5;
    Engine::new(pipeline(), Arc::new(store), deployer, Arc::new(SystemClock))
        .replica(replica)
        .unwrap()
}

/// Registers releases 0..n in the log.
fn register(store: &AuditStore, n: usize) -> Vec<ReleaseId> {
    let e = Engine::new(
        pipeline(),
        Arc::new(store.clone()),
        Arc::new(Ledger::default()),
        Arc::new(SystemClock),
    );
    (0..n)
        .map(|i| futures::executor::block_on(e.register(release(i), &ci())).unwrap())
        .collect()
}

/// Checks the log after a race: it verifies, every release is promoted once per stage, every
/// rollout step is recorded once, and the streams hold every event (versions 1..=n, no gaps).
fn check_log(store: &AuditStore, ids: &[ReleaseId]) {
    let report = futures::executor::block_on(store.verify(None)).unwrap();
    let mut total = 0;
    for id in ids {
        let recorded = futures::executor::block_on(store.read(&StreamId::for_release(id))).unwrap();
        let versions: Vec<u64> = recorded.iter().map(|r| r.version).collect();
        assert_eq!(versions, (1..=recorded.len() as u64).collect::<Vec<_>>());
        total += recorded.len() as u64;
        let events: Vec<Event> = recorded.into_iter().map(|r| r.event).collect();
        assert_eq!(
            ReleaseState::replay(&events).status("production"),
            StageStatus::Promoted
        );
        let mut promoted = BTreeMap::new();
        let mut steps = BTreeMap::new();
        for e in &events {
            match &e.body {
                EventBody::StagePromoted { stage } => {
                    *promoted.entry(stage.to_string()).or_insert(0) += 1
                }
                EventBody::StepDeployed { stage, step, .. } => {
                    *steps.entry((stage.to_string(), *step)).or_insert(0) += 1
                }
                _ => {}
            }
        }
        assert_eq!(promoted.len(), 5, "{id}: {promoted:?}");
        assert!(promoted.values().all(|&n| n == 1), "{id}: {promoted:?}");
        assert_eq!(steps.len(), STEPS_PER_RELEASE, "{id}: {steps:?}");
        assert!(steps.values().all(|&n| n == 1), "{id}: {steps:?}");
    }
    assert_eq!(
        report.entries, total,
        "the log holds exactly the streams' events"
    );
}

#[test]
fn replicas_in_tasks_race_on_postgres() {
    let Some(url) = url() else { return };
    for replicas in [2, 8] {
        let guard = SchemaGuard::new(&url);
        let store = open_store(&url, &guard.schema, options());
        let ids = register(&store, 50);
        let ledger = Ledger::default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let started = Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = (0..replicas)
                .map(|i| {
                    // Each replica has its own store: its own connections and writer.
                    let store = open_store(&url, &guard.schema, options());
                    let name = format!("task-{i}");
                    let engine = engine(
                        store,
                        Arc::new(ledger.for_replica(&name)),
                        &name,
                        Duration::from_secs(30),
                    );
                    let ids = ids.clone();
                    tokio::spawn(async move { drive_all(&engine, &ids, i).await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let counts = ledger.counts();
        assert_eq!(counts.len(), 50 * STEPS_PER_RELEASE, "every step deployed");
        let repeated: Vec<_> = counts.iter().filter(|(_, &n)| n != 1).collect();
        assert!(
            repeated.is_empty(),
            "steps deployed more than once: {repeated:?}"
        );
        check_log(&store, &ids);
        let per_replica = ledger.per_replica();
        eprintln!(
            "{replicas} replicas in tasks: 50 releases in {:?}; deploy calls per replica {per_replica:?}",
            started.elapsed()
        );
        assert!(
            per_replica.len() > 1,
            "the work was shared: {per_replica:?}"
        );
    }
}

/// A deployer that prints each call on stdout for the parent process: `start` before the call
/// and `done` after it.
#[derive(Debug)]
struct Printing {
    latency: Duration,
}

#[async_trait]
impl Deployer for Printing {
    async fn deploy(&self, target: &DeployTarget<'_>, weight: Percent) -> Result<(), DeployError> {
        let (release, stage) = (target.release, target.stage);
        let line = format!(
            "{} {stage} {}",
            release.id().digest().to_hex(),
            weight.get()
        );
        println!("start {line}");
        tokio::time::sleep(self.latency).await;
        println!("done {line}");
        Ok(())
    }
    async fn roll_back(&self, target: &DeployTarget<'_>) -> Result<(), DeployError> {
        let (release, stage) = (target.release, target.stage);
        println!("rollback {} {stage}", release.id().digest().to_hex());
        Ok(())
    }
}

fn env_ms(name: &str) -> Duration {
    Duration::from_millis(std::env::var(name).unwrap().parse().unwrap())
}

/// The child: one replica process driving releases 0..n to production.
#[test]
#[ignore = "run by the process tests below as a child process"]
fn replica_child() {
    let Ok(schema) = std::env::var("PROMOTION_REPLICA_CHILD") else {
        return;
    };
    let url = std::env::var("PROMOTION_TEST_POSTGRES_URL").unwrap();
    let name = std::env::var("PROMOTION_REPLICA_NAME").unwrap();
    let n: usize = std::env::var("PROMOTION_REPLICA_RELEASES")
        .unwrap()
        .parse()
        .unwrap();
    let deployer = Printing {
        latency: env_ms("PROMOTION_REPLICA_DEPLOY_MS"),
    };
    let store = open_store(&url, &schema, options());
    let engine = engine(
        store,
        Arc::new(deployer),
        &name,
        env_ms("PROMOTION_REPLICA_TTL_MS"),
    );
    let ids: Vec<ReleaseId> = (0..n).map(|i| release(i).id()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(drive_all(&engine, &ids, name.len()));
    println!("finished");
}

struct Child {
    name: String,
    process: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

fn spawn_child(
    url: &str,
    schema: &str,
    name: &str,
    releases: usize,
    deploy_ms: u64,
    ttl_ms: u64,
) -> Child {
    let mut process = Command::new(std::env::current_exe().unwrap())
        .args([
            "replica_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PROMOTION_REPLICA_CHILD", schema)
        .env("PROMOTION_TEST_POSTGRES_URL", url)
        .env("PROMOTION_REPLICA_NAME", name)
        .env("PROMOTION_REPLICA_RELEASES", releases.to_string())
        .env("PROMOTION_REPLICA_DEPLOY_MS", deploy_ms.to_string())
        .env("PROMOTION_REPLICA_TTL_MS", ttl_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = process.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Child {
        name: name.to_owned(),
        process,
        lines,
    }
}

/// `(release hex, stage, weight)` of a `start`/`done` line.
fn call(line: &str, kind: &str) -> Option<(String, String, u8)> {
    let rest = line.strip_prefix(kind)?.strip_prefix(' ')?;
    let mut parts = rest.split(' ');
    Some((
        parts.next()?.to_owned(),
        parts.next()?.to_owned(),
        parts.next()?.parse().ok()?,
    ))
}

#[test]
fn replica_processes_race_on_postgres() {
    let Some(url) = url() else { return };
    let guard = SchemaGuard::new(&url);
    let store = open_store(&url, &guard.schema, options());
    let ids = register(&store, 50);
    let started = Instant::now();
    let mut children: Vec<Child> = (0..3)
        .map(|i| spawn_child(&url, &guard.schema, &format!("process-{i}"), 50, 0, 30_000))
        .collect();
    let mut done: BTreeMap<(String, String, u8), Vec<String>> = BTreeMap::new();
    for child in &mut children {
        let status = child.process.wait().unwrap();
        assert!(status.success(), "{} failed: {status}", child.name);
        let mut finished = false;
        for line in child.lines.iter() {
            if let Some(c) = call(&line, "done") {
                done.entry(c).or_default().push(child.name.clone());
            }
            finished |= line == "finished";
        }
        assert!(finished, "{} did not finish", child.name);
    }
    assert_eq!(done.len(), 50 * STEPS_PER_RELEASE, "every step deployed");
    let repeated: Vec<_> = done.iter().filter(|(_, by)| by.len() != 1).collect();
    assert!(
        repeated.is_empty(),
        "steps deployed more than once: {repeated:?}"
    );
    check_log(&store, &ids);
    let workers: BTreeSet<&String> = done.values().flatten().collect();
    eprintln!(
        "3 replica processes: 50 releases in {:?}; replicas that deployed: {workers:?}",
        started.elapsed()
    );
}

#[test]
fn a_replica_killed_mid_rollout_is_taken_over_within_the_lease_expiry() {
    let Some(url) = url() else { return };
    let guard = SchemaGuard::new(&url);
    let store = open_store(&url, &guard.schema, options());
    let ids = register(&store, 1);
    let hex = ids[0].digest().to_hex();
    let ttl = Duration::from_millis(2000);
    let poll = ttl / 5;

    // The victim deploys slowly; it is killed as it starts canary's second step.
    let mut victim = spawn_child(
        &url,
        &guard.schema,
        "victim",
        1,
        300,
        ttl.as_millis() as u64,
    );
    let mut victim_done = BTreeSet::new();
    let killed_at = loop {
        let line = victim
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the victim reaches canary's second step");
        if let Some(c) = call(&line, "done") {
            victim_done.insert(c);
        }
        if call(&line, "start") == Some((hex.clone(), "canary".into(), 50)) {
            victim.process.kill().unwrap(); // SIGKILL
            let at = Instant::now();
            victim.process.wait().unwrap();
            break at;
        }
    };
    let expected_before: BTreeSet<(String, String, u8)> = [
        ("dev", 100),
        ("integration", 100),
        ("compliance", 100),
        ("canary", 10),
    ]
    .into_iter()
    .map(|(s, w)| (hex.clone(), s.to_owned(), w))
    .collect();
    assert_eq!(victim_done, expected_before);

    // The survivor takes over once the victim's lease lapses, and finishes.
    let ledger = Ledger::default();
    let survivor = engine(
        open_store(&url, &guard.schema, options()),
        Arc::new(ledger.for_replica("survivor")),
        "survivor",
        ttl,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let first_call = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let watcher = {
        let (ledger, first_call) = (ledger.clone(), first_call.clone());
        rt.spawn(async move {
            while ledger.calls().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            *first_call.lock().unwrap() = Some(Instant::now());
        })
    };
    let progress = rt.block_on(survivor.run_until_blocked(&ids[0])).unwrap();
    let finished_at = Instant::now();
    rt.block_on(watcher).unwrap();
    assert_eq!(progress.status("production"), StageStatus::Promoted);

    // It redid the step in flight and nothing the victim had recorded.
    let survivor_calls: Vec<(String, u8)> =
        ledger.calls().into_iter().map(|c| (c.1, c.2)).collect();
    assert_eq!(
        survivor_calls,
        [
            ("canary".into(), 50),
            ("canary".into(), 100),
            ("production".into(), 100)
        ]
    );
    check_log(&store, &ids);

    let takeover = first_call.lock().unwrap().unwrap() - killed_at;
    eprintln!(
        "takeover {takeover:?} after the kill (lease {ttl:?}, poll {poll:?}); finished {:?} after the kill",
        finished_at - killed_at
    );
    // The victim renewed at most a ttl before dying; the survivor looks every `poll`. The
    // margin covers the survivor's own start (connections, migrations check, catching up).
    assert!(
        takeover <= ttl + poll + Duration::from_millis(1500),
        "takeover took {takeover:?}"
    );
}

/// `url` with `key=value` added to its query string.
fn with_param(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

#[test]
fn connections_terminated_during_appends_lose_and_duplicate_nothing() {
    let Some(url) = url() else { return };
    let guard = SchemaGuard::new(&url);
    let app = format!("fault_{}", guard.schema);
    let store = open_store(
        &with_param(&url, "application_name", &app),
        &guard.schema,
        options(),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let (url, app, stop) = (url.clone(), app.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let mut killed = 0i64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let row = admin
                    .query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                        &[&app],
                    )
                    .unwrap();
                killed += row.get::<_, i64>(0);
                std::thread::sleep(Duration::from_millis(15));
            }
            killed
        })
    };
    let (writers, per_writer) = (8, 40);
    let appenders: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                let stream = StreamId::new(format!("w{w}")).unwrap();
                let mut version = 0;
                let mut errors = 0;
                for i in 0..per_writer {
                    let request = RequestId::new(format!("w{w}-{i}")).unwrap();
                    errors += append_once(&store, &stream, &mut version, &request);
                }
                errors
            })
        })
        .collect();
    let errors: usize = appenders.into_iter().map(|t| t.join().unwrap()).sum();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let killed = killer.join().unwrap();

    // Read back through a fresh store: every acknowledged request once, in order, no others.
    let reader = open_store(&url, &guard.schema, options());
    assert_each_request_once(&reader, writers, per_writer);
    eprintln!("{killed} connections terminated during {} appends; {errors} appends failed and were retried", writers * per_writer);
    assert!(killed > 0, "the test terminated no connection");
    assert!(errors > 0, "no append saw a terminated connection");
}
