//! Test reports and performance budgets.
//!
//! - [`TestReportGate`] reads JUnit XML as cargo-nextest, pytest, Maven Surefire and jest-junit
//!   write it, counts the outcomes from the `<testcase>` elements themselves (the counts the
//!   tools declare in attributes may be missing or wrong; disagreements are recorded), and
//!   passes when the configured thresholds hold.
//! - [`PerfBudgetGate`] reads a benchmark result — criterion's `estimates.json` or a flat JSON
//!   object of named figures — and compares each figure with budgets and with a baseline file.
//!
//! Both record the digest of every file they read, and turn malformed input into
//! [`GateError::InvalidInput`] naming the file (and the line, where the parser knows it):
//! never a pass.

use std::io::ErrorKind;
use std::path::Path;

use promotion_core::GateError;

use crate::input::{invalid_input, line_of};
pub use crate::perfbudget::{Direction, PerfBudgetGate, PerfBudgetGateBuilder};

mod gate;
mod junit;

pub use gate::{TestReportGate, TestReportGateBuilder};
use junit::{parse_junit, Counts, FailedTest, ParsedReport};

/// A gate of this module was configured wrongly; returned by the builders' `build`.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The gate's name is empty.
    #[error("the gate name is empty")]
    EmptyName,
    /// A test report gate without any report file or glob.
    #[error("test report gate: no report file or glob configured")]
    NoReports,
    /// A glob that does not compile.
    #[error("test report gate: invalid glob `{pattern}`: {message}")]
    InvalidGlob {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
    /// A minimum pass rate outside 0–100 percent.
    #[error("test report gate: minimum pass rate {0}% is not between 0 and 100")]
    PassRate(f64),
    /// A required suite with an empty name.
    #[error("test report gate: a required suite name is empty")]
    EmptySuiteName,
    /// A bound on the failed-test list of zero.
    #[error("test report gate: the failed-test list limit must be at least 1")]
    FailedListLimit,
    /// A performance budget gate with no budget and no regression limit.
    #[error("performance budget gate: nothing to check; set a budget or a maximum regression")]
    NothingToCheck,
    /// A budget or regression limit that makes no sense.
    #[error("performance budget gate: figure `{figure}`: {message}")]
    InvalidBudget {
        /// The figure (`p99_ms`, `mean`).
        figure: String,
        /// What is wrong.
        message: String,
    },
    /// A maximum regression without a baseline file to compare with.
    #[error("performance budget gate: a maximum regression is set for `{figure}` but no baseline file is configured")]
    NoBaseline { figure: String },
}

impl From<ConfigError> for GateError {
    fn from(e: ConfigError) -> Self {
        GateError::Misconfigured(e.to_string())
    }
}

// ------------------------------------------------------------------------------------------
// Shared input helpers
// ------------------------------------------------------------------------------------------

/// Reads a whole input file; a missing or unreadable file names the path.
pub(crate) fn read_input(path: &Path) -> Result<Vec<u8>, GateError> {
    std::fs::read(path).map_err(|e| {
        let message = match e.kind() {
            ErrorKind::NotFound => "file not found".to_owned(),
            ErrorKind::IsADirectory => "is a directory, not a file".to_owned(),
            _ => format!("cannot read the file: {e}"),
        };
        invalid_input(path.display(), None, message)
    })
}

/// The 1-based line of byte offset `pos` in `bytes`.
/// The line of byte `pos` as the XML reader reports it (a `u64`).
fn line_at(bytes: &[u8], pos: u64) -> usize {
    line_of(bytes, usize::try_from(pos).unwrap_or(usize::MAX))
}

/// `x` with at most three decimals and no trailing zeros (`41.2`, `1200`, `131.376`).
pub(crate) fn fmt_num(x: f64) -> String {
    let s = format!("{x:.3}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests;
