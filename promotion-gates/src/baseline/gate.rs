//! The [`ConfigBaselineGate`] at evaluation time: walking the directory, comparing each file's
//! digest with the approved manifest, and reporting changed, added and removed files.

use std::collections::BTreeMap;
use std::io::{self};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use promotion_core::{
    Attachment, Digest, Evidence, Gate, GateContext, GateError, GateKind, Verdict,
};
use serde::Serialize;
use walkdir::WalkDir;

use crate::input::invalid_input;

use super::{
    digest_file, manifest_inside, read_text, shown, slash_path, walk_error, BaselineManifest,
    BaselineReport, ChangedFile, ConfigBaselineGate, ConfigBaselineGateBuilder, FailOn, FileDigest,
    ManifestFormat, ManifestInfo, RemovedFile, SUMMARY_NAMES,
};

impl ConfigBaselineGate {
    /// Starts a gate comparing the files under `directory` with the manifest at `manifest`.
    pub fn builder(
        directory: impl Into<PathBuf>,
        manifest: impl Into<PathBuf>,
    ) -> ConfigBaselineGateBuilder {
        ConfigBaselineGateBuilder {
            name: "config-baseline".to_owned(),
            directory: directory.into(),
            manifest: manifest.into(),
            format: None,
            include: Vec::new(),
            exclude: Vec::new(),
            follow_symlinks: false,
            fail_on: FailOn::default(),
        }
    }

    /// The directory it checks.
    pub fn directory(&self) -> &Path {
        &self.config.directory
    }

    /// The manifest it compares with.
    pub fn manifest_path(&self) -> &Path {
        &self.config.manifest
    }

    fn format(&self) -> ManifestFormat {
        self.config
            .format
            .unwrap_or_else(|| ManifestFormat::from_path(&self.config.manifest))
    }

