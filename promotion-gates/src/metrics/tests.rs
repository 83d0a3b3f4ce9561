//! Unit tests of the metric gate.

use super::*;
use chrono::{DateTime, Utc};
use futures::executor::block_on;
use promotion_core::testing::GateProbe;
use promotion_core::{Actor, Event, EventBody, ReleaseState, StageName};
use promotion_core::{GateError, Verdict};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const URL: &str = "http://127.0.0.1:9090";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn builder() -> MetricGateBuilder {
    MetricGate::builder(URL, "error_ratio").name("error-rate")
}

fn reading(labels: &[(&str, &str)], at: DateTime<Utc>, value: f64) -> Reading {
    Reading {
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        at,
        value,
    }
}

/// A state in which stage `test` started (entry phase) at `at`.
fn started(at: DateTime<Utc>) -> ReleaseState {
    let ev = Event {
        at,
        actor: Actor::Engine,
        request: None,
        body: EventBody::StageStarted {
            stage: StageName::new("test").unwrap(),
            by: None,
        },
    };
    ReleaseState::replay([&ev])
}

#[test]
fn conditions_parse_display_and_compare() {
    let c: Condition = "result < 0.01".parse().unwrap();
    assert_eq!(c, Condition::lt(0.01));
    assert_eq!(c.to_string(), "result < 0.01");
    assert_eq!(
        "  >=1e-3 ".parse::<Condition>().unwrap(),
        Condition::ge(0.001)
    );
    assert_eq!(
        "result<=5".parse::<Condition>().unwrap(),
        Condition::le(5.0)
    );
    assert_eq!(
        "result == 1".parse::<Condition>().unwrap(),
        Condition::eq(1.0)
    );
    assert_eq!(
        "result != 0".parse::<Condition>().unwrap(),
        Condition::ne(0.0)
    );
    assert_eq!(
        "result > -2.5".parse::<Condition>().unwrap(),
        Condition::gt(-2.5)
    );
    for (text, problem) in [
        ("result ~ 1", "no comparison operator"),
        ("result <", "no threshold"),
        ("result < abc", "`abc` is not a number"),
        ("result < NaN", "finite"),
        ("result < inf", "finite"),
    ] {
        let err = text.parse::<Condition>().unwrap_err();
        assert_eq!(err.text, text);
        assert!(err.problem.contains(problem), "{text}: {err}");
        assert!(err.to_string().contains("expected such as `result < 0.01`"));
    }
    let v = 0.5;
    assert!(Condition::lt(1.0).holds(v) && !Condition::lt(0.5).holds(v));
    assert!(Condition::le(0.5).holds(v) && !Condition::le(0.4).holds(v));
    assert!(Condition::gt(0.4).holds(v) && !Condition::gt(0.5).holds(v));
    assert!(Condition::ge(0.5).holds(v) && !Condition::ge(0.6).holds(v));
    assert!(Condition::eq(0.5).holds(v) && !Condition::eq(0.6).holds(v));
    assert!(Condition::ne(0.6).holds(v) && !Condition::ne(0.5).holds(v));
    // NaN meets nothing, not even `!=`; infinities compare as numbers.
    for c in [Condition::lt(1.0), Condition::ne(1.0), Condition::ge(-1.0)] {
        assert!(!c.holds(f64::NAN), "{c}");
    }
    assert!(Condition::gt(1e300).holds(f64::INFINITY));
    assert!(!Condition::lt(1e300).holds(f64::INFINITY));
}

