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

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use signed_note::{Note, Signer, Verifier, VerifierList};
pub use tlog_tiles::{Checkpoint, Hash, Tile, record_hash};

use crate::keys::MemberKey;

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

/// A tile's place: its level (0 holds entry hashes, 1 the hashes of 256-entry subtrees,
/// …) and its index in that level.
pub type TileKey = (u8, u64);

/// Stored hashes read from C2SP tiles held in memory. A hash whose tile is not held (or
/// is held narrower than needed) is noted as missing, so that a caller whose tiles live
/// in a database can fetch what is missing and try again ([`TileHashes::take_missing`]).
///
/// The log's writer keeps the right edge of each level here ([`TileHashes::right_edge`]),
/// which is all that appending needs; [`TileHashes::append`] adds an entry's hashes to the
/// tiles and notes which tiles changed.
#[derive(Default, Clone)]
pub struct TileHashes {
    tiles: HashMap<TileKey, Vec<u8>>,
    missing: Arc<Mutex<BTreeSet<TileKey>>>,
    changed: BTreeSet<TileKey>,
    /// Planning: a hash whose tile is not held reads as zeros (and is noted missing), so
    /// that one run of a proof names every tile it needs.
    planning: bool,
}

impl TileHashes {
    /// Hashes that name the tiles a computation needs instead of failing at the first
    /// missing one: run the computation on it, fetch [`TileHashes::take_missing`], and
    /// run it again on a [`TileHashes`] holding them.
    pub fn planner() -> Self {
        Self {
            planning: true,
            ..Self::default()
        }
    }

    pub fn insert(&mut self, key: TileKey, data: Vec<u8>) {
        self.tiles.insert(key, data);
    }

    pub fn get(&self, key: TileKey) -> Option<&[u8]> {
        self.tiles.get(&key).map(Vec::as_slice)
    }

    /// The tiles read but not held since the last call.
    pub fn take_missing(&self) -> Vec<TileKey> {
        std::mem::take(&mut *self.missing.lock().expect("lock"))
            .into_iter()
            .collect()
    }

    /// The tiles changed by [`TileHashes::append`] since the last call, with their data.
    pub fn take_changed(&mut self) -> Vec<(TileKey, Vec<u8>)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|k| self.tiles.get(&k).map(|d| (k, d.clone())))
            .collect()
    }

    /// The tiles at the right edge of a log of `size` entries, with the number of hashes
    /// each holds: every hash that appending or the root needs is in one of them.
    pub fn right_edge(size: u64) -> Vec<(TileKey, usize)> {
        let mut edge = Vec::new();
        let mut level = 0u8;
        while level < 8 && (size >> (8 * u32::from(level))) > 0 {
            let at_level = size >> (8 * u32::from(level));
            let width = (at_level & 0xff) as usize;
            if width > 0 {
                edge.push(((level, at_level >> 8), width));
            }
            level += 1;
        }
        edge
    }

    /// Forgets every tile but the right edge of a log of `size` entries.
    pub fn keep_right_edge(&mut self, size: u64) {
        let keep: BTreeSet<TileKey> = Self::right_edge(size).into_iter().map(|(k, _)| k).collect();
        self.tiles.retain(|k, _| keep.contains(k));
        self.changed.clear();
    }

    /// Appends `entry` as entry `n` of the log (which holds `n` entries).
    pub fn append(&mut self, n: u64, entry: &[u8]) -> Result<(), TlogError> {
        let hashes = hashes_to_store(n, entry, self)?;
        let first = tlog_tiles::stored_hash_index(0, n);
        for (i, hash) in hashes.iter().enumerate() {
            let (level, at) = tlog_tiles::split_stored_hash_index(first + i as u64);
            if level % TILE_HEIGHT != 0 {
                continue;
            }
            let key = (level / TILE_HEIGHT, at >> TILE_HEIGHT);
            let tile = self.tiles.entry(key).or_default();
            if tile.len() != (at & 0xff) as usize * HASH_SIZE {
                return Err(TlogError::Read(format!(
                    "tile {key:?} holds {} hashes where hash {at} goes",
                    tile.len() / HASH_SIZE
                )));
            }
            tile.extend_from_slice(&hash.0);
            self.changed.insert(key);
        }
        Ok(())
    }
}

