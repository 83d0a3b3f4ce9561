//! Unit tests of the process gate.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::Pid;
use promotion_core::testing::GateProbe;
use promotion_core::{Digest, GateError, GateKind, Verdict};
use proptest::prelude::*;
use sha2::{Digest as _, Sha256};

use super::*;
use promotion_core::Gate;
use std::collections::BTreeSet;
use std::sync::Arc;

const TOKEN: &str = "tok-9f8e7d6c5b4a3921";

fn data(file: &str) -> String {
    format!("{}/tests/data/process/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn probe() -> GateProbe {
    GateProbe::new().stage("staging")
}

fn sh(script: &str) -> ProcessGateBuilder {
    ProcessGate::builder("/bin/sh").args(["-c", script])
}

fn data_str<'a>(v: &'a Verdict, path: &[&str]) -> &'a str {
    let mut cur = &v.evidence().data;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string in {cur}"))
}

fn fact<'a>(v: &'a Verdict, name: &str) -> Option<&'a str> {
    v.evidence().facts.get(name).map(String::as_str)
}

/// A process that no longer exists, or a zombie waiting for init to reap it (dead all the
/// same: it runs nothing and holds nothing but its pid).
fn is_gone(pid: i32) -> bool {
    match nix::sys::signal::kill(Pid::from_raw(pid), None) {
        Err(Errno::ESRCH) => true,
        Err(_) => false,
        Ok(()) => std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true),
    }
}