#[test]
fn each_value_is_judged_as_argo_does() {
    use MeasurementPhase::*;
    let success_only = builder()
        .success_condition(Condition::lt(0.01))
        .build()
        .unwrap();
    assert_eq!(success_only.judge(&[0.005]), Successful);
    assert_eq!(success_only.judge(&[0.02]), Failed);

    let failure_only = builder()
        .failure_condition(Condition::gt(0.05))
        .build()
        .unwrap();
    assert_eq!(failure_only.judge(&[0.02]), Successful);
    assert_eq!(failure_only.judge(&[0.07]), Failed);

    let both = builder()
        .success_condition(Condition::lt(0.01))
        .failure_condition(Condition::gt(0.05))
        .build()
        .unwrap();
    assert_eq!(both.judge(&[0.005]), Successful);
    assert_eq!(both.judge(&[0.07]), Failed);
    assert_eq!(
        both.judge(&[0.03]),
        Inconclusive,
        "neither condition is met"
    );

    // Both met: the failure condition wins.
    let overlapping = builder()
        .success_condition(Condition::lt(1.0))
        .failure_condition(Condition::gt(0.5))
        .build()
        .unwrap();
    assert_eq!(overlapping.judge(&[0.7]), Failed);

    // No data and no value are inconclusive under any conditions.
    for g in [&success_only, &failure_only, &both] {
        assert_eq!(g.judge(&[]), Inconclusive);
        assert_eq!(g.judge(&[f64::NAN]), Inconclusive);
    }
    // The worst value of a measurement counts.
    assert_eq!(both.judge(&[0.001, 0.03]), Inconclusive);
    assert_eq!(both.judge(&[0.001, f64::NAN, 0.09]), Failed);
    assert_eq!(both.judge(&[0.001, 0.002]), Successful);
    // Infinities are numbers.
    assert_eq!(both.judge(&[f64::INFINITY]), Failed);
    assert_eq!(success_only.judge(&[f64::NEG_INFINITY]), Successful);
}

#[test]
fn the_reason_names_the_value_the_series_and_the_condition() {
    let g = builder()
        .success_condition(Condition::lt(0.01))
        .failure_condition(Condition::gt(0.05))
        .build()
        .unwrap();
    let at = t("2026-11-26T09:00:00Z");
    let j = g.judge_readings(&[
        reading(&[("pod", "a")], at, 0.001),
        reading(&[("pod", "b")], at, 0.08),
    ]);
    assert_eq!(j.phase, MeasurementPhase::Failed);
    assert_eq!(j.decisive, Some(1));
    assert_eq!(
        j.reason,
        "0.08{pod=\"b\"} meets the failure condition result > 0.05"
    );
    let j = g.judge_readings(&[reading(&[], at, 0.03)]);
    assert_eq!(
        j.reason,
        "0.03 meets neither result < 0.01 nor result > 0.05"
    );
    let j = g.judge_readings(&[reading(&[("track", "canary")], at, f64::NAN)]);
    assert_eq!(
        j.reason,
        "NaN{track=\"canary\"}: no value (NaN, such as 0/0 when there was no traffic)"
    );
    let j = g.judge_readings(&[]);
    assert_eq!(j.reason, "no data: the query returned nothing");
    assert_eq!(j.decisive, None);
    let j = g.judge_readings(&[reading(&[], at, 0.001), reading(&[], at, 0.002)]);
    assert_eq!(j.reason, "all 2 values meet result < 0.01");
    assert_eq!(j.decisive, None);

    let success_only = builder()
        .success_condition(Condition::lt(0.01))
        .build()
        .unwrap();
    let j = success_only.judge_readings(&[reading(&[], at, 0.02)]);
    assert_eq!(
        j.reason,
        "0.02 does not meet the success condition result < 0.01"
    );
    let failure_only = builder()
        .failure_condition(Condition::gt(0.05))
        .build()
        .unwrap();
    let j = failure_only.judge_readings(&[reading(&[], at, 0.02)]);
    assert_eq!(
        j.reason,
        "0.02 does not meet the failure condition result > 0.05"
    );
    // In range mode the reason says when.
    let ranged = builder()
        .success_condition(Condition::lt(0.01))
        .mode(QueryMode::Range {
            window: Duration::from_secs(60),
            step: Duration::from_secs(10),
        })
        .build()
        .unwrap();
    let j = ranged.judge_readings(&[
        reading(&[], at, 0.001),
        reading(&[], t("2026-11-26T09:00:10Z"), 0.5),
    ]);
    assert_eq!(
        j.reason,
        "0.5 at 2026-11-26T09:00:10Z does not meet the success condition result < 0.01"
    );
}

