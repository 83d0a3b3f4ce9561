//! A bad day for the SQLite log's file: read-only (the file, or its mount), unreadable, full,
//! corrupted. Each error must name the cause in words and keep the SQLite or operating-system
//! error as its source, and a log that cannot be written is refused when it is opened for
//! writing, not at the first append.
//!
//! Root ignores file modes, so when these tests run as root the file-mode cases re-run
//! themselves as user 65534 (`setpriv`, util-linux), and the mount cases (a read-only mount, a
//! full 1 MiB tmpfs) need root's `mount`. Where neither is possible the case prints
//! `SKIPPED: …` and does not count as a pass; under CI it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use promotion_audit::{AuditOptions, AuditStore, CheckpointSigner};
use promotion_core::{
    report_chain, Actor, Event, EventBody, EventStore, ExpectedVersion, StageName, StreamId,
};

/// Set in the copy of this binary that runs a case as an unprivileged user.
const CHILD: &str = "PROMOTION_FAULTS_UNPRIVILEGED";

fn options() -> AuditOptions {
    AuditOptions::new("faults.promotion.test")
        .signer(CheckpointSigner::from_seed("faults.promotion.test", [5u8; 32]).unwrap())
}

fn event(n: u64) -> Event {
    let at: DateTime<Utc> = "2026-11-26T09:00:00Z".parse().unwrap();
    Event {
        at,
        actor: Actor::Engine,
        request: None,
        body: EventBody::StageReady {
            stage: StageName::new(format!("stage-{n:06}")).unwrap(),
        },
    }
}

