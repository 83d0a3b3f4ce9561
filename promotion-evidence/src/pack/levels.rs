//! The VSA's `verifiedLevels`: SLSA levels where the log shows they were verified, and one
//! namespaced custom value beside them.
//!
//! SLSA Verification Summary v1 says `verifiedLevels` holds the highest level verified for
//! each SLSA track, or `FAILED` when policy verification failed; custom values are allowed
//! but must not start with `SLSA_`. A pack written with [`VerifiedLevels::Slsa`] (the default)
//! therefore says:
//!
//! - a stage that did not promote (failed, rejected, aborted, rolled back): `["FAILED"]`;
//! - a promotion: [`STAGE_PROMOTED_LEVEL`], preceded by `SLSA_BUILD_LEVEL_2` when, before the
//!   decision, a gate of the release verified SLSA provenance for every artifact —
//!   `promotion-gates`' signature gate with `require_slsa_provenance`, its evidence data
//!   saying so (`require_slsa_provenance: true`, `failed: 0`, at least one verified) and its
//!   verdict a pass: provenance signed by a trusted key and made by a trusted builder is what
//!   the Build track's level 2 asks of a verifier. Level 3 is never claimed: it depends on how
//!   the builder is hardened, which the log does not record.
//!
//! Packs written before this (whose manifest's statement options do not name a style,
//! [`VerifiedLevels::Legacy`]) said `["PROMOTION_STAGE_PROMOTED"]` or `["FAILED"]`; they are
//! verified as written.

use promotion_core::{EventBody, Outcome};
use serde::{Deserialize, Serialize};

/// The custom `verifiedLevels` value of a promotion, namespaced by URI: the release passed the
/// stage's whole pipeline policy (gates, approvals, rollout, verification).
pub const STAGE_PROMOTED_LEVEL: &str =
    "https://example.invalid/promotion/evidence/level/stage-promoted/v1";
/// The SLSA level claimed when the log shows verified SLSA provenance for every artifact.
pub const SLSA_BUILD_LEVEL_2: &str = "SLSA_BUILD_LEVEL_2";
/// The `verifiedLevels` value of a promotion in packs written with
/// [`VerifiedLevels::Legacy`].
pub const LEGACY_PROMOTED_LEVEL: &str = "PROMOTION_STAGE_PROMOTED";

/// Which `verifiedLevels` a pack's decision statements say; recorded in the manifest's
/// statement options so a verifier derives the same statements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifiedLevels {
    /// SLSA levels where they apply and [`STAGE_PROMOTED_LEVEL`] beside them (see the module
    /// docs).
    #[default]
    Slsa,
    /// `PROMOTION_STAGE_PROMOTED` or `FAILED`, as packs wrote before SLSA levels: what a
    /// manifest that names no style means.
    Legacy,
}

impl VerifiedLevels {
    /// The style a manifest without the field was written with.
    pub(crate) fn legacy() -> Self {
        VerifiedLevels::Legacy
    }

    /// The values for a decision that `passed` (promoted) or not, with `provenance` whether
    /// SLSA provenance was verified for every artifact before it.
    pub(crate) fn values(self, passed: bool, provenance: bool) -> Vec<&'static str> {
        match (self, passed) {
            (_, false) => vec!["FAILED"],
            (VerifiedLevels::Legacy, true) => vec![LEGACY_PROMOTED_LEVEL],
            (VerifiedLevels::Slsa, true) if provenance => {
                vec![SLSA_BUILD_LEVEL_2, STAGE_PROMOTED_LEVEL]
            }
            (VerifiedLevels::Slsa, true) => vec![STAGE_PROMOTED_LEVEL],
        }
    }
}

/// Whether `body` is a passing gate evaluation whose evidence shows SLSA provenance verified
/// for every artifact.
pub(crate) fn verifies_provenance(body: &EventBody) -> bool {
    let EventBody::GateEvaluated {
        outcome: Outcome::Pass,
        evidence: Some(evidence),
        ..
    } = body
    else {
        return false;
    };
    let data = &evidence.data;
    data.get("require_slsa_provenance") == Some(&serde_json::Value::Bool(true))
        && data.get("failed").and_then(serde_json::Value::as_u64) == Some(0)
        && data
            .get("verified")
            .and_then(serde_json::Value::as_u64)
            .is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slsa_values_never_invent_slsa_levels() {
        for passed in [false, true] {
            for provenance in [false, true] {
                let v = VerifiedLevels::Slsa.values(passed, provenance);
                // at most one level per track, and custom values never start with SLSA_
                assert!(v.iter().filter(|l| l.starts_with("SLSA_BUILD_")).count() <= 1);
                assert!(v.iter().all(|l| l.starts_with("SLSA_BUILD_LEVEL_")
                    || *l == "FAILED"
                    || l.starts_with("https://")));
            }
        }
        assert_eq!(VerifiedLevels::Slsa.values(false, true), ["FAILED"]);
        assert_eq!(
            VerifiedLevels::Slsa.values(true, true),
            [SLSA_BUILD_LEVEL_2, STAGE_PROMOTED_LEVEL]
        );
        assert_eq!(
            VerifiedLevels::Slsa.values(true, false),
            [STAGE_PROMOTED_LEVEL]
        );
        assert_eq!(
            VerifiedLevels::Legacy.values(true, true),
            [LEGACY_PROMOTED_LEVEL]
        );
    }
}
