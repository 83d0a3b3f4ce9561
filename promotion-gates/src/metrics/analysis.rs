//! The outcome types of an analysis: how one measurement came out ([`MeasurementPhase`]), the
//! running tallies and the status they add up to ([`Assessment`]). Judging is pure: the same
//! values always give the same result.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How one measurement came out (Argo's measurement phases). Written as
/// [`as_str`](Self::as_str) gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasurementPhase {
    /// Met the success condition (or did not meet the failure condition).
    Successful,
    /// Could not be judged: no data, NaN, or neither condition met.
    Inconclusive,
    /// Met the failure condition (or did not meet the success condition).
    Failed,
}

impl MeasurementPhase {
    /// `successful`, `failed` or `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            MeasurementPhase::Successful => "successful",
            MeasurementPhase::Inconclusive => "inconclusive",
            MeasurementPhase::Failed => "failed",
        }
    }
}

/// Where an analysis stands after its measurements so far. Written as
/// [`as_str`](Self::as_str) gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisStatus {
    /// More measurements are due.
    Running,
    /// `count` measurements without passing either limit.
    Successful,
    /// More failed measurements than the failure limit.
    Failed,
    /// More inconclusive measurements than the inconclusive limit.
    Inconclusive,
}

impl AnalysisStatus {
    /// `running`, `successful`, `failed` or `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisStatus::Running => "running",
            AnalysisStatus::Successful => "successful",
            AnalysisStatus::Failed => "failed",
            AnalysisStatus::Inconclusive => "inconclusive",
        }
    }
}

/// Counts of measurements by phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tallies {
    /// Measurements counted.
    pub measured: u32,
    /// Successful ones.
    pub successful: u32,
    /// Failed ones.
    pub failed: u32,
    /// Inconclusive ones.
    pub inconclusive: u32,
}

/// The outcome of [`MetricGate::assess`](super::MetricGate::assess).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    /// Where the analysis stands.
    pub status: AnalysisStatus,
    /// The measurements counted: up to and including the one that decided.
    pub tallies: Tallies,
}

/// One value inside a measurement: which series, when, what.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reading {
    pub(super) labels: BTreeMap<String, String>,
    pub(super) at: DateTime<Utc>,
    pub(super) value: f64,
}

/// The judgement of one measurement and the reading that decided it, if one did.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Judged {
    pub(super) phase: MeasurementPhase,
    pub(super) reason: String,
    pub(super) decisive: Option<usize>,
}
