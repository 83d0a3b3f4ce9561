//! Vulnerability gate: a release may not proceed while a scanner reports a finding at or above
//! a severity threshold that nobody has accepted.
//!
//! # Inputs
//!
//! - **SARIF 2.1.0** logs, as written by Trivy (`--format sarif`), Grype (`-o sarif`), CodeQL
//!   (`database analyze --format sarif-latest`), Semgrep (`--sarif`) or cargo-audit
//!   (`--format sarif`). Rules are looked up in `tool.driver.rules` or, when a result points
//!   at a tool extension (`rule.toolComponent.index`, as CodeQL's query packs do), in
//!   `tool.extensions[].rules`.
//! - **cargo-audit JSON** (`cargo audit --json`): `vulnerabilities.list[]` and the
//!   informational `warnings` (unmaintained, unsound, yanked, notice).
//! - An optional **accepted-risk file** (TOML), see below.
//!
//! Several reports can be combined; every finding is normalised to a [`Finding`]: an id (the
//! SARIF `ruleId` or the RustSec id, with the advisory's aliases), a [`Severity`], the tool,
//! and the package or location.
//!
//! # Severity
//!
//! | Source | Rule |
//! |---|---|
//! | SARIF `properties.security-severity` (result, else rule) | CVSS bands: ≥ 9.0 critical, ≥ 7.0 high, ≥ 4.0 medium, > 0 low |
//! | SARIF `level` (result, else the rule's `defaultConfiguration.level`, else SARIF's default `warning`) | `error` → high, `warning` → medium, `note` → low, `none` → info |
//! | SARIF result whose `kind` is not `fail` (`pass`, `review`, …) | info |
//! | cargo-audit vulnerability with a CVSS v3 vector | the base score computed from the vector, banded as above |
//! | cargo-audit vulnerability without CVSS (or with a non-v3 vector) | high |
//! | cargo-audit warning (unmaintained, unsound, yanked, notice) | low, configurable with [`VulnGateBuilder::cargo_audit_warnings`] |
//!
//! The CVSS v3.0/v3.1 base score is computed from the vector by RustSec's `cvss` crate, the one
//! cargo-audit itself uses; the tests check it against cargo-audit's own SARIF output.
//!
//! A `security-severity` of exactly `0.0` is read as "no score" and the level decides: Trivy
//! and Grype write `0.0` for severities they do not know.
//!
//! SARIF `suppressions` never waive a finding (Grype once marked every result as suppressed):
//! the evidence counts them, and only the accepted-risk file accepts a risk. Results whose
//! `baselineState` is `absent` (fixed since the baseline) are not findings.
//!
//! # Accepted risks
//!
//! ```toml
//! [[accept]]
//! id = "RUSTSEC-2021-0124"          # or a CVE/GHSA alias, or a SARIF ruleId (case-insensitive)
//! package = "tokio"                 # optional: only findings in this package (cargo-audit)
//! justification = "oneshot::Receiver::close is never called; upgrade tracked in SVC-412"
//! owner = "dana@example.com"
//! expires = 2027-01-31              # a date (expires at 00:00 UTC that day) or an RFC 3339 time
//! ```
//!
//! Every entry needs an id, a justification, an owner and an expiry; an entry missing one, or
//! with a field this gate does not know, is [`GateError::InvalidInput`] naming the file, the
//! line and the entry. Acceptances are judged against the context clock: an expired acceptance
//! waives nothing, so its findings block again, and the evidence names it. SARIF carries no
//! package, so an acceptance with a `package` only ever covers cargo-audit findings.
//!
//! # Evidence
//!
//! The digest of every report and of the accepted-risk file; counts per severity per tool; the
//! blocking findings and the accepted ones (each list bounded by
//! [`VulnGateBuilder::max_listed`]); the expired acceptances. Facts: `critical` and `high`
//! (findings of that severity, accepted or not) and `blocking`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use promotion_core::{Evidence, Gate, GateContext, GateError, GateKind, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::input::{invalid_input, line_of};

/// How serious a finding is, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational: a CVSS score of 0, SARIF level `none`, a result whose kind is not `fail`.
    Info,
    /// CVSS above 0 and below 4.0; SARIF `note`.
    Low,
    /// CVSS 4.0 to 6.9; SARIF `warning`.
    Medium,
    /// CVSS 7.0 to 8.9; SARIF `error`; a RustSec advisory without CVSS.
    High,
    /// CVSS 9.0 and above.
    Critical,
}

impl Severity {
    /// Every severity, most serious first.
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    /// The lower-case name (`high`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The band of a CVSS score (`security-severity`): critical ≥ 9.0, high ≥ 7.0,
    /// medium ≥ 4.0, low > 0, info = 0. `None` outside 0.0–10.0.
    ///
    /// ```
    /// use promotion_gates::vuln::Severity;
    /// assert_eq!(Severity::from_cvss(9.8), Some(Severity::Critical));
    /// assert_eq!(Severity::from_cvss(6.9), Some(Severity::Medium));
    /// assert_eq!(Severity::from_cvss(11.0), None);
    /// ```
    pub fn from_cvss(score: f64) -> Option<Severity> {
        if !score.is_finite() || !(0.0..=10.0).contains(&score) {
            return None;
        }
        Some(if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else if score > 0.0 {
            Severity::Low
        } else {
            Severity::Info
        })
    }

    fn slot(self) -> usize {
        match self {
            Severity::Critical => 0,
            Severity::High => 1,
            Severity::Medium => 2,
            Severity::Low => 3,
            Severity::Info => 4,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = UnknownSeverity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|sev| sev.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownSeverity(s.to_owned()))
    }
}

/// A severity name other than `critical`, `high`, `medium`, `low` or `info`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity `{0}`: expected critical, high, medium, low or info")]
pub struct UnknownSeverity(pub String);

/// One finding of one tool, normalised.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// The SARIF `ruleId`, the RustSec advisory id, or (for an advisory-less cargo-audit
    /// warning) the warning kind (`yanked`).
    pub id: String,
    /// Other ids of the same advisory (CVE, GHSA), from cargo-audit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// How serious it is.
    pub severity: Severity,
    /// Why it has that severity (`security-severity 9.8`, `no CVSS in the advisory: treated as
    /// high`).
    pub severity_basis: String,
    /// The tool that reported it (`Trivy`, `CodeQL`, `cargo-audit`).
    pub tool: String,
    /// The affected package, when the report names one (cargo-audit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// The affected package version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Where (SARIF: the location's message, else `uri:line`, else the logical location).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// One line describing it (the rule's short description or the advisory title).
    pub title: String,
    /// The report file it came from.
    pub report: String,
    /// The report marks it suppressed; this gate does not honour that.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

impl Finding {
    /// The id and its aliases.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    /// What is affected, for a release manager (`smallvec 0.6.13`, `src/app.js:14`).
    pub fn subject(&self) -> String {
        match (&self.package, &self.version, &self.location) {
            (Some(p), Some(v), _) => format!("{p} {v}"),
            (Some(p), None, _) => p.clone(),
            (None, _, Some(l)) => l.clone(),
            (None, _, None) => self.report.clone(),
        }
    }
}

/// What one report file said.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScanReport {
    /// The file (as named in errors and evidence).
    pub source: String,
    /// The tools that produced it, in order of appearance.
    pub tools: Vec<String>,
    /// Its findings.
    pub findings: Vec<Finding>,
}

fn json_error(source: &str, e: &serde_json::Error) -> GateError {
    let line = (e.line() > 0).then(|| e.line());
    let message = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("not valid JSON: {e}")
        }
        serde_json::error::Category::Data | serde_json::error::Category::Io => {
            format!("unexpected content: {e}")
        }
    };
    invalid_input(source, line, message)
}

