//! The fold over a release's events, as typed projections: one small struct per concern
//! (gate verdicts, approvals, overrides, production deployments), each with a method per
//! event kind it reads.
//!
//! [`PipelineFacts::apply`] dispatches on [`EventBody::event_kind`] with an exhaustive `match`
//! and no catch-all arm: a new event kind does not compile until it is either handed to a
//! projection here or listed among the kinds the report does not count. Each projection then
//! takes its event's fields with `let … else`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use promotion_core::{Event, EventBody, EventKind, Outcome, PhaseId, ReleaseId};

use super::model::{ApprovalEntry, GateStats, GateVerdict, OverrideEntry, ReleaseRow};
use super::{outcome_label, phase_label, seconds, Period, ReportOptions};

/// The release whose events are being applied, and the period they count in.
pub(super) struct Scope<'a> {
    pub(super) period: Period,
    pub(super) options: &'a ReportOptions,
    pub(super) release: ReleaseId,
    pub(super) name: &'a str,
    pub(super) committed: DateTime<Utc>,
}

impl Scope<'_> {
    fn inside(&self, event: &Event) -> bool {
        self.period.contains(event.at)
    }
    fn is_production(&self, stage: &str) -> bool {
        self.options.production_stages.contains(stage)
    }
}

/// (stage, phase, gate): what gate statistics and latest verdicts are kept by.
type GateKey = (String, String, String);

/// Everything the events of one pipeline's releases say, before the period's arithmetic
/// ([`finish`](super::finish::finish)).
#[derive(Default)]
pub(super) struct PipelineFacts {
    /// Pipeline versions releases were registered or decided under.
    pub(super) versions: BTreeSet<String>,
    /// Each stage's earliest position in a release's events: the order stages are shown in.
    pub(super) stage_rank: BTreeMap<String, usize>,
    /// Each release with its registration time, for the release table.
    pub(super) releases: Vec<(DateTime<Utc>, ReleaseRow)>,
    pub(super) gates: GateProjection,
    pub(super) approvals: ApprovalProjection,
    pub(super) overrides: OverrideProjection,
    pub(super) production: ProductionProjection,
}

impl PipelineFacts {
    /// Starts a release: per-release state of the projections begins empty.
    pub(super) fn begin_release(&mut self, pipeline_version: &str) {
        self.versions.insert(pipeline_version.to_owned());
        self.approvals.open.clear();
        self.overrides.by_stage.clear();
        self.production.open.clear();
    }

    /// Applies the event at `position` in its release's stream.
    pub(super) fn apply(&mut self, scope: &Scope<'_>, position: usize, event: &Event) {
        if let Some(stage) = event.body.stage() {
            let rank = self.stage_rank.entry(stage.to_string()).or_insert(position);
            *rank = (*rank).min(position);
        }
        match event.body.event_kind() {
            // Read before the fold: it names the release and its pipeline.
            EventKind::Registered => {}
            EventKind::PipelineVersionAdopted => {
                if let EventBody::PipelineVersionAdopted { to, .. } = &event.body {
                    self.versions.insert(to.clone());
                }
            }
            EventKind::GateEvaluated => self.gates.evaluated(scope, event),
            EventKind::GateOverridden => {
                self.gates.overridden(scope, event);
                self.overrides.overridden(scope, event);
            }
            EventKind::ApprovalRequested => self.approvals.requested(event),
            EventKind::ApprovalGiven => self.approvals.given(scope, event),
            EventKind::ApprovalRejected => self.approvals.rejected(scope, event),
            EventKind::StageScheduled | EventKind::StageAborted => {
                self.approvals.closed(scope, event);
            }
            EventKind::StepDeployed => self.production.deployed(scope, event),
            EventKind::DeploymentFailed => self.production.deployment_failed(scope, event),
            EventKind::PhaseFailed => self.production.phase_failed(scope, event),
            EventKind::RollbackStarted => self.production.rollback_started(scope, event),
            EventKind::StagePromoted => self.production.promoted(scope, event),
            // Progress within a stage that no figure of the report counts: a deployment is
            // dated by its first step outcome, a failure by the events above, and a judged gate
            // shows in the stage's status.
            EventKind::StageReady
            | EventKind::StageStarted
            | EventKind::PhaseWaiting
            | EventKind::PhasePaused
            | EventKind::PhasePassed
            | EventKind::GateJudged
            | EventKind::DeploymentStarted
            | EventKind::StepCompleted
            | EventKind::VerificationStarted
            | EventKind::SoakStarted
            | EventKind::RollbackFailed
            | EventKind::RolledBack => {}
            // Refused attempts live in the store's security stream, which has no
            // registration; `Report::from_streams` reads them from there.
            EventKind::AttemptRefused => {}
        }
    }

