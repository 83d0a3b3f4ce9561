//! Re-verifying the signed decisions a log holds, long after they were made.
//!
//! A decision made with an SSH signature is recorded with its principal's
//! [`Verification::SshSignature`]: the roster's digest, the namespace, the armored signature
//! and the exact statement signed. A [`Reverifier`] holds the rosters a log's decisions were
//! made under, by digest, and checks every signed decision of a release's events again, as an
//! auditor would:
//!
//! 1. the decision was made under a roster the reverifier holds (by digest): one it does not
//!    hold is [`Problem::UnknownRoster`], never a pass — add that roster (the roster file at
//!    the time, `git show <commit>:roster.toml`, hashes to the digest) to check it;
//! 2. the statement is canonical and says what the log entry says, re-derived from the entry
//!    and the events before it: the release (the stream's), the stage, the decision (with the
//!    gate and the verdict), the comment or justification, the roster digest, the evidence
//!    digest — the approval's binding for an approval, the stage's entry evidence as the events
//!    before the entry leave it otherwise, which is what the signer's tool showed them — and
//!    the pipeline version in force;
//! 3. the namespace is the reverifier's, the SSHSIG verifies over the statement's bytes under a
//!    key that roster lists, and that key is the recorded principal's;
//! 4. the groups recorded with the principal are the roster's for that person.
//!
//! The statement's `time` is the signer's clock and is not compared with the entry's, whose
//! clock is the engine's (a host may run a simulated one).
//!
//! A refused attempt in the security stream ([`EventBody::AttemptRefused`]) that was signed is
//! checked for 1, 3, 4 and its release and stage; the state it was refused in is not at hand.
//!
//! # Replay
//!
//! The engine does not re-verify signatures when it folds a stream: `promotion-core` knows no
//! roster or SSH, and the rules that admitted a decision were checked when it was made. What
//! "re-verified on replay" means here is that whoever replays a log to trust it runs this pass
//! over the events it replayed — `promote log verify` does for every release (and `promote
//! evidence verify` for a pack), and a host calls [`Reverifier::stream`] on the events it
//! reads back before acting on them.
//!
//! ```
//! use promotion_identity::{Reverifier, Roster, DEFAULT_NAMESPACE};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let roster = Roster::parse(b"[[people]]\nid = \"alice\"\ngroups = [\"sre\"]\n", "roster.toml")?;
//! let reverifier = Reverifier::new(DEFAULT_NAMESPACE)?.with_roster(roster);
//! let release = format!("sha256:{}", "ab".repeat(32)).parse()?;
//! // No events, nothing signed: a clean report.
//! let report = reverifier.stream(&release, std::iter::empty());
//! assert_eq!(report.signed, 0);
//! assert!(report.failures.is_empty());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use promotion_core::{
    Digest, Event, EventBody, Principal, PrincipalId, ReleaseId, ReleaseState, StageName,
    Verification,
};

use crate::sshsig::check_namespace;
use crate::{Decision, Roster, SignatureError, Statement};

/// The rosters signed decisions are checked against, by digest, and the namespace signatures
/// must be made for.
#[derive(Debug, Clone)]
pub struct Reverifier {
    rosters: BTreeMap<Digest, Roster>,
    namespace: String,
}

