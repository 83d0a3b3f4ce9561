//! SARIF 2.1.0 logs (Trivy, Grype, CodeQL, Semgrep…) read into a [`ScanReport`]: which tool
//! ran, whether its run succeeded, and each result as a [`Finding`] with the severity its rule or
//! result declares (a `security-severity` score first, then the SARIF level).

use promotion_core::GateError;
use serde::Deserialize;
use serde_json::Value;

use crate::input::invalid_input;

use super::{first_line, json_error, json_object, Finding, ScanReport, Severity};

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
pub(super) struct Rule {
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
