//! [`DryRunLayer`]: evaluate a gate and record what it would have decided, but never block.

use async_trait::async_trait;

use super::timeout::guarded;
use super::GateLayer;
use crate::gate::{Evidence, Gate, GateContext, GateError, GateKind, Verdict};

/// Evaluates the gate and records its verdict, but always passes: for trying a new gate on
/// live traffic before enforcing it. The evidence says `dry run: would <verdict>: <summary>`,
/// keeps the inner evidence under `data.evidence` and declares the fact `dry_run_would`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DryRunLayer;

impl<G: Gate> GateLayer<G> for DryRunLayer {
    type Wrapped = DryRun<G>;
    fn layer(&self, inner: G) -> DryRun<G> {
        DryRun { inner }
    }
}

/// A gate under a [`DryRunLayer`]; see also [`GateExt::dry_run`](super::GateExt::dry_run).
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
    use futures::executor::block_on;

    use super::*;
    use crate::layer::tests::with_ctx;
    use crate::layer::GateExt;
    use crate::testing::{ScriptedGate, Step};
    use crate::ManualClock;

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

    #[test]
    fn dry_run_keeps_the_inner_evidence_and_passes_errors_too() {
        let clock = ManualClock::at("2026-11-26T09:00:00Z".parse().unwrap());
        let gate = DryRunLayer.layer(ScriptedGate::new(
            "slo",
            [
                Step::Inconclusive("12 samples".into()),
                Step::Error("prometheus down".into()),
            ],
        ));
        let r = with_ctx(&clock, |ctx| block_on(gate.evaluate(ctx)));
        let Ok(Verdict::Pass(ev)) = r else {
            panic!("dry run must pass, got {r:?}")
        };
        assert_eq!(ev.summary, "dry run: would inconclusive: 12 samples");
        assert_eq!(ev.data["evidence"]["summary"], "12 samples");
        assert_eq!(ev.data["dry_run"], true);

        let r = with_ctx(&clock, |ctx| block_on(gate.evaluate(ctx)));
        let Ok(Verdict::Pass(ev)) = r else {
            panic!("dry run must pass an error too, got {r:?}")
        };
        assert_eq!(ev.summary, "dry run: could not decide: prometheus down");
        assert_eq!(ev.data["would"], "error");
    }
}
