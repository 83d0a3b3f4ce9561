//! Log entries: how an event is framed, hashed and chained.
//!
//! An entry's bytes are the canonical JSON of
//! `{"at", "event", "prev", "schema", "seq", "stream", "version"}`. Its hash is the RFC 6962
//! leaf hash of exactly those bytes, and `prev` is the previous entry's hash, so the entries
//! form a hash chain and the leaves of a Merkle tree at once.
//!
//! # Schemas
//!
//! - **Schema 2** ([`SCHEMA_JCS`], written today): the bytes are the JSON Canonicalization
//!   Scheme of [RFC 8785] (JCS): keys sorted by their UTF-16 code units, no whitespace, strings
//!   escaped as ECMAScript's `JSON.stringify` does, numbers written as ECMAScript writes an
//!   IEEE 754 double (RFC 8785 §3.2.2.3: `1e+21`, `1e-7`, `-0` as `0`). Any JCS implementation
//!   re-creates them from the parsed entry, so an outside tool can recompute every leaf hash
//!   from an export line (`tests/outside/verify_export.py` does, with Python's standard
//!   library). The entry carries `"schema":2`.
//! - **Schema 1** (logs written before): serde_json's output with keys sorted by bytes and no
//!   `schema` member. Such entries keep verifying and importing exactly as before; they are
//!   never rewritten.
//!
//! ## Numbers
//!
//! A JCS number is an IEEE double, so an integer beyond ±(2^53 − 1) (JavaScript's
//! `Number.MAX_SAFE_INTEGER`) cannot be written exactly: a JCS library would silently round
//! it. The writer refuses it instead, with [`EncodeError::UnsafeInteger`] naming where it sits
//! (a JSON pointer into the event). That covers every integer an entry holds: the frame's
//! `seq` and `version`, and inside the event rounds, attempts, sizes, retry delays, rollout
//! percentages, pipeline versions and the free-form numbers of evidence `data` (metrics a gate
//! reports). The engine's own counters never come near 2^53; a gate that reports larger
//! integers (a 64-bit id, a byte count beyond 9 PB) must report them as strings. Floats are
//! kept to the bit, except that `-0.0` is written `0` (RFC 8785 §3.2.2.3) and an integral
//! float such as `3.0` is written `3`: JSON (and so JCS) has one number type, and the entry
//! reads back with the same IEEE value. One consequence: an [`Evidence`](promotion_core::Evidence)
//! digest (promotion-core's canonical JSON, which writes `3.0` and `3` apart) recomputed from
//! evidence read back can differ from the `evidence_digest` recorded beside it when the data
//! held integral floats; the recorded digest is the one to use (the evidence pack does).
//!
//! Strings: a Rust string cannot hold a lone UTF-16 surrogate, so the "lone surrogate" case
//! of RFC 8785 §3.2.2.2 cannot arise when writing; reading, serde_json refuses a `\ud800`
//! escape that is not part of a pair, so such an entry does not import.
//!
//! Framing is split in two: [`EncodedEvent::new`] (the event's canonical JSON, the costly part)
//! and [`encode_encoded`] (the frame around it, written directly); [`encode`] does both.
//!
//! [RFC 8785]: https://www.rfc-editor.org/rfc/rfc8785

use chrono::{DateTime, Utc};
use promotion_core::{Event, StreamId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::merkle::{leaf_hash, Hash};

/// The `prev` of the first entry.
pub const GENESIS_PREV: Hash = [0u8; 32];

/// An entry as stored: the exact bytes that were hashed, and where they sit.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Global sequence number, from 0: the entry's leaf index.
    pub seq: u64,
    pub stream: StreamId,
    /// Position in the stream, from 1.
    pub version: u64,
    /// The canonical JSON bytes of the entry.
    pub bytes: Vec<u8>,
    /// `leaf_hash(bytes)` as recorded at append time.
    pub hash: Hash,
}

/// The schema of the entries written today: RFC 8785 (JCS) bytes, `"schema":2` in the frame.
pub const SCHEMA_JCS: u64 = 2;

