//! The WAL's bound: how large the write-ahead log may grow before a commit checkpoints it and
//! the file is cut back. It is the smaller of a configured most ([`WAL_KEEP_BYTES`] unless
//! given to [`SqliteBackend::open_pair_with_wal_limit`]) and a [`WAL_FREE_SHARE`]-th of the
//! free space of the log's volume, looked at when the log is opened, every [`ADAPT_EVERY`]
//! commits, and after a failed write; never below [`WAL_MIN_BYTES`] (or the configured most,
//! if that is smaller). On a small volume the WAL so leaves room for the log itself instead of
//! taking the last free bytes.
//!
//! After a write fails on a volume with less than [`WAL_MIN_BYTES`] free, the writer gives the
//! WAL's space back (a `TRUNCATE` checkpoint copies what is committed into the database file and
//! empties the WAL), so that the next append, once some space is freed, finds it.

use std::path::Path;

use super::{SqliteBackend, WAL_KEEP_BYTES};
use crate::error::BackendError;

/// The WAL takes at most one n-th of the free space of the log's volume.
pub const WAL_FREE_SHARE: u64 = 8;
/// The WAL's bound is never lower than this (a smaller one would checkpoint at nearly every
/// commit), unless the configured most is.
pub const WAL_MIN_BYTES: u64 = 256 * 1024;
/// Commits between two looks at the free space.
pub const ADAPT_EVERY: u32 = 16;

/// The writer's WAL bound and when to look at it again.
#[derive(Debug)]
pub(super) struct Wal {
    /// The configured most, in bytes.
    pub(super) max: u64,
    /// The bound in force, in bytes (0 before the first look).
    pub(super) bound: u64,
    /// Commits since the last look.
    pub(super) commits: u32,
}

impl Wal {
    pub(super) fn new(max: u64) -> Wal {
        Wal {
            max,
            bound: 0,
            commits: 0,
        }
    }
}

impl Default for Wal {
    fn default() -> Wal {
        Wal::new(WAL_KEEP_BYTES)
    }
}

/// The WAL's bound in bytes for a configured most of `max` and `free` bytes free on the
/// volume (`None` when the file system does not say).
pub fn wal_bound(max: u64, free: Option<u64>) -> u64 {
    let share = free.map_or(max, |f| f / WAL_FREE_SHARE);
    max.min(share).max(WAL_MIN_BYTES.min(max))
}

/// Bytes an unprivileged writer may still use on the volume holding `path`.
pub fn free_space(path: &Path) -> Option<u64> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

impl SqliteBackend {
    /// Sets the WAL's bound from the free space now.
    pub(super) fn adapt_wal(&mut self) -> Result<(), BackendError> {
        self.wal.commits = 0;
        let bound = wal_bound(self.wal.max, free_space(&self.path));
        if bound == self.wal.bound {
            return Ok(());
        }
        let page: i64 = self
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(self.err("reading the page size"))?;
        let pages = bound / u64::try_from(page).unwrap_or(4096).max(512);
        self.conn
            .execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = {}; PRAGMA journal_size_limit = {};",
                pages.clamp(1, i32::MAX as u64),
                bound.min(i64::MAX as u64)
            ))
            .map_err(self.err("setting the WAL's bound"))?;
        tracing::debug!(path = %self.path.display(), bound, "WAL bound set");
        self.wal.bound = bound;
        Ok(())
    }

    /// After a commit: every [`ADAPT_EVERY`] commits, looks at the free space again.
    pub(super) fn after_commit(&mut self) {
        self.wal.commits = self.wal.commits.saturating_add(1);
        if self.wal.commits >= ADAPT_EVERY {
            if let Err(e) = self.adapt_wal() {
                tracing::warn!(path = %self.path.display(), error = %e, "could not set the WAL's bound");
            }
        }
    }

    /// After a write transaction was rolled back: on a nearly full volume, gives the WAL's
    /// space back, and sets the bound again.
    pub(super) fn after_rollback(&mut self) {
        if free_space(&self.path).is_some_and(|f| f < WAL_MIN_BYTES) {
            match self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            {
                Ok(()) => {
                    tracing::warn!(path = %self.path.display(), "the volume is full: the WAL was emptied into the log to give its space back")
                }
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "the volume is full and the WAL could not be emptied")
                }
            }
        }
        if let Err(e) = self.adapt_wal() {
            tracing::warn!(path = %self.path.display(), error = %e, "could not set the WAL's bound");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{wal_bound, WAL_FREE_SHARE, WAL_MIN_BYTES};
    use crate::sqlite::WAL_KEEP_BYTES;

    #[test]
    fn the_bound_is_a_share_of_the_free_space_within_the_configured_most() {
        let gib = 1 << 30;
        // Plenty of space: the configured most.
        assert_eq!(wal_bound(WAL_KEEP_BYTES, Some(10 * gib)), WAL_KEEP_BYTES);
        assert_eq!(wal_bound(WAL_KEEP_BYTES, None), WAL_KEEP_BYTES);
        // A small volume: a share of what is free.
        assert_eq!(
            wal_bound(WAL_KEEP_BYTES, Some(8 << 20)),
            (8 << 20) / WAL_FREE_SHARE
        );
        // Nearly full: the floor, never zero (which would mean no bound at all).
        assert_eq!(wal_bound(WAL_KEEP_BYTES, Some(4096)), WAL_MIN_BYTES);
        assert_eq!(wal_bound(WAL_KEEP_BYTES, Some(0)), WAL_MIN_BYTES);
        // A configured most below the floor is kept.
        assert_eq!(wal_bound(64 * 1024, Some(10 * gib)), 64 * 1024);
    }
}
