//! Process gate: runs a command as an isolated runner and decides on how it ended.
//!
//! # Overview
//!
//! [`ProcessGate`] runs one program (a smoke test, a migration dry run, a conformance suite)
//! and passes when it exits with an accepted code (0 by default). It is built with
//! [`ProcessGate::builder`]; every setting is checked when the gate is built, so a bad setting
//! is a [`ProcessConfigError`] at construction rather than a surprise at evaluation.
//!
//! The gate needs a tokio runtime with I/O and time enabled (`#[tokio::main]`,
//! `#[tokio::test]`, or `Builder::enable_all()`); evaluated outside one it answers
//! [`GateError::Misconfigured`] instead of panicking.
//!
//! # Isolation
//!
//! - **Working directory**: a fresh temporary directory per evaluation, removed afterwards
//!   ([`WorkingDir::Temporary`], the default), or a configured absolute directory
//!   ([`WorkingDir::Fixed`]) that must exist. Give scripts as absolute paths.
//! - **Environment**: cleared. The child receives only host variables on the allowlist
//!   (`PATH` by default, see [`ProcessGateBuilder::allow_env`]), variables set with
//!   [`ProcessGateBuilder::env`], parameters, the built-in parameters and secrets. A variable
//!   set explicitly replaces the host's value of the same name. A bare program name is
//!   looked up on the `PATH` the child receives (without one, the C library's default).
//! - **Process group**: the child leads a process group of its own. When the main process
//!   exits, whatever it left running in its group is killed (a gate leaves nothing behind);
//!   on timeout the whole group is killed with `SIGKILL`, grandchildren included. If the
//!   evaluation is cancelled (its future dropped), the group is killed as well.
//! - **Standard input** is `/dev/null`.
//!
//! # Parameters
//!
//! Parameters ([`ProcessGateBuilder::param`]) and the built-ins ([`BUILTIN_PARAMS`]:
//! `PROMOTION_RELEASE_ID`, `PROMOTION_RELEASE_NAME`, `PROMOTION_REPOSITORY`,
//! `PROMOTION_COMMIT`, `PROMOTION_PIPELINE`, `PROMOTION_STAGE`, `PROMOTION_PHASE`,
//! `PROMOTION_GATE`, `PROMOTION_ROUND`, `PROMOTION_ATTEMPT`, taken from the gate's context)
//! are passed as environment variables and can be used as `{name}` placeholders in
//! arguments. `{{` and `}}` are literal braces; a brace that does not enclose a name
//! (`awk '{print $1}'`) is literal too. A placeholder naming anything else is a
//! [`ProcessConfigError::UnknownPlaceholder`], so inside `sh -c` scripts write `$HOME` or
//! `${{HOME}}` rather than `${HOME}`. Names starting with `PROMOTION_` are reserved.
//!
//! # Secrets
//!
//! Secrets come from a host-provided [`SecretSource`] ([`MemorySecrets`], [`EnvSecrets`], or
//! the host's own vault client), are fetched at each evaluation and passed to the child only
//! as environment variables (never as arguments, where `ps` would show them). A secret value
//! never appears in evidence, logs, `Debug` output or error messages:
//!
//! - every occurrence of a secret value in stdout and stderr is replaced by
//!   `[REDACTED:<VARIABLE>]` *while streaming*, before anything is kept or hashed, so the
//!   tails shown in evidence are redacted, and so are the **digests**: an attachment digest
//!   is the SHA-256 of the redacted transcript, not of the raw bytes. A digest of the raw
//!   bytes would let anyone who can guess the rest of the output (a script that only echoes
//!   a token) confirm a guessed secret offline; the raw output is not kept anywhere, so a
//!   raw digest could not be checked against anything anyway. The `bytes` count in the
//!   evidence is what the process wrote (raw), `transcript_bytes` the redacted size;
//! - the program, arguments and gate name shown in evidence and in error messages once the
//!   secrets are known are redacted the same way (in case a secret value was written into
//!   the configuration by mistake);
//! - only the *names* of environment variables are recorded.
//!
//! Redaction matches the exact bytes of each value; a secret the process transforms (base64,
//! URL-encoding, splitting) cannot be recognised. An empty secret is passed but, having
//! nothing to hide, not redacted.
//!
//! # Outcome
//!
//! | how the process ended                  | result                                            |
//! |----------------------------------------|---------------------------------------------------|
//! | exit code in the accepted set          | [`Verdict::Pass`]                                 |
//! | another exit code                      | [`Verdict::Fail`]                                 |
//! | killed by a signal                     | [`Verdict::Fail`]                                 |
//! | still running at the timeout           | [`GateError::TimedOut`] (default), or [`Verdict::Fail`] with [`OnTimeout::Fail`] |
//! | program missing, not executable        | [`GateError::Misconfigured`] naming the program   |
//! | working directory missing              | [`GateError::Misconfigured`] naming the directory |
//!
//! The timeout is measured in real time (a child process does not run on the engine's
//! clock). By default a timeout is an *error*: the gate could not decide, the engine records
//! that and may retry per its policy; a slow environment is not evidence that the release is
//! bad. [`OnTimeout::Fail`] makes it a fail verdict instead, with the partial output as
//! evidence.
//!
//! # Output and evidence
//!
//! Stdout and stderr are read concurrently while the process runs, in 64 KiB chunks: every
//! byte is hashed (streaming SHA-256) and counted, and only the last
//! [`ProcessGateBuilder::tail_bytes`] bytes (4 KiB by default) of each are kept, so a process
//! writing gigabytes runs in bounded memory. The evidence records:
//!
//! - summary: `` `smoke-check.sh eu-west-1` exited with code 3, expected 0, after 1.2 s;
//!   last stderr line: GET /healthz returned 503 ``;
//! - attachments `stdout` and `stderr`: digest and size of each (redacted) transcript;
//! - data: `program`, `args`, `command_line` (redacted), `working_dir`
//!   (`{"policy": "temporary"}` or `{"policy": "fixed", "path": …}`), `env` (names passed),
//!   `secret_env` (names carrying secrets), `status` (`exit_code`, or `signal` and
//!   `signal_name` and `core_dumped`, or `timed_out` and `output_closed`),
//!   `accepted_exit_codes`, `duration_ms`,
//!   `timeout_ms`, `leftover_processes_killed`, and for each of `stdout`/`stderr`: `bytes`,
//!   `transcript_bytes`, `sha256`, `redactions`, `tail`, `tail_truncated`;
//! - facts: `exit_code` when the process exited, `signal` when a signal killed it,
//!   `timed_out` = `true` on a timeout failure.
//!
//! # Limitations
//!
//! A descendant that leaves the process group (`setsid`, `setpgid`) escapes the group kill;
//! if it keeps stdout or stderr open, the gate waits for the timeout and then gives up on
//! the output after a short grace period. The group is signalled by id right after the main
//! process is reaped; in principle that id could be reused in between, as with any
//! `killpg`-based supervisor.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use promotion_core::{
    Attachment, Digest, Evidence, Gate, GateContext, GateError, GateKind, GateName, InvalidName,
    PhaseId, Verdict,
};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

pub use crate::secrets::{EnvSecrets, MemorySecrets, Secret, SecretSource};

/// Default number of bytes kept from the end of stdout and of stderr.
pub const DEFAULT_TAIL_BYTES: usize = 4096;
/// Largest accepted tail size.
pub const MAX_TAIL_BYTES: usize = 1 << 20;
/// Default timeout: ten minutes of real time.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Parameters the gate provides from its context, as environment variables and placeholders.
pub const BUILTIN_PARAMS: [&str; 10] = [
    "PROMOTION_RELEASE_ID",
    "PROMOTION_RELEASE_NAME",
    "PROMOTION_REPOSITORY",
    "PROMOTION_COMMIT",
    "PROMOTION_PIPELINE",
    "PROMOTION_STAGE",
    "PROMOTION_PHASE",
    "PROMOTION_GATE",
    "PROMOTION_ROUND",
    "PROMOTION_ATTEMPT",
];
/// Prefix reserved for built-in parameters.
const RESERVED_PREFIX: &str = "PROMOTION_";
/// After a timeout kill, how long to wait for the pipes to close and the child to be reaped.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// Read buffer size for stdout and stderr.
const READ_CHUNK: usize = 64 * 1024;
/// Longest command line shown in a summary, in characters.
const SUMMARY_COMMAND_CHARS: usize = 100;
/// Longest stderr line shown in a summary, in characters.
const SUMMARY_STDERR_CHARS: usize = 160;

// ---------------------------------------------------------------------------------------------
// Configuration

