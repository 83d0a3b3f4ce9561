//! Engines sharing one store as replicas: leases keep them from acting on the same stage,
//! fencing refuses the records of a replica that lost its lease, and a replica that stalls or
//! dies is taken over without a recorded step repeated or skipped.
//!
//! These run on the in-memory store (which keeps leases like a database would) with virtual
//! or real time as each test says; `tests/replicas_postgres.rs` runs the same races on
//! PostgreSQL, across tasks and processes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::executor::block_on;
use futures::FutureExt;
use promotion::*;
use support::*;

fn replica(
    store: Arc<InMemoryStore>,
    ledger: &Ledger,
    clock: Arc<dyn Clock>,
    name: &str,
    ttl: Duration,
) -> Engine {
    Engine::new(pipeline(), store, Arc::new(ledger.for_replica(name)), clock)
        .replica(ReplicaOptions::new(ReplicaId::new(name).unwrap(), ttl))
        .unwrap()
}

#[test]
fn a_stage_another_replica_is_working_on_is_left_alone() {
    let clock = ManualClock::at(t0());
    let store = Arc::new(InMemoryStore::with_clock(Arc::new(clock.clone())));
    let ledger = Ledger::default();
    let a = replica(
        store.clone(),
        &ledger,
        Arc::new(clock.clone()),
        "a",
        Duration::from_secs(30),
    );
    let b = replica(
        store.clone(),
        &ledger,
        Arc::new(clock.clone()),
        "b",
        Duration::from_secs(30),
    );
    let id = block_on(a.register(release(1), &ci())).unwrap();

    // a deploys dev and is held inside the deployer call.
    let release_a = ledger.hold_next();
    let mut running = Box::pin(a.advance(&id));
    assert!((&mut running).now_or_never().is_none());
    assert_eq!(*ledger.entered.lock().unwrap(), ["a"]);

    // b finds dev leased by a: it neither deploys nor records anything, and says why.
    let before = events_of(&store, &id).len();
    let p = block_on(b.advance(&id)).unwrap();
    assert_eq!(p.appended(), 0);
    assert_eq!(p.held_elsewhere().len(), 1, "{:?}", p.held_elsewhere());
    assert_eq!(p.held_elsewhere()[0].stage().as_str(), "dev");
    assert_eq!(p.held_elsewhere()[0].holder().as_str(), "a");
    assert_eq!(p.next_wakeup(), Some(t0() + chrono::Duration::seconds(30)));
    assert_eq!(events_of(&store, &id).len(), before);
    assert_eq!(*ledger.entered.lock().unwrap(), ["a"], "b must not deploy");

    // a finishes the whole release; b then finds nothing to do.
    release_a.send(()).unwrap();
    let p = block_on(running).unwrap();
    assert_eq!(p.status("production"), StageStatus::Promoted);
    let p = block_on(b.advance(&id)).unwrap();
    assert_eq!((p.appended(), p.held_elsewhere().len()), (0, 0));
    assert!(
        ledger.counts().values().all(|&n| n == 1),
        "{:?}",
        ledger.counts()
    );
    assert_eq!(ledger.calls().len(), STEPS_PER_RELEASE);
}

#[test]
fn a_stalled_replica_is_fenced_out_and_its_step_is_recorded_once() {
    let clock = ManualClock::at(t0());
    let store = Arc::new(InMemoryStore::with_clock(Arc::new(clock.clone())));
    let ledger = Ledger::default();
    let ttl = Duration::from_secs(30);
    let a = replica(store.clone(), &ledger, Arc::new(clock.clone()), "a", ttl);
    let b = replica(store.clone(), &ledger, Arc::new(clock.clone()), "b", ttl);
    let id = block_on(a.register(release(2), &ci())).unwrap();

    // a enters the dev deployment and stalls there (a long GC pause, a partition): it is not
    // polled, so it cannot renew its lease.
    let release_a = ledger.hold_next();
    let mut stalled = Box::pin(a.advance(&id));
    assert!((&mut stalled).now_or_never().is_none());
    clock.advance(ttl * 2);

    // b takes the lapsed lease and does the work, dev's deployment included.
    let p = block_on(b.advance(&id)).unwrap();
    assert_eq!(p.status("production"), StageStatus::Promoted);
    let recorded = events_of(&store, &id).len();

    // a wakes up, finishes its deploy call and tries to record it: refused by the fence.
    release_a.send(()).unwrap();
    let p = block_on(stalled).unwrap();
    assert_eq!(p.status("production"), StageStatus::Promoted);
    assert_eq!(
        events_of(&store, &id).len(),
        recorded,
        "a stalled replica records nothing after its lease lapsed"
    );

    let events = events_of(&store, &id);
    let dev_steps = events
        .iter()
        .filter(
            |e| matches!(&e.body, EventBody::StepDeployed { stage, .. } if stage.as_str() == "dev"),
        )
        .count();
    assert_eq!(dev_steps, 1, "dev's step is recorded once");
    // The in-flight step was deployed by both (a's call had started); nothing else was.
    let counts = ledger.counts();
    assert_eq!(
        counts.values().filter(|&&n| n == 2).count(),
        1,
        "{counts:?}"
    );
    assert_eq!(counts.len(), STEPS_PER_RELEASE);
}

