//! What engine calls return: [`Progress`] after advancing a release, [`HeldElsewhere`] for
//! stages another replica works on, and [`EngineError`] when a call fails.

use chrono::{DateTime, Utc};

use crate::machine::{Refusal, ReleaseState, StageStatus, Waiting};
use crate::name::ReplicaId;
use crate::name::{InvalidName, StageName};
use crate::release::ReleaseId;
use crate::store::{StoreError, StreamId};

/// Why an engine call failed.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No release with this id is registered.
    #[error("release {0} is not registered")]
    UnknownRelease(ReleaseId),
    /// The state machine refused the command; nothing was appended.
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    /// The store failed or another writer got there first; nothing was appended.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A name given to a convenience method is invalid.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// The stored stream belongs to a different release.
    #[error("stream {stream} holds release {found}, not {expected}")]
    WrongStream {
        stream: StreamId,
        /// Release expected.
        expected: ReleaseId,
        /// Release found.
        found: String,
    },
    /// Replica mode was asked of an engine whose options or store cannot support it.
    #[error("cannot run as replica: {0}")]
    InvalidReplica(String),
    /// `advance` took more steps than any pipeline should need (a bug, reported not looped).
    #[error("advance performed {0} actions without settling; stopping")]
    Runaway(usize),
}

/// What `advance` achieved and what the release now waits for.
///
/// Read through its accessors; only the engine builds one, so a field can be added without
/// breaking a host, and a host cannot pass off a progress the engine did not make:
///
/// ```compile_fail
/// fn more_than_happened(p: promotion_core::Progress) -> promotion_core::Progress {
///     promotion_core::Progress { appended: 99, ..p }
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Progress {
    pub(crate) state: ReleaseState,
    pub(crate) waiting: Vec<Waiting>,
    pub(crate) appended: usize,
    pub(crate) held_elsewhere: Vec<HeldElsewhere>,
}

/// A stage whose lease another replica holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldElsewhere {
    pub(crate) stage: StageName,
    pub(crate) holder: ReplicaId,
    pub(crate) until: DateTime<Utc>,
}

impl HeldElsewhere {
    /// The stage with work to do.
    pub fn stage(&self) -> &StageName {
        &self.stage
    }
    /// The replica holding the stage's lease.
    pub fn holder(&self) -> &ReplicaId {
        &self.holder
    }
    /// When the lease lapses unless its holder renews it.
    pub fn until(&self) -> DateTime<Utc> {
        self.until
    }
}

impl Progress {
    /// The release's state after advancing.
    pub fn state(&self) -> &ReleaseState {
        &self.state
    }
    /// The release's state after advancing, without a copy.
    pub fn into_state(self) -> ReleaseState {
        self.state
    }
    /// What the release waits for; empty when every reachable stage is finished.
    pub fn waiting(&self) -> &[Waiting] {
        &self.waiting
    }
    /// How many events this call appended.
    pub fn appended(&self) -> usize {
        self.appended
    }
    /// Stages with work to do whose lease another replica holds (replica mode only): that
    /// replica is doing the work, or will be until its lease lapses.
    pub fn held_elsewhere(&self) -> &[HeldElsewhere] {
        &self.held_elsewhere
    }
    /// The earliest time the release waits for, if it waits for a time (including the expiry
    /// of a lease held elsewhere).
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        self.waiting
            .iter()
            .filter_map(|w| match w {
                Waiting::Until { at, .. } => Some(*at),
                _ => None,
            })
            .chain(self.held_elsewhere.iter().map(|h| h.until))
            .min()
    }
    /// Whether it waits for a person (approval, judgement, manual start).
    pub fn needs_human(&self) -> bool {
        self.waiting
            .iter()
            .any(|w| !matches!(w, Waiting::Until { .. }))
    }
    /// Status of `stage`.
    pub fn status(&self, stage: &str) -> StageStatus {
        self.state.status(stage)
    }
}
