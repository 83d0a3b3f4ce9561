//! Test reports and performance budgets.
//!
//! - [`TestReportGate`] reads JUnit XML as cargo-nextest, pytest, Maven Surefire and jest-junit
//!   write it, counts the outcomes from the `<testcase>` elements themselves (the counts the
//!   tools declare in attributes may be missing or wrong; disagreements are recorded), and
//!   passes when the configured thresholds hold.
//! - [`PerfBudgetGate`] reads a benchmark result — criterion's `estimates.json` or a flat JSON
//!   object of named figures — and compares each figure with budgets and with a baseline file.
//!
//! Both record the digest of every file they read, and turn malformed input into
//! [`GateError::InvalidInput`] naming the file (and the line, where the parser knows it):
//! never a pass.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use globset::{GlobBuilder, GlobMatcher};
use quick_xml::encoding::Decoder;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde::Serialize;
use serde_json::json;

use promotion_core::{Evidence, Gate, GateContext, GateError, GateKind, Verdict};

use crate::input::{invalid_input, line_of};
pub use crate::perfbudget::{Direction, PerfBudgetGate, PerfBudgetGateBuilder};

/// A gate of this module was configured wrongly; returned by the builders' `build`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The gate's name is empty.
    #[error("the gate name is empty")]
    EmptyName,
    /// A test report gate without any report file or glob.
    #[error("test report gate: no report file or glob configured")]
    NoReports,
    /// A glob that does not compile.
    #[error("test report gate: invalid glob `{pattern}`: {message}")]
    InvalidGlob {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
    /// A minimum pass rate outside 0–100 percent.
    #[error("test report gate: minimum pass rate {0}% is not between 0 and 100")]
    PassRate(f64),
    /// A required suite with an empty name.
    #[error("test report gate: a required suite name is empty")]
    EmptySuiteName,
    /// A bound on the failed-test list of zero.
    #[error("test report gate: the failed-test list limit must be at least 1")]
    FailedListLimit,
    /// A performance budget gate with no budget and no regression limit.
    #[error("performance budget gate: nothing to check; set a budget or a maximum regression")]
    NothingToCheck,
    /// A budget or regression limit that makes no sense.
    #[error("performance budget gate: figure `{figure}`: {message}")]
    InvalidBudget {
        /// The figure (`p99_ms`, `mean`).
        figure: String,
        /// What is wrong.
        message: String,
    },
    /// A maximum regression without a baseline file to compare with.
    #[error("performance budget gate: a maximum regression is set for `{figure}` but no baseline file is configured")]
    NoBaseline {
        /// The figure.
        figure: String,
    },
}

impl From<ConfigError> for GateError {
    fn from(e: ConfigError) -> Self {
        GateError::Misconfigured(e.to_string())
    }
}

// ------------------------------------------------------------------------------------------
// Shared input helpers
// ------------------------------------------------------------------------------------------

/// Reads a whole input file; a missing or unreadable file names the path.
pub(crate) fn read_input(path: &Path) -> Result<Vec<u8>, GateError> {
    std::fs::read(path).map_err(|e| {
        let message = match e.kind() {
            ErrorKind::NotFound => "file not found".to_owned(),
            ErrorKind::IsADirectory => "is a directory, not a file".to_owned(),
            _ => format!("cannot read the file: {e}"),
        };
        invalid_input(path.display(), None, message)
    })
}

/// The 1-based line of byte offset `pos` in `bytes`.
/// The line of byte `pos` as the XML reader reports it (a `u64`).
fn line_at(bytes: &[u8], pos: u64) -> usize {
    line_of(bytes, usize::try_from(pos).unwrap_or(usize::MAX))
}

