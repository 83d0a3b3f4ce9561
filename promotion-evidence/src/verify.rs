//! Offline verification of an evidence pack, with the two public keys alone.
//!
//! [`verify_pack`] reads a pack directory (or its tar archive) and checks, in order:
//!
//! 1. `manifest.json` is JSON of the expected shape, and `manifest.dsse.json` is a DSSE envelope
//!    signed by the trusted attestation key whose payload is `manifest.json`, byte for byte
//!    (one signature, naming the trusted key's id; the envelope is compact JSON exactly as
//!    written). From here on the manifest is trusted, and every other file must match it:
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
//! 6. every attachment is referenced by the evidence in the log and its bytes hash to its name.
//!
//! What a pack does not prove: that the log holds no *later* entries of the release than the
//! ones included (entries appended after the checkpoint, or left out by the exporter after the
//! last one included). A verifier who needs that compares the checkpoint with a newer one from
//! the log (a consistency proof) or asks for a newer pack.
//!
//! Problems of steps 2 to 6 are collected, not stopped at: [`PackError::Invalid`] lists each one
//! with the file, the log entry where one is concerned, and what was expected and found.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};

use promotion_audit::checkpoint::Checkpoint;
use promotion_audit::entry::decode;
use promotion_audit::merkle::{leaf_hash, verify_inclusion, Hash};
use promotion_audit::verify::unsigned_checkpoint;
use promotion_audit::CheckpointVerifier;
use promotion_core::{Digest, ReleaseId, ReleaseState, StreamId};
use serde::Serialize;

