//! Configuration baselines and build reproducibility.
//!
//! ## Overview
//!
//! - [`ConfigBaselineGate`] (a [`GateKind::Compliance`](promotion_core::GateKind::Compliance) gate) digests the configuration files
//!   of a directory and compares them with an approved [`BaselineManifest`]: any file added,
//!   removed or changed since the approval fails the gate (or, with
//!   [`FailOn::ChangedOrRemoved`], only changed and removed files do).
//! - [`ReproducibilityGate`] (a [`GateKind::Automated`](promotion_core::GateKind::Automated) gate) compares the release's artifact
//!   digests with the artifacts of a second, independent build, read from an
//!   [`ArtifactManifest`].
//!
//! Both gates record the digest of every file they read as an [`Attachment`](promotion_core::Attachment) of their
//! evidence, and turn malformed input into [`GateError::InvalidInput`](promotion_core::GateError::InvalidInput) naming the file (and
//! the line, where the parser knows it) and the problem — never a pass.
//!
//! ## Selecting files
//!
//! Paths are relative to the directory and `/`-separated on every platform (`nginx/site.conf`).
//! Patterns are [globset] globs in which `*` does not cross a `/`: `*.toml` matches top-level
//! files only, `**/*.toml` matches at any depth.
//!
//! - With no include pattern every regular file is selected; otherwise a file must match one.
//! - A file matching an exclude pattern is left out, and a directory matching one is not
//!   entered at all (exclude `local` to skip `local/` and everything under it).
//! - Manifest entries outside the selection are ignored too, so a file that is excluded can
//!   never fail the gate, whatever manifest it was approved with.
//! - When the manifest itself lives inside the directory it is never part of the baseline.
//!
//! **Symbolic links are refused by default**: a link that is not excluded is an
//! [`InvalidInput`](promotion_core::GateError::InvalidInput) naming it, whatever the include patterns say,
//! because a link may stand for a whole directory of configuration and the gate will not guess
//! what it means. Exclude the link, or let the gate follow links with
//! [`ConfigBaselineGateBuilder::follow_symlinks`]: the link is then digested as the file it
//! points to (a directory link is walked; loops and dangling links are errors naming them).
//! A selected socket, FIFO or device is refused too.
//!
//! Files are hashed in 64 KiB chunks, never read whole, and the walk runs on its own thread so
//! that an engine timeout can fire while a large tree is still being hashed.
//!
//! ## Baseline manifest format
//!
//! JSON (any file name not ending in `.toml`):
//!
//! ```json
//! {
//!   "approved_by": "dana",
//!   "approved_at": "2026-11-20T09:30:00Z",
//!   "files": {
//!     "app.toml": "sha256:f0a22a1463c2ebeb2d823ae317bbd864e455c41297a43bbbf408e4c5bd687ba4",
//!     "nginx/nginx.conf": "sha256:8576ac04861013a54443bad43d659f665568f0226fbf810c6bd12667ec543b2b"
//!   }
//! }
//! ```
//!
//! or TOML (a file name ending in `.toml`), where `approved_at` may be a TOML date-time or a
//! string:
//!
//! ```toml
//! approved_by = "dana"
//! approved_at = 2026-11-20T09:30:00Z
//!
//! [files]
//! "app.toml" = "sha256:f0a22a1463c2ebeb2d823ae317bbd864e455c41297a43bbbf408e4c5bd687ba4"
//! ```
//!
//! `files` is required; `approved_by` and `approved_at` (RFC 3339, with a UTC offset) are
//! optional; any other key is refused. Digests are `sha256:<64 hex digits>`. Paths must be
//! relative, `/`-separated, without empty, `.` or `..` segments, and may be listed once.
//! [`ConfigBaselineGate::approve`] writes such a manifest for the directory's current state.
//!
//! ## Second-build manifest formats
//!
//! [`ArtifactManifest`] accepts, as JSON (or TOML for the first two):
//!
//! - `{"artifacts": {"api-image": "sha256:…"}}`;
//! - a baseline manifest (`{"files": {"dist/api.tar": "sha256:…"}}`), for a second builder
//!   that recorded its output directory with [`ConfigBaselineGate::approve`];
//! - an in-toto statement (`{"_type": …, "subject": [{"name": …, "digest": {"sha256": "<hex>"}}],
//!   …}`) or its bare list of subjects. Other digest algorithms are ignored; each subject needs
//!   a `sha256`.
//!
//! Artifacts are matched by exact name with the release's [`Release::artifacts`](promotion_core::Release::artifacts).

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use promotion_core::{Digest, GateName, InvalidName};
use serde::Serialize;

