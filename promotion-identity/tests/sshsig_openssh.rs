#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! SSH-signed statements against the real OpenSSH: `ssh-keygen -Y sign` signs what the library
//! verifies, the library signs what `ssh-keygen -Y verify` accepts with the roster's
//! `allowed_signers` file, and both refuse the same forgeries.
//!
//! Needs `ssh-keygen` (Debian's openssh-client); without it each test prints `SKIPPED: …`
//! and returns, and under `CI` it fails instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use promotion_identity::{sign_with_key_file, Decision, Roster, SignatureError, Statement};

const NS: &str = "promotion";

fn ssh_keygen(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("ssh-keygen"))
                .find(|p| p.is_file())
        })
        .unwrap_or(None)
        .or_else(|| Some(PathBuf::from("/usr/bin/ssh-keygen")).filter(|p| p.is_file()));
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: ssh-keygen is not installed (openssh-client); CI must install it");
        }
        eprintln!("SKIPPED: {test} needs ssh-keygen (openssh-client) and did not run");
    }
    found
}

struct Fixture {
    bin: PathBuf,
    dir: tempfile::TempDir,
    roster: Roster,
}

impl Fixture {
    /// Alice (ed25519), Bob (ecdsa p256) in the roster; Mallory's key exists but is not listed.
    fn new(bin: PathBuf) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for (name, kind) in [
            ("alice", "ed25519"),
            ("bob", "ecdsa"),
            ("mallory", "ed25519"),
        ] {
            let key = dir.path().join(name);
            let ok = Command::new(&bin)
                .args([
                    "-q",
                    "-t",
                    kind,
                    "-N",
                    "",
                    "-C",
                    &format!("{name}@host"),
                    "-f",
                ])
                .arg(&key)
                .status()
                .unwrap()
                .success();
            assert!(ok, "ssh-keygen could not make {name}'s key");
        }
        let public = |name: &str| {
            std::fs::read_to_string(dir.path().join(format!("{name}.pub")))
                .unwrap()
                .trim()
                .to_owned()
        };
        let toml = format!(
            "[[people]]\nid = \"alice\"\ngroups = [\"sre\"]\nssh_keys = [\"{}\"]\n\n[[people]]\nid = \"bob\"\ngroups = [\"security\"]\nssh_keys = [\"{}\"]\n",
            public("alice"),
            public("bob")
        );
        let roster = Roster::parse(toml.as_bytes(), "roster.toml").unwrap();
        std::fs::write(
            dir.path().join("allowed_signers"),
            roster.allowed_signers(NS).unwrap(),
        )
        .unwrap();
        Fixture { bin, dir, roster }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn statement(&self, comment: &str) -> Vec<u8> {
        Statement {
            release: format!("sha256:{}", "ab".repeat(32)).parse().unwrap(),
            stage: "production".parse().unwrap(),
            decision: Decision::Judge {
                gate: "canary-analysis".parse().unwrap(),
                pass: true,
            },
            evidence: format!("sha256:{}", "cd".repeat(32)).parse().unwrap(),
            pipeline_version: "v12".into(),
            roster: self.roster.digest(),
            comment: comment.into(),
            time: "2026-12-07T21:15:30.25Z".parse().unwrap(),
        }
        .to_bytes()
        .unwrap()
    }

    /// `ssh-keygen -Y sign -f KEY -n NS FILE`, returning the armored signature.
    fn openssh_sign(&self, key: &str, namespace: &str, message: &[u8]) -> String {
        let file = self.path("to-sign.json");
        std::fs::write(&file, message).unwrap();
        let sig = self.path("to-sign.json.sig");
        let _ = std::fs::remove_file(&sig);
        let out = Command::new(&self.bin)
            .args(["-Y", "sign", "-n", namespace, "-f"])
            .arg(self.path(key))
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(sig).unwrap()
    }