impl HashStore for TileHashes {
    fn read(&self, indexes: &[u64]) -> Result<Vec<Hash>, TlogError> {
        let mut out = Vec::with_capacity(indexes.len());
        let mut missing = Vec::new();
        for &x in indexes {
            let tile = Tile::from_index(TILE_HEIGHT, x);
            let key = (tile.level(), tile.level_index());
            match self.tiles.get(&key) {
                Some(data) if data.len() >= tile.width() as usize * HASH_SIZE => {
                    // A wider tile holds the same hashes: stored hashes never change.
                    let mut exact = Tile::new(
                        TILE_HEIGHT,
                        key.0,
                        key.1,
                        (data.len() / HASH_SIZE) as u32,
                        false,
                    );
                    if exact.width() == 0 {
                        exact = tile;
                    }
                    out.push(
                        exact
                            .hash_at_index(data, x)
                            .map_err(|e| TlogError::Read(format!("tile {key:?}: {e}")))?,
                    );
                }
                _ if self.planning => {
                    missing.push(key);
                    out.push(Hash([0; HASH_SIZE]));
                }
                _ => missing.push(key),
            }
        }
        if missing.is_empty() || self.planning {
            self.missing.lock().expect("lock").extend(missing);
            return Ok(out);
        }
        let mut m = self.missing.lock().expect("lock");
        m.extend(missing.iter().copied());
        Err(TlogError::Read(format!("tiles not held: {missing:?}")))
    }
}

/// The size of a hash, in bytes.
pub const HASH_SIZE: usize = tlog_tiles::HASH_SIZE;

/// What a C2SP `tlog-tiles` path (after `tile/`) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TilePath {
    /// A tile of hashes: `L/N[.p/W]`.
    Hashes { level: u8, index: u64, width: u32 },
    /// An entry bundle: `entries/N[.p/W]`.
    Entries { index: u64, width: u32 },
}

/// Parses the part of a tile path after `tile/` (`0/x001/234.p/5`, `entries/000`). The
/// width of a full tile is 256.
pub fn parse_tile_path(rest: &str) -> Result<TilePath, TlogError> {
    let bad = |why: &str| TlogError::Read(format!("{rest:?} is not a tile path: {why}"));
    let (head, tail) = rest.split_once('/').ok_or_else(|| bad("no index"))?;
    let (digits, width) = match tail.split_once(".p/") {
        Some((d, w)) => {
            let n: u32 = w
                .parse()
                .ok()
                .filter(|n| (1..256).contains(n) && !w.starts_with('0'))
                .ok_or_else(|| bad("a partial width is 1 to 255"))?;
            let w = n;
            (d, w)
        }
        None => (tail, 256),
    };
    let groups: Vec<&str> = digits.split('/').collect();
    let mut index: u64 = 0;
    for (i, g) in groups.iter().enumerate() {
        let last = i + 1 == groups.len();
        let d = if last {
            *g
        } else {
            g.strip_prefix('x')
                .ok_or_else(|| bad("index groups but the last start with x"))?
        };
        if d.len() != 3 || !d.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("an index group is three digits"));
        }
        index = index
            .checked_mul(1000)
            .and_then(|n| n.checked_add(d.parse::<u64>().expect("three digits")))
            .ok_or_else(|| bad("the index is too large"))?;
    }
    if groups.len() > 7 {
        return Err(bad("the index is too large"));
    }
    if head == "entries" {
        return Ok(TilePath::Entries { index, width });
    }
    let level: u8 = head
        .parse()
        .ok()
        .filter(|l: &u8| *l < 8 && (head == "0" || !head.starts_with('0')))
        .ok_or_else(|| bad("the level is 0 to 7 or `entries`"))?;
    Ok(TilePath::Hashes {
        level,
        index,
        width,
    })
}

/// The C2SP path (after `tile/`) of a tile or bundle at `index` of `width` (256: full).
pub fn tile_path(level: Option<u8>, index: u64, width: u32) -> String {
    let mut groups = vec![format!("{:03}", index % 1000)];
    let mut n = index / 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    let head = level.map_or_else(|| "entries".to_owned(), |l| l.to_string());
    let partial = if width < 256 {
        format!(".p/{width}")
    } else {
        String::new()
    };
    format!("{head}/{}{partial}", groups.join("/"))
}

/// Signs checkpoints as a signed note, with a member's Ed25519 key under the log's name
/// (its origin, e.g. `agora-demo/tax-office`).
struct KeySigner<'a> {
    name: &'a str,
    key: &'a MemberKey,
}

/// The `signed-note` key id of an Ed25519 key under `name`.
fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let encoded = [&[0x01_u8][..], public].concat();
    signed_note::key_id(name, &encoded)
}

impl Signer for KeySigner<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        key_id(self.name, &self.key.public())
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign(msg).to_vec())
    }
}

/// Verifies a log's checkpoints with its member's public key.
struct KeyVerifier {
    name: String,
    public: [u8; 32],
}

impl Verifier for KeyVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        key_id(&self.name, &self.public)
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        crate::keys::verify_signature(&self.public, msg, sig).is_ok()
    }
}

