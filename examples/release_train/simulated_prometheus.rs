//! The release train's simulated metric source: a real HTTP server on 127.0.0.1 that speaks the
//! part of the Prometheus HTTP API the metric and canary gates use, for a simulated service.
//!
//! - `GET` or `POST` (form) `<prefix>/api/v1/query` (`query`, `time`) and
//!   `<prefix>/api/v1/query_range` (`query`, `start`, `end`, `step`), answered with the JSON
//!   Prometheus writes (`{"status":"success","data":{"resultType":"vector",...}}`), and with its
//!   `bad_data` errors (HTTP 400) for a missing or malformed parameter, a range that ends before
//!   it starts, or more than 11,000 points per series.
//! - It answers at **any** evaluation time, past or future, because the example runs on a
//!   virtual clock: every value is a deterministic function of the series and the instant (a
//!   hash of the timestamp, no random numbers), so the same question always gets the same
//!   answer, as it would from a Prometheus that had recorded the simulated service.
//! - It knows only the release train's queries ([`query`]; it evaluates no PromQL): anything
//!   else is a `bad_data` error naming the queries it knows.
//!
//! The service is healthy (5xx ratio 0.02–0.03 %, p99 latency 41–45 ms), canary and baseline
//! drawn from the same distribution. When told to degrade, the canary's series degrade (5xx
//! ratio 3.5–4.1 %, p99 90–120 ms) at every instant at which the canary took 10 % of the traffic
//! or more — read from the deployer's recorded calls, so the failure is caused by the rollout
//! and stops with the rollback.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use promotion::testing::{DeployCall, RecordingDeployer};
use promotion::Clock;

/// The path prefix the simulated Prometheus answers under, so that evidence names it.
pub(crate) const PREFIX: &str = "/simulated-prometheus";

/// Prometheus refuses range queries with more points per series than this.
const MAX_POINTS: i64 = 11_000;

/// The largest request body read (a `POST` form).
const MAX_BODY: usize = 64 * 1024;

/// The canary weight, in percent, from which the degraded service misbehaves.
pub(crate) const DEGRADES_AT_WEIGHT: u8 = 10;

/// What a series measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// The ratio of 5xx responses.
    ErrorRatio,
    /// The 99th percentile of the request latency, in seconds.
    P99Latency,
}

/// Which deployment a series is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Track {
    /// The new release, taking the rollout's share of the traffic.
    Canary,
    /// The running release.
    Baseline,
}

impl Track {
    fn label(self) -> &'static str {
        match self {
            Track::Canary => "canary",
            Track::Baseline => "baseline",
        }
    }
}

/// The PromQL a real Prometheus would be asked for `signal` on `track`.
pub(crate) fn query(signal: Signal, track: Track) -> String {
    let track = track.label();
    match signal {
        Signal::ErrorRatio => format!(
            "sum(rate(http_requests_total{{service=\"shop-api\",track=\"{track}\",code=~\"5..\"}}[1m])) \
             / sum(rate(http_requests_total{{service=\"shop-api\",track=\"{track}\"}}[1m]))"
        ),
        Signal::P99Latency => format!(
            "histogram_quantile(0.99, sum by (le) \
             (rate(http_request_duration_seconds_bucket{{service=\"shop-api\",track=\"{track}\"}}[1m])))"
        ),
    }
}

/// The simulated service behind the server.
struct Service {
    queries: BTreeMap<String, (Signal, Track)>,
    deployer: RecordingDeployer,
    clock: Arc<dyn Clock>,
    degrade: bool,
}

impl Service {
    /// The canary's traffic weight in effect at `at_ms`, from the deployer's recorded calls.
    fn canary_weight_at(&self, at_ms: i64) -> u8 {
        let in_effect =
            |at: Option<DateTime<Utc>>| at.is_none_or(|t| t.timestamp_millis() <= at_ms);
        let mut weight = 0;
        for call in self.deployer.calls() {
            match call {
                DeployCall::Deploy {
                    stage,
                    weight: w,
                    at,
                } if stage == "canary" && in_effect(at) => weight = w,
                DeployCall::RollBack { stage, at } if stage == "canary" && in_effect(at) => {
                    weight = 0
                }
                _ => {}
            }
        }
        weight
    }

