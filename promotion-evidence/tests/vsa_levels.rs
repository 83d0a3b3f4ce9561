#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Issue 16, item 6: the VSA's `verifiedLevels` uses SLSA levels where they apply. A release
//! whose artifacts' SLSA provenance the real signature gate verified (signed by a trusted key,
//! from a trusted builder, for the release's commit) is promoted with `SLSA_BUILD_LEVEL_2` and
//! the namespaced custom value beside it; the same release without provenance verification
//! claims no SLSA level; a failed stage says `FAILED` alone (SLSA VSA v1, `verifiedLevels`).

use std::sync::Arc;

use futures::executor::block_on;
use promotion_audit::{AuditOptions, AuditStore, CheckpointSigner};
use promotion_core::testing::{RecordingDeployer, ScriptedGate};
use promotion_core::{Engine, ManualClock, Pipeline, Principal, Release, StageSpec};
use promotion_evidence::pack::{SLSA_BUILD_LEVEL_2, STAGE_PROMOTED_LEVEL};
use promotion_evidence::{verify_pack, AttestationSigner, EvidencePack};
use promotion_gates::signature::{EnvelopeDir, SLSA_PROVENANCE_V1, STATEMENT_V1};
use promotion_gates::SignatureGate;
use serde_json::{json, Value};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const BUILDER: &str = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.1.0";

/// The `verifiedLevels` of each stage decision of a release whose `build` stage runs the
/// signature gate, requiring SLSA provenance or not, and whose `production` stage's entry
/// gate passes or fails.
fn levels(require_provenance: bool, production_passes: bool) -> Vec<(String, Value)> {
    exported(require_provenance, production_passes).levels
}

struct Exported {
    levels: Vec<(String, Value)>,
    pack: std::path::PathBuf,
    ci_pem: String,
    checkpoint_key: promotion_audit::CheckpointVerifier,
    signer: AttestationSigner,
    _dir: tempfile::TempDir,
}

fn exported(require_provenance: bool, production_passes: bool) -> Exported {
    let dir = tempfile::tempdir().unwrap();
    let ci = AttestationSigner::generate().unwrap();
    let digest = promotion_core::Digest::of(b"api image");
    let statement = serde_json::to_vec(&json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": "api", "digest": {"sha256": digest.to_hex()}}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                "externalParameters": {},
                "resolvedDependencies": [{
                    "uri": "git+https://github.com/shop/api@refs/heads/main",
                    "digest": {"gitCommit": COMMIT}
                }]
            },
            "runDetails": {"builder": {"id": BUILDER}}
        }
    }))
    .unwrap();
    let envelopes = dir.path().join("att");
    std::fs::create_dir(&envelopes).unwrap();
    let envelope = ci
        .sign("application/vnd.in-toto+json", &statement)
        .to_json()
        .unwrap();
    std::fs::write(envelopes.join("api.dsse.json"), &envelope).unwrap();
    let mut attachments = promotion_evidence::MemoryAttachments::new();
    attachments.insert(envelope);
    let mut gate = SignatureGate::builder(EnvelopeDir::new(&envelopes))
        .name("provenance")
        .trusted_key_pem("ci", ci.verifier().public_key_pem().unwrap())
        .require_slsa_provenance(require_provenance);
    if require_provenance {
        gate = gate.trusted_builder(BUILDER);
    }
    let gate = gate.build().unwrap();
    let production_gate = if production_passes {
        ScriptedGate::passing("smoke")
    } else {
        ScriptedGate::failing("smoke")
    };
    let log_key = CheckpointSigner::generate("audit.example/shop").unwrap();
    let checkpoint_key = log_key.verifier();
    let store =
        AuditStore::memory(AuditOptions::new("audit.example/shop").signer(log_key)).unwrap();
    let pipeline = Pipeline::builder("shop", "1")
        .stage(StageSpec::new("build").entry_gate(gate))
        .stage(
            StageSpec::new("production")
                .after("build")
                .entry_gate(production_gate),
        )
        .build()
        .unwrap();
    let engine = Engine::new(
        pipeline,
        Arc::new(store.clone()),
        Arc::new(RecordingDeployer::new()),
        Arc::new(ManualClock::at("2026-12-08T09:00:00Z".parse().unwrap())),
    );
    let release = Release::builder(
        "api 1.0",
        "git@example.com:shop/api",
        COMMIT,
        "2026-12-08T08:00:00Z".parse().unwrap(),
    )
    .artifact("api", digest.to_string())
    .builder("ci")
    .build()
    .unwrap();
    let id =
        block_on(engine.register(release, &Principal::new("ci-bot", ["ci"]).unwrap())).unwrap();
    block_on(engine.run_until_blocked(&id)).unwrap();
    let signer = AttestationSigner::generate().unwrap();
    let pack = dir.path().join("pack");
    let options = promotion_evidence::ExportOptions {
        attachments: Some(&attachments),
        ..promotion_evidence::ExportOptions::default()
    };
    let summary = block_on(EvidencePack::export_with(
        &store, &id, &signer, &pack, &options,
    ))
    .unwrap();
    let report = verify_pack(&pack, &checkpoint_key, &signer.verifier()).unwrap();
    assert_eq!(
        report.provenance_envelopes, 1,
        "the envelope re-verified offline"
    );
    assert_eq!(report.provenance_not_in_pack, 0);
    let levels = summary
        .attestations
        .iter()
        .filter(|p| p.contains("-vsa-"))
        .map(|p| {
            let env: Value = serde_json::from_slice(&std::fs::read(pack.join(p)).unwrap()).unwrap();
            let payload = base64_decode(env["payload"].as_str().unwrap());
            let s: Value = serde_json::from_slice(&payload).unwrap();
            (p.clone(), s["predicate"]["verifiedLevels"].clone())
        })
        .collect();
    Exported {
        levels,
        pack,
        ci_pem: ci.verifier().public_key_pem().unwrap(),
        checkpoint_key,
        signer,
        _dir: dir,
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn of<'a>(levels: &'a [(String, Value)], ending: &str) -> &'a Value {
    &levels
        .iter()
        .find(|(p, _)| p.ends_with(ending))
        .unwrap_or_else(|| panic!("no {ending} in {levels:?}"))
        .1
}

