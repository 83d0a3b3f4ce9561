//! Property tests of the audit log against a model: any sequence of appends gives the same
//! answers as the plain in-memory store, always verifies, and any single act of tampering is
//! detected at the entry where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::executor::block_on;
use promotion_audit::merkle::{verify_consistency, verify_inclusion};
use promotion_audit::{AuditError, AuditOptions, AuditStore, CheckpointSigner, MemoryBackend};
use promotion_core::{
    Actor, Event, EventBody, EventStore, ExpectedVersion, InMemoryStore, ManualClock, StageName,
    StoreError, StreamId,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Expect {
    NoStream,
    Correct,
    Off(u64),
    Any,
}

#[derive(Debug, Clone)]
struct Op {
    stream: u8,
    expect: Expect,
    events: u8,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0u8..4,
        prop_oneof![
            Just(Expect::NoStream),
            Just(Expect::Correct),
            Just(Expect::Correct),
            (1u64..3).prop_map(Expect::Off),
            Just(Expect::Any),
        ],
        0u8..4,
    )
        .prop_map(|(stream, expect, events)| Op {
            stream,
            expect,
            events,
        })
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Flip,
    Delete,
    Swap,
    Truncate,
    Duplicate,
}

fn t0() -> DateTime<Utc> {
    "2026-11-26T09:00:00Z".parse().unwrap()
}

fn event(n: usize) -> Event {
    Event {
        at: t0(),
        actor: Actor::Engine,
        request: None,
        body: EventBody::StageReady {
            stage: StageName::new(format!("stage{n}")).unwrap(),
        },
    }
}

fn options() -> AuditOptions {
    AuditOptions::new("props.promotion.test")
        .signer(CheckpointSigner::from_seed("props.promotion.test", [9u8; 32]).unwrap())
        .clock(Arc::new(ManualClock::at(t0())))
}

/// Runs `ops` against both stores; returns the audit store, its backend and the entry count.
fn run(ops: &[Op]) -> (AuditStore, MemoryBackend, u64) {
    let backend = MemoryBackend::new();
    let audit = AuditStore::memory_on(backend.clone(), options()).unwrap();
    let model = InMemoryStore::new();
    let mut n = 0usize;
    for op in ops {
        let stream = StreamId::new(format!("s{}", op.stream)).unwrap();
        let current = block_on(model.read(&stream)).unwrap().len() as u64;
        let expected = match op.expect {
            Expect::NoStream => ExpectedVersion::NoStream,
            Expect::Correct => ExpectedVersion::Exact(current),
            Expect::Off(d) => ExpectedVersion::Exact(current + d),
            Expect::Any => ExpectedVersion::Any,
        };
        let events: Vec<Event> = (0..op.events as usize).map(|i| event(n + i)).collect();
        let a = block_on(audit.append(&stream, expected, &events));
        let m = block_on(model.append(&stream, expected, &events));
        match (&a, &m) {
            (Ok(x), Ok(y)) => {
                assert_eq!(x, y, "{op:?}");
                n += events.len();
            }
            (
                Err(StoreError::Conflict { actual: x, .. }),
                Err(StoreError::Conflict { actual: y, .. }),
            ) => {
                assert_eq!(x, y, "{op:?}")
            }
            _ => panic!("audit store and model disagree on {op:?}: {a:?} vs {m:?}"),
        }
    }
    for s in 0..4 {
        let stream = StreamId::new(format!("s{s}")).unwrap();
        let a: Vec<_> = block_on(audit.read(&stream)).unwrap();
        let m: Vec<_> = block_on(model.read(&stream)).unwrap();
        assert_eq!(a, m, "stream {stream}");
    }
    (audit, backend, n as u64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_log_agrees_with_the_model_and_verifies(ops in prop::collection::vec(op(), 1..40)) {
        let (audit, _, n) = run(&ops);
        // A log the operations left empty has no checkpoint: the store's own key accepts it
        // only as an expected empty log.
        let expect_empty = promotion_audit::Anchors { expect_empty: n == 0, ..Default::default() };
        let report = block_on(audit.verify_anchored(None, expect_empty)).unwrap();
        prop_assert_eq!(report.entries, n);
        if n > 0 {
            prop_assert!(report.signature_checked);
            let cp = report.checkpoint.unwrap();
            prop_assert_eq!((cp.size, cp.root), (n, report.root));
            // A proof from a random earlier size to now, and of a random entry, verify.
            let m = 1 + (n * 7919) % n;
            let old = block_on(audit.root(m)).unwrap();
            let proof = block_on(audit.consistency_proof(m, n)).unwrap();
            prop_assert!(verify_consistency(m, n, &old, &report.root, &proof).is_ok());
            let i = (n * 104_729) % n;
            let leaf = block_on(audit.entry(i)).unwrap().hash;
            let proof = block_on(audit.inclusion_proof(i, n)).unwrap();
            prop_assert!(verify_inclusion(&leaf, i, n, &proof, &report.root).is_ok());
        }
    }

    #[test]
    fn any_damage_is_named_where_it_happened(
        ops in prop::collection::vec(op(), 1..30),
        damage in prop_oneof![
            Just(Damage::Flip), Just(Damage::Delete), Just(Damage::Swap),
            Just(Damage::Truncate), Just(Damage::Duplicate)
        ],
        pick in any::<u64>(),
        pick2 in any::<u64>(),
    ) {
        let (audit, backend, n) = run(&ops);
        prop_assume!(n >= 2);
        let a = pick % n;
        let b = pick2 % n;
        let expected = match damage {
            Damage::Flip => {
                backend.tamper(|rows| {
                    let e = rows.entries.get_mut(&a).unwrap();
                    let at = e.bytes.windows(9).position(|w| w == b"\"stage\":\"").unwrap() + 9;
                    e.bytes[at] ^= 0x01;
                });
                a
            }
            Damage::Delete => {
                backend.tamper(|rows| rows.entries.remove(&a));
                a
            }
            Damage::Swap => {
                prop_assume!(a != b);
                backend.tamper(|rows| {
                    let ea = rows.entries[&a].clone();
                    let eb = rows.entries[&b].clone();
                    let x = rows.entries.get_mut(&a).unwrap();
                    (x.bytes, x.hash) = (eb.bytes, eb.hash);
                    let y = rows.entries.get_mut(&b).unwrap();
                    (y.bytes, y.hash) = (ea.bytes, ea.hash);
                });
                a.min(b)
            }
            Damage::Truncate => {
                backend.tamper(|rows| rows.entries.retain(|s, _| *s < a));
                a
            }
            Damage::Duplicate => {
                backend.tamper(|rows| {
                    let mut e = rows.entries[&a].clone();
                    e.seq = n;
                    e.version += 1000;
                    rows.entries.insert(n, e);
                });
                n
            }
        };
        match block_on(audit.verify(None)) {
            Err(AuditError::Tampered(t)) => prop_assert_eq!(t.seq, expected, "{:?}: {}", damage, t),
            other => prop_assert!(false, "{:?} at {} not detected: {:?}", damage, expected, other),
        }
    }
}
