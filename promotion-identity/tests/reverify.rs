#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Re-verifying signed decisions recorded by the real engine: a clean log passes, and each
//! forgery an insider with write access to the log (but not the person's SSH key) could make
//! is named — a changed signature byte, an edited statement, a key the roster does not list, a
//! roster whose key for the person was swapped, edited groups, a decision moved to another
//! stage.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::executor::block_on;
use promotion_core::testing::{RecordingDeployer, ScriptedGate};
use promotion_core::{
    ApprovalPolicy, ApprovalRule, Engine, Event, EventBody, EventStore, HostCommand, InMemoryStore,
    ManualClock, Pipeline, Principal, Release, ReleaseId, ReleaseState, StageSpec, StreamId,
    Verification,
};
use promotion_identity::{
    sign, Decision, Problem, Reverifier, Roster, Statement, DEFAULT_NAMESPACE,
};
use rand_core::OsRng;
use ssh_key::{Algorithm, PrivateKey};

fn t0() -> DateTime<Utc> {
    "2026-12-08T09:00:00Z".parse().unwrap()
}

fn key() -> PrivateKey {
    PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap()
}

fn roster(alice: &PrivateKey, bob: &PrivateKey) -> Roster {
    let line = |k: &PrivateKey| k.public_key().to_openssh().unwrap();
    let toml = format!(
        "[[people]]\nid = \"alice\"\ngroups = [\"sre\"]\nssh_keys = [\"{}\"]\n\n\
         [[people]]\nid = \"bob\"\ngroups = [\"security\"]\nssh_keys = [\"{}\"]\n",
        line(alice),
        line(bob)
    );
    Roster::parse(toml.as_bytes(), "roster.toml").unwrap()
}

#[allow(clippy::too_many_arguments)] // one place that builds each signed decision
/// The principal `id` of `roster`, having signed `decision` as the CLI does: over the stage's
/// entry evidence and the pipeline version as the stored events leave them.
fn signed(
    roster: &Roster,
    id: &str,
    key: &PrivateKey,
    release: ReleaseId,
    state: &ReleaseState,
    stage: &str,
    decision: Decision,
    comment: &str,
) -> Principal {
    let statement = Statement {
        release,
        stage: stage.parse().unwrap(),
        decision,
        evidence: state.stage(stage).entry_digest(),
        pipeline_version: state.pipeline_version().to_owned(),
        roster: roster.digest(),
        comment: comment.into(),
        time: t0(),
    };
    let bytes = statement.to_bytes().unwrap();
    let signature = sign(key, DEFAULT_NAMESPACE, &bytes).unwrap();
    roster
        .principal(id)
        .unwrap()
        .verified_by(Verification::SshSignature {
            roster: roster.digest(),
            namespace: DEFAULT_NAMESPACE.into(),
            signature,
            statement: String::from_utf8(bytes).unwrap(),
        })
}

struct Log {
    id: ReleaseId,
    events: Vec<Event>,
    roster: Roster,
    alice: PrivateKey,
}

/// A release through the real engine: Alice (sre) approves prod, signed; Bob (security)
/// overrides a failing entry gate of `qa`, signed.
fn log() -> Log {
    let (alice, bob) = (key(), key());
    let roster = roster(&alice, &bob);
    let pipeline = Pipeline::builder("shop", "7")
        .break_glass_group("security")
        .stage(StageSpec::new("qa").entry_gate(ScriptedGate::failing("smoke")))
        .stage(
            StageSpec::new("prod")
                .approval(ApprovalPolicy::new(ApprovalRule::quorum("sre", 1).unwrap())),
        )
        .build()
        .unwrap();
    let store = Arc::new(InMemoryStore::new());
    let engine = Engine::new(
        pipeline,
        store.clone(),
        Arc::new(RecordingDeployer::new()),
        Arc::new(ManualClock::at(t0())),
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
    let ci = Principal::new("ci-bot", ["ci"]).unwrap();
    let id = block_on(engine.register(release, &ci)).unwrap();
    block_on(engine.advance(&id)).unwrap();
    let events = || -> Vec<Event> {
        block_on(store.read(&StreamId::for_release(&id)))
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .collect()
    };
    let state = ReleaseState::replay(events().iter());
    let p = signed(
        &roster,
        "alice",
        &alice,
        id,
        &state,
        "prod",
        Decision::Approve,
        "canary fine",
    );
    block_on(engine.submit(
        &id,
        HostCommand::approve("prod", &p, "canary fine").unwrap(),
    ))
    .unwrap();
    let state = ReleaseState::replay(events().iter());
    let gate = Decision::Override {
        gate: "smoke".parse().unwrap(),
    };
    let p = signed(
        &roster,
        "bob",
        &bob,
        id,
        &state,
        "qa",
        gate,
        "incident 4711",
    );
    block_on(engine.submit(
        &id,
        HostCommand::override_gate("qa", "smoke", &p, "incident 4711").unwrap(),
    ))
    .unwrap();
    block_on(engine.advance(&id)).unwrap();
    Log {
        id,
        events: events(),
        roster,
        alice,
    }
}

fn reverify(log: &Log, events: &[Event], reverifier: &Reverifier) -> promotion_identity::Report {
    reverifier.stream(
        &log.id,
        events.iter().enumerate().map(|(i, e)| (i as u64, e)),
    )
}

fn with_roster(roster: &Roster) -> Reverifier {
    Reverifier::new(DEFAULT_NAMESPACE)
        .unwrap()
        .with_roster(roster.clone())
}

/// The position and a mutable reference to the signed principal of the first `kind` entry.
fn find<'a>(events: &'a mut [Event], kind: &str) -> (usize, &'a mut Principal) {
    let at = events.iter().position(|e| e.body.kind() == kind).unwrap();
    let principal = match &mut events[at].body {
        EventBody::ApprovalGiven { principal, .. }
        | EventBody::GateOverridden { principal, .. } => principal,
        other => panic!("{other:?}"),
    };
    (at, principal)
}

