//! The conformance suite every storage backend runs (feature `conformance`).
//!
//! Like object_store's integration module: each function takes a [`Harness`] for a fresh, empty
//! log, exercises it, and panics with a message on the first deviation. [`run_all`] runs them
//! all. A backend's tests call it with their own harness:
//!
//! ```ignore
//! promotion_audit::conformance::run_all(|| my_backend_harness()).await;
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use promotion_core::lease::{Acquired, Lease, LeaseKey, LeaseStore, ReplicaId};
use promotion_core::{
    Actor, Event, EventBody, EventStore, ExpectedVersion, ManualClock, StageName, StoreError,
    StreamId,
};

use crate::checkpoint::CheckpointSigner;
use crate::error::AuditError;
use crate::memory::MemoryBackend;
use crate::merkle::{verify_consistency, verify_inclusion};
use crate::store::{AuditOptions, AuditStore};

/// Ways to damage a stored log behind the store's back, as an attacker with write access to
/// the storage would.
pub trait Tamper: Send + Sync {
    /// Changes one byte of entry `seq`'s stored bytes (inside its event), leaving its recorded
    /// hash as it was.
    fn flip_byte(&self, seq: u64);
    /// Deletes entry `seq`.
    fn delete(&self, seq: u64);
    /// Exchanges the stored bytes and hashes of entries `a` and `b`.
    fn swap(&self, a: u64, b: u64);
    /// Deletes every entry from `keep` on.
    fn truncate(&self, keep: u64);
    /// Appends a copy of entry `seq`'s bytes and hash as a new last entry.
    fn duplicate(&self, seq: u64);
}

/// A fresh, empty log of the backend under test.
pub struct Harness {
    /// Opens the log (again): every call returns a new store over the same storage.
    pub open: Box<dyn Fn(AuditOptions) -> AuditStore + Send + Sync>,
    /// Damages the storage directly.
    pub tamper: Box<dyn Tamper>,
}

/// Flips one byte inside the event of an entry's canonical bytes, keeping valid JSON.
pub fn flip_event_byte(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let needle = b"\"stage\":\"";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + needle.len())
        .expect("conformance entries have a stage");
    out[at] ^= 0x01;
    out
}

fn t0() -> DateTime<Utc> {
    "2026-11-26T09:00:00Z".parse().unwrap()
}

/// Options the suite uses: a fixed clock and a signing key.
pub fn options() -> AuditOptions {
    let signer = CheckpointSigner::from_seed("conformance.promotion.test", [7u8; 32]).unwrap();
    AuditOptions::new("conformance.promotion.test")
        .signer(signer)
        .clock(Arc::new(ManualClock::at(t0())))
}

/// The suite's `i`-th event: the stage `stage{i}` became ready.
pub fn stage_ready_event(i: u64) -> Event {
    Event {
        at: t0(),
        actor: Actor::Engine,
        request: None,
        body: EventBody::StageReady {
            stage: StageName::new(format!("stage{i}")).unwrap(),
        },
    }
}

fn stream(name: &str) -> StreamId {
    StreamId::new(name).unwrap()
}

async fn append(store: &AuditStore, s: &str, expected: ExpectedVersion, from: u64, n: u64) -> u64 {
    let events: Vec<Event> = (from..from + n).map(stage_ready_event).collect();
    store
        .append(&stream(s), expected, &events)
        .await
        .unwrap_or_else(|e| panic!("append to {s} failed: {e}"))
}

/// Streams, versions and global order.
pub async fn ordering_and_versions(h: Harness) {
    let store = (h.open)(options());
    assert_eq!(
        append(&store, "a", ExpectedVersion::NoStream, 0, 3).await,
        3
    );
    assert_eq!(
        append(&store, "b", ExpectedVersion::NoStream, 3, 2).await,
        2
    );
    assert_eq!(
        append(&store, "a", ExpectedVersion::Exact(3), 5, 1).await,
        4
    );
    let a = store.read(&stream("a")).await.unwrap();
    assert_eq!(
        a.iter().map(|r| r.version).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(a[3].event, stage_ready_event(5));
    assert_eq!(a[0].event, stage_ready_event(0));
    assert!(store.read(&stream("none")).await.unwrap().is_empty());
    let mut streams = store.streams().await.unwrap();
    streams.sort();
    assert_eq!(streams, [stream("a"), stream("b")]);
    assert_eq!(store.size().await.unwrap(), 6);
    for seq in 0..6 {
        assert_eq!(store.entry(seq).await.unwrap().seq, seq);
    }
    let report = store.verify(None).await.unwrap();
    assert_eq!((report.entries, report.streams), (6, 2));
    assert!(report.signature_checked);
}

/// Optimistic concurrency: a conflict is typed and appends nothing.
pub async fn conflicts(h: Harness) {
    let store = (h.open)(options());
    append(&store, "a", ExpectedVersion::NoStream, 0, 1).await;
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
    assert_eq!(store.size().await.unwrap(), 1, "conflicts appended nothing");
    assert_eq!(
        store
            .append(&stream("a"), ExpectedVersion::Exact(1), &[])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.size().await.unwrap(),
        1,
        "an empty append writes nothing"
    );
    assert_eq!(append(&store, "a", ExpectedVersion::Any, 1, 1).await, 2);
    // Many appenders race for the same new stream: exactly one wins.
    let racers = (0..8).map(|i| {
        let store = store.clone();
        async move {
            store
                .append(
                    &stream("race"),
                    ExpectedVersion::NoStream,
                    &[stage_ready_event(100 + i)],
                )
                .await
        }
    });
    let results = futures::future::join_all(racers).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, StoreError::Conflict { .. })));
    store.verify(None).await.unwrap();
}

