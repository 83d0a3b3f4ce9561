//! The storage interface backends implement: rows of entries, Merkle nodes and checkpoints,
//! written in transactions. All hashing, chaining and signing is done once, above it, by
//! [`AuditStore`](crate::AuditStore); a backend only keeps bytes and enforces uniqueness.

use promotion_core::StreamId;

use crate::entry::StoredEntry;
use crate::error::BackendError;
use crate::merkle::Hash;

/// The head of the log as read at the start of a write transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Number of entries.
    pub size: u64,
    /// Hash of the last entry ([`GENESIS_PREV`](crate::entry::GENESIS_PREV) when empty).
    pub last: Hash,
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
    /// Merkle nodes of `level` with index from `from`, up to `limit`, as (index, hash).
    fn read_nodes(
        &self,
        level: u8,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Hash)>, BackendError>;
    /// One Merkle node.
    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, BackendError>;
    /// The checkpoint with the largest tree size, as (size, note).
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, BackendError>;
    /// Every stream.
    fn streams(&self) -> Result<Vec<StreamId>, BackendError>;
}
