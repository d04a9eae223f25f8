//! The transparency log's storage: entries in chunks, one per C2SP entry bundle a group
//! wrote into, each with a summary of what its entries are about for an auditor's filters
//! (`tlog_chunks`), the tags of the subjects an entry commits to (`tlog_subjects`), the
//! Merkle tree's hashes as C2SP tiles (`tlog_tiles`), its size and root (`tlog_state`) and
//! the node's signed checkpoints (`tlog_checkpoints`).
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
//! Proofs are computed from the stored tiles, fetched as the proof needs them (`proofs.rs`).

use sqlx::{AnyConnection, Connection, Row};

use agora_model::{AuditEntry, AuditKind, EntryFilter, ExchangeEnd, ExchangeStart, LoggedEntry};
use agora_trust::tlog::{self, Hash, TileHashes, TileKey};

use crate::journal::Reply;

mod proofs;
use crate::{Store, StoreError, parse_ts, ts};
pub(crate) use proofs::TileCache;

/// An entry on its way into the log: encoded by the caller, so that an entry too large is
/// refused before anything is queued.
pub(crate) struct Pending {
    entry: AuditEntry,
    /// The entry's bytes, as hashed.
    data: Vec<u8>,
    /// The tags its subject commitment is over (see `AuditContext::subject_tags`), if any.
    tags: Vec<u8>,
}

