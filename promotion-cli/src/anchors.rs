//! Outside anchors against rollback: publishing the latest checkpoint (`log checkpoint`),
//! Merkle proofs (`log proof`), the witness (`witness`), and opening what `log verify`
//! checks the log against (a trusted checkpoint, witness keys).

use std::path::{Path, PathBuf};

use promotion_audit::cosign::{self, witness_check, CosignatureVerifier, Cosigner};
use promotion_audit::durable::{self, Existing};
use promotion_audit::{Checkpoint, CheckpointVerifier};
use sha2::{Digest as _, Sha256};

use crate::app::App;
use crate::args::ProofCmd;
use crate::failure::{Failure, OK};
use crate::files::{io, KeyPair};
use crate::store;

/// What `log verify` was given to anchor the log, as paths.
pub(crate) struct Anchors {
    pub(crate) trusted_checkpoint: Option<PathBuf>,
    pub(crate) witness_vkeys: Vec<PathBuf>,
    pub(crate) min_witnesses: usize,
    pub(crate) expect_empty: bool,
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| io("cannot read", path, e))
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    durable::write_file(path, text.as_bytes(), durable::SHARED, Existing::Replace)
        .map_err(|e| Failure::Store(promotion_core::report_chain(&e)))
}

impl Anchors {
    /// Reads the files; a witness key that does not parse is a usage error naming the file.
    pub(crate) fn open(&self) -> Result<promotion_audit::Anchors, Failure> {
        if self.min_witnesses > self.witness_vkeys.len() {
            return Err(Failure::Usage(format!(
                "--min-witnesses {} needs at least as many --witness-vkey files (given {})",
                self.min_witnesses,
                self.witness_vkeys.len()
            )));
        }
        let witnesses = self
            .witness_vkeys
            .iter()
            .map(|p| {
                CosignatureVerifier::from_verifier_key(read(p)?.trim())
                    .map_err(|e| Failure::Usage(format!("witness key {}: {e}", p.display())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(promotion_audit::Anchors {
            trusted_checkpoint: self.trusted_checkpoint.as_deref().map(read).transpose()?,
            witnesses,
            min_witnesses: self.min_witnesses,
            expect_empty: self.expect_empty,
        })
    }
}

impl App {
    pub(crate) async fn log_checkpoint(&self, out: Option<&Path>) -> Result<u8, Failure> {
        let store = store::open_existing(&self.place())?;
        let note = store
            .latest_checkpoint()
            .await?
            .ok_or_else(|| Failure::Refused("the log has no checkpoint yet".into()))?;
        let cp = promotion_audit::verify::unsigned_checkpoint(&note)?;
        match out {
            None => print!("{note}"),
            Some(dir) if dir.is_dir() => {
                let file = dir.join(format!("{}.checkpoint", cp.size));
                write(&file, &note)?;
                write(&dir.join("latest"), &note)?;
                println!(
                    "wrote the checkpoint at size {} to {} and {}",
                    cp.size,
                    file.display(),
                    dir.join("latest").display()
                );
            }
            Some(file) => {
                write(file, &note)?;
                println!(
                    "wrote the checkpoint at size {} to {}",
                    cp.size,
                    file.display()
                );
            }
        }
        Ok(OK)
    }

    pub(crate) async fn log_proof(&self, proof: ProofCmd) -> Result<u8, Failure> {
        let store = store::open_existing(&self.place())?;
        let latest = match store.latest_checkpoint().await? {
            Some(note) => promotion_audit::verify::unsigned_checkpoint(&note)?.size,
            None => store.size().await?,
        };
        let hashes = match proof {
            ProofCmd::Inclusion { seq, size } => {
                store.inclusion_proof(seq, size.unwrap_or(latest)).await
            }
            ProofCmd::Consistency { old, new, from } => {
                let old = match (old, from) {
                    (Some(old), _) => old,
                    (None, Some(file)) => {
                        promotion_audit::verify::unsigned_checkpoint(&read(&file)?)
                            .map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?
                            .size
                    }
                    (None, None) => {
                        return Err(Failure::Usage("give OLD or --from FILE".into()));
                    }
                };
                store.consistency_proof(old, new.unwrap_or(latest)).await
            }
        }
        .map_err(|e| match e {
            promotion_audit::AuditError::Proof(_)
            | promotion_audit::AuditError::InvalidRequest(_) => Failure::Usage(e.to_string()),
            e => e.into(),
        })?;
        print!("{}", cosign::format_proof(&hashes));
        Ok(OK)
    }
}

/// `promote witness`'s arguments.
pub(crate) struct WitnessArgs {
    pub(crate) state: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) name: String,
    pub(crate) log_vkey: PathBuf,
    /// A checkpoint file to cosign; `None` with `from_log`: the log's latest checkpoint.
    pub(crate) checkpoint: Option<PathBuf>,
    pub(crate) proof: Option<PathBuf>,
    pub(crate) out: Option<PathBuf>,
    /// Read the log itself (the service's `--dir`/`--database`): take its latest checkpoint,
    /// compute the consistency proof from it, and store the cosignature beside the checkpoint.
    pub(crate) from_log: bool,
}

/// The state file for a log origin: the hex SHA-256 of the origin, so that any origin makes
/// a plain file name.
fn state_file(state: &Path, origin: &str) -> PathBuf {
    state.join(format!(
        "{}.checkpoint",
        hex::encode(Sha256::digest(origin.as_bytes()))
    ))
}

/// What the witness saved for `note`'s origin: the last checkpoint it cosigned, checked again
/// with the log's key (a state file someone else wrote is refused).
fn saved_state(
    a: &WitnessArgs,
    log: &CheckpointVerifier,
    note: &str,
    what: &str,
) -> Result<Saved, Failure> {
    let origin = promotion_audit::verify::unsigned_checkpoint(note)
        .map_err(|e| Failure::Refused(format!("{what}: {e}")))?
        .origin;
    let state = state_file(&a.state, &origin);
    let last = match std::fs::read_to_string(&state) {
        Ok(text) => Some(log.verify(&text).map_err(|e| {
            Failure::Store(format!(
                "the witness state {} does not verify with the log's key: {e}",
                state.display()
            ))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("cannot read", &state, e)),
    };
    Ok(Saved { file: state, last })
}

/// The witness's saved state for one log: its file, and the checkpoint it cosigned last.
struct Saved {
    file: PathBuf,
    last: Option<Checkpoint>,
}

/// Checks `note` against the saved state with `proof` (see [`witness_check`]: the proof is
/// verified against the witness's own saved root, never taken on trust), cosigns it, and
/// saves the state before the cosigned note is handed out, so a crash never leaves a
/// cosignature the state does not know of.
fn check_and_cosign(
    a: &WitnessArgs,
    cosigner: &Cosigner,
    log: &CheckpointVerifier,
    note: &str,
    what: &str,
    saved: &Saved,
    proof: &[promotion_audit::merkle::Hash],
) -> Result<(Checkpoint, String), Failure> {
    let (state, last) = (&saved.file, saved.last.as_ref());
    let cp = witness_check(log, note, last, proof)
        .map_err(|e| Failure::Refused(format!("witness refuses {what}: {e}")))?;
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let cosigned = cosigner
        .cosign(note, now)
        .map_err(|e| Failure::Refused(format!("{what}: {e}")))?;
    std::fs::create_dir_all(&a.state).map_err(|e| io("cannot create", &a.state, e))?;
    // Only ever forward: the same size again keeps the state as it is.
    if last.is_none_or(|l| l.size < cp.size) {
        write(state, note)?;
    }
    Ok((cp, cosigned))
}

fn hand_out(
    a: &WitnessArgs,
    cosigner: &Cosigner,
    cp: &Checkpoint,
    cosigned: &str,
) -> Result<(), Failure> {
    match &a.out {
        Some(out) => {
            write(out, cosigned)?;
            println!(
                "cosigned {} at size {} as {}: {}",
                cp.origin,
                cp.size,
                cosigner.name(),
                out.display()
            );
        }
        None => print!("{cosigned}"),
    }
    Ok(())
}

fn log_key(a: &WitnessArgs) -> Result<CheckpointVerifier, Failure> {
    CheckpointVerifier::from_verifier_key(read(&a.log_vkey)?.trim())
        .map_err(|e| Failure::Usage(format!("log key {}: {e}", a.log_vkey.display())))
}

/// Cosigns a checkpoint file: see [`check_and_cosign`]. The proof, when given, comes from the
/// party being witnessed; it is only ever checked against the witness's own saved root.
pub(crate) fn witness(a: &WitnessArgs) -> Result<u8, Failure> {
    let Some(file) = &a.checkpoint else {
        return Err(Failure::Usage(
            "give the checkpoint file to cosign, or --from-log".into(),
        ));
    };
    let cosigner = witness_key(&a.key, &a.name)?;
    let log = log_key(a)?;
    let note = read(file)?;
    let proof = match &a.proof {
        Some(p) => cosign::parse_proof(&read(p)?)
            .map_err(|e| Failure::Usage(format!("proof {}: {e}", p.display())))?,
        None => Vec::new(),
    };
    let what = file.display().to_string();
    let saved = saved_state(a, &log, &note, &what)?;
    let (cp, cosigned) = check_and_cosign(a, &cosigner, &log, &note, &what, &saved, &proof)?;
    hand_out(a, &cosigner, &cp, &cosigned)?;
    Ok(OK)
}

impl App {
    /// `promote witness --from-log`: the witness reads the log itself. It takes the latest
    /// checkpoint, computes the consistency proof from the size it saved last to that
    /// checkpoint's size out of the log's own Merkle nodes, checks it against its saved root
    /// (so a log that rewrote or dropped anything the witness saw is refused), cosigns, and
    /// stores the cosignature beside the checkpoint in the log, where `log verify
    /// --min-witnesses` finds it.
    pub(crate) async fn witness_log(&self, a: &WitnessArgs) -> Result<u8, Failure> {
        if a.checkpoint.is_some() || a.proof.is_some() {
            return Err(Failure::Usage(
                "--from-log reads the checkpoint and computes the proof itself: give neither a checkpoint file nor --proof".into(),
            ));
        }
        let cosigner = witness_key(&a.key, &a.name)?;
        let log = log_key(a)?;
        let store = store::open_existing(&self.place())?;
        let note = store
            .latest_checkpoint()
            .await?
            .ok_or_else(|| Failure::Refused("the log has no checkpoint to cosign".into()))?;
        let what = "the log's latest checkpoint".to_owned();
        let saved = saved_state(a, &log, &note, &what)?;
        let new_size = promotion_audit::verify::unsigned_checkpoint(&note)?.size;
        let proof = match &saved.last {
            Some(l) if l.size > 0 && l.size < new_size => store
                .consistency_proof(l.size, new_size)
                .await
                .map_err(|e| Failure::Refused(format!("witness refuses {what}: {e}")))?,
            _ => Vec::new(),
        };
        let (cp, cosigned) = check_and_cosign(a, &cosigner, &log, &note, &what, &saved, &proof)?;
        store.store_cosignatures(&cosigned).await?;
        if a.out.is_some() {
            hand_out(a, &cosigner, &cp, &cosigned)?;
        } else {
            println!(
                "cosigned {} at size {} as {}; the cosignature is stored beside the checkpoint",
                cp.origin,
                cp.size,
                cosigner.name()
            );
        }
        Ok(OK)
    }
}

/// The witness's key, created on first use with its verifier key in `<key>.vkey`.
fn witness_key(key: &Path, name: &str) -> Result<Cosigner, Failure> {
    let mut public = key.as_os_str().to_owned();
    public.push(".vkey");
    KeyPair {
        what: "witness key",
        private: key.to_path_buf(),
        public: PathBuf::from(public),
        parse: &|text| Cosigner::from_private_key(text.trim()).map_err(|e| e.to_string()),
        generate: &|| Cosigner::generate(name).map_err(|e| e.to_string()),
        private_text: &|s| Ok(format!("{}\n", s.private_key())),
        public_text: &|s| Ok(format!("{}\n", s.verifier().verifier_key())),
    }
    .load_or_create()
}
