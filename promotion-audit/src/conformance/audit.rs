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
    assert!(report.signature_checked, "the checkpoints are signed");
    assert!(
        report.checkpoints >= 1,
        "at least one checkpoint was checked"
    );
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
        Err(AuditError::StoredCheckpoint { size: 1, .. })
    ));
}

/// The signer [`options`](super::options) signs with, for checks that sign a checkpoint of
/// their own.
fn suite_signer() -> CheckpointSigner {
    CheckpointSigner::from_seed("conformance.promotion.test", [7u8; 32]).unwrap()
}

/// Changes the stage name in entry 4 (`stage4` to `stageX`), keeping valid JSON.
fn rename_stage4(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .replacen("\"stage4\"", "\"stageX\"", 1)
        .into_bytes()
}

/// A rewrite that re-chains and re-hashes everything after it and recomputes the Merkle
/// nodes ([`forge`](super::forge)) is caught by the signed checkpoints, at the entry it
/// rewrote; once every checkpoint is deleted as well, verifying with the trusted key fails
/// because nothing signed is left, and so does verifying with the store's own key. An empty
/// log, before any append, looks exactly like a log emptied of everything: under a key it
/// fails unless an empty log is expected ([`Anchors::expect_empty`](crate::Anchors)).
pub async fn rewrite_without_checkpoints(h: Harness) {
    let fresh = (h.open)(options());
    match fresh.verify(None).await {
        Err(AuditError::NoCheckpoint { entries: 0 }) => {}
        other => panic!("an empty, unsigned log verified under the store's key: {other:?}"),
    }
    let expected = crate::verify::Anchors {
        expect_empty: true,
        ..crate::verify::Anchors::default()
    };
    let empty = fresh.verify_anchored(None, expected).await.unwrap();
    assert_eq!((empty.entries, empty.checkpoints), (0, 0));
    assert!(!empty.signature_checked);
    drop(fresh);
    let store = ten_entries(&h).await;
    assert_eq!(store.verify(None).await.unwrap().checkpoints, 10);
    super::forge(&store, h.tamper.as_ref(), 4, rename_stage4).await;
    match store.verify(None).await {
        Err(AuditError::Tampered(t)) => {
            assert_eq!((t.seq, t.within()), (4, Some(4..5)), "{t}");
            assert!(t.problem.contains("entry 4 was rewritten"), "{t}");
        }
        other => panic!("a forgery under kept checkpoints verified: {other:?}"),
    }
    h.tamper.delete_checkpoints(0);
    let trusted = suite_signer().verifier();
    for key in [Some(&trusted), None] {
        match store.verify(key).await {
            Err(e @ AuditError::NoCheckpoint { entries: 10 }) => {
                assert!(e.to_string().contains("no signed checkpoint"), "{e}");
            }
            other => panic!("a forgery without checkpoints verified: {other:?}"),
        }
    }
    // Without a key to check against, the rewrite is consistent: only a key can tell.
    let unsigned = (h.open)(crate::store::AuditOptions::new(
        "conformance.promotion.test",
    ));
    assert_eq!(unsigned.verify(None).await.unwrap().checkpoints, 0);
}

/// With a checkpoint every three entries, a rewrite of entry 7 is narrowed to entries 6 to 8:
/// the checkpoint at 6 verifies, the one at 9 does not. Deleting the checkpoints from 7 on
/// leaves entries no signature covers, which a trusted key refuses too.
pub async fn checkpoints_pinpoint_a_rewrite(h: Harness) {
    let store = (h.open)(options());
    for i in 0..4 {
        append(
            &store,
            &format!("b{i}"),
            ExpectedVersion::NoStream,
            i * 3,
            3,
        )
        .await;
    }
    assert_eq!(store.verify(None).await.unwrap().checkpoints, 4);
    super::forge(&store, h.tamper.as_ref(), 7, |b| {
        String::from_utf8(b.to_vec())
            .unwrap()
            .replacen("\"stage7\"", "\"stageX\"", 1)
            .into_bytes()
    })
    .await;
    match store.verify(None).await {
        Err(AuditError::Tampered(t)) => {
            assert_eq!((t.seq, t.within()), (6, Some(6..9)), "{t}");
            assert!(t.problem.contains("one of entries 6 to 8"), "{t}");
        }
        other => panic!("a forgery under kept checkpoints verified: {other:?}"),
    }
    h.tamper.delete_checkpoints(7);
    match store.verify(None).await {
        Err(AuditError::UnsignedTail {
            signed: 6,
            entries: 12,
        }) => {}
        other => panic!("entries after the last checkpoint verified with a key: {other:?}"),
    }
}

