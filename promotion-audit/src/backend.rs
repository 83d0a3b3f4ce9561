//! The storage interface backends implement: rows of entries, Merkle nodes and checkpoints,
//! written in transactions. All hashing, chaining and signing is done once, above it, by
//! [`AuditStore`](crate::AuditStore); a backend only keeps bytes and enforces uniqueness.

use chrono::{DateTime, Utc};
use promotion_core::lease::LeaseRow;
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
