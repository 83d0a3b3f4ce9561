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
//!   [`GateError::InvalidInput`] naming the policy files of the package, as is a structured
//!   result without a string `msg`, or a message that is neither a string nor an object;
//! - a package that no loaded policy declares is refused when the gate is built
//!   ([`GateError::Misconfigured`]), and a package without any `deny`, `violation` or `warn`
//!   rule is a [`GateError::Misconfigured`] when evaluated: it decides nothing, so it is not
//!   counted as a pass;
//! - Conftest's `exception` rules are not supported: a denial is a denial.
//!
//! Every rule of the package is evaluated, helpers included, and any evaluation error (a
//! division by zero, a function regorus cannot resolve) is a [`GateError::InvalidInput`]
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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use promotion_core::machine::{GateRecord, PhaseState};
use promotion_core::{Attachment, Digest, GateName, Outcome, PhaseId, Release};
use regorus::Value;
use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::input::{invalid_input, line_of};
use crate::{Evidence, Gate, GateContext, GateError, GateKind, Verdict};

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

#[derive(Debug, Clone)]
enum Source {
    PolicyFile(PathBuf),
    PolicyText { label: String, text: String },
    Bundle(PathBuf),
    DataFile(PathBuf),
}

/// Configures a [`PolicyGate`]; [`PolicyGateBuilder::build`] reads, parses and checks
/// everything.
#[derive(Debug, Clone)]
#[must_use]
pub struct PolicyGateBuilder {
    name: String,
    package: String,
    sources: Vec<Source>,
    rego_v0: bool,
}

impl Default for PolicyGateBuilder {
    fn default() -> Self {
        PolicyGateBuilder {
            name: DEFAULT_NAME.to_owned(),
            package: DEFAULT_PACKAGE.to_owned(),
            sources: Vec::new(),
            rego_v0: false,
        }
    }
}

impl PolicyGateBuilder {
    /// The gate's name (default `policy`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// The package whose rules decide, without `data.` (default `main`; `release.checks`).
    pub fn package(mut self, package: impl Into<String>) -> Self {
        self.package = package.into();
        self
    }
    /// Adds a Rego policy file.
    pub fn policy_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources.push(Source::PolicyFile(path.into()));
        self
    }
    /// Adds a policy held in memory (compiled in with `include_str!`), recorded under `label`.
    pub fn policy_text(mut self, label: impl Into<String>, rego: impl Into<String>) -> Self {
        self.sources.push(Source::PolicyText {
            label: label.into(),
            text: rego.into(),
        });
        self
    }
    /// Adds every `*.rego` policy and `*.json` data document below `dir`, recursively (see
    /// the [module documentation](self#policies-and-data) for the layout).
    pub fn bundle(mut self, dir: impl Into<PathBuf>) -> Self {
        self.sources.push(Source::Bundle(dir.into()));
        self
    }
    /// Adds a JSON data document, merged into `data` at the root.
    pub fn data_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources.push(Source::DataFile(path.into()));
        self
    }
    /// Parses policies as pre-1.0 Rego (`deny[msg] { … }`), like Conftest's
    /// `--rego-version v0`.
    pub fn rego_v0(mut self, v0: bool) -> Self {
        self.rego_v0 = v0;
        self
    }

    /// Reads every policy and data document, parses and analyses the policies, and checks
    /// that the package is declared.
    ///
    /// # Errors
    ///
    /// [`GateError::InvalidInput`] naming the file (and line, for Rego and JSON) when a file
    /// cannot be read or is malformed; [`GateError::Misconfigured`] for an invalid name or
    /// package, no policy at all, a file given twice, or a package no policy declares.
    pub fn build(self) -> Result<PolicyGate, GateError> {
        GateName::new(self.name.as_str()).map_err(|e| GateError::Misconfigured(e.to_string()))?;
        check_package(&self.package)?;
        let mut loader = Loader::new(self.rego_v0);
        for source in &self.sources {
            match source {
                Source::PolicyFile(path) => {
                    let bytes = read(path, "policy file")?;
                    loader.add_policy(display(path), &bytes)?;
                }
                Source::PolicyText { label, text } => {
                    loader.add_policy(label.clone(), text.as_bytes())?;
                }
                Source::Bundle(dir) => loader.add_bundle(dir)?,
                Source::DataFile(path) => {
                    let bytes = read(path, "data document")?;
                    loader.add_data(display(path), &bytes, &[])?;
                }
            }
        }
        loader.finish(self.name, self.package)
    }
}

struct Loader {
    engine: regorus::Engine,
    rego_v0: bool,
    policies: Vec<LoadedFile>,
    data: Vec<LoadedFile>,
    seen: BTreeSet<String>,
}

impl Loader {
    fn new(rego_v0: bool) -> Self {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(rego_v0);
        Loader {
            engine,
            rego_v0,
            policies: Vec::new(),
            data: Vec::new(),
            seen: BTreeSet::new(),
        }
    }

    fn first_time(&mut self, path: &str) -> Result<(), GateError> {
        if self.seen.insert(path.to_owned()) {
            Ok(())
        } else {
            Err(GateError::Misconfigured(format!(
                "{path} is loaded twice: give each policy file and data document once"
            )))
        }
    }

    fn add_policy(&mut self, path: String, bytes: &[u8]) -> Result<(), GateError> {
        self.first_time(&path)?;
        let text = utf8(&path, bytes)?;
        let package = self
            .engine
            .add_policy(path.clone(), text.to_owned())
            .map_err(|e| rego_error(&e, &path))?;
        let mut file = LoadedFile::new(path, bytes);
        file.package = Some(
            package
                .strip_prefix("data.")
                .unwrap_or(package.as_str())
                .to_owned(),
        );
        self.policies.push(file);
        Ok(())
    }

    fn add_data(&mut self, path: String, bytes: &[u8], mount: &[String]) -> Result<(), GateError> {
        self.first_time(&path)?;
        let doc: Json = serde_json::from_slice(bytes).map_err(|e| json_error(&path, &e))?;
        if !doc.is_object() {
            return Err(invalid_input(
                path,
                None,
                format!(
                    "a data document must be a JSON object, found {}",
                    json_kind(&doc)
                ),
            ));
        }
        let doc = mount.iter().rev().fold(doc, |inner, key| {
            let mut outer = Map::new();
            outer.insert(key.clone(), inner);
            Json::Object(outer)
        });
        let value: Value = serde_json::from_value(doc).map_err(|e| {
            invalid_input(
                path.clone(),
                None,
                format!("cannot be loaded as Rego data: {e}"),
            )
        })?;
        self.engine.add_data(value).map_err(|e| {
            invalid_input(
                path.clone(),
                None,
                format!("conflicts with data loaded before it: {e}"),
            )
        })?;
        let mut file = LoadedFile::new(path, bytes);
        file.mount = Some(mount.join("."));
        self.data.push(file);
        Ok(())
    }

