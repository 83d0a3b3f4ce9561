//! Offline verification of an evidence pack, with the two public keys alone (which the pack
//! also carries, to be compared with the published ones).
//!
//! [`verify_pack`] reads a pack directory (or its tar archive) and checks, in order:
//!
//! 1. `manifest.json` is JSON of the expected shape, and `manifest.dsse.json` is a DSSE envelope
//!    signed by the trusted attestation key whose payload is `manifest.json`, byte for byte
//!    (read as DSSE requires of a consumer: other signers' signatures, fields DSSE does not
//!    define and either base64 alphabet are allowed, and `keyid` is only a hint). From here on
//!    the manifest is trusted, and every other file must match it:
//! 2. every file it lists is present with its size and SHA-256, and no other file is present;
//! 3. `checkpoint.note` is signed by the trusted checkpoint key and names the log, size and root
//!    the manifest states;
//! 4. every line of `log/entries.jsonl` is well formed, its entry bytes hash to its leaf hash,
//!    its inclusion proof leads to the checkpoint's root, the entry decodes strictly, belongs to
//!    the release's stream, the versions run 1, 2, 3… without a gap, adjacent log entries chain
//!    (`prev`), and the first entry registers the release (whose id matches its content);
//! 5. every attestation is signed by the trusted attestation key, is an in-toto statement, and is
//!    exactly the statement the log entries imply (see [`crate::pack`]); none is missing or
//!    extra;
//! 6. every attachment is referenced by the evidence in the log and its bytes hash to its name;
//! 7. the SSH-signed decisions are exactly those the entries record, with the entries' statement
//!    and signature bytes; every roster hashes to its digest and its `allowed_signers` file is
//!    its rendering; every signature re-verifies against its roster and says what its entry
//!    says ([`promotion_identity::Reverifier`]; layout in [`crate::pack`]);
//! 8. the build-provenance keys in `keys/provenance/` are those the signature gates' evidence
//!    records, and every envelope a gate verified that the pack holds verifies with its key;
//! 9. the public keys the pack carries (`keys/`) are the trusted keys it was verified with.
//!
//! What a pack does not prove: that the log holds no *later* entries of the release than the
//! ones included (entries appended after the checkpoint, or left out by the exporter after the
//! last one included). A verifier who needs that compares the checkpoint with a newer one from
//! the log (a consistency proof) or asks for a newer pack.
//!
//! Problems of steps 2 to 9 are collected, not stopped at: [`PackError::Invalid`] lists each one
//! with the file, the log entry where one is concerned, and what was expected and found.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use promotion_audit::CheckpointVerifier;
use promotion_core::{Digest, ReleaseId, ReleaseState};
use serde::Serialize;

use crate::dsse::{Acceptance, AttestationVerifier, DsseError, Envelope};
use crate::pack::{
    self, Entry, Manifest, ENTRIES, FORMAT, MANIFEST, MANIFEST_PAYLOAD_TYPE, MANIFEST_SIGNATURE,
};

mod attestations;
mod log;
mod read;
mod signatures;

use attestations::{check_attachments, check_attestations};
use log::{check_checkpoint, check_entries, check_release};
use read::{read_dir, read_tar};
use signatures::{check_keys, check_provenance, check_signatures};

/// The largest file a pack may hold, in bytes (1 GiB).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// One thing that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file, relative to the pack (`attestations/000012-vsa-production-promoted.dsse.json`).
    pub file: String,
    /// The log entry (sequence number) concerned, if any.
    pub entry: Option<u64>,
    /// What is wrong.
    pub problem: String,
    /// What was expected, when that helps.
    pub expected: Option<String>,
    /// What was found, when that helps.
    pub found: Option<String>,
}

