//! Baseline manifests: the JSON and TOML formats, the checked parsing of their entries (every
//! path relative and normalised, every digest well-formed, errors naming the file, line and
//! entry), and the [`BaselineManifest`] a team approves and commits.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self};
use std::path::Path;

use chrono::{DateTime, Utc};
use promotion_core::{Digest, GateError};
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess};
use serde::{Deserialize, Deserializer, Serialize};

use crate::input::{invalid_input, line_of};

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

    pub(super) fn write_as(&self, path: &Path, format: ManifestFormat) -> Result<(), GateError> {
        let text = self.render(format)?;
        std::fs::write(path, text).map_err(|e| GateError::Other {
            message: format!("the baseline manifest {} could not be written", shown(path)),
            source: Some(Box::new(e)),
        })
    }
}
