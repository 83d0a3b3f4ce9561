//! The change record gate: the paperwork a compliance stage requires before a release enters
//! it.
//!
//! A change record is one small document, in TOML (`change-record.toml`) or in JSON with the
//! same shape:
//!
//! ```toml
//! summary = "Move checkout to the new payment provider"
//! release_notes = """
//! - Card payments go through the new provider.
//! - Refunds keep using the old one until January.
//! """
//! rollback_plan = "Redeploy 2.3.x; the schema change is additive."
//! ticket = "CHG-10452"
//!
//! [risk]
//! level = "high"
//! assessment = "Touches every payment; canary at 1 % first."
//! ```
//!
//! [`ChangeRecordGate`] checks that `summary`, `release_notes`, `risk.level`,
//! `risk.assessment` and `rollback_plan` are present and not blank (whitespace only counts as
//! blank), that the risk level is one of a configured vocabulary (`low`, `medium`, `high`,
//! `critical` by default), and, when a ticket pattern is configured, that `ticket` is present
//! and matches it. It reports the risk level as the fact `risk`, so that a stage's approval can
//! depend on it:
//!
//! ```
//! use promotion_core::ApprovalRule;
//!
//! // One SRE, and when the change record says the risk is high, one member of the CAB too.
//! let rule = ApprovalRule::all([
//!     ApprovalRule::quorum("sre", 1)?,
//!     ApprovalRule::when("change-record", "risk", "high", ApprovalRule::quorum("cab", 1)?)?,
//! ]);
//! assert_eq!(rule.to_string(), "(1 of sre AND (if change-record.risk = high then 1 of cab))");
//! # Ok::<(), promotion_core::InvalidName>(())
//! ```
//!
//! # Where the line is drawn
//!
//! - A document that cannot be read as a change record is **invalid input**
//!   ([`GateError::InvalidInput`], naming the file and the line): a syntax error, a field of
//!   the wrong type (`summary = 42`, `risk = "high"` instead of a `[risk]` table), a field this
//!   gate does not know (a typo such as `rollback_pln` is reported, not silently ignored),
//!   bytes that are not UTF-8, a document larger than [`MAX_RECORD_BYTES`]. The engine records
//!   it as an error and retries per policy; it is never a pass.
//! - A well-formed record whose content is unacceptable is a **fail** ([`Verdict::Fail`]),
//!   naming every problem at once: a missing or blank field, a risk level outside the
//!   vocabulary, a missing ticket or one that does not match the pattern.
//! - A record that does not exist is a **fail** too: the documentation is missing. Any other
//!   failure to read it (permissions, a directory in its place) is a [`GateError::Other`].
//!
//! The file is read synchronously; it is small (at most [`MAX_RECORD_BYTES`]).

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use promotion_core::{Evidence, Gate, GateContext, GateError, GateKind, GateName, Verdict};
use regex::Regex;
use serde::Deserialize;
use serde_json::json;

use crate::input::{invalid_input, line_of, read_bounded};

/// The largest change record the gate reads, in bytes (1 MiB).
pub const MAX_RECORD_BYTES: u64 = 1024 * 1024;

/// The risk levels accepted when none are configured.
pub const DEFAULT_RISK_LEVELS: [&str; 4] = ["low", "medium", "high", "critical"];

/// The name of the fact that carries the risk level.
pub const RISK_FACT: &str = "risk";

/// The name of the fact that carries the ticket id, when the record has one (and it matches
/// the pattern, if one is configured).
pub const TICKET_FACT: &str = "ticket";

/// How the change record is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecordFormat {
    /// JSON when the path ends in `.json` (any case), TOML otherwise.
    #[default]
    Auto,
    /// TOML.
    Toml,
    /// JSON with the same shape as the TOML document.
    Json,
}

impl RecordFormat {
    fn resolve(self, path: &Path) -> RecordFormat {
        match self {
            RecordFormat::Auto => {
                let json = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e.eq_ignore_ascii_case("json"));
                if json {
                    RecordFormat::Json
                } else {
                    RecordFormat::Toml
                }
            }
            other => other,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            RecordFormat::Auto => "auto",
            RecordFormat::Toml => "toml",
            RecordFormat::Json => "json",
        }
    }
}

