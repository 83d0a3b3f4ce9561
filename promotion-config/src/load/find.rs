//! Finding a service's template: by path, or by name and version in template directories,
//! with its pinned digest checked.

use std::path::{Path, PathBuf};

use super::Loader;
use crate::error::{ConfigError, ErrorKind};
use crate::service::{base_dir_of, Service, TemplateRef};
use crate::source::key;
use crate::template::Template;

impl Loader {
    /// Finds the template `service` names, and checks its pinned digest.
    pub fn find_template(&self, service: &Service) -> Result<Template, ConfigError> {
        let base = service.base_dir();
        let doc = &service.doc;
        let template = match service.template() {
            TemplateRef::Path(p) => {
                let path = resolve(&base, p);
                Template::from_file(&path).map_err(|e| {
                    if e.kind() == ErrorKind::Io {
                        doc.error(
                            ErrorKind::TemplateNotFound,
                            &[key("template"), key("path")],
                            format!("template not found: {}", e.message()),
                        )
                    } else {
                        e
                    }
                })?
            }
            TemplateRef::Named { name, version, dir } => {
                let dirs = self.named_dirs(&base, dir.as_deref());
                find_named(&dirs, name, version).map_err(|nf| {
                    nf.error(|message| {
                        doc.error(
                            ErrorKind::TemplateNotFound,
                            &[key("template"), key("name")],
                            message,
                        )
                    })
                })?
            }
        };
        if let Some(pin) = service.pinned_digest() {
            if *pin != template.id().digest {
                return Err(doc.error(
                    ErrorKind::DigestMismatch,
                    &[key("template"), key("sha256")],
                    format!(
                        "template {}@{} at {} has digest {}, but this service pins {pin}",
                        template.id().name,
                        template.id().version,
                        template.source().path().display(),
                        template.id().digest
                    ),
                ));
            }
        }
        Ok(template)
    }

    /// Finds version `version` of the template `name` where `service` looks for its own
    /// template: its `dir`, the loader's template directories, or the directory of the file
    /// it names by `path` (to build a service under another template version).
    pub fn find_template_version(
        &self,
        service: &Service,
        name: &str,
        version: &str,
    ) -> Result<Template, ConfigError> {
        let base = service.base_dir();
        let dirs: Vec<PathBuf> = match service.template() {
            TemplateRef::Named { dir, .. } => self.named_dirs(&base, dir.as_deref()),
            TemplateRef::Path(p) => {
                let path = resolve(&base, p);
                let mut dirs = vec![base_dir_of(&path)];
                dirs.extend(self.template_dirs.iter().cloned());
                dirs
            }
        };
        find_named(&dirs, name, version)
            .map_err(|nf| nf.error(|m| ConfigError::new(ErrorKind::TemplateNotFound, m)))
    }

    /// Where a template named by `name` and `version` is looked for: the service's `dir`
    /// (relative to `base`), else the loader's template directories, else `templates/`
    /// beside the service file.
    fn named_dirs(&self, base: &Path, dir: Option<&Path>) -> Vec<PathBuf> {
        match dir {
            Some(d) => vec![resolve(base, d)],
            None if self.template_dirs.is_empty() => vec![base.join("templates")],
            None => self.template_dirs.clone(),
        }
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Why no template matched: the message, and notes on what was found instead.
struct NotFound {
    message: String,
    notes: Vec<String>,
}

impl NotFound {
    /// The error `base` makes of the message, with the notes added.
    fn error(self, base: impl FnOnce(String) -> ConfigError) -> ConfigError {
        self.notes
            .into_iter()
            .fold(base(self.message), |e, n| e.note(n))
    }
}

/// Looks for `name@version` among the `*.toml` files of `dirs` and their subdirectories.
fn find_named(dirs: &[PathBuf], name: &str, version: &str) -> Result<Template, NotFound> {
    let mut seen = Vec::new();
    let mut broken = Vec::new();
    for dir in dirs {
        let mut files = Vec::new();
        collect_toml(dir, 2, &mut files);
        files.sort();
        for f in files {
            match Template::from_file(&f) {
                Ok(t) if t.id().name == name && t.id().version == version => return Ok(t),
                Ok(t) => seen.push(format!("{}@{}", t.id().name, t.id().version)),
                Err(e) => broken.push(e.to_string()),
            }
        }
    }
    let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let mut notes = Vec::new();
    if seen.is_empty() {
        notes.push(format!("no template found in {}", shown.join(", ")));
    } else {
        seen.sort();
        seen.dedup();
        notes.push(format!("templates found: {}", seen.join(", ")));
    }
    notes.extend(
        broken
            .into_iter()
            .map(|e| format!("a file there could not be read as a template: {e}")),
    );
    Err(NotFound {
        message: format!(
            "template {name}@{version} not found in {} (looked at every *.toml file)",
            shown.join(", ")
        ),
        notes,
    })
}

fn collect_toml(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && depth > 0 {
            collect_toml(&p, depth - 1, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}
