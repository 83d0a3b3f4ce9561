//! Audit log benchmarks: durable appends, verification throughput and memory while verifying.
//!
//! A plain `main` (no criterion) that measures, in one run of one process, on files in one
//! temporary directory (`$TMPDIR`, `/tmp` by default), and prints a table:
//!
//! 1. `append`: durable appends per second to [`AuditStore::open_sqlite`] with a
//!    [`CheckpointSigner`] (the real configuration: WAL, `synchronous = FULL`, one signed
//!    checkpoint per commit) with 1, 8 and 64 concurrent appenders. Each appender is a task on
//!    a two-worker tokio runtime that appends one `GateEvaluated` event (with evidence) at a
//!    time to its own stream with [`ExpectedVersion::Exact`], waiting for each durable
//!    acknowledgement. Side by side: (A) plain rusqlite inserts of the same entry bytes into a
//!    table like the store's, WAL + `synchronous = FULL`, one transaction per insert, one
//!    writer; (B) the disk's own rate of 4 KiB writes each followed by `File::sync_data`, in
//!    place and appending. The disk's speed changes with other work on the machine, so the
//!    configurations run interleaved: 6 rounds, each running every configuration for 500 ms
//!    (`PROMOTION_BENCH_ROUNDS`, `PROMOTION_BENCH_SLICE_MS` shorten it). (C) the ceiling: plain
//!    rusqlite group-committing the same pre-encoded entry bytes from 64 appender tasks
//!    through one writer thread, each batch as one row (as the store writes a batch as one
//!    block), same durability, with no hashing, Merkle nodes, stream index or signing;
//!    the store's rate is reported as a fraction of it, round by round. A fourth store runs 64
//!    appenders with `max_batch = 1`: one signed checkpoint per entry, the worst case. The
//!    old goal (64 appenders at 20 times baseline A) is retired: two cores cap any design
//!    near 9 times.
//! 2. `verify`: builds a log of 300,000 entries through the store (8 concurrent appenders,
//!    250 events per append, 500 events per stream), then times `AuditStore::verify` and
//!    compares its rate over the entry bytes with raw SHA-256 over the same bytes held in
//!    memory. It then times the parts of verification one by one (row reads, node reads,
//!    entry decoding, leaf hashing). Goal: verification at least 50 % of raw SHA-256.
//! 3. `memory`: in a child process (so that the other parts do not inflate its peak), builds a
//!    log of `PROMOTION_BENCH_ENTRIES` entries (default 1,000,000) and verifies it, reporting
//!    the peak resident set size (`VmHWM`) before building, after building (the building store
//!    dropped), and during verification (the peak is reset through `/proc/self/clear_refs`
//!    after the build). Linux only.
//!
//! Run with `cargo bench --bench audit` (all parts, about a minute after the build), or
//! name parts: `cargo bench --bench audit -- append verify`. The ten-million-entry memory
//! run: `PROMOTION_BENCH_ENTRIES=10000000 cargo bench --bench audit -- memory` (about 12 GB
//! of disk and several minutes).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::error::Error;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use common::{gate_event, t0};
use promotion::audit::entry::{decode, encode, GENESIS_PREV};
use promotion::audit::merkle::leaf_hash;
use promotion::audit::verify::CHUNK;
use promotion::audit::{
    AuditOptions, AuditStore, Backend, CheckpointSigner, SqliteBackend, VerifyReport,
};
use promotion::{Event, EventStore, ExpectedVersion, StreamId};
use rusqlite::{params, Connection};
use sha2::{Digest as _, Sha256};

#[path = "common/mod.rs"]
mod common;

type Res<T> = Result<T, Box<dyn Error>>;

/// Part 1 runs every configuration for one slice per round.
const ROUNDS: usize = 6;
const SLICE: Duration = Duration::from_millis(500);
const APPENDERS: [usize; 3] = [1, 8, 64];
/// Entries of the log whose verification is timed (part 3).
const VERIFY_ENTRIES: u64 = 300_000;
/// Default size of the memory part's log; `PROMOTION_BENCH_ENTRIES` overrides it.
const MEMORY_ENTRIES: u64 = 1_000_000;
/// Events per stream when building large logs (a release's history is a few hundred events).
const EVENTS_PER_STREAM: u64 = 500;
/// Events per append when building large logs.
const BUILD_BATCH: u64 = 250;
/// Concurrent appenders when building large logs.
const BUILD_TASKS: usize = 8;
/// Goals.
const VERIFY_GOAL_FRACTION: f64 = 0.5;
/// Set (to the part's name) in the child process that runs the memory part.
const CHILD_ENV: &str = "PROMOTION_BENCH_AUDIT_CHILD";
const ORIGIN: &str = "bench.promotion.test/audit";

