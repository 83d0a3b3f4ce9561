//! What-if: replays the recorded history of a pipeline under another definition (a new
//! template version) and reports which past promotions it would have blocked, and why.
//!
//! Pure: it reads events and a pipeline, runs no gate and touches no store.
//!
//! For every release of the pipeline (by name) and every stage the release entered:
//!
//! - **gates** of the new definition are judged by the outcome recorded for a gate of the
//!   same stage, phase and name: passed, overridden or judged as a pass is a pass; anything
//!   else blocks. A gate without recorded evidence is reported as *no recorded evidence:
//!   would have been evaluated*, never as a pass. Only phases the release reached are judged
//!   (entry; each rollout step by its index; verification). Recorded gates the new definition
//!   no longer has are noted;
//! - **approvals** are re-evaluated with core's rules ([`approvals_under`]): the recorded
//!   approvals, as if given under the new version (bound to the same release and evidence, not
//!   expired when the stage was scheduled, distinct from upstream approvers when required),
//!   minus self-approvals the new policy forbids, must satisfy the new rule with the facts
//!   the entry gates recorded;
//! - **upstreams**: a stage whose new upstreams had not promoted the release is blocked.
//!
//! Soak times, pauses and phase policies are not judged: they change when a promotion
//! happens, not whether.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use promotion_core::machine::approvals_under;
use promotion_core::{
    Availability, Event, EventBody, Outcome, PhaseId, Pipeline, ReleaseId, ReleaseState, Stage,
    StageStatus,
};
use serde::Serialize;

/// What would have happened to one stage of one release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhatIfVerdict {
    /// Everything the new definition asks for is in the record.
    Allowed,
    /// Something the new definition asks for is missing or failed in the record.
    Blocked,
    /// Nothing recorded blocks, but a new gate or stage has no recorded evidence.
    Unknown,
    /// The new definition has no such stage.
    NotInTemplate,
}

/// One reason behind a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Finding {
    /// A gate of the new definition whose recorded outcome is not a pass.
    GateBlocks {
        /// Its phase (`entry`, `analysis:0`, `verification`).
        phase: String,
        /// The gate's name in that phase.
        gate: String,
        /// The recorded outcome.
        recorded: String,
    },
    /// A gate new in the definition: no recorded evidence, it would have been evaluated.
    NoEvidence {
        /// Its phase (`entry`, `analysis:0`, `verification`).
        phase: String,
        /// The gate's name in that phase.
        gate: String,
    },
    /// A recorded gate the new definition no longer has.
    GateRemoved {
        /// The phase it was recorded in.
        phase: String,
        /// The gate's name in that phase.
        gate: String,
        /// Its recorded outcome.
        recorded: String,
    },
    /// The recorded approvals do not satisfy the new rule.
    ApprovalBlocks {
        /// The new rule.
        rule: String,
        /// The recorded approvers that would count, with their groups.
        counted: Vec<String>,
    },
    /// A new upstream had not promoted the release.
    UpstreamBlocks {
        /// The name of the upstream stage in the new definition.
        upstream: String,
        /// Its recorded status.
        status: String,
    },
    /// A stage the release entered that the new definition does not have.
    StageRemoved,
    /// A stage of the new definition the release never entered, although its upstreams
    /// promoted it: no recorded evidence, it would have been evaluated.
    StageNew,
}

