//! Configuration baselines and build reproducibility.
//!
//! ## Overview
//!
//! - [`ConfigBaselineGate`] (a [`GateKind::Compliance`] gate) digests the configuration files
//!   of a directory and compares them with an approved [`BaselineManifest`]: any file added,
//!   removed or changed since the approval fails the gate (or, with
//!   [`FailOn::ChangedOrRemoved`], only changed and removed files do).
//! - [`ReproducibilityGate`] (a [`GateKind::Automated`] gate) compares the release's artifact
//!   digests with the artifacts of a second, independent build, read from an
//!   [`ArtifactManifest`].
//!
//! Both gates record the digest of every file they read as an [`Attachment`] of their
//! evidence, and turn malformed input into [`GateError::InvalidInput`] naming the file (and
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
//! [`InvalidInput`](GateError::InvalidInput) naming it, whatever the include patterns say,
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

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use promotion_core::{
    Attachment, Digest, Evidence, Gate, GateContext, GateError, GateKind, GateName, InvalidName,
    Verdict,
};
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest as _, Sha256};
use walkdir::WalkDir;

use crate::input::{invalid_input, line_of};
pub use crate::reproducibility::{
    ArtifactCheck, ArtifactManifest, ArtifactStatus, ManifestShape, ReproducibilityGate,
    ReproducibilityGateBuilder, ReproducibilityReport,
};

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
// Manifest formats and parsing helpers
// ---------------------------------------------------------------------------------------------

/// The syntax of a manifest file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ManifestFormat {
    /// JSON.
    Json,
    /// TOML.
    Toml,
}

impl ManifestFormat {
    /// TOML for a file name ending in `.toml` (any case), JSON otherwise.
    ///
    /// ```
    /// use promotion_gates::baseline::ManifestFormat;
    /// assert_eq!(ManifestFormat::from_path("baseline.toml".as_ref()), ManifestFormat::Toml);
    /// assert_eq!(ManifestFormat::from_path("baseline.json".as_ref()), ManifestFormat::Json);
    /// ```
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("toml") => ManifestFormat::Toml,
            _ => ManifestFormat::Json,
        }
    }
}

pub(crate) fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Reads a whole (small) input file as UTF-8 text.
pub(crate) fn read_text(path: &Path, noun: &str) -> Result<(Vec<u8>, String), GateError> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            invalid_input(shown(path), None, format!("the {noun} does not exist"))
        } else {
            invalid_input(shown(path), None, format!("the {noun} cannot be read: {e}"))
        }
    })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| {
            invalid_input(
                shown(path),
                None,
                format!("the {noun} is not UTF-8 text: {e}"),
            )
        })?
        .to_owned();
    Ok((bytes, text))
}

pub(crate) fn parse_document<T: DeserializeOwned>(
    text: &str,
    format: ManifestFormat,
    origin: &str,
) -> Result<T, GateError> {
    match format {
        ManifestFormat::Json => serde_json::from_str(text).map_err(|e| {
            let full = e.to_string();
            let position = format!(" at line {} column {}", e.line(), e.column());
            let message = full.strip_suffix(&position).unwrap_or(&full);
            let message = match e.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    format!("not valid JSON: {message}")
                }
                _ => message.to_owned(),
            };
            invalid_input(origin, (e.line() > 0).then(|| e.line()), message)
        }),
        ManifestFormat::Toml => toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| line_of(text, span.start));
            let message = e.message().trim().replace('\n', "; ");
            invalid_input(origin, line, message)
        }),
    }
}

/// One entry's digest. Every check happens inside the value's visitor, where both parsers
/// still know the entry's position (so errors carry the entry's line).
struct EntryValue<'a> {
    kind: EntryKind,
    key: &'a str,
    seen: &'a BTreeMap<String, Digest>,
}

impl EntryValue<'_> {
    fn refuse<E: de::Error>(&self, problem: impl fmt::Display) -> E {
        E::custom(format!(
            "{} `{}`: {problem}",
            self.kind.noun(),
            self.key.escape_debug()
        ))
    }
    fn wrong_type<E: de::Error>(&self, found: impl fmt::Display) -> E {
        self.refuse(format!(
            "expected a digest `sha256:<64 hex digits>`, found {found}"
        ))
    }
}

impl<'de> DeserializeSeed<'de> for EntryValue<'_> {
    type Value = Digest;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Digest, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for EntryValue<'_> {
    type Value = Digest;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a digest `sha256:<64 hex digits>`")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Digest, E> {
        self.kind
            .check(self.key)
            .map_err(|problem| self.refuse(problem))?;
        let digest = Digest::parse(v).map_err(|e| self.refuse(e))?;
        if self.seen.contains_key(self.key) {
            return Err(E::custom(format!(
                "{} `{}` is listed twice",
                self.kind.noun(),
                self.key.escape_debug()
            )));
        }
        Ok(digest)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Digest, E> {
        Err(self.wrong_type(format_args!("the boolean {v}")))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Digest, E> {
        Err(self.wrong_type(format_args!("the number {v}")))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Digest, E> {
        Err(self.wrong_type(format_args!("the number {v}")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Digest, E> {
        Err(self.wrong_type(format_args!("the number {v}")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Digest, E> {
        Err(self.wrong_type("null"))
    }
    fn visit_none<E: de::Error>(self) -> Result<Digest, E> {
        Err(self.wrong_type("null"))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Digest, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Digest, A::Error> {
        Err(self.wrong_type("a list"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Digest, A::Error> {
        Err(self.wrong_type("a table"))
    }
}

/// What the keys of a digest map are.
#[derive(Clone, Copy)]
pub(crate) enum EntryKind {
    /// Relative file paths.
    File,
    /// Artifact names.
    Artifact,
}

impl EntryKind {
    fn noun(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Artifact => "artifact",
        }
    }
    fn check(self, key: &str) -> Result<(), &'static str> {
        match self {
            EntryKind::File => check_relative_path(key),
            EntryKind::Artifact if key.trim().is_empty() => Err("the artifact name is empty"),
            EntryKind::Artifact => Ok(()),
        }
    }
}

fn check_relative_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("the path is empty");
    }
    if path.starts_with('/') {
        return Err("the path must be relative to the directory, without a leading `/`");
    }
    if path.chars().any(char::is_control) {
        return Err("the path contains a control character");
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err("the path has an empty segment (`//` or a trailing `/`)"),
            "." | ".." => return Err("the path may not contain `.` or `..` segments"),
            _ => {}
        }
    }
    Ok(())
}

/// Reads a map of name → `sha256:` digest, refusing duplicates and naming the bad entry.
pub(crate) struct EntriesSeed(pub(crate) EntryKind);

impl<'de> DeserializeSeed<'de> for EntriesSeed {
    type Value = BTreeMap<String, Digest>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> de::Visitor<'de> for EntriesSeed {
    type Value = BTreeMap<String, Digest>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a map of {} → `sha256:<64 hex digits>`", self.0.noun())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let digest = map.next_value_seed(EntryValue {
                kind: self.0,
                key: &key,
                seen: &out,
            })?;
            out.insert(key, digest);
        }
        Ok(out)
    }
}

struct FileEntries(BTreeMap<String, Digest>);

impl<'de> Deserialize<'de> for FileEntries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        EntriesSeed(EntryKind::File).deserialize(d).map(FileEntries)
    }
}

