//! The transparency log's storage: entries one per row (`tlog_entries`, with the fields an
//! auditor filters on), the Merkle tree's hashes as C2SP tiles (`tlog_tiles`), its size
//! and root (`tlog_state`) and the node's signed checkpoints (`tlog_checkpoints`).
//!
//! Entries are appended by the exchange log's writer (`journal.rs`): whatever queued while
//! the previous group was written goes in one transaction — the entries' rows, the tiles
//! they changed and the new size and root — so an append is durable when its future
//! resolves, and a group is all there or not at all. The writer keeps the right edge of
//! each tile level in memory ([`TileHashes`]); the transaction starts by taking the write
//! lock on `tlog_state` and checking the size it holds, so that another process appending
//! to the same store (the command line beside a running server) is noticed and the edge
//! read again from the tiles.
//!
//! Proofs are computed from the stored tiles, fetched as the proof needs them.

use sqlx::{AnyConnection, Connection, Row};

use agora_model::AuditEntry;
use agora_trust::tlog::{self, Hash, TileHashes, TileKey};

use crate::journal::Reply;
use crate::{Store, StoreError, parse_ts, ts};

/// An entry on its way into the log: encoded by the caller, so that an entry too large is
/// refused before anything is queued.
pub(crate) struct Pending {
    entry: AuditEntry,
    data: Vec<u8>,
}

/// Entries queued for the log, answered with the index of the first.
pub(crate) struct LogOp {
    pub(crate) entries: Vec<Pending>,
    pub(crate) reply: Reply<u64>,
}

/// What the writer keeps between groups: the size it last wrote and the right edge.
#[derive(Default)]
pub(crate) struct Edge {
    size: u64,
    tiles: TileHashes,
    loaded: bool,
}

/// An entry as the log holds it, with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEntry {
    pub index: u64,
    pub entry: AuditEntry,
}

/// What an auditor asks of the log's entries; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    pub kind: Option<String>,
    pub peer: Option<String>,
    /// Matches a product named among the entry's products.
    pub product: Option<String>,
    pub agreement: Option<String>,
    pub purpose: Option<String>,
    /// Matches outcomes that start with it (`refused` matches `refused: …`).
    pub outcome: Option<String>,
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Entries with an index below it (for paging backwards).
    pub before: Option<u64>,
    pub limit: u32,
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub note: String,
    pub made_at: chrono::DateTime<chrono::Utc>,
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "the transparency log".into(),
        message: what.to_string(),
    }
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Writes a group of appends in one transaction and answers each; true when the
/// connection broke on the way.
pub(crate) async fn write_group(
    conn: &mut AnyConnection,
    edge: &mut Edge,
    ops: Vec<LogOp>,
) -> bool {
    match append(conn, edge, &ops).await {
        Ok(first) => {
            let mut at = first;
            for op in ops {
                let n = op.entries.len() as u64;
                let _ = op.reply.send(Ok(at));
                at += n;
            }
            false
        }
        Err(e) => {
            // Whatever the transaction did is rolled back: read the edge again next time.
            edge.loaded = false;
            let b = matches!(&e, StoreError::Query(q) if crate::journal::broken(q));
            let text = e.to_string();
            for op in ops {
                let _ = op
                    .reply
                    .send(Err(StoreError::TransparencyLog(text.clone())));
            }
            b
        }
    }
}

async fn append(
    conn: &mut AnyConnection,
    edge: &mut Edge,
    ops: &[LogOp],
) -> Result<u64, StoreError> {
    let mut tx = conn.begin().await?;
    // Taking the write lock first: no other writer can append until this commits.
    let size: i64 = sqlx::query("UPDATE tlog_state SET size = size WHERE id = 1 RETURNING size")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    let size = u64::try_from(size).map_err(|_| corrupt("a negative size"))?;
    if !edge.loaded || edge.size != size {
        *edge = load_edge(&mut tx, size).await?;
    }
    let first = size;
    let mut work = edge.tiles.clone();
    let mut n = size;
    for p in ops.iter().flat_map(|op| &op.entries) {
        work.append(n, &p.data).map_err(corrupt)?;
        n += 1;
    }
    let root = tlog::root(n, &work).map_err(corrupt)?;
    let items: Vec<&Pending> = ops.iter().flat_map(|op| &op.entries).collect();
    insert_entries(&mut tx, first, &items).await?;
    for ((level, idx), data) in work.take_changed() {
        sqlx::query(
            "INSERT INTO tlog_tiles (level, idx, data) VALUES ($1, $2, $3) \
             ON CONFLICT (level, idx) DO UPDATE SET data = excluded.data",
        )
        .bind(i32::from(level))
        .bind(i64_of(idx))
        .bind(data)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE tlog_state SET size = $1, root = $2 WHERE id = 1")
        .bind(i64_of(n))
        .bind(hex::encode(root.0))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    work.keep_right_edge(n);
    *edge = Edge {
        size: n,
        tiles: work,
        loaded: true,
    };
    Ok(first)
}

async fn load_edge(conn: &mut AnyConnection, size: u64) -> Result<Edge, StoreError> {
    let mut tiles = TileHashes::default();
    for (key, width) in TileHashes::right_edge(size) {
        let data = read_tile(conn, key)
            .await?
            .ok_or_else(|| corrupt(format!("tile {key:?} of the right edge is missing")))?;
        if data.len() < width * tlog::HASH_SIZE {
            return Err(corrupt(format!(
                "tile {key:?} holds {} hashes; a log of {size} entries needs {width}",
                data.len() / tlog::HASH_SIZE
            )));
        }
        tiles.insert(key, data[..width * tlog::HASH_SIZE].to_vec());
    }
    Ok(Edge {
        size,
        tiles,
        loaded: true,
    })
}

async fn read_tile(conn: &mut AnyConnection, key: TileKey) -> Result<Option<Vec<u8>>, StoreError> {
    let row = sqlx::query("SELECT data FROM tlog_tiles WHERE level = $1 AND idx = $2")
        .bind(i32::from(key.0))
        .bind(i64_of(key.1))
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.try_get::<Vec<u8>, _>(0)).transpose()?)
}

