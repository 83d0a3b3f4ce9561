//! Outside anchors, end to end with the real binary (issue 16, item 3): a checkpoint saved
//! with `log checkpoint` exposes a rolled-back or forked log to `log verify
//! --trusted-checkpoint`; `witness` cosigns only a checkpoint consistent with the last one it
//! cosigned (C2SP tlog-cosignature v1, https://c2sp.org/tlog-cosignature) and refuses
//! rollbacks and forks; `log verify --min-witnesses` counts the cosignatures. `log export` and
//! `log import` carry the log out and back in, verified. Every refusal is one line.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A service made by `promote init` in a temporary directory.
struct Service {
    root: tempfile::TempDir,
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Service {
    fn new() -> Service {
        let s = Service {
            root: tempfile::tempdir().unwrap(),
        };
        s.expect(&["init", "--service", "app"], 0);
        s
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }
    fn p(&self, rel: &str) -> String {
        self.path(rel).to_str().unwrap().to_owned()
    }
    fn promote(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_promote"));
        cmd.current_dir(self.root.path()).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("PROMOTION_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd.output().unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    #[track_caller]
    fn expect(&self, args: &[&str], code: i32) -> Run {
        let r = self.promote(args);
        assert_eq!(
            r.code,
            Some(code),
            "promote {args:?}\n--- stdout\n{}\n--- stderr\n{}",
            r.stdout,
            r.stderr
        );
        if code != 0 {
            assert_eq!(r.stderr.lines().count(), 1, "one error line: {}", r.stderr);
        }
        r
    }
    fn register(&self) {
        self.expect(
            &["register", "--manifest", "release.toml", "--as", "ci-bot"],
            0,
        );
    }
    /// The size the latest checkpoint signs.
    fn size(&self) -> u64 {
        let note = self.expect(&["log", "checkpoint"], 0).stdout;
        note.lines().nth(1).unwrap().parse().unwrap()
    }
    /// Runs the witness (state and key under `witness/`) on `checkpoint`.
    fn witness(&self, checkpoint: &str, proof: Option<&str>, out: &str, code: i32) -> Run {
        let (state, key, vkey) = (
            self.p("witness"),
            self.p("witness/key"),
            self.p(".promotion/checkpoint.vkey"),
        );
        let mut args = vec![
            "witness",
            "--state",
            &state,
            "--key",
            &key,
            "--name",
            "witness.promotion.test/w1",
            "--log-vkey",
            &vkey,
            checkpoint,
            "--out",
            out,
        ];
        if let Some(p) = proof {
            args.extend(["--proof", p]);
        }
        self.expect(&args, code)
    }
    fn proof(&self, old: u64, new: u64, to: &str) {
        let text = self
            .expect(
                &[
                    "log",
                    "proof",
                    "consistency",
                    &old.to_string(),
                    &new.to_string(),
                ],
                0,
            )
            .stdout;
        std::fs::write(self.path(to), text).unwrap();
    }
}

/// Copies the state directory of `from` (log, keys) over `to`'s: the two logs then share
/// every entry so far and the signing key, and fork at their next appends.
fn copy_state(from: &Service, to: &Service) {
    let dst = to.path(".promotion");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(from.path(".promotion")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

fn truncate_log(db: &Path, keep: u64) {
    let tamper = promotion_audit::sqlite::harness::sqlite_tamper(db);
    tamper.truncate(keep);
    tamper.delete_checkpoints(keep + 1);
}

#[test]
fn a_saved_checkpoint_exposes_a_rolled_back_log() {
    let s = Service::new();
    s.register();
    let early = s.size();
    s.register();
    let saved = s.p("saved.checkpoint");
    let r = s.expect(&["log", "checkpoint", "--out", &saved], 0);
    let size = s.size();
    assert!(r.stdout.contains(&format!("size {size}")), "{}", r.stdout);
    assert!(size > early);
    // Published to a directory: `<size>.checkpoint` and `latest`, the same note.
    std::fs::create_dir(s.path("published")).unwrap();
    s.expect(&["log", "checkpoint", "--out", &s.p("published")], 0);
    let note = std::fs::read_to_string(&saved).unwrap();
    assert_eq!(
        std::fs::read_to_string(s.path(&format!("published/{size}.checkpoint"))).unwrap(),
        note
    );
    assert_eq!(
        std::fs::read_to_string(s.path("published/latest")).unwrap(),
        note
    );

    let r = s.expect(&["log", "verify", "--trusted-checkpoint", &saved], 0);
    assert!(
        r.stdout
            .contains(&format!("trusted checkpoint at size {size}")),
        "{}",
        r.stdout
    );

    // The newest entries and checkpoints deleted: the log verifies on its own, not against
    // the saved checkpoint; the error names both sizes.
    truncate_log(&s.path(".promotion/audit.db"), early);
    s.expect(&["log", "verify"], 0);
    let r = s.expect(&["log", "verify", "--trusted-checkpoint", &saved], 1);
    assert!(
        r.stderr.contains(&format!("holds {early} entries"))
            && r.stderr.contains(&format!("signs {size}"))
            && r.stderr.contains("rolled back"),
        "{}",
        r.stderr
    );
    let r = s.expect(
        &["log", "verify", "--trusted-checkpoint", &saved, "--json"],
        1,
    );
    assert!(r.stdout.contains("\"ok\":false"), "{}", r.stdout);
}

#[test]
fn a_fork_from_a_shared_prefix_does_not_verify_and_the_witness_refuses_it() {
    let a = Service::new();
    a.register();
    let prefix = a.size();
    let b = Service::new();
    copy_state(&a, &b);
    // Two histories from one prefix, signed by the same key under the same origin.
    a.register();
    b.register();
    b.register();
    let (size_a, size_b) = (a.size(), b.size());
    assert!(size_b > size_a && size_a > prefix);
    let saved_a = a.p("a.checkpoint");
    a.expect(&["log", "checkpoint", "--out", &saved_a], 0);
    let saved_b = b.p("b.checkpoint");
    b.expect(&["log", "checkpoint", "--out", &saved_b], 0);

    // A checkpoint saved from log A does not verify log B, and the reverse.
    let r = b.expect(&["log", "verify", "--trusted-checkpoint", &saved_a], 1);
    assert!(r.stderr.contains("fork"), "{}", r.stderr);
    let r = a.expect(&["log", "verify", "--trusted-checkpoint", &saved_b], 1);
    assert!(r.stderr.contains("rolled back"), "{}", r.stderr);

    // The witness sees A first; then B's larger checkpoint with B's honest proof from A's
    // size: B's tree at that size is not A's, so the proof fails and the witness refuses.
    a.witness(&saved_a, None, &a.p("a.cosigned"), 0);
    b.proof(size_a, size_b, "b.proof");
    let r = a.witness(&saved_b, Some(&b.p("b.proof")), &a.p("b.cosigned"), 1);
    assert!(
        r.stderr.contains("witness refuses") && r.stderr.contains("fork"),
        "{}",
        r.stderr
    );
    assert!(!a.path("b.cosigned").exists(), "nothing cosigned");
    // Refusing did not move the witness: A's next checkpoint, with A's proof, is cosigned.
    a.register();
    let next = a.p("next.checkpoint");
    a.expect(&["log", "checkpoint", "--out", &next], 0);
    a.proof(size_a, a.size(), "a.proof");
    a.witness(&next, Some(&a.p("a.proof")), &a.p("next.cosigned"), 0);
}

#[test]
fn the_witness_cosigns_extensions_refuses_rollback_and_verify_counts_cosignatures() {
    let s = Service::new();
    s.register();
    let first = s.p("first.checkpoint");
    s.expect(&["log", "checkpoint", "--out", &first], 0);
    let old = s.size();
    let r = s.witness(&first, None, &s.p("first.cosigned"), 0);
    assert!(
        r.stdout.contains("witness.promotion.test/w1"),
        "{}",
        r.stdout
    );
    assert!(s.path("witness/key.vkey").exists());

    s.register();
    let second = s.p("second.checkpoint");
    s.expect(&["log", "checkpoint", "--out", &second], 0);
    let new = s.size();
    // Without a proof, an extension is not taken on faith.
    let r = s.witness(&second, None, &s.p("x"), 1);
    assert!(r.stderr.contains("consistency proof"), "{}", r.stderr);
    s.proof(old, new, "proof");
    s.witness(&second, Some(&s.p("proof")), &s.p("second.cosigned"), 0);
    let cosigned = std::fs::read_to_string(s.path("second.cosigned")).unwrap();
    let line = cosigned.lines().last().unwrap();
    assert!(
        line.starts_with("\u{2014} witness.promotion.test/w1 "),
        "{cosigned}"
    );

    // Shown the older checkpoint again: a rollback, refused.
    let r = s.witness(&first, None, &s.p("y"), 1);
    assert!(r.stderr.contains("rollback"), "{}", r.stderr);

    // verify --min-witnesses: the cosigned copy verifies, the bare checkpoint does not.
    let w = s.p("witness/key.vkey");
    let required = |cp: &str, code| {
        s.expect(
            &[
                "log",
                "verify",
                "--trusted-checkpoint",
                cp,
                "--witness-vkey",
                &w,
                "--min-witnesses",
                "1",
            ],
            code,
        )
    };
    let r = required(&s.p("second.cosigned"), 0);
    assert!(
        r.stdout.contains("1 witness cosignatures verified"),
        "{}",
        r.stdout
    );
    let r = required(&second, 1);
    assert!(
        r.stderr
            .contains("0 valid witness cosignatures, 1 required"),
        "{}",
        r.stderr
    );
    // More required than keys given: a usage error.
    s.expect(&["log", "verify", "--min-witnesses", "1"], 2);
    // A damaged cosignature (one base64 digit of its signature changed) does not count.
    let at = cosigned.len() - 20;
    let digit = if &cosigned[at..=at] == "A" { "B" } else { "A" };
    let damaged = format!("{}{digit}{}", &cosigned[..at], &cosigned[at + 1..]);
    std::fs::write(s.path("damaged"), damaged).unwrap();
    let r = required(&s.p("damaged"), 1);
    assert!(
        r.stderr.contains("0 valid witness cosignatures") && r.stderr.contains("does not verify"),
        "{}",
        r.stderr
    );
}

#[test]
fn proofs_print_one_hash_per_line_and_bad_sizes_are_one_line() {
    let s = Service::new();
    s.register();
    s.register();
    let size = s.size();
    let r = s.expect(&["log", "proof", "inclusion", "0"], 0);
    assert!(!r.stdout.is_empty());
    for line in r.stdout.lines() {
        assert_eq!(line.len(), 44, "base64 of 32 bytes: {line}");
    }
    s.expect(&["log", "proof", "inclusion", &size.to_string()], 2);
    s.expect(&["log", "proof", "consistency", "0", "1"], 2);
    s.expect(
        &["log", "proof", "consistency", "1", &(size + 1).to_string()],
        2,
    );
}

/// The workspace README's anchor sequence (its audit section), as written there, after its
/// walkthrough: each line's exit
/// code as its comment says (`exit N`), `> FILE` written from the command's output.
#[test]
fn the_readme_anchor_sequence_works() {
    let readme = include_str!("../../README.md");
    let block = |after: &str, lang: &str| -> String {
        let start = readme
            .find(after)
            .unwrap_or_else(|| panic!("{after} not in README"));
        let rest = &readme[start..];
        let open = rest.find(&format!("```{lang}\n")).unwrap() + lang.len() + 4;
        let close = rest[open..].find("```").unwrap();
        rest[open..open + close].to_owned()
    };
    let s = Service {
        root: tempfile::tempdir().unwrap(),
    };
    std::fs::write(s.path("hello.toml"), block("`hello.toml`:", "toml")).unwrap();
    std::fs::write(s.path("release.toml"), block("`release.toml`", "toml")).unwrap();
    std::fs::write(s.path("roster.toml"), block("`roster.toml`", "toml")).unwrap();
    std::fs::write(
        s.path("promotion.toml"),
        block("`promotion.toml`, the service file", "toml"),
    )
    .unwrap();
    let walkthrough = block("Take it through:", "sh");
    let anchors = block("anchor the log:", "sh");
    assert!(anchors.contains("witness") && anchors.contains("--min-witnesses"));
    let mut ran = 0;
    // the "Who acted" section's refused attack, run after the walkthrough like the anchors
    let refused = block("the issue-15 attack is refused:", "sh");
    assert!(refused.contains("--groups") && refused.contains("exit 1"));
    for line in walkthrough
        .lines()
        .chain(anchors.lines())
        .chain(refused.lines())
    {
        let (command, comment) = line.split_once('#').unwrap_or((line, ""));
        let (command, to) = match command.split_once('>') {
            Some((c, file)) => (c, Some(file.trim())),
            None => (command, None),
        };
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.first() {
            Some(&"mkdir") => {
                std::fs::create_dir_all(s.path(words.last().unwrap())).unwrap();
                continue;
            }
            Some(&"promote") => {}
            _ => continue,
        }
        let expected = match comment.trim().strip_prefix("exit ") {
            Some(rest) => rest[..1].parse().unwrap(),
            None => 0,
        };
        let r = s.promote(&words[1..]);
        assert_eq!(r.code, Some(expected), "{line}\n{}\n{}", r.stdout, r.stderr);
        if let Some(file) = to {
            std::fs::write(s.path(file), &r.stdout).unwrap();
        }
        ran += 1;
    }
    assert!(ran >= 15, "{ran} commands");
    let cosigned = std::fs::read_to_string(s.path("w.cosigned")).unwrap();
    assert!(
        cosigned.contains("\u{2014} witness.local/promote "),
        "{cosigned}"
    );
}

/// `log export` then `log import` into a new SQLite log: the same root, and the new log
/// verifies with the log's key; a changed byte in one line imports nothing and names the line;
/// an existing target is refused.
#[test]
fn log_export_imports_into_a_new_log_that_verifies_and_a_damaged_line_imports_nothing() {
    let s = Service::new();
    s.register();
    s.register();
    let export = s.p("log.jsonl");
    s.expect(&["log", "export", "--out", &export], 0);
    let printed = s.expect(&["log", "export"], 0).stdout;
    assert_eq!(std::fs::read_to_string(&export).unwrap(), printed);

    let into = s.p("copy.db");
    let r = s.expect(&["log", "import", &export, "--into", &into], 0);
    let verify = s.expect(&["log", "verify", "--json"], 0).stdout;
    let root = verify.split("\"root\":\"").nth(1).unwrap();
    assert!(r.stdout.contains(&root[..64]), "{}\n{verify}", r.stdout);
    let vkey = std::fs::read_to_string(s.path(".promotion/checkpoint.vkey")).unwrap();
    let verifier = promotion_audit::CheckpointVerifier::from_verifier_key(vkey.trim()).unwrap();
    let copy = promotion_audit::AuditStore::open_sqlite_existing(
        &into,
        promotion_audit::AuditOptions::new("copy"),
    )
    .unwrap();
    let report = futures::executor::block_on(copy.verify(Some(&verifier))).unwrap();
    assert!(report.signature_checked);
    assert_eq!(hex::encode(report.root), root[..64]);

    s.expect(&["log", "import", &export, "--into", &into], 2);
    let text = std::fs::read_to_string(&export).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let changed = lines[1].replacen("\"at\":\"20", "\"at\":\"21", 1);
    assert_ne!(changed, lines[1]);
    lines[1] = changed;
    let damaged = s.p("damaged.jsonl");
    std::fs::write(&damaged, lines.join("\n") + "\n").unwrap();
    let bad = s.p("bad.db");
    let r = s.expect(&["log", "import", &damaged, "--into", &bad], 1);
    assert!(r.stderr.contains("line 2"), "{}", r.stderr);
    assert!(!s.path("bad.db").exists(), "nothing imported, no file left");
}

/// `witness --from-log`: the witness reads the log itself, computes the consistency proof
/// from its own saved checkpoint, and stores its cosignature beside the log's checkpoint,
/// where `log verify --min-witnesses` finds it with no file passed. It refuses a rolled-back
/// log and a fork (another history from the same prefix, signed by the same key).
#[test]
fn the_witness_reads_the_log_stores_its_cosignature_and_refuses_rollback_and_fork() {
    let s = Service::new();
    s.register();
    let (state, key, vkey) = (
        s.p("witness"),
        s.p("witness/key"),
        s.p(".promotion/checkpoint.vkey"),
    );
    let witness_in = |svc: &Service, code| {
        svc.expect(
            &[
                "witness",
                "--state",
                &state,
                "--key",
                &key,
                "--name",
                "witness.promotion.test/w1",
                "--log-vkey",
                &vkey,
                "--from-log",
            ],
            code,
        )
    };
    let w = s.p("witness/key.vkey");
    let verify = |code| {
        s.expect(
            &[
                "log",
                "verify",
                "--witness-vkey",
                &w,
                "--min-witnesses",
                "1",
            ],
            code,
        )
    };
    let r = witness_in(&s, 0);
    assert!(
        r.stdout.contains("stored beside the checkpoint"),
        "{}",
        r.stdout
    );
    let r = verify(0);
    assert!(
        r.stdout.contains("1 witness cosignatures verified"),
        "{}",
        r.stdout
    );

    // A fork: another service with the same log and key so far, then its own history.
    let fork = Service::new();
    copy_state(&s, &fork);

    // The log grows: the new latest checkpoint is not cosigned until the witness runs again,
    // and the witness proves the extension from the log itself (no --proof).
    s.register();
    let r = verify(1);
    assert!(
        r.stderr.contains("0 valid witness cosignatures"),
        "{}",
        r.stderr
    );
    witness_in(&s, 0);
    verify(0);
    let seen = s.size();

    fork.register();
    fork.register();
    assert!(
        fork.size() > seen,
        "the fork is longer than what the witness saw"
    );
    let r = witness_in(&fork, 1);
    assert!(r.stderr.contains("witness refuses"), "{}", r.stderr);

    // Rolled back below what the witness cosigned: refused.
    truncate_log(&s.path(".promotion/audit.db"), 2);
    let r = witness_in(&s, 1);
    assert!(r.stderr.contains("rollback"), "{}", r.stderr);
    // --from-log takes no proof from anyone (a clap usage error).
    let r = s.promote(&[
        "witness",
        "--state",
        &state,
        "--key",
        &key,
        "--log-vkey",
        &vkey,
        "--from-log",
        "--proof",
        &w,
    ]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
}