fn parse_approved_at(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!(
                "approved_at `{}` is not an RFC 3339 date and time with a UTC offset \
                 (like 2026-11-20T09:30:00Z): {e}",
                text.escape_debug()
            )
        })
}

fn de_approved_at<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    d.deserialize_any(ApprovedAtVisitor)
}

struct ApprovedAtVisitor;

impl<'de> de::Visitor<'de> for ApprovedAtVisitor {
    type Value = Option<DateTime<Utc>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 date and time with a UTC offset (like 2026-11-20T09:30:00Z)")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_approved_at(v).map(Some).map_err(E::custom)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    /// A TOML date-time arrives as a map.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let datetime =
            toml::value::Datetime::deserialize(de::value::MapAccessDeserializer::new(map))?;
        parse_approved_at(&datetime.to_string())
            .map(Some)
            .map_err(de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Baseline manifest
// ---------------------------------------------------------------------------------------------

/// An approved configuration baseline: relative path → digest, with who approved it and when.
///
/// ```
/// use promotion_gates::baseline::{BaselineManifest, ManifestFormat};
/// use promotion_core::Digest;
///
/// let manifest = BaselineManifest::new([("app.toml".to_owned(), Digest::of(b"port = 8080\n"))])
///     .approved("dana", "2026-11-20T09:30:00Z".parse()?);
/// let toml = manifest.render(ManifestFormat::Toml)?;
/// assert_eq!(BaselineManifest::parse(&toml, ManifestFormat::Toml, "baseline.toml")?, manifest);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct BaselineManifest {
    /// Who approved the baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// When it was approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<DateTime<Utc>>,
    /// Relative `/`-separated path → digest of the file's bytes, in path order.
    pub files: BTreeMap<String, Digest>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a baseline manifest: a table with `files` and optional `approved_by`, `approved_at`"
)]
struct ManifestRepr {
    #[serde(default)]
    approved_by: Option<String>,
    #[serde(default, deserialize_with = "de_approved_at")]
    approved_at: Option<DateTime<Utc>>,
    files: FileEntries,
}

impl BaselineManifest {
    /// A manifest of `files` (path → digest) with no approval recorded.
    pub fn new(files: impl IntoIterator<Item = (String, Digest)>) -> Self {
        BaselineManifest {
            approved_by: None,
            approved_at: None,
            files: files.into_iter().collect(),
        }
    }

    /// Records who approved the baseline, and when.
    pub fn approved(mut self, by: impl Into<String>, at: DateTime<Utc>) -> Self {
        self.approved_by = Some(by.into());
        self.approved_at = Some(at);
        self
    }

    /// Parses a manifest; `origin` (usually the file's path) names it in errors.
    ///
    /// Errors are [`GateError::InvalidInput`] with `what` = `origin` and, where known, the
    /// line: not JSON/TOML, a malformed digest or path (naming the entry), a path listed twice,
    /// an unknown key.
    pub fn parse(text: &str, format: ManifestFormat, origin: &str) -> Result<Self, GateError> {
        let repr: ManifestRepr = parse_document(text, format, origin)?;
        Ok(BaselineManifest {
            approved_by: repr.approved_by,
            approved_at: repr.approved_at,
            files: repr.files.0,
        })
    }

    /// Reads and parses the manifest at `path`, in the format its extension says
    /// ([`ManifestFormat::from_path`]).
    pub fn read(path: &Path) -> Result<Self, GateError> {
        let (_, text) = read_text(path, "baseline manifest")?;
        Self::parse(&text, ManifestFormat::from_path(path), &shown(path))
    }

    /// The manifest as text: pretty JSON or TOML, paths in order, ending with a newline.
    pub fn render(&self, format: ManifestFormat) -> Result<String, GateError> {
        let text = match format {
            ManifestFormat::Json => {
                serde_json::to_string_pretty(self).map_err(|e| GateError::Other {
                    message: "the baseline manifest could not be written as JSON".to_owned(),
                    source: Some(Box::new(e)),
                })?
            }
            ManifestFormat::Toml => toml::to_string(self).map_err(|e| GateError::Other {
                message: "the baseline manifest could not be written as TOML".to_owned(),
                source: Some(Box::new(e)),
            })?,
        };
        Ok(if text.ends_with('\n') {
            text
        } else {
            text + "\n"
        })
    }

    /// Writes the manifest to `path` (replacing it), in the format its extension says.
    pub fn write(&self, path: &Path) -> Result<(), GateError> {
        self.write_as(path, ManifestFormat::from_path(path))
    }

    fn write_as(&self, path: &Path, format: ManifestFormat) -> Result<(), GateError> {
        let text = self.render(format)?;
        std::fs::write(path, text).map_err(|e| GateError::Other {
            message: format!("the baseline manifest {} could not be written", shown(path)),
            source: Some(Box::new(e)),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// File selection and hashing
// ---------------------------------------------------------------------------------------------

/// Which files of the directory make up the baseline.
#[derive(Debug, Clone)]
struct Selection {
    include: Option<GlobSet>,
    exclude: GlobSet,
    include_patterns: Vec<String>,
    exclude_patterns: Vec<String>,
}

fn glob_set(list: &'static str, patterns: &[String]) -> Result<GlobSet, BaselineConfigError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let refuse = |message: String| BaselineConfigError::InvalidPattern {
            list,
            pattern: pattern.clone(),
            message,
        };
        if pattern.is_empty() {
            return Err(refuse("a pattern may not be empty".to_owned()));
        }
        if pattern.starts_with('/') {
            return Err(refuse(
                "patterns are relative to the directory and may not start with `/`".to_owned(),
            ));
        }
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| refuse(e.kind().to_string()))?;
        set.add(glob);
    }
    set.build()
        .map_err(|e| BaselineConfigError::InvalidPattern {
            list,
            pattern: patterns.join(", "),
            message: e.kind().to_string(),
        })
}

impl Selection {
    fn new(include: Vec<String>, exclude: Vec<String>) -> Result<Self, BaselineConfigError> {
        Ok(Selection {
            include: if include.is_empty() {
                None
            } else {
                Some(glob_set("include", &include)?)
            },
            exclude: glob_set("exclude", &exclude)?,
            include_patterns: include,
            exclude_patterns: exclude,
        })
    }

    /// Whether the walk skips this directory and everything under it.
    fn prunes(&self, rel: &str) -> bool {
        self.exclude.is_match(rel)
    }

    /// Whether `rel` or one of its parent directories is excluded.
    fn excludes(&self, rel: &str) -> bool {
        self.exclude.is_match(rel)
            || rel
                .match_indices('/')
                .any(|(i, _)| rel.get(..i).is_some_and(|dir| self.exclude.is_match(dir)))
    }

