//! The attacks on separation of duties that issue 15 reproduced, each run as an attacker would
//! and each refused: the builder approving, look-alike and invisible-character ids, a pipeline
//! version going back, break glass and judgement on one's own release, invisible and unbounded
//! text.

use crate::gate::PhaseId;
use crate::machine::fixtures::*;
use crate::machine::{Command, EventBody, EventKind as K, Outcome, Refusal, StageStatus};
use crate::pipeline::Pipeline;
use crate::principal::Principal;
use crate::release::Release;
use crate::testing::{sample_time, Scenario};
use crate::text::TextError;

fn approve_saying(stage_name: &str, principal: Principal, comment: &str) -> Command {
    Command::Approve {
        stage: stage(stage_name),
        principal,
        comment: comment.into(),
    }
}

fn override_scan(principal: Principal, why: &str) -> Command {
    Command::Override {
        stage: stage("dev"),
        gate: gate("scan"),
        principal,
        justification: why.into(),
    }
}

fn judge_unit(principal: Principal) -> Command {
    Command::Judge {
        stage: stage("dev"),
        gate: gate("unit"),
        pass: true,
        principal,
        comment: "flaky runner".into(),
    }
}

fn self_approval(id: &str, why: &'static str) -> Refusal {
    Refusal::SelfApproval {
        stage: stage("prod"),
        principal: who(id, &[]).id,
        why,
    }
}

/// A release built by `bob` (a person, not a CI account) with no other contributor.
fn built_by_bob() -> Release {
    Release::builder(
        "svc 1.0",
        "git@example.com:probe/svc",
        "b".repeat(40),
        sample_time(),
    )
    .artifact(
        "image",
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    )
    .builder("bob")
    .build()
    .unwrap()
}

#[test]
fn the_builder_of_a_release_may_not_approve_it() {
    let p = pipeline();
    Scenario::new(&p)
        .given_registered(&built_by_bob(), &ci())
        .given_advanced()
        .when(approve("prod", sre("bob")))
        .then_refused(self_approval("bob", "they contributed to the release"));
}

#[test]
fn a_look_alike_of_a_contributor_is_that_contributor() {
    // `dana` contributed to the sample release.
    let p = pipeline();
    for look_alike in ["Dana", "d\u{0430}na", "DANA"] {
        awaiting_approval(&p)
            .when(approve("prod", sre(look_alike)))
            .then_refused(self_approval(look_alike, "they contributed to the release"));
    }
}

#[test]
fn an_invisible_character_cannot_make_a_contributor_someone_else() {
    for id in [
        "dana\u{200B}",
        "dana\u{FEFF}",
        "\u{202E}dana",
        "da\u{200D}na",
    ] {
        assert!(
            Principal::new(id, ["sre"]).is_err(),
            "{id:?} was accepted as an id"
        );
    }
}

#[test]
fn one_person_under_two_spellings_fills_one_seat() {
    let p = pipeline_with(dev(), prod(two_sres()));
    awaiting_approval(&p)
        .given_command(approve("prod", sre("ann")))
        .when(approve("prod", sre("\u{0410}nn"))) // Cyrillic capital A
        .then_refused(Refusal::DuplicateApproval {
            stage: stage("prod"),
            principal: sre("\u{0410}nn").id,
        });
}

#[test]
fn an_approval_voided_by_a_new_version_does_not_come_back_with_the_old_one() {
    let v1 = pipeline_with(dev(), prod(two_sres()));
    let v2 = Pipeline::builder("shop", "2")
        .break_glass_group("ic")
        .stage(dev())
        .stage(prod(two_sres()))
        .build()
        .unwrap();
    // ann approves under v1; a v2 engine acts (bob approves), which voids ann's approval.
    let history = awaiting_approval(&v1)
        .given_command(approve("prod", sre("ann")))
        .history()
        .to_vec();
    let under_v2 = Scenario::new(&v2)
        .given(history)
        .given_command(approve("prod", sre("bob")));
    assert_eq!(
        under_v2.state().status("prod"),
        StageStatus::AwaitingApproval
    );
    // A v1 engine acts again: ann's v1 approval must not count beside carol's.
    Scenario::new(&v1)
        .given(under_v2.history().to_vec())
        .when(approve("prod", sre("carol")))
        .then_kinds(&[K::PipelineVersionAdopted, K::ApprovalGiven]);
}

#[test]
fn a_contributor_in_break_glass_may_not_override_their_own_release() {
    let p = pipeline();
    let dev_failed = |p| {
        registered(p).given_commands([
            start("dev", None),
            round("dev", PhaseId::Entry, vec![pass("unit"), fail("scan")]),
        ])
    };
    dev_failed(&p)
        .when(override_scan(who("dana", &["ic"]), "CVE is not reachable"))
        .then_refused(Refusal::SelfDecision {
            stage: stage("dev"),
            principal: who("dana", &[]).id,
            action: "override a gate",
            why: "they contributed to the release",
        });
    dev_failed(&p)
        .when(override_scan(
            who("ci-bot", &["ic"]),
            "CVE is not reachable",
        ))
        .then_refused(Refusal::SelfDecision {
            stage: stage("dev"),
            principal: who("ci-bot", &[]).id,
            action: "override a gate",
            why: "they started this promotion",
        });
    // Allowed only where the pipeline says so, and then the stake is recorded.
    let lenient = Pipeline::builder("shop", "1")
        .break_glass_group("ic")
        .allow_self_override()
        .stage(dev())
        .stage(prod(one_sre()))
        .build()
        .unwrap();
    dev_failed(&lenient)
        .when(override_scan(who("dana", &["ic"]), "CVE is not reachable"))
        .then(|events| {
            let EventBody::GateOverridden { self_interest, .. } = &events[0].body else {
                panic!("{:?}", events[0].body)
            };
            assert_eq!(
                self_interest.as_deref(),
                Some("they contributed to the release")
            );
        });
}

