//! Per-action accepted verifications, tried as an attacker would: a roster-verified person
//! breaking glass where a signature is required, a CI machine's OIDC identity approving where
//! people must sign, the caller's word registering where the pipeline wants a machine identity.

use std::collections::BTreeSet;

use crate::digest::Digest;
use crate::gate::PhaseId;
use crate::machine::fixtures::*;
use crate::machine::{decide, Command, EventKind as K, Refusal, ReleaseState};
use crate::pipeline::{Pipeline, PipelineError, StageSpec};
use crate::principal::{Principal, Verification};
use crate::testing::{sample_release, Scenario};
use crate::{ActionKind as A, VerificationKind as V};

fn roster(p: Principal) -> Principal {
    p.verified_by(Verification::Roster {
        roster: Digest::of(b"roster v7"),
    })
}

fn signed(p: Principal) -> Principal {
    p.verified_by(Verification::SshSignature {
        roster: Digest::of(b"roster v7"),
        namespace: "promotion".into(),
        signature: "-----BEGIN SSH SIGNATURE-----\n…".into(),
        statement: String::new(),
    })
}

fn oidc(p: Principal) -> Principal {
    p.verified_by(Verification::Oidc {
        roster: Digest::of(b"roster v7"),
        issuer: "https://token.actions.githubusercontent.com".into(),
        subject: "repo:acme/shop:ref:refs/heads/main".into(),
    })
}

/// `dev` then `prod`; breaking glass in `dev` and approving `prod` need an SSH signature,
/// registering needs OIDC or the roster, everything else takes whatever the host says.
fn strict() -> Pipeline {
    Pipeline::builder("shop", "1")
        .break_glass_group("ic")
        .accept(A::Register, [V::Oidc, V::Roster])
        .stage(dev().accept(A::Override, [V::SshSignature]))
        .stage(
            prod(one_sre())
                .accept(A::Approve, [V::SshSignature])
                .accept(A::Reject, [V::SshSignature, V::Roster]),
        )
        .build()
        .unwrap()
}

/// The sample release registered in `p` by CI with its OIDC identity.
fn registered_by_ci(p: &Pipeline) -> Scenario<'_> {
    Scenario::new(p).given_registered(&sample_release(), &oidc(ci()))
}

fn override_scan(principal: Principal) -> Command {
    Command::Override {
        stage: stage("dev"),
        gate: gate("scan"),
        principal,
        justification: "CVE-2026-1 is not reachable".into(),
    }
}

fn required(kinds: &[V]) -> BTreeSet<V> {
    kinds.iter().copied().collect()
}

#[test]
fn a_roster_verified_person_may_not_break_glass_where_a_signature_is_required() {
    let p = strict();
    let dev_failed = || {
        registered_by_ci(&p).given_commands([
            start("dev", None),
            round("dev", PhaseId::Entry, vec![pass("unit"), fail("scan")]),
        ])
    };
    let refusal = dev_failed()
        .when(override_scan(roster(who("ivy", &["ic"]))))
        .refusal();
    assert_eq!(
        refusal,
        Refusal::VerificationNotAccepted {
            principal: who("ivy", &[]).id,
            action: A::Override,
            stage: Some(stage("dev")),
            presented: Some(V::Roster),
            required: required(&[V::SshSignature]),
        }
    );
    assert_eq!(
        refusal.to_string(),
        "`ivy` may not override a gate in stage `dev`: override requires ssh_signature, and \
         the command carries roster"
    );
    assert!(refusal.is_about_who(), "recorded in the security stream");
    // The caller's word is refused too, saying so.
    let bare = dev_failed()
        .when(override_scan(who("ivy", &["ic"])))
        .refusal();
    assert!(
        bare.to_string()
            .ends_with("the command carries no verification (the caller's word)"),
        "{bare}"
    );
    // Signed, the same person may.
    dev_failed()
        .when(override_scan(signed(who("ivy", &["ic"]))))
        .then_kinds(&[K::GateOverridden, K::PhasePassed, K::StageScheduled]);
}

