//! The async engine: runs gates, calls the deployer, and appends what the state machine
//! decides. Runtime-agnostic and without background tasks: the host calls [`Engine::advance`]
//! whenever it likes (a request handler, a cron job, a queue consumer, a test).

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use futures::FutureExt;
use tracing::Instrument;

use crate::clock::{elapsed, Clock};
use crate::gate::{GateContext, GateSpec, PhaseId, Verdict};
use crate::machine::{
    apply_mut, decide, plan, Action, Command, Event, GateResult, Outcome, Refusal, ReleaseState,
    StageStatus, Waiting,
};
use crate::name::{GateName, InvalidName, StageName};
use crate::pipeline::{Percent, Pipeline};
use crate::principal::Principal;
use crate::release::{Release, ReleaseId};
use crate::store::{EventStore, ExpectedVersion, StoreError, StreamId};

/// Deploys releases onto the host's platform. The host implements it.
///
/// Calls may be repeated (after a crash, or by a second replica), so implementations should be
/// idempotent: deploying the weight already deployed is a no-op.
#[async_trait]
pub trait Deployer: Send + Sync + fmt::Debug {
    /// Routes `weight` of the stage's traffic to `release`.
    async fn deploy(
        &self,
        release: &Release,
        stage: &StageName,
        weight: Percent,
    ) -> Result<(), DeployError>;
    /// Restores the stage to what ran before `release`.
    async fn roll_back(&self, release: &Release, stage: &StageName) -> Result<(), DeployError>;
}

/// The deployer failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DeployError {
    /// What happened.
    pub message: String,
    /// The underlying error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl DeployError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        DeployError {
            message: message.into(),
            source: None,
        }
    }
}

/// Why an engine call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No release with this id is registered.
    #[error("release {0} is not registered")]
    UnknownRelease(ReleaseId),
    /// The state machine refused the command; nothing was appended.
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    /// The store failed or another writer got there first; nothing was appended.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A name given to a convenience method is invalid.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// The stored stream belongs to a different release.
    #[error("stream {stream} holds release {found}, not {expected}")]
    WrongStream {
        /// The stream.
        stream: StreamId,
        /// Release expected.
        expected: ReleaseId,
        /// Release found.
        found: String,
    },
    /// `advance` took more steps than any pipeline should need (a bug, reported not looped).
    #[error("advance performed {0} actions without settling; stopping")]
    Runaway(usize),
}

/// What `advance` achieved and what the release now waits for.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The state after advancing.
    pub state: ReleaseState,
    /// What it waits for; empty when every reachable stage is finished.
    pub waiting: Vec<Waiting>,
    /// Events appended by this call.
    pub appended: usize,
}

impl Progress {
    /// The earliest time the release waits for, if it waits for a time.
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        self.waiting
            .iter()
            .filter_map(|w| match w {
                Waiting::Until { at, .. } => Some(*at),
                _ => None,
            })
            .min()
    }
    /// Whether it waits for a person (approval, judgement, manual start).
    pub fn needs_human(&self) -> bool {
        self.waiting
            .iter()
            .any(|w| !matches!(w, Waiting::Until { .. }))
    }
    /// Status of `stage`.
    pub fn status(&self, stage: &str) -> StageStatus {
        self.state.status(stage)
    }
}

/// Drives releases through a pipeline.
///
/// Every change goes through [`decide`] and is appended with the stream version it was decided
/// on, so two engines sharing a store can never both apply a decision based on the same state:
/// the second gets [`StoreError::Conflict`] and nothing of its decision is recorded.
#[derive(Debug, Clone)]
pub struct Engine {
    pipeline: Arc<Pipeline>,
    store: Arc<dyn EventStore>,
    deployer: Arc<dyn Deployer>,
    clock: Arc<dyn Clock>,
    max_actions: usize,
}

