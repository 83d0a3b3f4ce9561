//! The conformance harness for SQLite: a fresh file in a temporary directory, tampered with
//! through raw SQL on a separate connection.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::{params, Connection};

use crate::block::BlockBuf;
use crate::conformance::{flip_event_byte, Harness, Tamper};
use crate::merkle::Hash;
use crate::store::AuditStore;

/// A harness over a new SQLite file under `dir` (kept alive by the harness).
pub fn sqlite_harness(dir: Arc<dyn AsRef<std::path::Path> + Send + Sync>) -> Harness {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = (*dir).as_ref().join(format!("audit-{n}.db"));
    let p = path.clone();
    Harness {
        open: Box::new(move |o| {
            let _keep = &dir;
            AuditStore::open_sqlite(&p, o).unwrap()
        }),
        tamper: Box::new(SqlTamper(path)),
    }
}

/// Tampering with the SQLite log at `path` (one written by any store, not only a harness's),
/// through raw SQL on connections of its own.
pub fn sqlite_tamper(path: impl Into<PathBuf>) -> Box<dyn Tamper> {
    Box::new(SqlTamper(path.into()))
}

struct SqlTamper(PathBuf);

/// One stored entry as the block keeps it: (stream id, version, bytes, hash).
type Rec = (u64, u64, Vec<u8>, Vec<u8>);

impl SqlTamper {
    fn conn(&self) -> Connection {
        Connection::open(&self.0).unwrap()
    }

    /// The block holding entry `seq`: its first entry and its entries.
    fn load(c: &Connection, seq: u64) -> (u64, Vec<Rec>) {
        c.query_row(
            "SELECT first, count, dir, hashes, data FROM blocks WHERE first <= ?1
             ORDER BY first DESC LIMIT 1",
            [seq as i64],
            |r| {
                let block = super::read::block_of(r)?.unwrap();
                let recs = block
                    .entries()
                    .map(|e| (e.sid, e.version, e.bytes.to_vec(), e.hash.to_vec()))
                    .collect();
                Ok((block.first, recs))
            },
        )
        .unwrap()
    }

    /// Replaces the block at `first` with `recs` (none: deletes it), through raw SQL.
    fn store(c: &Connection, first: u64, recs: &[Rec]) {
        c.execute("DELETE FROM blocks WHERE first = ?1", [first as i64])
            .unwrap();
        if recs.is_empty() {
            return;
        }
        let mut b = BlockBuf::default();
        for (sid, version, bytes, hash) in recs {
            b.push(*sid, *version, bytes, hash);
        }
        c.execute(
            "INSERT INTO blocks (first, count, dir, hashes, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![first as i64, b.count as i64, b.dir, b.hashes, b.data],
        )
        .unwrap();
    }
}

impl Tamper for SqlTamper {
    fn flip_byte(&self, seq: u64) {
        let c = self.conn();
        let (first, mut recs) = Self::load(&c, seq);
        let rec = &mut recs[(seq - first) as usize];
        rec.2 = flip_event_byte(&rec.2);
        Self::store(&c, first, &recs);
    }
    fn delete(&self, seq: u64) {
        // As deleting a row would: the entries after it keep their places (a gap).
        let c = self.conn();
        let (first, mut recs) = Self::load(&c, seq);
        let after = recs.split_off((seq - first) as usize + 1);
        recs.pop();
        Self::store(&c, first, &recs);
        Self::store(&c, seq + 1, &after);
    }
    fn swap(&self, a: u64, b: u64) {
        let c = self.conn();
        let (fa, mut ra) = Self::load(&c, a);
        let (fb, rb) = Self::load(&c, b);
        let (ia, ib) = ((a - fa) as usize, (b - fb) as usize);
        let mut rb = if fa == fb { ra.clone() } else { rb };
        let (entry_a, entry_b) = (ra[ia].clone(), rb[ib].clone());
        (ra[ia].2, ra[ia].3) = (entry_b.2, entry_b.3);
        if fa == fb {
            (ra[ib].2, ra[ib].3) = (entry_a.2, entry_a.3);
            Self::store(&c, fa, &ra);
        } else {
            (rb[ib].2, rb[ib].3) = (entry_a.2, entry_a.3);
            Self::store(&c, fa, &ra);
            Self::store(&c, fb, &rb);
        }
    }
    fn truncate(&self, keep: u64) {
        let c = self.conn();
        let (first, mut recs) = Self::load(&c, keep);
        recs.truncate((keep.saturating_sub(first)) as usize);
        c.execute("DELETE FROM blocks WHERE first >= ?1", [keep as i64])
            .unwrap();
        if first < keep {
            Self::store(&c, first, &recs);
        }
    }
    fn duplicate(&self, seq: u64) {
        let c = self.conn();
        let (first, recs) = Self::load(&c, seq);
        let (sid, version, bytes, hash) = recs[(seq - first) as usize].clone();
        let size: i64 = c
            .query_row("SELECT MAX(first + count) FROM blocks", [], |r| r.get(0))
            .unwrap();
        Self::store(&c, size as u64, &[(sid, version + 1000, bytes, hash)]);
    }
    fn rewrite(&self, seq: u64, bytes: &[u8], hash: Hash) {
        let c = self.conn();
        let (first, mut recs) = Self::load(&c, seq);
        let rec = &mut recs[(seq - first) as usize];
        (rec.2, rec.3) = (bytes.to_vec(), hash.to_vec());
        Self::store(&c, first, &recs);
    }
    fn put_nodes(&self, nodes: &[(u8, u64, Hash)]) {
        let c = self.conn();
        for (level, index, hash) in nodes.iter().filter(|n| n.0 >= super::NODE_LEVEL) {
            c.execute(
                "INSERT OR REPLACE INTO nodes (level, idx, hash) VALUES (?1, ?2, ?3)",
                params![level, *index as i64, &hash[..]],
            )
            .unwrap();
        }
    }
    fn put_checkpoint(&self, size: u64, note: &str) {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO checkpoints (size, note) VALUES (?1, ?2)",
                params![size as i64, note],
            )
            .unwrap();
    }
    fn delete_checkpoints(&self, from_size: u64) {
        self.conn()
            .execute(
                "DELETE FROM checkpoints WHERE size >= ?1",
                [from_size as i64],
            )
            .unwrap();
    }
}
