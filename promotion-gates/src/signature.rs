//! Signature and provenance gate: every artifact of a release must carry a signed in-toto
//! attestation for its exact digest, and, optionally, SLSA provenance from a trusted builder
//! for the release's commit.
//!
//! # Overview
//!
//! [`SignatureGate`] looks up, for each artifact of the release, its attestations as **DSSE
//! envelopes** ([Dead Simple Signing Envelope]):
//!
//! ```json
//! {"payloadType": "application/vnd.in-toto+json",
//!  "payload": "<base64 of the statement>",
//!  "signatures": [{"keyid": "ci-2026", "sig": "<base64 of the signature>"}]}
//! ```
//!
//! An artifact is **verified** when one of its envelopes passes every check:
//!
//! 1. a signature verifies, over the envelope's pre-authentication encoding ([`pae`]), with one
//!    of the trusted keys;
//! 2. the payload type is `application/vnd.in-toto+json` and the payload is an **in-toto
//!    Statement v1** (`_type` = `https://in-toto.io/Statement/v1`);
//! 3. one of the statement's subjects has the artifact's SHA-256 digest (`digest.sha256`, hex,
//!    compared case-insensitively). Subject *names* are not compared: tools name subjects by
//!    file path, image reference or anything else, and the digest is what binds;
//! 4. with [`SignatureGateBuilder::require_slsa_provenance`]: the predicate is **SLSA
//!    Provenance v1** (`predicateType` = `https://slsa.dev/provenance/v1`), its
//!    `runDetails.builder.id` is exactly one of the trusted builders, and (unless
//!    [`SignatureGateBuilder::check_source_commit`] turns it off) the release's source commit
//!    is among the git commits the provenance names.
//!
//! The gate passes when every artifact is verified. Otherwise it fails, and its summary names
//! **every** artifact that is not verified with **every** problem found, at once:
//!
//! ```text
//! 2 of 3 artifacts not verified: `api-image`: signed by no trusted key (1 signature checked
//! against ci-ed25519, ci-p256); `chart`: no envelope (looked for /att/chart.intoto.jsonl,
//! /att/chart.dsse.json)
//! ```
//!
//! # Signatures and keys
//!
//! - **Ed25519** keys: PEM (`-----BEGIN PUBLIC KEY-----`, SPKI) or the raw 32 bytes.
//!   Signatures are the 64-byte Ed25519 signatures of the PAE, checked with `verify_strict`
//!   (weak keys and malleable signatures are refused).
//! - **ECDSA P-256** keys (cosign's default): PEM (SPKI) or SEC1 bytes (compressed or not).
//!   Signatures are over the SHA-256 of the PAE, DER-encoded (what cosign writes) or the fixed
//!   64-byte `r || s` form.
//!
//! Keys are given a local id when configured, and the evidence names the one that verified.
//! A signature's `keyid` is only a hint (DSSE does not authenticate it): keys whose id equals
//! the hint are tried first, and every trusted key is tried for every signature. One valid
//! signature by a trusted key is enough.
//!
//! The pre-authentication encoding is implemented exactly as DSSE v1 specifies:
//! `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, where `LEN` is the byte length in
//! ASCII decimal and `SP` one space. Payloads and signatures may be in standard or URL-safe
//! base64, padded or not, as the DSSE specification allows.
//!
//! # Where envelopes come from
//!
//! An [`EnvelopeSource`] finds them. [`EnvelopeDir`] reads one directory holding, for an
//! artifact named `api-image`:
//!
//! - `api-image.intoto.jsonl`: JSON Lines, one envelope per non-blank line (what the SLSA
//!   GitHub generator and `cosign download attestation` write), and/or
//! - `api-image.dsse.json`: one envelope as a JSON document.
//!
//! Both files are read when both exist. A host that keeps attestations elsewhere (an OCI
//! registry's referrers, an attestation store) implements [`EnvelopeSource`] itself; the gate
//! only needs the bytes and a name for where they came from. Sigstore bundles and
//! certificate-based (keyless) signatures are not supported: keys are configured explicitly.
//!
//! # Where the line is drawn
//!
//! - An artifact with no envelope, an envelope signed by no trusted key (or not signed at all,
//!   or whose payload was changed after signing), a statement for another digest, an untrusted
//!   builder or a foreign commit make the gate **fail** ([`Verdict::Fail`]), naming the artifact.
//! - Bytes that cannot be read as what they claim to be are **invalid input**
//!   ([`GateError::InvalidInput`], naming the file, the line for JSON Lines, and the artifact):
//!   an envelope that is not JSON or lacks `payloadType`, `payload` or `signatures`, base64 that
//!   does not decode, an in-toto payload that is not a statement, a SLSA v1 predicate without
//!   `runDetails.builder.id`, a file larger than [`MAX_ENVELOPE_BYTES`]. The engine records it
//!   as an error and retries per policy; it is never a pass.
//! - A directory that does not exist, or an artifact name that cannot be a file name (it
//!   contains `/` or `\`, or is `.` or `..`), is [`GateError::Misconfigured`].
//!
//! Files are read synchronously; each is at most [`MAX_ENVELOPE_BYTES`].
//!
//! # Evidence
//!
//! - summary: `` all 2 artifacts signed by trusted keys (ci-ed25519) with SLSA provenance from
//!   trusted builders `` or the problems as above;
//! - attachments: each envelope file read, by name, digest and size;
//! - data: `artifacts`, one entry per artifact with `name`, `digest`, `verified`,
//!   `envelope_sha256`, `key_id`, `builder_id` (of the envelope that verified it), `problems`,
//!   and `envelopes` (for each envelope looked at: `origin`, `sha256`, `signatures`,
//!   `keyid_hints`, `key_id`, `algorithm`, `payload_type`, `statement_type`, `predicate_type`,
//!   `build_type`, `builder_id`, `source_commits`, `problems`); `trusted_keys` (`id`, `algorithm`),
//!   `require_slsa_provenance`, `trusted_builders`, `check_source_commit`, `release_commit`,
//!   `verified`, `failed`.
//!
//! [Dead Simple Signing Envelope]: https://github.com/secure-systems-lab/dsse

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey as _;
use promotion_core::{
    Artifact, Digest, Evidence, Gate, GateContext, GateError, GateKind, GateName, InvalidName,
    Verdict,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::input::invalid_input;

/// The DSSE payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The `_type` of an in-toto Statement v1.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// The `predicateType` of SLSA Provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// The largest envelope file the gate reads, in bytes (16 MiB).
pub const MAX_ENVELOPE_BYTES: u64 = 16 * 1024 * 1024;
/// The file name suffixes [`EnvelopeDir`] looks for, in order.
pub const ENVELOPE_SUFFIXES: [&str; 2] = [".intoto.jsonl", ".dsse.json"];
/// How deep the gate looks into `externalParameters` for source descriptors.
const MAX_PARAMETER_DEPTH: usize = 16;
/// How many hex digits of a commit a summary shows.
const SHORT_COMMIT: usize = 12;

// ---------------------------------------------------------------------------------------------
// DSSE

/// The DSSE v1 pre-authentication encoding of a payload: the bytes that are signed.
///
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in bytes, in ASCII decimal.
///
/// ```
/// use promotion_gates::signature::pae;
/// assert_eq!(
///     pae("http://example.com/HelloWorld", b"hello world"),
///     b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
/// );
/// ```
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let head = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    );
    let mut out = Vec::with_capacity(head.len() + payload.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(payload);
    out
}

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_ANY_PADDING: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE_ANY_PADDING: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Decodes standard or URL-safe base64, padded or not.
fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD_ANY_PADDING
        .decode(text)
        .or_else(|e| URL_SAFE_ANY_PADDING.decode(text).map_err(|_| e))
}

