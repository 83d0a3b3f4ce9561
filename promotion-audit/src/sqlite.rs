//! The SQLite backend: one file, WAL mode, durable commits (`synchronous = FULL`), a WAL kept
//! to [`WAL_CHECKPOINT_PAGES`] even under a steady stream of commits.
//!
//! Entries are stored in blocks of consecutive entries, one row each (see the `blocks` table
//! below), so that a group commit inserts a few rows rather than one row and several index
//! entries per entry, and verification reads a few rows per thousand entries. Which entries
//! belong to which stream is kept in a separate `stream_index`, filled in bulk every
//! [`INDEX_EVERY`] entries; entries not yet in it are found through the directories of the
//! last blocks. Merkle nodes below level [`NODE_LEVEL`] are not stored: they are recomputed
//! from the leaf hashes the blocks keep. A read by stream takes each block's directory and
//! hashes, then only its entries' bytes out of the block's data (incremental blob I/O).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use promotion_core::lease::{LeaseRow, ReplicaId};
use promotion_core::StreamId;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::backend::{Backend, EntryChunk, Head, LeaseChange, StreamIndexSummary, StreamIndexed};
use crate::block::{directory, BlockBuf, BlockEntry, BlockIndex, BlockRef};
use crate::entry::{StoredEntry, GENESIS_PREV};
use crate::error::{AuditError, BackendError};
use crate::merkle::{Frontier, Hash};

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

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS streams (
    sid  INTEGER PRIMARY KEY,
    name TEXT    NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS blocks (
    first  INTEGER PRIMARY KEY,
    count  INTEGER NOT NULL,
    dir    BLOB    NOT NULL,
    hashes BLOB    NOT NULL,
    data   BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS stream_index (
    sid     INTEGER NOT NULL,
    version INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (sid, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_counts (
    sid     INTEGER PRIMARY KEY,
    entries INTEGER NOT NULL,
    seq_sum INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS indexed (
    id   INTEGER PRIMARY KEY CHECK (id = 0),
    upto INTEGER NOT NULL
);
INSERT OR IGNORE INTO indexed (id, upto) VALUES (0, 0);
CREATE TABLE IF NOT EXISTS nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT    NOT NULL
);
";

/// Coordination state for replicas (schema 2); not part of the log.
const LEASES: &str = "
CREATE TABLE IF NOT EXISTS leases (
    key        TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    token      INTEGER NOT NULL,
    expires_us INTEGER NOT NULL
);
";

/// The blocks holding entries from `?1` on, in order: the one containing `?1` (found as the
/// last block starting at or before it) and every later one.
const BLOCKS_FROM: &str = "FROM blocks WHERE first >= \
    COALESCE((SELECT MAX(first) FROM blocks WHERE first <= ?1), 0) ORDER BY first";

/// WAL size, in pages, past which a commit checkpoints the WAL itself (64 MiB of 4 KiB pages).
/// Below it, the store's reader does, off the commit path; the bound matters under a sustained
/// stream of commits, which would otherwise grow the WAL without end (to the size of the log,
/// slowing every read down with it).
pub const WAL_CHECKPOINT_PAGES: u32 = 16_384;

/// Bytes the WAL file is cut back to when it starts over (`PRAGMA journal_size_limit`).
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

fn sql<'p>(what: &str, path: &'p Path) -> impl FnOnce(rusqlite::Error) -> BackendError + 'p {
    let what = what.to_owned();
    move |e| BackendError::with(format!("{what} in {}", path.display()), e)
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
        let writer = Self::open_one(path, true)?;
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

    fn open_one(path: &Path, create: bool) -> Result<SqliteBackend, AuditError> {
        let foreign = |problem: String| AuditError::ForeignFile {
            path: path.display().to_string(),
            problem,
        };
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| BackendError::with(format!("cannot open {}", path.display()), e))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(sql("setting the busy timeout", path))?;
        // Reading the header is the first access: a file that is not a database fails here.
        let app_id: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| foreign(format!("not a SQLite database ({e})")))?;
        let user_version: i32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| foreign(format!("unreadable header ({e})")))?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| foreign(format!("unreadable schema ({e})")))?;
        if app_id == 0 && tables == 0 {
            if !create {
                return Err(foreign(
                    "it holds no audit log (was only the .db file copied without its -wal file?)"
                        .into(),
                ));
            }
            conn.execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA application_id = {APPLICATION_ID};
                 PRAGMA user_version = {SCHEMA_VERSION}; {TABLES} {LEASES}"
            ))
            .map_err(sql("creating the schema", path))?;
        } else if app_id != APPLICATION_ID {
            return Err(foreign(format!(
                "its application id is {app_id:#x}, not {APPLICATION_ID:#x}"
            )));
        } else if user_version > SCHEMA_VERSION {
            return Err(foreign(format!(
                "written by a newer version (schema {user_version}; this build reads up to {SCHEMA_VERSION})"
            )));
        } else if user_version < SCHEMA_VERSION {
            if !create {
                return Err(foreign(format!(
                    "written by an older version (schema {user_version}; this build reads \
                     {SCHEMA_VERSION}): open it once with a writer (AuditStore::open_sqlite, or \
                     any `promote` command that records) to upgrade it, or verify a copy that was"
                )));
            }
            migrate(&conn, user_version, path)?;
        }
        // Commits leave checkpointing the WAL to the store's reader, between reads
        // (`Backend::maintain`), so the writer's commit path stays short. But SQLite only starts
        // the WAL over once every frame in it is copied, which the reader's checkpoints never
        // achieve while commits keep coming; so past WAL_CHECKPOINT_PAGES a commit checkpoints
        // what the reader has not copied yet, the next one starts the WAL over, and the file is
        // cut back to WAL_KEEP_BYTES.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES};
             PRAGMA journal_size_limit = {WAL_KEEP_BYTES};"
        ))
        .map_err(sql("setting durability", path))?;
        Ok(SqliteBackend {
            conn,
            path: path.to_owned(),
            sids: HashMap::new(),
            names: RefCell::new(HashMap::new()),
            txn: None,
            tail: RefCell::new(Tail::default()),
        })
    }

    /// The underlying connection, for tests that tamper with the file through raw SQL.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn err(&self, what: &str) -> impl FnOnce(rusqlite::Error) -> BackendError + '_ {
        sql(what, &self.path)
    }

    /// Runs `f` in one read transaction unless one (or the writer's) is already open, so that
    /// the index, the blocks and `indexed` are read from one snapshot.
    fn snapshot<R>(
        &self,
        f: impl FnOnce(&Self) -> Result<R, BackendError>,
    ) -> Result<R, BackendError> {
        if !self.conn.is_autocommit() {
            return f(self);
        }
        self.conn
            .prepare_cached("BEGIN DEFERRED")
            .and_then(|mut s| s.execute([]))
            .map_err(self.err("starting a read"))?;
        let out = f(self);
        // A read transaction has nothing to keep: ending it cannot lose anything.
        let _ = self
            .conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]));
        out
    }

    fn upto(&self) -> Result<u64, BackendError> {
        self.conn
            .prepare_cached("SELECT upto FROM indexed WHERE id = 0")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)).optional())
            .map(|v| v.map_or(0, uint))
            .map_err(self.err("reading how far the stream index reaches"))
    }

    /// Brings the reader's view of the unindexed entries up to date with the log (inside a
    /// snapshot): drops what the index now holds, adds the entries appended since.
    fn refresh_tail(&self, upto: u64) -> Result<(), BackendError> {
        let size = self.size()?;
        let mut tail = self.tail.borrow_mut();
        if upto < tail.upto || size < tail.end {
            // The log is not the one this view was built from (replaced or damaged): rebuild.
            *tail = Tail::default();
        }
        if upto > tail.upto || tail.end < upto {
            tail.streams.retain(|_, entries| {
                entries.retain(|&(_, seq)| seq >= upto);
                !entries.is_empty()
            });
            tail.upto = upto;
            tail.end = tail.end.max(upto);
        }
        if tail.end < size {
            let from = tail.end;
            let Tail { streams, end, .. } = &mut *tail;
            self.each_dir_entry(from, &mut |seq, sid, version| {
                streams.entry(sid).or_default().push((version, seq));
                *end = (*end).max(seq.saturating_add(1));
            })?;
        }
        Ok(())
    }

    /// The id of `stream` if it has one (committed, or given in the open transaction).
    fn find_sid(&self, stream: &StreamId) -> Result<Option<u64>, BackendError> {
        if let Some(sid) = self.sids.get(stream) {
            return Ok(Some(*sid));
        }
        if let Some(sid) = self.txn.as_ref().and_then(|t| t.new_sids.get(stream)) {
            return Ok(Some(*sid));
        }
        self.conn
            .prepare_cached("SELECT sid FROM streams WHERE name = ?1")
            .and_then(|mut s| {
                s.query_row([stream.as_str()], |r| r.get::<_, i64>(0))
                    .optional()
            })
            .map(|v| v.map(uint))
            .map_err(self.err("looking up a stream"))
    }

    /// The id of `stream`, giving it one if it has none (inside the write transaction).
    fn sid(&mut self, stream: &StreamId) -> Result<u64, BackendError> {
        if let Some(sid) = self.find_sid(stream)? {
            if self
                .txn
                .as_ref()
                .is_some_and(|t| t.new_sids.contains_key(stream))
            {
                return Ok(sid);
            }
            if self.sids.len() > MAX_CACHED_STREAMS {
                self.sids.clear();
            }
            self.sids.insert(stream.clone(), sid);
            return Ok(sid);
        }
        self.conn
            .prepare_cached("INSERT INTO streams (name) VALUES (?1)")
            .and_then(|mut s| s.execute([stream.as_str()]))
            .map_err(self.err("recording a new stream"))?;
        let sid = uint(self.conn.last_insert_rowid());
        if let Some(t) = self.txn.as_mut() {
            t.new_sids.insert(stream.clone(), sid);
        }
        Ok(sid)
    }

    /// The stream name of id `sid`, as a reader sees it; `seq` names the entry for the error.
    fn name(&self, sid: u64, seq: u64) -> Result<StreamId, BackendError> {
        if let Some(name) = self.names.borrow().get(&sid) {
            return Ok(name.clone());
        }
        let name: Option<String> = self
            .conn
            .prepare_cached("SELECT name FROM streams WHERE sid = ?1")
            .and_then(|mut s| s.query_row([int(sid)], |r| r.get(0)).optional())
            .map_err(self.err("reading a stream name"))?;
        let name = name.ok_or_else(|| {
            BackendError::tampered(
                seq,
                "the entry's stream id is unknown",
                format!("stream id {sid}"),
            )
        })?;
        let name = StreamId::new(name).map_err(|e| {
            BackendError::tampered(seq, "a stored stream name is invalid", e.to_string())
        })?;
        let mut names = self.names.borrow_mut();
        if names.len() > MAX_CACHED_STREAMS {
            names.clear();
        }
        names.insert(sid, name.clone());
        Ok(name)
    }

    /// Calls `f` with every block from the one holding entry `from` on, in order, until `f`
    /// returns false.
    fn each_block(
        &self,
        from: u64,
        f: &mut dyn FnMut(BlockRef<'_>) -> Result<bool, BackendError>,
    ) -> Result<(), BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT first, count, dir, hashes, data {BLOCKS_FROM}"
            ))
            .map_err(self.err("reading blocks"))?;
        let mut rows = stmt
            .query([int(from)])
            .map_err(self.err("reading blocks"))?;
        while let Some(r) = rows.next().map_err(self.err("reading blocks"))? {
            let block = block_of(r).map_err(self.err("reading a block"))??;
            if !f(block)? {
                break;
            }
        }
        Ok(())
    }

    /// Calls `f` with each of up to `limit` entries from `from` on, in stored order, in one
    /// snapshot: what `read_range` and `read_chunk` return, each in its own shape.
    fn each_entry(
        &self,
        from: u64,
        limit: usize,
        f: &mut dyn FnMut(&Self, BlockEntry<'_>) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        self.snapshot(|this| {
            let mut taken = 0usize;
            this.each_block(from, &mut |block| {
                for e in block.entries().filter(|e| e.seq >= from) {
                    if taken >= limit {
                        return Ok(false);
                    }
                    f(this, e)?;
                    taken += 1;
                }
                Ok(taken < limit)
            })
        })
    }

    /// Calls `f` with (seq, stream id, version) of every entry from `from` on, reading only the
    /// blocks' directories.
    fn each_dir_entry(
        &self,
        from: u64,
        f: &mut dyn FnMut(u64, u64, u64),
    ) -> Result<(), BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT first, count, dir {BLOCKS_FROM}"))
            .map_err(self.err("reading block directories"))?;
        let mut rows = stmt
            .query([int(from)])
            .map_err(self.err("reading block directories"))?;
        while let Some(r) = rows.next().map_err(self.err("reading block directories"))? {
            let (first, count) = (
                r.get::<_, i64>(0).map_err(self.err("reading a block"))?,
                r.get::<_, i64>(1).map_err(self.err("reading a block"))?,
            );
            let dir = blob(r, 2).map_err(self.err("reading a block"))?;
            let entries = directory(first, count, dir).map_err(|problem| {
                BackendError::tampered(uint(first), "a block is malformed", problem)
            })?;
            for (seq, sid, version) in entries.filter(|(seq, _, _)| *seq >= from) {
                f(seq, sid, version);
            }
        }
        Ok(())
    }

    /// The entries of `stream` (id `sid`) at the checked `(version, seq)` positions `wanted`.
    /// Reads each block's directory and hashes, then only the wanted entries' bytes out of its
    /// data (incremental blob I/O): an event is a few hundred bytes of a block of up to 16 KiB.
    fn read_wanted(
        &self,
        stream: &StreamId,
        sid: u64,
        wanted: &[(u64, u64)],
    ) -> Result<Vec<StoredEntry>, BackendError> {
        let mut out = Vec::with_capacity(wanted.len());
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT first, count, dir, hashes, octet_length(data) FROM blocks
                 WHERE first = (SELECT MAX(first) FROM blocks WHERE first <= ?1)",
            )
            .map_err(self.err("reading blocks"))?;
        let mut data: Option<rusqlite::blob::Blob<'_>> = None;
        let mut next = wanted.iter().peekable();
        while let Some(&&(_, at)) = next.peek() {
            let not_stored = || {
                BackendError::tampered(
                    at,
                    "the stream index points at an entry that is not stored",
                    "no such entry",
                )
            };
            let mut rows = stmt.query([int(at)]).map_err(self.err("reading blocks"))?;
            let row = rows
                .next()
                .map_err(self.err("reading blocks"))?
                .ok_or_else(not_stored)?;
            let first: i64 = row.get(0).map_err(self.err("reading a block"))?;
            let count: i64 = row.get(1).map_err(self.err("reading a block"))?;
            let (dir, hashes) = (
                blob(row, 2).map_err(self.err("reading a block"))?,
                blob(row, 3).map_err(self.err("reading a block"))?,
            );
            let len: i64 = row.get(4).map_err(self.err("reading a block"))?;
            let block =
                BlockIndex::parse(first, count, dir, hashes, uint(len)).map_err(|problem| {
                    BackendError::tampered(uint(first), "a block is malformed", problem)
                })?;
            if at >= block.end() {
                return Err(not_stored());
            }
            let handle = match data.as_mut() {
                Some(handle) => {
                    handle.reopen(first).map_err(self.err("reading a block"))?;
                    handle
                }
                None => data.insert(
                    self.conn
                        .blob_open(rusqlite::MAIN_DB, c"blocks", c"data", first, true)
                        .map_err(self.err("reading a block"))?,
                ),
            };
            while let Some(&&(version, seq)) = next.peek().filter(|w| w.1 < block.end()) {
                let e = block.locate(seq).ok_or_else(|| {
                    BackendError::tampered(
                        seq,
                        "a block does not hold its own entry",
                        "no such entry",
                    )
                })?;
                if e.sid != sid || e.version != version {
                    return Err(BackendError::tampered(
                        seq,
                        "the stream index points at another stream's entry",
                        format!("stream id {} version {}", e.sid, e.version),
                    ));
                }
                let mut bytes = vec![0u8; e.len];
                let offset = usize::try_from(e.offset).unwrap_or(usize::MAX);
                handle
                    .read_at_exact(&mut bytes, offset)
                    .map_err(self.err("reading an entry"))?;
                out.push(StoredEntry {
                    seq,
                    stream: stream.clone(),
                    version,
                    bytes,
                    hash: e.hash,
                });
                next.next();
            }
        }
        Ok(out)
    }

    /// The leaf hashes of entries `from .. from + n`, or `None` if the log is shorter. Reads
    /// only the blocks' hash columns.
    fn leaf_hashes(&self, from: u64, n: u64) -> Result<Option<Vec<Hash>>, BackendError> {
        let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0).min(1 << 16));
        let end = from.saturating_add(n);
        let what = "reading leaf hashes";
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT first, count, hashes {BLOCKS_FROM}"))
            .map_err(self.err(what))?;
        let mut rows = stmt.query([int(from)]).map_err(self.err(what))?;
        while let Some(r) = rows.next().map_err(self.err(what))? {
            let first = uint(r.get(0).map_err(self.err(what))?);
            let count: i64 = r.get(1).map_err(self.err(what))?;
            let hashes = blob(r, 2).map_err(self.err(what))?;
            if usize::try_from(count).map_or(true, |c| hashes.len() != c.saturating_mul(32)) {
                return Err(BackendError::tampered(
                    first,
                    "a block is malformed",
                    format!("{} bytes of hashes for {count} entries", hashes.len()),
                ));
            }
            for (i, h) in hashes.chunks_exact(32).enumerate() {
                let seq = first.saturating_add(i as u64);
                if seq >= from && seq < end {
                    out.push(hash_of(h, "a leaf hash", seq)?);
                }
            }
            if first.saturating_add(uint(count)) >= end {
                break;
            }
        }
        Ok((out.len() as u64 == n).then_some(out))
    }

    /// A Merkle node below [`NODE_LEVEL`], from its leaves.
    fn computed_node(&self, level: u8, index: u64) -> Result<Option<Hash>, BackendError> {
        let width = 1u64 << level;
        let Some(leaves) = self.leaf_hashes(index.saturating_mul(width), width)? else {
            return Ok(None);
        };
        let mut f = Frontier::new();
        for leaf in leaves {
            f.push(leaf);
        }
        Ok(Some(f.root()))
    }

    /// Adds every entry from `upto` to `size` to the stream index, sorted, so that each index
    /// page is written once per [`INDEX_EVERY`] entries rather than once per commit.
    fn index_tail(&mut self, upto: u64, size: u64) -> Result<(), BackendError> {
        let mut rows = Vec::new();
        self.each_dir_entry(upto, &mut |seq, sid, version| {
            if seq < size {
                rows.push((sid, version, seq));
            }
        })?;
        rows.sort_unstable();
        let mut counts: Vec<(u64, u64, u64)> = Vec::new();
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO stream_index (sid, version, seq) VALUES (?1, ?2, ?3)")
            .map_err(self.err("indexing streams"))?;
        for (sid, version, seq) in rows {
            stmt.execute(params![int(sid), int(version), int(seq)])
                .map_err(self.err("indexing streams"))?;
            match counts.last_mut() {
                Some(c) if c.0 == sid => *c = (sid, c.1 + 1, c.2.wrapping_add(seq)),
                _ => counts.push((sid, 1, seq)),
            }
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO stream_counts (sid, entries, seq_sum) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sid) DO UPDATE SET entries = entries + excluded.entries,
                 seq_sum = seq_sum + excluded.seq_sum",
            )
            .map_err(self.err("counting indexed entries"))?;
        for (sid, entries, seq_sum) in counts {
            stmt.execute(params![int(sid), int(entries), int(seq_sum)])
                .map_err(self.err("counting indexed entries"))?;
        }
        self.conn
            .prepare_cached("UPDATE indexed SET upto = ?1 WHERE id = 0")
            .and_then(|mut s| s.execute([int(size)]))
            .map_err(self.err("indexing streams"))?;
        if let Some(t) = self.txn.as_mut() {
            t.upto = size;
        }
        Ok(())
    }

    /// Writes `block` (entries from `first`) as a new row, or onto the end of the last block.
    fn write_block(
        &mut self,
        first: u64,
        block: &BlockBuf,
        grow: bool,
    ) -> Result<(), BackendError> {
        if grow {
            self.conn
                .prepare_cached(
                    // `||` yields text; cast back, byte for byte, to a blob.
                    "UPDATE blocks SET count = count + ?1, dir = CAST(dir || ?2 AS BLOB),
                     hashes = CAST(hashes || ?3 AS BLOB), data = CAST(data || ?4 AS BLOB)
                     WHERE first = ?5",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        int(block.count),
                        block.dir,
                        block.hashes,
                        block.data,
                        int(first)
                    ])
                })
                .map_err(self.err("adding entries to a block"))?;
        } else {
            self.conn
                .prepare_cached(
                    "INSERT INTO blocks (first, count, dir, hashes, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        int(first),
                        int(block.count),
                        block.dir,
                        block.hashes,
                        block.data
                    ])
                })
                .map_err(self.err("inserting a block"))?;
        }
        Ok(())
    }
}

