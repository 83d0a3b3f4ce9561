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
//! ```
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
//!   `["PROMOTION_STAGE_PROMOTED"]` or `["FAILED"]`; `inputAttestations` are the stage's
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
use promotion_core::{
    Digest, Event, EventBody, Evidence, Outcome, PhaseId, Release, ReleaseId, StageName,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::attachments;
use crate::intoto::{ResourceDescriptor, Statement, TEST_RESULT_V0_1, VSA_V1};

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
/// The VSA extension field holding the decision in full.
pub const DECISION_FIELD: &str = "https://example.invalid/promotion/evidence/decision/v1";
/// `verifiedLevels` of a promotion.
pub const PROMOTED_LEVEL: &str = "PROMOTION_STAGE_PROMOTED";

/// How statements name the verifier and the resources; recorded in the manifest so that a
/// verifier derives the same statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementOptions {
    /// The VSA's `verifier.id`: who decided (the host's deploy tool).
    pub verifier_id: String,
    /// The base URL of `resourceUri` and `policy.uri`.
    pub resource_base: String,
}

impl Default for StatementOptions {
    /// `https://promotion.invalid/verifier` and `https://promotion.invalid/`: placeholders a
    /// host replaces with its own deploy tool's URLs.
    fn default() -> Self {
        StatementOptions {
            verifier_id: "https://promotion.invalid/verifier".to_owned(),
            resource_base: "https://promotion.invalid/".to_owned(),
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The release.
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
    /// Every file of the pack but the manifest and its signature, with its digest.
    pub files: Vec<ManifestFile>,
}

/// The release a pack is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRelease {
    /// Its id.
    pub id: ReleaseId,
    /// Its name.
    pub name: String,
    /// Its event stream.
    pub stream: String,
    /// The pipeline.
    pub pipeline: String,
    /// The pipeline version at registration.
    pub pipeline_version: String,
    /// Its artifacts: the statements' subjects.
    pub artifacts: Vec<ManifestArtifact>,
}

/// An artifact of the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestArtifact {
    /// Its name.
    pub name: String,
    /// Its digest.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestAttestation {
    /// Its file.
    pub path: String,
    /// Its predicate type.
    pub predicate_type: String,
    /// The log entry it is about.
    pub entry: u64,
    /// The stage.
    pub stage: String,
    /// `promoted`, `failed`, … for a decision; the gate's name for a test result.
    pub subject: String,
    /// `PASSED`, `FAILED` or `WARNED`.
    pub result: String,
}

/// An attachment referenced by evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestAttachment {
    /// Its digest.
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
    pub(crate) statement: Statement,
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
    match &entries.first()?.event().body {
        EventBody::Registered {
            release,
            pipeline,
            pipeline_version,
            ..
        } => Some((
            release.clone(),
            pipeline.to_string(),
            pipeline_version.clone(),
        )),
        _ => None,
    }
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

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The test-report facts in a gate's evidence (the data `TestReportGate` records).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TestReportView {
    pub(crate) failed_or_errored: u64,
    pub(crate) flaky: u64,
    pub(crate) failed_tests: Vec<String>,
    pub(crate) flaky_tests: Vec<String>,
    pub(crate) thresholds: Value,
}

/// Reads the test-report data of `evidence`, when it is a test report: `data.totals` with
/// numeric `tests`, `failed` and `errored`.
pub(crate) fn test_report(evidence: &Evidence) -> Option<TestReportView> {
    let totals = evidence.data.get("totals")?;
    let count = |key: &str| totals.get(key).and_then(Value::as_u64);
    count("tests")?;
    let failed = count("failed")?;
    let errored = count("errored")?;
    let names = |key: &str| -> Vec<String> {
        evidence
            .data
            .get(key)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(test_name).collect())
            .unwrap_or_default()
    };
    Some(TestReportView {
        failed_or_errored: failed.saturating_add(errored),
        flaky: count("flaky").unwrap_or(0),
        failed_tests: names("failed_tests"),
        flaky_tests: names("flaky_tests"),
        thresholds: evidence
            .data
            .get("thresholds")
            .cloned()
            .unwrap_or(Value::Null),
    })
}

