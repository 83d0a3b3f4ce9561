//! What went wrong with PostgreSQL, in the words an operator acts on: the server's SQLSTATE
//! code mapped to a cause (lock timeout, statement timeout, serialization failure, disk full on
//! the server, permission denied, …), or, for a failure before any server answered, the
//! operating system's reason (connection refused, …). The server's or the driver's own text
//! follows in parentheses, and the error itself stays the [`BackendError`]'s source.

use postgres::error::SqlState;

use crate::error::{BackendError, Cause};

/// The cause of `e` in words, followed by the driver's text (with its chain) in parentheses.
pub(super) fn cause_in_words(e: &postgres::Error) -> String {
    let text = promotion_core::report_chain(e);
    match words(e) {
        Some(words) => format!("{words} ({text})"),
        None => text,
    }
}

/// `BackendError` for `e` met while doing `what` at `place`: `<what> in <place>: <cause>`.
pub(super) fn backend_error(
    what: &str,
    place: &impl std::fmt::Display,
    e: postgres::Error,
) -> BackendError {
    BackendError::with(format!("{what} in {place}: {}", cause_in_words(&e)), e)
}

/// The kind of a PostgreSQL failure, for [`cause_of`](crate::error::cause_of): from the
/// server's SQLSTATE, or a connection found closed; `None` for other errors (the walk goes on
/// to their sources, such as the operating system's error of a refused connection).
pub(crate) fn cause_kind(e: &(dyn std::error::Error + 'static)) -> Option<Cause> {
    if let Some(db) = e.downcast_ref::<postgres::error::DbError>() {
        return sqlstate_cause(db.code());
    }
    let pg = e.downcast_ref::<postgres::Error>()?;
    match pg.code() {
        Some(code) => sqlstate_cause(code),
        None if pg.is_closed() => Some(Cause::ConnectionLost),
        None => None,
    }
}

fn sqlstate_cause(code: &SqlState) -> Option<Cause> {
    Some(match code {
        c if *c == SqlState::LOCK_NOT_AVAILABLE => Cause::LockTimeout,
        c if *c == SqlState::QUERY_CANCELED => Cause::StatementTimeout,
        c if *c == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT => Cause::IdleInTransactionTimeout,
        c if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
            Cause::SerializationFailure
        }
        c if *c == SqlState::DISK_FULL => Cause::DiskFull,
        c if *c == SqlState::INSUFFICIENT_PRIVILEGE => Cause::PermissionDenied,
        c if *c == SqlState::READ_ONLY_SQL_TRANSACTION => Cause::ReadOnly,
        c if *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED => Cause::Corrupted,
        c if *c == SqlState::ADMIN_SHUTDOWN
            || *c == SqlState::CRASH_SHUTDOWN
            || c.code().starts_with("08") =>
        {
            Cause::ConnectionLost
        }
        _ => return None,
    })
}

fn words(e: &postgres::Error) -> Option<&'static str> {
    if let Some(code) = e.code() {
        return sqlstate_words(code);
    }
    // No answer from the server: the operating system's reason, if there is one.
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io_words(io.kind());
        }
        source = s.source();
    }
    e.is_closed()
        .then_some("connection lost (the server closed it, or the network dropped it)")
}

/// The cause for a SQLSTATE code, where an operator can act on it.
pub(super) fn sqlstate_words(code: &SqlState) -> Option<&'static str> {
    let words = match code {
        c if *c == SqlState::LOCK_NOT_AVAILABLE => {
            "lock timeout (waited longer than lock_timeout for a lock another session holds)"
        }
        c if *c == SqlState::QUERY_CANCELED => {
            "statement timeout (the statement ran longer than statement_timeout, or was cancelled)"
        }
        c if *c == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT => {
            "idle-in-transaction timeout (this session sat inside a transaction longer than \
             idle_in_transaction_session_timeout, a paused or stalled process; the server \
             closed it and rolled the transaction back)"
        }
        c if *c == SqlState::T_R_SERIALIZATION_FAILURE => {
            "serialization failure (a concurrent transaction conflicted; retrying may succeed)"
        }
        c if *c == SqlState::T_R_DEADLOCK_DETECTED => {
            "deadlock (the server aborted this transaction to break it; retrying may succeed)"
        }
        c if *c == SqlState::DISK_FULL => "disk full on the server",
        c if *c == SqlState::OUT_OF_MEMORY => "out of memory on the server",
        c if *c == SqlState::INSUFFICIENT_RESOURCES => "the server ran out of resources",
        c if *c == SqlState::TOO_MANY_CONNECTIONS => {
            "too many connections (the server's max_connections is reached)"
        }
        c if *c == SqlState::INSUFFICIENT_PRIVILEGE => "permission denied",
        c if *c == SqlState::INVALID_PASSWORD
            || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            "authentication failed (wrong user or password, or refused by pg_hba.conf)"
        }
        c if *c == SqlState::INVALID_CATALOG_NAME => "no such database",
        c if *c == SqlState::READ_ONLY_SQL_TRANSACTION => {
            "read-only server (a standby, or default_transaction_read_only is on)"
        }
        c if *c == SqlState::ADMIN_SHUTDOWN => {
            "the server terminated the connection (an administrator's command, or a shutdown)"
        }
        c if *c == SqlState::CRASH_SHUTDOWN => "the server crashed and restarted",
        c if *c == SqlState::CANNOT_CONNECT_NOW => "the server is starting up or shutting down",
        c if *c == SqlState::IO_ERROR => "I/O error on the server",
        c if *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED => {
            "corrupted data on the server"
        }
        c if c.code().starts_with("08") => {
            "connection failure (the connection to the server broke)"
        }
        _ => return None,
    };
    Some(words)
}