fn options() -> Res<AuditOptions> {
    let signer = CheckpointSigner::from_seed("bench.promotion.test", [7u8; 32])?;
    Ok(AuditOptions::new(ORIGIN).signer(signer))
}

/// A release stream's name, as `StreamId::for_release` makes them (`release-<64 hex>`).
fn stream(i: u64) -> StreamId {
    StreamId::new(format!("release-{i:064x}")).expect("valid stream name")
}

fn runtime() -> Res<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A `/proc/self/status` field in kB (Linux).
fn status_kb(field: &str) -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn file_bytes(db: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| {
            let mut p = db.as_os_str().to_owned();
            p.push(s);
            fs::metadata(PathBuf::from(p)).ok().map(|m| m.len())
        })
        .sum()
}

/// The tree sizes of the log's checkpoints: one per commit.
fn checkpoint_sizes(db: &Path) -> Res<Vec<u64>> {
    let c = Connection::open(db)?;
    let mut stmt = c.prepare("SELECT size FROM checkpoints ORDER BY size")?;
    let sizes = stmt
        .query_map([], |r| r.get::<_, i64>(0))?
        .map(|r| r.map(|v| v as u64))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sizes)
}

/// The value at fraction `p` of a sorted slice.
fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    let i = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// User + system CPU seconds in a `/proc` `stat` line (fields 14 and 15, 100 ticks/s).
fn stat_cpu(stat: &str) -> Option<f64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Bytes the process has passed to `write` and `pwrite` (`wchar` in `/proc/self/io`).
fn written() -> u64 {
    fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("wchar:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn process_cpu() -> f64 {
    fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_cpu(&s))
        .unwrap_or(0.0)
}

/// CPU seconds of each audit writer or reader thread (named `promotion-audit-*`), by thread id.
fn writer_cpu() -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let comm = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("promotion-audit") {
            continue;
        }
        if let Some(cpu) = fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|s| stat_cpu(&s))
        {
            out.insert(task.file_name().to_string_lossy().into_owned(), cpu);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 1. Durable appends and their baselines, measured in interleaved slices

/// One configuration's slices added up.
#[derive(Default)]
struct Tally {
    count: u64,
    secs: f64,
    /// Bytes written (WAL, database and checkpoints included).
    written: u64,
    /// The rate of each slice, in order.
    slices: Vec<f64>,
}

impl Tally {
    fn add(&mut self, count: u64, secs: f64) {
        self.count += count;
        self.secs += secs;
        self.slices.push(count as f64 / secs);
    }
    fn rate(&self) -> f64 {
        self.count as f64 / self.secs
    }
    fn written_per(&self) -> f64 {
        self.written as f64 / self.count.max(1) as f64
    }
}

/// A store and its appenders, kept from one slice to the next.
struct Appenders {
    n: usize,
    /// Each commit holds one entry (`max_batch = 1`): one signed checkpoint per entry, the
    /// worst case.
    per_entry: bool,
    db: PathBuf,
    rt: tokio::runtime::Runtime,
    store: AuditStore,
    /// Each appender's stream and that stream's version.
    streams: Vec<(StreamId, u64)>,
    /// Log size before the first timed slice.
    size0: u64,
    tally: Tally,
    latencies: Vec<Duration>,
    /// CPU seconds of the whole process and of the store's writer thread during the slices.
    cpu: f64,
    writer_cpu: f64,
}

impl Appenders {
    fn open(dir: &Path, n: usize, per_entry: bool) -> Res<Self> {
        let db = dir.join(format!("append-{n}-{per_entry}.db"));
        let mut opts = options()?;
        if per_entry {
            opts.max_batch = 1;
        }
        let store = AuditStore::open_sqlite(&db, opts)?;
        let rt = runtime()?;
        let streams: Vec<StreamId> = (0..n as u64).map(stream).collect();
        // Untimed: create every stream.
        rt.block_on(futures::future::try_join_all(streams.iter().map(|s| {
            let store = store.clone();
            async move {
                store
                    .append(s, ExpectedVersion::NoStream, &[gate_event(1)])
                    .await
            }
        })))?;
        Ok(Appenders {
            n,
            per_entry,
            db,
            rt,
            store,
            streams: streams.into_iter().map(|s| (s, 1)).collect(),
            size0: n as u64,
            tally: Tally::default(),
            latencies: Vec::new(),
            cpu: 0.0,
            writer_cpu: 0.0,
        })
    }

    /// Every appender appends one event at a time, each waiting for its acknowledgement,
    /// until `slice` has passed.
    fn run(&mut self, slice: Duration) -> Res<()> {
        let (cpu_before, writer_before) = (process_cpu(), writer_cpu());
        let written_before = written();
        let start = Instant::now();
        let deadline = start + slice;
        let streams = std::mem::take(&mut self.streams);
        let store = self.store.clone();
        let results = self.rt.block_on(async move {
            let tasks: Vec<_> = streams
                .into_iter()
                .map(|(s, mut version)| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let event = gate_event(2);
                        let mut latencies = Vec::new();
                        while Instant::now() < deadline {
                            let t = Instant::now();
                            version = store
                                .append(
                                    &s,
                                    ExpectedVersion::Exact(version),
                                    std::slice::from_ref(&event),
                                )
                                .await?;
                            latencies.push(t.elapsed());
                        }
                        Ok::<_, promotion::StoreError>((s, version, latencies))
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await??);
            }
            Ok::<_, Box<dyn Error>>(out)
        })?;
        let elapsed = secs(start.elapsed());
        self.tally.written += written() - written_before;
        self.cpu += process_cpu() - cpu_before;
        self.writer_cpu += writer_cpu()
            .iter()
            .filter_map(|(tid, t)| writer_before.get(tid).map(|b| t - b))
            .sum::<f64>();
        let mut appends = 0;
        for (s, version, latencies) in results {
            appends += latencies.len() as u64;
            self.latencies.extend(latencies);
            self.streams.push((s, version));
        }
        self.tally.add(appends, elapsed);
        Ok(())
    }

    /// Entries per commit over the timed slices: count, and 10th percentile, median, 90th
    /// percentile and largest (one signed checkpoint is written per commit).
    fn batches(&self) -> Res<(u64, [u64; 4])> {
        let mut sizes = vec![self.size0];
        sizes.extend(
            checkpoint_sizes(&self.db)?
                .into_iter()
                .filter(|s| *s > self.size0),
        );
        let mut batches: Vec<u64> = sizes.windows(2).map(|w| w[1] - w[0]).collect();
        batches.sort_unstable();
        Ok((
            batches.len() as u64,
            [
                percentile(&batches, 0.1),
                percentile(&batches, 0.5),
                percentile(&batches, 0.9),
                batches.last().copied().unwrap_or(0),
            ],
        ))
    }

    fn latency_ms(&mut self, p: f64) -> f64 {
        self.latencies.sort_unstable();
        secs(percentile(&self.latencies, p)) * 1e3
    }
}