    /// `ssh-keygen -Y verify -f allowed_signers -I ID -n NS -s SIG < STATEMENT`: the command
    /// the crate docs give an auditor.
    fn openssh_verify(&self, id: &str, namespace: &str, message: &[u8], armored: &str) -> bool {
        let sig = self.path("statement.sig");
        std::fs::write(&sig, armored).unwrap();
        let statement = self.path("statement.json");
        std::fs::write(&statement, message).unwrap();
        let out = Command::new(&self.bin)
            .args(["-Y", "verify", "-f"])
            .arg(self.path("allowed_signers"))
            .args(["-I", id, "-n", namespace, "-s"])
            .arg(&sig)
            .stdin(Stdio::from(std::fs::File::open(&statement).unwrap()))
            .output()
            .unwrap();
        out.status.success()
    }
}

fn fixture(test: &str) -> Option<Fixture> {
    ssh_keygen(test).map(Fixture::new)
}

#[test]
fn openssh_signs_and_the_library_names_the_signer_from_the_roster() {
    let Some(fx) = fixture("openssh_signs_and_the_library_names_the_signer_from_the_roster") else {
        return;
    };
    let message = fx.statement("canary error rate 0.1%, within budget");
    for (key, id, group) in [("alice", "alice", "sre"), ("bob", "bob", "security")] {
        let sig = fx.openssh_sign(key, NS, &message);
        let who = fx.roster.verify_signed(&message, &sig, NS).unwrap();
        assert_eq!(who.id, id);
        assert!(who.in_group(group));
    }
}

#[test]
fn the_library_signs_and_openssh_accepts_with_the_roster_allowed_signers() {
    let Some(fx) = fixture("the_library_signs_and_openssh_accepts_with_the_roster_allowed_signers")
    else {
        return;
    };
    // A comment that a line format would have to escape: newlines, quotes, bidi, a fake field.
    let message = fx.statement("line one\n\"decision\":\"reject\"\u{202E} — ok ✓");
    for id in ["alice", "bob"] {
        let sig = sign_with_key_file(fx.path(id), NS, &message).unwrap();
        assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----"));
        assert!(
            fx.openssh_verify(id, NS, &message, &sig),
            "ssh-keygen refused {id}'s signature"
        );
        assert_eq!(fx.roster.verify_signed(&message, &sig, NS).unwrap().id, id);
    }
}

#[test]
fn a_changed_byte_fails_both_openssh_and_the_library() {
    let Some(fx) = fixture("a_changed_byte_fails_both_openssh_and_the_library") else {
        return;
    };
    let message = fx.statement("approved");
    let by_openssh = fx.openssh_sign("alice", NS, &message);
    let by_library = sign_with_key_file(fx.path("alice"), NS, &message).unwrap();
    let mut changed = message.clone();
    let at = changed.len() - 3;
    changed[at] ^= 0x01;
    for sig in [&by_openssh, &by_library] {
        assert!(fx.openssh_verify("alice", NS, &message, sig));
        assert!(!fx.openssh_verify("alice", NS, &changed, sig));
        assert!(matches!(
            fx.roster.verify_signed(&changed, sig, NS),
            Err(SignatureError::BadSignature { id, .. }) if id == "alice"
        ));
    }
}

#[test]
fn a_signature_for_another_namespace_fails_both() {
    let Some(fx) = fixture("a_signature_for_another_namespace_fails_both") else {
        return;
    };
    let message = fx.statement("approved");
    // The same key signs git commits under namespace `git`: such a signature is no decision.
    let sig = fx.openssh_sign("alice", "git", &message);
    assert!(!fx.openssh_verify("alice", NS, &message, &sig));
    assert_eq!(
        fx.roster.verify_signed(&message, &sig, NS).unwrap_err(),
        SignatureError::WrongNamespace {
            expected: NS.into(),
            found: "git".into()
        }
    );
    let by_library = sign_with_key_file(fx.path("alice"), "git", &message).unwrap();
    assert!(!fx.openssh_verify("alice", NS, &message, &by_library));
    assert!(matches!(
        fx.roster.verify_signed(&message, &by_library, NS),
        Err(SignatureError::WrongNamespace { .. })
    ));
}

#[test]
fn a_key_not_in_the_roster_fails_both() {
    let Some(fx) = fixture("a_key_not_in_the_roster_fails_both") else {
        return;
    };
    let message = fx.statement("approved");
    let sig = fx.openssh_sign("mallory", NS, &message);
    assert!(!fx.openssh_verify("alice", NS, &message, &sig));
    assert!(!fx.openssh_verify("mallory", NS, &message, &sig));
    assert!(matches!(
        fx.roster.verify_signed(&message, &sig, NS),
        Err(SignatureError::UnknownKey { .. })
    ));
}

