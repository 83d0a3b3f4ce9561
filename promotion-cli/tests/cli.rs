//! The real `promote` binary, end to end, on templates in a temporary directory. Commands
//! run from the directory above the service's, to show that paths are resolved against the
//! service file and not the working directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::Digest as _;

const JUNIT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="3" failures="0" errors="0">
  <testsuite name="unit" tests="3" failures="0" errors="0" skipped="0">
    <testcase classname="cart" name="adds" time="0.01"/>
    <testcase classname="cart" name="removes" time="0.01"/>
    <testcase classname="cart" name="totals" time="0.01"/>
  </testsuite>
</testsuites>
"#;

const TEMPLATE: &str = r#"[template]
name = "web-service"
version = "1.0.0"

[params.min_tests]
type = "integer"
default = 1

[params.approvers]
type = "string"

[params.smoke_exit]
type = "integer"
default = 0

[pipeline]
break_glass = ["incident-commanders"]

[[stages]]
name = "build"

[[stages.gates]]
kind = "test-report"
name = "{{ service }}-unit-tests"
files = ["reports/junit.xml"]
min_tests = "{{ min_tests }}"

[[stages.gates]]
kind = "process"
name = "smoke"
program = "sh"
args = ["-c", "exit {{ smoke_exit }}"]
timeout = "30s"

[[stages]]
name = "prod"
after = ["build"]
approval = "1 of sre AND 1 of {{ approvers }}"
rollout = { weights = [50, 100] }

[[stages.verification]]
kind = "process"
name = "verify"
program = "true"
"#;

const SERVICE: &str = r#"[service]
name = "checkout"
version = "1"
roster = "roster.toml"

[template]
name = "web-service"
version = "1.0.0"
dir = "templates"

[params]
approvers = "security"

[deploy]
command = ["sh", "-c", "echo \"$PROMOTION_ACTION $PROMOTION_STAGE $PROMOTION_WEIGHT $PROMOTION_RELEASE_NAME\" >> deploy.log"]
timeout = "1m"
"#;

/// Who may act on the sandbox's releases, and their groups: the only source of groups.
const ROSTER: &str = r#"[[people]]
id = "alice"
groups = ["sre"]

[[people]]
id = "bob"
groups = ["security"]

[[people]]
id = "dana"
groups = ["sre"]

[[people]]
id = "eve"
groups = ["sre"]

[[people]]
id = "ivan"
groups = ["incident-commanders"]

[[people]]
id = "ops"

[[people]]
id = "ci-bot"
groups = ["ci"]
"#;

const MANIFEST: &str = r#"name = "checkout 1.4.2"
repository = "git@example.com:shop/checkout"
commit = "9fceb02d0ae598e95dc970b74767f19372d61af8"
committed_at = 2026-01-05T09:00:00Z
builder = "ci.example.com/pipelines/88213"
contributors = ["dana"]

[[artifacts]]
name = "image"
digest = "sha256:6a1f0e1c53b1d6e0b0c1c3e6c8f3b1f7a1a4c2d9e8f7b6a5c4d3e2f1a0b9c8d7"
"#;

struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let s = Sandbox {
            root: tempfile::tempdir().unwrap(),
        };
        s.write("svc/templates/web-service.toml", TEMPLATE);
        s.write("svc/promotion.toml", SERVICE);
        s.write("svc/roster.toml", ROSTER);
        s.write("svc/reports/junit.xml", JUNIT);
        s.write("release.toml", MANIFEST);
        s
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }
    /// Runs `promote -f svc/promotion.toml <args>` in the sandbox's root.
    fn promote(&self, args: &[&str]) -> Run {
        self.promote_in(self.root.path(), &["-f", "svc/promotion.toml"], args)
    }
    fn promote_in(&self, cwd: &Path, pre: &[&str], args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_promote"));
        cmd.current_dir(cwd).args(pre).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("PROMOTION_") {
                cmd.env_remove(k);
            }
        }
        Run(cmd.output().unwrap())
    }
}

struct Run(Output);

impl Run {
    fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    #[track_caller]
    fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("{e}: not JSON: {}", self.stdout()))
    }
}

/// Line and column (1-based) of `needle` in `text`, plus `skip` characters.
fn pos(text: &str, needle: &str, skip: usize) -> String {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in text"));
    let line = text[..at].matches('\n').count() + 1;
    let col = text[..at].rsplit('\n').next().unwrap().chars().count() + 1 + skip;
    format!("{line}:{col}")
}

#[test]
fn help_documents_exit_codes() {
    let s = Sandbox::new();
    let out = s.promote(&["--help"]).expect(0).stdout();
    for line in [
        "0  ok",
        "1  refused or failed",
        "2  usage or validation error",
        "3  store or I/O error",
        "4  waiting for a human",
        "5  waiting for a time",
    ] {
        assert!(out.contains(line), "{line} missing from --help:\n{out}");
    }
    s.promote(&["frobnicate"]).expect(2);
}

