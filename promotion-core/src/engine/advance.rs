//! Advancing a release: plan what is due, take the stage's lease in replica mode, record a
//! deployment's intent, perform the action and record its result. A conflicting append is
//! decided again on the caught-up state; a result that no longer applies is dropped, and a
//! deployment that can no longer be recorded is rolled back on the platform.

use std::time::Duration;

use tracing::Instrument;

use super::deployer::{catch, Called, DeployTarget};
use super::replica::LeaseFor;
use super::{log_events, Engine, EngineError, Progress};
use crate::clock::{add, elapsed};
use crate::lease::{Lease, LeaseKey};
use crate::machine::{apply_mut, decide, plan, Action, Command, ReleaseState, StageStatus};
use crate::release::ReleaseId;
use crate::store::{ExpectedVersion, StoreError, StreamId};

/// The most conflicting appends (another replica or a person appended first) one action is
/// re-decided for before `advance` gives up with the conflict.
const MAX_CONFLICT_RETRIES: usize = 16;

impl Engine {
    /// Takes the release as far as its gates, approvals and clock allow, and says what it
    /// waits for. Never sleeps: a phase sampled every five minutes returns
    /// [`Waiting::Until`](crate::Waiting::Until) and continues when `advance` is called again
    /// after that time.
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
                None => self.perform(&state, action, None).await?,
            };
            let Some(command) = command else {
                // The lease lapsed before a deployer call, or the platform refused its fencing
                // token: drop the lease and plan again (taking it afresh catches up first).
                if let Some(l) = &lease {
                    held.retain(|h| h.key != l.key);
                }
                continue;
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
                    self.compensate(state, command, lease.map(|l| l.token))
                        .await;
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
    async fn compensate(&self, state: &ReleaseState, command: &Command, token: Option<u64>) {
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
        let mut target = DeployTarget::new(release, stage);
        target.fencing_token = token;
        match catch(self.deployer.roll_back(&target))
            .instrument(span)
            .await
        {
            Called::Done(Ok(())) => {}
            Called::Done(Err(e)) | Called::Fenced(e) => {
                tracing::error!(%stage, error = %e, "could not roll back a deployment the log does not hold");
            }
        }
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
}
