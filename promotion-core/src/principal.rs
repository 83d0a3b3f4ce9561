//! Principals: authenticated people and service accounts.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::name::{Group, InvalidName, PrincipalId};

/// An authenticated identity and the groups it belongs to.
///
/// The host authenticates (SSO, OIDC, mTLS…) and hands the library a `Principal`; the library
/// decides what that principal may do. The groups are recorded with every decision, so the
/// audit shows why a principal was eligible at the time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// Stable identifier.
    pub id: PrincipalId,
    /// Groups the principal belongs to.
    #[serde(default)]
    pub groups: BTreeSet<Group>,
}

impl Principal {
    /// A principal with the given id and groups, all validated.
    ///
    /// ```
    /// let p = promotion_core::Principal::new("erin", ["sre", "oncall"])?;
    /// assert!(p.in_group("sre"));
    /// # Ok::<(), promotion_core::InvalidName>(())
    /// ```
    pub fn new<I, S>(id: &str, groups: I) -> Result<Self, InvalidName>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Ok(Principal {
            id: PrincipalId::new(id)?,
            groups: groups
                .into_iter()
                .map(Group::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether the principal is a member of `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.contains(group)
    }
}
