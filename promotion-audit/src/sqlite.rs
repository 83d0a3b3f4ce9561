//! The SQLite backend: one file, WAL mode, durable commits (`synchronous = FULL`), a WAL kept
//! to [`WAL_CHECKPOINT_PAGES`] even under a steady stream of commits.
//!
//! Entries are stored in blocks of consecutive entries, one row each (see the `blocks` table
//! in `schema.rs`), so that a group commit inserts a few rows rather than one row and several
//! index entries per entry, and verification reads a few rows per thousand entries. Which entries
//! belong to which stream is kept in a separate `stream_index`, filled in bulk every
//! [`INDEX_EVERY`] entries; entries not yet in it are found through the directories of the
//! last blocks. Merkle nodes below level [`NODE_LEVEL`] are not stored: they are recomputed
//! from the leaf hashes the blocks keep. A read by stream takes each block's directory and
//! hashes, then only its entries' bytes out of the block's data (incremental blob I/O).
//!
//! This file holds the layout's constants, the connection and the words errors give their
//! causes in; `create.rs` creates a new file's schema in one transaction (and finishes one an
//! older build left half-created), `schema.rs` opens, checks and upgrades a file, `read.rs`
//! and `write.rs` read and lay out blocks and the stream index, `backend.rs` is the
//! [`Backend`](crate::Backend) implementation over them, and `harness` the conformance
//! harness.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use promotion_core::StreamId;
use rusqlite::Connection;

use crate::error::{AuditError, BackendError};
use crate::merkle::Hash;

mod backend;
mod create;
#[cfg(any(test, feature = "conformance"))]
pub mod harness;
mod read;
mod schema;
mod wal;
mod write;

pub use wal::{free_space, wal_bound, ADAPT_EVERY, WAL_FREE_SHARE, WAL_MIN_BYTES};

/// `PRAGMA application_id` of a promotion audit log ("PRAL").
pub const APPLICATION_ID: i32 = 0x5052_414c;
/// Schema version written to `PRAGMA user_version`: 1 had the log's tables with one row per
/// entry, 2 added `leases`, 3 stores entries in blocks. A writer that opens an older file
/// upgrades it in one transaction (the entries' bytes and hashes are copied unchanged).
pub const SCHEMA_VERSION: i32 = 3;

/// A block is closed at this many entries…
pub const BLOCK_MAX_ENTRIES: u64 = 64;
/// …or when the next entry would take its data past this many bytes (a single larger entry
/// gets a block of its own).
pub const BLOCK_MAX_BYTES: usize = 16 * 1024;
/// A commit adds its first entries to the last block while that block holds less than this
/// many bytes, so that logs written one entry at a time are not one row per entry.
pub const BLOCK_GROW_BELOW: usize = 8 * 1024;
/// The stream index is brought up to date once this many entries are missing from it.
pub const INDEX_EVERY: u64 = 2048;
/// Merkle nodes of this level and above are stored; lower ones are computed from at most
/// `2^NODE_LEVEL` leaf hashes when a proof needs them.
pub const NODE_LEVEL: u8 = 6;

/// The blocks holding entries from `?1` on, in order: the one containing `?1` (found as the
/// last block starting at or before it) and every later one.
const BLOCKS_FROM: &str = "FROM blocks WHERE first >= \
    COALESCE((SELECT MAX(first) FROM blocks WHERE first <= ?1), 0) ORDER BY first";

/// WAL size, in pages, past which a commit checkpoints the WAL itself (64 MiB of 4 KiB pages),
/// when the volume has room for it (see [`wal_bound`]). Below it, the store's reader does, off
/// the commit path; the bound matters under a sustained stream of commits, which would
/// otherwise grow the WAL without end (to the size of the log, slowing every read down with
/// it).
pub const WAL_CHECKPOINT_PAGES: u32 = 16_384;

/// The WAL's configured most by default, in bytes: past it a commit checkpoints, and the file
/// is cut back to it when it starts over (`PRAGMA journal_size_limit`). On a volume with less
/// than [`WAL_FREE_SHARE`] times this free, the bound is a share of the free space instead
/// ([`wal_bound`]).
pub const WAL_KEEP_BYTES: u64 = 64 * 1024 * 1024;