/// Checks that `bytes` is one JSON object, so that a log file or a truncated report is named
/// as such before its structure is examined.
fn json_object(
    source: &str,
    bytes: &[u8],
    expected: &str,
) -> Result<serde_json::Map<String, Value>, GateError> {
    match serde_json::from_slice::<Value>(bytes).map_err(|e| json_error(source, &e))? {
        Value::Object(map) => Ok(map),
        other => {
            let found = match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            };
            Err(invalid_input(
                source,
                None,
                format!("not {expected}: the document is {found}, not a JSON object"),
            ))
        }
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    if line.chars().count() > 160 {
        let cut: String = line.chars().take(157).collect();
        format!("{cut}...")
    } else {
        line.to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// SARIF 2.1.0
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct SarifLog {
    #[serde(default)]
    runs: Option<Vec<Run>>,
}

#[derive(Deserialize)]
struct Run {
    tool: Tool,
    #[serde(default)]
    results: Option<Vec<SarifResult>>,
    #[serde(default)]
    invocations: Option<Vec<Invocation>>,
}

#[derive(Deserialize)]
struct Invocation {
    #[serde(default, rename = "executionSuccessful")]
    execution_successful: Option<bool>,
}

#[derive(Deserialize)]
struct Tool {
    driver: ToolComponent,
    #[serde(default)]
    extensions: Option<Vec<ToolComponent>>,
}

#[derive(Deserialize)]
struct ToolComponent {
    name: String,
    #[serde(default)]
    rules: Option<Vec<Rule>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    id: String,
    #[serde(default)]
    short_description: Option<Text>,
    #[serde(default)]
    default_configuration: Option<RuleConfiguration>,
    #[serde(default)]
    properties: Option<Properties>,
}

#[derive(Deserialize)]
struct Text {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct RuleConfiguration {
    #[serde(default)]
    level: Option<Level>,
}

#[derive(Deserialize)]
struct Properties {
    #[serde(default, rename = "security-severity")]
    security_severity: Option<Value>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    None,
    Note,
    Warning,
    Error,
}

impl Level {
    fn severity(self) -> Severity {
        match self {
            Level::None => Severity::Info,
            Level::Note => Severity::Low,
            Level::Warning => Severity::Medium,
            Level::Error => Severity::High,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Note => "note",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    #[serde(default)]
    rule_id: Option<String>,
    #[serde(default)]
    rule_index: Option<i64>,
    #[serde(default)]
    rule: Option<RuleReference>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    level: Option<Level>,
    #[serde(default)]
    message: Option<Text>,
    #[serde(default)]
    locations: Option<Vec<Location>>,
    #[serde(default)]
    suppressions: Option<Vec<Suppression>>,
    #[serde(default)]
    baseline_state: Option<String>,
    #[serde(default)]
    properties: Option<Properties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleReference {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    index: Option<i64>,
    #[serde(default)]
    tool_component: Option<ComponentReference>,
}

#[derive(Deserialize)]
struct ComponentReference {
    #[serde(default)]
    index: Option<i64>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    #[serde(default)]
    physical_location: Option<PhysicalLocation>,
    #[serde(default)]
    logical_locations: Option<Vec<LogicalLocation>>,
    #[serde(default)]
    message: Option<Text>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    #[serde(default)]
    artifact_location: Option<ArtifactLocation>,
    #[serde(default)]
    region: Option<Region>,
}

#[derive(Deserialize)]
struct ArtifactLocation {
    #[serde(default)]
    uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    #[serde(default)]
    start_line: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogicalLocation {
    #[serde(default)]
    fully_qualified_name: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Suppression {
    #[serde(default)]
    status: Option<String>,
}

/// Reads a SARIF 2.1.0 log; `source` names the file in errors and findings.
///
/// A log that is not JSON, declares another version, has no runs, a run without `results`,
/// a failed invocation, a result naming a rule that does not exist, or a `security-severity`
/// that is not a score from 0 to 10 is [`GateError::InvalidInput`].
///
/// ```
/// use promotion_gates::vuln::{parse_sarif, Severity};
/// let log = br#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Semgrep OSS",
///   "rules": [{"id": "py.shell-true", "defaultConfiguration": {"level": "error"}}]}},
///   "results": [{"ruleId": "py.shell-true", "message": {"text": "shell=True"}}]}]}"#;
/// let report = parse_sarif("semgrep.sarif", log)?;
/// assert_eq!(report.findings[0].severity, Severity::High);
/// # Ok::<(), promotion_core::GateError>(())
/// ```
pub fn parse_sarif(source: &str, bytes: &[u8]) -> Result<ScanReport, GateError> {
    let header = json_object(source, bytes, "a SARIF log")?;
    match header.get("version") {
        Some(Value::String(v)) if v == "2.1.0" => {}
        Some(v) => {
            return Err(invalid_input(
                source,
                None,
                format!("SARIF version {v} is not supported: this gate reads SARIF 2.1.0"),
            ))
        }
        None => {
            return Err(invalid_input(
                source,
                None,
                "no `version`: not a SARIF log (this gate reads SARIF 2.1.0)",
            ))
        }
    }
    let log: SarifLog = serde_json::from_slice(bytes).map_err(|e| json_error(source, &e))?;
    let runs = match log.runs {
        Some(runs) if !runs.is_empty() => runs,
        Some(_) => {
            return Err(invalid_input(
                source,
                None,
                "`runs` is empty: the log records no analysis",
            ))
        }
        None => {
            return Err(invalid_input(
                source,
                None,
                "no `runs`: the log records no analysis (the tool may have failed to start)",
            ))
        }
    };
    let mut report = ScanReport {
        source: source.to_owned(),
        tools: Vec::new(),
        findings: Vec::new(),
    };
    for (r, run) in runs.iter().enumerate() {
        let tool = &run.tool.driver.name;
        if let Some(i) = run
            .invocations
            .iter()
            .flatten()
            .position(|inv| inv.execution_successful == Some(false))
        {
            return Err(invalid_input(
                source,
                None,
                format!(
                    "runs[{r}]: {tool} reports that its run failed \
                     (invocations[{i}].executionSuccessful is false)"
                ),
            ));
        }
        let results = run.results.as_ref().ok_or_else(|| {
            invalid_input(
                source,
                None,
                format!("runs[{r}] has no `results`: {tool} did not report an analysis"),
            )
        })?;
        if !report.tools.contains(tool) {
            report.tools.push(tool.clone());
        }
        for (i, result) in results.iter().enumerate() {
            if result.baseline_state.as_deref() == Some("absent") {
                continue;
            }
            let at = format!("runs[{r}].results[{i}]");
            report
                .findings
                .push(sarif_finding(source, &run.tool, result, &at)?);
        }
    }
    Ok(report)
}

fn sarif_finding(
    source: &str,
    tool: &Tool,
    result: &SarifResult,
    at: &str,
) -> Result<Finding, GateError> {
    let rule =
        sarif_rule(tool, result).map_err(|m| invalid_input(source, None, format!("{at}: {m}")))?;
    let id = result
        .rule_id
        .clone()
        .or_else(|| result.rule.as_ref().and_then(|r| r.id.clone()))
        .or_else(|| rule.map(|r| r.id.clone()))
        .ok_or_else(|| {
            invalid_input(
                source,
                None,
                format!("{at} names no rule (no `ruleId`, `rule.id` or `ruleIndex`)"),
            )
        })?;
    if let Some(rule) = rule {
        let consistent = id == rule.id || id.starts_with(&format!("{}/", rule.id));
        if !consistent {
            return Err(invalid_input(
                source,
                None,
                format!(
                    "{at}: ruleId `{id}` does not match the rule it points at (`{}`)",
                    rule.id
                ),
            ));
        }
    }
    let (severity, severity_basis) = sarif_severity(result, rule)
        .map_err(|m| invalid_input(source, None, format!("{at} ({id}): {m}")))?;
    let title = rule
        .and_then(|r| r.short_description.as_ref())
        .and_then(|t| t.text.as_deref())
        .or_else(|| result.message.as_ref().and_then(|m| m.text.as_deref()))
        .map(first_line)
        .unwrap_or_default();
    let suppressed = result.suppressions.iter().flatten().any(|s| {
        s.status
            .as_deref()
            .is_none_or(|status| status.eq_ignore_ascii_case("accepted"))
    });
    Ok(Finding {
        id,
        aliases: Vec::new(),
        severity,
        severity_basis,
        tool: tool.driver.name.clone(),
        package: None,
        version: None,
        location: result
            .locations
            .as_deref()
            .and_then(<[Location]>::first)
            .and_then(describe_location),
        title,
        report: source.to_owned(),
        suppressed,
    })
}

/// The rule a result points at: by `rule.toolComponent` (an extension) and index, else by id.
fn sarif_rule<'a>(tool: &'a Tool, result: &SarifResult) -> Result<Option<&'a Rule>, String> {
    let reference = result.rule.as_ref();
    let extensions = tool.extensions.as_deref().unwrap_or_default();
    let component = match reference.and_then(|r| r.tool_component.as_ref()) {
        None => &tool.driver,
        Some(c) => match (c.index, c.name.as_deref()) {
            (Some(i), _) if i >= 0 => usize::try_from(i)
                .ok()
                .and_then(|i| extensions.get(i))
                .ok_or_else(|| {
                    format!(
                        "rule.toolComponent.index {i} is out of range: the run declares {} \
                         tool extension(s)",
                        extensions.len()
                    )
                })?,
            (_, Some(name)) if name == tool.driver.name => &tool.driver,
            (_, Some(name)) => extensions
                .iter()
                .find(|e| e.name == name)
                .ok_or_else(|| format!("rule.toolComponent names an unknown tool `{name}`"))?,
            _ => &tool.driver,
        },
    };
    let rules = component.rules.as_deref().unwrap_or_default();
    let index = reference
        .and_then(|r| r.index)
        .or(result.rule_index)
        .filter(|i| *i >= 0);
    if let Some(i) = index {
        return usize::try_from(i)
            .ok()
            .and_then(|i| rules.get(i))
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "rule index {i} is out of range: {} declares {} rule(s)",
                    component.name,
                    rules.len()
                )
            });
    }
    let id = result
        .rule_id
        .as_deref()
        .or_else(|| reference.and_then(|r| r.id.as_deref()));
    Ok(id.and_then(|id| rules.iter().find(|r| r.id == id)))
}

fn sarif_severity(result: &SarifResult, rule: Option<&Rule>) -> Result<(Severity, String), String> {
    if let Some(kind) = result.kind.as_deref() {
        if kind != "fail" {
            return Ok((Severity::Info, format!("result kind `{kind}`")));
        }
    }
    let scored = [
        result.properties.as_ref(),
        rule.and_then(|r| r.properties.as_ref()),
    ];
    for value in scored
        .into_iter()
        .flatten()
        .filter_map(|p| p.security_severity.as_ref())
    {
        if let Some(score) = security_score(value)? {
            if score > 0.0 {
                let severity = Severity::from_cvss(score).unwrap_or(Severity::Critical);
                return Ok((severity, format!("security-severity {score:.1}")));
            }
        }
    }
    let default = rule
        .and_then(|r| r.default_configuration.as_ref())
        .and_then(|c| c.level);
    let (level, whence) = match (result.level, default) {
        (Some(level), _) => (level, "level"),
        (None, Some(level)) => (level, "rule default level"),
        (None, None) => (Level::Warning, "SARIF default level"),
    };
    Ok((level.severity(), format!("{whence} {}", level.as_str())))
}

fn security_score(value: &Value) -> Result<Option<f64>, String> {
    let score = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("security-severity `{s}` is not a number"))?,
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("security-severity {n} is not a number"))?,
        other => return Err(format!("security-severity {other} is not a number")),
    };
    if score.is_finite() && (0.0..=10.0).contains(&score) {
        Ok(Some(score))
    } else {
        Err(format!(
            "security-severity {score} is outside the CVSS range 0.0-10.0"
        ))
    }
}

