//! Requests retried after an ambiguous failure are applied once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::executor::block_on;
use promotion::testing::RecordingDeployer;
use promotion::*;

/// A store whose next append commits and then reports a lost connection, as a database does
/// when the connection drops during COMMIT.
#[derive(Debug, Default)]
struct LosesAcks {
    inner: InMemoryStore,
    lose_next: AtomicBool,
}

#[async_trait]
impl EventStore for LosesAcks {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[Event],
    ) -> Result<u64, StoreError> {
        let v = self.inner.append(stream, expected, events).await?;
        if self.lose_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Backend {
                message: "connection lost during commit".into(),
                source: None,
            });
        }
        Ok(v)
    }
    async fn read(&self, stream: &StreamId) -> Result<Vec<Recorded>, StoreError> {
        self.inner.read(stream).await
    }
    async fn streams(&self) -> Result<Vec<StreamId>, StoreError> {
        self.inner.streams().await
    }
}

fn setup() -> (Engine, Arc<LosesAcks>, ReleaseId) {
    let pipeline = Pipeline::builder("shop", "1")
        .stage(
            StageSpec::new("prod")
                .approval(ApprovalPolicy::new(ApprovalRule::quorum("sre", 2).unwrap())),
        )
        .build()
        .unwrap();
    let store = Arc::new(LosesAcks::default());
    let clock = ManualClock::at("2026-11-26T09:00:00Z".parse().unwrap());
    let engine = Engine::new(
        pipeline,
        store.clone(),
        Arc::new(RecordingDeployer::new()),
        Arc::new(clock),
    );
    let release = Release::builder(
        "api 3.0",
        "git@example.com:shop/api",
        "e".repeat(40),
        "2026-11-26T08:00:00Z".parse().unwrap(),
    )
    .artifact("image", format!("sha256:{}", "ef".repeat(32)))
    .builder("ci")
    .build()
    .unwrap();
    let id = block_on(engine.register(release, &Principal::new("ci", ["ci"]).unwrap())).unwrap();
    block_on(engine.advance(&id)).unwrap();
    (engine, store, id)
}

fn approve(who: &str) -> HostCommand {
    HostCommand::approve("prod", &Principal::new(who, ["sre"]).unwrap(), "ok").unwrap()
}

fn approvals(engine: &Engine, id: &ReleaseId) -> usize {
    block_on(engine.state(id))
        .unwrap()
        .stage("prod")
        .approvals()
        .len()
}

#[test]
fn a_retry_after_a_lost_acknowledgement_is_not_applied_twice() {
    let (engine, store, id) = setup();
    let request = RequestId::new("approve-click-7f3a").unwrap();
    store.lose_next.store(true, Ordering::SeqCst);
    let err = block_on(engine.submit_once(&id, &request, approve("sam"))).unwrap_err();
    assert!(
        err.to_string().contains("connection lost during commit"),
        "{err}"
    );
    assert_eq!(approvals(&engine, &id), 1, "the first attempt did commit");
    // The host retries the same request: it gets the committed events back, nothing new.
    let events = block_on(engine.submit_once(&id, &request, approve("sam"))).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].request.as_ref(), Some(&request));
    assert!(matches!(events[0].body, EventBody::ApprovalGiven { .. }));
    assert_eq!(approvals(&engine, &id), 1);
    // The request id is recorded in the log with the event it caused.
    let recorded = block_on(store.read(&StreamId::for_release(&id))).unwrap();
    assert_eq!(
        recorded
            .iter()
            .filter(|r| r.event.request.is_some())
            .count(),
        1
    );
}

#[test]
fn without_a_request_id_the_retry_is_decided_again() {
    let (engine, store, id) = setup();
    store.lose_next.store(true, Ordering::SeqCst);
    assert!(block_on(engine.submit(&id, approve("sam"))).is_err());
    let err = block_on(engine.submit(&id, approve("sam"))).unwrap_err();
    assert!(
        matches!(err, EngineError::Refused(Refusal::DuplicateApproval { .. })),
        "{err}"
    );
    assert_eq!(approvals(&engine, &id), 1);
}

#[test]
fn a_new_request_is_decided_and_a_refused_one_records_nothing() {
    let (engine, _, id) = setup();
    let first = RequestId::new("r1").unwrap();
    let second = RequestId::new("r2").unwrap();
    block_on(engine.submit_once(&id, &first, approve("sam"))).unwrap();
    // Same principal, new request: decided afresh, and refused as a duplicate approval.
    let err = block_on(engine.submit_once(&id, &second, approve("sam"))).unwrap_err();
    assert!(matches!(
        err,
        EngineError::Refused(Refusal::DuplicateApproval { .. })
    ));
    // Another approver under that request id: now it applies (nothing was recorded before).
    let events = block_on(engine.submit_once(&id, &second, approve("sue"))).unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(e.body, EventBody::StageScheduled { .. })));
    assert!(events.iter().all(|e| e.request.as_ref() == Some(&second)));
}
