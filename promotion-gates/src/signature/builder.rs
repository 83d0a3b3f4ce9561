//! Configuring a [`SignatureGate`]: trusted keys, the envelope source, the provenance checks,
//! every setting checked when the gate is built ([`SignatureConfigError`] names the field).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use promotion_core::{GateName, InvalidName};
use promotion_intoto::Threshold;

use super::{EnvelopeSource, KeySpec, SignatureGate, TrustedKey};

/// A signature gate configured wrongly; returned by [`SignatureGateBuilder::build`]. Each
/// variant names the setting that is wrong.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureConfigError {
    /// The gate's name is not a valid gate name.
    #[error("signature gate: name: {0}")]
    InvalidName(#[from] InvalidName),
    /// No trusted key is configured: nothing could verify.
    #[error(
        "signature gate: no trusted key is configured \
         (trusted_key_pem, trusted_ed25519_key, trusted_p256_key)"
    )]
    NoTrustedKeys,
    /// A key's id is blank.
    #[error("signature gate: {field}: the key id is blank")]
    BlankKeyId {
        /// The setting (`trusted_key_pem`, …).
        field: &'static str,
    },
    /// Two keys share an id.
    #[error("signature gate: {field}: key id `{key_id}` is used twice")]
    DuplicateKeyId {
        /// The setting of the second key.
        field: &'static str,
        key_id: String,
    },
    /// The same key material is trusted under two ids: one signer could count as two keys
    /// toward the signature threshold.
    #[error("signature gate: {field} `{key_id}`: the same key as `{same_as}`")]
    DuplicateKey {
        /// The setting of the second key.
        field: &'static str,
        key_id: String,
        /// The id it was first trusted under.
        same_as: String,
    },
    /// The signature threshold is zero, or more than the trusted keys, so that no envelope
    /// could ever meet it.
    #[error(
        "signature gate: signature_threshold {threshold}: must be at least 1 and at most the \
         {keys} trusted key(s)"
    )]
    InvalidThreshold { threshold: usize, keys: usize },
    /// A key cannot be read.
    #[error("signature gate: {field} `{key_id}`: {message}")]
    InvalidKey {
        /// The setting (`trusted_key_pem`, `trusted_ed25519_key`, `trusted_p256_key`).
        field: &'static str,
        /// The key's id.
        key_id: String,
        /// What is wrong with it.
        message: String,
    },
    /// SLSA provenance is required but no builder is trusted: nothing could pass.
    #[error("signature gate: require_slsa_provenance is on but trusted_builder lists no builder")]
    EmptyBuilderAllowlist,
    /// Builders are listed but provenance is not required, so the list would never be used.
    #[error(
        "signature gate: trusted_builder lists builders but require_slsa_provenance is off, \
         so they would never be checked"
    )]
    BuildersWithoutProvenance,
    /// A trusted builder id is blank.
    #[error("signature gate: trusted_builder: a builder id is blank")]
    BlankBuilderId,
}

/// Builder for [`SignatureGate`]; every setting is validated in
/// [`build`](SignatureGateBuilder::build).
pub struct SignatureGateBuilder {
    pub(super) name: String,
    pub(super) source: Arc<dyn EnvelopeSource>,
    pub(super) keys: Vec<(String, KeySpec)>,
    pub(super) require_provenance: bool,
    pub(super) builders: Vec<String>,
    pub(super) check_source_commit: bool,
    pub(super) threshold: usize,
}

impl fmt::Debug for SignatureGateBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureGateBuilder")
            .field("name", &self.name)
            .field("source", &self.source)
            .field(
                "keys",
                &self
                    .keys
                    .iter()
                    .map(|(id, spec)| (id.as_str(), spec.field()))
                    .collect::<Vec<_>>(),
            )
            .field("require_provenance", &self.require_provenance)
            .field("builders", &self.builders)
            .field("check_source_commit", &self.check_source_commit)
            .field("threshold", &self.threshold)
            .finish()
    }
}

