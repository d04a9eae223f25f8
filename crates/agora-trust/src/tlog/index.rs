//! The subject index: which of a log's entries carried each subject's records, committed
//! in every checkpoint, so that a resident can be shown every access to their records in
//! a node's log — and that there is no other.
//!
//! Each entry of a record-level answer commits to the tags of its subjects
//! ([`super::SubjectSet`]). The index inverts that for the log's first `size` entries: for
//! each tag, the ascending list of the entries whose subject set holds it. Tags are spread
//! over [`INDEX_BUCKETS`] buckets by their first byte. A bucket's hash is SHA-256 over its
//! elements in ascending order of tag (`"agora subject bucket v1\n"`, then per element the
//! tag's 64 bytes, the number of its entries and each entry index, all `u64` big-endian),
//! and the index's root is the RFC 6962 Merkle root over the 256 bucket hashes, in bucket
//! order. A checkpoint states the root, with the node's public subject key, in an extension
//! line (see [`SubjectLine`]); the node signs it and the authority cosigns it.
//!
//! Whoever holds a tag asks for its whole bucket: the node learns one byte of a tag it
//! cannot invert, and answers with every element of the bucket and the bucket's proof
//! ([`check_bucket`]). A node that leaves an access out of that answer no longer matches
//! the root it signed; a node that leaves it out of the index itself no longer matches its
//! entries' subject roots, which an auditor recomputes from the tags
//! ([`SubjectIndex::from_entries`]).

use sha2::{Digest, Sha256};

use super::{Hash, MemoryHashes, SubjectTag, TlogError, hashes_to_store, prove_inclusion, root};

/// How many buckets the index has (one per first byte of a tag).
pub const INDEX_BUCKETS: usize = 256;

/// Which bucket a tag is in.
pub fn bucket_of(tag: &SubjectTag) -> u8 {
    tag[0]
}

/// One subject in the index: its tag and the entries (ascending) that carried its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexElement {
    pub tag: SubjectTag,
    pub entries: Vec<u64>,
}

/// The hash of one bucket's elements, after checking that they are in it, in strictly
/// ascending order of tag, each with at least one entry and its entries strictly
/// ascending.
pub fn bucket_hash(bucket: u8, elements: &[IndexElement]) -> Result<Hash, TlogError> {
    let mut h = Sha256::new();
    h.update(b"agora subject bucket v1\n");
    let mut last: Option<&SubjectTag> = None;
    for e in elements {
        if bucket_of(&e.tag) != bucket {
            return Err(TlogError::Proof(format!(
                "a tag of bucket {} is listed in bucket {bucket}",
                bucket_of(&e.tag)
            )));
        }
        if last.is_some_and(|l| l >= &e.tag) {
            return Err(TlogError::Proof(format!(
                "the tags of bucket {bucket} are not in strictly ascending order"
            )));
        }
        if e.entries.is_empty() || e.entries.windows(2).any(|w| w[0] >= w[1]) {
            return Err(TlogError::Proof(format!(
                "a tag of bucket {bucket} lists no entries, or entries out of order"
            )));
        }
        last = Some(&e.tag);
        h.update(e.tag);
        h.update((e.entries.len() as u64).to_be_bytes());
        for n in &e.entries {
            h.update(n.to_be_bytes());
        }
    }
    Ok(Hash(h.finalize().into()))
}

/// The hashes of the index's buckets, and its root.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectIndex {
    buckets: Vec<Hash>,
}

impl Default for SubjectIndex {
    fn default() -> Self {
        let empty = bucket_hash(0, &[]).expect("an empty bucket is well-formed");
        Self {
            buckets: vec![empty; INDEX_BUCKETS],
        }
    }
}

impl SubjectIndex {
    /// Sets one bucket's hash (from [`bucket_hash`]).
    pub fn set(&mut self, bucket: u8, hash: Hash) {
        self.buckets[usize::from(bucket)] = hash;
    }

    fn hashes(&self) -> Result<MemoryHashes, TlogError> {
        let store = MemoryHashes::default();
        for (n, b) in self.buckets.iter().enumerate() {
            store.push(&hashes_to_store(n as u64, &b.0, &store)?);
        }
        Ok(store)
    }

    /// The index's root: RFC 6962 over the 256 bucket hashes.
    pub fn root(&self) -> Result<Hash, TlogError> {
        root(INDEX_BUCKETS as u64, &self.hashes()?)
    }

    /// The proof that `bucket`'s hash is leaf `bucket` under [`Self::root`].
    pub fn prove(&self, bucket: u8) -> Result<Vec<Hash>, TlogError> {
        prove_inclusion(INDEX_BUCKETS as u64, u64::from(bucket), &self.hashes()?)
    }

