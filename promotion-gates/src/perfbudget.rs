//! The performance-budget gate: benchmark figures from a results file (flat JSON or
//! criterion's `estimates.json`) against absolute budgets and against a baseline run, with a
//! regression threshold per figure.
//!
//! A figure missing from a file, a file of the wrong shape or a malformed number is a
//! [`GateError::InvalidInput`] naming the file and the line; a figure over its budget or
//! regressed past its threshold fails the gate, naming the figure and both values.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use promotion_core::{Evidence, Gate, GateContext, GateError, GateKind, Verdict};

use crate::input::invalid_input;

use crate::testreport::{fmt_num, read_input, ConfigError};

// Performance budget gate
// ------------------------------------------------------------------------------------------

/// Which way a figure should move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Latency, memory, error rate: an increase is a regression.
    LowerIsBetter,
    /// Throughput: a decrease is a regression.
    HigherIsBetter,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct FigureRule {
    max: Option<f64>,
    min: Option<f64>,
    regression: Option<(f64, Direction)>,
}

/// Passes when benchmark figures are within their budgets and have not regressed too far
/// from a baseline.
///
/// Reads one result file in either of two shapes, detected from the content:
/// - criterion's `target/criterion/<bench>/new/estimates.json`: the figures are the
///   `point_estimate`s of `mean`, `median`, `median_abs_dev`, `slope` (absent when criterion
///   wrote `null`) and `std_dev`, in nanoseconds;
/// - a flat JSON object of named numbers: `{"p99_ms": 41.2, "throughput_rps": 1200}`.
///
/// Each checked figure may have a maximum, a minimum, and a maximum regression in percent
/// against the same figure in a baseline file of the same shape, with a [`Direction`]. A
/// checked figure missing from a file is an [`InvalidInput`](GateError::InvalidInput) error
/// naming the file and the figure.
///
/// Evidence: each checked figure with its value, budget, baseline, change in percent and what
/// failed; every figure read; the digests of both files. Fact: `perf_failed` (the number of
/// figures that failed).
///
/// ```
/// use promotion_gates::testreport::{Direction, PerfBudgetGate};
/// use promotion_core::testing::GateProbe;
/// use promotion_core::Verdict;
///
/// let dir = tempfile::tempdir()?;
/// let results = dir.path().join("load.json");
/// let baseline = dir.path().join("load-baseline.json");
/// std::fs::write(&results, r#"{"p99_ms": 41.2, "throughput_rps": 1200}"#)?;
/// std::fs::write(&baseline, r#"{"p99_ms": 38.0, "throughput_rps": 1250}"#)?;
///
/// let gate = PerfBudgetGate::builder(&results)
///     .baseline(&baseline)
///     .max("p99_ms", 50.0)
///     .max_regression("p99_ms", 10.0, Direction::LowerIsBetter)
///     .min("throughput_rps", 1000.0)
///     .max_regression("throughput_rps", 5.0, Direction::HigherIsBetter)
///     .build()?;
/// let verdict = futures::executor::block_on(GateProbe::new().evaluate(&gate))?;
/// let Verdict::Pass(evidence) = verdict else { panic!("expected a pass") };
/// assert_eq!(evidence.summary, "2 figures within budget and baseline (figures)");
/// assert_eq!(evidence.attachments.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PerfBudgetGate {
    name: String,
    results: PathBuf,
    baseline: Option<PathBuf>,
    rules: BTreeMap<String, FigureRule>,
}

/// Builds a [`PerfBudgetGate`]; see there.
#[derive(Debug, Clone)]
#[must_use]
pub struct PerfBudgetGateBuilder {
    name: String,
    results: PathBuf,
    baseline: Option<PathBuf>,
    rules: BTreeMap<String, FigureRule>,
}

impl PerfBudgetGate {
    /// The default name, `perf-budget`.
    pub const DEFAULT_NAME: &'static str = "perf-budget";

    /// A builder for a gate reading the result file at `results`.
    pub fn builder(results: impl Into<PathBuf>) -> PerfBudgetGateBuilder {
        PerfBudgetGateBuilder {
            name: Self::DEFAULT_NAME.to_owned(),
            results: results.into(),
            baseline: None,
            rules: BTreeMap::new(),
        }
    }
}