fn describe_location(location: &Location) -> Option<String> {
    if let Some(text) = location
        .message
        .as_ref()
        .and_then(|m| m.text.as_deref())
        .filter(|t| !t.trim().is_empty())
    {
        return Some(first_line(text));
    }
    let physical = location.physical_location.as_ref();
    if let Some(uri) = physical
        .and_then(|p| p.artifact_location.as_ref())
        .and_then(|a| a.uri.as_deref())
    {
        return Some(
            match physical
                .and_then(|p| p.region.as_ref())
                .and_then(|r| r.start_line)
            {
                Some(line) => format!("{uri}:{line}"),
                None => uri.to_owned(),
            },
        );
    }
    location
        .logical_locations
        .iter()
        .flatten()
        .find_map(|l| l.fully_qualified_name.clone().or_else(|| l.name.clone()))
}

// ---------------------------------------------------------------------------------------------
// cargo-audit JSON
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct AuditReport {
    vulnerabilities: AuditVulnerabilities,
    warnings: BTreeMap<String, Vec<AuditWarning>>,
}

#[derive(Deserialize)]
struct AuditVulnerabilities {
    found: bool,
    count: usize,
    list: Vec<AuditVulnerability>,
}

#[derive(Deserialize)]
struct AuditVulnerability {
    advisory: AuditAdvisory,
    package: AuditPackage,
}

#[derive(Deserialize)]
struct AuditAdvisory {
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    cvss: Option<String>,
}

#[derive(Deserialize)]
struct AuditPackage {
    name: String,
    version: String,
}

#[derive(Deserialize)]
struct AuditWarning {
    kind: String,
    package: AuditPackage,
    #[serde(default)]
    advisory: Option<AuditAdvisory>,
}

/// Reads the JSON report of `cargo audit --json`; `warnings` is the severity given to its
/// informational warnings (unmaintained, unsound, yanked, notice).
///
/// Vulnerabilities take the severity of the base score of the advisory's CVSS v3 vector, or
/// [`Severity::High`] when the advisory has no CVSS v3 vector. A report that is not JSON,
/// lacks `vulnerabilities` or `warnings`, whose count disagrees with its list, or that holds
/// a malformed CVSS v3 vector is [`GateError::InvalidInput`].
pub fn parse_cargo_audit(
    source: &str,
    bytes: &[u8],
    warnings: Severity,
) -> Result<ScanReport, GateError> {
    json_object(source, bytes, "a cargo-audit report")?;
    let report: AuditReport = serde_json::from_slice(bytes).map_err(|e| json_error(source, &e))?;
    let vulns = &report.vulnerabilities;
    if vulns.count != vulns.list.len() || vulns.found == vulns.list.is_empty() {
        return Err(invalid_input(
            source,
            None,
            format!(
                "inconsistent report: vulnerabilities.found is {} and count is {}, but the list \
                 holds {} entries",
                vulns.found,
                vulns.count,
                vulns.list.len()
            ),
        ));
    }
    let tool = "cargo-audit".to_owned();
    let mut findings = Vec::new();
    for (i, vuln) in vulns.list.iter().enumerate() {
        let advisory = &vuln.advisory;
        let (severity, severity_basis) = advisory_severity(advisory).map_err(|m| {
            invalid_input(
                source,
                None,
                format!("vulnerabilities.list[{i}] ({}): {m}", advisory.id),
            )
        })?;
        findings.push(Finding {
            id: advisory.id.clone(),
            aliases: advisory.aliases.clone(),
            severity,
            severity_basis,
            tool: tool.clone(),
            package: Some(vuln.package.name.clone()),
            version: Some(vuln.package.version.clone()),
            location: None,
            title: first_line(&advisory.title),
            report: source.to_owned(),
            suppressed: false,
        });
    }
    for warning in report.warnings.values().flatten() {
        let (id, aliases, title) = match &warning.advisory {
            Some(a) => (a.id.clone(), a.aliases.clone(), first_line(&a.title)),
            None => (
                warning.kind.clone(),
                Vec::new(),
                format!("{} crate", warning.kind),
            ),
        };
        findings.push(Finding {
            id,
            aliases,
            severity: warnings,
            severity_basis: format!(
                "cargo-audit warning ({}): {warnings} by setting",
                warning.kind
            ),
            tool: tool.clone(),
            package: Some(warning.package.name.clone()),
            version: Some(warning.package.version.clone()),
            location: None,
            title,
            report: source.to_owned(),
            suppressed: false,
        });
    }
    Ok(ScanReport {
        source: source.to_owned(),
        tools: vec![tool],
        findings,
    })
}

fn advisory_severity(advisory: &AuditAdvisory) -> Result<(Severity, String), String> {
    match advisory.cvss.as_deref() {
        None => Ok((
            Severity::High,
            "no CVSS in the advisory: treated as high".to_owned(),
        )),
        Some(vector) => match cvss_v3_base_score(vector)? {
            Some(score) => Ok((
                Severity::from_cvss(score).unwrap_or(Severity::High),
                format!("CVSS {score:.1} ({vector})"),
            )),
            None => Ok((
                Severity::High,
                format!("CVSS vector {vector} is not v3 and is not scored: treated as high"),
            )),
        },
    }
}

/// The CVSS v3.0/v3.1 base score of `vector`, parsed and scored by RustSec's `cvss` crate (the
/// same one cargo-audit uses), or `None` for a vector of another version. Temporal and
/// environmental metrics are ignored.
fn cvss_v3_base_score(vector: &str) -> Result<Option<f64>, String> {
    if !vector.starts_with("CVSS:3") {
        return Ok(None);
    }
    // Temporal and environmental metrics do not change the base score, and the `cvss` crate
    // parses base vectors only: leave them out by name.
    const NOT_BASE: [&str; 14] = [
        "E", "RL", "RC", "CR", "IR", "AR", "MAV", "MAC", "MPR", "MUI", "MS", "MC", "MI", "MA",
    ];
    let mut seen: Vec<&str> = Vec::new();
    let mut base_only: Vec<&str> = Vec::new();
    for part in vector.split('/') {
        let key = part.split(':').next().unwrap_or("");
        // The specification allows each metric once; the crate would take the last.
        if seen.contains(&key) {
            return Err(format!("CVSS vector `{vector}` repeats {key}"));
        }
        seen.push(key);
        if !NOT_BASE.contains(&key) {
            base_only.push(part);
        }
    }
    let base: cvss::v3::Base = base_only
        .join("/")
        .parse()
        .map_err(|e| format!("CVSS vector `{vector}` is not a valid v3 vector: {e}"))?;
    // The crate scores incomplete vectors; an advisory's vector must name every base metric.
    let complete = base.av.is_some()
        && base.ac.is_some()
        && base.pr.is_some()
        && base.ui.is_some()
        && base.s.is_some()
        && base.c.is_some()
        && base.i.is_some()
        && base.a.is_some();
    if !complete {
        return Err(format!(
            "CVSS vector `{vector}` lacks a base metric (AV, AC, PR, UI, S, C, I and A are required)"
        ));
    }
    Ok(Some(base.score().value()))
}