async fn wait_gone(pid: i32) -> bool {
    for _ in 0..50 {
        if is_gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn read_pid(dir: &std::path::Path, file: &str) -> i32 {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

// ----- exit status --------------------------------------------------------------------

#[tokio::test]
async fn bin_true_passes_with_digests_of_both_streams() {
    let gate = ProcessGate::builder("/bin/true").build().unwrap();
    assert_eq!(gate.name(), "process:true");
    assert_eq!(gate.kind(), GateKind::Automated);
    let v = probe().evaluate(&gate).await.unwrap();
    assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
    let ev = v.evidence();
    assert_eq!(ev.producer, "process:true");
    assert_eq!(fact(&v, "exit_code"), Some("0"));
    assert!(ev
        .summary
        .starts_with("`/bin/true` exited with code 0 after "));
    let names: Vec<&str> = ev.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["stdout", "stderr"]);
    for a in &ev.attachments {
        assert_eq!(a.digest, Digest::of(b""));
        assert_eq!(a.size, 0);
    }
    assert_eq!(ev.data["working_dir"]["policy"], "temporary");
    assert_eq!(ev.data["status"]["exit_code"], 0);
    assert_eq!(ev.data["accepted_exit_codes"], serde_json::json!([0]));
    assert_eq!(ev.data["leftover_processes_killed"], false);
}

#[tokio::test]
async fn bin_false_fails() {
    let gate = ProcessGate::builder("/bin/false").build().unwrap();
    let v = probe().evaluate(&gate).await.unwrap();
    assert!(matches!(v, Verdict::Fail(_)), "{v:?}");
    assert_eq!(fact(&v, "exit_code"), Some("1"));
    assert!(v
        .evidence()
        .summary
        .contains("exited with code 1, expected 0"));
}

#[tokio::test]
async fn smoke_check_passes_and_sees_params_and_builtins() {
    let gate = ProcessGate::builder("/bin/sh")
        .name("smoke")
        .args([data("smoke-check.sh"), "{region}-{PROMOTION_STAGE}".into()])
        .param("region", "eu-west-1")
        .build()
        .unwrap();
    let probe = probe();
    let v = probe.evaluate(&gate).await.unwrap();
    assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
    let out = data_str(&v, &["stdout", "tail"]);
    let commit = "a".repeat(40);
    assert!(
        out.contains(&format!(
            "smoke check of svc 1.0 (commit {commit}) in stage staging, region eu-west-1-staging"
        )),
        "{out}"
    );
    let id = probe.release_ref().id().to_string();
    assert!(out.contains(&format!("release {id}\n")), "{out}");
    assert!(out.ends_with("healthz: 200 OK\n"));
    assert_eq!(
        v.evidence().attachments[0].digest,
        Digest::of(out.as_bytes()),
        "the stdout digest covers the whole output"
    );
    assert_eq!(v.evidence().data["stdout"]["tail_truncated"], false);
    assert_eq!(
        v.evidence().data["args"][1],
        "eu-west-1-staging",
        "placeholders are resolved in the recorded arguments"
    );
}

#[tokio::test]
async fn smoke_check_exit_3_fails_with_evidence() {
    let gate = ProcessGate::builder("/bin/sh")
        .args([data("smoke-check.sh"), "eu-west-1".into(), "3".into()])
        .build()
        .unwrap();
    let v = probe().evaluate(&gate).await.unwrap();
    let Verdict::Fail(ev) = &v else {
        panic!("expected fail, got {v:?}")
    };
    assert_eq!(fact(&v, "exit_code"), Some("3"));
    assert_eq!(ev.data["status"]["exit_code"], 3);
    assert!(
        ev.summary.contains("exited with code 3, expected 0, after"),
        "{}",
        ev.summary
    );
    assert!(
        ev.summary
            .ends_with("; last stderr line: smoke check failed in eu-west-1"),
        "{}",
        ev.summary
    );
    let err = data_str(&v, &["stderr", "tail"]);
    assert!(err.starts_with("GET https://eu-west-1.example.com/healthz: 503"));
    assert_eq!(ev.attachments[1].digest, Digest::of(err.as_bytes()));
    assert_eq!(ev.data["stderr"]["bytes"], err.len());
}

#[tokio::test]
async fn accepted_exit_codes_are_configurable() {
    let gate = ProcessGate::builder("/bin/sh")
        .args([data("smoke-check.sh"), "eu".into(), "3".into()])
        .accept_exit_codes([0, 3])
        .build()
        .unwrap();
    let v = probe().evaluate(&gate).await.unwrap();
    assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
    assert_eq!(fact(&v, "exit_code"), Some("3"));
    let gate = ProcessGate::builder("/bin/true")
        .accept_exit_codes([1, 2])
        .build()
        .unwrap();
    let v = probe().evaluate(&gate).await.unwrap();
    assert!(matches!(v, Verdict::Fail(_)));
    assert!(v.evidence().summary.contains("expected one of 1, 2"));
}

#[tokio::test]
async fn killed_by_a_signal_fails() {
    let gate = sh("echo about to die >&2; kill -TERM $$").build().unwrap();
    let v = probe().evaluate(&gate).await.unwrap();
    let Verdict::Fail(ev) = &v else {
        panic!("expected fail, got {v:?}")
    };
    assert_eq!(fact(&v, "signal"), Some("SIGTERM"));
    assert_eq!(fact(&v, "exit_code"), None);
    assert_eq!(ev.data["status"]["signal"], 15);
    assert!(
        ev.summary.contains("was killed by signal SIGTERM after")
            && ev.summary.ends_with("last stderr line: about to die"),
        "{}",
        ev.summary
    );
}

// ----- timeouts and process groups ----------------------------------------------------

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let gate = ProcessGate::builder("/bin/sh")
        .arg(data("spawn-and-hang.sh"))
        .working_dir(dir.path())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    let r = probe().evaluate(&gate).await;
    assert!(
        matches!(r, Err(GateError::TimedOut(d)) if d == Duration::from_millis(500)),
        "{r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "killed promptly"
    );
    let runner = read_pid(dir.path(), "runner.pid");
    let grandchild = read_pid(dir.path(), "grandchild.pid");
    assert!(wait_gone(runner).await, "runner {runner} still alive");
    assert!(
        wait_gone(grandchild).await,
        "grandchild {grandchild} still alive"
    );
    assert!(dir.path().is_dir(), "a configured working dir is kept");
}

#[tokio::test]
async fn dropping_the_evaluation_kills_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let gate = ProcessGate::builder("/bin/sh")
        .arg(data("spawn-and-hang.sh"))
        .working_dir(dir.path())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    // The engine's own timeout (or a shutdown) drops the evaluation half-way.
    let probe = probe();
    let r = tokio::time::timeout(Duration::from_millis(500), probe.evaluate(&gate)).await;
    assert!(r.is_err(), "the outer timeout fired first");
    let grandchild = read_pid(dir.path(), "grandchild.pid");
    assert!(wait_gone(read_pid(dir.path(), "runner.pid")).await);
    assert!(
        wait_gone(grandchild).await,
        "grandchild {grandchild} still alive"
    );
}

