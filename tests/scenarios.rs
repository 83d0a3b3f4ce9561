//! Scenario tests of the engine on a virtual clock: no sleeps, no I/O.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::executor::block_on;
use promotion::testing::{RecordingDeployer, ScriptedGate, Step};
use promotion::*;

fn t0() -> DateTime<Utc> {
    "2026-11-26T09:00:00Z".parse().unwrap()
}

fn release(tag: &str) -> Release {
    Release::builder(
        format!("api {tag}"),
        "git@example.com:shop/api",
        "c".repeat(40),
        "2026-11-26T08:00:00Z".parse().unwrap(),
    )
    .artifact("api-image", format!("sha256:{}", "ab".repeat(32)))
    .builder("ci.example.com")
    .contributor("dana")
    .label("tag", tag)
    .build()
    .unwrap()
}

fn who(id: &str, groups: &[&str]) -> Principal {
    Principal::new(id, groups.iter().copied()).unwrap()
}

struct Harness {
    engine: Engine,
    clock: ManualClock,
    deployer: RecordingDeployer,
    store: Arc<InMemoryStore>,
}

fn harness(pipeline: Pipeline, clock: ManualClock) -> Harness {
    let deployer = RecordingDeployer::new();
    let store = Arc::new(InMemoryStore::new());
    let engine = Engine::new(
        pipeline,
        store.clone(),
        Arc::new(deployer.clone()),
        Arc::new(clock.clone()),
    );
    Harness {
        engine,
        clock,
        deployer,
        store,
    }
}

impl Harness {
    fn events(&self, id: &ReleaseId) -> Vec<Event> {
        block_on(self.store.read(&StreamId::for_release(id)))
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .collect()
    }
    fn kinds(&self, id: &ReleaseId) -> Vec<&'static str> {
        self.events(id).iter().map(|e| e.body.kind()).collect()
    }
    fn register(&self, r: Release) -> ReleaseId {
        block_on(self.engine.register(r, &who("ci-bot", &["ci"]))).unwrap()
    }
    fn replay_matches(&self, id: &ReleaseId) {
        let live = block_on(self.engine.state(id)).unwrap();
        let replayed = ReleaseState::replay(self.events(id).iter());
        assert_eq!(live, replayed);
        // and through serde: what a store would hold
        let json: Vec<String> = self
            .events(id)
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        let decoded: Vec<Event> = json
            .iter()
            .map(|j| serde_json::from_str(j).unwrap())
            .collect();
        assert_eq!(ReleaseState::replay(decoded.iter()), live);
    }
}

fn two_group_approval() -> ApprovalPolicy {
    ApprovalPolicy::new(ApprovalRule::all([
        ApprovalRule::quorum("sre", 1).unwrap(),
        ApprovalRule::quorum("security", 1).unwrap(),
    ]))
}

fn five_stages() -> Pipeline {
    Pipeline::builder("shop", "1")
        .break_glass_group("incident-commanders")
        .stage(StageSpec::new("dev").entry_gate(ScriptedGate::passing("unit-tests")))
        .stage(
            StageSpec::new("integration")
                .after("dev")
                .entry_gate(ScriptedGate::passing("integration-tests"))
                .approval(ApprovalPolicy::new(ApprovalRule::quorum("qa", 1).unwrap())),
        )
        .stage(
            StageSpec::new("compliance")
                .after("integration")
                .entry_gate(ScriptedGate::passing("change-record"))
                .approval(two_group_approval().distinct_from_upstream()),
        )
        .stage(
            StageSpec::new("canary")
                .after("compliance")
                .rollout(RolloutPlan::new([
                    RolloutStep::new(1)
                        .pause(Duration::from_secs(600))
                        .analysis(ScriptedGate::passing("error-rate")),
                    RolloutStep::new(10)
                        .pause(Duration::from_secs(600))
                        .analysis(ScriptedGate::passing("error-rate")),
                    RolloutStep::new(100),
                ])),
        )
        .stage(
            StageSpec::new("production")
                .after("canary")
                .verification_gate(ScriptedGate::passing("smoke"))
                .soak(Duration::from_secs(6 * 3600)),
        )
        .build()
        .unwrap()
}

