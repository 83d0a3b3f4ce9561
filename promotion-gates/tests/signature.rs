//! The signature and provenance gate with keys generated here and envelopes written to a
//! temporary directory.
//!
//! Run with `cargo test -p promotion-gates --test signature`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::Signer as _;
use futures::executor::block_on;
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use promotion_core::testing::GateProbe;
use promotion_core::{Artifact, Digest, Evidence, Release};
use promotion_gates::signature::{
    pae, EnvelopeDir, EnvelopeFile, EnvelopeFormat, EnvelopeSource, SignatureConfigError,
    SignatureGate, SignatureGateBuilder, IN_TOTO_PAYLOAD_TYPE, SLSA_PROVENANCE_V1, STATEMENT_V1,
};
use promotion_gates::{Gate, GateError, GateKind, Verdict};
use rand_core::OsRng;
use serde_json::{json, Value};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const OTHER_COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";
const BUILDER: &str = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.1.0";

// ---------------------------------------------------------------------------------------------
// Fixtures

enum Key {
    Ed(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl Key {
    fn ed() -> Key {
        Key::Ed(ed25519_dalek::SigningKey::generate(&mut OsRng))
    }
    fn p256() -> Key {
        Key::P256(p256::ecdsa::SigningKey::random(&mut OsRng))
    }
    fn public_pem(&self) -> String {
        match self {
            Key::Ed(k) => k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
            Key::P256(k) => k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
        }
    }
    /// Signs the PAE as a DSSE signer does (DER for ECDSA, as cosign writes).
    fn sign(&self, payload_type: &str, payload: &[u8]) -> Vec<u8> {
        let message = pae(payload_type, payload);
        match self {
            Key::Ed(k) => k.sign(&message).to_bytes().to_vec(),
            Key::P256(k) => {
                let sig: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(k, &message);
                sig.to_der().as_bytes().to_vec()
            }
        }
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_795_683_600, 0).unwrap()
}

fn digest_of(bytes: &[u8]) -> Digest {
    Digest::of(bytes)
}

fn release() -> Release {
    Release::builder("shop 2.0", "git@example.com:shop/app", COMMIT, t0())
        .artifact("api-image", digest_of(b"api image").to_string())
        .artifact("chart", digest_of(b"chart").to_string())
        .builder("ci.example.com")
        .build()
        .unwrap()
}

fn provenance(builder: &str, commit: &str) -> Value {
    json!({
        "buildDefinition": {
            "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {
                    "ref": "refs/heads/main",
                    "repository": "https://github.com/shop/app",
                    "path": ".github/workflows/release.yml"
                }
            },
            "resolvedDependencies": [{
                "uri": "git+https://github.com/shop/app@refs/heads/main",
                "digest": {"gitCommit": commit}
            }]
        },
        "runDetails": {
            "builder": {"id": builder},
            "metadata": {"invocationId": "https://github.com/shop/app/actions/runs/1/attempts/1"}
        }
    })
}

fn statement(subject: &str, digest: &Digest, predicate_type: &str, predicate: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": subject, "digest": {"sha256": digest.to_hex()}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }))
    .unwrap()
}

/// A good SLSA provenance statement for `digest`.
fn slsa(subject: &str, digest: &Digest) -> Vec<u8> {
    statement(
        subject,
        digest,
        SLSA_PROVENANCE_V1,
        provenance(BUILDER, COMMIT),
    )
}

/// A one-line DSSE envelope of `payload` signed by `key` under the hint `keyid`.
fn envelope(key: &Key, keyid: &str, payload: &[u8]) -> String {
    let sig = key.sign(IN_TOTO_PAYLOAD_TYPE, payload);
    envelope_with(IN_TOTO_PAYLOAD_TYPE, payload, &[(keyid, sig)])
}

