//! The checks every audit [`Backend`](crate::Backend) must pass, through an
//! [`AuditStore`] opened on it by a [`Harness`]: first the [`event_store`]
//! checks, then what only a tamper-evident log promises about the log they leave (its size, its
//! entries, that it verifies), and the checks of proofs, tamper detection and export/import.
//! [`audit_conformance!`](crate::audit_conformance) turns them into one `#[test]` per check;
//! [`run_all`](super::run_all) runs them in turn.

use std::io::BufReader;

use promotion_core::ExpectedVersion;

use super::event_store::{self, append};
use super::{options, Harness};
use crate::checkpoint::CheckpointSigner;
use crate::error::AuditError;
use crate::memory::MemoryBackend;
use crate::merkle::{verify_consistency, verify_inclusion};
use crate::store::AuditStore;

/// Verifies the whole log and checks how many entries and streams it holds.
async fn verifies(store: &AuditStore, entries: u64, streams: Option<u64>) {
    let report = store.verify(None).await.unwrap();
    assert_eq!(report.entries, entries, "entries in the verified log");
    if let Some(streams) = streams {
        assert_eq!(report.streams, streams, "streams in the verified log");
    }
    assert!(report.signature_checked, "the latest checkpoint is signed");
    assert_eq!(store.size().await.unwrap(), entries);
}

/// Streams, versions and global order ([`event_store::ordering_and_versions`]); entries are
/// numbered in append order and the log verifies.
pub async fn ordering_and_versions(h: Harness) {
    let store = (h.open)(options());
    event_store::ordering_and_versions(&store).await;
    for seq in 0..6 {
        assert_eq!(store.entry(seq).await.unwrap().seq, seq);
    }
    verifies(&store, 6, Some(2)).await;
}

/// Optimistic concurrency ([`event_store::conflicts`]): conflicts and empty appends add no
/// entry, and the log verifies.
pub async fn conflicts(h: Harness) {
    let store = (h.open)(options());
    event_store::conflicts(&store).await;
    verifies(&store, 3, Some(2)).await;
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

/// What was appended survives closing and reopening ([`event_store::reopen`]) with the same
/// root; appends continue the chain, and the log after is consistent with the log before.
pub async fn reopen(h: Harness) {
    let store = (h.open)(options());
    event_store::reopen_before(&store).await;
    let root = store.root(4).await.unwrap();
    drop(store);
    let store = (h.open)(options());
    assert_eq!(store.size().await.unwrap(), 4);
    assert_eq!(store.root(4).await.unwrap(), root);
    event_store::reopen_after(&store).await;
    let report = store.verify(None).await.unwrap();
    assert_eq!(report.entries, 6);
    let proof = store.consistency_proof(4, 6).await.unwrap();
    verify_consistency(4, 6, &root, &report.root, &proof).unwrap();
}

/// Many concurrent appenders ([`event_store::concurrent_appends`]): all acknowledged appends
/// are there, in a verifiable log.
pub async fn concurrent_appends(h: Harness) {
    let store = (h.open)(options());
    event_store::concurrent_appends(&store).await;
    verifies(&store, 320, Some(64)).await;
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

/// Leases and fenced appends ([`event_store::leases`]); refused fenced appends add no entry,
/// and the log verifies.
pub async fn leases(h: Harness) {
    let store = (h.open)(options());
    event_store::leases(&store).await;
    verifies(&store, 2, Some(1)).await;
}

/// Leases are stored with the log: they survive reopening
/// ([`event_store::leases_survive_reopening`]), and the log verifies.
pub async fn leases_survive_reopening(h: Harness) {
    let open = || (h.open)(options());
    event_store::leases_survive_reopening(&open).await;
    verifies(&open(), 2, Some(1)).await;
}

/// Two stores (two writers, as two processes would have) over the same log
/// ([`event_store::two_writers`]); the log both wrote verifies.
pub async fn two_writers(h: Harness) {
    let open = || (h.open)(options());
    event_store::two_writers(&open).await;
    verifies(&open(), 4, Some(1)).await;
}
