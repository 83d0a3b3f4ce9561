//! Helpers every gate shares for reporting malformed input: the line a byte offset is on, and
//! the [`GateError::InvalidInput`] that names the file and the line where it went wrong.
//!
//! Gates read TOML, JSON, XML and plain text; whichever parser finds the problem reports it
//! as a byte offset or a line, and these helpers turn that into the one spelling users see:
//! `path/to/file line 12: message`.

use std::fmt;
use std::io::Read;
use std::path::Path;

use promotion_core::GateError;

/// The 1-based line that byte `offset` of `text` is on.
///
/// A newline belongs to the line it ends, so `\r\n` endings count once. An offset at or past
/// the end of `text` gives the line the text ends on (the line after a trailing newline).
pub(crate) fn line_of(text: impl AsRef<[u8]>, offset: usize) -> usize {
    let bytes = text.as_ref();
    let before = bytes.get(..offset).unwrap_or(bytes);
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

/// `file`, or `file line N` when the line is known: how errors name where a problem is.
pub(crate) fn located(file: impl fmt::Display, line: Option<usize>) -> String {
    match line {
        Some(n) => format!("{file} line {n}"),
        None => file.to_string(),
    }
}

/// The error for input that cannot be used: `file` (with `line` when known) says where, and
/// `message` says what is wrong.
pub(crate) fn invalid_input(
    file: impl fmt::Display,
    line: Option<usize>,
    message: impl Into<String>,
) -> GateError {
    GateError::InvalidInput {
        what: located(file, line),
        message: message.into(),
    }
}

/// Reads the file at `path` if it exists (`None` when it does not), refusing one over `max`
/// bytes without reading more than `max + 1`. `what` names the file in read errors
/// (`cannot read change record …`); `too_large` is the message of the invalid-input error for
/// an oversized file.
pub(crate) fn read_bounded(
    path: &Path,
    max: u64,
    what: &str,
    too_large: impl FnOnce() -> String,
) -> Result<Option<Vec<u8>>, GateError> {
    let shown = path.display().to_string();
    let read_error = |e: std::io::Error| GateError::Other {
        message: format!("cannot read {what} {shown}"),
        source: Some(Box::new(e)),
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
    };
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > max {
        return Err(invalid_input(shown, None, too_large()));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_of_the_text_is_line_one() {
        assert_eq!(line_of("a\nb\n", 0), 1);
        assert_eq!(line_of(b"a\nb\n".as_slice(), 0), 1);
    }

    #[test]
    fn an_offset_in_the_middle_counts_the_newlines_before_it() {
        let text = "first\nsecond\nthird";
        assert_eq!(line_of(text, 6), 2);
        assert_eq!(line_of(text, 9), 2);
        assert_eq!(line_of(text, 13), 3);
    }

    #[test]
    fn a_newline_belongs_to_the_line_it_ends() {
        let text = "ab\ncd\n";
        assert_eq!(line_of(text, 2), 1);
        assert_eq!(line_of(text, 3), 2);
        assert_eq!(line_of(text, 5), 2);
    }

    #[test]
    fn crlf_line_endings_count_once() {
        let text = "a\r\nb\r\nc";
        assert_eq!(line_of(text, 1), 1);
        assert_eq!(line_of(text, 2), 1);
        assert_eq!(line_of(text, 3), 2);
        assert_eq!(line_of(text, 6), 3);
    }

    #[test]
    fn empty_text_is_one_line() {
        assert_eq!(line_of("", 0), 1);
        assert_eq!(line_of("", 10), 1);
    }

    #[test]
    fn offsets_past_the_end_give_the_last_line() {
        assert_eq!(line_of("a\nb", 3), 2);
        assert_eq!(line_of("a\nb", 100), 2);
        assert_eq!(line_of("a\nb\n", 100), 3);
        assert_eq!(line_of("a\nb", usize::MAX), 2);
    }

    #[test]
    fn offsets_inside_a_multibyte_character_still_count() {
        // Byte 4 is inside `é` on line 2; a `&str` slice there would not be a char boundary.
        assert_eq!(line_of("a\nbé\n", 4), 2);
    }

    #[test]
    fn invalid_input_names_the_file_and_line() {
        match invalid_input("gate.toml", Some(3), "unknown key") {
            GateError::InvalidInput { what, message } => {
                assert_eq!(what, "gate.toml line 3");
                assert_eq!(message, "unknown key");
            }
            other => panic!("expected InvalidInput, got {other:?}"),
        }
        match invalid_input("gate.toml", None, "empty") {
            GateError::InvalidInput { what, .. } => assert_eq!(what, "gate.toml"),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    /// A missing file is `None`; a file of exactly `max` bytes is read; one byte more is
    /// invalid input naming the file; a file that cannot be read (a directory) names `what`.
    #[test]
    fn read_bounded_reads_up_to_max_and_refuses_one_byte_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.txt");
        let too_large = || "too large".to_owned();
        assert!(read_bounded(&path, 4, "record", too_large)
            .unwrap()
            .is_none());
        std::fs::write(&path, b"1234").unwrap();
        assert_eq!(
            read_bounded(&path, 4, "record", too_large).unwrap(),
            Some(b"1234".to_vec())
        );
        std::fs::write(&path, b"12345").unwrap();
        match read_bounded(&path, 4, "record", too_large) {
            Err(GateError::InvalidInput { what, message }) => {
                assert_eq!(what, path.display().to_string());
                assert_eq!(message, "too large");
            }
            other => panic!("expected InvalidInput, got {other:?}"),
        }
        let err = read_bounded(dir.path(), 4, "record", too_large).unwrap_err();
        assert!(err.to_string().starts_with("cannot read record "), "{err}");
    }
}