/// Every stored checkpoint is checked, not only the latest: an older one with a damaged
/// signature, one stored under another size, and one validly signed over another root are
/// each refused, naming the checkpoint or the entry.
pub async fn every_checkpoint_verified(h: Harness) {
    let store = ten_entries(&h).await;
    let signer = suite_signer();
    let note = |cp: &crate::Checkpoint| signer.sign(cp);
    let original = store.verify(None).await.unwrap();
    let cp4 = crate::Checkpoint {
        size: 4,
        root: store.root(4).await.unwrap(),
        ..original.checkpoint.clone().unwrap()
    };
    let good4 = note(&cp4);
    assert!(
        good4.len() > 10,
        "the test re-signs the checkpoint at size 4 as it was"
    );

    // A damaged signature on the checkpoint at size 4.
    let sig_start = good4.rfind(' ').unwrap() + 1;
    let mut damaged = good4.clone().into_bytes();
    damaged[sig_start + 8] = if damaged[sig_start + 8] == b'A' {
        b'B'
    } else {
        b'A'
    };
    h.tamper
        .put_checkpoint(4, &String::from_utf8(damaged).unwrap());
    match store.verify(None).await {
        Err(AuditError::StoredCheckpoint { size: 4, .. }) => {}
        other => panic!("a damaged older checkpoint verified: {other:?}"),
    }

    // The checkpoint for size 5 stored under size 4.
    let cp5 = crate::Checkpoint {
        size: 5,
        root: store.root(5).await.unwrap(),
        ..cp4.clone()
    };
    h.tamper.put_checkpoint(4, &note(&cp5));
    match store.verify(None).await {
        Err(AuditError::Tampered(t)) => assert_eq!(t.seq, 4, "{t}"),
        other => panic!("a checkpoint stored under another size verified: {other:?}"),
    }

    // Signed by the right key, over another root: the entries before it are blamed, narrowed
    // by the checkpoint at size 3.
    let forged = crate::Checkpoint {
        root: store.root(3).await.unwrap(),
        ..cp4.clone()
    };
    h.tamper.put_checkpoint(4, &note(&forged));
    match store.verify(None).await {
        Err(AuditError::Tampered(t)) => {
            assert_eq!((t.seq, t.within()), (3, Some(3..4)), "{t}")
        }
        other => panic!("an older checkpoint over another root verified: {other:?}"),
    }

    // Put back as it was, the log verifies again with every checkpoint.
    h.tamper.put_checkpoint(4, &good4);
    assert_eq!(store.verify(None).await.unwrap().checkpoints, 10);
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

/// Outside anchors ([`crate::verify::Anchors`]): a checkpoint the verifier saved when the log
/// held 6 entries. Rolling the log back (deleting its newest entries and checkpoints) leaves a
/// log that verifies on its own, but not against the saved checkpoint, which names both sizes;
/// a fork (the same first 4 entries, then another history, every checkpoint re-signed by the
/// log's key) does not verify against it either; a saved checkpoint signed by another key is
/// refused before the log is read.
pub async fn anchors_refuse_rollback_and_fork(h: Harness) {
    let store = (h.open)(options());
    for i in 0..6 {
        append(&store, &format!("t{}", i % 3), ExpectedVersion::Any, i, 1).await;
    }
    let saved = store.latest_checkpoint().await.unwrap().unwrap();
    for i in 6..10 {
        append(&store, &format!("t{}", i % 3), ExpectedVersion::Any, i, 1).await;
    }
    let anchored = |note: &str| crate::verify::Anchors {
        trusted_checkpoint: Some(note.to_owned()),
        ..crate::verify::Anchors::default()
    };
    let report = store.verify_anchored(None, anchored(&saved)).await.unwrap();
    assert_eq!(report.anchor.map(|a| a.size), Some(6));
    assert_eq!(report.entries, 10);

    // Witnesses: the saved checkpoint as a witness cosigned it counts; the same checkpoint
    // without the cosignature, or fewer cosignatures than required, does not verify.
    let w1 = crate::cosign::Cosigner::from_seed("w1.promotion.test", [11u8; 32]).unwrap();
    let w2 = crate::cosign::Cosigner::from_seed("w2.promotion.test", [12u8; 32]).unwrap();
    let cosigned = w1.cosign(&saved, 1_700_000_000).unwrap();
    let witnessed = |note: &str, min: usize| crate::verify::Anchors {
        trusted_checkpoint: Some(note.to_owned()),
        witnesses: vec![w1.verifier(), w2.verifier(), w1.verifier()],
        min_witnesses: min,
        expect_empty: false,
    };
    store
        .verify_anchored(None, witnessed(&cosigned, 1))
        .await
        .unwrap();
    for (note, min) in [(&saved, 1), (&cosigned, 2)] {
        match store.verify_anchored(None, witnessed(note, min)).await {
            Err(AuditError::Anchor(m)) => assert!(m.contains("witness cosignatures"), "{m}"),
            other => panic!("{min} witnesses required, accepted: {other:?}"),
        }
    }
    let both = w2.cosign(&cosigned, 1_700_000_001).unwrap();
    store
        .verify_anchored(None, witnessed(&both, 2))
        .await
        .unwrap();

    // Signed by another key with the same name: refused as the trusted checkpoint.
    let other = CheckpointSigner::from_seed("conformance.promotion.test", [8u8; 32]).unwrap();
    let mut cp = crate::verify::unsigned_checkpoint(&saved).unwrap();
    let foreign = other.sign(&cp);
    match store.verify_anchored(None, anchored(&foreign)).await {
        Err(AuditError::TrustedCheckpoint(_)) => {}
        other => panic!("a saved checkpoint signed by another key was accepted: {other:?}"),
    }
    // Signed by the log's key for another origin: refused, the origins named.
    cp.origin = "another.promotion.test".into();
    match store
        .verify_anchored(None, anchored(&suite_signer().sign(&cp)))
        .await
    {
        Err(AuditError::Anchor(m)) => assert!(m.contains("another.promotion.test"), "{m}"),
        other => panic!("another log's checkpoint was accepted: {other:?}"),
    }

    // A fork: the same first 4 entries, then another history (entry 4 rewritten, every later
    // entry re-chained, every node recomputed), every checkpoint from size 5 on re-signed by
    // the log's own key. It verifies on its own, but not against the saved checkpoint.
    super::forge(&store, h.tamper.as_ref(), 4, rename_stage4).await;
    cp.origin = crate::verify::unsigned_checkpoint(&saved).unwrap().origin;
    for size in 5..=10 {
        cp.size = size;
        cp.root = store.root(size).await.unwrap();
        h.tamper.put_checkpoint(size, &suite_signer().sign(&cp));
    }
    assert_eq!(
        store.verify(None).await.unwrap().entries,
        10,
        "the fork verifies on its own"
    );
    match store.verify_anchored(None, anchored(&saved)).await {
        Err(AuditError::Forked { size: 6, .. }) => {}
        other => panic!("a fork verified against a checkpoint of the original: {other:?}"),
    }
    // A checkpoint of the fork verifies the fork.
    let fork_note = store.latest_checkpoint().await.unwrap().unwrap();
    store
        .verify_anchored(None, anchored(&fork_note))
        .await
        .unwrap();

    // Rollback to 4 entries: consistent in itself, refused against the saved checkpoint.
    h.tamper.truncate(4);
    h.tamper.delete_checkpoints(5);
    assert_eq!(store.verify(None).await.unwrap().entries, 4);
    match store.verify_anchored(None, anchored(&saved)).await {
        Err(e @ AuditError::RolledBack { .. }) => {
            assert!(
                matches!(
                    e,
                    AuditError::RolledBack {
                        trusted: 6,
                        entries: 4
                    }
                ),
                "{e}"
            );
            let text = e.to_string();
            assert!(
                text.contains(" 4 entries") && text.contains("signs 6"),
                "{text}"
            );
        }
        other => panic!("a rolled-back log verified against a saved checkpoint: {other:?}"),
    }
    let verifier = suite_signer().verifier();
    match store.verify_against(&saved, &verifier).await {
        Err(AuditError::RolledBack { trusted: 6, .. }) => {}
        other => panic!("verify_against accepted a rolled-back log: {other:?}"),
    }
    let early = store.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!(
        store.verify_against(&early, &verifier).await.unwrap().size,
        4
    );
}

/// Witness cosignatures stored beside the log's checkpoints
/// ([`AuditStore::store_cosignatures`]): once stored they survive reopening and count toward
/// `min_witnesses` with no note passed in; storing is idempotent; a forged line stored in a
/// witness's name neither counts nor hides the real one; a cosigned note of another tree (a
/// fork's root) or of a size with no checkpoint is refused and changes nothing; the log's own
/// signature stays and the log still verifies.
pub async fn cosignatures_stored_beside_checkpoints(h: Harness) {
    let store = (h.open)(options());
    for i in 0..3 {
        append(&store, "c", ExpectedVersion::Any, i, 1).await;
    }
    let w1 = crate::cosign::Cosigner::from_seed("w1.promotion.test", [11u8; 32]).unwrap();
    let w2 = crate::cosign::Cosigner::from_seed("w2.promotion.test", [12u8; 32]).unwrap();
    let witnesses = |min: usize| crate::verify::Anchors {
        trusted_checkpoint: None,
        witnesses: vec![w1.verifier(), w2.verifier()],
        min_witnesses: min,
        expect_empty: false,
    };
    let latest = store.latest_checkpoint().await.unwrap().unwrap();
    match store.verify_anchored(None, witnesses(1)).await {
        Err(AuditError::Anchor(_)) => {}
        other => panic!("no cosignature is stored yet, accepted: {other:?}"),
    }
    let by_w1 = w1.cosign(&latest, 1_700_000_000).unwrap();
    assert_eq!(store.store_cosignatures(&by_w1).await.unwrap(), 1);
    assert_eq!(store.store_cosignatures(&by_w1).await.unwrap(), 0);
    drop(store);
    let store = (h.open)(options());
    let stored = store.latest_checkpoint().await.unwrap().unwrap();
    assert!(
        stored.starts_with(&latest),
        "the log's note and signature are kept"
    );
    let report = store.verify_anchored(None, witnesses(1)).await.unwrap();
    assert_eq!(report.cosignatures, 1);
    assert!(report.signature_checked);
    match store.verify_anchored(None, witnesses(2)).await {
        Err(AuditError::Anchor(m)) => assert!(m.contains("1 valid witness"), "{m}"),
        other => panic!("2 witnesses required, 1 stored, accepted: {other:?}"),
    }

    // A forged line in w2's name (w1's signature bytes under w2's name and key id): stored,
    // never counted.
    let w1_line = by_w1.lines().last().unwrap().to_owned();
    let w2_line = w2
        .cosign(&latest, 1_700_000_001)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let (w2_head, _) = w2_line.rsplit_once(' ').unwrap();
    let (_, w1_blob) = w1_line.rsplit_once(' ').unwrap();
    let mut blob =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, w1_blob).unwrap();
    let w2_blob = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        w2_line.rsplit_once(' ').unwrap().1,
    )
    .unwrap();
    blob[..4].copy_from_slice(&w2_blob[..4]);
    let forged_line = format!(
        "{w2_head} {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &blob)
    );
    let forged = format!("{latest}{forged_line}\n");
    assert_eq!(store.store_cosignatures(&forged).await.unwrap(), 1);
    match store.verify_anchored(None, witnesses(2)).await {
        Err(AuditError::Anchor(m)) => assert!(m.contains("1 valid witness"), "{m}"),
        other => panic!("a forged cosignature counted: {other:?}"),
    }
    // The real one, stored after the forgery, counts: the forgery does not hide it.
    let by_w2 = w2.cosign(&latest, 1_700_000_002).unwrap();
    assert_eq!(store.store_cosignatures(&by_w2).await.unwrap(), 1);
    assert_eq!(
        store
            .verify_anchored(None, witnesses(2))
            .await
            .unwrap()
            .cosignatures,
        2
    );

    // Another tree at the same size (a fork's checkpoint, signed by the log's key): refused.
    let mut cp = crate::verify::unsigned_checkpoint(&latest).unwrap();
    cp.root = [0xee; 32];
    let other_tree = w1.cosign(&suite_signer().sign(&cp), 1).unwrap();
    match store.store_cosignatures(&other_tree).await {
        Err(AuditError::Anchor(m)) => assert!(m.contains("not the one the log stores"), "{m}"),
        other => panic!("a cosignature of another tree was stored: {other:?}"),
    }
    cp.size = 99;
    match store
        .store_cosignatures(&w1.cosign(&suite_signer().sign(&cp), 1).unwrap())
        .await
    {
        Err(AuditError::Anchor(m)) => assert!(m.contains("no checkpoint at size 99"), "{m}"),
        other => panic!("a cosignature of no stored checkpoint was stored: {other:?}"),
    }
    verifies(&store, 3, Some(1)).await;
}