#[test]
fn a_contributor_may_not_judge_their_own_release_s_inconclusive_gate() {
    let p = pipeline();
    registered(&p)
        .given_commands([
            start("dev", None),
            round(
                "dev",
                PhaseId::Entry,
                vec![result("unit", Outcome::Inconclusive), pass("scan")],
            ),
        ])
        .when(judge_unit(sre("dana")))
        .then_refused(Refusal::SelfDecision {
            stage: stage("dev"),
            principal: who("dana", &[]).id,
            action: "judge a gate",
            why: "they contributed to the release",
        });
}

#[test]
fn a_justification_of_invisible_characters_is_no_justification() {
    let p = pipeline();
    registered(&p)
        .given_commands([
            start("dev", None),
            round("dev", PhaseId::Entry, vec![pass("unit"), fail("scan")]),
        ])
        .when(override_scan(who("ivy", &["ic"]), "\u{200B}"))
        .then_refused(Refusal::EmptyJustification("an override"));
    awaiting_approval(&p)
        .when(Command::Reject {
            stage: stage("prod"),
            principal: sre("bob"),
            comment: "\u{FEFF} \u{2060}".into(),
        })
        .then_refused(Refusal::EmptyJustification("a rejection"));
}

#[test]
fn free_text_is_bounded_and_holds_no_terminal_controls() {
    let p = pipeline();
    let megabyte = "x".repeat(1 << 20);
    awaiting_approval(&p)
        .when(approve_saying("prod", sre("bob"), &megabyte))
        .then_refused(Refusal::Text(TextError::TooLong {
            what: "an approval comment",
            len: 1 << 20,
            max: 4096,
        }));
    awaiting_approval(&p)
        .when(Command::Reject {
            stage: stage("prod"),
            principal: sre("bob"),
            comment: "no\u{1b}[2K\r\u{1b}[32mAPPROVED".into(),
        })
        .then_refused(Refusal::Text(TextError::Control {
            what: "a rejection comment",
            code: 0x1b,
            at: 2,
        }));
    let roomy = Pipeline::builder("shop", "1")
        .max_text_len(2 << 20)
        .stage(dev())
        .stage(prod(one_sre()))
        .build()
        .unwrap();
    awaiting_approval(&roomy)
        .when(approve_saying("prod", sre("bob"), &megabyte))
        .then_kinds(&[K::ApprovalGiven, K::StageScheduled]);
}

/// `who` verified from the roster with digest `d`.
fn from_roster(p: Principal) -> Principal {
    p.verified_by(crate::Verification::Roster {
        roster: crate::digest::Digest::of(b"roster.toml v7"),
    })
}

fn requiring_verified() -> Pipeline {
    Pipeline::builder("shop", "1")
        .break_glass_group("ic")
        .require_verified()
        .stage(dev())
        .stage(prod(one_sre()))
        .build()
        .unwrap()
}

#[test]
fn where_the_pipeline_requires_it_the_caller_s_word_is_not_enough() {
    let p = requiring_verified();
    let refusal = awaiting_approval(&p)
        .when(approve("prod", sre("ann")))
        .refusal();
    assert_eq!(
        refusal,
        Refusal::Unverified {
            principal: sre("ann").id,
            action: "approve",
        }
    );
    assert!(refusal.is_about_who(), "recorded in the security stream");
    awaiting_approval(&p)
        .when(abort("prod", who("ann", &[]), "freeze"))
        .then_refused(Refusal::Unverified {
            principal: sre("ann").id,
            action: "abort",
        });
    // Verified, the same approval counts, and the log says how the approver was verified.
    awaiting_approval(&p)
        .when(approve("prod", from_roster(sre("ann"))))
        .then(|events| {
            let EventBody::ApprovalGiven { principal, .. } = &events[0].body else {
                panic!("{:?}", events[0].body)
            };
            assert_eq!(
                principal.verified.as_ref().map(crate::Verification::method),
                Some("roster")
            );
            assert_eq!(
                events[0].body.to_string(),
                "approved by ann (roster): looks good"
            );
            assert_eq!(events.len(), 2, "approval and schedule");
        });
}

#[test]
fn a_principal_s_verification_is_recorded_only_when_there_is_one() {
    // Old logs and hosts that say nothing keep their bytes: no `verified` key.
    let plain = serde_json::to_string(&sre("ann")).unwrap();
    assert_eq!(plain, r#"{"id":"ann","groups":["sre"]}"#);
    let signed = sre("ann").verified_by(crate::Verification::SshSignature {
        roster: crate::digest::Digest::of(b"r"),
        namespace: "promotion".into(),
        signature: "-----BEGIN SSH SIGNATURE-----\n…".into(),
        statement: r#"{"type":"https://promotion.dev/decision/v1"}"#.into(),
    });
    let json = serde_json::to_string(&signed).unwrap();
    assert!(
        json.contains(r#""verified":{"method":"ssh_signature""#),
        "{json}"
    );
    let back: Principal = serde_json::from_str(&json).unwrap();
    assert_eq!(back, signed);
    let old: Principal = serde_json::from_str(r#"{"id":"ann","groups":["sre"]}"#).unwrap();
    assert_eq!(old.verified, None);
}