fn signature_of(p: &mut Principal) -> (&mut String, &mut String) {
    match &mut p.verified {
        Some(Verification::SshSignature {
            signature,
            statement,
            ..
        }) => (signature, statement),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_engine_s_signed_decisions_reverify() {
    let log = log();
    let report = reverify(&log, &log.events, &with_roster(&log.roster));
    assert_eq!(report.signed, 2, "{:?}", log.events);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
}

#[test]
fn one_changed_byte_of_a_stored_signature_fails() {
    let log = log();
    let mut events = log.events.clone();
    let (at, p) = find(&mut events, "approval_given");
    let (signature, _) = signature_of(p);
    // a byte inside the base64 body, changed to another base64 character
    let lines: Vec<&str> = signature.lines().collect();
    let body = lines[1];
    let mid = body.len() / 2;
    let c = &body[mid..=mid];
    let swapped = if c == "A" { "B" } else { "A" };
    let forged = format!("{}{swapped}{}", &body[..mid], &body[mid + 1..]);
    *signature = signature.replacen(body, &forged, 1);
    let report = reverify(&log, &events, &with_roster(&log.roster));
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    let f = &report.failures[0];
    assert_eq!(f.position, at as u64);
    assert_eq!(f.stage.as_ref().unwrap().as_str(), "prod");
    let text = f.to_string();
    assert!(
        text.starts_with(&format!(
            "entry {at}: release {}, stage prod, approval_given by alice: ",
            log.id.short()
        )),
        "{text}"
    );
    assert!(matches!(f.problem, Problem::Signature(_)), "{text}");
}

#[test]
fn a_statement_whose_stage_was_edited_fails_on_the_stage() {
    let log = log();
    let mut events = log.events.clone();
    let (_, p) = find(&mut events, "approval_given");
    let (_, statement) = signature_of(p);
    *statement = statement.replace("\"stage\":\"prod\"", "\"stage\":\"qa\"");
    let report = reverify(&log, &events, &with_roster(&log.roster));
    assert_eq!(report.failures.len(), 1);
    assert_eq!(
        report.failures[0].problem,
        Problem::Mismatch {
            field: "stage",
            signed: "qa".into(),
            recorded: "prod".into()
        }
    );

    // and the entry moved to the other stage with the statement left alone: the same
    let mut events = log.events.clone();
    let at = events
        .iter()
        .position(|e| e.body.kind() == "gate_overridden")
        .unwrap();
    if let EventBody::GateOverridden { stage, .. } = &mut events[at].body {
        *stage = "prod".parse().unwrap();
    }
    let report = reverify(&log, &events, &with_roster(&log.roster));
    assert!(
        report.failures.iter().any(|f| f.position == at as u64
            && matches!(&f.problem, Problem::Mismatch { field: "stage", .. })),
        "{:?}",
        report.failures
    );
}

#[test]
fn a_comment_or_evidence_that_is_not_what_was_signed_fails() {
    let log = log();
    let mut events = log.events.clone();
    let at = events
        .iter()
        .position(|e| e.body.kind() == "approval_given")
        .unwrap();
    if let EventBody::ApprovalGiven {
        comment, binding, ..
    } = &mut events[at].body
    {
        *comment = "waved through".into();
        binding.evidence_digest = promotion_core::Digest::of(b"other evidence");
    }
    let report = reverify(&log, &events, &with_roster(&log.roster));
    assert!(
        matches!(
            &report.failures[0].problem,
            Problem::Mismatch {
                field: "evidence",
                ..
            }
        ),
        "{:?}",
        report.failures
    );
    let mut events = log.events.clone();
    if let EventBody::ApprovalGiven { comment, .. } = &mut events[at].body {
        *comment = "waved through".into();
    }
    let report = reverify(&log, &events, &with_roster(&log.roster));
    assert!(
        matches!(
            &report.failures[0].problem,
            Problem::Mismatch {
                field: "comment",
                ..
            }
        ),
        "{:?}",
        report.failures
    );
}

#[test]
fn a_key_not_in_the_roster_fails() {
    let log = log();
    let mut events = log.events.clone();
    let (_, p) = find(&mut events, "approval_given");
    let (signature, statement) = signature_of(p);
    *signature = sign(&key(), DEFAULT_NAMESPACE, statement.as_bytes()).unwrap();
    let report = reverify(&log, &events, &with_roster(&log.roster));
    let text = report.failures[0].to_string();
    assert!(text.contains("is not in the roster"), "{text}");
}

#[test]
fn a_roster_with_the_person_s_key_swapped_fails() {
    // the roster file at that digest, with Alice's key replaced by Mallory's, re-signed by
    // Mallory: the digest recorded is the forged roster's, which the reverifier was not given
    let log = log();
    let mallory = key();
    let bob_line = log.roster.people()[1].ssh_keys[0].to_openssh().unwrap();
    let swapped = Roster::parse(
        format!(
            "[[people]]\nid = \"alice\"\ngroups = [\"sre\"]\nssh_keys = [\"{}\"]\n\n\
             [[people]]\nid = \"bob\"\ngroups = [\"security\"]\nssh_keys = [\"{bob_line}\"]\n",
            mallory.public_key().to_openssh().unwrap()
        )
        .as_bytes(),
        "roster.toml",
    )
    .unwrap();
    let mut events = log.events.clone();
    let (_, p) = find(&mut events, "approval_given");
    if let Some(Verification::SshSignature {
        roster,
        signature,
        statement,
        ..
    }) = &mut p.verified
    {
        *statement = statement.replace(
            &log.roster.digest().to_string(),
            &swapped.digest().to_string(),
        );
        *signature = sign(&mallory, DEFAULT_NAMESPACE, statement.as_bytes()).unwrap();
        *roster = swapped.digest();
    }
    let report = reverify(&log, &events, &with_roster(&log.roster));
    assert!(
        matches!(report.failures[0].problem, Problem::UnknownRoster { .. }),
        "{:?}",
        report.failures
    );
    assert!(report.failures[0]
        .to_string()
        .contains(&swapped.digest().to_string()));

    // Mallory's signature, recorded under the real roster's digest: not Alice's key
    let mut events = log.events.clone();
    let (_, p) = find(&mut events, "approval_given");
    let (signature, statement) = signature_of(p);
    *signature = sign(&mallory, DEFAULT_NAMESPACE, statement.as_bytes()).unwrap();
    let report = reverify(&log, &events, &with_roster(&log.roster));
    assert!(
        matches!(report.failures[0].problem, Problem::Signature(_)),
        "{:?}",
        report.failures
    );

    // checked against a roster with the same digest but Alice's key swapped cannot happen:
    // the digest is the file's sha256. Checked against the swapped roster given as the
    // current one, Alice's genuine signature no longer verifies.
    let report = reverify(&log, &log.events, &with_roster(&swapped));
    assert_eq!(report.failures.len(), 2, "{:?}", report.failures);
    assert!(report
        .failures
        .iter()
        .all(|f| matches!(f.problem, Problem::UnknownRoster { .. })));
}

#[test]
fn bob_s_signature_recorded_as_alice_or_edited_groups_fail() {
    let log = log();
    let mut events = log.events.clone();
    let (_, p) = find(&mut events, "approval_given");
    p.groups.insert("security".parse().unwrap());
    let report = reverify(&log, &events, &with_roster(&log.roster));
    assert!(
        matches!(report.failures[0].problem, Problem::Groups { .. }),
        "{:?}",
        report.failures
    );

    let mut events = log.events.clone();
    let at = events
        .iter()
        .position(|e| e.body.kind() == "gate_overridden")
        .unwrap();
    if let EventBody::GateOverridden { principal, .. } = &mut events[at].body {
        principal.id = "alice".parse().unwrap();
        principal.groups = log.roster.principal("alice").unwrap().groups;
    }
    let report = reverify(&log, &events, &with_roster(&log.roster));
    assert!(
        matches!(&report.failures[0].problem, Problem::WrongSigner { signer, .. } if signer.as_str() == "bob"),
        "{:?}",
        report.failures
    );
    let _ = &log.alice;
}

#[test]
fn a_signature_for_another_namespace_fails() {
    let log = log();
    let mut events = log.events.clone();
    let (_, p) = find(&mut events, "approval_given");
    if let Some(Verification::SshSignature {
        namespace,
        signature,
        statement,
        ..
    }) = &mut p.verified
    {
        *signature = sign(&log.alice, "git", statement.as_bytes()).unwrap();
        *namespace = "git".into();
    }
    let report = reverify(&log, &events, &with_roster(&log.roster));
    assert!(
        matches!(report.failures[0].problem, Problem::Signature(_)),
        "{:?}",
        report.failures
    );
}
