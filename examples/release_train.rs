//! A five-stage release train, end to end: build → integration → compliance → canary →
//! production, with gates, approvals, a progressive canary and a soak.
//!
//! Run it with `cargo run --example release_train`; add `-- --fail-canary` to watch the canary
//! degrade the service once it takes 10 % of the traffic, the analysis fail and the stage roll
//! back automatically, `-- --memory` to keep the log in memory. Set `RUST_LOG=info` to see the
//! engine's tracing spans as well.
//!
//! By default every event goes to a tamper-evident SQLite audit log,
//! `target/release-train/audit.db`, with signed checkpoints; the example verifies it at the end
//! and prints the command that verifies it again offline. It then writes what an auditor and
//! leadership get from that log: the release's **evidence pack**
//! (`target/release-train/evidence-pack/` and `evidence-pack.tar`: the log entries with
//! inclusion proofs against a signed checkpoint, a signed in-toto attestation per stage
//! decision and test report, and the files the gates read), verified offline on the spot with
//! the command it prints; and the **release-readiness page** (`readiness.html`, one
//! self-contained file) with its data as JSON (`readiness.json`).
//!
//! What is real here and what is a stand-in:
//! - the engine, the state machine, the approval rules and the event log are the library's own;
//! - every stage runs the reference gates of `promotion-gates` on real inputs: a real process,
//!   nextest and pytest JUnit reports, benchmark figures, cargo-audit and SARIF reports, a
//!   change record, a Rego policy, a configuration baseline and deployment windows from
//!   `examples/data/`;
//! - `build` is guarded by the signature gate: the example plays the CI system, generates an
//!   Ed25519 key per run and writes, for each artifact, a DSSE envelope holding an in-toto
//!   Statement v1 (the artifact's name and SHA-256) with SLSA Provenance v1 (the release's
//!   builder, repository and commit) into `target/release-train/attestations/`; the gate
//!   trusts that key and that builder and checks the commit;
//! - the canary is analysed by the metric gates (`error-rate`, and `p99-latency`, or `latency`
//!   on a real Prometheus: a PromQL query measured five times from each step's deploy and
//!   judged against a limit) and the canary gate (`canary-analysis`: canary against baseline,
//!   Mann–Whitney U per metric), all talking HTTP to a Prometheus:
//!   - by default a **simulated** one: an HTTP server the example starts on 127.0.0.1 under
//!     `/simulated-prometheus`, speaking the Prometheus API the gates use for a simulated
//!     service (healthy: 5xx ratio 0.02–0.03 %, p99 about 43 ms); its gate lines are marked
//!     `[simulated metrics]`. With `--fail-canary` the service degrades whenever the deployer
//!     has given the canary 10 % of the traffic or more;
//!   - with `PROMOTION_PROMETHEUS_URL` set, that **real** Prometheus. It only has data up to
//!     now, so this mode runs in real time (`SystemClock`) with the canary's pauses, intervals,
//!     analysis window and soak scaled down to seconds, and, when production's deployment
//!     window is closed now (it would block in real time), without that gate; it says so. Its
//!     default queries use Prometheus' own metrics, so they work on any Prometheus that scrapes
//!     itself; `--fail-canary` needs the simulated source;
//! - gates marked `[scripted]` (production's smoke test) are test doubles from
//!   `promotion::testing`;
//! - the deployer records calls instead of talking to a platform (the host owns deployment);
//! - by default time is a virtual clock, so six hours of soak pass in a blink; a host uses
//!   `SystemClock`, as the real-Prometheus mode does;
//! - the checkpoint and attestation keys are generated per run; a host keeps its keys in a
//!   secret store.
//!
//! Environment (only with a real Prometheus):
//!
//! | variable | default |
//! |---|---|
//! | `PROMOTION_PROMETHEUS_URL` | unset: the simulated metric source |
//! | `PROMOTION_ERROR_RATIO_QUERY` | `1 - avg(up)` (the share of scrape targets down) |
//! | `PROMOTION_ERROR_RATIO_LIMIT` | `0.01`: each measurement must be below it |
//! | `PROMOTION_LATENCY_QUERY` | `max(scrape_duration_seconds)` |
//! | `PROMOTION_LATENCY_LIMIT` | `0.25` (seconds) |
//! | `PROMOTION_CANARY_QUERY` | `max(scrape_duration_seconds)` |
//! | `PROMOTION_BASELINE_QUERY` | `max(scrape_duration_seconds offset 10s)`: the window before |
//!
//! A Prometheus that only scrapes itself has no canary and baseline, so by default the canary
//! gate compares the latest 10 s of scrape durations with the 10 s before them, and fails the
//! canary only if they are significantly higher *and* their median more than doubled. Point the
//! two queries at your canary's and baseline's series (`{track="canary"}`) to compare those.
//!
//! ```sh
//! PROMOTION_PROMETHEUS_URL=http://127.0.0.1:9090 cargo run --example release_train
//! ```

