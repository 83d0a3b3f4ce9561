//! Opening a SQLite audit log: the schema, the checks that refuse another application's file
//! or a newer schema, the durability settings every connection gets, the check that a
//! writer's file can be written, and the one-transaction upgrade of files written by older
//! builds (one row per entry) to blocks. Creating a new file's schema is `create.rs`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use rusqlite::{params, Connection, OpenFlags};

use super::create::{self, Layout};
use super::read::blob;
use super::{
    cause_in_words, int, open_cause, sql, uint, SqliteBackend, Tail, APPLICATION_ID,
    BLOCK_MAX_BYTES, BLOCK_MAX_ENTRIES, NODE_LEVEL, SCHEMA_VERSION, WAL_CHECKPOINT_PAGES,
    WAL_KEEP_BYTES,
};
use crate::block::BlockBuf;
use crate::error::{AuditError, BackendError};

pub(super) const TABLES: &str = "
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
pub(super) const LEASES: &str = "
CREATE TABLE IF NOT EXISTS leases (
    key        TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    token      INTEGER NOT NULL,
    expires_us INTEGER NOT NULL
);
";

impl SqliteBackend {
    pub(super) fn open_one(path: &Path, create: bool) -> Result<SqliteBackend, AuditError> {
        let foreign = |problem: String| AuditError::ForeignFile {
            path: path.display().to_string(),
            problem,
        };
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags).map_err(|e| {
            // SQLite says only that it cannot open the file; the file system says why.
            let cause = open_cause(path).unwrap_or_else(|| cause_in_words(&e));
            BackendError::with(format!("cannot open {}: {cause}", path.display()), e)
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(sql("setting the busy timeout", path))?;
        // Reading the header is the first access: a file that is not a database fails here.
        let unreadable = |(what, e): (&str, rusqlite::Error)| -> AuditError {
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
                foreign(format!("not a SQLite database, or a corrupted one ({e})"))
            } else {
                sql(what, path)(e).into()
            }
        };
        let mut layout = Layout::read(&conn).map_err(unreadable)?;
        let unfinished = layout.app_id == APPLICATION_ID
            && layout.user_version <= SCHEMA_VERSION
            && !layout.missing().is_empty();
        if layout.is_blank() || unfinished {
            if !create {
                return Err(if unfinished {
                    create::unfinished(path, &layout)
                } else {
                    foreign(
                        "it holds no audit log: a writer was stopped before it created one (any \
                         writer, such as a `promote` command that records, creates it), or only \
                         the .db file was copied without its -wal file"
                            .into(),
                    )
                });
            }
            create::create(&conn, path)?;
            layout = Layout::read(&conn).map_err(unreadable)?;
        }
        if layout.app_id != APPLICATION_ID {
            return Err(foreign(format!(
                "its application id is {:#x}, not {APPLICATION_ID:#x}",
                layout.app_id
            )));
        }
        let user_version = layout.user_version;
        if user_version > SCHEMA_VERSION {
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
        if create {
            check_writable(&conn, path)?;
        }
        Ok(SqliteBackend {
            conn,
            path: path.to_owned(),
            sids: HashMap::new(),
            names: RefCell::new(HashMap::new()),
            txn: None,
            wal: super::wal::Wal::default(),
            tail: RefCell::new(Tail::default()),
        })
    }
}

/// Refuses, with the cause, a log a writer cannot write: SQLite opens a file it may not write
/// (a read-only file or mount) read-only without a word, and the first append would fail. A
/// write lock taken and released also finds a directory where the -wal and -shm files cannot
/// be made.
fn check_writable(conn: &Connection, path: &Path) -> Result<(), AuditError> {
    let what = "checking that the log can be written";
    if conn.is_readonly("main").map_err(sql(what, path))? {
        return Err(BackendError::new(format!(
            "{what} in {}: read-only file or mount (SQLite could open it for reading only)",
            path.display()
        ))
        .into());
    }
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
        .map_err(sql(what, path))?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use crate::conformance;
    use crate::error::AuditError;
    use crate::store::{AuditOptions, AuditStore};

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
        // The defaults where the volume has room for them, else a share of its free space.
        let bound = super::super::wal_bound(super::WAL_KEEP_BYTES, super::super::free_space(&path));
        assert_eq!((pages, keep), (bound as i64 / 4096, bound as i64));
        if bound == super::WAL_KEEP_BYTES {
            assert_eq!(pages, i64::from(super::WAL_CHECKPOINT_PAGES));
        }
    }
}