pub use crate::reproducibility::{
    ArtifactCheck, ArtifactManifest, ArtifactStatus, ManifestShape, ReproducibilityGate,
    ReproducibilityGateBuilder, ReproducibilityReport,
};

mod files;
mod gate;
mod manifest;

#[cfg(test)]
use files::digest_reader;
pub use files::FileDigest;
use files::{digest_file, manifest_inside, slash_path, walk_error, Selection};
pub(crate) use gate::{counted, plural};
pub(crate) use manifest::{parse_document, read_text, shown, EntriesSeed, EntryKind};
pub use manifest::{BaselineManifest, ManifestFormat};

/// Bytes read from a file at a time while hashing it.
const CHUNK: usize = 64 * 1024;

/// How many names a summary lists per category before saying "and N more".
const SUMMARY_NAMES: usize = 3;

// ---------------------------------------------------------------------------------------------
// Configuration errors
// ---------------------------------------------------------------------------------------------

/// A gate of this module was configured wrongly; returned by the builders' `build`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BaselineConfigError {
    /// An include or exclude pattern is not a valid glob.
    #[error("invalid {list} pattern `{pattern}`: {message}")]
    InvalidPattern {
        /// `include` or `exclude`.
        list: &'static str,
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
    /// The gate's name is not a valid gate name.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
}

// ---------------------------------------------------------------------------------------------
// Configuration baseline gate
// ---------------------------------------------------------------------------------------------

/// Which differences from the baseline fail the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailOn {
    /// Any added, removed or changed file (the default).
    #[default]
    AnyDifference,
    /// Only changed or removed files; added files are reported but tolerated.
    ChangedOrRemoved,
}

/// A file that is in the baseline but differs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ChangedFile {
    /// Relative path.
    pub path: String,
    /// The digest the manifest approved (old).
    pub approved: Digest,
    /// The digest found now (new).
    pub found: Digest,
    /// The size found now.
    pub size: u64,
}

/// A file the baseline lists that is no longer there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RemovedFile {
    /// Relative path.
    pub path: String,
    /// The digest the manifest approved.
    pub approved: Digest,
}

/// The manifest a baseline check read.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ManifestInfo {
    pub path: String,
    /// Digest of its bytes.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Who approved it.
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    /// How many files it lists.
    pub entries: usize,
}

/// The outcome of comparing a directory with its baseline; every list is in path order.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BaselineReport {
    pub directory: String,
    pub manifest: ManifestInfo,
    /// Every selected file, as found now.
    pub files: Vec<FileDigest>,
    /// Files found that the baseline does not list.
    pub added: Vec<FileDigest>,
    /// Files the baseline lists that are gone.
    pub removed: Vec<RemovedFile>,
    /// Files whose digest differs from the approved one.
    pub changed: Vec<ChangedFile>,
    /// How many files match the baseline.
    pub unchanged: usize,
    /// Manifest entries outside the selection (excluded, or the manifest itself), ignored.
    pub out_of_scope: Vec<String>,
}

impl BaselineReport {
    /// How many differences fail the gate under `fail_on`.
    pub fn failures(&self, fail_on: FailOn) -> usize {
        let added = match fail_on {
            FailOn::AnyDifference => self.added.len(),
            FailOn::ChangedOrRemoved => 0,
        };
        self.changed.len() + self.removed.len() + added
    }
}

#[derive(Debug)]
struct BaselineConfig {
    name: String,
    directory: PathBuf,
    manifest: PathBuf,
    format: Option<ManifestFormat>,
    selection: Selection,
    follow_symlinks: bool,
    fail_on: FailOn,
}

