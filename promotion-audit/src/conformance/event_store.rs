//! The checks every `promotion_core::EventStore` must pass, whatever it stores and wherever:
//! core's `InMemoryStore`, a host's own store, and [`AuditStore`](crate::AuditStore) over every
//! backend (whose audit checks run these first, then check the log they leave behind).
//!
//! Each check takes a fresh, empty store, or, for the checks of what outlives a store, an
//! opener: a function that opens the same storage each time it is called, as another process
//! would, while stores it opened earlier may still be open. Each panics with a message on the
//! first deviation. [`event_store_conformance!`](crate::event_store_conformance) turns them into
//! one `#[test]` per check.

use std::time::Duration;

use promotion_core::{Acquired, Lease, LeaseKey, LeaseStore, ReplicaId};
use promotion_core::{EventStore, ExpectedVersion, StageName, StoreError, StreamId};

use super::{stage_ready_event, t0};

pub(super) fn stream(name: &str) -> StreamId {
    StreamId::new(name).unwrap()
}

/// Appends the suite's events `from..from + n` to stream `s`; returns the new version.
pub(super) async fn append<S: EventStore + ?Sized>(
    store: &S,
    s: &str,
    expected: ExpectedVersion,
    from: u64,
    n: u64,
) -> u64 {
    let events: Vec<_> = (from..from + n).map(stage_ready_event).collect();
    store
        .append(&stream(s), expected, &events)
        .await
        .unwrap_or_else(|e| panic!("append to {s} failed: {e}"))
}

/// Streams, versions and reads: versions count from 1 per stream, reads return events in
/// order, `read_from` skips what the reader has, and a missing stream reads as empty. Leaves
/// stream `a` at version 4 and `b` at 2 (six events).
pub async fn ordering_and_versions<S: EventStore + ?Sized>(store: &S) {
    assert_eq!(append(store, "a", ExpectedVersion::NoStream, 0, 3).await, 3);
    assert_eq!(append(store, "b", ExpectedVersion::NoStream, 3, 2).await, 2);
    assert_eq!(append(store, "a", ExpectedVersion::Exact(3), 5, 1).await, 4);
    let a = store.read(&stream("a")).await.unwrap();
    assert_eq!(
        a.iter().map(|r| r.version).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(a.iter().all(|r| r.stream == stream("a")));
    assert_eq!(a[3].event, stage_ready_event(5));
    assert_eq!(a[0].event, stage_ready_event(0));
    assert_eq!(store.read_from(&stream("a"), 2).await.unwrap(), a[2..]);
    assert!(store.read_from(&stream("a"), 4).await.unwrap().is_empty());
    let b = store.read(&stream("b")).await.unwrap();
    assert_eq!(
        b.iter().map(|r| (r.version, &r.event)).collect::<Vec<_>>(),
        [(1, &stage_ready_event(3)), (2, &stage_ready_event(4))]
    );
    assert!(store.read(&stream("none")).await.unwrap().is_empty());
    let mut streams = store.streams().await.unwrap();
    streams.sort();
    assert_eq!(streams, [stream("a"), stream("b")]);
}

/// Optimistic concurrency: a conflict is typed, names the stream's version and appends
/// nothing; an empty append writes nothing; of many appenders racing to create one stream,
/// exactly one wins. Leaves stream `a` at version 2 and `race` at 1 (three events).
pub async fn conflicts<S: EventStore + ?Sized>(store: &S) {
    append(store, "a", ExpectedVersion::NoStream, 0, 1).await;
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(2),
    ] {
        let err = store
            .append(&stream("a"), expected, &[stage_ready_event(9)])
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { actual: 1, .. }),
            "{expected}: {err}"
        );
    }
    let err = store
        .append(
            &stream("new"),
            ExpectedVersion::Exact(3),
            &[stage_ready_event(9)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { actual: 0, .. }),
        "{err}"
    );
    let only_a = |what: &'static str| async move {
        assert_eq!(
            store.read(&stream("a")).await.unwrap().len(),
            1,
            "{what} appended nothing"
        );
        assert!(
            store.read(&stream("new")).await.unwrap().is_empty(),
            "{what} appended nothing"
        );
        assert_eq!(
            store.streams().await.unwrap(),
            [stream("a")],
            "{what} appended nothing"
        );
    };
    only_a("conflicts").await;
    assert_eq!(
        store
            .append(&stream("a"), ExpectedVersion::Exact(1), &[])
            .await
            .unwrap(),
        1
    );
    only_a("an empty append").await;
    assert_eq!(append(store, "a", ExpectedVersion::Any, 1, 1).await, 2);
    // Many appenders race for the same new stream: exactly one wins.
    let racers = (0..8).map(|i| async move {
        store
            .append(
                &stream("race"),
                ExpectedVersion::NoStream,
                &[stage_ready_event(100 + i)],
            )
            .await
    });
    let results = futures::future::join_all(racers).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, StoreError::Conflict { .. })));
    assert_eq!(store.read(&stream("race")).await.unwrap().len(), 1);
}

