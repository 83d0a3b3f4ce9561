//! Instantiating a template for a service: parameters, substitution, gates from the registry,
//! approval rules, rollouts, policies, and the pipeline's validation mapped back to the file.

mod build;
mod find;
mod gate;
mod locate;
mod param_values;
mod rollout;
mod sections;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use promotion_core::layer::GateLayer;
use promotion_core::{Gate, PhaseId, Pipeline};
use promotion_gates::process::{EnvSecrets, SecretSource};

use crate::error::{ConfigError, ErrorKind};
use crate::identity::PipelineIdentity;
use crate::registry::{EnvLookup, GateRegistry};
use crate::service::{base_dir_of, Service};
use crate::source::{key, Doc, SourceFile};
use crate::template::Template;

use build::Instantiation;
use param_values::resolve_params;

/// One of the loader's layers, given where the gate goes: what [`Loader::layer`] and
/// [`Loader::layer_for`] keep, with the layer's own gate type erased.
type LayerFor = dyn Fn(&GateInfo, Arc<dyn Gate>) -> Arc<dyn Gate> + Send + Sync;

/// Where a gate the loader builds goes: what [`Loader::layer_for`] chooses a layer by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateInfo {
    /// The name of the stage the gate belongs to.
    pub stage: String,
    /// The phase it runs in: entry, a rollout step's analysis, or verification.
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
    /// The template the pipeline was built from, as parsed.
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
    /// Applied in order to every gate built: later layers wrap earlier ones.
    layers: Vec<Arc<LayerFor>>,
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
            layers: Vec::new(),
        }
    }

    /// The registry, to add kinds.
    pub fn registry_mut(&mut self) -> &mut GateRegistry {
        &mut self.registry
    }

    /// The gate kinds this loader builds.
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

    /// Wraps every gate built with `layer` (a progress display, metrics, a
    /// [`DryRunLayer`](promotion_core::layer::DryRunLayer) for a whole pipeline).
    ///
    /// Layers apply in the order they are added, each around the ones before it, and all of
    /// them around a gate's own `dry_run = true`. The engine applies the gate's `policy`
    /// (timeout, retries) outside them all.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use promotion_config::Loader;
    /// use promotion_core::layer::{layer_fn, DryRunLayer};
    /// use promotion_core::Gate;
    ///
    /// // Try a whole pipeline on live traffic: every gate is evaluated but none blocks.
    /// let loader = Loader::new().layer(DryRunLayer);
    /// // A wrapper with a constructor is a layer too.
    /// let loader = loader.layer(layer_fn(|gate: Arc<dyn Gate>| gate));
    /// # let _ = loader;
    /// ```
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: GateLayer<Arc<dyn Gate>> + Send + Sync + 'static,
        L::Wrapped: 'static,
    {
        self.layers
            .push(Arc::new(move |_: &GateInfo, gate: Arc<dyn Gate>| {
                Arc::new(layer.layer(gate)) as Arc<dyn Gate>
            }));
        self
    }

    /// Wraps each gate built with the layer `choose` picks for it, knowing where the gate
    /// goes ([`GateInfo`]: stage, phase, name, kind); `None` leaves the gate as it is.
    /// Ordered with [`layer`](Self::layer)'s layers as they are added.
    ///
    /// ```
    /// use promotion_config::Loader;
    /// use promotion_core::layer::DryRunLayer;
    ///
    /// // Only production's metric gates run dry.
    /// let loader = Loader::new().layer_for(|info| {
    ///     (info.stage == "production" && info.kind == "metric").then_some(DryRunLayer)
    /// });
    /// # let _ = loader;
    /// ```
    pub fn layer_for<F, L>(mut self, choose: F) -> Self
    where
        F: Fn(&GateInfo) -> Option<L> + Send + Sync + 'static,
        L: GateLayer<Arc<dyn Gate>>,
        L::Wrapped: 'static,
    {
        self.layers.push(Arc::new(
            move |info: &GateInfo, gate: Arc<dyn Gate>| match choose(info) {
                Some(layer) => Arc::new(layer.layer(gate)) as Arc<dyn Gate>,
                None => gate,
            },
        ));
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
