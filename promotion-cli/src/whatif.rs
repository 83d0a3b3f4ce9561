//! `what-if`: the recorded history replayed under another template version.

use std::path::PathBuf;

use promotion_config::WhatIfVerdict;
use serde_json::json;

use crate::app::App;
use crate::failure::{Failure, OK, REFUSED};
use crate::show;
use crate::store;

impl App {
    pub(crate) async fn what_if(
        &self,
        template: Option<PathBuf>,
        version: Option<String>,
        json: bool,
    ) -> Result<u8, Failure> {
        let loader = self.loader(false);
        let current = self.load(false)?;
        let service = current.service.as_ref().ok_or_else(|| {
            Failure::Usage("what-if needs a service file (--file) naming its template".into())
        })?;
        let next = match (template, version) {
            (Some(path), None) => {
                let t = promotion_config::Template::from_file(&path)?;
                loader.instantiate(&t, Some(service))?
            }
            (None, Some(v)) => {
                let t = loader.find_template_version(service, &current.template.id().name, &v)?;
                loader.instantiate(&t, Some(service))?
            }
            _ => {
                return Err(Failure::Usage(
                    "what-if needs --template <file> or --template-version <version>".into(),
                ))
            }
        };
        let store = store::open_existing(&self.place())?;
        let rows = show::releases(&store, current.pipeline.name()).await?;
        let report =
            promotion_config::what_if(rows.iter().map(|r| r.events.as_slice()), &next.pipeline);
        let code = if report.blocked_promotions() > 0 {
            REFUSED
        } else {
            OK
        };
        if json {
            let mut v = serde_json::to_value(&report)
                .map_err(|e| Failure::Store(format!("cannot render the report: {e}")))?;
            if let Some(o) = v.as_object_mut() {
                o.insert("promotions".into(), json!(report.promotions()));
                o.insert(
                    "blocked_promotions".into(),
                    json!(report.blocked_promotions()),
                );
                o.insert(
                    "unknown_promotions".into(),
                    json!(report.unknown_promotions()),
                );
            }
            println!("{v}");
            return Ok(code);
        }
        println!("what-if: {} under {}", report.pipeline, report.version);
        println!(
            "{} recorded promotions in {} releases: {} would have been blocked, {} would have needed evaluation",
            report.promotions(),
            report.releases.len(),
            report.blocked_promotions(),
            report.unknown_promotions()
        );
        for r in &report.releases {
            println!("release {} {}", r.release.short(), r.name);
            for s in &r.stages {
                let verdict = match s.verdict {
                    WhatIfVerdict::Allowed => "allowed",
                    WhatIfVerdict::Blocked => "BLOCKED",
                    WhatIfVerdict::Unknown => "unknown",
                    WhatIfVerdict::NotInTemplate => "not in template",
                };
                println!("  {:<14} {:<18} -> {verdict}", s.stage, s.recorded);
                for f in &s.findings {
                    println!("      {f}");
                }
            }
        }
        Ok(code)
    }
}