/// The bytes of a realistic entry (the event of part 1, framed as entry 1000 of the log).
fn sample_entry() -> Res<(Vec<u8>, [u8; 32])> {
    let e = encode(1000, &stream(0), 2, t0(), &GENESIS_PREV, &gate_event(2))?;
    Ok((e.bytes, e.hash))
}

/// Baseline A: one rusqlite insert per transaction, WAL, `synchronous = FULL`, one writer.
struct SqliteBaseline {
    conn: Connection,
    bytes: Vec<u8>,
    hash: [u8; 32],
    stream: StreamId,
    next: i64,
    tally: Tally,
}

impl SqliteBaseline {
    fn open(dir: &Path) -> Res<Self> {
        let (bytes, hash) = sample_entry()?;
        let conn = Connection::open(dir.join("baseline.db"))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE entries (
                 seq     INTEGER PRIMARY KEY,
                 stream  TEXT    NOT NULL,
                 version INTEGER NOT NULL,
                 bytes   BLOB    NOT NULL,
                 hash    BLOB    NOT NULL,
                 UNIQUE (stream, version)
             );",
        )?;
        Ok(SqliteBaseline {
            conn,
            bytes,
            hash,
            stream: stream(0),
            next: 0,
            tally: Tally::default(),
        })
    }

    fn run(&mut self, slice: Duration) -> Res<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO entries (seq, stream, version, bytes, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let written_before = written();
        let start = Instant::now();
        let deadline = start + slice;
        let mut n = 0u64;
        while Instant::now() < deadline {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            stmt.execute(params![
                self.next,
                self.stream.as_str(),
                self.next + 1,
                self.bytes,
                &self.hash[..]
            ])?;
            self.conn.execute_batch("COMMIT")?;
            self.next += 1;
            n += 1;
        }
        self.tally.add(n, secs(start.elapsed()));
        self.tally.written += written() - written_before;
        Ok(())
    }
}

/// Baseline B: 4 KiB written then `File::sync_data`, in place (`append = false`) or at the end
/// of the file.
struct FsyncBaseline {
    file: fs::File,
    append: bool,
    tally: Tally,
}