#[test]
fn bobs_signature_presented_as_alices_is_bobs() {
    let Some(fx) = fixture("bobs_signature_presented_as_alices_is_bobs") else {
        return;
    };
    let message = fx.statement("approved");
    let sig = fx.openssh_sign("bob", NS, &message);
    // OpenSSH: not Alice's; it is Bob's.
    assert!(!fx.openssh_verify("alice", NS, &message, &sig));
    assert!(fx.openssh_verify("bob", NS, &message, &sig));
    // The library answers with the key's owner, whoever the caller says signed.
    let who = fx.roster.verify_signed(&message, &sig, NS).unwrap();
    assert_eq!(who.id, "bob");
    assert!(!who.in_group("sre"));
}

#[test]
fn malformed_armor_and_protected_keys_are_typed_errors() {
    let Some(fx) = fixture("malformed_armor_and_protected_keys_are_typed_errors") else {
        return;
    };
    let message = fx.statement("approved");
    let sig = fx.openssh_sign("alice", NS, &message);
    let truncated = &sig[..sig.len() / 2];
    for bad in ["", "not a signature", truncated] {
        assert!(
            matches!(
                fx.roster.verify_signed(&message, bad, NS),
                Err(SignatureError::Malformed(_))
            ),
            "{bad:?}"
        );
    }

    let protected = fx.path("protected");
    let ok = Command::new(&fx.bin)
        .args(["-q", "-t", "ed25519", "-N", "correct horse", "-f"])
        .arg(&protected)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let err = sign_with_key_file(&protected, NS, &message).unwrap_err();
    assert!(
        matches!(&err, SignatureError::Key { file, problem } if file == &protected.display().to_string() && problem.contains("ssh-agent")),
        "{err}"
    );
    assert!(matches!(
        sign_with_key_file(Path::new("/nonexistent/key"), NS, &message),
        Err(SignatureError::Key { .. })
    ));
}

#[test]
fn rsa_signatures_by_openssh_verify_and_rsa_key_files_are_a_typed_refusal() {
    let Some(bin) =
        ssh_keygen("rsa_signatures_by_openssh_verify_and_rsa_key_files_are_a_typed_refusal")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("carol");
    let ok = Command::new(&bin)
        .args(["-q", "-t", "rsa", "-b", "3072", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let public = std::fs::read_to_string(dir.path().join("carol.pub")).unwrap();
    let toml = format!(
        "[[people]]\nid = \"carol\"\ngroups = [\"sre\"]\nssh_keys = [\"{}\"]\n",
        public.trim()
    );
    let roster = Roster::parse(toml.as_bytes(), "roster.toml").unwrap();
    std::fs::write(
        dir.path().join("allowed_signers"),
        roster.allowed_signers(NS).unwrap(),
    )
    .unwrap();
    let fx = Fixture { bin, dir, roster };
    let message = fx.statement("rsa-sha2-512");
    let by_openssh = fx.openssh_sign("carol", NS, &message);
    assert!(fx.openssh_verify("carol", NS, &message, &by_openssh));
    assert_eq!(
        fx.roster
            .verify_signed(&message, &by_openssh, NS)
            .unwrap()
            .id,
        "carol"
    );
    let mut changed = message.clone();
    changed[10] ^= 0x20;
    assert!(matches!(
        fx.roster.verify_signed(&changed, &by_openssh, NS),
        Err(SignatureError::BadSignature { .. })
    ));
    // ssh-key 0.6.7 cannot sign with RSA keys OpenSSH made (RustCrypto/SSH issue 387): the
    // answer is a typed error that says what to do, never a bad signature.
    match sign_with_key_file(fx.path("carol"), NS, &message) {
        Ok(sig) => assert!(fx.openssh_verify("carol", NS, &message, &sig)),
        Err(SignatureError::Key { problem, .. }) => {
            assert!(problem.contains("ssh-keygen -Y sign"), "{problem}")
        }
        Err(other) => panic!("{other}"),
    }
}