use crate::dsse::{Acceptance, AttestationVerifier, DsseError, Envelope};
use crate::intoto::{Statement, IN_TOTO_PAYLOAD_TYPE};
use crate::pack::{
    self, Entry, EntryLineIn, Manifest, ManifestArtifact, ATTACHMENTS_DIR, CHECKPOINT, ENTRIES,
    FORMAT, MANIFEST, MANIFEST_PAYLOAD_TYPE, MANIFEST_SIGNATURE,
};

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
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The archive is not a readable tar of a pack.
    #[error("evidence pack archive {path}: {problem}")]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A required file is absent.
    #[error("evidence pack: {file} is missing")]
    Missing {
        /// The file.
        file: String,
    },
    /// A file is not the JSON it must be.
    #[error("evidence pack: {file} is not valid: line {line}, column {column}: {problem}")]
    Malformed {
        /// The file.
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
    Signature {
        /// The file.
        file: String,
        /// Why.
        source: DsseError,
    },
    /// The manifest is not the one that was signed.
    #[error("evidence pack: {file}: {problem}")]
    Tampered {
        /// The file.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackReport {
    /// The release.
    pub release: ReleaseId,
    /// Its name.
    pub release_name: String,
    /// The pipeline.
    pub pipeline: String,
    /// The checkpoint.
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

type Files = BTreeMap<String, Vec<u8>>;

fn read_dir(root: &Path) -> Result<(Files, Vec<Problem>), PackError> {
    let mut files = Files::new();
    let mut problems = Vec::new();
    let mut stack = vec![(root.to_owned(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let listing = std::fs::read_dir(&dir).map_err(|source| PackError::Io {
            path: dir.clone(),
            source,
        })?;
        for item in listing {
            let item = item.map_err(|source| PackError::Io {
                path: dir.clone(),
                source,
            })?;
            let name = item.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let path = item.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|source| PackError::Io {
                path: path.clone(),
                source,
            })?;
            if meta.is_dir() {
                stack.push((path, rel));
            } else if meta.is_file() {
                if meta.len() > MAX_FILE_BYTES {
                    problems.push(Problem::new(rel, "larger than 1 GiB"));
                    continue;
                }
                let bytes = std::fs::read(&path).map_err(|source| PackError::Io {
                    path: path.clone(),
                    source,
                })?;
                files.insert(rel, bytes);
            } else {
                problems.push(Problem::new(
                    rel,
                    "not a regular file (a pack holds regular files only)",
                ));
            }
        }
    }
    Ok((files, problems))
}

fn read_tar(path: &Path) -> Result<(Files, Vec<Problem>), PackError> {
    let archive_err = |problem: String| PackError::Archive {
        path: path.to_owned(),
        problem,
    };
    let file = std::fs::File::open(path).map_err(|source| PackError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut archive = tar::Archive::new(file);
    let mut files = Files::new();
    let mut problems = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| archive_err(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_err(format!("unreadable entry: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| archive_err(format!("unreadable entry name: {e}")))?
            .into_owned();
        let mut parts = Vec::new();
        let mut safe = true;
        for c in name.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                Component::CurDir => {}
                _ => safe = false,
            }
        }
        let rel = parts.join("/");
        if !safe || rel.is_empty() {
            problems.push(Problem::new(
                name.display().to_string(),
                "archive entry path is absolute or leaves the pack",
            ));
            continue;
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            other => {
                problems.push(Problem::new(
                    rel,
                    format!("archive entry of type {other:?}; a pack holds regular files only"),
                ));
                continue;
            }
        }
        if entry.size() > MAX_FILE_BYTES {
            problems.push(Problem::new(rel, "larger than 1 GiB"));
            continue;
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| archive_err(format!("{rel}: {e}")))?;
        if files.insert(rel.clone(), bytes).is_some() {
            problems.push(Problem::new(rel, "appears twice in the archive"));
        }
    }
    Ok((files, problems))
}

fn malformed(file: &str, e: &serde_json::Error) -> PackError {
    PackError::Malformed {
        file: file.to_owned(),
        line: e.line(),
        column: e.column(),
        problem: e.to_string(),
    }
}

/// Reads an envelope that must be compact JSON exactly as this crate writes it.
fn read_envelope(file: &str, bytes: &[u8]) -> Result<Envelope, Problem> {
    let envelope = Envelope::from_json(bytes, Acceptance::Strict)
        .map_err(|e| Problem::new(file, e.to_string()))?;
    match envelope.to_json() {
        Ok(again) if again == bytes => {}
        _ => {
            return Err(Problem::new(
                file,
                "the envelope is not written as the pack writes it (compact JSON, fields in order)",
            ))
        }
    }
    if envelope.signatures.len() != 1 {
        return Err(
            Problem::new(file, "a pack's envelopes carry exactly one signature")
                .expected_found("1", envelope.signatures.len().to_string()),
        );
    }
    Ok(envelope)
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

fn check_checkpoint(
    files: &Files,
    manifest: &Manifest,
    key: &CheckpointVerifier,
    problems: &mut Vec<Problem>,
) -> Option<Checkpoint> {
    let Some(bytes) = files.get(CHECKPOINT) else {
        problems.push(Problem::new(CHECKPOINT, "missing"));
        return None;
    };
    let Ok(note) = std::str::from_utf8(bytes) else {
        problems.push(Problem::new(CHECKPOINT, "not UTF-8 text"));
        return None;
    };
    let checkpoint = match key.verify(note) {
        Ok(cp) => cp,
        Err(e) => {
            problems.push(Problem::new(
                CHECKPOINT,
                format!(
                    "does not verify with the trusted checkpoint key {}: {e}",
                    key.name()
                ),
            ));
            // Go on with the unsigned body, so that the entries are still checked.
            unsigned_checkpoint(note).ok()?
        }
    };
    let root = hex::encode(checkpoint.root);
    for (what, expected, found) in [
        ("origin", &manifest.log.origin, &checkpoint.origin),
        ("root", &manifest.log.root, &root),
    ] {
        if expected != found {
            problems.push(
                Problem::new(CHECKPOINT, format!("{what} differs from the manifest's"))
                    .expected_found(expected.clone(), found.clone()),
            );
        }
    }
    if manifest.log.size != checkpoint.size {
        problems.push(
            Problem::new(CHECKPOINT, "tree size differs from the manifest's")
                .expected_found(manifest.log.size.to_string(), checkpoint.size.to_string()),
        );
    }
    Some(checkpoint)
}

fn parse_hash(text: &str) -> Option<Hash> {
    let mut out = [0_u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

fn check_entries(
    files: &Files,
    manifest: &Manifest,
    checkpoint: Option<&Checkpoint>,
    problems: &mut Vec<Problem>,
) -> Vec<Entry> {
    let Some(bytes) = files.get(ENTRIES) else {
        return Vec::new();
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        problems.push(Problem::new(ENTRIES, "not UTF-8 text"));
        return Vec::new();
    };
    let stream = StreamId::for_release(&manifest.release.id);
    let mut entries: Vec<Entry> = Vec::new();
    let mut previous: Option<(u64, Hash)> = None;
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .collect();
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        let at_line = |p: String| Problem::new(ENTRIES, format!("line {number}: {p}"));
        let parsed: EntryLineIn<'_> = match serde_json::from_str(line) {
            Ok(p) => p,
            Err(e) => {
                problems.push(at_line(format!("not a log entry line: {e}")));
                continue;
            }
        };
        let seq = parsed.seq;
        let raw = parsed.entry.get().as_bytes();
        let leaf = leaf_hash(raw);
        let recorded = hex::encode(leaf);
        if recorded != parsed.leaf_hash {
            problems.push(
                at_line("the entry bytes do not hash to the leaf hash".into())
                    .entry(seq)
                    .expected_found(parsed.leaf_hash.clone(), recorded),
            );
        }
        if let Some(cp) = checkpoint {
            let proof: Option<Vec<Hash>> = parsed.proof.iter().map(|h| parse_hash(h)).collect();
            match proof {
                None => problems.push(
                    at_line("the proof holds a hash that is not 64 hex digits".into()).entry(seq),
                ),
                Some(proof) => {
                    if let Err(e) = verify_inclusion(&leaf, seq, cp.size, &proof, &cp.root) {
                        problems.push(
                            at_line(format!("inclusion proof does not verify: {e}")).entry(seq),
                        );
                    }
                }
            }
        }
        let decoded = match decode(raw) {
            Ok(d) => d,
            Err(e) => {
                problems.push(at_line(format!("entry does not decode: {e}")).entry(seq));
                continue;
            }
        };
        if decoded.seq != seq {
            problems.push(
                at_line("the entry's own sequence number differs from the line's".into())
                    .entry(seq)
                    .expected_found(seq.to_string(), decoded.seq.to_string()),
            );
        }
        if decoded.stream != stream {
            problems.push(
                at_line("the entry belongs to another stream, not to this release".into())
                    .entry(seq)
                    .expected_found(stream.to_string(), decoded.stream.to_string()),
            );
        }
        let expected_version = entries.len() as u64 + 1;
        if decoded.version != expected_version {
            problems.push(
                at_line("stream versions must run 1, 2, 3… without a gap".into())
                    .entry(seq)
                    .expected_found(expected_version.to_string(), decoded.version.to_string()),
            );
        }
        if let Some((prev_seq, prev_leaf)) = previous {
            if seq <= prev_seq {
                problems.push(at_line("entries are not in log order".into()).entry(seq));
            } else if seq == prev_seq + 1 && decoded.prev != prev_leaf {
                problems.push(
                    at_line("the entry does not chain to the previous log entry".into())
                        .entry(seq)
                        .expected_found(hex::encode(prev_leaf), hex::encode(decoded.prev)),
                );
            }
        }
        previous = Some((seq, leaf));
        entries.push(Entry { seq, decoded });
    }
    if entries.len() as u64 != manifest.log.entries {
        problems.push(
            Problem::new(ENTRIES, "number of entries differs from the manifest's")
                .expected_found(manifest.log.entries.to_string(), entries.len().to_string()),
        );
    }
    entries
}

fn check_release(
    manifest: &Manifest,
    release: &promotion_core::Release,
    pipeline: &str,
    version: &str,
    problems: &mut Vec<Problem>,
) {
    let m = &manifest.release;
    let artifacts: Vec<ManifestArtifact> = release
        .artifacts()
        .iter()
        .map(|a| ManifestArtifact {
            name: a.name.clone(),
            digest: a.digest,
        })
        .collect();
    let stream = StreamId::for_release(&release.id()).to_string();
    for (what, ok, expected, found) in [
        (
            "release id",
            m.id == release.id(),
            release.id().to_string(),
            m.id.to_string(),
        ),
        (
            "release name",
            m.name == release.name(),
            release.name().to_owned(),
            m.name.clone(),
        ),
        (
            "stream",
            m.stream == stream,
            stream.clone(),
            m.stream.clone(),
        ),
        (
            "pipeline",
            m.pipeline == pipeline,
            pipeline.to_owned(),
            m.pipeline.clone(),
        ),
        (
            "pipeline version",
            m.pipeline_version == version,
            version.to_owned(),
            m.pipeline_version.clone(),
        ),
        (
            "artifacts",
            m.artifacts == artifacts,
            format!("{} artifacts of the registered release", artifacts.len()),
            format!("{} artifacts", m.artifacts.len()),
        ),
    ] {
        if !ok {
            problems.push(
                Problem::new(
                    MANIFEST,
                    format!("{what} differs from the registered release"),
                )
                .expected_found(expected, found),
            );
        }
    }
}

fn check_attestations(
    files: &Files,
    manifest: &Manifest,
    release: &promotion_core::Release,
    pipeline: &str,
    entries: &[Entry],
    key: &AttestationVerifier,
    problems: &mut Vec<Problem>,
) -> Vec<pack::ManifestAttestation> {
    if let Err(e) = manifest.statements.check() {
        problems.push(Problem::new(MANIFEST, format!("statement options: {e}")));
        return Vec::new();
    }
    let test_results = pack::plan_test_results(release, pipeline, entries);
    let digest_of = |path: &str| files.get(path).map(|b| Digest::of(b).to_hex());
    let decisions = pack::plan_decisions(
        release,
        pipeline,
        entries,
        &test_results,
        &manifest.statements,
        &digest_of,
    );
    let mut planned: Vec<&pack::Planned> = test_results.iter().chain(&decisions).collect();
    planned.sort_by(|a, b| a.path.cmp(&b.path));
    let expected: Vec<pack::ManifestAttestation> =
        planned.iter().map(|p| p.manifest_entry()).collect();
    if expected != manifest.attestations {
        let expected_paths: BTreeSet<&str> = expected.iter().map(|a| a.path.as_str()).collect();
        let listed_paths: BTreeSet<&str> = manifest
            .attestations
            .iter()
            .map(|a| a.path.as_str())
            .collect();
        for missing in expected_paths.difference(&listed_paths) {
            problems.push(Problem::new(
                *missing,
                "the log implies this attestation but the manifest does not list it",
            ));
        }
        for extra in listed_paths.difference(&expected_paths) {
            problems.push(Problem::new(
                *extra,
                "the manifest lists an attestation the log does not imply",
            ));
        }
        if expected_paths == listed_paths {
            problems.push(Problem::new(
                MANIFEST,
                "its attestation list differs from the one the log implies",
            ));
        }
    }
    for path in files.keys() {
        if path.starts_with(&format!("{}/", pack::ATTESTATIONS_DIR))
            && !planned.iter().any(|p| p.path == *path)
        {
            problems.push(Problem::new(path, "an attestation the log does not imply"));
        }
    }
    for p in &planned {
        let Some(bytes) = files.get(&p.path) else {
            problems.push(Problem::new(&p.path, "missing").entry(p.entry));
            continue;
        };
        let envelope = match read_envelope(&p.path, bytes) {
            Ok(e) => e,
            Err(problem) => {
                problems.push(problem.entry(p.entry));
                continue;
            }
        };
        let payload = match key.verify_typed(&envelope, IN_TOTO_PAYLOAD_TYPE) {
            Ok(payload) => payload,
            Err(e) => {
                problems.push(Problem::new(&p.path, e.to_string()).entry(p.entry));
                continue;
            }
        };
        if let Err(e) = serde_json::from_slice::<Statement>(&payload) {
            problems.push(
                Problem::new(
                    &p.path,
                    format!("the payload is not an in-toto statement: {e}"),
                )
                .entry(p.entry),
            );
            continue;
        }
        match p.statement.to_payload() {
            Ok(want) if want == payload => {}
            Ok(want) => problems.push(
                Problem::new(
                    &p.path,
                    format!(
                        "the signed statement is not the one log entry {} implies",
                        p.entry
                    ),
                )
                .entry(p.entry)
                .expected_found(
                    format!("sha256 {}", Digest::of(&want).to_hex()),
                    format!("sha256 {}", Digest::of(&payload).to_hex()),
                ),
            ),
            Err(e) => problems.push(Problem::new(&p.path, e.to_string()).entry(p.entry)),
        }
    }
    expected
}

fn check_attachments(
    files: &Files,
    manifest: &Manifest,
    entries: &[Entry],
    problems: &mut Vec<Problem>,
) -> (usize, Vec<Digest>) {
    let referenced = pack::referenced_attachments(entries);
    let mut verified = 0;
    let mut missing = Vec::new();
    let mut listed = BTreeSet::new();
    for a in &manifest.attachments {
        listed.insert(a.digest);
        match referenced.get(&a.digest) {
            None => problems.push(Problem::new(
                MANIFEST,
                format!(
                    "lists attachment {} that no evidence in the log references",
                    a.digest
                ),
            )),
            Some(r) => {
                if (&r.names, r.size, &r.entries) != (&a.names, a.size, &a.entries) {
                    problems.push(
                        Problem::new(
                            MANIFEST,
                            format!(
                                "attachment {} is described differently in the log",
                                a.digest
                            ),
                        )
                        .expected_found(
                            format!(
                                "names {:?}, {} bytes, entries {:?}",
                                r.names, r.size, r.entries
                            ),
                            format!(
                                "names {:?}, {} bytes, entries {:?}",
                                a.names, a.size, a.entries
                            ),
                        ),
                    );
                }
            }
        }
        let Some(path) = &a.path else {
            missing.push(a.digest);
            continue;
        };
        let want = format!(
            "{ATTACHMENTS_DIR}/{}",
            crate::attachments::file_name(&a.digest)
        );
        if *path != want {
            problems.push(
                Problem::new(
                    MANIFEST,
                    format!("attachment {} has a wrong path", a.digest),
                )
                .expected_found(want, path.clone()),
            );
            continue;
        }
        if let Some(bytes) = files.get(path) {
            let found = Digest::of(bytes);
            if found == a.digest {
                verified += 1;
            } else {
                problems.push(
                    Problem::new(path, "the bytes do not hash to the attachment's digest")
                        .expected_found(a.digest.to_string(), found.to_string()),
                );
            }
        }
    }
    for digest in referenced.keys() {
        if !listed.contains(digest) {
            problems.push(Problem::new(
                MANIFEST,
                format!("does not list attachment {digest}, which the evidence references"),
            ));
        }
    }
    for path in files.keys() {
        if path.starts_with(&format!("{ATTACHMENTS_DIR}/"))
            && !manifest
                .attachments
                .iter()
                .any(|a| a.path.as_deref() == Some(path.as_str()))
        {
            problems.push(Problem::new(path, "an attachment no evidence references"));
        }
    }
    (verified, missing)
}
