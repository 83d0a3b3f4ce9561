//! Accepted risks: a TOML file of findings the team has chosen to live with, each with an id,
//! a justification, an owner and an expiry date. An entry missing one of them, or with an expiry
//! that is not a date, is an error naming the file, the line and the entry.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use promotion_core::GateError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::input::{invalid_input, line_of};

use super::Finding;

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
pub(super) struct Acceptance {
    pub(super) entry: usize,
    line: usize,
    id: String,
    package: Option<String>,
    justification: String,
    pub(super) owner: String,
    pub(super) expires: DateTime<Utc>,
}

impl Acceptance {
    pub(super) fn covers(&self, finding: &Finding) -> bool {
        finding.ids().any(|id| id.eq_ignore_ascii_case(&self.id))
            && self
                .package
                .as_deref()
                .is_none_or(|p| finding.package.as_deref() == Some(p))
    }
    pub(super) fn expires_text(&self) -> String {
        self.expires.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
    pub(super) fn to_json(&self) -> Value {
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

pub(super) fn parse_acceptances(source: &str, bytes: &[u8]) -> Result<Vec<Acceptance>, GateError> {
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