#[test]
fn a_machine_may_not_approve_where_people_must_sign() {
    let p = strict();
    let bot = || who("deploy-bot", &["sre"]);
    registered_by_ci(&p)
        .given_advanced()
        .when(approve("prod", oidc(bot())))
        .then_refused(Refusal::VerificationNotAccepted {
            principal: bot().id,
            action: A::Approve,
            stage: Some(stage("prod")),
            presented: Some(V::Oidc),
            required: required(&[V::SshSignature]),
        });
    registered_by_ci(&p)
        .given_advanced()
        .when(approve("prod", roster(sre("ann"))))
        .then_refused(Refusal::VerificationNotAccepted {
            principal: sre("ann").id,
            action: A::Approve,
            stage: Some(stage("prod")),
            presented: Some(V::Roster),
            required: required(&[V::SshSignature]),
        });
    registered_by_ci(&p)
        .given_advanced()
        .when(approve("prod", signed(sre("ann"))))
        .then_kinds(&[K::ApprovalGiven, K::StageScheduled]);
    // The stage's rule names only approve and reject: aborting takes the host's word.
    registered_by_ci(&p)
        .given_advanced()
        .when(abort("prod", sre("ann"), "freeze"))
        .then_kinds(&[K::StageAborted]);
}

#[test]
fn registering_needs_the_verifications_the_pipeline_names() {
    let p = strict();
    let register = |initiator: Principal| {
        decide(
            &p,
            &ReleaseState::default(),
            &Command::Register {
                release: sample_release(),
                initiator,
            },
            t0(),
        )
    };
    assert_eq!(
        register(ci()).unwrap_err(),
        Refusal::VerificationNotAccepted {
            principal: ci().id,
            action: A::Register,
            stage: None,
            presented: None,
            required: required(&[V::Roster, V::Oidc]),
        }
    );
    let err = register(signed(ci())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`ci-bot` may not register a release here: register requires roster or oidc, and the \
         command carries ssh_signature"
    );
    assert!(register(oidc(ci())).is_ok());
    assert!(register(roster(ci())).is_ok());
}

#[test]
fn a_stage_s_rule_replaces_the_pipeline_s_and_the_others_fall_back() {
    let p = Pipeline::builder("shop", "1")
        .break_glass_group("ic")
        .require_verified()
        .accept(A::Override, [V::SshSignature])
        .stage(dev().accept(A::Override, [V::Roster]))
        .stage(prod(one_sre()))
        .build()
        .unwrap();
    assert_eq!(
        p.accepted_for(Some("dev"), A::Override),
        Some(&required(&[V::Roster]))
    );
    assert_eq!(
        p.accepted_for(Some("prod"), A::Override),
        Some(&required(&[V::SshSignature]))
    );
    assert_eq!(p.accepted_for(Some("prod"), A::Approve), None);
    // Without a rule, `require_verified` still refuses the caller's word and takes any kind.
    awaiting_approval(&p)
        .when(approve("prod", sre("ann")))
        .then_refused(Refusal::Unverified {
            principal: sre("ann").id,
            action: "approve",
        });
    awaiting_approval(&p)
        .when(approve("prod", oidc(sre("ann"))))
        .then_kinds(&[K::ApprovalGiven, K::StageScheduled]);
    registered(&p)
        .given_commands([
            start("dev", None),
            round("dev", PhaseId::Entry, vec![pass("unit"), fail("scan")]),
        ])
        .when(override_scan(roster(who("ivy", &["ic"]))))
        .then_kinds(&[K::GateOverridden, K::PhasePassed, K::StageScheduled]);
}

#[test]
fn a_rule_that_accepts_nothing_or_registers_in_a_stage_is_refused_at_build() {
    let err = Pipeline::builder("shop", "1")
        .accept(A::Approve, [])
        .stage(StageSpec::new("dev"))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pipeline: `approve` accepts no verification, so nobody could do it"
    );
    let err = Pipeline::builder("shop", "1")
        .stage(StageSpec::new("dev").accept(A::Register, [V::Oidc]))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            &err,
            PipelineError::BadVerificationRule { context, action: A::Register, .. }
                if context == "stage `dev`"
        ),
        "{err}"
    );
}
