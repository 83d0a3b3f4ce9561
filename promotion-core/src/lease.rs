//! Work ownership across replicas: leases with fencing tokens, explained on [`LeaseStore`].

use std::fmt;
use std::time::Duration;

use crate::name::{ReplicaId, StageName};
use crate::release::ReleaseId;
use crate::store::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// What a lease covers: one stage of one release.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseKey {
    pub release: ReleaseId,
    pub stage: StageName,
}

impl LeaseKey {
    /// The lease on `stage` of `release`.
    pub fn new(release: ReleaseId, stage: StageName) -> Self {
        LeaseKey { release, stage }
    }
    /// The key as stored: `release-<sha256 hex>/<stage>`.
    pub fn to_key_string(&self) -> String {
        format!("release-{}/{}", self.release.digest().to_hex(), self.stage)
    }
}

impl fmt::Display for LeaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.release.short(), self.stage)
    }
}

/// A lease held: the proof a replica shows when it appends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What it covers.
    pub key: LeaseKey,
    /// Who holds it.
    pub holder: ReplicaId,
    /// Grows each time the lease changes hands; appends carrying an older token are refused.
    pub token: u64,
    /// When it lapses unless renewed, on the store's clock.
    pub expires_at: DateTime<Utc>,
}

/// The answer to [`LeaseStore::acquire`].
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// The caller holds the lease (newly, or renewed with the same token).
    Granted(Lease),
    /// Another replica holds it.
    HeldBy {
        holder: ReplicaId,
        token: u64,
        /// When it lapses unless renewed.
        expires_at: DateTime<Utc>,
    },
}

/// Work ownership across replicas: leases with fencing tokens, kept by a store that several
/// replicas share.
///
/// Several replicas of a deploy tool may share one store. Optimistic concurrency already
/// guarantees that two replicas never both *record* a decision made on the same state; leases
/// make sure they do not both *act*: before an [`Engine`](crate::Engine) runs a stage's gates or
/// calls the deployer for it, it takes the lease on that (release, stage), and it appends the
/// result with the lease as a fence.
///
/// - A lease has a holder (a [`ReplicaId`]), an expiry, and a **fencing token** that grows
///   every time the lease changes hands. Renewing a lease one holds keeps its token.
/// - [`EventStore::append_fenced`](crate::EventStore::append_fenced) appends only if, inside
///   the append's own transaction, the lease is still held by the same holder with the same
///   token and has not expired. Otherwise it appends nothing and returns
///   [`StoreError::Fenced`]: a replica that stalled past its lease
///   (a long GC pause, a partition) cannot record anything once another may have taken over.
/// - Expiry is measured by the store's clock. Backends shared by several machines use one
///   clock for everyone (PostgreSQL uses the database server's), so replicas' clock skew does
///   not matter.
///
/// A replica that dies mid-rollout simply stops renewing; once its lease expires another
/// replica takes it, reads the log and continues from the last recorded step. A step whose
/// deployment had started but was not recorded is deployed again (deployers must tolerate
/// that: "route `weight` of traffic to this release" is idempotent); a recorded step is never
/// repeated and none is skipped.
///
/// Backend authors implement it with the helpers in [`backend`](crate::backend).
#[async_trait]
pub trait LeaseStore: Send + Sync + fmt::Debug {
    /// Takes the lease on `key` for `ttl` if it is free or expired (a new token, one more than
    /// the last one ever issued for `key`), or renews it if `holder` already holds it (same
    /// token, new expiry). Otherwise says who holds it.
    async fn acquire(
        &self,
        key: &LeaseKey,
        holder: &ReplicaId,
        ttl: Duration,
    ) -> Result<Acquired, StoreError>;

    /// Gives the lease up if `lease` still holds it (token and holder match); a lease that has
    /// already expired or changed hands is left as it is.
    async fn release(&self, lease: &Lease) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_are_checked() {
        assert!(ReplicaId::new("").is_err());
        assert!(ReplicaId::new("a\nb").is_err());
        assert_eq!(ReplicaId::new("pod-7").unwrap().to_string(), "pod-7");
    }
}
