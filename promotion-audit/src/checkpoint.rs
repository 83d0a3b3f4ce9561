//! Signed checkpoints: [C2SP tlog-checkpoint] tree heads inside [C2SP signed-note]s, signed
//! with Ed25519, readable by existing transparency tooling (Go's
//! `golang.org/x/mod/sumdb/note`, sigsum, witnesses, ...).
//!
//! A signed checkpoint looks like this:
//!
//! ```text
//! promotion.example/shop-api
//! 20852163
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//!
//! — promotion.example/shop-api Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
//! ```
//!
//! * The **body** (the signed note text) is the origin, the tree size in decimal without leading
//!   zeroes, the standard (padded, RFC 4648 §4) base64 of the 32-byte RFC 6962 root hash, then
//!   optional non-empty extension lines; every line ends with `\n`.
//! * A blank line separates the body from the signature lines.
//! * Each signature line is `— <key name> <base64(key id || signature)>\n` (the dash is
//!   U+2014 EM DASH). The key id is 4 bytes, big-endian:
//!   `SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[..4]`, and the Ed25519
//!   signature covers the body including its final newline but not the blank line.
//! * Verifier keys are `<name>+<8 hex key id>+<base64(0x01 || public key)>`; signer keys are
//!   `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 || 32-byte seed)>`.
//!
//! Verification follows the signed-note rules: signatures by other keys (even with the same
//! name or the same key id, but not both) are ignored; a signature by the trusted key that
//! does not verify rejects the whole note.
//!
//! [C2SP tlog-checkpoint]: https://c2sp.org/tlog-checkpoint
//! [C2SP signed-note]: https://c2sp.org/signed-note

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};

/// A SHA-256 hash (the same type as `crate::merkle::Hash`).
type Hash = [u8; 32];

/// The signature type byte of Ed25519 note signatures.
const ALG_ED25519: u8 = 0x01;

/// The prefix of every signature line: U+2014 EM DASH, then a space.
pub(crate) const SIG_PREFIX: &str = "\u{2014} ";

/// The most signature lines a note may carry (Go's note package uses the same limit; the
/// signed-note specification requires at least 16).
pub(crate) const MAX_SIGNATURES: usize = 100;

/// A tree head: what a checkpoint commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `promotion.example/shop-api`: non-empty, no newline (nor any
    /// other ASCII control character).
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 6962 Merkle tree root hash at `size`.
    pub root: Hash,
    /// Optional extra body lines, each non-empty and free of newlines and control characters.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note body: `"<origin>\n<size>\n<base64 root>\n"` followed by one line per extension.
    ///
    /// This only formats; see [`Checkpoint::validate`] for whether the result reads back as
    /// this checkpoint.
    pub fn body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for extension in &self.extensions {
            body.push_str(extension);
            body.push('\n');
        }
        body
    }

    /// Parses a body (exactly as produced by [`Checkpoint::body`]), validating every line.
    ///
    /// Refused with [`CheckpointError::Malformed`] (naming the 1-based line): a text not ending
    /// in a newline, fewer than three lines, an empty line, any ASCII control character
    /// (including a carriage return), a size that is not plain decimal (sign, leading zero,
    /// overflow) and a root that is not the canonical padded base64 of exactly 32 bytes.
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        let line_count = text.split('\n').count();
        let Some(inner) = text.strip_suffix('\n') else {
            return Err(malformed(
                line_count,
                "the body does not end with a newline",
            ));
        };
        let mut lines = inner
            .split('\n')
            .enumerate()
            .map(|(index, line)| (index.saturating_add(1), line));

        let origin = match lines.next() {
            Some((number, line)) => check_line(number, line, "origin")?,
            None => return Err(malformed(1, "missing origin line")),
        };
        let size = match lines.next() {
            Some((number, line)) => parse_size(number, check_line(number, line, "tree size")?)?,
            None => return Err(malformed(2, "missing tree size line")),
        };
        let root = match lines.next() {
            Some((number, line)) => parse_root(number, check_line(number, line, "root hash")?)?,
            None => return Err(malformed(3, "missing root hash line")),
        };
        let extensions = lines
            .map(|(number, line)| check_line(number, line, "extension line").map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// Checks that this checkpoint can be signed: the origin and every extension are non-empty
    /// and free of newlines and other ASCII control characters, so that [`Checkpoint::body`]
    /// parses back to exactly this checkpoint.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        check_line(1, &self.origin, "origin")?;
        for (index, extension) in self.extensions.iter().enumerate() {
            check_line(index.saturating_add(4), extension, "extension line")?;
        }
        // Belt and braces: the body must read back as this very checkpoint.
        if Self::parse_body(&self.body())? != *self {
            return Err(malformed(
                1,
                "the body does not parse back to the same checkpoint",
            ));
        }
        Ok(())
    }
}

/// Why a checkpoint or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The note or checkpoint body is not well formed.
    #[error("malformed checkpoint note at line {line}: {problem}")]
    Malformed {
        /// The 1-based line in the note (the body starts at line 1).
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// A key name or key string is invalid (the message never contains private key material).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The note has no signature by the verifier's key.
    #[error("the note has no signature by key {name}")]
    UnknownKey {
        /// The verifier key's name and key id, as `<name>+<8 hex key id>`.
        name: String,
    },
    /// A signature line for the verifier's key exists but does not verify.
    #[error("the signature by key {name} does not verify")]
    BadSignature {
        /// The key's name and key id, as `<name>+<8 hex key id>`.
        name: String,
    },
    /// The operating system's random generator failed while generating a key.
    #[error("could not generate a key: {0}")]
    KeyGeneration(String),
}

