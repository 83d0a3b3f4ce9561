#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! OIDC ID tokens for machines: tokens shaped like GitHub Actions' and GitLab's, signed with
//! locally made keys (ES256 made here, RS256 from `fixtures/rsa-test-key.pem`, a key generated
//! for these tests with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`), and
//! the attacks a token forger tries first.
//!
//! Claim shapes: GitHub's "About security hardening with OpenID Connect" (the example token:
//! `sub` `repo:ORG/REPO:environment:NAME`, `repository`, `repository_owner`, `ref`,
//! `workflow`, `environment`, `job_workflow_ref`, `iss`, `aud`, `iat`, `nbf`, `exp`) and
//! GitLab's "ID token authentication" (`namespace_path`, `project_path`, `ref`, `ref_type`,
//! `environment`, `pipeline_source`, `iss` `https://gitlab.com`). Values are made up.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use promotion_identity::{Jwks, OidcError, Roster, DEFAULT_LEEWAY};
use rand_core::OsRng;
use serde_json::{json, Value};

const RSA_PEM: &str = include_str!("fixtures/rsa-test-key.pem");
const GITHUB: &str = "https://token.actions.githubusercontent.com";
const GITLAB: &str = "https://gitlab.com";

fn now() -> DateTime<Utc> {
    "2026-12-07T22:00:00Z".parse().unwrap()
}

struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    kid: String,
}

impl Signer {
    fn es256(kid: &str) -> Signer {
        let secret = p256::SecretKey::random(&mut OsRng);
        let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        Signer {
            key: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
            alg: Algorithm::ES256,
            kid: kid.into(),
        }
    }

