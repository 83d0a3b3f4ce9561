//! Templates instantiated for services: what gets built, and where every refusal points.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use promotion_config::{ConfigError, ErrorKind, GateInfo, Loader, RecordedIdentity};
use promotion_core::layer::{DryRunLayer, Identity, RetryLayer, TimeoutLayer};
use promotion_core::{Availability, Backoff, PhaseId};

const TEMPLATE: &str = r#"[template]
name = "web-service"
version = "2.1.0"
description = "build, staging, canary, production"

[params.min_tests]
type = "integer"
default = 1

[params.owners]
type = "string"
description = "the group that approves staging"

[params.soak]
type = "duration"
default = "1h"

[params.canary]
type = "bool"
default = true

[params.weights]
type = "list"
items = "integer"
default = [10, 50, 100]

[pipeline]
break_glass = ["incident-commanders"]

[[stages]]
name = "build"

[[stages.gates]]
kind = "process"
name = "{{ service }}-smoke"
program = "true"
policy = { timeout = "1m", retries = 2 }

[[stages]]
name = "staging"
after = ["build"]
approval = "1 of {{ owners }}"
entry_policy = { interval = "1m", timeout = "10m" }

[[stages]]
name = "canary"
after = ["staging"]
enabled = "{{ canary }}"
rollout = { weights = "{{ weights }}", pause = "5m", analysis_policy = { interval = "1m" } }

[[stages]]
name = "production"
after = ["canary"]
availability = "any"
soak = "{{ soak }}"

[stages.approval]
rule = "2 of sre AND if change.risk = high then 1 of cab"
expires = "24h"
distinct_from_upstream = true

[[stages.gates]]
kind = "change-record"
name = "change"
path = "changes/{release}.toml"

[stages.window]
windows = [{ days = ["mon-sun"], start = "00:00", end = "24:00", zone = "UTC" }]

[[stages.verification]]
kind = "process"
name = "smoke"
program = "true"
"#;

const SERVICE: &str = r#"[service]
name = "checkout"
version = "3"

[template]
name = "web-service"
version = "2.1.0"

[params]
owners = "qa"
soak = "6h"
"#;

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        let d = Dir {
            dir: tempfile::tempdir().unwrap(),
        };
        d.write("templates/web-service.toml", TEMPLATE);
        d.write("promotion.toml", SERVICE);
        d
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn load(&self) -> Result<promotion_config::Loaded, ConfigError> {
        Loader::new().load(&self.path("promotion.toml"))
    }
    /// Replaces `from` by `to` in the template, loads, and returns the error.
    fn template_error(&self, from: &str, to: &str) -> ConfigError {
        assert!(TEMPLATE.contains(from), "{from}");
        self.write(
            "templates/web-service.toml",
            &TEMPLATE.replacen(from, to, 1),
        );
        let Err(e) = self.load() else {
            panic!("expected a refusal")
        };
        self.write("templates/web-service.toml", TEMPLATE);
        e
    }
    fn service_error(&self, from: &str, to: &str) -> ConfigError {
        assert!(SERVICE.contains(from), "{from}");
        self.write("promotion.toml", &SERVICE.replacen(from, to, 1));
        let Err(e) = self.load() else {
            panic!("expected a refusal")
        };
        self.write("promotion.toml", SERVICE);
        e
    }
}

/// The 1-based line and column of the first occurrence of `needle` in `text`, plus `skip`
/// characters.
fn pos(text: &str, needle: &str, skip: usize) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in text"));
    let line = text[..at].matches('\n').count() + 1;
    let col = text[..at].rsplit('\n').next().unwrap().chars().count() + 1 + skip;
    (line, col)
}

fn assert_at(e: &ConfigError, file: &Path, (line, col): (usize, usize), message: &str) {
    let text = e.to_string();
    let expected = format!("{}:{line}:{col}: ", file.display());
    assert!(
        text.starts_with(&expected),
        "expected {expected}… got: {text}"
    );
    assert!(text.contains(message), "expected `{message}` in: {text}");
}