    /// Whether the file at `rel` belongs to the baseline.
    fn selects(&self, rel: &str) -> bool {
        !self.excludes(rel) && self.include.as_ref().is_none_or(|g| g.is_match(rel))
    }
}

/// `rel` as a `/`-separated string, or `None` when it is not a plain relative UTF-8 path.
fn slash_path(rel: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// The manifest's path relative to `dir`, when it lives inside it.
fn manifest_inside(dir: &Path, manifest: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let manifest = match std::fs::canonicalize(manifest) {
        Ok(m) => m,
        Err(_) => {
            let parent = manifest.parent().filter(|p| !p.as_os_str().is_empty());
            let parent = std::fs::canonicalize(parent.unwrap_or(Path::new("."))).ok()?;
            parent.join(manifest.file_name()?)
        }
    };
    slash_path(manifest.strip_prefix(&dir).ok()?)
}

/// Digest and size of everything `reader` yields, read in [`CHUNK`]-sized pieces.
fn digest_reader<R: Read>(mut reader: R) -> io::Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(buf.get(..n).unwrap_or_default());
        size += n as u64;
    }
    Ok((Digest::from_bytes(hasher.finalize().into()), size))
}

fn digest_file(path: &Path) -> Result<(Digest, u64), GateError> {
    File::open(path)
        .and_then(digest_reader)
        .map_err(|e| invalid_input(shown(path), None, format!("the file cannot be read: {e}")))
}

fn walk_error(dir: &Path, e: &walkdir::Error) -> GateError {
    let what = shown(e.path().unwrap_or(dir));
    let message = if let Some(ancestor) = e.loop_ancestor() {
        format!(
            "symbolic link loop: it leads back to {}",
            ancestor.display()
        )
    } else if let Some(io) = e.io_error() {
        if io.kind() == io::ErrorKind::NotFound {
            "does not exist (a dangling symbolic link?)".to_owned()
        } else {
            format!("cannot be read: {io}")
        }
    } else {
        e.to_string()
    };
    invalid_input(what, None, message)
}

/// One file of the directory: its relative path, digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FileDigest {
    /// Relative, `/`-separated path.
    pub path: String,
    /// Digest of the bytes.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ManifestInfo {
    /// Its path.
    pub path: String,
    /// Digest of its bytes.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// When.
    pub approved_at: Option<DateTime<Utc>>,
    /// How many files it lists.
    pub entries: usize,
}

/// The outcome of comparing a directory with its baseline; every list is in path order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BaselineReport {
    /// The directory.
    pub directory: String,
    /// The manifest.
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

impl ConfigBaselineGate {
    /// Starts a gate comparing the files under `directory` with the manifest at `manifest`.
    pub fn builder(
        directory: impl Into<PathBuf>,
        manifest: impl Into<PathBuf>,
    ) -> ConfigBaselineGateBuilder {
        ConfigBaselineGateBuilder {
            name: "config-baseline".to_owned(),
            directory: directory.into(),
            manifest: manifest.into(),
            format: None,
            include: Vec::new(),
            exclude: Vec::new(),
            follow_symlinks: false,
            fail_on: FailOn::default(),
        }
    }

    /// The directory it checks.
    pub fn directory(&self) -> &Path {
        &self.config.directory
    }

    /// The manifest it compares with.
    pub fn manifest_path(&self) -> &Path {
        &self.config.manifest
    }

    fn format(&self) -> ManifestFormat {
        self.config
            .format
            .unwrap_or_else(|| ManifestFormat::from_path(&self.config.manifest))
    }