/// A DSSE envelope as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeDoc {
    payload_type: String,
    payload: String,
    signatures: Vec<SignatureDoc>,
}

#[derive(Debug, Deserialize)]
struct SignatureDoc {
    #[serde(default)]
    keyid: Option<String>,
    sig: String,
}

/// An in-toto statement as written; the predicate is read only when it is SLSA provenance.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatementDoc {
    #[serde(rename = "_type")]
    statement_type: String,
    subject: Vec<SubjectDoc>,
    predicate_type: String,
    #[serde(default)]
    predicate: Value,
}

#[derive(Debug, Deserialize)]
struct SubjectDoc {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    digest: BTreeMap<String, String>,
}

/// The parts of a SLSA Provenance v1 predicate the gate reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProvenanceDoc {
    build_definition: BuildDefinitionDoc,
    run_details: RunDetailsDoc,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BuildDefinitionDoc {
    build_type: String,
    external_parameters: Value,
    #[serde(default)]
    resolved_dependencies: Vec<ResourceDescriptorDoc>,
}

#[derive(Debug, Deserialize)]
struct ResourceDescriptorDoc {
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    digest: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct RunDetailsDoc {
    builder: BuilderDoc,
}

#[derive(Debug, Deserialize)]
struct BuilderDoc {
    id: String,
}

/// The git commits a resource descriptor names: its `gitCommit` digest, or its `sha1` digest
/// when its URI is a git URI (`git+https://…`).
fn descriptor_commits(uri: Option<&str>, digest: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = digest.get("gitCommit") {
        out.push(c.to_ascii_lowercase());
    }
    if uri.is_some_and(|u| u.starts_with("git+")) {
        if let Some(c) = digest.get("sha1") {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The git commits named by resource descriptors anywhere in `value` (objects with a `digest`
/// object), up to [`MAX_PARAMETER_DEPTH`] levels deep.
fn parameter_commits(value: &Value, depth: usize, out: &mut Vec<String>) {
    if depth > MAX_PARAMETER_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(digest)) = map.get("digest") {
                let digest: BTreeMap<String, String> = digest
                    .iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                    .collect();
                let uri = map.get("uri").and_then(Value::as_str);
                out.extend(descriptor_commits(uri, &digest));
            }
            for v in map.values() {
                parameter_commits(v, depth + 1, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                parameter_commits(v, depth + 1, out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

/// The signature algorithm of a trusted key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// Ed25519 over the PAE.
    Ed25519,
    /// ECDSA on P-256 over the SHA-256 of the PAE.
    EcdsaP256Sha256,
}

impl KeyAlgorithm {
    /// The name used in evidence: `ed25519` or `ecdsa-p256-sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PublicKey::Ed25519(_) => KeyAlgorithm::Ed25519,
            PublicKey::P256(_) => KeyAlgorithm::EcdsaP256Sha256,
        }
    }

    /// Whether `sig` is a valid signature of `message` by this key.
    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(key) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| key.verify_strict(message, &s).is_ok()),
            PublicKey::P256(key) => {
                // DER (cosign) or fixed-size r || s; a byte string could in principle parse as
                // both, so each form that parses is tried.
                let der = p256::ecdsa::Signature::from_der(sig).ok();
                let fixed = p256::ecdsa::Signature::from_slice(sig).ok();
                [der, fixed]
                    .into_iter()
                    .flatten()
                    .any(|s| key.verify(message, &s).is_ok())
            }
        }
    }

    /// A key from a PEM `PUBLIC KEY` (SPKI) block, Ed25519 or ECDSA P-256.
    fn from_pem(pem: &str) -> Result<Self, String> {
        const ED25519_OID: &str = "1.3.101.112";
        const EC_PUBLIC_KEY_OID: &str = "1.2.840.10045.2.1";
        let (label, document) = p256::pkcs8::Document::from_pem(pem.trim())
            .map_err(|e| format!("not a PEM document: {e}"))?;
        if label != "PUBLIC KEY" {
            let hint = if label.contains("PRIVATE") {
                "; give the public key, never the private one"
            } else {
                ""
            };
            return Err(format!(
                "the PEM block is `{label}`, expected `PUBLIC KEY` (SubjectPublicKeyInfo){hint}"
            ));
        }
        let info = p256::pkcs8::SubjectPublicKeyInfoRef::try_from(document.as_bytes())
            .map_err(|e| format!("not a SubjectPublicKeyInfo: {e}"))?;
        let oid = info.algorithm.oid.to_string();
        let der = document.as_bytes();
        match oid.as_str() {
            ED25519_OID => ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map(PublicKey::Ed25519)
                .map_err(|e| format!("not a valid Ed25519 public key: {e}")),
            EC_PUBLIC_KEY_OID => p256::ecdsa::VerifyingKey::from_public_key_der(der)
                .map(PublicKey::P256)
                .map_err(|e| {
                    format!(
                        "not an ECDSA P-256 public key (only the P-256 curve is supported): {e}"
                    )
                }),
            other => Err(format!(
                "the key's algorithm {other} is neither Ed25519 (1.3.101.112) nor ECDSA \
                 (1.2.840.10045.2.1)"
            )),
        }
    }
}

/// A key as configured, parsed in [`SignatureGateBuilder::build`].
#[derive(Clone)]
enum KeySpec {
    Pem(String),
    Ed25519(Vec<u8>),
    P256(Vec<u8>),
}

impl KeySpec {
    fn field(&self) -> &'static str {
        match self {
            KeySpec::Pem(_) => "trusted_key_pem",
            KeySpec::Ed25519(_) => "trusted_ed25519_key",
            KeySpec::P256(_) => "trusted_p256_key",
        }
    }

    fn parse(&self) -> Result<PublicKey, String> {
        match self {
            KeySpec::Pem(pem) => PublicKey::from_pem(pem),
            KeySpec::Ed25519(raw) => {
                let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
                    format!("an Ed25519 public key is 32 bytes, found {}", raw.len())
                })?;
                ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map(PublicKey::Ed25519)
                    .map_err(|e| format!("not a valid Ed25519 public key: {e}"))
            }
            KeySpec::P256(raw) => p256::ecdsa::VerifyingKey::from_sec1_bytes(raw)
                .map(PublicKey::P256)
                .map_err(|_| {
                    format!(
                        "not a P-256 public key in SEC1 form (33 or 65 bytes starting with \
                         02, 03 or 04; found {} bytes)",
                        raw.len()
                    )
                }),
        }
    }
}

