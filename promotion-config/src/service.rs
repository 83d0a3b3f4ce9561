//! Service files: which template a service uses, with which parameter values, and how the
//! `promote` command deploys it.
//!
//! ```toml
//! [service]
//! name = "checkout"
//! version = "3"                 # optional: the version of this file's pipeline settings
//!
//! [template]
//! name = "web-service"          # found in a template directory …
//! version = "2.1.0"
//! dir = "../templates"          # optional; relative to this file
//! # path = "../templates/web-service.toml"   # … or named by path
//! # sha256 = "sha256:…"         # optional: refuse any other template file
//!
//! [params]
//! min_tests = 250
//!
//! [deploy]                      # or: deploy = "none" (record only, the default)
//! command = ["./deploy.sh"]     # or a string run with `sh -c`
//! rollback = ["./rollback.sh"]  # optional; default: `command` with PROMOTION_ACTION=rollback
//! timeout = "15m"
//! env = { CLUSTER = "eu-west-1" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use promotion_core::Digest;
use serde::Deserialize;

use crate::duration::DurationValue;
use crate::error::{ConfigError, ErrorKind};
use crate::source::{key, Doc, SourceFile};
use crate::template::check_ident;

const SECTIONS: [&str; 4] = ["service", "template", "params", "deploy"];

/// Where a service's template is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateRef {
    /// A file, relative paths resolved against the service file's directory.
    Path(PathBuf),
    /// By name and version, in a template directory.
    Named {
        /// Template name.
        name: String,
        /// Exact version.
        version: String,
        /// The directory to look in, relative to the service file; `None`: the loader's
        /// template directories.
        dir: Option<PathBuf>,
    },
}

/// How the `promote` command deploys a stage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeploySpec {
    /// Record only: steps are recorded as deployed and nothing runs.
    #[default]
    None,
    /// A command per rollout step and per rollback.
    Command {
        /// Program and arguments for deploying a step.
        command: Vec<String>,
        /// Program and arguments for a rollback; `None`: `command` again, with
        /// `PROMOTION_ACTION=rollback`.
        rollback: Option<Vec<String>>,
        /// Longest a command may run.
        timeout: Duration,
        /// Extra environment variables.
        env: BTreeMap<String, String>,
    },
}

/// Default deploy command timeout.
pub const DEFAULT_DEPLOY_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceHeader {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    roster: Option<String>,
    #[serde(default)]
    identity: Option<String>,
}

