//! Helpers for backend authors: someone writing an [`EventStore`](crate::EventStore) (and,
//! for stores several replicas share, a [`LeaseStore`](crate::LeaseStore)) over their own
//! storage. Hosts and gate authors need nothing from here.
//!
//! A backend keeps two things: the event streams, and a lease table of [`LeaseRow`]s. What it
//! must check, it checks inside the transaction that writes, with these functions, so that
//! every backend refuses the same appends with the same errors:
//!
//! - [`EventStore::append`](crate::EventStore::append): [`check_expected`] against the
//!   stream's current version, then write the events — all or nothing.
//! - [`EventStore::append_fenced`](crate::EventStore::append_fenced): the same, and
//!   [`LeaseRow::check_fence`] on the fencing lease's row, in the same transaction.
//! - [`LeaseStore::acquire`](crate::LeaseStore::acquire) and
//!   [`LeaseStore::release`](crate::LeaseStore::release): read the key's row, write what
//!   [`LeaseRow::acquire`] or [`LeaseRow::release`] returns.
//!
//! "Now" is the store's clock, never the caller's: a backend shared by several machines uses
//! one clock for all of them (the PostgreSQL backend uses the database server's), so replicas'
//! clock skew cannot stretch a lease. [`InMemoryStore`](crate::InMemoryStore) is the reference
//! implementation; `promotion-audit`'s conformance suite (feature `conformance`) checks a
//! backend against it.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::time::Duration;
//! use promotion_core::backend::{check_expected, LeaseRow};
//! use promotion_core::testing::sample_release;
//! use promotion_core::{ExpectedVersion, Lease, LeaseKey, ReplicaId, StoreError, StreamId};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A backend's two tables: stream versions, and lease rows by key string.
//! let versions: BTreeMap<StreamId, u64> = BTreeMap::new();
//! let mut leases: BTreeMap<String, LeaseRow> = BTreeMap::new();
//! let now: chrono::DateTime<chrono::Utc> = "2026-11-26T09:00:00Z".parse()?;
//!
//! // LeaseStore::acquire, in one transaction: read the row, write the new one.
//! let key = LeaseKey::new(sample_release().id(), "canary".parse()?);
//! let ttl = Duration::from_secs(30);
//! let pod = ReplicaId::new("pod-1")?;
//! let row = LeaseRow::acquire(leases.get(&key.to_key_string()), &pod, now, ttl)
//!     .map_err(|held| format!("held elsewhere: {held:?}"))?;
//! let lease: Lease = row.lease(&key);
//! leases.insert(key.to_key_string(), row);
//!
//! // EventStore::append_fenced, in the append's transaction, before writing anything.
//! let stream = StreamId::for_release(&key.release);
//! let may_append = |at| -> Result<(), StoreError> {
//!     check_expected(&stream, ExpectedVersion::NoStream, versions.get(&stream).copied())?;
//!     LeaseRow::check_fence(leases.get(&lease.key.to_key_string()), &lease, at)
//! };
//! assert!(may_append(now + Duration::from_secs(10)).is_ok());
//! // Once the lease has lapsed, the replica that held it can no longer record anything.
//! assert!(matches!(may_append(now + ttl), Err(StoreError::Fenced { .. })));
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::lease::{Acquired, Lease, LeaseKey};
use crate::name::ReplicaId;
use crate::store::{ExpectedVersion, StoreError, StreamId};

/// Checks `expected` against a stream's current version, `None` when the stream does not exist
/// yet ([`ExpectedVersion::Exact`]`(0)` accepts a missing stream too). Call it inside the
/// append's transaction, before writing anything; the refusal is the
/// [`StoreError::Conflict`] that [`EventStore::append`](crate::EventStore::append) returns.
pub fn check_expected(
    stream: &StreamId,
    expected: ExpectedVersion,
    current: Option<u64>,
) -> Result<(), StoreError> {
    let ok = match (expected, current) {
        (ExpectedVersion::Any, _) => true,
        (ExpectedVersion::NoStream, None) => true,
        (ExpectedVersion::NoStream, Some(_)) => false,
        (ExpectedVersion::Exact(0), None) => true,
        (ExpectedVersion::Exact(v), Some(c)) => v == c,
        (ExpectedVersion::Exact(_), None) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            stream: stream.clone(),
            expected,
            actual: current.unwrap_or(0),
        })
    }
}

/// One row of a store's lease table (one per [`LeaseKey`], stored under
/// [`LeaseKey::to_key_string`]), with the rules every backend applies to it the same way:
/// [`InMemoryStore`](crate::InMemoryStore) keeps these rows in a map, `promotion-audit`'s
/// backends in a table, and both call these functions inside their transactions.
///
/// A row is never deleted: releasing a lease ends it, and the token it keeps is what the next
/// holder's token grows from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The replica that holds the lease, or held it last.
    pub holder: ReplicaId,
    /// The fencing token last issued for the key.
    pub token: u64,
    /// When the lease lapses, on the store's clock; a released lease ended when it was released.
    pub expires_at: DateTime<Utc>,
}

impl LeaseRow {
    /// Acquire or renew per [`LeaseStore::acquire`](crate::LeaseStore::acquire): the new row,
    /// or who holds it.
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

    /// Release per [`LeaseStore::release`](crate::LeaseStore::release): the row ending at
    /// `now` if `lease` still holds it, else `None` (leave it as it is). The row is kept, not
    /// deleted: its token must keep growing.
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
    use crate::name::StageName;
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
    fn expected_versions_are_checked_against_the_current_one() {
        let s = StreamId::new("s").unwrap();
        check_expected(&s, ExpectedVersion::Any, Some(3)).unwrap();
        check_expected(&s, ExpectedVersion::NoStream, None).unwrap();
        check_expected(&s, ExpectedVersion::Exact(0), None).unwrap();
        check_expected(&s, ExpectedVersion::Exact(3), Some(3)).unwrap();
        for (expected, current) in [
            (ExpectedVersion::NoStream, Some(1)),
            (ExpectedVersion::Exact(2), Some(3)),
            (ExpectedVersion::Exact(1), None),
        ] {
            match check_expected(&s, expected, current) {
                Err(StoreError::Conflict { actual, .. }) => {
                    assert_eq!(actual, current.unwrap_or(0))
                }
                other => panic!("expected a conflict, got {other:?}"),
            }
        }
    }
}
