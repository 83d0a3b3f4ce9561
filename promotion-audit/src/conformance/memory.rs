//! The conformance harness for the in-memory audit backend: every opening shares the same
//! rows, and tampering edits them directly.

use super::{flip_event_byte, Harness, Tamper};
use crate::memory::MemoryBackend;
use crate::merkle::Hash;
use crate::store::AuditStore;
/// The harness for the in-memory backend.
pub fn memory_harness() -> Harness {
    let backend = MemoryBackend::new();
    let b = backend.clone();
    Harness {
        open: Box::new(move |o| AuditStore::memory_on(b.clone(), o).unwrap()),
        tamper: Box::new(MemoryTamper(backend)),
    }
}

struct MemoryTamper(MemoryBackend);

impl Tamper for MemoryTamper {
    fn flip_byte(&self, seq: u64) {
        self.0.tamper(|rows| {
            let e = rows.entries.get_mut(&seq).unwrap();
            e.bytes = flip_event_byte(&e.bytes);
        });
    }
    fn delete(&self, seq: u64) {
        self.0.tamper(|rows| rows.entries.remove(&seq));
    }
    fn swap(&self, a: u64, b: u64) {
        self.0.tamper(|rows| {
            let ea = rows.entries[&a].clone();
            let eb = rows.entries[&b].clone();
            let x = rows.entries.get_mut(&a).unwrap();
            (x.bytes, x.hash) = (eb.bytes, eb.hash);
            let y = rows.entries.get_mut(&b).unwrap();
            (y.bytes, y.hash) = (ea.bytes, ea.hash);
        });
    }
    fn truncate(&self, keep: u64) {
        self.0.tamper(|rows| rows.entries.retain(|s, _| *s < keep));
    }
    fn duplicate(&self, seq: u64) {
        self.0.tamper(|rows| {
            let mut e = rows.entries[&seq].clone();
            let next = rows.entries.keys().max().unwrap() + 1;
            e.seq = next;
            e.version += 1000;
            rows.entries.insert(next, e);
        });
    }
    fn rewrite(&self, seq: u64, bytes: &[u8], hash: Hash) {
        self.0.tamper(|rows| {
            let e = rows.entries.get_mut(&seq).unwrap();
            (e.bytes, e.hash) = (bytes.to_vec(), hash);
        });
    }
    fn put_nodes(&self, nodes: &[(u8, u64, Hash)]) {
        self.0.tamper(|rows| {
            for &(level, index, hash) in nodes {
                rows.nodes.insert((level, index), hash);
            }
        });
    }
    fn put_checkpoint(&self, size: u64, note: &str) {
        self.0
            .tamper(|rows| rows.checkpoints.insert(size, note.to_owned()));
    }
    fn delete_checkpoints(&self, from_size: u64) {
        self.0
            .tamper(|rows| rows.checkpoints.retain(|size, _| *size < from_size));
    }
}
