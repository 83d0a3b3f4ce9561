//! The Prometheus HTTP API client the metric and canary gates share: instant and range
//! queries (`/api/v1/query`, `/api/v1/query_range`), the parsing of their JSON answers into
//! typed results, and typed errors that name the request URL.
//!
//! The client sends times with millisecond precision (Prometheus' own), reads at most
//! [`MAX_RESPONSE_BYTES`] of an answer, and maps every failure to a [`PrometheusError`] whose
//! conversion into a [`GateError`] says whether it is an outage, a misconfiguration or a
//! malformed answer.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use promotion_core::{report_chain, GateError};
use serde_json::Value;
use url::Url;

use crate::input::invalid_input;

/// The largest response body read from Prometheus, in bytes (16 MiB).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Prometheus refuses range queries with more points per series than this.
pub const MAX_POINTS_PER_SERIES: u64 = 11_000;

/// How long one request to Prometheus may take unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The shortest measurement interval and range step accepted.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------
// The Prometheus HTTP API
// ---------------------------------------------------------------------------------------------

/// A Prometheus server set up wrongly; returned by [`Prometheus::new`] and by the gates'
/// builders.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrometheusConfigError {
    /// The URL is not an `http` or `https` URL a query path can be appended to.
    #[error("prometheus_url `{url}`: {problem}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A request timeout of zero would fail every query.
    #[error("timeout: a request timeout of zero would fail every query")]
    ZeroTimeout,
    /// The HTTP client could not be set up (no TLS backend).
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// A query to Prometheus that did not produce a result. Every variant names the request URL.
///
/// As a [`GateError`]: no answer, HTTP 429 and 5xx are [`GateError::Unavailable`]; other error
/// statuses (400 for a PromQL syntax error, 422 for a query that cannot be executed, 404 for a
/// wrong base URL, 401/403) are [`GateError::Misconfigured`]; a malformed answer is
/// [`GateError::InvalidInput`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrometheusError {
    /// No answer: connection refused, name not resolved, timed out, cut off mid-response.
    #[error("no answer from {url}: {message}")]
    Unreachable {
        /// The request URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// Prometheus, or something in front of it, answered with an error status.
    #[error("{url} answered HTTP {status}{}: {message}", kind_suffix(.error_type.as_deref()))]
    Status {
        /// The request URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Prometheus' `errorType` (`bad_data`, `execution`, `timeout`), when it said.
        error_type: Option<String>,
        /// Prometheus' `error`, or the start of the body when it is not the API's JSON.
        message: String,
    },
    /// The answer is not a Prometheus API response.
    #[error("malformed response from {url}: {message}")]
    Malformed {
        /// The request URL.
        url: String,
        /// What is wrong, with the JSON path (`data.result[2].value`).
        message: String,
    },
    /// Evaluated outside a tokio runtime.
    #[error("querying {url} needs a tokio runtime with I/O and time enabled")]
    NoRuntime {
        /// The request URL.
        url: String,
    },
}

fn kind_suffix(kind: Option<&str>) -> String {
    kind.map(|k| format!(" ({k})")).unwrap_or_default()
}

impl PrometheusError {
    /// The request URL.
    pub fn url(&self) -> &str {
        match self {
            PrometheusError::Unreachable { url, .. }
            | PrometheusError::Status { url, .. }
            | PrometheusError::Malformed { url, .. }
            | PrometheusError::NoRuntime { url } => url,
        }
    }
}

impl From<PrometheusError> for GateError {
    fn from(e: PrometheusError) -> Self {
        let text = e.to_string();
        match e {
            PrometheusError::Unreachable { url, message } => GateError::Unavailable {
                service: format!("prometheus ({url})"),
                message,
            },
            PrometheusError::Status {
                url,
                status,
                error_type,
                message,
            } if status == 429 || status >= 500 => GateError::Unavailable {
                service: format!("prometheus ({url})"),
                message: format!(
                    "HTTP {status}{}: {message}",
                    kind_suffix(error_type.as_deref())
                ),
            },
            PrometheusError::Malformed { url, message } => {
                invalid_input(format!("prometheus response to {url}"), None, message)
            }
            PrometheusError::Status { .. } | PrometheusError::NoRuntime { .. } => {
                GateError::Misconfigured(text)
            }
        }
    }
}

/// One sample: a value at an instant (Prometheus' millisecond precision).
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub at: DateTime<Utc>,
    /// The value; `NaN` and infinities as Prometheus sent them.
    pub value: f64,
}