#[test]
fn builds_the_pipeline_with_parameters_substituted() {
    let d = Dir::new();
    let loaded = d.load().unwrap();
    let p = &loaded.pipeline;
    let names: Vec<&str> = p.stages().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["build", "staging", "canary", "production"]);
    assert_eq!(p.name().as_str(), "checkout");
    assert!(p.break_glass_groups().contains("incident-commanders"));

    let build = p.stage("build").unwrap();
    assert_eq!(
        build.gate_names(PhaseId::Entry)[0].as_str(),
        "checkout-smoke"
    );
    let gate = build
        .phase(PhaseId::Entry)
        .unwrap()
        .gate("checkout-smoke")
        .unwrap();
    assert_eq!(gate.policy.retries, 2);
    assert_eq!(gate.policy.timeout, Some(Duration::from_secs(60)));

    let staging = p.stage("staging").unwrap();
    let approval = staging.spec.approval.as_ref().unwrap();
    assert_eq!(approval.rule.to_string(), "1 of qa");
    assert_eq!(
        staging.spec.entry.policy.timeout,
        Some(Duration::from_secs(600))
    );

    let canary = p.stage("canary").unwrap();
    let weights: Vec<u8> = canary.steps().iter().map(|s| s.weight.get()).collect();
    assert_eq!(weights, [10, 50, 100]);
    assert_eq!(canary.steps()[1].pause, Duration::from_secs(300));
    assert_eq!(
        canary.steps()[2].analysis.policy.interval,
        Some(Duration::from_secs(60))
    );

    let prod = p.stage("production").unwrap();
    assert_eq!(prod.spec.soak, Some(Duration::from_secs(6 * 3600)));
    assert_eq!(prod.spec.availability, Availability::AnyUpstream);
    let entry: Vec<&str> = prod
        .gate_names(PhaseId::Entry)
        .iter()
        .map(|g| g.as_str())
        .collect();
    assert_eq!(entry, ["change", "deployment-window"]);
    assert_eq!(prod.gate_names(PhaseId::Verification)[0].as_str(), "smoke");
    let policy = prod.spec.approval.as_ref().unwrap();
    assert_eq!(
        policy.rule.to_string(),
        "(2 of sre AND (if change.risk = high then 1 of cab))"
    );
    assert_eq!(policy.expiry, Some(Duration::from_secs(24 * 3600)));
    assert!(policy.distinct_from_upstream);

    // The version string names the template, its version and digest, and the service file.
    let v = p.version();
    assert!(
        v.starts_with("checkout@3 (template web-service@2.1.0 sha256:"),
        "{v}"
    );
    let id = RecordedIdentity::parse(v).unwrap();
    assert_eq!(id.template_digest, loaded.identity.template.digest);
    assert_eq!(
        id.template_digest,
        promotion_core::Digest::of(TEMPLATE.as_bytes())
    );
    assert_eq!(loaded.params["service"].as_str(), Some("checkout"));
}

#[test]
fn a_disabled_stage_is_bypassed() {
    let d = Dir::new();
    d.write("promotion.toml", &format!("{SERVICE}canary = false\n"));
    let p = d.load().unwrap().pipeline;
    assert!(p.stage("canary").is_none());
    let prod = p.stage("production").unwrap();
    assert_eq!(prod.upstream, ["staging"]);
}

#[test]
fn every_change_makes_a_new_version() {
    let d = Dir::new();
    let v1 = d.load().unwrap().pipeline.version().to_owned();
    d.write("promotion.toml", &format!("{SERVICE}min_tests = 2\n"));
    let v2 = d.load().unwrap().pipeline.version().to_owned();
    assert_ne!(v1, v2, "a service change changes the version");
    d.write("promotion.toml", SERVICE);
    d.write("templates/web-service.toml", &format!("{TEMPLATE}\n"));
    let v3 = d.load().unwrap().pipeline.version().to_owned();
    assert_ne!(v1, v3, "a template change changes the version");
}

