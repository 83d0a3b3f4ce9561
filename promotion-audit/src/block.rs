//! How the SQLite backend stores entries: consecutive entries share one row, a *block*.
//!
//! A block holds the entries `first .. first + count` as three byte strings:
//!
//! - `dir`: per entry, 20 bytes: stream id (`u64`), version (`u64`), length of its bytes
//!   (`u32`), all little-endian;
//! - `hashes`: per entry, its 32-byte leaf hash as recorded at append time;
//! - `data`: the entries' canonical bytes, one after another.
//!
//! Only the storage layout is new: the entry bytes, their hashes, the chain and the Merkle tree
//! are exactly those of any other backend. Reading a row per block instead of per entry is what
//! lets verification run near hashing speed, and inserting one row per block instead of one per
//! entry (with its index entries) is most of what makes a group commit cheap.

use crate::merkle::Hash;

/// Bytes of one directory record.
pub(crate) const DIR_RECORD: usize = 20;

/// A block being built.
#[derive(Debug, Default)]
pub(crate) struct BlockBuf {
    pub(crate) dir: Vec<u8>,
    pub(crate) hashes: Vec<u8>,
    pub(crate) data: Vec<u8>,
    pub(crate) count: u64,
}

impl BlockBuf {
    /// Appends one entry. `hash` is stored as given (a migration copies old rows as they are).
    pub(crate) fn push(&mut self, sid: u64, version: u64, bytes: &[u8], hash: &[u8]) {
        self.dir.extend_from_slice(&sid.to_le_bytes());
        self.dir.extend_from_slice(&version.to_le_bytes());
        // Entries are far below 4 GiB; a longer one is recorded as u32::MAX and the block then
        // fails to parse, naming it, instead of being stored wrongly.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.dir.extend_from_slice(&len.to_le_bytes());
        self.hashes.extend_from_slice(hash);
        self.data.extend_from_slice(bytes);
        self.count += 1;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(crate) fn clear(&mut self) {
        self.dir.clear();
        self.hashes.clear();
        self.data.clear();
        self.count = 0;
    }
}

/// One entry of a parsed block, borrowing from the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockEntry<'a> {
    pub(crate) seq: u64,
    pub(crate) sid: u64,
    pub(crate) version: u64,
    pub(crate) bytes: &'a [u8],
    pub(crate) hash: Hash,
}

/// A stored block whose three parts agree with each other (their contents are checked by
/// verification, like any entry's).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockRef<'a> {
    pub(crate) first: u64,
    dir: &'a [u8],
    hashes: &'a [u8],
    data: &'a [u8],
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

/// A stored block's directory and hashes, checked against the length of its data but without
/// the data itself: enough to find one entry's bytes and read only those.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockIndex<'a> {
    pub(crate) first: u64,
    pub(crate) count: u64,
    dir: &'a [u8],
    hashes: &'a [u8],
}

/// Where one entry of a block is, as its [`BlockIndex`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Located {
    pub(crate) sid: u64,
    pub(crate) version: u64,
    /// Offset of the entry's bytes in the block's data.
    pub(crate) offset: u64,
    pub(crate) len: usize,
    pub(crate) hash: Hash,
}

impl<'a> BlockIndex<'a> {
    /// Checks that the parts of the block starting at entry `first` fit together: `count`
    /// records in `dir`, `count` hashes, and entry lengths that add up to `data_len`, the length
    /// of its data. The error says what does not fit.
    pub(crate) fn parse(
        first: i64,
        count: i64,
        dir: &'a [u8],
        hashes: &'a [u8],
        data_len: u64,
    ) -> Result<Self, String> {
        let first = u64::try_from(first).map_err(|_| format!("its first entry is {first}"))?;
        let n = usize::try_from(count)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("it claims {count} entries"))?;
        if dir.len() != n.saturating_mul(DIR_RECORD) {
            return Err(format!(
                "its directory has {} bytes, not {} for {n} entries",
                dir.len(),
                n.saturating_mul(DIR_RECORD)
            ));
        }
        if hashes.len() != n.saturating_mul(32) {
            return Err(format!(
                "it has {} bytes of hashes, not {} for {n} entries",
                hashes.len(),
                n.saturating_mul(32)
            ));
        }
        let total = dir
            .chunks_exact(DIR_RECORD)
            .map(|r| u64::from(u32_at(r, 16)))
            .sum::<u64>();
        if total != data_len {
            return Err(format!(
                "its entries' lengths add up to {total} bytes, but it holds {data_len}"
            ));
        }
        Ok(BlockIndex {
            first,
            count: n as u64,
            dir,
            hashes,
        })
    }

    /// The sequence number after the block's last entry.
    pub(crate) fn end(&self) -> u64 {
        self.first.saturating_add(self.count)
    }

    /// Where entry `seq` is, if the block holds it.
    pub(crate) fn locate(&self, seq: u64) -> Option<Located> {
        let i = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        let rec = self.dir.get(i * DIR_RECORD..(i + 1) * DIR_RECORD)?;
        let offset = self
            .dir
            .chunks_exact(DIR_RECORD)
            .take(i)
            .map(|r| u64::from(u32_at(r, 16)))
            .sum();
        let mut hash = [0u8; 32];
        hash.copy_from_slice(self.hashes.get(i * 32..(i + 1) * 32)?);
        Some(Located {
            sid: u64_at(rec, 0),
            version: u64_at(rec, 8),
            offset,
            len: u32_at(rec, 16) as usize,
            hash,
        })
    }
}