impl Finding {
    /// Whether this finding blocks the promotion.
    pub fn blocks(&self) -> bool {
        matches!(
            self,
            Finding::GateBlocks { .. }
                | Finding::ApprovalBlocks { .. }
                | Finding::UpstreamBlocks { .. }
        )
    }
    /// Whether it leaves the outcome open (nothing recorded to judge by).
    pub fn is_unknown(&self) -> bool {
        matches!(self, Finding::NoEvidence { .. } | Finding::StageNew)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::GateBlocks {
                phase,
                gate,
                recorded,
            } => write!(f, "blocked by gate `{gate}` ({phase}): recorded {recorded}"),
            Finding::NoEvidence { phase, gate } => write!(
                f,
                "gate `{gate}` ({phase}): no recorded evidence: would have been evaluated"
            ),
            Finding::GateRemoved {
                phase,
                gate,
                recorded,
            } => write!(f, "gate `{gate}` ({phase}) removed (recorded {recorded})"),
            Finding::ApprovalBlocks { rule, counted } => {
                let who = if counted.is_empty() {
                    "none".to_owned()
                } else {
                    counted.join(", ")
                };
                write!(
                    f,
                    "blocked by approval rule {rule}: recorded approvals that count: {who}"
                )
            }
            Finding::UpstreamBlocks { upstream, status } => write!(
                f,
                "blocked: upstream `{upstream}` had not promoted the release (recorded {status})"
            ),
            Finding::StageRemoved => f.write_str("stage not in the new definition"),
            Finding::StageNew => {
                f.write_str("new stage: no recorded evidence: would have been evaluated")
            }
        }
    }
}

/// One stage of one release under the new definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageWhatIf {
    /// The stage's name, in the new definition or, for a removed stage, in the record.
    pub stage: String,
    /// Its recorded status (`promoted`, `failed`, …); `waiting` for a stage never entered.
    pub recorded: String,
    /// What the new definition would have said.
    pub verdict: WhatIfVerdict,
    /// The reasons behind the verdict; a removed gate is noted without blocking, so an
    /// `Allowed` stage may have findings too. Empty when the record meets the new definition
    /// with nothing to note.
    pub findings: Vec<Finding>,
}

impl StageWhatIf {
    /// A recorded promotion the new definition would have blocked.
    pub fn promotion_blocked(&self) -> bool {
        self.recorded == "promoted" && self.verdict == WhatIfVerdict::Blocked
    }
}

/// One release under the new definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseWhatIf {
    /// The release's id.
    pub release: ReleaseId,
    /// Its name as registered from its manifest.
    pub name: String,
    /// The pipeline version in force at the end of its record.
    pub recorded_version: String,
    /// Its stages, in the new definition's order, then removed ones.
    pub stages: Vec<StageWhatIf>,
}

/// The replay of a pipeline's history under a new definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WhatIfReport {
    /// The pipeline's name.
    pub pipeline: String,
    /// The new definition's version.
    pub version: String,
    /// Every release of the pipeline found, oldest registration first.
    pub releases: Vec<ReleaseWhatIf>,
}

impl WhatIfReport {
    /// Recorded promotions the new definition would have blocked.
    pub fn blocked_promotions(&self) -> usize {
        self.stages().filter(|s| s.promotion_blocked()).count()
    }
    /// Recorded promotions the new definition would have had to evaluate afresh.
    pub fn unknown_promotions(&self) -> usize {
        self.stages()
            .filter(|s| s.recorded == "promoted" && s.verdict == WhatIfVerdict::Unknown)
            .count()
    }
    /// Recorded promotions examined.
    pub fn promotions(&self) -> usize {
        self.stages().filter(|s| s.recorded == "promoted").count()
    }
    fn stages(&self) -> impl Iterator<Item = &StageWhatIf> {
        self.releases.iter().flat_map(|r| r.stages.iter())
    }
}

/// The latest recorded result of one gate.
#[derive(Debug, Clone)]
struct Recorded {
    outcome: Outcome,
    overridden: bool,
    judged: Option<bool>,
}

impl Recorded {
    fn satisfied(&self) -> bool {
        self.outcome == Outcome::Pass || self.overridden || self.judged == Some(true)
    }
    fn label(&self) -> String {
        if self.overridden {
            format!("{} (overridden)", self.outcome)
        } else if let Some(j) = self.judged {
            format!(
                "{} (judged {})",
                self.outcome,
                if j { "pass" } else { "fail" }
            )
        } else {
            self.outcome.to_string()
        }
    }
}

