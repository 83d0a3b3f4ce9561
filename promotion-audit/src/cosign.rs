//! Witness cosignatures on checkpoints, in the [C2SP tlog-cosignature] `cosignature/v1`
//! (Ed25519) format, and the witness's own rule: cosign a checkpoint only when it is consistent
//! with the last one it cosigned for the same log.
//!
//! A cosignature is one more signature line on the signed checkpoint note:
//! `— <witness name> <base64(key id || timestamp || signature)>`, where the key id is
//! `SHA-256(name || 0x0A || 0x04 || public key)[..4]`, the timestamp is 8 bytes big-endian
//! (POSIX seconds) and the Ed25519 signature covers
//! `"cosignature/v1\ntime <timestamp>\n"` followed by the whole checkpoint body. Witness keys
//! are written like note keys with the algorithm byte 0x04:
//! `<name>+<8 hex key id>+<base64(0x04 || public key)>`, and
//! `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x04 || seed)>`.
//!
//! The log's own verifier ignores cosignature lines (their key ids differ), so a cosigned
//! checkpoint still verifies as the log's checkpoint.
//!
//! [C2SP tlog-cosignature]: https://c2sp.org/tlog-cosignature

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::backend::Backend;
use crate::checkpoint::{
    check_key_id, check_name, decode_key_material_for, encode_key_material_for, format_private_key,
    key_id_for, malformed, parse_private_key, parse_signature_line, random_seed, split_key_fields,
    Checkpoint, CheckpointError, CheckpointVerifier, MAX_SIGNATURES, SIG_PREFIX,
};
use crate::error::AuditError;
use crate::merkle::{verify_consistency, Hash, ProofError};

/// The signature type byte of `cosignature/v1` Ed25519 cosignatures.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// The bytes a `cosignature/v1` signature covers for `body` at `timestamp`.
fn signed_message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// Splits a signed note into its text (the body, with its final newline) and its signature
/// lines; refuses a note without a blank line or without signatures.
fn split_note(note: &str) -> Result<(&str, Vec<&str>), CheckpointError> {
    let last_line = note.split('\n').count();
    let split = note.rfind("\n\n").ok_or_else(|| {
        malformed(
            last_line,
            "no blank line separating the text from the signatures",
        )
    })?;
    let (Some(text), Some(rest)) = (note.get(..=split), note.get(split.saturating_add(2)..)) else {
        return Err(malformed(last_line, "cannot split the note"));
    };
    let lines = rest
        .strip_suffix('\n')
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            malformed(
                last_line,
                "the note does not end with a newline-terminated signature line",
            )
        })?;
    Ok((text, lines.split('\n').collect()))
}

/// A witness's signing key.
///
/// Its [`Debug`](std::fmt::Debug) output shows the name and key id only, never the seed.
pub struct Cosigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cosigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl Cosigner {
    /// From a witness name (a schema-less URL is recommended: no whitespace, `+` or control
    /// characters) and a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, CheckpointError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id_for(name, ALG_COSIGNATURE_V1, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// A fresh key from the OS random generator.
    pub fn generate(name: &str) -> Result<Self, CheckpointError> {
        check_name(name)?;
        Self::from_seed(name, random_seed()?)
    }

    /// Parses `PRIVATE+KEY+<name>+<hexid>+<base64(0x04 || seed)>`, checking the key id.
    pub fn from_private_key(text: &str) -> Result<Self, CheckpointError> {
        let (name, claimed_id, seed) = parse_private_key(text, "witness", ALG_COSIGNATURE_V1)?;
        let cosigner = Self::from_seed(name, seed)?;
        check_key_id("witness", name, claimed_id, cosigner.key_id)?;
        Ok(cosigner)
    }

    /// The private key string, to keep secret.
    pub fn private_key(&self) -> String {
        format_private_key(
            &self.name,
            self.key_id,
            &self.key.to_bytes(),
            ALG_COSIGNATURE_V1,
        )
    }

