//! The PostgreSQL backend: the same rows as the SQLite backend, in one schema of a PostgreSQL
//! database, shared by every process that opens it.
//!
//! - **Schema.** A log lives in one schema: [`PostgresBackend::open_pair`] uses
//!   [`DEFAULT_SCHEMA`] (`public`), [`PostgresBackend::open_pair_in`] any other (tests use a
//!   fresh schema each). The name is used exactly as given (quoted), and may hold ASCII
//!   letters, digits and `_` only, up to 63 bytes.
//! - **Migrations.** Opening applies the schema migrations this build knows, recorded in
//!   `promotion_audit_migrations(version, applied_at)`. They run in one transaction under a
//!   transaction-level advisory lock on a fixed key ([`MIGRATION_LOCK_KEY`]), so any number of
//!   processes may open the same fresh schema at once: one migrates, the others wait and find
//!   it done. A schema that already holds tables of ours without the migrations table (another
//!   application's), or migrated by a newer build, is refused with
//!   [`AuditError::ForeignFile`].
//! - **Writer lock.** [`Backend::begin`](crate::Backend::begin) starts a transaction and takes
//!   `pg_advisory_xact_lock(`[`WRITER_LOCK_CLASS`]`, <schema oid>)`, released when the
//!   transaction commits or rolls back (or its connection dies), so writers of any process
//!   never interleave; the head is read after the lock is held.
//! - **Durability.** `COMMIT` returns once the commit is durable under PostgreSQL's default
//!   `synchronous_commit = on`.
//! - **Timeouts.** Connections get `lock_timeout` [`DEFAULT_LOCK_TIMEOUT`], `statement_timeout`
//!   [`DEFAULT_STATEMENT_TIMEOUT`], `idle_in_transaction_session_timeout`
//!   [`DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT`] and TCP keepalives after
//!   [`DEFAULT_KEEPALIVE_IDLE`] unless the URL or the server sets them
//!   (`?options=-c%20lock_timeout%3D5s`, `keepalives_idle=10`) or the code does
//!   ([`Timeouts`] given to [`PostgresBackend::open_pair_with`], which wins): a writer waiting behind a stuck
//!   one fails with an error instead of hanging, and a writer that stalls *inside* its
//!   transaction (a replica paused by SIGSTOP or a GC pause while holding the writer lock) is
//!   cut off by the server after the idle bound, releasing the lock: one stalled replica
//!   cannot stop the others from appending for longer than that. Its transaction is rolled
//!   back; it finds its connection closed when it resumes, and nothing of it was appended.
//! - **Leases** (migration 2) live in the `leases` table beside the log and are judged by the
//!   server's `clock_timestamp()`; see `promotion_core::LeaseStore`.
//! - **Errors name their cause.** A failure's message says what was done where and why in
//!   words, from the server's SQLSTATE (lock timeout, statement timeout, idle-in-transaction
//!   timeout, serialization failure, deadlock, disk full on the server, permission denied,
//!   authentication failed, …) or, before any server answered, the operating system's reason
//!   (connection refused, …), and keeps the driver's error as its
//!   [`source`](std::error::Error::source).
//! - **Connection faults.** Every failure, a lost connection included, is a [`BackendError`];
//!   a connection found closed is replaced by a new one at the next transaction or read, never
//!   inside a transaction.
//! - **Secrets.** Errors and descriptions name the database as `postgres://user@host:port/db`:
//!   the password of the URL never appears in them.
//!
//! This file opens a log and names where it lives; `migrate.rs` holds the migrations,
//! `session.rs` one connection and its prepared statements, `backend.rs` the
//! [`Backend`](crate::Backend) implementation, and `harness` the conformance harness.

use std::cell::{Cell, RefCell};
use std::fmt;

use postgres::config::Host;
use postgres::Config;
use promotion_core::report_chain;

use crate::error::{AuditError, BackendError};
use crate::merkle::Hash;

mod backend;
mod cause;
pub(crate) use cause::cause_kind;
#[cfg(any(test, feature = "conformance"))]
pub mod harness;
mod migrate;
mod session;

use migrate::migrate;
use session::{connect, Session};

/// The schema [`PostgresBackend::open_pair`] keeps the log in.
pub const DEFAULT_SCHEMA: &str = "public";
/// Key of the transaction-level advisory lock that serialises migrations (all schemas).
pub const MIGRATION_LOCK_KEY: i64 = 0x5052_414c_4d49_4752; // "PRALMIGR"
/// First key of the writers' advisory lock; the second is the schema's oid.
pub const WRITER_LOCK_CLASS: i32 = 0x5052_414c; // "PRAL"
/// `lock_timeout` of the log's connections when neither the URL nor the server sets one.
pub const DEFAULT_LOCK_TIMEOUT: &str = "30s";
/// `statement_timeout` of the log's connections when neither the URL nor the server sets one.
pub const DEFAULT_STATEMENT_TIMEOUT: &str = "120s";
/// `idle_in_transaction_session_timeout` of the log's connections when neither the URL nor the
/// server sets one. An append's transaction idles only between its own statements
/// (milliseconds), so a connection idle inside one for this long belongs to a stalled process.
pub const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT: &str = "5s";
/// TCP keepalive idle time of the log's connections when the URL sets none, so that a
/// connection to a server that vanished (a partition, a lost host) is noticed in about a minute
/// instead of the system's default two hours.
pub const DEFAULT_KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
/// The table that records applied migrations.
pub const MIGRATIONS_TABLE: &str = "promotion_audit_migrations";
/// The newest schema migration this build applies and reads.
pub const SCHEMA_VERSION: i32 = 2;

