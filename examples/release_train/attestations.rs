//! The release train's build attestations: what a CI system would publish next to the
//! artifacts it built, signed with a key the pipeline trusts.
//!
//! For each artifact of the release, a DSSE envelope (`<artifact>.intoto.jsonl`) holding an
//! in-toto Statement v1 whose subject is the artifact's name and SHA-256 digest, with a SLSA
//! Provenance v1 predicate naming the builder and the source repository and commit. The
//! envelope is signed with an Ed25519 key generated for the run, over DSSE's
//! pre-authentication encoding ([`pae`]); the public key is written next to the envelopes as
//! `release-train.pub` (PEM), so they can be checked again offline.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::{Signer as _, SigningKey};
use promotion::gates::signature::{pae, IN_TOTO_PAYLOAD_TYPE, SLSA_PROVENANCE_V1, STATEMENT_V1};
use promotion::{Digest, Release};
use serde_json::json;

/// The build type the provenance declares.
const BUILD_TYPE: &str = "https://ci.example.com/build-types/release@v1";

/// The signed attestations of one release.
pub(crate) struct Attestations {
    /// Where the envelopes are.
    pub(crate) dir: PathBuf,
    /// The signing key's id, as the envelopes hint it.
    pub(crate) key_id: String,
    /// The public key, PEM (SPKI).
    pub(crate) public_key_pem: String,
    /// The envelope files written, one per artifact.
    pub(crate) files: Vec<PathBuf>,
}

/// A git URI for SLSA resource descriptors: `git@host:path` becomes `git+ssh://git@host/path`.
fn git_uri(repository: &str) -> String {
    if repository.contains("://") {
        return format!("git+{repository}");
    }
    match repository.split_once(':') {
        Some((host, path)) => format!("git+ssh://{host}/{path}"),
        None => format!("git+{repository}"),
    }
}

/// Generates a signing key and writes a signed provenance attestation for every artifact of
/// `release` into `dir`, which is emptied first (it belongs to the example).
pub(crate) fn write(
    dir: &Path,
    release: &Release,
) -> Result<Attestations, Box<dyn std::error::Error>> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| {
            format!(
                "cannot empty the attestation directory {}: {e}",
                dir.display()
            )
        })?;
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "cannot create the attestation directory {}: {e}",
            dir.display()
        )
    })?;

    let key = SigningKey::generate(&mut rand_core::OsRng);
    let public = key.verifying_key();
    let key_id = format!(
        "release-train-{}",
        Digest::of(public.as_bytes())
            .to_hex()
            .chars()
            .take(12)
            .collect::<String>()
    );
    let public_key_pem = public
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| format!("cannot encode the signing key's public half as PEM: {e}"))?;
    let key_path = dir.join("release-train.pub");
    std::fs::write(&key_path, &public_key_pem)
        .map_err(|e| format!("cannot write {}: {e}", key_path.display()))?;

    let source = release.source();
    let uri = git_uri(&source.repository);
    let finished_on = release
        .built_at()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut files = Vec::new();
    for artifact in release.artifacts() {
        let statement = json!({
            "_type": STATEMENT_V1,
            "subject": [{
                "name": artifact.name,
                "digest": { "sha256": artifact.digest.to_hex() },
            }],
            "predicateType": SLSA_PROVENANCE_V1,
            "predicate": {
                "buildDefinition": {
                    "buildType": BUILD_TYPE,
                    "externalParameters": {
                        "source": { "uri": uri, "digest": { "gitCommit": source.commit } },
                        "release": release.name(),
                    },
                    "internalParameters": { "artifact": artifact.name },
                    "resolvedDependencies": [
                        { "uri": uri, "digest": { "gitCommit": source.commit } },
                    ],
                },
                "runDetails": {
                    "builder": { "id": release.builder_id() },
                    "metadata": {
                        "finishedOn": finished_on,
                    },
                },
            },
        });
        let payload = serde_json::to_vec(&statement)?;
        let signature = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload));
        let envelope = json!({
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "payload": STANDARD.encode(&payload),
            "signatures": [{ "keyid": key_id, "sig": STANDARD.encode(signature.to_bytes()) }],
        });
        let path = dir.join(format!("{}.intoto.jsonl", artifact.name));
        let mut line = serde_json::to_vec(&envelope)?;
        line.push(b'\n');
        std::fs::write(&path, line).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        files.push(path);
    }
    Ok(Attestations {
        dir: dir.to_path_buf(),
        key_id,
        public_key_pem,
        files,
    })
}
