//! The roster: the organisation's list of who may act, kept as a TOML file in version control.
//!
//! ```toml
//! [[people]]
//! id = "alice"
//! name = "Alice Ng"                       # optional, for display
//! groups = ["sre"]
//! ssh_keys = ["ssh-ed25519 AAAAC3Nz… alice@laptop"]
//!
//! [[machines]]
//! id = "ci-web"                           # the principal the token maps to
//! groups = ["ci"]
//! issuer = "https://token.actions.githubusercontent.com"
//! audience = "promotion"
//! [machines.claims]                       # every claim must equal its value exactly
//! repository = "acme/web"
//! ref = "refs/heads/main"
//! ```
//!
//! Group membership comes from here and nowhere else: [`Roster::principal`] gives the
//! [`Principal`] with the roster's groups, [`Roster::verify_signed`](crate::Roster::verify_signed)
//! finds a person by SSH key, [`Roster::verify_oidc`](crate::Roster::verify_oidc) finds a machine
//! by its token's claims.
//!
//! Loading refuses, with the file, the entry and the field named ([`RosterError`]): unknown
//! fields (a typo such as `group =` would otherwise drop a membership silently), invalid ids and
//! groups (empty, invisible or formatting characters, see [`promotion_core::text`]), ids that
//! cannot be written as an OpenSSH `allowed_signers` principal (whitespace, `,`, `*`, `?`, `!`,
//! `"`, a leading `#`: `*` would match every `-I`), two entries with one id, two ids that are
//! one person by the TR39 confusable skeleton ([`promotion_core::text::same_person`]: `dana` and
//! `dаna` with a Cyrillic `а`), one SSH key listed twice, unparseable keys, and machines without
//! claim rules (an issuer such as GitHub signs tokens for every repository on it, so a rule
//! without claims would admit all of them).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use promotion_core::{text, Digest, Group, Principal, PrincipalId};
use serde::Deserialize;
use ssh_key::public::KeyData;
use ssh_key::PublicKey;

/// A loaded, validated roster.
#[derive(Debug, Clone)]
pub struct Roster {
    digest: Digest,
    people: Vec<Person>,
    /// Each SSH key's owner, as an index into `people`.
    by_key: BTreeMap<KeyData, usize>,
    machines: Vec<Machine>,
}

/// A person: who they are, their groups and the SSH keys that sign for them.
#[derive(Debug, Clone)]
pub struct Person {
    /// The principal id decisions are recorded under.
    pub id: PrincipalId,
    /// A display name, if the roster gives one: words separated by single spaces, each checked
    /// like an id for invisible and control characters, in NFC.
    pub name: Option<String>,
    #[allow(missing_docs)] // the field is named for what it holds
    pub groups: BTreeSet<Group>,
    /// The person's SSH public keys; a signature by any of them is theirs.
    pub ssh_keys: Vec<PublicKey>,
}

/// A machine identity: which OIDC tokens stand for which principal.
#[derive(Debug, Clone)]
pub struct Machine {
    /// The principal id a matching token is recorded under.
    pub id: PrincipalId,
    #[allow(missing_docs)] // the field is named for what it holds
    pub groups: BTreeSet<Group>,
    /// The token's `iss`, compared exactly.
    pub issuer: String,
    /// A value the token's `aud` (a string or a list) must hold.
    pub audience: String,
    /// Claims the token must carry with exactly these string values; never empty.
    pub claims: BTreeMap<String, String>,
}

impl Person {
    /// This person as a [`Principal`] with the roster's groups.
    pub fn principal(&self) -> Principal {
        Principal {
            id: self.id.clone(),
            groups: self.groups.clone(),
            verified: None,
        }
    }
}

impl Machine {
    /// This machine as a [`Principal`] with the roster's groups.
    pub fn principal(&self) -> Principal {
        Principal {
            id: self.id.clone(),
            groups: self.groups.clone(),
            verified: None,
        }
    }
}

