//! The textual form of approval rules: `2 of sre AND 1 of security`,
//! `if change-record.risk = high then 1 of cab`.
//!
//! ```text
//! rule  := all ( "OR" all )*
//! all   := term ( "AND" term )*
//! term  := COUNT "of" GROUP
//!        | "if" GATE "." FACT "=" VALUE "then" term
//!        | "(" rule ")"
//! ```
//!
//! Keywords are case-insensitive; `AND` binds tighter than `OR`. Names are runs of characters
//! other than spaces, parentheses, `=` and `"`; a name with such characters is written in
//! double quotes (`1 of "release managers"`). In a condition, the last `.` separates the gate
//! from the fact. The rule [`ApprovalRule`]'s `Display` prints (`(2 of sre AND 1 of
//! security)`) parses back to the same rule.

use std::fmt;

use promotion_core::{ApprovalRule, GateName, Group};

/// Why an approval expression does not parse: what was expected and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// Character offset in the expression, from 0.
    pub offset: usize,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.offset + 1, self.message)
    }
}

impl std::error::Error for ExprError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Open,
    Close,
    Eq,
    Word(String),
    Quoted(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Character offset.
    at: usize,
}

impl Token {
    fn shown(&self) -> String {
        match &self.tok {
            Tok::Open => "`(`".into(),
            Tok::Close => "`)`".into(),
            Tok::Eq => "`=`".into(),
            Tok::Word(w) => format!("`{w}`"),
            Tok::Quoted(q) => format!("\"{q}\""),
        }
    }
    fn is_keyword(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token {
                    tok: Tok::Open,
                    at: i,
                });
                i += 1;
            }
            ')' => {
                out.push(Token {
                    tok: Tok::Close,
                    at: i,
                });
                i += 1;
            }
            '=' => {
                out.push(Token {
                    tok: Tok::Eq,
                    at: i,
                });
                i += 1;
            }
            '"' => {
                let start = i;
                i += 1;
                let mut s = String::new();
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(ExprError {
                                offset: start,
                                message: "unterminated quoted name; expected a closing `\"`".into(),
                            })
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                out.push(Token {
                    tok: Tok::Quoted(s),
                    at: start,
                });
            }
            _ => {
                let start = i;
                let mut s = String::new();
                while let Some(&c) = chars.get(i) {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '=' | '"') {
                        break;
                    }
                    s.push(c);
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Word(s),
                    at: start,
                });
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    end: usize,
}

const START: &str = "a count (`2 of sre`), `if` or `(`";

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }
    fn here(&self) -> usize {
        self.peek().map_or(self.end, |t| t.at)
    }
    fn found(&self) -> String {
        self.peek()
            .map_or_else(|| "the end of the rule".to_owned(), Token::shown)
    }
    fn fail<T>(&self, expected: &str) -> Result<T, ExprError> {
        Err(ExprError {
            offset: self.here(),
            message: format!("expected {expected}, found {}", self.found()),
        })
    }

    fn rule(&mut self) -> Result<ApprovalRule, ExprError> {
        let mut alts = vec![self.all()?];
        while self.peek().is_some_and(|t| t.is_keyword("or")) {
            self.pos += 1;
            alts.push(self.all()?);
        }
        Ok(if alts.len() == 1 {
            alts.pop().unwrap_or_else(|| ApprovalRule::Any(Vec::new()))
        } else {
            ApprovalRule::Any(alts)
        })
    }

    fn all(&mut self) -> Result<ApprovalRule, ExprError> {
        let mut parts = vec![self.term()?];
        while self.peek().is_some_and(|t| t.is_keyword("and")) {
            self.pos += 1;
            parts.push(self.term()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or_else(|| ApprovalRule::All(Vec::new()))
        } else {
            ApprovalRule::All(parts)
        })
    }

    fn term(&mut self) -> Result<ApprovalRule, ExprError> {
        let Some(tok) = self.peek().cloned() else {
            return self.fail(START);
        };
        match &tok.tok {
            Tok::Open => {
                self.pos += 1;
                let inner = self.rule()?;
                match self.peek() {
                    Some(Token {
                        tok: Tok::Close, ..
                    }) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => self.fail(&format!(
                        "`AND`, `OR` or `)` closing the `(` at character {}",
                        tok.at + 1
                    )),
                }
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("if") => {
                self.pos += 1;
                self.condition()
            }
            Tok::Word(w) if w.chars().all(|c| c.is_ascii_digit()) => {
                self.pos += 1;
                let count: u32 = w.parse().map_err(|_| ExprError {
                    offset: tok.at,
                    message: format!("the count {w} is too large"),
                })?;
                if !self.peek().is_some_and(|t| t.is_keyword("of")) {
                    return self.fail(&format!("`of` after the count {count}"));
                }
                self.pos += 1;
                let (name, at) = self.name("a group name after `of`")?;
                let group = Group::new(name).map_err(|e| ExprError {
                    offset: at,
                    message: e.to_string(),
                })?;
                Ok(ApprovalRule::Quorum { group, count })
            }
            _ => self.fail(START),
        }
    }

    fn name(&mut self, expected: &str) -> Result<(String, usize), ExprError> {
        match self.peek().cloned() {
            Some(Token {
                tok: Tok::Word(w),
                at,
            }) if !is_keyword(&w) => {
                self.pos += 1;
                Ok((w, at))
            }
            Some(Token {
                tok: Tok::Quoted(q),
                at,
            }) => {
                self.pos += 1;
                Ok((q, at))
            }
            _ => self.fail(expected),
        }
    }

    fn condition(&mut self) -> Result<ApprovalRule, ExprError> {
        let (target, at) = self.name("`<gate>.<fact>` after `if`")?;
        let Some((gate, fact)) = target.rsplit_once('.') else {
            return Err(ExprError {
                offset: at,
                message: format!(
                    "expected `<gate>.<fact>` after `if` (`change-record.risk`), found `{target}`"
                ),
            });
        };
        if gate.is_empty() || fact.is_empty() {
            return Err(ExprError {
                offset: at,
                message: format!(
                    "expected `<gate>.<fact>` with both parts non-empty, found `{target}`"
                ),
            });
        }
        let gate = GateName::new(gate).map_err(|e| ExprError {
            offset: at,
            message: e.to_string(),
        })?;
        match self.peek() {
            Some(Token { tok: Tok::Eq, .. }) => self.pos += 1,
            _ => return self.fail(&format!("`=` after `{target}`")),
        }
        let (value, _) = self.name("a value after `=`")?;
        if !self.peek().is_some_and(|t| t.is_keyword("then")) {
            return self.fail(&format!("`then` after `= {value}`"));
        }
        self.pos += 1;
        let then = self.term()?;
        Ok(ApprovalRule::When {
            gate,
            fact: fact.to_owned(),
            equals: value,
            then: Box::new(then),
        })
    }
}

