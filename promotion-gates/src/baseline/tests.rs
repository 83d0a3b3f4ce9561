//! Unit tests of the configuration baseline gate.

use super::*;
use crate::testkit::{invalid_input, run};
use chrono::TimeZone;
use chrono::{DateTime, Utc};
use promotion_core::{Digest, Gate, GateError, GateKind, Verdict};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use walkdir::WalkDir;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/baseline")
        .join(rel)
}

fn sample_config() -> PathBuf {
    data("config")
}

/// Copies the committed sample tree into a fresh tempdir; returns (tempdir, config dir).
fn copy_sample() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("config");
    let src = sample_config();
    for entry in WalkDir::new(&src) {
        let entry = entry.unwrap();
        let target = dest.join(entry.path().strip_prefix(&src).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
    (tmp, dest)
}

/// The gate the committed `approved.json` was approved with.
fn approved_gate(dir: &Path, manifest: &Path) -> ConfigBaselineGateBuilder {
    ConfigBaselineGate::builder(dir, manifest)
        .exclude("**/*.bak")
        .exclude("local")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 9, 30, 0).unwrap()
}

// ---- baseline: the committed sample -------------------------------------------------

#[test]
fn baseline_unchanged_sample_tree_passes_with_full_evidence() {
    let manifest = data("manifests/approved.json");
    let gate = approved_gate(&sample_config(), &manifest).build().unwrap();
    assert_eq!(gate.kind(), GateKind::Compliance);
    assert_eq!(gate.name(), "config-baseline");
    let verdict = run(&gate).unwrap();
    let Verdict::Pass(ev) = &verdict else {
        panic!("{verdict:?}")
    };
    assert!(
        ev.summary.contains("matches the baseline approved.json approved by dana on 2026-11-20 09:30 UTC: 4 files unchanged"),
        "{}",
        ev.summary
    );
    // Every input read is attached by digest: the manifest and each of the four files.
    let manifest_bytes = std::fs::read(&manifest).unwrap();
    assert_eq!(ev.attachments.len(), 5);
    assert_eq!(ev.attachments[0].name, manifest.display().to_string());
    assert_eq!(ev.attachments[0].digest, Digest::of(&manifest_bytes));
    let app = ev
        .attachments
        .iter()
        .find(|a| a.name.ends_with("/app.toml"))
        .unwrap();
    assert_eq!(
        app.digest,
        Digest::of(&std::fs::read(sample_config().join("app.toml")).unwrap())
    );
    assert!(!ev.attachments.iter().any(|a| a.name.ends_with(".bak")));
    assert_eq!(ev.facts["drift"], "false");
    assert_eq!(ev.facts["unchanged"], "4");
    assert_eq!(
        ev.facts["manifest"],
        Digest::of(&manifest_bytes).to_string()
    );
    assert_eq!(ev.data["counts"]["files"], 4);
    assert_eq!(ev.data["manifest"]["approved_by"], "dana");
    assert_eq!(
        ev.data["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "app.toml",
            "logging.yaml",
            "nginx/nginx.conf",
            "nginx/sites/shop.conf"
        ]
    );
}

#[test]
fn baseline_committed_toml_manifest_reads_like_the_json_one() {
    let json = BaselineManifest::read(&data("manifests/approved.json")).unwrap();
    let toml = BaselineManifest::read(&data("manifests/approved.toml")).unwrap();
    assert_eq!(json, toml);
    assert_eq!(toml.approved_at, Some(t0()));
    let gate = approved_gate(&sample_config(), &data("manifests/approved.toml"))
        .build()
        .unwrap();
    assert!(matches!(run(&gate).unwrap(), Verdict::Pass(_)));
}

#[test]
fn baseline_without_the_excludes_the_backup_and_local_files_are_added() {
    let gate = ConfigBaselineGate::builder(sample_config(), data("manifests/approved.json"))
        .build()
        .unwrap();
    let verdict = run(&gate).unwrap();
    let Verdict::Fail(ev) = &verdict else {
        panic!("{verdict:?}")
    };
    assert!(
        ev.summary
            .contains("2 added (app.toml.bak, local/override.toml); 4 unchanged"),
        "{}",
        ev.summary
    );
}