/// One series of a result: its labels and its points (one for an instant vector).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// The series' labels (`__name__` included when Prometheus sends it).
    pub labels: BTreeMap<String, String>,
    /// The points, in time order.
    pub points: Vec<Point>,
}

/// What a query returned, by Prometheus' `resultType`.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum QueryResult {
    /// A single number (`scalar(...)`, `1 + 1`).
    Scalar(Point),
    /// An instant vector: one point per series (empty when nothing matched).
    Vector(Vec<Series>),
    /// A range vector or a range query's result: several points per series.
    Matrix(Vec<Series>),
    /// A string literal.
    String { at: DateTime<Utc>, value: String },
}

impl QueryResult {
    /// Prometheus' name of the result type (`vector`).
    pub fn result_type(&self) -> &'static str {
        match self {
            QueryResult::Scalar(_) => "scalar",
            QueryResult::Vector(_) => "vector",
            QueryResult::Matrix(_) => "matrix",
            QueryResult::String { .. } => "string",
        }
    }
}

/// An answer from Prometheus: the request, the raw bytes (for digests) and the parsed result.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResponse {
    /// The request URL.
    pub url: String,
    /// The body as received.
    pub body: Vec<u8>,
    /// The parsed result.
    pub result: QueryResult,
    /// Prometheus' warnings, if any.
    pub warnings: Vec<String>,
}

/// A Prometheus server's HTTP API (`/api/v1/query` and `/api/v1/query_range`), with typed
/// errors that name the request URL.
///
/// Times are sent with millisecond precision (Prometheus' own), truncated.
#[derive(Debug, Clone)]
pub struct Prometheus {
    base: Url,
    client: reqwest::Client,
    timeout: Duration,
}

