//! # promotion-core
//!
//! The domain model, the gate traits and the pure, replayable state machine of
//! [promotion](https://example.invalid/promotion): releases move through the stages of a
//! pipeline only through gates, and every decision is an event. Core depends on no async
//! runtime and performs no I/O of its own.
//!
//! ## Overview, by reader
//!
//! **A host embedding the engine** defines a [`Pipeline`] of [`StageSpec`]s (a validated DAG
//! with entry gates, an [`ApprovalPolicy`], a [`RolloutPlan`], verification gates and soak
//! times) and builds each [`Release`], an immutable, content-addressed bundle of artifacts. An
//! [`Engine`] runs the gates, calls the host's [`Deployer`] and appends to an [`EventStore`]
//! (`promotion-audit`'s tamper-evident log; [`InMemoryStore`] for tests), timed by a
//! [`Clock`] ([`SystemClock`]). The host registers releases, submits people's
//! [`HostCommand`]s on behalf of an authenticated [`Principal`], and calls
//! [`Engine::advance`]; it gets back a [`Progress`] or an [`EngineError`]. Replicas sharing a
//! store coordinate through [`ReplicaOptions`]. Names ([`StageName`], [`GateName`], …) are
//! validated newtypes, in [`name`].
//!
//! **A gate author** implements [`Gate`]: one async method that reads a [`GateContext`] and
//! returns a [`Verdict`] with its [`Evidence`], or a [`GateError`]. Timeouts, retries and
//! sampling are not the gate's business: the engine applies a [`GateSpec`]'s [`GatePolicy`]
//! and a [`PhasePolicy`] around it, and [`layer`] offers the same as decorators. A gate that
//! waits on its clock adds and subtracts durations with [`clock::add`] and [`clock::elapsed`].
//!
//! **A backend author** implements [`EventStore`] and, for a store that replicas share,
//! [`LeaseStore`], with the helpers in [`backend`].
//!
//! **Tests** use [`testing`]: scripted gates, a recording deployer and given/when/then
//! scenarios of the state machine, with a [`ManualClock`] so that nothing sleeps.
//!
//! **The state machine** is [`machine`]: [`decide`] turns a [`Command`] into [`Event`]s or a
//! [`Refusal`], [`apply`] folds events into a [`ReleaseState`], and [`plan`] says what should
//! happen next; all three are pure and deterministic.
//!
//! ## Supported Rust versions
//!
//! The workspace's `rust-version` (1.85) and later stable releases.

pub mod backend;
pub mod clock;
pub mod layer;
pub mod machine;
pub mod name;
pub mod testing;
pub mod text;

mod approval;
mod digest;
mod engine;
mod gate;
mod lease;
mod pipeline;
mod principal;
mod release;
mod store;
mod vecmap;
mod verification;

// A host embedding the engine.
pub use approval::{ApprovalPolicy, ApprovalRule, Unsatisfiable};
pub use clock::{Clock, ManualClock, SystemClock};
pub use digest::{canonical_json, Digest, DigestError};
pub use engine::{
    DeployError, DeployTarget, Deployer, Engine, EngineError, HeldElsewhere, Progress,
    ReplicaOptions,
};
pub use name::{
    GateName, Group, InvalidName, PipelineName, PrincipalId, ReplicaId, RequestId, StageName,
};
pub use pipeline::{
    Availability, Percent, Pipeline, PipelineBuilder, PipelineError, RolloutPlan, RolloutStep,
    Stage, StageSpec,
};
pub use principal::{Principal, Verification};
pub use release::{Artifact, Release, ReleaseBuilder, ReleaseError, ReleaseId, SourceRef};
pub use verification::{AcceptedVerifications, ActionKind, UnknownKind, VerificationKind};

// A gate author.
pub use gate::{
    report_chain, Attachment, Backoff, Evidence, Gate, GateContext, GateError, GateKind,
    GatePolicy, GateSpec, Phase, PhaseId, PhasePolicy, Verdict,
};

// A backend author.
pub use lease::{Acquired, Lease, LeaseKey, LeaseStore};
pub use store::{EventStore, ExpectedVersion, InMemoryStore, Recorded, StoreError, StreamId};

// The state machine: its entry points, and the commands, events and state it works on
// (documented in `machine`, with the rest of it).
pub use machine::{
    apply, decide, plan, Action, Actor, Command, EngineOnly, Event, EventBody, EventKind,
    FailureReason, GateResult, HostCommand, Outcome, Plan, Refusal, ReleaseState, StageState,
    StageStatus, Waiting,
};
