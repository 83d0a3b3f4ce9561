//! Files in the state directory: I/O failures that name the file, and private keys written
//! so that only their owner can read them and an existing key is never overwritten.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::failure::Failure;

/// A store failure naming what was tried on which file: `cannot read <path>: <error>`.
pub(crate) fn io(what: &str, path: &Path, e: std::io::Error) -> Failure {
    Failure::Store(format!("{what} {}: {e}", path.display()))
}

/// Writes a new private key file with mode 0600; fails if `path` already exists.
pub(crate) fn create_private(path: &Path, contents: &[u8]) -> Result<(), Failure> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("cannot create", path, e))?;
    f.write_all(contents)
        .map_err(|e| io("cannot write", path, e))
}