/// Where the command runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WorkingDir {
    /// A fresh temporary directory per evaluation, removed afterwards.
    #[default]
    Temporary,
    /// This directory (absolute; it must exist when the gate is evaluated). Not cleaned.
    Fixed(PathBuf),
}

/// What a timeout means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnTimeout {
    /// The gate could not decide: [`GateError::TimedOut`]. The engine records it and may retry.
    #[default]
    Error,
    /// The release fails the gate: [`Verdict::Fail`] with the partial output as evidence.
    Fail,
}

/// A setting of a [`ProcessGate`] that cannot work, found when the gate is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessConfigError {
    /// The program is empty.
    #[error("process gate: the program to run is empty")]
    EmptyProgram,
    /// The gate's name is not a valid gate name.
    #[error("process gate: {0}")]
    InvalidName(#[from] InvalidName),
    /// An environment variable or parameter name is not a portable variable name.
    #[error("process gate `{gate}`: {what} `{name}` is not a valid environment variable name (ASCII letters, digits and `_`, not starting with a digit)")]
    InvalidEnvName {
        /// The gate.
        gate: String,
        /// What the name was given for (`parameter`, `environment variable`, `secret`).
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A name uses the `PROMOTION_` prefix reserved for the built-in parameters.
    #[error("process gate `{gate}`: {what} `{name}` uses the prefix `PROMOTION_`, which is reserved for the built-in parameters")]
    ReservedName {
        /// The gate.
        gate: String,
        /// What the name was given for.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The same variable is set twice.
    #[error("process gate `{gate}`: environment variable `{name}` is set twice (as {first} and as {second})")]
    DuplicateName {
        /// The gate.
        gate: String,
        /// The variable.
        name: String,
        /// The first setting (`parameter`, `environment variable`, `secret`).
        first: &'static str,
        /// The second setting.
        second: &'static str,
    },
    /// A value contains a NUL byte, which no process can receive.
    #[error("process gate `{gate}`: {what} contains a NUL byte, which a process cannot receive")]
    NulByte {
        /// The gate.
        gate: String,
        /// Which value (`argument 2`, `parameter region`).
        what: String,
    },
    /// An argument uses a placeholder that is neither a parameter nor a built-in.
    #[error("process gate `{gate}`: argument {index} (`{arg}`) uses placeholder `{{{name}}}`, which is neither a parameter nor a built-in; write `{{{{` and `}}}}` for literal braces")]
    UnknownPlaceholder {
        /// The gate.
        gate: String,
        /// Position of the argument, from 1.
        index: usize,
        /// The argument as configured.
        arg: String,
        /// The placeholder's name.
        name: String,
    },
    /// An argument uses a placeholder naming a secret.
    #[error("process gate `{gate}`: argument {index} uses placeholder `{{{name}}}`, which names a secret; secrets are passed only as environment variables, never on the command line")]
    SecretPlaceholder {
        /// The gate.
        gate: String,
        /// Position of the argument, from 1.
        index: usize,
        /// The placeholder's name.
        name: String,
    },
    /// A secret name to look up is empty.
    #[error(
        "process gate `{gate}`: the secret for environment variable `{env}` has an empty name"
    )]
    EmptySecretName {
        /// The gate.
        gate: String,
        /// The variable it was meant for.
        env: String,
    },
    /// Secrets are configured but there is nowhere to get them from.
    #[error("process gate `{gate}`: secrets {names:?} are configured but no secret source is set")]
    NoSecretSource {
        /// The gate.
        gate: String,
        /// The variables that would carry secrets.
        names: Vec<String>,
    },
    /// The set of accepted exit codes is empty.
    #[error("process gate `{gate}`: no exit code is accepted, so the gate could never pass")]
    NoAcceptedExitCodes {
        /// The gate.
        gate: String,
    },
    /// An accepted exit code no process can return.
    #[error("process gate `{gate}`: accepted exit code {code} is outside 0..=255")]
    ExitCodeOutOfRange {
        /// The gate.
        gate: String,
        /// The code.
        code: i32,
    },
    /// The timeout is zero.
    #[error("process gate `{gate}`: the timeout must be longer than zero")]
    ZeroTimeout {
        /// The gate.
        gate: String,
    },
    /// The tail size is zero or too large.
    #[error("process gate `{gate}`: tail size of {value} bytes is outside 1..={max}")]
    TailSize {
        /// The gate.
        gate: String,
        /// The size given.
        value: usize,
        /// The largest accepted.
        max: usize,
    },
    /// The working directory is not an absolute path.
    #[error("process gate `{gate}`: working directory `{path}` is not an absolute path")]
    RelativeWorkingDir {
        /// The gate.
        gate: String,
        /// The path given.
        path: String,
    },
}

impl From<ProcessConfigError> for GateError {
    fn from(e: ProcessConfigError) -> Self {
        GateError::Misconfigured(e.to_string())
    }
}

/// Part of an argument template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
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
fn parse_template(arg: &str) -> Vec<Piece> {
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
    name: Option<String>,
    kind: GateKind,
    program: String,
    args: Vec<String>,
    working_dir: WorkingDir,
    allow_env: BTreeSet<String>,
    env: Vec<(String, String)>,
    params: Vec<(String, String)>,
    secrets: Vec<(String, String)>,
    secret_source: Option<Arc<dyn SecretSource>>,
    accepted: BTreeSet<i32>,
    timeout: Duration,
    on_timeout: OnTimeout,
    tail_bytes: usize,
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
    /// Longest the process may run, in real time (default [`DEFAULT_TIMEOUT`]).
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
    /// [`DEFAULT_TAIL_BYTES`], at most [`MAX_TAIL_BYTES`]).
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
// The gate

/// Runs a command as an isolated runner; passes when it exits with an accepted code.
///
/// See the [module documentation](self) for isolation, parameters, secrets, timeouts and the
/// evidence recorded.
///
/// ```
/// use std::time::Duration;
/// use promotion_core::testing::GateProbe;
/// use promotion_core::Verdict;
/// use promotion_gates::process::{MemorySecrets, ProcessGate};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let gate = ProcessGate::builder("sh")
///     .name("smoke")
///     .args([
///         "-c",
///         r#"echo "checking $1 in $PROMOTION_STAGE with $DEPLOY_TOKEN"; test -n "$DEPLOY_TOKEN""#,
///         "sh",
///         "{region}",
///     ])
///     .param("region", "eu-west-1")
///     .secret("DEPLOY_TOKEN")
///     .secret_source(MemorySecrets::new().with("DEPLOY_TOKEN", "tok-3f9a"))
///     .timeout(Duration::from_secs(30))
///     .build()?;
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let verdict = rt.block_on(GateProbe::new().stage("canary").evaluate(&gate))?;
/// assert!(matches!(verdict, Verdict::Pass(_)));
/// let ev = verdict.evidence();
/// assert_eq!(ev.facts["exit_code"], "0");
/// assert_eq!(
///     ev.data["stdout"]["tail"],
///     "checking eu-west-1 in canary with [REDACTED:DEPLOY_TOKEN]\n"
/// );
/// assert!(!serde_json::to_string(ev)?.contains("tok-3f9a"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ProcessGate {
    name: String,
    kind: GateKind,
    program: String,
    args: Vec<Vec<Piece>>,
    working_dir: WorkingDir,
    allow_env: BTreeSet<String>,
    env: BTreeMap<String, String>,
    params: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    secret_source: Option<Arc<dyn SecretSource>>,
    accepted: BTreeSet<i32>,
    timeout: Duration,
    on_timeout: OnTimeout,
    tail_bytes: usize,
}

