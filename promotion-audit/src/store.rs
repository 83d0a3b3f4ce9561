//! [`AuditStore`]: the tamper-evident `EventStore` over any [`Backend`].

use std::collections::HashMap;
use std::fmt;
#[cfg(feature = "sqlite")]
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use async_trait::async_trait;
use futures::channel::oneshot;
use promotion_core::lease::{Acquired, Lease, LeaseKey, LeaseRow, LeaseStore, ReplicaId};
use promotion_core::store::check_expected;
use promotion_core::{
    Clock, Event, EventStore, ExpectedVersion, Recorded, StoreError, StreamId, SystemClock,
};

use crate::backend::{Backend, Head};
use crate::checkpoint::{Checkpoint, CheckpointSigner, CheckpointVerifier};
use crate::entry::{decode, encode_encoded, EncodedEvent, StoredEntry};
use crate::error::{AuditError, BackendError};
use crate::memory::MemoryBackend;
use crate::merkle::{self, Frontier, Hash, NodeSource, ProofError};
#[cfg(feature = "postgres")]
use crate::postgres::PostgresBackend;
#[cfg(feature = "sqlite")]
use crate::sqlite::SqliteBackend;
use crate::verify::{self, VerifyReport};

/// How an [`AuditStore`] frames, signs and batches.
#[derive(Clone)]
pub struct AuditOptions {
    /// The checkpoint origin line (`promotion.example/shop-api`): names the log.
    pub origin: String,
    /// Signs a checkpoint with every committed batch. Without one the log is hash-chained and
    /// Merkle-hashed but a truncated tail cannot be detected.
    pub signer: Option<Arc<CheckpointSigner>>,
    /// Time recorded in each entry.
    pub clock: Arc<dyn Clock>,
    /// Most appends committed in one transaction (group commit).
    pub max_batch: usize,
    /// How long the writer may wait for more appends when fewer are queued than in its last
    /// batch: a little latency buys fuller batches (fewer syncs) under concurrency. A lone
    /// appender never waits.
    pub batch_fill_wait: std::time::Duration,
}

impl fmt::Debug for AuditOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditOptions")
            .field("origin", &self.origin)
            .field("signer", &self.signer.as_ref().map(|s| s.name().to_owned()))
            .field("max_batch", &self.max_batch)
            .finish()
    }
}

impl AuditOptions {
    /// Options for the log named `origin`, unsigned, on the system clock.
    pub fn new(origin: impl Into<String>) -> Self {
        AuditOptions {
            origin: origin.into(),
            signer: None,
            clock: Arc::new(SystemClock),
            max_batch: 1024,
            batch_fill_wait: std::time::Duration::from_micros(200),
        }
    }
    /// Signs checkpoints with `signer`.
    pub fn signer(mut self, signer: CheckpointSigner) -> Self {
        self.signer = Some(Arc::new(signer));
        self
    }
    /// Records entry times from `clock`.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

type ReadJob = Box<dyn FnOnce(&mut dyn Backend) + Send>;

struct AppendJob {
    stream: StreamId,
    expected: ExpectedVersion,
    /// Encoded by the appending task, so that the writer only frames them.
    events: Vec<EncodedEvent>,
    fence: Option<Lease>,
    reply: Reply,
}

/// A lease operation, run by the writer between batches in a transaction of its own.
enum LeaseJob {
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

enum WriterJob {
    Append(AppendJob),
    Lease(LeaseJob),
}

/// A tamper-evident event store: a hash chain of entries that are also the leaves of an
/// RFC 6962 Merkle tree, with signed checkpoints, over a pluggable [`Backend`].
///
/// Appends from many tasks are queued to one writer thread that commits everything queued in
/// one durable transaction (group commit) and signs one checkpoint per transaction. Reads, proofs
/// and verification run on a reader thread. Both threads stop when the store is dropped. The
/// store works under any async runtime.
#[derive(Clone)]
pub struct AuditStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: mpsc::Sender<WriterJob>,
    reader: mpsc::Sender<ReadJob>,
    verifier: Option<CheckpointVerifier>,
    origin: String,
    description: String,
}

impl fmt::Debug for AuditStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditStore")
            .field("origin", &self.inner.origin)
            .field("backend", &self.inner.description)
            .finish()
    }
}

impl AuditStore {
    /// A log in memory (tests, examples).
    pub fn memory(options: AuditOptions) -> Result<Self, AuditError> {
        Self::memory_on(MemoryBackend::new(), options)
    }

    /// A log over an existing in-memory backend (reopening it, as a file would be).
    pub fn memory_on(backend: MemoryBackend, options: AuditOptions) -> Result<Self, AuditError> {
        Self::with_backend(
            Box::new(backend.clone()),
            Box::new(backend),
            "memory".into(),
            options,
        )
    }

    /// The embedded default: a SQLite file at `path`, created if absent.
    #[cfg(feature = "sqlite")]
    pub fn open_sqlite(path: impl AsRef<Path>, options: AuditOptions) -> Result<Self, AuditError> {
        let path = path.as_ref();
        let (w, r) = SqliteBackend::open_pair(path)?;
        Self::with_backend(
            Box::new(w),
            Box::new(r),
            format!("sqlite:{}", path.display()),
            options,
        )
    }

