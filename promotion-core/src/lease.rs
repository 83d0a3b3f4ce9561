//! Work ownership across replicas: leases with fencing tokens.
//!
//! Several replicas of a deploy tool may share one store. Optimistic concurrency already
//! guarantees that two replicas never both *record* a decision made on the same state; leases
//! make sure they do not both *act*: before an [`Engine`](crate::Engine) runs a stage's gates or
//! calls the deployer for it, it takes the lease on that (release, stage), and it appends the
//! result with the lease as a fence.
//!
//! - A lease has a holder (a [`ReplicaId`]), an expiry, and a **fencing token** that grows
//!   every time the lease changes hands. Renewing a lease one holds keeps its token.
//! - [`EventStore::append_fenced`](crate::EventStore::append_fenced) appends only if, inside
//!   the append's own transaction, the lease is still held by the same holder with the same
//!   token and has not expired. Otherwise it appends nothing and returns
//!   [`StoreError::Fenced`]: a replica that stalled past its lease
//!   (a long GC pause, a partition) cannot record anything once another may have taken over.
//! - Expiry is measured by the store's clock. Backends shared by several machines use one
//!   clock for everyone (PostgreSQL uses the database server's), so replicas' clock skew does
//!   not matter.
//!
//! A replica that dies mid-rollout simply stops renewing; once its lease expires another
//! replica takes it, reads the log and continues from the last recorded step. A step whose
//! deployment had started but was not recorded is deployed again (deployers must tolerate
//! that: "route `weight` of traffic to this release" is idempotent); a recorded step is never
//! repeated and none is skipped.

use std::fmt;
use std::time::Duration;

pub use crate::name::ReplicaId;
use crate::name::StageName;
use crate::release::ReleaseId;
use crate::store::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// What a lease covers: one stage of one release.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseKey {
    /// The release.
    pub release: ReleaseId,
    /// The stage.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// The caller holds the lease (newly, or renewed with the same token).
    Granted(Lease),
    /// Another replica holds it.
    HeldBy {
        /// The holder.
        holder: ReplicaId,
        /// Its token.
        token: u64,
        /// When it lapses unless renewed.
        expires_at: DateTime<Utc>,
    },
}

/// Leases with fencing tokens, kept by a store that several replicas share.
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

/// The lease table of a store, with the checks every backend applies the same way: what
/// [`InMemoryStore`](crate::InMemoryStore) uses, and what other backends' SQL mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// Holder.
    pub holder: ReplicaId,
    /// Token.
    pub token: u64,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

