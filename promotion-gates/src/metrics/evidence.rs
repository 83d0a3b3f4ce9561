//! The metric gate's evidence data ([`Evidence::data`](promotion_core::Evidence::data)) as
//! typed structs: one per shape the gate writes, read back with
//! `serde_json::from_value::<MetricEvidence>(evidence.data)`.
//!
//! The bytes are part of the audit log (evidence is digested over its canonical JSON), so they
//! are fixed: finite numbers are JSON numbers and the rest Prometheus' spelling as strings
//! ([`MetricValue`]); instants are RFC 3339 in UTC with as many fractional digits as needed
//! (`2026-11-26T09:00:00Z`, `…:01.500Z`); an unset condition or a measurement without a
//! decisive reading is `null`, never left out. `promotion-gates/tests/metric_evidence.rs` pins
//! the text of every shape.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{fmt_num, AnalysisStatus, Condition, MeasurementPhase};

/// The data of any evidence the metric gate writes; which shape it is follows from its fields
/// (the JSON carries no tag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetricEvidence {
    /// The consecutive-error limit was passed: the fail verdict's evidence.
    Error(ErrorEvidence),
    /// At least one measurement was due and taken.
    Measured(MeasuredEvidence),
    /// Still in the initial delay: nothing was measured yet.
    Waiting(WaitingEvidence),
}

/// Evidence of an evaluation that measured: every due measurement, the tallies and the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasuredEvidence {
    /// The gate's settings.
    pub config: MetricSettings,
    /// When the phase started, as recorded by the engine: the schedule counts from it.
    #[serde(with = "instant")]
    pub phase_started_at: DateTime<Utc>,
    /// The first scheduled measurement: the phase start plus the initial delay.
    #[serde(with = "instant")]
    pub first_measurement_at: DateTime<Utc>,
    /// The request's URL, query string included.
    pub request: String,
    /// Which Prometheus API answered.
    pub endpoint: Endpoint,
    /// Prometheus' `resultType` (`vector`, `matrix`, `scalar`).
    pub result_type: String,
    /// Prometheus' warnings, as given.
    pub warnings: Vec<String>,
    /// The measurements counted, in schedule order: up to and including the one that decided.
    pub measurements: Vec<MeasurementRecord>,
    /// The counts of those measurements by phase.
    pub tallies: EvidenceTallies,
    /// Where the analysis stands.
    pub status: AnalysisStatus,
    /// The next scheduled measurement; only while the analysis is running.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_instant"
    )]
    pub next_measurement_at: Option<DateTime<Utc>>,
}

/// Evidence of an evaluation during the initial delay, before the first measurement is due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitingEvidence {
    /// The gate's settings.
    pub config: MetricSettings,
    /// When the phase started, as recorded by the engine.
    #[serde(with = "instant")]
    pub phase_started_at: DateTime<Utc>,
    /// The first scheduled measurement.
    #[serde(with = "instant")]
    pub first_measurement_at: DateTime<Utc>,
    /// When the gate measures next: the first measurement.
    #[serde(with = "instant")]
    pub next_measurement_at: DateTime<Utc>,
    /// Always empty here; present so that every evidence with a status lists its measurements.
    pub measurements: Vec<MeasurementRecord>,
    /// Always [`AnalysisStatus::Running`].
    pub status: AnalysisStatus,
}

/// Evidence of the fail verdict given when an error made more errors in a row than the gate's
/// `consecutive_error_limit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorEvidence {
    /// The gate's settings.
    pub config: MetricSettings,
    /// Always `error`.
    pub status: ErrorStatus,
    /// The last error, with its causes.
    pub error: String,
    /// Errors in a row, this one included.
    pub consecutive_errors: u32,
}

/// The `status` of [`ErrorEvidence`]: the text `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorStatus {
    /// `error`
    Error,
}

/// The Prometheus API endpoint an evaluation used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `/api/v1/query`: one instant measurement.
    Query,
    /// `/api/v1/query_range`: several instants, or windows of points.
    QueryRange,
}

