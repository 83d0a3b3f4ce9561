//! Streaming verification of a stored log: every byte re-read, every hash and Merkle node
//! recomputed, and every stored checkpoint checked as the pass reaches its size (its signature,
//! and its root against the root of the entries so far, which the pass's Merkle frontier gives
//! in O(log n) memory). Memory stays bounded by the number of streams plus one chunk of entries
//! and of checkpoints, whatever the log's length.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;

use crate::anchor;
pub use crate::anchor::Anchors;
use crate::backend::Backend;
use crate::backend::{ChunkEntry, EntryChunk, StreamIndexSummary, StreamIndexed};
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointVerifier};
use crate::entry::{decode_frame, split_frame, GENESIS_PREV};
use crate::error::{AuditError, Tampered};
use crate::merkle::{leaf_hash, Frontier, Hash};

/// Entries read per chunk.
pub const CHUNK: usize = 1024;

/// Frames the reading thread decodes between offers of its chunk to the worker.
const DECODE_STEP: usize = 32;

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
    /// How many stored checkpoints were checked (every one the log holds): root, size and,
    /// with a trusted key, signature.
    pub checkpoints: u64,
    /// Whether the checkpoints' signatures were checked against a trusted key (then every
    /// entry is covered by a checkpoint that key signed).
    pub signature_checked: bool,
    /// The trusted checkpoint the log was shown to extend ([`Anchors::trusted_checkpoint`]):
    /// the root of the log's first `size` entries, recomputed in the pass, is its root.
    pub anchor: Option<Checkpoint>,
    /// How many of [`Anchors::witnesses`] validly cosigned the trusted checkpoint (or, without
    /// one, the latest stored checkpoint).
    pub cosignatures: usize,
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
        rewritten_before: None,
    })
}

/// Parses a note's checkpoint body without checking signatures.
pub fn unsigned_checkpoint(note: &str) -> Result<Checkpoint, AuditError> {
    Ok(parse_unsigned(note)?)
}

fn parse_unsigned(note: &str) -> Result<Checkpoint, CheckpointError> {
    let end = note
        .find("\n\n")
        .ok_or_else(|| CheckpointError::Malformed {
            line: note.split('\n').count(),
            problem: "the checkpoint note has no signature block".into(),
        })?;
    let body = note.get(..=end).unwrap_or(note);
    Checkpoint::parse_body(body)
}

/// Verifies everything `backend` holds: every entry's bytes, hash, chain link, place and stream
/// version, every stored Merkle node, and every stored checkpoint (its size, and its root
/// against the tree of the entries before it).
///
/// With `verifier`, every checkpoint must also carry a valid signature by that key, and the
/// signed checkpoints must cover the whole log: a log with entries but no checkpoint fails with
/// [`AuditError::NoCheckpoint`], entries after the latest with [`AuditError::UnsignedTail`].
/// An empty log with no checkpoint is refused too ([`AuditError::NoCheckpoint`] with 0
/// entries): it is exactly what deleting every entry and checkpoint leaves. A new log, empty
/// by design, verifies only through [`verify_anchored`] with [`Anchors::expect_empty`].
/// A rewrite that kept every entry, chain link and node consistent is reported from the first
/// checkpoint whose root differs, narrowed by the last one that verifies
/// ([`Tampered::within`]).
pub fn verify(
    backend: &dyn Backend,
    verifier: Option<&CheckpointVerifier>,
) -> Result<VerifyReport, AuditError> {
    verify_anchored(backend, verifier, &Anchors::default())
}

