//! A real audit log made by the real engine on a virtual clock: two releases through build →
//! staging → production, a JUnit report read by the real test-report gate, an approval, a
//! failed entry gate overridden by break glass, a progressive rollout, and a rollback; and a
//! week of releases whose DORA figures are computed by hand.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::executor::block_on;
use promotion_audit::{AuditOptions, AuditStore, CheckpointSigner, CheckpointVerifier};
use promotion_core::testing::{RecordingDeployer, ScriptedGate, Step};
use promotion_core::HostCommand;
use promotion_core::{
    ApprovalPolicy, ApprovalRule, Engine, GateSpec, ManualClock, Pipeline, Principal, Release,
    ReleaseId, RolloutPlan, RolloutStep, StageSpec, StageStatus,
};
use promotion_evidence::{AttestationSigner, MemoryAttachments};
use promotion_gates::TestReportGate;

pub const JUNIT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="3" failures="0" errors="0">
  <testsuite name="shop-cart" tests="3" failures="0" errors="0">
    <testcase name="total_adds_prices" classname="shop-cart"/>
    <testcase name="discount_rounds_down" classname="shop-cart"/>
    <testcase name="checkout_retries_inventory" classname="shop-cart::checkout">
      <flakyFailure message="inventory timed out"/>
    </testcase>
  </testsuite>
</testsuites>
"#;

pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub fn who(id: &str, groups: &[&str]) -> Principal {
    Principal::new(id, groups.iter().copied()).unwrap()
}

pub fn release(name: &str, commit: char, committed_at: &str) -> Release {
    Release::builder(
        name,
        "git@example.com:shop/api",
        commit.to_string().repeat(40),
        at(committed_at),
    )
    .artifact("api-image", format!("sha256:{}", "ab".repeat(32)))
    .artifact("helm-chart", format!("sha256:{}", "cd".repeat(32)))
    .builder("ci.example.com")
    .contributor("dana")
    .build()
    .unwrap()
}

pub struct PackLog {
    pub store: AuditStore,
    pub checkpoint_key: CheckpointVerifier,
    pub signer: AttestationSigner,
    /// Release "api 1.0": promoted everywhere (with an override in production), then rolled
    /// back in production.
    pub release: ReleaseId,
    /// Release "api 1.1": promoted everywhere, interleaved with the first in the log.
    pub other: ReleaseId,
    pub attachments: MemoryAttachments,
    pub junit_digest: promotion_core::Digest,
    pub dir: tempfile::TempDir,
}