impl FsyncBaseline {
    fn open(dir: &Path, append: bool) -> Res<Self> {
        let path = dir.join(if append {
            "fsync-append"
        } else {
            "fsync-inplace"
        });
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)?;
        Ok(FsyncBaseline {
            file,
            append,
            tally: Tally::default(),
        })
    }

    fn run(&mut self, slice: Duration) -> Res<()> {
        let block = [0x5au8; 4096];
        let start = Instant::now();
        let deadline = start + slice;
        let mut n = 0u64;
        while Instant::now() < deadline {
            if self.append {
                self.file.write_all(&block)?;
            } else {
                self.file.write_all_at(&block, 0)?;
            }
            self.file.sync_data()?;
            n += 1;
        }
        self.tally.add(n, secs(start.elapsed()));
        Ok(())
    }
}

/// Ceiling C: what SQLite alone does with the store's group commit and none of its work.
/// `CEILING_APPENDERS` appenders (tasks on a two-worker tokio runtime, like the store's) each
/// hand one pre-encoded entry (the same bytes as the store's entries, so no encoding, hashing,
/// Merkle nodes, stream index or signing) to one writer thread and wait for its
/// acknowledgement; the writer takes every entry waiting (up to the store's 1024) and commits
/// them as one row holding the batch's bytes one after another (the store, too, writes a
/// batch's entries as one block row), with WAL and `synchronous = FULL`, then acknowledges.
/// The store at 64 appenders, as a fraction of this, is what its own work costs.
struct Ceiling {
    conn: Option<Connection>,
    bytes: std::sync::Arc<Vec<u8>>,
    next: i64,
    rt: tokio::runtime::Runtime,
    tally: Tally,
    commits: u64,
}

const CEILING_APPENDERS: usize = 64;