/// [`verify`], and the log must also extend the outside `anchors`: the trusted checkpoint's
/// root is compared with the root the pass computes at its size, so a log rolled back below it
/// ([`AuditError::RolledBack`]) or forked from it ([`AuditError::Forked`]) is refused even when
/// it is consistent in itself. A trusted checkpoint needs `verifier`: it must carry that key's
/// signature ([`AuditError::TrustedCheckpoint`] otherwise).
pub fn verify_anchored(
    backend: &dyn Backend,
    verifier: Option<&CheckpointVerifier>,
    anchors: &Anchors,
) -> Result<VerifyReport, AuditError> {
    let (anchor, cosignatures) = anchor::open(backend, verifier, anchors)?;
    if verifier.is_some() && backend.latest_checkpoint()?.is_none() {
        let entries = backend.size()?;
        // An empty log with no checkpoint is what a rollback to size 0 leaves: with a trusted
        // key it passes only when the caller says an empty log is expected.
        if entries > 0 || !anchors.expect_empty {
            return Err(AuditError::NoCheckpoint { entries });
        }
    }
    let mut chain = Chain {
        frontier: Frontier::new(),
        prev: GENESIS_PREV,
        seq: 0,
        bytes: 0,
        slots: HashMap::new(),
        versions: Vec::new(),
        indexed: Vec::new(),
        index_upto: 0,
        checkpoints: Checkpoints {
            pending: VecDeque::new(),
            latest: None,
            checked: 0,
            anchor: anchor.clone(),
            anchor_met: false,
        },
    };
    let mut pager = CheckpointPager {
        backend,
        next: 0,
        pending: VecDeque::new(),
        exhausted: false,
    };
    // Two stages on two threads: this one reads a chunk of entries and stored nodes from the
    // backend and, while the worker is still busy, decodes the chunk's frames; the worker
    // decodes the rest, hashes and chains the chunk, and hands its buffers back. Which thread
    // decodes how much adjusts itself, so both stay busy. Results come back in chunk order and
    // a decoding error travels with its entry, so the entry reported is the first bad one, as
    // if sequential.
    let index = backend.stream_index_summary()?;
    chain.index_upto = index.as_ref().map_or(0, |i| i.upto);
    let chain = std::thread::scope(|scope| -> Result<Chain, AuditError> {
        type Decoded = Vec<Result<Frame, String>>;
        type Opened = Vec<(u64, Result<Checkpoint, AuditError>)>;
        // A rendezvous: a chunk is handed over only when the worker waits for one, with the
        // checkpoints stored for the tree sizes it reaches.
        let (rows_tx, rows_rx) = mpsc::sync_channel::<(EntryChunk, Decoded, Opened)>(0);
        let (done_tx, done_rx) =
            mpsc::sync_channel::<(Result<Vec<Node>, AuditError>, EntryChunk, Decoded)>(2);
        let worker = scope.spawn(move || {
            for (chunk, mut frames, opened) in rows_rx {
                let decoded = frames.len();
                let rest = chunk.entries.get(decoded..).unwrap_or_default();
                frames.extend(rest.iter().map(|e| Frame::of(&chunk, e)));
                chain.checkpoints.pending.extend(opened);
                let result = chain.check_chunk(&chunk, &frames);
                let failed = result.is_err();
                if done_tx.send((result, chunk, frames)).is_err() || failed {
                    break;
                }
            }
            chain
        });
        let stopped = || AuditError::InvalidRequest("the verification worker stopped".into());
        let mut next = 0u64;
        let mut in_flight = 0usize;
        let mut spare: Vec<(EntryChunk, Decoded)> = Vec::new();
        let pager = &mut pager;
        let finish = |spare: &mut Vec<(EntryChunk, Decoded)>| -> Result<(), AuditError> {
            let (nodes, chunk, frames) = done_rx.recv().map_err(|_| stopped())?;
            check_nodes(backend, &nodes?)?;
            spare.push((chunk, frames));
            Ok(())
        };
        // The worker stops early only after sending a failure: find it, in chunk order (a
        // node mismatch in an earlier chunk names an earlier entry).
        let worker_failure = || -> AuditError {
            while let Ok((nodes, _, _)) = done_rx.try_recv() {
                if let Err(e) = nodes.and_then(|n| check_nodes(backend, &n)) {
                    return e;
                }
            }
            stopped()
        };
        let outcome = (|| -> Result<(), AuditError> {
            loop {
                let (mut chunk, mut frames) = spare.pop().unwrap_or_default();
                backend.read_chunk(next, CHUNK, &mut chunk)?;
                let Some(last) = chunk.entries.last() else {
                    break;
                };
                // The tree reaches at most this size in this chunk (fewer if it fails).
                let reach = next.saturating_add(chunk.entries.len() as u64);
                next = last.seq.saturating_add(1);
                frames.clear();
                // Parsed and their signatures checked here, off the hashing thread; a failure
                // travels to the worker, which reports it when the pass reaches its size.
                let opened: Opened = pager
                    .upto(reach)?
                    .into_iter()
                    .map(|(size, note)| (size, open_checkpoint(verifier, size, &note)))
                    .collect();
                // Decode frames here, a step at a time, for as long as the worker is busy;
                // hand the chunk over as soon as it waits (it decodes the rest).
                let mut parcel = (chunk, frames, opened);
                loop {
                    match rows_tx.try_send(parcel) {
                        Ok(()) => break,
                        Err(mpsc::TrySendError::Disconnected(_)) => return Err(worker_failure()),
                        Err(mpsc::TrySendError::Full(back)) => parcel = back,
                    }
                    let (chunk, frames) = (&parcel.0, &mut parcel.1);
                    let done = frames.len();
                    let Some(step) = chunk
                        .entries
                        .get(done..(done + DECODE_STEP).min(chunk.entries.len()))
                        .filter(|s| !s.is_empty())
                    else {
                        rows_tx.send(parcel).map_err(|_| worker_failure())?;
                        break;
                    };
                    frames.extend(step.iter().map(|e| Frame::of(chunk, e)));
                }
                in_flight += 1;
                if in_flight == 2 {
                    finish(&mut spare)?;
                    in_flight -= 1;
                }
            }
            drop(rows_tx);
            for _ in 0..in_flight {
                finish(&mut spare)?;
            }
            Ok(())
        })();
        // On an early return the channel to the worker closes and it stops.
        let chain = worker
            .join()
            .map_err(|_| AuditError::InvalidRequest("the verification worker panicked".into()))?;
        let chain = outcome.map(|()| chain)?;
        if let Some(index) = &index {
            chain.check_index(index)?;
        }
        Ok(chain)
    })?;
    let mut chain = chain;
    // The checkpoints at the log's size (all of them, when the log is empty), then whatever
    // is stored beyond its end.
    let at_end = pager.upto(chain.seq)?.into_iter();
    chain
        .checkpoints
        .pending
        .extend(at_end.map(|(size, note)| (size, open_checkpoint(verifier, size, &note))));
    chain.checkpoints.check_at(&chain.frontier)?;
    if let Some(a) = &anchor {
        if a.size > chain.seq {
            return Err(AuditError::RolledBack {
                trusted: a.size,
                entries: chain.seq,
            });
        }
    }
    let beyond = match chain.checkpoints.pending.pop_front() {
        Some((_, opened)) => Some(opened),
        None => pager
            .first_beyond(chain.seq)?
            .map(|(size, note)| open_checkpoint(verifier, size, &note)),
    };
    if let Some(opened) = beyond {
        let cp = opened?;
        return Err(tampered(
            chain.seq,
            "the log ends before the size a stored checkpoint signs (tail truncated)",
            format!("{} entries", cp.size),
            format!("{} entries", chain.seq),
        ));
    }
    let Chain {
        frontier,
        seq,
        bytes,
        versions,
        checkpoints,
        ..
    } = chain;
    if verifier.is_some() {
        match &checkpoints.latest {
            None if seq > 0 => return Err(AuditError::NoCheckpoint { entries: seq }),
            None => {}
            Some(cp) if cp.size < seq => {
                return Err(AuditError::UnsignedTail {
                    signed: cp.size,
                    entries: seq,
                })
            }
            Some(_) => {}
        }
    }
    if let (Some(a), Some(latest)) = (&anchor, &checkpoints.latest) {
        if a.origin != latest.origin {
            return Err(AuditError::Anchor(format!(
                "the trusted checkpoint is for log {:?}, but this log's checkpoints are for {:?}",
                a.origin, latest.origin
            )));
        }
    }
    Ok(VerifyReport {
        entries: seq,
        bytes,
        streams: versions.len() as u64,
        root: frontier.root(),
        signature_checked: verifier.is_some() && checkpoints.checked > 0,
        checkpoints: checkpoints.checked,
        checkpoint: checkpoints.latest,
        anchor,
        cosignatures,
    })
}