/// Why one signed decision does not re-verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The decision was signed under a roster the reverifier does not hold.
    #[error(
        "signed under roster {digest}, which was not given (known: {known}); pass that roster \
         file as it was then (its sha256 is the digest) to check this signature"
    )]
    UnknownRoster {
        /// The roster digest the entry records.
        digest: Digest,
        /// The digests the reverifier holds, comma-separated.
        known: String,
    },
    /// The entry records a signature but not the statement signed.
    #[error("the entry records a signature but not the statement it signs")]
    NoStatement,
    /// The recorded statement is not a canonical decision statement.
    #[error("the signed statement is not valid: {0}")]
    Statement(String),
    /// The statement says something other than the log entry.
    #[error("the signed statement's {field} is {signed}, the log entry's is {recorded}")]
    Mismatch {
        /// The statement field that differs.
        field: &'static str,
        /// What the signed statement says.
        signed: String,
        /// What the log entry (or the state before it) says.
        recorded: String,
    },
    /// The signature does not verify (malformed, another namespace, a key the roster does not
    /// list, or not over these bytes).
    #[error("{0}")]
    Signature(SignatureError),
    /// The key that signed is in the roster, but is another person's.
    #[error("signed with {signer}'s key, recorded as {recorded}")]
    WrongSigner {
        /// Whose key it is in the roster.
        signer: PrincipalId,
        /// Who the entry says decided.
        recorded: PrincipalId,
    },
    /// The groups recorded with the principal are not the roster's.
    #[error("the entry records groups [{recorded}] for {id}, the roster gives [{roster}]")]
    Groups {
        #[allow(missing_docs)]
        id: PrincipalId,
        /// The recorded groups, comma-separated.
        recorded: String,
        /// The roster's groups, comma-separated.
        roster: String,
    },
    /// A signed decision in a stream that registers no release.
    #[error("a signed decision in a stream that registers no release")]
    NotARelease,
    /// A signed principal on an entry kind whose decision this verifier cannot re-derive.
    #[error("a signed principal on a `{0}` entry, whose decision cannot be re-derived")]
    UnknownDecision(&'static str),
}

/// One signed decision that failed, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Where the caller says the entry is (the audit log's sequence number, or the stream
    /// version).
    pub position: u64,
    /// The release (`None` for a stream that registers none).
    pub release: Option<ReleaseId>,
    /// The stage the entry is about, when it names one.
    pub stage: Option<StageName>,
    /// The entry's kind (`approval_given`).
    pub kind: &'static str,
    /// Who the entry says decided.
    pub principal: PrincipalId,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {}: ", self.position)?;
        match &self.release {
            Some(r) => write!(f, "release {}", r.short())?,
            None => f.write_str("no release")?,
        }
        if let Some(stage) = &self.stage {
            write!(f, ", stage {stage}")?;
        }
        write!(
            f,
            ", {} by {}: {}",
            self.kind,
            promotion_core::text::escape(self.principal.as_str()),
            self.problem
        )
    }
}

/// What re-verifying some events found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Signed decisions looked at.
    pub signed: usize,
    /// Those that did not re-verify, in event order.
    pub failures: Vec<Failure>,
}

impl Report {
    /// Adds another report's counts and failures to this one.
    pub fn merge(&mut self, other: Report) {
        self.signed += other.signed;
        self.failures.extend(other.failures);
    }
}

impl Reverifier {
    /// A reverifier for signatures made for `namespace` ([`DEFAULT_NAMESPACE`]), holding no
    /// roster yet.
    ///
    /// [`DEFAULT_NAMESPACE`]: crate::DEFAULT_NAMESPACE
    pub fn new(namespace: &str) -> Result<Self, SignatureError> {
        check_namespace(namespace)?;
        Ok(Reverifier {
            rosters: BTreeMap::new(),
            namespace: namespace.to_owned(),
        })
    }

    /// Also holds `roster` (kept once per digest).
    pub fn with_roster(mut self, roster: Roster) -> Self {
        self.add(roster);
        self
    }

    /// Holds `roster` too; returns its digest.
    pub fn add(&mut self, roster: Roster) -> Digest {
        let digest = roster.digest();
        self.rosters.entry(digest).or_insert(roster);
        digest
    }

    /// The roster with this digest, if held.
    pub fn roster(&self, digest: &Digest) -> Option<&Roster> {
        self.rosters.get(digest)
    }

    /// The digests of the rosters held, in order.
    pub fn digests(&self) -> impl Iterator<Item = &Digest> {
        self.rosters.keys()
    }

