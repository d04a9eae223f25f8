//! A node's exchange log (every request/response with another member, written by each side)
//! and its federated catalog (the offers other members publish: metadata, never data).
//!
//! **Exchange log record** (`exchange_log`, stable format; a later capability chains these
//! records into a tamper-evident log): `seq` (1, 2, 3… per node, gap-free), `direction`
//! (`inbound`/`outbound`), `peer` (member id), `peer_certificate` (SHA-256 fingerprint),
//! `operation` (`GET /exchange/v1/offers`, later `flight:DoGet`), `nonce` and
//! `requested_at` (as signed), `request_digest` (hex SHA-256 of the body),
//! `request_signature` (base64), `response_digest` (hex SHA-256 of the body; for Flight
//! streams the stream digest, `blake3:…`), `response_signature`, `outcome` (`ok`, `refused:
//! …`, `failed: …`, `pending` while being served), `duration_ms`, `rows_returned`,
//! `bytes_returned`. Inbound records are inserted before the request is served, and
//! `(direction, peer, nonce)` is unique: a replayed request fails on that insert, durably,
//! across restarts. Outbound records are likewise written (pending) as the call is made —
//! the insert runs while the request travels, and no byte of the answer is read before it
//! has succeeded — and completed when the call is over. An owner sends a stream's signed
//! end as soon as it is signed and completes its record in a task of its own, so neither
//! side waits on its store for the other's.

use agora_model::{Direction, ExchangeEnd, ExchangeRecord, ExchangeStart, MemberId, Offer};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, json, parse_ts, to_json, ts};

/// When each member's offers were last fetched, and how that went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferSource {
    pub member: MemberId,
    pub fetched_at: DateTime<Utc>,
    pub outcome: String,
}

pub(crate) const PENDING: &str = "pending";

