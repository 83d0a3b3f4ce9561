//! The kinds that judge what a build produced: test reports, performance results, policies,
//! vulnerability reports, configuration baselines, reproducibility manifests and signed
//! attestations.

use std::collections::BTreeMap;
use std::path::PathBuf;

use promotion_gates::baseline::{FailOn, ManifestFormat};
use promotion_gates::signature::EnvelopeDir;
use promotion_gates::testreport::Direction;
use promotion_gates::vuln::Severity;
use promotion_gates::{
    ConfigBaselineGate, PerfBudgetGate, PolicyGate, ReproducibilityGate, SignatureGate,
    TestReportGate, VulnGate,
};
use serde::Deserialize;

use super::{built, Built};
use crate::error::ConfigError;
use crate::registry::{BuildContext, Settings};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestReportSettings {
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    globs: Vec<String>,
    #[serde(default)]
    min_pass_rate: Option<f64>,
    #[serde(default)]
    max_skipped: Option<u64>,
    #[serde(default)]
    require_suites: Vec<String>,
    #[serde(default)]
    min_tests: Option<u64>,
    #[serde(default)]
    failed_list_limit: Option<usize>,
}

/// `kind = "test-report"`: [`TestReportGate`].
pub fn test_report(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: TestReportSettings = settings.deserialize()?;
    let mut b = TestReportGate::builder();
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    for f in s.files {
        b = b.file(ctx.resolve(f));
    }
    for g in s.globs {
        b = b.glob_in(ctx.base_dir(), g);
    }
    if let Some(r) = s.min_pass_rate {
        b = b.min_pass_rate(r);
    }
    if let Some(m) = s.max_skipped {
        b = b.max_skipped(m);
    }
    if !s.require_suites.is_empty() {
        b = b.require_suites(s.require_suites);
    }
    if let Some(m) = s.min_tests {
        b = b.min_tests(m);
    }
    if let Some(l) = s.failed_list_limit {
        b = b.failed_list_limit(l);
    }
    built(settings, b.build())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Budget {
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max_regression: Option<f64>,
    #[serde(default)]
    direction: Option<Direction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PerfSettings {
    results: String,
    #[serde(default)]
    baseline: Option<String>,
    budgets: BTreeMap<String, Budget>,
}

/// `kind = "perf-budget"`: [`PerfBudgetGate`].
pub fn perf_budget(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: PerfSettings = settings.deserialize()?;
    let mut b = PerfBudgetGate::builder(ctx.resolve(&s.results));
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    if let Some(base) = &s.baseline {
        b = b.baseline(ctx.resolve(base));
    }
    for (figure, budget) in s.budgets {
        if let Some(m) = budget.max {
            b = b.max(figure.clone(), m);
        }
        if let Some(m) = budget.min {
            b = b.min(figure.clone(), m);
        }
        match (budget.max_regression, budget.direction) {
            (Some(p), Some(d)) => b = b.max_regression(figure, p, d),
            (Some(_), None) => {
                return Err(settings.error(
                    Some("budgets"),
                    format!(
                        "figure `{figure}` sets `max_regression` without a `direction` \
                         (`lower_is_better` or `higher_is_better`)"
                    ),
                ))
            }
            (None, _) => {}
        }
    }
    built(settings, b.build())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySettings {
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    bundle: Option<String>,
    #[serde(default)]
    data: Vec<String>,
    #[serde(default)]
    package: Option<String>,
    #[serde(default)]
    rego_v0: bool,
}

/// `kind = "policy"`: [`PolicyGate`].
pub fn policy(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: PolicySettings = settings.deserialize()?;
    let mut b = PolicyGate::builder().rego_v0(s.rego_v0);
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    if let Some(p) = s.package {
        b = b.package(p);
    }
    for p in s.policies {
        b = b.policy_file(ctx.resolve(p));
    }
    if let Some(d) = s.bundle {
        b = b.bundle(ctx.resolve(d));
    }
    for d in s.data {
        b = b.data_file(ctx.resolve(d));
    }
    built(settings, b.build())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VulnSettings {
    #[serde(default)]
    sarif: Vec<String>,
    #[serde(default)]
    cargo_audit: Vec<String>,
    #[serde(default)]
    accepted_risks: Option<String>,
    #[serde(default)]
    threshold: Option<String>,
    #[serde(default)]
    cargo_audit_warnings: Option<String>,
    #[serde(default)]
    max_listed: Option<usize>,
}

fn severity(settings: &Settings, key: &str, s: &str) -> Result<Severity, ConfigError> {
    s.parse::<Severity>()
        .map_err(|e| settings.error(Some(key), e))
}

/// `kind = "vulnerabilities"`: [`VulnGate`].
pub fn vulnerabilities(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: VulnSettings = settings.deserialize()?;
    let mut b = VulnGate::builder();
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    for p in s.sarif {
        b = b.sarif(ctx.resolve(p));
    }
    for p in s.cargo_audit {
        b = b.cargo_audit(ctx.resolve(p));
    }
    if let Some(p) = s.accepted_risks {
        b = b.accepted_risks(ctx.resolve(p));
    }
    if let Some(t) = s.threshold {
        b = b.threshold(severity(settings, "threshold", &t)?);
    }
    if let Some(t) = s.cargo_audit_warnings {
        b = b.cargo_audit_warnings(severity(settings, "cargo_audit_warnings", &t)?);
    }
    if let Some(m) = s.max_listed {
        b = b.max_listed(m);
    }
    built(settings, b.build())
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum FormatDoc {
    Json,
    Toml,
}

impl From<FormatDoc> for ManifestFormat {
    fn from(f: FormatDoc) -> Self {
        match f {
            FormatDoc::Json => ManifestFormat::Json,
            FormatDoc::Toml => ManifestFormat::Toml,
        }
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum FailOnDoc {
    AnyDifference,
    ChangedOrRemoved,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineSettings {
    directory: String,
    manifest: String,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    follow_symlinks: bool,
    #[serde(default)]
    fail_on: Option<FailOnDoc>,
    #[serde(default)]
    manifest_format: Option<FormatDoc>,
}

/// `kind = "config-baseline"`: [`ConfigBaselineGate`].
pub fn config_baseline(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: BaselineSettings = settings.deserialize()?;
    let mut b = ConfigBaselineGate::builder(ctx.resolve(&s.directory), ctx.resolve(&s.manifest))
        .follow_symlinks(s.follow_symlinks);
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    for p in s.include {
        b = b.include(p);
    }
    for p in s.exclude {
        b = b.exclude(p);
    }
    if let Some(f) = s.fail_on {
        b = b.fail_on(match f {
            FailOnDoc::AnyDifference => FailOn::AnyDifference,
            FailOnDoc::ChangedOrRemoved => FailOn::ChangedOrRemoved,
        });
    }
    if let Some(f) = s.manifest_format {
        b = b.manifest_format(f.into());
    }
    built(settings, b.build())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReproSettings {
    manifest: String,
    #[serde(default)]
    manifest_format: Option<FormatDoc>,
}

/// `kind = "reproducibility"`: [`ReproducibilityGate`].
pub fn reproducibility(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: ReproSettings = settings.deserialize()?;
    let mut b = ReproducibilityGate::builder(ctx.resolve(&s.manifest));
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    if let Some(f) = s.manifest_format {
        b = b.manifest_format(f.into());
    }
    built(settings, b.build())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyDoc {
    id: String,
    #[serde(default)]
    pem: Option<String>,
    #[serde(default)]
    pem_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureSettings {
    attestations: String,
    trusted_keys: Vec<KeyDoc>,
    #[serde(default)]
    require_slsa_provenance: bool,
    #[serde(default)]
    trusted_builders: Vec<String>,
    #[serde(default)]
    check_source_commit: Option<bool>,
    #[serde(default)]
    signature_threshold: Option<usize>,
}

/// `kind = "signature"`: [`SignatureGate`] over an envelope directory.
pub fn signature(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: SignatureSettings = settings.deserialize()?;
    let mut b = SignatureGate::builder(EnvelopeDir::new(ctx.resolve(&s.attestations)))
        .require_slsa_provenance(s.require_slsa_provenance);
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    for k in s.trusted_keys {
        let pem = match (k.pem, k.pem_file) {
            (Some(pem), None) => pem,
            (None, Some(f)) => {
                let path: PathBuf = ctx.resolve(&f);
                std::fs::read_to_string(&path).map_err(|e| {
                    settings.error(
                        Some("trusted_keys"),
                        format!("key `{}`: cannot read {}: {e}", k.id, path.display()),
                    )
                })?
            }
            _ => {
                return Err(settings.error(
                    Some("trusted_keys"),
                    format!("key `{}`: give exactly one of `pem` and `pem_file`", k.id),
                ))
            }
        };
        b = b.trusted_key_pem(k.id, pem);
    }
    for id in s.trusted_builders {
        b = b.trusted_builder(id);
    }
    if let Some(c) = s.check_source_commit {
        b = b.check_source_commit(c);
    }
    if let Some(n) = s.signature_threshold {
        b = b.signature_threshold(n);
    }
    built(settings, b.build())
}