    /// Ends a release: what stays open is counted.
    pub(super) fn end_release(&mut self) {
        self.approvals.pending += self.approvals.open.len() as u64;
    }
}

/// Gate evaluations in the period, verdicts per day, and each gate's latest verdict.
#[derive(Default)]
pub(super) struct GateProjection {
    pub(super) stats: BTreeMap<GateKey, GateStats>,
    pub(super) latest: BTreeMap<GateKey, GateVerdict>,
    /// Per day: (pass verdicts, pass + fail + inconclusive verdicts).
    pub(super) verdicts_by_day: BTreeMap<NaiveDate, (u64, u64)>,
}

impl GateProjection {
    fn evaluated(&mut self, scope: &Scope<'_>, event: &Event) {
        let EventBody::GateEvaluated {
            stage,
            phase,
            gate,
            outcome,
            evidence_digest,
            evidence,
            ..
        } = &event.body
        else {
            return;
        };
        let key = (stage.to_string(), phase_label(*phase), gate.to_string());
        if scope.inside(event) {
            let g = self.stats.entry(key.clone()).or_insert_with(|| GateStats {
                stage: key.0.clone(),
                phase: key.1.clone(),
                gate: key.2.clone(),
                evaluations: 0,
                passed: 0,
                failed: 0,
                inconclusive: 0,
                errors: 0,
                pending: 0,
                pass_rate: None,
            });
            g.evaluations += 1;
            match outcome {
                Outcome::Pass => g.passed += 1,
                Outcome::Fail => g.failed += 1,
                Outcome::Inconclusive => g.inconclusive += 1,
                Outcome::Pending { .. } => g.pending += 1,
                Outcome::Error { .. } => g.errors += 1,
            }
            if matches!(
                outcome,
                Outcome::Pass | Outcome::Fail | Outcome::Inconclusive
            ) {
                let day = self
                    .verdicts_by_day
                    .entry(event.at.date_naive())
                    .or_default();
                day.1 += 1;
                if *outcome == Outcome::Pass {
                    day.0 += 1;
                }
            }
        }
        // Later wins; at the same instant, the larger release id (so the result does not
        // depend on the order streams are read in).
        let newer = self
            .latest
            .get(&key)
            .is_none_or(|v| (v.at, v.release) <= (event.at, scope.release));
        if newer {
            self.latest.insert(
                key.clone(),
                GateVerdict {
                    stage: key.0,
                    phase: key.1,
                    gate: key.2,
                    outcome: outcome_label(outcome).to_owned(),
                    error: match outcome {
                        Outcome::Error { message } => Some(message.clone()),
                        Outcome::Pass
                        | Outcome::Fail
                        | Outcome::Inconclusive
                        | Outcome::Pending { .. } => None,
                    },
                    summary: evidence.as_ref().map(|v| v.summary.clone()),
                    producer: evidence.as_ref().map(|v| v.producer.clone()),
                    evidence_digest: *evidence_digest,
                    attachments: evidence.as_ref().map_or(0, |v| v.attachments.len() as u64),
                    at: event.at,
                    release: scope.release,
                    release_name: scope.name.to_owned(),
                    overridden_by: None,
                },
            );
        }
    }

