//! The conformance suite (feature `conformance`): the checks every
//! `promotion_core::EventStore` must pass ([`event_store`]), and the checks every audit
//! [`Backend`](crate::Backend) must pass ([`audit`], re-exported here), which run the
//! event-store checks through an [`AuditStore`] and then check the log they leave.
//!
//! Like object_store's integration module, each check is a public function that exercises a
//! fresh, empty store and panics with a message on the first deviation. Two macros turn the
//! checks into one `#[test]` per check, so that a failure names its check:
//!
//! - [`event_store_conformance!`](crate::event_store_conformance)`(make_store)` for any event
//!   store; `make_store()` returns a fresh, empty store. Stores over storage that outlives
//!   them (a file, a database) use `event_store_conformance!(reopen: make_opener)`:
//!   `make_opener()` prepares fresh, empty storage and returns a function that opens it, each
//!   call a new store over the same storage; the checks of reopening, of two writers and of
//!   leases surviving a reopen run too.
//! - [`audit_conformance!`](crate::audit_conformance)`(make_harness)` for an audit backend;
//!   `make_harness()` returns a [`Harness`] for a fresh, empty log. When the backend's storage
//!   may be absent (a database the test run was not given), `audit_conformance!(optional:
//!   make_harness)` takes a `make_harness()` that returns an `Option<Harness>`: `None` skips
//!   the check (the maker says why).
//!
//! Invoke each macro in a module of its own: the tests it generates are named after the
//! checks.
//!
//! ```no_run
//! // tests/conformance.rs of a crate with an event store of its own and an audit backend.
//! use promotion_audit::conformance::{memory_harness, Harness};
//! use promotion_core::InMemoryStore;
//!
//! mod event_store {
//!     // Here core's in-memory store; a fresh, empty store for each check.
//!     promotion_audit::event_store_conformance!(super::InMemoryStore::new);
//! }
//!
//! mod audit_backend {
//!     // Here the in-memory audit backend; a harness on a fresh, empty log for each check.
//!     fn harness() -> super::Harness {
//!         super::memory_harness()
//!     }
//!     promotion_audit::audit_conformance!(harness);
//! }
//!
//! # fn main() {
//! // The checks are plain async functions too:
//! futures::executor::block_on(promotion_audit::conformance::event_store::conflicts(
//!     &InMemoryStore::new(),
//! ));
//! futures::executor::block_on(promotion_audit::conformance::run_all(&memory_harness));
//! # }
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use promotion_core::{Actor, Event, EventBody, ManualClock, StageName};

use crate::checkpoint::CheckpointSigner;
use crate::store::{AuditOptions, AuditStore};

pub mod audit;
pub mod event_store;
mod macros;
mod memory;

pub use audit::{
    concurrent_appends, conflicts, export_import, leases, leases_survive_reopening,
    ordering_and_versions, proofs, reopen, tamper_detection, two_writers,
};
pub use memory::memory_harness;

/// Runs a check's future to completion (what the macros' tests call).
#[doc(hidden)]
pub use futures::executor::block_on;

/// Ways to damage a stored log behind the store's back, as an attacker with write access to
/// the storage would.
pub trait Tamper: Send + Sync {
    /// Changes one byte of entry `seq`'s stored bytes (inside its event), leaving its recorded
    /// hash as it was.
    fn flip_byte(&self, seq: u64);
    /// Deletes entry `seq`.
    fn delete(&self, seq: u64);
    /// Exchanges the stored bytes and hashes of entries `a` and `b`.
    fn swap(&self, a: u64, b: u64);
    /// Deletes every entry from `keep` on.
    fn truncate(&self, keep: u64);
    /// Appends a copy of entry `seq`'s bytes and hash as a new last entry.
    fn duplicate(&self, seq: u64);
}

/// A fresh, empty log of the backend under test.
pub struct Harness {
    /// Opens the log (again): every call returns a new store over the same storage.
    pub open: Box<dyn Fn(AuditOptions) -> AuditStore + Send + Sync>,
    /// Damages the storage directly.
    pub tamper: Box<dyn Tamper>,
}

/// Flips one byte inside the event of an entry's canonical bytes, keeping valid JSON.
pub fn flip_event_byte(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let needle = b"\"stage\":\"";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + needle.len())
        .expect("conformance entries have a stage");
    out[at] ^= 0x01;
    out
}

fn t0() -> DateTime<Utc> {
    "2026-11-26T09:00:00Z".parse().unwrap()
}

/// Options the suite uses: a fixed clock and a signing key.
pub fn options() -> AuditOptions {
    let signer = CheckpointSigner::from_seed("conformance.promotion.test", [7u8; 32]).unwrap();
    AuditOptions::new("conformance.promotion.test")
        .signer(signer)
        .clock(Arc::new(ManualClock::at(t0())))
}

/// The suite's `i`-th event: the stage `stage{i}` became ready.
pub fn stage_ready_event(i: u64) -> Event {
    Event {
        at: t0(),
        actor: Actor::Engine,
        request: None,
        body: EventBody::StageReady {
            stage: StageName::new(format!("stage{i}")).unwrap(),
        },
    }
}

/// Runs every audit check in turn; `make` returns a harness for a fresh, empty log each time.
pub async fn run_all(make: &dyn Fn() -> Harness) {
    leases(make()).await;
    leases_survive_reopening(make()).await;
    two_writers(make()).await;
    ordering_and_versions(make()).await;
    conflicts(make()).await;
    proofs(make()).await;
    reopen(make()).await;
    concurrent_appends(make()).await;
    tamper_detection(make).await;
    export_import(make()).await;
}