#[tokio::test]
async fn timeout_can_be_a_fail_with_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let gate = ProcessGate::builder("/bin/sh")
        .arg(data("spawn-and-hang.sh"))
        .working_dir(dir.path())
        .timeout(Duration::from_millis(500))
        .on_timeout(OnTimeout::Fail)
        .build()
        .unwrap();
    let v = probe().evaluate(&gate).await.unwrap();
    let Verdict::Fail(ev) = &v else {
        panic!("expected fail, got {v:?}")
    };
    assert_eq!(fact(&v, "timed_out"), Some("true"));
    assert_eq!(ev.data["status"]["timed_out"], true);
    assert_eq!(ev.data["status"]["output_closed"], true);
    assert!(
        ev.summary
            .ends_with("did not finish within 500 ms; its process group was killed"),
        "{}",
        ev.summary
    );
    let grandchild = read_pid(dir.path(), "grandchild.pid");
    assert_eq!(
        data_str(&v, &["stdout", "tail"]),
        format!("started grandchild {grandchild}\n")
    );
    assert!(wait_gone(grandchild).await);
}

#[tokio::test]
async fn processes_left_behind_are_killed_when_the_main_one_exits() {
    let dir = tempfile::tempdir().unwrap();
    // The background sleep keeps stdout open: without the sweep the gate would wait for it.
    let gate = sh("sleep 300 & echo $! > bg.pid; echo done")
        .working_dir(dir.path())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let started = Instant::now();
    let v = probe().evaluate(&gate).await.unwrap();
    assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(v.evidence().data["leftover_processes_killed"], true);
    assert_eq!(data_str(&v, &["stdout", "tail"]), "done\n");
    assert!(wait_gone(read_pid(dir.path(), "bg.pid")).await);
}

// ----- output capture -----------------------------------------------------------------

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_flood_of_output_is_hashed_in_bounded_memory() {
    const N: u64 = 200_000_000;
    let gate = sh(&format!("yes | head -c {N}"))
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let before = peak_rss_kib();
    let v = probe().evaluate(&gate).await.unwrap();
    let grew = peak_rss_kib().saturating_sub(before);
    eprintln!("flood: peak RSS grew by {grew} KiB");
    assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
    assert!(
        grew < 64 * 1024,
        "peak RSS grew by {grew} KiB for 200 MB of output"
    );
    let ev = v.evidence();
    assert_eq!(ev.data["stdout"]["bytes"], N);
    assert_eq!(ev.data["stdout"]["transcript_bytes"], N);
    assert_eq!(ev.data["stdout"]["tail_truncated"], true);
    let mut expected = Sha256::new();
    let block = "y\n".repeat(32 * 1024);
    for _ in 0..N / block.len() as u64 {
        expected.update(block.as_bytes());
    }
    expected.update(&block.as_bytes()[..(N % block.len() as u64) as usize]);
    let expected = Digest::from_bytes(expected.finalize().into());
    assert_eq!(ev.attachments[0].digest, expected);
    assert_eq!(ev.attachments[0].size, N);
    assert_eq!(ev.data["stdout"]["sha256"], expected.to_string());
    assert_eq!(
        data_str(&v, &["stdout", "tail"]),
        "y\n".repeat(DEFAULT_TAIL_BYTES / 2)
    );
}

#[tokio::test]
async fn output_that_is_not_utf8_is_counted_and_hashed_raw() {
    let gate = sh(r"printf '\377\376ok\n'; printf 'e\n' >&2")
        .tail_bytes(3)
        .build()
        .unwrap();
    let v = probe().evaluate(&gate).await.unwrap();
    let ev = v.evidence();
    assert_eq!(ev.attachments[0].digest, Digest::of(b"\xff\xfeok\n"));
    assert_eq!(ev.data["stdout"]["bytes"], 5);
    assert_eq!(
        ev.data["stdout"]["tail"], "ok\n",
        "tail keeps the last 3 bytes"
    );
    assert_eq!(ev.data["stdout"]["tail_truncated"], true);
    assert_eq!(ev.data["stderr"]["tail"], "e\n");
    let gate = sh(r"printf '\377\376ok\n'").build().unwrap();
    let v = probe().evaluate(&gate).await.unwrap();
    assert_eq!(data_str(&v, &["stdout", "tail"]), "\u{fffd}\u{fffd}ok\n");
}