#[test]
fn a_template_alone_uses_its_defaults() {
    let d = Dir::new();
    let text = TEMPLATE.replace(
        "[params.owners]\ntype = \"string\"",
        "[params.owners]\ntype = \"string\"\ndefault = \"qa\"",
    );
    d.write("alone.toml", &text);
    let loaded = Loader::new().load(&d.path("alone.toml")).unwrap();
    assert_eq!(loaded.pipeline.name().as_str(), "web-service");
    assert!(loaded
        .pipeline
        .version()
        .starts_with("web-service (template web-service@2.1.0 sha256:"));
}

#[test]
fn layers_see_every_gate() {
    let d = Dir::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    Loader::new()
        .layer_for(move |info| {
            s.lock()
                .unwrap()
                .push(format!("{}/{}/{}", info.stage, info.phase, info.name));
            None::<Identity>
        })
        .load(&d.path("promotion.toml"))
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "build/entry/checkout-smoke",
            "production/entry/change",
            "production/entry/deployment-window",
            "production/verification/smoke"
        ]
    );
}

#[test]
fn parameter_errors_point_into_the_service_file() {
    let d = Dir::new();
    let svc = d.path("promotion.toml");

    let e = d.service_error("owners = \"qa\"\n", "ownerz = \"qa\"\n");
    assert_eq!(e.kind(), ErrorKind::UnknownParameter);
    assert_at(
        &e,
        &svc,
        pos(SERVICE, "owners", 0),
        "unknown parameter `ownerz`: template web-service@2.1.0 does not declare it; it declares: canary, min_tests, owners, soak, weights",
    );

    let e = d.service_error("owners = \"qa\"\n", "");
    assert_eq!(e.kind(), ErrorKind::MissingParameter);
    assert_at(
        &e,
        &svc,
        pos(SERVICE, "[params]", 0),
        "missing parameter `owners`: template web-service@2.1.0 requires a value of type string (the group that approves staging)",
    );
    assert!(e.to_string().contains("note: declared at "), "{e}");

    let e = d.service_error("soak = \"6h\"", "soak = 6");
    assert_eq!(e.kind(), ErrorKind::ParameterType);
    assert_at(
        &e,
        &svc,
        pos(SERVICE, "soak = ", 7),
        "parameter `soak` (type duration): expected a duration string such as \"6h\", found an integer",
    );

    let e = d.service_error("soak = \"6h\"", "soak = \"6 hrs or so\"");
    assert_eq!(e.kind(), ErrorKind::ParameterType);
    assert!(
        e.to_string().contains("invalid duration `6 hrs or so`"),
        "{e}"
    );
}