/// Inclusion and consistency proofs for every size, and the checkpoint's root.
pub async fn proofs(h: Harness) {
    let store = (h.open)(options());
    let mut total = 0;
    for (i, n) in [1u64, 2, 3, 1, 5, 8].into_iter().enumerate() {
        append(
            &store,
            &format!("s{i}"),
            ExpectedVersion::NoStream,
            total,
            n,
        )
        .await;
        total += n;
    }
    assert_eq!(store.size().await.unwrap(), total);
    let mut roots = Vec::new();
    for n in 1..=total {
        roots.push(store.root(n).await.unwrap());
    }
    for n in 1..=total {
        let root = roots[(n - 1) as usize];
        for i in 0..n {
            let leaf = store.entry(i).await.unwrap().hash;
            let proof = store.inclusion_proof(i, n).await.unwrap();
            verify_inclusion(&leaf, i, n, &proof, &root)
                .unwrap_or_else(|e| panic!("inclusion of {i} in {n}: {e}"));
        }
        for m in 1..=n {
            let proof = store.consistency_proof(m, n).await.unwrap();
            verify_consistency(m, n, &roots[(m - 1) as usize], &root, &proof)
                .unwrap_or_else(|e| panic!("consistency {m} -> {n}: {e}"));
        }
    }
    let note = store
        .latest_checkpoint()
        .await
        .unwrap()
        .expect("signed checkpoint");
    let cp = store.verifier().unwrap().verify(&note).unwrap();
    assert_eq!((cp.size, cp.root), (total, roots[(total - 1) as usize]));
    assert!(matches!(
        store.inclusion_proof(0, total + 1).await,
        Err(AuditError::InvalidRequest(_))
    ));
    assert!(matches!(
        store.inclusion_proof(total, total).await,
        Err(AuditError::Proof(_))
    ));
}

/// What was appended survives closing and reopening; appends continue the chain.
pub async fn reopen(h: Harness) {
    let store = (h.open)(options());
    append(&store, "a", ExpectedVersion::NoStream, 0, 4).await;
    let root = store.root(4).await.unwrap();
    drop(store);
    let store = (h.open)(options());
    assert_eq!(store.size().await.unwrap(), 4);
    assert_eq!(store.root(4).await.unwrap(), root);
    assert_eq!(store.read(&stream("a")).await.unwrap().len(), 4);
    assert_eq!(
        append(&store, "a", ExpectedVersion::Exact(4), 4, 2).await,
        6
    );
    let report = store.verify(None).await.unwrap();
    assert_eq!(report.entries, 6);
    let proof = store.consistency_proof(4, 6).await.unwrap();
    verify_consistency(4, 6, &root, &report.root, &proof).unwrap();
}

/// Many concurrent appenders: all acknowledged appends are there, in a verifiable log.
pub async fn concurrent_appends(h: Harness) {
    let store = (h.open)(options());
    let tasks = (0..64u64).map(|i| {
        let store = store.clone();
        async move {
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
        }
    });
    futures::future::join_all(tasks).await;
    assert_eq!(store.size().await.unwrap(), 320);
    for i in 0..64u64 {
        let events = store.read(&stream(&format!("c{i}"))).await.unwrap();
        assert_eq!(events.len(), 5);
        assert_eq!(events[4].event, stage_ready_event(i * 100 + 4));
    }
    assert_eq!(store.verify(None).await.unwrap().entries, 320);
}

async fn ten_entries(h: &Harness) -> AuditStore {
    let store = (h.open)(options());
    for i in 0..10 {
        append(&store, &format!("t{}", i % 3), ExpectedVersion::Any, i, 1).await;
    }
    store.verify(None).await.unwrap();
    store
}

async fn assert_names(store: &AuditStore, seq: u64, what: &str) {
    match store.verify(None).await {
        Err(AuditError::Tampered(t)) => assert_eq!(t.seq, seq, "{what}: {t}"),
        other => panic!("{what}: expected the log to fail verification at {seq}, got {other:?}"),
    }
}

