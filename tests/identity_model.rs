//! Model-based property test of issue 15's "Done when": no sequence of host commands, whatever
//! identities they claim, promotes a stage whose rule is not met by distinct, verified people
//! from the roster.
//!
//! The real [`Engine`] (in-memory store, scripted gates, recording deployer, auto-advancing
//! manual clock) runs a two-stage pipeline:
//!
//! ```text
//! dev   entry gate `scan` always fails: only break glass (group `ic`) gets it through
//! prod  manual start (group `ops`); entry gate `perf` is inconclusive: someone must judge it;
//!       approval `1 of sre AND 1 of security`
//! whole pipeline: require_verified; register by OIDC or roster; override and judge need an SSH
//! signature; in prod, approving needs an SSH signature or the roster, starting a signature
//! ```
//!
//! The commands (approve, reject, override, judge, start, abort, roll back) come from claimed
//! identities: roster entries verified by the roster, an SSH signature or OIDC (the honest host
//! takes their groups from the roster); look-alike entries of one person (`alice`, Cyrillic
//! `аlice`, `ALICE`; NFC and NFD `zoë`; `Dana` for the contributor `dana`); the builder `bob`;
//! a machine (`deploy-bot`, OIDC only); and unverified callers claiming any id (invented,
//! invisible characters, bidi controls, look-alikes) with any groups.
//!
//! The reference model knows who is who (each roster entry names its *person*, independently of
//! the library's confusable skeletons) and, from the commands the engine accepted only, whether
//! each stage's rule is met: `dev` by an override from a signed, non-stakeholder person in `ic`;
//! `prod` by a judgement from a signed, non-stakeholder person allowed to judge and by approvals
//! from two different non-stakeholder people, one in `sre` and one in `security`, verified by
//! a kind the stage accepts. Stakeholders: the builder, the contributor, the initiator, and
//! whoever started `prod` (at any time). After every command the property is checked: no stage
//! is scheduled or promoted unless the model says its rule is met; and every approval the engine
//! recorded carries a verification the stage accepts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::executor::block_on;
use promotion::testing::{RecordingDeployer, ScriptedGate, Step};
use promotion::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

fn t0() -> DateTime<Utc> {
    "2026-11-26T09:00:00Z".parse().unwrap()
}

/// A person or machine, as the model knows them (not from their ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Person {
    Alice,
    Bob,
    Carol,
    Dana,
    Erin,
    Frank,
    Zoe,
    DeployBot,
    CiBot,
}

struct Entry {
    id: &'static str,
    person: Person,
    groups: &'static [&'static str],
    machine: bool,
}

/// The organisation's roster. Several entries are one person under look-alike ids.
const ROSTER: &[Entry] = &[
    Entry {
        id: "alice",
        person: Person::Alice,
        groups: &["sre", "ops"],
        machine: false,
    },
    Entry {
        id: "\u{0430}lice", // Cyrillic а
        person: Person::Alice,
        groups: &["security"],
        machine: false,
    },
    Entry {
        id: "ALICE",
        person: Person::Alice,
        groups: &["security", "ic"],
        machine: false,
    },
    Entry {
        id: "bob", // the release's builder
        person: Person::Bob,
        groups: &["sre", "ic"],
        machine: false,
    },
    Entry {
        id: "carol",
        person: Person::Carol,
        groups: &["security", "ic"],
        machine: false,
    },
    Entry {
        id: "dana", // a contributor
        person: Person::Dana,
        groups: &["security", "ic"],
        machine: false,
    },
    Entry {
        id: "Dana",
        person: Person::Dana,
        groups: &["sre"],
        machine: false,
    },
    Entry {
        id: "erin", // in both approving groups: still one seat
        person: Person::Erin,
        groups: &["sre", "security"],
        machine: false,
    },
    Entry {
        id: "frank",
        person: Person::Frank,
        groups: &["ops", "ic"],
        machine: false,
    },
    Entry {
        id: "zo\u{00EB}", // NFC
        person: Person::Zoe,
        groups: &["sre"],
        machine: false,
    },
    Entry {
        id: "zoe\u{0308}", // NFD
        person: Person::Zoe,
        groups: &["security"],
        machine: false,
    },
    Entry {
        id: "deploy-bot",
        person: Person::DeployBot,
        groups: &["sre", "security", "ops"],
        machine: true,
    },
    Entry {
        id: "ci-bot", // registers the release
        person: Person::CiBot,
        groups: &["ci"],
        machine: true,
    },
];

