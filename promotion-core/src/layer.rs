//! Gate layers, as tower's layers are for services: a [`GateLayer`] wraps a gate in another
//! gate (a timeout, retries with backoff, a dry run, your own logging), instead of growing
//! flags inside the engine or inside every gate.
//!
//! There is one story for decorating gates:
//!
//! - [`TimeoutLayer`], [`RetryLayer`] and [`DryRunLayer`] are the reference layers;
//!   [`GateExt`]'s `with_timeout`, `with_retry` and `dry_run` are shorthands for them.
//! - [`Stack`] applies one layer and then another; [`layer_fn`] makes a layer of a closure;
//!   [`Identity`] wraps nothing.
//! - The engine runs every gate under its [`GateSpec`](crate::GateSpec)'s
//!   [`GatePolicy`](crate::GatePolicy), and a policy is itself a layer: a [`TimeoutLayer`]
//!   around each attempt within a [`RetryLayer`]. The attempts it took are recorded.
//! - `promotion-config`'s loader applies layers to every gate it builds (`Loader::layer`),
//!   or a layer chosen per gate from where the gate goes (`Loader::layer_for`).
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
//! ## Writing a layer
//!
//! A layer is a value (its settings) that wraps any gate in a gate of its own. This one writes
//! every verdict of the gates it wraps to a shared log:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! use promotion_core::layer::{GateLayer, RetryLayer, Stack};
//! use promotion_core::testing::{GateProbe, ScriptedGate, Step};
//! use promotion_core::{Backoff, Gate, GateContext, GateError, GateKind, Verdict};
//!
//! /// Writes one line per evaluation of the gates it wraps.
//! #[derive(Clone, Default)]
//! struct LogVerdicts(Arc<Mutex<Vec<String>>>);
//!
//! #[derive(Debug)]
//! struct Logged<G> {
//!     inner: G,
//!     log: Arc<Mutex<Vec<String>>>,
//! }
//!
//! impl<G: Gate> GateLayer<G> for LogVerdicts {
//!     type Wrapped = Logged<G>;
//!     fn layer(&self, inner: G) -> Logged<G> {
//!         Logged { inner, log: self.0.clone() }
//!     }
//! }
//!
//! #[async_trait::async_trait]
//! impl<G: Gate> Gate for Logged<G> {
//!     // A layer keeps the name and kind of the gate it wraps.
//!     fn name(&self) -> &str { self.inner.name() }
//!     fn kind(&self) -> GateKind { self.inner.kind() }
//!     async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
//!         let result = self.inner.evaluate(ctx).await;
//!         let line = match &result {
//!             Ok(v) => format!("{} attempt {}: {}", self.name(), ctx.attempt, v.evidence().summary),
//!             Err(e) => format!("{} attempt {}: error: {}", self.name(), ctx.attempt, e.report()),
//!         };
//!         self.log.lock().unwrap().push(line);
//!         result
//!     }
//! }
//!
//! // Logging inside the retries sees every attempt; outside them it would see one answer.
//! let log = LogVerdicts::default();
//! let layers = Stack::new(log.clone(), RetryLayer::new(2, Backoff::default()));
//! let gate = layers.layer(ScriptedGate::new(
//!     "smoke",
//!     [Step::Error("502".into()), Step::Fail("3 of 40 failed".into())],
//! ));
//! let probe = GateProbe::new().auto_advancing();
//! let verdict = futures::executor::block_on(probe.evaluate(&gate))?;
//! assert!(matches!(verdict, Verdict::Fail(_)));
//! assert_eq!(
//!     *log.0.lock().unwrap(),
//!     ["smoke attempt 1: error: 502", "smoke attempt 2: 3 of 40 failed"]
//! );
//! # Ok::<(), GateError>(())
//! ```

mod dry_run;
mod retry;
mod timeout;

use std::fmt;
use std::time::Duration;

use crate::gate::{Backoff, Gate};

pub use dry_run::{DryRun, DryRunLayer};
pub use retry::{Retry, RetryLayer};
pub use timeout::{Timeout, TimeoutLayer};

pub(crate) use timeout::{guarded, panic_message};

/// Wraps a gate of type `G` in another gate, as tower's `Layer` wraps a service.
///
/// A layer holds settings, not state about one gate, so one layer can wrap many gates. The
/// wrapped gate should keep the inner gate's [`name`](Gate::name) and [`kind`](Gate::kind):
/// reports and the audit log know a gate by them.
pub trait GateLayer<G> {
    /// The gate that wraps `G`.
    type Wrapped: Gate;
    /// Wraps `inner`.
    fn layer(&self, inner: G) -> Self::Wrapped;
}

/// The layer that wraps nothing: `Identity.layer(gate)` is `gate`. For a layer chosen per
/// gate when some gates need none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Identity;

impl<G: Gate> GateLayer<G> for Identity {
    type Wrapped = G;
    fn layer(&self, inner: G) -> G {
        inner
    }
}

/// Two layers as one: `inner` wraps the gate first, then `outer` wraps the result, so `outer`
/// sees what `inner` makes of the gate's answers.
///
/// Order matters: a [`DryRunLayer`] inside a [`RetryLayer`] turns errors into passes before
/// the retries can see them; outside it, the retries run first and the dry run records their
/// final answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stack<Inner, Outer> {
    inner: Inner,
    outer: Outer,
}

impl<Inner, Outer> Stack<Inner, Outer> {
    /// `outer` around `inner`.
    pub fn new(inner: Inner, outer: Outer) -> Self {
        Stack { inner, outer }
    }
}

