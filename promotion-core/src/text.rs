//! Text people type (names, comments, justifications): what may be in it, how long it may be,
//! and how to show it safely.
//!
//! Three dangers, each closed here:
//!
//! - **Invisible characters** make two names look equal while comparing different
//!   (`dana\u{200B}` is not `dana` to a computer, and is to a reviewer), or make a
//!   justification that shows nothing look written. [`is_invisible`] names them: Unicode format
//!   characters (bidi controls such as RLO U+202E and LRI U+2066, zero-width space, joiners,
//!   the BOM, tag characters), the other default-ignorable code points (variation selectors,
//!   the Hangul fillers, the combining grapheme joiner), unassigned, private-use and surrogate
//!   code points, line and paragraph separators, and every space other than U+0020.
//! - **Look-alike names** (Cyrillic `а` for Latin `a`, `rn` for `m`) are one person for
//!   separation of duties: [`same_person`] compares the Unicode TR39 confusable skeletons of the
//!   case-folded ids.
//! - **Free text printed raw** can clear a terminal or forge a line of output with ANSI escapes.
//!   [`escape`] shows every control, format and bidi character as a visible `\u{…}` escape;
//!   every terminal and HTML output of the project passes free text through it.

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The default bound on a comment, a justification or a reason, in bytes (4 KiB). A pipeline
/// may set another with
/// [`PipelineBuilder::max_text_len`](crate::PipelineBuilder::max_text_len).
pub const DEFAULT_MAX_TEXT_LEN: usize = 4096;

/// Default-ignorable code points that Unicode does not class as format characters (Unicode's
/// `DerivedCoreProperties.txt`, property `Default_Ignorable_Code_Point`, minus category Cf),
/// plus U+2800 BRAILLE PATTERN BLANK, which renders as nothing in most fonts.
const IGNORABLE_NOT_FORMAT: &[(char, char)] = &[
    ('\u{034F}', '\u{034F}'),   // combining grapheme joiner
    ('\u{115F}', '\u{1160}'),   // Hangul choseong and jungseong fillers
    ('\u{17B4}', '\u{17B5}'),   // Khmer inherent vowels
    ('\u{180B}', '\u{180F}'),   // Mongolian free variation selectors
    ('\u{2800}', '\u{2800}'),   // braille pattern blank
    ('\u{3164}', '\u{3164}'),   // Hangul filler
    ('\u{FE00}', '\u{FE0F}'),   // variation selectors
    ('\u{FFA0}', '\u{FFA0}'),   // halfwidth Hangul filler
    ('\u{E0100}', '\u{E01EF}'), // variation selectors supplement
];

/// Whether `c` shows nothing, or changes how the text around it shows, so that a reader
/// cannot see it is there (see the module docs for the list). Line feed and tab are not
/// invisible in a comment; [`check_name`](crate::InvalidName) refuses them in names anyway.
pub fn is_invisible(c: char) -> bool {
    if c == ' ' || c == '\n' || c == '\t' {
        return false;
    }
    if c.is_whitespace() {
        return true;
    }
    if IGNORABLE_NOT_FORMAT
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&c))
    {
        return true;
    }
    matches!(
        c.general_category(),
        GeneralCategory::Format
            | GeneralCategory::Control
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
    )
}

/// Whether `text` holds at least one character a reader can see (not whitespace, not
/// invisible): a justification of a single zero-width space has none.
pub fn has_visible_text(text: &str) -> bool {
    text.chars().any(|c| !c.is_whitespace() && !is_invisible(c))
}

/// The Unicode NFC form of `s`, borrowed when it already is.
pub(crate) fn nfc(s: &str) -> Cow<'_, str> {
    if unicode_normalization::is_nfc(s) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfc().collect())
    }
}

/// The confusable skeleton of an id (Unicode TR39, section 4) after case folding: two ids
/// with the same skeleton look alike to a reader.
pub fn skeleton(id: &str) -> String {
    unicode_security::skeleton(&id.to_lowercase()).collect()
}

/// Whether two ids name the same person for separation of duties: equal, or alike to a reader
/// (same [`skeleton`]): `dana`, `Dana` and `dаna` (Cyrillic `а`) are one person.
pub fn same_person(a: &str, b: &str) -> bool {
    a == b || skeleton(a) == skeleton(b)
}

