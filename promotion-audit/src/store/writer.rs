//! The writer thread of an [`AuditStore`](super::AuditStore): takes the queued appends and
//! lease operations, checks each append's expected version (and fence) inside one transaction,
//! frames and hashes the accepted events into entries and Merkle nodes, signs one checkpoint per
//! transaction and commits durably (group commit). What it remembers between commits (the Merkle
//! frontier, stream versions) is used only while no other writer has committed since.

use std::collections::HashMap;
use std::sync::{mpsc, Arc};

use futures::channel::oneshot;
use promotion_core::backend::{check_expected, LeaseRow};
use promotion_core::{Acquired, Lease, LeaseKey, ReplicaId};
use promotion_core::{ExpectedVersion, StoreError, StreamId};

use super::{AuditOptions, Nodes};
use crate::backend::{Backend, Head};
use crate::checkpoint::Checkpoint;
use crate::entry::{encode_encoded, EncodedEvent, StoredEntry};
use crate::error::{AuditError, BackendError};
use crate::merkle::{Frontier, Hash};

pub(super) struct AppendJob {
    pub(super) stream: StreamId,
    pub(super) expected: ExpectedVersion,
    /// Encoded by the appending task, so that the writer only frames them.
    pub(super) events: Vec<EncodedEvent>,
    pub(super) fence: Option<Lease>,
    pub(super) reply: Reply,
}

/// A job on the writer's backend handle, run between batches.
pub(super) type BackendJob = Box<dyn FnOnce(&mut dyn Backend) + Send>;

