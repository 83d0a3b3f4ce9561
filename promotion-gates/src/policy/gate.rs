//! The [`PolicyGate`] at evaluation time: the input document evaluated against the package and
//! the verdict from its decision rules.

use std::fmt;

use async_trait::async_trait;
use promotion_core::Digest;
use regorus::Value;

use crate::{Evidence, Gate, GateContext, GateError, GateKind, Verdict};

use crate::input::invalid_input;

use super::{
    classify, finding, input_document, plural, quote, rego_error, value_kind, Decision,
    EvidenceData, LoadedFile, PolicyGateBuilder, Severity,
};

/// A gate that evaluates Rego policies, in Conftest conventions, against the release and the
/// evidence gathered so far.
///
/// See the [module documentation](super) for the conventions, the input document and the
/// evidence.
///
/// ```
/// use promotion_core::testing::GateProbe;
/// use promotion_gates::policy::PolicyGate;
/// use promotion_gates::Verdict;
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(
///     dir.path().join("release.rego"),
///     r#"package main
///
/// deny contains msg if {
///     some artifact in input.release.artifacts
///     not startswith(object.get(artifact, "uri", ""), "registry.example.com/")
///     msg := sprintf("artifact `%s` is not from registry.example.com", [artifact.name])
/// }
///
/// warn contains "release has no `team` label" if not input.release.labels.team
/// "#,
/// )?;
///
/// let gate = PolicyGate::builder()
///     .name("release-policy")
///     .bundle(dir.path())
///     .build()?;
///
/// // The probe's sample release has one artifact, `image`, with no location recorded.
/// let probe = GateProbe::new().stage("compliance");
/// let verdict = futures::executor::block_on(probe.evaluate(&gate))?;
/// let Verdict::Fail(evidence) = verdict else {
///     panic!("expected a failure, got {verdict:?}");
/// };
/// assert_eq!(
///     evidence.summary,
///     "policy `main` denied the release (1 failure, 1 warning): \
///      artifact `image` is not from registry.example.com"
/// );
/// assert_eq!(evidence.facts["policy_failures"], "1");
/// // The policy file and the input document are recorded by digest.
/// assert_eq!(evidence.attachments.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct PolicyGate {
    pub(super) name: String,
    pub(super) package: String,
    pub(super) query: String,
    pub(super) package_files: Vec<String>,
    pub(super) engine: regorus::Engine,
    pub(super) rego_v0: bool,
    pub(super) policies: Vec<LoadedFile>,
    pub(super) data: Vec<LoadedFile>,
    pub(super) policy_set: Digest,
}

impl fmt::Debug for PolicyGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyGate")
            .field("name", &self.name)
            .field("package", &self.package)
            .field("rego_v0", &self.rego_v0)
            .field("policies", &self.policies)
            .field("data", &self.data)
            .field("policy_set", &self.policy_set)
            .finish_non_exhaustive()
    }
}

impl PolicyGate {
    /// Starts configuring a gate: name `policy`, package `main`, Rego v1, no policies yet.
    pub fn builder() -> PolicyGateBuilder {
        PolicyGateBuilder::default()
    }
    /// The package whose rules decide.
    pub fn package(&self) -> &str {
        &self.package
    }
    /// The policy files, in load order, with their digests and packages.
    pub fn policies(&self) -> &[LoadedFile] {
        &self.policies
    }
    /// The data documents, in load order, with their digests and mount points.
    pub fn data_documents(&self) -> &[LoadedFile] {
        &self.data
    }
    /// A digest over the path and digest of every policy file and data document: changes
    /// whenever any of them does.
    pub fn policy_set_digest(&self) -> Digest {
        self.policy_set
    }

    fn package_what(&self) -> String {
        self.package_files.join(", ")
    }

