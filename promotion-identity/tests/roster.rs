#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The roster: what loads, what is refused and how each refusal names the place.

use promotion_core::Digest;
use promotion_identity::{Roster, RosterProblem};
use rand_core::OsRng;
use ssh_key::{Algorithm, PrivateKey};

fn key_line(comment: &str) -> String {
    let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
    let mut public = key.public_key().clone();
    public.set_comment(comment);
    public.to_openssh().unwrap()
}

fn refused(toml: &str) -> promotion_identity::RosterError {
    match Roster::parse(toml.as_bytes(), "org/roster.toml") {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(e) => e,
    }
}

#[test]
fn a_valid_roster_gives_principals_with_its_groups_and_its_digest() {
    let alice = key_line("alice@laptop");
    let toml = format!(
        r#"
[[people]]
id = "alice"
name = "Alice Ng"
groups = ["sre", "oncall"]
ssh_keys = ["{alice}"]

[[people]]
id = "bob"
groups = ["security"]

[[machines]]
id = "ci-web"
groups = ["ci"]
issuer = "https://token.actions.githubusercontent.com"
audience = "promotion"
[machines.claims]
repository = "acme/web"
ref = "refs/heads/main"
"#
    );
    let roster = Roster::parse(toml.as_bytes(), "roster.toml").unwrap();
    let a = roster.principal("alice").unwrap();
    assert_eq!(
        a.groups.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        ["oncall", "sre"]
    );
    assert!(roster.principal("ci-web").unwrap().in_group("ci"));
    assert!(roster.principal("mallory").is_none());
    // A look-alike spelling of a listed id is not that id.
    assert!(roster.principal("b\u{43e}b").is_none());
    assert_eq!(roster.people()[0].name.as_deref(), Some("Alice Ng"));

    // The digest is SHA-256 of the exact bytes: any edit, even a comment, changes it.
    assert_eq!(roster.digest(), Digest::of(toml.as_bytes()));
    let edited = format!("# reviewed\n{toml}");
    let again = Roster::parse(edited.as_bytes(), "roster.toml").unwrap();
    assert_ne!(again.digest(), roster.digest());
}

#[test]
fn load_names_the_file_and_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roster.toml");
    std::fs::write(&path, "[[people]]\nid = \"alice\"\n").unwrap();
    assert!(Roster::load(&path).unwrap().principal("alice").is_some());

    let missing = dir.path().join("nope.toml");
    let err = Roster::load(&missing).unwrap_err();
    assert_eq!(err.file, missing.display().to_string());
    assert!(matches!(*err.problem, RosterProblem::Io(_)));
}

#[test]
fn duplicate_and_look_alike_ids_are_refused_across_people_and_machines() {
    let err = refused("[[people]]\nid = \"dana\"\n[[people]]\nid = \"dana\"\n");
    assert!(
        matches!(*err.problem, RosterProblem::DuplicateId { .. }),
        "{err}"
    );
    assert_eq!(err.location.entry.as_deref(), Some("people[1] (dana)"));
    assert_eq!(err.location.field.as_deref(), Some("id"));

    // Cyrillic а (U+0430) in place of Latin a.
    let err = refused("[[people]]\nid = \"dana\"\n[[people]]\nid = \"d\u{430}na\"\n");
    assert!(
        matches!(*err.problem, RosterProblem::LookAlike { .. }),
        "{err}"
    );

    // A machine may not take a person's id either.
    let err = refused(
        "[[people]]\nid = \"deploy\"\n[[machines]]\nid = \"dep1oy\"\nissuer = \"https://gitlab.com\"\naudience = \"p\"\nclaims = { project_path = \"acme/web\" }\n",
    );
    assert!(
        matches!(*err.problem, RosterProblem::LookAlike { .. }),
        "{err}"
    );
    assert_eq!(err.location.entry.as_deref(), Some("machines[0] (dep1oy)"));
}

#[test]
fn invisible_characters_in_ids_groups_and_names_are_refused_where_they_are() {
    let err = refused("[[people]]\nid = \"dana\u{200B}\"\n");
    assert!(
        matches!(*err.problem, RosterProblem::InvalidName(_)),
        "{err}"
    );
    assert_eq!(err.location.entry.as_deref(), Some("people[0]"));

    let err = refused("[[people]]\nid = \"dana\"\ngroups = [\"sre\", \"se\u{202E}curity\"]\n");
    assert!(
        matches!(*err.problem, RosterProblem::InvalidName(_)),
        "{err}"
    );
    assert_eq!(err.location.field.as_deref(), Some("groups[1]"));

    let err = refused("[[people]]\nid = \"dana\"\nname = \"Dana \u{2066}Admin\"\n");
    assert!(
        matches!(*err.problem, RosterProblem::InvalidName(_)),
        "{err}"
    );
    assert_eq!(err.location.field.as_deref(), Some("name"));
    assert!(err.to_string().contains("display"), "{err}");
}

#[test]
fn ids_and_names_are_kept_in_nfc_and_found_by_either_spelling() {
    // "José" with a combining acute accent (decomposed) in the file.
    let roster = Roster::parse(
        "[[people]]\nid = \"jose\u{301}\"\nname = \"Jose\u{301} Ruiz\"\n".as_bytes(),
        "r.toml",
    )
    .unwrap();
    assert_eq!(roster.people()[0].id, "jos\u{e9}");
    assert_eq!(roster.people()[0].name.as_deref(), Some("Jos\u{e9} Ruiz"));
    assert!(roster.principal("jos\u{e9}").is_some());
    assert!(roster.principal("jose\u{301}").is_some());
}

