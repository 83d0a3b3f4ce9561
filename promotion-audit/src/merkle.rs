//! RFC 6962 / RFC 9162 Merkle trees: the hashing core of the tamper-evident audit log.
//!
//! The tree hash (MTH), audit paths (inclusion proofs) and consistency proofs follow
//! [RFC 9162 §2.1](https://www.rfc-editor.org/rfc/rfc9162#section-2.1), which keeps the
//! definitions of [RFC 6962 §2.1](https://www.rfc-editor.org/rfc/rfc6962#section-2.1):
//!
//! * `MTH({}) = SHA-256()` ([`EMPTY_ROOT`]),
//! * `MTH({d0}) = SHA-256(0x00 || d0)` ([`leaf_hash`]),
//! * `MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))` where `k` is the largest power
//!   of two strictly smaller than `n` ([`node_hash`]).
//!
//! Storage backends keep the hashes of complete, aligned subtrees (see [`NodeSource`]). Every
//! tree hash needed by a root or a proof is assembled from those nodes, so a root costs
//! `O(log n)` node reads and a proof `O(log² n)` at most. [`Frontier`] tracks the right edge of
//! a growing log and yields each complete node exactly once, when its last leaf arrives.
//!
//! Verification ([`verify_inclusion`], [`verify_consistency`]) needs only hashes, follows the
//! RFC 9162 pseudo-code step by step, and first checks that a proof has exactly the number of
//! hashes the tree sizes call for, so a truncated or padded proof is reported as such.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// SHA-256 of the empty string: the root of the empty tree (RFC 6962 §2.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Domain-separation prefix of leaf hashes (RFC 6962 §2.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of interior node hashes (RFC 6962 §2.1).
const NODE_PREFIX: u8 = 0x01;

/// The hash of a leaf: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(data);
    hasher.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Why a proof could not be made or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree (`index >= size`).
    #[error(
        "leaf {index} is not in the log: a log of {size} entries holds leaves 0 to {size}-1 only"
    )]
    IndexOutOfRange {
        /// The leaf index asked for (0-based).
        index: u64,
        /// The number of leaves in the tree.
        size: u64,
    },
    /// The two tree sizes cannot be compared: the old size is 0 or larger than the new size.
    #[error(
        "cannot prove that a log of {old_size} entries is a prefix of a log of {new_size} entries: \
         the earlier size must be at least 1 and at most the later size"
    )]
    SizeOutOfRange {
        /// The size of the earlier tree.
        old_size: u64,
        /// The size of the later tree.
        new_size: u64,
    },
    /// The proof does not have the number of hashes that the tree sizes call for.
    #[error(
        "the proof has {found} hashes, but a proof for these tree sizes must have exactly {expected}"
    )]
    WrongProofLength {
        /// How many hashes a proof for these sizes has.
        expected: usize,
        /// How many hashes the proof had.
        found: usize,
    },
    /// The proof leads to a different root hash than the one it was checked against.
    #[error(
        "the proof does not match the signed root hash: expected root {expected}, \
         but the proof leads to {computed}"
    )]
    RootMismatch {
        /// The root hash the proof was checked against, in hex.
        expected: String,
        /// The root hash the proof leads to, in hex.
        computed: String,
    },
    /// The node store lacks a node that the computation needs.
    #[error("the stored tree is missing the hash of node {index} at level {level}")]
    MissingNode {
        /// The node's level (0 for leaf hashes).
        level: u8,
        /// The node's index within its level.
        index: u64,
    },
    /// The node store failed: the message names what failed and why in words, and
    /// [`source`](std::error::Error::source) is the store's own error (SQLite's, the operating
    /// system's, PostgreSQL's), kept rather than flattened to text.
    #[error(transparent)]
    Storage(StorageFailure),
}

/// Why a node store failed, as [`ProofError::Storage`] carries it: the store's message, shown
/// as `the node store failed: <message>`, and its cause, shared so that the error stays
/// [`Clone`] and still hands the cause to anyone walking the chain of
/// [`source`](std::error::Error::source)s. Two failures are equal when their messages are.
#[derive(Debug, Clone)]
pub struct StorageFailure {
    /// What failed, where, and the cause in words.
    pub message: String,
    /// The underlying error, if the store had one.
    pub cause: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl StorageFailure {
    /// A failure with a message and the error that caused it.
    pub fn with(
        message: impl Into<String>,
        cause: std::sync::Arc<dyn std::error::Error + Send + Sync>,
    ) -> Self {
        StorageFailure {
            message: message.into(),
            cause: Some(cause),
        }
    }
}

impl std::fmt::Display for StorageFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the node store failed: {}", self.message)
    }
}

impl std::error::Error for StorageFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

