//! The in-toto statements inside DSSE envelopes, as the gate reads them, and the commits a SLSA
//! provenance names. The envelopes themselves, their base64 and the pre-authentication encoding
//! that is signed come from [`promotion_intoto`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::MAX_PARAMETER_DEPTH;

/// An in-toto statement as written; the predicate is read only when it is SLSA provenance.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StatementDoc {
    #[serde(rename = "_type")]
    pub(super) statement_type: String,
    pub(super) subject: Vec<SubjectDoc>,
    pub(super) predicate_type: String,
    #[serde(default)]
    pub(super) predicate: Value,
}

#[derive(Debug, Deserialize)]
pub(super) struct SubjectDoc {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) digest: BTreeMap<String, String>,
}

/// The parts of a SLSA Provenance v1 predicate the gate reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProvenanceDoc {
    pub(super) build_definition: BuildDefinitionDoc,
    pub(super) run_details: RunDetailsDoc,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BuildDefinitionDoc {
    pub(super) build_type: String,
    pub(super) external_parameters: Value,
    #[serde(default)]
    pub(super) resolved_dependencies: Vec<ResourceDescriptorDoc>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ResourceDescriptorDoc {
    #[serde(default)]
    pub(super) uri: Option<String>,
    #[serde(default)]
    pub(super) digest: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RunDetailsDoc {
    pub(super) builder: BuilderDoc,
}

#[derive(Debug, Deserialize)]
pub(super) struct BuilderDoc {
    pub(super) id: String,
}

/// The git commits a resource descriptor names: its `gitCommit` digest, or its `sha1` digest
/// when its URI is a git URI (`git+https://…`).
pub(super) fn descriptor_commits(
    uri: Option<&str>,
    digest: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = digest.get("gitCommit") {
        out.push(c.to_ascii_lowercase());
    }
    if uri.is_some_and(|u| u.starts_with("git+")) {
        if let Some(c) = digest.get("sha1") {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The git commits named by resource descriptors anywhere in `value` (objects with a `digest`
/// object), up to [`MAX_PARAMETER_DEPTH`] levels deep.
pub(super) fn parameter_commits(value: &Value, depth: usize, out: &mut Vec<String>) {
    if depth > MAX_PARAMETER_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(digest)) = map.get("digest") {
                let digest: BTreeMap<String, String> = digest
                    .iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                    .collect();
                let uri = map.get("uri").and_then(Value::as_str);
                out.extend(descriptor_commits(uri, &digest));
            }
            for v in map.values() {
                parameter_commits(v, depth + 1, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                parameter_commits(v, depth + 1, out);
            }
        }
        _ => {}
    }
}
