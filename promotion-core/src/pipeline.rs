//! Pipeline definitions: stages, their upstreams, gates, approvals, rollouts and soak times.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::approval::ApprovalPolicy;
use crate::gate::{GateSpec, Phase, PhaseId, PhasePolicy};
use crate::name::{check_name, GateName, Group, InvalidName, PipelineName, StageName};
use crate::verification::{AcceptedVerifications, ActionKind, VerificationKind};

/// A traffic weight in percent, 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Percent(u8);

impl Percent {
    /// All traffic.
    pub const FULL: Percent = Percent(100);
    /// A weight from 1 to 100.
    pub fn new(p: u8) -> Result<Self, String> {
        if (1..=100).contains(&p) {
            Ok(Percent(p))
        } else {
            Err(format!("a rollout weight is 1 to 100 percent, found {p}"))
        }
    }
    /// The value.
    pub fn get(self) -> u8 {
        self.0
    }
}
impl TryFrom<u8> for Percent {
    type Error = String;
    fn try_from(p: u8) -> Result<Self, String> {
        Percent::new(p)
    }
}
impl From<Percent> for u8 {
    fn from(p: Percent) -> u8 {
        p.0
    }
}
impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// When a stage becomes available given its upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Promoted in every upstream stage (the default).
    #[default]
    AllUpstreams,
    /// Promoted in at least one upstream stage.
    AnyUpstream,
}

/// One step of a progressive rollout.
#[derive(Debug, Clone)]
pub struct RolloutStep {
    /// Traffic weight for the release at this step.
    pub weight: Percent,
    /// Wait after deploying before the analysis starts.
    pub pause: Duration,
    /// Analysis gates; a fail rolls the stage back.
    pub analysis: Phase,
}

impl RolloutStep {
    /// A step at `weight` percent with no pause and no analysis; an invalid weight is
    /// reported when the pipeline is built.
    pub fn new(weight: u8) -> Self {
        RolloutStep {
            weight: Percent(weight),
            pause: Duration::ZERO,
            analysis: Phase::default(),
        }
    }
    /// Waits `d` after deploying before analysing.
    pub fn pause(mut self, d: Duration) -> Self {
        self.pause = d;
        self
    }
    /// Adds an analysis gate.
    pub fn analysis(mut self, gate: impl Into<GateSpec>) -> Self {
        self.analysis.gates.push(gate.into());
        self
    }
    /// Sets the analysis sampling policy.
    pub fn analysis_policy(mut self, policy: PhasePolicy) -> Self {
        self.analysis.policy = policy;
        self
    }
}

/// A progressive rollout: steps of increasing weight, each analysed.
#[derive(Debug, Clone)]
pub struct RolloutPlan {
    /// The steps, in order; the last should reach 100 %.
    pub steps: Vec<RolloutStep>,
    /// Roll back automatically when an analysis or verification gate fails (default), or
    /// leave the stage Failed for a human.
    pub auto_rollback: bool,
}

impl RolloutPlan {
    /// A plan of `steps` with automatic rollback.
    pub fn new(steps: impl IntoIterator<Item = RolloutStep>) -> Self {
        RolloutPlan {
            steps: steps.into_iter().collect(),
            auto_rollback: true,
        }
    }
    /// Leave a failed rollout in place for a human to decide.
    pub fn manual_rollback(mut self) -> Self {
        self.auto_rollback = false;
        self
    }
}

/// One stage of a pipeline.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// Unique name.
    pub name: String,
    /// Stages that must promote the release first.
    pub upstream: Vec<String>,
    /// Whether all or any upstream must have promoted.
    pub availability: Availability,
    /// Start as soon as the stage is available (default), or wait for a principal's `Start`.
    pub auto_start: bool,
    /// Gates before approval and deployment.
    pub entry: Phase,
    /// Approval requirement, if any.
    pub approval: Option<ApprovalPolicy>,
    /// Progressive rollout; without one the stage deploys at 100 % in one step.
    pub rollout: Option<RolloutPlan>,
    /// Gates after the rollout; a fail rolls back.
    pub verification: Phase,
    /// Time the release must stay healthy before it counts as promoted.
    pub soak: Option<Duration>,
    /// The verifications this stage accepts per action, replacing the pipeline's rule for
    /// the actions it names ([`StageSpec::accept`]).
    pub accepted: AcceptedVerifications,
}

