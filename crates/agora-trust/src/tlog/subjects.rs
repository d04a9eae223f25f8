//! Whose records an answer carried, as a log entry commits to it without naming anyone.
//!
//! The query engine gives the owner a digest of each subject identifier whose rows an
//! answer under a record-level agreement read. Here each digest becomes a **tag** — HMAC-SHA256
//! under the node's subject key, which never leaves the node — and the entry's commitment is
//! the number of tags and the RFC 6962 Merkle root over them in ascending order (each tag's
//! 32 bytes one leaf). The log's readers see a count and a root: no identifier, and nothing
//! that links one entry's subjects to another's. Whoever holds a subject's tag can be shown
//! that it is (or, with its neighbours, that it is not) among an entry's leaves.

use super::{Hash, MemoryHashes, TlogError, hashes_to_store, prove_inclusion, root};

/// The digest of a subject identifier the engine notes (see `agora-engine`'s ledger).
pub type SubjectDigest = [u8; 16];

/// A subject's tag at one node.
pub type SubjectTag = [u8; 32];

/// The node's secret for subject tags (32 bytes, kept 0600 beside its keys).
#[derive(Clone)]
pub struct SubjectKey([u8; 32]);

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey(…)")
    }
}

impl SubjectKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The tag of one subject.
    pub fn tag(&self, digest: &SubjectDigest) -> SubjectTag {
        let mut message = Vec::with_capacity(24 + digest.len());
        message.extend_from_slice(b"agora subject tag v1\0");
        message.extend_from_slice(digest);
        crate::secrets::hmac_sha256(&self.0, &message)
    }
}

/// The subjects of one answer: distinct tags in ascending order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectSet {
    tags: Vec<SubjectTag>,
}

impl SubjectSet {
    /// The set of these subjects' tags.
    pub fn new(key: &SubjectKey, digests: &[SubjectDigest]) -> Self {
        let mut tags: Vec<SubjectTag> = digests.iter().map(|d| key.tag(d)).collect();
        tags.sort_unstable();
        tags.dedup();
        Self { tags }
    }

    /// A set of tags as they were stored (sorted and made distinct again).
    pub fn from_tags(mut tags: Vec<SubjectTag>) -> Self {
        tags.sort_unstable();
        tags.dedup();
        Self { tags }
    }

    pub fn tags(&self) -> &[SubjectTag] {
        &self.tags
    }

    pub fn len(&self) -> u64 {
        self.tags.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    fn hashes(&self) -> Result<MemoryHashes, TlogError> {
        let store = MemoryHashes::default();
        for (n, tag) in self.tags.iter().enumerate() {
            let h = hashes_to_store(n as u64, tag, &store)?;
            store.push(&h);
        }
        Ok(store)
    }

    /// The Merkle root over the tags (RFC 6962; of an empty set, SHA-256 of nothing).
    pub fn root(&self) -> Result<Hash, TlogError> {
        root(self.len(), &self.hashes()?)
    }

    /// Where `tag` is among the leaves and the proof of it, if it is one of them.
    pub fn prove(&self, tag: &SubjectTag) -> Result<Option<(u64, Vec<Hash>)>, TlogError> {
        let Ok(i) = self.tags.binary_search(tag) else {
            return Ok(None);
        };
        let proof = prove_inclusion(self.len(), i as u64, &self.hashes()?)?;
        Ok(Some((i as u64, proof)))
    }
}

/// Whether `tag` is leaf `index` of the commitment (`count`, `root`), by `proof`.
pub fn check_subject(count: u64, root: Hash, index: u64, tag: &SubjectTag, proof: &[Hash]) -> bool {
    super::check_inclusion(proof, count, root, index, tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SubjectKey {
        SubjectKey::new([9; 32])
    }

    #[test]
    fn a_set_commits_to_its_subjects_and_proves_each_of_them() {
        let digests: Vec<SubjectDigest> = (0u8..37).map(|i| [i; 16]).collect();
        let mut twice = digests.clone();
        twice.extend_from_slice(&digests[..5]);
        let set = SubjectSet::new(&key(), &twice);
        assert_eq!(set.len(), 37, "a subject counts once");
        let root = set.root().unwrap();
        for d in &digests {
            let tag = key().tag(d);
            let (i, proof) = set.prove(&tag).unwrap().unwrap();
            assert!(check_subject(37, root, i, &tag, &proof));
            let other = key().tag(&[201; 16]);
            assert!(!check_subject(37, root, i, &other, &proof), "another tag");
            assert!(
                !check_subject(37, Hash([0; 32]), i, &tag, &proof),
                "another root"
            );
        }
        assert!(set.prove(&key().tag(&[200; 16])).unwrap().is_none());
        // Another key's tags are other tags: the root reveals nothing without the key.
        let other = SubjectSet::new(&SubjectKey::new([8; 32]), &digests);
        assert_ne!(other.root().unwrap(), root);
        assert_eq!(SubjectSet::from_tags(set.tags().to_vec()), set);
    }

    #[test]
    fn an_empty_set_has_the_empty_tree_root() {
        use sha2::{Digest, Sha256};
        let root = SubjectSet::default().root().unwrap();
        assert_eq!(root.0.as_slice(), Sha256::digest(b"").as_slice());
    }
}
