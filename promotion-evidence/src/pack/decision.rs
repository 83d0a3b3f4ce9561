//! Stage-decision attestations: what each decision event decided, what happened in the stage
//! up to it (the decision field), and the SLSA Verification Summary statement it implies.
//!
//! Every `match` over events here is on [`EventBody::event_kind`] without a catch-all arm, so a
//! new event kind does not compile until it is placed: recorded in the decision field, a
//! decision, or neither.

use std::collections::{BTreeMap, BTreeSet};

use promotion_core::{
    Digest, Event, EventBody, EventKind, GateName, Group, PhaseId, Principal, PrincipalId, Release,
    ReleaseId, StageName,
};
use serde::Serialize;

use crate::intoto::{ResourceDescriptor, Statement, VSA_V1};

use super::{slug, subjects, time, Entry, Planned, Predicate, StatementOptions, ATTESTATIONS_DIR};

/// What a decision event decided: (decision, passed, reason); `None` for an event that decides
/// nothing.
fn decision(
    body: &EventBody,
    rollback_reason: Option<&String>,
) -> Option<(&'static str, bool, String)> {
    Some(match body.event_kind() {
        EventKind::StagePromoted => ("promoted", true, "promoted".to_owned()),
        EventKind::PhaseFailed => {
            let EventBody::PhaseFailed { reason, .. } = body else {
                return None;
            };
            ("failed", false, reason.to_string())
        }
        EventKind::DeploymentFailed => {
            let EventBody::DeploymentFailed {
                step,
                weight,
                error,
                ..
            } = body
            else {
                return None;
            };
            (
                "deployment_failed",
                false,
                format!("deployment of step {} ({weight}) failed: {error}", step + 1),
            )
        }
        EventKind::ApprovalRejected => {
            let EventBody::ApprovalRejected {
                principal, comment, ..
            } = body
            else {
                return None;
            };
            (
                "rejected",
                false,
                format!("rejected by {}: {comment}", principal.id),
            )
        }
        EventKind::StageAborted => {
            let EventBody::StageAborted {
                principal, reason, ..
            } = body
            else {
                return None;
            };
            (
                "aborted",
                false,
                format!("aborted by {}: {reason}", principal.id),
            )
        }
        EventKind::RolledBack => (
            "rolled_back",
            false,
            format!(
                "rolled back: {}",
                rollback_reason.map_or("no reason recorded", String::as_str)
            ),
        ),
        EventKind::Registered
        | EventKind::PipelineVersionAdopted
        | EventKind::StageReady
        | EventKind::StageStarted
        | EventKind::GateEvaluated
        | EventKind::PhaseWaiting
        | EventKind::PhasePaused
        | EventKind::PhasePassed
        | EventKind::GateJudged
        | EventKind::GateOverridden
        | EventKind::ApprovalRequested
        | EventKind::ApprovalGiven
        | EventKind::StageScheduled
        | EventKind::DeploymentStarted
        | EventKind::StepDeployed
        | EventKind::StepCompleted
        | EventKind::VerificationStarted
        | EventKind::SoakStarted
        | EventKind::RollbackStarted
        | EventKind::RollbackFailed
        // Lives in the store's security stream, never in a release's.
        | EventKind::AttemptRefused => return None,
    })
}

/// The pipeline version an event puts in force, if it is one that does.
fn pipeline_version(body: &EventBody) -> Option<&String> {
    match body.event_kind() {
        EventKind::Registered => {
            let EventBody::Registered {
                pipeline_version, ..
            } = body
            else {
                return None;
            };
            Some(pipeline_version)
        }
        EventKind::PipelineVersionAdopted => {
            let EventBody::PipelineVersionAdopted { to, .. } = body else {
                return None;
            };
            Some(to)
        }
        EventKind::StageReady
        | EventKind::StageStarted
        | EventKind::GateEvaluated
        | EventKind::PhaseWaiting
        | EventKind::PhasePaused
        | EventKind::PhasePassed
        | EventKind::PhaseFailed
        | EventKind::GateJudged
        | EventKind::GateOverridden
        | EventKind::ApprovalRequested
        | EventKind::ApprovalGiven
        | EventKind::ApprovalRejected
        | EventKind::StageScheduled
        | EventKind::DeploymentStarted
        | EventKind::StepDeployed
        | EventKind::DeploymentFailed
        | EventKind::StepCompleted
        | EventKind::VerificationStarted
        | EventKind::SoakStarted
        | EventKind::StagePromoted
        | EventKind::RollbackStarted
        | EventKind::RollbackFailed
        | EventKind::RolledBack
        | EventKind::StageAborted
        | EventKind::AttemptRefused => None,
    }
}