/// Signs checkpoints with an Ed25519 key under a key name.
///
/// Its [`Debug`](std::fmt::Debug) output shows the name and key id only, never the seed.
pub struct CheckpointSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl CheckpointSigner {
    /// From a key name (non-empty, no whitespace, no `+`, no control characters) and a 32-byte
    /// Ed25519 seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, CheckpointError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id(name, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// A fresh key from the OS random generator.
    pub fn generate(name: &str) -> Result<Self, CheckpointError> {
        check_name(name)?;
        Self::from_seed(name, random_seed()?)
    }

    /// Parses the note package's private key string `PRIVATE+KEY+<name>+<hexid>+<base64>`,
    /// checking that the key id matches the name and the public key derived from the seed.
    pub fn from_private_key(text: &str) -> Result<Self, CheckpointError> {
        let (name, claimed_id, seed) = parse_private_key(text, "signer", ALG_ED25519)?;
        let signer = Self::from_seed(name, seed)?;
        check_key_id("signer", name, claimed_id, signer.key_id)?;
        Ok(signer)
    }

    /// The private key string `PRIVATE+KEY+<name>+<hexid>+<base64(0x01 || seed)>`, to store
    /// in a secret manager.
    pub fn private_key(&self) -> String {
        format_private_key(&self.name, self.key_id, &self.key.to_bytes(), ALG_ED25519)
    }

    /// The verifier key string `<name>+<hexid>+<base64(0x01 || public key)>` that auditors use.
    pub fn verifier_key(&self) -> String {
        self.verifier().verifier_key()
    }

    /// The verifier for this signer's key.
    pub fn verifier(&self) -> CheckpointVerifier {
        CheckpointVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-bit key id (the first 4 bytes, big-endian, of
    /// `SHA-256(name || 0x0A || 0x01 || public key)`).
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signed note: the body, a blank line, and `— <name> <base64(key id || signature)>\n`.
    ///
    /// A checkpoint that [`Checkpoint::validate`] refuses (an origin or extension that is empty
    /// or holds a newline or control character) is never signed, since its body would read back
    /// as a different checkpoint: the result is then an empty string, which every verifier
    /// refuses. Use [`CheckpointSigner::try_sign`] to get the reason instead.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        self.try_sign(checkpoint).unwrap_or_default()
    }

    /// Like [`CheckpointSigner::sign`], but refuses an invalid checkpoint with the reason.
    pub fn try_sign(&self, checkpoint: &Checkpoint) -> Result<String, CheckpointError> {
        checkpoint.validate()?;
        Ok(self.sign_text(&checkpoint.body()))
    }

    /// Signs an arbitrary note text (which must end in a newline; callers guarantee it).
    fn sign_text(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + 64);
        blob.extend_from_slice(&self.key_id.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        )
    }
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// Verifies signed checkpoints against one trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CheckpointVerifier {
    /// Parses a verifier key string `<name>+<hexid>+<base64(0x01 || public key)>`, checking
    /// the key id and refusing non-canonical and small-order (weak) public keys.
    pub fn from_verifier_key(text: &str) -> Result<Self, CheckpointError> {
        let mut parts = text.splitn(3, '+');
        let (name, claimed_id, material) = split_key_fields(&mut parts, "verifier")?;
        let bytes = decode_key_material(name, material, "verifier")?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| {
            CheckpointError::InvalidKey(format!(
                "verifier key for {name:?}: not a valid Ed25519 public key"
            ))
        })?;
        if key.to_bytes() != bytes || key.is_weak() {
            return Err(CheckpointError::InvalidKey(format!(
                "verifier key for {name:?}: non-canonical or small-order Ed25519 public key"
            )));
        }
        let key_id = key_id(name, &key);
        check_key_id("verifier", name, claimed_id, key_id)?;
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// The verifier key string `<name>+<hexid>+<base64(0x01 || public key)>`.
    pub fn verifier_key(&self) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_key_material(self.key.as_bytes())
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-bit key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Verifies a signed note (other signatures by other keys may be present and are ignored)
    /// and parses its body as a checkpoint.
    ///
    /// The origin is not required to equal the key name (the specification only recommends
    /// it); compare [`Checkpoint::origin`] yourself if your deployment requires it.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        let body = verify_note(note, self)?;
        Checkpoint::parse_body(&body)
    }

    /// `<name>+<hexid>`: how errors name this key.
    fn display_name(&self) -> String {
        format!("{}+{:08x}", self.name, self.key_id)
    }
}

/// Verifies any signed note (not only checkpoints) against `verifier` and returns its text
/// (the body, including its final newline).
///
/// Follows the C2SP signed-note rules: the note must be free of ASCII control characters other
/// than newline; the text is separated from the signature lines by the last blank line; every
/// signature line must be well formed; signatures whose key name and key id do not both match
/// the verifier are ignored; the first signature by the verifier's key must verify
/// ([`CheckpointError::BadSignature`] otherwise); with none, [`CheckpointError::UnknownKey`].
pub fn verify_note(note: &str, verifier: &CheckpointVerifier) -> Result<String, CheckpointError> {
    if let Some(position) = note.find(|c: char| c < ' ' && c != '\n') {
        let line = line_of(note, position);
        return Err(malformed(line, "ASCII control character in the note"));
    }
    let last_line = note.split('\n').count();
    let Some(split) = note.rfind("\n\n") else {
        return Err(malformed(
            last_line,
            "no blank line separating the text from the signatures",
        ));
    };
    let (Some(text), Some(signatures)) = (note.get(..=split), note.get(split.saturating_add(2)..))
    else {
        return Err(malformed(last_line, "cannot split the note"));
    };
    let Some(signatures) = signatures.strip_suffix('\n') else {
        return Err(malformed(
            last_line,
            "the note does not end with a newline-terminated signature line",
        ));
    };
    if signatures.is_empty() {
        return Err(malformed(
            last_line,
            "no signature lines after the blank line",
        ));
    }

    // The text has `text_lines` lines, then the blank line, then the signature lines.
    let text_lines = text.matches('\n').count();
    let mut found = false;
    for (index, line) in signatures.split('\n').enumerate() {
        let number = text_lines.saturating_add(2).saturating_add(index);
        if index >= MAX_SIGNATURES {
            return Err(malformed(number, "too many signature lines"));
        }
        let (name, key_id, signature) = parse_signature_line(number, line)?;
        if found || name != verifier.name || key_id != verifier.key_id {
            continue;
        }
        found = true;
        let verified = Signature::from_slice(&signature)
            .ok()
            .is_some_and(|signature| {
                verifier
                    .key
                    .verify_strict(text.as_bytes(), &signature)
                    .is_ok()
            });
        if !verified {
            return Err(CheckpointError::BadSignature {
                name: verifier.display_name(),
            });
        }
    }
    if found {
        Ok(text.to_owned())
    } else {
        Err(CheckpointError::UnknownKey {
            name: verifier.display_name(),
        })
    }
}

