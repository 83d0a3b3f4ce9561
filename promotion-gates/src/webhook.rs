//! Webhook gate: asks an HTTP(S) endpoint whether a release may proceed.
//!
//! # Overview
//!
//! [`WebhookGate`] POSTs the release and the stage it is about to enter (or is rolling out to)
//! as JSON to a URL, and decides on the answer: on its status code and, optionally, on fields
//! of its JSON body. It plays the part of Azure DevOps' "invoke REST API" gate and of Flagger's
//! webhooks: a change-management system, a load-test service or a home-grown check can veto a
//! promotion without being linked into the host.
//!
//! The gate is built with [`WebhookGate::builder`]; every setting is checked when the gate is
//! built, so a bad URL, PEM file, status code or JSON pointer is a [`WebhookConfigError`]
//! naming the setting, never a surprise at evaluation.
//!
//! The gate needs a tokio runtime with I/O and time enabled; evaluated outside one it answers
//! [`GateError::Misconfigured`] instead of panicking.
//!
//! # The request
//!
//! One `POST` per evaluation, with `Content-Type: application/json` and a body in canonical
//! JSON (object keys sorted, no whitespace; see [`promotion_core::canonical_json`]), so the
//! request digest recorded as evidence can be recomputed from the same inputs:
//!
//! ```json
//! {
//!   "attempt": 1,
//!   "gate": "change-approved",
//!   "phase": "entry",
//!   "pipeline": "shop",
//!   "pipeline_version": "3",
//!   "release": { "id": "sha256:…", "name": "api 1.4.2", "artifacts": […], "source": {…},
//!                "built_at": "…", "builder": "…", "contributors": […], "labels": {…} },
//!   "round": 1,
//!   "schema": "promotion.webhook/v1",
//!   "sent_at": "2026-11-26T09:00:00Z",
//!   "stage": "production",
//!   "timestamp": 1795683600
//! }
//! ```
//!
//! `release` is the release exactly as the audit log stores it; `phase` is `entry`,
//! `verification` or `analysis:<step>`; `sent_at` and `timestamp` (Unix seconds) are the
//! engine clock's time, the one also used in the signature. Redirects are not followed (a
//! `3xx` is an answer like any other): a signed body must reach the endpoint it was meant for.
//!
//! # Success criteria
//!
//! - **Status**: the status must be one of the accepted codes or ranges
//!   ([`WebhookGateBuilder::accept_status`], [`WebhookGateBuilder::accept_status_range`]);
//!   `200-299` when none is configured.
//! - **JSON fields**: each criterion ([`WebhookGateBuilder::expect_json`],
//!   [`WebhookGateBuilder::expect_true`]) names a field of the answer by an RFC 6901 JSON
//!   pointer (`/result/approved`) and the value it must equal. Numbers compare by value
//!   (`1` equals `1.0`); everything else compares as JSON (`true` does not equal `"true"`).
//!   A field that is absent does not meet its criterion. The body is only parsed when there
//!   are criteria, and only when the status is accepted.
//!
//! # What is a verdict and what is an error
//!
//! The gate itself never retries. It makes one request bounded by its own timeout
//! ([`WebhookGateBuilder::timeout`], 30 s by default, measured in real time); what could not
//! be decided is a [`GateError`], which the engine retries per the gate's
//! [`GatePolicy`](promotion_core::GatePolicy) (retries with backoff). Keep the gate's timeout
//! below the policy's timeout, which runs on the engine's clock.
//!
//! | what happened                                              | result                                  |
//! |------------------------------------------------------------|-----------------------------------------|
//! | accepted status, every criterion met                       | [`Verdict::Pass`]                       |
//! | accepted status, a criterion not met (field false, absent, different) | [`Verdict::Fail`], naming each  |
//! | status not accepted: `1xx`, `3xx`, `4xx` other than 408/429 | [`Verdict::Fail`]: the endpoint said no |
//! | `5xx`, `408 Request Timeout`, `429 Too Many Requests` (unless accepted) | [`GateError::Unavailable`] (retried) |
//! | connection refused, reset, DNS failure, body cut off        | [`GateError::Unavailable`] (retried)    |
//! | TLS handshake failed (untrusted or expired certificate, wrong host name) | [`GateError::Unavailable`], saying why |
//! | no complete answer within the timeout                       | [`GateError::TimedOut`] (retried)       |
//! | accepted status, body larger than the limit, or not JSON when criteria need it | [`GateError::InvalidInput`] naming the URL |
//!
//! A well-formed negative answer is a verdict, not an error: retrying it would ask the same
//! question again and get the same answer. An answer the gate cannot read is an error: it is
//! recorded, retried, and never counted as a pass.
//!
//! # TLS
//!
//! HTTPS uses rustls with the built-in web PKI roots. [`WebhookGateBuilder::root_ca_pem`] adds
//! trusted root certificates (a private CA, or a self-signed certificate);
//! [`WebhookGateBuilder::built_in_roots`] can turn the built-in roots off so that only the
//! given CAs are trusted. A certificate that does not chain to a trusted root is a
//! [`GateError::Unavailable`] whose message says the certificate is not trusted and why
//! (`UnknownIssuer`, `Expired`, `NotValidForName`, …).
//!
//! # Signature scheme
//!
//! With a shared secret ([`WebhookGateBuilder::signing_secret`]) every request carries a
//! header (`X-Promotion-Signature` by default) that lets the receiver check that the request
//! comes from this gate, was not altered, and is fresh. The scheme is Stripe's:
//!
//! ```text
//! X-Promotion-Signature: t=1795683600,v1=<64 lowercase hex digits>
//! ```
//!
//! - `t` is the time of signing in Unix seconds (decimal ASCII, the engine clock's time, the
//!   same as `timestamp` in the body);
//! - `v1` is the lowercase hex HMAC-SHA256, keyed with the secret's UTF-8 bytes, of the
//!   **signed message**: the ASCII decimal `t`, one `.` (0x2E), and then the exact bytes of the
//!   request body, with nothing added or removed (`1795683600.{"attempt":1,…}`).
//!
//! A receiver authenticates a request with [`verify_signature`] (or the same steps in another
//! language): split the header on `,` into `key=value` pairs (unknown keys are ignored, so the
//! scheme can grow); take the single `t` and every `v1`; reject a `t` more than a tolerance
//! (five minutes, [`DEFAULT_SIGNATURE_TOLERANCE`]) away from its own clock in either direction;
//! compute the HMAC over `t` `.` body — the raw bytes received, before any JSON parsing — and
//! compare it with each `v1` in constant time. Because the timestamp is signed with the body, an
//! old request cannot be replayed with a new timestamp; a receiver that must also refuse a
//! replay *within* the tolerance remembers the `(t, v1)` pairs it accepted for that long.
//! During a secret rotation the receiver verifies against each of its secrets in turn.
//!
//! # Evidence
//!
//! - summary: `` POST https://cab.example.com/check answered 200 OK; /approved = true ``,
//!   or what was wrong (`` … answered 200 OK but /approved is false, expected true ``);
//! - attachments `request body` and `response body`: digest and size of each;
//! - data: `url` (with any password in it replaced by `***`), `method`, `status`, `reason`,
//!   `accepted_status`, `criteria` (each `pointer`, `expected`, `actual`, `met`), `problems`,
//!   `request` (`sha256`, `bytes`, `signed`, `signature_header`, `timestamp`), `response`
//!   (`sha256`, `bytes`, `truncated`, `content_type`), `duration_ms`, `timeout_ms`;
//! - fact `status`: the status code, for approval conditions and later gates.
//!
//! The secret never appears in evidence, in error messages or in `Debug` output; neither does
//! the signature header's value.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use promotion_core::{
    canonical_json, report_chain, Digest, Evidence, Gate, GateContext, GateError, GateKind,
    GateName, InvalidName, Verdict,
};
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use serde_json::{json, Value};
use sha2::Sha256;
use url::Url;

