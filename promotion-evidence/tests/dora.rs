//! DORA metrics and the other report figures, against a scenario computed by hand.
//!
//! The real engine writes the log (real audit store, virtual clock); the expected numbers are
//! worked out in the comments from the timeline alone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use futures::executor::block_on;
use promotion_core::EventStore;
use promotion_evidence::{Compliance, Period, Report, ReportOptions};
use support::{at, dora_scenario};

const H: f64 = 3600.0;

/// The scenario is `support::dora_scenario`; its timeline is in its documentation.
fn period() -> Period {
    Period::new(at("2026-11-01T00:00:00Z"), at("2026-11-08T00:00:00Z")).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn dora_metrics_match_the_hand_computed_scenario() {
    let s = dora_scenario(false);
    let report = block_on(Report::from_store(&s.store, period())).unwrap();
    assert_eq!(report.pipelines.len(), 1);
    let p = &report.pipelines[0];
    assert_eq!(p.pipeline, "shop");
    assert_eq!(p.versions, ["1"]);
    assert_eq!(p.stages, ["build", "staging", "production"]);
    assert_eq!(p.production_stages, ["production"]);
    // r0 … r6; r7 registered after the period's end.
    assert_eq!(p.releases_total, 7);

    let d = &p.dora;
    // Deployment frequency: production promotions inside the period are r1 (11-02 12:00),
    // r3 (11-03 17:30), r4 (11-05 12:00) and r5 (11-06 13:00); r0's (10-31) is outside.
    // 4 in 7 days = 0.5714 a day, 4 a week.
    assert_eq!(d.production_promotions, 4);
    assert!(
        close(d.deployments_per_day, 4.0 / 7.0),
        "{}",
        d.deployments_per_day
    );
    assert!(close(d.deployments_per_week, 4.0));

    // Lead time, commit → production promotion:
    //   r1: 11-01 08:00 → 11-02 12:00 = 28 h
    //   r3: 11-03 15:00 → 11-03 17:30 = 2.5 h
    //   r4: 11-04 08:00 → 11-05 12:00 = 28 h
    //   r5: 11-06 09:00 → 11-06 13:00 = 4 h
    // sorted 2.5, 4, 28, 28: median (4 + 28) / 2 = 16 h; p90 = ceil(0.9·4) = 4th = 28 h.
    let lead = d.lead_time.as_ref().unwrap();
    assert_eq!(lead.count, 4);
    assert!(close(lead.median_seconds, 16.0 * H));
    assert!(close(lead.p90_seconds, 28.0 * H));
    assert!(close(lead.min_seconds, 2.5 * H));
    assert!(close(lead.max_seconds, 28.0 * H));
    assert!(close(
        lead.mean_seconds,
        (28.0 + 2.5 + 28.0 + 4.0) / 4.0 * H
    ));
    let points: Vec<(String, f64)> = p
        .lead_times
        .iter()
        .map(|l| (l.release_name.clone(), l.seconds / H))
        .collect();
    assert_eq!(
        points,
        [
            ("api 1.1.0".to_owned(), 28.0),
            ("api 1.2.1".to_owned(), 2.5),
            ("api 1.3.0".to_owned(), 28.0),
            ("api 1.3.1".to_owned(), 4.0),
        ]
    );

    // Change failure rate: production deployments started in the period are r1, r2, r3 (after
    // the override), r4 and r5 = 5. Failed: r2 (verification failed, rolled back) and r4
    // (rolled back by a person) = 2. r3's failed entry gate deployed nothing. 2 / 5 = 0.4.
    assert_eq!(d.production_deployments, 5);
    assert_eq!(d.failed_deployments, 2);
    assert!(close(d.change_failure_rate.unwrap(), 0.4));

    // Time to restore: r2 failed 11-03 14:00, next production promotion r3 at 17:30 = 3.5 h;
    // r4 failed (rollback started) 11-06 10:00, next promotion r5 at 13:00 = 3 h.
    // Median (3 + 3.5) / 2 = 3.25 h; p90 = ceil(1.8) = 2nd = 3.5 h.
    let ttr = d.time_to_restore.as_ref().unwrap();
    assert_eq!(ttr.count, 2);
    assert!(close(ttr.median_seconds, 3.25 * H));
    assert!(close(ttr.p90_seconds, 3.5 * H));
    assert_eq!(d.unrestored_failures, 0);
    let failures: Vec<(&str, String, Option<&str>)> = d
        .failures
        .iter()
        .map(|f| {
            (
                f.release_name.as_str(),
                f.failed_at.to_rfc3339(),
                f.restored_by.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        failures,
        [
            (
                "api 1.2.0",
                "2026-11-03T14:00:00+00:00".to_owned(),
                Some("api 1.2.1")
            ),
            (
                "api 1.3.0",
                "2026-11-06T10:00:00+00:00".to_owned(),
                Some("api 1.3.1")
            ),
        ]
    );
    assert!(
        d.failures[0].what.contains("smoke"),
        "{}",
        d.failures[0].what
    );

    // Gate pass rates in the period (r0's evaluations are outside):
    //   unit-tests, integration-tests: r1 … r6, 6 passes each = 100 %
    //   change-policy: r1 r2 pass, r3 fail, r4 r5 pass = 4 / 5 = 80 %
    //   smoke: r1 pass, r2 fail, r3 r4 r5 pass = 4 / 5 = 80 %
    let gates: Vec<(&str, &str, &str, u64, u64, u64, f64)> = p
        .gates
        .iter()
        .map(|g| {
            (
                g.stage.as_str(),
                g.phase.as_str(),
                g.gate.as_str(),
                g.evaluations,
                g.passed,
                g.failed,
                g.pass_rate.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        gates,
        [
            ("build", "entry", "unit-tests", 6, 6, 0, 1.0),
            ("staging", "entry", "integration-tests", 6, 6, 0, 1.0),
            ("production", "entry", "change-policy", 5, 4, 1, 0.8),
            ("production", "verification", "smoke", 5, 4, 1, 0.8),
        ]
    );

    // Approval waits (approval requested → stage scheduled): r1 1 h, r2 3 h, r3 0.5 h, r4 2 h,
    // r5 0.5 h; r6 still waiting at the end. sorted 0.5 0.5 1 2 3: median 1 h, p90 = 5th = 3 h,
    // mean 7 / 5 = 1.4 h.
    let wait = p.approval_wait.as_ref().unwrap();
    assert_eq!(wait.count, 5);
    assert!(close(wait.median_seconds, H));
    assert!(close(wait.p90_seconds, 3.0 * H));
    assert!(close(wait.mean_seconds, 1.4 * H));
    assert_eq!(p.approvals_pending, 1);
    assert_eq!(p.approvals.len(), 5);
    assert!(p.approvals.iter().all(|a| a.principal == "quinn"
        && a.decision == "approved"
        && a.evidence_digest.is_some()));

    // The one override, with who and why.
    assert_eq!(p.overrides.len(), 1);
    let o = &p.overrides[0];
    assert_eq!(
        (
            o.release_name.as_str(),
            o.stage.as_str(),
            o.gate.as_str(),
            o.principal.as_str()
        ),
        ("api 1.2.1", "production", "change-policy", "ivy")
    );
    assert_eq!(
        o.justification,
        "hotfix for the checkout outage; CAB approved by phone"
    );
    assert_eq!(o.overridden, "fail");

    // Releases newest first, as they stood at the end of the period, with compliance.
    let rows: Vec<(&str, &str, Compliance)> = p
        .releases
        .iter()
        .map(|r| {
            let production = r
                .stages
                .iter()
                .find(|c| c.stage == "production")
                .map_or("waiting", |c| c.status.as_str());
            (r.name.as_str(), production, r.compliance)
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("api 1.4.0", "waiting", Compliance::InProgress),
            ("api 1.3.1", "promoted", Compliance::Compliant),
            ("api 1.3.0", "rolled_back", Compliance::Blocked),
            ("api 1.2.1", "promoted", Compliance::Exception),
            ("api 1.2.0", "rolled_back", Compliance::Blocked),
            ("api 1.1.0", "promoted", Compliance::Compliant),
            ("api 1.0.0", "promoted", Compliance::Compliant),
        ]
    );

    // Latest verdicts: r5's production gates (11-06 13:00), r6's build and staging gates.
    let latest: Vec<(&str, &str, &str)> = p
        .latest_verdicts
        .iter()
        .map(|v| (v.gate.as_str(), v.outcome.as_str(), v.release_name.as_str()))
        .collect();
    assert_eq!(
        latest,
        [
            ("unit-tests", "pass", "api 1.4.0"),
            ("integration-tests", "pass", "api 1.4.0"),
            ("change-policy", "pass", "api 1.3.1"),
            ("smoke", "pass", "api 1.3.1"),
        ]
    );

    // Verdicts per day: 11-02 r1 4/4; 11-03 r2 and r3 6/8; 11-05 r4 4/4; 11-06 r5 4/4;
    // 11-07 r6 2/2; 11-01 and 11-04 none.
    let days: Vec<(String, u64, u64)> = p
        .pass_rates
        .iter()
        .map(|b| (b.day.to_string(), b.passed, b.verdicts))
        .collect();
    assert_eq!(
        days,
        [
            ("2026-11-01".to_owned(), 0, 0),
            ("2026-11-02".to_owned(), 4, 4),
            ("2026-11-03".to_owned(), 6, 8),
            ("2026-11-04".to_owned(), 0, 0),
            ("2026-11-05".to_owned(), 4, 4),
            ("2026-11-06".to_owned(), 4, 4),
            ("2026-11-07".to_owned(), 2, 2),
        ]
    );
    let _ = &s.ids;
}

#[test]
fn the_report_is_a_pure_function_of_the_events_and_round_trips_as_json() {
    let s = dora_scenario(false);
    let mut streams = Vec::new();
    for id in &s.ids {
        let recorded = block_on(s.store.read(&promotion_core::StreamId::for_release(id))).unwrap();
        streams.push(recorded.into_iter().map(|r| r.event).collect::<Vec<_>>());
    }
    let options = ReportOptions::default();
    let pure = Report::from_streams(&streams, period(), &options);
    let reversed: Vec<_> = streams.iter().rev().cloned().collect();
    assert_eq!(Report::from_streams(&reversed, period(), &options), pure);
    assert_eq!(
        block_on(Report::from_store(&s.store, period())).unwrap(),
        pure
    );

    let json = serde_json::to_value(&pure).unwrap();
    assert_eq!(json["pipelines"][0]["dora"]["change_failure_rate"], 0.4);
    assert_eq!(
        json["pipelines"][0]["releases"][3]["compliance"],
        "exception"
    );
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, pure);

    // Another name for production: nothing counts as a production promotion any more.
    let staging_is_prod = ReportOptions {
        production_stages: ["staging".to_owned()].into(),
        ..ReportOptions::default()
    };
    let other = Report::from_streams(&streams, period(), &staging_is_prod);
    // staging promotions in the period: r1 … r5 (r6 is still waiting for approval).
    assert_eq!(other.pipelines[0].dora.production_promotions, 5);
    assert_eq!(other.pipelines[0].dora.failed_deployments, 0);
}
