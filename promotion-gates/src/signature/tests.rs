//! Unit tests of the signature gate.

use super::*;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use futures::executor::block_on;
use p256::pkcs8::EncodePublicKey as _;
use promotion_core::testing::{sample_release, GateProbe};
use promotion_core::{Artifact, GateError, Verdict};
use rand_core::OsRng;
use serde_json::json;
use std::collections::BTreeMap;

#[test]
fn ed25519_keys_load_from_pem_and_raw_and_verify() {
    let sk = ed25519_dalek::SigningKey::generate(&mut OsRng);
    let pem = sk
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    let from_pem = PublicKey::from_pem(&pem).unwrap();
    let from_raw = KeySpec::Ed25519(sk.verifying_key().to_bytes().to_vec())
        .parse()
        .unwrap();
    let sig = sk.sign(b"message").to_bytes();
    for key in [&from_pem, &from_raw] {
        assert_eq!(key.algorithm(), KeyAlgorithm::Ed25519);
        assert!(key.verify(b"message", &sig));
        assert!(!key.verify(b"messagE", &sig));
        assert!(!key.verify(b"message", &sig[..63]));
    }
}

#[test]
fn p256_keys_accept_der_and_fixed_signatures_over_sha256_of_the_message() {
    use p256::ecdsa::signature::hazmat::PrehashSigner as _;
    use sha2::Digest as _;
    let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
    let vk = *sk.verifying_key();
    let pem = vk.to_public_key_pem(p256::pkcs8::LineEnding::LF).unwrap();
    let keys = [
        PublicKey::from_pem(&pem).unwrap(),
        KeySpec::P256(vk.to_encoded_point(false).as_bytes().to_vec())
            .parse()
            .unwrap(),
        KeySpec::P256(vk.to_encoded_point(true).as_bytes().to_vec())
            .parse()
            .unwrap(),
    ];
    // Sign the SHA-256 of the message explicitly, as cosign does.
    let digest = sha2::Sha256::digest(b"message");
    let sig: p256::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
    let der = sig.to_der();
    for key in &keys {
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256Sha256);
        assert!(key.verify(b"message", der.as_bytes()));
        assert!(key.verify(b"message", &sig.to_bytes()));
        assert!(!key.verify(b"other", der.as_bytes()));
        assert!(!key.verify(b"message", b"\x30\x06\x02\x01\x01\x02\x01\x01"));
    }
}

#[test]
fn bad_keys_say_what_is_wrong() {
    assert!(KeySpec::Ed25519(vec![1; 31])
        .parse()
        .unwrap_err()
        .contains("32 bytes, found 31"));
    assert!(KeySpec::P256(vec![4; 10])
        .parse()
        .unwrap_err()
        .contains("found 10 bytes"));
    assert!(PublicKey::from_pem("hello")
        .unwrap_err()
        .starts_with("not a PEM document"));
    let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
    let private =
        p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&sk, p256::pkcs8::LineEnding::LF).unwrap();
    let err = PublicKey::from_pem(&private).unwrap_err();
    assert!(
        err.contains("`PRIVATE KEY`") && err.contains("never the private one"),
        "{err}"
    );
}

#[test]
fn commits_come_from_git_descriptors_only() {
    let mut digest = BTreeMap::new();
    digest.insert("sha1".to_owned(), "ABC".to_owned());
    assert_eq!(
        descriptor_commits(Some("git+https://x/y@refs/heads/main"), &digest),
        ["abc"]
    );
    // A sha1 of a tarball is not a commit.
    assert!(descriptor_commits(Some("https://x/y.tgz"), &digest).is_empty());
    digest.insert("gitCommit".to_owned(), "def".to_owned());
    assert_eq!(descriptor_commits(None, &digest), ["def"]);

    let params = json!({
        "workflow": {"ref": "refs/heads/main", "repository": "https://x/y"},
        "source": {"uri": "git+https://x/y", "digest": {"sha1": "111"}},
        "inputs": [{"digest": {"gitCommit": "222"}}, {"digest": {"sha256": "333"}}],
    });
    let mut out = Vec::new();
    parameter_commits(&params, 0, &mut out);
    out.sort();
    assert_eq!(out, ["111", "222"]);
}

// ---------------------------------------------------------------------------------------------
// Envelopes as the gate reads them through `promotion_intoto` (`Acceptance::Dsse`): every form
// another signer may write is read, anything else is invalid input worded as before.

/// Serves one file holding `bytes` for every artifact.
#[derive(Debug)]
struct OneFile {
    format: EnvelopeFormat,
    bytes: Vec<u8>,
}

impl OneFile {
    const ORIGIN: &'static str = "mem/envelopes";
}

#[async_trait::async_trait]
impl EnvelopeSource for OneFile {
    async fn envelopes(&self, _: &Artifact) -> Result<Vec<EnvelopeFile>, GateError> {
        Ok(vec![EnvelopeFile {
            origin: Self::ORIGIN.to_owned(),
            format: self.format,
            bytes: self.bytes.clone(),
        }])
    }

    fn location(&self, _: &Artifact) -> String {
        Self::ORIGIN.to_owned()
    }
}

/// The signing key the gate trusts (as `ci`), fixed so that failures repeat.
fn signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

/// A statement about the sample release's artifact, and its signature by [`signing_key`].
fn signed_statement() -> (Vec<u8>, Vec<u8>) {
    let subject: Vec<_> = sample_release()
        .artifacts()
        .iter()
        .map(|a| json!({"name": a.name, "digest": {"sha256": a.digest.to_hex()}}))
        .collect();
    let payload = serde_json::to_vec(&json!({
        "_type": STATEMENT_V1,
        "subject": subject,
        "predicateType": "https://example.com/test-result/v1",
        "predicate": {},
    }))
    .unwrap();
    let sig = signing_key()
        .sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload))
        .to_bytes()
        .to_vec();
    (payload, sig)
}