use crate::input::invalid_input;
use crate::secrets::Secret;

/// Default timeout of one request, from connecting until the whole answer is read.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default largest answer the gate reads, in bytes (1 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Default name of the signature header.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Promotion-Signature";
/// How far a signature's timestamp may be from the receiver's clock, by default: five minutes.
pub const DEFAULT_SIGNATURE_TOLERANCE: Duration = Duration::from_secs(300);
/// The `schema` field of every request body.
pub const PAYLOAD_SCHEMA: &str = "promotion.webhook/v1";
/// Longest excerpt of an answer shown in an error message, in characters.
const EXCERPT_CHARS: usize = 200;
/// Largest `actual` value copied into the evidence, in bytes of JSON.
const ACTUAL_MAX_BYTES: usize = 512;
/// Headers the gate sets itself and a signature header may not replace.
const RESERVED_HEADERS: [&str; 4] = ["content-type", "content-length", "host", "user-agent"];

type HmacSha256 = Hmac<Sha256>;

// ---------------------------------------------------------------------------------------------
// Signatures

/// Why a signature header does not authenticate a request; returned by [`verify_signature`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header is not a list of `key=value` pairs, or a value is malformed.
    #[error("malformed signature header: {0}")]
    Malformed(String),
    /// The header has no `t=` timestamp.
    #[error("the signature header has no timestamp (`t=`)")]
    MissingTimestamp,
    /// The header has no `v1=` signature.
    #[error("the signature header has no `v1=` signature")]
    MissingSignature,
    /// The timestamp is further from the receiver's clock than the tolerance allows.
    #[error(
        "the signature's timestamp {timestamp} is {distance_secs} s away from now ({now}), \
         more than the tolerance of {tolerance_secs} s"
    )]
    OutsideTolerance {
        /// The signed timestamp, in Unix seconds.
        timestamp: i64,
        /// The receiver's time, in Unix seconds.
        now: i64,
        /// How far apart they are, in seconds.
        distance_secs: u64,
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// No `v1` signature matches the body, timestamp and secret.
    #[error("no signature matches the body, the timestamp and the secret")]
    Mismatch,
}