impl PackLog {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The log, in memory (`sqlite: false`) or in a SQLite file.
pub fn pack_log(sqlite: bool) -> PackLog {
    let dir = tempfile::tempdir().unwrap();
    let junit_path = dir.path().join("unit-tests.xml");
    std::fs::write(&junit_path, JUNIT).unwrap();
    let mut attachments = MemoryAttachments::new();
    let junit_digest = attachments.insert_file(&junit_path).unwrap();

    let clock = ManualClock::at(at("2026-11-26T09:00:00Z"));
    let log_key = CheckpointSigner::from_seed("audit.example/shop", [5; 32]).unwrap();
    let checkpoint_key = log_key.verifier();
    let options = AuditOptions::new("audit.example/shop")
        .signer(log_key)
        .clock(Arc::new(clock.clone()));
    let store = if sqlite {
        AuditStore::open_sqlite(dir.path().join("audit.db"), options).unwrap()
    } else {
        AuditStore::memory(options).unwrap()
    };

    let unit_tests = TestReportGate::builder()
        .name("unit-tests")
        .file(&junit_path)
        .build()
        .unwrap();
    let change = Arc::new(ScriptedGate::new("change-policy", []));
    let pipeline = Pipeline::builder("shop", "2026.11")
        .break_glass_group("incident-commanders")
        .stage(StageSpec::new("build").entry_gate(unit_tests))
        .stage(
            StageSpec::new("staging")
                .after("build")
                .entry_gate(ScriptedGate::passing("integration"))
                .approval(ApprovalPolicy::new(ApprovalRule::quorum("qa", 1).unwrap())),
        )
        .stage(
            StageSpec::new("production")
                .after("staging")
                .entry_gate(GateSpec::new(change.clone()))
                .rollout(RolloutPlan::new([
                    RolloutStep::new(50).analysis(ScriptedGate::passing("error-rate")),
                    RolloutStep::new(100),
                ]))
                .verification_gate(ScriptedGate::passing("smoke")),
        )
        .build()
        .unwrap();
    let engine = Engine::new(
        pipeline,
        Arc::new(store.clone()),
        Arc::new(RecordingDeployer::new()),
        Arc::new(clock.clone()),
    );
    let ci = who("ci-bot", &["ci"]);
    let quinn = who("quinn", &["qa"]);
    let ivy = who("ivy", &["incident-commanders"]);

    let a =
        block_on(engine.register(release("api 1.0", 'a', "2026-11-26T08:00:00Z"), &ci)).unwrap();
    block_on(engine.run_until_blocked(&a)).unwrap();
    clock.set(at("2026-11-26T09:05:00Z"));
    let b =
        block_on(engine.register(release("api 1.1", 'b', "2026-11-26T08:30:00Z"), &ci)).unwrap();
    block_on(engine.run_until_blocked(&b)).unwrap();

    clock.set(at("2026-11-26T09:30:00Z"));
    change.push(Step::Fail("change CHG-1042 not approved by the CAB".into()));
    block_on(engine.submit(
        &a,
        HostCommand::approve("staging", &quinn, "integration evidence reviewed").unwrap(),
    ))
    .unwrap();
    let p = block_on(engine.run_until_blocked(&a)).unwrap();
    assert_eq!(p.status("production"), StageStatus::Failed);

    clock.set(at("2026-11-26T10:00:00Z"));
    block_on(
        engine.submit(
            &a,
            HostCommand::override_gate(
                "production",
                "change-policy",
                &ivy,
                "INC-7 outage fix; CAB approval by phone, ticket follows",
            )
            .unwrap(),
        ),
    )
    .unwrap();
    let p = block_on(engine.run_until_blocked(&a)).unwrap();
    assert_eq!(p.status("production"), StageStatus::Promoted);

    clock.set(at("2026-11-26T10:15:00Z"));
    change.push(Step::Pass("change CHG-1043 approved".into()));
    block_on(engine.submit(&b, HostCommand::approve("staging", &quinn, "ok").unwrap())).unwrap();
    let p = block_on(engine.run_until_blocked(&b)).unwrap();
    assert_eq!(p.status("production"), StageStatus::Promoted);

    clock.set(at("2026-11-26T11:00:00Z"));
    block_on(engine.submit(
        &a,
        HostCommand::roll_back("production", &ivy, "error budget burning after the fix").unwrap(),
    ))
    .unwrap();
    let p = block_on(engine.run_until_blocked(&a)).unwrap();
    assert_eq!(p.status("production"), StageStatus::RolledBack);

    PackLog {
        store,
        checkpoint_key,
        signer: AttestationSigner::from_seed([8; 32]),
        release: a,
        other: b,
        attachments,
        junit_digest,
        dir,
    }
}

/// Every file under `dir`, relative, `/`-separated, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_owned(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        for item in std::fs::read_dir(&d).unwrap() {
            let item = item.unwrap();
            let name = item.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if item.file_type().unwrap().is_dir() {
                stack.push((item.path(), rel));
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

pub struct Scenario {
    pub store: AuditStore,
    pub ids: Vec<ReleaseId>,
}

/// The timeline (all times UTC, November 2026; the report covers 11-01 00:00 to 11-08 00:00):
///
/// | release | commit      | registered  | staging approved   | production                         |
/// |---------|-------------|-------------|--------------------|------------------------------------|
/// | r0      | 10-30 08:00 | 10-31 09:00 | 10-31 10:00        | promoted 10-31 12:00 (before the period) |
/// | r1      | 11-01 08:00 | 11-02 09:00 | 11-02 10:00 (1 h)  | promoted 11-02 12:00               |
/// | r2      | 11-03 08:00 | 11-03 09:00 | 11-03 12:00 (3 h)  | smoke fails 11-03 14:00, rolled back automatically |
/// | r3      | 11-03 15:00 | 11-03 16:00 | 11-03 16:30 (0.5 h)| change-policy fails 17:00; ivy overrides 17:30; promoted 17:30 |
/// | r4      | 11-04 08:00 | 11-05 09:00 | 11-05 11:00 (2 h)  | promoted 11-05 12:00; rolled back by ivy 11-06 10:00 |
/// | r5      | 11-06 09:00 | 11-06 10:00 | 11-06 10:30 (0.5 h)| promoted 11-06 13:00               |
/// | r6      | 11-07 08:00 | 11-07 09:00 | still waiting      | —                                  |
/// | r7      | 11-08 08:00 | 11-08 10:00 (after the period: not in the report at all) |
///
/// With `hostile`, r3's name and the override's justification carry markup, for escaping tests.
pub fn dora_scenario(hostile: bool) -> Scenario {
    let clock = ManualClock::at(at("2026-10-31T09:00:00Z"));
    let options = AuditOptions::new("audit.example/shop")
        .signer(CheckpointSigner::from_seed("audit.example/shop", [5; 32]).unwrap())
        .clock(Arc::new(clock.clone()));
    let store = AuditStore::memory(options).unwrap();
    let change = Arc::new(ScriptedGate::new("change-policy", []));
    let smoke = Arc::new(ScriptedGate::new("smoke", []));
    let pipeline = Pipeline::builder("shop", "1")
        .break_glass_group("incident-commanders")
        .stage(StageSpec::new("build").entry_gate(ScriptedGate::passing("unit-tests")))
        .stage(
            StageSpec::new("staging")
                .after("build")
                .entry_gate(ScriptedGate::passing("integration-tests"))
                .approval(ApprovalPolicy::new(ApprovalRule::quorum("qa", 1).unwrap())),
        )
        .stage(
            StageSpec::new("production")
                .after("staging")
                .manual_start()
                .entry_gate(GateSpec::new(change.clone()))
                .verification_gate(GateSpec::new(smoke.clone())),
        )
        .build()
        .unwrap();
    let engine = Engine::new(
        pipeline,
        Arc::new(store.clone()),
        Arc::new(RecordingDeployer::new()),
        Arc::new(clock.clone()),
    );
    let ci = who("ci-bot", &["ci"]);
    let quinn = who("quinn", &["qa"]);
    let rita = who("rita", &["release-managers"]);
    let ivy = who("ivy", &["incident-commanders"]);
    let pass = |s: &str| Step::Pass(s.to_owned());
    let fail = |s: &str| Step::Fail(s.to_owned());

    let set = |t: &str| clock.set(at(t));
    let register = |name: &str, c: char, committed: &str| {
        let id = block_on(engine.register(release(name, c, committed), &ci)).unwrap();
        let p = block_on(engine.run_until_blocked(&id)).unwrap();
        assert_eq!(p.status("staging"), StageStatus::AwaitingApproval, "{name}");
        id
    };
    let approve = |id: &ReleaseId| {
        block_on(engine.submit(
            id,
            HostCommand::approve("staging", &quinn, "tested in staging").unwrap(),
        ))
        .unwrap();
        let p = block_on(engine.run_until_blocked(id)).unwrap();
        assert_eq!(p.status("staging"), StageStatus::Promoted);
    };
    let start = |id: &ReleaseId| {
        block_on(engine.submit(id, HostCommand::start("production", &rita).unwrap())).unwrap();
        block_on(engine.run_until_blocked(id))
            .unwrap()
            .status("production")
    };

    let mut ids = Vec::new();
    // r0, entirely before the period.
    let r0 = register("api 1.0.0", '0', "2026-10-30T08:00:00Z");
    set("2026-10-31T10:00:00Z");
    approve(&r0);
    set("2026-10-31T12:00:00Z");
    change.push(pass("CHG-1 approved"));
    smoke.push(pass("journeys ok"));
    assert_eq!(start(&r0), StageStatus::Promoted);
    ids.push(r0);

    set("2026-11-02T09:00:00Z");
    let r1 = register("api 1.1.0", '1', "2026-11-01T08:00:00Z");
    set("2026-11-02T10:00:00Z");
    approve(&r1);
    set("2026-11-02T12:00:00Z");
    change.push(pass("CHG-2 approved"));
    smoke.push(pass("journeys ok"));
    assert_eq!(start(&r1), StageStatus::Promoted);
    ids.push(r1);

    set("2026-11-03T09:00:00Z");
    let r2 = register("api 1.2.0", '2', "2026-11-03T08:00:00Z");
    set("2026-11-03T12:00:00Z");
    approve(&r2);
    set("2026-11-03T14:00:00Z");
    change.push(pass("CHG-3 approved"));
    smoke.push(fail("checkout journey returns 500"));
    assert_eq!(start(&r2), StageStatus::RolledBack);
    ids.push(r2);

    set("2026-11-03T16:00:00Z");
    let r3_name = if hostile {
        "api <script>alert('r3')</script> 1.2.1"
    } else {
        "api 1.2.1"
    };
    let justification = if hostile {
        "hotfix <img src=x onerror=alert(1)> for the checkout outage"
    } else {
        "hotfix for the checkout outage; CAB approved by phone"
    };
    let r3 = register(r3_name, '3', "2026-11-03T15:00:00Z");
    set("2026-11-03T16:30:00Z");
    approve(&r3);
    set("2026-11-03T17:00:00Z");
    change.push(fail("CHG-4 not approved by the CAB"));
    smoke.push(pass("journeys ok"));
    assert_eq!(start(&r3), StageStatus::Failed);
    set("2026-11-03T17:30:00Z");
    block_on(engine.submit(
        &r3,
        HostCommand::override_gate("production", "change-policy", &ivy, justification).unwrap(),
    ))
    .unwrap();
    let p = block_on(engine.run_until_blocked(&r3)).unwrap();
    assert_eq!(p.status("production"), StageStatus::Promoted);
    ids.push(r3);

    set("2026-11-05T09:00:00Z");
    let r4 = register("api 1.3.0", '4', "2026-11-04T08:00:00Z");
    set("2026-11-05T11:00:00Z");
    approve(&r4);
    set("2026-11-05T12:00:00Z");
    change.push(pass("CHG-5 approved"));
    smoke.push(pass("journeys ok"));
    assert_eq!(start(&r4), StageStatus::Promoted);
    set("2026-11-06T10:00:00Z");
    block_on(engine.submit(
        &r4,
        HostCommand::roll_back("production", &ivy, "memory leak").unwrap(),
    ))
    .unwrap();
    let p = block_on(engine.run_until_blocked(&r4)).unwrap();
    assert_eq!(p.status("production"), StageStatus::RolledBack);
    ids.push(r4);

    let r5 = register("api 1.3.1", '5', "2026-11-06T09:00:00Z");
    set("2026-11-06T10:30:00Z");
    approve(&r5);
    set("2026-11-06T13:00:00Z");
    change.push(pass("CHG-6 approved"));
    smoke.push(pass("journeys ok"));
    assert_eq!(start(&r5), StageStatus::Promoted);
    ids.push(r5);

    set("2026-11-07T09:00:00Z");
    ids.push(register("api 1.4.0", '6', "2026-11-07T08:00:00Z"));

    set("2026-11-08T10:00:00Z");
    ids.push(register("api 1.5.0", '7', "2026-11-08T08:00:00Z"));

    Scenario { store, ids }
}
