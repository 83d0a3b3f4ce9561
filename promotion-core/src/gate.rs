//! Gates: the checks that decide whether a release may enter or stay in a stage.
//!
//! A gate is one trait with one async method. Retries, timeouts and sampling are not the gate's
//! business: the engine applies a [`GatePolicy`] and a [`PhasePolicy`] around it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::digest::Digest;
use crate::machine::ReleaseState;
use crate::name::{GateName, PipelineName, StageName};
use crate::release::Release;

/// What kind of check a gate performs; reports group verdicts by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    /// Tests, metrics, scans: decided by a machine.
    #[default]
    Automated,
    /// Policy-as-code and paperwork checks that a compliance stage requires.
    Compliance,
    /// A check that asks a person (a sign-off form, a ticket state).
    Manual,
}

/// What a gate observed: recorded with its verdict, hashed, and kept in the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Who produced it (the gate, or the tool behind it).
    pub producer: String,
    /// When it was observed.
    pub observed_at: DateTime<Utc>,
    /// One line a release manager understands (`412 tests, 0 failed`).
    pub summary: String,
    /// Structured detail (counts, thresholds, query results).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
    /// Digests of the raw material the gate read (logs, reports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Small named results other rules may depend on (`risk` = `high`): kept in the release's
    /// state, usable in approval conditions ([`ApprovalRule::When`](crate::ApprovalRule::When))
    /// and by later gates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
}

/// A reference, by digest, to raw material behind a piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Name (`junit.xml`, `stdout`).
    pub name: String,
    /// Digest of the bytes.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}

impl Evidence {
    /// Evidence from `producer` observed at `observed_at`.
    pub fn new(
        producer: impl Into<String>,
        observed_at: DateTime<Utc>,
        summary: impl Into<String>,
    ) -> Self {
        Evidence {
            producer: producer.into(),
            observed_at,
            summary: summary.into(),
            data: serde_json::Value::Null,
            attachments: Vec::new(),
            facts: BTreeMap::new(),
        }
    }
    /// Declares a fact (`risk` = `high`).
    pub fn with_fact(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.facts.insert(name.into(), value.into());
        self
    }
    /// Attaches structured data.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }
    /// Records the digest and size of raw bytes the gate read.
    pub fn with_attachment(mut self, name: impl Into<String>, bytes: &[u8]) -> Self {
        self.attachments.push(Attachment {
            name: name.into(),
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
        });
        self
    }
    /// The digest of the canonical serialisation: what approvals and the audit bind to.
    pub fn digest(&self) -> Digest {
        // Evidence holds only JSON-representable data, so serialisation cannot fail; should it
        // ever, the digest of the summary alone still changes with the content.
        Digest::of_canonical(self).unwrap_or_else(|_| Digest::of(self.summary.as_bytes()))
    }
}

/// A gate's decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The release may proceed as far as this gate is concerned.
    Pass(Evidence),
    /// The release must not proceed.
    Fail(Evidence),
    /// The gate observed something it cannot judge (too little data, a marginal score): the
    /// phase pauses for a human decision rather than passing or failing.
    Inconclusive(Evidence),
    /// Not decided yet (a test run still going): ask again after `retry_after`.
    Pending {
        /// What has been seen so far.
        evidence: Evidence,
        /// When to ask again.
        retry_after: Duration,
    },
}

impl Verdict {
    /// `Pass(evidence)` when `passed`, else `Fail(evidence)`.
    pub fn pass_if(passed: bool, evidence: Evidence) -> Self {
        if passed {
            Verdict::Pass(evidence)
        } else {
            Verdict::Fail(evidence)
        }
    }

    /// The evidence behind the verdict.
    pub fn evidence(&self) -> &Evidence {
        match self {
            Verdict::Pass(e) | Verdict::Fail(e) | Verdict::Inconclusive(e) => e,
            Verdict::Pending { evidence, .. } => evidence,
        }
    }
}

/// A gate could not decide (its input was unreadable, a service it needs was down). Recorded
/// as such, retried per policy, and never counted as a pass.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// Input the gate read was malformed: names what and where.
    #[error("invalid input in {what}: {message}")]
    InvalidInput {
        /// The file, field or source (`target/nextest/junit.xml line 12`).
        what: String,
        /// What was wrong.
        message: String,
    },
    /// A service the gate needs did not answer.
    #[error("{service} unavailable: {message}")]
    Unavailable {
        /// The service (`prometheus at 127.0.0.1:9090`).
        service: String,
        /// What happened.
        message: String,
    },
    /// The gate is configured wrongly.
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    /// The evaluation took longer than the gate's timeout.
    #[error("no verdict within {0:?}")]
    TimedOut(Duration),
    /// Anything else, with its cause.
    #[error("{message}")]
    Other {
        /// What happened.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl GateError {
    /// An error with a message and no further cause.
    pub fn other(message: impl Into<String>) -> Self {
        GateError::Other {
            message: message.into(),
            source: None,
        }
    }
    /// The message with its chain of causes, as recorded in the log.
    pub fn report(&self) -> String {
        report_chain(self)
    }
}

