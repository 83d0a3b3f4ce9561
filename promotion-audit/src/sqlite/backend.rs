//! [`SqliteBackend`] as a [`Backend`]: write transactions under SQLite's write lock, reads by
//! range, stream and node, the WAL housekeeping between reads, and leases in the same file.

use chrono::{DateTime, Utc};
use promotion_core::backend::LeaseRow;
use promotion_core::ReplicaId;
use promotion_core::StreamId;
use rusqlite::{params, Connection, OptionalExtension};

use std::collections::HashMap;

use super::{
    hash_of, int, sql, uint, SqliteBackend, Txn, BLOCK_GROW_BELOW, BLOCK_MAX_BYTES,
    BLOCK_MAX_ENTRIES, INDEX_EVERY, MAX_CACHED_STREAMS, NODE_LEVEL,
};
use crate::backend::{Backend, EntryChunk, Head, LeaseChange, StreamIndexSummary, StreamIndexed};
use crate::block::BlockBuf;
use crate::entry::{StoredEntry, GENESIS_PREV};
use crate::error::BackendError;
use crate::merkle::Hash;

fn lease_row(conn: &Connection, key: &str) -> rusqlite::Result<Option<LeaseRow>> {
    conn.prepare_cached("SELECT holder, token, expires_us FROM leases WHERE key = ?1")?
        .query_row([key], |r| {
            let holder: String = r.get(0)?;
            let bad = |i, e: Box<dyn std::error::Error + Send + Sync>| {
                rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e)
            };
            Ok(LeaseRow {
                holder: ReplicaId::new(holder).map_err(|e| bad(0, e.into()))?,
                token: u64::try_from(r.get::<_, i64>(1)?).map_err(|e| bad(1, e.into()))?,
                expires_at: DateTime::from_timestamp_micros(r.get(2)?)
                    .ok_or_else(|| bad(2, "lease expiry out of range".into()))?,
            })
        })
        .optional()
}