    fn add_bundle(&mut self, dir: &Path) -> Result<(), GateError> {
        let root = display(dir);
        if !dir.is_dir() {
            let message = match std::fs::metadata(dir) {
                Ok(_) => "is not a directory".to_owned(),
                Err(e) => format!("cannot read the policy bundle: {e}"),
            };
            return Err(invalid_input(root, None, message));
        }
        let mut policies = Vec::new();
        let mut documents = Vec::new();
        let walk = walkdir::WalkDir::new(dir)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
        for entry in walk {
            let entry = entry.map_err(|e| {
                invalid_input(
                    e.path()
                        .map_or_else(|| root.clone(), |p| p.display().to_string()),
                    None,
                    format!("cannot read the policy bundle: {e}"),
                )
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("rego") => policies.push(path.to_path_buf()),
                Some("json") => documents.push(path.to_path_buf()),
                Some("yaml" | "yml") => {
                    return Err(invalid_input(
                        display(path),
                        None,
                        "YAML data documents are not supported; convert it to JSON \
                                  (a data.json in the same directory)"
                            .to_owned(),
                    ))
                }
                _ => {}
            }
        }
        for path in &policies {
            let bytes = read(path, "policy file")?;
            self.add_policy(display(path), &bytes)?;
        }
        for path in &documents {
            let mount = mount_of(dir, path)?;
            let bytes = read(path, "data document")?;
            self.add_data(display(path), &bytes, &mount)?;
        }
        Ok(())
    }

    fn finish(mut self, name: String, package: String) -> Result<PolicyGate, GateError> {
        if self.policies.is_empty() {
            return Err(GateError::Misconfigured(
                "no Rego policy was given: add a policy file or a bundle with *.rego files"
                    .to_owned(),
            ));
        }
        let package_files: Vec<String> = self
            .policies
            .iter()
            .filter(|f| f.package.as_deref() == Some(package.as_str()))
            .map(|f| f.path.clone())
            .collect();
        if package_files.is_empty() {
            let declared: BTreeSet<&str> = self
                .policies
                .iter()
                .filter_map(|f| f.package.as_deref())
                .collect();
            let declared: Vec<String> = declared.iter().map(|p| format!("`{p}`")).collect();
            return Err(GateError::Misconfigured(format!(
                "no policy declares package `{package}`, so nothing would be checked; the \
                 policies declare {}",
                declared.join(", ")
            )));
        }
        // Analyse the modules now (unsafe variables, recursion, conflicting rules), so errors
        // surface when the gate is built and every evaluation starts from a prepared engine.
        self.engine
            .eval_query("true".to_owned(), false)
            .map_err(|e| rego_error(&e, &package_files.join(", ")))?;
        let set: Vec<(&str, &Digest)> = self
            .policies
            .iter()
            .chain(&self.data)
            .map(|f| (f.path.as_str(), &f.digest))
            .collect();
        let policy_set = Digest::of_canonical(&set)
            .map_err(|e| GateError::other(format!("cannot digest the policy set: {e}")))?;
        Ok(PolicyGate {
            name,
            query: format!("data.{package}"),
            package,
            package_files,
            engine: self.engine,
            rego_v0: self.rego_v0,
            policies: self.policies,
            data: self.data,
            policy_set,
        })
    }
}

/// A gate that evaluates Rego policies, in Conftest conventions, against the release and the
/// evidence gathered so far.
///
/// See the [module documentation](self) for the conventions, the input document and the
/// evidence.
///
/// ```
/// use promotion_core::testing::GateProbe;
/// use promotion_gates::policy::PolicyGate;
/// use promotion_gates::Verdict;
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(
///     dir.path().join("release.rego"),
///     r#"package main
///
/// deny contains msg if {
///     some artifact in input.release.artifacts
///     not startswith(object.get(artifact, "uri", ""), "registry.example.com/")
///     msg := sprintf("artifact `%s` is not from registry.example.com", [artifact.name])
/// }
///
/// warn contains "release has no `team` label" if not input.release.labels.team
/// "#,
/// )?;
///
/// let gate = PolicyGate::builder()
///     .name("release-policy")
///     .bundle(dir.path())
///     .build()?;
///
/// // The probe's sample release has one artifact, `image`, with no location recorded.
/// let probe = GateProbe::new().stage("compliance");
/// let verdict = futures::executor::block_on(probe.evaluate(&gate))?;
/// let Verdict::Fail(evidence) = verdict else {
///     panic!("expected a failure, got {verdict:?}");
/// };
/// assert_eq!(
///     evidence.summary,
///     "policy `main` denied the release (1 failure, 1 warning): \
///      artifact `image` is not from registry.example.com"
/// );
/// assert_eq!(evidence.facts["policy_failures"], "1");
/// // The policy file and the input document are recorded by digest.
/// assert_eq!(evidence.attachments.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct PolicyGate {
    name: String,
    package: String,
    query: String,
    package_files: Vec<String>,
    engine: regorus::Engine,
    rego_v0: bool,
    policies: Vec<LoadedFile>,
    data: Vec<LoadedFile>,
    policy_set: Digest,
}

impl fmt::Debug for PolicyGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyGate")
            .field("name", &self.name)
            .field("package", &self.package)
            .field("rego_v0", &self.rego_v0)
            .field("policies", &self.policies)
            .field("data", &self.data)
            .field("policy_set", &self.policy_set)
            .finish_non_exhaustive()
    }
}

impl PolicyGate {
    /// Starts configuring a gate: name `policy`, package `main`, Rego v1, no policies yet.
    pub fn builder() -> PolicyGateBuilder {
        PolicyGateBuilder::default()
    }
    /// The package whose rules decide.
    pub fn package(&self) -> &str {
        &self.package
    }
    /// The policy files, in load order, with their digests and packages.
    pub fn policies(&self) -> &[LoadedFile] {
        &self.policies
    }
    /// The data documents, in load order, with their digests and mount points.
    pub fn data_documents(&self) -> &[LoadedFile] {
        &self.data
    }
    /// A digest over the path and digest of every policy file and data document: changes
    /// whenever any of them does.
    pub fn policy_set_digest(&self) -> Digest {
        self.policy_set
    }

    fn package_what(&self) -> String {
        self.package_files.join(", ")
    }

    /// Sorts the package's decision rules into failures and warnings.
    fn decide(&self, package: &Value) -> Result<Decision, GateError> {
        let invalid = |message: String| invalid_input(self.package_what(), None, message);
        let rules = match package {
            Value::Object(rules) => rules.as_ref(),
            Value::Undefined => {
                return Err(GateError::Misconfigured(format!(
                    "package `{}` is undefined when evaluated",
                    self.package
                )))
            }
            other => {
                return Err(invalid(format!(
                    "`{}` evaluated to {}, not a package of rules",
                    self.query,
                    value_kind(other)
                )))
            }
        };
        let mut decision = Decision::default();
        for (key, value) in rules {
            let Value::String(rule) = key else { continue };
            let Some(severity) = classify(rule) else {
                continue;
            };
            let path = format!("{}.{rule}", self.query);
            let items: Vec<&Value> = match value {
                Value::Set(items) => items.iter().collect(),
                Value::Array(items) => items.iter().collect(),
                other => {
                    return Err(invalid(format!(
                    "rule `{path}` must be a set of messages (`{rule} contains msg if {{ … }}`), \
                         but it is {}: {other}",
                    value_kind(other)
                )))
                }
            };
            decision.rules.insert(rule.to_string(), items.len());
            for item in items {
                let finding = finding(rule, item)
                    .map_err(|problem| invalid(format!("rule `{path}` yielded {problem}")))?;
                match severity {
                    Severity::Failure => decision.failures.push(finding),
                    Severity::Warning => decision.warnings.push(finding),
                }
            }
        }
        if decision.rules.is_empty() {
            return Err(GateError::Misconfigured(format!(
                "package `{}` ({}) has no deny, violation or warn rule, so it decides nothing",
                self.package,
                self.package_what()
            )));
        }
        Ok(decision)
    }

