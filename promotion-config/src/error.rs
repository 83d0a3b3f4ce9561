//! Errors that name the file, the line and the column, and say what was expected.

use std::fmt;

/// A place in a configuration file: `templates/web-service.toml:12:9`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file, as it was named when it was read.
    pub file: String,
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// What kind of problem a [`ConfigError`] reports, for hosts that react to some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A file could not be read.
    Io,
    /// The file is not valid TOML.
    Syntax,
    /// A key that the format does not know (a typo, or a setting of another gate kind).
    UnknownField,
    /// A required key is missing.
    MissingField,
    /// A value of the wrong type or out of range.
    InvalidValue,
    /// A duration that does not parse (`10x`).
    BadDuration,
    /// A gate `kind` no constructor is registered for.
    UnknownGateKind,
    /// A gate's settings were refused by its constructor.
    GateSettings,
    /// A `{{ placeholder }}` or a service parameter naming no declared parameter.
    UnknownParameter,
    /// A required parameter without a value.
    MissingParameter,
    /// A parameter value of the wrong type.
    ParameterType,
    /// An approval expression that does not parse.
    BadApprovalRule,
    /// An approval rule that can never be met.
    UnsatisfiableApproval,
    /// The stages' upstreams form a cycle.
    Cycle,
    /// Another problem with the pipeline's structure (unknown upstream, duplicate stage or
    /// gate, bad rollout plan, contradictory phase policy).
    Pipeline,
    /// The template a service names could not be found.
    TemplateNotFound,
    /// The template's digest differs from the one the service pins.
    DigestMismatch,
}

/// A template, a service file or a gate's settings were refused.
///
/// Displayed as `file:line:column: message`, followed by notes, one per line:
///
/// ```text
/// templates/web-service.toml:14:8: unknown gate kind `proces`; known kinds: change-record, …
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    kind: ErrorKind,
    location: Option<Location>,
    message: String,
    notes: Vec<String>,
}

impl ConfigError {
    /// An error of `kind` with `message` and no location yet.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ConfigError {
            kind,
            location: None,
            message: message.into(),
            notes: Vec::new(),
        }
    }
    /// Places the error at `location` (replacing any earlier one).
    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }
    /// Adds a note shown below the message.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
    /// What kind of problem it is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// Where it is, when it is in a file.
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }
    /// The message, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The notes after the message (where a thing was declared, what was found instead), in
    /// the order they were added; empty when there are none.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = &self.location {
            write!(f, "{l}: ")?;
        }
        f.write_str(&self.message)?;
        for n in &self.notes {
            write!(f, "\n  note: {n}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
