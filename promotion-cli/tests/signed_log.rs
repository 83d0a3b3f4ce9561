#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Issue 15, "signatures are re-verified in `log verify`": the real `promote` binary signs an
//! approval with `--key`, then an insider who can rewrite the log *and* re-sign its checkpoints
//! (the checkpoint key sits beside the log) edits the signed decision. Every hash, chain link
//! and checkpoint then verifies; only the person's SSH signature, re-checked against the
//! roster from version control, can tell — and `promote log verify` refuses each forgery in one
//! line naming the entry, the release and the stage.
//!
//! Needs `ssh-keygen` (openssh-client) to make the keys: without it each test prints
//! `SKIPPED: …` and returns, and under `CI` it fails instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use promotion_audit::{AuditOptions, AuditStore, Checkpoint, CheckpointSigner};

const TEMPLATE: &str = r#"[template]
name = "svc"
version = "1.0.0"

[[stages]]
name = "build"

[[stages]]
name = "prod"
after = ["build"]
approval = "1 of sre"
"#;

const SERVICE: &str = r#"[service]
name = "checkout"
version = "1"
roster = "roster.toml"

[template]
name = "svc"
version = "1.0.0"
dir = "templates"

[deploy]
command = ["true"]
timeout = "1m"
"#;

const MANIFEST: &str = r#"name = "checkout 1.4.2"
repository = "git@example.com:shop/checkout"
commit = "9fceb02d0ae598e95dc970b74767f19372d61af8"
committed_at = 2026-01-05T09:00:00Z
builder = "ci.example.com/pipelines/88213"

[[artifacts]]
name = "image"
digest = "sha256:6a1f0e1c53b1d6e0b0c1c3e6c8f3b1f7a1a4c2d9e8f7b6a5c4d3e2f1a0b9c8d7"
"#;

fn have_ssh_keygen(test: &str) -> bool {
    if Command::new("ssh-keygen").arg("-?").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: CI must install ssh-keygen (openssh-client)"
    );
    eprintln!("SKIPPED: {test} needs ssh-keygen (openssh-client) and did not run");
    false
}

struct Sandbox {
    root: tempfile::TempDir,
    alice: String,
    bob: String,
}

