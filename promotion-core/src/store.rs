//! The event store interface and the in-memory store; [`EventStore`] says who implements it
//! where.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use std::time::Duration;

use crate::backend::{check_expected, LeaseRow};
use crate::clock::{Clock, SystemClock};
use crate::lease::{Acquired, Lease, LeaseKey, LeaseStore};
use crate::machine::Event;
use crate::name::ReplicaId;
use crate::release::ReleaseId;

/// The name of an event stream: one per release.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(String);

impl StreamId {
    /// The stream that holds `release`'s journey.
    pub fn for_release(release: &ReleaseId) -> Self {
        StreamId(format!("release-{}", release.digest().to_hex()))
    }
    /// The stream of refused attempts ([`EventBody::AttemptRefused`](crate::EventBody)): one
    /// per store, written by the engine, never holding a release.
    pub fn security() -> Self {
        StreamId("security".to_owned())
    }
    /// A stream with a host-chosen name (non-empty, no control characters).
    pub fn new(name: impl Into<String>) -> Result<Self, crate::InvalidName> {
        let name = name.into();
        crate::name::check_technical_name("stream", &name)?;
        Ok(StreamId(name))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the appender believes the stream's version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream must hold exactly this many events.
    Exact(u64),
    /// No check (use only where no decision depends on the current state).
    Any,
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
            ExpectedVersion::Any => f.write_str("any version"),
        }
    }
}

/// An event as stored: its stream and its position in it.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub stream: StreamId,
    /// Position in the stream, from 1.
    pub version: u64,
    pub event: Event,
}