/// Many concurrent appenders: every acknowledged append is there, in order. Leaves 64
/// streams of five events each.
pub async fn concurrent_appends<S: EventStore + ?Sized>(store: &S) {
    let tasks = (0..64u64).map(|i| async move {
        for j in 0..5u64 {
            store
                .append(
                    &stream(&format!("c{i}")),
                    ExpectedVersion::Exact(j),
                    &[stage_ready_event(i * 100 + j)],
                )
                .await
                .unwrap();
        }
    });
    futures::future::join_all(tasks).await;
    for i in 0..64u64 {
        let events = store.read(&stream(&format!("c{i}"))).await.unwrap();
        assert_eq!(events.len(), 5);
        assert_eq!(events[4].event, stage_ready_event(i * 100 + 4));
    }
    assert_eq!(store.streams().await.unwrap().len(), 64);
}

/// What was appended survives closing and reopening, and appends continue the stream. Leaves
/// stream `a` at version 6.
pub async fn reopen<S: EventStore>(open: impl Fn() -> S) {
    let store = open();
    reopen_before(&store).await;
    drop(store);
    reopen_after(&open()).await;
}

/// [`reopen`]'s part before closing: four events in stream `a`.
pub(super) async fn reopen_before<S: EventStore + ?Sized>(store: &S) {
    assert_eq!(append(store, "a", ExpectedVersion::NoStream, 0, 4).await, 4);
}

/// [`reopen`]'s part after reopening: the four events read back as appended, and appends
/// continue the stream.
pub(super) async fn reopen_after<S: EventStore + ?Sized>(store: &S) {
    let a = store.read(&stream("a")).await.unwrap();
    let found: Vec<_> = a.iter().map(|r| (r.version, r.event.clone())).collect();
    let appended: Vec<_> = (0..4).map(|i| (i + 1, stage_ready_event(i))).collect();
    assert_eq!(
        found, appended,
        "what was appended before closing reads back after reopening"
    );
    assert_eq!(store.streams().await.unwrap(), [stream("a")]);
    assert_eq!(append(store, "a", ExpectedVersion::Exact(4), 4, 2).await, 6);
    assert_eq!(store.read(&stream("a")).await.unwrap().len(), 6);
}

/// Two stores (two writers, as two processes would have) over the same storage, appending to
/// the same stream in turn: each sees the other's appends, and a writer's stale expectation
/// is a conflict, however much it remembers of its own last commit. Leaves stream `s` at
/// version 4.
pub async fn two_writers<S: EventStore>(open: impl Fn() -> S) {
    let a = open();
    let b = open();
    assert_eq!(append(&a, "s", ExpectedVersion::NoStream, 0, 1).await, 1);
    assert_eq!(append(&b, "s", ExpectedVersion::Exact(1), 1, 1).await, 2);
    match a
        .append(
            &stream("s"),
            ExpectedVersion::Exact(1),
            &[stage_ready_event(2)],
        )
        .await
    {
        Err(StoreError::Conflict { actual: 2, .. }) => {}
        other => panic!("a's stale expectation must conflict, got {other:?}"),
    }
    assert_eq!(append(&a, "s", ExpectedVersion::Exact(2), 2, 1).await, 3);
    assert_eq!(append(&b, "s", ExpectedVersion::Exact(3), 3, 1).await, 4);
    assert_eq!(a.read(&stream("s")).await.unwrap().len(), 4);
}

