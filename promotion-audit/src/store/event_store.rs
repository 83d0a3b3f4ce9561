//! How appends and leases reach the writer: [`AuditStore`] as `promotion_core`'s
//! [`EventStore`] and [`LeaseStore`]. Events are serialised on the appending task; reads by
//! stream are decoded and checked against the stream and version they were stored under.

use async_trait::async_trait;
use futures::channel::oneshot;
use promotion_core::{Acquired, Lease, LeaseKey, LeaseStore, ReplicaId};
use promotion_core::{Event, EventStore, ExpectedVersion, Recorded, StoreError, StreamId};

use super::writer::{AppendJob, LeaseJob, WriterJob};
use super::AuditStore;
use crate::entry::{decode, EncodedEvent};
use crate::error::AuditError;

impl AuditStore {
    async fn submit_append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[Event],
        fence: Option<Lease>,
    ) -> Result<u64, StoreError> {
        // The events' canonical JSON is most of the cost of framing them: it is done here, on
        // the appending task, not on the single writer thread.
        let events = events
            .iter()
            .enumerate()
            .map(|(i, event)| {
                EncodedEvent::new(event).map_err(|e| {
                    StoreError::from(AuditError::InvalidRequest(format!(
                        "event {} for {stream} cannot be written: {e}",
                        i + 1
                    )))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (reply, rx) = oneshot::channel();
        self.inner
            .writer
            .send(WriterJob::Append(AppendJob {
                stream: stream.clone(),
                expected,
                events,
                fence,
                reply,
            }))
            .map_err(|_| StoreError::from(AuditError::Stopped))?;
        rx.await
            .map_err(|_| StoreError::from(AuditError::Stopped))?
    }

    async fn submit_lease<R>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<R, StoreError>>) -> LeaseJob,
    ) -> Result<R, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .writer
            .send(WriterJob::Lease(job(reply)))
            .map_err(|_| StoreError::from(AuditError::Stopped))?;
        rx.await
            .map_err(|_| StoreError::from(AuditError::Stopped))?
    }
}

/// Leases live beside the log, in the same database (a `leases` table), and are not part of
/// it: they are coordination state, not audit evidence. Lease operations go through the writer,
/// each in a transaction of its own; a fenced append checks its lease inside the append's
/// transaction. Expiry is judged by the store's clock ([`AuditOptions::clock`](super::AuditOptions::clock)), except on
/// PostgreSQL, which judges by the database server's clock so that replicas on different
/// machines agree.
#[async_trait]
impl LeaseStore for AuditStore {
    async fn acquire(
        &self,
        key: &LeaseKey,
        holder: &ReplicaId,
        ttl: std::time::Duration,
    ) -> Result<Acquired, StoreError> {
        self.submit_lease(|reply| LeaseJob::Acquire {
            key: key.clone(),
            holder: holder.clone(),
            ttl,
            reply,
        })
        .await
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.submit_lease(|reply| LeaseJob::Release {
            lease: lease.clone(),
            reply,
        })
        .await
    }
}

#[async_trait]
impl EventStore for AuditStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[Event],
    ) -> Result<u64, StoreError> {
        self.submit_append(stream, expected, events, None).await
    }

    async fn append_fenced(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[Event],
        fence: &Lease,
    ) -> Result<u64, StoreError> {
        self.submit_append(stream, expected, events, Some(fence.clone()))
            .await
    }

    fn leases(&self) -> Option<&dyn LeaseStore> {
        Some(self)
    }

    async fn read(&self, stream: &StreamId) -> Result<Vec<Recorded>, StoreError> {
        self.read_from(stream, 0).await
    }

    async fn read_from(&self, stream: &StreamId, after: u64) -> Result<Vec<Recorded>, StoreError> {
        let s = stream.clone();
        let rows = self
            .read(move |b| Ok(b.read_stream(&s, after)?))
            .await
            .map_err(StoreError::from)?;
        rows.into_iter()
            .map(|row| {
                let entry = decode(&row.bytes).map_err(|message| StoreError::Corrupt {
                    stream: stream.clone(),
                    version: row.version,
                    message,
                })?;
                if entry.stream != *stream || entry.version != row.version {
                    return Err(StoreError::Corrupt {
                        stream: stream.clone(),
                        version: row.version,
                        message: format!(
                            "entry bytes say stream {} version {}",
                            entry.stream, entry.version
                        ),
                    });
                }
                Ok(Recorded {
                    stream: stream.clone(),
                    version: row.version,
                    event: entry.event,
                })
            })
            .collect()
    }

    async fn streams(&self) -> Result<Vec<StreamId>, StoreError> {
        self.read(|b| Ok(b.streams()?))
            .await
            .map_err(StoreError::from)
    }
}