    /// A log in PostgreSQL: the database at `url` (`postgres://user:password@host/db`), in
    /// schema [`DEFAULT_SCHEMA`](crate::postgres::DEFAULT_SCHEMA), migrated on open and shared
    /// safely by every process that opens it. For another schema, open
    /// [`PostgresBackend::open_pair_in`] and pass the pair to [`with_backend`](Self::with_backend).
    #[cfg(feature = "postgres")]
    pub fn open_postgres(url: &str, options: AuditOptions) -> Result<Self, AuditError> {
        let (w, r) = PostgresBackend::open_pair(url)?;
        let description = format!("postgres:{}", w.describe());
        Self::with_backend(Box::new(w), Box::new(r), description, options)
    }

    /// An existing SQLite log at `path`; never creates one (for verifiers and auditors).
    #[cfg(feature = "sqlite")]
    pub fn open_sqlite_existing(
        path: impl AsRef<Path>,
        options: AuditOptions,
    ) -> Result<Self, AuditError> {
        let path = path.as_ref();
        let (w, r) = SqliteBackend::open_existing_pair(path)?;
        Self::with_backend(
            Box::new(w),
            Box::new(r),
            format!("sqlite:{}", path.display()),
            options,
        )
    }

    /// A log over any backend: `writer` and `reader` are two handles on the same storage.
    pub fn with_backend(
        writer: Box<dyn Backend>,
        reader: Box<dyn Backend>,
        description: String,
        options: AuditOptions,
    ) -> Result<Self, AuditError> {
        if options.origin.is_empty() || options.origin.contains('\n') {
            return Err(AuditError::InvalidRequest(
                "the checkpoint origin must be one non-empty line".into(),
            ));
        }
        let verifier = options.signer.as_ref().map(|s| s.verifier());
        let (wtx, wrx) = mpsc::channel::<WriterJob>();
        let (rtx, rrx) = mpsc::channel::<ReadJob>();
        let writer_state = Writer {
            backend: writer,
            options: options.clone(),
            cache: None,
            versions: HashMap::new(),
        };
        thread::Builder::new()
            .name("promotion-audit-writer".into())
            .spawn(move || writer_state.run(wrx))
            .map_err(|e| BackendError::with("cannot start the audit writer thread", e))?;
        let mut reader = reader;
        thread::Builder::new()
            .name("promotion-audit-reader".into())
            .spawn(move || {
                // Between reads (and every so often during a stream of them) the reader does
                // the backend's housekeeping, so that the writer's commits need not: for SQLite,
                // checkpointing the WAL into the database file.
                let mut since = 0u32;
                loop {
                    match rrx.recv_timeout(MAINTENANCE_IDLE) {
                        Ok(job) => {
                            job(reader.as_mut());
                            since += 1;
                            if since >= MAINTENANCE_EVERY_JOBS {
                                reader.maintain();
                                since = 0;
                            }
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            reader.maintain();
                            since = 0;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .map_err(|e| BackendError::with("cannot start the audit reader thread", e))?;
        Ok(AuditStore {
            inner: Arc::new(Inner {
                writer: wtx,
                reader: rtx,
                verifier,
                origin: options.origin,
                description,
            }),
        })
    }

    /// The checkpoint origin.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The key that verifies this store's checkpoints, when it signs them.
    pub fn verifier(&self) -> Option<&CheckpointVerifier> {
        self.inner.verifier.as_ref()
    }

    async fn read<R, F>(&self, f: F) -> Result<R, AuditError>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Backend) -> Result<R, AuditError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |b| {
            let _ = tx.send(f(b));
        });
        self.inner
            .reader
            .send(job)
            .map_err(|_| AuditError::Stopped)?;
        rx.await.map_err(|_| AuditError::Stopped)?
    }

    /// Number of entries in the log.
    pub async fn size(&self) -> Result<u64, AuditError> {
        self.read(|b| Ok(b.size()?)).await
    }

    /// Entry `seq` as stored.
    pub async fn entry(&self, seq: u64) -> Result<StoredEntry, AuditError> {
        self.read(move |b| {
            b.read_range(seq, 1)?
                .into_iter()
                .next()
                .filter(|e| e.seq == seq)
                .ok_or_else(|| AuditError::InvalidRequest(format!("the log has no entry {seq}")))
        })
        .await
    }

    /// The Merkle root of the first `size` entries.
    pub async fn root(&self, size: u64) -> Result<Hash, AuditError> {
        self.read(move |b| {
            check_size(b, size)?;
            Ok(merkle::root(&Nodes(b), size)?)
        })
        .await
    }

    /// Proof that entry `seq` is in the tree of `size` entries.
    pub async fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        self.read(move |b| {
            check_size(b, size)?;
            Ok(merkle::inclusion_proof(&Nodes(b), seq, size)?)
        })
        .await
    }

    /// Proof that the tree of `old_size` entries is a prefix of the tree of `new_size`.
    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, AuditError> {
        self.read(move |b| {
            check_size(b, new_size)?;
            Ok(merkle::consistency_proof(&Nodes(b), old_size, new_size)?)
        })
        .await
    }

    /// The latest signed checkpoint note, if any.
    pub async fn latest_checkpoint(&self) -> Result<Option<String>, AuditError> {
        self.read(|b| Ok(b.latest_checkpoint()?.map(|(_, n)| n)))
            .await
    }

    /// Re-reads every stored byte and recomputes every hash, node and root; checks the latest
    /// checkpoint's signature with `trusted` (or, when `None`, with this store's own key if it
    /// signs). Reports the first entry that does not match.
    pub async fn verify(
        &self,
        trusted: Option<&CheckpointVerifier>,
    ) -> Result<VerifyReport, AuditError> {
        let verifier = trusted.or(self.inner.verifier.as_ref()).cloned();
        self.read(move |b| verify::verify(b, verifier.as_ref()))
            .await
    }

    /// Checks that `checkpoint` (a signed note an auditor kept from earlier) is consistent with
    /// this log: its root must be the root of this log's first `size` entries.
    pub async fn verify_against(
        &self,
        note: &str,
        trusted: &CheckpointVerifier,
    ) -> Result<Checkpoint, AuditError> {
        let cp = trusted.verify(note)?;
        let root = self.root(cp.size).await?;
        if root != cp.root {
            return Err(AuditError::Tampered(crate::error::Tampered {
                seq: cp.size.saturating_sub(1),
                problem: "the log's root at the checkpoint's size differs from the signed root"
                    .into(),
                expected: hex::encode(cp.root),
                found: hex::encode(root),
            }));
        }
        Ok(cp)
    }

    /// Runs `f` on the reader thread's backend handle (exports, custom queries).
    pub async fn with_reader<R, F>(&self, f: F) -> Result<R, AuditError>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Backend) -> Result<R, AuditError> + Send + 'static,
    {
        self.read(f).await
    }
}