    /// Digests every selected file of the directory, in path order (blocking).
    pub fn scan(&self) -> Result<Vec<FileDigest>, GateError> {
        let c = &self.config;
        let dir = c.directory.as_path();
        match std::fs::metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(invalid_input(
                    shown(dir),
                    None,
                    "the configuration directory does not exist",
                ))
            }
            Err(e) => {
                return Err(invalid_input(
                    shown(dir),
                    None,
                    format!("the configuration directory cannot be read: {e}"),
                ))
            }
            Ok(m) if !m.is_dir() => {
                return Err(invalid_input(shown(dir), None, "is not a directory"));
            }
            Ok(_) => {}
        }
        let skip = manifest_inside(dir, &c.manifest);
        let mut out = Vec::new();
        let mut walk = WalkDir::new(dir)
            .follow_links(c.follow_symlinks)
            .sort_by_file_name()
            .into_iter();
        while let Some(entry) = walk.next() {
            let entry = entry.map_err(|e| walk_error(dir, &e))?;
            if entry.depth() == 0 {
                continue;
            }
            let path = entry.path();
            let rel = path
                .strip_prefix(dir)
                .ok()
                .and_then(slash_path)
                .ok_or_else(|| {
                    invalid_input(shown(path), None, "the file name is not valid UTF-8")
                })?;
            let kind = entry.file_type();
            if kind.is_dir() {
                if c.selection.prunes(&rel) {
                    walk.skip_current_dir();
                }
                continue;
            }
            if skip.as_deref() == Some(rel.as_str()) {
                continue;
            }
            if kind.is_symlink() {
                if c.selection.excludes(&rel) {
                    continue;
                }
                return Err(invalid_input(
                    shown(path),
                    None,
                    "is a symbolic link: exclude it, or let the gate follow symbolic links",
                ));
            }
            if !c.selection.selects(&rel) {
                continue;
            }
            if !kind.is_file() {
                return Err(invalid_input(
                    shown(path),
                    None,
                    "is not a regular file (a socket, FIFO or device)",
                ));
            }
            let (digest, size) = digest_file(path)?;
            out.push(FileDigest {
                path: rel,
                digest,
                size,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// A manifest of the directory as it is now, with no approval recorded (blocking).
    pub fn capture(&self) -> Result<BaselineManifest, GateError> {
        Ok(BaselineManifest::new(
            self.scan()?.into_iter().map(|f| (f.path, f.digest)),
        ))
    }

    /// Approves the directory as it is now: captures it, records `by` and `at`, writes the
    /// manifest to the gate's manifest path and returns it (blocking).
    pub fn approve(
        &self,
        by: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Result<BaselineManifest, GateError> {
        let manifest = self.capture()?.approved(by, at);
        manifest.write_as(&self.config.manifest, self.format())?;
        Ok(manifest)
    }

    /// Reads the manifest, digests the directory and compares them (blocking).
    pub fn check(&self) -> Result<BaselineReport, GateError> {
        let c = &self.config;
        let (bytes, text) = read_text(&c.manifest, "baseline manifest")?;
        let manifest = BaselineManifest::parse(&text, self.format(), &shown(&c.manifest))?;
        let files = self.scan()?;
        let skip = manifest_inside(&c.directory, &c.manifest);
        let found: BTreeMap<&str, &FileDigest> =
            files.iter().map(|f| (f.path.as_str(), f)).collect();

        let mut removed = Vec::new();
        let mut changed = Vec::new();
        let mut unchanged = 0;
        let mut out_of_scope = Vec::new();
        for (path, approved) in &manifest.files {
            if !c.selection.selects(path) || skip.as_deref() == Some(path.as_str()) {
                out_of_scope.push(path.clone());
                continue;
            }
            match found.get(path.as_str()) {
                None => removed.push(RemovedFile {
                    path: path.clone(),
                    approved: *approved,
                }),
                Some(f) if f.digest != *approved => changed.push(ChangedFile {
                    path: path.clone(),
                    approved: *approved,
                    found: f.digest,
                    size: f.size,
                }),
                Some(_) => unchanged += 1,
            }
        }
        let added = files
            .iter()
            .filter(|f| !manifest.files.contains_key(&f.path))
            .cloned()
            .collect();
        Ok(BaselineReport {
            directory: shown(&c.directory),
            manifest: ManifestInfo {
                path: shown(&c.manifest),
                digest: Digest::of(&bytes),
                size: bytes.len() as u64,
                approved_by: manifest.approved_by,
                approved_at: manifest.approved_at,
                entries: manifest.files.len(),
            },
            files,
            added,
            removed,
            changed,
            unchanged,
            out_of_scope,
        })
    }

    fn verdict(&self, report: &BaselineReport, now: DateTime<Utc>) -> Result<Verdict, GateError> {
        let c = &self.config;
        let failures = report.failures(c.fail_on);
        let in_scope = report
            .manifest
            .entries
            .saturating_sub(report.out_of_scope.len());
        let baseline = baseline_phrase(&report.manifest);
        let summary = if report.files.is_empty() && in_scope == 0 {
            format!(
                "no configuration files selected in {} and none in {baseline}: nothing to compare",
                report.directory
            )
        } else if failures > 0 {
            let mut parts = Vec::new();
            if !report.changed.is_empty() {
                parts.push(counted(
                    report.changed.len(),
                    "changed",
                    report.changed.iter().map(|f| f.path.as_str()),
                ));
            }
            if !report.added.is_empty() {
                let label = match c.fail_on {
                    FailOn::AnyDifference => "added",
                    FailOn::ChangedOrRemoved => "added (tolerated)",
                };
                parts.push(counted(
                    report.added.len(),
                    label,
                    report.added.iter().map(|f| f.path.as_str()),
                ));
            }
            if !report.removed.is_empty() {
                parts.push(counted(
                    report.removed.len(),
                    "removed",
                    report.removed.iter().map(|f| f.path.as_str()),
                ));
            }
            format!(
                "configuration in {} drifted from {baseline}: {}; {} unchanged",
                report.directory,
                parts.join(", "),
                report.unchanged
            )
        } else {
            let mut s = format!(
                "configuration in {} matches {baseline}: {} {} unchanged",
                report.directory,
                report.unchanged,
                plural(report.unchanged, "file", "files")
            );
            if !report.added.is_empty() {
                s.push_str("; ");
                s.push_str(&counted(
                    report.added.len(),
                    "added (tolerated)",
                    report.added.iter().map(|f| f.path.as_str()),
                ));
            }
            s
        };

        let data = BaselineData {
            directory: &report.directory,
            manifest: &report.manifest,
            include: &c.selection.include_patterns,
            exclude: &c.selection.exclude_patterns,
            follow_symlinks: c.follow_symlinks,
            fail_on: c.fail_on,
            counts: BaselineCounts {
                files: report.files.len(),
                unchanged: report.unchanged,
                changed: report.changed.len(),
                added: report.added.len(),
                removed: report.removed.len(),
                out_of_scope: report.out_of_scope.len(),
            },
            changed: &report.changed,
            added: &report.added,
            removed: &report.removed,
            out_of_scope: &report.out_of_scope,
            files: &report.files,
        };
        let data = serde_json::to_value(&data).map_err(|e| GateError::Other {
            message: "the baseline evidence could not be serialised".to_owned(),
            source: Some(Box::new(e)),
        })?;
        let mut evidence = Evidence::new(self.name(), now, summary)
            .with_data(data)
            .with_fact("drift", (failures > 0).to_string())
            .with_fact("changed", report.changed.len().to_string())
            .with_fact("added", report.added.len().to_string())
            .with_fact("removed", report.removed.len().to_string())
            .with_fact("unchanged", report.unchanged.to_string())
            .with_fact("manifest", report.manifest.digest.to_string());
        evidence.attachments.push(Attachment {
            name: report.manifest.path.clone(),
            digest: report.manifest.digest,
            size: report.manifest.size,
        });
        for f in &report.files {
            evidence.attachments.push(Attachment {
                name: format!("{}/{}", report.directory, f.path),
                digest: f.digest,
                size: f.size,
            });
        }
        Ok(if report.files.is_empty() && in_scope == 0 {
            Verdict::Inconclusive(evidence)
        } else {
            Verdict::pass_if(failures == 0, evidence)
        })
    }
}

#[derive(Serialize)]
struct BaselineCounts {
    files: usize,
    unchanged: usize,
    changed: usize,
    added: usize,
    removed: usize,
    out_of_scope: usize,
}

#[derive(Serialize)]
struct BaselineData<'a> {
    directory: &'a str,
    manifest: &'a ManifestInfo,
    include: &'a [String],
    exclude: &'a [String],
    follow_symlinks: bool,
    fail_on: FailOn,
    counts: BaselineCounts,
    changed: &'a [ChangedFile],
    added: &'a [FileDigest],
    removed: &'a [RemovedFile],
    out_of_scope: &'a [String],
    files: &'a [FileDigest],
}

pub(crate) fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `2 changed (a.toml, b.toml)`, listing at most [`SUMMARY_NAMES`] names.
pub(crate) fn counted<'a>(n: usize, label: &str, names: impl Iterator<Item = &'a str>) -> String {
    let shown: Vec<&str> = names.take(SUMMARY_NAMES).collect();
    let more = n.saturating_sub(shown.len());
    let mut list = shown.join(", ");
    if more > 0 {
        list.push_str(&format!(" and {more} more"));
    }
    format!("{n} {label} ({list})")
}

fn baseline_phrase(m: &ManifestInfo) -> String {
    let file = Path::new(&m.path)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| m.path.clone());
    match (&m.approved_by, &m.approved_at) {
        (Some(by), Some(at)) => format!(
            "the baseline {file} approved by {by} on {}",
            at.format("%Y-%m-%d %H:%M UTC")
        ),
        (Some(by), None) => format!("the baseline {file} approved by {by}"),
        (None, Some(at)) => format!(
            "the baseline {file} approved on {}",
            at.format("%Y-%m-%d %H:%M UTC")
        ),
        (None, None) => format!("the baseline {file}"),
    }
}

/// Runs `f` on a thread of its own, so that the executor (and the engine's timeout) is not
/// blocked while a large tree is hashed.
async fn off_thread<T, F>(label: &str, f: F) -> Result<T, GateError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, GateError> + Send + 'static,
{
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::Builder::new()
        .name(label.to_owned())
        .spawn(move || {
            // The receiver is gone only when the evaluation was abandoned (a timeout).
            let _ = tx.send(f());
        })
        .map_err(|e| GateError::Other {
            message: format!("{label}: could not start a thread to hash files"),
            source: Some(Box::new(e)),
        })?;
    rx.await.unwrap_or_else(|_| {
        Err(GateError::other(format!(
            "{label}: the hashing thread stopped before it finished"
        )))
    })
}