/// A change record gate configured wrongly; returned by [`ChangeRecordGateBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeRecordConfigError {
    /// The gate's name is not a valid gate name.
    #[error("change record gate: {0}")]
    InvalidName(#[from] promotion_core::InvalidName),
    /// The path of the record is empty.
    #[error("change record gate: the path of the change record is empty")]
    EmptyPath,
    /// The path names a placeholder other than `{release}`, `{release_id}` and `{stage}`.
    #[error(
        "change record gate: unknown placeholder `{{{placeholder}}}` in path `{path}` \
         (known: {{release}}, {{release_id}}, {{stage}})"
    )]
    UnknownPlaceholder {
        /// The placeholder's name, without braces.
        placeholder: String,
        /// The path template.
        path: String,
    },
    /// The ticket pattern is not a valid regular expression.
    #[error("change record gate: invalid ticket pattern `{pattern}`: {message}")]
    InvalidTicketPattern {
        /// The pattern as given.
        pattern: String,
        /// What the regex compiler said.
        message: String,
    },
    /// The risk vocabulary is empty.
    #[error("change record gate: the list of risk levels is empty")]
    NoRiskLevels,
    /// A risk level is blank or repeated.
    #[error("change record gate: risk level `{level}`: {problem}")]
    InvalidRiskLevel {
        /// The level as given.
        level: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// Builder for [`ChangeRecordGate`]; every setting is validated in
/// [`build`](ChangeRecordGateBuilder::build).
#[derive(Debug, Clone)]
pub struct ChangeRecordGateBuilder {
    name: String,
    path: String,
    format: RecordFormat,
    risk_levels: Vec<String>,
    ticket_pattern: Option<String>,
}

impl ChangeRecordGateBuilder {
    /// Names the gate (default `change-record`); approval conditions refer to this name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Reads the record as `format` instead of guessing from the extension.
    pub fn format(mut self, format: RecordFormat) -> Self {
        self.format = format;
        self
    }
    /// Accepts these risk levels instead of `low`, `medium`, `high`, `critical`.
    ///
    /// Levels are matched case-insensitively and reported in the spelling given here, so a
    /// record saying `High` yields the fact `risk` = `high` and cannot slip past an approval
    /// rule that waits for `high`.
    pub fn risk_levels<I, S>(mut self, levels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.risk_levels = levels.into_iter().map(Into::into).collect();
        self
    }
    /// Requires a `ticket` whose whole id (surrounding whitespace trimmed) matches `pattern`,
    /// such as `CHG-[0-9]{4,}`. The pattern is anchored at both ends whether or not it says so.
    ///
    /// Without a pattern the ticket is optional; when present it is recorded.
    pub fn ticket_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.ticket_pattern = Some(pattern.into());
        self
    }
    /// Validates the settings.
    pub fn build(self) -> Result<ChangeRecordGate, ChangeRecordConfigError> {
        let name = GateName::new(self.name)?;
        let path = PathTemplate::parse(&self.path)?;
        if self.risk_levels.is_empty() {
            return Err(ChangeRecordConfigError::NoRiskLevels);
        }
        let mut levels: Vec<String> = Vec::with_capacity(self.risk_levels.len());
        for level in self.risk_levels {
            let problem = if level.trim().is_empty() {
                Some("it is blank")
            } else if level.trim() != level {
                Some("it starts or ends with whitespace")
            } else if levels
                .iter()
                .any(|l| l.to_lowercase() == level.to_lowercase())
            {
                Some("it is listed twice")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ChangeRecordConfigError::InvalidRiskLevel { level, problem });
            }
            levels.push(level);
        }
        let ticket = match self.ticket_pattern {
            None => None,
            Some(pattern) => {
                let anchored = format!("^(?:{pattern})$");
                let regex = Regex::new(&anchored).map_err(|e| {
                    ChangeRecordConfigError::InvalidTicketPattern {
                        pattern: pattern.clone(),
                        message: e.to_string(),
                    }
                })?;
                Some(TicketRule { pattern, regex })
            }
        };
        Ok(ChangeRecordGate {
            name,
            path,
            format: self.format,
            risk_levels: levels,
            ticket,
        })
    }
}

#[derive(Debug, Clone)]
struct TicketRule {
    pattern: String,
    regex: Regex,
}

/// A path with `{release}`, `{release_id}` and `{stage}` placeholders.
#[derive(Debug, Clone)]
struct PathTemplate {
    template: String,
    /// Finds the placeholders; `None` when the template has none.
    placeholders: Option<Regex>,
}

const PLACEHOLDERS: [&str; 3] = ["release", "release_id", "stage"];

