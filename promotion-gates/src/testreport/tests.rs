//! Unit tests of the test report gate.

use super::*;
use crate::testkit::{failed, invalid_input, passed, run};
use promotion_core::{Evidence, Gate, GateError, GateKind, Verdict};
use serde_json::json;
use std::path::{Path, PathBuf};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/testreport")
        .join(rel)
}

fn report(rel: &str) -> TestReportGate {
    TestReportGate::builder().file(data(rel)).build().unwrap()
}

fn totals(e: &Evidence) -> &serde_json::Value {
    &e.data["totals"]
}

// ---- real samples ------------------------------------------------------------------

#[test]
fn testreport_nextest_passing_run_passes() {
    let e = passed(run(&report("nextest/junit-pass.xml")));
    assert_eq!(e.summary, "5 tests, 0 failed, 0 skipped (nextest)");
    assert_eq!(e.producer, "test-report");
    assert_eq!(e.facts["tests"], "5");
    assert_eq!(e.facts["failed"], "0");
    assert_eq!(e.facts["skipped"], "0");
    let bytes = std::fs::read(data("nextest/junit-pass.xml")).unwrap();
    assert_eq!(e.attachments.len(), 1);
    assert_eq!(e.attachments[0].digest, promotion_core::Digest::of(&bytes));
    assert_eq!(e.attachments[0].size, bytes.len() as u64);
    assert!(e.attachments[0].name.ends_with("nextest/junit-pass.xml"));
    let suites = e.data["suites"].as_array().unwrap();
    assert_eq!(suites.len(), 2);
    assert_eq!(suites[0]["name"], "shop-cart");
    assert_eq!(suites[0]["counts"]["tests"], 4);
    assert_eq!(suites[1]["name"], "shop-cart::checkout");
    assert_eq!(suites[1]["counts"]["passed"], 1);
    assert_eq!(e.data["declared_mismatches"], json!([]));
}

#[test]
fn testreport_nextest_failure_fails_and_names_the_test() {
    let e = failed(run(&report("nextest/junit-fail.xml")));
    assert_eq!(
        e.summary,
        "7 tests, 1 failed, 0 skipped (nextest): 1 failed (none allowed)"
    );
    let t = totals(&e);
    assert_eq!(t["passed"], 6);
    assert_eq!(t["failed"], 1);
    // checkout_flaky_inventory failed once and passed on the retry.
    assert_eq!(t["flaky"], 1);
    assert_eq!(
        e.data["flaky_tests"],
        json!(["shop-cart::checkout checkout_flaky_inventory"])
    );
    let f = &e.data["failed_tests"][0];
    assert_eq!(f["name"], "tests::overflow_is_reported");
    assert_eq!(f["suite"], "shop-cart");
    assert_eq!(f["outcome"], "failure");
    assert!(f["message"]
        .as_str()
        .unwrap()
        .starts_with("thread 'tests::overflow_is_reported'"));
    assert_eq!(e.data["failed_tests_total"], 1);
    assert_eq!(e.facts["failed"], "1");
    // nextest's declared counts agree with the testcases.
    assert_eq!(e.data["declared_mismatches"], json!([]));
}

