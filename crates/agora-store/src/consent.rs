//! Residents' consent at an owner: the subjects who withdrew consent for a purpose. A
//! change is one transaction with a bump of the catalog version, so no query that starts
//! after it is answered binds agreements without it; its log entry (kind `consent`,
//! committing to the subject's tag, never the identifier) is durable before the change is
//! acknowledged.

use agora_model::AuditEntry;
use sqlx::Row;

use crate::tlog::Pending;
use crate::{Store, StoreError, bump_catalog_version, now};

impl Store {
    /// Records that `subject` withdrew (or granted again) consent for `purpose`, with its
    /// log entry and the tag it commits to (64 bytes).
    pub async fn set_consent(
        &self,
        purpose: &str,
        subject: &str,
        withdrawn: bool,
        entry: AuditEntry,
        tag: Vec<u8>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if withdrawn {
            sqlx::query(
                "INSERT INTO consent_withdrawals (purpose, subject, withdrawn_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (purpose, subject) DO NOTHING",
            )
            .bind(purpose)
            .bind(subject)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query("DELETE FROM consent_withdrawals WHERE purpose = $1 AND subject = $2")
                .bind(purpose)
                .bind(subject)
                .execute(&mut *tx)
                .await?;
        }
        bump_catalog_version(&mut tx).await?;
        tx.commit().await?;
        let data = entry
            .encode()
            .map_err(|e| StoreError::TransparencyLog(e.to_string()))?;
        self.journal
            .log(vec![Pending::new(entry, data, tag)])
            .await
            .map(drop)
    }

    /// The subjects who withdrew consent for `purpose`.
    pub async fn consent_withdrawn(&self, purpose: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT subject FROM consent_withdrawals WHERE purpose = $1 ORDER BY subject",
        )
        .bind(purpose)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}