/// Ids an unverified caller may claim.
const CLAIMED: &[&str] = &[
    "mallory",
    "alice",
    "\u{0430}lice",
    "carol",
    "erin",
    "dana\u{200B}",
    "al\u{202E}ice",
    "\u{FEFF}frank",
    "zoe\u{0308}",
    "Erin",
];
const GROUPS: [&str; 5] = ["sre", "security", "ic", "ops", "ci"];

fn roster_digest() -> Digest {
    Digest::of(b"roster.toml as of this test")
}

/// Who a command claims to come from.
#[derive(Debug, Clone)]
enum Who {
    /// A roster entry, verified by kind 0 roster, 1 SSH signature, 2 OIDC (a machine: OIDC).
    Verified { entry: usize, kind: u8 },
    /// The caller's word: any id, any groups (a bit mask over `GROUPS`).
    Claimed { id: usize, groups: u8 },
}

#[derive(Debug, Clone)]
enum Cmd {
    Approve(Who),
    Reject(Who),
    Override(Who),
    Judge(Who, bool),
    Start(Who),
    Abort(bool, Who),
    RollBack(bool, Who),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        3 => (0..ROSTER.len(), prop_oneof![3 => Just(1u8), 1 => Just(0u8), 1 => Just(2u8)])
            .prop_map(|(entry, kind)| Who::Verified { entry, kind }),
        1 => (0..CLAIMED.len(), any::<u8>()).prop_map(|(id, groups)| Who::Claimed { id, groups }),
    ]
}

fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        6 => who().prop_map(Cmd::Approve),
        1 => who().prop_map(Cmd::Reject),
        3 => who().prop_map(Cmd::Override),
        3 => (who(), prop::bool::weighted(0.9)).prop_map(|(w, p)| Cmd::Judge(w, p)),
        3 => who().prop_map(Cmd::Start),
        1 => (any::<bool>(), who()).prop_map(|(s, w)| Cmd::Abort(s, w)),
        1 => (any::<bool>(), who()).prop_map(|(s, w)| Cmd::RollBack(s, w)),
    ]
}

/// A roster entry named in `pool`, verified mostly by SSH signature.
fn one_of(pool: &'static [&'static str]) -> impl Strategy<Value = Who> {
    (
        prop::sample::select(pool),
        prop_oneof![6 => Just(1u8), 1 => Just(0u8), 1 => Just(2u8)],
    )
        .prop_map(|(id, kind)| Who::Verified {
            entry: ROSTER.iter().position(|e| e.id == id).unwrap_or(0),
            kind,
        })
}

/// Attempts along the path to promotion, in its order, by people drawn from plausible pools
/// (stakeholders and look-alikes among them): without these, random sequences almost never
/// get far enough into `prod` for the property to bite.
fn path() -> impl Strategy<Value = Vec<Cmd>> {
    const ANYONE: &[&str] = &[
        "alice",
        "\u{0430}lice",
        "ALICE",
        "bob",
        "carol",
        "dana",
        "Dana",
        "erin",
        "frank",
        "zo\u{00EB}",
        "zoe\u{0308}",
        "deploy-bot",
    ];
    (
        prop::collection::vec(
            one_of(&["ALICE", "bob", "carol", "dana", "frank"]).prop_map(Cmd::Override),
            2..5,
        ),
        prop::collection::vec(
            one_of(&["alice", "frank", "deploy-bot"]).prop_map(Cmd::Start),
            2..4,
        ),
        prop::collection::vec(one_of(ANYONE).prop_map(|w| Cmd::Judge(w, true)), 2..5),
        prop::collection::vec(one_of(ANYONE).prop_map(Cmd::Approve), 3..9),
    )
        .prop_map(|(o, s, j, a)| [o, s, j, a].concat())
}

/// Random commands with, in most runs, a [`path`] woven in.
fn sequence() -> impl Strategy<Value = Vec<Cmd>> {
    (
        prop::collection::vec(cmd(), 0..24),
        prop::option::weighted(0.8, path()),
        prop::collection::vec(any::<bool>(), 64),
    )
        .prop_map(|(noise, path, coin)| {
            let path = path.unwrap_or_default();
            let (mut n, mut p) = (noise.into_iter().peekable(), path.into_iter().peekable());
            let mut out = Vec::new();
            let mut coin = coin.into_iter().cycle();
            while n.peek().is_some() || p.peek().is_some() {
                let from_path =
                    p.peek().is_some() && (n.peek().is_none() || coin.next() == Some(true));
                out.extend(if from_path { p.next() } else { n.next() });
            }
            out
        })
}