impl PathTemplate {
    fn parse(template: &str) -> Result<Self, ChangeRecordConfigError> {
        if template.trim().is_empty() {
            return Err(ChangeRecordConfigError::EmptyPath);
        }
        // A constant pattern: it compiles. Were it ever not to, the path would be used as
        // written, which fails visibly when the file is not found.
        let Ok(re) = Regex::new(r"\{([A-Za-z0-9_]*)\}") else {
            return Ok(PathTemplate {
                template: template.to_owned(),
                placeholders: None,
            });
        };
        let mut found = false;
        for cap in re.captures_iter(template) {
            let name = cap.get(1).map_or("", |m| m.as_str());
            if !PLACEHOLDERS.contains(&name) {
                return Err(ChangeRecordConfigError::UnknownPlaceholder {
                    placeholder: name.to_owned(),
                    path: template.to_owned(),
                });
            }
            found = true;
        }
        Ok(PathTemplate {
            template: template.to_owned(),
            placeholders: found.then_some(re),
        })
    }

    /// The path for this evaluation. A release or stage name that would lead outside the
    /// intended directory (containing `/` or `\`, or being `.` or `..`) is refused.
    fn resolve(&self, ctx: &GateContext<'_>) -> Result<PathBuf, GateError> {
        let Some(re) = &self.placeholders else {
            return Ok(PathBuf::from(&self.template));
        };
        let release = ctx.release.name().to_owned();
        let release_id = ctx.release.id().short();
        let stage = ctx.stage.as_str().to_owned();
        for (what, value) in [("release name", &release), ("stage name", &stage)] {
            if value.contains(['/', '\\']) || value == ".." || value == "." {
                return Err(GateError::Misconfigured(format!(
                    "the {what} `{value}` cannot be put into the change record path `{}`",
                    self.template
                )));
            }
        }
        let resolved = re.replace_all(&self.template, |cap: &regex::Captures<'_>| {
            match cap.get(1).map_or("", |m| m.as_str()) {
                "release" => release.clone(),
                "release_id" => release_id.clone(),
                _ => stage.clone(),
            }
        });
        Ok(PathBuf::from(resolved.into_owned()))
    }
}

/// The change record as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordDoc {
    summary: Option<String>,
    release_notes: Option<String>,
    risk: Option<RiskDoc>,
    rollback_plan: Option<String>,
    ticket: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RiskDoc {
    level: Option<String>,
    assessment: Option<String>,
}

/// Whether a field is there and says something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldState {
    Present,
    Empty,
    Missing,
}

impl FieldState {
    fn of(value: Option<&str>) -> Self {
        match value {
            None => FieldState::Missing,
            Some(v) if v.trim().is_empty() => FieldState::Empty,
            Some(_) => FieldState::Present,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            FieldState::Present => "present",
            FieldState::Empty => "empty",
            FieldState::Missing => "missing",
        }
    }
}

/// Checks the change record a compliance stage requires: summary, release notes, risk level
/// and assessment, rollback plan, and optionally a ticket id matching a pattern.
///
/// Evidence records the document's digest (as an attachment named by its path), which fields
/// are present, empty or missing, the risk level and the ticket; the facts `risk` (the level,
/// in the vocabulary's spelling, when it is accepted) and `ticket` (when the record names one
/// that matches the pattern, if any). See the
/// [module documentation](self) for the document's shape and for which problems are a fail and
/// which are invalid input.
///
/// ```
/// use futures::executor::block_on;
/// use promotion_core::testing::GateProbe;
/// use promotion_core::Verdict;
/// use promotion_gates::change::ChangeRecordGate;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("change-record.toml");
/// std::fs::write(&path, r#"
/// summary = "Move checkout to the new payment provider"
/// release_notes = "Card payments go through the new provider."
/// rollback_plan = "Redeploy 2.3.x; the schema change is additive."
/// ticket = "CHG-10452"
///
/// [risk]
/// level = "high"
/// assessment = "Touches every payment; canary at 1 % first."
/// "#)?;
///
/// let gate = ChangeRecordGate::builder(path.to_string_lossy())
///     .ticket_pattern("CHG-[0-9]{4,}")
///     .build()?;
/// let verdict = block_on(GateProbe::new().evaluate(&gate))?;
/// let Verdict::Pass(evidence) = verdict else { panic!("expected a pass") };
/// assert_eq!(evidence.summary, "change record CHG-10452 complete: risk high");
/// assert_eq!(evidence.facts["risk"], "high");
///
/// // A stage's approval can now depend on it:
/// let cab_if_high = promotion_core::ApprovalRule::when(
///     "change-record", "risk", "high",
///     promotion_core::ApprovalRule::quorum("cab", 1)?,
/// )?;
/// # let _ = cab_if_high;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChangeRecordGate {
    name: GateName,
    path: PathTemplate,
    format: RecordFormat,
    risk_levels: Vec<String>,
    ticket: Option<TicketRule>,
}

