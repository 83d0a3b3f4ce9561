//! `promote signatures`: a release's SSH-signed decisions, laid out for `ssh-keygen -Y verify`.

use std::path::Path;

use promotion_core::{Event, EventBody, Principal, ReleaseId, Verification};
use promotion_identity::{Decision, Roster, Statement};

use crate::app::App;
use crate::failure::{Failure, OK, REFUSED};
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
        let mut failed = 0;
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
            match check(roster, &row.id, e, p, statement, signature, namespace) {
                Ok(line) => println!("  {line}"),
                Err(why) => {
                    failed += 1;
                    println!("  FAILED: {why}");
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
}

/// Checks a recorded signed decision: the statement is canonical and says what the log entry
/// says (release, stage, decision, comment, roster), and, when it was signed under the current
/// roster, the signature verifies and the key is the recorded person's. Returns what was
/// checked, or why it fails.
fn check(
    roster: &Roster,
    release: &ReleaseId,
    e: &Event,
    p: &Principal,
    statement: &str,
    signature: &str,
    namespace: &str,
) -> Result<String, String> {
    let st = Statement::from_bytes(statement.as_bytes()).map_err(|e| e.to_string())?;
    if st.release != *release {
        return Err(format!("the statement is for release {}", st.release));
    }
    if Some(&st.stage) != e.body.stage() {
        return Err(format!("the statement is for stage {}", st.stage));
    }
    let (decision_matches, comment) = match (&e.body, &st.decision) {
        (EventBody::ApprovalGiven { comment, .. }, Decision::Approve)
        | (EventBody::ApprovalRejected { comment, .. }, Decision::Reject) => (true, comment),
        (
            EventBody::GateOverridden {
                gate,
                justification,
                ..
            },
            Decision::Override { gate: signed },
        ) => (gate == signed, justification),
        (
            EventBody::GateJudged {
                gate,
                pass,
                comment,
                ..
            },
            Decision::Judge {
                gate: signed,
                pass: signed_pass,
            },
        ) => (gate == signed && pass == signed_pass, comment),
        (EventBody::StageAborted { reason, .. }, Decision::Abort) => (true, reason),
        _ => (false, &st.comment),
    };
    if !decision_matches {
        return Err(format!(
            "the statement signs {:?}, the log entry is {}",
            st.decision,
            e.body.kind()
        ));
    }
    if *comment != st.comment {
        return Err("the statement's comment is not the log entry's".to_owned());
    }
    let Some(Verification::SshSignature { roster: under, .. }) = &p.verified else {
        return Err("not an SSH-signed decision".to_owned());
    };
    if st.roster != *under {
        return Err(format!(
            "the statement names roster {}, the entry {under}",
            st.roster
        ));
    }
    if *under != roster.digest() {
        return Ok("statement matches the entry; signature not checked (another roster)".into());
    }
    let signer = roster
        .verify_signed(statement.as_bytes(), signature, namespace)
        .map_err(|e| e.to_string())?;
    if signer.id != p.id {
        return Err(format!(
            "signed with {}'s key, recorded as {}",
            signer.id, p.id
        ));
    }
    Ok(format!(
        "checked: signed by {}'s key in the roster; the statement matches the entry",
        signer.id
    ))
}