/// A gate's latest evaluation in the stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct GateRecord {
    phase: PhaseId,
    gate: GateName,
    outcome: String,
    round: u32,
    /// Attempts of the latest evaluation.
    attempts: u32,
    /// Evaluations of this gate in this phase so far.
    evaluations: u64,
    at: String,
    evidence_digest: Option<Digest>,
    summary: Option<String>,
    producer: Option<String>,
    attachments: Option<Vec<AttachmentRecord>>,
    log_entry: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct AttachmentRecord {
    name: String,
    digest: Digest,
    size: u64,
}

/// An approval or a rejection.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ApprovalRecord {
    /// `approved` or `rejected`.
    decision: &'static str,
    principal: PrincipalId,
    groups: BTreeSet<Group>,
    at: String,
    comment: String,
    /// What an approval was bound to; absent for a rejection.
    #[serde(skip_serializing_if = "Option::is_none")]
    bound_to: Option<BoundTo>,
    log_entry: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct BoundTo {
    release: ReleaseId,
    evidence_digest: Digest,
    pipeline_version: String,
}

/// A person's judgement of a gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct JudgementRecord {
    phase: PhaseId,
    gate: GateName,
    pass: bool,
    principal: PrincipalId,
    groups: BTreeSet<Group>,
    at: String,
    comment: String,
    log_entry: u64,
}

/// A break-glass override.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct OverrideRecord {
    phase: PhaseId,
    gate: GateName,
    principal: PrincipalId,
    groups: BTreeSet<Group>,
    at: String,
    justification: String,
    /// The outcome that was overridden.
    overridden: String,
    log_entry: u64,
}

/// A rollout step deployed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct RolloutRecord {
    /// From 1.
    step: u32,
    weight: u8,
    at: String,
    log_entry: u64,
    /// Deployer calls begun for the step; absent in logs written before attempts were
    /// recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<usize>,
    /// The log entries that began them.
    #[serde(skip_serializing_if = "Option::is_none")]
    begun_log_entries: Option<Vec<u64>>,
}

/// A rollback started.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct RollbackRecord {
    started: String,
    reason: String,
    /// The actor that started it.
    by: String,
    log_entry: u64,
}

/// What happened in one stage so far, for the decision field.
#[derive(Default)]
struct StageLog {
    entries: Vec<u64>,
    gates: BTreeMap<(PhaseId, String), GateRecord>,
    evaluations: BTreeMap<(PhaseId, String), u64>,
    approvals: Vec<ApprovalRecord>,
    judgements: Vec<JudgementRecord>,
    overrides: Vec<OverrideRecord>,
    rollout: Vec<RolloutRecord>,
    /// The `deployment_started` entries since the last deployment outcome: (step, log entry).
    begun: Vec<(u32, u64)>,
    rollbacks: Vec<RollbackRecord>,
    rollback_reason: Option<String>,
}

impl StageLog {
    fn record(&mut self, seq: u64, event: &Event) {
        self.entries.push(seq);
        match event.body.event_kind() {
            EventKind::GateEvaluated => self.evaluated(seq, event),
            EventKind::ApprovalGiven => self.approved(seq, event),
            EventKind::ApprovalRejected => self.rejected(seq, event),
            EventKind::GateJudged => self.judged(seq, event),
            EventKind::GateOverridden => self.overridden(seq, event),
            EventKind::DeploymentStarted => {
                if let EventBody::DeploymentStarted { step, .. } = &event.body {
                    self.begun.push((*step, seq));
                }
            }
            EventKind::StepDeployed => self.deployed(seq, event),
            EventKind::DeploymentFailed => self.begun.clear(),
            EventKind::RollbackStarted => {
                if let EventBody::RollbackStarted { reason, .. } = &event.body {
                    self.rollback_reason = Some(reason.clone());
                    self.rollbacks.push(RollbackRecord {
                        started: time(event.at),
                        reason: reason.clone(),
                        by: event.actor.to_string(),
                        log_entry: seq,
                    });
                }
            }
            // In the stage's log entries only: decisions are described by the predicate
            // itself, and the rest is progress no part of the decision field lists.
            EventKind::Registered
            | EventKind::PipelineVersionAdopted
            | EventKind::StageReady
            | EventKind::StageStarted
            | EventKind::PhaseWaiting
            | EventKind::PhasePaused
            | EventKind::PhasePassed
            | EventKind::PhaseFailed
            | EventKind::ApprovalRequested
            | EventKind::StageScheduled
            | EventKind::StepCompleted
            | EventKind::VerificationStarted
            | EventKind::SoakStarted
            | EventKind::StagePromoted
            | EventKind::RollbackFailed
            | EventKind::RolledBack
            | EventKind::StageAborted
            | EventKind::AttemptRefused => {}
        }
    }

