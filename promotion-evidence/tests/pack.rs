//! Evidence packs of a real log: export, offline verification, and tampering of every kind.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures::executor::block_on;
use promotion_evidence::pack::{Manifest, MANIFEST, MANIFEST_PAYLOAD_TYPE, MANIFEST_SIGNATURE};
use promotion_evidence::{
    verify_pack, AttestationSigner, Envelope, EvidencePack, ExportError, ExportOptions, PackError,
    StatementOptions,
};
use serde_json::Value;
use support::{files_under, pack_log, PackLog};

fn options(log: &PackLog) -> ExportOptions<'_> {
    ExportOptions {
        statements: StatementOptions {
            verifier_id: "https://deploy.example.com/promotion".into(),
            resource_base: "https://deploy.example.com/".into(),
            ..StatementOptions::default()
        },
        attachments: Some(&log.attachments),
        archive: Some(log.path("pack.tar")),
        rosters: Vec::new(),
    }
}

fn export(log: &PackLog, name: &str) -> std::path::PathBuf {
    let dir = log.path(name);
    block_on(EvidencePack::export_with(
        &log.store,
        &log.release,
        &log.signer,
        &dir,
        &options(log),
    ))
    .unwrap();
    dir
}

fn statement(dir: &Path, file: &str) -> Value {
    let env: Envelope = serde_json::from_slice(&std::fs::read(dir.join(file)).unwrap()).unwrap();
    serde_json::from_slice(&STANDARD.decode(env.payload).unwrap()).unwrap()
}