// ---------------------------------------------------------------------------------------------
// Accepted risks
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptanceFile {
    #[serde(default)]
    accept: Vec<toml::Spanned<RawAcceptance>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcceptance {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    package: Option<String>,
    #[serde(default)]
    justification: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    expires: Option<toml::Value>,
}

#[derive(Debug, Clone)]
struct Acceptance {
    entry: usize,
    line: usize,
    id: String,
    package: Option<String>,
    justification: String,
    owner: String,
    expires: DateTime<Utc>,
}

impl Acceptance {
    fn covers(&self, finding: &Finding) -> bool {
        finding.ids().any(|id| id.eq_ignore_ascii_case(&self.id))
            && self
                .package
                .as_deref()
                .is_none_or(|p| finding.package.as_deref() == Some(p))
    }
    fn expires_text(&self) -> String {
        self.expires.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
    fn to_json(&self) -> Value {
        json!({
            "entry": self.entry,
            "line": self.line,
            "id": self.id,
            "package": self.package,
            "justification": self.justification,
            "owner": self.owner,
            "expires": self.expires_text(),
        })
    }
}

fn parse_acceptances(source: &str, bytes: &[u8]) -> Result<Vec<Acceptance>, GateError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| invalid_input(source, None, format!("not UTF-8 text: {e}")))?;
    let file: AcceptanceFile = toml::from_str(text).map_err(|e| {
        invalid_input(
            source,
            e.span().map(|span| line_of(text, span.start)),
            format!("not a valid accepted-risk file: {}", e.message().trim()),
        )
    })?;
    file.accept
        .into_iter()
        .enumerate()
        .map(|(n, spanned)| {
            let line = line_of(text, spanned.span().start);
            let entry = n + 1;
            let raw = spanned.into_inner();
            let label = match raw.id.as_deref() {
                Some(id) => format!("accepted risk #{entry} (id `{id}`)"),
                None => format!("accepted risk #{entry}"),
            };
            let required = |value: Option<String>, field: &str| match value {
                Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
                Some(_) => Err(invalid_input(
                    source,
                    Some(line),
                    format!("{label}: `{field}` is empty"),
                )),
                None => Err(invalid_input(
                    source,
                    Some(line),
                    format!(
                        "{label}: missing `{field}`; every accepted risk needs an id, a \
                         justification, an owner and an expiry date"
                    ),
                )),
            };
            let id = required(raw.id, "id")?;
            let justification = required(raw.justification, "justification")?;
            let owner = required(raw.owner, "owner")?;
            let expires = match raw.expires {
                Some(value) => parse_expiry(&value)
                    .map_err(|m| invalid_input(source, Some(line), format!("{label}: {m}")))?,
                None => {
                    return Err(invalid_input(
                        source,
                        Some(line),
                        format!(
                            "{label}: missing `expires`; every accepted risk needs an id, a \
                             justification, an owner and an expiry date"
                        ),
                    ))
                }
            };
            let package = match raw.package {
                Some(p) if p.trim().is_empty() => {
                    return Err(invalid_input(
                        source,
                        Some(line),
                        format!("{label}: `package` is empty"),
                    ))
                }
                other => other.map(|p| p.trim().to_owned()),
            };
            Ok(Acceptance {
                entry,
                line,
                id,
                package,
                justification,
                owner,
                expires,
            })
        })
        .collect()
}

/// A date expires at 00:00 UTC that day; a time needs an offset.
fn parse_expiry(value: &toml::Value) -> Result<DateTime<Utc>, String> {
    let text = match value {
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::String(s) => s.trim().to_owned(),
        other => {
            return Err(format!(
                "`expires` must be a date such as 2027-01-31, not a {}",
                other.type_str()
            ))
        }
    };
    if let Ok(date) = NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        if let Some(midnight) = date.and_hms_opt(0, 0, 0) {
            return Ok(midnight.and_utc());
        }
    }
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!(
                "`expires` = {text} is neither a date (2027-01-31) nor a time with an offset \
                 (2027-01-31T18:00:00Z)"
            )
        })
}

// ---------------------------------------------------------------------------------------------
// The gate
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Sarif,
    CargoAudit,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Sarif => "sarif",
            Format::CargoAudit => "cargo-audit",
        }
    }
}

/// Fails while any finding at or above the threshold is not covered by a valid acceptance.
///
/// ```
/// use promotion_core::testing::GateProbe;
/// use promotion_core::Verdict;
/// use promotion_gates::vuln::{Severity, VulnGate};
///
/// let dir = tempfile::tempdir()?;
/// let report = dir.path().join("trivy.sarif");
/// std::fs::write(&report, r#"{"version": "2.1.0", "runs": [{
///     "tool": {"driver": {"name": "Trivy", "rules": [
///         {"id": "CVE-2021-25900", "properties": {"security-severity": "9.8"}}]}},
///     "results": [{"ruleId": "CVE-2021-25900", "ruleIndex": 0, "level": "error",
///                  "message": {"text": "Package: smallvec"}}]}]}"#)?;
/// let probe = GateProbe::new(); // 2026-11-26T09:00:00Z
///
/// let gate = VulnGate::builder().sarif(&report).threshold(Severity::High).build()?;
/// let verdict = futures::executor::block_on(probe.evaluate(&gate))?;
/// assert!(matches!(verdict, Verdict::Fail(_)));
/// assert_eq!(verdict.evidence().facts["critical"], "1");
///
/// // Someone accepts the risk until the end of January 2027 ...
/// let risks = dir.path().join("accepted-risks.toml");
/// std::fs::write(&risks, r#"
/// [[accept]]
/// id = "CVE-2021-25900"
/// justification = "insert_many is never called; upgrade tracked in SVC-412"
/// owner = "dana@example.com"
/// expires = 2027-01-31
/// "#)?;
/// let gate = VulnGate::builder().sarif(&report).accepted_risks(&risks).build()?;
/// let verdict = futures::executor::block_on(probe.evaluate(&gate))?;
/// assert!(matches!(verdict, Verdict::Pass(_)));
///
/// // ... and the gate fails again once the acceptance has expired.
/// probe.clock().set("2027-01-31T00:00:00Z".parse()?);
/// let verdict = futures::executor::block_on(probe.evaluate(&gate))?;
/// assert!(matches!(verdict, Verdict::Fail(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct VulnGate {
    name: String,
    reports: Vec<(Format, PathBuf)>,
    accepted_risks: Option<PathBuf>,
    threshold: Severity,
    warnings: Severity,
    max_listed: usize,
}

/// Configures a [`VulnGate`]; [`build`](VulnGateBuilder::build) validates.
#[derive(Debug, Clone)]
pub struct VulnGateBuilder {
    gate: VulnGate,
}

impl VulnGate {
    /// A gate named `vulnerabilities`, threshold [`Severity::High`], cargo-audit warnings
    /// [`Severity::Low`], listing at most 25 findings of each kind, and no report yet.
    pub fn builder() -> VulnGateBuilder {
        VulnGateBuilder {
            gate: VulnGate {
                name: "vulnerabilities".to_owned(),
                reports: Vec::new(),
                accepted_risks: None,
                threshold: Severity::High,
                warnings: Severity::Low,
                max_listed: 25,
            },
        }
    }

    /// The lowest severity that blocks.
    pub fn threshold(&self) -> Severity {
        self.threshold
    }
}

impl VulnGateBuilder {
    /// Renames the gate.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.gate.name = name.into();
        self
    }
    /// Reads a SARIF 2.1.0 log (Trivy, Grype, CodeQL, Semgrep, cargo-audit `--format sarif`).
    pub fn sarif(mut self, path: impl Into<PathBuf>) -> Self {
        self.gate.reports.push((Format::Sarif, path.into()));
        self
    }
    /// Reads the JSON report of `cargo audit --json`.
    pub fn cargo_audit(mut self, path: impl Into<PathBuf>) -> Self {
        self.gate.reports.push((Format::CargoAudit, path.into()));
        self
    }
    /// Reads accepted risks from this TOML file (see the [module docs](self)).
    pub fn accepted_risks(mut self, path: impl Into<PathBuf>) -> Self {
        self.gate.accepted_risks = Some(path.into());
        self
    }
    /// Findings at or above `threshold` block unless accepted (default [`Severity::High`]).
    pub fn threshold(mut self, threshold: Severity) -> Self {
        self.gate.threshold = threshold;
        self
    }
    /// The severity of cargo-audit's informational warnings (default [`Severity::Low`]; use
    /// [`Severity::Info`] to only record them, [`Severity::High`] to block on them).
    pub fn cargo_audit_warnings(mut self, severity: Severity) -> Self {
        self.gate.warnings = severity;
        self
    }
    /// How many blocking and accepted findings the evidence lists (default 25; the counts are
    /// always complete).
    pub fn max_listed(mut self, max: usize) -> Self {
        self.gate.max_listed = max;
        self
    }
    /// The gate, or [`GateError::Misconfigured`] when it has no name, reads no report, or may
    /// list no finding.
    pub fn build(self) -> Result<VulnGate, GateError> {
        let gate = self.gate;
        if gate.name.trim().is_empty() {
            return Err(GateError::Misconfigured(
                "the vulnerability gate needs a name".to_owned(),
            ));
        }
        if gate.reports.is_empty() {
            return Err(GateError::Misconfigured(format!(
                "vulnerability gate `{}` reads no report: add .sarif(path) or .cargo_audit(path)",
                gate.name
            )));
        }
        if gate.max_listed == 0 {
            return Err(GateError::Misconfigured(format!(
                "vulnerability gate `{}`: max_listed must be at least 1",
                gate.name
            )));
        }
        Ok(gate)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, GateError> {
    std::fs::read(path)
        .map_err(|e| invalid_input(path.display(), None, format!("cannot read: {e}")))
}

type Counts = [usize; 5];

/// Adds `key` to a JSON object (every value it is used on is one).
fn insert(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
}

fn counts_json(counts: &Counts) -> Value {
    let mut map = serde_json::Map::new();
    for sev in Severity::ALL {
        map.insert(
            sev.as_str().to_owned(),
            json!(counts.get(sev.slot()).copied().unwrap_or(0)),
        );
    }
    Value::Object(map)
}

fn bump(counts: &mut Counts, sev: Severity) {
    if let Some(c) = counts.get_mut(sev.slot()) {
        *c += 1;
    }
}

fn count(counts: &Counts, sev: Severity) -> usize {
    counts.get(sev.slot()).copied().unwrap_or(0)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// How the findings fared against the acceptances.
struct Assessment<'a> {
    blocking: Vec<(&'a Finding, Vec<&'a Acceptance>)>,
    accepted: Vec<(&'a Finding, &'a Acceptance)>,
    expired: Vec<(&'a Acceptance, usize)>,
    per_tool: BTreeMap<&'a str, Counts>,
    totals: Counts,
    accepted_counts: Counts,
}

fn assess<'a>(
    findings: &'a [Finding],
    acceptances: &'a [Acceptance],
    now: DateTime<Utc>,
    threshold: Severity,
) -> Assessment<'a> {
    let mut out = Assessment {
        blocking: Vec::new(),
        accepted: Vec::new(),
        expired: acceptances
            .iter()
            .filter(|a| now >= a.expires)
            .map(|a| (a, 0))
            .collect(),
        per_tool: BTreeMap::new(),
        totals: Counts::default(),
        accepted_counts: Counts::default(),
    };
    for finding in findings {
        bump(&mut out.totals, finding.severity);
        bump(
            out.per_tool.entry(finding.tool.as_str()).or_default(),
            finding.severity,
        );
        let covering: Vec<&Acceptance> = acceptances.iter().filter(|a| a.covers(finding)).collect();
        for (expired, matched) in &mut out.expired {
            if covering.iter().any(|a| a.entry == expired.entry) {
                *matched += 1;
            }
        }
        if let Some(valid) = covering.iter().find(|a| now < a.expires) {
            bump(&mut out.accepted_counts, finding.severity);
            out.accepted.push((finding, valid));
        } else if finding.severity >= threshold {
            out.blocking.push((finding, covering));
        }
    }
    out
}

