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
//! | `signature` | `attestations` (envelope directory), `trusted_keys = [{ id, pem_file }]` or `{ id, pem }`, `require_slsa_provenance`, `trusted_builders`, `check_source_commit`, `signature_threshold` (distinct trusted keys per envelope, default 1) |
//! | `metric` | `prometheus` (URL), `query` (PromQL), `success` / `failure` (conditions such as `"result < 0.01"`), `range = { window, step }` (judge every point of a window; default: the instant), `initial_delay`, `interval`, `count`, `failure_limit`, `inconclusive_limit`, `consecutive_error_limit`, `timeout` |
//! | `canary` | `prometheus` (URL), `metrics = [{ name, canary, baseline, direction (`increase`, `decrease`, `either`), relative_tolerance or absolute_tolerance, weight, critical }]`, `lookback`, `step`, `min_samples`, `significance`, `pass_score`, `marginal_score`, `timeout` |

mod analysis;
mod artifacts;
mod change;
mod external;

use std::fmt::Display;
use std::sync::Arc;

use promotion_core::Gate;

use crate::error::ConfigError;
use crate::registry::{BuildContext, GateRegistry, Settings};

pub use analysis::{canary, metric};
pub use artifacts::{
    config_baseline, perf_budget, policy, reproducibility, signature, test_report, vulnerabilities,
};
pub use change::{change_record, deployment_window};
pub use external::{process, webhook};

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
#[cfg(test)]
mod tests {
    use super::*;
    use promotion_core::PhaseId;

    /// A build context for a gate of stage `build` with its files in `dir`.
    pub(super) fn ctx(dir: &std::path::Path, name: Option<&str>) -> BuildContext {
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
    fn the_signature_threshold_reaches_the_gate() {
        let dir = tempfile::tempdir().unwrap();
        let r = GateRegistry::builtin();
        let toml = |n: usize| {
            format!(
                "attestations = \"att\"\nsignature_threshold = {n}\n[[trusted_keys]]\nid = \"k\"\n\
                 pem = \"-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\\n-----END PUBLIC KEY-----\\n\"\n"
            )
        };
        let build = |n| {
            let settings = Settings::parse("g.toml", &toml(n)).unwrap();
            r.construct("signature", &settings, &ctx(dir.path(), None))
        };
        assert!(build(1).is_ok());
        let err = build(2).unwrap_err();
        assert!(
            err.to_string().contains(
                "signature_threshold 2: must be at least 1 and at most the 1 trusted key(s)"
            ),
            "{err}"
        );
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