impl ProcessGate {
    /// Starts configuring a gate that runs `program` (a path, or a name looked up on the
    /// child's `PATH`).
    pub fn builder(program: impl Into<String>) -> ProcessGateBuilder {
        ProcessGateBuilder {
            name: None,
            kind: GateKind::Automated,
            program: program.into(),
            args: Vec::new(),
            working_dir: WorkingDir::Temporary,
            allow_env: BTreeSet::from(["PATH".to_owned()]),
            env: Vec::new(),
            params: Vec::new(),
            secrets: Vec::new(),
            secret_source: None,
            accepted: BTreeSet::from([0]),
            timeout: DEFAULT_TIMEOUT,
            on_timeout: OnTimeout::Error,
            tail_bytes: DEFAULT_TAIL_BYTES,
        }
    }
    /// The program it runs.
    pub fn program(&self) -> &str {
        &self.program
    }
    /// The working-directory policy.
    pub fn working_dir(&self) -> &WorkingDir {
        &self.working_dir
    }
    /// The timeout, in real time.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn resolve_secrets(&self) -> Result<Vec<(String, Secret)>, GateError> {
        let mut out = Vec::with_capacity(self.secrets.len());
        if self.secrets.is_empty() {
            return Ok(out);
        }
        let Some(source) = &self.secret_source else {
            return Err(GateError::Misconfigured(format!(
                "process gate `{}`: secrets are configured but no secret source is set",
                self.name
            )));
        };
        for (env, name) in &self.secrets {
            let value = source.secret(name).await?;
            if value.expose().contains('\0') {
                return Err(GateError::Misconfigured(format!(
                    "process gate `{}`: secret `{name}` contains a NUL byte and cannot be passed as environment variable `{env}`",
                    self.name
                )));
            }
            out.push((env.clone(), value));
        }
        Ok(out)
    }

    fn render_args(&self, values: &BTreeMap<&str, &str>) -> Result<Vec<String>, GateError> {
        self.args
            .iter()
            .enumerate()
            .map(|(i, pieces)| {
                let mut s = String::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => s.push_str(t),
                        Piece::Param(n) => match values.get(n.as_str()) {
                            Some(v) => s.push_str(v),
                            None => {
                                return Err(GateError::Misconfigured(format!(
                                "process gate `{}`: argument {} uses unknown placeholder `{{{n}}}`",
                                self.name,
                                i + 1
                            )))
                            }
                        },
                    }
                }
                Ok(s)
            })
            .collect()
    }

    fn environment(
        &self,
        builtins: &[(&'static str, String)],
        secrets: &[(String, Secret)],
    ) -> BTreeMap<String, OsString> {
        let mut env = BTreeMap::new();
        for name in &self.allow_env {
            if let Some(v) = std::env::var_os(name) {
                env.insert(name.clone(), v);
            }
        }
        for (n, v) in self.env.iter().chain(&self.params) {
            env.insert(n.clone(), OsString::from(v));
        }
        for (n, v) in builtins {
            env.insert((*n).to_owned(), OsString::from(v));
        }
        for (n, v) in secrets {
            env.insert(n.clone(), OsString::from(v.expose()));
        }
        env
    }

    fn spawn(
        &self,
        args: &[String],
        env: &BTreeMap<String, OsString>,
        dir: &Path,
        shown: &Shown,
    ) -> Result<Child, GateError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .env_clear()
            .envs(env)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        cmd.spawn().map_err(|e| {
            let why = match e.kind() {
                io::ErrorKind::NotFound => {
                    "not found (a bare name is looked up on the PATH passed to the child)"
                        .to_owned()
                }
                io::ErrorKind::PermissionDenied => "is not executable (permission denied)".into(),
                _ => format!("could not be started: {e}"),
            };
            GateError::Misconfigured(format!(
                "process gate `{}`: command `{}` {why} (working directory {})",
                shown.gate,
                shown.program,
                dir.display()
            ))
        })
    }

    async fn supervise(
        &self,
        mut child: Child,
        mut out: StreamCapture,
        mut err: StreamCapture,
        shown: &Shown,
    ) -> Result<Supervised, GateError> {
        let started = Instant::now();
        let Some(pgid) = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .filter(|&id| id > 1)
        else {
            return Err(GateError::other(format!(
                "process gate `{}`: `{}` started without a usable process id",
                shown.gate, shown.program
            )));
        };
        let guard = GroupGuard::new(Pid::from_raw(pgid));
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(GateError::other(format!(
                "process gate `{}`: the output pipes of `{}` were not set up",
                shown.gate, shown.program
            )));
        };
        let leftovers = AtomicBool::new(false);
        let io_error = |stream: &str, e: io::Error| GateError::Other {
            message: format!(
                "process gate `{}`: reading {stream} of `{}` failed",
                shown.gate, shown.program
            ),
            source: Some(Box::new(e)),
        };
        let ending = {
            let work = async {
                tokio::join!(pump(stdout, &mut out), pump(stderr, &mut err), async {
                    let status = child.wait().await;
                    // The main process is gone: whatever it left in its group goes too.
                    leftovers.store(guard.sweep(), Ordering::Relaxed);
                    status
                })
            };
            let mut work = pin!(work);
            match tokio::time::timeout(self.timeout, work.as_mut()).await {
                Ok((o, e, status)) => {
                    o.map_err(|e| io_error("stdout", e))?;
                    e.map_err(|e| io_error("stderr", e))?;
                    let status = status.map_err(|e| GateError::Other {
                        message: format!(
                            "process gate `{}`: waiting for `{}` failed",
                            shown.gate, shown.program
                        ),
                        source: Some(Box::new(e)),
                    })?;
                    Ending::Exited(status)
                }
                Err(_elapsed) => {
                    guard.kill();
                    let closed = tokio::time::timeout(KILL_GRACE, work.as_mut())
                        .await
                        .is_ok();
                    Ending::TimedOut {
                        output_closed: closed,
                    }
                }
            }
        };
        let duration = started.elapsed();
        // Anything still running is killed when `child` and `guard` are dropped.
        Ok(Supervised {
            ending,
            duration,
            leftovers: leftovers.load(Ordering::Relaxed),
            stdout: out.finish(),
            stderr: err.finish(),
        })
    }

    fn verdict(
        &self,
        ctx: &GateContext<'_>,
        run: Supervised,
        shown: &Shown,
        env_names: Vec<String>,
        secret_env: Vec<String>,
    ) -> Result<Verdict, GateError> {
        let took = format_duration(run.duration);
        let cmd = shorten(&shown.command_line, SUMMARY_COMMAND_CHARS);
        let last_err = last_line(&run.stderr.tail)
            .map(|l| format!("; last stderr line: {}", shorten(&l, SUMMARY_STDERR_CHARS)))
            .unwrap_or_default();
        let mut facts: Vec<(&str, String)> = Vec::new();
        let (passed, status, summary) = match run.ending {
            Ending::Exited(status) => match (status.code(), status.signal()) {
                (Some(code), _) => {
                    facts.push(("exit_code", code.to_string()));
                    let ok = self.accepted.contains(&code);
                    let summary = if ok {
                        format!("`{cmd}` exited with code {code} after {took}")
                    } else {
                        format!(
                            "`{cmd}` exited with code {code}, expected {}, after {took}{last_err}",
                            self.expected()
                        )
                    };
                    (ok, serde_json::json!({ "exit_code": code }), summary)
                }
                (None, Some(sig)) => {
                    let name = signal_name(sig);
                    facts.push(("signal", name.clone()));
                    (
                        false,
                        serde_json::json!({
                            "signal": sig,
                            "signal_name": name,
                            "core_dumped": status.core_dumped(),
                        }),
                        format!("`{cmd}` was killed by signal {name} after {took}{last_err}"),
                    )
                }
                (None, None) => (
                    false,
                    serde_json::json!({ "unknown": status.to_string() }),
                    format!("`{cmd}` ended without an exit code or signal ({status})"),
                ),
            },
            Ending::TimedOut { output_closed } => {
                let limit = format_duration(self.timeout);
                tracing::warn!(
                    gate = %shown.gate,
                    command = %cmd,
                    timeout = %limit,
                    output_closed,
                    "process gate: no exit within the timeout; process group killed"
                );
                if self.on_timeout == OnTimeout::Error {
                    return Err(GateError::TimedOut(self.timeout));
                }
                facts.push(("timed_out", "true".to_owned()));
                let not_closed = if output_closed {
                    ""
                } else {
                    "; its output stayed open (a process outside its group?)"
                };
                (
                    false,
                    serde_json::json!({ "timed_out": true, "output_closed": output_closed }),
                    format!("`{cmd}` did not finish within {limit}; its process group was killed{not_closed}"),
                )
            }
        };
        tracing::debug!(gate = %shown.gate, passed, %summary, "process gate finished");
        let working_dir = match &self.working_dir {
            WorkingDir::Temporary => serde_json::json!({ "policy": "temporary" }),
            WorkingDir::Fixed(p) => {
                serde_json::json!({ "policy": "fixed", "path": p.display().to_string() })
            }
        };
        let data = serde_json::json!({
            "program": shown.program,
            "args": shown.args,
            "command_line": shown.command_line,
            "working_dir": working_dir,
            "env": env_names,
            "secret_env": secret_env,
            "status": status,
            "accepted_exit_codes": self.accepted,
            "duration_ms": u64::try_from(run.duration.as_millis()).unwrap_or(u64::MAX),
            "timeout_ms": u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            "leftover_processes_killed": run.leftovers,
            "stdout": run.stdout.to_json(),
            "stderr": run.stderr.to_json(),
        });
        let mut ev = Evidence::new(shown.gate.clone(), ctx.now(), summary).with_data(data);
        for (k, v) in facts {
            ev = ev.with_fact(k, v);
        }
        ev.attachments.push(run.stdout.attachment("stdout"));
        ev.attachments.push(run.stderr.attachment("stderr"));
        Ok(Verdict::pass_if(passed, ev))
    }

    fn expected(&self) -> String {
        let codes: Vec<String> = self.accepted.iter().map(i32::to_string).collect();
        match codes.as_slice() {
            [one] => one.clone(),
            many => format!("one of {}", many.join(", ")),
        }
    }
}

