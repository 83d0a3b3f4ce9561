//! The evidence pack's layout, its manifest, and the attestations a release's log entries
//! imply.
//!
//! # Layout
//!
//! ```text
//! manifest.json            what the pack holds: the release, the log, every file with its sha256
//! manifest.dsse.json       DSSE envelope (Ed25519) whose payload is manifest.json, byte for byte
//! checkpoint.note          the log's signed checkpoint (C2SP signed note) the proofs lead to
//! log/entries.jsonl        one line per log entry of the release, with its inclusion proof
//! attestations/<n>-vsa-<stage>-<decision>.dsse.json           one per stage decision
//! attestations/<n>-test-result-<stage>-<gate>.dsse.json       one per test-report evaluation
//! attachments/sha256-<hex> the raw evidence (reports, logs) by digest
//! signatures/<n>.statement.json      a signed decision's statement, as the log entry holds it
//! signatures/<n>.statement.json.sig  its SSHSIG signature (`ssh-keygen -Y sign`'s output)
//! rosters/<hex>.toml                 the roster the decisions were made under, byte for byte
//! rosters/<hex>.allowed_signers      its keys as an OpenSSH allowed_signers file
//! keys/checkpoint.vkey               the log's checkpoint verifier key
//! keys/attestation.pub.pem           the attestation public key (SPKI PEM)
//! keys/provenance/<id>-<sha>.pem     each key a signature gate trusted for build provenance
//! ```
//!
//! For a signed decision in log entry `<n>`, an auditor runs, in the pack's directory,
//! `ssh-keygen -Y verify -f rosters/<hex>.allowed_signers -I <id> -n promotion -s
//! signatures/<n>.statement.json.sig < signatures/<n>.statement.json`; `<hex>` is the hex of
//! the roster digest the entry records, the roster file's SHA-256. The keys in `keys/` let an
//! auditor holding only the pack verify it, once compared with the published ones.
//!
//! `<n>` is the six-digit sequence number of the log entry the attestation is about; stage and
//! gate names are shortened to file-name-safe slugs (the statements hold the real names).
//!
//! # `log/entries.jsonl`
//!
//! One JSON object per line, in log order:
//!
//! ```json
//! {"seq":17,"leaf_hash":"<hex>","proof":["<hex>",...],"entry":{"at":...,"event":{...},"prev":...}}
//! ```
//!
//! `entry` is the entry's canonical bytes exactly as the audit log stored and hashed them
//! (see `promotion_audit::entry`), embedded verbatim; `leaf_hash` is their RFC 6962 leaf hash
//! and `proof` the RFC 9162 inclusion proof of leaf `seq` in the tree of the checkpoint's size.
//!
//! # Attestations
//!
//! Each is an in-toto Statement v1 in a DSSE envelope, whose subjects are the release's
//! artifacts:
//!
//! - **Stage decisions** (`promoted`, `failed`, `deployment_failed`, `rejected`, `aborted`,
//!   `rolled_back`): a SLSA Verification Summary v1. `verifier.id` and the URIs come from the
//!   [`StatementOptions`] recorded in the manifest; `timeVerified` is the time of the deciding
//!   log entry; `resourceUri` names the stage (`<base>/pipelines/<pipeline>/stages/<stage>`);
//!   `policy` is the pipeline version in force (`<base>/pipelines/<pipeline>/versions/<v>`,
//!   digest: SHA-256 of the canonical JSON `{"pipeline":…,"version":…}`);
//!   `verificationResult` is `PASSED` for a promotion and `FAILED` otherwise, `verifiedLevels`
//!   `["FAILED"]`, or for a promotion `SLSA_BUILD_LEVEL_2` when the log shows SLSA provenance
//!   verified for every artifact, followed by [`STAGE_PROMOTED_LEVEL`] (see
//!   [`VerifiedLevels`]); `inputAttestations` are the stage's
//!   test-result attestations (path and sha256 of their envelope files). The field
//!   [`DECISION_FIELD`] (a URI, as the VSA allows for extensions) holds the decision in full:
//!   the log entries of the stage up to the decision, each gate's latest verdict with its
//!   evidence digest and summary, approvals (who, groups, when, comment, what they were bound
//!   to), judgements, break-glass overrides with their justification, rollout steps (each
//!   with its deployment `attempts` and the log entries that began them, `begunLogEntries`,
//!   when the log records them) and rollbacks.
//! - **Test reports** (gate evidence carrying the test-report data of
//!   `promotion_gates::TestReportGate`): the in-toto test result predicate v0.1. `result` is
//!   `FAILED` for a fail verdict, `WARNED` for a pass with failed, errored or flaky tests
//!   (allowed by the gate's thresholds) and `PASSED` otherwise; `configuration` is the gate
//!   (name `<pipeline>/<stage>/<phase>/<gate>`, digest: the evidence digest the log holds,
//!   annotations: thresholds, summary, producer, log entry) followed by each report file the
//!   gate read (name, digest, `uri` of its copy in `attachments/`); `warnedTests` are the flaky
//!   tests and `failedTests` the failed ones, as far as the evidence lists them. `passedTests`
//!   is absent: a report gate's evidence records failures, not every passing test.
//!
//! Statements are derived from the log entries alone (plus the statement options), so a
//! verifier recomputes every one of them and requires the signed payload to equal it byte for
//! byte: an attestation can say nothing the log does not.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use promotion_audit::entry::DecodedEntry;
use promotion_core::{Digest, Event, EventBody, Release, ReleaseId};
use serde::{Deserialize, Serialize};

