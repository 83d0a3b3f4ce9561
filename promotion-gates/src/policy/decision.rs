//! Decisions in Conftest's conventions: `deny`/`violation` rules fail, `warn` rules warn, and
//! each message (a string or an object with `msg`) becomes a finding in the evidence.

use std::collections::BTreeMap;

use promotion_core::Digest;
use regorus::Value;
use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::{LoadedFile, SUMMARY_MESSAGES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Severity {
    Failure,
    Warning,
}

/// Conftest's rule names: `^(deny|violation)(_[a-zA-Z0-9]+)*$` fail, `^warn(_[a-zA-Z0-9]+)*$`
/// warn.
pub(super) fn classify(rule: &str) -> Option<Severity> {
    let (severity, rest) = if let Some(rest) = rule.strip_prefix("deny") {
        (Severity::Failure, rest)
    } else if let Some(rest) = rule.strip_prefix("violation") {
        (Severity::Failure, rest)
    } else if let Some(rest) = rule.strip_prefix("warn") {
        (Severity::Warning, rest)
    } else {
        return None;
    };
    if rest.is_empty() {
        return Some(severity);
    }
    let suffix = rest.strip_prefix('_')?;
    suffix
        .split('_')
        .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
        .then_some(severity)
}

/// The structured part of the evidence.
#[derive(Serialize)]
pub(super) struct EvidenceData<'a> {
    pub(super) package: &'a str,
    pub(super) rego_version: &'static str,
    pub(super) policy_set: &'a Digest,
    pub(super) policies: &'a [LoadedFile],
    pub(super) data_documents: &'a [LoadedFile],
    pub(super) input_digest: Digest,
    pub(super) rules: &'a BTreeMap<String, usize>,
    pub(super) failures: &'a [Finding],
    pub(super) warnings: &'a [Finding],
}

#[derive(Debug, Default)]
pub(super) struct Decision {
    /// Decision rules found, with how many messages each yielded.
    pub(super) rules: BTreeMap<String, usize>,
    pub(super) failures: Vec<Finding>,
    pub(super) warnings: Vec<Finding>,
}

/// One message of a decision rule.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Finding {
    rule: String,
    msg: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    metadata: Map<String, Json>,
}

pub(super) fn finding(rule: &str, item: &Value) -> Result<Finding, String> {
    match item {
        Value::String(msg) => Ok(Finding {
            rule: rule.to_owned(),
            msg: msg.to_string(),
            metadata: Map::new(),
        }),
        Value::Object(fields) => {
            let msg = match fields.get(&Value::from("msg")) {
                Some(Value::String(msg)) => msg.to_string(),
                Some(other) => {
                    return Err(format!(
                        "a result whose `msg` is {}, not a string: {item}",
                        value_kind(other)
                    ))
                }
                None => {
                    return Err(format!(
                        "a result without the `msg` field Conftest requires: {item}"
                    ))
                }
            };
            let mut metadata = match serde_json::to_value(item) {
                Ok(Json::Object(map)) => map,
                _ => Map::new(),
            };
            metadata.remove("msg");
            Ok(Finding {
                rule: rule.to_owned(),
                msg,
                metadata,
            })
        }
        other => Err(format!(
            "{}, which is neither a message string nor an object with a `msg`: {other}",
            value_kind(other)
        )),
    }
}

pub(super) fn quote(findings: &[Finding]) -> String {
    let shown: Vec<&str> = findings
        .iter()
        .take(SUMMARY_MESSAGES)
        .map(|f| {
            if f.msg.is_empty() {
                "(empty message)"
            } else {
                f.msg.as_str()
            }
        })
        .collect();
    let mut out = shown.join("; ");
    let more = findings.len().saturating_sub(SUMMARY_MESSAGES);
    if more > 0 {
        out.push_str(&format!(" (and {more} more)"));
    }
    out
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub(super) fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Set(_) => "a set",
        Value::Object(_) => "an object",
        Value::Undefined => "undefined",
    }
}

pub(super) fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}