    fn evaluated(&mut self, seq: u64, event: &Event) {
        let EventBody::GateEvaluated {
            phase,
            round,
            gate,
            outcome,
            attempts,
            evidence_digest,
            evidence,
            ..
        } = &event.body
        else {
            return;
        };
        let key = (*phase, gate.to_string());
        let n = self.evaluations.entry(key.clone()).or_insert(0);
        *n += 1;
        let evaluations = *n;
        self.gates.insert(
            key,
            GateRecord {
                phase: *phase,
                gate: gate.clone(),
                outcome: outcome.to_string(),
                round: *round,
                attempts: *attempts,
                evaluations,
                at: time(event.at),
                evidence_digest: *evidence_digest,
                summary: evidence.as_ref().map(|e| e.summary.clone()),
                producer: evidence.as_ref().map(|e| e.producer.clone()),
                attachments: evidence.as_ref().map(|e| {
                    e.attachments
                        .iter()
                        .map(|a| AttachmentRecord {
                            name: a.name.clone(),
                            digest: a.digest,
                            size: a.size,
                        })
                        .collect()
                }),
                log_entry: seq,
            },
        );
    }

    fn approved(&mut self, seq: u64, event: &Event) {
        let EventBody::ApprovalGiven {
            principal,
            comment,
            binding,
            ..
        } = &event.body
        else {
            return;
        };
        let bound_to = BoundTo {
            release: binding.release,
            evidence_digest: binding.evidence_digest,
            pipeline_version: binding.pipeline_version.clone(),
        };
        self.approval("approved", principal, comment, Some(bound_to), seq, event);
    }

    fn rejected(&mut self, seq: u64, event: &Event) {
        let EventBody::ApprovalRejected {
            principal, comment, ..
        } = &event.body
        else {
            return;
        };
        self.approval("rejected", principal, comment, None, seq, event);
    }

    fn approval(
        &mut self,
        decision: &'static str,
        principal: &Principal,
        comment: &str,
        bound_to: Option<BoundTo>,
        seq: u64,
        event: &Event,
    ) {
        self.approvals.push(ApprovalRecord {
            decision,
            principal: principal.id.clone(),
            groups: principal.groups.clone(),
            at: time(event.at),
            comment: comment.to_owned(),
            bound_to,
            log_entry: seq,
        });
    }

    fn judged(&mut self, seq: u64, event: &Event) {
        let EventBody::GateJudged {
            phase,
            gate,
            pass,
            principal,
            comment,
            ..
        } = &event.body
        else {
            return;
        };
        self.judgements.push(JudgementRecord {
            phase: *phase,
            gate: gate.clone(),
            pass: *pass,
            principal: principal.id.clone(),
            groups: principal.groups.clone(),
            at: time(event.at),
            comment: comment.clone(),
            log_entry: seq,
        });
    }

    fn overridden(&mut self, seq: u64, event: &Event) {
        let EventBody::GateOverridden {
            phase,
            gate,
            principal,
            justification,
            overridden,
            ..
        } = &event.body
        else {
            return;
        };
        self.overrides.push(OverrideRecord {
            phase: *phase,
            gate: gate.clone(),
            principal: principal.id.clone(),
            groups: principal.groups.clone(),
            at: time(event.at),
            justification: justification.clone(),
            overridden: overridden.to_string(),
            log_entry: seq,
        });
    }

    fn deployed(&mut self, seq: u64, event: &Event) {
        let EventBody::StepDeployed { step, weight, .. } = &event.body else {
            return;
        };
        // Each deployer call is recorded as begun before it is made; more than one means an
        // earlier call's outcome was never recorded. Logs written before attempts were
        // recorded have none.
        let begun: Vec<u64> = self
            .begun
            .drain(..)
            .filter(|(s, _)| s == step)
            .map(|(_, entry)| entry)
            .collect();
        let recorded = !begun.is_empty();
        self.rollout.push(RolloutRecord {
            step: step + 1,
            weight: weight.get(),
            at: time(event.at),
            log_entry: seq,
            attempts: recorded.then_some(begun.len()),
            begun_log_entries: recorded.then_some(begun),
        });
    }
}

/// The pipeline and version a policy URI names; its canonical JSON's SHA-256 is the policy
/// digest.
#[derive(Serialize)]
struct PolicyRef<'a> {
    pipeline: &'a str,
    version: &'a str,
}

/// The SHA-256 (hex) of the canonical JSON `{"pipeline": …, "version": …}`.
pub(crate) fn policy_digest(pipeline: &str, version: &str) -> String {
    promotion_core::canonical_json(&PolicyRef { pipeline, version })
        .map(|bytes| Digest::of(&bytes).to_hex())
        .unwrap_or_default()
}

