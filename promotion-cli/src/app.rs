//! What every command shares: the loader, where the log lives, the engine, and the
//! dispatch from a parsed command to the code that runs it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use promotion_config::{Loaded, Loader};
use promotion_core::layer::layer_fn;
use promotion_core::{Engine, EventStore, GateName, HostCommand, SystemClock};
use promotion_identity::Decision;

use crate::args::{Cmd, EvidenceCmd, Global, LogCmd};
use crate::deployer;
use crate::failure::Failure;
use crate::identity::Registrant;
use crate::show::{self, Row};
use crate::store::{self, Place};

/// The global options, shared by every command.
pub(crate) struct App {
    pub(crate) g: Global,
}

/// The directory of `file`: `.` for a bare file name.
pub(crate) fn base_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl App {
    pub(crate) fn loader(&self, progress: bool) -> Loader {
        let mut loader = Loader::new();
        for t in &self.g.templates {
            loader = loader.template_dir(t.clone());
        }
        if progress {
            loader = loader.layer(layer_fn(show::Shown::wrap));
        }
        loader
    }

    pub(crate) fn load(&self, progress: bool) -> Result<Loaded, Failure> {
        Ok(self.loader(progress).load(&self.g.file)?)
    }

    pub(crate) fn place(&self) -> Place {
        Place {
            dir: self
                .g
                .dir
                .clone()
                .unwrap_or_else(|| base_dir(&self.g.file).join(".promotion")),
            database: self.g.database.clone(),
            schema: self.g.schema.clone(),
        }
    }

    pub(crate) fn engine(&self, loaded: &Loaded, store: Arc<dyn EventStore>) -> Engine {
        let spec = loaded
            .service
            .as_ref()
            .map(|s| s.deploy().clone())
            .unwrap_or_default();
        let deployer = deployer::for_spec(
            &spec,
            loaded.base_dir.clone(),
            loaded.pipeline.name().as_str(),
        );
        Engine::new(
            loaded.pipeline.clone(),
            store,
            Arc::from(deployer),
            Arc::new(SystemClock),
        )
    }

    /// The pipeline, the writable store, an engine, and the pipeline's releases.
    pub(crate) async fn open(&self, progress: bool) -> Result<(Loaded, Engine, Vec<Row>), Failure> {
        let loaded = self.load(progress)?;
        let store: Arc<dyn EventStore> = Arc::new(store::open(&self.place())?);
        let rows = show::releases(store.as_ref(), loaded.pipeline.name()).await?;
        let engine = self.engine(&loaded, store);
        Ok((loaded, engine, rows))
    }

    pub(crate) async fn run(&self, cmd: Cmd) -> Result<u8, Failure> {
        match cmd {
            Cmd::Init { service, force } => self.init(service, force),
            Cmd::Validate { json } => self.validate(json),
            Cmd::Register {
                manifest,
                id,
                groups,
                id_token,
                jwks,
            } => {
                let registrant = match (id_token, jwks) {
                    (Some(token), Some(jwks)) => Registrant::Token { token, jwks },
                    _ => Registrant::As { id, groups },
                };
                self.register(&manifest, &registrant).await
            }
            Cmd::Run { release, max_wait } => {
                let max = match max_wait {
                    None => None,
                    Some(m) => Some(promotion_config::parse_duration(&m).map_err(Failure::Usage)?),
                };
                self.drive(&release, true, max).await
            }
            Cmd::Advance { release } => self.drive(&release, false, None).await,
            Cmd::Status { release, json } => self.status(release.as_deref(), json).await,
            Cmd::Approve { on, who, comment } => {
                self.act(on, &who, (Decision::Approve, &comment), |stage, p| {
                    HostCommand::approve(stage, p, &comment)
                })
                .await
            }
            Cmd::Reject { on, who, comment } => {
                self.act(on, &who, (Decision::Reject, &comment), |stage, p| {
                    HostCommand::reject(stage, p, &comment)
                })
                .await
            }
            Cmd::Override {
                on,
                gate,
                who,
                justification,
            } => {
                let decision = Decision::Override {
                    gate: gate_name(&gate)?,
                };
                self.act(on, &who, (decision, &justification), |stage, p| {
                    HostCommand::override_gate(stage, &gate, p, &justification)
                })
                .await
            }
            Cmd::Judge {
                on,
                gate,
                pass,
                who,
                comment,
            } => {
                let decision = Decision::Judge {
                    gate: gate_name(&gate)?,
                    pass,
                };
                self.act(on, &who, (decision, &comment), |stage, p| {
                    HostCommand::judge(stage, &gate, pass, p, &comment)
                })
                .await
            }
            Cmd::Start { on, who } => {
                self.act(on, &who, (Decision::Start, ""), HostCommand::start)
                    .await
            }
            Cmd::Abort { on, who, reason } => {
                self.act(on, &who, (Decision::Abort, &reason), |stage, p| {
                    HostCommand::abort(stage, p, &reason)
                })
                .await
            }
            Cmd::Rollback { on, who, reason } => {
                self.act(on, &who, (Decision::RollBack, &reason), |stage, p| {
                    HostCommand::roll_back(stage, p, &reason)
                })
                .await
            }
            Cmd::Signatures { release, out } => self.signatures(&release, &out).await,
            Cmd::Log {
                command:
                    LogCmd::Verify {
                        vkey_file,
                        trusted_checkpoint,
                        witness_vkeys,
                        min_witnesses,
                        expect_empty,
                        rosters,
                        json,
                    },
            } => {
                let anchors = crate::anchors::Anchors {
                    trusted_checkpoint,
                    witness_vkeys,
                    min_witnesses,
                    expect_empty,
                };
                self.verify(vkey_file.as_deref(), &anchors, &rosters, json)
                    .await
            }
            Cmd::Log {
                command: LogCmd::Checkpoint { out },
            } => self.log_checkpoint(out.as_deref()).await,
            Cmd::Log {
                command: LogCmd::Proof { proof },
            } => self.log_proof(proof).await,
            Cmd::Log {
                command: LogCmd::Export { out },
            } => self.log_export(out).await,
            Cmd::Log {
                command:
                    LogCmd::Import {
                        file,
                        into,
                        vkey_file,
                    },
            } => self.log_import(&file, &into, vkey_file.as_deref()),
            Cmd::Witness {
                state,
                key,
                name,
                log_vkey,
                checkpoint,
                proof,
                out,
                from_log,
            } => {
                let args = crate::anchors::WitnessArgs {
                    state,
                    key,
                    name,
                    log_vkey,
                    checkpoint,
                    proof,
                    out,
                    from_log,
                };
                if args.from_log {
                    self.witness_log(&args).await
                } else {
                    crate::anchors::witness(&args)
                }
            }
            Cmd::WhatIf {
                template,
                template_version,
                json,
            } => self.what_if(template, template_version, json).await,
            Cmd::Evidence {
                command:
                    EvidenceCmd::Export {
                        release,
                        out,
                        archive,
                        rosters,
                    },
            } => self.export(&release, &out, archive, &rosters).await,
            Cmd::Evidence {
                command:
                    EvidenceCmd::Verify {
                        pack,
                        checkpoint_key,
                        attestation_key,
                        json,
                    },
            } => self.verify_pack(
                &pack,
                checkpoint_key.as_deref(),
                attestation_key.as_deref(),
                json,
            ),
            Cmd::Report {
                days,
                html,
                production,
                json,
            } => self.report(days, html.as_deref(), production, json).await,
        }
    }
}

/// A gate named on the command line, for a signed statement.
fn gate_name(gate: &str) -> Result<GateName, Failure> {
    GateName::new(gate).map_err(|e| Failure::Usage(format!("gate {gate:?}: {e}")))
}
