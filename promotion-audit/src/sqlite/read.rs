//! How a SQLite log is read: one snapshot per read, blocks and their directories, the stream
//! index and the entries after it (the tail), and the Merkle nodes below
//! [`NODE_LEVEL`](super::NODE_LEVEL) recomputed from the leaf hashes the blocks keep.

use rusqlite::OptionalExtension;

use super::{hash_of, int, uint, SqliteBackend, Tail, BLOCKS_FROM, MAX_CACHED_STREAMS};
use crate::backend::Backend;
use crate::block::{directory, BlockEntry, BlockIndex, BlockRef};
use crate::entry::StoredEntry;
use crate::error::BackendError;
use crate::merkle::{Frontier, Hash};
use promotion_core::StreamId;

impl SqliteBackend {
    /// Runs `f` in one read transaction unless one (or the writer's) is already open, so that
    /// the index, the blocks and `indexed` are read from one snapshot.
    pub(super) fn snapshot<R>(
        &self,
        f: impl FnOnce(&Self) -> Result<R, BackendError>,
    ) -> Result<R, BackendError> {
        if !self.conn.is_autocommit() {
            return f(self);
        }
        self.conn
            .prepare_cached("BEGIN DEFERRED")
            .and_then(|mut s| s.execute([]))
            .map_err(self.err("starting a read"))?;
        let out = f(self);
        // A read transaction has nothing to keep: ending it cannot lose anything.
        let _ = self
            .conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]));
        out
    }

    pub(super) fn upto(&self) -> Result<u64, BackendError> {
        self.conn
            .prepare_cached("SELECT upto FROM indexed WHERE id = 0")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)).optional())
            .map(|v| v.map_or(0, uint))
            .map_err(self.err("reading how far the stream index reaches"))
    }

    /// Brings the reader's view of the unindexed entries up to date with the log (inside a
    /// snapshot): drops what the index now holds, adds the entries appended since.
    pub(super) fn refresh_tail(&self, upto: u64) -> Result<(), BackendError> {
        let size = self.size()?;
        let mut tail = self.tail.borrow_mut();
        if upto < tail.upto || size < tail.end {
            // The log is not the one this view was built from (replaced or damaged): rebuild.
            *tail = Tail::default();
        }
        if upto > tail.upto || tail.end < upto {
            tail.streams.retain(|_, entries| {
                entries.retain(|&(_, seq)| seq >= upto);
                !entries.is_empty()
            });
            tail.upto = upto;
            tail.end = tail.end.max(upto);
        }
        if tail.end < size {
            let from = tail.end;
            let Tail { streams, end, .. } = &mut *tail;
            self.each_dir_entry(from, &mut |seq, sid, version| {
                streams.entry(sid).or_default().push((version, seq));
                *end = (*end).max(seq.saturating_add(1));
            })?;
        }
        Ok(())
    }

    /// The id of `stream` if it has one (committed, or given in the open transaction).
    pub(super) fn find_sid(&self, stream: &StreamId) -> Result<Option<u64>, BackendError> {
        if let Some(sid) = self.sids.get(stream) {
            return Ok(Some(*sid));
        }
        if let Some(sid) = self.txn.as_ref().and_then(|t| t.new_sids.get(stream)) {
            return Ok(Some(*sid));
        }
        self.conn
            .prepare_cached("SELECT sid FROM streams WHERE name = ?1")
            .and_then(|mut s| {
                s.query_row([stream.as_str()], |r| r.get::<_, i64>(0))
                    .optional()
            })
            .map(|v| v.map(uint))
            .map_err(self.err("looking up a stream"))
    }

    /// The stream name of id `sid`, as a reader sees it; `seq` names the entry for the error.
    pub(super) fn name(&self, sid: u64, seq: u64) -> Result<StreamId, BackendError> {
        if let Some(name) = self.names.borrow().get(&sid) {
            return Ok(name.clone());
        }
        let name: Option<String> = self
            .conn
            .prepare_cached("SELECT name FROM streams WHERE sid = ?1")
            .and_then(|mut s| s.query_row([int(sid)], |r| r.get(0)).optional())
            .map_err(self.err("reading a stream name"))?;
        let name = name.ok_or_else(|| {
            BackendError::tampered(
                seq,
                "the entry's stream id is unknown",
                format!("stream id {sid}"),
            )
        })?;
        let name = StreamId::new(name).map_err(|e| {
            BackendError::tampered(seq, "a stored stream name is invalid", e.to_string())
        })?;
        let mut names = self.names.borrow_mut();
        if names.len() > MAX_CACHED_STREAMS {
            names.clear();
        }
        names.insert(sid, name.clone());
        Ok(name)
    }

    /// Calls `f` with every block from the one holding entry `from` on, in order, until `f`
    /// returns false.
    pub(super) fn each_block(
        &self,
        from: u64,
        f: &mut dyn FnMut(BlockRef<'_>) -> Result<bool, BackendError>,
    ) -> Result<(), BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT first, count, dir, hashes, data {BLOCKS_FROM}"
            ))
            .map_err(self.err("reading blocks"))?;
        let mut rows = stmt
            .query([int(from)])
            .map_err(self.err("reading blocks"))?;
        while let Some(r) = rows.next().map_err(self.err("reading blocks"))? {
            let block = block_of(r).map_err(self.err("reading a block"))??;
            if !f(block)? {
                break;
            }
        }
        Ok(())
    }

    /// Calls `f` with each of up to `limit` entries from `from` on, in stored order, in one
    /// snapshot: what `read_range` and `read_chunk` return, each in its own shape.
    pub(super) fn each_entry(
        &self,
        from: u64,
        limit: usize,
        f: &mut dyn FnMut(&Self, BlockEntry<'_>) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        self.snapshot(|this| {
            let mut taken = 0usize;
            this.each_block(from, &mut |block| {
                for e in block.entries().filter(|e| e.seq >= from) {
                    if taken >= limit {
                        return Ok(false);
                    }
                    f(this, e)?;
                    taken += 1;
                }
                Ok(taken < limit)
            })
        })
    }

    /// Calls `f` with (seq, stream id, version) of every entry from `from` on, reading only the
    /// blocks' directories.
    pub(super) fn each_dir_entry(
        &self,
        from: u64,
        f: &mut dyn FnMut(u64, u64, u64),
    ) -> Result<(), BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT first, count, dir {BLOCKS_FROM}"))
            .map_err(self.err("reading block directories"))?;
        let mut rows = stmt
            .query([int(from)])
            .map_err(self.err("reading block directories"))?;
        while let Some(r) = rows.next().map_err(self.err("reading block directories"))? {
            let (first, count) = (
                r.get::<_, i64>(0).map_err(self.err("reading a block"))?,
                r.get::<_, i64>(1).map_err(self.err("reading a block"))?,
            );
            let dir = blob(r, 2).map_err(self.err("reading a block"))?;
            let entries = directory(first, count, dir).map_err(|problem| {
                BackendError::tampered(uint(first), "a block is malformed", problem)
            })?;
            for (seq, sid, version) in entries.filter(|(seq, _, _)| *seq >= from) {
                f(seq, sid, version);
            }
        }
        Ok(())
    }

    /// The entries of `stream` (id `sid`) at the checked `(version, seq)` positions `wanted`.
    /// Reads each block's directory and hashes, then only the wanted entries' bytes out of its
    /// data (incremental blob I/O): an event is a few hundred bytes of a block of up to 16 KiB.
    pub(super) fn read_wanted(
        &self,
        stream: &StreamId,
        sid: u64,
        wanted: &[(u64, u64)],
    ) -> Result<Vec<StoredEntry>, BackendError> {
        let mut out = Vec::with_capacity(wanted.len());
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT first, count, dir, hashes, octet_length(data) FROM blocks
                 WHERE first = (SELECT MAX(first) FROM blocks WHERE first <= ?1)",
            )
            .map_err(self.err("reading blocks"))?;
        let mut data: Option<rusqlite::blob::Blob<'_>> = None;
        let mut next = wanted.iter().peekable();
        while let Some(&&(_, at)) = next.peek() {
            let not_stored = || {
                BackendError::tampered(
                    at,
                    "the stream index points at an entry that is not stored",
                    "no such entry",
                )
            };
            let mut rows = stmt.query([int(at)]).map_err(self.err("reading blocks"))?;
            let row = rows
                .next()
                .map_err(self.err("reading blocks"))?
                .ok_or_else(not_stored)?;
            let first: i64 = row.get(0).map_err(self.err("reading a block"))?;
            let count: i64 = row.get(1).map_err(self.err("reading a block"))?;
            let (dir, hashes) = (
                blob(row, 2).map_err(self.err("reading a block"))?,
                blob(row, 3).map_err(self.err("reading a block"))?,
            );
            let len: i64 = row.get(4).map_err(self.err("reading a block"))?;
            let block =
                BlockIndex::parse(first, count, dir, hashes, uint(len)).map_err(|problem| {
                    BackendError::tampered(uint(first), "a block is malformed", problem)
                })?;
            if at >= block.end() {
                return Err(not_stored());
            }
            let handle = match data.as_mut() {
                Some(handle) => {
                    handle.reopen(first).map_err(self.err("reading a block"))?;
                    handle
                }
                None => data.insert(
                    self.conn
                        .blob_open(rusqlite::MAIN_DB, c"blocks", c"data", first, true)
                        .map_err(self.err("reading a block"))?,
                ),
            };
            while let Some(&&(version, seq)) = next.peek().filter(|w| w.1 < block.end()) {
                let e = block.locate(seq).ok_or_else(|| {
                    BackendError::tampered(
                        seq,
                        "a block does not hold its own entry",
                        "no such entry",
                    )
                })?;
                if e.sid != sid || e.version != version {
                    return Err(BackendError::tampered(
                        seq,
                        "the stream index points at another stream's entry",
                        format!("stream id {} version {}", e.sid, e.version),
                    ));
                }
                let mut bytes = vec![0u8; e.len];
                let offset = usize::try_from(e.offset).unwrap_or(usize::MAX);
                handle
                    .read_at_exact(&mut bytes, offset)
                    .map_err(self.err("reading an entry"))?;
                out.push(StoredEntry {
                    seq,
                    stream: stream.clone(),
                    version,
                    bytes,
                    hash: e.hash,
                });
                next.next();
            }
        }
        Ok(out)
    }

    /// The leaf hashes of entries `from .. from + n`, or `None` if the log is shorter. Reads
    /// only the blocks' hash columns.
    pub(super) fn leaf_hashes(&self, from: u64, n: u64) -> Result<Option<Vec<Hash>>, BackendError> {
        let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0).min(1 << 16));
        let end = from.saturating_add(n);
        let what = "reading leaf hashes";
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT first, count, hashes {BLOCKS_FROM}"))
            .map_err(self.err(what))?;
        let mut rows = stmt.query([int(from)]).map_err(self.err(what))?;
        while let Some(r) = rows.next().map_err(self.err(what))? {
            let first = uint(r.get(0).map_err(self.err(what))?);
            let count: i64 = r.get(1).map_err(self.err(what))?;
            let hashes = blob(r, 2).map_err(self.err(what))?;
            if usize::try_from(count).map_or(true, |c| hashes.len() != c.saturating_mul(32)) {
                return Err(BackendError::tampered(
                    first,
                    "a block is malformed",
                    format!("{} bytes of hashes for {count} entries", hashes.len()),
                ));
            }
            for (i, h) in hashes.chunks_exact(32).enumerate() {
                let seq = first.saturating_add(i as u64);
                if seq >= from && seq < end {
                    out.push(hash_of(h, "a leaf hash", seq)?);
                }
            }
            if first.saturating_add(uint(count)) >= end {
                break;
            }
        }
        Ok((out.len() as u64 == n).then_some(out))
    }

    /// A Merkle node below [`NODE_LEVEL`], from its leaves.
    pub(super) fn computed_node(
        &self,
        level: u8,
        index: u64,
    ) -> Result<Option<Hash>, BackendError> {
        let width = 1u64 << level;
        let Some(leaves) = self.leaf_hashes(index.saturating_mul(width), width)? else {
            return Ok(None);
        };
        let mut f = Frontier::new();
        for leaf in leaves {
            f.push(leaf);
        }
        Ok(Some(f.root()))
    }
}

