//! Exit codes and the errors that choose them.

use std::fmt;

use promotion_config::ConfigError;
use promotion_core::EngineError;

/// The command did what was asked; the release is promoted as far as it can go.
pub(crate) const OK: u8 = 0;
/// Refused or failed: a gate failed, an approver rejected, a stage was aborted or rolled
/// back, the state machine refused the command, the log does not verify, or what-if found a
/// promotion the new template would have blocked.
pub(crate) const REFUSED: u8 = 1;
/// Usage or validation error: bad arguments, a template or service file refused (with its
/// file, line and column), an unknown release.
pub(crate) const USAGE: u8 = 2;
/// Store or I/O error: the database, the key files, a file that cannot be written.
pub(crate) const STORE: u8 = 3;
/// Waiting for a human: an approval, a judgement of an inconclusive gate, a manual start.
pub(crate) const HUMAN: u8 = 4;
/// Waiting for a time: a sampling round, a rollout pause, a soak. Run the command again then.
pub(crate) const TIME: u8 = 5;

/// The exit codes, as shown by `--help` and the README.
pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0  ok: done, or the release is promoted as far as it can go
  1  refused or failed: a gate failed, a rejection, an abort or rollback, a command the
     state machine refused, a log that does not verify, a past promotion what-if would block
  2  usage or validation error (templates and service files: file:line:column: message)
  3  store or I/O error (database, key files, files that cannot be written)
  4  waiting for a human: an approval, a judgement, a manual start
  5  waiting for a time: a sampling round, a rollout pause, a soak (run again later)";

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Refused by the state machine, or a check failed.
    Refused(String),
    /// Bad arguments or an unknown release.
    Usage(String),
    /// A template or service file was refused.
    Config(ConfigError),
    /// The store or the file system failed.
    Store(String),
}

impl Failure {
    /// The exit code.
    pub(crate) fn code(&self) -> u8 {
        match self {
            Failure::Refused(_) => REFUSED,
            Failure::Usage(_) | Failure::Config(_) => USAGE,
            Failure::Store(_) => STORE,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(m) => write!(f, "refused: {m}"),
            Failure::Usage(m) => f.write_str(m),
            Failure::Config(e) => write!(f, "{e}"),
            Failure::Store(m) => write!(f, "store: {m}"),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Config(e)
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Refused(r) => Failure::Refused(r.to_string()),
            EngineError::UnknownRelease(_) | EngineError::InvalidName(_) => {
                Failure::Usage(e.to_string())
            }
            other => Failure::Store(promotion_core::report_chain(&other)),
        }
    }
}

impl From<promotion_core::StoreError> for Failure {
    fn from(e: promotion_core::StoreError) -> Self {
        Failure::Store(promotion_core::report_chain(&e))
    }
}

impl From<promotion_audit::AuditError> for Failure {
    fn from(e: promotion_audit::AuditError) -> Self {
        Failure::Store(promotion_core::report_chain(&e))
    }
}
