//! The deployers of the `promote` command: a command per rollout step, or record only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use promotion_config::DeploySpec;
use promotion_core::{DeployError, DeployTarget, Deployer, Percent};

/// Runs the service's deploy command per rollout step and its rollback command per rollback,
/// with the release and the step in environment variables:
///
/// `PROMOTION_ACTION` (`deploy` or `rollback`), `PROMOTION_STAGE`, `PROMOTION_WEIGHT` (1–100;
/// `0` for a rollback), `PROMOTION_RELEASE` (the release id), `PROMOTION_RELEASE_NAME`,
/// `PROMOTION_REPOSITORY`, `PROMOTION_COMMIT`, `PROMOTION_PIPELINE`, `PROMOTION_ARTIFACTS`
/// (JSON: `[{"name", "digest", "uri"}]`), `PROMOTION_FENCING_TOKEN` when the engine runs as
/// one of several replicas (see [`DeployTarget`]), plus the service's `env`. The command runs
/// in the service file's directory; its output goes to standard error. A non-zero exit, a
/// signal or the timeout is a failed deployment, recorded by the engine — except exit code
/// 75 (`EX_TEMPFAIL`) on a fenced call: the command refused the fencing token as stale (it
/// has seen a higher one for the stage), and the engine drops the call's result.
#[derive(Debug, Clone)]
pub(crate) struct CommandDeployer {
    command: Vec<String>,
    rollback: Option<Vec<String>>,
    timeout: Duration,
    env: BTreeMap<String, String>,
    dir: PathBuf,
    pipeline: String,
}

/// The exit code by which a deploy command says "this fencing token is stale".
pub(crate) const EXIT_FENCED: i32 = 75;

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
    async fn deploy(&self, target: &DeployTarget<'_>, w: Percent) -> Result<(), DeployError> {
        let (r, stage) = (target.release, target.stage);
        eprintln!("  deploy (record only): {} to {stage} at {w}", r.name());
        Ok(())
    }
    async fn roll_back(&self, target: &DeployTarget<'_>) -> Result<(), DeployError> {
        let (r, stage) = (target.release, target.stage);
        eprintln!("  roll back (record only): {} in {stage}", r.name());
        Ok(())
    }
}

impl CommandDeployer {
    async fn run(
        &self,
        argv: &[String],
        action: &str,
        target: &DeployTarget<'_>,
        weight: u8,
    ) -> Result<(), DeployError> {
        let (release, stage) = (target.release, target.stage);
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
            .envs(
                target
                    .fencing_token
                    .map(|t| ("PROMOTION_FENCING_TOKEN", t.to_string())),
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
        } else if output.status.code() == Some(EXIT_FENCED) && target.fencing_token.is_some() {
            Err(DeployError::fenced(format!(
                "`{shown}` refused fencing token {}: another replica holds {stage}",
                target.fencing_token.unwrap_or_default()
            )))
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
    async fn deploy(&self, target: &DeployTarget<'_>, w: Percent) -> Result<(), DeployError> {
        self.run(&self.command, "deploy", target, w.get()).await
    }
    async fn roll_back(&self, target: &DeployTarget<'_>) -> Result<(), DeployError> {
        let argv = self.rollback.as_ref().unwrap_or(&self.command);
        self.run(argv, "rollback", target, 0).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promotion_core::testing::sample_release;
    use promotion_core::StageName;

    /// A deploy command that, like a fencing platform, refuses any token but the newest (7).
    fn refusing_all_but_seven() -> CommandDeployer {
        CommandDeployer {
            command: vec![
                "sh".into(),
                "-c".into(),
                r#"if [ -n "$PROMOTION_FENCING_TOKEN" ] && [ "$PROMOTION_FENCING_TOKEN" -lt 7 ]; then echo "stale token $PROMOTION_FENCING_TOKEN" >&2; exit 75; fi"#.into(),
            ],
            rollback: None,
            timeout: Duration::from_secs(30),
            env: BTreeMap::new(),
            dir: std::env::temp_dir(),
            pipeline: "shop".into(),
        }
    }

    fn deploy(deployer: &CommandDeployer, token: Option<u64>) -> Result<(), DeployError> {
        let release = sample_release();
        let stage = StageName::new("prod").unwrap();
        let mut target = DeployTarget::new(&release, &stage);
        target.fencing_token = token;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(deployer.deploy(&target, Percent::new(100).unwrap()))
    }

    #[test]
    fn the_command_sees_the_fencing_token_and_exit_75_is_a_fenced_refusal() {
        let d = refusing_all_but_seven();
        let stale = deploy(&d, Some(6)).unwrap_err();
        assert!(stale.is_fenced(), "{stale}");
        assert!(
            stale.to_string().contains("refused fencing token 6"),
            "{stale}"
        );
        assert!(deploy(&d, Some(7)).is_ok());
        assert!(
            deploy(&d, None).is_ok(),
            "an unfenced call has no token to refuse"
        );
    }

    #[test]
    fn exit_75_without_a_token_is_an_ordinary_failure() {
        let mut d = refusing_all_but_seven();
        d.command = vec!["sh".into(), "-c".into(), "exit 75".into()];
        let failed = deploy(&d, None).unwrap_err();
        assert!(!failed.is_fenced());
        assert!(
            failed.to_string().contains("exited with code 75"),
            "{failed}"
        );
    }
}
