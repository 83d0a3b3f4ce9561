//! Decision statements: what a person signs when they approve, reject, override, judge, start,
//! abort or roll back.
//!
//! A [`Statement`] binds the release, the stage, the decision (with the gate and the verdict
//! where they apply), the evidence digest the person saw, the pipeline version, the roster
//! digest, the comment and the time. It has exactly one byte encoding,
//! [`Statement::to_bytes`]: canonical JSON as [`promotion_core::canonical_json`] writes it —
//! object keys sorted by their UTF-8 bytes, no whitespace, strings escaped by JSON's rules
//! (`"`, `\`, control characters), everything else as UTF-8 — with a `type` field naming this
//! format and version. JSON was chosen over a line format because its string escaping already
//! makes any comment unambiguous (newlines, quotes, a line that looks like a field, bidi
//! characters) and because an auditor can read the signed file with any JSON tool; the time is
//! an RFC 3339 UTC string with the shortest of 0, 3, 6 or 9 fractional digits, and there are
//! no floating-point numbers, so nothing depends on number formatting.
//! [`Statement::from_bytes`] accepts only bytes that re-encode to themselves, so two different
//! byte strings never pass as the same statement.
//!
//! ```
//! use promotion_identity::{Decision, Statement};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let statement = Statement {
//!     release: "sha256:1111111111111111111111111111111111111111111111111111111111111111".parse()?,
//!     stage: "production".parse()?,
//!     decision: Decision::Approve,
//!     evidence: "sha256:2222222222222222222222222222222222222222222222222222222222222222".parse()?,
//!     pipeline_version: "v7".into(),
//!     roster: "sha256:3333333333333333333333333333333333333333333333333333333333333333".parse()?,
//!     comment: "dashboards green,\n\"canary\" fine".into(),
//!     time: "2026-12-07T22:00:00Z".parse()?,
//! };
//! let bytes = statement.to_bytes()?;
//! assert!(bytes.starts_with(br#"{"comment":"dashboards green,\n\"canary\" fine","decision":{"action":"approve"}"#));
//! assert_eq!(Statement::from_bytes(&bytes)?, statement);
//! # Ok(()) }
//! ```

use chrono::{DateTime, SecondsFormat, Utc};
use promotion_core::{Digest, GateName, ReleaseId, StageName};
use serde::{Deserialize, Serialize};

/// The `type` every statement carries, so a signature over one can never be taken for a
/// signature over another kind of document, or another version of this one.
pub const STATEMENT_TYPE: &str = "https://promotion.dev/decision/v1";

/// What the person decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Decision {
    /// Start the release's promotion into the stage.
    Start,
    /// Approve the stage.
    Approve,
    /// Reject the stage.
    Reject,
    /// Override a failing gate (break glass).
    Override {
        /// The gate overridden.
        gate: GateName,
    },
    /// Judge an inconclusive gate as passed or failed.
    Judge {
        /// The gate judged.
        gate: GateName,
        /// `true` for pass, `false` for fail.
        pass: bool,
    },
    /// Abort the stage.
    Abort,
    /// Roll the stage back.
    RollBack,
}

/// One decision, as signed. See the [module docs](self) for the encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    #[allow(missing_docs)] // the fields are named for what they hold
    pub release: ReleaseId,
    #[allow(missing_docs)]
    pub stage: StageName,
    #[allow(missing_docs)]
    pub decision: Decision,
    /// Digest of the evidence the person was shown when deciding (gate results, readiness).
    pub evidence: Digest,
    /// Version of the pipeline definition in force.
    pub pipeline_version: String,
    /// [`Roster::digest`](crate::Roster::digest) of the roster in force.
    pub roster: Digest,
    /// The person's comment or justification, verbatim.
    pub comment: String,
    /// When the person decided, as their tool saw it.
    pub time: DateTime<Utc>,
}

/// The statement as it is encoded: `time` as a fixed-format string, plus `type`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(rename = "type")]
    kind: String,
    release: ReleaseId,
    stage: StageName,
    decision: Decision,
    evidence: Digest,
    pipeline_version: String,
    roster: Digest,
    comment: String,
    time: String,
}

/// Why bytes are not a statement.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    /// Not JSON of the statement's shape (the message says which field).
    #[error("not a decision statement: {0}")]
    Shape(#[from] serde_json::Error),
    /// The `type` is not [`STATEMENT_TYPE`].
    #[error("statement type `{0}` is not {STATEMENT_TYPE}")]
    Type(String),
    /// The `time` is not an RFC 3339 UTC time.
    #[error("statement time `{0}` is not an RFC 3339 UTC time")]
    Time(String),
    /// The bytes decode, but are not the canonical encoding (key order, whitespace, escapes or
    /// time format differ), so they are refused: one statement, one byte string.
    #[error(
        "the statement is not in canonical form (sorted keys, no whitespace, RFC 3339 UTC time)"
    )]
    NotCanonical,
}

impl Statement {
    /// The canonical bytes, the ones that are signed.
    pub fn to_bytes(&self) -> Result<Vec<u8>, StatementError> {
        let wire = Wire {
            kind: STATEMENT_TYPE.to_owned(),
            release: self.release,
            stage: self.stage.clone(),
            decision: self.decision.clone(),
            evidence: self.evidence,
            pipeline_version: self.pipeline_version.clone(),
            roster: self.roster,
            comment: self.comment.clone(),
            time: self.time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        };
        Ok(promotion_core::canonical_json(&wire)?)
    }