/// Column `i` of row `r` as a blob, borrowed from the row.
pub(super) fn blob<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r [u8]> {
    r.get_ref(i)?.as_blob().map_err(Into::into)
}

/// A block row as (first, count, dir, hashes, data), parsed; the outer error is SQLite's, the
/// inner one a malformed block.
pub(super) fn block_of<'r>(
    r: &'r rusqlite::Row<'_>,
) -> rusqlite::Result<Result<BlockRef<'r>, BackendError>> {
    let first: i64 = r.get(0)?;
    let count: i64 = r.get(1)?;
    let (dir, hashes, data) = (blob(r, 2)?, blob(r, 3)?, blob(r, 4)?);
    Ok(BlockRef::parse(first, count, dir, hashes, data)
        .map_err(|problem| BackendError::tampered(uint(first), "a block is malformed", problem)))
}

#[cfg(test)]
mod tests {
    use crate::conformance;
    use crate::error::AuditError;
    use crate::store::AuditStore;

    /// A log of 2,200 entries in 5 streams (appended 40 at a time, so the stream index holds
    /// the first 2,048 or more and the rest are found through the last blocks).
    fn indexed_log(path: &std::path::Path) -> AuditStore {
        use promotion_core::{EventStore, ExpectedVersion, StreamId};
        let store = AuditStore::open_sqlite(path, conformance::options()).unwrap();
        futures::executor::block_on(async {
            for i in 0..55u64 {
                let stream = StreamId::new(format!("s{}", i % 5)).unwrap();
                let events: Vec<_> = (0..40)
                    .map(|j| conformance::stage_ready_event(i * 40 + j))
                    .collect();
                store
                    .append(&stream, ExpectedVersion::Any, &events)
                    .await
                    .unwrap();
            }
        });
        store
    }