/// Parses `— <name> <base64(key id || signature)>` into the name, key id and signature bytes.
pub(crate) fn parse_signature_line(
    number: usize,
    line: &str,
) -> Result<(&str, u32, Vec<u8>), CheckpointError> {
    let Some(rest) = line.strip_prefix(SIG_PREFIX) else {
        return Err(malformed(
            number,
            "a signature line must start with an em dash (U+2014) and a space",
        ));
    };
    let Some((name, encoded)) = rest.split_once(' ') else {
        return Err(malformed(
            number,
            "a signature line needs a key name and a signature",
        ));
    };
    if !is_valid_name(name) {
        return Err(malformed(number, "invalid key name in the signature line"));
    }
    let blob = STANDARD
        .decode(encoded)
        .map_err(|_| malformed(number, "the signature is not valid base64"))?;
    let (Some(id), Some(signature)) = (blob.get(..4), blob.get(4..)) else {
        return Err(malformed(number, "the signature is too short"));
    };
    if signature.is_empty() {
        return Err(malformed(number, "the signature is too short"));
    }
    let key_id = id
        .iter()
        .fold(0_u32, |id, byte| (id << 8) | u32::from(*byte));
    Ok((name, key_id, signature.to_vec()))
}

/// The signed-note key id of an Ed25519 key: `SHA-256(name || 0x0A || 0x01 || key)[..4]`,
/// big-endian.
fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    key_id_for(name, ALG_ED25519, key)
}

/// `SHA-256(name || 0x0A || algorithm || key)[..4]`, big-endian: the key id of a note
/// signature (algorithm 0x01) or a cosignature (0x04).
pub(crate) fn key_id_for(name: &str, algorithm: u8, key: &VerifyingKey) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', algorithm])
        .chain_update(key.as_bytes())
        .finalize();
    digest
        .iter()
        .take(4)
        .fold(0_u32, |id, byte| (id << 8) | u32::from(*byte))
}

/// A fresh 32-byte Ed25519 seed from the OS random generator.
pub(crate) fn random_seed() -> Result<[u8; 32], CheckpointError> {
    let mut seed = [0_u8; 32];
    OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|error| CheckpointError::KeyGeneration(error.to_string()))?;
    Ok(seed)
}

/// Reads `PRIVATE+KEY+<name>+<hexid>+<base64(algorithm || seed)>`: the name, the key id the
/// string claims, and the seed. `kind` names the key in errors (`signer`, `witness`); the
/// caller checks the claimed id against the key with [`check_key_id`].
pub(crate) fn parse_private_key<'a>(
    text: &'a str,
    kind: &str,
    algorithm: u8,
) -> Result<(&'a str, u32, [u8; 32]), CheckpointError> {
    let mut parts = text.splitn(5, '+');
    if parts.next() != Some("PRIVATE") || parts.next() != Some("KEY") {
        return Err(CheckpointError::InvalidKey(format!(
            "a {kind} key must start with \"PRIVATE+KEY+\""
        )));
    }
    let (name, claimed_id, material) = split_key_fields(&mut parts, kind)?;
    let seed = decode_key_material_for(name, material, kind, algorithm)?;
    Ok((name, claimed_id, seed))
}

/// `PRIVATE+KEY+<name>+<hexid>+<base64(algorithm || seed)>`.
pub(crate) fn format_private_key(
    name: &str,
    key_id: u32,
    seed: &[u8; 32],
    algorithm: u8,
) -> String {
    format!(
        "PRIVATE+KEY+{name}+{key_id:08x}+{}",
        encode_key_material_for(seed, algorithm)
    )
}

/// Refuses a key string whose key id is not the one its name and public key give.
pub(crate) fn check_key_id(
    kind: &str,
    name: &str,
    claimed: u32,
    actual: u32,
) -> Result<(), CheckpointError> {
    if claimed == actual {
        return Ok(());
    }
    Err(CheckpointError::InvalidKey(format!(
        "{kind} key for {name:?}: key id {claimed:08x} does not match the key (expected {actual:08x})"
    )))
}

/// Reads `<name>`, `<hexid>` and `<base64>` from a key string split on `+`.
pub(crate) fn split_key_fields<'a>(
    parts: &mut impl Iterator<Item = &'a str>,
    kind: &str,
) -> Result<(&'a str, u32, &'a str), CheckpointError> {
    let (Some(name), Some(hex_id), Some(material)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(CheckpointError::InvalidKey(format!(
            "a {kind} key needs a name, a key id and key material separated by '+'"
        )));
    };
    check_name(name)?;
    let mut id = [0_u8; 4];
    if hex_id.len() != 8 || hex::decode_to_slice(hex_id, &mut id).is_err() {
        return Err(CheckpointError::InvalidKey(format!(
            "{kind} key for {name:?}: the key id must be 8 hexadecimal digits"
        )));
    }
    Ok((name, u32::from_be_bytes(id), material))
}