/// Rows per insert statement, at most (11 parameters each).
const ENTRY_ROWS: usize = 64;
const ENTRY_WIDTH: usize = 11;

fn insert_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..=ENTRY_ROWS.trailing_zeros())
            .map(|i| {
                format!(
                    "INSERT INTO tlog_entries (idx, kind, at, reference, actor, peer, product, \
                     agreement, purpose, outcome, data) VALUES {}",
                    crate::journal::values(1 << i, ENTRY_WIDTH)
                )
            })
            .collect()
    });
    &all[rows.trailing_zeros() as usize]
}

async fn insert_entries(
    conn: &mut AnyConnection,
    first: u64,
    items: &[&Pending],
) -> Result<(), StoreError> {
    let mut at = first;
    let mut rest = items;
    while !rest.is_empty() {
        let n = rest.len().min(ENTRY_ROWS);
        let size = 1 << (usize::BITS - 1 - n.leading_zeros());
        let (run, tail) = rest.split_at(size);
        let mut q = sqlx::query(insert_sql(size));
        for p in run {
            let e = &p.entry;
            q = q
                .bind(i64_of(at))
                .bind(e.kind.as_str())
                .bind(ts(e.at))
                .bind(&e.reference)
                .bind(&e.actor)
                .bind(e.peer.as_deref())
                .bind(e.product.as_deref())
                .bind(e.agreement.as_deref())
                .bind(e.purpose.as_deref())
                .bind(&e.outcome)
                .bind(&p.data);
            at += 1;
        }
        q.execute(&mut *conn).await?;
        rest = tail;
    }
    Ok(())
}

/// The hashes a proof needs, read from the stored tiles as the proof asks for them.
async fn with_tiles<T>(
    store: &Store,
    mut attempt: impl FnMut(&TileHashes) -> Result<T, tlog::TlogError>,
) -> Result<T, StoreError> {
    let mut tiles = TileHashes::default();
    // Each round fetches every tile the attempt found missing; a proof over a tree of
    // 2^64 entries needs at most 8 levels of them.
    for _ in 0..16 {
        match attempt(&tiles) {
            Ok(t) => return Ok(t),
            Err(e) => {
                let missing = tiles.take_missing();
                if missing.is_empty() {
                    return Err(StoreError::TransparencyLog(e.to_string()));
                }
                let mut conn = store.pool.acquire().await?;
                for key in missing {
                    let data = read_tile(&mut conn, key)
                        .await?
                        .ok_or_else(|| corrupt(format!("tile {key:?} is missing")))?;
                    tiles.insert(key, data);
                }
            }
        }
    }
    Err(corrupt("a proof needed more tiles than a log can have"))
}

impl Store {
    /// Appends entries to the transparency log; resolves with the index of the first once
    /// they are committed.
    pub async fn log_append(&self, entries: Vec<AuditEntry>) -> Result<u64, StoreError> {
        if entries.is_empty() {
            return Ok(self.log_head().await?.0);
        }
        let entries = entries
            .into_iter()
            .map(|entry| {
                let data = entry
                    .encode()
                    .map_err(|e| StoreError::TransparencyLog(e.to_string()))?;
                Ok(Pending { entry, data })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.journal.log(entries).await
    }

    /// The log's size and root hash, as last committed.
    pub async fn log_head(&self) -> Result<(u64, Hash), StoreError> {
        let row = sqlx::query("SELECT size, root FROM tlog_state WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let size =
            u64::try_from(row.try_get::<i64, _>(0)?).map_err(|_| corrupt("a negative size"))?;
        let root = parse_hash(&row.try_get::<String, _>(1)?)?;
        Ok((size, root))
    }

    /// A stored tile's hashes (as wide as the log has grown it).
    pub async fn log_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        read_tile(&mut conn, (level, index)).await
    }

    /// The entries with indexes `from..to`, as bytes.
    pub async fn log_entry_data(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, data FROM tlog_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        )
        .bind(i64_of(from))
        .bind(i64_of(to))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, r) in rows.iter().enumerate() {
            let idx: i64 = r.try_get(0)?;
            if idx != i64_of(from + k as u64) {
                return Err(corrupt(format!("entry {} is missing", from + k as u64)));
            }
            out.push(r.try_get::<Vec<u8>, _>(1)?);
        }
        Ok(out)
    }

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