/// The signed note of a checkpoint of the log `origin`: `size` entries with `root`.
pub fn sign_checkpoint(
    origin: &str,
    size: u64,
    root: Hash,
    key: &MemberKey,
) -> Result<Vec<u8>, TlogError> {
    let checkpoint = Checkpoint::new(origin, size, root, "")
        .map_err(|_| TlogError::Checkpoint(format!("{origin:?} is not a usable log name")))?;
    let mut note =
        Note::new(&checkpoint.to_bytes(), &[]).map_err(|e| TlogError::Checkpoint(e.to_string()))?;
    note.add_sigs(&[&KeySigner { name: origin, key }])
        .map_err(|e| TlogError::Checkpoint(e.to_string()))?;
    Ok(note.to_bytes())
}

/// Opens a signed checkpoint of the log `origin`: its signature by `public` verifies, and
/// its text is a checkpoint of that log.
pub fn open_checkpoint(
    note: &[u8],
    origin: &str,
    public: &[u8; 32],
) -> Result<Checkpoint, TlogError> {
    let note = Note::from_bytes(note).map_err(|e| TlogError::Checkpoint(e.to_string()))?;
    let verifiers = VerifierList::new(vec![Box::new(KeyVerifier {
        name: origin.to_owned(),
        public: *public,
    })]);
    note.verify(&verifiers)
        .map_err(|_| TlogError::Signature(origin.to_owned()))?;
    let checkpoint = Checkpoint::from_bytes(note.text())
        .map_err(|_| TlogError::Checkpoint("the signed text is not a checkpoint".into()))?;
    if checkpoint.origin() != origin {
        return Err(TlogError::Checkpoint(format!(
            "it is a checkpoint of {:?}, not of {origin:?}",
            checkpoint.origin()
        )));
    }
    Ok(checkpoint)
}

/// A witness's cosignature on a checkpoint, in the C2SP `tlog-cosignature` format
/// (version 1): the witness signs `cosignature/v1\ntime T\n` followed by the checkpoint,
/// and the note signature holds T (8 bytes, big-endian) and the Ed25519 signature.
struct CosignatureSigner<'a> {
    name: &'a str,
    key: &'a MemberKey,
    time: u64,
}

fn cosignature_key_id(name: &str, public: &[u8; 32]) -> u32 {
    let encoded = [&[0x04_u8][..], public].concat();
    signed_note::key_id(name, &encoded)
}

fn cosigned_message(time: u64, text: &[u8]) -> Vec<u8> {
    let mut msg = format!("cosignature/v1\ntime {time}\n").into_bytes();
    msg.extend_from_slice(text);
    msg
}

impl Signer for CosignatureSigner<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        cosignature_key_id(self.name, &self.key.public())
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        let mut out = self.time.to_be_bytes().to_vec();
        out.extend_from_slice(&self.key.sign(&cosigned_message(self.time, msg)));
        Ok(out)
    }
}

struct CosignatureVerifier {
    name: String,
    public: [u8; 32],
    /// The time the verified cosignature carries.
    time: Arc<Mutex<Option<u64>>>,
}

impl Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        cosignature_key_id(&self.name, &self.public)
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        if sig.len() != 8 + 64 {
            return false;
        }
        let time = u64::from_be_bytes(sig[..8].try_into().expect("8 bytes"));
        let ok =
            crate::keys::verify_signature(&self.public, &cosigned_message(time, msg), &sig[8..])
                .is_ok();
        if ok {
            *self.time.lock().expect("lock") = Some(time);
        }
        ok
    }
}

/// Adds a witness's cosignature (named `witness`, made at `time` in seconds since the
/// epoch) to a signed checkpoint.
pub fn cosign_checkpoint(
    note: &[u8],
    witness: &str,
    key: &MemberKey,
    time: u64,
) -> Result<Vec<u8>, TlogError> {
    let mut note = Note::from_bytes(note).map_err(|e| TlogError::Checkpoint(e.to_string()))?;
    note.add_sigs(&[&CosignatureSigner {
        name: witness,
        key,
        time,
    }])
    .map_err(|e| TlogError::Checkpoint(e.to_string()))?;
    Ok(note.to_bytes())
}

/// Checks that a checkpoint carries a valid cosignature of `witness` (key `public`);
/// returns the time it was made.
pub fn check_cosignature(note: &[u8], witness: &str, public: &[u8; 32]) -> Result<u64, TlogError> {
    let note = Note::from_bytes(note).map_err(|e| TlogError::Checkpoint(e.to_string()))?;
    let time = Arc::new(Mutex::new(None));
    let verifier = CosignatureVerifier {
        name: witness.to_owned(),
        public: *public,
        time: time.clone(),
    };
    let list = VerifierList::new(vec![Box::new(verifier)]);
    note.verify(&list)
        .map_err(|_| TlogError::Signature(format!("the witness {witness}")))?;
    let time = *time.lock().expect("lock");
    time.ok_or_else(|| TlogError::Signature(format!("the witness {witness}")))
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

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