#[path = "release_train/attestations.rs"]
mod attestations;
#[path = "release_train/simulated_prometheus.rs"]
mod simulated_prometheus;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use promotion::audit::{AuditOptions, AuditStore, CheckpointSigner};
use promotion::gates::canary::{CanaryMetric, Tolerance};
use promotion::gates::metrics::{Condition, Prometheus, QueryResult};
use promotion::gates::signature::EnvelopeDir;
use promotion::gates::testreport::Direction;
use promotion::gates::{
    CanaryGate, ChangeRecordGate, ConfigBaselineGate, DeploymentWindowGate, MetricGate,
    PerfBudgetGate, PolicyGate, ProcessGate, SignatureGate, TestReportGate, VulnGate,
};
use promotion::testing::{RecordingDeployer, ScriptedGate, Step};
use promotion::HostCommand;
use promotion::{
    ApprovalPolicy, ApprovalRule, Clock, Engine, EngineError, EventStore, GateKind, GateSpec,
    InMemoryStore, ManualClock, PhasePolicy, Pipeline, Principal, Release, ReleaseId, RolloutPlan,
    RolloutStep, StageSpec, StageStatus, StreamId, SystemClock, Waiting,
};
use simulated_prometheus::{query, Signal, SimulatedPrometheus, Track};

type Error = Box<dyn std::error::Error>;

/// The builder the release names and the signature gate trusts: the CI system's identity in the
/// provenance it signs.
const BUILDER: &str = "ci.example.com/pipelines/88213";

/// Where the example's real inputs live (JUnit reports, benchmark figures, the change record,
/// the Rego policy, the configuration and its approved baseline, deployment windows).
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data");

fn data(path: &str) -> String {
    format!("{DATA}/{path}")
}

/// The virtual clock's start, a Thursday morning in Berlin's office hours.
const VIRTUAL_START: &str = "2026-11-26T09:00:00Z";

/// How fast the canary goes: minutes and hours on the virtual clock, seconds in real time.
///
/// A rollout step's analysis phase starts when the step is deployed and is first evaluated
/// after the pause. The metric gates measure from the phase start, `measurement_interval`
/// apart, so their measurements cover the pause; the canary gate compares the `lookback`
/// before each evaluation, which equals the pause, so it judges exactly the traffic since the
/// step was deployed.
struct Pacing {
    /// How long each deployer call takes.
    deploy_latency: Duration,
    /// The pause after each rollout step's deploy, before its analysis is evaluated.
    pause: Duration,
    /// Time between the analysis phase's sampling rounds.
    round_interval: Duration,
    /// An analysis phase that has not passed this long after it started fails.
    phase_timeout: Duration,
    /// Measurements each metric gate takes, and the time between them.
    measurements: u32,
    measurement_interval: Duration,
    /// The canary gate's analysis window and its resolution.
    lookback: Duration,
    step: Duration,
    /// Production's soak.
    soak: Duration,
}

impl Pacing {
    fn virtual_time() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Pacing {
            deploy_latency: Duration::from_secs(20),
            pause: minutes(10),
            round_interval: minutes(5),
            phase_timeout: minutes(30),
            measurements: 5,
            measurement_interval: minutes(2),
            lookback: minutes(10),
            step: Duration::from_secs(10),
            soak: Duration::from_secs(6 * 3600),
        }
    }

    /// The same train in seconds, for a real Prometheus scraping every second or so.
    fn real_time() -> Self {
        Pacing {
            deploy_latency: Duration::from_millis(500),
            pause: Duration::from_secs(10),
            round_interval: Duration::from_secs(2),
            phase_timeout: Duration::from_secs(90),
            measurements: 5,
            measurement_interval: Duration::from_secs(2),
            lookback: Duration::from_secs(10),
            step: Duration::from_secs(1),
            soak: Duration::from_secs(10),
        }
    }

    fn describe(&self) -> String {
        format!(
            "pause {} after each step, {} measurements {} apart per metric gate, a {} canary \
             window at {} resolution, soak {}",
            secs(self.pause),
            self.measurements,
            secs(self.measurement_interval),
            secs(self.lookback),
            secs(self.step),
            secs(self.soak)
        )
    }
}

