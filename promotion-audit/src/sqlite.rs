//! The SQLite backend: one file, WAL mode, durable commits (`synchronous = FULL`).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use promotion_core::lease::{LeaseRow, ReplicaId};
use promotion_core::StreamId;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::backend::{Backend, Head, LeaseChange};
use crate::entry::{StoredEntry, GENESIS_PREV};
use crate::error::{AuditError, BackendError};
use crate::merkle::Hash;

/// `PRAGMA application_id` of a promotion audit log ("PRAL").
pub const APPLICATION_ID: i32 = 0x5052_414c;
/// Schema version written to `PRAGMA user_version`: 1 had the log's tables, 2 added
/// `leases` (applied to a version 1 file when a writer opens it).
pub const SCHEMA_VERSION: i32 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    seq     INTEGER PRIMARY KEY,
    stream  TEXT    NOT NULL,
    version INTEGER NOT NULL,
    bytes   BLOB    NOT NULL,
    hash    BLOB    NOT NULL,
    UNIQUE (stream, version)
);
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

/// Migration from schema 1 to 2: coordination state for replicas; not part of the log.
const LEASES: &str = "
CREATE TABLE IF NOT EXISTS leases (
    key        TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    token      INTEGER NOT NULL,
    expires_us INTEGER NOT NULL
);
";

/// A connection to a SQLite audit log file.
#[derive(Debug)]
pub struct SqliteBackend {
    conn: Connection,
    path: PathBuf,
}

fn sql<'p>(what: &str, path: &'p Path) -> impl FnOnce(rusqlite::Error) -> BackendError + 'p {
    let what = what.to_owned();
    move |e| BackendError::with(format!("{what} in {}", path.display()), e)
}

impl SqliteBackend {
    /// Opens (creating if absent) the log at `path` and returns two connections: one for the
    /// writer, one for readers. A file of another application, a newer schema, or a file
    /// that is not a database is refused with [`AuditError::ForeignFile`].
    pub fn open_pair(path: &Path) -> Result<(SqliteBackend, SqliteBackend), AuditError> {
        let writer = Self::open_one(path, true)?;
        let reader = Self::open_one(path, false)?;
        Ok((writer, reader))
    }