/// A test's name from a failed-test record (`{"suite", "classname", "name"}`) or a string.
fn test_name(item: &Value) -> Option<String> {
    if let Some(s) = item.as_str() {
        return Some(s.to_owned());
    }
    let field = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or("");
    let name = field("name");
    if name.is_empty() {
        return None;
    }
    let scope = [field("classname"), field("suite")]
        .into_iter()
        .find(|s| !s.is_empty());
    Some(match scope {
        Some(scope) => format!("{scope} {name}"),
        None => name.to_owned(),
    })
}

/// The test-result attestations the entries imply, in log order.
pub(crate) fn plan_test_results(
    release: &Release,
    pipeline: &str,
    entries: &[Entry],
) -> Vec<Planned> {
    let mut out = Vec::new();
    for e in entries {
        let EventBody::GateEvaluated {
            stage,
            phase,
            round,
            gate,
            outcome,
            evidence: Some(evidence),
            ..
        } = &e.event().body
        else {
            continue;
        };
        let passed = match outcome {
            Outcome::Pass => true,
            Outcome::Fail => false,
            _ => continue,
        };
        let Some(report) = test_report(evidence) else {
            continue;
        };
        let result = match (passed, report.failed_or_errored + report.flaky) {
            (false, _) => "FAILED",
            (true, 0) => "PASSED",
            (true, _) => "WARNED",
        };
        let mut configuration = vec![ResourceDescriptor {
            name: Some(format!("{pipeline}/{stage}/{phase}/{gate}")),
            digest: BTreeMap::from([("sha256".to_owned(), evidence.digest().to_hex())]),
            annotations: Some(json!({
                "producer": evidence.producer,
                "observedAt": time(evidence.observed_at),
                "summary": evidence.summary,
                "thresholds": report.thresholds,
                "round": round,
                "logEntry": e.seq,
            })),
            ..ResourceDescriptor::default()
        }];
        for a in &evidence.attachments {
            configuration.push(ResourceDescriptor {
                name: Some(a.name.clone()),
                uri: Some(format!(
                    "{ATTACHMENTS_DIR}/{}",
                    attachments::file_name(&a.digest)
                )),
                digest: BTreeMap::from([("sha256".to_owned(), a.digest.to_hex())]),
                annotations: None,
            });
        }
        let predicate = json!({
            "result": result,
            "configuration": configuration,
            "warnedTests": report.flaky_tests,
            "failedTests": report.failed_tests,
        });
        out.push(Planned {
            path: format!(
                "{ATTESTATIONS_DIR}/{:06}-test-result-{}-{}.dsse.json",
                e.seq,
                slug(stage.as_str()),
                slug(gate.as_str())
            ),
            predicate_type: TEST_RESULT_V0_1,
            entry: e.seq,
            stage: stage.to_string(),
            subject: gate.to_string(),
            result,
            statement: Statement::new(subjects(release), TEST_RESULT_V0_1, predicate),
        });
    }
    out
}

/// What a decision event decided: (decision, passed, reason).
fn decision(
    body: &EventBody,
    rollback_reason: Option<&String>,
) -> Option<(&'static str, bool, String)> {
    Some(match body {
        EventBody::StagePromoted { .. } => ("promoted", true, "promoted".to_owned()),
        EventBody::PhaseFailed { reason, .. } => ("failed", false, reason.to_string()),
        EventBody::DeploymentFailed {
            step,
            weight,
            error,
            ..
        } => (
            "deployment_failed",
            false,
            format!("deployment of step {} ({weight}) failed: {error}", step + 1),
        ),
        EventBody::ApprovalRejected {
            principal, comment, ..
        } => (
            "rejected",
            false,
            format!("rejected by {}: {comment}", principal.id),
        ),
        EventBody::StageAborted {
            principal, reason, ..
        } => (
            "aborted",
            false,
            format!("aborted by {}: {reason}", principal.id),
        ),
        EventBody::RolledBack { .. } => (
            "rolled_back",
            false,
            format!(
                "rolled back: {}",
                rollback_reason.map_or("no reason recorded", String::as_str)
            ),
        ),
        _ => return None,
    })
}