    /// Keeps a checkpoint the node signed (a checkpoint of the same size is kept once).
    pub async fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tlog_checkpoints (size, note, made_at) VALUES ($1, $2, $3) \
             ON CONFLICT (size) DO NOTHING",
        )
        .bind(i64_of(size))
        .bind(note)
        .bind(crate::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The latest checkpoint, or the first that covers at least `size` entries.
    pub async fn checkpoint(
        &self,
        covering: Option<u64>,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row =
            match covering {
                None => sqlx::query(
                    "SELECT size, note, made_at FROM tlog_checkpoints ORDER BY size DESC LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await?,
                Some(n) => {
                    sqlx::query(
                        "SELECT size, note, made_at FROM tlog_checkpoints WHERE size >= $1 \
                     ORDER BY size LIMIT 1",
                    )
                    .bind(i64_of(n))
                    .fetch_optional(&self.pool)
                    .await?
                }
            };
        row.map(|r| {
            Ok(StoredCheckpoint {
                size: r.try_get::<i64, _>(0)? as u64,
                note: r.try_get(1)?,
                made_at: parse_ts(&r.try_get::<String, _>(2)?, "checkpoint")?,
            })
        })
        .transpose()
    }

    /// Entries matching an auditor's filter, newest first.
    pub async fn log_entries(&self, f: &EntryFilter) -> Result<Vec<LoggedEntry>, StoreError> {
        let mut sql = String::from("SELECT idx, data FROM tlog_entries WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut cond = |sql: &mut String, clause: &str, value: String| {
            binds.push(value);
            sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
        };
        if let Some(v) = &f.kind {
            cond(&mut sql, " AND kind = ?", v.clone());
        }
        if let Some(v) = &f.peer {
            cond(&mut sql, " AND peer = ?", v.clone());
        }
        if let Some(v) = &f.product {
            // Products are comma-separated: match whole names.
            cond(
                &mut sql,
                " AND (',' || REPLACE(product, ' ', '') || ',') LIKE ?",
                format!("%,{},%", like_escape(v)),
            );
            sql.push_str(" ESCAPE '\\'");
        }
        if let Some(v) = &f.agreement {
            cond(
                &mut sql,
                " AND (',' || REPLACE(agreement, ' ', '') || ',') LIKE ?",
                format!("%,{},%", like_escape(v)),
            );
            sql.push_str(" ESCAPE '\\'");
        }
        if let Some(v) = &f.purpose {
            cond(&mut sql, " AND purpose = ?", v.clone());
        }
        if let Some(v) = &f.outcome {
            cond(
                &mut sql,
                " AND outcome LIKE ?",
                format!("{}%", like_escape(v)),
            );
            sql.push_str(" ESCAPE '\\'");
        }
        if let Some(v) = f.from {
            cond(&mut sql, " AND at >= ?", ts(v));
        }
        if let Some(v) = f.until {
            cond(&mut sql, " AND at < ?", ts(v));
        }
        let before = f.before.map(i64_of).unwrap_or(i64::MAX);
        sql.push_str(&format!(
            " AND idx < ${} ORDER BY idx DESC LIMIT ${}",
            binds.len() + 1,
            binds.len() + 2
        ));
        // Only fixed clauses and $n placeholders: every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q
            .bind(before)
            .bind(i64::from(f.limit.max(1)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let index = r.try_get::<i64, _>(0)? as u64;
                let data: Vec<u8> = r.try_get(1)?;
                let entry = AuditEntry::decode(&data)
                    .map_err(|e| corrupt(format!("entry {index}: {e}")))?;
                Ok(LoggedEntry { index, entry })
            })
            .collect()
    }

    /// The entries recorded for a record of another table (`exchange:42`, …), oldest first.
    pub async fn log_entries_for(&self, reference: &str) -> Result<Vec<LoggedEntry>, StoreError> {
        let rows =
            sqlx::query("SELECT idx, data FROM tlog_entries WHERE reference = $1 ORDER BY idx")
                .bind(reference)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let index = r.try_get::<i64, _>(0)? as u64;
                let data: Vec<u8> = r.try_get(1)?;
                let entry = AuditEntry::decode(&data)
                    .map_err(|e| corrupt(format!("entry {index}: {e}")))?;
                Ok(LoggedEntry { index, entry })
            })
            .collect()
    }
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn parse_hash(s: &str) -> Result<Hash, StoreError> {
    let bytes = hex::decode(s).map_err(|_| corrupt("the root is not hex"))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| corrupt("the root is not 32 bytes"))?;
    Ok(Hash(arr))
}