#[derive(Clone)]
struct TrustedKey {
    id: String,
    key: PublicKey,
}

// ---------------------------------------------------------------------------------------------
// Envelope sources

/// How an envelope file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeFormat {
    /// One envelope, as a JSON document (`.dsse.json`).
    Json,
    /// One envelope per non-blank line (`.intoto.jsonl`).
    JsonLines,
}

/// Envelope bytes found for an artifact, with where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeFile {
    /// Where the bytes came from (a path, a registry reference): named in errors and evidence.
    pub origin: String,
    /// How the bytes are laid out.
    pub format: EnvelopeFormat,
    /// The bytes as read.
    pub bytes: Vec<u8>,
}

/// Finds the DSSE envelopes of an artifact. Implement it to read attestations from where the
/// host keeps them; [`EnvelopeDir`] reads a directory.
#[async_trait]
pub trait EnvelopeSource: Send + Sync + fmt::Debug {
    /// The envelope files for `artifact`; empty when there are none. Failing to look (a store
    /// that does not answer) is a [`GateError`].
    async fn envelopes(&self, artifact: &Artifact) -> Result<Vec<EnvelopeFile>, GateError>;

    /// Where envelopes for `artifact` are looked for, for the message saying there are none
    /// (`/att/api.intoto.jsonl, /att/api.dsse.json`).
    fn location(&self, artifact: &Artifact) -> String;
}

