//! What a host may submit: [`HostCommand`], the commands a principal gives.
//!
//! [`Command`] is the state machine's whole input, including the records only the engine may
//! make — a gate round it ran, a deployment intent and the deployer's result, a rollback's
//! result, a tick, a stage it starts itself. A host that could submit those could record a gate
//! pass that never ran or a deployment that was never made, and the log would look genuine. So
//! [`Engine::submit`](crate::Engine::submit) takes a [`HostCommand`], which can only hold a
//! principal's command.

use std::fmt;

use super::command::Command;
use crate::name::{GateName, InvalidName, StageName};
use crate::principal::Principal;

/// A principal's command to a release, the only kind of command a host may submit.
///
/// Built by its constructors, which check the stage and gate names they are given:
///
/// ```
/// use promotion_core::{HostCommand, Principal};
///
/// let alice = Principal::new("alice", ["sre"])?;
/// let approve = HostCommand::approve("prod", &alice, "canary dashboards checked")?;
/// assert_eq!(approve.stage().as_str(), "prod");
/// assert_eq!(approve.principal().id.as_str(), "alice");
/// // A malformed name is refused here, before anything reaches the engine.
/// assert!(HostCommand::approve(" prod", &alice, "").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A [`Command`] converts with `HostCommand::try_from`, which refuses the engine's own records
/// with [`EngineOnly`]. Handing the engine such a record directly does not compile:
///
/// ```compile_fail
/// # use promotion_core::{Command, Engine, ReleaseId, StageName};
/// # async fn forge(engine: &Engine, id: &ReleaseId) {
/// let forged = Command::Tick { stage: StageName::new("prod").unwrap() };
/// let _ = engine.submit(id, forged).await; // error: expected `HostCommand`
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HostCommand {
    stage: StageName,
    principal: Principal,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Start,
    Approve {
        comment: String,
    },
    Reject {
        comment: String,
    },
    Override {
        gate: GateName,
        justification: String,
    },
    Judge {
        gate: GateName,
        pass: bool,
        comment: String,
    },
    Abort {
        reason: String,
    },
    RollBack {
        reason: String,
    },
}

impl HostCommand {
    fn new(stage: &str, principal: &Principal, kind: Kind) -> Result<Self, InvalidName> {
        Ok(Self {
            stage: StageName::new(stage)?,
            principal: principal.clone(),
            kind,
        })
    }

    /// Approve `stage` as `principal`.
    pub fn approve(stage: &str, principal: &Principal, comment: &str) -> Result<Self, InvalidName> {
        let comment = comment.to_owned();
        Self::new(stage, principal, Kind::Approve { comment })
    }

    /// Reject `stage` as `principal`; one rejection rejects the stage.
    pub fn reject(stage: &str, principal: &Principal, comment: &str) -> Result<Self, InvalidName> {
        let comment = comment.to_owned();
        Self::new(stage, principal, Kind::Reject { comment })
    }

    /// Break glass: count the failed entry gate `gate` of `stage` as passed. `principal` must be
    /// in one of the stage's break-glass groups and `justification` must say why.
    pub fn override_gate(
        stage: &str,
        gate: &str,
        principal: &Principal,
        justification: &str,
    ) -> Result<Self, InvalidName> {
        let gate = GateName::new(gate)?;
        let justification = justification.to_owned();
        Self::new(
            stage,
            principal,
            Kind::Override {
                gate,
                justification,
            },
        )
    }

    /// Judge the inconclusive gate `gate` of `stage`: passed when `pass`, else failed.
    pub fn judge(
        stage: &str,
        gate: &str,
        pass: bool,
        principal: &Principal,
        comment: &str,
    ) -> Result<Self, InvalidName> {
        let gate = GateName::new(gate)?;
        let comment = comment.to_owned();
        Self::new(
            stage,
            principal,
            Kind::Judge {
                gate,
                pass,
                comment,
            },
        )
    }

    /// Start promotion into the manual-start stage `stage`.
    pub fn start(stage: &str, principal: &Principal) -> Result<Self, InvalidName> {
        Self::new(stage, principal, Kind::Start)
    }

