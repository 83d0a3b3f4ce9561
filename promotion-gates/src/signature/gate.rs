//! The [`SignatureGate`] at evaluation time: each artifact's envelopes verified against the
//! trusted keys, the statement's subjects matched with the artifact's digest, the provenance
//! checked, and a report per artifact as evidence.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use promotion_core::{
    Artifact, Digest, Evidence, Gate, GateContext, GateError, GateKind, GateName, Verdict,
};
use promotion_intoto::{Acceptance, Envelope, EnvelopeError, Threshold, VerifyError};
use serde_json::{json, Value};

use crate::input::{invalid_input, located};

use super::{
    descriptor_commits, parameter_commits, EnvelopeFile, EnvelopeFormat, EnvelopeSource,
    KeyAlgorithm, ProvenanceDoc, SignatureGateBuilder, StatementDoc, TrustedKey,
    IN_TOTO_PAYLOAD_TYPE, SHORT_COMMIT, SLSA_PROVENANCE_V1, STATEMENT_V1,
};

/// Verifies signed in-toto attestations (and optionally SLSA provenance) for every artifact of
/// a release; see the [module docs](super).
///
/// ```
/// use promotion_gates::signature::{EnvelopeDir, SignatureGate};
///
/// let pem = "-----BEGIN PUBLIC KEY-----\n\
///            MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
///            -----END PUBLIC KEY-----\n";
/// let gate = SignatureGate::builder(EnvelopeDir::new("attestations"))
///     .trusted_key_pem("release-key", pem)
///     .require_slsa_provenance(true)
///     .trusted_builder("https://ci.example.com/builders/hermetic@v3")
///     .build()?;
/// assert_eq!(gate.key_ids(), ["release-key"]);
/// # Ok::<(), promotion_gates::signature::SignatureConfigError>(())
/// ```
#[derive(Clone)]
pub struct SignatureGate {
    pub(super) name: GateName,
    pub(super) source: Arc<dyn EnvelopeSource>,
    pub(super) keys: Vec<TrustedKey>,
    pub(super) require_provenance: bool,
    pub(super) builders: BTreeSet<String>,
    pub(super) check_source_commit: bool,
    pub(super) threshold: Threshold,
}

impl fmt::Debug for SignatureGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureGate")
            .field("name", &self.name.as_str())
            .field("source", &self.source)
            .field(
                "keys",
                &self
                    .keys
                    .iter()
                    .map(|k| (k.id.as_str(), k.key.algorithm().as_str()))
                    .collect::<Vec<_>>(),
            )
            .field("require_provenance", &self.require_provenance)
            .field("builders", &self.builders)
            .field("check_source_commit", &self.check_source_commit)
            .field("threshold", &self.threshold.get())
            .finish()
    }
}

/// What one envelope showed.
#[derive(Debug)]
struct EnvelopeCheck {
    origin: String,
    digest: Digest,
    signatures: usize,
    keyid_hints: Vec<String>,
    /// The distinct trusted keys that verified, in signature order (all of them only when
    /// they met the threshold).
    keys: Vec<(String, KeyAlgorithm)>,
    payload_type: String,
    statement_type: Option<String>,
    predicate_type: Option<String>,
    build_type: Option<String>,
    builder_id: Option<String>,
    source_commits: Vec<String>,
    problems: Vec<String>,
}

impl EnvelopeCheck {
    /// With a threshold above one, `key_ids` lists every key that verified; at the default
    /// of one, the evidence is written as before thresholds existed.
    fn to_json(&self, threshold: Threshold) -> Value {
        let first = self.keys.first();
        let mut value = json!({
            "origin": self.origin,
            "sha256": self.digest.to_string(),
            "signatures": self.signatures,
            "keyid_hints": self.keyid_hints,
            "key_id": first.map(|(id, _)| id.as_str()),
            "algorithm": first.map(|(_, a)| a.as_str()),
            "payload_type": self.payload_type,
            "statement_type": self.statement_type,
            "predicate_type": self.predicate_type,
            "build_type": self.build_type,
            "builder_id": self.builder_id,
            "source_commits": self.source_commits,
            "problems": self.problems,
        });
        if threshold > Threshold::ONE {
            if let Some(map) = value.as_object_mut() {
                let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
                map.insert("key_ids".to_owned(), json!(ids));
            }
        }
        value
    }
}

/// What the gate found for one artifact.
#[derive(Debug)]
struct ArtifactReport<'a> {
    artifact: &'a Artifact,
    checks: Vec<EnvelopeCheck>,
    /// Set when no envelope was found.
    missing: Option<String>,
}

