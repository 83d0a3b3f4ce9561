//! Building the pipeline from the template's sections: parameter substitution, the
//! `[pipeline]` table, and each enabled stage with its upstreams, gates, approval and phases.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use promotion_core::{
    ActionKind, ApprovalPolicy, Availability, Group, PhaseId, Pipeline, StageName, StageSpec,
    VerificationKind,
};

use super::locate::{phase_path, StageLocs};
use super::sections::{ApprovalDoc, AvailabilityDoc, PipelineDoc, StageDoc};
use super::Loader;
use crate::error::{ConfigError, ErrorKind};
use crate::expr::parse_approval_rule;
use crate::identity::PipelineIdentity;
use crate::params::substitute_str;
use crate::source::{key, Doc, Seg};

/// A template being built into a pipeline: the substituted sections and where each stage's
/// parts are.
pub(super) struct Instantiation<'a> {
    pub(super) loader: &'a Loader,
    pub(super) doc: Arc<Doc>,
    pub(super) params: &'a BTreeMap<String, toml::Value>,
    pub(super) base_dir: &'a Path,
    pub(super) stages: Vec<StageLocs>,
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

    pub(super) fn build(
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

        if pipeline_doc.allow_self_override {
            builder = builder.allow_self_override();
        }
        if let Some(bytes) = pipeline_doc.max_text_len {
            builder = builder.max_text_len(bytes);
        }
        if pipeline_doc.require_verified {
            builder = builder.require_verified();
        }
        let pipeline_path = [key("pipeline")];
        for (action, kinds) in self.accept_rules(&pipeline_path, &pipeline_doc.accept, true)? {
            builder = builder.accept(action, kinds);
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
        for (action, kinds) in self.accept_rules(&path, &doc.accept, false)? {
            spec = spec.accept(action, kinds);
        }
        self.stages.push(locs);
        Ok(spec)
    }

    /// The `accept` table under `at` (`[pipeline]` or a stage), refused with its location when
    /// a rule accepts nothing or a stage names `register`.
    fn accept_rules(
        &self,
        at: &[Seg],
        rules: &BTreeMap<ActionKind, Vec<VerificationKind>>,
        pipeline_wide: bool,
    ) -> Result<Vec<(ActionKind, Vec<VerificationKind>)>, ConfigError> {
        let mut out = Vec::new();
        for (action, kinds) in rules {
            let problem = if kinds.is_empty() {
                "accepts no verification, so nobody could do it; list some of `roster`, \
                 `ssh_signature`, `oidc`"
            } else if *action == ActionKind::Register && !pipeline_wide {
                "is pipeline-wide (a release is registered before any stage); put it in \
                 `[pipeline.accept]`"
            } else {
                out.push((*action, kinds.clone()));
                continue;
            };
            let path = phase_path(at, &["accept", action.as_str()]);
            return Err(self.doc.error(
                ErrorKind::InvalidValue,
                &path,
                format!("`accept.{action}` {problem}"),
            ));
        }
        Ok(out)
    }
}
