//! Unit tests of the signature gate.

use super::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use p256::pkcs8::EncodePublicKey as _;
use rand_core::OsRng;
use serde_json::json;
use std::collections::BTreeMap;

#[test]
fn pae_matches_the_dsse_spec_test_vector_byte_for_byte() {
    let got = pae("http://example.com/HelloWorld", b"hello world");
    let want: &[u8] = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world";
    assert_eq!(got, want);
    assert_eq!(got.len(), 54);
}

#[test]
fn pae_counts_bytes_not_characters_and_keeps_the_payload_verbatim() {
    // "é" is two bytes in UTF-8; a payload with spaces and newlines stays as it is.
    assert_eq!(pae("é", b"a b\n"), b"DSSEv1 2 \xc3\xa9 4 a b\n".to_vec());
    assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
}

#[test]
fn base64_accepts_standard_and_url_safe_with_or_without_padding() {
    let bytes = [0xfb_u8, 0xff, 0x00, 0x10];
    for text in [STANDARD.encode(bytes), URL_SAFE_NO_PAD.encode(bytes)] {
        assert_eq!(decode_base64(&text).unwrap(), bytes, "{text}");
    }
    assert_eq!(decode_base64("+/8AEA").unwrap(), bytes);
    assert!(decode_base64("not base64!").is_err());
}

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