#[test]
fn a_replica_that_died_is_taken_over_after_its_lease_lapses() {
    let clock = ManualClock::at(t0());
    let store = Arc::new(InMemoryStore::with_clock(Arc::new(clock.clone())));
    let ledger = Ledger::default();
    let ttl = Duration::from_secs(30);
    let a = replica(store.clone(), &ledger, Arc::new(clock.clone()), "a", ttl);
    let b = replica(store.clone(), &ledger, Arc::new(clock.clone()), "b", ttl);
    let id = block_on(a.register(release(3), &ci())).unwrap();

    // a dies inside the dev deployment: its future is dropped, the lease is never released.
    let _never = ledger.hold_next();
    let mut dying = Box::pin(a.advance(&id));
    assert!((&mut dying).now_or_never().is_none());
    drop(dying);

    // Until the lease lapses b waits; then it takes over and finishes.
    let p = block_on(b.advance(&id)).unwrap();
    assert_eq!(p.appended(), 0);
    let wake = p.next_wakeup().unwrap();
    assert_eq!(wake, t0() + chrono::Duration::seconds(30));
    clock.set(wake);
    let p = block_on(b.advance(&id)).unwrap();
    assert_eq!(p.status("production"), StageStatus::Promoted);
    assert_eq!(
        ledger.calls().len(),
        STEPS_PER_RELEASE,
        "a died before its call completed"
    );
}

#[test]
fn replica_mode_needs_a_store_with_leases_and_sane_durations() {
    #[derive(Debug, Default)]
    struct NoLeases(InMemoryStore);
    #[async_trait]
    impl EventStore for NoLeases {
        async fn append(
            &self,
            s: &StreamId,
            e: ExpectedVersion,
            ev: &[Event],
        ) -> Result<u64, StoreError> {
            self.0.append(s, e, ev).await
        }
        async fn read(&self, s: &StreamId) -> Result<Vec<Recorded>, StoreError> {
            self.0.read(s).await
        }
        async fn streams(&self) -> Result<Vec<StreamId>, StoreError> {
            self.0.streams().await
        }
    }
    let engine = |store: Arc<dyn EventStore>| {
        Engine::new(
            pipeline(),
            store,
            Arc::new(Ledger::default()),
            Arc::new(ManualClock::at(t0())),
        )
    };
    let id = ReplicaId::new("a").unwrap();
    let err = engine(Arc::new(NoLeases::default()))
        .replica(ReplicaOptions::new(id.clone(), Duration::from_secs(10)))
        .unwrap_err();
    assert!(err.to_string().contains("keeps no leases"), "{err}");
    let err = engine(Arc::new(InMemoryStore::new()))
        .replica(ReplicaOptions::new(id.clone(), Duration::from_millis(1)))
        .unwrap_err();
    assert!(err.to_string().contains("shorter than 10 ms"), "{err}");
    let mut options = ReplicaOptions::new(id, Duration::from_secs(10));
    options.poll = Duration::from_secs(11);
    let err = engine(Arc::new(InMemoryStore::new()))
        .replica(options)
        .unwrap_err();
    assert!(err.to_string().contains("poll interval"), "{err}");
    // And a store without leases refuses fenced appends, typed.
    let lease = Lease {
        key: LeaseKey::new(release(1).id(), StageName::new("dev").unwrap()),
        holder: ReplicaId::new("a").unwrap(),
        token: 1,
        expires_at: t0(),
    };
    let err = block_on(NoLeases::default().append_fenced(
        &StreamId::new("s").unwrap(),
        ExpectedVersion::Any,
        &[],
        &lease,
    ))
    .unwrap_err();
    assert!(matches!(err, StoreError::Unsupported(_)), "{err}");
}

