//! Replica processes on one PostgreSQL, one of them paused (SIGSTOP) past its lease and resumed
//! (SIGCONT) (issue 21): a replica stopped inside its deployer call must not deploy beside its
//! successor, and a replica stopped while it holds the log's writer lock must not stop the
//! others from appending for longer than the configured bounds.
//!
//! Three replica processes (this test binary re-run with `PROMOTION_SIGSTOP_CHILD` set) drive
//! the same releases to production through one schema. Their deployer is a stand-in platform
//! that keeps its state in two tables of that schema: the highest fencing token it has seen per
//! lease key (release and stage), and every call with the server's timestamps, its token and
//! its outcome. Like a real fencing platform it checks the token when a call arrives and again,
//! atomically with the change, when it applies it; a call refused at either point is recorded
//! as refused and answered with `DeployError::fenced`.
//!
//! - **Paused in the deployer call.** The parent stops a replica as soon as it is inside its
//!   call for canary's second step, keeps it stopped for [`PAUSE`] (longer than the lease and
//!   the others' poll), then resumes it. Checked: the stopped call was refused when it tried
//!   to apply, a successor's call with a higher token was applied meanwhile, no two applied
//!   calls for one lease key overlap in time, applied tokens never go down, and the log records
//!   every step once.
//! - **Paused holding the writer lock.** The parent watches `pg_locks` for the writer lock's
//!   holder and stops that process while its session still holds the lock inside a transaction
//!   (checked again after the stop). The server cuts the stalled session off after
//!   `idle_in_transaction_session_timeout` and the others carry on.
//!
//! In both, the parent itself appends to a probe stream every few milliseconds through its own
//! connection, with the replicas' bounds, and measures how long each append took from first
//! try to success: that is how long "another replica" was kept from appending. The bound
//! checked is the idle-in-transaction timeout plus the lock timeout (a margin for a loaded
//! machine); the figures are printed.
//!
//! `PROMOTION_SIGSTOP_RUNS` repeats each scenario (default 1). Needs
//! `PROMOTION_TEST_POSTGRES_URL`; skipped loudly without it, and failed under CI.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use promotion::audit::postgres::harness::SchemaGuard;
use promotion::audit::postgres::{PostgresBackend, Timeouts, WRITER_LOCK_CLASS};
use promotion::audit::{AuditOptions, AuditStore, CheckpointSigner};
use promotion::*;
use support::*;

/// The replicas' lease.
const TTL: Duration = Duration::from_millis(1500);
/// How long a replica stays stopped: past its lease and the others' poll.
const PAUSE: Duration = Duration::from_secs(4);
/// The session bounds every connection of the test gets.
const LOCK_TIMEOUT: Duration = Duration::from_secs(2);
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(1);
/// Replica processes.
const REPLICAS: usize = 3;

fn timeouts() -> Timeouts {
    Timeouts {
        lock: Some(LOCK_TIMEOUT),
        statement: Some(STATEMENT_TIMEOUT),
        idle_in_transaction: Some(IDLE_IN_TRANSACTION),
    }
}

fn url() -> Option<String> {
    required_env(
        &["PROMOTION_TEST_POSTGRES_URL"],
        "the PostgreSQL SIGSTOP tests",
    )
    .map(|mut v| v.remove(0))
}

fn options() -> AuditOptions {
    AuditOptions::new("sigstop.promotion.test")
        .signer(CheckpointSigner::from_seed("sigstop.promotion.test", [6u8; 32]).unwrap())
}