use crate::intoto::{ResourceDescriptor, Statement};

mod decision;
mod levels;
mod provenance;
mod signatures;
mod test_result;

pub(crate) use decision::plan_decisions;
use decision::VsaPredicate;
pub use levels::{VerifiedLevels, LEGACY_PROMOTED_LEVEL, SLSA_BUILD_LEVEL_2, STAGE_PROMOTED_LEVEL};
pub use provenance::ManifestProvenanceKey;
pub(crate) use provenance::{check_envelopes, plan_provenance_keys};
pub(crate) use signatures::{plan_signatures, reverify, roster_files};
pub use signatures::{ManifestRoster, ManifestSignedDecision, ROSTERS_DIR, SIGNATURES_DIR};
pub(crate) use test_result::plan_test_results;
use test_result::TestResultPredicate;

/// The manifest's `format`.
pub const FORMAT: &str = "promotion-evidence-pack/v1";
/// The manifest file.
pub const MANIFEST: &str = "manifest.json";
/// The manifest's signature: a DSSE envelope whose payload is the manifest's bytes.
pub const MANIFEST_SIGNATURE: &str = "manifest.dsse.json";
/// The DSSE payload type of the manifest.
pub const MANIFEST_PAYLOAD_TYPE: &str = "application/vnd.promotion.evidence-manifest+json";
/// The checkpoint note.
pub const CHECKPOINT: &str = "checkpoint.note";
/// The log entries with their proofs.
pub const ENTRIES: &str = "log/entries.jsonl";
/// The directory of attestations.
pub const ATTESTATIONS_DIR: &str = "attestations";
/// The directory of attachments.
pub const ATTACHMENTS_DIR: &str = "attachments";
/// The directory of the public keys the pack carries.
pub const KEYS_DIR: &str = "keys";
/// The checkpoint verifier key file.
pub const CHECKPOINT_KEY_FILE: &str = "keys/checkpoint.vkey";
/// The attestation public key file.
pub const ATTESTATION_KEY_FILE: &str = "keys/attestation.pub.pem";
/// The VSA extension field holding the decision in full.
pub const DECISION_FIELD: &str = "https://example.invalid/promotion/evidence/decision/v1";
/// `verifiedLevels` of a promotion in packs written before SLSA levels (see
/// [`VerifiedLevels`]); [`STAGE_PROMOTED_LEVEL`] is today's custom value.
pub const PROMOTED_LEVEL: &str = LEGACY_PROMOTED_LEVEL;

/// How statements name the verifier and the resources; recorded in the manifest so that a
/// verifier derives the same statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementOptions {
    /// The VSA's `verifier.id`: who decided (the host's deploy tool).
    pub verifier_id: String,
    /// The base URL of `resourceUri` and `policy.uri`.
    pub resource_base: String,
    /// What `verifiedLevels` says. A manifest that does not name it was written before SLSA
    /// levels, [`VerifiedLevels::Legacy`].
    #[serde(default = "VerifiedLevels::legacy")]
    pub verified_levels: VerifiedLevels,
}

impl Default for StatementOptions {
    /// `https://promotion.invalid/verifier` and `https://promotion.invalid/`: placeholders a
    /// host replaces with its own deploy tool's URLs.
    fn default() -> Self {
        StatementOptions {
            verifier_id: "https://promotion.invalid/verifier".to_owned(),
            resource_base: "https://promotion.invalid/".to_owned(),
            verified_levels: VerifiedLevels::Slsa,
        }
    }
}

