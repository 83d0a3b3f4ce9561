//! Entries written before the RFC 8785 schema (schema 1: serde_json's output with keys sorted
//! by bytes, no `schema` member) keep verifying. `fixtures/audit-v1.jsonl` is an export written
//! by schema 1's writer and is never regenerated: it must import, verify (its checkpoint's
//! signature included) and re-hash outside the project, and a log that holds schema-1 entries
//! followed by new ones must verify as one log.
//!
//! The fixture was created, before schema 2 existed, with
//! `PROMOTION_WRITE_AUDIT_V1=tests/fixtures/audit-v1.jsonl cargo test -p promotion-audit --test schema_v1 -- --ignored`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::BufReader;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::executor::block_on;
use promotion_audit::{AuditOptions, AuditStore, CheckpointSigner, MemoryBackend};
use promotion_core::{
    Actor, Event, EventBody, EventStore, Evidence, ExpectedVersion, ManualClock, Outcome, PhaseId,
    StreamId,
};
use serde_json::json;

const FIXTURE: &str = include_str!("fixtures/audit-v1.jsonl");

fn t0() -> DateTime<Utc> {
    "2026-12-07T10:00:00Z".parse().unwrap()
}

fn signer() -> CheckpointSigner {
    CheckpointSigner::from_seed("v1.promotion.test", [9u8; 32]).unwrap()
}

fn options() -> AuditOptions {
    AuditOptions::new("v1.promotion.test")
        .signer(signer())
        .clock(Arc::new(ManualClock::at(t0())))
}

fn verdict(data: serde_json::Value) -> Event {
    Event {
        at: t0(),
        actor: Actor::Engine,
        request: None,
        body: EventBody::GateEvaluated {
            stage: "canary".parse().unwrap(),
            phase: PhaseId::Entry,
            round: 1,
            gate: "error-rate".parse().unwrap(),
            outcome: Outcome::Pass,
            attempts: 1,
            evidence_digest: None,
            evidence: Some(Box::new(
                Evidence::new("prometheus", t0(), "error rate within bounds").with_data(data),
            )),
        },
    }
}

/// Writes the fixture (run once, with the schema-1 writer; never again).
#[test]
#[ignore = "writes the schema-1 fixture; run only to create it"]
fn write_the_fixture() {
    let Some(path) = std::env::var_os("PROMOTION_WRITE_AUDIT_V1") else {
        return;
    };
    let store = AuditStore::memory(options()).unwrap();
    let a = StreamId::new("release-train").unwrap();
    let b = StreamId::new("we\"ird\\ é 😀").unwrap();
    let datas = [
        json!({ "ratio": 7.0 / 3011.0, "requests": 3011, "big": u64::MAX }),
        json!({ "f": 1e21, "g": 1e-7, "h": 5e-324, "k": { "\u{e000}": 1, "😀": 2, "a": null } }),
        json!({ "note": "\u{2028}\"\\\n\t\u{1f}</script>", "neg": i64::MIN }),
    ];
    for (i, data) in datas.into_iter().enumerate() {
        let stream = if i % 2 == 0 { &a } else { &b };
        block_on(store.append(stream, ExpectedVersion::Any, &[verdict(data)])).unwrap();
    }
    let out = block_on(store.with_reader(|b| {
        let mut out = Vec::new();
        promotion_audit::jsonl::export(b, &mut out)?;
        Ok(out)
    }))
    .unwrap();
    std::fs::write(path, out).unwrap();
}

#[test]
fn the_schema_1_fixture_imports_and_verifies_with_its_key() {
    let mut target = MemoryBackend::new();
    let report = promotion_audit::jsonl::import(
        &mut BufReader::new(FIXTURE.as_bytes()),
        &mut target,
        Some(&signer().verifier()),
    )
    .unwrap();
    assert_eq!(report.entries, 3);
    assert!(report.signature_checked);
    let verified = promotion_audit::verify::verify(&target, Some(&signer().verifier())).unwrap();
    assert_eq!(verified.root, report.root);
    assert!(verified.signature_checked);
    // Schema-1 entries carry no `schema` member.
    assert!(!FIXTURE.contains("\"schema\":"));
}

/// A schema-1 log that goes on being written holds schema-1 entries, then schema-2 ones: the
/// whole log verifies with its key, re-exports byte for byte and re-imports.
#[test]
fn a_schema_1_log_extended_with_schema_2_entries_verifies_as_one_log() {
    let mut backend = MemoryBackend::new();
    promotion_audit::jsonl::import(
        &mut BufReader::new(FIXTURE.as_bytes()),
        &mut backend,
        Some(&signer().verifier()),
    )
    .unwrap();
    let store = AuditStore::memory_on(backend, options()).unwrap();
    let stream = StreamId::new("release-train").unwrap();
    block_on(store.append(
        &stream,
        ExpectedVersion::Exact(2),
        &[verdict(json!({ "ratio": 0.1 + 0.2 }))],
    ))
    .unwrap();
    let report = block_on(store.verify(Some(&signer().verifier()))).unwrap();
    assert_eq!(report.entries, 4);
    assert!(report.signature_checked);
    let new = block_on(store.entry(3)).unwrap();
    assert!(String::from_utf8(new.bytes)
        .unwrap()
        .contains("\"schema\":2,"));
    let out = block_on(store.with_reader(|b| {
        let mut out = Vec::new();
        promotion_audit::jsonl::export(b, &mut out)?;
        Ok(out)
    }))
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    // The first three lines are the fixture's, byte for byte.
    let old: Vec<&str> = FIXTURE.lines().take(3).collect();
    let now: Vec<&str> = text.lines().take(3).collect();
    assert_eq!(old, now);
    let again = promotion_audit::jsonl::import(
        &mut BufReader::new(text.as_bytes()),
        &mut MemoryBackend::new(),
        Some(&signer().verifier()),
    )
    .unwrap();
    assert_eq!(again.root, report.root);
}

/// The Python standard-library checker (`tests/outside/verify_export.py`) re-hashes the
/// schema-1 fixture as stored bytes (no `schema` member) and agrees with its root.
#[test]
fn the_schema_1_fixture_re_hashes_outside_the_project() {
    let found = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let skipped =
            "SKIPPED: python3 is not on PATH; the outside check of the fixture did not run";
        if std::env::var_os("CI").is_some() {
            panic!("{skipped} (and CI is set: python3 is required)");
        }
        eprintln!("{skipped}");
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/outside/verify_export.py"
        ))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/audit-v1.jsonl"
        ))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    let mut target = MemoryBackend::new();
    let report =
        promotion_audit::jsonl::import(&mut BufReader::new(FIXTURE.as_bytes()), &mut target, None)
            .unwrap();
    assert_eq!(
        said.trim(),
        format!("ok 3 entries, root {}", hex::encode(report.root))
    );
}
