//! One gate table: its common keys (`kind`, `name`, `policy`, `dry_run`), its settings
//! handed to the registry's constructor, and the loader's layers around the gate built.

use std::sync::Arc;

use promotion_core::layer::{DryRunLayer, GateLayer};
use promotion_core::{Backoff, GateName, GatePolicy, GateSpec, PhaseId};

use super::build::Instantiation;
use super::locate::{phase_path, StageLocs};
use super::sections::GatePolicyDoc;
use super::GateInfo;
use crate::error::{ConfigError, ErrorKind};
use crate::registry::{BuildContext, Settings};
use crate::source::{show_path, Seg};

impl Instantiation<'_> {
    /// Builds one gate from its table at `path`.
    pub(super) fn gate(
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
            gate = Arc::new(DryRunLayer.layer(gate));
        }
        let gate_name = name.clone().unwrap_or_else(|| gate.name().to_owned());
        if !self.loader.layers.is_empty() {
            let info = GateInfo {
                stage: stage.to_owned(),
                phase,
                name: gate_name.clone(),
                kind: kind.clone(),
            };
            for layer in &self.loader.layers {
                gate = layer(&info, gate);
            }
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
}
