//! Helpers every gate shares for reporting malformed input: the line a byte offset is on, and
//! the [`GateError::InvalidInput`] that names the file and the line where it went wrong.
//!
//! Gates read TOML, JSON, XML and plain text; whichever parser finds the problem reports it
//! as a byte offset or a line, and these helpers turn that into the one spelling users see:
//! `path/to/file line 12: message`.

use std::fmt;

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
}