impl Prometheus {
    /// The server at `url` (`http://prometheus:9090`, or with a path prefix such as
    /// `https://example.com/prometheus/`). Credentials do not belong in the URL: it is recorded
    /// in evidence; configure them on a client ([`with_client`](Self::with_client)).
    pub fn new(url: &str) -> Result<Self, PrometheusConfigError> {
        let base = parse_base_url(url)?;
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| PrometheusConfigError::Client(report_chain(&e)))?;
        Ok(Prometheus {
            base,
            client,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Limits each request to `timeout` (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, PrometheusConfigError> {
        if timeout.is_zero() {
            return Err(PrometheusConfigError::ZeroTimeout);
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// Sends requests with `client` (TLS roots, proxies, default headers such as an
    /// `Authorization`).
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    /// The base URL, with a trailing slash.
    pub fn url(&self) -> &Url {
        &self.base
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Evaluates `query` at instant `at` (`/api/v1/query`).
    pub async fn instant(
        &self,
        query: &str,
        at: DateTime<Utc>,
    ) -> Result<QueryResponse, PrometheusError> {
        let params = [
            ("query", query.to_owned()),
            ("time", prom_time(at.timestamp_millis())),
        ];
        self.get("api/v1/query", &params).await
    }

    /// Evaluates `query` at every `step` from `start` to `end` (`/api/v1/query_range`).
    pub async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<QueryResponse, PrometheusError> {
        let params = [
            ("query", query.to_owned()),
            ("start", prom_time(start.timestamp_millis())),
            ("end", prom_time(end.timestamp_millis())),
            ("step", prom_time(millis(step))),
        ];
        self.get("api/v1/query_range", &params).await
    }

    async fn get(
        &self,
        endpoint: &str,
        params: &[(&str, String)],
    ) -> Result<QueryResponse, PrometheusError> {
        let mut url = self
            .base
            .join(endpoint)
            .map_err(|e| PrometheusError::Malformed {
                url: self.base.to_string(),
                message: format!("cannot form the {endpoint} URL: {e}"),
            })?;
        url.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        let shown = url.to_string();
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(PrometheusError::NoRuntime { url: shown });
        }
        let unreachable = |what: &str, e: reqwest::Error| {
            let message = if e.is_timeout() {
                format!("{what}: no answer within {:?}", self.timeout)
            } else {
                format!("{what}: {}", report_chain(&e.without_url()))
            };
            PrometheusError::Unreachable {
                url: shown.clone(),
                message,
            }
        };
        let mut response = self
            .client
            .get(url)
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unreachable("sending the request", e))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable("reading the response", e))?
        {
            if body.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES {
                return Err(PrometheusError::Malformed {
                    url: shown,
                    message: format!("the response is larger than {MAX_RESPONSE_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        match parse_answer(&body) {
            Ok(Answer::Success { result, warnings }) if status.is_success() => Ok(QueryResponse {
                url: shown,
                body,
                result,
                warnings,
            }),
            Ok(Answer::Success { .. }) => Err(PrometheusError::Status {
                url: shown,
                status: status.as_u16(),
                error_type: None,
                message: "an error status with a success body".to_owned(),
            }),
            Ok(Answer::Error {
                error_type,
                message,
            }) => Err(PrometheusError::Status {
                url: shown,
                status: status.as_u16(),
                error_type,
                message,
            }),
            Err(message) if status.is_success() => Err(PrometheusError::Malformed {
                url: shown,
                message,
            }),
            Err(_) => Err(PrometheusError::Status {
                url: shown,
                status: status.as_u16(),
                error_type: None,
                message: snippet(&body),
            }),
        }
    }
}

fn parse_base_url(url: &str) -> Result<Url, PrometheusConfigError> {
    let invalid = |problem: &str| PrometheusConfigError::InvalidUrl {
        url: url.to_owned(),
        problem: problem.to_owned(),
    };
    let mut parsed = Url::parse(url.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if parsed.host().is_none() {
        return Err(invalid("no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "credentials in the URL would be recorded in evidence; set them on the client instead",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid(
            "the base URL takes no query or fragment; the gate adds the query",
        ));
    }
    if !parsed.path().ends_with('/') {
        let path = format!("{}/", parsed.path());
        parsed.set_path(&path);
    }
    Ok(parsed)
}

/// At most 200 characters of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// Milliseconds as Prometheus' seconds with three decimals.
fn prom_time(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A parsed Prometheus API answer.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Success {
        result: QueryResult,
        warnings: Vec<String>,
    },
    Error {
        error_type: Option<String>,
        message: String,
    },
}

fn parse_answer(body: &[u8]) -> Result<Answer, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| "expected a JSON object".to_owned())?;
    match obj.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some("error") => {
            return Ok(Answer::Error {
                error_type: obj
                    .get("errorType")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                message: obj
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
                    .to_owned(),
            })
        }
        Some(other) => return Err(format!("`status` is `{other}`, not success or error")),
        None => return Err("`status` is missing or not a string".to_owned()),
    }
    let warnings = match obj.get("warnings") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, w)| {
                w.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("`warnings[{i}]` is not a string"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("`warnings` is not an array".to_owned()),
    };
    let data = obj
        .get("data")
        .ok_or_else(|| "`data` is missing".to_owned())?;
    let result_type = data
        .get("resultType")
        .and_then(Value::as_str)
        .ok_or_else(|| "`data.resultType` is missing or not a string".to_owned())?;
    let result = data
        .get("result")
        .ok_or_else(|| "`data.result` is missing".to_owned())?;
    let result = match result_type {
        "scalar" => QueryResult::Scalar(parse_point(result, "data.result")?),
        "string" => {
            let (at, raw) = parse_pair(result, "data.result")?;
            QueryResult::String {
                at,
                value: raw.to_owned(),
            }
        }
        "vector" => QueryResult::Vector(parse_series_list(result, false)?),
        "matrix" => QueryResult::Matrix(parse_series_list(result, true)?),
        other => {
            return Err(format!(
                "`data.resultType` `{other}` is not scalar, string, vector or matrix"
            ))
        }
    };
    Ok(Answer::Success { result, warnings })
}

fn parse_pair<'v>(v: &'v Value, path: &str) -> Result<(DateTime<Utc>, &'v str), String> {
    let pair = match v.as_array() {
        Some(items) if items.len() == 2 => items,
        _ => return Err(format!("`{path}` is not a [time, \"value\"] pair")),
    };
    let (Some(ts), Some(raw)) = (pair.first(), pair.get(1)) else {
        return Err(format!("`{path}` is not a [time, \"value\"] pair"));
    };
    let at = ts
        .as_f64()
        .and_then(|s| {
            let ms = (s * 1000.0).round();
            (ms.is_finite() && ms.abs() < 8.0e15).then_some(ms as i64)
        })
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| format!("`{path}[0]` is not a time in seconds"))?;
    let raw = raw
        .as_str()
        .ok_or_else(|| format!("`{path}[1]` is not a string"))?;
    Ok((at, raw))
}

fn parse_point(v: &Value, path: &str) -> Result<Point, String> {
    let (at, raw) = parse_pair(v, path)?;
    let value = parse_value(raw).ok_or_else(|| format!("`{path}[1]` `{raw}` is not a number"))?;
    Ok(Point { at, value })
}

/// Prometheus' number formats: decimals, exponents, `NaN`, `+Inf`, `-Inf`.
fn parse_value(raw: &str) -> Option<f64> {
    match raw {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse::<f64>().ok(),
    }
}

fn parse_series_list(v: &Value, matrix: bool) -> Result<Vec<Series>, String> {
    let items = v
        .as_array()
        .ok_or_else(|| "`data.result` is not an array".to_owned())?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("data.result[{i}]");
        let obj = item
            .as_object()
            .ok_or_else(|| format!("`{path}` is not an object"))?;
        let mut labels = BTreeMap::new();
        match obj.get("metric") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let v = v
                        .as_str()
                        .ok_or_else(|| format!("`{path}.metric.{k}` is not a string"))?;
                    labels.insert(k.clone(), v.to_owned());
                }
            }
            Some(_) => return Err(format!("`{path}.metric` is not an object")),
        }
        let key = if matrix { "values" } else { "value" };
        let points = match obj.get(key) {
            Some(raw) if matrix => {
                let list = raw
                    .as_array()
                    .ok_or_else(|| format!("`{path}.values` is not an array"))?;
                list.iter()
                    .enumerate()
                    .map(|(j, p)| parse_point(p, &format!("{path}.values[{j}]")))
                    .collect::<Result<Vec<_>, _>>()?
            }
            Some(raw) => vec![parse_point(raw, &format!("{path}.value"))?],
            None if obj.contains_key("histogram") || obj.contains_key("histograms") => {
                return Err(format!(
                    "`{path}` is a native histogram sample; query a number instead \
                     (such as histogram_quantile(0.99, ...))"
                ))
            }
            None => return Err(format!("`{path}.{key}` is missing")),
        };
        out.push(Series { labels, points });
    }
    Ok(out)
}