/// `url` with `key=value` added to its query string.
fn with_param(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// A store on `schema` whose connections carry `application_name` `app` and the test's bounds.
fn store(url: &str, schema: &str, app: &str) -> AuditStore {
    let url = with_param(url, "application_name", app);
    let (w, r) = PostgresBackend::open_pair_with(&url, schema, timeouts()).unwrap();
    let description = format!("postgres:{}", w.describe());
    AuditStore::with_backend(Box::new(w), Box::new(r), description, options()).unwrap()
}

/// A plain connection with `search_path` at `schema`, for the platform's tables.
fn platform_client(url: &str, schema: &str, app: &str) -> postgres::Client {
    let url = with_param(url, "application_name", app);
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.execute(
        "SELECT set_config('search_path', $1, false)",
        &[&format!("\"{schema}\"")],
    )
    .unwrap();
    c
}

const NOW_US: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::int8";

fn create_platform(c: &mut postgres::Client) {
    c.batch_execute(
        "CREATE TABLE platform_fence (key text PRIMARY KEY, highest int8 NOT NULL);
         CREATE TABLE platform_calls (
             id bigserial PRIMARY KEY, replica text NOT NULL, key text NOT NULL,
             weight int4 NOT NULL, token int8 NOT NULL, started_us int8 NOT NULL,
             ended_us int8, outcome text NOT NULL)",
    )
    .unwrap();
}

/// The platform's answer to a call arriving or being applied.
enum Verdict {
    Go(i64),
    Refused(String),
}

/// The token check of a fencing platform, atomic with what it records: refuses `token` if a
/// higher one was seen for `key`, else raises the highest seen to it.
fn fence(tx: &mut postgres::Transaction<'_>, key: &str, token: i64) -> Option<String> {
    tx.execute(
        "INSERT INTO platform_fence (key, highest) VALUES ($1, 0) ON CONFLICT (key) DO NOTHING",
        &[&key],
    )
    .unwrap();
    let highest: i64 = tx
        .query_one(
            "SELECT highest FROM platform_fence WHERE key = $1 FOR UPDATE",
            &[&key],
        )
        .unwrap()
        .get(0);
    if token < highest {
        return Some(format!(
            "fencing token {token} for {key} is stale: {highest} has been seen"
        ));
    }
    tx.execute(
        "UPDATE platform_fence SET highest = $2 WHERE key = $1",
        &[&key, &token],
    )
    .unwrap();
    None
}

fn arrive(c: &mut postgres::Client, replica: &str, key: &str, weight: i32, token: i64) -> Verdict {
    let mut tx = c.transaction().unwrap();
    let refused = fence(&mut tx, key, token);
    let outcome = if refused.is_some() {
        "refused-on-arrival"
    } else {
        "in-flight"
    };
    let id: i64 = tx
        .query_one(
            &format!(
                "INSERT INTO platform_calls (replica, key, weight, token, started_us, outcome)
                 VALUES ($1, $2, $3, $4, {NOW_US}, $5) RETURNING id"
            ),
            &[&replica, &key, &weight, &token, &outcome],
        )
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    match refused {
        Some(why) => Verdict::Refused(why),
        None => Verdict::Go(id),
    }
}

fn apply(c: &mut postgres::Client, id: i64, key: &str, token: i64) -> Verdict {
    let mut tx = c.transaction().unwrap();
    let refused = fence(&mut tx, key, token);
    let outcome = if refused.is_some() {
        "refused-on-apply"
    } else {
        "applied"
    };
    tx.execute(
        &format!("UPDATE platform_calls SET ended_us = {NOW_US}, outcome = $2 WHERE id = $1"),
        &[&id, &outcome],
    )
    .unwrap();
    tx.commit().unwrap();
    match refused {
        Some(why) => Verdict::Refused(why),
        None => Verdict::Go(id),
    }
}

/// The replica's handle on the platform: checks the token on arrival and on apply, works for
/// `work` in between, and says on stdout where it is (`inside <id> <key> <weight> <token>`
/// while working) for the parent.
#[derive(Clone)]
struct Platform {
    client: Arc<Mutex<postgres::Client>>,
    replica: String,
    work: Duration,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("replica", &self.replica)
            .finish()
    }
}

impl Platform {
    async fn db<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> R + Send + 'static,
    ) -> R {
        let client = self.client.clone();
        tokio::task::spawn_blocking(move || f(&mut client.lock().unwrap()))
            .await
            .unwrap()
    }
}

