//! PostgreSQL restarted while appends are in flight: every append either fails or succeeds,
//! a retried request (same request id) is applied once, nothing acknowledged is lost, and the
//! log verifies afterwards.
//!
//! Restarting the server disturbs every other user of it, so this test has a binary of its own
//! (cargo runs test binaries one after another) and restarts only when told how:
//! `PROMOTION_TEST_POSTGRES_RESTART` is a shell command that restarts the server of
//! `PROMOTION_TEST_POSTGRES_URL` (`.ci/run` sets both). Without them it says loudly that it is
//! skipped, and under CI (`CI` set) it fails.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use promotion::audit::postgres::harness::{open_store, SchemaGuard};
use promotion::audit::{AuditOptions, CheckpointSigner};
use promotion::*;

fn setup() -> Option<(String, String)> {
    let mut v = support::required_env(
        &[
            "PROMOTION_TEST_POSTGRES_URL",
            "PROMOTION_TEST_POSTGRES_RESTART",
        ],
        "the PostgreSQL restart test",
    )?;
    let restart = v.pop()?;
    Some((v.pop()?, restart))
}

#[test]
fn appends_survive_a_server_restart_exactly_once() {
    let Some((url, restart)) = setup() else {
        return;
    };
    let guard = SchemaGuard::new(&url);
    let options = AuditOptions::new("restart.promotion.test")
        .signer(CheckpointSigner::from_seed("restart.promotion.test", [9u8; 32]).unwrap());
    let store = open_store(&url, &guard.schema, options.clone());
    let (writers, per_writer) = (4usize, 60usize);
    let acked = Arc::new(AtomicUsize::new(0));
    let restarted = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(120);
    let appenders: Vec<_> = (0..writers)
        .map(|w| {
            let (store, acked, restarted) = (store.clone(), acked.clone(), restarted.clone());
            std::thread::spawn(move || {
                let stream = StreamId::new(format!("w{w}")).unwrap();
                let (mut version, mut errors) = (0, 0);
                for i in 0..per_writer {
                    assert!(Instant::now() < deadline, "PostgreSQL did not come back");
                    let request = RequestId::new(format!("w{w}-{i}")).unwrap();
                    errors += support::append_once(&store, &stream, &mut version, &request);
                    acked.fetch_add(1, Ordering::SeqCst);
                    // Keep appending through the restart: slow down only until it has begun.
                    if !restarted.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                errors
            })
        })
        .collect();
    // Restart once a third of the appends are acknowledged, with the rest in flight.
    while acked.load(Ordering::SeqCst) < writers * per_writer / 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = acked.load(Ordering::SeqCst);
    restarted.store(true, Ordering::SeqCst);
    let status = std::process::Command::new("sh")
        .args(["-c", &restart])
        .status()
        .unwrap();
    assert!(status.success(), "`{restart}` failed: {status}");
    let errors: usize = appenders.into_iter().map(|t| t.join().unwrap()).sum();

    let reader = open_store(&url, &guard.schema, options);
    support::assert_each_request_once(&reader, writers, per_writer);
    eprintln!(
        "restarted PostgreSQL after {before} of {} appends; {errors} attempts failed and were retried",
        writers * per_writer
    );
    assert!(errors > 0, "no append saw the restart");
}