/// The Prometheus client a gate builder asked for.
pub(crate) fn configure_prometheus(
    url: &str,
    timeout: Duration,
    client: Option<reqwest::Client>,
) -> Result<Prometheus, PrometheusConfigError> {
    // Validate the URL before setting up a client, so a bad URL is reported as such.
    parse_base_url(url)?;
    let prometheus = Prometheus::new(url)?.with_timeout(timeout)?;
    Ok(match client {
        Some(c) => prometheus.with_client(c),
        None => prometheus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:9090";

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn times_are_written_as_prometheus_reads_them() {
        assert_eq!(prom_time(1_795_683_600_123), "1795683600.123");
        assert_eq!(prom_time(5), "0.005");
        assert_eq!(prom_time(-1_500), "-1.500");
    }

    #[test]
    fn answers_of_every_result_type_parse() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"api"},"value":[1795683600.5,"1"]},
            {"metric":{"job":"db"},"value":[1795683600.5,"NaN"]},
            {"metric":{},"value":[1795683600.5,"+Inf"]},
            {"metric":{},"value":[1795683600.5,"-Inf"]},
            {"metric":{},"value":[1795683600.5,"1e-05"]}]},
            "warnings":["PromQL info: something"]}"#;
        let Ok(Answer::Success { result, warnings }) = parse_answer(vector) else {
            panic!("expected success")
        };
        assert_eq!(warnings, ["PromQL info: something"]);
        let QueryResult::Vector(series) = result else {
            panic!("expected a vector")
        };
        assert_eq!(series.len(), 5);
        assert_eq!(series[0].labels["job"], "api");
        assert_eq!(series[0].points[0].at, t("2026-11-26T09:00:00.500Z"));
        assert_eq!(series[0].points[0].value, 1.0);
        assert!(series[1].points[0].value.is_nan());
        assert_eq!(series[2].points[0].value, f64::INFINITY);
        assert_eq!(series[3].points[0].value, f64::NEG_INFINITY);
        assert_eq!(series[4].points[0].value, 0.00001);

        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1795683600.184,"0.5"]}}"#;
        assert_eq!(
            parse_answer(scalar),
            Ok(Answer::Success {
                result: QueryResult::Scalar(Point {
                    at: t("2026-11-26T09:00:00.184Z"),
                    value: 0.5
                }),
                warnings: vec![]
            })
        );

        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"track":"canary"},"values":[[1795683600,"1"],[1795683601,"2"]]}]}}"#;
        let Ok(Answer::Success {
            result: QueryResult::Matrix(series),
            ..
        }) = parse_answer(matrix)
        else {
            panic!("expected a matrix")
        };
        assert_eq!(series[0].points.len(), 2);
        assert_eq!(series[0].points[1].value, 2.0);

        let string =
            br#"{"status":"success","data":{"resultType":"string","result":[1795683600,"abc"]}}"#;
        assert!(matches!(
            parse_answer(string),
            Ok(Answer::Success { result: QueryResult::String { value, .. }, .. }) if value == "abc"
        ));

        let error = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert_eq!(
            parse_answer(error),
            Ok(Answer::Error {
                error_type: Some("bad_data".into()),
                message: "parse error".into()
            })
        );
    }

    #[test]
    fn malformed_answers_name_the_json_path() {
        let cases: [(&[u8], &str); 12] = [
            (b"<html>oops</html>", "not JSON"),
            (b"[1,2]", "expected a JSON object"),
            (br#"{"data":{}}"#, "`status` is missing"),
            (br#"{"status":"maybe"}"#, "`status` is `maybe`"),
            (br#"{"status":"success"}"#, "`data` is missing"),
            (br#"{"status":"success","data":{"result":[]}}"#, "`data.resultType` is missing"),
            (
                br#"{"status":"success","data":{"resultType":"table","result":[]}}"#,
                "`data.resultType` `table`",
            ),
            (
                br#"{"status":"success","data":{"resultType":"vector","result":{}}}"#,
                "`data.result` is not an array",
            ),
            (
                br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#,
                "`data.result[0].value[1]` `x` is not a number",
            ),
            (
                br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1},"value":[1,"1"]}]}}"#,
                "`data.result[0].metric.a` is not a string",
            ),
            (
                br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2]]}]}}"#,
                "`data.result[0].values[1]` is not a [time, \"value\"] pair",
            ),
            (
                br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{}]}]}}"#,
                "native histogram",
            ),
        ];
        for (body, expected) in cases {
            let err = parse_answer(body).unwrap_err();
            assert!(
                err.contains(expected),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn base_urls_are_checked_and_take_a_path_prefix() {
        let p = Prometheus::new("https://example.com/prometheus").unwrap();
        assert_eq!(p.url().as_str(), "https://example.com/prometheus/");
        assert_eq!(
            p.url().join("api/v1/query").unwrap().as_str(),
            "https://example.com/prometheus/api/v1/query"
        );
        assert_eq!(
            Prometheus::new("http://127.0.0.1:9090")
                .unwrap()
                .url()
                .as_str(),
            "http://127.0.0.1:9090/"
        );
        for (url, problem) in [
            ("http://user:secret@prom:9090", "credentials"),
            ("http://prom:9090/?x=1", "no query"),
            ("file:///tmp/x", "scheme"),
            ("prom:9090", "scheme"),
        ] {
            let e = Prometheus::new(url).unwrap_err();
            assert!(e.to_string().contains(problem), "{url}: {e}");
        }
        assert!(matches!(
            Prometheus::new(URL).unwrap().with_timeout(Duration::ZERO),
            Err(PrometheusConfigError::ZeroTimeout)
        ));
    }

    #[test]
    fn prometheus_errors_become_gate_errors_by_kind() {
        let url = "http://p:9090/api/v1/query?query=up".to_owned();
        let e: GateError = PrometheusError::Unreachable {
            url: url.clone(),
            message: "connection refused".into(),
        }
        .into();
        assert!(
            matches!(&e, GateError::Unavailable { service, message }
                if service == &format!("prometheus ({url})") && message == "connection refused"),
            "{e}"
        );
        let status = |status: u16, error_type: Option<&str>| PrometheusError::Status {
            url: url.clone(),
            status,
            error_type: error_type.map(str::to_owned),
            message: "m".into(),
        };
        let e: GateError = status(400, Some("bad_data")).into();
        assert_eq!(
            e.to_string(),
            format!("misconfigured: {url} answered HTTP 400 (bad_data): m")
        );
        assert!(matches!(
            GateError::from(status(404, None)),
            GateError::Misconfigured(_)
        ));
        assert!(matches!(
            GateError::from(status(422, Some("execution"))),
            GateError::Misconfigured(_)
        ));
        let e: GateError = status(503, Some("unavailable")).into();
        assert!(
            matches!(&e, GateError::Unavailable { message, .. } if message == "HTTP 503 (unavailable): m"),
            "{e}"
        );
        assert!(matches!(
            GateError::from(status(429, None)),
            GateError::Unavailable { .. }
        ));
        let e: GateError = PrometheusError::Malformed {
            url: url.clone(),
            message: "not JSON".into(),
        }
        .into();
        assert!(
            matches!(&e, GateError::InvalidInput { what, message }
                if what == &format!("prometheus response to {url}") && message == "not JSON"),
            "{e}"
        );
        assert_eq!(status(500, None).url(), url);
    }
}