// ---- baseline: differences ----------------------------------------------------------

#[test]
fn baseline_changed_file_fails_with_old_and_new_digests() {
    let (_tmp, dir) = copy_sample();
    let path = dir.join("nginx/nginx.conf");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text = text.replace("worker_processes 4;", "worker_processes 64;");
    std::fs::write(&path, &text).unwrap();

    let gate = approved_gate(&dir, &data("manifests/approved.json"))
        .build()
        .unwrap();
    let verdict = run(&gate).unwrap();
    let Verdict::Fail(ev) = &verdict else {
        panic!("{verdict:?}")
    };
    assert!(
        ev.summary
            .contains("drifted from the baseline approved.json approved by dana")
            && ev
                .summary
                .contains("1 changed (nginx/nginx.conf); 3 unchanged"),
        "{}",
        ev.summary
    );
    let changed = &ev.data["changed"][0];
    assert_eq!(changed["path"], "nginx/nginx.conf");
    assert_eq!(
        changed["approved"],
        "sha256:8576ac04861013a54443bad43d659f665568f0226fbf810c6bd12667ec543b2b"
    );
    assert_eq!(changed["found"], Digest::of(text.as_bytes()).to_string());
    assert_eq!(ev.facts["drift"], "true");
    assert_eq!(ev.facts["changed"], "1");
    assert_eq!(ev.data["counts"]["unchanged"], 3);
}

#[test]
fn baseline_added_file_fails_and_is_named() {
    let (_tmp, dir) = copy_sample();
    std::fs::write(
        dir.join("nginx/sites/admin.conf"),
        "server { listen 8443; }\n",
    )
    .unwrap();
    let gate = approved_gate(&dir, &data("manifests/approved.json"))
        .build()
        .unwrap();
    let verdict = run(&gate).unwrap();
    let Verdict::Fail(ev) = &verdict else {
        panic!("{verdict:?}")
    };
    assert!(
        ev.summary.contains("1 added (nginx/sites/admin.conf)"),
        "{}",
        ev.summary
    );
    assert_eq!(ev.data["added"][0]["path"], "nginx/sites/admin.conf");
    assert_eq!(
        ev.data["added"][0]["digest"],
        Digest::of(b"server { listen 8443; }\n").to_string()
    );
    assert_eq!(ev.facts["added"], "1");
}

#[test]
fn baseline_removed_file_fails_and_is_named() {
    let (_tmp, dir) = copy_sample();
    std::fs::remove_file(dir.join("logging.yaml")).unwrap();
    let gate = approved_gate(&dir, &data("manifests/approved.json"))
        .build()
        .unwrap();
    let verdict = run(&gate).unwrap();
    let Verdict::Fail(ev) = &verdict else {
        panic!("{verdict:?}")
    };
    assert!(
        ev.summary.contains("1 removed (logging.yaml)"),
        "{}",
        ev.summary
    );
    assert_eq!(
        ev.data["removed"][0],
        serde_json::json!({
            "path": "logging.yaml",
            "approved": "sha256:de83de8f8ab2e38a640f874874432ebcd7d652f0b1765d9cea43a03a0a0168ad"
        })
    );
}

