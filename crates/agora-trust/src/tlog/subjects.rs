//! Whose records an answer carried, as a log entry commits to it without naming anyone.
//!
//! The query engine gives the owner a digest of each subject identifier whose rows an
//! answer under a record-level agreement read. Here each digest becomes a **tag**: the
//! RFC 9497 verifiable OPRF (`ristretto255-SHA512`, through the `voprf` crate) of the digest
//! under the node's subject key, which never leaves the node. The entry's commitment is the
//! number of tags and the RFC 6962 Merkle root over them in ascending order (each tag's 64
//! bytes one leaf). The log's readers see a count and a root: no identifier, and nothing
//! that links one entry's subjects to another's. Whoever holds a subject's tag can be shown
//! that it is among an entry's leaves.
//!
//! An OPRF rather than a plain keyed hash, so that someone who knows the identifier (a
//! resident, through the portal of their ecosystem) can obtain its tag from the node
//! without the node learning the identifier (the digest is sent blinded), and check with
//! the node's public subject key that the tag is the node's real one.

use super::{Hash, MemoryHashes, TlogError, hashes_to_store, prove_inclusion, root};

/// The digest of a subject identifier the engine notes (see `agora-engine`'s ledger).
pub type SubjectDigest = [u8; 16];

/// A subject's tag at one node (the OPRF's output).
pub type SubjectTag = [u8; 64];

/// The cipher suite of subject tags.
type Suite = voprf::Ristretto255;

/// The node's subject key: a VOPRF key derived (RFC 9497 `DeriveKeyPair`) from a 32-byte
/// secret kept 0600 beside the node's keys.
#[derive(Clone)]
pub struct SubjectKey(voprf::VoprfServer<Suite>);

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey(…)")
    }
}

/// The `info` of the key's derivation: a new version derives a new key.
const KEY_INFO: &[u8] = b"agora subject tags v1";

impl SubjectKey {
    /// The key derived from the node's 32-byte secret.
    pub fn new(secret: [u8; 32]) -> Self {
        // Derivation fails only with a negligible probability for a given secret (the
        // RFC's 256 tries all landing on zero).
        Self(
            voprf::VoprfServer::new_from_seed(&secret, KEY_INFO)
                .expect("RFC 9497 key derivation succeeds"),
        )
    }

    /// The tag of one subject.
    pub fn tag(&self, digest: &SubjectDigest) -> SubjectTag {
        let out = self
            .0
            .evaluate(digest)
            .expect("a 16-byte digest hashes to a group element other than the identity");
        let mut tag = [0u8; 64];
        tag.copy_from_slice(&out);
        tag
    }

    /// The public half, with which a tag obtained blindly is checked (32 bytes).
    pub fn public_key(&self) -> [u8; 32] {
        self.0.get_public_key().compress().to_bytes()
    }

    /// Evaluates a blinded digest sent by someone asking for a subject's tag (see
    /// [`TagRequest`]), without learning the digest: the evaluated element (32 bytes) and
    /// the proof (64 bytes) that this node's key made it.
    pub fn blind_evaluate(&self, blinded: &[u8]) -> Result<(Vec<u8>, Vec<u8>), TlogError> {
        let blinded = voprf::BlindedElement::<Suite>::deserialize(blinded).map_err(|_| {
            TlogError::Proof("the blinded element is not a ristretto255 point".into())
        })?;
        let result = self.0.blind_evaluate(&mut rand_core_06::OsRng, &blinded);
        Ok((
            result.message.serialize().to_vec(),
            result.proof.serialize().to_vec(),
        ))
    }
}

/// A subject's tag at a node, asked for by someone who knows the subject's identifier
/// (a resident, through their portal) without the node learning it: the digest is sent
/// blinded, the node evaluates it ([`SubjectKey::blind_evaluate`]), and the answer is
/// unblinded and checked against the node's public subject key (RFC 9497, verifiable mode).
pub struct TagRequest {
    state: voprf::VoprfClient<Suite>,
    digest: SubjectDigest,
}

impl TagRequest {
    /// A request for the tag of `digest`, and the blinded element to send (32 bytes).
    pub fn new(digest: SubjectDigest) -> Result<(Self, Vec<u8>), TlogError> {
        let blind = voprf::VoprfClient::<Suite>::blind(&digest, &mut rand_core_06::OsRng)
            .map_err(|e| TlogError::Proof(format!("the digest cannot be blinded: {e:?}")))?;
        Ok((
            Self {
                state: blind.state,
                digest,
            },
            blind.message.serialize().to_vec(),
        ))
    }

    /// The tag, from the node's answer, once its proof holds for `public_key`.
    pub fn finish(
        self,
        evaluation: &[u8],
        proof: &[u8],
        public_key: &[u8],
    ) -> Result<SubjectTag, TlogError> {
        use voprf::Group;
        let refused = |what: &str| TlogError::Proof(format!("the node's answer {what}"));
        let evaluation = voprf::EvaluationElement::<Suite>::deserialize(evaluation)
            .map_err(|_| refused("is not a ristretto255 point"))?;
        let proof =
            voprf::Proof::<Suite>::deserialize(proof).map_err(|_| refused("has no valid proof"))?;
        let key = voprf::Ristretto255::deserialize_elem(public_key)
            .map_err(|_| refused("names no valid public key"))?;
        let out = self
            .state
            .finalize(&self.digest, &evaluation, &proof, key)
            .map_err(|_| refused("was not made with the node's subject key"))?;
        let mut tag = [0u8; 64];
        tag.copy_from_slice(&out);
        Ok(tag)
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
            assert_ne!(key().public_key(), SubjectKey::new([8; 32]).public_key());
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
    fn a_tag_asked_blindly_is_the_nodes_and_another_keys_answer_is_refused() {
        let node = key();
        let digest = [42u8; 16];
        let (request, blinded) = TagRequest::new(digest).unwrap();
        assert_ne!(
            &blinded[..16],
            &digest[..],
            "the node is not sent the digest"
        );
        let (evaluation, proof) = node.blind_evaluate(&blinded).unwrap();
        let tag = request
            .finish(&evaluation, &proof, &node.public_key())
            .unwrap();
        assert_eq!(tag, node.tag(&digest));

        // A node that answers with another key (to show a resident other tags) is caught.
        let other = SubjectKey::new([8; 32]);
        let (request, blinded) = TagRequest::new(digest).unwrap();
        let (evaluation, proof) = other.blind_evaluate(&blinded).unwrap();
        assert!(
            request
                .finish(&evaluation, &proof, &node.public_key())
                .is_err()
        );
        // Garbage is refused with a clear error, not a panic.
        assert!(node.blind_evaluate(&[0xff; 32]).is_err());
        assert!(node.blind_evaluate(&[1; 3]).is_err());
        let (request, _) = TagRequest::new(digest).unwrap();
        assert!(request.finish(&[1; 32], &[2; 64], &[3; 32]).is_err());
    }

    #[test]
    fn an_empty_set_has_the_empty_tree_root() {
        use sha2::{Digest, Sha256};
        let root = SubjectSet::default().root().unwrap();
        assert_eq!(root.0.as_slice(), Sha256::digest(b"").as_slice());
    }
}
