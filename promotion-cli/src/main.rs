//! `promote`: promotion pipelines from templates, driven from a terminal or CI.
//!
//! See `promote --help` and the crate README. The audit log is SQLite in a state directory
//! (`.promotion` beside the service file) unless `--database postgres://…` is given.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod deployer;
mod evidence;
mod failure;
mod init;
mod manifest;
mod show;
mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use promotion_config::{Loaded, Loader, Service, WhatIfVerdict};
use promotion_core::{
    Engine, EventStore, PhaseId, Principal, Progress, ReleaseState, StageStatus, SystemClock,
    Waiting,
};
use serde_json::json;

use crate::failure::{Failure, EXIT_CODES, HUMAN, OK, REFUSED, TIME};
use crate::show::Row;
use crate::store::Place;

/// Multi-stage release promotion from pipeline templates, recorded in a tamper-evident log.
#[derive(Debug, Parser)]
#[command(name = "promote", version, after_help = EXIT_CODES, after_long_help = EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Args)]
struct Global {
    /// The service file (or a template used on its own).
    #[arg(
        short = 'f',
        long,
        global = true,
        env = "PROMOTION_FILE",
        default_value = "promotion.toml"
    )]
    file: PathBuf,
    /// State directory: the SQLite audit log and the checkpoint signing key
    /// [default: .promotion beside the service file].
    #[arg(long, global = true, env = "PROMOTION_DIR")]
    dir: Option<PathBuf>,
    /// A PostgreSQL URL (postgres://user:password@host/db) for the audit log instead of SQLite.
    #[arg(long, global = true, env = "PROMOTION_DATABASE")]
    database: Option<String>,
    /// The PostgreSQL schema of the audit log.
    #[arg(long, global = true, default_value = "public")]
    schema: String,
    /// A directory of templates named by `name` and `version` (repeatable).
    #[arg(long = "templates", global = true)]
    templates: Vec<PathBuf>,
}

/// Who acts: the command trusts what it is told, as a host trusts its own authentication.
#[derive(Debug, Args)]
struct Who {
    /// The principal acting.
    #[arg(long = "as", env = "PROMOTION_AS")]
    id: String,
    /// The principal's groups, comma-separated.
    #[arg(long, value_delimiter = ',', env = "PROMOTION_GROUPS")]
    groups: Vec<String>,
}