    /// The namespace signatures must be made for.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Re-verifies every signed decision among one release's `events`, in stream order, each
    /// with the position the caller gives it (used in [`Failure`]s). The events are folded as
    /// they go, so each decision is compared with the state it was made in.
    pub fn stream<'a>(
        &self,
        release: &ReleaseId,
        events: impl IntoIterator<Item = (u64, &'a Event)>,
    ) -> Report {
        let mut report = Report::default();
        let mut replay = Replay::of(*release);
        for (position, event) in events {
            if let Some(checked) = replay.next(self, position, event) {
                report.signed += 1;
                if let Err(f) = checked {
                    report.failures.push(*f);
                }
            }
        }
        report
    }

    /// Re-verifies a refused attempt of the security stream ([`EventBody::AttemptRefused`])
    /// that was signed, at the position the caller gives it: `None` for any other entry, or an
    /// unsigned attempt.
    pub fn refused_attempt(
        &self,
        position: u64,
        event: &Event,
    ) -> Option<Result<(), Box<Failure>>> {
        let EventBody::AttemptRefused { release, .. } = &event.body else {
            return None;
        };
        let (principal, signed) = signed_by(event)?;
        Some(
            self.check(release, None, event, principal, signed)
                .map_err(|problem| {
                    Box::new(failure(position, Some(*release), event, principal, problem))
                }),
        )
    }