/// Column `i` of row `r` as a blob, borrowed from the row.
fn blob<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r [u8]> {
    r.get_ref(i)?.as_blob().map_err(Into::into)
}

/// A block row as (first, count, dir, hashes, data), parsed; the outer error is SQLite's, the
/// inner one a malformed block.
fn block_of<'r>(r: &'r rusqlite::Row<'_>) -> rusqlite::Result<Result<BlockRef<'r>, BackendError>> {
    let first: i64 = r.get(0)?;
    let count: i64 = r.get(1)?;
    let (dir, hashes, data) = (blob(r, 2)?, blob(r, 3)?, blob(r, 4)?);
    Ok(BlockRef::parse(first, count, dir, hashes, data)
        .map_err(|problem| BackendError::tampered(uint(first), "a block is malformed", problem)))
}

/// Upgrades a file of schema `from` (1 or 2: one row per entry) to blocks, in one transaction.
fn migrate(conn: &Connection, from: i32, path: &Path) -> Result<(), AuditError> {
    let step = |what: &str| {
        sql(
            &format!("upgrading the schema from version {from}: {what}"),
            path,
        )
    };
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(step("locking the file"))?;
    let done = (|| -> Result<(), BackendError> {
        // Another writer may have upgraded it while this one waited for the lock.
        let now: i32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(step("reading the version"))?;
        if now >= SCHEMA_VERSION {
            return Ok(());
        }
        conn.execute_batch(&format!("{LEASES} {TABLES}"))
            .map_err(step("creating tables"))?;
        conn.execute_batch(&format!(
            "INSERT INTO streams (name) SELECT stream FROM entries GROUP BY stream ORDER BY MIN(seq);
             INSERT INTO stream_index (sid, version, seq)
                 SELECT s.sid, e.version, e.seq FROM entries e JOIN streams s ON s.name = e.stream;
             INSERT INTO stream_counts (sid, entries, seq_sum)
                 SELECT sid, count(*), sum(seq) FROM stream_index GROUP BY sid;
             UPDATE indexed SET upto = (SELECT COALESCE(MAX(seq) + 1, 0) FROM entries);
             DELETE FROM nodes WHERE level < {NODE_LEVEL};",
        ))
        .map_err(step("indexing streams"))?;
        let mut sids: HashMap<String, u64> = HashMap::new();
        {
            let mut s = conn
                .prepare("SELECT sid, name FROM streams")
                .map_err(step("reading streams"))?;
            let mut rows = s.query([]).map_err(step("reading streams"))?;
            while let Some(r) = rows.next().map_err(step("reading streams"))? {
                let sid: i64 = r.get(0).map_err(step("reading streams"))?;
                sids.insert(r.get(1).map_err(step("reading streams"))?, uint(sid));
            }
        }
        let mut insert = conn
            .prepare(
                "INSERT INTO blocks (first, count, dir, hashes, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(step("writing blocks"))?;
        let mut flush = |first: u64, block: &mut BlockBuf| -> Result<(), BackendError> {
            if !block.is_empty() {
                insert
                    .execute(params![
                        int(first),
                        int(block.count),
                        block.dir,
                        block.hashes,
                        block.data
                    ])
                    .map_err(step("writing blocks"))?;
                block.clear();
            }
            Ok(())
        };
        let mut s = conn
            .prepare("SELECT seq, stream, version, bytes, hash FROM entries ORDER BY seq")
            .map_err(step("reading entries"))?;
        let mut rows = s.query([]).map_err(step("reading entries"))?;
        let mut block = BlockBuf::default();
        let mut first = 0u64;
        while let Some(r) = rows.next().map_err(step("reading entries"))? {
            let seq = uint(r.get(0).map_err(step("reading entries"))?);
            let stream: String = r.get(1).map_err(step("reading entries"))?;
            let version = uint(r.get(2).map_err(step("reading entries"))?);
            let bytes = blob(r, 3).map_err(step("reading entries"))?;
            let hash = blob(r, 4).map_err(step("reading entries"))?;
            // Rows are copied as they are; a gap (a deleted row) starts a new block, so that
            // verification still finds it where it was.
            let full = block.count >= BLOCK_MAX_ENTRIES
                || block.data.len() + bytes.len() > BLOCK_MAX_BYTES;
            if !block.is_empty() && (seq != first + block.count || full) {
                flush(first, &mut block)?;
            }
            if block.is_empty() {
                first = seq;
            }
            let sid = sids.get(&stream).copied().unwrap_or(0);
            block.push(sid, version, bytes, hash);
        }
        flush(first, &mut block)?;
        conn.execute_batch(&format!(
            "DROP TABLE entries; PRAGMA user_version = {SCHEMA_VERSION};"
        ))
        .map_err(step("dropping the old table"))?;
        Ok(())
    })();
    match done {
        Ok(()) => conn
            .execute_batch("COMMIT")
            .map_err(step("committing"))
            .map_err(AuditError::from),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e.into())
        }
    }
}

