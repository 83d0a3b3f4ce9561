//! Machine identities from OIDC ID tokens (JWTs), as CI systems issue them: GitHub Actions
//! (`iss` `https://token.actions.githubusercontent.com`, claims `repository`, `ref`, `workflow`,
//! `environment`, `job_workflow_ref`…) and GitLab (`iss` `https://gitlab.com`, claims
//! `project_path`, `ref`, `ref_type`, `environment`, `pipeline_source`…).
//!
//! [`Roster::verify_oidc`] checks, in this order, and refuses with a typed [`OidcError`]:
//!
//! 1. the header's `alg` is an asymmetric algorithm (RS*, PS*, ES256, ES384, EdDSA): `none` and
//!    the HMAC family (`HS*`, where a public key used as the secret would forge tokens) are
//!    refused before any key is touched;
//! 2. the key is found in the [`Jwks`] by `kid` (or is the only key when the token names none),
//!    and the token's `alg` is the key's own: the JWK's `alg` when it gives one, else the one its
//!    type and curve allow;
//! 3. the signature (by the `jsonwebtoken` crate, with that one algorithm allowed);
//! 4. `iss` is an issuer the roster lists, `aud` holds that machine's audience;
//! 5. `exp` is present and `now` is not past it, `nbf` and `iat` are not after `now`, each with
//!    the given leeway. `now` is passed in, never read from the clock;
//! 6. every claim rule of the machine matches exactly (string claims only). Exactly one machine
//!    must match; that machine's [`Principal`] is the answer, marked
//!    [`Verification::Oidc`] with the roster's digest and the token's `iss` and `sub`.
//!
//! The key set is read from JSON (the issuer's `/.well-known/jwks` document, saved to a file);
//! symmetric (`oct`) keys in it are refused.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use promotion_core::{Principal, Verification};
use serde_json::{Map, Value};

use crate::roster::Machine;
use crate::Roster;

/// The leeway [`Roster::verify_oidc`] callers are expected to pass unless they have a reason:
/// one minute of clock skew between the issuer and this host.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// An issuer's public signing keys, asymmetric only.
#[derive(Debug, Clone)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The key set JSON is not a JWKS, or holds a key that cannot be used.
    #[error("invalid JWKS: {0}")]
    Jwks(String),
    /// The token is not three base64url parts with a JSON header and claims.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header's `alg` is `none`, symmetric (`HS*`) or unknown.
    #[error("token algorithm {0:?} is refused: only asymmetric signatures (RS*, PS*, ES256, ES384, EdDSA) are accepted")]
    RefusedAlgorithm(String),
    /// No key in the set has the token's `kid`.
    #[error("no key with kid {0:?} in the JWKS")]
    UnknownKey(String),
    /// The token's `alg` is not the one its key is for.
    #[error("token algorithm {token:?} does not match the key's {key}")]
    AlgorithmMismatch {
        #[allow(missing_docs)]
        token: String,
        #[allow(missing_docs)]
        key: String,
    },
    /// The signature does not verify with the key.
    #[error("the token's signature does not verify: {0}")]
    BadSignature(String),
    /// No machine in the roster trusts this issuer.
    #[error("issuer {0:?} is not in the roster")]
    UnknownIssuer(String),
    /// The token is not for any audience the roster's machines of this issuer accept.
    #[error(
        "token audience {found:?} is not one the roster accepts from this issuer ({expected:?})"
    )]
    WrongAudience {
        /// The audiences the roster's machines for this issuer expect.
        expected: Vec<String>,
        /// The token's `aud`.
        found: Vec<String>,
    },
    /// `exp` is missing or not an integer.
    #[error("the token has no integer `exp`")]
    NoExpiry,
    /// `now` is past `exp` plus the leeway.
    #[error("the token expired at {exp} (unix seconds), it is now {now}")]
    Expired {
        #[allow(missing_docs)]
        exp: i64,
        #[allow(missing_docs)]
        now: i64,
    },
    /// `nbf` or `iat` is after `now` plus the leeway.
    #[error("the token's `{claim}` is {value} (unix seconds), after now ({now})")]
    NotYetValid {
        /// `nbf` or `iat`.
        claim: &'static str,
        #[allow(missing_docs)]
        value: i64,
        #[allow(missing_docs)]
        now: i64,
    },
    /// The issuer and audience are known, but no machine's claim rules all match.
    #[error("no machine rule matches the token: {}", .mismatches.join("; "))]
    NoMatchingRule {
        /// For each candidate machine, the first rule that failed: `ci-web: repository is
        /// "acme/evil", expected "acme/web"`.
        mismatches: Vec<String>,
    },
    /// More than one machine's rules match: the roster is ambiguous for this token.
    #[error("the token matches more than one machine: {}", .0.join(", "))]
    Ambiguous(Vec<String>),
}

