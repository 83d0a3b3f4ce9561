//! The [`WebhookGate`] at evaluation time: the signed request, the answer read up to its limit,
//! the status and criteria judged, and TLS and connection failures named as gate errors.

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use promotion_core::{
    canonical_json, report_chain, Digest, Evidence, Gate, GateContext, GateError, GateKind,
    GateName, Verdict,
};
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use serde_json::{json, Value};
use url::Url;

use crate::input::invalid_input;

use crate::secrets::Secret;

use super::{
    sign, Criterion, StatusRule, WebhookGateBuilder, ACTUAL_MAX_BYTES, DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_SIGNATURE_HEADER, DEFAULT_TIMEOUT, EXCERPT_CHARS, PAYLOAD_SCHEMA,
};

#[derive(Clone)]
pub(super) struct Signing {
    pub(super) secret: Secret,
    pub(super) header: HeaderName,
}

/// Asks an HTTP(S) endpoint whether a release may proceed; see the [module docs](super).
///
/// ```
/// use promotion_gates::webhook::WebhookGate;
/// use promotion_gates::process::Secret;
///
/// let gate = WebhookGate::builder("https://cab.example.com/api/promotion-check")
///     .name("change-approved")
///     .expect_true("/approved")
///     .signing_secret(Secret::new("shared with the CAB service"))
///     .build()?;
/// assert!(!format!("{gate:?}").contains("shared with"));
/// # Ok::<(), promotion_gates::webhook::WebhookConfigError>(())
/// ```
#[derive(Clone)]
pub struct WebhookGate {
    pub(super) name: GateName,
    pub(super) kind: GateKind,
    pub(super) url: Url,
    pub(super) shown_url: String,
    pub(super) client: reqwest::Client,
    pub(super) statuses: Vec<StatusRule>,
    pub(super) criteria: Vec<Criterion>,
    pub(super) timeout: Duration,
    pub(super) max_response_bytes: usize,
    pub(super) signing: Option<Signing>,
    pub(super) root_ca_count: usize,
    pub(super) built_in_roots: bool,
}

impl fmt::Debug for WebhookGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookGate")
            .field("name", &self.name.as_str())
            .field("url", &self.shown_url)
            .field("accepted_status", &self.accepted_status())
            .field("criteria", &self.criteria)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("root_cas", &self.root_ca_count)
            .field("built_in_roots", &self.built_in_roots)
            .field(
                "signature_header",
                &self.signing.as_ref().map(|s| s.header.as_str()),
            )
            .finish()
    }
}

/// The body read from an answer, up to the limit.
struct Answer {
    bytes: Vec<u8>,
    truncated: bool,
}

impl WebhookGate {
    /// A gate POSTing to `url` (`http` or `https`).
    pub fn builder(url: impl Into<String>) -> WebhookGateBuilder {
        WebhookGateBuilder {
            name: "webhook".to_owned(),
            kind: GateKind::Automated,
            url: url.into(),
            statuses: Vec::new(),
            criteria: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            root_cas: Vec::new(),
            built_in_roots: true,
            secret: None,
            signature_header: DEFAULT_SIGNATURE_HEADER.to_owned(),
            system_proxy: true,
        }
    }

    /// The URL requests go to, with any password in it replaced by `***`.
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    /// The accepted statuses, as written in evidence (`200-299`, `204`).
    pub fn accepted_status(&self) -> Vec<String> {
        self.statuses.iter().map(ToString::to_string).collect()
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The request body for this evaluation, in canonical JSON.
    fn payload(&self, ctx: &GateContext<'_>, timestamp: i64) -> Result<Vec<u8>, GateError> {
        let release = serde_json::to_value(ctx.release).map_err(|e| GateError::Other {
            message: format!("webhook gate `{}`: cannot serialise the release", self.name),
            source: Some(Box::new(e)),
        })?;
        let payload = json!({
            "schema": PAYLOAD_SCHEMA,
            "gate": ctx.gate.as_str(),
            "pipeline": ctx.pipeline.as_str(),
            "pipeline_version": ctx.pipeline_version,
            "stage": ctx.stage.as_str(),
            "phase": ctx.phase,
            "round": ctx.round,
            "attempt": ctx.attempt,
            "release": release,
            "sent_at": ctx.now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            "timestamp": timestamp,
        });
        canonical_json(&payload).map_err(|e| GateError::Other {
            message: format!("webhook gate `{}`: cannot serialise the request", self.name),
            source: Some(Box::new(e)),
        })
    }

    fn service(&self) -> String {
        format!("webhook {}", self.shown_url)
    }

    /// Turns a transport failure into the error the engine records and retries.
    fn transport_error(&self, e: reqwest::Error) -> GateError {
        if e.is_timeout() {
            return GateError::TimedOut(self.timeout);
        }
        let e = e.without_url();
        if let Some(tls) = find_rustls_error(&e) {
            let message = match tls {
                rustls::Error::InvalidCertificate(reason) => {
                    let hint = if matches!(reason, rustls::CertificateError::UnknownIssuer) {
                        "; trust its CA with root_ca_pem"
                    } else {
                        ""
                    };
                    format!(
                        "TLS handshake failed: the server's certificate is not trusted \
                         ({reason:?}){hint}"
                    )
                }
                other => format!("TLS handshake failed: {other}"),
            };
            return GateError::Unavailable {
                service: self.service(),
                message,
            };
        }
        GateError::Unavailable {
            service: self.service(),
            message: report_chain(&e),
        }
    }

    async fn read_answer(&self, response: &mut reqwest::Response) -> Result<Answer, GateError> {
        let mut bytes = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            let room = self.max_response_bytes.saturating_sub(bytes.len());
            if chunk.len() > room {
                bytes.extend_from_slice(chunk.get(..room).unwrap_or(&[]));
                truncated = true;
                break;
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Answer { bytes, truncated })
    }
}

/// A rustls error anywhere in the chain of causes. `io::Error` delegates `source()` to its
/// payload's source, skipping the payload itself (reqwest nests an `io::Error` carrying the
/// rustls error inside another), so payloads of I/O errors are followed explicitly.
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let payload = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        current = payload.or_else(|| err.source());
    }
    None
}

