//! Performing one planned action: starting or ticking a stage, evaluating a round of gates
//! concurrently (each under its [`GatePolicy`](crate::GatePolicy) as a layer: a timeout on
//! each attempt, within retries), deploying a step or rolling back. Each yields the command
//! that records its result, or nothing when the platform refused the call's fencing token
//! (the result is dropped; the replica holding the lease records the stage's outcome).

use futures::future::join_all;
use tracing::Instrument;

use super::deployer::{catch, Called, DeployTarget};
use super::{Engine, EngineError};
use crate::gate::{GateContext, GateSpec, PhaseId, Verdict};
use crate::layer::GateLayer;
use crate::machine::{Action, Command, GateResult, Outcome, Refusal, ReleaseState};
use crate::name::{GateName, StageName};
use crate::release::Release;

/// The result to record for a deployer call, or `None` when the platform refused the call's
/// fencing token. A deployer that says "fenced" to an unfenced call (a single engine) has
/// failed: that is recorded like any failure.
fn unfenced(called: Called, fencing_token: Option<u64>) -> Option<Result<(), String>> {
    match called {
        Called::Done(result) => Some(result),
        Called::Fenced(why) if fencing_token.is_some() => {
            tracing::warn!(token = fencing_token, %why, "the platform refused this replica's fencing token: another replica holds the stage; the call's result is dropped");
            None
        }
        Called::Fenced(why) => Some(Err(why)),
    }
}

impl Engine {
    /// Performs `action`; `fencing_token` is the stage lease's, handed to the deployer.
    pub(super) async fn perform(
        &self,
        state: &ReleaseState,
        action: Action,
        fencing_token: Option<u64>,
    ) -> Result<Option<Command>, EngineError> {
        let release = state
            .release
            .as_ref()
            .ok_or(EngineError::Refused(Refusal::NotRegistered))?;
        let target = |stage| {
            let target = DeployTarget::new(release, stage);
            match fencing_token {
                Some(token) => target.fenced_by(token),
                None => target,
            }
        };
        Ok(Some(match action {
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
                let called = catch(self.deployer.deploy(&target(&stage), weight))
                    .instrument(span)
                    .await;
                let Some(result) = unfenced(called, fencing_token) else {
                    return Ok(None);
                };
                Command::RecordDeployment {
                    stage,
                    step,
                    result,
                }
            }
            Action::RollBack { stage } => {
                let span = tracing::warn_span!("roll_back", stage = %stage);
                let called = catch(self.deployer.roll_back(&target(&stage)))
                    .instrument(span)
                    .await;
                let Some(result) = unfenced(called, fencing_token) else {
                    return Ok(None);
                };
                Command::RecordRollback { stage, result }
            }
        }))
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
        // The policy is a layer: a timeout around each attempt, within retries after errors.
        let (result, attempts) = spec
            .policy
            .layer(spec.gate.clone())
            .evaluate_counted(&ctx)
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
