//! The gate registry: a gate's `kind` in a template names a constructor that builds the gate
//! from its settings.
//!
//! [`GateRegistry::builtin`] knows every reference gate of `promotion-gates`; a host adds its
//! own kinds next to them:
//!
//! ```
//! use std::sync::Arc;
//! use promotion_config::{BuildContext, ConfigError, GateRegistry, Settings};
//! use promotion_core::testing::ScriptedGate;
//! use promotion_core::Gate;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct TicketSettings { project: String }
//!
//! fn ticket(settings: &Settings, ctx: &BuildContext) -> Result<Arc<dyn Gate>, ConfigError> {
//!     let s: TicketSettings = settings.deserialize()?;
//!     let name = ctx.gate_name().unwrap_or("ticket");
//!     Ok(Arc::new(ScriptedGate::passing(format!("{name}:{}", s.project))))
//! }
//!
//! let registry = GateRegistry::builtin().with("ticket", ticket);
//! assert!(registry.kinds().contains(&"ticket"));
//! assert!(registry.kinds().contains(&"process"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use promotion_core::{Gate, PhaseId};
use promotion_gates::process::{EnvSecrets, SecretSource};
use serde::de::DeserializeOwned;

use crate::error::{ConfigError, ErrorKind, Location};
use crate::source::{key, Doc, Seg, SourceFile};

/// Builds a gate from its settings; see [`GateRegistry::register`].
pub type GateConstructor =
    dyn Fn(&Settings, &BuildContext) -> Result<Arc<dyn Gate>, ConfigError> + Send + Sync;

/// Looks up a host environment variable (for secrets a gate needs when it is built).
pub type EnvLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// A gate's settings: the keys of its table in the template other than the common ones
/// (`kind`, `name`, `policy`, `dry_run`), after parameter substitution. Errors made from it
/// name the file, line and column.
#[derive(Clone)]
pub struct Settings {
    table: toml::Table,
    doc: Arc<Doc>,
    path: Vec<Seg>,
    label: String,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("label", &self.label)
            .field("table", &self.table)
            .finish()
    }
}

impl Settings {
    pub(crate) fn new(table: toml::Table, doc: Arc<Doc>, path: Vec<Seg>, label: String) -> Self {
        Settings {
            table,
            doc,
            path,
            label,
        }
    }

    /// Settings read from a TOML document (its top-level table), for testing a constructor.
    pub fn parse(file: &str, text: &str) -> Result<Settings, ConfigError> {
        let doc = Doc::parse(SourceFile::new(file, text))?;
        let table = doc.root.clone();
        Ok(Settings::new(
            table,
            Arc::new(doc),
            Vec::new(),
            "gate".into(),
        ))
    }

    /// The settings as a TOML table.
    pub fn table(&self) -> &toml::Table {
        &self.table
    }

    /// The setting `key`, when present.
    pub fn get(&self, key: &str) -> Option<&toml::Value> {
        self.table.get(key)
    }

    /// The settings as JSON (date-times become RFC 3339 strings).
    pub fn to_json(&self) -> serde_json::Value {
        toml_to_json(&toml::Value::Table(self.table.clone()))
    }

    /// Deserialises the settings into `T`; use `#[serde(deny_unknown_fields)]` so that a
    /// misspelt setting is reported with its line and column.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.doc.deserialize(
            toml::Value::Table(self.table.clone()),
            &self.path,
            &self.label,
        )
    }

    /// Where setting `key` is (the gate's table when `None` or absent).
    pub fn location(&self, key_name: Option<&str>) -> Location {
        let mut path = self.path.clone();
        if let Some(k) = key_name.filter(|k| self.table.contains_key(*k)) {
            path.push(key(k));
            return self.doc.locate_key(&path);
        }
        self.doc.locate(&path)
    }

    /// A refusal of setting `key` (or of the whole gate when `None`), placed in the file.
    pub fn error(&self, key_name: Option<&str>, message: impl fmt::Display) -> ConfigError {
        let what = match key_name {
            Some(k) => format!("{}: `{k}`: {message}", self.label),
            None => format!("{}: {message}", self.label),
        };
        ConfigError::new(ErrorKind::GateSettings, what).at(self.location(key_name))
    }
}