impl Jwks {
    /// Reads a JWKS document (`{"keys":[…]}`); refuses symmetric keys and keys whose `alg` is
    /// symmetric.
    pub fn from_json(json: &str) -> Result<Jwks, OidcError> {
        let set: JwkSet = serde_json::from_str(json).map_err(|e| OidcError::Jwks(e.to_string()))?;
        for (i, key) in set.keys.iter().enumerate() {
            let kid = key.common.key_id.as_deref().unwrap_or("(no kid)");
            if matches!(key.algorithm, AlgorithmParameters::OctetKey(_)) {
                return Err(OidcError::Jwks(format!(
                    "keys[{i}] ({kid}) is a symmetric key; an issuer's key set holds public keys only"
                )));
            }
            if let Some(alg) = key.common.key_algorithm {
                if matches!(
                    alg,
                    KeyAlgorithm::HS256 | KeyAlgorithm::HS384 | KeyAlgorithm::HS512
                ) {
                    return Err(OidcError::Jwks(format!(
                        "keys[{i}] ({kid}) declares the symmetric algorithm {alg:?}"
                    )));
                }
            }
        }
        Ok(Jwks { keys: set.keys })
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn b64_json(part: &str, what: &str) -> Result<Map<String, Value>, OidcError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| OidcError::Malformed(format!("{what} is not base64url: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| OidcError::Malformed(format!("{what} is not a JSON object: {e}")))
}

/// The algorithms a key of this type may be used with, in the order tried when the token's
/// header is checked; the JWK's own `alg`, when present, narrows it to one.
fn key_algorithms(key: &Jwk) -> Result<Vec<Algorithm>, OidcError> {
    let by_type = match &key.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => Vec::new(),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => Vec::new(),
        },
        AlgorithmParameters::OctetKey(_) => Vec::new(),
    };
    match key.common.key_algorithm {
        None => Ok(by_type),
        Some(declared) => {
            let alg = match declared {
                KeyAlgorithm::RS256 => Some(Algorithm::RS256),
                KeyAlgorithm::RS384 => Some(Algorithm::RS384),
                KeyAlgorithm::RS512 => Some(Algorithm::RS512),
                KeyAlgorithm::PS256 => Some(Algorithm::PS256),
                KeyAlgorithm::PS384 => Some(Algorithm::PS384),
                KeyAlgorithm::PS512 => Some(Algorithm::PS512),
                KeyAlgorithm::ES256 => Some(Algorithm::ES256),
                KeyAlgorithm::ES384 => Some(Algorithm::ES384),
                KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
                _ => None,
            }
            .ok_or_else(|| {
                OidcError::Jwks(format!(
                    "key algorithm {declared:?} is not an accepted signing algorithm"
                ))
            })?;
            Ok(by_type.into_iter().filter(|a| *a == alg).collect())
        }
    }
}

fn parse_alg(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

fn int_claim(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    claims.get(name).and_then(Value::as_i64)
}

/// The first rule of `machine` the claims do not meet, described.
fn mismatch(machine: &Machine, claims: &Map<String, Value>) -> Option<String> {
    machine
        .claims
        .iter()
        .find_map(|(claim, expected)| match claims.get(claim) {
            Some(Value::String(found)) if found == expected => None,
            Some(Value::String(found)) => Some(format!(
                "{}: {claim:?} is {found:?}, expected {expected:?}",
                machine.id
            )),
            Some(other) => Some(format!(
                "{}: {claim:?} is {:?}, not a string (expected {expected:?})",
                machine.id,
                other.to_string()
            )),
            None => Some(format!("{}: the token has no {claim:?} claim", machine.id)),
        })
}

impl Roster {
    /// Verifies an OIDC ID token and maps it to the roster's machine principal; see the
    /// [module docs](crate::oidc) for every check, in order. `now` is the verifier's time;
    /// `leeway` tolerates clock skew on `exp`, `nbf` and `iat` (usually [`DEFAULT_LEEWAY`]).
    pub fn verify_oidc(
        &self,
        token: &str,
        jwks: &Jwks,
        now: DateTime<Utc>,
        leeway: Duration,
    ) -> Result<Principal, OidcError> {
        let token = token.trim();
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OidcError::Malformed(
                "a JWT has three dot-separated parts".into(),
            ));
        };
        let header = b64_json(header, "the header")?;
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| OidcError::Malformed("the header has no string `alg`".into()))?;
        let alg =
            parse_alg(alg_name).ok_or_else(|| OidcError::RefusedAlgorithm(alg_name.to_owned()))?;