impl ChangeRecordGate {
    /// A gate reading the change record at `path`, relative to the working directory unless
    /// absolute. `{release}` (the release's name), `{release_id}` (its id's twelve-digit short
    /// form) and `{stage}` in the path are replaced at each evaluation:
    /// `changes/{release}/{stage}.toml`.
    pub fn builder(path: impl Into<String>) -> ChangeRecordGateBuilder {
        ChangeRecordGateBuilder {
            name: "change-record".to_owned(),
            path: path.into(),
            format: RecordFormat::Auto,
            risk_levels: DEFAULT_RISK_LEVELS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            ticket_pattern: None,
        }
    }

    /// The accepted risk levels.
    pub fn risk_levels(&self) -> &[String] {
        &self.risk_levels
    }

    /// The ticket pattern, if a ticket is required.
    pub fn ticket_pattern(&self) -> Option<&str> {
        self.ticket.as_ref().map(|t| t.pattern.as_str())
    }

    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, GateError> {
        read_bounded(path, MAX_RECORD_BYTES, "change record", || {
            format!(
                "the change record is larger than {MAX_RECORD_BYTES} bytes; \
                 it should be a short document"
            )
        })
    }

    fn parse(
        &self,
        path: &Path,
        format: RecordFormat,
        bytes: &[u8],
    ) -> Result<RecordDoc, GateError> {
        let shown = path.display().to_string();
        let text = std::str::from_utf8(bytes).map_err(|e| {
            invalid_input(
                &shown,
                Some(line_of(bytes, e.valid_up_to())),
                "the change record is not valid UTF-8",
            )
        })?;
        match format {
            RecordFormat::Json => serde_json::from_str(text).map_err(|e| {
                let suffix = format!(" at line {} column {}", e.line(), e.column());
                let full = e.to_string();
                let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
                invalid_input(&shown, (e.line() > 0).then(|| e.line()), message)
            }),
            _ => toml::from_str(text).map_err(|e| {
                invalid_input(
                    &shown,
                    e.span().map(|span| line_of(bytes, span.start)),
                    e.message().trim_end(),
                )
            }),
        }
    }

    /// The vocabulary's spelling of `level`, if it is one of the accepted levels.
    fn risk_level(&self, level: &str) -> Option<&str> {
        let wanted = level.trim().to_lowercase();
        self.risk_levels
            .iter()
            .find(|l| l.to_lowercase() == wanted)
            .map(String::as_str)
    }
}

/// One thing wrong with a well-formed record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    /// A required field is missing or empty.
    Field(&'static str, FieldState),
    /// The risk level is not in the vocabulary.
    UnknownRisk { given: String, accepted: String },
    /// A ticket is required and missing or empty.
    NoTicket(FieldState),
    /// The ticket does not match the pattern.
    TicketMismatch { ticket: String, pattern: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Field(name, state) => write!(f, "{name} is {}", state.as_str()),
            Problem::UnknownRisk { given, accepted } => {
                write!(
                    f,
                    "risk level `{given}` is not accepted (accepted: {accepted})"
                )
            }
            Problem::NoTicket(state) => write!(f, "ticket is {}", state.as_str()),
            Problem::TicketMismatch { ticket, pattern } => {
                write!(f, "ticket `{ticket}` does not match `{pattern}`")
            }
        }
    }
}

#[async_trait]
impl Gate for ChangeRecordGate {
    fn name(&self) -> &str {
        self.name.as_str()
    }

    fn kind(&self) -> GateKind {
        GateKind::Compliance
    }

    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let path = self.path.resolve(ctx)?;
        let shown = path.display().to_string();
        let format = self.format.resolve(&path);
        let Some(bytes) = self.read(&path)? else {
            let evidence = Evidence::new(
                self.name(),
                ctx.now(),
                format!("no change record at {shown}"),
            )
            .with_data(json!({
                "path": shown,
                "format": format.as_str(),
                "found": false,
            }));
            return Ok(Verdict::Fail(evidence));
        };
        let doc = self.parse(&path, format, &bytes)?;

        let risk = doc.risk.as_ref();
        let level_text = risk.and_then(|r| r.level.as_deref());
        let fields = [
            ("summary", FieldState::of(doc.summary.as_deref())),
            (
                "release_notes",
                FieldState::of(doc.release_notes.as_deref()),
            ),
            ("risk.level", FieldState::of(level_text)),
            (
                "risk.assessment",
                FieldState::of(risk.and_then(|r| r.assessment.as_deref())),
            ),
            (
                "rollback_plan",
                FieldState::of(doc.rollback_plan.as_deref()),
            ),
            ("ticket", FieldState::of(doc.ticket.as_deref())),
        ];
        let mut problems: Vec<Problem> = fields
            .iter()
            .filter(|(name, state)| *name != "ticket" && *state != FieldState::Present)
            .map(|(name, state)| Problem::Field(name, *state))
            .collect();