/// An error's message followed by each of its causes (`query failed: connection refused`), as
/// recorded in the log: many errors display only their own level.
pub fn report_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Which part of a stage a gate belongs to.
///
/// Serialised as `entry`, `verification` or `analysis:<step>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PhaseId {
    /// Entry gates, before approval and deployment.
    Entry,
    /// Analysis gates of rollout step `step` (zero-based).
    Analysis {
        /// The rollout step.
        step: u32,
    },
    /// Post-deployment verification gates.
    Verification,
}

impl fmt::Display for PhaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhaseId::Entry => f.write_str("entry"),
            PhaseId::Analysis { step } => write!(f, "analysis of step {}", step + 1),
            PhaseId::Verification => f.write_str("verification"),
        }
    }
}

/// Everything a gate may look at while it evaluates.
#[derive(Debug)]
#[non_exhaustive]
pub struct GateContext<'a> {
    /// The release being promoted.
    pub release: &'a Release,
    /// The pipeline's name.
    pub pipeline: &'a PipelineName,
    /// The pipeline's version.
    pub pipeline_version: &'a str,
    /// The stage the gate guards.
    pub stage: &'a StageName,
    /// The phase within the stage.
    pub phase: PhaseId,
    /// The gate's own name in this phase.
    pub gate: &'a GateName,
    /// Sampling round, from 1.
    pub round: u32,
    /// Attempt within the round, from 1 (retries after errors increase it).
    pub attempt: u32,
    /// The state recorded so far: earlier verdicts and their evidence digests, approvals.
    pub state: &'a ReleaseState,
    /// The clock to use for time and for waiting.
    pub clock: &'a dyn Clock,
}

impl GateContext<'_> {
    /// The current time on the engine's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// A check that decides whether a release may proceed.
///
/// ```
/// use promotion_core::{Evidence, Gate, GateContext, GateError, Verdict};
///
/// #[derive(Debug)]
/// struct HasChangelog;
///
/// #[async_trait::async_trait]
/// impl Gate for HasChangelog {
///     fn name(&self) -> &str { "has-changelog" }
///     async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
///         let ok = ctx.release.labels().contains_key("changelog");
///         let ev = Evidence::new(self.name(), ctx.now(), format!("changelog label present: {ok}"));
///         Ok(Verdict::pass_if(ok, ev))
///     }
/// }
/// ```
#[async_trait]
pub trait Gate: Send + Sync + fmt::Debug {
    /// The gate's default name; a [`GateSpec`] may rename it.
    fn name(&self) -> &str;
    /// What kind of check this is.
    fn kind(&self) -> GateKind {
        GateKind::Automated
    }
    /// Evaluates the gate once.
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError>;
}

/// Exponential backoff between retries of a gate that errored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the first retry.
    pub initial: Duration,
    /// Multiplier per further retry.
    pub factor: u32,
    /// Longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            factor: 2,
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (from 1).
    pub fn delay(&self, retry: u32) -> Duration {
        let mult = self
            .factor
            .max(1)
            .checked_pow(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(mult).min(self.max)
    }
}

/// How the engine runs one gate within a round.
///
/// A policy is a [`GateLayer`](crate::layer::GateLayer): a
/// [`TimeoutLayer`](crate::layer::TimeoutLayer) on each attempt within a
/// [`RetryLayer`](crate::layer::RetryLayer), the same layers a host can put around any gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GatePolicy {
    /// Longest one evaluation may take; past it the attempt is an error.
    pub timeout: Option<Duration>,
    /// Retries within a round after an error (not after a fail verdict).
    pub retries: u32,
    /// Waits between those retries.
    pub backoff: Backoff,
}

