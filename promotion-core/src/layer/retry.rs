//! The one implementation of "ask again after an error": [`RetryLayer`], and a
//! [`GatePolicy`] as the stack of a timeout within retries that the engine applies to every
//! gate, counting the attempts it records.

use async_trait::async_trait;

use super::timeout::{guarded, Timeout, TimeoutLayer};
use super::GateLayer;
use crate::gate::{Backoff, Gate, GateContext, GateError, GateKind, GatePolicy, Verdict};

/// Evaluates `gate`, retrying up to `retries` times after errors (never after a verdict),
/// waiting per `backoff` on the context's clock. Returns the result and the attempts taken.
///
/// Attempts are numbered from the context's `attempt` (at least 1) and each retry sees the
/// next number in its context.
async fn retrying(
    gate: &dyn Gate,
    ctx: &GateContext<'_>,
    retries: u32,
    backoff: Backoff,
) -> (Result<Verdict, GateError>, u32) {
    let mut attempt = ctx.attempt.max(1);
    let first = attempt;
    loop {
        let this = GateContext { attempt, ..*ctx };
        match guarded(gate, &this, None).await {
            Err(e) if attempt - first < retries => {
                tracing::warn!(gate = gate.name(), error = %e.report(), attempt, "gate could not decide; retrying");
                ctx.clock.sleep(backoff.delay(attempt - first + 1)).await;
                attempt += 1;
            }
            other => return (other, attempt - first + 1),
        }
    }
}

/// Retries a gate after errors, up to a number of times, waiting per a [`Backoff`] on the
/// context's clock. A verdict (even a fail) is an answer and is never retried. The engine
/// applies a [`GatePolicy`]'s `retries` and `backoff` with this layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryLayer {
    retries: u32,
    backoff: Backoff,
}

impl RetryLayer {
    /// Up to `retries` retries after the first attempt, waiting `backoff.delay(n)` before
    /// retry `n`.
    pub fn new(retries: u32, backoff: Backoff) -> Self {
        RetryLayer { retries, backoff }
    }
}

impl<G: Gate> GateLayer<G> for RetryLayer {
    type Wrapped = Retry<G>;
    fn layer(&self, inner: G) -> Retry<G> {
        Retry {
            inner,
            retries: self.retries,
            backoff: self.backoff,
        }
    }
}

/// A gate under a [`RetryLayer`]; see also [`GateExt::with_retry`](super::GateExt::with_retry).
#[derive(Debug)]
pub struct Retry<G> {
    inner: G,
    retries: u32,
    backoff: Backoff,
}

impl<G: Gate> Retry<G> {
    /// Evaluates with retries and returns the attempts taken too: what the engine records.
    pub(crate) async fn evaluate_counted(
        &self,
        ctx: &GateContext<'_>,
    ) -> (Result<Verdict, GateError>, u32) {
        retrying(&self.inner, ctx, self.retries, self.backoff).await
    }
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
        self.evaluate_counted(ctx).await.0
    }
}

