//! The pure, replayable state machine.
//!
//! One event stream per release holds its whole journey through the pipeline.
//! [`decide`] turns a [`Command`] into events or a typed [`Refusal`]; [`apply`] folds an event
//! into the [`ReleaseState`]; [`plan`] says what should happen next. All three are pure and
//! deterministic: no I/O, no clock, no randomness. Replaying a stream rebuilds the state exactly.
//!
//! Per stage:
//!
//! ```text
//! Waiting → Ready → Checking → AwaitingApproval → Scheduled → RollingOut(step k)
//!         → Verifying → Soaking → Promoted
//!    any active state → Failed | Rejected | Aborted | RollingBack → RolledBack
//! ```
//!
//! The parts, in the order a newcomer might read them:
//!
//! - `event`: [`Event`], [`EventBody`] and what they carry — the log's format;
//! - `state`: [`ReleaseState`] and [`StageState`], what the events fold into;
//! - `apply`: [`apply`], the fold;
//! - `command`: [`Command`] and [`Refusal`];
//! - `decide`: [`decide`], by concern (phases, approvals, rollout), and [`approvals_under`],
//!   what a stage's recorded approvals amount to under another pipeline version;
//! - `plan`: [`plan`], [`Action`] and [`Waiting`];
//! - `display`: the one-line, human-readable form of events.
//!
//! To test what the machine makes of a command without an engine, write a
//! [`Scenario`](crate::testing::Scenario): given these events, when this command, then these
//! events or this refusal.

mod apply;
mod command;
mod decide;
mod display;
mod event;
#[cfg(test)]
mod fixtures;
mod host;
mod plan;
mod state;

pub use apply::{apply, apply_mut};
pub use command::{Command, GateResult, Refusal};
pub use decide::{approvals_under, decide, ApprovalCheck};
pub use event::{Actor, ApprovalBinding, Event, EventBody, EventKind, FailureReason, Outcome};
pub use host::{EngineOnly, HostCommand};
pub use plan::{plan, Action, Plan, Waiting};
pub use state::{
    ApprovalRecord, GateRecord, OverrideRecord, PhaseState, RejectionRecord, ReleaseState,
    StageState, StageStatus,
};
