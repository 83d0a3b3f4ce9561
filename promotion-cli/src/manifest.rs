//! Release manifests: what `promote register` reads.
//!
//! TOML (or JSON with the same shape, for files ending in `.json`):
//!
//! ```toml
//! name = "checkout 1.4.2"
//! repository = "git@example.com:shop/checkout"
//! commit = "9fceb02d0ae598e95dc970b74767f19372d61af8"
//! committed_at = 2026-11-26T08:12:00Z   # optional; default now
//! built_at = 2026-11-26T08:40:00Z       # optional; default committed_at
//! builder = "ci.example.com/pipelines/88213"   # optional; default the registering principal
//! contributors = ["dana"]               # they may not approve it
//! labels = { ticket = "CHG-1042" }
//!
//! [[artifacts]]
//! name = "image"
//! digest = "sha256:…"
//! uri = "registry.example.com/checkout@sha256:…"   # optional
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use promotion_core::Release;
use serde::Deserialize;

use crate::failure::Failure;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactDoc {
    name: String,
    digest: String,
    #[serde(default)]
    uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    name: String,
    repository: String,
    commit: String,
    #[serde(default)]
    committed_at: Option<toml::Value>,
    #[serde(default)]
    built_at: Option<toml::Value>,
    #[serde(default)]
    builder: Option<String>,
    #[serde(default)]
    contributors: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    artifacts: Vec<ArtifactDoc>,
}

fn instant(path: &Path, field: &str, v: &toml::Value) -> Result<DateTime<Utc>, Failure> {
    let text = match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    DateTime::parse_from_rfc3339(&text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            Failure::Usage(format!(
                "{}: `{field}`: `{text}` is not an RFC 3339 date-time with an offset: {e}",
                path.display()
            ))
        })
}

/// Reads the manifest at `path`; `who` builds the release unless it names a builder.
pub(crate) fn read(path: &Path, who: &str) -> Result<Release, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let m: Manifest = if json {
        serde_json::from_str(&text).map_err(|e| {
            Failure::Usage(format!(
                "{}:{}:{}: {e}",
                path.display(),
                e.line(),
                e.column()
            ))
        })?
    } else {
        toml::from_str(&text).map_err(|e| {
            let at = e.span().map_or_else(String::new, |s| {
                let upto = text.get(..s.start).unwrap_or("");
                let line = upto.matches('\n').count() + 1;
                let col = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("{line}:{col}: ")
            });
            Failure::Usage(format!("{}:{at}{}", path.display(), e.message().trim_end()))
        })?
    };
    let committed = match &m.committed_at {
        Some(v) => instant(path, "committed_at", v)?,
        None => Utc::now(),
    };
    let mut b = Release::builder(m.name, m.repository, m.commit, committed)
        .builder(m.builder.unwrap_or_else(|| who.to_owned()));
    if let Some(v) = &m.built_at {
        b = b.built_at(instant(path, "built_at", v)?);
    }
    for c in m.contributors {
        b = b.contributor(c);
    }
    for (k, v) in m.labels {
        b = b.label(k, v);
    }
    for a in m.artifacts {
        b = match a.uri {
            Some(uri) => b.artifact_at(a.name, a.digest, uri),
            None => b.artifact(a.name, a.digest),
        };
    }
    b.build()
        .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
}
