//! The JSON Lines export carries every entry's stored bytes exactly (issue 16, item 4): each
//! line's `entry` re-hashes, with a SHA-256 of its own, to the hash the line records, and the
//! export re-imports to the same entries and root, whatever the entries hold: floats of every
//! magnitude (subnormals, the largest exponents, 1e21, 1e-7, -0.0, values serde_json's default
//! parser rounds one ULP off), integers at the ends of the range RFC 8785 holds exactly
//! (±(2^53 − 1); beyond it the append is refused), any Unicode and every escape. Entries are
//! RFC 8785 (JCS) canonical JSON: an independent JCS implementation in Python's standard
//! library (`tests/outside/verify_export.py`) re-creates every entry's bytes from the parsed
//! line and recomputes its leaf hash.
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
use promotion_audit::backend::Backend;
use promotion_audit::{AuditOptions, AuditStore, CheckpointSigner, MemoryBackend};
use promotion_core::{
    Actor, Event, EventBody, EventStore, Evidence, ExpectedVersion, ManualClock, Outcome, PhaseId,
    StreamId,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

fn t0() -> DateTime<Utc> {
    "2026-12-07T10:00:00Z".parse().unwrap()
}

fn signer() -> CheckpointSigner {
    CheckpointSigner::from_seed("jsonl.promotion.test", [3u8; 32]).unwrap()
}

fn options() -> AuditOptions {
    AuditOptions::new("jsonl.promotion.test")
        .signer(signer())
        .clock(Arc::new(ManualClock::at(t0())))
}

/// A gate's verdict with `data` as its evidence's structured detail (where a canary analysis
/// puts its metrics).
fn verdict(data: Value) -> Event {
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

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        // Subnormals: every bit pattern below the smallest normal.
        (1u64..(1u64 << 52)).prop_map(f64::from_bits),
        // Decimal exponents across the whole range, with 17 significant digits.
        (-308i32..=308, 1.0f64..10.0).prop_map(|(e, m)| m * 10f64.powi(e)),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        Just(0.1 + 0.2),
        Just(-0.0),
        Just(1e21),
        Just(1e-7),
        Just(9.999_999_999_999_999e20),
        Just(1e-6),
        Just(7.0 / 3011.0),
    ]
    .prop_filter("JSON numbers are finite", |f| f.is_finite())
}

/// 2^53 − 1: the largest integer RFC 8785 (an IEEE double) holds exactly.
const MAX_SAFE: i64 = (1 << 53) - 1;

fn integer() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-MAX_SAFE..=MAX_SAFE).prop_map(Value::from),
        (0..=MAX_SAFE as u64).prop_map(Value::from),
        Just(Value::from(MAX_SAFE)),
        Just(Value::from(-MAX_SAFE)),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just("\"quoted\" \\ back/slash\n\t\r\u{8}\u{c}\u{0}\u{1f}\u{7f}".to_owned()),
        Just("\u{2028}\u{2029} \u{feff} \u{ffff} 😀 e\u{301} ﬁ".to_owned()),
        Just("</script><!--".to_owned()),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        float().prop_map(|f| json!(f)),
        integer(),
        text().prop_map(Value::from),
    ]
}

fn data() -> impl Strategy<Value = Value> {
    prop::collection::vec((text(), prop::collection::vec(leaf(), 0..4)), 1..6).prop_map(|kv| {
        let mut m = Map::new();
        for (k, v) in kv {
            m.insert(k, Value::Array(v));
        }
        Value::Object(m)
    })
}

/// The RFC 6962 leaf hash, computed here rather than by the crate.
fn leaf_hash(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(bytes);
    hex::encode(h.finalize())
}