fn member(s: &str, what: &str) -> Result<MemberId, StoreError> {
    MemberId::parse(s).map_err(|e| StoreError::Corrupt {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

fn record_from_row(r: &AnyRow) -> Result<ExchangeRecord, StoreError> {
    let seq: i64 = r.try_get(0)?;
    let what = format!("exchange {seq}");
    let dir: String = r.try_get(1)?;
    Ok(ExchangeRecord {
        seq,
        direction: Direction::parse(&dir).ok_or_else(|| StoreError::Corrupt {
            what: what.clone(),
            message: format!("unknown direction {dir:?}"),
        })?,
        peer: member(&r.try_get::<String, _>(2)?, &what)?,
        peer_certificate: r.try_get(3)?,
        operation: r.try_get(4)?,
        nonce: r.try_get(5)?,
        requested_at: parse_ts(&r.try_get::<String, _>(6)?, &what)?,
        request_digest: r.try_get(7)?,
        request_signature: r.try_get(8)?,
        response_digest: r.try_get(9)?,
        response_signature: r.try_get(10)?,
        outcome: r.try_get(11)?,
        duration_ms: r.try_get(12)?,
        rows: r.try_get(13)?,
        bytes: r.try_get(14)?,
    })
}

impl Store {
    /// Appends an exchange to the log and returns its sequence number. With `end` the
    /// record is complete (outbound calls write once, when they are over); without, it is
    /// `pending` until [`Store::finish_exchange`]. A nonce already recorded for the same
    /// peer and direction is refused as a replay.
    pub async fn log_exchange(
        &self,
        start: &ExchangeStart,
        end: Option<&ExchangeEnd>,
    ) -> Result<i64, StoreError> {
        Ok(self.append_exchange(start, end).await?.0)
    }

    /// Opens the record of an inbound exchange (pending) and returns its sequence number
    /// with the catalog version at that moment, in one statement: the request then runs
    /// over the catalog as it was when it was admitted.
    pub async fn begin_exchange(&self, start: &ExchangeStart) -> Result<(i64, i64), StoreError> {
        self.append_exchange(start, None).await
    }

    async fn append_exchange(
        &self,
        start: &ExchangeStart,
        end: Option<&ExchangeEnd>,
    ) -> Result<(i64, i64), StoreError> {
        let end = end.cloned().unwrap_or_else(|| ExchangeEnd {
            outcome: PENDING.into(),
            ..Default::default()
        });
        self.journal.append(start.clone(), end).await
    }

    /// Marks every record still pending with `outcome` (at start-up: exchanges a stopped
    /// process never finished). Returns how many there were.
    pub async fn interrupt_pending(&self, outcome: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE exchange_log SET outcome = $1 WHERE outcome = $2 \
             RETURNING seq, direction, peer",
        )
        .bind(outcome)
        .bind(PENDING)
        .fetch_all(&self.pool)
        .await?;
        // Each record's end is in the transparency log too.
        let end = ExchangeEnd {
            outcome: outcome.to_owned(),
            ..Default::default()
        };
        let entries = done
            .iter()
            .map(|r| {
                Ok(crate::tlog::completion_entry(
                    r.try_get(0)?,
                    &r.try_get::<String, _>(1)?,
                    &r.try_get::<String, _>(2)?,
                    &end,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if !entries.is_empty() {
            self.log_append(entries).await?;
        }
        Ok(done.len() as u64)
    }

    /// Completes a pending exchange record.
    pub async fn finish_exchange(&self, seq: i64, end: &ExchangeEnd) -> Result<(), StoreError> {
        self.finish_outbound(seq, "", end).await
    }

    /// Completes an exchange's record, also noting the certificate the peer presented when
    /// it was learnt only after the record was started (an outbound call); an empty
    /// `certificate` keeps the one recorded.
    pub async fn finish_outbound(
        &self,
        seq: i64,
        certificate: &str,
        end: &ExchangeEnd,
    ) -> Result<(), StoreError> {
        self.journal.complete(seq, certificate, end).await
    }

    /// The newest exchanges first, optionally with one peer only.
    pub async fn exchanges(
        &self,
        peer: Option<&MemberId>,
        limit: u32,
    ) -> Result<Vec<ExchangeRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, direction, peer, peer_certificate, operation, nonce, requested_at, \
             request_digest, request_signature, response_digest, response_signature, outcome, \
             duration_ms, rows_returned, bytes_returned FROM exchange_log \
             WHERE ($1 = '' OR peer = $1) ORDER BY seq DESC LIMIT $2",
        )
        .bind(peer.map(|p| p.as_str()).unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    // ---- federated catalog ----

    /// Replaces everything known of `member`'s offers with a fresh fetch, atomically.
    pub async fn replace_offers(
        &self,
        member: &MemberId,
        offers: &[Offer],
        fetched_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        delete_offers_of(&mut tx, member).await?;
        for o in offers {
            if &o.owner != member {
                return Err(StoreError::Corrupt {
                    what: format!("offers of {member}"),
                    message: format!("offer {} names owner {}", o.name, o.owner),
                });
            }
            let id = format!("{member}/{}", o.name);
            sqlx::query(
                "INSERT INTO offers (id, member_id, name, title, classification, product_json, fetched_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&id)
            .bind(member.as_str())
            .bind(o.name.as_str())
            .bind(&o.metadata.title)
            .bind(o.metadata.classification.as_str())
            .bind(to_json(o))
            .bind(ts(fetched_at))
            .execute(&mut *tx)
            .await?;
            crate::search::insert_offer_terms(&mut tx, &id, o).await?;
        }
        upsert_source(&mut tx, member, fetched_at, "ok").await?;
        tx.commit().await?;
        Ok(())
    }

    /// Notes a failed fetch of `member`'s offers; what was known before is kept.
    pub async fn record_offer_failure(
        &self,
        member: &MemberId,
        outcome: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        upsert_source(&mut tx, member, Utc::now(), outcome).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets a member's offers (it left the ecosystem).
    pub async fn forget_offers(&self, member: &MemberId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM offer_terms WHERE offer_id IN (SELECT id FROM offers WHERE member_id = $1)",
        )
        .bind(member.as_str())
        .execute(&mut *tx)
        .await?;
        for q in [
            "DELETE FROM offers WHERE member_id = $1",
            "DELETE FROM offer_sources WHERE member_id = $1",
        ] {
            sqlx::query(q)
                .bind(member.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn offers(&self, member: Option<&MemberId>) -> Result<Vec<Offer>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, product_json FROM offers WHERE ($1 = '' OR member_id = $1) ORDER BY member_id, name",
        )
        .bind(member.map(|m| m.as_str()).unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                json(&r.try_get::<String, _>(1)?, &format!("offer {id}"))
            })
            .collect()
    }

    pub async fn offer(&self, member: &MemberId, name: &str) -> Result<Option<Offer>, StoreError> {
        let row = sqlx::query("SELECT product_json FROM offers WHERE member_id = $1 AND name = $2")
            .bind(member.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            json(
                &r.try_get::<String, _>(0)?,
                &format!("offer {member}/{name}"),
            )
        })
        .transpose()
    }

    pub async fn offer_sources(&self) -> Result<Vec<OfferSource>, StoreError> {
        let rows = sqlx::query(
            "SELECT member_id, fetched_at, outcome FROM offer_sources ORDER BY member_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let m: String = r.try_get(0)?;
                Ok(OfferSource {
                    member: member(&m, "offer source")?,
                    fetched_at: parse_ts(&r.try_get::<String, _>(1)?, "offer source")?,
                    outcome: r.try_get(2)?,
                })
            })
            .collect()
    }
}

async fn delete_offers_of(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    member: &MemberId,
) -> Result<(), StoreError> {
    for q in [
        "DELETE FROM offer_terms WHERE offer_id IN (SELECT id FROM offers WHERE member_id = $1)",
        "DELETE FROM offers WHERE member_id = $1",
    ] {
        sqlx::query(q)
            .bind(member.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn upsert_source(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    member: &MemberId,
    at: DateTime<Utc>,
    outcome: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM offer_sources WHERE member_id = $1")
        .bind(member.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO offer_sources (member_id, fetched_at, outcome) VALUES ($1, $2, $3)")
        .bind(member.as_str())
        .bind(ts(at))
        .bind(outcome)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
