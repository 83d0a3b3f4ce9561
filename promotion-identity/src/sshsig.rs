//! SSH signatures over statements: the SSHSIG format of `ssh-keygen -Y sign` and git's SSH
//! signing (OpenSSH's `PROTOCOL.sshsig`), read and checked with the `ssh-key` crate.
//!
//! [`Roster::verify_signed`] takes the signed bytes (a [`Statement`](crate::Statement)'s
//! [`to_bytes`](crate::Statement::to_bytes)), the armored signature
//! (`-----BEGIN SSH SIGNATURE-----`) and the namespace the application expects, and answers
//! with the roster's [`Principal`] for the key that signed: the identity comes from the roster
//! by the key, never from what the caller claims.
//!
//! The library never holds a person's key for them. [`sign_with_key_file`] signs with an
//! unencrypted OpenSSH private key file (the CLI's `--key FILE`); keys in `ssh-agent` are
//! reached by running `ssh-keygen -Y sign -f key.pub -n promotion statement.json`, which asks
//! the agent for the private half.
//!
//! An auditor holding only the statement, its signature and the roster checks it with OpenSSH,
//! `allowed_signers` being the file [`Roster::allowed_signers`]`("promotion")` renders:
//!
//! ```text
//! ssh-keygen -Y verify -f allowed_signers -I alice -n promotion -s statement.sig < statement.json
//! ```
//!
//! which prints `Good "promotion" signature for alice with ED25519 key SHA256:…` and exits 0,
//! or exits 255 when the statement changed, the namespace differs or the key is not Alice's.

use std::path::Path;

use promotion_core::Principal;
use ssh_key::{HashAlg, LineEnding, PrivateKey, SshSig};

use crate::Roster;

/// The namespace promotion uses unless told otherwise; a signature made for another
/// application (git commits use `git`, files `file`) never verifies as a decision.
pub const DEFAULT_NAMESPACE: &str = "promotion";

/// Why a signature was not accepted, or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The armored signature does not decode as SSHSIG.
    #[error("malformed SSH signature: {0}")]
    Malformed(String),
    /// The signature was made for another namespace.
    #[error("the signature is for namespace {found:?}, expected {expected:?}")]
    WrongNamespace {
        #[allow(missing_docs)]
        expected: String,
        #[allow(missing_docs)]
        found: String,
    },
    /// No person in the roster has the signing key.
    #[error("the signing key {fingerprint} is not in the roster")]
    UnknownKey {
        /// SHA-256 fingerprint of the key the signature names.
        fingerprint: String,
    },
    /// The key is the roster's, but the signature does not match these bytes.
    #[error("the signature by {id}'s key {fingerprint} does not match the statement")]
    BadSignature {
        /// Whose key it is.
        id: String,
        #[allow(missing_docs)]
        fingerprint: String,
    },
    /// The namespace is empty or holds characters an `allowed_signers` file cannot quote.
    #[error("invalid namespace `{0}`: it must be non-empty, without whitespace, quotes, commas or control characters")]
    InvalidNamespace(String),
    /// The private key file could not be read or used.
    #[error("cannot sign with {file}: {problem}")]
    Key {
        #[allow(missing_docs)]
        file: String,
        #[allow(missing_docs)]
        problem: String,
    },
}

pub(crate) fn check_namespace(namespace: &str) -> Result<(), SignatureError> {
    let bad = namespace.is_empty()
        || namespace
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | ',' | '\\'));
    if bad {
        return Err(SignatureError::InvalidNamespace(
            namespace.chars().take(60).collect(),
        ));
    }
    Ok(())
}

impl Roster {
    /// Checks an SSHSIG `armored` signature over `message` for `namespace` and returns the
    /// signer as the roster knows them.
    ///
    /// The signer is found by key among the roster's SSH keys; a key the roster does not list is
    /// [`SignatureError::UnknownKey`] whatever its comment says. The namespace is compared before
    /// the signature, and the signature is checked over exactly `message`.
    pub fn verify_signed(
        &self,
        message: &[u8],
        armored: &str,
        namespace: &str,
    ) -> Result<Principal, SignatureError> {
        check_namespace(namespace)?;
        let sig = SshSig::from_pem(armored.trim().as_bytes())
            .map_err(|e| SignatureError::Malformed(e.to_string()))?;
        if sig.namespace() != namespace {
            return Err(SignatureError::WrongNamespace {
                expected: namespace.to_owned(),
                found: sig.namespace().to_owned(),
            });
        }
        let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
        let person =
            self.person_by_key(sig.public_key())
                .ok_or_else(|| SignatureError::UnknownKey {
                    fingerprint: fingerprint.clone(),
                })?;
        let key = ssh_key::PublicKey::new(sig.public_key().clone(), "");
        key.verify(namespace, message, &sig)
            .map_err(|_| SignatureError::BadSignature {
                id: person.id.to_string(),
                fingerprint,
            })?;
        Ok(person.principal())
    }
}

/// Signs `message` for `namespace` with `key` (SHA-512, as `ssh-keygen -Y sign` does) and
/// returns the armored signature, the text `ssh-keygen` writes to `FILE.sig`.
pub fn sign(key: &PrivateKey, namespace: &str, message: &[u8]) -> Result<String, SignatureError> {
    check_namespace(namespace)?;
    let sig = key
        .sign(namespace, HashAlg::Sha512, message)
        .map_err(|e| SignatureError::Key {
            file: "(in memory)".into(),
            problem: e.to_string(),
        })?;
    sig.to_pem(LineEnding::LF)
        .map_err(|e| SignatureError::Malformed(e.to_string()))
}

/// Signs `message` with the OpenSSH private key in `path` (the CLI's `--key FILE`).
///
/// Passphrase-protected keys are refused with [`SignatureError::Key`]: load them into
/// `ssh-agent` and sign with `ssh-keygen -Y sign -f key.pub` instead, so the passphrase never
/// passes through this library. Ed25519 and ECDSA P-256 key files sign; RSA key files made by
/// OpenSSH do not (a limitation of `ssh-key` 0.6.7, RustCrypto/SSH issue 387) and give a
/// [`SignatureError::Key`] saying to use `ssh-keygen -Y sign`; RSA *signatures* verify.
pub fn sign_with_key_file(
    path: impl AsRef<Path>,
    namespace: &str,
    message: &[u8],
) -> Result<String, SignatureError> {
    let path = path.as_ref();
    let problem = |problem: String| SignatureError::Key {
        file: path.display().to_string(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
    let key = PrivateKey::from_openssh(text.as_bytes()).map_err(|e| problem(e.to_string()))?;
    if key.is_encrypted() {
        return Err(problem(
            "the key is passphrase-protected; add it to ssh-agent and sign with `ssh-keygen -Y sign`".into(),
        ));
    }
    let rsa = matches!(key.algorithm(), ssh_key::Algorithm::Rsa { .. });
    sign(&key, namespace, message).map_err(|e| match e {
        SignatureError::Key { problem: p, .. } if rsa => problem(format!(
            "{p}: this library cannot sign with RSA key files (ssh-key 0.6); sign with \
             `ssh-keygen -Y sign -f KEY -n {namespace} FILE` instead, its signature verifies here"
        )),
        SignatureError::Key { problem: p, .. } => problem(p),
        other => other,
    })
}