#[test]
fn baseline_all_three_kinds_are_reported_in_order() {
    let (_tmp, dir) = copy_sample();
    std::fs::remove_file(dir.join("logging.yaml")).unwrap();
    std::fs::write(dir.join("app.toml"), "[server]\nworkers = 1\n").unwrap();
    std::fs::write(dir.join("zz.toml"), "x = 1\n").unwrap();
    std::fs::write(dir.join("aa.toml"), "x = 2\n").unwrap();
    let gate = approved_gate(&dir, &data("manifests/approved.json"))
        .build()
        .unwrap();
    let report = gate.check().unwrap();
    assert_eq!(
        report
            .added
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>(),
        ["aa.toml", "zz.toml"]
    );
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.changed.len(), 1);
    assert_eq!(report.unchanged, 2);
    assert_eq!(report.failures(FailOn::AnyDifference), 4);
    let Verdict::Fail(ev) = run(&gate).unwrap() else {
        panic!()
    };
    assert!(
        ev.summary.contains(
            "1 changed (app.toml), 2 added (aa.toml, zz.toml), 1 removed (logging.yaml); 2 unchanged"
        ),
        "{}",
        ev.summary
    );
    // Deterministic: a second evaluation yields identical evidence.
    let Verdict::Fail(again) = run(&gate).unwrap() else {
        panic!()
    };
    assert_eq!(again, ev);
}

#[test]
fn baseline_changed_or_removed_mode_tolerates_added_files_only() {
    let (_tmp, dir) = copy_sample();
    std::fs::write(dir.join("feature-flags.toml"), "beta = true\n").unwrap();
    let gate = approved_gate(&dir, &data("manifests/approved.json"))
        .fail_on(FailOn::ChangedOrRemoved)
        .build()
        .unwrap();
    let verdict = run(&gate).unwrap();
    let Verdict::Pass(ev) = &verdict else {
        panic!("{verdict:?}")
    };
    assert!(
        ev.summary
            .contains("4 files unchanged; 1 added (tolerated) (feature-flags.toml)"),
        "{}",
        ev.summary
    );
    assert_eq!(ev.data["fail_on"], "changed_or_removed");
    std::fs::remove_file(dir.join("app.toml")).unwrap();
    let verdict = run(&gate).unwrap();
    let Verdict::Fail(ev) = &verdict else {
        panic!("{verdict:?}")
    };
    assert!(
        ev.summary.contains("1 removed (app.toml)"),
        "{}",
        ev.summary
    );
}

// ---- baseline: include / exclude -----------------------------------------------------

#[test]
fn baseline_excluded_changed_files_do_not_fail() {
    let (_tmp, dir) = copy_sample();
    // Both are excluded: one by a file pattern, one through its excluded directory.
    std::fs::write(dir.join("app.toml.bak"), "changed backup\n").unwrap();
    std::fs::write(dir.join("local/override.toml"), "changed override\n").unwrap();
    std::fs::write(dir.join("local/new.toml"), "new\n").unwrap();
    let gate = approved_gate(&dir, &data("manifests/approved.json"))
        .build()
        .unwrap();
    assert!(matches!(run(&gate).unwrap(), Verdict::Pass(_)));

    // A manifest approved *without* excludes lists them; excluded entries are then out of
    // scope, not removed or changed.
    let all = tempfile::tempdir().unwrap();
    let full = all.path().join("full.json");
    ConfigBaselineGate::builder(sample_config(), &full)
        .build()
        .unwrap()
        .approve("dana", t0())
        .unwrap();
    let gate = approved_gate(&dir, &full).build().unwrap();
    let verdict = run(&gate).unwrap();
    let Verdict::Pass(ev) = &verdict else {
        panic!("{verdict:?}")
    };
    assert_eq!(
        ev.data["out_of_scope"],
        serde_json::json!(["app.toml.bak", "local/override.toml"])
    );
}

#[test]
fn baseline_include_patterns_select_files_and_star_does_not_cross_directories() {
    let (_tmp, dir) = copy_sample();
    let gate = ConfigBaselineGate::builder(&dir, dir.join("../conf-only.json"))
        .include("nginx/**/*.conf")
        .include("*.yaml")
        .build()
        .unwrap();
    let files: Vec<String> = gate.scan().unwrap().into_iter().map(|f| f.path).collect();
    assert_eq!(
        files,
        ["logging.yaml", "nginx/nginx.conf", "nginx/sites/shop.conf"]
    );
    let gate = ConfigBaselineGate::builder(&dir, dir.join("../x.json"))
        .include("*.conf")
        .build()
        .unwrap();
    assert!(gate.scan().unwrap().is_empty());

    // Against the full approved manifest, files outside the include set are out of scope,
    // and changing one of them does not fail the gate.
    std::fs::write(dir.join("app.toml"), "changed\n").unwrap();
    let gate = ConfigBaselineGate::builder(&dir, data("manifests/approved.json"))
        .include("nginx/**")
        .build()
        .unwrap();
    let verdict = run(&gate).unwrap();
    let Verdict::Pass(ev) = &verdict else {
        panic!("{verdict:?}")
    };
    assert_eq!(ev.data["counts"]["unchanged"], 2);
    assert_eq!(ev.data["counts"]["out_of_scope"], 2);
}

