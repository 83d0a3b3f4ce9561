//! The storage interface backends implement: rows of entries, Merkle nodes and checkpoints,
//! written in transactions. All hashing, chaining and signing is done once, above it, by
//! [`AuditStore`](crate::AuditStore); a backend only keeps bytes and enforces uniqueness.

use chrono::{DateTime, Utc};
use promotion_core::backend::LeaseRow;
use promotion_core::StreamId;

use crate::entry::StoredEntry;
use crate::error::BackendError;
use crate::merkle::Hash;

/// How [`Backend::update_lease`] changes a lease: given the current row (`None` when no lease
/// was ever granted) and the time to judge it by, the new row, or `None` to leave it as it is.
pub type LeaseChange<'a> = &'a mut dyn FnMut(Option<&LeaseRow>, DateTime<Utc>) -> Option<LeaseRow>;

/// The head of the log as read at the start of a write transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Number of entries.
    pub size: u64,
    /// Hash of the last entry ([`GENESIS_PREV`](crate::entry::GENESIS_PREV) when empty).
    pub last: Hash,
}

/// Consecutive entries read in one go, their bytes in one buffer: what verification reads
/// (see [`Backend::read_chunk`]). One allocation per chunk instead of two per entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryChunk {
    /// The entries' bytes, one after another.
    pub data: Vec<u8>,
    /// The entries, in stored order (gaps and reorderings included, as stored).
    pub entries: Vec<ChunkEntry>,
    /// The streams the entries belong to, each once.
    pub streams: Vec<StreamId>,
}

/// One entry of an [`EntryChunk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Global sequence number, as stored.
    pub seq: u64,
    /// Index of its stream in [`EntryChunk::streams`].
    pub stream: usize,
    /// Position in the stream, as stored.
    pub version: u64,
    /// Where its bytes start in [`EntryChunk::data`].
    pub start: usize,
    /// How many bytes it has.
    pub len: usize,
    /// `leaf_hash(bytes)` as recorded at append time.
    pub hash: Hash,
}

impl EntryChunk {
    /// The stored bytes of `entry` (empty if it does not belong to this chunk).
    pub fn bytes(&self, entry: &ChunkEntry) -> &[u8] {
        self.data
            .get(entry.start..entry.start.saturating_add(entry.len))
            .unwrap_or_default()
    }

    /// The stream of `entry`.
    pub fn stream(&self, entry: &ChunkEntry) -> Option<&StreamId> {
        self.streams.get(entry.stream)
    }

    /// Empties the chunk, keeping its buffers for the next read.
    pub fn clear(&mut self) {
        self.data.clear();
        self.entries.clear();
        self.streams.clear();
    }

    /// Builds a chunk from entries read one by one (what [`Backend::read_chunk`] does for
    /// backends without a cheaper way).
    pub fn from_entries(entries: Vec<StoredEntry>) -> Self {
        let mut chunk = EntryChunk::default();
        chunk.fill(entries);
        chunk
    }

    /// Empties the chunk and fills it with `entries`.
    pub fn fill(&mut self, entries: Vec<StoredEntry>) {
        self.clear();
        let mut index: std::collections::HashMap<StreamId, usize> = Default::default();
        for e in entries {
            let next = self.streams.len();
            let streams = &mut self.streams;
            let stream = *index.entry(e.stream.clone()).or_insert_with(|| {
                streams.push(e.stream.clone());
                next
            });
            self.push(e.seq, stream, e.version, &e.bytes, e.hash);
        }
    }

    /// Appends one entry of stream `stream` (an index into [`streams`](Self::streams)).
    pub(crate) fn push(&mut self, seq: u64, stream: usize, version: u64, bytes: &[u8], hash: Hash) {
        self.entries.push(ChunkEntry {
            seq,
            stream,
            version,
            start: self.data.len(),
            len: bytes.len(),
            hash,
        });
        self.data.extend_from_slice(bytes);
    }
}

/// What a backend's stream index lists for the entries below [`upto`](Self::upto), per stream
/// name, as the backend's own per-stream counts record it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamIndexSummary {
    /// The entries summarised are those with a sequence number below this.
    pub upto: u64,
    /// Per stream name.
    pub streams: std::collections::HashMap<String, StreamIndexed>,
}

/// What a stream index lists for one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamIndexed {
    /// Entries listed (versions 1 to this).
    pub entries: u64,
    /// The sum of their sequence numbers (so that a count kept for the wrong entries shows).
    pub seq_sum: u64,
}