fn lease_row(conn: &Connection, key: &str) -> rusqlite::Result<Option<LeaseRow>> {
    conn.prepare_cached("SELECT holder, token, expires_us FROM leases WHERE key = ?1")?
        .query_row([key], |r| {
            let holder: String = r.get(0)?;
            let bad = |i, e: Box<dyn std::error::Error + Send + Sync>| {
                rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e)
            };
            Ok(LeaseRow {
                holder: ReplicaId::new(holder).map_err(|e| bad(0, e.into()))?,
                token: u64::try_from(r.get::<_, i64>(1)?).map_err(|e| bad(1, e.into()))?,
                expires_at: DateTime::from_timestamp_micros(r.get(2)?)
                    .ok_or_else(|| bad(2, "lease expiry out of range".into()))?,
            })
        })
        .optional()
}

impl Backend for SqliteBackend {
    fn begin(&mut self) -> Result<Head, BackendError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.err("starting a write transaction"))?;
        let read = (|| {
            let last = self
                .conn
                .prepare_cached(
                    "SELECT first, count, length(data), substr(hashes, -32) FROM blocks
                     ORDER BY first DESC LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row([], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, Vec<u8>>(3)?,
                        ))
                    })
                    .optional()
                })
                .map_err(self.err("reading the head"))?;
            let upto = self.upto()?;
            Ok::<_, BackendError>((last, upto))
        })();
        let (last, upto) = match read {
            Ok(r) => r,
            Err(e) => {
                self.rollback();
                return Err(e);
            }
        };
        let mut txn = Txn {
            upto,
            last: None,
            new_sids: HashMap::new(),
        };
        let head = match last {
            Some((first, count, len, hash)) => {
                let (first, count) = (uint(first), uint(count));
                let size = first.saturating_add(count);
                let last = match hash_of(&hash, "the last entry's hash", size.saturating_sub(1)) {
                    Ok(h) => h,
                    Err(e) => {
                        self.rollback();
                        return Err(e);
                    }
                };
                txn.last = Some((first, count, usize::try_from(len).unwrap_or(usize::MAX)));
                Head { size, last }
            }
            None => Head {
                size: 0,
                last: GENESIS_PREV,
            },
        };
        self.txn = Some(txn);
        Ok(head)
    }

    fn stream_version(&mut self, stream: &StreamId) -> Result<u64, BackendError> {
        let Some(sid) = self.find_sid(stream)? else {
            return Ok(0);
        };
        let upto = match &self.txn {
            Some(t) => t.upto,
            None => self.upto()?,
        };
        let mut version = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(version), 0) FROM stream_index WHERE sid = ?1")
            .and_then(|mut s| s.query_row([int(sid)], |r| r.get::<_, i64>(0)))
            .map(uint)
            .map_err(self.err("reading a stream version"))?;
        self.each_dir_entry(upto, &mut |_, s, v| {
            if s == sid {
                version = version.max(v);
            }
        })?;
        Ok(version)
    }

    fn insert_entries(&mut self, entries: &[StoredEntry]) -> Result<(), BackendError> {
        let Some(txn) = self.txn.as_ref() else {
            return Err(BackendError::new(
                "insert_entries outside a write transaction",
            ));
        };
        let (Some(head), Some(end)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let (start, size) = (head.seq, end.seq.saturating_add(1));
        // The first entries go onto the end of the last block while it is small.
        let (mut first, mut base_count, mut base_len, mut grow) = match txn.last {
            Some((first, count, len))
                if first.saturating_add(count) == start && len < BLOCK_GROW_BELOW =>
            {
                (first, count, len, true)
            }
            _ => (start, 0, 0, false),
        };
        let mut block = BlockBuf::default();
        for e in entries {
            let open = grow || !block.is_empty();
            let full = base_count + block.count >= BLOCK_MAX_ENTRIES
                || base_len + block.data.len() + e.bytes.len() > BLOCK_MAX_BYTES;
            if open && full {
                if !block.is_empty() {
                    self.write_block(first, &block, grow)?;
                }
                block.clear();
                (first, base_count, base_len, grow) = (e.seq, 0, 0, false);
            }
            let sid = self.sid(&e.stream)?;
            block.push(sid, e.version, &e.bytes, &e.hash);
        }
        self.write_block(first, &block, grow)?;
        let last = (first, base_count + block.count, base_len + block.data.len());
        let upto = match self.txn.as_mut() {
            Some(t) => {
                t.last = Some(last);
                t.upto
            }
            None => {
                return Err(BackendError::new(
                    "insert_entries outside a write transaction",
                ))
            }
        };
        if size.saturating_sub(upto) >= INDEX_EVERY {
            self.index_tail(upto, size)?;
        }
        Ok(())
    }

    fn insert_nodes(&mut self, nodes: &[(u8, u64, Hash)]) -> Result<(), BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO nodes (level, idx, hash) VALUES (?1, ?2, ?3)")
            .map_err(sql("preparing a node insert", &self.path))?;
        for (level, index, hash) in nodes.iter().filter(|n| n.0 >= NODE_LEVEL) {
            stmt.execute(params![level, int(*index), &hash[..]])
                .map_err(sql("inserting a Merkle node", &self.path))?;
        }
        Ok(())
    }

    fn insert_checkpoint(&mut self, size: u64, note: &str) -> Result<(), BackendError> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO checkpoints (size, note) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![int(size), note]))
            .map(|_| ())
            .map_err(sql("inserting a checkpoint", &self.path))
    }

    fn commit(&mut self) -> Result<(), BackendError> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(sql("committing", &self.path))?;
        if let Some(t) = self.txn.take() {
            if self.sids.len() > MAX_CACHED_STREAMS {
                self.sids.clear();
            }
            self.sids.extend(t.new_sids);
        }
        Ok(())
    }

    fn rollback(&mut self) {
        self.txn = None;
        // Nothing to report: a failed rollback leaves SQLite to roll back on the next open.
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    fn size(&self) -> Result<u64, BackendError> {
        self.conn
            .query_row(
                "SELECT first + count FROM blocks ORDER BY first DESC LIMIT 1",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v.map_or(0, uint))
            .map_err(sql("counting entries", &self.path))
    }

    fn read_stream(&self, stream: &StreamId, after: u64) -> Result<Vec<StoredEntry>, BackendError> {
        self.snapshot(|this| {
            let Some(sid) = this.find_sid(stream)? else {
                return Ok(Vec::new());
            };
            let upto = this.upto()?;
            let mut wanted: Vec<(u64, u64)> = this
                .conn
                .prepare_cached(
                    "SELECT version, seq FROM stream_index WHERE sid = ?1 AND version > ?2
                     ORDER BY version",
                )
                .and_then(|mut s| {
                    s.query_map(params![int(sid), int(after)], |r| {
                        Ok((uint(r.get(0)?), uint(r.get(1)?)))
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(this.err("reading the stream index"))?;
            let counted: u64 = this
                .conn
                .prepare_cached("SELECT entries FROM stream_counts WHERE sid = ?1")
                .and_then(|mut s| s.query_row([int(sid)], |r| r.get::<_, i64>(0)).optional())
                .map(|v| v.map_or(0, uint))
                .map_err(this.err("reading the stream index"))?;
            if wanted.len() as u64 != counted.saturating_sub(after) {
                return Err(BackendError::tampered(
                    wanted.last().map_or(upto, |w| w.1),
                    format!(
                        "the stream index lists {} entries of stream {stream} after version {after}, its count says {}",
                        wanted.len(),
                        counted.saturating_sub(after)
                    ),
                    format!("{} index rows", wanted.len()),
                ));
            }
            this.refresh_tail(upto)?;
            if let Some(entries) = this.tail.borrow().streams.get(&sid) {
                wanted.extend(entries.iter().filter(|(version, _)| *version > after));
            }
            // The index and the blocks' directories must give the versions one by one, at
            // increasing positions.
            let mut previous = None;
            for (i, &(version, seq)) in wanted.iter().enumerate() {
                if version != after + 1 + i as u64 {
                    return Err(BackendError::tampered(
                        seq,
                        format!("stream {stream} skips or repeats a version in the stream index"),
                        format!("version {version} where {} was due", after + 1 + i as u64),
                    ));
                }
                if previous.is_some_and(|p| p >= seq) {
                    return Err(BackendError::tampered(
                        seq,
                        format!("the stream index puts stream {stream}'s versions out of order"),
                        format!("version {version} at entry {seq}"),
                    ));
                }
                previous = Some(seq);
            }
            this.read_wanted(stream, sid, &wanted)
        })
    }

    fn read_range(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>, BackendError> {
        let mut out = Vec::with_capacity(limit.min(1 << 16));
        self.each_entry(from, limit, &mut |this, e| {
            out.push(StoredEntry {
                seq: e.seq,
                stream: this.name(e.sid, e.seq)?,
                version: e.version,
                bytes: e.bytes.to_vec(),
                hash: e.hash,
            });
            Ok(())
        })?;
        Ok(out)
    }

    fn read_chunk(
        &self,
        from: u64,
        limit: usize,
        chunk: &mut EntryChunk,
    ) -> Result<(), BackendError> {
        chunk.clear();
        let mut index: HashMap<u64, usize> = HashMap::new();
        self.each_entry(from, limit, &mut |this, e| {
            let stream = match index.get(&e.sid) {
                Some(i) => *i,
                None => {
                    chunk.streams.push(this.name(e.sid, e.seq)?);
                    index.insert(e.sid, chunk.streams.len() - 1);
                    chunk.streams.len() - 1
                }
            };
            chunk.push(e.seq, stream, e.version, e.bytes, e.hash);
            Ok(())
        })
    }

    fn read_nodes(
        &self,
        level: u8,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Hash)>, BackendError> {
        if level < NODE_LEVEL {
            let mut out = Vec::new();
            for index in (from..).take(limit) {
                match self.computed_node(level, index)? {
                    Some(h) => out.push((index, h)),
                    None => break,
                }
            }
            return Ok(out);
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, hash FROM nodes WHERE level = ?1 AND idx >= ?2 ORDER BY idx LIMIT ?3",
            )
            .map_err(sql("reading Merkle nodes", &self.path))?;
        let rows = stmt
            .query_map(params![level, int(from), int(limit as u64)], |r| {
                Ok((uint(r.get(0)?), r.get::<_, Vec<u8>>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql("reading Merkle nodes", &self.path))?;
        rows.into_iter()
            .map(|(i, h)| Ok((i, hash_of(&h, "a stored Merkle node", i << level)?)))
            .collect()
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, BackendError> {
        if level < NODE_LEVEL {
            return self.computed_node(level, index);
        }
        let hash: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT hash FROM nodes WHERE level = ?1 AND idx = ?2")
            .and_then(|mut s| {
                s.query_row(params![level, int(index)], |r| r.get(0))
                    .optional()
            })
            .map_err(sql("reading a Merkle node", &self.path))?;
        hash.map(|h| hash_of(&h, "a stored Merkle node", index << level))
            .transpose()
    }

    fn lowest_stored_level(&self) -> u8 {
        NODE_LEVEL
    }

    fn stream_index_summary(&self) -> Result<Option<StreamIndexSummary>, BackendError> {
        self.snapshot(|this| {
            let what = "reading the stream index's counts";
            let mut summary = StreamIndexSummary {
                upto: this.upto()?,
                streams: HashMap::new(),
            };
            let mut stmt = this
                .conn
                .prepare_cached(
                    "SELECT s.name, c.sid, c.entries, c.seq_sum
                     FROM stream_counts c LEFT JOIN streams s ON s.sid = c.sid",
                )
                .map_err(this.err(what))?;
            let mut rows = stmt.query([]).map_err(this.err(what))?;
            while let Some(r) = rows.next().map_err(this.err(what))? {
                let name: Option<String> = r.get(0).map_err(this.err(what))?;
                let read = |i| r.get::<_, i64>(i).map(uint).map_err(this.err(what));
                let (sid, entries, seq_sum) = (read(1)?, read(2)?, read(3)?);
                let name = name.unwrap_or_else(|| format!("<unknown stream id {sid}>"));
                summary
                    .streams
                    .insert(name, StreamIndexed { entries, seq_sum });
            }
            Ok(Some(summary))
        })
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, BackendError> {
        self.conn
            .query_row(
                "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1",
                [],
                |r| Ok((uint(r.get(0)?), r.get(1)?)),
            )
            .optional()
            .map_err(sql("reading the latest checkpoint", &self.path))
    }

    fn streams(&self) -> Result<Vec<StreamId>, BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM streams ORDER BY name")
            .map_err(sql("listing streams", &self.path))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql("listing streams", &self.path))?;
        rows.into_iter()
            .map(|s| StreamId::new(s).map_err(|e| BackendError::with("a stored stream name", e)))
            .collect()
    }

    fn maintain(&mut self) {
        // PASSIVE: copies what it can without waiting for or blocking the writer or readers.
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            tracing::warn!(path = %self.path.display(), error = %e, "WAL checkpoint failed");
        }
    }

    fn update_lease(
        &mut self,
        key: &str,
        now: DateTime<Utc>,
        change: LeaseChange<'_>,
    ) -> Result<(), BackendError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql("starting a lease transaction", &path))?;
        let current = lease_row(&tx, key).map_err(sql("reading a lease", &path))?;
        if let Some(row) = change(current.as_ref(), now) {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO leases (key, holder, token, expires_us) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    key,
                    row.holder.as_str(),
                    int(row.token),
                    row.expires_at.timestamp_micros()
                ])
            })
            .map_err(sql("writing a lease", &path))?;
        }
        tx.commit().map_err(sql("committing a lease", &path))
    }

    fn lease_in_transaction(
        &mut self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<(Option<LeaseRow>, DateTime<Utc>), BackendError> {
        // BEGIN IMMEDIATE holds the database's write lock: no lease changes until commit.
        let row = lease_row(&self.conn, key).map_err(sql("reading a lease", &self.path))?;
        Ok((row, now))
    }
}

/// The conformance harness for SQLite: a fresh file in a temporary directory, tampered with
/// through raw SQL on a separate connection.
#[cfg(any(test, feature = "conformance"))]
pub mod harness {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use std::path::PathBuf;
    use std::sync::Arc;

    use rusqlite::{params, Connection};

    use crate::block::BlockBuf;
    use crate::conformance::{flip_event_byte, Harness, Tamper};
    use crate::store::AuditStore;

    /// A harness over a new SQLite file under `dir` (kept alive by the harness).
    pub fn sqlite_harness(dir: Arc<dyn AsRef<std::path::Path> + Send + Sync>) -> Harness {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = (*dir).as_ref().join(format!("audit-{n}.db"));
        let p = path.clone();
        Harness {
            open: Box::new(move |o| {
                let _keep = &dir;
                AuditStore::open_sqlite(&p, o).unwrap()
            }),
            tamper: Box::new(SqlTamper(path)),
        }
    }

    struct SqlTamper(PathBuf);

    /// One stored entry as the block keeps it: (stream id, version, bytes, hash).
    type Rec = (u64, u64, Vec<u8>, Vec<u8>);

    impl SqlTamper {
        fn conn(&self) -> Connection {
            Connection::open(&self.0).unwrap()
        }

        /// The block holding entry `seq`: its first entry and its entries.
        fn load(c: &Connection, seq: u64) -> (u64, Vec<Rec>) {
            c.query_row(
                "SELECT first, count, dir, hashes, data FROM blocks WHERE first <= ?1
                 ORDER BY first DESC LIMIT 1",
                [seq as i64],
                |r| {
                    let block = super::block_of(r)?.unwrap();
                    let recs = block
                        .entries()
                        .map(|e| (e.sid, e.version, e.bytes.to_vec(), e.hash.to_vec()))
                        .collect();
                    Ok((block.first, recs))
                },
            )
            .unwrap()
        }

        /// Replaces the block at `first` with `recs` (none: deletes it), through raw SQL.
        fn store(c: &Connection, first: u64, recs: &[Rec]) {
            c.execute("DELETE FROM blocks WHERE first = ?1", [first as i64])
                .unwrap();
            if recs.is_empty() {
                return;
            }
            let mut b = BlockBuf::default();
            for (sid, version, bytes, hash) in recs {
                b.push(*sid, *version, bytes, hash);
            }
            c.execute(
                "INSERT INTO blocks (first, count, dir, hashes, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![first as i64, b.count as i64, b.dir, b.hashes, b.data],
            )
            .unwrap();
        }
    }

    impl Tamper for SqlTamper {
        fn flip_byte(&self, seq: u64) {
            let c = self.conn();
            let (first, mut recs) = Self::load(&c, seq);
            let rec = &mut recs[(seq - first) as usize];
            rec.2 = flip_event_byte(&rec.2);
            Self::store(&c, first, &recs);
        }
        fn delete(&self, seq: u64) {
            // As deleting a row would: the entries after it keep their places (a gap).
            let c = self.conn();
            let (first, mut recs) = Self::load(&c, seq);
            let after = recs.split_off((seq - first) as usize + 1);
            recs.pop();
            Self::store(&c, first, &recs);
            Self::store(&c, seq + 1, &after);
        }
        fn swap(&self, a: u64, b: u64) {
            let c = self.conn();
            let (fa, mut ra) = Self::load(&c, a);
            let (fb, rb) = Self::load(&c, b);
            let (ia, ib) = ((a - fa) as usize, (b - fb) as usize);
            let mut rb = if fa == fb { ra.clone() } else { rb };
            let (entry_a, entry_b) = (ra[ia].clone(), rb[ib].clone());
            (ra[ia].2, ra[ia].3) = (entry_b.2, entry_b.3);
            if fa == fb {
                (ra[ib].2, ra[ib].3) = (entry_a.2, entry_a.3);
                Self::store(&c, fa, &ra);
            } else {
                (rb[ib].2, rb[ib].3) = (entry_a.2, entry_a.3);
                Self::store(&c, fa, &ra);
                Self::store(&c, fb, &rb);
            }
        }
        fn truncate(&self, keep: u64) {
            let c = self.conn();
            let (first, mut recs) = Self::load(&c, keep);
            recs.truncate((keep.saturating_sub(first)) as usize);
            c.execute("DELETE FROM blocks WHERE first >= ?1", [keep as i64])
                .unwrap();
            if first < keep {
                Self::store(&c, first, &recs);
            }
        }
        fn duplicate(&self, seq: u64) {
            let c = self.conn();
            let (first, recs) = Self::load(&c, seq);
            let (sid, version, bytes, hash) = recs[(seq - first) as usize].clone();
            let size: i64 = c
                .query_row("SELECT MAX(first + count) FROM blocks", [], |r| r.get(0))
                .unwrap();
            Self::store(&c, size as u64, &[(sid, version + 1000, bytes, hash)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::harness::sqlite_harness;
    use crate::conformance;
    use crate::error::AuditError;
    use crate::store::{AuditOptions, AuditStore};

    fn harness() -> conformance::Harness {
        let dir: Arc<dyn AsRef<std::path::Path> + Send + Sync> =
            Arc::new(tempfile::tempdir().unwrap());
        sqlite_harness(dir)
    }

    #[test]
    fn conformance_ordering_and_versions() {
        futures::executor::block_on(conformance::ordering_and_versions(harness()));
    }
    #[test]
    fn conformance_conflicts() {
        futures::executor::block_on(conformance::conflicts(harness()));
    }
    #[test]
    fn conformance_proofs() {
        futures::executor::block_on(conformance::proofs(harness()));
    }
    #[test]
    fn conformance_reopen() {
        futures::executor::block_on(conformance::reopen(harness()));
    }
    #[test]
    fn conformance_concurrent_appends() {
        futures::executor::block_on(conformance::concurrent_appends(harness()));
    }
    #[test]
    fn conformance_tamper_detection() {
        futures::executor::block_on(conformance::tamper_detection(&harness));
    }
    #[test]
    fn conformance_export_import() {
        futures::executor::block_on(conformance::export_import(harness()));
    }

    #[test]
    fn conformance_leases() {
        futures::executor::block_on(conformance::leases(harness()));
    }

    #[test]
    fn conformance_two_writers() {
        futures::executor::block_on(conformance::two_writers(harness()));
    }

    fn open(path: &std::path::Path) -> Result<AuditStore, AuditError> {
        AuditStore::open_sqlite(path, AuditOptions::new("test"))
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.db");
        std::fs::write(&path, vec![0x5au8; 8192]).unwrap();
        let err = open(&path).unwrap_err();
        assert!(matches!(err, AuditError::ForeignFile { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("junk.db is not a promotion audit log"),
            "{err}"
        );
    }

    #[test]
    fn another_applications_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY);")
            .unwrap();
        let err = open(&path).unwrap_err();
        assert!(err.to_string().contains("application id is 0x0"), "{err}");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        drop(open(&path).unwrap());
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99;")
            .unwrap();
        let err = open(&path).unwrap_err();
        assert!(
            err.to_string().contains("newer version (schema 99"),
            "{err}"
        );
    }

    #[test]
    fn opening_an_existing_log_never_creates_one() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.db");
        let err = AuditStore::open_sqlite_existing(&missing, AuditOptions::new("t")).unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
        assert!(!missing.exists());
        let empty = dir.path().join("empty.db");
        rusqlite::Connection::open(&empty)
            .unwrap()
            .execute_batch("PRAGMA user_version = 0;")
            .unwrap();
        let err = AuditStore::open_sqlite_existing(&empty, AuditOptions::new("t")).unwrap_err();
        assert!(err.to_string().contains("holds no audit log"), "{err}");
        drop(open(&empty).unwrap());
        assert!(AuditStore::open_sqlite_existing(&empty, AuditOptions::new("t")).is_ok());
    }

    /// The tables of schemas 1 and 2, one row per entry, as those builds wrote them.
    const OLD_SCHEMA: &str = "
        CREATE TABLE entries (
            seq INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL,
            bytes BLOB NOT NULL, hash BLOB NOT NULL, UNIQUE (stream, version));
        CREATE TABLE nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
            PRIMARY KEY (level, idx)) WITHOUT ROWID;
        CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL);";

    /// Writes `n` entries through an in-memory store, then the same rows into a file laid out
    /// as schema `version` (1 or 2) wrote it. Returns the in-memory store to compare with.
    fn old_file(path: &std::path::Path, version: i32, n: u64) -> AuditStore {
        use promotion_core::{EventStore, ExpectedVersion};
        let mem = crate::MemoryBackend::new();
        let store = AuditStore::memory_on(mem.clone(), conformance::options()).unwrap();
        futures::executor::block_on(async {
            for i in 0..n {
                let stream = promotion_core::StreamId::new(format!("s{}", i % 7)).unwrap();
                let event = conformance::stage_ready_event(i);
                store
                    .append(&stream, ExpectedVersion::Any, &[event])
                    .await
                    .unwrap();
            }
        });
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA application_id = {}; PRAGMA user_version = {version};
             {OLD_SCHEMA} {}",
            super::APPLICATION_ID,
            if version >= 2 { super::LEASES } else { "" }
        ))
        .unwrap();
        mem.tamper(|rows| {
            for e in rows.entries.values() {
                c.execute(
                    "INSERT INTO entries (seq, stream, version, bytes, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![e.seq as i64, e.stream.as_str(), e.version as i64, e.bytes, &e.hash[..]],
                )
                .unwrap();
            }
            for ((level, idx), hash) in &rows.nodes {
                c.execute(
                    "INSERT INTO nodes (level, idx, hash) VALUES (?1, ?2, ?3)",
                    rusqlite::params![level, *idx as i64, &hash[..]],
                )
                .unwrap();
            }
            for (size, note) in &rows.checkpoints {
                c.execute(
                    "INSERT INTO checkpoints (size, note) VALUES (?1, ?2)",
                    rusqlite::params![*size as i64, note],
                )
                .unwrap();
            }
        });
        store
    }

    fn user_version(p: &std::path::Path) -> i32 {
        rusqlite::Connection::open(p)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn older_schemas_are_upgraded_to_blocks_when_a_writer_opens_them() {
        use promotion_core::{EventStore, ExpectedVersion, StreamId};
        for version in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format!("v{version}.db"));
            let reference = old_file(&path, version, 150);
            // An auditor's open changes nothing and says what to do.
            let err = AuditStore::open_sqlite_existing(&path, conformance::options()).unwrap_err();
            assert!(
                err.to_string().contains(&format!(
                    "older version (schema {version}; this build reads 3)"
                )),
                "{err}"
            );
            assert_eq!(user_version(&path), version);
            let store = AuditStore::open_sqlite(&path, conformance::options()).unwrap();
            assert_eq!(user_version(&path), super::SCHEMA_VERSION);
            futures::executor::block_on(async {
                let report = store.verify(None).await.unwrap();
                let expected = reference.verify(None).await.unwrap();
                assert_eq!((report.entries, report.root), (150, expected.root));
                for s in 0..7 {
                    let stream = StreamId::new(format!("s{s}")).unwrap();
                    assert_eq!(
                        store.read(&stream).await.unwrap(),
                        reference.read(&stream).await.unwrap(),
                        "stream {stream} reads the same after the upgrade"
                    );
                }
                assert_eq!(
                    store.inclusion_proof(3, 150).await.unwrap(),
                    reference.inclusion_proof(3, 150).await.unwrap()
                );
                let stream = StreamId::new("s0").unwrap();
                let event = conformance::stage_ready_event(999);
                store
                    .append(&stream, ExpectedVersion::Exact(22), &[event])
                    .await
                    .unwrap();
                assert_eq!(store.verify(None).await.unwrap().entries, 151);
            });
            let tables: i64 = store_tables(&path, "entries");
            assert_eq!(tables, 0, "the old table is gone");
        }
    }

    fn store_tables(p: &std::path::Path, name: &str) -> i64 {
        rusqlite::Connection::open(p)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn a_new_log_has_the_leases_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let (mut w, _r) = super::SqliteBackend::open_pair(&path).unwrap();
        assert_eq!(user_version(&path), super::SCHEMA_VERSION);
        crate::Backend::update_lease(&mut w, "k", chrono::Utc::now(), &mut |current, _| {
            assert!(current.is_none());
            None
        })
        .unwrap();
    }

    /// A log of 2,200 entries in 5 streams (appended 40 at a time, so the stream index holds
    /// the first 2,048 or more and the rest are found through the last blocks).
    fn indexed_log(path: &std::path::Path) -> AuditStore {
        use promotion_core::{EventStore, ExpectedVersion, StreamId};
        let store = AuditStore::open_sqlite(path, conformance::options()).unwrap();
        futures::executor::block_on(async {
            for i in 0..55u64 {
                let stream = StreamId::new(format!("s{}", i % 5)).unwrap();
                let events: Vec<_> = (0..40)
                    .map(|j| conformance::stage_ready_event(i * 40 + j))
                    .collect();
                store
                    .append(&stream, ExpectedVersion::Any, &events)
                    .await
                    .unwrap();
            }
        });
        store
    }

    fn sql(path: &std::path::Path, statement: &str) {
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(statement)
            .unwrap();
    }

    /// The first entry of the first block that starts after entry `n`.
    fn first_block_after(path: &std::path::Path, n: i64) -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT first FROM blocks WHERE first > ?1 ORDER BY first LIMIT 1",
                [n],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn tampered_at(store: &AuditStore) -> crate::Tampered {
        match futures::executor::block_on(store.verify(None)) {
            Err(AuditError::Tampered(t)) => t,
            other => panic!("expected the log not to verify, got {other:?}"),
        }
    }

    #[test]
    fn an_indexed_log_reads_and_verifies() {
        use promotion_core::{EventStore, StreamId};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("indexed.db");
        let store = indexed_log(&path);
        let upto: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT upto FROM indexed", [], |r| r.get(0))
            .unwrap();
        assert!((2048..2200).contains(&upto), "indexed up to {upto}");
        futures::executor::block_on(async {
            let s0 = StreamId::new("s0").unwrap();
            let all = store.read(&s0).await.unwrap();
            assert_eq!(all.len(), 440);
            assert!(all
                .iter()
                .enumerate()
                .all(|(i, r)| r.version == i as u64 + 1));
            let tail = store.read_from(&s0, 430).await.unwrap();
            assert_eq!(tail.first().map(|r| r.version), Some(431));
            assert_eq!(tail, all[430..].to_vec());
            let report = store.verify(None).await.unwrap();
            assert_eq!((report.entries, report.streams), (2200, 5));
        });
    }

    #[test]
    fn a_malformed_block_is_named_by_its_first_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("malformed.db");
        let store = indexed_log(&path);
        let first = first_block_after(&path, 1000);
        sql(
            &path,
            &format!("UPDATE blocks SET dir = substr(dir, 1, 19) WHERE first = {first}"),
        );
        let t = tampered_at(&store);
        assert_eq!(t.seq, first as u64, "{t}");
        assert!(t.problem.contains("a block is malformed"), "{t}");
        assert!(t.found.contains("directory has 19 bytes"), "{t}");
    }

    #[test]
    fn a_deleted_block_is_named_by_its_first_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deleted.db");
        let store = indexed_log(&path);
        let first = first_block_after(&path, 700);
        sql(&path, &format!("DELETE FROM blocks WHERE first = {first}"));
        let t = tampered_at(&store);
        assert_eq!(t.seq, first as u64, "{t}");
        assert!(t.problem.contains("missing"), "{t}");
    }

    #[test]
    fn reads_by_stream_name_a_damaged_or_missing_block() {
        use promotion_core::{EventStore, StreamId};
        let dir = tempfile::tempdir().unwrap();
        let s0 = StreamId::new("s0").unwrap();
        // s0 holds entries 0..40, 200..240, 400..440, …: versions 1..40 are in the blocks from
        // 0 on, version 41 is entry 200.
        for (name, doctor, expected) in [
            (
                "data one byte short",
                "UPDATE blocks SET data = substr(data, 1, length(data) - 1) WHERE first = 0",
                ["entry 0", "a block is malformed", "add up to"],
            ),
            (
                "a block deleted",
                "DELETE FROM blocks WHERE first = (SELECT MAX(first) FROM blocks WHERE first <= 200)",
                ["entry 200", "not stored", "no such entry"],
            ),
        ] {
            let path = dir.path().join(format!("{name}.db"));
            let store = indexed_log(&path);
            sql(&path, doctor);
            let err = futures::executor::block_on(store.read(&s0))
                .map(|r| r.len())
                .expect_err(name)
                .to_string();
            for part in expected {
                assert!(err.contains(part), "{name}: {err}");
            }
            // Another stream whose blocks are intact still reads.
            if name == "data one byte short" {
                let s1 = StreamId::new("s1").unwrap();
                let read = futures::executor::block_on(store.read(&s1)).unwrap();
                assert_eq!(read.len(), 440, "{name}");
            }
            drop(store);
        }
    }

    #[test]
    fn a_doctored_stream_index_fails_reads_and_doctored_counts_fail_verification() {
        use promotion_core::{EventStore, StreamId};
        let dir = tempfile::tempdir().unwrap();
        let s2 = StreamId::new("s2").unwrap();
        let s2_rows = "sid = (SELECT sid FROM streams WHERE name = 's2')";
        // Damage to the index itself: every read through it refuses to answer.
        for (name, doctor) in [
            ("a row deleted", format!("DELETE FROM stream_index WHERE {s2_rows} AND version = 7")),
            // Versions 361 to 400 are the last ones the index holds (the rest are after `upto`).
            ("the last rows deleted", format!("DELETE FROM stream_index WHERE {s2_rows} AND version > 380")),
            ("a row pointing at another entry", format!("UPDATE stream_index SET seq = seq + 1 WHERE {s2_rows} AND version = 7")),
            ("a row added", "INSERT INTO stream_index (sid, version, seq) SELECT sid, 9999, 3 FROM streams WHERE name = 's2'".to_owned()),
        ] {
            let path = dir.path().join(format!("{name}.db"));
            let store = indexed_log(&path);
            sql(&path, &doctor);
            let read = futures::executor::block_on(store.read(&s2));
            let err = read.map(|r| r.len()).expect_err(name).to_string();
            assert!(err.contains("stream index"), "{name}: {err}");
            drop(store);
        }
        // Damage to the counts reads are checked against, alone or to match a doctored index:
        // verification names the stream.
        for (name, doctor) in [
            (
                "a count lowered",
                format!("UPDATE stream_counts SET entries = entries - 1 WHERE {s2_rows}"),
            ),
            (
                "rows deleted and the count lowered to match",
                format!(
                    "DELETE FROM stream_index WHERE {s2_rows} AND version > 380;
                 UPDATE stream_counts SET entries = 380 WHERE {s2_rows}"
                ),
            ),
            (
                "a count removed",
                format!("DELETE FROM stream_counts WHERE {s2_rows}"),
            ),
            (
                "a count added",
                "INSERT INTO stream_counts (sid, entries, seq_sum) VALUES (99, 1, 0)".to_owned(),
            ),
        ] {
            let path = dir.path().join(format!("{name}.db"));
            let store = indexed_log(&path);
            sql(&path, &doctor);
            let t = tampered_at(&store);
            assert!(t.problem.contains("stream index"), "{name}: {t}");
            if name != "a count added" {
                assert!(t.problem.contains("s2"), "{name}: {t}");
            }
            drop(store);
        }
    }

    #[test]
    fn the_log_is_durable_and_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let (w, _r) = super::SqliteBackend::open_pair(&path).unwrap();
        let mode: String = w
            .connection()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = w
            .connection()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            (mode.as_str(), sync),
            ("wal", 2),
            "WAL with synchronous = FULL"
        );
        let (pages, keep): (i64, i64) = w
            .connection()
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .and_then(|p| {
                w.connection()
                    .query_row("PRAGMA journal_size_limit", [], |r| r.get(0))
                    .map(|k| (p, k))
            })
            .unwrap();
        assert_eq!(
            (pages, keep),
            (
                i64::from(super::WAL_CHECKPOINT_PAGES),
                super::WAL_KEEP_BYTES as i64
            )
        );
    }

    /// Commits 20 entries at a time, `commits` times, straight through the backend with nobody
    /// else checkpointing; returns the largest size the WAL file reached.
    fn wal_high_water(w: &mut super::SqliteBackend, path: &std::path::Path, commits: u64) -> u64 {
        use crate::backend::Backend;
        let stream = promotion_core::StreamId::new("s").unwrap();
        let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
        let mut high = 0;
        for _ in 0..commits {
            let head = w.begin().unwrap();
            let version = w.stream_version(&stream).unwrap();
            let (mut seq, mut prev) = (head.size, head.last);
            let entries: Vec<_> = (1..=20)
                .map(|i| {
                    let event = conformance::stage_ready_event(seq);
                    let e =
                        crate::entry::encode(seq, &stream, version + i, event.at, &prev, &event)
                            .unwrap();
                    (seq, prev) = (seq + 1, e.hash);
                    e
                })
                .collect();
            w.insert_entries(&entries).unwrap();
            w.commit().unwrap();
            high = high.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        high
    }

    #[test]
    fn a_steady_stream_of_commits_keeps_the_wal_bounded() {
        let dir = tempfile::tempdir().unwrap();
        // The mechanism with a small bound (the default is 64 MiB): 32 pages, cut back to 128 KiB.
        let path = dir.path().join("bounded.db");
        let (mut w, _r) = super::SqliteBackend::open_pair(&path).unwrap();
        w.connection()
            .execute_batch("PRAGMA wal_autocheckpoint = 32; PRAGMA journal_size_limit = 131072;")
            .unwrap();
        let bounded = wal_high_water(&mut w, &path, 400);
        // Without it, nothing starts the WAL over while commits keep coming.
        let path = dir.path().join("unbounded.db");
        let (mut w, _r) = super::SqliteBackend::open_pair(&path).unwrap();
        w.connection()
            .execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .unwrap();
        let unbounded = wal_high_water(&mut w, &path, 400);
        assert!(
            bounded < 512 * 1024,
            "the WAL reached {bounded} bytes with a bound of 32 pages"
        );
        assert!(
            unbounded > 4 * bounded,
            "without a bound the WAL reached only {unbounded} bytes (bounded: {bounded})"
        );
    }
}
