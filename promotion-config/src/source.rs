//! Source files and the map from positions in a TOML document to lines and columns.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use promotion_core::Digest;
use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};

use crate::error::{ConfigError, ErrorKind, Location};

/// A configuration file as read: its name, its text and its digest.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceFile {
    path: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceFile")
            .field("path", &self.path)
            .field("bytes", &self.text.len())
            .finish()
    }
}

impl SourceFile {
    /// A file named `path` (used in messages and to resolve relative paths) holding `text`.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            path: path.into(),
            text,
            line_starts,
        }
    }

    /// Reads the file at `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let bytes = std::fs::read(path).map_err(|e| {
            ConfigError::new(
                ErrorKind::Io,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let at = SourceFile::new(path, lossy).location(valid);
            ConfigError::new(ErrorKind::Syntax, "the file is not valid UTF-8").at(at)
        })?;
        Ok(SourceFile::new(path, text))
    }

    /// The path it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's contents as read; error lines and columns count in this text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The SHA-256 digest of the file's bytes.
    pub fn digest(&self) -> Digest {
        Digest::of(self.text.as_bytes())
    }

    /// The line and column (in characters, both from 1) of byte offset `offset`.
    pub fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        Location {
            file: self.path.display().to_string(),
            line,
            column,
        }
    }
}

/// One step of a path into a document: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

pub(crate) fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}

/// Renders a path as `stages[1].gates[0].kind`.
pub(crate) fn show_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[derive(Debug, Clone)]
struct Spans {
    key: Option<Range<usize>>,
    value: Range<usize>,
}

/// A parsed TOML document with the position of every key and value.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub(crate) source: Arc<SourceFile>,
    index: BTreeMap<Vec<Seg>, Spans>,
    pub(crate) root: toml::Table,
}

impl Doc {
    /// Parses `source` as a TOML document.
    pub(crate) fn parse(source: SourceFile) -> Result<Doc, ConfigError> {
        let source = Arc::new(source);
        let syntax = |e: toml::de::Error| {
            let mut err = ConfigError::new(
                ErrorKind::Syntax,
                format!("invalid TOML: {}", e.message().trim_end()),
            );
            if let Some(span) = e.span() {
                err = err.at(source.location(span.start));
            }
            err
        };
        let table = DeTable::parse(source.text()).map_err(syntax)?;
        let mut index = BTreeMap::new();
        let span = table.span();
        index_value(
            &mut index,
            Vec::new(),
            None,
            span,
            &DeValue::Table(table.into_inner()),
        );
        let root: toml::Table = toml::from_str(source.text()).map_err(syntax)?;
        Ok(Doc {
            source,
            index,
            root,
        })
    }

    /// The location of the value at `path`, or of its nearest enclosing value that is in the
    /// file (a value that came from a parameter has the position of its placeholder).
    pub(crate) fn locate(&self, path: &[Seg]) -> Location {
        self.locate_with(path, false)
    }

    /// Like [`locate`](Self::locate), but at the key of the entry when it has one.
    pub(crate) fn locate_key(&self, path: &[Seg]) -> Location {
        self.locate_with(path, true)
    }

    fn locate_with(&self, path: &[Seg], at_key: bool) -> Location {
        let mut len = path.len();
        loop {
            let prefix = path.get(..len).unwrap_or(&[]);
            if let Some(spans) = self.index.get(prefix) {
                let offset = match (&spans.key, at_key && len == path.len()) {
                    (Some(k), true) => k.start,
                    _ => spans.value.start,
                };
                return self.source.location(offset);
            }
            if len == 0 {
                return self.source.location(0);
            }
            len -= 1;
        }
    }

    /// The byte range of the value at `path`, when it is in the file.
    pub(crate) fn span(&self, path: &[Seg]) -> Option<Range<usize>> {
        self.index.get(path).map(|s| s.value.clone())
    }

    /// Whether `path` names a value written in the file.
    pub(crate) fn has(&self, path: &[Seg]) -> bool {
        self.index.contains_key(path)
    }

    /// An error of `kind` at the value at `path`.
    pub(crate) fn error(&self, kind: ErrorKind, path: &[Seg], message: String) -> ConfigError {
        ConfigError::new(kind, message).at(self.locate(path))
    }

    /// An error of `kind` at the key of the entry at `path`.
    pub(crate) fn error_at_key(
        &self,
        kind: ErrorKind,
        path: &[Seg],
        message: String,
    ) -> ConfigError {
        ConfigError::new(kind, message).at(self.locate_key(path))
    }

    /// Refuses a top-level section not in `sections`, naming the ones `what` (`a template`)
    /// has.
    pub(crate) fn check_sections(&self, sections: &[&str], what: &str) -> Result<(), ConfigError> {
        match self.root.keys().find(|k| !sections.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(self.error_at_key(
                ErrorKind::UnknownField,
                &[key(k)],
                format!(
                    "unknown section `{k}`; {what} has the sections {}",
                    sections.join(", ")
                ),
            )),
        }
    }

