//! Building a [`PolicyGate`]: the [`PolicyGateBuilder`]'s policy files, bundles and data
//! documents, loaded into the Rego engine once, each file digested and each error naming the file
//! and line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use promotion_core::{Digest, GateName};
use regorus::Value;
use serde_json::{Map, Value as Json};

use crate::GateError;

use crate::input::invalid_input;

use super::{
    check_package, display, json_error, json_kind, mount_of, read, rego_error, utf8, LoadedFile,
    PolicyGate, DEFAULT_NAME, DEFAULT_PACKAGE,
};

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
    /// the [module documentation](super#policies-and-data) for the layout).
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