/// A storage backend. Methods are synchronous: [`AuditStore`](crate::AuditStore) calls them from
/// its own worker threads, so backends may block on I/O.
///
/// Writes happen between [`begin`](Backend::begin) and [`commit`](Backend::commit); `begin` must
/// exclude every other writer (of this process or any other) until the transaction ends, and
/// `commit` must be durable when it returns.
pub trait Backend: Send + 'static {
    /// Starts a write transaction and reads the head under the writer lock.
    fn begin(&mut self) -> Result<Head, BackendError>;
    /// The stream's current version (0 when absent), inside the transaction.
    fn stream_version(&mut self, stream: &StreamId) -> Result<u64, BackendError>;
    /// Inserts entries (consecutive sequence numbers after the head).
    fn insert_entries(&mut self, entries: &[StoredEntry]) -> Result<(), BackendError>;
    /// Inserts Merkle nodes as (level, index, hash).
    fn insert_nodes(&mut self, nodes: &[(u8, u64, Hash)]) -> Result<(), BackendError>;
    /// Inserts a signed checkpoint note for tree size `size`.
    fn insert_checkpoint(&mut self, size: u64, note: &str) -> Result<(), BackendError>;
    /// Commits durably.
    fn commit(&mut self) -> Result<(), BackendError>;
    /// Abandons the transaction.
    fn rollback(&mut self);

    /// Number of entries.
    fn size(&self) -> Result<u64, BackendError>;
    /// The entries of `stream` after version `after`, by version.
    fn read_stream(&self, stream: &StreamId, after: u64) -> Result<Vec<StoredEntry>, BackendError>;
    /// Up to `limit` entries from sequence number `from`, in order. Stored rows are returned as
    /// they are, so verification can see gaps and reordering.
    fn read_range(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>, BackendError>;
    /// Like [`read_range`](Backend::read_range), into `chunk` (emptied first; its buffers are
    /// reused), with the bytes in one buffer. Verification reads through this; the default
    /// fills the chunk from `read_range`.
    fn read_chunk(
        &self,
        from: u64,
        limit: usize,
        chunk: &mut EntryChunk,
    ) -> Result<(), BackendError> {
        chunk.fill(self.read_range(from, limit)?);
        Ok(())
    }
    /// Merkle nodes of `level` with index from `from`, up to `limit`, as (index, hash).
    fn read_nodes(
        &self,
        level: u8,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Hash)>, BackendError>;
    /// One Merkle node.
    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, BackendError>;
    /// The lowest level of Merkle nodes the backend stores; [`node`](Backend::node) and
    /// [`read_nodes`](Backend::read_nodes) compute lower ones from the leaf hashes stored with
    /// the entries, so verification, which checks those leaf hashes, skips comparing them.
    /// The default, 0, stores every node.
    fn lowest_stored_level(&self) -> u8 {
        0
    }
    /// For a backend that keeps a stream index apart from the entries (SQLite), how many
    /// entries of each stream it lists, as the backend records it beside the index. Verification
    /// checks these counts against the entries; every read through the index checks the index
    /// against them, so that a read by stream cannot silently miss an entry. The default: no
    /// separate index.
    fn stream_index_summary(&self) -> Result<Option<StreamIndexSummary>, BackendError> {
        Ok(None)
    }
    /// The checkpoint with the largest tree size, as (size, note).
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, BackendError>;
    /// Up to `limit` stored checkpoints with a tree size of `from_size` or more, as (size,
    /// note), by size: verification pages through every checkpoint with this.
    fn read_checkpoints(
        &self,
        from_size: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, BackendError>;
    /// Every stream.
    fn streams(&self) -> Result<Vec<StreamId>, BackendError>;

    /// Housekeeping the store's reader runs between reads, off the writer's commit path (SQLite:
    /// checkpointing the WAL into the database file). Never inside a transaction; failures are
    /// only logged. The default does nothing.
    fn maintain(&mut self) {}

    /// Reads the lease on `key` (`None` when none was ever granted) and the time leases are
    /// judged by, lets `change` compute the new row, and stores it if there is one: one durable
    /// transaction of its own, never inside [`begin`](Backend::begin)/[`commit`](Backend::commit).
    /// `now` is the store's clock; a backend that several machines share judges by its own
    /// (PostgreSQL: the server's `clock_timestamp()`), so replicas' clock skew cannot matter.
    fn update_lease(
        &mut self,
        key: &str,
        now: DateTime<Utc>,
        change: LeaseChange<'_>,
    ) -> Result<(), BackendError>;

    /// Inside a write transaction: the lease on `key` and the time to judge it by, with the
    /// lease kept from changing until the transaction ends (a fence check).
    fn lease_in_transaction(
        &mut self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<(Option<LeaseRow>, DateTime<Utc>), BackendError>;
}
