//! Whole files written so that a crash leaves either the old file or the new one, never a
//! part: a temporary file in the same directory, written, fsynced, moved into place, and the
//! directory fsynced so that the move itself survives a power loss.
//!
//! Every file the project writes for its state goes through [`write_file`] or [`write_with`]:
//! the `promote` command's keys and verifier keys, the files `promote init` writes, the
//! readiness page, evidence packs and their archives ([`publish_dir`] moves a pack's directory
//! into place in one step). A private key is created with its final mode (0600) from its first
//! byte: the temporary file is opened with that mode, so no other user can read it at any
//! moment.
//!
//! A kill between the write and the move leaves a temporary file named
//! `.<name>.tmp-<pid>-<n>` beside the target, which nothing reads; it keeps the target's mode
//! (a key's is 0600), and no later write can collide with it (the name holds the writer's pid
//! and a counter). [`remove_stale_temps`] removes those of processes that no longer run; the
//! `promote` command calls it on the directories it writes its state to, when it next opens
//! them.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What to do when the target already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Fail with [`io::ErrorKind::AlreadyExists`] and leave it as it is: for keys, which are
    /// never overwritten, even by two processes creating one at the same moment.
    Keep,
    /// Replace it in one step (`rename`): readers see the old bytes or the new ones.
    Replace,
}

/// Mode of a private key file: read and write for its owner only.
pub const PRIVATE: u32 = 0o600;
/// Mode of an ordinary state file, before the umask (as `std::fs::write` creates files).
pub const SHARED: u32 = 0o666;

/// A durable write failed: which file, at which step, and the operating system's reason as
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {}", path.display())]
pub struct FileError {
    /// The file (or directory) the step was about.
    pub path: PathBuf,
    /// The step, as a verb: `create`, `write`, `sync`, `move into place`.
    pub step: &'static str,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

impl FileError {
    fn at<'p>(step: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> FileError + 'p {
        move |source| FileError {
            path: path.to_owned(),
            step,
            source,
        }
    }
}

/// Writes `bytes` as the whole content of `path` (see the module documentation), creating it
/// with `mode` (before the umask): [`PRIVATE`] for keys, [`SHARED`] otherwise.
pub fn write_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    existing: Existing,
) -> Result<(), FileError> {
    write_with(path, mode, existing, |f| f.write_all(bytes))
}

/// Like [`write_file`], with the content written by `write` into the temporary file (for
/// content made as it is written, such as an archive).
pub fn write_with(
    path: &Path,
    mode: u32,
    existing: Existing,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), FileError> {
    let dir = parent(path);
    let temp = temp_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .map_err(FileError::at("create", path))?;
    let written = write(&mut file)
        .map_err(FileError::at("write", path))
        .and_then(|()| file.sync_all().map_err(FileError::at("sync", path)));
    drop(file);
    let placed = written.and_then(|()| match existing {
        Existing::Replace => std::fs::rename(&temp, path).map_err(FileError::at("replace", path)),
        Existing::Keep => keep_existing(&temp, path),
    });
    // The temporary name is gone after a rename; after a link or a failure it is removed.
    let _ = std::fs::remove_file(&temp);
    placed?;
    sync_dir(&dir)
}

/// Moves the directory `from` (written and synced) to `to`, which must not exist or be an empty
/// directory, in one step, and syncs the parent: a reader finds the whole directory or none.
pub fn publish_dir(from: &Path, to: &Path) -> Result<(), FileError> {
    sync_dir(from)?;
    std::fs::rename(from, to).map_err(FileError::at("move into place", to))?;
    sync_dir(&parent(to))
}

/// Flushes `dir`'s entries (a file created, renamed or removed in it) to the disk.
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FileError::at("sync the directory", dir))
}

/// A name for a temporary file or directory beside `path`, unique in this process and
/// distinct from other processes'.
pub fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy());
    parent(path).join(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// The pid in a temporary name [`temp_path`] made (`.<name>.tmp-<pid>-<n>`), if `name` is one.
fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (target, tail) = rest.rsplit_once(".tmp-")?;
    let (pid, n) = tail.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if target.is_empty() || !digits(pid) || !digits(n) {
        return None;
    }
    pid.parse().ok()
}

