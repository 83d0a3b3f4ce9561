//! Building an evidence pack from an [`AuditStore`] and writing it out.
//!
//! [`EvidencePack::build`] reads the release's log entries, proves each against the log's latest
//! signed checkpoint, derives the attestations (see [`crate::pack`]), signs them and the manifest
//! with an [`AttestationSigner`], and collects the attachments it is given. The result is a set
//! of files in memory; [`EvidencePack::write_dir`] and [`EvidencePack::write_tar`] write them.
//! Nothing depends on the time of export: the same log and key give the same pack, byte for
//! byte (Ed25519 signatures are deterministic).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use promotion_audit::durable::{self, Existing, FileError};
use promotion_audit::entry::decode;
use promotion_audit::merkle::{leaf_hash, verify_inclusion};
use promotion_audit::verify::unsigned_checkpoint;
use promotion_audit::{AuditError, AuditStore};
use promotion_core::{Digest, ReleaseId, StreamId};
use serde_json::value::RawValue;

use crate::attachments::{self, AttachmentSource};
use crate::dsse::AttestationSigner;
use crate::intoto::IN_TOTO_PAYLOAD_TYPE;
use crate::pack::{
    self, Entry, EntryLineOut, Manifest, ManifestArtifact, ManifestFile, ManifestKeys, ManifestLog,
    ManifestRelease, StatementOptions, ATTACHMENTS_DIR, ATTESTATION_KEY_FILE, CHECKPOINT,
    CHECKPOINT_KEY_FILE, ENTRIES, FORMAT, MANIFEST, MANIFEST_PAYLOAD_TYPE, MANIFEST_SIGNATURE,
};

/// Why a pack could not be exported.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The log holds no entry of the release.
    #[error(
        "release {release} is not in the audit log `{origin}` (no entries in stream {stream})"
    )]
    ReleaseNotFound {
        /// The release asked for.
        release: ReleaseId,
        /// The log's checkpoint origin.
        origin: String,
        /// The stream looked at.
        stream: String,
    },
    /// The log has no signed checkpoint to prove entries against.
    #[error("the audit log `{origin}` has no signed checkpoint; open it with a CheckpointSigner so that every commit signs one")]
    NoCheckpoint {
        /// The log's checkpoint origin.
        origin: String,
    },
    /// The log's root at the checkpoint's size is not the signed root.
    #[error("the audit log does not match its latest checkpoint at size {size}: signed root {signed}, log root {computed}")]
    CheckpointMismatch {
        /// The checkpoint's size.
        size: u64,
        /// The signed root, hex.
        signed: String,
        /// The log's root, hex.
        computed: String,
    },
    /// An entry of the release was appended after the latest checkpoint.
    #[error(
        "log entry {seq} of the release is not covered by the latest checkpoint (size {size})"
    )]
    NotCovered {
        seq: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// An entry of the release does not decode or does not match its stored hash.
    #[error("log entry {seq} is corrupt: {problem}")]
    Corrupt {
        seq: u64,
        /// What is wrong.
        problem: String,
    },
    /// The first entry of the stream does not register the release.
    #[error("stream {stream} does not start with the registration of release {release}")]
    NotARelease {
        /// The release asked for.
        release: ReleaseId,
        stream: String,
    },
    /// The attachment source's bytes do not hash to the recorded digest.
    #[error(
        "attachment `{name}`: the bytes given hash to {found}, but the evidence recorded {digest}"
    )]
    AttachmentMismatch {
        /// The attachment's name.
        name: String,
        /// The recorded digest.
        digest: Digest,
        /// The digest of the bytes given.
        found: Digest,
    },
    /// The attachment source failed.
    #[error("attachment `{name}` ({digest}): {source}")]
    AttachmentSource {
        /// The attachment's name.
        name: String,
        digest: Digest,
        source: std::io::Error,
    },
    /// A signed decision was made under a roster the export was not given, so the pack could
    /// not carry what checks its signature.
    #[error(
        "log entry {seq} is signed under roster {digest}, which the export was not given: \
         pass that roster file as it was then (its sha256 is the digest)"
    )]
    RosterMissing {
        seq: u64,
        /// The roster digest the entry records.
        digest: Digest,
    },
    /// A roster given to the export is not a valid roster.
    #[error("roster {index} given to the export: {problem}")]
    InvalidRoster {
        /// Its position among [`ExportOptions::rosters`].
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// A key could not be written into the pack.
    #[error("the pack's {what}: {problem}")]
    Key {
        /// Which key.
        what: &'static str,
        /// What went wrong.
        problem: String,
    },
    /// The export options are unusable.
    #[error("export options: {0}")]
    InvalidOptions(String),
    /// The target directory exists and is not empty.
    #[error(
        "{path} exists and is not empty; an evidence pack is written to a new or empty directory"
    )]
    DirectoryNotEmpty { path: PathBuf },
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing a file of the pack, or its archive, failed (the reason is the source).
    #[error(transparent)]
    File(#[from] FileError),
    /// Serialising JSON failed.
    #[error("cannot serialise {what}: {source}")]
    Json {
        /// What was serialised.
        what: String,
        source: serde_json::Error,
    },
    /// The audit log failed.
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
}

