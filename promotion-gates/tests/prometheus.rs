//! The metric and canary gates against a real Prometheus.
//!
//! Each test that needs one starts Prometheus (`PROMOTION_TEST_PROMETHEUS_BIN`, else
//! `prometheus` on `PATH`) on loopback with a generated configuration: a temporary TSDB, a free
//! port, and one job scraping, every second, an exporter the test serves itself with hyper. So
//! every value a gate judges went through a real scrape, a real TSDB and real PromQL. The
//! Prometheus process is killed when the test's handle drops.
//!
//! Without the binary these tests print `SKIPPED: ...` to stderr and return, unless `CI` is
//! `true`, in which case they fail. Tests that need no Prometheus (garbage answers, bad
//! settings) always run.
//!
//! The gates never sleep: they answer `Pending { retry_after }` on the probe's clock, which the
//! tests set to the real time at each evaluation and then sleep for real, because Prometheus
//! is a real server scraping in real time.
//!
//! Run: `cargo test -p promotion-gates --test prometheus`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use promotion_core::testing::GateProbe;
use promotion_core::{
    Actor, Event, EventBody, Gate, GateError, GateName, Outcome, PhaseId, ReleaseState, StageName,
    Verdict,
};
use promotion_gates::canary::{CanaryGate, CanaryMetric, Tolerance};
use promotion_gates::metrics::{
    Condition, MetricConfigError, MetricGate, MetricGateBuilder, QueryMode,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Finding Prometheus, loudly skipping without it
// ---------------------------------------------------------------------------------------------

fn prometheus_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROMOTION_TEST_PROMETHEUS_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "PROMOTION_TEST_PROMETHEUS_BIN={} is not a file",
            p.display()
        );
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
}

/// The Prometheus binary, or `None` after saying loudly that `test` is skipped. Under CI
/// (`CI=true`) a missing binary is a failure.
fn require_prometheus(test: &str) -> Option<PathBuf> {
    if let Some(bin) = prometheus_binary() {
        return Some(bin);
    }
    let message =
        format!("SKIPPED: {test}: prometheus not found (set PROMOTION_TEST_PROMETHEUS_BIN)");
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    assert!(!ci, "{message}, and CI=true requires it");
    // Straight to the stderr handle, past the test harness's output capture.
    let _ = writeln!(std::io::stderr(), "{message}");
    None
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP server: the exporter Prometheus scrapes, and fake Prometheus answers
// ---------------------------------------------------------------------------------------------

struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    delay: Duration,
}

