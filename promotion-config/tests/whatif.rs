//! What-if: real histories, recorded by the engine under one template version, replayed under
//! the next.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use async_trait::async_trait;
use promotion_config::{
    what_if, BuildContext, ConfigError, Finding, GateRegistry, Loader, Settings, SourceFile,
    Template, WhatIfVerdict,
};
use promotion_core::testing::RecordingDeployer;
use promotion_core::HostCommand;
use promotion_core::{
    Engine, Event, EventStore, Evidence, Gate, GateContext, GateError, InMemoryStore, ManualClock,
    Principal, Release, Verdict,
};

/// A host's own gate kind: passes when the release has label `label` = `equals`.
#[derive(Debug)]
struct LabelGate {
    name: String,
    label: String,
    equals: String,
}

#[async_trait]
impl Gate for LabelGate {
    fn name(&self) -> &str {
        &self.name
    }
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let found = ctx.release.labels().get(&self.label).cloned();
        let ok = found.as_deref() == Some(self.equals.as_str());
        let ev = Evidence::new(&self.name, ctx.now(), format!("{} = {found:?}", self.label));
        Ok(Verdict::pass_if(ok, ev))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelSettings {
    label: String,
    equals: String,
}

fn label_gate(s: &Settings, ctx: &BuildContext) -> Result<Arc<dyn Gate>, ConfigError> {
    let cfg: LabelSettings = s.deserialize()?;
    Ok(Arc::new(LabelGate {
        name: ctx.gate_name().unwrap_or("label").to_owned(),
        label: cfg.label,
        equals: cfg.equals,
    }))
}

const V1: &str = r#"[template]
name = "svc"
version = "1"

[[stages]]
name = "build"
gates = [
  { kind = "label", name = "tests", label = "tests", equals = "green" },
  { kind = "label", name = "lint", label = "lint", equals = "clean" },
]

[[stages]]
name = "prod"
after = ["build"]
approval = { rule = "2 of sre", allow_self_approval = true }
"#;

const V2: &str = r#"[template]
name = "svc"
version = "2"

[[stages]]
name = "build"
gates = [
  { kind = "label", name = "tests", label = "tests", equals = "green" },
  { kind = "label", name = "sast", label = "sast", equals = "clean" },
]

[[stages]]
name = "docs"
after = ["build"]

[[stages]]
name = "prod"
after = ["build"]
approval = "1 of sre AND 1 of security"
"#;

fn loader() -> Loader {
    Loader::with_registry(GateRegistry::builtin().with("label", label_gate))
}

fn pipeline(text: &str) -> promotion_core::Pipeline {
    let t = Template::parse(SourceFile::new("svc.toml", text)).unwrap();
    loader().instantiate(&t, None).unwrap().pipeline
}

fn release(name: &str, labels: &[(&str, &str)]) -> Release {
    let mut b = Release::builder(
        name,
        "git@example.com:svc",
        "a".repeat(40),
        "2026-01-05T09:00:00Z".parse().unwrap(),
    )
    .artifact("image", format!("sha256:{}", "b".repeat(64)))
    .builder("ci");
    for (k, v) in labels {
        b = b.label(*k, *v);
    }
    b.build().unwrap()
}

fn p(id: &str, groups: &[&str]) -> Principal {
    Principal::new(id, groups.iter().copied()).unwrap()
}

/// A release: its name, labels, initiator and the approvers of `prod`.
type Case<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a Principal,
    &'a [Principal],
);

/// Records four releases under V1 and returns their streams.
async fn history() -> Vec<Vec<Event>> {
    let store = Arc::new(InMemoryStore::new());
    let clock = Arc::new(ManualClock::auto_advancing(
        "2026-01-05T10:00:00Z".parse().unwrap(),
    ));
    let engine = Engine::new(
        pipeline(V1),
        store.clone(),
        Arc::new(RecordingDeployer::new()),
        clock,
    );
    let ci = p("ci-bot", &["ci"]);
    let green = [("tests", "green"), ("lint", "clean")];
    let cases: [Case<'_>; 4] = [
        (
            "a",
            &green,
            &ci,
            &[p("alice", &["sre"]), p("carol", &["sre"])],
        ),
        ("b", &[("tests", "red"), ("lint", "clean")], &ci, &[]),
        (
            "c",
            &green,
            &ci,
            &[p("alice", &["sre"]), p("bob", &["sre", "security"])],
        ),
        (
            "d",
            &green,
            &p("dana", &["sre"]),
            &[p("dana", &["sre"]), p("alice", &["sre"])],
        ),
    ];
    for (name, labels, initiator, approvers) in cases {
        let id = engine
            .register(release(name, labels), initiator)
            .await
            .unwrap();
        engine.run_until_blocked(&id).await.unwrap();
        for a in approvers {
            engine
                .submit(&id, HostCommand::approve("prod", a, "ok").unwrap())
                .await
                .unwrap();
        }
        engine.run_until_blocked(&id).await.unwrap();
    }
    let mut streams = Vec::new();
    for s in store.streams().await.unwrap() {
        streams.push(
            store
                .read(&s)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.event)
                .collect(),
        );
    }
    streams
}

