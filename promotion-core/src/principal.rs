//! Principals: authenticated people and service accounts.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::name::{Group, InvalidName, PrincipalId};

/// An authenticated identity and the groups it belongs to.
///
/// The host authenticates (SSO, OIDC, mTLS…) and hands the library a `Principal`; the library
/// decides what that principal may do. The groups are recorded with every decision, so the
/// audit shows why a principal was eligible at the time, and so is how the host verified who
/// the principal is ([`verified`](Principal::verified)), when it says.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// Stable identifier.
    pub id: PrincipalId,
    /// Groups the principal belongs to.
    #[serde(default)]
    pub groups: BTreeSet<Group>,
    /// How the host verified who this is; `None` when it did not say (the caller's word, or a
    /// log written before verifications were recorded). A pipeline that
    /// [requires verified people](crate::PipelineBuilder::require_verified) refuses a person's
    /// command without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verification>,
}

/// How a host established who a principal is, recorded with every decision the principal
/// makes. Each names the digest of the organisation's roster that gave the principal its
/// groups (`promotion-identity`'s `Roster::digest`), so an auditor can tell which roster
/// version vouched for them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verification {
    /// Looked up in the roster by a host that authenticated the person itself (SSO, a shell
    /// on a trusted machine): the id is the host's word, the groups are the roster's.
    Roster {
        /// The roster's digest.
        roster: Digest,
    },
    /// An SSH signature (SSHSIG, `ssh-keygen -Y sign`) over the decision's statement, made by
    /// a key the roster lists for this person.
    SshSignature {
        /// The roster's digest.
        roster: Digest,
        /// The SSHSIG namespace (`promotion`).
        namespace: String,
        /// The armored signature (`-----BEGIN SSH SIGNATURE-----`…).
        signature: String,
        /// The exact bytes signed (`promotion-identity`'s canonical decision `Statement`, JSON
        /// text), kept so that an auditor can check the signature with `ssh-keygen -Y verify`
        /// from the log alone. Empty (and not serialised) when the host kept it elsewhere.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        statement: String,
    },
    /// An OIDC ID token verified against its issuer's keys and mapped to this principal by
    /// the roster's claim rules (a CI system's workload identity).
    Oidc {
        /// The roster's digest.
        roster: Digest,
        /// The token's issuer.
        issuer: String,
        /// The token's subject.
        subject: String,
    },
}

impl Verification {
    /// The method in a word or two, for status lines (`roster`, `SSH-signed`, `OIDC`).
    pub fn method(&self) -> &'static str {
        match self {
            Verification::Roster { .. } => "roster",
            Verification::SshSignature { .. } => "SSH-signed",
            Verification::Oidc { .. } => "OIDC",
        }
    }
    /// The kind of verification, without its particulars: what a pipeline's
    /// [accepted verifications](crate::AcceptedVerifications) name.
    pub fn kind(&self) -> crate::VerificationKind {
        match self {
            Verification::Roster { .. } => crate::VerificationKind::Roster,
            Verification::SshSignature { .. } => crate::VerificationKind::SshSignature,
            Verification::Oidc { .. } => crate::VerificationKind::Oidc,
        }
    }
    /// The digest of the roster that vouched for the principal.
    pub fn roster(&self) -> &Digest {
        match self {
            Verification::Roster { roster }
            | Verification::SshSignature { roster, .. }
            | Verification::Oidc { roster, .. } => roster,
        }
    }
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
            verified: None,
        })
    }

    /// The same principal, verified by `how`.
    pub fn verified_by(mut self, how: Verification) -> Self {
        self.verified = Some(how);
        self
    }

    /// Whether the principal is a member of `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.contains(group)
    }
}