/// Fails when the configuration files of a directory differ from an approved baseline
/// manifest. See the [module documentation](self) for selection, symlinks and the format.
///
/// ```
/// use promotion_core::testing::GateProbe;
/// use promotion_core::{Gate, GateKind, Verdict};
/// use promotion_gates::baseline::ConfigBaselineGate;
///
/// let dir = tempfile::tempdir()?;
/// let conf = dir.path().join("conf");
/// std::fs::create_dir_all(conf.join("nginx"))?;
/// std::fs::write(conf.join("app.toml"), "port = 8080\n")?;
/// std::fs::write(conf.join("nginx/nginx.conf"), "worker_processes 4;\n")?;
/// std::fs::write(conf.join("app.toml.bak"), "port = 80\n")?;
///
/// let gate = ConfigBaselineGate::builder(&conf, dir.path().join("baseline.json"))
///     .name("prod-config")
///     .exclude("**/*.bak")
///     .build()?;
/// assert_eq!(gate.kind(), GateKind::Compliance);
///
/// // An operator approves the current state...
/// let approved = gate.approve("dana", "2026-11-20T09:30:00Z".parse()?)?;
/// assert_eq!(approved.files.len(), 2);
/// let probe = GateProbe::new();
/// let verdict = futures::executor::block_on(probe.evaluate(&gate))?;
/// assert!(matches!(verdict, Verdict::Pass(_)), "{verdict:?}");
///
/// // ...an edit to an excluded file changes nothing...
/// std::fs::write(conf.join("app.toml.bak"), "port = 81\n")?;
/// let verdict = futures::executor::block_on(probe.evaluate(&gate))?;
/// assert!(matches!(verdict, Verdict::Pass(_)), "{verdict:?}");
///
/// // ...and any other edit fails the gate, naming the file.
/// std::fs::write(conf.join("app.toml"), "port = 9090\n")?;
/// let verdict = futures::executor::block_on(probe.evaluate(&gate))?;
/// assert!(matches!(verdict, Verdict::Fail(_)));
/// assert!(verdict.evidence().summary.contains("1 changed (app.toml)"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConfigBaselineGate {
    config: Arc<BaselineConfig>,
}

/// Builder for [`ConfigBaselineGate`]; patterns and the name are validated in
/// [`build`](ConfigBaselineGateBuilder::build).
#[derive(Debug, Clone)]
pub struct ConfigBaselineGateBuilder {
    name: String,
    directory: PathBuf,
    manifest: PathBuf,
    format: Option<ManifestFormat>,
    include: Vec<String>,
    exclude: Vec<String>,
    follow_symlinks: bool,
    fail_on: FailOn,
}

impl ConfigBaselineGateBuilder {
    /// Names the gate (default `config-baseline`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Adds an include pattern; with none, every file is included.
    pub fn include(mut self, pattern: impl Into<String>) -> Self {
        self.include.push(pattern.into());
        self
    }
    /// Adds an exclude pattern; a matching directory is skipped with everything under it.
    pub fn exclude(mut self, pattern: impl Into<String>) -> Self {
        self.exclude.push(pattern.into());
        self
    }
    /// Follows symbolic links instead of refusing them (default: refuse).
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.follow_symlinks = follow;
        self
    }
    /// Which differences fail the gate (default: [`FailOn::AnyDifference`]).
    pub fn fail_on(mut self, fail_on: FailOn) -> Self {
        self.fail_on = fail_on;
        self
    }
    /// Reads and writes the manifest in `format` whatever its extension says.
    pub fn manifest_format(mut self, format: ManifestFormat) -> Self {
        self.format = Some(format);
        self
    }
    /// Validates the name and patterns.
    pub fn build(self) -> Result<ConfigBaselineGate, BaselineConfigError> {
        GateName::new(self.name.as_str())?;
        let selection = Selection::new(self.include, self.exclude)?;
        Ok(ConfigBaselineGate {
            config: Arc::new(BaselineConfig {
                name: self.name,
                directory: self.directory,
                manifest: self.manifest,
                format: self.format,
                selection,
                follow_symlinks: self.follow_symlinks,
                fail_on: self.fail_on,
            }),
        })
    }
}

#[cfg(test)]
mod tests;