/// A log at `path` holding `n` entries. It is written elsewhere and copied whole to `path`
/// (`VACUUM INTO`), so that no connection of this process has ever opened `path`: SQLite reuses
/// a file descriptor a closed connection of the same process left open on the same file, which
/// would let it write a file whose mode has since become read-only.
fn log_with(path: &Path, n: u64) {
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("source.db");
    let store = AuditStore::open_sqlite(&source, options()).unwrap();
    let stream = StreamId::new("s").unwrap();
    let events: Vec<Event> = (0..n).map(event).collect();
    futures::executor::block_on(store.append(&stream, ExpectedVersion::Exact(0), &events)).unwrap();
    rusqlite::Connection::open(&source)
        .unwrap()
        .execute("VACUUM INTO ?1", [path.to_str().unwrap()])
        .unwrap();
    // Back to WAL mode, as the log was; this one connection closes with nothing left open.
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch("PRAGMA journal_mode = WAL;")
        .unwrap();
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// Says loudly that a case did not run; under CI (`CI` set), where `.ci/run` runs as root and
/// can mount, that is a failure, never a pass.
fn skipped(what: &str) {
    eprintln!("SKIPPED: {what} did not run");
    if std::env::var_os("CI").is_some() {
        panic!("SKIPPED: {what} did not run (and CI is set: the fault cases are required)");
    }
}

/// Whether the caller should stop: as root, runs `test` again in a copy of this binary as user
/// 65534 and checks that it passed.
fn rerun_unprivileged(test: &str) -> bool {
    if !is_root() {
        return false;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("TMPDIR", "/tmp")
        .output();
    match out {
        Ok(o) => {
            let stdout = String::from_utf8_lossy(&o.stdout);
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(
                o.status.success() && stdout.contains("1 passed"),
                "{test} as user 65534:\n{stdout}\n{stderr}"
            );
            eprint!("{stderr}");
        }
        Err(e) => skipped(&format!(
            "{test} (running as root, and setpriv is not usable to drop to user 65534: {e})"
        )),
    }
    true
}

/// A tmpfs of `size` mounted on a new directory, unmounted on drop; `None` where mounting is
/// impossible (not root, or no CAP_SYS_ADMIN).
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn tmpfs(size: &str) -> Option<Mount> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Mount { dir })
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn remount_read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "remounting {} read-only", self.path().display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// The error's whole chain, and whether a source is there at all.
#[track_caller]
fn chain_of(e: &(dyn std::error::Error + 'static)) -> String {
    assert!(e.source().is_some(), "no source kept: {e}");
    report_chain(e)
}

#[test]
fn a_read_only_file_is_refused_when_opened_for_writing() {
    if std::env::var_os(CHILD).is_none()
        && rerun_unprivileged("a_read_only_file_is_refused_when_opened_for_writing")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    log_with(&path, 3);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let err = AuditStore::open_sqlite(&path, options()).unwrap_err();
    let chain = report_chain(&err);
    assert!(
        chain.contains("read-only file or mount") && chain.contains("log.db"),
        "{chain}"
    );
    // A reader still reads it.
    let store = AuditStore::open_sqlite_existing(&path, options()).unwrap();
    let report = futures::executor::block_on(store.verify(None)).unwrap();
    assert_eq!(report.entries, 3);
}

#[test]
fn a_file_it_may_not_open_is_refused_with_permission_denied() {
    if std::env::var_os(CHILD).is_none()
        && rerun_unprivileged("a_file_it_may_not_open_is_refused_with_permission_denied")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    log_with(&path, 3);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    for err in [
        AuditStore::open_sqlite(&path, options()).unwrap_err(),
        AuditStore::open_sqlite_existing(&path, options()).unwrap_err(),
    ] {
        let chain = chain_of(&err);
        assert!(chain.contains("permission denied"), "{chain}");
    }
}

#[test]
fn a_log_on_a_read_only_mount_is_refused_when_opened_for_writing() {
    let Some(mount) = Mount::tmpfs("4m") else {
        return skipped("a read-only mount (mounting a tmpfs needs root)");
    };
    let path = mount.path().join("log.db");
    log_with(&path, 3);
    mount.remount_read_only();
    let err = AuditStore::open_sqlite(&path, options()).unwrap_err();
    let chain = report_chain(&err);
    assert!(chain.contains("read-only file or mount"), "{chain}");
}

#[test]
fn a_full_disk_is_named_and_appending_works_again_once_space_is_freed() {
    let Some(mount) = Mount::tmpfs("1m") else {
        return skipped("a full disk (mounting a tmpfs needs root)");
    };
    let path = mount.path().join("log.db");
    let store = AuditStore::open_sqlite(&path, options()).unwrap();
    let stream = StreamId::new("s").unwrap();
    let mut version =
        futures::executor::block_on(store.append(&stream, ExpectedVersion::Exact(0), &[event(0)]))
            .unwrap();
    // Fill what is left of the volume.
    let filler = mount.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    // More pages than the WAL holds: the commit must grow a file on the full volume.
    let events: Vec<Event> = (0..2000).map(event).collect();
    let err = futures::executor::block_on(store.append(
        &stream,
        ExpectedVersion::Exact(version),
        &events,
    ))
    .unwrap_err();
    let chain = chain_of(&err);
    assert!(
        chain.contains("disk full") && chain.contains("nothing was appended"),
        "{chain}"
    );
    std::fs::remove_file(&filler).unwrap();
    version = futures::executor::block_on(store.append(
        &stream,
        ExpectedVersion::Exact(version),
        &events[..10],
    ))
    .unwrap();
    assert_eq!(version, 11);
    let report = futures::executor::block_on(store.verify(None)).unwrap();
    assert_eq!(report.entries, 11);
}

#[test]
fn garbage_bytes_are_named_a_corrupted_file() {
    let dir = tempfile::tempdir().unwrap();
    // Not a database at all.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0xa5u8; 16 * 1024]).unwrap();
    let err = AuditStore::open_sqlite(&junk, options()).unwrap_err();
    assert!(err.to_string().contains("corrupted"), "{err}");
    // A log whose header survived and whose other pages did not.
    let path: PathBuf = dir.path().join("log.db");
    log_with(&path, 400);
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    assert!(len > 4 * 4096, "{len} bytes");
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[4096..] {
        *b = 0xa5;
    }
    std::fs::write(&path, bytes).unwrap();
    let chain = match AuditStore::open_sqlite_existing(&path, options()) {
        Err(e) => chain_of(&e),
        Ok(store) => {
            let e = futures::executor::block_on(store.verify(None)).unwrap_err();
            chain_of(&e)
        }
    };
    assert!(
        chain.contains("corrupted file") && chain.contains("malformed"),
        "{chain}"
    );
}

#[test]
fn a_proof_that_meets_a_failing_store_keeps_the_store_error_as_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let store = AuditStore::open_sqlite(&path, options()).unwrap();
    let stream = StreamId::new("s").unwrap();
    let events: Vec<Event> = (0..200).map(event).collect();
    futures::executor::block_on(store.append(&stream, ExpectedVersion::Exact(0), &events)).unwrap();
    futures::executor::block_on(store.inclusion_proof(3, 200)).unwrap();
    // The stored Merkle nodes go away underneath the open store.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE nodes;")
        .unwrap();
    let err = futures::executor::block_on(store.inclusion_proof(3, 200)).unwrap_err();
    assert!(
        matches!(
            err,
            promotion_audit::AuditError::Proof(promotion_audit::merkle::ProofError::Storage(_))
        ),
        "{err:?}"
    );
    let chain = chain_of(&err);
    assert!(
        chain.starts_with("the node store failed: reading")
            && chain.contains("log.db")
            && chain.contains("no such table: nodes"),
        "{chain}"
    );
    // The source is SQLite's own error, not a copy of its text.
    let source = std::error::Error::source(&err).unwrap();
    assert!(
        source.downcast_ref::<rusqlite::Error>().is_some(),
        "{source:?}"
    );
}