impl Backend for SqliteBackend {
    fn begin(&mut self) -> Result<Head, BackendError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.err("starting a write transaction"))?;
        let read = (|| {
            let last = self
                .conn
                .prepare_cached(
                    "SELECT first, count, length(data), substr(hashes, -32) FROM blocks
                     ORDER BY first DESC LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row([], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, Vec<u8>>(3)?,
                        ))
                    })
                    .optional()
                })
                .map_err(self.err("reading the head"))?;
            let upto = self.upto()?;
            Ok::<_, BackendError>((last, upto))
        })();
        let (last, upto) = match read {
            Ok(r) => r,
            Err(e) => {
                self.rollback();
                return Err(e);
            }
        };
        let mut txn = Txn {
            upto,
            last: None,
            new_sids: HashMap::new(),
        };
        let head = match last {
            Some((first, count, len, hash)) => {
                let (first, count) = (uint(first), uint(count));
                let size = first.saturating_add(count);
                let last = match hash_of(&hash, "the last entry's hash", size.saturating_sub(1)) {
                    Ok(h) => h,
                    Err(e) => {
                        self.rollback();
                        return Err(e);
                    }
                };
                txn.last = Some((first, count, usize::try_from(len).unwrap_or(usize::MAX)));
                Head { size, last }
            }
            None => Head {
                size: 0,
                last: GENESIS_PREV,
            },
        };
        self.txn = Some(txn);
        Ok(head)
    }

    fn stream_version(&mut self, stream: &StreamId) -> Result<u64, BackendError> {
        let Some(sid) = self.find_sid(stream)? else {
            return Ok(0);
        };
        let upto = match &self.txn {
            Some(t) => t.upto,
            None => self.upto()?,
        };
        let mut version = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(version), 0) FROM stream_index WHERE sid = ?1")
            .and_then(|mut s| s.query_row([int(sid)], |r| r.get::<_, i64>(0)))
            .map(uint)
            .map_err(self.err("reading a stream version"))?;
        self.each_dir_entry(upto, &mut |_, s, v| {
            if s == sid {
                version = version.max(v);
            }
        })?;
        Ok(version)
    }

    fn insert_entries(&mut self, entries: &[StoredEntry]) -> Result<(), BackendError> {
        let Some(txn) = self.txn.as_ref() else {
            return Err(BackendError::new(
                "insert_entries outside a write transaction",
            ));
        };
        let (Some(head), Some(end)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let (start, size) = (head.seq, end.seq.saturating_add(1));
        // The first entries go onto the end of the last block while it is small.
        let (mut first, mut base_count, mut base_len, mut grow) = match txn.last {
            Some((first, count, len))
                if first.saturating_add(count) == start && len < BLOCK_GROW_BELOW =>
            {
                (first, count, len, true)
            }
            _ => (start, 0, 0, false),
        };
        let mut block = BlockBuf::default();
        for e in entries {
            let open = grow || !block.is_empty();
            let full = base_count + block.count >= BLOCK_MAX_ENTRIES
                || base_len + block.data.len() + e.bytes.len() > BLOCK_MAX_BYTES;
            if open && full {
                if !block.is_empty() {
                    self.write_block(first, &block, grow)?;
                }
                block.clear();
                (first, base_count, base_len, grow) = (e.seq, 0, 0, false);
            }
            let sid = self.sid(&e.stream)?;
            block.push(sid, e.version, &e.bytes, &e.hash);
        }
        self.write_block(first, &block, grow)?;
        let last = (first, base_count + block.count, base_len + block.data.len());
        let upto = match self.txn.as_mut() {
            Some(t) => {
                t.last = Some(last);
                t.upto
            }
            None => {
                return Err(BackendError::new(
                    "insert_entries outside a write transaction",
                ))
            }
        };
        if size.saturating_sub(upto) >= INDEX_EVERY {
            self.index_tail(upto, size)?;
        }
        Ok(())
    }

    fn insert_nodes(&mut self, nodes: &[(u8, u64, Hash)]) -> Result<(), BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO nodes (level, idx, hash) VALUES (?1, ?2, ?3)")
            .map_err(sql("preparing a node insert", &self.path))?;
        for (level, index, hash) in nodes.iter().filter(|n| n.0 >= NODE_LEVEL) {
            stmt.execute(params![level, int(*index), &hash[..]])
                .map_err(sql("inserting a Merkle node", &self.path))?;
        }
        Ok(())
    }

    fn insert_checkpoint(&mut self, size: u64, note: &str) -> Result<(), BackendError> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO checkpoints (size, note) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![int(size), note]))
            .map(|_| ())
            .map_err(sql("inserting a checkpoint", &self.path))
    }

    fn commit(&mut self) -> Result<(), BackendError> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(sql("committing", &self.path))?;
        if let Some(t) = self.txn.take() {
            if self.sids.len() > MAX_CACHED_STREAMS {
                self.sids.clear();
            }
            self.sids.extend(t.new_sids);
        }
        self.after_commit();
        Ok(())
    }

    fn rollback(&mut self) {
        self.txn = None;
        // Nothing to report: a failed rollback leaves SQLite to roll back on the next open.
        let _ = self.conn.execute_batch("ROLLBACK");
        self.after_rollback();
    }

    fn size(&self) -> Result<u64, BackendError> {
        self.conn
            .query_row(
                "SELECT first + count FROM blocks ORDER BY first DESC LIMIT 1",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v.map_or(0, uint))
            .map_err(sql("counting entries", &self.path))
    }

    fn read_stream(&self, stream: &StreamId, after: u64) -> Result<Vec<StoredEntry>, BackendError> {
        self.snapshot(|this| {
            let Some(sid) = this.find_sid(stream)? else {
                return Ok(Vec::new());
            };
            let upto = this.upto()?;
            let mut wanted: Vec<(u64, u64)> = this
                .conn
                .prepare_cached(
                    "SELECT version, seq FROM stream_index WHERE sid = ?1 AND version > ?2
                     ORDER BY version",
                )
                .and_then(|mut s| {
                    s.query_map(params![int(sid), int(after)], |r| {
                        Ok((uint(r.get(0)?), uint(r.get(1)?)))
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(this.err("reading the stream index"))?;
            let counted: u64 = this
                .conn
                .prepare_cached("SELECT entries FROM stream_counts WHERE sid = ?1")
                .and_then(|mut s| s.query_row([int(sid)], |r| r.get::<_, i64>(0)).optional())
                .map(|v| v.map_or(0, uint))
                .map_err(this.err("reading the stream index"))?;
            if wanted.len() as u64 != counted.saturating_sub(after) {
                return Err(BackendError::tampered(
                    wanted.last().map_or(upto, |w| w.1),
                    format!(
                        "the stream index lists {} entries of stream {stream} after version {after}, its count says {}",
                        wanted.len(),
                        counted.saturating_sub(after)
                    ),
                    format!("{} index rows", wanted.len()),
                ));
            }
            this.refresh_tail(upto)?;
            if let Some(entries) = this.tail.borrow().streams.get(&sid) {
                wanted.extend(entries.iter().filter(|(version, _)| *version > after));
            }
            // The index and the blocks' directories must give the versions one by one, at
            // increasing positions.
            let mut previous = None;
            for (i, &(version, seq)) in wanted.iter().enumerate() {
                if version != after + 1 + i as u64 {
                    return Err(BackendError::tampered(
                        seq,
                        format!("stream {stream} skips or repeats a version in the stream index"),
                        format!("version {version} where {} was due", after + 1 + i as u64),
                    ));
                }
                if previous.is_some_and(|p| p >= seq) {
                    return Err(BackendError::tampered(
                        seq,
                        format!("the stream index puts stream {stream}'s versions out of order"),
                        format!("version {version} at entry {seq}"),
                    ));
                }
                previous = Some(seq);
            }
            this.read_wanted(stream, sid, &wanted)
        })
    }

    fn read_range(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>, BackendError> {
        let mut out = Vec::with_capacity(limit.min(1 << 16));
        self.each_entry(from, limit, &mut |this, e| {
            out.push(StoredEntry {
                seq: e.seq,
                stream: this.name(e.sid, e.seq)?,
                version: e.version,
                bytes: e.bytes.to_vec(),
                hash: e.hash,
            });
            Ok(())
        })?;
        Ok(out)
    }

    fn read_chunk(
        &self,
        from: u64,
        limit: usize,
        chunk: &mut EntryChunk,
    ) -> Result<(), BackendError> {
        chunk.clear();
        let mut index: HashMap<u64, usize> = HashMap::new();
        self.each_entry(from, limit, &mut |this, e| {
            let stream = match index.get(&e.sid) {
                Some(i) => *i,
                None => {
                    chunk.streams.push(this.name(e.sid, e.seq)?);
                    index.insert(e.sid, chunk.streams.len() - 1);
                    chunk.streams.len() - 1
                }
            };
            chunk.push(e.seq, stream, e.version, e.bytes, e.hash);
            Ok(())
        })
    }

    fn read_nodes(
        &self,
        level: u8,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Hash)>, BackendError> {
        if level < NODE_LEVEL {
            let mut out = Vec::new();
            for index in (from..).take(limit) {
                match self.computed_node(level, index)? {
                    Some(h) => out.push((index, h)),
                    None => break,
                }
            }
            return Ok(out);
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, hash FROM nodes WHERE level = ?1 AND idx >= ?2 ORDER BY idx LIMIT ?3",
            )
            .map_err(sql("reading Merkle nodes", &self.path))?;
        let rows = stmt
            .query_map(params![level, int(from), int(limit as u64)], |r| {
                Ok((uint(r.get(0)?), r.get::<_, Vec<u8>>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql("reading Merkle nodes", &self.path))?;
        rows.into_iter()
            .map(|(i, h)| Ok((i, hash_of(&h, "a stored Merkle node", i << level)?)))
            .collect()
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, BackendError> {
        if level < NODE_LEVEL {
            return self.computed_node(level, index);
        }
        let hash: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT hash FROM nodes WHERE level = ?1 AND idx = ?2")
            .and_then(|mut s| {
                s.query_row(params![level, int(index)], |r| r.get(0))
                    .optional()
            })
            .map_err(sql("reading a Merkle node", &self.path))?;
        hash.map(|h| hash_of(&h, "a stored Merkle node", index << level))
            .transpose()
    }

    fn lowest_stored_level(&self) -> u8 {
        NODE_LEVEL
    }

    fn stream_index_summary(&self) -> Result<Option<StreamIndexSummary>, BackendError> {
        self.snapshot(|this| {
            let what = "reading the stream index's counts";
            let mut summary = StreamIndexSummary {
                upto: this.upto()?,
                streams: HashMap::new(),
            };
            let mut stmt = this
                .conn
                .prepare_cached(
                    "SELECT s.name, c.sid, c.entries, c.seq_sum
                     FROM stream_counts c LEFT JOIN streams s ON s.sid = c.sid",
                )
                .map_err(this.err(what))?;
            let mut rows = stmt.query([]).map_err(this.err(what))?;
            while let Some(r) = rows.next().map_err(this.err(what))? {
                let name: Option<String> = r.get(0).map_err(this.err(what))?;
                let read = |i| r.get::<_, i64>(i).map(uint).map_err(this.err(what));
                let (sid, entries, seq_sum) = (read(1)?, read(2)?, read(3)?);
                let name = name.unwrap_or_else(|| format!("<unknown stream id {sid}>"));
                summary
                    .streams
                    .insert(name, StreamIndexed { entries, seq_sum });
            }
            Ok(Some(summary))
        })
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, BackendError> {
        self.conn
            .query_row(
                "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1",
                [],
                |r| Ok((uint(r.get(0)?), r.get(1)?)),
            )
            .optional()
            .map_err(sql("reading the latest checkpoint", &self.path))
    }

    fn read_checkpoints(
        &self,
        from_size: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT size, note FROM checkpoints WHERE size >= ?1 ORDER BY size LIMIT ?2",
            )
            .map_err(sql("reading checkpoints", &self.path))?;
        stmt.query_map([int(from_size), int(limit as u64)], |r| {
            Ok((uint(r.get(0)?), r.get(1)?))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(sql("reading checkpoints", &self.path))
    }

    fn streams(&self) -> Result<Vec<StreamId>, BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM streams ORDER BY name")
            .map_err(sql("listing streams", &self.path))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql("listing streams", &self.path))?;
        rows.into_iter()
            .map(|s| StreamId::new(s).map_err(|e| BackendError::with("a stored stream name", e)))
            .collect()
    }

    fn maintain(&mut self) {
        // PASSIVE: copies what it can without waiting for or blocking the writer or readers.
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            tracing::warn!(path = %self.path.display(), error = %e, "WAL checkpoint failed");
        }
    }

    fn update_lease(
        &mut self,
        key: &str,
        now: DateTime<Utc>,
        change: LeaseChange<'_>,
    ) -> Result<(), BackendError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql("starting a lease transaction", &path))?;
        let current = lease_row(&tx, key).map_err(sql("reading a lease", &path))?;
        if let Some(row) = change(current.as_ref(), now) {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO leases (key, holder, token, expires_us) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    key,
                    row.holder.as_str(),
                    int(row.token),
                    row.expires_at.timestamp_micros()
                ])
            })
            .map_err(sql("writing a lease", &path))?;
        }
        tx.commit().map_err(sql("committing a lease", &path))
    }

    fn lease_in_transaction(
        &mut self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<(Option<LeaseRow>, DateTime<Utc>), BackendError> {
        // BEGIN IMMEDIATE holds the database's write lock: no lease changes until commit.
        let row = lease_row(&self.conn, key).map_err(sql("reading a lease", &self.path))?;
        Ok((row, now))
    }
}

#[cfg(test)]
mod tests {
    use crate::conformance;

    /// Commits 20 entries at a time, `commits` times, straight through the backend with nobody
    /// else checkpointing; returns the largest size the WAL file reached.
    fn wal_high_water(w: &mut super::SqliteBackend, path: &std::path::Path, commits: u64) -> u64 {
        use crate::backend::Backend;
        let stream = promotion_core::StreamId::new("s").unwrap();
        let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
        let mut high = 0;
        for _ in 0..commits {
            let head = w.begin().unwrap();
            let version = w.stream_version(&stream).unwrap();
            let (mut seq, mut prev) = (head.size, head.last);
            let entries: Vec<_> = (1..=20)
                .map(|i| {
                    let event = conformance::stage_ready_event(seq);
                    let e =
                        crate::entry::encode(seq, &stream, version + i, event.at, &prev, &event)
                            .unwrap();
                    (seq, prev) = (seq + 1, e.hash);
                    e
                })
                .collect();
            w.insert_entries(&entries).unwrap();
            w.commit().unwrap();
            high = high.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        high
    }

    #[test]
    fn a_steady_stream_of_commits_keeps_the_wal_bounded() {
        let dir = tempfile::tempdir().unwrap();
        // The mechanism with a small bound (the default is 64 MiB): 32 pages, cut back to 128 KiB.
        let path = dir.path().join("bounded.db");
        let (mut w, _r) = super::SqliteBackend::open_pair_with_wal_limit(&path, 131_072).unwrap();
        let pragma = |name: &str| -> i64 {
            w.connection()
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(
            (pragma("wal_autocheckpoint"), pragma("journal_size_limit")),
            (32, 131_072)
        );
        let bounded = wal_high_water(&mut w, &path, 400);
        // Without it, nothing starts the WAL over while commits keep coming.
        let path = dir.path().join("unbounded.db");
        let (mut w, _r) = super::SqliteBackend::open_pair(&path).unwrap();
        w.connection()
            .execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .unwrap();
        let unbounded = wal_high_water(&mut w, &path, 400);
        assert!(
            bounded < 512 * 1024,
            "the WAL reached {bounded} bytes with a bound of 32 pages"
        );
        assert!(
            unbounded > 4 * bounded,
            "without a bound the WAL reached only {unbounded} bytes (bounded: {bounded})"
        );
    }
}