impl StageSpec {
    /// A stage named `name` with no upstream and no gates.
    pub fn new(name: impl Into<String>) -> Self {
        StageSpec {
            name: name.into(),
            upstream: Vec::new(),
            availability: Availability::AllUpstreams,
            auto_start: true,
            entry: Phase::default(),
            approval: None,
            rollout: None,
            verification: Phase::default(),
            soak: None,
            accepted: AcceptedVerifications::new(),
        }
    }
    /// Adds an upstream stage.
    pub fn after(mut self, upstream: impl Into<String>) -> Self {
        self.upstream.push(upstream.into());
        self
    }
    /// Sets the availability rule.
    pub fn availability(mut self, a: Availability) -> Self {
        self.availability = a;
        self
    }
    /// Requires a principal to start the promotion into this stage.
    pub fn manual_start(mut self) -> Self {
        self.auto_start = false;
        self
    }
    /// Adds an entry gate.
    pub fn entry_gate(mut self, gate: impl Into<GateSpec>) -> Self {
        self.entry.gates.push(gate.into());
        self
    }
    /// Sets the entry phase's policy.
    pub fn entry_policy(mut self, policy: PhasePolicy) -> Self {
        self.entry.policy = policy;
        self
    }
    /// Sets the approval policy.
    pub fn approval(mut self, policy: ApprovalPolicy) -> Self {
        self.approval = Some(policy);
        self
    }
    /// Sets the rollout plan.
    pub fn rollout(mut self, plan: RolloutPlan) -> Self {
        self.rollout = Some(plan);
        self
    }
    /// Adds a verification gate.
    pub fn verification_gate(mut self, gate: impl Into<GateSpec>) -> Self {
        self.verification.gates.push(gate.into());
        self
    }
    /// Sets the verification phase's policy.
    pub fn verification_policy(mut self, policy: PhasePolicy) -> Self {
        self.verification.policy = policy;
        self
    }
    /// Sets the soak time.
    pub fn soak(mut self, d: Duration) -> Self {
        self.soak = Some(d);
        self
    }
    /// In this stage, `action` is accepted only from a principal verified by one of `kinds`
    /// (e.g. production approvals need an SSH signature), whatever the pipeline accepts for it
    /// elsewhere. [`ActionKind::Register`] has no stage and is refused here when the pipeline
    /// is built, as is an empty `kinds`.
    pub fn accept(
        mut self,
        action: ActionKind,
        kinds: impl IntoIterator<Item = VerificationKind>,
    ) -> Self {
        self.accepted = self.accepted.accept(action, kinds);
        self
    }
}

/// A validated stage.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: StageName,
    /// Upstream stages.
    pub upstream: Vec<StageName>,
    /// Downstream stages (derived).
    pub downstream: Vec<StageName>,
    /// The rest of the definition, as given.
    pub spec: StageSpec,
    steps: Vec<RolloutStep>,
    gate_names: BTreeMap<PhaseId, Vec<GateName>>,
}

