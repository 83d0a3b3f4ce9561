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

use std::fmt;
use std::str::FromStr;

use promotion_core::GateError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::input::invalid_input;

mod accept;
mod cargo_audit;
mod gate;
mod sarif;

use accept::{parse_acceptances, Acceptance};
#[cfg(test)]
use cargo_audit::cvss_v3_base_score;
pub use cargo_audit::parse_cargo_audit;
pub use gate::{VulnGate, VulnGateBuilder};
pub use sarif::parse_sarif;

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
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScanReport {
    /// The file (as named in errors and evidence).
    pub source: String,
    /// The tools that produced it, in order of appearance.
    pub tools: Vec<String>,
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

#[cfg(test)]
mod tests;