    /// Abort promotion into `stage`; a deployed stage is rolled back on the next `advance`.
    pub fn abort(stage: &str, principal: &Principal, reason: &str) -> Result<Self, InvalidName> {
        let reason = reason.to_owned();
        Self::new(stage, principal, Kind::Abort { reason })
    }

    /// Roll back the deployed or promoted `stage`; it happens on the next `advance`.
    pub fn roll_back(
        stage: &str,
        principal: &Principal,
        reason: &str,
    ) -> Result<Self, InvalidName> {
        let reason = reason.to_owned();
        Self::new(stage, principal, Kind::RollBack { reason })
    }

    /// The stage the command is for.
    pub fn stage(&self) -> &StageName {
        &self.stage
    }

    /// Who gives the command.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// What the command asks, in words (`approve`, `override a gate of`).
    pub fn action(&self) -> &'static str {
        match self.kind {
            Kind::Start => "start",
            Kind::Approve { .. } => "approve",
            Kind::Reject { .. } => "reject",
            Kind::Override { .. } => "override a gate of",
            Kind::Judge { .. } => "judge a gate of",
            Kind::Abort { .. } => "abort",
            Kind::RollBack { .. } => "roll back",
        }
    }
}

impl From<HostCommand> for Command {
    fn from(command: HostCommand) -> Self {
        let HostCommand {
            stage,
            principal,
            kind,
        } = command;
        match kind {
            Kind::Start => Command::Start {
                stage,
                by: Some(principal),
            },
            Kind::Approve { comment } => Command::Approve {
                stage,
                principal,
                comment,
            },
            Kind::Reject { comment } => Command::Reject {
                stage,
                principal,
                comment,
            },
            Kind::Override {
                gate,
                justification,
            } => Command::Override {
                stage,
                gate,
                principal,
                justification,
            },
            Kind::Judge {
                gate,
                pass,
                comment,
            } => Command::Judge {
                stage,
                gate,
                pass,
                principal,
                comment,
            },
            Kind::Abort { reason } => Command::Abort {
                stage,
                principal,
                reason,
            },
            Kind::RollBack { reason } => Command::RollBack {
                stage,
                principal,
                reason,
            },
        }
    }
}