#[test]
fn tallies_stop_at_the_first_measurement_past_a_limit() {
    use MeasurementPhase::*;
    let g = builder()
        .success_condition(Condition::lt(0.01))
        .count(5)
        .interval(Duration::from_secs(60))
        .failure_limit(1)
        .inconclusive_limit(1)
        .build()
        .unwrap();
    let a = g.assess(&[]);
    assert_eq!(a.status, AnalysisStatus::Running);
    assert_eq!(a.tallies, Tallies::default());
    let a = g.assess(&[Successful, Failed, Inconclusive]);
    assert_eq!(a.status, AnalysisStatus::Running);
    assert_eq!(
        a.tallies,
        Tallies {
            measured: 3,
            successful: 1,
            failed: 1,
            inconclusive: 1
        }
    );
    // The second failure decides; what comes after it is not counted.
    let a = g.assess(&[Failed, Successful, Failed, Inconclusive, Inconclusive]);
    assert_eq!(a.status, AnalysisStatus::Failed);
    assert_eq!(a.tallies.measured, 3);
    assert_eq!(a.tallies.inconclusive, 0);
    // Whichever limit is passed first decides.
    let a = g.assess(&[Inconclusive, Inconclusive, Failed, Failed]);
    assert_eq!(a.status, AnalysisStatus::Inconclusive);
    assert_eq!(a.tallies.measured, 2);
    // Within the limits to the end: successful, even with a failure and an inconclusive.
    let a = g.assess(&[Successful, Failed, Inconclusive, Successful, Successful]);
    assert_eq!(a.status, AnalysisStatus::Successful);
    assert_eq!(a.tallies.successful, 3);
    // Measurements past `count` are ignored.
    let a = g.assess(&[Successful; 7]);
    assert_eq!(a.tallies.measured, 5);
    assert_eq!(a.status, AnalysisStatus::Successful);

    // With the default limits of zero, one bad measurement decides.
    let strict = builder()
        .success_condition(Condition::lt(0.01))
        .count(3)
        .build()
        .unwrap();
    assert_eq!(
        strict.assess(&[Successful, Failed]).status,
        AnalysisStatus::Failed
    );
    assert_eq!(
        strict.assess(&[Inconclusive]).status,
        AnalysisStatus::Inconclusive
    );
}

#[test]
fn the_schedule_counts_due_instants_in_milliseconds() {
    let s = Schedule {
        first_ms: 10_000,
        interval_ms: 1_000,
        count: 3,
    };
    assert_eq!(s.due(9_999), 0);
    assert_eq!(s.due(10_000), 1);
    assert_eq!(s.due(10_999), 1);
    assert_eq!(s.due(11_000), 2);
    assert_eq!(s.due(12_000), 3);
    assert_eq!(s.due(1_000_000), 3);
    assert_eq!(s.at_ms(0), 10_000);
    assert_eq!(s.at_ms(2), 12_000);
    let once = Schedule {
        first_ms: 10_000,
        interval_ms: 60_000,
        count: 1,
    };
    assert_eq!(once.due(9_000), 0);
    assert_eq!(once.due(500_000), 1);

    // The schedule counts from the phase start plus the initial delay, in whole ms.
    let g = builder()
        .success_condition(Condition::lt(0.01))
        .initial_delay(Duration::from_millis(1500))
        .interval(Duration::from_secs(2))
        .count(4)
        .build()
        .unwrap();
    let s = g.schedule(t("2026-11-26T09:00:00.000900Z"));
    assert_eq!(
        time_of(s.first_ms),
        t("2026-11-26T09:00:01.500Z"),
        "sub-millisecond start truncated"
    );
    assert_eq!(time_of(s.at_ms(3)), t("2026-11-26T09:00:07.500Z"));
}