/// Whether two JSON values are equal, numbers by value.
pub(super) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                matches!((x.as_f64(), y.as_f64()), (Some(x), Some(y)) if x == y)
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// A value for the evidence: itself when small, else a note of its size.
pub(super) fn bounded(value: &Value) -> Value {
    let text = value.to_string();
    if text.len() <= ACTUAL_MAX_BYTES {
        value.clone()
    } else {
        Value::String(format!("<{} bytes of JSON>", text.len()))
    }
}

/// The first `max` characters of `text`, with `…` when cut.
pub(super) fn excerpt(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

fn status_text(status: reqwest::StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

#[async_trait]
impl Gate for WebhookGate {
    fn name(&self) -> &str {
        self.name.as_str()
    }

    fn kind(&self) -> GateKind {
        self.kind
    }

    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(GateError::Misconfigured(format!(
                "webhook gate `{}` must be evaluated inside a tokio runtime with I/O and time \
                 enabled",
                self.name
            )));
        }
        let timestamp = ctx.now().timestamp();
        let body = self.payload(ctx, timestamp)?;
        let request_digest = Digest::of(&body);

        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(signing) = &self.signing {
            let value = sign(signing.secret.expose().as_bytes(), timestamp, &body);
            let value = HeaderValue::from_str(&value).map_err(|_| {
                GateError::other("the signature header value is not a valid header value")
            })?;
            request = request.header(signing.header.clone(), value);
        }
        let started = Instant::now();
        let mut response = request
            .body(body.clone())
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer = self.read_answer(&mut response).await?;
        let duration = started.elapsed();
        let code = status.as_u16();
        let accepted = self.statuses.iter().any(|r| r.accepts(code));
        let shown_status = status_text(status);

        if !accepted && (status.is_server_error() || code == 408 || code == 429) {
            let text = String::from_utf8_lossy(&answer.bytes);
            let text = text.trim();
            let message = if text.is_empty() {
                format!("answered {shown_status}")
            } else {
                format!("answered {shown_status}: {}", excerpt(text, EXCERPT_CHARS))
            };
            return Err(GateError::Unavailable {
                service: self.service(),
                message,
            });
        }
        if accepted && answer.truncated {
            return Err(invalid_input(
                format!("answer of {}", self.shown_url),
                None,
                format!(
                    "the answer is larger than {} bytes (max_response_bytes)",
                    self.max_response_bytes
                ),
            ));
        }

        // Criteria are judged only on an accepted answer.
        let mut results = Vec::new();
        let mut problems = Vec::new();
        if accepted && !self.criteria.is_empty() {
            let document: Value = serde_json::from_slice(&answer.bytes).map_err(|e| {
                let shown = String::from_utf8_lossy(&answer.bytes);
                invalid_input(
                    format!("answer of {}", self.shown_url),
                    None,
                    format!(
                        "the answer ({} bytes, {shown_status}) is not JSON: {e}; it begins `{}`",
                        answer.bytes.len(),
                        excerpt(shown.trim(), 60)
                    ),
                )
            })?;
            for c in &self.criteria {
                let actual = document.pointer(&c.pointer);
                let met = actual.is_some_and(|a| json_equal(a, &c.expected));
                let shown_pointer = if c.pointer.is_empty() {
                    "the answer"
                } else {
                    c.pointer.as_str()
                };
                if !met {
                    problems.push(match actual {
                        None => format!("{shown_pointer} is missing, expected {}", c.expected),
                        Some(a) => format!(
                            "{shown_pointer} is {}, expected {}",
                            excerpt(&a.to_string(), 80),
                            c.expected
                        ),
                    });
                }
                results.push(json!({
                    "pointer": c.pointer,
                    "expected": c.expected,
                    "actual": actual.map(bounded),
                    "met": met,
                }));
            }
        }

        let head = format!("POST {} answered {shown_status}", self.shown_url);
        let summary = if !accepted {
            format!("{head}, expected {}", self.accepted_status().join(", "))
        } else if !problems.is_empty() {
            format!("{head} but {}", problems.join("; "))
        } else if self.criteria.is_empty() {
            head
        } else {
            let met: Vec<String> = self
                .criteria
                .iter()
                .map(|c| format!("{} = {}", c.pointer, c.expected))
                .collect();
            format!("{head}; {}", met.join(", "))
        };
        let passed = accepted && problems.is_empty();
        let data = json!({
            "url": self.shown_url,
            "method": "POST",
            "status": code,
            "reason": status.canonical_reason(),
            "accepted_status": self.accepted_status(),
            "criteria": results,
            "problems": problems,
            "request": {
                "sha256": request_digest.to_string(),
                "bytes": body.len(),
                "signed": self.signing.is_some(),
                "signature_header": self.signing.as_ref().map(|s| s.header.as_str()),
                "timestamp": timestamp,
            },
            "response": {
                "sha256": Digest::of(&answer.bytes).to_string(),
                "bytes": answer.bytes.len(),
                "truncated": answer.truncated,
                "content_type": content_type,
            },
            "duration_ms": u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            "timeout_ms": u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
        });
        let evidence = Evidence::new(self.name(), ctx.now(), summary)
            .with_data(data)
            .with_attachment("request body", &body)
            .with_attachment("response body", &answer.bytes)
            .with_fact("status", code.to_string());
        Ok(Verdict::pass_if(passed, evidence))
    }
}
