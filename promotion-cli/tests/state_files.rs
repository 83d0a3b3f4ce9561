//! The state directory's key files after a bad day: what an interrupted first run of an older
//! build left (an empty `checkpoint.key`, a missing or cut-short `checkpoint.vkey`) is repaired
//! by the next command; a verifier key whose private key is gone is refused with advice, and
//! the advice works when followed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A service made by `promote init` in a temporary directory.
struct Service {
    root: tempfile::TempDir,
}

impl Service {
    fn new() -> Service {
        let s = Service {
            root: tempfile::tempdir().unwrap(),
        };
        let out = s.promote(&["init", "--service", "app"]);
        assert!(out.status.success(), "{out:?}");
        s
    }
    fn state(&self, name: &str) -> PathBuf {
        self.root.path().join(".promotion").join(name)
    }
    fn promote(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_promote"));
        cmd.current_dir(self.root.path()).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("PROMOTION_") {
                cmd.env_remove(k);
            }
        }
        cmd.output().unwrap()
    }
    #[track_caller]
    fn expect(&self, args: &[&str], code: i32) -> (String, String) {
        let out = self.promote(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "promote {args:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
        (stdout, stderr)
    }
    fn register(&self, code: i32) -> (String, String) {
        self.expect(
            &["register", "--manifest", "release.toml", "--as", "ci-bot"],
            code,
        )
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn keys_are_private_and_written_whole() {
    let s = Service::new();
    s.register(0);
    let mode = std::fs::metadata(s.state("checkpoint.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = std::fs::read_to_string(s.state("checkpoint.key")).unwrap();
    assert!(key.starts_with("PRIVATE+KEY+promote+"), "{key}");
    assert!(leftovers(&s.state("")).is_empty());
    assert!(leftovers(s.root.path()).is_empty());
    s.expect(&["log", "verify"], 0);
}

#[test]
fn an_empty_key_left_by_an_interrupted_first_run_is_replaced() {
    let s = Service::new();
    std::fs::create_dir_all(s.state("")).unwrap();
    std::fs::write(s.state("checkpoint.key"), "").unwrap();
    s.register(0);
    let key = std::fs::read_to_string(s.state("checkpoint.key")).unwrap();
    assert!(key.starts_with("PRIVATE+KEY+"), "{key}");
    s.expect(&["log", "verify"], 0);
}

#[test]
fn a_missing_or_cut_short_verifier_key_is_derived_again_from_the_key() {
    let s = Service::new();
    s.register(0);
    let vkey = std::fs::read_to_string(s.state("checkpoint.vkey")).unwrap();
    for damage in ["missing", "empty", "cut short"] {
        match damage {
            "missing" => std::fs::remove_file(s.state("checkpoint.vkey")).unwrap(),
            "empty" => std::fs::write(s.state("checkpoint.vkey"), "").unwrap(),
            _ => std::fs::write(s.state("checkpoint.vkey"), &vkey[..vkey.len() / 2]).unwrap(),
        }
        let (_, stderr) = s.expect(&["run", "latest"], 4);
        assert!(stderr.contains("repaired"), "{damage}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(s.state("checkpoint.vkey")).unwrap(),
            vkey,
            "{damage}"
        );
        s.expect(&["log", "verify"], 0);
    }
}

#[test]
fn a_verifier_key_whose_key_is_gone_is_refused_with_advice_that_works() {
    // Nothing recorded yet: the advice is to delete the verifier key.
    let s = Service::new();
    let other = Service::new();
    other.register(0);
    std::fs::create_dir_all(s.state("")).unwrap();
    std::fs::copy(other.state("checkpoint.vkey"), s.state("checkpoint.vkey")).unwrap();
    let (_, stderr) = s.register(3);
    assert!(
        stderr.contains("checkpoint.key is missing")
            && stderr.contains("delete")
            && stderr.contains("checkpoint.vkey"),
        "{stderr}"
    );
    std::fs::remove_file(s.state("checkpoint.vkey")).unwrap();
    s.register(0);
    s.expect(&["log", "verify"], 0);

    // Entries recorded: the advice is to restore the key, and then everything works.
    let key = std::fs::read(other.state("checkpoint.key")).unwrap();
    std::fs::write(other.state("checkpoint.key"), "").unwrap();
    let (_, stderr) = other.expect(&["run", "latest"], 3);
    assert!(
        stderr.contains("checkpoint.key is empty") && stderr.contains("restore"),
        "{stderr}"
    );
    std::fs::write(other.state("checkpoint.key"), key).unwrap();
    other.expect(&["run", "latest"], 4);
    other.expect(&["log", "verify"], 0);
}
