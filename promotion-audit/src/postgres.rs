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
//! - **Writer lock.** [`Backend::begin`] starts a transaction and takes
//!   `pg_advisory_xact_lock(`[`WRITER_LOCK_CLASS`]`, <schema oid>)`, released when the
//!   transaction commits or rolls back (or its connection dies), so writers of any process
//!   never interleave; the head is read after the lock is held.
//! - **Durability.** `COMMIT` returns once the commit is durable under PostgreSQL's default
//!   `synchronous_commit = on`.
//! - **Timeouts.** Connections get `lock_timeout` [`DEFAULT_LOCK_TIMEOUT`], `statement_timeout`
//!   [`DEFAULT_STATEMENT_TIMEOUT`] and TCP keepalives after [`DEFAULT_KEEPALIVE_IDLE`] unless
//!   the URL or the server sets them (`?options=-c%20lock_timeout%3D5s`, `keepalives_idle=10`):
//!   a writer waiting behind a stuck one fails with an error instead of hanging.
//! - **Leases** (migration 2) live in the `leases` table beside the log and are judged by the
//!   server's `clock_timestamp()`; see `promotion_core::lease`.
//! - **Connection faults.** Every failure, a lost connection included, is a [`BackendError`];
//!   a connection found closed is replaced by a new one at the next transaction or read, never
//!   inside a transaction.
//! - **Secrets.** Errors and descriptions name the database as `postgres://user@host:port/db`:
//!   the password of the URL never appears in them.

use std::cell::{Cell, RefCell};
use std::fmt;

use chrono::{DateTime, Utc};
use postgres::config::Host;
use postgres::{Client, Config, NoTls, Row, Statement};
use promotion_core::lease::{LeaseRow, ReplicaId};
use promotion_core::{report_chain, StreamId};

use crate::backend::{Backend, Head, LeaseChange};
use crate::entry::{StoredEntry, GENESIS_PREV};
use crate::error::{AuditError, BackendError};
use crate::merkle::Hash;

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
/// TCP keepalive idle time of the log's connections when the URL sets none, so that a
/// connection to a server that vanished (a partition, a lost host) is noticed in about a minute
/// instead of the system's default two hours.
pub const DEFAULT_KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
/// The table that records applied migrations.
pub const MIGRATIONS_TABLE: &str = "promotion_audit_migrations";
/// The newest schema migration this build applies and reads.
pub const SCHEMA_VERSION: i32 = 2;

/// The migrations, in order: (version, SQL with `{schema}` for the quoted schema name).
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE {schema}.entries (
         seq     BIGINT PRIMARY KEY,
         stream  TEXT   NOT NULL,
         version BIGINT NOT NULL,
         bytes   BYTEA  NOT NULL,
         hash    BYTEA  NOT NULL,
         UNIQUE (stream, version)
     );
     CREATE TABLE {schema}.nodes (
         level SMALLINT NOT NULL,
         idx   BIGINT   NOT NULL,
         hash  BYTEA    NOT NULL,
         PRIMARY KEY (level, idx)
     );
     CREATE TABLE {schema}.checkpoints (
         size BIGINT PRIMARY KEY,
         note TEXT   NOT NULL
     );",
    ),
    (
        2,
        // Coordination state for replicas (promotion_core::lease); not part of the log. A row
        // with token 0 is a placeholder: no lease was ever granted.
        "CREATE TABLE {schema}.leases (
         key        TEXT   PRIMARY KEY,
         holder     TEXT   NOT NULL,
         token      BIGINT NOT NULL,
         expires_us BIGINT NOT NULL
     );",
    ),
];

/// The tables of the log (besides the migrations table).
const TABLES: [&str; 4] = ["entries", "nodes", "checkpoints", "leases"];