impl Ceiling {
    fn open(dir: &Path) -> Res<Self> {
        let (bytes, _) = sample_entry()?;
        let conn = Connection::open(dir.join("ceiling.db"))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE blocks (
                 first INTEGER PRIMARY KEY,
                 count INTEGER NOT NULL,
                 data  BLOB    NOT NULL
             );",
        )?;
        Ok(Ceiling {
            conn: Some(conn),
            bytes: std::sync::Arc::new(bytes),
            next: 0,
            rt: runtime()?,
            tally: Tally::default(),
            commits: 0,
        })
    }

    fn run(&mut self, slice: Duration) -> Res<()> {
        use std::sync::mpsc;
        type Job = futures::channel::oneshot::Sender<()>;
        let conn = self.conn.take().ok_or("the ceiling's connection is gone")?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (bytes, mut next) = (self.bytes.clone(), self.next);
        let writer = std::thread::spawn(move || -> Result<(Connection, i64, u64), String> {
            let mut commits = 0u64;
            let mut data = Vec::new();
            {
                let mut stmt = conn
                    .prepare_cached("INSERT INTO blocks (first, count, data) VALUES (?1, ?2, ?3)")
                    .map_err(|e| e.to_string())?;
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < 1024 {
                        match rx.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    data.clear();
                    for _ in &batch {
                        data.extend_from_slice(&bytes);
                    }
                    conn.execute_batch("BEGIN IMMEDIATE")
                        .map_err(|e| e.to_string())?;
                    stmt.execute(params![next, batch.len() as i64, &data[..]])
                        .map_err(|e| e.to_string())?;
                    conn.execute_batch("COMMIT").map_err(|e| e.to_string())?;
                    next += batch.len() as i64;
                    commits += 1;
                    for ack in batch {
                        let _ = ack.send(());
                    }
                }
            }
            Ok((conn, next, commits))
        });
        let written_before = written();
        let start = Instant::now();
        let deadline = start + slice;
        let n = self.rt.block_on(async move {
            let tasks: Vec<_> = (0..CEILING_APPENDERS)
                .map(|_| {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let mut n = 0u64;
                        while Instant::now() < deadline {
                            let (ack, done) = futures::channel::oneshot::channel();
                            if tx.send(ack).is_err() || done.await.is_err() {
                                break;
                            }
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            drop(tx);
            let mut n = 0;
            for t in tasks {
                n += t.await.unwrap_or(0);
            }
            n
        });
        let elapsed = secs(start.elapsed());
        let (conn, next, commits) = writer.join().map_err(|_| "the ceiling writer panicked")??;
        self.conn = Some(conn);
        self.next = next;
        self.commits += commits;
        self.tally.add(n, elapsed);
        self.tally.written += written() - written_before;
        Ok(())
    }
}

struct AppendResults {
    fsync_in_place: Tally,
    fsync_append: Tally,
    sqlite: Tally,
    ceiling: Ceiling,
    stores: Vec<Appenders>,
}

/// `ROUNDS` and `SLICE`, or `PROMOTION_BENCH_ROUNDS` and `PROMOTION_BENCH_SLICE_MS` (a short
/// run on a shared machine).
fn rounds_and_slice() -> (usize, Duration) {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    (
        var("PROMOTION_BENCH_ROUNDS").map_or(ROUNDS, |r| r as usize),
        var("PROMOTION_BENCH_SLICE_MS").map_or(SLICE, Duration::from_millis),
    )
}

/// Runs `ROUNDS` rounds; each runs every configuration for one `SLICE`, so that the disk's
/// changing speed (other work shares it) affects every configuration alike.
fn append_part(dir: &Path) -> Res<AppendResults> {
    let mut b_in_place = FsyncBaseline::open(dir, false)?;
    let mut b_append = FsyncBaseline::open(dir, true)?;
    let mut a = SqliteBaseline::open(dir)?;
    let mut c = Ceiling::open(dir)?;
    let mut stores = APPENDERS
        .iter()
        .map(|&n| Appenders::open(dir, n, false))
        .chain(std::iter::once(Appenders::open(dir, 64, true)))
        .collect::<Res<Vec<_>>>()?;
    let (rounds, slice) = rounds_and_slice();
    for _ in 0..rounds {
        b_in_place.run(slice)?;
        b_append.run(slice)?;
        a.run(slice)?;
        c.run(slice)?;
        for s in &mut stores {
            s.run(slice)?;
        }
    }
    Ok(AppendResults {
        fsync_in_place: b_in_place.tally,
        fsync_append: b_append.tally,
        sqlite: a.tally,
        ceiling: c,
        stores,
    })
}

// ---------------------------------------------------------------------------------------------
// Building large logs (parts 3 and 4)

struct Built {
    entries: u64,
    streams: u64,
    secs: f64,
}

/// Appends `entries` events through the store: `BUILD_TASKS` concurrent appenders, each
/// writing whole streams of `EVENTS_PER_STREAM` events in appends of `BUILD_BATCH`.
fn build_log(db: &Path, entries: u64) -> Res<Built> {
    let store = AuditStore::open_sqlite(db, options()?)?;
    let rt = runtime()?;
    let streams = entries.div_ceil(EVENTS_PER_STREAM);
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..BUILD_TASKS as u64)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    let events: Vec<Event> = (1..=BUILD_BATCH as u32).map(gate_event).collect();
                    let mut s = task;
                    while s < streams {
                        let id = stream(s);
                        let len = EVENTS_PER_STREAM.min(entries - s * EVENTS_PER_STREAM);
                        let mut version = 0u64;
                        while version < len {
                            let n = BUILD_BATCH.min(len - version) as usize;
                            let expected = if version == 0 {
                                ExpectedVersion::NoStream
                            } else {
                                ExpectedVersion::Exact(version)
                            };
                            let batch = events.get(..n).unwrap_or(&events);
                            version = store.append(&id, expected, batch).await?;
                        }
                        s += BUILD_TASKS as u64;
                    }
                    Ok::<_, promotion::StoreError>(())
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        Ok::<_, Box<dyn Error>>(())
    })?;
    let size = rt.block_on(store.size())?;
    let elapsed = start.elapsed();
    assert_eq!(size, entries, "the built log has the wrong size");
    Ok(Built {
        entries,
        streams,
        secs: secs(elapsed),
    })
}

fn verify_log(db: &Path) -> Res<(VerifyReport, f64)> {
    let store = AuditStore::open_sqlite_existing(db, options()?)?;
    let start = Instant::now();
    let report = futures::executor::block_on(store.verify(None))?;
    let elapsed = secs(start.elapsed());
    assert!(
        report.signature_checked,
        "the checkpoint signature was checked"
    );
    Ok((report, elapsed))
}

// ---------------------------------------------------------------------------------------------
// 3. Verification throughput