#[test]
fn baseline_nothing_selected_and_nothing_approved_is_inconclusive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("empty");
    std::fs::create_dir(&dir).unwrap();
    let manifest = tmp.path().join("baseline.json");
    std::fs::write(&manifest, r#"{"files": {}}"#).unwrap();
    let gate = ConfigBaselineGate::builder(&dir, &manifest)
        .build()
        .unwrap();
    let verdict = run(&gate).unwrap();
    assert!(
        matches!(&verdict, Verdict::Inconclusive(ev) if ev.summary.contains("nothing to compare")),
        "{verdict:?}"
    );
}

// ---- baseline: writing manifests -----------------------------------------------------

#[test]
fn baseline_written_manifest_round_trips_in_json_and_toml() {
    let (tmp, dir) = copy_sample();
    for name in ["baseline.json", "baseline.toml"] {
        let path = tmp.path().join(name);
        let gate = approved_gate(&dir, &path).build().unwrap();
        let written = gate.approve("lee", t0()).unwrap();
        let read = BaselineManifest::read(&path).unwrap();
        assert_eq!(read, written, "{name}");
        assert_eq!(read.approved_by.as_deref(), Some("lee"));
        // Same content as the committed, hand-checked manifest.
        let committed = BaselineManifest::read(&data("manifests/approved.json")).unwrap();
        assert_eq!(read.files, committed.files, "{name}");
        assert!(matches!(run(&gate).unwrap(), Verdict::Pass(_)), "{name}");
        // Rendering is deterministic and re-reads to the same manifest.
        let format = ManifestFormat::from_path(&path);
        assert_eq!(
            written.render(format).unwrap(),
            std::fs::read_to_string(&path).unwrap()
        );
    }
    // The committed JSON manifest is byte-for-byte what `approve` writes.
    let json = std::fs::read_to_string(tmp.path().join("baseline.json")).unwrap();
    let committed = std::fs::read_to_string(data("manifests/approved.json")).unwrap();
    assert_eq!(json.replace("\"lee\"", "\"dana\""), committed);
}

#[test]
fn baseline_manifest_inside_the_directory_is_not_part_of_it() {
    let (_tmp, dir) = copy_sample();
    let manifest = dir.join("BASELINE.json");
    let gate = approved_gate(&dir, &manifest).build().unwrap();
    let written = gate.approve("dana", t0()).unwrap();
    assert!(!written.files.contains_key("BASELINE.json"));
    assert!(matches!(run(&gate).unwrap(), Verdict::Pass(_)));
    // Also when the path is given relative to a different spelling of the directory.
    let gate = approved_gate(&dir.join("nginx/.."), &manifest)
        .build()
        .unwrap();
    assert!(matches!(run(&gate).unwrap(), Verdict::Pass(_)));
}

// ---- baseline: bad input -------------------------------------------------------------

fn broken(name: &str) -> (String, String) {
    let path = data(&format!("manifests/broken/{name}"));
    let gate = approved_gate(&sample_config(), &path).build().unwrap();
    let (what, message) = invalid_input(run(&gate));
    assert!(
        what.starts_with(&path.display().to_string()),
        "{name}: `{what}` does not name the file"
    );
    (what, message)
}