#[test]
fn five_stage_promotion_with_hours_of_soak_runs_on_virtual_time() {
    let h = harness(five_stages(), ManualClock::auto_advancing(t0()));
    let id = h.register(release("1"));
    let p = block_on(h.engine.run_until_blocked(&id)).unwrap();
    assert_eq!(p.status("dev"), StageStatus::Promoted);
    assert_eq!(p.status("integration"), StageStatus::AwaitingApproval);
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("integration", &who("quinn", &["qa"]), "tested").unwrap(),
    ))
    .unwrap();
    let p = block_on(h.engine.run_until_blocked(&id)).unwrap();
    assert_eq!(p.status("compliance"), StageStatus::AwaitingApproval);
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("compliance", &who("sam", &["sre"]), "ok").unwrap(),
    ))
    .unwrap();
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("compliance"), StageStatus::AwaitingApproval);
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("compliance", &who("sec", &["security"]), "ok").unwrap(),
    ))
    .unwrap();
    let p = block_on(h.engine.run_until_blocked(&id)).unwrap();
    for s in ["dev", "integration", "compliance", "canary", "production"] {
        assert_eq!(p.status(s), StageStatus::Promoted, "{s}");
    }
    assert!(p.waiting().is_empty());
    assert_eq!(h.deployer.weights("canary"), [1, 10, 100]);
    assert_eq!(h.deployer.weights("production"), [100]);
    // Two ten-minute pauses and a six-hour soak passed on the virtual clock.
    assert!(h.clock.now() - t0() >= chrono::Duration::minutes(6 * 60 + 20));
    h.replay_matches(&id);
}

#[test]
fn approval_expires() {
    let pipeline = Pipeline::builder("shop", "1")
        .stage(
            StageSpec::new("prod").approval(
                ApprovalPolicy::new(ApprovalRule::quorum("sre", 2).unwrap())
                    .expires_after(Duration::from_secs(3600)),
            ),
        )
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::at(t0()));
    let id = h.register(release("1"));
    block_on(h.engine.advance(&id)).unwrap();
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("prod", &who("a", &["sre"]), "").unwrap(),
    ))
    .unwrap();
    h.clock.advance(Duration::from_secs(3601));
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("prod", &who("b", &["sre"]), "").unwrap(),
    ))
    .unwrap();
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::AwaitingApproval);
    assert!(matches!(p.waiting(), [Waiting::Approval { valid, .. }] if valid.len() == 1));
    // The expired approver may approve again; now two valid approvals.
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("prod", &who("a", &["sre"]), "again").unwrap(),
    ))
    .unwrap();
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::Promoted);
}

#[test]
fn soak_blocks_manual_promotion_downstream() {
    let pipeline = Pipeline::builder("shop", "1")
        .stage(StageSpec::new("canary").soak(Duration::from_secs(7200)))
        .stage(StageSpec::new("prod").after("canary").manual_start())
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::at(t0()));
    let id = h.register(release("1"));
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert!(matches!(p.status("canary"), StageStatus::Soaking { .. }));
    let before = h.events(&id).len();
    let err = block_on(h.engine.submit(
        &id,
        HostCommand::start("prod", &who("op", &["ops"])).unwrap(),
    ))
    .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Refused(Refusal::UpstreamNotPromoted {
                status: StageStatus::Soaking { .. },
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(h.events(&id).len(), before, "a refusal appends nothing");
    h.clock.advance(Duration::from_secs(7200));
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("canary"), StageStatus::Promoted);
    assert!(
        matches!(p.waiting(), [Waiting::ManualStart { stage, .. }] if stage == "prod"),
        "{:?}",
        p.waiting()
    );
    block_on(h.engine.submit(
        &id,
        HostCommand::start("prod", &who("op", &["ops"])).unwrap(),
    ))
    .unwrap();
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::Promoted);
}

#[test]
fn failed_canary_analysis_rolls_back_and_is_recorded() {
    let pipeline = Pipeline::builder("shop", "1")
        .stage(StageSpec::new("canary").rollout(RolloutPlan::new([
            RolloutStep::new(5).analysis(ScriptedGate::passing("latency")),
            RolloutStep::new(25).analysis(ScriptedGate::new(
                "error-rate",
                [Step::Fail("5xx ratio 4.2% > 1%".into())],
            )),
            RolloutStep::new(100),
        ])))
        .stage(StageSpec::new("prod").after("canary"))
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::auto_advancing(t0()));
    let id = h.register(release("1"));
    let p = block_on(h.engine.run_until_blocked(&id)).unwrap();
    assert_eq!(p.status("canary"), StageStatus::RolledBack);
    assert_eq!(p.status("prod"), StageStatus::Waiting);
    assert_eq!(h.deployer.weights("canary"), [5, 25]);
    assert_eq!(h.deployer.rollbacks("canary"), 1);
    let st = p.state().stage("canary");
    assert_eq!(
        st.failure(),
        Some(&FailureReason::GateFailed {
            phase: PhaseId::Analysis { step: 1 },
            gate: GateName::new("error-rate").unwrap()
        })
    );
    let kinds = h.kinds(&id);
    let tail = &kinds[kinds.len() - 4..];
    assert_eq!(
        tail,
        [
            "gate_evaluated",
            "phase_failed",
            "rollback_started",
            "rolled_back"
        ]
    );
    h.replay_matches(&id);
}

