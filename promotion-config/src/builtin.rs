//! Constructors for the reference gates of `promotion-gates`, by `kind`.
//!
//! Every gate table in a template has the common keys `kind`, `name` (defaults to the gate's
//! own name), `policy = { timeout = "5m", retries = 2, backoff = { initial = "1s", factor = 2,
//! max = "1m" } }` and `dry_run` (evaluate and record, never block); the other keys are the
//! kind's settings below. Relative paths are resolved against the service file's directory.
//! Unknown settings are refused with their line and column.
//!
//! | kind | settings |
//! |---|---|
//! | `process` | `program` (a bare name is looked up on `PATH`; a relative path is resolved), `args`, `working_dir` (default: a fresh temporary directory), `allow_env`, `clear_allowed_env`, `env = {}`, `params = {}`, `secrets` (names of host variables passed as secrets), `accept_exit_codes`, `timeout`, `on_timeout` (`error` or `fail`), `tail_bytes`, `category` (`automated`, `compliance`, `manual`) |
//! | `test-report` | `files`, `globs` (relative to the service directory), `min_pass_rate`, `max_skipped`, `require_suites`, `min_tests`, `failed_list_limit` |
//! | `perf-budget` | `results`, `baseline`, `budgets = { <figure> = { max, min, max_regression, direction } }` (`direction`: `lower_is_better` or `higher_is_better`) |
//! | `policy` | `policies` (Rego files), `bundle` (a directory), `data` (JSON files), `package`, `rego_v0` |
//! | `vulnerabilities` | `sarif`, `cargo_audit` (report files), `accepted_risks`, `threshold`, `cargo_audit_warnings` (`critical` … `info`), `max_listed` |
//! | `config-baseline` | `directory`, `manifest`, `include`, `exclude`, `follow_symlinks`, `fail_on` (`any_difference`, `changed_or_removed`), `manifest_format` (`json`, `toml`) |
//! | `reproducibility` | `manifest`, `manifest_format` |
//! | `change-record` | `path` (`{release}`, `{release_id}`, `{stage}` are replaced at evaluation), `format` (`auto`, `toml`, `json`), `risk_levels`, `ticket_pattern` |
//! | `deployment-window` | `windows = [{ name, days, start, end, zone }]`, `freezes = [{ from, to, reason }]`, `horizon_days`, `file` (a windows TOML file) |
//! | `webhook` | `url`, `accept_status` (codes or `"200-299"` ranges), `expect = { "/json/pointer" = value }`, `timeout`, `max_response_bytes`, `root_ca_pem_file`, `built_in_roots`, `signing_secret_env` (the host variable holding the secret), `signature_header`, `use_system_proxy`, `category` |
//! | `signature` | `attestations` (envelope directory), `trusted_keys = [{ id, pem_file }]` or `{ id, pem }`, `require_slsa_provenance`, `trusted_builders`, `check_source_commit` |
//! | `metric` | `prometheus` (URL), `query` (PromQL), `success` / `failure` (conditions such as `"result < 0.01"`), `range = { window, step }` (judge every point of a window; default: the instant), `initial_delay`, `interval`, `count`, `failure_limit`, `inconclusive_limit`, `consecutive_error_limit`, `timeout` |
//! | `canary` | `prometheus` (URL), `metrics = [{ name, canary, baseline, direction (`increase`, `decrease`, `either`), relative_tolerance or absolute_tolerance, weight, critical }]`, `lookback`, `step`, `min_samples`, `significance`, `pass_score`, `marginal_score`, `timeout` |

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::PathBuf;
use std::sync::Arc;

use promotion_core::{Gate, GateKind};
use promotion_gates::baseline::{FailOn, ManifestFormat};
use promotion_gates::canary::{CanaryMetric, Direction as CanaryDirection, Tolerance};
use promotion_gates::change::RecordFormat;
use promotion_gates::metrics::{Condition, QueryMode};
use promotion_gates::process::{OnTimeout, Secret};
use promotion_gates::signature::EnvelopeDir;
use promotion_gates::testreport::Direction;
use promotion_gates::vuln::Severity;
use promotion_gates::window::{Freeze, Window};
use promotion_gates::{
    CanaryGate, ChangeRecordGate, ConfigBaselineGate, DeploymentWindowGate, MetricGate,
    PerfBudgetGate, PolicyGate, ProcessGate, ReproducibilityGate, SignatureGate, TestReportGate,
    VulnGate, WebhookGate,
};
use serde::Deserialize;