struct VerifyRun {
    built: Built,
    report: VerifyReport,
    verify_secs: f64,
    sha_stream_secs: f64,
    sha_entries_secs: f64,
    read_secs: f64,
    decode_secs: f64,
    leaf_secs: f64,
    nodes_secs: f64,
    nodes: u64,
}

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn verify_run(dir: &Path) -> Res<VerifyRun> {
    let db = dir.join("verify.db");
    let built = build_log(&db, VERIFY_ENTRIES)?;
    let (report, verify_secs) = verify_log(&db)?;

    // The parts of verification, one at a time, through the same backend calls.
    let (_, reader) = SqliteBackend::open_existing_pair(&db)?;
    let start = Instant::now();
    let mut all: Vec<Vec<u8>> = Vec::with_capacity(report.entries as usize);
    loop {
        let chunk = reader.read_range(all.len() as u64, CHUNK)?;
        if chunk.is_empty() {
            break;
        }
        all.extend(chunk.into_iter().map(|e| e.bytes));
    }
    let read_secs = secs(start.elapsed());
    let total: u64 = all.iter().map(|b| b.len() as u64).sum();
    assert_eq!(total, report.bytes, "read the bytes verify hashed");

    let start = Instant::now();
    let mut nodes = 0u64;
    // The levels the file stores (lower ones are computed from the blocks' leaf hashes).
    for level in reader.lowest_stored_level()..64u8 {
        let mut from = 0u64;
        loop {
            let got = reader.read_nodes(level, from, 2 * CHUNK)?;
            let Some(&(last, _)) = got.last() else {
                break;
            };
            nodes += got.len() as u64;
            from = last + 1;
        }
        if from == 0 {
            break;
        }
    }
    let nodes_secs = secs(start.elapsed());

    let start = Instant::now();
    let mut hasher = Sha256::new();
    for b in &all {
        hasher.update(b);
    }
    std::hint::black_box(hasher.finalize());
    let sha_stream_secs = secs(start.elapsed());

    let start = Instant::now();
    let mut x = 0u8;
    for b in &all {
        x ^= Sha256::digest(b)[0];
    }
    std::hint::black_box(x);
    let sha_entries_secs = secs(start.elapsed());

    let start = Instant::now();
    for b in &all {
        std::hint::black_box(leaf_hash(b));
    }
    let leaf_secs = secs(start.elapsed());

    let start = Instant::now();
    for b in &all {
        std::hint::black_box(decode(b)?);
    }
    let decode_secs = secs(start.elapsed());

    Ok(VerifyRun {
        built,
        report,
        verify_secs,
        sha_stream_secs,
        sha_entries_secs,
        read_secs,
        decode_secs,
        leaf_secs,
        nodes_secs,
        nodes,
    })
}

// ---------------------------------------------------------------------------------------------
// 4. Memory while verifying (child process)

struct MemoryRun {
    entries: u64,
    streams: u64,
    disk_mib: f64,
    build_secs: f64,
    verify_secs: f64,
    hwm_start_kb: u64,
    hwm_build_kb: u64,
    rss_before_verify_kb: u64,
    hwm_verify_kb: u64,
    rss_after_verify_kb: u64,
}

fn memory_entries() -> Res<u64> {
    match std::env::var("PROMOTION_BENCH_ENTRIES") {
        Ok(v) => Ok(v.replace('_', "").parse()?),
        Err(_) => Ok(MEMORY_ENTRIES),
    }
}

/// Runs in the child: prints one `@memory` line that the parent parses.
fn memory_child(dir: &Path) -> Res<()> {
    let entries = memory_entries()?;
    let db = dir.join("memory.db");
    let hwm_start_kb = status_kb("VmHWM:");
    let built = build_log(&db, entries)?;
    let hwm_build_kb = status_kb("VmHWM:");
    let disk = file_bytes(&db);
    eprintln!(
        "  built {} entries in {:.1} s ({:.0} entries/s), {:.0} MiB on disk",
        built.entries,
        built.secs,
        built.entries as f64 / built.secs,
        disk as f64 / 1048576.0
    );
    // Reset the peak to the current resident set (Linux >= 4.0).
    fs::write("/proc/self/clear_refs", "5")?;
    let rss_before_verify_kb = status_kb("VmRSS:");
    let (report, verify_secs) = verify_log(&db)?;
    assert_eq!(report.entries, entries);
    let hwm_verify_kb = status_kb("VmHWM:");
    let rss_after_verify_kb = status_kb("VmRSS:");
    println!(
        "@memory {} {} {} {:.3} {:.3} {} {} {} {} {}",
        entries,
        built.streams,
        disk,
        built.secs,
        verify_secs,
        hwm_start_kb,
        hwm_build_kb,
        rss_before_verify_kb,
        hwm_verify_kb,
        rss_after_verify_kb
    );
    Ok(())
}

fn memory_run(dir: &Path) -> Res<MemoryRun> {
    let out = Process::new(std::env::current_exe()?)
        .env(CHILD_ENV, "memory")
        .env("TMPDIR", dir)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("the memory child failed: {}", out.status).into());
    }
    let text = String::from_utf8(out.stdout)?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("@memory "))
        .ok_or("the memory child printed no figures")?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let get = |i: usize| -> Res<&str> { Ok(*f.get(i).ok_or("short @memory line")?) };
    Ok(MemoryRun {
        entries: get(0)?.parse()?,
        streams: get(1)?.parse()?,
        disk_mib: get(2)?.parse::<f64>()? / 1048576.0,
        build_secs: get(3)?.parse()?,
        verify_secs: get(4)?.parse()?,
        hwm_start_kb: get(5)?.parse()?,
        hwm_build_kb: get(6)?.parse()?,
        rss_before_verify_kb: get(7)?.parse()?,
        hwm_verify_kb: get(8)?.parse()?,
        rss_after_verify_kb: get(9)?.parse()?,
    })
}

