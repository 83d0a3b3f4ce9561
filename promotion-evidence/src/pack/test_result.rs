//! Test-result attestations: which gate evaluations carry test-report evidence (the data
//! `promotion_gates::TestReportGate` records) and the in-toto test result statement each implies.

use std::collections::BTreeMap;

use promotion_core::{EventBody, Evidence, Outcome, Release};
use serde::Serialize;
use serde_json::Value;

use crate::attachments;
use crate::intoto::{ResourceDescriptor, Statement, TEST_RESULT_V0_1};

use super::{slug, subjects, time, Entry, Planned, Predicate, ATTACHMENTS_DIR, ATTESTATIONS_DIR};

/// The in-toto test result predicate v0.1, as a pack writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TestResultPredicate {
    /// `PASSED`, `WARNED` or `FAILED`.
    result: &'static str,
    /// The gate (annotated), then each report file it read.
    configuration: Vec<ResourceDescriptor<GateAnnotations>>,
    /// The flaky tests.
    warned_tests: Vec<String>,
    failed_tests: Vec<String>,
}

/// How the gate's configuration entry is annotated: what the log says about the evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GateAnnotations {
    producer: String,
    observed_at: String,
    summary: String,
    /// The gate's thresholds, as its evidence records them.
    thresholds: Value,
    round: u32,
    log_entry: u64,
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
            evidence_digest,
            ..
        } = &e.event().body
        else {
            continue;
        };
        let passed = match outcome {
            Outcome::Pass => true,
            Outcome::Fail => false,
            // Not a verdict on the tests.
            Outcome::Inconclusive | Outcome::Pending { .. } | Outcome::Error { .. } => continue,
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
            // The digest the log recorded when the gate reported (what approvals bind to):
            // recomputed from the evidence as read back it can differ, since RFC 8785 entries
            // keep one number type (an evidence `1.0` reads back as `1`).
            digest: BTreeMap::from([(
                "sha256".to_owned(),
                evidence_digest
                    .unwrap_or_else(|| evidence.digest())
                    .to_hex(),
            )]),
            annotations: Some(GateAnnotations {
                producer: evidence.producer.clone(),
                observed_at: time(evidence.observed_at),
                summary: evidence.summary.clone(),
                thresholds: report.thresholds,
                round: *round,
                log_entry: e.seq,
            }),
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
        let predicate = Predicate::TestResult(TestResultPredicate {
            result,
            configuration,
            warned_tests: report.flaky_tests,
            failed_tests: report.failed_tests,
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use serde_json::json;

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
}
