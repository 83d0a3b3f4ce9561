//! Every call to the deployer is recorded as begun (`deployment_started`) before it is made, so
//! the log holds every deployment attempted, even one whose outcome was never recorded because
//! the process stopped during the call.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::channel::oneshot;
use futures::executor::block_on;
use promotion::testing::RecordingDeployer;
use promotion::*;

mod support;
use support::{ci, events_of, pipeline, release, t0};

fn engine(store: &Arc<InMemoryStore>, deployer: Arc<dyn Deployer>, clock: &ManualClock) -> Engine {
    Engine::new(pipeline(), store.clone(), deployer, Arc::new(clock.clone()))
}

/// The deployment events of `events` as (kind, stage, step, attempt).
fn deployments(events: &[Event]) -> Vec<(&'static str, String, u32, u32)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::DeploymentStarted {
                stage,
                step,
                attempt,
                ..
            } => Some(("started", stage.to_string(), *step, *attempt)),
            EventBody::StepDeployed { stage, step, .. } => {
                Some(("deployed", stage.to_string(), *step, 0))
            }
            EventBody::DeploymentFailed { stage, step, .. } => {
                Some(("failed", stage.to_string(), *step, 0))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn each_deployer_call_is_recorded_as_begun_before_it_is_made() {
    let store = Arc::new(InMemoryStore::new());
    let clock = ManualClock::auto_advancing(t0());
    let deployer = RecordingDeployer::new();
    deployer.fail_deploy("canary", Some(50), 1);
    let engine = engine(&store, Arc::new(deployer.clone()), &clock);
    let id = block_on(engine.register(release(1), &ci())).unwrap();
    let progress = block_on(engine.run_until_blocked(&id)).unwrap();
    assert_eq!(progress.status("dev"), StageStatus::Promoted);
    let log = events_of(&store, &id);
    let mut expected = Vec::new();
    for stage in ["dev", "integration", "compliance"] {
        expected.push(("started", stage.to_owned(), 0, 1));
        expected.push(("deployed", stage.to_owned(), 0, 0));
    }
    expected.extend([
        ("started", "canary".to_owned(), 0, 1),
        ("deployed", "canary".to_owned(), 0, 0),
        ("started", "canary".to_owned(), 1, 1),
        ("failed", "canary".to_owned(), 1, 0),
    ]);
    assert_eq!(deployments(&log), expected);
    // One `deployment_started` per call the deployer saw, at the weight it was asked for.
    let started: Vec<u8> = log
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::DeploymentStarted { weight, .. } => Some(weight.get()),
            _ => None,
        })
        .collect();
    let asked: Vec<u8> = ["dev", "integration", "compliance", "canary"]
        .iter()
        .flat_map(|stage| deployer.weights(stage))
        .collect();
    assert_eq!(started, asked);
    // The intent is the engine's; the outcome the deployer's.
    let actor = |kind: &str| {
        log.iter()
            .find(|e| e.body.kind() == kind)
            .map(|e| e.actor.clone())
            .unwrap()
    };
    assert_eq!(actor("deployment_started"), Actor::Engine);
    assert_eq!(actor("step_deployed"), Actor::Deployer);
    // Replaying the log gives the state the engine holds.
    let live = block_on(engine.state(&id)).unwrap();
    assert_eq!(live, ReleaseState::replay(log.iter()));
}

/// A deployer whose first call never returns (the process is about to stop) and whose later
/// calls succeed. Says when the first call has begun.
#[derive(Debug)]
struct StopsDuringFirstCall {
    calls: AtomicU32,
    entered: Mutex<Option<oneshot::Sender<()>>>,
}

#[async_trait]
impl Deployer for StopsDuringFirstCall {
    async fn deploy(
        &self,
        _target: &DeployTarget<'_>,
        _weight: Percent,
    ) -> Result<(), DeployError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            if let Some(tx) = self.entered.lock().unwrap().take() {
                let _ = tx.send(());
            }
            futures::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn roll_back(&self, _target: &DeployTarget<'_>) -> Result<(), DeployError> {
        Ok(())
    }
}