impl PartialEq for StorageFailure {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for StorageFailure {}

/// A failure known only by its message (a store with no underlying error to keep).
impl From<&str> for StorageFailure {
    fn from(message: &str) -> Self {
        StorageFailure {
            message: message.to_owned(),
            cause: None,
        }
    }
}

/// A failure known only by its message (a store with no underlying error to keep).
impl From<String> for StorageFailure {
    fn from(message: String) -> Self {
        StorageFailure {
            message,
            cause: None,
        }
    }
}

/// Hashes of complete, aligned subtrees: `node(level, index)` is
/// `MTH(D[index·2^level .. (index+1)·2^level])`, i.e. level 0 holds the leaf hashes.
/// Storage backends implement it (SQLite table, memory vectors).
pub trait NodeSource {
    /// The hash of the complete subtree of `2^level` leaves starting at leaf `index·2^level`.
    ///
    /// Returns [`ProofError::MissingNode`] if the node is not stored and
    /// [`ProofError::Storage`] if the store itself failed.
    fn node(&self, level: u8, index: u64) -> Result<Hash, ProofError>;
}

/// The RFC's `k` for `n >= 2`: the largest power of two strictly smaller than `n`.
///
/// Callers only pass `n >= 2`; smaller values give 1 rather than panicking.
fn split_point(n: u64) -> u64 {
    1u64 << 63u32.saturating_sub(n.saturating_sub(1).leading_zeros())
}

/// `MTH(D[start .. start+len])`, read directly if the range is a complete aligned subtree and
/// split at the RFC's `k` otherwise.
fn subtree<N: NodeSource + ?Sized>(nodes: &N, start: u64, len: u64) -> Result<Hash, ProofError> {
    if len == 0 {
        return Ok(EMPTY_ROOT);
    }
    if len.is_power_of_two() && start % len == 0 {
        let level = len.trailing_zeros();
        // `level <= 63`, so it fits a `u8`.
        return nodes.node(level as u8, start >> level);
    }
    let k = split_point(len);
    let left = subtree(nodes, start, k)?;
    let right = subtree(nodes, start + k, len - k)?;
    Ok(node_hash(&left, &right))
}

/// MTH of the first `size` leaves, computed from complete subtrees in O(log n) node reads.
///
/// The empty tree has the root [`EMPTY_ROOT`] and needs no reads.
pub fn root<N: NodeSource + ?Sized>(nodes: &N, size: u64) -> Result<Hash, ProofError> {
    subtree(nodes, 0, size)
}

/// RFC 9162 §2.1.3.1 inclusion proof (audit path) for leaf `index` in the tree of `size`.
///
/// The hashes are ordered from the leaf's sibling up to the child of the root, as
/// `PATH(m, D[n])` of RFC 6962 §2.1.1 lists them.
pub fn inclusion_proof<N: NodeSource + ?Sized>(
    nodes: &N,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // Walk down from the root, collecting the sibling of every subtree that holds the leaf.
    let (mut start, mut n, mut m) = (0u64, size, index);
    let mut path = Vec::new();
    while n > 1 {
        let k = split_point(n);
        if m < k {
            path.push(subtree(nodes, start + k, n - k)?);
            n = k;
        } else {
            path.push(subtree(nodes, start, k)?);
            start += k;
            m -= k;
            n -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// RFC 9162 §2.1.4.1 consistency proof from `old_size` to `new_size`
/// (`0 < old_size <= new_size`; `old_size == new_size` gives an empty proof).
///
/// `old_size == 0` or `old_size > new_size` is [`ProofError::SizeOutOfRange`].
pub fn consistency_proof<N: NodeSource + ?Sized>(
    nodes: &N,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::SizeOutOfRange { old_size, new_size });
    }
    // SUBPROOF(m, D[start .. start+n], b), unrolled: collect the siblings on the way down, then
    // the subtree where the old tree ends (unless it is the whole old tree, b = true).
    let (mut start, mut n, mut m, mut whole_old_tree) = (0u64, new_size, old_size, true);
    let mut siblings = Vec::new();
    while m != n {
        let k = split_point(n);
        if m <= k {
            siblings.push(subtree(nodes, start + k, n - k)?);
            n = k;
        } else {
            siblings.push(subtree(nodes, start, k)?);
            start += k;
            m -= k;
            n -= k;
            whole_old_tree = false;
        }
    }
    let mut proof = Vec::with_capacity(siblings.len() + 1);
    if !whole_old_tree {
        proof.push(subtree(nodes, start, m)?);
    }
    proof.extend(siblings.into_iter().rev());
    Ok(proof)
}

/// Number of bits needed to write `x` (0 for 0).
fn bit_len(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// The number of hashes in the audit path of leaf `index` in a tree of `size > index` leaves:
/// one per level where the paths to `index` and to the last leaf coincide up to that level
/// ("inner" part), plus one per right-edge subtree the leaf's complete subtree is left of.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = bit_len(index ^ (size - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    // Both are at most 64.
    (inner + border) as usize
}

/// The number of hashes in the consistency proof from `old_size` to `new_size`
/// (`0 < old_size < new_size`).
fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    // The old tree ends in a complete subtree of 2^level leaves; its proof is the audit path of
    // that subtree in the new tree (seen at that level), preceded by the subtree itself unless
    // the old tree is that subtree.
    let level = old_size.trailing_zeros();
    let index = (old_size - 1) >> level;
    let last = (new_size - 1) >> level;
    let inner = bit_len(index ^ last);
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    let seed = u32::from(index != 0);
    // At most 129.
    (seed + inner + border) as usize
}

/// RFC 9162 §2.1.3.2 verification: only hashes, no storage.
///
/// Checks that `proof` is the audit path of the leaf with hash `leaf_hash` at `index` in a tree
/// of `size` leaves with root `root`. Errors: [`ProofError::IndexOutOfRange`] for
/// `index >= size`, [`ProofError::WrongProofLength`] if the proof does not have the number of
/// hashes these sizes call for, [`ProofError::RootMismatch`] if it leads to another root.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // 1. Compare leaf_index against tree_size.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let wrong_length = ProofError::WrongProofLength {
        expected: inclusion_proof_len(index, size),
        found: proof.len(),
    };
    if proof.len() != inclusion_proof_len(index, size) {
        return Err(wrong_length);
    }
    // 2. fn = leaf_index, sn = tree_size - 1.
    let (mut f_n, mut s_n) = (index, size - 1);
    // 3. r = hash.
    let mut r = *leaf_hash;
    // 4. For each p in inclusion_path:
    for p in proof {
        // a. If sn is 0, stop and fail.
        if s_n == 0 {
            return Err(wrong_length);
        }
        // b. If LSB(fn) is set, or fn == sn:
        if f_n & 1 == 1 || f_n == s_n {
            // i. r = HASH(0x01 || p || r).
            r = node_hash(p, &r);
            // ii. If LSB(fn) is not set, right-shift fn and sn equally until LSB(fn) is set
            //     or fn is 0.
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            // Otherwise: r = HASH(0x01 || r || p).
            r = node_hash(&r, p);
        }
        // c. Right-shift both fn and sn once.
        f_n >>= 1;
        s_n >>= 1;
    }
    // 5. sn must be 0 and r must equal the root.
    if s_n != 0 {
        return Err(wrong_length);
    }
    if r != *root {
        return Err(ProofError::RootMismatch {
            expected: hex::encode(root),
            computed: hex::encode(r),
        });
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2 verification: only hashes, no storage.
///
/// Checks that `proof` shows the tree of `old_size` leaves with root `old_root` to be a prefix
/// of the tree of `new_size` leaves with root `new_root`.
///
/// Edge cases:
/// * `old_size == new_size`: valid only with an empty proof and `old_root == new_root`.
/// * `old_size == 0`: [`ProofError::SizeOutOfRange`]. The empty tree is a prefix of every tree,
///   so there is nothing to prove and a caller asking for it has made a mistake; audit code
///   that wants to accept "no earlier checkpoint" must say so explicitly.
/// * `old_size > new_size`: [`ProofError::SizeOutOfRange`].
/// * `old_size` a power of two: the old root itself is the first hash of the computation (and
///   is not part of the proof), as the RFC prescribes.
///
/// A proof without the number of hashes these sizes call for is
/// [`ProofError::WrongProofLength`]; one that leads to other roots is
/// [`ProofError::RootMismatch`] (the old root is checked first).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::SizeOutOfRange { old_size, new_size });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                found: proof.len(),
            });
        }
        if old_root != new_root {
            return Err(ProofError::RootMismatch {
                expected: hex::encode(old_root),
                computed: hex::encode(new_root),
            });
        }
        return Ok(());
    }
    let expected = consistency_proof_len(old_size, new_size);
    let wrong_length = ProofError::WrongProofLength {
        expected,
        found: proof.len(),
    };
    // 1. An empty consistency_path fails (the expected length is at least 1 here).
    if proof.len() != expected {
        return Err(wrong_length);
    }
    // 2. If first is an exact power of 2, prepend first_hash to the consistency_path.
    // 5. (below) fr and sr start as the first value of that path.
    let (seed, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (first, rest),
            None => return Err(wrong_length),
        }
    };
    // 3. fn = first - 1, sn = second - 1.
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    // 4. If LSB(fn) is set, right-shift fn and sn equally until LSB(fn) is not set.
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    // 5. fr = sr = the first value.
    let (mut fr, mut sr) = (*seed, *seed);
    // 6. For each subsequent value c:
    for c in rest {
        // a. If sn is 0, stop and fail.
        if s_n == 0 {
            return Err(wrong_length);
        }
        // b. If LSB(fn) is set, or fn == sn:
        if f_n & 1 == 1 || f_n == s_n {
            // i. fr = HASH(0x01 || c || fr); ii. sr = HASH(0x01 || c || sr).
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            // iii. If LSB(fn) is not set, right-shift fn and sn equally until LSB(fn) is set
            //      or fn is 0.
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            // Otherwise: sr = HASH(0x01 || sr || c).
            sr = node_hash(&sr, c);
        }
        // c. Right-shift both fn and sn once.
        f_n >>= 1;
        s_n >>= 1;
    }
    // 7. fr must equal first_hash, sr must equal second_hash, and sn must be 0.
    if s_n != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(ProofError::RootMismatch {
            expected: hex::encode(old_root),
            computed: hex::encode(fr),
        });
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch {
            expected: hex::encode(new_root),
            computed: hex::encode(sr),
        });
    }
    Ok(())
}