/// The three bounds on how long a connection of the log may wait or hold a transaction, given
/// in code (see [`PostgresBackend::open_pair_with`]). A bound left `None` is taken from the
/// URL (`?options=-c%20lock_timeout%3D5s`) or the server's configuration, and where neither
/// sets it, from the defaults ([`DEFAULT_LOCK_TIMEOUT`], [`DEFAULT_STATEMENT_TIMEOUT`],
/// [`DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT`]); a bound given here wins over both. Zero is
/// refused: PostgreSQL reads it as "no bound", which is what these exist to prevent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// `lock_timeout`: a writer waiting for the writer lock (or a lease row) longer than this
    /// fails with "lock timeout" instead of waiting on.
    pub lock: Option<std::time::Duration>,
    /// `statement_timeout`: a statement running (or waiting) longer than this fails with
    /// "statement timeout".
    pub statement: Option<std::time::Duration>,
    /// `idle_in_transaction_session_timeout`: a session idle inside a transaction longer than
    /// this (its process paused or stalled while holding the writer lock) is closed by the
    /// server, its transaction rolled back and its locks released, so that the other writers
    /// wait no longer than this for a stalled one.
    pub idle_in_transaction: Option<std::time::Duration>,
}

impl Timeouts {
    /// `(setting name, milliseconds)` for each bound given; refuses a zero or a bound past
    /// PostgreSQL's range (`i32::MAX` milliseconds).
    fn settings(&self) -> Result<Vec<(&'static str, u32)>, AuditError> {
        let mut out = Vec::new();
        for (name, bound) in [
            ("lock_timeout", self.lock),
            ("statement_timeout", self.statement),
            (
                "idle_in_transaction_session_timeout",
                self.idle_in_transaction,
            ),
        ] {
            let Some(bound) = bound else { continue };
            let ms = u32::try_from(bound.as_millis())
                .ok()
                .filter(|ms| (1..=i32::MAX as u32).contains(ms))
                .ok_or_else(|| {
                    AuditError::InvalidRequest(format!(
                        "{name} of {bound:?} cannot be set: give at least 1 ms and at most \
                         {} ms (zero would mean no bound at all)",
                        i32::MAX
                    ))
                })?;
            out.push((name, ms));
        }
        Ok(out)
    }
}

/// Where a log lives, for messages: never holds a password.
#[derive(Debug, Clone)]
struct Place {
    /// `postgres://user@host:port/db`.
    target: String,
    /// The schema name, unquoted.
    schema: String,
    /// The bounds given in code, set on every connection made to it.
    bounds: Vec<(&'static str, u32)>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "schema {} of PostgreSQL database {}",
            self.schema, self.target
        )
    }
}

impl Place {
    /// `<what> in <place>: <cause in words> (<driver's text>)`, the driver's error as source.
    fn err(&self, what: &str, e: postgres::Error) -> BackendError {
        cause::backend_error(what, self, e)
    }
    fn foreign(&self, problem: String) -> AuditError {
        AuditError::ForeignFile {
            path: self.to_string(),
            problem,
        }
    }
}

/// `postgres://user@host:port/db` for `config`: every part but the password.
fn redact(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let db = config
        .get_dbname()
        .map(|d| format!("/{d}"))
        .unwrap_or_default();
    format!("postgres://{user}{}{db}", hosts.join(","))
}

fn quote(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

fn check_schema_name(schema: &str) -> Result<(), AuditError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !schema.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(AuditError::InvalidRequest(format!(
            "{schema:?} is not a usable PostgreSQL schema name for an audit log \
             (ASCII letters, digits and _, not starting with a digit, at most 63 bytes)"
        )))
    }
}

/// A connection to an audit log in a PostgreSQL schema. See the [module](self) documentation
/// for the schema, migrations, locking and fault behaviour.
pub struct PostgresBackend {
    session: RefCell<Session>,
    config: Config,
    place: Place,
    /// The schema's oid: the second key of the writer lock.
    lock_key: i32,
    /// Inside a write transaction: a lost connection must not be replaced silently.
    in_tx: Cell<bool>,
}

impl fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("place", &self.place.to_string())
            .field("in_transaction", &self.in_tx.get())
            .finish()
    }
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unsigned(v: i64, what: &str) -> Result<u64, BackendError> {
    u64::try_from(v).map_err(|_| BackendError::new(format!("{what} is negative ({v})")))
}

