//! The [`ProcessGate`] at evaluation time: the command line and environment it runs with, the
//! verdict from the exit status, and the evidence (command, exit, duration, output tails).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::pin::pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use promotion_core::{Evidence, Gate, GateContext, GateError, GateKind, PhaseId, Verdict};
use tokio::process::{Child, Command};

use crate::secrets::{Secret, SecretSource};

use super::{
    pump, Ending, GroupGuard, OnTimeout, Piece, ProcessGateBuilder, Redactor, StreamCapture,
    Supervised, WorkingDir, DEFAULT_TAIL_BYTES, DEFAULT_TIMEOUT, KILL_GRACE, SUMMARY_COMMAND_CHARS,
    SUMMARY_STDERR_CHARS,
};

/// Runs a command as an isolated runner; passes when it exits with an accepted code.
///
/// See the [module documentation](super) for isolation, parameters, secrets, timeouts and the
/// evidence recorded.
///
/// ```
/// use std::time::Duration;
/// use promotion_core::testing::GateProbe;
/// use promotion_core::Verdict;
/// use promotion_gates::process::{MemorySecrets, ProcessGate};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let gate = ProcessGate::builder("sh")
///     .name("smoke")
///     .args([
///         "-c",
///         r#"echo "checking $1 in $PROMOTION_STAGE with $DEPLOY_TOKEN"; test -n "$DEPLOY_TOKEN""#,
///         "sh",
///         "{region}",
///     ])
///     .param("region", "eu-west-1")
///     .secret("DEPLOY_TOKEN")
///     .secret_source(MemorySecrets::new().with("DEPLOY_TOKEN", "tok-3f9a"))
///     .timeout(Duration::from_secs(30))
///     .build()?;
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let verdict = rt.block_on(GateProbe::new().stage("canary").evaluate(&gate))?;
/// assert!(matches!(verdict, Verdict::Pass(_)));
/// let ev = verdict.evidence();
/// assert_eq!(ev.facts["exit_code"], "0");
/// assert_eq!(
///     ev.data["stdout"]["tail"],
///     "checking eu-west-1 in canary with [REDACTED:DEPLOY_TOKEN]\n"
/// );
/// assert!(!serde_json::to_string(ev)?.contains("tok-3f9a"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ProcessGate {
    pub(super) name: String,
    pub(super) kind: GateKind,
    pub(super) program: String,
    pub(super) args: Vec<Vec<Piece>>,
    pub(super) working_dir: WorkingDir,
    pub(super) allow_env: BTreeSet<String>,
    pub(super) env: BTreeMap<String, String>,
    pub(super) params: BTreeMap<String, String>,
    pub(super) secrets: BTreeMap<String, String>,
    pub(super) secret_source: Option<Arc<dyn SecretSource>>,
    pub(super) accepted: BTreeSet<i32>,
    pub(super) timeout: Duration,
    pub(super) on_timeout: OnTimeout,
    pub(super) tail_bytes: usize,
}