#[test]
fn concurrent_append_conflict_appends_nothing() {
    let pipeline = Pipeline::builder("shop", "1")
        .stage(
            StageSpec::new("prod")
                .approval(ApprovalPolicy::new(ApprovalRule::quorum("sre", 2).unwrap())),
        )
        .build()
        .unwrap();
    let h = harness(pipeline.clone(), ManualClock::at(t0()));
    let id = h.register(release("1"));
    block_on(h.engine.advance(&id)).unwrap();
    // Two replicas read the same state…
    let stale = block_on(h.engine.state(&id)).unwrap();
    let stream = StreamId::for_release(&id);
    let cmd = |p: &str| Command::Approve {
        stage: StageName::new("prod").unwrap(),
        principal: who(p, &["sre"]),
        comment: String::new(),
    };
    let first = decide(&pipeline, &stale, &cmd("a"), t0()).unwrap();
    let second = decide(&pipeline, &stale, &cmd("b"), t0()).unwrap();
    block_on(
        h.store
            .append(&stream, ExpectedVersion::Exact(stale.version()), &first),
    )
    .unwrap();
    let before = h.events(&id);
    let err = block_on(
        h.store
            .append(&stream, ExpectedVersion::Exact(stale.version()), &second),
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { actual, .. } if actual == stale.version() + 1));
    assert_eq!(h.events(&id), before, "the losing append changed nothing");
    // The loser retries on fresh state and both approvals count, once each.
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("prod", &who("b", &["sre"]), "").unwrap(),
    ))
    .unwrap();
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::Promoted);
    assert_eq!(p.state().stage("prod").approvals().len(), 2);
}

