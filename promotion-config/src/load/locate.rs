//! Where each part of a stage is in the template, so that the core pipeline builder's
//! validation errors point at the file, line and column that caused them.

use promotion_core::{PhaseId, PipelineError};

use super::build::Instantiation;
use crate::error::{ConfigError, ErrorKind};
use crate::source::{key, Seg};

/// Where each part of a stage is, to place the pipeline's own validation errors.
#[derive(Debug, Default)]
pub(super) struct StageLocs {
    pub(super) name: String,
    pub(super) path: Vec<Seg>,
    pub(super) after: Vec<(String, Vec<Seg>)>,
    pub(super) rule: Option<Vec<Seg>>,
    pub(super) rollout: Option<Vec<Seg>>,
    pub(super) policies: Vec<(PhaseId, Vec<Seg>)>,
    pub(super) gates: Vec<(PhaseId, String, Vec<Seg>)>,
}

/// `base` followed by the keys `rest`.
pub(super) fn phase_path(base: &[Seg], rest: &[&str]) -> Vec<Seg> {
    let mut p = base.to_vec();
    p.extend(rest.iter().map(|k| key(k)));
    p
}

impl Instantiation<'_> {
    fn locs(&self, stage: &str) -> Option<&StageLocs> {
        self.stages.iter().find(|s| s.name == stage)
    }

    /// Places a validation error of the core pipeline builder in the file.
    pub(super) fn pipeline_error(&self, e: PipelineError) -> ConfigError {
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