#[async_trait]
impl Gate for ConfigBaselineGate {
    fn name(&self) -> &str {
        &self.config.name
    }
    fn kind(&self) -> GateKind {
        GateKind::Compliance
    }
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let gate = self.clone();
        let report = off_thread("config-baseline", move || gate.check()).await?;
        self.verdict(&report, ctx.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use futures::executor::block_on;
    use promotion_core::testing::GateProbe;

    fn data(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/baseline")
            .join(rel)
    }

    fn sample_config() -> PathBuf {
        data("config")
    }

    /// Copies the committed sample tree into a fresh tempdir; returns (tempdir, config dir).
    fn copy_sample() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("config");
        let src = sample_config();
        for entry in WalkDir::new(&src) {
            let entry = entry.unwrap();
            let target = dest.join(entry.path().strip_prefix(&src).unwrap());
            if entry.file_type().is_dir() {
                std::fs::create_dir_all(&target).unwrap();
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
        (tmp, dest)
    }

    /// The gate the committed `approved.json` was approved with.
    fn approved_gate(dir: &Path, manifest: &Path) -> ConfigBaselineGateBuilder {
        ConfigBaselineGate::builder(dir, manifest)
            .exclude("**/*.bak")
            .exclude("local")
    }

    fn run(gate: &dyn Gate) -> Result<Verdict, GateError> {
        block_on(GateProbe::new().evaluate(gate))
    }

    fn invalid_input(result: Result<Verdict, GateError>) -> (String, String) {
        match result {
            Err(GateError::InvalidInput { what, message }) => (what, message),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 9, 30, 0).unwrap()
    }

    // ---- baseline: the committed sample -------------------------------------------------

    #[test]
    fn baseline_unchanged_sample_tree_passes_with_full_evidence() {
        let manifest = data("manifests/approved.json");
        let gate = approved_gate(&sample_config(), &manifest).build().unwrap();
        assert_eq!(gate.kind(), GateKind::Compliance);
        assert_eq!(gate.name(), "config-baseline");
        let verdict = run(&gate).unwrap();
        let Verdict::Pass(ev) = &verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            ev.summary.contains("matches the baseline approved.json approved by dana on 2026-11-20 09:30 UTC: 4 files unchanged"),
            "{}",
            ev.summary
        );
        // Every input read is attached by digest: the manifest and each of the four files.
        let manifest_bytes = std::fs::read(&manifest).unwrap();
        assert_eq!(ev.attachments.len(), 5);
        assert_eq!(ev.attachments[0].name, manifest.display().to_string());
        assert_eq!(ev.attachments[0].digest, Digest::of(&manifest_bytes));
        let app = ev
            .attachments
            .iter()
            .find(|a| a.name.ends_with("/app.toml"))
            .unwrap();
        assert_eq!(
            app.digest,
            Digest::of(&std::fs::read(sample_config().join("app.toml")).unwrap())
        );
        assert!(!ev.attachments.iter().any(|a| a.name.ends_with(".bak")));
        assert_eq!(ev.facts["drift"], "false");
        assert_eq!(ev.facts["unchanged"], "4");
        assert_eq!(
            ev.facts["manifest"],
            Digest::of(&manifest_bytes).to_string()
        );
        assert_eq!(ev.data["counts"]["files"], 4);
        assert_eq!(ev.data["manifest"]["approved_by"], "dana");
        assert_eq!(
            ev.data["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["path"].as_str().unwrap())
                .collect::<Vec<_>>(),
            [
                "app.toml",
                "logging.yaml",
                "nginx/nginx.conf",
                "nginx/sites/shop.conf"
            ]
        );
    }

    #[test]
    fn baseline_committed_toml_manifest_reads_like_the_json_one() {
        let json = BaselineManifest::read(&data("manifests/approved.json")).unwrap();
        let toml = BaselineManifest::read(&data("manifests/approved.toml")).unwrap();
        assert_eq!(json, toml);
        assert_eq!(toml.approved_at, Some(t0()));
        let gate = approved_gate(&sample_config(), &data("manifests/approved.toml"))
            .build()
            .unwrap();
        assert!(matches!(run(&gate).unwrap(), Verdict::Pass(_)));
    }

    #[test]
    fn baseline_without_the_excludes_the_backup_and_local_files_are_added() {
        let gate = ConfigBaselineGate::builder(sample_config(), data("manifests/approved.json"))
            .build()
            .unwrap();
        let verdict = run(&gate).unwrap();
        let Verdict::Fail(ev) = &verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            ev.summary
                .contains("2 added (app.toml.bak, local/override.toml); 4 unchanged"),
            "{}",
            ev.summary
        );
    }

    // ---- baseline: differences ----------------------------------------------------------

    #[test]
    fn baseline_changed_file_fails_with_old_and_new_digests() {
        let (_tmp, dir) = copy_sample();
        let path = dir.join("nginx/nginx.conf");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text = text.replace("worker_processes 4;", "worker_processes 64;");
        std::fs::write(&path, &text).unwrap();

        let gate = approved_gate(&dir, &data("manifests/approved.json"))
            .build()
            .unwrap();
        let verdict = run(&gate).unwrap();
        let Verdict::Fail(ev) = &verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            ev.summary
                .contains("drifted from the baseline approved.json approved by dana")
                && ev
                    .summary
                    .contains("1 changed (nginx/nginx.conf); 3 unchanged"),
            "{}",
            ev.summary
        );
        let changed = &ev.data["changed"][0];
        assert_eq!(changed["path"], "nginx/nginx.conf");
        assert_eq!(
            changed["approved"],
            "sha256:8576ac04861013a54443bad43d659f665568f0226fbf810c6bd12667ec543b2b"
        );
        assert_eq!(changed["found"], Digest::of(text.as_bytes()).to_string());
        assert_eq!(ev.facts["drift"], "true");
        assert_eq!(ev.facts["changed"], "1");
        assert_eq!(ev.data["counts"]["unchanged"], 3);
    }

