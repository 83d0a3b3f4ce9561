//! Where the raw bytes behind evidence come from.
//!
//! The audit log records each attachment of a piece of evidence (a JUnit report, a process's
//! output) by name, SHA-256 digest and size only. The bytes themselves stay with the host; when
//! it exports an evidence pack it hands them over through an [`AttachmentSource`], and the pack
//! stores them by digest as `attachments/sha256-<hex>`. Bytes that do not hash to the recorded
//! digest are refused; an attachment the source does not have is listed in the manifest as
//! missing (the log still proves its digest).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use promotion_core::Digest;

/// Finds the bytes of an attachment by digest.
pub trait AttachmentSource: Send + Sync + fmt::Debug {
    /// The bytes whose SHA-256 digest is `digest`, recorded under `name`; `None` when the
    /// source does not have them.
    fn fetch(&self, digest: &Digest, name: &str) -> io::Result<Option<Vec<u8>>>;
}

/// A directory holding attachments as `sha256-<hex>` files (the layout of a pack's
/// `attachments/` directory, so an earlier pack can serve as the source of a new one).
#[derive(Debug, Clone)]
pub struct AttachmentDir {
    dir: PathBuf,
}

impl AttachmentDir {
    /// Attachments in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        AttachmentDir { dir: dir.into() }
    }
    /// The file an attachment with `digest` would be in.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(file_name(digest))
    }
}

impl AttachmentSource for AttachmentDir {
    fn fetch(&self, digest: &Digest, _name: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(digest)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Attachments held in memory, keyed by digest.
#[derive(Debug, Clone, Default)]
pub struct MemoryAttachments {
    by_digest: BTreeMap<Digest, Vec<u8>>,
}

impl MemoryAttachments {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds `bytes`; returns their digest.
    pub fn insert(&mut self, bytes: impl Into<Vec<u8>>) -> Digest {
        let bytes = bytes.into();
        let digest = Digest::of(&bytes);
        self.by_digest.insert(digest, bytes);
        digest
    }
    /// Adds the contents of the file at `path` (a report a gate read); returns their digest.
    pub fn insert_file(&mut self, path: impl AsRef<Path>) -> io::Result<Digest> {
        Ok(self.insert(std::fs::read(path)?))
    }
    /// Number of attachments held.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }
    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

impl AttachmentSource for MemoryAttachments {
    fn fetch(&self, digest: &Digest, _name: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.by_digest.get(digest).cloned())
    }
}

/// `sha256-<hex>`: the file name of an attachment in a pack.
pub fn file_name(digest: &Digest) -> String {
    format!("sha256-{}", digest.to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_and_memory_find_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::of(b"report");
        std::fs::write(dir.path().join(file_name(&d)), b"report").unwrap();
        let source = AttachmentDir::new(dir.path());
        assert_eq!(
            source.fetch(&d, "x").unwrap().as_deref(),
            Some(&b"report"[..])
        );
        assert_eq!(source.fetch(&Digest::of(b"other"), "x").unwrap(), None);

        let mut mem = MemoryAttachments::new();
        assert!(mem.is_empty());
        assert_eq!(mem.insert(&b"report"[..]), d);
        assert_eq!(mem.len(), 1);
        assert_eq!(mem.fetch(&d, "x").unwrap(), Some(b"report".to_vec()));
        assert_eq!(
            file_name(&d),
            format!("sha256-{}", d.to_hex()),
            "named like the pack's attachments"
        );
    }
}
