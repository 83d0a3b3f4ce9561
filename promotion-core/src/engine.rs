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

use crate::clock::{add, elapsed, Clock};
use crate::gate::{GateContext, GateSpec, PhaseId, Verdict};
use crate::lease::{Acquired, Lease, LeaseKey, LeaseStore, ReplicaId};
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
/// Before each call to [`deploy`](Deployer::deploy) the engine records a
/// [`DeploymentStarted`](crate::EventBody::DeploymentStarted) event, so the log holds every
/// attempt. Calls may be repeated (after a crash, or by a second replica: the log then shows a
/// second attempt before any outcome), so implementations should be idempotent: deploying the
/// weight already deployed is a no-op.
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
    /// Replica mode was asked of an engine whose options or store cannot support it.
    #[error("cannot run as replica: {0}")]
    InvalidReplica(String),
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
    /// Stages with work to do that another replica holds the lease on (replica mode only):
    /// that replica is doing the work, or will be until its lease lapses.
    pub held_elsewhere: Vec<HeldElsewhere>,
}

/// A stage whose lease another replica holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldElsewhere {
    /// The stage.
    pub stage: StageName,
    /// The replica holding it.
    pub holder: ReplicaId,
    /// When its lease lapses unless renewed.
    pub until: DateTime<Utc>,
}

impl Progress {
    /// The earliest time the release waits for, if it waits for a time (including the expiry
    /// of a lease held elsewhere).
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        self.waiting
            .iter()
            .filter_map(|w| match w {
                Waiting::Until { at, .. } => Some(*at),
                _ => None,
            })
            .chain(self.held_elsewhere.iter().map(|h| h.until))
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
/// on, so two engines sharing a store can never both apply a decision based on the same state.
/// When someone else appended first (a person approving or aborting while a gate or the
/// deployer was at work), the engine catches up and decides the same result again on the new
/// state, so that a side effect already performed is recorded, not forgotten; a result that no
/// longer applies is dropped, and a deployment that can no longer be recorded because the stage
/// ended meanwhile is rolled back on the platform. Engines that share a store as replicas also
/// take leases ([`Engine::replica`]) so that they never both act on one stage.
#[derive(Debug, Clone)]
pub struct Engine {
    pipeline: Arc<Pipeline>,
    store: Arc<dyn EventStore>,
    deployer: Arc<dyn Deployer>,
    clock: Arc<dyn Clock>,
    max_actions: usize,
    replica: Option<ReplicaOptions>,
}

/// How an engine shares a store with other replicas (see [`crate::lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaOptions {
    /// This replica's identity as a lease holder.
    pub id: ReplicaId,
    /// How long a lease lasts unless renewed. While the engine works on a stage it renews the
    /// lease every third of this; a replica that dies is replaced this long after its last
    /// renewal at the latest.
    pub ttl: Duration,
    /// How often [`Engine::run_until_blocked`] looks again at a stage another replica holds.
    pub poll: Duration,
}

impl ReplicaOptions {
    /// Leases of `ttl`, polled every fifth of it.
    pub fn new(id: ReplicaId, ttl: Duration) -> Self {
        ReplicaOptions {
            id,
            ttl,
            poll: ttl / 5,
        }
    }
}

