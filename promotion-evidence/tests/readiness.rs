//! The release-readiness page, rendered by headless Chromium.
//!
//! The page is made from the hand-computed week of `support::dora_scenario`, with a release
//! whose name holds a `<script>` element and an override justification holding an `<img>`.
//! The test writes `target/test-artifacts/readiness.html` and, with Chromium,
//! `target/test-artifacts/readiness.png`.
//!
//! Chromium is `$PROMOTION_TEST_CHROMIUM`, else `chromium` on the `PATH`. Without it the test
//! prints `SKIPPED: …` and passes, unless `CI` is set, where it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use promotion_evidence::{render_html, Period, Report};
use support::{at, dora_scenario};

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn page() -> String {
    let s = dora_scenario(true);
    let period = Period::new(at("2026-11-01T00:00:00Z"), at("2026-11-08T00:00:00Z")).unwrap();
    render_html(&block_on(Report::from_store(&s.store, period)).unwrap())
}

#[test]
fn text_from_events_is_escaped_and_the_page_needs_nothing_from_outside() {
    let html = page();
    assert!(html.contains("api &lt;script&gt;alert(&#39;r3&#39;)&lt;/script&gt; 1.2.1"));
    assert!(html.contains("hotfix &lt;img src=x onerror=alert(1)&gt; for the checkout outage"));
    let lower = html.to_lowercase();
    for forbidden in [
        "<script",
        "<img",
        "<link",
        "<iframe",
        "src=\"http",
        "href=\"http",
        "url(",
    ] {
        assert!(!lower.contains(forbidden), "the page contains {forbidden}");
    }
    assert!(lower.contains("<style>") && lower.contains("<svg"));
}

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROMOTION_TEST_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// Runs Chromium headless on `args` with a fresh profile, stdout to `out`, for at most 90 s.
fn run_chromium(bin: &Path, args: &[String], out: &Path) {
    let profile = tempfile::tempdir().unwrap();
    let stdout = std::fs::File::create(out).unwrap();
    let stderr = std::fs::File::create(out.with_extension("stderr")).unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "chromium {args:?} exited with {status}; stderr in {}",
                out.with_extension("stderr").display()
            );
            return;
        }
        if Instant::now() > deadline {
            // Only the child this test started.
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn chromium_renders_the_readiness_page() {
    let dir = artifacts();
    let html_path = dir.join("readiness.html");
    std::fs::write(&html_path, page()).unwrap();
    let Some(bin) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium not found and CI is set: install Debian's `chromium` or set PROMOTION_TEST_CHROMIUM");
        }
        // Straight to stderr: the test harness captures `eprintln!`, and this must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: chromium not found (set PROMOTION_TEST_CHROMIUM)"
        );
        return;
    };
    let url = format!("file://{}", html_path.canonicalize().unwrap().display());

    // The DOM Chromium built from the page.
    let dom_path = dir.join("readiness.dom.html");
    run_chromium(&bin, &["--dump-dom".to_owned(), url.clone()], &dom_path);
    let dom = std::fs::read_to_string(&dom_path).unwrap();
    assert!(dom.contains("<h1>Release readiness</h1>"), "{dom}");
    assert!(dom.contains("Pipeline shop"));
    for stage in ["<th>build</th>", "<th>staging</th>", "<th>production</th>"] {
        assert!(dom.contains(stage), "{stage} missing");
    }
    // Verdicts: the latest production gates passed; the failures and the rollbacks are shown.
    assert!(dom.contains("<span class=\"badge o-pass\">pass</span>"));
    assert!(dom.contains("<span class=\"badge s-rolled_back\">rolled back</span>"));
    assert!(
        dom.contains("gate `smoke` failed in the verification phase"),
        "the production failure is listed"
    );
    // The override is flagged in red: a red row, a badge and a flag in the release table.
    assert!(dom.contains("<tr class=\"override-row\">"));
    assert!(dom.contains("<span class=\"badge override\">OVERRIDE</span>"));
    assert!(dom.contains("<span class=\"flag\" title=\"break-glass override\">OVERRIDE</span>"));
    assert!(dom.contains("exception: break glass"));
    // The DORA tiles.
    assert!(dom.contains("0.57 / day"));
    assert!(dom.contains("40%"));
    // What came from events stayed text: no element was made of it.
    assert!(
        dom.contains("api &lt;script&gt;alert('r3')&lt;/script&gt; 1.2.1"),
        "escaped name missing"
    );
    let lower = dom.to_lowercase();
    assert!(!lower.contains("<script"), "a script element was created");
    assert!(!lower.contains("<img"), "an img element was created");
    // The charts.
    assert!(dom.contains("class=\"lead-time\""));
    assert_eq!(
        dom.matches("<circle").count(),
        4,
        "one point per production promotion"
    );
    assert!(dom.contains("class=\"pass-rate\""));

    // A screenshot, kept as an artifact.
    let png = dir.join("readiness.png");
    let _ = std::fs::remove_file(&png);
    run_chromium(
        &bin,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,2000".to_owned(),
            "--hide-scrollbars".to_owned(),
            url,
        ],
        &dir.join("readiness.screenshot.log"),
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 2000));
    assert!(
        bytes.len() > 50_000,
        "the screenshot looks empty ({} bytes)",
        bytes.len()
    );
    eprintln!("screenshot: {}", png.display());
}
