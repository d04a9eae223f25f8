//! Security events: refused, throttled and turned-away sign-ins, as the administrator and
//! auditors see them. Kept apart from the exchange log, which records data exchanges.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::{Store, StoreError, now, parse_ts};

/// One security event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecurityEvent {
    pub at: DateTime<Utc>,
    /// What happened, e.g. `sign_in_refused`, `sign_in_throttled`, `sign_in_busy`.
    pub kind: String,
    /// The account name given (it need not exist).
    pub account: String,
    /// The client's address, as the server saw it.
    pub client: String,
    pub detail: String,
}

/// Account names are kept at most this long (a name longer than any valid one is cut).
const MAX_ACCOUNT: usize = 80;

impl Store {
    /// Records a security event.
    pub async fn record_security_event(
        &self,
        kind: &str,
        account: &str,
        client: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let account: String = account.chars().take(MAX_ACCOUNT).collect();
        sqlx::query(
            "INSERT INTO security_events (id, at, kind, account, client, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid::Uuid::now_v7().simple().to_string())
        .bind(now())
        .bind(kind)
        .bind(account)
        .bind(client)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The most recent security events, newest first.
    pub async fn security_events(&self, limit: u32) -> Result<Vec<SecurityEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, kind, account, client, detail FROM security_events \
             ORDER BY at DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SecurityEvent {
                    at: parse_ts(&r.try_get::<String, _>(0)?, "security event")?,
                    kind: r.try_get(1)?,
                    account: r.try_get(2)?,
                    client: r.try_get(3)?,
                    detail: r.try_get(4)?,
                })
            })
            .collect()
    }
}