/// What the record says about one stage, beyond its state.
#[derive(Debug, Default)]
struct StageRecord {
    gates: BTreeMap<(PhaseId, String), Recorded>,
    reached: Vec<PhaseId>,
    approval_reached: bool,
    scheduled_at: Option<DateTime<Utc>>,
}

fn phase_label(p: PhaseId) -> String {
    match p {
        PhaseId::Entry => "entry".into(),
        PhaseId::Analysis { step } => format!("analysis:{step}"),
        PhaseId::Verification => "verification".into(),
    }
}

fn collect(events: &[Event]) -> BTreeMap<String, StageRecord> {
    let mut out: BTreeMap<String, StageRecord> = BTreeMap::new();
    for e in events {
        let Some(stage) = e.body.stage() else {
            continue;
        };
        let rec = out.entry(stage.to_string()).or_default();
        let mut reach = |p: PhaseId| {
            if !rec.reached.contains(&p) {
                rec.reached.push(p);
            }
        };
        match &e.body {
            EventBody::StageStarted { .. } => reach(PhaseId::Entry),
            EventBody::StepDeployed { step, .. } => reach(PhaseId::Analysis { step: *step }),
            EventBody::VerificationStarted { .. } => reach(PhaseId::Verification),
            EventBody::GateEvaluated {
                phase,
                gate,
                outcome,
                ..
            } => {
                reach(*phase);
                rec.gates.insert(
                    (*phase, gate.to_string()),
                    Recorded {
                        outcome: outcome.clone(),
                        overridden: false,
                        judged: None,
                    },
                );
            }
            EventBody::GateOverridden { phase, gate, .. } => {
                if let Some(r) = rec.gates.get_mut(&(*phase, gate.to_string())) {
                    r.overridden = true;
                }
            }
            EventBody::GateJudged {
                phase, gate, pass, ..
            } => {
                if let Some(r) = rec.gates.get_mut(&(*phase, gate.to_string())) {
                    r.judged = Some(*pass);
                }
            }
            EventBody::ApprovalRequested { .. } => rec.approval_reached = true,
            EventBody::StageScheduled { .. } => {
                rec.approval_reached = true;
                rec.scheduled_at = Some(e.at);
            }
            _ => {}
        }
    }
    out
}

/// Replays `streams` (each the events of one release, in order) under `pipeline`.
///
/// Releases registered in another pipeline (by name) are skipped.
pub fn what_if<'a>(
    streams: impl IntoIterator<Item = &'a [Event]>,
    pipeline: &Pipeline,
) -> WhatIfReport {
    let mut releases = Vec::new();
    for events in streams {
        let state = ReleaseState::replay(events);
        let (Some(release), Some(name)) = (state.release(), state.pipeline()) else {
            continue;
        };
        if name != pipeline.name() {
            continue;
        }
        let registered = events.first().map(|e| e.at);
        let last = events.last().map_or_else(Utc::now, |e| e.at);
        let records = collect(events);
        let mut stages = Vec::new();
        for spec in pipeline.stages() {
            let st = state.stage(spec.name.as_str());
            let rec = records.get(spec.name.as_str());
            let entered = st.started_at().is_some();
            if !entered {
                // A stage the record never mentions, whose upstreams promoted the release:
                // the new definition adds it.
                if rec.is_none() && upstream_ok(spec, &state) {
                    stages.push(StageWhatIf {
                        stage: spec.name.to_string(),
                        recorded: st.status().label().to_owned(),
                        verdict: WhatIfVerdict::Unknown,
                        findings: vec![Finding::StageNew],
                    });
                }
                continue;
            }
            let empty = StageRecord::default();
            let rec = rec.unwrap_or(&empty);
            let findings = judge_stage(pipeline, spec, &state, rec, last);
            let verdict = if findings.iter().any(Finding::blocks) {
                WhatIfVerdict::Blocked
            } else if findings.iter().any(Finding::is_unknown) {
                WhatIfVerdict::Unknown
            } else {
                WhatIfVerdict::Allowed
            };
            stages.push(StageWhatIf {
                stage: spec.name.to_string(),
                recorded: st.status().label().to_owned(),
                verdict,
                findings,
            });
        }
        for (name, st) in state.stages() {
            if pipeline.stage(name.as_str()).is_none() && st.started_at().is_some() {
                stages.push(StageWhatIf {
                    stage: name.to_string(),
                    recorded: st.status().label().to_owned(),
                    verdict: WhatIfVerdict::NotInTemplate,
                    findings: vec![Finding::StageRemoved],
                });
            }
        }
        releases.push((
            registered,
            ReleaseWhatIf {
                release: release.id(),
                name: release.name().to_owned(),
                recorded_version: state.pipeline_version().to_owned(),
                stages,
            },
        ));
    }
    releases.sort_by_key(|r| r.0);
    WhatIfReport {
        pipeline: pipeline.name().to_string(),
        version: pipeline.version().to_owned(),
        releases: releases.into_iter().map(|(_, r)| r).collect(),
    }
}

