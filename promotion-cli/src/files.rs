//! Files in the state directory: I/O failures that name the file, every file written whole
//! (through [`promotion_audit::durable`]), and signing keys kept as a pair of files (the private
//! key, mode 0600 from its first byte and never overwritten, and its public half) that an
//! interrupted first run cannot leave unusable.

use std::path::{Path, PathBuf};

use promotion_audit::durable::{self, Existing, FileError};

use crate::failure::Failure;

/// A store failure naming what was tried on which file: `cannot read <path>: <error>`.
pub(crate) fn io(what: &str, path: &Path, e: std::io::Error) -> Failure {
    Failure::Store(format!("{what} {}: {e}", path.display()))
}

fn file_failure(e: &FileError) -> Failure {
    Failure::Store(promotion_core::report_chain(e))
}

/// Removes the temporary files that writes of an earlier run, killed between writing and
/// moving into place, left in `dir` (see [`durable::remove_stale_temps`]), saying so on
/// stderr. Nothing reads them, so a failure to remove one is only reported.
pub(crate) fn tidy(dir: &Path) {
    match durable::remove_stale_temps(dir) {
        Ok(removed) => {
            for path in removed {
                eprintln!(
                    "removed {}: an interrupted earlier run left it",
                    path.display()
                );
            }
        }
        Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!("warning: {}", promotion_core::report_chain(&e)),
    }
}

/// Writes (or replaces) an ordinary state file whole: a manifest, a template, a page.
pub(crate) fn write_state(path: &Path, contents: &[u8]) -> Result<(), Failure> {
    durable::write_file(path, contents, durable::SHARED, Existing::Replace)
        .map_err(|e| file_failure(&e))
}

/// A signing key kept in the state directory as two files.
pub(crate) struct KeyPair<'a, S> {
    /// What the key is, for messages: `checkpoint key`.
    pub(crate) what: &'static str,
    /// The private key's file (mode 0600).
    pub(crate) private: PathBuf,
    /// The public half's file, for verifiers.
    pub(crate) public: PathBuf,
    /// Reads the private key file's text.
    pub(crate) parse: &'a dyn Fn(&str) -> Result<S, String>,
    /// A new key.
    pub(crate) generate: &'a dyn Fn() -> Result<S, String>,
    /// The private key file's text.
    pub(crate) private_text: &'a dyn Fn(&S) -> Result<String, String>,
    /// The public file's text, derived from the key.
    pub(crate) public_text: &'a dyn Fn(&S) -> Result<String, String>,
}

/// A file's text, `None` if it does not exist; blank text counts as no key at all.
fn read_key_file(path: &Path) -> Result<Option<String>, Failure> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("cannot read", path, e)),
    }
}

impl<S> KeyPair<'_, S> {
    /// The key, created with both files on first use, repaired when safe:
    ///
    /// - private key readable, public file missing, empty or cut short: the public file is
    ///   derived from the key and written again;
    /// - private key missing or empty, public file missing or empty: no key was ever usable, so
    ///   nothing was signed with one; a new pair is created (an empty file is what a crash of
    ///   builds before whole-file writes left);
    /// - private key missing or empty while the public file holds a key: refused, with what to
    ///   do, since the log may hold checkpoints only that key signed.
    pub(crate) fn load_or_create(&self) -> Result<S, Failure> {
        if let Some(dir) = self.private.parent() {
            tidy(dir);
        }
        let private = read_key_file(&self.private)?;
        let public = read_key_file(&self.public)?;
        let blank = |t: &Option<String>| t.as_deref().is_none_or(|t| t.trim().is_empty());
        if !blank(&private) {
            let text = private.as_deref().unwrap_or_default();
            let key = (self.parse)(text).map_err(|e| {
                Failure::Store(format!("{} {}: {e}", self.what, self.private.display()))
            })?;
            let derived = (self.public_text)(&key).map_err(|e| self.encoding(&e))?;
            let cut_short = public
                .as_deref()
                .is_none_or(|p| p.len() < derived.len() && derived.starts_with(p));
            if cut_short {
                write_state(&self.public, derived.as_bytes())?;
                eprintln!(
                    "repaired: {} was missing or incomplete (an interrupted first run); wrote it \
                     again from {}",
                    self.public.display(),
                    self.private.display()
                );
            }
            return Ok(key);
        }
        if !blank(&public) {
            let state = if private.is_some() {
                "empty"
            } else {
                "missing"
            };
            return Err(Failure::Store(format!(
                "{what} {key} is {state}, but {public} holds its verifier key: the signing key \
                 is lost. If the log holds checkpoints signed by it, restore {key} from a \
                 backup. If nothing was recorded with it yet, delete {public} and run the \
                 command again to create a new pair.",
                what = self.what,
                key = self.private.display(),
                public = self.public.display(),
            )));
        }
        if let Some(dir) = self.private.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
        }
        let key = (self.generate)()
            .map_err(|e| Failure::Store(format!("cannot generate a {}: {e}", self.what)))?;
        let text = (self.private_text)(&key).map_err(|e| self.encoding(&e))?;
        // An empty file held no key: replace it. A missing one is created only if it still is.
        let existing = if private.is_some() {
            Existing::Replace
        } else {
            Existing::Keep
        };
        durable::write_file(&self.private, text.as_bytes(), durable::PRIVATE, existing)
            .map_err(|e| file_failure(&e))?;
        let public = (self.public_text)(&key).map_err(|e| self.encoding(&e))?;
        write_state(&self.public, public.as_bytes())?;
        Ok(key)
    }

    fn encoding(&self, e: &str) -> Failure {
        Failure::Store(format!("cannot encode the {}: {e}", self.what))
    }
}
