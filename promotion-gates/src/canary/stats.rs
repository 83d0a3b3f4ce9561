//! The statistics of a canary comparison: the Mann–Whitney U test, medians and relative
//! changes, and how one metric's difference is classified.

use statrs::distribution::{ContinuousCDF, Normal};

/// What the comparison of one metric found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Classification {
    /// No significant difference, or one within the tolerance.
    Pass,
    /// The canary is significantly higher, beyond the tolerance.
    High,
    /// The canary is significantly lower, beyond the tolerance.
    Low,
    /// Too few samples on one side.
    NoData,
}

impl Classification {
    /// `pass`, `high`, `low` or `nodata`.
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Pass => "pass",
            Classification::High => "high",
            Classification::Low => "low",
            Classification::NoData => "nodata",
        }
    }
}

/// The result of a two-sided Mann–Whitney U test of `x` against `y`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of `x`: the pairs in which `x`'s value is larger, ties counting one half.
    pub u: f64,
    /// U of `y`: `x.len() × y.len() − u`.
    pub u_other: f64,
    /// The standard score with tie and continuity corrections, positive when `x` tends larger.
    pub z: f64,
    /// The two-sided p-value of the normal approximation, in `[0, 1]`.
    pub p_value: f64,
}

/// The two-sided Mann–Whitney U test of `x` against `y` with the normal approximation, tie
/// correction and continuity correction: the statistic and p-value of SciPy's
/// `mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)`.
///
/// `None` when either side is empty or holds a NaN. When every value is the same there is no
/// evidence of a difference: `z` is 0 and the p-value 1.
///
/// ```
/// use promotion_gates::canary::mann_whitney_u;
///
/// let t = mann_whitney_u(&[19.0, 22.0, 16.0, 29.0, 24.0], &[20.0, 11.0, 17.0, 12.0]).unwrap();
/// assert_eq!(t.u, 17.0);
/// assert!((t.p_value - 0.111_346_886_533_140_41).abs() < 1e-9);
/// ```
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> Option<MannWhitney> {
    if x.is_empty() || y.is_empty() || x.iter().chain(y).any(|v| v.is_nan()) {
        return None;
    }
    let n1 = x.len() as f64;
    let n2 = y.len() as f64;
    let n = n1 + n2;
    let mut all: Vec<(f64, bool)> = x
        .iter()
        .map(|v| (*v, true))
        .chain(y.iter().map(|v| (*v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0;
    let mut position = 1.0;
    for group in all.chunk_by(|a, b| a.0 == b.0) {
        let t = group.len() as f64;
        let average_rank = position + (t - 1.0) / 2.0;
        let in_x = group.iter().filter(|(_, is_x)| *is_x).count() as f64;
        rank_sum_x += average_rank * in_x;
        tie_term += t * t * t - t;
        position += t;
    }
    let u = rank_sum_x - n1 * (n1 + 1.0) / 2.0;
    let u_other = n1 * n2 - u;
    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    let sigma = variance.max(0.0).sqrt();
    if sigma <= 0.0 || !sigma.is_finite() {
        return Some(MannWhitney {
            u,
            u_other,
            z: 0.0,
            p_value: 1.0,
        });
    }
    let distance = (u - mean).abs();
    let corrected = (distance - 0.5) / sigma;
    let p_value = (2.0 * Normal::standard().sf(corrected)).clamp(0.0, 1.0);
    let z = if distance > 0.5 {
        (u - mean).signum() * corrected
    } else {
        0.0
    };
    Some(MannWhitney {
        u,
        u_other,
        z,
        p_value,
    })
}

/// The median (the mean of the middle two for an even count); `None` when empty.
pub(super) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted.get(mid).copied()
    } else {
        Some((sorted.get(mid.checked_sub(1)?)? + sorted.get(mid)?) / 2.0)
    }
}

/// The relative change from `baseline` to `canary`; from zero, any change is infinite.
pub(super) fn relative_change(canary: f64, baseline: f64) -> f64 {
    if baseline != 0.0 {
        (canary - baseline) / baseline.abs()
    } else if canary == baseline {
        0.0
    } else if canary > baseline {
        f64::INFINITY
    } else {
        f64::NEG_INFINITY
    }
}

/// What the comparison of one metric's samples found (pure).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MetricReport {
    pub(super) classification: Classification,
    pub(super) counts_against: bool,
    pub(super) test: Option<MannWhitney>,
    pub(super) canary_median: Option<f64>,
    pub(super) baseline_median: Option<f64>,
    pub(super) absolute_change: Option<f64>,
    pub(super) relative_change: Option<f64>,
    pub(super) significant: bool,
    pub(super) reason: String,
}

pub(super) fn percent(change: f64) -> String {
    if change.is_finite() {
        format!("{:+.1}%", change * 100.0)
    } else if change > 0.0 {
        "up from zero".to_owned()
    } else {
        "down from zero".to_owned()
    }
}

pub(super) fn fmt_p(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.2e}")
    }
}
