//! The event schema is the audit log's format for years. `fixtures/golden-v1.jsonl` was written
//! by schema version 1 and is never regenerated: every later version must read it, replay it to
//! the same states, and serialise each event back to the same bytes.
//!
//! To create a fixture for a *new* schema version (never to overwrite v1):
//! `PROMOTION_WRITE_GOLDEN=tests/fixtures/golden-vN.jsonl cargo test --test golden -- --ignored`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use promotion::testing::ScriptedGate;
use promotion::*;

const GOLDEN_V1: &str = include_str!("fixtures/golden-v1.jsonl");

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn who(id: &str, groups: &[&str]) -> Principal {
    Principal::new(id, groups.iter().copied()).unwrap()
}

fn name<T: TryFrom<&'static str>>(s: &'static str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(s).unwrap()
}

fn pipeline(version: &str) -> Pipeline {
    Pipeline::builder("golden", version)
        .break_glass_group("ic")
        .stage(StageSpec::new("dev").entry_gate(ScriptedGate::passing("tests")))
        .stage(
            StageSpec::new("qa")
                .after("dev")
                .entry_gate(ScriptedGate::passing("freeze"))
                .entry_gate(ScriptedGate::passing("suite"))
                .entry_policy(PhasePolicy {
                    fail_fast: false,
                    ..PhasePolicy::default()
                })
                .approval(ApprovalPolicy::new(ApprovalRule::quorum("qa", 1).unwrap())),
        )
        .stage(
            StageSpec::new("canary")
                .after("qa")
                .rollout(RolloutPlan::new([
                    RolloutStep::new(10).analysis(ScriptedGate::passing("kayenta")),
                    RolloutStep::new(100),
                ]))
                .verification_gate(ScriptedGate::passing("smoke"))
                .soak(Duration::from_secs(3600)),
        )
        .build()
        .unwrap()
}

fn release(tag: &str) -> Release {
    Release::builder(
        format!("svc {tag}"),
        "git@example.com:golden/svc",
        "0123456789abcdef0123456789abcdef01234567",
        at("2026-11-26T08:00:00Z"),
    )
    .artifact("image", format!("sha256:{}", "5a".repeat(32)))
    .builder("ci")
    .contributor("dana")
    .label("tag", tag)
    .build()
    .unwrap()
}

fn ev(producer: &str, when: DateTime<Utc>, summary: &str) -> Evidence {
    Evidence::new(producer, when, summary)
        .with_data(serde_json::json!({"count": 3, "ratio": 0.25}))
        .with_attachment("report.xml", b"<testsuite/>")
}

fn result(gate: &'static str, outcome: Outcome, when: DateTime<Utc>) -> GateResult {
    let evidence = match outcome {
        Outcome::Error { .. } => None,
        _ => Some(ev(gate, when, &format!("{gate} observed"))),
    };
    GateResult {
        gate: name(gate),
        outcome,
        evidence,
        attempts: 1,
    }
}

