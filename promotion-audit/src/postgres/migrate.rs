//! Schema migrations: the SQL of each, and applying the ones a schema lacks in one transaction
//! under the migration lock, refusing a schema that is not ours or was migrated by a newer build.

use postgres::Client;
use promotion_core::report_chain;

use super::{quote, Place, MIGRATIONS_TABLE, MIGRATION_LOCK_KEY, SCHEMA_VERSION};
use crate::error::AuditError;

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
        // Coordination state for replicas (promotion_core::LeaseStore); not part of the log. A row
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

/// Applies the migrations this build knows to `place.schema`, refusing a schema that is not
/// ours or is newer, all in one transaction under the migration lock.
pub(super) fn migrate(client: &mut Client, place: &Place) -> Result<(), AuditError> {
    let q = quote(&place.schema);
    if up_to_date(client, place, &q)? {
        return Ok(());
    }
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
            // A timeout, a lost connection or a refusal says nothing about whose table it is.
            if e.code()
                .is_none_or(|c| super::cause::sqlstate_words(c).is_some())
            {
                return AuditError::from(place.err("reading the applied migrations", e));
            }
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

/// Whether `place.schema` already holds every migration this build knows, read without the
/// migration lock. The lock is one for the whole database, so without this every replica (and
/// every test) opening an already migrated log would queue behind whoever is migrating another
/// schema. Only the exact version counts: anything else (no table, older, newer, not ours) is
/// decided under the lock by [`migrate`].
fn up_to_date(client: &mut Client, place: &Place, q: &str) -> Result<bool, AuditError> {
    let table = format!("{q}.{MIGRATIONS_TABLE}");
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .and_then(|r| r.try_get(0))
        .map_err(|e| place.err("looking up the migrations table", e))?;
    if !exists {
        return Ok(false);
    }
    let current: Option<i32> = client
        .query_one(&format!("SELECT MAX(version)::int4 FROM {table}"), &[])
        .and_then(|r| r.try_get(0))
        .ok()
        .flatten();
    Ok(current == Some(SCHEMA_VERSION))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::super::harness::{raw_client, test_url as url, SchemaGuard};
    use super::super::PostgresBackend;
    use crate::error::AuditError;

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
}
