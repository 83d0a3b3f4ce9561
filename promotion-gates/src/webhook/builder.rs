//! Configuring a [`WebhookGate`]: URL, headers, accepted statuses, JSON criteria, signing, TLS
//! roots and limits, every setting checked when the gate is built ([`WebhookConfigError`] names
//! it). URLs are shown with their password replaced.

use std::fmt;
use std::time::Duration;

use promotion_core::{report_chain, GateKind, GateName, InvalidName};
use reqwest::header::HeaderName;
use serde_json::Value;
use url::Url;

use crate::secrets::Secret;

use super::{Signing, WebhookGate, RESERVED_HEADERS};

/// A webhook gate configured wrongly; returned by [`WebhookGateBuilder::build`]. Each variant
/// names the setting that is wrong.
#[allow(missing_docs)] // the fields are named for what they hold
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
    DuplicateJsonPointer { pointer: String },
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
pub(super) enum StatusRule {
    Code(u16),
    Range(u16, u16),
}

impl StatusRule {
    pub(super) fn accepts(self, code: u16) -> bool {
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
pub(super) struct Criterion {
    pub(super) pointer: String,
    pub(super) expected: Value,
}

/// Builder for [`WebhookGate`]; every setting is validated in
/// [`build`](WebhookGateBuilder::build).
pub struct WebhookGateBuilder {
    pub(super) name: String,
    pub(super) kind: GateKind,
    pub(super) url: String,
    pub(super) statuses: Vec<StatusRule>,
    pub(super) criteria: Vec<Criterion>,
    pub(super) timeout: Duration,
    pub(super) max_response_bytes: usize,
    pub(super) root_cas: Vec<Vec<u8>>,
    pub(super) built_in_roots: bool,
    pub(super) secret: Option<Secret>,
    pub(super) signature_header: String,
    pub(super) system_proxy: bool,
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
    /// (default [`DEFAULT_TIMEOUT`](super::DEFAULT_TIMEOUT)). Past it the evaluation is [`GateError::TimedOut`](promotion_core::GateError::TimedOut).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Reads at most `bytes` of the answer (default [`DEFAULT_MAX_RESPONSE_BYTES`](super::DEFAULT_MAX_RESPONSE_BYTES)).
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
    /// Sends the signature in this header (default [`DEFAULT_SIGNATURE_HEADER`](super::DEFAULT_SIGNATURE_HEADER)).
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
pub(super) fn check_pointer(pointer: &str) -> Result<(), WebhookConfigError> {
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
pub(super) fn redact_url(url: &Url) -> String {
    if url.password().is_some() {
        let mut shown = url.clone();
        if shown.set_password(Some("***")).is_ok() {
            return shown.to_string();
        }
    }
    url.to_string()
}

/// [`redact_url`] for text that may not parse: everything between `//` and `@` is hidden.
pub(super) fn redact_url_text(text: &str) -> String {
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