#[test]
fn approvals_are_refused_with_reasons() {
    let pipeline = Pipeline::builder("shop", "1")
        .stage(
            StageSpec::new("compliance")
                .entry_gate(ScriptedGate::passing("change-record"))
                .approval(two_group_approval()),
        )
        .stage(
            StageSpec::new("prod")
                .after("compliance")
                .approval(two_group_approval().distinct_from_upstream()),
        )
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::at(t0()));
    let id = h.register(release("1"));
    let refusal = |r: Result<Vec<Event>, EngineError>| match r {
        Err(EngineError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let e = &h.engine;
    // before the entry gates ran
    let r = refusal(block_on(e.submit(
        &id,
        HostCommand::approve("compliance", &who("s", &["sre"]), "").unwrap(),
    )));
    assert_eq!(r.to_string(), "stage `compliance` is ready; cannot approve");
    block_on(e.advance(&id)).unwrap();
    let r = refusal(block_on(e.submit(
        &id,
        HostCommand::approve("compliance", &who("x", &["dev"]), "").unwrap(),
    )));
    assert!(matches!(r, Refusal::NotEligible { .. }), "{r}");
    assert!(r.to_string().contains("`security`, `sre`"), "{r}");
    let r = refusal(block_on(e.submit(
        &id,
        HostCommand::approve("compliance", &who("dana", &["sre"]), "").unwrap(),
    )));
    assert_eq!(
        r.to_string(),
        "`dana` may not approve stage `compliance`: they contributed to the release"
    );
    let r = refusal(block_on(e.submit(
        &id,
        HostCommand::approve("compliance", &who("ci-bot", &["sre"]), "").unwrap(),
    )));
    assert!(matches!(
        r,
        Refusal::SelfApproval {
            why: "they started this promotion",
            ..
        }
    ));
    block_on(e.submit(
        &id,
        HostCommand::approve("compliance", &who("sam", &["sre"]), "").unwrap(),
    ))
    .unwrap();
    let r = refusal(block_on(e.submit(
        &id,
        HostCommand::approve("compliance", &who("sam", &["sre"]), "").unwrap(),
    )));
    assert!(matches!(r, Refusal::DuplicateApproval { .. }));
    let r = refusal(block_on(e.submit(
        &id,
        HostCommand::approve("nope", &who("sam", &["sre"]), "").unwrap(),
    )));
    assert_eq!(r.to_string(), "pipeline has no stage `nope`");
    block_on(e.submit(
        &id,
        HostCommand::approve("compliance", &who("sue", &["security"]), "").unwrap(),
    ))
    .unwrap();
    let p = block_on(e.advance(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::AwaitingApproval);
    let r = refusal(block_on(e.submit(
        &id,
        HostCommand::approve("prod", &who("sam", &["sre"]), "").unwrap(),
    )));
    assert!(matches!(r, Refusal::NotDistinct { .. }), "{r}");
    // commands on a finished stage
    let r = refusal(block_on(e.submit(
        &id,
        HostCommand::approve("compliance", &who("zed", &["sre"]), "").unwrap(),
    )));
    assert!(matches!(r, Refusal::StageFinished { .. }), "{r}");
    // rejection by an eligible approver rejects the stage
    let r = refusal(block_on(e.submit(
        &id,
        HostCommand::reject("prod", &who("zoe", &["security"]), " ").unwrap(),
    )));
    assert_eq!(r, Refusal::EmptyJustification("a rejection"));
    block_on(e.submit(
        &id,
        HostCommand::reject("prod", &who("zoe", &["security"]), "missing pen test").unwrap(),
    ))
    .unwrap();
    let p = block_on(e.advance(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::Rejected);
    assert!(p.waiting().is_empty());
    h.replay_matches(&id);
}

#[test]
fn approval_is_bound_to_the_evidence_it_saw() {
    // Approvals accepted while gates run; the gate is pending, then passes with new evidence.
    let pipeline = Pipeline::builder("shop", "1")
        .stage(
            StageSpec::new("prod")
                .entry_gate(ScriptedGate::new(
                    "tests",
                    [
                        Step::Pending(Duration::from_secs(60)),
                        Step::Pass("412 passed".into()),
                    ],
                ))
                .approval(
                    ApprovalPolicy::new(ApprovalRule::quorum("sre", 1).unwrap()).before_gates(),
                ),
        )
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::at(t0()));
    let id = h.register(release("1"));
    block_on(h.engine.advance(&id)).unwrap();
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("prod", &who("sam", &["sre"]), "looks fine").unwrap(),
    ))
    .unwrap();
    h.clock.advance(Duration::from_secs(60));
    let p = block_on(h.engine.advance(&id)).unwrap();
    // The evidence changed after sam approved: the approval no longer counts.
    assert_eq!(p.status("prod"), StageStatus::AwaitingApproval);
    assert!(matches!(p.waiting(), [Waiting::Approval { valid, .. }] if valid.is_empty()));
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("prod", &who("sam", &["sre"]), "re-checked").unwrap(),
    ))
    .unwrap();
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::Promoted);
}

#[test]
fn a_new_pipeline_version_voids_earlier_approvals() {
    let build = |v: &str| {
        Pipeline::builder("shop", v)
            .stage(
                StageSpec::new("prod")
                    .approval(ApprovalPolicy::new(ApprovalRule::quorum("sre", 2).unwrap())),
            )
            .build()
            .unwrap()
    };
    let clock = ManualClock::at(t0());
    let h = harness(build("1"), clock.clone());
    let id = h.register(release("1"));
    block_on(h.engine.advance(&id)).unwrap();
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("prod", &who("a", &["sre"]), "").unwrap(),
    ))
    .unwrap();
    let v2 = Engine::new(
        build("2"),
        h.store.clone(),
        Arc::new(h.deployer.clone()),
        Arc::new(clock),
    );
    block_on(v2.submit(
        &id,
        HostCommand::approve("prod", &who("b", &["sre"]), "").unwrap(),
    ))
    .unwrap();
    let p = block_on(v2.advance(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::AwaitingApproval);
    assert!(h.kinds(&id).contains(&"pipeline_version_adopted"));
    block_on(v2.submit(
        &id,
        HostCommand::approve("prod", &who("a", &["sre"]), "under v2").unwrap(),
    ))
    .unwrap();
    assert_eq!(
        block_on(v2.advance(&id)).unwrap().status("prod"),
        StageStatus::Promoted
    );
}