/// The most conflicting appends (another replica or a person appended first) one action is
/// re-decided for before `advance` gives up with the conflict.
const MAX_CONFLICT_RETRIES: usize = 16;

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
            replica: None,
        }
    }

    /// Makes this engine one replica among several sharing its store: before it runs a
    /// stage's gates or calls the deployer for it, it takes the lease on that (release, stage)
    /// and it appends with the lease as a fence, so no two replicas act on the same stage at
    /// once and a replica that has lost its lease records nothing. Fails if the store keeps no
    /// leases or the durations are unusable.
    pub fn replica(mut self, options: ReplicaOptions) -> Result<Self, EngineError> {
        if self.store.leases().is_none() {
            return Err(EngineError::InvalidReplica(format!(
                "the store {:?} keeps no leases",
                self.store
            )));
        }
        if options.ttl < Duration::from_millis(10) {
            return Err(EngineError::InvalidReplica(format!(
                "lease ttl {:?} is shorter than 10 ms",
                options.ttl
            )));
        }
        if options.poll.is_zero() || options.poll > options.ttl {
            return Err(EngineError::InvalidReplica(format!(
                "poll interval {:?} must be more than zero and at most the ttl {:?}",
                options.poll, options.ttl
            )));
        }
        self.replica = Some(options);
        Ok(self)
    }

    /// The replica options, when the engine runs as one replica among several.
    pub fn replica_options(&self) -> Option<&ReplicaOptions> {
        self.replica.as_ref()
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
        let state = match known {
            // Catch up from what the caller already holds instead of replaying the stream.
            Some(mut state) => {
                self.catch_up(&stream, &mut state).await?;
                state
            }
            None => self.state(id).await?,
        };
        let mut held = Vec::new();
        let result = self.advance_loop(id, &stream, state, &mut held).await;
        // Leases are held only while this call works; the next call (on any replica) takes
        // them again.
        if let Some(leases) = self.store.leases() {
            for lease in &held {
                if let Err(e) = leases.release(lease).await {
                    tracing::warn!(lease = %lease.key, error = %e, "could not release a lease; it will lapse");
                }
            }
        }
        result
    }

    async fn catch_up(
        &self,
        stream: &StreamId,
        state: &mut ReleaseState,
    ) -> Result<(), EngineError> {
        for r in self.store.read_from(stream, state.version).await? {
            apply_mut(state, &r.event);
        }
        Ok(())
    }

    async fn advance_loop(
        &self,
        id: &ReleaseId,
        stream: &StreamId,
        mut state: ReleaseState,
        held: &mut Vec<Lease>,
    ) -> Result<Progress, EngineError> {
        let mut appended = 0;
        for _ in 0..self.max_actions {
            let now = self.clock.now();
            let next = plan(&self.pipeline, &state, now);
            let mut held_elsewhere = Vec::new();
            let mut chosen = None;
            let mut fresh = false;
            for action in next.actions {
                let Some(options) = &self.replica else {
                    chosen = Some((action, None));
                    break;
                };
                let key = LeaseKey::new(*id, action.stage().clone());
                match self.lease_for(options, key, held, now).await? {
                    LeaseFor::Kept(lease) => {
                        chosen = Some((action, Some(lease)));
                        break;
                    }
                    LeaseFor::Fresh => {
                        fresh = true;
                        break;
                    }
                    LeaseFor::Busy(h) => held_elsewhere.push(h),
                }
            }
            if fresh {
                // Newly ours: another replica may have worked on it until now.
                self.catch_up(stream, &mut state).await?;
                continue;
            }
            let Some((action, lease)) = chosen else {
                return Ok(Progress {
                    state,
                    waiting: next.waiting,
                    appended,
                    held_elsewhere,
                });
            };
            // A deployment is recorded as begun before the deployer is called, so that the log
            // holds every attempt, even one whose outcome this process does not live to record.
            if let Action::Deploy { stage, step, .. } = &action {
                let intent = Command::BeginDeployment {
                    stage: stage.clone(),
                    step: *step,
                };
                let recorded = self
                    .record(stream, &mut state, &intent, lease.as_ref(), held)
                    .await?;
                if recorded == 0 {
                    // Dropped: the lease moved on, or after catching up the step is no longer
                    // due. Plan again.
                    continue;
                }
                appended += recorded;
            }
            let command = match &lease {
                Some(lease) => self.perform_leased(&state, action, lease, held).await?,
                None => self.perform(&state, action).await?,
            };
            appended += self
                .record(stream, &mut state, &command, lease.as_ref(), held)
                .await?;
        }
        Err(EngineError::Runaway(self.max_actions))
    }

    /// Decides `command` on the state and appends the events; returns how many. In replica
    /// mode a conflicting append (someone else appended to the stream first) is decided again
    /// on the caught-up state, so a side effect already performed is not forgotten, and a
    /// fenced one is dropped: the lease has moved on and its new holder will redo the work.
    async fn record(
        &self,
        stream: &StreamId,
        state: &mut ReleaseState,
        command: &Command,
        lease: Option<&Lease>,
        held: &mut Vec<Lease>,
    ) -> Result<usize, EngineError> {
        let mut conflicts = 0;
        loop {
            let fence = lease
                .and_then(|l| held.iter().find(|h| h.key == l.key))
                .cloned();
            let events = match decide(&self.pipeline, state, command, self.clock.now()) {
                Ok(events) => events,
                Err(refusal) if conflicts > 0 => {
                    tracing::warn!(%refusal, "after catching up, the action's result no longer applies; dropped");
                    self.compensate(state, command).await;
                    return Ok(0);
                }
                Err(refusal) => return Err(refusal.into()),
            };
            let expected = ExpectedVersion::Exact(state.version);
            let appended = match (&self.replica, &fence) {
                (Some(_), Some(fence)) => {
                    self.store
                        .append_fenced(stream, expected, &events, fence)
                        .await
                }
                _ => self.store.append(stream, expected, &events).await,
            };
            match appended {
                Ok(_) => {
                    log_events(&events);
                    for e in &events {
                        apply_mut(state, e);
                    }
                    return Ok(events.len());
                }
                Err(StoreError::Conflict { .. }) if conflicts < MAX_CONFLICT_RETRIES => {
                    conflicts += 1;
                    tracing::debug!(conflicts, "stream moved on while acting; deciding again");
                    self.catch_up(stream, state).await?;
                }
                Err(e @ StoreError::Fenced { .. }) if self.replica.is_some() => {
                    tracing::warn!(error = %e, "lease lost while acting; the result is dropped");
                    if let Some(l) = lease {
                        held.retain(|h| h.key != l.key);
                    }
                    self.catch_up(stream, state).await?;
                    return Ok(0);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A deployment that succeeded but can no longer be recorded (a person aborted, failed or
    /// rejected the stage while the deployer was at work) would leave traffic on a release the
    /// log says was never deployed: roll the stage back on the platform, so that the platform
    /// agrees with the log. When the stage is rolling back already, the planned rollback covers
    /// it.
    async fn compensate(&self, state: &ReleaseState, command: &Command) {
        let Command::RecordDeployment {
            stage,
            result: Ok(()),
            ..
        } = command
        else {
            return;
        };
        let status = state.status(stage.as_str());
        if !status.is_terminal() || status == StageStatus::Promoted {
            return;
        }
        let Some(release) = state.release.as_ref() else {
            return;
        };
        tracing::warn!(%stage, %status, "a deployment landed after the stage ended; rolling it back on the platform");
        let span = tracing::warn_span!("roll_back", stage = %stage);
        if let Err(e) = catch(self.deployer.roll_back(release, stage))
            .instrument(span)
            .await
        {
            tracing::error!(%stage, error = %e, "could not roll back a deployment the log does not hold");
        }
    }

    /// Makes sure this replica holds the lease on `key`: renews it when half its time has
    /// passed, takes it when free.
    async fn lease_for(
        &self,
        options: &ReplicaOptions,
        key: LeaseKey,
        held: &mut Vec<Lease>,
        now: DateTime<Utc>,
    ) -> Result<LeaseFor, EngineError> {
        let leases = self
            .store
            .leases()
            .ok_or(StoreError::Unsupported("leases"))?;
        let mine = held.iter().position(|l| l.key == key);
        if let Some(i) = mine {
            if let Some(lease) = held.get(i) {
                if add(now, options.ttl / 2) < lease.expires_at {
                    return Ok(LeaseFor::Kept(lease.clone()));
                }
            }
        }
        match leases.acquire(&key, &options.id, options.ttl).await? {
            Acquired::Granted(lease) => {
                let same = mine
                    .and_then(|i| held.get(i))
                    .is_some_and(|l| l.token == lease.token);
                held.retain(|l| l.key != key);
                held.push(lease.clone());
                Ok(if same {
                    LeaseFor::Kept(lease)
                } else {
                    tracing::debug!(lease = %key, token = lease.token, "lease taken");
                    LeaseFor::Fresh
                })
            }
            Acquired::HeldBy {
                holder, expires_at, ..
            } => {
                held.retain(|l| l.key != key);
                Ok(LeaseFor::Busy(HeldElsewhere {
                    stage: key.stage,
                    holder,
                    until: expires_at,
                }))
            }
        }
    }

    /// Performs `action` while renewing `lease` every third of its time, so that a long gate
    /// or a slow deployer keeps it.
    async fn perform_leased(
        &self,
        state: &ReleaseState,
        action: Action,
        lease: &Lease,
        held: &mut [Lease],
    ) -> Result<Command, EngineError> {
        let (Some(options), Some(leases)) = (&self.replica, self.store.leases()) else {
            return self.perform(state, action).await;
        };
        let current = std::sync::Mutex::new(lease.clone());
        let result = {
            let heartbeat = heartbeat(self.clock.as_ref(), leases, options, &current);
            let work = self.perform(state, action);
            futures::pin_mut!(work, heartbeat);
            match futures::future::select(work, heartbeat).await {
                futures::future::Either::Left((result, _)) => result,
                futures::future::Either::Right(((), work)) => work.await,
            }
        };
        let renewed = current
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for l in held.iter_mut() {
            if l.key == renewed.key && l.token == renewed.token {
                *l = renewed.clone();
            }
        }
        result
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
            let Some(mut at) = progress.next_wakeup() else {
                return Ok(progress);
            };
            if let (Some(options), false) = (&self.replica, progress.held_elsewhere.is_empty()) {
                at = at.min(add(self.clock.now(), options.poll));
            }
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

enum LeaseFor {
    /// Held by this replica since before: act.
    Kept(Lease),
    /// Just taken: catch up before acting.
    Fresh,
    /// Another replica holds it.
    Busy(HeldElsewhere),
}

/// Renews `current` every third of the ttl until a renewal fails or returns another token;
/// then stops renewing (the fenced append will be refused) and never completes.
async fn heartbeat(
    clock: &dyn Clock,
    leases: &dyn LeaseStore,
    options: &ReplicaOptions,
    current: &std::sync::Mutex<Lease>,
) {
    loop {
        clock.sleep(options.ttl / 3).await;
        let lease = current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match leases.acquire(&lease.key, &options.id, options.ttl).await {
            Ok(Acquired::Granted(renewed)) if renewed.token == lease.token => {
                *current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = renewed;
            }
            Ok(other) => {
                tracing::warn!(lease = %lease.key, answer = ?other, "lease lost while acting");
                break;
            }
            Err(e) => {
                // A transient store error: keep trying; the fence decides in the end.
                tracing::warn!(lease = %lease.key, error = %e, "could not renew a lease");
            }
        }
    }
    futures::future::pending::<()>().await
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
