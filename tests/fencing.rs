//! Fencing that reaches the platform (issue 21): a replica paused inside its deployer call
//! past its lease (SIGSTOP, a GC pause, a VM migration) resumes after another replica has
//! taken the stage over. Its call carries the old lease's fencing token, the platform refuses
//! it, and the engine drops the result instead of recording it: the platform applied one
//! writer's deployment, and the log shows the takeover as attempt 2 with one outcome.
//!
//! The pause is made with two clocks: the paused replica's own clock stands still (its
//! heartbeat and its deployer's work wait on it), while the store's and the other replica's
//! clock moves past the lease.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::executor::block_on;
use promotion::testing::{sample_release, RecordingDeployer};
use promotion::*;

const TTL: Duration = Duration::from_millis(1500);
const WORK: Duration = Duration::from_secs(4);

fn t0() -> DateTime<Utc> {
    "2026-11-26T09:00:00Z".parse().unwrap()
}

/// One stage that deploys straight to 100 %, no gates, no approval.
fn pipeline() -> Pipeline {
    Pipeline::builder("shop", "1")
        .stage(StageSpec::new("prod"))
        .build()
        .unwrap()
}

fn replica(
    store: &Arc<InMemoryStore>,
    platform: RecordingDeployer,
    clock: &ManualClock,
    name: &str,
) -> Engine {
    Engine::new(
        pipeline(),
        store.clone(),
        Arc::new(platform),
        Arc::new(clock.clone()),
    )
    .replica(ReplicaOptions::new(ReplicaId::new(name).unwrap(), TTL))
    .unwrap()
}

#[test]
fn a_replica_paused_inside_its_deployer_call_is_refused_by_the_platform_and_not_recorded() {
    // The store's (and replica b's) clock, and replica a's own clock.
    let world = ManualClock::at(t0());
    let paused = ManualClock::at(t0());
    let store = Arc::new(InMemoryStore::with_clock(Arc::new(world.clone())));
    // One platform both replicas deploy to; it remembers the highest token per stage.
    let platform = RecordingDeployer::new().refusing_stale_tokens();
    let a = replica(
        &store,
        platform.clone().with_clock(Arc::new(paused.clone()), WORK),
        &paused,
        "a",
    );
    let b = replica(&store, platform.clone(), &world, "b");
    let id =
        block_on(a.register(sample_release(), &Principal::new("ci", ["ci"]).unwrap())).unwrap();

    block_on(async {
        // a takes the lease, records the intent and enters the platform call, where its work
        // waits on its own clock: a is now "stopped" inside the call.
        let mut a_run = Box::pin(a.advance(&id));
        let first = futures::future::poll_fn(|cx| Poll::Ready(a_run.as_mut().poll(cx))).await;
        assert!(first.is_pending(), "a finished without waiting: {first:?}");
        assert_eq!(platform.tokens("prod"), [Some(1)], "a called with token 1");

        // The lease lapses on the store's clock; b takes the stage over and deploys.
        world.advance(TTL * 3);
        let progress = b.advance(&id).await.unwrap();
        assert_eq!(progress.status("prod"), StageStatus::Promoted);
        assert_eq!(platform.tokens("prod"), [Some(1), Some(2)]);

        // a resumes inside its call: the platform refuses its stale token, and a records
        // nothing (it no longer holds the lease) instead of a failed deployment.
        paused.advance(WORK);
        let resumed = a_run.await.unwrap();
        assert_eq!(resumed.status("prod"), StageStatus::Promoted);
    });

    assert_eq!(platform.refused(), [("prod".to_owned(), 1)]);
    assert_eq!(
        platform.weights("prod"),
        [100],
        "the platform applied one writer's deployment, not two"
    );
    let log: Vec<Event> = block_on(store.read(&StreamId::for_release(&id)))
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect();
    let deployments: Vec<String> = log
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::DeploymentStarted { attempt, .. } => Some(format!("started #{attempt}")),
            EventBody::StepDeployed { .. } => Some("deployed".to_owned()),
            EventBody::DeploymentFailed { error, .. } => Some(format!("failed: {error}")),
            _ => None,
        })
        .collect();
    assert_eq!(deployments, ["started #1", "started #2", "deployed"]);
}