/// What happened in one stage so far, for the decision field.
#[derive(Default)]
struct StageLog {
    entries: Vec<u64>,
    gates: BTreeMap<(PhaseId, String), Value>,
    evaluations: BTreeMap<(PhaseId, String), u64>,
    approvals: Vec<Value>,
    judgements: Vec<Value>,
    overrides: Vec<Value>,
    rollout: Vec<Value>,
    /// The `deployment_started` entries since the last deployment outcome: (step, log entry).
    begun: Vec<(u32, u64)>,
    rollbacks: Vec<Value>,
    rollback_reason: Option<String>,
}

impl StageLog {
    fn record(&mut self, seq: u64, event: &Event) {
        self.entries.push(seq);
        let at = time(event.at);
        match &event.body {
            EventBody::GateEvaluated {
                phase,
                round,
                gate,
                outcome,
                attempts,
                evidence_digest,
                evidence,
                ..
            } => {
                let key = (*phase, gate.to_string());
                let n = self.evaluations.entry(key.clone()).or_insert(0);
                *n += 1;
                let evaluations = *n;
                self.gates.insert(
                    key,
                    json!({
                        "phase": phase,
                        "gate": gate,
                        "outcome": outcome.to_string(),
                        "round": round,
                        "attempts": attempts,
                        "evaluations": evaluations,
                        "at": at,
                        "evidenceDigest": evidence_digest,
                        "summary": evidence.as_ref().map(|e| e.summary.clone()),
                        "producer": evidence.as_ref().map(|e| e.producer.clone()),
                        "attachments": evidence.as_ref().map(|e| e.attachments.iter().map(|a| json!({
                            "name": a.name, "digest": a.digest, "size": a.size,
                        })).collect::<Vec<_>>()),
                        "logEntry": seq,
                    }),
                );
            }
            EventBody::ApprovalGiven {
                principal,
                comment,
                binding,
                ..
            } => self.approvals.push(json!({
                "decision": "approved",
                "principal": principal.id,
                "groups": principal.groups,
                "at": at,
                "comment": comment,
                "boundTo": {
                    "release": binding.release,
                    "evidenceDigest": binding.evidence_digest,
                    "pipelineVersion": binding.pipeline_version,
                },
                "logEntry": seq,
            })),
            EventBody::ApprovalRejected {
                principal, comment, ..
            } => self.approvals.push(json!({
                "decision": "rejected",
                "principal": principal.id,
                "groups": principal.groups,
                "at": at,
                "comment": comment,
                "logEntry": seq,
            })),
            EventBody::GateJudged {
                phase,
                gate,
                pass,
                principal,
                comment,
                ..
            } => self.judgements.push(json!({
                "phase": phase,
                "gate": gate,
                "pass": pass,
                "principal": principal.id,
                "groups": principal.groups,
                "at": at,
                "comment": comment,
                "logEntry": seq,
            })),
            EventBody::GateOverridden {
                phase,
                gate,
                principal,
                justification,
                overridden,
                ..
            } => self.overrides.push(json!({
                "phase": phase,
                "gate": gate,
                "principal": principal.id,
                "groups": principal.groups,
                "at": at,
                "justification": justification,
                "overridden": overridden.to_string(),
                "logEntry": seq,
            })),
            EventBody::DeploymentStarted { step, .. } => self.begun.push((*step, seq)),
            EventBody::StepDeployed { step, weight, .. } => {
                let mut deployed = json!({
                    "step": step + 1,
                    "weight": weight.get(),
                    "at": at,
                    "logEntry": seq,
                });
                // Each deployer call is recorded as begun before it is made; more than one
                // means an earlier call's outcome was never recorded. Logs written before
                // attempts were recorded have none.
                let begun: Vec<u64> = self
                    .begun
                    .drain(..)
                    .filter(|(s, _)| s == step)
                    .map(|(_, entry)| entry)
                    .collect();
                if let (false, Some(fields)) = (begun.is_empty(), deployed.as_object_mut()) {
                    fields.insert("attempts".into(), json!(begun.len()));
                    fields.insert("begunLogEntries".into(), json!(begun));
                }
                self.rollout.push(deployed);
            }
            EventBody::DeploymentFailed { .. } => self.begun.clear(),
            EventBody::RollbackStarted { reason, .. } => {
                self.rollback_reason = Some(reason.clone());
                self.rollbacks.push(json!({
                    "started": at,
                    "reason": reason,
                    "by": event.actor.to_string(),
                    "logEntry": seq,
                }));
            }
            _ => {}
        }
    }
}

