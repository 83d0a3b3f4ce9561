//! `promote evidence export`, `promote evidence verify` and `promote report`, on
//! `promotion-evidence`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use promotion_evidence::{AttestationSigner, AttestationVerifier, PackError};

use crate::failure::Failure;

/// The attestation signing key's file name in the state directory (PKCS#8 PEM, mode 0600).
pub(crate) const ATTESTATION_KEY_FILE: &str = "attestation.key";
/// The attestation verifier key's file name (SPKI PEM), for auditors.
pub(crate) const ATTESTATION_PUB_FILE: &str = "attestation.pub";

fn io(what: &str, path: &Path, e: std::io::Error) -> Failure {
    Failure::Store(format!("{what} {}: {e}", path.display()))
}

/// The attestation signer, created on first use.
pub(crate) fn signer(dir: &Path) -> Result<AttestationSigner, Failure> {
    let key = dir.join(ATTESTATION_KEY_FILE);
    match std::fs::read_to_string(&key) {
        Ok(pem) => AttestationSigner::from_pkcs8_pem(&pem)
            .map_err(|e| Failure::Store(format!("attestation key {}: {e}", key.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
            let signer = AttestationSigner::generate()
                .map_err(|e| Failure::Store(format!("cannot generate an attestation key: {e}")))?;
            let pem = signer
                .to_pkcs8_pem()
                .map_err(|e| Failure::Store(format!("cannot encode the attestation key: {e}")))?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key)
                .map_err(|e| io("cannot create", &key, e))?;
            f.write_all(pem.as_bytes())
                .map_err(|e| io("cannot write", &key, e))?;
            let public = signer
                .verifier()
                .public_key_pem()
                .map_err(|e| Failure::Store(format!("cannot encode the attestation key: {e}")))?;
            let pub_path = dir.join(ATTESTATION_PUB_FILE);
            std::fs::write(&pub_path, public).map_err(|e| io("cannot write", &pub_path, e))?;
            Ok(signer)
        }
        Err(e) => Err(io("cannot read", &key, e)),
    }
}

/// The attestation verifier from `file`, or the one in the state directory.
pub(crate) fn verifier(dir: &Path, file: Option<&Path>) -> Result<AttestationVerifier, Failure> {
    let path: PathBuf = file.map_or_else(|| dir.join(ATTESTATION_PUB_FILE), Path::to_path_buf);
    let pem = std::fs::read_to_string(&path).map_err(|e| io("cannot read", &path, e))?;
    AttestationVerifier::from_public_key_pem(&pem)
        .map_err(|e| Failure::Store(format!("attestation key {}: {e}", path.display())))
}

/// The exit code a pack that does not verify chooses.
pub(crate) fn pack_failure(e: PackError) -> Failure {
    let message = e.to_string();
    match e {
        PackError::NotFound { .. } => Failure::Usage(message),
        PackError::Io { .. } => Failure::Store(message),
        _ => Failure::Refused(message),
    }
}