/// Converts a TOML value to JSON; date-times become their RFC 3339 text.
pub fn toml_to_json(value: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// What a constructor may know about where its gate goes.
#[derive(Clone)]
pub struct BuildContext {
    base_dir: PathBuf,
    stage: String,
    phase: PhaseId,
    name: Option<String>,
    secrets: Arc<dyn SecretSource>,
    env: Arc<EnvLookup>,
}

impl fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildContext")
            .field("base_dir", &self.base_dir)
            .field("stage", &self.stage)
            .field("phase", &self.phase)
            .field("name", &self.name)
            .finish()
    }
}

impl BuildContext {
    /// A context for a gate of `stage` in `phase`, resolving relative paths against
    /// `base_dir`, with secrets and variables from the host environment.
    pub fn new(base_dir: impl Into<PathBuf>, stage: impl Into<String>, phase: PhaseId) -> Self {
        BuildContext {
            base_dir: base_dir.into(),
            stage: stage.into(),
            phase,
            name: None,
            secrets: Arc::new(EnvSecrets::new()),
            env: Arc::new(|name: &str| std::env::var(name).ok()),
        }
    }
    /// Sets the name the template gives the gate.
    pub fn with_name(mut self, name: Option<String>) -> Self {
        self.name = name;
        self
    }
    /// Sets where process gates get their secrets.
    pub fn with_secrets(mut self, secrets: Arc<dyn SecretSource>) -> Self {
        self.secrets = secrets;
        self
    }
    /// Sets how variables (webhook signing secrets) are looked up.
    pub fn with_env(mut self, env: Arc<EnvLookup>) -> Self {
        self.env = env;
        self
    }
    /// The directory relative paths are resolved against (the service file's).
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }
    /// `path` resolved against [`base_dir`](Self::base_dir) unless absolute.
    pub fn resolve(&self, path: impl AsRef<Path>) -> PathBuf {
        let p = path.as_ref();
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
    /// The stage the gate guards.
    pub fn stage(&self) -> &str {
        &self.stage
    }
    /// The phase it runs in.
    pub fn phase(&self) -> PhaseId {
        self.phase
    }
    /// The name the template gives the gate, when it gives one; the constructor should
    /// build the gate under it so its evidence carries it.
    pub fn gate_name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// Where process gates get their secrets.
    pub fn secret_source(&self) -> Arc<dyn SecretSource> {
        self.secrets.clone()
    }
    /// The value of the host variable `name`.
    pub fn env_var(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }
}

/// Maps a gate's `kind` to the constructor that builds it.
#[derive(Clone, Default)]
pub struct GateRegistry {
    kinds: BTreeMap<String, Arc<GateConstructor>>,
}

impl fmt::Debug for GateRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateRegistry")
            .field("kinds", &self.kinds())
            .finish()
    }
}

impl GateRegistry {
    /// A registry that knows no kind.
    pub fn new() -> Self {
        GateRegistry::default()
    }

    /// Every reference gate of `promotion-gates`; see [`crate::builtin`] for their settings.
    pub fn builtin() -> Self {
        crate::builtin::register_all(GateRegistry::new())
    }

    /// Registers `constructor` for `kind`, replacing and returning the one registered before.
    pub fn register<F>(
        &mut self,
        kind: impl Into<String>,
        constructor: F,
    ) -> Option<Arc<GateConstructor>>
    where
        F: Fn(&Settings, &BuildContext) -> Result<Arc<dyn Gate>, ConfigError>
            + Send
            + Sync
            + 'static,
    {
        self.kinds.insert(kind.into(), Arc::new(constructor))
    }

    /// [`register`](Self::register), by value.
    pub fn with<F>(mut self, kind: impl Into<String>, constructor: F) -> Self
    where
        F: Fn(&Settings, &BuildContext) -> Result<Arc<dyn Gate>, ConfigError>
            + Send
            + Sync
            + 'static,
    {
        self.register(kind, constructor);
        self
    }

    /// The known kinds, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        self.kinds.keys().map(String::as_str).collect()
    }

    /// The constructor for `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<GateConstructor>> {
        self.kinds.get(kind)
    }

    /// Builds a gate of `kind`; an unknown kind is an error listing the known ones.
    pub fn construct(
        &self,
        kind: &str,
        settings: &Settings,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Gate>, ConfigError> {
        match self.kinds.get(kind) {
            Some(c) => c(settings, ctx),
            None => Err(ConfigError::new(
                ErrorKind::UnknownGateKind,
                format!(
                    "unknown gate kind `{kind}`; known kinds: {}",
                    self.kinds().join(", ")
                ),
            )
            .at(settings.location(None))),
        }
    }
}
