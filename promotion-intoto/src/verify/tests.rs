//! [`Envelope::verify`] against the DSSE specification (secure-systems-lab/dsse v1.0.0):
//! protocol.md, sections "Protocol" and "Multi-signature Verification", and envelope.md,
//! sections "Standard JSON envelope", "Multiple signatures" and "Parsing rules". Envelopes are
//! written here in the shape those sections give, signed with Ed25519 keys made for the tests.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use super::*;
use crate::EnvelopeSignature;

/// A trusted Ed25519 key under a local id.
#[derive(Debug)]
struct Key {
    id: &'static str,
    key: VerifyingKey,
}

impl TrustedKey for Key {
    fn id(&self) -> &str {
        self.id
    }
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        ed25519_dalek::Signature::from_slice(signature)
            .is_ok_and(|s| self.key.verify_strict(message, &s).is_ok())
    }
}

fn signer(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn trusted(id: &'static str, seed: u8) -> Key {
    Key {
        id,
        key: signer(seed).verifying_key(),
    }
}

const TYPE: &str = "application/vnd.in-toto+json";
const PAYLOAD: &[u8] = b"{\"_type\":\"https://in-toto.io/Statement/v1\"}";

/// Signature bytes of `seed`'s key over the PAE of `payload_type` and `payload`.
fn sig(seed: u8, payload_type: &str, payload: &[u8]) -> Vec<u8> {
    signer(seed)
        .sign(&pae(payload_type, payload))
        .to_bytes()
        .to_vec()
}

/// An envelope of [`PAYLOAD`] with one signature per `(keyid hint, seed)`.
fn envelope(signatures: &[(&str, u8)]) -> Envelope {
    Envelope::new(
        TYPE,
        PAYLOAD,
        signatures
            .iter()
            .map(|(hint, seed)| EnvelopeSignature::new(*hint, &sig(*seed, TYPE, PAYLOAD)))
            .collect(),
    )
}

fn two(n: usize) -> Threshold {
    Threshold::new(n).unwrap()
}

fn ids<'k, K: TrustedKey>(v: &Verified<'k, K>) -> Vec<&'k str> {
    v.keys.iter().map(|k| (*k).id()).collect()
}

fn below(r: Result<Verified<'_, Key>, VerifyError>) -> (usize, Vec<String>, usize) {
    match r {
        Err(VerifyError::BelowThreshold {
            required,
            verified,
            signatures,
        }) => (required, verified, signatures),
        Err(other) => panic!("expected BelowThreshold, got {other:?}"),
        Ok(v) => panic!("accepted, signed by {:?}", ids(&v)),
    }
}

#[test]
fn one_trusted_signature_is_enough_by_default() {
    // protocol.md, "Protocol", "To verify": verify SIGNATURE against PAE(UTF8(PAYLOAD_TYPE),
    // SERIALIZED_BODY).
    let keys = [trusted("a", 1)];
    let v = envelope(&[("a", 1)])
        .verify(&keys, Threshold::default(), Acceptance::Dsse)
        .unwrap();
    assert_eq!(v.payload, PAYLOAD);
    assert_eq!(ids(&v), ["a"]);
    assert_eq!(Threshold::default(), Threshold::ONE);
    assert_eq!(
        Threshold::new(0),
        None,
        "a threshold of zero would accept anything"
    );
}

#[test]
fn several_signatures_by_distinct_trusted_keys_meet_a_threshold() {
    // envelope.md, "Multiple signatures": an envelope MAY have more than one signature;
    // protocol.md, "Multi-signature Verification": a (t, n)-envelope is valid when its
    // signatures verify with at least t of the n trusted keys.
    let keys = [trusted("a", 1), trusted("b", 2), trusted("c", 3)];
    let env = envelope(&[("a", 1), ("b", 2)]);
    let v = env.verify(&keys, two(2), Acceptance::Dsse).unwrap();
    assert_eq!(ids(&v), ["a", "b"]);
    // Three required, two signed: refused, naming the two that did.
    let (required, verified, signatures) = below(env.verify(&keys, two(3), Acceptance::Dsse));
    assert_eq!((required, signatures), (3, 2));
    assert_eq!(verified, ["a", "b"]);
}