    fn summary(&self, decision: &Decision) -> String {
        let failures = decision.failures.len();
        let warnings = decision.warnings.len();
        let counts = format!(
            "{failures} failure{}, {warnings} warning{}",
            plural(failures),
            plural(warnings)
        );
        if failures > 0 {
            format!(
                "policy `{}` denied the release ({counts}): {}",
                self.package,
                quote(&decision.failures)
            )
        } else if warnings > 0 {
            format!(
                "policy `{}` passed with {warnings} warning{}: {}",
                self.package,
                plural(warnings),
                quote(&decision.warnings)
            )
        } else {
            let rules = decision.rules.len();
            format!(
                "policy `{}` passed: {rules} rule{} checked, no failures or warnings",
                self.package,
                plural(rules)
            )
        }
    }
}

#[async_trait]
impl Gate for PolicyGate {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> GateKind {
        GateKind::Compliance
    }

    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let input = input_document(ctx)?;
        let input_bytes = promotion_core::canonical_json(&input)
            .map_err(|e| GateError::other(format!("cannot serialise the policy input: {e}")))?;
        let input_value: Value = serde_json::from_value(input)
            .map_err(|e| GateError::other(format!("cannot convert the policy input: {e}")))?;

        let mut engine = self.engine.clone();
        engine.set_input(input_value);
        let results = engine
            .eval_query(self.query.clone(), false)
            .map_err(|e| rego_error(&e, &self.package_what()))?;
        let package = results
            .result
            .first()
            .and_then(|r| r.expressions.first())
            .map_or(Value::Undefined, |e| e.value.clone());
        let decision = self.decide(&package)?;

        let summary = self.summary(&decision);
        let failed = !decision.failures.is_empty();
        let data = serde_json::to_value(EvidenceData {
            package: &self.package,
            rego_version: if self.rego_v0 { "v0" } else { "v1" },
            policy_set: &self.policy_set,
            policies: &self.policies,
            data_documents: &self.data,
            input_digest: Digest::of(&input_bytes),
            rules: &decision.rules,
            failures: &decision.failures,
            warnings: &decision.warnings,
        })
        .map_err(|e| GateError::other(format!("cannot serialise the evidence: {e}")))?;
        let mut evidence = Evidence::new(self.name.clone(), ctx.now(), summary)
            .with_data(data)
            .with_fact("policy_set", self.policy_set.to_string())
            .with_fact("policy_failures", decision.failures.len().to_string())
            .with_fact("policy_warnings", decision.warnings.len().to_string());
        evidence.attachments.extend(
            self.policies
                .iter()
                .chain(&self.data)
                .map(LoadedFile::attachment),
        );
        let evidence = evidence.with_attachment("input.json", &input_bytes);
        Ok(Verdict::pass_if(!failed, evidence))
    }
}

// ---------------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    Failure,
    Warning,
}

/// Conftest's rule names: `^(deny|violation)(_[a-zA-Z0-9]+)*$` fail, `^warn(_[a-zA-Z0-9]+)*$`
/// warn.
fn classify(rule: &str) -> Option<Severity> {
    let (severity, rest) = if let Some(rest) = rule.strip_prefix("deny") {
        (Severity::Failure, rest)
    } else if let Some(rest) = rule.strip_prefix("violation") {
        (Severity::Failure, rest)
    } else if let Some(rest) = rule.strip_prefix("warn") {
        (Severity::Warning, rest)
    } else {
        return None;
    };
    if rest.is_empty() {
        return Some(severity);
    }
    let suffix = rest.strip_prefix('_')?;
    suffix
        .split('_')
        .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
        .then_some(severity)
}

/// The structured part of the evidence.
#[derive(Serialize)]
struct EvidenceData<'a> {
    package: &'a str,
    rego_version: &'static str,
    policy_set: &'a Digest,
    policies: &'a [LoadedFile],
    data_documents: &'a [LoadedFile],
    input_digest: Digest,
    rules: &'a BTreeMap<String, usize>,
    failures: &'a [Finding],
    warnings: &'a [Finding],
}

#[derive(Debug, Default)]
struct Decision {
    /// Decision rules found, with how many messages each yielded.
    rules: BTreeMap<String, usize>,
    failures: Vec<Finding>,
    warnings: Vec<Finding>,
}

/// One message of a decision rule.
#[derive(Debug, Clone, Serialize)]
struct Finding {
    rule: String,
    msg: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    metadata: Map<String, Json>,
}

fn finding(rule: &str, item: &Value) -> Result<Finding, String> {
    match item {
        Value::String(msg) => Ok(Finding {
            rule: rule.to_owned(),
            msg: msg.to_string(),
            metadata: Map::new(),
        }),
        Value::Object(fields) => {
            let msg = match fields.get(&Value::from("msg")) {
                Some(Value::String(msg)) => msg.to_string(),
                Some(other) => {
                    return Err(format!(
                        "a result whose `msg` is {}, not a string: {item}",
                        value_kind(other)
                    ))
                }
                None => {
                    return Err(format!(
                        "a result without the `msg` field Conftest requires: {item}"
                    ))
                }
            };
            let mut metadata = match serde_json::to_value(item) {
                Ok(Json::Object(map)) => map,
                _ => Map::new(),
            };
            metadata.remove("msg");
            Ok(Finding {
                rule: rule.to_owned(),
                msg,
                metadata,
            })
        }
        other => Err(format!(
            "{}, which is neither a message string nor an object with a `msg`: {other}",
            value_kind(other)
        )),
    }
}

fn quote(findings: &[Finding]) -> String {
    let shown: Vec<&str> = findings
        .iter()
        .take(SUMMARY_MESSAGES)
        .map(|f| {
            if f.msg.is_empty() {
                "(empty message)"
            } else {
                f.msg.as_str()
            }
        })
        .collect();
    let mut out = shown.join("; ");
    let more = findings.len().saturating_sub(SUMMARY_MESSAGES);
    if more > 0 {
        out.push_str(&format!(" (and {more} more)"));
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Set(_) => "a set",
        Value::Object(_) => "an object",
        Value::Undefined => "undefined",
    }
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------------------------
// Input document
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct Input<'a> {
    release: &'a Release,
    pipeline: PipelineInput<'a>,
    stage: &'a str,
    phase: PhaseId,
    gate: &'a str,
    round: u32,
    stages: BTreeMap<&'a str, StageInput<'a>>,
    gates: Vec<FlatRecord<'a>>,
}

#[derive(Serialize)]
struct PipelineInput<'a> {
    name: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
struct StageInput<'a> {
    status: &'static str,
    step: u32,
    entry: BTreeMap<&'a str, RecordInput<'a>>,
    analysis: BTreeMap<&'a str, RecordInput<'a>>,
    verification: BTreeMap<&'a str, RecordInput<'a>>,
}

#[derive(Serialize, Clone, Copy)]
struct RecordInput<'a> {
    /// The outcome's own serialisation (the audit log's): `outcome`, plus `message` for errors
    /// and `retry_after_ms` for pending gates.
    #[serde(flatten)]
    outcome: &'a Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence_digest: Option<&'a Digest>,
    facts: &'a BTreeMap<String, String>,
    round: u32,
    at: DateTime<Utc>,
    satisfied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    overridden_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    judged: Option<Judged<'a>>,
}

