//! Steps 7 to 9 of a verification: the SSH-signed decisions with their rosters, the
//! build-provenance keys and envelopes, and the public keys the pack carries.

use std::collections::{BTreeMap, BTreeSet};

use promotion_audit::CheckpointVerifier;

use crate::dsse::AttestationVerifier;
use crate::pack::{
    check_envelopes, plan_provenance_keys, plan_signatures, reverify, roster_files, Entry,
    Manifest, KEYS_DIR, MANIFEST, ROSTERS_DIR, SIGNATURES_DIR,
};

use super::{Files, Problem};

/// Checks that the pack's signed decisions are exactly those the entries record, with the
/// entries' statement and signature bytes; that every roster is the file its digest names,
/// with its `allowed_signers` rendering; and re-verifies every signature. Returns how many
/// signed decisions were checked.
pub(super) fn check_signatures(
    files: &Files,
    manifest: &Manifest,
    entries: &[Entry],
    problems: &mut Vec<Problem>,
) -> usize {
    let planned = plan_signatures(entries);
    let expected: Vec<_> = planned.iter().map(|p| p.manifest.clone()).collect();
    if manifest.signed_decisions != expected {
        problems.push(
            Problem::new(
                MANIFEST,
                "its signed decisions are not the ones the log entries record",
            )
            .expected_found(
                format!("{} signed decisions", expected.len()),
                format!("{}", manifest.signed_decisions.len()),
            ),
        );
    }
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    for p in &planned {
        let m = &p.manifest;
        for (path, bytes) in [
            (&m.statement, p.statement.as_bytes()),
            (&m.signature, p.signature.as_bytes()),
        ] {
            wanted.insert(path);
            match files.get(path) {
                None => problems.push(Problem::new(path, "missing").entry(m.entry)),
                Some(found) if found.as_slice() != bytes => problems
                    .push(Problem::new(path, "is not what the log entry records").entry(m.entry)),
                Some(_) => {}
            }
        }
    }

    let mut rosters = BTreeMap::new();
    let needed: BTreeSet<_> = planned.iter().map(|p| p.manifest.roster).collect();
    for r in &manifest.rosters {
        wanted.insert(&r.path);
        wanted.insert(&r.allowed_signers);
        let Some(bytes) = files.get(&r.path) else {
            problems.push(Problem::new(&r.path, "missing"));
            continue;
        };
        match roster_files(bytes) {
            Err(e) => problems.push(Problem::new(&r.path, format!("not a valid roster: {e}"))),
            Ok((entry, roster, signers)) => {
                if entry != *r {
                    problems.push(
                        Problem::new(&r.path, "does not hash to the digest the manifest names")
                            .expected_found(r.digest.to_string(), entry.digest.to_string()),
                    );
                    continue;
                }
                if files.get(&r.allowed_signers).map(Vec::as_slice) != Some(signers.as_bytes()) {
                    problems.push(Problem::new(
                        &r.allowed_signers,
                        "is not the roster's allowed_signers rendering",
                    ));
                }
                rosters.insert(r.digest, roster);
            }
        }
    }
    let held: BTreeSet<_> = manifest.rosters.iter().map(|r| r.digest).collect();
    if held != needed {
        problems.push(
            Problem::new(
                MANIFEST,
                "its rosters are not the ones the signed decisions were made under",
            )
            .expected_found(list(&needed), list(&held)),
        );
    }
    for path in files.keys() {
        let ours = path.starts_with(&format!("{SIGNATURES_DIR}/"))
            || path.starts_with(&format!("{ROSTERS_DIR}/"));
        if ours && !wanted.contains(path.as_str()) {
            problems.push(Problem::new(path, "not derived from any signed decision"));
        }
    }

    match reverify(&rosters, entries) {
        Err(e) => {
            problems.push(Problem::new(MANIFEST, e));
            0
        }
        Ok((signed, failures)) => {
            for f in failures {
                let file = planned
                    .iter()
                    .find(|p| p.manifest.entry == f.position)
                    .map_or_else(
                        || crate::pack::ENTRIES.to_owned(),
                        |p| p.manifest.statement.clone(),
                    );
                problems.push(
                    Problem::new(file, format!("the signed decision does not verify: {f}"))
                        .entry(f.position),
                );
            }
            signed
        }
    }
}