impl Who {
    fn principal(&self) -> Result<Principal, Failure> {
        Principal::new(
            &self.id,
            self.groups.iter().filter(|g| !g.is_empty()).cloned(),
        )
        .map_err(|e| Failure::Usage(e.to_string()))
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write a starter template, a service file and a release manifest.
    Init {
        /// The service's name [default: the directory's name].
        #[arg(long)]
        service: Option<String>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Check the service file and its template; print the pipeline.
    Validate {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Register a release from a manifest (TOML or JSON: name, repository, commit,
    /// artifacts with digests).
    Register {
        /// The manifest file.
        #[arg(long)]
        manifest: PathBuf,
        /// Who registers it [default: promote].
        #[arg(long = "as", env = "PROMOTION_AS", default_value = "promote")]
        id: String,
        /// Their groups, comma-separated.
        #[arg(long, value_delimiter = ',', env = "PROMOTION_GROUPS")]
        groups: Vec<String>,
    },
    /// Drive a release as far as its gates allow, waiting through pauses and soaks.
    Run {
        /// The release: `latest`, its id or an id prefix, or its name.
        release: String,
        /// Stop with exit code 5 instead of waiting longer than this (`10m`).
        #[arg(long)]
        max_wait: Option<String>,
    },
    /// One pass: as far as the release can go now, without waiting.
    Advance {
        /// The release.
        release: String,
    },
    /// Releases and their stages; with a release, its stages in detail.
    Status {
        /// A release to show in detail.
        release: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a stage.
    Approve {
        /// The release.
        release: String,
        /// The stage.
        stage: String,
        #[command(flatten)]
        who: Who,
        /// A comment, recorded with the approval.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Reject a stage.
    Reject {
        /// The release.
        release: String,
        /// The stage.
        stage: String,
        #[command(flatten)]
        who: Who,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Break glass: count a failed entry gate as passed.
    Override {
        /// The release.
        release: String,
        /// The stage.
        stage: String,
        /// The gate.
        gate: String,
        #[command(flatten)]
        who: Who,
        /// The written justification, recorded loudly.
        #[arg(long)]
        justification: String,
    },
    /// Judge an inconclusive gate.
    Judge {
        /// The release.
        release: String,
        /// The stage.
        stage: String,
        /// The gate.
        gate: String,
        /// Judge it as passed (otherwise failed).
        #[arg(long)]
        pass: bool,
        #[command(flatten)]
        who: Who,
        /// A comment.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Start a manual-start stage.
    Start {
        /// The release.
        release: String,
        /// The stage.
        stage: String,
        #[command(flatten)]
        who: Who,
    },
    /// Abort the promotion into a stage (a deployed stage is rolled back by the next run).
    Abort {
        /// The release.
        release: String,
        /// The stage.
        stage: String,
        #[command(flatten)]
        who: Who,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Roll a stage back (performed by the next run or advance).
    Rollback {
        /// The release.
        release: String,
        /// The stage.
        stage: String,
        #[command(flatten)]
        who: Who,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// The audit log.
    Log {
        #[command(subcommand)]
        command: LogCmd,
    },
    /// Replay the recorded history under another template version: which past promotions
    /// would it have blocked, and by which gate or rule?
    WhatIf {
        /// The new template file.
        #[arg(long, conflicts_with = "template_version")]
        template: Option<PathBuf>,
        /// Another version of the service's template, found where the service's is.
        #[arg(long)]
        template_version: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evidence packs for auditors.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCmd,
    },
    /// DORA metrics, gate pass rates and approvals over a period; an HTML readiness page.
    Report {
        /// The days up to now the report covers.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Write the HTML page to this file.
        #[arg(long)]
        html: Option<PathBuf>,
        /// A stage that counts as production (repeatable) [default: production, prod].
        #[arg(long = "production-stage")]
        production: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum EvidenceCmd {
    /// Export a release's evidence pack: every log entry with its inclusion proof against the
    /// signed checkpoint, and signed in-toto attestations (key: attestation.key in the state
    /// directory, created on first use).
    Export {
        /// The release.
        release: String,
        /// The directory to write the pack into.
        #[arg(long)]
        out: PathBuf,
        /// Also write the pack as one tar archive.
        #[arg(long)]
        archive: Option<PathBuf>,
    },
    /// Verify a pack (directory or tar archive) offline, with the public keys alone.
    Verify {
        /// The pack.
        pack: PathBuf,
        /// The log's checkpoint verifier key [default: checkpoint.vkey in the state directory].
        #[arg(long)]
        checkpoint_key: Option<PathBuf>,
        /// The attestation public key [default: attestation.pub in the state directory].
        #[arg(long)]
        attestation_key: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LogCmd {
    /// Recompute every hash, Merkle node and root, and check the signed checkpoint.
    Verify {
        /// The verifier key [default: checkpoint.vkey in the state directory].
        #[arg(long)]
        vkey_file: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("promote: cannot start the runtime: {e}");
            return ExitCode::from(failure::STORE);
        }
    };
    let app = App { g: cli.global };
    match runtime.block_on(app.run(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("promote: {f}");
            ExitCode::from(f.code())
        }
    }
}

struct App {
    g: Global,
}

fn base_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl App {
    fn loader(&self, progress: bool) -> Loader {
        let mut loader = Loader::new();
        for t in &self.g.templates {
            loader = loader.template_dir(t.clone());
        }
        if progress {
            loader = loader.decorate(|_, gate| show::Shown::wrap(gate));
        }
        loader
    }

    fn load(&self, progress: bool) -> Result<Loaded, Failure> {
        Ok(self.loader(progress).load(&self.g.file)?)
    }

    fn place(&self) -> Place {
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

    fn engine(&self, loaded: &Loaded, store: Arc<dyn EventStore>) -> Engine {
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
    async fn open(&self, progress: bool) -> Result<(Loaded, Engine, Vec<Row>), Failure> {
        let loaded = self.load(progress)?;
        let store: Arc<dyn EventStore> = Arc::new(store::open(&self.place())?);
        let rows = show::releases(store.as_ref(), loaded.pipeline.name()).await?;
        let engine = self.engine(&loaded, store);
        Ok((loaded, engine, rows))
    }

    async fn run(&self, cmd: Cmd) -> Result<u8, Failure> {
        match cmd {
            Cmd::Init { service, force } => self.init(service, force),
            Cmd::Validate { json } => self.validate(json),
            Cmd::Register {
                manifest,
                id,
                groups,
            } => {
                let who = Who { id, groups };
                self.register(&manifest, &who).await
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
            Cmd::Approve {
                release,
                stage,
                who,
                comment,
            } => {
                self.act(&release, |e, id| {
                    let p = who.principal();
                    let (stage, comment) = (stage.clone(), comment.clone());
                    async move { Ok(e.approve(&id, &stage, &p?, &comment).await?) }
                })
                .await
            }
            Cmd::Reject {
                release,
                stage,
                who,
                comment,
            } => {
                self.act(&release, |e, id| {
                    let p = who.principal();
                    let (stage, comment) = (stage.clone(), comment.clone());
                    async move { Ok(e.reject(&id, &stage, &p?, &comment).await?) }
                })
                .await
            }
            Cmd::Override {
                release,
                stage,
                gate,
                who,
                justification,
            } => {
                self.act(&release, |e, id| {
                    let p = who.principal();
                    let (stage, gate, j) = (stage.clone(), gate.clone(), justification.clone());
                    async move { Ok(e.override_gate(&id, &stage, &gate, &p?, &j).await?) }
                })
                .await
            }
            Cmd::Judge {
                release,
                stage,
                gate,
                pass,
                who,
                comment,
            } => {
                self.act(&release, |e, id| {
                    let p = who.principal();
                    let (stage, gate, c) = (stage.clone(), gate.clone(), comment.clone());
                    async move { Ok(e.judge(&id, &stage, &gate, pass, &p?, &c).await?) }
                })
                .await
            }
            Cmd::Start {
                release,
                stage,
                who,
            } => {
                self.act(&release, |e, id| {
                    let p = who.principal();
                    let stage = stage.clone();
                    async move { Ok(e.start(&id, &stage, &p?).await?) }
                })
                .await
            }
            Cmd::Abort {
                release,
                stage,
                who,
                reason,
            } => {
                self.act(&release, |e, id| {
                    let p = who.principal();
                    let (stage, r) = (stage.clone(), reason.clone());
                    async move { Ok(e.abort(&id, &stage, &p?, &r).await?) }
                })
                .await
            }
            Cmd::Rollback {
                release,
                stage,
                who,
                reason,
            } => {
                self.act(&release, |e, id| {
                    let p = who.principal();
                    let (stage, r) = (stage.clone(), reason.clone());
                    async move { Ok(e.roll_back(&id, &stage, &p?, &r).await?) }
                })
                .await
            }
            Cmd::Log {
                command: LogCmd::Verify { vkey_file, json },
            } => self.verify(vkey_file.as_deref(), json).await,
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
                    },
            } => self.export(&release, &out, archive).await,
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

    async fn export(
        &self,
        reference: &str,
        out: &Path,
        archive: Option<PathBuf>,
    ) -> Result<u8, Failure> {
        let loaded = self.load(false)?;
        let place = self.place();
        let store = store::open(&place)?;
        let rows = show::releases(&store, loaded.pipeline.name()).await?;
        let row = show::resolve(&rows, reference)?;
        let signer = evidence::signer(&place.dir)?;
        let files = evidence::ServiceFiles::index(&loaded.base_dir, &place.dir);
        let options = promotion_evidence::ExportOptions {
            archive,
            attachments: Some(&files),
            ..promotion_evidence::ExportOptions::default()
        };
        let summary =
            promotion_evidence::EvidencePack::export_with(&store, &row.id, &signer, out, &options)
                .await
                .map_err(|e| Failure::Store(promotion_core::report_chain(&e)))?;
        println!(
            "exported {} ({}): {} entries with inclusion proofs at checkpoint size {}, {} attestations, {} files in {}",
            summary.release_name,
            summary.release.short(),
            summary.entries,
            summary.checkpoint_size,
            summary.attestations.len(),
            summary.files,
            summary.dir.display()
        );
        if let Some(a) = &summary.archive {
            println!("archive: {}", a.display());
        }
        if !summary.attachments_missing.is_empty() {
            println!(
                "{} attachment(s) referenced by evidence are not in the pack (their digests are in the log)",
                summary.attachments_missing.len()
            );
        }
        println!(
            "verify offline: promote evidence verify {} --checkpoint-key {} --attestation-key {}",
            summary.dir.display(),
            place.dir.join(store::VKEY_FILE).display(),
            place.dir.join(evidence::ATTESTATION_PUB_FILE).display()
        );
        Ok(OK)
    }

    fn verify_pack(
        &self,
        pack: &Path,
        checkpoint_key: Option<&Path>,
        attestation_key: Option<&Path>,
        json: bool,
    ) -> Result<u8, Failure> {
        let place = self.place();
        let checkpoint = store::verifier(&place.dir, checkpoint_key)?;
        let attestation = evidence::verifier(&place.dir, attestation_key)?;
        match promotion_evidence::verify_pack(pack, &checkpoint, &attestation) {
            Ok(r) => {
                if json {
                    let mut v = serde_json::to_value(&r)
                        .map_err(|e| Failure::Store(format!("cannot render the report: {e}")))?;
                    if let Some(o) = v.as_object_mut() {
                        o.insert("ok".into(), json!(true));
                    }
                    println!("{v}");
                } else {
                    println!(
                        "ok: {} ({}) in pipeline {}: {} entries proven in the log at checkpoint size {}, {} attestations, {} files",
                        r.release_name,
                        r.release.short(),
                        r.pipeline,
                        r.entries,
                        r.checkpoint.size,
                        r.attestations.len(),
                        r.files
                    );
                    for (stage, status) in &r.stages {
                        println!("  {stage:<14} {status}");
                    }
                }
                Ok(OK)
            }
            Err(e) => {
                if json {
                    println!(
                        "{}",
                        json!({ "ok": false, "error": e.to_string(), "files": e.files() })
                    );
                }
                Err(evidence::pack_failure(e))
            }
        }
    }

    async fn report(
        &self,
        days: u32,
        html: Option<&Path>,
        production: Vec<String>,
        json: bool,
    ) -> Result<u8, Failure> {
        let store = store::open_existing(&self.place())?;
        let period = promotion_evidence::Period::days_until(Utc::now(), days)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let mut options = promotion_evidence::ReportOptions::default();
        if !production.is_empty() {
            options.production_stages = production.into_iter().collect();
        }
        let report = promotion_evidence::Report::from_store_with(&store, period, &options)
            .await
            .map_err(|e| Failure::Store(promotion_core::report_chain(&e)))?;
        if let Some(path) = html {
            std::fs::write(path, promotion_evidence::render_html(&report))
                .map_err(|e| Failure::Store(format!("cannot write {}: {e}", path.display())))?;
            if !json {
                println!("wrote {}", path.display());
            }
        }
        if json {
            let v = serde_json::to_value(&report)
                .map_err(|e| Failure::Store(format!("cannot render the report: {e}")))?;
            println!("{v}");
            return Ok(OK);
        }
        println!(
            "report from {} to {} ({days} days)",
            report.period.from.format("%Y-%m-%d %H:%M"),
            report.period.to.format("%Y-%m-%d %H:%M")
        );
        let secs = |s: Option<f64>| {
            s.map_or_else(
                || "-".to_owned(),
                |s| {
                    promotion_config::format_duration(std::time::Duration::from_secs(
                        s.max(0.0) as u64
                    ))
                },
            )
        };
        for p in &report.pipelines {
            let d = &p.dora;
            println!("pipeline {}: {} releases", p.pipeline, p.releases_total);
            println!(
                "  deployment frequency  {} production promotions ({:.2}/day)",
                d.production_promotions, d.deployments_per_day
            );
            println!(
                "  lead time for changes median {}",
                secs(d.lead_time.as_ref().map(|l| l.median_seconds))
            );
            println!(
                "  change failure rate   {}",
                d.change_failure_rate
                    .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
            );
            println!(
                "  time to restore       median {}",
                secs(d.time_to_restore.as_ref().map(|l| l.median_seconds))
            );
            println!(
                "  approvals pending     {}; overrides {}",
                p.approvals_pending,
                p.overrides.len()
            );
        }
        if report.pipelines.is_empty() {
            println!("(no release in the log)");
        }
        Ok(OK)
    }

    fn init(&self, service: Option<String>, force: bool) -> Result<u8, Failure> {
        let dir = base_dir(&self.g.file);
        let name = match service {
            Some(s) => s,
            None => std::fs::canonicalize(&dir)
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))
                .unwrap_or_else(|| "my-service".to_owned()),
        };
        let files = [
            (
                dir.join("templates").join("web-service.toml"),
                init::TEMPLATE.to_owned(),
            ),
            (self.g.file.clone(), init::service(&name)),
            (dir.join("release.toml"), init::manifest(&name)),
        ];
        if !force {
            if let Some((p, _)) = files.iter().find(|(p, _)| p.exists()) {
                return Err(Failure::Usage(format!(
                    "{} exists; use --force to overwrite",
                    p.display()
                )));
            }
        }
        for (path, text) in &files {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Failure::Store(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            std::fs::write(path, text)
                .map_err(|e| Failure::Store(format!("cannot write {}: {e}", path.display())))?;
            println!("wrote {}", path.display());
        }
        println!(
            "next: promote validate; promote register --manifest {}; promote run latest",
            dir.join("release.toml").display()
        );
        Ok(OK)
    }

    fn validate(&self, json: bool) -> Result<u8, Failure> {
        let loaded = match self.load(false) {
            Ok(l) => l,
            Err(Failure::Config(e)) if json => {
                let loc = e.location();
                println!(
                    "{}",
                    json!({
                        "ok": false,
                        "error": {
                            "kind": format!("{:?}", e.kind()),
                            "file": loc.map(|l| l.file.clone()),
                            "line": loc.map(|l| l.line),
                            "column": loc.map(|l| l.column),
                            "message": e.message(),
                            "notes": e.notes(),
                            "text": e.to_string(),
                        }
                    })
                );
                return Err(Failure::Config(e));
            }
            Err(e) => return Err(e),
        };
        let p = &loaded.pipeline;
        let stages: Vec<serde_json::Value> = p
            .stages()
            .iter()
            .map(|s| {
                let names = |id: PhaseId| -> Vec<String> {
                    s.gate_names(id).iter().map(|g| g.to_string()).collect()
                };
                let steps: Vec<serde_json::Value> = s
                    .steps()
                    .iter()
                    .enumerate()
                    .map(|(k, st)| {
                        json!({
                            "weight": st.weight.get(),
                            "pause": promotion_config::format_duration(st.pause),
                            "analysis": names(PhaseId::Analysis { step: k as u32 }),
                        })
                    })
                    .collect();
                json!({
                    "name": s.name,
                    "after": s.upstream,
                    "entry": names(PhaseId::Entry),
                    "approval": s.spec.approval.as_ref().map(|a| a.rule.to_string()),
                    "rollout": steps,
                    "verification": names(PhaseId::Verification),
                    "soak": s.spec.soak.map(promotion_config::format_duration),
                    "manual_start": !s.spec.auto_start,
                })
            })
            .collect();
        let deploy = match loaded.service.as_ref().map(Service::deploy) {
            Some(promotion_config::DeploySpec::Command { command, .. }) => command.join(" "),
            _ => "none (record only)".to_owned(),
        };
        if json {
            let t = &loaded.identity.template;
            println!(
                "{}",
                json!({
                    "ok": true,
                    "pipeline": p.name(),
                    "version": p.version(),
                    "template": { "name": t.name, "version": t.version, "digest": t.digest.to_string() },
                    "service": loaded.identity.service,
                    "params": loaded.params.iter().map(|(k, v)| (k.clone(), promotion_config::registry::toml_to_json(v))).collect::<serde_json::Map<_, _>>(),
                    "deploy": deploy,
                    "stages": stages,
                })
            );
            return Ok(OK);
        }
        println!("ok: pipeline `{}`", p.name());
        println!("version: {}", p.version());
        println!("deploy: {deploy}");
        for s in p.stages() {
            let mut parts = Vec::new();
            if !s.upstream.is_empty() {
                let ups: Vec<&str> = s.upstream.iter().map(|u| u.as_str()).collect();
                parts.push(format!("after {}", ups.join(", ")));
            }
            let entry = s.gate_names(PhaseId::Entry);
            if !entry.is_empty() {
                let g: Vec<&str> = entry.iter().map(|g| g.as_str()).collect();
                parts.push(format!("gates {}", g.join(", ")));
            }
            if let Some(a) = &s.spec.approval {
                parts.push(format!("approval {}", a.rule));
            }
            if s.spec.rollout.is_some() {
                let w: Vec<String> = s.steps().iter().map(|st| st.weight.to_string()).collect();
                parts.push(format!("rollout {}", w.join(" → ")));
            }
            let ver = s.gate_names(PhaseId::Verification);
            if !ver.is_empty() {
                let g: Vec<&str> = ver.iter().map(|g| g.as_str()).collect();
                parts.push(format!("verification {}", g.join(", ")));
            }
            if let Some(d) = s.spec.soak {
                parts.push(format!("soak {}", promotion_config::format_duration(d)));
            }
            println!("  {:<14} {}", s.name.as_str(), parts.join("; "));
        }
        Ok(OK)
    }

    async fn register(&self, manifest: &Path, who: &Who) -> Result<u8, Failure> {
        let loaded = self.load(false)?;
        let release = manifest::read(manifest, &who.id)?;
        let principal = who.principal()?;
        let store: Arc<dyn EventStore> = Arc::new(store::open(&self.place())?);
        let engine = self.engine(&loaded, store.clone());
        let id = engine.register(release, &principal).await?;
        show::print_since(store.as_ref(), &id, 0).await?;
        println!("registered {id}");
        println!("next: promote run {}", id.short());
        Ok(OK)
    }

    async fn drive(
        &self,
        reference: &str,
        wait: bool,
        max_wait: Option<std::time::Duration>,
    ) -> Result<u8, Failure> {
        let (loaded, engine, rows) = self.open(true).await?;
        let row = show::resolve(&rows, reference)?;
        let id = row.id;
        let mut seen = row.state.version;
        eprintln!(
            "promote: {} ({}) in {}",
            row.name,
            id.short(),
            loaded.pipeline.version()
        );
        loop {
            let progress = engine.advance(&id).await?;
            seen = show::print_since(engine.store().as_ref(), &id, seen).await?;
            if progress.needs_human() {
                print_waiting(&progress, &id);
                return Ok(HUMAN);
            }
            let Some(at) = progress.next_wakeup() else {
                return Ok(finish(&loaded, &progress.state));
            };
            let wait_for = (at - Utc::now()).to_std().unwrap_or_default();
            let too_long = max_wait.is_some_and(|m| wait_for > m);
            if !wait || too_long {
                print_waiting(&progress, &id);
                return Ok(TIME);
            }
            for w in &progress.waiting {
                eprintln!("  waiting: {w}");
            }
            tokio::time::sleep(wait_for.max(std::time::Duration::from_millis(10))).await;
        }
    }

    async fn act<F, Fut>(&self, reference: &str, f: F) -> Result<u8, Failure>
    where
        F: FnOnce(Engine, promotion_core::ReleaseId) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<promotion_core::Event>, Failure>>,
    {
        let (_, engine, rows) = self.open(false).await?;
        let row = show::resolve(&rows, reference)?;
        let events = f(engine, row.id).await?;
        for e in &events {
            println!("{}", show::event_line(e));
        }
        println!("next: promote run {}", row.id.short());
        Ok(OK)
    }

    async fn status(&self, reference: Option<&str>, json: bool) -> Result<u8, Failure> {
        let loaded = self.load(false)?;
        let place = self.place();
        // A reading command creates no log: no SQLite file yet means no release yet.
        let rows = if place.database.is_none() && !place.dir.join(store::DB_FILE).exists() {
            Vec::new()
        } else {
            let store = store::open_existing(&place)?;
            show::releases(&store, loaded.pipeline.name()).await?
        };
        let p = &loaded.pipeline;
        let now = Utc::now();
        let rows: Vec<&Row> = match reference {
            Some(r) => vec![show::resolve(&rows, r)?],
            None => rows.iter().collect(),
        };
        let describe = |row: &Row| {
            let plan = promotion_core::plan(p, &row.state, now);
            let stages: serde_json::Map<String, serde_json::Value> = p
                .stages()
                .iter()
                .map(|s| {
                    (
                        s.name.to_string(),
                        json!(row.state.status(s.name.as_str()).label()),
                    )
                })
                .collect();
            json!({
                "id": row.id.to_string(),
                "name": row.name,
                "registered_at": row.registered.to_rfc3339(),
                "pipeline_version": row.state.pipeline_version,
                "stages": stages,
                "waiting": plan.waiting.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        };
        if json {
            let releases: Vec<serde_json::Value> = rows.iter().map(|r| describe(r)).collect();
            println!(
                "{}",
                json!({ "pipeline": p.name(), "version": p.version(), "releases": releases })
            );
            return Ok(OK);
        }
        if let (Some(_), [row]) = (reference, rows.as_slice()) {
            println!("release {} {}", row.id, row.name);
            println!("pipeline version {}", row.state.pipeline_version);
            for s in p.stages() {
                let st = row.state.stage(s.name.as_str());
                println!("  {:<14} {}", s.name.as_str(), st.status);
                for (label, ps) in [
                    ("entry", &st.entry),
                    ("analysis", &st.analysis),
                    ("verification", &st.verification),
                ] {
                    for (g, r) in ps.gates.iter() {
                        let mut line = format!("    {label} gate {g}: {}", r.outcome);
                        if let Some(by) = &r.overridden_by {
                            line.push_str(&format!(" (overridden by {by})"));
                        }
                        println!("{line}");
                    }
                }
                for a in &st.approvals {
                    println!("    approved by {} at {}", a.principal.id, a.at);
                }
                if let Some(r) = &st.rejection {
                    println!("    rejected by {}: {}", r.principal.id, r.comment);
                }
                if let Some(f) = &st.failure {
                    println!("    failed: {f}");
                }
            }
            let plan = promotion_core::plan(p, &row.state, now);
            for w in plan.waiting {
                println!("waiting for {w}");
            }
            return Ok(OK);
        }
        let mut header = vec!["RELEASE".to_owned(), "NAME".to_owned()];
        header.extend(p.stages().iter().map(|s| s.name.to_string().to_uppercase()));
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let mut cells = vec![r.id.short(), r.name.clone()];
                cells.extend(
                    p.stages()
                        .iter()
                        .map(|s| r.state.status(s.name.as_str()).label().to_owned()),
                );
                cells
            })
            .collect();
        print!("{}", show::table(&header, &table));
        if table.is_empty() {
            println!("(no release registered; `promote register --manifest <file>`)");
        }
        Ok(OK)
    }

    async fn verify(&self, vkey: Option<&Path>, json: bool) -> Result<u8, Failure> {
        let place = self.place();
        let verifier = store::verifier(&place.dir, vkey)?;
        let store = store::open_existing(&place)?;
        match store.verify(Some(&verifier)).await {
            Ok(r) => {
                let root: String = r.root.iter().map(|b| format!("{b:02x}")).collect();
                let size = r.checkpoint.as_ref().map_or(0, |c| c.size);
                if json {
                    println!(
                        "{}",
                        json!({
                            "ok": true, "entries": r.entries, "bytes": r.bytes, "streams": r.streams,
                            "root": root, "checkpoint_size": size, "signature_checked": r.signature_checked,
                            "key": verifier.name(),
                        })
                    );
                } else {
                    println!(
                        "ok: {} entries ({} bytes) in {} streams; root {root}; checkpoint at size {size} signed by {}",
                        r.entries, r.bytes, r.streams, verifier.name()
                    );
                }
                Ok(OK)
            }
            Err(
                e @ (promotion_audit::AuditError::Tampered(_)
                | promotion_audit::AuditError::Checkpoint(_)),
            ) => {
                let message = promotion_core::report_chain(&e);
                if json {
                    println!("{}", json!({ "ok": false, "error": message }));
                }
                Err(Failure::Refused(message))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn what_if(
        &self,
        template: Option<PathBuf>,
        version: Option<String>,
        json: bool,
    ) -> Result<u8, Failure> {
        let loader = self.loader(false);
        let current = self.load(false)?;
        let service = current.service.as_ref().ok_or_else(|| {
            Failure::Usage("what-if needs a service file (--file) naming its template".into())
        })?;
        let next = match (template, version) {
            (Some(path), None) => {
                let t = promotion_config::Template::from_file(&path)?;
                loader.instantiate(&t, Some(service))?
            }
            (None, Some(v)) => {
                let t = loader.find_template_version(service, &current.template.id().name, &v)?;
                loader.instantiate(&t, Some(service))?
            }
            _ => {
                return Err(Failure::Usage(
                    "what-if needs --template <file> or --template-version <version>".into(),
                ))
            }
        };
        let store = store::open_existing(&self.place())?;
        let rows = show::releases(&store, current.pipeline.name()).await?;
        let report =
            promotion_config::what_if(rows.iter().map(|r| r.events.as_slice()), &next.pipeline);
        let code = if report.blocked_promotions() > 0 {
            REFUSED
        } else {
            OK
        };
        if json {
            let mut v = serde_json::to_value(&report)
                .map_err(|e| Failure::Store(format!("cannot render the report: {e}")))?;
            if let Some(o) = v.as_object_mut() {
                o.insert("promotions".into(), json!(report.promotions()));
                o.insert(
                    "blocked_promotions".into(),
                    json!(report.blocked_promotions()),
                );
                o.insert(
                    "unknown_promotions".into(),
                    json!(report.unknown_promotions()),
                );
            }
            println!("{v}");
            return Ok(code);
        }
        println!("what-if: {} under {}", report.pipeline, report.version);
        println!(
            "{} recorded promotions in {} releases: {} would have been blocked, {} would have needed evaluation",
            report.promotions(),
            report.releases.len(),
            report.blocked_promotions(),
            report.unknown_promotions()
        );
        for r in &report.releases {
            println!("release {} {}", r.release.short(), r.name);
            for s in &r.stages {
                let verdict = match s.verdict {
                    WhatIfVerdict::Allowed => "allowed",
                    WhatIfVerdict::Blocked => "BLOCKED",
                    WhatIfVerdict::Unknown => "unknown",
                    WhatIfVerdict::NotInTemplate => "not in template",
                };
                println!("  {:<14} {:<18} -> {verdict}", s.stage, s.recorded);
                for f in &s.findings {
                    println!("      {f}");
                }
            }
        }
        Ok(code)
    }
}

fn print_waiting(progress: &Progress, id: &promotion_core::ReleaseId) {
    let mut hints = BTreeMap::new();
    for w in &progress.waiting {
        println!("waiting for {w}");
        let hint = match w {
            Waiting::Approval { stage, .. } => format!(
                "promote approve {} {stage} --as <principal> --groups <groups>",
                id.short()
            ),
            Waiting::Judgement { stage, gate, .. } => format!(
                "promote judge {} {stage} {gate} [--pass] --as <principal>",
                id.short()
            ),
            Waiting::ManualStart { stage } => {
                format!("promote start {} {stage} --as <principal>", id.short())
            }
            Waiting::Until { at, .. } => format!("promote run {} (after {at})", id.short()),
        };
        hints.insert(hint, ());
    }
    for h in hints.keys() {
        println!("next: {h}");
    }
}

/// The exit code of a release that waits for nothing: 1 when a stage ended without
/// promoting it.
fn finish(loaded: &Loaded, state: &ReleaseState) -> u8 {
    let mut failed = false;
    for s in loaded.pipeline.stages() {
        let st = state.status(s.name.as_str());
        if matches!(
            st,
            StageStatus::Failed
                | StageStatus::Rejected
                | StageStatus::Aborted
                | StageStatus::RolledBack
        ) {
            failed = true;
        }
        println!("{:<14} {st}", s.name.as_str());
    }
    if failed {
        REFUSED
    } else {
        OK
    }
}
