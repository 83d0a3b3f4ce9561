//! Typed template parameters and `{{ name }}` substitution.
//!
//! A template declares its parameters with a type, an optional default (a parameter without
//! one is required) and a description:
//!
//! ```toml
//! [params.min_tests]
//! type = "integer"
//! default = 100
//! description = "fewer tests than this fail the unit-test gate"
//!
//! [params.canary_weights]
//! type = "list"
//! items = "integer"
//! default = [5, 25, 100]
//! ```
//!
//! Types: `string`, `integer`, `float` (an integer is accepted), `bool`, `duration` (a string
//! such as `"6h"`), `list` (with an optional `items` type for its elements).
//!
//! In the `[pipeline]` and `[[stages]]` sections, any string value may name parameters as
//! `{{ name }}`. A string that is exactly one placeholder is replaced by the parameter's typed
//! value (`min_tests = "{{ min_tests }}"` becomes the integer; `weights =
//! "{{ canary_weights }}"` the list). A placeholder inside a longer string is replaced by the
//! value's text (`"{{ service }}-tests"`); a list cannot be used that way. `{{ service }}` is
//! always defined: the service's name. Keys are never substituted. A `{{` that does not
//! enclose a name is kept as it is; a placeholder naming anything but a declared parameter is
//! an error.

use std::collections::BTreeMap;
use std::fmt;

use crate::duration::parse_duration;

/// The parameter every template can use without declaring it: the service's name.
pub const SERVICE_PARAM: &str = "service";

/// The type of a template parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamType {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// A number, `type = "float"`: a whole number is accepted too.
    Float,
    /// `true` or `false`.
    Bool,
    /// A duration string (`"30s"`, `"6h"`).
    Duration,
    /// A list; its elements of the given type when one is declared.
    List(Option<Box<ParamType>>),
}

impl ParamType {
    /// Parses a type name (`string`, `integer`, `float`, `bool`, `duration`, `list`).
    pub fn from_name(name: &str, items: Option<&str>) -> Result<ParamType, String> {
        let scalar = |n: &str| match n {
            "string" => Ok(ParamType::String),
            "integer" => Ok(ParamType::Integer),
            "float" => Ok(ParamType::Float),
            "bool" | "boolean" => Ok(ParamType::Bool),
            "duration" => Ok(ParamType::Duration),
            other => Err(format!(
                "unknown parameter type `{other}`; expected string, integer, float, bool, \
                 duration or list"
            )),
        };
        match (name, items) {
            ("list", None) => Ok(ParamType::List(None)),
            ("list", Some(i)) => Ok(ParamType::List(Some(Box::new(scalar(i)?)))),
            (other, None) => scalar(other),
            (other, Some(_)) => Err(format!(
                "`items` applies to lists only; this parameter is of type `{other}`"
            )),
        }
    }

    /// Checks that `value` is of this type.
    pub fn check(&self, value: &toml::Value) -> Result<(), String> {
        let ok = match (self, value) {
            (ParamType::String, toml::Value::String(_))
            | (ParamType::Integer, toml::Value::Integer(_))
            | (ParamType::Float, toml::Value::Float(_) | toml::Value::Integer(_))
            | (ParamType::Bool, toml::Value::Boolean(_)) => true,
            (ParamType::Duration, toml::Value::String(s)) => {
                parse_duration(s)?;
                true
            }
            (ParamType::List(items), toml::Value::Array(a)) => {
                if let Some(items) = items {
                    for (i, v) in a.iter().enumerate() {
                        items
                            .check(v)
                            .map_err(|e| format!("element {}: {e}", i + 1))?;
                    }
                }
                true
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "expected {}, found {}",
                self.described(),
                kind_of(value)
            ))
        }
    }

    fn described(&self) -> String {
        match self {
            ParamType::String => "a string".into(),
            ParamType::Integer => "an integer".into(),
            ParamType::Float => "a number".into(),
            ParamType::Bool => "true or false".into(),
            ParamType::Duration => "a duration string such as \"6h\"".into(),
            ParamType::List(None) => "a list".into(),
            ParamType::List(Some(t)) => format!("a list of {}", t.plural()),
        }
    }

    fn plural(&self) -> String {
        match self {
            ParamType::String => "strings".into(),
            ParamType::Integer => "integers".into(),
            ParamType::Float => "numbers".into(),
            ParamType::Bool => "booleans".into(),
            ParamType::Duration => "durations".into(),
            ParamType::List(_) => "lists".into(),
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamType::String => f.write_str("string"),
            ParamType::Integer => f.write_str("integer"),
            ParamType::Float => f.write_str("float"),
            ParamType::Bool => f.write_str("bool"),
            ParamType::Duration => f.write_str("duration"),
            ParamType::List(None) => f.write_str("list"),
            ParamType::List(Some(t)) => write!(f, "list of {t}"),
        }
    }
}

/// What a TOML value is, in words.
pub(crate) fn kind_of(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// A parameter a template declares.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    /// Its name, as used in `{{ name }}`.
    pub name: String,
    /// Its type, which the service's value and the default are checked against.
    pub ty: ParamType,
    /// Its default; a parameter without one is required.
    pub default: Option<toml::Value>,
    /// What it is for.
    pub description: Option<String>,
}

impl ParamDecl {
    /// Whether a service must give a value.
    pub fn is_required(&self) -> bool {
        self.default.is_none()
    }
}

/// One `{{ name }}` in a string: its byte range and the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placeholder {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) name: String,
}

