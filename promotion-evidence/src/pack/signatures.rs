//! The SSH-signed decisions of a pack and the rosters that vouch for them.
//!
//! For every log entry of the release whose principal was verified by an SSH signature
//! ([`Verification::SshSignature`]), the pack holds what OpenSSH needs to check it with no
//! other file:
//!
//! ```text
//! signatures/<n>.statement.json        the exact bytes the person signed (the log entry's copy)
//! signatures/<n>.statement.json.sig    their SSHSIG signature, as `ssh-keygen -Y sign` writes it
//! rosters/<hex>.toml                   the roster the decision was made under, byte for byte:
//!                                      its SHA-256 is the digest the entry records
//! rosters/<hex>.allowed_signers        that roster's keys as an OpenSSH allowed_signers file
//! ```
//!
//! `<n>` is the log entry's six-digit sequence number and `<hex>` the roster digest's hex. An
//! auditor checks one with
//!
//! ```text
//! ssh-keygen -Y verify -f rosters/<hex>.allowed_signers -I <id> -n promotion \
//!     -s signatures/<n>.statement.json.sig < signatures/<n>.statement.json
//! ```
//!
//! and the pack's verification does the same with `promotion-identity`, plus what OpenSSH
//! cannot know: that the statement says what the log entry says (release, stage, decision,
//! comment, evidence, pipeline version, roster), that the signing key is the recorded
//! person's and the recorded groups the roster's ([`promotion_identity::Reverifier`]).

use std::collections::BTreeMap;

use promotion_core::{Digest, Event, Principal, Verification};
use promotion_identity::{Replay, Reverifier, Roster, DEFAULT_NAMESPACE};
use serde::{Deserialize, Serialize};

use super::Entry;

/// The directory of signed statements and their signatures.
pub const SIGNATURES_DIR: &str = "signatures";
/// The directory of rosters.
pub const ROSTERS_DIR: &str = "rosters";

/// A signed decision of the pack, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSignedDecision {
    /// The log entry recording the decision.
    pub entry: u64,
    /// The entry's kind (`approval_given`).
    pub kind: String,
    /// The stage, when the entry names one.
    pub stage: Option<String>,
    /// Who the entry says decided: the `-I` of `ssh-keygen -Y verify`.
    pub principal: String,
    /// The SSHSIG namespace: the `-n`.
    pub namespace: String,
    /// The roster's digest, as recorded.
    pub roster: Digest,
    /// The statement file.
    pub statement: String,
    /// The signature file.
    pub signature: String,
    /// The roster's `allowed_signers` file: the `-f`.
    pub allowed_signers: String,
}

/// A roster the pack holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRoster {
    /// Its digest: the SHA-256 of the roster file.
    pub digest: Digest,
    /// The roster file.
    pub path: String,
    /// Its keys as an OpenSSH `allowed_signers` file for namespace `promotion`.
    pub allowed_signers: String,
}

/// The principal of an entry that records an SSH signature, with the signature's parts.
fn signed(event: &Event) -> Option<(&Principal, &Digest, &str, &str, &str)> {
    let p = event.body.decided_by()?;
    match &p.verified {
        Some(Verification::SshSignature {
            roster,
            namespace,
            signature,
            statement,
        }) => Some((p, roster, namespace, signature, statement)),
        _ => None,
    }
}

/// The roster's file paths in a pack.
pub(crate) fn roster_paths(digest: &Digest) -> (String, String) {
    let hex = digest.to_hex();
    (
        format!("{ROSTERS_DIR}/{hex}.toml"),
        format!("{ROSTERS_DIR}/{hex}.allowed_signers"),
    )
}

/// A signed decision of the entries, with its files' contents.
pub(crate) struct PlannedSignature {
    pub(crate) manifest: ManifestSignedDecision,
    /// The statement file's bytes: the statement as the entry records it.
    pub(crate) statement: String,
    /// The signature file's bytes: the armored signature as the entry records it.
    pub(crate) signature: String,
}

/// The signed decisions the entries record, in log order.
pub(crate) fn plan_signatures(entries: &[Entry]) -> Vec<PlannedSignature> {
    let mut out = Vec::new();
    for e in entries {
        let Some((p, roster, namespace, signature, statement)) = signed(e.event()) else {
            continue;
        };
        let statement_path = format!("{SIGNATURES_DIR}/{:06}.statement.json", e.seq);
        let (_, allowed) = roster_paths(roster);
        out.push(PlannedSignature {
            manifest: ManifestSignedDecision {
                entry: e.seq,
                kind: e.event().body.kind().to_owned(),
                stage: e.event().body.stage().map(ToString::to_string),
                principal: p.id.to_string(),
                namespace: namespace.to_owned(),
                roster: *roster,
                signature: format!("{statement_path}.sig"),
                statement: statement_path,
                allowed_signers: allowed,
            },
            statement: statement.to_owned(),
            signature: signature.to_owned(),
        });
    }
    out
}

/// A roster file's pack entry and its `allowed_signers` rendering.
pub(crate) fn roster_files(bytes: &[u8]) -> Result<(ManifestRoster, Roster, String), String> {
    let roster = Roster::parse(bytes, "roster").map_err(|e| e.to_string())?;
    let signers = roster
        .allowed_signers(DEFAULT_NAMESPACE)
        .map_err(|e| e.to_string())?;
    let (path, allowed_signers) = roster_paths(&roster.digest());
    Ok((
        ManifestRoster {
            digest: roster.digest(),
            path,
            allowed_signers,
        },
        roster,
        signers,
    ))
}

/// Re-verifies every signed decision of `entries` (the release's stream from its first
/// entry) against `rosters`: the failures, by entry.
pub(crate) fn reverify(
    rosters: &BTreeMap<Digest, Roster>,
    entries: &[Entry],
) -> Result<(usize, Vec<promotion_identity::Failure>), String> {
    let mut reverifier = Reverifier::new(DEFAULT_NAMESPACE).map_err(|e| e.to_string())?;
    for roster in rosters.values() {
        reverifier.add(roster.clone());
    }
    let mut replay = Replay::default();
    let mut signed = 0;
    let mut failures = Vec::new();
    for e in entries {
        if let Some(checked) = replay.next(&reverifier, e.seq, e.event()) {
            signed += 1;
            if let Err(f) = checked {
                failures.push(*f);
            }
        }
    }
    Ok((signed, failures))
}