/// The largest integer an IEEE double holds exactly with every smaller one
/// (`Number.MAX_SAFE_INTEGER`, 2^53 − 1): the bound on every integer of a schema-2 entry.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why an entry could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The event does not serialise to JSON (a map with non-string keys, a non-finite float).
    #[error("the event does not serialise to JSON: {0}")]
    Serialize(String),
    /// An integer beyond ±(2^53 − 1): RFC 8785 numbers are IEEE doubles, which cannot hold it
    /// exactly, and the writer never rounds silently.
    #[error("the integer {value} at {at} is beyond ±(2^53 − 1), which RFC 8785 canonical JSON cannot hold exactly (write it as a string)")]
    UnsafeInteger {
        /// Where: a JSON pointer into the event (`/evidence/data/bytes`), or the frame
        /// member (`seq`, `version`).
        at: String,
        /// The integer, as the event held it.
        value: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Frame<E> {
    at: DateTime<Utc>,
    event: E,
    prev: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema: Option<u64>,
    seq: u64,
    stream: StreamId,
    version: u64,
}

/// The RFC 8785 canonical JSON bytes of one [`Event`]: the `event` member of an entry, ready to
/// be framed by [`encode_encoded`].
///
/// Encoding the event is most of the cost of framing an entry; doing it apart lets the caller
/// do it where it is cheap (the [`AuditStore`](crate::AuditStore) encodes on the appending
/// task, not on its single writer thread). The bytes can only come from [`EncodedEvent::new`],
/// so they are always canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent(Vec<u8>);

impl EncodedEvent {
    /// The RFC 8785 canonical JSON of `event`. Fails if the event does not serialise, or holds
    /// an integer JCS cannot write exactly ([`EncodeError::UnsafeInteger`]).
    pub fn new(event: &Event) -> Result<Self, EncodeError> {
        jcs(event).map(EncodedEvent)
    }

    /// The canonical JSON bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Frames `event` as entry `seq` of the log, version `version` of `stream`, chained to `prev`:
/// the same as [`EncodedEvent::new`] then [`encode_encoded`].
pub fn encode(
    seq: u64,
    stream: &StreamId,
    version: u64,
    at: DateTime<Utc>,
    prev: &Hash,
    event: &Event,
) -> Result<StoredEntry, EncodeError> {
    let event = EncodedEvent::new(event)?;
    encode_encoded(seq, stream, version, at, prev, &event)
}

/// The RFC 8785 canonical JSON of any value, refusing integers beyond ±(2^53 − 1).
pub fn jcs<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let value = serde_json::to_value(value).map_err(|e| EncodeError::Serialize(e.to_string()))?;
    let mut at = String::new();
    check_safe_integers(&value, &mut at)?;
    serde_json_canonicalizer::to_vec(&value).map_err(|e| EncodeError::Serialize(e.to_string()))
}

/// Refuses any integer of `value` beyond ±(2^53 − 1), naming it by its JSON pointer (`at` is
/// the pointer of `value`, restored on return).
fn check_safe_integers(value: &Value, at: &mut String) -> Result<(), EncodeError> {
    match value {
        Value::Number(n) => {
            let safe = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u <= MAX_SAFE_INTEGER,
                (None, Some(i)) => i.unsigned_abs() <= MAX_SAFE_INTEGER,
                (None, None) => true, // a float: written as the double it is
            };
            if !safe {
                return Err(EncodeError::UnsafeInteger {
                    at: if at.is_empty() {
                        "/".into()
                    } else {
                        at.clone()
                    },
                    value: n.to_string(),
                });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = at.len();
                at.push('/');
                at.push_str(&i.to_string());
                check_safe_integers(item, at)?;
                at.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = at.len();
                at.push('/');
                // RFC 6901 escapes.
                at.push_str(&key.replace('~', "~0").replace('/', "~1"));
                check_safe_integers(item, at)?;
                at.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
    Ok(())
}

/// Refuses a frame integer (`seq`, `version`) JCS cannot write exactly.
fn safe_frame_integer(what: &str, n: u64) -> Result<(), EncodeError> {
    if n > MAX_SAFE_INTEGER {
        return Err(EncodeError::UnsafeInteger {
            at: what.into(),
            value: n.to_string(),
        });
    }
    Ok(())
}

/// Room for everything in an entry but the event and the stream name (keys and punctuation,
/// the time, `prev`, two 20-digit numbers), so that framing allocates once.
const FRAME_OVERHEAD: usize = 200;

/// Frames an already encoded event as entry `seq` of the log, version `version` of `stream`,
/// chained to `prev`, in schema 2 ([`SCHEMA_JCS`]).
///
/// It writes the RFC 8785 canonical JSON of the frame directly (the keys in their JCS order,
/// all ASCII; the time and the stream name written by serde_json, whose string escapes are
/// JCS's; integers in plain digits, as ECMAScript writes a double below 10^21), without
/// building a `serde_json::Value`: the bytes are exactly those a JCS library gives for the
/// frame. Fails only for a `seq` or `version` beyond 2^53 − 1.
pub fn encode_encoded(
    seq: u64,
    stream: &StreamId,
    version: u64,
    at: DateTime<Utc>,
    prev: &Hash,
    event: &EncodedEvent,
) -> Result<StoredEntry, EncodeError> {
    safe_frame_integer("seq", seq)?;
    safe_frame_integer("version", version)?;
    let mut bytes = Vec::with_capacity(FRAME_OVERHEAD + stream.as_str().len() + event.0.len());
    write_frame(&mut bytes, seq, stream, version, at, prev, event)
        .map_err(|e| EncodeError::Serialize(e.to_string()))?;
    let hash = leaf_hash(&bytes);
    Ok(StoredEntry {
        seq,
        stream: stream.clone(),
        version,
        bytes,
        hash,
    })
}

/// Writes the frame's canonical JSON: keys in JCS order, strings and numbers as serde_json
/// writes them (which for these values is as JCS does), the event's bytes as they are.
fn write_frame(
    bytes: &mut Vec<u8>,
    seq: u64,
    stream: &StreamId,
    version: u64,
    at: DateTime<Utc>,
    prev: &Hash,
    event: &EncodedEvent,
) -> Result<(), serde_json::Error> {
    bytes.extend_from_slice(b"{\"at\":");
    serde_json::to_writer(&mut *bytes, &at)?;
    bytes.extend_from_slice(b",\"event\":");
    bytes.extend_from_slice(&event.0);
    bytes.extend_from_slice(b",\"prev\":\"");
    for b in prev {
        bytes.push(hex_digit(b >> 4));
        bytes.push(hex_digit(b & 0x0f));
    }
    bytes.extend_from_slice(b"\",\"schema\":2,\"seq\":");
    serde_json::to_writer(&mut *bytes, &seq)?;
    bytes.extend_from_slice(b",\"stream\":");
    serde_json::to_writer(&mut *bytes, stream.as_str())?;
    bytes.extend_from_slice(b",\"version\":");
    serde_json::to_writer(&mut *bytes, &version)?;
    bytes.push(b'}');
    Ok(())
}

/// The lowercase hex digit of a nibble (as `hex::encode` writes it).
fn hex_digit(nibble: u8) -> u8 {
    if nibble < 10 {
        b'0' + nibble
    } else {
        b'a' + (nibble - 10)
    }
}

/// An entry decoded from its bytes.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEntry {
    /// Sequence number the bytes claim.
    pub seq: u64,
    /// Stream the bytes claim.
    pub stream: StreamId,
    /// Version the bytes claim.
    pub version: u64,
    /// When it was appended.
    pub at: DateTime<Utc>,
    /// The previous entry's hash the bytes claim.
    pub prev: Hash,
    /// The entry's schema: 1 (no `schema` member) or [`SCHEMA_JCS`].
    pub schema: u64,
    pub event: Event,
}

/// Decodes entry bytes, strictly: unknown fields, a malformed `prev` or an event that does not
/// parse are errors.
pub fn decode(bytes: &[u8]) -> Result<DecodedEntry, String> {
    let frame: Frame<Event> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let schema = entry_schema(frame.schema)?;
    let mut prev = [0u8; 32];
    hex::decode_to_slice(&frame.prev, &mut prev)
        .map_err(|e| format!("`prev` is not a 32-byte hex hash: {e}"))?;
    Ok(DecodedEntry {
        seq: frame.seq,
        stream: frame.stream,
        version: frame.version,
        at: frame.at,
        prev,
        schema,
        event: frame.event,
    })
}

/// The schema an entry's `schema` member names: absent is schema 1.
fn entry_schema(member: Option<u64>) -> Result<u64, String> {
    match member {
        None => Ok(1),
        Some(SCHEMA_JCS) => Ok(SCHEMA_JCS),
        Some(other) => Err(format!(
            "entry schema {other} is unknown (this version reads 1 and {SCHEMA_JCS})"
        )),
    }
}

/// Checks that a schema-2 entry's bytes are exactly their RFC 8785 canonical form (what an
/// import requires, so that every imported entry re-hashes outside the project): parsed and
/// canonicalized again, they must come out the same. Schema-1 entries pass as they are.
pub fn check_canonical(bytes: &[u8]) -> Result<(), String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if value.get("schema").is_none() {
        return Ok(());
    }
    // The canonicalizer itself, not `jcs`: an integer token beyond 2^53 can be the exact
    // text of a double (`2009485676415187200`, written for the float 2.0094856764151872e18);
    // the canonicalizer reads it as that double, and one that is no double's text comes out
    // different and is refused below.
    let again = serde_json_canonicalizer::to_vec(&value).map_err(|e| e.to_string())?;
    if again != bytes {
        let at = again
            .iter()
            .zip(bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(again.len().min(bytes.len()));
        return Err(format!(
            "a schema-{SCHEMA_JCS} entry is not in RFC 8785 canonical form (byte {at} differs from the canonical bytes)"
        ));
    }
    Ok(())
}

/// The frame of an entry: everything but the event. Verification uses it: the event's bytes
/// are covered by the entry hash, so they are delimited, not parsed (parsing every event took
/// most of verification's time). It borrows from the entry's bytes: verifying allocates nothing
/// per entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHead<'a> {
    /// Sequence number the bytes claim.
    pub seq: u64,
    /// Stream the bytes claim (not checked as a stream name: compare it with one). Borrowed
    /// unless the name needed JSON escapes.
    pub stream: std::borrow::Cow<'a, str>,
    /// Version the bytes claim.
    pub version: u64,
    /// The previous entry's hash the bytes claim.
    pub prev: Hash,
    /// The entry's schema: 1 or [`SCHEMA_JCS`].
    pub schema: u64,
}

/// The last index of `needle` in `hay`. The needles here are found within a few candidates
/// of the end, where a backward scan for their first byte beats building a substring searcher.
fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let mut end = hay.len();
    while let Some(i) = memchr::memrchr(first, hay.get(..end)?) {
        if hay.get(i..i + needle.len()) == Some(needle) {
            return Some(i);
        }
        end = i;
    }
    None
}