        let level = match level_text.map(str::trim).filter(|l| !l.is_empty()) {
            None => None,
            Some(given) => match self.risk_level(given) {
                Some(known) => Some(known),
                None => {
                    problems.push(Problem::UnknownRisk {
                        given: given.to_owned(),
                        accepted: self.risk_levels.join(", "),
                    });
                    None
                }
            },
        };

        let ticket = doc
            .ticket
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let ticket_matches = match (&self.ticket, ticket) {
            (None, _) => None,
            (Some(_), None) => {
                problems.push(Problem::NoTicket(FieldState::of(doc.ticket.as_deref())));
                Some(false)
            }
            (Some(rule), Some(t)) => {
                let ok = rule.regex.is_match(t);
                if !ok {
                    problems.push(Problem::TicketMismatch {
                        ticket: t.to_owned(),
                        pattern: rule.pattern.clone(),
                    });
                }
                Some(ok)
            }
        };

        let summary = if problems.is_empty() {
            match (ticket, level) {
                (Some(t), Some(l)) => format!("change record {t} complete: risk {l}"),
                (None, Some(l)) => format!("change record complete: risk {l}, no ticket"),
                // Unreachable in practice: no problems means the level was accepted.
                (_, None) => "change record complete".to_owned(),
            }
        } else {
            let parts: Vec<String> = problems.iter().map(ToString::to_string).collect();
            let subject = match ticket {
                Some(t) => format!("change record {t}"),
                None => "change record".to_owned(),
            };
            format!("{subject} incomplete: {}", parts.join("; "))
        };

