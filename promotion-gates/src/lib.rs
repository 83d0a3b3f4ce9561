//! # promotion-gates
//!
//! Reference gates for promotion pipelines: process and test runners, test reports, policy,
//! vulnerability reports, metrics, canary analysis, webhooks, signatures.
//!
//! This crate depends on `promotion-core` only. Its gates arrive with their own issues
//! (promotion-gates part 1 and part 2); until then the release-train example uses the scripted
//! gates of [`promotion_core::testing`], labelled as such.

pub use promotion_core::{Evidence, Gate, GateContext, GateError, GateKind, Verdict};
