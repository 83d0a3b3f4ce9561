//! Who acts: a person's command names them with `--as`; the service file says where that
//! name is checked and where the groups come from.
//!
//! - `roster = "roster.toml"` in `[service]`: `--as` must name a person the roster lists, the
//!   groups are the roster's (`--groups` is refused), and the principal is recorded as
//!   verified by the roster, with the roster file's digest.
//! - `identity = "unverified"`: the old way, `--as` and `--groups` are believed; the decisions
//!   carry no verification and `promote status` marks them UNVERIFIED.
//! - neither: a person's command is refused, naming both options.
//!
//! With a roster, `--key FILE` (an OpenSSH private key) signs the decision's canonical
//! [`Statement`] in the SSHSIG namespace `promotion`; the signature must verify against the
//! roster's keys for the `--as` person, and the principal is recorded as
//! [`Verification::SshSignature`] with the statement's bytes, so that `promote signatures`
//! can hand an auditor what `ssh-keygen -Y verify` needs.

use std::path::Path;

use promotion_config::{IdentitySource, Loaded};
use promotion_core::{Principal, Verification};
use promotion_identity::{Roster, Statement, DEFAULT_NAMESPACE};

use crate::args::Who;
use crate::failure::Failure;

/// Where the acting person comes from, as the service file says.
pub(crate) enum Identities {
    /// A loaded roster.
    Roster(Roster),
    /// `identity = "unverified"`.
    Unverified,
    /// The service file says neither (or there is no service file).
    Unset,
}

impl Identities {
    /// Reads the service file's choice, loading the roster it names.
    pub(crate) fn of(loaded: &Loaded) -> Result<Identities, Failure> {
        let Some(service) = loaded.service.as_ref() else {
            return Ok(Identities::Unset);
        };
        match service.identity() {
            IdentitySource::Roster(path) => Roster::load(&path)
                .map(Identities::Roster)
                .map_err(|e| Failure::Usage(format!("roster {}: {e}", path.display()))),
            IdentitySource::Unverified => Ok(Identities::Unverified),
            IdentitySource::Unset => Ok(Identities::Unset),
        }
    }

    /// The principal a person's command acts as.
    pub(crate) fn principal(&self, who: &Who) -> Result<Principal, Failure> {
        match self {
            Identities::Roster(roster) => {
                if who.groups.iter().any(|g| !g.is_empty()) {
                    return Err(Failure::Usage(format!(
                        "--groups (or PROMOTION_GROUPS) is refused: this service's groups come \
                         from its roster, so {:?}'s groups are what the roster lists, not what \
                         a command claims",
                        who.id
                    )));
                }
                let principal = roster.principal(&who.id).ok_or_else(|| {
                    Failure::Refused(format!(
                        "{:?} is not in the roster (roster {}); ask for them to be added to \
                         the roster file",
                        who.id,
                        roster.digest()
                    ))
                })?;
                Ok(principal.verified_by(Verification::Roster {
                    roster: roster.digest(),
                }))
            }
            Identities::Unverified => who.principal(),
            Identities::Unset => Err(Failure::Usage(
                "this service file does not say who may act: add `roster = \"roster.toml\"` \
                 under [service] (people and their groups from a roster file; `promote init` \
                 writes one), or `identity = \"unverified\"` to believe --as and --groups \
                 (every decision is then marked UNVERIFIED)"
                    .to_owned(),
            )),
        }
    }
}

impl Identities {
    /// `principal` (from [`principal`](Self::principal)) signing `statement` with the key in
    /// `key`: the statement gets the roster's digest, is signed, and the signature is verified
    /// against the roster, whose key it must be the principal's.
    pub(crate) fn sign(
        &self,
        principal: Principal,
        key: &Path,
        mut statement: Statement,
    ) -> Result<Principal, Failure> {
        let Identities::Roster(roster) = self else {
            return Err(Failure::Usage(
                "--key needs a roster to check the signature against: add `roster = \"roster.toml\"` \
                 under [service]"
                    .to_owned(),
            ));
        };
        statement.roster = roster.digest();
        let bytes = statement
            .to_bytes()
            .map_err(|e| Failure::Usage(format!("the decision cannot be signed: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| Failure::Usage(format!("the decision's statement is not text: {e}")))?;
        let signature =
            promotion_identity::sign_with_key_file(key, DEFAULT_NAMESPACE, text.as_bytes())
                .map_err(|e| Failure::Usage(format!("--key {}: {e}", key.display())))?;
        let signer = roster
            .verify_signed(text.as_bytes(), &signature, DEFAULT_NAMESPACE)
            .map_err(|e| Failure::Refused(format!("--key {}: {e}", key.display())))?;
        if signer.id != principal.id {
            return Err(Failure::Refused(format!(
                "--key {} is {}'s key in the roster, not {}'s: a person signs only their own \
                 decisions",
                key.display(),
                signer.id,
                principal.id
            )));
        }
        Ok(signer.verified_by(Verification::SshSignature {
            roster: roster.digest(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            signature,
            statement: text,
        }))
    }

    /// The roster, when the service file names one.
    pub(crate) fn roster(&self) -> Option<&Roster> {
        match self {
            Identities::Roster(r) => Some(r),
            Identities::Unverified | Identities::Unset => None,
        }
    }
}