#[test]
fn break_glass_override_needs_privilege_and_justification() {
    let pipeline = Pipeline::builder("shop", "1")
        .break_glass_group("incident-commanders")
        .stage(
            StageSpec::new("prod")
                .entry_gate(ScriptedGate::failing("change-freeze"))
                .entry_gate(ScriptedGate::passing("tests")),
        )
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::at(t0()));
    let id = h.register(release("1"));
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::Failed);
    let e = &h.engine;
    let err = block_on(e.submit(
        &id,
        HostCommand::override_gate("prod", "change-freeze", &who("dev", &["dev"]), "x").unwrap(),
    ))
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("only members of `incident-commanders` may"),
        "{err}"
    );
    let ic = who("ivy", &["incident-commanders"]);
    let err = block_on(e.submit(
        &id,
        HostCommand::override_gate("prod", "change-freeze", &ic, "  ").unwrap(),
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("needs a written justification"),
        "{err}"
    );
    let err = block_on(e.submit(
        &id,
        HostCommand::override_gate("prod", "tests", &ic, "why").unwrap(),
    ))
    .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Refused(Refusal::NothingToOverride { .. })
    ));
    block_on(e.submit(
        &id,
        HostCommand::override_gate("prod", "change-freeze", &ic, "sev1 fix, INC-4711").unwrap(),
    ))
    .unwrap();
    let p = block_on(e.advance(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::Promoted);
    let st = p.state().stage("prod");
    assert_eq!(st.overrides().len(), 1);
    assert_eq!(st.overrides()[0].justification(), "sev1 fix, INC-4711");
    assert_eq!(h.deployer.weights("prod"), [100]);
    h.replay_matches(&id);
}

#[test]
fn all_gates_must_pass_in_the_same_round() {
    let a = Arc::new(ScriptedGate::new(
        "a",
        [
            Step::Pass("".into()),
            Step::Fail("".into()),
            Step::Pass("".into()),
        ],
    ));
    let b = Arc::new(ScriptedGate::new(
        "b",
        [
            Step::Fail("".into()),
            Step::Pass("".into()),
            Step::Pass("".into()),
        ],
    ));
    let policy = PhasePolicy {
        all_pass_in_same_round: true,
        fail_fast: false,
        interval: Some(Duration::from_secs(300)),
        timeout: Some(Duration::from_secs(3600)),
        ..PhasePolicy::default()
    };
    let pipeline = Pipeline::builder("shop", "1")
        .stage(
            StageSpec::new("prod")
                .entry_gate(GateSpec::new(a.clone()))
                .entry_gate(GateSpec::new(b.clone()))
                .entry_policy(policy),
        )
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::auto_advancing(t0()));
    let id = h.register(release("1"));
    let p = block_on(h.engine.run_until_blocked(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::Promoted);
    // Rounds 1 and 2 each had one gate passing; only round 3 had both.
    assert_eq!((a.calls(), b.calls()), (3, 3));
    assert_eq!(p.state().stage("prod").entry().round(), 3);
    assert_eq!(h.clock.now() - t0(), chrono::Duration::seconds(600));
}

#[test]
fn minimum_success_duration_resamples_until_it_has_held() {
    let g = Arc::new(ScriptedGate::passing("slo"));
    let pipeline = Pipeline::builder("shop", "1")
        .stage(
            StageSpec::new("prod")
                .entry_gate(GateSpec::new(g.clone()))
                .entry_policy(PhasePolicy {
                    interval: Some(Duration::from_secs(60)),
                    min_success: Duration::from_secs(300),
                    ..PhasePolicy::default()
                }),
        )
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::auto_advancing(t0()));
    let id = h.register(release("1"));
    let p = block_on(h.engine.run_until_blocked(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::Promoted);
    assert_eq!(g.calls(), 6, "sampled at 0,1,2,3,4,5 minutes");
}

#[test]
fn timeout_fails_a_phase_that_never_passes() {
    let pipeline = Pipeline::builder("shop", "1")
        .stage(
            StageSpec::new("prod")
                .entry_gate(ScriptedGate::failing("flaky"))
                .entry_policy(PhasePolicy {
                    fail_fast: false,
                    interval: Some(Duration::from_secs(600)),
                    timeout: Some(Duration::from_secs(1800)),
                    ..PhasePolicy::default()
                }),
        )
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::auto_advancing(t0()));
    let id = h.register(release("1"));
    let p = block_on(h.engine.run_until_blocked(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::Failed);
    assert_eq!(
        p.state().stage("prod").failure(),
        Some(&FailureReason::TimedOut {
            phase: PhaseId::Entry
        })
    );
    assert_eq!(h.clock.now() - t0(), chrono::Duration::seconds(1800));
}

