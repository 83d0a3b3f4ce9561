//! What the gates' unit tests share: evaluating a gate on a probe context, and taking a
//! verdict apart with a message that says what came instead.

use futures::executor::block_on;
use promotion_core::testing::GateProbe;
use promotion_core::{Evidence, Gate, GateError, Verdict};

/// Evaluates `gate` once on a default [`GateProbe`].
pub(crate) fn run(gate: &dyn Gate) -> Result<Verdict, GateError> {
    block_on(GateProbe::new().evaluate(gate))
}

/// The evidence of a pass; panics on anything else.
pub(crate) fn passed(v: Result<Verdict, GateError>) -> Evidence {
    match v {
        Ok(Verdict::Pass(e)) => e,
        other => panic!("expected a pass, got {other:?}"),
    }
}

/// The evidence of a fail; panics on anything else.
pub(crate) fn failed(v: Result<Verdict, GateError>) -> Evidence {
    match v {
        Ok(Verdict::Fail(e)) => e,
        other => panic!("expected a fail, got {other:?}"),
    }
}

/// What and why of an invalid-input error; panics on anything else.
pub(crate) fn invalid_input(v: Result<Verdict, GateError>) -> (String, String) {
    match v {
        Err(GateError::InvalidInput { what, message }) => (what, message),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}