/// The SLSA Verification Summary v1 predicate of a stage decision, as a pack writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VsaPredicate {
    verifier: Verifier,
    time_verified: String,
    resource_uri: String,
    policy: Policy,
    /// `PASSED` or `FAILED`.
    verification_result: &'static str,
    verified_levels: Vec<&'static str>,
    slsa_version: &'static str,
    /// Under the [`DECISION_FIELD`](super::DECISION_FIELD) URI (checked by a unit test).
    #[serde(rename = "https://example.invalid/promotion/evidence/decision/v1")]
    decision: Decision,
    /// The stage's test-result attestations; absent when it has none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    input_attestations: Vec<ResourceDescriptor>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Verifier {
    id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Policy {
    uri: String,
    digest: Sha256,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Sha256 {
    sha256: String,
}

/// The decision in full: the extension field of a pack's VSA.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct Decision {
    release: ReleaseRef,
    pipeline: String,
    pipeline_version: String,
    stage: StageName,
    decision: &'static str,
    reason: String,
    decided_by: String,
    log_entries: Vec<u64>,
    decision_entry: u64,
    gates: Vec<GateRecord>,
    approvals: Vec<ApprovalRecord>,
    judgements: Vec<JudgementRecord>,
    overrides: Vec<OverrideRecord>,
    rollout: Vec<RolloutRecord>,
    rollbacks: Vec<RollbackRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct ReleaseRef {
    id: ReleaseId,
    name: String,
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
    let mut provenance = false;
    for e in entries {
        let event = e.event();
        provenance |= super::levels::verifies_provenance(&event.body);
        if let Some(v) = pipeline_version(&event.body) {
            version.clone_from(v);
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
        let input_attestations: Vec<ResourceDescriptor> = test_results
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
        let predicate = VsaPredicate {
            verifier: Verifier {
                id: options.verifier_id.clone(),
            },
            time_verified: time(event.at),
            resource_uri: options.uri(pipeline, "stages", stage.as_str()),
            policy: Policy {
                uri: options.uri(pipeline, "versions", &version),
                digest: Sha256 {
                    sha256: policy_digest(pipeline, &version),
                },
            },
            verification_result: result,
            verified_levels: options.verified_levels.values(passed, provenance),
            slsa_version: "1.0",
            decision: Decision {
                release: ReleaseRef {
                    id: release.id(),
                    name: release.name().to_owned(),
                },
                pipeline: pipeline.to_owned(),
                pipeline_version: version.clone(),
                stage: stage.clone(),
                decision: name,
                reason,
                decided_by: event.actor.to_string(),
                log_entries: log.entries.clone(),
                decision_entry: e.seq,
                gates: log.gates.values().cloned().collect(),
                approvals: log.approvals.clone(),
                judgements: log.judgements.clone(),
                overrides: log.overrides.clone(),
                rollout: log.rollout.clone(),
                rollbacks: log.rollbacks.clone(),
            },
            input_attestations,
        };
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
            statement: Statement::new(
                subjects(release),
                VSA_V1,
                Predicate::Decision(Box::new(predicate)),
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use serde_json::{json, Value};

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
        let rollout = serde_json::to_value(&log.rollout).unwrap();
        let summary: Vec<_> = rollout
            .as_array()
            .unwrap()
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
    fn policy_digest_is_pinned() {
        // sha256 of {"pipeline":"shop","version":"1"}
        assert_eq!(
            policy_digest("shop", "1"),
            Digest::of(br#"{"pipeline":"shop","version":"1"}"#).to_hex()
        );
    }

    #[test]
    fn the_decision_is_written_under_the_decision_field() {
        // The serde attribute needs a literal; it must be the documented constant.
        let value = serde_json::to_value(VsaPredicate {
            verifier: Verifier { id: "v".into() },
            time_verified: String::new(),
            resource_uri: String::new(),
            policy: Policy {
                uri: String::new(),
                digest: Sha256 {
                    sha256: String::new(),
                },
            },
            verification_result: "PASSED",
            verified_levels: vec![super::super::STAGE_PROMOTED_LEVEL],
            slsa_version: "1.0",
            decision: Decision {
                release: ReleaseRef {
                    id: Digest::of(b"r").to_string().parse().unwrap(),
                    name: "r".into(),
                },
                pipeline: "p".into(),
                pipeline_version: "1".into(),
                stage: StageName::new("s").unwrap(),
                decision: "promoted",
                reason: "promoted".into(),
                decided_by: "engine".into(),
                log_entries: vec![1],
                decision_entry: 1,
                gates: Vec::new(),
                approvals: Vec::new(),
                judgements: Vec::new(),
                overrides: Vec::new(),
                rollout: Vec::new(),
                rollbacks: Vec::new(),
            },
            input_attestations: Vec::new(),
        })
        .unwrap();
        assert_eq!(value[super::super::DECISION_FIELD]["decisionEntry"], 1);
        assert!(value.get("inputAttestations").is_none());
    }
}
