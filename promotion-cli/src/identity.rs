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
//! `register` names its registrant like the others with `--as` (checked against the roster, or
//! believed with `identity = "unverified"`; without either setting, still the caller's word),
//! or with `--id-token FILE --jwks FILE`: a CI system's OIDC ID token, verified against the
//! issuer's keys and mapped by the roster's machine rules to a principal recorded as
//! [`Verification::Oidc`].
//!
//! With a roster, `--key FILE` (an OpenSSH private key) signs the decision's canonical
//! [`Statement`] in the SSHSIG namespace `promotion`; the signature must verify against the
//! roster's keys for the `--as` person, and the principal is recorded as
//! [`Verification::SshSignature`] with the statement's bytes, so that `promote signatures`
//! can hand an auditor what `ssh-keygen -Y verify` needs.

use std::path::{Path, PathBuf};

use promotion_config::{IdentitySource, Loaded};
use promotion_core::{Principal, Verification};
use promotion_identity::{Jwks, Roster, Statement, DEFAULT_LEEWAY, DEFAULT_NAMESPACE};

use crate::args::Who;
use crate::failure::Failure;

/// Who registers a release, as `register` was told.
pub(crate) enum Registrant {
    /// `--as` (and `--groups`, believed only with `identity = "unverified"`).
    As {
        id: Option<String>,
        groups: Vec<String>,
    },
    /// `--id-token FILE --jwks FILE`: a machine, by its OIDC ID token.
    Token { token: PathBuf, jwks: PathBuf },
}

/// The id `register` records when `--as` is not given and nothing checks it.
const DEFAULT_REGISTRANT: &str = "promote";

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
    /// The principal registering a release: a roster person or machine by `--as` (verified
    /// by the roster), a machine by its OIDC token (verified by OIDC), or, with
    /// `identity = "unverified"` or no setting, the caller's word.
    pub(crate) fn registrant(&self, who: &Registrant) -> Result<Principal, Failure> {
        match (who, self) {
            (Registrant::Token { token, jwks }, Identities::Roster(roster)) => {
                let read = |path: &Path, what: &str| {
                    std::fs::read_to_string(path).map_err(|e| {
                        Failure::Usage(format!("cannot read {what} {}: {e}", path.display()))
                    })
                };
                let keys = Jwks::from_json(&read(jwks, "--jwks")?)
                    .map_err(|e| Failure::Usage(format!("--jwks {}: {e}", jwks.display())))?;
                roster
                    .verify_oidc(
                        &read(token, "--id-token")?,
                        &keys,
                        chrono::Utc::now(),
                        DEFAULT_LEEWAY,
                    )
                    .map_err(|e| {
                        Failure::Refused(format!(
                            "--id-token {} is refused: {e} (roster {})",
                            token.display(),
                            roster.digest()
                        ))
                    })
            }
            (Registrant::Token { .. }, _) => Err(Failure::Usage(
                "--id-token needs a roster whose machine rules map tokens to principals: add \
                 `roster = \"roster.toml\"` under [service]"
                    .to_owned(),
            )),
            (Registrant::As { id: None, .. }, Identities::Roster(_)) => Err(Failure::Usage(
                "say who registers the release: --as ID (a person or machine the roster lists) \
                 or --id-token FILE --jwks FILE (a CI system's OIDC token)"
                    .to_owned(),
            )),
            (Registrant::As { id, groups }, _) => {
                let who = Who {
                    id: id.clone().unwrap_or_else(|| DEFAULT_REGISTRANT.to_owned()),
                    groups: groups.clone(),
                    key: None,
                };
                match self {
                    Identities::Unset => who.principal(),
                    _ => self.principal(&who),
                }
            }
        }
    }

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