impl Stage {
    /// The rollout steps; a stage without a plan has one step at 100 %.
    pub fn steps(&self) -> &[RolloutStep] {
        &self.steps
    }
    /// Whether failed analysis or verification rolls back automatically.
    pub fn auto_rollback(&self) -> bool {
        self.spec.rollout.as_ref().is_none_or(|r| r.auto_rollback)
    }
    /// The phase `id`, if the stage has it.
    pub fn phase(&self, id: PhaseId) -> Option<&Phase> {
        match id {
            PhaseId::Entry => Some(&self.spec.entry),
            PhaseId::Verification => Some(&self.spec.verification),
            PhaseId::Analysis { step } => self.steps.get(step as usize).map(|s| &s.analysis),
        }
    }
    /// The validated gate names of phase `id`, in definition order.
    pub fn gate_names(&self, id: PhaseId) -> &[GateName] {
        self.gate_names.get(&id).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// A versioned, validated pipeline: a DAG of stages.
#[derive(Debug, Clone)]
pub struct Pipeline {
    name: PipelineName,
    version: String,
    stages: Vec<Stage>,
    index: BTreeMap<StageName, usize>,
    break_glass: BTreeSet<Group>,
    operators: BTreeSet<Group>,
    allow_self_override: bool,
    max_text_len: usize,
    require_verified: bool,
    accepted: AcceptedVerifications,
}

/// Why a pipeline definition was refused. Every variant names the stage.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A name is invalid.
    #[error("{context}: {source}")]
    InvalidName {
        /// Where the name appeared (`stage #2`, `stage \`canary\` upstream`).
        context: String,
        /// What was wrong.
        source: InvalidName,
    },
    /// The version string is empty.
    #[error("pipeline `{0}` has an empty version")]
    EmptyVersion(String),
    /// The pipeline has no stages.
    #[error("pipeline `{0}` has no stages")]
    NoStages(String),
    /// Two stages share a name.
    #[error("stage `{0}` is defined twice")]
    DuplicateStage(String),
    /// An upstream reference names no stage.
    #[error("stage `{stage}` names upstream `{upstream}`, which is not a stage of this pipeline")]
    UnknownUpstream {
        stage: String,
        /// The missing upstream.
        upstream: String,
    },
    /// A stage lists an upstream twice or lists itself.
    #[error("stage `{stage}` lists upstream `{upstream}` twice or lists itself")]
    BadUpstream { stage: String, upstream: String },
    /// The upstream relation has a cycle.
    #[error("stages form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// Two gates of one phase share a name.
    #[error("stage `{stage}`: gate `{gate}` appears twice in the {phase} phase")]
    DuplicateGate {
        stage: String,
        phase: String,
        gate: String,
    },
    /// An approval rule can never be met.
    #[error("stage `{stage}`: approval rule cannot be satisfied: {reason}")]
    UnsatisfiableApproval { stage: String, reason: String },
    /// A rollout plan is malformed.
    #[error("stage `{stage}`: rollout plan {reason}")]
    BadRollout { stage: String, reason: String },
    /// A rule of accepted verifications accepts none, or names an action a stage cannot have.
    #[error("{context}: `{action}` {reason}")]
    BadVerificationRule {
        /// Where the rule is (`pipeline`, `stage \`prod\``).
        context: String,
        action: ActionKind,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A phase policy is contradictory.
    #[error("stage `{stage}`: {phase} policy {reason}")]
    BadPolicy {
        stage: String,
        phase: String,
        reason: String,
    },
}

/// Builds and validates a [`Pipeline`].
#[derive(Debug, Clone)]
pub struct PipelineBuilder {
    name: String,
    version: String,
    stages: Vec<StageSpec>,
    break_glass: Vec<String>,
    operators: Vec<String>,
    allow_self_override: bool,
    max_text_len: usize,
    require_verified: bool,
    accepted: AcceptedVerifications,
}

impl Pipeline {
    /// Starts a pipeline definition.
    pub fn builder(name: impl Into<String>, version: impl Into<String>) -> PipelineBuilder {
        PipelineBuilder {
            name: name.into(),
            version: version.into(),
            stages: Vec::new(),
            break_glass: Vec::new(),
            operators: Vec::new(),
            allow_self_override: false,
            max_text_len: crate::text::DEFAULT_MAX_TEXT_LEN,
            require_verified: false,
            accepted: AcceptedVerifications::new(),
        }
    }
    /// The pipeline's name.
    pub fn name(&self) -> &PipelineName {
        &self.name
    }
    /// The definition's version; approvals are bound to it.
    pub fn version(&self) -> &str {
        &self.version
    }
    /// Stages in a topological order (every stage after its upstreams).
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }
    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.index.get(name).and_then(|&i| self.stages.get(i))
    }
    /// Groups whose members may override a failed gate (break glass).
    pub fn break_glass_groups(&self) -> &BTreeSet<Group> {
        &self.break_glass
    }
    /// Groups whose members may start, abort, roll back and judge; empty means anyone the
    /// host authenticated.
    pub fn operator_groups(&self) -> &BTreeSet<Group> {
        &self.operators
    }
    /// Whether people with a stake in a release (its builder and contributors, who registered
    /// it, who started the stage) may override its gates and judge its inconclusive gates.
    /// Off by default: break glass and judgement follow separation of duties like approvals.
    /// When on, each such decision records the stake in its event (`self_interest`).
    pub fn allows_self_override(&self) -> bool {
        self.allow_self_override
    }
    /// The longest comment, justification or reason accepted, in bytes.
    pub fn max_text_len(&self) -> usize {
        self.max_text_len
    }
    /// Whether a person's command (start, approve, reject, override, judge, abort, roll back)
    /// is refused unless the host says how it verified the person
    /// ([`Principal::verified`](crate::Principal::verified)).
    pub fn requires_verified(&self) -> bool {
        self.require_verified
    }
    /// The verifications the pipeline accepts per action, everywhere a stage has no rule of
    /// its own for the action ([`PipelineBuilder::accept`]).
    pub fn accepted_verifications(&self) -> &AcceptedVerifications {
        &self.accepted
    }
    /// The verification kinds accepted for `action` in `stage` (`None` for
    /// [`ActionKind::Register`], which has no stage): the stage's rule for it, else the
    /// pipeline's; `None` when neither has one, and then only
    /// [`requires_verified`](Self::requires_verified) applies.
    pub fn accepted_for(
        &self,
        stage: Option<&str>,
        action: ActionKind,
    ) -> Option<&BTreeSet<VerificationKind>> {
        stage
            .and_then(|s| self.stage(s))
            .and_then(|s| s.spec.accepted.for_action(action))
            .or_else(|| self.accepted.for_action(action))
    }
}