/// The value of the signature header for `body` signed with `secret` at `timestamp` (Unix
/// seconds): `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>." followed by body>`.
///
/// ```
/// use promotion_gates::webhook::{sign, verify_signature};
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let body = br#"{"stage":"production"}"#;
/// let header = sign(b"s3cret", 1_795_683_600, body);
/// assert!(header.starts_with("t=1795683600,v1="));
/// let now = UNIX_EPOCH + Duration::from_secs(1_795_683_630);
/// let tolerance = Duration::from_secs(300);
/// assert_eq!(verify_signature(b"s3cret", &header, body, now, tolerance), Ok(1_795_683_600));
/// ```
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

/// The HMAC-SHA256 of `"<timestamp>." || body` keyed with `secret`.
fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Vec<u8> {
    keyed(secret, timestamp, body)
        .finalize()
        .into_bytes()
        .to_vec()
}

fn keyed(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (longer ones are hashed), so `new_from_slice` cannot
    // fail; the all-zero key is only there to avoid a panic path.
    let mut m = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()));
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// Checks a signature header made by a [`WebhookGate`] (or by [`sign`]) as a receiver should,
/// and returns the signed timestamp (Unix seconds), for example to remember it against
/// replays.
///
/// `header` is the header's value, `body` the exact bytes received, `now` the receiver's
/// clock; the timestamp must be within `tolerance` of `now`, in either direction. Pairs other
/// than `t` and `v1` are ignored; several `v1` are allowed and one matching is enough. The
/// comparison is constant-time.
///
/// ```
/// use promotion_gates::webhook::{sign, verify_signature, SignatureError};
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
/// let header = sign(b"s3cret", 1_000_000, b"{}");
/// let tolerance = Duration::from_secs(300);
/// assert!(verify_signature(b"s3cret", &header, b"{}", now, tolerance).is_ok());
/// // Another body, another secret, or an old timestamp are refused.
/// let mismatch = Err(SignatureError::Mismatch);
/// assert_eq!(verify_signature(b"s3cret", &header, b"{ }", now, tolerance), mismatch);
/// assert_eq!(verify_signature(b"guess", &header, b"{}", now, tolerance), mismatch);
/// let later = now + Duration::from_secs(301);
/// assert!(matches!(verify_signature(b"s3cret", &header, b"{}", later, tolerance),
///                  Err(SignatureError::OutsideTolerance { .. })));
/// ```
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> Result<i64, SignatureError> {
    let mut timestamp: Option<i64> = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((key, value)) = part.split_once('=') else {
            return Err(SignatureError::Malformed(format!(
                "`{}` is not a key=value pair",
                excerpt(part, 40)
            )));
        };
        match key.trim() {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed(
                        "the timestamp `t` appears twice".to_owned(),
                    ));
                }
                let value = value.trim();
                let parsed = if value.bytes().all(|b| b.is_ascii_digit()) {
                    value.parse::<i64>().ok()
                } else {
                    None
                };
                match parsed {
                    Some(t) => timestamp = Some(t),
                    None => {
                        return Err(SignatureError::Malformed(format!(
                            "the timestamp `{}` is not a number of seconds",
                            excerpt(value, 40)
                        )))
                    }
                }
            }
            "v1" => {
                let bytes = hex::decode(value.trim()).map_err(|_| {
                    SignatureError::Malformed("a `v1` signature is not hex".to_owned())
                })?;
                candidates.push(bytes);
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
    if candidates.is_empty() {
        return Err(SignatureError::MissingSignature);
    }
    let now_secs = unix_seconds(now);
    let distance = now_secs.abs_diff(timestamp);
    if distance > tolerance.as_secs() {
        return Err(SignatureError::OutsideTolerance {
            timestamp,
            now: now_secs,
            distance_secs: distance,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    let matched = candidates
        .iter()
        .any(|c| keyed(secret, timestamp, body).verify_slice(c).is_ok());
    if matched {
        Ok(timestamp)
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// A webhook gate configured wrongly; returned by [`WebhookGateBuilder::build`]. Each variant
/// names the setting that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookConfigError {
    /// The gate's name is not a valid gate name.
    #[error("webhook gate: name: {0}")]
    InvalidName(#[from] InvalidName),
    /// The URL does not parse.
    #[error("webhook gate: url `{url}` is not a valid URL: {message}")]
    InvalidUrl {
        /// The URL as given (any password replaced by `***`).
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The URL's scheme is neither `http` nor `https`.
    #[error("webhook gate: url `{url}` has scheme `{scheme}`; only http and https are supported")]
    UnsupportedScheme {
        /// The URL (any password replaced by `***`).
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// A status code outside `100..=599`.
    #[error("webhook gate: accept_status: {code} is not an HTTP status code (100 to 599)")]
    InvalidStatus {
        /// The code as given.
        code: u16,
    },
    /// A status range whose bounds are reversed or outside `100..=599`.
    #[error(
        "webhook gate: accept_status_range: {low}-{high} is not a range of HTTP status codes \
         (100 to 599, low to high)"
    )]
    InvalidStatusRange {
        /// Lower bound as given.
        low: u16,
        /// Upper bound as given.
        high: u16,
    },
    /// A JSON criterion's pointer is not an RFC 6901 JSON pointer.
    #[error("webhook gate: expect_json: `{pointer}` is not a JSON pointer: {problem}")]
    InvalidJsonPointer {
        /// The pointer as given.
        pointer: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The same JSON pointer has two criteria.
    #[error("webhook gate: expect_json: `{pointer}` has two criteria")]
    DuplicateJsonPointer {
        /// The pointer.
        pointer: String,
    },
    /// A root CA PEM holds no certificate, or a certificate that cannot be a trust anchor.
    #[error("webhook gate: root_ca_pem #{index}: {message}")]
    InvalidRootCa {
        /// Which `root_ca_pem` call, from 1.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// HTTPS with the built-in roots turned off and no root CA given: nothing would be trusted.
    #[error(
        "webhook gate: built_in_roots is off and no root_ca_pem is given, so no HTTPS server \
         can be trusted"
    )]
    NoTrustedRoots,
    /// The signing secret is empty.
    #[error("webhook gate: signing_secret is empty")]
    EmptySecret,
    /// The signature header's name is not a valid header name, or names a header the gate sets.
    #[error("webhook gate: signature_header `{header}`: {problem}")]
    InvalidSignatureHeader {
        /// The name as given.
        header: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The timeout is zero.
    #[error("webhook gate: timeout is zero")]
    ZeroTimeout,
    /// The response size limit is zero.
    #[error("webhook gate: max_response_bytes is zero")]
    ZeroMaxResponseBytes,
    /// The HTTP client could not be built with these settings.
    #[error("webhook gate: the HTTP client cannot be built: {message}")]
    Client {
        /// What the HTTP client said.
        message: String,
    },
}

/// An accepted status: one code or an inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusRule {
    Code(u16),
    Range(u16, u16),
}

impl StatusRule {
    fn accepts(self, code: u16) -> bool {
        match self {
            StatusRule::Code(c) => c == code,
            StatusRule::Range(lo, hi) => (lo..=hi).contains(&code),
        }
    }
}

impl fmt::Display for StatusRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusRule::Code(c) => write!(f, "{c}"),
            StatusRule::Range(lo, hi) => write!(f, "{lo}-{hi}"),
        }
    }
}

/// One JSON criterion: the field at `pointer` must equal `expected`.
#[derive(Debug, Clone, PartialEq)]
struct Criterion {
    pointer: String,
    expected: Value,
}

/// Builder for [`WebhookGate`]; every setting is validated in
/// [`build`](WebhookGateBuilder::build).
pub struct WebhookGateBuilder {
    name: String,
    kind: GateKind,
    url: String,
    statuses: Vec<StatusRule>,
    criteria: Vec<Criterion>,
    timeout: Duration,
    max_response_bytes: usize,
    root_cas: Vec<Vec<u8>>,
    built_in_roots: bool,
    secret: Option<Secret>,
    signature_header: String,
    system_proxy: bool,
}

impl fmt::Debug for WebhookGateBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookGateBuilder")
            .field("name", &self.name)
            .field("url", &redact_url_text(&self.url))
            .field("statuses", &self.statuses)
            .field("criteria", &self.criteria)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("root_cas", &self.root_cas.len())
            .field("built_in_roots", &self.built_in_roots)
            .field("signed", &self.secret.is_some())
            .field("signature_header", &self.signature_header)
            .field("system_proxy", &self.system_proxy)
            .finish()
    }
}

