//! One connection to the database: connecting with the log's `search_path`, the statements it
//! prepares once, and running them, with a connection found closed replaced by a new one
//! outside a transaction, never inside one.

use postgres::{Client, Config, NoTls, Row, Statement};
use promotion_core::StreamId;

use super::{
    hash, quote, unsigned, Place, PostgresBackend, DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT,
    DEFAULT_LOCK_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT,
};
use crate::entry::StoredEntry;
use crate::error::BackendError;

/// The statements a connection prepares once.
pub(super) struct Statements {
    pub(super) lock: Statement,
    pub(super) head: Statement,
    pub(super) stream_version: Statement,
    pub(super) insert_entries: Statement,
    pub(super) insert_nodes: Statement,
    pub(super) insert_checkpoint: Statement,
    pub(super) size: Statement,
    pub(super) read_stream: Statement,
    pub(super) read_range: Statement,
    pub(super) read_nodes: Statement,
    pub(super) node: Statement,
    pub(super) latest_checkpoint: Statement,
    pub(super) read_checkpoints: Statement,
    pub(super) streams: Statement,
    pub(super) lease_placeholder: Statement,
    pub(super) lease_for_update: Statement,
    pub(super) lease_for_share: Statement,
    pub(super) lease_put: Statement,
}

/// The server's clock in microseconds since the epoch: the one clock every replica shares.
const SERVER_NOW_US: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::int8";

impl Statements {
    pub(super) fn prepare(c: &mut Client) -> Result<Statements, postgres::Error> {
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
            read_checkpoints: c.prepare(
                "SELECT size, note FROM checkpoints WHERE size >= $1 ORDER BY size LIMIT $2",
            )?,
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
pub(super) struct Session {
    pub(super) client: Client,
    pub(super) st: Statements,
}

/// Connects and points `search_path` at the log's schema.
pub(super) fn connect(config: &Config, place: &Place) -> Result<Client, BackendError> {
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
               WHERE current_setting('statement_timeout') IN ('0', '0ms');
             SELECT set_config('idle_in_transaction_session_timeout',
                               '{DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT}', false)
               WHERE current_setting('idle_in_transaction_session_timeout') IN ('0', '0ms');"
        ))
        .map_err(|e| place.err("setting timeouts", e))?;
    for (name, ms) in &place.bounds {
        client
            .execute(
                "SELECT set_config($1, $2, false)",
                &[name, &format!("{ms}ms")],
            )
            .map_err(|e| place.err(&format!("setting {name}"), e))?;
    }
    Ok(client)
}

impl Session {
    pub(super) fn new(mut client: Client, place: &Place) -> Result<Session, BackendError> {
        let st = Statements::prepare(&mut client)
            .map_err(|e| place.err("preparing the audit log's statements", e))?;
        Ok(Session { client, st })
    }
}

impl PostgresBackend {
    /// Runs `f` on the session, first replacing a closed connection unless a transaction is
    /// open on it.
    pub(super) fn run<R>(
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

    pub(super) fn rows(
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

    pub(super) fn row_entry(&self, r: &Row) -> Result<StoredEntry, BackendError> {
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
}

#[cfg(test)]
mod tests {
    use promotion_core::{EventStore, ExpectedVersion};

    use super::super::harness::{open_store, raw_client, test_url as url, SchemaGuard};
    use super::super::PostgresBackend;
    use crate::conformance::{self, stage_ready_event as event};

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
}
