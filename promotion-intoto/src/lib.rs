//! # promotion-intoto
//!
//! The DSSE and in-toto primitives that [promotion](https://example.invalid/promotion)'s
//! evidence packs (which write and verify envelopes) and its signature gate (which reads
//! envelopes other tools wrote) share, with no runtime, network or key type attached:
//!
//! - [`pae`]: the DSSE v1 pre-authentication encoding, the bytes a signature covers;
//! - [`IN_TOTO_PAYLOAD_TYPE`] and [`STATEMENT_V1`]: what marks a payload as an in-toto
//!   Statement v1;
//! - [`Envelope`] and [`EnvelopeSignature`]: the DSSE JSON envelope, read under an explicit
//!   [`Acceptance`] ([`Acceptance::Dsse`], what the DSSE specification lets any signer write,
//!   for every verifier; [`Acceptance::Strict`], only the form written here, for a writer
//!   checking its own output), with
//!   an [`EnvelopeError`] that says what is wrong;
//! - [`Envelope::verify`]: DSSE's multi-signature verification, accepting an envelope once its
//!   signatures verified with a [`Threshold`] of distinct [`TrustedKey`]s (one by default),
//!   skipping signatures by other keys, with a [`VerifyError`] that says why not.
//!
//! Signing is left to the callers, and so are key types and algorithms: a caller implements
//! [`TrustedKey`] for its keys.
//!
//! ```
//! use promotion_intoto::{pae, Acceptance, Envelope};
//!
//! // Another tool's envelope: no key id, unpadded base64.
//! let text = br#"{"payloadType":"text/plain","payload":"aGk","signatures":[{"sig":"AAEC"}]}"#;
//! let envelope = Envelope::from_json(text, Acceptance::Dsse)?;
//! let payload = envelope.decode_payload(Acceptance::Dsse)?;
//! assert_eq!(payload, b"hi");
//! assert_eq!(pae(&envelope.payload_type, &payload), b"DSSEv1 10 text/plain 2 hi");
//! assert_eq!(envelope.signatures[0].keyid_hint(), None);
//! // Where only this workspace's own form is expected, the missing key id is refused.
//! let err = Envelope::from_json(text, Acceptance::Strict).unwrap_err();
//! assert!(err.to_string().contains("missing field `keyid`"), "{err}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Supported Rust versions
//!
//! The workspace's `rust-version` (1.85) and later stable releases.

mod envelope;
mod verify;

pub use envelope::{Acceptance, Envelope, EnvelopeError, EnvelopeSignature};
pub use verify::{Threshold, TrustedKey, Verified, VerifyError};

/// The DSSE payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The `_type` of an in-toto Statement v1.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

/// The DSSE v1 pre-authentication encoding of a payload: the bytes that are signed.
///
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, where `LEN` is the length in bytes
/// (not characters) in ASCII decimal and `SP` one space; the payload is kept verbatim. Signing
/// these bytes rather than the payload alone binds the payload type to the signature.
///
/// ```
/// use promotion_intoto::pae;
/// assert_eq!(pae("t/x", b"a b"), b"DSSEv1 3 t/x 3 a b".to_vec());
/// ```
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let head = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    );
    let mut out = Vec::with_capacity(head.len() + payload.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_specification_example() {
        // secure-systems-lab/dsse, protocol.md (v1.0.0), "Test Vectors": SERIALIZED_BODY
        // `hello world` (line 139) and PAYLOAD_TYPE `http://example.com/HelloWorld` (line 145)
        // give the PAE of line 151. The input below is written out here in the same shape.
        let payload_type = "http://example.com/HelloWorld";
        let body = b"hello world";
        let got = pae(payload_type, body);
        let want: &[u8] = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world";
        assert_eq!(got, want);
        assert_eq!(got.len(), 54);
    }

    #[test]
    fn pae_counts_bytes_not_characters_and_keeps_the_payload_verbatim() {
        // "é" is two bytes in UTF-8; a payload with spaces and newlines stays as it is.
        assert_eq!(pae("é", b"a b\n"), b"DSSEv1 2 \xc3\xa9 4 a b\n".to_vec());
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
        // A payload holding what looks like another PAE header cannot shift the boundaries.
        assert_eq!(pae("a", b"1 b"), b"DSSEv1 1 a 3 1 b".to_vec());
    }
}
