//! Policy as code: Rego policies in [Conftest](https://www.conftest.dev) conventions, evaluated
//! in-process with [regorus](https://docs.rs/regorus) (an OPA-compatible interpreter).
//!
//! # Conventions
//!
//! The gate evaluates one package (`main` by default, like Conftest's `--namespace`). In it:
//!
//! - `deny`, `violation` and any `deny_<suffix>` or `violation_<suffix>` rule are sets of
//!   messages; any message fails the gate. A message is a string, or an object with a string
//!   `msg` field whose other fields are kept as metadata (Conftest's structured results).
//! - `warn` and `warn_<suffix>` rules are sets of messages too; they are recorded and never fail
//!   the gate.
//! - Suffixes follow Conftest: `_` followed by letters and digits, possibly repeated
//!   (`deny_high_risk`).
//! - Every other rule is a helper and is ignored.
//!
//! Where Conftest is lenient this gate is strict, because a policy that cannot fail must never
//! look like a passing one:
//!
//! - a decision rule that is not a set (`deny if { … }`, a boolean) is a
//!   [`GateError::InvalidInput`](promotion_core::GateError::InvalidInput) naming the policy files of the package, as is a structured
//!   result without a string `msg`, or a message that is neither a string nor an object;
//! - a package that no loaded policy declares is refused when the gate is built
//!   ([`GateError::Misconfigured`](promotion_core::GateError::Misconfigured)), and a package without any `deny`, `violation` or `warn`
//!   rule is a [`GateError::Misconfigured`](promotion_core::GateError::Misconfigured) when evaluated: it decides nothing, so it is not
//!   counted as a pass;
//! - Conftest's `exception` rules are not supported: a denial is a denial.
//!
//! Every rule of the package is evaluated, helpers included, and any evaluation error (a
//! division by zero, a function regorus cannot resolve) is a [`GateError::InvalidInput`](promotion_core::GateError::InvalidInput)
//! naming the policy file and line regorus reports. One known gap of regorus 0.5 against OPA:
//! a function called through an import alias (`import data.lib.labels` then
//! `labels.missing(x)`) is not resolved; call it by its full path
//! (`data.lib.labels.missing(x)`). Such a policy errors, it never passes.
//!
//! Policies use Rego v1 syntax (`deny contains msg if { … }`), Conftest's and OPA's default
//! since OPA 1.0; [`PolicyGateBuilder::rego_v0`] accepts pre-1.0 policies (`deny[msg] { … }`).
//!
//! # Policies and data
//!
//! Policy files are given one by one ([`PolicyGateBuilder::policy_file`]) or as a bundle
//! directory ([`PolicyGateBuilder::bundle`]), read as `opa eval -d <dir>` reads a directory
//! (which also covers the layout of an unpacked `opa build` bundle, whose data files are all
//! named `data.json`):
//!
//! - every `*.rego` file below the directory, recursively, is a policy;
//! - every `*.json` file is a data document mounted at its directory's path relative to the
//!   bundle root: `registries/data.json` becomes `data.registries`, a `data.json` at the root is
//!   merged into `data` itself; the file's own name is not part of the path;
//! - YAML data documents (`*.yaml`, `*.yml`) are refused rather than skipped, because a policy
//!   that silently lost its data could pass what it should deny;
//! - files and directories whose name starts with `.` (`.manifest`, `.git`) are skipped, as are
//!   files of any other type (`README.md`).
//!
//! A data file given with [`PolicyGateBuilder::data_file`] is merged into `data` at the root.
//! Two documents that set the same key differently are an error naming the second file.
//!
//! Everything is read, parsed and analysed once, when the gate is built: a change to the files
//! afterwards is picked up only by building the gate again, so the digests the gate records are
//! always those of the policy that decided. Each evaluation clones the prepared engine (a few
//! microseconds) and evaluates the package against the input.
//!
//! # Input
//!
//! The input document (`input`) holds:
//!
//! | field | content |
//! | --- | --- |
//! | `release` | the release as recorded in the audit log: `id`, `name`, `artifacts` (`name`, `digest`, `uri` when recorded), `source` (`repository`, `commit`, `committed_at`), `built_at`, `builder`, `contributors`, `labels` |
//! | `pipeline` | `name` and `version` |
//! | `stage`, `phase`, `gate`, `round` | where the gate runs (`phase` is `entry`, `verification` or `analysis:<step>`) |
//! | `stages` | the evidence gathered so far, per stage: `status`, `step`, and for each phase (`entry`, `analysis`, `verification`) an object of gate records by gate name |
//! | `gates` | the same gate records as one list, each also carrying its `stage`, `phase` and `gate` |
//!
//! A gate record has `outcome` (`pass`, `fail`, `inconclusive`, `pending`, `error`), `message`
//! for errors, `retry_after_ms` for pending gates, `evidence_digest` when there was evidence,
//! `facts` (an object, possibly empty), `round`, `at`, `satisfied` (passed, overridden or
//! judged as a pass), and `overridden_by` or `judged` (`by`, `pass`) when a person intervened.
//! A rule on the change-record gate's risk reads
//! `some g in input.gates; g.gate == "change-record"; g.facts.risk == "high"`.
//!
//! # Evidence
//!
//! - attachments: the digest and size of every policy file and data document (by path) and of
//!   the input document (`input.json`, canonical JSON), so the audit shows exactly which policy
//!   version decided on exactly what;
//! - data: the package, the Rego version, the policy set digest, the files with their digests
//!   (and data mount points), the decision rules found with their message counts, the failures
//!   and the warnings (rule, `msg`, metadata);
//! - facts: `policy_set` (a digest over every file's path and digest), `policy_failures` and
//!   `policy_warnings` (counts).

use promotion_core::{Attachment, Digest};
use serde::Serialize;

mod decision;
mod files;
mod gate;
mod input_doc;
mod loader;

use decision::{
    classify, finding, json_kind, plural, quote, value_kind, Decision, EvidenceData, Severity,
};
use files::{check_package, display, json_error, mount_of, read, rego_error, utf8};
pub use gate::PolicyGate;
use input_doc::input_document;
pub use loader::PolicyGateBuilder;

/// The package Conftest evaluates when none is given.
pub const DEFAULT_PACKAGE: &str = "main";

/// The gate's name when none is given.
pub const DEFAULT_NAME: &str = "policy";

/// How many messages the one-line summary quotes before saying how many more there are.
const SUMMARY_MESSAGES: usize = 2;

/// A policy file or data document the gate read, identified by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LoadedFile {
    /// The path as read (a bundle's files are the bundle directory joined with their path in
    /// it), or the label given to [`PolicyGateBuilder::policy_text`].
    pub path: String,
    /// SHA-256 digest of the file's bytes.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// For a policy: the package it declares, without `data.` (`main`, `lib.labels`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// For a data document: where it is mounted under `data`, dot-separated (`registries`);
    /// empty when merged at the root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
}

impl LoadedFile {
    fn new(path: String, bytes: &[u8]) -> Self {
        LoadedFile {
            path,
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            package: None,
            mount: None,
        }
    }
    fn attachment(&self) -> Attachment {
        Attachment {
            name: self.path.clone(),
            digest: self.digest,
            size: self.size,
        }
    }
}

#[cfg(test)]
mod tests;