// ----- environment and working directory ----------------------------------------------

#[tokio::test]
async fn the_environment_is_cleared_to_the_allowlist() {
    let present: Vec<&str> = ["CARGO_MANIFEST_DIR", "HOME", "CARGO", "CARGO_PKG_NAME"]
        .into_iter()
        .filter(|n| std::env::var_os(n).is_some())
        .collect();
    assert!(present.len() >= 2, "the test needs two host variables");
    let (hidden, allowed) = (present[0], present[1]);
    let gate = sh("env")
        .allow_env(allowed)
        .env("EXPLICIT", "1")
        .param("region", "eu")
        .build()
        .unwrap();
    let v = probe().evaluate(&gate).await.unwrap();
    let out = data_str(&v, &["stdout", "tail"]);
    let names: BTreeSet<&str> = out.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(!names.contains(hidden), "{hidden} leaked into {names:?}");
    let mut expected: BTreeSet<&str> = BUILTIN_PARAMS.into_iter().collect();
    expected.extend(["PATH", allowed, "EXPLICIT", "region"]);
    let extra: Vec<_> = names.difference(&expected).collect();
    assert!(extra.iter().all(|n| **n == "PWD"), "unexpected {extra:?}");
    assert!(expected.is_subset(&names), "{names:?}");
    assert!(out.contains(&format!("{allowed}={}\n", std::env::var(allowed).unwrap())));
    let recorded: BTreeSet<&str> = v.evidence().data["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(recorded, expected, "evidence lists the names passed");
    assert!(v.evidence().data["env"].to_string().find('=').is_none());
}

#[tokio::test]
async fn the_temporary_working_directory_is_removed() {
    let gate = sh("pwd; touch made-here").build().unwrap();
    let v = probe().evaluate(&gate).await.unwrap();
    let dir = PathBuf::from(data_str(&v, &["stdout", "tail"]).trim());
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("promotion-process-gate-"),
        "{dir:?}"
    );
    assert!(!dir.exists(), "{dir:?} was left behind");
}

// ----- secrets --------------------------------------------------------------------------

#[tokio::test]
async fn a_secret_reaches_the_child_but_never_the_evidence() {
    let gate = ProcessGate::builder("/bin/sh")
        .arg(data("use-secret.sh"))
        .secret("DEPLOY_TOKEN")
        .secret_source(MemorySecrets::new().with("DEPLOY_TOKEN", TOKEN))
        .build()
        .unwrap();
    let v = probe().evaluate(&gate).await.unwrap();
    assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
    let ev = v.evidence();
    let out = data_str(&v, &["stdout", "tail"]);
    let expected_out = "curl -H 'Authorization: Bearer [REDACTED:DEPLOY_TOKEN]' \
                        https://deploy.example.com/api/status\nstatus: ready\n";
    assert_eq!(out, expected_out);
    assert_eq!(
        data_str(&v, &["stderr", "tail"]),
        "debug: using token [REDACTED:DEPLOY_TOKEN]\n"
    );
    assert_eq!(ev.data["stdout"]["redactions"], 1);
    assert_eq!(
        ev.data["stdout"]["bytes"],
        expected_out.len() - "[REDACTED:DEPLOY_TOKEN]".len() + TOKEN.len(),
        "the byte count is what the process wrote"
    );
    // The digest is of the redacted transcript: it cannot be used to confirm a guess.
    assert_eq!(
        ev.attachments[0].digest,
        Digest::of(expected_out.as_bytes())
    );
    assert_eq!(ev.data["secret_env"], serde_json::json!(["DEPLOY_TOKEN"]));
    let json = serde_json::to_string(ev).unwrap();
    assert!(!json.contains(TOKEN));
    assert!(!format!("{v:?}").contains(TOKEN));
    assert!(!format!("{gate:?}").contains(TOKEN));
    assert!(format!("{gate:?}").contains("DEPLOY_TOKEN"));
}

