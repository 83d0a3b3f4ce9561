#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Issue 15 and 16: an evidence pack carries every SSH-signed decision (statement and
//! signature), the roster it was made under with its `allowed_signers` rendering, and the keys
//! that verify the pack — so an auditor holding only the pack checks a signature with the real
//! `ssh-keygen -Y verify`, and the pack's own verification re-verifies every one.
//!
//! Needs `ssh-keygen` (openssh-client): without it each test prints `SKIPPED: …` and returns,
//! and under `CI` it fails instead.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use futures::executor::block_on;
use promotion_audit::{AuditOptions, AuditStore, CheckpointSigner, CheckpointVerifier};
use promotion_core::testing::{RecordingDeployer, ScriptedGate};
use promotion_core::{
    ApprovalPolicy, ApprovalRule, Engine, EventStore, HostCommand, ManualClock, Pipeline,
    Principal, Release, ReleaseId, ReleaseState, StageSpec, StreamId, Verification,
};
use promotion_evidence::pack::{
    Manifest, ATTESTATION_KEY_FILE, CHECKPOINT_KEY_FILE, MANIFEST, MANIFEST_PAYLOAD_TYPE,
    MANIFEST_SIGNATURE,
};
use promotion_evidence::{
    verify_pack, AttestationSigner, AttestationVerifier, EvidencePack, ExportError, ExportOptions,
    PackError,
};
use promotion_identity::{sign_with_key_file, Decision, Roster, Statement, DEFAULT_NAMESPACE};

fn have_ssh_keygen(test: &str) -> bool {
    if Command::new("ssh-keygen").arg("-?").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: CI must install ssh-keygen (openssh-client)"
    );
    eprintln!("SKIPPED: {test} needs ssh-keygen (openssh-client) and did not run");
    false
}

/// A key made by the real `ssh-keygen`; its public line.
fn keygen(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::read_to_string(format!("{}.pub", path.display()))
        .unwrap()
        .trim()
        .to_owned()
}

struct Signed {
    dir: tempfile::TempDir,
    store: AuditStore,
    checkpoint_key: CheckpointVerifier,
    signer: AttestationSigner,
    release: ReleaseId,
    roster: Vec<u8>,
}

impl Signed {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn export(&self, name: &str, rosters: Vec<Vec<u8>>) -> Result<PathBuf, ExportError> {
        let out = self.path(name);
        let options = ExportOptions {
            rosters,
            ..ExportOptions::default()
        };
        block_on(EvidencePack::export_with(
            &self.store,
            &self.release,
            &self.signer,
            &out,
            &options,
        ))?;
        Ok(out)
    }
}