fn evaluate(format: EnvelopeFormat, text: &str) -> Result<Verdict, GateError> {
    let gate = SignatureGate::builder(OneFile {
        format,
        bytes: text.as_bytes().to_vec(),
    })
    .trusted_ed25519_key("ci", signing_key().verifying_key().to_bytes())
    .build()
    .unwrap();
    block_on(GateProbe::new().evaluate(&gate))
}

/// The `InvalidInput` of evaluating `text`, as (where, message).
fn invalid(format: EnvelopeFormat, text: &str) -> (String, String) {
    match evaluate(format, text) {
        Err(GateError::InvalidInput { what, message }) => (what, message),
        other => panic!("expected invalid input for {text}, got {other:?}"),
    }
}

#[test]
fn the_reexported_dsse_items_are_the_shared_ones() {
    // The paths `promotion_gates::signature::{pae, IN_TOTO_PAYLOAD_TYPE, STATEMENT_V1}` keep
    // working and mean what `promotion_intoto` means.
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
    );
    assert_eq!(pae("é", b"a b\n"), promotion_intoto::pae("é", b"a b\n"));
    assert_eq!(IN_TOTO_PAYLOAD_TYPE, promotion_intoto::IN_TOTO_PAYLOAD_TYPE);
    assert_eq!(STATEMENT_V1, promotion_intoto::STATEMENT_V1);
}

#[test]
fn envelopes_are_read_in_every_form_dsse_lets_a_signer_write() {
    let (payload, sig) = signed_statement();
    let forms = [
        (
            STANDARD.encode(&payload),
            STANDARD.encode(&sig),
            r#""keyid":"ci","#,
        ),
        (
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&sig),
            "",
        ),
        (
            STANDARD_NO_PAD.encode(&payload),
            URL_SAFE.encode(&sig),
            r#""keyid":null,"#,
        ),
        (
            URL_SAFE.encode(&payload),
            STANDARD_NO_PAD.encode(&sig),
            r#""keyid":"","#,
        ),
        // An unknown key id is only a hint: every trusted key is still tried.
        (
            STANDARD.encode(&payload),
            STANDARD.encode(&sig),
            r#""keyid":"elsewhere","#,
        ),
    ];
    for (payload, sig, keyid) in forms {
        let text = format!(
            r#"{{"payloadType":"{IN_TOTO_PAYLOAD_TYPE}","payload":"{payload}","extra":[1,{{}}],
                "signatures":[{{{keyid}"sig":"{sig}","extension":{{"x":null}}}}]}}"#
        );
        match evaluate(EnvelopeFormat::Json, &text) {
            Ok(Verdict::Pass(e)) => assert_eq!(
                e.summary, "the artifact signed by trusted keys (ci)",
                "{text}"
            ),
            other => panic!("expected a pass for {text}, got {other:?}"),
        }
    }
}

#[test]
fn what_dsse_refuses_is_invalid_input_worded_as_the_gate_words_it() {
    let (payload, sig) = signed_statement();
    let (payload, sig) = (STANDARD.encode(payload), STANDARD.encode(sig));
    let artifact = sample_release().artifacts()[0].name.clone();
    let cases = [
        (
            format!(r#"{{"payloadType":"t","payload":"{payload}","payload":"","signatures":[]}}"#),
            "not a DSSE envelope: duplicate field `payload` at line 1 column ",
        ),
        (
            format!(
                r#"{{"payloadType":"t","payload":"{payload}","signatures":[{{"keyid":"ci"}}]}}"#
            ),
            "not a DSSE envelope: missing field `sig` at line 1 column ",
        ),
        (
            format!(r#"{{"payloadType":"t","payload":"{payload}","signatures":[]}} {{}}"#),
            "not a DSSE envelope: trailing characters at line 1 column ",
        ),
        // `YR` would decode to the same byte as `YQ`: its stray trailing bits are refused.
        (
            format!(r#"{{"payloadType":"t","payload":"YR","signatures":[{{"sig":"{sig}"}}]}}"#),
            "the payload is not base64: Invalid last symbol 82, offset 1.",
        ),
        (
            format!(
                r#"{{"payloadType":"t","payload":"{payload}",
                    "signatures":[{{"sig":"{sig}"}},{{"sig":"+_8"}}]}}"#
            ),
            "signature 2 is not base64: Invalid symbol 95, offset 1.",
        ),
    ];
    for (text, want) in cases {
        let (what, message) = invalid(EnvelopeFormat::Json, &text);
        assert_eq!(what, OneFile::ORIGIN);
        let want = format!("artifact `{artifact}`: {want}");
        assert!(message.starts_with(&want), "{message}\nwanted: {want}");
    }
}

#[test]
fn json_lines_envelopes_are_named_by_file_and_line() {
    let (payload, sig) = signed_statement();
    let good = format!(
        r#"{{"payloadType":"{IN_TOTO_PAYLOAD_TYPE}","payload":"{}","signatures":[{{"sig":"{}"}}]}}"#,
        STANDARD.encode(payload),
        STANDARD.encode(sig)
    );
    // Blank lines are skipped but still counted.
    let (what, message) = invalid(EnvelopeFormat::JsonLines, &format!("{good}\n\n{{\n"));
    assert_eq!(what, format!("{} line 3", OneFile::ORIGIN));
    assert!(message.contains("not a DSSE envelope: EOF"), "{message}");
    let (what, message) = invalid(EnvelopeFormat::JsonLines, " \n\n");
    assert_eq!(what, OneFile::ORIGIN);
    assert!(
        message.ends_with("the JSON Lines file holds no envelope"),
        "{message}"
    );
}
