//! The DSSE JSON envelope ([envelope.md]) and how it is read.
//!
//! ```json
//! {"payloadType":"application/vnd.in-toto+json",
//!  "payload":"<base64 of the payload bytes>",
//!  "signatures":[{"keyid":"<hint>","sig":"<base64 of the signature>"}]}
//! ```
//!
//! Writing ([`Serialize`], [`Envelope::to_json`]) always gives that compact form, fields in
//! that order, `keyid` included. Reading takes an [`Acceptance`]:
//!
//! | | [`Acceptance::Strict`] | [`Acceptance::Dsse`] |
//! |---|---|---|
//! | `keyid` | required, a string | optional; absent or `null` reads as `""` |
//! | other fields | refused, by name | ignored |
//! | base64 | standard alphabet, padded | standard or URL-safe, padded or not |
//!
//! Under both, `payloadType`, `payload`, `signatures` and each `sig` are required strings (an
//! array for `signatures`, which may be empty), a field given twice is refused, the envelope
//! must be a JSON object with nothing after it, and base64 whose unused trailing bits are not
//! zero is refused, so no two texts decode to the same bytes. The [`Deserialize`]
//! implementation is [`Acceptance::Strict`].
//!
//! [envelope.md]: https://github.com/secure-systems-lab/dsse/blob/master/envelope.md

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// How strictly an envelope is read: its JSON ([`Envelope::from_json`]) and its base64
/// ([`Envelope::decode_payload`], [`EnvelopeSignature::decode_sig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Acceptance {
    /// Only the form [`Envelope`] writes: every field present, `keyid` included, no other
    /// field, base64 in the standard alphabet with padding. For a writer checking its own
    /// output; a verifier reads with [`Acceptance::Dsse`], since the specification requires
    /// consumers to ignore unknown fields and accept either alphabet.
    Strict,
    /// Every form the DSSE specification lets another signer write: `keyid` may be absent
    /// (DSSE makes it an optional hint), unknown fields are ignored, and base64 may use the
    /// standard or the URL-safe alphabet, padded or not ("verifiers MUST accept either",
    /// protocol.md). For every envelope a verifier reads: the signature gate's, from other
    /// tools, and an evidence pack's.
    Dsse,
}

/// A DSSE envelope.
///
/// The fields are kept as written (base64 text, not decoded bytes) so that an envelope read
/// and written again is the same text, and so that decoding is a separate, named step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// What the payload is, e.g. [`IN_TOTO_PAYLOAD_TYPE`](crate::IN_TOTO_PAYLOAD_TYPE). It is
    /// covered by the signatures (see [`pae`](crate::pae)).
    pub payload_type: String,
    /// The payload bytes in base64.
    pub payload: String,
    /// The signatures, each over the PAE of the payload type and the payload bytes.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvelopeSignature {
    /// Which key signed: an unauthenticated hint that may only narrow which keys are tried.
    /// Empty when the envelope gave none (allowed under [`Acceptance::Dsse`] only).
    pub keyid: String,
    /// The signature bytes in base64.
    pub sig: String,
}

/// Why an envelope could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The text is not a DSSE envelope under the acceptance used: not JSON, not an object, a
    /// field missing, of the wrong type, given twice or (under [`Acceptance::Strict`])
    /// unknown. The message names the field and the JSON error its line and column.
    #[error("not a DSSE envelope: {0}")]
    Json(#[from] serde_json::Error),
    /// The payload is not base64 under the acceptance used.
    #[error("the payload is not valid base64: {0}")]
    Payload(#[source] base64::DecodeError),
    /// A signature is not base64 under the acceptance used.
    #[error("signature {number} is not valid base64: {source}")]
    Signature {
        /// Its position in `signatures`, from 1.
        number: usize,
        /// What the decoder said.
        source: base64::DecodeError,
    },
}

const ANY_PADDING: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_ANY_PADDING: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::STANDARD, ANY_PADDING);
const URL_SAFE_ANY_PADDING: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::URL_SAFE, ANY_PADDING);

fn decode_base64(text: &str, acceptance: Acceptance) -> Result<Vec<u8>, base64::DecodeError> {
    match acceptance {
        Acceptance::Strict => STANDARD.decode(text),
        // One alphabet or the other, not a mix; the standard alphabet's error is reported.
        Acceptance::Dsse => STANDARD_ANY_PADDING
            .decode(text)
            .or_else(|e| URL_SAFE_ANY_PADDING.decode(text).map_err(|_| e)),
    }
}

impl Envelope {
    /// An envelope of `payload` (encoded here in standard, padded base64) with `signatures`.
    pub fn new(
        payload_type: impl Into<String>,
        payload: &[u8],
        signatures: Vec<EnvelopeSignature>,
    ) -> Self {
        Envelope {
            payload_type: payload_type.into(),
            payload: STANDARD.encode(payload),
            signatures,
        }
    }

    /// Reads one envelope from JSON text under `acceptance`.
    pub fn from_json(bytes: &[u8], acceptance: Acceptance) -> Result<Self, EnvelopeError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let envelope = EnvelopeSeed(acceptance).deserialize(&mut de)?;
        de.end()?;
        Ok(envelope)
    }

    /// The envelope as compact JSON: `payloadType`, `payload`, `signatures`, and in each
    /// signature `keyid` then `sig`.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// The payload bytes, decoded under `acceptance` (not verified: the caller checks a
    /// signature over [`pae`](crate::pae) of these bytes).
    pub fn decode_payload(&self, acceptance: Acceptance) -> Result<Vec<u8>, EnvelopeError> {
        decode_base64(&self.payload, acceptance).map_err(EnvelopeError::Payload)
    }

    /// The payload bytes in the strict form ([`Acceptance::Strict`]), as written by
    /// [`Envelope::new`].
    pub fn payload_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        self.decode_payload(Acceptance::Strict)
    }

    /// Every signature's bytes, in order, decoded under `acceptance`; the error names the
    /// first signature that does not decode.
    pub fn decode_signatures(&self, acceptance: Acceptance) -> Result<Vec<Vec<u8>>, EnvelopeError> {
        self.signatures
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.decode_sig(acceptance)
                    .map_err(|source| EnvelopeError::Signature {
                        number: i + 1,
                        source,
                    })
            })
            .collect()
    }
}

