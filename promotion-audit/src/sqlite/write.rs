//! How a SQLite write transaction lays entries out: stream ids, blocks grown or started, and
//! the stream index brought up to date every [`INDEX_EVERY`](super::INDEX_EVERY) entries.

use rusqlite::params;

use super::{int, uint, SqliteBackend, MAX_CACHED_STREAMS};
use crate::block::BlockBuf;
use crate::error::BackendError;
use promotion_core::StreamId;

impl SqliteBackend {
    /// The id of `stream`, giving it one if it has none (inside the write transaction).
    pub(super) fn sid(&mut self, stream: &StreamId) -> Result<u64, BackendError> {
        if let Some(sid) = self.find_sid(stream)? {
            if self
                .txn
                .as_ref()
                .is_some_and(|t| t.new_sids.contains_key(stream))
            {
                return Ok(sid);
            }
            if self.sids.len() > MAX_CACHED_STREAMS {
                self.sids.clear();
            }
            self.sids.insert(stream.clone(), sid);
            return Ok(sid);
        }
        self.conn
            .prepare_cached("INSERT INTO streams (name) VALUES (?1)")
            .and_then(|mut s| s.execute([stream.as_str()]))
            .map_err(self.err("recording a new stream"))?;
        let sid = uint(self.conn.last_insert_rowid());
        if let Some(t) = self.txn.as_mut() {
            t.new_sids.insert(stream.clone(), sid);
        }
        Ok(sid)
    }

    /// Adds every entry from `upto` to `size` to the stream index, sorted, so that each index
    /// page is written once per [`INDEX_EVERY`] entries rather than once per commit.
    pub(super) fn index_tail(&mut self, upto: u64, size: u64) -> Result<(), BackendError> {
        let mut rows = Vec::new();
        self.each_dir_entry(upto, &mut |seq, sid, version| {
            if seq < size {
                rows.push((sid, version, seq));
            }
        })?;
        rows.sort_unstable();
        let mut counts: Vec<(u64, u64, u64)> = Vec::new();
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO stream_index (sid, version, seq) VALUES (?1, ?2, ?3)")
            .map_err(self.err("indexing streams"))?;
        for (sid, version, seq) in rows {
            stmt.execute(params![int(sid), int(version), int(seq)])
                .map_err(self.err("indexing streams"))?;
            match counts.last_mut() {
                Some(c) if c.0 == sid => *c = (sid, c.1 + 1, c.2.wrapping_add(seq)),
                _ => counts.push((sid, 1, seq)),
            }
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO stream_counts (sid, entries, seq_sum) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sid) DO UPDATE SET entries = entries + excluded.entries,
                 seq_sum = seq_sum + excluded.seq_sum",
            )
            .map_err(self.err("counting indexed entries"))?;
        for (sid, entries, seq_sum) in counts {
            stmt.execute(params![int(sid), int(entries), int(seq_sum)])
                .map_err(self.err("counting indexed entries"))?;
        }
        self.conn
            .prepare_cached("UPDATE indexed SET upto = ?1 WHERE id = 0")
            .and_then(|mut s| s.execute([int(size)]))
            .map_err(self.err("indexing streams"))?;
        if let Some(t) = self.txn.as_mut() {
            t.upto = size;
        }
        Ok(())
    }

    /// Writes `block` (entries from `first`) as a new row, or onto the end of the last block.
    pub(super) fn write_block(
        &mut self,
        first: u64,
        block: &BlockBuf,
        grow: bool,
    ) -> Result<(), BackendError> {
        if grow {
            self.conn
                .prepare_cached(
                    // `||` yields text; cast back, byte for byte, to a blob.
                    "UPDATE blocks SET count = count + ?1, dir = CAST(dir || ?2 AS BLOB),
                     hashes = CAST(hashes || ?3 AS BLOB), data = CAST(data || ?4 AS BLOB)
                     WHERE first = ?5",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        int(block.count),
                        block.dir,
                        block.hashes,
                        block.data,
                        int(first)
                    ])
                })
                .map_err(self.err("adding entries to a block"))?;
        } else {
            self.conn
                .prepare_cached(
                    "INSERT INTO blocks (first, count, dir, hashes, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        int(first),
                        int(block.count),
                        block.dir,
                        block.hashes,
                        block.data
                    ])
                })
                .map_err(self.err("inserting a block"))?;
        }
        Ok(())
    }
}