impl<'a> BlockRef<'a> {
    /// Checks that the parts of the block starting at entry `first` fit together, as
    /// [`BlockIndex::parse`] does with `data`'s length. The error says what does not fit.
    pub(crate) fn parse(
        first: i64,
        count: i64,
        dir: &'a [u8],
        hashes: &'a [u8],
        data: &'a [u8],
    ) -> Result<Self, String> {
        let index = BlockIndex::parse(first, count, dir, hashes, data.len() as u64)?;
        Ok(BlockRef {
            first: index.first,
            dir,
            hashes,
            data,
        })
    }

    /// The entries, in order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = BlockEntry<'a>> + 'a {
        let (dir, hashes, data, first) = (self.dir, self.hashes, self.data, self.first);
        let mut offset = 0usize;
        dir.chunks_exact(DIR_RECORD)
            .zip(hashes.chunks_exact(32))
            .enumerate()
            .map(move |(i, (rec, h))| {
                let len = u32_at(rec, 16) as usize;
                // `parse` checked that the lengths add up to `data`.
                let bytes = data.get(offset..offset + len).unwrap_or_default();
                offset += len;
                let mut hash = [0u8; 32];
                hash.copy_from_slice(h);
                BlockEntry {
                    seq: first.saturating_add(i as u64),
                    sid: u64_at(rec, 0),
                    version: u64_at(rec, 8),
                    bytes,
                    hash,
                }
            })
    }
}

/// Parses only the directory of a block (its count and records), for index maintenance and
/// stream lookups that do not need the entries' bytes.
pub(crate) fn directory(
    first: i64,
    count: i64,
    dir: &[u8],
) -> Result<impl Iterator<Item = (u64, u64, u64)> + '_, String> {
    let f = u64::try_from(first).map_err(|_| format!("its first entry is {first}"))?;
    let fits =
        usize::try_from(count).is_ok_and(|n| n > 0 && dir.len() == n.saturating_mul(DIR_RECORD));
    if !fits {
        return Err(format!(
            "its directory has {} bytes for {count} entries",
            dir.len()
        ));
    }
    Ok(dir
        .chunks_exact(DIR_RECORD)
        .enumerate()
        .map(move |(i, rec)| (f.saturating_add(i as u64), u64_at(rec, 0), u64_at(rec, 8))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> BlockBuf {
        let mut b = BlockBuf::default();
        b.push(1, 1, b"{\"a\":1}", &[1u8; 32]);
        b.push(2, 7, b"", &[2u8; 32]);
        b.push(1, 2, b"xyz", &[3u8; 32]);
        b
    }

    #[test]
    fn a_block_reads_back_what_was_pushed() {
        let b = block();
        let r = BlockRef::parse(10, 3, &b.dir, &b.hashes, &b.data).unwrap();
        let got: Vec<_> = r.entries().collect();
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].seq, got[0].sid, got[0].version, got[0].bytes),
            (10, 1, 1, &b"{\"a\":1}"[..])
        );
        assert_eq!(
            (got[1].seq, got[1].bytes, got[1].hash),
            (11, &b""[..], [2u8; 32])
        );
        assert_eq!(
            (got[2].seq, got[2].version, got[2].bytes),
            (12, 2, &b"xyz"[..])
        );
        let index = BlockIndex::parse(10, 3, &b.dir, &b.hashes, b.data.len() as u64).unwrap();
        assert_eq!(index.end(), 13);
        assert_eq!(
            index.locate(12),
            Some(Located {
                sid: 1,
                version: 2,
                offset: 7,
                len: 3,
                hash: [3u8; 32]
            })
        );
        assert_eq!(index.locate(11).map(|l| (l.offset, l.len)), Some((7, 0)));
        assert_eq!(index.locate(9), None);
        assert_eq!(index.locate(13), None);
        let dir: Vec<_> = directory(10, 3, &b.dir).unwrap().collect();
        assert_eq!(dir, vec![(10, 1, 1), (11, 2, 7), (12, 1, 2)]);
    }

    #[test]
    fn parts_that_do_not_fit_together_are_named() {
        let b = block();
        let err = |first, count, dir: &[u8], hashes: &[u8], data: &[u8]| {
            BlockRef::parse(first, count, dir, hashes, data).unwrap_err()
        };
        assert!(err(0, 4, &b.dir, &b.hashes, &b.data).contains("directory has 60 bytes, not 80"));
        assert!(err(0, 0, &b.dir, &b.hashes, &b.data).contains("claims 0 entries"));
        assert!(err(-1, 3, &b.dir, &b.hashes, &b.data).contains("first entry is -1"));
        assert!(err(0, 3, &b.dir, &b.hashes[1..], &b.data).contains("95 bytes of hashes"));
        assert!(err(0, 3, &b.dir, &b.hashes, &b.data[1..]).contains("add up to 10 bytes"));
        assert!(directory(0, 2, &b.dir).is_err());
        assert!(BlockIndex::parse(0, 3, &b.dir, &b.hashes, 9)
            .unwrap_err()
            .contains("add up to 10 bytes, but it holds 9"));
    }
}