pub(super) fn lease_key(stage: &str) -> LeaseKey {
    let release = promotion_core::Release::builder("conformance 1.0", "repo", "c".repeat(40), t0())
        .artifact("app", format!("sha256:{}", "ab".repeat(32)))
        .builder("ci")
        .build()
        .unwrap();
    LeaseKey::new(release.id(), StageName::new(stage).unwrap())
}

fn lease_store<S: EventStore + ?Sized>(store: &S) -> &dyn LeaseStore {
    store
        .leases()
        .expect("the store said it has leases, then that it has none")
}

async fn granted(
    leases: &dyn LeaseStore,
    key: &LeaseKey,
    holder: &ReplicaId,
    ttl: Duration,
) -> Lease {
    match leases.acquire(key, holder, ttl).await.unwrap() {
        Acquired::Granted(lease) => lease,
        other => panic!("{holder} expected to be granted {key}, got {other:?}"),
    }
}

async fn fenced<S: EventStore + ?Sized>(
    store: &S,
    s: &str,
    expected: ExpectedVersion,
    lease: &Lease,
) -> String {
    match store
        .append_fenced(&stream(s), expected, &[stage_ready_event(0)], lease)
        .await
    {
        Err(e @ StoreError::Fenced { .. }) => e.to_string(),
        other => panic!("append fenced by {lease:?} should be refused, got {other:?}"),
    }
}

/// A lease and a lease key that were never granted: a store without leases must refuse an
/// append fenced by it rather than ignore the fence.
async fn no_leases<S: EventStore + ?Sized>(store: &S) {
    let forged = Lease {
        key: lease_key("never"),
        holder: ReplicaId::new("replica-a").unwrap(),
        token: 1,
        expires_at: t0(),
    };
    match store
        .append_fenced(
            &stream("r"),
            ExpectedVersion::NoStream,
            &[stage_ready_event(0)],
            &forged,
        )
        .await
    {
        Err(StoreError::Unsupported(_)) => {}
        other => panic!("a store without leases must refuse fenced appends, got {other:?}"),
    }
    assert!(store.read(&stream("r")).await.unwrap().is_empty());
}

fn replicas() -> (ReplicaId, ReplicaId) {
    (
        ReplicaId::new("replica-a").unwrap(),
        ReplicaId::new("replica-b").unwrap(),
    )
}

const HOUR: Duration = Duration::from_secs(3600);

