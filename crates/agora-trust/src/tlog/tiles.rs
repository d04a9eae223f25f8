//! The log's hashes as C2SP `tlog-tiles` tiles, and tile paths.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use super::{Hash, HashStore, TILE_HEIGHT, Tile, TlogError, hashes_to_store};

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
