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
//! [`GateError::Misconfigured`](promotion_core::GateError::Misconfigured) instead of panicking.
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
//! be decided is a [`GateError`](promotion_core::GateError), which the engine retries per the gate's
//! [`GatePolicy`](promotion_core::GatePolicy) (retries with backoff). Keep the gate's timeout
//! below the policy's timeout, which runs on the engine's clock.
//!
//! | what happened                                              | result                                  |
//! |------------------------------------------------------------|-----------------------------------------|
//! | accepted status, every criterion met                       | [`Verdict::Pass`](promotion_core::Verdict::Pass)                       |
//! | accepted status, a criterion not met (field false, absent, different) | [`Verdict::Fail`](promotion_core::Verdict::Fail), naming each  |
//! | status not accepted: `1xx`, `3xx`, `4xx` other than 408/429 | [`Verdict::Fail`](promotion_core::Verdict::Fail): the endpoint said no |
//! | `5xx`, `408 Request Timeout`, `429 Too Many Requests` (unless accepted) | [`GateError::Unavailable`](promotion_core::GateError::Unavailable) (retried) |
//! | connection refused, reset, DNS failure, body cut off        | [`GateError::Unavailable`](promotion_core::GateError::Unavailable) (retried)    |
//! | TLS handshake failed (untrusted or expired certificate, wrong host name) | [`GateError::Unavailable`](promotion_core::GateError::Unavailable), saying why |
//! | no complete answer within the timeout                       | [`GateError::TimedOut`](promotion_core::GateError::TimedOut) (retried)       |
//! | accepted status, body larger than the limit, or not JSON when criteria need it | [`GateError::InvalidInput`](promotion_core::GateError::InvalidInput) naming the URL |
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
//! [`GateError::Unavailable`](promotion_core::GateError::Unavailable) whose message says the certificate is not trusted and why
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

use std::time::Duration;

use hmac::Hmac;
use sha2::Sha256;

mod builder;
mod gate;
mod signing;

#[cfg(test)]
use builder::{check_pointer, redact_url, redact_url_text};
use builder::{Criterion, StatusRule};
pub use builder::{WebhookConfigError, WebhookGateBuilder};
#[cfg(test)]
use gate::json_equal;
pub use gate::WebhookGate;
use gate::{excerpt, Signing};
pub use signing::{sign, verify_signature, SignatureError};

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

#[cfg(test)]
mod tests;
