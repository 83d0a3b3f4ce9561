//! `cargo audit --json` reports read into a [`ScanReport`]: each vulnerability as a
//! [`Finding`], its severity from the advisory's CVSS v3 vector, and the report's own counts
//! checked against the list so that a truncated report is not read as a clean one.

use std::collections::BTreeMap;

use promotion_core::GateError;
use serde::Deserialize;

use crate::input::invalid_input;

use super::{first_line, json_error, json_object, Finding, ScanReport, Severity};

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
pub(super) fn cvss_v3_base_score(vector: &str) -> Result<Option<f64>, String> {
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