    /// Marks the gate's latest verdict as overridden, when it is this release's.
    fn overridden(&mut self, scope: &Scope<'_>, event: &Event) {
        let EventBody::GateOverridden {
            stage,
            phase,
            gate,
            principal,
            ..
        } = &event.body
        else {
            return;
        };
        let key = (stage.to_string(), phase_label(*phase), gate.to_string());
        if let Some(v) = self.latest.get_mut(&key) {
            if v.release == scope.release {
                v.overridden_by = Some(principal.id.to_string());
            }
        }
    }
}

/// Break-glass overrides: the ones in the period, and each stage's count for the release
/// table.
#[derive(Default)]
pub(super) struct OverrideProjection {
    pub(super) entries: Vec<OverrideEntry>,
    /// The current release's overrides per stage, at any time up to the period's end.
    pub(super) by_stage: BTreeMap<String, u64>,
}

impl OverrideProjection {
    fn overridden(&mut self, scope: &Scope<'_>, event: &Event) {
        let EventBody::GateOverridden {
            stage,
            phase,
            gate,
            principal,
            justification,
            overridden,
            self_interest,
        } = &event.body
        else {
            return;
        };
        *self.by_stage.entry(stage.to_string()).or_default() += 1;
        if scope.inside(event) {
            self.entries.push(OverrideEntry {
                release: scope.release,
                release_name: scope.name.to_owned(),
                stage: stage.to_string(),
                phase: phase_label(*phase),
                gate: gate.to_string(),
                principal: principal.id.to_string(),
                groups: principal.groups.iter().map(ToString::to_string).collect(),
                at: event.at,
                justification: justification.clone(),
                overridden: overridden.to_string(),
                self_interest: self_interest.clone(),
            });
        }
    }
}

/// Approvals and rejections in the period, and how long requests waited.
#[derive(Default)]
pub(super) struct ApprovalProjection {
    pub(super) entries: Vec<ApprovalEntry>,
    /// Seconds from a request in the period to the stage being scheduled, rejected or aborted.
    pub(super) waits: Vec<f64>,
    /// Requests still open at the period's end, all releases.
    pub(super) pending: u64,
    /// The current release's open requests: stage → when asked.
    open: BTreeMap<String, DateTime<Utc>>,
}

impl ApprovalProjection {
    fn requested(&mut self, event: &Event) {
        let EventBody::ApprovalRequested { stage, .. } = &event.body else {
            return;
        };
        self.open.entry(stage.to_string()).or_insert(event.at);
    }

    /// The stage was scheduled or aborted: its open request, if any, is answered.
    fn closed(&mut self, scope: &Scope<'_>, event: &Event) {
        let Some(stage) = event.body.stage() else {
            return;
        };
        if let Some(requested) = self.open.remove(stage.as_str()) {
            if scope.period.contains(requested) {
                self.waits.push(seconds(requested, event.at));
            }
        }
    }

    fn given(&mut self, scope: &Scope<'_>, event: &Event) {
        let EventBody::ApprovalGiven {
            stage,
            principal,
            comment,
            binding,
        } = &event.body
        else {
            return;
        };
        if scope.inside(event) {
            self.entries.push(ApprovalEntry {
                release: scope.release,
                release_name: scope.name.to_owned(),
                stage: stage.to_string(),
                decision: "approved".into(),
                principal: principal.id.to_string(),
                groups: principal.groups.iter().map(ToString::to_string).collect(),
                at: event.at,
                comment: comment.clone(),
                evidence_digest: Some(binding.evidence_digest),
                pipeline_version: Some(binding.pipeline_version.clone()),
            });
        }
    }

    /// A rejection answers the request and is listed.
    fn rejected(&mut self, scope: &Scope<'_>, event: &Event) {
        self.closed(scope, event);
        let EventBody::ApprovalRejected {
            stage,
            principal,
            comment,
        } = &event.body
        else {
            return;
        };
        if scope.inside(event) {
            self.entries.push(ApprovalEntry {
                release: scope.release,
                release_name: scope.name.to_owned(),
                stage: stage.to_string(),
                decision: "rejected".into(),
                principal: principal.id.to_string(),
                groups: principal.groups.iter().map(ToString::to_string).collect(),
                at: event.at,
                comment: comment.clone(),
                evidence_digest: None,
                pipeline_version: None,
            });
        }
    }
}