/// Pages through the stored checkpoints by size, for the reading thread: each chunk of
/// entries travels with the checkpoints for the sizes it reaches.
struct CheckpointPager<'b> {
    backend: &'b dyn Backend,
    /// The smallest size not read yet.
    next: u64,
    /// Read, not handed out yet.
    pending: VecDeque<(u64, String)>,
    /// Every checkpoint has been read.
    exhausted: bool,
}

impl CheckpointPager<'_> {
    /// The stored checkpoints with sizes up to `upto` not handed out before, by size.
    fn upto(&mut self, upto: u64) -> Result<Vec<(u64, String)>, AuditError> {
        while !self.exhausted && self.pending.back().is_none_or(|(size, _)| *size <= upto) {
            let page = self.backend.read_checkpoints(self.next, CHUNK)?;
            match page.last() {
                Some((size, _)) if page.len() == CHUNK && *size < u64::MAX => {
                    self.next = size + 1;
                }
                _ => self.exhausted = true,
            }
            self.pending.extend(page);
        }
        let n = self
            .pending
            .iter()
            .take_while(|(size, _)| *size <= upto)
            .count();
        Ok(self.pending.drain(..n).collect())
    }

    /// The first stored checkpoint with a size above `size`, if any.
    fn first_beyond(&mut self, size: u64) -> Result<Option<(u64, String)>, AuditError> {
        if let Some(found) = self.pending.iter().find(|(s, _)| *s > size) {
            return Ok(Some(found.clone()));
        }
        if self.exhausted {
            return Ok(None);
        }
        let from = size.saturating_add(1).max(self.next);
        Ok(self.backend.read_checkpoints(from, 1)?.into_iter().next())
    }
}