impl PipelineBuilder {
    /// Adds a stage.
    pub fn stage(mut self, stage: StageSpec) -> Self {
        self.stages.push(stage);
        self
    }
    /// Members of `group` may override failed gates, with a justification.
    pub fn break_glass_group(mut self, group: impl Into<String>) -> Self {
        self.break_glass.push(group.into());
        self
    }
    /// Only members of these groups may start, abort, roll back or judge.
    pub fn operator_group(mut self, group: impl Into<String>) -> Self {
        self.operators.push(group.into());
        self
    }
    /// Lets people with a stake in a release override and judge its gates (see
    /// [`Pipeline::allows_self_override`]); the version's definition records the choice.
    pub fn allow_self_override(mut self) -> Self {
        self.allow_self_override = true;
        self
    }
    /// Refuses every person's command whose principal carries no
    /// [`Verification`](crate::Verification): the caller's word is not enough. The refusal is
    /// recorded in the security stream like any refusal about who asked.
    pub fn require_verified(mut self) -> Self {
        self.require_verified = true;
        self
    }
    /// Accepts `action` only from a principal verified by one of `kinds`, in every stage that
    /// has no rule of its own for it ([`StageSpec::accept`]): e.g. registering needs
    /// [`Oidc`](VerificationKind::Oidc) or [`Roster`](VerificationKind::Roster). A refused
    /// command is a [`Refusal::VerificationNotAccepted`](crate::Refusal::VerificationNotAccepted),
    /// recorded in the security stream. The rules are part of the definition: change the
    /// pipeline's version with them (the TOML loader's version carries the template's digest,
    /// so it does), and approvals given under the old rules stop counting.
    pub fn accept(
        mut self,
        action: ActionKind,
        kinds: impl IntoIterator<Item = VerificationKind>,
    ) -> Self {
        self.accepted = self.accepted.accept(action, kinds);
        self
    }
    /// Bounds comments, justifications and reasons to `bytes` (default
    /// [`DEFAULT_MAX_TEXT_LEN`](crate::text::DEFAULT_MAX_TEXT_LEN), 4 KiB).
    pub fn max_text_len(mut self, bytes: usize) -> Self {
        self.max_text_len = bytes;
        self
    }

