//! # promotion
//!
//! Multi-stage release promotion pipelines for Rust hosts: a release moves dev → integration →
//! compliance → canary → production only through gates (tests, metrics, policies, human
//! approvals), and every decision lands, with its evidence, in an append-only event log.
//!
//! This facade re-exports [`promotion_core`] at its root, and the reference gates, the audit
//! log and the evidence packs and reports under [`gates`], [`audit`] and [`evidence`].
//!
//! ## Usage
//!
//! ```
//! use std::sync::Arc;
//! use promotion::testing::{RecordingDeployer, ScriptedGate};
//! use promotion::{Engine, InMemoryStore, ManualClock, Pipeline, Principal, Release, StageSpec,
//!                 StageStatus};
//!
//! # futures::executor::block_on(async {
//! let pipeline = Pipeline::builder("shop", "1")
//!     .stage(StageSpec::new("dev").entry_gate(ScriptedGate::passing("unit-tests")))
//!     .stage(StageSpec::new("prod").after("dev"))
//!     .build()?;
//! let clock = Arc::new(ManualClock::auto_advancing("2026-11-26T09:00:00Z".parse()?));
//! let engine = Engine::new(pipeline, Arc::new(InMemoryStore::new()),
//!                          Arc::new(RecordingDeployer::new()), clock);
//! let release = Release::builder("api 1.0", "git@example.com:shop/api", "a".repeat(40),
//!                                "2026-11-26T08:00:00Z".parse()?)
//!     .artifact("api", format!("sha256:{}", "ab".repeat(32)))
//!     .builder("ci")
//!     .build()?;
//! let id = engine.register(release, &Principal::new("ci-bot", ["ci"])?).await?;
//! let progress = engine.run_until_blocked(&id).await?;
//! assert_eq!(progress.status("prod"), StageStatus::Promoted);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! ## Feature flags
//!
//! - `gates` (default): the reference gates, as [`gates`].
//! - `audit` (default): the tamper-evident audit log with its SQLite backend, as [`audit`].
//! - `postgres`: the audit log's PostgreSQL backend as well (implies `audit`), for several
//!   replicas sharing one log.
//! - `evidence` (default, implies `audit`): evidence packs for auditors, DORA metrics and the
//!   release-readiness page, as [`evidence`].
//!
//! ## Supported Rust versions
//!
//! 1.85 and later stable releases.

pub use promotion_core::*;

/// Reference gates (`promotion-gates`).
#[cfg(feature = "gates")]
pub use promotion_gates as gates;

/// The tamper-evident audit log (`promotion-audit`).
#[cfg(feature = "audit")]
pub use promotion_audit as audit;

/// Evidence packs, DORA reports and the readiness page (`promotion-evidence`).
#[cfg(feature = "evidence")]
pub use promotion_evidence as evidence;

/// The README's code blocks, compiled and run as doctests so that they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