/// Alice (sre) approves production with her SSH key, as the CLI's `approve --key` does; the
/// release promotes. The log is an audit store with signed checkpoints.
fn signed_release() -> Signed {
    let dir = tempfile::tempdir().unwrap();
    let alice = keygen(dir.path(), "alice");
    keygen(dir.path(), "mallory");
    let roster =
        format!("[[people]]\nid = \"alice\"\ngroups = [\"sre\"]\nssh_keys = [\"{alice}\"]\n")
            .into_bytes();
    let parsed = Roster::parse(&roster, "roster.toml").unwrap();
    let log_key = CheckpointSigner::generate("audit.example/shop").unwrap();
    let checkpoint_key = log_key.verifier();
    let store =
        AuditStore::memory(AuditOptions::new("audit.example/shop").signer(log_key)).unwrap();
    let pipeline = Pipeline::builder("shop", "3")
        .stage(
            StageSpec::new("production")
                .entry_gate(ScriptedGate::passing("smoke"))
                .approval(ApprovalPolicy::new(ApprovalRule::quorum("sre", 1).unwrap())),
        )
        .build()
        .unwrap();
    let engine = Engine::new(
        pipeline,
        Arc::new(store.clone()),
        Arc::new(RecordingDeployer::new()),
        Arc::new(ManualClock::at("2026-12-08T09:00:00Z".parse().unwrap())),
    );
    let release = Release::builder(
        "api 1.0",
        "git@example.com:shop/api",
        "a".repeat(40),
        "2026-12-08T08:00:00Z".parse().unwrap(),
    )
    .artifact("api", format!("sha256:{}", "ab".repeat(32)))
    .builder("ci")
    .build()
    .unwrap();
    let id =
        block_on(engine.register(release, &Principal::new("ci-bot", ["ci"]).unwrap())).unwrap();
    block_on(engine.run_until_blocked(&id)).unwrap();
    let events: Vec<_> = block_on(store.read(&StreamId::for_release(&id)))
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect();
    let state = ReleaseState::replay(events.iter());
    let statement = Statement {
        release: id,
        stage: "production".parse().unwrap(),
        decision: Decision::Approve,
        evidence: state.stage("production").entry_digest(),
        pipeline_version: state.pipeline_version().to_owned(),
        roster: parsed.digest(),
        comment: "smoke green, canary fine".into(),
        time: "2026-12-08T09:05:00Z".parse().unwrap(),
    }
    .to_bytes()
    .unwrap();
    let signature =
        sign_with_key_file(dir.path().join("alice"), DEFAULT_NAMESPACE, &statement).unwrap();
    let principal = parsed
        .principal("alice")
        .unwrap()
        .verified_by(Verification::SshSignature {
            roster: parsed.digest(),
            namespace: DEFAULT_NAMESPACE.into(),
            signature,
            statement: String::from_utf8(statement).unwrap(),
        });
    block_on(engine.submit(
        &id,
        HostCommand::approve("production", &principal, "smoke green, canary fine").unwrap(),
    ))
    .unwrap();
    block_on(engine.run_until_blocked(&id)).unwrap();
    Signed {
        dir,
        store,
        checkpoint_key,
        signer: AttestationSigner::generate().unwrap(),
        release: id,
        roster,
    }
}

fn manifest(pack: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(pack.join(MANIFEST)).unwrap()).unwrap()
}

/// `ssh-keygen -Y verify -f <allowed_signers> -I <id> -n <namespace> -s <sig> < <statement>`,
/// run in `cwd` with the pack's relative paths, as README's "Who acted" documents it.
fn ssh_keygen_verify(
    cwd: &Path,
    allowed: &str,
    id: &str,
    ns: &str,
    sig: &str,
    message: &[u8],
) -> bool {
    let mut child = Command::new("ssh-keygen")
        .current_dir(cwd)
        .args(["-Y", "verify", "-f", allowed, "-I", id, "-n", ns, "-s", sig])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    out.status.success()
}

fn resign_manifest(dir: &Path, signer: &AttestationSigner) {
    let mut manifest = manifest(dir);
    for f in &mut manifest.files {
        let bytes = std::fs::read(dir.join(&f.path)).unwrap();
        f.sha256 = promotion_core::Digest::of(&bytes).to_hex();
        f.size = bytes.len() as u64;
    }
    let mut bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    bytes.push(b'\n');
    std::fs::write(dir.join(MANIFEST), &bytes).unwrap();
    let env = signer.sign(MANIFEST_PAYLOAD_TYPE, &bytes);
    std::fs::write(dir.join(MANIFEST_SIGNATURE), env.to_json().unwrap()).unwrap();
}

