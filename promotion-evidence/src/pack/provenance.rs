//! The keys that signed build-provenance envelopes, carried in the pack, and the offline
//! re-check of those envelopes.
//!
//! `promotion-gates`' signature gate records in its evidence the keys it trusted (`trusted_keys`:
//! `id`, `algorithm` and, since it records it, `public_key` as SPKI PEM) and, per artifact, the
//! envelope that verified (`envelope_sha256`) and the key (`key_id`). The pack holds each such
//! key once, taken from the log entries, as `keys/provenance/<slug>-<sha256 prefix>.pem`, and
//! the manifest's `provenance_keys` lists it with the entries that trusted it. A key recorded
//! by an older gate without its material is listed with no file: it is pinned in that gate's
//! configuration (the service's template at the pipeline version the entry names).
//!
//! Verification re-derives the list from the entries and re-checks every verified envelope the
//! pack holds (in `attachments/`, a `.dsse.json` file or one line of a `.intoto.jsonl`) against
//! the recorded key, so an auditor holding only the pack checks the provenance signatures too.

use std::collections::BTreeMap;

use promotion_core::{Digest, EventBody};
use promotion_intoto::{Acceptance, Envelope, Threshold, TrustedKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{slug, Entry, KEYS_DIR};

/// A key that a signature gate recorded as trusted, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestProvenanceKey {
    /// The gate's id for it (what `key_id` in the evidence names).
    pub id: String,
    /// `ed25519` or `ecdsa-p256-sha256`.
    pub algorithm: String,
    /// Its PEM file in the pack; `None` when the log records the key's id but not its
    /// material (then it is pinned in the gate's configuration).
    pub path: Option<String>,
    /// The log entries (gate evaluations) that trusted it.
    pub entries: Vec<u64>,
}

/// A key to carry, with its PEM.
pub(crate) struct PlannedKey {
    pub(crate) manifest: ManifestProvenanceKey,
    pub(crate) pem: Option<String>,
}

/// The trusted keys the entries' gate evidence records, in order of first mention.
pub(crate) fn plan_provenance_keys(entries: &[Entry]) -> Vec<PlannedKey> {
    let mut out: Vec<PlannedKey> = Vec::new();
    for e in entries {
        let Some(data) = gate_data(&e.event().body) else {
            continue;
        };
        for key in data
            .get("trusted_keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = key.get("id").and_then(Value::as_str).unwrap_or_default();
            let algorithm = key
                .get("algorithm")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let pem = key
                .get("public_key")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let same = |p: &&mut PlannedKey| {
                p.manifest.id == id && p.manifest.algorithm == algorithm && p.pem == pem
            };
            if let Some(known) = out.iter_mut().find(|p| same(p)) {
                if known.manifest.entries.last() != Some(&e.seq) {
                    known.manifest.entries.push(e.seq);
                }
                continue;
            }
            let path = pem.as_ref().map(|pem| {
                let hex = Digest::of(pem.as_bytes()).to_hex();
                let short = hex.get(..16).unwrap_or(&hex);
                format!("{KEYS_DIR}/provenance/{}-{short}.pem", slug(id))
            });
            out.push(PlannedKey {
                manifest: ManifestProvenanceKey {
                    id: id.to_owned(),
                    algorithm: algorithm.to_owned(),
                    path,
                    entries: vec![e.seq],
                },
                pem,
            });
        }
    }
    out
}

/// The evidence data of a gate evaluation, when it has `trusted_keys` (a signature gate's).
fn gate_data(body: &EventBody) -> Option<&Value> {
    let EventBody::GateEvaluated {
        evidence: Some(evidence),
        ..
    } = body
    else {
        return None;
    };
    evidence
        .data
        .get("trusted_keys")
        .is_some()
        .then_some(&evidence.data)
}

/// A provenance key parsed from its recorded PEM.
enum Key {
    Ed25519(String, ed25519_dalek::VerifyingKey),
    P256(String, p256::ecdsa::VerifyingKey),
}