impl WebhookGateBuilder {
    /// Names the gate (default `webhook`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Reports `kind` (default [`GateKind::Automated`]; a change-management check is
    /// [`GateKind::Compliance`]).
    pub fn kind(mut self, kind: GateKind) -> Self {
        self.kind = kind;
        self
    }
    /// Accepts status `code`. The first accepted code or range replaces the default `200-299`.
    pub fn accept_status(mut self, code: u16) -> Self {
        self.statuses.push(StatusRule::Code(code));
        self
    }
    /// Accepts every status from `low` to `high`, both included.
    pub fn accept_status_range(mut self, low: u16, high: u16) -> Self {
        self.statuses.push(StatusRule::Range(low, high));
        self
    }
    /// Requires the answer's JSON field at `pointer` (RFC 6901: `/result/approved`, `""` for
    /// the whole document) to equal `expected`.
    pub fn expect_json(mut self, pointer: impl Into<String>, expected: Value) -> Self {
        self.criteria.push(Criterion {
            pointer: pointer.into(),
            expected,
        });
        self
    }
    /// Requires the answer's JSON field at `pointer` to be `true`.
    pub fn expect_true(self, pointer: impl Into<String>) -> Self {
        self.expect_json(pointer, Value::Bool(true))
    }
    /// Bounds one request, from connecting until the whole answer is read, in real time
    /// (default [`DEFAULT_TIMEOUT`]). Past it the evaluation is [`GateError::TimedOut`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Reads at most `bytes` of the answer (default [`DEFAULT_MAX_RESPONSE_BYTES`]).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }
    /// Trusts the root certificates in `pem` (one or more `CERTIFICATE` blocks) in addition to
    /// the built-in roots. May be called several times.
    pub fn root_ca_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.root_cas.push(pem.as_ref().to_vec());
        self
    }
    /// Whether the built-in web PKI roots are trusted (default `true`). With `false`, only the
    /// certificates given with [`root_ca_pem`](Self::root_ca_pem) are.
    pub fn built_in_roots(mut self, enabled: bool) -> Self {
        self.built_in_roots = enabled;
        self
    }
    /// Signs every request with this shared secret; see the module documentation for the
    /// scheme.
    pub fn signing_secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }
    /// Sends the signature in this header (default [`DEFAULT_SIGNATURE_HEADER`]).
    pub fn signature_header(mut self, name: impl Into<String>) -> Self {
        self.signature_header = name.into();
        self
    }
    /// Whether the proxies named by the `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and
    /// `NO_PROXY` variables are used (default `true`).
    pub fn use_system_proxy(mut self, enabled: bool) -> Self {
        self.system_proxy = enabled;
        self
    }

    /// Validates the settings and builds the HTTP client.
    pub fn build(self) -> Result<WebhookGate, WebhookConfigError> {
        let name = GateName::new(self.name)?;
        let url = Url::parse(self.url.trim()).map_err(|e| WebhookConfigError::InvalidUrl {
            url: redact_url_text(&self.url),
            message: e.to_string(),
        })?;
        let shown_url = redact_url(&url);
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(WebhookConfigError::UnsupportedScheme {
                url: shown_url,
                scheme: url.scheme().to_owned(),
            });
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(WebhookConfigError::InvalidUrl {
                url: shown_url,
                message: "it has no host".to_owned(),
            });
        }
        for rule in &self.statuses {
            match *rule {
                StatusRule::Code(code) if !(100..=599).contains(&code) => {
                    return Err(WebhookConfigError::InvalidStatus { code });
                }
                StatusRule::Range(low, high)
                    if low > high
                        || !(100..=599).contains(&low)
                        || !(100..=599).contains(&high) =>
                {
                    return Err(WebhookConfigError::InvalidStatusRange { low, high });
                }
                _ => {}
            }
        }
        let statuses = if self.statuses.is_empty() {
            vec![StatusRule::Range(200, 299)]
        } else {
            self.statuses
        };
        for (i, c) in self.criteria.iter().enumerate() {
            check_pointer(&c.pointer)?;
            if self
                .criteria
                .iter()
                .take(i)
                .any(|earlier| earlier.pointer == c.pointer)
            {
                return Err(WebhookConfigError::DuplicateJsonPointer {
                    pointer: c.pointer.clone(),
                });
            }
        }
        if self.timeout.is_zero() {
            return Err(WebhookConfigError::ZeroTimeout);
        }
        if self.max_response_bytes == 0 {
            return Err(WebhookConfigError::ZeroMaxResponseBytes);
        }
        let signing = match self.secret {
            None => None,
            Some(secret) => {
                if secret.expose().is_empty() {
                    return Err(WebhookConfigError::EmptySecret);
                }
                let header = HeaderName::from_bytes(self.signature_header.trim().as_bytes())
                    .map_err(|_| WebhookConfigError::InvalidSignatureHeader {
                        header: self.signature_header.clone(),
                        problem: "it is not a valid HTTP header name",
                    })?;
                if RESERVED_HEADERS.contains(&header.as_str()) {
                    return Err(WebhookConfigError::InvalidSignatureHeader {
                        header: self.signature_header,
                        problem: "the gate sets this header itself",
                    });
                }
                Some(Signing { secret, header })
            }
        };
        let mut roots = Vec::new();
        for (i, pem) in self.root_cas.iter().enumerate() {
            roots.extend(parse_root_ca(i + 1, pem)?);
        }
        if url.scheme() == "https" && !self.built_in_roots && roots.is_empty() {
            return Err(WebhookConfigError::NoTrustedRoots);
        }
        let root_ca_count = roots.len();
        let mut client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("promotion-gates/", env!("CARGO_PKG_VERSION")))
            .tls_built_in_root_certs(self.built_in_roots);
        if !self.system_proxy {
            client = client.no_proxy();
        }
        for cert in roots {
            client = client.add_root_certificate(cert);
        }
        let client = client.build().map_err(|e| WebhookConfigError::Client {
            message: report_chain(&e.without_url()),
        })?;
        Ok(WebhookGate {
            name,
            kind: self.kind,
            url,
            shown_url,
            client,
            statuses,
            criteria: self.criteria,
            timeout: self.timeout,
            max_response_bytes: self.max_response_bytes,
            signing,
            root_ca_count,
            built_in_roots: self.built_in_roots,
        })
    }
}

