//! Releases: immutable, content-addressed bundles of artifacts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestError};
use crate::name::{InvalidName, PrincipalId};

/// The identity of a release: the SHA-256 digest of its canonical serialisation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReleaseId(Digest);

impl ReleaseId {
    /// The underlying digest.
    pub fn digest(&self) -> &Digest {
        &self.0
    }
    /// Twelve hex digits, for display.
    pub fn short(&self) -> String {
        self.0.short(12)
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
impl fmt::Debug for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReleaseId({})", self.short())
    }
}
impl std::str::FromStr for ReleaseId {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        Ok(ReleaseId(Digest::parse(s)?))
    }
}

/// One artifact of a release (an image, a binary, a chart), pinned by its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Name, unique within the release (`api-image`).
    pub name: String,
    /// SHA-256 digest of the artifact's bytes.
    pub digest: Digest,
    /// Where to fetch it from, if the host wants that recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// The source commit a release was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// Repository, as the host names it (`git@example.com:shop/api`).
    pub repository: String,
    /// Commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
    pub commit: String,
    /// When the commit was made; the start of "lead time for changes".
    pub committed_at: DateTime<Utc>,
}

/// An immutable bundle of artifacts that moves through every stage unchanged.
///
/// Its [`ReleaseId`] is the digest of its canonical serialisation, so changing any field makes
/// a different release. Build one with [`Release::builder`]; deserialising checks the id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ReleaseRepr", into = "ReleaseRepr")]
pub struct Release {
    id: ReleaseId,
    content: ReleaseContent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ReleaseContent {
    name: String,
    artifacts: Vec<Artifact>,
    source: SourceRef,
    built_at: DateTime<Utc>,
    builder: String,
    contributors: BTreeSet<PrincipalId>,
    labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct ReleaseRepr {
    id: ReleaseId,
    #[serde(flatten)]
    content: ReleaseContent,
}

impl From<Release> for ReleaseRepr {
    fn from(r: Release) -> Self {
        ReleaseRepr {
            id: r.id,
            content: r.content,
        }
    }
}

impl TryFrom<ReleaseRepr> for Release {
    type Error = ReleaseError;
    fn try_from(repr: ReleaseRepr) -> Result<Self, ReleaseError> {
        let release = Release::from_content(repr.content)?;
        if release.id != repr.id {
            return Err(ReleaseError::IdMismatch {
                recorded: repr.id,
                computed: release.id,
            });
        }
        Ok(release)
    }
}

/// Why a release could not be built or read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// An artifact's digest is malformed.
    #[error("artifact `{artifact}`: {source}")]
    InvalidDigest {
        /// The artifact's name.
        artifact: String,
        /// What was wrong with the digest.
        source: DigestError,
    },
    /// Two artifacts share a name.
    #[error("artifact `{artifact}` appears twice")]
    DuplicateArtifact {
        /// The repeated name.
        artifact: String,
    },
    /// A release needs at least one artifact.
    #[error("a release needs at least one artifact")]
    NoArtifacts,
    /// A required text field is empty.
    #[error("release field `{field}` is empty")]
    EmptyField {
        /// The field's name.
        field: &'static str,
    },
    /// The commit id is not 40 or 64 lowercase hex digits.
    #[error("source commit `{commit}` is not a 40 or 64 digit lowercase hex commit id")]
    InvalidCommit {
        /// The commit as given.
        commit: String,
    },
    /// A contributor's id is invalid.
    #[error("contributor: {0}")]
    InvalidContributor(InvalidName),
    /// The stored id does not match the content (the record was edited).
    #[error("release id {recorded} does not match its content, which hashes to {computed}")]
    IdMismatch {
        /// Id found in the record.
        recorded: ReleaseId,
        /// Id computed from the content.
        computed: ReleaseId,
    },
    /// The content could not be serialised.
    #[error("release could not be serialised: {0}")]
    Serialisation(String),
}

impl Release {
    /// Starts a release named `name` built from `commit` of `repository`.
    pub fn builder(
        name: impl Into<String>,
        repository: impl Into<String>,
        commit: impl Into<String>,
        committed_at: DateTime<Utc>,
    ) -> ReleaseBuilder {
        ReleaseBuilder {
            name: name.into(),
            source: SourceRef {
                repository: repository.into(),
                commit: commit.into(),
                committed_at,
            },
            built_at: committed_at,
            builder: String::new(),
            artifacts: Vec::new(),
            contributors: Vec::new(),
            labels: BTreeMap::new(),
        }
    }