    fn sql(path: &std::path::Path, statement: &str) {
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(statement)
            .unwrap();
    }

    /// The first entry of the first block that starts after entry `n`.
    fn first_block_after(path: &std::path::Path, n: i64) -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT first FROM blocks WHERE first > ?1 ORDER BY first LIMIT 1",
                [n],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn tampered_at(store: &AuditStore) -> crate::Tampered {
        match futures::executor::block_on(store.verify(None)) {
            Err(AuditError::Tampered(t)) => t,
            other => panic!("expected the log not to verify, got {other:?}"),
        }
    }

    #[test]
    fn an_indexed_log_reads_and_verifies() {
        use promotion_core::{EventStore, StreamId};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("indexed.db");
        let store = indexed_log(&path);
        let upto: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT upto FROM indexed", [], |r| r.get(0))
            .unwrap();
        assert!((2048..2200).contains(&upto), "indexed up to {upto}");
        futures::executor::block_on(async {
            let s0 = StreamId::new("s0").unwrap();
            let all = store.read(&s0).await.unwrap();
            assert_eq!(all.len(), 440);
            assert!(all
                .iter()
                .enumerate()
                .all(|(i, r)| r.version == i as u64 + 1));
            let tail = store.read_from(&s0, 430).await.unwrap();
            assert_eq!(tail.first().map(|r| r.version), Some(431));
            assert_eq!(tail, all[430..].to_vec());
            let report = store.verify(None).await.unwrap();
            assert_eq!((report.entries, report.streams), (2200, 5));
        });
    }

