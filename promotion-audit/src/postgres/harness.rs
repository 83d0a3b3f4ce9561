//! The conformance harness for PostgreSQL: a fresh schema per harness (dropped with the
//! harness), tampered with through raw SQL on a separate connection.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;

use postgres::{Client, NoTls};

use crate::conformance::{flip_event_byte, Harness, Tamper};
use crate::merkle::Hash;
use crate::store::AuditStore;

use super::PostgresBackend;

/// A schema name no other test uses: `promotion_test_<pid>_<counter>_<random>`.
pub fn unique_schema() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut random = [0u8; 4];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
    format!(
        "promotion_test_{}_{n}_{}",
        std::process::id(),
        hex::encode(random)
    )
}

/// A connection to `url` with `search_path` set to `schema`.
pub fn raw_client(url: &str, schema: &str) -> Client {
    let mut c = Client::connect(url, NoTls).unwrap();
    c.execute(
        "SELECT set_config('search_path', $1, false)",
        &[&super::quote(schema)],
    )
    .unwrap();
    c
}

/// Drops its schema (and everything in it) when dropped, also when a test panics.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug)]
pub struct SchemaGuard {
    pub url: String,
    pub schema: String,
}

impl SchemaGuard {
    /// A guard for a new unique schema name (nothing is created yet).
    pub fn new(url: &str) -> SchemaGuard {
        SchemaGuard {
            url: url.to_owned(),
            schema: unique_schema(),
        }
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(&self.url, NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                super::quote(&self.schema)
            ));
        }
    }
}

/// Opens a store on the log in `schema` of `url`.
pub fn open_store(url: &str, schema: &str, options: crate::AuditOptions) -> AuditStore {
    let (w, r) = PostgresBackend::open_pair_in(url, schema).unwrap();
    let description = format!("postgres:{}", w.describe());
    AuditStore::with_backend(Box::new(w), Box::new(r), description, options).unwrap()
}

/// A harness over a fresh schema of the database at `url`.
pub fn postgres_harness(url: &str) -> Harness {
    let guard = SchemaGuard::new(url);
    let (u, s) = (url.to_owned(), guard.schema.clone());
    Harness {
        open: Box::new(move |o| open_store(&u, &s, o)),
        tamper: Box::new(SqlTamper(guard)),
    }
}

struct SqlTamper(SchemaGuard);

impl SqlTamper {
    fn conn(&self) -> Client {
        raw_client(&self.0.url, &self.0.schema)
    }
}

impl Tamper for SqlTamper {
    fn flip_byte(&self, seq: u64) {
        let mut c = self.conn();
        let bytes: Vec<u8> = c
            .query_one("SELECT bytes FROM entries WHERE seq = $1", &[&(seq as i64)])
            .unwrap()
            .get(0);
        c.execute(
            "UPDATE entries SET bytes = $1 WHERE seq = $2",
            &[&flip_event_byte(&bytes), &(seq as i64)],
        )
        .unwrap();
    }
    fn delete(&self, seq: u64) {
        self.conn()
            .execute("DELETE FROM entries WHERE seq = $1", &[&(seq as i64)])
            .unwrap();
    }
    fn swap(&self, a: u64, b: u64) {
        self.conn()
            .execute(
                "UPDATE entries e SET bytes = o.bytes, hash = o.hash FROM entries o
                 WHERE (e.seq = $1 AND o.seq = $2) OR (e.seq = $2 AND o.seq = $1)",
                &[&(a as i64), &(b as i64)],
            )
            .unwrap();
    }
    fn truncate(&self, keep: u64) {
        self.conn()
            .execute("DELETE FROM entries WHERE seq >= $1", &[&(keep as i64)])
            .unwrap();
    }
    fn duplicate(&self, seq: u64) {
        self.conn()
            .execute(
                "INSERT INTO entries (seq, stream, version, bytes, hash)
                 SELECT (SELECT MAX(seq) + 1 FROM entries), stream, version + 1000, bytes, hash
                 FROM entries WHERE seq = $1",
                &[&(seq as i64)],
            )
            .unwrap();
    }
    fn rewrite(&self, seq: u64, bytes: &[u8], hash: Hash) {
        self.conn()
            .execute(
                "UPDATE entries SET bytes = $1, hash = $2 WHERE seq = $3",
                &[&bytes, &&hash[..], &(seq as i64)],
            )
            .unwrap();
    }
    fn put_nodes(&self, nodes: &[(u8, u64, Hash)]) {
        let mut c = self.conn();
        for &(level, index, hash) in nodes {
            c.execute(
                "INSERT INTO nodes (level, idx, hash) VALUES ($1, $2, $3)
                 ON CONFLICT (level, idx) DO UPDATE SET hash = EXCLUDED.hash",
                &[&i16::from(level), &(index as i64), &&hash[..]],
            )
            .unwrap();
        }
    }
    fn put_checkpoint(&self, size: u64, note: &str) {
        self.conn()
            .execute(
                "INSERT INTO checkpoints (size, note) VALUES ($1, $2)
                 ON CONFLICT (size) DO UPDATE SET note = EXCLUDED.note",
                &[&(size as i64), &note],
            )
            .unwrap();
    }
    fn delete_checkpoints(&self, from_size: u64) {
        self.conn()
            .execute(
                "DELETE FROM checkpoints WHERE size >= $1",
                &[&(from_size as i64)],
            )
            .unwrap();
    }
}

/// What a PostgreSQL test says when it is skipped.
const SKIPPED: &str =
    "SKIPPED: PROMOTION_TEST_POSTGRES_URL is not set; PostgreSQL tests did not run";

/// The test database, from `PROMOTION_TEST_POSTGRES_URL`, or `None` after saying loudly (on
/// stderr, past the test harness's output capture) that the test is skipped. Under CI (env `CI`
/// set) a missing URL is a failure, so that CI cannot pass without PostgreSQL.
pub fn test_url() -> Option<String> {
    match std::env::var("PROMOTION_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{SKIPPED} (and CI is set: PostgreSQL is required)");
            }
            // Straight to the stderr handle, past the test harness's output capture.
            let _ = writeln!(std::io::stderr(), "{SKIPPED}");
            None
        }
    }
}