    /// Digests every selected file of the directory, in path order (blocking).
    pub fn scan(&self) -> Result<Vec<FileDigest>, GateError> {
        let c = &self.config;
        let dir = c.directory.as_path();
        match std::fs::metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(invalid_input(
                    shown(dir),
                    None,
                    "the configuration directory does not exist",
                ))
            }
            Err(e) => {
                return Err(invalid_input(
                    shown(dir),
                    None,
                    format!("the configuration directory cannot be read: {e}"),
                ))
            }
            Ok(m) if !m.is_dir() => {
                return Err(invalid_input(shown(dir), None, "is not a directory"));
            }
            Ok(_) => {}
        }
        let skip = manifest_inside(dir, &c.manifest);
        let mut out = Vec::new();
        let mut walk = WalkDir::new(dir)
            .follow_links(c.follow_symlinks)
            .sort_by_file_name()
            .into_iter();
        while let Some(entry) = walk.next() {
            let entry = entry.map_err(|e| walk_error(dir, &e))?;
            if entry.depth() == 0 {
                continue;
            }
            let path = entry.path();
            let rel = path
                .strip_prefix(dir)
                .ok()
                .and_then(slash_path)
                .ok_or_else(|| {
                    invalid_input(shown(path), None, "the file name is not valid UTF-8")
                })?;
            let kind = entry.file_type();
            if kind.is_dir() {
                if c.selection.prunes(&rel) {
                    walk.skip_current_dir();
                }
                continue;
            }
            if skip.as_deref() == Some(rel.as_str()) {
                continue;
            }
            if kind.is_symlink() {
                if c.selection.excludes(&rel) {
                    continue;
                }
                return Err(invalid_input(
                    shown(path),
                    None,
                    "is a symbolic link: exclude it, or let the gate follow symbolic links",
                ));
            }
            if !c.selection.selects(&rel) {
                continue;
            }
            if !kind.is_file() {
                return Err(invalid_input(
                    shown(path),
                    None,
                    "is not a regular file (a socket, FIFO or device)",
                ));
            }
            let (digest, size) = digest_file(path)?;
            out.push(FileDigest {
                path: rel,
                digest,
                size,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// A manifest of the directory as it is now, with no approval recorded (blocking).
    pub fn capture(&self) -> Result<BaselineManifest, GateError> {
        Ok(BaselineManifest::new(
            self.scan()?.into_iter().map(|f| (f.path, f.digest)),
        ))
    }

    /// Approves the directory as it is now: captures it, records `by` and `at`, writes the
    /// manifest to the gate's manifest path and returns it (blocking).
    pub fn approve(
        &self,
        by: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Result<BaselineManifest, GateError> {
        let manifest = self.capture()?.approved(by, at);
        manifest.write_as(&self.config.manifest, self.format())?;
        Ok(manifest)
    }

    /// Reads the manifest, digests the directory and compares them (blocking).
    pub fn check(&self) -> Result<BaselineReport, GateError> {
        let c = &self.config;
        let (bytes, text) = read_text(&c.manifest, "baseline manifest")?;
        let manifest = BaselineManifest::parse(&text, self.format(), &shown(&c.manifest))?;
        let files = self.scan()?;
        let skip = manifest_inside(&c.directory, &c.manifest);
        let found: BTreeMap<&str, &FileDigest> =
            files.iter().map(|f| (f.path.as_str(), f)).collect();

        let mut removed = Vec::new();
        let mut changed = Vec::new();
        let mut unchanged = 0;
        let mut out_of_scope = Vec::new();
        for (path, approved) in &manifest.files {
            if !c.selection.selects(path) || skip.as_deref() == Some(path.as_str()) {
                out_of_scope.push(path.clone());
                continue;
            }
            match found.get(path.as_str()) {
                None => removed.push(RemovedFile {
                    path: path.clone(),
                    approved: *approved,
                }),
                Some(f) if f.digest != *approved => changed.push(ChangedFile {
                    path: path.clone(),
                    approved: *approved,
                    found: f.digest,
                    size: f.size,
                }),
                Some(_) => unchanged += 1,
            }
        }
        let added = files
            .iter()
            .filter(|f| !manifest.files.contains_key(&f.path))
            .cloned()
            .collect();
        Ok(BaselineReport {
            directory: shown(&c.directory),
            manifest: ManifestInfo {
                path: shown(&c.manifest),
                digest: Digest::of(&bytes),
                size: bytes.len() as u64,
                approved_by: manifest.approved_by,
                approved_at: manifest.approved_at,
                entries: manifest.files.len(),
            },
            files,
            added,
            removed,
            changed,
            unchanged,
            out_of_scope,
        })
    }

    fn verdict(&self, report: &BaselineReport, now: DateTime<Utc>) -> Result<Verdict, GateError> {
        let c = &self.config;
        let failures = report.failures(c.fail_on);
        let in_scope = report
            .manifest
            .entries
            .saturating_sub(report.out_of_scope.len());
        let baseline = baseline_phrase(&report.manifest);
        let summary = if report.files.is_empty() && in_scope == 0 {
            format!(
                "no configuration files selected in {} and none in {baseline}: nothing to compare",
                report.directory
            )
        } else if failures > 0 {
            let mut parts = Vec::new();
            if !report.changed.is_empty() {
                parts.push(counted(
                    report.changed.len(),
                    "changed",
                    report.changed.iter().map(|f| f.path.as_str()),
                ));
            }
            if !report.added.is_empty() {
                let label = match c.fail_on {
                    FailOn::AnyDifference => "added",
                    FailOn::ChangedOrRemoved => "added (tolerated)",
                };
                parts.push(counted(
                    report.added.len(),
                    label,
                    report.added.iter().map(|f| f.path.as_str()),
                ));
            }
            if !report.removed.is_empty() {
                parts.push(counted(
                    report.removed.len(),
                    "removed",
                    report.removed.iter().map(|f| f.path.as_str()),
                ));
            }
            format!(
                "configuration in {} drifted from {baseline}: {}; {} unchanged",
                report.directory,
                parts.join(", "),
                report.unchanged
            )
        } else {
            let mut s = format!(
                "configuration in {} matches {baseline}: {} {} unchanged",
                report.directory,
                report.unchanged,
                plural(report.unchanged, "file", "files")
            );
            if !report.added.is_empty() {
                s.push_str("; ");
                s.push_str(&counted(
                    report.added.len(),
                    "added (tolerated)",
                    report.added.iter().map(|f| f.path.as_str()),
                ));
            }
            s
        };

        let data = BaselineData {
            directory: &report.directory,
            manifest: &report.manifest,
            include: &c.selection.include_patterns,
            exclude: &c.selection.exclude_patterns,
            follow_symlinks: c.follow_symlinks,
            fail_on: c.fail_on,
            counts: BaselineCounts {
                files: report.files.len(),
                unchanged: report.unchanged,
                changed: report.changed.len(),
                added: report.added.len(),
                removed: report.removed.len(),
                out_of_scope: report.out_of_scope.len(),
            },
            changed: &report.changed,
            added: &report.added,
            removed: &report.removed,
            out_of_scope: &report.out_of_scope,
            files: &report.files,
        };
        let data = serde_json::to_value(&data).map_err(|e| GateError::Other {
            message: "the baseline evidence could not be serialised".to_owned(),
            source: Some(Box::new(e)),
        })?;
        let mut evidence = Evidence::new(self.name(), now, summary)
            .with_data(data)
            .with_fact("drift", (failures > 0).to_string())
            .with_fact("changed", report.changed.len().to_string())
            .with_fact("added", report.added.len().to_string())
            .with_fact("removed", report.removed.len().to_string())
            .with_fact("unchanged", report.unchanged.to_string())
            .with_fact("manifest", report.manifest.digest.to_string());
        evidence.attachments.push(Attachment {
            name: report.manifest.path.clone(),
            digest: report.manifest.digest,
            size: report.manifest.size,
        });
        for f in &report.files {
            evidence.attachments.push(Attachment {
                name: format!("{}/{}", report.directory, f.path),
                digest: f.digest,
                size: f.size,
            });
        }
        Ok(if report.files.is_empty() && in_scope == 0 {
            Verdict::Inconclusive(evidence)
        } else {
            Verdict::pass_if(failures == 0, evidence)
        })
    }
}

#[derive(Serialize)]
struct BaselineCounts {
    files: usize,
    unchanged: usize,
    changed: usize,
    added: usize,
    removed: usize,
    out_of_scope: usize,
}

#[derive(Serialize)]
struct BaselineData<'a> {
    directory: &'a str,
    manifest: &'a ManifestInfo,
    include: &'a [String],
    exclude: &'a [String],
    follow_symlinks: bool,
    fail_on: FailOn,
    counts: BaselineCounts,
    changed: &'a [ChangedFile],
    added: &'a [FileDigest],
    removed: &'a [RemovedFile],
    out_of_scope: &'a [String],
    files: &'a [FileDigest],
}

pub(crate) fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `2 changed (a.toml, b.toml)`, listing at most [`SUMMARY_NAMES`] names.
pub(crate) fn counted<'a>(n: usize, label: &str, names: impl Iterator<Item = &'a str>) -> String {
    let shown: Vec<&str> = names.take(SUMMARY_NAMES).collect();
    let more = n.saturating_sub(shown.len());
    let mut list = shown.join(", ");
    if more > 0 {
        list.push_str(&format!(" and {more} more"));
    }
    format!("{n} {label} ({list})")
}

fn baseline_phrase(m: &ManifestInfo) -> String {
    let file = Path::new(&m.path)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| m.path.clone());
    match (&m.approved_by, &m.approved_at) {
        (Some(by), Some(at)) => format!(
            "the baseline {file} approved by {by} on {}",
            at.format("%Y-%m-%d %H:%M UTC")
        ),
        (Some(by), None) => format!("the baseline {file} approved by {by}"),
        (None, Some(at)) => format!(
            "the baseline {file} approved on {}",
            at.format("%Y-%m-%d %H:%M UTC")
        ),
        (None, None) => format!("the baseline {file}"),
    }
}

/// Runs `f` on a thread of its own, so that the executor (and the engine's timeout) is not
/// blocked while a large tree is hashed.
async fn off_thread<T, F>(label: &str, f: F) -> Result<T, GateError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, GateError> + Send + 'static,
{
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::Builder::new()
        .name(label.to_owned())
        .spawn(move || {
            // The receiver is gone only when the evaluation was abandoned (a timeout).
            let _ = tx.send(f());
        })
        .map_err(|e| GateError::Other {
            message: format!("{label}: could not start a thread to hash files"),
            source: Some(Box::new(e)),
        })?;
    rx.await.unwrap_or_else(|_| {
        Err(GateError::other(format!(
            "{label}: the hashing thread stopped before it finished"
        )))
    })
}

#[async_trait]
impl Gate for ConfigBaselineGate {
    fn name(&self) -> &str {
        &self.config.name
    }
    fn kind(&self) -> GateKind {
        GateKind::Compliance
    }
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let gate = self.clone();
        let report = off_thread("config-baseline", move || gate.check()).await?;
        self.verdict(&report, ctx.now())
    }
}