    fn rs256(kid: &str) -> Signer {
        Signer {
            key: EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).unwrap(),
            alg: Algorithm::RS256,
            kid: kid.into(),
        }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

fn jwks(signers: &[&Signer]) -> Jwks {
    let set = JwkSet {
        keys: signers.iter().map(|s| s.jwk()).collect(),
    };
    Jwks::from_json(&serde_json::to_string(&set).unwrap()).unwrap()
}

fn roster() -> Roster {
    let toml = format!(
        r#"
[[machines]]
id = "ci-web-prod"
groups = ["ci", "deployers"]
issuer = "{GITHUB}"
audience = "https://promotion.acme.example"
[machines.claims]
repository = "acme/web"
ref = "refs/heads/main"
workflow = "release"
environment = "production"

[[machines]]
id = "gitlab-api"
groups = ["ci"]
issuer = "{GITLAB}"
audience = "promotion"
[machines.claims]
project_path = "acme/platform/api"
ref = "main"
ref_type = "branch"
"#
    );
    Roster::parse(toml.as_bytes(), "roster.toml").unwrap()
}

fn github_claims() -> Value {
    let t = now().timestamp();
    json!({
        "jti": "8d1c3a52-5b0e-4f7c-9a63-2f4de0b1c7aa",
        "sub": "repo:acme/web:environment:production",
        "environment": "production",
        "aud": "https://promotion.acme.example",
        "ref": "refs/heads/main",
        "sha": "3f786850e387550fdab836ed7e6dc881de23001b",
        "repository": "acme/web",
        "repository_owner": "acme",
        "repository_visibility": "private",
        "repository_id": "51234",
        "repository_owner_id": "9001",
        "run_id": "7788990011",
        "run_number": "412",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "actor": "release-bot",
        "workflow": "release",
        "event_name": "push",
        "ref_type": "branch",
        "job_workflow_ref": "acme/web/.github/workflows/release.yml@refs/heads/main",
        "iss": GITHUB,
        "nbf": t - 20,
        "iat": t - 10,
        "exp": t + 290,
    })
}

fn gitlab_claims() -> Value {
    let t = now().timestamp();
    json!({
        "namespace_id": "72",
        "namespace_path": "acme/platform",
        "project_id": "5120",
        "project_path": "acme/platform/api",
        "user_id": "31",
        "user_login": "release-bot",
        "pipeline_id": "998877",
        "pipeline_source": "push",
        "job_id": "4455667",
        "ref": "main",
        "ref_type": "branch",
        "ref_path": "refs/heads/main",
        "ref_protected": "true",
        "environment": "production",
        "environment_protected": "true",
        "jti": "0c6e9a1e-77b2-4d3a-8f51-3a9e52d0b7c4",
        "iss": GITLAB,
        "iat": t - 5,
        "nbf": t - 5,
        "exp": t + 295,
        "sub": "project_path:acme/platform/api:ref_type:branch:ref:main",
        "aud": "promotion",
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

#[test]
fn a_github_actions_token_maps_to_its_machine_with_the_roster_groups() {
    let gh = Signer::es256("gh-1");
    let token = gh.sign(&github_claims());
    let who = roster()
        .verify_oidc(&token, &jwks(&[&gh]), now(), DEFAULT_LEEWAY)
        .unwrap();
    assert_eq!(who.id, "ci-web-prod");
    assert!(who.in_group("deployers"));
    // recorded as OIDC-verified, naming the roster, the issuer and the token's subject
    assert_eq!(
        who.verified,
        Some(promotion_core::Verification::Oidc {
            roster: roster().digest(),
            issuer: GITHUB.into(),
            subject: "repo:acme/web:environment:production".into(),
        })
    );
}

#[test]
fn a_gitlab_token_maps_to_its_machine() {
    let gl = Signer::rs256("gl-rsa");
    let gh = Signer::es256("gh-1");
    let token = gl.sign(&gitlab_claims());
    let who = roster()
        .verify_oidc(&token, &jwks(&[&gh, &gl]), now(), DEFAULT_LEEWAY)
        .unwrap();
    assert_eq!(who.id, "gitlab-api");
    // GitHub's audience is an array in some configurations: a list holding ours is accepted.
    let token = gh.sign(&with(
        github_claims(),
        "aud",
        json!(["other", "https://promotion.acme.example"]),
    ));
    let who = roster()
        .verify_oidc(&token, &jwks(&[&gh, &gl]), now(), DEFAULT_LEEWAY)
        .unwrap();
    assert_eq!(who.id, "ci-web-prod");
}

#[test]
fn expiry_not_before_and_issued_at_are_checked_against_the_given_time_with_leeway() {
    let gh = Signer::es256("gh-1");
    let keys = jwks(&[&gh]);
    let r = roster();
    let t = now().timestamp();

    let expired = gh.sign(&with(github_claims(), "exp", json!(t - 30)));
    // Within one minute of leeway it still counts; with none it is expired.
    assert!(r
        .verify_oidc(&expired, &keys, now(), DEFAULT_LEEWAY)
        .is_ok());
    assert_eq!(
        r.verify_oidc(&expired, &keys, now(), Duration::ZERO)
            .unwrap_err(),
        OidcError::Expired {
            exp: t - 30,
            now: t
        }
    );
    let long_expired = gh.sign(&with(github_claims(), "exp", json!(t - 3600)));
    assert!(matches!(
        r.verify_oidc(&long_expired, &keys, now(), DEFAULT_LEEWAY),
        Err(OidcError::Expired { .. })
    ));

    let mut no_exp = github_claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        r.verify_oidc(&gh.sign(&no_exp), &keys, now(), DEFAULT_LEEWAY)
            .unwrap_err(),
        OidcError::NoExpiry
    );

    let early = gh.sign(&with(github_claims(), "nbf", json!(t + 600)));
    assert!(matches!(
        r.verify_oidc(&early, &keys, now(), DEFAULT_LEEWAY),
        Err(OidcError::NotYetValid { claim: "nbf", .. })
    ));
    let future_iat = gh.sign(&with(github_claims(), "iat", json!(t + 600)));
    assert!(matches!(
        r.verify_oidc(&future_iat, &keys, now(), DEFAULT_LEEWAY),
        Err(OidcError::NotYetValid { claim: "iat", .. })
    ));
}

#[test]
fn wrong_audience_and_wrong_issuer_are_refused() {
    let gh = Signer::es256("gh-1");
    let keys = jwks(&[&gh]);
    let r = roster();
    let other_aud = gh.sign(&with(github_claims(), "aud", json!("sts.amazonaws.com")));
    assert!(matches!(
        r.verify_oidc(&other_aud, &keys, now(), DEFAULT_LEEWAY),
        Err(OidcError::WrongAudience { .. })
    ));
    let other_iss = gh.sign(&with(
        github_claims(),
        "iss",
        json!("https://token.actions.githubusercontent.com.evil.example"),
    ));
    assert!(matches!(
        r.verify_oidc(&other_iss, &keys, now(), DEFAULT_LEEWAY),
        Err(OidcError::UnknownIssuer(i)) if i.ends_with("evil.example")
    ));
}

#[test]
fn a_token_signed_by_another_key_is_refused() {
    let trusted = Signer::es256("gh-1");
    // Same kid, different key: the forger copies the header.
    let forger = Signer::es256("gh-1");
    let token = forger.sign(&github_claims());
    assert!(matches!(
        roster().verify_oidc(&token, &jwks(&[&trusted]), now(), DEFAULT_LEEWAY),
        Err(OidcError::BadSignature(_))
    ));
    let unknown_kid = Signer::es256("not-published").sign(&github_claims());
    assert_eq!(
        roster()
            .verify_oidc(&unknown_kid, &jwks(&[&trusted]), now(), DEFAULT_LEEWAY)
            .unwrap_err(),
        OidcError::UnknownKey("not-published".into())
    );
    // The kid comes from an unverified header: its error message must not carry escapes.
    let hostile = Signer::es256("\u{1b}[2J\u{1b}[32mAPPROVED").sign(&github_claims());
    let err = roster()
        .verify_oidc(&hostile, &jwks(&[&trusted]), now(), DEFAULT_LEEWAY)
        .unwrap_err();
    assert!(matches!(err, OidcError::UnknownKey(_)));
    assert!(!err.to_string().contains('\u{1b}'), "{err}");
    // A changed claim after signing (the repository swapped in the payload).
    let good = trusted.sign(&github_claims());
    let parts: Vec<&str> = good.split('.').collect();
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&with(github_claims(), "actor", json!("mallory"))).unwrap());
    let tampered = format!("{}.{}.{}", parts[0], body, parts[2]);
    assert!(matches!(
        roster().verify_oidc(&tampered, &jwks(&[&trusted]), now(), DEFAULT_LEEWAY),
        Err(OidcError::BadSignature(_))
    ));
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[test]
fn alg_none_is_refused() {
    let gh = Signer::es256("gh-1");
    for alg in ["none", "None", "NONE"] {
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT", "kid": "gh-1"})),
            b64(&github_claims())
        );
        assert_eq!(
            roster()
                .verify_oidc(&token, &jwks(&[&gh]), now(), DEFAULT_LEEWAY)
                .unwrap_err(),
            OidcError::RefusedAlgorithm(alg.into())
        );
    }
}

#[test]
fn hs256_with_the_public_key_as_secret_is_refused() {
    let gl = Signer::rs256("gl-rsa");
    let keys = jwks(&[&gl]);
    // The classic confusion: HMAC keyed with what the verifier holds as the public key.
    let jwk = serde_json::to_value(gl.jwk()).unwrap();
    for secret in [
        serde_json::to_vec(&jwk).unwrap(),
        jwk["n"].as_str().unwrap().as_bytes().to_vec(),
    ] {
        let forger = Signer {
            key: EncodingKey::from_secret(&secret),
            alg: Algorithm::HS256,
            kid: "gl-rsa".into(),
        };
        let token = forger.sign(&gitlab_claims());
        assert_eq!(
            roster()
                .verify_oidc(&token, &keys, now(), DEFAULT_LEEWAY)
                .unwrap_err(),
            OidcError::RefusedAlgorithm("HS256".into())
        );
    }
    // A key set holding a symmetric key is refused when it is read.
    let oct = json!({"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]});
    assert!(matches!(
        Jwks::from_json(&oct.to_string()),
        Err(OidcError::Jwks(_))
    ));
}

#[test]
fn the_token_alg_must_be_the_keys_own() {
    let gh = Signer::es256("gh-1");
    // RS256 signature presented under the EC key's kid.
    let rsa = Signer::rs256("gh-1");
    let token = rsa.sign(&github_claims());
    assert!(matches!(
        roster().verify_oidc(&token, &jwks(&[&gh]), now(), DEFAULT_LEEWAY),
        Err(OidcError::AlgorithmMismatch { .. })
    ));
    // An RSA key published for RS256 does not verify PS256, even by the same key.
    let mut jwk = rsa.jwk();
    jwk.common.key_id = Some("gl-rsa".into());
    let set = JwkSet { keys: vec![jwk] };
    let keys = Jwks::from_json(&serde_json::to_string(&set).unwrap()).unwrap();
    let ps = Signer {
        key: EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).unwrap(),
        alg: Algorithm::PS256,
        kid: "gl-rsa".into(),
    };
    assert!(matches!(
        roster().verify_oidc(&ps.sign(&gitlab_claims()), &keys, now(), DEFAULT_LEEWAY),
        Err(OidcError::AlgorithmMismatch { .. })
    ));
}

#[test]
fn claim_rules_that_do_not_match_are_refused_with_the_claim_named() {
    let gh = Signer::es256("gh-1");
    let gl = Signer::rs256("gl-rsa");
    let keys = jwks(&[&gh, &gl]);
    let r = roster();
    let cases = [
        (
            gh.sign(&with(github_claims(), "repository", json!("acme/evil"))),
            "repository",
        ),
        (
            gh.sign(&with(github_claims(), "ref", json!("refs/heads/feature"))),
            "ref",
        ),
        (
            gh.sign(&with(github_claims(), "environment", json!("staging"))),
            "environment",
        ),
        (
            gh.sign(&with(github_claims(), "ref", json!(["refs/heads/main"]))),
            "ref",
        ),
        (
            gl.sign(&with(
                gitlab_claims(),
                "project_path",
                json!("acme/platform/api-fork"),
            )),
            "project_path",
        ),
        (
            gl.sign(&with(gitlab_claims(), "ref_type", json!("tag"))),
            "ref_type",
        ),
    ];
    for (token, claim) in cases {
        match r.verify_oidc(&token, &keys, now(), DEFAULT_LEEWAY) {
            Err(OidcError::NoMatchingRule { mismatches }) => {
                assert_eq!(mismatches.len(), 1);
                assert!(mismatches[0].contains(claim), "{mismatches:?}");
            }
            other => panic!("{claim}: {other:?}"),
        }
    }
    let mut missing = github_claims();
    missing.as_object_mut().unwrap().remove("workflow");
    assert!(matches!(
        r.verify_oidc(&gh.sign(&missing), &keys, now(), DEFAULT_LEEWAY),
        Err(OidcError::NoMatchingRule { .. })
    ));
}

#[test]
fn two_machines_matching_one_token_is_an_error_not_a_choice() {
    let toml = format!(
        "[[machines]]\nid = \"a\"\ngroups = [\"ci\"]\nissuer = \"{GITHUB}\"\naudience = \"https://promotion.acme.example\"\nclaims = {{ repository = \"acme/web\" }}\n\
         [[machines]]\nid = \"b\"\ngroups = [\"breakglass\"]\nissuer = \"{GITHUB}\"\naudience = \"https://promotion.acme.example\"\nclaims = {{ ref = \"refs/heads/main\" }}\n"
    );
    let r = Roster::parse(toml.as_bytes(), "roster.toml").unwrap();
    let gh = Signer::es256("gh-1");
    assert_eq!(
        r.verify_oidc(
            &gh.sign(&github_claims()),
            &jwks(&[&gh]),
            now(),
            DEFAULT_LEEWAY
        )
        .unwrap_err(),
        OidcError::Ambiguous(vec!["a".into(), "b".into()])
    );
}

#[test]
fn malformed_tokens_are_typed_errors() {
    let gh = Signer::es256("gh-1");
    let keys = jwks(&[&gh]);
    for bad in ["", "a.b", "a.b.c.d", "!!!.e30.x", "e30.e30.x"] {
        let err = roster()
            .verify_oidc(bad, &keys, now(), DEFAULT_LEEWAY)
            .unwrap_err();
        assert!(matches!(err, OidcError::Malformed(_)), "{bad:?}: {err:?}");
    }
    assert!(matches!(
        Jwks::from_json("{\"keys\": 3}"),
        Err(OidcError::Jwks(_))
    ));
}