impl PerfBudgetGateBuilder {
    /// Names the gate (default `perf-budget`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Compares with the baseline file at `path` (same shape as the results).
    pub fn baseline(mut self, path: impl Into<PathBuf>) -> Self {
        self.baseline = Some(path.into());
        self
    }
    /// `figure` must be at most `limit`.
    pub fn max(mut self, figure: impl Into<String>, limit: f64) -> Self {
        self.rules.entry(figure.into()).or_default().max = Some(limit);
        self
    }
    /// `figure` must be at least `limit`.
    pub fn min(mut self, figure: impl Into<String>, limit: f64) -> Self {
        self.rules.entry(figure.into()).or_default().min = Some(limit);
        self
    }
    /// `figure` may be at most `percent` worse than in the baseline, worse meaning higher
    /// or lower per `direction`.
    pub fn max_regression(
        mut self,
        figure: impl Into<String>,
        percent: f64,
        direction: Direction,
    ) -> Self {
        self.rules.entry(figure.into()).or_default().regression = Some((percent, direction));
        self
    }
    /// Validates the configuration.
    pub fn build(self) -> Result<PerfBudgetGate, ConfigError> {
        if self.name.trim().is_empty() {
            return Err(ConfigError::EmptyName);
        }
        if self.rules.is_empty() {
            return Err(ConfigError::NothingToCheck);
        }
        for (figure, rule) in &self.rules {
            let bad = |message: String| ConfigError::InvalidBudget {
                figure: figure.clone(),
                message,
            };
            if figure.trim().is_empty() {
                return Err(bad("the figure name is empty".to_owned()));
            }
            for (what, v) in [("maximum", rule.max), ("minimum", rule.min)] {
                if let Some(v) = v {
                    if !v.is_finite() {
                        return Err(bad(format!("the {what} {v} is not a finite number")));
                    }
                }
            }
            if let (Some(min), Some(max)) = (rule.min, rule.max) {
                if min > max {
                    return Err(bad(format!("the minimum {min} is above the maximum {max}")));
                }
            }
            if let Some((pct, _)) = rule.regression {
                if !pct.is_finite() || pct < 0.0 {
                    return Err(bad(format!(
                        "the maximum regression {pct}% is not a percentage of at least 0"
                    )));
                }
                if self.baseline.is_none() {
                    return Err(ConfigError::NoBaseline {
                        figure: figure.clone(),
                    });
                }
            }
        }
        Ok(PerfBudgetGate {
            name: self.name,
            results: self.results,
            baseline: self.baseline,
            rules: self.rules,
        })
    }
}

/// criterion 0.5's `estimates.json` (`criterion::estimate::Estimates`).
#[derive(Debug, Deserialize)]
struct CriterionEstimates {
    mean: CriterionEstimate,
    median: CriterionEstimate,
    median_abs_dev: CriterionEstimate,
    slope: Option<CriterionEstimate>,
    std_dev: CriterionEstimate,
}

#[derive(Debug, Deserialize)]
struct CriterionEstimate {
    confidence_interval: CriterionInterval,
    point_estimate: f64,
    #[allow(dead_code)] // part of the format, read to validate it
    standard_error: f64,
}

#[derive(Debug, Deserialize)]
struct CriterionInterval {
    #[allow(dead_code)] // part of the format, read to validate it
    confidence_level: f64,
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PerfFormat {
    Criterion,
    Figures,
}

impl PerfFormat {
    fn as_str(self) -> &'static str {
        match self {
            PerfFormat::Criterion => "criterion",
            PerfFormat::Figures => "figures",
        }
    }
    fn unit(self) -> Option<&'static str> {
        match self {
            PerfFormat::Criterion => Some("ns"),
            PerfFormat::Figures => None,
        }
    }
}

#[derive(Debug)]
struct Figures {
    format: PerfFormat,
    values: BTreeMap<String, f64>,
    /// criterion's 95% (or configured) confidence interval per figure.
    intervals: BTreeMap<String, (f64, f64)>,
}

