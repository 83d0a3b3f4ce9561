//! Today's exact output of the report and of the pack's statements, pinned byte for byte.
//!
//! The report's fold over events and the statements' predicates were restructured (typed
//! projections, `Serialize` types instead of `json!`) without changing a byte of what they
//! produce; these digests hold them to it. A change that is meant to change the output updates
//! the pins and says why.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures::executor::block_on;
use promotion_audit::{AuditOptions, AuditStore, CheckpointSigner};
use promotion_core::testing::{RecordingDeployer, ScriptedGate, Step};
use promotion_core::HostCommand;
use promotion_core::{
    ApprovalPolicy, ApprovalRule, Digest, Engine, Event, EventBody, EventStore, ManualClock,
    Pipeline, ReleaseId, StageSpec, StageStatus, StreamId,
};
use promotion_evidence::{
    Envelope, EvidencePack, ExportOptions, Period, Report, ReportOptions, StatementOptions,
};
use support::{at, dora_scenario, pack_log, release, who};

/// A second pipeline whose releases end the ways the DORA scenario's do not: rejected at an
/// approval, aborted while waiting for one, and a gate judged by a person.
fn endings() -> (AuditStore, Vec<ReleaseId>) {
    let clock = ManualClock::at(at("2026-11-04T09:00:00Z"));
    let options = AuditOptions::new("audit.example/pins")
        .signer(CheckpointSigner::from_seed("audit.example/pins", [6; 32]).unwrap())
        .clock(Arc::new(clock.clone()));
    let store = AuditStore::memory(options).unwrap();
    let review = Arc::new(ScriptedGate::new("review", []));
    let pipeline = Pipeline::builder("pins", "7")
        .stage(
            StageSpec::new("staging")
                .entry_gate(ScriptedGate::passing("lint"))
                .approval(ApprovalPolicy::new(ApprovalRule::quorum("qa", 1).unwrap())),
        )
        .stage(
            StageSpec::new("production")
                .after("staging")
                .entry_gate(promotion_core::GateSpec::new(review.clone())),
        )
        .build()
        .unwrap();
    let engine = Engine::new(
        pipeline,
        Arc::new(store.clone()),
        Arc::new(RecordingDeployer::new()),
        Arc::new(clock.clone()),
    );
    let ci = who("ci-bot", &["ci"]);
    let quinn = who("quinn", &["qa"]);
    let register = |name: &str, c: char| {
        let id = block_on(engine.register(release(name, c, "2026-11-04T08:00:00Z"), &ci)).unwrap();
        block_on(engine.run_until_blocked(&id)).unwrap();
        id
    };

    let rejected = register("pins 1", '1');
    clock.set(at("2026-11-04T10:00:00Z"));
    block_on(engine.submit(
        &rejected,
        HostCommand::reject("staging", &quinn, "missing changelog").unwrap(),
    ))
    .unwrap();
    let p = block_on(engine.run_until_blocked(&rejected)).unwrap();
    assert_eq!(p.status("staging"), StageStatus::Rejected);

    clock.set(at("2026-11-04T11:00:00Z"));
    let aborted = register("pins 2", '2');
    clock.set(at("2026-11-04T11:30:00Z"));
    block_on(engine.submit(
        &aborted,
        HostCommand::abort("staging", &quinn, "superseded").unwrap(),
    ))
    .unwrap();
    let p = block_on(engine.run_until_blocked(&aborted)).unwrap();
    assert_eq!(p.status("staging"), StageStatus::Aborted);

    clock.set(at("2026-11-04T12:00:00Z"));
    let judged = register("pins 3", '3');
    clock.set(at("2026-11-04T12:30:00Z"));
    block_on(engine.submit(
        &judged,
        HostCommand::approve("staging", &quinn, "ok").unwrap(),
    ))
    .unwrap();
    review.push(Step::Inconclusive("two reviewers disagree".into()));
    let p = block_on(engine.run_until_blocked(&judged)).unwrap();
    clock.set(at("2026-11-04T13:00:00Z"));
    assert_eq!(
        p.status("production"),
        StageStatus::Checking,
        "waiting for a judgement"
    );
    block_on(engine.submit(
        &judged,
        HostCommand::judge("production", "review", true, &quinn, "looked myself").unwrap(),
    ))
    .unwrap();
    let p = block_on(engine.run_until_blocked(&judged)).unwrap();
    assert_eq!(p.status("production"), StageStatus::Promoted);
    (store, vec![rejected, aborted, judged])
}

fn streams(store: &AuditStore, ids: &[ReleaseId]) -> Vec<Vec<Event>> {
    ids.iter()
        .map(|id| {
            block_on(store.read(&StreamId::for_release(id)))
                .unwrap()
                .into_iter()
                .map(|r| r.event)
                .collect()
        })
        .collect()
}

#[test]
fn the_report_json_is_pinned() {
    let s = dora_scenario(false);
    let (pins, pin_ids) = endings();
    let mut all = streams(&s.store, &s.ids);
    all.extend(streams(&pins, &pin_ids));
    let period = Period::new(at("2026-11-01T00:00:00Z"), at("2026-11-08T00:00:00Z")).unwrap();
    let staging_is_prod = ReportOptions {
        production_stages: ["staging".to_owned()].into(),
        recent_releases: 3,
    };
    let digests: Vec<String> = [ReportOptions::default(), staging_is_prod]
        .iter()
        .map(|options| {
            let report = Report::from_streams(&all, period, options);
            Digest::of(&serde_json::to_vec(&report).unwrap()).to_hex()
        })
        .collect();
    assert_eq!(
        digests,
        vec![
            "9f8785e711383f2986355bf70521cffdfd952df9f9fb9c0764dda5ea648e0fd2",
            "e16e989b11a370abccff823ad1a9c799e021213b7bba97aef5f766d43e105014",
        ],
        "the report's JSON changed"
    );
}