/// Envelopes in one directory: `<artifact name>.intoto.jsonl` and/or
/// `<artifact name>.dsse.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeDir {
    dir: PathBuf,
}

impl EnvelopeDir {
    /// Envelopes in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EnvelopeDir { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files looked for, for an artifact named `name`.
    pub fn paths(&self, name: &str) -> [PathBuf; 2] {
        ENVELOPE_SUFFIXES.map(|suffix| self.dir.join(format!("{name}{suffix}")))
    }

    fn read(path: &Path) -> Result<Option<Vec<u8>>, GateError> {
        let shown = path.display().to_string();
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(read_error(&shown, e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_ENVELOPE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| read_error(&shown, e))?;
        if bytes.len() as u64 > MAX_ENVELOPE_BYTES {
            return Err(invalid_input(
                shown,
                None,
                format!("the envelope file is larger than {MAX_ENVELOPE_BYTES} bytes"),
            ));
        }
        Ok(Some(bytes))
    }
}

fn read_error(shown: &str, e: std::io::Error) -> GateError {
    GateError::Other {
        message: format!("cannot read envelope file {shown}"),
        source: Some(Box::new(e)),
    }
}

#[async_trait]
impl EnvelopeSource for EnvelopeDir {
    async fn envelopes(&self, artifact: &Artifact) -> Result<Vec<EnvelopeFile>, GateError> {
        let name = artifact.name.as_str();
        if name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
            return Err(GateError::Misconfigured(format!(
                "artifact name `{name}` cannot name an envelope file in {}; use an \
                 EnvelopeSource that maps artifact names to envelopes",
                self.dir.display()
            )));
        }
        if !self.dir.is_dir() {
            return Err(GateError::Misconfigured(format!(
                "the envelope directory {} does not exist or is not a directory",
                self.dir.display()
            )));
        }
        let mut out = Vec::new();
        let formats = [EnvelopeFormat::JsonLines, EnvelopeFormat::Json];
        for (path, format) in self.paths(name).iter().zip(formats) {
            if let Some(bytes) = Self::read(path)? {
                out.push(EnvelopeFile {
                    origin: path.display().to_string(),
                    format,
                    bytes,
                });
            }
        }
        Ok(out)
    }