#[test]
fn a_single_engine_calls_its_deployer_unfenced() {
    let clock = ManualClock::auto_advancing(t0());
    let platform = RecordingDeployer::new().refusing_stale_tokens();
    let engine = Engine::new(
        pipeline(),
        Arc::new(InMemoryStore::new()),
        Arc::new(platform.clone()),
        Arc::new(clock),
    );
    let id = block_on(engine.register(sample_release(), &Principal::new("ci", ["ci"]).unwrap()))
        .unwrap();
    let progress = block_on(engine.run_until_blocked(&id)).unwrap();
    assert_eq!(progress.status("prod"), StageStatus::Promoted);
    assert_eq!(platform.tokens("prod"), [None]);
}

/// The shared store, as seen by a replica that is paused (on its own clock) right after its
/// deployment intent is appended: between recording the intent and calling the deployer.
#[derive(Debug)]
struct PausesAfterIntent {
    store: Arc<InMemoryStore>,
    paused: ManualClock,
}

#[async_trait::async_trait]
impl EventStore for PausesAfterIntent {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[Event],
    ) -> Result<u64, StoreError> {
        self.store.append(stream, expected, events).await
    }
    async fn read(&self, stream: &StreamId) -> Result<Vec<Recorded>, StoreError> {
        self.store.read(stream).await
    }
    async fn streams(&self) -> Result<Vec<StreamId>, StoreError> {
        self.store.streams().await
    }
    fn leases(&self) -> Option<&dyn LeaseStore> {
        self.store.leases()
    }
    async fn append_fenced(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[Event],
        fence: &Lease,
    ) -> Result<u64, StoreError> {
        let version = self
            .store
            .append_fenced(stream, expected, events, fence)
            .await?;
        if events
            .iter()
            .any(|e| matches!(e.body, EventBody::DeploymentStarted { .. }))
        {
            self.paused.sleep(WORK).await;
        }
        Ok(version)
    }
}

#[test]
fn a_replica_paused_between_intent_and_call_does_not_call_past_its_lease() {
    let world = ManualClock::at(t0());
    let paused = ManualClock::at(t0());
    let store = Arc::new(InMemoryStore::with_clock(Arc::new(world.clone())));
    let platform = RecordingDeployer::new().refusing_stale_tokens();
    let a = Engine::new(
        pipeline(),
        Arc::new(PausesAfterIntent {
            store: store.clone(),
            paused: paused.clone(),
        }),
        Arc::new(platform.clone()),
        Arc::new(paused.clone()),
    )
    .replica(ReplicaOptions::new(ReplicaId::new("a").unwrap(), TTL))
    .unwrap();
    let b = replica(&store, platform.clone(), &world, "b");
    let id =
        block_on(a.register(sample_release(), &Principal::new("ci", ["ci"]).unwrap())).unwrap();
    block_on(async {
        let mut a_run = Box::pin(a.advance(&id));
        let first = futures::future::poll_fn(|cx| Poll::Ready(a_run.as_mut().poll(cx))).await;
        assert!(first.is_pending(), "a finished without pausing: {first:?}");
        assert!(
            platform.tokens("prod").is_empty(),
            "a paused before its call"
        );

        world.advance(TTL * 3);
        b.advance(&id).await.unwrap();
        paused.advance(WORK);
        a_run.await.unwrap();
    });
    // a woke past its lease and did not call: the platform only ever saw b's token, so it
    // had nothing to refuse.
    assert_eq!(platform.tokens("prod"), [Some(2)]);
    assert!(platform.refused().is_empty());
}