impl LeaseRow {
    /// Acquire or renew per [`LeaseStore::acquire`]: the new row, or who holds it.
    pub fn acquire(
        current: Option<&LeaseRow>,
        holder: &ReplicaId,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<LeaseRow, Acquired> {
        let expires_at = crate::clock::add(now, ttl);
        match current {
            Some(row) if row.holder == *holder && row.expires_at > now => Ok(LeaseRow {
                holder: holder.clone(),
                token: row.token,
                expires_at,
            }),
            Some(row) if row.expires_at > now => Err(Acquired::HeldBy {
                holder: row.holder.clone(),
                token: row.token,
                expires_at: row.expires_at,
            }),
            other => Ok(LeaseRow {
                holder: holder.clone(),
                token: other.map_or(1, |r| r.token.saturating_add(1)),
                expires_at,
            }),
        }
    }

    /// This row as the [`Lease`] its holder shows, on `key`.
    pub fn lease(&self, key: &LeaseKey) -> Lease {
        Lease {
            key: key.clone(),
            holder: self.holder.clone(),
            token: self.token,
            expires_at: self.expires_at,
        }
    }

    /// Release per [`LeaseStore::release`]: the row ending at `now` if `lease` still holds it,
    /// else `None` (leave it as it is). The row is kept, not deleted: its token must keep
    /// growing.
    pub fn release(
        current: Option<&LeaseRow>,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Option<LeaseRow> {
        match current {
            Some(row) if row.holder == lease.holder && row.token == lease.token => Some(LeaseRow {
                expires_at: now.min(row.expires_at),
                ..row.clone()
            }),
            _ => None,
        }
    }

    /// Whether an append fenced by `lease` may proceed at `now`; the refusal says why.
    pub fn check_fence(
        current: Option<&LeaseRow>,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let reason = match current {
            None => "no such lease was ever granted".to_string(),
            Some(row) if row.token != lease.token || row.holder != lease.holder => format!(
                "the lease has passed to {} with token {}",
                row.holder, row.token
            ),
            Some(row) if row.expires_at <= now => {
                format!("the lease expired at {}", row.expires_at.to_rfc3339())
            }
            Some(_) => return Ok(()),
        };
        Err(StoreError::Fenced {
            key: lease.key.to_string(),
            holder: lease.holder.clone(),
            token: lease.token,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Release;

    fn key() -> LeaseKey {
        let release = Release::builder("svc 1.0.0", "repo", "a".repeat(40), t(0))
            .artifact("img", format!("sha256:{}", "ab".repeat(32)))
            .builder("ci")
            .build()
            .unwrap();
        LeaseKey::new(release.id(), StageName::new("canary").unwrap())
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn tokens_grow_when_the_lease_changes_hands_and_not_on_renewal() {
        let a = ReplicaId::new("a").unwrap();
        let b = ReplicaId::new("b").unwrap();
        let ttl = Duration::from_secs(10);
        let first = LeaseRow::acquire(None, &a, t(0), ttl).unwrap();
        assert_eq!((first.token, first.expires_at), (1, t(10)));
        let renewed = LeaseRow::acquire(Some(&first), &a, t(5), ttl).unwrap();
        assert_eq!((renewed.token, renewed.expires_at), (1, t(15)));
        match LeaseRow::acquire(Some(&renewed), &b, t(14), ttl) {
            Err(Acquired::HeldBy { holder, token, .. }) => assert_eq!((holder, token), (a, 1)),
            other => panic!("expected HeldBy, got {other:?}"),
        }
        let taken = LeaseRow::acquire(Some(&renewed), &b, t(15), ttl).unwrap();
        assert_eq!((taken.holder.as_str(), taken.token), ("b", 2));
    }

    #[test]
    fn a_holder_whose_lease_expired_gets_a_new_token_even_from_itself() {
        let a = ReplicaId::new("a").unwrap();
        let ttl = Duration::from_secs(10);
        let first = LeaseRow::acquire(None, &a, t(0), ttl).unwrap();
        let again = LeaseRow::acquire(Some(&first), &a, t(10), ttl).unwrap();
        assert_eq!(
            again.token, 2,
            "an expired lease may have been used by someone else"
        );
    }

    #[test]
    fn fences_refuse_stale_tokens_other_holders_and_expired_leases() {
        let k = key();
        let a = ReplicaId::new("a").unwrap();
        let b = ReplicaId::new("b").unwrap();
        let row = LeaseRow {
            holder: a.clone(),
            token: 3,
            expires_at: t(10),
        };
        let lease = Lease {
            key: k.clone(),
            holder: a.clone(),
            token: 3,
            expires_at: t(10),
        };
        LeaseRow::check_fence(Some(&row), &lease, t(9)).unwrap();
        let msg = |r: Result<(), StoreError>| r.unwrap_err().to_string();
        assert!(msg(LeaseRow::check_fence(Some(&row), &lease, t(10))).contains("expired"));
        assert!(msg(LeaseRow::check_fence(None, &lease, t(0))).contains("ever granted"));
        let stale = Lease {
            token: 2,
            ..lease.clone()
        };
        assert!(msg(LeaseRow::check_fence(Some(&row), &stale, t(0))).contains("token 3"));
        let other = Lease { holder: b, ..lease };
        assert!(msg(LeaseRow::check_fence(Some(&row), &other, t(0))).contains("passed to a"));
    }

    #[test]
    fn releasing_ends_only_the_holders_own_lease_and_keeps_its_token() {
        let a = ReplicaId::new("a").unwrap();
        let row = LeaseRow::acquire(None, &a, t(0), Duration::from_secs(10)).unwrap();
        let lease = row.lease(&key());
        let ended = LeaseRow::release(Some(&row), &lease, t(4)).unwrap();
        assert_eq!((ended.token, ended.expires_at), (1, t(4)));
        let stale = Lease {
            token: 0,
            ..lease.clone()
        };
        assert_eq!(LeaseRow::release(Some(&row), &stale, t(4)), None);
        assert_eq!(LeaseRow::release(None, &lease, t(4)), None);
        // An already expired lease is not extended by releasing it late.
        assert_eq!(
            LeaseRow::release(Some(&row), &lease, t(60))
                .unwrap()
                .expires_at,
            t(10)
        );
    }

    #[test]
    fn replica_ids_are_checked() {
        assert!(ReplicaId::new("").is_err());
        assert!(ReplicaId::new("a\nb").is_err());
        assert_eq!(ReplicaId::new("pod-7").unwrap().to_string(), "pod-7");
    }
}
