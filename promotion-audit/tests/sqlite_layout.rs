//! The SQLite backend stores entries in blocks, keeps a stream index that lags behind the log,
//! and stores only the upper Merkle levels. This test drives a SQLite store and an in-memory
//! store (one row per entry, every node stored) with the same appends, across every boundary
//! of that layout (full blocks, entries larger than a block, blocks grown by later commits,
//! the index catching up, reopening in between), and checks that every read, root, proof and
//! verification agrees.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::executor::block_on;
use promotion_audit::sqlite::{BLOCK_MAX_BYTES, INDEX_EVERY, NODE_LEVEL};
use promotion_audit::{AuditOptions, AuditStore, CheckpointSigner};
use promotion_core::{
    Actor, Event, EventBody, EventStore, Evidence, ExpectedVersion, GateName, ManualClock, Outcome,
    PhaseId, StageName, StreamId,
};

fn t0() -> DateTime<Utc> {
    "2026-11-26T09:00:00Z".parse().unwrap()
}

fn options() -> AuditOptions {
    let signer = CheckpointSigner::from_seed("layout.promotion.test", [5u8; 32]).unwrap();
    AuditOptions::new("layout.promotion.test")
        .signer(signer)
        .clock(Arc::new(ManualClock::at(t0())))
}

/// A gate result whose evidence summary is `size` bytes long.
fn event(i: u64, size: usize) -> Event {
    let gate = GateName::new("smoke").unwrap();
    let summary: String = format!("{i}:")
        .chars()
        .chain(std::iter::repeat('x'))
        .take(size)
        .collect();
    let evidence = Evidence::new("layout-test", t0(), summary);
    Event {
        at: t0(),
        actor: Actor::Gate { name: gate.clone() },
        request: None,
        body: EventBody::GateEvaluated {
            stage: StageName::new("canary").unwrap(),
            phase: PhaseId::Verification,
            round: 1,
            gate,
            outcome: Outcome::Pass,
            attempts: 1,
            evidence_digest: Some(evidence.digest()),
            evidence: Some(Box::new(evidence)),
        },
    }
}

/// A small deterministic generator, so that a failure reproduces.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

async fn agree(sqlite: &AuditStore, memory: &AuditStore, streams: &[StreamId], rng: &mut Lcg) {
    let size = memory.size().await.unwrap();
    assert_eq!(sqlite.size().await.unwrap(), size);
    for stream in streams {
        let want = memory.read(stream).await.unwrap();
        assert_eq!(sqlite.read(stream).await.unwrap(), want, "read({stream})");
        let after = rng.below(want.len() as u64 + 1);
        assert_eq!(
            sqlite.read_from(stream, after).await.unwrap(),
            memory.read_from(stream, after).await.unwrap(),
            "read_from({stream}, {after})"
        );
    }
    assert_eq!(
        sqlite.streams().await.unwrap(),
        memory.streams().await.unwrap()
    );
    for _ in 0..25 {
        let n = 1 + rng.below(size);
        let m = 1 + rng.below(n);
        let i = rng.below(n);
        assert_eq!(
            sqlite.root(n).await.unwrap(),
            memory.root(n).await.unwrap(),
            "root({n})"
        );
        assert_eq!(
            sqlite.inclusion_proof(i, n).await.unwrap(),
            memory.inclusion_proof(i, n).await.unwrap(),
            "inclusion_proof({i}, {n})"
        );
        assert_eq!(
            sqlite.consistency_proof(m, n).await.unwrap(),
            memory.consistency_proof(m, n).await.unwrap(),
            "consistency_proof({m}, {n})"
        );
        assert_eq!(
            sqlite.entry(i).await.unwrap(),
            memory.entry(i).await.unwrap()
        );
    }
    let (a, b) = (
        sqlite.verify(None).await.unwrap(),
        memory.verify(None).await.unwrap(),
    );
    assert_eq!(
        (a.entries, a.bytes, a.streams, a.root),
        (b.entries, b.bytes, b.streams, b.root)
    );
}

#[test]
fn the_block_layout_reads_like_one_row_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layout.db");
    let memory = AuditStore::memory(options()).unwrap();
    let mut sqlite = AuditStore::open_sqlite(&path, options()).unwrap();
    let streams: Vec<StreamId> = (0..13)
        .map(|i| StreamId::new(format!("release-{i}")).unwrap())
        .collect();
    let mut versions = vec![0u64; streams.len()];
    let mut rng = Lcg(7);
    let mut i = 0u64;
    let target = 3 * INDEX_EVERY + 500;
    let mut next_check = 700;
    block_on(async {
        while i < target {
            let s = rng.below(streams.len() as u64) as usize;
            // Mostly single events (blocks grow commit by commit), sometimes a batch that
            // fills several blocks, sometimes an entry larger than a block.
            let batch = match rng.below(10) {
                0 => 1 + rng.below(150),
                1..=3 => 1 + rng.below(8),
                _ => 1,
            };
            let events: Vec<Event> = (0..batch)
                .map(|k| {
                    let size = if rng.below(200) == 0 {
                        BLOCK_MAX_BYTES + 100
                    } else {
                        40 + rng.below(600) as usize
                    };
                    event(i + k, size)
                })
                .collect();
            let expected = match versions[s] {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(v),
            };
            let v = sqlite.append(&streams[s], expected, &events).await.unwrap();
            assert_eq!(
                memory.append(&streams[s], expected, &events).await.unwrap(),
                v
            );
            versions[s] = v;
            i += batch;
            if i >= next_check {
                agree(&sqlite, &memory, &streams, &mut rng).await;
                // Reopen: the writer finds versions through the index and the last blocks,
                // and rebuilds its frontier from stored and computed nodes.
                drop(sqlite);
                sqlite = AuditStore::open_sqlite(&path, options()).unwrap();
                next_check += 900;
            }
        }
        agree(&sqlite, &memory, &streams, &mut rng).await;
    });
    // The layout was exercised, not just the API: the index lags, large entries got blocks
    // of their own, upper nodes only are stored.
    let c = rusqlite::Connection::open(&path).unwrap();
    let one = |q: &str| -> i64 { c.query_row(q, [], |r| r.get(0)).unwrap() };
    let size = one("SELECT MAX(first + count) FROM blocks") as u64;
    let upto = one("SELECT upto FROM indexed") as u64;
    assert!(
        upto >= 3 * INDEX_EVERY && upto <= size,
        "indexed up to {upto} of {size}"
    );
    assert_eq!(one("SELECT count(*) FROM stream_index") as u64, upto);
    assert!(
        one(&format!(
            "SELECT count(*) FROM blocks WHERE length(data) > {BLOCK_MAX_BYTES}"
        )) > 0
    );
    assert!(
        one("SELECT count(*) FROM blocks") < (size / 4) as i64,
        "entries share blocks"
    );
    assert_eq!(
        one(&format!(
            "SELECT count(*) FROM nodes WHERE level < {NODE_LEVEL}"
        )),
        0
    );
}