#[async_trait]
impl Deployer for Platform {
    async fn deploy(&self, target: &DeployTarget<'_>, weight: Percent) -> Result<(), DeployError> {
        let key = format!(
            "{}/{}",
            &target.release.id().digest().to_hex()[..12],
            target.stage
        );
        let token = i64::try_from(target.fencing_token.unwrap()).unwrap();
        let weight = i32::from(weight.get());
        let replica = self.replica.clone();
        let k = key.clone();
        let id = match self
            .db(move |c| arrive(c, &replica, &k, weight, token))
            .await
        {
            Verdict::Go(id) => id,
            Verdict::Refused(why) => {
                println!("refused-on-arrival {key} {weight} {token}");
                return Err(DeployError::fenced(why));
            }
        };
        println!("inside {id} {key} {weight} {token}");
        tokio::time::sleep(self.work).await;
        let k = key.clone();
        match self.db(move |c| apply(c, id, &k, token)).await {
            Verdict::Go(_) => {
                println!("applied {id} {key} {weight} {token}");
                Ok(())
            }
            Verdict::Refused(why) => {
                println!("refused-on-apply {id} {key} {weight} {token}");
                Err(DeployError::fenced(why))
            }
        }
    }

    async fn roll_back(&self, target: &DeployTarget<'_>) -> Result<(), DeployError> {
        println!("rollback {}", target.stage);
        Ok(())
    }
}

fn env<T: std::str::FromStr>(name: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    std::env::var(name).unwrap().parse().unwrap()
}

