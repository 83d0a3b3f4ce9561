#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! What verifying an identity costs: an SSH-signed statement (Ed25519, ECDSA P-256), an OIDC
//! ID token (ES256, RS256 2048-bit) and loading a roster of 1,000 people with one key each.
//!
//! A plain `main` (no criterion): each case runs for about one second after a warm-up and the
//! mean time per operation is printed. Run with
//! `cargo bench -p promotion-identity --bench verify`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use promotion_identity::{sign, Decision, Jwks, Roster, Statement, DEFAULT_LEEWAY};
use rand_core::OsRng;
use ssh_key::{Algorithm as SshAlgorithm, EcdsaCurve, PrivateKey};

fn time(name: &str, mut op: impl FnMut()) {
    for _ in 0..10 {
        op();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        op();
        n += 1;
    }
    let per = start.elapsed() / u32::try_from(n).unwrap();
    println!("{name:<44} {per:>12.1?} per op ({n} ops)");
}

fn statement(roster: &Roster) -> Vec<u8> {
    Statement {
        release: format!("sha256:{}", "ab".repeat(32)).parse().unwrap(),
        stage: "production".parse().unwrap(),
        decision: Decision::Approve,
        evidence: format!("sha256:{}", "cd".repeat(32)).parse().unwrap(),
        pipeline_version: "v12".into(),
        roster: roster.digest(),
        comment: "dashboards green, canary error rate within budget".into(),
        time: "2026-12-07T21:15:30Z".parse().unwrap(),
    }
    .to_bytes()
    .unwrap()
}

fn main() {
    // A roster of 1,000 people, the signer last, so lookup walks the whole list.
    let ed = PrivateKey::random(&mut OsRng, SshAlgorithm::Ed25519).unwrap();
    let ec = PrivateKey::random(
        &mut OsRng,
        SshAlgorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
    )
    .unwrap();
    let mut toml = String::new();
    for i in 0..998 {
        let k = PrivateKey::random(&mut OsRng, SshAlgorithm::Ed25519).unwrap();
        toml.push_str(&format!(
            "[[people]]\nid = \"person{i}\"\ngroups = [\"dev\"]\nssh_keys = [\"{}\"]\n",
            k.public_key().to_openssh().unwrap()
        ));
    }
    for (id, k) in [("ecdsa-user", &ec), ("alice", &ed)] {
        toml.push_str(&format!(
            "[[people]]\nid = \"{id}\"\ngroups = [\"sre\"]\nssh_keys = [\"{}\"]\n",
            k.public_key().to_openssh().unwrap()
        ));
    }
    toml.push_str("[[machines]]\nid = \"ci\"\nissuer = \"https://token.actions.githubusercontent.com\"\naudience = \"promotion\"\nclaims = { repository = \"acme/web\", ref = \"refs/heads/main\" }\n");
    let roster = Roster::parse(toml.as_bytes(), "roster.toml").unwrap();
    let message = statement(&roster);

    time("roster: parse 1,000 people with keys", || {
        black_box(Roster::parse(black_box(toml.as_bytes()), "roster.toml").unwrap());
    });
    for (name, key) in [("ed25519", &ed), ("ecdsa-p256", &ec)] {
        let sig = sign(key, "promotion", &message).unwrap();
        time(
            &format!("sshsig: verify_signed ({name}, 1,000 people)"),
            || {
                black_box(
                    roster
                        .verify_signed(black_box(&message), &sig, "promotion")
                        .unwrap(),
                );
            },
        );
    }

    let now: chrono::DateTime<chrono::Utc> = "2026-12-07T22:00:00Z".parse().unwrap();
    let t = now.timestamp();
    let claims = serde_json::json!({
        "iss": "https://token.actions.githubusercontent.com", "aud": "promotion",
        "sub": "repo:acme/web:ref:refs/heads/main", "repository": "acme/web",
        "repository_owner": "acme", "ref": "refs/heads/main", "workflow": "release",
        "iat": t - 10, "nbf": t - 10, "exp": t + 290,
    });
    let es_pem = p256::SecretKey::random(&mut OsRng)
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
    let keys = [
        (
            "ES256",
            EncodingKey::from_ec_pem(es_pem.as_bytes()).unwrap(),
            Algorithm::ES256,
        ),
        (
            "RS256",
            EncodingKey::from_rsa_pem(include_bytes!("../tests/fixtures/rsa-test-key.pem"))
                .unwrap(),
            Algorithm::RS256,
        ),
    ];
    for (name, key, alg) in keys {
        let mut jwk: Jwk = Jwk::from_encoding_key(&key, alg).unwrap();
        jwk.common.key_id = Some("k".into());
        let jwks =
            Jwks::from_json(&serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap()).unwrap();
        let mut header = Header::new(alg);
        header.kid = Some("k".into());
        let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        time(&format!("oidc: verify_oidc ({name})"), || {
            black_box(
                roster
                    .verify_oidc(black_box(&token), &jwks, now, DEFAULT_LEEWAY)
                    .unwrap(),
            );
        });
    }
}
