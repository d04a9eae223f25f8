//! Checking a whole log from what it publishes: its entry bundles, its tiles and a
//! checkpoint. The entries are hashed again into a tree, from scratch; the tree's root
//! must be the checkpoint's, and every tile the log serves must be the tile computed.
//! Whoever holds the checkpoint's keys can so check that the log holds exactly these
//! entries, in this order — nothing added, removed or changed since it was signed.

use super::{Hash, TileHashes, TileKey, TlogError, root};

/// The entries of an entry bundle (C2SP: each a 16-bit big-endian length and its bytes).
pub fn split_bundle(data: &[u8]) -> Result<Vec<&[u8]>, TlogError> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err(TlogError::Read("an entry's length is cut off".into()));
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        if rest.len() < 2 + len {
            return Err(TlogError::Read(format!(
                "an entry of {len} bytes is cut off after {}",
                rest.len() - 2
            )));
        }
        out.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    Ok(out)
}

/// Rebuilds a log of `size` entries from its bundles, in order.
pub struct LogVerifier {
    size: u64,
    n: u64,
    tiles: TileHashes,
}

impl LogVerifier {
    pub fn new(size: u64) -> Self {
        Self {
            size,
            n: 0,
            tiles: TileHashes::default(),
        }
    }

    /// The entries read so far.
    pub fn entries(&self) -> u64 {
        self.n
    }

    /// The width the next bundle must have (256, or less for the last).
    pub fn next_bundle(&self) -> Option<(u64, u32)> {
        (self.n < self.size).then(|| (self.n / 256, (self.size - self.n).min(256) as u32))
    }

    /// Adds the next bundle; returns its entries.
    pub fn add_bundle<'a>(&mut self, data: &'a [u8]) -> Result<Vec<&'a [u8]>, TlogError> {
        let Some((index, width)) = self.next_bundle() else {
            return Err(TlogError::Read(format!(
                "the log holds only {} entries",
                self.size
            )));
        };
        let entries = split_bundle(data)
            .map_err(|e| TlogError::Read(format!("entry bundle {index}: {e}")))?;
        if entries.len() != width as usize {
            return Err(TlogError::Read(format!(
                "entry bundle {index} holds {} entries; a log of {} entries has {width} there",
                entries.len(),
                self.size
            )));
        }
        for e in &entries {
            self.tiles.append(self.n, e)?;
            self.n += 1;
        }
        Ok(entries)
    }

    /// The tiles changed since the last call, as computed, keeping only what appending
    /// needs.
    pub fn take_tiles(&mut self) -> Vec<(TileKey, Vec<u8>)> {
        let changed = self.tiles.take_changed();
        self.tiles.keep_right_edge(self.n);
        changed
    }

    /// The root of the rebuilt log, once every entry is in.
    pub fn root(&self) -> Result<Hash, TlogError> {
        if self.n != self.size {
            return Err(TlogError::Read(format!(
                "only {} of the log's {} entries were read",
                self.n, self.size
            )));
        }
        root(self.n, &self.tiles)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MemoryHashes, hashes_to_store};
    use super::*;

    fn bundle(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in entries {
            out.extend_from_slice(&(e.len() as u16).to_be_bytes());
            out.extend_from_slice(e);
        }
        out
    }

    #[test]
    fn a_log_rebuilt_from_its_bundles_has_the_root_of_the_log() {
        let entries: Vec<Vec<u8>> = (0..600)
            .map(|i| format!("entry {i}").into_bytes())
            .collect();
        let m = MemoryHashes::default();
        for (i, e) in entries.iter().enumerate() {
            m.push(&hashes_to_store(i as u64, e, &m).unwrap());
        }
        let mut v = LogVerifier::new(600);
        let mut tiles = 0;
        while let Some((index, width)) = v.next_bundle() {
            let from = index as usize * 256;
            let data = bundle(&entries[from..from + width as usize]);
            assert_eq!(v.add_bundle(&data).unwrap().len(), width as usize);
            tiles += v.take_tiles().len();
        }
        assert!(tiles >= 3);
        assert_eq!(v.root().unwrap(), root(600, &m).unwrap());
        // A bundle short of an entry, or cut in the middle, is refused.
        let mut v = LogVerifier::new(600);
        assert!(v.add_bundle(&bundle(&entries[..255])).is_err());
        let data = bundle(&entries[..256]);
        assert!(
            LogVerifier::new(600)
                .add_bundle(&data[..data.len() - 1])
                .is_err()
        );
    }
}
