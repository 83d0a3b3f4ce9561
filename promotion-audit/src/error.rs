//! Errors of the audit log.

use promotion_core::StoreError;

use crate::checkpoint::CheckpointError;
use crate::merkle::{ProofError, StorageFailure};

/// A storage backend failed (I/O, SQL, a lost connection).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    /// What happened, with where.
    pub message: String,
    /// The underlying error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// Set when the stored data is malformed in a way only tampering (or a damaged disk)
    /// explains, such as a block whose parts do not fit together: the error then converts to
    /// [`AuditError::Tampered`] naming the entry.
    pub tampered: Option<Box<Tampered>>,
}

impl BackendError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        BackendError {
            message: message.into(),
            source: None,
            tampered: None,
        }
    }
    /// An error with a message and a cause.
    pub fn with(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        BackendError {
            message: message.into(),
            source: Some(Box::new(source)),
            tampered: None,
        }
    }
    /// Stored data that cannot be what the store wrote, at entry `seq`.
    pub fn tampered(seq: u64, problem: impl Into<String>, found: impl Into<String>) -> Self {
        let t = Tampered {
            seq,
            problem: problem.into(),
            expected: "data as the store writes it".into(),
            found: found.into(),
            rewritten_before: None,
        };
        BackendError {
            message: t.to_string(),
            source: None,
            tampered: Some(Box::new(t)),
        }
    }
}

/// Where a verification found the log not to match what was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {seq}: {problem} (expected {expected}, found {found})")]
pub struct Tampered {
    /// The first entry (0-based sequence number) that does not match.
    pub seq: u64,
    /// What does not match, in words.
    pub problem: String,
    /// What verification expected.
    pub expected: String,
    /// What the stored bytes say.
    pub found: String,
    /// Set when only the signed checkpoints show the damage (every entry, chain link and
    /// Merkle node agrees with its neighbours, as after a rewrite that re-chained and re-hashed
    /// everything after it): the size of the first checkpoint that does not verify. The first
    /// rewritten entry is then one of entries [`seq`](Self::seq) (the size of the last
    /// checkpoint that verifies) up to, not including, this; see [`within`](Self::within).
    pub rewritten_before: Option<u64>,
}

impl Tampered {
    /// The entries among which the first rewritten one lies, when only the signed checkpoints
    /// narrow it down ([`rewritten_before`](Self::rewritten_before)); with one entry in it,
    /// that entry is the rewritten one.
    pub fn within(&self) -> Option<std::ops::Range<u64>> {
        self.rewritten_before.map(|end| self.seq..end)
    }
}

/// Why an audit-log operation failed.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The storage backend failed: the message says what was done where and the cause in
    /// words; [`source`](std::error::Error::source) is the driver's or the system's error.
    #[error(transparent)]
    Backend(BackendError),
    /// The log does not verify: it was edited, truncated, reordered or corrupted.
    #[error("the audit log does not verify: {0}")]
    Tampered(Tampered),
    /// The file is not a promotion audit log (another application's database, or not a
    /// database at all).
    #[error("{path} is not a promotion audit log: {problem}")]
    ForeignFile {
        path: String,
        /// What was found.
        problem: String,
    },
    /// A checkpoint is malformed, unsigned by the trusted key, or badly signed.
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointError),
    /// A checkpoint stored with the log does not verify: it is malformed, or not signed (or
    /// badly signed) by the trusted key.
    #[error("the audit log does not verify: its stored checkpoint at tree size {size} does not verify: {error}")]
    StoredCheckpoint {
        /// The tree size the checkpoint's row is stored under.
        size: u64,
        /// Why it does not verify.
        error: CheckpointError,
    },
    /// A trusted key was given, but the log holds entries and no checkpoint at all: nothing
    /// signed vouches for any entry (the checkpoints were deleted, or the log was never signed).
    #[error("the audit log does not verify: a trusted key was given but the log holds no signed checkpoint ({entries} entries, none covered by a signature)")]
    NoCheckpoint {
        /// Entries in the log.
        entries: u64,
    },
    /// A trusted key was given, but the latest checkpoint covers fewer entries than the log
    /// holds: the entries after it are vouched for by no signature.
    #[error("the audit log does not verify: entries {signed} to {last} are covered by no signed checkpoint (the latest is at tree size {signed})", last = entries.saturating_sub(1))]
    UnsignedTail {
        /// The tree size of the latest checkpoint.
        signed: u64,
        /// Entries in the log.
        entries: u64,
    },
    /// The log holds fewer entries than a trusted checkpoint saved earlier signs: its newest
    /// entries (and checkpoints) were deleted.
    #[error("the audit log does not verify: it holds {entries} entries, but a trusted checkpoint saved earlier signs {trusted} (the log was rolled back)")]
    RolledBack {
        /// The tree size of the trusted checkpoint.
        trusted: u64,
        /// Entries in the log.
        entries: u64,
    },
    /// The tree of the log's first `size` entries is not the one a trusted checkpoint saved
    /// earlier signs: the log is a fork of (or a rewrite of) the one that checkpoint saw.
    #[error("the audit log does not verify: the tree of its first {size} entries differs from the trusted checkpoint saved earlier at that size (a fork or a rewrite; expected root {expected}, found {found})")]
    Forked {
        /// The tree size of the trusted checkpoint.
        size: u64,
        /// The trusted root, hex.
        expected: String,
        /// The log's root at that size, hex.
        found: String,
    },
    /// The trusted checkpoint given to verify is malformed or not signed by the trusted key.
    #[error("the trusted checkpoint does not verify: {0}")]
    TrustedCheckpoint(CheckpointError),
    /// An outside anchor refuses the log for another reason, in words (another log's
    /// checkpoint, too few witness cosignatures).
    #[error("the audit log does not verify: {0}")]
    Anchor(String),
    /// A proof could not be made or does not verify. Shown as the [`ProofError`] itself, whose
    /// [`source`](std::error::Error::source) (the store's error, when the node store failed)
    /// it passes on.
    #[error(transparent)]
    Proof(ProofError),
    /// A request was out of range or malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// An import file is malformed.
    #[error("line {line}: {problem}")]
    Import {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        problem: String,
    },
    /// The store's worker thread stopped (the store was dropped or a worker panicked).
    #[error("the audit store's worker has stopped")]
    Stopped,
}