#[test]
fn gate_errors_are_retried_recorded_and_never_pass() {
    let g = Arc::new(ScriptedGate::new(
        "prom",
        [Step::Error("connection refused".into())],
    ));
    let pipeline = Pipeline::builder("shop", "1")
        .stage(
            StageSpec::new("prod")
                .entry_gate(GateSpec::new(g.clone()).retries(
                    2,
                    Backoff {
                        initial: Duration::from_secs(1),
                        factor: 2,
                        max: Duration::from_secs(10),
                    },
                ))
                .entry_policy(PhasePolicy {
                    consecutive_error_limit: 3,
                    ..PhasePolicy::default()
                }),
        )
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::auto_advancing(t0()));
    let id = h.register(release("1"));
    let p = block_on(h.engine.run_until_blocked(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::Failed);
    assert!(matches!(
        p.state().stage("prod").failure(),
        Some(FailureReason::GateErrored { message, .. }) if message == "connection refused"
    ));
    assert_eq!(g.calls(), 9, "3 rounds of 1 try + 2 retries");
    let errors = h
        .events(&id)
        .into_iter()
        .filter(|e| {
            matches!(
                &e.body,
                EventBody::GateEvaluated {
                    outcome: Outcome::Error { .. },
                    attempts: 3,
                    ..
                }
            )
        })
        .count();
    assert_eq!(errors, 3);
    assert!(h.deployer.calls().is_empty());
}

#[test]
fn gate_timeout_is_an_error_not_a_pass() {
    let slow = ScriptedGate::passing("slow").with_latency(Duration::from_secs(120));
    let pipeline = Pipeline::builder("shop", "1")
        .stage(
            StageSpec::new("prod")
                .entry_gate(GateSpec::from(slow).timeout(Duration::from_secs(30)))
                .entry_policy(PhasePolicy {
                    consecutive_error_limit: 1,
                    ..PhasePolicy::default()
                }),
        )
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::auto_advancing(t0()));
    let id = h.register(release("1"));
    let p = block_on(h.engine.run_until_blocked(&id)).unwrap();
    assert!(matches!(
        p.state().stage("prod").failure(),
        Some(FailureReason::GateErrored { message, .. }) if message == "no verdict within 30s"
    ));
}

#[test]
fn inconclusive_analysis_waits_for_a_human() {
    let pipeline = Pipeline::builder("shop", "1")
        .operator_group("release-managers")
        .stage(StageSpec::new("canary").rollout(RolloutPlan::new([
            RolloutStep::new(10).analysis(ScriptedGate::new(
                "kayenta",
                [Step::Inconclusive("score 62: marginal".into())],
            )),
            RolloutStep::new(100),
        ])))
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::auto_advancing(t0()));
    let id = h.register(release("1"));
    let p = block_on(h.engine.run_until_blocked(&id)).unwrap();
    assert!(matches!(p.waiting(), [Waiting::Judgement { gate, .. }] if gate == "kayenta"));
    let err = block_on(h.engine.submit(
        &id,
        HostCommand::judge("canary", "kayenta", true, &who("x", &["dev"]), "ok").unwrap(),
    ))
    .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Refused(Refusal::NotPrivileged { .. })
    ));
    let rm = who("rita", &["release-managers"]);
    block_on(h.engine.submit(
        &id,
        HostCommand::judge("canary", "kayenta", true, &rm, "latency noise, known").unwrap(),
    ))
    .unwrap();
    let p = block_on(h.engine.run_until_blocked(&id)).unwrap();
    assert_eq!(p.status("canary"), StageStatus::Promoted);
    assert_eq!(h.deployer.weights("canary"), [10, 100]);
}