    /// The verifier for this witness's cosignatures.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The witness name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds this witness's cosignature, made at `timestamp` (POSIX seconds), to `note` (a
    /// signed checkpoint note; its body must parse as a checkpoint). Any earlier cosignature by
    /// this key is replaced, so the note carries one per witness.
    pub fn cosign(&self, note: &str, timestamp: u64) -> Result<String, CheckpointError> {
        if timestamp > i64::MAX as u64 {
            return Err(malformed(
                1,
                "a cosignature timestamp must not exceed 2^63-1",
            ));
        }
        let (text, lines) = split_note(note)?;
        Checkpoint::parse_body(text)?;
        let signature = self.key.sign(signed_message(text, timestamp).as_bytes());
        let mut blob = Vec::with_capacity(4 + 8 + 64);
        blob.extend_from_slice(&self.key_id.to_be_bytes());
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        let mut out = format!("{text}\n");
        for line in lines {
            let mine = line
                .strip_prefix(SIG_PREFIX)
                .and_then(|rest| rest.split_once(' '))
                .is_some_and(|(name, encoded)| {
                    name == self.name
                        && STANDARD
                            .decode(encoded)
                            .ok()
                            .and_then(|b| b.get(..4).map(|id| id == self.key_id.to_be_bytes()))
                            .unwrap_or(false)
                });
            if !mine {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str(&format!(
            "{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        ));
        Ok(out)
    }
}

/// Verifies one witness's `cosignature/v1` cosignatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Parses `<name>+<hexid>+<base64(0x04 || public key)>`, checking the key id and refusing
    /// non-canonical and small-order keys.
    pub fn from_verifier_key(text: &str) -> Result<Self, CheckpointError> {
        let mut parts = text.splitn(3, '+');
        let (name, claimed_id, material) = split_key_fields(&mut parts, "witness verifier")?;
        let bytes =
            decode_key_material_for(name, material, "witness verifier", ALG_COSIGNATURE_V1)?;
        let key = VerifyingKey::from_bytes(&bytes)
            .ok()
            .filter(|k| k.to_bytes() == bytes && !k.is_weak())
            .ok_or_else(|| {
                CheckpointError::InvalidKey(format!(
                    "witness verifier key for {name:?}: not a canonical Ed25519 public key"
                ))
            })?;
        let key_id = key_id_for(name, ALG_COSIGNATURE_V1, &key);
        check_key_id("witness verifier", name, claimed_id, key_id)?;
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// The verifier key string `<name>+<hexid>+<base64(0x04 || public key)>`.
    pub fn verifier_key(&self) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_key_material_for(self.key.as_bytes(), ALG_COSIGNATURE_V1)
        )
    }

    /// The witness name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The timestamp of this witness's valid cosignature on `note`.
    ///
    /// Lines by other keys are ignored. Of the lines by this key (name and key id), the first
    /// that verifies gives the timestamp (a note kept beside a stored checkpoint may hold a
    /// line forged in this key's name beside the real one: it must not hide it); when none
    /// verifies, [`CheckpointError::BadSignature`]; when there is none,
    /// [`CheckpointError::UnknownKey`].
    pub fn verify(&self, note: &str) -> Result<u64, CheckpointError> {
        let (text, lines) = split_note(note)?;
        let text_lines = text.matches('\n').count();
        let display = format!("{}+{:08x}", self.name, self.key_id);
        let mut bad_seen = false;
        for (index, line) in lines.into_iter().enumerate() {
            let number = text_lines.saturating_add(2).saturating_add(index);
            if index >= MAX_SIGNATURES {
                return Err(malformed(number, "too many signature lines"));
            }
            let (name, key_id, rest) = parse_signature_line(number, line)?;
            if name != self.name || key_id != self.key_id {
                continue;
            }
            let (Some(time), Some(signature)) = (rest.get(..8), rest.get(8..)) else {
                bad_seen = true;
                continue;
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(time);
            let timestamp = u64::from_be_bytes(be);
            let verified = Signature::from_slice(signature).is_ok_and(|signature| {
                self.key
                    .verify_strict(signed_message(text, timestamp).as_bytes(), &signature)
                    .is_ok()
            });
            if verified {
                return Ok(timestamp);
            }
            bad_seen = true;
        }
        if bad_seen {
            return Err(CheckpointError::BadSignature { name: display });
        }
        Err(CheckpointError::UnknownKey { name: display })
    }
}

/// Checks `note`'s cosignatures by `witnesses` (each counted once, however many of its keys
/// are listed twice) and returns how many verify, with why each of the others does not.
pub fn cosignatures(note: &str, witnesses: &[CosignatureVerifier]) -> (usize, Vec<String>) {
    let mut seen: Vec<&CosignatureVerifier> = Vec::new();
    let mut valid = 0;
    let mut missing = Vec::new();
    for w in witnesses {
        if seen.contains(&w) {
            continue;
        }
        seen.push(w);
        match w.verify(note) {
            Ok(_) => valid += 1,
            Err(e) => missing.push(format!("{}: {e}", w.name)),
        }
    }
    (valid, missing)
}

/// Why a witness refuses to cosign a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessRefusal {
    /// The checkpoint is not validly signed by the log's key.
    #[error("the checkpoint is not signed by the log's key: {0}")]
    Signature(CheckpointError),
    /// The checkpoint is smaller than the last one the witness cosigned for this log.
    #[error("the checkpoint signs {new} entries, fewer than the {old} of the last checkpoint this witness cosigned for {origin} (a rollback)")]
    RolledBack {
        #[allow(missing_docs)] // the log's origin
        origin: String,
        /// The size the witness cosigned last.
        old: u64,
        /// The size of the refused checkpoint.
        new: u64,
    },
    /// The same size as the last cosigned checkpoint, another root: two histories.
    #[error("the checkpoint signs another root at size {size} than the one this witness cosigned for {origin} (a fork)")]
    Forked {
        #[allow(missing_docs)] // the log's origin
        origin: String,
        /// The tree size both sign.
        size: u64,
    },
    /// The consistency proof from the last cosigned checkpoint is missing or does not verify.
    #[error("no valid consistency proof from size {old} to size {new} for {origin} (a fork or a rewrite): {error}")]
    Inconsistent {
        #[allow(missing_docs)] // the log's origin
        origin: String,
        /// The size the witness cosigned last.
        old: u64,
        /// The size of the refused checkpoint.
        new: u64,
        /// Why the proof does not verify.
        error: ProofError,
    },
}

/// What a witness checks before it cosigns `note`: it is signed by `log`, and it extends
/// `last` (the checkpoint the witness cosigned last for the same origin, if any) as `proof`
/// (an RFC 6962 consistency proof from `last`'s size to the new size) shows. Returns the new
/// checkpoint.
pub fn witness_check(
    log: &CheckpointVerifier,
    note: &str,
    last: Option<&Checkpoint>,
    proof: &[Hash],
) -> Result<Checkpoint, WitnessRefusal> {
    let new = log.verify(note).map_err(WitnessRefusal::Signature)?;
    let Some(old) = last else {
        return Ok(new);
    };
    let origin = new.origin.clone();
    if new.size < old.size {
        return Err(WitnessRefusal::RolledBack {
            origin,
            old: old.size,
            new: new.size,
        });
    }
    if new.size == old.size {
        return if new.root == old.root {
            Ok(new)
        } else {
            Err(WitnessRefusal::Forked {
                origin,
                size: new.size,
            })
        };
    }
    if old.size == 0 {
        return Ok(new);
    }
    verify_consistency(old.size, new.size, &old.root, &new.root, proof).map_err(|error| {
        WitnessRefusal::Inconsistent {
            origin,
            old: old.size,
            new: new.size,
            error,
        }
    })?;
    Ok(new)
}

/// Stores the witness cosignatures `cosigned` carries beside the log's checkpoint of the same
/// tree size, in one transaction on `backend`'s write handle: the stored note keeps its text
/// and every signature line it had (the log's own first), and gains each of `cosigned`'s
/// signature lines it does not hold yet; lines are never removed or replaced. Returns how many
/// lines were added.
///
/// Nothing is trusted here: a line is kept if it is well-formed, and counted only when
/// verification checks it with a witness's key ([`cosignatures`]), so a forged line stored
/// beside a checkpoint never counts. Refused: a note whose text differs from the stored
/// checkpoint's (another origin or root: [`AuditError::Anchor`]), a size with no stored
/// checkpoint, and more signature lines than a note may hold.
pub fn store_cosignatures(backend: &mut dyn Backend, cosigned: &str) -> Result<usize, AuditError> {
    let (text, lines) = split_note(cosigned)?;
    let cp = Checkpoint::parse_body(text)?;
    for (i, line) in lines.iter().enumerate() {
        parse_signature_line(i.saturating_add(1), line)?;
    }
    backend.begin()?;
    let result = merge_cosignatures(backend, &cp, text, &lines);
    match result {
        Ok(0) => {
            backend.rollback();
            Ok(0)
        }
        Ok(added) => {
            backend.commit()?;
            Ok(added)
        }
        Err(e) => {
            backend.rollback();
            Err(e)
        }
    }
}

fn merge_cosignatures(
    backend: &mut dyn Backend,
    cp: &Checkpoint,
    text: &str,
    lines: &[&str],
) -> Result<usize, AuditError> {
    let stored = backend
        .read_checkpoints(cp.size, 1)?
        .into_iter()
        .find(|(size, _)| *size == cp.size)
        .map(|(_, note)| note)
        .ok_or_else(|| {
            AuditError::Anchor(format!(
                "the log stores no checkpoint at size {} to keep cosignatures beside",
                cp.size
            ))
        })?;
    let (stored_text, stored_lines) = split_note(&stored)?;
    if stored_text != text {
        return Err(AuditError::Anchor(format!(
            "the cosigned checkpoint at size {} is not the one the log stores (another origin or root)",
            cp.size
        )));
    }
    // Only ever added: a line (even one forged in a witness's name) never displaces another,
    // and verification counts a witness if any of its lines verifies.
    let mut merged: Vec<String> = stored_lines.iter().map(|l| (*l).to_owned()).collect();
    let mut added = 0;
    for line in lines {
        if merged.iter().any(|m| m == line) {
            continue;
        }
        merged.push((*line).to_owned());
        added += 1;
    }
    if merged.len() > MAX_SIGNATURES {
        return Err(AuditError::Anchor(format!(
            "a checkpoint note holds at most {MAX_SIGNATURES} signatures; with these cosignatures it would hold {}",
            merged.len()
        )));
    }
    if added > 0 {
        let mut note = format!("{text}\n");
        for line in &merged {
            note.push_str(line);
            note.push('\n');
        }
        backend.insert_checkpoint(cp.size, &note)?;
    }
    Ok(added)
}

/// Parses a proof as printed by `promote log proof`: one standard base64 hash per line (the
/// encoding C2SP tlog-witness uses for proof lines); blank lines are ignored.
pub fn parse_proof(text: &str) -> Result<Vec<Hash>, CheckpointError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            STANDARD
                .decode(l.trim())
                .ok()
                .and_then(|b| Hash::try_from(b.as_slice()).ok())
                .ok_or_else(|| {
                    malformed(
                        i.saturating_add(1),
                        "a proof line must be the base64 of a 32-byte hash",
                    )
                })
        })
        .collect()
}

/// Formats a proof: one standard base64 hash per line.
pub fn format_proof(proof: &[Hash]) -> String {
    proof
        .iter()
        .map(|h| format!("{}\n", STANDARD.encode(h)))
        .collect()
}

#[cfg(test)]
mod tests;