    /// The top-level section `name`, or a missing-field error saying what it holds
    /// (`hint`, e.g. "the template's `name` and `version`").
    pub(crate) fn section(&self, name: &str, hint: &str) -> Result<toml::Value, ConfigError> {
        self.root.get(name).cloned().ok_or_else(|| {
            self.error(
                ErrorKind::MissingField,
                &[],
                format!("missing section `[{name}]` with {hint}"),
            )
        })
    }

    /// Deserialises `value`, found at `base` in this document, into `T`; a refusal is
    /// placed at the key or value it concerns.
    pub(crate) fn deserialize<T: DeserializeOwned>(
        &self,
        value: toml::Value,
        base: &[Seg],
        context: &str,
    ) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let mut path = base.to_vec();
            for seg in e.path().iter() {
                match seg {
                    serde_path_to_error::Segment::Seq { index } => path.push(Seg::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => path.push(Seg::Key(key.clone())),
                    serde_path_to_error::Segment::Enum { variant } => {
                        path.push(Seg::Key(variant.clone()))
                    }
                    serde_path_to_error::Segment::Unknown => break,
                }
            }
            let message = e.inner().message().trim_end().to_owned();
            let kind = if message.starts_with("unknown field") {
                ErrorKind::UnknownField
            } else if message.starts_with("missing field") {
                ErrorKind::MissingField
            } else if message.starts_with("invalid duration") {
                ErrorKind::BadDuration
            } else {
                ErrorKind::InvalidValue
            };
            let shown = show_path(&path);
            let message = if shown.is_empty() {
                format!("{context}: {message}")
            } else {
                format!("{context}: `{shown}`: {message}")
            };
            if kind == ErrorKind::UnknownField {
                self.error_at_key(kind, &path, message)
            } else {
                self.error(kind, &path, message)
            }
        })
    }

    /// Where character `offset` of the string at `path` is in the file, when the string is
    /// written in the file without escapes; otherwise where the string starts.
    pub(crate) fn locate_in_string(&self, path: &[Seg], value: &str, offset: usize) -> Location {
        let Some(span) = self.span(path) else {
            return self.locate(path);
        };
        let raw = self.source.text().get(span.clone()).unwrap_or("");
        for quote in [1usize, 3] {
            if raw.len() < 2 * quote {
                continue;
            }
            let inner = raw
                .get(quote..raw.len().saturating_sub(quote))
                .unwrap_or("");
            // Exact up to the first difference: an escape, or a substituted placeholder.
            let same = inner
                .bytes()
                .zip(value.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            if inner == value || offset < same {
                return self.source.location(span.start + quote + offset);
            }
        }
        self.source.location(span.start)
    }
}

fn index_value(
    index: &mut BTreeMap<Vec<Seg>, Spans>,
    path: Vec<Seg>,
    key: Option<Range<usize>>,
    span: Range<usize>,
    value: &DeValue<'_>,
) {
    match value {
        DeValue::Table(t) => {
            for (k, v) in t.iter() {
                let mut p = path.clone();
                p.push(Seg::Key(k.get_ref().to_string()));
                index_value(index, p, Some(k.span()), v.span(), v.get_ref());
            }
        }
        DeValue::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let mut p = path.clone();
                p.push(Seg::Index(i));
                index_value(index, p, None, v.span(), v.get_ref());
            }
        }
        _ => {}
    }
    index.insert(path, Spans { key, value: span });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_characters() {
        let f = SourceFile::new("a.toml", "x = 1\né = \"ü\"\n");
        assert_eq!(f.location(0).to_string(), "a.toml:1:1");
        assert_eq!(f.location(6).to_string(), "a.toml:2:1");
        // byte 11 is the opening quote after "é = " (é is two bytes)
        assert_eq!(f.location(11).column, 5);
    }

    #[test]
    fn paths_map_to_keys_and_values() {
        let doc = Doc::parse(SourceFile::new(
            "t.toml",
            "[[stages]]\nname = \"a\"\n\n[[stages.gates]]\nkind = \"process\"\n",
        ))
        .unwrap();
        let kind = vec![
            key("stages"),
            Seg::Index(0),
            key("gates"),
            Seg::Index(0),
            key("kind"),
        ];
        assert_eq!(doc.locate(&kind).to_string(), "t.toml:5:8");
        assert_eq!(doc.locate_key(&kind).to_string(), "t.toml:5:1");
        // a path below a value that is not in the file falls back to the nearest one
        let mut deeper = kind.clone();
        deeper.push(Seg::Index(3));
        assert_eq!(doc.locate(&deeper).to_string(), "t.toml:5:8");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = Doc::parse(SourceFile::new("bad.toml", "a = 1\nb = = 2\n")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Syntax);
        assert!(err.to_string().starts_with("bad.toml:2:"), "{err}");
    }
}