/// The placeholders in `s`, in order. A `{{` not followed by optional spaces, a name
/// (`[A-Za-z_][A-Za-z0-9_-]*`), optional spaces and `}}` is not a placeholder.
pub(crate) fn placeholders(s: &str) -> Vec<Placeholder> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(rel) = s.get(i..).and_then(|rest| rest.find("{{")) {
        let start = i + rel;
        let mut j = start + 2;
        while bytes.get(j) == Some(&b' ') {
            j += 1;
        }
        let name_start = j;
        if bytes
            .get(j)
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        {
            while bytes
                .get(j)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
            {
                j += 1;
            }
        }
        let name_end = j;
        while bytes.get(j) == Some(&b' ') {
            j += 1;
        }
        if name_end > name_start && bytes.get(j..j + 2) == Some(b"}}".as_slice()) {
            out.push(Placeholder {
                start,
                end: j + 2,
                name: s.get(name_start..name_end).unwrap_or("").to_owned(),
            });
            i = j + 2;
        } else {
            i = start + 2;
        }
    }
    out
}

/// Why a string could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubstError {
    /// Byte offset of the placeholder in the string.
    pub(crate) offset: usize,
    pub(crate) message: String,
    pub(crate) unknown: bool,
}

/// Replaces the placeholders of `s` by the values of `params`. `Ok(None)` when `s` has none.
pub(crate) fn substitute_str(
    s: &str,
    params: &BTreeMap<String, toml::Value>,
) -> Result<Option<toml::Value>, SubstError> {
    let found = placeholders(s);
    if found.is_empty() {
        return Ok(None);
    }
    let lookup = |p: &Placeholder| {
        params.get(&p.name).ok_or_else(|| {
            let known: Vec<&str> = params.keys().map(String::as_str).collect();
            SubstError {
                offset: p.start,
                message: format!(
                    "unknown parameter `{}` in `{s}`; declared parameters: {}",
                    p.name,
                    known.join(", ")
                ),
                unknown: true,
            }
        })
    };
    if let [only] = found.as_slice() {
        if only.start == 0 && only.end == s.len() {
            return lookup(only).map(|v| Some(v.clone()));
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for p in &found {
        out.push_str(s.get(last..p.start).unwrap_or(""));
        let text = match lookup(p)? {
            toml::Value::String(v) => v.clone(),
            toml::Value::Integer(v) => v.to_string(),
            toml::Value::Float(v) => v.to_string(),
            toml::Value::Boolean(v) => v.to_string(),
            toml::Value::Datetime(v) => v.to_string(),
            other => {
                return Err(SubstError {
                    offset: p.start,
                    message: format!(
                        "parameter `{}` is {} and can only be used as a whole value \
                         (`\"{{{{ {} }}}}\"`), not inside `{s}`",
                        p.name,
                        kind_of(other),
                        p.name
                    ),
                    unknown: false,
                })
            }
        };
        out.push_str(&text);
        last = p.end;
    }
    out.push_str(s.get(last..).unwrap_or(""));
    Ok(Some(toml::Value::String(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> BTreeMap<String, toml::Value> {
        BTreeMap::from([
            ("service".into(), toml::Value::String("checkout".into())),
            ("n".into(), toml::Value::Integer(3)),
            (
                "weights".into(),
                toml::Value::Array(vec![toml::Value::Integer(5), toml::Value::Integer(100)]),
            ),
        ])
    }

    #[test]
    fn finds_placeholders_and_leaves_other_braces() {
        let p = placeholders("{{ service }}-{{n}} {{ not a name }} ${{HOME}} {x} {{}}");
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["service", "n", "HOME"]);
    }

    #[test]
    fn whole_values_keep_their_type() {
        let p = params();
        assert_eq!(
            substitute_str("{{ n }}", &p).unwrap(),
            Some(toml::Value::Integer(3))
        );
        assert!(matches!(
            substitute_str("{{weights}}", &p).unwrap(),
            Some(toml::Value::Array(_))
        ));
        assert_eq!(
            substitute_str("{{ service }}-tests x{{n}}", &p).unwrap(),
            Some(toml::Value::String("checkout-tests x3".into()))
        );
        assert_eq!(substitute_str("plain {x}", &p).unwrap(), None);
    }

    #[test]
    fn errors_name_the_parameter() {
        let p = params();
        let e = substitute_str("a-{{ servce }}", &p).unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.unknown);
        assert!(
            e.message.contains("unknown parameter `servce`"),
            "{}",
            e.message
        );
        assert!(e.message.contains("n, service, weights"), "{}", e.message);
        let e = substitute_str("w={{ weights }}", &p).unwrap_err();
        assert!(e.message.contains("is a list"), "{}", e.message);
    }

    #[test]
    fn types_check_values() {
        let list = ParamType::from_name("list", Some("integer")).unwrap();
        assert!(list
            .check(&toml::Value::Array(vec![toml::Value::Integer(1)]))
            .is_ok());
        let err = list
            .check(&toml::Value::Array(vec![toml::Value::String("x".into())]))
            .unwrap_err();
        assert_eq!(err, "element 1: expected an integer, found a string");
        assert!(ParamType::Duration
            .check(&toml::Value::String("6h".into()))
            .is_ok());
        assert!(ParamType::Duration
            .check(&toml::Value::String("6 hours-ish".into()))
            .unwrap_err()
            .starts_with("invalid duration"));
        assert!(ParamType::Float.check(&toml::Value::Integer(2)).is_ok());
        assert!(ParamType::from_name("strng", None).is_err());
        assert!(ParamType::from_name("string", Some("integer")).is_err());
    }
}
