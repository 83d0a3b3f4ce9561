//! Verifies an evidence pack offline, with the audit log's checkpoint key and the attestation
//! key alone: every signature, digest and inclusion proof, that every attestation says what
//! the log entries say, and every SSH-signed decision against the roster the pack carries for
//! it. The pack carries both keys too (`keys/checkpoint.vkey`, `keys/attestation.pub.pem`): an
//! auditor holding only the pack passes those, once compared with the published ones.
//!
//! `cargo run --example verify_pack -- <pack dir or pack.tar> --checkpoint-key-file <file>
//! --attestation-key-file <file>`
//!
//! - the checkpoint key file holds the log's signed-note verifier key
//!   (`<name>+<key id>+<base64>`, as `CheckpointSigner::verifier_key` writes it);
//! - the attestation key file holds the attestation key's public key as SPKI PEM
//!   (`-----BEGIN PUBLIC KEY-----`, as `AttestationVerifier::public_key_pem` writes it).
//!
//! Exits 0 when the pack verifies, 1 when it does not (printing every problem: the file, the
//! log entry, what was expected and what was found), 2 on bad arguments or unreadable keys.

use std::process::ExitCode;

use promotion::audit::CheckpointVerifier;
use promotion::evidence::{verify_pack, AttestationVerifier, PackError};

fn usage() -> ExitCode {
    eprintln!(
        "usage: verify_pack <pack dir or pack.tar> --checkpoint-key-file <file> --attestation-key-file <file>"
    );
    ExitCode::from(2)
}

fn read(path: &str) -> Result<String, ExitCode> {
    std::fs::read_to_string(path).map_err(|e| {
        eprintln!("cannot read {path}: {e}");
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pack = None;
    let mut checkpoint_file = None;
    let mut attestation_file = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--checkpoint-key-file" => checkpoint_file = rest.next(),
            "--attestation-key-file" => attestation_file = rest.next(),
            a if a.starts_with("--") => return usage(),
            _ if pack.is_none() => pack = Some(arg),
            _ => return usage(),
        }
    }
    let (Some(pack), Some(checkpoint_file), Some(attestation_file)) =
        (pack, checkpoint_file, attestation_file)
    else {
        return usage();
    };
    let checkpoint_key =
        match read(checkpoint_file).map(|k| CheckpointVerifier::from_verifier_key(k.trim())) {
            Ok(Ok(k)) => k,
            Ok(Err(e)) => {
                eprintln!("{checkpoint_file}: not a checkpoint verifier key: {e}");
                return ExitCode::from(2);
            }
            Err(code) => return code,
        };
    let attestation_key =
        match read(attestation_file).map(|pem| AttestationVerifier::from_public_key_pem(&pem)) {
            Ok(Ok(k)) => k,
            Ok(Err(e)) => {
                eprintln!("{attestation_file}: {e}");
                return ExitCode::from(2);
            }
            Err(code) => return code,
        };

    match verify_pack(pack, &checkpoint_key, &attestation_key) {
        Ok(report) => {
            println!(
                "OK: release `{}` ({}) of pipeline {}",
                report.release_name, report.release, report.pipeline
            );
            println!(
                "  {} log entries proven against checkpoint {} at size {} (root {}), signed by {}",
                report.entries,
                report.checkpoint.origin,
                report.checkpoint.size,
                report.checkpoint.root,
                checkpoint_key.name()
            );
            println!(
                "  {} attestations signed by key {}:",
                report.attestations.len(),
                attestation_key.keyid()
            );
            for a in &report.attestations {
                println!(
                    "    {:<7} {:<12} {:<18} {}",
                    a.result, a.stage, a.subject, a.path
                );
            }
            println!(
                "  {} attachments verified, {} referenced but not included",
                report.attachments,
                report.attachments_missing.len()
            );
            println!(
                "  {} SSH-signed decisions re-verified against the rosters in the pack \
                 (ssh-keygen -Y verify -f rosters/<digest>.allowed_signers -I <id> -n promotion \
                 -s signatures/<entry>.statement.json.sig < signatures/<entry>.statement.json)",
                report.signed_decisions
            );
            for (stage, status) in &report.stages {
                println!("  {stage}: {status}");
            }
            ExitCode::SUCCESS
        }
        Err(PackError::Invalid { problems }) => {
            println!("FAILED: {} problem(s)", problems.len());
            for p in &problems {
                println!("  {p}");
            }
            ExitCode::from(1)
        }
        Err(e) => {
            println!("FAILED: {e}");
            ExitCode::from(1)
        }
    }
}