impl ProcessGate {
    /// Starts configuring a gate that runs `program` (a path, or a name looked up on the
    /// child's `PATH`).
    pub fn builder(program: impl Into<String>) -> ProcessGateBuilder {
        ProcessGateBuilder {
            name: None,
            kind: GateKind::Automated,
            program: program.into(),
            args: Vec::new(),
            working_dir: WorkingDir::Temporary,
            allow_env: BTreeSet::from(["PATH".to_owned()]),
            env: Vec::new(),
            params: Vec::new(),
            secrets: Vec::new(),
            secret_source: None,
            accepted: BTreeSet::from([0]),
            timeout: DEFAULT_TIMEOUT,
            on_timeout: OnTimeout::Error,
            tail_bytes: DEFAULT_TAIL_BYTES,
        }
    }
    /// The program it runs.
    pub fn program(&self) -> &str {
        &self.program
    }
    /// The working-directory policy.
    pub fn working_dir(&self) -> &WorkingDir {
        &self.working_dir
    }
    /// The timeout, in real time.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn resolve_secrets(&self) -> Result<Vec<(String, Secret)>, GateError> {
        let mut out = Vec::with_capacity(self.secrets.len());
        if self.secrets.is_empty() {
            return Ok(out);
        }
        let Some(source) = &self.secret_source else {
            return Err(GateError::Misconfigured(format!(
                "process gate `{}`: secrets are configured but no secret source is set",
                self.name
            )));
        };
        for (env, name) in &self.secrets {
            let value = source.secret(name).await?;
            if value.expose().contains('\0') {
                return Err(GateError::Misconfigured(format!(
                    "process gate `{}`: secret `{name}` contains a NUL byte and cannot be passed as environment variable `{env}`",
                    self.name
                )));
            }
            out.push((env.clone(), value));
        }
        Ok(out)
    }

    fn render_args(&self, values: &BTreeMap<&str, &str>) -> Result<Vec<String>, GateError> {
        self.args
            .iter()
            .enumerate()
            .map(|(i, pieces)| {
                let mut s = String::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => s.push_str(t),
                        Piece::Param(n) => match values.get(n.as_str()) {
                            Some(v) => s.push_str(v),
                            None => {
                                return Err(GateError::Misconfigured(format!(
                                "process gate `{}`: argument {} uses unknown placeholder `{{{n}}}`",
                                self.name,
                                i + 1
                            )))
                            }
                        },
                    }
                }
                Ok(s)
            })
            .collect()
    }

    fn environment(
        &self,
        builtins: &[(&'static str, String)],
        secrets: &[(String, Secret)],
    ) -> BTreeMap<String, OsString> {
        let mut env = BTreeMap::new();
        for name in &self.allow_env {
            if let Some(v) = std::env::var_os(name) {
                env.insert(name.clone(), v);
            }
        }
        for (n, v) in self.env.iter().chain(&self.params) {
            env.insert(n.clone(), OsString::from(v));
        }
        for (n, v) in builtins {
            env.insert((*n).to_owned(), OsString::from(v));
        }
        for (n, v) in secrets {
            env.insert(n.clone(), OsString::from(v.expose()));
        }
        env
    }

    fn spawn(
        &self,
        args: &[String],
        env: &BTreeMap<String, OsString>,
        dir: &Path,
        shown: &Shown,
    ) -> Result<Child, GateError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .env_clear()
            .envs(env)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        cmd.spawn().map_err(|e| {
            let why = match e.kind() {
                io::ErrorKind::NotFound => {
                    "not found (a bare name is looked up on the PATH passed to the child)"
                        .to_owned()
                }
                io::ErrorKind::PermissionDenied => "is not executable (permission denied)".into(),
                _ => format!("could not be started: {e}"),
            };
            GateError::Misconfigured(format!(
                "process gate `{}`: command `{}` {why} (working directory {})",
                shown.gate,
                shown.program,
                dir.display()
            ))
        })
    }

    async fn supervise(
        &self,
        mut child: Child,
        mut out: StreamCapture,
        mut err: StreamCapture,
        shown: &Shown,
    ) -> Result<Supervised, GateError> {
        let started = Instant::now();
        let Some(pgid) = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .filter(|&id| id > 1)
        else {
            return Err(GateError::other(format!(
                "process gate `{}`: `{}` started without a usable process id",
                shown.gate, shown.program
            )));
        };
        let guard = GroupGuard::new(Pid::from_raw(pgid));
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(GateError::other(format!(
                "process gate `{}`: the output pipes of `{}` were not set up",
                shown.gate, shown.program
            )));
        };
        let leftovers = AtomicBool::new(false);
        let io_error = |stream: &str, e: io::Error| GateError::Other {
            message: format!(
                "process gate `{}`: reading {stream} of `{}` failed",
                shown.gate, shown.program
            ),
            source: Some(Box::new(e)),
        };
        let ending = {
            let work = async {
                tokio::join!(pump(stdout, &mut out), pump(stderr, &mut err), async {
                    let status = child.wait().await;
                    // The main process is gone: whatever it left in its group goes too.
                    leftovers.store(guard.sweep(), Ordering::Relaxed);
                    status
                })
            };
            let mut work = pin!(work);
            match tokio::time::timeout(self.timeout, work.as_mut()).await {
                Ok((o, e, status)) => {
                    o.map_err(|e| io_error("stdout", e))?;
                    e.map_err(|e| io_error("stderr", e))?;
                    let status = status.map_err(|e| GateError::Other {
                        message: format!(
                            "process gate `{}`: waiting for `{}` failed",
                            shown.gate, shown.program
                        ),
                        source: Some(Box::new(e)),
                    })?;
                    Ending::Exited(status)
                }
                Err(_elapsed) => {
                    guard.kill();
                    let closed = tokio::time::timeout(KILL_GRACE, work.as_mut())
                        .await
                        .is_ok();
                    Ending::TimedOut {
                        output_closed: closed,
                    }
                }
            }
        };
        let duration = started.elapsed();
        // Anything still running is killed when `child` and `guard` are dropped.
        Ok(Supervised {
            ending,
            duration,
            leftovers: leftovers.load(Ordering::Relaxed),
            stdout: out.finish(),
            stderr: err.finish(),
        })
    }

    fn verdict(
        &self,
        ctx: &GateContext<'_>,
        run: Supervised,
        shown: &Shown,
        env_names: Vec<String>,
        secret_env: Vec<String>,
    ) -> Result<Verdict, GateError> {
        let took = format_duration(run.duration);
        let cmd = shorten(&shown.command_line, SUMMARY_COMMAND_CHARS);
        let last_err = last_line(&run.stderr.tail)
            .map(|l| format!("; last stderr line: {}", shorten(&l, SUMMARY_STDERR_CHARS)))
            .unwrap_or_default();
        let mut facts: Vec<(&str, String)> = Vec::new();
        let (passed, status, summary) = match run.ending {
            Ending::Exited(status) => match (status.code(), status.signal()) {
                (Some(code), _) => {
                    facts.push(("exit_code", code.to_string()));
                    let ok = self.accepted.contains(&code);
                    let summary = if ok {
                        format!("`{cmd}` exited with code {code} after {took}")
                    } else {
                        format!(
                            "`{cmd}` exited with code {code}, expected {}, after {took}{last_err}",
                            self.expected()
                        )
                    };
                    (ok, serde_json::json!({ "exit_code": code }), summary)
                }
                (None, Some(sig)) => {
                    let name = signal_name(sig);
                    facts.push(("signal", name.clone()));
                    (
                        false,
                        serde_json::json!({
                            "signal": sig,
                            "signal_name": name,
                            "core_dumped": status.core_dumped(),
                        }),
                        format!("`{cmd}` was killed by signal {name} after {took}{last_err}"),
                    )
                }
                (None, None) => (
                    false,
                    serde_json::json!({ "unknown": status.to_string() }),
                    format!("`{cmd}` ended without an exit code or signal ({status})"),
                ),
            },
            Ending::TimedOut { output_closed } => {
                let limit = format_duration(self.timeout);
                tracing::warn!(
                    gate = %shown.gate,
                    command = %cmd,
                    timeout = %limit,
                    output_closed,
                    "process gate: no exit within the timeout; process group killed"
                );
                if self.on_timeout == OnTimeout::Error {
                    return Err(GateError::TimedOut(self.timeout));
                }
                facts.push(("timed_out", "true".to_owned()));
                let not_closed = if output_closed {
                    ""
                } else {
                    "; its output stayed open (a process outside its group?)"
                };
                (
                    false,
                    serde_json::json!({ "timed_out": true, "output_closed": output_closed }),
                    format!("`{cmd}` did not finish within {limit}; its process group was killed{not_closed}"),
                )
            }
        };
        tracing::debug!(gate = %shown.gate, passed, %summary, "process gate finished");
        let working_dir = match &self.working_dir {
            WorkingDir::Temporary => serde_json::json!({ "policy": "temporary" }),
            WorkingDir::Fixed(p) => {
                serde_json::json!({ "policy": "fixed", "path": p.display().to_string() })
            }
        };
        let data = serde_json::json!({
            "program": shown.program,
            "args": shown.args,
            "command_line": shown.command_line,
            "working_dir": working_dir,
            "env": env_names,
            "secret_env": secret_env,
            "status": status,
            "accepted_exit_codes": self.accepted,
            "duration_ms": u64::try_from(run.duration.as_millis()).unwrap_or(u64::MAX),
            "timeout_ms": u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            "leftover_processes_killed": run.leftovers,
            "stdout": run.stdout.to_json(),
            "stderr": run.stderr.to_json(),
        });
        let mut ev = Evidence::new(shown.gate.clone(), ctx.now(), summary).with_data(data);
        for (k, v) in facts {
            ev = ev.with_fact(k, v);
        }
        ev.attachments.push(run.stdout.attachment("stdout"));
        ev.attachments.push(run.stderr.attachment("stderr"));
        Ok(Verdict::pass_if(passed, ev))
    }

    fn expected(&self) -> String {
        let codes: Vec<String> = self.accepted.iter().map(i32::to_string).collect();
        match codes.as_slice() {
            [one] => one.clone(),
            many => format!("one of {}", many.join(", ")),
        }
    }
}

