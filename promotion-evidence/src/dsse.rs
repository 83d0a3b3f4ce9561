//! DSSE envelopes signed with Ed25519: how every attestation of a pack, and the pack's
//! manifest, is signed.
//!
//! An envelope ([Dead Simple Signing Envelope] v1) is the JSON document
//!
//! ```json
//! {"payloadType":"application/vnd.in-toto+json",
//!  "payload":"<standard base64 of the payload bytes>",
//!  "signatures":[{"keyid":"<hex>","sig":"<standard base64 of the 64-byte signature>"}]}
//! ```
//!
//! The signature is the Ed25519 signature of the pre-authentication encoding
//! ([`promotion_intoto::pae`]) of the payload type and the payload bytes, so neither can be
//! changed without invalidating it. The envelope type itself is [`promotion_intoto::Envelope`],
//! re-exported here. A pack's envelopes are read as DSSE requires of a consumer
//! ([`Acceptance::Dsse`]) and verified with its multi-signature algorithm
//! ([`Envelope::verify`]): what the signature covers must be exact, the rest may vary as the
//! specification allows (another signer's signature beside this key's, fields DSSE does not
//! define, either base64 alphabet).
//!
//! Keys:
//! - [`AttestationSigner`]: an Ed25519 key (from a 32-byte seed, generated, or a PKCS#8 PEM
//!   `-----BEGIN PRIVATE KEY-----` file, as `openssl genpkey -algorithm ed25519` writes);
//! - [`AttestationVerifier`]: its public key (SPKI PEM `-----BEGIN PUBLIC KEY-----`, as
//!   `openssl pkey -pubout` writes, or the raw 32 bytes). Weak (small-order) keys are refused
//!   and signatures are checked with `verify_strict`.
//! - The **key id** written in `keyid` is the lowercase hex SHA-256 of the raw 32-byte public
//!   key. DSSE makes it an unauthenticated hint that "MUST NOT be used for security
//!   decisions" (protocol.md): every signature is tried, and the key id only words the error
//!   when none verifies ([`DsseError::NoSignature`] or [`DsseError::BadSignature`]).
//!
//! Base64 is written in the standard, padded alphabet (RFC 4648 §4) and read in either
//! alphabet, padded or not, as DSSE requires of verifiers; encodings whose unused trailing bits
//! are not zero are refused, so no two texts decode to the same bytes.
//!
//! [Dead Simple Signing Envelope]: https://github.com/secure-systems-lab/dsse

use std::fmt;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use promotion_intoto::{pae, Threshold, TrustedKey, VerifyError};
use rand_core::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};

pub use promotion_intoto::{Acceptance, Envelope, EnvelopeError, EnvelopeSignature};

/// A key could not be read, written or generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM text is not an Ed25519 key of the expected kind.
    #[error("not an Ed25519 {kind} PEM key: {message}")]
    Pem {
        /// `private (PKCS#8)` or `public (SPKI)`.
        kind: &'static str,
        /// What the PEM/DER decoder said.
        message: String,
    },
    /// The public key is not a valid, strong Ed25519 point.
    #[error("invalid Ed25519 public key: {0}")]
    InvalidKey(String),
    /// The operating system's random generator failed.
    #[error("could not generate a key: {0}")]
    Generation(String),
}

/// Why an envelope does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DsseError {
    /// The payload is not valid standard base64.
    #[error("the payload is not valid base64: {0}")]
    Payload(String),
    /// The payload type is not the one expected.
    #[error("the payload type is `{found}`, expected `{expected}`")]
    PayloadType {
        /// The type expected.
        expected: String,
        /// The type found.
        found: String,
    },
    /// No signature carries the verifier's key id.
    #[error("no signature by key {keyid} (signatures by: {})", if found.is_empty() { "none".to_owned() } else { found.join(", ") })]
    NoSignature {
        /// The trusted key's id.
        keyid: String,
        /// The key ids the envelope's signatures name.
        found: Vec<String>,
    },
    /// A signature is not 64 bytes of valid base64.
    #[error("the signature by key {keyid} is malformed: {problem}")]
    MalformedSignature {
        /// The key id it names.
        keyid: String,
        /// What is wrong.
        problem: String,
    },
    /// The signature does not verify: the payload or its type changed after signing, or another
    /// key signed.
    #[error("the signature by key {keyid} does not verify: the payload was changed after signing or another key signed it")]
    BadSignature {
        /// The trusted key's id.
        keyid: String,
    },
    /// The envelope could not be decoded for another reason than its payload's base64 (only
    /// from [`From<EnvelopeError>`], for callers of [`Envelope::payload_bytes`]).
    #[error("{0}")]
    Envelope(String),
}