impl Key {
    fn parse(id: &str, algorithm: &str, pem: &str) -> Result<Key, String> {
        use p256::pkcs8::DecodePublicKey as _;
        match algorithm {
            "ed25519" => ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
                .map(|k| Key::Ed25519(id.to_owned(), k))
                .map_err(|e| e.to_string()),
            "ecdsa-p256-sha256" => p256::ecdsa::VerifyingKey::from_public_key_pem(pem)
                .map(|k| Key::P256(id.to_owned(), k))
                .map_err(|e| e.to_string()),
            other => Err(format!("unknown key algorithm `{other}`")),
        }
    }
}

impl TrustedKey for Key {
    fn id(&self) -> &str {
        match self {
            Key::Ed25519(id, _) | Key::P256(id, _) => id,
        }
    }
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        match self {
            Key::Ed25519(_, key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| key.verify_strict(message, &s).is_ok()),
            Key::P256(_, key) => [
                p256::ecdsa::Signature::from_der(signature).ok(),
                p256::ecdsa::Signature::from_slice(signature).ok(),
            ]
            .into_iter()
            .flatten()
            .any(|s| key.verify(message, &s).is_ok()),
        }
    }
}

/// What re-checking the provenance envelopes found.
#[derive(Debug, Default)]
pub(crate) struct EnvelopeChecks {
    /// Envelopes re-verified with their recorded key.
    pub(crate) verified: usize,
    /// Verified envelopes the pack does not hold (their attachment is missing).
    pub(crate) not_in_pack: usize,
    /// (log entry, artifact, problem) for each that does not verify.
    pub(crate) failures: Vec<(u64, String, String)>,
}