/// Removes from `dir` the temporary files (and staged directories) that writes of processes
/// no longer running left behind when they were killed between writing and moving into place;
/// returns what it removed. A temporary name of a process that still runs (this one included)
/// is left alone: its write may be under way. Where the system cannot say which processes run
/// (no `/proc`), nothing is removed: the leftovers are harmless, only untidy.
pub fn remove_stale_temps(dir: &Path) -> Result<Vec<PathBuf>, FileError> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return Ok(Vec::new());
    }
    let me = std::process::id();
    let mut removed = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(FileError::at("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(FileError::at("list", dir))?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_owner) else {
            continue;
        };
        if pid == me || proc.join(pid.to_string()).exists() {
            continue;
        }
        let path = entry.path();
        let gone = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        match gone {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(FileError::at("remove", &path)(e)),
        }
    }
    if !removed.is_empty() {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// `path`'s directory (`.` for a bare file name).
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Puts `temp` at `path` unless `path` exists. A hard link does it in one step and fails if the
/// name is taken; on a file system without hard links, the check and the rename are two steps.
fn keep_existing(temp: &Path, path: &Path) -> Result<(), FileError> {
    match std::fs::hard_link(temp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(FileError::at("create", path)(e)),
        Err(_) if path.exists() => Err(FileError::at("create", path)(io::Error::from(
            io::ErrorKind::AlreadyExists,
        ))),
        Err(_) => std::fs::rename(temp, path).map_err(FileError::at("create", path)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    #[test]
    fn a_private_file_has_mode_0600_from_its_first_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let mut seen = None;
        write_with(&path, PRIVATE, Existing::Keep, |f| {
            // Before any byte is written, the file already refuses everyone else.
            seen = Some(f.metadata()?.permissions().mode() & 0o777);
            f.write_all(b"secret")
        })
        .unwrap();
        assert_eq!(seen, Some(0o600));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn keep_never_overwrites_and_replace_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_file(&path, b"first", PRIVATE, Existing::Keep).unwrap();
        let err = write_file(&path, b"second", PRIVATE, Existing::Keep).unwrap_err();
        assert_eq!(err.source.kind(), io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        write_file(&path, b"third", SHARED, Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"third");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_whole_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_file(&path, b"old", SHARED, Existing::Replace).unwrap();
        let err = write_with(&path, SHARED, Existing::Replace, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("the disk went away"))
        })
        .unwrap_err();
        assert_eq!(err.step, "write");
        assert!(err.source.to_string().contains("the disk went away"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_published_directory_appears_whole_over_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let staged = temp_path(&dir.path().join("pack"));
        std::fs::create_dir(&staged).unwrap();
        write_file(&staged.join("a"), b"a", SHARED, Existing::Keep).unwrap();
        let target = dir.path().join("pack");
        std::fs::create_dir(&target).unwrap();
        publish_dir(&staged, &target).unwrap();
        assert_eq!(std::fs::read(target.join("a")).unwrap(), b"a");
        assert!(!staged.exists());
    }

    #[test]
    fn temporary_files_of_dead_processes_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A pid above any the kernel gives out (pid_max is at most 2^22): never running.
        let dead = 5_000_000;
        let me = std::process::id();
        for name in [
            format!(".checkpoint.key.tmp-{dead}-0"),
            format!(".checkpoint.key.tmp-{me}-3"),
            ".checkpoint.vkey.tmp-1-0".to_owned(), // pid 1 runs
            format!(".notes.tmp-{dead}"),          // not a name temp_path makes
            format!("checkpoint.key.tmp-{dead}-0"),
            "checkpoint.key".to_owned(),
        ] {
            std::fs::write(d.join(name), b"x").unwrap();
        }
        let staged = d.join(format!(".pack.tmp-{dead}-7"));
        std::fs::create_dir(&staged).unwrap();
        std::fs::write(staged.join("manifest.json"), b"{}").unwrap();
        let mut removed = remove_stale_temps(d).unwrap();
        removed.sort();
        assert_eq!(
            removed,
            [
                d.join(format!(".checkpoint.key.tmp-{dead}-0")),
                staged.clone()
            ]
        );
        let mut left = leftovers(d);
        left.sort();
        assert_eq!(
            left,
            [
                format!(".checkpoint.key.tmp-{me}-3"),
                ".checkpoint.vkey.tmp-1-0".to_owned(),
                format!(".notes.tmp-{dead}"),
                format!("checkpoint.key.tmp-{dead}-0"),
            ]
        );
        assert!(d.join("checkpoint.key").exists());
        assert!(remove_stale_temps(d).unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_file_and_keep_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("f");
        let err = write_file(&path, b"x", SHARED, Existing::Replace).unwrap_err();
        assert!(err.to_string().starts_with("cannot create "), "{err}");
        assert!(err.to_string().contains("missing-dir"), "{err}");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("No such file"), "{cause}");
    }
}
