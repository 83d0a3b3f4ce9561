//! Who acted, verified: the identity layer of `promotion`.
//!
//! A pure library (no engine, no I/O beyond reading the files it is pointed at, no clock):
//!
//! - [`roster`]: the organisation's [`Roster`] — people with their groups and SSH keys, machine
//!   identities with OIDC claim rules — loaded from TOML with typed errors, its
//!   [digest](Roster::digest), [principals](Roster::principal) and an OpenSSH
//!   [`allowed_signers`](Roster::allowed_signers) file;
//! - [`statement`]: the [`Statement`] a person signs for a decision, with one canonical byte
//!   encoding;
//! - [`sshsig`]: SSH signatures (SSHSIG, `ssh-keygen -Y sign`) over statements, verified
//!   against the roster's keys ([`Roster::verify_signed`]);
//! - [`reverify`]: a [`Reverifier`] holding rosters by digest re-checks, long after, every
//!   SSH-signed decision a release's log entries record (statement against the entry,
//!   signature against the roster's key, groups against the roster);
//! - [`oidc`]: OIDC ID tokens (JWT) for machines, verified against a [`Jwks`] and mapped by the
//!   roster's claim rules ([`Roster::verify_oidc`]).
//!
//! ```
//! use promotion_identity::Roster;
//!
//! let toml = br#"
//! [[people]]
//! id = "alice"
//! groups = ["sre"]
//! ssh_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3gkUzdIMAv+JstNIy/UsLt9+MSkiCfs3hqMy5C6zDR alice@laptop"]
//!
//! [[people]]
//! id = "bob"
//! groups = ["security"]
//! "#;
//! let roster = Roster::parse(toml, "roster.toml")?;
//! let alice = roster.principal("alice").expect("listed");
//! assert!(alice.in_group("sre") && !alice.in_group("security"));
//! assert!(roster.principal("mallory").is_none());
//! assert_eq!(
//!     roster.allowed_signers("promotion")?,
//!     "alice namespaces=\"promotion\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3gkUzdIMAv+JstNIy/UsLt9+MSkiCfs3hqMy5C6zDR\n",
//! );
//!
//! // A look-alike id (Cyrillic `а`) is the same person, so the roster is refused.
//! let twice = "[[people]]\nid = \"dana\"\n[[people]]\nid = \"d\u{430}na\"\n";
//! let err = Roster::parse(twice.as_bytes(), "roster.toml").unwrap_err();
//! assert_eq!(err.to_string(),
//!     "roster.toml: people[1] (d\u{430}na), field `id`: id `d\u{430}na` looks the same as `dana` \
//!      (people[0] (dana)): one person for separation of duties, so the roster must list them once");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod oidc;
pub mod reverify;
pub mod roster;
pub mod sshsig;
pub mod statement;

pub use oidc::{Jwks, OidcError, DEFAULT_LEEWAY};
pub use reverify::{Failure, Problem, Replay, Report, Reverifier};
pub use roster::{Location, Machine, Person, Roster, RosterError, RosterProblem};
pub use sshsig::{sign, sign_with_key_file, SignatureError, DEFAULT_NAMESPACE};
pub use statement::{Decision, Statement, StatementError, STATEMENT_TYPE};
