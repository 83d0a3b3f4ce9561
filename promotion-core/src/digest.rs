//! SHA-256 digests and the canonical JSON form that release ids and evidence digests use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest, written `sha256:<64 lowercase hex digits>`.
///
/// ```
/// use promotion_core::Digest;
/// let d = Digest::of(b"hello");
/// assert_eq!(d.to_string(),
///     "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
/// assert_eq!(d, d.to_string().parse().unwrap());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// Why a string is not a valid `sha256:` digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The algorithm prefix is missing or is not `sha256:`.
    #[error("expected a digest of the form `sha256:<64 hex digits>`, found `{found}`")]
    Algorithm {
        /// The text that was given (shortened when long).
        found: String,
    },
    /// The hex part does not have 64 digits.
    #[error("a sha256 digest has 64 hex digits, found {len}")]
    Length {
        /// Number of characters after the prefix.
        len: usize,
    },
    /// A character of the hex part is not a hex digit.
    #[error("character {position} of the digest is not a hex digit")]
    NotHex {
        /// Zero-based position inside the hex part.
        position: usize,
    },
}

impl Digest {
    /// Digest of raw bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// Digest of the canonical JSON serialisation of `value` (see [`canonical_json`]).
    pub fn of_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Self::of(&canonical_json(value)?))
    }

    /// The digest from its 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits, without the `sha256:` prefix.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first `n` hex digits, for display.
    pub fn short(&self, n: usize) -> String {
        let mut h = self.to_hex();
        h.truncate(n);
        h
    }

    /// Parses `sha256:<hex>`; upper-case hex is accepted, the prefix is required.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let Some(hex_part) = s.strip_prefix("sha256:") else {
            let found: String = s.chars().take(80).collect();
            return Err(DigestError::Algorithm { found });
        };
        if hex_part.len() != 64 {
            return Err(DigestError::Length {
                len: hex_part.chars().count(),
            });
        }
        if let Some(position) = hex_part.bytes().position(|b| !b.is_ascii_hexdigit()) {
            return Err(DigestError::NotHex { position });
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out)
            .map_err(|_| DigestError::NotHex { position: 0 })?;
        Ok(Digest(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.short(12))
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Serialises `value` as canonical JSON: object keys sorted by their UTF-8 bytes, no
/// insignificant whitespace. The bytes do not depend on the platform, on the order fields were
/// declared in a map, or on whether serde_json's `preserve_order` feature is enabled anywhere
/// in the build.
pub fn canonical_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    serde_json::to_vec(&Sorted(&value))
}

struct Sorted<'a>(&'a serde_json::Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(k, &Sorted(v))?;
                }
                m.end()
            }
            serde_json::Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Sorted(v))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_malformed() {
        assert!(matches!(
            Digest::parse("abc"),
            Err(DigestError::Algorithm { .. })
        ));
        assert!(matches!(
            Digest::parse("sha256:abc"),
            Err(DigestError::Length { len: 3 })
        ));
        let bad = format!("sha256:{}g", "a".repeat(63));
        assert!(matches!(
            Digest::parse(&bad),
            Err(DigestError::NotHex { position: 63 })
        ));
        let multibyte = format!("sha256:{}é", "a".repeat(62));
        assert!(Digest::parse(&multibyte).is_err());
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v = serde_json::json!({"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "c": null}});
        let bytes = canonical_json(&v).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"a":{"c":null,"z":[{"x":2,"y":1}]},"b":1}"#
        );
    }
}
