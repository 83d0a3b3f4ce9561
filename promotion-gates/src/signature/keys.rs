//! Trusted public keys: Ed25519 and ECDSA P-256 in PEM (SPKI) form, each with the key id
//! envelopes use to name it.

use std::fmt;

use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey as _;

/// The signature algorithm of a trusted key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// Ed25519 over the PAE.
    Ed25519,
    /// ECDSA on P-256 over the SHA-256 of the PAE.
    EcdsaP256Sha256,
}

impl KeyAlgorithm {
    /// The name used in evidence: `ed25519` or `ecdsa-p256-sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub(super) enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    pub(super) fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PublicKey::Ed25519(_) => KeyAlgorithm::Ed25519,
            PublicKey::P256(_) => KeyAlgorithm::EcdsaP256Sha256,
        }
    }

    /// Whether `sig` is a valid signature of `message` by this key.
    pub(super) fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(key) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| key.verify_strict(message, &s).is_ok()),
            PublicKey::P256(key) => {
                // DER (cosign) or fixed-size r || s; a byte string could in principle parse as
                // both, so each form that parses is tried.
                let der = p256::ecdsa::Signature::from_der(sig).ok();
                let fixed = p256::ecdsa::Signature::from_slice(sig).ok();
                [der, fixed]
                    .into_iter()
                    .flatten()
                    .any(|s| key.verify(message, &s).is_ok())
            }
        }
    }

    /// The key as a PEM `PUBLIC KEY` (SPKI) block, as the evidence records it so that an
    /// auditor can check the envelopes with the log alone; `None` if it cannot be encoded.
    pub(super) fn to_pem(&self) -> Option<String> {
        use p256::pkcs8::{EncodePublicKey as _, LineEnding};
        match self {
            PublicKey::Ed25519(key) => key.to_public_key_pem(LineEnding::LF).ok(),
            PublicKey::P256(key) => key.to_public_key_pem(LineEnding::LF).ok(),
        }
    }

    /// Whether `other` is the same key material (whatever id each is configured under).
    pub(super) fn same_key(&self, other: &PublicKey) -> bool {
        match (self, other) {
            (PublicKey::Ed25519(a), PublicKey::Ed25519(b)) => a == b,
            (PublicKey::P256(a), PublicKey::P256(b)) => a == b,
            _ => false,
        }
    }

    /// A key from a PEM `PUBLIC KEY` (SPKI) block, Ed25519 or ECDSA P-256.
    pub(super) fn from_pem(pem: &str) -> Result<Self, String> {
        const ED25519_OID: &str = "1.3.101.112";
        const EC_PUBLIC_KEY_OID: &str = "1.2.840.10045.2.1";
        let (label, document) = p256::pkcs8::Document::from_pem(pem.trim())
            .map_err(|e| format!("not a PEM document: {e}"))?;
        if label != "PUBLIC KEY" {
            let hint = if label.contains("PRIVATE") {
                "; give the public key, never the private one"
            } else {
                ""
            };
            return Err(format!(
                "the PEM block is `{label}`, expected `PUBLIC KEY` (SubjectPublicKeyInfo){hint}"
            ));
        }
        let info = p256::pkcs8::SubjectPublicKeyInfoRef::try_from(document.as_bytes())
            .map_err(|e| format!("not a SubjectPublicKeyInfo: {e}"))?;
        let oid = info.algorithm.oid.to_string();
        let der = document.as_bytes();
        match oid.as_str() {
            ED25519_OID => ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map(PublicKey::Ed25519)
                .map_err(|e| format!("not a valid Ed25519 public key: {e}")),
            EC_PUBLIC_KEY_OID => p256::ecdsa::VerifyingKey::from_public_key_der(der)
                .map(PublicKey::P256)
                .map_err(|e| {
                    format!(
                        "not an ECDSA P-256 public key (only the P-256 curve is supported): {e}"
                    )
                }),
            other => Err(format!(
                "the key's algorithm {other} is neither Ed25519 (1.3.101.112) nor ECDSA \
                 (1.2.840.10045.2.1)"
            )),
        }
    }
}

/// A key as configured, parsed in [`SignatureGateBuilder::build`].
#[derive(Clone)]
pub(super) enum KeySpec {
    Pem(String),
    Ed25519(Vec<u8>),
    P256(Vec<u8>),
}

impl KeySpec {
    pub(super) fn field(&self) -> &'static str {
        match self {
            KeySpec::Pem(_) => "trusted_key_pem",
            KeySpec::Ed25519(_) => "trusted_ed25519_key",
            KeySpec::P256(_) => "trusted_p256_key",
        }
    }

    pub(super) fn parse(&self) -> Result<PublicKey, String> {
        match self {
            KeySpec::Pem(pem) => PublicKey::from_pem(pem),
            KeySpec::Ed25519(raw) => {
                let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
                    format!("an Ed25519 public key is 32 bytes, found {}", raw.len())
                })?;
                ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map(PublicKey::Ed25519)
                    .map_err(|e| format!("not a valid Ed25519 public key: {e}"))
            }
            KeySpec::P256(raw) => p256::ecdsa::VerifyingKey::from_sec1_bytes(raw)
                .map(PublicKey::P256)
                .map_err(|_| {
                    format!(
                        "not a P-256 public key in SEC1 form (33 or 65 bytes starting with \
                         02, 03 or 04; found {} bytes)",
                        raw.len()
                    )
                }),
        }
    }
}

#[derive(Clone)]
pub(super) struct TrustedKey {
    pub(super) id: String,
    pub(super) key: PublicKey,
}

/// What DSSE verification needs of a key: its id (the builder refuses one key material under
/// two ids, so ids count distinct keys) and the signature check.
impl promotion_intoto::TrustedKey for TrustedKey {
    fn id(&self) -> &str {
        &self.id
    }
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify(message, signature)
    }
}