fn hash(bytes: Vec<u8>, what: &str) -> Result<Hash, BackendError> {
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| BackendError::new(format!("{what} is {} bytes, not 32", b.len())))
}

impl PostgresBackend {
    /// Opens the log in schema [`DEFAULT_SCHEMA`] of the database at `url` (a `postgres://`
    /// URL or a `key=value` connection string), migrating it first, and returns two
    /// connections: one for the writer, one for readers.
    pub fn open_pair(url: &str) -> Result<(PostgresBackend, PostgresBackend), AuditError> {
        Self::open_pair_in(url, DEFAULT_SCHEMA)
    }

    /// Like [`open_pair`](Self::open_pair), with the log in `schema` (created if absent).
    ///
    /// Works from any thread, inside an async runtime too: the blocking client's connections
    /// are made on a thread of their own.
    pub fn open_pair_in(
        url: &str,
        schema: &str,
    ) -> Result<(PostgresBackend, PostgresBackend), AuditError> {
        Self::open_pair_with(url, schema, Timeouts::default())
    }

    /// Like [`open_pair_in`](Self::open_pair_in), with the connections' bounds given in code:
    /// each bound set in `timeouts` replaces the URL's, the server's and the default; the
    /// connections made again after a lost one get the same.
    pub fn open_pair_with(
        url: &str,
        schema: &str,
        timeouts: Timeouts,
    ) -> Result<(PostgresBackend, PostgresBackend), AuditError> {
        // The `postgres` client drives its connection with a private tokio runtime, which
        // refuses to start on a thread that is already inside one.
        std::thread::scope(|s| {
            s.spawn(|| Self::open_pair_here(url, schema, timeouts))
                .join()
                .map_err(|_| {
                    AuditError::InvalidRequest("opening the PostgreSQL log panicked".into())
                })?
        })
    }

    fn open_pair_here(
        url: &str,
        schema: &str,
        timeouts: Timeouts,
    ) -> Result<(PostgresBackend, PostgresBackend), AuditError> {
        check_schema_name(schema)?;
        let bounds = timeouts.settings()?;
        let mut config: Config = url.parse().map_err(|e: postgres::Error| {
            AuditError::InvalidRequest(format!(
                "the PostgreSQL connection string does not parse: {}",
                report_chain(&e)
            ))
        })?;
        if config.get_application_name().is_none() {
            config.application_name("promotion-audit");
        }
        if !url.contains("keepalives_idle") {
            config.keepalives_idle(DEFAULT_KEEPALIVE_IDLE);
        }
        let place = Place {
            target: redact(&config),
            schema: schema.to_owned(),
            bounds,
        };
        let mut client = connect(&config, &place)?;
        migrate(&mut client, &place)?;
        let oid: u32 = client
            .query_one(
                "SELECT oid FROM pg_namespace WHERE nspname = $1",
                &[&place.schema],
            )
            .and_then(|r| r.try_get(0))
            .map_err(|e| place.err("reading the schema's oid", e))?;
        let lock_key = i32::from_ne_bytes(oid.to_ne_bytes());
        let writer = Session::new(client, &place)?;
        let reader = Session::new(connect(&config, &place)?, &place)?;
        let make = |session| PostgresBackend {
            session: RefCell::new(session),
            config: config.clone(),
            place: place.clone(),
            lock_key,
            in_tx: Cell::new(false),
        };
        Ok((make(writer), make(reader)))
    }

    /// Where the log is, for descriptions: `postgres://user@host:port/db` and the schema
    /// (never the password).
    pub fn describe(&self) -> String {
        self.place.to_string()
    }

    /// The process id of this connection's server backend (`pg_backend_pid()`), for
    /// diagnostics and for tests that terminate connections from the server side.
    pub fn backend_pid(&self) -> Result<i32, BackendError> {
        self.run("reading the backend pid", |s| {
            s.client
                .query_one("SELECT pg_backend_pid()", &[])
                .and_then(|r| r.try_get(0))
        })
    }
}
#[cfg(test)]
mod tests {
    use super::harness::test_url as url;
    use super::PostgresBackend;
    use crate::error::AuditError;

    #[test]
    fn errors_never_show_the_password() {
        let Some(url) = url() else { return };
        let config: postgres::Config = url.parse().unwrap();
        let hosts = config.get_hosts().to_vec();
        let host = match hosts.first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".into(),
        };
        // Nothing listens on port 1.
        let bad = format!("postgres://someone:hunter2-secret@{host}:1/test");
        let err = PostgresBackend::open_pair_in(&bad, "public").unwrap_err();
        let msg = format!("{err} {err:?}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("postgres://someone@"), "{msg}");
        let err = PostgresBackend::open_pair_in(&url, "bad-name;drop").unwrap_err();
        assert!(matches!(err, AuditError::InvalidRequest(_)), "{err}");
    }
}