impl SignatureGateBuilder {
    /// Names the gate (default `signatures`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Trusts the Ed25519 or ECDSA P-256 public key in `pem` (a `PUBLIC KEY` block, as
    /// `cosign generate-key-pair` and `openssl pkey -pubout` write), under the local id `id`.
    pub fn trusted_key_pem(mut self, id: impl Into<String>, pem: impl Into<String>) -> Self {
        self.keys.push((id.into(), KeySpec::Pem(pem.into())));
        self
    }
    /// Trusts the raw 32-byte Ed25519 public key `key` under the local id `id`.
    pub fn trusted_ed25519_key(mut self, id: impl Into<String>, key: impl AsRef<[u8]>) -> Self {
        self.keys
            .push((id.into(), KeySpec::Ed25519(key.as_ref().to_vec())));
        self
    }
    /// Trusts the ECDSA P-256 public key `key`, SEC1-encoded (65 bytes starting with `04`, or
    /// 33 compressed), under the local id `id`.
    pub fn trusted_p256_key(mut self, id: impl Into<String>, key: impl AsRef<[u8]>) -> Self {
        self.keys
            .push((id.into(), KeySpec::P256(key.as_ref().to_vec())));
        self
    }
    /// Requires SLSA Provenance v1 from a trusted builder (default off).
    pub fn require_slsa_provenance(mut self, required: bool) -> Self {
        self.require_provenance = required;
        self
    }
    /// Trusts the builder whose `runDetails.builder.id` is exactly `id`, such as
    /// `https://github.com/slsa-framework/slsa-github-generator/.github/workflows/`
    /// `generator_generic_slsa3.yml@refs/tags/v2.1.0` (one string). Versions are part of the
    /// id: trusting a new version of a builder is a configuration change.
    pub fn trusted_builder(mut self, id: impl Into<String>) -> Self {
        self.builders.push(id.into());
        self
    }
    /// Whether required provenance must name the release's source commit (default `true`).
    ///
    /// The commits a provenance names are the `gitCommit` digests of its
    /// `buildDefinition.resolvedDependencies`, their `sha1` digests when the URI is a git URI
    /// (`git+https://…`), and the same in any resource descriptor (an object with a `digest`)
    /// inside `buildDefinition.externalParameters`. The release's commit must be one of them.
    pub fn check_source_commit(mut self, check: bool) -> Self {
        self.check_source_commit = check;
        self
    }

    /// How many distinct trusted keys must have signed an envelope for it to count (default
    /// 1): DSSE's `t` of a `(t, n)`-envelope. An envelope may carry any number of signatures;
    /// those by keys that are not trusted are skipped, and several by one key count once.
    /// [`build`](Self::build) refuses 0 and more than the trusted keys.
    pub fn signature_threshold(mut self, keys: usize) -> Self {
        self.threshold = keys;
        self
    }

    /// Validates the settings and parses the keys.
    pub fn build(self) -> Result<SignatureGate, SignatureConfigError> {
        let name = GateName::new(self.name)?;
        if self.keys.is_empty() {
            return Err(SignatureConfigError::NoTrustedKeys);
        }
        let mut keys: Vec<TrustedKey> = Vec::with_capacity(self.keys.len());
        for (id, spec) in &self.keys {
            let field = spec.field();
            if id.trim().is_empty() {
                return Err(SignatureConfigError::BlankKeyId { field });
            }
            if keys.iter().any(|k| &k.id == id) {
                return Err(SignatureConfigError::DuplicateKeyId {
                    field,
                    key_id: id.clone(),
                });
            }
            let key = spec
                .parse()
                .map_err(|message| SignatureConfigError::InvalidKey {
                    field,
                    key_id: id.clone(),
                    message,
                })?;
            if let Some(first) = keys.iter().find(|k| k.key.same_key(&key)) {
                return Err(SignatureConfigError::DuplicateKey {
                    field,
                    key_id: id.clone(),
                    same_as: first.id.clone(),
                });
            }
            keys.push(TrustedKey {
                id: id.clone(),
                key,
            });
        }
        let threshold = Threshold::new(self.threshold)
            .filter(|t| t.get() <= keys.len())
            .ok_or(SignatureConfigError::InvalidThreshold {
                threshold: self.threshold,
                keys: keys.len(),
            })?;
        if self.builders.iter().any(|b| b.trim().is_empty()) {
            return Err(SignatureConfigError::BlankBuilderId);
        }
        if self.require_provenance && self.builders.is_empty() {
            return Err(SignatureConfigError::EmptyBuilderAllowlist);
        }
        if !self.require_provenance && !self.builders.is_empty() {
            return Err(SignatureConfigError::BuildersWithoutProvenance);
        }
        let builders: BTreeSet<String> = self.builders.into_iter().collect();
        Ok(SignatureGate {
            name,
            source: self.source,
            keys,
            require_provenance: self.require_provenance,
            builders,
            check_source_commit: self.check_source_commit,
            threshold,
        })
    }
}