    /// Decodes canonical bytes; anything that does not re-encode to exactly `bytes` is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Statement, StatementError> {
        let wire: Wire = serde_json::from_slice(bytes)?;
        if wire.kind != STATEMENT_TYPE {
            return Err(StatementError::Type(wire.kind));
        }
        let time = DateTime::parse_from_rfc3339(&wire.time)
            .map_err(|_| StatementError::Time(wire.time.clone()))?
            .with_timezone(&Utc);
        let statement = Statement {
            release: wire.release,
            stage: wire.stage,
            decision: wire.decision,
            evidence: wire.evidence,
            pipeline_version: wire.pipeline_version,
            roster: wire.roster,
            comment: wire.comment,
            time,
        };
        if statement.to_bytes()? != bytes {
            return Err(StatementError::NotCanonical);
        }
        Ok(statement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(comment: &str) -> Statement {
        Statement {
            release: format!("sha256:{}", "1a".repeat(32)).parse().unwrap(),
            stage: "production".parse().unwrap(),
            decision: Decision::Override {
                gate: "error-budget".parse().unwrap(),
            },
            evidence: format!("sha256:{}", "2b".repeat(32)).parse().unwrap(),
            pipeline_version: "v3".into(),
            roster: format!("sha256:{}", "3c".repeat(32)).parse().unwrap(),
            comment: comment.into(),
            time: "2026-12-07T22:00:00.5Z".parse().unwrap(),
        }
    }

    #[test]
    fn the_encoding_is_fixed_byte_for_byte() {
        let bytes = statement("incident 4711").to_bytes().unwrap();
        let expected = format!(
            concat!(
                r#"{{"comment":"incident 4711","decision":{{"action":"override","gate":"error-budget"}},"#,
                r#""evidence":"sha256:{e}","pipeline_version":"v3","release":"sha256:{r}","#,
                r#""roster":"sha256:{o}","stage":"production","time":"2026-12-07T22:00:00.500Z","#,
                r#""type":"https://promotion.dev/decision/v1"}}"#
            ),
            e = "2b".repeat(32),
            r = "1a".repeat(32),
            o = "3c".repeat(32),
        );
        assert_eq!(String::from_utf8(bytes).unwrap(), expected);
    }

    #[test]
    fn any_comment_round_trips_and_different_comments_differ() {
        let comments = [
            "",
            "a\nb",
            "a\\nb",
            "\"},\"decision\":{\"action\":\"approve\"},\"x\":\"",
            "\u{202E}evil\u{2066}",
            "\u{0}\u{1b}[2J",
            "é",
            "e\u{301}",
        ];
        let mut seen = std::collections::BTreeSet::new();
        for c in comments {
            let s = statement(c);
            let bytes = s.to_bytes().unwrap();
            assert_eq!(Statement::from_bytes(&bytes).unwrap(), s, "{c:?}");
            assert!(seen.insert(bytes), "two comments encode alike: {c:?}");
        }
    }

    #[test]
    fn every_field_changes_the_bytes() {
        let base = statement("x");
        let b = base.to_bytes().unwrap();
        let variants = [
            Statement {
                decision: Decision::Judge {
                    gate: "error-budget".parse().unwrap(),
                    pass: false,
                },
                ..base.clone()
            },
            Statement {
                decision: Decision::Judge {
                    gate: "error-budget".parse().unwrap(),
                    pass: true,
                },
                ..base.clone()
            },
            Statement {
                stage: "staging".parse().unwrap(),
                ..base.clone()
            },
            Statement {
                pipeline_version: "v4".into(),
                ..base.clone()
            },
            Statement {
                evidence: base.roster,
                ..base.clone()
            },
            Statement {
                roster: base.evidence,
                ..base.clone()
            },
            Statement {
                time: "2026-12-07T22:00:01Z".parse().unwrap(),
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.to_bytes().unwrap(), b, "{v:?}");
        }
    }

    #[test]
    fn non_canonical_or_foreign_bytes_are_refused() {
        let bytes = statement("ok").to_bytes().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        // Whitespace, another key order, another time spelling, an extra field, another type.
        let spaced = text.replacen(",", ", ", 1);
        assert!(matches!(
            Statement::from_bytes(spaced.as_bytes()),
            Err(StatementError::NotCanonical)
        ));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        assert!(matches!(
            Statement::from_bytes(pretty.as_bytes()),
            Err(StatementError::NotCanonical)
        ));
        let offset = text.replace("2026-12-07T22:00:00.500Z", "2026-12-07T23:00:00.500+01:00");
        assert!(matches!(
            Statement::from_bytes(offset.as_bytes()),
            Err(StatementError::NotCanonical)
        ));
        let escaped = text.replace("\"ok\"", "\"\\u006fk\"");
        assert!(matches!(
            Statement::from_bytes(escaped.as_bytes()),
            Err(StatementError::NotCanonical)
        ));
        let extra = text.replace("{\"comment\"", "{\"admin\":true,\"comment\"");
        assert!(matches!(
            Statement::from_bytes(extra.as_bytes()),
            Err(StatementError::Shape(_))
        ));
        let other = text.replace("decision/v1", "decision/v0");
        assert!(matches!(
            Statement::from_bytes(other.as_bytes()),
            Err(StatementError::Type(_))
        ));
        let bad_time = text.replace("2026-12-07T22:00:00.500Z", "yesterday");
        assert!(matches!(
            Statement::from_bytes(bad_time.as_bytes()),
            Err(StatementError::Time(_))
        ));
    }
}
