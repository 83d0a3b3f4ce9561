//! The in-memory backend: for tests and examples. Nothing survives the process, but a
//! [`MemoryBackend`] handle can be cloned to reopen the same log, as a file would be reopened.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use promotion_core::backend::LeaseRow;
use promotion_core::StreamId;

use crate::backend::{Backend, Head, LeaseChange};
use crate::entry::{StoredEntry, GENESIS_PREV};
use crate::error::BackendError;
use crate::merkle::Hash;

/// The rows of an in-memory log.
#[derive(Debug, Default, Clone)]
pub struct MemoryRows {
    /// Entries by sequence number (a map, so that tampering can leave gaps).
    pub entries: BTreeMap<u64, StoredEntry>,
    /// Merkle nodes by (level, index).
    pub nodes: BTreeMap<(u8, u64), Hash>,
    /// Signed checkpoint notes by tree size.
    pub checkpoints: BTreeMap<u64, String>,
    /// Leases by key.
    pub leases: BTreeMap<String, LeaseRow>,
}

/// A handle on an in-memory log. Clones share the rows.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    rows: Arc<Mutex<MemoryRows>>,
    pending: Option<Pending>,
}

#[derive(Debug, Clone)]
struct Pending {
    head: Head,
    entries: Vec<StoredEntry>,
    nodes: Vec<(u8, u64, Hash)>,
    checkpoints: Vec<(u64, String)>,
}

impl MemoryBackend {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn rows(&self) -> MutexGuard<'_, MemoryRows> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Direct access to the rows, to simulate tampering in tests.
    pub fn tamper<R>(&self, f: impl FnOnce(&mut MemoryRows) -> R) -> R {
        f(&mut self.rows())
    }
}

fn head_of(rows: &MemoryRows) -> Head {
    match rows.entries.last_key_value() {
        Some((seq, e)) => Head {
            size: seq + 1,
            last: e.hash,
        },
        None => Head {
            size: 0,
            last: GENESIS_PREV,
        },
    }
}

impl Backend for MemoryBackend {
    fn begin(&mut self) -> Result<Head, BackendError> {
        let head = head_of(&self.rows());
        self.pending = Some(Pending {
            head,
            entries: Vec::new(),
            nodes: Vec::new(),
            checkpoints: Vec::new(),
        });
        Ok(head)
    }

    fn stream_version(&mut self, stream: &StreamId) -> Result<u64, BackendError> {
        Ok(self
            .rows()
            .entries
            .values()
            .filter(|e| &e.stream == stream)
            .map(|e| e.version)
            .max()
            .unwrap_or(0))
    }

    fn insert_entries(&mut self, entries: &[StoredEntry]) -> Result<(), BackendError> {
        let p = self.pending.as_mut().ok_or_else(no_txn)?;
        p.entries.extend_from_slice(entries);
        Ok(())
    }

    fn insert_nodes(&mut self, nodes: &[(u8, u64, Hash)]) -> Result<(), BackendError> {
        let p = self.pending.as_mut().ok_or_else(no_txn)?;
        p.nodes.extend_from_slice(nodes);
        Ok(())
    }

    fn insert_checkpoint(&mut self, size: u64, note: &str) -> Result<(), BackendError> {
        let p = self.pending.as_mut().ok_or_else(no_txn)?;
        p.checkpoints.push((size, note.to_owned()));
        Ok(())
    }

    fn commit(&mut self) -> Result<(), BackendError> {
        let p = self.pending.take().ok_or_else(no_txn)?;
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        if head_of(&rows) != p.head {
            return Err(BackendError::new(
                "another writer changed the in-memory log during the transaction",
            ));
        }
        for e in &p.entries {
            let dup = rows
                .entries
                .values()
                .any(|o| o.stream == e.stream && o.version == e.version);
            if dup || rows.entries.contains_key(&e.seq) {
                return Err(BackendError::new(format!(
                    "entry {} (stream {} version {}) already exists",
                    e.seq, e.stream, e.version
                )));
            }
        }
        for e in p.entries {
            rows.entries.insert(e.seq, e);
        }
        for (l, i, h) in p.nodes {
            rows.nodes.insert((l, i), h);
        }
        for (s, n) in p.checkpoints {
            rows.checkpoints.insert(s, n);
        }
        Ok(())
    }

    fn rollback(&mut self) {
        self.pending = None;
    }

    fn size(&self) -> Result<u64, BackendError> {
        Ok(head_of(&self.rows()).size)
    }

    fn read_stream(&self, stream: &StreamId, after: u64) -> Result<Vec<StoredEntry>, BackendError> {
        let mut out: Vec<StoredEntry> = self
            .rows()
            .entries
            .values()
            .filter(|e| &e.stream == stream && e.version > after)
            .cloned()
            .collect();
        out.sort_by_key(|e| e.version);
        Ok(out)
    }

    fn read_range(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>, BackendError> {
        Ok(self
            .rows()
            .entries
            .range(from..)
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn read_nodes(
        &self,
        level: u8,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Hash)>, BackendError> {
        Ok(self
            .rows()
            .nodes
            .range((level, from)..=(level, u64::MAX))
            .take(limit)
            .map(|((_, i), h)| (*i, *h))
            .collect())
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, BackendError> {
        Ok(self.rows().nodes.get(&(level, index)).copied())
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, BackendError> {
        Ok(self
            .rows()
            .checkpoints
            .last_key_value()
            .map(|(s, n)| (*s, n.clone())))
    }

    fn read_checkpoints(
        &self,
        from_size: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, BackendError> {
        Ok(self
            .rows()
            .checkpoints
            .range(from_size..)
            .take(limit)
            .map(|(s, n)| (*s, n.clone()))
            .collect())
    }

    fn streams(&self) -> Result<Vec<StreamId>, BackendError> {
        let mut s: Vec<StreamId> = self
            .rows()
            .entries
            .values()
            .map(|e| e.stream.clone())
            .collect();
        s.sort();
        s.dedup();
        Ok(s)
    }

    fn update_lease(
        &mut self,
        key: &str,
        now: DateTime<Utc>,
        change: LeaseChange<'_>,
    ) -> Result<(), BackendError> {
        let mut rows = self.rows();
        if let Some(row) = change(rows.leases.get(key), now) {
            rows.leases.insert(key.to_owned(), row);
        }
        Ok(())
    }

    fn lease_in_transaction(
        &mut self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<(Option<LeaseRow>, DateTime<Utc>), BackendError> {
        self.pending.as_ref().ok_or_else(no_txn)?;
        Ok((self.rows().leases.get(key).cloned(), now))
    }
}

fn no_txn() -> BackendError {
    BackendError::new("no transaction in progress")
}
