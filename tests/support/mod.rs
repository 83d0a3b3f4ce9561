//! What the engine tests over several files share: the pipeline, releases, a deployer that
//! records every call, and a driver that advances many releases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(dead_code)] // each test binary uses a part

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use promotion::testing::ScriptedGate;
use promotion::*;

/// One deploy call: release, stage, weight (0 for a rollback), replica.
pub(crate) type Call = (ReleaseId, String, u8, String);

/// A deployer for replica tests: records every call with the release and the replica that
/// made it, can be slow, and can hold a call open until the test lets it go.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger {
    pub(crate) calls: Arc<Mutex<Vec<Call>>>,
    pub(crate) gate: Arc<Mutex<Option<futures::channel::oneshot::Receiver<()>>>>,
    pub(crate) entered: Arc<Mutex<Vec<String>>>,
    pub(crate) replica: String,
}

impl Ledger {
    pub(crate) fn for_replica(&self, name: &str) -> Ledger {
        Ledger {
            replica: name.to_owned(),
            ..self.clone()
        }
    }
    /// The next deploy call blocks until the returned sender fires (or is dropped).
    pub(crate) fn hold_next(&self) -> futures::channel::oneshot::Sender<()> {
        let (tx, rx) = futures::channel::oneshot::channel();
        *self.gate.lock().unwrap() = Some(rx);
        tx
    }
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    /// How many deploy calls each replica made.
    pub(crate) fn per_replica(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (_, _, _, replica) in self.calls() {
            *counts.entry(replica).or_insert(0) += 1;
        }
        counts
    }
    /// How many times each (release, stage, weight) was deployed.
    pub(crate) fn counts(&self) -> BTreeMap<(ReleaseId, String, u8), usize> {
        let mut counts = BTreeMap::new();
        for (r, s, w, _) in self.calls() {
            *counts.entry((r, s, w)).or_insert(0) += 1;
        }
        counts
    }
}

#[async_trait]
impl Deployer for Ledger {
    async fn deploy(&self, target: &DeployTarget<'_>, weight: Percent) -> Result<(), DeployError> {
        let (release, stage) = (target.release, target.stage);
        self.entered.lock().unwrap().push(self.replica.clone());
        let held = self.gate.lock().unwrap().take();
        if let Some(rx) = held {
            let _ = rx.await;
        }
        self.calls.lock().unwrap().push((
            release.id(),
            stage.to_string(),
            weight.get(),
            self.replica.clone(),
        ));
        Ok(())
    }
    async fn roll_back(&self, target: &DeployTarget<'_>) -> Result<(), DeployError> {
        let (release, stage) = (target.release, target.stage);
        self.calls
            .lock()
            .unwrap()
            .push((release.id(), stage.to_string(), 0, self.replica.clone()));
        Ok(())
    }
}

/// Who registers releases.
pub(crate) fn ci() -> Principal {
    Principal::new("ci", ["ci"]).unwrap()
}

/// The events of release `id` in `store`, in order.
pub(crate) fn events_of(store: &InMemoryStore, id: &ReleaseId) -> Vec<Event> {
    futures::executor::block_on(store.read(&StreamId::for_release(id)))
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect()
}

pub(crate) fn t0() -> chrono::DateTime<chrono::Utc> {
    "2026-11-26T09:00:00Z".parse().unwrap()
}

/// dev → integration → compliance → canary (10 %, 50 %, 100 %, analysed) → production.
pub(crate) fn pipeline() -> Pipeline {
    Pipeline::builder("shop", "1")
        .stage(StageSpec::new("dev").entry_gate(ScriptedGate::passing("unit")))
        .stage(
            StageSpec::new("integration")
                .after("dev")
                .entry_gate(ScriptedGate::passing("integration")),
        )
        .stage(
            StageSpec::new("compliance")
                .after("integration")
                .entry_gate(ScriptedGate::passing("policy")),
        )
        .stage(
            StageSpec::new("canary")
                .after("compliance")
                .rollout(RolloutPlan::new([
                    RolloutStep::new(10).analysis(ScriptedGate::passing("error-rate")),
                    RolloutStep::new(50).analysis(ScriptedGate::passing("error-rate")),
                    RolloutStep::new(100).analysis(ScriptedGate::passing("error-rate")),
                ])),
        )
        .stage(
            StageSpec::new("production")
                .after("canary")
                .verification_gate(ScriptedGate::passing("smoke")),
        )
        .build()
        .unwrap()
}