#[test]
fn verified_slsa_provenance_is_slsa_build_level_2_beside_the_custom_value() {
    let l = levels(true, true);
    for stage in ["build", "production"] {
        assert_eq!(
            of(&l, &format!("-vsa-{stage}-promoted.dsse.json")),
            &json!([SLSA_BUILD_LEVEL_2, STAGE_PROMOTED_LEVEL]),
            "{l:?}"
        );
    }
    assert!(!STAGE_PROMOTED_LEVEL.starts_with("SLSA_"));
}

#[test]
fn without_provenance_verification_no_slsa_level_is_claimed() {
    let l = levels(false, true);
    assert_eq!(
        of(&l, "-vsa-production-promoted.dsse.json"),
        &json!([STAGE_PROMOTED_LEVEL]),
        "{l:?}"
    );
}

#[test]
fn a_failed_stage_says_failed_alone_even_with_provenance() {
    let l = levels(true, false);
    assert_eq!(
        of(&l, "-vsa-production-failed.dsse.json"),
        &json!(["FAILED"]),
        "{l:?}"
    );
    assert_eq!(
        of(&l, "-vsa-build-promoted.dsse.json"),
        &json!([SLSA_BUILD_LEVEL_2, STAGE_PROMOTED_LEVEL])
    );
}

/// Issue 16, item 6: the key that signed the build-provenance envelope travels in the pack
/// (taken from the signature gate's evidence in the log), and the pack's verification
/// re-checks the envelope with it; a swapped key or a changed envelope is named.
#[test]
fn the_provenance_key_travels_in_the_pack_and_its_envelope_is_re_checked() {
    let e = exported(true, true);
    let m: promotion_evidence::Manifest =
        serde_json::from_slice(&std::fs::read(e.pack.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m.provenance_keys.len(), 1, "{:?}", m.provenance_keys);
    let key = &m.provenance_keys[0];
    assert_eq!(key.id, "ci");
    assert_eq!(key.algorithm, "ed25519");
    let path = key.path.clone().unwrap();
    assert!(path.starts_with("keys/provenance/"), "{path}");
    assert_eq!(
        std::fs::read_to_string(e.pack.join(&path)).unwrap(),
        e.ci_pem
    );

    // another key put in its place, the manifest re-signed: named
    let stranger = AttestationSigner::generate().unwrap();
    let original = std::fs::read(e.pack.join(&path)).unwrap();
    std::fs::write(
        e.pack.join(&path),
        stranger.verifier().public_key_pem().unwrap(),
    )
    .unwrap();
    resign_manifest(&e.pack, &e.signer);
    let err = verify_pack(&e.pack, &e.checkpoint_key, &e.signer.verifier()).unwrap_err();
    assert!(
        err.to_string()
            .contains("is not the key the log's gate evidence records"),
        "{err}"
    );
    std::fs::write(e.pack.join(&path), original).unwrap();

    // the envelope's payload changed in the pack's attachment (manifest re-signed): the
    // attachment no longer hashes to its digest, and the signature no longer verifies
    let att = m.attachments.iter().find_map(|a| a.path.clone()).unwrap();
    let mut env: Value =
        serde_json::from_slice(&std::fs::read(e.pack.join(&att)).unwrap()).unwrap();
    env["payloadType"] = "application/vnd.in-toto+json; v=2".into();
    std::fs::write(e.pack.join(&att), serde_json::to_vec(&env).unwrap()).unwrap();
    resign_manifest(&e.pack, &e.signer);
    let err = verify_pack(&e.pack, &e.checkpoint_key, &e.signer.verifier()).unwrap_err();
    assert!(err.to_string().contains(&att), "{err}");
}

fn resign_manifest(dir: &std::path::Path, signer: &AttestationSigner) {
    let mut manifest: promotion_evidence::Manifest =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    for f in &mut manifest.files {
        let bytes = std::fs::read(dir.join(&f.path)).unwrap();
        f.sha256 = promotion_core::Digest::of(&bytes).to_hex();
        f.size = bytes.len() as u64;
    }
    let mut bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    bytes.push(b'\n');
    std::fs::write(dir.join("manifest.json"), &bytes).unwrap();
    let env = signer.sign(promotion_evidence::pack::MANIFEST_PAYLOAD_TYPE, &bytes);
    std::fs::write(dir.join("manifest.dsse.json"), env.to_json().unwrap()).unwrap();
}
