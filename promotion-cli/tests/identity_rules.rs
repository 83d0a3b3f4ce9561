//! Issue 15 from the command line: who registers a release (`--as` checked against the
//! roster, or a CI system's OIDC token by `--id-token`/`--jwks`), and the template's per-action
//! rules (`[pipeline.accept]`, `[stages.accept]`) refusing a verification they do not accept.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use rand_core::OsRng;
use serde_json::{json, Value};

const GITHUB: &str = "https://token.actions.githubusercontent.com";

const TEMPLATE: &str = r#"[template]
name = "signed"
version = "1.0.0"

[pipeline]
require_verified = true

[pipeline.accept]
register = ["oidc"]

[[stages]]
name = "production"
approval = "1 of sre"

[stages.accept]
approve = ["ssh_signature"]
"#;

const SERVICE: &str = r#"[service]
name = "web"
roster = "roster.toml"

[template]
path = "signed.toml"
"#;

const ROSTER: &str = r#"[[people]]
id = "alice"
groups = ["sre"]

[[machines]]
id = "ci-web"
groups = ["ci"]
issuer = "https://token.actions.githubusercontent.com"
audience = "promotion"
[machines.claims]
repository = "acme/web"
ref = "refs/heads/main"
workflow = "release"
"#;

const MANIFEST: &str = r#"name = "web 2.0.0"
repository = "git@example.com:acme/web"
commit = "9fceb02d0ae598e95dc970b74767f19372d61af8"
builder = "ci.example.com/pipelines/4"

[[artifacts]]
name = "image"
digest = "sha256:6a1f0e1c53b1d6e0b0c1c3e6c8f3b1f7a1a4c2d9e8f7b6a5c4d3e2f1a0b9c8d7"
"#;

struct Sandbox {
    root: tempfile::TempDir,
    key: EncodingKey,
}

struct Run(Output);

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
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
}

impl Sandbox {
    /// A service whose template is `template`, with the roster plus `roster_extra`, and a
    /// signing key for GitHub-shaped tokens whose JWKS is in `jwks.json`.
    fn new(template: &str, roster_extra: &str) -> Sandbox {
        let pem = p256::SecretKey::random(&mut OsRng)
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        let s = Sandbox {
            root: tempfile::tempdir().unwrap(),
            key: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        };
        s.write("signed.toml", template);
        s.write("promotion.toml", SERVICE);
        s.write("roster.toml", &format!("{ROSTER}{roster_extra}"));
        s.write("release.toml", MANIFEST);
        let mut jwk = Jwk::from_encoding_key(&s.key, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some("gh-1".into());
        let set = JwkSet { keys: vec![jwk] };
        s.write("jwks.json", &serde_json::to_string(&set).unwrap());
        s
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }
    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }
    fn promote(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_promote"));
        cmd.current_dir(self.root.path()).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("PROMOTION_") {
                cmd.env_remove(k);
            }
        }
        Run(cmd.output().unwrap())
    }
    /// Writes a token with `claims` signed by the sandbox's key to `name`.
    fn token(&self, name: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("gh-1".into());
        self.write(
            name,
            &jsonwebtoken::encode(&header, claims, &self.key).unwrap(),
        );
        name.to_owned()
    }
    fn register(&self, args: &[&str]) -> Run {
        let mut all = vec!["register", "--manifest", "release.toml"];
        all.extend_from_slice(args);
        self.promote(&all)
    }
    /// The log's lines whose event is of `kind`.
    fn logged(&self, kind: &str) -> Vec<String> {
        let export = self.promote(&["log", "export"]).expect(0).stdout();
        export
            .lines()
            .filter(|l| l.contains(&format!("\"type\":\"{kind}\"")))
            .map(str::to_owned)
            .collect()
    }
}

