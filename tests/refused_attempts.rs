//! Refused privileged attempts leave a trace (issue 15, attack 8): an unauthorised approval or
//! override is recorded in the store's security stream — who, what, why refused — without
//! touching the release's stream, the audit log verifies with it, and the report lists it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::executor::block_on;
use promotion::audit::{AuditOptions, AuditStore};
use promotion::evidence::{Period, Report};
use promotion::testing::{sample_release, RecordingDeployer, ScriptedGate};
use promotion::*;

fn t0() -> DateTime<Utc> {
    "2026-11-26T09:00:00Z".parse().unwrap()
}

fn who(id: &str, groups: &[&str]) -> Principal {
    Principal::new(id, groups.iter().copied()).unwrap()
}

/// `dev` (a failing scan gate) then `prod` (1 of sre); `ic` breaks glass.
fn pipeline() -> Pipeline {
    Pipeline::builder("shop", "1")
        .break_glass_group("ic")
        .stage(
            StageSpec::new("dev")
                .entry_gate(ScriptedGate::passing("unit"))
                .entry_gate(ScriptedGate::failing("scan")),
        )
        .stage(
            StageSpec::new("prod")
                .after("dev")
                .approval(ApprovalPolicy::new(ApprovalRule::quorum("sre", 1).unwrap())),
        )
        .build()
        .unwrap()
}

#[test]
fn refused_attempts_are_recorded_apart_from_the_release_and_reported() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            AuditStore::open_sqlite(dir.path().join("log.db"), AuditOptions::new("test")).unwrap(),
        );
        let clock = Arc::new(ManualClock::auto_advancing(t0()));
        let engine = Engine::new(
            pipeline(),
            store.clone(),
            Arc::new(RecordingDeployer::new()),
            clock,
        );
        let id = engine
            .register(sample_release(), &who("ci-bot", &["ci"]))
            .await
            .unwrap();
        engine.run_until_blocked(&id).await.unwrap();
        let release_stream = StreamId::for_release(&id);
        let before = store.read(&release_stream).await.unwrap().len();

        // Not in a break-glass group; then a contributor (`dana`) who is.
        for who in [who("mallory", &["dev"]), who("dana", &["ic"])] {
            let refused = engine
                .submit(
                    &id,
                    HostCommand::override_gate("dev", "scan", &who, "ship it").unwrap(),
                )
                .await;
            assert!(
                matches!(refused, Err(EngineError::Refused(_))),
                "{refused:?}"
            );
        }
        // A refusal about the release's state, not about who asked, is not a security event.
        let not_waiting = engine
            .submit(
                &id,
                HostCommand::approve("prod", &who("ann", &["sre"]), "ok").unwrap(),
            )
            .await;
        assert!(matches!(not_waiting, Err(EngineError::Refused(_))));

        assert_eq!(
            store.read(&release_stream).await.unwrap().len(),
            before,
            "a refused attempt changed the release's stream"
        );
        let security = store.read(&StreamId::security()).await.unwrap();
        let attempts: Vec<(String, String, String)> = security
            .iter()
            .map(|r| match &r.event.body {
                EventBody::AttemptRefused {
                    release,
                    action,
                    principal,
                    refusal,
                    ..
                } => {
                    assert_eq!(*release, id);
                    (
                        principal.id.to_string(),
                        action.clone(),
                        refusal.to_string(),
                    )
                }
                other => panic!("unexpected event in the security stream: {other:?}"),
            })
            .collect();
        assert_eq!(attempts.len(), 2, "{attempts:?}");
        assert_eq!(attempts[0].0, "mallory");
        assert_eq!(attempts[0].1, "override a gate of");
        assert!(attempts[0].2.contains("only members of `ic` may"));
        assert_eq!(attempts[1].0, "dana");
        assert!(attempts[1].2.contains("they contributed to the release"));

        // The tamper-evident log holds and verifies them like any entry.
        store.verify(None).await.unwrap();

        let period = Period::days_until("2026-11-27T00:00:00Z".parse().unwrap(), 7).unwrap();
        let report = Report::from_store(store.as_ref(), period).await.unwrap();
        let reported: Vec<&str> = report
            .refused_attempts
            .iter()
            .map(|a| a.principal.as_str())
            .collect();
        assert_eq!(reported, ["mallory", "dana"]);
        let html = promotion::evidence::render_html(&report);
        assert!(html.contains("Refused attempts"));
        assert!(html.contains("mallory"));
    });
}
