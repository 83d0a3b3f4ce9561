//! The metric gate's evidence, byte for byte.
//!
//! Evidence is digested into the audit log (`evidence_digest`, over
//! [`promotion_core::canonical_json`]), so the same answer from Prometheus must always give the
//! same bytes: a change of key, number format or `null` would make a replayed evaluation
//! disagree with the recorded digest. Each case below evaluates the gate once against a fake
//! Prometheus that answers a fixed body, on a fixed clock, and compares the verdict and the
//! canonical JSON of its evidence with the text the gate wrote before its evidence became typed
//! structs. Only the fake server's port varies between runs; it is written as `PORT`.
//!
//! Run: `cargo test -p promotion-gates --test metric_evidence`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use promotion_core::layer::GateExt;
use promotion_core::testing::GateProbe;
use promotion_core::{
    canonical_json, Actor, Event, EventBody, Gate, GateName, Outcome, PhaseId, ReleaseState,
    StageName, Verdict,
};
use promotion_gates::metrics::{
    AnalysisStatus, Condition, MeasurementValues, MetricEvidence, MetricGate, MetricGateBuilder,
    MetricValue, QueryMode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// 2026-11-26T09:00:00Z, the phase start of every case.
const T0: i64 = 1_795_683_600;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A Prometheus API success answer holding `result` of `result_type`.
fn success(result_type: &str, result: &str) -> String {
    format!(r#"{{"status":"success","data":{{"resultType":"{result_type}","result":{result}}}}}"#)
}

/// What the fake Prometheus answers for the query named in the request: status and body.
fn answer(target: &str) -> (u16, String) {
    let query = target
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("query="))
        .unwrap_or("");
    let at = |s: i64| T0 + s;
    match query {
        "pass_one" => (
            200,
            success(
                "vector",
                &format!(
                    r#"[{{"metric":{{"job":"api"}},"value":[{},"0.002"]}}]"#,
                    at(0)
                ),
            ),
        ),
        "pass_many" => (
            200,
            format!(
                r#"{{"status":"success","warnings":["a warning"],"data":{{"resultType":"vector","result":[{{"metric":{{"pod":"a"}},"value":[{t},"0.001"]}},{{"metric":{{"pod":"b"}},"value":[{t},"0.004"]}}]}}}}"#,
                t = at(0)
            ),
        ),
        "fail_many" => (
            200,
            success(
                "vector",
                &format!(
                    r#"[{{"metric":{{"pod":"a"}},"value":[{t},"0.001"]}},{{"metric":{{"pod":"b"}},"value":[{t},"+Inf"]}},{{"metric":{{"pod":"c"}},"value":[{t},"0.07"]}}]"#,
                    t = at(0)
                ),
            ),
        ),
        "neither" => (
            200,
            success(
                "vector",
                &format!(r#"[{{"metric":{{}},"value":[{},"0.03"]}}]"#, at(0)),
            ),
        ),
        "nan" => (
            200,
            success(
                "vector",
                &format!(
                    r#"[{{"metric":{{"track":"canary"}},"value":[{},"NaN"]}}]"#,
                    at(0)
                ),
            ),
        ),
        "empty" => (200, success("vector", "[]")),
        "scalar" => (200, success("scalar", &format!(r#"[{},"0.004"]"#, at(0)))),
        "running" => (
            200,
            success(
                "matrix",
                &format!(
                    r#"[{{"metric":{{"pod":"a"}},"values":[[{},"0.001"],[{},"0.002"]]}}]"#,
                    at(0),
                    at(60)
                ),
            ),
        ),
        "ranged" => (
            200,
            success(
                "matrix",
                &format!(
                    r#"[{{"metric":{{"pod":"a"}},"values":[[{},"0.001"],[{},"NaN"],[{},"0.002"],[{},"0.003"],[{},"0.004"]]}},{{"metric":{{"pod":"b"}},"values":[[{},"-0.5"],[{},"0"]]}}]"#,
                    at(-20),
                    at(-10),
                    at(0),
                    at(10),
                    at(20),
                    at(0),
                    at(20)
                ),
            ),
        ),
        "down" => (503, "<html>Service Unavailable</html>".to_owned()),
        _ => (404, "404 page not found".to_owned()),
    }
}

/// A fake Prometheus on 127.0.0.1: one request per connection, answered by [`answer`].
async fn fake_prometheus() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0_u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let target = text.split(' ').nth(1).unwrap_or("/");
                let (status, body) = answer(target);
                let content_type = if status == 200 {
                    "application/json"
                } else {
                    "text/plain"
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// The state after stage `test` started (entry phase) at T0, then `errors` error rounds of
/// gate `gate`.
fn phase_state(gate: &str, errors: u32) -> ReleaseState {
    let at = t("2026-11-26T09:00:00Z");
    let stage = StageName::new("test").unwrap();
    let mut events = vec![Event {
        at,
        actor: Actor::Engine,
        request: None,
        body: EventBody::StageStarted {
            stage: stage.clone(),
            by: None,
        },
    }];
    for round in 1..=errors {
        events.push(Event {
            at,
            actor: Actor::Gate {
                name: GateName::new(gate).unwrap(),
            },
            request: None,
            body: EventBody::GateEvaluated {
                stage: stage.clone(),
                phase: PhaseId::Entry,
                round,
                gate: GateName::new(gate).unwrap(),
                outcome: Outcome::Error {
                    message: "earlier error".into(),
                },
                attempts: 1,
                evidence_digest: None,
                evidence: None,
            },
        });
    }
    ReleaseState::replay(&events)
}

/// The verdict's kind (with `retry_after` when pending) and the canonical JSON of its
/// evidence, the fake server's address written as `PORT`.
async fn evaluate(gate: &dyn Gate, addr: SocketAddr, now: &str, errors: u32) -> String {
    let state = phase_state(gate.name(), errors);
    let verdict = GateProbe::new()
        .state(state)
        .at(t(now))
        .evaluate(gate)
        .await
        .unwrap_or_else(|e| panic!("{}: {}", gate.name(), e.report()));
    let (kind, evidence) = match verdict {
        Verdict::Pass(e) => ("pass".to_owned(), e),
        Verdict::Fail(e) => ("fail".to_owned(), e),
        Verdict::Inconclusive(e) => ("inconclusive".to_owned(), e),
        Verdict::Pending {
            evidence,
            retry_after,
        } => (format!("pending {retry_after:?}"), evidence),
    };
    let json = String::from_utf8(canonical_json(&evidence).unwrap()).unwrap();
    format!("{kind}\n{json}").replace(&addr.to_string(), "127.0.0.1:PORT")
}

fn gate(addr: SocketAddr, query: &str) -> MetricGateBuilder {
    MetricGate::builder(format!("http://{addr}"), query)
        .name("error-rate")
        .success_condition(Condition::lt(0.01))
        .failure_condition(Condition::gt(0.05))
}

/// Compares with the pinned text, line by line first so that a failure shows where.
fn pinned(case: &str, actual: &str, expected: &str) {
    for (n, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
        assert_eq!(a, e, "{case}: line {} differs", n + 1);
    }
    assert_eq!(actual, expected, "{case}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evidence_bytes_are_pinned() {
    let addr = fake_prometheus().await;
    let at_t0 = "2026-11-26T09:00:00Z";

    // Pass: one series.
    let g = gate(addr, "pass_one").build().unwrap();
    pinned(
        "pass, one series",
        &evaluate(&g, addr, at_t0, 0).await,
        PASS_ONE,
    );

    // Pass: several series, all meeting the condition, with a Prometheus warning.
    let g = gate(addr, "pass_many").build().unwrap();
    pinned(
        "pass, several series",
        &evaluate(&g, addr, at_t0, 0).await,
        PASS_MANY,
    );

    // Fail: several series, one infinite and one past the failure condition.
    let g = gate(addr, "fail_many").build().unwrap();
    pinned(
        "fail, several series",
        &evaluate(&g, addr, at_t0, 0).await,
        FAIL_MANY,
    );

    // Inconclusive: neither condition met.
    let g = gate(addr, "neither").build().unwrap();
    pinned(
        "inconclusive, neither",
        &evaluate(&g, addr, at_t0, 0).await,
        NEITHER,
    );

    // NaN: no value.
    let g = gate(addr, "nan").build().unwrap();
    pinned("NaN", &evaluate(&g, addr, at_t0, 0).await, NAN);

    // Empty result: no data. Success condition only.
    let g = MetricGate::builder(format!("http://{addr}"), "empty")
        .name("error-rate")
        .success_condition(Condition::lt(0.01))
        .build()
        .unwrap();
    pinned("empty result", &evaluate(&g, addr, at_t0, 0).await, EMPTY);

    // A scalar, failure condition only.
    let g = MetricGate::builder(format!("http://{addr}"), "scalar")
        .name("error-rate")
        .failure_condition(Condition::ge(0.05))
        .build()
        .unwrap();
    pinned("scalar", &evaluate(&g, addr, at_t0, 0).await, SCALAR);

    // Running: two of three measurements taken, the next one due.
    let g = gate(addr, "running")
        .count(3)
        .interval(Duration::from_secs(60))
        .failure_limit(1)
        .build()
        .unwrap();
    pinned(
        "running",
        &evaluate(&g, addr, "2026-11-26T09:01:01Z", 0).await,
        RUNNING,
    );

    // The initial delay: no request yet.
    let g = gate(addr, "pass_one")
        .initial_delay(Duration::from_secs(300))
        .count(3)
        .build()
        .unwrap();
    pinned(
        "initial delay",
        &evaluate(&g, addr, "2026-11-26T09:01:30Z", 0).await,
        INITIAL_DELAY,
    );

    // Range measurements: a window of points per measurement, a NaN among them.
    let g = gate(addr, "ranged")
        .mode(QueryMode::Range {
            window: Duration::from_secs(20),
            step: Duration::from_secs(10),
        })
        .count(2)
        .interval(Duration::from_secs(20))
        .inconclusive_limit(1)
        .build()
        .unwrap();
    pinned(
        "range",
        &evaluate(&g, addr, "2026-11-26T09:00:25Z", 0).await,
        RANGED,
    );

    // Past the consecutive-error limit: a fail with the error as evidence.
    let g = gate(addr, "down").build().unwrap();
    pinned(
        "error limit",
        &evaluate(&g, addr, at_t0, 4).await,
        ERROR_LIMIT,
    );

    // Under a dry run the gate's evidence is kept inside the layer's.
    let g = gate(addr, "fail_many").build().unwrap().dry_run();
    pinned("dry run", &evaluate(&g, addr, at_t0, 0).await, DRY_RUN);
}

/// The evidence data of one evaluation, read back as [`MetricEvidence`]; asserts that writing
/// it again gives the same canonical bytes.
async fn typed(gate: &dyn Gate, now: &str, errors: u32) -> MetricEvidence {
    let verdict = GateProbe::new()
        .state(phase_state(gate.name(), errors))
        .at(t(now))
        .evaluate(gate)
        .await
        .unwrap();
    let data = verdict.evidence().data.clone();
    let evidence: MetricEvidence = serde_json::from_value(data.clone())
        .unwrap_or_else(|e| panic!("{}: {e}: {data}", gate.name()));
    assert_eq!(
        canonical_json(&evidence).unwrap(),
        canonical_json(&data).unwrap(),
        "{}: the typed evidence writes other bytes",
        gate.name()
    );
    evidence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shape_reads_back_as_its_typed_struct_and_writes_the_same_bytes() {
    let addr = fake_prometheus().await;
    let at_t0 = "2026-11-26T09:00:00Z";

    let g = gate(addr, "fail_many").build().unwrap();
    let MetricEvidence::Measured(m) = typed(&g, at_t0, 0).await else {
        panic!("expected measured evidence")
    };
    assert_eq!(m.status, AnalysisStatus::Failed);
    let decisive = m.measurements[0].decisive.as_ref().unwrap();
    assert_eq!(decisive.value, MetricValue(f64::INFINITY));
    assert_eq!(decisive.labels["pod"], "b");
    assert_eq!(m.config.failure_condition, Some(Condition::gt(0.05)));

    // NaN compares unequal to itself: check it by kind.
    let g = gate(addr, "nan").build().unwrap();
    let MetricEvidence::Measured(m) = typed(&g, at_t0, 0).await else {
        panic!("expected measured evidence")
    };
    let MeasurementValues::Instant(values) = &m.measurements[0].values else {
        panic!("expected instant values")
    };
    assert!(values[0].value.0.is_nan());

    let g = gate(addr, "ranged")
        .mode(QueryMode::Range {
            window: Duration::from_secs(20),
            step: Duration::from_secs(10),
        })
        .count(2)
        .interval(Duration::from_secs(20))
        .inconclusive_limit(1)
        .build()
        .unwrap();
    let MetricEvidence::Measured(m) = typed(&g, "2026-11-26T09:00:25Z", 0).await else {
        panic!("expected measured evidence")
    };
    let MeasurementValues::Range(series) = &m.measurements[0].values else {
        panic!("expected range summaries")
    };
    assert_eq!((series[0].points, series[0].nan_points), (3, 1));

    let g = gate(addr, "running")
        .count(3)
        .interval(Duration::from_secs(60))
        .build()
        .unwrap();
    let MetricEvidence::Measured(m) = typed(&g, "2026-11-26T09:01:01Z", 0).await else {
        panic!("expected measured evidence")
    };
    assert_eq!(m.next_measurement_at, Some(t("2026-11-26T09:02:00Z")));

    let g = gate(addr, "pass_one")
        .initial_delay(Duration::from_secs(300))
        .build()
        .unwrap();
    let MetricEvidence::Waiting(w) = typed(&g, "2026-11-26T09:01:30Z", 0).await else {
        panic!("expected waiting evidence")
    };
    assert_eq!(w.next_measurement_at, t("2026-11-26T09:05:00Z"));

    let g = gate(addr, "down").build().unwrap();
    let MetricEvidence::Error(e) = typed(&g, at_t0, 4).await else {
        panic!("expected error evidence")
    };
    assert_eq!(e.consecutive_errors, 5);
}

/// Edited evidence is refused naming the field, never read as something else.
#[test]
fn evidence_that_is_not_the_gates_is_refused() {
    let value: Result<MetricValue, _> = serde_json::from_str(r#""twelve""#);
    let err = value.unwrap_err().to_string();
    assert!(err.contains("\"twelve\""), "{err}");
    assert!(err.contains("\"NaN\", \"+Inf\", \"-Inf\""), "{err}");
    for (text, value) in [
        ("\"NaN\"", f64::NAN),
        ("\"-Inf\"", f64::NEG_INFINITY),
        ("2", 2.0),
    ] {
        let got: MetricValue = serde_json::from_str(text).unwrap();
        assert!(
            got.0 == value || (got.0.is_nan() && value.is_nan()),
            "{text}"
        );
    }
    let condition: Result<Condition, _> = serde_json::from_str(r#""result ~ 1""#);
    assert!(
        condition
            .unwrap_err()
            .to_string()
            .contains("no comparison operator"),
        "a condition is read as the builder reads it"
    );
    // A field the gate never writes: no shape accepts it.
    let whole: serde_json::Value =
        serde_json::from_str(PASS_ONE.split_once('\n').unwrap().1).unwrap();
    let mut data = whole["data"].clone();
    assert!(serde_json::from_value::<MetricEvidence>(data.clone()).is_ok());
    data["tallies"]["bonus"] = 1.into();
    assert!(serde_json::from_value::<MetricEvidence>(data).is_err());
}

// What the gate wrote when its evidence was built with `serde_json::json!` (before the typed
// evidence structs), each as the verdict and the canonical JSON of its evidence.

const PASS_ONE: &str = r#"pass
{"attachments":[{"digest":"sha256:75bb088cb0b92a73c6f30e253953cfc9e5fbd9d704985830c5cb6a5777a2a02f","name":"http://127.0.0.1:PORT/api/v1/query?query=pass_one&time=1795683600.000","size":116}],"data":{"config":{"consecutive_error_limit":4,"count":1,"failure_condition":"result > 0.05","failure_limit":0,"inconclusive_limit":0,"initial_delay_seconds":0.0,"interval_seconds":60.0,"mode":{"instant":{}},"prometheus":"http://127.0.0.1:PORT/","query":"pass_one","success_condition":"result < 0.01"},"endpoint":"query","first_measurement_at":"2026-11-26T09:00:00Z","measurements":[{"at":"2026-11-26T09:00:00Z","decisive":null,"index":1,"phase":"successful","reason":"0.002{job=\"api\"} meets result < 0.01","values":[{"labels":{"job":"api"},"value":0.002}]}],"phase_started_at":"2026-11-26T09:00:00Z","request":"http://127.0.0.1:PORT/api/v1/query?query=pass_one&time=1795683600.000","result_type":"vector","status":"successful","tallies":{"consecutive_errors":0,"failed":0,"inconclusive":0,"measured":1,"successful":1},"warnings":[]},"facts":{"consecutive_errors":"0","failed":"0","inconclusive":"0","measured":"1","status":"successful","successful":"1"},"observed_at":"2026-11-26T09:00:00Z","producer":"error-rate","summary":"error-rate: 1 of 1 measurements successful, 0 failed, 0 inconclusive; latest 0.002{job=\"api\"}"}"#;
const PASS_MANY: &str = r#"pass
{"attachments":[{"digest":"sha256:e55e60fd0bea6bbb53c6daeda5ed8b99ef90bc2941bf55f2110b0807bc56946b","name":"http://127.0.0.1:PORT/api/v1/query?query=pass_many&time=1795683600.000","size":191}],"data":{"config":{"consecutive_error_limit":4,"count":1,"failure_condition":"result > 0.05","failure_limit":0,"inconclusive_limit":0,"initial_delay_seconds":0.0,"interval_seconds":60.0,"mode":{"instant":{}},"prometheus":"http://127.0.0.1:PORT/","query":"pass_many","success_condition":"result < 0.01"},"endpoint":"query","first_measurement_at":"2026-11-26T09:00:00Z","measurements":[{"at":"2026-11-26T09:00:00Z","decisive":null,"index":1,"phase":"successful","reason":"all 2 values meet result < 0.01","values":[{"labels":{"pod":"a"},"value":0.001},{"labels":{"pod":"b"},"value":0.004}]}],"phase_started_at":"2026-11-26T09:00:00Z","request":"http://127.0.0.1:PORT/api/v1/query?query=pass_many&time=1795683600.000","result_type":"vector","status":"successful","tallies":{"consecutive_errors":0,"failed":0,"inconclusive":0,"measured":1,"successful":1},"warnings":["a warning"]},"facts":{"consecutive_errors":"0","failed":"0","inconclusive":"0","measured":"1","status":"successful","successful":"1"},"observed_at":"2026-11-26T09:00:00Z","producer":"error-rate","summary":"error-rate: 1 of 1 measurements successful, 0 failed, 0 inconclusive; latest 2 values from 0.001 to 0.004"}"#;
const FAIL_MANY: &str = r#"fail
{"attachments":[{"digest":"sha256:df62661f6ab5c86cc41052d09fe21e617cdf030f6233a8d58495b36833aa5520","name":"http://127.0.0.1:PORT/api/v1/query?query=fail_many&time=1795683600.000","size":216}],"data":{"config":{"consecutive_error_limit":4,"count":1,"failure_condition":"result > 0.05","failure_limit":0,"inconclusive_limit":0,"initial_delay_seconds":0.0,"interval_seconds":60.0,"mode":{"instant":{}},"prometheus":"http://127.0.0.1:PORT/","query":"fail_many","success_condition":"result < 0.01"},"endpoint":"query","first_measurement_at":"2026-11-26T09:00:00Z","measurements":[{"at":"2026-11-26T09:00:00Z","decisive":{"at":"2026-11-26T09:00:00Z","labels":{"pod":"b"},"value":"+Inf"},"index":1,"phase":"failed","reason":"+Inf{pod=\"b\"} meets the failure condition result > 0.05","values":[{"labels":{"pod":"a"},"value":0.001},{"labels":{"pod":"b"},"value":"+Inf"},{"labels":{"pod":"c"},"value":0.07}]}],"phase_started_at":"2026-11-26T09:00:00Z","request":"http://127.0.0.1:PORT/api/v1/query?query=fail_many&time=1795683600.000","result_type":"vector","status":"failed","tallies":{"consecutive_errors":0,"failed":1,"inconclusive":0,"measured":1,"successful":0},"warnings":[]},"facts":{"consecutive_errors":"0","failed":"1","inconclusive":"0","measured":"1","status":"failed","successful":"0"},"observed_at":"2026-11-26T09:00:00Z","producer":"error-rate","summary":"error-rate: measurement 1 of 1 failed: +Inf{pod=\"b\"} meets the failure condition result > 0.05 (1 failed, limit 0)"}"#;
const NEITHER: &str = r#"inconclusive
{"attachments":[{"digest":"sha256:24937b5892208b3273726820f487c760377109b33cf8ace6b9be1a7025644147","name":"http://127.0.0.1:PORT/api/v1/query?query=neither&time=1795683600.000","size":104}],"data":{"config":{"consecutive_error_limit":4,"count":1,"failure_condition":"result > 0.05","failure_limit":0,"inconclusive_limit":0,"initial_delay_seconds":0.0,"interval_seconds":60.0,"mode":{"instant":{}},"prometheus":"http://127.0.0.1:PORT/","query":"neither","success_condition":"result < 0.01"},"endpoint":"query","first_measurement_at":"2026-11-26T09:00:00Z","measurements":[{"at":"2026-11-26T09:00:00Z","decisive":{"at":"2026-11-26T09:00:00Z","labels":{},"value":0.03},"index":1,"phase":"inconclusive","reason":"0.03 meets neither result < 0.01 nor result > 0.05","values":[{"labels":{},"value":0.03}]}],"phase_started_at":"2026-11-26T09:00:00Z","request":"http://127.0.0.1:PORT/api/v1/query?query=neither&time=1795683600.000","result_type":"vector","status":"inconclusive","tallies":{"consecutive_errors":0,"failed":0,"inconclusive":1,"measured":1,"successful":0},"warnings":[]},"facts":{"consecutive_errors":"0","failed":"0","inconclusive":"1","measured":"1","status":"inconclusive","successful":"0"},"observed_at":"2026-11-26T09:00:00Z","producer":"error-rate","summary":"error-rate: measurement 1 of 1 inconclusive: 0.03 meets neither result < 0.01 nor result > 0.05 (1 inconclusive, limit 0)"}"#;
const NAN: &str = r#"inconclusive
{"attachments":[{"digest":"sha256:abaac45a2801e869493437e697a201333a26c58d6231549aa0eff981c1513e6d","name":"http://127.0.0.1:PORT/api/v1/query?query=nan&time=1795683600.000","size":119}],"data":{"config":{"consecutive_error_limit":4,"count":1,"failure_condition":"result > 0.05","failure_limit":0,"inconclusive_limit":0,"initial_delay_seconds":0.0,"interval_seconds":60.0,"mode":{"instant":{}},"prometheus":"http://127.0.0.1:PORT/","query":"nan","success_condition":"result < 0.01"},"endpoint":"query","first_measurement_at":"2026-11-26T09:00:00Z","measurements":[{"at":"2026-11-26T09:00:00Z","decisive":{"at":"2026-11-26T09:00:00Z","labels":{"track":"canary"},"value":"NaN"},"index":1,"phase":"inconclusive","reason":"NaN{track=\"canary\"}: no value (NaN, such as 0/0 when there was no traffic)","values":[{"labels":{"track":"canary"},"value":"NaN"}]}],"phase_started_at":"2026-11-26T09:00:00Z","request":"http://127.0.0.1:PORT/api/v1/query?query=nan&time=1795683600.000","result_type":"vector","status":"inconclusive","tallies":{"consecutive_errors":0,"failed":0,"inconclusive":1,"measured":1,"successful":0},"warnings":[]},"facts":{"consecutive_errors":"0","failed":"0","inconclusive":"1","measured":"1","status":"inconclusive","successful":"0"},"observed_at":"2026-11-26T09:00:00Z","producer":"error-rate","summary":"error-rate: measurement 1 of 1 inconclusive: NaN{track=\"canary\"}: no value (NaN, such as 0/0 when there was no traffic) (1 inconclusive, limit 0)"}"#;
const EMPTY: &str = r#"inconclusive
{"attachments":[{"digest":"sha256:664b0f4a552599ac59d91a24f7e6ea8c7a4499ad237fb76aa25c33d8c25f6ec2","name":"http://127.0.0.1:PORT/api/v1/query?query=empty&time=1795683600.000","size":63}],"data":{"config":{"consecutive_error_limit":4,"count":1,"failure_condition":null,"failure_limit":0,"inconclusive_limit":0,"initial_delay_seconds":0.0,"interval_seconds":60.0,"mode":{"instant":{}},"prometheus":"http://127.0.0.1:PORT/","query":"empty","success_condition":"result < 0.01"},"endpoint":"query","first_measurement_at":"2026-11-26T09:00:00Z","measurements":[{"at":"2026-11-26T09:00:00Z","decisive":null,"index":1,"phase":"inconclusive","reason":"no data: the query returned nothing","values":[]}],"phase_started_at":"2026-11-26T09:00:00Z","request":"http://127.0.0.1:PORT/api/v1/query?query=empty&time=1795683600.000","result_type":"vector","status":"inconclusive","tallies":{"consecutive_errors":0,"failed":0,"inconclusive":1,"measured":1,"successful":0},"warnings":[]},"facts":{"consecutive_errors":"0","failed":"0","inconclusive":"1","measured":"1","status":"inconclusive","successful":"0"},"observed_at":"2026-11-26T09:00:00Z","producer":"error-rate","summary":"error-rate: measurement 1 of 1 inconclusive: no data: the query returned nothing (1 inconclusive, limit 0)"}"#;
const SCALAR: &str = r#"pass
{"attachments":[{"digest":"sha256:f3b27219d4cb82585998018d576678538dc9db7d05855560fbffe3542b48a357","name":"http://127.0.0.1:PORT/api/v1/query?query=scalar&time=1795683600.000","size":81}],"data":{"config":{"consecutive_error_limit":4,"count":1,"failure_condition":"result >= 0.05","failure_limit":0,"inconclusive_limit":0,"initial_delay_seconds":0.0,"interval_seconds":60.0,"mode":{"instant":{}},"prometheus":"http://127.0.0.1:PORT/","query":"scalar","success_condition":null},"endpoint":"query","first_measurement_at":"2026-11-26T09:00:00Z","measurements":[{"at":"2026-11-26T09:00:00Z","decisive":null,"index":1,"phase":"successful","reason":"0.004 does not meet the failure condition result >= 0.05","values":[{"labels":{},"value":0.004}]}],"phase_started_at":"2026-11-26T09:00:00Z","request":"http://127.0.0.1:PORT/api/v1/query?query=scalar&time=1795683600.000","result_type":"scalar","status":"successful","tallies":{"consecutive_errors":0,"failed":0,"inconclusive":0,"measured":1,"successful":1},"warnings":[]},"facts":{"consecutive_errors":"0","failed":"0","inconclusive":"0","measured":"1","status":"successful","successful":"1"},"observed_at":"2026-11-26T09:00:00Z","producer":"error-rate","summary":"error-rate: 1 of 1 measurements successful, 0 failed, 0 inconclusive; latest 0.004"}"#;
const RUNNING: &str = r#"pending 59s
{"attachments":[{"digest":"sha256:792037f1abdd43c4eed358589e2de8b99e765ddb2ffcc9a9cb1d0b5dc4956a3d","name":"http://127.0.0.1:PORT/api/v1/query_range?query=running&start=1795683600.000&end=1795683660.000&step=60.000","size":138}],"data":{"config":{"consecutive_error_limit":4,"count":3,"failure_condition":"result > 0.05","failure_limit":1,"inconclusive_limit":0,"initial_delay_seconds":0.0,"interval_seconds":60.0,"mode":{"instant":{}},"prometheus":"http://127.0.0.1:PORT/","query":"running","success_condition":"result < 0.01"},"endpoint":"query_range","first_measurement_at":"2026-11-26T09:00:00Z","measurements":[{"at":"2026-11-26T09:00:00Z","decisive":null,"index":1,"phase":"successful","reason":"0.001{pod=\"a\"} meets result < 0.01","values":[{"labels":{"pod":"a"},"value":0.001}]},{"at":"2026-11-26T09:01:00Z","decisive":null,"index":2,"phase":"successful","reason":"0.002{pod=\"a\"} meets result < 0.01","values":[{"labels":{"pod":"a"},"value":0.002}]}],"next_measurement_at":"2026-11-26T09:02:00Z","phase_started_at":"2026-11-26T09:00:00Z","request":"http://127.0.0.1:PORT/api/v1/query_range?query=running&start=1795683600.000&end=1795683660.000&step=60.000","result_type":"matrix","status":"running","tallies":{"consecutive_errors":0,"failed":0,"inconclusive":0,"measured":2,"successful":2},"warnings":[]},"facts":{"consecutive_errors":"0","failed":"0","inconclusive":"0","measured":"2","status":"running","successful":"2"},"observed_at":"2026-11-26T09:01:01Z","producer":"error-rate","summary":"error-rate: 2 of 3 measurements taken (2 successful, 0 failed, 0 inconclusive), next at 2026-11-26T09:02:00Z; latest 0.002{pod=\"a\"}"}"#;
const INITIAL_DELAY: &str = r#"pending 210s
{"data":{"config":{"consecutive_error_limit":4,"count":3,"failure_condition":"result > 0.05","failure_limit":0,"inconclusive_limit":0,"initial_delay_seconds":300.0,"interval_seconds":60.0,"mode":{"instant":{}},"prometheus":"http://127.0.0.1:PORT/","query":"pass_one","success_condition":"result < 0.01"},"first_measurement_at":"2026-11-26T09:05:00Z","measurements":[],"next_measurement_at":"2026-11-26T09:05:00Z","phase_started_at":"2026-11-26T09:00:00Z","status":"running"},"facts":{"consecutive_errors":"0","failed":"0","inconclusive":"0","measured":"0","status":"running","successful":"0"},"observed_at":"2026-11-26T09:01:30Z","producer":"error-rate","summary":"error-rate: initial delay, first of 3 measurements at 2026-11-26T09:05:00Z"}"#;
const RANGED: &str = r#"pass
{"attachments":[{"digest":"sha256:bd2f8a7fdcd336fb1b314180aaa05f9e47f06dd05512244aa59d68f12f2fa961","name":"http://127.0.0.1:PORT/api/v1/query_range?query=ranged&start=1795683580.000&end=1795683620.000&step=10.000","size":270}],"data":{"config":{"consecutive_error_limit":4,"count":2,"failure_condition":"result > 0.05","failure_limit":0,"inconclusive_limit":1,"initial_delay_seconds":0.0,"interval_seconds":20.0,"mode":{"range":{"step_seconds":10.0,"window_seconds":20.0}},"prometheus":"http://127.0.0.1:PORT/","query":"ranged","success_condition":"result < 0.01"},"endpoint":"query_range","first_measurement_at":"2026-11-26T09:00:00Z","measurements":[{"at":"2026-11-26T09:00:00Z","decisive":{"at":"2026-11-26T08:59:50Z","labels":{"pod":"a"},"value":"NaN"},"index":1,"phase":"inconclusive","reason":"NaN{pod=\"a\"} at 2026-11-26T08:59:50Z: no value (NaN, such as 0/0 when there was no traffic)","values":[{"labels":{"pod":"a"},"max":0.002,"min":0.001,"nan_points":1,"points":3},{"labels":{"pod":"b"},"max":-0.5,"min":-0.5,"nan_points":0,"points":1}]},{"at":"2026-11-26T09:00:20Z","decisive":null,"index":2,"phase":"successful","reason":"all 5 values meet result < 0.01","values":[{"labels":{"pod":"a"},"max":0.004,"min":0.002,"nan_points":0,"points":3},{"labels":{"pod":"b"},"max":0.0,"min":-0.5,"nan_points":0,"points":2}]}],"phase_started_at":"2026-11-26T09:00:00Z","request":"http://127.0.0.1:PORT/api/v1/query_range?query=ranged&start=1795683580.000&end=1795683620.000&step=10.000","result_type":"matrix","status":"successful","tallies":{"consecutive_errors":0,"failed":0,"inconclusive":1,"measured":2,"successful":1},"warnings":[]},"facts":{"consecutive_errors":"0","failed":"0","inconclusive":"1","measured":"2","status":"successful","successful":"1"},"observed_at":"2026-11-26T09:00:25Z","producer":"error-rate","summary":"error-rate: 1 of 2 measurements successful, 0 failed, 1 inconclusive; latest 5 values from -0.5 to 0.004"}"#;
const ERROR_LIMIT: &str = r#"fail
{"data":{"config":{"consecutive_error_limit":4,"count":1,"failure_condition":"result > 0.05","failure_limit":0,"inconclusive_limit":0,"initial_delay_seconds":0.0,"interval_seconds":60.0,"mode":{"instant":{}},"prometheus":"http://127.0.0.1:PORT/","query":"down","success_condition":"result < 0.01"},"consecutive_errors":5,"error":"prometheus (http://127.0.0.1:PORT/api/v1/query?query=down&time=1795683600.000) unavailable: HTTP 503: <html>Service Unavailable</html>","status":"error"},"facts":{"consecutive_errors":"5","status":"error"},"observed_at":"2026-11-26T09:00:00Z","producer":"error-rate","summary":"error-rate: 5 measurement errors in a row, more than the limit 4; last: prometheus (http://127.0.0.1:PORT/api/v1/query?query=down&time=1795683600.000) unavailable: HTTP 503: <html>Service Unavailable</html>"}"#;
const DRY_RUN: &str = r#"pass
{"data":{"dry_run":true,"evidence":{"attachments":[{"digest":"sha256:df62661f6ab5c86cc41052d09fe21e617cdf030f6233a8d58495b36833aa5520","name":"http://127.0.0.1:PORT/api/v1/query?query=fail_many&time=1795683600.000","size":216}],"data":{"config":{"consecutive_error_limit":4,"count":1,"failure_condition":"result > 0.05","failure_limit":0,"inconclusive_limit":0,"initial_delay_seconds":0.0,"interval_seconds":60.0,"mode":{"instant":{}},"prometheus":"http://127.0.0.1:PORT/","query":"fail_many","success_condition":"result < 0.01"},"endpoint":"query","first_measurement_at":"2026-11-26T09:00:00Z","measurements":[{"at":"2026-11-26T09:00:00Z","decisive":{"at":"2026-11-26T09:00:00Z","labels":{"pod":"b"},"value":"+Inf"},"index":1,"phase":"failed","reason":"+Inf{pod=\"b\"} meets the failure condition result > 0.05","values":[{"labels":{"pod":"a"},"value":0.001},{"labels":{"pod":"b"},"value":"+Inf"},{"labels":{"pod":"c"},"value":0.07}]}],"phase_started_at":"2026-11-26T09:00:00Z","request":"http://127.0.0.1:PORT/api/v1/query?query=fail_many&time=1795683600.000","result_type":"vector","status":"failed","tallies":{"consecutive_errors":0,"failed":1,"inconclusive":0,"measured":1,"successful":0},"warnings":[]},"facts":{"consecutive_errors":"0","failed":"1","inconclusive":"0","measured":"1","status":"failed","successful":"0"},"observed_at":"2026-11-26T09:00:00Z","producer":"error-rate","summary":"error-rate: measurement 1 of 1 failed: +Inf{pod=\"b\"} meets the failure condition result > 0.05 (1 failed, limit 0)"},"would":"fail"},"facts":{"dry_run_would":"fail"},"observed_at":"2026-11-26T09:00:00Z","producer":"error-rate","summary":"dry run: would fail: error-rate: measurement 1 of 1 failed: +Inf{pod=\"b\"} meets the failure condition result > 0.05 (1 failed, limit 0)"}"#;