/// Where the people who act on a service's releases, and their groups, come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// `roster = "FILE"` in `[service]`: a roster file (people, groups, SSH keys), relative
    /// paths resolved against the service file's directory. Who acts must be listed there, and
    /// groups come from it, never from the caller.
    Roster(PathBuf),
    /// `identity = "unverified"` in `[service]`: callers name themselves and their groups, and
    /// every decision made that way is recorded without a verification.
    Unverified,
    /// Neither: commands a person gives are refused until the service file says which.
    Unset,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateDoc {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CommandDoc {
    Shell(String),
    Argv(Vec<String>),
}

impl CommandDoc {
    fn argv(self) -> Vec<String> {
        match self {
            CommandDoc::Shell(s) => vec!["sh".into(), "-c".into(), s],
            CommandDoc::Argv(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployDoc {
    command: CommandDoc,
    #[serde(default)]
    rollback: Option<CommandDoc>,
    #[serde(default)]
    timeout: Option<DurationValue>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// A parsed service file.
#[derive(Debug, Clone)]
pub struct Service {
    name: String,
    version: Option<String>,
    template: TemplateRef,
    pin: Option<Digest>,
    params: toml::Table,
    deploy: DeploySpec,
    identity: IdentitySource,
    pub(crate) doc: Doc,
}

impl Service {
    /// Reads and parses the service file at `path`.
    pub fn from_file(path: &Path) -> Result<Service, ConfigError> {
        Service::parse(SourceFile::read(path)?)
    }

    /// Parses a service file.
    pub fn parse(source: SourceFile) -> Result<Service, ConfigError> {
        let doc = Doc::parse(source)?;
        doc.check_sections(&SECTIONS, "a service file")?;
        let header = doc.section("service", "the service's `name`")?;
        let header: ServiceHeader = doc.deserialize(header, &[key("service")], "service")?;
        check_ident("service name", &header.name)
            .map_err(|m| doc.error(ErrorKind::InvalidValue, &[key("service"), key("name")], m))?;
        if let Some(v) = &header.version {
            check_ident("service version", v).map_err(|m| {
                doc.error(
                    ErrorKind::InvalidValue,
                    &[key("service"), key("version")],
                    m,
                )
            })?;
        }
        let identity = match (header.roster, header.identity.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(doc.error(
                    ErrorKind::InvalidValue,
                    &[key("service"), key("identity")],
                    "service: give either `roster = \"FILE\"` or `identity = \"unverified\"`, not both"
                        .into(),
                ))
            }
            (Some(r), None) if r.trim().is_empty() => {
                return Err(doc.error(
                    ErrorKind::InvalidValue,
                    &[key("service"), key("roster")],
                    "service: `roster` names no file".into(),
                ))
            }
            (Some(r), None) => IdentitySource::Roster(PathBuf::from(r)),
            (None, Some("unverified")) => IdentitySource::Unverified,
            (None, Some(other)) => {
                return Err(doc.error(
                    ErrorKind::InvalidValue,
                    &[key("service"), key("identity")],
                    format!(
                        "service: `identity` must be \"unverified\" (or name a roster with `roster = \"FILE\"`), found {other:?}"
                    ),
                ))
            }
            (None, None) => IdentitySource::Unset,
        };
        let Some(tref) = doc.root.get("template").cloned() else {
            return Err(doc.error(
                ErrorKind::MissingField,
                &[],
                "missing section `[template]`: name the template with `name` and `version` \
                 (looked up in a template directory) or with `path`"
                    .into(),
            ));
        };
        let t: TemplateDoc = doc.deserialize(tref, &[key("template")], "template")?;
        let at = |field: &str| vec![key("template"), key(field)];
        let template = match (t.path, t.name, t.version) {
            (Some(path), None, None) => {
                if t.dir.is_some() {
                    return Err(doc.error_at_key(
                        ErrorKind::InvalidValue,
                        &at("dir"),
                        "`dir` applies to a template named by `name` and `version`, not by `path`"
                            .into(),
                    ));
                }
                TemplateRef::Path(PathBuf::from(path))
            }
            (None, Some(name), Some(version)) => TemplateRef::Named {
                name,
                version,
                dir: t.dir.map(PathBuf::from),
            },
            (Some(_), _, _) => {
                return Err(doc.error_at_key(
                    ErrorKind::InvalidValue,
                    &at("path"),
                    "name the template either by `path` or by `name` and `version`, not both"
                        .into(),
                ))
            }
            (None, Some(_), None) => {
                return Err(doc.error(
                    ErrorKind::MissingField,
                    &[key("template")],
                    "template: missing field `version`: a template named by `name` needs its exact `version`".into(),
                ))
            }
            (None, None, _) => {
                return Err(doc.error(
                    ErrorKind::MissingField,
                    &[key("template")],
                    "template: missing field `name` (with `version`) or `path`".into(),
                ))
            }
        };
        let pin = match t.sha256 {
            None => None,
            Some(s) => Some(Digest::parse(&s).map_err(|e| {
                doc.error(
                    ErrorKind::InvalidValue,
                    &at("sha256"),
                    format!("template: `sha256`: {e}"),
                )
            })?),
        };
        let params = match doc.root.get("params") {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t.clone(),
            Some(other) => {
                return Err(doc.error(
                    ErrorKind::InvalidValue,
                    &[key("params")],
                    format!(
                        "`params` must be a table of parameter values, found {}",
                        crate::params::kind_of(other)
                    ),
                ))
            }
        };
        let deploy = match doc.root.get("deploy") {
            None => DeploySpec::None,
            Some(toml::Value::String(s)) if s == "none" => DeploySpec::None,
            Some(toml::Value::String(s)) => {
                return Err(doc.error(
                    ErrorKind::InvalidValue,
                    &[key("deploy")],
                    format!(
                        "deploy: expected \"none\" or a `[deploy]` table with a `command`, found \"{s}\""
                    ),
                ))
            }
            Some(v) => {
                let d: DeployDoc = doc.deserialize(v.clone(), &[key("deploy")], "deploy")?;
                let command = d.command.argv();
                if command.first().is_none_or(|p| p.is_empty()) {
                    return Err(doc.error(
                        ErrorKind::InvalidValue,
                        &[key("deploy"), key("command")],
                        "deploy: `command` names no program".into(),
                    ));
                }
                DeploySpec::Command {
                    command,
                    rollback: d.rollback.map(CommandDoc::argv),
                    timeout: d.timeout.map_or(DEFAULT_DEPLOY_TIMEOUT, |t| t.0),
                    env: d.env,
                }
            }
        };
        Ok(Service {
            name: header.name,
            version: header.version,
            template,
            pin,
            params,
            deploy,
            identity,
            doc,
        })
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The version of the service's pipeline settings, when given.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
    /// Where its template is.
    pub fn template(&self) -> &TemplateRef {
        &self.template
    }
    /// The template digest it requires, when it pins one.
    pub fn pinned_digest(&self) -> Option<&Digest> {
        self.pin.as_ref()
    }
    /// The parameter values it gives.
    pub fn params(&self) -> &toml::Table {
        &self.params
    }
    /// How to deploy.
    pub fn deploy(&self) -> &DeploySpec {
        &self.deploy
    }
    /// Where who acts comes from: a roster, the caller's word, or not yet said. A roster's
    /// relative path is resolved against [`base_dir`](Self::base_dir).
    pub fn identity(&self) -> IdentitySource {
        match &self.identity {
            IdentitySource::Roster(p) if p.is_relative() => {
                IdentitySource::Roster(self.base_dir().join(p))
            }
            other => other.clone(),
        }
    }
    /// The file it was read from.
    pub fn source(&self) -> &SourceFile {
        &self.doc.source
    }
    /// The directory relative paths are resolved against: the service file's own.
    pub fn base_dir(&self) -> PathBuf {
        base_dir_of(self.doc.source.path())
    }
}

/// The directory of `file`, `.` for a bare file name.
pub(crate) fn base_dir_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Service, ConfigError> {
        Service::parse(SourceFile::new("svc/promotion.toml", text))
    }

    #[test]
    fn unknown_and_missing_sections_are_named_with_their_place() {
        let err = parse("[servce]\nname = \"x\"\n").unwrap_err().to_string();
        assert!(
            err.starts_with(
                "svc/promotion.toml:1:2: unknown section `servce`; a service file has the sections"
            ),
            "{err}"
        );
        let err = parse("[params]\nn = 1\n").unwrap_err().to_string();
        assert!(
            err.contains("missing section `[service]` with the service's `name`"),
            "{err}"
        );
    }

    #[test]
    fn identity_comes_from_a_roster_beside_the_file_or_is_said_to_be_unverified() {
        let base = "[template]\npath = \"t.toml\"\n";
        let s = parse(&format!(
            "[service]\nname = \"x\"\nroster = \"roster.toml\"\n{base}"
        ))
        .unwrap();
        assert_eq!(
            s.identity(),
            IdentitySource::Roster(PathBuf::from("svc").join("roster.toml"))
        );
        let s = parse(&format!(
            "[service]\nname = \"x\"\nidentity = \"unverified\"\n{base}"
        ))
        .unwrap();
        assert_eq!(s.identity(), IdentitySource::Unverified);
        let s = parse(&format!("[service]\nname = \"x\"\n{base}")).unwrap();
        assert_eq!(s.identity(), IdentitySource::Unset);
        let err = parse(&format!(
            "[service]\nname = \"x\"\nidentity = \"trusted\"\n{base}"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("`identity` must be \"unverified\""), "{err}");
        assert!(err.contains("\"trusted\""), "{err}");
        let err = parse(&format!(
            "[service]\nname = \"x\"\nroster = \"r.toml\"\nidentity = \"unverified\"\n{base}"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn reads_a_service() {
        let s = parse(
            "[service]\nname = \"checkout\"\nversion = \"3\"\n[template]\nname = \"web\"\n\
             version = \"2.1.0\"\n[params]\nn = 3\n[deploy]\ncommand = \"./deploy.sh\"\n\
             timeout = \"5m\"\n",
        )
        .unwrap();
        assert_eq!(s.name(), "checkout");
        assert_eq!(s.version(), Some("3"));
        assert_eq!(s.base_dir(), PathBuf::from("svc"));
        assert!(matches!(s.template(), TemplateRef::Named { name, .. } if name == "web"));
        let DeploySpec::Command {
            command, timeout, ..
        } = s.deploy()
        else {
            panic!("expected a command")
        };
        assert_eq!(command, &["sh", "-c", "./deploy.sh"]);
        assert_eq!(*timeout, Duration::from_secs(300));
    }

    #[test]
    fn refuses_incomplete_references_and_bad_deploys() {
        let err = parse("[service]\nname = \"x\"\n[template]\nname = \"web\"\n").unwrap_err();
        assert!(
            err.to_string().starts_with("svc/promotion.toml:3:1:"),
            "{err}"
        );
        assert!(err.to_string().contains("version"), "{err}");
        let err = parse(
            "[service]\nname = \"x\"\n[template]\npath = \"t.toml\"\n[deploy]\ncommand = [\"d\"]\ntimeout = \"soon\"\n",
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadDuration);
        assert!(
            err.to_string().starts_with("svc/promotion.toml:7:11:"),
            "{err}"
        );
        let err =
            parse("deploy = \"yes\"\n[service]\nname = \"x\"\n[template]\npath = \"t.toml\"\n")
                .unwrap_err();
        assert!(err.to_string().contains("expected \"none\""), "{err}");
    }
}