#[async_trait]
impl Gate for ProcessGate {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> GateKind {
        self.kind
    }
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(GateError::Misconfigured(format!(
                "process gate `{}` must be evaluated inside a tokio runtime with I/O and time enabled",
                self.name
            )));
        }
        let secrets = self.resolve_secrets().await?;
        let redactor = Redactor::new(&secrets, &self.name)?;
        let builtins = builtins(ctx);
        let mut values: BTreeMap<&str, &str> = BTreeMap::new();
        for (n, v) in &self.params {
            values.insert(n, v);
        }
        for (n, v) in &builtins {
            values.insert(n, v);
        }
        let args = self.render_args(&values)?;
        let shown = Shown::new(&redactor, &self.name, &self.program, &args);
        let env = self.environment(&builtins, &secrets);
        let env_names: Vec<String> = env.keys().cloned().collect();
        let secret_env: Vec<String> = secrets.iter().map(|(n, _)| n.clone()).collect();

        let temp = match &self.working_dir {
            WorkingDir::Temporary => Some(
                tempfile::Builder::new()
                    .prefix("promotion-process-gate-")
                    .tempdir()
                    .map_err(|e| GateError::Other {
                        message: format!(
                            "process gate `{}`: could not create a temporary working directory",
                            shown.gate
                        ),
                        source: Some(Box::new(e)),
                    })?,
            ),
            WorkingDir::Fixed(_) => None,
        };
        let dir = match (&temp, &self.working_dir) {
            (Some(t), _) => t.path().to_path_buf(),
            (None, WorkingDir::Fixed(p)) => {
                if !p.is_dir() {
                    return Err(GateError::Misconfigured(format!(
                        "process gate `{}`: working directory `{}` does not exist or is not a directory",
                        shown.gate,
                        p.display()
                    )));
                }
                p.clone()
            }
            (None, WorkingDir::Temporary) => {
                return Err(GateError::other(format!(
                    "process gate `{}`: no temporary working directory",
                    shown.gate
                )))
            }
        };

        tracing::debug!(
            gate = %shown.gate,
            command = %shown.command_line,
            env = ?env_names,
            "process gate: starting"
        );
        let child = self.spawn(&args, &env, &dir, &shown)?;
        drop(env);
        let out = StreamCapture::new(redactor.clone(), self.tail_bytes);
        let err = StreamCapture::new(redactor, self.tail_bytes);
        let run = self.supervise(child, out, err, &shown).await;
        if let Some(t) = temp {
            let path = t.path().display().to_string();
            if let Err(e) = t.close() {
                tracing::warn!(gate = %shown.gate, %path, error = %e, "process gate: could not remove the temporary working directory");
            }
        }
        self.verdict(ctx, run?, &shown, env_names, secret_env)
    }
}

