//! Where the audit log lives: SQLite in the state directory by default, PostgreSQL by URL;
//! the checkpoint signing key beside it.

use std::path::{Path, PathBuf};

use promotion_audit::postgres::PostgresBackend;
use promotion_audit::{AuditOptions, AuditStore, CheckpointSigner, CheckpointVerifier};

use crate::failure::Failure;
use crate::files::{io, KeyPair};

/// The checkpoint origin line of logs written by `promote`.
pub(crate) const ORIGIN: &str = "promotion.local/promote";
/// The name of the checkpoint signing key.
pub(crate) const KEY_NAME: &str = "promote";
/// The SQLite log's file name in the state directory.
pub(crate) const DB_FILE: &str = "audit.db";
/// The private checkpoint key's file name (mode 0600).
pub(crate) const KEY_FILE: &str = "checkpoint.key";
/// The verifier key's file name, for auditors.
pub(crate) const VKEY_FILE: &str = "checkpoint.vkey";

/// Where the log is.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    /// The state directory (keys; the SQLite file unless a database URL is given).
    pub(crate) dir: PathBuf,
    /// A PostgreSQL URL.
    pub(crate) database: Option<String>,
    /// The PostgreSQL schema.
    pub(crate) schema: String,
}

/// The signer, created with the directory on first use (see [`KeyPair::load_or_create`] for
/// what an interrupted first run leaves and how it is repaired).
fn signer(dir: &Path) -> Result<CheckpointSigner, Failure> {
    KeyPair {
        what: "checkpoint key",
        private: dir.join(KEY_FILE),
        public: dir.join(VKEY_FILE),
        parse: &|text| CheckpointSigner::from_private_key(text.trim()).map_err(|e| e.to_string()),
        generate: &|| CheckpointSigner::generate(KEY_NAME).map_err(|e| e.to_string()),
        private_text: &|s| Ok(format!("{}\n", s.private_key())),
        public_text: &|s| Ok(format!("{}\n", s.verifier_key())),
    }
    .load_or_create()
}

/// The verifier key kept in the state directory, or read from `file`.
pub(crate) fn verifier(dir: &Path, file: Option<&Path>) -> Result<CheckpointVerifier, Failure> {
    let path = file.map_or_else(|| dir.join(VKEY_FILE), Path::to_path_buf);
    let text = std::fs::read_to_string(&path).map_err(|e| io("cannot read", &path, e))?;
    CheckpointVerifier::from_verifier_key(text.trim())
        .map_err(|e| Failure::Store(format!("verifier key {}: {e}", path.display())))
}

/// Opens (creating on first use) the log for writing.
pub(crate) fn open(place: &Place) -> Result<AuditStore, Failure> {
    let options = AuditOptions::new(ORIGIN).signer(signer(&place.dir)?);
    match &place.database {
        None => {
            let path = place.dir.join(DB_FILE);
            Ok(AuditStore::open_sqlite(&path, options)?)
        }
        Some(url) => postgres(url, &place.schema, options),
    }
}

/// Opens an existing log for reading and verifying; never creates one.
pub(crate) fn open_existing(place: &Place) -> Result<AuditStore, Failure> {
    let options = AuditOptions::new(ORIGIN);
    match &place.database {
        None => {
            let path = place.dir.join(DB_FILE);
            if !path.exists() {
                return Err(Failure::Store(format!(
                    "no audit log at {}; `promote register` creates it",
                    path.display()
                )));
            }
            Ok(AuditStore::open_sqlite_existing(&path, options)?)
        }
        Some(url) => postgres(url, &place.schema, options),
    }
}

/// The log in PostgreSQL at `url`, in `schema`.
fn postgres(url: &str, schema: &str, options: AuditOptions) -> Result<AuditStore, Failure> {
    let (w, r) = PostgresBackend::open_pair_in(url, schema)?;
    let description = format!("postgres:{}", w.describe());
    Ok(AuditStore::with_backend(
        Box::new(w),
        Box::new(r),
        description,
        options,
    )?)
}
