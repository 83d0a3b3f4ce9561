//! Success and failure conditions: a typed comparison of the measured value with a threshold
//! (`result < 0.01`), parsed from and displayed as the text Argo Rollouts users write.

use std::fmt;
use std::str::FromStr;

use super::fmt_num;

/// How a [`Condition`] compares the measured value with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    /// `result < threshold`
    Lt,
    /// `result <= threshold`
    Le,
    /// `result > threshold`
    Gt,
    /// `result >= threshold`
    Ge,
    /// `result == threshold`
    Eq,
    /// `result != threshold`
    Ne,
}

impl Comparison {
    /// The operator as written (`<=`).
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Eq => "==",
            Comparison::Ne => "!=",
        }
    }
}

/// A typed comparison of a measured value with a threshold: `result < 0.01`.
///
/// A NaN never meets a condition, whatever the operator. Parse one from text with
/// [`str::parse`] (`"result < 0.01"`, or just `"< 0.01"`).
///
/// ```
/// use promotion_gates::metrics::Condition;
///
/// let c: Condition = "result < 0.01".parse()?;
/// assert_eq!(c, Condition::lt(0.01));
/// assert!(c.holds(0.002));
/// assert!(!c.holds(f64::NAN));
/// assert_eq!(c.to_string(), "result < 0.01");
/// # Ok::<(), promotion_gates::metrics::ConditionParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    comparison: Comparison,
    pub(super) threshold: f64,
}

impl Condition {
    /// `result <comparison> threshold`. The builders refuse a threshold that is not finite.
    pub fn new(comparison: Comparison, threshold: f64) -> Self {
        Condition {
            comparison,
            threshold,
        }
    }
    /// `result < threshold`
    pub fn lt(threshold: f64) -> Self {
        Self::new(Comparison::Lt, threshold)
    }
    /// `result <= threshold`
    pub fn le(threshold: f64) -> Self {
        Self::new(Comparison::Le, threshold)
    }
    /// `result > threshold`
    pub fn gt(threshold: f64) -> Self {
        Self::new(Comparison::Gt, threshold)
    }
    /// `result >= threshold`
    pub fn ge(threshold: f64) -> Self {
        Self::new(Comparison::Ge, threshold)
    }
    /// `result == threshold`
    pub fn eq(threshold: f64) -> Self {
        Self::new(Comparison::Eq, threshold)
    }
    /// `result != threshold`
    pub fn ne(threshold: f64) -> Self {
        Self::new(Comparison::Ne, threshold)
    }
    /// The operator.
    pub fn comparison(&self) -> Comparison {
        self.comparison
    }
    /// The threshold.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }
    /// Whether `value` meets the condition (never for NaN).
    pub fn holds(&self, value: f64) -> bool {
        if value.is_nan() {
            return false;
        }
        let t = self.threshold;
        match self.comparison {
            Comparison::Lt => value < t,
            Comparison::Le => value <= t,
            Comparison::Gt => value > t,
            Comparison::Ge => value >= t,
            Comparison::Eq => value == t,
            Comparison::Ne => value != t,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "result {} {}",
            self.comparison.symbol(),
            fmt_num(self.threshold)
        )
    }
}

/// Text that is not a condition; returned by [`Condition`]'s [`FromStr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid condition `{text}`: {problem} (expected such as `result < 0.01`)")]
pub struct ConditionParseError {
    /// The text as given.
    pub text: String,
    /// What is wrong.
    pub problem: String,
}

impl FromStr for Condition {
    type Err = ConditionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |problem: &str| ConditionParseError {
            text: s.to_owned(),
            problem: problem.to_owned(),
        };
        let rest = s.trim();
        let rest = rest.strip_prefix("result").unwrap_or(rest).trim_start();
        // Two-character operators first.
        let ops = [
            ("<=", Comparison::Le),
            (">=", Comparison::Ge),
            ("==", Comparison::Eq),
            ("!=", Comparison::Ne),
            ("<", Comparison::Lt),
            (">", Comparison::Gt),
        ];
        let Some((comparison, number)) = ops
            .iter()
            .find_map(|(sym, op)| rest.strip_prefix(sym).map(|n| (*op, n.trim())))
        else {
            return Err(err("no comparison operator (<, <=, >, >=, ==, !=)"));
        };
        if number.is_empty() {
            return Err(err("no threshold after the operator"));
        }
        let threshold: f64 = number
            .parse()
            .map_err(|_| err(&format!("`{number}` is not a number")))?;
        if !threshold.is_finite() {
            return Err(err("the threshold must be a finite number"));
        }
        Ok(Condition::new(comparison, threshold))
    }
}
