//! [`AuditStore`]: the tamper-evident `EventStore` over any [`Backend`].
//!
//! This file opens a store and answers what is read from it (entries, roots, proofs,
//! verification) on the reader thread; `writer` is the single writer thread that frames,
//! hashes, signs and commits appends in groups; `event_store` is how appends and leases reach
//! it, as `promotion_core`'s `EventStore` and `LeaseStore`.

use std::fmt;
#[cfg(feature = "sqlite")]
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use futures::channel::oneshot;

use promotion_core::{Clock, SystemClock};

use crate::backend::Backend;
use crate::checkpoint::{Checkpoint, CheckpointSigner, CheckpointVerifier};
use crate::entry::StoredEntry;
use crate::error::{AuditError, BackendError};
use crate::memory::MemoryBackend;
use crate::merkle::{self, Hash, NodeSource, ProofError};
#[cfg(feature = "postgres")]
use crate::postgres::PostgresBackend;
#[cfg(feature = "sqlite")]
use crate::sqlite::SqliteBackend;
use crate::verify::{self, VerifyReport};

use writer::{Writer, WriterJob};

mod event_store;
pub(crate) mod writer;

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
        let writer_state = Writer::new(writer, options.clone());
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

    /// [`AuditStore::verify`], and the log must extend the outside `anchors` (a trusted
    /// checkpoint saved earlier): see [`verify::verify_anchored`].
    pub async fn verify_anchored(
        &self,
        trusted: Option<&CheckpointVerifier>,
        anchors: verify::Anchors,
    ) -> Result<VerifyReport, AuditError> {
        let verifier = trusted.or(self.inner.verifier.as_ref()).cloned();
        self.read(move |b| verify::verify_anchored(b, verifier.as_ref(), &anchors))
            .await
    }

    /// Checks that `note` (a signed checkpoint an auditor kept from earlier) is one this log
    /// extends, with the whole log verified against `trusted` on the way: the same as
    /// [`AuditStore::verify_anchored`] with only that anchor. A log rolled back below it is
    /// [`AuditError::RolledBack`], another tree at its size [`AuditError::Forked`].
    pub async fn verify_against(
        &self,
        note: &str,
        trusted: &CheckpointVerifier,
    ) -> Result<Checkpoint, AuditError> {
        let anchors = verify::Anchors {
            trusted_checkpoint: Some(note.to_owned()),
            ..verify::Anchors::default()
        };
        self.verify_anchored(Some(trusted), anchors)
            .await?
            .anchor
            .ok_or_else(|| AuditError::InvalidRequest("no trusted checkpoint was checked".into()))
    }

    /// Adds the witness cosignatures `cosigned` carries to the stored checkpoint of the same
    /// tree size, so that [`verify_anchored`](Self::verify_anchored) can count them with no
    /// file passed: see [`cosign::store_cosignatures`](crate::cosign::store_cosignatures).
    /// Returns how many cosignature lines were added.
    pub async fn store_cosignatures(&self, cosigned: &str) -> Result<usize, AuditError> {
        let (reply, rx) = futures::channel::oneshot::channel();
        let cosigned = cosigned.to_owned();
        self.inner
            .writer
            .send(writer::WriterJob::Lease(writer::LeaseJob::Run(Box::new(
                move |b: &mut dyn Backend| {
                    let _ = reply.send(crate::cosign::store_cosignatures(b, &cosigned));
                },
            ))))
            .map_err(|_| AuditError::Stopped)?;
        rx.await.map_err(|_| AuditError::Stopped)?
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
            Err(e) => Err(ProofError::Storage(e.into())),
        }
    }
}

/// The reader does the backend's housekeeping after this long without a read…
const MAINTENANCE_IDLE: std::time::Duration = std::time::Duration::from_millis(100);
/// …or after this many reads in a row.
const MAINTENANCE_EVERY_JOBS: u32 = 64;