/// What an export needs beyond the store, the release and the key.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions<'a> {
    /// Verifier id and resource URIs of the statements.
    pub statements: StatementOptions,
    /// Where the raw bytes of attachments come from; without one, every attachment is listed as
    /// missing.
    pub attachments: Option<&'a dyn AttachmentSource>,
    /// Also write the pack as one tar archive at this path.
    pub archive: Option<PathBuf>,
    /// Roster files (their bytes, as in version control) the release's SSH-signed decisions
    /// may have been made under: the pack carries each one a decision names, with its
    /// `allowed_signers` rendering. A signed decision under a roster not given fails the
    /// export ([`ExportError::RosterMissing`]).
    pub rosters: Vec<Vec<u8>>,
}

/// What an export wrote.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackSummary {
    /// The pack directory.
    pub dir: PathBuf,
    /// The archive, when one was asked for.
    pub archive: Option<PathBuf>,
    pub release: ReleaseId,
    pub release_name: String,
    /// Log entries included, each with its proof.
    pub entries: usize,
    /// The checkpoint's tree size.
    pub checkpoint_size: u64,
    /// The attestation files.
    pub attestations: Vec<String>,
    /// Attachments included.
    pub attachments: usize,
    /// Attachments referenced by evidence that the source did not have.
    pub attachments_missing: Vec<Digest>,
    /// SSH-signed decisions carried, each with its statement, signature and roster.
    pub signed_decisions: usize,
    /// Files in the pack, manifest and signature included.
    pub files: usize,
}

/// An evidence pack in memory: its files by path.
#[derive(Debug, Clone)]
pub struct EvidencePack {
    manifest: Manifest,
    files: BTreeMap<String, Vec<u8>>,
}

fn json_err(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> ExportError {
    let what = what.into();
    move |source| ExportError::Json { what, source }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_owned(),
        source,
    }
}