/// `text` with every control, format, bidi and other invisible character (line feed and tab
/// included) replaced by a visible `\u{XXXX}` escape, so that printing it cannot move the
/// cursor, recolour the terminal or reorder what follows. Borrowed when nothing needed
/// escaping.
///
/// ```
/// use promotion_core::text::escape;
/// assert_eq!(escape("ok"), "ok");
/// assert_eq!(escape("\u{1b}[2J APPROVED"), "\\u{1b}[2J APPROVED");
/// assert_eq!(escape("dana\u{202E}"), "dana\\u{202e}");
/// ```
pub fn escape(text: &str) -> Cow<'_, str> {
    let needs = |c: char| c == '\n' || c == '\t' || is_invisible(c);
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Why a comment, justification or reason was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// Longer than the pipeline allows.
    #[error("{what} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// What the text was (`an approval comment`, `an override's justification`).
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Holds a control character other than line feed and tab (an ANSI escape, say).
    #[error("{what} contains the control character U+{code:04X} at byte {at}")]
    Control {
        /// What the text was.
        what: &'static str,
        /// The character's code point.
        code: u32,
        /// Its byte offset.
        at: usize,
    },
}

/// Checks free text against a bound and refuses control characters other than line feed and
/// tab. Bidi and other format characters are allowed (right-to-left languages need them) and
/// are escaped on output by [`escape`].
pub(crate) fn check_text(what: &'static str, text: &str, max: usize) -> Result<(), TextError> {
    if text.len() > max {
        return Err(TextError::TooLong {
            what,
            len: text.len(),
            max,
        });
    }
    match text
        .char_indices()
        .find(|&(_, c)| c.is_control() && c != '\n' && c != '\t')
    {
        Some((at, c)) => Err(TextError::Control {
            what,
            code: u32::from(c),
            at,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invisible_characters_of_the_attack_are_invisible() {
        for c in [
            '\u{202E}',  // right-to-left override
            '\u{2066}',  // left-to-right isolate
            '\u{200B}',  // zero-width space
            '\u{200D}',  // zero-width joiner
            '\u{FEFF}',  // byte-order mark
            '\u{00AD}',  // soft hyphen
            '\u{00A0}',  // no-break space
            '\u{3000}',  // ideographic space
            '\u{E0041}', // tag latin capital a
            '\u{FE0F}',  // variation selector 16
            '\u{3164}',  // Hangul filler
            '\u{2800}',  // braille blank
            '\u{E000}',  // private use
            '\u{1B}',    // escape
        ] {
            assert!(is_invisible(c), "U+{:04X}", u32::from(c));
        }
        for c in ['a', 'é', 'ж', '中', '-', '.', ' ', '@', '😀'] {
            assert!(!is_invisible(c), "{c}");
        }
    }

    #[test]
    fn a_justification_needs_a_visible_character() {
        assert!(!has_visible_text("\u{200B}"));
        assert!(!has_visible_text(" \u{FEFF}\n\t\u{3000}"));
        assert!(has_visible_text(" fix \u{200B}"));
        assert!(has_visible_text("修正"));
    }

    #[test]
    fn look_alike_ids_are_one_person() {
        assert!(same_person("dana", "dana"));
        assert!(same_person("dana", "Dana"));
        assert!(same_person("dana", "d\u{0430}na")); // Cyrillic small a
        assert!(same_person("mary", "rnary")); // `rn` looks like `m`
        assert!(same_person("bob", "b\u{03BF}b")); // Greek omicron
        assert!(!same_person("dana", "dan"));
        assert!(!same_person("ann", "bob"));
    }

    #[test]
    fn escape_shows_what_would_have_acted_on_the_terminal() {
        assert_eq!(escape("plain text"), "plain text");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape("no\u{1b}[2K\r\u{1b}[32mAPPROVED"),
            "no\\u{1b}[2K\\u{d}\\u{1b}[32mAPPROVED"
        );
        assert_eq!(escape("a\nb"), "a\\u{a}b");
        assert_eq!(escape("x\u{202E}y"), "x\\u{202e}y");
    }

    #[test]
    fn text_is_bounded_and_refuses_terminal_controls() {
        assert!(check_text("a comment", "fine\n\ttext", 100).is_ok());
        assert_eq!(
            check_text("a comment", &"x".repeat(5), 4),
            Err(TextError::TooLong {
                what: "a comment",
                len: 5,
                max: 4
            })
        );
        assert_eq!(
            check_text("a comment", "ok\u{1b}[2J", 100),
            Err(TextError::Control {
                what: "a comment",
                code: 0x1b,
                at: 2
            })
        );
        assert_eq!(
            TextError::TooLong {
                what: "a comment",
                len: 1_000_000,
                max: 4096
            }
            .to_string(),
            "a comment is 1000000 bytes long; at most 4096 are allowed"
        );
    }

    #[test]
    fn nfc_composes() {
        assert_eq!(nfc("e\u{301}"), "\u{e9}");
        assert!(matches!(nfc("abc"), Cow::Borrowed(_)));
    }
}
