//! The kinds that ask something outside: `process` runs a program, `webhook` calls an
//! HTTP endpoint.

use std::collections::BTreeMap;

use promotion_core::GateKind;
use promotion_gates::process::{OnTimeout, Secret};
use promotion_gates::{ProcessGate, WebhookGate};
use serde::Deserialize;

use super::{built, path_string, Built};
use crate::duration::DurationValue;
use crate::registry::{toml_to_json, BuildContext, Settings};

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
