//! The identity of a built pipeline, carried in its version string so that the audit log
//! records, with every decision, which template (name, version, digest) and which service
//! settings decided.

use std::fmt;

use promotion_core::Digest;

use crate::template::TemplateId;

/// Hex digits of the service file's digest kept in the version string.
pub const SERVICE_DIGEST_HEX: usize = 16;

/// Which template and which service settings a pipeline was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineIdentity {
    /// The service's name.
    pub service: String,
    /// The service file's own version, when it gives one.
    pub service_version: Option<String>,
    /// The digest of the service file; `None` when a template was used on its own.
    pub service_digest: Option<Digest>,
    /// The template's name, version and digest.
    pub template: TemplateId,
}

impl PipelineIdentity {
    /// The pipeline version string the engine records at registration and in every
    /// `pipeline_version_adopted` event, and that approvals are bound to:
    ///
    /// `checkout@3 (template web-service@2.1.0 sha256:<64 hex>; service sha256:<16 hex>)`
    ///
    /// Any change to the template file or to the service file changes it, so approvals given
    /// under the old definition stop counting.
    pub fn version_string(&self) -> String {
        let mut out = self.service.clone();
        if let Some(v) = &self.service_version {
            out.push('@');
            out.push_str(v);
        }
        out.push_str(&format!(
            " (template {}@{} {}",
            self.template.name, self.template.version, self.template.digest
        ));
        if let Some(d) = &self.service_digest {
            out.push_str(&format!("; service sha256:{}", d.short(SERVICE_DIGEST_HEX)));
        }
        out.push(')');
        out
    }
}

impl fmt::Display for PipelineIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.version_string())
    }
}

/// An identity read back from a recorded pipeline version string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedIdentity {
    /// The service's name.
    pub service: String,
    /// The service file's version, when it gave one.
    pub service_version: Option<String>,
    /// Template name.
    pub template_name: String,
    /// Template version.
    pub template_version: String,
    /// Template file digest.
    pub template_digest: Digest,
    /// The first [`SERVICE_DIGEST_HEX`] hex digits of the service file's digest, when the
    /// pipeline was built from a service file.
    pub service_digest_prefix: Option<String>,
}

impl RecordedIdentity {
    /// Parses a version string written by [`PipelineIdentity::version_string`]; `None` for
    /// versions of pipelines built in code.
    ///
    /// ```
    /// use promotion_config::RecordedIdentity;
    /// let v = format!("checkout@3 (template web-service@2.1.0 sha256:{}; service sha256:{})",
    ///                 "ab".repeat(32), "cd".repeat(8));
    /// let id = RecordedIdentity::parse(&v).unwrap();
    /// assert_eq!((id.template_name.as_str(), id.template_version.as_str()), ("web-service", "2.1.0"));
    /// assert_eq!(id.service_version.as_deref(), Some("3"));
    /// assert!(RecordedIdentity::parse("2026.11.1").is_none());
    /// ```
    pub fn parse(version: &str) -> Option<RecordedIdentity> {
        let (head, rest) = version.split_once(" (template ")?;
        let rest = rest.strip_suffix(')')?;
        let (template, service_part) = match rest.split_once("; service sha256:") {
            Some((t, s)) => (t, Some(s.to_owned())),
            None => (rest, None),
        };
        let (name_version, digest) = template.split_once(' ')?;
        let (template_name, template_version) = name_version.split_once('@')?;
        let template_digest = Digest::parse(digest).ok()?;
        let (service, service_version) = match head.split_once('@') {
            Some((s, v)) => (s.to_owned(), Some(v.to_owned())),
            None => (head.to_owned(), None),
        };
        Some(RecordedIdentity {
            service,
            service_version,
            template_name: template_name.to_owned(),
            template_version: template_version.to_owned(),
            template_digest,
            service_digest_prefix: service_part,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_strings_round_trip() {
        let id = PipelineIdentity {
            service: "checkout".into(),
            service_version: Some("3".into()),
            service_digest: Some(Digest::of(b"service")),
            template: TemplateId {
                name: "web-service".into(),
                version: "2.1.0".into(),
                digest: Digest::of(b"template"),
            },
        };
        let v = id.version_string();
        assert!(
            v.starts_with("checkout@3 (template web-service@2.1.0 sha256:"),
            "{v}"
        );
        let back = RecordedIdentity::parse(&v).unwrap();
        assert_eq!(back.template_digest, id.template.digest);
        assert_eq!(back.service, "checkout");
        assert_eq!(
            back.service_digest_prefix.as_deref(),
            Some(Digest::of(b"service").short(16).as_str())
        );
        let alone = PipelineIdentity {
            service_version: None,
            service_digest: None,
            ..id
        };
        let back = RecordedIdentity::parse(&alone.version_string()).unwrap();
        assert_eq!(back.service_version, None);
        assert_eq!(back.service_digest_prefix, None);
    }
}
