//! Validated names: stages, gates, groups, principals, pipelines.

use serde::{Deserialize, Serialize};

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name `{value}`: {problem}")]
pub struct InvalidName {
    /// What kind of name it was (stage, gate, group, …).
    pub kind: &'static str,
    /// The value that was given (shortened when long).
    pub value: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// Longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 200;

pub(crate) fn check_name(kind: &'static str, value: &str) -> Result<(), InvalidName> {
    check(kind, value, true)
}

/// [`check_name`] without the refusal of invisible characters, for technical names no person
/// is identified or told apart by (stream names).
pub(crate) fn check_technical_name(kind: &'static str, value: &str) -> Result<(), InvalidName> {
    check(kind, value, false)
}

fn check(kind: &'static str, value: &str, visible: bool) -> Result<(), InvalidName> {
    let problem = if value.is_empty() {
        Some("it is empty")
    } else if value.len() > MAX_NAME_LEN {
        Some("it is longer than 200 bytes")
    } else if value.trim() != value {
        Some("it starts or ends with whitespace")
    } else if value.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if visible && value.chars().any(crate::text::is_invisible) {
        Some("it contains an invisible or formatting character (zero-width, bidi control, non-ASCII space…)")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(InvalidName {
            kind,
            value: value.chars().take(60).collect(),
            problem,
        }),
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        ///
        /// Non-empty, at most 200 bytes, no control characters, no invisible or formatting
        /// characters ([`text::is_invisible`](crate::text::is_invisible)), no surrounding
        /// whitespace; kept in Unicode NFC, so that a composed and a decomposed `é` are one name.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps a name.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidName> {
                let mut value = value.into();
                check_name($kind, &value)?;
                if let std::borrow::Cow::Owned(composed) = crate::text::nfc(&value) {
                    value = composed;
                }
                Ok(Self(value))
            }
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(value: String) -> Result<Self, InvalidName> {
                Self::new(value)
            }
        }
        impl TryFrom<&str> for $name {
            type Error = InvalidName;
            fn try_from(value: &str) -> Result<Self, InvalidName> {
                Self::new(value)
            }
        }
        impl std::str::FromStr for $name {
            type Err = InvalidName;
            fn from_str(value: &str) -> Result<Self, InvalidName> {
                Self::new(value)
            }
        }
        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

name_type!(
    /// The name of a stage in a pipeline (`dev`, `canary`, `production`).
    StageName,
    "stage"
);
name_type!(
    /// The name of a gate, unique within its phase.
    GateName,
    "gate"
);
name_type!(
    /// A group of principals (`sre`, `security`), as the host's identity provider names it.
    Group,
    "group"
);
name_type!(
    /// The stable identifier of an authenticated principal (a person or a service account).
    PrincipalId,
    "principal"
);
impl PrincipalId {
    /// Whether `other` names the same person for separation of duties: the same id, or one a
    /// reader cannot tell from it ([`text::same_person`](crate::text::same_person): case and
    /// Unicode look-alikes).
    pub fn same_person(&self, other: &str) -> bool {
        crate::text::same_person(&self.0, other)
    }
}

name_type!(
    /// The name of a pipeline definition.
    PipelineName,
    "pipeline"
);
name_type!(
    /// A host-chosen id for one request (an approval click, an API call), so that retrying it
    /// after an ambiguous failure never applies it twice. See
    /// [`Engine::submit_once`](crate::Engine::submit_once).
    RequestId,
    "request"
);
name_type!(
    /// A replica's identity as a lease holder (see [`LeaseStore`](crate::LeaseStore)): unique
    /// among the replicas sharing a store (host name and process id, a pod name).
    ReplicaId,
    "replica"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(StageName::new("canary").is_ok());
        let err = StageName::new("").unwrap_err();
        assert_eq!(err.to_string(), "invalid stage name ``: it is empty");
        assert!(GateName::new(" x").is_err());
        assert!(Group::new("a\nb").is_err());
        assert!(PrincipalId::new("x".repeat(201)).is_err());
        let parsed: Result<StageName, _> = serde_json::from_str("\"\"");
        assert!(parsed.is_err());
    }

    #[test]
    fn invisible_characters_are_refused_in_every_kind_of_name() {
        for bad in [
            "dana\u{200B}",
            "\u{202E}anad",
            "da\u{2066}na",
            "\u{FEFF}dana",
            "da\u{200D}na",
            "dana\u{00A0}x",
        ] {
            let err = PrincipalId::new(bad).unwrap_err();
            assert!(err.problem.contains("invisible"), "{bad:?}: {err}");
            assert!(Group::new(bad).is_err());
            assert!(StageName::new(bad).is_err());
            let parsed: Result<PrincipalId, _> = serde_json::from_str(&format!("{bad:?}"));
            assert!(parsed.is_err(), "{bad:?} deserialised");
        }
        assert!(PrincipalId::new("Zoë Ünal").is_ok());
    }

    #[test]
    fn names_are_kept_composed() {
        let decomposed = PrincipalId::new("zoe\u{308}").unwrap();
        let composed = PrincipalId::new("zo\u{eb}").unwrap();
        assert_eq!(decomposed, composed);
        assert_eq!(decomposed.as_str(), "zo\u{eb}");
    }
}
