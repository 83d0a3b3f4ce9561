//! Signed decisions: `promote signatures` lays a release's out for `ssh-keygen -Y verify`, and
//! `promote log verify` re-verifies every one in the log (issue 15), both with
//! [`promotion_identity::Reverifier`].
//!
//! The rosters signatures are checked against come from the service file's `roster` and from
//! `--roster FILE` (repeatable: the roster file as it was when older decisions were signed,
//! e.g. `git show <commit>:roster.toml`), never from the state directory: a roster kept beside
//! the log could be replaced by whoever can rewrite the log, and then vouch for a forged key.
//! A decision signed under a roster that was not given fails, naming the digest to look for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use promotion_audit::entry::decode;
use promotion_audit::AuditStore;
use promotion_config::{IdentitySource, Loaded};
use promotion_core::{StreamId, Verification};
use promotion_identity::{Replay, Report, Reverifier, Roster, DEFAULT_NAMESPACE};

use crate::app::App;
use crate::failure::{Failure, OK, REFUSED};
use crate::identity::Identities;
use crate::{files, show, store};

/// Entries read from the log per round trip while re-verifying.
const CHUNK: usize = 1024;

impl App {
    pub(crate) async fn signatures(&self, reference: &str, out: &Path) -> Result<u8, Failure> {
        let loaded = self.load(false)?;
        let identities = Identities::of(&loaded)?;
        let Some(roster) = identities.roster() else {
            return Err(Failure::Usage(
                "signatures are checked against the roster's keys: this service file names no \
                 roster (`roster = \"roster.toml\"` under [service])"
                    .to_owned(),
            ));
        };
        let reverifier = reverifier(Some(roster), &[])?;
        let store = store::open_existing(&self.place())?;
        let rows = show::releases(&store, loaded.pipeline.name()).await?;
        let row = show::resolve(&rows, reference)?;
        std::fs::create_dir_all(out)
            .map_err(|e| Failure::Store(format!("cannot create {}: {e}", out.display())))?;
        let signers = roster
            .allowed_signers(DEFAULT_NAMESPACE)
            .map_err(|e| Failure::Usage(format!("the roster's allowed_signers: {e}")))?;
        let allowed = out.join("allowed_signers");
        files::write_state(&allowed, signers.as_bytes())?;
        let mut n = 0;
        let mut failed = 0;
        let mut replay = Replay::of(row.id);
        for (version, e) in (1u64..).zip(&row.events) {
            let Some(checked) = replay.next(&reverifier, version, e) else {
                continue;
            };
            let Some(p) = e.body.decided_by() else {
                continue;
            };
            let Some(Verification::SshSignature {
                roster: signed_under,
                namespace,
                signature,
                statement,
            }) = &p.verified
            else {
                continue;
            };
            n += 1;
            let text = out.join(format!("{n}.statement.json"));
            let sig = out.join(format!("{n}.statement.json.sig"));
            files::write_state(&text, statement.as_bytes())?;
            files::write_state(&sig, signature.as_bytes())?;
            println!("{}", show::event_line(e));
            if *signed_under != roster.digest() {
                println!(
                    "  signed under roster {signed_under}, not the current {}: use that \
                     roster's keys (`git log` of the roster file) for allowed_signers",
                    roster.digest()
                );
            }
            match checked {
                Ok(()) => println!(
                    "  checked: signed by {}'s key in the roster; the statement matches the entry",
                    p.id
                ),
                Err(why) => {
                    failed += 1;
                    println!("  FAILED: {}", why.problem);
                }
            }
            println!(
                "  ssh-keygen -Y verify -f {} -I {} -n {namespace} -s {} < {}",
                allowed.display(),
                p.id,
                sig.display(),
                text.display()
            );
        }
        if n == 0 {
            println!("no SSH-signed decisions recorded for {}", row.id.short());
        }
        Ok(if failed > 0 { REFUSED } else { OK })
    }

    /// The reverifier `log verify` uses: the service file's roster, when there is a service
    /// file naming one, and every `--roster` file.
    pub(crate) fn log_reverifier(&self, rosters: &[PathBuf]) -> Result<Reverifier, Failure> {
        let service = match self.load(false) {
            Ok(loaded) => Identities::of(&loaded)?,
            // `log verify` needs only the state directory; without a readable service file
            // the signatures are checked against the `--roster` files alone.
            Err(_) => Identities::Unset,
        };
        reverifier(service.roster(), rosters)
    }
}

/// The bytes of the service file's roster (when it names one) and of every `files` roster,
/// for an evidence pack to carry.
pub(crate) fn roster_bytes(loaded: &Loaded, files: &[PathBuf]) -> Result<Vec<Vec<u8>>, Failure> {
    let mut paths: Vec<PathBuf> = Vec::new();
    if let Some(IdentitySource::Roster(path)) = loaded.service.as_ref().map(|s| s.identity()) {
        paths.push(path);
    }
    paths.extend(files.iter().cloned());
    paths
        .iter()
        .map(|p| {
            std::fs::read(p)
                .map_err(|e| Failure::Usage(format!("roster {}: cannot read: {e}", p.display())))
        })
        .collect()
}

/// A reverifier for the `promotion` namespace holding `current` and every roster in `files`.
fn reverifier(current: Option<&Roster>, files: &[PathBuf]) -> Result<Reverifier, Failure> {
    let mut reverifier = Reverifier::new(DEFAULT_NAMESPACE)
        .map_err(|e| Failure::Usage(format!("namespace: {e}")))?;
    if let Some(roster) = current {
        reverifier.add(roster.clone());
    }
    for file in files {
        let roster = Roster::load(file)
            .map_err(|e| Failure::Usage(format!("--roster {}: {e}", file.display())))?;
        reverifier.add(roster);
    }
    Ok(reverifier)
}

/// Re-verifies every SSH-signed decision in the log, every release stream folded as it is
/// read (one state per stream, the entries read in chunks of [`CHUNK`]), and the signed
/// refused attempts of the security stream. The log's hashes must have been verified first.
pub(crate) async fn reverify_log(
    store: &AuditStore,
    reverifier: &Reverifier,
) -> Result<Report, Failure> {
    let size = store.size().await?;
    let mut replays: HashMap<StreamId, Replay> = HashMap::new();
    let mut report = Report::default();
    let mut from = 0;
    while from < size {
        let chunk = store
            .with_reader(move |b| Ok(b.read_range(from, CHUNK)?))
            .await?;
        let Some(last) = chunk.last() else {
            break;
        };
        from = last.seq + 1;
        for row in &chunk {
            let decoded = decode(&row.bytes)
                .map_err(|e| Failure::Store(format!("log entry {}: {e}", row.seq)))?;
            let checked = if row.stream == StreamId::security() {
                reverifier.refused_attempt(row.seq, &decoded.event)
            } else {
                replays.entry(row.stream.clone()).or_default().next(
                    reverifier,
                    row.seq,
                    &decoded.event,
                )
            };
            if let Some(checked) = checked {
                report.signed += 1;
                if let Err(f) = checked {
                    report.failures.push(*f);
                }
            }
        }
    }
    Ok(report)
}