#[derive(Serialize, Clone, Copy)]
struct Judged<'a> {
    by: &'a str,
    pass: bool,
}

#[derive(Serialize)]
struct FlatRecord<'a> {
    stage: &'a str,
    phase: PhaseId,
    gate: &'a str,
    #[serde(flatten)]
    record: RecordInput<'a>,
}

impl<'a> RecordInput<'a> {
    fn new(record: &'a GateRecord) -> Self {
        RecordInput {
            outcome: &record.outcome,
            evidence_digest: record.evidence_digest.as_ref(),
            facts: &record.facts,
            round: record.round,
            at: record.at,
            satisfied: record.is_satisfied(),
            overridden_by: record.overridden_by.as_ref().map(|p| p.as_str()),
            judged: record.judged.as_ref().map(|(by, pass)| Judged {
                by: by.as_str(),
                pass: *pass,
            }),
        }
    }
}

/// The records of one phase by gate name; also appends them, flattened, to `gates`.
fn records<'a>(
    stage: &'a str,
    phase: PhaseId,
    ps: &'a PhaseState,
    gates: &mut Vec<FlatRecord<'a>>,
) -> BTreeMap<&'a str, RecordInput<'a>> {
    let mut out = BTreeMap::new();
    for (gate, record) in ps.gates.iter() {
        let record = RecordInput::new(record);
        gates.push(FlatRecord {
            stage,
            phase,
            gate: gate.as_str(),
            record,
        });
        out.insert(gate.as_str(), record);
    }
    out
}