/// Most stream ids or names a connection remembers; past it, it forgets them all.
const MAX_CACHED_STREAMS: usize = 100_000;

/// A connection to a SQLite audit log file.
#[derive(Debug)]
pub struct SqliteBackend {
    conn: Connection,
    path: PathBuf,
    /// Stream ids by name, as committed (ids are never reused once committed).
    sids: HashMap<StreamId, u64>,
    /// Stream names by id, as committed, for readers.
    names: RefCell<HashMap<u64, StreamId>>,
    /// The write transaction in progress.
    txn: Option<Txn>,
    /// The WAL's bound and when to look at it again.
    wal: wal::Wal,
    /// For readers: the entries not yet in the stream index, by stream, kept up to date from
    /// the new blocks only, so that a read by stream does not scan every unindexed block.
    tail: RefCell<Tail>,
}

/// The entries from `upto` (the stream index's end) to `end`, by stream id, as
/// (version, sequence number) in log order.
#[derive(Debug, Default)]
struct Tail {
    upto: u64,
    end: u64,
    streams: HashMap<u64, Vec<(u64, u64)>>,
}

/// What a write transaction knows.
#[derive(Debug)]
struct Txn {
    /// Entries below this are in `stream_index`.
    upto: u64,
    /// The last block: (first, count, bytes of data).
    last: Option<(u64, u64, usize)>,
    /// Streams given an id in this transaction (forgotten if it rolls back).
    new_sids: HashMap<StreamId, u64>,
}

/// A SQLite failure while doing `what` to the file at `path`: the message names the cause in
/// words ([`cause_in_words`]), the SQLite error is the source.
fn sql<'p>(what: &str, path: &'p Path) -> impl FnOnce(rusqlite::Error) -> BackendError + 'p {
    let what = what.to_owned();
    move |e| {
        let cause = match e.sqlite_error_code() {
            // SQLite says only that it cannot open a file; the file system says why.
            Some(rusqlite::ErrorCode::CannotOpen) => open_cause(path).unwrap_or_else(|| {
                format!(
                    "cannot open its -wal or -shm file (is its directory read-only, or not \
                     writable by this user?) ({e})"
                )
            }),
            _ => cause_in_words(&e),
        };
        BackendError::with(format!("{what} in {}: {cause}", path.display()), e)
    }
}

/// What went wrong, in the words an operator acts on: disk full, read-only file or mount,
/// permission denied, database locked, corrupted file; SQLite's own text (kept as the error's
/// source) follows in parentheses.
pub(crate) fn cause_in_words(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode as C;
    let Some(code) = e.sqlite_error_code() else {
        return e.to_string();
    };
    let words = match code {
        C::DiskFull => "disk full",
        C::ReadOnly => "read-only file or mount",
        C::PermissionDenied | C::AuthorizationForStatementDenied => "permission denied",
        C::DatabaseBusy | C::DatabaseLocked => {
            "database locked (another connection held it past the busy timeout)"
        }
        C::DatabaseCorrupt => "corrupted file",
        C::NotADatabase => "not a database, or a corrupted file",
        C::SystemIoFailure => "I/O error (a failing disk, or a file removed or changed underneath)",
        C::CannotOpen => "cannot open the file (permission denied, or a missing directory)",
        C::OutOfMemory => "out of memory",
        _ => return e.to_string(),
    };
    format!("{words} ({e})")
}

/// The kind of a SQLite failure, for [`cause_of`](crate::error::cause_of).
pub(crate) fn cause_kind(e: &rusqlite::Error) -> Option<crate::error::Cause> {
    use crate::error::Cause;
    use rusqlite::ErrorCode as C;
    Some(match e.sqlite_error_code()? {
        C::DiskFull => Cause::DiskFull,
        C::ReadOnly => Cause::ReadOnly,
        C::PermissionDenied | C::AuthorizationForStatementDenied => Cause::PermissionDenied,
        C::DatabaseBusy | C::DatabaseLocked => Cause::Locked,
        C::DatabaseCorrupt | C::NotADatabase => Cause::Corrupted,
        _ => return None,
    })
}

