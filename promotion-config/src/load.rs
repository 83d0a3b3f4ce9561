//! Instantiating a template for a service: parameters, substitution, gates from the registry,
//! approval rules, rollouts, policies, and the pipeline's validation mapped back to the file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use promotion_core::layer::GateExt;
use promotion_core::{
    ApprovalPolicy, Availability, Backoff, Gate, GateName, GatePolicy, GateSpec, Group, PhaseId,
    PhasePolicy, Pipeline, PipelineError, RolloutPlan, RolloutStep, StageName, StageSpec,
};
use promotion_gates::process::{EnvSecrets, SecretSource};
use serde::Deserialize;

use crate::duration::DurationValue;
use crate::error::{ConfigError, ErrorKind};
use crate::expr::parse_approval_rule;
use crate::identity::PipelineIdentity;
use crate::params::{substitute_str, SERVICE_PARAM};
use crate::registry::{BuildContext, EnvLookup, GateRegistry, Settings};
use crate::service::{base_dir_of, Service, TemplateRef};
use crate::source::{key, show_path, Doc, Seg, SourceFile};
use crate::template::Template;

/// Wraps every gate the loader builds (a progress display, metrics, a dry-run switch).
pub type Decorator = dyn Fn(&GateInfo, Arc<dyn Gate>) -> Arc<dyn Gate> + Send + Sync;

/// Where a gate the loader builds goes; given to the [`Decorator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateInfo {
    /// The stage.
    pub stage: String,
    /// The phase.
    pub phase: PhaseId,
    /// The gate's name in the phase.
    pub name: String,
    /// Its kind in the registry.
    pub kind: String,
}

/// A pipeline built from a template: the pipeline itself and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated pipeline, its version string carrying [`identity`](Self::identity).
    pub pipeline: Pipeline,
    /// Template name, version and digest; service name, version and digest.
    pub identity: PipelineIdentity,
    /// The template.
    pub template: Template,
    /// The service file, when the template was instantiated for one.
    pub service: Option<Service>,
    /// The parameter values used, defaults included (`service` too).
    pub params: BTreeMap<String, toml::Value>,
    /// The directory relative paths were resolved against.
    pub base_dir: PathBuf,
}

/// Reads service files and templates and builds pipelines from them.
///
/// ```no_run
/// use promotion_config::Loader;
///
/// let loaded = Loader::new().template_dir("templates").load("checkout/promotion.toml".as_ref())?;
/// println!("{} stages, version {}", loaded.pipeline.stages().len(), loaded.pipeline.version());
/// # Ok::<(), promotion_config::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Loader {
    registry: GateRegistry,
    template_dirs: Vec<PathBuf>,
    secrets: Arc<dyn SecretSource>,
    env: Arc<EnvLookup>,
    decorate: Option<Arc<Decorator>>,
}

impl fmt::Debug for Loader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loader")
            .field("registry", &self.registry)
            .field("template_dirs", &self.template_dirs)
            .finish()
    }
}

impl Default for Loader {
    fn default() -> Self {
        Loader::new()
    }
}

impl Loader {
    /// A loader with every reference gate registered, secrets and variables from the host
    /// environment, and no template directory (a service names its template by `path` or
    /// `dir`; otherwise `templates/` beside the service file is searched).
    pub fn new() -> Self {
        Loader::with_registry(GateRegistry::builtin())
    }

    /// A loader with `registry`.
    pub fn with_registry(registry: GateRegistry) -> Self {
        Loader {
            registry,
            template_dirs: Vec::new(),
            secrets: Arc::new(EnvSecrets::new()),
            env: Arc::new(|name: &str| std::env::var(name).ok()),
            decorate: None,
        }
    }

    /// The registry, to add kinds.
    pub fn registry_mut(&mut self) -> &mut GateRegistry {
        &mut self.registry
    }

    /// The registry.
    pub fn registry(&self) -> &GateRegistry {
        &self.registry
    }