    #[test]
    fn baseline_added_file_fails_and_is_named() {
        let (_tmp, dir) = copy_sample();
        std::fs::write(
            dir.join("nginx/sites/admin.conf"),
            "server { listen 8443; }\n",
        )
        .unwrap();
        let gate = approved_gate(&dir, &data("manifests/approved.json"))
            .build()
            .unwrap();
        let verdict = run(&gate).unwrap();
        let Verdict::Fail(ev) = &verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            ev.summary.contains("1 added (nginx/sites/admin.conf)"),
            "{}",
            ev.summary
        );
        assert_eq!(ev.data["added"][0]["path"], "nginx/sites/admin.conf");
        assert_eq!(
            ev.data["added"][0]["digest"],
            Digest::of(b"server { listen 8443; }\n").to_string()
        );
        assert_eq!(ev.facts["added"], "1");
    }

    #[test]
    fn baseline_removed_file_fails_and_is_named() {
        let (_tmp, dir) = copy_sample();
        std::fs::remove_file(dir.join("logging.yaml")).unwrap();
        let gate = approved_gate(&dir, &data("manifests/approved.json"))
            .build()
            .unwrap();
        let verdict = run(&gate).unwrap();
        let Verdict::Fail(ev) = &verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            ev.summary.contains("1 removed (logging.yaml)"),
            "{}",
            ev.summary
        );
        assert_eq!(
            ev.data["removed"][0],
            serde_json::json!({
                "path": "logging.yaml",
                "approved": "sha256:de83de8f8ab2e38a640f874874432ebcd7d652f0b1765d9cea43a03a0a0168ad"
            })
        );
    }

    #[test]
    fn baseline_all_three_kinds_are_reported_in_order() {
        let (_tmp, dir) = copy_sample();
        std::fs::remove_file(dir.join("logging.yaml")).unwrap();
        std::fs::write(dir.join("app.toml"), "[server]\nworkers = 1\n").unwrap();
        std::fs::write(dir.join("zz.toml"), "x = 1\n").unwrap();
        std::fs::write(dir.join("aa.toml"), "x = 2\n").unwrap();
        let gate = approved_gate(&dir, &data("manifests/approved.json"))
            .build()
            .unwrap();
        let report = gate.check().unwrap();
        assert_eq!(
            report
                .added
                .iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>(),
            ["aa.toml", "zz.toml"]
        );
        assert_eq!(report.removed.len(), 1);
        assert_eq!(report.changed.len(), 1);
        assert_eq!(report.unchanged, 2);
        assert_eq!(report.failures(FailOn::AnyDifference), 4);
        let Verdict::Fail(ev) = run(&gate).unwrap() else {
            panic!()
        };
        assert!(
            ev.summary.contains(
                "1 changed (app.toml), 2 added (aa.toml, zz.toml), 1 removed (logging.yaml); 2 unchanged"
            ),
            "{}",
            ev.summary
        );
        // Deterministic: a second evaluation yields identical evidence.
        let Verdict::Fail(again) = run(&gate).unwrap() else {
            panic!()
        };
        assert_eq!(again, ev);
    }

    #[test]
    fn baseline_changed_or_removed_mode_tolerates_added_files_only() {
        let (_tmp, dir) = copy_sample();
        std::fs::write(dir.join("feature-flags.toml"), "beta = true\n").unwrap();
        let gate = approved_gate(&dir, &data("manifests/approved.json"))
            .fail_on(FailOn::ChangedOrRemoved)
            .build()
            .unwrap();
        let verdict = run(&gate).unwrap();
        let Verdict::Pass(ev) = &verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            ev.summary
                .contains("4 files unchanged; 1 added (tolerated) (feature-flags.toml)"),
            "{}",
            ev.summary
        );
        assert_eq!(ev.data["fail_on"], "changed_or_removed");
        std::fs::remove_file(dir.join("app.toml")).unwrap();
        let verdict = run(&gate).unwrap();
        let Verdict::Fail(ev) = &verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            ev.summary.contains("1 removed (app.toml)"),
            "{}",
            ev.summary
        );
    }

    // ---- baseline: include / exclude -----------------------------------------------------

    #[test]
    fn baseline_excluded_changed_files_do_not_fail() {
        let (_tmp, dir) = copy_sample();
        // Both are excluded: one by a file pattern, one through its excluded directory.
        std::fs::write(dir.join("app.toml.bak"), "changed backup\n").unwrap();
        std::fs::write(dir.join("local/override.toml"), "changed override\n").unwrap();
        std::fs::write(dir.join("local/new.toml"), "new\n").unwrap();
        let gate = approved_gate(&dir, &data("manifests/approved.json"))
            .build()
            .unwrap();
        assert!(matches!(run(&gate).unwrap(), Verdict::Pass(_)));

        // A manifest approved *without* excludes lists them; excluded entries are then out of
        // scope, not removed or changed.
        let all = tempfile::tempdir().unwrap();
        let full = all.path().join("full.json");
        ConfigBaselineGate::builder(sample_config(), &full)
            .build()
            .unwrap()
            .approve("dana", t0())
            .unwrap();
        let gate = approved_gate(&dir, &full).build().unwrap();
        let verdict = run(&gate).unwrap();
        let Verdict::Pass(ev) = &verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(
            ev.data["out_of_scope"],
            serde_json::json!(["app.toml.bak", "local/override.toml"])
        );
    }

    #[test]
    fn baseline_include_patterns_select_files_and_star_does_not_cross_directories() {
        let (_tmp, dir) = copy_sample();
        let gate = ConfigBaselineGate::builder(&dir, dir.join("../conf-only.json"))
            .include("nginx/**/*.conf")
            .include("*.yaml")
            .build()
            .unwrap();
        let files: Vec<String> = gate.scan().unwrap().into_iter().map(|f| f.path).collect();
        assert_eq!(
            files,
            ["logging.yaml", "nginx/nginx.conf", "nginx/sites/shop.conf"]
        );
        let gate = ConfigBaselineGate::builder(&dir, dir.join("../x.json"))
            .include("*.conf")
            .build()
            .unwrap();
        assert!(gate.scan().unwrap().is_empty());

        // Against the full approved manifest, files outside the include set are out of scope,
        // and changing one of them does not fail the gate.
        std::fs::write(dir.join("app.toml"), "changed\n").unwrap();
        let gate = ConfigBaselineGate::builder(&dir, data("manifests/approved.json"))
            .include("nginx/**")
            .build()
            .unwrap();
        let verdict = run(&gate).unwrap();
        let Verdict::Pass(ev) = &verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(ev.data["counts"]["unchanged"], 2);
        assert_eq!(ev.data["counts"]["out_of_scope"], 2);
    }

    #[test]
    fn baseline_nothing_selected_and_nothing_approved_is_inconclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("empty");
        std::fs::create_dir(&dir).unwrap();
        let manifest = tmp.path().join("baseline.json");
        std::fs::write(&manifest, r#"{"files": {}}"#).unwrap();
        let gate = ConfigBaselineGate::builder(&dir, &manifest)
            .build()
            .unwrap();
        let verdict = run(&gate).unwrap();
        assert!(
            matches!(&verdict, Verdict::Inconclusive(ev) if ev.summary.contains("nothing to compare")),
            "{verdict:?}"
        );
    }

    // ---- baseline: writing manifests -----------------------------------------------------

    #[test]
    fn baseline_written_manifest_round_trips_in_json_and_toml() {
        let (tmp, dir) = copy_sample();
        for name in ["baseline.json", "baseline.toml"] {
            let path = tmp.path().join(name);
            let gate = approved_gate(&dir, &path).build().unwrap();
            let written = gate.approve("lee", t0()).unwrap();
            let read = BaselineManifest::read(&path).unwrap();
            assert_eq!(read, written, "{name}");
            assert_eq!(read.approved_by.as_deref(), Some("lee"));
            // Same content as the committed, hand-checked manifest.
            let committed = BaselineManifest::read(&data("manifests/approved.json")).unwrap();
            assert_eq!(read.files, committed.files, "{name}");
            assert!(matches!(run(&gate).unwrap(), Verdict::Pass(_)), "{name}");
            // Rendering is deterministic and re-reads to the same manifest.
            let format = ManifestFormat::from_path(&path);
            assert_eq!(
                written.render(format).unwrap(),
                std::fs::read_to_string(&path).unwrap()
            );
        }
        // The committed JSON manifest is byte-for-byte what `approve` writes.
        let json = std::fs::read_to_string(tmp.path().join("baseline.json")).unwrap();
        let committed = std::fs::read_to_string(data("manifests/approved.json")).unwrap();
        assert_eq!(json.replace("\"lee\"", "\"dana\""), committed);
    }

    #[test]
    fn baseline_manifest_inside_the_directory_is_not_part_of_it() {
        let (_tmp, dir) = copy_sample();
        let manifest = dir.join("BASELINE.json");
        let gate = approved_gate(&dir, &manifest).build().unwrap();
        let written = gate.approve("dana", t0()).unwrap();
        assert!(!written.files.contains_key("BASELINE.json"));
        assert!(matches!(run(&gate).unwrap(), Verdict::Pass(_)));
        // Also when the path is given relative to a different spelling of the directory.
        let gate = approved_gate(&dir.join("nginx/.."), &manifest)
            .build()
            .unwrap();
        assert!(matches!(run(&gate).unwrap(), Verdict::Pass(_)));
    }

    // ---- baseline: bad input -------------------------------------------------------------

    fn broken(name: &str) -> (String, String) {
        let path = data(&format!("manifests/broken/{name}"));
        let gate = approved_gate(&sample_config(), &path).build().unwrap();
        let (what, message) = invalid_input(run(&gate));
        assert!(
            what.starts_with(&path.display().to_string()),
            "{name}: `{what}` does not name the file"
        );
        (what, message)
    }

    #[test]
    fn baseline_bad_manifests_are_invalid_input_naming_file_line_and_entry() {
        let (what, message) = broken("not-json.json");
        assert!(what.ends_with("not-json.json line 1"), "{what}");
        assert!(
            message.starts_with("not valid JSON: expected value"),
            "{message}"
        );

        let (what, message) = broken("truncated.json");
        assert!(what.ends_with(" line 5"), "{what}");
        assert!(message.starts_with("not valid JSON: EOF"), "{message}");

        let (what, message) = broken("bad-digest.json");
        assert!(what.ends_with("bad-digest.json line 5"), "{what}");
        assert_eq!(
            message,
            "file `nginx/nginx.conf`: a sha256 digest has 64 hex digits, found 44"
        );

        let (_, message) = broken("md5-digest.json");
        assert!(
            message.starts_with("file `app.toml`: expected a digest of the form `sha256:"),
            "{message}"
        );

        let (what, message) = broken("duplicate-path.json");
        assert!(what.ends_with("duplicate-path.json line 6"), "{what}");
        assert_eq!(message, "file `nginx/nginx.conf` is listed twice");

        let (what, message) = broken("escaping-path.json");
        assert!(what.ends_with(" line 4"), "{what}");
        assert_eq!(
            message,
            "file `../secrets/db.password`: the path may not contain `.` or `..` segments"
        );

        let (_, message) = broken("not-a-string.json");
        assert_eq!(
            message,
            "file `app.toml`: expected a digest `sha256:<64 hex digits>`, found the number 42"
        );

        let (what, message) = broken("unknown-field.json");
        assert!(what.ends_with(" line 3"), "{what}");
        assert!(
            message.starts_with("unknown field `approvers`"),
            "{message}"
        );

        let (what, message) = broken("bad-approved-at.json");
        assert!(what.ends_with(" line 3"), "{what}");
        assert!(
            message.starts_with("approved_at `last tuesday` is not an RFC 3339 date"),
            "{message}"
        );
    }

    #[test]
    fn baseline_bad_toml_manifests_are_invalid_input_with_lines() {
        let (what, message) = broken("duplicate-key.toml");
        assert!(
            what.ends_with("duplicate-key.toml line 6"),
            "{what}: {message}"
        );
        assert!(message.contains("duplicate key"), "{message}");

        let (what, message) = broken("bad-digest.toml");
        assert!(
            what.ends_with("bad-digest.toml line 5"),
            "{what}: {message}"
        );
        assert_eq!(
            message,
            "file `logging.yaml`: character 63 of the digest is not a hex digit"
        );

        let (what, message) = broken("local-datetime.toml");
        assert!(what.ends_with(" line 2"), "{what}: {message}");
        assert!(
            message.starts_with("approved_at `2026-11-20T09:30:00` is not an RFC 3339"),
            "{message}"
        );
    }

    #[test]
    fn baseline_manifest_paths_are_checked() {
        for (path, problem) in [
            ("", "the path is empty"),
            ("/etc/app.toml", "the path must be relative"),
            ("nginx//nginx.conf", "the path has an empty segment"),
            ("nginx/", "the path has an empty segment"),
            ("./app.toml", "may not contain `.` or `..`"),
        ] {
            let text = format!(r#"{{"files": {{"{path}": "{}"}}}}"#, Digest::of(b"x"));
            let err = BaselineManifest::parse(&text, ManifestFormat::Json, "m.json").unwrap_err();
            let GateError::InvalidInput { what, message } = err else {
                panic!()
            };
            assert_eq!(what, "m.json line 1");
            assert!(message.contains(problem), "{path}: {message}");
        }
    }

    #[test]
    fn baseline_missing_directory_and_manifest_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("no-such-config");
        let gate = ConfigBaselineGate::builder(&missing, data("manifests/approved.json"))
            .build()
            .unwrap();
        let (what, message) = invalid_input(run(&gate));
        assert_eq!(what, missing.display().to_string());
        assert_eq!(message, "the configuration directory does not exist");

        let file = data("manifests/approved.json");
        let gate = ConfigBaselineGate::builder(&file, &file).build().unwrap();
        let (what, message) = invalid_input(run(&gate));
        assert_eq!(what, file.display().to_string());
        assert_eq!(message, "is not a directory");

        let no_manifest = tmp.path().join("baseline.json");
        let gate = ConfigBaselineGate::builder(sample_config(), &no_manifest)
            .build()
            .unwrap();
        let (what, message) = invalid_input(run(&gate));
        assert_eq!(what, no_manifest.display().to_string());
        assert_eq!(message, "the baseline manifest does not exist");

        std::fs::write(&no_manifest, [0xff, 0xfe, 0x00]).unwrap();
        let (_, message) = invalid_input(run(&gate));
        assert!(
            message.starts_with("the baseline manifest is not UTF-8 text"),
            "{message}"
        );
    }

    #[test]
    fn baseline_bad_configuration_is_refused_at_construction() {
        let err = ConfigBaselineGate::builder("conf", "b.json")
            .include("**/*.{toml")
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, BaselineConfigError::InvalidPattern { list: "include", pattern, .. } if pattern == "**/*.{toml"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("invalid include pattern `**/*.{toml`: "),
            "{err}"
        );
        let err = ConfigBaselineGate::builder("conf", "b.json")
            .exclude("[a-")
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            BaselineConfigError::InvalidPattern {
                list: "exclude",
                ..
            }
        ));
        let err = ConfigBaselineGate::builder("conf", "b.json")
            .exclude("/etc/*.conf")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("may not start with `/`"), "{err}");
        let err = ConfigBaselineGate::builder("conf", "b.json")
            .include("")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("may not be empty"), "{err}");
        let err = ConfigBaselineGate::builder("conf", "b.json")
            .name(" padded ")
            .build()
            .unwrap_err();
        assert!(matches!(err, BaselineConfigError::InvalidName(_)));
        let err = ReproducibilityGate::builder("x.json")
            .name("")
            .build()
            .unwrap_err();
        assert!(matches!(err, BaselineConfigError::InvalidName(_)));
    }

    // ---- baseline: symbolic links --------------------------------------------------------

    #[cfg(unix)]
    #[test]
    fn baseline_symlinks_are_refused_unless_excluded_or_followed() {
        let (tmp, dir) = copy_sample();
        let outside = tmp.path().join("outside.conf");
        std::fs::write(&outside, "upstream { server 10.0.0.1; }\n").unwrap();
        let link = dir.join("nginx/sites/upstream.conf");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let manifest = data("manifests/approved.json");

        let gate = approved_gate(&dir, &manifest).build().unwrap();
        let (what, message) = invalid_input(run(&gate));
        assert_eq!(what, link.display().to_string());
        assert!(message.starts_with("is a symbolic link"), "{message}");

        // Refused even when the include patterns would not select it: it could be a directory.
        let gate = approved_gate(&dir, &manifest)
            .include("*.toml")
            .build()
            .unwrap();
        assert!(invalid_input(run(&gate))
            .1
            .starts_with("is a symbolic link"));

        let gate = approved_gate(&dir, &manifest)
            .exclude("nginx/sites/upstream.conf")
            .build()
            .unwrap();
        assert!(matches!(run(&gate).unwrap(), Verdict::Pass(_)));

        let gate = approved_gate(&dir, &manifest)
            .follow_symlinks(true)
            .build()
            .unwrap();
        let report = gate.check().unwrap();
        assert_eq!(report.added.len(), 1);
        assert_eq!(report.added[0].path, "nginx/sites/upstream.conf");
        assert_eq!(
            report.added[0].digest,
            Digest::of(b"upstream { server 10.0.0.1; }\n")
        );

        // A dangling link is an error naming it, when following.
        std::fs::remove_file(&outside).unwrap();
        let (what, _) = invalid_input(run(&gate));
        assert_eq!(what, link.display().to_string());

        // A loop is an error too.
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&dir, dir.join("nginx/loop")).unwrap();
        let (what, message) = invalid_input(run(&gate));
        assert!(what.ends_with("nginx/loop"), "{what}");
        assert!(message.contains("loop"), "{message}");
    }

    #[cfg(unix)]
    #[test]
    fn baseline_sockets_and_non_utf8_names_are_refused_when_selected() {
        use std::os::unix::ffi::OsStrExt;
        let (_tmp, dir) = copy_sample();
        let manifest = data("manifests/approved.json");
        let socket = dir.join("admin.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let gate = approved_gate(&dir, &manifest).build().unwrap();
        let (what, message) = invalid_input(run(&gate));
        assert_eq!(what, socket.display().to_string());
        assert_eq!(message, "is not a regular file (a socket, FIFO or device)");
        let excluding = approved_gate(&dir, &manifest)
            .exclude("*.sock")
            .build()
            .unwrap();
        assert!(matches!(run(&excluding).unwrap(), Verdict::Pass(_)));
        drop(listener);
        std::fs::remove_file(&socket).unwrap();

        let latin1 = dir.join(std::ffi::OsStr::from_bytes(b"caf\xe9.toml"));
        std::fs::write(&latin1, "x = 1\n").unwrap();
        let (what, message) = invalid_input(run(&gate));
        assert_eq!(what, latin1.display().to_string());
        assert_eq!(message, "the file name is not valid UTF-8");
    }

    // ---- baseline: large files -----------------------------------------------------------

    /// Deterministic pseudo-random bytes (xorshift64).
    fn fill(state: &mut u64, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            let bytes = state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// A reader that remembers the largest read it was asked for.
    struct Spy<R> {
        inner: R,
        largest: usize,
        reads: usize,
    }

    impl<R: Read> Read for Spy<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.largest = self.largest.max(buf.len());
            self.reads += 1;
            self.inner.read(buf)
        }
    }

    #[cfg(target_os = "linux")]
    fn peak_rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn baseline_large_file_is_hashed_in_chunks_and_correctly() {
        const SIZE: usize = 50 * 1024 * 1024 + 12_345;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("config");
        std::fs::create_dir(&dir).unwrap();
        let big = dir.join("model.bin");
        let mut expected = Sha256::new();
        {
            use std::io::Write as _;
            let mut file = std::io::BufWriter::new(File::create(&big).unwrap());
            let mut state = 0x9e37_79b9_7f4a_7c15u64;
            let mut buf = vec![0u8; 1 << 20];
            let mut left = SIZE;
            while left > 0 {
                let n = left.min(buf.len());
                fill(&mut state, &mut buf[..n]);
                expected.update(&buf[..n]);
                file.write_all(&buf[..n]).unwrap();
                left -= n;
            }
            file.flush().unwrap();
        }
        let expected = Digest::from_bytes(expected.finalize().into());

        // The hasher never asks for more than one chunk at a time.
        let mut spy = Spy {
            inner: File::open(&big).unwrap(),
            largest: 0,
            reads: 0,
        };
        let (digest, size) = digest_reader(&mut spy).unwrap();
        assert_eq!(digest, expected);
        assert_eq!(size, SIZE as u64);
        assert_eq!(spy.largest, CHUNK);
        assert!(spy.reads > SIZE / CHUNK, "{} reads", spy.reads);

        // Through the gate: the evidence has the right digest and size, and the process's
        // peak memory does not grow by anything like the file's size.
        #[cfg(target_os = "linux")]
        let before = peak_rss_kib();
        let gate = ConfigBaselineGate::builder(&dir, tmp.path().join("baseline.json"))
            .build()
            .unwrap();
        let manifest = gate.approve("dana", t0()).unwrap();
        assert_eq!(manifest.files["model.bin"], expected);
        let Verdict::Pass(ev) = run(&gate).unwrap() else {
            panic!()
        };
        let attachment = ev
            .attachments
            .iter()
            .find(|a| a.name.ends_with("/model.bin"))
            .unwrap();
        assert_eq!(attachment.digest, expected);
        assert_eq!(attachment.size, SIZE as u64);
        #[cfg(target_os = "linux")]
        {
            let grown = peak_rss_kib().saturating_sub(before);
            assert!(grown < 16 * 1024, "peak memory grew by {grown} KiB");
        }
    }

    // ---- reproducibility -----------------------------------------------------------------
}