impl Engine {
    /// An engine for `pipeline` over `store`, deploying with `deployer`, timed by `clock`.
    pub fn new(
        pipeline: impl Into<Arc<Pipeline>>,
        store: Arc<dyn EventStore>,
        deployer: Arc<dyn Deployer>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Engine {
            pipeline: pipeline.into(),
            store,
            deployer,
            clock,
            max_actions: 10_000,
        }
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
    /// The store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Registers `release` on behalf of `initiator`.
    pub async fn register(
        &self,
        release: Release,
        initiator: &Principal,
    ) -> Result<ReleaseId, EngineError> {
        let id = release.id();
        let stream = StreamId::for_release(&id);
        let state = self.load_stream(&id, &stream).await?;
        let events = decide(
            &self.pipeline,
            &state,
            &Command::Register {
                release,
                initiator: initiator.clone(),
            },
            self.clock.now(),
        )?;
        self.store
            .append(&stream, ExpectedVersion::NoStream, &events)
            .await?;
        log_events(&events);
        Ok(id)
    }

    /// The release's state, rebuilt from its stream.
    pub async fn state(&self, id: &ReleaseId) -> Result<ReleaseState, EngineError> {
        let state = self.load_stream(id, &StreamId::for_release(id)).await?;
        if state.release.is_none() {
            return Err(EngineError::UnknownRelease(*id));
        }
        Ok(state)
    }

    async fn load_stream(
        &self,
        id: &ReleaseId,
        stream: &StreamId,
    ) -> Result<ReleaseState, EngineError> {
        let recorded = self.store.read(stream).await?;
        fold_stream(id, stream, &recorded)
    }

    /// Submits `command` at most once for `request`. When the stream already holds events of
    /// that request — an earlier attempt was committed although its caller saw an error (a
    /// connection lost during commit, a timeout) — they are returned and nothing is done;
    /// otherwise the command is decided and its events are appended marked with `request`.
    /// Optimistic concurrency makes the check and the append one step: a concurrent retry
    /// gets a conflict, and its next retry finds the events. A refused command records
    /// nothing, so retrying a refused request decides it afresh.
    pub async fn submit_once(
        &self,
        id: &ReleaseId,
        request: &crate::RequestId,
        command: Command,
    ) -> Result<Vec<Event>, EngineError> {
        let stream = StreamId::for_release(id);
        let recorded = self.store.read(&stream).await?;
        let earlier: Vec<Event> = recorded
            .iter()
            .filter(|r| r.event.request.as_ref() == Some(request))
            .map(|r| r.event.clone())
            .collect();
        if !earlier.is_empty() {
            tracing::info!(%request, "request already applied; returning its events");
            return Ok(earlier);
        }
        let state = fold_stream(id, &stream, &recorded)?;
        if state.release.is_none() {
            return Err(EngineError::UnknownRelease(*id));
        }
        let mut events = decide(&self.pipeline, &state, &command, self.clock.now())?;
        for e in &mut events {
            e.request = Some(request.clone());
        }
        self.store
            .append(&stream, ExpectedVersion::Exact(state.version), &events)
            .await?;
        log_events(&events);
        Ok(events)
    }

    /// Submits a command on behalf of a principal (approve, reject, override, judge, start,
    /// abort, roll back). Returns the events appended.
    pub async fn submit(
        &self,
        id: &ReleaseId,
        command: Command,
    ) -> Result<Vec<Event>, EngineError> {
        let state = self.state(id).await?;
        let events = decide(&self.pipeline, &state, &command, self.clock.now())?;
        self.store
            .append(
                &StreamId::for_release(id),
                ExpectedVersion::Exact(state.version),
                &events,
            )
            .await?;
        log_events(&events);
        Ok(events)
    }

    /// Approves `stage` on behalf of `principal`.
    pub async fn approve(
        &self,
        id: &ReleaseId,
        stage: &str,
        principal: &Principal,
        comment: &str,
    ) -> Result<Vec<Event>, EngineError> {
        let command = Command::Approve {
            stage: StageName::new(stage)?,
            principal: principal.clone(),
            comment: comment.to_owned(),
        };
        self.submit(id, command).await
    }

    /// Rejects `stage` on behalf of `principal`.
    pub async fn reject(
        &self,
        id: &ReleaseId,
        stage: &str,
        principal: &Principal,
        comment: &str,
    ) -> Result<Vec<Event>, EngineError> {
        let command = Command::Reject {
            stage: StageName::new(stage)?,
            principal: principal.clone(),
            comment: comment.to_owned(),
        };
        self.submit(id, command).await
    }

    /// Break glass: counts a failed entry gate as passed, with a justification.
    pub async fn override_gate(
        &self,
        id: &ReleaseId,
        stage: &str,
        gate: &str,
        principal: &Principal,
        justification: &str,
    ) -> Result<Vec<Event>, EngineError> {
        let command = Command::Override {
            stage: StageName::new(stage)?,
            gate: GateName::new(gate)?,
            principal: principal.clone(),
            justification: justification.to_owned(),
        };
        self.submit(id, command).await
    }

    /// Judges an inconclusive gate.
    pub async fn judge(
        &self,
        id: &ReleaseId,
        stage: &str,
        gate: &str,
        pass: bool,
        principal: &Principal,
        comment: &str,
    ) -> Result<Vec<Event>, EngineError> {
        let command = Command::Judge {
            stage: StageName::new(stage)?,
            gate: GateName::new(gate)?,
            pass,
            principal: principal.clone(),
            comment: comment.to_owned(),
        };
        self.submit(id, command).await
    }

    /// Starts promotion into a manual-start stage.
    pub async fn start(
        &self,
        id: &ReleaseId,
        stage: &str,
        principal: &Principal,
    ) -> Result<Vec<Event>, EngineError> {
        let command = Command::Start {
            stage: StageName::new(stage)?,
            by: Some(principal.clone()),
        };
        self.submit(id, command).await
    }

    /// Aborts promotion into `stage`; a deployed stage is rolled back on the next `advance`.
    pub async fn abort(
        &self,
        id: &ReleaseId,
        stage: &str,
        principal: &Principal,
        reason: &str,
    ) -> Result<Vec<Event>, EngineError> {
        let command = Command::Abort {
            stage: StageName::new(stage)?,
            principal: principal.clone(),
            reason: reason.to_owned(),
        };
        self.submit(id, command).await
    }

    /// Requests a rollback of `stage`; it happens on the next `advance`.
    pub async fn roll_back(
        &self,
        id: &ReleaseId,
        stage: &str,
        principal: &Principal,
        reason: &str,
    ) -> Result<Vec<Event>, EngineError> {
        let command = Command::RollBack {
            stage: StageName::new(stage)?,
            principal: principal.clone(),
            reason: reason.to_owned(),
        };
        self.submit(id, command).await
    }

    /// Takes the release as far as its gates, approvals and clock allow, and says what it
    /// waits for. Never sleeps: a phase sampled every five minutes returns
    /// [`Waiting::Until`] and continues when `advance` is called again after that time.
    pub async fn advance(&self, id: &ReleaseId) -> Result<Progress, EngineError> {
        let span = tracing::info_span!("advance", release = %id.short());
        self.advance_inner(id, None).instrument(span).await
    }

    async fn advance_inner(
        &self,
        id: &ReleaseId,
        known: Option<ReleaseState>,
    ) -> Result<Progress, EngineError> {
        let stream = StreamId::for_release(id);
        let mut state = match known {
            // Catch up from what the caller already holds instead of replaying the stream.
            Some(mut state) => {
                for r in self.store.read_from(&stream, state.version).await? {
                    apply_mut(&mut state, &r.event);
                }
                state
            }
            None => self.state(id).await?,
        };
        let mut appended = 0;
        for _ in 0..self.max_actions {
            let now = self.clock.now();
            let next = plan(&self.pipeline, &state, now);
            let Some(action) = next.actions.into_iter().next() else {
                return Ok(Progress {
                    state,
                    waiting: next.waiting,
                    appended,
                });
            };
            let command = self.perform(&state, action).await?;
            let now = self.clock.now();
            let events = decide(&self.pipeline, &state, &command, now)?;
            self.store
                .append(&stream, ExpectedVersion::Exact(state.version), &events)
                .await?;
            log_events(&events);
            appended += events.len();
            for e in &events {
                apply_mut(&mut state, e);
            }
        }
        Err(EngineError::Runaway(self.max_actions))
    }

    /// Calls [`advance`](Self::advance) repeatedly, sleeping on the engine's clock while the
    /// release only waits for a time; returns when it needs a person or is finished.
    /// With a [`ManualClock`](crate::ManualClock) in auto-advance mode, hours of soak and
    /// sampling pass in microseconds.
    pub async fn run_until_blocked(&self, id: &ReleaseId) -> Result<Progress, EngineError> {
        let mut known = None;
        loop {
            let span = tracing::info_span!("advance", release = %id.short());
            let progress = self
                .advance_inner(id, known.take())
                .instrument(span)
                .await?;
            if progress.needs_human() {
                return Ok(progress);
            }
            let Some(at) = progress.next_wakeup() else {
                return Ok(progress);
            };
            let wait = elapsed(self.clock.now(), at);
            self.clock.sleep(wait.max(Duration::from_millis(1))).await;
            known = Some(progress.state);
        }
    }

    async fn perform(&self, state: &ReleaseState, action: Action) -> Result<Command, EngineError> {
        let release = state
            .release
            .as_ref()
            .ok_or(EngineError::Refused(Refusal::NotRegistered))?;
        Ok(match action {
            Action::Start { stage } => Command::Start { stage, by: None },
            Action::Tick { stage } => Command::Tick { stage },
            Action::Evaluate {
                stage,
                phase,
                gates,
            } => {
                let results = self
                    .evaluate_round(state, release, &stage, phase, &gates)
                    .await;
                Command::RecordRound {
                    stage,
                    phase,
                    results,
                }
            }
            Action::Deploy {
                stage,
                step,
                weight,
            } => {
                let span = tracing::info_span!("deploy", stage = %stage, step = step + 1, %weight);
                let result = catch(self.deployer.deploy(release, &stage, weight))
                    .instrument(span)
                    .await;
                Command::RecordDeployment {
                    stage,
                    step,
                    result,
                }
            }
            Action::RollBack { stage } => {
                let span = tracing::warn_span!("roll_back", stage = %stage);
                let result = catch(self.deployer.roll_back(release, &stage))
                    .instrument(span)
                    .await;
                Command::RecordRollback { stage, result }
            }
        })
    }

    async fn evaluate_round(
        &self,
        state: &ReleaseState,
        release: &Release,
        stage: &StageName,
        phase: PhaseId,
        gates: &[GateName],
    ) -> Vec<GateResult> {
        let Some(def) = self
            .pipeline
            .stage(stage.as_str())
            .and_then(|s| s.phase(phase))
        else {
            return Vec::new();
        };
        let round = state.stage(stage.as_str()).phase(phase).round + 1;
        let runs = gates.iter().filter_map(|name| {
            let spec = def.gate(name.as_str())?;
            let span = tracing::info_span!("gate", stage = %stage, %phase, gate = %name, round);
            Some(
                self.evaluate_gate(spec, name, state, release, stage, phase, round)
                    .instrument(span),
            )
        });
        join_all(runs).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn evaluate_gate(
        &self,
        spec: &GateSpec,
        name: &GateName,
        state: &ReleaseState,
        release: &Release,
        stage: &StageName,
        phase: PhaseId,
        round: u32,
    ) -> GateResult {
        let ctx = GateContext {
            release,
            pipeline: self.pipeline.name(),
            pipeline_version: self.pipeline.version(),
            stage,
            phase,
            gate: name,
            round,
            attempt: 1,
            state,
            clock: self.clock.as_ref(),
        };
        let policy = spec.policy;
        let (result, attempts) = crate::layer::retrying(
            spec.gate.as_ref(),
            &ctx,
            policy.retries,
            policy.backoff,
            policy.timeout,
        )
        .await;
        match result {
            Ok(verdict) => {
                let (outcome, evidence) = match verdict {
                    Verdict::Pass(e) => (Outcome::Pass, e),
                    Verdict::Fail(e) => (Outcome::Fail, e),
                    Verdict::Inconclusive(e) => (Outcome::Inconclusive, e),
                    Verdict::Pending {
                        evidence,
                        retry_after,
                    } => (
                        Outcome::Pending {
                            retry_after_ms: u64::try_from(retry_after.as_millis())
                                .unwrap_or(u64::MAX),
                        },
                        evidence,
                    ),
                };
                tracing::info!(outcome = %outcome, summary = %evidence.summary, attempts, "gate verdict");
                GateResult {
                    gate: name.clone(),
                    outcome,
                    evidence: Some(evidence),
                    attempts,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e.report(), attempts, "gate could not decide");
                GateResult {
                    gate: name.clone(),
                    outcome: Outcome::Error {
                        message: e.report(),
                    },
                    evidence: None,
                    attempts,
                }
            }
        }
    }
}

/// Folds a stream's recorded events into the state, checking it belongs to release `id`.
fn fold_stream(
    id: &ReleaseId,
    stream: &StreamId,
    recorded: &[crate::store::Recorded],
) -> Result<ReleaseState, EngineError> {
    let mut state = ReleaseState::default();
    for r in recorded {
        apply_mut(&mut state, &r.event);
    }
    if let Some(found) = &state.release {
        if found.id() != *id {
            return Err(EngineError::WrongStream {
                stream: stream.clone(),
                expected: *id,
                found: found.id().to_string(),
            });
        }
    }
    Ok(state)
}

async fn catch<F>(f: F) -> Result<(), String>
where
    F: std::future::Future<Output = Result<(), DeployError>>,
{
    match AssertUnwindSafe(f).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(crate::gate::report_chain(&e)),
        Err(p) => Err(format!(
            "deployer {}",
            crate::layer::panic_message(p.as_ref())
        )),
    }
}

fn log_events(events: &[Event]) {
    for e in events {
        let kind = e.body.kind();
        match e.body.stage() {
            Some(stage) => {
                tracing::info!(target: "promotion::transition", %stage, event = %kind, actor = ?e.actor)
            }
            None => {
                tracing::info!(target: "promotion::transition", event = %kind, actor = ?e.actor)
            }
        }
    }
}