impl fmt::Display for HostCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` asks to {} stage `{}`",
            self.principal.id,
            self.action(),
            self.stage
        )
    }
}

/// A [`Command`] that only the engine may record, refused by `HostCommand::try_from`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is recorded by the engine only; a host cannot submit it")]
pub struct EngineOnly(&'static str);

impl EngineOnly {
    /// What was refused, in words (`a gate round`).
    pub fn what(&self) -> &'static str {
        self.0
    }
}

impl TryFrom<Command> for HostCommand {
    type Error = EngineOnly;

    fn try_from(command: Command) -> Result<Self, EngineOnly> {
        let (stage, principal, kind) = match command {
            Command::Start {
                stage,
                by: Some(principal),
            } => (stage, principal, Kind::Start),
            Command::Approve {
                stage,
                principal,
                comment,
            } => (stage, principal, Kind::Approve { comment }),
            Command::Reject {
                stage,
                principal,
                comment,
            } => (stage, principal, Kind::Reject { comment }),
            Command::Override {
                stage,
                gate,
                principal,
                justification,
            } => (
                stage,
                principal,
                Kind::Override {
                    gate,
                    justification,
                },
            ),
            Command::Judge {
                stage,
                gate,
                pass,
                principal,
                comment,
            } => (
                stage,
                principal,
                Kind::Judge {
                    gate,
                    pass,
                    comment,
                },
            ),
            Command::Abort {
                stage,
                principal,
                reason,
            } => (stage, principal, Kind::Abort { reason }),
            Command::RollBack {
                stage,
                principal,
                reason,
            } => (stage, principal, Kind::RollBack { reason }),
            Command::Register { .. } => {
                return Err(EngineOnly("a registration (use `Engine::register`)"))
            }
            Command::Start { by: None, .. } => {
                return Err(EngineOnly("a start without a principal"))
            }
            Command::RecordRound { .. } => return Err(EngineOnly("a gate round")),
            Command::BeginDeployment { .. } => return Err(EngineOnly("a deployment intent")),
            Command::RecordDeployment { .. } => return Err(EngineOnly("a deployment result")),
            Command::RecordRollback { .. } => return Err(EngineOnly("a rollback result")),
            Command::Tick { .. } => return Err(EngineOnly("a tick")),
        };
        Ok(Self {
            stage,
            principal,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::PhaseId;
    use crate::machine::command::GateResult;
    use crate::machine::event::Outcome;
    use crate::testing::sample_release;

    fn alice() -> Principal {
        Principal::new("alice", ["sre"]).unwrap()
    }

    fn stage() -> StageName {
        StageName::new("prod").unwrap()
    }

    /// The forgeries a host could try: every record only the engine makes is refused, with
    /// what it was in the message — a passing gate round above all.
    #[test]
    fn engine_records_cannot_become_host_commands() {
        let pass = GateResult {
            gate: GateName::new("smoke").unwrap(),
            outcome: Outcome::Pass,
            evidence: None,
            attempts: 1,
        };
        let forged = [
            (
                Command::RecordRound {
                    stage: stage(),
                    phase: PhaseId::Entry,
                    results: vec![pass],
                },
                "a gate round",
            ),
            (
                Command::BeginDeployment {
                    stage: stage(),
                    step: 0,
                },
                "a deployment intent",
            ),
            (
                Command::RecordDeployment {
                    stage: stage(),
                    step: 0,
                    result: Ok(()),
                },
                "a deployment result",
            ),
            (
                Command::RecordRollback {
                    stage: stage(),
                    result: Ok(()),
                },
                "a rollback result",
            ),
            (Command::Tick { stage: stage() }, "a tick"),
            (
                Command::Start {
                    stage: stage(),
                    by: None,
                },
                "a start without a principal",
            ),
            (
                Command::Register {
                    release: sample_release(),
                    initiator: alice(),
                },
                "a registration (use `Engine::register`)",
            ),
        ];
        for (command, what) in forged {
            let err = HostCommand::try_from(command).unwrap_err();
            assert_eq!(err.what(), what);
            assert!(err.to_string().contains("engine only"), "{err}");
        }
    }

    /// Every constructor gives the state machine the command it names, and `try_from` takes
    /// that command back unchanged.
    #[test]
    fn constructors_build_the_commands_they_name_and_round_trip() {
        let a = alice();
        let built = [
            HostCommand::approve("prod", &a, "ok").unwrap(),
            HostCommand::reject("prod", &a, "no").unwrap(),
            HostCommand::override_gate("prod", "smoke", &a, "outage").unwrap(),
            HostCommand::judge("prod", "smoke", true, &a, "fine").unwrap(),
            HostCommand::start("prod", &a).unwrap(),
            HostCommand::abort("prod", &a, "stop").unwrap(),
            HostCommand::roll_back("prod", &a, "bad").unwrap(),
        ];
        let actions: Vec<_> = built.iter().map(HostCommand::action).collect();
        assert_eq!(
            actions,
            [
                "approve",
                "reject",
                "override a gate of",
                "judge a gate of",
                "start",
                "abort",
                "roll back"
            ]
        );
        for host in built {
            assert_eq!(host.stage(), &stage());
            assert_eq!(host.principal(), &a);
            let command = Command::from(host.clone());
            assert_eq!(HostCommand::try_from(command.clone()).unwrap(), host);
            match command {
                Command::Start { by, .. } => assert_eq!(by, Some(a.clone())),
                Command::Override {
                    gate,
                    justification,
                    ..
                } => {
                    assert_eq!(gate.as_str(), "smoke");
                    assert_eq!(justification, "outage");
                }
                Command::Judge { pass, .. } => assert!(pass),
                _ => {}
            }
        }
    }

    #[test]
    fn malformed_names_are_refused_before_the_engine() {
        let a = alice();
        assert!(HostCommand::approve("", &a, "").is_err());
        assert!(HostCommand::override_gate("prod", "smoke\n", &a, "why").is_err());
        assert_eq!(
            HostCommand::abort("prod", &a, "x").unwrap().to_string(),
            "`alice` asks to abort stage `prod`"
        );
    }
}
