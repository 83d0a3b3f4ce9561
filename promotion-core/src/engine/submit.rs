//! Commands from outside the engine: registering a release, reading its state, and submitting
//! a principal's command (at most once per request id when the host gives one), with a
//! convenience method per command.

use super::{fold_stream, log_events, Engine, EngineError};
use crate::machine::{decide, Command, Event, ReleaseState};
use crate::name::{GateName, StageName};
use crate::principal::Principal;
use crate::release::{Release, ReleaseId};
use crate::store::{ExpectedVersion, StreamId};

impl Engine {
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
}
