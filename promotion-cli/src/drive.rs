//! Moving releases: registering one, driving it as far as its gates allow (`run`, `advance`),
//! and the commands a person gives a stage (approve, reject, override, judge, start, abort,
//! roll back).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use promotion_config::Loaded;
use promotion_core::{
    Digest, EngineError, EventStore, HostCommand, InvalidName, Principal, Progress, ReleaseState,
    StageName, StageStatus, Waiting,
};

use promotion_identity::{Decision, Statement};

use crate::app::App;
use crate::args::{OnStage, Who};
use crate::failure::{Failure, HUMAN, OK, REFUSED, TIME};
use crate::identity::{Identities, Registrant};
use crate::manifest;
use crate::show;
use crate::store;

impl App {
    /// Registers the release in `manifest` on behalf of `who` (see
    /// [`Identities::registrant`]); the pipeline's `register` rule decides which
    /// verifications it accepts.
    pub(crate) async fn register(&self, manifest: &Path, who: &Registrant) -> Result<u8, Failure> {
        let loaded = self.load(false)?;
        let principal = Identities::of(&loaded)?.registrant(who)?;
        let release = manifest::read(manifest, principal.id.as_str())?;
        let store: Arc<dyn EventStore> = Arc::new(store::open(&self.place())?);
        let engine = self.engine(&loaded, store.clone());
        let id = engine.register(release, &principal).await?;
        show::print_since(store.as_ref(), &id, 0).await?;
        println!("registered {id}");
        println!("next: promote run {}", id.short());
        Ok(OK)
    }

    pub(crate) async fn drive(
        &self,
        reference: &str,
        wait: bool,
        max_wait: Option<std::time::Duration>,
    ) -> Result<u8, Failure> {
        let (loaded, engine, rows) = self.open(true).await?;
        let row = show::resolve(&rows, reference)?;
        let id = row.id;
        let mut seen = row.state.version();
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
                return Ok(finish(&loaded, progress.state()));
            };
            let wait_for = (at - Utc::now()).to_std().unwrap_or_default();
            let too_long = max_wait.is_some_and(|m| wait_for > m);
            if !wait || too_long {
                print_waiting(&progress, &id);
                return Ok(TIME);
            }
            for w in progress.waiting() {
                eprintln!("  waiting: {w}");
            }
            tokio::time::sleep(wait_for.max(std::time::Duration::from_millis(10))).await;
        }
    }

    /// A person's command to a stage: opens the log, checks who acts (see
    /// [`Identities`]), finds the release,
    /// submits the command through `submit` (given the engine, the release, the stage and the
    /// principal), and prints the events it recorded and what to run next.
    ///
    /// With `--key`, the decision and its comment (`what`) become the signed statement, over the
    /// stage's entry evidence digest as it stands and the pipeline version in force.
    pub(crate) async fn act<F>(
        &self,
        on: OnStage,
        who: &Who,
        what: (Decision, &str),
        command: F,
    ) -> Result<u8, Failure>
    where
        F: FnOnce(&str, &Principal) -> Result<HostCommand, InvalidName>,
    {
        let (loaded, engine, rows) = self.open(false).await?;
        let identities = Identities::of(&loaded)?;
        let principal = identities.principal(who)?;
        let row = show::resolve(&rows, &on.release)?;
        let principal = match &who.key {
            None => principal,
            Some(key) => {
                // Every decision, start and rollback included, records its principal with the
                // verification (`stage_started.by`, `rollback_started.by`), so the signature
                // is kept with the log entry it is for.
                let (decision, comment) = what;
                let statement = Statement {
                    release: row.id,
                    stage: StageName::new(&on.stage).map_err(EngineError::from)?,
                    decision,
                    evidence: row.state.stage(&on.stage).entry_digest(),
                    pipeline_version: loaded.pipeline.version().to_owned(),
                    roster: Digest::of(b""),
                    comment: comment.to_owned(),
                    time: Utc::now(),
                };
                identities.sign(principal, key, statement)?
            }
        };
        let command = command(&on.stage, &principal).map_err(EngineError::from)?;
        let events = engine.submit(&row.id, command).await?;
        for e in &events {
            println!("{}", show::event_line(e));
        }
        println!("next: promote run {}", row.id.short());
        Ok(OK)
    }
}

fn print_waiting(progress: &Progress, id: &promotion_core::ReleaseId) {
    let mut hints = BTreeMap::new();
    for w in progress.waiting() {
        println!("waiting for {w}");
        let hint = match w {
            Waiting::Approval { stage, .. } => {
                format!("promote approve {} {stage} --as <principal>", id.short())
            }
            Waiting::Judgement { stage, gate, .. } => format!(
                "promote judge {} {stage} {gate} [--pass] --as <principal>",
                id.short()
            ),
            Waiting::ManualStart { stage, .. } => {
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