    /// Adds a directory where templates named by `name` and `version` are looked up.
    pub fn template_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.template_dirs.push(dir.into());
        self
    }

    /// Sets where process gates get their secrets.
    pub fn secrets(mut self, source: Arc<dyn SecretSource>) -> Self {
        self.secrets = source;
        self
    }

    /// Sets how host variables are looked up (webhook signing secrets).
    pub fn env(mut self, lookup: Arc<EnvLookup>) -> Self {
        self.env = lookup;
        self
    }

    /// Wraps every gate built with `f`.
    pub fn decorate(
        mut self,
        f: impl Fn(&GateInfo, Arc<dyn Gate>) -> Arc<dyn Gate> + Send + Sync + 'static,
    ) -> Self {
        self.decorate = Some(Arc::new(f));
        self
    }

    /// Loads a service file and its template, or a template on its own (a file without a
    /// `[service]` section: its parameters' defaults are used, and the template's name is
    /// the service's).
    pub fn load(&self, path: &Path) -> Result<Loaded, ConfigError> {
        let source = SourceFile::read(path)?;
        let is_service = Doc::parse(source.clone())?.root.contains_key("service");
        if is_service {
            let service = Service::parse(source)?;
            let template = self.find_template(&service)?;
            self.instantiate(&template, Some(&service))
        } else {
            let template = Template::parse(source)?;
            self.instantiate(&template, None)
        }
    }

    /// Loads a service file with `template` instead of the one it names (what-if).
    pub fn load_with_template(
        &self,
        service: &Path,
        template: &Path,
    ) -> Result<Loaded, ConfigError> {
        let service = Service::from_file(service)?;
        let template = Template::from_file(template)?;
        self.instantiate(&template, Some(&service))
    }

    /// Finds the template `service` names, and checks its pinned digest.
    pub fn find_template(&self, service: &Service) -> Result<Template, ConfigError> {
        let base = service.base_dir();
        let doc = &service.doc;
        let template = match service.template() {
            TemplateRef::Path(p) => {
                let path = resolve(&base, p);
                Template::from_file(&path).map_err(|e| {
                    if e.kind() == ErrorKind::Io {
                        doc.error(
                            ErrorKind::TemplateNotFound,
                            &[key("template"), key("path")],
                            format!("template not found: {}", e.message()),
                        )
                    } else {
                        e
                    }
                })?
            }
            TemplateRef::Named { name, version, dir } => {
                let dirs: Vec<PathBuf> = match dir {
                    Some(d) => vec![resolve(&base, d)],
                    None if self.template_dirs.is_empty() => vec![base.join("templates")],
                    None => self.template_dirs.clone(),
                };
                find_named(&dirs, name, version).map_err(|(message, notes)| {
                    let mut e = doc.error(
                        ErrorKind::TemplateNotFound,
                        &[key("template"), key("name")],
                        message,
                    );
                    for n in notes {
                        e = e.note(n);
                    }
                    e
                })?
            }
        };
        if let Some(pin) = service.pinned_digest() {
            if *pin != template.id().digest {
                return Err(doc.error(
                    ErrorKind::DigestMismatch,
                    &[key("template"), key("sha256")],
                    format!(
                        "template {}@{} at {} has digest {}, but this service pins {pin}",
                        template.id().name,
                        template.id().version,
                        template.source().path().display(),
                        template.id().digest
                    ),
                ));
            }
        }
        Ok(template)
    }

    /// Finds version `version` of the template `name` where `service` looks for its own
    /// template: its `dir`, the loader's template directories, or the directory of the file
    /// it names by `path` (to build a service under another template version).
    pub fn find_template_version(
        &self,
        service: &Service,
        name: &str,
        version: &str,
    ) -> Result<Template, ConfigError> {
        let base = service.base_dir();
        let dirs: Vec<PathBuf> = match service.template() {
            TemplateRef::Named { dir: Some(d), .. } => vec![resolve(&base, d)],
            TemplateRef::Named { dir: None, .. } if self.template_dirs.is_empty() => {
                vec![base.join("templates")]
            }
            TemplateRef::Named { dir: None, .. } => self.template_dirs.clone(),
            TemplateRef::Path(p) => {
                let path = resolve(&base, p);
                let mut dirs = vec![base_dir_of(&path)];
                dirs.extend(self.template_dirs.iter().cloned());
                dirs
            }
        };
        find_named(&dirs, name, version).map_err(|(message, notes)| {
            let mut e = ConfigError::new(ErrorKind::TemplateNotFound, message);
            for n in notes {
                e = e.note(n);
            }
            e
        })
    }

    /// Builds the pipeline of `template` for `service` (or on its own).
    pub fn instantiate(
        &self,
        template: &Template,
        service: Option<&Service>,
    ) -> Result<Loaded, ConfigError> {
        let params = resolve_params(template, service)?;
        let base_dir = match service {
            Some(s) => s.base_dir(),
            None => base_dir_of(template.source().path()),
        };
        let identity = PipelineIdentity {
            service: service.map_or_else(|| template.id().name.clone(), |s| s.name().to_owned()),
            service_version: service.and_then(|s| s.version().map(str::to_owned)),
            service_digest: service.map(|s| s.source().digest()),
            template: template.id().clone(),
        };
        let version = identity.version_string();
        if version.len() > promotion_core::name::MAX_NAME_LEN {
            let e = ConfigError::new(
                ErrorKind::InvalidValue,
                format!(
                    "the pipeline version `{version}` is longer than {} bytes; use shorter \
                     service and template names",
                    promotion_core::name::MAX_NAME_LEN
                ),
            );
            return Err(match service {
                Some(s) => e.at(s.doc.locate(&[key("service"), key("name")])),
                None => e.at(template.doc.locate(&[key("template"), key("name")])),
            });
        }
        let builder = Instantiation {
            loader: self,
            doc: template.doc.clone(),
            params: &params,
            base_dir: &base_dir,
            stages: Vec::new(),
        };
        let pipeline = builder.build(&identity, version)?;
        Ok(Loaded {
            pipeline,
            identity,
            template: template.clone(),
            service: service.cloned(),
            params,
            base_dir,
        })
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

type NotFound = (String, Vec<String>);

/// Looks for `name@version` among the `*.toml` files of `dirs` and their subdirectories.
fn find_named(dirs: &[PathBuf], name: &str, version: &str) -> Result<Template, NotFound> {
    let mut seen = Vec::new();
    let mut broken = Vec::new();
    for dir in dirs {
        let mut files = Vec::new();
        collect_toml(dir, 2, &mut files);
        files.sort();
        for f in files {
            match Template::from_file(&f) {
                Ok(t) if t.id().name == name && t.id().version == version => return Ok(t),
                Ok(t) => seen.push(format!("{}@{}", t.id().name, t.id().version)),
                Err(e) => broken.push(e.to_string()),
            }
        }
    }
    let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let mut notes = Vec::new();
    if seen.is_empty() {
        notes.push(format!("no template found in {}", shown.join(", ")));
    } else {
        seen.sort();
        seen.dedup();
        notes.push(format!("templates found: {}", seen.join(", ")));
    }
    notes.extend(
        broken
            .into_iter()
            .map(|e| format!("a file there could not be read as a template: {e}")),
    );
    Err((
        format!(
            "template {name}@{version} not found in {} (looked at every *.toml file)",
            shown.join(", ")
        ),
        notes,
    ))
}

fn collect_toml(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && depth > 0 {
            collect_toml(&p, depth - 1, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

/// The parameter values for `template`: the service's, checked against the declarations,
/// then the defaults, then `service`.
fn resolve_params(
    template: &Template,
    service: Option<&Service>,
) -> Result<BTreeMap<String, toml::Value>, ConfigError> {
    let mut values = BTreeMap::new();
    let tid = format!("{}@{}", template.id().name, template.id().version);
    if let Some(s) = service {
        for (name, value) in s.params() {
            let path = [key("params"), key(name)];
            let Some(decl) = template.param(name) else {
                let declared: Vec<&str> =
                    template.params().iter().map(|p| p.name.as_str()).collect();
                let list = if declared.is_empty() {
                    "it declares no parameters".to_owned()
                } else {
                    format!("it declares: {}", declared.join(", "))
                };
                return Err(s.doc.error_at_key(
                    ErrorKind::UnknownParameter,
                    &path,
                    format!(
                        "unknown parameter `{name}`: template {tid} does not declare it; {list}"
                    ),
                ));
            };
            decl.ty.check(value).map_err(|m| {
                s.doc
                    .error(
                        ErrorKind::ParameterType,
                        &path,
                        format!("parameter `{name}` (type {}): {m}", decl.ty),
                    )
                    .note(format!(
                        "declared at {}",
                        template.doc.locate_key(&Template::param_path(name))
                    ))
            })?;
            values.insert(name.clone(), value.clone());
        }
    }
    for decl in template.params() {
        if values.contains_key(&decl.name) {
            continue;
        }
        match &decl.default {
            Some(d) => {
                values.insert(decl.name.clone(), d.clone());
            }
            None => {
                let declared_at = template.doc.locate_key(&Template::param_path(&decl.name));
                let what = decl
                    .description
                    .as_deref()
                    .map_or_else(String::new, |d| format!(" ({d})"));
                let message = format!(
                    "missing parameter `{}`: template {tid} requires a value of type {}{what}",
                    decl.name, decl.ty
                );
                let e = match service {
                    Some(s) if s.doc.has(&[key("params")]) => {
                        s.doc
                            .error(ErrorKind::MissingParameter, &[key("params")], message)
                    }
                    Some(s) => s
                        .doc
                        .error(ErrorKind::MissingParameter, &[key("template")], message)
                        .note("add a `[params]` section with the value"),
                    None => ConfigError::new(ErrorKind::MissingParameter, message)
                        .at(declared_at.clone()),
                };
                return Err(e.note(format!("declared at {declared_at}")));
            }
        }
    }
    let name = service.map_or_else(|| template.id().name.clone(), |s| s.name().to_owned());
    values.insert(SERVICE_PARAM.to_owned(), toml::Value::String(name));
    Ok(values)
}

// ---------------------------------------------------------------------------------------------
// The template's sections

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PipelineDoc {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    break_glass: Vec<String>,
    #[serde(default)]
    operators: Vec<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum AvailabilityDoc {
    All,
    Any,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    #[serde(default)]
    delay: Option<DurationValue>,
    #[serde(default)]
    interval: Option<DurationValue>,
    #[serde(default)]
    timeout: Option<DurationValue>,
    #[serde(default)]
    all_pass_in_same_round: Option<bool>,
    #[serde(default)]
    min_success: Option<DurationValue>,
    #[serde(default)]
    fail_fast: Option<bool>,
    #[serde(default)]
    consecutive_error_limit: Option<u32>,
    #[serde(default)]
    retry_interval: Option<DurationValue>,
}

impl PolicyDoc {
    fn policy(self) -> PhasePolicy {
        let d = PhasePolicy::default();
        PhasePolicy {
            delay: self.delay.map_or(d.delay, |v| v.0),
            interval: self.interval.map(|v| v.0).or(d.interval),
            timeout: self.timeout.map(|v| v.0).or(d.timeout),
            all_pass_in_same_round: self
                .all_pass_in_same_round
                .unwrap_or(d.all_pass_in_same_round),
            min_success: self.min_success.map_or(d.min_success, |v| v.0),
            fail_fast: self.fail_fast.unwrap_or(d.fail_fast),
            consecutive_error_limit: self
                .consecutive_error_limit
                .unwrap_or(d.consecutive_error_limit),
            retry_interval: self.retry_interval.map_or(d.retry_interval, |v| v.0),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackoffDoc {
    #[serde(default)]
    initial: Option<DurationValue>,
    #[serde(default)]
    factor: Option<u32>,
    #[serde(default)]
    max: Option<DurationValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GatePolicyDoc {
    #[serde(default)]
    timeout: Option<DurationValue>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    backoff: Option<BackoffDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageDoc {
    name: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    availability: Option<AvailabilityDoc>,
    #[serde(default)]
    manual_start: bool,
    #[serde(default)]
    gates: Vec<toml::Value>,
    #[serde(default)]
    entry_policy: Option<PolicyDoc>,
    #[serde(default)]
    approval: Option<toml::Value>,
    #[serde(default)]
    window: Option<toml::Value>,
    #[serde(default)]
    rollout: Option<RolloutDoc>,
    #[serde(default)]
    verification: Vec<toml::Value>,
    #[serde(default)]
    verification_policy: Option<PolicyDoc>,
    #[serde(default)]
    soak: Option<DurationValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalDoc {
    rule: String,
    #[serde(default)]
    expires: Option<DurationValue>,
    #[serde(default)]
    distinct_from_upstream: bool,
    #[serde(default)]
    allow_self_approval: bool,
    #[serde(default)]
    before_gates: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolloutDoc {
    #[serde(default)]
    steps: Option<Vec<StepDoc>>,
    #[serde(default)]
    weights: Option<Vec<i64>>,
    #[serde(default)]
    pause: Option<DurationValue>,
    #[serde(default)]
    analysis: Vec<toml::Value>,
    #[serde(default)]
    analysis_policy: Option<PolicyDoc>,
    #[serde(default = "yes")]
    auto_rollback: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepDoc {
    weight: i64,
    #[serde(default)]
    pause: Option<DurationValue>,
    #[serde(default)]
    analysis: Vec<toml::Value>,
    #[serde(default)]
    analysis_policy: Option<PolicyDoc>,
}

/// Where each part of a stage is, to place the pipeline's own validation errors.
#[derive(Debug, Default)]
struct StageLocs {
    name: String,
    path: Vec<Seg>,
    after: Vec<(String, Vec<Seg>)>,
    rule: Option<Vec<Seg>>,
    rollout: Option<Vec<Seg>>,
    policies: Vec<(PhaseId, Vec<Seg>)>,
    gates: Vec<(PhaseId, String, Vec<Seg>)>,
}

struct Instantiation<'a> {
    loader: &'a Loader,
    doc: Arc<Doc>,
    params: &'a BTreeMap<String, toml::Value>,
    base_dir: &'a Path,
    stages: Vec<StageLocs>,
}

fn phase_path(base: &[Seg], rest: &[&str]) -> Vec<Seg> {
    let mut p = base.to_vec();
    p.extend(rest.iter().map(|k| key(k)));
    p
}

impl Instantiation<'_> {
    /// Substitutes parameters in `value` (at `path`), in place.
    fn substitute(&self, value: &mut toml::Value, path: &mut Vec<Seg>) -> Result<(), ConfigError> {
        match value {
            toml::Value::String(s) => {
                match substitute_str(s, self.params) {
                    Ok(Some(v)) => *value = v,
                    Ok(None) => {}
                    Err(e) => {
                        let kind = if e.unknown {
                            ErrorKind::UnknownParameter
                        } else {
                            ErrorKind::ParameterType
                        };
                        let at = self.doc.locate_in_string(path, s, e.offset);
                        return Err(ConfigError::new(kind, e.message).at(at));
                    }
                }
                Ok(())
            }
            toml::Value::Array(a) => {
                for (i, v) in a.iter_mut().enumerate() {
                    path.push(Seg::Index(i));
                    self.substitute(v, path)?;
                    path.pop();
                }
                Ok(())
            }
            toml::Value::Table(t) => {
                for (k, v) in t.iter_mut() {
                    path.push(key(k));
                    self.substitute(v, path)?;
                    path.pop();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn section(&self, name: &str) -> Result<Option<toml::Value>, ConfigError> {
        let Some(v) = self.doc.root.get(name) else {
            return Ok(None);
        };
        let mut v = v.clone();
        self.substitute(&mut v, &mut vec![key(name)])?;
        Ok(Some(v))
    }

    fn build(
        mut self,
        identity: &PipelineIdentity,
        version: String,
    ) -> Result<Pipeline, ConfigError> {
        let pipeline_doc: PipelineDoc = match self.section("pipeline")? {
            None => PipelineDoc::default(),
            Some(v) => self.doc.deserialize(v, &[key("pipeline")], "pipeline")?,
        };
        let name = pipeline_doc
            .name
            .clone()
            .unwrap_or_else(|| identity.service.clone());
        if let Err(e) = promotion_core::PipelineName::new(name.clone()) {
            return Err(self.doc.error(
                ErrorKind::InvalidValue,
                &[key("pipeline"), key("name")],
                format!("pipeline: `name`: {e}"),
            ));
        }
        let mut builder = Pipeline::builder(name, version);
        for (field, groups) in [
            ("break_glass", &pipeline_doc.break_glass),
            ("operators", &pipeline_doc.operators),
        ] {
            for (i, g) in groups.iter().enumerate() {
                if let Err(e) = Group::new(g.clone()) {
                    return Err(self.doc.error(
                        ErrorKind::InvalidValue,
                        &[key("pipeline"), key(field), Seg::Index(i)],
                        format!("pipeline: `{field}`: {e}"),
                    ));
                }
                builder = if field == "break_glass" {
                    builder.break_glass_group(g.clone())
                } else {
                    builder.operator_group(g.clone())
                };
            }
        }

        let stages = match self.section("stages")? {
            None => Vec::new(),
            Some(toml::Value::Array(a)) => a,
            Some(other) => {
                return Err(self.doc.error(
                    ErrorKind::InvalidValue,
                    &[key("stages")],
                    format!(
                        "`stages` must be a list of stage tables (`[[stages]]`), found {}",
                        crate::params::kind_of(&other)
                    ),
                ))
            }
        };
        // First pass: every stage's definition, enabled or not.
        let mut docs = Vec::new();
        for (i, value) in stages.into_iter().enumerate() {
            let path = vec![key("stages"), Seg::Index(i)];
            let label = match value.get("name").and_then(toml::Value::as_str) {
                Some(n) => format!("stage `{n}`"),
                None => format!("stage #{}", i + 1),
            };
            let doc: StageDoc = self.doc.deserialize(value, &path, &label)?;
            if let Err(e) = StageName::new(doc.name.clone()) {
                return Err(self.doc.error(
                    ErrorKind::InvalidValue,
                    &phase_path(&path, &["name"]),
                    format!("{label}: `name`: {e}"),
                ));
            }
            docs.push((path, doc));
        }
        let mut first_at: BTreeMap<&str, &Vec<Seg>> = BTreeMap::new();
        for (path, doc) in &docs {
            if let Some(first) = first_at.insert(doc.name.as_str(), path) {
                return Err(self
                    .doc
                    .error(
                        ErrorKind::Pipeline,
                        &phase_path(path, &["name"]),
                        format!("stage `{}` is defined twice", doc.name),
                    )
                    .note(format!(
                        "first defined at {}",
                        self.doc.locate(&phase_path(first, &["name"]))
                    )));
            }
        }
        // Disabled stages are bypassed: their downstreams wait for their upstreams instead.
        let disabled: BTreeMap<String, Vec<String>> = docs
            .iter()
            .filter(|(_, d)| !d.enabled)
            .map(|(_, d)| (d.name.clone(), d.after.clone()))
            .collect();
        let mut any = false;
        for (path, doc) in docs {
            if !doc.enabled {
                continue;
            }
            any = true;
            let spec = self.stage(path, doc, &disabled)?;
            builder = builder.stage(spec);
        }
        if !any {
            return Err(self.doc.error(
                ErrorKind::Pipeline,
                &[key("stages")],
                "the template defines no enabled stage; add `[[stages]]` sections".into(),
            ));
        }
        builder.build().map_err(|e| self.pipeline_error(e))
    }

    fn stage(
        &mut self,
        path: Vec<Seg>,
        doc: StageDoc,
        disabled: &BTreeMap<String, Vec<String>>,
    ) -> Result<StageSpec, ConfigError> {
        let name = doc.name.clone();
        let label = format!("stage `{name}`");
        let mut locs = StageLocs {
            name: name.clone(),
            path: path.clone(),
            ..StageLocs::default()
        };
        let mut spec = StageSpec::new(name.clone());
        // Upstreams, with disabled stages replaced by their own upstreams.
        let mut seen = BTreeSet::new();
        for (i, up) in doc.after.iter().enumerate() {
            let at = phase_path(&path, &["after"]);
            let mut at = at;
            at.push(Seg::Index(i));
            let mut stack = vec![up.clone()];
            let mut visited = BTreeSet::new();
            while let Some(u) = stack.pop() {
                if let Some(ups) = disabled.get(&u) {
                    if visited.insert(u.clone()) {
                        stack.extend(ups.iter().rev().cloned());
                    }
                    continue;
                }
                if let Err(e) = StageName::new(u.clone()) {
                    return Err(self.doc.error(
                        ErrorKind::InvalidValue,
                        &at,
                        format!("{label}: `after`: {e}"),
                    ));
                }
                if seen.insert(u.clone()) {
                    spec = spec.after(u.clone());
                    locs.after.push((u, at.clone()));
                }
            }
        }
        if let Some(a) = doc.availability {
            spec = spec.availability(match a {
                AvailabilityDoc::All => Availability::AllUpstreams,
                AvailabilityDoc::Any => Availability::AnyUpstream,
            });
        }
        if doc.manual_start {
            spec = spec.manual_start();
        }
        for (j, g) in doc.gates.into_iter().enumerate() {
            let gpath = {
                let mut p = phase_path(&path, &["gates"]);
                p.push(Seg::Index(j));
                p
            };
            let gate = self.gate(g, &gpath, &name, PhaseId::Entry, None, &mut locs)?;
            spec = spec.entry_gate(gate);
        }
        if let Some(w) = doc.window {
            let wpath = phase_path(&path, &["window"]);
            let gate = self.gate(
                w,
                &wpath,
                &name,
                PhaseId::Entry,
                Some("deployment-window"),
                &mut locs,
            )?;
            spec = spec.entry_gate(gate);
        }
        if let Some(p) = doc.entry_policy {
            spec = spec.entry_policy(p.policy());
            locs.policies
                .push((PhaseId::Entry, phase_path(&path, &["entry_policy"])));
        }
        if let Some(a) = doc.approval {
            let apath = phase_path(&path, &["approval"]);
            let (approval, rule_path) = match a {
                toml::Value::String(rule) => (
                    ApprovalDoc {
                        rule,
                        expires: None,
                        distinct_from_upstream: false,
                        allow_self_approval: false,
                        before_gates: false,
                    },
                    apath.clone(),
                ),
                other => (
                    self.doc
                        .deserialize(other, &apath, &format!("{label}: approval"))?,
                    phase_path(&path, &["approval", "rule"]),
                ),
            };
            let rule = parse_approval_rule(&approval.rule).map_err(|e| {
                let byte = approval
                    .rule
                    .char_indices()
                    .nth(e.offset)
                    .map_or(approval.rule.len(), |(b, _)| b);
                ConfigError::new(
                    ErrorKind::BadApprovalRule,
                    format!("{label}: approval rule `{}`: {}", approval.rule, e.message),
                )
                .at(self.doc.locate_in_string(&rule_path, &approval.rule, byte))
            })?;
            if let Err(u) = rule.check() {
                return Err(self.doc.error(
                    ErrorKind::UnsatisfiableApproval,
                    &rule_path,
                    format!("{label}: approval rule `{rule}` can never be met: {u}"),
                ));
            }
            let mut policy = ApprovalPolicy::new(rule);
            if let Some(e) = approval.expires {
                policy = policy.expires_after(e.0);
            }
            if approval.distinct_from_upstream {
                policy = policy.distinct_from_upstream();
            }
            if approval.allow_self_approval {
                policy = policy.allow_self_approval();
            }
            if approval.before_gates {
                policy = policy.before_gates();
            }
            spec = spec.approval(policy);
            locs.rule = Some(rule_path);
        }
        if let Some(r) = doc.rollout {
            let rpath = phase_path(&path, &["rollout"]);
            spec = spec.rollout(self.rollout(r, &rpath, &name, &label, &mut locs)?);
        }
        for (j, g) in doc.verification.into_iter().enumerate() {
            let mut gpath = phase_path(&path, &["verification"]);
            gpath.push(Seg::Index(j));
            let gate = self.gate(g, &gpath, &name, PhaseId::Verification, None, &mut locs)?;
            spec = spec.verification_gate(gate);
        }
        if let Some(p) = doc.verification_policy {
            spec = spec.verification_policy(p.policy());
            locs.policies.push((
                PhaseId::Verification,
                phase_path(&path, &["verification_policy"]),
            ));
        }
        if let Some(s) = doc.soak {
            spec = spec.soak(s.0);
        }
        self.stages.push(locs);
        Ok(spec)
    }

    fn rollout(
        &mut self,
        r: RolloutDoc,
        rpath: &[Seg],
        stage: &str,
        label: &str,
        locs: &mut StageLocs,
    ) -> Result<RolloutPlan, ConfigError> {
        locs.rollout = Some(rpath.to_vec());
        let weight = |this: &Self, w: i64, at: Vec<Seg>| -> Result<u8, ConfigError> {
            u8::try_from(w)
                .ok()
                .filter(|w| (1..=100).contains(w))
                .ok_or_else(|| {
                    this.doc.error(
                        ErrorKind::InvalidValue,
                        &at,
                        format!("{label}: rollout weight {w}: expected a percentage from 1 to 100"),
                    )
                })
        };
        // Gates shared by every step: built once per step index, since each step is its
        // own phase.
        let shared = r.analysis;
        let shared_policy = r.analysis_policy;
        let mut steps = Vec::new();
        match (r.steps, r.weights) {
            (Some(_), Some(_)) => {
                return Err(self.doc.error_at_key(
                    ErrorKind::InvalidValue,
                    &phase_path(rpath, &["weights"]),
                    format!("{label}: rollout: give either `steps` or `weights`, not both"),
                ))
            }
            (None, None) => {
                return Err(self.doc.error(
                    ErrorKind::MissingField,
                    rpath,
                    format!(
                    "{label}: rollout: expected `steps = [{{ weight = 5, pause = \"10m\" }}, …]` \
                         or `weights = [5, 25, 100]`"
                ),
                ))
            }
            (Some(list), None) => {
                for (k, s) in list.into_iter().enumerate() {
                    let mut spath = phase_path(rpath, &["steps"]);
                    spath.push(Seg::Index(k));
                    let w = weight(self, s.weight, phase_path(&spath, &["weight"]))?;
                    let phase = PhaseId::Analysis { step: k as u32 };
                    let mut step = RolloutStep::new(w);
                    if let Some(p) = s.pause.or(r.pause) {
                        step = step.pause(p.0);
                    }
                    for (j, g) in shared.iter().enumerate() {
                        let mut gpath = phase_path(rpath, &["analysis"]);
                        gpath.push(Seg::Index(j));
                        step = step.analysis(self.gate(
                            g.clone(),
                            &gpath,
                            stage,
                            phase,
                            None,
                            locs,
                        )?);
                    }
                    for (j, g) in s.analysis.into_iter().enumerate() {
                        let mut gpath = phase_path(&spath, &["analysis"]);
                        gpath.push(Seg::Index(j));
                        step = step.analysis(self.gate(g, &gpath, stage, phase, None, locs)?);
                    }
                    if let Some(p) = s.analysis_policy {
                        step = step.analysis_policy(p.policy());
                        locs.policies
                            .push((phase, phase_path(&spath, &["analysis_policy"])));
                    } else if let Some(p) = shared_policy {
                        step = step.analysis_policy(p.policy());
                        locs.policies
                            .push((phase, phase_path(rpath, &["analysis_policy"])));
                    }
                    steps.push(step);
                }
            }
            (None, Some(weights)) => {
                for (k, w) in weights.into_iter().enumerate() {
                    let mut wpath = phase_path(rpath, &["weights"]);
                    wpath.push(Seg::Index(k));
                    let w = weight(self, w, wpath)?;
                    let phase = PhaseId::Analysis { step: k as u32 };
                    let mut step = RolloutStep::new(w);
                    if let Some(p) = r.pause {
                        step = step.pause(p.0);
                    }
                    for (j, g) in shared.iter().enumerate() {
                        let mut gpath = phase_path(rpath, &["analysis"]);
                        gpath.push(Seg::Index(j));
                        step = step.analysis(self.gate(
                            g.clone(),
                            &gpath,
                            stage,
                            phase,
                            None,
                            locs,
                        )?);
                    }
                    if let Some(p) = shared_policy {
                        step = step.analysis_policy(p.policy());
                        locs.policies
                            .push((phase, phase_path(rpath, &["analysis_policy"])));
                    }
                    steps.push(step);
                }
            }
        }
        let plan = RolloutPlan::new(steps);
        Ok(if r.auto_rollback {
            plan
        } else {
            plan.manual_rollback()
        })
    }

    /// Builds one gate from its table at `path`.
    fn gate(
        &self,
        value: toml::Value,
        path: &[Seg],
        stage: &str,
        phase: PhaseId,
        implied_kind: Option<&str>,
        locs: &mut StageLocs,
    ) -> Result<GateSpec, ConfigError> {
        let kinds = self.loader.registry.kinds().join(", ");
        let toml::Value::Table(mut table) = value else {
            return Err(self.doc.error(
                ErrorKind::InvalidValue,
                path,
                format!(
                    "stage `{stage}`: `{}`: expected a gate table with a `kind` ({kinds}), found {}",
                    show_path(path),
                    crate::params::kind_of(&value)
                ),
            ));
        };
        let at = |k: &str| phase_path(path, &[k]);
        let kind = match (table.remove("kind"), implied_kind) {
            (Some(toml::Value::String(k)), _) => k,
            (None, Some(k)) => k.to_owned(),
            (Some(other), _) => {
                return Err(self.doc.error(
                    ErrorKind::InvalidValue,
                    &at("kind"),
                    format!(
                        "stage `{stage}`: gate `kind`: expected a string ({kinds}), found {}",
                        crate::params::kind_of(&other)
                    ),
                ))
            }
            (None, None) => {
                return Err(self.doc.error(
                    ErrorKind::MissingField,
                    path,
                    format!("stage `{stage}`: a gate needs a `kind`; known kinds: {kinds}"),
                ))
            }
        };
        if self.loader.registry.get(&kind).is_none() {
            return Err(self.doc.error(
                ErrorKind::UnknownGateKind,
                &at("kind"),
                format!("stage `{stage}`: unknown gate kind `{kind}`; known kinds: {kinds}"),
            ));
        }
        let name = match table.remove("name") {
            None => None,
            Some(toml::Value::String(n)) => {
                if let Err(e) = GateName::new(n.clone()) {
                    return Err(self.doc.error(
                        ErrorKind::InvalidValue,
                        &at("name"),
                        format!("stage `{stage}`: gate `name`: {e}"),
                    ));
                }
                Some(n)
            }
            Some(other) => {
                return Err(self.doc.error(
                    ErrorKind::InvalidValue,
                    &at("name"),
                    format!(
                        "stage `{stage}`: gate `name`: expected a string, found {}",
                        crate::params::kind_of(&other)
                    ),
                ))
            }
        };
        let shown = name.clone().unwrap_or_else(|| kind.clone());
        let label = format!("stage `{stage}`, gate `{shown}` ({kind})");
        let policy: Option<GatePolicyDoc> = match table.remove("policy") {
            None => None,
            Some(v) => Some(self.doc.deserialize(v, &at("policy"), &label)?),
        };
        let dry_run = match table.remove("dry_run") {
            None => false,
            Some(toml::Value::Boolean(b)) => b,
            Some(other) => {
                return Err(self.doc.error(
                    ErrorKind::InvalidValue,
                    &at("dry_run"),
                    format!(
                        "{label}: `dry_run`: expected true or false, found {}",
                        crate::params::kind_of(&other)
                    ),
                ))
            }
        };
        let settings = Settings::new(table, self.doc.clone(), path.to_vec(), label);
        let ctx = BuildContext::new(self.base_dir, stage, phase)
            .with_name(name.clone())
            .with_secrets(self.loader.secrets.clone())
            .with_env(self.loader.env.clone());
        let mut gate = self.loader.registry.construct(&kind, &settings, &ctx)?;
        if dry_run {
            gate = Arc::new(gate.dry_run());
        }
        let gate_name = name.clone().unwrap_or_else(|| gate.name().to_owned());
        if let Some(d) = &self.loader.decorate {
            let info = GateInfo {
                stage: stage.to_owned(),
                phase,
                name: gate_name.clone(),
                kind: kind.clone(),
            };
            gate = d(&info, gate);
        }
        let mut spec = GateSpec::new(gate).named(gate_name.clone());
        if let Some(p) = policy {
            if let Some(t) = p.timeout {
                spec = spec.timeout(t.0);
            }
            let d = Backoff::default();
            let backoff = match p.backoff {
                None => d,
                Some(b) => Backoff {
                    initial: b.initial.map_or(d.initial, |v| v.0),
                    factor: b.factor.unwrap_or(d.factor),
                    max: b.max.map_or(d.max, |v| v.0),
                },
            };
            let GatePolicy { retries, .. } = spec.policy;
            spec = spec.retries(p.retries.unwrap_or(retries), backoff);
        }
        locs.gates.push((phase, gate_name, path.to_vec()));
        Ok(spec)
    }

    fn locs(&self, stage: &str) -> Option<&StageLocs> {
        self.stages.iter().find(|s| s.name == stage)
    }

    /// Places a validation error of the core pipeline builder in the file.
    fn pipeline_error(&self, e: PipelineError) -> ConfigError {
        let message = e.to_string();
        let stage_path = |s: &str| self.locs(s).map(|l| phase_path(&l.path, &["name"]));
        let (kind, path, notes): (ErrorKind, Option<Vec<Seg>>, Vec<String>) = match &e {
            PipelineError::UnknownUpstream { stage, upstream }
            | PipelineError::BadUpstream { stage, upstream } => {
                let p = self.locs(stage).and_then(|l| {
                    l.after
                        .iter()
                        .find(|(u, _)| u == upstream)
                        .map(|(_, p)| p.clone())
                });
                let known: Vec<&str> = self.stages.iter().map(|s| s.name.as_str()).collect();
                (
                    ErrorKind::Pipeline,
                    p.or_else(|| stage_path(stage)),
                    vec![format!("stages: {}", known.join(", "))],
                )
            }
            PipelineError::Cycle(names) => {
                let first = names.first().map(String::as_str).unwrap_or("");
                let p = self.locs(first).map(|l| phase_path(&l.path, &["after"]));
                let notes = names
                    .iter()
                    .take(names.len().saturating_sub(1))
                    .filter_map(|n| {
                        let l = self.locs(n)?;
                        Some(format!(
                            "stage `{n}` lists its upstreams at {}",
                            self.doc.locate(&phase_path(&l.path, &["after"]))
                        ))
                    })
                    .collect();
                (ErrorKind::Cycle, p, notes)
            }
            PipelineError::DuplicateStage(s) => (ErrorKind::Pipeline, stage_path(s), Vec::new()),
            PipelineError::DuplicateGate { stage, phase, gate } => {
                let p = self.locs(stage).and_then(|l| {
                    l.gates
                        .iter()
                        .filter(|(ph, g, _)| &ph.to_string() == phase && g == gate)
                        .nth(1)
                        .map(|(_, _, p)| p.clone())
                });
                (
                    ErrorKind::Pipeline,
                    p.or_else(|| stage_path(stage)),
                    Vec::new(),
                )
            }
            PipelineError::UnsatisfiableApproval { stage, .. } => (
                ErrorKind::UnsatisfiableApproval,
                self.locs(stage)
                    .and_then(|l| l.rule.clone())
                    .or_else(|| stage_path(stage)),
                Vec::new(),
            ),
            PipelineError::BadRollout { stage, .. } => (
                ErrorKind::Pipeline,
                self.locs(stage)
                    .and_then(|l| l.rollout.clone())
                    .or_else(|| stage_path(stage)),
                Vec::new(),
            ),
            PipelineError::BadPolicy { stage, phase, .. } => (
                ErrorKind::Pipeline,
                self.locs(stage)
                    .and_then(|l| {
                        l.policies
                            .iter()
                            .find(|(ph, _)| &ph.to_string() == phase)
                            .map(|(_, p)| p.clone())
                    })
                    .or_else(|| stage_path(stage)),
                Vec::new(),
            ),
            _ => (ErrorKind::Pipeline, Some(vec![key("stages")]), Vec::new()),
        };
        let mut err = ConfigError::new(kind, message).at(self
            .doc
            .locate(&path.unwrap_or_else(|| vec![key("stages")])));
        for n in notes {
            err = err.note(n);
        }
        err
    }
}