#[test]
fn ids_that_would_be_patterns_in_allowed_signers_are_refused() {
    // `*` as a principal would match every `ssh-keygen -Y verify -I <anyone>`.
    for id in [
        "*",
        "al?ce",
        "alice,bob",
        "!bob",
        "#root",
        "a\"b",
        "alice smith",
    ] {
        let err = refused(&format!("[[people]]\nid = {}\n", toml_string(id)));
        assert!(
            matches!(
                *err.problem,
                RosterProblem::UnsafePrincipal { .. } | RosterProblem::InvalidName(_)
            ),
            "{id}: {err}"
        );
    }
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[test]
fn one_ssh_key_for_two_people_is_refused_whatever_the_comments() {
    let line = key_line("alice@laptop");
    let (base, _) = line.rsplit_once(' ').unwrap();
    let toml = format!(
        "[[people]]\nid = \"alice\"\nssh_keys = [\"{line}\"]\n[[people]]\nid = \"bob\"\nssh_keys = [\"{base} bob@desk\"]\n"
    );
    let err = refused(&toml);
    assert!(
        matches!(&*err.problem, RosterProblem::DuplicateKey { owner, .. } if owner == "alice"),
        "{err}"
    );
    assert_eq!(err.location.entry.as_deref(), Some("people[1] (bob)"));
    assert_eq!(err.location.field.as_deref(), Some("ssh_keys[0]"));
}

#[test]
fn unparseable_keys_and_smuggled_lines_are_refused() {
    let err = refused("[[people]]\nid = \"alice\"\nssh_keys = [\"ssh-ed25519 not-base64!\"]\n");
    assert!(matches!(*err.problem, RosterProblem::BadKey(_)), "{err}");
    assert_eq!(err.location.field.as_deref(), Some("ssh_keys[0]"));

    // A second line inside the key's comment would become a second allowed_signers entry.
    let line = key_line("x");
    let toml = format!("[[people]]\nid = \"alice\"\nssh_keys = [\"{line}\\nmallory {line}\"]\n");
    let err = refused(&toml);
    assert!(matches!(*err.problem, RosterProblem::BadKey(_)), "{err}");
}

#[test]
fn a_misspelt_field_is_an_error_not_a_lost_membership() {
    let err = refused("[[people]]\nid = \"alice\"\ngroup = [\"sre\"]\n");
    assert!(matches!(*err.problem, RosterProblem::Toml(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("org/roster.toml") && text.contains("group"),
        "{text}"
    );
}

#[test]
fn a_machine_needs_claim_rules_an_issuer_and_an_audience() {
    let err = refused(
        "[[machines]]\nid = \"ci\"\nissuer = \"https://token.actions.githubusercontent.com\"\naudience = \"promotion\"\n",
    );
    assert_eq!(*err.problem, RosterProblem::NoClaims);
    assert_eq!(err.location.entry.as_deref(), Some("machines[0] (ci)"));

    let err = refused(
        "[[machines]]\nid = \"ci\"\nissuer = \" \"\naudience = \"promotion\"\nclaims = { repository = \"acme/web\" }\n",
    );
    assert_eq!(*err.problem, RosterProblem::Empty);
    assert_eq!(err.location.field.as_deref(), Some("issuer"));
}

#[test]
fn allowed_signers_has_one_line_per_key_without_comments_and_refuses_bad_namespaces() {
    let a1 = key_line("alice@laptop");
    let a2 = key_line("alice@desk");
    let b = key_line("bob");
    let toml = format!(
        "[[people]]\nid = \"alice\"\nssh_keys = [\"{a1}\", \"{a2}\"]\n[[people]]\nid = \"bob\"\nssh_keys = [\"{b}\"]\n"
    );
    let roster = Roster::parse(toml.as_bytes(), "roster.toml").unwrap();
    let text = roster.allowed_signers("promotion").unwrap();
    let strip = |l: &str| l.rsplit_once(' ').unwrap().0.to_owned();
    assert_eq!(
        text,
        format!(
            "alice namespaces=\"promotion\" {}\nalice namespaces=\"promotion\" {}\nbob namespaces=\"promotion\" {}\n",
            strip(&a1),
            strip(&a2),
            strip(&b)
        )
    );
    // A namespace that closes the quote would add options (cert-authority) to every line.
    for ns in [
        "",
        "promotion\" cert-authority x=\"",
        "a,b",
        "pro motion",
        "a\nb",
    ] {
        assert!(roster.allowed_signers(ns).is_err(), "{ns:?}");
    }
}

#[test]
fn printing_an_error_about_a_hostile_roster_cannot_rewrite_the_terminal() {
    // Raw bidi override in the file, inside an id and inside a line TOML quotes back.
    for toml in [
        "[[people]]\nid = \"dana\u{202E}nimda\"\n",
        "[[people]]\nid = \"dana\"\ngroups = [\"sre\"\u{202E}]\n",
    ] {
        let err = refused(toml);
        let shown = err.to_string();
        assert!(!shown.contains('\u{202E}'), "{shown:?}");
        assert!(shown.contains("\\u{202e}"), "{shown:?}");
    }
}
