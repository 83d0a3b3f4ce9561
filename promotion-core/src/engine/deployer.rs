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

pub(super) async fn catch<F>(f: F) -> Result<(), String>
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