impl ArtifactReport<'_> {
    fn accepted(&self) -> Option<&EnvelopeCheck> {
        self.checks.iter().find(|c| c.problems.is_empty())
    }

    fn problems(&self) -> Vec<String> {
        if self.accepted().is_some() {
            return Vec::new();
        }
        if let Some(looked) = &self.missing {
            return vec![format!("no envelope (looked for {looked})")];
        }
        let several = self.checks.len() > 1;
        self.checks
            .iter()
            .flat_map(|c| {
                c.problems.iter().map(move |p| {
                    if several {
                        format!("{}: {p}", c.origin)
                    } else {
                        p.clone()
                    }
                })
            })
            .collect()
    }

    fn to_json(&self, threshold: Threshold) -> Value {
        let accepted = self.accepted();
        json!({
            "name": self.artifact.name,
            "digest": self.artifact.digest.to_string(),
            "verified": accepted.is_some(),
            "envelope_sha256": accepted.map(|c| c.digest.to_string()),
            "key_id": accepted.and_then(|c| c.keys.first()).map(|(id, _)| id.as_str()),
            "builder_id": accepted.and_then(|c| c.builder_id.as_deref()),
            "problems": self.problems(),
            "envelopes": self.checks.iter().map(|c| c.to_json(threshold)).collect::<Vec<_>>(),
        })
    }
}

impl SignatureGate {
    /// A gate reading envelopes from `source`.
    pub fn builder(source: impl EnvelopeSource + 'static) -> SignatureGateBuilder {
        SignatureGateBuilder {
            name: "signatures".to_owned(),
            source: Arc::new(source),
            keys: Vec::new(),
            require_provenance: false,
            builders: Vec::new(),
            check_source_commit: true,
            threshold: 1,
        }
    }

    /// How many distinct trusted keys must have signed an envelope
    /// ([`SignatureGateBuilder::signature_threshold`]).
    pub fn signature_threshold(&self) -> usize {
        self.threshold.get()
    }

    /// The ids of the trusted keys, in the order configured.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Whether SLSA provenance is required.
    pub fn requires_slsa_provenance(&self) -> bool {
        self.require_provenance
    }

    /// The trusted builder ids, sorted.
    pub fn trusted_builders(&self) -> Vec<&str> {
        self.builders.iter().map(String::as_str).collect()
    }

