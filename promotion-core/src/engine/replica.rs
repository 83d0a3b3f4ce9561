//! Replicas: engines sharing a store take a lease on each (release, stage) before acting on
//! it, renew it while a gate or the deployer is at work, and append fenced by it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Engine, EngineError, HeldElsewhere};
use crate::clock::{add, Clock};
use crate::lease::{Acquired, Lease, LeaseKey, LeaseStore};
use crate::machine::{Action, Command, ReleaseState};
use crate::name::ReplicaId;
use crate::store::StoreError;

/// How an engine shares a store with other replicas (see [`LeaseStore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaOptions {
    /// This replica's identity as a lease holder.
    pub id: ReplicaId,
    /// How long a lease lasts unless renewed. While the engine works on a stage it renews the
    /// lease every third of this; a replica that dies is replaced this long after its last
    /// renewal at the latest.
    pub ttl: Duration,
    /// How often [`Engine::run_until_blocked`] looks again at a stage another replica holds.
    pub poll: Duration,
}

impl ReplicaOptions {
    /// Leases of `ttl`, polled every fifth of it.
    pub fn new(id: ReplicaId, ttl: Duration) -> Self {
        ReplicaOptions {
            id,
            ttl,
            poll: ttl / 5,
        }
    }
}

impl Engine {
    /// Makes this engine one replica among several sharing its store: before it runs a
    /// stage's gates or calls the deployer for it, it takes the lease on that (release, stage)
    /// and it appends with the lease as a fence, so no two replicas act on the same stage at
    /// once and a replica that has lost its lease records nothing. Fails if the store keeps no
    /// leases or the durations are unusable.
    pub fn replica(mut self, options: ReplicaOptions) -> Result<Self, EngineError> {
        if self.store.leases().is_none() {
            return Err(EngineError::InvalidReplica(format!(
                "the store {:?} keeps no leases",
                self.store
            )));
        }
        if options.ttl < Duration::from_millis(10) {
            return Err(EngineError::InvalidReplica(format!(
                "lease ttl {:?} is shorter than 10 ms",
                options.ttl
            )));
        }
        if options.poll.is_zero() || options.poll > options.ttl {
            return Err(EngineError::InvalidReplica(format!(
                "poll interval {:?} must be more than zero and at most the ttl {:?}",
                options.poll, options.ttl
            )));
        }
        self.replica = Some(options);
        Ok(self)
    }

    /// The replica options, when the engine runs as one replica among several.
    pub fn replica_options(&self) -> Option<&ReplicaOptions> {
        self.replica.as_ref()
    }

    /// Makes sure this replica holds the lease on `key`: renews it when half its time has
    /// passed, takes it when free.
    pub(super) async fn lease_for(
        &self,
        options: &ReplicaOptions,
        key: LeaseKey,
        held: &mut Vec<Lease>,
        now: DateTime<Utc>,
    ) -> Result<LeaseFor, EngineError> {
        let leases = self
            .store
            .leases()
            .ok_or(StoreError::Unsupported("leases"))?;
        let mine = held.iter().position(|l| l.key == key);
        if let Some(i) = mine {
            if let Some(lease) = held.get(i) {
                if add(now, options.ttl / 2) < lease.expires_at {
                    return Ok(LeaseFor::Kept(lease.clone()));
                }
            }
        }
        match leases.acquire(&key, &options.id, options.ttl).await? {
            Acquired::Granted(lease) => {
                let same = mine
                    .and_then(|i| held.get(i))
                    .is_some_and(|l| l.token == lease.token);
                held.retain(|l| l.key != key);
                held.push(lease.clone());
                Ok(if same {
                    LeaseFor::Kept(lease)
                } else {
                    tracing::debug!(lease = %key, token = lease.token, "lease taken");
                    LeaseFor::Fresh
                })
            }
            Acquired::HeldBy {
                holder, expires_at, ..
            } => {
                held.retain(|l| l.key != key);
                Ok(LeaseFor::Busy(HeldElsewhere {
                    stage: key.stage,
                    holder,
                    until: expires_at,
                }))
            }
        }
    }

    /// Performs `action` while renewing `lease` every third of its time, so that a long gate
    /// or a slow deployer keeps it. A deployer call is made only while the lease is valid:
    /// when it has lapsed by the time of the call (the replica was paused after recording the
    /// intent), the call is not made and `None` is returned, as when the platform refuses the
    /// lease's fencing token; the caller takes the lease again before anything else.
    pub(super) async fn perform_leased(
        &self,
        state: &ReleaseState,
        action: Action,
        lease: &Lease,
        held: &mut [Lease],
    ) -> Result<Option<Command>, EngineError> {
        let (Some(options), Some(leases)) = (&self.replica, self.store.leases()) else {
            return self.perform(state, action, Some(lease.token)).await;
        };
        let calls_deployer = matches!(action, Action::Deploy { .. } | Action::RollBack { .. });
        let now = self.clock.now();
        if calls_deployer && lease.expires_at <= now {
            tracing::warn!(
                lease = %lease.key,
                token = lease.token,
                expired = %lease.expires_at,
                %now,
                "the lease lapsed before the deployer call; not calling"
            );
            return Ok(None);
        }
        let current = std::sync::Mutex::new(lease.clone());
        let result = {
            let heartbeat = heartbeat(self.clock.as_ref(), leases, options, &current);
            let work = self.perform(state, action, Some(lease.token));
            futures::pin_mut!(work, heartbeat);
            match futures::future::select(work, heartbeat).await {
                futures::future::Either::Left((result, _)) => result,
                futures::future::Either::Right(((), work)) => work.await,
            }
        };
        let renewed = current
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for l in held.iter_mut() {
            if l.key == renewed.key && l.token == renewed.token {
                *l = renewed.clone();
            }
        }
        result
    }
}

pub(super) enum LeaseFor {
    /// Held by this replica since before: act.
    Kept(Lease),
    /// Just taken: catch up before acting.
    Fresh,
    /// Another replica holds it.
    Busy(HeldElsewhere),
}

/// Renews `current` every third of the ttl until a renewal fails or returns another token;
/// then stops renewing (the fenced append will be refused) and never completes.
async fn heartbeat(
    clock: &dyn Clock,
    leases: &dyn LeaseStore,
    options: &ReplicaOptions,
    current: &std::sync::Mutex<Lease>,
) {
    loop {
        clock.sleep(options.ttl / 3).await;
        let lease = current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match leases.acquire(&lease.key, &options.id, options.ttl).await {
            Ok(Acquired::Granted(renewed)) if renewed.token == lease.token => {
                *current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = renewed;
            }
            Ok(other) => {
                tracing::warn!(lease = %lease.key, answer = ?other, "lease lost while acting");
                break;
            }
            Err(e) => {
                // A transient store error: keep trying; the fence decides in the end.
                tracing::warn!(lease = %lease.key, error = %e, "could not renew a lease");
            }
        }
    }
    futures::future::pending::<()>().await
}