#[test]
fn baseline_bad_manifests_are_invalid_input_naming_file_line_and_entry() {
    let (what, message) = broken("not-json.json");
    assert!(what.ends_with("not-json.json line 1"), "{what}");
    assert!(
        message.starts_with("not valid JSON: expected value"),
        "{message}"
    );

    let (what, message) = broken("truncated.json");
    assert!(what.ends_with(" line 5"), "{what}");
    assert!(message.starts_with("not valid JSON: EOF"), "{message}");

    let (what, message) = broken("bad-digest.json");
    assert!(what.ends_with("bad-digest.json line 5"), "{what}");
    assert_eq!(
        message,
        "file `nginx/nginx.conf`: a sha256 digest has 64 hex digits, found 44"
    );

    let (_, message) = broken("md5-digest.json");
    assert!(
        message.starts_with("file `app.toml`: expected a digest of the form `sha256:"),
        "{message}"
    );

    let (what, message) = broken("duplicate-path.json");
    assert!(what.ends_with("duplicate-path.json line 6"), "{what}");
    assert_eq!(message, "file `nginx/nginx.conf` is listed twice");

    let (what, message) = broken("escaping-path.json");
    assert!(what.ends_with(" line 4"), "{what}");
    assert_eq!(
        message,
        "file `../secrets/db.password`: the path may not contain `.` or `..` segments"
    );

    let (_, message) = broken("not-a-string.json");
    assert_eq!(
        message,
        "file `app.toml`: expected a digest `sha256:<64 hex digits>`, found the number 42"
    );

    let (what, message) = broken("unknown-field.json");
    assert!(what.ends_with(" line 3"), "{what}");
    assert!(
        message.starts_with("unknown field `approvers`"),
        "{message}"
    );

    let (what, message) = broken("bad-approved-at.json");
    assert!(what.ends_with(" line 3"), "{what}");
    assert!(
        message.starts_with("approved_at `last tuesday` is not an RFC 3339 date"),
        "{message}"
    );
}

#[test]
fn baseline_bad_toml_manifests_are_invalid_input_with_lines() {
    let (what, message) = broken("duplicate-key.toml");
    assert!(
        what.ends_with("duplicate-key.toml line 6"),
        "{what}: {message}"
    );
    assert!(message.contains("duplicate key"), "{message}");

    let (what, message) = broken("bad-digest.toml");
    assert!(
        what.ends_with("bad-digest.toml line 5"),
        "{what}: {message}"
    );
    assert_eq!(
        message,
        "file `logging.yaml`: character 63 of the digest is not a hex digit"
    );

    let (what, message) = broken("local-datetime.toml");
    assert!(what.ends_with(" line 2"), "{what}: {message}");
    assert!(
        message.starts_with("approved_at `2026-11-20T09:30:00` is not an RFC 3339"),
        "{message}"
    );
}

#[test]
fn baseline_manifest_paths_are_checked() {
    for (path, problem) in [
        ("", "the path is empty"),
        ("/etc/app.toml", "the path must be relative"),
        ("nginx//nginx.conf", "the path has an empty segment"),
        ("nginx/", "the path has an empty segment"),
        ("./app.toml", "may not contain `.` or `..`"),
    ] {
        let text = format!(r#"{{"files": {{"{path}": "{}"}}}}"#, Digest::of(b"x"));
        let err = BaselineManifest::parse(&text, ManifestFormat::Json, "m.json").unwrap_err();
        let GateError::InvalidInput { what, message } = err else {
            panic!()
        };
        assert_eq!(what, "m.json line 1");
        assert!(message.contains(problem), "{path}: {message}");
    }
}

#[test]
fn baseline_missing_directory_and_manifest_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-config");
    let gate = ConfigBaselineGate::builder(&missing, data("manifests/approved.json"))
        .build()
        .unwrap();
    let (what, message) = invalid_input(run(&gate));
    assert_eq!(what, missing.display().to_string());
    assert_eq!(message, "the configuration directory does not exist");

    let file = data("manifests/approved.json");
    let gate = ConfigBaselineGate::builder(&file, &file).build().unwrap();
    let (what, message) = invalid_input(run(&gate));
    assert_eq!(what, file.display().to_string());
    assert_eq!(message, "is not a directory");

    let no_manifest = tmp.path().join("baseline.json");
    let gate = ConfigBaselineGate::builder(sample_config(), &no_manifest)
        .build()
        .unwrap();
    let (what, message) = invalid_input(run(&gate));
    assert_eq!(what, no_manifest.display().to_string());
    assert_eq!(message, "the baseline manifest does not exist");

    std::fs::write(&no_manifest, [0xff, 0xfe, 0x00]).unwrap();
    let (_, message) = invalid_input(run(&gate));
    assert!(
        message.starts_with("the baseline manifest is not UTF-8 text"),
        "{message}"
    );
}