    /// The envelopes of one file, each with the name to report it under.
    fn split<'b>(
        file: &'b EnvelopeFile,
        artifact: &Artifact,
    ) -> Result<Vec<(String, &'b [u8])>, GateError> {
        match file.format {
            EnvelopeFormat::Json => Ok(vec![(file.origin.clone(), file.bytes.as_slice())]),
            EnvelopeFormat::JsonLines => {
                let mut out = Vec::new();
                for (n, line) in file.bytes.split(|b| *b == b'\n').enumerate() {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    out.push((located(&file.origin, Some(n + 1)), line));
                }
                if out.is_empty() {
                    return Err(invalid_input(
                        file.origin.clone(),
                        None,
                        format!(
                            "artifact `{}`: the JSON Lines file holds no envelope",
                            artifact.name
                        ),
                    ));
                }
                Ok(out)
            }
        }
    }

    /// Checks one envelope for `artifact`. Malformed input is an error; everything else that
    /// is wrong is recorded as a problem.
    fn check(
        &self,
        artifact: &Artifact,
        commit: &str,
        origin: String,
        bytes: &[u8],
    ) -> Result<EnvelopeCheck, GateError> {
        let invalid = |message: String| {
            invalid_input(
                origin.clone(),
                None,
                format!("artifact `{}`: {message}", artifact.name),
            )
        };
        // Envelopes come from other tools: read them as DSSE lets any signer write them.
        // Only the message wording is the gate's own; `EnvelopeError::Json` already says "not
        // a DSSE envelope: ".
        let reworded = |e: EnvelopeError| {
            invalid(match e {
                EnvelopeError::Payload(e) => format!("the payload is not base64: {e}"),
                EnvelopeError::Signature { number, source } => {
                    format!("signature {number} is not base64: {source}")
                }
                other => other.to_string(),
            })
        };
        let envelope = Envelope::from_json(bytes, Acceptance::Dsse).map_err(reworded)?;
        let payload = envelope
            .decode_payload(Acceptance::Dsse)
            .map_err(reworded)?;
        let signatures: Vec<(String, Vec<u8>)> = envelope
            .signatures
            .iter()
            .map(|s| s.keyid.clone())
            .zip(
                envelope
                    .decode_signatures(Acceptance::Dsse)
                    .map_err(reworded)?,
            )
            .collect();

        let mut check = EnvelopeCheck {
            origin: origin.clone(),
            digest: Digest::of(bytes),
            signatures: signatures.len(),
            keyid_hints: signatures
                .iter()
                .map(|(hint, _)| hint.clone())
                .filter(|h| !h.is_empty())
                .collect(),
            keys: Vec::new(),
            payload_type: envelope.payload_type.clone(),
            statement_type: None,
            predicate_type: None,
            build_type: None,
            builder_id: None,
            source_commits: Vec::new(),
            problems: Vec::new(),
        };

        // 1. Signatures by enough distinct trusted keys over the PAE (DSSE's multi-signature
        // verification: signatures by other keys are skipped, one key counts once).
        let algorithm = |id: &str| {
            self.keys
                .iter()
                .find(|k| k.id == id)
                .map(|k| (k.id.clone(), k.key.algorithm()))
        };
        match envelope.verify(&self.keys, self.threshold, Acceptance::Dsse) {
            Ok(verified) => {
                check.keys = verified
                    .keys
                    .iter()
                    .map(|k| (k.id.clone(), k.key.algorithm()))
                    .collect();
            }
            Err(VerifyError::Unsigned) => check
                .problems
                .push("unsigned: the envelope has no signatures".to_owned()),
            Err(VerifyError::BelowThreshold {
                verified,
                signatures,
                required,
            }) => {
                let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
                let checked = format!(
                    "{signatures} signature{} checked against {}",
                    if signatures == 1 { "" } else { "s" },
                    ids.join(", ")
                );
                check.problems.push(if verified.is_empty() {
                    format!("signed by no trusted key ({checked})")
                } else {
                    format!(
                        "signed by {} of the {required} distinct trusted keys required ({}; \
                         {checked})",
                        verified.len(),
                        verified.join(", ")
                    )
                });
                check.keys = verified.iter().filter_map(|id| algorithm(id)).collect();
            }
            Err(VerifyError::Envelope(e)) => return Err(reworded(e)),
            Err(other) => return Err(invalid(other.to_string())),
        }

        // 2. An in-toto Statement v1.
        if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
            check.problems.push(format!(
                "payload type `{}` is not `{IN_TOTO_PAYLOAD_TYPE}`",
                envelope.payload_type
            ));
            return Ok(check);
        }
        let statement: StatementDoc = serde_json::from_slice(&payload)
            .map_err(|e| invalid(format!("the payload is not an in-toto statement: {e}")))?;
        check.statement_type = Some(statement.statement_type.clone());
        check.predicate_type = Some(statement.predicate_type.clone());
        if statement.statement_type != STATEMENT_V1 {
            check.problems.push(format!(
                "statement type `{}` is not `{STATEMENT_V1}`",
                statement.statement_type
            ));
        }

        // 3. A subject with the artifact's digest.
        let want = artifact.digest.to_hex();
        let matches = statement.subject.iter().any(|s| {
            s.digest
                .get("sha256")
                .is_some_and(|d| d.eq_ignore_ascii_case(&want))
        });
        if !matches {
            let names: Vec<String> = statement
                .subject
                .iter()
                .map(|s| match (&s.name, s.digest.get("sha256")) {
                    (Some(n), Some(d)) => format!("`{n}` sha256:{}", short(d)),
                    (None, Some(d)) => format!("sha256:{}", short(d)),
                    (Some(n), None) => format!("`{n}` without a sha256 digest"),
                    (None, None) => "a subject without a sha256 digest".to_owned(),
                })
                .collect();
            let found = if names.is_empty() {
                "the statement has no subject".to_owned()
            } else {
                format!("subjects: {}", names.join(" and "))
            };
            check.problems.push(format!(
                "the statement is not about digest sha256:{} ({found})",
                short(&want)
            ));
        }

        // 4. SLSA provenance.
        if statement.predicate_type == SLSA_PROVENANCE_V1 {
            let provenance: ProvenanceDoc =
                serde_json::from_value(statement.predicate).map_err(|e| {
                    invalid(format!(
                        "the SLSA provenance v1 predicate is malformed: {e}"
                    ))
                })?;
            let mut commits: Vec<String> = provenance
                .build_definition
                .resolved_dependencies
                .iter()
                .flat_map(|d| descriptor_commits(d.uri.as_deref(), &d.digest))
                .collect();
            parameter_commits(
                &provenance.build_definition.external_parameters,
                0,
                &mut commits,
            );
            let mut seen = BTreeSet::new();
            commits.retain(|c| seen.insert(c.clone()));
            let builder = provenance.run_details.builder.id;
            if self.require_provenance {
                if !self.builders.contains(&builder) {
                    check
                        .problems
                        .push(format!("builder `{builder}` is not trusted"));
                }
                if self.check_source_commit {
                    if commits.is_empty() {
                        check
                            .problems
                            .push("the provenance names no source commit".to_owned());
                    } else if !commits.iter().any(|c| c == commit) {
                        let shown: Vec<String> = commits.iter().map(|c| short(c)).collect();
                        check.problems.push(format!(
                            "built from commit {} instead of the release's commit {}",
                            shown.join(" and "),
                            short(commit)
                        ));
                    }
                }
            }
            check.build_type = Some(provenance.build_definition.build_type);
            check.builder_id = Some(builder);
            check.source_commits = commits;
        } else if self.require_provenance {
            check.problems.push(format!(
                "predicate type `{}` is not SLSA provenance `{SLSA_PROVENANCE_V1}`",
                statement.predicate_type
            ));
        }
        Ok(check)
    }
}