/// The principal the host hands the engine, with the model's view of it (`None` for a
/// claimed identity: nobody the roster vouches for).
fn principal(w: &Who) -> Option<(Principal, Option<(&'static Entry, VerificationKind)>)> {
    match *w {
        Who::Verified { entry, kind } => {
            let e = &ROSTER[entry];
            let kind = if e.machine {
                VerificationKind::Oidc
            } else {
                [
                    VerificationKind::Roster,
                    VerificationKind::SshSignature,
                    VerificationKind::Oidc,
                ][kind as usize % 3]
            };
            let roster = roster_digest();
            let how = match kind {
                VerificationKind::Roster => Verification::Roster { roster },
                VerificationKind::SshSignature => Verification::SshSignature {
                    roster,
                    namespace: "promotion".into(),
                    signature: "-----BEGIN SSH SIGNATURE-----\n(checked by the host)".into(),
                    statement: String::new(),
                },
                _ => Verification::Oidc {
                    roster,
                    issuer: "https://token.actions.githubusercontent.com".into(),
                    subject: format!("repo:acme/shop:{}", e.id),
                },
            };
            let p = Principal::new(e.id, e.groups.iter().copied()).ok()?;
            Some((p.verified_by(how), Some((e, kind))))
        }
        Who::Claimed { id, groups } => {
            let groups = GROUPS
                .iter()
                .enumerate()
                .filter(|(i, _)| groups & (1 << i) != 0)
                .map(|(_, g)| *g);
            // Ids with invisible characters are refused here, before the engine sees them.
            Principal::new(CLAIMED[id], groups).ok().map(|p| (p, None))
        }
    }
}

fn pipeline() -> Pipeline {
    use ActionKind as A;
    use VerificationKind as V;
    Pipeline::builder("shop", "1")
        .break_glass_group("ic")
        .operator_group("ops")
        .require_verified()
        .accept(A::Register, [V::Oidc, V::Roster])
        .accept(A::Override, [V::SshSignature])
        .accept(A::Judge, [V::SshSignature])
        .stage(StageSpec::new("dev").entry_gate(ScriptedGate::failing("scan")))
        .stage(
            StageSpec::new("prod")
                .after("dev")
                .manual_start()
                .entry_gate(ScriptedGate::new(
                    "perf",
                    [Step::Inconclusive("p99 within noise".into())],
                ))
                .approval(ApprovalPolicy::new(ApprovalRule::all([
                    ApprovalRule::quorum("sre", 1).unwrap(),
                    ApprovalRule::quorum("security", 1).unwrap(),
                ])))
                .accept(A::Approve, [V::SshSignature, V::Roster])
                .accept(A::Start, [V::SshSignature]),
        )
        .build()
        .unwrap()
}

fn release() -> Release {
    Release::builder(
        "shop 1.0",
        "git@example.com:acme/shop",
        "c".repeat(40),
        t0(),
    )
    .artifact(
        "image",
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    )
    .builder("bob")
    .contributor("dana")
    .build()
    .unwrap()
}

/// What the engine accepted, as the model sees it: who (person, entry, kind) did what.
#[derive(Default)]
struct Model {
    approvals: Vec<(Person, &'static Entry, VerificationKind)>,
    overrides: Vec<(Person, &'static Entry, VerificationKind)>,
    judged_pass: Vec<(Person, &'static Entry, VerificationKind)>,
    /// Accepted commands from identities the roster does not vouch for, and approvals from
    /// entries in no approving group (must stay empty).
    unvouched: Vec<String>,
    prod_starters: BTreeSet<Person>,
}

impl Model {
    fn stakeholders(&self) -> BTreeSet<Person> {
        let mut s: BTreeSet<Person> = [Person::Bob, Person::Dana, Person::CiBot].into();
        s.extend(self.prod_starters.iter().copied());
        s
    }

    fn in_group(e: &Entry, g: &str) -> bool {
        e.groups.contains(&g)
    }

    /// `dev`'s failing gate was overridden by a signed person in `ic` with no stake.
    fn dev_met(&self) -> bool {
        let stake = [Person::Bob, Person::Dana, Person::CiBot];
        self.overrides.iter().any(|(p, e, k)| {
            *k == VerificationKind::SshSignature
                && !e.machine
                && Self::in_group(e, "ic")
                && !stake.contains(p)
        })
    }

    /// `prod`'s inconclusive gate was judged a pass by a signed person allowed to judge, and
    /// two different people without a stake approved, one in `sre`, one in `security`.
    fn prod_met(&self) -> bool {
        let stake = self.stakeholders();
        let judged = self.judged_pass.iter().any(|(p, e, k)| {
            *k == VerificationKind::SshSignature
                && !e.machine
                && ["sre", "security", "ic", "ops"]
                    .iter()
                    .any(|g| Self::in_group(e, g))
                && !stake.contains(p)
        });
        let ok: Vec<_> = self
            .approvals
            .iter()
            .filter(|(p, e, k)| {
                matches!(k, VerificationKind::SshSignature | VerificationKind::Roster)
                    && !e.machine
                    && !stake.contains(p)
            })
            .collect();
        let seats = ok.iter().any(|(p1, e1, _)| {
            Self::in_group(e1, "sre")
                && ok
                    .iter()
                    .any(|(p2, e2, _)| p2 != p1 && Self::in_group(e2, "security"))
        });
        judged && seats
    }
}

fn host_command(cmd: &Cmd, p: &Principal) -> Option<HostCommand> {
    let stage = |s: bool| if s { "prod" } else { "dev" };
    match cmd {
        Cmd::Approve(_) => HostCommand::approve("prod", p, "lgtm").ok(),
        Cmd::Reject(_) => HostCommand::reject("prod", p, "not today").ok(),
        Cmd::Override(_) => {
            HostCommand::override_gate("dev", "scan", p, "CVE-2026-1 is not reachable").ok()
        }
        Cmd::Judge(_, pass) => HostCommand::judge("prod", "perf", *pass, p, "read the graphs").ok(),
        Cmd::Start(_) => HostCommand::start("prod", p).ok(),
        Cmd::Abort(s, _) => HostCommand::abort(stage(*s), p, "freeze").ok(),
        Cmd::RollBack(s, _) => HostCommand::roll_back(stage(*s), p, "errors up").ok(),
    }
}

fn who_of(cmd: &Cmd) -> &Who {
    match cmd {
        Cmd::Approve(w)
        | Cmd::Reject(w)
        | Cmd::Override(w)
        | Cmd::Judge(w, _)
        | Cmd::Start(w)
        | Cmd::Abort(_, w)
        | Cmd::RollBack(_, w) => w,
    }
}

/// What one run reached, for the check that the property is not vacuous.
#[derive(Debug, Default, Clone, Copy)]
struct Reached {
    dev_promoted: bool,
    prod_promoted: bool,
}

/// Runs `cmds` against the engine, checking the property after each.
fn run(cmds: &[Cmd]) -> Result<Reached, TestCaseError> {
    block_on(async {
        let store = Arc::new(InMemoryStore::new());
        let engine = Engine::new(
            pipeline(),
            store.clone(),
            Arc::new(RecordingDeployer::new()),
            Arc::new(ManualClock::auto_advancing(t0())),
        );
        let (ci, _) = principal(&Who::Verified {
            entry: ROSTER.len() - 1,
            kind: 2,
        })
        .unwrap();
        let id = engine.register(release(), &ci).await.unwrap();
        engine.run_until_blocked(&id).await.unwrap();
        let mut model = Model::default();
        let mut reached = Reached::default();
        for (n, cmd) in cmds.iter().enumerate() {
            let Some((p, vouched)) = principal(who_of(cmd)) else {
                continue;
            };
            let Some(host) = host_command(cmd, &p) else {
                continue;
            };
            let accepted = engine.submit(&id, host).await.is_ok();
            if accepted {
                match (vouched, cmd) {
                    (None, _) => model.unvouched.push(format!("{cmd:?}")),
                    (Some((e, k)), Cmd::Approve(_)) => {
                        if !["sre", "security"].iter().any(|g| Model::in_group(e, g)) {
                            model
                                .unvouched
                                .push(format!("{cmd:?}: not in sre or security"));
                        }
                        model.approvals.push((e.person, e, k))
                    }
                    (Some((e, k)), Cmd::Override(_)) => model.overrides.push((e.person, e, k)),
                    (Some((e, k)), Cmd::Judge(_, true)) => model.judged_pass.push((e.person, e, k)),
                    (Some((e, _)), Cmd::Start(_)) => {
                        model.prod_starters.insert(e.person);
                    }
                    _ => {}
                }
            }
            engine.run_until_blocked(&id).await.unwrap();
            let events = store.read(&StreamId::for_release(&id)).await.unwrap();
            let history = || {
                events
                    .iter()
                    .map(|r| format!("  {}", r.event.body))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            prop_assert!(
                model.unvouched.is_empty(),
                "after command {n}, the engine accepted what it should not: {:?}\n{}",
                model.unvouched,
                history()
            );
            for r in &events {
                match &r.event.body {
                    EventBody::StageScheduled { stage, .. }
                    | EventBody::StagePromoted { stage } => {
                        let met = match stage.as_str() {
                            "dev" => model.dev_met(),
                            _ => model.prod_met(),
                        };
                        prop_assert!(
                            met,
                            "after command {n} ({cmd:?}) stage `{stage}` went ahead but its rule \
                             is not met by distinct verified people from the roster\n{}",
                            history()
                        );
                        if let EventBody::StagePromoted { stage } = &r.event.body {
                            match stage.as_str() {
                                "dev" => reached.dev_promoted = true,
                                _ => reached.prod_promoted = true,
                            }
                        }
                    }
                    EventBody::ApprovalGiven { principal, .. } => {
                        let kind = principal.verified.as_ref().map(Verification::kind);
                        prop_assert!(
                            matches!(
                                kind,
                                Some(VerificationKind::SshSignature | VerificationKind::Roster)
                            ),
                            "approval by {} recorded with {kind:?}",
                            principal.id
                        );
                    }
                    _ => {}
                }
            }
        }
        Ok(reached)
    })
}

#[test]
fn no_sequence_of_claimed_identities_promotes_a_stage_whose_rule_is_unmet() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(384);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let promoted = std::cell::Cell::new((0u32, 0u32));
    let result = runner.run(&sequence(), |cmds| {
        let reached = run(&cmds)?;
        let (d, p) = promoted.get();
        promoted.set((
            d + u32::from(reached.dev_promoted),
            p + u32::from(reached.prod_promoted),
        ));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The property is not vacuous: honest sequences do promote, under the same checks.
    let (dev, prod) = promoted.get();
    eprintln!("{cases} runs: dev promoted in {dev}, prod in {prod}");
    assert!(
        dev > 0 && prod > 0,
        "dev {dev}, prod {prod} of {cases} runs"
    );
}

/// The honest path through the same harness: a signed breaker of glass, a starter, a signed
/// judge and two approvers from different people promote both stages.
#[test]
fn the_honest_path_promotes_under_the_same_checks() {
    let v = |entry: &str, kind: u8| Who::Verified {
        entry: ROSTER.iter().position(|e| e.id == entry).unwrap(),
        kind,
    };
    let reached = run(&[
        Cmd::Override(v("carol", 1)),
        Cmd::Start(v("frank", 1)),
        Cmd::Judge(v("carol", 1), true),
        Cmd::Approve(v("erin", 0)),
        Cmd::Approve(v("carol", 1)),
    ])
    .unwrap();
    assert!(reached.dev_promoted && reached.prod_promoted, "{reached:?}");
    // One person under three spellings, the builder and a machine do not.
    let reached = run(&[
        Cmd::Override(v("carol", 1)),
        Cmd::Start(v("frank", 1)),
        Cmd::Judge(v("carol", 1), true),
        Cmd::Approve(v("alice", 1)),
        Cmd::Approve(v("\u{0430}lice", 1)),
        Cmd::Approve(v("ALICE", 0)),
        Cmd::Approve(v("bob", 1)),
        Cmd::Approve(v("Dana", 1)),
        Cmd::Approve(v("deploy-bot", 2)),
        Cmd::Approve(v("erin", 2)),
        Cmd::Approve(Who::Claimed {
            id: 0,
            groups: 0b11,
        }),
    ])
    .unwrap();
    assert!(
        reached.dev_promoted && !reached.prod_promoted,
        "{reached:?}"
    );
}