#[test]
fn template_errors_point_into_the_template() {
    let d = Dir::new();
    let t = d.path("templates/web-service.toml");

    let e = d.template_error("kind = \"process\"", "kind = \"proces\"");
    assert_eq!(e.kind(), ErrorKind::UnknownGateKind);
    assert_at(
        &e,
        &t,
        pos(TEMPLATE, "kind = \"process\"", 7),
        "stage `build`: unknown gate kind `proces`; known kinds: canary, change-record, config-baseline, deployment-window, metric, perf-budget, policy, process, reproducibility, signature, test-report, vulnerabilities, webhook",
    );

    let e = d.template_error(
        "name = \"{{ service }}-smoke\"",
        "name = \"{{ servce }}-smoke\"",
    );
    assert_eq!(e.kind(), ErrorKind::UnknownParameter);
    assert_at(
        &e,
        &t,
        pos(TEMPLATE, "{{ service }}-smoke", 0),
        "unknown parameter `servce`",
    );

    let e = d.template_error("soak = \"{{ soak }}\"", "soak = \"six hours\"");
    assert_eq!(e.kind(), ErrorKind::BadDuration);
    assert_at(
        &e,
        &t,
        pos(TEMPLATE, "soak = \"{{", 7),
        "stage `production`: `stages[3].soak`: invalid duration `six hours`",
    );

    let e = d.template_error("entry_policy = {", "entry_policy = { intervall = \"1m\",");
    assert_eq!(e.kind(), ErrorKind::UnknownField);
    assert_at(
        &e,
        &t,
        pos(TEMPLATE, "entry_policy = {", 17),
        "unknown field `intervall`, expected one of `delay`, `interval`",
    );

    let e = d.template_error(
        "program = \"true\"\npolicy",
        "program = \"true\"\nprogrm = 1\npolicy",
    );
    assert_eq!(e.kind(), ErrorKind::UnknownField);
    let (l, _) = pos(TEMPLATE, "program = \"true\"\npolicy", 0);
    assert_at(
        &e,
        &t,
        (l + 1, 1),
        "stage `build`, gate `checkout-smoke` (process): `stages[0].gates[0].progrm`: unknown field `progrm`",
    );

    let e = d.template_error("after = [\"build\"]", "after = [\"production\"]");
    assert_eq!(e.kind(), ErrorKind::Cycle);
    assert_at(
        &e,
        &t,
        pos(TEMPLATE, "after = [\"staging\"]", 8),
        "stages form a cycle: canary -> production -> staging -> canary",
    );

    let e = d.template_error("after = [\"build\"]", "after = [\"biuld\"]");
    assert_eq!(e.kind(), ErrorKind::Pipeline);
    assert_at(
        &e,
        &t,
        pos(TEMPLATE, "\"build\"]", 0),
        "stage `staging` names upstream `biuld`, which is not a stage of this pipeline",
    );

    let e = d.template_error("rule = \"2 of sre", "rule = \"0 of sre");
    assert_eq!(e.kind(), ErrorKind::UnsatisfiableApproval);
    assert_at(
        &e,
        &t,
        pos(TEMPLATE, "rule = \"2 of sre", 7),
        "stage `production`: approval rule `(0 of sre AND (if change.risk = high then 1 of cab))` can never be met: a quorum of 0 from `sre` approves nothing",
    );

    let e = d.template_error("if change.risk", "if chnge.risk");
    assert_eq!(e.kind(), ErrorKind::UnsatisfiableApproval);
    assert!(
        e.to_string()
            .contains("a condition reads gate `chnge`, which is not an entry gate"),
        "{e}"
    );
    assert_at(&e, &t, pos(TEMPLATE, "rule = \"2 of sre", 7), "");

    let e = d.template_error("2 of sre AND", "2 of sre AN");
    assert_eq!(e.kind(), ErrorKind::BadApprovalRule);
    assert_at(
        &e,
        &t,
        pos(TEMPLATE, "AND if change", 0),
        "expected `AND`, `OR` or the end of the rule, found `AN`",
    );

    let e = d.template_error("weights = \"{{ weights }}\"", "weights = [50, 10, 100]");
    assert_eq!(e.kind(), ErrorKind::Pipeline);
    assert_at(
        &e,
        &t,
        pos(TEMPLATE, "rollout = {", 10),
        "stage `canary`: rollout plan step 2 has weight 10%",
    );

    let e = d.template_error("name = \"smoke\"", "name = \"smoke\"\ntimeout = \"soon\"");
    assert_eq!(e.kind(), ErrorKind::BadDuration);
    assert!(
        e.to_string()
            .contains("`stages[3].verification[0].timeout`: invalid duration `soon`"),
        "{e}"
    );

    let e = d.template_error("[stages.window]\n", "[stages.window]\nname = \"change\"\n");
    assert_eq!(e.kind(), ErrorKind::Pipeline);
    assert_at(
        &e,
        &t,
        pos(TEMPLATE, "[stages.window]", 0),
        "stage `production`: gate `change` appears twice in the entry phase",
    );

    let e = d.template_error(
        "[[stages]]\nname = \"staging\"",
        "[[stages]]\nname = \"build\"",
    );
    assert_at(
        &e,
        &t,
        pos(TEMPLATE, "name = \"staging\"", 7),
        "stage `build` is defined twice",
    );
}

