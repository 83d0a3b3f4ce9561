//! The conformance suite against the SQLite backend: a fresh file per check, in a temporary
//! directory the harness keeps alive.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use promotion_audit::conformance::Harness;
use promotion_audit::sqlite::harness::sqlite_harness;

fn harness() -> Harness {
    let dir: Arc<dyn AsRef<std::path::Path> + Send + Sync> = Arc::new(tempfile::tempdir().unwrap());
    sqlite_harness(dir)
}

promotion_audit::audit_conformance!(harness);