/// The gate's settings, as evidence records them (durations in seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // the fields are the builder's settings, named as in the builder
pub struct MetricSettings {
    /// The Prometheus base URL.
    pub prometheus: String,
    pub query: String,
    pub mode: ModeSettings,
    pub success_condition: Option<Condition>,
    pub failure_condition: Option<Condition>,
    pub initial_delay_seconds: f64,
    pub interval_seconds: f64,
    pub count: u32,
    pub failure_limit: u32,
    pub inconclusive_limit: u32,
    pub consecutive_error_limit: u32,
}

/// [`QueryMode`](super::QueryMode) as evidence records it: `{"instant":{}}` or
/// `{"range":{"window_seconds":…,"step_seconds":…}}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ModeSettings {
    /// The query's instant value.
    Instant {},
    /// Every point of the window before the instant, `step` apart.
    Range {
        /// The window, in seconds.
        window_seconds: f64,
        /// The step between points, in seconds.
        step_seconds: f64,
    },
}

/// One measurement: when, how it came out, why, and the values it judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasurementRecord {
    /// Its position in the schedule, from 1.
    pub index: u32,
    /// Its scheduled instant.
    #[serde(with = "instant")]
    pub at: DateTime<Utc>,
    /// How it came out.
    pub phase: MeasurementPhase,
    /// Why, in words naming the value, the series and the condition.
    pub reason: String,
    /// The values judged.
    pub values: MeasurementValues,
    /// The value that made it fail or inconclusive; `null` when successful or without data.
    pub decisive: Option<DecisiveReading>,
}

/// The values of one measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MeasurementValues {
    /// An instant measurement: one value per series. An empty list (no data) reads back as
    /// this variant in either mode; it is written the same.
    Instant(Vec<SeriesValue>),
    /// A range measurement: per series, a summary of the window's points.
    Range(Vec<SeriesSummary>),
}

/// One series' value in an instant measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesValue {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: MetricValue,
}

/// One series' points in a range measurement's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesSummary {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// How many points fell in the window.
    pub points: usize,
    /// How many of them were NaN.
    pub nan_points: usize,
    /// The smallest value that is not NaN; `null` when every point is NaN.
    pub min: Option<MetricValue>,
    /// The largest value that is not NaN; `null` when every point is NaN.
    pub max: Option<MetricValue>,
}

/// The reading that decided a measurement: which series, when, what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisiveReading {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// The point's time (the measurement's instant, or a point inside its window).
    #[serde(with = "instant")]
    pub at: DateTime<Utc>,
    /// The value.
    pub value: MetricValue,
}

/// The measurements counted, by phase; `consecutive_errors` is 0 whenever Prometheus answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // the fields are counts of what they are named after
pub struct EvidenceTallies {
    pub measured: u32,
    pub successful: u32,
    pub failed: u32,
    pub inconclusive: u32,
    pub consecutive_errors: u32,
}

/// A measured value: a JSON number when finite, otherwise the string Prometheus writes
/// (`NaN`, `+Inf`, `-Inf`), since JSON has no such numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricValue(pub f64);

impl Serialize for MetricValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_finite() {
            s.serialize_f64(self.0)
        } else {
            s.serialize_str(&fmt_num(self.0))
        }
    }
}

impl<'de> Deserialize<'de> for MetricValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MetricValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, or one of \"NaN\", \"+Inf\", \"-Inf\"")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<MetricValue, E> {
                Ok(MetricValue(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<MetricValue, E> {
                Ok(MetricValue(v as f64))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<MetricValue, E> {
                Ok(MetricValue(v as f64))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MetricValue, E> {
                match v {
                    "NaN" => Ok(MetricValue(f64::NAN)),
                    "+Inf" => Ok(MetricValue(f64::INFINITY)),
                    "-Inf" => Ok(MetricValue(f64::NEG_INFINITY)),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Condition {
    /// As text: `result < 0.01`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Condition {
    /// From text, as [`str::parse`] reads it.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Instants as the evidence writes them: RFC 3339, UTC, `Z`, fractional digits as needed.
mod instant {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::super::rfc3339(*at))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time: {e}")))
    }
}

/// [`instant`] for an optional field (left out when `None`).
mod optional_instant {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::instant::serialize(at, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::instant")] DateTime<Utc>);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}
