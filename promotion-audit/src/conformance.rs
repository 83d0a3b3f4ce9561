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
use crate::merkle::Hash;
use crate::store::{AuditOptions, AuditStore};

pub mod audit;
pub mod event_store;
mod macros;
mod memory;

pub use audit::{
    anchors_refuse_rollback_and_fork, checkpoints_pinpoint_a_rewrite, concurrent_appends,
    conflicts, cosignatures_stored_beside_checkpoints, every_checkpoint_verified, export_import,
    leases, leases_survive_reopening, ordering_and_versions, proofs, reopen,
    rewrite_without_checkpoints, tamper_detection, two_writers,
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
    /// Replaces entry `seq`'s stored bytes and recorded hash (its stream and version stay).
    fn rewrite(&self, seq: u64, bytes: &[u8], hash: Hash);
    /// Stores Merkle nodes as (level, index, hash), replacing any stored at the same place
    /// (a backend that does not store low levels skips them, as its writer does).
    fn put_nodes(&self, nodes: &[(u8, u64, Hash)]);
    /// Stores `note` as the checkpoint for tree size `size`, replacing the one stored there.
    fn put_checkpoint(&self, size: u64, note: &str);
    /// Deletes every stored checkpoint for a tree size of `from_size` or more.
    fn delete_checkpoints(&self, from_size: u64);
}

/// A fresh, empty log of the backend under test.
pub struct Harness {
    /// Opens the log (again): every call returns a new store over the same storage.
    pub open: Box<dyn Fn(AuditOptions) -> AuditStore + Send + Sync>,
    /// Damages the storage directly.
    pub tamper: Box<dyn Tamper>,
}

/// Rewrites entry `seq` as `edit` changes its bytes, then re-chains and re-hashes every later
/// entry and recomputes every Merkle node: the forgery of an attacker with write access to the
/// storage but not the signing key. Every entry, chain link and node then agrees; only the
/// signed checkpoints (which this leaves as they are) can tell.
pub async fn forge(
    store: &AuditStore,
    tamper: &dyn Tamper,
    seq: u64,
    edit: impl Fn(&[u8]) -> Vec<u8>,
) {
    let size = store.size().await.unwrap();
    let mut frontier = crate::merkle::Frontier::new();
    let mut nodes = Vec::new();
    // The previous entry's hash as stored, and as forged.
    let mut prev: Option<(Hash, Hash)> = None;
    for i in 0..size {
        let entry = store.entry(i).await.unwrap();
        let mut bytes = entry.bytes.clone();
        if i == seq {
            bytes = edit(&bytes);
            assert_ne!(bytes, entry.bytes, "the edit changes entry {seq}");
        }
        if let Some((old, new)) = prev {
            let (old, new) = (hex::encode(old), hex::encode(new));
            let text = String::from_utf8(bytes).unwrap();
            bytes = text
                .replacen(
                    &format!("\"prev\":\"{old}\""),
                    &format!("\"prev\":\"{new}\""),
                    1,
                )
                .into_bytes();
        }
        let hash = crate::merkle::leaf_hash(&bytes);
        if bytes != entry.bytes {
            tamper.rewrite(i, &bytes, hash);
        }
        prev = Some((entry.hash, hash));
        nodes.extend(frontier.push(hash));
    }
    tamper.put_nodes(&nodes);
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
    rewrite_without_checkpoints(make()).await;
    checkpoints_pinpoint_a_rewrite(make()).await;
    every_checkpoint_verified(make()).await;
    export_import(make()).await;
    anchors_refuse_rollback_and_fork(make()).await;
    cosignatures_stored_beside_checkpoints(make()).await;
}