#[async_trait]
impl Gate for ProcessGate {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> GateKind {
        self.kind
    }
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(GateError::Misconfigured(format!(
                "process gate `{}` must be evaluated inside a tokio runtime with I/O and time enabled",
                self.name
            )));
        }
        let secrets = self.resolve_secrets().await?;
        let redactor = Redactor::new(&secrets, &self.name)?;
        let builtins = builtins(ctx);
        let mut values: BTreeMap<&str, &str> = BTreeMap::new();
        for (n, v) in &self.params {
            values.insert(n, v);
        }
        for (n, v) in &builtins {
            values.insert(n, v);
        }
        let args = self.render_args(&values)?;
        let shown = Shown::new(&redactor, &self.name, &self.program, &args);
        let env = self.environment(&builtins, &secrets);
        let env_names: Vec<String> = env.keys().cloned().collect();
        let secret_env: Vec<String> = secrets.iter().map(|(n, _)| n.clone()).collect();

        let temp = match &self.working_dir {
            WorkingDir::Temporary => Some(
                tempfile::Builder::new()
                    .prefix("promotion-process-gate-")
                    .tempdir()
                    .map_err(|e| GateError::Other {
                        message: format!(
                            "process gate `{}`: could not create a temporary working directory",
                            shown.gate
                        ),
                        source: Some(Box::new(e)),
                    })?,
            ),
            WorkingDir::Fixed(_) => None,
        };
        let dir = match (&temp, &self.working_dir) {
            (Some(t), _) => t.path().to_path_buf(),
            (None, WorkingDir::Fixed(p)) => {
                if !p.is_dir() {
                    return Err(GateError::Misconfigured(format!(
                        "process gate `{}`: working directory `{}` does not exist or is not a directory",
                        shown.gate,
                        p.display()
                    )));
                }
                p.clone()
            }
            (None, WorkingDir::Temporary) => {
                return Err(GateError::other(format!(
                    "process gate `{}`: no temporary working directory",
                    shown.gate
                )))
            }
        };

        tracing::debug!(
            gate = %shown.gate,
            command = %shown.command_line,
            env = ?env_names,
            "process gate: starting"
        );
        let child = self.spawn(&args, &env, &dir, &shown)?;
        drop(env);
        let out = StreamCapture::new(redactor.clone(), self.tail_bytes);
        let err = StreamCapture::new(redactor, self.tail_bytes);
        let run = self.supervise(child, out, err, &shown).await;
        if let Some(t) = temp {
            let path = t.path().display().to_string();
            if let Err(e) = t.close() {
                tracing::warn!(gate = %shown.gate, %path, error = %e, "process gate: could not remove the temporary working directory");
            }
        }
        self.verdict(ctx, run?, &shown, env_names, secret_env)
    }
}

fn builtins(ctx: &GateContext<'_>) -> Vec<(&'static str, String)> {
    let phase = match ctx.phase {
        PhaseId::Entry => "entry".to_owned(),
        PhaseId::Verification => "verification".to_owned(),
        PhaseId::Analysis { step } => format!("analysis:{step}"),
    };
    let source = ctx.release.source();
    vec![
        ("PROMOTION_RELEASE_ID", ctx.release.id().to_string()),
        ("PROMOTION_RELEASE_NAME", ctx.release.name().to_owned()),
        ("PROMOTION_REPOSITORY", source.repository.clone()),
        ("PROMOTION_COMMIT", source.commit.clone()),
        ("PROMOTION_PIPELINE", ctx.pipeline.as_str().to_owned()),
        ("PROMOTION_STAGE", ctx.stage.as_str().to_owned()),
        ("PROMOTION_PHASE", phase),
        ("PROMOTION_GATE", ctx.gate.as_str().to_owned()),
        ("PROMOTION_ROUND", ctx.round.to_string()),
        ("PROMOTION_ATTEMPT", ctx.attempt.to_string()),
    ]
}

/// The command as shown in evidence and messages: secrets redacted.
#[derive(Debug)]
struct Shown {
    gate: String,
    program: String,
    args: Vec<String>,
    command_line: String,
}

