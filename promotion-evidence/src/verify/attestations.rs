//! Steps 5 and 6 of a verification: every attestation is signed and is exactly the statement
//! the log entries imply, and every attachment is referenced by evidence and has the bytes
//! its name says.

use std::collections::BTreeSet;

use promotion_core::Digest;

use crate::dsse::AttestationVerifier;
use crate::intoto::{Statement, IN_TOTO_PAYLOAD_TYPE};
use crate::pack::{self, Entry, Manifest, ATTACHMENTS_DIR, MANIFEST};

use super::{read_envelope, Files, Problem};

pub(super) fn check_attestations(
    files: &Files,
    manifest: &Manifest,
    release: &promotion_core::Release,
    pipeline: &str,
    entries: &[Entry],
    key: &AttestationVerifier,
    problems: &mut Vec<Problem>,
) -> Vec<pack::ManifestAttestation> {
    if let Err(e) = manifest.statements.check() {
        problems.push(Problem::new(MANIFEST, format!("statement options: {e}")));
        return Vec::new();
    }
    let test_results = pack::plan_test_results(release, pipeline, entries);
    let digest_of = |path: &str| files.get(path).map(|b| Digest::of(b).to_hex());
    let decisions = pack::plan_decisions(
        release,
        pipeline,
        entries,
        &test_results,
        &manifest.statements,
        &digest_of,
    );
    let mut planned: Vec<&pack::Planned> = test_results.iter().chain(&decisions).collect();
    planned.sort_by(|a, b| a.path.cmp(&b.path));
    let expected: Vec<pack::ManifestAttestation> =
        planned.iter().map(|p| p.manifest_entry()).collect();
    if expected != manifest.attestations {
        let expected_paths: BTreeSet<&str> = expected.iter().map(|a| a.path.as_str()).collect();
        let listed_paths: BTreeSet<&str> = manifest
            .attestations
            .iter()
            .map(|a| a.path.as_str())
            .collect();
        for missing in expected_paths.difference(&listed_paths) {
            problems.push(Problem::new(
                *missing,
                "the log implies this attestation but the manifest does not list it",
            ));
        }
        for extra in listed_paths.difference(&expected_paths) {
            problems.push(Problem::new(
                *extra,
                "the manifest lists an attestation the log does not imply",
            ));
        }
        if expected_paths == listed_paths {
            problems.push(Problem::new(
                MANIFEST,
                "its attestation list differs from the one the log implies",
            ));
        }
    }
    for path in files.keys() {
        if path.starts_with(&format!("{}/", pack::ATTESTATIONS_DIR))
            && !planned.iter().any(|p| p.path == *path)
        {
            problems.push(Problem::new(path, "an attestation the log does not imply"));
        }
    }
    for p in &planned {
        let Some(bytes) = files.get(&p.path) else {
            problems.push(Problem::new(&p.path, "missing").entry(p.entry));
            continue;
        };
        let envelope = match read_envelope(&p.path, bytes) {
            Ok(e) => e,
            Err(problem) => {
                problems.push(problem.entry(p.entry));
                continue;
            }
        };
        let payload = match key.verify_typed(&envelope, IN_TOTO_PAYLOAD_TYPE) {
            Ok(payload) => payload,
            Err(e) => {
                problems.push(Problem::new(&p.path, e.to_string()).entry(p.entry));
                continue;
            }
        };
        if let Err(e) = serde_json::from_slice::<Statement>(&payload) {
            problems.push(
                Problem::new(
                    &p.path,
                    format!("the payload is not an in-toto statement: {e}"),
                )
                .entry(p.entry),
            );
            continue;
        }
        match p.statement.to_payload() {
            Ok(want) if want == payload => {}
            Ok(want) => problems.push(
                Problem::new(
                    &p.path,
                    format!(
                        "the signed statement is not the one log entry {} implies",
                        p.entry
                    ),
                )
                .entry(p.entry)
                .expected_found(
                    format!("sha256 {}", Digest::of(&want).to_hex()),
                    format!("sha256 {}", Digest::of(&payload).to_hex()),
                ),
            ),
            Err(e) => problems.push(Problem::new(&p.path, e.to_string()).entry(p.entry)),
        }
    }
    expected
}

pub(super) fn check_attachments(
    files: &Files,
    manifest: &Manifest,
    entries: &[Entry],
    problems: &mut Vec<Problem>,
) -> (usize, Vec<Digest>) {
    let referenced = pack::referenced_attachments(entries);
    let mut verified = 0;
    let mut missing = Vec::new();
    let mut listed = BTreeSet::new();
    for a in &manifest.attachments {
        listed.insert(a.digest);
        match referenced.get(&a.digest) {
            None => problems.push(Problem::new(
                MANIFEST,
                format!(
                    "lists attachment {} that no evidence in the log references",
                    a.digest
                ),
            )),
            Some(r) => {
                if (&r.names, r.size, &r.entries) != (&a.names, a.size, &a.entries) {
                    problems.push(
                        Problem::new(
                            MANIFEST,
                            format!(
                                "attachment {} is described differently in the log",
                                a.digest
                            ),
                        )
                        .expected_found(
                            format!(
                                "names {:?}, {} bytes, entries {:?}",
                                r.names, r.size, r.entries
                            ),
                            format!(
                                "names {:?}, {} bytes, entries {:?}",
                                a.names, a.size, a.entries
                            ),
                        ),
                    );
                }
            }
        }
        let Some(path) = &a.path else {
            missing.push(a.digest);
            continue;
        };
        let want = format!(
            "{ATTACHMENTS_DIR}/{}",
            crate::attachments::file_name(&a.digest)
        );
        if *path != want {
            problems.push(
                Problem::new(
                    MANIFEST,
                    format!("attachment {} has a wrong path", a.digest),
                )
                .expected_found(want, path.clone()),
            );
            continue;
        }
        if let Some(bytes) = files.get(path) {
            let found = Digest::of(bytes);
            if found == a.digest {
                verified += 1;
            } else {
                problems.push(
                    Problem::new(path, "the bytes do not hash to the attachment's digest")
                        .expected_found(a.digest.to_string(), found.to_string()),
                );
            }
        }
    }
    for digest in referenced.keys() {
        if !listed.contains(digest) {
            problems.push(Problem::new(
                MANIFEST,
                format!("does not list attachment {digest}, which the evidence references"),
            ));
        }
    }
    for path in files.keys() {
        if path.starts_with(&format!("{ATTACHMENTS_DIR}/"))
            && !manifest
                .attachments
                .iter()
                .any(|a| a.path.as_deref() == Some(path.as_str()))
        {
            problems.push(Problem::new(path, "an attachment no evidence references"));
        }
    }
    (verified, missing)
}
