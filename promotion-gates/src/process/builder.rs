//! Building a [`ProcessGate`]: the [`ProcessGateBuilder`]'s settings, each checked when the gate
//! is built, and the `{param}` argument templates filled in from the release and the gate context.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use promotion_core::{GateKind, GateName};

use crate::secrets::SecretSource;

use super::{
    OnTimeout, ProcessConfigError, ProcessGate, WorkingDir, BUILTIN_PARAMS, MAX_TAIL_BYTES,
    RESERVED_PREFIX,
};

/// Part of an argument template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Text(String),
    Param(String),
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Splits an argument into text and `{name}` placeholders; `{{` and `}}` are literal braces,
/// and a brace that does not enclose a name is literal.
pub(super) fn parse_template(arg: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut look = chars.clone();
                let mut name = String::new();
                let mut closed = false;
                for n in look.by_ref() {
                    if n == '}' {
                        closed = true;
                        break;
                    }
                    if n == '_' || n.is_ascii_alphanumeric() {
                        name.push(n);
                    } else {
                        break;
                    }
                }
                if closed && is_env_name(&name) {
                    chars = look;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Param(name));
                } else {
                    text.push('{');
                }
            }
            other => text.push(other),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

/// Builds a [`ProcessGate`]; see [`ProcessGate::builder`].
#[derive(Debug, Clone)]
pub struct ProcessGateBuilder {
    pub(super) name: Option<String>,
    pub(super) kind: GateKind,
    pub(super) program: String,
    pub(super) args: Vec<String>,
    pub(super) working_dir: WorkingDir,
    pub(super) allow_env: BTreeSet<String>,
    pub(super) env: Vec<(String, String)>,
    pub(super) params: Vec<(String, String)>,
    pub(super) secrets: Vec<(String, String)>,
    pub(super) secret_source: Option<Arc<dyn SecretSource>>,
    pub(super) accepted: BTreeSet<i32>,
    pub(super) timeout: Duration,
    pub(super) on_timeout: OnTimeout,
    pub(super) tail_bytes: usize,
}

