//! The one implementation of "a gate evaluation that may not run forever nor panic":
//! [`guarded`], and the [`TimeoutLayer`] built on it.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::{select, Either};
use futures::FutureExt;

use super::GateLayer;
use crate::gate::{Gate, GateContext, GateError, GateKind, Verdict};

/// Evaluates `gate` once: a panic inside it becomes a [`GateError`], and with `timeout` an
/// evaluation that takes longer on the context's clock becomes [`GateError::TimedOut`].
pub(crate) async fn guarded(
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

/// The message recorded for a panic caught in a gate or a deployer.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    format!("panicked: {msg}")
}

/// Turns an evaluation that takes longer than a limit, on the context's clock, into
/// [`GateError::TimedOut`] (an error, never a pass). The engine applies a
/// [`GatePolicy`](crate::GatePolicy)'s `timeout` with this layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutLayer {
    /// `None` only for a policy without a timeout: the gate is still guarded against panics.
    after: Option<Duration>,
}

impl TimeoutLayer {
    /// Fails evaluations that take longer than `after`.
    pub fn new(after: Duration) -> Self {
        TimeoutLayer { after: Some(after) }
    }

    /// The layer for an optional limit, as a [`GatePolicy`](crate::GatePolicy) holds it.
    pub(crate) fn optional(after: Option<Duration>) -> Self {
        TimeoutLayer { after }
    }
}

impl<G: Gate> GateLayer<G> for TimeoutLayer {
    type Wrapped = Timeout<G>;
    fn layer(&self, inner: G) -> Timeout<G> {
        Timeout {
            inner,
            after: self.after,
        }
    }
}

/// A gate under a [`TimeoutLayer`]; see also [`GateExt::with_timeout`](super::GateExt::with_timeout).
#[derive(Debug)]
pub struct Timeout<G> {
    inner: G,
    after: Option<Duration>,
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
        guarded(&self.inner, ctx, self.after).await
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::layer::tests::with_ctx;
    use crate::layer::GateExt;
    use crate::testing::{ScriptedGate, Step};
    use crate::ManualClock;

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
    fn a_gate_within_its_time_keeps_its_verdict_and_the_clock_shows_its_latency() {
        let clock = ManualClock::auto_advancing("2026-11-26T09:00:00Z".parse().unwrap());
        let start = crate::Clock::now(&clock);
        let gate = TimeoutLayer::new(Duration::from_secs(30)).layer(
            ScriptedGate::new("quick", [Step::Fail("3 failed".into())])
                .with_latency(Duration::from_secs(10)),
        );
        let r = with_ctx(&clock, |ctx| block_on(gate.evaluate(ctx)));
        assert!(
            matches!(r, Ok(Verdict::Fail(ref e)) if e.summary == "3 failed"),
            "{r:?}"
        );
        let waited = crate::Clock::now(&clock) - start;
        assert!(
            waited < chrono::Duration::seconds(30),
            "the virtual clock never reached the limit: {waited}"
        );
    }

    #[test]
    fn a_panicking_gate_is_an_error_not_a_crash() {
        #[derive(Debug)]
        struct Panics;
        #[async_trait]
        impl Gate for Panics {
            fn name(&self) -> &str {
                "panics"
            }
            async fn evaluate(&self, _: &GateContext<'_>) -> Result<Verdict, GateError> {
                panic!("index out of bounds")
            }
        }
        let clock = ManualClock::at("2026-11-26T09:00:00Z".parse().unwrap());
        let gate = TimeoutLayer::new(Duration::from_secs(5)).layer(Panics);
        let r = with_ctx(&clock, |ctx| block_on(gate.evaluate(ctx)));
        let Err(e) = r else {
            panic!("a panic must not pass: {r:?}")
        };
        assert_eq!(e.report(), "panicked: index out of bounds");
    }

    #[test]
    fn the_layer_keeps_the_gates_name_and_kind() {
        let gate = TimeoutLayer::new(Duration::from_secs(5))
            .layer(ScriptedGate::passing("sign-off").with_kind(crate::GateKind::Manual));
        assert_eq!(gate.name(), "sign-off");
        assert_eq!(gate.kind(), crate::GateKind::Manual);
    }
}