/// `x` with at most three decimals and no trailing zeros (`41.2`, `1200`, `131.376`).
pub(crate) fn fmt_num(x: f64) -> String {
    let s = format!("{x:.3}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

// ------------------------------------------------------------------------------------------
// Test report gate
// ------------------------------------------------------------------------------------------

/// Where report files come from.
#[derive(Debug, Clone)]
enum ReportSource {
    /// One file.
    File(PathBuf),
    /// Files under `root` whose path relative to `root` matches `matcher`.
    Glob {
        root: PathBuf,
        pattern: String,
        matcher: GlobMatcher,
    },
}

/// Passes when JUnit XML test reports show a good enough run.
///
/// Reads one report or several (files, globs), as cargo-nextest, pytest (`--junitxml`), Maven
/// Surefire and jest-junit write them: a `<testsuites>` root with `<testsuite>` children or a
/// bare `<testsuite>` root; `<testcase>` elements with `<failure>`, `<error>`, `<skipped>`,
/// and the rerun elements (`<flakyFailure>`, `<rerunFailure>`, …) of Surefire and nextest. A
/// test that failed and then passed on a retry counts as passed (and as flaky).
///
/// Outcomes are counted from the `<testcase>` elements; the `tests`/`failures`/`errors`/
/// `skipped` attributes are read and checked (non-numeric is an error) and any disagreement
/// with the count is recorded in the evidence under `declared_mismatches`.
///
/// Thresholds (all optional except the first default):
/// - no failed or errored test — or, with [`min_pass_rate`](TestReportGateBuilder::min_pass_rate),
///   at least that percentage of executed (not skipped) tests passed;
/// - [`max_skipped`](TestReportGateBuilder::max_skipped);
/// - [`require_suite`](TestReportGateBuilder::require_suite): a `<testsuite>` of that name;
/// - [`min_tests`](TestReportGateBuilder::min_tests): at least this many test cases (default
///   1: an empty report fails unless the minimum is set to 0 explicitly).
///
/// Evidence: counts in total, per report and per suite; the first failed tests (50 by
/// default) with the total; declared counts that disagree; the digest of every report. Facts:
/// `tests`, `failed` (failures and errors), `skipped`.
///
/// ```
/// use promotion_gates::testreport::TestReportGate;
/// use promotion_core::testing::GateProbe;
/// use promotion_core::Verdict;
///
/// let dir = tempfile::tempdir()?;
/// let report = dir.path().join("junit.xml");
/// // A real cargo-nextest report: 5 tests in 2 suites, all passed.
/// std::fs::write(&report, include_str!(concat!(
///     env!("CARGO_MANIFEST_DIR"), "/tests/data/testreport/nextest/junit-pass.xml"
/// )))?;
///
/// let gate = TestReportGate::builder()
///     .file(&report)
///     .require_suite("shop-cart")
///     .max_skipped(0)
///     .build()?;
/// let verdict = futures::executor::block_on(GateProbe::new().evaluate(&gate))?;
/// let Verdict::Pass(evidence) = verdict else { panic!("expected a pass") };
/// assert_eq!(evidence.summary, "5 tests, 0 failed, 0 skipped (nextest)");
/// assert_eq!(evidence.facts["tests"], "5");
/// assert_eq!(evidence.attachments.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TestReportGate {
    name: String,
    sources: Vec<ReportSource>,
    min_pass_rate: Option<f64>,
    max_skipped: Option<u64>,
    required_suites: Vec<String>,
    min_tests: u64,
    failed_list_limit: usize,
}

/// Builds a [`TestReportGate`]; see there.
#[derive(Debug, Clone)]
#[must_use]
pub struct TestReportGateBuilder {
    name: String,
    files: Vec<PathBuf>,
    globs: Vec<(Option<PathBuf>, String)>,
    min_pass_rate: Option<f64>,
    max_skipped: Option<u64>,
    required_suites: Vec<String>,
    min_tests: u64,
    failed_list_limit: usize,
}

impl TestReportGate {
    /// The default name, `test-report`.
    pub const DEFAULT_NAME: &'static str = "test-report";

    /// A builder with the defaults: name `test-report`, no failure allowed, at least one test.
    pub fn builder() -> TestReportGateBuilder {
        TestReportGateBuilder {
            name: Self::DEFAULT_NAME.to_owned(),
            files: Vec::new(),
            globs: Vec::new(),
            min_pass_rate: None,
            max_skipped: None,
            required_suites: Vec::new(),
            min_tests: 1,
            failed_list_limit: 50,
        }
    }
}

impl TestReportGateBuilder {
    /// Names the gate (default `test-report`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Reads the report at `path`.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(path.into());
        self
    }
    /// Reads each report in `paths`.
    pub fn files<P: Into<PathBuf>>(mut self, paths: impl IntoIterator<Item = P>) -> Self {
        self.files.extend(paths.into_iter().map(Into::into));
        self
    }
    /// Reads every file matching `pattern` (`target/nextest/**/junit.xml`,
    /// `target/surefire-reports/TEST-*.xml`). The directories before the first component
    /// with a wildcard are walked; `*` stays within one directory, `**` crosses them. A glob
    /// that matches no file is an error when the gate evaluates.
    pub fn glob(mut self, pattern: impl Into<String>) -> Self {
        self.globs.push((None, pattern.into()));
        self
    }
    /// Reads every file under `dir` whose path relative to `dir` matches `pattern`
    /// (`**/TEST-*.xml`); `dir` is taken literally, never as a pattern.
    pub fn glob_in(mut self, dir: impl Into<PathBuf>, pattern: impl Into<String>) -> Self {
        self.globs.push((Some(dir.into()), pattern.into()));
        self
    }
    /// Allows failures as long as at least `percent` of the executed (not skipped) tests
    /// passed. Without it, any failed or errored test fails the gate. When tests were found
    /// but none executed (all skipped), the rate is undefined and the gate fails, unless
    /// [`min_tests`](Self::min_tests) is 0.
    pub fn min_pass_rate(mut self, percent: f64) -> Self {
        self.min_pass_rate = Some(percent);
        self
    }
    /// Fails the gate when more than `max` tests were skipped.
    pub fn max_skipped(mut self, max: u64) -> Self {
        self.max_skipped = Some(max);
        self
    }
    /// Fails the gate unless a `<testsuite>` named `name` is present in some report.
    pub fn require_suite(mut self, name: impl Into<String>) -> Self {
        self.required_suites.push(name.into());
        self
    }
    /// Requires every suite in `names`; see [`require_suite`](Self::require_suite).
    pub fn require_suites<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.required_suites
            .extend(names.into_iter().map(Into::into));
        self
    }
    /// Fails the gate when the reports hold fewer than `min` test cases (default 1; set 0 to
    /// accept an empty report).
    pub fn min_tests(mut self, min: u64) -> Self {
        self.min_tests = min;
        self
    }
    /// Lists at most `limit` failed tests by name in the evidence (default 50); the total is
    /// always recorded.
    pub fn failed_list_limit(mut self, limit: usize) -> Self {
        self.failed_list_limit = limit;
        self
    }
    /// Validates the configuration.
    pub fn build(self) -> Result<TestReportGate, ConfigError> {
        if self.name.trim().is_empty() {
            return Err(ConfigError::EmptyName);
        }
        if self.files.is_empty() && self.globs.is_empty() {
            return Err(ConfigError::NoReports);
        }
        if let Some(rate) = self.min_pass_rate {
            if !rate.is_finite() || !(0.0..=100.0).contains(&rate) {
                return Err(ConfigError::PassRate(rate));
            }
        }
        if self.required_suites.iter().any(|s| s.is_empty()) {
            return Err(ConfigError::EmptySuiteName);
        }
        if self.failed_list_limit == 0 {
            return Err(ConfigError::FailedListLimit);
        }
        let mut sources: Vec<ReportSource> =
            self.files.into_iter().map(ReportSource::File).collect();
        for (dir, pattern) in self.globs {
            sources.push(compile_glob(dir, &pattern)?);
        }
        Ok(TestReportGate {
            name: self.name,
            sources,
            min_pass_rate: self.min_pass_rate,
            max_skipped: self.max_skipped,
            required_suites: self.required_suites,
            min_tests: self.min_tests,
            failed_list_limit: self.failed_list_limit,
        })
    }
}

