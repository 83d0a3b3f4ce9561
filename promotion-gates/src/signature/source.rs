//! Where envelopes come from: an [`EnvelopeSource`] finds the files for an artifact, and
//! [`EnvelopeDir`] looks for `<artifact>.intoto.jsonl` or `<artifact>.dsse.json` in a directory,
//! reading at most [`MAX_ENVELOPE_BYTES`] of each.

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use promotion_core::{Artifact, GateError};

use crate::input::read_bounded;

use super::{ENVELOPE_SUFFIXES, MAX_ENVELOPE_BYTES};

/// How an envelope file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeFormat {
    /// One envelope, as a JSON document (`.dsse.json`).
    Json,
    /// One envelope per non-blank line (`.intoto.jsonl`).
    JsonLines,
}

/// Envelope bytes found for an artifact, with where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeFile {
    /// Where the bytes came from (a path, a registry reference): named in errors and evidence.
    pub origin: String,
    /// How the bytes are laid out.
    pub format: EnvelopeFormat,
    /// The bytes as read.
    pub bytes: Vec<u8>,
}

/// Finds the DSSE envelopes of an artifact. Implement it to read attestations from where the
/// host keeps them; [`EnvelopeDir`] reads a directory.
#[async_trait]
pub trait EnvelopeSource: Send + Sync + fmt::Debug {
    /// The envelope files for `artifact`; empty when there are none. Failing to look (a store
    /// that does not answer) is a [`GateError`].
    async fn envelopes(&self, artifact: &Artifact) -> Result<Vec<EnvelopeFile>, GateError>;

    /// Where envelopes for `artifact` are looked for, for the message saying there are none
    /// (`/att/api.intoto.jsonl, /att/api.dsse.json`).
    fn location(&self, artifact: &Artifact) -> String;
}

/// Envelopes in one directory: `<artifact name>.intoto.jsonl` and/or
/// `<artifact name>.dsse.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeDir {
    dir: PathBuf,
}

impl EnvelopeDir {
    /// Envelopes in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EnvelopeDir { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files looked for, for an artifact named `name`.
    pub fn paths(&self, name: &str) -> [PathBuf; 2] {
        ENVELOPE_SUFFIXES.map(|suffix| self.dir.join(format!("{name}{suffix}")))
    }

    fn read(path: &Path) -> Result<Option<Vec<u8>>, GateError> {
        read_bounded(path, MAX_ENVELOPE_BYTES, "envelope file", || {
            format!("the envelope file is larger than {MAX_ENVELOPE_BYTES} bytes")
        })
    }
}

#[async_trait]
impl EnvelopeSource for EnvelopeDir {
    async fn envelopes(&self, artifact: &Artifact) -> Result<Vec<EnvelopeFile>, GateError> {
        let name = artifact.name.as_str();
        if name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
            return Err(GateError::Misconfigured(format!(
                "artifact name `{name}` cannot name an envelope file in {}; use an \
                 EnvelopeSource that maps artifact names to envelopes",
                self.dir.display()
            )));
        }
        if !self.dir.is_dir() {
            return Err(GateError::Misconfigured(format!(
                "the envelope directory {} does not exist or is not a directory",
                self.dir.display()
            )));
        }
        let mut out = Vec::new();
        let formats = [EnvelopeFormat::JsonLines, EnvelopeFormat::Json];
        for (path, format) in self.paths(name).iter().zip(formats) {
            if let Some(bytes) = Self::read(path)? {
                out.push(EnvelopeFile {
                    origin: path.display().to_string(),
                    format,
                    bytes,
                });
            }
        }
        Ok(out)
    }

    fn location(&self, artifact: &Artifact) -> String {
        self.paths(&artifact.name)
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
