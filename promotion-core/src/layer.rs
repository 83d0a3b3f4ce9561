//! Gate decorators, as tower layers are for services: wrap any gate with a timeout, retries
//! with backoff, or a dry run, instead of growing flags inside the engine.
//!
//! ```
//! use std::time::Duration;
//! use promotion_core::layer::GateExt;
//! use promotion_core::testing::ScriptedGate;
//! use promotion_core::Backoff;
//!
//! // Try a new gate on live traffic: it is evaluated and recorded, but never blocks.
//! let gate = ScriptedGate::failing("new-slo-check")
//!     .with_timeout(Duration::from_secs(30))
//!     .with_retry(2, Backoff::default())
//!     .dry_run();
//! # let _ = gate;
//! ```
//!
//! The engine applies a [`GateSpec`](crate::GateSpec)'s [`GatePolicy`](crate::GatePolicy)
//! with the same [`retrying`] function, and records the attempts it took.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::{select, Either};
use futures::FutureExt;

use crate::gate::{Backoff, Evidence, Gate, GateContext, GateError, GateKind, Verdict};

/// Evaluates `gate` once: a panic inside it becomes a [`GateError`], and with `timeout` an
/// evaluation that takes longer on the context's clock becomes [`GateError::TimedOut`].
pub async fn guarded(
    gate: &dyn Gate,
    ctx: &GateContext<'_>,
    timeout: Option<Duration>,
) -> Result<Verdict, GateError> {
    let evaluation = AssertUnwindSafe(gate.evaluate(ctx))
        .catch_unwind()
        .map(|r| r.unwrap_or_else(|p| Err(GateError::other(panic_message(p.as_ref())))));
    match timeout {
        None => evaluation.await,
        Some(t) => match select(Box::pin(evaluation), ctx.clock.sleep(t)).await {
            Either::Left((r, _)) => r,
            Either::Right(_) => Err(GateError::TimedOut(t)),
        },
    }
}

/// Evaluates `gate`, retrying up to `retries` times after errors (never after a verdict),
/// waiting per `backoff` on the context's clock. Returns the result and the attempts taken.
pub async fn retrying(
    gate: &dyn Gate,
    ctx: &GateContext<'_>,
    retries: u32,
    backoff: Backoff,
    timeout: Option<Duration>,
) -> (Result<Verdict, GateError>, u32) {
    let mut attempt = ctx.attempt.max(1);
    let first = attempt;
    loop {
        let this = GateContext { attempt, ..*ctx };
        match guarded(gate, &this, timeout).await {
            Err(e) if attempt - first < retries => {
                tracing::warn!(gate = gate.name(), error = %e.report(), attempt, "gate could not decide; retrying");
                ctx.clock.sleep(backoff.delay(attempt - first + 1)).await;
                attempt += 1;
            }
            other => return (other, attempt - first + 1),
        }
    }
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    format!("panicked: {msg}")
}

/// Decorators for every gate.
pub trait GateExt: Gate + Sized {
    /// Fails an evaluation that takes longer than `after` (an error, never a pass).
    fn with_timeout(self, after: Duration) -> Timeout<Self> {
        Timeout { inner: self, after }
    }
    /// Retries after errors, up to `retries` times, waiting per `backoff`.
    fn with_retry(self, retries: u32, backoff: Backoff) -> Retry<Self> {
        Retry {
            inner: self,
            retries,
            backoff,
        }
    }
    /// Evaluates and records the gate's verdict, but always passes: for trying a new gate on
    /// live traffic before enforcing it.
    fn dry_run(self) -> DryRun<Self> {
        DryRun { inner: self }
    }
}

impl<G: Gate> GateExt for G {}

/// See [`GateExt::with_timeout`].
#[derive(Debug)]
pub struct Timeout<G> {
    inner: G,
    after: Duration,
}

#[async_trait]
impl<G: Gate> Gate for Timeout<G> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> GateKind {
        self.inner.kind()
    }
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        guarded(&self.inner, ctx, Some(self.after)).await
    }
}

/// See [`GateExt::with_retry`].
#[derive(Debug)]
pub struct Retry<G> {
    inner: G,
    retries: u32,
    backoff: Backoff,
}

#[async_trait]
impl<G: Gate> Gate for Retry<G> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> GateKind {
        self.inner.kind()
    }
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        retrying(&self.inner, ctx, self.retries, self.backoff, None)
            .await
            .0
    }
}

/// See [`GateExt::dry_run`].
#[derive(Debug)]
pub struct DryRun<G> {
    inner: G,
}

