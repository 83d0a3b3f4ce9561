//! in-toto Statement v1 and the two predicates a pack uses.
//!
//! - A **Statement** ([in-toto Statement v1]) binds a predicate to subjects by digest:
//!   `{"_type": "https://in-toto.io/Statement/v1", "subject": [...], "predicateType": ...,
//!   "predicate": {...}}`. A pack's subjects are the release's artifacts, each as
//!   `{"name": <artifact name>, "digest": {"sha256": <hex>}}`.
//! - [`VSA_V1`]: the [SLSA Verification Summary] v1, one per stage decision.
//! - [`TEST_RESULT_V0_1`]: the in-toto [Test Result] predicate v0.1, one per evaluation of a gate
//!   whose evidence is a test report.
//!
//! A statement's payload is its canonical JSON ([`promotion_core::canonical_json`]: keys
//! sorted, no whitespace), so the same statement always has the same bytes.
//!
//! [in-toto Statement v1]: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
//! [SLSA Verification Summary]: https://slsa.dev/spec/v1.0/verification_summary
//! [Test Result]: https://github.com/in-toto/attestation/blob/main/spec/predicates/test-result.md

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use promotion_intoto::{IN_TOTO_PAYLOAD_TYPE, STATEMENT_V1};

/// The predicate type of SLSA Verification Summary v1.
pub const VSA_V1: &str = "https://slsa.dev/verification_summary/v1";
/// The predicate type of the in-toto test result predicate v0.1.
pub const TEST_RESULT_V0_1: &str = "https://in-toto.io/attestation/test-result/v0.1";

/// An in-toto resource descriptor: what a subject, a configuration or an input attestation is.
///
/// `A` is the type of its annotations: untyped JSON by default, or a `Serialize` type where a
/// pack writes annotations of a known shape (the test-result configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescriptor<A = Value> {
    /// A name (an artifact name, a file path in the pack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A URI that identifies or locates the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Digests by algorithm (`sha256` → lowercase hex).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    /// Extra information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<A>,
}

impl<A> Default for ResourceDescriptor<A> {
    fn default() -> Self {
        ResourceDescriptor {
            name: None,
            uri: None,
            digest: BTreeMap::new(),
            annotations: None,
        }
    }
}

impl<A> ResourceDescriptor<A> {
    /// A descriptor with a name and a SHA-256 digest (hex).
    pub fn named_sha256(name: impl Into<String>, sha256_hex: impl Into<String>) -> Self {
        ResourceDescriptor {
            name: Some(name.into()),
            digest: BTreeMap::from([("sha256".to_owned(), sha256_hex.into())]),
            ..ResourceDescriptor::default()
        }
    }
    /// A descriptor with a URI and a SHA-256 digest (hex).
    pub fn uri_sha256(uri: impl Into<String>, sha256_hex: impl Into<String>) -> Self {
        ResourceDescriptor {
            uri: Some(uri.into()),
            digest: BTreeMap::from([("sha256".to_owned(), sha256_hex.into())]),
            ..ResourceDescriptor::default()
        }
    }
}

/// An in-toto Statement v1.
///
/// `P` is the type of its predicate: untyped JSON by default (what a verifier reads), or the
/// `Serialize` type a pack writes; both give the same payload for the same content.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement<P = Value> {
    /// Always [`STATEMENT_V1`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// What the statement is about.
    pub subject: Vec<ResourceDescriptor>,
    /// The predicate's type URI.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: P,
}

impl<P> Statement<P> {
    /// A Statement v1 about `subject`.
    pub fn new(
        subject: Vec<ResourceDescriptor>,
        predicate_type: impl Into<String>,
        predicate: P,
    ) -> Self {
        Statement {
            statement_type: STATEMENT_V1.to_owned(),
            subject,
            predicate_type: predicate_type.into(),
            predicate,
        }
    }
}

impl<P: Serialize> Statement<P> {
    /// The statement's payload bytes: its canonical JSON.
    pub fn to_payload(&self) -> Result<Vec<u8>, serde_json::Error> {
        promotion_core::canonical_json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payload_is_canonical_and_round_trips() {
        let s = Statement::new(
            vec![ResourceDescriptor::named_sha256("api", "ab".repeat(32))],
            VSA_V1,
            json!({"verificationResult": "PASSED", "verifier": {"id": "x"}}),
        );
        let bytes = s.to_payload().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"_type":"https://in-toto.io/Statement/v1","predicate":{"verificationResult":"PASSED""#), "{text}");
        let back: Statement = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, s);
    }
}
