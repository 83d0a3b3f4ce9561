//! Creating a SQLite audit log in one transaction, and recognising a file whose creation an
//! older build left half done.
//!
//! The whole schema (every table, `application_id` and `user_version`) is written by one
//! write transaction. Both pragmas live in the database header, on page 1, which a write
//! transaction journals like any other page: a kill before the commit leaves a file that holds
//! nothing at all (and that the next writer creates again), never part of a schema. The test
//! `the_header_pragmas_roll_back_with_the_transaction` checks that premise on the bundled
//! SQLite.
//!
//! Builds before this one ran the statements one by one, each committing on its own; a kill
//! between two left our `application_id` with no tables, or `user_version` 3 with some of
//! the tables. Such a file is recognised by the tables its version lacks. It is finished (in
//! one transaction) when it holds no entries, which is always the case for a file whose
//! creation was cut short, and refused, naming what is missing, otherwise.

use std::path::Path;

use rusqlite::Connection;

use super::schema::{LEASES, TABLES};
use super::{sql, APPLICATION_ID, SCHEMA_VERSION};
use crate::error::AuditError;

/// The tables of a complete file of schema 3.
const TABLES_3: [&str; 8] = [
    "streams",
    "blocks",
    "stream_index",
    "stream_counts",
    "indexed",
    "nodes",
    "checkpoints",
    "leases",
];

/// Tables that hold the log's content (in one schema or another): a file in which any of them
/// has a row holds entries and is never recreated.
const CONTENT: [&str; 6] = [
    "entries",
    "blocks",
    "streams",
    "stream_index",
    "nodes",
    "checkpoints",
];

/// What a file's header and schema say, read before anything is written to it.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) app_id: i32,
    pub(super) user_version: i32,
    /// The names of its tables.
    pub(super) tables: Vec<String>,
}