    fn location(&self, artifact: &Artifact) -> String {
        self.paths(&artifact.name)
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// A signature gate configured wrongly; returned by [`SignatureGateBuilder::build`]. Each
/// variant names the setting that is wrong.
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
        /// The id.
        key_id: String,
    },
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
    name: String,
    source: Arc<dyn EnvelopeSource>,
    keys: Vec<(String, KeySpec)>,
    require_provenance: bool,
    builders: Vec<String>,
    check_source_commit: bool,
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
            keys.push(TrustedKey {
                id: id.clone(),
                key,
            });
        }
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
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The gate

/// Verifies signed in-toto attestations (and optionally SLSA provenance) for every artifact of
/// a release; see the [module docs](self).
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
    name: GateName,
    source: Arc<dyn EnvelopeSource>,
    keys: Vec<TrustedKey>,
    require_provenance: bool,
    builders: BTreeSet<String>,
    check_source_commit: bool,
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
    key: Option<(String, KeyAlgorithm)>,
    payload_type: String,
    statement_type: Option<String>,
    predicate_type: Option<String>,
    build_type: Option<String>,
    builder_id: Option<String>,
    source_commits: Vec<String>,
    problems: Vec<String>,
}

impl EnvelopeCheck {
    fn to_json(&self) -> Value {
        json!({
            "origin": self.origin,
            "sha256": self.digest.to_string(),
            "signatures": self.signatures,
            "keyid_hints": self.keyid_hints,
            "key_id": self.key.as_ref().map(|(id, _)| id.as_str()),
            "algorithm": self.key.as_ref().map(|(_, a)| a.as_str()),
            "payload_type": self.payload_type,
            "statement_type": self.statement_type,
            "predicate_type": self.predicate_type,
            "build_type": self.build_type,
            "builder_id": self.builder_id,
            "source_commits": self.source_commits,
            "problems": self.problems,
        })
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

    fn to_json(&self) -> Value {
        let accepted = self.accepted();
        json!({
            "name": self.artifact.name,
            "digest": self.artifact.digest.to_string(),
            "verified": accepted.is_some(),
            "envelope_sha256": accepted.map(|c| c.digest.to_string()),
            "key_id": accepted.and_then(|c| c.key.as_ref()).map(|(id, _)| id.as_str()),
            "builder_id": accepted.and_then(|c| c.builder_id.as_deref()),
            "problems": self.problems(),
            "envelopes": self.checks.iter().map(EnvelopeCheck::to_json).collect::<Vec<_>>(),
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
        }
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
                    out.push((format!("{} line {}", file.origin, n + 1), line));
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
        let envelope: EnvelopeDoc = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("not a DSSE envelope: {e}")))?;
        let payload = decode_base64(&envelope.payload)
            .map_err(|e| invalid(format!("the payload is not base64: {e}")))?;
        let mut signatures = Vec::with_capacity(envelope.signatures.len());
        for (i, s) in envelope.signatures.iter().enumerate() {
            let sig = decode_base64(&s.sig)
                .map_err(|e| invalid(format!("signature {} is not base64: {e}", i + 1)))?;
            signatures.push((s.keyid.clone().unwrap_or_default(), sig));
        }

        let mut check = EnvelopeCheck {
            origin: origin.clone(),
            digest: Digest::of(bytes),
            signatures: signatures.len(),
            keyid_hints: signatures
                .iter()
                .map(|(hint, _)| hint.clone())
                .filter(|h| !h.is_empty())
                .collect(),
            key: None,
            payload_type: envelope.payload_type.clone(),
            statement_type: None,
            predicate_type: None,
            build_type: None,
            builder_id: None,
            source_commits: Vec::new(),
            problems: Vec::new(),
        };

        // 1. A signature by a trusted key over the PAE.
        let message = pae(&envelope.payload_type, &payload);
        check.key = self.verify(&message, &signatures);
        if signatures.is_empty() {
            check
                .problems
                .push("unsigned: the envelope has no signatures".to_owned());
        } else if check.key.is_none() {
            let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
            let count = signatures.len();
            check.problems.push(format!(
                "signed by no trusted key ({count} signature{} checked against {})",
                if count == 1 { "" } else { "s" },
                ids.join(", ")
            ));
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

    /// The id and algorithm of the first trusted key that verifies one of `signatures` over
    /// `message`. Keys whose id equals a signature's `keyid` hint are tried first.
    fn verify(
        &self,
        message: &[u8],
        signatures: &[(String, Vec<u8>)],
    ) -> Option<(String, KeyAlgorithm)> {
        for (hint, sig) in signatures {
            let hinted = self.keys.iter().filter(|k| &k.id == hint);
            let others = self.keys.iter().filter(|k| &k.id != hint);
            for key in hinted.chain(others) {
                if key.key.verify(message, sig) {
                    return Some((key.id.clone(), key.key.algorithm()));
                }
            }
        }
        None
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
                .filter_map(|c| c.key.as_ref().map(|(id, _)| id.as_str()))
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

        let data = json!({
            "artifacts": reports.iter().map(ArtifactReport::to_json).collect::<Vec<_>>(),
            "trusted_keys": self.keys.iter().map(|k| json!({
                "id": k.id,
                "algorithm": k.key.algorithm().as_str(),
            })).collect::<Vec<_>>(),
            "require_slsa_provenance": self.require_provenance,
            "trusted_builders": self.trusted_builders(),
            "check_source_commit": self.check_source_commit,
            "release_commit": commit,
            "verified": total - failed.len(),
            "failed": failed.len(),
        });
        let passed = failed.is_empty();
        let mut evidence = Evidence::new(self.name(), ctx.now(), summary).with_data(data);
        for (origin, bytes) in &files_read {
            evidence = evidence.with_attachment(origin.clone(), bytes);
        }
        Ok(Verdict::pass_if(passed, evidence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use ed25519_dalek::Signer as _;
    use p256::pkcs8::EncodePublicKey as _;
    use rand_core::OsRng;

    #[test]
    fn pae_matches_the_dsse_spec_test_vector_byte_for_byte() {
        let got = pae("http://example.com/HelloWorld", b"hello world");
        let want: &[u8] = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world";
        assert_eq!(got, want);
        assert_eq!(got.len(), 54);
    }

    #[test]
    fn pae_counts_bytes_not_characters_and_keeps_the_payload_verbatim() {
        // "é" is two bytes in UTF-8; a payload with spaces and newlines stays as it is.
        assert_eq!(pae("é", b"a b\n"), b"DSSEv1 2 \xc3\xa9 4 a b\n".to_vec());
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn base64_accepts_standard_and_url_safe_with_or_without_padding() {
        let bytes = [0xfb_u8, 0xff, 0x00, 0x10];
        for text in [STANDARD.encode(bytes), URL_SAFE_NO_PAD.encode(bytes)] {
            assert_eq!(decode_base64(&text).unwrap(), bytes, "{text}");
        }
        assert_eq!(decode_base64("+/8AEA").unwrap(), bytes);
        assert!(decode_base64("not base64!").is_err());
    }

    #[test]
    fn ed25519_keys_load_from_pem_and_raw_and_verify() {
        let sk = ed25519_dalek::SigningKey::generate(&mut OsRng);
        let pem = sk
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        let from_pem = PublicKey::from_pem(&pem).unwrap();
        let from_raw = KeySpec::Ed25519(sk.verifying_key().to_bytes().to_vec())
            .parse()
            .unwrap();
        let sig = sk.sign(b"message").to_bytes();
        for key in [&from_pem, &from_raw] {
            assert_eq!(key.algorithm(), KeyAlgorithm::Ed25519);
            assert!(key.verify(b"message", &sig));
            assert!(!key.verify(b"messagE", &sig));
            assert!(!key.verify(b"message", &sig[..63]));
        }
    }

    #[test]
    fn p256_keys_accept_der_and_fixed_signatures_over_sha256_of_the_message() {
        use p256::ecdsa::signature::hazmat::PrehashSigner as _;
        use sha2::Digest as _;
        let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
        let vk = *sk.verifying_key();
        let pem = vk.to_public_key_pem(p256::pkcs8::LineEnding::LF).unwrap();
        let keys = [
            PublicKey::from_pem(&pem).unwrap(),
            KeySpec::P256(vk.to_encoded_point(false).as_bytes().to_vec())
                .parse()
                .unwrap(),
            KeySpec::P256(vk.to_encoded_point(true).as_bytes().to_vec())
                .parse()
                .unwrap(),
        ];
        // Sign the SHA-256 of the message explicitly, as cosign does.
        let digest = sha2::Sha256::digest(b"message");
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
        let der = sig.to_der();
        for key in &keys {
            assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256Sha256);
            assert!(key.verify(b"message", der.as_bytes()));
            assert!(key.verify(b"message", &sig.to_bytes()));
            assert!(!key.verify(b"other", der.as_bytes()));
            assert!(!key.verify(b"message", b"\x30\x06\x02\x01\x01\x02\x01\x01"));
        }
    }

    #[test]
    fn bad_keys_say_what_is_wrong() {
        assert!(KeySpec::Ed25519(vec![1; 31])
            .parse()
            .unwrap_err()
            .contains("32 bytes, found 31"));
        assert!(KeySpec::P256(vec![4; 10])
            .parse()
            .unwrap_err()
            .contains("found 10 bytes"));
        assert!(PublicKey::from_pem("hello")
            .unwrap_err()
            .starts_with("not a PEM document"));
        let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
        let private =
            p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&sk, p256::pkcs8::LineEnding::LF).unwrap();
        let err = PublicKey::from_pem(&private).unwrap_err();
        assert!(
            err.contains("`PRIVATE KEY`") && err.contains("never the private one"),
            "{err}"
        );
    }

    #[test]
    fn commits_come_from_git_descriptors_only() {
        let mut digest = BTreeMap::new();
        digest.insert("sha1".to_owned(), "ABC".to_owned());
        assert_eq!(
            descriptor_commits(Some("git+https://x/y@refs/heads/main"), &digest),
            ["abc"]
        );
        // A sha1 of a tarball is not a commit.
        assert!(descriptor_commits(Some("https://x/y.tgz"), &digest).is_empty());
        digest.insert("gitCommit".to_owned(), "def".to_owned());
        assert_eq!(descriptor_commits(None, &digest), ["def"]);

        let params = json!({
            "workflow": {"ref": "refs/heads/main", "repository": "https://x/y"},
            "source": {"uri": "git+https://x/y", "digest": {"sha1": "111"}},
            "inputs": [{"digest": {"gitCommit": "222"}}, {"digest": {"sha256": "333"}}],
        });
        let mut out = Vec::new();
        parameter_commits(&params, 0, &mut out);
        out.sort();
        assert_eq!(out, ["111", "222"]);
    }
}
