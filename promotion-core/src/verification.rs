//! Which verifications a pipeline accepts, per action and per stage: "production approvals
//! and overrides need an SSH signature, the roster is enough for dev, registering needs OIDC
//! or the roster".
//!
//! A [`Principal`](crate::Principal) says how the host verified it
//! ([`Verification`](crate::Verification)); the pipeline's [`AcceptedVerifications`] say which
//! of those [kinds](VerificationKind) count for each [`ActionKind`]. A stage's rule for an
//! action replaces the pipeline's rule for that action; without either, the pipeline's
//! [`require_verified`](crate::PipelineBuilder::require_verified) decides (any kind, or none).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a principal was verified, without the particulars (roster digest, signature, token
/// subject): what a pipeline's rules name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VerificationKind {
    /// Looked up in the roster by a host that authenticated the person itself; the id is the
    /// host's word ([`Verification::Roster`](crate::Verification::Roster)).
    Roster,
    /// An SSH signature over the decision's statement by a key the roster lists for the person
    /// ([`Verification::SshSignature`](crate::Verification::SshSignature)).
    SshSignature,
    /// An OIDC ID token mapped to the principal by the roster's claim rules: a machine
    /// ([`Verification::Oidc`](crate::Verification::Oidc)).
    Oidc,
}

impl VerificationKind {
    /// Every kind, in order.
    pub const ALL: [VerificationKind; 3] = [
        VerificationKind::Roster,
        VerificationKind::SshSignature,
        VerificationKind::Oidc,
    ];

    /// The name used in TOML and messages: `roster`, `ssh_signature`, `oidc`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationKind::Roster => "roster",
            VerificationKind::SshSignature => "ssh_signature",
            VerificationKind::Oidc => "oidc",
        }
    }
}

impl fmt::Display for VerificationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`VerificationKind`] or an [`ActionKind`], with the names that are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not {what}; expected one of {expected}")]
pub struct UnknownKind {
    /// The name given.
    pub given: String,
    /// What was expected (`a verification`, `an action`).
    pub what: &'static str,
    /// The accepted names, comma-separated.
    pub expected: String,
}

impl FromStr for VerificationKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        VerificationKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind {
                given: s.to_owned(),
                what: "a verification",
                expected: names(VerificationKind::ALL.map(VerificationKind::as_str)),
            })
    }
}

/// What a principal asks of a release: the actions a pipeline can require verifications for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActionKind {
    /// Register a release (pipeline-wide only: a release is registered before any stage).
    Register,
    /// Start promotion into a manual-start stage.
    Start,
    /// Approve a stage.
    Approve,
    /// Reject a stage.
    Reject,
    /// Break glass: override a failed entry gate.
    Override,
    /// Judge an inconclusive gate.
    Judge,
    /// Abort promotion into a stage.
    Abort,
    /// Roll a stage back.
    RollBack,
}

impl ActionKind {
    /// Every action, in order.
    pub const ALL: [ActionKind; 8] = [
        ActionKind::Register,
        ActionKind::Start,
        ActionKind::Approve,
        ActionKind::Reject,
        ActionKind::Override,
        ActionKind::Judge,
        ActionKind::Abort,
        ActionKind::RollBack,
    ];

    /// The name used in TOML: `register`, `start`, `approve`, `reject`, `override`, `judge`,
    /// `abort`, `roll_back`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Register => "register",
            ActionKind::Start => "start",
            ActionKind::Approve => "approve",
            ActionKind::Reject => "reject",
            ActionKind::Override => "override",
            ActionKind::Judge => "judge",
            ActionKind::Abort => "abort",
            ActionKind::RollBack => "roll_back",
        }
    }

    /// The action in words, for refusals (`register a release`, `override a gate`).
    pub fn describe(self) -> &'static str {
        match self {
            ActionKind::Register => "register a release",
            ActionKind::Start => "start a stage",
            ActionKind::Approve => "approve",
            ActionKind::Reject => "reject",
            ActionKind::Override => "override a gate",
            ActionKind::Judge => "judge a gate",
            ActionKind::Abort => "abort",
            ActionKind::RollBack => "roll back",
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActionKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        ActionKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind {
                given: s.to_owned(),
                what: "an action",
                expected: names(ActionKind::ALL.map(ActionKind::as_str)),
            })
    }
}

fn names<const N: usize>(all: [&str; N]) -> String {
    all.iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The verifications accepted for each action that has a rule; an action without one falls
/// back (stage rule → pipeline rule → [`require_verified`](crate::PipelineBuilder::require_verified)).
///
/// ```
/// use promotion_core::{ActionKind, AcceptedVerifications, VerificationKind as V};
///
/// let prod = AcceptedVerifications::new()
///     .accept(ActionKind::Approve, [V::SshSignature])
///     .accept(ActionKind::Override, [V::SshSignature]);
/// assert!(prod.for_action(ActionKind::Approve).is_some_and(|k| k.contains(&V::SshSignature)));
/// assert_eq!(prod.for_action(ActionKind::Start), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptedVerifications {
    rules: BTreeMap<ActionKind, BTreeSet<VerificationKind>>,
}

impl AcceptedVerifications {
    /// No rules: every action falls back.
    pub fn new() -> Self {
        Self::default()
    }

    /// `action` is accepted only from a principal verified by one of `kinds`, replacing any
    /// earlier rule for it. An empty `kinds` is refused when the pipeline is built.
    pub fn accept(
        mut self,
        action: ActionKind,
        kinds: impl IntoIterator<Item = VerificationKind>,
    ) -> Self {
        self.rules.insert(action, kinds.into_iter().collect());
        self
    }

    /// The kinds accepted for `action`, when there is a rule for it.
    pub fn for_action(&self, action: ActionKind) -> Option<&BTreeSet<VerificationKind>> {
        self.rules.get(&action)
    }

    /// Every rule, by action.
    pub fn rules(&self) -> impl Iterator<Item = (ActionKind, &BTreeSet<VerificationKind>)> {
        self.rules.iter().map(|(a, k)| (*a, k))
    }

    /// Whether there is no rule at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The kinds in `set`, for messages: `ssh_signature or oidc`.
pub(crate) fn kind_list(set: &BTreeSet<VerificationKind>) -> String {
    set.iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known_ones() {
        for k in VerificationKind::ALL {
            assert_eq!(k.as_str().parse::<VerificationKind>(), Ok(k));
        }
        for a in ActionKind::ALL {
            assert_eq!(a.as_str().parse::<ActionKind>(), Ok(a));
        }
        let err = "ssh".parse::<VerificationKind>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`ssh` is not a verification; expected one of `roster`, `ssh_signature`, `oidc`"
        );
        assert!("rollback"
            .parse::<ActionKind>()
            .unwrap_err()
            .to_string()
            .contains("`roll_back`"));
    }

    #[test]
    fn a_later_rule_for_an_action_replaces_the_earlier_one() {
        let a = AcceptedVerifications::new()
            .accept(ActionKind::Approve, [VerificationKind::Roster])
            .accept(
                ActionKind::Approve,
                [VerificationKind::SshSignature, VerificationKind::Oidc],
            );
        let kinds = a.for_action(ActionKind::Approve).unwrap();
        assert_eq!(kind_list(kinds), "ssh_signature or oidc");
        assert_eq!(a.rules().count(), 1);
    }
}