/// How the gates of one phase are sampled and combined.
///
/// The defaults evaluate every gate once, fail the phase on the first fail verdict, and retry
/// gates that errored or are pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhasePolicy {
    /// Wait after the phase starts before the first evaluation.
    pub delay: Duration,
    /// Time between sampling rounds while the phase has not passed.
    pub interval: Option<Duration>,
    /// The phase fails if it has not passed this long after it started.
    pub timeout: Option<Duration>,
    /// Azure DevOps semantics: the phase passes only when every gate passes in one round; each
    /// round re-evaluates every gate. When false, a gate that passed stays passed.
    pub all_pass_in_same_round: bool,
    /// Every gate must keep passing, sampled on `interval`, for this long before the phase
    /// passes (zero: pass at once).
    pub min_success: Duration,
    /// A fail verdict fails the phase at once. When false a failing gate is sampled again
    /// until it passes or the phase times out.
    pub fail_fast: bool,
    /// Consecutive rounds in which one gate errored before the phase fails.
    pub consecutive_error_limit: u32,
    /// Wait before re-sampling when no `interval` is set.
    pub retry_interval: Duration,
}

impl Default for PhasePolicy {
    fn default() -> Self {
        PhasePolicy {
            delay: Duration::ZERO,
            interval: None,
            timeout: None,
            all_pass_in_same_round: false,
            min_success: Duration::ZERO,
            fail_fast: true,
            consecutive_error_limit: 4,
            retry_interval: Duration::from_secs(30),
        }
    }
}

impl PhasePolicy {
    /// Whether every round re-evaluates every gate.
    pub fn resamples_all(&self) -> bool {
        self.all_pass_in_same_round || !self.min_success.is_zero()
    }
    /// The wait before the next round when the phase has not passed.
    pub fn next_round_in(&self) -> Duration {
        self.interval.unwrap_or(self.retry_interval)
    }
}

/// A gate placed in a phase, under a name and a policy.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone)]
pub struct GateSpec {
    /// Unique within the phase.
    pub name: String,
    pub gate: Arc<dyn Gate>,
    /// Timeout and retries.
    pub policy: GatePolicy,
}

impl GateSpec {
    /// The gate under its own name with the default policy.
    pub fn new(gate: Arc<dyn Gate>) -> Self {
        GateSpec {
            name: gate.name().to_owned(),
            gate,
            policy: GatePolicy::default(),
        }
    }
    /// Renames the gate in this phase.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Sets the per-evaluation timeout.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.policy.timeout = Some(d);
        self
    }
    /// Sets retries after errors, with backoff.
    pub fn retries(mut self, retries: u32, backoff: Backoff) -> Self {
        self.policy.retries = retries;
        self.policy.backoff = backoff;
        self
    }
}

impl<G: Gate + 'static> From<G> for GateSpec {
    fn from(gate: G) -> Self {
        GateSpec::new(Arc::new(gate))
    }
}

/// A shared gate is a gate: hosts can keep a handle on it (to read its counters) while a
/// pipeline or a layer owns it.
#[async_trait]
impl<G: Gate + ?Sized> Gate for Arc<G> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn kind(&self) -> GateKind {
        (**self).kind()
    }
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        (**self).evaluate(ctx).await
    }
}

/// The gates of one phase and how they are sampled.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    /// The gates, evaluated concurrently.
    pub gates: Vec<GateSpec>,
    /// Sampling policy.
    pub policy: PhasePolicy,
}

impl Phase {
    /// A phase of `gates` with the default policy.
    pub fn new(gates: impl IntoIterator<Item = GateSpec>) -> Self {
        Phase {
            gates: gates.into_iter().collect(),
            policy: PhasePolicy::default(),
        }
    }
    /// Sets the policy.
    pub fn with_policy(mut self, policy: PhasePolicy) -> Self {
        self.policy = policy;
        self
    }
    /// Whether the phase has no gates.
    pub fn is_empty(&self) -> bool {
        self.gates.is_empty()
    }
    /// The gate named `name`.
    pub fn gate(&self, name: &str) -> Option<&GateSpec> {
        self.gates.iter().find(|g| g.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            factor: 3,
            max: Duration::from_secs(20),
        };
        assert_eq!(b.delay(1), Duration::from_secs(1));
        assert_eq!(b.delay(2), Duration::from_secs(3));
        assert_eq!(b.delay(3), Duration::from_secs(9));
        assert_eq!(b.delay(4), Duration::from_secs(20));
        assert_eq!(b.delay(1000), Duration::from_secs(20));
    }

    #[test]
    fn evidence_digest_changes_with_content() {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let a = Evidence::new("g", t, "ok");
        let b = Evidence::new("g", t, "ok").with_attachment("log", b"x");
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest(), Evidence::new("g", t, "ok").digest());
    }

    #[test]
    fn error_report_includes_causes() {
        let io = std::io::Error::other("connection refused");
        let e = GateError::Other {
            message: "query failed".into(),
            source: Some(Box::new(io)),
        };
        assert_eq!(e.report(), "query failed: connection refused");
    }
}
