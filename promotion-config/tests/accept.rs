//! `[pipeline.accept]` and `[stages.accept]`: which verifications the pipeline accepts for each
//! action, as a template says it, and where a bad rule is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use promotion_config::{ConfigError, ErrorKind, Loader};
use promotion_core::{ActionKind as A, VerificationKind as V};

const TEMPLATE: &str = r#"[template]
name = "signed"
version = "1.0.0"

[pipeline]
break_glass = ["ic"]
require_verified = true

[pipeline.accept]
register = ["oidc", "roster"]
override = ["ssh_signature"]

[[stages]]
name = "dev"

[stages.accept]
override = ["roster", "ssh_signature"]

[[stages]]
name = "production"
after = ["dev"]
approval = "1 of sre AND 1 of security"

[stages.accept]
approve = ["ssh_signature"]
roll_back = ["ssh_signature"]
"#;

fn load(text: &str) -> Result<promotion_config::Loaded, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signed.toml");
    std::fs::write(&path, text).unwrap();
    Loader::new().load(&path)
}

fn kinds(k: &[V]) -> std::collections::BTreeSet<V> {
    k.iter().copied().collect()
}

#[test]
fn the_template_says_which_verifications_each_action_accepts_per_stage() {
    let p = load(TEMPLATE).unwrap().pipeline;
    assert_eq!(
        p.accepted_for(None, A::Register),
        Some(&kinds(&[V::Roster, V::Oidc]))
    );
    assert_eq!(
        p.accepted_for(Some("production"), A::Approve),
        Some(&kinds(&[V::SshSignature]))
    );
    assert_eq!(
        p.accepted_for(Some("production"), A::RollBack),
        Some(&kinds(&[V::SshSignature]))
    );
    // production has no override rule of its own: the pipeline's applies; dev's replaces it.
    assert_eq!(
        p.accepted_for(Some("production"), A::Override),
        Some(&kinds(&[V::SshSignature]))
    );
    assert_eq!(
        p.accepted_for(Some("dev"), A::Override),
        Some(&kinds(&[V::Roster, V::SshSignature]))
    );
    assert_eq!(p.accepted_for(Some("dev"), A::Approve), None);
    assert!(p.requires_verified());
}

#[test]
fn changing_a_rule_changes_the_pipeline_version_so_earlier_approvals_stop_counting() {
    let before = load(TEMPLATE).unwrap().pipeline;
    let relaxed = TEMPLATE.replacen(
        "approve = [\"ssh_signature\"]",
        "approve = [\"ssh_signature\", \"roster\"]",
        1,
    );
    let after = load(&relaxed).unwrap().pipeline;
    assert_ne!(before.version(), after.version());
    assert_eq!(
        after.accepted_for(Some("production"), A::Approve),
        Some(&kinds(&[V::Roster, V::SshSignature]))
    );
}

fn refused(from: &str, to: &str) -> ConfigError {
    assert!(TEMPLATE.contains(from), "{from}");
    match load(&TEMPLATE.replacen(from, to, 1)) {
        Ok(_) => panic!("expected a refusal of {to}"),
        Err(e) => e,
    }
}

#[test]
fn a_bad_rule_is_refused_where_it_is_written() {
    let e = refused("approve = [\"ssh_signature\"]", "approve = []");
    assert_eq!(e.kind(), ErrorKind::InvalidValue);
    let at = e.location().unwrap();
    assert_eq!((at.line, at.column), (25, 11), "{e}");
    assert!(
        e.message()
            .contains("`accept.approve` accepts no verification"),
        "{e}"
    );

    let e = refused(
        "override = [\"roster\", \"ssh_signature\"]",
        "register = [\"roster\"]",
    );
    assert_eq!(e.location().unwrap().line, 17, "{e}");
    assert!(e.message().contains("is pipeline-wide"), "{e}");

    let e = refused("approve = [\"ssh_signature\"]", "approve = [\"ssh\"]");
    assert!(e.to_string().contains("ssh"), "{e}");
    assert!(e.to_string().contains("ssh_signature"), "{e}");
    // serde points at the `[stages.accept]` table that holds the unknown name
    assert_eq!(e.location().unwrap().line, 24, "{e}");

    let e = refused("roll_back = [", "rollback = [");
    assert!(e.to_string().contains("rollback"), "{e}");
    assert!(e.to_string().contains("roll_back"), "{e}");
}
