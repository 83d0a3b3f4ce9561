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
/// event would cost most of the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHead {
    /// Sequence number the bytes claim.
    pub seq: u64,
    /// Stream the bytes claim.
    pub stream: StreamId,
    /// Version the bytes claim.
    pub version: u64,
    /// The previous entry's hash the bytes claim.
    pub prev: Hash,
}

/// Decodes an entry's frame, strictly (unknown fields and a malformed `prev` are errors),
/// without building the event.
pub fn decode_frame(bytes: &[u8]) -> Result<FrameHead, String> {
    let frame: Frame<serde::de::IgnoredAny> =
        serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut prev = [0u8; 32];
    hex::decode_to_slice(&frame.prev, &mut prev)
        .map_err(|e| format!("`prev` is not a 32-byte hex hash: {e}"))?;
    Ok(FrameHead {
        seq: frame.seq,
        stream: frame.stream,
        version: frame.version,
        prev,
    })
}