    /// Validates the definition.
    pub fn build(self) -> Result<Pipeline, PipelineError> {
        let invalid =
            |context: String| move |source| PipelineError::InvalidName { context, source };
        let name = PipelineName::new(self.name.clone()).map_err(invalid("pipeline".into()))?;
        if self.version.trim().is_empty() {
            return Err(PipelineError::EmptyVersion(self.name));
        }
        check_name("version", &self.version).map_err(invalid("pipeline version".into()))?;
        if self.stages.is_empty() {
            return Err(PipelineError::NoStages(self.name));
        }
        let group_set = |groups: Vec<String>, what: &str| {
            groups
                .into_iter()
                .map(|g| Group::new(g).map_err(invalid(what.to_owned())))
                .collect::<Result<BTreeSet<_>, _>>()
        };
        let break_glass = group_set(self.break_glass, "break-glass group")?;
        let operators = group_set(self.operators, "operator group")?;
        check_rules("pipeline".into(), &self.accepted, true)?;
        for spec in &self.stages {
            check_rules(format!("stage `{}`", spec.name), &spec.accepted, false)?;
        }

        let mut index = BTreeMap::new();
        let mut names = Vec::new();
        for (i, spec) in self.stages.iter().enumerate() {
            let n =
                StageName::new(spec.name.clone()).map_err(invalid(format!("stage #{}", i + 1)))?;
            if index.insert(n.clone(), i).is_some() {
                return Err(PipelineError::DuplicateStage(spec.name.clone()));
            }
            names.push(n);
        }
        let mut upstreams: Vec<Vec<StageName>> = Vec::new();
        for spec in &self.stages {
            let mut ups = Vec::new();
            for u in &spec.upstream {
                let un = StageName::new(u.clone())
                    .map_err(invalid(format!("stage `{}` upstream", spec.name)))?;
                if !index.contains_key(&un) {
                    return Err(PipelineError::UnknownUpstream {
                        stage: spec.name.clone(),
                        upstream: u.clone(),
                    });
                }
                if ups.contains(&un) || un.as_str() == spec.name {
                    return Err(PipelineError::BadUpstream {
                        stage: spec.name.clone(),
                        upstream: u.clone(),
                    });
                }
                ups.push(un);
            }
            upstreams.push(ups);
        }
        let order = topological_order(&names, &upstreams, &index)?;

        let mut stages = Vec::with_capacity(order.len());
        for &i in &order {
            let (Some(spec), Some(name), Some(ups)) =
                (self.stages.get(i), names.get(i), upstreams.get(i))
            else {
                continue;
            };
            stages.push(validate_stage(spec.clone(), name.clone(), ups.clone())?);
        }
        let index: BTreeMap<StageName, usize> = stages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let downstream: Vec<Vec<StageName>> = stages
            .iter()
            .map(|s| {
                stages
                    .iter()
                    .filter(|d| d.upstream.contains(&s.name))
                    .map(|d| d.name.clone())
                    .collect()
            })
            .collect();
        for (s, d) in stages.iter_mut().zip(downstream) {
            s.downstream = d;
        }
        Ok(Pipeline {
            name,
            version: self.version,
            stages,
            index,
            break_glass,
            operators,
            allow_self_override: self.allow_self_override,
            max_text_len: self.max_text_len,
            require_verified: self.require_verified,
            accepted: self.accepted,
        })
    }
}

/// Refuses a rule that accepts nothing, and a stage's rule for registering.
fn check_rules(
    context: String,
    rules: &AcceptedVerifications,
    pipeline_wide: bool,
) -> Result<(), PipelineError> {
    for (action, kinds) in rules.rules() {
        let reason = if kinds.is_empty() {
            "accepts no verification, so nobody could do it"
        } else if action == ActionKind::Register && !pipeline_wide {
            "is pipeline-wide: a release is registered before any stage"
        } else {
            continue;
        };
        return Err(PipelineError::BadVerificationRule {
            context,
            action,
            reason,
        });
    }
    Ok(())
}