/// Exports `store`, checks every line re-hashes to its recorded hash and holds the stored
/// bytes, imports the export and checks the import holds the same entries and root.
fn round_trip(store: &AuditStore) {
    let exported = block_on(store.with_reader(|b| {
        let mut out = Vec::new();
        promotion_audit::jsonl::export(b, &mut out)?;
        Ok(out)
    }))
    .unwrap();
    let text = String::from_utf8(exported.clone()).unwrap();
    let size = block_on(store.size()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len() as u64,
        size + 1,
        "every entry and the checkpoint"
    );
    for (seq, line) in lines[..size as usize].iter().enumerate() {
        let inner = line.strip_prefix("{\"entry\":").unwrap();
        let end = inner.rfind(",\"hash\":\"").unwrap();
        let (entry, rest) = inner.split_at(end);
        let recorded = &rest[",\"hash\":\"".len()..][..64];
        assert_eq!(leaf_hash(entry.as_bytes()), recorded, "line {}", seq + 1);
        let stored = block_on(store.entry(seq as u64)).unwrap();
        assert_eq!(entry.as_bytes(), &stored.bytes[..], "line {}", seq + 1);
    }
    let mut target = MemoryBackend::new();
    let report = promotion_audit::jsonl::import(
        &mut BufReader::new(&exported[..]),
        &mut target,
        Some(&signer().verifier()),
    )
    .unwrap_or_else(|e| panic!("the project's own export does not import: {e}"));
    assert_eq!(report.entries, size);
    assert!(report.signature_checked);
    assert_eq!(report.root, block_on(store.verify(None)).unwrap().root);
    let imported = target.read_range(0, usize::MAX).unwrap();
    for e in &imported {
        assert_eq!(e.bytes, block_on(store.entry(e.seq)).unwrap().bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn export_then_import_keeps_every_byte(batches in prop::collection::vec(
        prop::collection::vec(data(), 1..4), 1..4)
    ) {
        let store = AuditStore::memory(options()).unwrap();
        let stream = StreamId::new("release-train").unwrap();
        for batch in batches {
            let events: Vec<Event> = batch.into_iter().map(verdict).collect();
            block_on(store.append(&stream, ExpectedVersion::Any, &events)).unwrap();
        }
        round_trip(&store);
    }
}

/// Floats that serde_json's default parser reads one ULP off (as it did the release train's
/// canary values): the export keeps their digits, and the import their hashes.
#[test]
fn a_float_the_default_parser_rounds_differently_survives() {
    let store = AuditStore::memory(options()).unwrap();
    let stream = StreamId::new("release-train").unwrap();
    // Each of these, written by serde_json and read back by its default parser, comes back
    // one ULP off (found by a search over random bit patterns).
    let tricky = [
        1.071_566_039_146_582_6e-75,
        -1.603_964_615_428_183e143,
        -9.643_915_712_060_552e-234,
    ];
    let events: Vec<Event> = tricky
        .iter()
        .map(|f| verdict(json!({ "ratio": f, "requests": 3011 })))
        .collect();
    block_on(store.append(&stream, ExpectedVersion::NoStream, &events)).unwrap();
    round_trip(&store);
}

/// Python 3 on `PATH`, or `None` after saying so (the SKIPPED convention: under CI, a failure).
fn python3() -> Option<&'static str> {
    let found = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("python3");
    }
    let skipped = "SKIPPED: python3 is not on PATH; the outside check of the export did not run";
    if std::env::var_os("CI").is_some() {
        panic!("{skipped} (and CI is set: python3 is required)");
    }
    eprintln!("{skipped}");
    None
}