#[test]
fn the_pack_statements_are_pinned() {
    let log = pack_log(false);
    let (pins, pin_ids) = endings();
    let options = ExportOptions {
        statements: StatementOptions {
            verifier_id: "https://deploy.example.com/promotion".into(),
            resource_base: "https://deploy.example.com/".into(),
            // Packs written before SLSA levels: their statements must still derive exactly.
            verified_levels: promotion_evidence::pack::VerifiedLevels::Legacy,
        },
        attachments: Some(&log.attachments),
        archive: None,
        rosters: Vec::new(),
    };
    // The JUnit report lives in a fresh temporary directory: its path, and so the digest of the
    // evidence naming it, differ from run to run. Everything else is pinned as it is.
    let dir = log.dir.path().display().to_string();
    let evidence: Vec<String> = streams(&log.store, &[log.release, log.other])
        .iter()
        .flatten()
        .filter_map(|e| match &e.body {
            EventBody::GateEvaluated {
                evidence_digest: Some(d),
                ..
            } => Some(d.to_hex()),
            _ => None,
        })
        .collect();
    let normal = |payload: &str| {
        evidence
            .iter()
            .fold(payload.replace(&dir, "<dir>"), |text, d| {
                text.replace(d, "<evidence digest>")
            })
    };
    let mut statements = Vec::new();
    for (store, id) in [(&log.store, &log.release), (&log.store, &log.other)]
        .into_iter()
        .chain(pin_ids.iter().map(|id| (&pins, id)))
    {
        let pack = block_on(EvidencePack::build(store, id, &log.signer, &options)).unwrap();
        // The test-result envelopes hold the report's path, so decisions that name them as
        // inputs hold a digest that changes with it.
        let inputs: Vec<String> = pack
            .files()
            .iter()
            .filter(|(path, _)| path.contains("-test-result-"))
            .map(|(_, bytes)| Digest::of(bytes).to_hex())
            .collect();
        for (path, bytes) in pack.files() {
            if !path.starts_with("attestations/") {
                continue;
            }
            let env: Envelope = serde_json::from_slice(bytes).unwrap();
            let payload = String::from_utf8(STANDARD.decode(env.payload).unwrap()).unwrap();
            let payload = inputs.iter().fold(normal(&payload), |text, d| {
                text.replace(d, "<test-result envelope digest>")
            });
            statements.push(format!(
                "{path} {}",
                Digest::of(payload.as_bytes()).to_hex()
            ));
        }
    }
    let want: Vec<&str> = STATEMENTS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(statements, want, "the statements changed");
}

/// Each attestation of the five packs with the SHA-256 of its statement (normalised as above),
/// in the order the packs list them.
const STATEMENTS: &str = "
    attestations/000003-test-result-build-unit-tests.dsse.json 2180671f2c80b99f08a9732657a25f3a10338bf235eea924b74bed9e4d2fa6c0
    attestations/000010-vsa-build-promoted.dsse.json 698885fbe95d5dedf2986c098b468378cf226f2fdb2c3f424a756a8defed4a3a
    attestations/000038-vsa-staging-promoted.dsse.json 7f07b4437bdb5a509a2560e23a34ff3502749579c3afece9f39b15f3ce2724d8
    attestations/000042-vsa-production-failed.dsse.json 086afb7b7828fa7b7b4a82ffe65c837ad994c897d4dbdc179eb01c2e2c25ff2b
    attestations/000057-vsa-production-promoted.dsse.json 900cb1116da029c37310103bdd3ef0fde2420f21fac9fa4b6564c0b49c34fd2c
    attestations/000083-vsa-production-rolled_back.dsse.json 6717094356762c14fda04f823c76985d10f025d1df3c0e12d9878990ee8eff87
    attestations/000019-test-result-build-unit-tests.dsse.json 8cf3900e90814221c608529b6a0292077ec9feaa96ec1b816ab762c6fd0341cc
    attestations/000026-vsa-build-promoted.dsse.json 873fd1b4da9756e2b6e24231c45ee92ed7c5ad2980e984bd31a6d026ee1dd316
    attestations/000064-vsa-staging-promoted.dsse.json 5b35ef77b2097ac4b8c834994e6838f8b4a5a44a9c5e0a37a675e824bc1bb477
    attestations/000081-vsa-production-promoted.dsse.json 89ee722b88478a61911d6cc2f4dc334f04c9ee483dd26acd3eefc8e0ca6ccef5
    attestations/000006-vsa-staging-rejected.dsse.json 673c67f5a03b90921e2336c461c17ab216c34654eaf5ab1f7cec3684c7eafc28
    attestations/000013-vsa-staging-aborted.dsse.json c6662c86abb46b9d61500205d397a0f10cca7ea9386cff6a16072f3d1ef47fcb
    attestations/000026-vsa-staging-promoted.dsse.json 31ed44986241ac34626857d1af14791c7956c0f50e4deda378b1a65b01a18d1b
    attestations/000038-vsa-production-promoted.dsse.json 4fd4885137f0e272b4b202fa1901a3dfabf930953171fa21cc0b53f270e4e1ac
";
