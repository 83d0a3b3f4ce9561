//! Approval policies: who must approve before a release enters a stage.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::name::{GateName, Group};
use crate::principal::Principal;

/// A composable approval expression: "2 of sre AND 1 of security".
///
/// One approver counts once: a principal who is in both `sre` and `security` fills one seat,
/// not two (separation of duties).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalRule {
    /// `count` distinct approvers from `group`.
    Quorum {
        /// Eligible group.
        group: Group,
        /// How many distinct approvers.
        count: u32,
    },
    /// Every sub-rule holds, each with its own approvers.
    All(Vec<ApprovalRule>),
    /// At least one sub-rule holds.
    Any(Vec<ApprovalRule>),
    /// A rule that applies only when an entry gate of the stage reported a fact: "when
    /// `change-record` says `risk` = `high`, also 1 of cab". When the fact is absent or
    /// differs, this part holds without approvers.
    When {
        /// The entry gate whose evidence declares the fact.
        gate: GateName,
        /// The fact's name.
        fact: String,
        /// The value that triggers the rule.
        equals: String,
        /// The rule that then applies.
        then: Box<ApprovalRule>,
    },
}

/// Answers "did entry gate `gate` report fact `name` with value `value`?".
pub(crate) type FactCheck<'a> = &'a dyn Fn(&GateName, &str, &str) -> bool;

/// Upper bound on the alternatives an expression may expand to (keeps evaluation cheap).
pub(crate) const MAX_ALTERNATIVES: usize = 256;
/// Upper bound on approvers one alternative may require.
pub(crate) const MAX_SEATS: u32 = 64;

/// A rule that can never be met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsatisfiable(pub String);

type Alternative = Vec<(Group, u32)>;

impl ApprovalRule {
    /// `count` distinct approvers from `group`; an invalid group name is reported when the
    /// pipeline is built.
    pub fn quorum(group: &str, count: u32) -> Result<Self, crate::InvalidName> {
        Ok(ApprovalRule::Quorum {
            group: Group::new(group)?,
            count,
        })
    }
    /// All of `rules`.
    pub fn all(rules: impl IntoIterator<Item = ApprovalRule>) -> Self {
        ApprovalRule::All(rules.into_iter().collect())
    }
    /// Any of `rules`.
    pub fn any(rules: impl IntoIterator<Item = ApprovalRule>) -> Self {
        ApprovalRule::Any(rules.into_iter().collect())
    }
    /// `then` applies only when entry gate `gate` reported `fact` = `equals`.
    pub fn when(
        gate: &str,
        fact: impl Into<String>,
        equals: impl Into<String>,
        then: ApprovalRule,
    ) -> Result<Self, crate::InvalidName> {
        Ok(ApprovalRule::When {
            gate: GateName::new(gate)?,
            fact: fact.into(),
            equals: equals.into(),
            then: Box::new(then),
        })
    }

    /// The entry gates whose facts the rule depends on.
    pub fn conditions(&self) -> Vec<&GateName> {
        match self {
            ApprovalRule::Quorum { .. } => Vec::new(),
            ApprovalRule::All(rules) | ApprovalRule::Any(rules) => {
                rules.iter().flat_map(ApprovalRule::conditions).collect()
            }
            ApprovalRule::When { gate, then, .. } => {
                let mut v = vec![gate];
                v.extend(then.conditions());
                v
            }
        }
    }

    /// Checks that the rule can be met at all and stays small enough to evaluate: at most 256
    /// alternatives once expanded, one of which needs at most 64 approvers.
    pub fn check(&self) -> Result<(), Unsatisfiable> {
        // Every condition may turn out true: the rule must be satisfiable in the worst case.
        let alternatives = self.alternatives(&|_, _, _| true)?;
        if alternatives.iter().all(|alt| seats(alt) > MAX_SEATS) {
            return Err(Unsatisfiable(format!(
                "every way to satisfy `{self}` needs more than {MAX_SEATS} approvers"
            )));
        }
        Ok(())
    }

    /// The groups whose members may approve (or reject).
    pub fn groups(&self) -> BTreeSet<&Group> {
        let mut out = BTreeSet::new();
        self.collect_groups(&mut out);
        out
    }