    #[test]
    fn a_malformed_block_is_named_by_its_first_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("malformed.db");
        let store = indexed_log(&path);
        let first = first_block_after(&path, 1000);
        sql(
            &path,
            &format!("UPDATE blocks SET dir = substr(dir, 1, 19) WHERE first = {first}"),
        );
        let t = tampered_at(&store);
        assert_eq!(t.seq, first as u64, "{t}");
        assert!(t.problem.contains("a block is malformed"), "{t}");
        assert!(t.found.contains("directory has 19 bytes"), "{t}");
    }

    #[test]
    fn a_deleted_block_is_named_by_its_first_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deleted.db");
        let store = indexed_log(&path);
        let first = first_block_after(&path, 700);
        sql(&path, &format!("DELETE FROM blocks WHERE first = {first}"));
        let t = tampered_at(&store);
        assert_eq!(t.seq, first as u64, "{t}");
        assert!(t.problem.contains("missing"), "{t}");
    }

    #[test]
    fn reads_by_stream_name_a_damaged_or_missing_block() {
        use promotion_core::{EventStore, StreamId};
        let dir = tempfile::tempdir().unwrap();
        let s0 = StreamId::new("s0").unwrap();
        // s0 holds entries 0..40, 200..240, 400..440, …: versions 1..40 are in the blocks from
        // 0 on, version 41 is entry 200.
        for (name, doctor, expected) in [
            (
                "data one byte short",
                "UPDATE blocks SET data = substr(data, 1, length(data) - 1) WHERE first = 0",
                ["entry 0", "a block is malformed", "add up to"],
            ),
            (
                "a block deleted",
                "DELETE FROM blocks WHERE first = (SELECT MAX(first) FROM blocks WHERE first <= 200)",
                ["entry 200", "not stored", "no such entry"],
            ),
        ] {
            let path = dir.path().join(format!("{name}.db"));
            let store = indexed_log(&path);
            sql(&path, doctor);
            let err = futures::executor::block_on(store.read(&s0))
                .map(|r| r.len())
                .expect_err(name)
                .to_string();
            for part in expected {
                assert!(err.contains(part), "{name}: {err}");
            }
            // Another stream whose blocks are intact still reads.
            if name == "data one byte short" {
                let s1 = StreamId::new("s1").unwrap();
                let read = futures::executor::block_on(store.read(&s1)).unwrap();
                assert_eq!(read.len(), 440, "{name}");
            }
            drop(store);
        }
    }

    #[test]
    fn a_doctored_stream_index_fails_reads_and_doctored_counts_fail_verification() {
        use promotion_core::{EventStore, StreamId};
        let dir = tempfile::tempdir().unwrap();
        let s2 = StreamId::new("s2").unwrap();
        let s2_rows = "sid = (SELECT sid FROM streams WHERE name = 's2')";
        // Damage to the index itself: every read through it refuses to answer.
        for (name, doctor) in [
            ("a row deleted", format!("DELETE FROM stream_index WHERE {s2_rows} AND version = 7")),
            // Versions 361 to 400 are the last ones the index holds (the rest are after `upto`).
            ("the last rows deleted", format!("DELETE FROM stream_index WHERE {s2_rows} AND version > 380")),
            ("a row pointing at another entry", format!("UPDATE stream_index SET seq = seq + 1 WHERE {s2_rows} AND version = 7")),
            ("a row added", "INSERT INTO stream_index (sid, version, seq) SELECT sid, 9999, 3 FROM streams WHERE name = 's2'".to_owned()),
        ] {
            let path = dir.path().join(format!("{name}.db"));
            let store = indexed_log(&path);
            sql(&path, &doctor);
            let read = futures::executor::block_on(store.read(&s2));
            let err = read.map(|r| r.len()).expect_err(name).to_string();
            assert!(err.contains("stream index"), "{name}: {err}");
            drop(store);
        }
        // Damage to the counts reads are checked against, alone or to match a doctored index:
        // verification names the stream.
        for (name, doctor) in [
            (
                "a count lowered",
                format!("UPDATE stream_counts SET entries = entries - 1 WHERE {s2_rows}"),
            ),
            (
                "rows deleted and the count lowered to match",
                format!(
                    "DELETE FROM stream_index WHERE {s2_rows} AND version > 380;
                 UPDATE stream_counts SET entries = 380 WHERE {s2_rows}"
                ),
            ),
            (
                "a count removed",
                format!("DELETE FROM stream_counts WHERE {s2_rows}"),
            ),
            (
                "a count added",
                "INSERT INTO stream_counts (sid, entries, seq_sum) VALUES (99, 1, 0)".to_owned(),
            ),
        ] {
            let path = dir.path().join(format!("{name}.db"));
            let store = indexed_log(&path);
            sql(&path, &doctor);
            let t = tampered_at(&store);
            assert!(t.problem.contains("stream index"), "{name}: {t}");
            if name != "a count added" {
                assert!(t.problem.contains("s2"), "{name}: {t}");
            }
            drop(store);
        }
    }
}
