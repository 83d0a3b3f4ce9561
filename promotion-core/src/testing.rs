//! Test support for hosts and gate authors: scripted gates, a recording deployer, a probe
//! that evaluates one gate, and given/when/then [`Scenario`]s of the state machine.
//!
//! These behave like the real thing: a scripted gate can be slow (on the engine's clock), can
//! error, can change its verdict from call to call; the recording deployer can fail, be slow,
//! and is safe to call twice. Use them with [`ManualClock`](crate::ManualClock) so tests never
//! sleep. A [`Scenario`] needs neither: it drives [`decide`](crate::decide) directly.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::engine::{DeployError, DeployTarget, Deployer};
use crate::gate::{Evidence, Gate, GateContext, GateError, GateKind, Verdict};
use crate::name::StageName;
use crate::pipeline::Percent;
use crate::release::Release;

mod scenario;

pub use scenario::{Scenario, Then};

/// One scripted answer of a [`ScriptedGate`].
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Pass with this summary.
    Pass(String),
    /// Fail with this summary.
    Fail(String),
    /// Inconclusive with this summary.
    Inconclusive(String),
    /// Pending; ask again after the duration.
    Pending(Duration),
    /// Could not decide.
    Error(String),
}

/// A gate that answers from a script, one step per evaluation, repeating the last step when
/// the script runs out. Clearly a test double: its evidence says `scripted`.
#[derive(Debug)]
pub struct ScriptedGate {
    name: String,
    kind: GateKind,
    script: Mutex<VecDeque<Step>>,
    last: Mutex<Option<Step>>,
    latency: Duration,
    calls: Mutex<u32>,
}

impl ScriptedGate {
    /// A gate that answers `steps` in order.
    pub fn new(name: impl Into<String>, steps: impl IntoIterator<Item = Step>) -> Self {
        ScriptedGate {
            name: name.into(),
            kind: GateKind::Automated,
            script: Mutex::new(steps.into_iter().collect()),
            last: Mutex::new(None),
            latency: Duration::ZERO,
            calls: Mutex::new(0),
        }
    }
    /// A gate that always passes.
    pub fn passing(name: impl Into<String>) -> Self {
        Self::new(name, [Step::Pass("ok".into())])
    }
    /// A gate that always fails.
    pub fn failing(name: impl Into<String>) -> Self {
        Self::new(name, [Step::Fail("scripted failure".into())])
    }
    /// Each evaluation takes `d` on the engine's clock.
    pub fn with_latency(mut self, d: Duration) -> Self {
        self.latency = d;
        self
    }
    /// Reports `kind`.
    pub fn with_kind(mut self, kind: GateKind) -> Self {
        self.kind = kind;
        self
    }
    /// How many times it was evaluated.
    pub fn calls(&self) -> u32 {
        *self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
    /// Appends steps to the script.
    pub fn push(&self, step: Step) {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(step);
    }
    fn next_step(&self) -> Step {
        let mut script = self.script.lock().unwrap_or_else(PoisonError::into_inner);
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = script.pop_front() {
            *last = Some(s);
        }
        last.clone()
            .unwrap_or_else(|| Step::Error("the script is empty".into()))
    }
}

#[async_trait]
impl Gate for ScriptedGate {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> GateKind {
        self.kind
    }
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        *self.calls.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        if !self.latency.is_zero() {
            ctx.clock.sleep(self.latency).await;
        }
        let producer = format!("scripted:{}", self.name);
        let ev = |summary: String| {
            Evidence::new(producer.clone(), ctx.now(), summary)
                .with_data(serde_json::json!({ "scripted": true, "round": ctx.round }))
        };
        Ok(match self.next_step() {
            Step::Pass(s) => Verdict::Pass(ev(s)),
            Step::Fail(s) => Verdict::Fail(ev(s)),
            Step::Inconclusive(s) => Verdict::Inconclusive(ev(s)),
            Step::Pending(d) => Verdict::Pending {
                evidence: ev("not decided yet".into()),
                retry_after: d,
            },
            Step::Error(m) => return Err(GateError::other(m)),
        })
    }
}

/// A call the [`RecordingDeployer`] received.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployCall {
    /// `deploy(stage, weight)`.
    Deploy {
        stage: String,
        weight: u8,
        /// When (deployer's clock, if it has one).
        at: Option<DateTime<Utc>>,
    },
    /// `roll_back(stage)`.
    RollBack {
        stage: String,
        at: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Default)]
struct RecordingInner {
    calls: Vec<DeployCall>,
    failures: Vec<(String, Option<u8>, u32)>,
    /// Refuse tokens lower than the highest seen per stage, as a fencing platform does.
    fencing: bool,
    highest_token: std::collections::BTreeMap<String, u64>,
    tokens: Vec<(String, Option<u64>)>,
    refused: Vec<(String, u64)>,
}

