//! The input document the policies see: the release, the pipeline and the records of the gates
//! evaluated so far, as JSON.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use promotion_core::machine::{GateRecord, PhaseState};
use promotion_core::{Digest, Outcome, PhaseId, Release};
use serde::Serialize;
use serde_json::Value as Json;

use crate::{GateContext, GateError};

#[derive(Serialize)]
pub(super) struct Input<'a> {
    release: &'a Release,
    pipeline: PipelineInput<'a>,
    stage: &'a str,
    phase: PhaseId,
    gate: &'a str,
    round: u32,
    stages: BTreeMap<&'a str, StageInput<'a>>,
    gates: Vec<FlatRecord<'a>>,
}

#[derive(Serialize)]
struct PipelineInput<'a> {
    name: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
struct StageInput<'a> {
    status: &'static str,
    step: u32,
    entry: BTreeMap<&'a str, RecordInput<'a>>,
    analysis: BTreeMap<&'a str, RecordInput<'a>>,
    verification: BTreeMap<&'a str, RecordInput<'a>>,
}

#[derive(Serialize, Clone, Copy)]
pub(super) struct RecordInput<'a> {
    /// The outcome's own serialisation (the audit log's): `outcome`, plus `message` for errors
    /// and `retry_after_ms` for pending gates.
    #[serde(flatten)]
    outcome: &'a Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence_digest: Option<&'a Digest>,
    facts: &'a BTreeMap<String, String>,
    round: u32,
    at: DateTime<Utc>,
    satisfied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    overridden_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    judged: Option<Judged<'a>>,
}

#[derive(Serialize, Clone, Copy)]
struct Judged<'a> {
    by: &'a str,
    pass: bool,
}

#[derive(Serialize)]
pub(super) struct FlatRecord<'a> {
    stage: &'a str,
    phase: PhaseId,
    gate: &'a str,
    #[serde(flatten)]
    record: RecordInput<'a>,
}

impl<'a> RecordInput<'a> {
    fn new(record: &'a GateRecord) -> Self {
        RecordInput {
            outcome: record.outcome(),
            evidence_digest: record.evidence_digest(),
            facts: record.facts(),
            round: record.round(),
            at: record.at(),
            satisfied: record.is_satisfied(),
            overridden_by: record.overridden_by().map(|p| p.as_str()),
            judged: record.judged().map(|(by, pass)| Judged {
                by: by.as_str(),
                pass,
            }),
        }
    }
}

/// The records of one phase by gate name; also appends them, flattened, to `gates`.
pub(super) fn records<'a>(
    stage: &'a str,
    phase: PhaseId,
    ps: &'a PhaseState,
    gates: &mut Vec<FlatRecord<'a>>,
) -> BTreeMap<&'a str, RecordInput<'a>> {
    let mut out = BTreeMap::new();
    for (gate, record) in ps.gates() {
        let record = RecordInput::new(record);
        gates.push(FlatRecord {
            stage,
            phase,
            gate: gate.as_str(),
            record,
        });
        out.insert(gate.as_str(), record);
    }
    out
}

pub(super) fn input_document(ctx: &GateContext<'_>) -> Result<Json, GateError> {
    let mut stages = BTreeMap::new();
    let mut gates = Vec::new();
    for (stage, st) in ctx.state.stages() {
        let stage = stage.as_str();
        let entry = records(stage, PhaseId::Entry, st.entry(), &mut gates);
        let analysis = records(
            stage,
            PhaseId::Analysis { step: st.step() },
            st.analysis(),
            &mut gates,
        );
        let verification = records(stage, PhaseId::Verification, st.verification(), &mut gates);
        stages.insert(
            stage,
            StageInput {
                status: st.status().label(),
                step: st.step(),
                entry,
                analysis,
                verification,
            },
        );
    }
    let input = Input {
        release: ctx.release,
        pipeline: PipelineInput {
            name: ctx.pipeline.as_str(),
            version: ctx.pipeline_version,
        },
        stage: ctx.stage.as_str(),
        phase: ctx.phase,
        gate: ctx.gate.as_str(),
        round: ctx.round,
        stages,
        gates,
    };
    serde_json::to_value(&input)
        .map_err(|e| GateError::other(format!("cannot serialise the policy input: {e}")))
}