/// Every kind of damage is detected, and the first damaged entry is named.
pub async fn tamper_detection(make: &dyn Fn() -> Harness) {
    let h = make();
    let store = ten_entries(&h).await;
    h.tamper.flip_byte(4);
    assert_names(&store, 4, "a changed payload byte").await;

    let h = make();
    let store = ten_entries(&h).await;
    h.tamper.delete(4);
    assert_names(&store, 4, "a deleted entry").await;

    let h = make();
    let store = ten_entries(&h).await;
    h.tamper.swap(3, 6);
    assert_names(&store, 3, "two swapped entries").await;

    let h = make();
    let store = ten_entries(&h).await;
    h.tamper.truncate(7);
    assert_names(&store, 7, "a truncated tail").await;

    let h = make();
    let store = ten_entries(&h).await;
    h.tamper.duplicate(2);
    assert_names(&store, 10, "a duplicated entry").await;

    // A checkpoint by another key is refused when the auditor trusts only the real one.
    let h = make();
    let store = ten_entries(&h).await;
    let other = CheckpointSigner::from_seed("conformance.promotion.test", [8u8; 32]).unwrap();
    assert!(matches!(
        store.verify(Some(&other.verifier())).await,
        Err(AuditError::Checkpoint(_))
    ));
}

/// Export to JSON Lines and import, verifying; a damaged export is refused with its line.
pub async fn export_import(h: Harness) {
    let store = ten_entries(&h).await;
    let exported = store
        .with_reader(|b| {
            let mut out = Vec::new();
            crate::jsonl::export(b, &mut out)?;
            Ok(out)
        })
        .await
        .unwrap();
    let text = String::from_utf8(exported.clone()).unwrap();
    assert_eq!(text.lines().count(), 11, "ten entries and a checkpoint");
    let verifier = store.verifier().unwrap().clone();
    let mut target = MemoryBackend::new();
    let report = crate::jsonl::import(
        &mut BufReader::new(&exported[..]),
        &mut target,
        Some(&verifier),
    )
    .unwrap();
    assert_eq!(report.entries, 10);
    assert!(report.signature_checked);
    let imported = AuditStore::memory_on(target, options()).unwrap();
    assert_eq!(
        imported.verify(None).await.unwrap().root,
        store.root(10).await.unwrap()
    );
    // Damage line 5 (entry 4): the import names it and imports nothing.
    let damaged = text.replacen("stage4", "stage5", 1);
    let mut target = MemoryBackend::new();
    let err =
        crate::jsonl::import(&mut damaged.as_bytes(), &mut target, Some(&verifier)).unwrap_err();
    assert!(matches!(err, AuditError::Import { line: 5, .. }), "{err}");
    assert_eq!(crate::backend::Backend::size(&target).unwrap(), 0);
}

fn lease_key(stage: &str) -> LeaseKey {
    let release = promotion_core::Release::builder("conformance 1.0", "repo", "c".repeat(40), t0())
        .artifact("app", format!("sha256:{}", "ab".repeat(32)))
        .builder("ci")
        .build()
        .unwrap();
    LeaseKey::new(release.id(), StageName::new(stage).unwrap())
}

async fn granted(store: &AuditStore, key: &LeaseKey, holder: &ReplicaId, ttl: Duration) -> Lease {
    match store.acquire(key, holder, ttl).await.unwrap() {
        Acquired::Granted(lease) => lease,
        other => panic!("{holder} expected to be granted {key}, got {other:?}"),
    }
}

async fn fenced(store: &AuditStore, s: &str, expected: ExpectedVersion, lease: &Lease) -> String {
    match store
        .append_fenced(&stream(s), expected, &[stage_ready_event(0)], lease)
        .await
    {
        Err(e @ StoreError::Fenced { .. }) => e.to_string(),
        other => panic!("append fenced by {lease:?} should be refused, got {other:?}"),
    }
}

