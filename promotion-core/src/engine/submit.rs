//! Commands from outside the engine: registering a release, reading its state, and submitting
//! a principal's [`HostCommand`] (at most once per request id when the host gives one).

use super::{fold_stream, log_events, Engine, EngineError};
use crate::machine::{decide, Actor, Command, Event, EventBody, HostCommand, ReleaseState};
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
    /// nothing in the release's stream, so retrying a refused request decides it afresh (a
    /// refusal about who asked is recorded in the security stream, as by [`Engine::submit`]).
    pub async fn submit_once(
        &self,
        id: &ReleaseId,
        request: &crate::RequestId,
        command: HostCommand,
    ) -> Result<Vec<Event>, EngineError> {
        let host = command;
        let command = Command::from(host.clone());
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
        let mut events = self
            .decide_host(id, &state, &host, command, Some(request))
            .await?;
        for e in &mut events {
            e.request = Some(request.clone());
        }
        self.store
            .append(&stream, ExpectedVersion::Exact(state.version), &events)
            .await?;
        log_events(&events);
        Ok(events)
    }

    /// Submits a principal's command (approve, reject, override, judge, start, abort, roll
    /// back) and returns the events appended, or the typed refusal. Only a [`HostCommand`] is
    /// accepted: the records only the engine makes (gate rounds, deployments, ticks) cannot be
    /// submitted from outside.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use promotion_core::testing::{sample_release, RecordingDeployer, ScriptedGate};
    /// # use promotion_core::{Engine, HostCommand, InMemoryStore, ManualClock, Pipeline,
    /// #                      Principal, StageSpec, StageStatus, ApprovalPolicy, ApprovalRule};
    /// # futures::executor::block_on(async {
    /// let pipeline = Pipeline::builder("shop", "1")
    ///     .stage(StageSpec::new("prod").approval(ApprovalPolicy::new(ApprovalRule::quorum("sre", 1)?)))
    ///     .build()?;
    /// # let clock = Arc::new(ManualClock::auto_advancing("2026-11-26T09:00:00Z".parse()?));
    /// let engine = Engine::new(pipeline, Arc::new(InMemoryStore::new()),
    ///                          Arc::new(RecordingDeployer::new()), clock);
    /// let id = engine.register(sample_release(), &Principal::new("ci-bot", ["ci"])?).await?;
    /// engine.advance(&id).await?;
    /// let alice = Principal::new("alice", ["sre"])?;
    /// engine.submit(&id, HostCommand::approve("prod", &alice, "looks good")?).await?;
    /// assert_eq!(engine.run_until_blocked(&id).await?.status("prod"), StageStatus::Promoted);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn submit(
        &self,
        id: &ReleaseId,
        command: HostCommand,
    ) -> Result<Vec<Event>, EngineError> {
        let state = self.state(id).await?;
        let events = self
            .decide_host(id, &state, &command, Command::from(command.clone()), None)
            .await?;
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

    /// Decides a principal's command. A refusal about who asked
    /// ([`Refusal::is_about_who`](crate::Refusal::is_about_who)) is recorded in the security
    /// stream before it is returned: who tried what, and why it was refused. Recording it
    /// never turns the refusal into anything else; when the store cannot take it, the
    /// failure is logged and the refusal returned all the same.
    async fn decide_host(
        &self,
        id: &ReleaseId,
        state: &ReleaseState,
        host: &HostCommand,
        command: Command,
        request: Option<&crate::RequestId>,
    ) -> Result<Vec<Event>, EngineError> {
        let now = self.clock.now();
        match decide(&self.pipeline, state, &command, now) {
            Ok(events) => Ok(events),
            Err(refusal) if refusal.is_about_who() => {
                let attempt = Event {
                    at: now,
                    actor: Actor::principal(host.principal()),
                    request: request.cloned(),
                    body: EventBody::AttemptRefused {
                        release: *id,
                        stage: host.stage().clone(),
                        action: host.action().to_owned(),
                        principal: host.principal().clone(),
                        refusal: refusal.to_string(),
                    },
                };
                let recorded = self
                    .store
                    .append(&StreamId::security(), ExpectedVersion::Any, &[attempt])
                    .await;
                match recorded {
                    Ok(_) => tracing::warn!(
                        release = %id,
                        principal = %host.principal().id,
                        action = host.action(),
                        %refusal,
                        "refused attempt recorded in the security stream"
                    ),
                    Err(error) => tracing::error!(
                        release = %id,
                        principal = %host.principal().id,
                        %refusal,
                        %error,
                        "a refused attempt could not be recorded in the security stream"
                    ),
                }
                Err(refusal.into())
            }
            Err(refusal) => Err(refusal.into()),
        }
    }
}