#[test]
fn validation_errors_name_file_line_and_column() {
    let s = Sandbox::new();
    let t = "svc/templates/web-service.toml";
    let svc = "svc/promotion.toml";
    // (file, replace this, by this, where the error is in the edited file, skip, expected text)
    let cases: [(&str, &str, &str, &str, usize, &str); 11] = [
        (
            t,
            "kind = \"process\"",
            "kind = \"shell\"",
            "kind = \"shell\"",
            7,
            "stage `build`: unknown gate kind `shell`; known kinds: canary, change-record, config-baseline, deployment-window, metric, perf-budget, policy, process, reproducibility, signature, test-report, vulnerabilities, webhook",
        ),
        (
            svc,
            "approvers = \"security\"\n",
            "",
            "[params]",
            0,
            "missing parameter `approvers`: template web-service@1.0.0 requires a value of type string",
        ),
        (
            t,
            "name = \"build\"\n",
            "name = \"build\"\nafter = [\"prod\"]\n",
            "after = [\"build\"]",
            8,
            "stages form a cycle: prod -> build -> prod",
        ),
        (
            t,
            "approval = \"1 of sre",
            "approval = \"0 of sre",
            "approval = \"0 of sre",
            11,
            "stage `prod`: approval rule `(0 of sre AND 1 of security)` can never be met: a quorum of 0 from `sre` approves nothing",
        ),
        (
            t,
            "timeout = \"30s\"",
            "timeout = \"30 secs-ish\"",
            "timeout = \"30 secs-ish\"",
            10,
            "stage `build`, gate `smoke` (process): `stages[0].gates[1].timeout`: invalid duration `30 secs-ish`",
        ),
        (
            t,
            "program = \"true\"",
            "program = \"true\"\nretries = 3",
            "retries = 3",
            0,
            "stage `prod`, gate `verify` (process): `stages[1].verification[0].retries`: unknown field `retries`, expected one of `program`",
        ),
        (
            t,
            "[[stages]]\nname = \"prod\"",
            "[[stages]]\nname = \"prod\"\nsoke = \"2h\"",
            "soke",
            0,
            "stage `prod`: `stages[1].soke`: unknown field `soke`",
        ),
        (
            t,
            "1 of sre AND",
            "1 of sre ANDD",
            "ANDD",
            0,
            "stage `prod`: approval rule `1 of sre ANDD 1 of security`: expected `AND`, `OR` or the end of the rule, found `ANDD`",
        ),
        (
            svc,
            "approvers = \"security\"",
            "approvers = 7",
            "approvers = 7",
            12,
            "parameter `approvers` (type string): expected a string, found an integer",
        ),
        (
            svc,
            "approvers = \"security\"",
            "approvers = \"security\"\nsmoke_exits = 1",
            "smoke_exits",
            0,
            "unknown parameter `smoke_exits`: template web-service@1.0.0 does not declare it; it declares: approvers, min_tests, smoke_exit",
        ),
        (
            t,
            "{{ min_tests }}",
            "{{ min_test }}",
            "{{ min_test }}",
            0,
            "unknown parameter `min_test` in `{{ min_test }}`; declared parameters: approvers, min_tests, service, smoke_exit",
        ),
    ];
    for (file, from, to, needle, skip, expected) in cases {
        let original = s.read(file);
        assert!(original.contains(from), "{from} not in {file}");
        let edited = original.replacen(from, to, 1);
        s.write(file, &edited);
        let at = pos(&edited, needle, skip);
        let run = s.promote(&["validate"]).expect(2);
        let err = run.stderr();
        let prefix = format!("promote: {}:{at}: ", Path::new(file).display());
        assert!(err.starts_with(&prefix), "expected {prefix} in:\n{err}");
        assert!(err.contains(expected), "expected `{expected}` in:\n{err}");
        // the same as JSON, on standard output
        let j = s.promote(&["validate", "--json"]).expect(2).json();
        assert_eq!(j["ok"], false);
        assert_eq!(j["error"]["file"], file);
        assert_eq!(
            format!("{}:{}", j["error"]["line"], j["error"]["column"]),
            at,
            "{j}"
        );
        s.write(file, &original);
    }
    s.promote(&["validate"]).expect(0);
}