impl Problem {
    fn new(file: impl Into<String>, problem: impl Into<String>) -> Self {
        Problem {
            file: file.into(),
            entry: None,
            problem: problem.into(),
            expected: None,
            found: None,
        }
    }
    fn entry(mut self, seq: u64) -> Self {
        self.entry = Some(seq);
        self
    }
    fn expected_found(mut self, expected: impl Into<String>, found: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self.found = Some(found.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(seq) = self.entry {
            write!(f, " (log entry {seq})")?;
        }
        write!(f, ": {}", self.problem)?;
        match (&self.expected, &self.found) {
            (Some(e), Some(found)) => write!(f, " (expected {e}, found {found})"),
            (Some(e), None) => write!(f, " (expected {e})"),
            (None, Some(found)) => write!(f, " (found {found})"),
            (None, None) => Ok(()),
        }
    }
}

/// Why a pack does not verify.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// Nothing at the path.
    #[error("evidence pack {path}: no such directory or archive")]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("evidence pack: cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The archive is not a readable tar of a pack.
    #[error("evidence pack archive {path}: {problem}")]
    Archive {
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A required file is absent.
    #[error("evidence pack: {file} is missing")]
    Missing { file: String },
    /// A file is not the JSON it must be.
    #[error("evidence pack: {file} is not valid: line {line}, column {column}: {problem}")]
    Malformed {
        file: String,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What the parser said.
        problem: String,
    },
    /// A signature does not verify with the trusted key.
    #[error("evidence pack: {file}: {source}")]
    Signature { file: String, source: DsseError },
    /// The manifest is not the one that was signed.
    #[error("evidence pack: {file}: {problem}")]
    Tampered {
        file: String,
        /// What does not match.
        problem: String,
    },
    /// The files do not verify against the manifest, the checkpoint or the log.
    #[error("evidence pack does not verify: {} problem(s): {}", problems.len(), problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

impl PackError {
    /// The files this error names.
    pub fn files(&self) -> Vec<&str> {
        match self {
            PackError::Missing { file }
            | PackError::Malformed { file, .. }
            | PackError::Signature { file, .. }
            | PackError::Tampered { file, .. } => vec![file.as_str()],
            PackError::Invalid { problems } => problems.iter().map(|p| p.file.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

/// The checkpoint a verified pack's proofs lead to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointInfo {
    /// The log's origin.
    pub origin: String,
    /// Its tree size.
    pub size: u64,
    /// Its root hash, hex.
    pub root: String,
}

/// What a successful verification established.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackReport {
    pub release: ReleaseId,
    pub release_name: String,
    pub pipeline: String,
    pub checkpoint: CheckpointInfo,
    /// Log entries verified (each with its inclusion proof).
    pub entries: usize,
    /// Attestations verified.
    pub attestations: Vec<pack::ManifestAttestation>,
    /// Attachments verified.
    pub attachments: usize,
    /// Attachments the evidence references that the pack does not hold (their digests are
    /// still proven by the log).
    pub attachments_missing: Vec<Digest>,
    /// SSH-signed decisions re-verified against the rosters in the pack.
    pub signed_decisions: usize,
    /// Build-provenance envelopes a signature gate verified, re-verified with the key its
    /// evidence records (carried in `keys/provenance/`).
    pub provenance_envelopes: usize,
    /// Envelopes a signature gate verified that the pack does not hold (their attachment is
    /// missing, or the log records the key's id but not its material).
    pub provenance_not_in_pack: usize,
    /// Where the release stands in each stage, replayed from the verified entries, in the
    /// order the entries first mention the stages.
    pub stages: Vec<(String, String)>,
    /// Files in the pack.
    pub files: usize,
}

/// Verifies the pack at `path` (a directory, or a tar archive written by
/// [`EvidencePack::write_tar`](crate::EvidencePack::write_tar)) with the trusted keys.
pub fn verify_pack(
    path: impl AsRef<Path>,
    trusted_checkpoint_key: &CheckpointVerifier,
    trusted_attestation_key: &AttestationVerifier,
) -> Result<PackReport, PackError> {
    let path = path.as_ref();
    let (files, mut problems) = if path.is_dir() {
        read_dir(path)?
    } else if path.is_file() {
        read_tar(path)?
    } else {
        return Err(PackError::NotFound {
            path: path.to_owned(),
        });
    };
    verify_files(
        &files,
        &mut problems,
        trusted_checkpoint_key,
        trusted_attestation_key,
    )
}

/// Verifies a pack given as its files by relative path (what [`EvidencePack::files`]
/// returns), with the trusted keys.
///
/// [`EvidencePack::files`]: crate::EvidencePack::files
pub fn verify_files_in_memory(
    files: &BTreeMap<String, Vec<u8>>,
    trusted_checkpoint_key: &CheckpointVerifier,
    trusted_attestation_key: &AttestationVerifier,
) -> Result<PackReport, PackError> {
    verify_files(
        files,
        &mut Vec::new(),
        trusted_checkpoint_key,
        trusted_attestation_key,
    )
}

pub(super) type Files = BTreeMap<String, Vec<u8>>;

pub(super) fn malformed(file: &str, e: &serde_json::Error) -> PackError {
    PackError::Malformed {
        file: file.to_owned(),
        line: e.line(),
        column: e.column(),
        problem: e.to_string(),
    }
}

/// Reads an envelope as DSSE requires of a consumer (envelope.md, "Parsing rules"): unknown
/// fields ignored, `keyid` optional, either base64 alphabet, any number of signatures. What
/// the signature covers is checked by [`AttestationVerifier`]; the files' bytes by the
/// manifest's digests.
pub(super) fn read_envelope(file: &str, bytes: &[u8]) -> Result<Envelope, Problem> {
    Envelope::from_json(bytes, Acceptance::Dsse).map_err(|e| Problem::new(file, e.to_string()))
}

fn verify_files(
    files: &Files,
    problems: &mut Vec<Problem>,
    checkpoint_key: &CheckpointVerifier,
    attestation_key: &AttestationVerifier,
) -> Result<PackReport, PackError> {
    // 1. The manifest and its signature.
    let manifest_bytes = files.get(MANIFEST).ok_or_else(|| PackError::Missing {
        file: MANIFEST.to_owned(),
    })?;
    let manifest: Manifest =
        serde_json::from_slice(manifest_bytes).map_err(|e| malformed(MANIFEST, &e))?;
    let signature_bytes = files
        .get(MANIFEST_SIGNATURE)
        .ok_or_else(|| PackError::Missing {
            file: MANIFEST_SIGNATURE.to_owned(),
        })?;
    let envelope =
        read_envelope(MANIFEST_SIGNATURE, signature_bytes).map_err(|p| PackError::Tampered {
            file: p.file.clone(),
            problem: p.to_string(),
        })?;
    let signed = attestation_key
        .verify_typed(&envelope, MANIFEST_PAYLOAD_TYPE)
        .map_err(|source| PackError::Signature {
            file: MANIFEST_SIGNATURE.to_owned(),
            source,
        })?;
    if signed != *manifest_bytes {
        return Err(PackError::Tampered {
            file: MANIFEST.to_owned(),
            problem: format!(
                "differs from the signed manifest in {MANIFEST_SIGNATURE} (signed sha256 {}, file sha256 {})",
                Digest::of(&signed).to_hex(),
                Digest::of(manifest_bytes).to_hex()
            ),
        });
    }
    if manifest.format != FORMAT {
        return Err(PackError::Tampered {
            file: MANIFEST.to_owned(),
            problem: format!(
                "format `{}`, this verifier reads `{FORMAT}`",
                manifest.format
            ),
        });
    }
    if manifest.attestation_keyid != attestation_key.keyid() {
        problems.push(
            Problem::new(MANIFEST, "names another attestation key")
                .expected_found(attestation_key.keyid(), manifest.attestation_keyid.clone()),
        );
    }

    // 2. Every file against the manifest.
    let mut listed = BTreeSet::new();
    for f in &manifest.files {
        if !listed.insert(f.path.as_str()) {
            problems.push(Problem::new(MANIFEST, format!("lists {} twice", f.path)));
        }
        match files.get(&f.path) {
            None => problems.push(Problem::new(&f.path, "listed in the manifest but missing")),
            Some(bytes) => {
                let sha = Digest::of(bytes).to_hex();
                if sha != f.sha256 {
                    problems.push(
                        Problem::new(&f.path, "sha256 does not match the manifest")
                            .expected_found(f.sha256.clone(), sha),
                    );
                } else if bytes.len() as u64 != f.size {
                    problems.push(
                        Problem::new(&f.path, "size does not match the manifest")
                            .expected_found(f.size.to_string(), bytes.len().to_string()),
                    );
                }
            }
        }
    }
    for path in files.keys() {
        if path != MANIFEST && path != MANIFEST_SIGNATURE && !listed.contains(path.as_str()) {
            problems.push(Problem::new(path, "not listed in the manifest (added)"));
        }
    }

    // 3. The checkpoint.
    let checkpoint = check_checkpoint(files, &manifest, checkpoint_key, problems);

    // 4. The entries.
    let entries = check_entries(files, &manifest, checkpoint.as_ref(), problems);

    // 5. The attestations, derived again from the entries.
    let release = pack::registered(&entries);
    let mut attestations = Vec::new();
    match &release {
        Some((release, pipeline, version)) => {
            check_release(&manifest, release, pipeline, version, problems);
            attestations = check_attestations(
                files,
                &manifest,
                release,
                pipeline,
                &entries,
                attestation_key,
                problems,
            );
        }
        None => match entries.first() {
            Some(first) => problems.push(
                Problem::new(ENTRIES, "the first entry does not register a release")
                    .entry(first.seq),
            ),
            None => problems.push(Problem::new(
                ENTRIES,
                "holds no log entry: a pack proves at least the release's registration",
            )),
        },
    }

    // 6. The attachments.
    let (attachments, missing) = check_attachments(files, &manifest, &entries, problems);

    // 7. The SSH-signed decisions, against the rosters the pack carries.
    let signed_decisions = if release.is_some() {
        check_signatures(files, &manifest, &entries, problems)
    } else {
        0
    };

    // 8. The provenance keys, and the provenance envelopes re-checked with them.
    let (provenance_envelopes, provenance_not_in_pack) =
        check_provenance(files, &manifest, &entries, problems);

    // 9. The keys the pack carries are the trusted ones.
    check_keys(files, &manifest, checkpoint_key, attestation_key, problems);

    if !problems.is_empty() {
        return Err(PackError::Invalid {
            problems: std::mem::take(problems),
        });
    }
    let state = ReleaseState::replay(entries.iter().map(|e| &e.decoded.event));
    Ok(PackReport {
        release: manifest.release.id,
        release_name: manifest.release.name.clone(),
        pipeline: manifest.release.pipeline.clone(),
        checkpoint: CheckpointInfo {
            origin: manifest.log.origin.clone(),
            size: manifest.log.size,
            root: manifest.log.root.clone(),
        },
        entries: entries.len(),
        attestations,
        attachments,
        attachments_missing: missing,
        signed_decisions,
        provenance_envelopes,
        provenance_not_in_pack,
        stages: stage_order(&entries)
            .into_iter()
            .map(|name| {
                let status = state.status(&name).to_string();
                (name, status)
            })
            .collect(),
        files: files.len(),
    })
}

/// The stages in the order the release's entries first mention them.
fn stage_order(entries: &[Entry]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in entries {
        if let Some(stage) = e.decoded.event.body.stage() {
            if !out.iter().any(|s| s == stage.as_str()) {
                out.push(stage.to_string());
            }
        }
    }
    out
}