impl Shown {
    fn new(redactor: &Redactor, gate: &str, program: &str, args: &[String]) -> Self {
        let gate = redactor.redact_str(gate);
        let program = redactor.redact_str(program);
        let args: Vec<String> = args.iter().map(|a| redactor.redact_str(a)).collect();
        let command_line = std::iter::once(&program)
            .chain(&args)
            .map(|s| shell_quote(s))
            .collect::<Vec<_>>()
            .join(" ");
        Shown {
            gate,
            program,
            args,
            command_line,
        }
    }
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-[]".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn last_line(tail: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(tail);
    text.lines()
        .map(str::trim)
        .rev()
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn signal_name(sig: i32) -> String {
    Signal::try_from(sig)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

// ---------------------------------------------------------------------------------------------
// Supervision

enum Ending {
    Exited(ExitStatus),
    TimedOut { output_closed: bool },
}

struct Supervised {
    ending: Ending,
    duration: Duration,
    leftovers: bool,
    stdout: Captured,
    stderr: Captured,
}

/// Kills the child's process group: on timeout, after the main process exits, and when the
/// evaluation is dropped half-way.
struct GroupGuard {
    pgid: Pid,
    armed: AtomicBool,
}

impl GroupGuard {
    fn new(pgid: Pid) -> Self {
        GroupGuard {
            pgid,
            armed: AtomicBool::new(true),
        }
    }
    /// Sends SIGKILL to the group; true when some process received it.
    fn kill(&self) -> bool {
        // `killpg` with 0 or 1 would signal our own group or be platform-specific.
        if !self.armed.load(Ordering::Relaxed) || self.pgid.as_raw() <= 1 {
            return false;
        }
        killpg(self.pgid, Signal::SIGKILL).is_ok()
    }
    /// Kills what is left once the main process has been reaped, then disarms (the group id
    /// may be reused once the group is empty).
    fn sweep(&self) -> bool {
        let killed = self.kill();
        self.armed.store(false, Ordering::Relaxed);
        killed
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn pump<R: AsyncRead + Unpin>(mut reader: R, capture: &mut StreamCapture) -> io::Result<()> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => return Ok(()),
            Ok(n) => capture.feed(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Output capture

/// Replaces secret values by `[REDACTED:<VARIABLE>]` in a byte stream fed in arbitrary chunks.
///
/// Holds back the last `longest - 1` bytes of each chunk, where a secret might start that the
/// next chunk completes; everything before is final.
#[derive(Clone)]
struct Redactor {
    pattern: Option<regex::bytes::Regex>,
    markers: BTreeMap<Vec<u8>, Vec<u8>>,
    hold: usize,
    pending: Vec<u8>,
    count: u64,
}

impl Redactor {
    fn new(secrets: &[(String, Secret)], gate: &str) -> Result<Self, GateError> {
        let mut markers: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (env, value) in secrets {
            if value.expose().is_empty() {
                continue;
            }
            markers
                .entry(value.expose().as_bytes().to_vec())
                .or_insert_with(|| format!("[REDACTED:{env}]").into_bytes());
        }
        let mut values: Vec<&Vec<u8>> = markers.keys().collect();
        // Longest first: with leftmost-first alternation, a secret that extends another wins.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let hold = values
            .first()
            .map(|v| v.len().saturating_sub(1))
            .unwrap_or(0);
        let pattern = if values.is_empty() {
            None
        } else {
            let alternation = values
                .iter()
                .map(|v| regex::escape(&String::from_utf8_lossy(v)))
                .collect::<Vec<_>>()
                .join("|");
            // The error text of `regex` can quote the pattern, which is made of secrets.
            let re = regex::bytes::RegexBuilder::new(&alternation)
                .size_limit(64 << 20)
                .build()
                .map_err(|_| {
                    GateError::Misconfigured(format!(
                        "process gate `{gate}`: the secret values are too large to redact"
                    ))
                })?;
            Some(re)
        };
        Ok(Redactor {
            pattern,
            markers,
            hold,
            pending: Vec::new(),
            count: 0,
        })
    }

    fn redact_str(&self, s: &str) -> String {
        match &self.pattern {
            None => s.to_owned(),
            Some(re) => {
                let out = re.replace_all(s.as_bytes(), |caps: &regex::bytes::Captures<'_>| {
                    caps.get(0)
                        .and_then(|m| self.markers.get(m.as_bytes()))
                        .cloned()
                        .unwrap_or_else(|| b"[REDACTED]".to_vec())
                });
                String::from_utf8_lossy(&out).into_owned()
            }
        }
    }

    fn feed(&mut self, chunk: &[u8], sink: &mut Sink) {
        if self.pattern.is_none() {
            sink.write(chunk);
            return;
        }
        self.pending.extend_from_slice(chunk);
        self.drain(sink, false);
    }

    fn finish(&mut self, sink: &mut Sink) {
        self.drain(sink, true);
    }

    fn drain(&mut self, sink: &mut Sink, all: bool) {
        let Redactor {
            pattern,
            markers,
            hold,
            pending,
            count,
        } = self;
        let Some(re) = pattern else {
            sink.write(pending);
            pending.clear();
            return;
        };
        let safe_end = if all {
            pending.len()
        } else {
            pending.len().saturating_sub(*hold)
        };
        let mut pos = 0;
        for m in re.find_iter(pending) {
            // A match starting in the held-back bytes may still grow into a longer secret.
            if m.start() >= safe_end {
                break;
            }
            sink.write(pending.get(pos..m.start()).unwrap_or_default());
            sink.write(
                markers
                    .get(m.as_bytes())
                    .map(Vec::as_slice)
                    .unwrap_or(b"[REDACTED]"),
            );
            *count += 1;
            pos = m.end();
        }
        if pos < safe_end {
            sink.write(pending.get(pos..safe_end).unwrap_or_default());
            pos = safe_end;
        }
        pending.drain(..pos.min(pending.len()));
    }
}

/// Keeps the last `keep` bytes written, in at most `2 * keep` bytes of memory.
struct Tail {
    keep: usize,
    buf: Vec<u8>,
}

impl Tail {
    fn new(keep: usize) -> Self {
        Tail {
            keep,
            buf: Vec::new(),
        }
    }
    fn push(&mut self, bytes: &[u8]) {
        if bytes.len() >= self.keep {
            self.buf.clear();
            let start = bytes.len().saturating_sub(self.keep);
            self.buf
                .extend_from_slice(bytes.get(start..).unwrap_or_default());
            return;
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > self.keep.saturating_mul(2) {
            let excess = self.buf.len().saturating_sub(self.keep);
            self.buf.drain(..excess);
        }
    }
    fn bytes(&self) -> &[u8] {
        let start = self.buf.len().saturating_sub(self.keep);
        self.buf.get(start..).unwrap_or_default()
    }
}

/// Where redacted output goes: the hash, the count, the tail.
struct Sink {
    hasher: Sha256,
    len: u64,
    tail: Tail,
}

impl Sink {
    fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.hasher.update(bytes);
        self.len = self.len.saturating_add(bytes.len() as u64);
        self.tail.push(bytes);
    }
}

struct StreamCapture {
    raw: u64,
    redactor: Redactor,
    sink: Sink,
}

impl StreamCapture {
    fn new(redactor: Redactor, tail: usize) -> Self {
        StreamCapture {
            raw: 0,
            redactor,
            sink: Sink {
                hasher: Sha256::new(),
                len: 0,
                tail: Tail::new(tail),
            },
        }
    }
    fn feed(&mut self, chunk: &[u8]) {
        self.raw = self.raw.saturating_add(chunk.len() as u64);
        self.redactor.feed(chunk, &mut self.sink);
    }
    fn finish(mut self) -> Captured {
        self.redactor.finish(&mut self.sink);
        let tail = self.sink.tail.bytes().to_vec();
        Captured {
            raw_bytes: self.raw,
            transcript_bytes: self.sink.len,
            digest: Digest::from_bytes(self.sink.hasher.finalize().into()),
            redactions: self.redactor.count,
            tail_truncated: self.sink.len > tail.len() as u64,
            tail,
        }
    }
}

/// One stream, once the process is done.
struct Captured {
    raw_bytes: u64,
    transcript_bytes: u64,
    digest: Digest,
    redactions: u64,
    tail: Vec<u8>,
    tail_truncated: bool,
}

impl Captured {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "bytes": self.raw_bytes,
            "transcript_bytes": self.transcript_bytes,
            "sha256": self.digest.to_string(),
            "redactions": self.redactions,
            "tail": String::from_utf8_lossy(&self.tail),
            "tail_truncated": self.tail_truncated,
        })
    }
    fn attachment(&self, name: &str) -> Attachment {
        Attachment {
            name: name.to_owned(),
            digest: self.digest,
            size: self.transcript_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use nix::errno::Errno;
    use nix::unistd::Pid;
    use promotion_core::testing::GateProbe;
    use promotion_core::{Digest, GateError, GateKind, Verdict};
    use proptest::prelude::*;
    use sha2::{Digest as _, Sha256};

    use super::*;

    const TOKEN: &str = "tok-9f8e7d6c5b4a3921";

    fn data(file: &str) -> String {
        format!("{}/tests/data/process/{file}", env!("CARGO_MANIFEST_DIR"))
    }

    fn probe() -> GateProbe {
        GateProbe::new().stage("staging")
    }

    fn sh(script: &str) -> ProcessGateBuilder {
        ProcessGate::builder("/bin/sh").args(["-c", script])
    }

    fn data_str<'a>(v: &'a Verdict, path: &[&str]) -> &'a str {
        let mut cur = &v.evidence().data;
        for p in path {
            cur = &cur[*p];
        }
        cur.as_str()
            .unwrap_or_else(|| panic!("{path:?} is not a string in {cur}"))
    }

    fn fact<'a>(v: &'a Verdict, name: &str) -> Option<&'a str> {
        v.evidence().facts.get(name).map(String::as_str)
    }

    /// A process that no longer exists, or a zombie waiting for init to reap it (dead all the
    /// same: it runs nothing and holds nothing but its pid).
    fn is_gone(pid: i32) -> bool {
        match nix::sys::signal::kill(Pid::from_raw(pid), None) {
            Err(Errno::ESRCH) => true,
            Err(_) => false,
            Ok(()) => std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .is_some_and(|rest| rest.trim_start().starts_with('Z'))
                })
                .unwrap_or(true),
        }
    }

    async fn wait_gone(pid: i32) -> bool {
        for _ in 0..50 {
            if is_gone(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn read_pid(dir: &std::path::Path, file: &str) -> i32 {
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .trim()
            .parse()
            .unwrap()
    }

    // ----- exit status --------------------------------------------------------------------

    #[tokio::test]
    async fn bin_true_passes_with_digests_of_both_streams() {
        let gate = ProcessGate::builder("/bin/true").build().unwrap();
        assert_eq!(gate.name(), "process:true");
        assert_eq!(gate.kind(), GateKind::Automated);
        let v = probe().evaluate(&gate).await.unwrap();
        assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
        let ev = v.evidence();
        assert_eq!(ev.producer, "process:true");
        assert_eq!(fact(&v, "exit_code"), Some("0"));
        assert!(ev
            .summary
            .starts_with("`/bin/true` exited with code 0 after "));
        let names: Vec<&str> = ev.attachments.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["stdout", "stderr"]);
        for a in &ev.attachments {
            assert_eq!(a.digest, Digest::of(b""));
            assert_eq!(a.size, 0);
        }
        assert_eq!(ev.data["working_dir"]["policy"], "temporary");
        assert_eq!(ev.data["status"]["exit_code"], 0);
        assert_eq!(ev.data["accepted_exit_codes"], serde_json::json!([0]));
        assert_eq!(ev.data["leftover_processes_killed"], false);
    }

    #[tokio::test]
    async fn bin_false_fails() {
        let gate = ProcessGate::builder("/bin/false").build().unwrap();
        let v = probe().evaluate(&gate).await.unwrap();
        assert!(matches!(v, Verdict::Fail(_)), "{v:?}");
        assert_eq!(fact(&v, "exit_code"), Some("1"));
        assert!(v
            .evidence()
            .summary
            .contains("exited with code 1, expected 0"));
    }

    #[tokio::test]
    async fn smoke_check_passes_and_sees_params_and_builtins() {
        let gate = ProcessGate::builder("/bin/sh")
            .name("smoke")
            .args([data("smoke-check.sh"), "{region}-{PROMOTION_STAGE}".into()])
            .param("region", "eu-west-1")
            .build()
            .unwrap();
        let probe = probe();
        let v = probe.evaluate(&gate).await.unwrap();
        assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
        let out = data_str(&v, &["stdout", "tail"]);
        let commit = "a".repeat(40);
        assert!(
            out.contains(&format!(
                "smoke check of svc 1.0 (commit {commit}) in stage staging, region eu-west-1-staging"
            )),
            "{out}"
        );
        let id = probe.release_ref().id().to_string();
        assert!(out.contains(&format!("release {id}\n")), "{out}");
        assert!(out.ends_with("healthz: 200 OK\n"));
        assert_eq!(
            v.evidence().attachments[0].digest,
            Digest::of(out.as_bytes()),
            "the stdout digest covers the whole output"
        );
        assert_eq!(v.evidence().data["stdout"]["tail_truncated"], false);
        assert_eq!(
            v.evidence().data["args"][1],
            "eu-west-1-staging",
            "placeholders are resolved in the recorded arguments"
        );
    }

    #[tokio::test]
    async fn smoke_check_exit_3_fails_with_evidence() {
        let gate = ProcessGate::builder("/bin/sh")
            .args([data("smoke-check.sh"), "eu-west-1".into(), "3".into()])
            .build()
            .unwrap();
        let v = probe().evaluate(&gate).await.unwrap();
        let Verdict::Fail(ev) = &v else {
            panic!("expected fail, got {v:?}")
        };
        assert_eq!(fact(&v, "exit_code"), Some("3"));
        assert_eq!(ev.data["status"]["exit_code"], 3);
        assert!(
            ev.summary.contains("exited with code 3, expected 0, after"),
            "{}",
            ev.summary
        );
        assert!(
            ev.summary
                .ends_with("; last stderr line: smoke check failed in eu-west-1"),
            "{}",
            ev.summary
        );
        let err = data_str(&v, &["stderr", "tail"]);
        assert!(err.starts_with("GET https://eu-west-1.example.com/healthz: 503"));
        assert_eq!(ev.attachments[1].digest, Digest::of(err.as_bytes()));
        assert_eq!(ev.data["stderr"]["bytes"], err.len());
    }

    #[tokio::test]
    async fn accepted_exit_codes_are_configurable() {
        let gate = ProcessGate::builder("/bin/sh")
            .args([data("smoke-check.sh"), "eu".into(), "3".into()])
            .accept_exit_codes([0, 3])
            .build()
            .unwrap();
        let v = probe().evaluate(&gate).await.unwrap();
        assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
        assert_eq!(fact(&v, "exit_code"), Some("3"));
        let gate = ProcessGate::builder("/bin/true")
            .accept_exit_codes([1, 2])
            .build()
            .unwrap();
        let v = probe().evaluate(&gate).await.unwrap();
        assert!(matches!(v, Verdict::Fail(_)));
        assert!(v.evidence().summary.contains("expected one of 1, 2"));
    }

    #[tokio::test]
    async fn killed_by_a_signal_fails() {
        let gate = sh("echo about to die >&2; kill -TERM $$").build().unwrap();
        let v = probe().evaluate(&gate).await.unwrap();
        let Verdict::Fail(ev) = &v else {
            panic!("expected fail, got {v:?}")
        };
        assert_eq!(fact(&v, "signal"), Some("SIGTERM"));
        assert_eq!(fact(&v, "exit_code"), None);
        assert_eq!(ev.data["status"]["signal"], 15);
        assert!(
            ev.summary.contains("was killed by signal SIGTERM after")
                && ev.summary.ends_with("last stderr line: about to die"),
            "{}",
            ev.summary
        );
    }

    // ----- timeouts and process groups ----------------------------------------------------

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let gate = ProcessGate::builder("/bin/sh")
            .arg(data("spawn-and-hang.sh"))
            .working_dir(dir.path())
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let started = Instant::now();
        let r = probe().evaluate(&gate).await;
        assert!(
            matches!(r, Err(GateError::TimedOut(d)) if d == Duration::from_millis(500)),
            "{r:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "killed promptly"
        );
        let runner = read_pid(dir.path(), "runner.pid");
        let grandchild = read_pid(dir.path(), "grandchild.pid");
        assert!(wait_gone(runner).await, "runner {runner} still alive");
        assert!(
            wait_gone(grandchild).await,
            "grandchild {grandchild} still alive"
        );
        assert!(dir.path().is_dir(), "a configured working dir is kept");
    }

    #[tokio::test]
    async fn dropping_the_evaluation_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let gate = ProcessGate::builder("/bin/sh")
            .arg(data("spawn-and-hang.sh"))
            .working_dir(dir.path())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        // The engine's own timeout (or a shutdown) drops the evaluation half-way.
        let probe = probe();
        let r = tokio::time::timeout(Duration::from_millis(500), probe.evaluate(&gate)).await;
        assert!(r.is_err(), "the outer timeout fired first");
        let grandchild = read_pid(dir.path(), "grandchild.pid");
        assert!(wait_gone(read_pid(dir.path(), "runner.pid")).await);
        assert!(
            wait_gone(grandchild).await,
            "grandchild {grandchild} still alive"
        );
    }

    #[tokio::test]
    async fn timeout_can_be_a_fail_with_partial_output() {
        let dir = tempfile::tempdir().unwrap();
        let gate = ProcessGate::builder("/bin/sh")
            .arg(data("spawn-and-hang.sh"))
            .working_dir(dir.path())
            .timeout(Duration::from_millis(500))
            .on_timeout(OnTimeout::Fail)
            .build()
            .unwrap();
        let v = probe().evaluate(&gate).await.unwrap();
        let Verdict::Fail(ev) = &v else {
            panic!("expected fail, got {v:?}")
        };
        assert_eq!(fact(&v, "timed_out"), Some("true"));
        assert_eq!(ev.data["status"]["timed_out"], true);
        assert_eq!(ev.data["status"]["output_closed"], true);
        assert!(
            ev.summary
                .ends_with("did not finish within 500 ms; its process group was killed"),
            "{}",
            ev.summary
        );
        let grandchild = read_pid(dir.path(), "grandchild.pid");
        assert_eq!(
            data_str(&v, &["stdout", "tail"]),
            format!("started grandchild {grandchild}\n")
        );
        assert!(wait_gone(grandchild).await);
    }

    #[tokio::test]
    async fn processes_left_behind_are_killed_when_the_main_one_exits() {
        let dir = tempfile::tempdir().unwrap();
        // The background sleep keeps stdout open: without the sweep the gate would wait for it.
        let gate = sh("sleep 300 & echo $! > bg.pid; echo done")
            .working_dir(dir.path())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let started = Instant::now();
        let v = probe().evaluate(&gate).await.unwrap();
        assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(v.evidence().data["leftover_processes_killed"], true);
        assert_eq!(data_str(&v, &["stdout", "tail"]), "done\n");
        assert!(wait_gone(read_pid(dir.path(), "bg.pid")).await);
    }

    // ----- output capture -----------------------------------------------------------------

    fn peak_rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    #[tokio::test]
    async fn a_flood_of_output_is_hashed_in_bounded_memory() {
        const N: u64 = 200_000_000;
        let gate = sh(&format!("yes | head -c {N}"))
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap();
        let before = peak_rss_kib();
        let v = probe().evaluate(&gate).await.unwrap();
        let grew = peak_rss_kib().saturating_sub(before);
        eprintln!("flood: peak RSS grew by {grew} KiB");
        assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
        assert!(
            grew < 64 * 1024,
            "peak RSS grew by {grew} KiB for 200 MB of output"
        );
        let ev = v.evidence();
        assert_eq!(ev.data["stdout"]["bytes"], N);
        assert_eq!(ev.data["stdout"]["transcript_bytes"], N);
        assert_eq!(ev.data["stdout"]["tail_truncated"], true);
        let mut expected = Sha256::new();
        let block = "y\n".repeat(32 * 1024);
        for _ in 0..N / block.len() as u64 {
            expected.update(block.as_bytes());
        }
        expected.update(&block.as_bytes()[..(N % block.len() as u64) as usize]);
        let expected = Digest::from_bytes(expected.finalize().into());
        assert_eq!(ev.attachments[0].digest, expected);
        assert_eq!(ev.attachments[0].size, N);
        assert_eq!(ev.data["stdout"]["sha256"], expected.to_string());
        assert_eq!(
            data_str(&v, &["stdout", "tail"]),
            "y\n".repeat(DEFAULT_TAIL_BYTES / 2)
        );
    }

    #[tokio::test]
    async fn output_that_is_not_utf8_is_counted_and_hashed_raw() {
        let gate = sh(r"printf '\377\376ok\n'; printf 'e\n' >&2")
            .tail_bytes(3)
            .build()
            .unwrap();
        let v = probe().evaluate(&gate).await.unwrap();
        let ev = v.evidence();
        assert_eq!(ev.attachments[0].digest, Digest::of(b"\xff\xfeok\n"));
        assert_eq!(ev.data["stdout"]["bytes"], 5);
        assert_eq!(
            ev.data["stdout"]["tail"], "ok\n",
            "tail keeps the last 3 bytes"
        );
        assert_eq!(ev.data["stdout"]["tail_truncated"], true);
        assert_eq!(ev.data["stderr"]["tail"], "e\n");
        let gate = sh(r"printf '\377\376ok\n'").build().unwrap();
        let v = probe().evaluate(&gate).await.unwrap();
        assert_eq!(data_str(&v, &["stdout", "tail"]), "\u{fffd}\u{fffd}ok\n");
    }

    // ----- environment and working directory ----------------------------------------------

    #[tokio::test]
    async fn the_environment_is_cleared_to_the_allowlist() {
        let present: Vec<&str> = ["CARGO_MANIFEST_DIR", "HOME", "CARGO", "CARGO_PKG_NAME"]
            .into_iter()
            .filter(|n| std::env::var_os(n).is_some())
            .collect();
        assert!(present.len() >= 2, "the test needs two host variables");
        let (hidden, allowed) = (present[0], present[1]);
        let gate = sh("env")
            .allow_env(allowed)
            .env("EXPLICIT", "1")
            .param("region", "eu")
            .build()
            .unwrap();
        let v = probe().evaluate(&gate).await.unwrap();
        let out = data_str(&v, &["stdout", "tail"]);
        let names: BTreeSet<&str> = out.lines().filter_map(|l| l.split('=').next()).collect();
        assert!(!names.contains(hidden), "{hidden} leaked into {names:?}");
        let mut expected: BTreeSet<&str> = BUILTIN_PARAMS.into_iter().collect();
        expected.extend(["PATH", allowed, "EXPLICIT", "region"]);
        let extra: Vec<_> = names.difference(&expected).collect();
        assert!(extra.iter().all(|n| **n == "PWD"), "unexpected {extra:?}");
        assert!(expected.is_subset(&names), "{names:?}");
        assert!(out.contains(&format!("{allowed}={}\n", std::env::var(allowed).unwrap())));
        let recorded: BTreeSet<&str> = v.evidence().data["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(recorded, expected, "evidence lists the names passed");
        assert!(v.evidence().data["env"].to_string().find('=').is_none());
    }

    #[tokio::test]
    async fn the_temporary_working_directory_is_removed() {
        let gate = sh("pwd; touch made-here").build().unwrap();
        let v = probe().evaluate(&gate).await.unwrap();
        let dir = PathBuf::from(data_str(&v, &["stdout", "tail"]).trim());
        assert!(
            dir.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("promotion-process-gate-"),
            "{dir:?}"
        );
        assert!(!dir.exists(), "{dir:?} was left behind");
    }

    // ----- secrets --------------------------------------------------------------------------

    #[tokio::test]
    async fn a_secret_reaches_the_child_but_never_the_evidence() {
        let gate = ProcessGate::builder("/bin/sh")
            .arg(data("use-secret.sh"))
            .secret("DEPLOY_TOKEN")
            .secret_source(MemorySecrets::new().with("DEPLOY_TOKEN", TOKEN))
            .build()
            .unwrap();
        let v = probe().evaluate(&gate).await.unwrap();
        assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
        let ev = v.evidence();
        let out = data_str(&v, &["stdout", "tail"]);
        let expected_out = "curl -H 'Authorization: Bearer [REDACTED:DEPLOY_TOKEN]' \
                            https://deploy.example.com/api/status\nstatus: ready\n";
        assert_eq!(out, expected_out);
        assert_eq!(
            data_str(&v, &["stderr", "tail"]),
            "debug: using token [REDACTED:DEPLOY_TOKEN]\n"
        );
        assert_eq!(ev.data["stdout"]["redactions"], 1);
        assert_eq!(
            ev.data["stdout"]["bytes"],
            expected_out.len() - "[REDACTED:DEPLOY_TOKEN]".len() + TOKEN.len(),
            "the byte count is what the process wrote"
        );
        // The digest is of the redacted transcript: it cannot be used to confirm a guess.
        assert_eq!(
            ev.attachments[0].digest,
            Digest::of(expected_out.as_bytes())
        );
        assert_eq!(ev.data["secret_env"], serde_json::json!(["DEPLOY_TOKEN"]));
        let json = serde_json::to_string(ev).unwrap();
        assert!(!json.contains(TOKEN));
        assert!(!format!("{v:?}").contains(TOKEN));
        assert!(!format!("{gate:?}").contains(TOKEN));
        assert!(format!("{gate:?}").contains("DEPLOY_TOKEN"));
    }

    #[tokio::test]
    async fn a_secret_written_into_the_arguments_is_redacted_there_too() {
        let gate = sh(&format!(r#"test "$TOKEN" = '{TOKEN}' && echo same"#))
            .secret_as("TOKEN", "deploy/token")
            .secret_source(Arc::new(MemorySecrets::new().with("deploy/token", TOKEN)))
            .build()
            .unwrap();
        let v = probe().evaluate(&gate).await.unwrap();
        assert!(
            matches!(v, Verdict::Pass(_)),
            "the child received it: {v:?}"
        );
        let ev = v.evidence();
        assert_eq!(
            ev.data["args"][1],
            r#"test "$TOKEN" = '[REDACTED:TOKEN]' && echo same"#
        );
        assert!(!serde_json::to_string(ev).unwrap().contains(TOKEN));
        assert!(!ev.summary.contains(TOKEN));
        // An error message naming the command is redacted as well.
        let gate = ProcessGate::builder(format!("/nonexistent/{TOKEN}"))
            .secret("T")
            .secret_source(MemorySecrets::new().with("T", TOKEN))
            .build()
            .unwrap();
        let e = probe().evaluate(&gate).await.unwrap_err();
        assert!(!e.report().contains(TOKEN), "{}", e.report());
        assert!(
            e.report().contains("/nonexistent/[REDACTED:T]"),
            "{}",
            e.report()
        );
    }

    #[tokio::test]
    async fn a_missing_secret_is_a_configuration_error_naming_it() {
        let gate = ProcessGate::builder("/bin/true")
            .secret("DEPLOY_TOKEN")
            .secret_source(MemorySecrets::new().with("OTHER", TOKEN))
            .build()
            .unwrap();
        let e = probe().evaluate(&gate).await.unwrap_err();
        assert!(
            matches!(&e, GateError::Misconfigured(m) if m.contains("`DEPLOY_TOKEN`")),
            "{e:?}"
        );
        assert!(!e.report().contains(TOKEN));
        let gate = ProcessGate::builder("/bin/true")
            .secret("TEST_UNSET_SECRET_1")
            .secret_source(EnvSecrets::with_prefix("X_"))
            .build()
            .unwrap();
        let e = probe().evaluate(&gate).await.unwrap_err();
        assert!(e.report().contains("X_TEST_UNSET_SECRET_1"), "{e}");
    }

    // ----- bad input ----------------------------------------------------------------------

    #[tokio::test]
    async fn a_nonexistent_command_is_an_error_naming_it() {
        for program in ["definitely-not-a-command-7f3a", "/nonexistent/bin/check"] {
            let gate = ProcessGate::builder(program).build().unwrap();
            let e = probe().evaluate(&gate).await.unwrap_err();
            assert!(
                matches!(&e, GateError::Misconfigured(m)
                    if m.contains(&format!("command `{program}` not found"))),
                "{e:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_script_without_the_execute_bit_is_an_error_naming_it() {
        let path = data("not-executable.sh");
        let gate = ProcessGate::builder(path.as_str()).build().unwrap();
        let e = probe().evaluate(&gate).await.unwrap_err();
        assert!(
            matches!(&e, GateError::Misconfigured(m)
                if m.contains(&path) && m.contains("is not executable")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_missing_working_directory_is_an_error_naming_it() {
        let gate = ProcessGate::builder("/bin/true")
            .working_dir("/nonexistent/promotion-wd")
            .build()
            .unwrap();
        let e = probe().evaluate(&gate).await.unwrap_err();
        assert!(
            matches!(&e, GateError::Misconfigured(m) if m.contains("`/nonexistent/promotion-wd` does not exist")),
            "{e:?}"
        );
    }

    #[test]
    fn outside_a_tokio_runtime_it_is_an_error_not_a_panic() {
        let gate = ProcessGate::builder("/bin/true").build().unwrap();
        let e = futures::executor::block_on(probe().evaluate(&gate)).unwrap_err();
        assert!(
            matches!(&e, GateError::Misconfigured(m) if m.contains("tokio runtime")),
            "{e:?}"
        );
    }

    // ----- configuration --------------------------------------------------------------------

    #[test]
    fn bad_settings_are_typed_errors_at_construction() {
        use ProcessConfigError as E;
        let b = || ProcessGate::builder("/bin/true");
        let err = |b: ProcessGateBuilder| b.build().unwrap_err();
        assert_eq!(err(ProcessGate::builder("")), E::EmptyProgram);
        assert!(matches!(err(b().name(" x")), E::InvalidName(_)));
        assert!(
            matches!(err(b().param("1x", "v")), E::InvalidEnvName { name, .. } if name == "1x")
        );
        assert!(matches!(err(b().env("A-B", "v")), E::InvalidEnvName { .. }));
        assert!(matches!(
            err(b().allow_env("A B")),
            E::InvalidEnvName { .. }
        ));
        assert!(matches!(
            err(b().param("PROMOTION_STAGE", "x")),
            E::ReservedName { name, .. } if name == "PROMOTION_STAGE"
        ));
        assert!(matches!(
            err(b().param("A", "1").env("A", "2")),
            E::DuplicateName {
                first: "environment variable",
                second: "parameter",
                ..
            }
        ));
        assert!(matches!(
            err(b().param("A", "1").param("A", "2")),
            E::DuplicateName { .. }
        ));
        assert!(matches!(
            err(b()
                .param("A", "1")
                .secret("A")
                .secret_source(MemorySecrets::new())),
            E::DuplicateName {
                second: "secret",
                ..
            }
        ));
        assert!(
            matches!(err(b().param("A", "x\0y")), E::NulByte { what, .. } if what == "parameter `A`")
        );
        assert!(matches!(err(b().arg("a\0")), E::NulByte { what, .. } if what == "argument 1"));
        assert!(matches!(
            err(b().args(["ok", "{regoin}"]).param("region", "eu")),
            E::UnknownPlaceholder { index: 2, name, .. } if name == "regoin"
        ));
        assert!(matches!(
            err(b()
                .arg("{T}")
                .secret("T")
                .secret_source(MemorySecrets::new())),
            E::SecretPlaceholder { index: 1, .. }
        ));
        assert!(matches!(err(b().secret("T")), E::NoSecretSource { names, .. } if names == ["T"]));
        assert!(matches!(
            err(b().secret_as("T", "").secret_source(MemorySecrets::new())),
            E::EmptySecretName { .. }
        ));
        assert!(matches!(
            err(b().accept_exit_codes([])),
            E::NoAcceptedExitCodes { .. }
        ));
        assert!(matches!(
            err(b().accept_exit_codes([0, 256])),
            E::ExitCodeOutOfRange { code: 256, .. }
        ));
        assert!(matches!(
            err(b().accept_exit_codes([-1])),
            E::ExitCodeOutOfRange { code: -1, .. }
        ));
        assert!(matches!(
            err(b().timeout(Duration::ZERO)),
            E::ZeroTimeout { .. }
        ));
        assert!(matches!(
            err(b().tail_bytes(0)),
            E::TailSize { value: 0, .. }
        ));
        assert!(matches!(
            err(b().tail_bytes(MAX_TAIL_BYTES + 1)),
            E::TailSize { .. }
        ));
        assert!(
            matches!(err(b().working_dir("rel/dir")), E::RelativeWorkingDir { path, .. } if path == "rel/dir")
        );
        // Messages name the gate and the setting.
        let msg = err(b().name("smoke").args(["x", "{nope}"])).to_string();
        assert!(
            msg.contains("process gate `smoke`")
                && msg.contains("argument 2")
                && msg.contains("`{nope}`"),
            "{msg}"
        );
        let as_gate: GateError = err(b().timeout(Duration::ZERO)).into();
        assert!(matches!(as_gate, GateError::Misconfigured(_)));
    }

    #[test]
    fn name_kind_and_defaults() {
        let gate = ProcessGate::builder("/usr/local/bin/run-migrations")
            .build()
            .unwrap();
        assert_eq!(gate.name(), "process:run-migrations");
        assert_eq!(gate.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(gate.working_dir(), &WorkingDir::Temporary);
        assert_eq!(gate.program(), "/usr/local/bin/run-migrations");
        let gate = ProcessGate::builder("opa")
            .name("policy-check")
            .kind(GateKind::Compliance)
            .build()
            .unwrap();
        assert_eq!(gate.name(), "policy-check");
        assert_eq!(gate.kind(), GateKind::Compliance);
    }

    #[test]
    fn placeholders_and_literal_braces() {
        use Piece::{Param as P, Text as T};
        assert_eq!(
            parse_template("--region={region}/{PROMOTION_STAGE}"),
            [
                T("--region=".into()),
                P("region".into()),
                T("/".into()),
                P("PROMOTION_STAGE".into())
            ]
        );
        assert_eq!(
            parse_template("awk '{print $1}'"),
            [T("awk '{print $1}'".into())]
        );
        assert_eq!(parse_template("${{HOME}}"), [T("${HOME}".into())]);
        assert_eq!(parse_template("{{region}}"), [T("{region}".into())]);
        assert_eq!(parse_template("{1x} {} {a"), [T("{1x} {} {a".into())]);
        assert_eq!(
            parse_template("}{x}}"),
            [T("}".into()), P("x".into()), T("}".into())]
        );
        assert!(parse_template("").is_empty());
    }

    // ----- redaction and tails ------------------------------------------------------------

    fn redactor(secrets: &[(&str, &str)]) -> Redactor {
        let s: Vec<(String, Secret)> = secrets
            .iter()
            .map(|(n, v)| ((*n).to_owned(), Secret::new(*v)))
            .collect();
        Redactor::new(&s, "t").unwrap()
    }

    fn stream(r: Redactor, chunks: &[&[u8]], keep: usize) -> Captured {
        let mut c = StreamCapture::new(r, keep);
        for ch in chunks {
            c.feed(ch);
        }
        c.finish()
    }

    #[test]
    fn redaction_spans_chunks_and_prefers_the_longer_secret() {
        let r = redactor(&[("A", "abc"), ("B", "abcdef"), ("E", "")]);
        let input = b"xxabcdefyyabczzab";
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        let c = stream(r.clone(), &bytewise, 1024);
        assert_eq!(c.tail, b"xx[REDACTED:B]yy[REDACTED:A]zzab");
        assert_eq!(c.redactions, 2);
        assert_eq!(c.raw_bytes, input.len() as u64);
        assert_eq!(c.digest, Digest::of(&c.tail));
        assert_eq!(r.redact_str("abcdef abc"), "[REDACTED:B] [REDACTED:A]");
    }

    #[test]
    fn the_tail_never_shows_part_of_a_secret_cut_at_its_start() {
        // The tail starts in the middle of where the secret was: it shows the end of the
        // marker, never the end of the secret.
        let r = redactor(&[("S", "hunter2")]);
        let c = stream(r, &[b"pass=hunter2;ok"], 8);
        assert_eq!(c.tail, b"ED:S];ok");
    }

    proptest! {
        #[test]
        fn streaming_redaction_equals_whole_redaction(
            input in proptest::collection::vec(prop::sample::select(b"abcx".to_vec()), 0..200),
            cuts in proptest::collection::vec(1usize..7, 0..60),
        ) {
            let r = redactor(&[("A", "ab"), ("B", "abca"), ("C", "cx")]);
            let whole = r.redact_str(std::str::from_utf8(&input).unwrap());
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut rest = input.as_slice();
            for c in cuts {
                let (a, b) = rest.split_at(c.min(rest.len()));
                chunks.push(a);
                rest = b;
            }
            chunks.push(rest);
            let c = stream(r, &chunks, 4096);
            prop_assert_eq!(String::from_utf8(c.tail.clone()).unwrap(), whole.clone());
            prop_assert_eq!(c.digest, Digest::of(whole.as_bytes()));
            prop_assert_eq!(c.raw_bytes, input.len() as u64);
        }

        #[test]
        fn the_tail_is_bounded_and_exact(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 0..40),
            keep in 1usize..64,
        ) {
            let mut t = Tail::new(keep);
            let mut all = Vec::new();
            for p in &pieces {
                t.push(p);
                all.extend_from_slice(p);
                prop_assert!(t.buf.len() <= 2 * keep);
            }
            prop_assert_eq!(t.bytes(), &all[all.len().saturating_sub(keep)..]);
        }
    }
}
