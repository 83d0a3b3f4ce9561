//! # promotion-config
//!
//! Pipelines as code for [promotion](https://example.invalid/promotion): a pipeline defined in
//! a versioned TOML **template** with typed parameters, instantiated for a **service**, built
//! into the same [`Pipeline`](promotion_core::Pipeline) code builds, with every problem
//! reported at its file, line and column.
//!
//! ## Overview
//!
//! - [`Template`]: `[template]` name and version, `[params.*]` declarations, `[pipeline]` and
//!   `[[stages]]` (upstreams, gates by `kind`, approval expressions, windows, rollout plans,
//!   soak times, phase policies; durations as strings).
//! - [`Service`]: which template (by path, or by name and version from a template
//!   directory, optionally pinned by digest), with which parameter values, deployed how.
//! - [`Loader`]: finds the template, checks and substitutes the parameters (`{{ name }}`),
//!   builds every gate through the [`GateRegistry`] (wrapped in the host's gate layers:
//!   [`Loader::layer`], [`Loader::layer_for`]), and validates the pipeline. The built
//!   pipeline's version string names the template, its version and digest, and the service
//!   file's digest ([`PipelineIdentity`]), so the audit log records them with every decision.
//! - [`GateRegistry`]: `kind` → constructor; [`GateRegistry::builtin`] knows every reference
//!   gate ([`builtin`] lists their settings); hosts register their own kinds.
//! - [`parse_approval_rule`]: `2 of sre AND 1 of security`,
//!   `if change-record.risk = high then 1 of cab`.
//! - [`what_if`]: replays a pipeline's recorded history under a new definition and reports
//!   which past promotions it would have blocked, by which gate or rule.
//!
//! YAML is not supported: TOML's spans give every error its line and column, and the
//! maintained YAML crates for serde do not offer them in the same way.
//!
//! ## A template
//!
//! ```toml
//! [template]
//! name = "web-service"
//! version = "2.1.0"
//!
//! [params.min_tests]
//! type = "integer"
//! default = 100
//!
//! [[stages]]
//! name = "build"
//! [[stages.gates]]
//! kind = "test-report"
//! name = "{{ service }}-tests"
//! files = ["reports/junit.xml"]
//! min_tests = "{{ min_tests }}"
//!
//! [[stages]]
//! name = "production"
//! after = ["build"]
//! approval = "2 of sre AND 1 of security"
//! soak = "1h"
//! rollout = { weights = [10, 50, 100], pause = "5m" }
//! ```
//!
//! A stage has `name`, `after`, `availability` (`all` or `any`), `manual_start`, `enabled`
//! (a disabled stage is bypassed: its downstreams wait for its upstreams), `gates` (entry
//! gates) and `entry_policy`, `approval` (a rule, or a table with `rule`, `expires`,
//! `distinct_from_upstream`, `allow_self_approval`, `before_gates`), `window` (the settings
//! of a `deployment-window` gate), `rollout` (`steps = [{ weight, pause, analysis = [gates],
//! analysis_policy }]` or `weights = [...]` with a shared `pause`, `analysis` and
//! `analysis_policy`; `auto_rollback`), `verification` (gates) and `verification_policy`, and
//! `soak`, and `accept` (below). A phase policy has `delay`, `interval`, `timeout`, `all_pass_in_same_round`,
//! `min_success`, `fail_fast`, `consecutive_error_limit` and `retry_interval`. `[pipeline]`
//! has `name` (default: the service's), `break_glass` and `operators` (groups),
//! `allow_self_override` (let a release's builder, contributors and initiator override and
//! judge its gates; off by default) and `max_text_len` (the bound on comments,
//! justifications and reasons in bytes; default 4096) and `require_verified` (refuse a
//! person's command unless the host says how it verified them; off by default).
//!
//! `[pipeline.accept]` and a stage's `[stages.accept]` map an action (`register`, `start`,
//! `approve`, `reject`, `override`, `judge`, `abort`, `roll_back`) to the verifications
//! accepted for it (`roster`, `ssh_signature`, `oidc`); a stage's rule for an action replaces
//! the pipeline's, `register` is pipeline-wide only, and an empty list is refused:
//!
//! ```toml
//! [pipeline.accept]
//! register = ["oidc", "roster"]     # CI by its OIDC token, or a person from the roster
//!
//! [[stages]]
//! name = "production"
//! [stages.accept]
//! approve = ["ssh_signature"]       # people sign production approvals…
//! override = ["ssh_signature"]      # …and break glass
//! ```
//!
//! The rules are part of the template, whose digest is in the pipeline's version: changing
//! them changes the version, and approvals given under the old rules stop counting.
//!
//! ## Supported Rust versions
//!
//! The workspace's `rust-version` (1.85) and later stable releases.

pub mod builtin;
pub mod duration;
pub mod error;
pub mod expr;
pub mod identity;
pub mod load;
pub mod params;
pub mod registry;
pub mod service;
pub mod source;
pub mod template;
pub mod whatif;

pub use duration::{format_duration, parse_duration, DurationValue};
pub use error::{ConfigError, ErrorKind, Location};
pub use expr::{parse_approval_rule, ExprError};
pub use identity::{PipelineIdentity, RecordedIdentity};
pub use load::{GateInfo, Loaded, Loader};
pub use params::{ParamDecl, ParamType};
pub use registry::{BuildContext, GateConstructor, GateRegistry, Settings};
pub use service::{DeploySpec, IdentitySource, Service, TemplateRef};
pub use source::SourceFile;
pub use template::{Template, TemplateId};
pub use whatif::{what_if, Finding, ReleaseWhatIf, StageWhatIf, WhatIfReport, WhatIfVerdict};