/// Parses the checkpoint stored under tree size `size` and, with a trusted key, checks its
/// signature; the size it signs must be the one it is stored under.
fn open_checkpoint(
    verifier: Option<&CheckpointVerifier>,
    size: u64,
    note: &str,
) -> Result<Checkpoint, AuditError> {
    let cp = match verifier {
        Some(v) => v.verify(note),
        None => parse_unsigned(note),
    }
    .map_err(|error| AuditError::StoredCheckpoint { size, error })?;
    if cp.size != size {
        return Err(tampered(
            cp.size.min(size),
            format!("the checkpoint row for tree size {size} signs another size"),
            size.to_string(),
            cp.size.to_string(),
        ));
    }
    Ok(cp)
}

/// The stored checkpoints as the pass reaches their sizes.
struct Checkpoints {
    /// Opened by the reading thread ([`open_checkpoint`]), by size, not checked yet.
    pending: VecDeque<(u64, Result<Checkpoint, AuditError>)>,
    /// The last checkpoint that verified.
    latest: Option<Checkpoint>,
    /// How many verified.
    checked: u64,
    /// The trusted checkpoint from outside the log, checked when the pass reaches its size.
    anchor: Option<Checkpoint>,
    /// Whether the pass has reached the anchor's size and found its root.
    anchor_met: bool,
}

impl Checkpoints {
    /// Checks the pending checkpoints for the size `frontier` has reached: that they opened
    /// (signature and size), and their roots against the tree of the entries so far.
    fn check_at(&mut self, frontier: &Frontier) -> Result<(), AuditError> {
        while self
            .pending
            .front()
            .is_some_and(|(size, _)| *size <= frontier.size())
        {
            let Some((size, opened)) = self.pending.pop_front() else {
                break;
            };
            if size < frontier.size() {
                return Err(AuditError::InvalidRequest(format!(
                    "the backend returned the checkpoint at tree size {size} out of order"
                )));
            }
            let cp = opened?;
            let root = frontier.root();
            if root != cp.root {
                return Err(rewritten(self.latest.as_ref(), &cp, &root));
            }
            self.checked += 1;
            self.latest = Some(cp);
        }
        if let Some(a) = self.anchor.as_ref().filter(|a| a.size == frontier.size()) {
            if !self.anchor_met {
                let root = frontier.root();
                if root != a.root {
                    return Err(AuditError::Forked {
                        size: a.size,
                        expected: hex::encode(a.root),
                        found: hex::encode(root),
                    });
                }
                self.anchor_met = true;
            }
        }
        Ok(())
    }
}

/// The error for a checkpoint whose root differs from the tree of the entries before it, when
/// everything else agreed: the rewrite is among the entries after the last good checkpoint.
fn rewritten(good: Option<&Checkpoint>, bad: &Checkpoint, root: &Hash) -> AuditError {
    let from = good.map_or(0, |c| c.size);
    let to = bad.size;
    let why = format!(
        "the tree of the first {to} entries differs from the checkpoint signed at that size, though every entry, chain link and stored Merkle node agrees (a rewrite that re-chained and re-hashed what followed)"
    );
    let problem = match good {
        Some(_) if to.saturating_sub(from) == 1 => format!(
            "entry {from} was rewritten: {why}, and the checkpoint at size {from} verifies"
        ),
        Some(_) => format!(
            "the first rewritten entry is one of entries {from} to {}: {why}, and the checkpoint at size {from} verifies",
            to.saturating_sub(1)
        ),
        None => format!(
            "the first rewritten entry is one of entries 0 to {}: {why}, and no earlier checkpoint narrows it",
            to.saturating_sub(1)
        ),
    };
    AuditError::Tampered(Tampered {
        seq: from,
        problem,
        expected: format!("root {}", hex::encode(bad.root)),
        found: format!("root {}", hex::encode(root)),
        rewritten_before: Some(to),
    })
}