#[test]
fn an_exported_pack_verifies_offline_and_holds_every_decision_with_its_evidence() {
    let log = pack_log(false);
    let summary = block_on(EvidencePack::export_with(
        &log.store,
        &log.release,
        &log.signer,
        log.path("pack"),
        &options(&log),
    ))
    .unwrap();
    let dir = summary.dir.clone();
    assert_eq!(summary.release, log.release);
    assert_eq!(summary.release_name, "api 1.0");
    assert!(summary.attachments_missing.is_empty());
    assert_eq!(summary.attachments, 1);

    // Every event of the release and none of the other's.
    let stream = block_on(promotion_core::EventStore::read(
        &log.store,
        &promotion_core::StreamId::for_release(&log.release),
    ))
    .unwrap();
    assert_eq!(summary.entries, stream.len());
    let lines = std::fs::read_to_string(dir.join("log/entries.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), stream.len());
    let other = promotion_core::StreamId::for_release(&log.other).to_string();
    assert!(
        !lines.contains(&other),
        "the other release's entries are not in the pack"
    );

    // The layout.
    let files = files_under(&dir);
    for f in [
        "manifest.json",
        "manifest.dsse.json",
        "checkpoint.note",
        "log/entries.jsonl",
    ] {
        assert!(files.contains(&f.to_string()), "{f} missing from {files:?}");
    }
    // Attestations are named by the sequence number of the log entry they are about.
    let seq_of = |kind: &str| -> (String, u64) {
        let f = files.iter().find(|f| f.ends_with(kind)).unwrap();
        let seq = f.trim_start_matches("attestations/")[..6].parse().unwrap();
        (f.clone(), seq)
    };
    let (test_result, test_seq) = seq_of("-test-result-build-unit-tests.dsse.json");
    let (build_promoted, build_seq) = seq_of("-vsa-build-promoted.dsse.json");
    assert!(test_seq < build_seq);
    let expected_attestations = [test_result.as_str(), build_promoted.as_str()];
    let entry_line = |seq: u64| {
        lines
            .lines()
            .find(|l| l.starts_with(&format!("{{\"seq\":{seq},")))
            .unwrap()
            .to_owned()
    };
    assert!(entry_line(test_seq).contains("\"type\":\"gate_evaluated\""));
    assert!(entry_line(build_seq).contains("\"type\":\"stage_promoted\""));
    assert!(files.contains(&format!("attachments/sha256-{}", log.junit_digest.to_hex())));
    let decisions: Vec<&String> = files.iter().filter(|f| f.contains("-vsa-")).collect();
    let kinds: Vec<String> = decisions
        .iter()
        .map(|f| {
            f.rsplit('/')
                .next()
                .unwrap()
                .split_once('-')
                .unwrap()
                .1
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "vsa-build-promoted.dsse.json",
            "vsa-staging-promoted.dsse.json",
            "vsa-production-failed.dsse.json",
            "vsa-production-promoted.dsse.json",
            "vsa-production-rolled_back.dsse.json",
        ]
    );

    // Offline verification with the two public keys.
    let report = verify_pack(&dir, &log.checkpoint_key, &log.signer.verifier()).unwrap();
    assert_eq!(report.release, log.release);
    assert_eq!(report.entries, stream.len());
    assert_eq!(report.attestations.len(), 6);
    assert_eq!(report.attachments, 1);
    assert_eq!(
        report.stages,
        vec![
            ("build".to_owned(), "promoted".to_owned()),
            ("staging".to_owned(), "promoted".to_owned()),
            ("production".to_owned(), "rolled back".to_owned()),
        ]
    );
    // The archive holds the same pack and verifies too.
    let from_tar = verify_pack(
        log.path("pack.tar"),
        &log.checkpoint_key,
        &log.signer.verifier(),
    )
    .unwrap();
    assert_eq!(from_tar, report);

    // The production promotion: a SLSA VSA about the release's artifacts.
    let promoted = decisions
        .iter()
        .find(|f| f.ends_with("vsa-production-promoted.dsse.json"))
        .unwrap();
    let s = statement(&dir, promoted);
    assert_eq!(s["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        s["predicateType"],
        "https://slsa.dev/verification_summary/v1"
    );
    assert_eq!(
        s["subject"],
        serde_json::json!([
            {"name": "api-image", "digest": {"sha256": "ab".repeat(32)}},
            {"name": "helm-chart", "digest": {"sha256": "cd".repeat(32)}},
        ])
    );
    let p = &s["predicate"];
    assert_eq!(p["verifier"]["id"], "https://deploy.example.com/promotion");
    assert_eq!(p["timeVerified"], "2026-11-26T10:00:00Z");
    assert_eq!(
        p["resourceUri"],
        "https://deploy.example.com/pipelines/shop/stages/production"
    );
    assert_eq!(
        p["policy"]["uri"],
        "https://deploy.example.com/pipelines/shop/versions/2026.11"
    );
    assert_eq!(p["verificationResult"], "PASSED");
    // no gate verified SLSA provenance here, so no SLSA level is claimed: only the
    // namespaced custom value (SLSA VSA v1: custom values must not start with `SLSA_`)
    assert_eq!(
        p["verifiedLevels"],
        serde_json::json!([promotion_evidence::pack::STAGE_PROMOTED_LEVEL])
    );
    let d = &p["https://example.invalid/promotion/evidence/decision/v1"];
    assert_eq!(d["decision"], "promoted");
    let overrides = d["overrides"].as_array().unwrap();
    assert_eq!(overrides.len(), 1);
    assert_eq!(overrides[0]["principal"], "ivy");
    assert_eq!(
        overrides[0]["justification"],
        "INC-7 outage fix; CAB approval by phone, ticket follows"
    );
    assert_eq!(overrides[0]["overridden"], "fail");
    let gates: Vec<(&str, &str)> = d["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["gate"].as_str().unwrap(), g["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        gates,
        [
            ("change-policy", "fail"),
            ("error-rate", "pass"),
            ("smoke", "pass")
        ]
    );
    let rollout: Vec<u64> = d["rollout"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(rollout, [50, 100]);
    // Each step was begun once, in an entry before the one that records it deployed.
    for r in d["rollout"].as_array().unwrap() {
        assert_eq!(r["attempts"], 1, "{r}");
        assert!(
            r["begunLogEntries"][0].as_u64() < r["logEntry"].as_u64(),
            "{r}"
        );
    }

    // Staging: the approval, with who, when and what it was bound to.
    let staging = decisions
        .iter()
        .find(|f| f.ends_with("vsa-staging-promoted.dsse.json"))
        .unwrap();
    let s = statement(&dir, staging);
    let approvals =
        &s["predicate"]["https://example.invalid/promotion/evidence/decision/v1"]["approvals"];
    assert_eq!(approvals[0]["principal"], "quinn");
    assert_eq!(approvals[0]["groups"], serde_json::json!(["qa"]));
    assert_eq!(approvals[0]["at"], "2026-11-26T09:30:00Z");
    assert_eq!(approvals[0]["comment"], "integration evidence reviewed");
    assert_eq!(approvals[0]["boundTo"]["release"], log.release.to_string());
    assert_eq!(approvals[0]["boundTo"]["pipelineVersion"], "2026.11");
    assert!(approvals[0]["boundTo"]["evidenceDigest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));

    // The failure and the rollback: FAILED, with the reason.
    let failed = decisions
        .iter()
        .find(|f| f.ends_with("vsa-production-failed.dsse.json"))
        .unwrap();
    let s = statement(&dir, failed);
    assert_eq!(s["predicate"]["verificationResult"], "FAILED");
    assert_eq!(
        s["predicate"]["verifiedLevels"],
        serde_json::json!(["FAILED"])
    );
    let rolled = decisions
        .iter()
        .find(|f| f.ends_with("vsa-production-rolled_back.dsse.json"))
        .unwrap();
    let s = statement(&dir, rolled);
    assert_eq!(
        s["predicate"]["https://example.invalid/promotion/evidence/decision/v1"]["reason"],
        "rolled back: ivy: error budget burning after the fix"
    );

    // The JUnit report as an in-toto test result: passed with a flaky test, so WARNED.
    let s = statement(&dir, expected_attestations[0]);
    assert_eq!(
        s["predicateType"],
        "https://in-toto.io/attestation/test-result/v0.1"
    );
    let p = &s["predicate"];
    assert_eq!(p["result"], "WARNED");
    assert_eq!(
        p["warnedTests"],
        serde_json::json!(["shop-cart::checkout checkout_retries_inventory"])
    );
    assert_eq!(p["failedTests"], serde_json::json!([]));
    assert_eq!(p["configuration"][0]["name"], "shop/build/entry/unit-tests");
    assert_eq!(
        p["configuration"][1]["digest"]["sha256"],
        log.junit_digest.to_hex()
    );
    // The build decision names the test result among its input attestations.
    let s = statement(&dir, expected_attestations[1]);
    assert_eq!(
        s["predicate"]["inputAttestations"][0]["uri"],
        expected_attestations[0]
    );
    let bytes = std::fs::read(dir.join(expected_attestations[0])).unwrap();
    assert_eq!(
        s["predicate"]["inputAttestations"][0]["digest"]["sha256"],
        promotion_core::Digest::of(&bytes).to_hex()
    );
    // The raw report is there, by digest.
    assert_eq!(
        std::fs::read(dir.join(format!("attachments/sha256-{}", log.junit_digest.to_hex())))
            .unwrap(),
        support::JUNIT.as_bytes()
    );
}

#[test]
fn a_pack_from_a_sqlite_log_verifies_and_export_is_deterministic() {
    let log = pack_log(true);
    let opts = options(&log);
    let first = block_on(EvidencePack::build(
        &log.store,
        &log.release,
        &log.signer,
        &opts,
    ))
    .unwrap();
    let second = block_on(EvidencePack::build(
        &log.store,
        &log.release,
        &log.signer,
        &opts,
    ))
    .unwrap();
    assert_eq!(
        first.files(),
        second.files(),
        "same log, same key: same bytes"
    );
    first.write_dir(log.path("pack")).unwrap();
    // Written whole: staged beside the target, moved into place in one step, nothing left
    // behind; an existing empty directory is taken over.
    std::fs::create_dir(log.path("empty")).unwrap();
    first.write_dir(log.path("empty")).unwrap();
    let written = walk(&log.path("empty"));
    assert_eq!(written.len(), first.files().len(), "{written:?}");
    let parent = log.path("pack").parent().unwrap().to_owned();
    let staged: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
    verify_pack(
        log.path("pack"),
        &log.checkpoint_key,
        &log.signer.verifier(),
    )
    .unwrap();
    // The other release has its own pack.
    let other = block_on(EvidencePack::export(
        &log.store,
        &log.other,
        &log.signer,
        log.path("other"),
    ))
    .unwrap();
    assert_eq!(other.release_name, "api 1.1");
    // Exported without an attachment source: the report is listed as missing, and the pack
    // still verifies (the log proves its digest).
    assert_eq!(other.attachments_missing, vec![log.junit_digest]);
    let report = verify_pack(
        log.path("other"),
        &log.checkpoint_key,
        &log.signer.verifier(),
    )
    .unwrap();
    assert_eq!(report.attachments_missing, vec![log.junit_digest]);
}

fn names(err: &PackError, file: &str) -> bool {
    err.files().contains(&file) || err.to_string().contains(file)
}

#[test]
fn any_changed_byte_in_any_file_fails_naming_that_file() {
    let log = pack_log(false);
    let dir = export(&log, "pack");
    let key = log.signer.verifier();
    let files = files_under(&dir);
    assert!(files.len() >= 10, "{files:?}");
    let mut checked = 0;
    for file in &files {
        let path = dir.join(file);
        let original = std::fs::read(&path).unwrap();
        let n = original.len();
        let mut positions = vec![0, 1, n / 4, n / 2, 3 * n / 4, n.saturating_sub(2), n - 1];
        positions.sort_unstable();
        positions.dedup();
        for &pos in &positions {
            for flip in [0x01_u8, 0x20, 0x80] {
                let mut changed = original.clone();
                changed[pos] ^= flip;
                std::fs::write(&path, &changed).unwrap();
                let result = verify_pack(&dir, &log.checkpoint_key, &key);
                let err = match result {
                    Err(e) => e,
                    Ok(_) => panic!("{file}: byte {pos} ^ {flip:#x} went unnoticed"),
                };
                assert!(
                    names(&err, file),
                    "{file}: byte {pos} ^ {flip:#x}: the error does not name the file: {err}"
                );
                checked += 1;
            }
        }
        std::fs::write(&path, &original).unwrap();
    }
    assert!(checked > 150, "{checked} changes checked");
    // Restored: it verifies again.
    verify_pack(&dir, &log.checkpoint_key, &key).unwrap();
}

#[test]
fn a_removed_or_added_file_fails_naming_it() {
    let log = pack_log(false);
    let dir = export(&log, "pack");
    let key = log.signer.verifier();
    for file in files_under(&dir) {
        let path = dir.join(&file);
        let original = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let err = verify_pack(&dir, &log.checkpoint_key, &key).unwrap_err();
        assert!(names(&err, &file), "removed {file}: {err}");
        std::fs::write(&path, original).unwrap();
    }
    for added in [
        "notes.txt",
        "attestations/999999-vsa-production-promoted.dsse.json",
        "attachments/sha256-00",
        "log/more.jsonl",
    ] {
        let path = dir.join(added);
        std::fs::write(&path, b"{}").unwrap();
        let err = verify_pack(&dir, &log.checkpoint_key, &key).unwrap_err();
        assert!(names(&err, added), "added {added}: {err}");
        let PackError::Invalid { problems } = &err else {
            panic!("{err}");
        };
        assert!(problems
            .iter()
            .any(|p| p.problem.contains("not listed in the manifest")));
        std::fs::remove_file(&path).unwrap();
    }
    verify_pack(&dir, &log.checkpoint_key, &key).unwrap();
}

/// Rewrites the manifest's file digests and signs it again, as someone holding the attestation
/// key (but not the log's checkpoint key) could.
fn resign_manifest(dir: &Path, signer: &AttestationSigner) {
    let mut manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).unwrap()).unwrap();
    for f in &mut manifest.files {
        let bytes = std::fs::read(dir.join(&f.path)).unwrap();
        f.sha256 = promotion_core::Digest::of(&bytes).to_hex();
        f.size = bytes.len() as u64;
    }
    let mut bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    bytes.push(b'\n');
    std::fs::write(dir.join(MANIFEST), &bytes).unwrap();
    let env = signer.sign(MANIFEST_PAYLOAD_TYPE, &bytes);
    std::fs::write(dir.join(MANIFEST_SIGNATURE), env.to_json().unwrap()).unwrap();
}

#[test]
fn an_attestation_rewritten_and_re_signed_with_the_key_still_fails_against_the_log() {
    let log = pack_log(false);
    let dir = export(&log, "pack");
    let failed = files_under(&dir)
        .into_iter()
        .find(|f| f.ends_with("vsa-production-failed.dsse.json"))
        .unwrap();
    let mut s = statement(&dir, &failed);
    s["predicate"]["verificationResult"] = "PASSED".into();
    let payload = promotion_core::canonical_json(&s).unwrap();
    let env = log.signer.sign("application/vnd.in-toto+json", &payload);
    std::fs::write(dir.join(&failed), env.to_json().unwrap()).unwrap();
    resign_manifest(&dir, &log.signer);
    let err = verify_pack(&dir, &log.checkpoint_key, &log.signer.verifier()).unwrap_err();
    let PackError::Invalid { problems } = &err else {
        panic!("{err}");
    };
    assert_eq!(problems.len(), 1, "{err}");
    assert_eq!(problems[0].file, failed);
    assert!(
        problems[0].problem.contains("is not the one log entry"),
        "{err}"
    );
    assert!(problems[0].expected.is_some() && problems[0].found.is_some());
}

#[test]
fn a_log_entry_rewritten_under_a_re_signed_manifest_fails_its_inclusion_proof() {
    let log = pack_log(false);
    let dir = export(&log, "pack");
    let entries = dir.join("log/entries.jsonl");
    let text = std::fs::read_to_string(&entries).unwrap();
    assert!(text.contains("integration evidence reviewed"));
    std::fs::write(
        &entries,
        text.replace(
            "integration evidence reviewed",
            "integration evidence REVIEWED",
        ),
    )
    .unwrap();
    resign_manifest(&dir, &log.signer);
    let err = verify_pack(&dir, &log.checkpoint_key, &log.signer.verifier()).unwrap_err();
    let PackError::Invalid { problems } = &err else {
        panic!("{err}");
    };
    let entry_problems: Vec<_> = problems
        .iter()
        .filter(|p| p.file == "log/entries.jsonl")
        .collect();
    assert!(
        entry_problems
            .iter()
            .any(|p| p.entry.is_some() && p.problem.contains("leaf hash")),
        "{err}"
    );
    // The staging decision that quotes the comment no longer matches the log either.
    assert!(
        problems
            .iter()
            .any(|p| p.file.ends_with("vsa-staging-promoted.dsse.json")),
        "{err}"
    );
}

#[test]
fn a_log_emptied_or_cut_short_under_a_re_signed_manifest_fails() {
    let log = pack_log(false);
    let key = log.signer.verifier();
    for keep in [0, 12] {
        let dir = export(&log, &format!("pack-{keep}"));
        let entries = dir.join("log/entries.jsonl");
        let text = std::fs::read_to_string(&entries).unwrap();
        let kept: String = text.lines().take(keep).map(|l| format!("{l}\n")).collect();
        std::fs::write(&entries, kept).unwrap();
        // The manifest is made to agree on the count too.
        let mut manifest: Manifest =
            serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).unwrap()).unwrap();
        manifest.log.entries = keep as u64;
        std::fs::write(
            dir.join(MANIFEST),
            serde_json::to_vec_pretty(&manifest).unwrap(),
        )
        .unwrap();
        resign_manifest(&dir, &log.signer);
        let err = verify_pack(&dir, &log.checkpoint_key, &key).unwrap_err();
        let PackError::Invalid { problems } = &err else {
            panic!("{err}");
        };
        if keep == 0 {
            assert!(
                problems
                    .iter()
                    .any(|p| p.file == "log/entries.jsonl" && p.problem.contains("no log entry")),
                "{err}"
            );
        } else {
            // The decisions after the cut are attested but no longer implied by the log.
            assert!(
                problems
                    .iter()
                    .any(|p| p.file.ends_with("vsa-production-promoted.dsse.json")
                        && p.problem.contains("does not imply")),
                "{err}"
            );
        }
    }
}

#[test]
fn wrong_keys_are_typed_errors_naming_the_file() {
    let log = pack_log(false);
    let dir = export(&log, "pack");
    let stranger = AttestationSigner::from_seed([1; 32]).verifier();
    let err = verify_pack(&dir, &log.checkpoint_key, &stranger).unwrap_err();
    match &err {
        PackError::Signature { file, .. } => assert_eq!(file, MANIFEST_SIGNATURE),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains(stranger.keyid()), "{err}");

    let other_log = promotion_audit::CheckpointSigner::from_seed("audit.example/shop", [6; 32])
        .unwrap()
        .verifier();
    let err = verify_pack(&dir, &other_log, &log.signer.verifier()).unwrap_err();
    let PackError::Invalid { problems } = &err else {
        panic!("{err}");
    };
    assert_eq!(problems.len(), 1, "{err}");
    assert_eq!(problems[0].file, "checkpoint.note");
    assert!(
        problems[0].problem.contains("trusted checkpoint key"),
        "{err}"
    );
}

#[test]
fn bad_input_is_a_typed_error_naming_what_and_where() {
    let log = pack_log(false);

    let missing = log.path("no-such-pack");
    let err = verify_pack(&missing, &log.checkpoint_key, &log.signer.verifier()).unwrap_err();
    assert!(
        matches!(&err, PackError::NotFound { path } if path == &missing),
        "{err}"
    );
    assert!(err.to_string().contains("no-such-pack"));

    let dir = export(&log, "pack");
    std::fs::write(
        dir.join(MANIFEST),
        "{\n  \"format\": \"promotion-evidence-pack/v1\",\n  oops\n}\n",
    )
    .unwrap();
    let err = verify_pack(&dir, &log.checkpoint_key, &log.signer.verifier()).unwrap_err();
    match &err {
        PackError::Malformed {
            file, line, column, ..
        } => {
            assert_eq!(file, MANIFEST);
            assert_eq!((*line, *column), (3, 3));
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string()
            .contains("manifest.json is not valid: line 3"),
        "{err}"
    );

    std::fs::remove_file(dir.join(MANIFEST_SIGNATURE)).unwrap();
    std::fs::write(dir.join(MANIFEST), b"{}").unwrap();
    let err = verify_pack(&dir, &log.checkpoint_key, &log.signer.verifier()).unwrap_err();
    assert!(
        matches!(&err, PackError::Malformed { file, .. } if file == MANIFEST),
        "{err}"
    );

    // A release that is not in the log.
    let absent = support::release("api 9.9", 'e', "2026-11-26T08:00:00Z").id();
    let err = block_on(EvidencePack::export(
        &log.store,
        &absent,
        &log.signer,
        log.path("x"),
    ))
    .unwrap_err();
    match &err {
        ExportError::ReleaseNotFound {
            release, origin, ..
        } => {
            assert_eq!(*release, absent);
            assert_eq!(origin, "audit.example/shop");
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains(&absent.to_string()), "{err}");

    // A target that is not empty.
    let err = block_on(EvidencePack::export(
        &log.store,
        &log.release,
        &log.signer,
        &dir,
    ))
    .unwrap_err();
    assert!(
        matches!(err, ExportError::DirectoryNotEmpty { .. }),
        "{err}"
    );

    // Attachment bytes that are not what the evidence recorded.
    struct Liar;
    impl std::fmt::Debug for Liar {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Liar")
        }
    }
    impl promotion_evidence::AttachmentSource for Liar {
        fn fetch(&self, _: &promotion_core::Digest, _: &str) -> std::io::Result<Option<Vec<u8>>> {
            Ok(Some(b"not the report".to_vec()))
        }
    }
    let err = block_on(EvidencePack::build(
        &log.store,
        &log.release,
        &log.signer,
        &ExportOptions {
            attachments: Some(&Liar),
            ..ExportOptions::default()
        },
    ))
    .unwrap_err();
    assert!(
        matches!(&err, ExportError::AttachmentMismatch { name, .. } if name.ends_with("unit-tests.xml")),
        "{err}"
    );

    // A log that signs no checkpoints.
    let unsigned =
        promotion_audit::AuditStore::memory(promotion_audit::AuditOptions::new("bare")).unwrap();
    let err = block_on(EvidencePack::export(
        &unsigned,
        &log.release,
        &log.signer,
        log.path("y"),
    ))
    .unwrap_err();
    assert!(matches!(err, ExportError::NoCheckpoint { .. }), "{err}");
}

#[test]
fn a_tampered_archive_fails() {
    let log = pack_log(false);
    export(&log, "pack");
    let tar = log.path("pack.tar");
    let bytes = std::fs::read(&tar).unwrap();
    // Find the manifest's content in the archive and change one byte of it.
    let needle = b"\"format\": \"promotion-evidence-pack/v1\"";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let mut changed = bytes.clone();
    changed[at + 12] ^= 0x01;
    std::fs::write(&tar, &changed).unwrap();
    let err = verify_pack(&tar, &log.checkpoint_key, &log.signer.verifier()).unwrap_err();
    assert!(names(&err, MANIFEST), "{err}");
    std::fs::write(&tar, b"not a tar archive at all").unwrap();
    assert!(verify_pack(&tar, &log.checkpoint_key, &log.signer.verifier()).is_err());
}

/// `bytes` (an envelope this crate wrote) rewritten the way another DSSE tool may write the same
/// signed content: payload and signatures in unpadded URL-safe base64, no `keyid`, fields DSSE
/// does not define, and `extra` signatures put before this key's.
fn as_another_tool_writes_it(bytes: &[u8], extra: &[Vec<u8>]) -> Vec<u8> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let env = Envelope::from_json(bytes, promotion_evidence::dsse::Acceptance::Strict).unwrap();
    let ours = STANDARD.decode(&env.signatures[0].sig).unwrap();
    let payload = STANDARD.decode(&env.payload).unwrap();
    let mut signatures: Vec<Value> = extra
        .iter()
        .map(|s| serde_json::json!({ "keyid": "auditor", "sig": URL_SAFE_NO_PAD.encode(s) }))
        .collect();
    signatures.push(serde_json::json!({ "sig": URL_SAFE_NO_PAD.encode(ours), "cert": null }));
    serde_json::to_vec_pretty(&serde_json::json!({
        "payload": URL_SAFE_NO_PAD.encode(&payload),
        "payloadType": env.payload_type,
        "signatures": signatures,
        "x-rekor": { "logIndex": 42 },
    }))
    .unwrap()
}

#[test]
fn envelopes_in_any_form_dsse_allows_verify_beside_another_signers_signature() {
    // secure-systems-lab/dsse v1.0.0: envelope.md, "Parsing rules" (unknown fields ignored,
    // `keyid` optional), "Standard JSON envelope" (standard or URL-safe base64) and "Multiple
    // signatures"; protocol.md, "Multi-signature Verification" (signatures by keys the verifier
    // does not trust are skipped). An auditor countersigns the manifest and an attestation.
    let log = pack_log(false);
    let dir = export(&log, "pack");
    let key = log.signer.verifier();
    let auditor = AttestationSigner::from_seed([42; 32]);
    let countersign = |path: &Path| {
        let bytes = std::fs::read(path).unwrap();
        let env =
            Envelope::from_json(&bytes, promotion_evidence::dsse::Acceptance::Strict).unwrap();
        let payload = STANDARD.decode(&env.payload).unwrap();
        let sig = STANDARD
            .decode(&auditor.sign(&env.payload_type, &payload).signatures[0].sig)
            .unwrap();
        std::fs::write(path, as_another_tool_writes_it(&bytes, &[sig])).unwrap();
    };
    // A decision's attestation: no other statement refers to its bytes (a decision's
    // statement names its test results' attestations by digest).
    let attestation = files_under(&dir)
        .into_iter()
        .filter(|f| f.starts_with("attestations/") && f.contains("-vsa-"))
        .max()
        .unwrap();
    countersign(&dir.join(&attestation));
    // The attestation's new bytes are listed in a manifest signed again by the pack's key.
    resign_manifest(&dir, &log.signer);
    countersign(&dir.join(MANIFEST_SIGNATURE));
    verify_pack(&dir, &log.checkpoint_key, &key).unwrap();

    // The auditor's signature alone is not the pack key's: refused, whatever its key id says.
    let bytes = std::fs::read(dir.join(MANIFEST_SIGNATURE)).unwrap();
    let mut env: Value = serde_json::from_slice(&bytes).unwrap();
    let auditor_only =
        serde_json::json!([{ "keyid": key.keyid(), "sig": env["signatures"][0]["sig"] }]);
    env["signatures"] = auditor_only;
    std::fs::write(dir.join(MANIFEST_SIGNATURE), env.to_string()).unwrap();
    let err = verify_pack(&dir, &log.checkpoint_key, &key).unwrap_err();
    assert!(
        matches!(&err, PackError::Signature { file, .. } if file == MANIFEST_SIGNATURE),
        "{err}"
    );
    assert!(err.to_string().contains("does not verify"), "{err}");

    // No signature at all.
    env["signatures"] = serde_json::json!([]);
    std::fs::write(dir.join(MANIFEST_SIGNATURE), env.to_string()).unwrap();
    let err = verify_pack(&dir, &log.checkpoint_key, &key).unwrap_err();
    assert!(err.to_string().contains("signatures by: none"), "{err}");
}

/// Every regular file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
