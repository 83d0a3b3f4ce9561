//! The [`TestReportGate`]: where its reports come from (files or globs), its thresholds, and the
//! verdict and evidence from the summed counts of every report.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use globset::{GlobBuilder, GlobMatcher};
use serde_json::json;

use promotion_core::{Evidence, Gate, GateContext, GateError, GateKind, Verdict};

use crate::input::invalid_input;

use super::{fmt_num, parse_junit, read_input, ConfigError, Counts, FailedTest, ParsedReport};

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