/// Leases and fenced appends: tokens grow when a lease changes hands and not on renewal, a
/// lease held by another is refused, fenced appends go through only with the current lease and
/// append nothing otherwise, and leases survive reopening. Expiry is tested with zero-length
/// leases, so the suite holds whichever clock the backend judges by.
pub async fn leases(h: Harness) {
    let store = (h.open)(options());
    let (a, b) = (
        ReplicaId::new("replica-a").unwrap(),
        ReplicaId::new("replica-b").unwrap(),
    );
    let hour = Duration::from_secs(3600);
    let k = lease_key("canary");

    let first = granted(&store, &k, &a, hour).await;
    assert_eq!(first.token, 1, "the first lease on a key has token 1");
    match store.acquire(&k, &b, hour).await.unwrap() {
        Acquired::HeldBy { holder, token, .. } => assert_eq!((holder, token), (a.clone(), 1)),
        other => panic!("b must not get a's lease: {other:?}"),
    }
    let renewed = granted(&store, &k, &a, hour).await;
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
    let lapsed = granted(&store, &k2, &a, Duration::ZERO).await;
    let msg = fenced(&store, "r", ExpectedVersion::Exact(1), &lapsed).await;
    assert!(msg.contains("expired"), "{msg}");
    assert_eq!(store.read(&stream("r")).await.unwrap().len(), 1);

    // Taken over: a new token; the old holder's appends are refused.
    let taken = granted(&store, &k2, &b, hour).await;
    assert_eq!(taken.token, 2, "a lease changing hands gets a new token");
    let msg = fenced(&store, "r", ExpectedVersion::Exact(1), &lapsed).await;
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
    store.release(&lapsed).await.unwrap();
    assert!(matches!(
        store.acquire(&k2, &a, hour).await.unwrap(),
        Acquired::HeldBy { token: 2, .. }
    ));
    store.release(&taken).await.unwrap();
    let msg = fenced(&store, "r", ExpectedVersion::Exact(2), &taken).await;
    assert!(
        msg.contains("expired"),
        "a released lease fences nothing: {msg}"
    );
    assert_eq!(granted(&store, &k2, &a, hour).await.token, 3);

    // A lease never granted fences nothing.
    let forged = Lease {
        key: lease_key("never"),
        ..renewed.clone()
    };
    let msg = fenced(&store, "r", ExpectedVersion::Exact(2), &forged).await;
    assert!(msg.contains("ever granted"), "{msg}");
    assert_eq!(store.read(&stream("r")).await.unwrap().len(), 2);

    // Leases are stored with the log: they survive reopening.
    drop(store);
    let store = (h.open)(options());
    assert!(matches!(
        store.acquire(&k, &b, hour).await.unwrap(),
        Acquired::HeldBy { token: 1, .. }
    ));
    store
        .append_fenced(
            &stream("r"),
            ExpectedVersion::Exact(2),
            &[stage_ready_event(2)],
            &renewed,
        )
        .await
        .unwrap();
    assert_eq!(store.verify(None).await.unwrap().entries, 3);
}

/// Two stores (two writers, as two processes would have) over the same log, appending to the
/// same stream in turn: each sees the other's appends, and a writer's stale expectation is a
/// conflict, however much it remembers of its own last commit.
pub async fn two_writers(h: Harness) {
    let a = (h.open)(options());
    let b = (h.open)(options());
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
    assert_eq!(a.verify(None).await.unwrap().entries, 4);
}

/// Runs the whole suite; `make` returns a harness for a fresh, empty log each time.
pub async fn run_all(make: &dyn Fn() -> Harness) {
    leases(make()).await;
    two_writers(make()).await;
    ordering_and_versions(make()).await;
    conflicts(make()).await;
    proofs(make()).await;
    reopen(make()).await;
    concurrent_appends(make()).await;
    tamper_detection(make).await;
    export_import(make()).await;
}

/// The harness for the in-memory backend.
pub fn memory_harness() -> Harness {
    let backend = MemoryBackend::new();
    let b = backend.clone();
    Harness {
        open: Box::new(move |o| AuditStore::memory_on(b.clone(), o).unwrap()),
        tamper: Box::new(MemoryTamper(backend)),
    }
}

struct MemoryTamper(MemoryBackend);

impl Tamper for MemoryTamper {
    fn flip_byte(&self, seq: u64) {
        self.0.tamper(|rows| {
            let e = rows.entries.get_mut(&seq).unwrap();
            e.bytes = flip_event_byte(&e.bytes);
        });
    }
    fn delete(&self, seq: u64) {
        self.0.tamper(|rows| rows.entries.remove(&seq));
    }
    fn swap(&self, a: u64, b: u64) {
        self.0.tamper(|rows| {
            let ea = rows.entries[&a].clone();
            let eb = rows.entries[&b].clone();
            let x = rows.entries.get_mut(&a).unwrap();
            (x.bytes, x.hash) = (eb.bytes, eb.hash);
            let y = rows.entries.get_mut(&b).unwrap();
            (y.bytes, y.hash) = (ea.bytes, ea.hash);
        });
    }
    fn truncate(&self, keep: u64) {
        self.0.tamper(|rows| rows.entries.retain(|s, _| *s < keep));
    }
    fn duplicate(&self, seq: u64) {
        self.0.tamper(|rows| {
            let mut e = rows.entries[&seq].clone();
            let next = rows.entries.keys().max().unwrap() + 1;
            e.seq = next;
            e.version += 1000;
            rows.entries.insert(next, e);
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_backend_conforms() {
        futures::executor::block_on(super::run_all(&super::memory_harness));
    }
}