#[test]
fn templates_are_found_by_name_version_and_digest() {
    let d = Dir::new();
    let svc = d.path("promotion.toml");
    let e = d.service_error("version = \"2.1.0\"", "version = \"2.2.0\"");
    assert_eq!(e.kind(), ErrorKind::TemplateNotFound);
    assert_at(
        &e,
        &svc,
        pos(SERVICE, "\"web-service\"", 0),
        "template web-service@2.2.0 not found in",
    );
    assert!(
        e.to_string().contains("templates found: web-service@2.1.0"),
        "{e}"
    );

    let digest = promotion_core::Digest::of(TEMPLATE.as_bytes());
    d.write(
        "promotion.toml",
        &SERVICE.replace(
            "version = \"2.1.0\"",
            &format!("version = \"2.1.0\"\nsha256 = \"{digest}\""),
        ),
    );
    assert!(d.load().is_ok());
    let other = promotion_core::Digest::of(b"another template");
    let e = d.service_error(
        "version = \"2.1.0\"",
        &format!("version = \"2.1.0\"\nsha256 = \"{other}\""),
    );
    assert_eq!(e.kind(), ErrorKind::DigestMismatch);
    assert!(
        e.to_string().contains(&format!(
            "has digest {digest}, but this service pins {other}"
        )),
        "{e}"
    );

    d.write(
        "promotion.toml",
        &SERVICE.replace(
            "name = \"web-service\"\nversion = \"2.1.0\"",
            "path = \"templates/web-service.toml\"",
        ),
    );
    assert!(d.load().is_ok());
    d.write(
        "promotion.toml",
        &SERVICE.replace(
            "name = \"web-service\"\nversion = \"2.1.0\"",
            "path = \"templates/nope.toml\"",
        ),
    );
    let e = d.load().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TemplateNotFound);
    assert!(e.to_string().contains("cannot read"), "{e}");
}

#[test]
fn rollout_steps_share_and_add_analysis_gates() {
    let d = Dir::new();
    d.write(
        "alone.toml",
        r#"[template]
name = "steps"
version = "1"

[[stages]]
name = "canary"
manual_start = true
approval = { rule = "1 of sre OR 2 of dev", before_gates = true, allow_self_approval = true }
entry_policy = { interval = "1m", min_success = "5m", all_pass_in_same_round = true }

[stages.rollout]
auto_rollback = false
analysis = [{ kind = "process", name = "errors", program = "true" }]
analysis_policy = { interval = "30s" }
steps = [
  { weight = 5, pause = "10m" },
  { weight = 50, analysis = [{ kind = "process", name = "latency", program = "true" }], analysis_policy = { interval = "2m" } },
  { weight = 100 },
]
"#,
    );
    let p = Loader::new().load(&d.path("alone.toml")).unwrap().pipeline;
    let canary = p.stage("canary").unwrap();
    assert!(!canary.spec.auto_start);
    assert!(!canary.auto_rollback());
    let approval = canary.spec.approval.as_ref().unwrap();
    assert!(!approval.after_gates && approval.allow_self_approval);
    assert_eq!(approval.rule.to_string(), "(1 of sre OR 2 of dev)");
    assert!(canary.spec.entry.policy.all_pass_in_same_round);
    let names = |k: u32| -> Vec<String> {
        canary
            .gate_names(PhaseId::Analysis { step: k })
            .iter()
            .map(|g| g.to_string())
            .collect()
    };
    assert_eq!(names(0), ["errors"]);
    assert_eq!(names(1), ["errors", "latency"]);
    assert_eq!(canary.steps()[0].pause, Duration::from_secs(600));
    assert_eq!(
        canary.steps()[0].analysis.policy.interval,
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        canary.steps()[1].analysis.policy.interval,
        Some(Duration::from_secs(120))
    );

    // a policy the core refuses is placed at the policy
    let text = std::fs::read_to_string(d.path("alone.toml")).unwrap();
    d.write(
        "alone.toml",
        &text.replace(
            "analysis_policy = { interval = \"30s\" }",
            "analysis_policy = { min_success = \"1m\" }",
        ),
    );
    let e = Loader::new().load(&d.path("alone.toml")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Pipeline);
    assert!(
        e.to_string()
            .contains("sets a minimum success duration but no sampling interval"),
        "{e}"
    );
    assert_eq!(e.location().unwrap().line, 14, "{e}");
    d.write(
        "alone.toml",
        &text.replace("steps = [", "weights = [5, 100]\nsteps = ["),
    );
    let e = Loader::new().load(&d.path("alone.toml")).unwrap_err();
    assert!(
        e.to_string()
            .contains("give either `steps` or `weights`, not both"),
        "{e}"
    );
}