        let key = match header.get("kid").and_then(Value::as_str) {
            Some(kid) => jwks
                .keys
                .iter()
                .find(|k| k.common.key_id.as_deref() == Some(kid))
                .ok_or_else(|| OidcError::UnknownKey(kid.to_owned()))?,
            None => match jwks.keys.as_slice() {
                [only] => only,
                _ => return Err(OidcError::UnknownKey("(none in the token)".into())),
            },
        };
        let allowed = key_algorithms(key)?;
        if !allowed.contains(&alg) {
            return Err(OidcError::AlgorithmMismatch {
                token: alg_name.to_owned(),
                key: allowed
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join("/"),
            });
        }
        let decoding = DecodingKey::from_jwk(key).map_err(|e| OidcError::Jwks(e.to_string()))?;
        // The signature only: the time and audience checks below use `now`, not the clock.
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &decoding, &validation)
            .map_err(|e| OidcError::BadSignature(e.to_string()))?
            .claims;

        let issuer = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        let of_issuer: Vec<&Machine> = self
            .machines()
            .iter()
            .filter(|m| m.issuer == issuer)
            .collect();
        if of_issuer.is_empty() {
            return Err(OidcError::UnknownIssuer(issuer.to_owned()));
        }
        let audiences: Vec<String> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let candidates: Vec<&Machine> = of_issuer
            .iter()
            .copied()
            .filter(|m| audiences.contains(&m.audience))
            .collect();
        if candidates.is_empty() {
            return Err(OidcError::WrongAudience {
                expected: of_issuer.iter().map(|m| m.audience.clone()).collect(),
                found: audiences,
            });
        }

        let now_s = now.timestamp();
        let slack = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
        let exp = int_claim(&claims, "exp").ok_or(OidcError::NoExpiry)?;
        if now_s > exp.saturating_add(slack) {
            return Err(OidcError::Expired { exp, now: now_s });
        }
        for claim in ["nbf", "iat"] {
            if let Some(value) = int_claim(&claims, claim) {
                if value > now_s.saturating_add(slack) {
                    return Err(OidcError::NotYetValid {
                        claim,
                        value,
                        now: now_s,
                    });
                }
            }
        }

        let mut mismatches = Vec::new();
        let mut matched = Vec::new();
        for machine in candidates {
            match mismatch(machine, &claims) {
                None => matched.push(machine),
                Some(why) => mismatches.push(why),
            }
        }
        match matched.as_slice() {
            [] => Err(OidcError::NoMatchingRule { mismatches }),
            [one] => Ok(one.principal().verified_by(Verification::Oidc {
                roster: self.digest(),
                issuer: issuer.to_owned(),
                subject: claims
                    .get("sub")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })),
            many => Err(OidcError::Ambiguous(
                many.iter().map(|m| m.id.to_string()).collect(),
            )),
        }
    }
}
