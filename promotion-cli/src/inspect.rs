//! Showing the pipeline and its releases: `validate` and `status`.

use chrono::Utc;
use promotion_config::Service;
use promotion_core::text::escape;
use promotion_core::PhaseId;
use serde_json::json;

use crate::app::App;
use crate::failure::{Failure, OK};
use crate::show::{self, Row};
use crate::store;

impl App {
    pub(crate) fn validate(&self, json: bool) -> Result<u8, Failure> {
        let loaded = match self.load(false) {
            Ok(l) => l,
            Err(Failure::Config(e)) if json => {
                let loc = e.location();
                println!(
                    "{}",
                    json!({
                        "ok": false,
                        "error": {
                            "kind": format!("{:?}", e.kind()),
                            "file": loc.map(|l| l.file.clone()),
                            "line": loc.map(|l| l.line),
                            "column": loc.map(|l| l.column),
                            "message": e.message(),
                            "notes": e.notes(),
                            "text": e.to_string(),
                        }
                    })
                );
                return Err(Failure::Config(e));
            }
            Err(e) => return Err(e),
        };
        let p = &loaded.pipeline;
        let stages: Vec<serde_json::Value> = p
            .stages()
            .iter()
            .map(|s| {
                let names = |id: PhaseId| -> Vec<String> {
                    s.gate_names(id).iter().map(|g| g.to_string()).collect()
                };
                let steps: Vec<serde_json::Value> = s
                    .steps()
                    .iter()
                    .enumerate()
                    .map(|(k, st)| {
                        json!({
                            "weight": st.weight.get(),
                            "pause": promotion_config::format_duration(st.pause),
                            "analysis": names(PhaseId::Analysis { step: k as u32 }),
                        })
                    })
                    .collect();
                json!({
                    "name": s.name,
                    "after": s.upstream,
                    "entry": names(PhaseId::Entry),
                    "approval": s.spec.approval.as_ref().map(|a| a.rule.to_string()),
                    "rollout": steps,
                    "verification": names(PhaseId::Verification),
                    "soak": s.spec.soak.map(promotion_config::format_duration),
                    "manual_start": !s.spec.auto_start,
                })
            })
            .collect();
        let deploy = match loaded.service.as_ref().map(Service::deploy) {
            Some(promotion_config::DeploySpec::Command { command, .. }) => command.join(" "),
            _ => "none (record only)".to_owned(),
        };
        if json {
            let t = &loaded.identity.template;
            println!(
                "{}",
                json!({
                    "ok": true,
                    "pipeline": p.name(),
                    "version": p.version(),
                    "template": { "name": t.name, "version": t.version, "digest": t.digest.to_string() },
                    "service": loaded.identity.service,
                    "params": loaded.params.iter().map(|(k, v)| (k.clone(), promotion_config::registry::toml_to_json(v))).collect::<serde_json::Map<_, _>>(),
                    "deploy": deploy,
                    "stages": stages,
                })
            );
            return Ok(OK);
        }
        println!("ok: pipeline `{}`", p.name());
        println!("version: {}", p.version());
        println!("deploy: {deploy}");
        for s in p.stages() {
            let mut parts = Vec::new();
            if !s.upstream.is_empty() {
                let ups: Vec<&str> = s.upstream.iter().map(|u| u.as_str()).collect();
                parts.push(format!("after {}", ups.join(", ")));
            }
            let entry = s.gate_names(PhaseId::Entry);
            if !entry.is_empty() {
                let g: Vec<&str> = entry.iter().map(|g| g.as_str()).collect();
                parts.push(format!("gates {}", g.join(", ")));
            }
            if let Some(a) = &s.spec.approval {
                parts.push(format!("approval {}", a.rule));
            }
            if s.spec.rollout.is_some() {
                let w: Vec<String> = s.steps().iter().map(|st| st.weight.to_string()).collect();
                parts.push(format!("rollout {}", w.join(" → ")));
            }
            let ver = s.gate_names(PhaseId::Verification);
            if !ver.is_empty() {
                let g: Vec<&str> = ver.iter().map(|g| g.as_str()).collect();
                parts.push(format!("verification {}", g.join(", ")));
            }
            if let Some(d) = s.spec.soak {
                parts.push(format!("soak {}", promotion_config::format_duration(d)));
            }
            println!("  {:<14} {}", s.name.as_str(), parts.join("; "));
        }
        Ok(OK)
    }