fn secs(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        _ => format!("{} s", d.as_secs_f64()),
    }
}

/// What the canary's analysis asks, and of which Prometheus.
struct Analysis {
    prometheus_url: String,
    error_ratio_query: String,
    error_ratio_limit: f64,
    /// `p99-latency` for the simulated service; `latency` for whatever a real Prometheus is
    /// asked.
    latency_gate: &'static str,
    latency_query: String,
    latency_limit: f64,
    canary_metrics: Vec<CanaryMetric>,
    pacing: Pacing,
    /// Each query asked of a real Prometheus and the variable that sets it.
    variables: Vec<(&'static str, String)>,
}

impl Analysis {
    /// The simulated service's queries. The canary fails on an error ratio 0.1 percentage
    /// points above the baseline's (a critical metric) or a p99 latency 10 % above it.
    fn simulated(url: &str, pacing: Pacing) -> Self {
        use Signal::{ErrorRatio, P99Latency};
        use Track::{Baseline, Canary};
        Analysis {
            prometheus_url: url.to_owned(),
            error_ratio_query: query(ErrorRatio, Canary),
            error_ratio_limit: 0.01,
            latency_gate: "p99-latency",
            latency_query: query(P99Latency, Canary),
            latency_limit: 0.06,
            canary_metrics: vec![
                CanaryMetric::new(
                    "error-ratio",
                    query(ErrorRatio, Canary),
                    query(ErrorRatio, Baseline),
                )
                .tolerance(Tolerance::Absolute(0.001))
                .critical(true),
                CanaryMetric::new(
                    "p99-latency",
                    query(P99Latency, Canary),
                    query(P99Latency, Baseline),
                )
                .tolerance(Tolerance::Relative(0.10)),
            ],
            pacing,
            variables: Vec::new(),
        }
    }

    /// A real Prometheus's queries, from the environment.
    fn real(url: String, pacing: Pacing) -> Result<Self, Error> {
        let query = |variable: &'static str, default: String| -> Result<_, Error> {
            Ok((variable, env_text(variable)?.unwrap_or(default)))
        };
        let error_ratio = query("PROMOTION_ERROR_RATIO_QUERY", "1 - avg(up)".to_owned())?;
        let latency = query(
            "PROMOTION_LATENCY_QUERY",
            "max(scrape_duration_seconds)".to_owned(),
        )?;
        let canary = query(
            "PROMOTION_CANARY_QUERY",
            "max(scrape_duration_seconds)".to_owned(),
        )?;
        let baseline = query(
            "PROMOTION_BASELINE_QUERY",
            format!(
                "max(scrape_duration_seconds offset {}s)",
                pacing.lookback.as_secs()
            ),
        )?;
        Ok(Analysis {
            prometheus_url: url,
            error_ratio_query: error_ratio.1.clone(),
            error_ratio_limit: env_number("PROMOTION_ERROR_RATIO_LIMIT", 0.01)?,
            latency_gate: "latency",
            latency_query: latency.1.clone(),
            latency_limit: env_number("PROMOTION_LATENCY_LIMIT", 0.25)?,
            // Fails the canary only when it is significantly higher and its median more than
            // doubled: a Prometheus scraping itself on a busy machine is noisy.
            canary_metrics: vec![CanaryMetric::new("latency", &canary.1, &baseline.1)
                .tolerance(Tolerance::Relative(1.0))],
            pacing,
            variables: vec![error_ratio, latency, canary, baseline],
        })
    }

    fn error_rate(&self) -> Result<MetricGate, Error> {
        let p = &self.pacing;
        Ok(
            MetricGate::builder(&self.prometheus_url, &self.error_ratio_query)
                .name("error-rate")
                .success_condition(Condition::lt(self.error_ratio_limit))
                .count(p.measurements)
                .interval(p.measurement_interval)
                .build()?,
        )
    }

    fn latency(&self) -> Result<MetricGate, Error> {
        let p = &self.pacing;
        Ok(
            MetricGate::builder(&self.prometheus_url, &self.latency_query)
                .name(self.latency_gate)
                .success_condition(Condition::lt(self.latency_limit))
                .count(p.measurements)
                .interval(p.measurement_interval)
                .build()?,
        )
    }

    fn canary(&self) -> Result<CanaryGate, Error> {
        let mut gate = CanaryGate::builder(&self.prometheus_url)
            .name("canary-analysis")
            .lookback(self.pacing.lookback)
            .step(self.pacing.step);
        for m in &self.canary_metrics {
            gate = gate.metric(m.clone());
        }
        Ok(gate.build()?)
    }
}

