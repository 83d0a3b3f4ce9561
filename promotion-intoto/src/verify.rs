//! Verifying an envelope against trusted keys, as DSSE's protocol.md ("Multi-signature
//! Verification") specifies: every signature is checked over the PAE, one that does not verify
//! is skipped, and the envelope is accepted when the signatures verified with at least a
//! threshold of **distinct** trusted keys (one by default).
//!
//! The key types and algorithms stay with the callers: they implement [`TrustedKey`].

use std::num::NonZeroUsize;

use crate::{pae, Acceptance, Envelope, EnvelopeError};

/// A public key a verifier trusts, as [`Envelope::verify`] uses it.
///
/// Keys are counted by [`id`](TrustedKey::id): two keys with the same id are one key. A
/// verifier that trusts the same key material under two ids would let one signer count twice;
/// callers refuse such a configuration when they build their key list.
pub trait TrustedKey {
    /// The key's local name: what the evidence shows, what a signature's `keyid` hint is
    /// compared with to try this key first, and what distinct keys are counted by.
    fn id(&self) -> &str;
    /// Whether `signature` is this key's valid signature of `message` (the PAE). Bytes that
    /// are not a signature in this key's format are `false`, not an error: another key may
    /// have made them.
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool;
}

/// How many distinct trusted keys must have signed an envelope: DSSE's `t` in a
/// `(t, n)`-envelope. At least one; [`Threshold::ONE`] by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Threshold(NonZeroUsize);

impl Threshold {
    /// One trusted key is enough.
    pub const ONE: Threshold = Threshold(NonZeroUsize::MIN);

    /// `n` distinct trusted keys; `None` for zero, which would accept an unsigned envelope.
    pub fn new(n: usize) -> Option<Self> {
        NonZeroUsize::new(n).map(Threshold)
    }

    /// The number of keys.
    pub fn get(self) -> usize {
        self.0.get()
    }
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold::ONE
    }
}

/// An envelope that verified: its payload and the keys that signed it.
#[derive(Debug)]
pub struct Verified<'k, K> {
    /// The payload bytes, decoded.
    pub payload: Vec<u8>,
    /// The distinct trusted keys whose signatures verified, in the order of their signatures;
    /// at least the threshold, and no more than needed to reach it.
    pub keys: Vec<&'k K>,
}

/// Why an envelope was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The payload or a signature is not base64 under the acceptance used: the envelope is
    /// malformed (protocol.md: "Reject if decoding fails").
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The envelope has no signature at all.
    #[error("the envelope has no signatures")]
    Unsigned,
    /// Fewer distinct trusted keys verified than the threshold requires: signatures by
    /// untrusted keys, over other bytes (a changed payload or payload type), or repeated by
    /// one key.
    #[error(
        "signed by {} of the {required} distinct trusted keys required{} ({signatures} signature{} checked)",
        verified.len(),
        if verified.is_empty() { String::new() } else { format!(" ({})", verified.join(", ")) },
        if *signatures == 1 { "" } else { "s" }
    )]
    BelowThreshold {
        /// The threshold.
        required: usize,
        /// The ids of the trusted keys that did verify.
        verified: Vec<String>,
        /// How many signatures the envelope carries.
        signatures: usize,
    },
    /// The signatures verified, but the payload type is not the one expected (protocol.md:
    /// "Reject if PAYLOAD_TYPE is not a supported type").
    #[error("the payload type is `{found}`, expected `{expected}`")]
    PayloadType {
        /// The type expected.
        expected: String,
        /// The type found.
        found: String,
    },
}

impl Envelope {
    /// Verifies the envelope against `keys`: decodes the payload and every signature under
    /// `acceptance` (a malformed one rejects the envelope), then checks each signature over
    /// the PAE with the keys that have not verified yet — those whose id equals the
    /// signature's `keyid` hint first, the hint being only a hint — and accepts once
    /// `threshold` distinct keys verified. Signatures that verify with no trusted key are
    /// skipped, as the specification says; a second signature by a key already counted adds
    /// nothing.
    ///
    /// The payload type is covered by the signatures but not compared with anything: use
    /// [`verify_typed`](Self::verify_typed) where one type is expected.
    pub fn verify<'k, K: TrustedKey>(
        &self,
        keys: &'k [K],
        threshold: Threshold,
        acceptance: Acceptance,
    ) -> Result<Verified<'k, K>, VerifyError> {
        let payload = self.decode_payload(acceptance)?;
        let signatures = self.decode_signatures(acceptance)?;
        if signatures.is_empty() {
            return Err(VerifyError::Unsigned);
        }
        let message = pae(&self.payload_type, &payload);
        let mut accepted: Vec<&'k K> = Vec::new();
        for (entry, signature) in self.signatures.iter().zip(&signatures) {
            if accepted.len() >= threshold.get() {
                break;
            }
            let fresh = |k: &&'k K| !accepted.iter().any(|a| a.id() == k.id());
            let hinted = keys.iter().filter(|k| k.id() == entry.keyid).filter(fresh);
            let others = keys.iter().filter(|k| k.id() != entry.keyid).filter(fresh);
            let found = hinted
                .chain(others)
                .find(|k| k.verifies(&message, signature));
            if let Some(key) = found {
                accepted.push(key);
            }
        }
        if accepted.len() < threshold.get() {
            return Err(VerifyError::BelowThreshold {
                required: threshold.get(),
                verified: accepted.iter().map(|k| k.id().to_owned()).collect(),
                signatures: signatures.len(),
            });
        }
        Ok(Verified {
            payload,
            keys: accepted,
        })
    }

    /// [`verify`](Self::verify), then rejects a payload type other than `payload_type`.
    pub fn verify_typed<'k, K: TrustedKey>(
        &self,
        keys: &'k [K],
        threshold: Threshold,
        acceptance: Acceptance,
        payload_type: &str,
    ) -> Result<Verified<'k, K>, VerifyError> {
        let verified = self.verify(keys, threshold, acceptance)?;
        if self.payload_type != payload_type {
            return Err(VerifyError::PayloadType {
                expected: payload_type.to_owned(),
                found: self.payload_type.clone(),
            });
        }
        Ok(verified)
    }
}

#[cfg(test)]
mod tests;
