//! The reproducibility gate: a release passes only when an independent second build produced
//! every one of its artifacts with the same digest.
//!
//! The second build's manifest may be a name-to-digest map, an in-toto statement's subjects, or a
//! configuration-baseline manifest of the output directory ([`ManifestShape`]); every shape is
//! checked entry by entry, so a malformed manifest is a [`GateError::InvalidInput`] naming the
//! file, the line and the entry, never a pass. See the [`baseline`](crate::baseline) module for
//! the manifest formats the two gates share.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use promotion_core::{
    Artifact, Attachment, Digest, Evidence, Gate, GateContext, GateError, GateKind, GateName,
    Release, Verdict,
};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess};
use serde::{Deserialize, Deserializer, Serialize};

use crate::baseline::{
    counted, parse_document, plural, read_text, shown, BaselineConfigError, EntriesSeed, EntryKind,
    ManifestFormat,
};

// Reproducibility gate
// ---------------------------------------------------------------------------------------------

/// Which shape a second-build manifest had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ManifestShape {
    /// `{"artifacts": {name: digest}}`.
    Artifacts,
    /// A baseline manifest, `{"files": {path: digest}}`.
    Files,
    /// An in-toto statement's `subject` list, or a bare list of subjects.
    InTotoSubjects,
}

impl ManifestShape {
    fn key(self) -> &'static str {
        match self {
            ManifestShape::Artifacts => "artifacts",
            ManifestShape::Files => "files",
            ManifestShape::InTotoSubjects => "subject",
        }
    }
}

/// The artifacts of a build: name → digest. See the [module documentation](self) for the
/// accepted shapes.
///
/// ```
/// use promotion_gates::baseline::{ArtifactManifest, ManifestFormat, ManifestShape};
///
/// let hex = "cdd7a8a8142d5fab92b399222384c3e0cb2812dfc4e3bd6d75afe1304873841b";
/// let text = format!(r#"[{{"name": "api-image", "digest": {{"sha256": "{hex}"}}}}]"#);
/// let m = ArtifactManifest::parse(&text, ManifestFormat::Json, "rebuild.json")?;
/// assert_eq!(m.shape, ManifestShape::InTotoSubjects);
/// assert_eq!(m.artifacts["api-image"].to_hex(), hex);
/// # Ok::<(), promotion_core::GateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArtifactManifest {
    /// Artifact name → digest.
    pub artifacts: BTreeMap<String, Digest>,
    /// The shape it was read from.
    pub shape: ManifestShape,
}

impl ArtifactManifest {
    /// Parses a second build's manifest; `origin` names it in errors
    /// ([`GateError::InvalidInput`] with the line where known, naming the bad entry).
    pub fn parse(text: &str, format: ManifestFormat, origin: &str) -> Result<Self, GateError> {
        parse_document::<ArtifactDoc>(text, format, origin).map(|d| d.0)
    }
}

struct ArtifactDoc(ArtifactManifest);

impl<'de> Deserialize<'de> for ArtifactDoc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ArtifactDocVisitor)
    }
}

struct ArtifactDocVisitor;

impl<'de> de::Visitor<'de> for ArtifactDocVisitor {
    type Value = ArtifactDoc;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a table with an `artifacts` map, a `files` map or an in-toto `subject` list, \
             or a list of in-toto subjects",
        )
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ArtifactDoc, A::Error> {
        Ok(ArtifactDoc(ArtifactManifest {
            artifacts: SubjectsVisitor.visit_seq(seq)?,
            shape: ManifestShape::InTotoSubjects,
        }))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ArtifactDoc, A::Error> {
        let mut found: Option<ArtifactManifest> = None;
        while let Some(key) = map.next_key::<String>()? {
            let (shape, artifacts) = match key.as_str() {
                "artifacts" => (
                    ManifestShape::Artifacts,
                    map.next_value_seed(EntriesSeed(EntryKind::Artifact))?,
                ),
                "files" => (
                    ManifestShape::Files,
                    map.next_value_seed(EntriesSeed(EntryKind::File))?,
                ),
                "subject" => (
                    ManifestShape::InTotoSubjects,
                    map.next_value_seed(SubjectsVisitor)?,
                ),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if let Some(previous) = &found {
                return Err(de::Error::custom(format!(
                    "has both `{}` and `{key}`: expected a single list of artifacts",
                    previous.shape.key()
                )));
            }
            found = Some(ArtifactManifest { artifacts, shape });
        }
        found.map(ArtifactDoc).ok_or_else(|| {
            de::Error::custom(
                "no artifacts: expected an `artifacts` map, a `files` map or an in-toto \
                 `subject` list",
            )
        })
    }
}

/// One in-toto subject, checked inside its own visitor so that errors carry its position.
struct SubjectSeed<'a> {
    index: usize,
    seen: &'a BTreeMap<String, Digest>,
}