/// The reason the file system gives for not opening `path` for reading and writing, in the
/// words of [`cause_in_words`]; `None` if it opens.
pub(crate) fn open_cause(path: &Path) -> Option<String> {
    let e = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .err()?;
    let words = match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied",
        std::io::ErrorKind::ReadOnlyFilesystem => "read-only file or mount",
        std::io::ErrorKind::StorageFull => "disk full",
        std::io::ErrorKind::NotFound => "no such file or directory",
        _ => return Some(e.to_string()),
    };
    Some(format!("{words} ({e})"))
}

fn hash_of(bytes: &[u8], what: &str, seq: u64) -> Result<Hash, BackendError> {
    bytes.try_into().map_err(|_| {
        BackendError::tampered(
            seq,
            format!("{what} is not a 32-byte hash"),
            format!("{} bytes", bytes.len()),
        )
    })
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
impl SqliteBackend {
    /// Opens (creating if absent) the log at `path` and returns two connections: one for the
    /// writer, one for readers. A file of another application, a newer schema, or a file
    /// that is not a database is refused with [`AuditError::ForeignFile`]. A file of an older
    /// schema is upgraded.
    pub fn open_pair(path: &Path) -> Result<(SqliteBackend, SqliteBackend), AuditError> {
        Self::open_pair_with_wal_limit(path, WAL_KEEP_BYTES)
    }

    /// Like [`open_pair`](Self::open_pair), with the WAL allowed at most `max_bytes` (instead
    /// of [`WAL_KEEP_BYTES`]) before a commit checkpoints it and it is cut back; it is bounded
    /// further by the free space of the volume ([`wal_bound`]). A volume shared with other
    /// data, or a log that must leave room on a small disk, wants a lower one.
    pub fn open_pair_with_wal_limit(
        path: &Path,
        max_bytes: u64,
    ) -> Result<(SqliteBackend, SqliteBackend), AuditError> {
        let mut writer = Self::open_one(path, true)?;
        writer.wal = wal::Wal::new(max_bytes);
        writer.adapt_wal()?;
        let reader = Self::open_one(path, false)?;
        Ok((writer, reader))
    }

    /// Like [`open_pair`](Self::open_pair) but never creates or changes anything: a missing
    /// file, or a file that holds no audit log, is refused, and so is a file of an older
    /// schema (open it once with [`open_pair`](Self::open_pair), as any writer does, to upgrade
    /// it). Verifiers use this, so that verifying the wrong path cannot "succeed" on a freshly
    /// created, empty log.
    pub fn open_existing_pair(path: &Path) -> Result<(SqliteBackend, SqliteBackend), AuditError> {
        if !path.is_file() {
            return Err(AuditError::ForeignFile {
                path: path.display().to_string(),
                problem: "no such file".into(),
            });
        }
        let writer = Self::open_one(path, false)?;
        let reader = Self::open_one(path, false)?;
        Ok((writer, reader))
    }

    /// The underlying connection, for tests that tamper with the file through raw SQL.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn err(&self, what: &str) -> impl FnOnce(rusqlite::Error) -> BackendError + '_ {
        sql(what, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::ffi;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn each_cause_an_operator_acts_on_is_named_in_words() {
        for (code, words) in [
            (ffi::SQLITE_FULL, "disk full"),
            (ffi::SQLITE_READONLY, "read-only file or mount"),
            (ffi::SQLITE_PERM, "permission denied"),
            (ffi::SQLITE_BUSY, "database locked"),
            (ffi::SQLITE_LOCKED, "database locked"),
            (ffi::SQLITE_CORRUPT, "corrupted file"),
            (ffi::SQLITE_NOTADB, "corrupted file"),
            (ffi::SQLITE_IOERR, "I/O error"),
        ] {
            let said = super::cause_in_words(&failure(code));
            assert!(
                said.starts_with(words) || said.contains(words),
                "{code}: {said}"
            );
        }
    }

    #[test]
    fn the_message_names_the_cause_and_the_source_keeps_it() {
        let path = std::path::Path::new("/var/lib/promote/audit.db");
        let e = super::sql("committing", path)(failure(ffi::SQLITE_FULL));
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(
            e.message,
            format!("committing in /var/lib/promote/audit.db: disk full ({source})")
        );
        assert!(source.contains("database is full"), "{source}");
    }
}
