//! Test support for hosts and gate authors: scripted gates and a recording deployer.
//!
//! These behave like the real thing: a scripted gate can be slow (on the engine's clock), can
//! error, can change its verdict from call to call; the recording deployer can fail, be slow,
//! and is safe to call twice. Use them with [`ManualClock`](crate::ManualClock) so tests never
//! sleep.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::engine::{DeployError, Deployer};
use crate::gate::{Evidence, Gate, GateContext, GateError, GateKind, Verdict};
use crate::name::StageName;
use crate::pipeline::Percent;
use crate::release::Release;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployCall {
    /// `deploy(stage, weight)`.
    Deploy {
        /// Stage.
        stage: String,
        /// Weight.
        weight: u8,
        /// When (deployer's clock, if it has one).
        at: Option<DateTime<Utc>>,
    },
    /// `roll_back(stage)`.
    RollBack {
        /// Stage.
        stage: String,
        /// When.
        at: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Default)]
struct RecordingInner {
    calls: Vec<DeployCall>,
    failures: Vec<(String, Option<u8>, u32)>,
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
    async fn deploy(
        &self,
        _release: &Release,
        stage: &StageName,
        weight: Percent,
    ) -> Result<(), DeployError> {
        let at = self.wait().await;
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

    async fn roll_back(&self, _release: &Release, stage: &StageName) -> Result<(), DeployError> {
        let at = self.wait().await;
        self.lock().calls.push(DeployCall::RollBack {
            stage: stage.to_string(),
            at,
        });
        Ok(())
    }
}