impl EnvelopeSignature {
    /// A signature entry: the key id hint and the signature bytes (encoded here in standard,
    /// padded base64).
    pub fn new(keyid: impl Into<String>, sig: &[u8]) -> Self {
        EnvelopeSignature {
            keyid: keyid.into(),
            sig: STANDARD.encode(sig),
        }
    }

    /// The key id hint, `None` when the envelope gave none (or an empty one).
    pub fn keyid_hint(&self) -> Option<&str> {
        (!self.keyid.is_empty()).then_some(self.keyid.as_str())
    }

    /// The signature bytes, decoded under `acceptance`.
    pub fn decode_sig(&self, acceptance: Acceptance) -> Result<Vec<u8>, base64::DecodeError> {
        decode_base64(&self.sig, acceptance)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading: one visitor per object, parameterised by the acceptance, so that both acceptances
// read the same type and report errors in serde's words (field names, line and column).

const ENVELOPE_FIELDS: &[&str] = &["payloadType", "payload", "signatures"];
const SIGNATURE_FIELDS: &[&str] = &["keyid", "sig"];

impl<'de> Deserialize<'de> for Envelope {
    /// Reads an envelope under [`Acceptance::Strict`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        EnvelopeSeed(Acceptance::Strict).deserialize(deserializer)
    }
}

impl<'de> Deserialize<'de> for EnvelopeSignature {
    /// Reads a signature entry under [`Acceptance::Strict`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SignatureSeed(Acceptance::Strict).deserialize(deserializer)
    }
}

/// Sets `slot` to the map's next value, refusing a second one.
fn once<'de, A: MapAccess<'de>, T>(
    slot: &mut Option<T>,
    field: &'static str,
    value: impl FnOnce(&mut A) -> Result<T, A::Error>,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(field));
    }
    *slot = Some(value(map)?);
    Ok(())
}

/// A field this crate does not know: refused under [`Acceptance::Strict`], skipped otherwise.
fn unknown<'de, A: MapAccess<'de>>(
    acceptance: Acceptance,
    key: &str,
    expected: &'static [&'static str],
    map: &mut A,
) -> Result<(), A::Error> {
    match acceptance {
        Acceptance::Strict => Err(de::Error::unknown_field(key, expected)),
        Acceptance::Dsse => map.next_value::<IgnoredAny>().map(|_| ()),
    }
}

struct EnvelopeSeed(Acceptance);

impl<'de> DeserializeSeed<'de> for EnvelopeSeed {
    type Value = Envelope;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Envelope, D::Error> {
        deserializer.deserialize_struct("Envelope", ENVELOPE_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a DSSE envelope (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let (mut payload_type, mut payload, mut signatures) = (None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "payloadType" => once(&mut payload_type, "payloadType", A::next_value, &mut map)?,
                "payload" => once(&mut payload, "payload", A::next_value, &mut map)?,
                "signatures" => once(
                    &mut signatures,
                    "signatures",
                    |m| m.next_value_seed(SignaturesSeed(self.0)),
                    &mut map,
                )?,
                other => unknown(self.0, other, ENVELOPE_FIELDS, &mut map)?,
            }
        }
        Ok(Envelope {
            payload_type: payload_type.ok_or_else(|| de::Error::missing_field("payloadType"))?,
            payload: payload.ok_or_else(|| de::Error::missing_field("payload"))?,
            signatures: signatures.ok_or_else(|| de::Error::missing_field("signatures"))?,
        })
    }
}

struct SignaturesSeed(Acceptance);

impl<'de> DeserializeSeed<'de> for SignaturesSeed {
    type Value = Vec<EnvelopeSignature>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SignaturesSeed {
    type Value = Vec<EnvelopeSignature>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of DSSE signatures")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(signature) = seq.next_element_seed(SignatureSeed(self.0))? {
            out.push(signature);
        }
        Ok(out)
    }
}

struct SignatureSeed(Acceptance);

impl<'de> DeserializeSeed<'de> for SignatureSeed {
    type Value = EnvelopeSignature;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_struct("EnvelopeSignature", SIGNATURE_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for SignatureSeed {
    type Value = EnvelopeSignature;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a DSSE signature (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut keyid, mut sig) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "keyid" => match self.0 {
                    Acceptance::Strict => once(&mut keyid, "keyid", A::next_value, &mut map)?,
                    Acceptance::Dsse => once(
                        &mut keyid,
                        "keyid",
                        |m| Ok(m.next_value::<Option<String>>()?.unwrap_or_default()),
                        &mut map,
                    )?,
                },
                "sig" => once(&mut sig, "sig", A::next_value, &mut map)?,
                other => unknown(self.0, other, SIGNATURE_FIELDS, &mut map)?,
            }
        }
        let keyid = match (keyid, self.0) {
            (Some(keyid), _) => keyid,
            (None, Acceptance::Dsse) => String::new(),
            (None, Acceptance::Strict) => return Err(de::Error::missing_field("keyid")),
        };
        Ok(EnvelopeSignature {
            keyid,
            sig: sig.ok_or_else(|| de::Error::missing_field("sig"))?,
        })
    }
}

#[cfg(test)]
mod tests;