/// A lease operation, or another job on the write handle (storing cosignatures), run by the
/// writer between batches in a transaction of its own.
pub(super) enum LeaseJob {
    /// Runs on the write handle; it begins and ends its own transaction.
    Run(BackendJob),
    Acquire {
        key: LeaseKey,
        holder: ReplicaId,
        ttl: std::time::Duration,
        reply: oneshot::Sender<Result<Acquired, StoreError>>,
    },
    Release {
        lease: Lease,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

pub(super) enum WriterJob {
    Append(AppendJob),
    Lease(LeaseJob),
}

pub(super) struct Writer {
    backend: Box<dyn Backend>,
    options: AuditOptions,
    /// The frontier after the last commit, with the head it belongs to.
    cache: Option<(Head, Frontier)>,
    /// Stream versions as of `cache`'s head: valid only while the head is still ours (no other
    /// writer, of this process or another, has committed since).
    versions: HashMap<StreamId, u64>,
}

/// Most stream versions the writer remembers; past it, it forgets them all and asks again.
const MAX_CACHED_VERSIONS: usize = 100_000;

impl Writer {
    /// A writer that will own `backend`'s write handle; it starts with nothing remembered.
    pub(super) fn new(backend: Box<dyn Backend>, options: AuditOptions) -> Self {
        Writer {
            backend,
            options,
            cache: None,
            versions: HashMap::new(),
        }
    }

    /// Takes jobs until every sender is gone (the store was dropped).
    pub(super) fn run(mut self, jobs: mpsc::Receiver<WriterJob>) {
        let max = self.options.max_batch.max(1);
        let wait = self.options.batch_fill_wait;
        let mut last = 0usize;
        while let Ok(first) = jobs.recv() {
            let mut batch = Vec::new();
            let mut leases = Vec::new();
            sort(first, &mut batch, &mut leases);
            drain(&jobs, &mut batch, &mut leases, max);
            // After a commit the first appenders to wake come back before the rest: wait a
            // moment for the others rather than committing a nearly empty batch.
            if !batch.is_empty() && batch.len() < last && !wait.is_zero() {
                let deadline = std::time::Instant::now() + wait;
                while batch.len() < last.min(max) {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    match jobs.recv_timeout(left) {
                        Ok(job) => {
                            sort(job, &mut batch, &mut leases);
                            drain(&jobs, &mut batch, &mut leases, max);
                        }
                        Err(_) => break,
                    }
                }
            }
            for job in leases {
                self.lease(job);
            }
            if !batch.is_empty() {
                last = batch.len();
                self.commit_batch(batch);
            }
        }
    }

    fn lease(&mut self, job: LeaseJob) {
        let now = self.options.clock.now();
        match job {
            LeaseJob::Run(job) => job(self.backend.as_mut()),
            LeaseJob::Acquire {
                key,
                holder,
                ttl,
                reply,
            } => {
                let mut answer = None;
                let done =
                    self.backend
                        .update_lease(&key.to_key_string(), now, &mut |current, now| {
                            match LeaseRow::acquire(current, &holder, now, ttl) {
                                Ok(row) => {
                                    answer = Some(Acquired::Granted(row.lease(&key)));
                                    Some(row)
                                }
                                Err(held) => {
                                    answer = Some(held);
                                    None
                                }
                            }
                        });
                let _ = reply.send(
                    done.map_err(|e| StoreError::from(AuditError::from(e)))
                        .and_then(|()| {
                            answer.ok_or_else(|| {
                                Failed::from(AuditError::InvalidRequest(
                                    "the lease was not read".into(),
                                ))
                                .store_error()
                            })
                        }),
                );
            }
            LeaseJob::Release { lease, reply } => {
                let done = self.backend.update_lease(
                    &lease.key.to_key_string(),
                    now,
                    &mut |current, now| LeaseRow::release(current, &lease, now),
                );
                let _ = reply.send(done.map_err(|e| StoreError::from(AuditError::from(e))));
            }
        }
    }

    fn commit_batch(&mut self, batch: Vec<AppendJob>) {
        let span = tracing::debug_span!("audit_commit", appends = batch.len());
        let _enter = span.enter();
        let head = match self.backend.begin() {
            Ok(h) => h,
            Err(e) => {
                let failed = Failed::from(AuditError::from(e));
                for job in batch {
                    let _ = job.reply.send(Err(failed.store_error()));
                }
                return;
            }
        };
        match self.stage(head, batch) {
            Ok((accepted, frontier, new_head, staged_versions)) => match self.backend.commit() {
                Ok(()) => {
                    self.cache = Some((new_head, frontier));
                    if self.versions.len() > MAX_CACHED_VERSIONS {
                        self.versions.clear();
                    }
                    self.versions.extend(staged_versions);
                    for (reply, version) in accepted {
                        let _ = reply.send(Ok(version));
                    }
                }
                Err(e) => {
                    self.backend.rollback();
                    self.cache = None;
                    self.versions.clear();
                    let failed = Failed::from(AuditError::from(e));
                    tracing::error!(error = %failed.message, "audit commit failed; nothing was appended");
                    for (reply, _) in accepted {
                        let _ = reply.send(Err(failed.store_error()));
                    }
                }
            },
            Err((e, replies)) => {
                self.backend.rollback();
                self.cache = None;
                self.versions.clear();
                let failed = Failed::from(e);
                for reply in replies {
                    let _ = reply.send(Err(failed.store_error()));
                }
            }
        }
    }

    /// Validates each append against the versions inside the transaction, frames and hashes the
    /// accepted ones, and writes entries, nodes and a checkpoint. Conflicting appends are
    /// answered at once and take no part in the transaction. On error every job not yet
    /// answered is handed back to be answered with it.
    fn stage(
        &mut self,
        head: Head,
        batch: Vec<AppendJob>,
    ) -> Result<Staged, (AuditError, Vec<Reply>)> {
        let ours = matches!(&self.cache, Some((h, _)) if *h == head);
        if !ours {
            // Another writer committed since our last commit: what we remember is stale.
            self.versions.clear();
        }
        let mut frontier = match &self.cache {
            Some((h, f)) if *h == head => f.clone(),
            _ => match Frontier::from_nodes(&Nodes(self.backend.as_ref()), head.size) {
                Ok(f) => f,
                Err(e) => return Err((e.into(), batch.into_iter().map(|j| j.reply).collect())),
            },
        };
        let at = self.options.clock.now();
        let mut overlay: HashMap<StreamId, u64> = HashMap::new();
        let mut entries: Vec<StoredEntry> = Vec::new();
        let mut nodes = Vec::new();
        let mut accepted: Vec<(Reply, u64)> = Vec::new();
        let mut prev = head.last;
        let mut seq = head.size;
        let mut jobs = batch.into_iter();
        let fail = |e: AuditError,
                    this: Reply,
                    accepted: Vec<(Reply, u64)>,
                    rest: std::vec::IntoIter<AppendJob>| {
            let mut replies = vec![this];
            replies.extend(accepted.into_iter().map(|(r, _)| r));
            replies.extend(rest.map(|j| j.reply));
            Err((e, replies))
        };
        while let Some(job) = jobs.next() {
            let current = match overlay.get(&job.stream).or(self.versions.get(&job.stream)) {
                Some(v) => *v,
                None => match self.backend.stream_version(&job.stream) {
                    Ok(v) => v,
                    Err(e) => return fail(e.into(), job.reply, accepted, jobs),
                },
            };
            let existing = (current > 0).then_some(current);
            if let Err(conflict) = check_expected(&job.stream, job.expected, existing) {
                let _ = job.reply.send(Err(conflict));
                continue;
            }
            if let Some(fence) = &job.fence {
                let checked = self
                    .backend
                    .lease_in_transaction(&fence.key.to_key_string(), at);
                match checked {
                    Ok((row, now)) => {
                        if let Err(fenced) = LeaseRow::check_fence(row.as_ref(), fence, now) {
                            let _ = job.reply.send(Err(fenced));
                            continue;
                        }
                    }
                    Err(e) => return fail(e.into(), job.reply, accepted, jobs),
                }
            }
            // Framed apart first: a job whose numbers RFC 8785 cannot hold (a `seq` or
            // `version` beyond 2^53 - 1) is refused alone, leaving the others' chain intact.
            let (mut job_seq, mut job_prev) = (seq, prev);
            let framed = job
                .events
                .iter()
                .enumerate()
                .map(|(i, event)| {
                    let version = current + 1 + i as u64;
                    let entry = encode_encoded(job_seq, &job.stream, version, at, &job_prev, event)
                        .map_err(|e| {
                            AuditError::InvalidRequest(format!(
                                "event {} for {} cannot be written: {e}",
                                i + 1,
                                job.stream
                            ))
                        })?;
                    job_prev = entry.hash;
                    job_seq += 1;
                    Ok(entry)
                })
                .collect::<Result<Vec<_>, AuditError>>();
            let framed = match framed {
                Ok(framed) => framed,
                Err(e) => {
                    let _ = job.reply.send(Err(e.into()));
                    continue;
                }
            };
            for entry in framed {
                nodes.extend(frontier.push(entry.hash));
                entries.push(entry);
            }
            (seq, prev) = (job_seq, job_prev);
            let version = current + job.events.len() as u64;
            overlay.insert(job.stream.clone(), version);
            accepted.push((job.reply, version));
        }
        if let Err(e) = self.write(&entries, &nodes, seq, &frontier) {
            return Err((e, accepted.into_iter().map(|(r, _)| r).collect()));
        }
        Ok((
            accepted,
            frontier,
            Head {
                size: seq,
                last: prev,
            },
            overlay,
        ))
    }

    fn write(
        &mut self,
        entries: &[StoredEntry],
        nodes: &[(u8, u64, Hash)],
        size: u64,
        frontier: &Frontier,
    ) -> Result<(), AuditError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.backend.insert_entries(entries)?;
        self.backend.insert_nodes(nodes)?;
        if let Some(signer) = &self.options.signer {
            let cp = Checkpoint {
                origin: self.options.origin.clone(),
                size,
                root: frontier.root(),
                extensions: Vec::new(),
            };
            let note = signer.try_sign(&cp)?;
            self.backend.insert_checkpoint(size, &note)?;
        }
        Ok(())
    }
}

pub(super) type Reply = oneshot::Sender<Result<u64, StoreError>>;
/// What a staged batch hands to its commit: the accepted appends' replies and versions, the
/// frontier and head after it, and the streams' new versions.
type Staged = (Vec<(Reply, u64)>, Frontier, Head, HashMap<StreamId, u64>);

fn sort(job: WriterJob, batch: &mut Vec<AppendJob>, leases: &mut Vec<LeaseJob>) {
    match job {
        WriterJob::Append(a) => batch.push(a),
        WriterJob::Lease(l) => leases.push(l),
    }
}

fn drain(
    jobs: &mpsc::Receiver<WriterJob>,
    batch: &mut Vec<AppendJob>,
    leases: &mut Vec<LeaseJob>,
    max: usize,
) {
    while batch.len() < max {
        match jobs.try_recv() {
            Ok(job) => sort(job, batch, leases),
            Err(_) => break,
        }
    }
}

/// A failed batch, answered to each of its appends: the message (naming the cause in words)
/// and the cause itself, shared, so that every append's error keeps the chain down to the
/// SQLite or operating-system error.
struct Failed {
    message: String,
    cause: Arc<dyn std::error::Error + Send + Sync>,
}

impl From<AuditError> for Failed {
    fn from(e: AuditError) -> Self {
        let message = e.to_string();
        let cause: Arc<dyn std::error::Error + Send + Sync> = match e {
            // The backend's message is already in `message`: the chain goes on with its cause.
            AuditError::Backend(BackendError {
                source: Some(source),
                ..
            }) => Arc::from(source),
            other => Arc::new(other),
        };
        Failed { message, cause }
    }
}

impl Failed {
    fn store_error(&self) -> StoreError {
        StoreError::Backend {
            message: format!("audit store: {}; nothing was appended", self.message),
            source: Some(Box::new(SharedCause(self.cause.clone()))),
        }
    }
}

/// One cause given to several errors: displays as the cause, with the cause's own source.
#[derive(Debug)]
pub(crate) struct SharedCause(pub(crate) Arc<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for SharedCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
