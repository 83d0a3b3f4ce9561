//! JSON Lines export and import: one entry per line with its hash, then the latest signed
//! checkpoint, so a log can be archived and checked with ordinary tools (`jq`, `sha256sum`).
//!
//! ```text
//! {"entry":{"at":…,"event":{…},"prev":"…","seq":0,"stream":"…","version":1},"hash":"…","seq":0}
//! …
//! {"checkpoint":"promotion.example/shop\n42\n…\n\n— promotion.example/shop …\n"}
//! ```
//!
//! The `entry` member is the entry's stored bytes, verbatim: the hash is the RFC 6962 leaf hash
//! (SHA-256 of a zero byte and the bytes) of exactly the text between `{"entry":` and
//! `,"hash":`, so it can be recomputed from the line alone, and an export re-imports to the
//! same hashes and root whatever the entries hold (floats included: nothing is re-parsed).
//! Entries of schema 2 ([`crate::entry::SCHEMA_JCS`]) are RFC 8785 canonical JSON, so a tool
//! that parses the line can also re-create the bytes with any JCS implementation; an import
//! refuses a schema-2 entry that is not exactly in that form.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use promotion_core::StreamId;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::backend::Backend;
use crate::checkpoint::CheckpointVerifier;
use crate::entry::{check_canonical, decode, StoredEntry, GENESIS_PREV};
use crate::error::{AuditError, BackendError};
use crate::merkle::{leaf_hash, Frontier, Hash};
use crate::verify::{unsigned_checkpoint, CHUNK};

/// One line of an export, as read: an entry (its bytes as they stand in the line, its hash and
/// position) or the checkpoint.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    entry: Option<&'a RawValue>,
    hash: Option<String>,
    seq: Option<u64>,
    checkpoint: Option<String>,
}