/// The SHA-256 (hex) of the canonical JSON `{"pipeline": …, "version": …}`.
pub(crate) fn policy_digest(pipeline: &str, version: &str) -> String {
    let value = json!({ "pipeline": pipeline, "version": version });
    promotion_core::canonical_json(&value)
        .map(|bytes| Digest::of(&bytes).to_hex())
        .unwrap_or_default()
}

/// The stage-decision attestations the entries imply, in log order. `digest_of` gives the
/// SHA-256 (hex) of a test-result attestation file, for `inputAttestations`.
pub(crate) fn plan_decisions(
    release: &Release,
    pipeline: &str,
    entries: &[Entry],
    test_results: &[Planned],
    options: &StatementOptions,
    digest_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<Planned> {
    let mut out = Vec::new();
    let mut version = String::new();
    let mut stages: BTreeMap<StageName, StageLog> = BTreeMap::new();
    for e in entries {
        let event = e.event();
        match &event.body {
            EventBody::Registered {
                pipeline_version, ..
            } => version.clone_from(pipeline_version),
            EventBody::PipelineVersionAdopted { to, .. } => version.clone_from(to),
            _ => {}
        }
        let Some(stage) = event.body.stage() else {
            continue;
        };
        let log = stages.entry(stage.clone()).or_default();
        log.record(e.seq, event);
        let Some((name, passed, reason)) = decision(&event.body, log.rollback_reason.as_ref())
        else {
            continue;
        };
        let inputs: Vec<ResourceDescriptor> = test_results
            .iter()
            .filter(|t| t.stage == stage.as_str() && log.entries.contains(&t.entry))
            .map(|t| {
                ResourceDescriptor::uri_sha256(
                    t.path.clone(),
                    digest_of(&t.path).unwrap_or_default(),
                )
            })
            .collect();
        let result = if passed { "PASSED" } else { "FAILED" };
        let mut predicate = json!({
            "verifier": { "id": options.verifier_id },
            "timeVerified": time(event.at),
            "resourceUri": options.uri(pipeline, "stages", stage.as_str()),
            "policy": {
                "uri": options.uri(pipeline, "versions", &version),
                "digest": { "sha256": policy_digest(pipeline, &version) },
            },
            "verificationResult": result,
            "verifiedLevels": [if passed { PROMOTED_LEVEL } else { "FAILED" }],
            "slsaVersion": "1.0",
            DECISION_FIELD: {
                "release": { "id": release.id(), "name": release.name() },
                "pipeline": pipeline,
                "pipelineVersion": version,
                "stage": stage,
                "decision": name,
                "reason": reason,
                "decidedBy": event.actor.to_string(),
                "logEntries": log.entries,
                "decisionEntry": e.seq,
                "gates": log.gates.values().collect::<Vec<_>>(),
                "approvals": log.approvals,
                "judgements": log.judgements,
                "overrides": log.overrides,
                "rollout": log.rollout,
                "rollbacks": log.rollbacks,
            },
        });
        if !inputs.is_empty() {
            if let Some(map) = predicate.as_object_mut() {
                map.insert("inputAttestations".to_owned(), json!(inputs));
            }
        }
        out.push(Planned {
            path: format!(
                "{ATTESTATIONS_DIR}/{:06}-vsa-{}-{name}.dsse.json",
                e.seq,
                slug(stage.as_str())
            ),
            predicate_type: VSA_V1,
            entry: e.seq,
            stage: stage.to_string(),
            subject: name.to_owned(),
            result,
            statement: Statement::new(subjects(release), VSA_V1, predicate),
        });
    }
    out
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
    fn rollout_steps_carry_their_recorded_deployment_attempts() {
        let at: DateTime<Utc> = "2026-11-26T09:00:00Z".parse().unwrap();
        let stage = promotion_core::StageName::new("canary").unwrap();
        let weight = |p| promotion_core::Percent::new(p).unwrap();
        let event = |body| Event {
            at,
            actor: promotion_core::Actor::Engine,
            request: None,
            body,
        };
        let started = |step, attempt, p| {
            event(EventBody::DeploymentStarted {
                stage: stage.clone(),
                step,
                weight: weight(p),
                attempt,
            })
        };
        let deployed = |step, p| {
            event(EventBody::StepDeployed {
                stage: stage.clone(),
                step,
                weight: weight(p),
            })
        };
        let mut log = StageLog::default();
        // Step 1 in one attempt; step 2 begun twice (the first call's outcome never recorded);
        // step 3 from a log written before attempts were recorded.
        for (seq, e) in [
            (10, started(0, 1, 10)),
            (11, deployed(0, 10)),
            (14, started(1, 1, 50)),
            (15, started(1, 2, 50)),
            (16, deployed(1, 50)),
            (20, deployed(2, 100)),
        ] {
            log.record(seq, &e);
        }
        let summary: Vec<_> = log
            .rollout
            .iter()
            .map(|r| {
                (
                    r["step"].as_u64(),
                    r["attempts"].as_u64(),
                    r["begunLogEntries"].clone(),
                    r["logEntry"].as_u64(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (Some(1), Some(1), json!([10]), Some(11)),
                (Some(2), Some(2), json!([14, 15]), Some(16)),
                (Some(3), None, Value::Null, Some(20)),
            ]
        );
    }

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

    #[test]
    fn test_report_evidence_is_recognised_and_names_tests() {
        let at: DateTime<Utc> = "2026-11-26T09:00:00Z".parse().unwrap();
        let ev = Evidence::new("unit-tests", at, "3 tests, 1 failed").with_data(json!({
            "totals": {"tests": 3, "passed": 2, "failed": 1, "errored": 0, "skipped": 0, "flaky": 1},
            "failed_tests": [{"suite": "s", "classname": "cart", "name": "adds"}, {"suite": "s", "name": "b"}],
            "flaky_tests": ["cart retries"],
            "thresholds": {"min_tests": 1},
        }));
        let view = test_report(&ev).unwrap();
        assert_eq!(view.failed_or_errored, 1);
        assert_eq!(view.flaky, 1);
        assert_eq!(view.failed_tests, vec!["cart adds", "s b"]);
        assert_eq!(view.flaky_tests, vec!["cart retries"]);
        assert!(test_report(&Evidence::new("x", at, "ok")).is_none());
        let scripted = Evidence::new("x", at, "ok").with_data(json!({"scripted": true}));
        assert!(test_report(&scripted).is_none());
    }

    #[test]
    fn policy_digest_is_pinned() {
        // sha256 of {"pipeline":"shop","version":"1"}
        assert_eq!(
            policy_digest("shop", "1"),
            Digest::of(br#"{"pipeline":"shop","version":"1"}"#).to_hex()
        );
    }
}