fn io_words(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind as K;
    Some(match kind {
        K::ConnectionRefused => {
            "connection refused (no server is listening at that host and port: is it running?)"
        }
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            "connection lost (the server closed it, or the network dropped it)"
        }
        K::TimedOut => "connection timed out (the host did not answer)",
        K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => "host unreachable",
        K::NotFound => "no such host or socket",
        K::PermissionDenied => "permission denied (connecting to the server)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use postgres::error::SqlState;

    #[test]
    fn each_sqlstate_an_operator_acts_on_is_named_in_words() {
        for (code, words) in [
            ("55P03", "lock timeout"),
            ("57014", "statement timeout"),
            ("25P03", "idle-in-transaction timeout"),
            ("40001", "serialization failure"),
            ("40P01", "deadlock"),
            ("53100", "disk full on the server"),
            ("42501", "permission denied"),
            ("28P01", "authentication failed"),
            ("3D000", "no such database"),
            ("25006", "read-only server"),
            ("57P01", "terminated the connection"),
            ("08006", "connection failure"),
            ("XX001", "corrupted data"),
        ] {
            let said = super::sqlstate_words(&SqlState::from_code(code)).unwrap_or_default();
            assert!(said.contains(words), "{code}: {said:?}");
        }
        assert_eq!(super::sqlstate_words(&SqlState::from_code("22012")), None);
    }
}

#[cfg(test)]
mod server_tests {
    use std::time::Duration;

    use postgres::error::SqlState;
    use promotion_core::{report_chain, EventStore, ExpectedVersion, StreamId};

    use super::super::harness::{raw_client, test_url as url, SchemaGuard};
    use super::super::{PostgresBackend, Timeouts, WRITER_LOCK_CLASS};
    use crate::conformance::{self, stage_ready_event as event};
    use crate::error::{cause_of, Cause};
    use crate::Backend;

    /// The `postgres::Error` somewhere in `e`'s chain of sources.
    fn driver_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> &'a postgres::Error {
        let mut next = e.source();
        while let Some(s) = next {
            if let Some(pg) = s.downcast_ref::<postgres::Error>() {
                return pg;
            }
            next = s.source();
        }
        panic!("no PostgreSQL error in the chain of {}", report_chain(e))
    }

    /// The SQLSTATE of the server's error somewhere in `e`'s chain of sources.
    fn server_code(e: &(dyn std::error::Error + 'static)) -> SqlState {
        let mut next = e.source();
        while let Some(s) = next {
            if let Some(db) = s.downcast_ref::<postgres::error::DbError>() {
                return db.code().clone();
            }
            next = s.source();
        }
        panic!("no server error in the chain of {}", report_chain(e))
    }

    /// Someone holding the writer lock of `schema` and never letting go.
    fn stuck_writer(url: &str, schema: &str) -> postgres::Client {
        let mut stuck = raw_client(url, schema);
        stuck
            .execute(
                "SELECT pg_advisory_lock($1::int4, (SELECT oid FROM pg_namespace WHERE nspname = $2)::int4)",
                &[&WRITER_LOCK_CLASS, &schema],
            )
            .unwrap();
        stuck
    }

    #[test]
    fn a_refused_connection_is_named_and_keeps_its_cause() {
        let Some(url) = url() else { return };
        let config: postgres::Config = url.parse().unwrap();
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".into(),
        };
        // Nothing listens on port 1.
        let err = PostgresBackend::open_pair_in(&format!("postgres://someone@{host}:1/test"), "s")
            .unwrap_err();
        let chain = report_chain(&err);
        assert!(
            err.to_string()
                .starts_with("connecting in schema s of PostgreSQL database")
                && err.to_string().contains("connection refused"),
            "{chain}"
        );
        let io = driver_error(&err);
        assert!(io.code().is_none(), "no server answered: {io}");
        assert_eq!(cause_of(&err), Some(Cause::ConnectionRefused), "{chain}");
    }

    #[test]
    fn a_lock_timeout_is_named_and_keeps_its_sqlstate() {
        let Some(url) = url() else { return };
        let g = SchemaGuard::new(&url);
        drop(PostgresBackend::open_pair_in(&url, &g.schema).unwrap());
        let stuck = stuck_writer(&url, &g.schema);
        let timeouts = Timeouts {
            lock: Some(Duration::from_millis(200)),
            ..Timeouts::default()
        };
        let (mut w, _r) = PostgresBackend::open_pair_with(&url, &g.schema, timeouts).unwrap();
        let err = w.begin().unwrap_err();
        assert!(
            err.message.starts_with("taking the writer lock in schema")
                && err
                    .message
                    .contains("lock timeout (waited longer than lock_timeout"),
            "{}",
            err.message
        );
        assert_eq!(
            driver_error(&crate::AuditError::from(err)).code(),
            Some(&SqlState::LOCK_NOT_AVAILABLE)
        );
        // Through the store, down to the append's error: the words and the driver's error.
        let store = crate::AuditStore::with_backend(
            Box::new(
                PostgresBackend::open_pair_with(&url, &g.schema, timeouts)
                    .unwrap()
                    .0,
            ),
            Box::new(PostgresBackend::open_pair_in(&url, &g.schema).unwrap().1),
            "postgres".into(),
            conformance::options(),
        )
        .unwrap();
        let s = StreamId::new("s").unwrap();
        let err =
            futures::executor::block_on(store.append(&s, ExpectedVersion::NoStream, &[event(0)]))
                .unwrap_err();
        let chain = report_chain(&err);
        assert!(
            chain.contains("lock timeout") && chain.contains("nothing was appended"),
            "{chain}"
        );
        assert_eq!(server_code(&err), SqlState::LOCK_NOT_AVAILABLE, "{chain}");
        assert_eq!(cause_of(&err), Some(Cause::LockTimeout), "{chain}");
        drop(stuck);
        futures::executor::block_on(store.append(&s, ExpectedVersion::NoStream, &[event(0)]))
            .unwrap();
    }

    #[test]
    fn a_statement_timeout_is_named_and_keeps_its_sqlstate() {
        let Some(url) = url() else { return };
        let g = SchemaGuard::new(&url);
        drop(PostgresBackend::open_pair_in(&url, &g.schema).unwrap());
        let stuck = stuck_writer(&url, &g.schema);
        // The statement bound is the shorter one: the wait behind the lock is cut by it.
        let timeouts = Timeouts {
            lock: Some(Duration::from_secs(60)),
            statement: Some(Duration::from_millis(200)),
            idle_in_transaction: None,
        };
        let (mut w, _r) = PostgresBackend::open_pair_with(&url, &g.schema, timeouts).unwrap();
        let err = w.begin().unwrap_err();
        assert!(
            err.message
                .contains("statement timeout (the statement ran longer"),
            "{}",
            err.message
        );
        let err = crate::AuditError::from(err);
        assert_eq!(driver_error(&err).code(), Some(&SqlState::QUERY_CANCELED));
        assert_eq!(cause_of(&err), Some(Cause::StatementTimeout));
        drop(stuck);
        w.begin().unwrap();
        w.rollback();
    }

    #[test]
    fn bounds_given_in_code_win_over_the_url_and_zero_is_refused() {
        let Some(url) = url() else { return };
        let g = SchemaGuard::new(&url);
        let sep = if url.contains('?') { '&' } else { '?' };
        let with_url = format!("{url}{sep}options=-c%20lock_timeout%3D7s");
        let timeouts = Timeouts {
            lock: Some(Duration::from_millis(1500)),
            statement: None,
            idle_in_transaction: Some(Duration::from_secs(3)),
        };
        let (w, _r) = PostgresBackend::open_pair_with(&with_url, &g.schema, timeouts).unwrap();
        let setting = |name: &str| -> String {
            w.run("reading a setting", |s| {
                s.client
                    .query_one("SELECT current_setting($1)", &[&name])
                    .and_then(|r| r.try_get(0))
            })
            .unwrap()
        };
        assert_eq!(setting("lock_timeout"), "1500ms");
        assert_eq!(setting("statement_timeout"), "2min");
        assert_eq!(setting("idle_in_transaction_session_timeout"), "3s");
        let zero = Timeouts {
            statement: Some(Duration::ZERO),
            ..Timeouts::default()
        };
        let err = PostgresBackend::open_pair_with(&url, &g.schema, zero).unwrap_err();
        assert!(
            err.to_string().contains("statement_timeout of 0ns"),
            "{err}"
        );
    }
}