#[test]
fn a_full_promotion_with_two_approvers() {
    let s = Sandbox::new();
    let v = s.promote(&["validate", "--json"]).expect(0).json();
    assert_eq!(v["pipeline"], "checkout");
    let version = v["version"].as_str().unwrap().to_owned();
    assert!(
        version.starts_with("checkout@1 (template web-service@1.0.0 sha256:"),
        "{version}"
    );
    assert_eq!(v["stages"][1]["approval"], "(1 of sre AND 1 of security)");

    let out = s
        .promote(&["register", "--manifest", "release.toml", "--as", "ci-bot"])
        .expect(0)
        .stdout();
    assert!(out.contains("registered sha256:"), "{out}");
    // the state directory is beside the service file
    assert!(s.path("svc/.promotion/audit.db").exists());
    assert!(s.path("svc/.promotion/checkpoint.key").exists());
    assert!(s.path("svc/.promotion/checkpoint.vkey").exists());
    // registering it again is refused
    s.promote(&["register", "--manifest", "release.toml", "--as", "ci-bot"])
        .expect(1);

    let run = s.promote(&["run", "latest"]).expect(4);
    assert!(
        run.stdout()
            .contains("waiting for prod: approval (1 of sre AND 1 of security)"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stderr()
            .contains("ok build / entry / checkout-unit-tests: pass"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("ok build / entry / smoke: pass"),
        "{}",
        run.stderr()
    );

    // a contributor may not approve
    let r = s
        .promote(&["approve", "checkout 1.4.2", "prod", "--as", "dana"])
        .expect(1);
    assert!(
        r.stderr().contains("they contributed to the release"),
        "{}",
        r.stderr()
    );

    s.promote(&[
        "approve",
        "latest",
        "prod",
        "--as",
        "alice",
        "--comment",
        "checked",
    ])
    .expect(0);
    s.promote(&["advance", "latest"]).expect(4);
    let status = s.promote(&["status", "--json"]).expect(0).json();
    assert_eq!(status["releases"][0]["stages"]["prod"], "awaiting_approval");
    let id = status["releases"][0]["id"].as_str().unwrap().to_owned();

    s.promote(&["approve", &id[7..19], "prod", "--as", "bob"])
        .expect(0);
    let run = s.promote(&["run", "latest"]).expect(0);
    assert!(run.stdout().contains("PROMOTED"), "{}", run.stdout());

    let status = s.promote(&["status", "--json"]).expect(0).json();
    assert_eq!(status["releases"][0]["stages"]["build"], "promoted");
    assert_eq!(status["releases"][0]["stages"]["prod"], "promoted");
    assert_eq!(status["releases"][0]["pipeline_version"], version.as_str());
    let table = s.promote(&["status"]).expect(0).stdout();
    assert!(table.starts_with("RELEASE"), "{table}");
    assert!(
        table.contains("checkout 1.4.2  promoted  promoted"),
        "{table}"
    );

    // the deploy command ran per step, in the service's directory, with the step in its env
    assert_eq!(
        s.read("svc/deploy.log"),
        "deploy build 100 checkout 1.4.2\ndeploy prod 50 checkout 1.4.2\ndeploy prod 100 checkout 1.4.2\n"
    );

    let verify = s.promote(&["log", "verify", "--json"]).expect(0).json();
    assert_eq!(verify["ok"], true);
    assert_eq!(verify["signature_checked"], true);
    // the release's stream, and the security stream holding dana's refused approval
    assert_eq!(verify["streams"], 2);

    // what-if: a stricter template version would have blocked this promotion
    s.write(
        "svc/templates/web-service-2.toml",
        &format!(
            "{}\n[[stages.verification]]\nkind = \"process\"\nname = \"load-test\"\nprogram = \"true\"\n",
            TEMPLATE
                .replace("version = \"1.0.0\"", "version = \"2.0.0\"")
                .replace("1 of sre AND", "2 of sre AND")
        ),
    );
    let w = s
        .promote(&["what-if", "--template-version", "2.0.0", "--json"])
        .expect(1)
        .json();
    assert_eq!(w["promotions"], 2);
    assert_eq!(w["blocked_promotions"], 1);
    assert_eq!(w["unknown_promotions"], 0);
    let stages = &w["releases"][0]["stages"];
    assert_eq!(stages[1]["stage"], "prod");
    assert_eq!(stages[1]["verdict"], "blocked");
    let findings = stages[1]["findings"].to_string();
    assert!(findings.contains("approval_blocks"), "{findings}");
    assert!(
        findings.contains("(2 of sre AND 1 of security)"),
        "{findings}"
    );
    assert!(findings.contains("load-test"), "{findings}");
    let text = s
        .promote(&["what-if", "--template", "svc/templates/web-service-2.toml"])
        .expect(1)
        .stdout();
    assert!(
        text.contains("2 recorded promotions in 1 releases: 1 would have been blocked"),
        "{text}"
    );
    assert!(
        text.contains(
            "gate `load-test` (verification): no recorded evidence: would have been evaluated"
        ),
        "{text}"
    );
    // the same template version blocks nothing
    s.promote(&["what-if", "--template-version", "1.0.0"])
        .expect(0);

    // an evidence pack, verified offline; any edit is caught
    let out = s
        .promote(&[
            "evidence",
            "export",
            "latest",
            "--out",
            "pack",
            "--archive",
            "pack.tar",
        ])
        .expect(0)
        .stdout();
    assert!(out.contains("exported checkout 1.4.2"), "{out}");
    assert!(s.path("svc/.promotion/attestation.pub").exists());
    // The JUnit report the gate read is in the pack, by digest, found in the service's files.
    let junit = sha2::Sha256::digest(s.read("svc/reports/junit.xml").as_bytes());
    let attachment = format!("pack/attachments/sha256-{}", hex::encode(junit));
    assert!(s.path(&attachment).exists(), "{attachment} missing:\n{out}");
    let v = s
        .promote(&["evidence", "verify", "pack", "--json"])
        .expect(0)
        .json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["release_name"], "checkout 1.4.2");
    s.promote(&["evidence", "verify", "pack.tar"]).expect(0);
    let manifest = s.read("pack/manifest.json");
    s.write(
        "pack/manifest.json",
        &manifest.replacen("checkout", "checkouT", 1),
    );
    let r = s.promote(&["evidence", "verify", "pack"]).expect(1);
    assert!(r.stderr().contains("manifest"), "{}", r.stderr());
    s.promote(&["evidence", "verify", "no-such-pack"]).expect(2);

    // DORA metrics and the readiness page
    let report = s
        .promote(&[
            "report",
            "--days",
            "3650",
            "--json",
            "--html",
            "report.html",
        ])
        .expect(0)
        .json();
    assert_eq!(report["pipelines"][0]["pipeline"], "checkout");
    assert_eq!(report["pipelines"][0]["dora"]["production_promotions"], 1);
    assert!(s.read("report.html").contains("checkout 1.4.2"));
    let text = s.promote(&["report", "--days", "3650"]).expect(0).stdout();
    assert!(
        text.contains("deployment frequency  1 production promotions"),
        "{text}"
    );

    // a rollback: requested, then performed by the next run
    s.promote(&[
        "rollback",
        "latest",
        "prod",
        "--as",
        "alice",
        "--reason",
        "error budget burnt",
    ])
    .expect(0);
    s.promote(&["run", "latest"]).expect(1);
    assert!(s
        .read("svc/deploy.log")
        .ends_with("rollback prod 0 checkout 1.4.2\n"));
    let status = s.promote(&["status", "latest", "--json"]).expect(0).json();
    assert_eq!(status["releases"][0]["stages"]["prod"], "rolled_back");
    s.promote(&["log", "verify"]).expect(0);
}

#[test]
fn a_failed_gate_and_break_glass() {
    let s = Sandbox::new();
    s.write(
        "svc/promotion.toml",
        &SERVICE.replace(
            "approvers = \"security\"",
            "approvers = \"security\"\nsmoke_exit = 3",
        ),
    );
    s.promote(&["register", "--manifest", "release.toml", "--as", "ci-bot"])
        .expect(0);
    let run = s.promote(&["run", "latest"]).expect(1);
    assert!(
        run.stderr().contains("XX build / entry / smoke: FAIL"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stdout().contains("build          failed"),
        "{}",
        run.stdout()
    );
    // only a break-glass group may override, and only with a justification
    let r = s
        .promote(&[
            "override",
            "latest",
            "build",
            "smoke",
            "--as",
            "eve",
            "--justification",
            "flaky",
        ])
        .expect(1);
    assert!(r.stderr().contains("refused"), "{}", r.stderr());
    s.promote(&["override", "latest", "build", "smoke", "--as", "ivan"])
        .expect(2);
    s.promote(&[
        "override",
        "latest",
        "build",
        "smoke",
        "--as",
        "ivan",
        "--justification",
        "smoke host down; verified by hand",
    ])
    .expect(0);
    let run = s.promote(&["run", "latest"]).expect(4);
    assert!(
        run.stdout().contains("build        engine"),
        "{}",
        run.stdout()
    );
    let status = s.promote(&["status", "latest", "--json"]).expect(0).json();
    assert_eq!(status["releases"][0]["stages"]["build"], "promoted");
    // the release waits for prod's approvals: reject ends it
    s.promote(&[
        "reject",
        "latest",
        "prod",
        "--as",
        "alice",
        "--comment",
        "no",
    ])
    .expect(0);
    s.promote(&["run", "latest"]).expect(1);
    s.promote(&["approve", "latest", "prod", "--as", "bob"])
        .expect(1);
}

#[test]
fn waiting_for_a_time() {
    let s = Sandbox::new();
    s.write(
        "svc/templates/web-service.toml",
        &TEMPLATE.replace("name = \"build\"\n", "name = \"build\"\nsoak = \"1h\"\n"),
    );
    s.promote(&["register", "--manifest", "release.toml", "--as", "ci-bot"])
        .expect(0);
    let run = s.promote(&["run", "latest", "--max-wait", "1s"]).expect(5);
    assert!(
        run.stdout().contains("waiting for build: the soak ends at"),
        "{}",
        run.stdout()
    );
    s.promote(&["advance", "latest"]).expect(5);
    s.promote(&["status", "nope"]).expect(2);
    // an abort ends the soak; the next run rolls the stage back
    s.promote(&[
        "abort",
        "latest",
        "build",
        "--as",
        "ops",
        "--reason",
        "wrong build",
    ])
    .expect(0);
    s.promote(&["run", "latest"]).expect(1);
    let status = s.promote(&["status", "--json"]).expect(0).json();
    let build = status["releases"][0]["stages"]["build"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(build == "aborted" || build == "rolled_back", "{build}");
    assert!(s.read("svc/deploy.log").contains("rollback build 0"));
}

#[test]
fn init_writes_a_starter_that_validates_from_any_directory() {
    let s = tempfile::tempdir().unwrap();
    let sandbox = Sandbox { root: s };
    sandbox
        .promote_in(
            sandbox.root.path(),
            &["-f", "app/promotion.toml"],
            &["init", "--service", "app"],
        )
        .expect(0);
    sandbox
        .promote_in(
            sandbox.root.path(),
            &["-f", "app/promotion.toml"],
            &["init"],
        )
        .expect(2);
    let v = sandbox
        .promote_in(
            &sandbox.path("app/templates"),
            &["-f", "../promotion.toml"],
            &["validate", "--json"],
        )
        .expect(0)
        .json();
    assert_eq!(v["pipeline"], "app");
    assert_eq!(v["deploy"], "none (record only)");
    let out = sandbox
        .promote_in(
            &sandbox.path("app"),
            &[],
            &["register", "--manifest", "release.toml", "--as", "ci-bot"],
        )
        .expect(0)
        .stdout();
    assert!(out.contains("registered"), "{out}");
    let run = sandbox
        .promote_in(&sandbox.path("app"), &[], &["run", "latest"])
        .expect(4);
    assert!(
        run.stdout()
            .contains("waiting for staging: approval 1 of qa"),
        "{}",
        run.stdout()
    );
    // the starter roster names the people the starter template's approvals need
    assert!(sandbox.path("app/roster.toml").exists());
    let app = sandbox.path("app");
    sandbox
        .promote_in(
            &app,
            &[],
            &["approve", "latest", "staging", "--as", "mallory"],
        )
        .expect(1);
    let out = sandbox
        .promote_in(
            &app,
            &[],
            &["approve", "latest", "staging", "--as", "carol"],
        )
        .expect(0)
        .stdout();
    assert!(out.contains("approved by carol (roster)"), "{out}");
    let run = sandbox.promote_in(&app, &[], &["run", "latest"]).expect(4);
    assert!(
        run.stdout()
            .contains("waiting for production: approval (1 of sre AND 1 of security)"),
        "{}",
        run.stdout()
    );
}

/// Issue 15: with a roster, `--as` must name a listed person, the groups are the roster's and
/// `--groups` is refused, and the decision records the roster file's digest.
#[test]
fn the_roster_decides_who_acts_and_their_groups() {
    let s = Sandbox::new();
    s.promote(&["register", "--manifest", "release.toml", "--as", "ci-bot"])
        .expect(0);
    s.promote(&["run", "latest"]).expect(4);
    // alice is in sre; claiming security too is refused, and says why
    let r = s
        .promote(&[
            "approve", "latest", "prod", "--as", "alice", "--groups", "security",
        ])
        .expect(2);
    assert!(r.stderr().contains("--groups"), "{}", r.stderr());
    assert!(
        r.stderr().contains("come from its roster"),
        "{}",
        r.stderr()
    );
    // so is the same claim from the environment
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_promote"));
    let out = cmd
        .current_dir(s.root.path())
        .args(["-f", "svc/promotion.toml", "approve", "latest", "prod"])
        .env("PROMOTION_AS", "alice")
        .env("PROMOTION_GROUPS", "security")
        .output()
        .unwrap();
    assert_eq!(Run(out).expect(2).code(), 2);
    // a name the roster does not list
    let r = s
        .promote(&["approve", "latest", "prod", "--as", "mallory"])
        .expect(1);
    assert!(r.stderr().contains("not in the roster"), "{}", r.stderr());
    // nothing of that was recorded as an approval
    let status = s.promote(&["status", "latest"]).expect(0).stdout();
    assert!(!status.contains("approved by"), "{status}");

    let out = s
        .promote(&["approve", "latest", "prod", "--as", "alice"])
        .expect(0)
        .stdout();
    assert!(out.contains("approved by alice (roster)"), "{out}");
    // alice's roster groups (sre) do not satisfy security
    s.promote(&["advance", "latest"]).expect(4);
    s.promote(&["approve", "latest", "prod", "--as", "bob"])
        .expect(0);
    s.promote(&["run", "latest"]).expect(0);
    let status = s.promote(&["status", "latest"]).expect(0).stdout();
    assert!(status.contains("approved by alice (roster)"), "{status}");
    assert!(status.contains("approved by bob (roster)"), "{status}");
    assert!(!status.contains("UNVERIFIED"), "{status}");
    let json = s.promote(&["status", "--json"]).expect(0).json();
    assert_eq!(json["releases"][0]["unverified_decisions"], 0);
    // the roster's digest is recorded with the decisions
    let digest = hex::encode(sha2::Sha256::digest(ROSTER.as_bytes()));
    let export = s.promote(&["log", "export"]).expect(0).stdout();
    let recorded = export
        .lines()
        .filter(|l| l.contains("approval_given") && l.contains(&digest))
        .count();
    assert_eq!(recorded, 2, "{export}");
}

/// Issue 15: a service file that names neither a roster nor `identity = "unverified"` refuses
/// a person's command, and the message names both options.
#[test]
fn without_a_roster_or_unverified_person_commands_are_refused() {
    let s = Sandbox::new();
    s.write(
        "svc/promotion.toml",
        &SERVICE.replace("roster = \"roster.toml\"\n", ""),
    );
    s.promote(&["register", "--manifest", "release.toml", "--as", "ci-bot"])
        .expect(0);
    s.promote(&["run", "latest"]).expect(4);
    for args in [
        &[
            "approve", "latest", "prod", "--as", "alice", "--groups", "sre",
        ][..],
        &[
            "reject", "latest", "prod", "--as", "alice", "--groups", "sre",
        ][..],
        &["abort", "latest", "prod", "--as", "ops", "--reason", "x"][..],
    ] {
        let r = s.promote(args).expect(2);
        assert!(
            r.stderr().contains("roster = \"roster.toml\""),
            "{}",
            r.stderr()
        );
        assert!(
            r.stderr().contains("identity = \"unverified\""),
            "{}",
            r.stderr()
        );
    }
    let status = s.promote(&["status", "latest", "--json"]).expect(0).json();
    assert_eq!(status["releases"][0]["stages"]["prod"], "awaiting_approval");
}

/// Issue 15's attack: one person satisfies `1 of sre AND 1 of security` with two invented
/// names, and breaks glass as anyone claiming `incident-commanders`. Under a roster every step
/// is refused; with `identity = "unverified"` it works, and `promote status` says UNVERIFIED.
#[test]
fn invented_names_and_groups_work_only_when_the_service_says_unverified() {
    let attack = |s: &Sandbox, code: i32| {
        s.promote(&["register", "--manifest", "release.toml", "--as", "ci-bot"])
            .expect(0);
        s.promote(&["run", "latest"]).expect(1);
        s.promote(&[
            "override",
            "latest",
            "build",
            "smoke",
            "--as",
            "anyone",
            "--groups",
            "incident-commanders",
            "--justification",
            "trust me",
        ])
        .expect(code);
        // overridden, build promotes and prod waits for approvals; refused, build stays failed
        s.promote(&["run", "latest"])
            .expect(if code == 0 { 4 } else { 1 });
        for (who, group) in [("sre-me", "sre"), ("sec-me", "security")] {
            s.promote(&["approve", "latest", "prod", "--as", who, "--groups", group])
                .expect(code);
        }
    };
    let failing = SERVICE.replace(
        "approvers = \"security\"",
        "approvers = \"security\"\nsmoke_exit = 3",
    );

    let s = Sandbox::new();
    s.write("svc/promotion.toml", &failing);
    attack(&s, 2);
    let status = s.promote(&["status", "latest", "--json"]).expect(0).json();
    assert_eq!(status["releases"][0]["stages"]["build"], "failed");
    assert_eq!(status["releases"][0]["stages"]["prod"], "waiting");
    assert_eq!(status["releases"][0]["unverified_decisions"], 0);

    let s = Sandbox::new();
    s.write(
        "svc/promotion.toml",
        &failing.replace("roster = \"roster.toml\"", "identity = \"unverified\""),
    );
    attack(&s, 0);
    s.promote(&["run", "latest"]).expect(0);
    let status = s.promote(&["status", "latest", "--json"]).expect(0).json();
    assert_eq!(status["releases"][0]["stages"]["prod"], "promoted");
    assert_eq!(status["releases"][0]["unverified_decisions"], 3);
    let detail = s.promote(&["status", "latest"]).expect(0).stdout();
    assert!(
        detail.contains("approved by sre-me (UNVERIFIED)"),
        "{detail}"
    );
    assert!(
        detail.contains("approved by sec-me (UNVERIFIED)"),
        "{detail}"
    );
    assert!(
        detail
            .lines()
            .any(|l| l.starts_with("UNVERIFIED:") && l.contains("anyone")),
        "{detail}"
    );
    let table = s.promote(&["status"]).expect(0).stdout();
    assert!(
        table.contains("has 3 decision(s) recorded without a verified identity"),
        "{table}"
    );
}

#[test]
fn postgres_by_url() {
    let Ok(url) = std::env::var("PROMOTION_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must provide PROMOTION_TEST_POSTGRES_URL"
        );
        eprintln!("skipped: PROMOTION_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = format!("promote_cli_{}", std::process::id());
    let s = Sandbox::new();
    let db = ["--database", url.as_str(), "--schema", schema.as_str()];
    let with = |args: &[&str]| -> Vec<String> {
        db.iter()
            .chain(args.iter())
            .map(|a| (*a).to_owned())
            .collect()
    };
    let run = |args: &[&str]| {
        let a = with(args);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        s.promote(&refs)
    };
    run(&["register", "--manifest", "release.toml", "--as", "ci-bot"]).expect(0);
    run(&["run", "latest"]).expect(4);
    let status = run(&["status", "--json"]).expect(0).json();
    assert_eq!(status["releases"][0]["stages"]["prod"], "awaiting_approval");
    run(&["log", "verify"]).expect(0);
    assert!(!s.path("svc/.promotion/audit.db").exists());
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

/// The README's ten-line pipeline and its commands, as written there.
#[test]
fn the_readme_walkthrough_works() {
    let readme = include_str!("../README.md");
    let block = |after: &str, lang: &str| -> String {
        let start = readme
            .find(after)
            .unwrap_or_else(|| panic!("{after} not in README"));
        let rest = &readme[start..];
        let open = rest.find(&format!("```{lang}\n")).unwrap() + lang.len() + 4;
        let close = rest[open..].find("```").unwrap();
        rest[open..open + close].to_owned()
    };
    let s = Sandbox::new();
    s.write("hello.toml", &block("`hello.toml`:", "toml"));
    s.write("release.toml", &block("`release.toml`", "toml"));
    s.write("roster.toml", &block("`roster.toml`", "toml"));
    s.write(
        "promotion.toml",
        &block("`promotion.toml`, the service file", "toml"),
    );
    let template_lines = block("`hello.toml`:", "toml").lines().count();
    assert!(template_lines <= 12, "{template_lines} lines");
    for line in block("Take it through:", "sh").lines() {
        let (command, comment) = line.split_once('#').unwrap_or((line, ""));
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        let expected = match comment.trim().strip_prefix("exit ") {
            Some(rest) => rest[..1].parse().unwrap(),
            None => 0,
        };
        s.promote_in(s.root.path(), &[], &args).expect(expected);
    }
    let status = s
        .promote_in(s.root.path(), &[], &["status", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["releases"][0]["stages"]["production"], "promoted");
}

/// Issue 16, item 1: an approver's name changed in the log, every later entry re-chained and
/// re-hashed, the Merkle nodes recomputed. While the signed checkpoints are there, verify names
/// the rewritten entry; with them deleted, `log verify` with the trusted key still refuses, in
/// one line, because nothing signed is left.
#[test]
fn a_rewritten_approval_without_checkpoints_does_not_verify() {
    let s = Sandbox::new();
    s.promote(&["register", "--manifest", "release.toml", "--as", "ci-bot"])
        .expect(0);
    s.promote(&["run", "latest"]).expect(4);
    for who in ["alice", "bob"] {
        s.promote(&["approve", "latest", "prod", "--as", who])
            .expect(0);
    }
    s.promote(&["run", "latest"]).expect(0);
    s.promote(&["log", "verify"]).expect(0);

    let db = s.path("svc/.promotion/audit.db");
    let tamper = promotion_audit::sqlite::harness::sqlite_tamper(&db);
    futures::executor::block_on(async {
        let store = promotion_audit::AuditStore::open_sqlite_existing(
            &db,
            promotion_audit::AuditOptions::new("forger"),
        )
        .unwrap();
        let size = store.size().await.unwrap();
        let mut approval = None;
        for seq in 0..size {
            let bytes = store.entry(seq).await.unwrap().bytes;
            let text = String::from_utf8(bytes).unwrap();
            if text.contains("approval_given") && text.contains("\"alice\"") {
                approval = Some(seq);
            }
        }
        let approval = approval.expect("alice's approval is in the log");
        promotion_audit::conformance::forge(&store, tamper.as_ref(), approval, |b| {
            String::from_utf8(b.to_vec())
                .unwrap()
                .replace("\"alice\"", "\"mallory\"")
                .into_bytes()
        })
        .await;
    });

    // The checkpoints signed after the approval no longer match.
    let r = s.promote(&["log", "verify"]).expect(1);
    assert!(r.stderr().contains("was rewritten"), "{}", r.stderr());

    tamper.delete_checkpoints(0);
    let vkey = s.path("svc/.promotion/checkpoint.vkey");
    let vkey = vkey.to_str().unwrap();
    let r = s.promote(&["log", "verify", "--vkey-file", vkey]).expect(1);
    let err = r.stderr();
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    assert!(err.contains("no signed checkpoint"), "{err}");
    assert_eq!(
        err.matches("does not verify").count(),
        1,
        "the error is printed once: {err}"
    );
    assert!(r.stdout().is_empty(), "{}", r.stdout());

    let r = s
        .promote(&["log", "verify", "--vkey-file", vkey, "--json"])
        .expect(1);
    let v = r.json();
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("no signed checkpoint"),
        "{v}"
    );
}

/// A damaged entry's error is printed once, not once as the error and again as its cause.
#[test]
fn log_verify_prints_its_error_once() {
    let s = Sandbox::new();
    s.promote(&["register", "--manifest", "release.toml", "--as", "ci-bot"])
        .expect(0);
    s.promote(&["run", "latest"]).expect(4);
    let db = s.path("svc/.promotion/audit.db");
    let staged = futures::executor::block_on(async {
        let store = promotion_audit::AuditStore::open_sqlite_existing(
            &db,
            promotion_audit::AuditOptions::new("reader"),
        )
        .unwrap();
        let mut seq = 0;
        while !String::from_utf8(store.entry(seq).await.unwrap().bytes)
            .unwrap()
            .contains("\"stage\":\"")
        {
            seq += 1;
        }
        seq
    });
    promotion_audit::sqlite::harness::sqlite_tamper(&db).flip_byte(staged);
    let r = s.promote(&["log", "verify"]).expect(1);
    let err = r.stderr();
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    assert_eq!(
        err.matches(&format!("entry {staged}:")).count(),
        1,
        "the error is printed once: {err}"
    );
}

/// An unencrypted Ed25519 key made by the real `ssh-keygen` at `path`; its public line.
fn keygen(path: &Path, comment: &str) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::read_to_string(format!("{}.pub", path.display()))
        .unwrap()
        .trim()
        .to_owned()
}

/// Issue 15, signed decisions: `approve --key` signs the canonical statement, the signature is
/// checked against the roster's key for the `--as` person (Bob's key offered as Alice is
/// refused), and what `promote signatures` writes is accepted by the real `ssh-keygen -Y
/// verify` (`man ssh-keygen`, ALLOWED SIGNERS and `-Y verify`) — and refused once a byte of the
/// statement changes or for another identity.
#[test]
fn a_signed_approval_verifies_with_ssh_keygen_and_another_s_key_is_refused() {
    if Command::new("ssh-keygen").arg("-?").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install ssh-keygen (openssh-client)"
        );
        eprintln!("SKIPPED: ssh-keygen is not installed");
        return;
    }
    let s = Sandbox::new();
    let alice = keygen(&s.path("alice.key"), "alice@laptop");
    let bob = keygen(&s.path("bob.key"), "bob@laptop");
    s.write(
        "svc/roster.toml",
        &format!(
            "[[people]]\nid = \"alice\"\ngroups = [\"sre\"]\nssh_keys = [\"{alice}\"]\n\n\
             [[people]]\nid = \"bob\"\ngroups = [\"security\"]\nssh_keys = [\"{bob}\"]\n\n\
             [[people]]\nid = \"ci-bot\"\n"
        ),
    );
    s.promote(&["register", "--manifest", "release.toml", "--as", "ci-bot"])
        .expect(0);
    s.promote(&["run", "latest"]).expect(4);
    let bob_key = s.path("bob.key");
    let alice_key = s.path("alice.key");

    // Bob's key offered as Alice: refused, and nothing approved
    let r = s
        .promote(&[
            "approve",
            "latest",
            "prod",
            "--as",
            "alice",
            "--key",
            bob_key.to_str().unwrap(),
        ])
        .expect(1);
    assert!(r.stderr().contains("bob's key"), "{}", r.stderr());
    let status = s.promote(&["status", "latest"]).expect(0).stdout();
    assert!(!status.contains("approved by"), "{status}");

    let out = s
        .promote(&[
            "approve",
            "latest",
            "prod",
            "--as",
            "alice",
            "--key",
            alice_key.to_str().unwrap(),
            "--comment",
            "checked the canary",
        ])
        .expect(0)
        .stdout();
    assert!(out.contains("approved by alice (SSH-signed)"), "{out}");

    let listing = s
        .promote(&["signatures", "latest", "--out", "sigs"])
        .expect(0)
        .stdout();
    assert!(listing.contains("ssh-keygen -Y verify -f "), "{listing}");
    assert!(
        listing.contains("checked: signed by alice's key in the roster"),
        "{listing}"
    );
    let dir = s.path("sigs");
    let statement = std::fs::read_to_string(dir.join("1.statement.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&statement).unwrap();
    assert_eq!(v["decision"]["action"], "approve");
    assert_eq!(v["stage"], "prod");
    assert_eq!(v["comment"], "checked the canary");
    let id = s.promote(&["status", "--json"]).expect(0).json()["releases"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(v["release"], id.as_str());
    let roster_digest = hex::encode(sha2::Sha256::digest(s.read("svc/roster.toml")));
    assert_eq!(v["roster"], format!("sha256:{roster_digest}"));

    let verify = |identity: &str, message: &[u8]| -> bool {
        use std::io::Write as _;
        let mut child = Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f"])
            .arg(dir.join("allowed_signers"))
            .args(["-I", identity, "-n", "promotion", "-s"])
            .arg(dir.join("1.statement.json.sig"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(message).unwrap();
        child.wait_with_output().unwrap().status.success()
    };
    assert!(verify("alice", statement.as_bytes()));
    assert!(!verify("bob", statement.as_bytes()));
    let forged = statement.replace("checked the canary", "checked the canarY");
    assert_ne!(forged, statement);
    assert!(!verify("alice", forged.as_bytes()));

    // the log entry's comment rewritten (the signed statement left alone): `promote
    // signatures` names the mismatch and exits 1
    let db = s.path("svc/.promotion/audit.db");
    let tamper = promotion_audit::sqlite::harness::sqlite_tamper(&db);
    futures::executor::block_on(async {
        let store = promotion_audit::AuditStore::open_sqlite_existing(
            &db,
            promotion_audit::AuditOptions::new("forger"),
        )
        .unwrap();
        let size = store.size().await.unwrap();
        let mut at = None;
        for seq in 0..size {
            let text = String::from_utf8(store.entry(seq).await.unwrap().bytes).unwrap();
            if text.contains("approval_given") {
                at = Some(seq);
            }
        }
        let at = at.expect("alice's approval is in the log");
        promotion_audit::conformance::forge(&store, tamper.as_ref(), at, |b| {
            let text = String::from_utf8(b.to_vec()).unwrap();
            let forged = text.replace(
                "\"comment\":\"checked the canary\"",
                "\"comment\":\"waved through\"",
            );
            assert_ne!(forged, text, "the entry's comment field: {text}");
            forged.into_bytes()
        })
        .await;
    });
    let r = s
        .promote(&["signatures", "latest", "--out", "sigs2"])
        .expect(1);
    assert!(
        r.stdout()
            .contains("FAILED: the signed statement's comment is \"checked the canary\", the log entry's is \"waved through\""),
        "{}",
        r.stdout()
    );
}