fn upstream_ok(spec: &Stage, state: &ReleaseState) -> bool {
    let promoted =
        |u: &promotion_core::StageName| state.status(u.as_str()) == StageStatus::Promoted;
    match spec.spec.availability {
        Availability::AllUpstreams => spec.upstream.iter().all(promoted),
        Availability::AnyUpstream => spec.upstream.is_empty() || spec.upstream.iter().any(promoted),
    }
}

fn judge_stage(
    pipeline: &Pipeline,
    spec: &Stage,
    state: &ReleaseState,
    rec: &StageRecord,
    last: DateTime<Utc>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if !upstream_ok(spec, state) {
        for u in &spec.upstream {
            let s = state.status(u.as_str());
            if s != StageStatus::Promoted {
                findings.push(Finding::UpstreamBlocks {
                    upstream: u.to_string(),
                    status: s.label().to_owned(),
                });
            }
        }
    }
    let mut phases: Vec<PhaseId> = vec![PhaseId::Entry];
    phases.extend((0..spec.steps().len()).map(|k| PhaseId::Analysis { step: k as u32 }));
    phases.push(PhaseId::Verification);
    for phase in phases {
        if !rec.reached.contains(&phase) {
            continue;
        }
        for gate in spec.gate_names(phase) {
            match rec.gates.get(&(phase, gate.to_string())) {
                None => findings.push(Finding::NoEvidence {
                    phase: phase_label(phase),
                    gate: gate.to_string(),
                }),
                Some(r) if !r.satisfied() => findings.push(Finding::GateBlocks {
                    phase: phase_label(phase),
                    gate: gate.to_string(),
                    recorded: r.label(),
                }),
                Some(_) => {}
            }
        }
    }
    for ((phase, gate), r) in &rec.gates {
        let still = spec
            .gate_names(*phase)
            .iter()
            .any(|g| g.as_str() == gate.as_str());
        if !still {
            findings.push(Finding::GateRemoved {
                phase: phase_label(*phase),
                gate: gate.clone(),
                recorded: r.label(),
            });
        }
    }
    if let (Some(policy), true) = (&spec.spec.approval, rec.approval_reached) {
        let at = rec.scheduled_at.unwrap_or(last);
        let check = approvals_under(pipeline, state, spec.name.as_str(), at);
        if let Some(check) = check.filter(|c| !c.satisfied()) {
            findings.push(Finding::ApprovalBlocks {
                rule: policy.rule.to_string(),
                counted: check
                    .counted()
                    .iter()
                    .map(|p| {
                        let groups: Vec<&str> = p.groups.iter().map(|g| g.as_str()).collect();
                        format!("{} ({})", p.id, groups.join(", "))
                    })
                    .collect(),
            });
        }
    }
    findings
}