impl<'de> DeserializeSeed<'de> for SubjectSeed<'_> {
    type Value = (String, Digest);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> de::Visitor<'de> for SubjectSeed<'_> {
    type Value = (String, Digest);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an in-toto subject {"name": …, "digest": {"sha256": …}}"#)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut name: Option<String> = None;
        let mut digests: Option<BTreeMap<String, String>> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => name = Some(map.next_value()?),
                "digest" => digests = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let index = self.index;
        let name = name
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| de::Error::custom(format!("subject {index} has no name")))?;
        let shown = name.escape_debug().to_string();
        let digests =
            digests.ok_or_else(|| de::Error::custom(format!("subject `{shown}` has no digest")))?;
        let Some(hex) = digests.get("sha256") else {
            let algorithms: Vec<&str> = digests.keys().map(String::as_str).collect();
            return Err(de::Error::custom(format!(
                "subject `{shown}` has no sha256 digest (it has: {})",
                if algorithms.is_empty() {
                    "none".to_owned()
                } else {
                    algorithms.join(", ")
                }
            )));
        };
        let digest = Digest::parse(&format!("sha256:{hex}"))
            .map_err(|e| de::Error::custom(format!("subject `{shown}`: {e}")))?;
        if self.seen.contains_key(&name) {
            return Err(de::Error::custom(format!(
                "subject `{shown}` is listed twice"
            )));
        }
        Ok((name, digest))
    }
}

struct SubjectsVisitor;

impl<'de> DeserializeSeed<'de> for SubjectsVisitor {
    type Value = BTreeMap<String, Digest>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> de::Visitor<'de> for SubjectsVisitor {
    type Value = BTreeMap<String, Digest>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a list of in-toto subjects {"name": …, "digest": {"sha256": …}}"#)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((name, digest)) = seq.next_element_seed(SubjectSeed {
            index: out.len() + 1,
            seen: &out,
        })? {
            out.insert(name, digest);
        }
        Ok(out)
    }
}

/// Whether one artifact was reproduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ArtifactStatus {
    /// Both builds produced the same bytes.
    Matched,
    /// The second build produced different bytes.
    Mismatched,
    /// The release has it; the second build does not.
    MissingFromSecondBuild,
    /// The second build has it; the release does not.
    MissingFromRelease,
}

/// One artifact compared across the two builds.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ArtifactCheck {
    /// The artifact's name.
    pub name: String,
    pub status: ArtifactStatus,
    /// The release's digest, if it has the artifact.
    pub release: Option<Digest>,
    /// The second build's digest, if it has the artifact.
    pub second_build: Option<Digest>,
}

/// The outcome of comparing a release with a second build.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReproducibilityReport {
    /// The second build's manifest path.
    pub manifest: String,
    /// Digest of its bytes.
    pub manifest_digest: Digest,
    /// Its size in bytes.
    pub manifest_size: u64,
    pub shape: ManifestShape,
    /// Every artifact of either build, by name.
    pub artifacts: Vec<ArtifactCheck>,
}

impl ReproducibilityReport {
    /// How many artifacts have `status`.
    pub fn count(&self, status: ArtifactStatus) -> usize {
        self.artifacts.iter().filter(|a| a.status == status).count()
    }
    /// Whether every artifact matched (and there was at least one).
    pub fn reproducible(&self) -> bool {
        !self.artifacts.is_empty()
            && self
                .artifacts
                .iter()
                .all(|a| a.status == ArtifactStatus::Matched)
    }
}