#[test]
fn times_and_numbers_are_written_as_prometheus_reads_them() {
    assert_eq!(fmt_num(f64::NAN), "NaN");
    assert_eq!(fmt_num(f64::INFINITY), "+Inf");
    assert_eq!(fmt_num(f64::NEG_INFINITY), "-Inf");
    assert_eq!(fmt_num(0.25), "0.25");
    assert_eq!(num(f64::NAN), json!("NaN"));
    assert_eq!(num(2.0), json!(2.0));
    let mut labels = BTreeMap::new();
    assert_eq!(fmt_labels(&labels), "");
    labels.insert("track".to_owned(), "canary".to_owned());
    labels.insert("job".to_owned(), "a\"b".to_owned());
    assert_eq!(fmt_labels(&labels), r#"{job="a\"b",track="canary"}"#);
}

#[test]
fn a_range_answer_splits_into_the_scheduled_measurements() {
    let g = builder()
        .success_condition(Condition::lt(0.01))
        .count(3)
        .interval(Duration::from_secs(10))
        .build()
        .unwrap();
    let s = Schedule {
        first_ms: 1_795_683_600_000,
        interval_ms: 10_000,
        count: 3,
    };
    let p = |ms: i64, value: f64| Point {
        at: time_of(ms),
        value,
    };
    // Series a has all three instants, series b misses the second.
    let result = QueryResult::Matrix(vec![
        Series {
            labels: [("pod".to_owned(), "a".to_owned())].into(),
            points: vec![
                p(s.at_ms(0), 0.001),
                p(s.at_ms(1), 0.002),
                p(s.at_ms(2), 0.003),
            ],
        },
        Series {
            labels: [("pod".to_owned(), "b".to_owned())].into(),
            points: vec![p(s.at_ms(0), 0.004), p(s.at_ms(2), 0.005)],
        },
    ]);
    let m = g.readings(&result, &s, 3).unwrap();
    let values: Vec<Vec<f64>> = m
        .iter()
        .map(|r| r.iter().map(|x| x.value).collect())
        .collect();
    assert_eq!(
        values,
        vec![vec![0.001, 0.004], vec![0.002], vec![0.003, 0.005]]
    );
    // Only the due measurements are read.
    assert_eq!(g.readings(&result, &s, 2).unwrap().len(), 2);
    // A series that has vanished leaves its measurement empty: no data.
    let empty = QueryResult::Matrix(vec![]);
    assert!(g.readings(&empty, &s, 2).unwrap().iter().all(Vec::is_empty));

    // Range measurements take every point of their window, the instant included.
    let ranged = builder()
        .success_condition(Condition::lt(0.01))
        .count(2)
        .interval(Duration::from_secs(10))
        .mode(QueryMode::Range {
            window: Duration::from_secs(10),
            step: Duration::from_secs(5),
        })
        .build()
        .unwrap();
    let grid: Vec<Point> = (-2..=2)
        .map(|i| p(s.first_ms + i * 5_000, i as f64))
        .collect();
    let result = QueryResult::Matrix(vec![Series {
        labels: BTreeMap::new(),
        points: grid,
    }]);
    let m = ranged.readings(&result, &s, 2).unwrap();
    let values: Vec<Vec<f64>> = m
        .iter()
        .map(|r| r.iter().map(|x| x.value).collect())
        .collect();
    assert_eq!(values, vec![vec![-2.0, -1.0, 0.0], vec![0.0, 1.0, 2.0]]);
}

#[test]
fn scalars_count_and_strings_or_range_vectors_are_refused() {
    let g = builder()
        .success_condition(Condition::lt(0.01))
        .build()
        .unwrap();
    let s = Schedule {
        first_ms: 1_795_683_600_000,
        interval_ms: 60_000,
        count: 1,
    };
    let scalar = QueryResult::Scalar(Point {
        at: time_of(s.first_ms),
        value: 0.5,
    });
    let m = g.readings(&scalar, &s, 1).unwrap();
    assert_eq!(m[0].len(), 1);
    assert_eq!(m[0][0].value, 0.5);
    let string = QueryResult::String {
        at: time_of(s.first_ms),
        value: "abc".into(),
    };
    assert!(g
        .readings(&string, &s, 1)
        .unwrap_err()
        .contains("the string \"abc\""));
    let range_vector = QueryResult::Matrix(vec![]);
    assert!(g
        .readings(&range_vector, &s, 1)
        .unwrap_err()
        .contains("range vector"));
}

#[test]
fn bad_settings_are_typed_errors_naming_the_field() {
    let ok = || builder().success_condition(Condition::lt(0.01));
    let err = |b: MetricGateBuilder| b.build().unwrap_err();

    let e = err(builder());
    assert!(matches!(e, MetricConfigError::NoCondition { .. }));
    let e = err(builder().success_condition(Condition::lt(f64::NAN)));
    assert!(
        matches!(&e, MetricConfigError::InvalidThreshold { gate, field: "success_condition", value }
            if gate == "error-rate" && value.is_nan()),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "metric gate `error-rate`: success_condition: the threshold NaN is not a finite number"
    );
    let e = err(ok().failure_condition(Condition::gt(f64::INFINITY)));
    assert_eq!(
        e.to_string(),
        "metric gate `error-rate`: failure_condition: the threshold +Inf is not a finite number"
    );
    let e = err(MetricGate::builder(URL, "  ").success_condition(Condition::lt(1.0)));
    assert_eq!(
        e.to_string(),
        "metric gate `metric`: query: the query is empty"
    );
    assert!(matches!(
        err(ok().count(0)),
        MetricConfigError::ZeroCount { .. }
    ));
    let e = err(ok().count(3).interval(Duration::from_millis(500)));
    assert!(
        matches!(
            &e,
            MetricConfigError::InvalidDuration {
                field: "interval",
                ..
            }
        ),
        "{e}"
    );
    // One measurement needs no interval.
    assert!(ok().count(1).interval(Duration::ZERO).build().is_ok());
    let e = err(ok().count(3).failure_limit(3));
    assert_eq!(
        e.to_string(),
        "metric gate `error-rate`: failure_limit 3 must be less than count 3, or failed \
         measurements could never decide the analysis"
    );
    let e = err(ok().count(2).inconclusive_limit(5));
    assert!(matches!(
        e,
        MetricConfigError::LimitNotBelowCount {
            field: "inconclusive_limit",
            limit: 5,
            count: 2,
            ..
        }
    ));
    let e = err(ok().count(20_000).interval(Duration::from_secs(1)));
    assert!(matches!(
        e,
        MetricConfigError::TooManyPoints { points: 20_000, .. }
    ));
    let range = |window: u64, step: u64| QueryMode::Range {
        window: Duration::from_secs(window),
        step: Duration::from_secs(step),
    };
    let e = err(ok().mode(QueryMode::Range {
        window: Duration::from_secs(60),
        step: Duration::from_millis(100),
    }));
    assert!(matches!(
        e,
        MetricConfigError::InvalidDuration { field: "step", .. }
    ));
    let e = err(ok().mode(range(0, 5)));
    assert!(matches!(
        e,
        MetricConfigError::InvalidDuration {
            field: "window",
            ..
        }
    ));
    let e = err(ok().mode(range(62, 5)));
    assert!(
        e.to_string()
            .contains("window 62s: the window must be a positive multiple of the step 5s"),
        "{e}"
    );
    let e = err(ok()
        .mode(range(60, 7))
        .count(2)
        .interval(Duration::from_secs(63)));
    assert!(matches!(
        e,
        MetricConfigError::InvalidDuration {
            field: "window",
            ..
        }
    ));
    let e = err(ok()
        .mode(range(60, 5))
        .count(2)
        .interval(Duration::from_secs(62)));
    assert!(matches!(
        e,
        MetricConfigError::InvalidDuration {
            field: "interval",
            ..
        }
    ));
    // (count - 1) × interval + window = 3 × 3600 + 600 s at 1 s: 11 401 points.
    let e = err(ok()
        .mode(range(600, 1))
        .count(4)
        .interval(Duration::from_secs(3600)));
    assert!(matches!(
        e,
        MetricConfigError::TooManyPoints { points: 11_401, .. }
    ));
    assert!(ok()
        .mode(range(600, 1))
        .count(2)
        .interval(Duration::from_secs(60))
        .build()
        .is_ok());

    let e = err(MetricGate::builder("ftp://prom", "up").success_condition(Condition::lt(1.0)));
    assert_eq!(
        e.to_string(),
        "metric gate `metric`: prometheus_url `ftp://prom`: the scheme must be http or https"
    );
    let e = err(MetricGate::builder("not a url", "up").success_condition(Condition::lt(1.0)));
    assert!(matches!(
        e,
        MetricConfigError::Prometheus {
            source: PrometheusConfigError::InvalidUrl { .. },
            ..
        }
    ));
    let e = err(ok().timeout(Duration::ZERO));
    assert!(matches!(
        e,
        MetricConfigError::Prometheus {
            source: PrometheusConfigError::ZeroTimeout,
            ..
        }
    ));
    assert!(matches!(
        err(ok().name(" bad")),
        MetricConfigError::InvalidName(_)
    ));
}

#[test]
fn without_a_recorded_phase_start_the_gate_is_misconfigured() {
    let g = builder()
        .success_condition(Condition::lt(0.01))
        .build()
        .unwrap();
    let r = block_on(GateProbe::new().evaluate(&g));
    assert!(
        matches!(&r, Err(GateError::Misconfigured(m)) if m.contains("no start is recorded for the entry phase of stage test")),
        "{r:?}"
    );
}

#[test]
fn outside_a_tokio_runtime_the_query_is_a_typed_error() {
    let t0 = t("2026-11-26T09:00:00Z");
    let g = builder()
        .success_condition(Condition::lt(0.01))
        .build()
        .unwrap();
    let probe = GateProbe::new().state(started(t0)).at(t0);
    let r = block_on(probe.evaluate(&g));
    assert!(
        matches!(&r, Err(GateError::Misconfigured(m))
            if m.starts_with("querying http://127.0.0.1:9090/api/v1/query?query=error_ratio&time=1795683600.000")
                && m.ends_with("needs a tokio runtime with I/O and time enabled")),
        "{r:?}"
    );
}

#[test]
fn range_values_are_summarised_per_series_and_instant_values_listed() {
    let at = t("2026-11-26T09:00:00Z");
    let readings = [
        reading(&[("pod", "a")], at, 0.5),
        reading(&[("pod", "a")], at, f64::NAN),
        reading(&[("pod", "a")], at, 0.1),
        reading(&[("pod", "b")], at, f64::INFINITY),
    ];
    assert_eq!(
        serde_json::to_value(measurement_values(&readings, true)).unwrap(),
        json!([
            { "labels": { "pod": "a" }, "points": 3, "nan_points": 1, "min": 0.1, "max": 0.5 },
            { "labels": { "pod": "b" }, "points": 1, "nan_points": 0, "min": "+Inf", "max": "+Inf" },
        ])
    );
    assert_eq!(
        serde_json::to_value(measurement_values(&readings[..2], false)).unwrap(),
        json!([
            { "labels": { "pod": "a" }, "value": 0.5 },
            { "labels": { "pod": "a" }, "value": "NaN" },
        ])
    );
    assert_eq!(describe(&[]), "no data");
    assert_eq!(describe(&readings[..1]), "0.5{pod=\"a\"}");
    assert_eq!(describe(&readings[..3]), "3 values from 0.1 to 0.5");
    assert_eq!(describe(&readings[1..2]), "NaN{pod=\"a\"}");
}

#[test]
fn during_the_initial_delay_the_gate_waits_exactly_until_the_first_measurement() {
    let t0 = t("2026-11-26T09:00:00Z");
    let g = builder()
        .success_condition(Condition::lt(0.01))
        .initial_delay(Duration::from_secs(300))
        .count(3)
        .build()
        .unwrap();
    let probe = GateProbe::new()
        .state(started(t0))
        .at(t("2026-11-26T09:01:30Z"));
    // No request is made: the Prometheus URL is never contacted before the first instant.
    let Ok(Verdict::Pending {
        evidence,
        retry_after,
    }) = block_on(probe.evaluate(&g))
    else {
        panic!("expected pending")
    };
    assert_eq!(retry_after, Duration::from_secs(210));
    assert_eq!(
        evidence.summary,
        "error-rate: initial delay, first of 3 measurements at 2026-11-26T09:05:00Z"
    );
    assert_eq!(
        evidence.data["first_measurement_at"],
        "2026-11-26T09:05:00Z"
    );
    assert_eq!(evidence.data["phase_started_at"], "2026-11-26T09:00:00Z");
    assert_eq!(evidence.facts["status"], "running");
    assert_eq!(evidence.facts["measured"], "0");
    assert!(evidence.attachments.is_empty());
}
