//! Output capture: stdout and stderr are digested in full, secrets are redacted as the bytes
//! stream in (even when a secret spans two reads), and only a bounded tail is kept for evidence.

use std::collections::BTreeMap;

use crate::secrets::Secret;
use promotion_core::{Attachment, Digest, GateError};
use sha2::{Digest as _, Sha256};

/// Replaces secret values by `[REDACTED:<VARIABLE>]` in a byte stream fed in arbitrary chunks.
///
/// Holds back the last `longest - 1` bytes of each chunk, where a secret might start that the
/// next chunk completes; everything before is final.
#[derive(Clone)]
pub(super) struct Redactor {
    pattern: Option<regex::bytes::Regex>,
    markers: BTreeMap<Vec<u8>, Vec<u8>>,
    hold: usize,
    pending: Vec<u8>,
    count: u64,
}

impl Redactor {
    pub(super) fn new(secrets: &[(String, Secret)], gate: &str) -> Result<Self, GateError> {
        let mut markers: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (env, value) in secrets {
            if value.expose().is_empty() {
                continue;
            }
            markers
                .entry(value.expose().as_bytes().to_vec())
                .or_insert_with(|| format!("[REDACTED:{env}]").into_bytes());
        }
        let mut values: Vec<&Vec<u8>> = markers.keys().collect();
        // Longest first: with leftmost-first alternation, a secret that extends another wins.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let hold = values
            .first()
            .map(|v| v.len().saturating_sub(1))
            .unwrap_or(0);
        let pattern = if values.is_empty() {
            None
        } else {
            let alternation = values
                .iter()
                .map(|v| regex::escape(&String::from_utf8_lossy(v)))
                .collect::<Vec<_>>()
                .join("|");
            // The error text of `regex` can quote the pattern, which is made of secrets.
            let re = regex::bytes::RegexBuilder::new(&alternation)
                .size_limit(64 << 20)
                .build()
                .map_err(|_| {
                    GateError::Misconfigured(format!(
                        "process gate `{gate}`: the secret values are too large to redact"
                    ))
                })?;
            Some(re)
        };
        Ok(Redactor {
            pattern,
            markers,
            hold,
            pending: Vec::new(),
            count: 0,
        })
    }

    pub(super) fn redact_str(&self, s: &str) -> String {
        match &self.pattern {
            None => s.to_owned(),
            Some(re) => {
                let out = re.replace_all(s.as_bytes(), |caps: &regex::bytes::Captures<'_>| {
                    caps.get(0)
                        .and_then(|m| self.markers.get(m.as_bytes()))
                        .cloned()
                        .unwrap_or_else(|| b"[REDACTED]".to_vec())
                });
                String::from_utf8_lossy(&out).into_owned()
            }
        }
    }

    fn feed(&mut self, chunk: &[u8], sink: &mut Sink) {
        if self.pattern.is_none() {
            sink.write(chunk);
            return;
        }
        self.pending.extend_from_slice(chunk);
        self.drain(sink, false);
    }

    fn finish(&mut self, sink: &mut Sink) {
        self.drain(sink, true);
    }

    fn drain(&mut self, sink: &mut Sink, all: bool) {
        let Redactor {
            pattern,
            markers,
            hold,
            pending,
            count,
        } = self;
        let Some(re) = pattern else {
            sink.write(pending);
            pending.clear();
            return;
        };
        let safe_end = if all {
            pending.len()
        } else {
            pending.len().saturating_sub(*hold)
        };
        let mut pos = 0;
        for m in re.find_iter(pending) {
            // A match starting in the held-back bytes may still grow into a longer secret.
            if m.start() >= safe_end {
                break;
            }
            sink.write(pending.get(pos..m.start()).unwrap_or_default());
            sink.write(
                markers
                    .get(m.as_bytes())
                    .map(Vec::as_slice)
                    .unwrap_or(b"[REDACTED]"),
            );
            *count += 1;
            pos = m.end();
        }
        if pos < safe_end {
            sink.write(pending.get(pos..safe_end).unwrap_or_default());
            pos = safe_end;
        }
        pending.drain(..pos.min(pending.len()));
    }
}

/// Keeps the last `keep` bytes written, in at most `2 * keep` bytes of memory.
pub(super) struct Tail {
    keep: usize,
    pub(super) buf: Vec<u8>,
}

impl Tail {
    pub(super) fn new(keep: usize) -> Self {
        Tail {
            keep,
            buf: Vec::new(),
        }
    }
    pub(super) fn push(&mut self, bytes: &[u8]) {
        if bytes.len() >= self.keep {
            self.buf.clear();
            let start = bytes.len().saturating_sub(self.keep);
            self.buf
                .extend_from_slice(bytes.get(start..).unwrap_or_default());
            return;
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > self.keep.saturating_mul(2) {
            let excess = self.buf.len().saturating_sub(self.keep);
            self.buf.drain(..excess);
        }
    }
    pub(super) fn bytes(&self) -> &[u8] {
        let start = self.buf.len().saturating_sub(self.keep);
        self.buf.get(start..).unwrap_or_default()
    }
}

/// Where redacted output goes: the hash, the count, the tail.
struct Sink {
    hasher: Sha256,
    len: u64,
    tail: Tail,
}

impl Sink {
    fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.hasher.update(bytes);
        self.len = self.len.saturating_add(bytes.len() as u64);
        self.tail.push(bytes);
    }
}

pub(super) struct StreamCapture {
    raw: u64,
    redactor: Redactor,
    sink: Sink,
}

impl StreamCapture {
    pub(super) fn new(redactor: Redactor, tail: usize) -> Self {
        StreamCapture {
            raw: 0,
            redactor,
            sink: Sink {
                hasher: Sha256::new(),
                len: 0,
                tail: Tail::new(tail),
            },
        }
    }
    pub(super) fn feed(&mut self, chunk: &[u8]) {
        self.raw = self.raw.saturating_add(chunk.len() as u64);
        self.redactor.feed(chunk, &mut self.sink);
    }
    pub(super) fn finish(mut self) -> Captured {
        self.redactor.finish(&mut self.sink);
        let tail = self.sink.tail.bytes().to_vec();
        Captured {
            raw_bytes: self.raw,
            transcript_bytes: self.sink.len,
            digest: Digest::from_bytes(self.sink.hasher.finalize().into()),
            redactions: self.redactor.count,
            tail_truncated: self.sink.len > tail.len() as u64,
            tail,
        }
    }
}

/// One stream, once the process is done.
pub(super) struct Captured {
    pub(super) raw_bytes: u64,
    transcript_bytes: u64,
    pub(super) digest: Digest,
    pub(super) redactions: u64,
    pub(super) tail: Vec<u8>,
    tail_truncated: bool,
}

impl Captured {
    pub(super) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "bytes": self.raw_bytes,
            "transcript_bytes": self.transcript_bytes,
            "sha256": self.digest.to_string(),
            "redactions": self.redactions,
            "tail": String::from_utf8_lossy(&self.tail),
            "tail_truncated": self.tail_truncated,
        })
    }
    pub(super) fn attachment(&self, name: &str) -> Attachment {
        Attachment {
            name: name.to_owned(),
            digest: self.digest,
            size: self.transcript_bytes,
        }
    }
}
