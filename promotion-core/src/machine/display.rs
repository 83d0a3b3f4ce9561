//! Human-readable form: one line per event, as a release manager reads it in `promote
//! history` or an evidence report, and the actor's name. Free text (comments, justifications,
//! reasons, deployer errors, evidence summaries) goes through
//! [`text::escape`](crate::text::escape): printing a line never obeys a control or bidi
//! character someone typed.

use std::fmt;

use super::event::{Actor, EventBody};
use crate::name::PrincipalId;
use crate::principal::Principal;
use crate::text::escape as esc;

/// A principal's id, with how the host verified them when it said (`alice (SSH-signed)`).
fn who(p: &Principal) -> String {
    match &p.verified {
        Some(v) => format!("{} ({})", p.id, v.method()),
        None => p.id.to_string(),
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Engine => f.write_str("engine"),
            Actor::Principal { id } => write!(f, "{id}"),
            Actor::Gate { name } => write!(f, "gate {name}"),
            Actor::Deployer => f.write_str("deployer"),
        }
    }
}

impl fmt::Display for EventBody {
    /// One line a release manager understands, without the time and the stage.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EventBody as E;
        match self {
            E::Registered {
                release,
                pipeline,
                pipeline_version,
                initiator,
            } => write!(
                f,
                "release `{}` ({}) registered in pipeline {pipeline} version {pipeline_version} by {}",
                release.name(),
                release.id().short(),
                initiator.id
            ),
            E::PipelineVersionAdopted { from, to } => {
                write!(
                    f,
                    "pipeline version {from} replaced by {to}; earlier approvals void"
                )
            }
            E::StageReady { .. } => f.write_str("ready: upstream stages promoted"),
            E::StageStarted { .. } => f.write_str("promotion started; entry gates run"),
            E::GateEvaluated {
                phase,
                round,
                gate,
                outcome,
                attempts,
                evidence,
                ..
            } => {
                write!(f, "{phase} gate `{gate}` round {round}: {outcome}")?;
                if let Some(e) = evidence {
                    write!(f, " — {}", esc(&e.summary))?;
                }
                if *attempts > 1 {
                    write!(f, " ({attempts} attempts)")?;
                }
                Ok(())
            }
            E::PhaseWaiting {
                phase,
                next_round_at,
                ..
            } => write!(f, "{phase} not passed yet; next round at {next_round_at}"),
            E::PhasePaused { phase, gate, .. } => write!(
                f,
                "{phase} paused: gate `{gate}` is inconclusive and needs a human decision"
            ),
            E::PhasePassed { phase, .. } => write!(f, "{phase} gates passed"),
            E::PhaseFailed { reason, .. } => write!(f, "FAILED: {}", esc(&reason.to_string())),
            E::GateJudged {
                gate,
                pass,
                principal,
                comment,
                ..
            } => write!(
                f,
                "{} judged gate `{gate}` {}: {}",
                who(principal),
                if *pass { "pass" } else { "fail" },
                esc(comment)
            ),
            E::GateOverridden {
                gate,
                principal,
                justification,
                overridden,
                ..
            } => write!(
                f,
                "BREAK GLASS: {} overrode gate `{gate}` ({overridden}): {}",
                who(principal),
                esc(justification)
            ),
            E::ApprovalRequested {
                evidence_digest, ..
            } => write!(
                f,
                "approval requested (evidence {})",
                evidence_digest.short(12)
            ),
            E::ApprovalGiven {
                principal, comment, ..
            } => {
                write!(f, "approved by {}", who(principal))?;
                if !comment.is_empty() {
                    write!(f, ": {}", esc(comment))?;
                }
                Ok(())
            }
            E::ApprovalRejected {
                principal, comment, ..
            } => write!(f, "REJECTED by {}: {}", who(principal), esc(comment)),
            E::StageScheduled { approvers, .. } if approvers.is_empty() => {
                f.write_str("scheduled for deployment")
            }
            E::StageScheduled { approvers, .. } => {
                let names: Vec<&str> = approvers.iter().map(PrincipalId::as_str).collect();
                write!(
                    f,
                    "scheduled for deployment; approved by {}",
                    names.join(", ")
                )
            }
            E::DeploymentStarted {
                step,
                weight,
                attempt,
                ..
            } => {
                write!(f, "deploying rollout step {} at {weight}", step + 1)?;
                if *attempt > 1 {
                    write!(
                        f,
                        " (attempt {attempt}: the outcome of the last one was not recorded)"
                    )?;
                }
                Ok(())
            }
            E::StepDeployed { step, weight, .. } => {
                write!(f, "rollout step {} deployed at {weight}", step + 1)
            }
            E::DeploymentFailed {
                step,
                weight,
                error,
                ..
            } => write!(
                f,
                "DEPLOYMENT FAILED at step {} ({weight}): {}",
                step + 1,
                esc(error)
            ),
            E::StepCompleted { step, .. } => write!(f, "rollout step {} complete", step + 1),
            E::VerificationStarted { .. } => f.write_str("rollout complete; verification starts"),
            E::SoakStarted { until, .. } => write!(f, "soaking until {until}"),
            E::StagePromoted { .. } => f.write_str("PROMOTED"),
            E::RollbackStarted { reason, .. } => write!(f, "ROLLBACK started: {}", esc(reason)),
            E::RollbackFailed { error, .. } => write!(f, "rollback failed (will retry): {}", esc(error)),
            E::RolledBack { .. } => f.write_str("ROLLED BACK"),
            E::StageAborted {
                principal, reason, ..
            } => write!(f, "ABORTED by {}: {}", who(principal), esc(reason)),
            E::AttemptRefused {
                release,
                stage,
                action,
                principal,
                refusal,
            } => write!(
                f,
                "REFUSED: {} tried to {action} stage `{stage}` of {}: {}",
                principal.id,
                release.short(),
                esc(refusal)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::EventBody;

    #[test]
    fn free_text_cannot_act_on_the_terminal() {
        let line = ev(EventBody::ApprovalRejected {
            stage: stage("prod"),
            principal: sre("bob"),
            comment: "no\u{1b}[2K\r\u{1b}[32mAPPROVED\u{202E}".into(),
        })
        .body
        .to_string();
        assert_eq!(
            line,
            "REJECTED by bob: no\\u{1b}[2K\\u{d}\\u{1b}[32mAPPROVED\\u{202e}"
        );
        assert!(!line.chars().any(|c| c.is_control()));
    }
}
