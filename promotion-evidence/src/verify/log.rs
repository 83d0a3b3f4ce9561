//! Steps 3 and 4 of a verification: the checkpoint and the log entries with their inclusion
//! proofs, and the release the first entry registers.

use promotion_audit::checkpoint::Checkpoint;
use promotion_audit::entry::decode;
use promotion_audit::merkle::{leaf_hash, verify_inclusion, Hash};
use promotion_audit::verify::unsigned_checkpoint;
use promotion_audit::CheckpointVerifier;
use promotion_core::StreamId;

use crate::pack::{Entry, EntryLineIn, Manifest, ManifestArtifact, CHECKPOINT, ENTRIES, MANIFEST};

use super::{Files, Problem};

pub(super) fn check_checkpoint(
    files: &Files,
    manifest: &Manifest,
    key: &CheckpointVerifier,
    problems: &mut Vec<Problem>,
) -> Option<Checkpoint> {
    let Some(bytes) = files.get(CHECKPOINT) else {
        problems.push(Problem::new(CHECKPOINT, "missing"));
        return None;
    };
    let Ok(note) = std::str::from_utf8(bytes) else {
        problems.push(Problem::new(CHECKPOINT, "not UTF-8 text"));
        return None;
    };
    let checkpoint = match key.verify(note) {
        Ok(cp) => cp,
        Err(e) => {
            problems.push(Problem::new(
                CHECKPOINT,
                format!(
                    "does not verify with the trusted checkpoint key {}: {e}",
                    key.name()
                ),
            ));
            // Go on with the unsigned body, so that the entries are still checked.
            unsigned_checkpoint(note).ok()?
        }
    };
    let root = hex::encode(checkpoint.root);
    for (what, expected, found) in [
        ("origin", &manifest.log.origin, &checkpoint.origin),
        ("root", &manifest.log.root, &root),
    ] {
        if expected != found {
            problems.push(
                Problem::new(CHECKPOINT, format!("{what} differs from the manifest's"))
                    .expected_found(expected.clone(), found.clone()),
            );
        }
    }
    if manifest.log.size != checkpoint.size {
        problems.push(
            Problem::new(CHECKPOINT, "tree size differs from the manifest's")
                .expected_found(manifest.log.size.to_string(), checkpoint.size.to_string()),
        );
    }
    Some(checkpoint)
}

fn parse_hash(text: &str) -> Option<Hash> {
    let mut out = [0_u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

pub(super) fn check_entries(
    files: &Files,
    manifest: &Manifest,
    checkpoint: Option<&Checkpoint>,
    problems: &mut Vec<Problem>,
) -> Vec<Entry> {
    let Some(bytes) = files.get(ENTRIES) else {
        return Vec::new();
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        problems.push(Problem::new(ENTRIES, "not UTF-8 text"));
        return Vec::new();
    };
    let stream = StreamId::for_release(&manifest.release.id);
    let mut entries: Vec<Entry> = Vec::new();
    let mut previous: Option<(u64, Hash)> = None;
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .collect();
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        let at_line = |p: String| Problem::new(ENTRIES, format!("line {number}: {p}"));
        let parsed: EntryLineIn<'_> = match serde_json::from_str(line) {
            Ok(p) => p,
            Err(e) => {
                problems.push(at_line(format!("not a log entry line: {e}")));
                continue;
            }
        };
        let seq = parsed.seq;
        let raw = parsed.entry.get().as_bytes();
        let leaf = leaf_hash(raw);
        let recorded = hex::encode(leaf);
        if recorded != parsed.leaf_hash {
            problems.push(
                at_line("the entry bytes do not hash to the leaf hash".into())
                    .entry(seq)
                    .expected_found(parsed.leaf_hash.clone(), recorded),
            );
        }
        if let Some(cp) = checkpoint {
            let proof: Option<Vec<Hash>> = parsed.proof.iter().map(|h| parse_hash(h)).collect();
            match proof {
                None => problems.push(
                    at_line("the proof holds a hash that is not 64 hex digits".into()).entry(seq),
                ),
                Some(proof) => {
                    if let Err(e) = verify_inclusion(&leaf, seq, cp.size, &proof, &cp.root) {
                        problems.push(
                            at_line(format!("inclusion proof does not verify: {e}")).entry(seq),
                        );
                    }
                }
            }
        }
        let decoded = match decode(raw) {
            Ok(d) => d,
            Err(e) => {
                problems.push(at_line(format!("entry does not decode: {e}")).entry(seq));
                continue;
            }
        };
        if decoded.seq != seq {
            problems.push(
                at_line("the entry's own sequence number differs from the line's".into())
                    .entry(seq)
                    .expected_found(seq.to_string(), decoded.seq.to_string()),
            );
        }
        if decoded.stream != stream {
            problems.push(
                at_line("the entry belongs to another stream, not to this release".into())
                    .entry(seq)
                    .expected_found(stream.to_string(), decoded.stream.to_string()),
            );
        }
        let expected_version = entries.len() as u64 + 1;
        if decoded.version != expected_version {
            problems.push(
                at_line("stream versions must run 1, 2, 3… without a gap".into())
                    .entry(seq)
                    .expected_found(expected_version.to_string(), decoded.version.to_string()),
            );
        }
        if let Some((prev_seq, prev_leaf)) = previous {
            if seq <= prev_seq {
                problems.push(at_line("entries are not in log order".into()).entry(seq));
            } else if seq == prev_seq + 1 && decoded.prev != prev_leaf {
                problems.push(
                    at_line("the entry does not chain to the previous log entry".into())
                        .entry(seq)
                        .expected_found(hex::encode(prev_leaf), hex::encode(decoded.prev)),
                );
            }
        }
        previous = Some((seq, leaf));
        entries.push(Entry { seq, decoded });
    }
    if entries.len() as u64 != manifest.log.entries {
        problems.push(
            Problem::new(ENTRIES, "number of entries differs from the manifest's")
                .expected_found(manifest.log.entries.to_string(), entries.len().to_string()),
        );
    }
    entries
}

pub(super) fn check_release(
    manifest: &Manifest,
    release: &promotion_core::Release,
    pipeline: &str,
    version: &str,
    problems: &mut Vec<Problem>,
) {
    let m = &manifest.release;
    let artifacts: Vec<ManifestArtifact> = release
        .artifacts()
        .iter()
        .map(|a| ManifestArtifact {
            name: a.name.clone(),
            digest: a.digest,
        })
        .collect();
    let stream = StreamId::for_release(&release.id()).to_string();
    for (what, ok, expected, found) in [
        (
            "release id",
            m.id == release.id(),
            release.id().to_string(),
            m.id.to_string(),
        ),
        (
            "release name",
            m.name == release.name(),
            release.name().to_owned(),
            m.name.clone(),
        ),
        (
            "stream",
            m.stream == stream,
            stream.clone(),
            m.stream.clone(),
        ),
        (
            "pipeline",
            m.pipeline == pipeline,
            pipeline.to_owned(),
            m.pipeline.clone(),
        ),
        (
            "pipeline version",
            m.pipeline_version == version,
            version.to_owned(),
            m.pipeline_version.clone(),
        ),
        (
            "artifacts",
            m.artifacts == artifacts,
            format!("{} artifacts of the registered release", artifacts.len()),
            format!("{} artifacts", m.artifacts.len()),
        ),
    ] {
        if !ok {
            problems.push(
                Problem::new(
                    MANIFEST,
                    format!("{what} differs from the registered release"),
                )
                .expected_found(expected, found),
            );
        }
    }
}