fn builtins(ctx: &GateContext<'_>) -> Vec<(&'static str, String)> {
    let phase = match ctx.phase {
        PhaseId::Entry => "entry".to_owned(),
        PhaseId::Verification => "verification".to_owned(),
        PhaseId::Analysis { step } => format!("analysis:{step}"),
    };
    let source = ctx.release.source();
    vec![
        ("PROMOTION_RELEASE_ID", ctx.release.id().to_string()),
        ("PROMOTION_RELEASE_NAME", ctx.release.name().to_owned()),
        ("PROMOTION_REPOSITORY", source.repository.clone()),
        ("PROMOTION_COMMIT", source.commit.clone()),
        ("PROMOTION_PIPELINE", ctx.pipeline.as_str().to_owned()),
        ("PROMOTION_STAGE", ctx.stage.as_str().to_owned()),
        ("PROMOTION_PHASE", phase),
        ("PROMOTION_GATE", ctx.gate.as_str().to_owned()),
        ("PROMOTION_ROUND", ctx.round.to_string()),
        ("PROMOTION_ATTEMPT", ctx.attempt.to_string()),
    ]
}

/// The command as shown in evidence and messages: secrets redacted.
#[derive(Debug)]
struct Shown {
    gate: String,
    program: String,
    args: Vec<String>,
    command_line: String,
}

impl Shown {
    fn new(redactor: &Redactor, gate: &str, program: &str, args: &[String]) -> Self {
        let gate = redactor.redact_str(gate);
        let program = redactor.redact_str(program);
        let args: Vec<String> = args.iter().map(|a| redactor.redact_str(a)).collect();
        let command_line = std::iter::once(&program)
            .chain(&args)
            .map(|s| shell_quote(s))
            .collect::<Vec<_>>()
            .join(" ");
        Shown {
            gate,
            program,
            args,
            command_line,
        }
    }
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-[]".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn last_line(tail: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(tail);
    text.lines()
        .map(str::trim)
        .rev()
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

pub(super) fn signal_name(sig: i32) -> String {
    Signal::try_from(sig)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {sig}"))
}
