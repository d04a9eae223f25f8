//! Proofs from the stored tiles: inclusion and consistency proofs and past roots, each
//! computed in two runs — one that names the tiles it needs, which come from a cache of
//! full tiles or one query, and one that computes.

use sqlx::Row;

use agora_trust::tlog::{self, Hash, TileHashes, TileKey};

use super::{BUNDLE, corrupt, i64_of};
use crate::{Store, StoreError};

/// Full tiles never change: the most used are kept in memory, shared by every clone of
/// the store (the upper levels, which every proof reads, stay).
#[derive(Default)]
pub(crate) struct TileCache(
    std::sync::Mutex<std::collections::HashMap<TileKey, std::sync::Arc<Vec<u8>>>>,
);

/// Full tiles kept, at most (8 KiB each).
const CACHED_TILES: usize = 2048;

impl std::fmt::Debug for TileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TileCache")
    }
}

impl TileCache {
    fn get(&self, key: TileKey) -> Option<std::sync::Arc<Vec<u8>>> {
        self.0.lock().expect("tile cache").get(&key).cloned()
    }

    fn put(&self, key: TileKey, data: &[u8]) {
        if data.len() != BUNDLE as usize * tlog::HASH_SIZE {
            return; // a partial tile still grows
        }
        let mut m = self.0.lock().expect("tile cache");
        if m.len() >= CACHED_TILES {
            // Level-0 tiles are the many, and the least likely to be read again.
            let victim = m.keys().min().copied();
            if let Some(v) = victim {
                m.remove(&v);
            }
        }
        m.insert(key, std::sync::Arc::new(data.to_vec()));
    }
}

/// Runs a computation over the log's hashes: a first run names the tiles it needs, which
/// are taken from the cache or read in one query, and a second run computes.
async fn with_tiles<T>(
    store: &Store,
    run: impl Fn(&TileHashes) -> Result<T, tlog::TlogError>,
) -> Result<T, StoreError> {
    let planner = TileHashes::planner();
    let _ = run(&planner);
    let mut tiles = TileHashes::default();
    let mut wanted = Vec::new();
    for key in planner.take_missing() {
        match store.tiles.get(key) {
            Some(data) => tiles.insert(key, data.to_vec()),
            None => wanted.push(key),
        }
    }
    if !wanted.is_empty() {
        for (key, data) in read_tiles(&store.pool, &wanted).await? {
            store.tiles.put(key, &data);
            tiles.insert(key, data);
        }
    }
    run(&tiles).map_err(|e| match tiles.take_missing().first() {
        Some(key) => corrupt(format!("tile {key:?} is missing or too narrow")),
        None => StoreError::TransparencyLog(e.to_string()),
    })
}

/// Reads tiles in one query.
async fn read_tiles(
    pool: &sqlx::AnyPool,
    keys: &[TileKey],
) -> Result<Vec<(TileKey, Vec<u8>)>, StoreError> {
    let mut sql = String::from("SELECT level, idx, data FROM tlog_tiles WHERE ");
    let clauses: Vec<String> = (0..keys.len())
        .map(|k| format!("(level = ${} AND idx = ${})", 2 * k + 1, 2 * k + 2))
        .collect();
    sql.push_str(&clauses.join(" OR "));
    // Only fixed clauses and $n placeholders: every value is bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (level, idx) in keys {
        q = q.bind(i32::from(*level)).bind(i64_of(*idx));
    }
    let rows = q.fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            let level =
                u8::try_from(r.try_get::<i32, _>(0)?).map_err(|_| corrupt("a tile level"))?;
            let idx =
                u64::try_from(r.try_get::<i64, _>(1)?).map_err(|_| corrupt("a tile index"))?;
            Ok(((level, idx), r.try_get::<Vec<u8>, _>(2)?))
        })
        .collect()
}

impl Store {
    /// The proof that entry `index` is in the log's first `size` entries.
    pub async fn log_inclusion_proof(
        &self,
        size: u64,
        index: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        self.check_size(size).await?;
        if index >= size {
            return Err(StoreError::TransparencyLog(format!(
                "entry {index} is not in a log of {size} entries"
            )));
        }
        with_tiles(self, |t| tlog::prove_inclusion(size, index, t)).await
    }

    /// The proof that the log's first `old` entries are a prefix of its first `new`.
    pub async fn log_consistency_proof(&self, new: u64, old: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(new).await?;
        if old > new {
            return Err(StoreError::TransparencyLog(format!(
                "a log of {old} entries cannot be a prefix of one of {new}"
            )));
        }
        with_tiles(self, |t| tlog::prove_consistency(new, old, t)).await
    }

    /// The root of the log's first `size` entries.
    pub async fn log_root(&self, size: u64) -> Result<Hash, StoreError> {
        self.check_size(size).await?;
        with_tiles(self, |t| tlog::root(size, t)).await
    }

    async fn check_size(&self, size: u64) -> Result<(), StoreError> {
        let (have, _) = self.log_head().await?;
        if size > have {
            return Err(StoreError::TransparencyLog(format!(
                "the log holds {have} entries, not {size}"
            )));
        }
        Ok(())
    }
}