fn has_glob_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', ']', '{', '}'])
}

/// Splits a pattern into the literal directory to walk and the pattern below it, and
/// compiles the latter. A pattern without wildcards is a plain file.
fn compile_glob(dir: Option<PathBuf>, pattern: &str) -> Result<ReportSource, ConfigError> {
    let bad = |message: String| ConfigError::InvalidGlob {
        pattern: pattern.to_owned(),
        message,
    };
    if pattern.is_empty() {
        return Err(bad("the pattern is empty".to_owned()));
    }
    let (root, rest) = match dir {
        Some(dir) => {
            if Path::new(pattern).is_absolute() {
                return Err(bad(
                    "the pattern must be relative to the directory it is searched in".to_owned(),
                ));
            }
            (dir, pattern.to_owned())
        }
        None => {
            let mut root = PathBuf::new();
            let mut rest: Vec<String> = Vec::new();
            for comp in Path::new(pattern).components() {
                let text = comp.as_os_str().to_string_lossy().into_owned();
                if rest.is_empty() && !has_glob_meta(&text) {
                    root.push(comp);
                } else if matches!(comp, Component::Normal(_)) {
                    rest.push(text);
                } else {
                    return Err(bad(format!("`{text}` after a wildcard is not supported")));
                }
            }
            if rest.is_empty() {
                return Ok(ReportSource::File(root));
            }
            if root.as_os_str().is_empty() {
                root.push(".");
            }
            (root, rest.join("/"))
        }
    };
    let matcher = GlobBuilder::new(&rest)
        .literal_separator(true)
        .build()
        .map_err(|e| bad(e.kind().to_string()))?
        .compile_matcher();
    Ok(ReportSource::Glob {
        root,
        pattern: pattern.to_owned(),
        matcher,
    })
}

/// The files a glob matches, sorted.
fn expand_glob(
    root: &Path,
    pattern: &str,
    matcher: &GlobMatcher,
) -> Result<Vec<PathBuf>, GateError> {
    if !root.is_dir() {
        return Err(invalid_input(
            root.display(),
            None,
            format!("directory not found (searching for reports matching `{pattern}`)"),
        ));
    }
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            let at = e.path().unwrap_or(root).display().to_string();
            invalid_input(&at, None, format!("cannot list reports: {e}"))
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        if matcher.is_match(rel) {
            found.push(entry.path().to_path_buf());
        }
    }
    if found.is_empty() {
        return Err(invalid_input(
            pattern,
            None,
            format!("no report file matches (searched {})", root.display()),
        ));
    }
    Ok(found)
}

