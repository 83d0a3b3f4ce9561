//! # promotion-core
//!
//! The domain model, the gate traits and the pure, replayable state machine of
//! [promotion](https://example.invalid/promotion): releases move through the stages of a
//! pipeline only through gates, and every decision is an event.
//!
//! ## Overview
//!
//! - [`Release`]: an immutable, content-addressed bundle of artifacts.
//! - [`Pipeline`] of [`StageSpec`]s: a validated DAG with entry gates, approvals, rollout
//!   plans, verification gates and soak times.
//! - [`Gate`]: one trait, one async method; [`GatePolicy`] and [`PhasePolicy`] wrap it with
//!   timeouts, retries and sampling.
//! - [`decide`], [`apply`], [`plan`]: the state machine, pure and deterministic.
//! - [`Engine`]: runs gates, calls the host's [`Deployer`], appends to an [`EventStore`].
//! - [`Clock`]: [`SystemClock`] for hosts, [`ManualClock`] for tests.
//! - [`testing`]: scripted gates and a recording deployer for hosts' own tests.
//!
//! Core depends on no async runtime and performs no I/O of its own.
//!
//! ## Supported Rust versions
//!
//! The workspace's `rust-version` (1.85) and later stable releases.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod approval;
pub mod backend;
pub mod clock;
pub mod digest;
pub mod engine;
pub mod gate;
pub mod layer;
pub mod lease;
pub mod machine;
pub mod name;
pub mod pipeline;
pub mod principal;
pub mod release;
pub mod store;
pub mod testing;
pub mod vecmap;

pub use approval::{ApprovalPolicy, ApprovalRule, Unsatisfiable};
pub use clock::{Clock, ManualClock, SystemClock};
pub use digest::{canonical_json, Digest, DigestError};
pub use engine::{
    DeployError, Deployer, Engine, EngineError, HeldElsewhere, Progress, ReplicaOptions,
};
pub use gate::{
    report_chain, Attachment, Backoff, Evidence, Gate, GateContext, GateError, GateKind,
    GatePolicy, GateSpec, Phase, PhaseId, PhasePolicy, Verdict,
};
pub use lease::{Acquired, Lease, LeaseKey, LeaseStore};
pub use machine::{
    apply, decide, plan, Action, Actor, Command, EngineOnly, Event, EventBody, EventKind,
    FailureReason, GateResult, HostCommand, Outcome, Plan, Refusal, ReleaseState, StageState,
    StageStatus, Waiting,
};
pub use name::{
    GateName, Group, InvalidName, PipelineName, PrincipalId, ReplicaId, RequestId, StageName,
};
pub use pipeline::{
    Availability, Percent, Pipeline, PipelineBuilder, PipelineError, RolloutPlan, RolloutStep,
    Stage, StageSpec,
};
pub use principal::Principal;
pub use release::{Artifact, Release, ReleaseBuilder, ReleaseError, ReleaseId, SourceRef};
pub use store::{EventStore, ExpectedVersion, InMemoryStore, Recorded, StoreError, StreamId};