fn check_size(b: &dyn Backend, size: u64) -> Result<(), AuditError> {
    let have = b.size()?;
    if size > have {
        return Err(AuditError::InvalidRequest(format!(
            "the log has {have} entries; no tree of size {size}"
        )));
    }
    Ok(())
}

/// A backend's Merkle nodes as a [`NodeSource`].
pub struct Nodes<'a>(pub &'a dyn Backend);

impl NodeSource for Nodes<'_> {
    fn node(&self, level: u8, index: u64) -> Result<Hash, ProofError> {
        match self.0.node(level, index) {
            Ok(Some(h)) => Ok(h),
            Ok(None) => Err(ProofError::MissingNode { level, index }),
            Err(e) => Err(ProofError::Storage(e.to_string())),
        }
    }
}

struct Writer {
    backend: Box<dyn Backend>,
    options: AuditOptions,
    /// The frontier after the last commit, with the head it belongs to.
    cache: Option<(Head, Frontier)>,
    /// Stream versions as of `cache`'s head: valid only while the head is still ours (no other
    /// writer, of this process or another, has committed since).
    versions: HashMap<StreamId, u64>,
}

/// The reader does the backend's housekeeping after this long without a read…
const MAINTENANCE_IDLE: std::time::Duration = std::time::Duration::from_millis(100);
/// …or after this many reads in a row.
const MAINTENANCE_EVERY_JOBS: u32 = 64;

/// Most stream versions the writer remembers; past it, it forgets them all and asks again.
const MAX_CACHED_VERSIONS: usize = 100_000;

impl Writer {
    fn run(mut self, jobs: mpsc::Receiver<WriterJob>) {
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
                            answer.ok_or_else(|| backend_error("the lease was not read"))
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
                let msg = e.to_string();
                for job in batch {
                    let _ = job.reply.send(Err(backend_error(&msg)));
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
                    let msg = e.to_string();
                    tracing::error!(error = %msg, "audit commit failed; nothing was appended");
                    for (reply, _) in accepted {
                        let _ = reply.send(Err(backend_error(&msg)));
                    }
                }
            },
            Err((e, replies)) => {
                self.backend.rollback();
                self.cache = None;
                self.versions.clear();
                let msg = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(backend_error(&msg)));
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
            for (i, event) in job.events.iter().enumerate() {
                let version = current + 1 + i as u64;
                let entry = encode_encoded(seq, &job.stream, version, at, &prev, event);
                prev = entry.hash;
                nodes.extend(frontier.push(entry.hash));
                entries.push(entry);
                seq += 1;
            }
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

type Reply = oneshot::Sender<Result<u64, StoreError>>;
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

fn backend_error(msg: &str) -> StoreError {
    StoreError::Backend {
        message: format!("audit store: {msg}; nothing was appended"),
        source: None,
    }
}

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
                        "event {} for {stream} could not be serialised: {e}",
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
/// transaction. Expiry is judged by the store's clock ([`AuditOptions::clock`]), except on
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