    fn check(
        &self,
        release: &ReleaseId,
        state: Option<&ReleaseState>,
        event: &Event,
        principal: &Principal,
        signed: Signed<'_>,
    ) -> Result<(), Problem> {
        let roster = self
            .rosters
            .get(signed.roster)
            .ok_or_else(|| Problem::UnknownRoster {
                digest: *signed.roster,
                known: self
                    .rosters
                    .keys()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        if signed.statement.is_empty() {
            return Err(Problem::NoStatement);
        }
        let st = Statement::from_bytes(signed.statement.as_bytes())
            .map_err(|e| Problem::Statement(e.to_string()))?;
        same("release", &st.release, release)?;
        same("roster", &st.roster, signed.roster)?;
        match (&event.body, state) {
            (EventBody::AttemptRefused { stage, .. }, _) => same("stage", &st.stage, stage)?,
            (_, Some(state)) => derive(&st, event, state)?,
            (body, None) => return Err(Problem::UnknownDecision(body.kind())),
        }
        if signed.namespace != self.namespace {
            return Err(Problem::Signature(SignatureError::WrongNamespace {
                expected: self.namespace.clone(),
                found: signed.namespace.to_owned(),
            }));
        }
        let signer = roster
            .verify_signed(
                signed.statement.as_bytes(),
                signed.signature,
                &self.namespace,
            )
            .map_err(Problem::Signature)?;
        if signer.id != principal.id {
            return Err(Problem::WrongSigner {
                signer: signer.id,
                recorded: principal.id.clone(),
            });
        }
        if signer.groups != principal.groups {
            let list = |p: &Principal| {
                p.groups
                    .iter()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(Problem::Groups {
                id: principal.id.clone(),
                recorded: list(principal),
                roster: list(&signer),
            });
        }
        Ok(())
    }
}

/// One stream being re-verified event by event, for a caller that reads a whole log whose
/// streams interleave (`promote log verify`): keep one per stream and feed it the stream's
/// events in order. It holds the stream's folded state, not its events.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    release: Option<ReleaseId>,
    state: ReleaseState,
}

impl Replay {
    /// A replay of `release`'s stream, from its first event.
    pub fn of(release: ReleaseId) -> Self {
        Replay {
            release: Some(release),
            state: ReleaseState::default(),
        }
    }

    /// Folds `event` (at `position`) into the stream's state after re-verifying it: `None`
    /// when it records no SSH-signed decision. The release is the one given to [`of`](Self::of),
    /// or, for a replay made with `default()`, the one the stream's registration names; a
    /// signed decision in a stream that registers no release fails.
    pub fn next(
        &mut self,
        reverifier: &Reverifier,
        position: u64,
        event: &Event,
    ) -> Option<Result<(), Box<Failure>>> {
        if let EventBody::Registered { release, .. } = &event.body {
            self.release.get_or_insert_with(|| release.id());
        }
        let checked = signed_by(event).map(|(principal, signed)| {
            let Some(release) = self.release else {
                return Err(Box::new(failure(
                    position,
                    None,
                    event,
                    principal,
                    Problem::NotARelease,
                )));
            };
            reverifier
                .check(&release, Some(&self.state), event, principal, signed)
                .map_err(|problem| {
                    Box::new(failure(position, Some(release), event, principal, problem))
                })
        });
        promotion_core::machine::apply_mut(&mut self.state, event);
        checked
    }
}

/// The parts of a recorded SSH signature.
struct Signed<'a> {
    roster: &'a Digest,
    namespace: &'a str,
    signature: &'a str,
    statement: &'a str,
}

/// The principal of an entry that records an SSH-signed decision, with its signature.
fn signed_by(event: &Event) -> Option<(&Principal, Signed<'_>)> {
    let principal = match &event.body {
        EventBody::AttemptRefused { principal, .. }
        | EventBody::Registered {
            initiator: principal,
            ..
        } => principal,
        body => body.decided_by()?,
    };
    match &principal.verified {
        Some(Verification::SshSignature {
            roster,
            namespace,
            signature,
            statement,
        }) => Some((
            principal,
            Signed {
                roster,
                namespace,
                signature,
                statement,
            },
        )),
        _ => None,
    }
}

fn failure(
    position: u64,
    release: Option<ReleaseId>,
    event: &Event,
    principal: &Principal,
    problem: Problem,
) -> Failure {
    Failure {
        position,
        release,
        stage: event.body.stage().cloned(),
        kind: event.body.kind(),
        principal: principal.id.clone(),
        problem,
    }
}

fn same<T: PartialEq + fmt::Display + ?Sized>(
    field: &'static str,
    signed: &T,
    recorded: &T,
) -> Result<(), Problem> {
    if signed == recorded {
        Ok(())
    } else {
        Err(Problem::Mismatch {
            field,
            signed: signed.to_string(),
            recorded: recorded.to_string(),
        })
    }
}

/// Compares the statement with the decision re-derived from `event` and the `state` before it.
fn derive(st: &Statement, event: &Event, state: &ReleaseState) -> Result<(), Problem> {
    let (stage, decision, comment) = match &event.body {
        EventBody::ApprovalGiven {
            stage,
            comment,
            binding,
            ..
        } => {
            same("evidence", &st.evidence, &binding.evidence_digest)?;
            same(
                "pipeline version",
                st.pipeline_version.as_str(),
                binding.pipeline_version.as_str(),
            )?;
            (stage, Decision::Approve, comment)
        }
        EventBody::ApprovalRejected { stage, comment, .. } => (stage, Decision::Reject, comment),
        EventBody::GateOverridden {
            stage,
            gate,
            justification,
            ..
        } => (
            stage,
            Decision::Override { gate: gate.clone() },
            justification,
        ),
        EventBody::GateJudged {
            stage,
            gate,
            pass,
            comment,
            ..
        } => (
            stage,
            Decision::Judge {
                gate: gate.clone(),
                pass: *pass,
            },
            comment,
        ),
        EventBody::StageAborted { stage, reason, .. } => (stage, Decision::Abort, reason),
        body => return Err(Problem::UnknownDecision(body.kind())),
    };
    same("stage", &st.stage, stage)?;
    if st.decision != decision {
        return Err(Problem::Mismatch {
            field: "decision",
            signed: format!("{:?}", st.decision),
            recorded: format!("{decision:?}"),
        });
    }
    if st.comment != *comment {
        return Err(Problem::Mismatch {
            field: "comment",
            signed: format!("{:?}", promotion_core::text::escape(&st.comment)),
            recorded: format!("{:?}", promotion_core::text::escape(comment)),
        });
    }
    same(
        "evidence",
        &st.evidence,
        &state.stage(stage.as_str()).entry_digest(),
    )?;
    same(
        "pipeline version",
        st.pipeline_version.as_str(),
        state.pipeline_version(),
    )?;
    Ok(())
}