#[test]
fn two_signatures_by_the_same_key_count_once() {
    // protocol.md, "Multi-signature Verification": the accepted *public keys* form a set,
    // ACCEPTED_KEYS, whose cardinality is compared with t. The same signature twice, and the
    // second copy labelled with another trusted key's id, still make one key.
    let keys = [trusted("a", 1), trusted("b", 2)];
    for env in [
        envelope(&[("a", 1), ("a", 1)]),
        envelope(&[("a", 1), ("b", 1)]),
    ] {
        let (required, verified, signatures) = below(env.verify(&keys, two(2), Acceptance::Dsse));
        assert_eq!((required, signatures), (2, 2));
        assert_eq!(verified, ["a"]);
    }
    // Ed25519 signs deterministically: every signature by key a over this PAE is the same
    // bytes, however many copies and whatever their hints.
    let env = envelope(&[("", 1), ("a", 1), ("", 1)]);
    assert_eq!(
        below(env.verify(&keys, two(2), Acceptance::Dsse)).1,
        ["a"],
        "three copies are still one key"
    );
}

#[test]
fn an_untrusted_signature_beside_a_trusted_one_counts_for_nothing() {
    // protocol.md, "Multi-signature Verification": a signature that does not verify with a
    // trusted key is skipped ("Skip over if the verification fails"), in any position.
    let keys = [trusted("a", 1), trusted("b", 2)];
    for env in [
        envelope(&[("stranger", 9), ("a", 1)]),
        envelope(&[("a", 1), ("stranger", 9)]),
    ] {
        let v = env.verify(&keys, Threshold::ONE, Acceptance::Dsse).unwrap();
        assert_eq!(ids(&v), ["a"]);
        let (_, verified, _) = below(env.verify(&keys, two(2), Acceptance::Dsse));
        assert_eq!(
            verified,
            ["a"],
            "the stranger does not make up the second key"
        );
    }
    // A stranger claiming a trusted key's id is still a stranger.
    let env = envelope(&[("b", 9), ("a", 1)]);
    assert_eq!(below(env.verify(&keys, two(2), Acceptance::Dsse)).1, ["a"]);
    // Only strangers: nothing verified.
    let env = envelope(&[("stranger", 9)]);
    let err = env
        .verify(&keys, Threshold::ONE, Acceptance::Dsse)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "signed by 0 of the 1 distinct trusted keys required (1 signature checked)"
    );
}

#[test]
fn the_keyid_is_only_a_hint() {
    // protocol.md, "Signature Definition": KEYID "MUST NOT be used for security decisions; it
    // may only be used to narrow the selection of possible keys to try". A missing, empty or
    // wrong hint does not stop a valid signature from verifying.
    let keys = [trusted("a", 1), trusted("b", 2)];
    for hint in ["", "b", "unknown"] {
        let v = envelope(&[(hint, 1)])
            .verify(&keys, Threshold::ONE, Acceptance::Dsse)
            .unwrap();
        assert_eq!(ids(&v), ["a"], "hint {hint:?}");
    }
}