/// Decodes `base64(0x01 || 32 bytes)`; the error never echoes the material.
fn decode_key_material(
    name: &str,
    material: &str,
    kind: &str,
) -> Result<[u8; 32], CheckpointError> {
    decode_key_material_for(name, material, kind, ALG_ED25519)
}

/// Decodes `base64(algorithm || 32 bytes)`; the error never echoes the material.
pub(crate) fn decode_key_material_for(
    name: &str,
    material: &str,
    kind: &str,
    expected: u8,
) -> Result<[u8; 32], CheckpointError> {
    let bytes = STANDARD.decode(material).map_err(|_| {
        CheckpointError::InvalidKey(format!(
            "{kind} key for {name:?}: key material is not valid base64"
        ))
    })?;
    match bytes.split_first() {
        Some((algorithm, key)) if *algorithm == expected => <[u8; 32]>::try_from(key).map_err(|_| {
            CheckpointError::InvalidKey(format!(
                "{kind} key for {name:?}: Ed25519 key material must be 32 bytes, not {}",
                key.len()
            ))
        }),
        Some((algorithm, _)) => Err(CheckpointError::InvalidKey(format!(
            "{kind} key for {name:?}: unknown signature algorithm {algorithm:#04x} (expected {expected:#04x})"
        ))),
        None => Err(CheckpointError::InvalidKey(format!(
            "{kind} key for {name:?}: empty key material"
        ))),
    }
}

/// `base64(0x01 || key)`.
fn encode_key_material(key: &[u8; 32]) -> String {
    encode_key_material_for(key, ALG_ED25519)
}

/// `base64(algorithm || key)`.
pub(crate) fn encode_key_material_for(key: &[u8; 32], algorithm: u8) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(algorithm);
    bytes.extend_from_slice(key);
    STANDARD.encode(bytes)
}

/// A key name must be non-empty with no Unicode whitespace, no `+` and no control characters.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

pub(crate) fn check_name(name: &str) -> Result<(), CheckpointError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(CheckpointError::InvalidKey(format!(
            "invalid key name {name:?}: it must be non-empty with no whitespace, '+' or control characters"
        )))
    }
}

/// A body line must be non-empty and free of ASCII control characters.
fn check_line<'a>(number: usize, line: &'a str, what: &str) -> Result<&'a str, CheckpointError> {
    if line.is_empty() {
        return Err(malformed(number, &format!("the {what} is an empty line")));
    }
    if line.contains('\r') {
        return Err(malformed(
            number,
            &format!("the {what} contains a carriage return (CRLF)"),
        ));
    }
    if line.chars().any(|c| c < ' ') {
        return Err(malformed(
            number,
            &format!("the {what} contains a control character"),
        ));
    }
    Ok(line)
}

fn parse_size(number: usize, line: &str) -> Result<u64, CheckpointError> {
    if !line.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(
            number,
            "the tree size must be plain decimal digits",
        ));
    }
    if line.len() > 1 && line.starts_with('0') {
        return Err(malformed(number, "the tree size has a leading zero"));
    }
    line.parse::<u64>()
        .map_err(|_| malformed(number, "the tree size does not fit in 64 bits"))
}

fn parse_root(number: usize, line: &str) -> Result<Hash, CheckpointError> {
    let bytes = STANDARD
        .decode(line)
        .map_err(|_| malformed(number, "the root hash is not canonical padded base64"))?;
    let root = Hash::try_from(bytes.as_slice()).map_err(|_| {
        malformed(
            number,
            &format!("the root hash must be 32 bytes, not {}", bytes.len()),
        )
    })?;
    if STANDARD.encode(root) != line {
        return Err(malformed(number, "the root hash is not canonical base64"));
    }
    Ok(root)
}

/// The 1-based line holding byte `position` of `text`.
fn line_of(text: &str, position: usize) -> usize {
    text.get(..position)
        .map_or(0, |before| before.matches('\n').count())
        .saturating_add(1)
}