/// Outside the project: a Python script using only its standard library
/// (`tests/outside/verify_export.py`) re-hashes every line of an export with SHA-256, follows
/// the chain, recomputes the RFC 6962 tree head (RFC 6962 §2.1) and compares it with the
/// checkpoint; it names the line of a damaged export.
#[test]
fn an_export_re_hashes_outside_the_project() {
    let Some(python) = python3() else {
        return;
    };
    let store = AuditStore::memory(options()).unwrap();
    let stream = StreamId::new("release-train").unwrap();
    for (i, f) in [7.0 / 3011.0, 1.071_566_039_146_582_6e-75, 0.1 + 0.2]
        .into_iter()
        .enumerate()
    {
        let data = json!({
            "value": f,
            "requests": MAX_SAFE - i as i64,
            "note": "é\n\"😀\"\u{1f}\u{2028}",
            "keys": { "\u{e000}": 1, "😀": 2, "a": null, "\u{80}": [1e21, 1e-7, -0.0, 5e-324, 2.009_485_676_415_187_2e18, 1e20] },
        });
        block_on(store.append(&stream, ExpectedVersion::Any, &[verdict(data)])).unwrap();
    }
    let exported = block_on(store.with_reader(|b| {
        let mut out = Vec::new();
        promotion_audit::jsonl::export(b, &mut out)?;
        Ok(out)
    }))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/outside/verify_export.py"
    );
    let run = |text: &[u8]| {
        let path = dir.path().join("export.jsonl");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(python)
            .arg(script)
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let root = block_on(store.verify(None)).unwrap().root;
    let (ok, said) = run(&exported);
    assert!(ok, "{said}");
    assert_eq!(
        said.trim(),
        format!("ok 3 entries, root {}", hex::encode(root))
    );
    // One digit of the second entry's float changed: the script names its line.
    let text = String::from_utf8(exported).unwrap();
    let damaged = text.replacen("1.0715660391465826e-75", "1.0715660391465827e-75", 1);
    assert_ne!(
        damaged, text,
        "the export holds the float's shortest digits"
    );
    let (ok, said) = run(damaged.as_bytes());
    assert!(!ok, "{said}");
    assert!(said.starts_with("line 2: "), "{said}");
    // The same entry written with its keys in another order (the same JSON value, not its
    // RFC 8785 form), its hash recomputed over the new bytes: both importers refuse it.
    let line2 = text.lines().nth(1).unwrap();
    let reordered = line2.replacen(
        r#"{"entry":{"at":"2026-12-07T10:00:00Z","#,
        r#"{"entry":{"version":2,"at":"2026-12-07T10:00:00Z","#,
        1,
    );
    let reordered = reordered.replacen(r#","version":2},"hash""#, r#"},"hash""#, 1);
    assert_ne!(reordered, line2);
    let inner = reordered.strip_prefix("{\"entry\":").unwrap();
    let end = inner.rfind(",\"hash\":\"").unwrap();
    let rehashed = format!(
        "{{\"entry\":{},\"hash\":\"{}\",\"seq\":1}}",
        &inner[..end],
        leaf_hash(&inner.as_bytes()[..end])
    );
    let forged = text.replacen(line2, &rehashed, 1);
    let (ok, said) = run(forged.as_bytes());
    assert!(!ok, "{said}");
    assert_eq!(
        said.trim(),
        "line 2: the entry is not in RFC 8785 canonical form"
    );
    let err = promotion_audit::jsonl::import(
        &mut BufReader::new(forged.as_bytes()),
        &mut MemoryBackend::new(),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("not in RFC 8785 canonical form"), "{err}");
}

/// An integer RFC 8785 cannot hold exactly is refused at append, with its place named, and
/// nothing is written: never rounded silently.
#[test]
fn an_integer_beyond_2_pow_53_is_refused_where_it_sits() {
    let store = AuditStore::memory(options()).unwrap();
    let stream = StreamId::new("release-train").unwrap();
    let event = verdict(json!({ "bytes": { "sent": [1, 9_007_199_254_740_993u64] } }));
    let err = block_on(store.append(&stream, ExpectedVersion::Any, &[event]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("9007199254740993")
            && err.contains("/evidence/data/bytes/sent/1")
            && err.contains("2^53"),
        "{err}"
    );
    assert_eq!(block_on(store.size()).unwrap(), 0);
    let ok = verdict(json!({ "bytes": MAX_SAFE, "neg": -MAX_SAFE }));
    block_on(store.append(&stream, ExpectedVersion::Any, &[ok])).unwrap();
    round_trip(&store);
}

/// The project's JCS (serde_json_canonicalizer, below the entry writer) and the Python
/// script's own implementation agree on thousands of values: random doubles of every
/// magnitude, RFC 8785 Appendix B's, keys that sort differently by UTF-16 than by code point,
/// and strings with every escape.
#[test]
fn the_outside_jcs_implementation_agrees_with_the_writer() {
    let Some(python) = python3() else {
        return;
    };
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let floats: Vec<f64> = (0..3000)
        .map(|_| float().new_tree(&mut runner).unwrap().current())
        .collect();
    let texts: Vec<String> = (0..300)
        .map(|_| text().new_tree(&mut runner).unwrap().current())
        .collect();
    let mut keys = Map::new();
    for (i, t) in texts.iter().enumerate() {
        keys.insert(t.clone(), json!(i));
    }
    for k in ["\u{e000}", "😀", "\u{ffff}", "a", "\u{80}", "\r", "1"] {
        keys.insert(k.to_owned(), Value::Null);
    }
    let value = json!({ "floats": floats, "texts": texts, "keys": keys,
        "ints": [0, 1, -1, MAX_SAFE, -MAX_SAFE, 3011] });
    let ours = String::from_utf8(promotion_audit::entry::jcs(&value).unwrap()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/outside/verify_export.py"
    );
    let mut child = std::process::Command::new(python)
        .arg(script)
        .arg("--jcs")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        // The input is serde_json's own (non-canonical) text: the script parses it itself.
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(serde_json::to_string_pretty(&value).unwrap().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let theirs = String::from_utf8(out.stdout).unwrap();
    if theirs != ours {
        let at = ours
            .bytes()
            .zip(theirs.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "the implementations differ at byte {at}: ours …{}… theirs …{}…",
            &ours[at.saturating_sub(40)..(at + 40).min(ours.len())],
            &theirs[at.saturating_sub(40)..(at + 40).min(theirs.len())]
        );
    }
}

/// Lone UTF-16 surrogates (RFC 8785 §3.2.2.2 leaves them out of I-JSON): a Rust string cannot
/// hold one, so the writer never produces one; an export line carrying `\ud800` (its hash
/// recomputed) is refused by the import, never silently replaced.
#[test]
fn a_lone_surrogate_in_an_export_line_does_not_import() {
    let store = AuditStore::memory(options()).unwrap();
    let stream = StreamId::new("release-train").unwrap();
    let event = verdict(json!({ "note": "SURROGATE" }));
    block_on(store.append(&stream, ExpectedVersion::NoStream, &[event])).unwrap();
    let exported = block_on(store.with_reader(|b| {
        let mut out = Vec::new();
        promotion_audit::jsonl::export(b, &mut out)?;
        Ok(out)
    }))
    .unwrap();
    let text = String::from_utf8(exported).unwrap();
    let line = text.lines().next().unwrap();
    let inner = line.strip_prefix("{\"entry\":").unwrap();
    let end = inner.rfind(",\"hash\":\"").unwrap();
    let entry = inner[..end].replacen("SURROGATE", "\\ud800", 1);
    let forged = format!(
        "{{\"entry\":{entry},\"hash\":\"{}\",\"seq\":0}}\n",
        leaf_hash(entry.as_bytes())
    );
    let err = promotion_audit::jsonl::import(
        &mut BufReader::new(forged.as_bytes()),
        &mut MemoryBackend::new(),
        None,
    )
    .unwrap_err()
    .to_string();
    // serde_json's words: "lone leading surrogate" or "unexpected end of hex escape".
    assert!(
        err.starts_with("line 1") && (err.contains("surrogate") || err.contains("hex escape")),
        "{err}"
    );
}