// The variants that carry another error show it in their own message, so they do not also
// name it as their `source()`: a report that walks the chain of causes
// (`promotion_core::report_chain`) would print it twice.
impl From<Tampered> for AuditError {
    fn from(t: Tampered) -> Self {
        AuditError::Tampered(t)
    }
}

impl From<CheckpointError> for AuditError {
    fn from(e: CheckpointError) -> Self {
        AuditError::Checkpoint(e)
    }
}

impl From<ProofError> for AuditError {
    fn from(e: ProofError) -> Self {
        AuditError::Proof(e)
    }
}

/// The backend's message (which names the cause in words) and its cause, kept whole: the
/// chain of sources goes on from the backend's own error, not from a copy of its text.
impl From<BackendError> for StorageFailure {
    fn from(e: BackendError) -> Self {
        StorageFailure {
            message: e.message,
            cause: e.source.map(std::sync::Arc::from),
        }
    }
}

impl From<BackendError> for AuditError {
    fn from(e: BackendError) -> Self {
        match e.tampered {
            Some(t) => AuditError::Tampered(*t),
            None => AuditError::Backend(e),
        }
    }
}

impl From<AuditError> for StoreError {
    fn from(e: AuditError) -> Self {
        StoreError::Backend {
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

/// What went wrong underneath a failure, for a host that acts on the kind (free space, retry
/// later, page someone) rather than on the words of the message. [`cause_of`] finds it in any
/// error of this crate, or of a store built on it, by walking the chain of sources down to
/// SQLite's, PostgreSQL's or the operating system's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// No space left on the log's volume (SQLite), or on the server's (PostgreSQL).
    DiskFull,
    /// A read-only file, mount, or server (a standby).
    ReadOnly,
    /// The file, directory or database object may not be used by this user.
    PermissionDenied,
    /// Another connection held the database past the busy timeout (SQLite).
    Locked,
    /// The stored bytes are damaged.
    Corrupted,
    /// A lock was waited for past `lock_timeout` (PostgreSQL).
    LockTimeout,
    /// A statement ran past `statement_timeout`, or was cancelled (PostgreSQL).
    StatementTimeout,
    /// The session sat inside a transaction past `idle_in_transaction_session_timeout` and
    /// the server closed it (PostgreSQL).
    IdleInTransactionTimeout,
    /// A concurrent transaction conflicted, or a deadlock was broken: retrying may succeed.
    SerializationFailure,
    /// Nothing listens where the server should be.
    ConnectionRefused,
    /// The connection broke or was closed by the server.
    ConnectionLost,
}

/// The [`Cause`] of `error`: the first error in its chain of sources (itself included) whose
/// kind is known.
pub fn cause_of(error: &(dyn std::error::Error + 'static)) -> Option<Cause> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(cause) = cause_here(e) {
            return Some(cause);
        }
        next = e.source();
    }
    None
}

fn cause_here(e: &(dyn std::error::Error + 'static)) -> Option<Cause> {
    // A cause shared by the appends of a failed batch shows as the cause's text and goes on
    // with the cause's own source: the cause itself is behind it.
    if let Some(shared) = e.downcast_ref::<crate::store::writer::SharedCause>() {
        return cause_of(&*shared.0);
    }
    #[cfg(feature = "sqlite")]
    if let Some(e) = e.downcast_ref::<rusqlite::Error>() {
        return crate::sqlite::cause_kind(e);
    }
    #[cfg(feature = "postgres")]
    if let Some(found) = crate::postgres::cause_kind(e) {
        return Some(found);
    }
    let io = e.downcast_ref::<std::io::Error>()?;
    use std::io::ErrorKind as K;
    Some(match io.kind() {
        K::StorageFull => Cause::DiskFull,
        K::ReadOnlyFilesystem => Cause::ReadOnly,
        K::PermissionDenied => Cause::PermissionDenied,
        K::ConnectionRefused => Cause::ConnectionRefused,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Cause::ConnectionLost,
        _ => return None,
    })
}
