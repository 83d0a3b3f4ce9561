//! Two replicas of a deploy tool sharing one PostgreSQL: one dies mid-rollout, the other takes
//! over once its lease lapses, and nothing recorded is done twice.
//!
//! ```text
//! PROMOTION_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example replicas
//! ```
//!
//! (`--keep` leaves the example's schema in the database for a look with `psql`.)
//!
//! Both replicas are tasks of this process with their own connections, writer and leases,
//! exactly as two processes would be; replica `alpha` "dies" by having its task aborted in the
//! middle of a deployer call, so it never releases its lease and never renews it again, which
//! is what a SIGKILL or a lost node does (`tests/replicas_postgres.rs` does it with real
//! processes and SIGKILL). Time is real: the lease lasts 3 s.
//!
//! The deployer is a stand-in for the host's platform: it is slow (400 ms a call), it keeps
//! the traffic weight per stage, and it tolerates being asked twice for the same weight, as a
//! real platform must when a replica dies between doing a step and recording it. The record
//! printed at the end shows alpha's interrupted call as attempt 1 of canary's third step
//! (`deployment_started`, appended before every deployer call) and beta's as attempt 2.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use promotion::audit::postgres::PostgresBackend;
use promotion::audit::{AuditOptions, AuditStore, CheckpointSigner, CheckpointVerifier};
use promotion::testing::ScriptedGate;
use promotion::{
    DeployError, DeployTarget, Deployer, Engine, EventStore, Percent, Pipeline, Principal, Release,
    ReplicaId, ReplicaOptions, RolloutPlan, RolloutStep, StageSpec, StageStatus, StreamId,
    SystemClock,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

const LEASE: Duration = Duration::from_secs(3);

/// The host's platform, simulated: slow, stateful, idempotent per weight.
#[derive(Debug, Clone)]
struct Platform {
    weights: Arc<Mutex<BTreeMap<String, u8>>>,
    /// The call under way, as (stage, weight).
    calling: Arc<Mutex<Option<(String, u8)>>>,
    started: Instant,
}

impl Platform {
    fn say(&self, who: &str, what: String) {
        println!(
            "{:>6.2}s  {who:<6} {what}",
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// One replica's handle on the platform.
#[derive(Debug)]
struct Replica {
    platform: Platform,
    name: &'static str,
}

#[async_trait]
impl Deployer for Replica {
    async fn deploy(&self, target: &DeployTarget<'_>, weight: Percent) -> Result<(), DeployError> {
        let stage = target.stage;
        self.platform
            .say(self.name, format!("deploying {stage} at {weight} ..."));
        if let Ok(mut calling) = self.platform.calling.lock() {
            *calling = Some((stage.to_string(), weight.get()));
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        let before = self
            .platform
            .weights
            .lock()
            .map_err(|_| DeployError::new("platform state poisoned"))?
            .insert(stage.to_string(), weight.get());
        let again = if before == Some(weight.get()) {
            " (already there: a step redone after a takeover)"
        } else {
            ""
        };
        self.platform
            .say(self.name, format!("{stage} now at {weight}{again}"));
        if let Ok(mut calling) = self.platform.calling.lock() {
            *calling = None;
        }
        Ok(())
    }

    async fn roll_back(&self, target: &DeployTarget<'_>) -> Result<(), DeployError> {
        let stage = target.stage;
        self.platform
            .say(self.name, format!("rolling back {stage}"));
        Ok(())
    }
}

fn pipeline() -> Result<Pipeline, Error> {
    Ok(Pipeline::builder("shop-api", "1")
        .stage(StageSpec::new("integration").entry_gate(ScriptedGate::passing("api-tests")))
        .stage(
            StageSpec::new("canary")
                .after("integration")
                .rollout(RolloutPlan::new([
                    RolloutStep::new(5).analysis(ScriptedGate::passing("error-rate")),
                    RolloutStep::new(25).analysis(ScriptedGate::passing("error-rate")),
                    RolloutStep::new(50).analysis(ScriptedGate::passing("error-rate")),
                    RolloutStep::new(100).analysis(ScriptedGate::passing("error-rate")),
                ])),
        )
        .stage(
            StageSpec::new("production")
                .after("canary")
                .verification_gate(ScriptedGate::passing("smoke")),
        )
        .build()?)
}

fn open(url: &str, schema: &str, options: &AuditOptions) -> Result<AuditStore, Error> {
    let (w, r) = PostgresBackend::open_pair_in(url, schema)?;
    let description = format!("postgres:{}", w.describe());
    let options = options.clone();
    Ok(AuditStore::with_backend(
        Box::new(w),
        Box::new(r),
        description,
        options,
    )?)
}

fn replica(store: AuditStore, platform: &Platform, name: &'static str) -> Result<Engine, Error> {
    Ok(Engine::new(
        pipeline()?,
        Arc::new(store),
        Arc::new(Replica {
            platform: platform.clone(),
            name,
        }),
        Arc::new(SystemClock),
    )
    .replica(ReplicaOptions::new(ReplicaId::new(name)?, LEASE))?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let Ok(url) = std::env::var("PROMOTION_POSTGRES_URL") else {
        eprintln!(
            "This example needs PostgreSQL. Run it as\n  \
             PROMOTION_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example replicas"
        );
        std::process::exit(2);
    };
    let keep = std::env::args().any(|a| a == "--keep");
    let schema = format!(
        "replicas_example_{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S%3f")
    );
    // A key per run; a host keeps its key in a secret store.
    let signer = CheckpointSigner::generate("replicas.example/shop-api")?;
    let verifier: CheckpointVerifier = signer.verifier();
    let platform = Platform {
        weights: Arc::default(),
        calling: Arc::default(),
        started: Instant::now(),
    };

    let options = AuditOptions::new("replicas.example/shop-api").signer(signer);
    let alpha_store = open(&url, &schema, &options)?;
    let beta_store = open(&url, &schema, &options)?;
    println!("log {}: schema {schema}", alpha_store.origin());
    let alpha = replica(alpha_store.clone(), &platform, "alpha")?;
    let beta = replica(beta_store.clone(), &platform, "beta")?;

    let release = Release::builder(
        "shop-api 3.1.0",
        "git@example.com:shop/api",
        "3f1c9a7e2b5d4c8f9a0b1c2d3e4f5a6b7c8d9e0f",
        chrono::Utc::now(),
    )
    .artifact(
        "image",
        "sha256:4a5c3e1f0b9d8c7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e",
    )
    .builder("ci")
    .build()?;
    let id = alpha
        .register(release, &Principal::new("ci", ["ci"])?)
        .await?;
    println!("registered {}; alpha drives it, beta stands by", id.short());

    // alpha works until it is in the middle of canary's third step (its deployer call for
    // 50 % is under way), then dies.
    let alpha_task = tokio::spawn(async move { alpha.run_until_blocked(&id).await });
    let third_step = Some(("canary".to_owned(), 50));
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if platform
            .calling
            .lock()
            .map(|c| *c == third_step)
            .unwrap_or(true)
        {
            break;
        }
        if alpha_task.is_finished() {
            return Err("alpha finished without reaching canary's third step".into());
        }
    }
    alpha_task.abort();
    platform.say(
        "alpha",
        "dies (its lease is neither released nor renewed)".into(),
    );

    // beta finds canary leased, waits for the lease to lapse, takes over and finishes.
    let died = Instant::now();
    let progress = beta.run_until_blocked(&id).await?;
    platform.say(
        "beta",
        format!(
            "done {:.1}s after alpha died (lease {}s): production is {}",
            died.elapsed().as_secs_f64(),
            LEASE.as_secs(),
            progress.status("production")
        ),
    );
    assert_eq!(progress.status("production"), StageStatus::Promoted);

    // The record: every step deployed once, every deployer call begun in the log (alpha's
    // last call among them, although alpha never recorded its outcome), and a log anyone with
    // the key can verify.
    let events = beta_store.read(&StreamId::for_release(&id)).await?;
    println!("\nrecorded deployments:");
    let mut again = 0;
    for r in &events {
        match &r.event.body {
            promotion::EventBody::DeploymentStarted {
                stage,
                weight,
                attempt,
                ..
            } => {
                let note = if *attempt > 1 {
                    again += 1;
                    format!(" (attempt {attempt}: the last one's outcome was never recorded)")
                } else {
                    String::new()
                };
                println!("  #{:<3} {stage} at {weight}: begun{note}", r.version);
            }
            promotion::EventBody::StepDeployed { stage, weight, .. } => {
                println!("  #{:<3} {stage} at {weight}: deployed", r.version);
            }
            _ => {}
        }
    }
    assert_eq!(
        again, 1,
        "alpha's interrupted call shows as an earlier attempt"
    );
    let report = beta_store.verify(Some(&verifier)).await?;
    println!(
        "\naudit log verified: {} entries, root {}",
        report.entries,
        hex(&report.root)
    );

    drop((alpha_store, beta_store));
    if keep {
        println!("kept schema {schema}");
    } else {
        let mut admin = tokio::task::spawn_blocking(move || {
            postgres::Client::connect(&url, postgres::NoTls)
                .and_then(|mut c| c.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE")))
        })
        .await?;
        admin
            .as_mut()
            .map_err(|e| format!("dropping the example's schema: {e}"))?;
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
