//! Property test of replicas: three engines sharing one store, their `advance` calls polled in
//! random interleavings, with deployer calls that yield, virtual time that jumps (leases lapse
//! in the middle of work) and replicas that die mid-call. Afterwards one replica finishes the
//! release alone. Checked:
//! - every `advance` that completes returns `Ok` (conflicts are re-decided, fenced results
//!   dropped, never surfaced as errors);
//! - the log records every rollout step exactly once and promotes every stage exactly once;
//! - a step is deployed more than once only if a replica died or a lease could have lapsed
//!   (virtual time moved by at least the lease's ttl) — otherwise the lease kept every other
//!   replica out.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::executor::block_on;
use promotion::*;
use proptest::prelude::*;
use support::{pipeline, release, t0, STEPS_PER_RELEASE};

const TTL: Duration = Duration::from_secs(30);

/// Completes on its second poll, waking itself: a deployer call that takes "a while" in
/// interleaving terms.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Yielding {
    calls: Arc<Mutex<BTreeMap<(String, u8), usize>>>,
}

#[async_trait]
impl Deployer for Yielding {
    async fn deploy(&self, target: &DeployTarget<'_>, weight: Percent) -> Result<(), DeployError> {
        let stage = target.stage;
        YieldOnce(false).await;
        *self
            .calls
            .lock()
            .unwrap()
            .entry((stage.to_string(), weight.get()))
            .or_insert(0) += 1;
        Ok(())
    }
    async fn roll_back(&self, _target: &DeployTarget<'_>) -> Result<(), DeployError> {
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Poll replica `i`'s `advance` once (starting one if it has none).
    Poll(usize),
    /// Move virtual time forward.
    Tick(u64),
    /// Replica `i` dies: its call in progress is dropped, its leases are neither renewed nor
    /// released.
    Kill(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..3usize).prop_map(Op::Poll),
        2 => (0..45u64).prop_map(Op::Tick),
        1 => (0..3usize).prop_map(Op::Kill),
    ]
}

type Call = Pin<Box<dyn Future<Output = Result<Progress, EngineError>> + Send>>;

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let clock = ManualClock::at(t0());
    let store = Arc::new(InMemoryStore::with_clock(Arc::new(clock.clone())));
    let deployer = Yielding::default();
    let engines: Vec<Engine> = (0..3)
        .map(|i| {
            Engine::new(
                pipeline(),
                store.clone(),
                Arc::new(deployer.clone()),
                Arc::new(clock.clone()),
            )
            .replica(ReplicaOptions::new(
                ReplicaId::new(format!("r{i}")).unwrap(),
                TTL,
            ))
            .unwrap()
        })
        .collect();
    let id =
        block_on(engines[0].register(release(1), &Principal::new("ci", ["ci"]).unwrap())).unwrap();
    let mut calls: Vec<Option<Call>> = vec![None, None, None];
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let (mut kills, mut elapsed) = (0, Duration::ZERO);
    for op in ops {
        match *op {
            Op::Poll(i) => {
                let call = calls[i].get_or_insert_with(|| {
                    let (engine, id) = (engines[i].clone(), id);
                    Box::pin(async move { engine.advance(&id).await })
                });
                if let Poll::Ready(result) = call.as_mut().poll(&mut cx) {
                    calls[i] = None;
                    prop_assert!(result.is_ok(), "replica {i}: {:?}", result.err());
                }
            }
            Op::Tick(s) => {
                clock.advance(Duration::from_secs(s));
                elapsed += Duration::from_secs(s);
            }
            Op::Kill(i) => {
                if calls[i].take().is_some() {
                    kills += 1;
                }
            }
        }
    }
    // The others die too; replica 0 (a fresh one) finishes alone once every lease has lapsed.
    kills += calls.iter().filter(|c| c.is_some()).count();
    drop(calls);
    let survivor = engines[0].clone();
    let mut promoted = false;
    for _ in 0..10 {
        clock.advance(TTL * 2);
        let p = block_on(survivor.advance(&id)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if p.status("production") == StageStatus::Promoted {
            promoted = true;
            break;
        }
    }
    prop_assert!(promoted, "the survivor could not finish the release");

    let events: Vec<Event> = block_on(store.read(&StreamId::for_release(&id)))
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect();
    let mut steps = BTreeMap::new();
    let mut promotions = BTreeMap::new();
    for e in &events {
        match &e.body {
            EventBody::StepDeployed { stage, step, .. } => {
                *steps.entry((stage.to_string(), *step)).or_insert(0) += 1
            }
            EventBody::StagePromoted { stage } => {
                *promotions.entry(stage.to_string()).or_insert(0) += 1
            }
            _ => {}
        }
    }
    prop_assert_eq!(steps.len(), STEPS_PER_RELEASE);
    prop_assert!(
        steps.values().all(|&n| n == 1),
        "steps recorded twice: {steps:?}"
    );
    prop_assert_eq!(promotions.len(), 5);
    prop_assert!(promotions.values().all(|&n| n == 1), "{promotions:?}");
    let calls = deployer.calls.lock().unwrap().clone();
    prop_assert_eq!(calls.len(), STEPS_PER_RELEASE);
    let repeated: Vec<_> = calls.iter().filter(|(_, &n)| n > 1).collect();
    if !repeated.is_empty() {
        prop_assert!(
            kills > 0 || elapsed >= TTL,
            "steps deployed twice though no replica died and no lease could lapse: {repeated:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn replicas_in_random_interleavings_record_every_step_once(
        ops in proptest::collection::vec(op(), 0..160)
    ) {
        run(&ops)?;
    }
}
