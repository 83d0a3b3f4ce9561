//! The deployers of the `promote` command: a command per rollout step, or record only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use promotion_config::DeploySpec;
use promotion_core::{DeployError, Deployer, Percent, Release, StageName};

/// Runs the service's deploy command per rollout step and its rollback command per rollback,
/// with the release and the step in environment variables:
///
/// `PROMOTION_ACTION` (`deploy` or `rollback`), `PROMOTION_STAGE`, `PROMOTION_WEIGHT` (1–100;
/// `0` for a rollback), `PROMOTION_RELEASE` (the release id), `PROMOTION_RELEASE_NAME`,
/// `PROMOTION_REPOSITORY`, `PROMOTION_COMMIT`, `PROMOTION_PIPELINE`, `PROMOTION_ARTIFACTS`
/// (JSON: `[{"name", "digest", "uri"}]`), plus the service's `env`. The command runs in the
/// service file's directory; its output goes to standard error. A non-zero exit, a signal or
/// the timeout is a failed deployment, recorded by the engine.
#[derive(Debug, Clone)]
pub(crate) struct CommandDeployer {
    command: Vec<String>,
    rollback: Option<Vec<String>>,
    timeout: Duration,
    env: BTreeMap<String, String>,
    dir: PathBuf,
    pipeline: String,
}

/// Records steps as deployed and runs nothing (`deploy = "none"`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordOnly;

/// The deployer a service file asks for.
pub(crate) fn for_spec(spec: &DeploySpec, dir: PathBuf, pipeline: &str) -> Box<dyn Deployer> {
    match spec {
        DeploySpec::Command {
            command,
            rollback,
            timeout,
            env,
        } => Box::new(CommandDeployer {
            command: command.clone(),
            rollback: rollback.clone(),
            timeout: *timeout,
            env: env.clone(),
            dir,
            pipeline: pipeline.to_owned(),
        }),
        _ => Box::new(RecordOnly),
    }
}

#[async_trait]
impl Deployer for RecordOnly {
    async fn deploy(&self, r: &Release, stage: &StageName, w: Percent) -> Result<(), DeployError> {
        eprintln!("  deploy (record only): {} to {stage} at {w}", r.name());
        Ok(())
    }
    async fn roll_back(&self, r: &Release, stage: &StageName) -> Result<(), DeployError> {
        eprintln!("  roll back (record only): {} in {stage}", r.name());
        Ok(())
    }
}

impl CommandDeployer {
    async fn run(
        &self,
        argv: &[String],
        action: &str,
        release: &Release,
        stage: &StageName,
        weight: u8,
    ) -> Result<(), DeployError> {
        let Some((program, args)) = argv.split_first() else {
            return Err(DeployError::new("the deploy command is empty"));
        };
        let artifacts: Vec<serde_json::Value> = release
            .artifacts()
            .iter()
            .map(|a| {
                serde_json::json!({ "name": a.name, "digest": a.digest.to_string(), "uri": a.uri })
            })
            .collect();
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(&self.dir)
            .envs(&self.env)
            .env("PROMOTION_ACTION", action)
            .env("PROMOTION_STAGE", stage.as_str())
            .env("PROMOTION_WEIGHT", weight.to_string())
            .env("PROMOTION_RELEASE", release.id().to_string())
            .env("PROMOTION_RELEASE_NAME", release.name())
            .env("PROMOTION_REPOSITORY", &release.source().repository)
            .env("PROMOTION_COMMIT", &release.source().commit)
            .env("PROMOTION_PIPELINE", &self.pipeline)
            .env(
                "PROMOTION_ARTIFACTS",
                serde_json::Value::Array(artifacts).to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let shown = argv.join(" ");
        eprintln!("  {action}: {shown} ({stage} at {weight}%)");
        let child = cmd
            .spawn()
            .map_err(|e| DeployError::new(format!("cannot run `{shown}`: {e}")))?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Err(DeployError::new(format!("`{shown}`: {e}"))),
            Err(_) => {
                return Err(DeployError::new(format!(
                    "`{shown}` did not finish within {}",
                    promotion_config::format_duration(self.timeout)
                )))
            }
        };
        let out = String::from_utf8_lossy(&output.stdout);
        let err = String::from_utf8_lossy(&output.stderr);
        for line in out.lines().chain(err.lines()) {
            eprintln!("    | {line}");
        }
        if output.status.success() {
            Ok(())
        } else {
            let last = err
                .lines()
                .chain(out.lines())
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("");
            Err(DeployError::new(format!(
                "`{shown}` {}{}",
                match output.status.code() {
                    Some(c) => format!("exited with code {c}"),
                    None => "was killed by a signal".to_owned(),
                },
                if last.is_empty() {
                    String::new()
                } else {
                    format!(": {last}")
                }
            )))
        }
    }
}

#[async_trait]
impl Deployer for CommandDeployer {
    async fn deploy(&self, r: &Release, stage: &StageName, w: Percent) -> Result<(), DeployError> {
        self.run(&self.command, "deploy", r, stage, w.get()).await
    }
    async fn roll_back(&self, r: &Release, stage: &StageName) -> Result<(), DeployError> {
        let argv = self.rollback.as_ref().unwrap_or(&self.command);
        self.run(argv, "rollback", r, stage, 0).await
    }
}
