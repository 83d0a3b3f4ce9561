//! Durations written as strings: `"30s"`, `"10m"`, `"6h"`, `"1h 30m"`, `"2days"`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Parses a duration such as `30s`, `10m`, `6h`, `1h 30m` or `500ms` (the `humantime` crate's
/// syntax: a number and a unit, repeated; units `ms`, `s`, `m`, `h`, `d`, `w` and their long
/// forms).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(promotion_config::parse_duration("1h 30m")?, Duration::from_secs(5400));
/// assert!(promotion_config::parse_duration("10x").is_err());
/// # Ok::<(), String>(())
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!(
            "invalid duration `{text}`: {e}; expected a number and a unit such as \
             \"30s\", \"10m\", \"6h\" or \"1h 30m\""
        )
    })
}

/// Formats a duration the way [`parse_duration`] reads it (`1h 30m`).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A duration in a configuration file, written as a string (see [`parse_duration`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DurationValue(pub Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"30s\", \"10m\" or \"6h\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<DurationValue, E> {
                parse_duration(s).map(DurationValue).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl From<DurationValue> for Duration {
    fn from(d: DurationValue) -> Duration {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("6h").unwrap(), Duration::from_secs(6 * 3600));
        assert_eq!(parse_duration(" 10m ").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        let err = parse_duration("ten minutes").unwrap_err();
        assert!(err.starts_with("invalid duration `ten minutes`"), "{err}");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
    }
}
