//! The cosignature format as C2SP tlog-cosignature specifies it (tlog-cosignature.md,
//! sections "Format" and "Ed25519 signed message"), checked from its parts, and the witness's
//! refusals.

use sha2::{Digest as _, Sha256};

use super::*;
use crate::checkpoint::CheckpointSigner;
use crate::merkle::{consistency_proof, MemoryNodes};

const ORIGIN: &str = "witness-test.promotion.test/log";

fn log_signer() -> CheckpointSigner {
    CheckpointSigner::from_seed(ORIGIN, [1u8; 32]).unwrap()
}

fn witness() -> Cosigner {
    Cosigner::from_seed("witness.promotion.test/w1", [2u8; 32]).unwrap()
}

/// A log of `n` leaves `prefix-i`, its signed checkpoint note and its nodes.
fn log(prefix: &str, n: u64) -> (String, Checkpoint, MemoryNodes) {
    let (nodes, frontier) =
        MemoryNodes::from_leaves((0..n).map(|i| format!("{prefix}-{i}").into_bytes()));
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: n,
        root: frontier.root(),
        extensions: vec![],
    };
    (log_signer().sign(&cp), cp, nodes)
}

#[test]
fn a_cosignature_line_is_key_id_timestamp_and_signature_over_the_spec_message() {
    let (note, cp, _) = log("a", 5);
    let w = witness();
    let cosigned = w.cosign(&note, 1_679_315_147).unwrap();
    // The log's signature line is kept; one line is added.
    assert!(cosigned.starts_with(&note), "{cosigned}");
    let line = cosigned.strip_prefix(&note).unwrap();
    let rest = line
        .strip_prefix("\u{2014} witness.promotion.test/w1 ")
        .unwrap();
    let blob = STANDARD.decode(rest.trim_end()).unwrap();
    assert_eq!(
        blob.len(),
        4 + 8 + 64,
        "key id || u64 timestamp || signature"
    );
    // Key id: SHA-256(<name> || "\n" || 0x04 || public key)[:4].
    let public = w.verifier().key;
    let mut h = Sha256::new();
    h.update(b"witness.promotion.test/w1\n\x04");
    h.update(public.as_bytes());
    assert_eq!(&blob[..4], &h.finalize()[..4]);
    // Timestamp: big-endian.
    assert_eq!(&blob[4..12], &1_679_315_147u64.to_be_bytes());
    // Signed message: "cosignature/v1\n", "time <decimal>\n", then the whole body.
    let message = format!("cosignature/v1\ntime 1679315147\n{}", cp.body());
    let signature = Signature::from_slice(&blob[12..]).unwrap();
    public
        .verify_strict(message.as_bytes(), &signature)
        .unwrap();

    assert_eq!(w.verifier().verify(&cosigned).unwrap(), 1_679_315_147);
    // The log's verifier ignores the cosignature line.
    assert_eq!(log_signer().verifier().verify(&cosigned).unwrap(), cp);
    // Cosigning again replaces the witness's own line.
    let again = w.cosign(&cosigned, 1_679_315_200).unwrap();
    assert_eq!(again.matches('\u{2014}').count(), 2, "{again}");
    assert_eq!(w.verifier().verify(&again).unwrap(), 1_679_315_200);
}

#[test]
fn a_changed_or_foreign_cosignature_does_not_verify() {
    let (note, _, _) = log("a", 3);
    let w = witness();
    let cosigned = w.cosign(&note, 100).unwrap();
    // Another timestamp under the same signature.
    let line = cosigned.lines().last().unwrap();
    let encoded = line.rsplit(' ').next().unwrap();
    let mut blob = STANDARD.decode(encoded).unwrap();
    blob[11] ^= 1;
    let forged = cosigned.replace(encoded, &STANDARD.encode(&blob));
    assert!(matches!(
        w.verifier().verify(&forged),
        Err(CheckpointError::BadSignature { .. })
    ));
    // Another body under the cosignature.
    let (other, _, _) = log("b", 3);
    let moved = format!("{other}{line}\n");
    assert!(matches!(
        w.verifier().verify(&moved),
        Err(CheckpointError::BadSignature { .. })
    ));
    // A witness that did not cosign.
    let stranger = Cosigner::from_seed("witness.promotion.test/w1", [3u8; 32]).unwrap();
    assert!(matches!(
        stranger.verifier().verify(&cosigned),
        Err(CheckpointError::UnknownKey { .. })
    ));
}

