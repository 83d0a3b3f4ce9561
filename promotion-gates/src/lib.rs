//! # promotion-gates
//!
//! Reference gates for promotion pipelines: process and test runners, test reports and
//! performance budgets, Rego policies, vulnerability reports, configuration baselines, change
//! records, deployment windows, reproducibility, Prometheus metrics and canary analysis,
//! webhooks, and artifact signatures with provenance.
//!
//! Every gate reads real inputs, records the digest of everything it read as evidence, and
//! turns malformed input into a [`GateError`] naming the file and the problem — never a pass.
//!
//! | gate | module |
//! |---|---|
//! | [`ProcessGate`]: a real command as an isolated runner | [`process`] |
//! | [`SecretSource`](secrets::SecretSource): secrets by name for the process and webhook gates | [`secrets`] |
//! | [`TestReportGate`]: JUnit reports | [`testreport`] |
//! | [`PerfBudgetGate`]: benchmark budgets against a baseline run | [`perfbudget`] |
//! | [`PolicyGate`]: Rego policies, Conftest conventions | [`policy`] |
//! | [`VulnGate`]: SARIF and cargo-audit findings, expiring accepted risks | [`vuln`] |
//! | [`ConfigBaselineGate`]: file digests against manifests | [`baseline`] |
//! | [`ReproducibilityGate`]: artifact digests against an independent second build | [`reproducibility`] |
//! | [`ChangeRecordGate`]: change documentation, the `risk` fact | [`change`] |
//! | [`DeploymentWindowGate`]: windows and freezes in IANA zones | [`window`] |
//! | [`MetricGate`]: Prometheus queries with Argo Rollouts' analysis semantics | [`metrics`] |
//! | [`Prometheus`](prometheus::Prometheus): the HTTP API client of the metric and canary gates | [`prometheus`] |
//! | [`CanaryGate`]: canary vs. baseline, Mann–Whitney U per metric, a score | [`canary`] |
//! | [`WebhookGate`]: an HTTP(S) endpoint decides, HMAC-signed requests | [`webhook`] |
//! | [`SignatureGate`]: DSSE / in-toto signatures, SLSA provenance per artifact | [`signature`] |
//!
//! Layers that wrap any of these gates (timeout, retry, dry run, your own) are in
//! `promotion_core::layer`.
//!
//! This crate depends on `promotion-core` only.

pub mod baseline;
pub mod canary;
pub mod change;
mod input;
pub mod metrics;
pub mod perfbudget;
pub mod policy;
pub mod process;
pub mod prometheus;
pub mod reproducibility;
pub mod secrets;
pub mod signature;
#[cfg(test)]
mod testkit;
pub mod testreport;
pub mod vuln;
pub mod webhook;
pub mod window;

pub use baseline::ConfigBaselineGate;
pub use canary::CanaryGate;
pub use change::ChangeRecordGate;
pub use metrics::MetricGate;
pub use perfbudget::PerfBudgetGate;
pub use policy::PolicyGate;
pub use process::ProcessGate;
pub use reproducibility::ReproducibilityGate;
pub use signature::SignatureGate;
pub use testreport::TestReportGate;
pub use vuln::VulnGate;
pub use webhook::WebhookGate;
pub use window::DeploymentWindowGate;

pub use promotion_core::{Evidence, Gate, GateContext, GateError, GateKind, Verdict};