/// The claims of a GitHub Actions ID token for `acme/web`'s release workflow on main, as
/// GitHub documents them ("About security hardening with OpenID Connect"), valid now.
fn github_claims() -> Value {
    let t = chrono::Utc::now().timestamp();
    json!({
        "jti": "b4c1e1d2-5d6a-4b8e-9f0a-0c1d2e3f4a5b",
        "sub": "repo:acme/web:ref:refs/heads/main",
        "aud": "promotion",
        "ref": "refs/heads/main",
        "sha": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "repository": "acme/web",
        "repository_owner": "acme",
        "run_id": "7788990011",
        "actor": "release-bot",
        "workflow": "release",
        "event_name": "push",
        "ref_type": "branch",
        "job_workflow_ref": "acme/web/.github/workflows/release.yml@refs/heads/main",
        "iss": GITHUB,
        "nbf": t - 20,
        "iat": t - 10,
        "exp": t + 290,
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

#[test]
fn a_ci_system_registers_with_its_oidc_token_and_nothing_else_will_do() {
    let s = Sandbox::new(TEMPLATE, "");
    // Not in the roster; in it but only roster-verified where the template wants OIDC; a
    // claimed group.
    let r = s.register(&["--as", "mallory"]).expect(1);
    assert!(r.stderr().contains("not in the roster"), "{}", r.stderr());
    let r = s.register(&["--as", "ci-web"]).expect(1);
    assert!(
        r.stderr()
            .contains("register requires oidc, and the command carries roster"),
        "{}",
        r.stderr()
    );
    s.register(&["--as", "ci-web", "--groups", "ci"]).expect(2);
    // A token needs its key set, and a roster to map it.
    s.register(&["--id-token", "t.jwt"]).expect(2);
    // Tokens the roster's rules do not admit: another repository, expired, a forged signature.
    let other = s.token(
        "other.jwt",
        &with(github_claims(), "repository", json!("mallory/web")),
    );
    let r = s
        .register(&["--id-token", &other, "--jwks", "jwks.json"])
        .expect(1);
    assert!(r.stderr().contains("\"mallory/web\""), "{}", r.stderr());
    let t = chrono::Utc::now().timestamp();
    let expired = s.token("old.jwt", &with(github_claims(), "exp", json!(t - 3600)));
    let r = s
        .register(&["--id-token", &expired, "--jwks", "jwks.json"])
        .expect(1);
    assert!(r.stderr().contains("expired"), "{}", r.stderr());
    let good = s.token("ci.jwt", &github_claims());
    let mut forged = std::fs::read_to_string(s.path(&good)).unwrap();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    s.write("forged.jwt", &forged);
    s.register(&["--id-token", "forged.jwt", "--jwks", "jwks.json"])
        .expect(1);
    assert!(s.logged("registered").is_empty(), "nothing registered yet");

    let out = s
        .register(&["--id-token", &good, "--jwks", "jwks.json"])
        .expect(0)
        .stdout();
    assert!(out.contains("registered sha256:"), "{out}");
    let registered = s.logged("registered");
    assert_eq!(registered.len(), 1);
    let line = &registered[0];
    assert!(line.contains(r#""id":"ci-web""#), "{line}");
    assert!(line.contains(r#""method":"oidc""#), "{line}");
    assert!(line.contains(&format!(r#""issuer":"{GITHUB}""#)), "{line}");
    assert!(
        line.contains(r#""subject":"repo:acme/web:ref:refs/heads/main""#),
        "{line}"
    );
}

#[test]
fn register_as_is_checked_against_the_roster_and_recorded_as_roster_verified() {
    let s = Sandbox::new(&TEMPLATE.replace("register = [\"oidc\"]\n", ""), "");
    let r = s.register(&["--as", "m\u{0430}llory"]).expect(1);
    assert!(r.stderr().contains("not in the roster"), "{}", r.stderr());
    // A look-alike of a listed id is not that id.
    s.register(&["--as", "\u{0430}lice"]).expect(1);
    // Without --as or a token, a roster service does not guess.
    let r = s.register(&[]).expect(2);
    assert!(r.stderr().contains("--id-token"), "{}", r.stderr());
    s.register(&["--as", "ci-web"]).expect(0);
    let registered = s.logged("registered");
    assert_eq!(registered.len(), 1);
    assert!(
        registered[0].contains(r#""method":"roster""#),
        "{}",
        registered[0]
    );
}

fn keygen(path: &Path) -> Option<String> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f"])
        .arg(path)
        .output()
        .ok()?;
    assert!(out.status.success(), "{out:?}");
    Some(
        std::fs::read_to_string(format!("{}.pub", path.display()))
            .unwrap()
            .trim()
            .to_owned(),
    )
}

#[test]
fn where_the_template_wants_a_signature_the_roster_is_not_enough() {
    let probe = tempfile::tempdir().unwrap();
    let Some(alice_pub) = keygen(&probe.path().join("alice.key")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "ssh-keygen is required under CI"
        );
        eprintln!(
            "SKIPPED: ssh-keygen (openssh-client) not found; the signed approval did not run"
        );
        return;
    };
    let s = Sandbox::new(TEMPLATE, "");
    std::fs::copy(probe.path().join("alice.key"), s.path("alice.key")).unwrap();
    s.write(
        "roster.toml",
        &ROSTER.replace(
            "groups = [\"sre\"]\n",
            &format!("groups = [\"sre\"]\nssh_keys = [\"{alice_pub}\"]\n"),
        ),
    );
    let token = s.token("ci.jwt", &github_claims());
    s.register(&["--id-token", &token, "--jwks", "jwks.json"])
        .expect(0);
    s.promote(&["run", "latest"]).expect(4);
    let r = s
        .promote(&["approve", "latest", "production", "--as", "alice"])
        .expect(1);
    assert!(
        r.stderr().contains(
            "`alice` may not approve in stage `production`: approve requires ssh_signature, and \
             the command carries roster"
        ),
        "{}",
        r.stderr()
    );
    let out = s
        .promote(&[
            "approve",
            "latest",
            "production",
            "--as",
            "alice",
            "--key",
            "alice.key",
        ])
        .expect(0)
        .stdout();
    assert!(out.contains("approved by alice (SSH-signed)"), "{out}");
    s.promote(&["run", "latest"]).expect(0);
}

/// `start` and `rollback` take `--key` like the other decisions: the signed statement and the
/// signature are kept in `stage_started` and `rollback_started`, where the template can demand
/// them, and the real `ssh-keygen -Y verify` accepts what the log holds.
#[test]
fn signed_starts_and_rollbacks_are_kept_and_verify_with_ssh_keygen() {
    let probe = tempfile::tempdir().unwrap();
    let Some(alice_pub) = keygen(&probe.path().join("alice.key")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "ssh-keygen is required under CI"
        );
        eprintln!("SKIPPED: ssh-keygen (openssh-client) not found; signed starts did not run");
        return;
    };
    let template = r#"[template]
name = "signed"
version = "1.0.0"

[[stages]]
name = "production"
manual_start = true

[stages.accept]
start = ["ssh_signature"]
roll_back = ["ssh_signature"]
"#;
    let s = Sandbox::new(template, "");
    std::fs::copy(probe.path().join("alice.key"), s.path("alice.key")).unwrap();
    s.write(
        "roster.toml",
        &ROSTER.replace(
            "groups = [\"sre\"]\n",
            &format!("groups = [\"sre\"]\nssh_keys = [\"{alice_pub}\"]\n"),
        ),
    );
    s.register(&["--as", "ci-web"]).expect(0);
    s.promote(&["run", "latest"]).expect(4);
    let r = s
        .promote(&["start", "latest", "production", "--as", "alice"])
        .expect(1);
    assert!(
        r.stderr().contains("start requires ssh_signature"),
        "{}",
        r.stderr()
    );
    s.promote(&[
        "start",
        "latest",
        "production",
        "--as",
        "alice",
        "--key",
        "alice.key",
    ])
    .expect(0);
    s.promote(&["run", "latest"]).expect(0);
    let r = s
        .promote(&[
            "rollback",
            "latest",
            "production",
            "--as",
            "alice",
            "--reason",
            "errors up",
        ])
        .expect(1);
    assert!(
        r.stderr().contains("roll_back requires ssh_signature"),
        "{}",
        r.stderr()
    );
    s.promote(&[
        "rollback",
        "latest",
        "production",
        "--as",
        "alice",
        "--reason",
        "errors up",
        "--key",
        "alice.key",
    ])
    .expect(0);

    let allowed = s.path("allowed_signers");
    std::fs::write(
        &allowed,
        format!("alice namespaces=\"promotion\" {alice_pub}\n"),
    )
    .unwrap();
    for kind in ["stage_started", "rollback_started"] {
        let lines = s.logged(kind);
        let line = lines
            .iter()
            .find(|l| l.contains("ssh_signature"))
            .unwrap_or_else(|| panic!("no signed {kind}: {lines:?}"));
        // The export line holds the stored event; find the principal's verification in it.
        let v: Value = serde_json::from_str(line).unwrap();
        let event = find_key(&v, "by").unwrap_or_else(|| panic!("no `by` in {line}"));
        let how = &event["verified"];
        assert_eq!(how["method"], "ssh_signature", "{line}");
        let statement = how["statement"].as_str().unwrap();
        let decision = if kind == "stage_started" {
            "start"
        } else {
            "roll_back"
        };
        assert!(statement.contains(decision), "{statement}");
        let stmt = s.path(&format!("{kind}.json"));
        std::fs::write(&stmt, statement).unwrap();
        std::fs::write(
            s.path(&format!("{kind}.json.sig")),
            how["signature"].as_str().unwrap(),
        )
        .unwrap();
        let verify = |file: &Path| {
            Command::new("ssh-keygen")
                .args(["-Y", "verify", "-f"])
                .arg(&allowed)
                .args(["-I", "alice", "-n", "promotion", "-s"])
                .arg(s.path(&format!("{kind}.json.sig")))
                .stdin(std::fs::File::open(file).unwrap())
                .output()
                .unwrap()
        };
        let ok = verify(&stmt);
        assert!(ok.status.success(), "{kind}: {ok:?}");
        // One changed byte and OpenSSH refuses it.
        let tampered = s.path(&format!("{kind}.tampered"));
        let changed = statement.replacen("production", "productiom", 1);
        assert_ne!(changed, statement);
        std::fs::write(&tampered, changed).unwrap();
        assert!(!verify(&tampered).status.success(), "{kind} tampered");
    }
}

/// The first value under `key` anywhere in `v` (the export line nests the stored event).
fn find_key<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    match v {
        Value::Object(m) => m
            .get(key)
            .or_else(|| m.values().find_map(|x| find_key(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}
