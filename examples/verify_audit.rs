//! Verifies a SQLite audit log offline: every entry's bytes, the hash chain, the Merkle tree and
//! every stored checkpoint's root and Ed25519 signature against a trusted verifier key. A log
//! without a signed checkpoint, or with entries after the latest one, does not verify.
//!
//! `cargo run --example verify_audit -- <audit.db> --vkey-file <file>` (or `--vkey <key>`),
//! optionally `--trusted-checkpoint <file>`: a signed checkpoint saved earlier, which the log
//! must extend (a log rolled back below it, or forked from it, does not verify). Exits 0 when the log verifies, 1 when it does not (naming the first entry that does not
//! match), 2 on bad arguments.

use std::process::ExitCode;

use promotion::audit::{Anchors, AuditOptions, AuditStore, CheckpointVerifier};

fn usage() -> ExitCode {
    eprintln!("usage: verify_audit <audit.db> (--vkey <verifier key> | --vkey-file <file>) [--trusted-checkpoint <file>]");
    ExitCode::from(2)
}

fn read(path: &str) -> Result<String, ExitCode> {
    std::fs::read_to_string(path).map_err(|e| {
        eprintln!("cannot read {path}: {e}");
        ExitCode::from(2)
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(path), Some(flag), Some(value)) = (args.first(), args.get(1), args.get(2)) else {
        return usage();
    };
    let key = match flag.as_str() {
        "--vkey" => value.clone(),
        "--vkey-file" => match read(value) {
            Ok(k) => k.trim().to_owned(),
            Err(code) => return code,
        },
        _ => return usage(),
    };
    let trusted_checkpoint = match (args.get(3).map(String::as_str), args.get(4), args.len()) {
        (None, _, _) => None,
        (Some("--trusted-checkpoint"), Some(file), 5) => match read(file) {
            Ok(note) => Some(note),
            Err(code) => return code,
        },
        _ => return usage(),
    };
    let verifier = match CheckpointVerifier::from_verifier_key(&key) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("bad verifier key: {e}");
            return ExitCode::from(2);
        }
    };
    let store = match AuditStore::open_sqlite_existing(path, AuditOptions::new("verify")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let anchors = Anchors {
        trusted_checkpoint,
        ..Anchors::default()
    };
    match store.verify_anchored(Some(&verifier), anchors).await {
        Ok(r) => {
            let root: String = r.root.iter().map(|b| format!("{b:02x}")).collect();
            println!(
                "OK: {} entries ({} bytes) in {} streams; root {root}; {} checkpoints signed by {}, the latest at size {}",
                r.entries,
                r.bytes,
                r.streams,
                r.checkpoints,
                verifier.name(),
                r.checkpoint.as_ref().map_or(0, |c| c.size)
            );
            if let Some(a) = &r.anchor {
                println!(
                    "OK: the log extends the trusted checkpoint at size {}",
                    a.size
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAILED: {e}");
            ExitCode::from(1)
        }
    }
}