    fn from_content(content: ReleaseContent) -> Result<Self, ReleaseError> {
        if content.name.trim().is_empty() {
            return Err(ReleaseError::EmptyField { field: "name" });
        }
        if content.builder.trim().is_empty() {
            return Err(ReleaseError::EmptyField { field: "builder" });
        }
        if content.source.repository.trim().is_empty() {
            return Err(ReleaseError::EmptyField {
                field: "source.repository",
            });
        }
        let commit = &content.source.commit;
        if !(commit.len() == 40 || commit.len() == 64)
            || !commit
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ReleaseError::InvalidCommit {
                commit: commit.chars().take(80).collect(),
            });
        }
        if content.artifacts.is_empty() {
            return Err(ReleaseError::NoArtifacts);
        }
        let mut seen = BTreeSet::new();
        for a in &content.artifacts {
            if a.name.trim().is_empty() {
                return Err(ReleaseError::EmptyField {
                    field: "artifact.name",
                });
            }
            if !seen.insert(a.name.as_str()) {
                return Err(ReleaseError::DuplicateArtifact {
                    artifact: a.name.clone(),
                });
            }
        }
        let digest = Digest::of_canonical(&content)
            .map_err(|e| ReleaseError::Serialisation(e.to_string()))?;
        Ok(Release {
            id: ReleaseId(digest),
            content,
        })
    }

    /// The content-derived id.
    pub fn id(&self) -> ReleaseId {
        self.id
    }
    /// Human-readable name (`api 1.4.2`).
    pub fn name(&self) -> &str {
        &self.content.name
    }
    /// The artifacts, in the order given.
    pub fn artifacts(&self) -> &[Artifact] {
        &self.content.artifacts
    }
    /// The source commit.
    pub fn source(&self) -> &SourceRef {
        &self.content.source
    }
    /// When it was built.
    pub fn built_at(&self) -> DateTime<Utc> {
        self.content.built_at
    }
    /// Who or what built it (a CI system's identity).
    pub fn builder_id(&self) -> &str {
        &self.content.builder
    }
    /// People whose changes are in it; they may not approve it.
    pub fn contributors(&self) -> &BTreeSet<PrincipalId> {
        &self.content.contributors
    }
    /// Free-form labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.content.labels
    }
}

/// Builder for [`Release`]; every field is validated in [`ReleaseBuilder::build`].
#[derive(Debug, Clone)]
pub struct ReleaseBuilder {
    name: String,
    source: SourceRef,
    built_at: DateTime<Utc>,
    builder: String,
    artifacts: Vec<(String, String, Option<String>)>,
    contributors: Vec<String>,
    labels: BTreeMap<String, String>,
}

impl ReleaseBuilder {
    /// Adds an artifact pinned by `digest` (`sha256:<hex>`).
    pub fn artifact(mut self, name: impl Into<String>, digest: impl Into<String>) -> Self {
        self.artifacts.push((name.into(), digest.into(), None));
        self
    }
    /// Adds an artifact with the location it is fetched from.
    pub fn artifact_at(
        mut self,
        name: impl Into<String>,
        digest: impl Into<String>,
        uri: impl Into<String>,
    ) -> Self {
        self.artifacts
            .push((name.into(), digest.into(), Some(uri.into())));
        self
    }
    /// When the release was built (defaults to the commit time).
    pub fn built_at(mut self, at: DateTime<Utc>) -> Self {
        self.built_at = at;
        self
    }
    /// The builder's identity (required).
    pub fn builder(mut self, builder: impl Into<String>) -> Self {
        self.builder = builder.into();
        self
    }
    /// Adds a contributor; contributors may not approve the release.
    pub fn contributor(mut self, id: impl Into<String>) -> Self {
        self.contributors.push(id.into());
        self
    }
    /// Sets a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Validates everything and computes the id.
    pub fn build(self) -> Result<Release, ReleaseError> {
        let mut artifacts = Vec::with_capacity(self.artifacts.len());
        for (name, digest, uri) in self.artifacts {
            let digest = Digest::parse(&digest).map_err(|source| ReleaseError::InvalidDigest {
                artifact: name.clone(),
                source,
            })?;
            artifacts.push(Artifact { name, digest, uri });
        }
        let contributors = self
            .contributors
            .into_iter()
            .map(PrincipalId::new)
            .collect::<Result<BTreeSet<_>, _>>()
            .map_err(ReleaseError::InvalidContributor)?;
        Release::from_content(ReleaseContent {
            name: self.name,
            artifacts,
            source: self.source,
            built_at: self.built_at,
            builder: self.builder,
            contributors,
            labels: self.labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample() -> ReleaseBuilder {
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 9, 30, 0).unwrap();
        Release::builder("api 1.4.2", "git@example.com:shop/api", "a".repeat(40), t)
            .artifact(
                "api-image",
                "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            )
            .builder("ci.example.com")
            .contributor("dana")
            .label("team", "payments")
    }

    #[test]
    fn id_is_pinned_and_stable() {
        let r = sample().build().unwrap();
        // Pinned, and cross-checked with Python: sha256 of json.dumps(content, sort_keys=True,
        // separators=(",", ":")). If this changes, every stored release id changes.
        assert_eq!(
            r.id().to_string(),
            "sha256:884f1eab93ec59de6cf0da65603fce30bc423fdc899a3ce91748cb47551f5279"
        );
    }

    #[test]
    fn any_change_makes_a_new_release() {
        let a = sample().build().unwrap();
        let b = sample().label("team", "search").build().unwrap();
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn malformed_digest_names_the_artifact() {
        let err = sample().artifact("chart", "sha256:zz").build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "artifact `chart`: a sha256 digest has 64 hex digits, found 2"
        );
    }

    #[test]
    fn bad_commit_and_duplicates_are_refused() {
        let t = Utc::now();
        let err = Release::builder("x", "r", "nothex", t)
            .artifact("a", format!("sha256:{}", "0".repeat(64)))
            .builder("ci")
            .build()
            .unwrap_err();
        assert!(matches!(err, ReleaseError::InvalidCommit { .. }));
        let err = sample()
            .artifact("api-image", format!("sha256:{}", "0".repeat(64)))
            .build()
            .unwrap_err();
        assert!(matches!(err, ReleaseError::DuplicateArtifact { .. }));
    }

    #[test]
    fn round_trips_and_detects_edits() {
        let r = sample().build().unwrap();
        let json = serde_json::to_string(&r).unwrap();
        let back: Release = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        let edited = json.replace("payments", "payment$");
        let err = serde_json::from_str::<Release>(&edited).unwrap_err();
        assert!(
            err.to_string().contains("does not match its content"),
            "{err}"
        );
    }
}
