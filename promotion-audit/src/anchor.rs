//! Outside anchors for [`verify`](crate::verify::verify_anchored): a trusted checkpoint saved
//! earlier and witness cosignatures, opened and checked before the streaming pass (which then
//! compares the trusted root with the one it computes at that size).

use crate::backend::Backend;
use crate::checkpoint::{Checkpoint, CheckpointVerifier};
use crate::cosign::{cosignatures, CosignatureVerifier};
use crate::error::AuditError;

/// Outside anchors against rollback and forks: what the verifier kept from earlier, and what
/// witnesses cosigned, neither of which the log itself can rewrite.
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    /// A signed checkpoint note saved earlier (from `promote log checkpoint`, or a witness's
    /// cosigned copy). It must be signed by the trusted key, name the origin of the log's
    /// checkpoints, and the log must extend it: hold at least its size of entries (else
    /// [`AuditError::RolledBack`]) whose tree at that size has its root (else
    /// [`AuditError::Forked`]).
    pub trusted_checkpoint: Option<String>,
    /// Witnesses whose `cosignature/v1` cosignatures count ([`crate::cosign`]).
    pub witnesses: Vec<CosignatureVerifier>,
    /// How many of `witnesses` must have cosigned the trusted checkpoint (or, without one, the
    /// latest stored checkpoint), else [`AuditError::Anchor`]: a witness cosigns only a
    /// checkpoint consistent with every one it saw before, so a log that shows the witnesses
    /// one history and the verifier another is caught.
    pub min_witnesses: usize,
    /// With a trusted key, an empty log without a checkpoint verifies only when this is set
    /// (a log just created): otherwise it is refused, as a log whose entries and checkpoints
    /// were all deleted looks exactly the same. Without a trusted key it changes nothing.
    pub expect_empty: bool,
}

/// Opens the trusted checkpoint (signed by `verifier`) and counts the witness cosignatures
/// `anchors` requires; returns the trusted checkpoint for the pass to compare, and how many of
/// the witnesses cosigned.
pub(crate) fn open(
    backend: &dyn Backend,
    verifier: Option<&CheckpointVerifier>,
    anchors: &Anchors,
) -> Result<(Option<Checkpoint>, usize), AuditError> {
    let anchor = match &anchors.trusted_checkpoint {
        None => None,
        Some(note) => {
            let v = verifier.ok_or_else(|| {
                AuditError::InvalidRequest(
                    "a trusted checkpoint is checked against a trusted key, and none was given"
                        .into(),
                )
            })?;
            Some(v.verify(note).map_err(AuditError::TrustedCheckpoint)?)
        }
    };
    let mut cosigned = 0;
    if anchors.min_witnesses > 0 || !anchors.witnesses.is_empty() {
        let note = match &anchors.trusted_checkpoint {
            Some(note) => Some(note.clone()),
            None => backend.latest_checkpoint()?.map(|(_, n)| n),
        };
        let which = if anchors.trusted_checkpoint.is_some() {
            "the trusted checkpoint"
        } else {
            "the latest checkpoint"
        };
        let (valid, missing) = note
            .as_deref()
            .map(|n| cosignatures(n, &anchors.witnesses))
            .unwrap_or((0, vec!["there is no checkpoint to cosign".into()]));
        cosigned = valid;
        if valid < anchors.min_witnesses {
            return Err(AuditError::Anchor(format!(
                "{which} carries {valid} valid witness cosignatures, {} required ({})",
                anchors.min_witnesses,
                missing.join("; ")
            )));
        }
    }
    Ok((anchor, cosigned))
}
