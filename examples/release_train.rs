//! A five-stage release train, end to end: build → integration → compliance → canary →
//! production, with gates, approvals, a progressive canary and a soak.
//!
//! Run it with `cargo run --example release_train`; add `-- --fail-canary` to watch the canary
//! analysis fail and the stage roll back automatically, `-- --memory` to keep the log in memory.
//! Set `RUST_LOG=info` to see the engine's tracing spans as well.
//!
//! By default every event goes to a tamper-evident SQLite audit log,
//! `target/release-train/audit.db`, with signed checkpoints; the example verifies it at the end
//! and prints the command that verifies it again offline.
//!
//! What is real here and what is a stand-in:
//! - the engine, the state machine, the approval rules and the event log are the library's own;
//! - the first three stages and production's deployment window use the reference gates of
//!   `promotion-gates` on real inputs in `examples/data/` (nextest and pytest JUnit reports,
//!   benchmark figures, a change record, a Rego policy, a configuration baseline, windows)
//!   and a real process;
//! - gates marked `[scripted]` (the canary's metric analysis, production's smoke test) are
//!   test doubles from `promotion::testing`; the metric and canary-analysis gates replace them
//!   with their issue;
//! - the deployer records calls instead of talking to a platform (the host owns deployment);
//! - time is a virtual clock, so six hours of soak pass in a blink; a host uses `SystemClock`;
//! - the checkpoint key is generated per run; a host keeps its key in a secret store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use promotion::audit::{AuditOptions, AuditStore, CheckpointSigner};
use promotion::gates::testreport::Direction;
use promotion::gates::{
    ChangeRecordGate, ConfigBaselineGate, DeploymentWindowGate, PerfBudgetGate, PolicyGate,
    ProcessGate, TestReportGate, VulnGate,
};
use promotion::testing::{RecordingDeployer, ScriptedGate, Step};
use promotion::{
    ApprovalPolicy, ApprovalRule, Clock, Engine, EngineError, EventStore, GateKind, GateSpec,
    InMemoryStore, ManualClock, PhasePolicy, Pipeline, Principal, Release, ReleaseId, RolloutPlan,
    RolloutStep, StageSpec, StageStatus, StreamId, Waiting,
};

type Error = Box<dyn std::error::Error>;

fn scripted(name: &str, kind: GateKind, steps: impl IntoIterator<Item = Step>) -> GateSpec {
    GateSpec::new(Arc::new(ScriptedGate::new(name, steps).with_kind(kind)))
}

fn pass(summary: &str) -> Step {
    Step::Pass(summary.to_owned())
}

/// Where the example's real inputs live (JUnit reports, benchmark figures, the change record,
/// the Rego policy, the configuration and its approved baseline, deployment windows).
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data");

fn data(path: &str) -> String {
    format!("{DATA}/{path}")
}

fn pipeline(fail_canary: bool) -> Result<Pipeline, Error> {
    use GateKind::Automated;
    let minutes = |m: u64| Duration::from_secs(60 * m);
    let canary_error_rate = if fail_canary {
        vec![
            pass("5xx ratio 0.02% (budget 1%)"),
            Step::Fail("5xx ratio 3.8% (budget 1%)".into()),
        ]
    } else {
        vec![
            pass("5xx ratio 0.02% (budget 1%)"),
            pass("5xx ratio 0.03% (budget 1%)"),
            pass("5xx ratio 0.03% (budget 1%)"),
        ]
    };
    let analysis = PhasePolicy {
        interval: Some(minutes(5)),
        timeout: Some(minutes(30)),
        ..PhasePolicy::default()
    };
    // Build: a real process (a smoke check of the build's identity) and nextest's JUnit report.
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
    let window = DeploymentWindowGate::builder()
        .name("deployment-window")
        .toml_file(data("windows.toml"))?
        .build()?;
    Ok(Pipeline::builder("shop-api", "2026.11.1")
        .break_glass_group("incident-commanders")
        .operator_group("release-managers")
        .stage(
            StageSpec::new("build")
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
            StageSpec::new("canary")
                .after("compliance")
                .rollout(RolloutPlan::new([
                    RolloutStep::new(1)
                        .pause(minutes(10))
                        .analysis(scripted(
                            "error-rate",
                            Automated,
                            canary_error_rate.clone().into_iter().take(1),
                        ))
                        .analysis_policy(analysis),
                    RolloutStep::new(10)
                        .pause(minutes(10))
                        .analysis(scripted(
                            "error-rate",
                            Automated,
                            canary_error_rate.into_iter().skip(1),
                        ))
                        .analysis(scripted(
                            "p99-latency",
                            Automated,
                            [pass("p99 43 ms (limit 60 ms)")],
                        ))
                        .analysis_policy(analysis),
                    RolloutStep::new(50)
                        .pause(minutes(10))
                        .analysis(scripted(
                            "p99-latency",
                            Automated,
                            [pass("p99 44 ms (limit 60 ms)")],
                        ))
                        .analysis_policy(analysis),
                    RolloutStep::new(100),
                ])),
        )
        .stage(
            StageSpec::new("production")
                .after("canary")
                .entry_gate(window)
                .verification_gate(scripted(
                    "smoke-tests",
                    Automated,
                    [pass("checkout, search and login journeys ok")],
                ))
                .soak(Duration::from_secs(6 * 3600)),
        )
        .build()?)
}