    pub(crate) async fn status(&self, reference: Option<&str>, json: bool) -> Result<u8, Failure> {
        let loaded = self.load(false)?;
        let place = self.place();
        // A reading command creates no log: no SQLite file yet means no release yet.
        let rows = if place.database.is_none() && !place.dir.join(store::DB_FILE).exists() {
            Vec::new()
        } else {
            let store = store::open_existing(&place)?;
            show::releases(&store, loaded.pipeline.name()).await?
        };
        let p = &loaded.pipeline;
        let now = Utc::now();
        let rows: Vec<&Row> = match reference {
            Some(r) => vec![show::resolve(&rows, r)?],
            None => rows.iter().collect(),
        };
        let describe = |row: &Row| {
            let plan = promotion_core::plan(p, &row.state, now);
            let stages: serde_json::Map<String, serde_json::Value> = p
                .stages()
                .iter()
                .map(|s| {
                    (
                        s.name.to_string(),
                        json!(row.state.status(s.name.as_str()).label()),
                    )
                })
                .collect();
            json!({
                "id": row.id.to_string(),
                "name": row.name,
                "registered_at": row.registered.to_rfc3339(),
                "pipeline_version": row.state.pipeline_version(),
                "stages": stages,
                "waiting": plan.waiting().iter().map(ToString::to_string).collect::<Vec<_>>(),
                "unverified_decisions": unverified(row),
            })
        };
        if json {
            let releases: Vec<serde_json::Value> = rows.iter().map(|r| describe(r)).collect();
            println!(
                "{}",
                json!({ "pipeline": p.name(), "version": p.version(), "releases": releases })
            );
            return Ok(OK);
        }
        if let (Some(_), [row]) = (reference, rows.as_slice()) {
            println!("release {} {}", row.id, row.name);
            println!("pipeline version {}", row.state.pipeline_version());
            for s in p.stages() {
                let st = row.state.stage(s.name.as_str());
                println!("  {:<14} {}", s.name.as_str(), st.status());
                for (label, ps) in [
                    ("entry", st.entry()),
                    ("analysis", st.analysis()),
                    ("verification", st.verification()),
                ] {
                    for (g, r) in ps.gates() {
                        let mut line = format!("    {label} gate {g}: {}", r.outcome());
                        if let Some(by) = r.overridden_by() {
                            line.push_str(&format!(" (overridden by {by})"));
                        }
                        println!("{line}");
                    }
                }
                for a in st.approvals() {
                    let void = if a.is_voided() {
                        " (void: the pipeline version changed since)"
                    } else {
                        ""
                    };
                    println!("    approved by {} at {}{void}", how(a.principal()), a.at());
                }
                if let Some(r) = st.rejection() {
                    println!(
                        "    rejected by {}: {}",
                        how(r.principal()),
                        escape(r.comment())
                    );
                }
                if let Some(f) = st.failure() {
                    println!("    failed: {}", escape(&f.to_string()));
                }
            }
            for e in &row.events {
                if e.body.decided_by().is_some_and(|d| d.verified.is_none()) {
                    println!("UNVERIFIED: {}", show::event_line(e));
                }
            }
            let plan = promotion_core::plan(p, &row.state, now);
            for w in plan.waiting() {
                println!("waiting for {w}");
            }
            return Ok(OK);
        }
        let mut header = vec!["RELEASE".to_owned(), "NAME".to_owned()];
        header.extend(p.stages().iter().map(|s| s.name.to_string().to_uppercase()));
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let mut cells = vec![r.id.short(), r.name.clone()];
                cells.extend(
                    p.stages()
                        .iter()
                        .map(|s| r.state.status(s.name.as_str()).label().to_owned()),
                );
                cells
            })
            .collect();
        print!("{}", show::table(&header, &table));
        for r in &rows {
            let n = unverified(r);
            if n > 0 {
                println!(
                    "UNVERIFIED: {} ({}) has {n} decision(s) recorded without a verified identity",
                    r.id.short(),
                    r.name
                );
            }
        }
        if table.is_empty() {
            println!("(no release registered; `promote register --manifest <file>`)");
        }
        Ok(OK)
    }
}

/// A decider's id with how they were verified, or `UNVERIFIED` when the host only said so.
fn how(p: &promotion_core::Principal) -> String {
    match &p.verified {
        Some(v) => format!("{} ({})", p.id, v.method()),
        None => format!("{} (UNVERIFIED)", p.id),
    }
}

/// How many of a release's decisions (approvals, rejections, overrides, judgements, aborts)
/// name a person no roster, signature or token vouched for.
fn unverified(row: &Row) -> usize {
    row.events
        .iter()
        .filter(|e| e.body.decided_by().is_some_and(|d| d.verified.is_none()))
        .count()
}