#[test]
fn a_deployment_whose_outcome_was_never_recorded_is_in_the_log_and_is_attempted_again() {
    let store = Arc::new(InMemoryStore::new());
    let clock = ManualClock::auto_advancing(t0());
    let (tx, entered) = oneshot::channel();
    let stopping = Arc::new(StopsDuringFirstCall {
        calls: AtomicU32::new(0),
        entered: Mutex::new(Some(tx)),
    });
    let first = engine(&store, stopping.clone(), &clock);
    let id = block_on(first.register(release(1), &ci())).unwrap();
    // The process stops while the deployer is at work on dev: the call is abandoned midway.
    block_on(async {
        let advance = Box::pin(first.run_until_blocked(&id));
        match futures::future::select(advance, entered).await {
            futures::future::Either::Right((entered, _abandoned)) => entered.unwrap(),
            futures::future::Either::Left((progress, _)) => {
                panic!("the deployer was never called: {progress:?}")
            }
        }
    });
    drop(first);
    let log = events_of(&store, &id);
    assert_eq!(
        deployments(&log),
        vec![("started", "dev".into(), 0, 1)],
        "the attempt is in the log although its outcome is not"
    );
    let state = ReleaseState::replay(log.iter());
    assert_eq!(state.stage("dev").deploy_attempts(), 1);
    assert_eq!(state.status("dev"), StageStatus::Scheduled);

    // The next process (another engine on the same log) deploys dev again, as attempt 2.
    let deployer = RecordingDeployer::new();
    let next = engine(&store, Arc::new(deployer.clone()), &clock);
    let progress = block_on(next.run_until_blocked(&id)).unwrap();
    assert_eq!(progress.status("production"), StageStatus::Promoted);
    assert_eq!(deployer.weights("dev"), vec![100]);
    let log = events_of(&store, &id);
    let dev: Vec<_> = deployments(&log)
        .into_iter()
        .filter(|d| d.1 == "dev")
        .collect();
    assert_eq!(
        dev,
        vec![
            ("started", "dev".into(), 0, 1),
            ("started", "dev".into(), 0, 2),
            ("deployed", "dev".into(), 0, 0),
        ]
    );
    let retry = log
        .iter()
        .find(|e| matches!(e.body, EventBody::DeploymentStarted { attempt: 2, .. }))
        .unwrap();
    assert!(
        retry
            .body
            .to_string()
            .contains("outcome of the last one was not recorded"),
        "{}",
        retry.body
    );
    // Each step of the canary took one attempt; attempts count per step.
    let canary: Vec<_> = deployments(&log)
        .into_iter()
        .filter(|d| d.1 == "canary" && d.0 == "started")
        .map(|d| (d.2, d.3))
        .collect();
    assert_eq!(canary, vec![(0, 1), (1, 1), (2, 1)]);
    assert_eq!(stopping.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_deployment_can_be_begun_only_when_its_step_is_due() {
    let pipeline = pipeline();
    let mut state = ReleaseState::default();
    let now = t0();
    let register = Command::Register {
        release: release(1),
        initiator: ci(),
    };
    for e in decide(&pipeline, &state, &register, now).unwrap() {
        state = apply(state, &e);
    }
    // dev has not been scheduled: nothing to deploy yet.
    let begin = |stage: &str, step| Command::BeginDeployment {
        stage: StageName::new(stage).unwrap(),
        step,
    };
    let refused = decide(&pipeline, &state, &begin("dev", 0), now).unwrap_err();
    assert!(
        matches!(
            &refused,
            Refusal::WrongStatus { stage, action, .. }
                if stage.as_str() == "dev" && action.contains("begin a deployment")
        ),
        "{refused:?}"
    );
    assert!(matches!(
        decide(&pipeline, &state, &begin("nowhere", 0), now),
        Err(Refusal::UnknownStage(s)) if s == "nowhere"
    ));
}

#[test]
fn a_deployment_started_event_has_a_stable_shape() {
    let event = Event {
        at: t0(),
        actor: Actor::Engine,
        request: None,
        body: EventBody::DeploymentStarted {
            stage: StageName::new("canary").unwrap(),
            step: 1,
            weight: Percent::new(50).unwrap(),
            attempt: 2,
        },
    };
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "at": "2026-11-26T09:00:00Z",
            "actor": {"kind": "engine"},
            "type": "deployment_started",
            "stage": "canary",
            "step": 1,
            "weight": 50,
            "attempt": 2
        })
    );
    let back: Event = serde_json::from_value(json).unwrap();
    assert_eq!(back, event);
    assert_eq!(back.body.kind(), "deployment_started");
    assert_eq!(back.body.stage().map(|s| s.as_str()), Some("canary"));
}
