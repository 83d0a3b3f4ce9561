//! Reading policy files and turning JSON and regorus errors into invalid-input errors that name
//! the file and line.

use std::fmt;
use std::path::Path;

use crate::input::{invalid_input, line_of};
use crate::GateError;

pub(super) fn display(path: &Path) -> String {
    path.display().to_string()
}

pub(super) fn read(path: &Path, what: &str) -> Result<Vec<u8>, GateError> {
    std::fs::read(path)
        .map_err(|e| invalid_input(display(path), None, format!("cannot read the {what}: {e}")))
}

pub(super) fn utf8<'a>(path: &str, bytes: &'a [u8]) -> Result<&'a str, GateError> {
    std::str::from_utf8(bytes).map_err(|e| {
        invalid_input(
            path,
            Some(line_of(bytes, e.valid_up_to())),
            format!("not UTF-8 text: invalid byte at offset {}", e.valid_up_to()),
        )
    })
}

/// Where a data document is mounted: its directory's components relative to the bundle root.
pub(super) fn mount_of(root: &Path, file: &Path) -> Result<Vec<String>, GateError> {
    let dir = file
        .parent()
        .and_then(|p| p.strip_prefix(root).ok())
        .unwrap_or_else(|| Path::new(""));
    dir.components()
        .map(|c| {
            c.as_os_str().to_str().map(str::to_owned).ok_or_else(|| {
                invalid_input(
                    display(file),
                    None,
                    "its directory name is not UTF-8, so it cannot be a data path".to_owned(),
                )
            })
        })
        .collect()
}

pub(super) fn json_error(path: &str, e: &serde_json::Error) -> GateError {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&position).unwrap_or(&text);
    invalid_input(
        path,
        Some(e.line()),
        format!("column {}: {message}", e.column()),
    )
}

/// Turns a regorus error into [`GateError::InvalidInput`] naming the file and line regorus
/// reports (`--> path:line:col` followed by `error: message`), or `fallback` when it reports
/// none.
pub(super) fn rego_error(err: &dyn fmt::Display, fallback: &str) -> GateError {
    let text = format!("{err:#}");
    let located = regex::Regex::new(r"(?m)-->\s*(.+):(\d+):(\d+)\s*$")
        .ok()
        .and_then(|re| re.captures(&text))
        .and_then(|c| {
            let whole = c.get(0)?;
            let file = c.get(1)?.as_str().to_owned();
            // Digits only, by the pattern; a number too large for a line is no location.
            let line: usize = c.get(2)?.as_str().parse().ok()?;
            let col = c.get(3)?.as_str().to_owned();
            let after = text.get(whole.end()..)?;
            let message = after
                .find("error: ")
                .and_then(|i| after.get(i + "error: ".len()..))
                .map_or_else(|| one_line(after), one_line);
            Some((file, line, col, message))
        });
    match located {
        Some((file, line, col, message)) => {
            invalid_input(file, Some(line), format!("column {col}: {message}"))
        }
        None => invalid_input(fallback.to_owned(), None, one_line(&text)),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn check_package(package: &str) -> Result<(), GateError> {
    let ident = |s: &str| {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if package.starts_with("data.") {
        return Err(GateError::Misconfigured(format!(
            "package `{package}`: give it without the `data.` prefix"
        )));
    }
    if package.is_empty() || !package.split('.').all(ident) {
        return Err(GateError::Misconfigured(format!(
            "package `{package}` is not a Rego package name (dot-separated identifiers, like \
             `main` or `release.checks`)"
        )));
    }
    Ok(())
}
