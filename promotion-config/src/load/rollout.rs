//! A stage's `rollout`: its steps (`steps = [...]` or `weights = [...]`), each its own
//! analysis phase with the shared and its own gates and policy.

use promotion_core::{PhaseId, RolloutPlan, RolloutStep};

use super::build::Instantiation;
use super::locate::{phase_path, StageLocs};
use super::sections::{RolloutDoc, StepDoc};
use crate::error::{ConfigError, ErrorKind};
use crate::source::Seg;

impl Instantiation<'_> {
    pub(super) fn rollout(
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
        // Each step as written, where it is, and where its weight is: a bare weight of
        // `weights` is a step with no settings of its own.
        let written: Vec<(StepDoc, Vec<Seg>, Vec<Seg>)> = match (r.steps, r.weights) {
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
            (Some(list), None) => list
                .into_iter()
                .enumerate()
                .map(|(k, s)| {
                    let mut spath = phase_path(rpath, &["steps"]);
                    spath.push(Seg::Index(k));
                    let wpath = phase_path(&spath, &["weight"]);
                    (s, spath, wpath)
                })
                .collect(),
            (None, Some(weights)) => weights
                .into_iter()
                .enumerate()
                .map(|(k, weight)| {
                    let mut wpath = phase_path(rpath, &["weights"]);
                    wpath.push(Seg::Index(k));
                    let step = StepDoc {
                        weight,
                        pause: None,
                        analysis: Vec::new(),
                        analysis_policy: None,
                    };
                    (step, wpath.clone(), wpath)
                })
                .collect(),
        };
        let mut steps = Vec::new();
        for (k, (s, spath, wpath)) in written.into_iter().enumerate() {
            let w = weight(self, s.weight, wpath)?;
            let phase = PhaseId::Analysis { step: k as u32 };
            let mut step = RolloutStep::new(w);
            if let Some(p) = s.pause.or(r.pause) {
                step = step.pause(p.0);
            }
            for (j, g) in shared.iter().enumerate() {
                let mut gpath = phase_path(rpath, &["analysis"]);
                gpath.push(Seg::Index(j));
                step = step.analysis(self.gate(g.clone(), &gpath, stage, phase, None, locs)?);
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
        let plan = RolloutPlan::new(steps);
        Ok(if r.auto_rollback {
            plan
        } else {
            plan.manual_rollback()
        })
    }
}