impl TestReportGate {
    /// The report files to read, in configuration order, each once.
    fn report_paths(&self) -> Result<Vec<PathBuf>, GateError> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for source in &self.sources {
            let paths = match source {
                ReportSource::File(p) => vec![p.clone()],
                ReportSource::Glob {
                    root,
                    pattern,
                    matcher,
                } => expand_glob(root, pattern, matcher)?,
            };
            for p in paths {
                if seen.insert(p.clone()) {
                    out.push(p);
                }
            }
        }
        Ok(out)
    }

    /// The threshold violations, and the pass rate of executed tests if any ran.
    fn judge(&self, totals: &Counts, suites: &BTreeSet<&str>) -> (Vec<String>, Option<f64>) {
        let mut violations = Vec::new();
        if totals.tests < self.min_tests {
            violations.push(if totals.tests == 0 {
                "the reports hold no test".to_owned()
            } else {
                format!(
                    "only {} tests, at least {} required",
                    totals.tests, self.min_tests
                )
            });
        }
        let executed = totals.executed();
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let rate = (executed > 0).then(|| totals.passed as f64 * 100.0 / executed as f64);
        let bad = totals.failed + totals.errored;
        match (self.min_pass_rate, rate) {
            (None, _) if bad > 0 => {
                violations.push(format!("{bad} failed (none allowed)"));
            }
            (Some(min), Some(rate)) if rate < min => {
                violations.push(format!(
                    "pass rate {}% below the minimum {}%",
                    fmt_num(rate),
                    fmt_num(min)
                ));
            }
            (Some(_), None) if self.min_tests > 0 && totals.tests > 0 => {
                violations.push("no test was executed: the pass rate is undefined".to_owned());
            }
            _ => {}
        }
        if let Some(max) = self.max_skipped {
            if totals.skipped > max {
                violations.push(format!("{} skipped, at most {max} allowed", totals.skipped));
            }
        }
        for required in &self.required_suites {
            if !suites.contains(required.as_str()) {
                violations.push(format!("required suite `{required}` missing"));
            }
        }
        (violations, rate)
    }
}

#[async_trait]
impl Gate for TestReportGate {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> GateKind {
        GateKind::Automated
    }

    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let paths = self.report_paths()?;
        let mut inputs = Vec::with_capacity(paths.len());
        let mut reports = Vec::with_capacity(paths.len());
        for path in paths {
            let shown = path.display().to_string();
            let bytes = read_input(&path)?;
            reports.push(parse_junit(&shown, &bytes)?);
            inputs.push((shown, bytes));
        }

        let mut totals = Counts::default();
        let mut suite_names = BTreeSet::new();
        let mut tools: Vec<&str> = Vec::new();
        for r in &reports {
            totals.merge(&r.counts);
            suite_names.extend(r.suites.iter().map(|s| s.name.as_str()));
            if !tools.contains(&r.tool) {
                tools.push(r.tool);
            }
        }
        let (violations, rate) = self.judge(&totals, &suite_names);

        let failed: Vec<&FailedTest> = reports.iter().flat_map(|r| r.failed.iter()).collect();
        let flaky: Vec<&String> = reports.iter().flat_map(|r| r.flaky.iter()).collect();
        let mismatches: Vec<serde_json::Value> =
            reports.iter().flat_map(ParsedReport::mismatches).collect();

        let bad = totals.failed + totals.errored;
        let noun = if totals.tests == 1 { "test" } else { "tests" };
        let mut summary = format!("{} {noun}, {bad} failed", totals.tests);
        if totals.errored > 0 {
            let noun = if totals.errored == 1 {
                "error"
            } else {
                "errors"
            };
            summary.push_str(&format!(" ({} {noun})", totals.errored));
        }
        summary.push_str(&format!(
            ", {} skipped ({}",
            totals.skipped,
            tools.join(", ")
        ));
        if reports.len() > 1 {
            summary.push_str(&format!("; {} reports", reports.len()));
        }
        summary.push(')');
        if !violations.is_empty() {
            summary.push_str(": ");
            summary.push_str(&violations.join("; "));
        } else if bad > 0 {
            if let (Some(rate), Some(min)) = (rate, self.min_pass_rate) {
                summary.push_str(&format!(
                    ": pass rate {}% meets the minimum {}%",
                    fmt_num(rate),
                    fmt_num(min)
                ));
            }
        }