/// An environment variable's text; unset or blank is `None`, text that is not UTF-8 an error
/// naming the variable.
fn env_text(name: &str) -> Result<Option<String>, Error> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8").into()),
    }
}

fn env_number(name: &str, default: f64) -> Result<f64, Error> {
    match env_text(name)? {
        None => Ok(default),
        Some(v) => match v.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(n),
            _ => Err(format!("{name}=`{v}`: expected a finite number such as {default}").into()),
        },
    }
}

/// Asks the real Prometheus every query once, now, so that a wrong URL or a query without data
/// is reported before the train starts, naming the variable to change.
async fn preflight(analysis: &Analysis) -> Result<(), Error> {
    let url = &analysis.prometheus_url;
    let prometheus =
        Prometheus::new(url).map_err(|e| format!("PROMOTION_PROMETHEUS_URL=`{url}`: {e}"))?;
    for (variable, q) in &analysis.variables {
        let answer = prometheus
            .instant(q, Utc::now())
            .await
            .map_err(|e| format!("PROMOTION_PROMETHEUS_URL=`{url}`: {e}"))?;
        let empty = match &answer.result {
            QueryResult::Vector(series) | QueryResult::Matrix(series) => series.is_empty(),
            _ => false,
        };
        if empty {
            return Err(format!(
                "PROMOTION_PROMETHEUS_URL=`{url}`: the query `{q}` returns no data now (set \
                 {variable} to a query this Prometheus can answer, or let it gather data for a \
                 minute first)"
            )
            .into());
        }
    }
    Ok(())
}

fn scripted(name: &str, kind: GateKind, steps: impl IntoIterator<Item = Step>) -> GateSpec {
    GateSpec::new(Arc::new(ScriptedGate::new(name, steps).with_kind(kind)))
}

fn pass(summary: &str) -> Step {
    Step::Pass(summary.to_owned())
}

fn pipeline(
    analysis: &Analysis,
    signatures: SignatureGate,
    window: Option<DeploymentWindowGate>,
) -> Result<Pipeline, Error> {
    use GateKind::Automated;
    let pacing = &analysis.pacing;
    let analysis_policy = PhasePolicy {
        interval: Some(pacing.round_interval),
        timeout: Some(pacing.phase_timeout),
        ..PhasePolicy::default()
    };
    // Build: the artifacts' signed provenance, a real process (a smoke check of the build's
    // identity) and nextest's JUnit report.
    let smoke = ProcessGate::builder("sh")
        .name("build-smoke")
        .args([
            "-c",
            "test -n \"$PROMOTION_COMMIT\" && echo \"built {PROMOTION_RELEASE_NAME} from $PROMOTION_COMMIT\"",
        ])
        .timeout(Duration::from_secs(30))
        .build()?;
    let unit_tests = TestReportGate::builder()
        .name("unit-tests")
        .file(data("reports/unit-tests.xml"))
        .build()?;
    // Integration: pytest's JUnit report, a performance budget against the last release, and
    // the dependency audit (cargo-audit's JSON and Trivy's SARIF).
    let integration_tests = TestReportGate::builder()
        .name("integration-tests")
        .file(data("reports/integration-tests.xml"))
        .build()?;
    let perf = PerfBudgetGate::builder(data("perf/current.json"))
        .name("performance-budget")
        .baseline(data("perf/baseline.json"))
        .max("p99_ms", 50.0)
        .max_regression("p99_ms", 10.0, Direction::LowerIsBetter)
        .max_regression("throughput_rps", 5.0, Direction::HigherIsBetter)
        .build()?;
    let dependencies = VulnGate::builder()
        .name("dependency-audit")
        .cargo_audit(data("vuln/cargo-audit.json"))
        .sarif(data("vuln/trivy.sarif"))
        .build()?;
    // Compliance: the change record (its risk fact feeds the approval rule), the release
    // policy in Rego, and the production configuration against its approved baseline.
    let change = ChangeRecordGate::builder(data("change-record.toml"))
        .ticket_pattern("CHG-[0-9]{4,}")
        .build()?;
    let policy = PolicyGate::builder()
        .name("release-policy")
        .bundle(data("policy"))
        .build()?;
    let config = ConfigBaselineGate::builder(data("config"), data("config-approved.json"))
        .name("config-baseline")
        .build()?;
    // Production: the deployment window (when it applies), a smoke test and a soak.
    let mut production = StageSpec::new("production").after("canary");
    if let Some(window) = window {
        production = production.entry_gate(window);
    }
    let production = production
        .verification_gate(scripted(
            "smoke-tests",
            Automated,
            [pass("checkout, search and login journeys ok")],
        ))
        .soak(pacing.soak);
    Ok(Pipeline::builder("shop-api", "2026.11.1")
        .break_glass_group("incident-commanders")
        .operator_group("release-managers")
        .stage(
            StageSpec::new("build")
                .entry_gate(signatures)
                .entry_gate(smoke)
                .entry_gate(unit_tests),
        )
        .stage(
            StageSpec::new("integration")
                .after("build")
                .entry_gate(integration_tests)
                .entry_gate(perf)
                .entry_gate(dependencies)
                .approval(ApprovalPolicy::new(ApprovalRule::quorum("qa", 1)?)),
        )
        .stage(
            StageSpec::new("compliance")
                .after("integration")
                .entry_gate(change)
                .entry_gate(policy)
                .entry_gate(config)
                .approval(
                    ApprovalPolicy::new(ApprovalRule::all([
                        ApprovalRule::quorum("sre", 1)?,
                        ApprovalRule::quorum("security", 1)?,
                        // A high-risk change also needs the change advisory board.
                        ApprovalRule::when(
                            "change-record",
                            "risk",
                            "high",
                            ApprovalRule::quorum("cab", 1)?,
                        )?,
                    ]))
                    .distinct_from_upstream()
                    .expires_after(Duration::from_secs(24 * 3600)),
                ),
        )
        .stage(
            // The canary: the error rate from the first percent of traffic, then latency and a
            // comparison with the baseline once there is traffic enough to compare.
            StageSpec::new("canary")
                .after("compliance")
                .rollout(RolloutPlan::new([
                    RolloutStep::new(1)
                        .pause(pacing.pause)
                        .analysis(analysis.error_rate()?)
                        .analysis_policy(analysis_policy),
                    RolloutStep::new(10)
                        .pause(pacing.pause)
                        .analysis(analysis.error_rate()?)
                        .analysis(analysis.latency()?)
                        .analysis(analysis.canary()?)
                        .analysis_policy(analysis_policy),
                    RolloutStep::new(50)
                        .pause(pacing.pause)
                        .analysis(analysis.latency()?)
                        .analysis(analysis.canary()?)
                        .analysis_policy(analysis_policy),
                    RolloutStep::new(100),
                ])),
        )
        .stage(production)
        .build()?)
}