/// Writes every entry of `backend` and its latest checkpoint to `out`; returns the number of
/// entries written. Each entry's stored bytes are written as they are, never re-encoded.
pub fn export(backend: &dyn Backend, out: &mut dyn Write) -> Result<u64, AuditError> {
    let io = |e: std::io::Error| AuditError::Backend(BackendError::with("writing the export", e));
    let mut seq = 0u64;
    let mut line = Vec::new();
    loop {
        let chunk = backend.read_range(seq, CHUNK)?;
        if chunk.is_empty() {
            break;
        }
        for row in chunk {
            // The bytes go into the line as they are: they must be one JSON value on one line.
            serde_json::from_slice::<serde::de::IgnoredAny>(&row.bytes).map_err(|e| {
                AuditError::InvalidRequest(format!("entry {} is not JSON: {e}", row.seq))
            })?;
            if row.bytes.contains(&b'\n') {
                return Err(AuditError::InvalidRequest(format!(
                    "entry {} holds a line break outside its strings",
                    row.seq
                )));
            }
            line.clear();
            line.extend_from_slice(b"{\"entry\":");
            line.extend_from_slice(&row.bytes);
            line.extend_from_slice(b",\"hash\":\"");
            line.extend_from_slice(hex::encode(row.hash).as_bytes());
            line.extend_from_slice(format!("\",\"seq\":{}}}\n", row.seq).as_bytes());
            out.write_all(&line).map_err(io)?;
            seq = row.seq + 1;
        }
    }
    if let Some((_, note)) = backend.latest_checkpoint()? {
        serde_json::to_writer(&mut *out, &serde_json::json!({ "checkpoint": note }))
            .map_err(|e| AuditError::InvalidRequest(e.to_string()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(seq)
}

/// What an import established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Entries imported.
    pub entries: u64,
    /// Root of the imported log.
    pub root: Hash,
    /// Whether a checkpoint was imported and its signature checked with a trusted key.
    pub signature_checked: bool,
}

/// Reads an export into an empty `backend`, verifying every line as it goes (hash, chain,
/// order, stream versions, and the checkpoint's root and, with `verifier`, its signature).
/// Everything is written in one transaction: on any error nothing is imported.
pub fn import(
    input: &mut dyn BufRead,
    backend: &mut dyn Backend,
    verifier: Option<&CheckpointVerifier>,
) -> Result<ImportReport, AuditError> {
    let head = backend.begin()?;
    if head.size != 0 {
        backend.rollback();
        return Err(AuditError::InvalidRequest(format!(
            "imports go into an empty log; this one has {} entries",
            head.size
        )));
    }
    match import_inner(input, backend, verifier) {
        Ok(report) => {
            backend.commit()?;
            Ok(report)
        }
        Err(e) => {
            backend.rollback();
            Err(e)
        }
    }
}

fn import_inner(
    input: &mut dyn BufRead,
    backend: &mut dyn Backend,
    verifier: Option<&CheckpointVerifier>,
) -> Result<ImportReport, AuditError> {
    let mut frontier = Frontier::new();
    let mut prev = GENESIS_PREV;
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    let mut entries = Vec::new();
    let mut nodes = Vec::new();
    let mut checkpoint = None;
    let mut line_no = 0u64;
    let mut text = String::new();
    loop {
        text.clear();
        let n = input
            .read_line(&mut text)
            .map_err(|e| AuditError::Backend(BackendError::with("reading the import", e)))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let bad = |problem: String| AuditError::Import {
            line: line_no,
            problem,
        };
        if checkpoint.is_some() {
            return Err(bad("nothing may follow the checkpoint line".into()));
        }
        let line: Line<'_> =
            serde_json::from_str(text.trim_end_matches('\n')).map_err(|e| bad(e.to_string()))?;
        match line {
            Line {
                checkpoint: Some(note),
                entry: None,
                hash: None,
                seq: None,
            } => checkpoint = Some(note),
            Line {
                entry: Some(entry),
                hash: Some(hash),
                seq: Some(seq),
                checkpoint: None,
            } => {
                let expected_seq = frontier.size();
                if seq != expected_seq {
                    return Err(bad(format!(
                        "expected entry {expected_seq}, found entry {seq}"
                    )));
                }
                // The bytes as they stand in the line: what the entry's hash covers.
                let bytes = entry.get().as_bytes().to_vec();
                let computed = leaf_hash(&bytes);
                if hex::encode(computed) != hash {
                    return Err(bad(format!(
                        "entry {seq} hashes to {}, the line records {hash}",
                        hex::encode(computed)
                    )));
                }
                let decoded = decode(&bytes).map_err(|e| bad(format!("entry {seq}: {e}")))?;
                // A schema-2 entry must be exactly its RFC 8785 form, or outside tools could
                // not re-create the bytes its hash covers.
                check_canonical(&bytes).map_err(|e| bad(format!("entry {seq}: {e}")))?;
                if decoded.seq != seq {
                    return Err(bad(format!(
                        "entry {seq} claims to be entry {}",
                        decoded.seq
                    )));
                }
                if decoded.prev != prev {
                    return Err(bad(format!(
                        "entry {seq} is not chained to entry {}",
                        seq.wrapping_sub(1)
                    )));
                }
                let last = versions.entry(decoded.stream.clone()).or_insert(0);
                if decoded.version != *last + 1 {
                    return Err(bad(format!(
                        "stream {} jumps from version {} to {}",
                        decoded.stream, last, decoded.version
                    )));
                }
                *last = decoded.version;
                nodes.extend(frontier.push(computed));
                entries.push(StoredEntry {
                    seq,
                    stream: decoded.stream,
                    version: decoded.version,
                    bytes,
                    hash: computed,
                });
                prev = computed;
                if entries.len() >= CHUNK {
                    backend.insert_entries(&entries)?;
                    backend.insert_nodes(&nodes)?;
                    entries.clear();
                    nodes.clear();
                }
            }
            _ => {
                return Err(bad(
                    "a line holds either `entry`, `hash` and `seq`, or `checkpoint` alone".into(),
                ))
            }
        }
    }
    backend.insert_entries(&entries)?;
    backend.insert_nodes(&nodes)?;
    let mut signature_checked = false;
    if let Some(note) = checkpoint {
        let cp = match verifier {
            Some(v) => {
                signature_checked = true;
                v.verify(&note)?
            }
            None => unsigned_checkpoint(&note)?,
        };
        if cp.size != frontier.size() || cp.root != frontier.root() {
            return Err(AuditError::Import {
                line: line_no,
                problem: format!(
                    "the checkpoint signs {} entries with root {}, the file holds {} with root {}",
                    cp.size,
                    hex::encode(cp.root),
                    frontier.size(),
                    hex::encode(frontier.root())
                ),
            });
        }
        backend.insert_checkpoint(cp.size, &note)?;
    } else if verifier.is_some() {
        return Err(AuditError::Import {
            line: line_no,
            problem: "a trusted key was given but the file has no checkpoint".into(),
        });
    }
    Ok(ImportReport {
        entries: frontier.size(),
        root: frontier.root(),
        signature_checked,
    })
}