fn is_keyword(w: &str) -> bool {
    ["and", "or", "of", "if", "then"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
}

/// Parses an approval rule from its textual form.
///
/// ```
/// use promotion_config::parse_approval_rule;
///
/// let rule = parse_approval_rule("2 of sre AND 1 of security")?;
/// assert_eq!(rule.to_string(), "(2 of sre AND 1 of security)");
/// let rule = parse_approval_rule("1 of sre AND if change-record.risk = high then 1 of cab")?;
/// assert_eq!(rule.to_string(), "(1 of sre AND (if change-record.risk = high then 1 of cab))");
/// let err = parse_approval_rule("2 sre").unwrap_err();
/// assert_eq!(err.to_string(), "at character 3: expected `of` after the count 2, found `sre`");
/// # Ok::<(), promotion_config::ExprError>(())
/// ```
pub fn parse_approval_rule(text: &str) -> Result<ApprovalRule, ExprError> {
    let tokens = tokenize(text)?;
    let end = text.chars().count();
    let mut p = Parser {
        tokens,
        pos: 0,
        end,
    };
    if p.peek().is_none() {
        return Err(ExprError {
            offset: 0,
            message: format!("the rule is empty; expected {START}"),
        });
    }
    let rule = p.rule()?;
    if p.peek().is_some() {
        return p.fail("`AND`, `OR` or the end of the rule");
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(g: &str, n: u32) -> ApprovalRule {
        ApprovalRule::quorum(g, n).unwrap()
    }

    #[test]
    fn precedence_and_grouping() {
        let r = parse_approval_rule("1 of a OR 2 of b AND 1 of c").unwrap();
        assert_eq!(
            r,
            ApprovalRule::any([q("a", 1), ApprovalRule::all([q("b", 2), q("c", 1)])])
        );
        let r = parse_approval_rule("(1 of a OR 2 of b) and 1 of c").unwrap();
        assert_eq!(
            r,
            ApprovalRule::all([ApprovalRule::any([q("a", 1), q("b", 2)]), q("c", 1)])
        );
        assert_eq!(parse_approval_rule("  3 OF sre ").unwrap(), q("sre", 3));
        assert_eq!(
            parse_approval_rule("1 of \"release managers\"").unwrap(),
            q("release managers", 1)
        );
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "2 of sre AND 1 of security",
            "(2 of sre OR 1 of cto) AND if change-record.risk = high then (1 of cab AND 1 of ciso)",
            "if web.hook.status = 200 then 1 of qa",
            "((1 of a AND 1 of b) AND 1 of c)",
        ] {
            let rule = parse_approval_rule(text).unwrap();
            let again = parse_approval_rule(&rule.to_string()).unwrap();
            assert_eq!(rule, again, "{text} -> {rule}");
        }
        let r = parse_approval_rule("if web.hook.status = 200 then 1 of qa").unwrap();
        let ApprovalRule::When { gate, fact, .. } = r else {
            panic!("expected a condition")
        };
        assert_eq!((gate.as_str(), fact.as_str()), ("web.hook", "status"));
    }

    #[test]
    fn errors_say_where_and_what_was_expected() {
        let cases = [
            ("", 0, "the rule is empty"),
            ("2 sre", 2, "expected `of` after the count 2, found `sre`"),
            (
                "2 of",
                4,
                "expected a group name after `of`, found the end of the rule",
            ),
            (
                "2 of sre AND",
                12,
                "expected a count (`2 of sre`), `if` or `(`",
            ),
            (
                "(1 of a OR 1 of b",
                17,
                "`)` closing the `(` at character 1",
            ),
            (
                "1 of a 1 of b",
                7,
                "expected `AND`, `OR` or the end of the rule, found `1`",
            ),
            (
                "if risk = high then 1 of cab",
                3,
                "expected `<gate>.<fact>`",
            ),
            (
                "if cr.risk high then 1 of cab",
                11,
                "expected `=` after `cr.risk`",
            ),
            (
                "if cr.risk = high 1 of cab",
                18,
                "expected `then` after `= high`",
            ),
            ("sre", 0, "found `sre`"),
            ("1 of \"sre", 5, "unterminated quoted name"),
            ("99999999999 of sre", 0, "too large"),
            (") 1 of a", 0, "found `)`"),
        ];
        for (text, offset, message) in cases {
            let err = parse_approval_rule(text).unwrap_err();
            assert_eq!(err.offset, offset, "{text}: {err}");
            assert!(err.message.contains(message), "{text}: {err}");
        }
    }
}