impl Sandbox {
    /// A service whose roster lists Alice (sre) and Bob (security) with keys made by the real
    /// `ssh-keygen`; Mallory has a key the roster does not list. A release waits for prod's
    /// approval, which Alice gives, signed with her key.
    fn signed_approval() -> Sandbox {
        let root = tempfile::tempdir().unwrap();
        let mut s = Sandbox {
            root,
            alice: String::new(),
            bob: String::new(),
        };
        s.alice = s.keygen("alice");
        s.bob = s.keygen("bob");
        s.keygen("mallory");
        s.write("svc/templates/svc.toml", TEMPLATE);
        s.write("svc/promotion.toml", SERVICE);
        s.write("svc/roster.toml", &s.roster(&s.alice.clone()));
        s.write("release.toml", MANIFEST);
        s.promote(&["register", "--manifest", "release.toml", "--as", "bob"])
            .expect(0);
        s.promote(&["run", "latest"]).expect(4);
        let key = s.path("alice");
        s.promote(&[
            "approve",
            "latest",
            "prod",
            "--as",
            "alice",
            "--key",
            key.to_str().unwrap(),
            "--comment",
            "canary fine",
        ])
        .expect(0);
        s.promote(&["run", "latest"]).expect(0);
        s
    }
    fn roster(&self, alice_key: &str) -> String {
        format!(
            "[[people]]\nid = \"alice\"\ngroups = [\"sre\"]\nssh_keys = [\"{alice_key}\"]\n\n\
             [[people]]\nid = \"bob\"\ngroups = [\"security\"]\nssh_keys = [\"{}\"]\n",
            self.bob
        )
    }
    fn keygen(&self, name: &str) -> String {
        let path = self.path(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        std::fs::read_to_string(format!("{}.pub", path.display()))
            .unwrap()
            .trim()
            .to_owned()
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn promote(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_promote"));
        cmd.current_dir(self.root.path())
            .args(["-f", "svc/promotion.toml"])
            .args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("PROMOTION_") {
                cmd.env_remove(k);
            }
        }
        Run(cmd.output().unwrap())
    }

    /// Rewrites the signed approval's log entry with `edit`, re-chains and re-hashes the log,
    /// and re-signs a checkpoint over the result with the service's own checkpoint key, as an
    /// insider with the server's files could. Returns the entry's sequence number.
    fn forge(&self, edit: impl Fn(&str) -> String) -> u64 {
        let db = self.path("svc/.promotion/audit.db");
        let key = std::fs::read_to_string(self.path("svc/.promotion/checkpoint.key")).unwrap();
        let signer = CheckpointSigner::from_private_key(key.trim()).unwrap();
        let tamper = promotion_audit::sqlite::harness::sqlite_tamper(&db);
        futures::executor::block_on(async {
            let store = AuditStore::open_sqlite_existing(&db, AuditOptions::new("forger")).unwrap();
            let size = store.size().await.unwrap();
            let mut at = None;
            for seq in 0..size {
                let text = String::from_utf8(store.entry(seq).await.unwrap().bytes).unwrap();
                if text.contains("approval_given") {
                    at = Some(seq);
                }
            }
            let at = at.expect("the signed approval is in the log");
            promotion_audit::conformance::forge(&store, tamper.as_ref(), at, |b| {
                let text = String::from_utf8(b.to_vec()).unwrap();
                let forged = edit(&text);
                assert_ne!(forged, text, "the edit changes the entry");
                forged.into_bytes()
            })
            .await;
            tamper.delete_checkpoints(0);
            let root = store.root(size).await.unwrap();
            let note = signer.sign(&Checkpoint {
                origin: "promotion.local/promote".into(),
                size,
                root,
                extensions: Vec::new(),
            });
            tamper.put_checkpoint(size, &note);
            at
        })
    }
}

struct Run(Output);

impl Run {
    #[track_caller]
    fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.0.status.code(),
            Some(code),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
}

/// The stored statement of the entry's signed decision, as the JSON string holds it.
fn statement_of(entry: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(entry).unwrap();
    let found = find_key(&v, "statement").expect("the entry records the statement");
    found.as_str().unwrap().to_owned()
}

fn find_key<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|x| find_key(x, key))),
        serde_json::Value::Array(items) => items.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

/// `text` with the JSON-escaped form of `old` replaced by that of `new`.
fn replace_json_string(text: &str, old: &str, new: &str) -> String {
    let quoted = |s: &str| serde_json::to_string(s).unwrap();
    assert!(text.contains(&quoted(old)), "{old:?} is in {text}");
    text.replace(&quoted(old), &quoted(new))
}

/// The one-line error of a failed `log verify`, which names the entry, release and stage.
#[track_caller]
fn refused(s: &Sandbox, at: u64, args: &[&str]) -> String {
    let mut all = vec!["log", "verify"];
    all.extend_from_slice(args);
    let r = s.promote(&all).expect(1);
    let err = r.stderr();
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    assert!(
        err.contains("1 of 1 signed decisions do not re-verify"),
        "{err}"
    );
    assert!(
        err.contains(&format!("entry {at}: release ")),
        "names the entry: {err}"
    );
    assert!(
        err.contains(", stage prod, approval_given by alice: "),
        "{err}"
    );
    err
}