/// The right edge of a growing tree: the roots of its complete subtrees, largest first.
/// Appending a leaf yields every complete node that the leaf completes, so a backend stores
/// each node exactly once as the log grows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    /// Number of leaves.
    size: u64,
    /// One complete-subtree root per set bit of `size`, largest (leftmost) first.
    stack: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the frontier of a tree of `size` leaves from stored nodes (one read per set bit
    /// of size).
    pub fn from_nodes<N: NodeSource + ?Sized>(nodes: &N, size: u64) -> Result<Self, ProofError> {
        let mut stack = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..u64::BITS).rev() {
            let width = 1u64 << level;
            if size & width != 0 {
                // `level <= 63`, so it fits a `u8`.
                stack.push(nodes.node(level as u8, start >> level)?);
                start += width;
            }
        }
        Ok(Self { size, stack })
    }

    /// The number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; returns the newly complete nodes as `(level, index, hash)`, starting
    /// with `(0, leaf_index, leaf)` and going up.
    ///
    /// A tree cannot hold more than `u64::MAX` leaves: pushing onto a frontier of that size
    /// leaves it unchanged and returns no nodes.
    pub fn push(&mut self, leaf: Hash) -> Vec<(u8, u64, Hash)> {
        let leaf_index = self.size;
        let Some(new_size) = leaf_index.checked_add(1) else {
            return Vec::new();
        };
        let mut completed = Vec::with_capacity(leaf_index.trailing_ones() as usize + 1);
        completed.push((0, leaf_index, leaf));
        let (mut level, mut index, mut hash) = (0u8, leaf_index, leaf);
        // While the new node is a right child, it completes its parent together with the
        // frontier's last (smallest) subtree, which is its left sibling.
        while index & 1 == 1 {
            let Some(left) = self.stack.pop() else {
                break; // Unreachable: the stack holds one subtree per set bit of `size`.
            };
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            completed.push((level, index, hash));
        }
        self.stack.push(hash);
        self.size = new_size;
        completed
    }

    /// The root of the tree so far ([`EMPTY_ROOT`] for size 0), O(log n), no storage access.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.stack.iter().rev();
        match subtrees.next() {
            None => EMPTY_ROOT,
            Some(smallest) => subtrees.fold(*smallest, |right, left| node_hash(left, &right)),
        }
    }
}

/// Nodes kept in memory, level by level. For the in-memory log and for tests.
#[derive(Debug, Clone, Default)]
pub struct MemoryNodes {
    /// `levels[level][index]` is `node(level, index)`.
    levels: Vec<Vec<Hash>>,
}

impl MemoryNodes {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores nodes as returned by [`Frontier::push`] (each `(level, index)` in order of growth).
    ///
    /// A node already stored is overwritten. A node whose index is past the next free slot of
    /// its level (a gap, which [`Frontier::push`] never produces) is not stored.
    pub fn insert(&mut self, nodes: &[(u8, u64, Hash)]) {
        for &(level, index, hash) in nodes {
            let level = usize::from(level);
            if self.levels.len() <= level {
                self.levels.resize_with(level + 1, Vec::new);
            }
            let (Some(row), Ok(index)) = (self.levels.get_mut(level), usize::try_from(index))
            else {
                continue;
            };
            if let Some(slot) = row.get_mut(index) {
                *slot = hash;
            } else if index == row.len() {
                row.push(hash);
            }
        }
    }

    /// Builds the nodes of a whole tree from leaf data (convenience for tests).
    pub fn from_leaves<I: IntoIterator<Item = impl AsRef<[u8]>>>(leaves: I) -> (Self, Frontier) {
        let mut nodes = Self::new();
        let mut frontier = Frontier::new();
        for leaf in leaves {
            nodes.insert(&frontier.push(leaf_hash(leaf.as_ref())));
        }
        (nodes, frontier)
    }
}