impl EvidencePack {
    /// Builds the pack of `release` from `store`, signing with `signer`.
    pub async fn build(
        store: &AuditStore,
        release: &ReleaseId,
        signer: &AttestationSigner,
        options: &ExportOptions<'_>,
    ) -> Result<Self, ExportError> {
        options
            .statements
            .check()
            .map_err(ExportError::InvalidOptions)?;
        let origin = store.origin().to_owned();
        let note = store
            .latest_checkpoint()
            .await?
            .ok_or_else(|| ExportError::NoCheckpoint {
                origin: origin.clone(),
            })?;
        let checkpoint = match store.verifier() {
            Some(v) => v.verify(&note).map_err(AuditError::from)?,
            None => unsigned_checkpoint(&note)?,
        };
        let root = store.root(checkpoint.size).await?;
        if root != checkpoint.root {
            return Err(ExportError::CheckpointMismatch {
                size: checkpoint.size,
                signed: hex::encode(checkpoint.root),
                computed: hex::encode(root),
            });
        }

        let stream = StreamId::for_release(release);
        let s = stream.clone();
        let stored = store
            .with_reader(move |b| Ok(b.read_stream(&s, 0)?))
            .await?;
        if stored.is_empty() {
            return Err(ExportError::ReleaseNotFound {
                release: *release,
                origin,
                stream: stream.to_string(),
            });
        }
        let mut entries = Vec::with_capacity(stored.len());
        let mut lines = Vec::new();
        for row in &stored {
            let seq = row.seq;
            if seq >= checkpoint.size {
                return Err(ExportError::NotCovered {
                    seq,
                    size: checkpoint.size,
                });
            }
            let corrupt = |problem: String| ExportError::Corrupt { seq, problem };
            let leaf = leaf_hash(&row.bytes);
            if leaf != row.hash {
                return Err(corrupt(
                    "its bytes do not hash to the recorded leaf hash".into(),
                ));
            }
            let decoded = decode(&row.bytes).map_err(corrupt)?;
            let proof = store.inclusion_proof(seq, checkpoint.size).await?;
            verify_inclusion(&leaf, seq, checkpoint.size, &proof, &checkpoint.root)
                .map_err(|e| corrupt(e.to_string()))?;
            let text = String::from_utf8(row.bytes.clone())
                .map_err(|e| corrupt(format!("not UTF-8: {e}")))?;
            let raw = RawValue::from_string(text).map_err(|e| corrupt(e.to_string()))?;
            let line = EntryLineOut {
                seq,
                leaf_hash: hex::encode(leaf),
                proof: proof.iter().map(hex::encode).collect(),
                entry: &raw,
            };
            let mut bytes =
                serde_json::to_vec(&line).map_err(json_err(format!("log entry {seq}")))?;
            bytes.push(b'\n');
            lines.extend_from_slice(&bytes);
            entries.push(Entry { seq, decoded });
        }
        let Some((registered, pipeline, pipeline_version)) =
            pack::registered(&entries).filter(|(r, _, _)| r.id() == *release)
        else {
            return Err(ExportError::NotARelease {
                release: *release,
                stream: stream.to_string(),
            });
        };

        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        files.insert(CHECKPOINT.to_owned(), note.into_bytes());
        files.insert(ENTRIES.to_owned(), lines);
        let keys = pack_keys(store, signer, &mut files)?;
        let mut provenance_keys = Vec::new();
        for planned in pack::plan_provenance_keys(&entries) {
            if let (Some(path), Some(pem)) = (&planned.manifest.path, &planned.pem) {
                files.insert(path.clone(), pem.clone().into_bytes());
            }
            provenance_keys.push(planned.manifest);
        }
        let (signed_decisions, rosters) = pack_signatures(&entries, &options.rosters, &mut files)?;

        let test_results = pack::plan_test_results(&registered, &pipeline, &entries);
        for planned in &test_results {
            files.insert(planned.path.clone(), sign_statement(signer, planned)?);
        }
        let digest_of = |path: &str| files.get(path).map(|b| Digest::of(b).to_hex());
        let decisions = pack::plan_decisions(
            &registered,
            &pipeline,
            &entries,
            &test_results,
            &options.statements,
            &digest_of,
        );
        for planned in &decisions {
            files.insert(planned.path.clone(), sign_statement(signer, planned)?);
        }

        let mut attachments = Vec::new();
        for (digest, mut att) in pack::referenced_attachments(&entries) {
            let name = att.names.first().cloned().unwrap_or_default();
            let fetched = match options.attachments {
                Some(source) => source.fetch(&digest, &name).map_err(|source| {
                    ExportError::AttachmentSource {
                        name: name.clone(),
                        digest,
                        source,
                    }
                })?,
                None => None,
            };
            if let Some(bytes) = fetched {
                let found = Digest::of(&bytes);
                if found != digest {
                    return Err(ExportError::AttachmentMismatch {
                        name,
                        digest,
                        found,
                    });
                }
                let path = format!("{ATTACHMENTS_DIR}/{}", attachments::file_name(&digest));
                files.insert(path.clone(), bytes);
                att.path = Some(path);
            }
            attachments.push(att);
        }

        let mut all: Vec<_> = test_results.iter().chain(&decisions).collect();
        all.sort_by(|a, b| a.path.cmp(&b.path));
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            release: ManifestRelease {
                id: *release,
                name: registered.name().to_owned(),
                stream: stream.to_string(),
                pipeline,
                pipeline_version,
                artifacts: registered
                    .artifacts()
                    .iter()
                    .map(|a| ManifestArtifact {
                        name: a.name.clone(),
                        digest: a.digest,
                    })
                    .collect(),
            },
            log: ManifestLog {
                origin: checkpoint.origin.clone(),
                size: checkpoint.size,
                root: hex::encode(checkpoint.root),
                entries: entries.len() as u64,
            },
            attestation_keyid: signer.keyid().to_owned(),
            statements: options.statements.clone(),
            attestations: all.iter().map(|p| p.manifest_entry()).collect(),
            attachments,
            signed_decisions,
            rosters,
            keys,
            provenance_keys,
            files: files
                .iter()
                .map(|(path, bytes)| ManifestFile {
                    path: path.clone(),
                    sha256: Digest::of(bytes).to_hex(),
                    size: bytes.len() as u64,
                })
                .collect(),
        };
        let mut manifest_bytes =
            serde_json::to_vec_pretty(&manifest).map_err(json_err("the manifest"))?;
        manifest_bytes.push(b'\n');
        let envelope = signer.sign(MANIFEST_PAYLOAD_TYPE, &manifest_bytes);
        files.insert(
            MANIFEST_SIGNATURE.to_owned(),
            envelope
                .to_json()
                .map_err(json_err("the manifest signature"))?,
        );
        files.insert(MANIFEST.to_owned(), manifest_bytes);
        Ok(EvidencePack { manifest, files })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Every file of the pack by its `/`-separated relative path.
    pub fn files(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.files
    }