/// Where a log lives, for messages: never holds a password.
#[derive(Debug, Clone)]
struct Place {
    /// `postgres://user@host:port/db`.
    target: String,
    /// The schema name, unquoted.
    schema: String,
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
    fn err(&self, what: &str, e: postgres::Error) -> BackendError {
        BackendError::with(format!("{what} in {self}: {}", report_chain(&e)), e)
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

/// The statements a connection prepares once.
struct Statements {
    lock: Statement,
    head: Statement,
    stream_version: Statement,
    insert_entries: Statement,
    insert_nodes: Statement,
    insert_checkpoint: Statement,
    size: Statement,
    read_stream: Statement,
    read_range: Statement,
    read_nodes: Statement,
    node: Statement,
    latest_checkpoint: Statement,
    streams: Statement,
    lease_placeholder: Statement,
    lease_for_update: Statement,
    lease_for_share: Statement,
    lease_put: Statement,
}

/// The server's clock in microseconds since the epoch: the one clock every replica shares.
const SERVER_NOW_US: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::int8";

impl Statements {
    fn prepare(c: &mut Client) -> Result<Statements, postgres::Error> {
        Ok(Statements {
            lock: c.prepare("SELECT pg_advisory_xact_lock($1::int4, $2::int4)")?,
            head: c.prepare("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1")?,
            stream_version: c.prepare(
                "SELECT COALESCE(MAX(version), 0)::int8 FROM entries WHERE stream = $1",
            )?,
            insert_entries: c.prepare(
                "INSERT INTO entries (seq, stream, version, bytes, hash)
                 SELECT * FROM UNNEST($1::int8[], $2::text[], $3::int8[], $4::bytea[], $5::bytea[])",
            )?,
            insert_nodes: c.prepare(
                "INSERT INTO nodes (level, idx, hash)
                 SELECT * FROM UNNEST($1::int2[], $2::int8[], $3::bytea[])",
            )?,
            insert_checkpoint: c.prepare(
                "INSERT INTO checkpoints (size, note) VALUES ($1, $2)
                 ON CONFLICT (size) DO UPDATE SET note = EXCLUDED.note",
            )?,
            size: c.prepare("SELECT COALESCE(MAX(seq) + 1, 0)::int8 FROM entries")?,
            read_stream: c.prepare(
                "SELECT seq, stream, version, bytes, hash FROM entries
                 WHERE stream = $1 AND version > $2 ORDER BY version",
            )?,
            read_range: c.prepare(
                "SELECT seq, stream, version, bytes, hash FROM entries
                 WHERE seq >= $1 ORDER BY seq LIMIT $2",
            )?,
            read_nodes: c.prepare(
                "SELECT idx, hash FROM nodes WHERE level = $1 AND idx >= $2 ORDER BY idx LIMIT $3",
            )?,
            node: c.prepare("SELECT hash FROM nodes WHERE level = $1 AND idx = $2")?,
            latest_checkpoint: c
                .prepare("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")?,
            streams: c.prepare("SELECT DISTINCT stream FROM entries ORDER BY stream")?,
            lease_placeholder: c.prepare(
                "INSERT INTO leases (key, holder, token, expires_us) VALUES ($1, '', 0, 0)
                 ON CONFLICT (key) DO NOTHING",
            )?,
            lease_for_update: c.prepare(&format!(
                "SELECT holder, token, expires_us, {SERVER_NOW_US} FROM leases WHERE key = $1 FOR UPDATE"
            ))?,
            lease_for_share: c.prepare(&format!(
                "SELECT l.holder, l.token, l.expires_us, {SERVER_NOW_US}
                 FROM (SELECT 1) AS one LEFT JOIN (SELECT * FROM leases WHERE key = $1 FOR SHARE) AS l ON true"
            ))?,
            lease_put: c.prepare(
                "UPDATE leases SET holder = $2, token = $3, expires_us = $4 WHERE key = $1",
            )?,
        })
    }
}

/// One connection with its prepared statements.
struct Session {
    client: Client,
    st: Statements,
}

/// Connects and points `search_path` at the log's schema.
fn connect(config: &Config, place: &Place) -> Result<Client, BackendError> {
    let mut client = config
        .connect(NoTls)
        .map_err(|e| place.err("connecting", e))?;
    client
        .execute(
            "SELECT set_config('search_path', $1, false)",
            &[&quote(&place.schema)],
        )
        .map_err(|e| place.err("setting the search path", e))?;
    // Bounded waits, unless the URL (`options=-c lock_timeout=...`) or the server already set
    // them: a writer stuck behind a lock held by a half-dead connection, or a statement stuck
    // on a partitioned network, fails with an error the host can see and retry.
    client
        .batch_execute(&format!(
            "SELECT set_config('lock_timeout', '{DEFAULT_LOCK_TIMEOUT}', false)
               WHERE current_setting('lock_timeout') IN ('0', '0ms');
             SELECT set_config('statement_timeout', '{DEFAULT_STATEMENT_TIMEOUT}', false)
               WHERE current_setting('statement_timeout') IN ('0', '0ms');"
        ))
        .map_err(|e| place.err("setting timeouts", e))?;
    Ok(client)
}

impl Session {
    fn new(mut client: Client, place: &Place) -> Result<Session, BackendError> {
        let st = Statements::prepare(&mut client)
            .map_err(|e| place.err("preparing the audit log's statements", e))?;
        Ok(Session { client, st })
    }
}

/// Applies the migrations this build knows to `place.schema`, refusing a schema that is not
/// ours or is newer, all in one transaction under the migration lock.
fn migrate(client: &mut Client, place: &Place) -> Result<(), AuditError> {
    let q = quote(&place.schema);
    let mut tx = client
        .transaction()
        .map_err(|e| place.err("starting the migration", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .map_err(|e| place.err("taking the migration lock", e))?;
    // Only when absent: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the
    // database even when the schema exists.
    let exists = !tx
        .query(
            "SELECT 1 FROM pg_namespace WHERE nspname = $1",
            &[&place.schema],
        )
        .map_err(|e| place.err("looking up the schema", e))?
        .is_empty();
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {q}"))
            .map_err(|e| place.err("creating the schema", e))?;
    }
    let present: Vec<String> = tx
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            &[&place.schema],
        )
        .map_err(|e| place.err("listing the schema's tables", e))?
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<_, _>>()
        .map_err(|e| place.err("listing the schema's tables", e))?;
    if !present.iter().any(|t| t == MIGRATIONS_TABLE) {
        let ours: Vec<&str> = TABLES
            .iter()
            .copied()
            .filter(|t| present.iter().any(|p| p == t))
            .collect();
        if !ours.is_empty() {
            return Err(place.foreign(format!(
                "it has table(s) {} that promotion-audit did not create (there is no {MIGRATIONS_TABLE} table)",
                ours.join(", ")
            )));
        }
        tx.batch_execute(&format!(
            "CREATE TABLE {q}.{MIGRATIONS_TABLE} (
                 version    INTEGER     PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )"
        ))
        .map_err(|e| place.err("creating the migrations table", e))?;
    }
    let current: i32 = tx
        .query_one(
            &format!("SELECT COALESCE(MAX(version), 0)::int4 FROM {q}.{MIGRATIONS_TABLE}"),
            &[],
        )
        .and_then(|r| r.try_get(0))
        .map_err(|e| {
            place.foreign(format!(
                "its {MIGRATIONS_TABLE} table is not promotion-audit's ({})",
                report_chain(&e)
            ))
        })?;
    if current > SCHEMA_VERSION {
        return Err(place.foreign(format!(
            "it was migrated by a newer version (schema migration {current}; this build knows up to {SCHEMA_VERSION})"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(&sql.replace("{schema}", &q))
            .map_err(|e| place.err(&format!("applying migration {version}"), e))?;
        tx.execute(
            &format!("INSERT INTO {q}.{MIGRATIONS_TABLE} (version) VALUES ($1)"),
            &[version],
        )
        .map_err(|e| place.err(&format!("recording migration {version}"), e))?;
        tracing::info!(schema = %place.schema, target = %place.target, version, "applied audit log migration");
    }
    tx.commit()
        .map_err(|e| place.err("committing the migration", e))?;
    Ok(())
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
        // The `postgres` client drives its connection with a private tokio runtime, which
        // refuses to start on a thread that is already inside one.
        std::thread::scope(|s| {
            s.spawn(|| Self::open_pair_here(url, schema))
                .join()
                .map_err(|_| {
                    AuditError::InvalidRequest("opening the PostgreSQL log panicked".into())
                })?
        })
    }

    fn open_pair_here(
        url: &str,
        schema: &str,
    ) -> Result<(PostgresBackend, PostgresBackend), AuditError> {
        check_schema_name(schema)?;
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

    /// Runs `f` on the session, first replacing a closed connection unless a transaction is
    /// open on it.
    fn run<R>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Session) -> Result<R, postgres::Error>,
    ) -> Result<R, BackendError> {
        let mut session = self.session.try_borrow_mut().map_err(|_| {
            BackendError::new(format!("{what} in {}: the connection is busy", self.place))
        })?;
        if session.client.is_closed() {
            if self.in_tx.get() {
                return Err(BackendError::new(format!(
                    "{what} in {}: the connection was lost during the transaction",
                    self.place
                )));
            }
            tracing::warn!(place = %self.place, "audit log connection was closed; reconnecting");
            *session = Session::new(connect(&self.config, &self.place)?, &self.place)?;
        }
        f(&mut session).map_err(|e| self.place.err(what, e))
    }

    fn rows(
        &self,
        what: &str,
        pick: impl FnOnce(&Statements) -> &Statement,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, BackendError> {
        self.run(what, |s| {
            let st = pick(&s.st).clone();
            s.client.query(&st, params)
        })
    }

    fn row_entry(&self, r: &Row) -> Result<StoredEntry, BackendError> {
        let get = |e| self.place.err("decoding an entry", e);
        let seq: i64 = r.try_get(0).map_err(get)?;
        let stream: String = r.try_get(1).map_err(get)?;
        let version: i64 = r.try_get(2).map_err(get)?;
        let bytes: Vec<u8> = r.try_get(3).map_err(get)?;
        let h: Vec<u8> = r.try_get(4).map_err(get)?;
        Ok(StoredEntry {
            seq: unsigned(seq, "an entry's sequence number")?,
            stream: StreamId::new(stream)
                .map_err(|e| BackendError::with(format!("entry {seq}'s stream name"), e))?,
            version: unsigned(version, "an entry's version")?,
            bytes,
            hash: hash(h, &format!("entry {seq}'s hash"))?,
        })
    }

    fn update_lease_in(&mut self, key: &str, change: LeaseChange<'_>) -> Result<(), BackendError> {
        // The placeholder makes sure a row exists to lock, so two replicas taking a lease that
        // was never granted serialise on it instead of racing on an insert.
        self.run("creating a lease row", |s| {
            s.client.execute(&s.st.lease_placeholder, &[&key])
        })?;
        let rows = self.rows("locking a lease", |st| &st.lease_for_update, &[&key])?;
        let row = rows
            .first()
            .ok_or_else(|| BackendError::new("locking a lease: no row"))?;
        let (current, now) = self.lease_of(row)?;
        if let Some(new) = change(current.as_ref(), now) {
            let token = int(new.token);
            let expires = new.expires_at.timestamp_micros();
            let holder = new.holder.as_str();
            self.run("writing a lease", |s| {
                s.client
                    .execute(&s.st.lease_put, &[&key, &holder, &token, &expires])
            })?;
        }
        Ok(())
    }

    /// (lease, server time) from a row of `holder, token, expires_us, now_us`; a missing or
    /// placeholder lease (token 0) is `None`.
    fn lease_of(&self, r: &Row) -> Result<(Option<LeaseRow>, DateTime<Utc>), BackendError> {
        let get = |e| self.place.err("decoding a lease", e);
        let holder: Option<String> = r.try_get(0).map_err(get)?;
        let token: Option<i64> = r.try_get(1).map_err(get)?;
        let expires: Option<i64> = r.try_get(2).map_err(get)?;
        let now: i64 = r.try_get(3).map_err(get)?;
        let time = |us: i64| {
            DateTime::from_timestamp_micros(us)
                .ok_or_else(|| BackendError::new(format!("a lease time ({us} µs) is out of range")))
        };
        let now = time(now)?;
        let lease = match (holder, token, expires) {
            (Some(holder), Some(token), Some(expires)) if token > 0 => Some(LeaseRow {
                holder: ReplicaId::new(holder)
                    .map_err(|e| BackendError::with("a lease's holder", e))?,
                token: unsigned(token, "a lease token")?,
                expires_at: time(expires)?,
            }),
            _ => None,
        };
        Ok((lease, now))
    }

    fn begin_locked(&mut self) -> Result<Head, BackendError> {
        self.in_tx.set(false);
        self.run("starting a write transaction", |s| {
            s.client.batch_execute("BEGIN")
        })?;
        self.in_tx.set(true);
        let key = self.lock_key;
        self.run("taking the writer lock", |s| {
            s.client.execute(&s.st.lock, &[&WRITER_LOCK_CLASS, &key])
        })?;
        let last = self.rows("reading the head", |st| &st.head, &[])?;
        match last.first() {
            Some(r) => {
                let get = |e| self.place.err("reading the head", e);
                let seq: i64 = r.try_get(0).map_err(get)?;
                let h: Vec<u8> = r.try_get(1).map_err(get)?;
                Ok(Head {
                    size: unsigned(seq, "the last sequence number")?.saturating_add(1),
                    last: hash(h, &format!("entry {seq}'s hash"))?,
                })
            }
            None => Ok(Head {
                size: 0,
                last: GENESIS_PREV,
            }),
        }
    }
}

impl Backend for PostgresBackend {
    fn begin(&mut self) -> Result<Head, BackendError> {
        let head = self.begin_locked();
        if head.is_err() && self.in_tx.get() {
            // The store does not roll back after a failed begin: end what was started.
            self.rollback();
        }
        head
    }

    fn stream_version(&mut self, stream: &StreamId) -> Result<u64, BackendError> {
        let rows = self.rows(
            "reading a stream version",
            |st| &st.stream_version,
            &[&stream.as_str()],
        )?;
        let v: i64 = rows
            .first()
            .ok_or_else(|| BackendError::new("reading a stream version: no row"))?
            .try_get(0)
            .map_err(|e| self.place.err("reading a stream version", e))?;
        unsigned(v, "a stream version")
    }

    fn insert_entries(&mut self, entries: &[StoredEntry]) -> Result<(), BackendError> {
        let seqs: Vec<i64> = entries.iter().map(|e| int(e.seq)).collect();
        let streams: Vec<&str> = entries.iter().map(|e| e.stream.as_str()).collect();
        let versions: Vec<i64> = entries.iter().map(|e| int(e.version)).collect();
        let bytes: Vec<&[u8]> = entries.iter().map(|e| &e.bytes[..]).collect();
        let hashes: Vec<&[u8]> = entries.iter().map(|e| &e.hash[..]).collect();
        self.run("inserting entries", |s| {
            s.client.execute(
                &s.st.insert_entries,
                &[&seqs, &streams, &versions, &bytes, &hashes],
            )
        })
        .map(|_| ())
    }

    fn insert_nodes(&mut self, nodes: &[(u8, u64, Hash)]) -> Result<(), BackendError> {
        let levels: Vec<i16> = nodes.iter().map(|(l, _, _)| i16::from(*l)).collect();
        let idx: Vec<i64> = nodes.iter().map(|(_, i, _)| int(*i)).collect();
        let hashes: Vec<&[u8]> = nodes.iter().map(|(_, _, h)| &h[..]).collect();
        self.run("inserting Merkle nodes", |s| {
            s.client
                .execute(&s.st.insert_nodes, &[&levels, &idx, &hashes])
        })
        .map(|_| ())
    }

    fn insert_checkpoint(&mut self, size: u64, note: &str) -> Result<(), BackendError> {
        let size = int(size);
        self.run("inserting a checkpoint", |s| {
            s.client.execute(&s.st.insert_checkpoint, &[&size, &note])
        })
        .map(|_| ())
    }

    fn commit(&mut self) -> Result<(), BackendError> {
        let done = self.run("committing", |s| s.client.batch_execute("COMMIT"));
        self.in_tx.set(false);
        done
    }

    fn rollback(&mut self) {
        let session = self.session.get_mut();
        if !session.client.is_closed() {
            // A failed rollback means a lost connection: the server rolls back on its own.
            let _ = session.client.batch_execute("ROLLBACK");
        }
        self.in_tx.set(false);
    }

    fn size(&self) -> Result<u64, BackendError> {
        let rows = self.rows("counting entries", |st| &st.size, &[])?;
        let v: i64 = rows
            .first()
            .ok_or_else(|| BackendError::new("counting entries: no row"))?
            .try_get(0)
            .map_err(|e| self.place.err("counting entries", e))?;
        unsigned(v, "the entry count")
    }

    fn read_stream(&self, stream: &StreamId, after: u64) -> Result<Vec<StoredEntry>, BackendError> {
        let after = int(after);
        self.rows(
            "reading a stream",
            |st| &st.read_stream,
            &[&stream.as_str(), &after],
        )?
        .iter()
        .map(|r| self.row_entry(r))
        .collect()
    }

    fn read_range(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>, BackendError> {
        let (from, limit) = (int(from), int(limit as u64));
        self.rows("reading entries", |st| &st.read_range, &[&from, &limit])?
            .iter()
            .map(|r| self.row_entry(r))
            .collect()
    }

    fn read_nodes(
        &self,
        level: u8,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Hash)>, BackendError> {
        let (level, from, limit) = (i16::from(level), int(from), int(limit as u64));
        self.rows(
            "reading Merkle nodes",
            |st| &st.read_nodes,
            &[&level, &from, &limit],
        )?
        .iter()
        .map(|r| {
            let get = |e| self.place.err("decoding a Merkle node", e);
            let idx: i64 = r.try_get(0).map_err(get)?;
            let h: Vec<u8> = r.try_get(1).map_err(get)?;
            Ok((
                unsigned(idx, "a node index")?,
                hash(h, &format!("node ({level}, {idx})'s hash"))?,
            ))
        })
        .collect()
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, BackendError> {
        let (level, index) = (i16::from(level), int(index));
        let rows = self.rows("reading a Merkle node", |st| &st.node, &[&level, &index])?;
        match rows.first() {
            Some(r) => {
                let h: Vec<u8> = r
                    .try_get(0)
                    .map_err(|e| self.place.err("decoding a Merkle node", e))?;
                Ok(Some(hash(h, &format!("node ({level}, {index})'s hash"))?))
            }
            None => Ok(None),
        }
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, BackendError> {
        let rows = self.rows(
            "reading the latest checkpoint",
            |st| &st.latest_checkpoint,
            &[],
        )?;
        match rows.first() {
            Some(r) => {
                let get = |e| self.place.err("decoding a checkpoint", e);
                let size: i64 = r.try_get(0).map_err(get)?;
                let note: String = r.try_get(1).map_err(get)?;
                Ok(Some((unsigned(size, "a checkpoint size")?, note)))
            }
            None => Ok(None),
        }
    }

    fn streams(&self) -> Result<Vec<StreamId>, BackendError> {
        self.rows("listing streams", |st| &st.streams, &[])?
            .iter()
            .map(|r| {
                let s: String = r
                    .try_get(0)
                    .map_err(|e| self.place.err("listing streams", e))?;
                StreamId::new(s).map_err(|e| BackendError::with("a stored stream name", e))
            })
            .collect()
    }

    fn update_lease(
        &mut self,
        key: &str,
        _now: DateTime<Utc>,
        change: LeaseChange<'_>,
    ) -> Result<(), BackendError> {
        self.in_tx.set(false);
        self.run("starting a lease transaction", |s| {
            s.client.batch_execute("BEGIN")
        })?;
        self.in_tx.set(true);
        let done = self.update_lease_in(key, change);
        match done {
            Ok(()) => {
                let committed =
                    self.run("committing a lease", |s| s.client.batch_execute("COMMIT"));
                self.in_tx.set(false);
                committed
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    fn lease_in_transaction(
        &mut self,
        key: &str,
        _now: DateTime<Utc>,
    ) -> Result<(Option<LeaseRow>, DateTime<Utc>), BackendError> {
        let rows = self.rows("reading a lease", |st| &st.lease_for_share, &[&key])?;
        let row = rows
            .first()
            .ok_or_else(|| BackendError::new("reading a lease: no row"))?;
        self.lease_of(row)
    }
}

/// The conformance harness for PostgreSQL: a fresh schema per harness (dropped with the
/// harness), tampered with through raw SQL on a separate connection.
#[cfg(any(test, feature = "conformance"))]
pub mod harness {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use postgres::{Client, NoTls};

    use crate::conformance::{flip_event_byte, Harness, Tamper};
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
    #[derive(Debug)]
    pub struct SchemaGuard {
        /// The database.
        pub url: String,
        /// The schema.
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
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Barrier};

    use promotion_core::{Actor, Event, EventBody, EventStore, ExpectedVersion, StageName};

    use super::harness::{open_store, postgres_harness, raw_client, SchemaGuard};
    use super::PostgresBackend;
    use crate::conformance;
    use crate::error::AuditError;

    const SKIPPED: &str =
        "SKIPPED: PROMOTION_TEST_POSTGRES_URL is not set; PostgreSQL tests did not run";

    /// The test database, or `None` after saying loudly that the test is skipped. Under CI
    /// (env `CI` set) a missing URL is a failure.
    fn url() -> Option<String> {
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

    macro_rules! conformance_test {
        ($name:ident, $suite:ident) => {
            #[test]
            fn $name() {
                let Some(url) = url() else { return };
                futures::executor::block_on(conformance::$suite(postgres_harness(&url)));
            }
        };
    }

    conformance_test!(conformance_ordering_and_versions, ordering_and_versions);
    conformance_test!(conformance_conflicts, conflicts);
    conformance_test!(conformance_proofs, proofs);
    conformance_test!(conformance_reopen, reopen);
    conformance_test!(conformance_concurrent_appends, concurrent_appends);
    conformance_test!(conformance_export_import, export_import);
    conformance_test!(conformance_leases, leases);
    conformance_test!(conformance_two_writers, two_writers);

    #[test]
    fn conformance_tamper_detection() {
        let Some(url) = url() else { return };
        futures::executor::block_on(conformance::tamper_detection(&|| postgres_harness(&url)));
    }

    fn migration_rows(url: &str, schema: &str) -> Vec<i32> {
        raw_client(url, schema)
            .query(
                "SELECT version FROM promotion_audit_migrations ORDER BY version",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    fn event(i: u64) -> Event {
        Event {
            at: "2026-11-26T09:00:00Z".parse().unwrap(),
            actor: Actor::Engine,
            request: None,
            body: EventBody::StageReady {
                stage: StageName::new(format!("stage{i}")).unwrap(),
            },
        }
    }

    #[test]
    fn migrations_are_idempotent() {
        let Some(url) = url() else { return };
        let g = SchemaGuard::new(&url);
        let (w, r) = PostgresBackend::open_pair_in(&url, &g.schema).unwrap();
        drop((w, r));
        let (w, _r) = PostgresBackend::open_pair_in(&url, &g.schema).unwrap();
        assert_eq!(migration_rows(&url, &g.schema), all_migrations());
        assert_eq!(crate::Backend::size(&w).unwrap(), 0);
    }

    fn all_migrations() -> Vec<i32> {
        (1..=super::SCHEMA_VERSION).collect()
    }

    #[test]
    fn a_schema_at_migration_1_gains_the_leases_table() {
        let Some(url) = url() else { return };
        let g = SchemaGuard::new(&url);
        drop(PostgresBackend::open_pair_in(&url, &g.schema).unwrap());
        // Back to what a build with only migration 1 left behind.
        raw_client(&url, &g.schema)
            .batch_execute(
                "DROP TABLE leases; DELETE FROM promotion_audit_migrations WHERE version = 2;",
            )
            .unwrap();
        assert_eq!(migration_rows(&url, &g.schema), [1]);
        let (mut w, _r) = PostgresBackend::open_pair_in(&url, &g.schema).unwrap();
        assert_eq!(migration_rows(&url, &g.schema), all_migrations());
        let t = chrono::Utc::now();
        crate::Backend::update_lease(&mut w, "k", t, &mut |current, _| {
            assert!(current.is_none());
            None
        })
        .unwrap();
    }

    #[test]
    fn concurrent_openers_migrate_once() {
        let Some(url) = url() else { return };
        let g = SchemaGuard::new(&url);
        let n = 8;
        let barrier = Arc::new(Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let (url, schema, barrier) = (url.clone(), g.schema.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    PostgresBackend::open_pair_in(&url, &schema).map(|_| ())
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        assert_eq!(migration_rows(&url, &g.schema), all_migrations());
    }

    #[test]
    fn a_foreign_schema_is_refused() {
        let Some(url) = url() else { return };
        let g = SchemaGuard::new(&url);
        let mut c = raw_client(&url, "public");
        c.batch_execute(&format!(
            "CREATE SCHEMA {s}; CREATE TABLE {s}.entries (id INTEGER PRIMARY KEY);",
            s = g.schema
        ))
        .unwrap();
        let err = PostgresBackend::open_pair_in(&url, &g.schema).unwrap_err();
        assert!(matches!(err, AuditError::ForeignFile { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("schema {} of PostgreSQL database", g.schema))
                && msg.contains("is not a promotion audit log")
                && msg.contains("did not create"),
            "{msg}"
        );
    }

    #[test]
    fn a_newer_migration_is_refused() {
        let Some(url) = url() else { return };
        let g = SchemaGuard::new(&url);
        drop(PostgresBackend::open_pair_in(&url, &g.schema).unwrap());
        raw_client(&url, &g.schema)
            .batch_execute("INSERT INTO promotion_audit_migrations (version) VALUES (99)")
            .unwrap();
        let err = PostgresBackend::open_pair_in(&url, &g.schema).unwrap_err();
        assert!(matches!(err, AuditError::ForeignFile { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("newer version (schema migration 99"),
            "{err}"
        );
    }

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

    #[test]
    fn a_dropped_connection_fails_the_append_and_loses_nothing() {
        let Some(url) = url() else { return };
        let g = SchemaGuard::new(&url);
        let (w, r) = PostgresBackend::open_pair_in(&url, &g.schema).unwrap();
        let pid = w.backend_pid().unwrap();
        let store = crate::AuditStore::with_backend(
            Box::new(w),
            Box::new(r),
            "postgres".into(),
            conformance::options(),
        )
        .unwrap();
        let s = promotion_core::StreamId::new("s").unwrap();
        futures::executor::block_on(async {
            store
                .append(&s, ExpectedVersion::NoStream, &[event(0), event(1)])
                .await
                .unwrap();
            let mut admin = raw_client(&url, "public");
            let killed: bool = admin
                .query_one("SELECT pg_terminate_backend($1)", &[&pid])
                .unwrap()
                .get(0);
            assert!(killed);
            for _ in 0..100 {
                let left: i64 = admin
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                        &[&pid],
                    )
                    .unwrap()
                    .get(0);
                if left == 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let err = store
                .append(&s, ExpectedVersion::Exact(2), &[event(2)])
                .await
                .unwrap_err();
            assert!(err.to_string().contains("PostgreSQL"), "{err}");
            eprintln!("the append on a terminated connection failed with: {err}");
            assert_eq!(store.size().await.unwrap(), 2, "nothing was appended");
            store.verify(None).await.unwrap();
            // The next transaction reconnects.
            store
                .append(&s, ExpectedVersion::Exact(2), &[event(2)])
                .await
                .unwrap();
        });
        drop(store);
        let store = open_store(&url, &g.schema, conformance::options());
        futures::executor::block_on(async {
            let report = store.verify(None).await.unwrap();
            assert_eq!(report.entries, 3);
            assert_eq!(store.read(&s).await.unwrap().len(), 3);
        });
    }

    #[test]
    fn the_writer_lock_excludes_writers_of_other_connections() {
        use crate::Backend;
        let Some(url) = url() else { return };
        let g = SchemaGuard::new(&url);
        let (mut a, _) = PostgresBackend::open_pair_in(&url, &g.schema).unwrap();
        let (mut b, _) = PostgresBackend::open_pair_in(&url, &g.schema).unwrap();
        assert_eq!(a.begin().unwrap().size, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let head = b.begin().unwrap();
            tx.send(head.size).unwrap();
            b.rollback();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "a second writer began while the first held the lock"
        );
        let entry = crate::entry::encode(
            0,
            &promotion_core::StreamId::new("s").unwrap(),
            1,
            "2026-11-26T09:00:00Z".parse().unwrap(),
            &crate::entry::GENESIS_PREV,
            &event(0),
        )
        .unwrap();
        a.insert_entries(&[entry]).unwrap();
        a.commit().unwrap();
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap(),
            1,
            "the second writer sees the first one's commit"
        );
        t.join().unwrap();
    }

    #[test]
    fn a_writer_behind_a_stuck_lock_fails_after_lock_timeout_instead_of_hanging() {
        use crate::Backend;
        let Some(url) = url() else { return };
        let g = SchemaGuard::new(&url);
        drop(PostgresBackend::open_pair_in(&url, &g.schema).unwrap());
        // Someone holds the writer lock and never lets go (a session-level lock this time).
        let mut stuck = raw_client(&url, &g.schema);
        stuck
            .execute(
                "SELECT pg_advisory_lock($1::int4, (SELECT oid FROM pg_namespace WHERE nspname = $2)::int4)",
                &[&super::WRITER_LOCK_CLASS, &g.schema],
            )
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let short = format!("{url}{sep}options=-c%20lock_timeout%3D300");
        let (mut w, _r) = PostgresBackend::open_pair_in(&short, &g.schema).unwrap();
        let started = std::time::Instant::now();
        let err = w.begin().unwrap_err().to_string();
        assert!(err.contains("lock timeout"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        // The defaults apply where the URL says nothing.
        let (d, _) = PostgresBackend::open_pair_in(&url, &g.schema).unwrap();
        let setting = |name: &str| -> String {
            d.run("reading a setting", |s| {
                s.client
                    .query_one("SELECT current_setting($1)", &[&name])
                    .and_then(|r| r.try_get(0))
            })
            .unwrap()
        };
        assert_eq!(setting("lock_timeout"), super::DEFAULT_LOCK_TIMEOUT);
        assert_eq!(setting("statement_timeout"), "2min");
        drop(stuck);
        w.begin().unwrap();
        w.rollback();
    }
}
