//! # promotion-audit
//!
//! The tamper-evident audit log: `promotion_core::EventStore` implemented over SQLite (the
//! embedded default), PostgreSQL and memory, with a hash chain, RFC 6962 Merkle proofs, signed
//! checkpoints and evidence packs.
//!
//! This crate depends on `promotion-core` only. The storage backends arrive with the audit-log
//! issue; until then hosts use [`promotion_core::InMemoryStore`].

pub use promotion_core::{EventStore, ExpectedVersion, Recorded, StoreError, StreamId};