pub(crate) fn malformed(line: usize, problem: &str) -> CheckpointError {
    CheckpointError::Malformed {
        line,
        problem: problem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Known-answer values from Go's golang.org/x/mod/sumdb/note (note.go package docs and
    // note_test.go: TestNewVerifier, TestNewSigner, TestSign, TestOpen).
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_KEY_ID: u32 = 0xc74f_20a3;
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const GO_ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const GO_ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    // The C2SP tlog-checkpoint example body.
    const C2SP_BODY: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    const ROOT_B64: &str = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";

    fn go_note() -> String {
        format!("{GO_TEXT}\n{GO_PETER_SIG}")
    }

    fn signer() -> CheckpointSigner {
        CheckpointSigner::from_seed("promotion.example/shop-api", [7; 32]).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "promotion.example/shop-api".to_owned(),
            size: 42,
            root: [0xab; 32],
            extensions: Vec::new(),
        }
    }

    fn is_malformed(result: &Result<impl std::fmt::Debug, CheckpointError>) -> bool {
        matches!(result, Err(CheckpointError::Malformed { .. }))
    }

    fn is_invalid_key<T>(result: &Result<T, CheckpointError>) -> bool {
        matches!(result, Err(CheckpointError::InvalidKey(_)))
    }

    // --- Go known-answer tests -------------------------------------------------------------

    #[test]
    fn go_verifier_key_parses_and_round_trips() {
        let verifier = CheckpointVerifier::from_verifier_key(GO_VKEY).unwrap();
        assert_eq!(verifier.name(), "PeterNeumann");
        assert_eq!(verifier.key_id(), GO_KEY_ID);
        assert_eq!(verifier.verifier_key(), GO_VKEY);
    }

    #[test]
    fn go_signed_note_verifies() {
        let verifier = CheckpointVerifier::from_verifier_key(GO_VKEY).unwrap();
        assert_eq!(verify_note(&go_note(), &verifier).unwrap(), GO_TEXT);
        // Not a checkpoint: the signature verifies but the body is not a tree head.
        assert!(is_malformed(&verifier.verify(&go_note())));
    }

    #[test]
    fn go_signer_key_reproduces_the_published_note_and_keys() {
        let signer = CheckpointSigner::from_private_key(GO_SKEY).unwrap();
        assert_eq!(signer.name(), "PeterNeumann");
        assert_eq!(signer.key_id(), GO_KEY_ID);
        assert_eq!(signer.private_key(), GO_SKEY);
        assert_eq!(signer.verifier_key(), GO_VKEY);
        assert_eq!(
            signer.verifier(),
            CheckpointVerifier::from_verifier_key(GO_VKEY).unwrap()
        );
        // Ed25519 is deterministic: the same key and text give the published bytes.
        assert_eq!(signer.sign_text(GO_TEXT), go_note());
    }

    #[test]
    fn go_open_with_two_signatures() {
        let peter = CheckpointVerifier::from_verifier_key(GO_VKEY).unwrap();
        let enoch = CheckpointVerifier::from_verifier_key(GO_ENOCH_VKEY).unwrap();
        assert_eq!(enoch.key_id(), 0xaf0c_fe78);
        let note = format!("{GO_TEXT}\n{GO_PETER_SIG}{GO_ENOCH_SIG}");
        assert_eq!(verify_note(&note, &peter).unwrap(), GO_TEXT);
        assert_eq!(verify_note(&note, &enoch).unwrap(), GO_TEXT);
        // Enoch's key does not sign the Peter-only note.
        assert_eq!(
            verify_note(&go_note(), &enoch),
            Err(CheckpointError::UnknownKey {
                name: "EnochRoot+af0cfe78".to_owned()
            })
        );
        // Duplicate signatures are tolerated.
        let dup = format!("{GO_TEXT}\n{GO_PETER_SIG}{GO_PETER_SIG}{GO_ENOCH_SIG}");
        assert_eq!(verify_note(&dup, &peter).unwrap(), GO_TEXT);
    }

    #[test]
    fn go_invalid_signature_is_bad_signature() {
        let peter = CheckpointVerifier::from_verifier_key(GO_VKEY).unwrap();
        let sig = format!("{}ABCD{}", &GO_PETER_SIG[..60], &GO_PETER_SIG[60..]);
        assert_eq!(
            verify_note(&format!("{GO_TEXT}\n{sig}"), &peter),
            Err(CheckpointError::BadSignature {
                name: "PeterNeumann+c74f20a3".to_owned()
            })
        );
        // A bad signature by an unknown key is ignored.
        let enoch_bad = format!("{}ABCD{}", &GO_ENOCH_SIG[..60], &GO_ENOCH_SIG[60..]);
        let note = format!("{GO_TEXT}\n{GO_PETER_SIG}{enoch_bad}");
        assert_eq!(verify_note(&note, &peter).unwrap(), GO_TEXT);
    }

    #[test]
    fn go_malformed_notes_are_refused() {
        let peter = CheckpointVerifier::from_verifier_key(GO_VKEY).unwrap();
        let bad = [
            GO_TEXT.to_owned(),
            format!("{GO_TEXT}\n"),
            format!("{GO_TEXT}\n{}", GO_PETER_SIG.trim_end_matches('\n')),
            format!("\u{1}{GO_TEXT}\n{GO_PETER_SIG}"),
            format!("{GO_TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="),
            format!("{GO_TEXT}\n{GO_PETER_SIG}Unexpected line.\n"),
            format!("{GO_TEXT}\n{}", GO_PETER_SIG.repeat(101)),
        ];
        for note in &bad {
            assert!(is_malformed(&verify_note(note, &peter)), "{note:?}");
        }
    }

    #[test]
    fn go_key_manglings_are_refused() {
        for (key, parse) in [
            (
                GO_VKEY,
                (|k: &str| CheckpointVerifier::from_verifier_key(k).map(|_| ()))
                    as fn(&str) -> Result<(), CheckpointError>,
            ),
            (GO_SKEY, |k: &str| {
                CheckpointSigner::from_private_key(k).map(|_| ())
            }),
        ] {
            assert!(parse(key).is_ok());
            let bytes = key.as_bytes();
            for i in 0..=bytes.len() {
                for j in i + 1..=bytes.len() {
                    if i == 0 && j == bytes.len() {
                        continue;
                    }
                    let sub = std::str::from_utf8(&bytes[i..j]).unwrap();
                    assert!(is_invalid_key(&parse(sub)), "{sub:?}");
                }
            }
            for i in 0..bytes.len() {
                let mut changed = bytes.to_vec();
                changed[i] += 1;
                let changed = String::from_utf8(changed).unwrap();
                assert!(is_invalid_key(&parse(&changed)), "{changed:?}");
            }
        }
        // Wrong key length and unknown algorithm, each with an adjusted key hash (from Go).
        for key in [
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ] {
            assert!(is_invalid_key(&CheckpointVerifier::from_verifier_key(key)));
        }
    }

    // --- body format -----------------------------------------------------------------------

    #[test]
    fn body_format_is_exact() {
        let cp = Checkpoint {
            origin: "example.com/behind-the-sofa".to_owned(),
            size: 20_852_163,
            root: STANDARD.decode(ROOT_B64).unwrap().try_into().unwrap(),
            extensions: Vec::new(),
        };
        assert_eq!(cp.body(), C2SP_BODY);
        assert_eq!(Checkpoint::parse_body(C2SP_BODY).unwrap(), cp);

        let with_ext = Checkpoint {
            extensions: vec!["ext one".to_owned(), "two".to_owned()],
            ..cp
        };
        assert_eq!(with_ext.body(), format!("{C2SP_BODY}ext one\ntwo\n"));
        assert_eq!(Checkpoint::parse_body(&with_ext.body()).unwrap(), with_ext);

        let empty = Checkpoint {
            origin: "o".to_owned(),
            size: 0,
            root: [0; 32],
            extensions: Vec::new(),
        };
        assert_eq!(
            empty.body(),
            "o\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
        );
        assert_eq!(Checkpoint::parse_body(&empty.body()).unwrap(), empty);
    }

    fn malformed_line(text: &str) -> usize {
        match Checkpoint::parse_body(text) {
            Err(CheckpointError::Malformed { line, .. }) => line,
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    #[test]
    fn parse_body_rejects_missing_lines() {
        assert_eq!(malformed_line(""), 1);
        assert_eq!(malformed_line("\n"), 1);
        assert_eq!(malformed_line("origin\n"), 2);
        assert_eq!(malformed_line("origin\n5\n"), 3);
        assert_eq!(malformed_line(&format!("origin\n5\n{ROOT_B64}")), 3);
    }

    #[test]
    fn parse_body_rejects_bad_sizes() {
        for size in [
            "",
            "-1",
            "+1",
            "01",
            "00",
            "1.0",
            "1e3",
            " 1",
            "0x10",
            "18446744073709551616",
            "١",
        ] {
            assert_eq!(
                malformed_line(&format!("origin\n{size}\n{ROOT_B64}\n")),
                2,
                "{size:?}"
            );
        }
        let max = format!("origin\n{}\n{ROOT_B64}\n", u64::MAX);
        assert_eq!(Checkpoint::parse_body(&max).unwrap().size, u64::MAX);
    }

    #[test]
    fn parse_body_rejects_bad_roots() {
        let short = STANDARD.encode([1_u8; 31]);
        let long = STANDARD.encode([1_u8; 33]);
        let unpadded = ROOT_B64.trim_end_matches('=');
        let urlsafe = base64::engine::general_purpose::URL_SAFE.encode([0xff_u8; 32]);
        let trailing_bits = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=";
        for root in [
            short.as_str(),
            long.as_str(),
            unpadded,
            urlsafe.as_str(),
            trailing_bits,
            "not base64!",
            "",
            &hex::encode([0_u8; 32]),
        ] {
            assert_eq!(
                malformed_line(&format!("origin\n5\n{root}\n")),
                3,
                "{root:?}"
            );
        }
    }

    #[test]
    fn parse_body_rejects_blank_lines_and_crlf() {
        assert_eq!(malformed_line(&format!("{C2SP_BODY}\n")), 4);
        assert_eq!(malformed_line(&format!("{C2SP_BODY}ext\n\n")), 5);
        assert_eq!(malformed_line(&format!("\n{C2SP_BODY}")), 1);
        assert_eq!(malformed_line(&C2SP_BODY.replace('\n', "\r\n")), 1);
        assert_eq!(malformed_line(&format!("origin\n5\r\n{ROOT_B64}\n")), 2);
        assert_eq!(malformed_line(&format!("origin\n5\n{ROOT_B64}\r\n")), 3);
        assert_eq!(malformed_line(&format!("{C2SP_BODY}ext\r\n")), 4);
        assert_eq!(malformed_line(&format!("or\tigin\n5\n{ROOT_B64}\n")), 1);
    }

    // --- signing and verification ----------------------------------------------------------

    #[test]
    fn sign_verify_round_trip() {
        let signer = signer();
        let cp = checkpoint();
        let note = signer.sign(&cp);
        let sig_prefix = format!("{}\n— promotion.example/shop-api ", cp.body());
        assert!(note.starts_with(&sig_prefix), "{note}");
        assert!(note.ends_with('\n'));
        assert_eq!(note.lines().count(), 5);
        assert_eq!(signer.verifier().verify(&note).unwrap(), cp);

        // Through the key strings, as an auditor would.
        let verifier = CheckpointVerifier::from_verifier_key(&signer.verifier_key()).unwrap();
        assert_eq!(verifier, signer.verifier());
        assert_eq!(verifier.verify(&note).unwrap(), cp);
        let restored = CheckpointSigner::from_private_key(&signer.private_key()).unwrap();
        assert_eq!(restored.sign(&cp), note);

        let generated = CheckpointSigner::generate("log.example/x").unwrap();
        let cp2 = Checkpoint {
            extensions: vec!["extension".to_owned()],
            ..cp
        };
        assert_eq!(
            generated.verifier().verify(&generated.sign(&cp2)).unwrap(),
            cp2
        );
    }

    #[test]
    fn other_signatures_are_ignored() {
        let a = signer();
        let b = CheckpointSigner::from_seed("witness.example", [9; 32]).unwrap();
        let cp = checkpoint();
        let note_b = b.sign(&cp);
        let b_line = note_b.rsplit_once("\n\n").unwrap().1;
        let both = format!("{}{b_line}", a.sign(&cp));
        assert_eq!(a.verifier().verify(&both).unwrap(), cp);
        assert_eq!(b.verifier().verify(&both).unwrap(), cp);
    }

    #[test]
    fn invalid_checkpoints_are_not_signed() {
        let signer = signer();
        let evil = Checkpoint {
            origin: format!("a\n5\n{ROOT_B64}"),
            ..checkpoint()
        };
        assert!(is_malformed(&signer.try_sign(&evil)));
        assert_eq!(signer.sign(&evil), "");
        assert!(is_malformed(&signer.verifier().verify(&signer.sign(&evil))));
        for cp in [
            Checkpoint {
                origin: String::new(),
                ..checkpoint()
            },
            Checkpoint {
                origin: "o\r".to_owned(),
                ..checkpoint()
            },
            Checkpoint {
                extensions: vec![String::new()],
                ..checkpoint()
            },
            Checkpoint {
                extensions: vec!["a\nb".to_owned()],
                ..checkpoint()
            },
        ] {
            assert!(is_malformed(&cp.validate()), "{cp:?}");
            assert_eq!(signer.sign(&cp), "");
        }
    }

    #[test]
    fn verify_rejects_unknown_keys() {
        let cp = checkpoint();
        let note = signer().sign(&cp);
        let other = CheckpointSigner::from_seed("other.example", [8; 32]).unwrap();
        assert_eq!(
            other.verifier().verify(&note),
            Err(CheckpointError::UnknownKey {
                name: format!("other.example+{:08x}", other.key_id())
            })
        );
        // Same name, different key (and so different key id).
        let same_name = CheckpointSigner::from_seed(signer().name(), [8; 32]).unwrap();
        assert_ne!(same_name.key_id(), signer().key_id());
        assert!(matches!(
            same_name.verifier().verify(&note),
            Err(CheckpointError::UnknownKey { .. })
        ));
    }

    #[test]
    fn verify_rejects_tampering() {
        let signer = signer();
        let verifier = signer.verifier();
        let note = signer.sign(&checkpoint());

        // A flipped byte in the body.
        let flipped = note.replacen("42", "43", 1);
        assert!(matches!(
            verifier.verify(&flipped),
            Err(CheckpointError::BadSignature { .. })
        ));

        // A tampered signature (past the key id).
        let (head, sig) = note.rsplit_once(' ').unwrap();
        let mut sig = sig.as_bytes().to_vec();
        sig[20] = if sig[20] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{head} {}", String::from_utf8(sig).unwrap());
        assert_eq!(
            verifier.verify(&tampered),
            Err(CheckpointError::BadSignature {
                name: format!("{}+{:08x}", signer.name(), signer.key_id())
            })
        );

        // No blank separator line.
        let no_blank = note.replacen("\n\n", "\n", 1);
        assert!(is_malformed(&verifier.verify(&no_blank)));

        // Signature lines not starting with the em dash.
        for prefix in ["- ", "-- ", "– ", "—", "—  ", " — "] {
            let wrong = note.replacen("— ", prefix, 1);
            assert!(is_malformed(&verifier.verify(&wrong)), "{prefix:?}");
        }

        // CRLF line endings and trailing junk.
        assert!(is_malformed(&verifier.verify(&note.replace('\n', "\r\n"))));
        assert!(is_malformed(&verifier.verify(&format!("{note}junk\n"))));
        assert!(is_malformed(&verifier.verify(note.trim_end_matches('\n'))));
    }

    #[test]
    fn malformed_errors_name_the_line() {
        let signer = signer();
        let verifier = signer.verifier();
        let note = signer.sign(&checkpoint());
        let bad_sig_line = note.replacen("— ", "- ", 1);
        assert!(matches!(
            verifier.verify(&bad_sig_line),
            Err(CheckpointError::Malformed { line: 5, .. })
        ));
        let control = note.replacen("42", "4\u{7}", 1);
        assert!(matches!(
            verifier.verify(&control),
            Err(CheckpointError::Malformed { line: 2, .. })
        ));
    }

    #[test]
    fn every_single_byte_change_is_rejected() {
        let signer = signer();
        let verifier = signer.verifier();
        let cp = Checkpoint {
            extensions: vec!["ext".to_owned()],
            ..checkpoint()
        };
        let note = signer.sign(&cp);
        for i in 0..note.len() {
            for replacement in [b'\n', b' ', b'+', b'=', b'A', b'0', b'\r', b'-'] {
                check_single_byte_change(&verifier, &note, &cp, i, replacement);
            }
            let xored = note.as_bytes()[i] ^ 1;
            check_single_byte_change(&verifier, &note, &cp, i, xored);
        }
    }

    fn check_single_byte_change(
        verifier: &CheckpointVerifier,
        note: &str,
        original: &Checkpoint,
        index: usize,
        replacement: u8,
    ) {
        let mut bytes = note.as_bytes().to_vec();
        if bytes[index] == replacement {
            return;
        }
        bytes[index] = replacement;
        let Ok(changed) = String::from_utf8(bytes) else {
            return; // not even a string: cannot be handed to the verifier
        };
        let result = verifier.verify(&changed);
        assert!(
            matches!(
                result,
                Err(CheckpointError::Malformed { .. }
                    | CheckpointError::BadSignature { .. }
                    | CheckpointError::UnknownKey { .. })
            ),
            "byte {index} -> {replacement:#04x} gave {result:?} (original {original:?})"
        );
    }

    // --- key strings -----------------------------------------------------------------------

    #[test]
    fn key_strings_are_validated() {
        let signer = signer();
        let vkey = signer.verifier_key();
        let skey = signer.private_key();
        let (name_id, material) = vkey.rsplit_once('+').unwrap();
        let id = format!("{:08x}", signer.key_id());
        let wrong_id = format!("{:08x}", signer.key_id() ^ 1);

        let bad_vkeys = [
            format!("PRIVATE+KEY+{vkey}"),
            vkey.replacen(&id, &wrong_id, 1),
            vkey.replacen(&id, &id[..7], 1),
            vkey.replacen(&id, &format!("{id}0"), 1),
            vkey.replacen(&id, "zzzzzzzz", 1),
            format!("{name_id}+{}", STANDARD.encode([1_u8; 32])),
            format!("{name_id}+{}", STANDARD.encode([1_u8; 34])),
            format!("{name_id}+{}", STANDARD.encode([2_u8; 33])),
            format!("{name_id}+{}", &material[1..]),
            format!("{name_id}+{material}="),
            format!("{name_id}+{}!", &material[..material.len() - 1]),
            format!("{name_id}+"),
            name_id.to_owned(),
            String::new(),
            format!("bad name+{id}+{material}"),
            format!("+{id}+{material}"),
        ];
        for key in &bad_vkeys {
            assert!(
                is_invalid_key(&CheckpointVerifier::from_verifier_key(key)),
                "{key:?}"
            );
        }

        let seed_material = skey.rsplit_once('+').unwrap().1;
        let bad_skeys = [
            vkey.clone(),
            skey.replacen("PRIVATE+KEY+", "PRIVATE+", 1),
            skey.replacen("PRIVATE+KEY+", "private+key+", 1),
            skey.replacen(&id, &wrong_id, 1),
            skey.replacen(&id, &id[..6], 1),
            skey.replacen(seed_material, &STANDARD.encode([1_u8; 32]), 1),
            skey.replacen(seed_material, &STANDARD.encode([1_u8; 34]), 1),
            skey.replacen(seed_material, "!!!!", 1),
            format!("{skey}="),
        ];
        for key in &bad_skeys {
            let result = CheckpointSigner::from_private_key(key);
            assert!(is_invalid_key(&result), "{key:?}");
            // Errors never echo the private key material.
            if let Err(error) = result {
                assert!(!error.to_string().contains(seed_material), "{error}");
            }
        }
    }

    #[test]
    fn names_are_validated() {
        for name in ["", "a b", "a+b", "a\nb", "a\u{a0}b", "a\u{7}b"] {
            assert!(
                is_invalid_key(&CheckpointSigner::from_seed(name, [1; 32])),
                "{name:?}"
            );
            assert!(
                is_invalid_key(&CheckpointSigner::generate(name)),
                "{name:?}"
            );
        }
        assert!(CheckpointSigner::from_seed("log.example/é", [1; 32]).is_ok());
    }

    #[test]
    fn weak_verifier_keys_are_refused() {
        // The identity point (small order), with a correctly computed key id.
        let mut identity = [0_u8; 32];
        identity[0] = 1;
        let material = encode_key_material(&identity);
        let digest = Sha256::new()
            .chain_update(b"weak\n\x01")
            .chain_update(identity)
            .finalize();
        let key = format!("weak+{}+{material}", hex::encode(&digest[..4]));
        match CheckpointVerifier::from_verifier_key(&key) {
            Err(CheckpointError::InvalidKey(message)) => {
                assert!(message.contains("small-order"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn debug_does_not_leak_the_seed() {
        let seed = [0x5a_u8; 32];
        let signer = CheckpointSigner::from_seed("log.example", seed).unwrap();
        let debug = format!("{signer:?}");
        let pretty = format!("{signer:#?}");
        assert!(debug.contains("log.example"));
        assert!(debug.contains(&format!("{:08x}", signer.key_id())));
        let private_key = signer.private_key();
        let material = private_key.rsplit_once('+').unwrap().1;
        for text in [&debug, &pretty] {
            assert!(!text.contains(&private_key));
            assert!(!text.contains(material));
            assert!(!text.contains(&hex::encode(seed)));
            assert!(!text.contains(&format!("{seed:?}")));
            assert!(!text.contains("90, 90"));
            assert!(!text.contains(&STANDARD.encode(seed)));
        }
    }

    #[test]
    fn errors_display_what_and_where() {
        let error = malformed(3, "the root hash must be 32 bytes, not 31");
        assert_eq!(
            error.to_string(),
            "malformed checkpoint note at line 3: the root hash must be 32 bytes, not 31"
        );
        let unknown = CheckpointError::UnknownKey {
            name: "a+00000000".to_owned(),
        };
        assert!(unknown.to_string().contains("a+00000000"));
    }

    // --- properties ------------------------------------------------------------------------

    fn arb_checkpoint() -> impl Strategy<Value = Checkpoint> {
        (
            "[^\\x00-\\x1f]{1,40}",
            any::<u64>(),
            any::<[u8; 32]>(),
            prop::collection::vec("[^\\x00-\\x1f]{1,20}", 0..3),
        )
            .prop_map(|(origin, size, root, extensions)| Checkpoint {
                origin,
                size,
                root,
                extensions,
            })
    }

    proptest! {
        #[test]
        fn random_checkpoints_round_trip(cp in arb_checkpoint(), seed in any::<[u8; 32]>()) {
            let signer = CheckpointSigner::from_seed("log.example/prop", seed).unwrap();
            prop_assert_eq!(Checkpoint::parse_body(&cp.body()).unwrap(), cp.clone());
            let note = signer.sign(&cp);
            prop_assert_eq!(signer.verifier().verify(&note).unwrap(), cp);
        }

        #[test]
        fn single_byte_changes_are_rejected(
            cp in arb_checkpoint(),
            position in any::<prop::sample::Index>(),
            replacement in any::<u8>(),
        ) {
            let signer = CheckpointSigner::from_seed("log.example/prop", [3; 32]).unwrap();
            let note = signer.sign(&cp);
            let mut bytes = note.clone().into_bytes();
            let index = position.index(bytes.len());
            prop_assume!(bytes[index] != replacement);
            bytes[index] = replacement;
            if let Ok(changed) = String::from_utf8(bytes) {
                let result = signer.verifier().verify(&changed);
                prop_assert!(
                    matches!(
                        result,
                        Err(CheckpointError::Malformed { .. }
                            | CheckpointError::BadSignature { .. }
                            | CheckpointError::UnknownKey { .. })
                    ),
                    "byte {} -> {:#04x} gave {:?}", index, replacement, result
                );
            }
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in "\\PC{0,200}", raw in ".{0,200}") {
            let verifier = signer().verifier();
            let _ = Checkpoint::parse_body(&text);
            let _ = verifier.verify(&text);
            let _ = verify_note(&raw, &verifier);
            let _ = CheckpointVerifier::from_verifier_key(&raw);
            let _ = CheckpointSigner::from_private_key(&raw);
        }
    }
}