/// A deployer that records every call and can be told to fail. Stands in for the host's
/// platform in examples and tests.
#[derive(Debug, Clone, Default)]
pub struct RecordingDeployer {
    inner: Arc<Mutex<RecordingInner>>,
    clock: Option<Arc<dyn crate::Clock>>,
    latency: Duration,
}

impl RecordingDeployer {
    /// A deployer that always succeeds at once.
    pub fn new() -> Self {
        Self::default()
    }
    /// Stamps calls with `clock`'s time and takes `latency` on it per call.
    pub fn with_clock(mut self, clock: Arc<dyn crate::Clock>, latency: Duration) -> Self {
        self.clock = Some(clock);
        self.latency = latency;
        self
    }
    /// Behaves like a platform that fences its writers: a call whose
    /// [`fencing_token`](crate::DeployTarget::fencing_token) is lower than the highest one seen
    /// for its stage is refused with [`DeployError::fenced`] — when it arrives, and again when
    /// it would take effect (after the deployer's latency), so that a caller paused inside the
    /// call is refused once a newer holder has called.
    pub fn refusing_stale_tokens(self) -> Self {
        self.lock().fencing = true;
        self
    }
    /// The fencing tokens of the calls to `stage`, in order (`None` for unfenced calls).
    pub fn tokens(&self, stage: &str) -> Vec<Option<u64>> {
        self.lock()
            .tokens
            .iter()
            .filter(|(s, _)| s == stage)
            .map(|(_, t)| *t)
            .collect()
    }
    /// The calls refused as stale, as (stage, token).
    pub fn refused(&self) -> Vec<(String, u64)> {
        self.lock().refused.clone()
    }
    fn fence(&self, stage: &str, token: Option<u64>) -> Result<(), DeployError> {
        let mut inner = self.lock();
        let (true, Some(token)) = (inner.fencing, token) else {
            return Ok(());
        };
        let highest = inner.highest_token.entry(stage.to_owned()).or_insert(token);
        if token < *highest {
            let highest = *highest;
            inner.refused.push((stage.to_owned(), token));
            return Err(DeployError::fenced(format!(
                "fencing token {token} for {stage} is stale: {highest} has been seen"
            )));
        }
        *highest = token;
        Ok(())
    }
    /// The next `times` deploys to `stage` (at `weight`, or any weight) fail.
    pub fn fail_deploy(&self, stage: &str, weight: Option<u8>, times: u32) {
        self.lock().failures.push((stage.to_owned(), weight, times));
    }
    /// Every call so far.
    pub fn calls(&self) -> Vec<DeployCall> {
        self.lock().calls.clone()
    }
    /// Deploy calls to `stage`, as weights.
    pub fn weights(&self, stage: &str) -> Vec<u8> {
        self.lock()
            .calls
            .iter()
            .filter_map(|c| match c {
                DeployCall::Deploy {
                    stage: s, weight, ..
                } if s == stage => Some(*weight),
                _ => None,
            })
            .collect()
    }
    /// Rollback calls to `stage`.
    pub fn rollbacks(&self, stage: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| matches!(c, DeployCall::RollBack { stage: s, .. } if s == stage))
            .count()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, RecordingInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
    async fn wait(&self) -> Option<DateTime<Utc>> {
        let clock = self.clock.as_ref()?;
        if !self.latency.is_zero() {
            clock.sleep(self.latency).await;
        }
        Some(clock.now())
    }
}

#[async_trait]
impl Deployer for RecordingDeployer {
    async fn deploy(&self, target: &DeployTarget<'_>, weight: Percent) -> Result<(), DeployError> {
        let stage = target.stage;
        self.lock()
            .tokens
            .push((stage.to_string(), target.fencing_token));
        self.fence(stage.as_str(), target.fencing_token)?;
        let at = self.wait().await;
        self.fence(stage.as_str(), target.fencing_token)?;
        let mut inner = self.lock();
        inner.calls.push(DeployCall::Deploy {
            stage: stage.to_string(),
            weight: weight.get(),
            at,
        });
        let hit = inner
            .failures
            .iter_mut()
            .find(|(s, w, n)| s == stage.as_str() && w.is_none_or(|w| w == weight.get()) && *n > 0);
        if let Some((_, _, n)) = hit {
            *n -= 1;
            return Err(DeployError::new(format!(
                "scripted failure deploying {weight} to {stage}"
            )));
        }
        Ok(())
    }

    async fn roll_back(&self, target: &DeployTarget<'_>) -> Result<(), DeployError> {
        let stage = target.stage;
        self.lock()
            .tokens
            .push((stage.to_string(), target.fencing_token));
        self.fence(stage.as_str(), target.fencing_token)?;
        let at = self.wait().await;
        self.fence(stage.as_str(), target.fencing_token)?;
        self.lock().calls.push(DeployCall::RollBack {
            stage: stage.to_string(),
            at,
        });
        Ok(())
    }
}

