//! Unit tests of the policy gate.

use super::*;
use crate::{Evidence, Gate, GateError, GateKind, Verdict};
use chrono::{DateTime, Utc};
use promotion_core::machine::{Actor, Event, EventBody};
use promotion_core::{Digest, GateName, Outcome, PhaseId, Release};
use std::path::{Path, PathBuf};

use chrono::TimeZone;
use promotion_core::testing::GateProbe;
use promotion_core::{ReleaseState, StageName, StageStatus};

const API_DIGEST: &str = "sha256:6c3f1e0b0f1a3c5d7e9f2a4b6c8d0e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d";
const WEB_DIGEST: &str = "sha256:0d4e8a2c6b1f5e9d3c7a1b5f9e3d7c1a5b9f3e7d1c5a9b3f7e1d5c9a3b7f1e5d";

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/policy")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()
}

/// A release that satisfies the sample bundle, with its labels and artifacts adjustable.
fn release(builder: &str, artifacts: &[(&str, &str, &str)], labels: &[(&str, &str)]) -> Release {
    let mut b = Release::builder(
        "shop-api 2.3.0",
        "git@example.com:shop/api",
        "4f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",
        t0(),
    )
    .builder(builder)
    .contributor("dana")
    .contributor("lee");
    for (name, digest, uri) in artifacts {
        b = b.artifact_at(*name, *digest, *uri);
    }
    for (k, v) in labels {
        b = b.label(*k, *v);
    }
    b.build().unwrap()
}

fn good_release() -> Release {
    release(
        "ci.example.com",
        &[
            (
                "api-image",
                API_DIGEST,
                "registry.example.com/shop/api@sha256:6c3f1e0b",
            ),
            (
                "web-image",
                WEB_DIGEST,
                "registry.example.com/shop/web@sha256:0d4e8a2c",
            ),
        ],
        &[("team", "payments"), ("ticket", "CHG-1042")],
    )
}

/// The state after stage `integration` recorded the change-record gate with `facts` and was
/// promoted, folded from the events that record it, as the engine would.
fn state_with_change_record(risk: &str) -> ReleaseState {
    let stage = StageName::new("integration").unwrap();
    let gate = GateName::new("change-record").unwrap();
    let event = |actor: Actor, body: EventBody| Event {
        at: t0(),
        actor,
        request: None,
        body,
    };
    let evidence = Evidence::new("change-record", t0(), "CHG-1042").with_fact("risk", risk);
    let events = [
        event(
            Actor::Engine,
            EventBody::StageStarted {
                stage: stage.clone(),
                by: None,
            },
        ),
        event(
            Actor::Gate { name: gate.clone() },
            EventBody::GateEvaluated {
                stage: stage.clone(),
                phase: PhaseId::Entry,
                round: 1,
                gate,
                outcome: Outcome::Pass,
                attempts: 1,
                evidence_digest: Some(Digest::of(b"change record CHG-1042")),
                evidence: Some(Box::new(evidence)),
            },
        ),
        event(Actor::Engine, EventBody::StagePromoted { stage }),
    ];
    let state = ReleaseState::replay(&events);
    let integration = state.stage("integration");
    assert_eq!(integration.status(), StageStatus::Promoted);
    assert_eq!(
        integration
            .entry()
            .gate("change-record")
            .and_then(|r| r.fact("risk")),
        Some(risk)
    );
    state
}

fn bundle_gate() -> PolicyGate {
    PolicyGate::builder()
        .name("release-policy")
        .bundle(samples().join("bundle"))
        .build()
        .unwrap()
}

fn probe(release: Release, risk: &str) -> GateProbe {
    GateProbe::new()
        .at(t0())
        .release(release)
        .stage("compliance")
        .state(state_with_change_record(risk))
}

fn eval(gate: &PolicyGate, probe: &GateProbe) -> Result<Verdict, GateError> {
    futures::executor::block_on(probe.evaluate(gate))
}