#[async_trait]
impl<G: Gate> Gate for DryRun<G> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> GateKind {
        self.inner.kind()
    }
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let (would, inner) = match guarded(&self.inner, ctx, None).await {
            Ok(Verdict::Pass(e)) => ("pass", serde_json::to_value(&e).ok()),
            Ok(Verdict::Fail(e)) => ("fail", serde_json::to_value(&e).ok()),
            Ok(Verdict::Inconclusive(e)) => ("inconclusive", serde_json::to_value(&e).ok()),
            Ok(Verdict::Pending { evidence, .. }) => {
                ("pending", serde_json::to_value(&evidence).ok())
            }
            Err(e) => {
                let summary = format!("dry run: could not decide: {}", e.report());
                let ev = Evidence::new(self.name(), ctx.now(), summary)
                    .with_data(serde_json::json!({ "dry_run": true, "would": "error" }));
                return Ok(Verdict::Pass(ev));
            }
        };
        let inner_summary = inner
            .as_ref()
            .and_then(|v| v.get("summary"))
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .to_owned();
        let ev = Evidence::new(
            self.name(),
            ctx.now(),
            format!("dry run: would {would}: {inner_summary}"),
        )
        .with_data(serde_json::json!({ "dry_run": true, "would": would, "evidence": inner }))
        .with_fact("dry_run_would", would);
        Ok(Verdict::Pass(ev))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use futures::executor::block_on;

    use super::*;
    use crate::testing::{ScriptedGate, Step};
    use crate::{ManualClock, PhaseId, PipelineName, Release, ReleaseState, StageName};

    fn with_ctx<R>(clock: &ManualClock, f: impl FnOnce(&GateContext<'_>) -> R) -> R {
        let t: DateTime<Utc> = "2026-11-26T09:00:00Z".parse().unwrap();
        let release = Release::builder("r", "repo", "a".repeat(40), t)
            .artifact("a", format!("sha256:{}", "0".repeat(64)))
            .builder("ci")
            .build()
            .unwrap();
        let (p, s, g) = (
            PipelineName::new("p").unwrap(),
            StageName::new("s").unwrap(),
            crate::GateName::new("g").unwrap(),
        );
        let state = ReleaseState::default();
        let ctx = GateContext {
            release: &release,
            pipeline: &p,
            pipeline_version: "1",
            stage: &s,
            phase: PhaseId::Entry,
            gate: &g,
            round: 1,
            attempt: 1,
            state: &state,
            clock,
        };
        f(&ctx)
    }

    #[test]
    fn timeout_turns_a_slow_gate_into_an_error() {
        let clock = ManualClock::auto_advancing("2026-11-26T09:00:00Z".parse().unwrap());
        let gate = ScriptedGate::passing("slow")
            .with_latency(Duration::from_secs(60))
            .with_timeout(Duration::from_secs(5));
        let r = with_ctx(&clock, |ctx| block_on(gate.evaluate(ctx)));
        assert!(matches!(r, Err(GateError::TimedOut(d)) if d == Duration::from_secs(5)));
    }

    #[test]
    fn retry_recovers_from_errors_but_not_from_verdicts() {
        let clock = ManualClock::auto_advancing("2026-11-26T09:00:00Z".parse().unwrap());
        let flaky = Arc::new(ScriptedGate::new(
            "flaky",
            [
                Step::Error("502".into()),
                Step::Error("502".into()),
                Step::Pass("ok".into()),
            ],
        ));
        let gate = flaky.clone().with_retry(3, Backoff::default());
        let r = with_ctx(&clock, |ctx| block_on(gate.evaluate(ctx)));
        assert!(matches!(r, Ok(Verdict::Pass(_))));
        assert_eq!(flaky.calls(), 3);
        let failing = Arc::new(ScriptedGate::failing("f"));
        let gate = failing.clone().with_retry(3, Backoff::default());
        let r = with_ctx(&clock, |ctx| block_on(gate.evaluate(ctx)));
        assert!(matches!(r, Ok(Verdict::Fail(_))));
        assert_eq!(
            failing.calls(),
            1,
            "a fail verdict is an answer, not an error"
        );
    }

    #[test]
    fn dry_run_records_but_never_blocks() {
        let clock = ManualClock::at("2026-11-26T09:00:00Z".parse().unwrap());
        let gate = ScriptedGate::new("slo", [Step::Fail("p99 812 ms".into())]).dry_run();
        let r = with_ctx(&clock, |ctx| block_on(gate.evaluate(ctx)));
        let Ok(Verdict::Pass(ev)) = r else {
            panic!("dry run must pass, got {r:?}")
        };
        assert_eq!(ev.summary, "dry run: would fail: p99 812 ms");
        assert_eq!(
            ev.facts.get("dry_run_would").map(String::as_str),
            Some("fail")
        );
    }
}
