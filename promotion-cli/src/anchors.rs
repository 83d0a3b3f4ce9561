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
    pub(crate) checkpoint: PathBuf,
    pub(crate) proof: Option<PathBuf>,
    pub(crate) out: Option<PathBuf>,
}

/// The state file for a log origin: the hex SHA-256 of the origin, so that any origin makes
/// a plain file name.
fn state_file(state: &Path, origin: &str) -> PathBuf {
    state.join(format!(
        "{}.checkpoint",
        hex::encode(Sha256::digest(origin.as_bytes()))
    ))
}

/// Checks the checkpoint and cosigns it: see [`witness_check`]. The state is written before
/// the cosigned note is handed out, so a crash never leaves a cosignature the state does not
/// know of.
pub(crate) fn witness(a: &WitnessArgs) -> Result<u8, Failure> {
    let cosigner = witness_key(&a.key, &a.name)?;
    let log = CheckpointVerifier::from_verifier_key(read(&a.log_vkey)?.trim())
        .map_err(|e| Failure::Usage(format!("log key {}: {e}", a.log_vkey.display())))?;
    let note = read(&a.checkpoint)?;
    let proof = match &a.proof {
        Some(p) => cosign::parse_proof(&read(p)?)
            .map_err(|e| Failure::Usage(format!("proof {}: {e}", p.display())))?,
        None => Vec::new(),
    };
    let origin = promotion_audit::verify::unsigned_checkpoint(&note)
        .map_err(|e| Failure::Refused(format!("{}: {e}", a.checkpoint.display())))?
        .origin;
    let state = state_file(&a.state, &origin);
    let last: Option<Checkpoint> = match std::fs::read_to_string(&state) {
        Ok(text) => Some(log.verify(&text).map_err(|e| {
            Failure::Store(format!(
                "the witness state {} does not verify with the log's key: {e}",
                state.display()
            ))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("cannot read", &state, e)),
    };
    let cp = witness_check(&log, &note, last.as_ref(), &proof).map_err(|e| {
        Failure::Refused(format!("witness refuses {}: {e}", a.checkpoint.display()))
    })?;
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let cosigned = cosigner
        .cosign(&note, now)
        .map_err(|e| Failure::Refused(format!("{}: {e}", a.checkpoint.display())))?;
    std::fs::create_dir_all(&a.state).map_err(|e| io("cannot create", &a.state, e))?;
    // Only ever forward: the same size again keeps the state as it is.
    if last.as_ref().is_none_or(|l| l.size < cp.size) {
        write(&state, &note)?;
    }
    match &a.out {
        Some(out) => {
            write(out, &cosigned)?;
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
    Ok(OK)
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
