//! The access log: queries by the node's own people and tools that read data products.
//! A record is written before the first row is returned (outcome `running`) and completed
//! when the answer ends, so an access that was cut off still shows. Queries from other
//! members are in the exchange log. Records go through the exchange log's writer
//! (`journal.rs`): under load, the records queued meanwhile share one transaction, and a
//! caller's future resolves only once its record is committed.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Connection, Row};

use agora_model::{AuditEntry, AuditKind};

use crate::journal::Reply;
use crate::{Store, StoreError, now, parse_ts};

/// The outcome of an access while its answer is still being read.
pub const RUNNING: &str = "running";

/// One access, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccessRecord {
    pub id: String,
    pub started_at: DateTime<Utc>,
    /// Who ran it: `token:ID (LABEL)`, `user:NAME` or `cli:OS-USER`.
    pub principal: String,
    /// `api`, `web`, `cli` or `flight`.
    pub channel: String,
    /// The products the query's plan read, as named in SQL, comma-separated.
    pub products: String,
    /// The agreements other members' products were read under, comma-separated.
    pub agreements: String,
    /// SHA-256 of the SQL text, in hex (the text itself may hold personal data).
    pub sql_digest: String,
    /// `running`, `answered`, `refused: …`, `failed: …` or `stopped by the client`.
    pub outcome: String,
    pub rows_returned: i64,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What is known of an access when it starts.
#[derive(Debug, Clone, Default)]
pub struct AccessStart {
    pub principal: String,
    pub channel: String,
    pub products: String,
    pub agreements: String,
    pub sql_digest: String,
    /// `None` while the answer is to come; the outcome of an access refused at once.
    pub outcome: Option<String>,
    /// The purposes of the agreements, comma-separated (in the log entry only).
    pub purposes: String,
}

/// Text kept at most this long per field (an outcome quoting a long error is cut).
const MAX_TEXT: usize = 1000;

fn cut(s: &str) -> String {
    s.chars().take(MAX_TEXT).collect()
}

/// A write to the access log, as the journal queues it.
pub(crate) enum AccessOp {
    Begin {
        id: String,
        at: String,
        start: AccessStart,
        reply: Reply<()>,
    },
    Finish {
        id: String,
        at: String,
        /// What the access was, for its log entry.
        start: AccessStart,
        outcome: String,
        rows: i64,
        reply: Reply<()>,
    },
}

impl AccessOp {
    pub(crate) fn answer(self, result: Result<(), StoreError>) {
        let (Self::Begin { reply, .. } | Self::Finish { reply, .. }) = self;
        let _ = reply.send(result);
    }

    /// The transparency-log entry of this write.
    pub(crate) fn entry(&self) -> AuditEntry {
        let (id, start, outcome, rows) = match self {
            Self::Begin { id, start, .. } => (
                id,
                start,
                start.outcome.as_deref().unwrap_or("started"),
                None,
            ),
            Self::Finish {
                id,
                start,
                outcome,
                rows,
                ..
            } => (id, start, outcome.as_str(), Some(*rows)),
        };
        let mut e = AuditEntry::new(
            AuditKind::Access,
            format!("access:{id}"),
            cut(&start.principal),
        )
        .product(cut(&start.products))
        .agreement(cut(&start.agreements))
        .purpose(cut(&start.purposes))
        .outcome(cut(outcome))
        .with("channel", start.channel.clone())
        .with("sql_sha256", start.sql_digest.clone());
        if let Some(rows) = rows {
            e = e.with("rows", rows);
        }
        e
    }

    /// Puts `new` in place of the reply and returns the caller's (the journal answers the
    /// caller once the log entry is written too).
    pub(crate) fn swap_reply(&mut self, new: Reply<()>) -> Reply<()> {
        let (Self::Begin { reply, .. } | Self::Finish { reply, .. }) = self;
        std::mem::replace(reply, new)
    }

    async fn execute(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        match self {
            Self::Begin { id, at, start, .. } => {
                let finished = start.outcome.as_ref().map(|_| at.clone());
                sqlx::query(
                    "INSERT INTO access_log (id, started_at, principal, channel, products, \
                     agreements, sql_digest, outcome, rows_returned, finished_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)",
                )
                .bind(id)
                .bind(at)
                .bind(cut(&start.principal))
                .bind(&start.channel)
                .bind(cut(&start.products))
                .bind(cut(&start.agreements))
                .bind(&start.sql_digest)
                .bind(cut(start.outcome.as_deref().unwrap_or(RUNNING)))
                .bind(finished)
                .execute(conn)
                .await?;
            }
            Self::Finish {
                id,
                at,
                outcome,
                rows,
                ..
            } => {
                sqlx::query(
                    "UPDATE access_log SET outcome = $1, rows_returned = $2, finished_at = $3 \
                     WHERE id = $4",
                )
                .bind(cut(outcome))
                .bind(*rows)
                .bind(at)
                .bind(id)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}

/// Writes a group of access-log records in one transaction (one commit for all of them);
/// should the group fail, each record alone, so that one bad record fails only itself.
/// True when the connection broke on the way.
pub(crate) async fn write_group(conn: &mut AnyConnection, ops: Vec<AccessOp>) -> bool {
    if ops.len() > 1 && in_one_transaction(conn, &ops).await.is_ok() {
        for op in ops {
            op.answer(Ok(()));
        }
        return false;
    }
    let mut is_broken = false;
    for op in ops {
        let result = op.execute(conn).await;
        if let Err(e) = &result {
            is_broken |= crate::journal::broken(e);
        }
        op.answer(result.map_err(StoreError::from));
    }
    is_broken
}

async fn in_one_transaction(conn: &mut AnyConnection, ops: &[AccessOp]) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    for op in ops {
        op.execute(&mut tx).await?;
    }
    tx.commit().await
}

impl Store {
    /// Records the start of an access (or an access refused at once); returns its id once
    /// the record is committed.
    pub async fn begin_access(&self, start: &AccessStart) -> Result<String, StoreError> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let op_id = id.clone();
        let start = start.clone();
        self.journal
            .access(|reply| AccessOp::Begin {
                id: op_id,
                at: now(),
                start,
                reply,
            })
            .await?;
        Ok(id)
    }

    /// Completes an access (begun with `start`) with its outcome and the rows returned.
    pub async fn finish_access(
        &self,
        id: &str,
        start: &AccessStart,
        outcome: &str,
        rows: u64,
    ) -> Result<(), StoreError> {
        self.journal
            .access(|reply| AccessOp::Finish {
                id: id.to_owned(),
                at: now(),
                start: start.clone(),
                outcome: outcome.to_owned(),
                rows: i64::try_from(rows).unwrap_or(i64::MAX),
                reply,
            })
            .await
    }

    /// The most recent accesses, newest first.
    pub async fn accesses(&self, limit: u32) -> Result<Vec<AccessRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, started_at, principal, channel, products, agreements, sql_digest, \
             outcome, rows_returned, finished_at FROM access_log \
             ORDER BY started_at DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let finished: Option<String> = r.try_get(9)?;
                Ok(AccessRecord {
                    id: r.try_get(0)?,
                    started_at: parse_ts(&r.try_get::<String, _>(1)?, "access")?,
                    principal: r.try_get(2)?,
                    channel: r.try_get(3)?,
                    products: r.try_get(4)?,
                    agreements: r.try_get(5)?,
                    sql_digest: r.try_get(6)?,
                    outcome: r.try_get(7)?,
                    rows_returned: r.try_get(8)?,
                    finished_at: finished.map(|f| parse_ts(&f, "access")).transpose()?,
                })
            })
            .collect()
    }
}