// ---------------------------------------------------------------------------------------------

fn status(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn main() -> Res<()> {
    let dir = tempfile::Builder::new()
        .prefix("promotion-audit-bench")
        .tempdir()?;
    if std::env::var(CHILD_ENV).as_deref() == Ok("memory") {
        return memory_child(dir.path());
    }
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |p: &str| parts.is_empty() || parts.iter().any(|a| a == p);

    let load_start = loadavg();
    println!(
        "audit bench: {} CPUs, files in {}, load average at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        dir.path().display(),
        load_start
    );
    if let Ok((bytes, _)) = sample_entry() {
        println!(
            "entry: one GateEvaluated event with evidence, {} bytes framed",
            bytes.len()
        );
    }

    let mut appends = None;
    if run("append") {
        let (rounds, slice) = rounds_and_slice();
        println!(
            "\n1. durable appends: {rounds} rounds of {} ms per configuration, interleaved",
            slice.as_millis()
        );
        let mut r = append_part(dir.path())?;
        let show = |name: &str, t: &Tally, unit: &str| {
            let slices: Vec<String> = t.slices.iter().map(|r| format!("{r:.0}")).collect();
            println!(
                "  {name}: {} in {:.2} s = {:.0} {unit}/s (slices: {})",
                t.count,
                t.secs,
                t.rate(),
                slices.join(" ")
            );
        };
        show(
            "B  4 KiB write + sync_data, in place",
            &r.fsync_in_place,
            "syncs",
        );
        show(
            "B  4 KiB write + sync_data, appending",
            &r.fsync_append,
            "syncs",
        );
        show(
            "A  rusqlite, 1 insert per transaction, WAL + synchronous=FULL",
            &r.sqlite,
            "inserts",
        );
        println!(
            "      {:.0} bytes written per insert (WAL and database)",
            r.sqlite.written_per()
        );
        show(
            "C  ceiling: rusqlite group commit of pre-encoded entries, 64 appenders, WAL + synchronous=FULL",
            &r.ceiling.tally,
            "inserts",
        );
        println!(
            "      {} commits, {:.1} entries/commit; {:.0} bytes written per entry",
            r.ceiling.commits,
            r.ceiling.tally.count as f64 / r.ceiling.commits.max(1) as f64,
            r.ceiling.tally.written_per()
        );
        for s in &mut r.stores {
            let (commits, b) = s.batches()?;
            let (p50, p99) = (s.latency_ms(0.5), s.latency_ms(0.99));
            let label = if s.per_entry {
                format!(
                    "AuditStore, {:>2} appenders, max_batch 1 (a checkpoint per entry)",
                    s.n
                )
            } else {
                format!("AuditStore, {:>2} appenders", s.n)
            };
            show(&label, &s.tally, "appends");
            println!(
                "      {commits} commits, {:.1} appends/commit (p10 {}, median {}, p90 {}, max {}); \
                 latency p50 {p50:.2} ms, p99 {p99:.2} ms; CPU: process {:.0} %, writer thread {:.0} % \
                 of one core; {:.0} bytes written per append ({:.0} per commit)",
                s.tally.count as f64 / commits.max(1) as f64,
                b[0],
                b[1],
                b[2],
                b[3],
                100.0 * s.cpu / s.tally.secs,
                100.0 * s.writer_cpu / s.tally.secs,
                s.tally.written_per(),
                s.tally.written as f64 / commits.max(1) as f64
            );
        }
        appends = Some(r);
    }

    let mut verify = None;
    if run("verify") {
        println!("\n2. verification throughput ({VERIFY_ENTRIES} entries)");
        let v = verify_run(dir.path())?;
        let bytes = v.report.bytes;
        println!(
            "  built through the store ({BUILD_TASKS} appenders, {BUILD_BATCH} events per append) in {:.1} s = {:.0} entries/s",
            v.built.secs,
            v.built.entries as f64 / v.built.secs
        );
        println!(
            "  verify(None): {} entries, {} streams, {:.1} MB in {:.2} s = {:.1} MB/s, {:.0} entries/s",
            v.report.entries,
            v.report.streams,
            bytes as f64 / 1e6,
            v.verify_secs,
            mb_s(bytes, v.verify_secs),
            v.report.entries as f64 / v.verify_secs
        );
        println!(
            "  raw SHA-256 over the same bytes in memory: one stream {:.1} MB/s; one digest per entry {:.1} MB/s",
            mb_s(bytes, v.sha_stream_secs),
            mb_s(bytes, v.sha_entries_secs)
        );
        println!(
            "  parts, one at a time: read rows (read_range) {:.2} s, read {} nodes (read_nodes) {:.2} s, \
             decode (entry::decode) {:.2} s, leaf_hash {:.3} s",
            v.read_secs, v.nodes, v.nodes_secs, v.decode_secs, v.leaf_secs
        );
        verify = Some(v);
    }

    let mut memory = None;
    if run("memory") {
        println!(
            "\n3. memory while verifying ({} entries, child process)",
            memory_entries()?
        );
        let m = memory_run(dir.path())?;
        println!(
            "  {} entries, {} streams, {:.0} MiB on disk; built in {:.1} s, verified in {:.1} s",
            m.entries, m.streams, m.disk_mib, m.build_secs, m.verify_secs
        );
        println!(
            "  VmHWM before building {:.1} MiB; after building {:.1} MiB; VmRSS before verifying {:.1} MiB; \
             VmHWM during verification {:.1} MiB; VmRSS after {:.1} MiB",
            mib(m.hwm_start_kb),
            mib(m.hwm_build_kb),
            mib(m.rss_before_verify_kb),
            mib(m.hwm_verify_kb),
            mib(m.rss_after_verify_kb)
        );
        memory = Some(m);
    }

    println!("\nsummary");
    println!("| benchmark | result | goal | status |");
    println!("|---|---|---|---|");
    if let Some(r) = &appends {
        let a = r.sqlite.rate();
        for s in &r.stores {
            let ratio = s.tally.rate() / a;
            let per_round: Vec<f64> = s
                .tally
                .slices
                .iter()
                .zip(&r.sqlite.slices)
                .map(|(s, a)| s / a)
                .collect();
            let mut sorted = per_round.clone();
            sorted.sort_by(f64::total_cmp);
            let c = r.ceiling.tally.rate();
            let mut of_c: Vec<f64> = s
                .tally
                .slices
                .iter()
                .zip(&r.ceiling.tally.slices)
                .map(|(s, c)| s / c)
                .collect();
            of_c.sort_by(f64::total_cmp);
            println!(
                "| durable appends, {} appenders{} | {:.0} appends/s = {ratio:.1}× A \
                 (rounds: min {:.1}×, median {:.1}×, max {:.1}×) = {:.0} % of ceiling C \
                 (rounds: min {:.0} %, median {:.0} %, max {:.0} %) | none (the 20× goal is retired) | — |",
                s.n,
                if s.per_entry { ", a checkpoint per entry" } else { "" },
                s.tally.rate(),
                percentile(&sorted, 0.0),
                percentile(&sorted, 0.5),
                percentile(&sorted, 1.0),
                100.0 * s.tally.rate() / c,
                100.0 * percentile(&of_c, 0.0),
                100.0 * percentile(&of_c, 0.5),
                100.0 * percentile(&of_c, 1.0)
            );
        }
        println!(
            "| ceiling C, rusqlite group commit, 64 appenders, no hashing | {:.0} inserts/s = {:.1}× A | | |",
            r.ceiling.tally.rate(),
            r.ceiling.tally.rate() / a
        );
        println!("| baseline A, rusqlite 1 insert/txn | {a:.0} inserts/s | | |");
        println!(
            "| baseline B, 4 KiB + sync_data | {:.0} syncs/s in place, {:.0} appending | | |",
            r.fsync_in_place.rate(),
            r.fsync_append.rate()
        );
    }
    if let Some(v) = &verify {
        let bytes = v.report.bytes;
        let frac = v.sha_stream_secs / v.verify_secs;
        println!(
            "| verify, {} entries | {:.1} MB/s vs raw SHA-256 {:.1} MB/s | ≥ {:.0} % | {} ({:.1} %) |",
            v.report.entries,
            mb_s(bytes, v.verify_secs),
            mb_s(bytes, v.sha_stream_secs),
            VERIFY_GOAL_FRACTION * 100.0,
            status(frac >= VERIFY_GOAL_FRACTION),
            frac * 100.0
        );
    }
    if let Some(m) = &memory {
        println!(
            "| peak RSS verifying {} entries | {:.1} MiB (before verify {:.1} MiB) | bounded | — |",
            m.entries,
            mib(m.hwm_verify_kb),
            mib(m.rss_before_verify_kb)
        );
    }
    println!("load average at end {}", loadavg());
    Ok(())
}