impl StatementOptions {
    /// Checks that the base is a URL paths can be appended to and the verifier id is a URI.
    pub fn check(&self) -> Result<(), String> {
        url::Url::parse(&self.verifier_id)
            .map_err(|e| format!("verifier id `{}` is not a URI: {e}", self.verifier_id))?;
        let base = url::Url::parse(&self.resource_base)
            .map_err(|e| format!("resource base `{}` is not a URL: {e}", self.resource_base))?;
        if base.cannot_be_a_base() {
            return Err(format!(
                "resource base `{}` cannot have paths appended (use an http(s) URL)",
                self.resource_base
            ));
        }
        Ok(())
    }

    /// `<base>/pipelines/<pipeline>/<kind>/<name>`, each part percent-encoded.
    fn uri(&self, pipeline: &str, kind: &str, name: &str) -> String {
        match url::Url::parse(&self.resource_base) {
            Ok(mut url) => {
                if let Ok(mut path) = url.path_segments_mut() {
                    path.pop_if_empty()
                        .extend(["pipelines", pipeline, kind, name]);
                }
                url.to_string()
            }
            // Refused by `check` before any statement is made.
            Err(_) => format!("{}/pipelines/{pipeline}/{kind}/{name}", self.resource_base),
        }
    }
}

/// The manifest: `manifest.json`.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    pub release: ManifestRelease,
    /// The log and checkpoint the proofs lead to.
    pub log: ManifestLog,
    /// The key id of the attestation key that signed every envelope.
    pub attestation_keyid: String,
    /// How statements were made.
    pub statements: StatementOptions,
    /// Every attestation.
    pub attestations: Vec<ManifestAttestation>,
    /// Every attachment the evidence references, present or missing.
    pub attachments: Vec<ManifestAttachment>,
    /// Every SSH-signed decision of the release, with its statement, signature and roster
    /// files (see [`ManifestSignedDecision`] and the layout above). Absent in packs made before signed decisions were carried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signed_decisions: Vec<ManifestSignedDecision>,
    /// The rosters the signed decisions were made under.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rosters: Vec<ManifestRoster>,
    /// The public keys that verify the pack, carried in it (see [`KEYS_DIR`]). Absent in
    /// packs made before keys were carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<ManifestKeys>,
    /// The keys the log's signature gates trusted for build-provenance envelopes, from their
    /// evidence, each with its PEM file in `keys/provenance/` when the log records it (see
    /// [`ManifestProvenanceKey`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance_keys: Vec<ManifestProvenanceKey>,
    /// Every file of the pack but the manifest and its signature, with its digest.
    pub files: Vec<ManifestFile>,
}

/// The public keys a pack carries, so that an auditor holding only the pack has every key
/// needed: each must still be compared with a value the auditor trusts (the key the
/// organisation publishes), since a key taken from the pack proves only that the pack is
/// consistent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestKeys {
    /// The log's checkpoint verifier key file (a signed-note verifier key line).
    pub checkpoint: String,
    /// The attestation public key file (SPKI PEM), which signed the manifest and the
    /// attestations.
    pub attestation: String,
}

/// The release a pack is about.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRelease {
    pub id: ReleaseId,
    pub name: String,
    /// Its event stream.
    pub stream: String,
    pub pipeline: String,
    /// The pipeline version at registration.
    pub pipeline_version: String,
    /// Its artifacts: the statements' subjects.
    pub artifacts: Vec<ManifestArtifact>,
}

/// An artifact of the release.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestArtifact {
    pub name: String,
    pub digest: Digest,
}

/// The log the entries come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestLog {
    /// The checkpoint origin (the log's name).
    pub origin: String,
    /// The checkpoint's tree size.
    pub size: u64,
    /// The checkpoint's root hash, hex.
    pub root: String,
    /// Number of entries in `log/entries.jsonl`.
    pub entries: u64,
}

/// An attestation of the pack.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestAttestation {
    pub path: String,
    /// Its predicate type.
    pub predicate_type: String,
    /// The log entry it is about.
    pub entry: u64,
    pub stage: String,
    /// `promoted`, `failed`, … for a decision; the gate's name for a test result.
    pub subject: String,
    /// `PASSED`, `FAILED` or `WARNED`.
    pub result: String,
}

/// An attachment referenced by evidence.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestAttachment {
    pub digest: Digest,
    /// The names evidence gave it.
    pub names: Vec<String>,
    /// Its size in bytes, as recorded.
    pub size: u64,
    /// The log entries whose evidence references it.
    pub entries: Vec<u64>,
    /// Its file in the pack; `None` when the exporter did not have the bytes.
    pub path: Option<String>,
}

/// A file of the pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Its path, `/`-separated, relative to the pack.
    pub path: String,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One line of `log/entries.jsonl`, as written.
