//! Configuring a [`DeploymentWindowGate`] in code or from a TOML document, each entry checked
//! and named (file, line, entry) when it is wrong.

use std::path::Path;
use std::time::Duration;

use chrono::TimeDelta;
use promotion_core::GateName;
use serde::Deserialize;

use crate::input::{line_of, located};

use super::{
    parse_instant, DeploymentWindowGate, Freeze, Window, WindowConfigError, DAY_SECS,
    MAX_HORIZON_DAYS,
};

/// The configuration document, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigDoc {
    horizon_days: Option<u32>,
    #[serde(default)]
    window: Vec<toml::Spanned<WindowDoc>>,
    #[serde(default)]
    freeze: Vec<toml::Spanned<FreezeDoc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowDoc {
    name: Option<String>,
    days: Vec<String>,
    start: String,
    end: String,
    zone: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreezeDoc {
    from: toml::Value,
    to: Option<toml::Value>,
    reason: String,
}

/// A TOML string or date-time as text.
fn instant_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Builder for [`DeploymentWindowGate`].
#[derive(Debug, Clone)]
pub struct DeploymentWindowGateBuilder {
    pub(super) name: String,
    pub(super) windows: Vec<Window>,
    pub(super) freezes: Vec<Freeze>,
    pub(super) horizon: Duration,
    pub(super) sources: Vec<(String, Vec<u8>)>,
}

impl DeploymentWindowGateBuilder {
    /// Names the gate (default `deployment-window`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Adds a window; an instant in any window is inside.
    pub fn window(mut self, window: Window) -> Self {
        self.windows.push(window);
        self
    }
    /// Adds a freeze; a freeze wins over every window.
    pub fn freeze(mut self, freeze: Freeze) -> Self {
        self.freezes.push(freeze);
        self
    }
    /// Looks this far ahead for the next opening (default 366 days); with none in it, the
    /// gate fails. Whole days from 1 to [`MAX_HORIZON_DAYS`].
    pub fn horizon(mut self, horizon: Duration) -> Self {
        self.horizon = horizon;
        self
    }
    /// Adds the windows and freezes of a TOML document (see the [module documentation](super));
    /// `source` names it in errors and evidence. Its `horizon_days`, if any, replaces the
    /// horizon.
    pub fn toml(mut self, text: &str, source: &str) -> Result<Self, WindowConfigError> {
        let doc: ConfigDoc = toml::from_str(text).map_err(|e| WindowConfigError::Document {
            what: located(source, e.span().map(|span| line_of(text, span.start))),
            message: e.message().trim_end().to_owned(),
        })?;
        for (i, w) in doc.window.iter().enumerate() {
            let entry = format!(
                "{}: window {}",
                located(source, Some(line_of(text, w.span().start))),
                i + 1
            );
            let w = w.get_ref();
            let mut window = Window::parse(&entry, &w.days, &w.start, &w.end, &w.zone)?;
            window.name = w.name.clone();
            self.windows.push(window);
        }
        for (i, f) in doc.freeze.iter().enumerate() {
            let entry = format!(
                "{}: freeze {}",
                located(source, Some(line_of(text, f.span().start))),
                i + 1
            );
            let f = f.get_ref();
            let from = parse_instant(&entry, "from", &instant_text(&f.from))?;
            let to = match &f.to {
                None => None,
                Some(v) => Some(parse_instant(&entry, "to", &instant_text(v))?),
            };
            self.freezes
                .push(Freeze::checked(&entry, from, to, f.reason.clone())?);
        }
        if let Some(days) = doc.horizon_days {
            self.horizon = Duration::from_secs(u64::from(days) * u64::from(DAY_SECS));
        }
        self.sources
            .push((source.to_owned(), text.as_bytes().to_vec()));
        Ok(self)
    }
    /// Reads [`toml`](Self::toml) from a file.
    pub fn toml_file(self, path: impl AsRef<Path>) -> Result<Self, WindowConfigError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| WindowConfigError::Unreadable {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| WindowConfigError::Document {
            what: located(
                &shown,
                Some(line_of(e.as_bytes(), e.utf8_error().valid_up_to())),
            ),
            message: "not valid UTF-8".to_owned(),
        })?;
        self.toml(&text, &shown)
    }
    /// Validates the configuration.
    pub fn build(self) -> Result<DeploymentWindowGate, WindowConfigError> {
        let name = GateName::new(self.name)?;
        if self.windows.is_empty() {
            return Err(WindowConfigError::NoWindows);
        }
        let invalid = WindowConfigError::InvalidHorizon {
            horizon: self.horizon,
        };
        let secs = self.horizon.as_secs();
        if secs == 0
            || secs % u64::from(DAY_SECS) != 0
            || secs / u64::from(DAY_SECS) > u64::from(MAX_HORIZON_DAYS)
            || self.horizon.subsec_nanos() != 0
        {
            return Err(invalid);
        }
        let horizon = i64::try_from(secs)
            .ok()
            .and_then(TimeDelta::try_seconds)
            .ok_or(invalid)?;
        Ok(DeploymentWindowGate {
            name,
            windows: self.windows,
            freezes: self.freezes,
            horizon,
            sources: self.sources,
        })
    }
}
