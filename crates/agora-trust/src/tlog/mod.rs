//! Transparency logs: an append-only Merkle log whose checkpoints the node signs, so that
//! anyone holding its key can check that an entry is in the log (an inclusion proof) and
//! that a later log extends an earlier one rather than rewriting it (a consistency
//! proof).
//!
//! The hashing is RFC 6962's (`SHA-256(0x00 ∥ entry)` for leaves, `SHA-256(0x01 ∥ left ∥
//! right)` for nodes), the layout of stored hashes and tiles is C2SP `tlog-tiles`, and a
//! checkpoint is a C2SP `tlog-checkpoint` in a C2SP `signed-note` signed with Ed25519 —
//! all through the `tlog_tiles` and `signed_note` crates (the Go `sumdb/tlog` and `note`
//! semantics), none of it written here. This module holds what the node adds: a log over
//! any store of hashes ([`HashStore`]), and checkpoints signed with a member's key.

use std::sync::Mutex;

pub use tlog_tiles::{Checkpoint, Hash, Tile, record_hash};

/// What went wrong with a log, a proof or a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum TlogError {
    #[error("the log's hashes cannot be read: {0}")]
    Read(String),
    #[error("the proof does not hold: {0}")]
    Proof(String),
    #[error("the checkpoint is not valid: {0}")]
    Checkpoint(String),
    #[error("the checkpoint's signature does not verify with the key of {0}")]
    Signature(String),
}

/// Where a log's stored hashes live (by stored-hash index, as `tlog-tiles` numbers them).
pub trait HashStore: Send + Sync {
    fn read(&self, indexes: &[u64]) -> Result<Vec<Hash>, TlogError>;
}

/// Stored hashes in memory (tests, verifiers holding a whole downloaded log).
#[derive(Default)]
pub struct MemoryHashes(Mutex<Vec<Hash>>);

impl MemoryHashes {
    pub fn push(&self, hashes: &[Hash]) {
        self.0.lock().expect("lock").extend_from_slice(hashes);
    }

    pub fn len(&self) -> u64 {
        self.0.lock().expect("lock").len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl HashStore for MemoryHashes {
    fn read(&self, indexes: &[u64]) -> Result<Vec<Hash>, TlogError> {
        let all = self.0.lock().expect("lock");
        indexes
            .iter()
            .map(|&i| {
                all.get(i as usize)
                    .copied()
                    .ok_or_else(|| TlogError::Read(format!("no stored hash {i}")))
            })
            .collect()
    }
}

/// `tlog_tiles`' view of a [`HashStore`].
struct Reader<'a>(&'a dyn HashStore);

impl tlog_tiles::HashReader for Reader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        self.0
            .read(indexes)
            .map_err(|_| tlog_tiles::Error::IndexesNotInTree)
    }
}

fn read_error(e: tlog_tiles::Error) -> TlogError {
    TlogError::Read(e.to_string())
}

/// The hashes to store, starting at stored-hash index `stored_hash_index(0, n)`, when
/// entry `n` (counted from 0) with this content is appended to a log of `n` entries.
pub fn hashes_to_store(
    n: u64,
    entry: &[u8],
    store: &dyn HashStore,
) -> Result<Vec<Hash>, TlogError> {
    tlog_tiles::stored_hashes(n, entry, &Reader(store)).map_err(read_error)
}

/// The number of hashes stored for a log of `size` entries.
pub fn stored_hash_count(size: u64) -> u64 {
    tlog_tiles::stored_hash_count(size)
}

/// The root hash of the log's first `size` entries.
pub fn root(size: u64, store: &dyn HashStore) -> Result<Hash, TlogError> {
    tlog_tiles::tree_hash(size, &Reader(store)).map_err(read_error)
}

/// The proof that entry `index` is in the log of `size` entries.
pub fn prove_inclusion(
    size: u64,
    index: u64,
    store: &dyn HashStore,
) -> Result<Vec<Hash>, TlogError> {
    tlog_tiles::prove_record(size, index, &Reader(store)).map_err(read_error)
}

/// Checks that `entry` is entry `index` of the log whose first `size` entries have `root`.
pub fn check_inclusion(
    proof: &[Hash],
    size: u64,
    root: Hash,
    index: u64,
    entry: &[u8],
) -> Result<(), TlogError> {
    tlog_tiles::check_record(&proof.to_vec(), size, root, index, record_hash(entry)).map_err(|e| {
        TlogError::Proof(format!(
            "entry {index} is not in the log of {size} entries with that root ({e})"
        ))
    })
}

/// The proof that the log of `old_size` entries is a prefix of the log of `new_size`.
pub fn prove_consistency(
    new_size: u64,
    old_size: u64,
    store: &dyn HashStore,
) -> Result<Vec<Hash>, TlogError> {
    tlog_tiles::prove_tree(new_size, old_size, &Reader(store)).map_err(read_error)
}