impl ProcessGateBuilder {
    /// Names the gate (default `process:<program file name>`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Reports `kind` (default [`GateKind::Automated`]).
    pub fn kind(mut self, kind: GateKind) -> Self {
        self.kind = kind;
        self
    }
    /// Appends an argument; `{name}` placeholders are replaced by parameters.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }
    /// Appends arguments; `{name}` placeholders are replaced by parameters.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    /// Runs in `dir` (absolute, must exist) instead of a fresh temporary directory.
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = WorkingDir::Fixed(dir.into());
        self
    }
    /// Runs in a fresh temporary directory, removed afterwards (the default).
    pub fn temporary_working_dir(mut self) -> Self {
        self.working_dir = WorkingDir::Temporary;
        self
    }
    /// Copies the host's variable `name` into the child's environment when it is set.
    /// `PATH` is allowed by default.
    pub fn allow_env(mut self, name: impl Into<String>) -> Self {
        self.allow_env.insert(name.into());
        self
    }
    /// Empties the allowlist, `PATH` included.
    pub fn clear_allowed_env(mut self) -> Self {
        self.allow_env.clear();
        self
    }
    /// Sets the variable `name` in the child (replacing an allowlisted host value).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }
    /// A parameter: set as the variable `name` and usable as `{name}` in arguments.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }
    /// Passes the secret `name` as the variable of the same name.
    pub fn secret(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.secret_as(name.clone(), name)
    }
    /// Passes the secret `secret` as the variable `env`.
    pub fn secret_as(mut self, env: impl Into<String>, secret: impl Into<String>) -> Self {
        self.secrets.push((env.into(), secret.into()));
        self
    }
    /// Where secrets come from (required when secrets are configured).
    pub fn secret_source(mut self, source: impl SecretSource + 'static) -> Self {
        self.secret_source = Some(Arc::new(source));
        self
    }
    /// The exit codes that pass (replacing the default, `0`).
    pub fn accept_exit_codes(mut self, codes: impl IntoIterator<Item = i32>) -> Self {
        self.accepted = codes.into_iter().collect();
        self
    }
    /// Longest the process may run, in real time (default [`DEFAULT_TIMEOUT`](super::DEFAULT_TIMEOUT)).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// What a timeout means (default [`OnTimeout::Error`]).
    pub fn on_timeout(mut self, on_timeout: OnTimeout) -> Self {
        self.on_timeout = on_timeout;
        self
    }
    /// How many bytes to keep from the end of stdout and of stderr (default
    /// [`DEFAULT_TAIL_BYTES`](super::DEFAULT_TAIL_BYTES), at most [`MAX_TAIL_BYTES`]).
    pub fn tail_bytes(mut self, bytes: usize) -> Self {
        self.tail_bytes = bytes;
        self
    }

    /// Checks every setting and builds the gate.
    pub fn build(self) -> Result<ProcessGate, ProcessConfigError> {
        if self.program.is_empty() {
            return Err(ProcessConfigError::EmptyProgram);
        }
        let name = match self.name {
            Some(n) => n,
            None => default_name(&self.program),
        };
        GateName::new(name.clone())?;
        let gate = name.clone();
        let nul = |what: String| ProcessConfigError::NulByte {
            gate: gate.clone(),
            what,
        };
        if self.program.contains('\0') {
            return Err(nul("the program".to_owned()));
        }
        for (i, a) in self.args.iter().enumerate() {
            if a.contains('\0') {
                return Err(nul(format!("argument {}", i + 1)));
            }
        }
        let check_name = |what: &'static str, n: &str| {
            if !is_env_name(n) {
                Err(ProcessConfigError::InvalidEnvName {
                    gate: gate.clone(),
                    what,
                    name: n.to_owned(),
                })
            } else if n.starts_with(RESERVED_PREFIX) {
                Err(ProcessConfigError::ReservedName {
                    gate: gate.clone(),
                    what,
                    name: n.to_owned(),
                })
            } else {
                Ok(())
            }
        };
        for n in &self.allow_env {
            check_name("allowed host variable", n)?;
        }
        let mut seen: BTreeMap<String, &'static str> = BTreeMap::new();
        let mut claim = |what: &'static str, n: &str| -> Result<(), ProcessConfigError> {
            check_name(what, n)?;
            if let Some(first) = seen.insert(n.to_owned(), what) {
                return Err(ProcessConfigError::DuplicateName {
                    gate: gate.clone(),
                    name: n.to_owned(),
                    first,
                    second: what,
                });
            }
            Ok(())
        };
        for (n, v) in &self.env {
            claim("environment variable", n)?;
            if v.contains('\0') {
                return Err(nul(format!("environment variable `{n}`")));
            }
        }
        for (n, v) in &self.params {
            claim("parameter", n)?;
            if v.contains('\0') {
                return Err(nul(format!("parameter `{n}`")));
            }
        }
        for (env, secret) in &self.secrets {
            claim("secret", env)?;
            if secret.is_empty() {
                return Err(ProcessConfigError::EmptySecretName {
                    gate: gate.clone(),
                    env: env.clone(),
                });
            }
        }
        if !self.secrets.is_empty() && self.secret_source.is_none() {
            return Err(ProcessConfigError::NoSecretSource {
                gate: gate.clone(),
                names: self.secrets.iter().map(|(e, _)| e.clone()).collect(),
            });
        }
        if self.accepted.is_empty() {
            return Err(ProcessConfigError::NoAcceptedExitCodes { gate });
        }
        if let Some(&code) = self.accepted.iter().find(|c| !(0..=255).contains(*c)) {
            return Err(ProcessConfigError::ExitCodeOutOfRange { gate, code });
        }
        if self.timeout.is_zero() {
            return Err(ProcessConfigError::ZeroTimeout { gate });
        }
        if self.tail_bytes == 0 || self.tail_bytes > MAX_TAIL_BYTES {
            return Err(ProcessConfigError::TailSize {
                gate,
                value: self.tail_bytes,
                max: MAX_TAIL_BYTES,
            });
        }
        if let WorkingDir::Fixed(p) = &self.working_dir {
            if !p.is_absolute() {
                return Err(ProcessConfigError::RelativeWorkingDir {
                    gate,
                    path: p.display().to_string(),
                });
            }
        }
        let params: BTreeMap<String, String> = self.params.into_iter().collect();
        let secrets: BTreeMap<String, String> = self.secrets.into_iter().collect();
        let mut args = Vec::with_capacity(self.args.len());
        for (i, arg) in self.args.iter().enumerate() {
            let pieces = parse_template(arg);
            for p in &pieces {
                let Piece::Param(n) = p else { continue };
                if params.contains_key(n) || BUILTIN_PARAMS.contains(&n.as_str()) {
                    continue;
                }
                if secrets.contains_key(n) {
                    return Err(ProcessConfigError::SecretPlaceholder {
                        gate,
                        index: i + 1,
                        name: n.clone(),
                    });
                }
                return Err(ProcessConfigError::UnknownPlaceholder {
                    gate,
                    index: i + 1,
                    arg: arg.clone(),
                    name: n.clone(),
                });
            }
            args.push(pieces);
        }
        Ok(ProcessGate {
            name,
            kind: self.kind,
            program: self.program,
            args,
            working_dir: self.working_dir,
            allow_env: self.allow_env,
            env: self.env.into_iter().collect(),
            params,
            secrets,
            secret_source: self.secret_source,
            accepted: self.accepted,
            timeout: self.timeout,
            on_timeout: self.on_timeout,
            tail_bytes: self.tail_bytes,
        })
    }
}

fn default_name(program: &str) -> String {
    let base = Path::new(program)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| program.to_owned());
    format!("process:{base}")
}

// ---------------------------------------------------------------------------------------------