fn input_document(ctx: &GateContext<'_>) -> Result<Json, GateError> {
    let mut stages = BTreeMap::new();
    let mut gates = Vec::new();
    for (stage, st) in ctx.state.stages.iter() {
        let stage = stage.as_str();
        let entry = records(stage, PhaseId::Entry, &st.entry, &mut gates);
        let analysis = records(
            stage,
            PhaseId::Analysis { step: st.step },
            &st.analysis,
            &mut gates,
        );
        let verification = records(stage, PhaseId::Verification, &st.verification, &mut gates);
        stages.insert(
            stage,
            StageInput {
                status: st.status.label(),
                step: st.step,
                entry,
                analysis,
                verification,
            },
        );
    }
    let input = Input {
        release: ctx.release,
        pipeline: PipelineInput {
            name: ctx.pipeline.as_str(),
            version: ctx.pipeline_version,
        },
        stage: ctx.stage.as_str(),
        phase: ctx.phase,
        gate: ctx.gate.as_str(),
        round: ctx.round,
        stages,
        gates,
    };
    serde_json::to_value(&input)
        .map_err(|e| GateError::other(format!("cannot serialise the policy input: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Files and errors
// ---------------------------------------------------------------------------------------------

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, GateError> {
    std::fs::read(path)
        .map_err(|e| invalid_input(display(path), None, format!("cannot read the {what}: {e}")))
}

fn utf8<'a>(path: &str, bytes: &'a [u8]) -> Result<&'a str, GateError> {
    std::str::from_utf8(bytes).map_err(|e| {
        invalid_input(
            path,
            Some(line_of(bytes, e.valid_up_to())),
            format!("not UTF-8 text: invalid byte at offset {}", e.valid_up_to()),
        )
    })
}

/// Where a data document is mounted: its directory's components relative to the bundle root.
fn mount_of(root: &Path, file: &Path) -> Result<Vec<String>, GateError> {
    let dir = file
        .parent()
        .and_then(|p| p.strip_prefix(root).ok())
        .unwrap_or_else(|| Path::new(""));
    dir.components()
        .map(|c| {
            c.as_os_str().to_str().map(str::to_owned).ok_or_else(|| {
                invalid_input(
                    display(file),
                    None,
                    "its directory name is not UTF-8, so it cannot be a data path".to_owned(),
                )
            })
        })
        .collect()
}

fn json_error(path: &str, e: &serde_json::Error) -> GateError {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&position).unwrap_or(&text);
    invalid_input(
        path,
        Some(e.line()),
        format!("column {}: {message}", e.column()),
    )
}

/// Turns a regorus error into [`GateError::InvalidInput`] naming the file and line regorus
/// reports (`--> path:line:col` followed by `error: message`), or `fallback` when it reports
/// none.
fn rego_error(err: &dyn fmt::Display, fallback: &str) -> GateError {
    let text = format!("{err:#}");
    let located = regex::Regex::new(r"(?m)-->\s*(.+):(\d+):(\d+)\s*$")
        .ok()
        .and_then(|re| re.captures(&text))
        .and_then(|c| {
            let whole = c.get(0)?;
            let file = c.get(1)?.as_str().to_owned();
            let line = c.get(2)?.as_str().to_owned();
            let col = c.get(3)?.as_str().to_owned();
            let after = text.get(whole.end()..)?;
            let message = after
                .find("error: ")
                .and_then(|i| after.get(i + "error: ".len()..))
                .map_or_else(|| one_line(after), one_line);
            Some((file, line, col, message))
        });
    match located {
        Some((file, line, col, message)) => invalid_input(
            format!("{file} line {line}"),
            None,
            format!("column {col}: {message}"),
        ),
        None => invalid_input(fallback.to_owned(), None, one_line(&text)),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_package(package: &str) -> Result<(), GateError> {
    let ident = |s: &str| {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if package.starts_with("data.") {
        return Err(GateError::Misconfigured(format!(
            "package `{package}`: give it without the `data.` prefix"
        )));
    }
    if package.is_empty() || !package.split('.').all(ident) {
        return Err(GateError::Misconfigured(format!(
            "package `{package}` is not a Rego package name (dot-separated identifiers, like \
             `main` or `release.checks`)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::TimeZone;
    use promotion_core::testing::GateProbe;
    use promotion_core::{ReleaseState, StageName, StageState, StageStatus};

    const API_DIGEST: &str =
        "sha256:6c3f1e0b0f1a3c5d7e9f2a4b6c8d0e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d";
    const WEB_DIGEST: &str =
        "sha256:0d4e8a2c6b1f5e9d3c7a1b5f9e3d7c1a5b9f3e7d1c5a9b3f7e1d5c9a3b7f1e5d";

    fn samples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/policy")
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()
    }

    /// A release that satisfies the sample bundle, with its labels and artifacts adjustable.
    fn release(
        builder: &str,
        artifacts: &[(&str, &str, &str)],
        labels: &[(&str, &str)],
    ) -> Release {
        let mut b = Release::builder(
            "shop-api 2.3.0",
            "git@example.com:shop/api",
            "4f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",
            t0(),
        )
        .builder(builder)
        .contributor("dana")
        .contributor("lee");
        for (name, digest, uri) in artifacts {
            b = b.artifact_at(*name, *digest, *uri);
        }
        for (k, v) in labels {
            b = b.label(*k, *v);
        }
        b.build().unwrap()
    }

    fn good_release() -> Release {
        release(
            "ci.example.com",
            &[
                (
                    "api-image",
                    API_DIGEST,
                    "registry.example.com/shop/api@sha256:6c3f1e0b",
                ),
                (
                    "web-image",
                    WEB_DIGEST,
                    "registry.example.com/shop/web@sha256:0d4e8a2c",
                ),
            ],
            &[("team", "payments"), ("ticket", "CHG-1042")],
        )
    }

    /// The state after stage `integration` recorded the change-record gate with `facts`.
    fn state_with_change_record(risk: &str) -> ReleaseState {
        let record = GateRecord {
            outcome: Outcome::Pass,
            evidence_digest: Some(Digest::of(b"change record CHG-1042")),
            at: t0(),
            round: 1,
            consecutive_errors: 0,
            overridden_by: None,
            judged: None,
            facts: [("risk".to_owned(), risk.to_owned())].into(),
        };
        let mut stage = StageState {
            status: StageStatus::Promoted,
            ..StageState::default()
        };
        stage
            .entry
            .gates
            .insert(GateName::new("change-record").unwrap(), record);
        let mut state = ReleaseState::default();
        state
            .stages
            .insert(StageName::new("integration").unwrap(), stage);
        state
    }

    fn bundle_gate() -> PolicyGate {
        PolicyGate::builder()
            .name("release-policy")
            .bundle(samples().join("bundle"))
            .build()
            .unwrap()
    }

    fn probe(release: Release, risk: &str) -> GateProbe {
        GateProbe::new()
            .at(t0())
            .release(release)
            .stage("compliance")
            .state(state_with_change_record(risk))
    }

    fn eval(gate: &PolicyGate, probe: &GateProbe) -> Result<Verdict, GateError> {
        futures::executor::block_on(probe.evaluate(gate))
    }

    fn messages(evidence: &Evidence, key: &str) -> Vec<(String, String)> {
        evidence.data[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["rule"].as_str().unwrap().to_owned(),
                    f["msg"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn invalid(err: GateError) -> (String, String) {
        match err {
            GateError::InvalidInput { what, message } => (what, message),
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    fn misconfigured(err: GateError) -> String {
        match err {
            GateError::Misconfigured(message) => message,
            other => panic!("expected a misconfiguration, got {other:?}"),
        }
    }

    fn path(rel: &str) -> String {
        samples().join(rel).display().to_string()
    }

    // -----------------------------------------------------------------------------------------
    // Verdicts
    // -----------------------------------------------------------------------------------------

    #[test]
    fn compliant_release_passes_with_every_input_on_record() {
        let gate = bundle_gate();
        let verdict = eval(&gate, &probe(good_release(), "low")).unwrap();
        let Verdict::Pass(ev) = verdict else {
            panic!("expected a pass, got {verdict:?}")
        };
        assert_eq!(
            ev.summary,
            "policy `main` passed: 4 rules checked, no failures or warnings"
        );
        assert_eq!(ev.producer, "release-policy");
        assert_eq!(ev.facts["policy_failures"], "0");
        assert_eq!(ev.facts["policy_warnings"], "0");
        assert_eq!(ev.facts["policy_set"], gate.policy_set_digest().to_string());
        assert_eq!(
            ev.data["rules"],
            serde_json::json!({"deny": 0, "deny_high_risk": 0, "violation": 0, "warn": 0})
        );

        // Every file the gate read, by path and independently computed digest, then the input.
        let expected = [
            "bundle/lib/labels.rego",
            "bundle/release.rego",
            "bundle/data.json",
            "bundle/registries/data.json",
        ];
        let names: Vec<&str> = ev.attachments.iter().map(|a| a.name.as_str()).collect();
        let mut want: Vec<String> = expected.iter().map(|p| path(p)).collect();
        want.push("input.json".to_owned());
        assert_eq!(names, want);
        for (attachment, rel) in ev.attachments.iter().zip(expected) {
            let bytes = std::fs::read(samples().join(rel)).unwrap();
            assert_eq!(attachment.digest, Digest::of(&bytes), "{rel}");
            assert_eq!(attachment.size, bytes.len() as u64);
        }
        assert_eq!(
            ev.data["input_digest"],
            ev.attachments.last().unwrap().digest.to_string()
        );
        assert_eq!(ev.data["policies"][0]["package"], "lib.labels");
        assert_eq!(ev.data["policies"][1]["package"], "main");
        assert_eq!(ev.data["data_documents"][0]["mount"], "");
        assert_eq!(ev.data["data_documents"][1]["mount"], "registries");
        assert_eq!(ev.data["rego_version"], "v1");
    }

    #[test]
    fn denials_fail_with_their_messages() {
        let rel = release(
            "ci.example.com",
            &[
                (
                    "api-image",
                    API_DIGEST,
                    "registry.example.com/shop/api@sha256:6c3f1e0b",
                ),
                ("web-image", WEB_DIGEST, "docker.io/library/nginx:1.27"),
            ],
            &[("team", "payments"), ("ticket", "CHG-1042")],
        );
        let verdict = eval(&bundle_gate(), &probe(rel, "high")).unwrap();
        let Verdict::Fail(ev) = verdict else {
            panic!("expected a failure, got {verdict:?}")
        };
        assert_eq!(
            messages(&ev, "failures"),
            [
                (
                    "deny".to_owned(),
                    "artifact `web-image` is not from an approved registry \
                     (docker.io/library/nginx:1.27)"
                        .to_owned()
                ),
                (
                    "deny_high_risk".to_owned(),
                    "change record (stage integration) rates the change as high risk, but the \
                     release has no `rollback-plan` label"
                        .to_owned()
                ),
            ]
        );
        assert_eq!(
            ev.summary,
            "policy `main` denied the release (2 failures, 0 warnings): artifact `web-image` \
             is not from an approved registry (docker.io/library/nginx:1.27); change record \
             (stage integration) rates the change as high risk, but the release has no \
             `rollback-plan` label"
        );
        assert_eq!(ev.facts["policy_failures"], "2");
        assert_eq!(
            ev.data["rules"],
            serde_json::json!({"deny": 1, "deny_high_risk": 1, "violation": 0, "warn": 0})
        );
    }

    #[test]
    fn high_risk_with_a_rollback_plan_passes() {
        let rel = release(
            "ci.example.com",
            &[(
                "api-image",
                API_DIGEST,
                "registry.example.com/shop/api@sha256:6c3f1e0b",
            )],
            &[
                ("team", "payments"),
                ("ticket", "CHG-1042"),
                ("rollback-plan", "https://wiki.example.com/shop/rollback"),
            ],
        );
        let verdict = eval(&bundle_gate(), &probe(rel, "high")).unwrap();
        assert!(matches!(verdict, Verdict::Pass(_)), "{verdict:?}");
    }

    #[test]
    fn violation_objects_keep_their_metadata() {
        let rel = release(
            "laptop.dana.example.com",
            &[(
                "api-image",
                API_DIGEST,
                "registry.example.com/shop/api@sha256:6c3f1e0b",
            )],
            &[("team", "payments"), ("ticket", "CHG-1042")],
        );
        let verdict = eval(&bundle_gate(), &probe(rel, "low")).unwrap();
        let Verdict::Fail(ev) = verdict else {
            panic!("expected a failure, got {verdict:?}")
        };
        assert_eq!(
            ev.data["failures"],
            serde_json::json!([{
                "rule": "violation",
                "msg": "release was built by `laptop.dana.example.com`, which is not a trusted builder",
                "metadata": {"builder": "laptop.dana.example.com"},
            }])
        );
        assert_eq!(
            ev.summary,
            "policy `main` denied the release (1 failure, 0 warnings): release was built by \
             `laptop.dana.example.com`, which is not a trusted builder"
        );
    }

    #[test]
    fn warnings_are_recorded_and_never_fail() {
        let rel = release(
            "ci.example.com",
            &[(
                "api-image",
                API_DIGEST,
                "registry.example.com/shop/api@sha256:6c3f1e0b",
            )],
            &[],
        );
        let verdict = eval(&bundle_gate(), &probe(rel.clone(), "low")).unwrap();
        let Verdict::Pass(ev) = verdict else {
            panic!("expected a pass, got {verdict:?}")
        };
        assert_eq!(
            messages(&ev, "warnings"),
            [
                ("warn".to_owned(), "release has no `team` label".to_owned()),
                (
                    "warn".to_owned(),
                    "release has no `ticket` label".to_owned()
                ),
            ]
        );
        assert_eq!(
            ev.summary,
            "policy `main` passed with 2 warnings: release has no `team` label; release has no \
             `ticket` label"
        );
        assert_eq!(ev.facts["policy_warnings"], "2");

        // A warn-only package elsewhere (`warn_<suffix>` rules), configured by name: warnings
        // in compliance; its one deny rule applies in production only.
        let gate = PolicyGate::builder()
            .package("release")
            .policy_file(samples().join("warn-only/labels.rego"))
            .build()
            .unwrap();
        let verdict = eval(&gate, &probe(rel.clone(), "low")).unwrap();
        let Verdict::Pass(ev) = verdict else {
            panic!("expected a pass, got {verdict:?}")
        };
        assert_eq!(
            messages(&ev, "warnings"),
            [
                (
                    "warn_team".to_owned(),
                    "release has no `team` label".to_owned()
                ),
                (
                    "warn_ticket".to_owned(),
                    "release has no `ticket` label".to_owned()
                ),
            ]
        );
        let verdict = eval(&gate, &probe(rel, "low").stage("production")).unwrap();
        let Verdict::Fail(ev) = verdict else {
            panic!("expected a failure, got {verdict:?}")
        };
        assert_eq!(
            ev.summary,
            "policy `release` denied the release (1 failure, 2 warnings): a production release \
             needs a `team` label"
        );
    }

    #[test]
    fn the_summary_quotes_two_messages_and_counts_the_rest() {
        let gate = PolicyGate::builder()
            .policy_text(
                "many.rego",
                "package main\n\ndeny contains sprintf(\"artifact %d\", [i]) if some i in numbers.range(1, 5)\n",
            )
            .build()
            .unwrap();
        let verdict = eval(&gate, &GateProbe::new()).unwrap();
        assert_eq!(
            verdict.evidence().summary,
            "policy `main` denied the release (5 failures, 0 warnings): artifact 1; artifact 2 \
             (and 3 more)"
        );
    }

    #[test]
    fn input_carries_release_pipeline_stage_and_gathered_evidence() {
        // Each expectation is a deny rule: a wrong or missing field fails the gate and names
        // itself; `warn` proves the package was evaluated at all.
        let rego = r#"package main

warn contains "evaluated" if true

deny contains "release.id" if not startswith(input.release.id, "sha256:")
deny contains "release.name" if input.release.name != "shop-api 2.3.0"
deny contains "release.artifacts" if {
	input.release.artifacts[0].name != "api-image"
}
deny contains "artifact digest" if {
	not startswith(input.release.artifacts[0].digest, "sha256:6c3f1e0b")
}
deny contains "release.source" if {
	input.release.source.commit != "4f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"
}
deny contains "release.builder" if input.release.builder != "ci.example.com"
deny contains "release.contributors" if input.release.contributors != ["dana", "lee"]
deny contains "release.labels" if input.release.labels.team != "payments"
deny contains "pipeline" if input.pipeline != {"name": "probe", "version": "1"}
deny contains "stage" if input.stage != "compliance"
deny contains "phase" if input.phase != "entry"
deny contains "gate" if input.gate != "policy"
deny contains "round" if input.round != 1
deny contains "stages" if {
	rec := input.stages.integration.entry["change-record"]
	not rec.outcome == "pass"
}
deny contains "stage status" if input.stages.integration.status != "promoted"
deny contains "facts" if input.stages.integration.entry["change-record"].facts.risk != "high"
deny contains "flat gates" if {
	not count([g |
		some g in input.gates
		g.stage == "integration"
		g.phase == "entry"
		g.gate == "change-record"
		g.facts.risk == "high"
		g.satisfied == true
		startswith(g.evidence_digest, "sha256:")
	]) == 1
}
"#;
        let gate = PolicyGate::builder()
            .policy_text("expectations.rego", rego)
            .build()
            .unwrap();
        let verdict = eval(&gate, &probe(good_release(), "high")).unwrap();
        let ev = verdict.evidence();
        assert_eq!(messages(ev, "failures"), []);
        assert_eq!(
            messages(ev, "warnings"),
            [("warn".to_owned(), "evaluated".to_owned())]
        );
        assert!(matches!(verdict, Verdict::Pass(_)));
    }

    #[test]
    fn data_documents_decide() {
        // The same policies without the bundle's data: no registry is approved and no builder
        // trusted, so everything is denied.
        let bare = PolicyGate::builder()
            .policy_file(samples().join("bundle/release.rego"))
            .policy_file(samples().join("bundle/lib/labels.rego"))
            .build()
            .unwrap();
        let verdict = eval(&bare, &probe(good_release(), "low")).unwrap();
        let Verdict::Fail(ev) = verdict else {
            panic!("expected a failure, got {verdict:?}")
        };
        assert_eq!(ev.data["rules"]["deny"], 2);
        assert_eq!(ev.data["rules"]["violation"], 1);

        // A data file merged at the root that approves only the `web` repository.
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("approved.json");
        std::fs::write(
            &data,
            r#"{"registries": {"allowed": ["registry.example.com/shop/web"]},
                "builders": {"trusted": ["ci.example.com"]}}"#,
        )
        .unwrap();
        let gate = PolicyGate::builder()
            .policy_file(samples().join("bundle/release.rego"))
            .policy_file(samples().join("bundle/lib/labels.rego"))
            .data_file(&data)
            .build()
            .unwrap();
        let verdict = eval(&gate, &probe(good_release(), "low")).unwrap();
        let Verdict::Fail(ev) = verdict else {
            panic!("expected a failure, got {verdict:?}")
        };
        assert_eq!(
            messages(&ev, "failures"),
            [(
                "deny".to_owned(),
                "artifact `api-image` is not from an approved registry \
                 (registry.example.com/shop/api@sha256:6c3f1e0b)"
                    .to_owned()
            )]
        );
        assert_eq!(gate.data_documents()[0].mount.as_deref(), Some(""));
        assert_eq!(
            gate.data_documents()[0].digest,
            Digest::of(&std::fs::read(&data).unwrap())
        );
        assert!(ev.attachments.iter().any(|a| a.name == display(&data)));
    }

    #[test]
    fn legacy_rego_v0_policies_load_when_asked() {
        let file = samples().join("legacy/release_v0.rego");
        let (what, message) = invalid(
            PolicyGate::builder()
                .policy_file(&file)
                .build()
                .unwrap_err(),
        );
        assert_eq!(what, format!("{} line 4", file.display()));
        assert_eq!(
            message,
            "column 11: `if` keyword is required before rule body"
        );

        let gate = PolicyGate::builder()
            .policy_file(&file)
            .rego_v0(true)
            .build()
            .unwrap();
        let rel = release(
            "ci.example.com",
            &[("api-image", API_DIGEST, "docker.io/shop/api:2.3.0")],
            &[],
        );
        let verdict = eval(&gate, &probe(rel, "low")).unwrap();
        let Verdict::Fail(ev) = verdict else {
            panic!("expected a failure, got {verdict:?}")
        };
        assert_eq!(
            messages(&ev, "failures"),
            [(
                "deny".to_owned(),
                "artifact `api-image` is not from an approved registry".to_owned()
            )]
        );
        assert_eq!(ev.data["rego_version"], "v0");
        assert_eq!(ev.facts["policy_warnings"], "1");
    }

    #[test]
    fn evidence_digests_follow_the_policy_files() {
        let dir = tempfile::tempdir().unwrap();
        for rel in [
            "release.rego",
            "lib/labels.rego",
            "data.json",
            "registries/data.json",
        ] {
            let to = dir.path().join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(samples().join("bundle").join(rel), &to).unwrap();
        }
        let build = || PolicyGate::builder().bundle(dir.path()).build().unwrap();
        let evidence = |gate: &PolicyGate| {
            eval(gate, &probe(good_release(), "low"))
                .unwrap()
                .evidence()
                .clone()
        };
        let before = evidence(&build());
        assert_eq!(before.attachments, evidence(&build()).attachments);

        // Same decision, different policy text: the audit must tell the versions apart.
        let policy = dir.path().join("release.rego");
        let mut text = std::fs::read_to_string(&policy).unwrap();
        text.push_str("\n# Reviewed by the compliance board on 2026-11-20.\n");
        std::fs::write(&policy, text).unwrap();
        let gate = build();
        let after = evidence(&gate);
        assert_eq!(before.summary, after.summary);
        let digest_of = |ev: &Evidence, name: &str| {
            ev.attachments
                .iter()
                .find(|a| a.name == name)
                .map(|a| a.digest)
                .unwrap()
        };
        let policy_name = display(&policy);
        assert_ne!(
            digest_of(&before, &policy_name),
            digest_of(&after, &policy_name)
        );
        assert_eq!(
            digest_of(&after, &policy_name),
            Digest::of(&std::fs::read(&policy).unwrap())
        );
        let labels = display(&dir.path().join("lib/labels.rego"));
        assert_eq!(digest_of(&before, &labels), digest_of(&after, &labels));
        assert_ne!(before.facts["policy_set"], after.facts["policy_set"]);
        assert_ne!(before.digest(), after.digest());
        // The input is the same either way.
        assert_eq!(
            digest_of(&before, "input.json"),
            digest_of(&after, "input.json")
        );
    }

    #[test]
    fn one_gate_evaluates_many_times_from_the_prepared_engine() {
        let gate = std::sync::Arc::new(bundle_gate());
        let first = eval(&gate, &probe(good_release(), "low")).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let gate = gate.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .map(|_| eval(&gate, &probe(good_release(), "low")).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for t in threads {
            for verdict in t.join().unwrap() {
                assert_eq!(verdict, first);
            }
        }
        // A denial in between does not leak into later evaluations.
        let bad = release("laptop", &[("api-image", API_DIGEST, "docker.io/x")], &[]);
        assert!(matches!(
            eval(&gate, &probe(bad, "high")).unwrap(),
            Verdict::Fail(_)
        ));
        assert_eq!(eval(&gate, &probe(good_release(), "low")).unwrap(), first);
    }

    // -----------------------------------------------------------------------------------------
    // Broken policies and data
    // -----------------------------------------------------------------------------------------

    #[test]
    fn a_syntax_error_names_the_file_and_the_line() {
        let file = samples().join("broken/syntax_error.rego");
        let err = PolicyGate::builder()
            .policy_file(&file)
            .build()
            .unwrap_err();
        let (what, message) = invalid(err);
        assert_eq!(what, format!("{} line 10", file.display()));
        assert_eq!(message, "column 5: expecting `]` while parsing array");
    }

    #[test]
    fn an_analysis_error_names_the_file_and_the_line() {
        let err = PolicyGate::builder()
            .policy_text(
                "policy/unsafe.rego",
                "package main\n\ndeny contains msg if {\n\tartifact.uri == \"x\"\n\tmsg := \"m\"\n}\n",
            )
            .build()
            .unwrap_err();
        let (what, message) = invalid(err);
        assert_eq!(what, "policy/unsafe.rego line 4");
        assert_eq!(
            message,
            "column 5: use of undefined variable `artifact` is unsafe"
        );
    }

    #[test]
    fn a_function_through_an_import_alias_is_refused_with_its_line() {
        // Valid OPA, unsupported by regorus 0.5: regorus resolves functions when it evaluates,
        // so the gate loads and every evaluation is an error naming the call, never a pass.
        let file = samples().join("broken/import_alias.rego");
        let gate = PolicyGate::builder()
            .policy_file(samples().join("bundle/lib/labels.rego"))
            .policy_file(&file)
            .build()
            .unwrap();
        let (what, message) = invalid(eval(&gate, &probe(good_release(), "low")).unwrap_err());
        assert_eq!(what, format!("{} line 8", file.display()));
        assert_eq!(message, "column 33: could not find function labels.missing");
    }

    #[test]
    fn a_runtime_error_names_the_file_and_the_line() {
        let file = samples().join("broken/runtime_error.rego");
        let gate = PolicyGate::builder().policy_file(&file).build().unwrap();
        // An automated release: no contributors, so the policy divides by zero.
        let automated = Release::builder(
            "shop-api 2.3.1",
            "git@example.com:shop/api",
            "4f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",
            t0(),
        )
        .artifact_at("api-image", API_DIGEST, "registry.example.com/shop/api")
        .builder("ci.example.com")
        .build()
        .unwrap();
        let err = eval(&gate, &probe(automated, "low")).unwrap_err();
        let (what, message) = invalid(err);
        assert_eq!(what, format!("{} line 5", file.display()));
        assert_eq!(message, "column 45: divide by zero");
    }

    #[test]
    fn a_package_no_policy_declares_is_refused() {
        let err = PolicyGate::builder()
            .policy_file(samples().join("broken/other_package.rego"))
            .build()
            .unwrap_err();
        assert_eq!(
            misconfigured(err),
            "no policy declares package `main`, so nothing would be checked; the policies \
             declare `release.checks`"
        );
        // Configured to the declared package, the same file works.
        let gate = PolicyGate::builder()
            .package("release.checks")
            .policy_file(samples().join("broken/other_package.rego"))
            .build()
            .unwrap();
        assert_eq!(gate.package(), "release.checks");
        assert!(matches!(
            eval(&gate, &GateProbe::new()).unwrap(),
            Verdict::Fail(_)
        ));
    }

    #[test]
    fn a_package_without_decision_rules_is_a_misconfiguration() {
        let file = samples().join("broken/no_rules.rego");
        let gate = PolicyGate::builder().policy_file(&file).build().unwrap();
        let err = eval(&gate, &GateProbe::new()).unwrap_err();
        assert_eq!(
            misconfigured(err),
            format!(
                "package `main` ({}) has no deny, violation or warn rule, so it decides nothing",
                file.display()
            )
        );
    }

    #[test]
    fn a_boolean_deny_rule_is_refused_not_passed() {
        let file = samples().join("broken/boolean_deny.rego");
        let gate = PolicyGate::builder().policy_file(&file).build().unwrap();
        let (what, message) = invalid(eval(&gate, &GateProbe::new()).unwrap_err());
        assert_eq!(what, file.display().to_string());
        assert_eq!(
            message,
            "rule `data.main.deny` must be a set of messages (`deny contains msg if { … }`), but \
             it is a boolean: false"
        );
    }

    #[test]
    fn a_structured_result_without_msg_is_refused() {
        let file = samples().join("broken/violation_without_msg.rego");
        let gate = PolicyGate::builder().policy_file(&file).build().unwrap();
        let rel = release(
            "laptop",
            &[("api-image", API_DIGEST, "registry.example.com/shop/api")],
            &[],
        );
        let (what, message) = invalid(eval(&gate, &probe(rel, "low")).unwrap_err());
        assert_eq!(what, file.display().to_string());
        assert!(
            message.starts_with(
                "rule `data.main.violation` yielded a result without the `msg` field Conftest \
                 requires: {"
            ),
            "{message}"
        );

        let gate = PolicyGate::builder()
            .policy_text("numbers.rego", "package main\n\ndeny contains 42 if true\n")
            .build()
            .unwrap();
        let (what, message) = invalid(eval(&gate, &GateProbe::new()).unwrap_err());
        assert_eq!(what, "numbers.rego");
        assert_eq!(
            message,
            "rule `data.main.deny` yielded a number, which is neither a message string nor an \
             object with a `msg`: 42"
        );
    }

    #[test]
    fn malformed_data_documents_name_file_and_line() {
        let file = samples().join("broken/malformed.json");
        let err = PolicyGate::builder()
            .bundle(samples().join("bundle"))
            .data_file(&file)
            .build()
            .unwrap_err();
        let (what, message) = invalid(err);
        assert_eq!(what, format!("{} line 4", file.display()));
        assert_eq!(message, "column 3: trailing comma");

        let file = samples().join("broken/not_an_object.json");
        let err = PolicyGate::builder()
            .bundle(samples().join("bundle"))
            .data_file(&file)
            .build()
            .unwrap_err();
        assert_eq!(
            invalid(err),
            (
                file.display().to_string(),
                "a data document must be a JSON object, found an array".to_owned()
            )
        );
    }

    #[test]
    fn conflicting_data_names_the_second_document() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("builders.json");
        std::fs::write(&other, r#"{"builders": {"trusted": "anyone"}}"#).unwrap();
        let err = PolicyGate::builder()
            .bundle(samples().join("bundle"))
            .data_file(&other)
            .build()
            .unwrap_err();
        let (what, message) = invalid(err);
        assert_eq!(what, other.display().to_string());
        assert!(
            message.starts_with("conflicts with data loaded before it"),
            "{message}"
        );
    }

    #[test]
    fn yaml_data_in_a_bundle_is_refused_not_skipped() {
        let err = PolicyGate::builder()
            .bundle(samples().join("yaml-bundle"))
            .build()
            .unwrap_err();
        let (what, message) = invalid(err);
        assert_eq!(what, path("yaml-bundle/data.yaml"));
        assert!(message.starts_with("YAML data documents are not supported"));
    }

    #[test]
    fn unreadable_inputs_name_the_path() {
        let missing = samples().join("bundle/nope.rego");
        let (what, message) = invalid(
            PolicyGate::builder()
                .policy_file(&missing)
                .build()
                .unwrap_err(),
        );
        assert_eq!(what, missing.display().to_string());
        assert!(
            message.starts_with("cannot read the policy file:"),
            "{message}"
        );

        let (what, message) = invalid(
            PolicyGate::builder()
                .bundle(samples().join("no-such-bundle"))
                .build()
                .unwrap_err(),
        );
        assert_eq!(what, path("no-such-bundle"));
        assert!(message.starts_with("cannot read the policy bundle:"));

        let (what, message) = invalid(
            PolicyGate::builder()
                .bundle(samples().join("bundle/release.rego"))
                .build()
                .unwrap_err(),
        );
        assert_eq!(
            (what.as_str(), message.as_str()),
            (path("bundle/release.rego").as_str(), "is not a directory")
        );

        let dir = tempfile::tempdir().unwrap();
        let latin1 = dir.path().join("latin1.rego");
        std::fs::write(&latin1, b"package main\n\n# r\xe9vis\xe9\n").unwrap();
        let (what, message) = invalid(
            PolicyGate::builder()
                .policy_file(&latin1)
                .build()
                .unwrap_err(),
        );
        assert_eq!(what, format!("{} line 3", latin1.display()));
        assert_eq!(message, "not UTF-8 text: invalid byte at offset 17");
    }

    // -----------------------------------------------------------------------------------------
    // Configuration
    // -----------------------------------------------------------------------------------------

    #[test]
    fn configuration_is_validated() {
        let policy = samples().join("bundle/release.rego");
        let err = |b: PolicyGateBuilder| misconfigured(b.build().unwrap_err());
        assert!(err(PolicyGate::builder().name("").policy_file(&policy))
            .starts_with("invalid gate name ``"));
        assert_eq!(
            err(PolicyGate::builder()
                .package("data.main")
                .policy_file(&policy)),
            "package `data.main`: give it without the `data.` prefix"
        );
        for bad in ["", "release-checks", "9lives", "main.", "a..b"] {
            assert!(
                err(PolicyGate::builder().package(bad).policy_file(&policy))
                    .contains("is not a Rego package name"),
                "{bad}"
            );
        }
        assert!(err(PolicyGate::builder()).starts_with("no Rego policy was given"));
        // A bundle with data but no policy is still no policy.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.json"), "{}").unwrap();
        assert!(err(PolicyGate::builder().bundle(dir.path())).starts_with("no Rego policy"));
        // The same file twice.
        assert_eq!(
            err(PolicyGate::builder()
                .bundle(samples().join("bundle"))
                .policy_file(&policy)),
            format!(
                "{} is loaded twice: give each policy file and data document once",
                policy.display()
            )
        );
    }

    #[test]
    fn name_kind_and_loaded_files() {
        let gate = bundle_gate();
        assert_eq!(gate.name(), "release-policy");
        assert_eq!(gate.kind(), GateKind::Compliance);
        assert_eq!(
            PolicyGate::builder()
                .policy_file(samples().join("bundle/release.rego"))
                .policy_file(samples().join("bundle/lib/labels.rego"))
                .build()
                .unwrap()
                .name(),
            "policy"
        );
        let packages: Vec<_> = gate
            .policies()
            .iter()
            .map(|f| f.package.as_deref().unwrap())
            .collect();
        assert_eq!(packages, ["lib.labels", "main"]);
        let debug = format!("{gate:?}");
        assert!(debug.contains("release-policy") && debug.contains("release.rego"));
    }

    #[test]
    fn conftest_rule_names() {
        for (rule, want) in [
            ("deny", Some(Severity::Failure)),
            ("violation", Some(Severity::Failure)),
            ("deny_high_risk", Some(Severity::Failure)),
            ("violation_k8s2", Some(Severity::Failure)),
            ("warn", Some(Severity::Warning)),
            ("warn_labels", Some(Severity::Warning)),
            ("deny_", None),
            ("deny__x", None),
            ("deny_x-y", None),
            ("denylist", None),
            ("warning", None),
            ("allow", None),
            ("exception", None),
        ] {
            assert_eq!(classify(rule), want, "{rule}");
        }
    }

    #[test]
    fn gate_is_shareable() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<PolicyGate>();
    }
}