impl From<EnvelopeError> for DsseError {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::Payload(e) => DsseError::Payload(e.to_string()),
            other => DsseError::Envelope(other.to_string()),
        }
    }
}

/// The key id of an Ed25519 public key: lowercase hex SHA-256 of its 32 raw bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Signs DSSE envelopes with an Ed25519 key. Its `Debug` output shows the key id only.
pub struct AttestationSigner {
    key: SigningKey,
    keyid: String,
}

impl fmt::Debug for AttestationSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttestationSigner")
            .field("keyid", &self.keyid)
            .finish_non_exhaustive()
    }
}

impl AttestationSigner {
    /// The key with this 32-byte Ed25519 seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let keyid = key_id(&key.verifying_key());
        AttestationSigner { key, keyid }
    }

    /// A fresh key from the operating system's random generator.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0_u8; 32];
        OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| KeyError::Generation(e.to_string()))?;
        Ok(Self::from_seed(seed))
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Pem {
            kind: "private (PKCS#8)",
            message: e.to_string(),
        })?;
        let keyid = key_id(&key.verifying_key());
        Ok(AttestationSigner { key, keyid })
    }

    /// The private key as PKCS#8 PEM, to keep in a secret store.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.as_str().to_owned())
            .map_err(|e| KeyError::Pem {
                kind: "private (PKCS#8)",
                message: e.to_string(),
            })
    }

    /// The key id written in every signature.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// The verifier for this key.
    pub fn verifier(&self) -> AttestationVerifier {
        AttestationVerifier {
            key: self.key.verifying_key(),
            keyid: self.keyid.clone(),
        }
    }

    /// Signs `payload` of type `payload_type` into an envelope with one signature.
    pub fn sign(&self, payload_type: &str, payload: &[u8]) -> Envelope {
        let signature = self.key.sign(&pae(payload_type, payload));
        Envelope::new(
            payload_type,
            payload,
            vec![EnvelopeSignature::new(
                self.keyid.clone(),
                &signature.to_bytes(),
            )],
        )
    }
}

/// Verifies DSSE envelopes against one trusted Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationVerifier {
    key: VerifyingKey,
    keyid: String,
}