/// A JSON number as the canonical form writes a `u64`: digits, no sign, no leading zero; in
/// schema 2, no more than 2^53 − 1.
fn canonical_u64(digits: &[u8], what: &str, schema: u64) -> Result<u64, String> {
    let ok = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits.len() == 1 || digits.first() != Some(&b'0'));
    ok.then(|| std::str::from_utf8(digits).ok()?.parse().ok())
        .flatten()
        .filter(|n| schema == 1 || *n <= MAX_SAFE_INTEGER)
        .ok_or_else(|| {
            format!(
                "`{what}` is not a canonical unsigned integer: {:?}",
                String::from_utf8_lossy(digits)
            )
        })
}

/// Decodes an entry's frame, strictly, without parsing the event: the bytes must have the
/// canonical layout `{"at":"…","event":{…},"prev":"<64 hex>","schema":2,"seq":N,"stream":"…","version":V}`
/// (schema 1: without `"schema":2`) exactly (a field missing, added, reordered or escaped where the canonical form never escapes
/// is an error naming what was expected). The event is only delimited: a JSON string can hold
/// no unescaped `"`, so the last `,"prev":"` in the bytes is the frame's own, whatever the event
/// contains. The stream name is read by serde_json; nothing is allocated unless it needed
/// escapes.
pub fn decode_frame(bytes: &[u8]) -> Result<FrameHead<'_>, String> {
    let raw = split_frame(bytes)?;
    let mut prev = [0u8; 32];
    hex::decode_to_slice(raw.prev_hex, &mut prev)
        .map_err(|e| format!("`prev` is not a 32-byte hex hash: {e}"))?;
    Ok(FrameHead {
        seq: raw.seq,
        stream: raw.stream,
        version: raw.version,
        prev,
        schema: raw.schema,
    })
}