impl Layout {
    /// Reads the header and the table names. The error says which read failed and why: the
    /// first read of a file that is not a database fails here.
    pub(super) fn read(conn: &Connection) -> Result<Layout, (&'static str, rusqlite::Error)> {
        let app_id = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| ("reading the header", e))?;
        let user_version = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| ("reading the header", e))?;
        let tables = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| ("reading the schema", e))?;
        Ok(Layout {
            app_id,
            user_version,
            tables,
        })
    }

    /// Nothing was ever committed to it (a new file, or one whose creation was killed before
    /// its commit).
    pub(super) fn is_blank(&self) -> bool {
        self.app_id == 0 && self.tables.is_empty()
    }

    /// The tables a complete file of its `user_version` has and this one lacks; empty when it
    /// is complete. A file of ours at version 0 lacks every table.
    pub(super) fn missing(&self) -> Vec<&'static str> {
        let wanted: &[&'static str] = match self.user_version {
            1 => &["entries", "nodes", "checkpoints"],
            2 => &["entries", "nodes", "checkpoints", "leases"],
            v if v == SCHEMA_VERSION => &TABLES_3,
            _ if self.user_version <= 0 => &TABLES_3,
            _ => &[],
        };
        wanted
            .iter()
            .copied()
            .filter(|t| !self.tables.iter().any(|have| have == t))
            .collect()
    }

    /// Whether any table that holds the log's content has a row.
    fn holds_entries(&self, conn: &Connection) -> rusqlite::Result<bool> {
        for table in CONTENT {
            if self.tables.iter().any(|t| t == table) {
                let any: bool =
                    conn.query_row(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), [], |r| {
                        r.get(0)
                    })?;
                if any {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// What to tell the owner of a half-created file that holds entries: it is damaged, and only
/// a copy can bring the missing tables back.
fn damaged(path: &Path, missing: &[&str]) -> AuditError {
    AuditError::ForeignFile {
        path: path.display().to_string(),
        problem: format!(
            "it is damaged: it holds entries but lacks table(s) {}; restore it from a backup \
             (or re-import a JSON Lines export of it into a new log)",
            missing.join(", ")
        ),
    }
}

/// What to tell a reader of a half-created file that holds nothing.
pub(super) fn unfinished(path: &Path, layout: &Layout) -> AuditError {
    AuditError::ForeignFile {
        path: path.display().to_string(),
        problem: format!(
            "its creation was cut short (schema {}, no table(s) {}) and it holds no entries: \
             open it once with a writer (AuditStore::open_sqlite, or any `promote` command that \
             records) to finish it",
            layout.user_version,
            layout.missing().join(", ")
        ),
    }
}

/// Creates the schema in `conn`'s file, or finishes a half-created one, in one transaction.
/// Another process may be doing the same: whoever takes the write lock second finds the work
/// done and leaves it. A file that turns out to hold entries is refused, never recreated.
pub(super) fn create(conn: &Connection, path: &Path) -> Result<(), AuditError> {
    // Not allowed inside a transaction; on a new file it only takes effect with the first
    // commit, so the commit below is written to the WAL like every later one.
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .map_err(sql("setting durability", path))?;
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(sql("locking a new log", path))?;
    let done = (|| {
        let layout = Layout::read(conn)
            .map_err(|(what, e)| sql(&format!("creating the schema ({what})"), path)(e))?;
        if !layout.is_blank() {
            if layout.app_id != APPLICATION_ID {
                // Someone else's file appeared while this one waited for the lock; the
                // caller's checks refuse it.
                return Ok(());
            }
            if layout.missing().is_empty() {
                return Ok(());
            }
            let holds = layout
                .holds_entries(conn)
                .map_err(sql("looking for entries in a half-created log", path))?;
            if holds {
                return Err(damaged(path, &layout.missing()));
            }
            tracing::warn!(
                path = %path.display(),
                schema = layout.user_version,
                missing = %layout.missing().join(", "),
                "finishing an audit log whose creation was cut short"
            );
        }
        // A half-created schema 1 or 2 file may have an (empty) `entries` table; schema 3 has
        // none. The other tables of those schemas are defined as in schema 3.
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS entries; {TABLES} {LEASES}
             PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
        ))
        .map_err(sql("creating the schema", path))?;
        Ok(())
    })();
    match done {
        Ok(()) => conn
            .execute_batch("COMMIT")
            .map_err(sql("committing the new schema", path))
            .map_err(AuditError::from),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rusqlite::Connection;

    use crate::conformance;
    use crate::store::{AuditOptions, AuditStore};

    fn header(path: &Path) -> (i32, i32, i64) {
        let c = Connection::open(path).unwrap();
        let app: i32 = c
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .unwrap();
        let uv: i32 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        let tables: i64 = c
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        (app, uv, tables)
    }

    #[test]
    fn the_header_pragmas_roll_back_with_the_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollback.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL; BEGIN IMMEDIATE;
             PRAGMA application_id = 1234; PRAGMA user_version = 7; CREATE TABLE t (x);
             ROLLBACK;",
        )
        .unwrap();
        drop(c);
        assert_eq!(header(&path), (0, 0, 0), "nothing of the transaction stays");
    }

    /// Runs the statements the builds before this one ran one by one, stopping after `upto`
    /// of them, as a kill there left the file.
    fn half_created(path: &Path, upto: usize) {
        let mut statements = vec![
            format!("PRAGMA application_id = {}", super::APPLICATION_ID),
            format!("PRAGMA user_version = {}", super::SCHEMA_VERSION),
        ];
        statements.extend(
            format!("{} {}", super::TABLES, super::LEASES)
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        let c = Connection::open(path).unwrap();
        c.execute_batch("PRAGMA journal_mode = WAL").unwrap();
        for s in statements.iter().take(upto) {
            c.execute_batch(s).unwrap();
        }
    }

    #[test]
    fn every_half_created_file_of_older_builds_is_finished_by_a_writer() {
        use promotion_core::{EventStore, ExpectedVersion, StreamId};
        // 2 pragmas and 9 statements of tables: a kill after 1..=10 left it unfinished.
        for upto in 1..=10 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("half.db");
            half_created(&path, upto);
            let err = AuditStore::open_sqlite_existing(&path, AuditOptions::new("t")).unwrap_err();
            assert!(
                err.to_string().contains("creation was cut short")
                    && err.to_string().contains("open it once with a writer"),
                "after {upto} statements: {err}"
            );
            // The advice works: a writer finishes it, and then readers and appends work.
            let store = AuditStore::open_sqlite(&path, conformance::options()).unwrap();
            let stream = StreamId::new("s").unwrap();
            futures::executor::block_on(async {
                store
                    .append(
                        &stream,
                        ExpectedVersion::Exact(0),
                        &[conformance::stage_ready_event(0)],
                    )
                    .await
                    .unwrap();
                assert_eq!(store.verify(None).await.unwrap().entries, 1, "after {upto}");
            });
            drop(store);
            assert!(AuditStore::open_sqlite_existing(&path, AuditOptions::new("t")).is_ok());
            assert_eq!(header(&path).1, super::SCHEMA_VERSION);
        }
    }

    #[test]
    fn a_half_created_schema_1_file_is_finished_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!(
                "PRAGMA application_id = {}; PRAGMA user_version = 1;
                 CREATE TABLE entries (seq INTEGER PRIMARY KEY, stream TEXT NOT NULL,
                     version INTEGER NOT NULL, bytes BLOB NOT NULL, hash BLOB NOT NULL);",
                super::APPLICATION_ID
            ))
            .unwrap();
        drop(AuditStore::open_sqlite(&path, conformance::options()).unwrap());
        let c = Connection::open(&path).unwrap();
        let entries: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'entries'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(entries, 0, "the empty table of schema 1 is gone");
        assert_eq!(header(&path).1, super::SCHEMA_VERSION);
    }

    #[test]
    fn a_file_missing_tables_that_holds_entries_is_refused_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.db");
        let store = AuditStore::open_sqlite(&path, conformance::options()).unwrap();
        futures::executor::block_on(async {
            use promotion_core::{EventStore, ExpectedVersion, StreamId};
            store
                .append(
                    &StreamId::new("s").unwrap(),
                    ExpectedVersion::Exact(0),
                    &[conformance::stage_ready_event(0)],
                )
                .await
                .unwrap();
        });
        drop(store);
        Connection::open(&path)
            .unwrap()
            .execute_batch("DROP TABLE stream_counts;")
            .unwrap();
        let err = AuditStore::open_sqlite(&path, conformance::options()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("damaged") && msg.contains("lacks table(s) stream_counts"),
            "{msg}"
        );
        let blocks: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM blocks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(blocks, 1, "the entry is still there");
    }
}