impl VulnGate {
    fn summary(&self, a: &Assessment<'_>, reports: &[ScanReport]) -> String {
        let mut parts = Vec::new();
        for sev in Severity::ALL {
            let n = count(&a.totals, sev);
            if n == 0 && sev < Severity::Medium {
                continue;
            }
            let accepted = count(&a.accepted_counts, sev);
            parts.push(if accepted > 0 {
                format!("{n} {sev} ({accepted} accepted)")
            } else {
                format!("{n} {sev}")
            });
        }
        let mut tools: Vec<&str> = Vec::new();
        for tool in reports.iter().flat_map(|r| r.tools.iter()) {
            if !tools.contains(&tool.as_str()) {
                tools.push(tool);
            }
        }
        let found = format!(
            "found {} in {} ({})",
            parts.join(", "),
            plural(reports.len(), "report", "reports"),
            tools.join(", ")
        );
        if a.blocking.is_empty() {
            return format!(
                "no unaccepted finding at or above {}; {found}",
                self.threshold
            );
        }
        let mut items: Vec<String> = a
            .blocking
            .iter()
            .take(3)
            .map(|(f, expired)| {
                let mut item = format!("{} {} in {} ({}", f.id, f.severity, f.subject(), f.tool);
                if let Some(e) = expired.iter().max_by_key(|e| e.expires) {
                    item.push_str(&format!(
                        "; acceptance expired {}, owner {}",
                        e.expires_text(),
                        e.owner
                    ));
                }
                item.push(')');
                item
            })
            .collect();
        if a.blocking.len() > 3 {
            items.push(format!("and {} more", a.blocking.len() - 3));
        }
        format!(
            "{} at or above {} not accepted: {}; {found}",
            plural(a.blocking.len(), "finding", "findings"),
            self.threshold,
            items.join(", ")
        )
    }

    fn data(
        &self,
        a: &Assessment<'_>,
        reports: &[ScanReport],
        risks: Option<(&str, usize)>,
    ) -> Value {
        let listed = self.max_listed;
        let blocking: Vec<Value> = a
            .blocking
            .iter()
            .take(listed)
            .map(|(f, expired)| {
                let mut v = json!(f);
                if !expired.is_empty() {
                    insert(
                        &mut v,
                        "expired_acceptances",
                        Value::Array(expired.iter().map(|e| e.to_json()).collect()),
                    );
                }
                v
            })
            .collect();
        let accepted: Vec<Value> = a
            .accepted
            .iter()
            .take(listed)
            .map(|(f, acc)| {
                let mut v = json!(f);
                insert(&mut v, "acceptance", acc.to_json());
                v
            })
            .collect();
        let expired: Vec<Value> = a
            .expired
            .iter()
            .map(|(acc, matched)| {
                let mut v = acc.to_json();
                insert(&mut v, "matching_findings", json!(matched));
                v
            })
            .collect();
        let per_tool: serde_json::Map<String, Value> = a
            .per_tool
            .iter()
            .map(|(tool, counts)| ((*tool).to_owned(), counts_json(counts)))
            .collect();
        let report_list: Vec<Value> = reports
            .iter()
            .zip(&self.reports)
            .map(|(r, (format, _))| {
                json!({
                    "path": r.source,
                    "format": format.as_str(),
                    "tools": r.tools,
                    "findings": r.findings.len(),
                })
            })
            .collect();
        let suppressed = reports
            .iter()
            .flat_map(|r| &r.findings)
            .filter(|f| f.suppressed)
            .count();
        json!({
            "threshold": self.threshold,
            "reports": report_list,
            "accepted_risks": risks.map(|(path, entries)| json!({"path": path, "entries": entries})),
            "findings": reports.iter().map(|r| r.findings.len()).sum::<usize>(),
            "counts": per_tool,
            "totals": counts_json(&a.totals),
            "blocking_total": a.blocking.len(),
            "blocking": blocking,
            "accepted_total": a.accepted.len(),
            "accepted": accepted,
            "expired_acceptances": expired,
            "suppressed_in_reports": suppressed,
            "max_listed": listed,
        })
    }
}

#[async_trait]
impl Gate for VulnGate {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> GateKind {
        GateKind::Compliance
    }

    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let now = ctx.now();
        let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut reports = Vec::new();
        for (format, path) in &self.reports {
            let source = path.display().to_string();
            let bytes = read(path)?;
            reports.push(match format {
                Format::Sarif => parse_sarif(&source, &bytes)?,
                Format::CargoAudit => parse_cargo_audit(&source, &bytes, self.warnings)?,
            });
            inputs.push((source, bytes));
        }
        let mut acceptances = Vec::new();
        let mut risks = None;
        if let Some(path) = &self.accepted_risks {
            let source = path.display().to_string();
            let bytes = read(path)?;
            acceptances = parse_acceptances(&source, &bytes)?;
            inputs.push((source, bytes));
            risks = Some(acceptances.len());
        }
        let findings: Vec<Finding> = reports
            .iter()
            .flat_map(|r| r.findings.iter().cloned())
            .collect();
        let assessment = assess(&findings, &acceptances, now, self.threshold);
        let risks_source = self
            .accepted_risks
            .as_ref()
            .map(|p| p.display().to_string());
        let data = self.data(&assessment, &reports, risks_source.as_deref().zip(risks));
        let mut evidence =
            Evidence::new(self.name.clone(), now, self.summary(&assessment, &reports))
                .with_data(data)
                .with_fact(
                    "critical",
                    count(&assessment.totals, Severity::Critical).to_string(),
                )
                .with_fact(
                    "high",
                    count(&assessment.totals, Severity::High).to_string(),
                )
                .with_fact("blocking", assessment.blocking.len().to_string());
        for (name, bytes) in &inputs {
            evidence = evidence.with_attachment(name.clone(), bytes);
        }
        Ok(Verdict::pass_if(assessment.blocking.is_empty(), evidence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promotion_core::testing::GateProbe;
    use promotion_core::Digest;

    fn data(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/vuln")
            .join(rel)
    }

    fn bytes(rel: &str) -> Vec<u8> {
        std::fs::read(data(rel)).unwrap()
    }

    fn sarif(rel: &str) -> ScanReport {
        parse_sarif(rel, &bytes(rel)).unwrap()
    }

    fn audit(rel: &str) -> ScanReport {
        parse_cargo_audit(rel, &bytes(rel), Severity::Low).unwrap()
    }

    fn find<'a>(report: &'a ScanReport, id: &str) -> &'a Finding {
        report
            .findings
            .iter()
            .find(|f| f.id == id)
            .unwrap_or_else(|| panic!("no finding {id} in {report:#?}"))
    }

    fn run(gate: &VulnGate, probe: &GateProbe) -> Result<Verdict, GateError> {
        futures::executor::block_on(probe.evaluate(gate))
    }

    fn at(time: &str) -> GateProbe {
        GateProbe::new().at(time.parse().unwrap())
    }

    fn invalid_input<T: fmt::Debug>(result: Result<T, GateError>) -> (String, String) {
        match result {
            Err(GateError::InvalidInput { what, message }) => (what, message),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    fn path(rel: &str) -> String {
        data(rel).display().to_string()
    }

    fn ids(list: &Value) -> Vec<&str> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap())
            .collect()
    }

    // --- normalisation -------------------------------------------------------------------