#[test]
fn testreport_pytest_failure_and_setup_error() {
    let e = failed(run(&report("pytest/junit-fail.xml")));
    assert_eq!(
        e.summary,
        "8 tests, 2 failed (1 error), 2 skipped (pytest): 2 failed (none allowed)"
    );
    let t = totals(&e);
    assert_eq!(
        (t["passed"].as_u64(), t["failed"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(
        (t["errored"].as_u64(), t["skipped"].as_u64()),
        (Some(1), Some(2))
    );
    let names: Vec<&str> = e.data["failed_tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["test_line_totals[2-2-5]", "test_posts_to_ledger"]);
    assert_eq!(e.data["failed_tests"][1]["outcome"], "error");
    assert!(e.data["failed_tests"][1]["message"]
        .as_str()
        .unwrap()
        .contains("ConnectionError"));
    assert_eq!(e.data["declared_mismatches"], json!([]));
}

#[test]
fn testreport_pytest_skips_count_against_max_skipped() {
    let e = passed(run(&report("pytest/junit-pass.xml")));
    assert_eq!(e.summary, "4 tests, 0 failed, 2 skipped (pytest)");
    let gate = TestReportGate::builder()
        .file(data("pytest/junit-pass.xml"))
        .max_skipped(1)
        .build()
        .unwrap();
    let e = failed(run(&gate));
    assert!(
        e.summary.ends_with(": 2 skipped, at most 1 allowed"),
        "{}",
        e.summary
    );
    let gate = TestReportGate::builder()
        .file(data("pytest/junit-pass.xml"))
        .max_skipped(2)
        .build()
        .unwrap();
    passed(run(&gate));
}

#[test]
fn testreport_jest_wrong_declared_counts_are_recorded() {
    // jest-junit lists a `test.todo` as a testcase without children but leaves it out of
    // its declared counts: the report disagrees with itself.
    let e = failed(run(&report("jest/junit-fail.xml")));
    assert_eq!(
        e.summary,
        "6 tests, 1 failed, 1 skipped (jest): 1 failed (none allowed)"
    );
    let m = e.data["declared_mismatches"].as_array().unwrap();
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[0]["element"], "testsuites");
    assert_eq!(
        (m[0]["declared"].as_u64(), m[0]["counted"].as_u64()),
        (Some(5), Some(6))
    );
    assert_eq!(m[1]["element"], "testsuite slugify");
    assert_eq!(m[1]["attribute"], "tests");
    assert_eq!(m[1]["line"], 3);
    // No message attribute: the first line of the element's text is the message.
    let f = &e.data["failed_tests"][0];
    assert_eq!(f["name"], "slugify keeps unicode letters");
    assert_eq!(
        f["message"],
        "Error: expect(received).toBe(expected) // Object.is equality"
    );
    let e = passed(run(&report("jest/junit-pass.xml")));
    assert_eq!(e.summary, "6 tests, 0 failed, 4 skipped (jest)");
}

#[test]
fn testreport_surefire_bare_testsuite_root() {
    let e = failed(run(&report(
        "surefire/TEST-com.example.cart.CartServiceTest.xml",
    )));
    assert_eq!(
        e.summary,
        "6 tests, 2 failed (1 error), 1 skipped (surefire): 2 failed (none allowed)"
    );
    let t = totals(&e);
    assert_eq!(t["passed"], 3);
    assert_eq!(t["flaky"], 1);
    assert_eq!(
        e.data["suites"][0]["name"],
        "com.example.cart.CartServiceTest"
    );
    assert_eq!(
        e.data["failed_tests"][0]["message"],
        "expected: <90> but was: <100>"
    );
    assert_eq!(e.data["failed_tests"][1]["message"], "Connection refused");
    assert_eq!(e.data["declared_mismatches"], json!([]));
}

#[test]
fn testreport_missing_counts_are_counted_from_testcases() {
    let e = failed(run(&report("nextest/junit-fail-no-counts.xml")));
    assert_eq!(
        totals(&e),
        totals(&failed(run(&report("nextest/junit-fail.xml"))))
    );
    assert_eq!(e.data["declared_mismatches"], json!([]));
}

#[test]
fn testreport_declared_counts_never_override_the_testcases() {
    // The root claims 9 tests and 0 failures; the testcases say 7 and 1.
    let e = failed(run(&report("nextest/junit-fail-wrong-counts.xml")));
    assert_eq!(e.facts["failed"], "1");
    let m = e.data["declared_mismatches"].as_array().unwrap();
    let found: Vec<(String, String, u64, u64)> = m
        .iter()
        .map(|x| {
            (
                x["element"].as_str().unwrap().to_owned(),
                x["attribute"].as_str().unwrap().to_owned(),
                x["declared"].as_u64().unwrap(),
                x["counted"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("testsuites".into(), "tests".into(), 9, 7),
            ("testsuites".into(), "failures".into(), 0, 1),
            ("testsuite shop-cart".into(), "skipped".into(), 2, 0),
        ]
    );
}

// ---- thresholds --------------------------------------------------------------------

#[test]
fn testreport_min_pass_rate_with_one_failure_in_100() {
    let path = data("pytest/junit-99-of-100.xml");
    let strict = TestReportGate::builder().file(&path).build().unwrap();
    failed(run(&strict));
    let lenient = TestReportGate::builder()
        .file(&path)
        .min_pass_rate(95.0)
        .build()
        .unwrap();
    let e = passed(run(&lenient));
    assert_eq!(
        e.summary,
        "100 tests, 1 failed, 0 skipped (pytest): pass rate 99% meets the minimum 95%"
    );
    assert_eq!(totals(&e)["pass_rate_percent"], 99.0);
    assert_eq!(
        e.data["failed_tests"][0]["name"],
        "test_conversion_round_trip[42]"
    );
    let exact = TestReportGate::builder()
        .file(&path)
        .min_pass_rate(99.0)
        .build()
        .unwrap();
    passed(run(&exact));
    let too_high = TestReportGate::builder()
        .file(&path)
        .min_pass_rate(99.5)
        .build()
        .unwrap();
    let e = failed(run(&too_high));
    assert!(
        e.summary.ends_with("pass rate 99% below the minimum 99.5%"),
        "{}",
        e.summary
    );
}

#[test]
fn testreport_pass_rate_is_of_executed_tests() {
    // pytest sample: 4 passed, 1 failed, 1 error, 2 skipped: 4 of 6 executed = 66.667%.
    let gate = TestReportGate::builder()
        .file(data("pytest/junit-fail.xml"))
        .min_pass_rate(66.0)
        .build()
        .unwrap();
    let e = passed(run(&gate));
    assert_eq!(totals(&e)["executed"], 6);
    let gate = TestReportGate::builder()
        .file(data("pytest/junit-fail.xml"))
        .min_pass_rate(67.0)
        .build()
        .unwrap();
    failed(run(&gate));
}

#[test]
fn testreport_required_suite() {
    let gate = TestReportGate::builder()
        .file(data("nextest/junit-pass.xml"))
        .require_suites(["shop-cart", "shop-cart::payments"])
        .build()
        .unwrap();
    let e = failed(run(&gate));
    assert_eq!(
        e.summary,
        "5 tests, 0 failed, 0 skipped (nextest): required suite `shop-cart::payments` missing"
    );
    assert_eq!(
        e.data["violations"],
        json!(["required suite `shop-cart::payments` missing"])
    );
    let gate = TestReportGate::builder()
        .file(data("nextest/junit-pass.xml"))
        .require_suite("shop-cart::checkout")
        .build()
        .unwrap();
    passed(run(&gate));
}

#[test]
fn testreport_min_tests() {
    let gate = TestReportGate::builder()
        .file(data("nextest/junit-pass.xml"))
        .min_tests(6)
        .build()
        .unwrap();
    let e = failed(run(&gate));
    assert!(
        e.summary.ends_with("only 5 tests, at least 6 required"),
        "{}",
        e.summary
    );
}

#[test]
fn testreport_empty_report_fails_unless_min_tests_is_zero() {
    // A real nextest run whose filter matched nothing.
    let e = failed(run(&report("nextest/junit-empty.xml")));
    assert_eq!(
        e.summary,
        "0 tests, 0 failed, 0 skipped (nextest): the reports hold no test"
    );
    let gate = TestReportGate::builder()
        .file(data("nextest/junit-empty.xml"))
        .min_tests(0)
        .build()
        .unwrap();
    passed(run(&gate));
    let gate = TestReportGate::builder()
        .file(data("nextest/junit-empty.xml"))
        .min_tests(0)
        .min_pass_rate(90.0)
        .build()
        .unwrap();
    passed(run(&gate));
}

#[test]
fn testreport_all_skipped_with_pass_rate_fails() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("skipped.xml");
    std::fs::write(
        &p,
        r#"<testsuite name="s" tests="1"><testcase name="a"><skipped/></testcase></testsuite>"#,
    )
    .unwrap();
    let gate = TestReportGate::builder()
        .file(&p)
        .min_pass_rate(90.0)
        .build()
        .unwrap();
    let e = failed(run(&gate));
    assert!(
        e.summary
            .starts_with("1 test, 0 failed, 1 skipped (junit): no test was executed"),
        "{}",
        e.summary
    );
}

#[test]
fn testreport_failed_list_is_bounded_but_total_kept() {
    let gate = TestReportGate::builder()
        .file(data("pytest/junit-fail.xml"))
        .failed_list_limit(1)
        .build()
        .unwrap();
    let e = failed(run(&gate));
    assert_eq!(e.data["failed_tests"].as_array().unwrap().len(), 1);
    assert_eq!(e.data["failed_tests_total"], 2);
}

// ---- several files -----------------------------------------------------------------

#[test]
fn testreport_several_files_are_summed_and_each_digested() {
    let gate = TestReportGate::builder()
        .files([
            data("nextest/junit-pass.xml"),
            data("pytest/junit-pass.xml"),
        ])
        .name("unit-tests")
        .build()
        .unwrap();
    assert_eq!(gate.name(), "unit-tests");
    assert_eq!(gate.kind(), GateKind::Automated);
    let e = passed(run(&gate));
    assert_eq!(
        e.summary,
        "9 tests, 0 failed, 2 skipped (nextest, pytest; 2 reports)"
    );
    assert_eq!(e.producer, "unit-tests");
    assert_eq!(e.attachments.len(), 2);
    assert_eq!(e.data["reports"][1]["tool"], "pytest");
}

#[test]
fn testreport_glob_finds_reports() {
    let root = data("");
    let gate = TestReportGate::builder()
        .glob_in(&root, "**/junit-pass.xml")
        .build()
        .unwrap();
    let e = passed(run(&gate));
    assert_eq!(e.attachments.len(), 3);
    assert_eq!(
        e.summary,
        "15 tests, 0 failed, 6 skipped (jest, nextest, pytest; 3 reports)"
    );
    // The same as one pattern string; a file named twice is read once.
    let pattern = format!("{}/*/junit-pass.xml", root.display());
    let gate = TestReportGate::builder()
        .glob(pattern)
        .file(data("jest/junit-pass.xml"))
        .build()
        .unwrap();
    assert_eq!(passed(run(&gate)).attachments.len(), 3);
}

#[test]
fn testreport_relative_glob_from_the_working_directory() {
    // cargo runs tests in the crate's directory.
    let gate = TestReportGate::builder()
        .glob("tests/data/testreport/pytest/junit-*.xml")
        .min_pass_rate(50.0)
        .build()
        .unwrap();
    let e = passed(run(&gate));
    let names: Vec<&str> = e.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "tests/data/testreport/pytest/junit-99-of-100.xml",
            "tests/data/testreport/pytest/junit-fail.xml",
            "tests/data/testreport/pytest/junit-pass.xml",
        ]
    );
    assert_eq!(e.facts["tests"], "112");
    assert!(e
        .summary
        .ends_with("(pytest; 3 reports): pass rate 97.222% meets the minimum 50%"));
}

#[test]
fn testreport_glob_without_match_is_an_error() {
    let gate = TestReportGate::builder()
        .glob_in(data(""), "**/TEST-*.json")
        .build()
        .unwrap();
    let (what, message) = invalid_input(run(&gate));
    assert_eq!(what, "**/TEST-*.json");
    assert!(message.starts_with("no report file matches"), "{message}");
    let gate = TestReportGate::builder()
        .glob("/nonexistent/reports/**/*.xml")
        .build()
        .unwrap();
    let (what, message) = invalid_input(run(&gate));
    assert_eq!(what, "/nonexistent/reports");
    assert!(message.starts_with("directory not found"), "{message}");
}

// ---- bad input ---------------------------------------------------------------------

#[test]
fn testreport_missing_file() {
    let path = data("nextest/no-such-report.xml");
    let (what, message) = invalid_input(run(&report("nextest/no-such-report.xml")));
    assert_eq!(what, path.display().to_string());
    assert_eq!(message, "file not found");
}

fn broken(rel: &str) -> (String, String) {
    let (what, message) = invalid_input(run(&report(rel)));
    let path = data(rel).display().to_string();
    assert!(what.starts_with(&path), "{what} does not name {path}");
    (what.strip_prefix(&path).unwrap().to_owned(), message)
}

#[test]
fn testreport_truncated_mid_tag() {
    let (at, message) = broken("broken/truncated.xml");
    assert_eq!(at, " line 54");
    assert!(message.starts_with("malformed XML: "), "{message}");
}

#[test]
fn testreport_truncated_between_elements() {
    let (at, message) = broken("broken/truncated-at-element.xml");
    assert_eq!(at, " line 52");
    assert_eq!(
        message,
        "the file ends before <testsuites> opened at line 2 is closed: truncated?"
    );
}

#[test]
fn testreport_wrong_root() {
    let (at, message) = broken("broken/wrong-root.xml");
    assert_eq!(at, " line 1");
    assert!(message.contains("found <html>"), "{message}");
}

#[test]
fn testreport_non_numeric_count() {
    let (at, message) = broken("broken/non-numeric-count.xml");
    assert_eq!(at, " line 1");
    assert_eq!(
        message,
        "attribute `tests` of <testsuite> is not a count: `four`"
    );
}

#[test]
fn testreport_negative_count() {
    let (at, message) = broken("broken/negative-count.xml");
    assert_eq!(at, " line 9");
    assert!(message.contains("`-1`"), "{message}");
}

#[test]
fn testreport_mismatched_end_tag() {
    let (at, message) = broken("broken/mismatched-tag.xml");
    assert_eq!(at, " line 8");
    assert!(message.contains("</testcase>"), "{message}");
}

#[test]
fn testreport_empty_file() {
    let (at, message) = broken("broken/empty.xml");
    assert_eq!(at, "");
    assert!(message.starts_with("no XML root element"), "{message}");
}

#[test]
fn testreport_one_broken_file_among_good_ones_is_an_error() {
    let gate = TestReportGate::builder()
        .file(data("nextest/junit-pass.xml"))
        .file(data("broken/truncated.xml"))
        .build()
        .unwrap();
    let (what, _) = invalid_input(run(&gate));
    assert!(what.contains("truncated.xml"));
}

fn inline(xml: &str) -> Result<Verdict, GateError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("report.xml");
    std::fs::write(&p, xml).unwrap();
    let gate = TestReportGate::builder().file(&p).build().unwrap();
    run(&gate)
}

#[test]
fn testreport_structural_errors() {
    let cases = [
        (
            "<testsuites>\n<testcase name=\"a\"/>\n</testsuites>",
            "line 2",
            "<testcase> outside any <testsuite>",
        ),
        (
            "<testsuite name=\"a\"/>\n<testsuite name=\"b\"/>",
            "line 2",
            "a second root element <testsuite>",
        ),
        ("not xml at all", "line 1", "text outside the root element"),
        (
            "<testsuite name=\"a\">\n<testcase name=\"x\"><testcase name=\"y\"/></testcase></testsuite>",
            "line 2",
            "<testcase> inside a <testcase>",
        ),
        (
            "<testsuite name=\"a\" tests=\"1\" tests=\"2\"/>",
            "line 1",
            "malformed attribute",
        ),
        (
            "<testsuite name=\"a\">\n<testcase name=\"x\"><failure>&bogus;</failure></testcase></testsuite>",
            "line 2",
            "unknown entity `&bogus;`",
        ),
    ];
    for (xml, at, needle) in cases {
        let (what, message) = invalid_input(inline(xml));
        assert!(what.ends_with(at), "{xml}: {what}");
        assert!(message.contains(needle), "{xml}: {message}");
    }
}

#[test]
fn testreport_byte_order_mark_and_crlf_are_accepted() {
    let e = passed(inline(
        "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<testsuite name=\"a\" tests=\"1\">\r\n<testcase name=\"x\"/>\r\n</testsuite>\r\n",
    ));
    assert_eq!(e.summary, "1 test, 0 failed, 0 skipped (junit)");
}

#[test]
fn testreport_nested_suites_count_in_each_level() {
    let e = failed(inline(
        r#"<testsuites>
  <testsuite name="outer" tests="3">
<testcase name="a"/>
<testsuite name="inner" tests="2">
  <testcase name="b"><error type="E">boom &amp; more
trace</error></testcase>
  <testcase name="c"/>
</testsuite>
  </testsuite>
</testsuites>"#,
    ));
    assert_eq!(
        e.summary,
        "3 tests, 1 failed (1 error), 0 skipped (junit): 1 failed (none allowed)"
    );
    assert_eq!(e.data["suites"][0]["counts"]["tests"], 3);
    assert_eq!(e.data["suites"][1]["counts"]["tests"], 2);
    assert_eq!(e.data["failed_tests"][0]["suite"], "inner");
    assert_eq!(e.data["failed_tests"][0]["message"], "boom & more");
    assert_eq!(e.data["declared_mismatches"], json!([]));
}

// ---- configuration -----------------------------------------------------------------

#[test]
fn testreport_configuration_is_validated() {
    let b = || TestReportGate::builder().file("junit.xml");
    for rate in [-1.0, 100.5, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            b().min_pass_rate(rate).build(),
            Err(ConfigError::PassRate(_))
        ));
    }
    assert!(b().min_pass_rate(0.0).build().is_ok());
    assert!(b().min_pass_rate(100.0).build().is_ok());
    assert_eq!(
        TestReportGate::builder().build().unwrap_err(),
        ConfigError::NoReports
    );
    assert_eq!(b().name(" ").build().unwrap_err(), ConfigError::EmptyName);
    assert_eq!(
        b().require_suite("").build().unwrap_err(),
        ConfigError::EmptySuiteName
    );
    assert_eq!(
        b().failed_list_limit(0).build().unwrap_err(),
        ConfigError::FailedListLimit
    );
    assert!(matches!(
        b().glob("reports/[a-.xml").build(),
        Err(ConfigError::InvalidGlob { pattern, .. }) if pattern == "reports/[a-.xml"
    ));
    assert!(matches!(
        b().glob_in("reports", "/abs/*.xml").build(),
        Err(ConfigError::InvalidGlob { .. })
    ));
    let e: GateError = ConfigError::PassRate(101.0).into();
    assert!(matches!(e, GateError::Misconfigured(m) if m.contains("101")));
}

#[test]
fn testreport_fmt_num() {
    assert_eq!(fmt_num(41.2), "41.2");
    assert_eq!(fmt_num(1200.0), "1200");
    assert_eq!(fmt_num(-24.8), "-24.8");
    assert_eq!(fmt_num(131.37624), "131.376");
}
