//! Log entries: how an event is framed, hashed and chained.
//!
//! An entry's bytes are the canonical JSON of
//! `{"at", "event", "prev", "seq", "stream", "version"}` (keys sorted, no whitespace). Its hash
//! is the RFC 6962 leaf hash of exactly those bytes, and `prev` is the previous entry's hash, so
//! the entries form a hash chain and the leaves of a Merkle tree at once.

use chrono::{DateTime, Utc};
use promotion_core::{canonical_json, Event, StreamId};
use serde::{Deserialize, Serialize};

use crate::merkle::{leaf_hash, Hash};

/// The `prev` of the first entry.
pub const GENESIS_PREV: Hash = [0u8; 32];

/// An entry as stored: the exact bytes that were hashed, and where they sit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Global sequence number, from 0: the entry's leaf index.
    pub seq: u64,
    /// The stream.
    pub stream: StreamId,
    /// Position in the stream, from 1.
    pub version: u64,
    /// The canonical JSON bytes of the entry.
    pub bytes: Vec<u8>,
    /// `leaf_hash(bytes)` as recorded at append time.
    pub hash: Hash,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Frame<E> {
    at: DateTime<Utc>,
    event: E,
    prev: String,
    seq: u64,
    stream: StreamId,
    version: u64,
}

/// Frames `event` as entry `seq` of the log, version `version` of `stream`, chained to `prev`.
pub fn encode(
    seq: u64,
    stream: &StreamId,
    version: u64,
    at: DateTime<Utc>,
    prev: &Hash,
    event: &Event,
) -> Result<StoredEntry, serde_json::Error> {
    let frame = Frame {
        at,
        event,
        prev: hex::encode(prev),
        seq,
        stream: stream.clone(),
        version,
    };
    let bytes = canonical_json(&frame)?;
    let hash = leaf_hash(&bytes);
    Ok(StoredEntry {
        seq,
        stream: stream.clone(),
        version,
        bytes,
        hash,
    })
}

/// An entry decoded from its bytes.
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
    /// The event.
    pub event: Event,
}

/// Decodes entry bytes, strictly: unknown fields, a malformed `prev` or an event that does not
/// parse are errors.
pub fn decode(bytes: &[u8]) -> Result<DecodedEntry, String> {
    let frame: Frame<Event> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut prev = [0u8; 32];
    hex::decode_to_slice(&frame.prev, &mut prev)
        .map_err(|e| format!("`prev` is not a 32-byte hex hash: {e}"))?;
    Ok(DecodedEntry {
        seq: frame.seq,
        stream: frame.stream,
        version: frame.version,
        at: frame.at,
        prev,
        event: frame.event,
    })
}

/// The frame of an entry: everything but the event, which is checked to be JSON and skipped.
/// Verification uses it: the event's bytes are covered by the entry hash, and decoding every
/// event would cost most of the time. It borrows from the entry's bytes: verifying allocates
/// nothing per entry.
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BorrowedFrame<'a> {
    #[serde(borrow)]
    at: &'a str,
    event: serde::de::IgnoredAny,
    #[serde(borrow)]
    prev: &'a str,
    seq: u64,
    #[serde(borrow)]
    stream: std::borrow::Cow<'a, str>,
    version: u64,
}

/// Decodes an entry's frame, strictly (unknown fields, a missing one, a malformed `prev`, or
/// escapes in `at` or `prev`, which the canonical form never has, are errors), without building
/// the event and without allocating (unless the stream name needed escapes).
pub fn decode_frame(bytes: &[u8]) -> Result<FrameHead<'_>, String> {
    let frame: BorrowedFrame<'_> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let _ = (frame.at, frame.event);
    let mut prev = [0u8; 32];
    hex::decode_to_slice(frame.prev, &mut prev)
        .map_err(|e| format!("`prev` is not a 32-byte hex hash: {e}"))?;
    Ok(FrameHead {
        seq: frame.seq,
        stream: frame.stream,
        version: frame.version,
        prev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use promotion_core::{Actor, EventBody, StageName};

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
        let extra = text.replacen("{", r#"{"extra":1,"#, 1);
        assert!(decode_frame(extra.as_bytes())
            .unwrap_err()
            .contains("unknown field"));
        let missing = text.replacen(r#""seq":3,"#, "", 1);
        assert!(decode_frame(missing.as_bytes())
            .unwrap_err()
            .contains("missing field"));
        let bad_prev = text.replacen(&hex::encode([7u8; 32]), "zz", 1);
        assert!(decode_frame(bad_prev.as_bytes())
            .unwrap_err()
            .contains("prev"));
    }
}
