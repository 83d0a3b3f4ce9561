//! The async engine: runs gates, calls the deployer, and appends what the state machine
//! decides. Runtime-agnostic and without background tasks: the host calls [`Engine::advance`]
//! whenever it likes (a request handler, a cron job, a queue consumer, a test).
//!
//! The parts:
//!
//! - `deployer`: the [`Deployer`] trait the host implements, and its [`DeployError`];
//! - `progress`: what engine calls return ([`Progress`], [`HeldElsewhere`]) and
//!   [`EngineError`];
//! - `submit`: registering releases and submitting principals' commands;
//! - `advance`: [`Engine::advance`] and [`Engine::run_until_blocked`], the plan → perform →
//!   record loop with its conflict handling;
//! - `perform`: performing one planned action (a round of gates, a deployment, a rollback);
//! - `replica`: [`ReplicaOptions`], leases and their renewal while acting.

use std::sync::Arc;

use crate::clock::Clock;
use crate::machine::{apply_mut, Event, ReleaseState};
use crate::pipeline::Pipeline;
use crate::release::ReleaseId;
use crate::store::{EventStore, StreamId};

mod advance;
mod deployer;
mod perform;
mod progress;
mod replica;
mod submit;

pub use deployer::{DeployError, DeployTarget, Deployer};
pub use progress::{EngineError, HeldElsewhere, Progress};
pub use replica::ReplicaOptions;

/// Drives releases through a pipeline.
///
/// Every change goes through [`decide`](crate::decide) and is appended with the stream version
/// it was decided on, so two engines sharing a store can never both apply a decision based on
/// the same state. When someone else appended first (a person approving or aborting while a
/// gate or the deployer was at work), the engine catches up and decides the same result again
/// on the new state, so that a side effect already performed is recorded, not forgotten; a
/// result that no longer applies is dropped, and a deployment that can no longer be recorded
/// because the stage ended meanwhile is rolled back on the platform. Engines that share a
/// store as replicas also take leases ([`Engine::replica`]) so that they never both act on one
/// stage.
#[derive(Debug, Clone)]
pub struct Engine {
    pipeline: Arc<Pipeline>,
    store: Arc<dyn EventStore>,
    deployer: Arc<dyn Deployer>,
    clock: Arc<dyn Clock>,
    max_actions: usize,
    replica: Option<ReplicaOptions>,
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
            replica: None,
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