/// Prints every event appended since the last call, as a timeline, marking the evidence of
/// stand-ins: `[scripted]` test doubles and `[simulated metrics]` from the simulated
/// Prometheus.
struct Timeline {
    store: Arc<dyn EventStore>,
    stream: StreamId,
    seen: usize,
    simulated_metrics: Option<String>,
}

impl Timeline {
    fn marker(&self, evidence: &promotion::Evidence) -> Option<&'static str> {
        if evidence.producer.starts_with("scripted:") {
            return Some("[scripted]");
        }
        let prometheus = evidence
            .data
            .pointer("/config/prometheus")
            .and_then(serde_json::Value::as_str)?;
        let simulated = self.simulated_metrics.as_deref()?;
        prometheus
            .starts_with(simulated)
            .then_some("[simulated metrics]")
    }

    async fn print_new(&mut self) -> Result<(), Error> {
        let recorded = self.store.read(&self.stream).await?;
        for r in recorded.iter().skip(self.seen) {
            let e = &r.event;
            let stage = e.body.stage().map(|s| s.as_str()).unwrap_or("");
            let mut line = e.body.to_string();
            if let promotion::EventBody::GateEvaluated {
                evidence: Some(ev), ..
            } = &e.body
            {
                if let Some(marker) = self.marker(ev) {
                    line.push_str("  ");
                    line.push_str(marker);
                }
            }
            println!(
                "{}  {:<12} {:<22} {}",
                e.at.format("%m-%d %H:%M:%S"),
                stage,
                e.actor.to_string(),
                line
            );
        }
        self.seen = recorded.len();
        Ok(())
    }
}

struct Desk {
    people: BTreeMap<&'static str, Principal>,
}

