//! The parameter values a template is instantiated with.

use std::collections::BTreeMap;

use crate::error::{ConfigError, ErrorKind};
use crate::params::SERVICE_PARAM;
use crate::service::Service;
use crate::source::key;
use crate::template::Template;

/// The parameter values for `template`: the service's, checked against the declarations,
/// then the defaults, then `service`.
pub(super) fn resolve_params(
    template: &Template,
    service: Option<&Service>,
) -> Result<BTreeMap<String, toml::Value>, ConfigError> {
    let mut values = BTreeMap::new();
    let tid = format!("{}@{}", template.id().name, template.id().version);
    if let Some(s) = service {
        for (name, value) in s.params() {
            let path = [key("params"), key(name)];
            let Some(decl) = template.param(name) else {
                let declared: Vec<&str> =
                    template.params().iter().map(|p| p.name.as_str()).collect();
                let list = if declared.is_empty() {
                    "it declares no parameters".to_owned()
                } else {
                    format!("it declares: {}", declared.join(", "))
                };
                return Err(s.doc.error_at_key(
                    ErrorKind::UnknownParameter,
                    &path,
                    format!(
                        "unknown parameter `{name}`: template {tid} does not declare it; {list}"
                    ),
                ));
            };
            decl.ty.check(value).map_err(|m| {
                s.doc
                    .error(
                        ErrorKind::ParameterType,
                        &path,
                        format!("parameter `{name}` (type {}): {m}", decl.ty),
                    )
                    .note(format!(
                        "declared at {}",
                        template.doc.locate_key(&Template::param_path(name))
                    ))
            })?;
            values.insert(name.clone(), value.clone());
        }
    }
    for decl in template.params() {
        if values.contains_key(&decl.name) {
            continue;
        }
        match &decl.default {
            Some(d) => {
                values.insert(decl.name.clone(), d.clone());
            }
            None => {
                let declared_at = template.doc.locate_key(&Template::param_path(&decl.name));
                let what = decl
                    .description
                    .as_deref()
                    .map_or_else(String::new, |d| format!(" ({d})"));
                let message = format!(
                    "missing parameter `{}`: template {tid} requires a value of type {}{what}",
                    decl.name, decl.ty
                );
                let e = match service {
                    Some(s) if s.doc.has(&[key("params")]) => {
                        s.doc
                            .error(ErrorKind::MissingParameter, &[key("params")], message)
                    }
                    Some(s) => s
                        .doc
                        .error(ErrorKind::MissingParameter, &[key("template")], message)
                        .note("add a `[params]` section with the value"),
                    None => ConfigError::new(ErrorKind::MissingParameter, message)
                        .at(declared_at.clone()),
                };
                return Err(e.note(format!("declared at {declared_at}")));
            }
        }
    }
    let name = service.map_or_else(|| template.id().name.clone(), |s| s.name().to_owned());
    values.insert(SERVICE_PARAM.to_owned(), toml::Value::String(name));
    Ok(values)
}