type Node = (u8, u64, Hash);

/// What an entry's bytes claim about its place, decoded next to the read.
struct Frame {
    seq: u64,
    version: u64,
    /// `prev` as its hex digits, as stored.
    prev_hex: [u8; 64],
    /// The stream the bytes name when it is not the one the entry is stored under.
    other_stream: Option<String>,
}

impl Frame {
    fn of(chunk: &EntryChunk, row: &ChunkEntry) -> Result<Frame, String> {
        let head = split_frame(chunk.bytes(row))?;
        let stored = chunk.stream(row).map_or("", |s| s.as_str());
        let mut prev_hex = [0u8; 64];
        match head.prev_hex.try_into() {
            Ok(hex) => prev_hex = hex,
            // Too short: not hex of a hash, as decoding says.
            Err(_) => {
                decode_frame(chunk.bytes(row))?;
            }
        }
        Ok(Frame {
            seq: head.seq,
            version: head.version,
            prev_hex,
            other_stream: (head.stream != stored).then(|| head.stream.into_owned()),
        })
    }
}

/// The running state of verification: the tree, the chain, every stream's version and the
/// checkpoints.
struct Chain {
    frontier: Frontier,
    prev: Hash,
    seq: u64,
    bytes: u64,
    /// Every stream's slot in `versions`, by name (looked up once per stream and chunk).
    slots: HashMap<String, usize>,
    /// Every stream's version so far.
    versions: Vec<u64>,
    /// Per stream slot: (entries below `index_upto`, the sum of their sequence numbers, the
    /// last one's sequence number).
    indexed: Vec<(u64, u64, u64)>,
    /// Entries below this are counted in `indexed`, for the stream index check.
    index_upto: u64,
    checkpoints: Checkpoints,
}