impl<G, Inner, Outer> GateLayer<G> for Stack<Inner, Outer>
where
    Inner: GateLayer<G>,
    Outer: GateLayer<Inner::Wrapped>,
{
    type Wrapped = Outer::Wrapped;
    fn layer(&self, inner: G) -> Self::Wrapped {
        self.outer.layer(self.inner.layer(inner))
    }
}

/// A layer made of a closure from the inner gate to the wrapped one; see [`layer_fn`].
#[derive(Clone, Copy)]
pub struct LayerFn<F> {
    f: F,
}

/// A layer that wraps each gate with `f`: for a wrapper that already has a constructor, such
/// as a `fn wrap(inner: Arc<dyn Gate>) -> Arc<dyn Gate>` given as `layer_fn(wrap)`.
pub fn layer_fn<F>(f: F) -> LayerFn<F> {
    LayerFn { f }
}

impl<G, F, W> GateLayer<G> for LayerFn<F>
where
    F: Fn(G) -> W,
    W: Gate,
{
    type Wrapped = W;
    fn layer(&self, inner: G) -> W {
        (self.f)(inner)
    }
}

impl<F> fmt::Debug for LayerFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerFn").finish_non_exhaustive()
    }
}

/// Shorthands for the reference layers, on every gate.
pub trait GateExt: Gate + Sized {
    /// Fails an evaluation that takes longer than `after` (an error, never a pass): the
    /// gate under a [`TimeoutLayer`].
    fn with_timeout(self, after: Duration) -> Timeout<Self> {
        TimeoutLayer::new(after).layer(self)
    }
    /// Retries after errors, up to `retries` times, waiting per `backoff`: the gate under a
    /// [`RetryLayer`].
    fn with_retry(self, retries: u32, backoff: Backoff) -> Retry<Self> {
        RetryLayer::new(retries, backoff).layer(self)
    }
    /// Evaluates and records the gate's verdict, but always passes: for trying a new gate on
    /// live traffic before enforcing it. The gate under a [`DryRunLayer`].
    fn dry_run(self) -> DryRun<Self> {
        DryRunLayer.layer(self)
    }
}

impl<G: Gate> GateExt for G {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use futures::executor::block_on;

    use super::*;
    use crate::gate::{GateContext, Verdict};
    use crate::testing::{ScriptedGate, Step};
    use crate::{ManualClock, PhaseId, PipelineName, Release, ReleaseState, StageName};

    /// Runs `f` with a context for gate `g` of stage `s` on `clock`, attempt 1 of round 1.
    pub(super) fn with_ctx<R>(clock: &ManualClock, f: impl FnOnce(&GateContext<'_>) -> R) -> R {
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

    fn flaky() -> Arc<ScriptedGate> {
        Arc::new(ScriptedGate::new(
            "flaky",
            [
                Step::Error("502".into()),
                Step::Error("502".into()),
                Step::Fail("3 failed".into()),
            ],
        ))
    }

    #[test]
    fn a_dry_run_inside_retries_passes_the_first_error() {
        let clock = ManualClock::auto_advancing("2026-11-26T09:00:00Z".parse().unwrap());
        let gate = flaky();
        let layers = Stack::new(DryRunLayer, RetryLayer::new(3, Backoff::default()));
        let r = with_ctx(&clock, |ctx| {
            block_on(layers.layer(gate.clone()).evaluate(ctx))
        });
        let Ok(Verdict::Pass(ev)) = r else {
            panic!("a dry run passes, got {r:?}")
        };
        assert_eq!(ev.summary, "dry run: could not decide: 502");
        assert_eq!(gate.calls(), 1, "the retries never saw an error");
    }

    #[test]
    fn a_dry_run_outside_retries_records_their_final_answer() {
        let clock = ManualClock::auto_advancing("2026-11-26T09:00:00Z".parse().unwrap());
        let gate = flaky();
        let layers = Stack::new(RetryLayer::new(3, Backoff::default()), DryRunLayer);
        let r = with_ctx(&clock, |ctx| {
            block_on(layers.layer(gate.clone()).evaluate(ctx))
        });
        let Ok(Verdict::Pass(ev)) = r else {
            panic!("a dry run passes, got {r:?}")
        };
        assert_eq!(ev.summary, "dry run: would fail: 3 failed");
        assert_eq!(gate.calls(), 3);
    }

    #[test]
    fn ext_shorthands_are_the_layers() {
        let clock = ManualClock::auto_advancing("2026-11-26T09:00:00Z".parse().unwrap());
        let (a, b) = (flaky(), flaky());
        let by_ext = a.clone().with_retry(3, Backoff::default()).dry_run();
        let by_layers =
            Stack::new(RetryLayer::new(3, Backoff::default()), DryRunLayer).layer(b.clone());
        let ra = with_ctx(&clock, |ctx| block_on(by_ext.evaluate(ctx))).unwrap();
        let rb = with_ctx(&clock, |ctx| block_on(by_layers.evaluate(ctx))).unwrap();
        assert_eq!(ra.evidence().summary, rb.evidence().summary);
        assert_eq!((a.calls(), b.calls()), (3, 3));
    }

    #[test]
    fn layer_fn_and_identity_wrap_as_told() {
        let clock = ManualClock::at("2026-11-26T09:00:00Z".parse().unwrap());
        let gate = ScriptedGate::failing("f");
        let same = Identity.layer(gate);
        assert_eq!(same.name(), "f");
        let shared: Arc<dyn Gate> = Arc::new(same);
        let layer = layer_fn(|g: Arc<dyn Gate>| -> Arc<dyn Gate> { Arc::new(g.dry_run()) });
        let wrapped = layer.layer(shared);
        let r = with_ctx(&clock, |ctx| block_on(wrapped.evaluate(ctx)));
        assert!(matches!(r, Ok(Verdict::Pass(_))), "{r:?}");
        assert_eq!(wrapped.name(), "f");
    }
}
