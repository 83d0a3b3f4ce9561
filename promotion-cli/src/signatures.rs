//! `promote signatures`: a release's SSH-signed decisions, laid out for `ssh-keygen -Y verify`.

use std::path::Path;

use promotion_core::Verification;

use crate::app::App;
use crate::failure::{Failure, OK};
use crate::identity::Identities;
use crate::{files, show, store};

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
        let store = store::open_existing(&self.place())?;
        let rows = show::releases(&store, loaded.pipeline.name()).await?;
        let row = show::resolve(&rows, reference)?;
        std::fs::create_dir_all(out)
            .map_err(|e| Failure::Store(format!("cannot create {}: {e}", out.display())))?;
        let namespace = promotion_identity::DEFAULT_NAMESPACE;
        let signers = roster
            .allowed_signers(namespace)
            .map_err(|e| Failure::Usage(format!("the roster's allowed_signers: {e}")))?;
        let allowed = out.join("allowed_signers");
        files::write_state(&allowed, signers.as_bytes())?;
        let mut n = 0;
        for e in &row.events {
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
            if statement.is_empty() {
                continue;
            }
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
        Ok(OK)
    }
}