#[test]
fn witness_keys_round_trip_and_a_note_signing_key_is_not_one() {
    let w = witness();
    let again = Cosigner::from_private_key(&w.private_key()).unwrap();
    assert_eq!(again.verifier(), w.verifier());
    let v = CosignatureVerifier::from_verifier_key(&w.verifier().verifier_key()).unwrap();
    assert_eq!(v, w.verifier());
    // The log's own key (algorithm 0x01) is not a cosignature key (0x04).
    let refused = CosignatureVerifier::from_verifier_key(&log_signer().verifier_key());
    assert!(
        matches!(refused, Err(CheckpointError::InvalidKey(_))),
        "{refused:?}"
    );
    let refused = Cosigner::from_private_key(&log_signer().private_key());
    assert!(
        matches!(refused, Err(CheckpointError::InvalidKey(_))),
        "{refused:?}"
    );
}

#[test]
fn the_witness_cosigns_an_extension_and_refuses_rollback_and_forks() {
    let log_key = log_signer().verifier();
    let (note5, cp5, _) = log("a", 5);
    let (note9, cp9, nodes9) = log("a", 9);
    let (fork9, _, fork_nodes) = log("b", 9);
    // Fork sharing the first 5 leaves: "a-0".."a-4" then "b-5".."b-8".
    let (fork_nodes_shared, fork_frontier) = MemoryNodes::from_leaves((0..9).map(|i| {
        if i < 5 {
            format!("a-{i}").into_bytes()
        } else {
            format!("b-{i}").into_bytes()
        }
    }));
    let shared_fork = Checkpoint {
        root: fork_frontier.root(),
        ..cp9.clone()
    };
    let shared_fork_note = log_signer().sign(&shared_fork);

    // First sight: nothing to be consistent with.
    assert_eq!(witness_check(&log_key, &note5, None, &[]).unwrap(), cp5);
    // An extension with its proof.
    let proof = consistency_proof(&nodes9, 5, 9).unwrap();
    assert_eq!(
        witness_check(&log_key, &note9, Some(&cp5), &proof).unwrap(),
        cp9
    );
    // Rollback: 5 after 9.
    assert!(matches!(
        witness_check(&log_key, &note5, Some(&cp9), &[]),
        Err(WitnessRefusal::RolledBack { old: 9, new: 5, .. })
    ));
    // A fork at the same size.
    assert!(matches!(
        witness_check(&log_key, &fork9, Some(&cp9), &[]),
        Err(WitnessRefusal::Forked { size: 9, .. })
    ));
    // A fork from the shared prefix of 5, with the fork's own (honest) proof from 5: the
    // proof is of the fork's tree, whose first 5 leaves are the same, so it verifies...
    let fork_proof = consistency_proof(&fork_nodes_shared, 5, 9).unwrap();
    witness_check(&log_key, &shared_fork_note, Some(&cp5), &fork_proof).unwrap();
    // ...but once the witness has cosigned the original at 9, the fork at 9 is refused.
    assert!(matches!(
        witness_check(&log_key, &shared_fork_note, Some(&cp9), &[]),
        Err(WitnessRefusal::Forked { size: 9, .. })
    ));
    // A tree that does not share the prefix cannot prove consistency from 5.
    let wrong = consistency_proof(&fork_nodes, 5, 9).unwrap();
    assert!(matches!(
        witness_check(&log_key, &fork9, Some(&cp5), &wrong),
        Err(WitnessRefusal::Inconsistent { old: 5, new: 9, .. })
    ));
    // No proof at all.
    assert!(matches!(
        witness_check(&log_key, &note9, Some(&cp5), &[]),
        Err(WitnessRefusal::Inconsistent { .. })
    ));
    // Signed by another key.
    let other = CheckpointSigner::from_seed(ORIGIN, [9u8; 32]).unwrap();
    assert!(matches!(
        witness_check(&log_key, &other.sign(&cp9), Some(&cp5), &proof),
        Err(WitnessRefusal::Signature(_))
    ));
}

#[test]
fn proofs_round_trip_through_their_text_and_bad_lines_are_named() {
    let (_, _, nodes) = log("a", 9);
    let proof = consistency_proof(&nodes, 3, 9).unwrap();
    assert_eq!(parse_proof(&format_proof(&proof)).unwrap(), proof);
    let bad = format!("{}not base64\n", format_proof(&proof));
    match parse_proof(&bad) {
        Err(CheckpointError::Malformed { line, .. }) => assert_eq!(line, proof.len() + 1),
        other => panic!("{other:?}"),
    }
}