#[test]
fn a_signature_over_another_payload_type_fails() {
    // protocol.md, "Signature Definition": PAYLOAD_TYPE is authenticated. A signature made for
    // one type does not verify on an envelope claiming another.
    let keys = [trusted("a", 1)];
    let env = Envelope::new(
        TYPE,
        PAYLOAD,
        vec![EnvelopeSignature::new(
            "a",
            &sig(1, "application/json", PAYLOAD),
        )],
    );
    assert!(below(env.verify(&keys, Threshold::ONE, Acceptance::Dsse))
        .1
        .is_empty());
    // Signed as what it claims, but not the type this verifier supports: protocol.md,
    // "Protocol": "Reject if PAYLOAD_TYPE is not a supported type".
    let other = Envelope::new(
        "application/json",
        PAYLOAD,
        vec![EnvelopeSignature::new(
            "a",
            &sig(1, "application/json", PAYLOAD),
        )],
    );
    assert!(other
        .verify(&keys, Threshold::ONE, Acceptance::Dsse)
        .is_ok());
    let err = other
        .verify_typed(&keys, Threshold::ONE, Acceptance::Dsse, TYPE)
        .unwrap_err();
    assert!(
        matches!(&err, VerifyError::PayloadType { found, .. } if found == "application/json"),
        "{err:?}"
    );
    // A changed payload fails the same way.
    let mut changed = envelope(&[("a", 1)]);
    changed.payload = STANDARD.encode(b"{\"_type\":\"other\"}");
    assert!(
        below(changed.verify(&keys, Threshold::ONE, Acceptance::Dsse))
            .1
            .is_empty()
    );
}

#[test]
fn unknown_fields_and_url_safe_base64_verify() {
    // envelope.md, "Parsing rules": consumers MUST ignore unrecognized fields, and `keyid` MAY
    // be unset. envelope.md, "Standard JSON envelope", and protocol.md, "Protocol": standard or
    // URL-safe base64, and verifiers MUST accept either.
    let payload: &[u8] = b"{\"bytes\":\"\xfb\xff\"}";
    let signature = sig(1, TYPE, payload);
    let (payload_b64, sig_b64) = (
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(&signature),
    );
    assert_ne!(
        payload_b64,
        STANDARD.encode(payload),
        "the alphabets differ here"
    );
    let text = format!(
        r#"{{"payload":"{payload_b64}","payloadType":"{TYPE}","signatures":[{{"sig":"{sig_b64}","cert":"-----BEGIN CERTIFICATE-----"}}],"mediaType":"x/y","extensions":{{"n":[1,2]}}}}"#
    );
    let env = Envelope::from_json(text.as_bytes(), Acceptance::Dsse).unwrap();
    let keys = [trusted("a", 1)];
    let v = env
        .verify_typed(&keys, Threshold::ONE, Acceptance::Dsse, TYPE)
        .unwrap();
    assert_eq!(v.payload, payload);
}

#[test]
fn a_malformed_envelope_is_a_typed_error() {
    // protocol.md, "Protocol" and "Multi-signature Verification": "Reject if decoding fails".
    let keys = [trusted("a", 1)];
    let text = |s: &str| Envelope::from_json(s.as_bytes(), Acceptance::Dsse);
    assert!(matches!(text("not json"), Err(EnvelopeError::Json(_))));
    let err = text(r#"{"payloadType":"t","signatures":[]}"#).unwrap_err();
    assert!(err.to_string().contains("missing field `payload`"), "{err}");

    // Base64 that is neither alphabet (a mix of both, or no base64 at all).
    for bad in ["+-==", "!!!!"] {
        let mut env = envelope(&[("a", 1)]);
        env.payload = bad.to_owned();
        let err = env
            .verify(&keys, Threshold::ONE, Acceptance::Dsse)
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::Envelope(EnvelopeError::Payload(_))),
            "{bad}: {err:?}"
        );
    }
    // A signature that is not base64 rejects the envelope, even beside a valid one.
    let mut env = envelope(&[("a", 1), ("b", 2)]);
    env.signatures[1].sig = "%%%".to_owned();
    let err = env
        .verify(&keys, Threshold::ONE, Acceptance::Dsse)
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Envelope(EnvelopeError::Signature { number: 2, .. })
        ),
        "{err:?}"
    );
    // Zero signatures: nothing to verify.
    let env = envelope(&[]);
    let err = env
        .verify(&keys, Threshold::ONE, Acceptance::Dsse)
        .unwrap_err();
    assert!(matches!(err, VerifyError::Unsigned), "{err:?}");
    assert_eq!(err.to_string(), "the envelope has no signatures");
}