fn messages(evidence: &Evidence, key: &str) -> Vec<(String, String)> {
    evidence.data[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_owned(),
                f["msg"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn invalid(err: GateError) -> (String, String) {
    match err {
        GateError::InvalidInput { what, message } => (what, message),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

fn misconfigured(err: GateError) -> String {
    match err {
        GateError::Misconfigured(message) => message,
        other => panic!("expected a misconfiguration, got {other:?}"),
    }
}

fn path(rel: &str) -> String {
    samples().join(rel).display().to_string()
}

// -----------------------------------------------------------------------------------------
// Verdicts
// -----------------------------------------------------------------------------------------

#[test]
fn compliant_release_passes_with_every_input_on_record() {
    let gate = bundle_gate();
    let verdict = eval(&gate, &probe(good_release(), "low")).unwrap();
    let Verdict::Pass(ev) = verdict else {
        panic!("expected a pass, got {verdict:?}")
    };
    assert_eq!(
        ev.summary,
        "policy `main` passed: 4 rules checked, no failures or warnings"
    );
    assert_eq!(ev.producer, "release-policy");
    assert_eq!(ev.facts["policy_failures"], "0");
    assert_eq!(ev.facts["policy_warnings"], "0");
    assert_eq!(ev.facts["policy_set"], gate.policy_set_digest().to_string());
    assert_eq!(
        ev.data["rules"],
        serde_json::json!({"deny": 0, "deny_high_risk": 0, "violation": 0, "warn": 0})
    );

    // Every file the gate read, by path and independently computed digest, then the input.
    let expected = [
        "bundle/lib/labels.rego",
        "bundle/release.rego",
        "bundle/data.json",
        "bundle/registries/data.json",
    ];
    let names: Vec<&str> = ev.attachments.iter().map(|a| a.name.as_str()).collect();
    let mut want: Vec<String> = expected.iter().map(|p| path(p)).collect();
    want.push("input.json".to_owned());
    assert_eq!(names, want);
    for (attachment, rel) in ev.attachments.iter().zip(expected) {
        let bytes = std::fs::read(samples().join(rel)).unwrap();
        assert_eq!(attachment.digest, Digest::of(&bytes), "{rel}");
        assert_eq!(attachment.size, bytes.len() as u64);
    }
    assert_eq!(
        ev.data["input_digest"],
        ev.attachments.last().unwrap().digest.to_string()
    );
    assert_eq!(ev.data["policies"][0]["package"], "lib.labels");
    assert_eq!(ev.data["policies"][1]["package"], "main");
    assert_eq!(ev.data["data_documents"][0]["mount"], "");
    assert_eq!(ev.data["data_documents"][1]["mount"], "registries");
    assert_eq!(ev.data["rego_version"], "v1");
}

#[test]
fn denials_fail_with_their_messages() {
    let rel = release(
        "ci.example.com",
        &[
            (
                "api-image",
                API_DIGEST,
                "registry.example.com/shop/api@sha256:6c3f1e0b",
            ),
            ("web-image", WEB_DIGEST, "docker.io/library/nginx:1.27"),
        ],
        &[("team", "payments"), ("ticket", "CHG-1042")],
    );
    let verdict = eval(&bundle_gate(), &probe(rel, "high")).unwrap();
    let Verdict::Fail(ev) = verdict else {
        panic!("expected a failure, got {verdict:?}")
    };
    assert_eq!(
        messages(&ev, "failures"),
        [
            (
                "deny".to_owned(),
                "artifact `web-image` is not from an approved registry \
                 (docker.io/library/nginx:1.27)"
                    .to_owned()
            ),
            (
                "deny_high_risk".to_owned(),
                "change record (stage integration) rates the change as high risk, but the \
                 release has no `rollback-plan` label"
                    .to_owned()
            ),
        ]
    );
    assert_eq!(
        ev.summary,
        "policy `main` denied the release (2 failures, 0 warnings): artifact `web-image` \
         is not from an approved registry (docker.io/library/nginx:1.27); change record \
         (stage integration) rates the change as high risk, but the release has no \
         `rollback-plan` label"
    );
    assert_eq!(ev.facts["policy_failures"], "2");
    assert_eq!(
        ev.data["rules"],
        serde_json::json!({"deny": 1, "deny_high_risk": 1, "violation": 0, "warn": 0})
    );
}

#[test]
fn high_risk_with_a_rollback_plan_passes() {
    let rel = release(
        "ci.example.com",
        &[(
            "api-image",
            API_DIGEST,
            "registry.example.com/shop/api@sha256:6c3f1e0b",
        )],
        &[
            ("team", "payments"),
            ("ticket", "CHG-1042"),
            ("rollback-plan", "https://wiki.example.com/shop/rollback"),
        ],
    );
    let verdict = eval(&bundle_gate(), &probe(rel, "high")).unwrap();
    assert!(matches!(verdict, Verdict::Pass(_)), "{verdict:?}");
}

#[test]
fn violation_objects_keep_their_metadata() {
    let rel = release(
        "laptop.dana.example.com",
        &[(
            "api-image",
            API_DIGEST,
            "registry.example.com/shop/api@sha256:6c3f1e0b",
        )],
        &[("team", "payments"), ("ticket", "CHG-1042")],
    );
    let verdict = eval(&bundle_gate(), &probe(rel, "low")).unwrap();
    let Verdict::Fail(ev) = verdict else {
        panic!("expected a failure, got {verdict:?}")
    };
    assert_eq!(
        ev.data["failures"],
        serde_json::json!([{
            "rule": "violation",
            "msg": "release was built by `laptop.dana.example.com`, which is not a trusted builder",
            "metadata": {"builder": "laptop.dana.example.com"},
        }])
    );
    assert_eq!(
        ev.summary,
        "policy `main` denied the release (1 failure, 0 warnings): release was built by \
         `laptop.dana.example.com`, which is not a trusted builder"
    );
}

#[test]
fn warnings_are_recorded_and_never_fail() {
    let rel = release(
        "ci.example.com",
        &[(
            "api-image",
            API_DIGEST,
            "registry.example.com/shop/api@sha256:6c3f1e0b",
        )],
        &[],
    );
    let verdict = eval(&bundle_gate(), &probe(rel.clone(), "low")).unwrap();
    let Verdict::Pass(ev) = verdict else {
        panic!("expected a pass, got {verdict:?}")
    };
    assert_eq!(
        messages(&ev, "warnings"),
        [
            ("warn".to_owned(), "release has no `team` label".to_owned()),
            (
                "warn".to_owned(),
                "release has no `ticket` label".to_owned()
            ),
        ]
    );
    assert_eq!(
        ev.summary,
        "policy `main` passed with 2 warnings: release has no `team` label; release has no \
         `ticket` label"
    );
    assert_eq!(ev.facts["policy_warnings"], "2");

    // A warn-only package elsewhere (`warn_<suffix>` rules), configured by name: warnings
    // in compliance; its one deny rule applies in production only.
    let gate = PolicyGate::builder()
        .package("release")
        .policy_file(samples().join("warn-only/labels.rego"))
        .build()
        .unwrap();
    let verdict = eval(&gate, &probe(rel.clone(), "low")).unwrap();
    let Verdict::Pass(ev) = verdict else {
        panic!("expected a pass, got {verdict:?}")
    };
    assert_eq!(
        messages(&ev, "warnings"),
        [
            (
                "warn_team".to_owned(),
                "release has no `team` label".to_owned()
            ),
            (
                "warn_ticket".to_owned(),
                "release has no `ticket` label".to_owned()
            ),
        ]
    );
    let verdict = eval(&gate, &probe(rel, "low").stage("production")).unwrap();
    let Verdict::Fail(ev) = verdict else {
        panic!("expected a failure, got {verdict:?}")
    };
    assert_eq!(
        ev.summary,
        "policy `release` denied the release (1 failure, 2 warnings): a production release \
         needs a `team` label"
    );
}

#[test]
fn the_summary_quotes_two_messages_and_counts_the_rest() {
    let gate = PolicyGate::builder()
        .policy_text(
            "many.rego",
            "package main\n\ndeny contains sprintf(\"artifact %d\", [i]) if some i in numbers.range(1, 5)\n",
        )
        .build()
        .unwrap();
    let verdict = eval(&gate, &GateProbe::new()).unwrap();
    assert_eq!(
        verdict.evidence().summary,
        "policy `main` denied the release (5 failures, 0 warnings): artifact 1; artifact 2 \
         (and 3 more)"
    );
}

#[test]
fn input_carries_release_pipeline_stage_and_gathered_evidence() {
    // Each expectation is a deny rule: a wrong or missing field fails the gate and names
    // itself; `warn` proves the package was evaluated at all.
    let rego = r#"package main

warn contains "evaluated" if true

deny contains "release.id" if not startswith(input.release.id, "sha256:")
deny contains "release.name" if input.release.name != "shop-api 2.3.0"
deny contains "release.artifacts" if {
	input.release.artifacts[0].name != "api-image"
}
deny contains "artifact digest" if {
	not startswith(input.release.artifacts[0].digest, "sha256:6c3f1e0b")
}
deny contains "release.source" if {
	input.release.source.commit != "4f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"
}
deny contains "release.builder" if input.release.builder != "ci.example.com"
deny contains "release.contributors" if input.release.contributors != ["dana", "lee"]
deny contains "release.labels" if input.release.labels.team != "payments"
deny contains "pipeline" if input.pipeline != {"name": "probe", "version": "1"}
deny contains "stage" if input.stage != "compliance"
deny contains "phase" if input.phase != "entry"
deny contains "gate" if input.gate != "policy"
deny contains "round" if input.round != 1
deny contains "stages" if {
	rec := input.stages.integration.entry["change-record"]
	not rec.outcome == "pass"
}
deny contains "stage status" if input.stages.integration.status != "promoted"
deny contains "facts" if input.stages.integration.entry["change-record"].facts.risk != "high"
deny contains "flat gates" if {
	not count([g |
		some g in input.gates
		g.stage == "integration"
		g.phase == "entry"
		g.gate == "change-record"
		g.facts.risk == "high"
		g.satisfied == true
		startswith(g.evidence_digest, "sha256:")
	]) == 1
}
"#;
    let gate = PolicyGate::builder()
        .policy_text("expectations.rego", rego)
        .build()
        .unwrap();
    let verdict = eval(&gate, &probe(good_release(), "high")).unwrap();
    let ev = verdict.evidence();
    assert_eq!(messages(ev, "failures"), []);
    assert_eq!(
        messages(ev, "warnings"),
        [("warn".to_owned(), "evaluated".to_owned())]
    );
    assert!(matches!(verdict, Verdict::Pass(_)));
}

#[test]
fn data_documents_decide() {
    // The same policies without the bundle's data: no registry is approved and no builder
    // trusted, so everything is denied.
    let bare = PolicyGate::builder()
        .policy_file(samples().join("bundle/release.rego"))
        .policy_file(samples().join("bundle/lib/labels.rego"))
        .build()
        .unwrap();
    let verdict = eval(&bare, &probe(good_release(), "low")).unwrap();
    let Verdict::Fail(ev) = verdict else {
        panic!("expected a failure, got {verdict:?}")
    };
    assert_eq!(ev.data["rules"]["deny"], 2);
    assert_eq!(ev.data["rules"]["violation"], 1);

    // A data file merged at the root that approves only the `web` repository.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("approved.json");
    std::fs::write(
        &data,
        r#"{"registries": {"allowed": ["registry.example.com/shop/web"]},
            "builders": {"trusted": ["ci.example.com"]}}"#,
    )
    .unwrap();
    let gate = PolicyGate::builder()
        .policy_file(samples().join("bundle/release.rego"))
        .policy_file(samples().join("bundle/lib/labels.rego"))
        .data_file(&data)
        .build()
        .unwrap();
    let verdict = eval(&gate, &probe(good_release(), "low")).unwrap();
    let Verdict::Fail(ev) = verdict else {
        panic!("expected a failure, got {verdict:?}")
    };
    assert_eq!(
        messages(&ev, "failures"),
        [(
            "deny".to_owned(),
            "artifact `api-image` is not from an approved registry \
             (registry.example.com/shop/api@sha256:6c3f1e0b)"
                .to_owned()
        )]
    );
    assert_eq!(gate.data_documents()[0].mount.as_deref(), Some(""));
    assert_eq!(
        gate.data_documents()[0].digest,
        Digest::of(&std::fs::read(&data).unwrap())
    );
    assert!(ev.attachments.iter().any(|a| a.name == display(&data)));
}

#[test]
fn legacy_rego_v0_policies_load_when_asked() {
    let file = samples().join("legacy/release_v0.rego");
    let (what, message) = invalid(
        PolicyGate::builder()
            .policy_file(&file)
            .build()
            .unwrap_err(),
    );
    assert_eq!(what, format!("{} line 4", file.display()));
    assert_eq!(
        message,
        "column 11: `if` keyword is required before rule body"
    );

    let gate = PolicyGate::builder()
        .policy_file(&file)
        .rego_v0(true)
        .build()
        .unwrap();
    let rel = release(
        "ci.example.com",
        &[("api-image", API_DIGEST, "docker.io/shop/api:2.3.0")],
        &[],
    );
    let verdict = eval(&gate, &probe(rel, "low")).unwrap();
    let Verdict::Fail(ev) = verdict else {
        panic!("expected a failure, got {verdict:?}")
    };
    assert_eq!(
        messages(&ev, "failures"),
        [(
            "deny".to_owned(),
            "artifact `api-image` is not from an approved registry".to_owned()
        )]
    );
    assert_eq!(ev.data["rego_version"], "v0");
    assert_eq!(ev.facts["policy_warnings"], "1");
}

#[test]
fn evidence_digests_follow_the_policy_files() {
    let dir = tempfile::tempdir().unwrap();
    for rel in [
        "release.rego",
        "lib/labels.rego",
        "data.json",
        "registries/data.json",
    ] {
        let to = dir.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(samples().join("bundle").join(rel), &to).unwrap();
    }
    let build = || PolicyGate::builder().bundle(dir.path()).build().unwrap();
    let evidence = |gate: &PolicyGate| {
        eval(gate, &probe(good_release(), "low"))
            .unwrap()
            .evidence()
            .clone()
    };
    let before = evidence(&build());
    assert_eq!(before.attachments, evidence(&build()).attachments);

    // Same decision, different policy text: the audit must tell the versions apart.
    let policy = dir.path().join("release.rego");
    let mut text = std::fs::read_to_string(&policy).unwrap();
    text.push_str("\n# Reviewed by the compliance board on 2026-11-20.\n");
    std::fs::write(&policy, text).unwrap();
    let gate = build();
    let after = evidence(&gate);
    assert_eq!(before.summary, after.summary);
    let digest_of = |ev: &Evidence, name: &str| {
        ev.attachments
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.digest)
            .unwrap()
    };
    let policy_name = display(&policy);
    assert_ne!(
        digest_of(&before, &policy_name),
        digest_of(&after, &policy_name)
    );
    assert_eq!(
        digest_of(&after, &policy_name),
        Digest::of(&std::fs::read(&policy).unwrap())
    );
    let labels = display(&dir.path().join("lib/labels.rego"));
    assert_eq!(digest_of(&before, &labels), digest_of(&after, &labels));
    assert_ne!(before.facts["policy_set"], after.facts["policy_set"]);
    assert_ne!(before.digest(), after.digest());
    // The input is the same either way.
    assert_eq!(
        digest_of(&before, "input.json"),
        digest_of(&after, "input.json")
    );
}

#[test]
fn one_gate_evaluates_many_times_from_the_prepared_engine() {
    let gate = std::sync::Arc::new(bundle_gate());
    let first = eval(&gate, &probe(good_release(), "low")).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let gate = gate.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| eval(&gate, &probe(good_release(), "low")).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for verdict in t.join().unwrap() {
            assert_eq!(verdict, first);
        }
    }
    // A denial in between does not leak into later evaluations.
    let bad = release("laptop", &[("api-image", API_DIGEST, "docker.io/x")], &[]);
    assert!(matches!(
        eval(&gate, &probe(bad, "high")).unwrap(),
        Verdict::Fail(_)
    ));
    assert_eq!(eval(&gate, &probe(good_release(), "low")).unwrap(), first);
}

// -----------------------------------------------------------------------------------------
// Broken policies and data
// -----------------------------------------------------------------------------------------

#[test]
fn a_syntax_error_names_the_file_and_the_line() {
    let file = samples().join("broken/syntax_error.rego");
    let err = PolicyGate::builder()
        .policy_file(&file)
        .build()
        .unwrap_err();
    let (what, message) = invalid(err);
    assert_eq!(what, format!("{} line 10", file.display()));
    assert_eq!(message, "column 5: expecting `]` while parsing array");
}

#[test]
fn an_analysis_error_names_the_file_and_the_line() {
    let err = PolicyGate::builder()
        .policy_text(
            "policy/unsafe.rego",
            "package main\n\ndeny contains msg if {\n\tartifact.uri == \"x\"\n\tmsg := \"m\"\n}\n",
        )
        .build()
        .unwrap_err();
    let (what, message) = invalid(err);
    assert_eq!(what, "policy/unsafe.rego line 4");
    assert_eq!(
        message,
        "column 5: use of undefined variable `artifact` is unsafe"
    );
}

#[test]
fn a_function_through_an_import_alias_is_refused_with_its_line() {
    // Valid OPA, unsupported by regorus 0.5: regorus resolves functions when it evaluates,
    // so the gate loads and every evaluation is an error naming the call, never a pass.
    let file = samples().join("broken/import_alias.rego");
    let gate = PolicyGate::builder()
        .policy_file(samples().join("bundle/lib/labels.rego"))
        .policy_file(&file)
        .build()
        .unwrap();
    let (what, message) = invalid(eval(&gate, &probe(good_release(), "low")).unwrap_err());
    assert_eq!(what, format!("{} line 8", file.display()));
    assert_eq!(message, "column 33: could not find function labels.missing");
}

#[test]
fn a_runtime_error_names_the_file_and_the_line() {
    let file = samples().join("broken/runtime_error.rego");
    let gate = PolicyGate::builder().policy_file(&file).build().unwrap();
    // An automated release: no contributors, so the policy divides by zero.
    let automated = Release::builder(
        "shop-api 2.3.1",
        "git@example.com:shop/api",
        "4f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",
        t0(),
    )
    .artifact_at("api-image", API_DIGEST, "registry.example.com/shop/api")
    .builder("ci.example.com")
    .build()
    .unwrap();
    let err = eval(&gate, &probe(automated, "low")).unwrap_err();
    let (what, message) = invalid(err);
    assert_eq!(what, format!("{} line 5", file.display()));
    assert_eq!(message, "column 45: divide by zero");
}

#[test]
fn a_package_no_policy_declares_is_refused() {
    let err = PolicyGate::builder()
        .policy_file(samples().join("broken/other_package.rego"))
        .build()
        .unwrap_err();
    assert_eq!(
        misconfigured(err),
        "no policy declares package `main`, so nothing would be checked; the policies \
         declare `release.checks`"
    );
    // Configured to the declared package, the same file works.
    let gate = PolicyGate::builder()
        .package("release.checks")
        .policy_file(samples().join("broken/other_package.rego"))
        .build()
        .unwrap();
    assert_eq!(gate.package(), "release.checks");
    assert!(matches!(
        eval(&gate, &GateProbe::new()).unwrap(),
        Verdict::Fail(_)
    ));
}

#[test]
fn a_package_without_decision_rules_is_a_misconfiguration() {
    let file = samples().join("broken/no_rules.rego");
    let gate = PolicyGate::builder().policy_file(&file).build().unwrap();
    let err = eval(&gate, &GateProbe::new()).unwrap_err();
    assert_eq!(
        misconfigured(err),
        format!(
            "package `main` ({}) has no deny, violation or warn rule, so it decides nothing",
            file.display()
        )
    );
}

#[test]
fn a_boolean_deny_rule_is_refused_not_passed() {
    let file = samples().join("broken/boolean_deny.rego");
    let gate = PolicyGate::builder().policy_file(&file).build().unwrap();
    let (what, message) = invalid(eval(&gate, &GateProbe::new()).unwrap_err());
    assert_eq!(what, file.display().to_string());
    assert_eq!(
        message,
        "rule `data.main.deny` must be a set of messages (`deny contains msg if { … }`), but \
         it is a boolean: false"
    );
}

#[test]
fn a_structured_result_without_msg_is_refused() {
    let file = samples().join("broken/violation_without_msg.rego");
    let gate = PolicyGate::builder().policy_file(&file).build().unwrap();
    let rel = release(
        "laptop",
        &[("api-image", API_DIGEST, "registry.example.com/shop/api")],
        &[],
    );
    let (what, message) = invalid(eval(&gate, &probe(rel, "low")).unwrap_err());
    assert_eq!(what, file.display().to_string());
    assert!(
        message.starts_with(
            "rule `data.main.violation` yielded a result without the `msg` field Conftest \
             requires: {"
        ),
        "{message}"
    );

    let gate = PolicyGate::builder()
        .policy_text("numbers.rego", "package main\n\ndeny contains 42 if true\n")
        .build()
        .unwrap();
    let (what, message) = invalid(eval(&gate, &GateProbe::new()).unwrap_err());
    assert_eq!(what, "numbers.rego");
    assert_eq!(
        message,
        "rule `data.main.deny` yielded a number, which is neither a message string nor an \
         object with a `msg`: 42"
    );
}

#[test]
fn malformed_data_documents_name_file_and_line() {
    let file = samples().join("broken/malformed.json");
    let err = PolicyGate::builder()
        .bundle(samples().join("bundle"))
        .data_file(&file)
        .build()
        .unwrap_err();
    let (what, message) = invalid(err);
    assert_eq!(what, format!("{} line 4", file.display()));
    assert_eq!(message, "column 3: trailing comma");

    let file = samples().join("broken/not_an_object.json");
    let err = PolicyGate::builder()
        .bundle(samples().join("bundle"))
        .data_file(&file)
        .build()
        .unwrap_err();
    assert_eq!(
        invalid(err),
        (
            file.display().to_string(),
            "a data document must be a JSON object, found an array".to_owned()
        )
    );
}

#[test]
fn conflicting_data_names_the_second_document() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("builders.json");
    std::fs::write(&other, r#"{"builders": {"trusted": "anyone"}}"#).unwrap();
    let err = PolicyGate::builder()
        .bundle(samples().join("bundle"))
        .data_file(&other)
        .build()
        .unwrap_err();
    let (what, message) = invalid(err);
    assert_eq!(what, other.display().to_string());
    assert!(
        message.starts_with("conflicts with data loaded before it"),
        "{message}"
    );
}

#[test]
fn yaml_data_in_a_bundle_is_refused_not_skipped() {
    let err = PolicyGate::builder()
        .bundle(samples().join("yaml-bundle"))
        .build()
        .unwrap_err();
    let (what, message) = invalid(err);
    assert_eq!(what, path("yaml-bundle/data.yaml"));
    assert!(message.starts_with("YAML data documents are not supported"));
}

#[test]
fn unreadable_inputs_name_the_path() {
    let missing = samples().join("bundle/nope.rego");
    let (what, message) = invalid(
        PolicyGate::builder()
            .policy_file(&missing)
            .build()
            .unwrap_err(),
    );
    assert_eq!(what, missing.display().to_string());
    assert!(
        message.starts_with("cannot read the policy file:"),
        "{message}"
    );

    let (what, message) = invalid(
        PolicyGate::builder()
            .bundle(samples().join("no-such-bundle"))
            .build()
            .unwrap_err(),
    );
    assert_eq!(what, path("no-such-bundle"));
    assert!(message.starts_with("cannot read the policy bundle:"));

    let (what, message) = invalid(
        PolicyGate::builder()
            .bundle(samples().join("bundle/release.rego"))
            .build()
            .unwrap_err(),
    );
    assert_eq!(
        (what.as_str(), message.as_str()),
        (path("bundle/release.rego").as_str(), "is not a directory")
    );

    let dir = tempfile::tempdir().unwrap();
    let latin1 = dir.path().join("latin1.rego");
    std::fs::write(&latin1, b"package main\n\n# r\xe9vis\xe9\n").unwrap();
    let (what, message) = invalid(
        PolicyGate::builder()
            .policy_file(&latin1)
            .build()
            .unwrap_err(),
    );
    assert_eq!(what, format!("{} line 3", latin1.display()));
    assert_eq!(message, "not UTF-8 text: invalid byte at offset 17");
}

// -----------------------------------------------------------------------------------------
// Configuration
// -----------------------------------------------------------------------------------------

#[test]
fn configuration_is_validated() {
    let policy = samples().join("bundle/release.rego");
    let err = |b: PolicyGateBuilder| misconfigured(b.build().unwrap_err());
    assert!(err(PolicyGate::builder().name("").policy_file(&policy))
        .starts_with("invalid gate name ``"));
    assert_eq!(
        err(PolicyGate::builder()
            .package("data.main")
            .policy_file(&policy)),
        "package `data.main`: give it without the `data.` prefix"
    );
    for bad in ["", "release-checks", "9lives", "main.", "a..b"] {
        assert!(
            err(PolicyGate::builder().package(bad).policy_file(&policy))
                .contains("is not a Rego package name"),
            "{bad}"
        );
    }
    assert!(err(PolicyGate::builder()).starts_with("no Rego policy was given"));
    // A bundle with data but no policy is still no policy.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.json"), "{}").unwrap();
    assert!(err(PolicyGate::builder().bundle(dir.path())).starts_with("no Rego policy"));
    // The same file twice.
    assert_eq!(
        err(PolicyGate::builder()
            .bundle(samples().join("bundle"))
            .policy_file(&policy)),
        format!(
            "{} is loaded twice: give each policy file and data document once",
            policy.display()
        )
    );
}

#[test]
fn name_kind_and_loaded_files() {
    let gate = bundle_gate();
    assert_eq!(gate.name(), "release-policy");
    assert_eq!(gate.kind(), GateKind::Compliance);
    assert_eq!(
        PolicyGate::builder()
            .policy_file(samples().join("bundle/release.rego"))
            .policy_file(samples().join("bundle/lib/labels.rego"))
            .build()
            .unwrap()
            .name(),
        "policy"
    );
    let packages: Vec<_> = gate
        .policies()
        .iter()
        .map(|f| f.package.as_deref().unwrap())
        .collect();
    assert_eq!(packages, ["lib.labels", "main"]);
    let debug = format!("{gate:?}");
    assert!(debug.contains("release-policy") && debug.contains("release.rego"));
}

#[test]
fn conftest_rule_names() {
    for (rule, want) in [
        ("deny", Some(Severity::Failure)),
        ("violation", Some(Severity::Failure)),
        ("deny_high_risk", Some(Severity::Failure)),
        ("violation_k8s2", Some(Severity::Failure)),
        ("warn", Some(Severity::Warning)),
        ("warn_labels", Some(Severity::Warning)),
        ("deny_", None),
        ("deny__x", None),
        ("deny_x-y", None),
        ("denylist", None),
        ("warning", None),
        ("allow", None),
        ("exception", None),
    ] {
        assert_eq!(classify(rule), want, "{rule}");
    }
}

#[test]
fn gate_is_shareable() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<PolicyGate>();
}