#[test]
fn replays_history_under_the_new_template() {
    let streams = futures::executor::block_on(history());
    let v2 = pipeline(V2);
    let report = what_if(streams.iter().map(Vec::as_slice), &v2);
    assert_eq!(report.releases.len(), 4);
    let rel = |n: &str| report.releases.iter().find(|r| r.name == n).unwrap();
    let stage = |n: &str, s: &str| rel(n).stages.iter().find(|x| x.stage == s).unwrap().clone();

    // a: the new security seat is empty; sast has no evidence; lint is gone; docs is new.
    let prod = stage("a", "prod");
    assert_eq!(prod.recorded, "promoted");
    assert_eq!(prod.verdict, WhatIfVerdict::Blocked);
    assert_eq!(
        prod.findings,
        [Finding::ApprovalBlocks {
            rule: "(1 of sre AND 1 of security)".into(),
            counted: vec!["alice (sre)".into(), "carol (sre)".into()],
        }]
    );
    assert!(prod.findings[0]
        .to_string()
        .starts_with("blocked by approval rule (1 of sre AND 1 of security)"));
    let build = stage("a", "build");
    assert_eq!(build.verdict, WhatIfVerdict::Unknown);
    assert!(build.findings.contains(&Finding::NoEvidence {
        phase: "entry".into(),
        gate: "sast".into()
    }));
    assert!(build.findings.contains(&Finding::GateRemoved {
        phase: "entry".into(),
        gate: "lint".into(),
        recorded: "pass".into()
    }));
    assert_eq!(
        build.findings[0].to_string(),
        "gate `sast` (entry): no recorded evidence: would have been evaluated"
    );
    assert_eq!(stage("a", "docs").findings, [Finding::StageNew]);

    // b failed its tests: still blocked by the same gate; never reached prod.
    let build = stage("b", "build");
    assert_eq!(build.recorded, "failed");
    assert_eq!(build.verdict, WhatIfVerdict::Blocked);
    assert!(build.findings.contains(&Finding::GateBlocks {
        phase: "entry".into(),
        gate: "tests".into(),
        recorded: "fail".into()
    }));
    assert!(rel("b")
        .stages
        .iter()
        .all(|s| s.stage != "prod" && s.stage != "docs"));

    // c: bob fills the security seat, alice the sre one.
    assert_eq!(stage("c", "prod").verdict, WhatIfVerdict::Allowed);

    // d: dana approved her own release, which v1 allowed and v2 does not.
    assert_eq!(
        stage("d", "prod").findings,
        [Finding::ApprovalBlocks {
            rule: "(1 of sre AND 1 of security)".into(),
            counted: vec!["alice (sre)".into()],
        }]
    );

    assert_eq!(report.promotions(), 6);
    assert_eq!(report.blocked_promotions(), 2);
    assert_eq!(report.unknown_promotions(), 3);
    assert!(report.version.starts_with("svc (template svc@2 sha256:"));

    // The same history replayed under its own definition blocks nothing.
    let same = what_if(streams.iter().map(Vec::as_slice), &pipeline(V1));
    assert_eq!(same.blocked_promotions(), 0);
    assert_eq!(same.unknown_promotions(), 0);
    assert!(same
        .releases
        .iter()
        .flat_map(|r| &r.stages)
        .filter(|s| s.recorded == "promoted")
        .all(|s| s.verdict == WhatIfVerdict::Allowed));
}

#[test]
fn other_pipelines_and_removed_stages() {
    let streams = futures::executor::block_on(history());
    let renamed = V2.replace("name = \"prod\"", "name = \"production\"");
    let report = what_if(streams.iter().map(Vec::as_slice), &pipeline(&renamed));
    let a = report.releases.iter().find(|r| r.name == "a").unwrap();
    let prod = a.stages.iter().find(|s| s.stage == "prod").unwrap();
    assert_eq!(prod.verdict, WhatIfVerdict::NotInTemplate);
    assert_eq!(prod.findings, [Finding::StageRemoved]);
    let production = a.stages.iter().find(|s| s.stage == "production").unwrap();
    assert_eq!(production.findings, [Finding::StageNew]);

    let other = pipeline(&V2.replace("[template]\nname = \"svc\"", "[template]\nname = \"other\""));
    assert!(what_if(streams.iter().map(Vec::as_slice), &other)
        .releases
        .is_empty());
}
