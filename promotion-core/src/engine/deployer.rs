//! The deployer: the host's side of deployments and rollbacks, and how the engine calls it
//! (a failure or a panic becomes the error message recorded in the log).

use std::fmt;
use std::panic::AssertUnwindSafe;

use async_trait::async_trait;
use futures::FutureExt;

use crate::name::StageName;
use crate::pipeline::Percent;
use crate::release::Release;

/// Deploys releases onto the host's platform. The host implements it.
///
/// Before each call to [`deploy`](Deployer::deploy) the engine records a
/// [`DeploymentStarted`](crate::EventBody::DeploymentStarted) event, so the log holds every
/// attempt. Calls may be repeated (after a crash, or by a second replica: the log then shows a
/// second attempt before any outcome), so implementations should be idempotent: deploying the
/// weight already deployed is a no-op.
///
/// **Fencing.** With several replicas, a replica can be paused (a GC pause, SIGSTOP, a VM
/// migration) past its lease while inside a call, and resume after another replica has taken
/// the stage over. The engine checks its lease immediately before each call and never calls
/// past it, but it cannot stop a call already made. So each call carries the lease's
/// [`fencing_token`](DeployTarget::fencing_token), which grows every time the stage's lease
/// changes hands: a platform (or the deployer in front of it) that remembers the highest token
/// it has seen per stage refuses a lower one with [`DeployError::fenced`], and the engine then
/// drops the call's result instead of recording it.
#[async_trait]
pub trait Deployer: Send + Sync + fmt::Debug {
    /// Routes `weight` of the stage's traffic to the target's release.
    async fn deploy(&self, target: &DeployTarget<'_>, weight: Percent) -> Result<(), DeployError>;
    /// Restores the stage to what ran before the target's release.
    async fn roll_back(&self, target: &DeployTarget<'_>) -> Result<(), DeployError>;
}

/// What a deployer call is about: the release, the stage, and the fence that lets the platform
/// refuse a caller that has lost the stage. New fields may be added; build one with
/// [`DeployTarget::new`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct DeployTarget<'a> {
    /// The release to deploy or roll back.
    pub release: &'a Release,
    /// The stage it is deployed into.
    pub stage: &'a StageName,
    /// The stage lease's fencing token when the engine runs as one replica of several
    /// ([`Engine::replica`](crate::Engine::replica)); `None` for a single engine. Monotonic per
    /// (release, stage): a call with a lower token than one already seen comes from a replica
    /// that lost the lease and must be refused with [`DeployError::fenced`].
    pub fencing_token: Option<u64>,
}

impl<'a> DeployTarget<'a> {
    /// A target without a fencing token (a single engine, or a host calling its deployer
    /// itself).
    pub fn new(release: &'a Release, stage: &'a StageName) -> Self {
        DeployTarget {
            release,
            stage,
            fencing_token: None,
        }
    }
    /// The same target, fenced by `token`.
    pub fn fenced_by(mut self, token: u64) -> Self {
        self.fencing_token = Some(token);
        self
    }
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
    fenced: bool,
}

impl DeployError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        DeployError {
            message: message.into(),
            source: None,
            fenced: false,
        }
    }
    /// The platform refused the call because its fencing token is lower than one it has
    /// already seen for the stage: the caller lost the stage to another replica. The engine
    /// drops such a result (the replica that holds the lease records the stage's outcome)
    /// instead of recording a failed deployment.
    pub fn fenced(message: impl Into<String>) -> Self {
        DeployError {
            fenced: true,
            ..DeployError::new(message)
        }
    }
    /// Whether the platform refused the call as coming from a stale lease holder.
    pub fn is_fenced(&self) -> bool {
        self.fenced
    }
}

/// How a deployer call ended, as the engine sees it.
pub(super) enum Called {
    /// Succeeded, or failed with this message (recorded).
    Done(Result<(), String>),
    /// The platform refused the call's fencing token: the result is dropped.
    Fenced(String),
}

pub(super) async fn catch<F>(f: F) -> Called
where
    F: std::future::Future<Output = Result<(), DeployError>>,
{
    match AssertUnwindSafe(f).catch_unwind().await {
        Ok(Ok(())) => Called::Done(Ok(())),
        Ok(Err(e)) if e.is_fenced() => Called::Fenced(crate::gate::report_chain(&e)),
        Ok(Err(e)) => Called::Done(Err(crate::gate::report_chain(&e))),
        Err(p) => Called::Done(Err(format!(
            "deployer {}",
            crate::layer::panic_message(p.as_ref())
        ))),
    }
}
