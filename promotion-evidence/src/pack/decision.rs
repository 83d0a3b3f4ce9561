//! Stage-decision attestations: what each decision event decided, what happened in the stage
//! up to it (the decision field), and the SLSA Verification Summary statement it implies.

use std::collections::BTreeMap;

use promotion_core::{Digest, Event, EventBody, PhaseId, Release, StageName};
use serde_json::{json, Value};

use crate::intoto::{ResourceDescriptor, Statement, VSA_V1};

use super::{
    slug, subjects, time, Entry, Planned, StatementOptions, ATTESTATIONS_DIR, DECISION_FIELD,
    PROMOTED_LEVEL,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

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
    fn policy_digest_is_pinned() {
        // sha256 of {"pipeline":"shop","version":"1"}
        assert_eq!(
            policy_digest("shop", "1"),
            Digest::of(br#"{"pipeline":"shop","version":"1"}"#).to_hex()
        );
    }
}