/// Drives `decide` with explicit commands so that every event variant appears.
fn write_streams() -> Vec<(String, Vec<Event>)> {
    let mut out = Vec::new();
    let v1 = pipeline("1");
    let v2 = pipeline("2");
    let run = |pipeline: &Pipeline,
               state: &mut ReleaseState,
               log: &mut Vec<Event>,
               cmd: Command,
               now: &str| {
        let events = decide(pipeline, state, &cmd, at(now)).unwrap();
        for e in &events {
            *state = apply(std::mem::take(state), e);
        }
        log.extend(events);
    };
    let entry = PhaseId::Entry;
    let s = |n: &'static str| -> StageName { name(n) };

    // Stream 1: the whole journey, with pending, error, fail-then-override, judgement,
    // rollout, soak, a pipeline version change and a rollback failure after promotion.
    {
        let (mut st, mut log) = (ReleaseState::default(), Vec::new());
        let t = "2026-11-26T09:00:00Z";
        run(
            &v1,
            &mut st,
            &mut log,
            Command::Register {
                release: release("full"),
                initiator: who("ci-bot", &["ci"]),
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::Start {
                stage: s("dev"),
                by: None,
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::RecordRound {
                stage: s("dev"),
                phase: entry,
                results: vec![result(
                    "tests",
                    Outcome::Pending {
                        retry_after_ms: 60_000,
                    },
                    at(t),
                )],
            },
            t,
        );
        let t = "2026-11-26T09:01:00Z";
        run(
            &v1,
            &mut st,
            &mut log,
            Command::RecordRound {
                stage: s("dev"),
                phase: entry,
                results: vec![result("tests", Outcome::Pass, at(t))],
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::RecordDeployment {
                stage: s("dev"),
                step: 0,
                result: Ok(()),
            },
            t,
        );
        run(&v1, &mut st, &mut log, Command::Tick { stage: s("dev") }, t);
        run(&v1, &mut st, &mut log, Command::Tick { stage: s("dev") }, t);
        run(
            &v1,
            &mut st,
            &mut log,
            Command::Start {
                stage: s("qa"),
                by: None,
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::RecordRound {
                stage: s("qa"),
                phase: entry,
                results: vec![
                    result("freeze", Outcome::Fail, at(t)),
                    result(
                        "suite",
                        Outcome::Error {
                            message: "runner unreachable".into(),
                        },
                        at(t),
                    ),
                ],
            },
            t,
        );
        let t = "2026-11-26T09:02:00Z";
        run(
            &v1,
            &mut st,
            &mut log,
            Command::Override {
                stage: s("qa"),
                gate: name("freeze"),
                principal: who("ivy", &["ic"]),
                justification: "hotfix for INC-1".into(),
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::RecordRound {
                stage: s("qa"),
                phase: entry,
                results: vec![result("suite", Outcome::Pass, at(t))],
            },
            t,
        );
        let t = "2026-11-26T09:03:00Z";
        run(
            &v2,
            &mut st,
            &mut log,
            Command::Approve {
                stage: s("qa"),
                principal: who("quinn", &["qa"]),
                comment: "ok".into(),
            },
            t,
        );
        run(
            &v2,
            &mut st,
            &mut log,
            Command::RecordDeployment {
                stage: s("qa"),
                step: 0,
                result: Ok(()),
            },
            t,
        );
        run(&v2, &mut st, &mut log, Command::Tick { stage: s("qa") }, t);
        run(&v2, &mut st, &mut log, Command::Tick { stage: s("qa") }, t);
        run(
            &v2,
            &mut st,
            &mut log,
            Command::Start {
                stage: s("canary"),
                by: None,
            },
            t,
        );
        run(
            &v2,
            &mut st,
            &mut log,
            Command::Tick { stage: s("canary") },
            t,
        );
        run(
            &v2,
            &mut st,
            &mut log,
            Command::RecordDeployment {
                stage: s("canary"),
                step: 0,
                result: Ok(()),
            },
            t,
        );
        run(
            &v2,
            &mut st,
            &mut log,
            Command::RecordRound {
                stage: s("canary"),
                phase: PhaseId::Analysis { step: 0 },
                results: vec![result("kayenta", Outcome::Inconclusive, at(t))],
            },
            t,
        );
        let t = "2026-11-26T09:10:00Z";
        run(
            &v2,
            &mut st,
            &mut log,
            Command::Judge {
                stage: s("canary"),
                gate: name("kayenta"),
                pass: true,
                principal: who("rita", &["qa"]),
                comment: "noise".into(),
            },
            t,
        );
        run(
            &v2,
            &mut st,
            &mut log,
            Command::RecordDeployment {
                stage: s("canary"),
                step: 1,
                result: Ok(()),
            },
            t,
        );
        run(
            &v2,
            &mut st,
            &mut log,
            Command::Tick { stage: s("canary") },
            t,
        );
        run(
            &v2,
            &mut st,
            &mut log,
            Command::RecordRound {
                stage: s("canary"),
                phase: PhaseId::Verification,
                results: vec![result("smoke", Outcome::Pass, at(t))],
            },
            t,
        );
        let t = "2026-11-26T10:10:00Z";
        run(
            &v2,
            &mut st,
            &mut log,
            Command::Tick { stage: s("canary") },
            t,
        );
        run(
            &v2,
            &mut st,
            &mut log,
            Command::RollBack {
                stage: s("canary"),
                principal: who("olga", &["ops"]),
                reason: "customer reports".into(),
            },
            t,
        );
        run(
            &v2,
            &mut st,
            &mut log,
            Command::RecordRollback {
                stage: s("canary"),
                result: Err("api timeout".into()),
            },
            t,
        );
        let t = "2026-11-26T10:11:00Z";
        run(
            &v2,
            &mut st,
            &mut log,
            Command::RecordRollback {
                stage: s("canary"),
                result: Ok(()),
            },
            t,
        );
        out.push(("full".to_owned(), log));
    }
    // Stream 2: rejection.
    {
        let (mut st, mut log) = (ReleaseState::default(), Vec::new());
        let t = "2026-11-26T11:00:00Z";
        run(
            &v1,
            &mut st,
            &mut log,
            Command::Register {
                release: release("rejected"),
                initiator: who("ci-bot", &["ci"]),
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::Start {
                stage: s("dev"),
                by: Some(who("olga", &["ops"])),
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::RecordRound {
                stage: s("dev"),
                phase: entry,
                results: vec![result("tests", Outcome::Pass, at(t))],
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::RecordDeployment {
                stage: s("dev"),
                step: 0,
                result: Ok(()),
            },
            t,
        );
        run(&v1, &mut st, &mut log, Command::Tick { stage: s("dev") }, t);
        run(&v1, &mut st, &mut log, Command::Tick { stage: s("dev") }, t);
        run(
            &v1,
            &mut st,
            &mut log,
            Command::Reject {
                stage: s("qa"),
                principal: who("quinn", &["qa"]),
                comment: "missing docs".into(),
            },
            t,
        );
        out.push(("rejected".to_owned(), log));
    }
    // Stream 3: deployment failure with rollback, then an abort elsewhere.
    {
        let (mut st, mut log) = (ReleaseState::default(), Vec::new());
        let t = "2026-11-26T12:00:00Z";
        run(
            &v1,
            &mut st,
            &mut log,
            Command::Register {
                release: release("failed"),
                initiator: who("ci-bot", &["ci"]),
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::Start {
                stage: s("dev"),
                by: None,
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::RecordRound {
                stage: s("dev"),
                phase: entry,
                results: vec![result("tests", Outcome::Pass, at(t))],
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::RecordDeployment {
                stage: s("dev"),
                step: 0,
                result: Err("quota exceeded".into()),
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::RecordRollback {
                stage: s("dev"),
                result: Ok(()),
            },
            t,
        );
        out.push(("deploy-failed".to_owned(), log));
        let (mut st, mut log) = (ReleaseState::default(), Vec::new());
        run(
            &v1,
            &mut st,
            &mut log,
            Command::Register {
                release: release("aborted"),
                initiator: who("ci-bot", &["ci"]),
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::Abort {
                stage: s("dev"),
                principal: who("olga", &["ops"]),
                reason: "superseded".into(),
            },
            t,
        );
        out.push(("aborted".to_owned(), log));
        let (mut st, mut log) = (ReleaseState::default(), Vec::new());
        run(
            &v1,
            &mut st,
            &mut log,
            Command::Register {
                release: release("gate-failed"),
                initiator: who("ci-bot", &["ci"]),
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::Start {
                stage: s("dev"),
                by: None,
            },
            t,
        );
        run(
            &v1,
            &mut st,
            &mut log,
            Command::RecordRound {
                stage: s("dev"),
                phase: entry,
                results: vec![result("tests", Outcome::Fail, at(t))],
            },
            t,
        );
        out.push(("gate-failed".to_owned(), log));
    }
    out
}

#[test]
#[ignore = "writes a new golden fixture; run only when introducing a schema version"]
fn write_golden_log() {
    let path = std::env::var("PROMOTION_WRITE_GOLDEN").expect("set PROMOTION_WRITE_GOLDEN=path");
    let existing = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    assert!(
        existing == 0,
        "{path} exists and is frozen; write a new version instead"
    );
    let mut text = String::new();
    for (stream, events) in write_streams() {
        for (i, e) in events.iter().enumerate() {
            let line = serde_json::json!({"stream": stream, "version": i + 1, "event": e});
            text.push_str(&serde_json::to_string(&line).unwrap());
            text.push('\n');
        }
    }
    std::fs::write(path, text).unwrap();
}

fn golden() -> BTreeMap<String, Vec<(String, Event)>> {
    let mut streams: BTreeMap<String, Vec<(String, Event)>> = BTreeMap::new();
    for (n, line) in GOLDEN_V1.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let stream = v["stream"].as_str().unwrap().to_owned();
        let raw = serde_json::to_string(&v["event"]).unwrap();
        let event: Event = serde_json::from_value(v["event"].clone())
            .unwrap_or_else(|e| panic!("golden line {}: {e}", n + 1));
        let list = streams.entry(stream).or_default();
        assert_eq!(v["version"].as_u64().unwrap() as usize, list.len() + 1);
        list.push((raw, event));
    }
    streams
}

#[test]
fn golden_v1_log_replays_to_the_recorded_states() {
    let streams = golden();
    let state = |s: &str| ReleaseState::replay(streams[s].iter().map(|(_, e)| e));
    let full = state("full");
    assert_eq!(full.pipeline_version(), "2");
    assert_eq!(full.status("dev"), StageStatus::Promoted);
    assert_eq!(full.status("qa"), StageStatus::Promoted);
    assert_eq!(full.status("canary"), StageStatus::RolledBack);
    assert_eq!(
        full.stage("qa").overrides()[0].justification(),
        "hotfix for INC-1"
    );
    assert_eq!(full.stage("qa").approvers(), [name::<PrincipalId>("quinn")]);
    assert_eq!(full.stage("canary").rollback_failures(), 1);
    assert_eq!(state("rejected").status("qa"), StageStatus::Rejected);
    assert_eq!(
        state("rejected").stage("dev").started_by(),
        Some(&name::<PrincipalId>("olga"))
    );
    assert_eq!(
        state("deploy-failed").status("dev"),
        StageStatus::RolledBack
    );
    assert_eq!(state("aborted").status("dev"), StageStatus::Aborted);
    assert_eq!(state("gate-failed").status("dev"), StageStatus::Failed);
    assert_eq!(
        state("gate-failed").stage("dev").failure(),
        Some(&FailureReason::GateFailed {
            phase: PhaseId::Entry,
            gate: name("tests")
        })
    );
    // The release inside the log still verifies against its id.
    assert_eq!(
        full.release().unwrap().id().to_string(),
        release("full").id().to_string()
    );
}

#[test]
fn golden_v1_events_serialise_back_to_the_same_bytes() {
    for (stream, events) in golden() {
        for (i, (raw, event)) in events.iter().enumerate() {
            let again = serde_json::to_string(event).unwrap();
            let a: serde_json::Value = serde_json::from_str(raw).unwrap();
            let b: serde_json::Value = serde_json::from_str(&again).unwrap();
            assert_eq!(a, b, "stream {stream} event {}", i + 1);
        }
    }
}

#[test]
fn golden_v1_covers_every_event_type() {
    let kinds: BTreeSet<&str> = golden()
        .values()
        .flatten()
        .map(|(_, e)| e.body.kind())
        .collect();
    let all = [
        "registered",
        "pipeline_version_adopted",
        "stage_ready",
        "stage_started",
        "gate_evaluated",
        "phase_waiting",
        "phase_paused",
        "phase_passed",
        "phase_failed",
        "gate_judged",
        "gate_overridden",
        "approval_requested",
        "approval_given",
        "approval_rejected",
        "stage_scheduled",
        "step_deployed",
        "deployment_failed",
        "step_completed",
        "verification_started",
        "soak_started",
        "stage_promoted",
        "rollback_started",
        "rollback_failed",
        "rolled_back",
        "stage_aborted",
    ];
    let missing: Vec<_> = all.iter().filter(|k| !kinds.contains(*k)).collect();
    assert!(missing.is_empty(), "golden log lacks {missing:?}");
}

#[test]
fn the_generator_still_produces_the_golden_log() {
    // Not required for compatibility (v1 is frozen either way), but when it holds it proves
    // decide() still makes the same decisions as when v1 was written.
    let streams = golden();
    let mut principal_rollbacks = 0;
    for (stream, mut events) in write_streams() {
        // Since v1, a principal's start and rollback also record the principal (`by`, with
        // how they were verified): an optional field v1 lacks, and the only decision that
        // differs. Compared without it, the rest must be what v1 recorded.
        for e in &mut events {
            match &mut e.body {
                EventBody::StageStarted { by, .. } => {
                    if let Actor::Principal { id } = &e.actor {
                        assert_eq!(by.as_ref().map(|p| &p.id), Some(id));
                    }
                    *by = None;
                }
                EventBody::RollbackStarted { by, .. } => {
                    if let Actor::Principal { id } = &e.actor {
                        assert_eq!(by.as_ref().map(|p| &p.id), Some(id));
                        principal_rollbacks += 1;
                    }
                    *by = None;
                }
                _ => {}
            }
        }
        let expected: Vec<&Event> = streams[&stream].iter().map(|(_, e)| e).collect();
        assert_eq!(
            events.iter().collect::<Vec<_>>(),
            expected,
            "stream {stream}"
        );
    }
    assert!(
        principal_rollbacks > 0,
        "the golden log has a principal's rollback"
    );
}

/// A release-train-style log (every stream `write_streams` drives, each gate verdict carrying
/// canary readings as a metrics gate records them: ratios of counts, which serde_json's
/// default parser reads back one ULP off for some values) exported to JSON Lines: every line
/// re-hashes, by a SHA-256 of its own, to its recorded hash, and the export re-imports with the
/// checkpoint's signature checked, to the same root (issue 16, item 4).
#[test]
fn a_release_train_log_exports_and_reimports() {
    use promotion::audit::{jsonl, AuditOptions, AuditStore, CheckpointSigner, MemoryBackend};
    use sha2::Digest as _;

    let signer = CheckpointSigner::from_seed("release-train.promotion.test", [5u8; 32]).unwrap();
    let store =
        AuditStore::memory(AuditOptions::new("release-train.promotion.test").signer(
            CheckpointSigner::from_seed("release-train.promotion.test", [5u8; 32]).unwrap(),
        ))
        .unwrap();
    let mut readings = 0u32;
    for (stream, events) in write_streams() {
        let events: Vec<Event> = events
            .into_iter()
            .map(|mut e| {
                if let EventBody::GateEvaluated {
                    evidence: Some(ev), ..
                } = &mut e.body
                {
                    readings += 1;
                    let (errors, requests) = (7.0 + f64::from(readings), 3011.0 * 1.7);
                    ev.data = serde_json::json!({
                        "readings": [
                            {"labels": {"job": "checkout", "track": "canary"}, "value": errors / requests},
                            {"labels": {"job": "checkout", "track": "baseline"}, "value": 1.071_566_039_146_582_6e-75},
                        ],
                        "p99_seconds": 0.1 + 0.2,
                        "threshold": 0.01,
                    });
                }
                e
            })
            .collect();
        let id = StreamId::new(stream).unwrap();
        futures::executor::block_on(store.append(&id, ExpectedVersion::NoStream, &events)).unwrap();
    }
    assert!(readings > 5, "the log holds canary readings");
    let exported = futures::executor::block_on(store.with_reader(|b| {
        let mut out = Vec::new();
        jsonl::export(b, &mut out)?;
        Ok(out)
    }))
    .unwrap();
    let text = String::from_utf8(exported.clone()).unwrap();
    let mut entries = 0;
    for line in text.lines().filter(|l| l.starts_with("{\"entry\":")) {
        let end = line.rfind(",\"hash\":\"").unwrap();
        let entry = &line["{\"entry\":".len()..end];
        let recorded = &line[end + ",\"hash\":\"".len()..][..64];
        let mut h = sha2::Sha256::new();
        h.update([0u8]);
        h.update(entry.as_bytes());
        assert_eq!(hex_of(&h.finalize()), recorded, "{line}");
        entries += 1;
    }
    let report = futures::executor::block_on(store.verify(None)).unwrap();
    assert_eq!(entries, report.entries);
    let mut target = MemoryBackend::new();
    let imported = jsonl::import(
        &mut std::io::BufReader::new(&exported[..]),
        &mut target,
        Some(&signer.verifier()),
    )
    .unwrap_or_else(|e| panic!("the release train's export does not import: {e}"));
    assert!(imported.signature_checked);
    assert_eq!((imported.entries, imported.root), (entries, report.root));
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