/// The first hex digits of a digest or commit, for summaries.
fn short(hex: &str) -> String {
    hex.chars().take(SHORT_COMMIT).collect()
}

#[async_trait]
impl Gate for SignatureGate {
    fn name(&self) -> &str {
        self.name.as_str()
    }

    fn kind(&self) -> GateKind {
        GateKind::Compliance
    }

    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let commit = ctx.release.source().commit.to_ascii_lowercase();
        let mut reports = Vec::new();
        let mut files_read: Vec<(String, Vec<u8>)> = Vec::new();
        for artifact in ctx.release.artifacts() {
            let files = self.source.envelopes(artifact).await?;
            let mut checks = Vec::new();
            for file in &files {
                for (origin, bytes) in Self::split(file, artifact)? {
                    checks.push(self.check(artifact, &commit, origin, bytes)?);
                }
            }
            let missing = files.is_empty().then(|| self.source.location(artifact));
            files_read.extend(files.into_iter().map(|f| (f.origin, f.bytes)));
            reports.push(ArtifactReport {
                artifact,
                checks,
                missing,
            });
        }

        let total = reports.len();
        let failed: Vec<&ArtifactReport<'_>> =
            reports.iter().filter(|r| r.accepted().is_none()).collect();
        let summary = if failed.is_empty() {
            let mut keys: Vec<&str> = reports
                .iter()
                .filter_map(|r| r.accepted())
                .flat_map(|c| c.keys.iter().map(|(id, _)| id.as_str()))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let what = if total == 1 {
                "the artifact".to_owned()
            } else {
                format!("all {total} artifacts")
            };
            let provenance = if self.require_provenance {
                " with SLSA provenance from trusted builders"
            } else {
                ""
            };
            format!(
                "{what} signed by trusted keys ({}){provenance}",
                keys.join(", ")
            )
        } else {
            let parts: Vec<String> = failed
                .iter()
                .map(|r| format!("`{}`: {}", r.artifact.name, r.problems().join(", ")))
                .collect();
            format!(
                "{} of {total} artifact{} not verified: {}",
                failed.len(),
                if total == 1 { "" } else { "s" },
                parts.join("; ")
            )
        };

        let mut data = json!({
            "artifacts": reports.iter().map(|r| r.to_json(self.threshold)).collect::<Vec<_>>(),
            "trusted_keys": self.keys.iter().map(|k| json!({
                "id": k.id,
                "algorithm": k.key.algorithm().as_str(),
                "public_key": k.key.to_pem(),
            })).collect::<Vec<_>>(),
            "require_slsa_provenance": self.require_provenance,
            "trusted_builders": self.trusted_builders(),
            "check_source_commit": self.check_source_commit,
            "release_commit": commit,
            "verified": total - failed.len(),
            "failed": failed.len(),
        });
        // At the default threshold the data is written as before thresholds existed.
        if self.threshold > Threshold::ONE {
            if let Some(map) = data.as_object_mut() {
                map.insert(
                    "signature_threshold".to_owned(),
                    json!(self.threshold.get()),
                );
            }
        }
        let passed = failed.is_empty();
        let mut evidence = Evidence::new(self.name(), ctx.now(), summary).with_data(data);
        for (origin, bytes) in &files_read {
            evidence = evidence.with_attachment(origin.clone(), bytes);
        }
        Ok(Verdict::pass_if(passed, evidence))
    }
}
