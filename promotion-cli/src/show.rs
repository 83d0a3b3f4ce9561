//! What the command prints: gate progress on standard error, the timeline of events, tables.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use promotion_core::{
    Event, EventStore, Gate, GateContext, GateError, GateKind, PipelineName, ReleaseId,
    ReleaseState, StreamId, Verdict,
};

use crate::failure::Failure;

/// Prints a line on standard error when a gate starts and when it has decided.
#[derive(Debug)]
pub(crate) struct Shown {
    inner: Arc<dyn Gate>,
}

impl Shown {
    /// Wraps `inner`.
    pub(crate) fn wrap(inner: Arc<dyn Gate>) -> Arc<dyn Gate> {
        Arc::new(Shown { inner })
    }
}

#[async_trait]
impl Gate for Shown {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> GateKind {
        self.inner.kind()
    }
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let label = format!("{} / {} / {}", ctx.stage, ctx.phase, ctx.gate);
        eprintln!("  ... {label}: running (round {})", ctx.round);
        let started = Instant::now();
        let result = self.inner.evaluate(ctx).await;
        let took = started.elapsed().as_secs_f64();
        match &result {
            Ok(v) => {
                let (mark, word) = match v {
                    Verdict::Pass(_) => ("ok ", "pass"),
                    Verdict::Fail(_) => ("XX ", "FAIL"),
                    Verdict::Inconclusive(_) => ("?? ", "inconclusive"),
                    Verdict::Pending { .. } => (".. ", "pending"),
                };
                eprintln!(
                    "  {mark}{label}: {word}: {} ({took:.1}s)",
                    v.evidence().summary
                );
            }
            Err(e) => eprintln!(
                "  !! {label}: could not decide: {} ({took:.1}s)",
                e.report()
            ),
        }
        result
    }
}

/// One line per event.
pub(crate) fn event_line(e: &Event) -> String {
    let stage = e.body.stage().map(|s| s.as_str()).unwrap_or("");
    format!(
        "{}  {:<12} {:<22} {}",
        e.at.format("%Y-%m-%d %H:%M:%S"),
        stage,
        e.actor.to_string(),
        e.body
    )
}

/// Prints the events of `id`'s stream after version `after`; returns the new version.
pub(crate) async fn print_since(
    store: &dyn EventStore,
    id: &ReleaseId,
    after: u64,
) -> Result<u64, Failure> {
    let recorded = store.read_from(&StreamId::for_release(id), after).await?;
    let mut last = after;
    for r in recorded {
        println!("{}", event_line(&r.event));
        last = r.version;
    }
    Ok(last)
}

/// A registered release of the pipeline.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Its id; commands take it whole or as a prefix of six hex digits or more.
    pub(crate) id: ReleaseId,
    /// Its name from the manifest; commands take it as written.
    pub(crate) name: String,
    /// When it was registered: the time of its first event.
    pub(crate) registered: DateTime<Utc>,
    /// Its state, replayed from `events`.
    pub(crate) state: ReleaseState,
    /// Every event of its stream, oldest first (what-if replays them).
    pub(crate) events: Vec<Event>,
}

/// Every release of `pipeline` in the store, oldest first.
pub(crate) async fn releases(
    store: &dyn EventStore,
    pipeline: &PipelineName,
) -> Result<Vec<Row>, Failure> {
    let mut rows = Vec::new();
    for stream in store.streams().await? {
        let events: Vec<Event> = store
            .read(&stream)
            .await?
            .into_iter()
            .map(|r| r.event)
            .collect();
        let state = ReleaseState::replay(&events);
        let (Some(release), Some(p)) = (state.release(), state.pipeline()) else {
            continue;
        };
        if p != pipeline {
            continue;
        }
        rows.push(Row {
            id: release.id(),
            name: release.name().to_owned(),
            registered: events.first().map_or_else(Utc::now, |e| e.at),
            state,
            events,
        });
    }
    rows.sort_by(|a, b| a.registered.cmp(&b.registered).then(a.id.cmp(&b.id)));
    Ok(rows)
}

/// Finds the release `reference` names: `latest`, its id (`sha256:…`), a prefix of at least
/// six hex digits of its id, or its exact name.
pub(crate) fn resolve<'a>(rows: &'a [Row], reference: &str) -> Result<&'a Row, Failure> {
    if reference == "latest" {
        return rows
            .last()
            .ok_or_else(|| Failure::Usage("no release is registered yet".into()));
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    let by_id: Vec<&Row> = if hex.len() >= 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        let lower = hex.to_ascii_lowercase();
        rows.iter()
            .filter(|r| r.id.digest().to_hex().starts_with(&lower))
            .collect()
    } else {
        Vec::new()
    };
    let matches = if by_id.is_empty() {
        rows.iter().filter(|r| r.name == reference).collect()
    } else {
        by_id
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Failure::Usage(format!(
            "no release `{reference}` in this pipeline; name one by `latest`, its id or id prefix, or its name ({} registered; see `promote status`)",
            rows.len()
        ))),
        many => Err(Failure::Usage(format!(
            "`{reference}` names {} releases ({}); give more of the id",
            many.len(),
            many.iter()
                .map(|r| r.id.short())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Renders rows of cells as a left-aligned table.
pub(crate) fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width = vec![0usize; cols];
    for r in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let line: Vec<String> = r
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