/// Re-checks every envelope the entries' signature gates say verified, when the pack holds
/// it: `attachment` gives an attachment's bytes by digest.
pub(crate) fn check_envelopes(
    entries: &[Entry],
    attachment: &dyn Fn(&Digest) -> Option<Vec<u8>>,
) -> EnvelopeChecks {
    let mut out = EnvelopeChecks::default();
    for e in entries {
        let EventBody::GateEvaluated {
            evidence: Some(evidence),
            ..
        } = &e.event().body
        else {
            continue;
        };
        if evidence.data.get("trusted_keys").is_none() {
            continue;
        }
        let data = &evidence.data;
        let keys: BTreeMap<&str, (&str, Option<&str>)> = data
            .get("trusted_keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|k| {
                Some((
                    k.get("id")?.as_str()?,
                    (
                        k.get("algorithm")?.as_str()?,
                        k.get("public_key").and_then(Value::as_str),
                    ),
                ))
            })
            .collect();
        // every envelope (a whole file, or one line of JSON Lines) the evaluation read
        let mut candidates: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
        for a in &evidence.attachments {
            if let Some(bytes) = attachment(&a.digest) {
                for line in bytes.split(|b| *b == b'\n') {
                    candidates.insert(Digest::of(line), line.to_vec());
                }
                candidates.insert(Digest::of(&bytes), bytes);
            }
        }
        for artifact in data
            .get("artifacts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if artifact.get("verified") != Some(&Value::Bool(true)) {
                continue;
            }
            let name = artifact
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let fail = |problem: String| (e.seq, name.clone(), problem);
            let envelope = artifact
                .get("envelope_sha256")
                .and_then(Value::as_str)
                .and_then(|d| d.parse::<Digest>().ok());
            let key_id = artifact.get("key_id").and_then(Value::as_str);
            let (Some(envelope), Some(key_id)) = (envelope, key_id) else {
                out.failures.push(fail(
                    "verified, but the evidence names no envelope digest or key".into(),
                ));
                continue;
            };
            let Some(bytes) = candidates.get(&envelope) else {
                out.not_in_pack += 1;
                continue;
            };
            let Some((algorithm, Some(pem))) = keys.get(key_id) else {
                out.not_in_pack += 1;
                continue;
            };
            let checked = Key::parse(key_id, algorithm, pem).and_then(|key| {
                let env =
                    Envelope::from_json(bytes, Acceptance::Dsse).map_err(|e| e.to_string())?;
                env.verify(std::slice::from_ref(&key), Threshold::ONE, Acceptance::Dsse)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
            match checked {
                Ok(()) => out.verified += 1,
                Err(problem) => out.failures.push(fail(format!(
                    "envelope {envelope} does not verify with the recorded key `{key_id}`: {problem}"
                ))),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsse::AttestationSigner;
    use promotion_audit::entry::DecodedEntry;
    use promotion_core::{Actor, Event, Evidence, Outcome, PhaseId, StreamId};
    use serde_json::json;

    /// A signature gate's evaluation recording `envelope` as verified by key `ci`, whose
    /// public key the evidence gives as `recorded_pem`.
    fn entry(envelope: &[u8], recorded_pem: &str) -> Entry {
        let at = "2026-12-08T09:00:00Z".parse().unwrap();
        let evidence = Evidence::new("provenance", at, "all 1 artifacts signed")
            .with_data(json!({
                "trusted_keys": [{"id": "ci", "algorithm": "ed25519", "public_key": recorded_pem}],
                "artifacts": [{"name": "api", "verified": true,
                               "envelope_sha256": Digest::of(envelope).to_string(), "key_id": "ci"}],
            }))
            .with_attachment("att/api.dsse.json", envelope);
        let event = Event {
            at,
            actor: Actor::Engine,
            request: None,
            body: EventBody::GateEvaluated {
                stage: "build".parse().unwrap(),
                phase: PhaseId::Entry,
                round: 1,
                gate: "provenance".parse().unwrap(),
                outcome: Outcome::Pass,
                attempts: 1,
                evidence_digest: None,
                evidence: Some(Box::new(evidence)),
            },
        };
        Entry {
            seq: 7,
            decoded: DecodedEntry {
                seq: 7,
                stream: StreamId::new("release-x").unwrap(),
                version: 3,
                at,
                prev: [0; 32],
                schema: promotion_audit::entry::SCHEMA_JCS,
                event,
            },
        }
    }

    #[test]
    fn an_envelope_recorded_as_verified_by_a_key_that_did_not_sign_it_fails() {
        let ci = AttestationSigner::from_seed([3; 32]);
        let other = AttestationSigner::from_seed([4; 32]);
        let envelope = ci
            .sign("application/vnd.in-toto+json", b"{}")
            .to_json()
            .unwrap();
        let held = |d: &Digest| (*d == Digest::of(&envelope)).then(|| envelope.clone());

        let good = entry(&envelope, &ci.verifier().public_key_pem().unwrap());
        let checks = check_envelopes(std::slice::from_ref(&good), &held);
        assert_eq!((checks.verified, checks.failures.len()), (1, 0));

        // the log (forged, or a gate bug) says `ci` verified it, but gives another key
        let forged = entry(&envelope, &other.verifier().public_key_pem().unwrap());
        let checks = check_envelopes(std::slice::from_ref(&forged), &held);
        assert_eq!(checks.verified, 0);
        assert_eq!(checks.failures.len(), 1, "{:?}", checks.failures);
        let (seq, artifact, problem) = &checks.failures[0];
        assert_eq!((*seq, artifact.as_str()), (7, "api"));
        assert!(
            problem.contains("does not verify with the recorded key `ci`"),
            "{problem}"
        );

        // not in the pack: counted, not passed
        let checks = check_envelopes(std::slice::from_ref(&good), &|_| None);
        assert_eq!((checks.verified, checks.not_in_pack), (0, 1));

        // the keys are planned once, with their file
        let planned = plan_provenance_keys(&[good, forged]);
        assert_eq!(planned.len(), 2);
        assert!(planned[0]
            .manifest
            .path
            .as_deref()
            .unwrap()
            .starts_with("keys/provenance/ci-"));
    }
}