    fn collect_groups<'a>(&'a self, out: &mut BTreeSet<&'a Group>) {
        match self {
            ApprovalRule::Quorum { group, .. } => {
                out.insert(group);
            }
            ApprovalRule::All(rules) | ApprovalRule::Any(rules) => {
                rules.iter().for_each(|r| r.collect_groups(out))
            }
            ApprovalRule::When { then, .. } => then.collect_groups(out),
        }
    }

    /// Whether `principal` belongs to a group this rule names.
    pub fn is_eligible(&self, principal: &Principal) -> bool {
        self.groups().iter().any(|g| principal.groups.contains(*g))
    }

    /// Whether distinct `approvers` satisfy the rule, with every [`When`](Self::When)
    /// condition false.
    pub fn is_satisfied_by(&self, approvers: &[&Principal]) -> bool {
        self.is_satisfied_with(approvers, &|_, _, _| false)
    }

    /// Whether distinct `approvers` satisfy the rule, given the facts the entry gates reported:
    /// `facts(gate, name, value)` says whether entry gate `gate` reported fact `name` with
    /// `value`.
    pub fn is_satisfied_with(
        &self,
        approvers: &[&Principal],
        facts: &dyn Fn(&GateName, &str, &str) -> bool,
    ) -> bool {
        match self.alternatives(facts) {
            Ok(alts) => alts.iter().any(|alt| assignable(alt, approvers)),
            Err(_) => false,
        }
    }

    /// The rule in disjunctive normal form: each alternative is a list of (group, count)
    /// seats that must all be filled by distinct approvers.
    fn alternatives(&self, facts: FactCheck<'_>) -> Result<Vec<Alternative>, Unsatisfiable> {
        match self {
            ApprovalRule::When {
                gate,
                fact,
                equals,
                then,
            } => {
                if facts(gate, fact, equals) {
                    then.alternatives(facts)
                } else {
                    Ok(vec![Vec::new()])
                }
            }
            ApprovalRule::Quorum { count: 0, group } => Err(Unsatisfiable(format!(
                "a quorum of 0 from `{group}` approves nothing; use no approval rule instead"
            ))),
            ApprovalRule::Quorum { group, count } => Ok(vec![vec![(group.clone(), *count)]]),
            ApprovalRule::Any(rules) => {
                if rules.is_empty() {
                    return Err(Unsatisfiable("`any` of no rules can never hold".into()));
                }
                let mut out = Vec::new();
                for r in rules {
                    out.extend(r.alternatives(facts)?);
                    if out.len() > MAX_ALTERNATIVES {
                        return Err(too_large());
                    }
                }
                Ok(out)
            }
            ApprovalRule::All(rules) => {
                if rules.is_empty() {
                    return Err(Unsatisfiable(
                        "`all` of no rules is empty; use no approval rule instead".into(),
                    ));
                }
                let mut acc: Vec<Alternative> = vec![Vec::new()];
                for r in rules {
                    let alts = r.alternatives(facts)?;
                    if acc.len().saturating_mul(alts.len()) > MAX_ALTERNATIVES {
                        return Err(too_large());
                    }
                    let mut next = Vec::with_capacity(acc.len() * alts.len());
                    for a in &acc {
                        for b in &alts {
                            let mut merged = a.clone();
                            merged.extend(b.iter().cloned());
                            next.push(merged);
                        }
                    }
                    acc = next;
                }
                Ok(acc)
            }
        }
    }
}

fn too_large() -> Unsatisfiable {
    Unsatisfiable(format!(
        "the expression expands to more than {MAX_ALTERNATIVES} alternatives"
    ))
}

fn seats(alt: &Alternative) -> u32 {
    alt.iter().fold(0u32, |n, (_, c)| n.saturating_add(*c))
}

/// Bipartite matching (augmenting paths): can every seat get a distinct approver from its group?
fn assignable(alt: &Alternative, approvers: &[&Principal]) -> bool {
    let total = seats(alt);
    if total > MAX_SEATS || total as usize > approvers.len() {
        return false;
    }
    let seat_groups: Vec<&Group> = alt
        .iter()
        .flat_map(|(g, c)| std::iter::repeat_n(g, *c as usize))
        .collect();
    // owner[approver] = seat it fills
    let mut owner: Vec<Option<usize>> = vec![None; approvers.len()];
    for seat in 0..seat_groups.len() {
        let mut visited = vec![false; approvers.len()];
        if !augment(seat, &seat_groups, approvers, &mut owner, &mut visited) {
            return false;
        }
    }
    true
}

fn augment(
    seat: usize,
    seat_groups: &[&Group],
    approvers: &[&Principal],
    owner: &mut [Option<usize>],
    visited: &mut [bool],
) -> bool {
    let Some(group) = seat_groups.get(seat) else {
        return false;
    };
    for (i, p) in approvers.iter().enumerate() {
        if !p.groups.contains(*group) || visited.get(i).copied().unwrap_or(true) {
            continue;
        }
        if let Some(v) = visited.get_mut(i) {
            *v = true;
        }
        let current = owner.get(i).copied().flatten();
        let free = match current {
            None => true,
            Some(other) => augment(other, seat_groups, approvers, owner, visited),
        };
        if free {
            if let Some(o) = owner.get_mut(i) {
                *o = Some(seat);
            }
            return true;
        }
    }
    false
}

impl fmt::Display for ApprovalRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, rules: &[ApprovalRule], op: &str| {
            f.write_str("(")?;
            for (i, r) in rules.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{r}")?;
            }
            f.write_str(")")
        };
        match self {
            ApprovalRule::Quorum { group, count } => write!(f, "{count} of {group}"),
            ApprovalRule::All(rules) => join(f, rules, "AND"),
            ApprovalRule::Any(rules) => join(f, rules, "OR"),
            ApprovalRule::When {
                gate,
                fact,
                equals,
                then,
            } => write!(f, "(if {gate}.{fact} = {equals} then {then})"),
        }
    }
}