    /// The index of a log whose entries (index, subject tags) are these, as an auditor
    /// recomputes it from the tags each entry commits to.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (u64, &'a [SubjectTag])>,
    ) -> Result<Self, TlogError> {
        let mut by_tag: std::collections::BTreeMap<SubjectTag, Vec<u64>> = Default::default();
        for (n, tags) in entries {
            for t in tags {
                let list = by_tag.entry(*t).or_default();
                if list.last() != Some(&n) {
                    list.push(n);
                }
            }
        }
        let mut index = Self::default();
        let mut buckets: Vec<Vec<IndexElement>> = vec![Vec::new(); INDEX_BUCKETS];
        for (tag, mut entries) in by_tag {
            entries.sort_unstable();
            entries.dedup();
            buckets[usize::from(bucket_of(&tag))].push(IndexElement { tag, entries });
        }
        for (b, elements) in buckets.iter().enumerate() {
            index.set(b as u8, bucket_hash(b as u8, elements)?);
        }
        Ok(index)
    }
}

/// Checks that `elements` are the whole of `bucket` in the index whose root is `root`.
pub fn check_bucket(
    root: Hash,
    bucket: u8,
    elements: &[IndexElement],
    proof: &[Hash],
) -> Result<(), TlogError> {
    let hash = bucket_hash(bucket, elements)?;
    super::check_inclusion(
        proof,
        INDEX_BUCKETS as u64,
        root,
        u64::from(bucket),
        &hash.0,
    )
    .map_err(|_| {
        TlogError::Proof(format!(
            "bucket {bucket} as answered is not the bucket the checkpoint commits to: \
                 an access was left out or altered"
        ))
    })
}

/// The checkpoint extension line by which a node commits to its subject key and to the
/// subject index of the log's entries: `agora-subjects <key hex> <index root hex>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubjectLine {
    /// The node's public subject key (RFC 9497 VOPRF, ristretto255).
    pub key: [u8; 32],
    pub index: Hash,
}

const LINE_PREFIX: &str = "agora-subjects ";

impl SubjectLine {
    /// The extension text (one line, ending in a newline).
    pub fn to_extension(&self) -> String {
        format!(
            "{LINE_PREFIX}{} {}\n",
            hex::encode(self.key),
            hex::encode(self.index.0)
        )
    }

    /// The line in a checkpoint's extension, if it has one (`Err` when it is malformed).
    pub fn from_extension(extension: &str) -> Result<Option<Self>, TlogError> {
        let Some(line) = extension.lines().find_map(|l| l.strip_prefix(LINE_PREFIX)) else {
            return Ok(None);
        };
        let bad = || TlogError::Checkpoint("its agora-subjects line is malformed".into());
        let (key, index) = line.split_once(' ').ok_or_else(bad)?;
        let key: [u8; 32] = hex::decode(key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(bad)?;
        let index: [u8; 32] = hex::decode(index)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(bad)?;
        Ok(Some(Self {
            key,
            index: Hash(index),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(first: u8, n: u8) -> SubjectTag {
        let mut t = [n; 64];
        t[0] = first;
        t
    }

    #[test]
    fn a_bucket_answered_whole_checks_and_one_with_an_access_left_out_does_not() {
        let (a, b, c) = (tag(7, 1), tag(7, 2), tag(9, 1));
        let entries: Vec<(u64, Vec<SubjectTag>)> =
            vec![(0, vec![a, c]), (3, vec![b]), (5, vec![a, b])];
        let index =
            SubjectIndex::from_entries(entries.iter().map(|(n, t)| (*n, t.as_slice()))).unwrap();
        let root = index.root().unwrap();
        let proof = index.prove(7).unwrap();
        let whole = vec![
            IndexElement {
                tag: a,
                entries: vec![0, 5],
            },
            IndexElement {
                tag: b,
                entries: vec![3, 5],
            },
        ];
        check_bucket(root, 7, &whole, &proof).unwrap();
        let mut omitted = whole.clone();
        omitted[0].entries = vec![0];
        assert!(check_bucket(root, 7, &omitted, &proof).is_err());
        assert!(check_bucket(root, 7, &whole[1..], &proof).is_err());
        let mut reversed = whole.clone();
        reversed.reverse();
        assert!(check_bucket(root, 7, &reversed, &proof).is_err());
        // Another bucket's proof does not stand for this one.
        assert!(check_bucket(root, 7, &whole, &index.prove(9).unwrap()).is_err());
        // An empty bucket is provably empty.
        check_bucket(root, 8, &[], &index.prove(8).unwrap()).unwrap();
    }

    #[test]
    fn the_subject_line_reads_back_and_refuses_malformed_text() {
        let line = SubjectLine {
            key: [3; 32],
            index: Hash([4; 32]),
        };
        let text = line.to_extension();
        assert_eq!(SubjectLine::from_extension(&text).unwrap(), Some(line));
        assert_eq!(SubjectLine::from_extension("").unwrap(), None);
        assert!(SubjectLine::from_extension("agora-subjects zz 00\n").is_err());
        assert!(SubjectLine::from_extension("agora-subjects 0303\n").is_err());
    }
}