impl Reply {
    fn ok(content_type: &'static str, body: impl Into<String>) -> Self {
        Reply {
            status: 200,
            content_type,
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
}

type Handler = dyn Fn(&str, u64) -> Reply + Send + Sync;

/// A hyper 1 server on 127.0.0.1 answering every request with `handler(path and query, n)`,
/// `n` counting requests from 0.
struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(handler: Arc<Handler>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let reply = handler(&req.uri().to_string(), n);
                    async move {
                        if !reply.delay.is_zero() {
                            tokio::time::sleep(reply.delay).await;
                        }
                        let response = Response::builder()
                            .status(reply.status)
                            .header("content-type", reply.content_type)
                            .body(Full::new(Bytes::from(reply.body)))
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server { addr, hits, task }
}

/// An exporter whose `/metrics` is `render(scrape number)` in the text exposition format.
async fn exporter(render: impl Fn(u64) -> String + Send + Sync + 'static) -> Server {
    serve(Arc::new(move |_: &str, n: u64| {
        Reply::ok("text/plain; version=0.0.4", render(n))
    }))
    .await
}

/// Deterministic noise in [-10, 10] for scrape `n`.
fn noise(n: u64) -> f64 {
    ((n * 7919) % 21) as f64 - 10.0
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus child process
// ---------------------------------------------------------------------------------------------

struct Prometheus {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second and waits until it is ready.
    async fn start(bin: &Path, target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited with {status}: {}", p.log());
            }
            let ready = client
                .get(format!("{}/-/ready", p.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready after 30 s: {}",
                p.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Waits until `query` returns a non-empty result and the exporter was scraped `scrapes`
    /// times.
    async fn wait_for(&self, query: &str, exporter: &Server, scrapes: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            let body: Option<Value> = match client
                .get(format!("{}/api/v1/query", self.url))
                .query(&[("query", query)])
                .send()
                .await
            {
                Ok(r) => r.json().await.ok(),
                Err(_) => None,
            };
            let found = body
                .as_ref()
                .and_then(|b| b["data"]["result"].as_array())
                .is_some_and(|r| !r.is_empty());
            if found && exporter.hits.load(Ordering::SeqCst) >= scrapes {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {query} in prometheus after 30 s: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluating gates in real time
// ---------------------------------------------------------------------------------------------

/// The state after stage `test` started (entry phase) at `at`, then `errors` error rounds of
/// gate `gate`.
fn phase_state(at: DateTime<Utc>, gate: &str, errors: u32) -> ReleaseState {
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

/// Evaluates once, at the real time.
async fn evaluate(gate: &dyn Gate, state: &ReleaseState) -> Result<Verdict, GateError> {
    GateProbe::new()
        .state(state.clone())
        .at(Utc::now())
        .evaluate(gate)
        .await
}

/// Evaluates until the gate decides, sleeping (for real) as long as it asks; returns the
/// evidence of each pending answer on the way, and the verdict.
async fn decide(gate: &dyn Gate, state: &ReleaseState) -> (Vec<promotion_core::Evidence>, Verdict) {
    let mut pending = Vec::new();
    for _ in 0..30 {
        match evaluate(gate, state).await {
            Ok(Verdict::Pending {
                evidence,
                retry_after,
            }) => {
                assert!(retry_after <= Duration::from_secs(10), "{retry_after:?}");
                pending.push(evidence);
                tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
            }
            Ok(v) => return (pending, v),
            Err(e) => panic!("{} could not decide: {}", gate.name(), e.report()),
        }
    }
    panic!("{} did not decide after 30 evaluations", gate.name())
}

// ---------------------------------------------------------------------------------------------
// The service under analysis
// ---------------------------------------------------------------------------------------------

/// What the exporter serves at scrape `n`: error ratios of two instance groups, an idle
/// service (0 errors of 0 requests), latencies and error ratios of a baseline, a healthy
/// canary (1 % slower) and a degraded one (50 % slower), and a latency that spikes every third
/// scrape.
fn service_metrics(n: u64) -> String {
    let baseline = 0.1 + noise(n) / 1000.0;
    let spike = if n % 3 == 0 { 0.9 } else { 0.1 };
    format!(
        "# TYPE svc_error_ratio gauge\n\
         svc_error_ratio{{group=\"healthy\"}} 0.002\n\
         svc_error_ratio{{group=\"breach\"}} 0.07\n\
         # TYPE svc_errors gauge\n\
         svc_errors{{track=\"idle\"}} 0\n\
         # TYPE svc_requests gauge\n\
         svc_requests{{track=\"idle\"}} 0\n\
         # TYPE svc_latency_seconds gauge\n\
         svc_latency_seconds{{track=\"baseline\"}} {baseline}\n\
         svc_latency_seconds{{track=\"canary\"}} {canary}\n\
         svc_latency_seconds{{track=\"degraded\"}} {degraded}\n\
         # TYPE svc_canary_error_ratio gauge\n\
         svc_canary_error_ratio{{track=\"baseline\"}} 0.001\n\
         svc_canary_error_ratio{{track=\"canary\"}} 0.001\n\
         svc_canary_error_ratio{{track=\"degraded\"}} 0.001\n\
         # TYPE svc_spiky_seconds gauge\n\
         svc_spiky_seconds {spike}\n",
        canary = baseline * 1.01,
        degraded = 0.15 + noise(n) / 1000.0,
    )
}

/// Prometheus scraping the service, with its series present.
async fn service(bin: &Path, scrapes: u64) -> (Server, Prometheus) {
    let exporter = exporter(service_metrics).await;
    let prometheus = Prometheus::start(bin, exporter.addr).await;
    prometheus
        .wait_for("svc_error_ratio", &exporter, scrapes)
        .await;
    (exporter, prometheus)
}

fn error_rate(url: &str, query: &str) -> MetricGateBuilder {
    MetricGate::builder(url, query)
        .name("error-rate")
        .success_condition("result < 0.01".parse().unwrap())
        .failure_condition(Condition::gt(0.05))
}

fn rfc3339_ms(t: DateTime<Utc>, plus_ms: i64) -> String {
    let ms = t.timestamp_millis() + plus_ms;
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn unavailable(r: Result<Verdict, GateError>) -> (String, String) {
    match r {
        Err(GateError::Unavailable { service, message }) => (service, message),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Metric gate
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_service_passes_every_measurement_and_a_replica_agrees() {
    let Some(bin) =
        require_prometheus("a_healthy_service_passes_every_measurement_and_a_replica_agrees")
    else {
        return;
    };
    let (_exporter, prom) = service(&bin, 2).await;
    let query = r#"max(svc_error_ratio{group="healthy"})"#;
    let gate = error_rate(&prom.url, query)
        .count(3)
        .interval(Duration::from_secs(1))
        .build()
        .unwrap();
    let start = Utc::now();
    let state = phase_state(start, "error-rate", 0);
    let (pending, verdict) = decide(&gate, &state).await;
    let Verdict::Pass(ev) = verdict else {
        panic!("expected a pass, got {verdict:?}")
    };

    // The first evaluation measured the first instant with /api/v1/query; later ones measure
    // every due instant with one /api/v1/query_range.
    assert!(!pending.is_empty());
    assert_eq!(pending[0].data["endpoint"], "query");
    assert_eq!(pending[0].facts["measured"], "1");
    assert_eq!(pending[0].facts["status"], "running");
    if let Some(second) = pending.get(1) {
        assert_eq!(second.facts["measured"], "2");
        assert_eq!(second.data["endpoint"], "query_range");
    }
    assert_eq!(ev.data["endpoint"], "query_range");
    let request = ev.data["request"].as_str().unwrap();
    assert!(
        request.starts_with(&format!("{}/api/v1/query_range?query=", prom.url)),
        "{request}"
    );
    assert!(request.contains("step=1.000"), "{request}");

    assert_eq!(
        ev.summary,
        "error-rate: 3 of 3 measurements successful, 0 failed, 0 inconclusive; latest 0.002"
    );
    let measurements = ev.data["measurements"].as_array().unwrap();
    assert_eq!(measurements.len(), 3);
    for (k, m) in measurements.iter().enumerate() {
        assert_eq!(m["index"], k + 1);
        assert_eq!(
            m["at"],
            rfc3339_ms(start, 1000 * k as i64),
            "instants are 1 s apart"
        );
        assert_eq!(m["phase"], "successful");
        assert_eq!(m["values"][0]["value"], 0.002);
        assert_eq!(m["reason"], "0.002 meets result < 0.01");
    }
    assert_eq!(ev.data["config"]["prometheus"], format!("{}/", prom.url));
    assert_eq!(ev.data["config"]["query"], query);
    assert_eq!(ev.data["status"], "successful");
    assert_eq!(ev.facts["status"], "successful");
    assert_eq!(ev.facts["measured"], "3");
    assert_eq!(ev.facts["successful"], "3");
    assert_eq!(ev.facts["failed"], "0");
    assert_eq!(ev.attachments.len(), 1);
    assert_eq!(ev.attachments[0].name, request);
    assert!(ev.attachments[0].size > 0);

    // A replica that takes over after an error round (the engine's record then carries no
    // evidence, so no tallies) measures the same instants and agrees.
    let replica = error_rate(&prom.url, query)
        .count(3)
        .interval(Duration::from_secs(1))
        .build()
        .unwrap();
    let after_error = phase_state(start, "error-rate", 1);
    let Ok(Verdict::Pass(again)) = evaluate(&replica, &after_error).await else {
        panic!("the replica should pass too")
    };
    assert_eq!(again.data["measurements"], ev.data["measurements"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_fails_and_no_data_or_nan_is_inconclusive() {
    let Some(bin) = require_prometheus("a_breach_fails_and_no_data_or_nan_is_inconclusive") else {
        return;
    };
    let (_exporter, prom) = service(&bin, 2).await;
    let url = prom.url.as_str();
    let breach = error_rate(url, r#"max(svc_error_ratio{group="breach"})"#)
        .count(3)
        .interval(Duration::from_secs(1))
        .failure_limit(1)
        .build()
        .unwrap();
    let missing = error_rate(url, r#"max(svc_error_ratio{group="nonexistent"})"#)
        .name("missing")
        .count(3)
        .interval(Duration::from_secs(1))
        .build()
        .unwrap();
    let idle = error_rate(
        url,
        r#"sum(svc_errors{track="idle"}) / sum(svc_requests{track="idle"})"#,
    )
    .name("idle")
    .build()
    .unwrap();
    let scalar = error_rate(url, r#"scalar(max(svc_error_ratio{group="healthy"}))"#)
        .name("one-shot")
        .build()
        .unwrap();
    let state = phase_state(Utc::now(), "error-rate", 0);
    let (
        (breach_pending, breach_verdict),
        (missing_pending, missing_verdict),
        (_, idle_verdict),
        (_, scalar_verdict),
    ) = tokio::join!(
        decide(&breach, &state),
        decide(&missing, &state),
        decide(&idle, &state),
        decide(&scalar, &state),
    );

    // The first failure is within the limit of one; the second fails the gate at once.
    assert_eq!(breach_pending.len(), 1);
    assert_eq!(breach_pending[0].facts["failed"], "1");
    let Verdict::Fail(ev) = breach_verdict else {
        panic!("expected a fail, got {breach_verdict:?}")
    };
    assert_eq!(
        ev.summary,
        "error-rate: measurement 2 of 3 failed: 0.07 meets the failure condition result > 0.05 \
         (2 failed, limit 1)"
    );
    assert_eq!(ev.facts["status"], "failed");
    assert_eq!(ev.facts["measured"], "2");
    assert_eq!(ev.data["measurements"][1]["decisive"]["value"], 0.07);

    // No series: no data, inconclusive at the first measurement, never a pass.
    assert!(missing_pending.is_empty());
    let Verdict::Inconclusive(ev) = missing_verdict else {
        panic!("expected inconclusive, got {missing_verdict:?}")
    };
    assert_eq!(
        ev.summary,
        "missing: measurement 1 of 3 inconclusive: no data: the query returned nothing \
         (1 inconclusive, limit 0)"
    );
    assert_eq!(ev.data["measurements"][0]["values"], serde_json::json!([]));
    assert_eq!(ev.data["result_type"], "vector");

    // 0 errors of 0 requests is NaN: no value, inconclusive.
    let Verdict::Inconclusive(ev) = idle_verdict else {
        panic!("expected inconclusive, got {idle_verdict:?}")
    };
    assert_eq!(
        ev.summary,
        "idle: measurement 1 of 1 inconclusive: NaN: no value (NaN, such as 0/0 when there was \
         no traffic) (1 inconclusive, limit 0)"
    );
    assert_eq!(ev.data["measurements"][0]["values"][0]["value"], "NaN");

    // A scalar is a value like any other.
    let Verdict::Pass(ev) = scalar_verdict else {
        panic!("expected a pass, got {scalar_verdict:?}")
    };
    assert_eq!(ev.data["result_type"], "scalar");
    assert_eq!(ev.data["endpoint"], "query");
    assert_eq!(ev.data["measurements"][0]["values"][0]["value"], 0.002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_measurements_judge_every_point_of_their_window() {
    let Some(bin) = require_prometheus("range_measurements_judge_every_point_of_their_window")
    else {
        return;
    };
    // The window reaches 4 s back: let Prometheus collect more than that first.
    let (_exporter, prom) = service(&bin, 6).await;
    let url = prom.url.as_str();
    let window = QueryMode::Range {
        window: Duration::from_secs(4),
        step: Duration::from_secs(1),
    };
    let strict = MetricGate::builder(url, "max(svc_spiky_seconds)")
        .name("spiky-strict")
        .success_condition(Condition::lt(0.5))
        .mode(window)
        .count(2)
        .interval(Duration::from_secs(1))
        .build()
        .unwrap();
    let lenient = MetricGate::builder(url, "max(svc_spiky_seconds)")
        .name("spiky-lenient")
        .success_condition(Condition::lt(1.0))
        .mode(window)
        .count(2)
        .interval(Duration::from_secs(1))
        .build()
        .unwrap();
    let state = phase_state(Utc::now(), "x", 0);
    let ((_, strict_verdict), (_, lenient_verdict)) =
        tokio::join!(decide(&strict, &state), decide(&lenient, &state));

    // An instant value would often be 0.1; the window always holds a spike.
    let Verdict::Fail(ev) = strict_verdict else {
        panic!("expected a fail, got {strict_verdict:?}")
    };
    assert_eq!(ev.data["endpoint"], "query_range");
    assert_eq!(ev.facts["measured"], "1");
    let m = &ev.data["measurements"][0];
    assert_eq!(m["decisive"]["value"], 0.9);
    assert_eq!(m["values"][0]["points"], 5);
    assert_eq!(m["values"][0]["max"], 0.9);
    assert!(
        ev.summary.contains("0.9 at ")
            && ev
                .summary
                .contains("does not meet the success condition result < 0.5"),
        "{}",
        ev.summary
    );

    let Verdict::Pass(ev) = lenient_verdict else {
        panic!("expected a pass, got {lenient_verdict:?}")
    };
    for m in ev.data["measurements"].as_array().unwrap() {
        assert_eq!(m["values"][0]["points"], 5, "{m}");
        assert_eq!(m["values"][0]["min"], 0.1, "{m}");
        assert_eq!(m["values"][0]["max"], 0.9, "{m}");
        assert_eq!(m["reason"], "all 5 values meet result < 1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_promql_is_a_typed_error_naming_the_url_and_the_problem() {
    let Some(bin) =
        require_prometheus("bad_promql_is_a_typed_error_naming_the_url_and_the_problem")
    else {
        return;
    };
    let (_exporter, prom) = service(&bin, 1).await;
    let url = prom.url.as_str();
    let state = phase_state(Utc::now() - chrono::TimeDelta::milliseconds(1500), "x", 0);

    let syntax = error_rate(url, "rate(svc_error_ratio[5m]").build().unwrap();
    match evaluate(&syntax, &state).await {
        Err(GateError::Misconfigured(m)) => {
            assert!(
                m.starts_with(&format!("{url}/api/v1/query?query=rate%28svc_error_ratio")),
                "{m}"
            );
            assert!(m.contains("answered HTTP 400 (bad_data)"), "{m}");
            assert!(m.contains("parse error"), "{m}");
        }
        other => panic!("expected misconfigured, got {other:?}"),
    }

    // A range vector has no instant value: refused by the gate for an instant query…
    let range_vector = error_rate(url, "svc_error_ratio[1m]").build().unwrap();
    match evaluate(&range_vector, &state).await {
        Err(GateError::Misconfigured(m)) => {
            assert!(m.contains("the query returns a range vector"), "{m}");
            assert!(m.contains("svc_error_ratio[1m]"), "{m}");
        }
        other => panic!("expected misconfigured, got {other:?}"),
    }
    // …and by Prometheus for a range query (two instants are due 1.5 s after the start).
    let range_vector = error_rate(url, "svc_error_ratio[1m]")
        .count(3)
        .interval(Duration::from_secs(1))
        .build()
        .unwrap();
    match evaluate(&range_vector, &state).await {
        Err(GateError::Misconfigured(m)) => {
            assert!(
                m.contains("/api/v1/query_range?query=svc_error_ratio"),
                "{m}"
            );
            assert!(m.contains("HTTP 400 (bad_data)"), "{m}");
            assert!(m.contains("range vector"), "{m}");
        }
        other => panic!("expected misconfigured, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_down_is_a_typed_error_and_past_the_error_limit_a_fail() {
    let Some(bin) =
        require_prometheus("prometheus_down_is_a_typed_error_and_past_the_error_limit_a_fail")
    else {
        return;
    };
    let (_exporter, prom) = service(&bin, 1).await;
    let url = prom.url.clone();
    let gate = error_rate(&url, r#"max(svc_error_ratio{group="healthy"})"#)
        .count(3)
        .interval(Duration::from_secs(1))
        .consecutive_error_limit(4)
        .build()
        .unwrap();
    let state = phase_state(Utc::now(), "error-rate", 0);
    assert!(matches!(
        evaluate(&gate, &state).await,
        Ok(Verdict::Pending { .. })
    ));

    drop(prom); // kills Prometheus

    let (service, message) = unavailable(evaluate(&gate, &state).await);
    assert!(
        service.starts_with(&format!("prometheus ({url}/api/v1/query")),
        "{service}"
    );
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
    // Four errors in a row are within the limit of four: still an error for the engine.
    let three_before = phase_state(Utc::now(), "error-rate", 3);
    unavailable(evaluate(&gate, &three_before).await);
    // A fifth is past it: a fail verdict, with the error as evidence.
    let four_before = phase_state(Utc::now(), "error-rate", 4);
    let Ok(Verdict::Fail(ev)) = evaluate(&gate, &four_before).await else {
        panic!("expected a fail past the consecutive-error limit")
    };
    assert!(
        ev.summary.starts_with(&format!(
            "error-rate: 5 measurement errors in a row, more than the limit 4; last: prometheus ({url}/api/v1/query"
        )),
        "{}",
        ev.summary
    );
    assert_eq!(ev.facts["consecutive_errors"], "5");
    assert_eq!(ev.facts["status"], "error");
    assert_eq!(ev.data["consecutive_errors"], 5);
}

// ---------------------------------------------------------------------------------------------
// Canary gate
// ---------------------------------------------------------------------------------------------

fn canary_gate(url: &str, name: &str, track: &str) -> CanaryGate {
    let latency = |t: &str| format!(r#"max(svc_latency_seconds{{track="{t}"}})"#);
    let errors = |t: &str| format!(r#"max(svc_canary_error_ratio{{track="{t}"}})"#);
    CanaryGate::builder(url)
        .name(name)
        .metric(
            CanaryMetric::new("latency", latency(track), latency("baseline"))
                .tolerance(Tolerance::Relative(0.05))
                .weight(2.0),
        )
        .metric(
            CanaryMetric::new("errors", errors(track), errors("baseline"))
                .tolerance(Tolerance::Absolute(0.001)),
        )
        .lookback(Duration::from_secs(6))
        .step(Duration::from_secs(1))
        .min_samples(5)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_passes_a_degraded_one_fails_and_a_missing_one_is_inconclusive() {
    let Some(bin) = require_prometheus(
        "a_healthy_canary_passes_a_degraded_one_fails_and_a_missing_one_is_inconclusive",
    ) else {
        return;
    };
    let (_exporter, prom) = service(&bin, 1).await;
    let url = prom.url.as_str();
    let healthy = canary_gate(url, "canary-healthy", "canary");
    let degraded = canary_gate(url, "canary-degraded", "degraded");
    let missing = canary_gate(url, "canary-missing", "missing");
    let now = Utc::now();
    let state = phase_state(now, "x", 0);
    let long_ago = phase_state(now - chrono::TimeDelta::seconds(60), "x", 0);
    let (
        (healthy_pending, healthy_verdict),
        (_, degraded_verdict),
        (missing_pending, missing_verdict),
    ) = tokio::join!(
        decide(&healthy, &state),
        decide(&degraded, &state),
        decide(&missing, &long_ago),
    );

    // The gate waited for a window of data from after the phase started.
    assert_eq!(healthy_pending.len(), 1);
    assert!(healthy_pending[0].summary.contains("collecting samples"));

    // 1 % slower, within the 5 % tolerance; identical error ratios.
    let Verdict::Pass(ev) = healthy_verdict else {
        panic!("expected a pass, got {healthy_verdict:?}")
    };
    assert_eq!(ev.facts["score"], "100.0");
    assert_eq!(ev.facts["result"], "pass");
    let latency = &ev.data["metrics"][0];
    assert_eq!(
        latency["canary"]["samples"], 7,
        "6 s at 1 s, both ends: {latency}"
    );
    assert_eq!(latency["baseline"]["samples"], 7);
    assert_eq!(latency["classification"], "pass");
    let p = latency["mann_whitney"]["p_value"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    let errors = &ev.data["metrics"][1];
    assert_eq!(errors["mann_whitney"]["p_value"], 1.0, "identical samples");
    // Each sample set's digest is the attached raw response's.
    for (i, metric) in ["latency", "errors"].iter().enumerate() {
        for side in ["canary", "baseline"] {
            let attachment = ev
                .attachments
                .iter()
                .find(|a| a.name == format!("{metric} {side}"))
                .unwrap();
            assert_eq!(
                ev.data["metrics"][i][side]["digest"],
                attachment.digest.to_string()
            );
        }
    }

    // 50 % slower: significantly higher beyond the tolerance; weight 2 of 3 fails.
    let Verdict::Fail(ev) = degraded_verdict else {
        panic!("expected a fail, got {degraded_verdict:?}")
    };
    assert_eq!(ev.facts["score"], "33.3");
    assert_eq!(ev.facts["result"], "fail");
    let latency = &ev.data["metrics"][0];
    assert_eq!(latency["classification"], "high");
    assert_eq!(latency["counts_against"], true);
    // Every canary sample exceeds every baseline sample: U = 7 × 7.
    assert_eq!(latency["mann_whitney"]["u"], 49.0);
    assert!(latency["mann_whitney"]["p_value"].as_f64().unwrap() < 0.01);
    assert!(latency["canary"]["median"].as_f64().unwrap() > 0.13);
    assert!(latency["baseline"]["median"].as_f64().unwrap() < 0.12);
    assert!(
        ev.summary.starts_with(
            "canary-degraded: canary fails: score 33.3 below the marginal threshold 75: latency canary higher"
        ),
        "{}",
        ev.summary
    );

    // No canary series at all: no metric has data.
    assert!(missing_pending.is_empty(), "the phase started long ago");
    let Verdict::Inconclusive(ev) = missing_verdict else {
        panic!("expected inconclusive, got {missing_verdict:?}")
    };
    assert_eq!(ev.facts["result"], "nodata");
    assert_eq!(ev.facts["score"], "none");
    assert_eq!(ev.data["metrics"][0]["canary"]["samples"], 0);
    assert!(
        ev.summary
            .contains("latency too few samples: canary 0, baseline"),
        "{}",
        ev.summary
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input without Prometheus: garbage answers, bad settings
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_answers_are_typed_errors_naming_the_url() {
    let fake = serve(Arc::new(|target: &str, _| {
        let reply = |status, content_type, body: &str| Reply {
            status,
            content_type,
            body: body.to_owned(),
            delay: Duration::ZERO,
        };
        if target.contains("query=garbage") {
            reply(200, "text/plain", "this is not JSON")
        } else if target.contains("query=badnumber") {
            reply(
                200,
                "application/json",
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1795683600,"twelve"]}]}}"#,
            )
        } else if target.contains("query=down") {
            reply(503, "text/html", "<html>Service Unavailable</html>")
        } else if target.contains("query=slow") {
            Reply {
                delay: Duration::from_secs(3),
                ..reply(200, "application/json", "{}")
            }
        } else {
            reply(404, "text/plain", "404 page not found")
        }
    }))
    .await;
    let url = format!("http://{}", fake.addr);
    let state = phase_state(Utc::now(), "x", 0);
    let one_shot = |query: &str| error_rate(&url, query).build().unwrap();

    match evaluate(&one_shot("garbage"), &state).await {
        Err(GateError::InvalidInput { what, message }) => {
            assert!(
                what.starts_with(&format!(
                    "prometheus response to {url}/api/v1/query?query=garbage&time="
                )),
                "{what}"
            );
            assert!(message.starts_with("not JSON: "), "{message}");
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
    match evaluate(&one_shot("badnumber"), &state).await {
        Err(GateError::InvalidInput { message, .. }) => {
            assert_eq!(
                message,
                "`data.result[0].value[1]` `twelve` is not a number"
            );
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
    let (service, message) = unavailable(evaluate(&one_shot("down"), &state).await);
    assert!(service.contains("/api/v1/query?query=down"), "{service}");
    assert_eq!(message, "HTTP 503: <html>Service Unavailable</html>");

    let slow = error_rate(&url, "slow")
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let (_, message) = unavailable(evaluate(&slow, &state).await);
    assert_eq!(message, "sending the request: no answer within 300ms");
    assert!(started.elapsed() < Duration::from_secs(2));

    // A wrong path prefix: nothing there is the Prometheus API.
    let wrong = error_rate(&format!("{url}/wrong-prefix"), "up")
        .build()
        .unwrap();
    match evaluate(&wrong, &state).await {
        Err(GateError::Misconfigured(m)) => {
            assert!(
                m.contains(&format!("{url}/wrong-prefix/api/v1/query?query=up")),
                "{m}"
            );
            assert!(m.ends_with("answered HTTP 404: 404 page not found"), "{m}");
        }
        other => panic!("expected misconfigured, got {other:?}"),
    }

    // The canary gate reports the same way.
    let canary = CanaryGate::builder(&url)
        .metric(CanaryMetric::new("latency", "garbage", "garbage"))
        .build()
        .unwrap();
    let r = GateProbe::new().at(Utc::now()).evaluate(&canary).await;
    assert!(
        matches!(&r, Err(GateError::InvalidInput { what, .. }) if what.contains("/api/v1/query_range?query=garbage")),
        "{r:?}"
    );
    assert!(fake.hits.load(Ordering::SeqCst) >= 7);
}

#[test]
fn invalid_thresholds_are_refused_at_construction_naming_the_field() {
    let url = "http://127.0.0.1:9090";
    let e = MetricGate::builder(url, "up")
        .success_condition(Condition::lt(f64::NAN))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            &e,
            MetricConfigError::InvalidThreshold {
                field: "success_condition",
                ..
            }
        ),
        "{e}"
    );
    let e = MetricGate::builder(url, "up")
        .failure_condition(Condition::ge(f64::NEG_INFINITY))
        .build()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "metric gate `metric`: failure_condition: the threshold -Inf is not a finite number"
    );
    let e = "result < 1%".parse::<Condition>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid condition `result < 1%`: `1%` is not a number (expected such as `result < 0.01`)"
    );
    let e = error_rate(url, "up")
        .count(2)
        .failure_limit(2)
        .build()
        .unwrap_err();
    assert!(matches!(
        e,
        MetricConfigError::LimitNotBelowCount {
            field: "failure_limit",
            ..
        }
    ));
    let e = MetricGate::builder(url, "up").build().unwrap_err();
    assert!(matches!(e, MetricConfigError::NoCondition { .. }));

    let canary = |m: CanaryMetric| {
        CanaryGate::builder(url)
            .metric(m)
            .build()
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        canary(CanaryMetric::new("latency", "a", "b").tolerance(Tolerance::Relative(f64::NAN))),
        "canary gate `canary-analysis`: metric `latency`: tolerance NaN must be a finite number ≥ 0"
    );
    assert_eq!(
        canary(CanaryMetric::new("latency", "a", "b").weight(-1.0)),
        "canary gate `canary-analysis`: metric `latency`: weight -1 must be a positive finite number"
    );
    let e = CanaryGate::builder(url)
        .metric(CanaryMetric::new("latency", "a", "b"))
        .score_thresholds(50.0, 90.0)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("pass 50 and marginal 90"), "{e}");
}
