//! # promotion-evidence
//!
//! What an auditor and a release manager read, made from the tamper-evident audit log of
//! [promotion](https://example.invalid/promotion): evidence packs, DORA metrics and a static
//! release-readiness page.
//!
//! ## Overview
//!
//! - [`EvidencePack::export`]: one directory (and optionally one tar archive) holding every
//!   log entry of a release with its RFC 6962 inclusion proof against the log's signed
//!   checkpoint, one in-toto attestation per stage decision (SLSA Verification Summary) and
//!   per test report (in-toto test result), each in a DSSE envelope signed with Ed25519, the
//!   raw evidence attachments by digest, and a signed manifest of every file. Layout and
//!   formats: [`pack`].
//! - [`verify_pack`]: checks a pack offline, with the checkpoint key and the attestation key
//!   alone, and names every file, entry and value that does not match ([`verify`]).
//! - [`Report::from_store`]: DORA metrics (deployment frequency, lead time for changes, change
//!   failure rate, time to restore), gate pass rates, approval waits and history, overrides,
//!   and where recent releases stand — a pure function of the events, serialisable as JSON
//!   ([`report`]).
//! - [`render_html`]: the report as one self-contained HTML page with inline SVG charts and no
//!   script ([`html`]).
//!
//! ## Usage
//!
//! ```
//! use std::sync::Arc;
//! use promotion_audit::{AuditOptions, AuditStore, CheckpointSigner};
//! use promotion_core::testing::{RecordingDeployer, ScriptedGate};
//! use promotion_core::{Engine, ManualClock, Pipeline, Principal, Release, StageSpec};
//! use promotion_evidence::{verify_pack, AttestationSigner, EvidencePack, Period, Report};
//!
//! # futures::executor::block_on(async {
//! let clock = Arc::new(ManualClock::at("2026-11-26T09:00:00Z".parse()?));
//! let log_key = CheckpointSigner::generate("audit.example/shop")?;
//! let log_verifier = log_key.verifier();
//! let store = AuditStore::memory(AuditOptions::new("audit.example/shop").signer(log_key))?;
//! let pipeline = Pipeline::builder("shop", "1")
//!     .stage(StageSpec::new("production").entry_gate(ScriptedGate::passing("smoke")))
//!     .build()?;
//! let engine = Engine::new(pipeline, Arc::new(store.clone()),
//!                          Arc::new(RecordingDeployer::new()), clock.clone());
//! let release = Release::builder("api 1.0", "git@example.com:shop/api", "a".repeat(40),
//!                                "2026-11-26T08:00:00Z".parse()?)
//!     .artifact("api", format!("sha256:{}", "ab".repeat(32)))
//!     .builder("ci")
//!     .build()?;
//! let id = engine.register(release, &Principal::new("ci-bot", ["ci"])?).await?;
//! engine.run_until_blocked(&id).await?;
//!
//! // An evidence pack, verified offline with the two public keys.
//! let key = AttestationSigner::generate()?;
//! let dir = tempfile::tempdir()?;
//! let summary = EvidencePack::export(&store, &id, &key, dir.path().join("pack")).await?;
//! let report = verify_pack(&summary.dir, &log_verifier, &key.verifier())?;
//! assert_eq!(report.stages, vec![("production".to_owned(), "promoted".to_owned())]);
//!
//! // DORA metrics and the readiness page.
//! let period = Period::days_until("2026-11-27T00:00:00Z".parse()?, 7)?;
//! let metrics = Report::from_store(&store, period).await?;
//! assert_eq!(metrics.pipelines[0].dora.production_promotions, 1);
//! let html = promotion_evidence::render_html(&metrics);
//! assert!(html.contains("api 1.0"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! ## Supported Rust versions
//!
//! The workspace's `rust-version` (1.85) and later stable releases.

pub mod attachments;
pub mod dsse;
pub mod export;
pub mod html;
pub mod intoto;
pub mod pack;
pub mod report;
pub mod verify;

pub use attachments::{AttachmentDir, AttachmentSource, MemoryAttachments};
pub use dsse::{AttestationSigner, AttestationVerifier, DsseError, Envelope, KeyError};
pub use export::{EvidencePack, ExportError, ExportOptions, PackSummary};
pub use html::render_html;
pub use pack::{Manifest, StatementOptions};
pub use report::{
    Compliance, Dora, DurationStats, Period, PipelineReport, RefusedAttempt, Report, ReportError,
    ReportOptions,
};
pub use verify::{verify_files_in_memory, verify_pack, PackError, PackReport, Problem};

pub use promotion_audit::CheckpointVerifier;
