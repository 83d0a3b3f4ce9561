#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! What verifying an identity costs: an SSH-signed statement (Ed25519, ECDSA P-256), an OIDC
//! ID token (ES256, RS256 2048-bit) and loading a roster of 1,000 people with one key each.
//!
//! Also what re-verifying costs on replay: one release's log of 40 stages, each approved once,
//! read back from its JSON entries and folded — with every approval SSH-signed, the same
//! without signatures (the roster's verification), and the signed one re-verified
//! ([`Reverifier::stream`]), with the ratios.
//!
//! A plain `main` (no criterion): each case runs for about one second after a warm-up and the
//! mean time per operation is printed. Run with
//! `cargo bench -p promotion-identity --bench verify`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use promotion_identity::{sign, Decision, Jwks, Reverifier, Roster, Statement, DEFAULT_LEEWAY};
use rand_core::OsRng;
use ssh_key::{Algorithm as SshAlgorithm, EcdsaCurve, PrivateKey};

fn time(name: &str, mut op: impl FnMut()) -> Duration {
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
    per
}

/// One release through 40 stages, each approved by Alice: the stream's entries as JSON, with
/// every approval SSH-signed (`signed`) or verified by the roster alone, and the release id.
fn approvals_log(
    roster: &Roster,
    key: &PrivateKey,
    signed: bool,
) -> (promotion_core::ReleaseId, Vec<Vec<u8>>) {
    use futures::executor::block_on;
    use promotion_core::testing::RecordingDeployer;
    use promotion_core::{
        ApprovalPolicy, ApprovalRule, Engine, EventStore, HostCommand, InMemoryStore, ManualClock,
        Pipeline, Principal, Release, ReleaseState, StageSpec, StreamId, Verification,
    };
    use std::sync::Arc;

    const STAGES: usize = 40;
    let mut pipeline = Pipeline::builder("shop", "1");
    for i in 0..STAGES {
        let mut stage = StageSpec::new(format!("s{i:02}").as_str())
            .approval(ApprovalPolicy::new(ApprovalRule::quorum("sre", 1).unwrap()));
        if i > 0 {
            stage = stage.after(format!("s{:02}", i - 1).as_str());
        }
        pipeline = pipeline.stage(stage);
    }
    let store = Arc::new(InMemoryStore::new());
    let engine = Engine::new(
        pipeline.build().unwrap(),
        store.clone(),
        Arc::new(RecordingDeployer::new()),
        Arc::new(ManualClock::at("2026-12-08T09:00:00Z".parse().unwrap())),
    );
    let release = Release::builder(
        "api 1",
        "git@example.com:shop/api",
        "c".repeat(40),
        "2026-12-08T08:00:00Z".parse().unwrap(),
    )
    .artifact("image", format!("sha256:{}", "ab".repeat(32)))
    .builder("ci")
    .build()
    .unwrap();
    let id =
        block_on(engine.register(release, &Principal::new("ci-bot", ["ci"]).unwrap())).unwrap();
    let stream = StreamId::for_release(&id);
    let events = || -> Vec<promotion_core::Event> {
        block_on(store.read(&stream))
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .collect()
    };
    for i in 0..STAGES {
        block_on(engine.advance(&id)).unwrap();
        let stage = format!("s{i:02}");
        let state = ReleaseState::replay(events().iter());
        let alice = roster.principal("alice").unwrap();
        let comment = "dashboards green, canary error rate within budget";
        let principal = if signed {
            let bytes = Statement {
                release: id,
                stage: stage.parse().unwrap(),
                decision: Decision::Approve,
                evidence: state.stage(&stage).entry_digest(),
                pipeline_version: state.pipeline_version().to_owned(),
                roster: roster.digest(),
                comment: comment.into(),
                time: "2026-12-08T09:00:00Z".parse().unwrap(),
            }
            .to_bytes()
            .unwrap();
            alice.verified_by(Verification::SshSignature {
                roster: roster.digest(),
                namespace: "promotion".into(),
                signature: sign(key, "promotion", &bytes).unwrap(),
                statement: String::from_utf8(bytes).unwrap(),
            })
        } else {
            alice.verified_by(Verification::Roster {
                roster: roster.digest(),
            })
        };
        block_on(engine.submit(
            &id,
            HostCommand::approve(&stage, &principal, comment).unwrap(),
        ))
        .unwrap();
    }
    block_on(engine.advance(&id)).unwrap();
    let json = events()
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap())
        .collect();
    (id, json)
}

/// Replaying a log with signed approvals, without, and re-verifying it; prints the ratios.
fn replay_cost() {
    use promotion_core::{Event, ReleaseState};

    let key = PrivateKey::random(&mut OsRng, SshAlgorithm::Ed25519).unwrap();
    let roster = Roster::parse(
        format!(
            "[[people]]\nid = \"alice\"\ngroups = [\"sre\"]\nssh_keys = [\"{}\"]\n",
            key.public_key().to_openssh().unwrap()
        )
        .as_bytes(),
        "roster.toml",
    )
    .unwrap();
    let (_, plain) = approvals_log(&roster, &key, false);
    let (id, signed) = approvals_log(&roster, &key, true);
    let bytes = |log: &[Vec<u8>]| log.iter().map(Vec::len).sum::<usize>();
    println!(
        "log of one release, 40 approvals: {} entries, {} bytes unsigned, {} bytes signed",
        plain.len(),
        bytes(&plain),
        bytes(&signed)
    );
    let decode = |log: &[Vec<u8>]| -> Vec<Event> {
        log.iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect()
    };
    let reverifier = Reverifier::new("promotion").unwrap().with_roster(roster);
    let checked = reverifier.stream(
        &id,
        decode(&signed)
            .iter()
            .enumerate()
            .map(|(i, e)| (i as u64, e)),
    );
    assert_eq!(checked.signed, 40);
    assert!(checked.failures.is_empty(), "{:?}", checked.failures);
    let unsigned = time("replay: decode + fold, unsigned approvals", || {
        black_box(ReleaseState::replay(decode(black_box(&plain)).iter()));
    });
    let signed_replay = time("replay: decode + fold, signed approvals", || {
        black_box(ReleaseState::replay(decode(black_box(&signed)).iter()));
    });
    let reverified = time("replay: decode + re-verify 40 signatures", || {
        let events = decode(black_box(&signed));
        let report = reverifier.stream(&id, events.iter().enumerate().map(|(i, e)| (i as u64, e)));
        black_box(report);
    });
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "ratios to the unsigned replay: signed replay {:.2}x, signed replay + re-verify {:.2}x",
        ratio(signed_replay, unsigned),
        ratio(reverified, unsigned)
    );
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
    replay_cost();
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
