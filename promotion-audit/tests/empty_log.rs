//! With a trusted key, an empty log without a checkpoint does not verify unless the caller
//! says an empty log is expected: deleting every entry and every checkpoint (a rollback to
//! size 0) leaves exactly that, so it must not pass as "nothing to vouch for".
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use promotion_audit::verify::{verify, verify_anchored, Anchors};
use promotion_audit::{AuditError, AuditOptions, AuditStore, CheckpointSigner, MemoryBackend};
use promotion_core::{EventStore, ExpectedVersion, StreamId};

fn signer() -> CheckpointSigner {
    CheckpointSigner::from_seed("empty.promotion.test", [5u8; 32]).unwrap()
}

fn expecting_empty() -> Anchors {
    Anchors {
        expect_empty: true,
        ..Anchors::default()
    }
}

#[test]
fn an_empty_log_without_checkpoint_fails_under_a_trusted_key_unless_expected() {
    let empty = MemoryBackend::new();
    let key = signer().verifier();
    match verify(&empty, Some(&key)) {
        Err(AuditError::NoCheckpoint { entries: 0 }) => {}
        other => panic!("an empty log verified under a trusted key: {other:?}"),
    }
    let report = verify_anchored(&empty, Some(&key), &expecting_empty()).unwrap();
    assert_eq!(report.entries, 0);
    // Without a trusted key there is nothing to demand.
    assert_eq!(verify(&empty, None).unwrap().entries, 0);
}

/// The attack: a signed log whose entries and checkpoints are all deleted.
#[test]
fn a_log_emptied_of_entries_and_checkpoints_is_refused() {
    let backend = MemoryBackend::new();
    let store = AuditStore::memory_on(
        backend.clone(),
        AuditOptions::new("empty.promotion.test").signer(signer()),
    )
    .unwrap();
    let stream = StreamId::new("s").unwrap();
    let event = promotion_audit::conformance::stage_ready_event(0);
    futures::executor::block_on(store.append(&stream, ExpectedVersion::NoStream, &[event]))
        .unwrap();
    drop(store);
    let key = signer().verifier();
    assert_eq!(verify(&backend, Some(&key)).unwrap().entries, 1);
    // Emptied behind the store's back: as if never written.
    let emptied = MemoryBackend::new();
    match verify(&emptied, Some(&key)) {
        Err(e @ AuditError::NoCheckpoint { entries: 0 }) => {
            assert!(e.to_string().contains("no signed checkpoint"), "{e}");
        }
        other => panic!("an emptied log verified: {other:?}"),
    }
    // Expecting an empty log does not excuse entries without a checkpoint.
    let mut unsigned = MemoryBackend::new();
    let entry = promotion_audit::entry::encode(
        0,
        &stream,
        1,
        "2026-12-07T10:00:00Z".parse().unwrap(),
        &promotion_audit::entry::GENESIS_PREV,
        &promotion_audit::conformance::stage_ready_event(0),
    )
    .unwrap();
    use promotion_audit::backend::Backend;
    unsigned.begin().unwrap();
    unsigned.insert_entries(&[entry]).unwrap();
    unsigned.commit().unwrap();
    match verify_anchored(&unsigned, Some(&key), &expecting_empty()) {
        Err(AuditError::NoCheckpoint { entries: 1 }) => {}
        other => panic!("entries without a checkpoint verified: {other:?}"),
    }
}
