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
//! 1. its signatures verify, over the envelope's pre-authentication encoding ([`pae`]), with
//!    at least [`SignatureGateBuilder::signature_threshold`] distinct trusted keys (one by
//!    default);
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
//! the hint are tried first, and every trusted key not yet counted is tried for every signature.
//! An envelope may carry several signatures (DSSE's multi-signature envelope): signatures that
//! no trusted key made are skipped, several by one key count once, and the envelope is signed
//! once the threshold of distinct trusted keys is met. A key configured twice under two ids is
//! refused when the gate is built, so one signer can never count as two.
//!
//! Envelopes are read with [`promotion_intoto`], the implementation the evidence packs share,
//! under [`Acceptance::Dsse`](promotion_intoto::Acceptance::Dsse): the pre-authentication
//! encoding is exactly what DSSE v1 specifies, `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP
//! body`, where `LEN` is the byte length in ASCII decimal and `SP` one space. Payloads and
//! signatures may be in standard or URL-safe base64, padded or not, as the DSSE specification
//! allows; `keyid` may be absent, and unknown fields are ignored.
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
//!   builder or a foreign commit make the gate **fail** ([`Verdict::Fail`](promotion_core::Verdict::Fail)), naming the artifact.
//! - Bytes that cannot be read as what they claim to be are **invalid input**
//!   ([`GateError::InvalidInput`](promotion_core::GateError::InvalidInput), naming the file, the line for JSON Lines, and the artifact):
//!   an envelope that is not JSON or lacks `payloadType`, `payload` or `signatures`, base64 that
//!   does not decode, an in-toto payload that is not a statement, a SLSA v1 predicate without
//!   `runDetails.builder.id`, a file larger than [`MAX_ENVELOPE_BYTES`]. The engine records it
//!   as an error and retries per policy; it is never a pass.
//! - A directory that does not exist, or an artifact name that cannot be a file name (it
//!   contains `/` or `\`, or is `.` or `..`), is [`GateError::Misconfigured`](promotion_core::GateError::Misconfigured).
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
//!   `build_type`, `builder_id`, `source_commits`, `problems`); `trusted_keys` (`id`, `algorithm`,
//!   `public_key`: the key as SPKI PEM, so an evidence pack carries what checks the envelopes),
//!   `require_slsa_provenance`, `trusted_builders`, `check_source_commit`, `release_commit`,
//!   `verified`, `failed`. With a threshold above one, also `signature_threshold`, and in each
//!   envelope `key_ids`, every trusted key that verified (`key_id` and `algorithm` are the
//!   first's); at the default threshold the data is written as before thresholds existed.
//!
//! [Dead Simple Signing Envelope]: https://github.com/secure-systems-lab/dsse

mod builder;
mod dsse;
mod gate;
mod keys;
mod source;

pub use builder::{SignatureConfigError, SignatureGateBuilder};
use dsse::{descriptor_commits, parameter_commits, ProvenanceDoc, StatementDoc};
pub use gate::SignatureGate;
pub use keys::KeyAlgorithm;
#[cfg(test)]
use keys::PublicKey;
use keys::{KeySpec, TrustedKey};
pub use source::{EnvelopeDir, EnvelopeFile, EnvelopeFormat, EnvelopeSource};

// Shared with the evidence packs, which write and verify envelopes of their own: one
// implementation, re-exported here so that existing `signature::` paths keep working.
pub use promotion_intoto::{pae, IN_TOTO_PAYLOAD_TYPE, STATEMENT_V1};
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

#[cfg(test)]
mod tests;
