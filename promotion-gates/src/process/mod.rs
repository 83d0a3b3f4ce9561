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
//! | exit code in the accepted set          | [`Verdict::Pass`](promotion_core::Verdict::Pass)                                 |
//! | another exit code                      | [`Verdict::Fail`](promotion_core::Verdict::Fail)                                 |
//! | killed by a signal                     | [`Verdict::Fail`](promotion_core::Verdict::Fail)                                 |
//! | still running at the timeout           | [`GateError::TimedOut`] (default), or [`Verdict::Fail`](promotion_core::Verdict::Fail) with [`OnTimeout::Fail`] |
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

use std::path::PathBuf;
use std::time::Duration;

use promotion_core::{GateError, InvalidName};

pub use crate::secrets::{EnvSecrets, MemorySecrets, Secret, SecretSource};

mod builder;
mod capture;
mod gate;
mod supervise;

#[cfg(test)]
use builder::parse_template;
use builder::Piece;
pub use builder::ProcessGateBuilder;
#[cfg(test)]
use capture::Tail;
use capture::{Captured, Redactor, StreamCapture};
pub use gate::ProcessGate;
use supervise::{pump, Ending, GroupGuard, Supervised};

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
    /// The release fails the gate: [`Verdict::Fail`](promotion_core::Verdict::Fail) with the partial output as evidence.
    Fail,
}

/// A setting of a [`ProcessGate`] that cannot work, found when the gate is built.
#[allow(missing_docs)] // the fields are named for what they hold
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
        gate: String,
        /// What the name was given for (`parameter`, `environment variable`, `secret`).
        what: &'static str,
        name: String,
    },
    /// A name uses the `PROMOTION_` prefix reserved for the built-in parameters.
    #[error("process gate `{gate}`: {what} `{name}` uses the prefix `PROMOTION_`, which is reserved for the built-in parameters")]
    ReservedName {
        gate: String,
        /// What the name was given for.
        what: &'static str,
        name: String,
    },
    /// The same variable is set twice.
    #[error("process gate `{gate}`: environment variable `{name}` is set twice (as {first} and as {second})")]
    DuplicateName {
        gate: String,
        name: String,
        /// The first setting (`parameter`, `environment variable`, `secret`).
        first: &'static str,
        /// The second setting.
        second: &'static str,
    },
    /// A value contains a NUL byte, which no process can receive.
    #[error("process gate `{gate}`: {what} contains a NUL byte, which a process cannot receive")]
    NulByte {
        gate: String,
        /// Which value (`argument 2`, `parameter region`).
        what: String,
    },
    /// An argument uses a placeholder that is neither a parameter nor a built-in.
    #[error("process gate `{gate}`: argument {index} (`{arg}`) uses placeholder `{{{name}}}`, which is neither a parameter nor a built-in; write `{{{{` and `}}}}` for literal braces")]
    UnknownPlaceholder {
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
        gate: String,
        /// The variable it was meant for.
        env: String,
    },
    /// Secrets are configured but there is nowhere to get them from.
    #[error("process gate `{gate}`: secrets {names:?} are configured but no secret source is set")]
    NoSecretSource {
        gate: String,
        /// The variables that would carry secrets.
        names: Vec<String>,
    },
    /// The set of accepted exit codes is empty.
    #[error("process gate `{gate}`: no exit code is accepted, so the gate could never pass")]
    NoAcceptedExitCodes { gate: String },
    /// An accepted exit code no process can return.
    #[error("process gate `{gate}`: accepted exit code {code} is outside 0..=255")]
    ExitCodeOutOfRange { gate: String, code: i32 },
    /// The timeout is zero.
    #[error("process gate `{gate}`: the timeout must be longer than zero")]
    ZeroTimeout { gate: String },
    /// The tail size is zero or too large.
    #[error("process gate `{gate}`: tail size of {value} bytes is outside 1..={max}")]
    TailSize {
        gate: String,
        /// The size given.
        value: usize,
        /// The largest accepted.
        max: usize,
    },
    /// The working directory is not an absolute path.
    #[error("process gate `{gate}`: working directory `{path}` is not an absolute path")]
    RelativeWorkingDir {
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

#[cfg(test)]
mod tests;