    /// Writes the pack into `dir`, which must not exist or be empty. The files are written
    /// and synced in a new directory beside it, which is then moved into place in one step: a
    /// crash leaves no pack at `dir` or the whole pack, never part of one.
    pub fn write_dir(&self, dir: impl AsRef<Path>) -> Result<(), ExportError> {
        let dir = dir.as_ref();
        if dir.exists() {
            let mut listing = std::fs::read_dir(dir).map_err(io_err(dir))?;
            if listing.next().is_some() {
                return Err(ExportError::DirectoryNotEmpty {
                    path: dir.to_owned(),
                });
            }
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let staged = durable::temp_path(dir);
        let written = self
            .write_staged(&staged)
            .and_then(|()| durable::publish_dir(&staged, dir).map_err(ExportError::from));
        if written.is_err() {
            let _ = std::fs::remove_dir_all(&staged);
        }
        written
    }

    /// Writes every file under `staged`, then syncs every directory it made.
    fn write_staged(&self, staged: &Path) -> Result<(), ExportError> {
        std::fs::create_dir(staged).map_err(io_err(staged))?;
        let mut dirs = std::collections::BTreeSet::new();
        for (path, bytes) in &self.files {
            let target = path
                .split('/')
                .fold(staged.to_owned(), |p, part| p.join(part));
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io_err(parent))?;
                dirs.extend(
                    parent
                        .ancestors()
                        .take_while(|a| *a != staged)
                        .map(Path::to_owned),
                );
            }
            durable::write_file(&target, bytes, durable::SHARED, Existing::Keep)?;
        }
        for d in &dirs {
            durable::sync_dir(d)?;
        }
        Ok(())
    }

    /// Writes the pack as one tar archive (entries named by their relative paths, in path
    /// order, owner 0, mode 0644, time 0: the archive's bytes depend on the pack alone),
    /// whole: an archive already at `path` is replaced in one step.
    pub fn write_tar(&self, path: impl AsRef<Path>) -> Result<(), ExportError> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        durable::write_with(path, durable::SHARED, Existing::Replace, |file| {
            let mut builder = tar::Builder::new(file);
            for (name, bytes) in &self.files {
                let mut header = tar::Header::new_gnu();
                header.set_size(bytes.len() as u64);
                header.set_mode(0o644);
                header.set_uid(0);
                header.set_gid(0);
                header.set_mtime(0);
                header.set_entry_type(tar::EntryType::Regular);
                builder.append_data(&mut header, name, bytes.as_slice())?;
            }
            builder.into_inner().map(|_| ())
        })?;
        Ok(())
    }

    /// Builds the pack of `release` and writes it into `dir`, with the default options (no
    /// attachment source, no archive).
    pub async fn export(
        store: &AuditStore,
        release: &ReleaseId,
        signer: &AttestationSigner,
        dir: impl AsRef<Path>,
    ) -> Result<PackSummary, ExportError> {
        Self::export_with(store, release, signer, dir, &ExportOptions::default()).await
    }

    /// Builds the pack of `release` and writes it into `dir` (and the archive, if asked).
    pub async fn export_with(
        store: &AuditStore,
        release: &ReleaseId,
        signer: &AttestationSigner,
        dir: impl AsRef<Path>,
        options: &ExportOptions<'_>,
    ) -> Result<PackSummary, ExportError> {
        let pack = Self::build(store, release, signer, options).await?;
        pack.write_dir(dir.as_ref())?;
        if let Some(archive) = &options.archive {
            pack.write_tar(archive)?;
        }
        Ok(pack.summary(dir.as_ref(), options.archive.clone()))
    }

    fn summary(&self, dir: &Path, archive: Option<PathBuf>) -> PackSummary {
        let m = &self.manifest;
        PackSummary {
            dir: dir.to_owned(),
            archive,
            release: m.release.id,
            release_name: m.release.name.clone(),
            entries: usize::try_from(m.log.entries).unwrap_or(usize::MAX),
            checkpoint_size: m.log.size,
            attestations: m.attestations.iter().map(|a| a.path.clone()).collect(),
            attachments: m.attachments.iter().filter(|a| a.path.is_some()).count(),
            attachments_missing: m
                .attachments
                .iter()
                .filter(|a| a.path.is_none())
                .map(|a| a.digest)
                .collect(),
            signed_decisions: m.signed_decisions.len(),
            files: self.files.len(),
        }
    }
}