/// A stage's approval requirement and the constraints on who may approve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// Who must approve.
    pub rule: ApprovalRule,
    /// Let contributors to the release, and whoever started the promotion, approve it.
    /// Off by default.
    pub allow_self_approval: bool,
    /// Approvers of this stage must differ from those of its upstream stages.
    pub distinct_from_upstream: bool,
    /// An approval stops counting this long after it was given.
    pub expiry: Option<Duration>,
    /// Approvals are accepted only once the entry gates have passed (on by default).
    pub after_gates: bool,
}

impl ApprovalPolicy {
    /// A policy with the default constraints: no self-approval, after gates, no expiry.
    pub fn new(rule: ApprovalRule) -> Self {
        ApprovalPolicy {
            rule,
            allow_self_approval: false,
            distinct_from_upstream: false,
            expiry: None,
            after_gates: true,
        }
    }
    /// Approvals expire after `d`.
    pub fn expires_after(mut self, d: Duration) -> Self {
        self.expiry = Some(d);
        self
    }
    /// Approvers must differ from those of upstream stages.
    pub fn distinct_from_upstream(mut self) -> Self {
        self.distinct_from_upstream = true;
        self
    }
    /// Accept approvals while the entry gates are still running.
    pub fn before_gates(mut self) -> Self {
        self.after_gates = false;
        self
    }
    /// Let contributors and the initiator approve (not recommended).
    pub fn allow_self_approval(mut self) -> Self {
        self.allow_self_approval = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, groups: &[&str]) -> Principal {
        Principal::new(id, groups.iter().copied()).unwrap()
    }

    #[test]
    fn one_person_fills_one_seat() {
        let rule = ApprovalRule::all([
            ApprovalRule::quorum("sre", 1).unwrap(),
            ApprovalRule::quorum("security", 1).unwrap(),
        ]);
        let both = p("ann", &["sre", "security"]);
        assert!(!rule.is_satisfied_by(&[&both]));
        let sre = p("bob", &["sre"]);
        assert!(rule.is_satisfied_by(&[&both, &sre]));
    }

    #[test]
    fn matching_reassigns_seats() {
        // ann could fill either seat; bob only sre. Greedy ann→sre would fail.
        let rule = ApprovalRule::all([
            ApprovalRule::quorum("sre", 1).unwrap(),
            ApprovalRule::quorum("security", 1).unwrap(),
        ]);
        let ann = p("ann", &["sre", "security"]);
        let bob = p("bob", &["sre"]);
        assert!(rule.is_satisfied_by(&[&ann, &bob]));
    }

    #[test]
    fn any_and_quorum_counts() {
        let rule = ApprovalRule::any([
            ApprovalRule::quorum("sre", 2).unwrap(),
            ApprovalRule::quorum("cto", 1).unwrap(),
        ]);
        assert!(!rule.is_satisfied_by(&[&p("a", &["sre"])]));
        assert!(rule.is_satisfied_by(&[&p("a", &["sre"]), &p("b", &["sre"])]));
        assert!(rule.is_satisfied_by(&[&p("c", &["cto"])]));
        assert_eq!(rule.to_string(), "(2 of sre OR 1 of cto)");
    }

    #[test]
    fn conditional_rules_apply_only_when_the_fact_holds() {
        let rule = ApprovalRule::all([
            ApprovalRule::quorum("sre", 1).unwrap(),
            ApprovalRule::when(
                "change-record",
                "risk",
                "high",
                ApprovalRule::quorum("cab", 1).unwrap(),
            )
            .unwrap(),
        ]);
        let sre = p("sam", &["sre"]);
        let cab = p("carl", &["cab"]);
        let high =
            |g: &GateName, f: &str, v: &str| g == "change-record" && f == "risk" && v == "high";
        let low = |_: &GateName, _: &str, _: &str| false;
        assert!(rule.is_satisfied_with(&[&sre], &low));
        assert!(!rule.is_satisfied_with(&[&sre], &high));
        assert!(rule.is_satisfied_with(&[&sre, &cab], &high));
        assert!(rule.is_eligible(&cab));
        assert_eq!(
            rule.to_string(),
            "(1 of sre AND (if change-record.risk = high then 1 of cab))"
        );
        let bad = ApprovalRule::when("x", "risk", "high", ApprovalRule::quorum("cab", 0).unwrap());
        assert!(
            bad.unwrap().check().is_err(),
            "a condition's rule must itself be satisfiable"
        );
    }

    #[test]
    fn unsatisfiable_rules_are_refused() {
        assert!(ApprovalRule::quorum("sre", 0).unwrap().check().is_err());
        assert!(ApprovalRule::all([]).check().is_err());
        assert!(ApprovalRule::any([]).check().is_err());
        assert!(ApprovalRule::quorum("sre", 65).unwrap().check().is_err());
        let wide = ApprovalRule::all((0..9).map(|i| {
            ApprovalRule::any([
                ApprovalRule::quorum(&format!("a{i}"), 1).unwrap(),
                ApprovalRule::quorum(&format!("b{i}"), 1).unwrap(),
            ])
        }));
        assert!(wide.check().unwrap_err().0.contains("alternatives"));
    }
}
