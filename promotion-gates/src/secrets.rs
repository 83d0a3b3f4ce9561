//! Secrets for gates that need credentials: the [`Secret`] value that never shows itself in
//! `Debug` output, evidence or logs, and the [`SecretSource`]s that look secrets up by name (an
//! in-memory map for tests, the host environment for a deployment).
//!
//! The process gate passes secrets to its command as environment variables and redacts them from
//! its output; the webhook gate signs its requests with one. Both are configured with a
//! [`SecretSource`]; `promotion-config` builds one from a pipeline file.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use promotion_core::GateError;

use crate::input::invalid_input;

/// A secret value. Its `Debug` output never shows the value; it has no `Display` and is not
/// serialisable, so it cannot end up in evidence or logs by accident.
///
/// ```
/// use promotion_gates::process::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(s.expose(), "hunter2");
/// assert!(!format!("{s:?}").contains("hunter2"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value itself: pass it on, never print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// Where the host keeps secrets: a vault client, the CI's secret store, a test map.
///
/// Asynchronous because real stores are services. An implementation's errors and its `Debug`
/// output must never contain a secret value: a missing secret is
/// [`GateError::Misconfigured`] naming the secret, a store that does not answer
/// [`GateError::Unavailable`].
///
/// ```
/// use promotion_gates::process::{MemorySecrets, SecretSource};
///
/// let secrets = MemorySecrets::new().with("DEPLOY_TOKEN", "tok-3f9a");
/// let token = futures::executor::block_on(secrets.secret("DEPLOY_TOKEN")).unwrap();
/// assert_eq!(token.expose(), "tok-3f9a");
/// assert!(!format!("{secrets:?}").contains("tok-3f9a"));
/// assert!(futures::executor::block_on(secrets.secret("MISSING")).is_err());
/// ```
#[async_trait]
pub trait SecretSource: Send + Sync + fmt::Debug {
    /// The secret named `name`.
    async fn secret(&self, name: &str) -> Result<Secret, GateError>;
}

#[async_trait]
impl<S: SecretSource + ?Sized> SecretSource for Arc<S> {
    async fn secret(&self, name: &str) -> Result<Secret, GateError> {
        (**self).secret(name).await
    }
}

/// Secrets held in memory (tests, or a host that fetched them already). `Debug` lists the
/// names only.
#[derive(Clone, Default)]
pub struct MemorySecrets {
    values: BTreeMap<String, Secret>,
}

impl MemorySecrets {
    /// No secrets.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds the secret `name`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Secret>) -> Self {
        self.insert(name, value);
        self
    }
    /// Adds or replaces the secret `name`.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Secret>) {
        self.values.insert(name.into(), value.into());
    }
}

impl fmt::Debug for MemorySecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySecrets")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[async_trait]
impl SecretSource for MemorySecrets {
    async fn secret(&self, name: &str) -> Result<Secret, GateError> {
        self.values.get(name).cloned().ok_or_else(|| {
            GateError::Misconfigured(format!(
                "secret `{name}` not found in the in-memory secret source"
            ))
        })
    }
}

/// Secrets read from the host process's environment: secret `NAME` is the variable
/// `<prefix>NAME` (no prefix by default), as CI systems expose their secrets.
///
/// ```
/// use promotion_gates::process::{EnvSecrets, SecretSource};
///
/// let secrets = EnvSecrets::with_prefix("CI_SECRET_");
/// let err = futures::executor::block_on(secrets.secret("NOT_SET_ANYWHERE")).unwrap_err();
/// assert!(err.to_string().contains("CI_SECRET_NOT_SET_ANYWHERE"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct EnvSecrets {
    prefix: String,
}

impl EnvSecrets {
    /// Secret `NAME` is the host variable `NAME`.
    pub fn new() -> Self {
        Self::default()
    }
    /// Secret `NAME` is the host variable `<prefix>NAME`.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        EnvSecrets {
            prefix: prefix.into(),
        }
    }
}

#[async_trait]
impl SecretSource for EnvSecrets {
    async fn secret(&self, name: &str) -> Result<Secret, GateError> {
        let var = format!("{}{name}", self.prefix);
        match std::env::var(&var) {
            Ok(v) => Ok(Secret(v)),
            Err(std::env::VarError::NotPresent) => Err(GateError::Misconfigured(format!(
                "secret `{name}` not found: host environment variable `{var}` is not set"
            ))),
            // The payload of NotUnicode is the value itself: never put it in the message.
            Err(std::env::VarError::NotUnicode(_)) => Err(invalid_input(
                format!("host environment variable `{var}` (secret `{name}`)"),
                None,
                "the value is not valid UTF-8",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_sources_never_show_values() {
        let s = MemorySecrets::new().with("A", "value-one");
        assert_eq!(format!("{s:?}"), r#"MemorySecrets { names: ["A"] }"#);
        assert_eq!(
            format!("{:?}", Secret::new("value-one")),
            "Secret(<redacted>)"
        );
    }
}