fn sign_statement(
    signer: &AttestationSigner,
    planned: &pack::Planned,
) -> Result<Vec<u8>, ExportError> {
    let payload = planned
        .statement
        .to_payload()
        .map_err(json_err(planned.path.clone()))?;
    signer
        .sign(IN_TOTO_PAYLOAD_TYPE, &payload)
        .to_json()
        .map_err(json_err(planned.path.clone()))
}

/// Writes the keys that verify the pack into it: the checkpoint verifier key (when the store
/// has one) and the attestation public key.
fn pack_keys(
    store: &AuditStore,
    signer: &AttestationSigner,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<Option<ManifestKeys>, ExportError> {
    let Some(checkpoint) = store.verifier() else {
        return Ok(None);
    };
    let pem = signer
        .verifier()
        .public_key_pem()
        .map_err(|e| ExportError::Key {
            what: "attestation public key",
            problem: e.to_string(),
        })?;
    files.insert(
        CHECKPOINT_KEY_FILE.to_owned(),
        format!("{}\n", checkpoint.verifier_key()).into_bytes(),
    );
    files.insert(ATTESTATION_KEY_FILE.to_owned(), pem.into_bytes());
    Ok(Some(ManifestKeys {
        checkpoint: CHECKPOINT_KEY_FILE.to_owned(),
        attestation: ATTESTATION_KEY_FILE.to_owned(),
    }))
}

/// Writes every signed decision's statement and signature, and each roster they name with its
/// `allowed_signers` rendering, into the pack.
fn pack_signatures(
    entries: &[Entry],
    given: &[Vec<u8>],
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(Vec<pack::ManifestSignedDecision>, Vec<pack::ManifestRoster>), ExportError> {
    let mut known = BTreeMap::new();
    for (index, bytes) in given.iter().enumerate() {
        let (entry, _, signers) = pack::roster_files(bytes)
            .map_err(|problem| ExportError::InvalidRoster { index, problem })?;
        known.insert(entry.digest, (entry, bytes, signers));
    }
    let mut decisions = Vec::new();
    let mut rosters = BTreeMap::new();
    for planned in pack::plan_signatures(entries) {
        let m = planned.manifest;
        let Some((entry, bytes, signers)) = known.get(&m.roster) else {
            return Err(ExportError::RosterMissing {
                seq: m.entry,
                digest: m.roster,
            });
        };
        files.insert(m.statement.clone(), planned.statement.into_bytes());
        files.insert(m.signature.clone(), planned.signature.into_bytes());
        files.insert(entry.path.clone(), bytes.to_vec());
        files.insert(entry.allowed_signers.clone(), signers.clone().into_bytes());
        rosters.insert(m.roster, entry.clone());
        decisions.push(m);
    }
    Ok((decisions, rosters.into_values().collect()))
}