fn compare_artifacts(
    release: &[Artifact],
    second: &BTreeMap<String, Digest>,
) -> Vec<ArtifactCheck> {
    let mut out: BTreeMap<&str, ArtifactCheck> = BTreeMap::new();
    for a in release {
        let theirs = second.get(&a.name).copied();
        let status = match theirs {
            Some(d) if d == a.digest => ArtifactStatus::Matched,
            Some(_) => ArtifactStatus::Mismatched,
            None => ArtifactStatus::MissingFromSecondBuild,
        };
        out.insert(
            &a.name,
            ArtifactCheck {
                name: a.name.clone(),
                status,
                release: Some(a.digest),
                second_build: theirs,
            },
        );
    }
    for (name, digest) in second {
        out.entry(name).or_insert_with(|| ArtifactCheck {
            name: name.clone(),
            status: ArtifactStatus::MissingFromRelease,
            release: None,
            second_build: Some(*digest),
        });
    }
    out.into_values().collect()
}

/// Fails unless every artifact of the release has the same digest in an independent second
/// build's manifest, and that build has no artifact the release lacks.
///
/// ```
/// use promotion_core::testing::GateProbe;
/// use promotion_core::{Digest, Release, Verdict};
/// use promotion_gates::baseline::ReproducibilityGate;
///
/// let image = Digest::of(b"api-image 1.4.2");
/// let release = Release::builder("api 1.4.2", "git@example.com:shop/api", "a".repeat(40),
///         "2026-11-20T09:30:00Z".parse()?)
///     .artifact("api-image", image.to_string())
///     .builder("ci.example.com")
///     .build()?;
///
/// let dir = tempfile::tempdir()?;
/// let rebuild = dir.path().join("rebuild.json");
/// std::fs::write(&rebuild, format!(r#"{{"artifacts": {{"api-image": "{image}"}}}}"#))?;
/// let gate = ReproducibilityGate::builder(&rebuild).build()?;
/// let probe = GateProbe::new().release(release);
/// let verdict = futures::executor::block_on(probe.evaluate(&gate))?;
/// assert!(matches!(verdict, Verdict::Pass(_)), "{verdict:?}");
///
/// // A rebuild that differs fails, with both digests in the evidence.
/// let other = Digest::of(b"api-image 1.4.2 with a timestamp");
/// std::fs::write(&rebuild, format!(r#"{{"artifacts": {{"api-image": "{other}"}}}}"#))?;
/// let verdict = futures::executor::block_on(probe.evaluate(&gate))?;
/// assert!(matches!(verdict, Verdict::Fail(_)));
/// assert!(verdict.evidence().summary.contains("1 mismatched (api-image)"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ReproducibilityGate {
    name: String,
    manifest: PathBuf,
    format: Option<ManifestFormat>,
}

/// Builder for [`ReproducibilityGate`].
#[derive(Debug, Clone)]
pub struct ReproducibilityGateBuilder {
    name: String,
    manifest: PathBuf,
    format: Option<ManifestFormat>,
}

impl ReproducibilityGateBuilder {
    /// Names the gate (default `reproducibility`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Reads the manifest as `format` whatever its extension says.
    pub fn manifest_format(mut self, format: ManifestFormat) -> Self {
        self.format = Some(format);
        self
    }
    /// Validates the name.
    pub fn build(self) -> Result<ReproducibilityGate, BaselineConfigError> {
        GateName::new(self.name.as_str())?;
        Ok(ReproducibilityGate {
            name: self.name,
            manifest: self.manifest,
            format: self.format,
        })
    }
}

impl ReproducibilityGate {
    /// Starts a gate comparing the release with the second build's manifest at `manifest`.
    pub fn builder(manifest: impl Into<PathBuf>) -> ReproducibilityGateBuilder {
        ReproducibilityGateBuilder {
            name: "reproducibility".to_owned(),
            manifest: manifest.into(),
            format: None,
        }
    }

    /// Reads the second build's manifest and compares it with `release`.
    pub fn check(&self, release: &Release) -> Result<ReproducibilityReport, GateError> {
        let (bytes, text) = read_text(&self.manifest, "second build's manifest")?;
        let format = self
            .format
            .unwrap_or_else(|| ManifestFormat::from_path(&self.manifest));
        let second = ArtifactManifest::parse(&text, format, &shown(&self.manifest))?;
        Ok(ReproducibilityReport {
            manifest: shown(&self.manifest),
            manifest_digest: Digest::of(&bytes),
            manifest_size: bytes.len() as u64,
            shape: second.shape,
            artifacts: compare_artifacts(release.artifacts(), &second.artifacts),
        })
    }
}