        let data = json!({
            "totals": {
                "tests": totals.tests,
                "passed": totals.passed,
                "failed": totals.failed,
                "errored": totals.errored,
                "skipped": totals.skipped,
                "flaky": totals.flaky,
                "executed": totals.executed(),
                "pass_rate_percent": rate,
            },
            "reports": reports.iter().map(|r| json!({
                "path": r.path,
                "tool": r.tool,
                "counts": r.counts,
            })).collect::<Vec<_>>(),
            "suites": reports.iter().flat_map(|r| r.suites.iter().map(move |s| json!({
                "report": r.path,
                "name": s.name,
                "line": s.line,
                "counts": s.counts,
            }))).collect::<Vec<_>>(),
            "failed_tests": failed.iter().take(self.failed_list_limit).collect::<Vec<_>>(),
            "failed_tests_total": failed.len(),
            "flaky_tests": flaky.iter().take(self.failed_list_limit).collect::<Vec<_>>(),
            "flaky_tests_total": flaky.len(),
            "declared_mismatches": mismatches,
            "thresholds": {
                "min_tests": self.min_tests,
                "min_pass_rate_percent": self.min_pass_rate,
                "max_skipped": self.max_skipped,
                "required_suites": self.required_suites,
            },
            "violations": violations,
        });

        let mut evidence = Evidence::new(self.name.clone(), ctx.now(), summary)
            .with_data(data)
            .with_fact("tests", totals.tests.to_string())
            .with_fact("failed", bad.to_string())
            .with_fact("skipped", totals.skipped.to_string());
        for (name, bytes) in &inputs {
            evidence = evidence.with_attachment(name.clone(), bytes);
        }
        Ok(Verdict::pass_if(violations.is_empty(), evidence))
    }
}

// ------------------------------------------------------------------------------------------
// JUnit XML
// ------------------------------------------------------------------------------------------

/// Outcome counts, counted from `<testcase>` elements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
struct Counts {
    tests: u64,
    passed: u64,
    failed: u64,
    errored: u64,
    skipped: u64,
    /// Passed after failing at least once (also counted in `passed`).
    flaky: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Flaky,
    Failed,
    Errored,
    Skipped,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        self.tests += 1;
        match outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Flaky => {
                self.passed += 1;
                self.flaky += 1;
            }
            Outcome::Failed => self.failed += 1,
            Outcome::Errored => self.errored += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }
    fn merge(&mut self, o: &Counts) {
        self.tests += o.tests;
        self.passed += o.passed;
        self.failed += o.failed;
        self.errored += o.errored;
        self.skipped += o.skipped;
        self.flaky += o.flaky;
    }
    fn executed(&self) -> u64 {
        self.tests.saturating_sub(self.skipped)
    }
}

/// The counts a `<testsuites>` or `<testsuite>` element declares in its attributes.
#[derive(Debug, Clone, Copy, Default)]
struct Declared {
    tests: Option<u64>,
    failures: Option<u64>,
    errors: Option<u64>,
    skipped: Option<u64>,
}

impl Declared {
    /// `(attribute, declared, counted)` for each declared count that disagrees.
    fn disagreements(&self, c: &Counts) -> Vec<(&'static str, u64, u64)> {
        [
            ("tests", self.tests, c.tests),
            ("failures", self.failures, c.failed),
            ("errors", self.errors, c.errored),
            ("skipped", self.skipped, c.skipped),
        ]
        .into_iter()
        .filter_map(|(k, d, n)| d.filter(|&d| d != n).map(|d| (k, d, n)))
        .collect()
    }
}

#[derive(Debug)]
struct Suite {
    name: String,
    line: usize,
    /// Including nested suites.
    counts: Counts,
    declared: Declared,
}

#[derive(Debug, Clone, Serialize)]
struct FailedTest {
    report: String,
    suite: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    classname: String,
    name: String,
    /// `failure` or `error`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
}

#[derive(Debug)]
struct ParsedReport {
    path: String,
    tool: &'static str,
    counts: Counts,
    root_declared: Option<(Declared, usize)>,
    suites: Vec<Suite>,
    failed: Vec<FailedTest>,
    flaky: Vec<String>,
}