/// Checks that the log of `old_size` entries with `old_root` is a prefix of the log of
/// `new_size` entries with `new_root`: nothing was rewritten, removed or forked.
pub fn check_consistency(
    proof: &[Hash],
    new_size: u64,
    new_root: Hash,
    old_size: u64,
    old_root: Hash,
) -> Result<(), TlogError> {
    tlog_tiles::check_tree(&proof.to_vec(), new_size, new_root, old_size, old_root).map_err(|e| {
        TlogError::Proof(format!(
            "the log of {new_size} entries does not extend the log of {old_size} entries it was seen with ({e})"
        ))
    })
}

/// The height of every tile, as C2SP `tlog-tiles` fixes it.
pub const TILE_HEIGHT: u8 = 8;

/// A hash tile's path as C2SP `tlog-tiles` names it (`tile/L/N[.p/W]`, with N in
/// x-prefixed groups of three digits). `tlog_tiles` writes the Go `sumdb` path, which
/// also names the height (`tile/8/L/N`); C2SP fixes the height at 8 and leaves it out.
pub fn c2sp_tile_path(tile: &Tile) -> Option<String> {
    if tile.height() != TILE_HEIGHT || tile.is_data() {
        return None;
    }
    tile.path()
        .strip_prefix("tile/8/")
        .map(|rest| format!("tile/{rest}"))
}

mod index;
mod notes;
mod subjects;
mod tiles;
mod verify;

