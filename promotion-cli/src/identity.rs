//! Who acts: a person's command names them with `--as`; the service file says where that
//! name is checked and where the groups come from.
//!
//! - `roster = "roster.toml"` in `[service]`: `--as` must name a person the roster lists, the
//!   groups are the roster's (`--groups` is refused), and the principal is recorded as
//!   verified by the roster, with the roster file's digest.
//! - `identity = "unverified"`: the old way, `--as` and `--groups` are believed; the decisions
//!   carry no verification and `promote status` marks them UNVERIFIED.
//! - neither: a person's command is refused, naming both options.

use promotion_config::{IdentitySource, Loaded};
use promotion_core::{Principal, Verification};
use promotion_identity::Roster;

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