fn topological_order(
    names: &[StageName],
    upstreams: &[Vec<StageName>],
    index: &BTreeMap<StageName, usize>,
) -> Result<Vec<usize>, PipelineError> {
    // Depth-first search with colours; a grey node reached again closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; names.len()];
    let mut order = Vec::with_capacity(names.len());
    let mut path: Vec<usize> = Vec::new();
    for start in 0..names.len() {
        if colour.get(start) != Some(&Colour::White) {
            continue;
        }
        // iterative DFS: stack of (node, next upstream index)
        let mut stack = vec![(start, 0usize)];
        if let Some(c) = colour.get_mut(start) {
            *c = Colour::Grey;
        }
        path.push(start);
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            let ups = upstreams.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(u) = ups.get(*next) {
                *next += 1;
                let Some(&ui) = index.get(u) else { continue };
                match colour.get(ui) {
                    Some(Colour::White) => {
                        if let Some(c) = colour.get_mut(ui) {
                            *c = Colour::Grey;
                        }
                        path.push(ui);
                        stack.push((ui, 0));
                    }
                    Some(Colour::Grey) => {
                        let from = path.iter().position(|&p| p == ui).unwrap_or(0);
                        let mut cycle: Vec<String> = path
                            .get(from..)
                            .unwrap_or(&[])
                            .iter()
                            .rev()
                            .filter_map(|&i| names.get(i).map(|n| n.to_string()))
                            .collect();
                        if let Some(first) = cycle.first().cloned() {
                            cycle.push(first);
                        }
                        return Err(PipelineError::Cycle(cycle));
                    }
                    _ => {}
                }
            } else {
                if let Some(c) = colour.get_mut(node) {
                    *c = Colour::Black;
                }
                order.push(node);
                path.pop();
                stack.pop();
            }
        }
    }
    Ok(order)
}