fn list(digests: &BTreeSet<promotion_core::Digest>) -> String {
    let all: Vec<String> = digests.iter().map(ToString::to_string).collect();
    format!("[{}]", all.join(", "))
}

/// Checks that the provenance keys the pack carries are the ones the entries' gate evidence
/// records, and re-checks every verified provenance envelope the pack holds with its key.
/// Returns (envelopes re-verified, verified envelopes the pack does not hold).
pub(super) fn check_provenance(
    files: &Files,
    manifest: &Manifest,
    entries: &[Entry],
    problems: &mut Vec<Problem>,
) -> (usize, usize) {
    let planned = plan_provenance_keys(entries);
    let expected: Vec<_> = planned.iter().map(|p| p.manifest.clone()).collect();
    if manifest.provenance_keys != expected {
        problems.push(Problem::new(
            MANIFEST,
            "its provenance keys are not the ones the log's gate evidence records",
        ));
    }
    let mut wanted = BTreeSet::new();
    for p in &planned {
        if let (Some(path), Some(pem)) = (&p.manifest.path, &p.pem) {
            wanted.insert(path.as_str());
            if files.get(path).map(Vec::as_slice) != Some(pem.as_bytes()) {
                problems.push(Problem::new(
                    path,
                    "is not the key the log's gate evidence records",
                ));
            }
        }
    }
    for path in files.keys() {
        if path.starts_with(&format!("{KEYS_DIR}/provenance/")) && !wanted.contains(path.as_str()) {
            problems.push(Problem::new(
                path,
                "not a key the log's gate evidence records",
            ));
        }
    }
    let by_digest: BTreeMap<_, _> = manifest
        .attachments
        .iter()
        .filter_map(|a| Some((a.digest, a.path.as_ref()?)))
        .collect();
    let checks = check_envelopes(entries, &|digest| {
        by_digest.get(digest).and_then(|p| files.get(*p)).cloned()
    });
    for (seq, artifact, problem) in checks.failures {
        problems.push(
            Problem::new(
                crate::pack::ENTRIES,
                format!("artifact `{artifact}`: {problem}"),
            )
            .entry(seq),
        );
    }
    (checks.verified, checks.not_in_pack)
}

/// Checks that the keys the pack carries are the trusted ones the pack was verified with, so
/// that an auditor who takes them from the pack and compares their fingerprints with the
/// published ones has checked everything with them.
pub(super) fn check_keys(
    files: &Files,
    manifest: &Manifest,
    checkpoint_key: &CheckpointVerifier,
    attestation_key: &AttestationVerifier,
    problems: &mut Vec<Problem>,
) {
    let Some(keys) = &manifest.keys else {
        return;
    };
    // A checkpoint that does not verify with the trusted key is already the problem; the key
    // file differing from the trusted key is the same fact.
    let checkpoint_failed = problems.iter().any(|p| p.file == crate::pack::CHECKPOINT);
    match files
        .get(&keys.checkpoint)
        .map(|b| String::from_utf8_lossy(b).trim().to_owned())
    {
        None => problems.push(Problem::new(&keys.checkpoint, "missing")),
        Some(found) if !checkpoint_failed && found != checkpoint_key.verifier_key() => problems
            .push(
                Problem::new(&keys.checkpoint, "is not the trusted checkpoint key")
                    .expected_found(checkpoint_key.verifier_key(), found),
            ),
        Some(_) => {}
    }
    let found = files
        .get(&keys.attestation)
        .map(|b| AttestationVerifier::from_public_key_pem(&String::from_utf8_lossy(b)));
    match found {
        None => problems.push(Problem::new(&keys.attestation, "missing")),
        Some(Err(e)) => problems.push(Problem::new(&keys.attestation, e.to_string())),
        Some(Ok(k)) if k.keyid() != attestation_key.keyid() => problems.push(
            Problem::new(&keys.attestation, "is not the trusted attestation key")
                .expected_found(attestation_key.keyid(), k.keyid()),
        ),
        Some(Ok(_)) => {}
    }
}