    /// Sorts the package's decision rules into failures and warnings.
    fn decide(&self, package: &Value) -> Result<Decision, GateError> {
        let invalid = |message: String| invalid_input(self.package_what(), None, message);
        let rules = match package {
            Value::Object(rules) => rules.as_ref(),
            Value::Undefined => {
                return Err(GateError::Misconfigured(format!(
                    "package `{}` is undefined when evaluated",
                    self.package
                )))
            }
            other => {
                return Err(invalid(format!(
                    "`{}` evaluated to {}, not a package of rules",
                    self.query,
                    value_kind(other)
                )))
            }
        };
        let mut decision = Decision::default();
        for (key, value) in rules {
            let Value::String(rule) = key else { continue };
            let Some(severity) = classify(rule) else {
                continue;
            };
            let path = format!("{}.{rule}", self.query);
            let items: Vec<&Value> = match value {
                Value::Set(items) => items.iter().collect(),
                Value::Array(items) => items.iter().collect(),
                other => {
                    return Err(invalid(format!(
                    "rule `{path}` must be a set of messages (`{rule} contains msg if {{ … }}`), \
                         but it is {}: {other}",
                    value_kind(other)
                )))
                }
            };
            decision.rules.insert(rule.to_string(), items.len());
            for item in items {
                let finding = finding(rule, item)
                    .map_err(|problem| invalid(format!("rule `{path}` yielded {problem}")))?;
                match severity {
                    Severity::Failure => decision.failures.push(finding),
                    Severity::Warning => decision.warnings.push(finding),
                }
            }
        }
        if decision.rules.is_empty() {
            return Err(GateError::Misconfigured(format!(
                "package `{}` ({}) has no deny, violation or warn rule, so it decides nothing",
                self.package,
                self.package_what()
            )));
        }
        Ok(decision)
    }

    fn summary(&self, decision: &Decision) -> String {
        let failures = decision.failures.len();
        let warnings = decision.warnings.len();
        let counts = format!(
            "{failures} failure{}, {warnings} warning{}",
            plural(failures),
            plural(warnings)
        );
        if failures > 0 {
            format!(
                "policy `{}` denied the release ({counts}): {}",
                self.package,
                quote(&decision.failures)
            )
        } else if warnings > 0 {
            format!(
                "policy `{}` passed with {warnings} warning{}: {}",
                self.package,
                plural(warnings),
                quote(&decision.warnings)
            )
        } else {
            let rules = decision.rules.len();
            format!(
                "policy `{}` passed: {rules} rule{} checked, no failures or warnings",
                self.package,
                plural(rules)
            )
        }
    }
}

#[async_trait]
impl Gate for PolicyGate {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> GateKind {
        GateKind::Compliance
    }

    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let input = input_document(ctx)?;
        let input_bytes = promotion_core::canonical_json(&input)
            .map_err(|e| GateError::other(format!("cannot serialise the policy input: {e}")))?;
        let input_value: Value = serde_json::from_value(input)
            .map_err(|e| GateError::other(format!("cannot convert the policy input: {e}")))?;

        let mut engine = self.engine.clone();
        engine.set_input(input_value);
        let results = engine
            .eval_query(self.query.clone(), false)
            .map_err(|e| rego_error(&e, &self.package_what()))?;
        let package = results
            .result
            .first()
            .and_then(|r| r.expressions.first())
            .map_or(Value::Undefined, |e| e.value.clone());
        let decision = self.decide(&package)?;

        let summary = self.summary(&decision);
        let failed = !decision.failures.is_empty();
        let data = serde_json::to_value(EvidenceData {
            package: &self.package,
            rego_version: if self.rego_v0 { "v0" } else { "v1" },
            policy_set: &self.policy_set,
            policies: &self.policies,
            data_documents: &self.data,
            input_digest: Digest::of(&input_bytes),
            rules: &decision.rules,
            failures: &decision.failures,
            warnings: &decision.warnings,
        })
        .map_err(|e| GateError::other(format!("cannot serialise the evidence: {e}")))?;
        let mut evidence = Evidence::new(self.name.clone(), ctx.now(), summary)
            .with_data(data)
            .with_fact("policy_set", self.policy_set.to_string())
            .with_fact("policy_failures", decision.failures.len().to_string())
            .with_fact("policy_warnings", decision.warnings.len().to_string());
        evidence.attachments.extend(
            self.policies
                .iter()
                .chain(&self.data)
                .map(LoadedFile::attachment),
        );
        let evidence = evidence.with_attachment("input.json", &input_bytes);
        Ok(Verdict::pass_if(!failed, evidence))
    }
}