#[test]
fn a_signature_taken_out_of_a_pack_verifies_with_the_real_ssh_keygen_and_a_changed_byte_fails_both()
{
    if !have_ssh_keygen("a_signature_taken_out_of_a_pack_verifies_with_the_real_ssh_keygen") {
        return;
    }
    let s = signed_release();
    let pack = s.export("pack", vec![s.roster.clone()]).unwrap();
    let report = verify_pack(&pack, &s.checkpoint_key, &s.signer.verifier()).unwrap();
    assert_eq!(report.signed_decisions, 1);

    let m = manifest(&pack);
    assert_eq!(m.signed_decisions.len(), 1, "{m:?}");
    let d = &m.signed_decisions[0];
    assert_eq!(d.principal, "alice");
    assert_eq!(d.namespace, "promotion");
    assert_eq!(d.kind, "approval_given");
    assert_eq!(d.stage.as_deref(), Some("production"));
    assert_eq!(m.rosters.len(), 1);
    assert_eq!(
        std::fs::read(pack.join(&m.rosters[0].path)).unwrap(),
        s.roster,
        "the roster file travels byte for byte"
    );

    // Out of the pack, onto disk elsewhere: only these three files and OpenSSH.
    let auditor = s.path("auditor");
    std::fs::create_dir(&auditor).unwrap();
    for (from, to) in [
        (&d.allowed_signers, "allowed_signers"),
        (&d.signature, "statement.json.sig"),
        (&d.statement, "statement.json"),
    ] {
        std::fs::copy(pack.join(from), auditor.join(to)).unwrap();
    }
    let statement = std::fs::read(auditor.join("statement.json")).unwrap();
    assert!(ssh_keygen_verify(
        &auditor,
        "allowed_signers",
        "alice",
        "promotion",
        "statement.json.sig",
        &statement
    ));
    // the same with the pack's own relative paths, as documented
    assert!(ssh_keygen_verify(
        &pack,
        &d.allowed_signers,
        &d.principal,
        &d.namespace,
        &d.signature,
        &statement
    ));
    // another identity, another namespace: refused
    assert!(!ssh_keygen_verify(
        &auditor,
        "allowed_signers",
        "bob",
        "promotion",
        "statement.json.sig",
        &statement
    ));
    assert!(!ssh_keygen_verify(
        &auditor,
        "allowed_signers",
        "alice",
        "git",
        "statement.json.sig",
        &statement
    ));

    // One changed byte in the statement: OpenSSH and our verifier both refuse it.
    let text = String::from_utf8(statement.clone()).unwrap();
    let changed = text.replace("canary fine", "canary Fine");
    assert_eq!(changed.len(), text.len());
    assert!(!ssh_keygen_verify(
        &auditor,
        "allowed_signers",
        "alice",
        "promotion",
        "statement.json.sig",
        changed.as_bytes()
    ));
    let roster = Roster::parse(&s.roster, "roster.toml").unwrap();
    let signature = std::fs::read_to_string(auditor.join("statement.json.sig")).unwrap();
    assert_eq!(
        roster
            .verify_signed(&statement, &signature, "promotion")
            .unwrap()
            .id
            .as_str(),
        "alice"
    );
    let err = roster
        .verify_signed(changed.as_bytes(), &signature, "promotion")
        .unwrap_err();
    assert!(
        err.to_string().contains("does not match the statement"),
        "{err}"
    );

    // …and in the pack, even under a manifest re-signed with the attestation key
    std::fs::write(pack.join(&d.statement), &changed).unwrap();
    resign_manifest(&pack, &s.signer);
    let err = verify_pack(&pack, &s.checkpoint_key, &s.signer.verifier()).unwrap_err();
    let PackError::Invalid { problems } = &err else {
        panic!("{err}");
    };
    assert_eq!(problems.len(), 1, "{err}");
    assert_eq!(problems[0].file, d.statement);
    assert_eq!(problems[0].entry, Some(d.entry));
    assert!(
        problems[0]
            .problem
            .contains("is not what the log entry records"),
        "{err}"
    );
}