impl Chain {
    /// Checks one chunk of entries in order, given what their frames claim; returns the Merkle
    /// nodes they complete.
    fn check_chunk(
        &mut self,
        chunk: &EntryChunk,
        frames: &[Result<Frame, String>],
    ) -> Result<Vec<Node>, AuditError> {
        let slots: Vec<usize> = chunk
            .streams
            .iter()
            .map(|s| match self.slots.get(s.as_str()) {
                Some(slot) => *slot,
                None => {
                    self.versions.push(0);
                    self.indexed.push((0, 0, 0));
                    let slot = self.versions.len() - 1;
                    self.slots.insert(s.as_str().to_owned(), slot);
                    slot
                }
            })
            .collect();
        // A checkpoint at the size the pass starts this chunk from (size 0, on the first).
        self.checkpoints.check_at(&self.frontier)?;
        let mut computed_nodes: Vec<Node> = Vec::with_capacity(chunk.entries.len() * 2);
        for (row, frame) in chunk.entries.iter().zip(frames) {
            let bytes = chunk.bytes(row);
            let row_stream = chunk.stream(row).map_or("", |s| s.as_str());
            let seq = self.seq;
            if row.seq != seq {
                return Err(tampered(
                    seq,
                    "entry is missing",
                    format!("entry {seq}"),
                    format!("entry {} next", row.seq),
                ));
            }
            let hash = leaf_hash(bytes);
            // Checked first: an edit inside an entry is blamed on that entry, not its neighbour.
            if hash != row.hash {
                return Err(tampered(
                    seq,
                    "stored bytes do not match the entry's recorded hash",
                    hex::encode(row.hash),
                    hex::encode(hash),
                ));
            }
            let entry = frame.as_ref().map_err(|e| {
                tampered(
                    seq,
                    "stored bytes do not decode as an entry",
                    "a log entry",
                    e.clone(),
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
            let mut expected_hex = [0u8; 64];
            // Cannot fail: 64 bytes hold the hex of 32.
            let _ = hex::encode_to_slice(self.prev, &mut expected_hex);
            if entry.prev_hex != expected_hex {
                let mut claimed = [0u8; 32];
                if let Err(e) = hex::decode_to_slice(entry.prev_hex, &mut claimed) {
                    return Err(tampered(
                        seq,
                        "stored bytes do not decode as an entry",
                        "a log entry",
                        format!("`prev` is not a 32-byte hex hash: {e}"),
                    ));
                }
                if claimed == self.prev {
                    return Err(tampered(
                        seq,
                        "`prev` is not in the canonical lowercase hex",
                        hex::encode(claimed),
                        String::from_utf8_lossy(&entry.prev_hex),
                    ));
                }
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
                    hex::encode(claimed),
                    hex::encode(self.prev),
                ));
            }
            if entry.other_stream.is_some() || entry.version != row.version {
                let claimed = entry.other_stream.as_deref().unwrap_or(row_stream);
                return Err(tampered(
                    seq,
                    "the row's stream or version differs from the entry's bytes",
                    format!("{claimed} v{}", entry.version),
                    format!("{row_stream} v{}", row.version),
                ));
            }
            let last = slots
                .get(row.stream)
                .and_then(|slot| self.versions.get_mut(*slot))
                .ok_or_else(|| {
                    tampered(
                        seq,
                        "the entry's stream is not in its chunk",
                        row_stream,
                        "none",
                    )
                })?;
            if entry.version != *last + 1 {
                return Err(tampered(
                    seq,
                    format!("stream {row_stream} skips or repeats a version"),
                    format!("version {}", *last + 1),
                    format!("version {}", entry.version),
                ));
            }
            *last = entry.version;
            if seq < self.index_upto {
                if let Some(c) = slots.get(row.stream).and_then(|s| self.indexed.get_mut(*s)) {
                    *c = (c.0 + 1, c.1.wrapping_add(seq), seq);
                }
            }
            computed_nodes.extend(self.frontier.push(hash));
            self.checkpoints.check_at(&self.frontier)?;
            self.prev = hash;
            self.bytes += bytes.len() as u64;
            self.seq += 1;
        }
        Ok(computed_nodes)
    }
}

impl Chain {
    /// Checks that the backend's stream index counts, for every stream, exactly its entries below
    /// the summary's `upto`, as this pass counted them (reads check the index against these
    /// counts).
    fn check_index(&self, summary: &StreamIndexSummary) -> Result<(), AuditError> {
        // Streams in the order they first appear in the log, so the report is deterministic.
        let mut by_slot: Vec<(usize, &str)> =
            self.slots.iter().map(|(n, s)| (*s, n.as_str())).collect();
        by_slot.sort_unstable();
        let mut listed = 0usize;
        for (slot, name) in by_slot {
            let Some(&(count, seq_sum, last_seq)) = self.indexed.get(slot) else {
                continue;
            };
            let found = summary.streams.get(name).copied();
            if count == 0 && found.is_none() {
                continue;
            }
            listed += 1;
            let expected = StreamIndexed {
                entries: count,
                seq_sum,
            };
            if found != Some(expected) {
                let show = |i: &StreamIndexed| {
                    format!(
                        "{} entries at positions adding up to {}",
                        i.entries, i.seq_sum
                    )
                };
                return Err(tampered(
                    last_seq,
                    format!(
                        "the stream index's count for stream {name} differs from its entries below entry {}",
                        summary.upto
                    ),
                    show(&expected),
                    found.map_or("no entries".to_owned(), |f| show(&f)),
                ));
            }
        }
        if listed != summary.streams.len() {
            let extra = summary
                .streams
                .keys()
                .filter(|name| {
                    self.slots
                        .get(name.as_str())
                        .and_then(|s| self.indexed.get(*s))
                        .is_none_or(|c| c.0 == 0)
                })
                .min()
                .cloned()
                .unwrap_or_default();
            return Err(tampered(
                summary.upto.saturating_sub(1),
                format!("the stream index counts entries of stream {extra} that the log does not hold below entry {}", summary.upto),
                "no entries",
                "index rows",
            ));
        }
        Ok(())
    }
}

/// Compares recomputed Merkle nodes with the stored ones, one range read per level.
fn check_nodes(backend: &dyn Backend, computed: &[(u8, u64, Hash)]) -> Result<(), AuditError> {
    let mut by_level: Vec<Vec<(u64, Hash)>> = Vec::new();
    let lowest = backend.lowest_stored_level();
    for &(level, index, hash) in computed.iter().filter(|n| n.0 >= lowest) {
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