#[tokio::test]
async fn a_secret_written_into_the_arguments_is_redacted_there_too() {
    let gate = sh(&format!(r#"test "$TOKEN" = '{TOKEN}' && echo same"#))
        .secret_as("TOKEN", "deploy/token")
        .secret_source(Arc::new(MemorySecrets::new().with("deploy/token", TOKEN)))
        .build()
        .unwrap();
    let v = probe().evaluate(&gate).await.unwrap();
    assert!(
        matches!(v, Verdict::Pass(_)),
        "the child received it: {v:?}"
    );
    let ev = v.evidence();
    assert_eq!(
        ev.data["args"][1],
        r#"test "$TOKEN" = '[REDACTED:TOKEN]' && echo same"#
    );
    assert!(!serde_json::to_string(ev).unwrap().contains(TOKEN));
    assert!(!ev.summary.contains(TOKEN));
    // An error message naming the command is redacted as well.
    let gate = ProcessGate::builder(format!("/nonexistent/{TOKEN}"))
        .secret("T")
        .secret_source(MemorySecrets::new().with("T", TOKEN))
        .build()
        .unwrap();
    let e = probe().evaluate(&gate).await.unwrap_err();
    assert!(!e.report().contains(TOKEN), "{}", e.report());
    assert!(
        e.report().contains("/nonexistent/[REDACTED:T]"),
        "{}",
        e.report()
    );
}

#[tokio::test]
async fn a_missing_secret_is_a_configuration_error_naming_it() {
    let gate = ProcessGate::builder("/bin/true")
        .secret("DEPLOY_TOKEN")
        .secret_source(MemorySecrets::new().with("OTHER", TOKEN))
        .build()
        .unwrap();
    let e = probe().evaluate(&gate).await.unwrap_err();
    assert!(
        matches!(&e, GateError::Misconfigured(m) if m.contains("`DEPLOY_TOKEN`")),
        "{e:?}"
    );
    assert!(!e.report().contains(TOKEN));
    let gate = ProcessGate::builder("/bin/true")
        .secret("TEST_UNSET_SECRET_1")
        .secret_source(EnvSecrets::with_prefix("X_"))
        .build()
        .unwrap();
    let e = probe().evaluate(&gate).await.unwrap_err();
    assert!(e.report().contains("X_TEST_UNSET_SECRET_1"), "{e}");
}

// ----- bad input ----------------------------------------------------------------------

#[tokio::test]
async fn a_nonexistent_command_is_an_error_naming_it() {
    for program in ["definitely-not-a-command-7f3a", "/nonexistent/bin/check"] {
        let gate = ProcessGate::builder(program).build().unwrap();
        let e = probe().evaluate(&gate).await.unwrap_err();
        assert!(
            matches!(&e, GateError::Misconfigured(m)
                if m.contains(&format!("command `{program}` not found"))),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn a_script_without_the_execute_bit_is_an_error_naming_it() {
    let path = data("not-executable.sh");
    let gate = ProcessGate::builder(path.as_str()).build().unwrap();
    let e = probe().evaluate(&gate).await.unwrap_err();
    assert!(
        matches!(&e, GateError::Misconfigured(m)
            if m.contains(&path) && m.contains("is not executable")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_missing_working_directory_is_an_error_naming_it() {
    let gate = ProcessGate::builder("/bin/true")
        .working_dir("/nonexistent/promotion-wd")
        .build()
        .unwrap();
    let e = probe().evaluate(&gate).await.unwrap_err();
    assert!(
        matches!(&e, GateError::Misconfigured(m) if m.contains("`/nonexistent/promotion-wd` does not exist")),
        "{e:?}"
    );
}

#[test]
fn outside_a_tokio_runtime_it_is_an_error_not_a_panic() {
    let gate = ProcessGate::builder("/bin/true").build().unwrap();
    let e = futures::executor::block_on(probe().evaluate(&gate)).unwrap_err();
    assert!(
        matches!(&e, GateError::Misconfigured(m) if m.contains("tokio runtime")),
        "{e:?}"
    );
}

// ----- configuration --------------------------------------------------------------------

#[test]
fn bad_settings_are_typed_errors_at_construction() {
    use ProcessConfigError as E;
    let b = || ProcessGate::builder("/bin/true");
    let err = |b: ProcessGateBuilder| b.build().unwrap_err();
    assert_eq!(err(ProcessGate::builder("")), E::EmptyProgram);
    assert!(matches!(err(b().name(" x")), E::InvalidName(_)));
    assert!(matches!(err(b().param("1x", "v")), E::InvalidEnvName { name, .. } if name == "1x"));
    assert!(matches!(err(b().env("A-B", "v")), E::InvalidEnvName { .. }));
    assert!(matches!(
        err(b().allow_env("A B")),
        E::InvalidEnvName { .. }
    ));
    assert!(matches!(
        err(b().param("PROMOTION_STAGE", "x")),
        E::ReservedName { name, .. } if name == "PROMOTION_STAGE"
    ));
    assert!(matches!(
        err(b().param("A", "1").env("A", "2")),
        E::DuplicateName {
            first: "environment variable",
            second: "parameter",
            ..
        }
    ));
    assert!(matches!(
        err(b().param("A", "1").param("A", "2")),
        E::DuplicateName { .. }
    ));
    assert!(matches!(
        err(b()
            .param("A", "1")
            .secret("A")
            .secret_source(MemorySecrets::new())),
        E::DuplicateName {
            second: "secret",
            ..
        }
    ));
    assert!(
        matches!(err(b().param("A", "x\0y")), E::NulByte { what, .. } if what == "parameter `A`")
    );
    assert!(matches!(err(b().arg("a\0")), E::NulByte { what, .. } if what == "argument 1"));
    assert!(matches!(
        err(b().args(["ok", "{regoin}"]).param("region", "eu")),
        E::UnknownPlaceholder { index: 2, name, .. } if name == "regoin"
    ));
    assert!(matches!(
        err(b()
            .arg("{T}")
            .secret("T")
            .secret_source(MemorySecrets::new())),
        E::SecretPlaceholder { index: 1, .. }
    ));
    assert!(matches!(err(b().secret("T")), E::NoSecretSource { names, .. } if names == ["T"]));
    assert!(matches!(
        err(b().secret_as("T", "").secret_source(MemorySecrets::new())),
        E::EmptySecretName { .. }
    ));
    assert!(matches!(
        err(b().accept_exit_codes([])),
        E::NoAcceptedExitCodes { .. }
    ));
    assert!(matches!(
        err(b().accept_exit_codes([0, 256])),
        E::ExitCodeOutOfRange { code: 256, .. }
    ));
    assert!(matches!(
        err(b().accept_exit_codes([-1])),
        E::ExitCodeOutOfRange { code: -1, .. }
    ));
    assert!(matches!(
        err(b().timeout(Duration::ZERO)),
        E::ZeroTimeout { .. }
    ));
    assert!(matches!(
        err(b().tail_bytes(0)),
        E::TailSize { value: 0, .. }
    ));
    assert!(matches!(
        err(b().tail_bytes(MAX_TAIL_BYTES + 1)),
        E::TailSize { .. }
    ));
    assert!(
        matches!(err(b().working_dir("rel/dir")), E::RelativeWorkingDir { path, .. } if path == "rel/dir")
    );
    // Messages name the gate and the setting.
    let msg = err(b().name("smoke").args(["x", "{nope}"])).to_string();
    assert!(
        msg.contains("process gate `smoke`")
            && msg.contains("argument 2")
            && msg.contains("`{nope}`"),
        "{msg}"
    );
    let as_gate: GateError = err(b().timeout(Duration::ZERO)).into();
    assert!(matches!(as_gate, GateError::Misconfigured(_)));
}

#[test]
fn name_kind_and_defaults() {
    let gate = ProcessGate::builder("/usr/local/bin/run-migrations")
        .build()
        .unwrap();
    assert_eq!(gate.name(), "process:run-migrations");
    assert_eq!(gate.timeout(), DEFAULT_TIMEOUT);
    assert_eq!(gate.working_dir(), &WorkingDir::Temporary);
    assert_eq!(gate.program(), "/usr/local/bin/run-migrations");
    let gate = ProcessGate::builder("opa")
        .name("policy-check")
        .kind(GateKind::Compliance)
        .build()
        .unwrap();
    assert_eq!(gate.name(), "policy-check");
    assert_eq!(gate.kind(), GateKind::Compliance);
}

#[test]
fn placeholders_and_literal_braces() {
    use Piece::{Param as P, Text as T};
    assert_eq!(
        parse_template("--region={region}/{PROMOTION_STAGE}"),
        [
            T("--region=".into()),
            P("region".into()),
            T("/".into()),
            P("PROMOTION_STAGE".into())
        ]
    );
    assert_eq!(
        parse_template("awk '{print $1}'"),
        [T("awk '{print $1}'".into())]
    );
    assert_eq!(parse_template("${{HOME}}"), [T("${HOME}".into())]);
    assert_eq!(parse_template("{{region}}"), [T("{region}".into())]);
    assert_eq!(parse_template("{1x} {} {a"), [T("{1x} {} {a".into())]);
    assert_eq!(
        parse_template("}{x}}"),
        [T("}".into()), P("x".into()), T("}".into())]
    );
    assert!(parse_template("").is_empty());
}

// ----- redaction and tails ------------------------------------------------------------

fn redactor(secrets: &[(&str, &str)]) -> Redactor {
    let s: Vec<(String, Secret)> = secrets
        .iter()
        .map(|(n, v)| ((*n).to_owned(), Secret::new(*v)))
        .collect();
    Redactor::new(&s, "t").unwrap()
}

fn stream(r: Redactor, chunks: &[&[u8]], keep: usize) -> Captured {
    let mut c = StreamCapture::new(r, keep);
    for ch in chunks {
        c.feed(ch);
    }
    c.finish()
}

#[test]
fn redaction_spans_chunks_and_prefers_the_longer_secret() {
    let r = redactor(&[("A", "abc"), ("B", "abcdef"), ("E", "")]);
    let input = b"xxabcdefyyabczzab";
    let bytewise: Vec<&[u8]> = input.chunks(1).collect();
    let c = stream(r.clone(), &bytewise, 1024);
    assert_eq!(c.tail, b"xx[REDACTED:B]yy[REDACTED:A]zzab");
    assert_eq!(c.redactions, 2);
    assert_eq!(c.raw_bytes, input.len() as u64);
    assert_eq!(c.digest, Digest::of(&c.tail));
    assert_eq!(r.redact_str("abcdef abc"), "[REDACTED:B] [REDACTED:A]");
}

#[test]
fn the_tail_never_shows_part_of_a_secret_cut_at_its_start() {
    // The tail starts in the middle of where the secret was: it shows the end of the
    // marker, never the end of the secret.
    let r = redactor(&[("S", "hunter2")]);
    let c = stream(r, &[b"pass=hunter2;ok"], 8);
    assert_eq!(c.tail, b"ED:S];ok");
}

proptest! {
    #[test]
    fn streaming_redaction_equals_whole_redaction(
        input in proptest::collection::vec(prop::sample::select(b"abcx".to_vec()), 0..200),
        cuts in proptest::collection::vec(1usize..7, 0..60),
    ) {
        let r = redactor(&[("A", "ab"), ("B", "abca"), ("C", "cx")]);
        let whole = r.redact_str(std::str::from_utf8(&input).unwrap());
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut rest = input.as_slice();
        for c in cuts {
            let (a, b) = rest.split_at(c.min(rest.len()));
            chunks.push(a);
            rest = b;
        }
        chunks.push(rest);
        let c = stream(r, &chunks, 4096);
        prop_assert_eq!(String::from_utf8(c.tail.clone()).unwrap(), whole.clone());
        prop_assert_eq!(c.digest, Digest::of(whole.as_bytes()));
        prop_assert_eq!(c.raw_bytes, input.len() as u64);
    }

    #[test]
    fn the_tail_is_bounded_and_exact(
        pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 0..40),
        keep in 1usize..64,
    ) {
        let mut t = Tail::new(keep);
        let mut all = Vec::new();
        for p in &pieces {
            t.push(p);
            all.extend_from_slice(p);
            prop_assert!(t.buf.len() <= 2 * keep);
        }
        prop_assert_eq!(t.bytes(), &all[all.len().saturating_sub(keep)..]);
    }
}
