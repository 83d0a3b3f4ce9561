//! The kinds about a release's paperwork and timing: `change-record` and
//! `deployment-window`.

use promotion_gates::change::RecordFormat;
use promotion_gates::window::{Freeze, Window};
use promotion_gates::{ChangeRecordGate, DeploymentWindowGate};
use serde::Deserialize;

use super::{built, path_string, Built};
use crate::registry::{BuildContext, Settings};

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