/// A frame whose `prev` is left as its 64 hex digits: verification compares them with the
/// previous hash hex-encoded (decoding random hex digits costs a branch misprediction per
/// digit, more than the rest of the frame).
pub(crate) struct RawFrame<'a> {
    pub(crate) seq: u64,
    pub(crate) stream: std::borrow::Cow<'a, str>,
    pub(crate) version: u64,
    pub(crate) prev_hex: &'a [u8],
    pub(crate) schema: u64,
}

/// [`decode_frame`] without decoding `prev`.
pub(crate) fn split_frame(bytes: &[u8]) -> Result<RawFrame<'_>, String> {
    const AT: &[u8] = b"{\"at\":\"";
    const EVENT: &[u8] = b"\",\"event\":{";
    const PREV: &[u8] = b"},\"prev\":\"";
    const SEQ: &[u8] = b"\",\"seq\":";
    const SCHEMA_SEQ: &[u8] = b"\",\"schema\":2,\"seq\":";
    const STREAM: &[u8] = b",\"stream\":";
    const VERSION: &[u8] = b",\"version\":";
    let layout = |what: &str| format!("not a canonical entry frame: {what}");
    let rest = bytes
        .strip_prefix(AT)
        .ok_or_else(|| layout("it does not start with `{\"at\":\"`"))?;
    // `at` is an RFC 3339 time: no quotes, no escapes.
    let at_end = memchr::memchr2(b'"', b'\\', rest).ok_or_else(|| layout("`at` is not closed"))?;
    let rest = rest.get(at_end..).unwrap_or_default();
    let event_and_tail = rest
        .strip_prefix(EVENT)
        .ok_or_else(|| layout("`at` is not followed by an `event` object"))?;
    let prev_at = rfind(event_and_tail, PREV)
        .ok_or_else(|| layout("the `event` object is not followed by `prev`"))?;
    let tail = event_and_tail
        .get(prev_at + PREV.len()..)
        .unwrap_or_default();
    let (prev_hex, tail) = (
        tail.get(..64).unwrap_or(tail),
        tail.get(64..).unwrap_or_default(),
    );
    let (schema, tail) = match tail.strip_prefix(SCHEMA_SEQ) {
        Some(tail) => (SCHEMA_JCS, tail),
        None => (
            1,
            tail.strip_prefix(SEQ)
                .ok_or_else(|| layout("`prev` is not followed by `seq`"))?,
        ),
    };
    let seq_end = tail
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(tail.len());
    let seq = canonical_u64(tail.get(..seq_end).unwrap_or_default(), "seq", schema)?;
    let tail = tail
        .get(seq_end..)
        .and_then(|t| t.strip_prefix(STREAM))
        .ok_or_else(|| layout("`seq` is not followed by `stream`"))?;
    // The stream name is a JSON string, which holds no unescaped `"`: the last `,"version":` is
    // the frame's.
    let version_at =
        rfind(tail, VERSION).ok_or_else(|| layout("`stream` is not followed by `version`"))?;
    let name = tail.get(..version_at).unwrap_or_default();
    let stream = match serde_json::from_slice::<&str>(name) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(
            serde_json::from_slice::<String>(name)
                .map_err(|e| format!("`stream` is not a JSON string: {e}"))?,
        ),
    };
    let version = tail
        .get(version_at + VERSION.len()..)
        .and_then(|t| t.strip_suffix(b"}"))
        .ok_or_else(|| layout("it does not end after `version`"))?;
    let version = canonical_u64(version, "version", schema)?;
    Ok(RawFrame {
        seq,
        stream,
        version,
        prev_hex,
        schema,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use promotion_core::{
        Actor, EventBody, Evidence, GateName, Outcome, PhaseId, RequestId, StageName,
    };
    use proptest::prelude::*;

    fn entry(stream: &str) -> StoredEntry {
        let at: DateTime<Utc> = "2026-11-26T09:00:00Z".parse().unwrap();
        let event = Event {
            at,
            actor: Actor::Engine,
            request: None,
            body: EventBody::StageReady {
                stage: StageName::new("dev").unwrap(),
            },
        };
        encode(
            3,
            &StreamId::new(stream).unwrap(),
            2,
            at,
            &[7u8; 32],
            &event,
        )
        .unwrap()
    }

    /// The reference framing: the whole frame through a JCS library (`serde_json_canonicalizer`),
    /// built as a struct.
    fn reference(
        seq: u64,
        stream: &StreamId,
        version: u64,
        at: DateTime<Utc>,
        prev: &Hash,
        event: &Event,
    ) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(&Frame {
            at,
            event,
            prev: hex::encode(prev),
            schema: Some(SCHEMA_JCS),
            seq,
            stream: stream.clone(),
            version,
        })
        .unwrap()
    }

    fn stage_ready(at: DateTime<Utc>) -> Event {
        Event {
            at,
            actor: Actor::Engine,
            request: None,
            body: EventBody::StageReady {
                stage: StageName::new("dev").unwrap(),
            },
        }
    }

    /// A gate's pass with evidence, as the engine records it (about 700 bytes framed).
    fn gate_evaluated(at: DateTime<Utc>, summary: &str, round: u32) -> Event {
        let gate = GateName::new("error-rate").unwrap();
        let evidence = Evidence::new("prometheus:error-rate", at, summary)
            .with_data(serde_json::json!({ "value": 0.12, "threshold": 1.0, "window": "5m" }))
            .with_fact("risk", "low");
        Event {
            at,
            actor: Actor::Gate { name: gate.clone() },
            request: Some(RequestId::new("req-1").unwrap()),
            body: EventBody::GateEvaluated {
                stage: StageName::new("production").unwrap(),
                phase: PhaseId::Verification,
                round,
                gate,
                outcome: Outcome::Pass,
                attempts: 1,
                evidence_digest: Some(evidence.digest()),
                evidence: Some(Box::new(evidence)),
            },
        }
    }

    /// Frames with both paths, checks the bytes and hash agree, and that both decoders read the
    /// fields back.
    fn check_framing(
        seq: u64,
        stream: &StreamId,
        version: u64,
        at: DateTime<Utc>,
        prev: &Hash,
        event: &Event,
    ) {
        let expected = reference(seq, stream, version, at, prev, event);
        let encoded = EncodedEvent::new(event).unwrap();
        assert_eq!(
            encoded.as_bytes(),
            &serde_json_canonicalizer::to_vec(event).unwrap()[..]
        );
        let fast = encode_encoded(seq, stream, version, at, prev, &encoded).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&fast.bytes),
            String::from_utf8_lossy(&expected)
        );
        assert_eq!(fast.bytes, expected);
        assert_eq!(fast.hash, leaf_hash(&expected));
        assert_eq!(
            (fast.seq, &fast.stream, fast.version),
            (seq, stream, version)
        );
        assert_eq!(encode(seq, stream, version, at, prev, event).unwrap(), fast);
        let full = decode(&fast.bytes).unwrap();
        assert_eq!(
            (full.seq, &full.stream, full.version, full.at, full.prev),
            (seq, stream, version, at, *prev)
        );
        assert_eq!(full.schema, SCHEMA_JCS);
        check_canonical(&fast.bytes).unwrap();
        // JSON has one number type: an integral float (`1.0`) reads back as the integer of the
        // same value, so the event is compared by what it encodes to.
        assert_eq!(
            EncodedEvent::new(&full.event).unwrap(),
            encoded,
            "the decoded event encodes to the same bytes"
        );
        let head = decode_frame(&fast.bytes).unwrap();
        assert_eq!(
            (head.seq, &*head.stream, head.version, head.prev),
            (seq, stream.as_str(), version, *prev)
        );
    }

    #[test]
    fn direct_framing_matches_the_canonical_json_of_the_frame() {
        let whole: DateTime<Utc> = "2026-11-26T09:00:00Z".parse().unwrap();
        let millis: DateTime<Utc> = "2026-11-26T09:00:00.250Z".parse().unwrap();
        let nanos: DateTime<Utc> = "1969-07-20T20:17:40.000000001Z".parse().unwrap();
        let leap: DateTime<Utc> = "2016-12-31T23:59:60.5Z".parse().unwrap();
        let streams = [
            "release-1",
            r#"we"ird\name"#,
            "é 漢字 😀/\u{2028}\u{ad}x",
            r#"a</script>\"b"#,
        ];
        for stream in streams {
            let stream = StreamId::new(stream).unwrap();
            for at in [whole, millis, nanos, leap] {
                for (seq, version) in [
                    (0, 0),
                    (3, 2),
                    (MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
                    (0, MAX_SAFE_INTEGER),
                ] {
                    for prev in [GENESIS_PREV, [0xa5; 32], [0xff; 32]] {
                        check_framing(seq, &stream, version, at, &prev, &stage_ready(at));
                        let gate = gate_evaluated(at, "error rate 0.12 % \"ok\"\n", 7);
                        check_framing(seq, &stream, version, at, &prev, &gate);
                    }
                }
            }
        }
    }

    #[test]
    fn direct_framing_writes_the_documented_layout() {
        let at: DateTime<Utc> = "2026-11-26T09:00:00.5Z".parse().unwrap();
        let event = stage_ready(at);
        let encoded = EncodedEvent::new(&event).unwrap();
        let stream = StreamId::new(r#"we"ird\name"#).unwrap();
        let e = encode_encoded(MAX_SAFE_INTEGER, &stream, 0, at, &[0xab; 32], &encoded).unwrap();
        let event_json = String::from_utf8(encoded.as_bytes().to_vec()).unwrap();
        assert_eq!(
            String::from_utf8(e.bytes).unwrap(),
            format!(
                r#"{{"at":"2026-11-26T09:00:00.500Z","event":{event_json},"prev":"{}","schema":2,"seq":9007199254740991,"stream":"we\"ird\\name","version":0}}"#,
                "ab".repeat(32)
            )
        );
    }

    fn arb_stream() -> impl Strategy<Value = StreamId> {
        prop_oneof![
            "[a-z0-9-]{1,70}",
            "[a-z\"\\\\/ é漢😀\u{2028}<>&'\u{ad}]{1,30}",
            "\\PC{1,40}",
        ]
        .prop_filter_map("not a valid stream name", |s| StreamId::new(s).ok())
    }

    fn arb_time() -> impl Strategy<Value = DateTime<Utc>> {
        // Years 0 to 9999, whole seconds or not, leap seconds included where chrono has them.
        (
            -62_167_219_200i64..253_402_300_800,
            prop_oneof![Just(0u32), 0u32..1_000_000_000, 0u32..2_000_000_000],
        )
            .prop_filter_map("not a time", |(secs, nanos)| {
                DateTime::from_timestamp(secs, nanos)
            })
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        (
            arb_time(),
            0usize..4,
            "\\PC{0,40}",
            any::<u32>(),
            -(MAX_SAFE_INTEGER as i64)..=MAX_SAFE_INTEGER as i64,
        )
            .prop_map(|(at, kind, text, round, n)| match kind {
                0 => stage_ready(at),
                1 => gate_evaluated(at, &text, round),
                2 => Event {
                    at,
                    actor: Actor::Engine,
                    request: None,
                    body: EventBody::GateEvaluated {
                        stage: StageName::new("canary").unwrap(),
                        phase: PhaseId::Analysis { step: round },
                        round,
                        gate: GateName::new("latency").unwrap(),
                        outcome: Outcome::Error {
                            message: text.clone(),
                        },
                        attempts: 3,
                        evidence_digest: None,
                        evidence: Some(Box::new(
                            Evidence::new(text.clone(), at, "s")
                                .with_data(
                                    serde_json::json!({ "n": n, "k": [text, {"b": 1, "a": null}] }),
                                )
                                .with_attachment("junit.xml", b"<x/>"),
                        )),
                    },
                },
                _ => Event {
                    at,
                    actor: Actor::Engine,
                    request: None,
                    body: EventBody::PipelineVersionAdopted {
                        from: text,
                        to: n.to_string(),
                    },
                },
            })
    }

    proptest! {
        #[test]
        fn direct_framing_is_byte_identical_to_the_canonical_json_of_the_frame(
            seq in prop_oneof![Just(0u64), Just(MAX_SAFE_INTEGER), 0..=MAX_SAFE_INTEGER],
            version in prop_oneof![Just(0u64), Just(MAX_SAFE_INTEGER), 0..=MAX_SAFE_INTEGER],
            stream in arb_stream(),
            at in arb_time(),
            prev in any::<[u8; 32]>(),
            event in arb_event(),
        ) {
            check_framing(seq, &stream, version, at, &prev, &event);
        }
    }

    #[test]
    fn frames_decode_without_the_event_and_agree_with_full_decoding() {
        let e = entry("release-1");
        let head = decode_frame(&e.bytes).unwrap();
        assert_eq!((head.seq, head.version, head.prev), (3, 2, [7u8; 32]));
        assert_eq!(head.stream, "release-1");
        let full = decode(&e.bytes).unwrap();
        assert_eq!((full.seq, full.stream.as_str()), (3, "release-1"));
    }

    #[test]
    fn stream_names_that_need_json_escapes_still_decode() {
        let e = entry(r#"we"ird\name"#);
        assert_eq!(decode_frame(&e.bytes).unwrap().stream, r#"we"ird\name"#);
    }

    #[test]
    fn frames_with_unknown_or_missing_fields_are_refused() {
        let e = entry("s");
        let text = String::from_utf8(e.bytes).unwrap();
        let refused = |text: String, why: &str| {
            let err = decode_frame(text.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        };
        refused(
            text.replacen("{", r#"{"extra":1,"#, 1),
            "does not start with",
        );
        refused(
            text.replacen(r#""schema":2,"seq":3,"#, "", 1),
            "not followed by `seq`",
        );
        refused(
            text.replacen(r#","stream":"s""#, "", 1),
            "not followed by `stream`",
        );
        refused(
            text.replacen(r#""version":2}"#, r#""version":2,"x":1}"#, 1),
            "version",
        );
        refused(
            text.replacen(r#""version":2}"#, r#""version":02}"#, 1),
            "canonical unsigned",
        );
        refused(
            text.replacen(r#""seq":3"#, r#""seq":-3"#, 1),
            "canonical unsigned",
        );
        refused(
            text.replacen(r#""seq":3"#, r#""seq":99999999999999999999"#, 1),
            "seq",
        );
        // Schema 2 holds no integer beyond 2^53 - 1.
        refused(
            text.replacen(r#""seq":3"#, r#""seq":9007199254740992"#, 1),
            "seq",
        );
        refused(text.replacen(&hex::encode([7u8; 32]), "zz", 1), "prev");
        refused(
            text.replacen(r#""event":{"#, r#""event":["#, 1),
            "`event` object",
        );
        refused(
            text.replacen(r#"Z","event""#, r#"Z\"","event""#, 1),
            "`event` object",
        );
        refused(format!("{text} "), "does not end after `version`");
        refused(
            text.replacen(r#""stream":"s""#, r#""stream":s"#, 1),
            "not a JSON string",
        );
        // Whatever the event holds, the frame's own fields are the ones read.
        let tricky = entry(r#"x","version":9,"prev":"#);
        let head = decode_frame(&tricky.bytes).unwrap();
        assert_eq!(
            (head.stream.as_ref(), head.version),
            (r#"x","version":9,"prev":"#, 2)
        );
    }
}

#[cfg(test)]
mod jcs_tests {
    //! RFC 8785's own examples, and the writer's refusals.
    use super::*;
    use serde_json::json;

    fn jcs_text(v: &Value) -> String {
        String::from_utf8(jcs(v).unwrap()).unwrap()
    }

    /// RFC 8785 Appendix B: every finite row of its table of IEEE 754 doubles (as bit
    /// patterns) and their canonical text (the other rows, NaN and Infinity, cannot be held by
    /// a JSON value at all).
    #[test]
    fn numbers_are_written_as_rfc_8785_appendix_b_says() {
        let table: [(u64, &str); 24] = [
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, text) in table {
            assert_eq!(jcs_text(&json!(f64::from_bits(bits))), text, "{bits:016x}");
        }
    }

    /// RFC 8785 §3.2.3 (sorting of object properties): the example object, sorted by UTF-16
    /// code units (so U+1F600, a surrogate pair starting 0xD83D, sorts before U+FB33).
    #[test]
    fn properties_sort_by_utf16_code_units_as_rfc_8785_3_2_3_shows() {
        let v: Value = serde_json::from_str(
            r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        let values: Vec<String> =
            serde_json::from_slice::<serde_json::Map<String, Value>>(&jcs(&v).unwrap())
                .unwrap()
                .values()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
        // serde_json's map keeps its own order, so read the order from the text instead.
        let text = jcs_text(&v);
        let order: Vec<usize> = values
            .iter()
            .map(|v| text.find(&format!("\"{v}\"")).unwrap())
            .collect();
        let mut by_position: Vec<(usize, &String)> = order.into_iter().zip(&values).collect();
        by_position.sort();
        let names: Vec<&str> = by_position.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            names,
            [
                "Carriage Return",
                "One",
                "Control",
                "Latin Small Letter O With Diaeresis",
                "Euro Sign",
                "Emoji: Grinning Face",
                "Hebrew Letter Dalet With Dagesh",
            ]
        );
    }

    /// RFC 8785 §3.2.2 and §3.2.4: the example object's `string` member (`"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/"`
    /// in its input) is written `"€$\u000f\nA'B\"\\\\\"/"`: UTF-8 kept, lowercase `\u000f`,
    /// `\n`, and `/` unescaped; and its `literals` and `numbers` members as §3.2.2 shows.
    #[test]
    fn the_rfc_8785_3_2_2_example_is_written_as_published() {
        let input = r#"{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}"#;
        let v: Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            jcs_text(&v),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn integers_beyond_2_pow_53_are_refused_where_they_sit() {
        let ok = json!({ "a": [MAX_SAFE_INTEGER, -(MAX_SAFE_INTEGER as i64)] });
        assert_eq!(
            jcs_text(&ok),
            "{\"a\":[9007199254740991,-9007199254740991]}"
        );
        for (v, at, value) in [
            (
                json!({ "a": { "b/c": [1, MAX_SAFE_INTEGER + 1] } }),
                "/a/b~1c/1",
                "9007199254740992",
            ),
            (json!({ "n": i64::MIN }), "/n", "-9223372036854775808"),
            (json!(u64::MAX), "/", "18446744073709551615"),
        ] {
            assert_eq!(
                jcs(&v).unwrap_err(),
                EncodeError::UnsafeInteger {
                    at: at.into(),
                    value: value.into()
                }
            );
        }
        let event = EncodedEvent::new(&Event {
            at: "2026-11-26T09:00:00Z".parse().unwrap(),
            actor: promotion_core::Actor::Engine,
            request: None,
            body: promotion_core::EventBody::StageReady {
                stage: promotion_core::StageName::new("dev").unwrap(),
            },
        })
        .unwrap();
        let at = "2026-11-26T09:00:00Z".parse().unwrap();
        let s = StreamId::new("s").unwrap();
        assert!(matches!(
            encode_encoded(MAX_SAFE_INTEGER + 1, &s, 1, at, &GENESIS_PREV, &event),
            Err(EncodeError::UnsafeInteger { at, .. }) if at == "seq"
        ));
        assert!(matches!(
            encode_encoded(0, &s, u64::MAX, at, &GENESIS_PREV, &event),
            Err(EncodeError::UnsafeInteger { at, .. }) if at == "version"
        ));
    }

    #[test]
    fn non_canonical_schema_2_bytes_are_refused_and_schema_1_passes() {
        let at = "2026-11-26T09:00:00Z".parse().unwrap();
        let event = EncodedEvent::new(&Event {
            at,
            actor: promotion_core::Actor::Engine,
            request: None,
            body: promotion_core::EventBody::StageReady {
                stage: promotion_core::StageName::new("dev").unwrap(),
            },
        })
        .unwrap();
        let e = encode_encoded(
            0,
            &StreamId::new("s").unwrap(),
            1,
            at,
            &GENESIS_PREV,
            &event,
        )
        .unwrap();
        check_canonical(&e.bytes).unwrap();
        let text = String::from_utf8(e.bytes).unwrap();
        for bad in [
            text.replacen("\"seq\":0", "\"seq\":0.0", 1),
            text.replacen("\"kind\":\"engine\"", "\"kind\":\"\\u0065ngine\"", 1),
            text.replacen(",\"at\":", ", \"at\":", 1),
        ] {
            assert_ne!(bad, text);
            assert!(check_canonical(bad.as_bytes()).is_err(), "{bad}");
        }
        // A big integral float is written as plain digits (its JCS text) and re-checks as
        // canonical; digits that are no double's shortest text do not.
        let big = jcs(&serde_json::json!({ "f": 2.009_485_676_415_187_2e18 })).unwrap();
        assert_eq!(big, br#"{"f":2009485676415187200}"#);
        let with =
            |x: &str| text.replacen("\"version\":1}", &format!("\"version\":1,\"x\":{x}}}"), 1);
        check_canonical(with("2009485676415187200").as_bytes()).unwrap();
        assert!(check_canonical(with("9007199254740993").as_bytes()).is_err());
        assert!(check_canonical(with("1E3").as_bytes()).is_err());
        let v1 = text.replacen("\"schema\":2,", "", 1);
        check_canonical(v1.as_bytes()).unwrap();
        assert_eq!(decode(v1.as_bytes()).unwrap().schema, 1);
        assert_eq!(decode_frame(v1.as_bytes()).unwrap().schema, 1);
        let v3 = text.replacen("\"schema\":2,", "\"schema\":3,", 1);
        assert!(decode(v3.as_bytes())
            .unwrap_err()
            .contains("schema 3 is unknown"));
    }
}