impl AttestationVerifier {
    /// Reads an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_public_key_pem(pem: &str) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_public_key_pem(pem).map_err(|e| KeyError::Pem {
            kind: "public (SPKI)",
            message: e.to_string(),
        })?;
        Self::from_key(key)
    }

    /// The public key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let key =
            VerifyingKey::from_bytes(bytes).map_err(|e| KeyError::InvalidKey(e.to_string()))?;
        Self::from_key(key)
    }

    fn from_key(key: VerifyingKey) -> Result<Self, KeyError> {
        if key.is_weak() {
            return Err(KeyError::InvalidKey("small-order (weak) public key".into()));
        }
        Ok(AttestationVerifier {
            keyid: key_id(&key),
            key,
        })
    }

    /// The public key as SPKI PEM, to hand to auditors.
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Pem {
                kind: "public (SPKI)",
                message: e.to_string(),
            })
    }

    /// The key id signatures must name.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// Verifies that one of the envelope's signatures is this key's, over the PAE of its
    /// payload type and payload, and returns the payload bytes.
    ///
    /// As DSSE's multi-signature verification says, every signature is tried whatever its
    /// `keyid`, and signatures by other keys are skipped. When none is this key's the error is
    /// worded by the hints: [`DsseError::BadSignature`] when a signature names this key (the
    /// payload or its type changed after signing), [`DsseError::MalformedSignature`] when it
    /// is not even 64 bytes, [`DsseError::NoSignature`] when none names it. Base64 that does
    /// not decode in either alphabet is [`DsseError::Payload`] or
    /// [`DsseError::MalformedSignature`].
    pub fn verify(&self, envelope: &Envelope) -> Result<Vec<u8>, DsseError> {
        self.check(envelope, None)
    }

    /// [`verify`](Self::verify), and checks the payload type.
    pub fn verify_typed(
        &self,
        envelope: &Envelope,
        payload_type: &str,
    ) -> Result<Vec<u8>, DsseError> {
        self.check(envelope, Some(payload_type))
    }

    fn check(&self, envelope: &Envelope, payload_type: Option<&str>) -> Result<Vec<u8>, DsseError> {
        let keys = std::slice::from_ref(self);
        let result = match payload_type {
            None => envelope.verify(keys, Threshold::ONE, Acceptance::Dsse),
            Some(t) => envelope.verify_typed(keys, Threshold::ONE, Acceptance::Dsse, t),
        };
        let error = match result {
            Ok(verified) => return Ok(verified.payload),
            Err(e) => e,
        };
        let named: Vec<&EnvelopeSignature> = envelope
            .signatures
            .iter()
            .filter(|s| s.keyid == self.keyid)
            .collect();
        Err(match error {
            VerifyError::Envelope(EnvelopeError::Signature { number, source }) => {
                DsseError::MalformedSignature {
                    keyid: envelope
                        .signatures
                        .get(number.saturating_sub(1))
                        .map_or_else(String::new, |s| s.keyid.clone()),
                    problem: format!("signature {number} is not valid base64: {source}"),
                }
            }
            VerifyError::Envelope(e) => e.into(),
            VerifyError::PayloadType { expected, found } => {
                DsseError::PayloadType { expected, found }
            }
            VerifyError::Unsigned | VerifyError::BelowThreshold { .. } if named.is_empty() => {
                DsseError::NoSignature {
                    keyid: self.keyid.clone(),
                    found: envelope
                        .signatures
                        .iter()
                        .map(|s| s.keyid.clone())
                        .collect(),
                }
            }
            _ => {
                let wrong_size = named.iter().find_map(|s| {
                    let bytes = s.decode_sig(Acceptance::Dsse).ok()?;
                    (bytes.len() != Signature::BYTE_SIZE).then_some(bytes.len())
                });
                match wrong_size {
                    Some(n) => DsseError::MalformedSignature {
                        keyid: self.keyid.clone(),
                        problem: format!("{n} bytes, expected {}", Signature::BYTE_SIZE),
                    },
                    None => DsseError::BadSignature {
                        keyid: self.keyid.clone(),
                    },
                }
            }
        })
    }
}