impl ParsedReport {
    fn mismatches(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut push = |element: String, line: usize, d: &Declared, c: &Counts| {
            for (attribute, declared, counted) in d.disagreements(c) {
                out.push(json!({
                    "report": self.path,
                    "element": element,
                    "line": line,
                    "attribute": attribute,
                    "declared": declared,
                    "counted": counted,
                }));
            }
        };
        if let Some((d, line)) = &self.root_declared {
            push("testsuites".to_owned(), *line, d, &self.counts);
        }
        for s in &self.suites {
            push(
                format!("testsuite {}", s.name),
                s.line,
                &s.declared,
                &s.counts,
            );
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    Root,
    Suite,
    Case,
    Other,
}

#[derive(Debug)]
struct Frame {
    name: String,
    line: usize,
    kind: FrameKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bad {
    Failure,
    Error,
}

#[derive(Debug)]
struct Case {
    name: String,
    classname: String,
    /// Stack depth of the `<testcase>` frame.
    depth: usize,
    failure: Option<String>,
    error: Option<String>,
    skipped: bool,
    flaky: bool,
    /// Collecting the text of a `<failure>`/`<error>` without a `message` attribute.
    capture: Option<(Bad, usize, String)>,
}

/// Streaming JUnit reader state for one file.
struct JunitParser<'a> {
    path: &'a str,
    bytes: &'a [u8],
    stack: Vec<Frame>,
    suite_stack: Vec<usize>,
    case: Option<Case>,
    root_seen: bool,
    root_closed: bool,
    root_name: Option<String>,
    schema: Option<String>,
    report: ParsedReport,
}

const MESSAGE_LIMIT: usize = 200;

fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if line.chars().count() > MESSAGE_LIMIT {
        let mut s: String = line.chars().take(MESSAGE_LIMIT).collect();
        s.push('…');
        s
    } else {
        line.to_owned()
    }
}

/// Parses one JUnit XML report; `path` is how the file is named in errors and evidence.
fn parse_junit(path: &str, bytes: &[u8]) -> Result<ParsedReport, GateError> {
    let mut reader = Reader::from_reader(bytes);
    let mut p = JunitParser {
        path,
        bytes,
        stack: Vec::new(),
        suite_stack: Vec::new(),
        case: None,
        root_seen: false,
        root_closed: false,
        root_name: None,
        schema: None,
        report: ParsedReport {
            path: path.to_owned(),
            tool: "junit",
            counts: Counts::default(),
            root_declared: None,
            suites: Vec::new(),
            failed: Vec::new(),
            flaky: Vec::new(),
        },
    };
    loop {
        let start = reader.buffer_position();
        let event = reader.read_event().map_err(|e| {
            invalid_input(
                path,
                Some(line_at(bytes, reader.error_position())),
                format!("malformed XML: {e}"),
            )
        })?;
        let decoder = reader.decoder();
        match event {
            Event::Start(e) => p.open(&e, start, decoder, false)?,
            Event::Empty(e) => p.open(&e, start, decoder, true)?,
            Event::End(_) => p.close(start)?,
            Event::Text(t) => {
                if p.capturing() {
                    let text = t.decode().map_err(|e| p.err(start, format!("{e}")))?;
                    p.text(&text);
                } else if !p.root_seen || p.root_closed {
                    let text = t.decode().map_err(|e| p.err(start, format!("{e}")))?;
                    if !text.trim().is_empty() {
                        return Err(p.err(
                            start,
                            "text outside the root element: not a JUnit XML report",
                        ));
                    }
                }
            }
            Event::CData(t) if p.capturing() => {
                let text = t.decode().map_err(|e| p.err(start, format!("{e}")))?;
                p.text(&text);
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| p.err(start, format!("{e}")))?;
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&name)
                        .map(str::to_owned)
                        .ok_or_else(|| p.err(start, format!("unknown entity `&{name};`")))?,
                    Err(e) => return Err(p.err(start, format!("malformed XML: {e}"))),
                };
                p.text(&resolved);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    p.finish()
}

impl JunitParser<'_> {
    fn err(&self, pos: u64, message: impl Into<String>) -> GateError {
        invalid_input(self.path, Some(line_at(self.bytes, pos)), message)
    }

    fn capturing(&self) -> bool {
        self.case.as_ref().is_some_and(|c| c.capture.is_some())
    }

    fn text(&mut self, text: &str) {
        if let Some(Case {
            capture: Some((_, _, buf)),
            ..
        }) = &mut self.case
        {
            if buf.len() < 4 * MESSAGE_LIMIT {
                buf.push_str(text);
            }
        }
    }

    fn attributes(
        &self,
        e: &BytesStart<'_>,
        pos: u64,
        decoder: Decoder,
    ) -> Result<BTreeMap<String, String>, GateError> {
        let mut out = BTreeMap::new();
        for attr in e.attributes() {
            let attr = attr.map_err(|e| self.err(pos, format!("malformed attribute: {e}")))?;
            let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
            let value = attr
                .decode_and_unescape_value(decoder)
                .map_err(|e| self.err(pos, format!("attribute `{key}`: {e}")))?;
            out.insert(key, value.into_owned());
        }
        Ok(out)
    }