fn validate_stage(
    spec: StageSpec,
    name: StageName,
    upstream: Vec<StageName>,
) -> Result<Stage, PipelineError> {
    let stage = spec.name.clone();
    let steps: Vec<RolloutStep> = match &spec.rollout {
        None => vec![RolloutStep::new(100)],
        Some(plan) => {
            if plan.steps.is_empty() {
                return Err(PipelineError::BadRollout {
                    stage,
                    reason: "has no steps".into(),
                });
            }
            let mut last = 0u8;
            for (i, s) in plan.steps.iter().enumerate() {
                let w = s.weight.get();
                if Percent::new(w).is_err() {
                    return Err(PipelineError::BadRollout {
                        stage,
                        reason: format!("step {} has weight {w}; weights are 1 to 100", i + 1),
                    });
                }
                if w <= last {
                    return Err(PipelineError::BadRollout {
                        stage,
                        reason: format!(
                            "step {} has weight {w}%, not more than the step before ({last}%)",
                            i + 1
                        ),
                    });
                }
                last = w;
            }
            if last != 100 {
                return Err(PipelineError::BadRollout {
                    stage,
                    reason: format!("ends at {last}%; the last step must reach 100%"),
                });
            }
            plan.steps.clone()
        }
    };
    if let Some(policy) = &spec.approval {
        policy
            .rule
            .check()
            .map_err(|e| PipelineError::UnsatisfiableApproval {
                stage: stage.clone(),
                reason: e.0,
            })?;
        if let Some(g) = policy
            .rule
            .conditions()
            .into_iter()
            .find(|g| !spec.entry.gates.iter().any(|e| e.name == g.as_str()))
        {
            return Err(PipelineError::UnsatisfiableApproval {
                stage: stage.clone(),
                reason: format!(
                    "a condition reads gate `{g}`, which is not an entry gate of this stage"
                ),
            });
        }
    }
    let mut gate_names = BTreeMap::new();
    let mut phases: Vec<(PhaseId, &Phase)> = vec![
        (PhaseId::Entry, &spec.entry),
        (PhaseId::Verification, &spec.verification),
    ];
    for (i, s) in steps.iter().enumerate() {
        phases.push((PhaseId::Analysis { step: i as u32 }, &s.analysis));
    }
    for (id, phase) in phases {
        let mut seen = Vec::new();
        for g in &phase.gates {
            let gn =
                GateName::new(g.name.clone()).map_err(|source| PipelineError::InvalidName {
                    context: format!("stage `{stage}` {id} gate"),
                    source,
                })?;
            if seen.contains(&gn) {
                return Err(PipelineError::DuplicateGate {
                    stage,
                    phase: id.to_string(),
                    gate: g.name.clone(),
                });
            }
            seen.push(gn);
        }
        let p = &phase.policy;
        if !p.min_success.is_zero() && p.interval.is_none() {
            return Err(PipelineError::BadPolicy {
                stage,
                phase: id.to_string(),
                reason: "sets a minimum success duration but no sampling interval".into(),
            });
        }
        if p.consecutive_error_limit == 0 {
            return Err(PipelineError::BadPolicy {
                stage,
                phase: id.to_string(),
                reason: "allows 0 consecutive errors; the least is 1".into(),
            });
        }
        if let (Some(t), false) = (p.timeout, p.min_success.is_zero()) {
            if p.delay.saturating_add(p.min_success) > t {
                return Err(PipelineError::BadPolicy {
                    stage,
                    phase: id.to_string(),
                    reason: "times out before the minimum success duration can elapse".into(),
                });
            }
        }
        gate_names.insert(id, seen);
    }
    Ok(Stage {
        name,
        upstream,
        downstream: Vec::new(),
        spec,
        steps,
        gate_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::ApprovalRule;

    #[test]
    fn orders_stages_topologically() {
        let p = Pipeline::builder("shop", "1")
            .stage(StageSpec::new("prod").after("canary"))
            .stage(StageSpec::new("canary").after("dev"))
            .stage(StageSpec::new("dev"))
            .build()
            .unwrap();
        let order: Vec<_> = p.stages().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(order, ["dev", "canary", "prod"]);
        assert_eq!(p.stage("dev").unwrap().downstream, ["canary"]);
    }

    #[test]
    fn errors_name_the_stage() {
        let err = Pipeline::builder("shop", "1")
            .stage(StageSpec::new("dev"))
            .stage(StageSpec::new("dev"))
            .build()
            .unwrap_err();
        assert_eq!(err.to_string(), "stage `dev` is defined twice");

        let err = Pipeline::builder("shop", "1")
            .stage(StageSpec::new("prod").after("qa"))
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "stage `prod` names upstream `qa`, which is not a stage of this pipeline"
        );

        let err = Pipeline::builder("shop", "1")
            .stage(StageSpec::new("a").after("c"))
            .stage(StageSpec::new("b").after("a"))
            .stage(StageSpec::new("c").after("b"))
            .build()
            .unwrap_err();
        assert!(
            matches!(err, PipelineError::Cycle(ref c) if c.len() == 4),
            "{err}"
        );

        let err = Pipeline::builder("shop", "1")
            .stage(
                StageSpec::new("prod")
                    .approval(ApprovalPolicy::new(ApprovalRule::quorum("sre", 0).unwrap())),
            )
            .build()
            .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("stage `prod`: approval rule cannot"));

        let err = Pipeline::builder("shop", "1")
            .stage(StageSpec::new("canary").rollout(RolloutPlan::new([
                RolloutStep::new(10),
                RolloutStep::new(5),
            ])))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("step 2 has weight 5%"), "{err}");

        let err = Pipeline::builder("shop", "1")
            .stage(StageSpec::new("canary").rollout(RolloutPlan::new([RolloutStep::new(0)])))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("weights are 1 to 100"), "{err}");

        let err = Pipeline::builder("shop", " ")
            .stage(StageSpec::new("a"))
            .build();
        assert!(err.is_err());
        let err = Pipeline::builder("shop", "1").build().unwrap_err();
        assert_eq!(err.to_string(), "pipeline `shop` has no stages");
    }
}