#[test]
fn abort_of_a_deployed_stage_rolls_it_back() {
    let pipeline = Pipeline::builder("shop", "1")
        .stage(StageSpec::new("canary").rollout(RolloutPlan::new([
            RolloutStep::new(10).pause(Duration::from_secs(3600)),
            RolloutStep::new(100),
        ])))
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::at(t0()));
    let id = h.register(release("1"));
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("canary"), StageStatus::RollingOut { step: 0 });
    let op = who("olga", &["ops"]);
    block_on(h.engine.submit(
        &id,
        HostCommand::abort("canary", &op, "wrong build").unwrap(),
    ))
    .unwrap();
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("canary"), StageStatus::RolledBack);
    assert_eq!(h.deployer.rollbacks("canary"), 1);
    let err = block_on(
        h.engine
            .submit(&id, HostCommand::abort("canary", &op, "again").unwrap()),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Refused(Refusal::StageFinished { .. })
    ));
}

#[test]
fn deployment_failure_rolls_back() {
    let pipeline = Pipeline::builder("shop", "1")
        .stage(StageSpec::new("canary").rollout(RolloutPlan::new([
            RolloutStep::new(10),
            RolloutStep::new(100),
        ])))
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::auto_advancing(t0()));
    h.deployer.fail_deploy("canary", Some(100), 1);
    let id = h.register(release("1"));
    let p = block_on(h.engine.run_until_blocked(&id)).unwrap();
    assert_eq!(p.status("canary"), StageStatus::RolledBack);
    assert!(h.kinds(&id).contains(&"deployment_failed"));
}

#[test]
fn gates_of_a_phase_run_concurrently() {
    // Ten gates that each take 100 ms on the clock. In auto-advance mode every sleep moves the
    // clock to its own deadline: run concurrently they all end at t0+100ms; one after another
    // they would end at t0+1s.
    let mut stage = StageSpec::new("prod");
    for i in 0..10 {
        stage = stage.entry_gate(
            ScriptedGate::passing(format!("g{i}")).with_latency(Duration::from_millis(100)),
        );
    }
    let pipeline = Pipeline::builder("shop", "1").stage(stage).build().unwrap();
    let h = harness(pipeline, ManualClock::auto_advancing(t0()));
    let id = h.register(release("1"));
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::Promoted);
    assert_eq!(h.clock.now() - t0(), chrono::Duration::milliseconds(100));
}

#[test]
fn any_upstream_availability() {
    let pipeline = Pipeline::builder("shop", "1")
        .stage(StageSpec::new("eu").entry_gate(ScriptedGate::failing("x")))
        .stage(StageSpec::new("us"))
        .stage(
            StageSpec::new("global")
                .after("eu")
                .after("us")
                .availability(Availability::AnyUpstream),
        )
        .stage(StageSpec::new("strict").after("eu").after("us"))
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::at(t0()));
    let id = h.register(release("1"));
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("eu"), StageStatus::Failed);
    assert_eq!(p.status("global"), StageStatus::Promoted);
    assert_eq!(p.status("strict"), StageStatus::Waiting);
}

#[test]
fn registering_twice_and_unknown_releases_are_errors() {
    let h = harness(five_stages(), ManualClock::at(t0()));
    let id = h.register(release("1"));
    let err = block_on(h.engine.register(release("1"), &who("ci-bot", &["ci"]))).unwrap_err();
    assert!(matches!(err, EngineError::Refused(Refusal::AlreadyRegistered(x)) if x == id));
    let other = release("2").id();
    let err = block_on(h.engine.advance(&other)).unwrap_err();
    assert!(matches!(err, EngineError::UnknownRelease(_)));
    // A malformed stage name is refused when the command is built, before the engine.
    let err = HostCommand::approve("", &who("a", &["qa"]), "").unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn rollback_of_a_promoted_stage_is_refused_while_downstream_moved_on() {
    let pipeline = Pipeline::builder("shop", "1")
        .stage(StageSpec::new("canary"))
        .stage(
            StageSpec::new("prod")
                .after("canary")
                .approval(ApprovalPolicy::new(ApprovalRule::quorum("sre", 1).unwrap())),
        )
        .build()
        .unwrap();
    let h = harness(pipeline, ManualClock::at(t0()));
    let id = h.register(release("1"));
    block_on(h.engine.advance(&id)).unwrap();
    let op = who("olga", &["ops"]);
    let err = block_on(
        h.engine
            .submit(&id, HostCommand::roll_back("canary", &op, "bad").unwrap()),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Refused(Refusal::DownstreamInProgress { .. })
        ),
        "{err}"
    );
    block_on(
        h.engine
            .submit(&id, HostCommand::abort("prod", &op, "hold").unwrap()),
    )
    .unwrap();
    block_on(
        h.engine
            .submit(&id, HostCommand::roll_back("canary", &op, "bad").unwrap()),
    )
    .unwrap();
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("canary"), StageStatus::RolledBack);
}