impl Figures {
    fn get(&self, path: &str, figure: &str) -> Result<f64, GateError> {
        self.values.get(figure).copied().ok_or_else(|| {
            let present: Vec<&str> = self.values.keys().map(String::as_str).collect();
            invalid_input(
                path,
                None,
                format!(
                    "figure `{figure}` is missing (the file has: {})",
                    present.join(", ")
                ),
            )
        })
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Parses a result or baseline file; `path` names it in errors.
fn parse_figures(path: &str, bytes: &[u8]) -> Result<Figures, GateError> {
    let json_err = |e: serde_json::Error| {
        let line = (e.line() > 0).then_some(e.line());
        invalid_input(path, line, format!("malformed JSON: {e}"))
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(json_err)?;
    let serde_json::Value::Object(map) = &value else {
        return Err(invalid_input(
            path,
            None,
            format!(
                "expected a JSON object (criterion estimates or named figures), found {}",
                json_kind(&value)
            ),
        ));
    };
    let is_criterion = map
        .get("mean")
        .and_then(serde_json::Value::as_object)
        .is_some_and(|m| m.contains_key("point_estimate") || m.contains_key("confidence_interval"));
    if is_criterion {
        let est: CriterionEstimates = serde_json::from_slice(bytes).map_err(|e| {
            let line = (e.line() > 0).then_some(e.line());
            invalid_input(path, line, format!("not a criterion estimates.json: {e}"))
        })?;
        let mut values = BTreeMap::new();
        let mut intervals = BTreeMap::new();
        for (name, e) in [
            ("mean", Some(&est.mean)),
            ("median", Some(&est.median)),
            ("median_abs_dev", Some(&est.median_abs_dev)),
            ("slope", est.slope.as_ref()),
            ("std_dev", Some(&est.std_dev)),
        ] {
            if let Some(e) = e {
                values.insert(name.to_owned(), e.point_estimate);
                intervals.insert(
                    name.to_owned(),
                    (
                        e.confidence_interval.lower_bound,
                        e.confidence_interval.upper_bound,
                    ),
                );
            }
        }
        return Ok(Figures {
            format: PerfFormat::Criterion,
            values,
            intervals,
        });
    }
    if map.is_empty() {
        return Err(invalid_input(path, None, "the file holds no figures"));
    }
    let mut values = BTreeMap::new();
    for (name, v) in map {
        let n = v.as_f64().ok_or_else(|| {
            invalid_input(
                path,
                None,
                format!("figure `{name}` is {}, not a number", json_kind(v)),
            )
        })?;
        values.insert(name.clone(), n);
    }
    Ok(Figures {
        format: PerfFormat::Figures,
        values,
        intervals: BTreeMap::new(),
    })
}

/// Change from `base` to `value` in percent of `base`; `None` when `base` is 0 and `value` is
/// not (an infinite change).
fn change_percent(base: f64, value: f64) -> Option<f64> {
    if base == 0.0 {
        (value == 0.0).then_some(0.0)
    } else {
        Some((value - base) / base.abs() * 100.0)
    }
}

#[async_trait]
impl Gate for PerfBudgetGate {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> GateKind {
        GateKind::Automated
    }

    async fn evaluate(&self, ctx: &GateContext<'_>) -> Result<Verdict, GateError> {
        let results_name = self.results.display().to_string();
        let results_bytes = read_input(&self.results)?;
        let new = parse_figures(&results_name, &results_bytes)?;
        let baseline = match &self.baseline {
            Some(path) => {
                let name = path.display().to_string();
                let bytes = read_input(path)?;
                let figures = parse_figures(&name, &bytes)?;
                if figures.format != new.format {
                    return Err(invalid_input(
                        &name,
                        None,
                        format!(
                            "the baseline holds {} but {results_name} holds {}: compare like with like",
                            figures.format.as_str(),
                            new.format.as_str()
                        ),
                    ));
                }
                Some((name, bytes, figures))
            }
            None => None,
        };
        let unit = new.format.unit().map_or(String::new(), |u| format!(" {u}"));

        let mut rows = Vec::new();
        let mut problems: Vec<String> = Vec::new();
        let mut failed_figures: Vec<&str> = Vec::new();
        for (figure, rule) in &self.rules {
            let value = new.get(&results_name, figure)?;
            let mut failures: Vec<String> = Vec::new();
            if let Some(max) = rule.max {
                if value > max {
                    failures.push(format!(
                        "{figure} {}{unit} above the maximum {}{unit}",
                        fmt_num(value),
                        fmt_num(max)
                    ));
                }
            }
            if let Some(min) = rule.min {
                if value < min {
                    failures.push(format!(
                        "{figure} {}{unit} below the minimum {}{unit}",
                        fmt_num(value),
                        fmt_num(min)
                    ));
                }
            }
            let mut base_value = None;
            let mut change = None;
            if let (Some((max_pct, direction)), Some((base_name, _, base))) =
                (rule.regression, &baseline)
            {
                let b = base.get(base_name, figure)?;
                base_value = Some(b);
                change = change_percent(b, value);
                let worse = match (change, direction) {
                    (Some(c), Direction::LowerIsBetter) => c > max_pct,
                    (Some(c), Direction::HigherIsBetter) => -c > max_pct,
                    (None, Direction::LowerIsBetter) => value > b,
                    (None, Direction::HigherIsBetter) => value < b,
                };
                if worse {
                    let by = change.map_or("without bound".to_owned(), |c| {
                        format!("{}{}%", if c > 0.0 { "+" } else { "" }, fmt_num(c))
                    });
                    failures.push(format!(
                        "{figure} {by} vs baseline {}{unit} (at most {}% worse allowed)",
                        fmt_num(b),
                        fmt_num(max_pct)
                    ));
                }
            }
            rows.push(json!({
                "figure": figure,
                "value": value,
                "confidence_interval": new.intervals.get(figure.as_str()).map(|(l, u)| [l, u]),
                "max": rule.max,
                "min": rule.min,
                "baseline": base_value,
                "change_percent": change,
                "max_regression_percent": rule.regression.map(|(p, _)| p),
                "direction": rule.regression.map(|(_, d)| d),
                "passed": failures.is_empty(),
                "failures": failures,
            }));
            if !failures.is_empty() {
                failed_figures.push(figure);
                problems.extend(failures);
            }
        }

        let checked = self.rules.len();
        let format = new.format.as_str();
        let summary = if problems.is_empty() {
            let noun = if checked == 1 { "figure" } else { "figures" };
            format!("{checked} {noun} within budget and baseline ({format})")
        } else {
            format!(
                "{} of {checked} figures failed ({format}): {}",
                failed_figures.len(),
                problems.join("; ")
            )
        };
        let data = json!({
            "format": format,
            "unit": new.format.unit(),
            "results": results_name,
            "baseline": baseline.as_ref().map(|(n, _, _)| n),
            "figures": rows,
            "failed_figures": failed_figures,
            "values": new.values,
            "baseline_values": baseline.as_ref().map(|(_, _, b)| &b.values),
        });
        let mut evidence = Evidence::new(self.name.clone(), ctx.now(), summary)
            .with_data(data)
            .with_fact("perf_failed", failed_figures.len().to_string())
            .with_attachment(results_name.clone(), &results_bytes);
        if let Some((name, bytes, _)) = &baseline {
            evidence = evidence.with_attachment(name.clone(), bytes);
        }
        Ok(Verdict::pass_if(failed_figures.is_empty(), evidence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{failed, invalid_input, passed, run};
    use std::path::Path;

    fn data(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/testreport")
            .join(rel)
    }

    fn figures_gate(results: &str) -> PerfBudgetGateBuilder {
        PerfBudgetGate::builder(data(results))
            .baseline(data("perf/figures/baseline.json"))
            .max("p99_ms", 50.0)
            .max_regression("p99_ms", 10.0, Direction::LowerIsBetter)
            .min("throughput_rps", 1000.0)
            .max_regression("throughput_rps", 5.0, Direction::HigherIsBetter)
    }

    fn row<'a>(e: &'a Evidence, figure: &str) -> &'a serde_json::Value {
        e.data["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["figure"] == figure)
            .unwrap()
    }

    #[test]
    fn testreport_perf_within_budget_and_baseline() {
        let gate = figures_gate("perf/figures/within.json").build().unwrap();
        assert_eq!(gate.name(), "perf-budget");
        let e = passed(run(&gate));
        assert_eq!(e.summary, "2 figures within budget and baseline (figures)");
        assert_eq!(e.facts["perf_failed"], "0");
        let p99 = row(&e, "p99_ms");
        assert_eq!(p99["value"], 41.2);
        assert_eq!(p99["max"], 50.0);
        assert_eq!(p99["baseline"], 38.0);
        assert!((p99["change_percent"].as_f64().unwrap() - 8.421).abs() < 0.001);
        assert_eq!(p99["direction"], "lower_is_better");
        let rps = row(&e, "throughput_rps");
        assert_eq!(rps["change_percent"], -4.0);
        assert_eq!(rps["passed"], true);
        assert_eq!(e.attachments.len(), 2);
        let bytes = std::fs::read(data("perf/figures/baseline.json")).unwrap();
        assert_eq!(e.attachments[1].digest, promotion_core::Digest::of(&bytes));
        assert_eq!(e.data["values"]["error_rate_pct"], 0.03);
    }

    #[test]
    fn testreport_perf_over_budget() {
        let gate = PerfBudgetGate::builder(data("perf/figures/regressed.json"))
            .max("p99_ms", 50.0)
            .build()
            .unwrap();
        let e = failed(run(&gate));
        assert_eq!(
            e.summary,
            "1 of 1 figures failed (figures): p99_ms 57.5 above the maximum 50"
        );
        assert_eq!(e.facts["perf_failed"], "1");
        assert_eq!(e.attachments.len(), 1);
        let gate = PerfBudgetGate::builder(data("perf/figures/regressed.json"))
            .min("throughput_rps", 1000.0)
            .build()
            .unwrap();
        let e = failed(run(&gate));
        assert!(
            e.summary
                .ends_with("throughput_rps 940 below the minimum 1000"),
            "{}",
            e.summary
        );
    }

    #[test]
    fn testreport_perf_regression_over_threshold() {
        let gate = PerfBudgetGate::builder(data("perf/figures/regressed.json"))
            .baseline(data("perf/figures/baseline.json"))
            .max_regression("p50_ms", 10.0, Direction::LowerIsBetter)
            .max_regression("p99_ms", 10.0, Direction::LowerIsBetter)
            .max_regression("throughput_rps", 5.0, Direction::HigherIsBetter)
            .build()
            .unwrap();
        let e = failed(run(&gate));
        assert_eq!(
            e.data["failed_figures"],
            json!(["p99_ms", "throughput_rps"])
        );
        assert_eq!(
            e.summary,
            "2 of 3 figures failed (figures): p99_ms +51.316% vs baseline 38 (at most 10% worse allowed); \
             throughput_rps -24.8% vs baseline 1250 (at most 5% worse allowed)"
        );
        assert_eq!(row(&e, "p50_ms")["passed"], true);
    }

    #[test]
    fn testreport_perf_improvement_is_not_a_regression() {
        // Swap the files: latency went down, throughput went up.
        let gate = PerfBudgetGate::builder(data("perf/figures/baseline.json"))
            .baseline(data("perf/figures/regressed.json"))
            .max_regression("p99_ms", 0.0, Direction::LowerIsBetter)
            .max_regression("throughput_rps", 0.0, Direction::HigherIsBetter)
            .build()
            .unwrap();
        passed(run(&gate));
        // The same change read with the wrong direction is a regression.
        let gate = PerfBudgetGate::builder(data("perf/figures/baseline.json"))
            .baseline(data("perf/figures/regressed.json"))
            .max_regression("throughput_rps", 5.0, Direction::LowerIsBetter)
            .build()
            .unwrap();
        failed(run(&gate));
    }

    #[test]
    fn testreport_perf_missing_figure_is_named() {
        let gate = figures_gate("perf/figures/missing-figure.json")
            .build()
            .unwrap();
        let (what, message) = invalid_input(run(&gate));
        assert_eq!(
            what,
            data("perf/figures/missing-figure.json")
                .display()
                .to_string()
        );
        assert_eq!(
            message,
            "figure `p99_ms` is missing (the file has: error_rate_pct, p50_ms, throughput_rps)"
        );
        // Missing from the baseline: the baseline is named.
        let gate = PerfBudgetGate::builder(data("perf/figures/within.json"))
            .baseline(data("perf/figures/missing-figure.json"))
            .max_regression("p99_ms", 10.0, Direction::LowerIsBetter)
            .build()
            .unwrap();
        let (what, message) = invalid_input(run(&gate));
        assert!(what.ends_with("missing-figure.json"));
        assert!(message.starts_with("figure `p99_ms` is missing"));
    }

    #[test]
    fn testreport_perf_criterion_regression() {
        // Two real criterion runs of the same bench: the second version allocates per word.
        let gate = PerfBudgetGate::builder(data("perf/criterion/new/estimates.json"))
            .baseline(data("perf/criterion/baseline/estimates.json"))
            .max_regression("mean", 25.0, Direction::LowerIsBetter)
            .build()
            .unwrap();
        let e = failed(run(&gate));
        assert!(
            e.summary.starts_with(
                "1 of 1 figures failed (criterion): mean +367.591% vs baseline 131.376 ns"
            ),
            "{}",
            e.summary
        );
        assert_eq!(e.data["unit"], "ns");
        let mean = row(&e, "mean");
        assert_eq!(mean["value"], 614.3040796999336);
        assert_eq!(mean["baseline"], 131.37624133420465);
        assert_eq!(mean["confidence_interval"][0], 571.8778028498867);
        assert_eq!(e.data["values"].as_object().unwrap().len(), 5);
    }

    #[test]
    fn testreport_perf_criterion_rerun_within_threshold() {
        let gate = PerfBudgetGate::builder(data("perf/criterion/rerun/estimates.json"))
            .baseline(data("perf/criterion/baseline/estimates.json"))
            .max_regression("mean", 25.0, Direction::LowerIsBetter)
            .max("median", 500.0)
            .build()
            .unwrap();
        let e = passed(run(&gate));
        assert_eq!(
            e.summary,
            "2 figures within budget and baseline (criterion)"
        );
        let change = row(&e, "mean")["change_percent"].as_f64().unwrap();
        assert!((10.0..20.0).contains(&change), "{change}");
    }

    #[test]
    fn testreport_perf_broken_inputs() {
        let check = |rel: &str, at: &str, needle: &str| {
            let gate = PerfBudgetGate::builder(data(rel))
                .max("mean", 1.0)
                .build()
                .unwrap();
            let (what, message) = invalid_input(run(&gate));
            assert_eq!(what, format!("{}{at}", data(rel).display()), "{message}");
            assert!(message.contains(needle), "{rel}: {message}");
        };
        check(
            "perf/broken/truncated.json",
            " line 1",
            "malformed JSON: EOF",
        );
        check(
            "perf/broken/criterion-no-point-estimate.json",
            " line 1",
            "not a criterion estimates.json: missing field `point_estimate`",
        );
        check(
            "perf/broken/not-a-number.json",
            "",
            "figure `p99_ms` is a string, not a number",
        );
        check("perf/broken/not-an-object.json", "", "found an array");
        check("perf/no-such-file.json", "", "file not found");
    }

    #[test]
    fn testreport_perf_baseline_of_another_shape() {
        let gate = PerfBudgetGate::builder(data("perf/criterion/new/estimates.json"))
            .baseline(data("perf/figures/baseline.json"))
            .max_regression("mean", 10.0, Direction::LowerIsBetter)
            .build()
            .unwrap();
        let (what, message) = invalid_input(run(&gate));
        assert!(what.ends_with("figures/baseline.json"));
        assert!(
            message.starts_with("the baseline holds figures but"),
            "{message}"
        );
    }

    #[test]
    fn testreport_perf_zero_baseline() {
        assert_eq!(change_percent(0.0, 0.0), Some(0.0));
        assert_eq!(change_percent(0.0, 1.0), None);
        assert_eq!(change_percent(200.0, 150.0), Some(-25.0));
        let dir = tempfile::tempdir().unwrap();
        let (new, base) = (dir.path().join("new.json"), dir.path().join("base.json"));
        std::fs::write(&new, r#"{"errors": 2}"#).unwrap();
        std::fs::write(&base, r#"{"errors": 0}"#).unwrap();
        let gate = PerfBudgetGate::builder(&new)
            .baseline(&base)
            .max_regression("errors", 50.0, Direction::LowerIsBetter)
            .build()
            .unwrap();
        let e = failed(run(&gate));
        assert!(
            e.summary.contains("errors without bound vs baseline 0"),
            "{}",
            e.summary
        );
    }

    #[test]
    fn testreport_perf_configuration_is_validated() {
        let b = || PerfBudgetGate::builder("bench.json");
        assert_eq!(b().build().unwrap_err(), ConfigError::NothingToCheck);
        assert_eq!(
            b().name("").max("x", 1.0).build().unwrap_err(),
            ConfigError::EmptyName
        );
        assert!(matches!(
            b().max("p99_ms", f64::NAN).build(),
            Err(ConfigError::InvalidBudget { figure, .. }) if figure == "p99_ms"
        ));
        assert!(matches!(
            b().min("rps", 10.0).max("rps", 5.0).build(),
            Err(ConfigError::InvalidBudget { figure, message }) if figure == "rps" && message.contains("above")
        ));
        assert!(matches!(
            b().baseline("base.json")
                .max_regression("p99_ms", -1.0, Direction::LowerIsBetter)
                .build(),
            Err(ConfigError::InvalidBudget { .. })
        ));
        assert_eq!(
            b().max_regression("p99_ms", 5.0, Direction::LowerIsBetter)
                .build()
                .unwrap_err(),
            ConfigError::NoBaseline {
                figure: "p99_ms".into()
            }
        );
        assert!(matches!(
            b().max("", 1.0).build(),
            Err(ConfigError::InvalidBudget { .. })
        ));
        let gate = b()
            .name("latency-budget")
            .max("p99_ms", 50.0)
            .build()
            .unwrap();
        assert_eq!(gate.name(), "latency-budget");
        assert_eq!(gate.kind(), GateKind::Automated);
    }
}
