//! Selecting and hashing the files of the configuration directory: include and exclude
//! patterns, the manifest itself left out when it sits inside the directory, and digests read in
//! chunks so that large files cost little memory.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use promotion_core::{Digest, GateError};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::input::invalid_input;

use super::{shown, BaselineConfigError, CHUNK};

/// Which files of the directory make up the baseline.
#[derive(Debug, Clone)]
pub(super) struct Selection {
    include: Option<GlobSet>,
    exclude: GlobSet,
    pub(super) include_patterns: Vec<String>,
    pub(super) exclude_patterns: Vec<String>,
}

fn glob_set(list: &'static str, patterns: &[String]) -> Result<GlobSet, BaselineConfigError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let refuse = |message: String| BaselineConfigError::InvalidPattern {
            list,
            pattern: pattern.clone(),
            message,
        };
        if pattern.is_empty() {
            return Err(refuse("a pattern may not be empty".to_owned()));
        }
        if pattern.starts_with('/') {
            return Err(refuse(
                "patterns are relative to the directory and may not start with `/`".to_owned(),
            ));
        }
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| refuse(e.kind().to_string()))?;
        set.add(glob);
    }
    set.build()
        .map_err(|e| BaselineConfigError::InvalidPattern {
            list,
            pattern: patterns.join(", "),
            message: e.kind().to_string(),
        })
}

impl Selection {
    pub(super) fn new(
        include: Vec<String>,
        exclude: Vec<String>,
    ) -> Result<Self, BaselineConfigError> {
        Ok(Selection {
            include: if include.is_empty() {
                None
            } else {
                Some(glob_set("include", &include)?)
            },
            exclude: glob_set("exclude", &exclude)?,
            include_patterns: include,
            exclude_patterns: exclude,
        })
    }

    /// Whether the walk skips this directory and everything under it.
    pub(super) fn prunes(&self, rel: &str) -> bool {
        self.exclude.is_match(rel)
    }

    /// Whether `rel` or one of its parent directories is excluded.
    pub(super) fn excludes(&self, rel: &str) -> bool {
        self.exclude.is_match(rel)
            || rel
                .match_indices('/')
                .any(|(i, _)| rel.get(..i).is_some_and(|dir| self.exclude.is_match(dir)))
    }

    /// Whether the file at `rel` belongs to the baseline.
    pub(super) fn selects(&self, rel: &str) -> bool {
        !self.excludes(rel) && self.include.as_ref().is_none_or(|g| g.is_match(rel))
    }
}

/// `rel` as a `/`-separated string, or `None` when it is not a plain relative UTF-8 path.
pub(super) fn slash_path(rel: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// The manifest's path relative to `dir`, when it lives inside it.
pub(super) fn manifest_inside(dir: &Path, manifest: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let manifest = match std::fs::canonicalize(manifest) {
        Ok(m) => m,
        Err(_) => {
            let parent = manifest.parent().filter(|p| !p.as_os_str().is_empty());
            let parent = std::fs::canonicalize(parent.unwrap_or(Path::new("."))).ok()?;
            parent.join(manifest.file_name()?)
        }
    };
    slash_path(manifest.strip_prefix(&dir).ok()?)
}

/// Digest and size of everything `reader` yields, read in [`CHUNK`]-sized pieces.
pub(super) fn digest_reader<R: Read>(mut reader: R) -> io::Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(buf.get(..n).unwrap_or_default());
        size += n as u64;
    }
    Ok((Digest::from_bytes(hasher.finalize().into()), size))
}

pub(super) fn digest_file(path: &Path) -> Result<(Digest, u64), GateError> {
    File::open(path)
        .and_then(digest_reader)
        .map_err(|e| invalid_input(shown(path), None, format!("the file cannot be read: {e}")))
}

pub(super) fn walk_error(dir: &Path, e: &walkdir::Error) -> GateError {
    let what = shown(e.path().unwrap_or(dir));
    let message = if let Some(ancestor) = e.loop_ancestor() {
        format!(
            "symbolic link loop: it leads back to {}",
            ancestor.display()
        )
    } else if let Some(io) = e.io_error() {
        if io.kind() == io::ErrorKind::NotFound {
            "does not exist (a dangling symbolic link?)".to_owned()
        } else {
            format!("cannot be read: {io}")
        }
    } else {
        e.to_string()
    };
    invalid_input(what, None, message)
}

/// One file of the directory: its relative path, digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FileDigest {
    /// Relative, `/`-separated path.
    pub path: String,
    /// Digest of the bytes.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}