fn envelope_with(payload_type: &str, payload: &[u8], sigs: &[(&str, Vec<u8>)]) -> String {
    json!({
        "payloadType": payload_type,
        "payload": STANDARD.encode(payload),
        "signatures": sigs.iter().map(|(keyid, sig)| json!({
            "keyid": keyid,
            "sig": STANDARD.encode(sig),
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

/// Two trusted keys and a directory of envelopes.
struct Fixture {
    dir: tempfile::TempDir,
    ed: Key,
    p256: Key,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            ed: Key::ed(),
            p256: Key::p256(),
        }
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }

    fn write(&self, file: &str, content: &str) {
        std::fs::write(self.dir.path().join(file), content).unwrap();
    }

    /// Both artifacts correctly signed with provenance: api-image by the Ed25519 key as JSON
    /// Lines, chart by the P-256 key as a pretty-printed `.dsse.json`.
    fn all_good(&self) {
        self.write(
            "api-image.intoto.jsonl",
            &format!(
                "{}\n",
                envelope(
                    &self.ed,
                    "ci-ed25519",
                    &slsa("api", &digest_of(b"api image"))
                )
            ),
        );
        let chart: Value = serde_json::from_str(&envelope(
            &self.p256,
            "",
            &slsa("chart-2.0.tgz", &digest_of(b"chart")),
        ))
        .unwrap();
        self.write(
            "chart.dsse.json",
            &serde_json::to_string_pretty(&chart).unwrap(),
        );
    }

    fn builder(&self) -> SignatureGateBuilder {
        SignatureGate::builder(EnvelopeDir::new(self.dir.path()))
            .trusted_key_pem("ci-ed25519", self.ed.public_pem())
            .trusted_key_pem("ci-p256", self.p256.public_pem())
    }

    fn gate(&self) -> SignatureGate {
        self.builder()
            .require_slsa_provenance(true)
            .trusted_builder(BUILDER)
            .build()
            .unwrap()
    }
}

fn run(gate: &SignatureGate) -> Result<Verdict, GateError> {
    block_on(GateProbe::new().release(release()).evaluate(gate))
}

fn passed(gate: &SignatureGate) -> Evidence {
    match run(gate) {
        Ok(Verdict::Pass(e)) => e,
        other => panic!("expected a pass, got {other:?}"),
    }
}

fn failed(gate: &SignatureGate) -> Evidence {
    match run(gate) {
        Ok(Verdict::Fail(e)) => e,
        other => panic!("expected a fail, got {other:?}"),
    }
}

fn invalid(gate: &SignatureGate) -> (String, String) {
    match run(gate) {
        Err(GateError::InvalidInput { what, message }) => (what, message),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

fn short(d: &Digest) -> String {
    d.short(12)
}

// ---------------------------------------------------------------------------------------------
// Passing

#[test]
fn the_dsse_pae_test_vector_holds_byte_for_byte() {
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
}

#[test]
fn signed_artifacts_with_trusted_provenance_pass_naming_key_envelope_and_builder() {
    let f = Fixture::new();
    f.all_good();
    let gate = f.gate();
    assert_eq!(gate.kind(), GateKind::Compliance);
    assert_eq!(gate.name(), "signatures");
    let ev = passed(&gate);
    assert_eq!(
        ev.summary,
        "all 2 artifacts signed by trusted keys (ci-ed25519, ci-p256) with SLSA provenance \
         from trusted builders"
    );
    let jsonl = std::fs::read(f.path("api-image.intoto.jsonl")).unwrap();
    let line = jsonl.strip_suffix(b"\n").unwrap();
    let dsse = std::fs::read(f.path("chart.dsse.json")).unwrap();

    let api = &ev.data["artifacts"][0];
    assert_eq!(api["name"], "api-image");
    assert_eq!(api["verified"], true);
    assert_eq!(api["key_id"], "ci-ed25519");
    assert_eq!(api["builder_id"], BUILDER);
    assert_eq!(api["envelope_sha256"], Digest::of(line).to_string());
    assert_eq!(api["envelopes"][0]["algorithm"], "ed25519");
    assert_eq!(
        api["envelopes"][0]["origin"],
        format!("{} line 1", f.path("api-image.intoto.jsonl"))
    );
    assert_eq!(api["envelopes"][0]["source_commits"], json!([COMMIT]));
    assert_eq!(
        api["envelopes"][0]["build_type"],
        "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"
    );
    assert_eq!(api["problems"], json!([]));

    let chart = &ev.data["artifacts"][1];
    assert_eq!(chart["key_id"], "ci-p256");
    assert_eq!(chart["envelopes"][0]["algorithm"], "ecdsa-p256-sha256");
    assert_eq!(chart["envelope_sha256"], Digest::of(&dsse).to_string());
    assert_eq!(chart["envelopes"][0]["predicate_type"], SLSA_PROVENANCE_V1);

    assert_eq!(ev.data["verified"], 2);
    assert_eq!(ev.data["failed"], 0);
    assert_eq!(ev.data["release_commit"], COMMIT);
    assert_eq!(ev.data["trusted_builders"], json!([BUILDER]));
    assert_eq!(ev.attachments.len(), 2);
    assert_eq!(ev.attachments[0].name, f.path("api-image.intoto.jsonl"));
    assert_eq!(ev.attachments[0].digest, Digest::of(&jsonl));
    assert_eq!(ev.attachments[1].name, f.path("chart.dsse.json"));
    assert_eq!(ev.attachments[1].digest, Digest::of(&dsse));
}

#[test]
fn raw_keys_fixed_size_ecdsa_url_safe_base64_and_misleading_key_ids_are_handled() {
    let f = Fixture::new();
    let (Key::Ed(ed), Key::P256(p)) = (&f.ed, &f.p256) else {
        unreachable!()
    };
    // api-image: the keyid hint names the other key; every trusted key is tried anyway.
    f.write(
        "api-image.intoto.jsonl",
        &envelope(&f.ed, "ci-p256", &slsa("api", &digest_of(b"api image"))),
    );
    // chart: a fixed-size r || s ECDSA signature, everything in unpadded URL-safe base64.
    let payload = slsa("chart", &digest_of(b"chart"));
    let message = pae(IN_TOTO_PAYLOAD_TYPE, &payload);
    let sig: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(p, &message);
    f.write(
        "chart.dsse.json",
        &json!({
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "payload": URL_SAFE_NO_PAD.encode(&payload),
            "signatures": [{"sig": URL_SAFE_NO_PAD.encode(sig.to_bytes())}],
        })
        .to_string(),
    );
    let gate = SignatureGate::builder(EnvelopeDir::new(f.dir.path()))
        .trusted_ed25519_key("raw-ed", ed.verifying_key().to_bytes())
        .trusted_p256_key(
            "raw-p256",
            p.verifying_key().to_encoded_point(false).as_bytes(),
        )
        .build()
        .unwrap();
    let ev = passed(&gate);
    assert_eq!(
        ev.summary,
        "all 2 artifacts signed by trusted keys (raw-ed, raw-p256)"
    );
    assert_eq!(ev.data["artifacts"][0]["key_id"], "raw-ed");
    assert_eq!(
        ev.data["artifacts"][0]["envelopes"][0]["keyid_hints"],
        json!(["ci-p256"])
    );
    assert_eq!(ev.data["artifacts"][1]["key_id"], "raw-p256");
}

#[test]
fn without_required_provenance_any_predicate_passes_and_the_builder_is_still_recorded() {
    let f = Fixture::new();
    let sbom = statement(
        "api",
        &digest_of(b"api image"),
        "https://spdx.dev/Document",
        json!({"spdxVersion": "SPDX-2.3"}),
    );
    f.write("api-image.intoto.jsonl", &envelope(&f.ed, "", &sbom));
    // An untrusted builder does not matter when provenance is not required.
    let untrusted = statement(
        "chart",
        &digest_of(b"chart"),
        SLSA_PROVENANCE_V1,
        provenance("https://other.example/builder", OTHER_COMMIT),
    );
    f.write("chart.dsse.json", &envelope(&f.p256, "", &untrusted));
    let gate = f.builder().build().unwrap();
    assert!(!gate.requires_slsa_provenance());
    let ev = passed(&gate);
    assert_eq!(ev.data["artifacts"][0]["builder_id"], Value::Null);
    assert_eq!(
        ev.data["artifacts"][1]["builder_id"],
        "https://other.example/builder"
    );

    // Requiring provenance turns both into failures, each for its own reason.
    let ev = failed(&f.gate());
    assert_eq!(
        ev.summary,
        format!(
            "2 of 2 artifacts not verified: `api-image`: predicate type \
             `https://spdx.dev/Document` is not SLSA provenance `{SLSA_PROVENANCE_V1}`; \
             `chart`: builder `https://other.example/builder` is not trusted, built from \
             commit fedcba987654 instead of the release's commit 0123456789ab"
        )
    );
}

#[test]
fn one_good_envelope_among_several_is_enough_and_otherwise_each_is_named() {
    let f = Fixture::new();
    f.all_good();
    let sbom = statement(
        "api",
        &digest_of(b"api image"),
        "https://spdx.dev/Document",
        json!({}),
    );
    let good = slsa("api", &digest_of(b"api image"));
    f.write(
        "api-image.intoto.jsonl",
        &format!(
            "{}\n\n{}\n",
            envelope(&f.ed, "", &sbom),
            envelope(&f.ed, "", &good)
        ),
    );
    let ev = passed(&f.gate());
    let api = &ev.data["artifacts"][0];
    assert_eq!(api["envelopes"].as_array().unwrap().len(), 2);
    assert_eq!(
        api["envelopes"][1]["origin"],
        format!("{} line 3", f.path("api-image.intoto.jsonl"))
    );

    // Both envelopes wrong: each problem is named with its envelope.
    let wrong = Key::ed();
    f.write(
        "api-image.intoto.jsonl",
        &format!(
            "{}\n{}\n",
            envelope(&f.ed, "", &sbom),
            envelope(&wrong, "", &good)
        ),
    );
    let ev = failed(&f.gate());
    let file = f.path("api-image.intoto.jsonl");
    assert_eq!(
        ev.summary,
        format!(
            "1 of 2 artifacts not verified: `api-image`: {file} line 1: predicate type \
             `https://spdx.dev/Document` is not SLSA provenance `{SLSA_PROVENANCE_V1}`, \
             {file} line 2: signed by no trusted key (1 signature checked against ci-ed25519, \
             ci-p256)"
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Failing, naming the artifact

#[test]
fn a_tampered_payload_fails_naming_the_artifact() {
    let f = Fixture::new();
    f.all_good();
    // Sign the good statement, then swap in a payload claiming a trusted builder for another
    // commit, keeping the signature.
    let signed = slsa("api", &digest_of(b"api image"));
    let sig = f.ed.sign(IN_TOTO_PAYLOAD_TYPE, &signed);
    let forged = statement(
        "api",
        &digest_of(b"api image"),
        SLSA_PROVENANCE_V1,
        provenance(BUILDER, OTHER_COMMIT),
    );
    f.write(
        "api-image.intoto.jsonl",
        &envelope_with(
            IN_TOTO_PAYLOAD_TYPE,
            &forged,
            &[("ci-ed25519", sig.clone())],
        ),
    );
    let ev = failed(&f.gate());
    assert_eq!(
        ev.summary,
        "1 of 2 artifacts not verified: `api-image`: signed by no trusted key (1 signature \
         checked against ci-ed25519, ci-p256), built from commit fedcba987654 instead of the \
         release's commit 0123456789ab"
    );
    assert_eq!(ev.data["artifacts"][0]["verified"], false);
    assert_eq!(ev.data["artifacts"][0]["key_id"], Value::Null);
    assert_eq!(ev.data["artifacts"][1]["verified"], true);

    // Changing the payload type alone breaks the signature too: it is part of the PAE.
    f.write(
        "api-image.intoto.jsonl",
        &envelope_with("application/vnd.in-toto+JSON", &signed, &[("", sig)]),
    );
    let ev = failed(&f.gate());
    assert_eq!(
        ev.summary,
        "1 of 2 artifacts not verified: `api-image`: signed by no trusted key (1 signature \
         checked against ci-ed25519, ci-p256), payload type `application/vnd.in-toto+JSON` is \
         not `application/vnd.in-toto+json`"
    );
}

#[test]
fn a_signature_by_an_untrusted_key_fails_even_with_a_trusted_key_id() {
    let f = Fixture::new();
    f.all_good();
    let stranger = Key::p256();
    f.write(
        "chart.dsse.json",
        &envelope(&stranger, "ci-p256", &slsa("chart", &digest_of(b"chart"))),
    );
    let ev = failed(&f.gate());
    assert_eq!(
        ev.summary,
        "1 of 2 artifacts not verified: `chart`: signed by no trusted key (1 signature checked \
         against ci-ed25519, ci-p256)"
    );
    assert_eq!(ev.data["failed"], 1);
    assert_eq!(ev.data["artifacts"][1]["envelopes"][0]["signatures"], 1);
}

#[test]
fn a_statement_about_another_digest_fails_naming_both() {
    let f = Fixture::new();
    f.all_good();
    let other = digest_of(b"chart, but another build");
    f.write(
        "chart.dsse.json",
        &envelope(&f.p256, "", &slsa("chart-2.0.tgz", &other)),
    );
    let ev = failed(&f.gate());
    assert_eq!(
        ev.summary,
        format!(
            "1 of 2 artifacts not verified: `chart`: the statement is not about digest \
             sha256:{} (subjects: `chart-2.0.tgz` sha256:{})",
            short(&digest_of(b"chart")),
            short(&other)
        )
    );
}

#[test]
fn an_untrusted_builder_fails_naming_it() {
    let f = Fixture::new();
    f.all_good();
    let payload = statement(
        "api",
        &digest_of(b"api image"),
        SLSA_PROVENANCE_V1,
        provenance("https://evil.example/builder@v1", COMMIT),
    );
    f.write("api-image.intoto.jsonl", &envelope(&f.ed, "", &payload));
    let ev = failed(&f.gate());
    assert_eq!(
        ev.summary,
        "1 of 2 artifacts not verified: `api-image`: builder \
         `https://evil.example/builder@v1` is not trusted"
    );
    assert_eq!(
        ev.data["artifacts"][0]["envelopes"][0]["builder_id"],
        "https://evil.example/builder@v1"
    );
    // The builder id must match exactly: another version of the trusted builder is another
    // builder.
    let payload = statement(
        "api",
        &digest_of(b"api image"),
        SLSA_PROVENANCE_V1,
        provenance(&BUILDER.replace("v2.1.0", "v2.0.0"), COMMIT),
    );
    f.write("api-image.intoto.jsonl", &envelope(&f.ed, "", &payload));
    let ev = failed(&f.gate());
    assert!(
        ev.summary.contains("@refs/tags/v2.0.0` is not trusted"),
        "{}",
        ev.summary
    );
}

#[test]
fn a_foreign_source_commit_fails_and_the_check_can_be_turned_off() {
    let f = Fixture::new();
    f.all_good();
    let payload = statement(
        "chart",
        &digest_of(b"chart"),
        SLSA_PROVENANCE_V1,
        provenance(BUILDER, OTHER_COMMIT),
    );
    f.write("chart.dsse.json", &envelope(&f.p256, "", &payload));
    let ev = failed(&f.gate());
    assert_eq!(
        ev.summary,
        "1 of 2 artifacts not verified: `chart`: built from commit fedcba987654 instead of the \
         release's commit 0123456789ab"
    );
    assert_eq!(
        ev.data["artifacts"][1]["envelopes"][0]["source_commits"],
        json!([OTHER_COMMIT])
    );
    let lenient = f
        .builder()
        .require_slsa_provenance(true)
        .trusted_builder(BUILDER)
        .check_source_commit(false)
        .build()
        .unwrap();
    passed(&lenient);

    // A provenance that names no commit at all.
    let mut no_commit = provenance(BUILDER, COMMIT);
    no_commit["buildDefinition"]["resolvedDependencies"] = json!([
        {"uri": "https://example.com/toolchain.tgz", "digest": {"sha1": COMMIT}}
    ]);
    let payload = statement("chart", &digest_of(b"chart"), SLSA_PROVENANCE_V1, no_commit);
    f.write("chart.dsse.json", &envelope(&f.p256, "", &payload));
    let ev = failed(&f.gate());
    assert_eq!(
        ev.summary,
        "1 of 2 artifacts not verified: `chart`: the provenance names no source commit"
    );

    // The commit may come from a source descriptor in externalParameters (upper-case hex too).
    let mut in_params = provenance(BUILDER, OTHER_COMMIT);
    in_params["buildDefinition"]["externalParameters"]["source"] = json!({
        "uri": "git+https://github.com/shop/app",
        "digest": {"sha1": COMMIT.to_uppercase()},
    });
    let payload = statement("chart", &digest_of(b"chart"), SLSA_PROVENANCE_V1, in_params);
    f.write("chart.dsse.json", &envelope(&f.p256, "", &payload));
    passed(&f.gate());
}

#[test]
fn a_missing_envelope_fails_naming_the_artifact_and_where_it_looked() {
    let f = Fixture::new();
    f.all_good();
    std::fs::remove_file(f.path("chart.dsse.json")).unwrap();
    let ev = failed(&f.gate());
    assert_eq!(
        ev.summary,
        format!(
            "1 of 2 artifacts not verified: `chart`: no envelope (looked for {}, {})",
            f.path("chart.intoto.jsonl"),
            f.path("chart.dsse.json")
        )
    );
    assert_eq!(ev.data["artifacts"][1]["envelopes"], json!([]));
}

#[test]
fn every_problem_of_every_artifact_is_listed_at_once() {
    let f = Fixture::new();
    let stranger = Key::ed();
    let payload = statement(
        "api",
        &digest_of(b"not the api image"),
        SLSA_PROVENANCE_V1,
        provenance("https://evil.example/builder", OTHER_COMMIT),
    );
    f.write("api-image.intoto.jsonl", &envelope(&stranger, "", &payload));
    let ev = failed(&f.gate());
    assert_eq!(
        ev.summary,
        format!(
            "2 of 2 artifacts not verified: `api-image`: signed by no trusted key (1 signature \
             checked against ci-ed25519, ci-p256), the statement is not about digest sha256:{} \
             (subjects: `api` sha256:{}), builder `https://evil.example/builder` is not \
             trusted, built from commit fedcba987654 instead of the release's commit \
             0123456789ab; `chart`: no envelope (looked for {}, {})",
            short(&digest_of(b"api image")),
            short(&digest_of(b"not the api image")),
            f.path("chart.intoto.jsonl"),
            f.path("chart.dsse.json")
        )
    );
    assert_eq!(
        ev.data["artifacts"][0]["problems"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn an_envelope_without_signatures_is_unsigned() {
    let f = Fixture::new();
    f.all_good();
    f.write(
        "chart.dsse.json",
        &envelope_with(
            IN_TOTO_PAYLOAD_TYPE,
            &slsa("chart", &digest_of(b"chart")),
            &[],
        ),
    );
    let ev = failed(&f.gate());
    assert_eq!(
        ev.summary,
        "1 of 2 artifacts not verified: `chart`: unsigned: the envelope has no signatures"
    );
}

#[test]
fn other_statement_and_payload_types_fail() {
    let f = Fixture::new();
    f.all_good();
    let mut old: Value = serde_json::from_slice(&slsa("chart", &digest_of(b"chart"))).unwrap();
    old["_type"] = json!("https://in-toto.io/Statement/v0.1");
    let old = serde_json::to_vec(&old).unwrap();
    f.write("chart.dsse.json", &envelope(&f.p256, "", &old));
    let ev = failed(&f.gate());
    assert_eq!(
        ev.summary,
        format!(
            "1 of 2 artifacts not verified: `chart`: statement type \
             `https://in-toto.io/Statement/v0.1` is not `{STATEMENT_V1}`"
        )
    );

    let sig = f.p256.sign("text/plain", b"hello");
    f.write(
        "chart.dsse.json",
        &envelope_with("text/plain", b"hello", &[("", sig)]),
    );
    let ev = failed(&f.gate());
    assert_eq!(
        ev.summary,
        "1 of 2 artifacts not verified: `chart`: payload type `text/plain` is not \
         `application/vnd.in-toto+json`"
    );
    // The signature itself was good.
    assert_eq!(ev.data["artifacts"][1]["envelopes"][0]["key_id"], "ci-p256");
}

// ---------------------------------------------------------------------------------------------
// Malformed input: errors naming the file and the artifact

#[test]
fn malformed_envelopes_are_invalid_input_naming_file_line_and_artifact() {
    let f = Fixture::new();
    f.all_good();
    let jsonl = f.path("api-image.intoto.jsonl");
    let good_line = envelope(&f.ed, "", &slsa("api", &digest_of(b"api image")));

    // Payload that is not base64.
    f.write(
        "api-image.intoto.jsonl",
        r#"{"payloadType":"application/vnd.in-toto+json","payload":"%%%not base64%%%","signatures":[{"sig":"AAAA"}]}"#,
    );
    let (what, message) = invalid(&f.gate());
    assert_eq!(what, format!("{jsonl} line 1"));
    assert!(
        message.starts_with("artifact `api-image`: the payload is not base64: "),
        "{message}"
    );

    // A signature that is not base64, on line 2 after a good envelope.
    let mut bad_sig: Value = serde_json::from_str(&good_line).unwrap();
    bad_sig["signatures"][0]["sig"] = json!("not*base64");
    f.write(
        "api-image.intoto.jsonl",
        &format!("{good_line}\n{bad_sig}\n"),
    );
    let (what, message) = invalid(&f.gate());
    assert_eq!(what, format!("{jsonl} line 2"));
    assert!(
        message.starts_with("artifact `api-image`: signature 1 is not base64: "),
        "{message}"
    );

    // Not JSON, and JSON that is not an envelope.
    f.write("api-image.intoto.jsonl", "{\"payloadType\": \n");
    let (what, message) = invalid(&f.gate());
    assert_eq!(what, format!("{jsonl} line 1"));
    assert!(
        message.starts_with("artifact `api-image`: not a DSSE envelope: EOF while parsing"),
        "{message}"
    );
    f.write("api-image.intoto.jsonl", r#"{"payload": "e30="}"#);
    let (_, message) = invalid(&f.gate());
    assert!(message.contains("missing field `payloadType`"), "{message}");

    // An empty JSON Lines file holds no envelope at all.
    f.write("api-image.intoto.jsonl", "\n  \n");
    let (what, message) = invalid(&f.gate());
    assert_eq!(what, jsonl);
    assert_eq!(
        message,
        "artifact `api-image`: the JSON Lines file holds no envelope"
    );

    // A .dsse.json document that is not JSON is named by its path.
    f.write("api-image.intoto.jsonl", &good_line);
    f.write("chart.dsse.json", "<envelope/>");
    let (what, message) = invalid(&f.gate());
    assert_eq!(what, f.path("chart.dsse.json"));
    assert!(
        message.starts_with("artifact `chart`: not a DSSE envelope: "),
        "{message}"
    );
}

#[test]
fn a_payload_that_is_not_a_statement_or_a_malformed_provenance_is_invalid_input() {
    let f = Fixture::new();
    f.all_good();
    f.write(
        "chart.dsse.json",
        &envelope(&f.p256, "", b"{\"hello\": \"world\"}"),
    );
    let (what, message) = invalid(&f.gate());
    assert_eq!(what, f.path("chart.dsse.json"));
    assert!(
        message.starts_with("artifact `chart`: the payload is not an in-toto statement: "),
        "{message}"
    );
    f.write("chart.dsse.json", &envelope(&f.p256, "", b"not json"));
    let (_, message) = invalid(&f.gate());
    assert!(message.contains("not an in-toto statement"), "{message}");

    let mut broken = provenance(BUILDER, COMMIT);
    broken["runDetails"] = json!({"metadata": {}});
    let payload = statement("chart", &digest_of(b"chart"), SLSA_PROVENANCE_V1, broken);
    f.write("chart.dsse.json", &envelope(&f.p256, "", &payload));
    let (what, message) = invalid(&f.gate());
    assert_eq!(what, f.path("chart.dsse.json"));
    assert_eq!(
        message,
        "artifact `chart`: the SLSA provenance v1 predicate is malformed: missing field `builder`"
    );
}

// ---------------------------------------------------------------------------------------------
// Sources

/// Envelopes kept in memory, keyed by artifact digest, as a host's attestation store would.
#[derive(Debug, Default)]
struct Store {
    by_digest: BTreeMap<Digest, String>,
}

#[async_trait]
impl EnvelopeSource for Store {
    async fn envelopes(&self, artifact: &Artifact) -> Result<Vec<EnvelopeFile>, GateError> {
        Ok(self
            .by_digest
            .get(&artifact.digest)
            .map(|e| EnvelopeFile {
                origin: format!("store://{}", artifact.digest),
                format: EnvelopeFormat::Json,
                bytes: e.clone().into_bytes(),
            })
            .into_iter()
            .collect())
    }
    fn location(&self, artifact: &Artifact) -> String {
        format!("store://{}", artifact.digest)
    }
}

#[test]
fn a_host_source_is_used_as_given() {
    let key = Key::ed();
    let mut store = Store::default();
    store.by_digest.insert(
        digest_of(b"api image"),
        envelope(&key, "", &slsa("api", &digest_of(b"api image"))),
    );
    let gate = SignatureGate::builder(store)
        .trusted_key_pem("k", key.public_pem())
        .build()
        .unwrap();
    let ev = failed(&gate);
    assert_eq!(
        ev.summary,
        format!(
            "1 of 2 artifacts not verified: `chart`: no envelope (looked for store://{})",
            digest_of(b"chart")
        )
    );
    assert_eq!(
        ev.data["artifacts"][0]["envelopes"][0]["origin"],
        format!("store://{}", digest_of(b"api image"))
    );
}

#[test]
fn a_missing_directory_or_an_unusable_artifact_name_is_misconfiguration() {
    let f = Fixture::new();
    let gate = SignatureGate::builder(EnvelopeDir::new(f.dir.path().join("nope")))
        .trusted_key_pem("k", f.ed.public_pem())
        .build()
        .unwrap();
    assert!(matches!(
        run(&gate),
        Err(GateError::Misconfigured(m)) if m.contains("nope") && m.contains("does not exist")
    ));
    let release = Release::builder("x", "repo", COMMIT, t0())
        .artifact("ghcr.io/shop/api", digest_of(b"x").to_string())
        .builder("ci")
        .build()
        .unwrap();
    let gate = f.builder().build().unwrap();
    let r = block_on(GateProbe::new().release(release).evaluate(&gate));
    assert!(
        matches!(&r, Err(GateError::Misconfigured(m)) if m.contains("`ghcr.io/shop/api`")),
        "{r:?}"
    );
    let dir = EnvelopeDir::new("/att");
    assert_eq!(
        dir.paths("api"),
        [
            Path::new("/att/api.intoto.jsonl").to_path_buf(),
            Path::new("/att/api.dsse.json").to_path_buf()
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn every_misconfiguration_is_a_typed_error_naming_the_setting() {
    let f = Fixture::new();
    let dir = || SignatureGate::builder(EnvelopeDir::new(f.dir.path()));
    let err = |b: SignatureGateBuilder| b.build().unwrap_err();

    assert_eq!(err(dir()), SignatureConfigError::NoTrustedKeys);
    let e = err(dir().trusted_key_pem(
        "release",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    ));
    assert!(
        matches!(&e, SignatureConfigError::InvalidKey { field: "trusted_key_pem", key_id, .. } if key_id == "release"),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("signature gate: trusted_key_pem `release`: "),
        "{e}"
    );
    let e = err(dir().trusted_ed25519_key("raw", [0u8; 31]));
    assert_eq!(
        e.to_string(),
        "signature gate: trusted_ed25519_key `raw`: an Ed25519 public key is 32 bytes, found 31"
    );
    let e = err(dir().trusted_p256_key("p", [4u8; 65]));
    assert!(
        matches!(
            &e,
            SignatureConfigError::InvalidKey {
                field: "trusted_p256_key",
                ..
            }
        ),
        "{e}"
    );
    // A private key given by mistake is refused with a hint.
    let Key::P256(sk) = &f.p256 else {
        unreachable!()
    };
    let private = p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(sk, LineEnding::LF).unwrap();
    let e = err(dir().trusted_key_pem("oops", private.as_str()));
    assert!(e.to_string().contains("never the private one"), "{e}");
    // Unsupported algorithms are named (an X25519 key is not a signing key).
    let x25519 = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEAhSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\n-----END PUBLIC KEY-----\n";
    let e = err(dir().trusted_key_pem("x", x25519));
    assert!(e.to_string().contains("1.3.101.110"), "{e}");

    assert_eq!(
        err(dir().trusted_key_pem(" ", f.ed.public_pem())),
        SignatureConfigError::BlankKeyId {
            field: "trusted_key_pem"
        }
    );
    assert_eq!(
        err(dir()
            .trusted_key_pem("k", f.ed.public_pem())
            .trusted_key_pem("k", f.p256.public_pem()))
        .to_string(),
        "signature gate: trusted_key_pem: key id `k` is used twice"
    );
    let keyed = || dir().trusted_key_pem("k", f.ed.public_pem());
    assert_eq!(
        err(keyed().require_slsa_provenance(true)),
        SignatureConfigError::EmptyBuilderAllowlist
    );
    assert_eq!(
        err(keyed().require_slsa_provenance(true)).to_string(),
        "signature gate: require_slsa_provenance is on but trusted_builder lists no builder"
    );
    assert_eq!(
        err(keyed().trusted_builder(BUILDER)),
        SignatureConfigError::BuildersWithoutProvenance
    );
    assert_eq!(
        err(keyed().require_slsa_provenance(true).trusted_builder("  ")),
        SignatureConfigError::BlankBuilderId
    );
    assert!(matches!(
        err(keyed().name(" bad")),
        SignatureConfigError::InvalidName(_)
    ));

    let gate = keyed()
        .name("provenance")
        .require_slsa_provenance(true)
        .trusted_builder(BUILDER)
        .build()
        .unwrap();
    assert_eq!(gate.name(), "provenance");
    assert_eq!(gate.key_ids(), ["k"]);
    assert_eq!(gate.trusted_builders(), [BUILDER]);
    assert!(gate.requires_slsa_provenance());
    assert!(format!("{gate:?}").contains("ed25519"));
}

// ---------------------------------------------------------------------------------------------
// Several signatures and a threshold: secure-systems-lab/dsse v1.0.0, envelope.md "Multiple
// signatures" and protocol.md "Multi-signature Verification"

/// Both artifacts signed (with provenance) by every key in `signers`, each signature under
/// its `keyid` hint, as one envelope each; the envelope also carries a field DSSE does not
/// define, which consumers must ignore (envelope.md, "Parsing rules").
fn write_multi_signed(f: &Fixture, signers: &[(&str, Vec<u8>, Vec<u8>)]) {
    for (file, subject, content, column) in [
        ("api-image.intoto.jsonl", "api", &b"api image"[..], 1),
        ("chart.dsse.json", "chart", &b"chart"[..], 2),
    ] {
        let payload = slsa(subject, &digest_of(content));
        let sigs: Vec<(&str, Vec<u8>)> = signers
            .iter()
            .map(|(hint, api, chart)| {
                let sig = if column == 1 { api } else { chart };
                // Each signer's bytes were made over this artifact's payload by the caller.
                (*hint, sig.clone())
            })
            .collect();
        let mut env: Value =
            serde_json::from_str(&envelope_with(IN_TOTO_PAYLOAD_TYPE, &payload, &sigs)).unwrap();
        env["x-transparency"] = json!({"logIndex": 7});
        f.write(file, &env.to_string());
    }
}

/// `key`'s signatures over both artifacts' payloads: (api-image, chart).
fn sigs_of(key: &Key) -> (Vec<u8>, Vec<u8>) {
    (
        key.sign(IN_TOTO_PAYLOAD_TYPE, &slsa("api", &digest_of(b"api image"))),
        key.sign(IN_TOTO_PAYLOAD_TYPE, &slsa("chart", &digest_of(b"chart"))),
    )
}

fn threshold_gate(f: &Fixture, threshold: usize) -> SignatureGate {
    f.builder()
        .require_slsa_provenance(true)
        .trusted_builder(BUILDER)
        .signature_threshold(threshold)
        .build()
        .unwrap()
}

#[test]
fn envelopes_signed_by_two_trusted_keys_meet_a_threshold_of_two_past_a_stranger() {
    let f = Fixture::new();
    let stranger = Key::ed();
    let (s_api, s_chart) = sigs_of(&stranger);
    let (e_api, e_chart) = sigs_of(&f.ed);
    let (p_api, p_chart) = sigs_of(&f.p256);
    // The stranger signs first and claims a trusted key's id; it is skipped.
    write_multi_signed(
        &f,
        &[
            ("ci-ed25519", s_api, s_chart),
            ("ci-ed25519", e_api, e_chart),
            ("", p_api, p_chart),
        ],
    );
    let ev = passed(&threshold_gate(&f, 2));
    assert_eq!(
        ev.summary,
        "all 2 artifacts signed by trusted keys (ci-ed25519, ci-p256) with SLSA provenance \
         from trusted builders"
    );
    assert_eq!(ev.data["signature_threshold"], 2);
    let envelope = &ev.data["artifacts"][0]["envelopes"][0];
    assert_eq!(envelope["key_ids"], json!(["ci-ed25519", "ci-p256"]));
    assert_eq!(envelope["signatures"], 3);
    // One of them is enough by default, and the evidence keeps its earlier shape.
    let ev = passed(&f.gate());
    assert!(ev.data.get("signature_threshold").is_none());
    assert!(ev.data["artifacts"][0]["envelopes"][0]
        .get("key_ids")
        .is_none());
    assert_eq!(ev.data["artifacts"][0]["key_id"], "ci-ed25519");
}

#[test]
fn one_key_signing_twice_does_not_meet_a_threshold_of_two() {
    let f = Fixture::new();
    let Key::P256(p) = &f.p256 else {
        unreachable!()
    };
    // The same ECDSA signature in its two encodings (DER and r || s): two different byte
    // strings, both valid, both by ci-p256, the second labelled as the other trusted key.
    let encodings = |payload: &[u8]| {
        let sig: p256::ecdsa::Signature =
            p256::ecdsa::signature::Signer::sign(p, &pae(IN_TOTO_PAYLOAD_TYPE, payload));
        (sig.to_der().as_bytes().to_vec(), sig.to_bytes().to_vec())
    };
    let (api_der, api_raw) = encodings(&slsa("api", &digest_of(b"api image")));
    let (chart_der, chart_raw) = encodings(&slsa("chart", &digest_of(b"chart")));
    assert_ne!(api_der, api_raw);
    write_multi_signed(
        &f,
        &[
            ("ci-p256", api_der, chart_der),
            ("ci-ed25519", api_raw, chart_raw),
        ],
    );
    let ev = failed(&threshold_gate(&f, 2));
    let problem = "signed by 1 of the 2 distinct trusted keys required (ci-p256; 2 signatures \
                   checked against ci-ed25519, ci-p256)";
    assert_eq!(
        ev.summary,
        format!("2 of 2 artifacts not verified: `api-image`: {problem}; `chart`: {problem}")
    );
    assert_eq!(
        ev.data["artifacts"][0]["envelopes"][0]["key_ids"],
        json!(["ci-p256"])
    );
    // At the default threshold the one key is enough.
    passed(&f.gate());
}

#[test]
fn an_untrusted_signature_beside_a_trusted_one_passes_only_if_the_threshold_is_met() {
    let f = Fixture::new();
    let stranger = Key::p256();
    let (s_api, s_chart) = sigs_of(&stranger);
    let (e_api, e_chart) = sigs_of(&f.ed);
    write_multi_signed(
        &f,
        &[("ci-ed25519", e_api, e_chart), ("ci-p256", s_api, s_chart)],
    );
    passed(&threshold_gate(&f, 1));
    let ev = failed(&threshold_gate(&f, 2));
    assert!(
        ev.summary.contains(
            "`api-image`: signed by 1 of the 2 distinct trusted keys required (ci-ed25519;"
        ),
        "{}",
        ev.summary
    );
}

#[test]
fn a_trusted_signature_over_another_payload_type_does_not_verify() {
    // protocol.md, "Signature Definition": PAYLOAD_TYPE is authenticated, so a signature the
    // trusted key made over `application/json` does not verify on an in-toto envelope.
    let f = Fixture::new();
    f.all_good();
    let payload = slsa("api", &digest_of(b"api image"));
    let sig = f.ed.sign("application/json", &payload);
    f.write(
        "api-image.intoto.jsonl",
        &envelope_with(IN_TOTO_PAYLOAD_TYPE, &payload, &[("ci-ed25519", sig)]),
    );
    let ev = failed(&f.gate());
    assert_eq!(
        ev.summary,
        "1 of 2 artifacts not verified: `api-image`: signed by no trusted key (1 signature \
         checked against ci-ed25519, ci-p256)"
    );
}

#[test]
fn a_threshold_no_envelope_could_meet_or_one_key_under_two_ids_is_refused() {
    let f = Fixture::new();
    for threshold in [0, 3] {
        let e = f
            .builder()
            .signature_threshold(threshold)
            .build()
            .unwrap_err();
        assert_eq!(
            e,
            SignatureConfigError::InvalidThreshold { threshold, keys: 2 }
        );
        assert_eq!(
            e.to_string(),
            format!(
                "signature gate: signature_threshold {threshold}: must be at least 1 and at \
                 most the 2 trusted key(s)"
            )
        );
    }
    assert_eq!(
        f.builder()
            .signature_threshold(2)
            .build()
            .unwrap()
            .signature_threshold(),
        2
    );
    // One key trusted twice would let its signer count as two toward the threshold.
    let Key::Ed(ed) = &f.ed else { unreachable!() };
    let e = f
        .builder()
        .trusted_ed25519_key("ci-ed25519-raw", ed.verifying_key().to_bytes())
        .signature_threshold(2)
        .build()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "signature gate: trusted_ed25519_key `ci-ed25519-raw`: the same key as `ci-ed25519`"
    );
}