/// 2026-11-26T09:00:00Z: when [`sample_release`] was built, and where a [`GateProbe`]'s clock
/// and a [`Scenario`] start.
pub(crate) fn sample_time() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_795_683_600, 0).unwrap_or_default()
}

/// A small release for tests that need one but not its details: `svc 1.0` from
/// `git@example.com:probe/svc` at commit `aaaa…`, one `image` artifact, built by
/// `ci.example.com` at 2026-11-26T09:00:00Z, with `dana` as its one contributor (so `dana` may
/// not approve it unless a policy allows self-approval).
pub fn sample_release() -> Release {
    #[allow(clippy::unwrap_used)] // constant, valid input
    Release::builder(
        "svc 1.0",
        "git@example.com:probe/svc",
        "a".repeat(40),
        sample_time(),
    )
    .artifact(
        "image",
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    )
    .builder("ci.example.com")
    .contributor("dana")
    .build()
    .unwrap()
}

/// Evaluates a gate outside any pipeline, for gate authors' tests: a release, a stage, a
/// recorded state and a [`ManualClock`](crate::ManualClock), all adjustable.
///
/// ```
/// use promotion_core::testing::{GateProbe, ScriptedGate};
/// use promotion_core::Verdict;
///
/// let probe = GateProbe::new().stage("canary");
/// let verdict = futures::executor::block_on(probe.evaluate(&ScriptedGate::passing("smoke")));
/// assert!(matches!(verdict, Ok(Verdict::Pass(_))));
/// ```
#[derive(Debug, Clone)]
pub struct GateProbe {
    release: Release,
    pipeline: crate::PipelineName,
    stage: StageName,
    phase: crate::PhaseId,
    round: u32,
    state: crate::ReleaseState,
    clock: crate::ManualClock,
}

impl Default for GateProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl GateProbe {
    /// A probe at 2026-11-26T09:00:00Z for a sample release (`svc 1.0`, one artifact, commit
    /// `aaaa…`, contributor `dana`) in stage `test` of pipeline `probe`.
    pub fn new() -> Self {
        let t0 = sample_time();
        #[allow(clippy::unwrap_used)] // constant, valid names
        GateProbe {
            release: sample_release(),
            pipeline: crate::PipelineName::new("probe").unwrap(),
            stage: StageName::new("test").unwrap(),
            phase: crate::PhaseId::Entry,
            round: 1,
            state: crate::ReleaseState::default(),
            clock: crate::ManualClock::at(t0),
        }
    }
    /// Uses `release`.
    pub fn release(mut self, release: Release) -> Self {
        self.release = release;
        self
    }
    /// Evaluates in stage `stage` (an invalid name keeps the current one).
    pub fn stage(mut self, stage: &str) -> Self {
        if let Ok(s) = StageName::new(stage) {
            self.stage = s;
        }
        self
    }
    /// Evaluates in `phase`, round `round`.
    pub fn phase(mut self, phase: crate::PhaseId, round: u32) -> Self {
        self.phase = phase;
        self.round = round;
        self
    }
    /// Uses `state` as what was recorded so far.
    pub fn state(mut self, state: crate::ReleaseState) -> Self {
        self.state = state;
        self
    }
    /// Sets the clock's time.
    pub fn at(self, at: DateTime<Utc>) -> Self {
        let clock = crate::ManualClock::at(at);
        GateProbe { clock, ..self }
    }
    /// Uses an auto-advancing clock (for gates that wait on the clock).
    pub fn auto_advancing(self) -> Self {
        let now = crate::Clock::now(&self.clock);
        GateProbe {
            clock: crate::ManualClock::auto_advancing(now),
            ..self
        }
    }
    /// The probe's clock.
    pub fn clock(&self) -> &crate::ManualClock {
        &self.clock
    }
    /// The release.
    pub fn release_ref(&self) -> &Release {
        &self.release
    }
    /// Evaluates `gate` once.
    pub async fn evaluate(&self, gate: &dyn Gate) -> Result<Verdict, GateError> {
        let name = crate::GateName::new(gate.name())
            .or_else(|_| crate::GateName::new("gate"))
            .map_err(|e| GateError::Misconfigured(e.to_string()))?;
        let ctx = GateContext {
            release: &self.release,
            pipeline: &self.pipeline,
            pipeline_version: "1",
            stage: &self.stage,
            phase: self.phase,
            gate: &name,
            round: self.round,
            attempt: 1,
            state: &self.state,
            clock: &self.clock,
        };
        crate::layer::guarded(gate, &ctx, None).await
    }
}