#[test]
fn approvals_near_the_end_of_time_still_count() {
    // `given_at + expiry` saturates near DateTime::MAX; expiry must be measured as elapsed
    // time, or a fresh approval would count as already expired (found by the property tests).
    let pipeline = Pipeline::builder("shop", "1")
        .stage(
            StageSpec::new("prod").approval(
                ApprovalPolicy::new(ApprovalRule::quorum("security", 2).unwrap())
                    .expires_after(Duration::from_secs(1800)),
            ),
        )
        .build()
        .unwrap();
    let end = DateTime::<Utc>::MAX_UTC;
    let h = harness(pipeline, ManualClock::at(end));
    let id = h.register(release("1"));
    block_on(h.engine.advance(&id)).unwrap();
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("prod", &who("ann", &["security"]), "").unwrap(),
    ))
    .unwrap();
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("prod", &who("bob", &["security"]), "").unwrap(),
    ))
    .unwrap();
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::Promoted);
    let approvers: Vec<&str> = p
        .state()
        .stage("prod")
        .approvers()
        .iter()
        .map(|p| p.as_str())
        .collect();
    assert_eq!(approvers, ["ann", "bob"]);
}

/// A gate that declares a fact, as a change-record gate declares the risk level.
#[derive(Debug)]
struct RiskGate(&'static str);

#[async_trait::async_trait]
impl Gate for RiskGate {
    fn name(&self) -> &str {
        "change-record"
    }
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let ev = Evidence::new("change-record", ctx.now(), format!("risk {}", self.0))
            .with_fact("risk", self.0);
        Ok(Verdict::Pass(ev))
    }
}

#[test]
fn a_high_risk_fact_requires_an_extra_approval_group() {
    let build = |risk: &'static str| {
        Pipeline::builder("shop", "1")
            .stage(
                StageSpec::new("prod")
                    .entry_gate(RiskGate(risk))
                    .approval(ApprovalPolicy::new(ApprovalRule::all([
                        ApprovalRule::quorum("sre", 1).unwrap(),
                        ApprovalRule::when(
                            "change-record",
                            "risk",
                            "high",
                            ApprovalRule::quorum("cab", 1).unwrap(),
                        )
                        .unwrap(),
                    ]))),
            )
            .build()
            .unwrap()
    };
    // Low risk: the SRE's approval is enough.
    let h = harness(build("low"), ManualClock::at(t0()));
    let id = h.register(release("1"));
    block_on(h.engine.advance(&id)).unwrap();
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("prod", &who("sam", &["sre"]), "").unwrap(),
    ))
    .unwrap();
    assert_eq!(
        block_on(h.engine.advance(&id)).unwrap().status("prod"),
        StageStatus::Promoted
    );
    // High risk: the change advisory board must approve too.
    let h = harness(build("high"), ManualClock::at(t0()));
    let id = h.register(release("1"));
    block_on(h.engine.advance(&id)).unwrap();
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("prod", &who("sam", &["sre"]), "").unwrap(),
    ))
    .unwrap();
    let p = block_on(h.engine.advance(&id)).unwrap();
    assert_eq!(p.status("prod"), StageStatus::AwaitingApproval);
    let facts = p
        .state()
        .stage("prod")
        .entry()
        .gate("change-record")
        .unwrap()
        .facts();
    assert_eq!(facts.get("risk").map(String::as_str), Some("high"));
    block_on(h.engine.submit(
        &id,
        HostCommand::approve("prod", &who("carl", &["cab"]), "").unwrap(),
    ))
    .unwrap();
    assert_eq!(
        block_on(h.engine.advance(&id)).unwrap().status("prod"),
        StageStatus::Promoted
    );
    h.replay_matches(&id);
}

#[test]
fn a_condition_must_name_an_entry_gate_of_its_stage() {
    let err = Pipeline::builder("shop", "1")
        .stage(
            StageSpec::new("prod").approval(ApprovalPolicy::new(
                ApprovalRule::when(
                    "change-record",
                    "risk",
                    "high",
                    ApprovalRule::quorum("cab", 1).unwrap(),
                )
                .unwrap(),
            )),
        )
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stage `prod`: approval rule cannot be satisfied: a condition reads gate `change-record`, which is not an entry gate of this stage"
    );
}