/// Why a roster was refused: the file, the entry, the field and the problem.
///
/// Its `Display` escapes control, bidi and other invisible characters line by line
/// ([`text::escape`]), so printing an error about a hostile roster cannot rewrite the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterError {
    /// The file as given to [`Roster::load`], or the source name given to [`Roster::parse`].
    pub file: String,
    /// The entry and field, when the problem is inside one.
    pub location: Location,
    /// What is wrong (boxed: the error stays small on the `Ok` path).
    pub problem: Box<RosterProblem>,
}

impl fmt::Display for RosterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = format!("{}: {}{}", self.file, self.location, self.problem);
        for (i, line) in raw.split('\n').enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&text::escape(line))?;
        }
        Ok(())
    }
}

impl std::error::Error for RosterError {}

/// Where in the roster a problem is: `people[2] (dana)`, field `ssh_keys[0]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// `people[i]` or `machines[i]`, zero-based, with the entry's id when it has a valid one.
    pub entry: Option<String>,
    /// The field inside the entry, with an index for lists (`groups[1]`).
    pub field: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(entry) = &self.entry {
            write!(f, "{entry}")?;
            if let Some(field) = &self.field {
                write!(f, ", field `{field}`")?;
            }
            f.write_str(": ")?;
        }
        Ok(())
    }
}

/// What is wrong with a roster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterProblem {
    /// The file could not be read.
    #[error("cannot read the roster: {0}")]
    Io(String),
    /// The TOML does not parse, or does not have the roster's shape (unknown field, wrong type);
    /// the message gives the line and column.
    #[error("{0}")]
    Toml(String),
    /// An id, group or display name is not a valid name.
    #[error("{0}")]
    InvalidName(#[from] promotion_core::InvalidName),
    /// The id cannot be written as an OpenSSH `allowed_signers` principal.
    #[error("id `{id}` cannot be an allowed_signers principal: it contains `{character}` (whitespace, `,` `*` `?` `!` `\"` and a leading `#` are refused)")]
    UnsafePrincipal {
        #[allow(missing_docs)]
        id: String,
        /// The first offending character.
        character: char,
    },
    /// Two entries have the same id.
    #[error("id `{id}` is already used by {first}")]
    DuplicateId {
        #[allow(missing_docs)]
        id: String,
        /// The earlier entry (`people[0]`).
        first: String,
    },
    /// Two different ids are the same person by the confusable skeleton.
    #[error("id `{id}` looks the same as `{other}` ({first}): one person for separation of duties, so the roster must list them once")]
    LookAlike {
        #[allow(missing_docs)]
        id: String,
        /// The earlier, look-alike id.
        other: String,
        /// The earlier entry.
        first: String,
    },
    /// One SSH key is listed for two people (or twice for one).
    #[error("SSH key {fingerprint} is already listed for `{owner}`")]
    DuplicateKey {
        /// The key's SHA-256 fingerprint, as `ssh-keygen -l` prints it.
        fingerprint: String,
        /// The id it was first listed for.
        owner: String,
    },
    /// An SSH key line does not parse as an OpenSSH public key.
    #[error("not an OpenSSH public key line (`keytype base64 [comment]`): {0}")]
    BadKey(String),
    /// A machine has an empty `issuer` or `audience`.
    #[error("must not be empty")]
    Empty,
    /// A machine has no claim rules.
    #[error("a machine needs at least one claim rule: the issuer signs tokens for others too")]
    NoClaims,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoster {
    #[serde(default)]
    people: Vec<RawPerson>,
    #[serde(default)]
    machines: Vec<RawMachine>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPerson {
    id: String,
    name: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    ssh_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    id: String,
    #[serde(default)]
    groups: Vec<String>,
    issuer: String,
    audience: String,
    #[serde(default)]
    claims: BTreeMap<String, String>,
}

/// Collects the context for errors while one file is checked.
struct Checker<'a> {
    file: &'a str,
}

impl Checker<'_> {
    fn err(
        &self,
        entry: Option<&str>,
        field: Option<String>,
        problem: RosterProblem,
    ) -> RosterError {
        RosterError {
            file: self.file.to_owned(),
            location: Location {
                entry: entry.map(str::to_owned),
                field,
            },
            problem: Box::new(problem),
        }
    }

    fn id(&self, entry: &str, raw: &str) -> Result<PrincipalId, RosterError> {
        let field = || Some("id".to_owned());
        let id = PrincipalId::new(raw).map_err(|e| self.err(Some(entry), field(), e.into()))?;
        let bad = id.as_str().char_indices().find(|&(i, c)| {
            c.is_whitespace() || matches!(c, ',' | '*' | '?' | '!' | '"') || (i == 0 && c == '#')
        });
        if let Some((_, character)) = bad {
            return Err(self.err(
                Some(entry),
                field(),
                RosterProblem::UnsafePrincipal {
                    id: id.to_string(),
                    character,
                },
            ));
        }
        Ok(id)
    }

    fn groups(&self, entry: &str, raw: Vec<String>) -> Result<BTreeSet<Group>, RosterError> {
        raw.into_iter()
            .enumerate()
            .map(|(i, g)| {
                Group::new(g)
                    .map_err(|e| self.err(Some(entry), Some(format!("groups[{i}]")), e.into()))
            })
            .collect()
    }
}