/// Engines as tasks on a multi-threaded runtime, driving the same releases at once.
#[test]
fn racing_replicas_promote_every_release_once_and_deploy_every_step_once() {
    for replicas in [2, 4, 8] {
        let store = Arc::new(InMemoryStore::new());
        let ledger = Ledger::default();
        let engines: Vec<Engine> = (0..replicas)
            .map(|i| {
                replica(
                    store.clone(),
                    &ledger,
                    Arc::new(SystemClock),
                    &format!("r{i}"),
                    Duration::from_secs(30),
                )
            })
            .collect();
        let ids: Vec<ReleaseId> = (0..50)
            .map(|n| block_on(engines[0].register(release(n), &ci())).unwrap())
            .collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
            .unwrap();
        rt.block_on(async {
            let tasks: Vec<_> = engines
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, engine)| {
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
        let twice: Vec<_> = counts.iter().filter(|(_, &n)| n != 1).collect();
        assert!(
            twice.is_empty(),
            "{replicas} replicas: steps deployed more than once: {twice:?}"
        );
        for id in &ids {
            let events = events_of(&store, id);
            let state = ReleaseState::replay(&events);
            assert_eq!(state.status("production"), StageStatus::Promoted);
            for stage in ["dev", "integration", "compliance", "canary", "production"] {
                let promoted = events
                    .iter()
                    .filter(|e| {
                        matches!(&e.body, EventBody::StagePromoted { stage: s, .. } if s.as_str() == stage)
                    })
                    .count();
                assert_eq!(promoted, 1, "{stage} of {id} promoted {promoted} times");
            }
        }
        let by_replica = ledger.per_replica();
        eprintln!("{replicas} replicas: deploy calls per replica {by_replica:?}");
    }
}

/// A person aborts a stage while the deployer is at work on its first step: the deployment
/// cannot be recorded any more (the stage ended), so the engine rolls it back on the platform
/// instead of leaving traffic on a release the log says was never deployed. The same with and
/// without replica mode.
#[test]
fn a_deployment_that_lands_after_an_abort_is_rolled_back_not_forgotten() {
    for replica_mode in [false, true] {
        let clock = ManualClock::at(t0());
        let store = Arc::new(InMemoryStore::with_clock(Arc::new(clock.clone())));
        let ledger = Ledger::default();
        let engine = if replica_mode {
            replica(
                store.clone(),
                &ledger,
                Arc::new(clock.clone()),
                "a",
                Duration::from_secs(30),
            )
        } else {
            Engine::new(
                pipeline(),
                store.clone(),
                Arc::new(ledger.for_replica("solo")),
                Arc::new(clock.clone()),
            )
        };
        let id = block_on(engine.register(release(4), &ci())).unwrap();
        let let_go = ledger.hold_next();
        let mut deploying = Box::pin(engine.advance(&id));
        assert!((&mut deploying).now_or_never().is_none());
        let op = Principal::new("olga", ["release-managers"]).unwrap();
        block_on(engine.submit(&id, HostCommand::abort("dev", &op, "wrong build").unwrap()))
            .unwrap();
        let_go.send(()).unwrap();
        let p = block_on(deploying).unwrap();
        assert_eq!(
            p.status("dev"),
            StageStatus::Aborted,
            "replica mode {replica_mode}"
        );
        let events = events_of(&store, &id);
        assert!(
            !events
                .iter()
                .any(|e| matches!(e.body, EventBody::StepDeployed { .. })),
            "the log never says dev was deployed"
        );
        // The platform agrees: dev's deployment (weight 100) was rolled back (weight 0).
        let dev: Vec<u8> = ledger
            .calls()
            .into_iter()
            .filter(|c| c.1 == "dev")
            .map(|c| c.2)
            .collect();
        assert_eq!(dev, [100, 0], "replica mode {replica_mode}");
    }
}
