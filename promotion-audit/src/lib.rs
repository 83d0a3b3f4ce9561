//! # promotion-audit
//!
//! The tamper-evident audit log of [promotion](https://example.invalid/promotion):
//! [`AuditStore`] implements `promotion_core::EventStore` so that every event the engine
//! appends becomes an entry of a hash chain that is also the leaf sequence of an RFC 6962
//! Merkle tree, with Ed25519-signed checkpoints in the C2SP tlog-checkpoint format.
//!
//! ## Overview
//!
//! - [`AuditStore::open_sqlite`]: the embedded default, one SQLite file in WAL mode; a
//!   successful append has reached the disk. `AuditStore::open_postgres`: one database shared
//!   by several replicas. [`AuditStore::memory`] for tests.
//! - Group commit: appends from many tasks share one durable transaction and one checkpoint.
//! - [`AuditStore::verify`] re-reads every stored byte, recomputes every hash, Merkle node and
//!   root, checks the checkpoint signature, and names the first entry that does not match.
//! - Inclusion and consistency proofs ([`merkle`]) that verify with hashes alone.
//! - [`jsonl`] export and verifying import, for archives and ordinary tools.
//! - [`durable`]: whole-file writes that a crash cannot leave half done, for the state files
//!   of the crates and tools built on the log (keys, packs, pages).
//! - `conformance` (behind the feature of that name): the checks every `EventStore` and every
//!   [`Backend`] must pass, turned into one `#[test]` per check by `event_store_conformance!`
//!   and `audit_conformance!`.
//!
//! ## Feature flags
//!
//! Each storage driver is a feature, as in sqlx, so that a host builds only the drivers it uses
//! (the in-memory backend is always there):
//!
//! - `sqlite` (default): [`sqlite::SqliteBackend`] and [`AuditStore::open_sqlite`], over
//!   `rusqlite` with a bundled SQLite.
//! - `postgres`: `postgres::PostgresBackend` and `AuditStore::open_postgres`, over the
//!   `postgres` client (which brings the tokio runtime it runs on).
//! - `conformance`: the public conformance suite, `conformance`, and the
//!   `event_store_conformance!` and `audit_conformance!` macros that turn it into tests.
//!
//! Depends on `promotion-core` only, never on `promotion-gates`.

mod anchor;
pub mod backend;
#[cfg(feature = "sqlite")]
mod block;
pub mod checkpoint;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod cosign;
pub mod durable;
pub mod entry;
pub mod error;
pub mod jsonl;
pub mod memory;
pub mod merkle;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod store;
pub mod verify;

pub use backend::{
    Backend, ChunkEntry, EntryChunk, Head, LeaseChange, StreamIndexSummary, StreamIndexed,
};
pub use checkpoint::{Checkpoint, CheckpointError, CheckpointSigner, CheckpointVerifier};
pub use cosign::{CosignatureVerifier, Cosigner, WitnessRefusal};
pub use error::{cause_of, AuditError, BackendError, Cause, Tampered};
pub use memory::MemoryBackend;
#[cfg(feature = "postgres")]
pub use postgres::PostgresBackend;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteBackend;
pub use store::{AuditOptions, AuditStore};
pub use verify::{Anchors, VerifyReport};

pub use promotion_core::{EventStore, ExpectedVersion, Recorded, StoreError, StreamId};