#[derive(Serialize)]
struct ReproducibilityData<'a> {
    release: ReleaseRef<'a>,
    second_build: SecondBuildRef<'a>,
    counts: ReproducibilityCounts,
    artifacts: &'a [ArtifactCheck],
}

#[derive(Serialize)]
struct ReleaseRef<'a> {
    name: &'a str,
    id: String,
}

#[derive(Serialize)]
struct SecondBuildRef<'a> {
    manifest: &'a str,
    digest: Digest,
    shape: ManifestShape,
}

#[derive(Serialize)]
struct ReproducibilityCounts {
    matched: usize,
    mismatched: usize,
    missing_from_second_build: usize,
    missing_from_release: usize,
}

#[async_trait]
impl Gate for ReproducibilityGate {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> GateKind {
        GateKind::Automated
    }
    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let release = ctx.release;
        let report = self.check(release)?;
        let counts = ReproducibilityCounts {
            matched: report.count(ArtifactStatus::Matched),
            mismatched: report.count(ArtifactStatus::Mismatched),
            missing_from_second_build: report.count(ArtifactStatus::MissingFromSecondBuild),
            missing_from_release: report.count(ArtifactStatus::MissingFromRelease),
        };
        let file = Path::new(&report.manifest)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| report.manifest.clone());
        let reproducible = report.reproducible();
        let summary = if reproducible {
            format!(
                "{} reproduced bit for bit: all {} {} match the second build ({file})",
                release.name(),
                counts.matched,
                plural(counts.matched, "artifact", "artifacts")
            )
        } else {
            let names = |status: ArtifactStatus| {
                report
                    .artifacts
                    .iter()
                    .filter(move |a| a.status == status)
                    .map(|a| a.name.as_str())
            };
            let mut parts = Vec::new();
            for (n, label, status) in [
                (counts.mismatched, "mismatched", ArtifactStatus::Mismatched),
                (
                    counts.missing_from_second_build,
                    "missing from the second build",
                    ArtifactStatus::MissingFromSecondBuild,
                ),
                (
                    counts.missing_from_release,
                    "only in the second build",
                    ArtifactStatus::MissingFromRelease,
                ),
            ] {
                if n > 0 {
                    parts.push(counted(n, label, names(status)));
                }
            }
            if parts.is_empty() {
                parts.push("no artifacts to compare".to_owned());
            }
            format!(
                "{} is not reproducible against {file}: {}; {} of {} matched",
                release.name(),
                parts.join(", "),
                counts.matched,
                report.artifacts.len()
            )
        };
        let data = ReproducibilityData {
            release: ReleaseRef {
                name: release.name(),
                id: release.id().to_string(),
            },
            second_build: SecondBuildRef {
                manifest: &report.manifest,
                digest: report.manifest_digest,
                shape: report.shape,
            },
            artifacts: &report.artifacts,
            counts,
        };
        let data = serde_json::to_value(&data).map_err(|e| GateError::Other {
            message: "the reproducibility evidence could not be serialised".to_owned(),
            source: Some(Box::new(e)),
        })?;
        let mut evidence = Evidence::new(self.name(), ctx.now(), summary)
            .with_fact("reproducible", reproducible.to_string())
            .with_fact("matched", report.count(ArtifactStatus::Matched).to_string())
            .with_fact(
                "mismatched",
                report.count(ArtifactStatus::Mismatched).to_string(),
            )
            .with_fact(
                "missing",
                (report.count(ArtifactStatus::MissingFromSecondBuild)
                    + report.count(ArtifactStatus::MissingFromRelease))
                .to_string(),
            )
            .with_data(data);
        evidence.attachments.push(Attachment {
            name: report.manifest.clone(),
            digest: report.manifest_digest,
            size: report.manifest_size,
        });
        Ok(Verdict::pass_if(reproducible, evidence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::ConfigBaselineGate;
    use chrono::{DateTime, TimeZone, Utc};
    use futures::executor::block_on;
    use promotion_core::testing::GateProbe;

    fn data(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/baseline")
            .join(rel)
    }

    fn invalid_input(result: Result<Verdict, GateError>) -> (String, String) {
        match result {
            Err(GateError::InvalidInput { what, message }) => (what, message),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 9, 30, 0).unwrap()
    }

    fn release(artifacts: &[(&str, &[u8])]) -> Release {
        let mut b = Release::builder(
            "shop-api 1.4.2",
            "git@example.com:shop/api",
            "b".repeat(40),
            t0(),
        )
        .builder("ci.example.com");
        for (name, bytes) in artifacts {
            b = b.artifact(*name, Digest::of(bytes).to_string());
        }
        b.build().unwrap()
    }

    fn shop_release() -> Release {
        release(&[
            ("api-image", b"api-image 1.4.2"),
            ("helm-chart", b"helm-chart 1.4.2"),
        ])
    }

    fn reproduce(manifest: &str, release: Release) -> Result<Verdict, GateError> {
        let gate = ReproducibilityGate::builder(data(&format!("reproducibility/{manifest}")))
            .build()
            .unwrap();
        block_on(GateProbe::new().release(release).evaluate(&gate))
    }

    #[test]
    fn reproducibility_matching_builds_pass_in_every_shape() {
        for (file, shape) in [
            ("second-build.json", "artifacts"),
            ("second-build.toml", "artifacts"),
            ("second-build.intoto.json", "in_toto_subjects"),
            ("subjects.json", "in_toto_subjects"),
        ] {
            let verdict = reproduce(file, shop_release()).unwrap();
            let Verdict::Pass(ev) = &verdict else {
                panic!("{file}: {verdict:?}")
            };
            assert_eq!(
                ev.summary,
                format!(
                    "shop-api 1.4.2 reproduced bit for bit: all 2 artifacts match the second build ({file})"
                )
            );
            assert_eq!(ev.data["second_build"]["shape"], shape, "{file}");
            assert_eq!(ev.facts["reproducible"], "true");
            let bytes = std::fs::read(data(&format!("reproducibility/{file}"))).unwrap();
            assert_eq!(ev.attachments.len(), 1);
            assert_eq!(ev.attachments[0].digest, Digest::of(&bytes));
            assert_eq!(
                ev.data["second_build"]["digest"],
                Digest::of(&bytes).to_string()
            );
            assert_eq!(ev.data["artifacts"][0]["status"], "matched");
        }
    }

    #[test]
    fn reproducibility_accepts_a_baseline_manifest_of_the_output_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("dist");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("api-image"), b"api-image 1.4.2").unwrap();
        std::fs::write(out.join("helm-chart"), b"helm-chart 1.4.2").unwrap();
        let manifest = tmp.path().join("rebuild.json");
        ConfigBaselineGate::builder(&out, &manifest)
            .build()
            .unwrap()
            .approve("rb-2", t0())
            .unwrap();
        let gate = ReproducibilityGate::builder(&manifest).build().unwrap();
        let verdict = block_on(GateProbe::new().release(shop_release()).evaluate(&gate)).unwrap();
        let Verdict::Pass(ev) = &verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(ev.data["second_build"]["shape"], "files");
        assert_eq!(gate.kind(), GateKind::Automated);
    }

    #[test]
    fn reproducibility_mismatch_fails_with_both_digests() {
        let verdict = reproduce("mismatch.json", shop_release()).unwrap();
        let Verdict::Fail(ev) = &verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(
            ev.summary,
            "shop-api 1.4.2 is not reproducible against mismatch.json: 1 mismatched (api-image); 1 of 2 matched"
        );
        assert_eq!(
            ev.data["artifacts"][0],
            serde_json::json!({
                "name": "api-image",
                "status": "mismatched",
                "release": Digest::of(b"api-image 1.4.2").to_string(),
                "second_build": "sha256:2ed5cda794fd9c86511e81fbb6b0f562e8bebf2c211cef5fbe431e572e80ed73",
            })
        );
        assert_eq!(ev.facts["reproducible"], "false");
        assert_eq!(ev.facts["mismatched"], "1");
    }

    #[test]
    fn reproducibility_artifacts_missing_on_either_side_fail() {
        let verdict = reproduce("partial.json", shop_release()).unwrap();
        let Verdict::Fail(ev) = &verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(
            ev.summary,
            "shop-api 1.4.2 is not reproducible against partial.json: 1 missing from the second build (helm-chart), 1 only in the second build (debug-symbols); 1 of 3 matched"
        );
        let statuses: Vec<(&str, &str)> = ev.data["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["name"].as_str().unwrap(), a["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("api-image", "matched"),
                ("debug-symbols", "missing_from_release"),
                ("helm-chart", "missing_from_second_build"),
            ]
        );
        assert_eq!(
            ev.data["artifacts"][2]["second_build"],
            serde_json::Value::Null
        );
        assert_eq!(ev.facts["missing"], "2");

        // A release with an artifact the second build never produced.
        let verdict = reproduce(
            "second-build.json",
            release(&[
                ("api-image", b"api-image 1.4.2"),
                ("helm-chart", b"helm-chart 1.4.2"),
                ("sbom", b"sbom"),
            ]),
        )
        .unwrap();
        assert!(
            matches!(&verdict, Verdict::Fail(ev) if ev.summary.contains("1 missing from the second build (sbom)")),
            "{verdict:?}"
        );
    }

    fn broken_rebuild(name: &str) -> (String, String) {
        let path = data(&format!("reproducibility/broken/{name}"));
        let (what, message) = invalid_input(reproduce(&format!("broken/{name}"), shop_release()));
        assert!(
            what.starts_with(&path.display().to_string()),
            "{name}: `{what}` does not name the file"
        );
        (what, message)
    }

    #[test]
    fn reproducibility_malformed_second_manifests_are_invalid_input() {
        let (what, message) = broken_rebuild("not-json.json");
        assert!(what.ends_with("not-json.json line 1"), "{what}");
        assert!(message.starts_with("not valid JSON"), "{message}");

        let (what, message) = broken_rebuild("bad-digest.json");
        assert!(what.ends_with(" line 4"), "{what}");
        assert!(
            message.starts_with("artifact `helm-chart`: expected a digest of the form `sha256:"),
            "{message}"
        );

        let (what, message) = broken_rebuild("duplicate-artifact.json");
        assert!(what.ends_with(" line 4"), "{what}");
        assert_eq!(message, "artifact `api-image` is listed twice");

        let (_, message) = broken_rebuild("subject-without-sha256.json");
        assert_eq!(
            message,
            "subject `helm-chart` has no sha256 digest (it has: sha512)"
        );

        let (_, message) = broken_rebuild("duplicate-subject.json");
        assert_eq!(message, "subject `api-image` is listed twice");

        let (_, message) = broken_rebuild("no-artifacts-key.json");
        assert!(
            message.starts_with("no artifacts: expected an `artifacts` map"),
            "{message}"
        );

        let err = ArtifactManifest::parse(
            r#"{"artifacts": {}, "subject": []}"#,
            ManifestFormat::Json,
            "both.json",
        )
        .unwrap_err();
        assert!(
            matches!(&err, GateError::InvalidInput { what, message }
                if what == "both.json line 1" && message.starts_with("has both `artifacts` and `subject`")),
            "{err:?}"
        );

        let err =
            ArtifactManifest::parse(r#""just text""#, ManifestFormat::Json, "s.json").unwrap_err();
        assert!(matches!(err, GateError::InvalidInput { .. }), "{err:?}");

        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("rebuild.json");
        let gate = ReproducibilityGate::builder(&missing).build().unwrap();
        let (what, message) = invalid_input(block_on(
            GateProbe::new().release(shop_release()).evaluate(&gate),
        ));
        assert_eq!(what, missing.display().to_string());
        assert_eq!(message, "the second build's manifest does not exist");
    }

    #[test]
    fn reproducibility_name_and_format_are_configurable() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("rebuild.txt");
        std::fs::copy(data("reproducibility/second-build.toml"), &path).unwrap();
        let gate = ReproducibilityGate::builder(&path)
            .name("rebuild-matches")
            .manifest_format(ManifestFormat::Toml)
            .build()
            .unwrap();
        assert_eq!(gate.name(), "rebuild-matches");
        let verdict = block_on(GateProbe::new().release(shop_release()).evaluate(&gate)).unwrap();
        assert!(
            matches!(&verdict, Verdict::Pass(ev) if ev.producer == "rebuild-matches"),
            "{verdict:?}"
        );
    }
}