/// Prints every event appended since the last call, as a timeline.
struct Timeline {
    store: Arc<dyn EventStore>,
    stream: StreamId,
    seen: usize,
}

impl Timeline {
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
                if ev.producer.starts_with("scripted:") {
                    line.push_str("  [scripted]");
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
async fn main() -> Result<(), Error> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let fail_canary = std::env::args().any(|a| a == "--fail-canary");
    let in_memory = std::env::args().any(|a| a == "--memory");

    let clock = Arc::new(ManualClock::auto_advancing("2026-11-26T09:00:00Z".parse()?));
    let audit_dir = std::path::Path::new("target").join("release-train");
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
    let deployer = RecordingDeployer::new().with_clock(clock.clone(), Duration::from_secs(20));
    let pipeline = pipeline(fail_canary)?;
    let engine = Engine::new(
        pipeline,
        store.clone(),
        Arc::new(deployer.clone()),
        clock.clone(),
    );
    let desk = Desk::new()?;

    let release = Release::builder(
        "shop-api 4.12.0",
        "git@example.com:shop/api",
        "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "2026-11-26T08:12:00Z".parse()?,
    )
    .artifact(
        "api-image",
        "sha256:6a1f0e1c53b1d6e0b0c1c3e6c8f3b1f7a1a4c2d9e8f7b6a5c4d3e2f1a0b9c8d7",
    )
    .artifact(
        "helm-chart",
        "sha256:0b5e3f6a9c2d1e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f",
    )
    .built_at("2026-11-26T08:40:00Z".parse()?)
    .builder("ci.example.com/pipelines/88213")
    .contributor("dana")
    .label("service", "shop-api")
    .label("rollback-plan", "shipctl rollback checkout")
    .build()?;

    println!("promotion: release train for `{}`", release.name());
    println!(
        "(gates marked [scripted] are stand-ins; virtual clock; {}){}\n",
        if in_memory {
            "in-memory store".to_owned()
        } else {
            format!("audit log {}", audit_path.display())
        },
        if fail_canary {
            "; canary analysis will FAIL"
        } else {
            ""
        }
    );
    let id = engine.register(release, desk.get("ci-bot")?).await?;
    let mut timeline = Timeline {
        store,
        stream: StreamId::for_release(&id),
        seen: 0,
    };

    loop {
        let progress = engine.run_until_blocked(&id).await?;
        timeline.print_new().await?;
        if progress.waiting.is_empty() {
            break;
        }
        for w in &progress.waiting {
            println!("{:>38} waiting for {w}", "");
            if let Waiting::Approval { stage, .. } = w {
                approve(&engine, &desk, &id, stage.as_str()).await?;
            } else {
                return Err(format!("unexpected wait: {w}").into());
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
        "deployer calls: {}; virtual time elapsed: {}",
        deployer.calls().len(),
        humanize(clock.now() - "2026-11-26T09:00:00Z".parse::<chrono::DateTime<chrono::Utc>>()?)
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
    }
    let production = state.status("production");
    if fail_canary {
        if state.status("canary") != StageStatus::RolledBack || production != StageStatus::Waiting {
            return Err("expected the canary to roll back and production to stay untouched".into());
        }
        println!("canary analysis failed: the canary was rolled back automatically; production untouched");
    } else if production != StageStatus::Promoted {
        return Err(format!("expected production to be promoted, it is {production}").into());
    } else {
        println!("release {} is promoted to production", id.short());
    }
    Ok(())
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
        match engine.approve(id, stage, p, "reviewed evidence").await {
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
    let m = d.num_minutes();
    format!("{}h {:02}m", m / 60, m % 60)
}