use crate::duration::DurationValue;
use crate::error::ConfigError;
use crate::registry::{toml_to_json, BuildContext, GateRegistry, Settings};

/// Registers every reference gate kind in `registry`.
pub fn register_all(registry: GateRegistry) -> GateRegistry {
    registry
        .with("process", process)
        .with("test-report", test_report)
        .with("perf-budget", perf_budget)
        .with("policy", policy)
        .with("vulnerabilities", vulnerabilities)
        .with("config-baseline", config_baseline)
        .with("reproducibility", reproducibility)
        .with("change-record", change_record)
        .with("deployment-window", deployment_window)
        .with("webhook", webhook)
        .with("signature", signature)
        .with("metric", metric)
        .with("canary", canary)
}

type Built = Result<Arc<dyn Gate>, ConfigError>;

fn built<G: Gate + 'static, E: Display>(settings: &Settings, result: Result<G, E>) -> Built {
    match result {
        Ok(g) => Ok(Arc::new(g)),
        Err(e) => Err(settings.error(None, e)),
    }
}

fn path_string(ctx: &BuildContext, p: &str) -> String {
    ctx.resolve(p).display().to_string()
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum OnTimeoutDoc {
    Error,
    Fail,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessSettings {
    program: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    allow_env: Vec<String>,
    #[serde(default)]
    clear_allowed_env: bool,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    accept_exit_codes: Option<Vec<i32>>,
    #[serde(default)]
    timeout: Option<DurationValue>,
    #[serde(default)]
    on_timeout: Option<OnTimeoutDoc>,
    #[serde(default)]
    tail_bytes: Option<usize>,
    #[serde(default)]
    category: Option<GateKind>,
}

/// `kind = "process"`: [`ProcessGate`].
pub fn process(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: ProcessSettings = settings.deserialize()?;
    let program = if s.program.contains('/') {
        path_string(ctx, &s.program)
    } else {
        s.program
    };
    let mut b = ProcessGate::builder(program).args(s.args);
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    if s.clear_allowed_env {
        b = b.clear_allowed_env();
    }
    for v in s.allow_env {
        b = b.allow_env(v);
    }
    if let Some(dir) = s.working_dir {
        b = b.working_dir(ctx.resolve(dir));
    }
    for (k, v) in s.env {
        b = b.env(k, v);
    }
    for (k, v) in s.params {
        b = b.param(k, v);
    }
    if !s.secrets.is_empty() {
        for name in s.secrets {
            b = b.secret(name);
        }
        b = b.secret_source(ctx.secret_source());
    }
    if let Some(codes) = s.accept_exit_codes {
        b = b.accept_exit_codes(codes);
    }
    if let Some(t) = s.timeout {
        b = b.timeout(t.0);
    }
    if let Some(o) = s.on_timeout {
        b = b.on_timeout(match o {
            OnTimeoutDoc::Error => OnTimeout::Error,
            OnTimeoutDoc::Fail => OnTimeout::Fail,
        });
    }
    if let Some(n) = s.tail_bytes {
        b = b.tail_bytes(n);
    }
    if let Some(k) = s.category {
        b = b.kind(k);
    }
    built(settings, b.build())
}

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

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RecordFormatDoc {
    Auto,
    Toml,
    Json,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeSettings {
    path: String,
    #[serde(default)]
    format: Option<RecordFormatDoc>,
    #[serde(default)]
    risk_levels: Option<Vec<String>>,
    #[serde(default)]
    ticket_pattern: Option<String>,
}

/// `kind = "change-record"`: [`ChangeRecordGate`].
pub fn change_record(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: ChangeSettings = settings.deserialize()?;
    let mut b = ChangeRecordGate::builder(path_string(ctx, &s.path));
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    if let Some(f) = s.format {
        b = b.format(match f {
            RecordFormatDoc::Auto => RecordFormat::Auto,
            RecordFormatDoc::Toml => RecordFormat::Toml,
            RecordFormatDoc::Json => RecordFormat::Json,
        });
    }
    if let Some(levels) = s.risk_levels {
        b = b.risk_levels(levels);
    }
    if let Some(p) = s.ticket_pattern {
        b = b.ticket_pattern(p);
    }
    built(settings, b.build())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowDoc {
    #[serde(default)]
    name: Option<String>,
    days: Vec<String>,
    start: String,
    end: String,
    zone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FreezeDoc {
    from: toml::Value,
    #[serde(default)]
    to: Option<toml::Value>,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowSettings {
    #[serde(default)]
    windows: Vec<WindowDoc>,
    #[serde(default)]
    freezes: Vec<FreezeDoc>,
    #[serde(default)]
    horizon_days: Option<u32>,
    #[serde(default)]
    file: Option<String>,
}

fn instant_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `kind = "deployment-window"`: [`DeploymentWindowGate`]; also what a stage's `window`
/// table builds.
pub fn deployment_window(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: WindowSettings = settings.deserialize()?;
    let mut b = DeploymentWindowGate::builder();
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    if let Some(f) = &s.file {
        b = b
            .toml_file(ctx.resolve(f))
            .map_err(|e| settings.error(Some("file"), e))?;
    }
    for w in s.windows {
        let mut window = Window::new(&w.days, &w.start, &w.end, &w.zone)
            .map_err(|e| settings.error(Some("windows"), e))?;
        if let Some(n) = w.name {
            window = window.named(n);
        }
        b = b.window(window);
    }
    for f in s.freezes {
        let to = f.to.as_ref().map(instant_text);
        let freeze = Freeze::parse(&instant_text(&f.from), to.as_deref(), &f.reason)
            .map_err(|e| settings.error(Some("freezes"), e))?;
        b = b.freeze(freeze);
    }
    if let Some(days) = s.horizon_days {
        b = b.horizon(std::time::Duration::from_secs(u64::from(days) * 86_400));
    }
    built(settings, b.build())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StatusDoc {
    Code(u16),
    Range(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSettings {
    url: String,
    #[serde(default)]
    accept_status: Vec<StatusDoc>,
    #[serde(default)]
    expect: BTreeMap<String, toml::Value>,
    #[serde(default)]
    timeout: Option<DurationValue>,
    #[serde(default)]
    max_response_bytes: Option<usize>,
    #[serde(default)]
    root_ca_pem_file: Vec<String>,
    #[serde(default)]
    built_in_roots: Option<bool>,
    #[serde(default)]
    signing_secret_env: Option<String>,
    #[serde(default)]
    signature_header: Option<String>,
    #[serde(default)]
    use_system_proxy: Option<bool>,
    #[serde(default)]
    category: Option<GateKind>,
}

/// `kind = "webhook"`: [`WebhookGate`].
pub fn webhook(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: WebhookSettings = settings.deserialize()?;
    let mut b = WebhookGate::builder(s.url);
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    if let Some(k) = s.category {
        b = b.kind(k);
    }
    for status in s.accept_status {
        b = match status {
            StatusDoc::Code(c) => b.accept_status(c),
            StatusDoc::Range(r) => {
                let range = r.split_once('-').and_then(|(lo, hi)| {
                    Some((
                        lo.trim().parse::<u16>().ok()?,
                        hi.trim().parse::<u16>().ok()?,
                    ))
                });
                let Some((lo, hi)) = range else {
                    return Err(settings.error(
                        Some("accept_status"),
                        format!("`{r}` is neither a status code nor a range such as \"200-299\""),
                    ));
                };
                b.accept_status_range(lo, hi)
            }
        };
    }
    for (pointer, expected) in s.expect {
        b = b.expect_json(pointer, toml_to_json(&expected));
    }
    if let Some(t) = s.timeout {
        b = b.timeout(t.0);
    }
    if let Some(m) = s.max_response_bytes {
        b = b.max_response_bytes(m);
    }
    for f in s.root_ca_pem_file {
        let path = ctx.resolve(&f);
        let pem = std::fs::read(&path).map_err(|e| {
            settings.error(
                Some("root_ca_pem_file"),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        b = b.root_ca_pem(pem);
    }
    if let Some(r) = s.built_in_roots {
        b = b.built_in_roots(r);
    }
    if let Some(var) = s.signing_secret_env {
        let Some(secret) = ctx.env_var(&var) else {
            return Err(settings.error(
                Some("signing_secret_env"),
                format!("the host variable `{var}` holding the signing secret is not set"),
            ));
        };
        b = b.signing_secret(Secret::new(secret));
    }
    if let Some(h) = s.signature_header {
        b = b.signature_header(h);
    }
    if let Some(p) = s.use_system_proxy {
        b = b.use_system_proxy(p);
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
    built(settings, b.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use promotion_core::PhaseId;

    fn ctx(dir: &std::path::Path, name: Option<&str>) -> BuildContext {
        BuildContext::new(dir, "build", PhaseId::Entry).with_name(name.map(str::to_owned))
    }

    #[test]
    fn every_builtin_kind_is_registered() {
        let r = GateRegistry::builtin();
        assert_eq!(
            r.kinds(),
            [
                "canary",
                "change-record",
                "config-baseline",
                "deployment-window",
                "metric",
                "perf-budget",
                "policy",
                "process",
                "reproducibility",
                "signature",
                "test-report",
                "vulnerabilities",
                "webhook"
            ]
        );
    }

    #[test]
    fn builds_gates_under_the_template_name() {
        let dir = tempfile::tempdir().unwrap();
        let r = GateRegistry::builtin();
        let cases = [
            ("process", "program = \"true\"\nargs = [\"-x\"]\ntimeout = \"5s\"\n"),
            ("test-report", "files = [\"junit.xml\"]\nmin_tests = 1\n"),
            (
                "perf-budget",
                "results = \"p.json\"\nbaseline = \"b.json\"\n[budgets.p99_ms]\nmax = 50.0\nmax_regression = 10.0\ndirection = \"lower_is_better\"\n",
            ),
            ("vulnerabilities", "sarif = [\"t.sarif\"]\nthreshold = \"critical\"\n"),
            ("config-baseline", "directory = \"conf\"\nmanifest = \"m.json\"\nfail_on = \"changed_or_removed\"\n"),
            ("reproducibility", "manifest = \"second.json\"\n"),
            ("change-record", "path = \"changes/{release}.toml\"\nticket_pattern = \"CHG-[0-9]+\"\n"),
            (
                "deployment-window",
                "[[windows]]\ndays = [\"mon-fri\"]\nstart = \"09:00\"\nend = \"17:00\"\nzone = \"Europe/Berlin\"\n\
                 [[freezes]]\nfrom = 2026-12-20T00:00:00Z\nto = \"2027-01-02T00:00:00Z\"\nreason = \"holidays\"\n",
            ),
            (
                "webhook",
                "url = \"https://cab.example.com/check\"\naccept_status = [200, \"201-204\"]\n[expect]\n\"/approved\" = true\n",
            ),
            (
                "metric",
                "prometheus = \"http://prometheus:9090\"\nquery = \"sum(rate(errors[5m]))\"\n\
                 success = \"result < 0.01\"\ninterval = \"1m\"\ncount = 5\nfailure_limit = 1\n\
                 range = { window = \"5m\", step = \"1m\" }\n",
            ),
            (
                "canary",
                "prometheus = \"http://prometheus:9090\"\nlookback = \"10m\"\nstep = \"30s\"\npass_score = 90.0\n\
                 [[metrics]]\nname = \"errors\"\ncanary = \"e{track=\\\"canary\\\"}\"\nbaseline = \"e{track=\\\"baseline\\\"}\"\n\
                 absolute_tolerance = 0.001\ncritical = true\n",
            ),
        ];
        for (kind, text) in cases {
            let settings = Settings::parse("g.toml", text).unwrap();
            let gate = r
                .construct(kind, &settings, &ctx(dir.path(), Some("my-gate")))
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(gate.name(), "my-gate", "{kind}");
        }
    }

    #[test]
    fn metric_and_canary_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let r = GateRegistry::builtin();
        let build = |kind: &str, text: &str| {
            let settings = Settings::parse("g.toml", text).unwrap();
            r.construct(kind, &settings, &ctx(dir.path(), None))
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        let err = build(
            "metric",
            "prometheus = \"http://p:9090\"\nquery = \"up\"\nsuccess = \"result ~ 3\"\n",
        );
        assert!(
            err.starts_with("g.toml:") && err.contains("`result ~ 3`"),
            "{err}"
        );
        let err = build("metric", "prometheus = \"http://p:9090\"\nquery = \"up\"\n");
        assert!(err.contains("condition"), "no condition at all: {err}");
        let err = build(
            "canary",
            "prometheus = \"http://p:9090\"\n[[metrics]]\nname = \"e\"\ncanary = \"a\"\nbaseline = \"b\"\n\
             relative_tolerance = 0.1\nabsolute_tolerance = 0.1\n",
        );
        assert!(err.contains("both tolerances; choose one"), "{err}");
        let err = build("canary", "prometheus = \"http://p:9090\"\nmetrics = []\n");
        assert!(err.starts_with("g.toml:"), "{err}");
    }

    #[test]
    fn settings_errors_have_positions() {
        let dir = tempfile::tempdir().unwrap();
        let r = GateRegistry::builtin();
        let settings = Settings::parse("g.toml", "program = \"true\"\ntimout = \"5s\"\n").unwrap();
        let err = r
            .construct("process", &settings, &ctx(dir.path(), None))
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::UnknownField);
        assert!(
            err.to_string()
                .starts_with("g.toml:2:1: gate: `timout`: unknown field `timout`"),
            "{err}"
        );
        let settings =
            Settings::parse("g.toml", "program = \"true\"\ntimeout = \"5 parsecs\"\n").unwrap();
        let err = r
            .construct("process", &settings, &ctx(dir.path(), None))
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::BadDuration);
        assert!(err.to_string().starts_with("g.toml:2:11:"), "{err}");
        let settings = Settings::parse(
            "g.toml",
            "results = \"r.json\"\n[budgets.p99]\nmax_regression = 5.0\n",
        )
        .unwrap();
        let err = r
            .construct("perf-budget", &settings, &ctx(dir.path(), None))
            .unwrap_err();
        assert!(err.to_string().contains("without a `direction`"), "{err}");
        let err = r
            .construct("prometheus-magic", &settings, &ctx(dir.path(), None))
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::UnknownGateKind);
        assert!(
            err.to_string()
                .contains("known kinds: canary, change-record, "),
            "{err}"
        );
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeDoc {
    window: DurationValue,
    step: DurationValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricSettings {
    prometheus: String,
    query: String,
    #[serde(default)]
    success: Option<String>,
    #[serde(default)]
    failure: Option<String>,
    #[serde(default)]
    range: Option<RangeDoc>,
    #[serde(default)]
    initial_delay: Option<DurationValue>,
    #[serde(default)]
    interval: Option<DurationValue>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    failure_limit: Option<u32>,
    #[serde(default)]
    inconclusive_limit: Option<u32>,
    #[serde(default)]
    consecutive_error_limit: Option<u32>,
    #[serde(default)]
    timeout: Option<DurationValue>,
}

fn condition(
    settings: &Settings,
    key: &str,
    text: Option<String>,
) -> Result<Option<Condition>, ConfigError> {
    text.map(|t| {
        t.parse::<Condition>()
            .map_err(|e| settings.error(Some(key), format!("`{t}`: {e}")))
    })
    .transpose()
}

/// `kind = "metric"`: [`MetricGate`].
pub fn metric(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: MetricSettings = settings.deserialize()?;
    let mut b = MetricGate::builder(s.prometheus, s.query);
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    if let Some(c) = condition(settings, "success", s.success)? {
        b = b.success_condition(c);
    }
    if let Some(c) = condition(settings, "failure", s.failure)? {
        b = b.failure_condition(c);
    }
    if let Some(r) = s.range {
        b = b.mode(QueryMode::Range {
            window: r.window.0,
            step: r.step.0,
        });
    }
    if let Some(d) = s.initial_delay {
        b = b.initial_delay(d.0);
    }
    if let Some(d) = s.interval {
        b = b.interval(d.0);
    }
    if let Some(n) = s.count {
        b = b.count(n);
    }
    if let Some(n) = s.failure_limit {
        b = b.failure_limit(n);
    }
    if let Some(n) = s.inconclusive_limit {
        b = b.inconclusive_limit(n);
    }
    if let Some(n) = s.consecutive_error_limit {
        b = b.consecutive_error_limit(n);
    }
    if let Some(d) = s.timeout {
        b = b.timeout(d.0);
    }
    built(settings, b.build())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanaryMetricDoc {
    name: String,
    canary: String,
    baseline: String,
    #[serde(default)]
    direction: Option<CanaryDirectionDoc>,
    #[serde(default)]
    relative_tolerance: Option<f64>,
    #[serde(default)]
    absolute_tolerance: Option<f64>,
    #[serde(default)]
    weight: Option<f64>,
    #[serde(default)]
    critical: Option<bool>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum CanaryDirectionDoc {
    Increase,
    Decrease,
    Either,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanarySettings {
    prometheus: String,
    metrics: Vec<CanaryMetricDoc>,
    #[serde(default)]
    lookback: Option<DurationValue>,
    #[serde(default)]
    step: Option<DurationValue>,
    #[serde(default)]
    min_samples: Option<usize>,
    #[serde(default)]
    significance: Option<f64>,
    #[serde(default)]
    pass_score: Option<f64>,
    #[serde(default)]
    marginal_score: Option<f64>,
    #[serde(default)]
    timeout: Option<DurationValue>,
}

/// `kind = "canary"`: [`CanaryGate`].
pub fn canary(settings: &Settings, ctx: &BuildContext) -> Built {
    let s: CanarySettings = settings.deserialize()?;
    let mut b = CanaryGate::builder(s.prometheus);
    if let Some(n) = ctx.gate_name() {
        b = b.name(n);
    }
    for m in s.metrics {
        let mut metric = CanaryMetric::new(m.name.clone(), m.canary, m.baseline);
        if let Some(d) = m.direction {
            metric = metric.direction(match d {
                CanaryDirectionDoc::Increase => CanaryDirection::Increase,
                CanaryDirectionDoc::Decrease => CanaryDirection::Decrease,
                CanaryDirectionDoc::Either => CanaryDirection::Either,
            });
        }
        match (m.relative_tolerance, m.absolute_tolerance) {
            (Some(_), Some(_)) => {
                let problem = format!("metric `{}` sets both tolerances; choose one", m.name);
                return Err(settings.error(Some("metrics"), problem));
            }
            (Some(r), None) => metric = metric.tolerance(Tolerance::Relative(r)),
            (None, Some(a)) => metric = metric.tolerance(Tolerance::Absolute(a)),
            (None, None) => {}
        }
        if let Some(w) = m.weight {
            metric = metric.weight(w);
        }
        if let Some(c) = m.critical {
            metric = metric.critical(c);
        }
        b = b.metric(metric);
    }
    if let Some(d) = s.lookback {
        b = b.lookback(d.0);
    }
    if let Some(d) = s.step {
        b = b.step(d.0);
    }
    if let Some(n) = s.min_samples {
        b = b.min_samples(n);
    }
    if let Some(a) = s.significance {
        b = b.significance(a);
    }
    match (s.pass_score, s.marginal_score) {
        (None, None) => {}
        (pass, marginal) => {
            b = b.score_thresholds(pass.unwrap_or(95.0), marginal.unwrap_or(75.0));
        }
    }
    if let Some(d) = s.timeout {
        b = b.timeout(d.0);
    }
    built(settings, b.build())
}
