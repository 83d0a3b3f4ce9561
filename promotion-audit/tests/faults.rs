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
        // A store's worker threads may close the log's files a moment after the store is
        // dropped: try again, then detach the mount rather than leave it behind.
        for _ in 0..50 {
            let done = Command::new("umount")
                .arg(self.dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if done {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
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

/// Fills the volume holding `filler` until at most `leave` bytes are free (all of it with 0).
fn fill(filler: &Path, leave: u64) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(filler)
        .unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while promotion_audit::sqlite::free_space(filler).unwrap() > leave {
        if std::io::Write::write_all(&mut f, &chunk).is_err() {
            break;
        }
    }
    let _ = f.sync_all();
}

/// Appends `n` entries to `stream` in one transaction straight through the backend.
fn commit_through(w: &mut promotion_audit::SqliteBackend, stream: &StreamId, n: u64) {
    use promotion_audit::backend::Backend;
    let head = w.begin().unwrap();
    let version = w.stream_version(stream).unwrap();
    let (mut seq, mut prev) = (head.size, head.last);
    let entries: Vec<_> = (1..=n)
        .map(|i| {
            let event = event(seq);
            let e =
                promotion_audit::entry::encode(seq, stream, version + i, event.at, &prev, &event)
                    .unwrap();
            (seq, prev) = (seq + 1, e.hash);
            e
        })
        .collect();
    w.insert_entries(&entries).unwrap();
    w.commit().unwrap();
}

fn wal_len(path: &Path) -> u64 {
    std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len())
}

#[test]
fn the_wal_keeps_to_a_share_of_a_small_volume_and_a_full_volume_recovers() {
    use promotion_audit::sqlite::{free_space, wal_bound, WAL_FREE_SHARE, WAL_KEEP_BYTES};
    use promotion_audit::{cause_of, Cause};
    let Some(mount) = Mount::tmpfs("16m") else {
        return skipped("a small volume (mounting a tmpfs needs root)");
    };
    let path = mount.path().join("log.db");
    let filler = mount.path().join("filler");
    let stream = StreamId::new("s").unwrap();
    let append = |store: &AuditStore, version: u64, n: u64| {
        let events: Vec<Event> = (version..version + n).map(event).collect();
        futures::executor::block_on(store.append(&stream, ExpectedVersion::Exact(version), &events))
    };
    // 4 MiB left free: the WAL may take an eighth of it, not its usual 64 MiB.
    fill(&filler, 4 << 20);
    let free = free_space(&path).unwrap();
    // An eighth of 4 MiB, as documented; the function that computes it agrees.
    let bound = free / WAL_FREE_SHARE;
    assert_eq!(bound, wal_bound(WAL_KEEP_BYTES, Some(free)));
    assert!(bound <= 512 * 1024, "{bound}");
    // Commits straight through the writer, with no reader checkpointing between them: the
    // WAL's own bound is all that keeps it small. (Without it the WAL takes the volume.)
    // (A file of its own: these entries have no Merkle nodes, which the store adds.)
    let raw = mount.path().join("raw.db");
    let (mut w, r) = promotion_audit::SqliteBackend::open_pair(&raw).unwrap();
    let (mut high, mut entries) = (0, 0);
    while std::fs::metadata(&raw).unwrap().len() < 2 * bound {
        commit_through(&mut w, &stream, 40);
        entries += 40;
        high = high.max(wal_len(&raw));
    }
    drop((w, r));
    // A commit past the bound checkpoints, and the WAL starts over cut back to it: one
    // commit's pages past the bound at most.
    assert!(
        high <= bound + 256 * 1024,
        "the WAL reached {high} bytes; its bound is {bound}"
    );
    eprintln!(
        "{free} bytes free: WAL bound {bound} bytes, WAL high-water {high} bytes over {entries} entries ({} bytes of log)",
        std::fs::metadata(&raw).unwrap().len()
    );
    for f in ["raw.db", "raw.db-wal", "raw.db-shm"] {
        let _ = std::fs::remove_file(mount.path().join(f));
    }
    let store = AuditStore::open_sqlite(&path, options()).unwrap();
    let mut version = append(&store, 0, 40).unwrap();

    // Full: the append fails, saying so in words and in kind, and nothing of it is in the log.
    fill(&filler, 0);
    let err = append(&store, version, 2000).unwrap_err();
    let chain = chain_of(&err);
    assert!(
        chain.contains("disk full") && chain.contains("nothing was appended"),
        "{chain}"
    );
    assert_eq!(cause_of(&err), Some(Cause::DiskFull), "{chain}");
    // Space freed: the same writer, not restarted, appends again.
    std::fs::remove_file(&filler).unwrap();
    let freed = std::time::Instant::now();
    version = append(&store, version, 10).unwrap();
    let same_writer = freed.elapsed();

    // Full again; the writer is restarted while the volume is full, then space is freed.
    fill(&filler, 0);
    let err = append(&store, version, 2000).unwrap_err();
    assert_eq!(cause_of(&err), Some(Cause::DiskFull), "{}", chain_of(&err));
    drop(store);
    let full_open = AuditStore::open_sqlite(&path, options());
    let restarted = match full_open {
        // Opening writes nothing: it works on a full volume, and the first append says why
        // it cannot.
        Ok(store) => {
            let err = append(&store, version, 2000).unwrap_err();
            assert_eq!(cause_of(&err), Some(Cause::DiskFull), "{}", chain_of(&err));
            std::fs::remove_file(&filler).unwrap();
            let freed = std::time::Instant::now();
            version = append(&store, version, 10).unwrap();
            let took = freed.elapsed();
            drop(store);
            took
        }
        Err(e) => panic!("opening on a full volume: {}", report_chain(&e)),
    };
    // And a writer started after the space was freed works at once.
    let started = std::time::Instant::now();
    let store = AuditStore::open_sqlite(&path, options()).unwrap();
    version = append(&store, version, 10).unwrap();
    let fresh = started.elapsed();
    let report = futures::executor::block_on(store.verify(None)).unwrap();
    assert_eq!(
        report.entries, version,
        "every acknowledged entry, nothing else"
    );
    eprintln!(
        "after space was freed: the same writer appended in {same_writer:?}, a writer restarted \
         on the full volume in {restarted:?}, a writer started afterwards opened and appended \
         in {fresh:?}"
    );
}
