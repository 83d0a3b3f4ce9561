//! Unit tests of the deployment window gate.

use super::*;
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use futures::executor::block_on;
use promotion_core::testing::GateProbe;
use promotion_core::Digest;
use promotion_core::{Evidence, Gate, GateKind, Verdict};
use serde_json::json;
use std::time::Duration;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn data(name: &str) -> String {
    format!("{}/tests/data/window/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn gate(windows: impl IntoIterator<Item = Window>) -> DeploymentWindowGate {
    windows
        .into_iter()
        .fold(DeploymentWindowGate::builder(), |b, w| b.window(w))
        .build()
        .unwrap()
}

fn daily(start: &str, end: &str, zone: &str) -> Window {
    Window::new(["mon-sun"], start, end, zone).unwrap()
}

fn eval(g: &DeploymentWindowGate, at: &str) -> Verdict {
    block_on(GateProbe::new().at(t(at)).evaluate(g)).unwrap()
}

/// Pass evidence, checking the verdict.
fn pass(g: &DeploymentWindowGate, at: &str) -> Evidence {
    match eval(g, at) {
        Verdict::Pass(e) => e,
        other => panic!("expected a pass at {at}, got {other:?}"),
    }
}

/// The next opening (UTC) of a pending verdict, checking `retry_after` against it.
fn pending(g: &DeploymentWindowGate, at: &str) -> (String, Duration, Evidence) {
    match eval(g, at) {
        Verdict::Pending {
            evidence,
            retry_after,
        } => {
            let next = evidence.data["next_opening"]["utc"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(t(at) + TimeDelta::from_std(retry_after).unwrap(), t(&next));
            (next, retry_after, evidence)
        }
        other => panic!("expected pending at {at}, got {other:?}"),
    }
}

fn until(ev: &Evidence) -> &str {
    ev.data["allowed_until"]["utc"].as_str().unwrap()
}

const H: u64 = 3600;

fn business_hours() -> DeploymentWindowGate {
    gate([Window::new(["mon-thu"], "09:00", "16:00", "Europe/Berlin")
        .unwrap()
        .named("business hours")])
}

#[test]
fn inside_a_window_passes_naming_it_and_when_it_closes() {
    let g = business_hours();
    assert_eq!(g.kind(), GateKind::Compliance);
    assert_eq!(g.name(), "deployment-window");
    // Thursday 2026-11-26 10:00 CET.
    let ev = pass(&g, "2026-11-26T09:00:00Z");
    assert_eq!(ev.facts["window"], "business hours");
    assert_eq!(until(&ev), "2026-11-26T15:00:00Z");
    assert_eq!(
        ev.data["allowed_until"]["local"],
        "2026-11-26T16:00:00+01:00"
    );
    assert_eq!(
        ev.summary,
        "inside deployment window business hours until Thu 2026-11-26 16:00 CET (2026-11-26T15:00:00Z)"
    );
    assert_eq!(ev.data["decision"], "open");
    assert_eq!(ev.data["windows_open"], json!(["business hours"]));
    // The first second and the last second of the window; the end is excluded.
    pass(&g, "2026-11-26T08:00:00Z");
    pass(&g, "2026-11-26T14:59:59Z");
    pending(&g, "2026-11-26T15:00:00Z");
    pending(&g, "2026-11-26T07:59:59Z");
}

#[test]
fn outside_every_window_is_pending_until_the_next_opening_exactly() {
    let g = business_hours();
    // Thursday 17:00 CET → Monday 09:00 CET.
    let (next, retry, ev) = pending(&g, "2026-11-26T16:00:00Z");
    assert_eq!(next, "2026-11-30T08:00:00Z");
    assert_eq!(retry, Duration::from_secs((3 * 24 + 16) * H));
    assert_eq!(ev.data["decision"], "outside_windows");
    assert_eq!(
        ev.data["next_opening"]["local"],
        "2026-11-30T09:00:00+01:00"
    );
    assert_eq!(ev.data["next_opening"]["zone"], "Europe/Berlin");
    assert_eq!(ev.data["next_opening"]["window"], "business hours");
    assert_eq!(ev.data["retry_after_seconds"], json!(retry.as_secs()));
    assert_eq!(
        ev.summary,
        "outside deployment windows; next opening Mon 2026-11-30 09:00 CET \
         (2026-11-30T08:00:00Z), window business hours"
    );
    // Sub-second precision: the wait is exact to the nanosecond.
    let (_, retry, _) = pending(&g, "2026-11-26T16:00:00.25Z");
    assert_eq!(
        retry,
        Duration::from_secs((3 * 24 + 16) * H) - Duration::from_millis(250)
    );
}

#[test]
fn berlin_spring_forward_shortens_a_window_across_the_gap() {
    // 2027-03-28: at 01:00Z clocks jump from 02:00 CET to 03:00 CEST.
    let g = gate([daily("01:30", "03:30", "Europe/Berlin")]);
    let (next, retry, _) = pending(&g, "2027-03-28T00:00:00Z"); // 01:00 CET
    assert_eq!(next, "2027-03-28T00:30:00Z"); // 01:30 CET
    assert_eq!(retry, Duration::from_secs(30 * 60));
    let ev = pass(&g, "2027-03-28T00:45:00Z");
    assert_eq!(until(&ev), "2027-03-28T01:30:00Z"); // 03:30 CEST: one real hour
    assert_eq!(
        ev.data["allowed_until"]["local"],
        "2027-03-28T03:30:00+02:00"
    );
    pass(&g, "2027-03-28T01:00:00Z"); // 03:00 CEST, right after the jump
    let (next, retry, ev) = pending(&g, "2027-03-28T01:30:00Z");
    assert_eq!(next, "2027-03-28T23:30:00Z"); // Monday 01:30 CEST
    assert_eq!(
        ev.data["next_opening"]["local"],
        "2027-03-29T01:30:00+02:00"
    );
    assert_eq!(retry, Duration::from_secs(22 * H));
}

#[test]
fn berlin_spring_forward_opens_a_window_that_starts_in_the_skipped_hour_at_the_jump() {
    let g = gate([daily("02:30", "04:00", "Europe/Berlin")]);
    let (next, retry, ev) = pending(&g, "2027-03-28T00:00:00Z");
    assert_eq!(next, "2027-03-28T01:00:00Z");
    assert_eq!(
        ev.data["next_opening"]["local"],
        "2027-03-28T03:00:00+02:00"
    );
    assert_eq!(retry, Duration::from_secs(H));
    // A window entirely inside the skipped hour does not open that day.
    let g = gate([daily("02:15", "02:45", "Europe/Berlin")]);
    let (next, retry, _) = pending(&g, "2027-03-27T12:00:00Z");
    assert_eq!(next, "2027-03-29T00:15:00Z"); // Monday 02:15 CEST
    assert_eq!(retry, Duration::from_secs(36 * H + 15 * 60));
}

#[test]
fn berlin_fall_back_lengthens_a_window_across_the_repeated_hour() {
    // 2026-10-25: at 01:00Z clocks go back from 03:00 CEST to 02:00 CET.
    let g = gate([daily("01:30", "03:30", "Europe/Berlin")]);
    let (next, retry, _) = pending(&g, "2026-10-24T23:00:00Z"); // 01:00 CEST
    assert_eq!(next, "2026-10-24T23:30:00Z");
    assert_eq!(retry, Duration::from_secs(30 * 60));
    let ev = pass(&g, "2026-10-24T23:30:00Z");
    assert_eq!(until(&ev), "2026-10-25T02:30:00Z"); // 03:30 CET: three real hours
    pass(&g, "2026-10-25T00:59:59Z"); // 02:59:59 CEST
    pass(&g, "2026-10-25T01:00:00Z"); // 02:00 CET
    let (next, _, _) = pending(&g, "2026-10-25T02:30:00Z");
    assert_eq!(next, "2026-10-26T00:30:00Z"); // Monday 01:30 CET
}

#[test]
fn berlin_fall_back_opens_a_window_twice_when_its_start_is_read_twice() {
    let g = gate([daily("02:30", "03:30", "Europe/Berlin")]);
    let ev = pass(&g, "2026-10-25T00:45:00Z"); // 02:45 CEST
    assert_eq!(until(&ev), "2026-10-25T01:00:00Z"); // clocks go back to 02:00
    let (next, retry, ev) = pending(&g, "2026-10-25T01:00:00Z"); // 02:00 CET
    assert_eq!(next, "2026-10-25T01:30:00Z"); // the second 02:30
    assert_eq!(
        ev.data["next_opening"]["local"],
        "2026-10-25T02:30:00+01:00"
    );
    assert_eq!(retry, Duration::from_secs(30 * 60));
    let ev = pass(&g, "2026-10-25T01:30:00Z");
    assert_eq!(until(&ev), "2026-10-25T02:30:00Z");
    // A window that ended before the repeated hour reopens when the clocks go back.
    let g = gate([daily("01:30", "02:30", "Europe/Berlin")]);
    let (next, retry, _) = pending(&g, "2026-10-25T00:30:00Z"); // 02:30 CEST
    assert_eq!(next, "2026-10-25T01:00:00Z"); // 02:00 CET
    assert_eq!(retry, Duration::from_secs(30 * 60));
    assert_eq!(
        until(&pass(&g, "2026-10-25T01:00:00Z")),
        "2026-10-25T01:30:00Z"
    );
}

#[test]
fn new_york_business_hours_across_both_changes() {
    let g = gate([Window::new(["mon-fri"], "09:00", "17:00", "America/New_York").unwrap()]);
    // Friday 2026-10-30 17:00 EDT → Monday 2026-11-02 09:00 EST (clocks went back on Sunday).
    let (next, retry, ev) = pending(&g, "2026-10-30T21:00:00Z");
    assert_eq!(next, "2026-11-02T14:00:00Z");
    assert_eq!(
        ev.data["next_opening"]["local"],
        "2026-11-02T09:00:00-05:00"
    );
    assert_eq!(retry, Duration::from_secs(65 * H));
    // Friday 2027-03-12 17:00 EST → Monday 2027-03-15 09:00 EDT (clocks went forward).
    let (next, retry, ev) = pending(&g, "2027-03-12T22:00:00Z");
    assert_eq!(next, "2027-03-15T13:00:00Z");
    assert_eq!(
        ev.data["next_opening"]["local"],
        "2027-03-15T09:00:00-04:00"
    );
    assert_eq!(retry, Duration::from_secs(63 * H));
    // A window over the repeated hour of 2026-11-01 (01:00-02:00 EDT, then again EST).
    let g = gate([daily("01:00", "02:30", "America/New_York")]);
    let ev = pass(&g, "2026-11-01T05:45:00Z"); // 01:45 EDT
    assert_eq!(until(&ev), "2026-11-01T07:30:00Z"); // 02:30 EST
    assert_eq!(
        ev.data["allowed_until"]["local"],
        "2026-11-01T02:30:00-05:00"
    );
}

#[test]
fn a_freeze_wins_and_ending_inside_a_window_is_pending_until_its_end() {
    let g = DeploymentWindowGate::builder()
        .window(Window::new(["mon-thu"], "09:00", "16:00", "Europe/Berlin").unwrap())
        .freeze(
            Freeze::new(
                t("2026-12-02T12:00:00Z"),
                t("2026-12-03T10:30:00Z"),
                "incident INC-42",
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    // Thursday 10:00 CET: inside the window, but frozen.
    let (next, retry, ev) = pending(&g, "2026-12-03T09:00:00Z");
    assert_eq!(next, "2026-12-03T10:30:00Z");
    assert_eq!(retry, Duration::from_secs(90 * 60));
    assert_eq!(ev.data["decision"], "frozen");
    assert_eq!(
        ev.data["windows_open"],
        json!(["mon,tue,wed,thu 09:00-16:00 Europe/Berlin"])
    );
    assert_eq!(ev.data["freezes_active"][0]["reason"], "incident INC-42");
    assert_eq!(
        ev.data["next_opening"]["local"],
        "2026-12-03T11:30:00+01:00"
    );
    assert!(
        ev.summary.starts_with(
            "freeze \"incident INC-42\" until 2026-12-03T10:30:00Z; next opening Thu 2026-12-03 11:30 CET"
        ),
        "{}",
        ev.summary
    );
    pass(&g, "2026-12-03T10:30:00Z");
    pending(&g, "2026-12-03T10:29:59Z");
}

#[test]
fn a_freeze_ending_outside_the_windows_waits_for_the_next_window() {
    let g = DeploymentWindowGate::builder()
        .window(Window::new(["mon-thu"], "09:00", "16:00", "Europe/Berlin").unwrap())
        .freeze(
            Freeze::parse(
                "2026-12-20T00:00:00Z",
                Some("2027-01-02T00:00:00Z"),
                "holidays",
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    let (next, _, ev) = pending(&g, "2026-12-21T09:00:00Z");
    assert_eq!(next, "2027-01-04T08:00:00Z");
    assert_eq!(ev.data["decision"], "frozen");
}

#[test]
fn overlapping_windows_join_and_are_all_named() {
    let g = gate([
        Window::new(["mon-fri"], "09:00", "12:00", "Europe/Berlin")
            .unwrap()
            .named("morning"),
        Window::new(["mon-fri"], "11:00", "17:00", "Europe/Berlin")
            .unwrap()
            .named("afternoon"),
    ]);
    let ev = pass(&g, "2026-11-26T10:30:00Z");
    assert_eq!(ev.data["windows_open"], json!(["morning", "afternoon"]));
    assert_eq!(ev.facts["window"], "morning");
    assert_eq!(until(&ev), "2026-11-26T16:00:00Z");
    // Across zones: London 09-17 and New York 09-17 make one stretch 09:00Z-22:00Z.
    let g = gate([
        Window::new(["mon-fri"], "09:00", "17:00", "Europe/London").unwrap(),
        Window::new(["mon-fri"], "09:00", "17:00", "America/New_York").unwrap(),
    ]);
    let ev = pass(&g, "2026-11-26T16:00:00Z");
    assert_eq!(until(&ev), "2026-11-26T22:00:00Z");
    assert_eq!(ev.data["windows_open"].as_array().unwrap().len(), 2);
    let (next, _, ev) = pending(&g, "2026-11-26T22:00:00Z");
    assert_eq!(next, "2026-11-27T09:00:00Z");
    assert_eq!(ev.data["next_opening"]["zone"], "Europe/London");
}

#[test]
fn windows_may_cross_midnight() {
    let w = Window::new(["fri"], "22:00", "02:00", "UTC").unwrap();
    assert!(w.crosses_midnight());
    let g = gate([w]);
    pass(&g, "2026-11-27T22:00:00Z"); // Friday
    let ev = pass(&g, "2026-11-28T01:00:00Z"); // Saturday
    assert_eq!(until(&ev), "2026-11-28T02:00:00Z");
    let (next, retry, _) = pending(&g, "2026-11-28T02:00:00Z");
    assert_eq!(next, "2026-12-04T22:00:00Z");
    assert_eq!(retry, Duration::from_secs((6 * 24 + 20) * H));
    // Thursday night is not Friday night.
    pending(&g, "2026-11-26T23:00:00Z");
    pending(&g, "2026-11-27T01:00:00Z");
    // 24:00 ends at midnight; 00:00 as an end means the same.
    let g = gate([Window::new(["thu"], "20:00", "24:00", "UTC").unwrap()]);
    assert_eq!(
        until(&pass(&g, "2026-11-26T23:00:00Z")),
        "2026-11-27T00:00:00Z"
    );
    let g = gate([Window::new(["thu"], "20:00", "00:00", "UTC").unwrap()]);
    assert_eq!(
        until(&pass(&g, "2026-11-26T23:00:00Z")),
        "2026-11-27T00:00:00Z"
    );
    // A whole-week window stays open throughout the horizon.
    let g = gate([Window::anytime()]);
    let ev = pass(&g, "2026-11-26T23:00:00Z");
    assert_eq!(ev.data["allowed_until"], serde_json::Value::Null);
    assert_eq!(
        ev.summary,
        "inside deployment window any time, open throughout the next 366 days"
    );
}

#[test]
fn no_opening_within_the_horizon_fails_saying_why() {
    let g = DeploymentWindowGate::builder()
        .window(Window::anytime())
        .freeze(Freeze::until_further_notice(t("2026-11-20T00:00:00Z"), "incident INC-7").unwrap())
        .build()
        .unwrap();
    let Verdict::Fail(ev) = eval(&g, "2026-11-26T09:00:00Z") else {
        panic!("expected a fail")
    };
    assert_eq!(
        ev.summary,
        "no deployment window opens within 366 days: freeze \"incident INC-7\" until further notice"
    );
    assert_eq!(ev.data["decision"], "frozen");
    assert_eq!(ev.data["next_opening"], serde_json::Value::Null);
    // A permanent freeze starting tomorrow, evaluated outside the windows.
    let g = DeploymentWindowGate::builder()
        .window(Window::new(["mon-thu"], "09:00", "16:00", "Europe/Berlin").unwrap())
        .freeze(Freeze::until_further_notice(t("2026-11-27T00:00:00Z"), "migration").unwrap())
        .build()
        .unwrap();
    let Verdict::Fail(ev) = eval(&g, "2026-11-26T16:00:00Z") else {
        panic!("expected a fail")
    };
    assert_eq!(
        ev.summary,
        "no deployment window opens within 366 days: outside deployment windows; \
         freezes ahead: \"migration\" from 2026-11-27T00:00:00Z until further notice"
    );
    // A short horizon.
    let g = DeploymentWindowGate::builder()
        .window(Window::new(["mon-thu"], "09:00", "16:00", "Europe/Berlin").unwrap())
        .horizon(Duration::from_secs(24 * H))
        .build()
        .unwrap();
    let Verdict::Fail(ev) = eval(&g, "2026-11-26T16:00:00Z") else {
        panic!("expected a fail")
    };
    assert_eq!(
        ev.summary,
        "no deployment window opens within 1 day: outside deployment windows"
    );
    // ...but the same gate waits when the opening is within a day.
    pending(&g, "2026-11-25T16:00:00Z");
}

/// The next allowed instant by brute force, minute by minute (every boundary in these
/// configurations falls on a whole minute).
fn brute_force(g: &DeploymentWindowGate, from: DateTime<Utc>, limit: i64) -> Option<DateTime<Utc>> {
    (0..limit)
        .map(|m| from + TimeDelta::minutes(m))
        .find(|t| g.allows(*t))
}

#[test]
fn the_next_opening_matches_a_minute_by_minute_search_across_dst_weekends() {
    let g = DeploymentWindowGate::builder()
        .window(daily("01:30", "02:30", "Europe/Berlin"))
        .window(daily("02:15", "02:45", "Europe/Berlin"))
        .window(Window::new(["sat", "sun"], "23:30", "01:10", "America/New_York").unwrap())
        .window(Window::new(["sun"], "03:00", "03:20", "Europe/Berlin").unwrap())
        .freeze(Freeze::parse("2026-10-25T00:40:00Z", Some("2026-10-25T01:10:00Z"), "x").unwrap())
        .freeze(Freeze::parse("2027-03-28T00:50:00Z", Some("2027-03-28T01:05:00Z"), "y").unwrap())
        .horizon(Duration::from_secs(7 * 24 * H))
        .build()
        .unwrap();
    for start in [
        "2026-10-24T20:00:00Z",
        "2026-10-31T20:00:00Z",
        "2027-03-13T20:00:00Z",
        "2027-03-27T20:00:00Z",
    ] {
        let start = t(start);
        // Every 7 minutes over 36 hours.
        for step in 0..(36 * 60 / 7) {
            let now = start + TimeDelta::minutes(7 * step);
            let expected = brute_force(&g, now, 3 * 24 * 60);
            assert_eq!(g.next_opening(now), expected, "from {now}");
            let verdict = block_on(GateProbe::new().at(now).evaluate(&g)).unwrap();
            match (verdict, expected) {
                (Verdict::Pass(_), Some(e)) => assert_eq!(e, now),
                (Verdict::Pending { retry_after, .. }, Some(e)) => {
                    assert_eq!(now + TimeDelta::from_std(retry_after).unwrap(), e);
                    // Asking again when told to passes.
                    let again = block_on(GateProbe::new().at(e).evaluate(&g)).unwrap();
                    assert!(matches!(again, Verdict::Pass(_)), "at {e}");
                }
                (v, e) => panic!("from {now}: {v:?} but expected {e:?}"),
            }
            // The closing matches too.
            if g.allows(now) {
                let closing = (1..3 * 24 * 60)
                    .map(|m| now + TimeDelta::minutes(m))
                    .find(|t| !g.allows(*t));
                let got = g.next_closing(now).map(|c| {
                    // Brute force sees minutes only: round up.
                    let m = (c - now).num_seconds();
                    now + TimeDelta::minutes((m + 59) / 60)
                });
                assert_eq!(got, closing, "closing from {now}");
            }
        }
    }
}

#[test]
fn the_toml_sample_configures_the_gate_and_its_digest_is_evidence() {
    let g = DeploymentWindowGate::builder()
        .name("shop-windows")
        .toml_file(data("windows.toml"))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(g.name(), "shop-windows");
    assert_eq!(g.windows().len(), 3);
    assert_eq!(g.freezes().len(), 2);
    assert!(g.windows()[2].crosses_midnight());
    assert_eq!(g.freezes()[0].from(), t("2026-12-18T15:00:00Z"));
    assert_eq!(g.freezes()[1].reason(), "Black Friday");
    // Thursday 10:00 CET: Berlin is open; New York opens at 14:00Z, so open until 18:00Z.
    let ev = pass(&g, "2026-11-26T09:00:00Z");
    assert_eq!(ev.facts["window"], "berlin business hours");
    assert_eq!(until(&ev), "2026-11-26T18:00:00Z");
    let bytes = std::fs::read(data("windows.toml")).unwrap();
    assert_eq!(ev.attachments.len(), 1);
    assert_eq!(ev.attachments[0].name, data("windows.toml"));
    assert_eq!(ev.attachments[0].digest, Digest::of(&bytes));
    assert_eq!(ev.data["config"]["windows"][2]["days"], json!(["sat"]));
    // Black Friday (no window on Fridays anyway): the freeze decides; Saturday night opens.
    let (next, retry, ev) = pending(&g, "2026-11-27T10:00:00Z");
    assert_eq!(ev.data["decision"], "frozen");
    assert!(ev.summary.starts_with("freeze \"Black Friday\""));
    assert_eq!(next, "2026-11-28T22:00:00Z");
    assert_eq!(retry, Duration::from_secs(36 * H));
    assert_eq!(ev.data["next_opening"]["window"], "saturday maintenance");
    // Before the holidays: every window until 4 January is frozen.
    let (next, _, ev) = pending(&g, "2026-12-17T19:00:00Z");
    assert_eq!(ev.data["decision"], "outside_windows");
    assert_eq!(next, "2027-01-04T08:00:00Z");
}

fn toml_error(name: &str) -> String {
    DeploymentWindowGate::builder()
        .toml_file(data(name))
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_toml_entries_are_typed_errors_naming_the_entry() {
    let f = data("");
    assert_eq!(
        toml_error("bad-zone.toml"),
        format!("{f}bad-zone.toml line 7: window 2: unknown time zone `Europe/Berln` (expected an IANA name such as Europe/Berlin)")
    );
    assert!(toml_error("bad-day.toml").starts_with(&format!(
        "{f}bad-day.toml line 1: window 1: unknown day `thurs-fry`"
    )));
    assert!(toml_error("bad-time.toml").starts_with(&format!(
        "{f}bad-time.toml line 1: window 1: invalid start time `9 am`"
    )));
    assert!(toml_error("empty-window.toml").starts_with(&format!(
        "{f}empty-window.toml line 1: window 1: starts and ends at 09:00"
    )));
    assert_eq!(
        toml_error("backwards-freeze.toml"),
        format!("{f}backwards-freeze.toml line 7: freeze 1: ends at 2026-12-20T00:00:00Z, which is not after its start 2027-01-02T00:00:00Z")
    );
    assert!(
        toml_error("freeze-without-offset.toml").starts_with(&format!(
            "{f}freeze-without-offset.toml line 7: freeze 1: invalid from `2026-12-20T00:00:00`"
        ))
    );
    assert!(
        toml_error("freeze-without-reason.toml").starts_with(&format!(
            "{f}freeze-without-reason.toml line 7: freeze 1: a freeze needs a reason"
        ))
    );
    assert!(matches!(
        DeploymentWindowGate::builder().toml_file(data("bad-zone.toml")),
        Err(WindowConfigError::UnknownZone { zone, .. }) if zone == "Europe/Berln"
    ));
}

#[test]
fn malformed_toml_documents_are_errors_naming_file_and_line() {
    let f = data("");
    let e = toml_error("syntax-error.toml");
    assert!(
        e.starts_with(&format!("{f}syntax-error.toml line 3: ")),
        "{e}"
    );
    let e = toml_error("missing-zone.toml");
    assert!(
        e.starts_with(&format!("{f}missing-zone.toml line 1: ")) && e.contains("zone"),
        "{e}"
    );
    let e = toml_error("unknown-key.toml");
    assert!(
        e.starts_with(&format!("{f}unknown-key.toml line 6: ")) && e.contains("timezone"),
        "{e}"
    );
    let e = toml_error("no-such-file.toml");
    assert!(
        e.starts_with(&format!("cannot read {f}no-such-file.toml: ")),
        "{e}"
    );
    assert!(matches!(
        DeploymentWindowGate::builder().toml("horizon_days = \"long\"", "inline"),
        Err(WindowConfigError::Document { what, .. }) if what == "inline line 1"
    ));
}

#[test]
fn bad_configuration_in_code_is_a_typed_error_at_construction() {
    assert_eq!(
        Window::new(["mon"], "09:00", "16:00", "Mars/Olympus").unwrap_err(),
        WindowConfigError::UnknownZone {
            entry: "window `mon 09:00-16:00 Mars/Olympus`".into(),
            zone: "Mars/Olympus".into()
        }
    );
    assert!(
        matches!(Window::new(["funday"], "09:00", "16:00", "UTC"), Err(WindowConfigError::InvalidDay { day, .. }) if day == "funday")
    );
    assert!(matches!(
        Window::new(Vec::<&str>::new(), "09:00", "16:00", "UTC"),
        Err(WindowConfigError::NoDays { .. })
    ));
    assert!(matches!(
        Window::new(["mon"], "24:00", "16:00", "UTC"),
        Err(WindowConfigError::InvalidTime { which: "start", .. })
    ));
    assert!(matches!(
        Window::new(["mon"], "09:00", "16:60", "UTC"),
        Err(WindowConfigError::InvalidTime { which: "end", .. })
    ));
    assert!(matches!(
        Window::new(["mon"], "00:00", "00:00", "UTC"),
        Err(WindowConfigError::EmptyWindow { .. })
    ));
    assert!(matches!(
        Freeze::new(t("2026-12-20T00:00:00Z"), t("2026-12-20T00:00:00Z"), "x"),
        Err(WindowConfigError::EmptyFreeze { .. })
    ));
    assert!(matches!(
        Freeze::new(t("2026-12-20T00:00:00Z"), t("2026-12-21T00:00:00Z"), ""),
        Err(WindowConfigError::NoReason { .. })
    ));
    assert!(matches!(
        Freeze::parse("2026-12-20", None, "x"),
        Err(WindowConfigError::InvalidInstant { which: "from", .. })
    ));
    assert!(matches!(
        DeploymentWindowGate::builder().build(),
        Err(WindowConfigError::NoWindows)
    ));
    assert!(matches!(
        DeploymentWindowGate::builder()
            .window(Window::anytime())
            .horizon(Duration::ZERO)
            .build(),
        Err(WindowConfigError::InvalidHorizon { horizon }) if horizon.is_zero()
    ));
    assert!(matches!(
        DeploymentWindowGate::builder()
            .window(Window::anytime())
            .horizon(Duration::from_secs(4000 * 24 * H))
            .build(),
        Err(WindowConfigError::InvalidHorizon { .. })
    ));
    assert!(matches!(
        DeploymentWindowGate::builder()
            .window(Window::anytime())
            .horizon(Duration::from_secs(36 * H))
            .build(),
        Err(WindowConfigError::InvalidHorizon { .. })
    ));
    assert!(matches!(
        DeploymentWindowGate::builder()
            .window(Window::anytime())
            .name("")
            .build(),
        Err(WindowConfigError::InvalidName(_))
    ));
    // Day ranges wrap around the week, full names are accepted.
    let w = Window::new(["fri-mon", "Wednesday"], "09:00", "10:00", "UTC").unwrap();
    assert_eq!(w.description(), "mon,wed,fri,sat,sun 09:00-10:00 UTC");
    assert_eq!(w.label(), w.description());
    assert_eq!(w.zone(), Tz::UTC);
}

#[test]
fn a_file_that_is_not_utf8_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.toml");
    std::fs::write(&path, b"[[window]]\nname = \"caf\xe9\"\n").unwrap();
    match DeploymentWindowGate::builder().toml_file(&path) {
        Err(WindowConfigError::Document { what, message }) => {
            assert_eq!(what, format!("{} line 2", path.display()));
            assert_eq!(message, "not valid UTF-8");
        }
        other => panic!("expected a document error, got {other:?}"),
    }
}