#[test]
fn a_clean_signed_log_verifies_and_says_so() {
    if !have_ssh_keygen("a_clean_signed_log_verifies_and_says_so") {
        return;
    }
    let s = Sandbox::signed_approval();
    let out = s.promote(&["log", "verify"]).expect(0).stdout();
    assert!(
        out.contains("1 SSH-signed decisions re-verified against roster sha256:"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&s.promote(&["log", "verify", "--json"]).expect(0).stdout()).unwrap();
    assert_eq!(v["signed_decisions"], 1);

    // the evidence pack carries the signature and the roster, and its verification re-checks it
    let out = s
        .promote(&["evidence", "export", "latest", "--out", "pack"])
        .expect(0)
        .stdout();
    assert!(
        out.contains("1 SSH-signed decisions with their statements, signatures and rosters"),
        "{out}"
    );
    let out = s
        .promote(&["evidence", "verify", "pack"])
        .expect(0)
        .stdout();
    assert!(
        out.contains("1 SSH-signed decisions re-verified against the rosters in the pack"),
        "{out}"
    );
}

#[test]
fn one_changed_byte_of_the_stored_signature_fails_log_verify() {
    if !have_ssh_keygen("one_changed_byte_of_the_stored_signature_fails_log_verify") {
        return;
    }
    let s = Sandbox::signed_approval();
    let at = s.forge(|text| {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let sig = find_key(&v, "signature")
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        let end = sig.find("\n-----END").unwrap();
        let i = end - 10;
        let c = &sig[i..=i];
        let swapped = if c == "A" { "B" } else { "A" };
        let forged = format!("{}{swapped}{}", &sig[..i], &sig[i + 1..]);
        replace_json_string(text, &sig, &forged)
    });
    let err = refused(&s, at, &[]);
    assert!(err.contains("does not match the statement"), "{err}");
}

#[test]
fn a_statement_whose_stage_was_edited_fails_log_verify() {
    if !have_ssh_keygen("a_statement_whose_stage_was_edited_fails_log_verify") {
        return;
    }
    let s = Sandbox::signed_approval();
    let at = s.forge(|text| {
        let statement = statement_of(text);
        let forged = statement.replace("\"stage\":\"prod\"", "\"stage\":\"build\"");
        replace_json_string(text, &statement, &forged)
    });
    let err = refused(&s, at, &[]);
    assert!(
        err.contains("the signed statement's stage is build, the log entry's is prod"),
        "{err}"
    );
}

#[test]
fn a_key_not_in_the_roster_fails_log_verify() {
    if !have_ssh_keygen("a_key_not_in_the_roster_fails_log_verify") {
        return;
    }
    let s = Sandbox::signed_approval();
    let mallory = s.path("mallory");
    let at = s.forge(|text| {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let sig = find_key(&v, "signature")
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        let statement = statement_of(text);
        let forged =
            promotion_identity::sign_with_key_file(&mallory, "promotion", statement.as_bytes())
                .unwrap();
        replace_json_string(text, &sig, &forged)
    });
    let err = refused(&s, at, &[]);
    assert!(err.contains("is not in the roster"), "{err}");
}

#[test]
fn a_roster_with_alice_s_key_swapped_fails_and_an_older_roster_is_named() {
    if !have_ssh_keygen("a_roster_with_alice_s_key_swapped_fails_and_an_older_roster_is_named") {
        return;
    }
    let s = Sandbox::signed_approval();
    let original = std::fs::read_to_string(s.path("svc/roster.toml")).unwrap();
    s.write("original-roster.toml", &original);
    let mallory = std::fs::read_to_string(s.path("mallory.pub")).unwrap();
    s.write("svc/roster.toml", &s.roster(mallory.trim()));

    // the decision names the roster it was signed under, which is not the current one
    let r = s.promote(&["log", "verify"]).expect(1);
    let err = r.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("approval_given by alice: signed under roster sha256:"),
        "{err}"
    );
    assert!(err.contains("which was not given"), "{err}");

    // the roster as it was, from version control: verifies again
    let out = s
        .promote(&["log", "verify", "--roster", "original-roster.toml"])
        .expect(0)
        .stdout();
    assert!(out.contains("1 SSH-signed decisions re-verified"), "{out}");

    // the insider also rewrites the entry to name the swapped roster and re-signs the
    // statement with Mallory's key: the swapped roster's key verifies it, but the auditor's
    // rosters (from version control) do not include that digest
    let swapped = sha256_file(&s.path("svc/roster.toml"));
    let original_digest = sha256_file(&s.path("original-roster.toml"));
    let key = s.path("mallory");
    let at = s.forge(|text| {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let sig = find_key(&v, "signature")
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        let statement = statement_of(text);
        let forged_statement = statement.replace(&original_digest, &swapped);
        let forged_sig =
            promotion_identity::sign_with_key_file(&key, "promotion", forged_statement.as_bytes())
                .unwrap();
        let text = replace_json_string(text, &sig, &forged_sig);
        let text = replace_json_string(&text, &statement, &forged_statement);
        text.replace(&original_digest, &swapped)
    });
    s.write("svc/roster.toml", &original);
    let err = refused(&s, at, &[]);
    assert!(
        err.contains(&format!("signed under roster {swapped}")),
        "{err}"
    );
}

fn sha256_file(path: &Path) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
    )
}
