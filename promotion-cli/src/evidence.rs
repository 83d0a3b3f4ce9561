//! `promote evidence export`, `promote evidence verify` and `promote report`, on
//! `promotion-evidence`.

use std::path::{Path, PathBuf};

use std::collections::HashMap;

use promotion_core::Digest;
use promotion_evidence::{AttachmentSource, AttestationSigner, AttestationVerifier, PackError};

use crate::failure::Failure;
use crate::files::{io, KeyPair};

/// The attestation signing key's file name in the state directory (PKCS#8 PEM, mode 0600).
pub(crate) const ATTESTATION_KEY_FILE: &str = "attestation.key";
/// The attestation verifier key's file name (SPKI PEM), for auditors.
pub(crate) const ATTESTATION_PUB_FILE: &str = "attestation.pub";

/// The attestation signer, created on first use (repaired as
/// [`KeyPair::load_or_create`] says).
pub(crate) fn signer(dir: &Path) -> Result<AttestationSigner, Failure> {
    KeyPair {
        what: "attestation key",
        private: dir.join(ATTESTATION_KEY_FILE),
        public: dir.join(ATTESTATION_PUB_FILE),
        parse: &|pem| AttestationSigner::from_pkcs8_pem(pem).map_err(|e| e.to_string()),
        generate: &|| AttestationSigner::generate().map_err(|e| e.to_string()),
        private_text: &|s| s.to_pkcs8_pem().map_err(|e| e.to_string()),
        public_text: &|s| s.verifier().public_key_pem().map_err(|e| e.to_string()),
    }
    .load_or_create()
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

/// Files larger than this are not indexed as attachments (gates read reports, not images).
const MAX_ATTACHMENT_BYTES: u64 = 64 * 1024 * 1024;
/// At most this many files are indexed.
const MAX_INDEXED_FILES: usize = 20_000;

/// The files under the service's directory, by SHA-256: where `evidence export` finds the raw
/// bytes of the reports, policies and records the gates read (the log holds their digests). A
/// file changed since the gate read it no longer matches its digest, so it is left out and the
/// pack lists the attachment as missing; the state directory is skipped.
#[derive(Debug, Default)]
pub(crate) struct ServiceFiles {
    by_digest: HashMap<Digest, PathBuf>,
}

impl ServiceFiles {
    /// Indexes the regular files under `root`, except those under `skip`.
    pub(crate) fn index(root: &Path, skip: &Path) -> ServiceFiles {
        let mut files = ServiceFiles::default();
        let walker = walkdir::WalkDir::new(root)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| e.path() != skip);
        for entry in walker.filter_map(Result::ok) {
            if files.by_digest.len() >= MAX_INDEXED_FILES {
                break;
            }
            let small = entry
                .metadata()
                .is_ok_and(|m| m.is_file() && m.len() <= MAX_ATTACHMENT_BYTES);
            if !small {
                continue;
            }
            if let Ok(bytes) = std::fs::read(entry.path()) {
                files
                    .by_digest
                    .insert(Digest::of(&bytes), entry.path().to_path_buf());
            }
        }
        files
    }
}

impl AttachmentSource for ServiceFiles {
    fn fetch(&self, digest: &Digest, _name: &str) -> std::io::Result<Option<Vec<u8>>> {
        let Some(path) = self.by_digest.get(digest) else {
            return Ok(None);
        };
        let bytes = std::fs::read(path)?;
        // Changed since it was indexed: not the bytes the log names.
        Ok((Digest::of(&bytes) == *digest).then_some(bytes))
    }
}