fn entry_gate_debug(loaded: &promotion_config::Loaded, stage: &str) -> String {
    let phase = loaded.pipeline.stage(stage).unwrap().phase(PhaseId::Entry);
    format!("{:?}", phase.unwrap().gates[0].gate)
}

#[test]
fn a_layer_wraps_every_gate_and_knows_where_it_goes() {
    let d = Dir::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let loaded = Loader::new()
        .layer_for(move |info: &GateInfo| {
            s.lock().unwrap().push(info.clone());
            Some(DryRunLayer)
        })
        .load(&d.path("promotion.toml"))
        .unwrap();
    let info = |stage: &str, phase, name: &str, kind: &str| GateInfo {
        stage: stage.into(),
        phase,
        name: name.into(),
        kind: kind.into(),
    };
    assert_eq!(
        *seen.lock().unwrap(),
        [
            info("build", PhaseId::Entry, "checkout-smoke", "process"),
            info("production", PhaseId::Entry, "change", "change-record"),
            info(
                "production",
                PhaseId::Entry,
                "deployment-window",
                "deployment-window"
            ),
            info("production", PhaseId::Verification, "smoke", "process"),
        ]
    );
    let mut wrapped = 0;
    for stage in loaded.pipeline.stages() {
        for phase in [PhaseId::Entry, PhaseId::Verification] {
            for spec in stage.phase(phase).map_or(&[][..], |p| &p.gates) {
                let shown = format!("{:?}", spec.gate);
                assert!(shown.starts_with("DryRun {"), "{}: {shown}", spec.name);
                assert_ne!(spec.gate.name(), "", "a layer keeps the gate's name");
                wrapped += 1;
            }
        }
    }
    assert_eq!(wrapped, 4);
}

#[test]
fn loader_layers_wrap_in_the_order_added_around_a_gates_own_dry_run() {
    let d = Dir::new();
    d.write(
        "templates/web-service.toml",
        &TEMPLATE.replace(
            "policy = { timeout = \"1m\", retries = 2 }",
            "policy = { timeout = \"1m\", retries = 2 }\ndry_run = true",
        ),
    );
    let loaded = Loader::new()
        .layer(RetryLayer::new(1, Backoff::default()))
        .layer_for(|info: &GateInfo| {
            (info.stage == "build").then_some(TimeoutLayer::new(Duration::from_secs(9)))
        })
        .load(&d.path("promotion.toml"))
        .unwrap();
    let build = entry_gate_debug(&loaded, "build");
    assert!(
        build.starts_with("Timeout { inner: Retry { inner: DryRun { inner: "),
        "{build}"
    );
    let production = entry_gate_debug(&loaded, "production");
    assert!(production.starts_with("Retry { inner: "), "{production}");
    assert!(!production.contains("DryRun"), "{production}");
    let policy = loaded
        .pipeline
        .stage("build")
        .unwrap()
        .phase(PhaseId::Entry)
        .unwrap()
        .gates[0]
        .policy;
    assert_eq!(
        (policy.timeout, policy.retries),
        (Some(Duration::from_secs(60)), 2),
        "the gate's own policy stays the engine's to apply"
    );
}

#[test]
fn separation_of_duties_for_break_glass_and_the_text_bound_are_set_in_the_pipeline_section() {
    let d = Dir::new();
    let p = d.load().unwrap().pipeline;
    assert!(!p.allows_self_override(), "off by default");
    assert_eq!(p.max_text_len(), 4096);
    assert!(!p.requires_verified());
    d.write(
        "templates/web-service.toml",
        &TEMPLATE.replacen(
            "break_glass = [\"incident-commanders\"]",
            "break_glass = [\"incident-commanders\"]\nallow_self_override = true\nmax_text_len = 512\nrequire_verified = true",
            1,
        ),
    );
    let p = d.load().unwrap().pipeline;
    assert!(p.allows_self_override());
    assert_eq!(p.max_text_len(), 512);
    assert!(p.requires_verified());
}