/// Checks an RFC 6901 pointer: empty, or `/`-separated tokens where `~` only starts `~0`/`~1`.
fn check_pointer(pointer: &str) -> Result<(), WebhookConfigError> {
    let problem = if !pointer.is_empty() && !pointer.starts_with('/') {
        Some("it must be empty or start with `/`")
    } else {
        let mut chars = pointer.chars();
        let mut bad = None;
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                bad = Some("`~` must be followed by 0 or 1 (`~0` is `~`, `~1` is `/`)");
                break;
            }
        }
        bad
    };
    match problem {
        Some(problem) => Err(WebhookConfigError::InvalidJsonPointer {
            pointer: pointer.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

/// The certificates of the `index`-th root CA PEM, each checked to be usable as a trust anchor.
fn parse_root_ca(
    index: usize,
    pem: &[u8],
) -> Result<Vec<reqwest::Certificate>, WebhookConfigError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let invalid = |message: String| WebhookConfigError::InvalidRootCa { index, message };
    let mut out = Vec::new();
    for (n, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert =
            cert.map_err(|e| invalid(format!("certificate {} is not valid PEM: {e}", n + 1)))?;
        rustls::RootCertStore::empty()
            .add(cert.clone())
            .map_err(|e| {
                invalid(format!(
                    "certificate {} cannot be a trusted root: {e}",
                    n + 1
                ))
            })?;
        let cert = reqwest::Certificate::from_der(cert.as_ref())
            .map_err(|e| invalid(format!("certificate {}: {e}", n + 1)))?;
        out.push(cert);
    }
    if out.is_empty() {
        return Err(invalid(
            "it holds no `-----BEGIN CERTIFICATE-----` block".to_owned(),
        ));
    }
    Ok(out)
}

/// The URL as shown in evidence, messages and `Debug`: a password is replaced by `***`.
fn redact_url(url: &Url) -> String {
    if url.password().is_some() {
        let mut shown = url.clone();
        if shown.set_password(Some("***")).is_ok() {
            return shown.to_string();
        }
    }
    url.to_string()
}

/// [`redact_url`] for text that may not parse: everything between `//` and `@` is hidden.
fn redact_url_text(text: &str) -> String {
    match Url::parse(text.trim()) {
        Ok(url) => redact_url(&url),
        Err(_) => match (text.find("//"), text.rfind('@')) {
            (Some(start), Some(at)) if at > start => {
                format!(
                    "{}//***{}",
                    text.get(..start).unwrap_or(""),
                    text.get(at..).unwrap_or("")
                )
            }
            _ => text.to_owned(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The gate

#[derive(Clone)]
struct Signing {
    secret: Secret,
    header: HeaderName,
}

/// Asks an HTTP(S) endpoint whether a release may proceed; see the [module docs](self).
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
    name: GateName,
    kind: GateKind,
    url: Url,
    shown_url: String,
    client: reqwest::Client,
    statuses: Vec<StatusRule>,
    criteria: Vec<Criterion>,
    timeout: Duration,
    max_response_bytes: usize,
    signing: Option<Signing>,
    root_ca_count: usize,
    built_in_roots: bool,
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
fn json_equal(a: &Value, b: &Value) -> bool {
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
fn bounded(value: &Value) -> Value {
    let text = value.to_string();
    if text.len() <= ACTUAL_MAX_BYTES {
        value.clone()
    } else {
        Value::String(format!("<{} bytes of JSON>", text.len()))
    }
}

/// The first `max` characters of `text`, with `…` when cut.
fn excerpt(text: &str, max: usize) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Independent computation of the documented scheme.
        let mut m = HmacSha256::new_from_slice(b"key").unwrap();
        m.update(b"1700000000.{\"a\":1}");
        let expected = hex::encode(m.finalize().into_bytes());
        assert_eq!(
            sign(b"key", 1_700_000_000, b"{\"a\":1}"),
            format!("t=1700000000,v1={expected}")
        );
        // The primitive itself, against RFC 4231 test case 2.
        let mut m = HmacSha256::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_accepts_the_signature_within_tolerance_in_both_directions() {
        let h = sign(b"k", 1000, b"body");
        let tol = Duration::from_secs(300);
        assert_eq!(verify_signature(b"k", &h, b"body", at(1000), tol), Ok(1000));
        assert_eq!(verify_signature(b"k", &h, b"body", at(1300), tol), Ok(1000));
        assert_eq!(verify_signature(b"k", &h, b"body", at(700), tol), Ok(1000));
        assert_eq!(
            verify_signature(b"k", &h, b"body", at(1301), tol),
            Err(SignatureError::OutsideTolerance {
                timestamp: 1000,
                now: 1301,
                distance_secs: 301,
                tolerance_secs: 300
            })
        );
        assert!(matches!(
            verify_signature(b"k", &h, b"body", at(699), tol),
            Err(SignatureError::OutsideTolerance { .. })
        ));
    }

    #[test]
    fn verify_rejects_changed_body_secret_or_timestamp() {
        let h = sign(b"k", 1000, b"body");
        let tol = Duration::from_secs(300);
        let now = at(1000);
        assert_eq!(
            verify_signature(b"k", &h, b"bodY", now, tol),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"K", &h, b"body", now, tol),
            Err(SignatureError::Mismatch)
        );
        // The same MAC under another timestamp: the timestamp is signed.
        let moved = h.replace("t=1000", "t=1001");
        assert_eq!(
            verify_signature(b"k", &moved, b"body", now, tol),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn verify_parses_the_header_strictly_but_ignores_unknown_keys() {
        let tol = Duration::from_secs(300);
        let now = at(1000);
        let good = sign(b"k", 1000, b"x");
        let v1 = good.split_once(",v1=").unwrap().1;
        // Unknown keys and several v1 values (one of them right) are fine, in any order.
        let header = format!("v0=abc, v1={}, t=1000 ,v1={v1}", "00".repeat(32));
        assert_eq!(verify_signature(b"k", &header, b"x", now, tol), Ok(1000));
        assert_eq!(
            verify_signature(b"k", &format!("v1={v1}"), b"x", now, tol),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            verify_signature(b"k", "t=1000", b"x", now, tol),
            Err(SignatureError::MissingSignature)
        );
        assert!(matches!(
            verify_signature(b"k", &format!("t=1000,t=1000,v1={v1}"), b"x", now, tol),
            Err(SignatureError::Malformed(m)) if m.contains("twice")
        ));
        assert!(matches!(
            verify_signature(b"k", &format!("t=-5,v1={v1}"), b"x", now, tol),
            Err(SignatureError::Malformed(m)) if m.contains("`-5`")
        ));
        assert!(matches!(
            verify_signature(b"k", "t=1000,v1=zz", b"x", now, tol),
            Err(SignatureError::Malformed(m)) if m.contains("not hex")
        ));
        assert!(matches!(
            verify_signature(b"k", "garbage", b"x", now, tol),
            Err(SignatureError::Malformed(m)) if m.contains("`garbage`")
        ));
        // A truncated MAC does not match.
        let short = format!("t=1000,v1={}", v1.get(..32).unwrap());
        assert_eq!(
            verify_signature(b"k", &short, b"x", now, tol),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn json_numbers_compare_by_value() {
        assert!(json_equal(&json!(1), &json!(1.0)));
        assert!(json_equal(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert!(!json_equal(&json!(1), &json!(2)));
        assert!(!json_equal(&json!(true), &json!("true")));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(json_equal(&json!(-3), &json!(-3)));
        assert!(json_equal(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!json_equal(&json!(u64::MAX), &json!(u64::MAX - 1)));
    }

    #[test]
    fn pointers_are_checked() {
        assert!(check_pointer("").is_ok());
        assert!(check_pointer("/a/b~0c~1d").is_ok());
        assert!(matches!(
            check_pointer("approved"),
            Err(WebhookConfigError::InvalidJsonPointer { problem, .. }) if problem.contains("start with")
        ));
        assert!(matches!(
            check_pointer("/a~2"),
            Err(WebhookConfigError::InvalidJsonPointer { .. })
        ));
        assert!(matches!(
            check_pointer("/a~"),
            Err(WebhookConfigError::InvalidJsonPointer { .. })
        ));
    }

    #[test]
    fn passwords_in_urls_are_hidden() {
        let url = Url::parse("https://bot:hunter2@example.com/x").unwrap();
        assert_eq!(redact_url(&url), "https://bot:***@example.com/x");
        assert_eq!(
            redact_url_text("https://bot:hunter2@exa mple.com/x"),
            "https://***@exa mple.com/x"
        );
        let err = WebhookGate::builder("https://bot:hunter2@exa mple.com/x")
            .build()
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let gate = WebhookGate::builder("https://bot:hunter2@example.com/x")
            .build()
            .unwrap();
        assert_eq!(gate.url(), "https://bot:***@example.com/x");
        assert!(!format!("{gate:?}").contains("hunter2"));
    }

    #[test]
    fn excerpts_are_cut_on_characters() {
        assert_eq!(excerpt("héllo", 2), "hé…");
        assert_eq!(excerpt("hé", 2), "hé");
    }
}