        let field_states: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(name, state)| ((*name).to_owned(), json!(state.as_str())))
            .collect();
        let data = json!({
            "path": shown,
            "format": format.as_str(),
            "found": true,
            "fields": field_states,
            "risk": {
                "level": level,
                "given": level_text,
                "accepted": self.risk_levels,
            },
            "ticket": {
                "id": ticket,
                "pattern": self.ticket.as_ref().map(|t| t.pattern.as_str()),
                "matches": ticket_matches,
            },
            "problems": problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        });

        let mut evidence = Evidence::new(self.name(), ctx.now(), summary)
            .with_data(data)
            .with_attachment(shown, &bytes);
        if let Some(l) = level {
            evidence = evidence.with_fact(RISK_FACT, l);
        }
        if let Some(t) = ticket.filter(|_| ticket_matches != Some(false)) {
            evidence = evidence.with_fact(TICKET_FACT, t);
        }
        Ok(Verdict::pass_if(problems.is_empty(), evidence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use promotion_core::testing::GateProbe;
    use promotion_core::{ApprovalRule, Digest};

    fn data(name: &str) -> String {
        format!("{}/tests/data/change/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn gate(name: &str) -> ChangeRecordGate {
        ChangeRecordGate::builder(data(name))
            .ticket_pattern("^CHG-[0-9]{4,}$")
            .build()
            .unwrap()
    }

    fn run(gate: &ChangeRecordGate) -> Result<Verdict, GateError> {
        block_on(GateProbe::new().evaluate(gate))
    }

    fn invalid(gate: &ChangeRecordGate) -> (String, String) {
        match run(gate) {
            Err(GateError::InvalidInput { what, message }) => (what, message),
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    fn failed(gate: &ChangeRecordGate) -> Evidence {
        match run(gate) {
            Ok(Verdict::Fail(e)) => e,
            other => panic!("expected a fail, got {other:?}"),
        }
    }

    #[test]
    fn a_complete_record_passes_with_risk_and_ticket_facts_and_the_digest() {
        let g = gate("change-record.toml");
        assert_eq!(g.kind(), GateKind::Compliance);
        assert_eq!(g.name(), "change-record");
        let Ok(Verdict::Pass(ev)) = run(&g) else {
            panic!("expected a pass")
        };
        assert_eq!(ev.summary, "change record CHG-10452 complete: risk high");
        assert_eq!(ev.facts.get("risk").map(String::as_str), Some("high"));
        assert_eq!(
            ev.facts.get("ticket").map(String::as_str),
            Some("CHG-10452")
        );
        let bytes = std::fs::read(data("change-record.toml")).unwrap();
        assert_eq!(ev.attachments.len(), 1);
        assert_eq!(ev.attachments[0].name, data("change-record.toml"));
        assert_eq!(ev.attachments[0].digest, Digest::of(&bytes));
        assert_eq!(ev.attachments[0].size, bytes.len() as u64);
        assert_eq!(ev.data["format"], "toml");
        assert_eq!(ev.data["fields"]["rollback_plan"], "present");
        assert_eq!(ev.data["fields"]["risk.assessment"], "present");
        assert_eq!(ev.data["ticket"]["matches"], true);
        assert_eq!(ev.data["problems"], serde_json::json!([]));
        assert_eq!(ev.producer, "change-record");
    }

    #[test]
    fn the_risk_fact_drives_a_conditional_approval() {
        let rule = ApprovalRule::all([
            ApprovalRule::quorum("sre", 1).unwrap(),
            ApprovalRule::when(
                "change-record",
                "risk",
                "high",
                ApprovalRule::quorum("cab", 1).unwrap(),
            )
            .unwrap(),
        ]);
        let check = |file: &str| {
            let Ok(v) = run(&gate(file)) else {
                panic!("no verdict")
            };
            let facts = v.evidence().facts.clone();
            let sre = promotion_core::Principal::new("sam", ["sre"]).unwrap();
            rule.is_satisfied_with(&[&sre], &|g: &GateName, f: &str, val: &str| {
                g == "change-record" && facts.get(f).map(String::as_str) == Some(val)
            })
        };
        // High risk: one SRE is not enough. Medium risk: it is.
        assert!(!check("change-record.toml"));
        assert!(check("change-record.json"));
    }

    #[test]
    fn json_records_have_the_same_shape() {
        let Ok(Verdict::Pass(ev)) = run(&gate("change-record.json")) else {
            panic!("expected a pass")
        };
        assert_eq!(ev.summary, "change record CHG-20311 complete: risk medium");
        assert_eq!(ev.data["format"], "json");
        assert_eq!(ev.facts["risk"], "medium");
    }

    #[test]
    fn the_format_can_be_forced() {
        // A JSON document read as TOML is malformed TOML, named as such.
        let g = ChangeRecordGate::builder(data("change-record.json"))
            .format(RecordFormat::Toml)
            .build()
            .unwrap();
        let (what, _) = invalid(&g);
        assert_eq!(what, format!("{} line 1", data("change-record.json")));
    }

    #[test]
    fn risk_levels_match_case_insensitively_and_report_the_vocabulary_spelling() {
        let g = ChangeRecordGate::builder(data("low-risk-no-ticket.toml"))
            .build()
            .unwrap();
        let Ok(Verdict::Pass(ev)) = run(&g) else {
            panic!("expected a pass")
        };
        assert_eq!(ev.facts["risk"], "low");
        assert!(!ev.facts.contains_key("ticket"));
        assert_eq!(ev.summary, "change record complete: risk low, no ticket");
        assert_eq!(ev.data["risk"]["given"], "Low");
    }

    #[test]
    fn a_required_ticket_must_be_present() {
        let ev = failed(&gate("low-risk-no-ticket.toml"));
        assert_eq!(ev.summary, "change record incomplete: ticket is missing");
        // The level was acceptable, so the fact is still reported.
        assert_eq!(ev.facts["risk"], "low");
    }

    #[test]
    fn every_missing_or_blank_field_is_named() {
        let ev = failed(&gate("incomplete.toml"));
        assert_eq!(
            ev.summary,
            "change record CHG-30007 incomplete: release_notes is empty; \
             risk.assessment is empty; rollback_plan is missing"
        );
        assert_eq!(ev.data["fields"]["release_notes"], "empty");
        assert_eq!(ev.data["fields"]["rollback_plan"], "missing");
        assert_eq!(ev.data["fields"]["summary"], "present");
        assert_eq!(ev.attachments.len(), 1);
    }

    #[test]
    fn an_unknown_risk_level_fails_naming_it_and_reports_no_risk_fact() {
        let ev = failed(&gate("unknown-risk.toml"));
        assert_eq!(
            ev.summary,
            "change record CHG-40001 incomplete: risk level `severe` is not accepted \
             (accepted: low, medium, high, critical)"
        );
        assert!(!ev.facts.contains_key("risk"));
        // A custom vocabulary accepts it.
        let g = ChangeRecordGate::builder(data("unknown-risk.toml"))
            .risk_levels(["minor", "severe"])
            .build()
            .unwrap();
        let Ok(Verdict::Pass(ev)) = run(&g) else {
            panic!("expected a pass")
        };
        assert_eq!(ev.facts["risk"], "severe");
        // The vocabulary's spelling wins, whatever the case in the record.
        let g = ChangeRecordGate::builder(data("unknown-risk.toml"))
            .risk_levels(["Minor", "SEVERE"])
            .build()
            .unwrap();
        let Ok(Verdict::Pass(ev)) = run(&g) else {
            panic!("expected a pass")
        };
        assert_eq!(ev.facts["risk"], "SEVERE");
    }

    #[test]
    fn a_ticket_that_does_not_match_fails_naming_ticket_and_pattern() {
        let ev = failed(&gate("bad-ticket.toml"));
        assert_eq!(
            ev.summary,
            "change record JIRA-12 incomplete: ticket `JIRA-12` does not match `^CHG-[0-9]{4,}$`"
        );
        assert_eq!(ev.data["ticket"]["matches"], false);
        // A ticket that does not match is not reported as a fact.
        assert!(!ev.facts.contains_key("ticket"));
        // Without a pattern the ticket is only recorded.
        let g = ChangeRecordGate::builder(data("bad-ticket.toml"))
            .build()
            .unwrap();
        let Ok(Verdict::Pass(ev)) = run(&g) else {
            panic!("expected a pass")
        };
        assert_eq!(ev.facts["ticket"], "JIRA-12");
    }

    #[test]
    fn the_whole_ticket_must_match_even_without_anchors() {
        let g = ChangeRecordGate::builder(data("change-record.toml"))
            .ticket_pattern("CHG-[0-9]{3}")
            .build()
            .unwrap();
        // `CHG-104` is inside `CHG-10452`, but the whole id does not match.
        let ev = failed(&g);
        assert!(ev
            .summary
            .contains("ticket `CHG-10452` does not match `CHG-[0-9]{3}`"));
    }

    #[test]
    fn malformed_toml_is_invalid_input_naming_file_and_line() {
        let (what, message) = invalid(&gate("syntax-error.toml"));
        // The unterminated string starts on line 3.
        assert_eq!(what, format!("{} line 3", data("syntax-error.toml")));
        assert!(message.contains("string"), "{message}");
    }

    #[test]
    fn a_field_of_the_wrong_type_is_invalid_input() {
        let (what, message) = invalid(&gate("wrong-type.toml"));
        assert_eq!(what, format!("{} line 4", data("wrong-type.toml")));
        assert!(message.contains("string"), "{message}");
        let (what, _) = invalid(&gate("risk-not-a-table.toml"));
        assert_eq!(what, format!("{} line 5", data("risk-not-a-table.toml")));
        // A value over several lines is reported at the line where it starts.
        let (what, message) = invalid(&gate("notes-as-list.toml"));
        assert_eq!(what, format!("{} line 2", data("notes-as-list.toml")));
        assert!(message.contains("string"), "{message}");
    }

    #[test]
    fn an_unknown_field_is_invalid_input_naming_it() {
        let (what, message) = invalid(&gate("unknown-field.toml"));
        assert_eq!(what, format!("{} line 3", data("unknown-field.toml")));
        assert!(message.contains("rollback_pln"), "{message}");
    }

    #[test]
    fn malformed_json_is_invalid_input_naming_file_and_line() {
        let (what, message) = invalid(&gate("trailing-comma.json"));
        assert_eq!(what, format!("{} line 9", data("trailing-comma.json")));
        assert!(message.contains("trailing comma"), "{message}");
        assert!(!message.contains("at line"), "{message}");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_invalid_input() {
        let (what, message) = invalid(&gate("not-utf8.toml"));
        assert_eq!(what, format!("{} line 3", data("not-utf8.toml")));
        assert!(message.contains("UTF-8"));
    }

    #[test]
    fn an_empty_document_fails_naming_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("change-record.toml");
        std::fs::write(&path, "").unwrap();
        let g = ChangeRecordGate::builder(path.to_string_lossy())
            .build()
            .unwrap();
        let ev = failed(&g);
        assert_eq!(
            ev.summary,
            "change record incomplete: summary is missing; release_notes is missing; \
             risk.level is missing; risk.assessment is missing; rollback_plan is missing"
        );
        assert_eq!(ev.attachments[0].digest, Digest::of(b""));
    }

    #[test]
    fn a_missing_record_fails() {
        let ev = failed(&gate("no-such-record.toml"));
        assert_eq!(
            ev.summary,
            format!("no change record at {}", data("no-such-record.toml"))
        );
        assert_eq!(ev.data["found"], false);
    }

    #[test]
    fn a_directory_in_place_of_the_record_is_an_error_not_a_verdict() {
        let g = ChangeRecordGate::builder(data("by-stage")).build().unwrap();
        assert!(matches!(run(&g), Err(GateError::Other { .. })));
    }

    #[test]
    fn an_oversized_record_is_invalid_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.toml");
        let line = format!("# {}\n", "x".repeat(1022));
        std::fs::write(&path, line.repeat(1025)).unwrap();
        let g = ChangeRecordGate::builder(path.to_string_lossy())
            .build()
            .unwrap();
        let (what, message) = invalid(&g);
        assert_eq!(what, path.display().to_string());
        assert!(message.contains("larger than"));
    }

    #[test]
    fn placeholders_are_resolved_from_the_context() {
        let template = format!(
            "{}/tests/data/change/by-stage/{{stage}}.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        let g = ChangeRecordGate::builder(template).build().unwrap();
        let Ok(Verdict::Pass(ev)) = block_on(GateProbe::new().stage("test").evaluate(&g)) else {
            panic!("expected a pass")
        };
        assert_eq!(ev.facts["risk"], "critical");
        assert_eq!(ev.data["path"], data("by-stage/test.toml"));
        // Another stage has no record.
        let ev = match block_on(GateProbe::new().stage("prod").evaluate(&g)) {
            Ok(Verdict::Fail(ev)) => ev,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ev.summary,
            format!("no change record at {}", data("by-stage/prod.toml"))
        );

        // {release} and {release_id}.
        let probe = GateProbe::new();
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join(probe.release_ref().name());
        std::fs::create_dir(&sub).unwrap();
        let id = probe.release_ref().id().short();
        std::fs::copy(data("change-record.json"), sub.join(format!("{id}.json"))).unwrap();
        let template = format!("{}/{{release}}/{{release_id}}.json", dir.path().display());
        let g = ChangeRecordGate::builder(template).build().unwrap();
        assert!(matches!(block_on(probe.evaluate(&g)), Ok(Verdict::Pass(_))));
    }

    #[test]
    fn a_release_name_that_leaves_the_directory_is_refused() {
        let t0 = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let release = promotion_core::Release::builder("../etc", "repo", "a".repeat(40), t0)
            .artifact("image", format!("sha256:{}", "b".repeat(64)))
            .builder("ci")
            .build()
            .unwrap();
        let g = ChangeRecordGate::builder("/tmp/{release}/x.toml")
            .build()
            .unwrap();
        let r = block_on(GateProbe::new().release(release).evaluate(&g));
        assert!(matches!(r, Err(GateError::Misconfigured(m)) if m.contains("../etc")));
    }

    #[test]
    fn bad_configuration_is_a_typed_error_at_construction() {
        let err = ChangeRecordGate::builder("x.toml")
            .ticket_pattern("CHG-[0-9")
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, ChangeRecordConfigError::InvalidTicketPattern { pattern, .. } if pattern == "CHG-[0-9"),
            "{err}"
        );
        assert!(matches!(
            ChangeRecordGate::builder("x.toml")
                .risk_levels(Vec::<String>::new())
                .build(),
            Err(ChangeRecordConfigError::NoRiskLevels)
        ));
        assert_eq!(
            ChangeRecordGate::builder("x.toml")
                .risk_levels(["low", "LOW"])
                .build()
                .unwrap_err()
                .to_string(),
            "change record gate: risk level `LOW`: it is listed twice"
        );
        assert!(matches!(
            ChangeRecordGate::builder("x.toml")
                .risk_levels(["low", " "])
                .build(),
            Err(ChangeRecordConfigError::InvalidRiskLevel {
                problem: "it is blank",
                ..
            })
        ));
        assert_eq!(
            ChangeRecordGate::builder("changes/{version}.toml")
                .build()
                .unwrap_err()
                .to_string(),
            "change record gate: unknown placeholder `{version}` in path `changes/{version}.toml` \
             (known: {release}, {release_id}, {stage})"
        );
        assert!(matches!(
            ChangeRecordGate::builder("  ").build(),
            Err(ChangeRecordConfigError::EmptyPath)
        ));
        assert!(matches!(
            ChangeRecordGate::builder("x.toml").name(" bad").build(),
            Err(ChangeRecordConfigError::InvalidName(_))
        ));
        let g = ChangeRecordGate::builder("x.toml")
            .name("paperwork")
            .build()
            .unwrap();
        assert_eq!(g.name(), "paperwork");
        assert_eq!(g.risk_levels(), ["low", "medium", "high", "critical"]);
        assert_eq!(g.ticket_pattern(), None);
    }
}