#[test]
fn a_pack_whose_roster_was_swapped_or_that_lacks_it_does_not_verify() {
    if !have_ssh_keygen("a_pack_whose_roster_was_swapped_or_that_lacks_it_does_not_verify") {
        return;
    }
    let s = signed_release();
    // an export that was not given the roster a decision names refuses, naming it
    let err = s.export("no-roster", Vec::new()).unwrap_err();
    assert!(matches!(err, ExportError::RosterMissing { .. }), "{err}");
    assert!(
        err.to_string().contains("signed under roster sha256:"),
        "{err}"
    );

    // Alice's key swapped for Mallory's in the pack's roster and allowed_signers, Mallory's
    // signature in place of Alice's, the manifest re-signed: the roster no longer hashes to
    // the digest the log entry records, and the signature file is not the log's
    let pack = s.export("pack", vec![s.roster.clone()]).unwrap();
    let m = manifest(&pack);
    let d = &m.signed_decisions[0];
    let mallory = std::fs::read_to_string(s.path("mallory.pub")).unwrap();
    let swapped = format!(
        "[[people]]\nid = \"alice\"\ngroups = [\"sre\"]\nssh_keys = [\"{}\"]\n",
        mallory.trim()
    );
    std::fs::write(pack.join(&m.rosters[0].path), &swapped).unwrap();
    let signers = Roster::parse(swapped.as_bytes(), "r")
        .unwrap()
        .allowed_signers("promotion")
        .unwrap();
    std::fs::write(pack.join(&d.allowed_signers), &signers).unwrap();
    let statement = std::fs::read(pack.join(&d.statement)).unwrap();
    let forged = sign_with_key_file(s.path("mallory"), "promotion", &statement).unwrap();
    std::fs::write(pack.join(&d.signature), &forged).unwrap();
    // OpenSSH, given the swapped allowed_signers, would accept Mallory's signature as Alice's:
    // which is why the roster must hash to the digest the log records
    assert!(ssh_keygen_verify(
        &pack,
        &d.allowed_signers,
        "alice",
        "promotion",
        &d.signature,
        &statement
    ));
    resign_manifest(&pack, &s.signer);
    let err = verify_pack(&pack, &s.checkpoint_key, &s.signer.verifier()).unwrap_err();
    let PackError::Invalid { problems } = &err else {
        panic!("{err}");
    };
    let text = err.to_string();
    assert!(
        problems
            .iter()
            .any(|p| p.file == m.rosters[0].path
                && p.problem.contains("does not hash to the digest")),
        "{text}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.file == d.signature
                && p.problem.contains("is not what the log entry records")),
        "{text}"
    );
    assert!(
        problems.iter().any(|p| p.entry == Some(d.entry)
            && p.problem.contains("the signed decision does not verify")),
        "{text}"
    );
}

/// Issue 16, item 6: an auditor holding only the pack has every key it needs — the keys
/// travel in `keys/`, the pack verifies with them, and they are the log's and the attestation
/// signer's (what the auditor compares with the published fingerprints). A pack carrying
/// another key than the one it is verified with says so.
#[test]
fn the_pack_carries_the_keys_that_verify_it() {
    if !have_ssh_keygen("the_pack_carries_the_keys_that_verify_it") {
        return;
    }
    let s = signed_release();
    let pack = s.export("pack", vec![s.roster.clone()]).unwrap();
    let m = manifest(&pack);
    let keys = m.keys.as_ref().expect("the pack names its keys");
    assert_eq!(keys.checkpoint, CHECKPOINT_KEY_FILE);
    assert_eq!(keys.attestation, ATTESTATION_KEY_FILE);
    let vkey = std::fs::read_to_string(pack.join(CHECKPOINT_KEY_FILE)).unwrap();
    let checkpoint_key = CheckpointVerifier::from_verifier_key(vkey.trim()).unwrap();
    let pem = std::fs::read_to_string(pack.join(ATTESTATION_KEY_FILE)).unwrap();
    let attestation_key = AttestationVerifier::from_public_key_pem(&pem).unwrap();
    assert_eq!(
        checkpoint_key.verifier_key(),
        s.checkpoint_key.verifier_key()
    );
    assert_eq!(attestation_key.keyid(), s.signer.verifier().keyid());
    // everything, with the pack's keys alone: the log, the attestations, the SSH signatures
    let report = verify_pack(&pack, &checkpoint_key, &attestation_key).unwrap();
    assert_eq!(report.signed_decisions, 1);
    assert!(!report.attestations.is_empty());

    // a pack whose key file was replaced (manifest re-signed): named
    let other = CheckpointSigner::generate("audit.example/shop").unwrap();
    std::fs::write(
        pack.join(CHECKPOINT_KEY_FILE),
        format!("{}\n", other.verifier_key()),
    )
    .unwrap();
    resign_manifest(&pack, &s.signer);
    let err = verify_pack(&pack, &s.checkpoint_key, &s.signer.verifier()).unwrap_err();
    assert!(
        err.to_string()
            .contains("keys/checkpoint.vkey: is not the trusted checkpoint key"),
        "{err}"
    );
}