impl NodeSource for MemoryNodes {
    fn node(&self, level: u8, index: u64) -> Result<Hash, ProofError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.levels.get(usize::from(level))?.get(i))
            .copied()
            .ok_or(ProofError::MissingNode { level, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use std::collections::HashSet;

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    // ---------------------------------------------------------------------------------------
    // Known answers.
    //
    // Values (not code) from github.com/transparency-dev/merkle:
    //  * rfc6962/rfc6962_test.go (TestRFC6962Hasher): empty root, empty leaf, leaf "L123456";
    //  * testonly/constants.go: LeafInputs (the 8-leaf reference tree), NodeHashes (every
    //    complete subtree), RootHashes (sizes 0..=8), CompactTrees (frontiers of sizes 0..=8);
    //  * proof/verify_test.go: inclusionProofs and consistencyProofs (its leaf numbers are
    //    1-based; converted to 0-based indices below);
    //  * proof/proof_test.go (TestInclusion, TestConsistency): which nodes make up proofs in
    //    trees of size <= 8, mapped here onto the NodeHashes values.
    // ---------------------------------------------------------------------------------------

    const REF_LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    const REF_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    const REF_NODES: [&[&str]; 4] = [
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
        ],
        &[
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        ],
        &[
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
        &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
    ];

    fn ref_leaves() -> Vec<Vec<u8>> {
        REF_LEAVES.iter().map(|s| hex::decode(s).unwrap()).collect()
    }

    /// `NodeHashes()[level][index]` of the reference tree.
    fn nh(level: usize, index: usize) -> Hash {
        h(REF_NODES[level][index])
    }

    #[test]
    fn known_answer_hashes() {
        assert_eq!(hex::encode(EMPTY_ROOT), REF_ROOTS[0]);
        assert_eq!(EMPTY_ROOT, <[u8; 32]>::from(Sha256::digest(b"")));
        assert_eq!(
            leaf_hash(b""),
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
        );
        assert_eq!(
            leaf_hash(b"L123456"),
            h("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
        );
        // The empty tree is not the tree of one empty leaf.
        assert_ne!(leaf_hash(b""), EMPTY_ROOT);
        // Interior nodes of the reference tree, straight from node_hash.
        for (level, row) in REF_NODES.iter().enumerate().skip(1) {
            for index in 0..row.len() {
                assert_eq!(
                    node_hash(&nh(level - 1, 2 * index), &nh(level - 1, 2 * index + 1)),
                    nh(level, index),
                    "node ({level}, {index})"
                );
            }
        }
        // Order and domain separation matter.
        let (a, b) = (leaf_hash(b"Hello"), leaf_hash(b"World"));
        assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
        assert_ne!(node_hash(&a, &b), leaf_hash(&[a, b].concat()));
    }

    #[test]
    fn known_answer_tree() {
        let leaves = ref_leaves();
        for (i, leaf) in leaves.iter().enumerate() {
            assert_eq!(leaf_hash(leaf), nh(0, i));
        }
        let (nodes, frontier) = MemoryNodes::from_leaves(&leaves);
        assert_eq!(hex::encode(frontier.root()), REF_ROOTS[8]);
        // Every stored node is the published one, and nothing else is stored.
        for (level, row) in REF_NODES.iter().enumerate() {
            for (index, want) in row.iter().enumerate() {
                let got = nodes.node(level as u8, index as u64).unwrap();
                assert_eq!(hex::encode(got), *want, "node ({level}, {index})");
            }
            let past = nodes.node(level as u8, row.len() as u64);
            assert!(matches!(past, Err(ProofError::MissingNode { .. })));
        }
        assert!(nodes.node(4, 0).is_err());
        // Roots of every prefix, from the stored tree, from a tree of exactly that size, and
        // from the frontier while pushing.
        let mut growing = Frontier::new();
        for size in 0..=8usize {
            let want = h(REF_ROOTS[size]);
            assert_eq!(root(&nodes, size as u64).unwrap(), want, "size {size}");
            let (exact, exact_frontier) = MemoryNodes::from_leaves(&leaves[..size]);
            assert_eq!(root(&exact, size as u64).unwrap(), want, "size {size}");
            assert_eq!(exact_frontier.root(), want, "size {size}");
            assert_eq!(growing.root(), want, "size {size}");
            if let Some(leaf) = leaves.get(size) {
                growing.push(leaf_hash(leaf));
            }
        }
        // CompactTrees(): the frontier's subtree roots, largest first.
        let compact: [&[(usize, usize)]; 9] = [
            &[],
            &[(0, 0)],
            &[(1, 0)],
            &[(1, 0), (0, 2)],
            &[(2, 0)],
            &[(2, 0), (0, 4)],
            &[(2, 0), (1, 2)],
            &[(2, 0), (1, 2), (0, 6)],
            &[(3, 0)],
        ];
        for (size, want) in compact.iter().enumerate() {
            let want: Vec<Hash> = want.iter().map(|&(l, i)| nh(l, i)).collect();
            let frontier = Frontier::from_nodes(&nodes, size as u64).unwrap();
            assert_eq!(frontier.stack, want, "size {size}");
            assert_eq!(frontier.size(), size as u64);
        }
    }

    #[test]
    fn known_answer_inclusion_proofs() {
        let leaves = ref_leaves();
        let (nodes, _) = MemoryNodes::from_leaves(&leaves);
        // proof/verify_test.go inclusionProofs, as (0-based index, size, proof).
        let vectors: [(u64, u64, Vec<Hash>); 5] = [
            (0, 1, vec![]),
            (
                0,
                8,
                vec![
                    h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
                ],
            ),
            (
                5,
                8,
                vec![
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                    h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
            (
                2,
                3,
                vec![h(
                    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
                )],
            ),
            (
                1,
                5,
                vec![
                    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                ],
            ),
        ];
        // proof/proof_test.go TestInclusion node lists (a..j as in its picture), size <= 8.
        let (a, b, c, d, e, f, j) = (
            nh(0, 0),
            nh(0, 1),
            nh(0, 2),
            nh(0, 3),
            nh(0, 4),
            nh(0, 5),
            nh(0, 6),
        );
        let (g, hh, i, k) = (nh(1, 0), nh(1, 1), nh(1, 2), nh(2, 0));
        let l7 = node_hash(&i, &j);
        let structural: [(u64, u64, Vec<Hash>); 14] = [
            (0, 2, vec![b]),
            (1, 2, vec![a]),
            (1, 3, vec![a, c]),
            (0, 7, vec![b, hh, l7]),
            (1, 7, vec![a, hh, l7]),
            (2, 7, vec![d, g, l7]),
            (3, 7, vec![c, g, l7]),
            (4, 7, vec![f, j, k]),
            (5, 7, vec![e, j, k]),
            (6, 7, vec![i, k]),
            (2, 4, vec![d, g]),
            (3, 5, vec![c, g, e]),
            (3, 6, vec![c, g, i]),
            (4, 6, vec![f, k]),
        ];
        for (index, size, want) in vectors.iter().chain(structural.iter()) {
            let proof = inclusion_proof(&nodes, *index, *size).unwrap();
            assert_eq!(&proof, want, "index {index} size {size}");
            let root_hash = h(REF_ROOTS[*size as usize]);
            let leaf = nh(0, *index as usize);
            verify_inclusion(&leaf, *index, *size, &proof, &root_hash).unwrap();
        }
    }

    #[test]
    fn known_answer_consistency_proofs() {
        let leaves = ref_leaves();
        let (nodes, _) = MemoryNodes::from_leaves(&leaves);
        // proof/verify_test.go consistencyProofs.
        let vectors: [(u64, u64, Vec<Hash>); 5] = [
            (1, 1, vec![]),
            (
                1,
                8,
                vec![
                    h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
                ],
            ),
            (
                6,
                8,
                vec![
                    h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                    h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
            (
                2,
                5,
                vec![
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                ],
            ),
            (
                6,
                7,
                vec![
                    h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                    h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
        ];
        // proof/proof_test.go TestConsistency node lists, size <= 8.
        let (b, c, d, e, f, j, l7_leaf) = (
            nh(0, 1),
            nh(0, 2),
            nh(0, 3),
            nh(0, 4),
            nh(0, 5),
            nh(0, 6),
            nh(0, 7),
        );
        let (g, hh, i, k, l) = (nh(1, 0), nh(1, 1), nh(1, 2), nh(2, 0), nh(2, 1));
        let l7 = node_hash(&i, &j);
        let structural: [(u64, u64, Vec<Hash>); 14] = [
            (1, 2, vec![b]),
            (1, 4, vec![b, hh]),
            (1, 6, vec![b, hh, i]),
            (2, 3, vec![c]),
            (2, 8, vec![hh, l]),
            (3, 7, vec![c, d, g, l7]),
            (4, 7, vec![l7]),
            (5, 7, vec![e, f, j, k]),
            (6, 7, vec![i, j, k]),
            (7, 8, vec![j, l7_leaf, i, k]),
            (2, 4, vec![hh]),
            (3, 5, vec![c, d, g, e]),
            (3, 6, vec![c, d, g, i]),
            (4, 6, vec![i]),
        ];
        for (old, new, want) in vectors.iter().chain(structural.iter()) {
            let proof = consistency_proof(&nodes, *old, *new).unwrap();
            assert_eq!(&proof, want, "{old} -> {new}");
            let (r1, r2) = (h(REF_ROOTS[*old as usize]), h(REF_ROOTS[*new as usize]));
            verify_consistency(*old, *new, &r1, &r2, &proof).unwrap();
        }
        for size in 1..=8u64 {
            assert_eq!(
                consistency_proof(&nodes, size, size).unwrap(),
                Vec::<Hash>::new()
            );
        }
        // Negative cases after proof/verify_test.go TestVerifyConsistency.
        let (r1, r2) = (h(REF_ROOTS[1]), h(REF_ROOTS[2]));
        assert!(verify_consistency(1, 1, &r1, &r2, &[]).is_err());
        assert!(verify_consistency(1, 1, &r1, &r1, &[]).is_ok());
        assert!(verify_consistency(1, 0, &r1, &r2, &[]).is_err());
        assert!(verify_consistency(2, 1, &r1, &r2, &[]).is_err());
        assert!(verify_consistency(1, 2, &r1, &r2, &[]).is_err());
        assert!(verify_consistency(1, 1, &EMPTY_ROOT, &EMPTY_ROOT, &[EMPTY_ROOT]).is_err());
    }

    // ---------------------------------------------------------------------------------------
    // Reference implementation: RFC 6962 §2.1 definitions, recursive, over plain leaf data,
    // with its own hashing (independent of leaf_hash/node_hash).
    // ---------------------------------------------------------------------------------------

    fn ref_hash(prefix: u8, parts: &[&[u8]]) -> Hash {
        let mut hasher = Sha256::new();
        hasher.update([prefix]);
        for part in parts {
            hasher.update(part);
        }
        hasher.finalize().into()
    }

    /// The largest power of two smaller than n (n > 1).
    fn ref_k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// MTH(D[n]).
    fn ref_mth(d: &[Vec<u8>]) -> Hash {
        match d.len() {
            0 => Sha256::digest(b"").into(),
            1 => ref_hash(0x00, &[&d[0]]),
            n => {
                let k = ref_k(n);
                ref_hash(0x01, &[&ref_mth(&d[..k]), &ref_mth(&d[k..])])
            }
        }
    }

    /// PATH(m, D[n]).
    fn ref_path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
        let n = d.len();
        if n == 1 {
            return vec![];
        }
        let k = ref_k(n);
        if m < k {
            let mut p = ref_path(m, &d[..k]);
            p.push(ref_mth(&d[k..]));
            p
        } else {
            let mut p = ref_path(m - k, &d[k..]);
            p.push(ref_mth(&d[..k]));
            p
        }
    }

    /// PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
    fn ref_proof(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
        ref_subproof(m, d, true)
    }

    /// SUBPROOF(m, D[n], b).
    fn ref_subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![ref_mth(d)] };
        }
        let k = ref_k(n);
        if m <= k {
            let mut p = ref_subproof(m, &d[..k], b);
            p.push(ref_mth(&d[k..]));
            p
        } else {
            let mut p = ref_subproof(m - k, &d[k..], false);
            p.push(ref_mth(&d[..k]));
            p
        }
    }

    /// The shape of PATH(m, D[n]): for each proof hash, leaf to root, whether it is the left
    /// sibling. Two (index, size) pairs with the same shape make verification hash the same
    /// values in the same order, so a proof for one also verifies for the other: the tree
    /// size is not committed by the root hash alone.
    fn ref_path_shape(m: u64, n: u64) -> Vec<bool> {
        if n <= 1 {
            return vec![];
        }
        let k = ref_k(n as usize) as u64;
        let (mut s, left) = if m < k {
            (ref_path_shape(m, k), false)
        } else {
            (ref_path_shape(m - k, n - k), true)
        };
        s.push(left);
        s
    }

    /// The shape of PROOF(m, D[n]): whether the old tree is a subtree of the new one (b stays
    /// true, so the old root seeds verification) and, per sibling, whether it is on the left.
    fn ref_consistency_shape(m: u64, n: u64, b: bool) -> (bool, Vec<bool>) {
        if m == n {
            return (b, vec![]);
        }
        let k = ref_k(n as usize) as u64;
        let ((b, mut s), left) = if m <= k {
            (ref_consistency_shape(m, k, b), false)
        } else {
            (ref_consistency_shape(m - k, n - k, false), true)
        };
        s.push(left);
        (b, s)
    }

    #[test]
    fn matches_rfc_definitions_up_to_70() {
        let data: Vec<Vec<u8>> = ref_leaves()
            .into_iter()
            .chain((8..70).map(|i| format!("leaf {i}").into_bytes()))
            .collect();
        let ref_roots: Vec<Hash> = (0..=data.len()).map(|m| ref_mth(&data[..m])).collect();
        assert_eq!(ref_roots[0], EMPTY_ROOT);
        for n in 1..=data.len() {
            let d = &data[..n];
            let size = n as u64;
            // A store holding exactly the nodes of this tree: nothing past leaf n is needed.
            let (nodes, frontier) = MemoryNodes::from_leaves(d);
            let root_n = root(&nodes, size).unwrap();
            assert_eq!(root_n, ref_roots[n], "root of {n}");
            assert_eq!(frontier.root(), root_n);
            assert_eq!(frontier.size(), size);
            for m in 0..n {
                let proof = inclusion_proof(&nodes, m as u64, size).unwrap();
                assert_eq!(proof, ref_path(m, d), "PATH({m}, D[{n}])");
                assert_eq!(proof.len(), ref_path_shape(m as u64, size).len());
                assert_eq!(proof.len(), inclusion_proof_len(m as u64, size));
                verify_inclusion(&leaf_hash(&d[m]), m as u64, size, &proof, &root_n).unwrap();
            }
            for (m, root_m) in ref_roots.iter().enumerate().take(n + 1).skip(1) {
                let proof = consistency_proof(&nodes, m as u64, size).unwrap();
                let want = if m == n { vec![] } else { ref_proof(m, d) };
                assert_eq!(proof, want, "PROOF({m}, D[{n}])");
                let (b, shape) = ref_consistency_shape(m as u64, size, true);
                assert_eq!(proof.len(), shape.len() + usize::from(!b));
                verify_consistency(m as u64, size, root_m, &root_n, &proof).unwrap();
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Property tests.
    // ---------------------------------------------------------------------------------------

    /// 1 to 300 leaves, all distinct (each starts with its index), so that no two subtrees
    /// share a hash and a proof cannot verify for another position by coincidence.
    fn distinct_leaves() -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..6), 1..=300).prop_map(
            |leaves| {
                leaves
                    .into_iter()
                    .enumerate()
                    .map(|(i, tail)| [(i as u32).to_be_bytes().as_slice(), &tail].concat())
                    .collect()
            },
        )
    }

    fn flip(hash: &Hash, bit: usize) -> Hash {
        let mut out = *hash;
        out[(bit / 8) % 32] ^= 1 << (bit % 8);
        out
    }

    fn is_wrong_length(r: &Result<(), ProofError>) -> bool {
        matches!(r, Err(ProofError::WrongProofLength { .. }))
    }

    fn is_root_mismatch(r: &Result<(), ProofError>) -> bool {
        matches!(r, Err(ProofError::RootMismatch { .. }))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn inclusion_proofs_verify_and_reject_tampering(
            leaves in distinct_leaves(),
            pick in any::<Index>(),
            bits in proptest::collection::vec(0usize..256, 70),
        ) {
            let (nodes, frontier) = MemoryNodes::from_leaves(&leaves);
            let n = leaves.len() as u64;
            let root_n = root(&nodes, n).unwrap();
            prop_assert_eq!(root_n, frontier.root());
            for i in 0..n {
                let proof = inclusion_proof(&nodes, i, n).unwrap();
                let leaf = leaf_hash(&leaves[i as usize]);
                prop_assert_eq!(verify_inclusion(&leaf, i, n, &proof, &root_n), Ok(()));
            }

            let i = pick.index(leaves.len()) as u64;
            let proof = inclusion_proof(&nodes, i, n).unwrap();
            let leaf = leaf_hash(&leaves[i as usize]);
            // Any single flipped bit in a proof hash, the root or the leaf hash.
            for (pos, bit) in (0..proof.len()).zip(&bits) {
                let mut bad = proof.clone();
                bad[pos] = flip(&bad[pos], *bit);
                prop_assert!(is_root_mismatch(&verify_inclusion(&leaf, i, n, &bad, &root_n)));
            }
            let bad_root = flip(&root_n, bits[68]);
            prop_assert!(is_root_mismatch(&verify_inclusion(&leaf, i, n, &proof, &bad_root)));
            let bad_leaf = flip(&leaf, bits[69]);
            prop_assert!(is_root_mismatch(&verify_inclusion(&bad_leaf, i, n, &proof, &root_n)));
            // Another leaf of the tree.
            if n > 1 {
                let other = leaf_hash(&leaves[((i + 1) % n) as usize]);
                prop_assert!(verify_inclusion(&other, i, n, &proof, &root_n).is_err());
            }
            // Wrong index: always rejected.
            for wrong in [i.wrapping_sub(1), i + 1, i ^ 2, i + n] {
                if wrong == i {
                    continue;
                }
                let r = verify_inclusion(&leaf, wrong, n, &proof, &root_n);
                if wrong >= n {
                    prop_assert_eq!(r, Err(ProofError::IndexOutOfRange { index: wrong, size: n }));
                } else {
                    prop_assert!(r.is_err(), "index {} accepted for {}", wrong, i);
                }
            }
            // Wrong size: twice the size is always rejected; other sizes are rejected unless
            // the RFC verification would hash exactly the same values in the same order.
            let r = verify_inclusion(&leaf, i, 2 * n, &proof, &root_n);
            prop_assert!(r.is_err());
            for wrong in [n - 1, n + 1, n / 2, 2 * n, n + 2] {
                let r = verify_inclusion(&leaf, i, wrong, &proof, &root_n);
                if i >= wrong {
                    prop_assert_eq!(r, Err(ProofError::IndexOutOfRange { index: i, size: wrong }));
                } else {
                    let same = ref_path_shape(i, wrong) == ref_path_shape(i, n);
                    prop_assert_eq!(r.is_ok(), same, "size {} for {} (index {})", wrong, n, i);
                }
            }
            // Truncated, extended, prefixed proofs.
            if let Some((_, shorter)) = proof.split_last() {
                prop_assert!(is_wrong_length(&verify_inclusion(&leaf, i, n, shorter, &root_n)));
            }
            for extra in [[0u8; 32], root_n, leaf] {
                let mut longer = proof.clone();
                longer.push(extra);
                prop_assert!(is_wrong_length(&verify_inclusion(&leaf, i, n, &longer, &root_n)));
                let mut prefixed = vec![extra];
                prefixed.extend_from_slice(&proof);
                prop_assert!(is_wrong_length(&verify_inclusion(&leaf, i, n, &prefixed, &root_n)));
            }
        }

        #[test]
        fn consistency_proofs_verify_and_reject_tampering(
            leaves in distinct_leaves(),
            pick in any::<Index>(),
            bits in proptest::collection::vec(0usize..256, 140),
        ) {
            let (nodes, _) = MemoryNodes::from_leaves(&leaves);
            let n = leaves.len() as u64;
            let roots: Vec<Hash> = (0..=n).map(|m| root(&nodes, m).unwrap()).collect();
            let root_n = roots[n as usize];
            for m in 1..=n {
                let proof = consistency_proof(&nodes, m, n).unwrap();
                prop_assert_eq!(
                    verify_consistency(m, n, &roots[m as usize], &root_n, &proof),
                    Ok(())
                );
            }

            let m = 1 + pick.index(leaves.len()) as u64;
            let root_m = roots[m as usize];
            let proof = consistency_proof(&nodes, m, n).unwrap();
            if m == n {
                prop_assert!(proof.is_empty());
                let other = roots[(m - 1) as usize];
                prop_assert!(is_root_mismatch(&verify_consistency(m, n, &root_m, &other, &[])));
                prop_assert!(is_root_mismatch(&verify_consistency(m, n, &other, &root_m, &[])));
                prop_assert!(is_wrong_length(&verify_consistency(m, n, &root_m, &root_n, &[root_m])));
                return Ok(());
            }
            for (pos, bit) in (0..proof.len()).zip(&bits) {
                let mut bad = proof.clone();
                bad[pos] = flip(&bad[pos], *bit);
                prop_assert!(is_root_mismatch(&verify_consistency(m, n, &root_m, &root_n, &bad)));
            }
            let bad_old = flip(&root_m, bits[138]);
            prop_assert!(is_root_mismatch(&verify_consistency(m, n, &bad_old, &root_n, &proof)));
            let bad_new = flip(&root_n, bits[139]);
            prop_assert!(is_root_mismatch(&verify_consistency(m, n, &root_m, &bad_new, &proof)));
            prop_assert!(verify_consistency(m, n, &root_n, &root_m, &proof).is_err());
            // Wrong sizes: rejected unless the RFC verification would do the very same hashing.
            let tampered = [
                (m - 1, n), (m + 1, n), (m ^ 2, n), (m, n - 1), (m, n + 1), (m, 2 * n), (m, n / 2),
            ];
            for (m2, n2) in tampered {
                let r = verify_consistency(m2, n2, &root_m, &root_n, &proof);
                if m2 == 0 || m2 > n2 {
                    prop_assert_eq!(
                        r,
                        Err(ProofError::SizeOutOfRange { old_size: m2, new_size: n2 })
                    );
                } else {
                    let same = ref_consistency_shape(m2, n2, true)
                        == ref_consistency_shape(m, n, true);
                    prop_assert_eq!(r.is_ok(), same, "{} -> {} for {} -> {}", m2, n2, m, n);
                }
            }
            // Truncated, empty, extended, prefixed proofs.
            if let Some((_, shorter)) = proof.split_last() {
                prop_assert!(is_wrong_length(&verify_consistency(m, n, &root_m, &root_n, shorter)));
            }
            prop_assert!(is_wrong_length(&verify_consistency(m, n, &root_m, &root_n, &[])));
            for extra in [[0u8; 32], root_m, root_n, proof[0]] {
                let mut longer = proof.clone();
                longer.push(extra);
                prop_assert!(is_wrong_length(&verify_consistency(m, n, &root_m, &root_n, &longer)));
                let mut prefixed = vec![extra];
                prefixed.extend_from_slice(&proof);
                prop_assert!(is_wrong_length(&verify_consistency(m, n, &root_m, &root_n, &prefixed)));
            }
        }

        #[test]
        fn frontier_matches_stored_tree(leaves in distinct_leaves()) {
            let (nodes, built) = MemoryNodes::from_leaves(&leaves);
            let n = leaves.len() as u64;
            let mut frontier = Frontier::new();
            let mut seen = HashSet::new();
            for (i, leaf) in leaves.iter().enumerate() {
                let i = i as u64;
                prop_assert_eq!(frontier.size(), i);
                prop_assert_eq!(frontier.root(), root(&nodes, i).unwrap());
                prop_assert_eq!(&Frontier::from_nodes(&nodes, i).unwrap(), &frontier);
                let completed = frontier.push(leaf_hash(leaf));
                // (0, i, leaf) first, then one level up at a time; each node once, as stored.
                prop_assert_eq!(completed.len() as u32, i.trailing_ones() + 1);
                prop_assert_eq!(completed[0], (0, i, leaf_hash(leaf)));
                for (step, &(level, index, hash)) in completed.iter().enumerate() {
                    prop_assert_eq!(usize::from(level), step);
                    prop_assert_eq!(index, i >> level);
                    prop_assert_eq!(nodes.node(level, index), Ok(hash));
                    prop_assert!(seen.insert((level, index)), "node ({}, {}) twice", level, index);
                }
            }
            prop_assert_eq!(frontier.size(), n);
            prop_assert_eq!(frontier.root(), root(&nodes, n).unwrap());
            prop_assert_eq!(&Frontier::from_nodes(&nodes, n).unwrap(), &frontier);
            prop_assert_eq!(&built, &frontier);
            // Every node the store holds came from push: 2n - popcount(n) of them.
            prop_assert_eq!(seen.len() as u64, 2 * n - u64::from(n.count_ones()));
        }
    }

    // ---------------------------------------------------------------------------------------
    // Bad input: typed errors, never a panic.
    // ---------------------------------------------------------------------------------------

    /// A store that always fails.
    struct Broken;

    impl NodeSource for Broken {
        fn node(&self, _level: u8, _index: u64) -> Result<Hash, ProofError> {
            Err(ProofError::Storage("disk unavailable".into()))
        }
    }

    /// A store that lacks exactly one node.
    struct Hiding<'a> {
        inner: &'a MemoryNodes,
        hidden: (u8, u64),
    }

    impl NodeSource for Hiding<'_> {
        fn node(&self, level: u8, index: u64) -> Result<Hash, ProofError> {
            if (level, index) == self.hidden {
                Err(ProofError::MissingNode { level, index })
            } else {
                self.inner.node(level, index)
            }
        }
    }

    /// A store that has every node (all zero), for sizes no memory could hold.
    struct Everything;

    impl NodeSource for Everything {
        fn node(&self, _level: u8, _index: u64) -> Result<Hash, ProofError> {
            Ok([0; 32])
        }
    }

    #[test]
    fn out_of_range_arguments() {
        let (nodes, _) = MemoryNodes::from_leaves(ref_leaves());
        let any = [7u8; 32];
        for (index, size) in [(0, 0), (5, 5), (8, 5), (u64::MAX, u64::MAX), (u64::MAX, 0)] {
            let want = Err(ProofError::IndexOutOfRange { index, size });
            assert_eq!(inclusion_proof(&nodes, index, size), want.clone());
            assert_eq!(
                verify_inclusion(&any, index, size, &[], &any),
                want.map(|_| ())
            );
        }
        for (old_size, new_size) in [(0, 0), (0, 5), (6, 5), (u64::MAX, 1), (1, 0)] {
            let want = ProofError::SizeOutOfRange { old_size, new_size };
            assert_eq!(
                consistency_proof(&nodes, old_size, new_size),
                Err(want.clone())
            );
            assert_eq!(
                verify_consistency(old_size, new_size, &any, &any, &[]),
                Err(want)
            );
        }
    }

    #[test]
    fn missing_and_failing_nodes() {
        // Five leaves stored, larger trees asked for.
        let (five, _) = MemoryNodes::from_leaves(&ref_leaves()[..5]);
        let missing = |level, index| Err(ProofError::MissingNode { level, index });
        let missing_v =
            |level, index| Err::<Vec<Hash>, _>(ProofError::MissingNode { level, index });
        let missing_f = |level, index| Err::<Frontier, _>(ProofError::MissingNode { level, index });
        assert_eq!(root(&five, 8), missing(3, 0));
        assert_eq!(root(&five, 6), missing(1, 2));
        assert_eq!(inclusion_proof(&five, 0, 6), missing_v(1, 2));
        assert_eq!(consistency_proof(&five, 2, 6), missing_v(1, 2));
        assert_eq!(inclusion_proof(&five, 4, 6), missing_v(0, 5));
        assert_eq!(consistency_proof(&five, 5, 6), missing_v(0, 5));
        assert_eq!(Frontier::from_nodes(&five, 6), missing_f(1, 2));
        assert_eq!(Frontier::from_nodes(&five, 8), missing_f(3, 0));
        // A failing store's error comes through unchanged.
        let failed = ProofError::Storage("disk unavailable".into());
        assert_eq!(root(&Broken, 1), Err(failed.clone()));
        assert_eq!(inclusion_proof(&Broken, 0, 2), Err(failed.clone()));
        assert_eq!(consistency_proof(&Broken, 1, 2), Err(failed.clone()));
        assert_eq!(Frontier::from_nodes(&Broken, 3), Err(failed));
        // Nothing is read for the empty tree or an equal-size consistency proof.
        assert_eq!(root(&Broken, 0), Ok(EMPTY_ROOT));
        assert_eq!(Frontier::from_nodes(&Broken, 0), Ok(Frontier::new()));
        assert_eq!(consistency_proof(&Broken, 3, 3), Ok(vec![]));
        // Hide each stored node of a 13-leaf tree in turn: every operation either gives the
        // same answer as with the full store or reports exactly that node as missing.
        let data: Vec<Vec<u8>> = (0..13u8).map(|i| vec![i]).collect();
        let (full, _) = MemoryNodes::from_leaves(&data);
        for level in 0..4u8 {
            for index in 0..(13u64 >> level) {
                let hiding = Hiding {
                    inner: &full,
                    hidden: (level, index),
                };
                let hidden = ProofError::MissingNode { level, index };
                let ok_or_hidden = |a: Result<Vec<Hash>, ProofError>, b: Result<Vec<Hash>, _>| {
                    assert!(a == b || a == Err(hidden.clone()), "{a:?} vs {b:?}");
                };
                for size in 0..=13u64 {
                    ok_or_hidden(
                        root(&hiding, size).map(|r| vec![r]),
                        root(&full, size).map(|r| vec![r]),
                    );
                    ok_or_hidden(
                        Frontier::from_nodes(&hiding, size).map(|f| f.stack),
                        Frontier::from_nodes(&full, size).map(|f| f.stack),
                    );
                    for m in 0..size {
                        ok_or_hidden(
                            inclusion_proof(&hiding, m, size),
                            inclusion_proof(&full, m, size),
                        );
                        ok_or_hidden(
                            consistency_proof(&hiding, m + 1, size),
                            consistency_proof(&full, m + 1, size),
                        );
                    }
                }
                // The root of the whole tree needs every node on the frontier.
                let on_frontier = 13u64 & (1 << level) != 0 && index == (13 >> level) - 1;
                if on_frontier {
                    assert_eq!(root(&hiding, 13), Err(hidden.clone()));
                }
            }
        }
    }

    #[test]
    fn extreme_sizes_do_not_panic() {
        let empty = MemoryNodes::new();
        let max = u64::MAX;
        assert_eq!(
            root(&empty, max),
            Err(ProofError::MissingNode {
                level: 63,
                index: 0
            })
        );
        assert!(root(&empty, 1 << 63).is_err());
        assert!(inclusion_proof(&empty, max - 1, max).is_err());
        assert!(inclusion_proof(&empty, 0, max).is_err());
        assert!(consistency_proof(&empty, max - 1, max).is_err());
        assert!(consistency_proof(&empty, 1, max).is_err());
        assert!(consistency_proof(&empty, 1 << 63, max).is_err());
        // With a store that has every node, the proofs have the lengths verification expects.
        for (index, size) in [(0, max), (max - 1, max), (1 << 62, max), (max - 2, max - 1)] {
            let proof = inclusion_proof(&Everything, index, size).unwrap();
            assert_eq!(proof.len(), inclusion_proof_len(index, size));
            let root_hash = root(&Everything, size).unwrap();
            let r = verify_inclusion(&[0; 32], index, size, &proof, &root_hash);
            assert!(r.is_ok() || is_root_mismatch(&r), "{r:?}");
        }
        for (old, new) in [
            (1, max),
            (max - 1, max),
            (1 << 63, max),
            (3, max),
            (max, max),
        ] {
            let proof = consistency_proof(&Everything, old, new).unwrap();
            if old < new {
                assert_eq!(proof.len(), consistency_proof_len(old, new));
            }
            let (r1, r2) = (
                root(&Everything, old).unwrap(),
                root(&Everything, new).unwrap(),
            );
            let r = verify_consistency(old, new, &r1, &r2, &proof);
            assert!(r.is_ok() || is_root_mismatch(&r), "{r:?}");
            let r = verify_consistency(old, new, &r1, &r2, &[[1; 32]; 3]);
            assert!(r.is_err());
        }
        assert!(is_wrong_length(&verify_inclusion(
            &[0; 32],
            0,
            max,
            &[],
            &[0; 32]
        )));
        assert!(is_root_mismatch(&verify_inclusion(
            &[0; 32],
            0,
            max,
            &[[1; 32]; 64],
            &[0; 32]
        )));
        // A full frontier: 64 subtrees; it cannot grow further.
        let mut full = Frontier::from_nodes(&Everything, max).unwrap();
        assert_eq!(full.stack.len(), 64);
        let before = full.clone();
        let _ = full.root();
        assert!(full.push([1; 32]).is_empty());
        assert_eq!(full, before);
        // One below full: the last leaf completes no parent.
        let mut almost = Frontier::from_nodes(&Everything, max - 1).unwrap();
        assert_eq!(almost.push([1; 32]), vec![(0, max - 1, [1; 32])]);
        assert_eq!(almost.size(), max);
        assert_eq!(almost.stack.len(), 64);
        // Leaf 2^63 - 1 completes a node on each of the 64 levels, up to level 63.
        let mut half = Frontier::from_nodes(&Everything, (1 << 63) - 1).unwrap();
        let completed = half.push([1; 32]);
        assert_eq!(completed.len(), 64);
        assert_eq!(completed.last().map(|c| (c.0, c.1)), Some((63, 0)));
        assert_eq!(half.size(), 1 << 63);
        assert_eq!(half.stack.len(), 1);
    }

    #[test]
    fn memory_nodes_insert() {
        let mut nodes = MemoryNodes::new();
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        // A gap is not stored; the next free slot is; a stored node is overwritten.
        nodes.insert(&[(0, 1, a)]);
        assert_eq!(
            nodes.node(0, 1),
            Err(ProofError::MissingNode { level: 0, index: 1 })
        );
        nodes.insert(&[(0, 0, a), (0, 1, a)]);
        assert_eq!(nodes.node(0, 1), Ok(a));
        nodes.insert(&[(0, 1, b)]);
        assert_eq!(nodes.node(0, 1), Ok(b));
        nodes.insert(&[(255, 0, b), (9, u64::MAX, a)]);
        assert_eq!(nodes.node(255, 0), Ok(b));
        assert!(nodes.node(9, u64::MAX).is_err());
        assert!(nodes.node(200, 0).is_err());
    }

    #[test]
    fn error_messages_are_readable() {
        let e = ProofError::IndexOutOfRange { index: 9, size: 4 };
        assert!(e.to_string().contains("leaf 9") && e.to_string().contains("4 entries"));
        let e = ProofError::SizeOutOfRange {
            old_size: 7,
            new_size: 3,
        };
        assert!(e.to_string().contains("7 entries") && e.to_string().contains("3 entries"));
        let e = ProofError::WrongProofLength {
            expected: 3,
            found: 2,
        };
        assert!(e.to_string().contains("2 hashes") && e.to_string().contains("exactly 3"));
        let e = ProofError::RootMismatch {
            expected: "ab".into(),
            computed: "cd".into(),
        };
        assert!(e.to_string().contains("ab") && e.to_string().contains("cd"));
        let e = ProofError::MissingNode { level: 2, index: 5 };
        assert!(e.to_string().contains("node 5 at level 2"));
        let e = ProofError::Storage("disk unavailable".into());
        assert!(e.to_string().contains("disk unavailable"));
    }
}