/// Advances every release until all are promoted, as a host would: an error (a connection cut
/// off while this process was stopped) is reported and the release tried again.
async fn drive(engine: &Engine, ids: &[ReleaseId], offset: usize, name: &str) {
    let n = ids.len();
    loop {
        let mut open = 0;
        for k in 0..n {
            let id = &ids[(k + offset * 5) % n];
            match engine.advance(id).await {
                Ok(p) if p.status("production") == StageStatus::Promoted => {}
                Ok(_) => open += 1,
                Err(e) => {
                    eprintln!(
                        "{name}: advancing failed, trying again: {}",
                        report_chain(&e)
                    );
                    open += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        if open == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The child: one replica process.
#[test]
#[ignore = "run by the SIGSTOP tests below as a child process"]
fn sigstop_replica_child() {
    let Ok(schema) = std::env::var("PROMOTION_SIGSTOP_CHILD") else {
        return;
    };
    // The test harness's "test … " has no newline yet: the lines for the parent start after.
    println!();
    let url: String = env("PROMOTION_TEST_POSTGRES_URL");
    let name: String = env("PROMOTION_SIGSTOP_NAME");
    let releases: usize = env("PROMOTION_SIGSTOP_RELEASES");
    let work = Duration::from_millis(env("PROMOTION_SIGSTOP_WORK_MS"));
    let offset: usize = env("PROMOTION_SIGSTOP_INDEX");
    let platform = Platform {
        client: Arc::new(Mutex::new(platform_client(
            &url,
            &schema,
            &format!("platform-{name}"),
        ))),
        replica: name.clone(),
        work,
    };
    let mut replica = ReplicaOptions::new(ReplicaId::new(&name).unwrap(), TTL);
    replica.poll = TTL / 5;
    let engine = Engine::new(
        pipeline(),
        Arc::new(store(&url, &schema, &name)),
        Arc::new(platform),
        Arc::new(SystemClock),
    )
    .replica(replica)
    .unwrap();
    let ids: Vec<ReleaseId> = (0..releases).map(|i| release(i).id()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(drive(&engine, &ids, offset, &name));
    println!("finished");
}

struct Child {
    name: String,
    process: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Child {
    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.process.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal} {}", self.name);
    }
}

fn spawn_child(url: &str, schema: &str, index: usize, releases: usize, work: Duration) -> Child {
    let name = format!("replica-{index}");
    let mut process = Command::new(std::env::current_exe().unwrap())
        .args([
            "sigstop_replica_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PROMOTION_SIGSTOP_CHILD", schema)
        .env("PROMOTION_TEST_POSTGRES_URL", url)
        .env("PROMOTION_SIGSTOP_NAME", &name)
        .env("PROMOTION_SIGSTOP_INDEX", index.to_string())
        .env("PROMOTION_SIGSTOP_RELEASES", releases.to_string())
        .env("PROMOTION_SIGSTOP_WORK_MS", work.as_millis().to_string())
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
        name,
        process,
        lines,
    }
}

/// Appends to its own stream every few milliseconds until stopped; returns the longest time an
/// append took from its first try to its success, and how many tries failed.
fn probe(url: String, schema: String, stop: Arc<AtomicBool>) -> (Duration, usize) {
    let store = store(&url, &schema, "probe");
    let stream = StreamId::new("probe").unwrap();
    let (mut version, mut longest, mut failed, mut i) = (0, Duration::ZERO, 0, 0);
    while !stop.load(Ordering::SeqCst) {
        let request = RequestId::new(format!("probe-{i}")).unwrap();
        let started = Instant::now();
        failed += append_once(&store, &stream, &mut version, &request);
        longest = longest.max(started.elapsed());
        i += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    (longest, failed)
}

/// One call as the platform recorded it.
#[derive(Debug, Clone)]
struct Call {
    id: i64,
    replica: String,
    key: String,
    weight: i32,
    token: i64,
    started_us: i64,
    ended_us: Option<i64>,
    outcome: String,
}

fn calls(c: &mut postgres::Client) -> Vec<Call> {
    c.query(
        "SELECT id, replica, key, weight, token, started_us, ended_us, outcome
         FROM platform_calls ORDER BY id",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| Call {
        id: r.get(0),
        replica: r.get(1),
        key: r.get(2),
        weight: r.get(3),
        token: r.get(4),
        started_us: r.get(5),
        ended_us: r.get(6),
        outcome: r.get(7),
    })
    .collect()
}

/// What the platform's record shows: applied calls for one key never overlap in time and
/// their tokens never go down in the order they were applied; returns (overlapping applied
/// pairs, pairs of overlapping calls where one was refused).
fn check_platform(calls: &[Call]) -> (usize, usize) {
    let mut by_key: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for c in calls {
        assert_ne!(c.outcome, "in-flight", "a call never finished: {c:?}");
        by_key.entry(&c.key).or_default().push(c);
    }
    let (mut applied_overlaps, mut refused_overlaps) = (0, 0);
    for (key, calls) in &by_key {
        let span = |c: &Call| (c.started_us, c.ended_us.unwrap_or(c.started_us));
        for (i, a) in calls.iter().enumerate() {
            for b in &calls[i + 1..] {
                let ((s1, e1), (s2, e2)) = (span(a), span(b));
                if s1 < e2 && s2 < e1 {
                    if a.outcome == "applied" && b.outcome == "applied" {
                        applied_overlaps += 1;
                        eprintln!("OVERLAP of applied calls for {key}: {a:?} {b:?}");
                    } else {
                        refused_overlaps += 1;
                    }
                }
            }
        }
        let mut applied: Vec<&&Call> = calls.iter().filter(|c| c.outcome == "applied").collect();
        applied.sort_by_key(|c| c.ended_us);
        for w in applied.windows(2) {
            assert!(
                w[0].token <= w[1].token,
                "{key}: token {} applied after token {}",
                w[1].token,
                w[0].token
            );
        }
    }
    (applied_overlaps, refused_overlaps)
}

/// The log verifies and records every release promoted once per stage and every step deployed
/// once; returns the deployment attempts per (release, stage, step).
fn check_log(store: &AuditStore, ids: &[ReleaseId]) -> BTreeMap<(String, String, u32), u32> {
    futures::executor::block_on(store.verify(None)).unwrap();
    let mut attempts = BTreeMap::new();
    for id in ids {
        let events: Vec<Event> =
            futures::executor::block_on(store.read(&StreamId::for_release(id)))
                .unwrap()
                .into_iter()
                .map(|r| r.event)
                .collect();
        assert_eq!(
            ReleaseState::replay(&events).status("production"),
            StageStatus::Promoted
        );
        let mut promoted = BTreeMap::new();
        let mut steps = BTreeMap::new();
        let hex = id.digest().to_hex()[..12].to_owned();
        for e in &events {
            match &e.body {
                EventBody::StagePromoted { stage } => {
                    *promoted.entry(stage.to_string()).or_insert(0) += 1
                }
                EventBody::StepDeployed { stage, step, .. } => {
                    *steps.entry((stage.to_string(), *step)).or_insert(0) += 1
                }
                EventBody::DeploymentStarted {
                    stage,
                    step,
                    attempt,
                    ..
                } => {
                    attempts.insert((hex.clone(), stage.to_string(), *step), *attempt);
                }
                _ => {}
            }
        }
        assert_eq!(promoted.len(), 5, "{id}: {promoted:?}");
        assert!(promoted.values().all(|&n| n == 1), "{id}: {promoted:?}");
        assert_eq!(steps.len(), STEPS_PER_RELEASE, "{id}: {steps:?}");
        assert!(steps.values().all(|&n| n == 1), "{id}: {steps:?}");
    }
    attempts
}

/// Where the parent stops a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    /// Inside its deployer call for canary's second step (50 %).
    InDeployerCall,
    /// While its session holds the log's writer lock inside a transaction.
    HoldingWriterLock,
}

/// What one run measured (all of it printed).
#[derive(Debug)]
#[allow(dead_code)] // read through `Debug`
struct Figures {
    applied_overlaps: usize,
    refused_overlaps: usize,
    longest_probe_append: Duration,
    failed_probe_tries: usize,
    tries_to_catch_the_lock: usize,
    calls: usize,
    refused: usize,
}

/// The server session holding `schema`'s writer lock: its pid, application name and state.
fn writer_lock_holder(admin: &mut postgres::Client, schema: &str) -> Option<(i32, String, String)> {
    admin
        .query_opt(
            "SELECT a.pid, a.application_name, COALESCE(a.state, '')
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid::int8 = $1
               AND l.objid = (SELECT oid FROM pg_namespace WHERE nspname = $2)",
            &[&i64::from(WRITER_LOCK_CLASS), &schema],
        )
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
}

fn run_once(url: &str, pause: Pause) -> Figures {
    let guard = SchemaGuard::new(url);
    let log = store(url, &guard.schema, "parent");
    let mut admin = platform_client(url, &guard.schema, "parent-admin");
    create_platform(&mut admin);
    let (releases, work) = match pause {
        Pause::InDeployerCall => (2, Duration::from_millis(400)),
        Pause::HoldingWriterLock => (8, Duration::from_millis(10)),
    };
    let engine = Engine::new(
        pipeline(),
        Arc::new(log.clone()),
        Arc::new(Ledger::default()),
        Arc::new(SystemClock),
    );
    let ids: Vec<ReleaseId> = (0..releases)
        .map(|i| futures::executor::block_on(engine.register(release(i), &ci())).unwrap())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (url, schema, stop) = (url.to_owned(), guard.schema.clone(), stop.clone());
        std::thread::spawn(move || probe(url, schema, stop))
    };
    let mut children: Vec<Child> = (0..REPLICAS)
        .map(|i| spawn_child(url, &guard.schema, i, releases, work))
        .collect();

    let mut tries = 0;
    let mut stopped_call = None;
    match pause {
        Pause::InDeployerCall => {
            // The first replica inside a call for canary at 50 % is stopped there.
            let deadline = Instant::now() + Duration::from_secs(120);
            'wait: while Instant::now() < deadline {
                for (i, child) in children.iter().enumerate() {
                    while let Ok(line) = child.lines.try_recv() {
                        let parts: Vec<&str> = line.split(' ').collect();
                        if parts[0] == "inside" && parts[2].ends_with("/canary") && parts[3] == "50"
                        {
                            child.signal("-STOP");
                            stopped_call = Some((i, parts[1].parse::<i64>().unwrap()));
                            break 'wait;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let (i, _) = stopped_call.expect("a replica reached canary's second step");
            std::thread::sleep(PAUSE);
            children[i].signal("-CONT");
        }
        Pause::HoldingWriterLock => {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut caught = None;
            while caught.is_none() && Instant::now() < deadline {
                let Some((pid, app, _)) = writer_lock_holder(&mut admin, &guard.schema) else {
                    continue;
                };
                let Some(i) = children.iter().position(|c| c.name == app) else {
                    continue;
                };
                tries += 1;
                children[i].signal("-STOP");
                // Stopped in time only if that session still holds the lock, idle inside its
                // transaction: waiting on its stopped process, not on the server.
                std::thread::sleep(Duration::from_millis(20));
                match writer_lock_holder(&mut admin, &guard.schema) {
                    Some((p, _, state)) if p == pid && state.starts_with("idle in transaction") => {
                        caught = Some(i)
                    }
                    _ => children[i].signal("-CONT"),
                }
            }
            let i = caught.expect("a replica was stopped holding the writer lock");
            eprintln!("{} stopped holding the writer lock", children[i].name);
            std::thread::sleep(PAUSE);
            children[i].signal("-CONT");
        }
    }

    let mut lines: Vec<(String, String)> = Vec::new();
    for child in &mut children {
        let status = child.process.wait().unwrap();
        assert!(status.success(), "{} failed: {status}", child.name);
        let mine: Vec<String> = child.lines.iter().collect();
        assert!(
            mine.iter().any(|l| l == "finished"),
            "{} did not finish",
            child.name
        );
        lines.extend(mine.into_iter().map(|l| (child.name.clone(), l)));
    }
    stop.store(true, Ordering::SeqCst);
    let (longest_probe_append, failed_probe_tries) = prober.join().unwrap();

    let calls = calls(&mut admin);
    let (applied_overlaps, refused_overlaps) = check_platform(&calls);
    let attempts = check_log(&log, &ids);
    let refused = calls
        .iter()
        .filter(|c| c.outcome.starts_with("refused"))
        .count();
    if let Some((i, id)) = stopped_call {
        let stopped = calls.iter().find(|c| c.id == id).unwrap();
        assert_eq!(stopped.replica, children[i].name);
        assert_eq!(
            stopped.outcome, "refused-on-apply",
            "the stopped call was applied: {stopped:?}"
        );
        // Someone else took the stage over while it was stopped, with a higher token.
        let successor = calls
            .iter()
            .find(|c| {
                c.key == stopped.key
                    && c.weight == stopped.weight
                    && c.outcome == "applied"
                    && c.token > stopped.token
            })
            .unwrap_or_else(|| panic!("no successor applied {}: {calls:?}", stopped.key));
        assert_ne!(successor.replica, stopped.replica);
        assert!(
            lines.contains(&(
                stopped.replica.clone(),
                format!(
                    "refused-on-apply {} {} {} {}",
                    stopped.id, stopped.key, stopped.weight, stopped.token
                )
            )),
            "the stopped replica was told its call was fenced"
        );
        // The log shows the takeover as a second attempt at that step, with one outcome.
        let (hex, _) = stopped.key.split_once('/').unwrap();
        assert!(
            attempts[&(hex.to_owned(), "canary".to_owned(), 1)] >= 2,
            "{attempts:?}"
        );
    }
    assert_eq!(applied_overlaps, 0, "applied calls overlapped");
    let bound = IDLE_IN_TRANSACTION + LOCK_TIMEOUT;
    assert!(
        longest_probe_append <= bound,
        "an append waited {longest_probe_append:?} (bound {bound:?})"
    );
    Figures {
        applied_overlaps,
        refused_overlaps,
        longest_probe_append,
        failed_probe_tries,
        tries_to_catch_the_lock: tries,
        calls: calls.len(),
        refused,
    }
}

fn runs() -> usize {
    std::env::var("PROMOTION_SIGSTOP_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Runs `pause` [`runs`] times and prints each run's figures and their sum.
fn repeat(url: &str, pause: Pause) {
    let runs = runs();
    let (mut overlaps, mut refused_overlaps, mut refused, mut longest) = (0, 0, 0, Duration::ZERO);
    for run in 0..runs {
        let f = run_once(url, pause);
        eprintln!("{pause:?}, run {run}: {f:?}");
        overlaps += f.applied_overlaps;
        refused_overlaps += f.refused_overlaps;
        refused += f.refused;
        longest = longest.max(f.longest_probe_append);
    }
    eprintln!(
        "{pause:?}: {runs} runs, {overlaps} overlapping applied calls, {refused_overlaps} \
         overlaps with a refused call, {refused} calls refused, longest append {longest:?} \
         (bounds: idle in transaction {IDLE_IN_TRANSACTION:?}, lock {LOCK_TIMEOUT:?}, \
         statement {STATEMENT_TIMEOUT:?})"
    );
}

#[test]
fn a_replica_stopped_inside_its_deployer_call_past_its_lease_is_fenced_by_the_platform() {
    let Some(url) = url() else { return };
    repeat(&url, Pause::InDeployerCall);
}

#[test]
fn a_replica_stopped_holding_the_writer_lock_blocks_the_others_no_longer_than_the_bounds() {
    let Some(url) = url() else { return };
    repeat(&url, Pause::HoldingWriterLock);
}