    /// The value of a series at `at_ms`.
    fn value(&self, signal: Signal, track: Track, at_ms: i64) -> f64 {
        let degraded = self.degrade
            && track == Track::Canary
            && self.canary_weight_at(at_ms) >= DEGRADES_AT_WEIGHT;
        // Canary and baseline are independent draws from the same distribution.
        let salt = match (signal, track) {
            (Signal::ErrorRatio, Track::Canary) => 0x9e37_79b9_7f4a_7c15,
            (Signal::ErrorRatio, Track::Baseline) => 0xbf58_476d_1ce4_e5b9,
            (Signal::P99Latency, Track::Canary) => 0x94d0_49bb_1331_11eb,
            (Signal::P99Latency, Track::Baseline) => 0x2545_f491_4f6c_dd1d,
        };
        let u = unit(at_ms as u64 ^ salt);
        match (signal, degraded) {
            // 0.02–0.03 % of responses are 5xx; degraded, 3.5–4.1 %.
            (Signal::ErrorRatio, false) => round(0.0002 + 0.0001 * u, 6),
            (Signal::ErrorRatio, true) => round(0.035 + 0.006 * u, 5),
            // p99 41–45 ms; degraded, 90–120 ms.
            (Signal::P99Latency, false) => round(0.041 + 0.004 * u, 4),
            (Signal::P99Latency, true) => round(0.090 + 0.030 * u, 4),
        }
    }

    fn answer(&self, path: &str, params: &BTreeMap<String, String>) -> Reply {
        self.try_answer(path, params).unwrap_or_else(|error| error)
    }

    /// The answer, or the error reply.
    fn try_answer(&self, path: &str, params: &BTreeMap<String, String>) -> Result<Reply, Reply> {
        let range = match path.strip_prefix(PREFIX) {
            Some("/api/v1/query") => false,
            Some("/api/v1/query_range") => true,
            _ => return Err(Reply::not_found()),
        };
        let q = params
            .get("query")
            .map(|q| q.trim())
            .filter(|q| !q.is_empty())
            .ok_or_else(|| {
                Reply::bad_data("invalid parameter \"query\": no expression found in input")
            })?;
        let &(signal, track) = self.queries.get(q).ok_or_else(|| {
            let known: Vec<String> = self.queries.keys().map(|k| format!("`{k}`")).collect();
            Reply::bad_data(&format!(
                "invalid parameter \"query\": the simulated Prometheus evaluates no PromQL; it \
                 answers only the release train's queries: {}",
                known.join(", ")
            ))
        })?;
        if !range {
            let at = time_param(params, "time")?.unwrap_or(self.clock.now().timestamp_millis());
            let v = self.value(signal, track, at);
            return Ok(Reply::json(format!(
                concat!(
                    r#"{{"status":"success","data":{{"resultType":"vector","#,
                    r#""result":[{{"metric":{{}},"value":[{},"{}"]}}]}}}}"#
                ),
                prom_time(at),
                prom_value(v)
            )));
        }
        let start = time_param(params, "start")?.ok_or_else(|| missing_time("start"))?;
        let end = time_param(params, "end")?.ok_or_else(|| missing_time("end"))?;
        if end < start {
            return Err(Reply::bad_data(
                "end timestamp must not be before start time",
            ));
        }
        let raw_step = params.get("step").map(String::as_str).unwrap_or("");
        let step = parse_step(raw_step).ok_or_else(|| {
            Reply::bad_data(&format!(
                "invalid parameter \"step\": cannot parse {raw_step:?} to a valid duration"
            ))
        })?;
        if step <= 0 {
            return Err(Reply::bad_data(
                "zero or negative query resolution step widths are not accepted. Try a positive \
                 integer",
            ));
        }
        if (end - start) / step + 1 > MAX_POINTS {
            return Err(Reply::bad_data(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the \
                 query resolution (?step=XX)",
            ));
        }
        let mut points = Vec::new();
        let mut t = start;
        while t <= end {
            let v = self.value(signal, track, t);
            points.push(format!("[{},\"{}\"]", prom_time(t), prom_value(v)));
            t += step;
        }
        Ok(Reply::json(format!(
            concat!(
                r#"{{"status":"success","data":{{"resultType":"matrix","#,
                r#""result":[{{"metric":{{}},"values":[{}]}}]}}}}"#
            ),
            points.join(",")
        )))
    }
}

/// A time parameter, if given; a malformed one is Prometheus' `bad_data` error.
fn time_param(params: &BTreeMap<String, String>, name: &str) -> Result<Option<i64>, Reply> {
    let Some(raw) = params.get(name) else {
        return Ok(None);
    };
    parse_time(raw).map(Some).ok_or_else(|| {
        Reply::bad_data(&format!(
            "invalid parameter {name:?}: cannot parse {raw:?} to a valid timestamp"
        ))
    })
}

fn missing_time(name: &str) -> Reply {
    Reply::bad_data(&format!(
        "invalid parameter {name:?}: cannot parse \"\" to a valid timestamp"
    ))
}

/// A uniform number in [0, 1) from `seed` (SplitMix64's finaliser).
fn unit(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1_u64 << 53) as f64
}