/// A gate's policy is a layer: each attempt runs under the policy's timeout (a
/// [`TimeoutLayer`]), and errors, timeouts included, are retried per its retries and backoff
/// (a [`RetryLayer`]). This is how the engine runs every gate of a phase.
impl<G: Gate> GateLayer<G> for GatePolicy {
    type Wrapped = Retry<Timeout<G>>;
    fn layer(&self, inner: G) -> Self::Wrapped {
        let timed = TimeoutLayer::optional(self.timeout).layer(inner);
        RetryLayer::new(self.retries, self.backoff).layer(timed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::executor::block_on;

    use super::*;
    use crate::layer::tests::with_ctx;
    use crate::layer::GateExt;
    use crate::testing::{ScriptedGate, Step};
    use crate::{Clock, ManualClock};

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
    fn retry_counts_attempts_and_waits_per_backoff_on_the_clock() {
        let start = "2026-11-26T09:00:00Z".parse().unwrap();
        let clock = ManualClock::auto_advancing(start);
        let flaky = Arc::new(ScriptedGate::new(
            "flaky",
            [
                Step::Error("502".into()),
                Step::Error("502".into()),
                Step::Pass("ok".into()),
            ],
        ));
        let backoff = Backoff {
            initial: Duration::from_secs(2),
            factor: 3,
            max: Duration::from_secs(60),
        };
        let gate = RetryLayer::new(5, backoff).layer(flaky.clone());
        let (r, attempts) = with_ctx(&clock, |ctx| block_on(gate.evaluate_counted(ctx)));
        assert!(matches!(r, Ok(Verdict::Pass(_))), "{r:?}");
        assert_eq!(attempts, 3);
        assert_eq!(flaky.calls(), 3);
        assert_eq!(
            clock.now() - start,
            chrono::Duration::seconds(2 + 6),
            "waits 2 s, then 2 s × 3, before the two retries"
        );
    }

    #[test]
    fn retry_gives_up_after_its_retries_with_the_last_error() {
        let clock = ManualClock::auto_advancing("2026-11-26T09:00:00Z".parse().unwrap());
        let down = Arc::new(ScriptedGate::new(
            "down",
            (1..=5).map(|i| Step::Error(format!("502 #{i}"))),
        ));
        let gate = RetryLayer::new(2, Backoff::default()).layer(down.clone());
        let (r, attempts) = with_ctx(&clock, |ctx| block_on(gate.evaluate_counted(ctx)));
        assert_eq!(attempts, 3, "one attempt and two retries");
        assert_eq!(down.calls(), 3);
        let Err(e) = r else {
            panic!("still down: {r:?}")
        };
        assert!(e.report().contains("502 #3"), "{}", e.report());
    }

    #[test]
    fn a_pending_verdict_is_an_answer_too() {
        let clock = ManualClock::auto_advancing("2026-11-26T09:00:00Z".parse().unwrap());
        let pending = Arc::new(ScriptedGate::new(
            "tests-running",
            [Step::Pending(Duration::from_secs(60))],
        ));
        let gate = RetryLayer::new(3, Backoff::default()).layer(pending.clone());
        let (r, attempts) = with_ctx(&clock, |ctx| block_on(gate.evaluate_counted(ctx)));
        assert!(matches!(r, Ok(Verdict::Pending { .. })), "{r:?}");
        assert_eq!((attempts, pending.calls()), (1, 1));
    }

    #[test]
    fn a_policy_times_out_each_attempt_and_retries_the_timeouts() {
        let clock = ManualClock::auto_advancing("2026-11-26T09:00:00Z".parse().unwrap());
        let slow = Arc::new(
            ScriptedGate::new("slow", [Step::Pass("late".into())])
                .with_latency(Duration::from_secs(60)),
        );
        let policy = GatePolicy {
            timeout: Some(Duration::from_secs(5)),
            retries: 2,
            backoff: Backoff::default(),
        };
        let (r, attempts) = with_ctx(&clock, |ctx| {
            block_on(policy.layer(slow.clone()).evaluate_counted(ctx))
        });
        assert!(
            matches!(r, Err(GateError::TimedOut(d)) if d == Duration::from_secs(5)),
            "{r:?}"
        );
        assert_eq!(attempts, 3, "every attempt timed out");
    }

    #[test]
    fn the_default_policy_is_one_attempt_without_a_limit() {
        let clock = ManualClock::auto_advancing("2026-11-26T09:00:00Z".parse().unwrap());
        let slow = Arc::new(
            ScriptedGate::new("slow", [Step::Error("502".into())])
                .with_latency(Duration::from_secs(3600)),
        );
        let (r, attempts) = with_ctx(&clock, |ctx| {
            block_on(
                GatePolicy::default()
                    .layer(slow.clone())
                    .evaluate_counted(ctx),
            )
        });
        assert!(r.is_err());
        assert_eq!((attempts, slow.calls()), (1, 1));
    }

    #[test]
    fn each_attempt_sees_its_number() {
        #[derive(Debug, Default)]
        struct Seen(std::sync::Mutex<Vec<u32>>);
        #[async_trait]
        impl Gate for Seen {
            fn name(&self) -> &str {
                "seen"
            }
            async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
                self.0.lock().unwrap().push(ctx.attempt);
                Err(GateError::other("502"))
            }
        }
        let clock = ManualClock::auto_advancing("2026-11-26T09:00:00Z".parse().unwrap());
        let seen = Arc::new(Seen::default());
        let gate = RetryLayer::new(2, Backoff::default()).layer(seen.clone());
        let (_, attempts) = with_ctx(&clock, |ctx| block_on(gate.evaluate_counted(ctx)));
        assert_eq!(attempts, 3);
        assert_eq!(*seen.0.lock().unwrap(), [1, 2, 3]);
    }
}