#[derive(Serialize)]
pub(crate) struct EntryLineOut<'a> {
    pub(crate) seq: u64,
    pub(crate) leaf_hash: String,
    pub(crate) proof: Vec<String>,
    pub(crate) entry: &'a serde_json::value::RawValue,
}

/// One line of `log/entries.jsonl`, as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EntryLineIn<'a> {
    pub(crate) seq: u64,
    pub(crate) leaf_hash: String,
    pub(crate) proof: Vec<String>,
    #[serde(borrow)]
    pub(crate) entry: &'a serde_json::value::RawValue,
}

/// A decoded log entry of the release.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) decoded: DecodedEntry,
}

impl Entry {
    fn event(&self) -> &Event {
        &self.decoded.event
    }
}

/// An attestation the entries imply.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub(crate) path: String,
    pub(crate) predicate_type: &'static str,
    pub(crate) entry: u64,
    pub(crate) stage: String,
    pub(crate) subject: String,
    pub(crate) result: &'static str,
    pub(crate) statement: Statement<Predicate>,
}

/// The predicate of a planned statement, typed; it serialises as the predicate itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum Predicate {
    /// A stage decision's SLSA Verification Summary.
    Decision(Box<VsaPredicate>),
    /// A test report's test result.
    TestResult(TestResultPredicate),
}

impl Planned {
    pub(crate) fn manifest_entry(&self) -> ManifestAttestation {
        ManifestAttestation {
            path: self.path.clone(),
            predicate_type: self.predicate_type.to_owned(),
            entry: self.entry,
            stage: self.stage.clone(),
            subject: self.subject.clone(),
            result: self.result.to_owned(),
        }
    }
}

/// The release, from the entries' first event.
pub(crate) fn registered(entries: &[Entry]) -> Option<(Arc<Release>, String, String)> {
    let EventBody::Registered {
        release,
        pipeline,
        pipeline_version,
        ..
    } = &entries.first()?.event().body
    else {
        return None;
    };
    Some((
        release.clone(),
        pipeline.to_string(),
        pipeline_version.clone(),
    ))
}

/// The statements' subjects: the release's artifacts.
pub(crate) fn subjects(release: &Release) -> Vec<ResourceDescriptor> {
    release
        .artifacts()
        .iter()
        .map(|a| ResourceDescriptor::named_sha256(a.name.clone(), a.digest.to_hex()))
        .collect()
}

/// A file-name-safe slug of a name: ASCII letters, digits, `-` and `_`, at most 40 bytes.
pub(crate) fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
        if out.len() >= 40 {
            break;
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "x".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// A time as the statements write it: RFC 3339, UTC, `Z`.
fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The attachments the entries' evidence references, by digest.
pub(crate) fn referenced_attachments(entries: &[Entry]) -> BTreeMap<Digest, ManifestAttachment> {
    let mut out: BTreeMap<Digest, (BTreeSet<String>, u64, BTreeSet<u64>)> = BTreeMap::new();
    for e in entries {
        if let EventBody::GateEvaluated {
            evidence: Some(evidence),
            ..
        } = &e.event().body
        {
            for a in &evidence.attachments {
                let slot = out.entry(a.digest).or_default();
                slot.0.insert(a.name.clone());
                slot.1 = a.size;
                slot.2.insert(e.seq);
            }
        }
    }
    out.into_iter()
        .map(|(digest, (names, size, entries))| {
            (
                digest,
                ManifestAttachment {
                    digest,
                    names: names.into_iter().collect(),
                    size,
                    entries: entries.into_iter().collect(),
                    path: None,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_safe_file_name_parts() {
        assert_eq!(slug("production"), "production");
        assert_eq!(slug("EU West / prod"), "eu-west-prod");
        assert_eq!(slug("../../etc/passwd"), "etc-passwd");
        assert_eq!(slug("<script>"), "script");
        assert_eq!(slug("ééé"), "x");
        assert!(slug(&"a".repeat(100)).len() <= 40);
    }

    #[test]
    fn uris_are_percent_encoded_under_the_base() {
        let o = StatementOptions {
            verifier_id: "https://deploy.example/verifier".into(),
            resource_base: "https://deploy.example/promotion/".into(),
            verified_levels: VerifiedLevels::Slsa,
        };
        o.check().unwrap();
        assert_eq!(
            o.uri("shop api", "stages", "eu/prod"),
            "https://deploy.example/promotion/pipelines/shop%20api/stages/eu%2Fprod"
        );
        let bad = StatementOptions {
            resource_base: "mailto:x@example.com".into(),
            ..o
        };
        assert!(bad.check().unwrap_err().contains("cannot have paths"));
    }
}
