//! Log entries: how an event is framed, hashed and chained.
//!
//! An entry's bytes are the canonical JSON of
//! `{"at", "event", "prev", "seq", "stream", "version"}` (keys sorted, no whitespace). Its hash
//! is the RFC 6962 leaf hash of exactly those bytes, and `prev` is the previous entry's hash, so
//! the entries form a hash chain and the leaves of a Merkle tree at once.
//!
//! Framing is split in two: [`EncodedEvent::new`] (the event's canonical JSON, the costly part)
//! and [`encode_encoded`] (the frame around it, written directly); [`encode`] does both.

use chrono::{DateTime, Utc};
use promotion_core::{canonical_json, Event, StreamId};
use serde::{Deserialize, Serialize};

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

/// The canonical JSON bytes of one [`Event`], exactly as [`canonical_json`] gives them: the
/// `event` member of an entry, ready to be framed by [`encode_encoded`].
///
/// Encoding the event is most of the cost of framing an entry; doing it apart lets the caller
/// do it where it is cheap (the [`AuditStore`](crate::AuditStore) encodes on the appending
/// task, not on its single writer thread). The bytes can only come from [`EncodedEvent::new`],
/// so they are always canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent(Vec<u8>);

impl EncodedEvent {
    /// The canonical JSON of `event`. Fails only if the event does not serialise.
    pub fn new(event: &Event) -> Result<Self, serde_json::Error> {
        canonical_json(event).map(EncodedEvent)
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
) -> Result<StoredEntry, serde_json::Error> {
    let event = EncodedEvent::new(event)?;
    Ok(encode_encoded(seq, stream, version, at, prev, &event))
}

/// Room for everything in an entry but the event and the stream name (keys and punctuation,
/// the time, `prev`, two 20-digit numbers), so that framing allocates once.
const FRAME_OVERHEAD: usize = 200;

/// Frames an already encoded event as entry `seq` of the log, version `version` of `stream`,
/// chained to `prev`.
///
/// It writes the canonical JSON of the frame directly (the keys in the byte order
/// [`canonical_json`] sorts them in, the time and the stream name written by serde_json as it
/// writes every string), without building a `serde_json::Value`: the bytes are exactly those
/// [`canonical_json`] gives for the frame.
pub fn encode_encoded(
    seq: u64,
    stream: &StreamId,
    version: u64,
    at: DateTime<Utc>,
    prev: &Hash,
    event: &EncodedEvent,
) -> StoredEntry {
    let mut bytes = Vec::with_capacity(FRAME_OVERHEAD + stream.as_str().len() + event.0.len());
    // serde_json fails only when its writer does, or on a value JSON cannot represent: the
    // writer is a `Vec` and the values are a time, a string and two integers.
    #[allow(clippy::expect_used)]
    write_frame(&mut bytes, seq, stream, version, at, prev, event)
        .expect("writing a time, a string and integers to a Vec cannot fail");
    let hash = leaf_hash(&bytes);
    StoredEntry {
        seq,
        stream: stream.clone(),
        version,
        bytes,
        hash,
    }
}

/// Writes the frame's canonical JSON: keys in byte order, strings and numbers as serde_json
/// writes them (and so as [`canonical_json`] does), the event's bytes as they are.
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
    bytes.extend_from_slice(b"\",\"seq\":");
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

/// A JSON number as the canonical form writes a `u64`: digits, no sign, no leading zero.
fn canonical_u64(digits: &[u8], what: &str) -> Result<u64, String> {
    let ok = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits.len() == 1 || digits.first() != Some(&b'0'));
    ok.then(|| std::str::from_utf8(digits).ok()?.parse().ok())
        .flatten()
        .ok_or_else(|| {
            format!(
                "`{what}` is not a canonical unsigned integer: {:?}",
                String::from_utf8_lossy(digits)
            )
        })
}

/// Decodes an entry's frame, strictly, without parsing the event: the bytes must have the
/// canonical layout `{"at":"…","event":{…},"prev":"<64 hex>","seq":N,"stream":"…","version":V}`
/// exactly (a field missing, added, reordered or escaped where the canonical form never escapes
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
}

/// [`decode_frame`] without decoding `prev`.
pub(crate) fn split_frame(bytes: &[u8]) -> Result<RawFrame<'_>, String> {
    const AT: &[u8] = b"{\"at\":\"";
    const EVENT: &[u8] = b"\",\"event\":{";
    const PREV: &[u8] = b"},\"prev\":\"";
    const SEQ: &[u8] = b"\",\"seq\":";
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
    let tail = tail
        .strip_prefix(SEQ)
        .ok_or_else(|| layout("`prev` is not followed by `seq`"))?;
    let seq_end = tail
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(tail.len());
    let seq = canonical_u64(tail.get(..seq_end).unwrap_or_default(), "seq")?;
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
    let version = canonical_u64(version, "version")?;
    Ok(RawFrame {
        seq,
        stream,
        version,
        prev_hex,
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

    /// The reference framing: the canonical JSON of the whole frame, through `serde_json::Value`
    /// (what `encode` did before the frame was written directly).
    fn reference(
        seq: u64,
        stream: &StreamId,
        version: u64,
        at: DateTime<Utc>,
        prev: &Hash,
        event: &Event,
    ) -> Vec<u8> {
        canonical_json(&Frame {
            at,
            event,
            prev: hex::encode(prev),
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
        assert_eq!(encoded.as_bytes(), &canonical_json(event).unwrap()[..]);
        let fast = encode_encoded(seq, stream, version, at, prev, &encoded);
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
        assert_eq!(&full.event, event);
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
                for (seq, version) in [(0, 0), (3, 2), (u64::MAX, u64::MAX), (0, u64::MAX)] {
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
        let e = encode_encoded(u64::MAX, &stream, 0, at, &[0xab; 32], &encoded);
        let event_json = String::from_utf8(encoded.as_bytes().to_vec()).unwrap();
        assert_eq!(
            String::from_utf8(e.bytes).unwrap(),
            format!(
                r#"{{"at":"2026-11-26T09:00:00.500Z","event":{event_json},"prev":"{}","seq":18446744073709551615,"stream":"we\"ird\\name","version":0}}"#,
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
            any::<i64>(),
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
            seq in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
            version in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
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
        refused(text.replacen(r#""seq":3,"#, "", 1), "not followed by `seq`");
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
