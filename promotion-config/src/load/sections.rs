//! The template's `[pipeline]` and `[[stages]]` sections as serde reads them: the shapes
//! and defaults of every key, before the values are checked against the core types.

use std::collections::BTreeMap;

use promotion_core::{ActionKind, PhasePolicy, VerificationKind};
use serde::Deserialize;

use crate::duration::DurationValue;

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct PipelineDoc {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) break_glass: Vec<String>,
    #[serde(default)]
    pub(super) operators: Vec<String>,
    #[serde(default)]
    pub(super) allow_self_override: bool,
    #[serde(default)]
    pub(super) max_text_len: Option<usize>,
    #[serde(default)]
    pub(super) require_verified: bool,
    /// `[pipeline.accept]`: action → the verifications accepted for it.
    #[serde(default)]
    pub(super) accept: BTreeMap<ActionKind, Vec<VerificationKind>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(super) enum AvailabilityDoc {
    All,
    Any,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyDoc {
    #[serde(default)]
    pub(super) delay: Option<DurationValue>,
    #[serde(default)]
    pub(super) interval: Option<DurationValue>,
    #[serde(default)]
    pub(super) timeout: Option<DurationValue>,
    #[serde(default)]
    pub(super) all_pass_in_same_round: Option<bool>,
    #[serde(default)]
    pub(super) min_success: Option<DurationValue>,
    #[serde(default)]
    pub(super) fail_fast: Option<bool>,
    #[serde(default)]
    pub(super) consecutive_error_limit: Option<u32>,
    #[serde(default)]
    pub(super) retry_interval: Option<DurationValue>,
}

impl PolicyDoc {
    pub(super) fn policy(self) -> PhasePolicy {
        let d = PhasePolicy::default();
        PhasePolicy {
            delay: self.delay.map_or(d.delay, |v| v.0),
            interval: self.interval.map(|v| v.0).or(d.interval),
            timeout: self.timeout.map(|v| v.0).or(d.timeout),
            all_pass_in_same_round: self
                .all_pass_in_same_round
                .unwrap_or(d.all_pass_in_same_round),
            min_success: self.min_success.map_or(d.min_success, |v| v.0),
            fail_fast: self.fail_fast.unwrap_or(d.fail_fast),
            consecutive_error_limit: self
                .consecutive_error_limit
                .unwrap_or(d.consecutive_error_limit),
            retry_interval: self.retry_interval.map_or(d.retry_interval, |v| v.0),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BackoffDoc {
    #[serde(default)]
    pub(super) initial: Option<DurationValue>,
    #[serde(default)]
    pub(super) factor: Option<u32>,
    #[serde(default)]
    pub(super) max: Option<DurationValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GatePolicyDoc {
    #[serde(default)]
    pub(super) timeout: Option<DurationValue>,
    #[serde(default)]
    pub(super) retries: Option<u32>,
    #[serde(default)]
    pub(super) backoff: Option<BackoffDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StageDoc {
    pub(super) name: String,
    #[serde(default = "yes")]
    pub(super) enabled: bool,
    #[serde(default)]
    pub(super) after: Vec<String>,
    #[serde(default)]
    pub(super) availability: Option<AvailabilityDoc>,
    #[serde(default)]
    pub(super) manual_start: bool,
    #[serde(default)]
    pub(super) gates: Vec<toml::Value>,
    #[serde(default)]
    pub(super) entry_policy: Option<PolicyDoc>,
    #[serde(default)]
    pub(super) approval: Option<toml::Value>,
    #[serde(default)]
    pub(super) window: Option<toml::Value>,
    #[serde(default)]
    pub(super) rollout: Option<RolloutDoc>,
    #[serde(default)]
    pub(super) verification: Vec<toml::Value>,
    #[serde(default)]
    pub(super) verification_policy: Option<PolicyDoc>,
    #[serde(default)]
    pub(super) soak: Option<DurationValue>,
    /// `[stages.accept]`: action → the verifications accepted for it in this stage.
    #[serde(default)]
    pub(super) accept: BTreeMap<ActionKind, Vec<VerificationKind>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApprovalDoc {
    pub(super) rule: String,
    #[serde(default)]
    pub(super) expires: Option<DurationValue>,
    #[serde(default)]
    pub(super) distinct_from_upstream: bool,
    #[serde(default)]
    pub(super) allow_self_approval: bool,
    #[serde(default)]
    pub(super) before_gates: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RolloutDoc {
    #[serde(default)]
    pub(super) steps: Option<Vec<StepDoc>>,
    #[serde(default)]
    pub(super) weights: Option<Vec<i64>>,
    #[serde(default)]
    pub(super) pause: Option<DurationValue>,
    #[serde(default)]
    pub(super) analysis: Vec<toml::Value>,
    #[serde(default)]
    pub(super) analysis_policy: Option<PolicyDoc>,
    #[serde(default = "yes")]
    pub(super) auto_rollback: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StepDoc {
    pub(super) weight: i64,
    #[serde(default)]
    pub(super) pause: Option<DurationValue>,
    #[serde(default)]
    pub(super) analysis: Vec<toml::Value>,
    #[serde(default)]
    pub(super) analysis_policy: Option<PolicyDoc>,
}