/// A promotion into a production stage.
pub(super) struct Promotion {
    pub(super) at: DateTime<Utc>,
    pub(super) stage: String,
    pub(super) release_name: String,
    /// Commit to promotion, seconds.
    pub(super) lead_seconds: f64,
}

/// A production deployment (rollout) of one release into one stage.
pub(super) struct Deployment {
    pub(super) release: ReleaseId,
    pub(super) release_name: String,
    pub(super) stage: String,
    /// Its first step outcome.
    pub(super) started: DateTime<Utc>,
    /// Its first failure: when, and what the event said.
    pub(super) failure: Option<(DateTime<Utc>, String)>,
}

/// Promotions into production stages, and production deployments with their first failure.
#[derive(Default)]
pub(super) struct ProductionProjection {
    pub(super) promotions: Vec<Promotion>,
    pub(super) deployments: Vec<Deployment>,
    /// The current release's deployment per production stage: its index in `deployments`.
    open: BTreeMap<String, usize>,
}

impl ProductionProjection {
    /// The first step outcome of a release in a production stage starts its deployment.
    fn start(&mut self, scope: &Scope<'_>, stage: &str, at: DateTime<Utc>) {
        if self.open.contains_key(stage) {
            return;
        }
        self.open.insert(stage.to_owned(), self.deployments.len());
        self.deployments.push(Deployment {
            release: scope.release,
            release_name: scope.name.to_owned(),
            stage: stage.to_owned(),
            started: at,
            failure: None,
        });
    }

    /// Records the first failure of the release's deployment into `stage`, if one started.
    fn fail(&mut self, stage: &str, at: DateTime<Utc>, what: String) {
        let Some(&i) = self.open.get(stage) else {
            return;
        };
        if let Some(d) = self.deployments.get_mut(i) {
            if d.failure.is_none() {
                d.failure = Some((at, what));
            }
        }
    }

    fn deployed(&mut self, scope: &Scope<'_>, event: &Event) {
        let EventBody::StepDeployed { stage, .. } = &event.body else {
            return;
        };
        if scope.is_production(stage.as_str()) {
            self.start(scope, stage.as_str(), event.at);
        }
    }

    fn deployment_failed(&mut self, scope: &Scope<'_>, event: &Event) {
        let EventBody::DeploymentFailed { stage, error, .. } = &event.body else {
            return;
        };
        if scope.is_production(stage.as_str()) {
            self.start(scope, stage.as_str(), event.at);
            self.fail(
                stage.as_str(),
                event.at,
                format!("deployment failed: {error}"),
            );
        }
    }

    /// A failed analysis or verification phase (a failed entry gate deploys nothing).
    fn phase_failed(&mut self, scope: &Scope<'_>, event: &Event) {
        let EventBody::PhaseFailed {
            stage,
            phase,
            reason,
            ..
        } = &event.body
        else {
            return;
        };
        if scope.is_production(stage.as_str()) && *phase != PhaseId::Entry {
            self.fail(stage.as_str(), event.at, reason.to_string());
        }
    }

    fn rollback_started(&mut self, scope: &Scope<'_>, event: &Event) {
        let EventBody::RollbackStarted { stage, reason, .. } = &event.body else {
            return;
        };
        if scope.is_production(stage.as_str()) {
            self.fail(stage.as_str(), event.at, format!("rollback: {reason}"));
        }
    }

    fn promoted(&mut self, scope: &Scope<'_>, event: &Event) {
        let EventBody::StagePromoted { stage, .. } = &event.body else {
            return;
        };
        if scope.is_production(stage.as_str()) {
            self.promotions.push(Promotion {
                at: event.at,
                stage: stage.to_string(),
                release_name: scope.name.to_owned(),
                lead_seconds: seconds(scope.committed, event.at),
            });
        }
    }
}