impl Pending {
    pub(crate) fn new(entry: AuditEntry, data: Vec<u8>, tags: Vec<u8>) -> Self {
        Self { entry, data, tags }
    }
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

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    /// Signed by the node.
    pub note: String,
    pub made_at: chrono::DateTime<chrono::Utc>,
    /// The same checkpoint with the authority's cosignature, once it has witnessed it.
    pub witnessed: Option<String>,
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

/// The entry of an exchange record as first written (pending, or whole when it was
/// refused at once or recorded after the call).
pub(crate) fn exchange_entry(seq: i64, start: &ExchangeStart, end: &ExchangeEnd) -> AuditEntry {
    let pending = end.outcome == crate::exchange::PENDING;
    let actor = match start.direction {
        agora_model::Direction::Inbound => start.peer.to_string(),
        agora_model::Direction::Outbound => "node".to_owned(),
    };
    let e = AuditEntry::new(AuditKind::Exchange, format!("exchange:{seq}"), actor)
        .peer(start.peer.as_str())
        .outcome(if pending {
            "started"
        } else {
            end.outcome.as_str()
        })
        .context(&end.context)
        .with("direction", start.direction.as_str())
        .with("operation", start.operation.clone())
        .with("nonce", start.nonce.clone())
        .with("peer_certificate", start.peer_certificate.clone())
        .with("requested_at", ts(start.requested_at))
        .with("request_sha256", start.request_digest.clone())
        .with("request_signature", start.request_signature.clone());
    if pending { e } else { ended(e, end) }
}

fn ended(e: AuditEntry, end: &ExchangeEnd) -> AuditEntry {
    e.with("response_sha256", end.response_digest.clone())
        .with("response_signature", end.response_signature.clone())
        .with("duration_ms", end.duration_ms)
        .with("rows", end.rows)
        .with("bytes", end.bytes)
}

/// The entry of an exchange record's completion.
pub(crate) fn completion_entry(
    seq: i64,
    direction: &str,
    peer: &str,
    end: &ExchangeEnd,
) -> AuditEntry {
    let actor = if direction == "inbound" { peer } else { "node" };
    let e = AuditEntry::new(AuditKind::Exchange, format!("exchange:{seq}"), actor)
        .peer(peer)
        .outcome(end.outcome.clone())
        .context(&end.context)
        .with("direction", direction);
    ended(e, end)
}

/// An entry's bytes; an entry too large to log keeps what says what it was, and says it
/// was cut.
fn encode_or_cut((entry, tags): (AuditEntry, Vec<u8>)) -> Pending {
    match entry.encode() {
        Ok(data) => Pending { entry, data, tags },
        Err(e) => {
            let mut cut = AuditEntry::new(entry.kind, entry.reference.clone(), entry.actor.clone())
                .outcome(entry.outcome.chars().take(1000).collect::<String>())
                .with("cut", e.to_string());
            cut.at = entry.at;
            cut.peer = entry.peer;
            let data = cut.encode().unwrap_or_default();
            Pending {
                entry: cut,
                data,
                tags: Vec::new(),
            }
        }
    }
}

/// Appends the entries of a group's records and the entries callers queued, in one
/// transaction, and answers the callers' appends. Returns whether the connection broke,
/// and why the append failed, if it did.
pub(crate) async fn write_with(
    conn: &mut AnyConnection,
    edge: &mut Edge,
    records: Vec<(AuditEntry, Vec<u8>)>,
    mut ops: Vec<LogOp>,
) -> (bool, Option<String>) {
    if records.is_empty() && ops.is_empty() {
        return (false, None);
    }
    let (reply, _) = tokio::sync::oneshot::channel();
    ops.insert(
        0,
        LogOp {
            entries: records.into_iter().map(encode_or_cut).collect(),
            reply,
        },
    );
    match append(conn, edge, &ops).await {
        Ok(first) => {
            let mut at = first;
            for op in ops {
                let n = op.entries.len() as u64;
                let _ = op.reply.send(Ok(at));
                at += n;
            }
            (false, None)
        }
        Err(e) => {
            // Whatever the transaction did is rolled back: read the edge again next time.
            edge.loaded = false;
            let broken = matches!(&e, StoreError::Query(q) if crate::journal::broken(q));
            let text = e.to_string();
            for op in ops {
                let _ = op
                    .reply
                    .send(Err(StoreError::TransparencyLog(text.clone())));
            }
            (broken, Some(text))
        }
    }
}

async fn append(
    conn: &mut AnyConnection,
    edge: &mut Edge,
    ops: &[LogOp],
) -> Result<u64, StoreError> {
    let items: Vec<&Pending> = ops.iter().flat_map(|op| &op.entries).collect();
    if edge.loaded {
        // The usual case: this writer appended last. Moving the size on from the one it
        // knows is the transaction's first statement (it takes the write lock); no row
        // changed means another process appended meanwhile, and the edge is read again.
        let (work, n, root) = extend(edge, &items)?;
        let mut tx = conn.begin().await?;
        let moved =
            sqlx::query("UPDATE tlog_state SET size = $1, root = $2 WHERE id = 1 AND size = $3")
                .bind(i64_of(n))
                .bind(hex::encode(root.0))
                .bind(i64_of(edge.size))
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if moved == 1 {
            let first = edge.size;
            write_appended(&mut tx, first, &items, work.clone()).await?;
            tx.commit().await?;
            settle(edge, work, n);
            return Ok(first);
        }
        tx.rollback().await?;
    }
    let mut tx = conn.begin().await?;
    // Taking the write lock first: no other writer can append until this commits.
    let size: i64 = sqlx::query("UPDATE tlog_state SET size = size WHERE id = 1 RETURNING size")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    let size = u64::try_from(size).map_err(|_| corrupt("a negative size"))?;
    *edge = load_edge(&mut tx, size).await?;
    let (work, n, root) = extend(edge, &items)?;
    sqlx::query("UPDATE tlog_state SET size = $1, root = $2 WHERE id = 1")
        .bind(i64_of(n))
        .bind(hex::encode(root.0))
        .execute(&mut *tx)
        .await?;
    write_appended(&mut tx, size, &items, work.clone()).await?;
    tx.commit().await?;
    settle(edge, work, n);
    Ok(size)
}

/// The edge with the entries appended: its tiles, the new size and root.
fn extend(edge: &Edge, items: &[&Pending]) -> Result<(TileHashes, u64, Hash), StoreError> {
    let mut work = edge.tiles.clone();
    let mut n = edge.size;
    for p in items {
        work.append(n, &p.data).map_err(corrupt)?;
        n += 1;
    }
    let root = tlog::root(n, &work).map_err(corrupt)?;
    Ok((work, n, root))
}

/// Tags per statement when the subject index is written (two parameters each).
const INDEX_ROWS_PER_STATEMENT: usize = 500;

/// Adds an entry's tags (64 bytes each, concatenated) to the subject index.
async fn insert_index(conn: &mut AnyConnection, entry: i64, tags: &[u8]) -> Result<(), StoreError> {
    // Tags as committed are distinct; a repeated one is indexed once all the same.
    let distinct: std::collections::BTreeSet<&[u8]> = tags.chunks_exact(64).collect();
    let distinct: Vec<&[u8]> = distinct.into_iter().collect();
    for batch in distinct.chunks(INDEX_ROWS_PER_STATEMENT) {
        let mut sql = String::from("INSERT INTO tlog_subject_entries (tag, entry) VALUES ");
        for r in 0..batch.len() {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${}, ${})", 2 * r + 1, 2 * r + 2));
        }
        // Only placeholders are formatted into the text; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for tag in batch {
            q = q.bind(tag.to_vec()).bind(entry);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Writes the entries' chunks and the tiles they changed.
async fn write_appended(
    conn: &mut AnyConnection,
    first: u64,
    items: &[&Pending],
    mut work: TileHashes,
) -> Result<(), StoreError> {
    insert_chunks(conn, first, items).await?;
    for (i, item) in items.iter().enumerate() {
        if !item.tags.is_empty() {
            let entry = i64_of(first + i as u64);
            sqlx::query("INSERT INTO tlog_subjects (entry, tags) VALUES ($1, $2)")
                .bind(entry)
                .bind(item.tags.clone())
                .execute(&mut *conn)
                .await?;
            insert_index(conn, entry, &item.tags).await?;
        }
    }
    for ((level, idx), data) in work.take_changed() {
        sqlx::query(
            "INSERT INTO tlog_tiles (level, idx, data) VALUES ($1, $2, $3) \
             ON CONFLICT (level, idx) DO UPDATE SET data = excluded.data",
        )
        .bind(i32::from(level))
        .bind(i64_of(idx))
        .bind(data)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The edge after a committed append.
fn settle(edge: &mut Edge, mut work: TileHashes, n: u64) {
    work.keep_right_edge(n);
    *edge = Edge {
        size: n,
        tiles: work,
        loaded: true,
    };
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

/// Entries per C2SP entry bundle.
pub const BUNDLE: u64 = 256;

/// A summary value: commas would split it, so they become semicolons (filters do the
/// same, and the summary only has to let every matching chunk through).
fn summary_value(s: &str) -> String {
    // PostgreSQL's text holds no NUL character.
    s.trim().replace(',', ";").replace('\0', "\u{fffd}")
}

/// The key an outcome is summarised under: its first word (`refused` of `refused: …`).
fn outcome_key(s: &str) -> String {
    summary_value(s.split(':').next().unwrap_or_default())
}

/// `,a,b,` of the distinct values.
fn set_text<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let set: std::collections::BTreeSet<String> = values
        .flat_map(|v| v.split(',').map(summary_value).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .collect();
    let mut out = String::from(",");
    for v in set {
        out.push_str(&v);
        out.push(',');
    }
    out
}

/// Writes the group's entries as chunks, one per entry bundle they fall in.
async fn insert_chunks(
    conn: &mut AnyConnection,
    first: u64,
    items: &[&Pending],
) -> Result<(), StoreError> {
    let mut at = first;
    let mut rest = items;
    while !rest.is_empty() {
        let room = (BUNDLE - at % BUNDLE) as usize;
        let (chunk, tail) = rest.split_at(room.min(rest.len()));
        let entries = || chunk.iter().map(|p| &p.entry);
        let mut data = Vec::with_capacity(chunk.iter().map(|p| p.data.len() + 2).sum());
        for p in chunk {
            data.extend_from_slice(&(p.data.len() as u16).to_be_bytes());
            data.extend_from_slice(&p.data);
        }
        let first_at = entries().map(|e| e.at).min().unwrap_or_default();
        let last_at = entries().map(|e| e.at).max().unwrap_or_default();
        sqlx::query(
            "INSERT INTO tlog_chunks (first, count, first_at, last_at, kinds, peers, products, \
             agreements, purposes, outcomes, data) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(i64_of(at))
        .bind(chunk.len() as i32)
        .bind(ts(first_at))
        .bind(ts(last_at))
        .bind(set_text(entries().map(|e| e.kind.as_str())))
        .bind(set_text(entries().filter_map(|e| e.peer.as_deref())))
        .bind(set_text(entries().filter_map(|e| e.product.as_deref())))
        .bind(set_text(entries().filter_map(|e| e.agreement.as_deref())))
        .bind(set_text(entries().filter_map(|e| e.purpose.as_deref())))
        .bind(set_text(
            entries()
                .map(|e| e.outcome.as_str())
                .map(outcome_key)
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        ))
        .bind(data)
        .execute(&mut *conn)
        .await?;
        at += chunk.len() as u64;
        rest = tail;
    }
    Ok(())
}

/// The entries of a chunk's (or a bundle's) data.
fn split_bundle(data: &[u8]) -> Result<Vec<&[u8]>, StoreError> {
    tlog::split_bundle(data).map_err(corrupt)
}

type Chunk = (u64, Vec<u8>);

fn chunk_of(r: &sqlx::any::AnyRow) -> Result<Chunk, StoreError> {
    let first = u64::try_from(r.try_get::<i64, _>(0)?).map_err(|_| corrupt("a negative index"))?;
    Ok((first, r.try_get::<Vec<u8>, _>(1)?))
}

fn matches(f: &EntryFilter, e: &AuditEntry) -> bool {
    let listed = |field: &Option<String>, want: &Option<String>| match want {
        None => true,
        Some(w) => field
            .as_deref()
            .is_some_and(|v| v.split(',').any(|x| x.trim() == w.trim())),
    };
    f.kind.as_deref().is_none_or(|k| k == e.kind.as_str())
        && f.peer
            .as_deref()
            .is_none_or(|p| e.peer.as_deref() == Some(p))
        && listed(&e.product, &f.product)
        && listed(&e.agreement, &f.agreement)
        && f.purpose
            .as_deref()
            .is_none_or(|p| e.purpose.as_deref() == Some(p))
        && f.outcome
            .as_deref()
            .is_none_or(|o| e.outcome.starts_with(o))
        && f.reference.as_deref().is_none_or(|r| e.reference == r)
        && f.from.is_none_or(|t| e.at >= t)
        && f.until.is_none_or(|t| e.at < t)
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
                Ok(Pending {
                    entry,
                    data,
                    tags: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.journal.log(entries).await
    }

    /// Appends entries with the subject tags each commits to (concatenated, 64 bytes each,
    /// ascending; empty for none), as the journal writes answers' entries; returns the index
    /// of the first.
    pub async fn log_append_with_tags(
        &self,
        entries: Vec<(AuditEntry, Vec<u8>)>,
    ) -> Result<u64, StoreError> {
        let pending = entries
            .into_iter()
            .map(|(entry, tags)| {
                let data = entry
                    .encode()
                    .map_err(|e| StoreError::TransparencyLog(e.to_string()))?;
                Ok(Pending::new(entry, data, tags))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.journal.log(pending).await
    }

    /// The subject tags entry `index` commits to (concatenated, 64 bytes each), if it
    /// commits to any.
    pub async fn log_subject_tags(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT tags FROM tlog_subjects WHERE entry = $1")
            .bind(i64_of(index))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<Vec<u8>, _>(0)).transpose()?)
    }

    /// The index buckets (first bytes of tags) that entries `from..to` added to.
    pub async fn log_subject_buckets(
        &self,
        from: u64,
        to: u64,
    ) -> Result<std::collections::BTreeSet<u8>, StoreError> {
        let rows = sqlx::query("SELECT tags FROM tlog_subjects WHERE entry >= $1 AND entry < $2")
            .bind(i64_of(from))
            .bind(i64_of(to))
            .fetch_all(&self.pool)
            .await?;
        let mut buckets = std::collections::BTreeSet::new();
        for r in rows {
            let tags: Vec<u8> = r.try_get(0)?;
            buckets.extend(tags.chunks_exact(64).map(|t| t[0]));
        }
        Ok(buckets)
    }

    /// One bucket of the subject index over the log's first `size` entries: each tag whose
    /// first byte is `bucket`, with the entries that carried it, ascending by tag, then
    /// entry.
    pub async fn log_subject_bucket(
        &self,
        bucket: u8,
        size: u64,
    ) -> Result<Vec<(Vec<u8>, u64)>, StoreError> {
        let lo = vec![bucket];
        let rows = if bucket == u8::MAX {
            sqlx::query(
                "SELECT tag, entry FROM tlog_subject_entries WHERE tag >= $1 AND entry < $2 \
                 ORDER BY tag, entry",
            )
            .bind(lo)
            .bind(i64_of(size))
            .fetch_all(&self.pool)
            .await?
        } else {
            sqlx::query(
                "SELECT tag, entry FROM tlog_subject_entries \
                 WHERE tag >= $1 AND tag < $2 AND entry < $3 ORDER BY tag, entry",
            )
            .bind(lo)
            .bind(vec![bucket + 1])
            .bind(i64_of(size))
            .fetch_all(&self.pool)
            .await?
        };
        rows.into_iter()
            .map(|r| {
                let entry = u64::try_from(r.try_get::<i64, _>(1)?)
                    .map_err(|_| corrupt("a negative entry index"))?;
                Ok((r.try_get::<Vec<u8>, _>(0)?, entry))
            })
            .collect()
    }

    /// Appends one entry for a record this store has just written.
    pub(crate) async fn log_one(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.log_append(vec![entry]).await.map(drop).map_err(|e| {
            tracing::error!(error = %e, "a record was written without its transparency-log entry");
            StoreError::TransparencyLog(format!(
                "the record was written but not its entry in the transparency log: {e}"
            ))
        })
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
        if from >= to {
            return Ok(Vec::new());
        }
        // The chunk holding `from` starts at or before it, within its bundle.
        let rows = sqlx::query(
            "SELECT first, data FROM tlog_chunks WHERE first >= $1 AND first < $2 ORDER BY first",
        )
        .bind(i64_of(from - from % BUNDLE))
        .bind(i64_of(to))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity((to - from) as usize);
        let mut next = from - from % BUNDLE;
        for r in &rows {
            let (first, data) = chunk_of(r)?;
            if first > next {
                break;
            }
            for (k, e) in split_bundle(&data)?.into_iter().enumerate() {
                let i = first + k as u64;
                if i >= from && i < to {
                    out.push(e.to_vec());
                }
            }
            next = first + split_bundle(&data)?.len() as u64;
        }
        if out.len() as u64 != to - from {
            return Err(corrupt(format!(
                "entries {from}..{to} are not all stored (found {})",
                out.len()
            )));
        }
        Ok(out)
    }

    /// C2SP entry bundle `n`: its entries below `size`, each with its 16-bit length.
    pub async fn log_bundle(&self, n: u64, size: u64) -> Result<Vec<u8>, StoreError> {
        let from = n * BUNDLE;
        let to = ((n + 1) * BUNDLE).min(size);
        let mut out = Vec::new();
        for e in self.log_entry_data(from, to).await? {
            out.extend_from_slice(&(e.len() as u16).to_be_bytes());
            out.extend_from_slice(&e);
        }
        Ok(out)
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

    /// Replaces the checkpoint of `size` with the same checkpoint signed again (after the
    /// node's key was renewed); it awaits the authority's cosignature again.
    pub async fn replace_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE tlog_checkpoints SET note = $1, witnessed_note = NULL, made_at = $2 \
             WHERE size = $3",
        )
        .bind(note)
        .bind(crate::now())
        .bind(i64_of(size))
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
                    "SELECT size, note, made_at, witnessed_note FROM tlog_checkpoints ORDER BY size DESC LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await?,
                Some(n) => {
                    sqlx::query(
                        "SELECT size, note, made_at, witnessed_note FROM tlog_checkpoints WHERE size >= $1 \
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
                witnessed: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Entries matching an auditor's filter, newest first. Only the chunks whose summary
    /// can match are read.
    pub async fn log_entries(&self, f: &EntryFilter) -> Result<Vec<LoggedEntry>, StoreError> {
        let mut sql = String::from("SELECT first, data FROM tlog_chunks WHERE first < $1");
        let mut binds: Vec<String> = Vec::new();
        let mut cond = |sql: &mut String, column: &str, pattern: String| {
            binds.push(pattern);
            sql.push_str(&format!(
                " AND {column} LIKE ${} ESCAPE '\\'",
                binds.len() + 1
            ));
        };
        let one = |v: &str| format!("%,{},%", like_escape(&summary_value(v)));
        if let Some(v) = &f.kind {
            cond(&mut sql, "kinds", one(v));
        }
        if let Some(v) = &f.peer {
            cond(&mut sql, "peers", one(v));
        }
        if let Some(v) = &f.product {
            cond(&mut sql, "products", one(v));
        }
        if let Some(v) = &f.agreement {
            cond(&mut sql, "agreements", one(v));
        }
        if let Some(v) = &f.purpose {
            cond(&mut sql, "purposes", one(v));
        }
        if let Some(v) = &f.outcome {
            cond(
                &mut sql,
                "outcomes",
                format!("%,{}%", like_escape(&outcome_key(v))),
            );
        }
        if let Some(v) = f.from {
            binds.push(ts(v));
            sql.push_str(&format!(" AND last_at >= ${}", binds.len() + 1));
        }
        if let Some(v) = f.until {
            binds.push(ts(v));
            sql.push_str(&format!(" AND first_at < ${}", binds.len() + 1));
        }
        sql.push_str(" ORDER BY first DESC LIMIT 64");
        let limit = f.limit.max(1) as usize;
        let before = f.before.unwrap_or(u64::MAX);
        let mut cursor = before;
        let mut out = Vec::new();
        while out.len() < limit && cursor > 0 {
            // Only fixed clauses and $n placeholders: every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(i64_of(cursor));
            for b in &binds {
                q = q.bind(b);
            }
            let rows = q.fetch_all(&self.pool).await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let (first, data) = chunk_of(r)?;
                cursor = first;
                for (k, bytes) in split_bundle(&data)?.into_iter().enumerate().rev() {
                    let index = first + k as u64;
                    if index >= before {
                        continue;
                    }
                    let entry = AuditEntry::decode(bytes)
                        .map_err(|e| corrupt(format!("entry {index}: {e}")))?;
                    if matches(f, &entry) && out.len() < limit {
                        out.push(LoggedEntry { index, entry });
                    }
                }
            }
        }
        Ok(out)
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