/// One trusted key for [`Envelope::verify`]: counted by its key id, checked with
/// `verify_strict`.
impl TrustedKey for AttestationVerifier {
    fn id(&self) -> &str {
        &self.keyid
    }
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature).is_ok_and(|s| self.key.verify_strict(message, &s).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPE: &str = "application/vnd.in-toto+json";

    fn signer_of_3() -> AttestationSigner {
        AttestationSigner::from_seed([3; 32])
    }

    #[test]
    fn signs_and_verifies_and_detects_every_change() {
        let signer = AttestationSigner::from_seed([3; 32]);
        let verifier = signer.verifier();
        let env = signer.sign(TYPE, b"{\"hello\":1}");
        assert_eq!(verifier.verify_typed(&env, TYPE).unwrap(), b"{\"hello\":1}");

        let mut changed = env.clone();
        changed.payload = Envelope::new(TYPE, b"{\"hello\":2}", Vec::new()).payload;
        assert!(matches!(
            verifier.verify(&changed),
            Err(DsseError::BadSignature { .. })
        ));

        // The payload type is signed too.
        let mut retyped = env.clone();
        retyped.payload_type = "text/plain".into();
        assert!(matches!(
            verifier.verify(&retyped),
            Err(DsseError::BadSignature { .. })
        ));

        let other = AttestationSigner::from_seed([4; 32]).verifier();
        let err = other.verify(&env).unwrap_err();
        assert!(matches!(err, DsseError::NoSignature { .. }));
        assert!(err.to_string().contains(signer.keyid()), "{err}");

        // A key id rewritten to the other key's: its signature does not verify.
        let mut relabelled = env.clone();
        relabelled.signatures[0].keyid = other.keyid().to_owned();
        assert!(matches!(
            other.verify(&relabelled),
            Err(DsseError::BadSignature { .. })
        ));
    }

    #[test]
    fn any_signature_by_this_key_verifies_whatever_its_key_id_and_position() {
        // secure-systems-lab/dsse v1.0.0, protocol.md: KEYID "MUST NOT be used for security
        // decisions" ("Signature Definition"), and signatures that do not verify are skipped
        // ("Multi-signature Verification").
        let signer = signer_of_3();
        let other = AttestationSigner::from_seed([4; 32]);
        let ours = signer.sign(TYPE, b"x").signatures[0].clone();
        let theirs = other.sign(TYPE, b"x").signatures[0].clone();
        for (hint, first) in [("", &theirs), ("someone-else", &theirs)] {
            let mut mine = ours.clone();
            mine.keyid = hint.to_owned();
            let env = Envelope::new(TYPE, b"x", vec![first.clone(), mine]);
            assert_eq!(signer.verifier().verify_typed(&env, TYPE).unwrap(), b"x");
            assert_eq!(other.verifier().verify_typed(&env, TYPE).unwrap(), b"x");
        }
        // A wrong-sized signature naming this key, with nothing else by it, is named as such.
        let mut short = ours.clone();
        short.sig = "AAEC".into();
        let env = Envelope::new(TYPE, b"x", vec![theirs, short]);
        let err = signer.verifier().verify(&env).unwrap_err();
        assert!(
            matches!(err, DsseError::MalformedSignature { .. }),
            "{err:?}"
        );
        assert!(err.to_string().ends_with("3 bytes, expected 64"), "{err}");
    }

    #[test]
    fn wrong_payload_type_is_named() {
        let signer = AttestationSigner::from_seed([3; 32]);
        let env = signer.sign("text/plain", b"x");
        let err = signer.verifier().verify_typed(&env, TYPE).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the payload type is `text/plain`, expected `application/vnd.in-toto+json`"
        );
    }

    #[test]
    fn pae_matches_the_dsse_specification() {
        // The DSSE specification's example (secure-systems-lab/dsse, protocol.md v1.0.0,
        // line 151): the signature is over these bytes. promotion-intoto tests it in full.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn signed_envelopes_are_written_as_before() {
        // The envelope type moved to promotion-intoto; a pack's envelope text did not change.
        let env = signer_of_3().sign(TYPE, b"ab");
        let text = String::from_utf8(env.to_json().unwrap()).unwrap();
        assert!(
            text.starts_with(r#"{"payloadType":"application/vnd.in-toto+json","payload":"YWI=","signatures":[{"keyid":""#),
            "{text}"
        );
        assert_eq!(
            Envelope::from_json(text.as_bytes(), Acceptance::Strict).unwrap(),
            env
        );
        // Callers of `payload_bytes` still get a `DsseError` with `?`.
        let mut edited = env.clone();
        edited.payload = "YWJ=".into();
        let err = DsseError::from(edited.payload_bytes().unwrap_err());
        assert!(matches!(err, DsseError::Payload(_)), "{err:?}");
        assert_eq!(Err(err), signer_of_3().verifier().verify(&edited));
    }

    #[test]
    fn pem_round_trips_and_key_id_is_the_hash_of_the_public_key() {
        let signer = AttestationSigner::from_seed([9; 32]);
        let pem = signer.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = AttestationSigner::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.keyid(), signer.keyid());
        let public = signer.verifier().public_key_pem().unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
        let verifier = AttestationVerifier::from_public_key_pem(&public).unwrap();
        assert_eq!(verifier, signer.verifier());
        let raw = SigningKey::from_bytes(&[9; 32]).verifying_key();
        assert_eq!(
            signer.keyid(),
            hex::encode(Sha256::digest(raw.as_bytes())).as_str()
        );
        assert!(matches!(
            AttestationVerifier::from_public_key_pem("not a key"),
            Err(KeyError::Pem { .. })
        ));
        // The private key is never shown.
        assert!(!format!("{signer:?}").contains("key:"));
    }

    #[test]
    fn non_canonical_base64_is_refused() {
        let signer = AttestationSigner::from_seed([3; 32]);
        let mut env = signer.sign(TYPE, b"ab");
        // "YWI=" is "ab"; "YWJ=" has non-zero padding bits and must not decode to the same bytes.
        assert_eq!(env.payload, "YWI=");
        env.payload = "YWJ=".into();
        assert!(matches!(
            signer.verifier().verify(&env),
            Err(DsseError::Payload(_))
        ));
    }

    #[test]
    fn weak_keys_are_refused() {
        // The identity point is a small-order point.
        let mut identity = [0_u8; 32];
        identity[0] = 1;
        assert!(matches!(
            AttestationVerifier::from_bytes(&identity),
            Err(KeyError::InvalidKey(_))
        ));
    }
}
