//! Streaming verification of a stored log: every byte re-read, every hash and Merkle node
//! recomputed, the latest checkpoint's signature and root checked. Memory stays bounded by the
//! number of streams plus one chunk, whatever the log's length.

use std::collections::HashMap;
use std::sync::mpsc;

use crate::backend::Backend;
use crate::checkpoint::{Checkpoint, CheckpointVerifier};
use crate::entry::{decode_frame, StoredEntry, GENESIS_PREV};
use crate::error::{AuditError, Tampered};
use crate::merkle::{leaf_hash, Frontier, Hash};

/// Entries read per chunk.
pub const CHUNK: usize = 4096;

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries verified.
    pub entries: u64,
    /// Bytes of entries hashed.
    pub bytes: u64,
    /// Streams seen.
    pub streams: u64,
    /// Root of the whole log.
    pub root: Hash,
    /// The latest checkpoint, when the log has one.
    pub checkpoint: Option<Checkpoint>,
    /// Whether the checkpoint's signature was checked against a trusted key.
    pub signature_checked: bool,
}

fn tampered(
    seq: u64,
    problem: impl Into<String>,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> AuditError {
    AuditError::Tampered(Tampered {
        seq,
        problem: problem.into(),
        expected: expected.into(),
        found: found.into(),
    })
}

/// Parses a note's checkpoint body without checking signatures.
pub fn unsigned_checkpoint(note: &str) -> Result<Checkpoint, AuditError> {
    let end = note.find("\n\n").ok_or_else(|| {
        AuditError::InvalidRequest("checkpoint note has no signature block".into())
    })?;
    let body = note.get(..=end).unwrap_or(note);
    Ok(Checkpoint::parse_body(body)?)
}

/// Verifies everything `backend` holds. With `verifier`, the latest checkpoint must carry a
/// valid signature by that key.
pub fn verify(
    backend: &dyn Backend,
    verifier: Option<&CheckpointVerifier>,
) -> Result<VerifyReport, AuditError> {
    let stored_cp = backend.latest_checkpoint()?;
    let (checkpoint, signature_checked) = match (&stored_cp, verifier) {
        (Some((_, note)), Some(v)) => (Some(v.verify(note)?), true),
        (Some((_, note)), None) => (Some(unsigned_checkpoint(note)?), false),
        (None, _) => (None, false),
    };
    if let (Some((size, _)), Some(cp)) = (&stored_cp, &checkpoint) {
        if *size != cp.size {
            return Err(tampered(
                cp.size.min(*size),
                "the checkpoint row's size differs from the size it signs",
                cp.size.to_string(),
                size.to_string(),
            ));
        }
    }
    let mut chain = Chain {
        frontier: Frontier::new(),
        prev: GENESIS_PREV,
        seq: 0,
        bytes: 0,
        versions: HashMap::new(),
        checkpoint_size: checkpoint.as_ref().map(|c| c.size),
        root_at_checkpoint: None,
    };
    if chain.checkpoint_size == Some(0) {
        chain.root_at_checkpoint = Some(chain.frontier.root());
    }
    // Two stages on two threads: this one reads rows and stored nodes from the backend, a
    // worker hashes, decodes and chains the entries of the chunk read before. Results come
    // back in chunk order, so the entry reported is the first bad one, as if sequential.
    let chain = std::thread::scope(|scope| -> Result<Chain, AuditError> {
        let (rows_tx, rows_rx) = mpsc::sync_channel::<Vec<StoredEntry>>(1);
        let (done_tx, done_rx) = mpsc::sync_channel::<Result<Vec<Node>, AuditError>>(2);
        let worker = scope.spawn(move || {
            for chunk in rows_rx {
                let result = chain.check_chunk(&chunk);
                let failed = result.is_err();
                if done_tx.send(result).is_err() || failed {
                    break;
                }
            }
            chain
        });
        let stopped = || AuditError::InvalidRequest("the verification worker stopped".into());
        let mut next = 0u64;
        let mut in_flight = 0usize;
        let outcome = (|| {
            loop {
                let chunk = backend.read_range(next, CHUNK)?;
                let Some(last) = chunk.last() else {
                    break;
                };
                next = last.seq.saturating_add(1);
                rows_tx.send(chunk).map_err(|_| stopped())?;
                in_flight += 1;
                if in_flight == 2 {
                    check_nodes(backend, &done_rx.recv().map_err(|_| stopped())??)?;
                    in_flight -= 1;
                }
            }
            drop(rows_tx);
            for _ in 0..in_flight {
                check_nodes(backend, &done_rx.recv().map_err(|_| stopped())??)?;
            }
            Ok(())
        })();
        // On an early return the channel to the worker closes and it stops.
        let chain = worker
            .join()
            .map_err(|_| AuditError::InvalidRequest("the verification worker panicked".into()))?;
        outcome.map(|()| chain)
    })?;
    let Chain {
        frontier,
        seq,
        bytes,
        versions,
        root_at_checkpoint,
        ..
    } = chain;
    if let Some(cp) = &checkpoint {
        if cp.size > seq {
            return Err(tampered(
                seq,
                "the log ends before the size its latest checkpoint signs (tail truncated)",
                format!("{} entries", cp.size),
                format!("{seq} entries"),
            ));
        }
        let root = root_at_checkpoint.unwrap_or(frontier.root());
        if root != cp.root {
            return Err(tampered(
                cp.size.saturating_sub(1),
                "the Merkle root at the checkpoint's size differs from the signed root",
                hex::encode(cp.root),
                hex::encode(root),
            ));
        }
    }
    Ok(VerifyReport {
        entries: seq,
        bytes,
        streams: versions.len() as u64,
        root: frontier.root(),
        checkpoint,
        signature_checked,
    })
}

type Node = (u8, u64, Hash);

/// The running state of verification: the tree, the chain and every stream's version.
struct Chain {
    frontier: Frontier,
    prev: Hash,
    seq: u64,
    bytes: u64,
    /// Every stream's version so far, by name (looked up by `&str`: no allocation per entry).
    versions: HashMap<String, u64>,
    checkpoint_size: Option<u64>,
    root_at_checkpoint: Option<Hash>,
}

impl Chain {
    /// Checks one chunk of rows in order; returns the Merkle nodes they complete.
    fn check_chunk(&mut self, chunk: &[StoredEntry]) -> Result<Vec<Node>, AuditError> {
        let mut computed_nodes: Vec<Node> = Vec::with_capacity(chunk.len() * 2);
        for row in chunk {
            let seq = self.seq;
            if row.seq != seq {
                return Err(tampered(
                    seq,
                    "entry is missing",
                    format!("entry {seq}"),
                    format!("entry {} next", row.seq),
                ));
            }
            let hash = leaf_hash(&row.bytes);
            // Checked first: an edit inside an entry is blamed on that entry, not its neighbour.
            if hash != row.hash {
                return Err(tampered(
                    seq,
                    "stored bytes do not match the entry's recorded hash",
                    hex::encode(row.hash),
                    hex::encode(hash),
                ));
            }
            let entry = decode_frame(&row.bytes).map_err(|e| {
                tampered(
                    seq,
                    "stored bytes do not decode as an entry",
                    "a log entry",
                    e,
                )
            })?;
            if entry.seq != seq {
                return Err(tampered(
                    seq,
                    "entry bytes belong to another position (rows reordered?)",
                    format!("seq {seq}"),
                    format!("seq {}", entry.seq),
                ));
            }
            if entry.prev != self.prev {
                let (at, problem) = if seq == 0 {
                    (0, "the first entry is not chained to the genesis hash")
                } else {
                    (
                        seq - 1,
                        "entry does not hash to what the next entry was chained to (its bytes and recorded hash were both replaced)",
                    )
                };
                return Err(tampered(
                    at,
                    problem,
                    hex::encode(entry.prev),
                    hex::encode(self.prev),
                ));
            }
            if entry.stream != row.stream.as_str() || entry.version != row.version {
                return Err(tampered(
                    seq,
                    "the row's stream or version differs from the entry's bytes",
                    format!("{} v{}", entry.stream, entry.version),
                    format!("{} v{}", row.stream, row.version),
                ));
            }
            let last = match self.versions.get_mut(entry.stream.as_ref()) {
                Some(v) => v,
                None => self.versions.entry(entry.stream.to_string()).or_insert(0),
            };
            if entry.version != *last + 1 {
                return Err(tampered(
                    seq,
                    format!("stream {} skips or repeats a version", entry.stream),
                    format!("version {}", *last + 1),
                    format!("version {}", entry.version),
                ));
            }
            *last = entry.version;
            computed_nodes.extend(self.frontier.push(hash));
            if self.checkpoint_size == Some(self.frontier.size()) {
                self.root_at_checkpoint = Some(self.frontier.root());
            }
            self.prev = hash;
            self.bytes += row.bytes.len() as u64;
            self.seq += 1;
        }
        Ok(computed_nodes)
    }
}

/// Compares recomputed Merkle nodes with the stored ones, one range read per level.
fn check_nodes(backend: &dyn Backend, computed: &[(u8, u64, Hash)]) -> Result<(), AuditError> {
    let mut by_level: Vec<Vec<(u64, Hash)>> = Vec::new();
    for &(level, index, hash) in computed {
        let l = level as usize;
        if by_level.len() <= l {
            by_level.resize_with(l + 1, Vec::new);
        }
        if let Some(v) = by_level.get_mut(l) {
            v.push((index, hash));
        }
    }
    for (level, nodes) in by_level.iter().enumerate() {
        let Some(&(first, _)) = nodes.first() else {
            continue;
        };
        let level = level as u8;
        let stored = backend.read_nodes(level, first, nodes.len())?;
        for (i, &(index, hash)) in nodes.iter().enumerate() {
            let leaf = index << level;
            match stored.get(i) {
                Some(&(si, sh)) if si == index && sh == hash => {}
                Some(&(si, sh)) if si == index => {
                    return Err(tampered(
                        leaf,
                        format!("stored Merkle node ({level}, {index}) differs"),
                        hex::encode(hash),
                        hex::encode(sh),
                    ))
                }
                _ => {
                    return Err(tampered(
                        leaf,
                        format!("stored Merkle node ({level}, {index}) is missing"),
                        hex::encode(hash),
                        "nothing",
                    ))
                }
            }
        }
    }
    Ok(())
}
