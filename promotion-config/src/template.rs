//! Versioned pipeline templates.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use promotion_core::Digest;
use serde::Deserialize;

use crate::error::{ConfigError, ErrorKind};
use crate::params::{ParamDecl, ParamType, SERVICE_PARAM};
use crate::source::{key, Doc, Seg, SourceFile};

/// The sections a template may have.
const SECTIONS: [&str; 4] = ["template", "params", "pipeline", "stages"];

/// Which template, exactly: its name, its version and the digest of its file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemplateId {
    /// Name (`web-service`).
    pub name: String,
    /// Version (`2.1.0`).
    pub version: String,
    /// SHA-256 of the template file's bytes.
    pub digest: Digest,
}

impl fmt::Display for TemplateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{} {}", self.name, self.version, self.digest)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    name: String,
    version: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamDoc {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    items: Option<String>,
    #[serde(default)]
    default: Option<toml::Value>,
    #[serde(default)]
    description: Option<String>,
}

/// A parsed pipeline template: its identity, its parameters, and its pipeline and stages,
/// instantiated for a service by [`Loader`](crate::Loader).
///
/// ```toml
/// [template]
/// name = "web-service"
/// version = "2.1.0"
///
/// [params.soak]
/// type = "duration"
/// default = "1h"
///
/// [[stages]]
/// name = "production"
/// soak = "{{ soak }}"
/// ```
#[derive(Debug, Clone)]
pub struct Template {
    id: TemplateId,
    description: Option<String>,
    params: Vec<ParamDecl>,
    pub(crate) doc: Arc<Doc>,
}

/// Checks a name or version used in identities: not empty, no whitespace, `@`, `(` or `)`.
pub(crate) fn check_ident(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '@' | '(' | ')' | ';'))
    {
        return Err(format!(
            "the {what} `{value}` contains {c:?}; use letters, digits, `.`, `-`, `_`, `+` or `/`"
        ));
    }
    if value.len() > 64 {
        return Err(format!("the {what} `{value}` is longer than 64 bytes"));
    }
    Ok(())
}

impl Template {
    /// Reads and parses the template at `path`.
    pub fn from_file(path: &Path) -> Result<Template, ConfigError> {
        Template::parse(SourceFile::read(path)?)
    }

    /// Parses a template from `source`.
    pub fn parse(source: SourceFile) -> Result<Template, ConfigError> {
        let doc = Doc::parse(source)?;
        doc.check_sections(&SECTIONS, "a template")?;
        let header = doc.section("template", "the template's `name` and `version`")?;
        let header: Header = doc.deserialize(header, &[key("template")], "template")?;
        for (what, value) in [
            ("template name", &header.name),
            ("version", &header.version),
        ] {
            check_ident(what, value).map_err(|m| {
                let field = if what == "version" { "version" } else { "name" };
                doc.error(ErrorKind::InvalidValue, &[key("template"), key(field)], m)
            })?;
        }
        let raw_params: BTreeMap<String, toml::Value> = match doc.root.get("params") {
            None => BTreeMap::new(),
            Some(v) => doc.deserialize(v.clone(), &[key("params")], "params")?,
        };
        let mut params = Vec::new();
        for (name, value) in raw_params {
            let path = [key("params"), key(&name)];
            if !is_param_name(&name) {
                return Err(doc.error_at_key(
                    ErrorKind::InvalidValue,
                    &path,
                    format!(
                        "parameter name `{name}`: use letters, digits, `_` and `-`, starting \
                         with a letter or `_`"
                    ),
                ));
            }
            if name == SERVICE_PARAM {
                return Err(doc.error_at_key(
                    ErrorKind::InvalidValue,
                    &path,
                    format!(
                        "`{SERVICE_PARAM}` is built in (the service's name); it cannot be declared"
                    ),
                ));
            }
            let p: ParamDoc = doc.deserialize(value, &path, &format!("parameter `{name}`"))?;
            let ty = ParamType::from_name(&p.ty, p.items.as_deref()).map_err(|m| {
                let mut at = path.to_vec();
                at.push(key("type"));
                doc.error(
                    ErrorKind::InvalidValue,
                    &at,
                    format!("parameter `{name}`: {m}"),
                )
            })?;
            if let Some(d) = &p.default {
                ty.check(d).map_err(|m| {
                    let mut at = path.to_vec();
                    at.push(key("default"));
                    doc.error(
                        ErrorKind::ParameterType,
                        &at,
                        format!("parameter `{name}` (type {ty}): default: {m}"),
                    )
                })?;
            }
            params.push(ParamDecl {
                name,
                ty,
                default: p.default,
                description: p.description,
            });
        }
        let id = TemplateId {
            name: header.name,
            version: header.version,
            digest: doc.source.digest(),
        };
        Ok(Template {
            id,
            description: header.description,
            params,
            doc: Arc::new(doc),
        })
    }

    /// Name, version and digest.
    pub fn id(&self) -> &TemplateId {
        &self.id
    }

    /// The description, when it has one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The declared parameters, by name.
    pub fn params(&self) -> &[ParamDecl] {
        &self.params
    }

    /// The file it was read from.
    pub fn source(&self) -> &SourceFile {
        &self.doc.source
    }

    pub(crate) fn param(&self, name: &str) -> Option<&ParamDecl> {
        self.params.iter().find(|p| p.name == name)
    }

    pub(crate) fn param_path(name: &str) -> Vec<Seg> {
        vec![key("params"), key(name)]
    }
}

pub(crate) fn is_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Template, ConfigError> {
        Template::parse(SourceFile::new("t.toml", text))
    }

    #[test]
    fn reads_identity_and_parameters() {
        let t = parse(
            "[template]\nname = \"web\"\nversion = \"2.1.0\"\n\n[params.n]\ntype = \"integer\"\n\
             default = 3\n[params.who]\ntype = \"list\"\nitems = \"string\"\n",
        )
        .unwrap();
        assert_eq!(t.id().name, "web");
        assert_eq!(t.id().version, "2.1.0");
        assert_eq!(t.id().digest, t.source().digest());
        let names: Vec<&str> = t.params().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["n", "who"]);
        assert!(!t.params()[0].is_required());
        assert!(t.params()[1].is_required());
    }

    #[test]
    fn refuses_bad_headers_and_declarations() {
        let err = parse("[templat]\nname = \"x\"\n").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownField);
        assert!(
            err.to_string()
                .starts_with("t.toml:1:2: unknown section `templat`"),
            "{err}"
        );

        let err = parse("[template]\nname = \"x\"\n").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingField);
        assert!(err.to_string().contains("missing field `version`"), "{err}");

        let err = parse("[template]\nname = \"x y\"\nversion = \"1\"\n").unwrap_err();
        assert!(err.to_string().starts_with("t.toml:2:8:"), "{err}");

        let err = parse(
            "[template]\nname = \"x\"\nversion = \"1\"\n[params.n]\ntype = \"integer\"\ndefault = \"3\"\n",
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ParameterType);
        assert!(
            err.to_string()
                .starts_with("t.toml:6:11: parameter `n` (type integer): default: expected an integer, found a string"),
            "{err}"
        );

        let err = parse("[template]\nname = \"x\"\nversion = \"1\"\n[params.n]\ntype = \"int\"\n")
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown parameter type `int`"),
            "{err}"
        );

        let err = parse(
            "[template]\nname = \"x\"\nversion = \"1\"\n[params.service]\ntype = \"string\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("built in"), "{err}");
    }
}