/// `v` rounded to `decimals` decimal places (the nearest double, so it prints short).
fn round(v: f64, decimals: i32) -> f64 {
    let scale = 10_f64.powi(decimals);
    (v * scale).round() / scale
}

/// A timestamp as Prometheus writes it: seconds, with up to three decimals.
fn prom_time(ms: i64) -> String {
    let (secs, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 {
        secs.to_string()
    } else {
        format!("{secs}.{frac:03}").trim_end_matches('0').to_owned()
    }
}

/// A value as Prometheus writes it (Go's `FormatFloat(v, 'f', -1, 64)`).
fn prom_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        v.to_string()
    }
}

/// A time parameter: Unix seconds (with decimals) or RFC 3339, as Prometheus accepts.
fn parse_time(raw: &str) -> Option<i64> {
    if let Ok(secs) = raw.parse::<f64>() {
        let ms = (secs * 1000.0).round();
        return (ms.is_finite() && ms.abs() < 8.0e15).then_some(ms as i64);
    }
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

/// A step: seconds (with decimals) or a Prometheus duration such as `15s` or `1m30s`.
fn parse_step(raw: &str) -> Option<i64> {
    if let Ok(secs) = raw.parse::<f64>() {
        let ms = (secs * 1000.0).round();
        return ms.is_finite().then_some(ms as i64);
    }
    let mut total: i64 = 0;
    let mut rest = raw;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let (number, tail) = rest.split_at(digits);
        let n: i64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let ms = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(ms)?)?;
        rest = tail;
    }
    Some(total)
}

/// An HTTP answer.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: String,
}

impl Reply {
    fn json(body: String) -> Self {
        Reply {
            status: StatusCode::OK,
            content_type: "application/json",
            body,
        }
    }
    fn bad_data(message: &str) -> Self {
        let message = serde_json::Value::from(message).to_string();
        Reply {
            status: StatusCode::BAD_REQUEST,
            content_type: "application/json",
            body: format!(r#"{{"status":"error","errorType":"bad_data","error":{message}}}"#),
        }
    }
    fn not_found() -> Self {
        Reply {
            status: StatusCode::NOT_FOUND,
            content_type: "text/plain; charset=utf-8",
            body: "404 page not found\n".to_owned(),
        }
    }
    fn method_not_allowed() -> Self {
        Reply {
            status: StatusCode::METHOD_NOT_ALLOWED,
            content_type: "text/plain; charset=utf-8",
            body: "Method Not Allowed\n".to_owned(),
        }
    }
    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(self.content_type),
        );
        response
    }
}

fn form(raw: &[u8], into: &mut BTreeMap<String, String>) {
    for (k, v) in url::form_urlencoded::parse(raw) {
        into.insert(k.into_owned(), v.into_owned());
    }
}

async fn handle(service: Arc<Service>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let mut params = BTreeMap::new();
    if let Some(q) = req.uri().query() {
        form(q.as_bytes(), &mut params);
    }
    match *req.method() {
        Method::GET => {}
        Method::POST => match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(body) => form(&body.to_bytes(), &mut params),
            Err(e) => {
                return Reply::bad_data(&format!("cannot read the form: {e}")).into_response()
            }
        },
        _ => return Reply::method_not_allowed().into_response(),
    }
    service.answer(&path, &params).into_response()
}

/// The running server; it stops when dropped.
pub(crate) struct SimulatedPrometheus {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SimulatedPrometheus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimulatedPrometheus {
    /// Starts the server on a free port of 127.0.0.1. With `degrade`, the canary misbehaves
    /// whenever `deployer` has given it [`DEGRADES_AT_WEIGHT`] percent of the traffic or more.
    /// `clock` is the time of a query that names none.
    pub(crate) async fn start(
        deployer: RecordingDeployer,
        clock: Arc<dyn Clock>,
        degrade: bool,
    ) -> std::io::Result<Self> {
        let mut queries = BTreeMap::new();
        for signal in [Signal::ErrorRatio, Signal::P99Latency] {
            for track in [Track::Canary, Track::Baseline] {
                queries.insert(query(signal, track), (signal, track));
            }
        }
        let service = Arc::new(Service {
            queries,
            deployer,
            clock,
            degrade,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}{PREFIX}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of file descriptors or the like: let the runtime breathe, then retry.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let serve = service_fn(move |req| {
                        let service = service.clone();
                        async move { Ok::<_, Infallible>(handle(service, req).await) }
                    });
                    // A client that hangs up mid-request is no concern of the simulation.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), serve)
                        .await;
                });
            }
        });
        Ok(SimulatedPrometheus { url, task })
    }

    /// The base URL, `http://127.0.0.1:<port>/simulated-prometheus`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}