    fn declared(
        &self,
        attrs: &BTreeMap<String, String>,
        element: &str,
        pos: u64,
    ) -> Result<Declared, GateError> {
        let count = |key: &str| -> Result<Option<u64>, GateError> {
            match attrs.get(key) {
                None => Ok(None),
                Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                    self.err(
                        pos,
                        format!("attribute `{key}` of <{element}> is not a count: `{v}`"),
                    )
                }),
            }
        };
        Ok(Declared {
            tests: count("tests")?,
            failures: count("failures")?,
            errors: count("errors")?,
            skipped: count("skipped")?,
        })
    }

    fn push(&mut self, name: String, pos: u64, kind: FrameKind) {
        let line = line_at(self.bytes, pos);
        self.stack.push(Frame { name, line, kind });
    }

    fn open_suite(
        &mut self,
        attrs: &BTreeMap<String, String>,
        name: String,
        pos: u64,
    ) -> Result<(), GateError> {
        let declared = self.declared(attrs, "testsuite", pos)?;
        let suite_name = attrs.get("name").cloned().unwrap_or_default();
        self.report.suites.push(Suite {
            name: suite_name,
            line: line_at(self.bytes, pos),
            counts: Counts::default(),
            declared,
        });
        self.suite_stack
            .push(self.report.suites.len().saturating_sub(1));
        self.push(name, pos, FrameKind::Suite);
        Ok(())
    }

    fn open(
        &mut self,
        e: &BytesStart<'_>,
        pos: u64,
        decoder: Decoder,
        empty: bool,
    ) -> Result<(), GateError> {
        let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        let top = self.stack.last().map(|f| f.kind);
        if top.is_none() {
            if self.root_closed {
                return Err(self.err(
                    pos,
                    format!("a second root element <{name}>: not one JUnit XML report"),
                ));
            }
            self.root_seen = true;
            let attrs = self.attributes(e, pos, decoder)?;
            match name.as_str() {
                "testsuites" => {
                    let declared = self.declared(&attrs, "testsuites", pos)?;
                    self.report.root_declared = Some((declared, line_at(self.bytes, pos)));
                    self.root_name = attrs.get("name").cloned();
                    self.push(name, pos, FrameKind::Root);
                }
                "testsuite" => {
                    self.schema = attrs.get("xsi:noNamespaceSchemaLocation").cloned();
                    self.open_suite(&attrs, name, pos)?;
                }
                _ => {
                    return Err(self.err(
                        pos,
                        format!(
                        "expected a <testsuites> or <testsuite> root element, found <{name}>: not a JUnit XML report"
                    ),
                    ))
                }
            }
        } else if let Some(depth) = self.case.as_ref().map(|c| c.depth) {
            if self.stack.len() == depth {
                let attrs = self.attributes(e, pos, decoder)?;
                let message = attrs.get("message").map(|m| first_line(m));
                let new_depth = self.stack.len() + 1;
                if let Some(case) = &mut self.case {
                    match name.as_str() {
                        "failure" | "error" => {
                            let bad = if name == "failure" {
                                Bad::Failure
                            } else {
                                Bad::Error
                            };
                            let msg = message.filter(|m| !m.is_empty());
                            let slot = match bad {
                                Bad::Failure => &mut case.failure,
                                Bad::Error => &mut case.error,
                            };
                            *slot = Some(msg.clone().unwrap_or_default());
                            if msg.is_none() && !empty {
                                case.capture = Some((bad, new_depth, String::new()));
                            }
                        }
                        "skipped" => case.skipped = true,
                        "flakyFailure" | "flakyError" => case.flaky = true,
                        "testcase" | "testsuite" => {
                            return Err(self.err(pos, format!("<{name}> inside a <testcase>")))
                        }
                        // rerunFailure/rerunError accompany a final failure/error; output
                        // elements and properties carry no outcome.
                        _ => {}
                    }
                }
            }
            self.push(name, pos, FrameKind::Other);
        } else {
            match (name.as_str(), top) {
                ("testsuite", Some(FrameKind::Root | FrameKind::Suite)) => {
                    let attrs = self.attributes(e, pos, decoder)?;
                    self.open_suite(&attrs, name, pos)?;
                }
                ("testcase", Some(FrameKind::Suite)) => {
                    let attrs = self.attributes(e, pos, decoder)?;
                    self.case = Some(Case {
                        name: attrs.get("name").cloned().unwrap_or_default(),
                        classname: attrs.get("classname").cloned().unwrap_or_default(),
                        depth: self.stack.len() + 1,
                        failure: None,
                        error: None,
                        skipped: false,
                        flaky: false,
                        capture: None,
                    });
                    self.push(name, pos, FrameKind::Case);
                }
                ("testcase", Some(FrameKind::Root)) => {
                    return Err(self.err(pos, "<testcase> outside any <testsuite>"));
                }
                _ => self.push(name, pos, FrameKind::Other),
            }
        }
        if empty {
            self.close(pos)?;
        }
        Ok(())
    }

    fn close(&mut self, pos: u64) -> Result<(), GateError> {
        let depth = self.stack.len();
        let frame = self
            .stack
            .pop()
            .ok_or_else(|| self.err(pos, "a closing tag without an opening one"))?;
        match frame.kind {
            FrameKind::Root => {}
            FrameKind::Suite => {
                self.suite_stack.pop();
            }
            FrameKind::Case => self.finish_case(),
            FrameKind::Other => {
                if let Some(case) = &mut self.case {
                    if case.capture.as_ref().is_some_and(|(_, d, _)| *d == depth) {
                        if let Some((bad, _, text)) = case.capture.take() {
                            let slot = match bad {
                                Bad::Failure => &mut case.failure,
                                Bad::Error => &mut case.error,
                            };
                            *slot = Some(first_line(&text));
                        }
                    }
                }
            }
        }
        if self.stack.is_empty() {
            self.root_closed = true;
        }
        Ok(())
    }

    fn finish_case(&mut self) {
        let Some(case) = self.case.take() else {
            return;
        };
        let outcome = if case.error.is_some() {
            Outcome::Errored
        } else if case.failure.is_some() {
            Outcome::Failed
        } else if case.skipped {
            Outcome::Skipped
        } else if case.flaky {
            Outcome::Flaky
        } else {
            Outcome::Passed
        };
        self.report.counts.add(outcome);
        for &i in &self.suite_stack {
            if let Some(s) = self.report.suites.get_mut(i) {
                s.counts.add(outcome);
            }
        }
        let suite = self
            .suite_stack
            .last()
            .and_then(|&i| self.report.suites.get(i))
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let (kind, message) = match (outcome, case.error, case.failure) {
            (Outcome::Errored, Some(m), _) => ("error", m),
            (Outcome::Failed, _, Some(m)) => ("failure", m),
            (Outcome::Flaky, _, _) => {
                self.report
                    .flaky
                    .push(display_name(&suite, &case.classname, &case.name));
                return;
            }
            _ => return,
        };
        self.report.failed.push(FailedTest {
            report: self.path.to_owned(),
            suite,
            classname: case.classname,
            name: case.name,
            outcome: kind,
            message,
        });
    }

    fn finish(mut self) -> Result<ParsedReport, GateError> {
        if !self.root_seen {
            return Err(invalid_input(
                self.path,
                None,
                "no XML root element: the file is empty or not a JUnit XML report",
            ));
        }
        if let Some(open) = self.stack.last() {
            return Err(invalid_input(
                self.path,
                Some(line_at(self.bytes, self.bytes.len() as u64)),
                format!(
                    "the file ends before <{}> opened at line {} is closed: truncated?",
                    open.name, open.line
                ),
            ));
        }
        self.report.tool = self.detect_tool();
        Ok(self.report)
    }

    /// The tool that wrote the report, from the marks each one leaves.
    fn detect_tool(&self) -> &'static str {
        let first_suite = self.report.suites.first().map(|s| s.name.as_str());
        match (
            self.root_name.as_deref(),
            first_suite,
            self.schema.as_deref(),
        ) {
            (Some("nextest-run"), _, _) => "nextest",
            (Some("pytest tests"), _, _) | (None, Some("pytest"), _) => "pytest",
            (Some("jest tests"), _, _) => "jest",
            (_, _, Some(s)) if s.contains("surefire") || s.contains("failsafe") => "surefire",
            _ => "junit",
        }
    }
}