    #[test]
    fn vuln_trivy_sarif_is_normalised() {
        let r = sarif("sarif/trivy-fs.sarif");
        assert_eq!(r.tools, ["Trivy"]);
        assert_eq!(r.findings.len(), 4);
        let f = find(&r, "CVE-2021-25900");
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.severity_basis, "security-severity 9.8");
        assert_eq!(f.tool, "Trivy");
        assert_eq!(f.location.as_deref(), Some("Cargo.lock: smallvec@0.6.13"));
        assert_eq!(
            f.title,
            "smallvec: Buffer overflow in SmallVec::insert_many"
        );
        assert_eq!(f.package, None, "SARIF carries no package");
        assert_eq!(find(&r, "CVE-2021-45710").severity, Severity::High);
        assert_eq!(find(&r, "CVE-2023-49092").severity, Severity::Medium);
        let ds002 = find(&r, "DS002");
        assert_eq!(ds002.severity, Severity::High);
        assert_eq!(ds002.location.as_deref(), Some("Dockerfile"));
    }

    #[test]
    fn vuln_codeql_rules_in_tool_extensions() {
        let r = sarif("sarif/codeql-javascript.sarif");
        assert_eq!(r.tools, ["CodeQL"]);
        let ssrf = find(&r, "js/request-forgery");
        assert_eq!(ssrf.severity, Severity::Critical);
        assert_eq!(ssrf.location.as_deref(), Some("src/routes/proxy.js:14"));
        assert_eq!(ssrf.title, "Server-side request forgery");
        // security-severity 7.5 wins over the rule's level `warning`.
        let rate = find(&r, "js/missing-rate-limiting");
        assert_eq!(rate.severity, Severity::High);
        assert_eq!(rate.severity_basis, "security-severity 7.5");
        // No score and no result level: the rule's default level decides.
        let unused = find(&r, "js/unused-local-variable");
        assert_eq!(unused.severity, Severity::Low);
        assert_eq!(unused.severity_basis, "rule default level note");
    }

    #[test]
    fn vuln_semgrep_levels_and_suppressions() {
        let r = sarif("sarif/semgrep-python.sarif");
        assert_eq!(r.tools, ["Semgrep OSS"]);
        assert_eq!(
            r.findings.len(),
            3,
            "a suppressed result is still a finding"
        );
        let shell: Vec<&Finding> = r
            .findings
            .iter()
            .filter(|f| f.id.ends_with("subprocess-shell-true"))
            .collect();
        assert_eq!(shell.len(), 2);
        assert!(shell.iter().all(
            |f| f.severity == Severity::High && f.severity_basis == "rule default level error"
        ));
        assert_eq!(shell.iter().filter(|f| f.suppressed).count(), 1);
        assert_eq!(
            find(
                &r,
                "python.flask.security.audit.debug-enabled.debug-enabled"
            )
            .severity,
            Severity::Medium
        );
    }

    #[test]
    fn vuln_grype_scores_on_rules_without_levels() {
        let r = sarif("sarif/grype-dir.sarif");
        assert_eq!(r.tools, ["grype"]);
        let f = find(&r, "GHSA-43w2-9j62-hq99-smallvec");
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.location.as_deref(), Some("/Cargo.lock:1"));
        assert_eq!(
            find(&r, "GHSA-c38w-74pg-36hr-rsa").severity,
            Severity::Medium
        );
    }

    #[test]
    fn vuln_zero_score_falls_back_to_level_and_absent_results_are_skipped() {
        let r = sarif("sarif/trivy-edge-cases.sarif");
        // The smallvec result is `absent` (fixed since the baseline): not a finding.
        assert_eq!(r.findings.len(), 1);
        let f = find(&r, "CVE-2024-24576");
        assert_eq!(f.severity, Severity::Low);
        assert_eq!(f.severity_basis, "level note");
    }

    #[test]
    fn vuln_cargo_audit_real_report() {
        let r = audit("cargo-audit/vulnerable.json");
        assert_eq!(r.tools, ["cargo-audit"]);
        let smallvec = find(&r, "RUSTSEC-2021-0003");
        assert_eq!(smallvec.severity, Severity::Critical);
        assert_eq!(smallvec.package.as_deref(), Some("smallvec"));
        assert_eq!(smallvec.version.as_deref(), Some("0.6.13"));
        assert_eq!(smallvec.subject(), "smallvec 0.6.13");
        assert!(smallvec.aliases.iter().any(|a| a == "CVE-2021-25900"));
        assert_eq!(
            smallvec.severity_basis,
            "CVSS 9.8 (CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H)"
        );
        assert_eq!(find(&r, "RUSTSEC-2020-0071").severity, Severity::Medium);
        assert_eq!(find(&r, "RUSTSEC-2023-0071").severity, Severity::Medium);
        let tokio = find(&r, "RUSTSEC-2021-0124");
        assert_eq!(tokio.severity, Severity::High);
        assert_eq!(
            tokio.severity_basis,
            "no CVSS in the advisory: treated as high"
        );
        let unmaintained = find(&r, "RUSTSEC-2020-0016");
        assert_eq!(unmaintained.severity, Severity::Low);
        assert_eq!(unmaintained.package.as_deref(), Some("net2"));
        assert_eq!(find(&r, "RUSTSEC-2023-0005").severity, Severity::Low);
        assert_eq!(r.findings.len(), 6);

        let info = parse_cargo_audit(
            "a.json",
            &bytes("cargo-audit/vulnerable.json"),
            Severity::Info,
        )
        .unwrap();
        assert_eq!(find(&info, "RUSTSEC-2020-0016").severity, Severity::Info);
        assert!(audit("cargo-audit/clean.json").findings.is_empty());
    }

    #[test]
    fn vuln_cvss_scores_match_cargo_audit_own_sarif() {
        // cargo-audit's SARIF output carries the score its `cvss` crate computed.
        let json: Value = serde_json::from_slice(&bytes("cargo-audit/vulnerable.json")).unwrap();
        let log: Value = serde_json::from_slice(&bytes("cargo-audit/vulnerable.sarif")).unwrap();
        let mut compared = 0;
        for vuln in json["vulnerabilities"]["list"].as_array().unwrap() {
            let id = vuln["advisory"]["id"].as_str().unwrap();
            let rule = log["runs"][0]["tool"]["driver"]["rules"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == id)
                .unwrap();
            match vuln["advisory"]["cvss"].as_str() {
                Some(vector) => {
                    let ours = cvss_v3_base_score(vector).unwrap().unwrap();
                    let theirs: f64 = rule["properties"]["security-severity"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    assert_eq!(ours, theirs, "{id} {vector}");
                    compared += 1;
                }
                None => assert!(rule["properties"].get("security-severity").is_none()),
            }
        }
        assert_eq!(compared, 3);
        // Both readings of the same run agree on every vulnerability's severity.
        let from_sarif = sarif("cargo-audit/vulnerable.sarif");
        for f in audit("cargo-audit/vulnerable.json")
            .findings
            .iter()
            .filter(|f| !f.severity_basis.starts_with("cargo-audit warning"))
        {
            assert_eq!(find(&from_sarif, &f.id).severity, f.severity, "{}", f.id);
        }
    }

    #[test]
    fn vuln_cvss_v3_known_vectors() {
        let known = [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 6.2),
            ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
            ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.1),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
            ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
            ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
            // Temporal metrics do not change the base score.
            (
                "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C",
                9.8,
            ),
        ];
        for (vector, score) in known {
            assert_eq!(cvss_v3_base_score(vector), Ok(Some(score)), "{vector}");
        }
        assert_eq!(
            cvss_v3_base_score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"),
            Ok(None)
        );
        for bad in [
            "CVSS:3.1/AV:N/AC:L",
            "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.2/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/garbage",
        ] {
            assert!(cvss_v3_base_score(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn vuln_severity_bands_and_names() {
        let bands = [
            (0.0, Severity::Info),
            (0.1, Severity::Low),
            (3.9, Severity::Low),
            (4.0, Severity::Medium),
            (6.9, Severity::Medium),
            (7.0, Severity::High),
            (8.9, Severity::High),
            (9.0, Severity::Critical),
            (10.0, Severity::Critical),
        ];
        for (score, sev) in bands {
            assert_eq!(Severity::from_cvss(score), Some(sev), "{score}");
        }
        assert_eq!(Severity::from_cvss(-0.1), None);
        assert_eq!(Severity::from_cvss(f64::NAN), None);
        assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
        assert!("severe".parse::<Severity>().is_err());
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Info);
        assert_eq!(serde_json::to_value(Severity::Medium).unwrap(), "medium");
    }

    // --- the gate -------------------------------------------------------------------------

    #[test]
    fn vuln_clean_reports_pass() {
        let gate = VulnGate::builder()
            .sarif(data("sarif/trivy-clean.sarif"))
            .cargo_audit(data("cargo-audit/clean.json"))
            .build()
            .unwrap();
        let verdict = run(&gate, &GateProbe::new()).unwrap();
        let Verdict::Pass(ev) = verdict else {
            panic!("expected a pass: {verdict:?}")
        };
        assert_eq!(
            ev.summary,
            "no unaccepted finding at or above high; found 0 critical, 0 high, 0 medium in 2 \
             reports (Trivy, cargo-audit)"
        );
        assert_eq!(ev.facts["critical"], "0");
        assert_eq!(ev.facts["high"], "0");
        assert_eq!(ev.producer, "vulnerabilities");
        let names: Vec<&str> = ev.attachments.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                path("sarif/trivy-clean.sarif"),
                path("cargo-audit/clean.json")
            ]
        );
        assert_eq!(
            ev.attachments[1].digest,
            Digest::of(&bytes("cargo-audit/clean.json"))
        );
    }

    #[test]
    fn vuln_high_finding_fails() {
        let gate = VulnGate::builder()
            .sarif(data("sarif/trivy-fs.sarif"))
            .build()
            .unwrap();
        let verdict = run(&gate, &GateProbe::new()).unwrap();
        let Verdict::Fail(ev) = verdict else {
            panic!("expected a fail: {verdict:?}")
        };
        assert_eq!(
            ev.summary,
            "3 findings at or above high not accepted: CVE-2021-25900 critical in Cargo.lock: \
             smallvec@0.6.13 (Trivy), CVE-2021-45710 high in Cargo.lock: tokio@1.13.0 (Trivy), \
             DS002 high in Dockerfile (Trivy); found 1 critical, 2 high, 1 medium in 1 report \
             (Trivy)"
        );
        assert_eq!(ev.facts["critical"], "1");
        assert_eq!(ev.facts["high"], "2");
        assert_eq!(ev.facts["blocking"], "3");
        assert_eq!(ev.data["blocking_total"], 3);
        assert_eq!(
            ids(&ev.data["blocking"]),
            ["CVE-2021-25900", "CVE-2021-45710", "DS002"]
        );
        assert_eq!(ev.data["threshold"], "high");
        assert_eq!(ev.data["counts"]["Trivy"]["medium"], 1);
        assert_eq!(ev.attachments.len(), 1);
        assert_eq!(
            ev.attachments[0].digest,
            Digest::of(&bytes("sarif/trivy-fs.sarif"))
        );
    }

    fn accepted_gate() -> VulnGate {
        VulnGate::builder()
            .sarif(data("sarif/trivy-fs.sarif"))
            .cargo_audit(data("cargo-audit/vulnerable.json"))
            .accepted_risks(data("accept/accepted.toml"))
            .build()
            .unwrap()
    }

    #[test]
    fn vuln_accepted_high_findings_pass() {
        let verdict = run(&accepted_gate(), &GateProbe::new()).unwrap();
        let Verdict::Pass(ev) = verdict else {
            panic!("expected a pass: {verdict:?}")
        };
        assert_eq!(
            ev.summary,
            "no unaccepted finding at or above high; found 2 critical (2 accepted), 3 high (3 \
             accepted), 3 medium, 2 low in 2 reports (Trivy, cargo-audit)"
        );
        assert_eq!(ev.data["accepted_total"], 5);
        let smallvec = ev.data["accepted"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == "RUSTSEC-2021-0003")
            .unwrap();
        // Accepted through its alias CVE-2021-25900.
        assert_eq!(smallvec["acceptance"]["id"], "CVE-2021-25900");
        assert_eq!(smallvec["acceptance"]["owner"], "dana@example.com");
        assert_eq!(smallvec["acceptance"]["expires"], "2027-01-31T00:00:00Z");
        assert_eq!(smallvec["acceptance"]["entry"], 1);
        assert_eq!(ev.data["expired_acceptances"], json!([]));
        // Accepted findings still count in the facts.
        assert_eq!(ev.facts["critical"], "2");
        assert_eq!(ev.facts["blocking"], "0");
        let names: Vec<&str> = ev.attachments.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                path("sarif/trivy-fs.sarif"),
                path("cargo-audit/vulnerable.json"),
                path("accept/accepted.toml")
            ]
        );
        assert_eq!(
            ev.attachments[2].digest,
            Digest::of(&bytes("accept/accepted.toml"))
        );
        assert_eq!(ev.data["accepted_risks"]["entries"], 4);
    }

    #[test]
    fn vuln_acceptance_expires_on_the_context_clock() {
        let gate = accepted_gate();
        // One second before expiry the acceptances hold ...
        let probe = at("2027-01-30T23:59:59Z");
        assert!(matches!(run(&gate, &probe), Ok(Verdict::Pass(_))));
        // ... and once the clock reaches the expiry they waive nothing.
        probe.clock().advance(std::time::Duration::from_secs(1));
        let verdict = run(&gate, &probe).unwrap();
        let Verdict::Fail(ev) = verdict else {
            panic!("expected a fail: {verdict:?}")
        };
        assert_eq!(ev.data["blocking_total"], 5);
        assert!(
            ev.summary.starts_with(
                "5 findings at or above high not accepted: CVE-2021-25900 critical in Cargo.lock: \
                 smallvec@0.6.13 (Trivy; acceptance expired 2027-01-31T00:00:00Z, owner \
                 dana@example.com)"
            ),
            "{}",
            ev.summary
        );
        let expired = ev.data["expired_acceptances"].as_array().unwrap();
        assert_eq!(expired.len(), 4);
        assert_eq!(expired[0]["id"], "CVE-2021-25900");
        assert_eq!(expired[0]["matching_findings"], 2);
        assert_eq!(expired[3]["owner"], "lee@example.com");
        let first = &ev.data["blocking"][0];
        assert_eq!(first["expired_acceptances"][0]["owner"], "dana@example.com");
    }

    #[test]
    fn vuln_one_expired_acceptance_fails_the_gate() {
        let gate = VulnGate::builder()
            .sarif(data("sarif/trivy-fs.sarif"))
            .accepted_risks(data("accept/partly-expired.toml"))
            .build()
            .unwrap();
        let verdict = run(&gate, &GateProbe::new()).unwrap();
        let Verdict::Fail(ev) = verdict else {
            panic!("expected a fail: {verdict:?}")
        };
        assert_eq!(ids(&ev.data["blocking"]), ["CVE-2021-45710"]);
        assert!(
            ev.summary.starts_with(
                "1 finding at or above high not accepted: CVE-2021-45710 high in Cargo.lock: \
                 tokio@1.13.0 (Trivy; acceptance expired 2026-10-31T00:00:00Z, owner \
                 sam@example.com)"
            ),
            "{}",
            ev.summary
        );
        let expired = ev.data["expired_acceptances"].as_array().unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0]["owner"], "sam@example.com");
        assert_eq!(expired[0]["entry"], 2);
        assert_eq!(expired[0]["matching_findings"], 1);
        assert_eq!(ev.data["accepted_total"], 2);
    }

    #[test]
    fn vuln_below_threshold_findings_pass() {
        // Only a low finding.
        let gate = VulnGate::builder()
            .sarif(data("sarif/trivy-edge-cases.sarif"))
            .build()
            .unwrap();
        let verdict = run(&gate, &GateProbe::new()).unwrap();
        assert!(matches!(verdict, Verdict::Pass(_)), "{verdict:?}");
        assert_eq!(verdict.evidence().data["totals"]["low"], 1);
        // High and medium findings under a critical threshold.
        let gate = VulnGate::builder()
            .sarif(data("sarif/semgrep-python.sarif"))
            .threshold(Severity::Critical)
            .build()
            .unwrap();
        let verdict = run(&gate, &GateProbe::new()).unwrap();
        assert!(matches!(verdict, Verdict::Pass(_)), "{verdict:?}");
        assert_eq!(verdict.evidence().data["suppressed_in_reports"], 1);
        assert_eq!(verdict.evidence().facts["high"], "2");
    }

    #[test]
    fn vuln_lower_threshold_blocks_medium() {
        let gate = VulnGate::builder()
            .sarif(data("sarif/trivy-fs.sarif"))
            .accepted_risks(data("accept/accepted.toml"))
            .threshold(Severity::Medium)
            .build()
            .unwrap();
        let verdict = run(&gate, &GateProbe::new()).unwrap();
        assert!(matches!(verdict, Verdict::Fail(_)), "{verdict:?}");
        assert_eq!(
            ids(&verdict.evidence().data["blocking"]),
            ["CVE-2023-49092"]
        );
        assert_eq!(verdict.evidence().data["threshold"], "medium");
    }

    #[test]
    fn vuln_package_scoped_acceptance_covers_only_that_package() {
        let gate = VulnGate::builder()
            .cargo_audit(data("cargo-audit/vulnerable.json"))
            .accepted_risks(data("accept/wrong-package.toml"))
            .build()
            .unwrap();
        let verdict = run(&gate, &GateProbe::new()).unwrap();
        assert!(matches!(verdict, Verdict::Fail(_)), "{verdict:?}");
        let ev = verdict.evidence();
        assert_eq!(ids(&ev.data["blocking"]), ["RUSTSEC-2021-0124"]);
        assert_eq!(ids(&ev.data["accepted"]), ["RUSTSEC-2021-0003"]);
    }

    #[test]
    fn vuln_cargo_audit_warnings_can_be_made_to_block() {
        let gate = accepted_gate();
        assert!(matches!(
            run(&gate, &GateProbe::new()),
            Ok(Verdict::Pass(_))
        ));
        let gate = VulnGate::builder()
            .cargo_audit(data("cargo-audit/vulnerable.json"))
            .accepted_risks(data("accept/accepted.toml"))
            .cargo_audit_warnings(Severity::High)
            .build()
            .unwrap();
        let verdict = run(&gate, &GateProbe::new()).unwrap();
        assert!(matches!(verdict, Verdict::Fail(_)), "{verdict:?}");
        let mut blocking = ids(&verdict.evidence().data["blocking"]);
        blocking.sort_unstable();
        assert_eq!(blocking, ["RUSTSEC-2020-0016", "RUSTSEC-2023-0005"]);
    }

    #[test]
    fn vuln_reports_combine_with_counts_per_tool_and_bounded_lists() {
        let gate = VulnGate::builder()
            .name("supply-chain")
            .sarif(data("sarif/trivy-fs.sarif"))
            .sarif(data("sarif/codeql-javascript.sarif"))
            .cargo_audit(data("cargo-audit/vulnerable.json"))
            .max_listed(2)
            .build()
            .unwrap();
        let verdict = run(&gate, &GateProbe::new()).unwrap();
        let ev = verdict.evidence();
        assert!(matches!(verdict, Verdict::Fail(_)));
        assert_eq!(ev.producer, "supply-chain");
        assert_eq!(ev.attachments.len(), 3);
        let counts = &ev.data["counts"];
        assert_eq!(counts["Trivy"]["critical"], 1);
        assert_eq!(counts["CodeQL"]["critical"], 1);
        assert_eq!(counts["CodeQL"]["high"], 1);
        assert_eq!(counts["CodeQL"]["low"], 1);
        assert_eq!(counts["cargo-audit"]["critical"], 1);
        assert_eq!(counts["cargo-audit"]["low"], 2);
        assert_eq!(ev.data["totals"]["critical"], 3);
        assert_eq!(ev.data["findings"], 13);
        // 2 Trivy high+, + DS002, 2 CodeQL, 2 cargo-audit = 7, but only 2 listed.
        assert_eq!(ev.data["blocking_total"], 7);
        assert_eq!(ev.data["blocking"].as_array().unwrap().len(), 2);
        assert!(ev.summary.contains("and 4 more"), "{}", ev.summary);
        assert_eq!(ev.data["reports"][1]["tools"], json!(["CodeQL"]));
        assert_eq!(ev.data["reports"][2]["format"], "cargo-audit");
    }

    #[test]
    fn vuln_builder_validates() {
        assert!(matches!(
            VulnGate::builder().build(),
            Err(GateError::Misconfigured(m)) if m.contains("reads no report")
        ));
        assert!(matches!(
            VulnGate::builder().name(" ").sarif("x.sarif").build(),
            Err(GateError::Misconfigured(_))
        ));
        assert!(matches!(
            VulnGate::builder().sarif("x.sarif").max_listed(0).build(),
            Err(GateError::Misconfigured(_))
        ));
        let gate = VulnGate::builder()
            .name("vuln-scan")
            .sarif("x.sarif")
            .build()
            .unwrap();
        assert_eq!(gate.name(), "vuln-scan");
        assert_eq!(gate.kind(), GateKind::Compliance);
        assert_eq!(gate.threshold(), Severity::High);
    }

    // --- malformed input ------------------------------------------------------------------

    fn sarif_error(rel: &str) -> (String, String) {
        let gate = VulnGate::builder().sarif(data(rel)).build().unwrap();
        invalid_input(run(&gate, &GateProbe::new()))
    }

    #[test]
    fn vuln_missing_report_is_invalid_input() {
        let (what, message) = sarif_error("sarif/no-such-report.sarif");
        assert_eq!(what, path("sarif/no-such-report.sarif"));
        assert!(message.starts_with("cannot read"), "{message}");
    }

    #[test]
    fn vuln_sarif_not_json() {
        let (what, message) = sarif_error("sarif/broken/not-json.sarif");
        assert_eq!(
            what,
            format!("{} line 1", path("sarif/broken/not-json.sarif"))
        );
        assert!(message.starts_with("not valid JSON"), "{message}");
    }

    #[test]
    fn vuln_sarif_truncated_names_the_line() {
        let (what, message) = sarif_error("sarif/broken/truncated.sarif");
        assert!(
            what.starts_with(&path("sarif/broken/truncated.sarif")),
            "{what}"
        );
        // The file ends mid-document: the error is on its last line.
        let text = String::from_utf8(bytes("sarif/broken/truncated.sarif")).unwrap();
        let last = text.lines().count();
        assert!(what.ends_with(&format!(" line {last}")), "{what}");
        assert!(message.contains("EOF"), "{message}");
    }

    #[test]
    fn vuln_sarif_wrong_version() {
        let (what, message) = sarif_error("sarif/broken/wrong-version.sarif");
        assert_eq!(what, path("sarif/broken/wrong-version.sarif"));
        assert_eq!(
            message,
            "SARIF version \"2.0.0\" is not supported: this gate reads SARIF 2.1.0"
        );
    }

    #[test]
    fn vuln_sarif_missing_runs() {
        let (what, message) = sarif_error("sarif/broken/missing-runs.sarif");
        assert_eq!(what, path("sarif/broken/missing-runs.sarif"));
        assert!(message.starts_with("no `runs`"), "{message}");
        let (_, message) = invalid_input(parse_sarif(
            "empty.sarif",
            br#"{"version": "2.1.0", "runs": []}"#,
        ));
        assert!(message.starts_with("`runs` is empty"), "{message}");
        let (_, message) = invalid_input(parse_sarif("plain.json", br#"{"runs": []}"#));
        assert!(message.starts_with("no `version`"), "{message}");
    }

    #[test]
    fn vuln_sarif_run_defects() {
        let (_, message) = sarif_error("sarif/broken/missing-results.sarif");
        assert_eq!(
            message,
            "runs[0] has no `results`: Trivy did not report an analysis"
        );
        let (_, message) = sarif_error("sarif/broken/failed-invocation.sarif");
        assert_eq!(
            message,
            "runs[0]: Semgrep OSS reports that its run failed (invocations[0].executionSuccessful \
             is false)"
        );
        let (_, message) = sarif_error("sarif/broken/bad-security-severity.sarif");
        assert_eq!(
            message,
            "runs[0].results[1] (CVE-2021-45710): security-severity `HIGH` is not a number"
        );
        let (_, message) = sarif_error("sarif/broken/bad-rule-index.sarif");
        assert_eq!(
            message,
            "runs[0].results[0]: rule index 7 is out of range: codeql/javascript-queries \
             declares 3 rule(s)"
        );
    }

    #[test]
    fn vuln_sarif_unknown_level_names_the_line() {
        let log =
            b"{\"version\": \"2.1.0\", \"runs\": [{\"tool\": {\"driver\": {\"name\": \"x\"}},\n\
                    \"results\": [{\"ruleId\": \"r\", \"level\": \"fatal\"}]}]}";
        let (what, message) = invalid_input(parse_sarif("x.sarif", log));
        assert_eq!(what, "x.sarif line 2");
        assert!(message.contains("unknown variant `fatal`"), "{message}");
    }

    fn audit_error(rel: &str) -> (String, String) {
        let gate = VulnGate::builder().cargo_audit(data(rel)).build().unwrap();
        invalid_input(run(&gate, &GateProbe::new()))
    }

    #[test]
    fn vuln_cargo_audit_malformed() {
        let (what, message) = audit_error("cargo-audit/broken/truncated.json");
        assert!(
            what.starts_with(&path("cargo-audit/broken/truncated.json")),
            "{what}"
        );
        assert!(what.contains(" line "), "{what}");
        assert!(message.starts_with("not valid JSON"), "{message}");

        // A SARIF log handed over as a cargo-audit report.
        let gate = VulnGate::builder()
            .cargo_audit(data("sarif/trivy-fs.sarif"))
            .build()
            .unwrap();
        let (what, message) = invalid_input(run(&gate, &GateProbe::new()));
        assert!(what.starts_with(&path("sarif/trivy-fs.sarif")), "{what}");
        assert!(
            message.contains("missing field `vulnerabilities`"),
            "{message}"
        );

        let (what, message) = audit_error("cargo-audit/broken/count-mismatch.json");
        assert_eq!(what, path("cargo-audit/broken/count-mismatch.json"));
        assert_eq!(
            message,
            "inconsistent report: vulnerabilities.found is true and count is 4, but the list \
             holds 3 entries"
        );

        let (_, message) = audit_error("cargo-audit/broken/bad-cvss.json");
        assert!(
            message.starts_with("vulnerabilities.list[1] (RUSTSEC-2021-0003): CVSS vector"),
            "{message}"
        );

        let (what, message) = audit_error("cargo-audit/broken/list-not-array.json");
        assert_eq!(
            what,
            format!("{} line 24", path("cargo-audit/broken/list-not-array.json"))
        );
        assert!(
            message.contains("invalid type: map, expected a sequence"),
            "{message}"
        );
    }

    fn acceptance_error(rel: &str) -> (String, String) {
        let gate = VulnGate::builder()
            .sarif(data("sarif/trivy-fs.sarif"))
            .accepted_risks(data(rel))
            .build()
            .unwrap();
        invalid_input(run(&gate, &GateProbe::new()))
    }

    #[test]
    fn vuln_acceptance_missing_owner_names_the_entry() {
        let (what, message) = acceptance_error("accept/broken/missing-owner.toml");
        assert_eq!(
            what,
            format!("{} line 7", path("accept/broken/missing-owner.toml"))
        );
        assert_eq!(
            message,
            "accepted risk #2 (id `CVE-2021-45710`): missing `owner`; every accepted risk \
             needs an id, a justification, an owner and an expiry date"
        );
    }

    #[test]
    fn vuln_acceptance_defects() {
        let cases = [
            (
                "missing-expiry",
                1,
                "accepted risk #1 (id `DS002`): missing `expires`",
            ),
            (
                "blank-justification",
                1,
                "accepted risk #1 (id `DS002`): `justification` is empty",
            ),
            (
                "bad-date",
                1,
                "accepted risk #1 (id `DS002`): `expires` = end of next quarter is neither",
            ),
            (
                "local-time",
                1,
                "accepted risk #1 (id `DS002`): `expires` = 2027-01-31T18:00:00 is neither",
            ),
            (
                "unknown-field",
                4,
                "not a valid accepted-risk file: unknown field `ownr`",
            ),
            ("not-toml", 1, "not a valid accepted-risk file"),
        ];
        for (file, line, start) in cases {
            let rel = format!("accept/broken/{file}.toml");
            let (what, message) = acceptance_error(&rel);
            assert_eq!(
                what,
                format!("{} line {line}", path(&rel)),
                "{file}: {message}"
            );
            assert!(message.starts_with(start), "{file}: {message}");
        }
    }
}