/// Why a store operation failed.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another writer appended first; nothing was appended.
    #[error("stream {stream} is at version {actual}, expected {expected}; nothing was appended")]
    Conflict {
        stream: StreamId,
        /// What the appender expected.
        expected: ExpectedVersion,
        /// The stream's version.
        actual: u64,
    },
    /// Stored bytes do not decode or do not verify.
    #[error("stream {stream} entry {version} is corrupt: {message}")]
    Corrupt {
        stream: StreamId,
        /// The entry's position.
        version: u64,
        /// What is wrong.
        message: String,
    },
    /// The append was fenced by a lease that is no longer the caller's; nothing was appended.
    #[error("lease {key} (holder {holder}, token {token}) no longer fences appends: {reason}; nothing was appended")]
    Fenced {
        /// The lease's key.
        key: String,
        /// Who appended.
        holder: ReplicaId,
        /// The token the append carried.
        token: u64,
        /// Why it was refused.
        reason: String,
    },
    /// The store does not offer this operation (leases on a store that cannot share them).
    #[error("this store does not support {0}")]
    Unsupported(&'static str),
    /// The storage backend failed.
    #[error("store backend: {message}")]
    Backend {
        /// What happened.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// Append-only storage of event streams with optimistic concurrency.
///
/// One trait, many backends, one conformance suite: `promotion-audit` implements it with
/// tamper evidence over SQLite and PostgreSQL, [`InMemoryStore`] is for tests and examples, and
/// [`backend`](crate::backend) has the helpers for writing another.
#[async_trait]
pub trait EventStore: Send + Sync + fmt::Debug {
    /// Appends `events` to `stream` if its version is `expected`; returns the new version.
    /// All or nothing: on any error nothing is appended.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[Event],
    ) -> Result<u64, StoreError>;

    /// Every event of `stream`, in order; empty if the stream does not exist.
    async fn read(&self, stream: &StreamId) -> Result<Vec<Recorded>, StoreError>;

    /// The events of `stream` after version `after`, in order: what a reader holding the state
    /// at version `after` needs to catch up. The default reads the whole stream and skips.
    async fn read_from(&self, stream: &StreamId, after: u64) -> Result<Vec<Recorded>, StoreError> {
        let mut all = self.read(stream).await?;
        all.retain(|r| r.version > after);
        Ok(all)
    }

    /// Every stream's id, in no particular order.
    async fn streams(&self) -> Result<Vec<StreamId>, StoreError>;

    /// The store's leases, when it can coordinate replicas (see [`LeaseStore`]). The default
    /// has none.
    fn leases(&self) -> Option<&dyn LeaseStore> {
        None
    }

    /// Like [`append`](Self::append), but only while `fence` is still the caller's: checked in
    /// the same transaction as the append, so a replica whose lease has expired or passed on
    /// cannot record anything. Refused appends are [`StoreError::Fenced`] and append nothing.
    /// The default (stores without leases) is [`StoreError::Unsupported`].
    async fn append_fenced(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[Event],
        fence: &Lease,
    ) -> Result<u64, StoreError> {
        let _ = (stream, expected, events, fence);
        Err(StoreError::Unsupported("fenced appends"))
    }
}

/// Streams in memory: for tests, examples and benchmarks. Nothing survives the process.
///
/// Each append is kept as one exact-size, shared chunk, so a stream costs what its events
/// cost (no doubling slack) and reads clone reference counts, not events' allocations twice.
///
/// It keeps [leases](LeaseStore) too, timed by its clock ([`SystemClock`] unless
/// [`with_clock`](Self::with_clock) says otherwise), so several engines in one process can
/// share it as replicas would share a database.
#[derive(Debug)]
pub struct InMemoryStore {
    streams: Mutex<BTreeMap<StreamId, MemStream>>,
    leases: Mutex<BTreeMap<LeaseKey, LeaseRow>>,
    clock: Arc<dyn Clock>,
}

impl Default for InMemoryStore {
    fn default() -> Self {
        InMemoryStore {
            streams: Mutex::default(),
            leases: Mutex::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

#[derive(Debug, Default)]
struct MemStream {
    len: u64,
    chunks: Vec<Arc<[Event]>>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose leases are timed by `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        InMemoryStore {
            clock,
            ..Self::default()
        }
    }

    fn append_locked(
        streams: &mut BTreeMap<StreamId, MemStream>,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[Event],
    ) -> Result<u64, StoreError> {
        let current = streams.get(stream).map(|s| s.len);
        check_expected(stream, expected, current)?;
        if events.is_empty() {
            return Ok(current.unwrap_or(0));
        }
        let s = streams.entry(stream.clone()).or_default();
        s.chunks.push(Arc::from(events));
        s.len += events.len() as u64;
        Ok(s.len)
    }
}

#[async_trait]
impl EventStore for InMemoryStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[Event],
    ) -> Result<u64, StoreError> {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        Self::append_locked(&mut streams, stream, expected, events)
    }

    async fn append_fenced(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[Event],
        fence: &Lease,
    ) -> Result<u64, StoreError> {
        // Lock order: leases, then streams (acquire takes only the lease lock).
        let leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        LeaseRow::check_fence(leases.get(&fence.key), fence, self.clock.now())?;
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        Self::append_locked(&mut streams, stream, expected, events)
    }

    fn leases(&self) -> Option<&dyn LeaseStore> {
        Some(self)
    }

    async fn read(&self, stream: &StreamId) -> Result<Vec<Recorded>, StoreError> {
        self.read_from(stream, 0).await
    }

    async fn read_from(&self, stream: &StreamId, after: u64) -> Result<Vec<Recorded>, StoreError> {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(streams
            .get(stream)
            .map(|s| {
                s.chunks
                    .iter()
                    .flat_map(|c| c.iter())
                    .zip(1u64..)
                    .skip(usize::try_from(after).unwrap_or(usize::MAX))
                    .map(|(e, version)| Recorded {
                        stream: stream.clone(),
                        version,
                        event: e.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn streams(&self) -> Result<Vec<StreamId>, StoreError> {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(streams.keys().cloned().collect())
    }
}

#[async_trait]
impl LeaseStore for InMemoryStore {
    async fn acquire(
        &self,
        key: &LeaseKey,
        holder: &ReplicaId,
        ttl: Duration,
    ) -> Result<Acquired, StoreError> {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        match LeaseRow::acquire(leases.get(key), holder, self.clock.now(), ttl) {
            Ok(row) => {
                let lease = row.lease(key);
                leases.insert(key.clone(), row);
                Ok(Acquired::Granted(lease))
            }
            Err(held) => Ok(held),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ended) = LeaseRow::release(leases.get(&lease.key), lease, self.clock.now()) {
            leases.insert(lease.key.clone(), ended);
        }
        Ok(())
    }
}