fn display_name(suite: &str, classname: &str, name: &str) -> String {
    if classname.is_empty() || classname == name {
        if suite.is_empty() || suite == name {
            name.to_owned()
        } else {
            format!("{suite} {name}")
        }
    } else {
        format!("{classname} {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures::executor::block_on;
    use promotion_core::testing::GateProbe;

    fn data(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/testreport")
            .join(rel)
    }

    fn run(gate: &dyn Gate) -> Result<Verdict, GateError> {
        block_on(GateProbe::new().evaluate(gate))
    }

    fn passed(v: Result<Verdict, GateError>) -> Evidence {
        match v {
            Ok(Verdict::Pass(e)) => e,
            other => panic!("expected a pass, got {other:?}"),
        }
    }

    fn failed(v: Result<Verdict, GateError>) -> Evidence {
        match v {
            Ok(Verdict::Fail(e)) => e,
            other => panic!("expected a fail, got {other:?}"),
        }
    }

    fn invalid_input(v: Result<Verdict, GateError>) -> (String, String) {
        match v {
            Err(GateError::InvalidInput { what, message }) => (what, message),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
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

    // ---- performance budget gate -------------------------------------------------------

    #[test]
    fn testreport_fmt_num() {
        assert_eq!(fmt_num(41.2), "41.2");
        assert_eq!(fmt_num(1200.0), "1200");
        assert_eq!(fmt_num(-24.8), "-24.8");
        assert_eq!(fmt_num(131.37624), "131.376");
    }
}