impl Desk {
    fn new() -> Result<Self, Error> {
        let mut people = BTreeMap::new();
        for (id, groups) in [
            ("dana", vec!["developers", "qa"]),
            ("quinn", vec!["qa"]),
            ("sam", vec!["sre"]),
            ("sasha", vec!["security"]),
            ("carl", vec!["cab"]),
            ("ci-bot", vec!["ci"]),
        ] {
            people.insert(id, Principal::new(id, groups)?);
        }
        Ok(Desk { people })
    }
    fn get(&self, id: &str) -> Result<&Principal, Error> {
        self.people
            .get(id)
            .ok_or_else(|| format!("no principal `{id}` at the desk").into())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut message = format!("release_train: error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Error> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let fail_canary = std::env::args().any(|a| a == "--fail-canary");
    let in_memory = std::env::args().any(|a| a == "--memory");
    let prometheus_url = env_text("PROMOTION_PROMETHEUS_URL")?;
    let real_time = prometheus_url.is_some();
    if real_time && fail_canary {
        return Err(
            "--fail-canary degrades the simulated service, which a real Prometheus \
             does not measure; unset PROMOTION_PROMETHEUS_URL to run it"
                .into(),
        );
    }
    if !real_time {
        for name in [
            "PROMOTION_ERROR_RATIO_QUERY",
            "PROMOTION_ERROR_RATIO_LIMIT",
            "PROMOTION_LATENCY_QUERY",
            "PROMOTION_LATENCY_LIMIT",
            "PROMOTION_CANARY_QUERY",
            "PROMOTION_BASELINE_QUERY",
        ] {
            if env_text(name)?.is_some() {
                return Err(format!(
                    "{name} is set but PROMOTION_PROMETHEUS_URL is not: the simulated metric \
                     source answers only its own queries; set PROMOTION_PROMETHEUS_URL too"
                )
                .into());
            }
        }
    }

    // Time: a virtual clock for the simulated train; the real time next to a real Prometheus,
    // which has data only up to now.
    let (clock, start): (Arc<dyn Clock>, DateTime<Utc>) = if real_time {
        let now = SystemClock.now();
        let start = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        (Arc::new(SystemClock), start)
    } else {
        let start: DateTime<Utc> = VIRTUAL_START.parse()?;
        (Arc::new(ManualClock::auto_advancing(start)), start)
    };
    let pacing = if real_time {
        Pacing::real_time()
    } else {
        Pacing::virtual_time()
    };
    let deployer = RecordingDeployer::new().with_clock(clock.clone(), pacing.deploy_latency);

    // The canary's metric source: a real Prometheus, checked before the train starts, or the
    // simulated one.
    let (simulated, analysis) = match prometheus_url {
        Some(url) => {
            let analysis = Analysis::real(url, pacing)?;
            preflight(&analysis).await?;
            (None, analysis)
        }
        None => {
            let sim = SimulatedPrometheus::start(deployer.clone(), clock.clone(), fail_canary)
                .await
                .map_err(|e| format!("cannot start the simulated Prometheus on 127.0.0.1: {e}"))?;
            let analysis = Analysis::simulated(sim.url(), pacing);
            (Some(sim), analysis)
        }
    };

    let audit_dir = Path::new("target").join("release-train");
    let audit_path = audit_dir.join("audit.db");
    let audit = if in_memory {
        None
    } else {
        std::fs::create_dir_all(&audit_dir)?;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", audit_path.display()));
        }
        let signer = CheckpointSigner::generate("release-train.promotion.example")?;
        std::fs::write(audit_dir.join("audit.vkey"), signer.verifier_key())?;
        let options = AuditOptions::new("release-train.promotion.example")
            .signer(signer)
            .clock(clock.clone());
        Some(AuditStore::open_sqlite(&audit_path, options)?)
    };
    let store: Arc<dyn EventStore> = match &audit {
        Some(a) => Arc::new(a.clone()),
        None => Arc::new(InMemoryStore::new()),
    };

    let release = Release::builder(
        "shop-api 4.12.0",
        "git@example.com:shop/api",
        "9fceb02d0ae598e95dc970b74767f19372d61af8",
        start - chrono::Duration::minutes(48),
    )
    .artifact(
        "api-image",
        "sha256:6a1f0e1c53b1d6e0b0c1c3e6c8f3b1f7a1a4c2d9e8f7b6a5c4d3e2f1a0b9c8d7",
    )
    .artifact(
        "helm-chart",
        "sha256:0b5e3f6a9c2d1e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f",
    )
    .built_at(start - chrono::Duration::minutes(20))
    .builder(BUILDER)
    .contributor("dana")
    .label("service", "shop-api")
    .label("rollback-plan", "shipctl rollback checkout")
    .build()?;

    // The CI system's signed provenance for the release's artifacts, and the gate trusting it.
    let attested = attestations::write(&audit_dir.join("attestations"), &release)?;
    let signatures = SignatureGate::builder(EnvelopeDir::new(&attested.dir))
        .name("build-provenance")
        .trusted_key_pem(&attested.key_id, &attested.public_key_pem)
        .require_slsa_provenance(true)
        .trusted_builder(BUILDER)
        .check_source_commit(true)
        .build()?;

    // Production's deployment window: on the virtual clock the train arrives within it; in
    // real time it is kept only when it is open now and for the next quarter of an hour, since
    // a closed window would hold the train until it opens.
    let window = DeploymentWindowGate::builder()
        .name("deployment-window")
        .toml_file(data("windows.toml"))?
        .build()?;
    let now = clock.now();
    let keep_window = !real_time
        || (window.allows(now)
            && window
                .next_closing(now)
                .is_none_or(|c| c > now + chrono::Duration::minutes(15)));
    let window_note = if keep_window {
        "production's deployment window (examples/data/windows.toml) is open now: kept".to_owned()
    } else {
        let next = window
            .next_opening(now)
            .map(|t| format!("; it next opens at {t}"))
            .unwrap_or_default();
        format!(
            "production's deployment window (examples/data/windows.toml) is closed now or \
             closes within 15 minutes and would hold the train in real time{next}: LEFT OUT in \
             this mode (the simulated run keeps it)"
        )
    };
    let pipeline = pipeline(&analysis, signatures, keep_window.then_some(window))?;

    let engine = Engine::new(
        pipeline,
        store.clone(),
        Arc::new(deployer.clone()),
        clock.clone(),
    );
    let desk = Desk::new()?;

    println!("promotion: release train for `{}`", release.name());
    println!(
        "build: {} artifacts attested in {} (SLSA provenance, signed with the run's key {})",
        attested.files.len(),
        attested.dir.display(),
        attested.key_id
    );
    match &simulated {
        Some(sim) => {
            println!(
                "canary metrics: SIMULATED Prometheus at {} (an in-process HTTP server; gate lines \
                 marked [simulated metrics]){}",
                sim.url(),
                if fail_canary {
                    "; the service degrades when the canary takes 10% of the traffic"
                } else {
                    "; a healthy service"
                }
            );
            println!(
                "(gates marked [scripted] are stand-ins; virtual clock; {})",
                store_note(in_memory, &audit_path)
            );
        }
        None => {
            println!(
                "canary metrics: Prometheus at {} (PROMOTION_PROMETHEUS_URL)",
                analysis.prometheus_url
            );
            for (variable, q) in &analysis.variables {
                println!("  {variable:<28} {q}");
            }
            println!(
                "REAL TIME (SystemClock): the canary is scaled down to seconds: {}",
                analysis.pacing.describe()
            );
            println!("{window_note}");
            println!(
                "(gates marked [scripted] are stand-ins; {})",
                store_note(in_memory, &audit_path)
            );
        }
    }
    if fail_canary {
        println!("canary analysis will FAIL");
    }
    println!();

    let id = engine.register(release, desk.get("ci-bot")?).await?;
    let mut timeline = Timeline {
        store,
        stream: StreamId::for_release(&id),
        seen: 0,
        simulated_metrics: simulated.as_ref().map(|s| s.url().to_owned()),
    };

    loop {
        let progress = engine.run_until_blocked(&id).await?;
        timeline.print_new().await?;
        if progress.waiting().is_empty() {
            break;
        }
        for w in progress.waiting() {
            println!("{:>38} waiting for {w}", "");
            match w {
                Waiting::Approval { stage, .. } => {
                    approve(&engine, &desk, &id, stage.as_str()).await?
                }
                Waiting::Judgement { stage, gate, .. } => {
                    return Err(format!(
                        "gate `{gate}` of stage {stage} was inconclusive and waits for a human \
                         decision, which this example does not script"
                    )
                    .into())
                }
                other => return Err(format!("unexpected wait: {other}").into()),
            }
        }
        timeline.print_new().await?;
    }

    let state = engine.state(&id).await?;
    println!();
    for s in engine.pipeline().stages() {
        println!("{:<12} {}", s.name, state.status(s.name.as_str()));
    }
    println!(
        "deployer calls: {}; canary weights deployed: {:?}; {}time elapsed: {}",
        deployer.calls().len(),
        deployer.weights("canary"),
        if real_time { "" } else { "virtual " },
        humanize(clock.now() - start)
    );
    if let Some(audit) = &audit {
        let report = audit.verify(None).await?;
        println!(
            "audit log: {} entries in {} streams verified, root {}, checkpoint signed and checked",
            report.entries,
            report.streams,
            hex(&report.root)
        );
        println!(
            "verify it offline: cargo run --example verify_audit -- {} --vkey-file {}",
            audit_path.display(),
            audit_dir.join("audit.vkey").display()
        );
        evidence(audit, &id, &audit_dir, clock.now()).await?;
    }
    let production = state.status("production");
    if fail_canary {
        let weights = deployer.weights("canary");
        if state.status("canary") != StageStatus::RolledBack
            || production != StageStatus::Waiting
            || deployer.rollbacks("canary") != 1
            || !weights.contains(&simulated_prometheus::DEGRADES_AT_WEIGHT)
        {
            return Err(format!(
                "expected the canary to reach 10%, fail its analysis and roll back once, and \
                 production to stay untouched; the canary is {}, production {production}, \
                 weights {weights:?}, {} rollbacks",
                state.status("canary"),
                deployer.rollbacks("canary")
            )
            .into());
        }
        println!(
            "canary analysis failed at 10% of the traffic: the canary was rolled back \
             automatically; production untouched"
        );
    } else if production != StageStatus::Promoted {
        return Err(format!("expected production to be promoted, it is {production}").into());
    } else {
        println!("release {} is promoted to production", id.short());
    }
    Ok(())
}

/// What an auditor and leadership get from the log: the release's evidence pack (verified here
/// as an auditor would, offline), and the release-readiness page with its data as JSON.
async fn evidence(
    audit: &AuditStore,
    id: &ReleaseId,
    dir: &Path,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    use promotion::evidence::{
        render_html, verify_pack, AttestationSigner, EvidencePack, ExportOptions,
        MemoryAttachments, Period, Report,
    };
    // The files the gates read are the pack's attachments (the log holds their digests).
    let mut attachments = MemoryAttachments::new();
    let mut pending = vec![PathBuf::from(DATA), dir.join("attestations")];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                attachments.insert_file(&path)?;
            }
        }
    }
    // A key per run, as for the checkpoints; a host keeps it in a secret store.
    let signer = AttestationSigner::generate()?;
    let key_file = dir.join("attestation.pub.pem");
    std::fs::write(&key_file, signer.verifier().public_key_pem()?)?;
    let pack_dir = dir.join("evidence-pack");
    if pack_dir.exists() {
        std::fs::remove_dir_all(&pack_dir)?;
    }
    let options = ExportOptions {
        attachments: Some(&attachments),
        archive: Some(dir.join("evidence-pack.tar")),
        ..ExportOptions::default()
    };
    let summary = EvidencePack::export_with(audit, id, &signer, &pack_dir, &options).await?;
    let checkpoint_key = audit
        .verifier()
        .ok_or("the audit log signs no checkpoints")?;
    let checked = verify_pack(&pack_dir, checkpoint_key, &signer.verifier())?;
    println!(
        "evidence pack: {} ({} log entries with inclusion proofs, {} attestations, {} attachments) verified offline",
        pack_dir.display(),
        checked.entries,
        checked.attestations.len(),
        checked.attachments
    );
    if let Some(archive) = &summary.archive {
        println!(
            "verify it again: cargo run --example verify_pack -- {} --checkpoint-key-file {} --attestation-key-file {}",
            archive.display(),
            dir.join("audit.vkey").display(),
            key_file.display()
        );
    }
    // The week up to now, inclusive (a period's end is exclusive).
    let end = now + chrono::Duration::seconds(1);
    let report = Report::from_store(audit, Period::days_until(end, 7)?).await?;
    let page = dir.join("readiness.html");
    std::fs::write(&page, render_html(&report))?;
    std::fs::write(
        dir.join("readiness.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    println!(
        "release-readiness page: {} (data: {})",
        page.display(),
        dir.join("readiness.json").display()
    );
    Ok(())
}

fn store_note(in_memory: bool, audit_path: &Path) -> String {
    if in_memory {
        "in-memory store".to_owned()
    } else {
        format!("audit log {}", audit_path.display())
    }
}

/// The scripted approvers: a developer first tries to approve their own release (refused),
/// then the eligible people approve.
async fn approve(engine: &Engine, desk: &Desk, id: &ReleaseId, stage: &str) -> Result<(), Error> {
    let approvers: &[&str] = match stage {
        "integration" => &["dana", "quinn"],
        "compliance" => &["quinn", "sam", "sasha", "carl"],
        other => return Err(format!("no approvers scripted for `{other}`").into()),
    };
    for who in approvers {
        let p = desk.get(who)?;
        match engine
            .submit(id, HostCommand::approve(stage, p, "reviewed evidence")?)
            .await
        {
            Ok(_) => {}
            Err(EngineError::Refused(r)) => println!("{:>38} refused: {r}", ""),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn humanize(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}