/// Leases and fenced appends, for a store whose [`EventStore::leases`] are there (a store
/// without must refuse fenced appends with [`StoreError::Unsupported`]): tokens grow when a
/// lease changes hands and not on renewal, a lease held by another is refused, fenced appends
/// go through only with the current lease and append nothing otherwise. Expiry is tested with
/// zero-length leases, so the check holds whichever clock the store judges by. Leaves stream
/// `r` at version 2.
pub async fn leases<S: EventStore + ?Sized>(store: &S) {
    if store.leases().is_none() {
        return no_leases(store).await;
    }
    let leases = lease_store(store);
    let (a, b) = replicas();
    let k = lease_key("canary");

    let first = granted(leases, &k, &a, HOUR).await;
    assert_eq!(first.token, 1, "the first lease on a key has token 1");
    match leases.acquire(&k, &b, HOUR).await.unwrap() {
        Acquired::HeldBy { holder, token, .. } => assert_eq!((holder, token), (a.clone(), 1)),
        other => panic!("b must not get a's lease: {other:?}"),
    }
    let renewed = granted(leases, &k, &a, HOUR).await;
    assert_eq!(renewed.token, 1, "renewing keeps the token");
    assert!(renewed.expires_at >= first.expires_at);
    assert_eq!(
        store
            .append_fenced(
                &stream("r"),
                ExpectedVersion::NoStream,
                &[stage_ready_event(0)],
                &renewed
            )
            .await
            .unwrap(),
        1
    );
    // The version check still applies to fenced appends.
    assert!(matches!(
        store
            .append_fenced(
                &stream("r"),
                ExpectedVersion::NoStream,
                &[stage_ready_event(1)],
                &renewed
            )
            .await,
        Err(StoreError::Conflict { .. })
    ));

    // An expired lease fences nothing, and its refused append leaves the stream as it was.
    let k2 = lease_key("production");
    let lapsed = granted(leases, &k2, &a, Duration::ZERO).await;
    let msg = fenced(store, "r", ExpectedVersion::Exact(1), &lapsed).await;
    assert!(msg.contains("expired"), "{msg}");
    assert_eq!(store.read(&stream("r")).await.unwrap().len(), 1);

    // Taken over: a new token; the old holder's appends are refused.
    let taken = granted(leases, &k2, &b, HOUR).await;
    assert_eq!(taken.token, 2, "a lease changing hands gets a new token");
    let msg = fenced(store, "r", ExpectedVersion::Exact(1), &lapsed).await;
    assert!(
        msg.contains("replica-b") && msg.contains("token 2"),
        "{msg}"
    );
    store
        .append_fenced(
            &stream("r"),
            ExpectedVersion::Exact(1),
            &[stage_ready_event(1)],
            &taken,
        )
        .await
        .unwrap();

    // Releasing with a stale lease changes nothing; the holder's release frees it.
    leases.release(&lapsed).await.unwrap();
    assert!(matches!(
        leases.acquire(&k2, &a, HOUR).await.unwrap(),
        Acquired::HeldBy { token: 2, .. }
    ));
    leases.release(&taken).await.unwrap();
    let msg = fenced(store, "r", ExpectedVersion::Exact(2), &taken).await;
    assert!(
        msg.contains("expired"),
        "a released lease fences nothing: {msg}"
    );
    assert_eq!(granted(leases, &k2, &a, HOUR).await.token, 3);

    // A lease never granted fences nothing.
    let forged = Lease {
        key: lease_key("never"),
        ..renewed.clone()
    };
    let msg = fenced(store, "r", ExpectedVersion::Exact(2), &forged).await;
    assert!(msg.contains("ever granted"), "{msg}");
    assert_eq!(store.read(&stream("r")).await.unwrap().len(), 2);
}

/// Leases are stored with the events: a lease granted before closing is still held after
/// reopening (and still fences appends), a lease that changed hands keeps its token, and the
/// next change of hands continues the tokens. A store without leases must still refuse fenced
/// appends after reopening. Leaves stream `r` at version 2.
pub async fn leases_survive_reopening<S: EventStore>(open: impl Fn() -> S) {
    let store = open();
    if store.leases().is_none() {
        drop(store);
        return no_leases(&open()).await;
    }
    let (a, b) = replicas();
    let (k, k2) = (lease_key("canary"), lease_key("production"));
    let held = granted(lease_store(&store), &k, &a, HOUR).await;
    store
        .append_fenced(
            &stream("r"),
            ExpectedVersion::NoStream,
            &[stage_ready_event(0)],
            &held,
        )
        .await
        .unwrap();
    let lapsed = granted(lease_store(&store), &k2, &a, Duration::ZERO).await;
    let taken = granted(lease_store(&store), &k2, &b, HOUR).await;
    assert_eq!(taken.token, 2);
    drop(store);

    let store = open();
    let leases = lease_store(&store);
    assert!(matches!(
        leases.acquire(&k, &b, HOUR).await.unwrap(),
        Acquired::HeldBy { token: 1, .. }
    ));
    store
        .append_fenced(
            &stream("r"),
            ExpectedVersion::Exact(1),
            &[stage_ready_event(1)],
            &held,
        )
        .await
        .unwrap();
    assert!(matches!(
        leases.acquire(&k2, &a, HOUR).await.unwrap(),
        Acquired::HeldBy { token: 2, .. }
    ));
    let msg = fenced(&store, "r", ExpectedVersion::Exact(2), &lapsed).await;
    assert!(
        msg.contains("replica-b") && msg.contains("token 2"),
        "{msg}"
    );
    leases.release(&taken).await.unwrap();
    assert_eq!(granted(leases, &k2, &a, HOUR).await.token, 3);
    assert_eq!(store.read(&stream("r")).await.unwrap().len(), 2);
}