impl Roster {
    /// Reads and validates the roster at `path`; errors name the path.
    pub fn load(path: impl AsRef<Path>) -> Result<Roster, RosterError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| RosterError {
            file: file.clone(),
            location: Location::default(),
            problem: Box::new(RosterProblem::Io(e.to_string())),
        })?;
        Roster::parse(&bytes, &file)
    }

    /// Validates a roster from its bytes; `file` names it in errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<Roster, RosterError> {
        let check = Checker { file };
        let text = std::str::from_utf8(bytes)
            .map_err(|e| check.err(None, None, RosterProblem::Toml(format!("not UTF-8: {e}"))))?;
        let raw: RawRoster = toml::from_str(text)
            .map_err(|e| check.err(None, None, RosterProblem::Toml(e.to_string())))?;

        // Every id seen so far by its confusable skeleton, with the entry that holds it: two ids
        // are one person by `text::same_person` exactly when they are equal or their skeletons
        // are, so one map lookup per id replaces comparing every pair.
        let mut ids: BTreeMap<String, (PrincipalId, String)> = BTreeMap::new();
        let mut register = |id: &PrincipalId, entry: &str| -> Result<(), RosterError> {
            let skeleton = text::skeleton(id.as_str());
            if let Some((other, first)) = ids.get(&skeleton) {
                let problem = if other == id {
                    RosterProblem::DuplicateId {
                        id: id.to_string(),
                        first: first.clone(),
                    }
                } else {
                    RosterProblem::LookAlike {
                        id: id.to_string(),
                        other: other.to_string(),
                        first: first.clone(),
                    }
                };
                return Err(check.err(Some(entry), Some("id".into()), problem));
            }
            ids.insert(skeleton, (id.clone(), entry.to_owned()));
            Ok(())
        };

        let mut by_key: BTreeMap<KeyData, usize> = BTreeMap::new();
        let mut people = Vec::with_capacity(raw.people.len());
        for (i, p) in raw.people.into_iter().enumerate() {
            let bare = format!("people[{i}]");
            let id = check.id(&bare, &p.id)?;
            let entry = format!("people[{i}] ({id})");
            register(&id, &entry)?;
            let name = match p.name {
                None => None,
                Some(name) => {
                    // A display name may hold single spaces between words; each word is
                    // checked as a name (so invisible and control characters are refused) and
                    // kept in NFC.
                    let words = name
                        .split(' ')
                        .map(Group::new)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|mut e| {
                            e.kind = "display";
                            e.value = name.chars().take(60).collect();
                            check.err(Some(&entry), Some("name".into()), e.into())
                        })?;
                    Some(
                        words
                            .iter()
                            .map(Group::as_str)
                            .collect::<Vec<_>>()
                            .join(" "),
                    )
                }
            };
            let groups = check.groups(&entry, p.groups)?;
            let mut ssh_keys = Vec::with_capacity(p.ssh_keys.len());
            for (k, line) in p.ssh_keys.iter().enumerate() {
                let field = || Some(format!("ssh_keys[{k}]"));
                if line.chars().any(char::is_control) {
                    return Err(check.err(
                        Some(&entry),
                        field(),
                        RosterProblem::BadKey(
                            "it contains a control character (one key per line)".into(),
                        ),
                    ));
                }
                let key = PublicKey::from_openssh(line.trim()).map_err(|e| {
                    check.err(Some(&entry), field(), RosterProblem::BadKey(e.to_string()))
                })?;
                if let Some(owner) = by_key
                    .get(key.key_data())
                    .map(|&at| people.get(at).map_or(&id, |p: &Person| &p.id))
                {
                    return Err(check.err(
                        Some(&entry),
                        field(),
                        RosterProblem::DuplicateKey {
                            fingerprint: key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
                            owner: owner.to_string(),
                        },
                    ));
                }
                by_key.insert(key.key_data().clone(), people.len());
                ssh_keys.push(key);
            }
            people.push(Person {
                id,
                name,
                groups,
                ssh_keys,
            });
        }

        let mut machines = Vec::with_capacity(raw.machines.len());
        for (i, m) in raw.machines.into_iter().enumerate() {
            let id = check.id(&format!("machines[{i}]"), &m.id)?;
            let entry = format!("machines[{i}] ({id})");
            register(&id, &entry)?;
            let groups = check.groups(&entry, m.groups)?;
            for (field, value) in [("issuer", &m.issuer), ("audience", &m.audience)] {
                if value.trim().is_empty() {
                    return Err(check.err(Some(&entry), Some(field.into()), RosterProblem::Empty));
                }
            }
            if m.claims.is_empty() {
                return Err(check.err(
                    Some(&entry),
                    Some("claims".into()),
                    RosterProblem::NoClaims,
                ));
            }
            machines.push(Machine {
                id,
                groups,
                issuer: m.issuer,
                audience: m.audience,
                claims: m.claims,
            });
        }

        Ok(Roster {
            digest: Digest::of(bytes),
            people,
            by_key,
            machines,
        })
    }

    /// SHA-256 of the roster file's exact bytes, as loaded (`sha256:<hex>`, the same as
    /// `sha256sum roster.toml`). A decision records it, so the audit shows which roster — which
    /// groups, which keys — admitted the person; any edit, even to a comment, changes it.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The people, in file order.
    pub fn people(&self) -> &[Person] {
        &self.people
    }

    /// The machine identities, in file order.
    pub fn machines(&self) -> &[Machine] {
        &self.machines
    }

    /// The principal with this id (a person or a machine), with the roster's groups; `None` if
    /// the roster does not list it or `id` is not a valid id. Look-alike spellings of a listed id are not it.
    pub fn principal(&self, id: &str) -> Option<Principal> {
        // Through PrincipalId, so a decomposed spelling finds the NFC id the roster holds.
        let id = PrincipalId::new(id).ok()?;
        self.people
            .iter()
            .find(|p| p.id == id)
            .map(Person::principal)
            .or_else(|| {
                self.machines
                    .iter()
                    .find(|m| m.id == id)
                    .map(Machine::principal)
            })
    }

    /// The person whose SSH keys include `key`.
    pub fn person_by_key(&self, key: &KeyData) -> Option<&Person> {
        self.by_key.get(key).and_then(|&at| self.people.get(at))
    }

    /// The roster's SSH keys as an OpenSSH `allowed_signers` file (`man ssh-keygen`, section
    /// ALLOWED SIGNERS), one line per key: `id namespaces="NAMESPACE" keytype base64-key`.
    /// Key comments are left out. With it an auditor checks a signature with OpenSSH alone:
    ///
    /// ```text
    /// ssh-keygen -Y verify -f allowed_signers -I alice -n promotion -s statement.sig < statement.json
    /// ```
    pub fn allowed_signers(&self, namespace: &str) -> Result<String, crate::SignatureError> {
        crate::sshsig::check_namespace(namespace)?;
        let mut out = String::new();
        for person in &self.people {
            for key in &person.ssh_keys {
                let bare = PublicKey::new(key.key_data().clone(), "");
                let line = bare
                    .to_openssh()
                    .map_err(|e| crate::SignatureError::Malformed(e.to_string()))?;
                out.push_str(&format!(
                    "{} namespaces=\"{namespace}\" {}\n",
                    person.id,
                    line.trim_end()
                ));
            }
        }
        Ok(out)
    }
}
