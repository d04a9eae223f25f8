//! What a witness keeps (the ecosystem authority witnesses its members' transparency
//! logs): the latest checkpoint of each member's log it cosigned, and the inconsistencies
//! it detected (a log rewritten, forked or truncated). And on a node, which of its
//! checkpoints the authority cosigned.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::{Store, StoreError, now, parse_ts};

/// The latest checkpoint of a member's log that the witness cosigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    pub member: String,
    pub origin: String,
    pub size: u64,
    /// Hex SHA-256.
    pub root: String,
    /// The cosigned checkpoint.
    pub note: String,
    pub witnessed_at: DateTime<Utc>,
}

/// An inconsistency a witness detected in a member's log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WitnessAlert {
    pub member: String,
    pub detected_at: DateTime<Utc>,
    pub witnessed_size: u64,
    pub claimed_size: u64,
    pub reason: String,
}

fn size(v: i64) -> u64 {
    u64::try_from(v).unwrap_or_default()
}

impl Store {
    pub async fn witnessed(&self, member: &str) -> Result<Option<Witnessed>, StoreError> {
        let row = sqlx::query(
            "SELECT member_id, origin, size, root, note, witnessed_at FROM witnessed_logs \
             WHERE member_id = $1",
        )
        .bind(member)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Witnessed {
                member: r.try_get(0)?,
                origin: r.try_get(1)?,
                size: size(r.try_get(2)?),
                root: r.try_get(3)?,
                note: r.try_get(4)?,
                witnessed_at: parse_ts(&r.try_get::<String, _>(5)?, "witnessed log")?,
            })
        })
        .transpose()
    }

    /// Records a newly cosigned checkpoint, provided the one witnessed before is still
    /// of `previous` entries (two concurrent requests cannot both move it); false if not.
    pub async fn put_witnessed(
        &self,
        w: &Witnessed,
        previous: Option<u64>,
    ) -> Result<bool, StoreError> {
        let done = match previous {
            None => sqlx::query(
                "INSERT INTO witnessed_logs (member_id, origin, size, root, note, witnessed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (member_id) DO NOTHING",
            )
            .bind(&w.member)
            .bind(&w.origin)
            .bind(w.size as i64)
            .bind(&w.root)
            .bind(&w.note)
            .bind(now())
            .execute(&self.pool)
            .await?
            .rows_affected(),
            Some(old) => sqlx::query(
                "UPDATE witnessed_logs SET origin = $2, size = $3, root = $4, note = $5, \
                 witnessed_at = $6 WHERE member_id = $1 AND size = $7",
            )
            .bind(&w.member)
            .bind(&w.origin)
            .bind(w.size as i64)
            .bind(&w.root)
            .bind(&w.note)
            .bind(now())
            .bind(old as i64)
            .execute(&self.pool)
            .await?
            .rows_affected(),
        };
        Ok(done == 1)
    }

    pub async fn record_witness_alert(&self, a: &WitnessAlert) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO witness_alerts (id, member_id, detected_at, witnessed_size, \
             claimed_size, reason) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid::Uuid::now_v7().simple().to_string())
        .bind(&a.member)
        .bind(crate::ts(a.detected_at))
        .bind(a.witnessed_size as i64)
        .bind(a.claimed_size as i64)
        .bind(&a.reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The inconsistencies detected, newest first.
    pub async fn witness_alerts(&self, limit: u32) -> Result<Vec<WitnessAlert>, StoreError> {
        let rows = sqlx::query(
            "SELECT member_id, detected_at, witnessed_size, claimed_size, reason \
             FROM witness_alerts ORDER BY detected_at DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WitnessAlert {
                    member: r.try_get(0)?,
                    detected_at: parse_ts(&r.try_get::<String, _>(1)?, "witness alert")?,
                    witnessed_size: size(r.try_get(2)?),
                    claimed_size: size(r.try_get(3)?),
                    reason: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Keeps the authority's cosigned version of this node's checkpoint of `size`.
    pub async fn put_witnessed_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE tlog_checkpoints SET witnessed_note = $1 WHERE size = $2")
            .bind(note)
            .bind(size as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The latest of this node's checkpoints the authority cosigned: its size and note.
    pub async fn last_witnessed_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT size, witnessed_note FROM tlog_checkpoints WHERE witnessed_note IS NOT NULL \
             ORDER BY size DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((size(r.try_get(0)?), r.try_get(1)?)))
            .transpose()
    }
}
