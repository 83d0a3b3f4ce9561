//! The [`VulnGate`] itself: its builder, the reading of every report, and the assessment that
//! counts findings by severity against the thresholds, setting aside accepted risks until they
//! expire.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use promotion_core::{Evidence, Gate, GateContext, GateError, GateKind, Verdict};
use serde_json::{json, Value};

use crate::input::invalid_input;

use super::{
    parse_acceptances, parse_cargo_audit, parse_sarif, Acceptance, Finding, ScanReport, Severity,
};

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
    /// Reads accepted risks from this TOML file (see the [module docs](super)).
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

pub(super) fn read(path: &Path) -> Result<Vec<u8>, GateError> {
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

pub(super) fn count(counts: &Counts, sev: Severity) -> usize {
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