pub use index::{
    INDEX_BUCKETS, IndexElement, SubjectIndex, SubjectLine, bucket_hash, bucket_of, check_bucket,
};
pub use notes::{
    check_cosignature, cosign_checkpoint, open_checkpoint, read_checkpoint, sign_checkpoint,
    sign_checkpoint_with,
};
pub use subjects::{SubjectDigest, SubjectKey, SubjectSet, SubjectTag, TagRequest, check_subject};
pub use tiles::{HASH_SIZE, TileHashes, TileKey, TilePath, parse_tile_path, tile_path};
pub use verify::{LogVerifier, split_bundle};

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use std::collections::HashMap;

    use super::*;
    use crate::keys::MemberKey;

    /// A log of `n` entries `entry 0`, `entry 1`, … in memory.
    fn log(n: u64) -> MemoryHashes {
        let store = MemoryHashes::default();
        for i in 0..n {
            let hashes = hashes_to_store(i, format!("entry {i}").as_bytes(), &store).unwrap();
            store.push(&hashes);
        }
        assert_eq!(store.len(), stored_hash_count(n));
        store
    }

    fn sha(parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    #[test]
    fn hashing_is_rfc_6962() {
        // Computed here from the RFC's definitions, independently of tlog_tiles.
        let leaf = |d: &[u8]| sha(&[&[0], d]);
        let node = |l: [u8; 32], r: [u8; 32]| sha(&[&[1], &l, &r]);
        let s = log(3);
        assert_eq!(root(1, &s).unwrap().0, leaf(b"entry 0"));
        let two = node(leaf(b"entry 0"), leaf(b"entry 1"));
        assert_eq!(root(2, &s).unwrap().0, two);
        assert_eq!(root(3, &s).unwrap().0, node(two, leaf(b"entry 2")));
        assert_eq!(root(0, &s).unwrap().0, sha(&[]));
    }

    #[test]
    fn every_entry_is_proven_in_every_log_that_holds_it_and_no_other_entry_is() {
        let s = log(40);
        for size in 1..=40 {
            let r = root(size, &s).unwrap();
            for i in 0..size {
                let proof = prove_inclusion(size, i, &s).unwrap();
                check_inclusion(&proof, size, r, i, format!("entry {i}").as_bytes()).unwrap();
                // Another entry, or this one at another place, does not pass.
                assert!(check_inclusion(&proof, size, r, i, b"entry rewritten").is_err());
                if size > 1 {
                    let other = (i + 1) % size;
                    assert!(
                        check_inclusion(&proof, size, r, other, format!("entry {i}").as_bytes())
                            .is_err()
                    );
                }
            }
        }
    }

    #[test]
    fn a_log_is_consistent_with_its_prefixes_and_not_with_a_rewritten_one() {
        let s = log(33);
        for new in 1..=33 {
            for old in 1..=new {
                let proof = prove_consistency(new, old, &s).unwrap();
                check_consistency(
                    &proof,
                    new,
                    root(new, &s).unwrap(),
                    old,
                    root(old, &s).unwrap(),
                )
                .unwrap();
            }
        }
        // A fork: the same first 10 entries, then others.
        let fork = MemoryHashes::default();
        for i in 0..20 {
            let entry = if i < 10 {
                format!("entry {i}")
            } else {
                format!("other {i}")
            };
            let hashes = hashes_to_store(i, entry.as_bytes(), &fork).unwrap();
            fork.push(&hashes);
        }
        let proof = prove_consistency(20, 15, &fork).unwrap();
        let e = check_consistency(
            &proof,
            20,
            root(20, &fork).unwrap(),
            15,
            root(15, &s).unwrap(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not extend"), "{e}");
        // Consistent where they agree.
        let proof = prove_consistency(20, 10, &fork).unwrap();
        check_consistency(
            &proof,
            20,
            root(20, &fork).unwrap(),
            10,
            root(10, &s).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn checkpoints_open_only_with_the_logs_key_and_name() {
        let key = MemberKey::generate().unwrap();
        let s = log(7);
        let r = root(7, &s).unwrap();
        let note = sign_checkpoint("agora-demo/tax-office", 7, r, &key).unwrap();
        let text = String::from_utf8(note.clone()).unwrap();
        assert!(text.starts_with("agora-demo/tax-office\n7\n"), "{text}");
        assert!(text.contains("\n\n— agora-demo/tax-office "), "{text}");
        let c = open_checkpoint(&note, "agora-demo/tax-office", &key.public()).unwrap();
        assert_eq!((c.size(), *c.hash()), (7, r));
        // Another key, another log's name, an altered size: refused.
        let other = MemberKey::generate().unwrap();
        assert!(matches!(
            open_checkpoint(&note, "agora-demo/tax-office", &other.public()),
            Err(TlogError::Signature(_))
        ));
        assert!(open_checkpoint(&note, "agora-demo/city-council", &key.public()).is_err());
        let altered = text.replacen("\n7\n", "\n6\n", 1);
        assert!(
            open_checkpoint(altered.as_bytes(), "agora-demo/tax-office", &key.public()).is_err()
        );
        assert!(open_checkpoint(b"garbage", "agora-demo/tax-office", &key.public()).is_err());
    }

    /// The proofs, checked by a verifier written from RFC 9162 alone
    /// (`tests/tlog/verify.py`: Python's hashlib, none of this code).
    #[test]
    fn an_independent_verifier_accepts_the_proofs_and_refuses_altered_ones() {
        let hex = |h: &Hash| hex::encode(h.0);
        let s = log(40);
        let mut cases = Vec::new();
        for size in [1u64, 2, 3, 5, 7, 8, 9, 16, 17, 31, 33, 40] {
            let r = root(size, &s).unwrap();
            for i in 0..size {
                let proof: Vec<String> = prove_inclusion(size, i, &s)
                    .unwrap()
                    .iter()
                    .map(hex)
                    .collect();
                cases.push(
                    serde_json::json!({"kind": "inclusion", "size": size, "index": i,
                    "entry": format!("entry {i}"), "proof": proof, "root": hex(&r)}),
                );
                cases.push(
                    serde_json::json!({"kind": "inclusion", "size": size, "index": i,
                    "entry": "entry rewritten", "proof": proof, "root": hex(&r), "bad": true}),
                );
            }
            for old in 1..=size {
                let proof: Vec<String> = prove_consistency(size, old, &s)
                    .unwrap()
                    .iter()
                    .map(hex)
                    .collect();
                let old_root = root(old, &s).unwrap();
                cases.push(
                    serde_json::json!({"kind": "consistency", "old_size": old, "new_size": size,
                    "proof": proof, "old_root": hex(&old_root), "new_root": hex(&r)}),
                );
                if old < size {
                    // The same proof against a root the old log never had.
                    cases.push(serde_json::json!({"kind": "consistency", "old_size": old, "new_size": size,
                        "proof": proof, "old_root": hex(&Hash([7; 32])), "new_root": hex(&r), "bad": true}));
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cases.json");
        std::fs::write(&file, serde_json::to_vec(&cases).unwrap()).unwrap();
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tlog/verify.py");
        let python = std::env::var("AGORA_PYTHON").unwrap_or_else(|_| "python3".into());
        let out = std::process::Command::new(&python)
            .arg(&script)
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.trim(), format!("{} cases ok", cases.len()));
    }

    #[test]
    fn tiles_are_named_as_c2sp_tlog_tiles_names_them() {
        let t = Tile::new(TILE_HEIGHT, 0, 1, 256, false);
        assert_eq!(c2sp_tile_path(&t).unwrap(), "tile/0/001");
        let partial = Tile::new(TILE_HEIGHT, 2, 1234067, 3, false);
        assert_eq!(
            c2sp_tile_path(&partial).unwrap(),
            "tile/2/x001/x234/067.p/3"
        );
        assert_eq!(c2sp_tile_path(&Tile::new(4, 0, 1, 16, false)), None);
    }

    #[test]
    fn tiles_with_only_the_right_edge_in_memory_build_the_same_log() {
        let reference = log(70_000);
        let mut db: HashMap<TileKey, Vec<u8>> = HashMap::new();
        let mut edge = TileHashes::default();
        let mut n = 0;
        // Appends in batches of varying size, as the store's writer does.
        for batch in [1u64, 2, 3, 250, 256, 255, 511, 1, 4096, 65_536 - 5371, 4460] {
            for _ in 0..batch {
                edge.append(n, format!("entry {n}").as_bytes()).unwrap();
                n += 1;
            }
            db.extend(edge.take_changed());
            assert_eq!(
                root(n, &edge).unwrap(),
                root(n, &reference).unwrap(),
                "size {n}"
            );
            edge.keep_right_edge(n);
            for (key, width) in TileHashes::right_edge(n) {
                assert_eq!(edge.get(key).unwrap().len(), width * HASH_SIZE);
            }
        }
        assert_eq!(n, 70_000);
        // From the stored tiles, fetched on demand, proofs are the reference's.
        let mut read = TileHashes::default();
        let proof = loop {
            match prove_inclusion(n, 1234, &read) {
                Ok(p) => break p,
                Err(_) => {
                    for k in read.take_missing() {
                        read.insert(k, db[&k].clone());
                    }
                }
            }
        };
        assert_eq!(proof, prove_inclusion(n, 1234, &reference).unwrap());
    }

    #[test]
    fn a_witness_cosigns_a_checkpoint_in_the_c2sp_format_and_a_forgery_fails() {
        let node = MemberKey::generate().unwrap();
        let witness = MemberKey::generate().unwrap();
        let s = log(5);
        let note =
            sign_checkpoint("agora/demo/tax-office", 5, root(5, &s).unwrap(), &node).unwrap();
        let cosigned =
            cosign_checkpoint(&note, "agora/demo/authority", &witness, 1_780_000_000).unwrap();
        let text = String::from_utf8(cosigned.clone()).unwrap();
        assert_eq!(text.matches("\n— ").count(), 2, "{text}");
        assert_eq!(
            check_cosignature(&cosigned, "agora/demo/authority", &witness.public()).unwrap(),
            1_780_000_000
        );
        // The node's own signature still holds.
        open_checkpoint(&cosigned, "agora/demo/tax-office", &node.public()).unwrap();
        // Another key, or no cosignature, does not pass.
        let other = MemberKey::generate().unwrap();
        assert!(check_cosignature(&cosigned, "agora/demo/authority", &other.public()).is_err());
        assert!(check_cosignature(&note, "agora/demo/authority", &witness.public()).is_err());
        // A cosignature moved onto another checkpoint does not pass.
        let sig_line = text.lines().last().unwrap().to_owned();
        let other_note =
            sign_checkpoint("agora/demo/tax-office", 4, root(4, &s).unwrap(), &node).unwrap();
        let forged = format!("{}{sig_line}\n", String::from_utf8(other_note).unwrap());
        assert!(
            check_cosignature(forged.as_bytes(), "agora/demo/authority", &witness.public())
                .is_err()
        );
    }

    #[test]
    fn tile_paths_are_parsed_as_c2sp_writes_them_and_others_refused() {
        assert_eq!(
            parse_tile_path("0/x001/234.p/5").unwrap(),
            TilePath::Hashes {
                level: 0,
                index: 1234,
                width: 5
            }
        );
        assert_eq!(
            parse_tile_path("entries/000").unwrap(),
            TilePath::Entries {
                index: 0,
                width: 256
            }
        );
        for (level, index, width) in [(Some(0), 0, 256), (Some(2), 1_234_067, 17), (None, 999, 1)] {
            let p = tile_path(level, index, width);
            let parsed = parse_tile_path(&p).unwrap();
            let back = match parsed {
                TilePath::Hashes {
                    level,
                    index,
                    width,
                } => tile_path(Some(level), index, width),
                TilePath::Entries { index, width } => tile_path(None, index, width),
            };
            assert_eq!(back, p);
        }
        // The same paths as tlog_tiles writes them (less the height).
        let t = Tile::new(8, 1, 1_234_067, 17, false);
        assert_eq!(
            format!("tile/{}", tile_path(Some(1), 1_234_067, 17)),
            c2sp_tile_path(&t).unwrap()
        );
        for bad in [
            "",
            "0",
            "0/1",
            "0/0001",
            "0/x1/000",
            "0/001/002",
            "9/000",
            "00/000",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/05",
            "entries/abc",
            "0/x001/x002/x003/x004/x005/x006/x007/000",
            "../000",
        ] {
            assert!(parse_tile_path(bad).is_err(), "{bad:?}");
        }
    }
}
