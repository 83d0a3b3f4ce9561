//! HMAC-SHA256 request signatures: the header a [`WebhookGate`] sends ([`sign`]) and the check a
//! receiver makes ([`verify_signature`]), with a timestamp so that old requests cannot be replayed.

use std::time::{Duration, SystemTime};

use hmac::Mac;

use super::{excerpt, HmacSha256};

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

pub(super) fn keyed(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (longer ones are hashed), so `new_from_slice` cannot
    // fail; the all-zero key is only there to avoid a panic path.
    let mut m = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()));
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// Checks a signature header made by a [`WebhookGate`](super::WebhookGate) (or by [`sign`]) as a receiver should,
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