    /// Like [`open_pair`](Self::open_pair) but never creates anything: a missing file, or a
    /// file that holds no audit log, is refused. Verifiers use this, so that verifying the
    /// wrong path cannot "succeed" on a freshly created, empty log.
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
                 PRAGMA user_version = {SCHEMA_VERSION}; {SCHEMA} {LEASES}"
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
        } else if user_version < SCHEMA_VERSION && create {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {LEASES} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(sql("migrating the schema to version 2", path))?;
        }
        // Commits never checkpoint the WAL themselves: the store's reader does, between reads
        // (`Backend::maintain`), so the writer's commit path stays short.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;",
        )
        .map_err(sql("setting durability", path))?;
        Ok(SqliteBackend {
            conn,
            path: path.to_owned(),
        })
    }

    /// The underlying connection, for tests that tamper with the file through raw SQL.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn hash(bytes: Vec<u8>, what: &str) -> rusqlite::Result<Hash> {
        bytes.try_into().map_err(|b: Vec<u8>| {
            rusqlite::Error::FromSqlConversionFailure(
                b.len(),
                rusqlite::types::Type::Blob,
                format!("{what} is {} bytes, not 32", b.len()).into(),
            )
        })
    }

    fn row_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEntry> {
        let stream: String = r.get(1)?;
        let stream = StreamId::new(stream).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
        })?;
        Ok(StoredEntry {
            seq: r.get::<_, i64>(0)? as u64,
            stream,
            version: r.get::<_, i64>(2)? as u64,
            bytes: r.get(3)?,
            hash: Self::hash(r.get(4)?, "an entry hash")?,
        })
    }
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
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
        let path = self.path.clone();
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(sql("starting a write transaction", &path))?;
        let last = self
            .conn
            .query_row(
                "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        Self::hash(r.get(1)?, "an entry hash")?,
                    ))
                },
            )
            .optional()
            .map_err(sql("reading the head", &path))?;
        Ok(match last {
            Some((seq, hash)) => Head {
                size: seq + 1,
                last: hash,
            },
            None => Head {
                size: 0,
                last: GENESIS_PREV,
            },
        })
    }

    fn stream_version(&mut self, stream: &StreamId) -> Result<u64, BackendError> {
        self.conn
            .prepare_cached("SELECT COALESCE(MAX(version), 0) FROM entries WHERE stream = ?1")
            .and_then(|mut s| s.query_row([stream.as_str()], |r| r.get::<_, i64>(0)))
            .map(|v| v as u64)
            .map_err(sql("reading a stream version", &self.path))
    }

    fn insert_entries(&mut self, entries: &[StoredEntry]) -> Result<(), BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO entries (seq, stream, version, bytes, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(sql("preparing an insert", &self.path))?;
        for e in entries {
            stmt.execute(params![
                int(e.seq),
                e.stream.as_str(),
                int(e.version),
                e.bytes,
                &e.hash[..]
            ])
            .map_err(sql("inserting an entry", &self.path))?;
        }
        Ok(())
    }

    fn insert_nodes(&mut self, nodes: &[(u8, u64, Hash)]) -> Result<(), BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO nodes (level, idx, hash) VALUES (?1, ?2, ?3)")
            .map_err(sql("preparing a node insert", &self.path))?;
        for (level, index, hash) in nodes {
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
            .map_err(sql("committing", &self.path))
    }

    fn rollback(&mut self) {
        // Nothing to report: a failed rollback leaves SQLite to roll back on the next open.
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    fn size(&self) -> Result<u64, BackendError> {
        self.conn
            .query_row("SELECT COALESCE(MAX(seq) + 1, 0) FROM entries", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| v as u64)
            .map_err(sql("counting entries", &self.path))
    }

    fn read_stream(&self, stream: &StreamId, after: u64) -> Result<Vec<StoredEntry>, BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, stream, version, bytes, hash FROM entries
                 WHERE stream = ?1 AND version > ?2 ORDER BY version",
            )
            .map_err(sql("reading a stream", &self.path))?;
        let rows = stmt
            .query_map(params![stream.as_str(), int(after)], Self::row_entry)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql("reading a stream", &self.path))?;
        Ok(rows)
    }

    fn read_range(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>, BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, stream, version, bytes, hash FROM entries WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(sql("reading entries", &self.path))?;
        let rows = stmt
            .query_map(params![int(from), int(limit as u64)], Self::row_entry)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql("reading entries", &self.path))?;
        Ok(rows)
    }

    fn read_nodes(
        &self,
        level: u8,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Hash)>, BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, hash FROM nodes WHERE level = ?1 AND idx >= ?2 ORDER BY idx LIMIT ?3",
            )
            .map_err(sql("reading Merkle nodes", &self.path))?;
        let rows = stmt
            .query_map(params![level, int(from), int(limit as u64)], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    Self::hash(r.get(1)?, "a node hash")?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql("reading Merkle nodes", &self.path))?;
        Ok(rows)
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, BackendError> {
        self.conn
            .prepare_cached("SELECT hash FROM nodes WHERE level = ?1 AND idx = ?2")
            .and_then(|mut s| {
                s.query_row(params![level, int(index)], |r| {
                    Self::hash(r.get(0)?, "a node hash")
                })
                .optional()
            })
            .map_err(sql("reading a Merkle node", &self.path))
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, BackendError> {
        self.conn
            .query_row(
                "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()
            .map_err(sql("reading the latest checkpoint", &self.path))
    }

    fn streams(&self) -> Result<Vec<StreamId>, BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT stream FROM entries ORDER BY stream")
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

    impl SqlTamper {
        fn conn(&self) -> Connection {
            Connection::open(&self.0).unwrap()
        }
    }

    impl Tamper for SqlTamper {
        fn flip_byte(&self, seq: u64) {
            let c = self.conn();
            let bytes: Vec<u8> = c
                .query_row(
                    "SELECT bytes FROM entries WHERE seq = ?1",
                    [seq as i64],
                    |r| r.get(0),
                )
                .unwrap();
            c.execute(
                "UPDATE entries SET bytes = ?1 WHERE seq = ?2",
                params![flip_event_byte(&bytes), seq as i64],
            )
            .unwrap();
        }
        fn delete(&self, seq: u64) {
            self.conn()
                .execute("DELETE FROM entries WHERE seq = ?1", [seq as i64])
                .unwrap();
        }
        fn swap(&self, a: u64, b: u64) {
            self.conn()
                .execute_batch(&format!(
                    "CREATE TEMP TABLE s AS SELECT seq, bytes, hash FROM entries WHERE seq IN ({a}, {b});
                     UPDATE entries SET bytes = (SELECT bytes FROM s WHERE s.seq = {b}),
                                        hash  = (SELECT hash  FROM s WHERE s.seq = {b}) WHERE seq = {a};
                     UPDATE entries SET bytes = (SELECT bytes FROM s WHERE s.seq = {a}),
                                        hash  = (SELECT hash  FROM s WHERE s.seq = {a}) WHERE seq = {b};"
                ))
                .unwrap();
        }
        fn truncate(&self, keep: u64) {
            self.conn()
                .execute("DELETE FROM entries WHERE seq >= ?1", [keep as i64])
                .unwrap();
        }
        fn duplicate(&self, seq: u64) {
            self.conn()
                .execute(
                    "INSERT INTO entries (seq, stream, version, bytes, hash)
                     SELECT (SELECT MAX(seq) + 1 FROM entries), stream, version + 1000, bytes, hash
                     FROM entries WHERE seq = ?1",
                    [seq as i64],
                )
                .unwrap();
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

    #[test]
    fn a_schema_1_file_gains_the_leases_table_when_a_writer_opens_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        drop(open(&path).unwrap());
        // Back to what a build with schema 1 wrote.
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("DROP TABLE leases; PRAGMA user_version = 1;")
            .unwrap();
        // An auditor's open changes nothing.
        drop(AuditStore::open_sqlite_existing(&path, AuditOptions::new("t")).unwrap());
        let version = |p: &std::path::Path| -> i32 {
            rusqlite::Connection::open(p)
                .unwrap()
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(version(&path), 1);
        let (mut w, _r) = super::SqliteBackend::open_pair(&path).unwrap();
        assert_eq!(version(&path), super::SCHEMA_VERSION);
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
    }
}