#[test]
fn baseline_bad_configuration_is_refused_at_construction() {
    let err = ConfigBaselineGate::builder("conf", "b.json")
        .include("**/*.{toml")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, BaselineConfigError::InvalidPattern { list: "include", pattern, .. } if pattern == "**/*.{toml"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("invalid include pattern `**/*.{toml`: "),
        "{err}"
    );
    let err = ConfigBaselineGate::builder("conf", "b.json")
        .exclude("[a-")
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        BaselineConfigError::InvalidPattern {
            list: "exclude",
            ..
        }
    ));
    let err = ConfigBaselineGate::builder("conf", "b.json")
        .exclude("/etc/*.conf")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("may not start with `/`"), "{err}");
    let err = ConfigBaselineGate::builder("conf", "b.json")
        .include("")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("may not be empty"), "{err}");
    let err = ConfigBaselineGate::builder("conf", "b.json")
        .name(" padded ")
        .build()
        .unwrap_err();
    assert!(matches!(err, BaselineConfigError::InvalidName(_)));
    let err = ReproducibilityGate::builder("x.json")
        .name("")
        .build()
        .unwrap_err();
    assert!(matches!(err, BaselineConfigError::InvalidName(_)));
}

// ---- baseline: symbolic links --------------------------------------------------------

#[cfg(unix)]
#[test]
fn baseline_symlinks_are_refused_unless_excluded_or_followed() {
    let (tmp, dir) = copy_sample();
    let outside = tmp.path().join("outside.conf");
    std::fs::write(&outside, "upstream { server 10.0.0.1; }\n").unwrap();
    let link = dir.join("nginx/sites/upstream.conf");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let manifest = data("manifests/approved.json");

    let gate = approved_gate(&dir, &manifest).build().unwrap();
    let (what, message) = invalid_input(run(&gate));
    assert_eq!(what, link.display().to_string());
    assert!(message.starts_with("is a symbolic link"), "{message}");

    // Refused even when the include patterns would not select it: it could be a directory.
    let gate = approved_gate(&dir, &manifest)
        .include("*.toml")
        .build()
        .unwrap();
    assert!(invalid_input(run(&gate))
        .1
        .starts_with("is a symbolic link"));

    let gate = approved_gate(&dir, &manifest)
        .exclude("nginx/sites/upstream.conf")
        .build()
        .unwrap();
    assert!(matches!(run(&gate).unwrap(), Verdict::Pass(_)));

    let gate = approved_gate(&dir, &manifest)
        .follow_symlinks(true)
        .build()
        .unwrap();
    let report = gate.check().unwrap();
    assert_eq!(report.added.len(), 1);
    assert_eq!(report.added[0].path, "nginx/sites/upstream.conf");
    assert_eq!(
        report.added[0].digest,
        Digest::of(b"upstream { server 10.0.0.1; }\n")
    );

    // A dangling link is an error naming it, when following.
    std::fs::remove_file(&outside).unwrap();
    let (what, _) = invalid_input(run(&gate));
    assert_eq!(what, link.display().to_string());

    // A loop is an error too.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&dir, dir.join("nginx/loop")).unwrap();
    let (what, message) = invalid_input(run(&gate));
    assert!(what.ends_with("nginx/loop"), "{what}");
    assert!(message.contains("loop"), "{message}");
}