/// Deploy calls a release makes through the pipeline above: one per stage, three for canary.
pub(crate) const STEPS_PER_RELEASE: usize = 7;

pub(crate) fn release(n: usize) -> Release {
    Release::builder(
        format!("api 1.{n}.0"),
        "git@example.com:shop/api",
        format!("{n:040x}"),
        t0(),
    )
    .artifact("image", format!("sha256:{:064x}", n + 1))
    .builder("ci")
    .build()
    .unwrap()
}

/// Advances every release, starting at a different one per replica, until all are promoted.
pub(crate) async fn drive_all(engine: &Engine, ids: &[ReleaseId], offset: usize) {
    let n = ids.len();
    loop {
        let mut open = 0;
        for k in 0..n {
            let id = &ids[(k + offset * 7) % n];
            let p = engine.advance(id).await.unwrap();
            if p.status("production") != StageStatus::Promoted {
                open += 1;
            }
            tokio::task::yield_now().await;
        }
        if open == 0 {
            return;
        }
    }
}

/// Appends with a request id until one is acknowledged, retrying after errors: the protocol a
/// host follows (and `Engine::submit_once` implements) when a connection drops mid-append. A
/// conflict after an error means the earlier attempt did commit: its request id is in the
/// stream, and it is not appended again.
pub(crate) fn append_once(
    store: &promotion::audit::AuditStore,
    stream: &StreamId,
    version: &mut u64,
    request: &RequestId,
) -> usize {
    let mut errors = 0;
    loop {
        let event = Event {
            at: t0(),
            actor: Actor::Engine,
            request: Some(request.clone()),
            body: EventBody::StageReady {
                stage: StageName::new("dev").unwrap(),
            },
        };
        let expected = ExpectedVersion::Exact(*version);
        match futures::executor::block_on(store.append(stream, expected, &[event])) {
            Ok(v) => {
                *version = v;
                return errors;
            }
            Err(StoreError::Conflict { actual, .. }) => {
                let after = futures::executor::block_on(store.read_from(stream, *version));
                let Ok(after) = after else {
                    errors += 1;
                    continue;
                };
                assert!(
                    after
                        .iter()
                        .any(|r| r.event.request.as_ref() == Some(request)),
                    "a conflict on a stream only this appender writes means its request committed"
                );
                *version = actual;
                return errors;
            }
            Err(_) => {
                errors += 1;
                // The store reconnects at the next transaction; give the server a moment.
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}

/// After `append_once` runs: stream `w<w>` holds exactly the requests `w<w>-0..per_writer`, in
/// order, once each, and the log verifies with nothing else in it.
pub(crate) fn assert_each_request_once(
    reader: &promotion::audit::AuditStore,
    writers: usize,
    per_writer: usize,
) {
    for w in 0..writers {
        let stream = StreamId::new(format!("w{w}")).unwrap();
        let requests: Vec<String> = futures::executor::block_on(reader.read(&stream))
            .unwrap()
            .into_iter()
            .map(|r| r.event.request.unwrap().as_str().to_owned())
            .collect();
        let expected: Vec<String> = (0..per_writer).map(|i| format!("w{w}-{i}")).collect();
        assert_eq!(requests, expected, "stream w{w}");
    }
    let report = futures::executor::block_on(reader.verify(None)).unwrap();
    assert_eq!(report.entries, (writers * per_writer) as u64);
}

/// The values of the environment variables `names` that an outside-service test needs, or
/// `None` after saying loudly on stderr that `what` is skipped. Under CI (env `CI` set) a
/// missing one is a failure, never a skip.
pub(crate) fn required_env(names: &[&str], what: &str) -> Option<Vec<String>> {
    let values: Option<Vec<String>> = names
        .iter()
        .map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
        .collect();
    if values.is_none() {
        let skipped = format!(
            "SKIPPED: {} is not set; {what} did not run",
            names.join(" or ")
        );
        if std::env::var_os("CI").is_some() {
            panic!("{skipped} (and CI is set: it is required)");
        }
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "{skipped}");
    }
    values
}