#[cfg(unix)]
#[test]
fn baseline_sockets_and_non_utf8_names_are_refused_when_selected() {
    use std::os::unix::ffi::OsStrExt;
    let (_tmp, dir) = copy_sample();
    let manifest = data("manifests/approved.json");
    let socket = dir.join("admin.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let gate = approved_gate(&dir, &manifest).build().unwrap();
    let (what, message) = invalid_input(run(&gate));
    assert_eq!(what, socket.display().to_string());
    assert_eq!(message, "is not a regular file (a socket, FIFO or device)");
    let excluding = approved_gate(&dir, &manifest)
        .exclude("*.sock")
        .build()
        .unwrap();
    assert!(matches!(run(&excluding).unwrap(), Verdict::Pass(_)));
    drop(listener);
    std::fs::remove_file(&socket).unwrap();

    let latin1 = dir.join(std::ffi::OsStr::from_bytes(b"caf\xe9.toml"));
    std::fs::write(&latin1, "x = 1\n").unwrap();
    let (what, message) = invalid_input(run(&gate));
    assert_eq!(what, latin1.display().to_string());
    assert_eq!(message, "the file name is not valid UTF-8");
}

// ---- baseline: large files -----------------------------------------------------------

/// Deterministic pseudo-random bytes (xorshift64).
fn fill(state: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// A reader that remembers the largest read it was asked for.
struct Spy<R> {
    inner: R,
    largest: usize,
    reads: usize,
}

impl<R: Read> Read for Spy<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.largest = self.largest.max(buf.len());
        self.reads += 1;
        self.inner.read(buf)
    }
}

#[cfg(target_os = "linux")]
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn baseline_large_file_is_hashed_in_chunks_and_correctly() {
    const SIZE: usize = 50 * 1024 * 1024 + 12_345;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("config");
    std::fs::create_dir(&dir).unwrap();
    let big = dir.join("model.bin");
    let mut expected = Sha256::new();
    {
        use std::io::Write as _;
        let mut file = std::io::BufWriter::new(File::create(&big).unwrap());
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = vec![0u8; 1 << 20];
        let mut left = SIZE;
        while left > 0 {
            let n = left.min(buf.len());
            fill(&mut state, &mut buf[..n]);
            expected.update(&buf[..n]);
            file.write_all(&buf[..n]).unwrap();
            left -= n;
        }
        file.flush().unwrap();
    }
    let expected = Digest::from_bytes(expected.finalize().into());

    // The hasher never asks for more than one chunk at a time.
    let mut spy = Spy {
        inner: File::open(&big).unwrap(),
        largest: 0,
        reads: 0,
    };
    let (digest, size) = digest_reader(&mut spy).unwrap();
    assert_eq!(digest, expected);
    assert_eq!(size, SIZE as u64);
    assert_eq!(spy.largest, CHUNK);
    assert!(spy.reads > SIZE / CHUNK, "{} reads", spy.reads);

    // Through the gate: the evidence has the right digest and size, and the process's
    // peak memory does not grow by anything like the file's size.
    #[cfg(target_os = "linux")]
    let before = peak_rss_kib();
    let gate = ConfigBaselineGate::builder(&dir, tmp.path().join("baseline.json"))
        .build()
        .unwrap();
    let manifest = gate.approve("dana", t0()).unwrap();
    assert_eq!(manifest.files["model.bin"], expected);
    let Verdict::Pass(ev) = run(&gate).unwrap() else {
        panic!()
    };
    let attachment = ev
        .attachments
        .iter()
        .find(|a| a.name.ends_with("/model.bin"))
        .unwrap();
    assert_eq!(attachment.digest, expected);
    assert_eq!(attachment.size, SIZE as u64);
    #[cfg(target_os = "linux")]
    {
        let grown = peak_rss_kib().saturating_sub(before);
        assert!(grown < 16 * 1024, "peak memory grew by {grown} KiB");
    }
}
