//! API bearer tokens. The secret is shown once at creation; only its SHA-256 is stored.

use agora_model::ApiRole;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::{StoreError, now, parse_ts};

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub label: String,
    pub role: ApiRole,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A freshly created token with its secret, which is not stored and cannot be shown again.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub info: TokenInfo,
    pub secret: String,
}

const PREFIX: &str = "agora_";

pub(crate) fn hash(secret: &str) -> String {
    agora_trust::secrets::secret_digest(secret)
}

pub(crate) async fn insert_token(
    tx: &mut Transaction<'_, Any>,
    label: &str,
    role: ApiRole,
) -> Result<NewToken, StoreError> {
    let secret = format!("{PREFIX}{}", agora_trust::secrets::random_hex());
    let id = uuid::Uuid::now_v7().simple().to_string()[..16].to_owned();
    let created = now();
    sqlx::query(
        "INSERT INTO api_tokens (id, label, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(label)
    .bind(role.as_str())
    .bind(hash(&secret))
    .bind(&created)
    .execute(&mut **tx)
    .await?;
    Ok(NewToken {
        info: TokenInfo {
            id,
            label: label.to_owned(),
            role,
            created_at: parse_ts(&created, "token")?,
            revoked_at: None,
            last_used_at: None,
        },
        secret,
    })
}

fn info_from_row(r: &AnyRow) -> Result<TokenInfo, StoreError> {
    let opt_ts = |s: Option<String>| s.map(|s| parse_ts(&s, "token")).transpose();
    Ok(TokenInfo {
        id: r.try_get(0)?,
        label: r.try_get(1)?,
        role: r
            .try_get::<String, _>(2)?
            .parse()
            .map_err(|m| StoreError::Corrupt {
                what: "token".into(),
                message: m,
            })?,
        created_at: parse_ts(&r.try_get::<String, _>(3)?, "token")?,
        revoked_at: opt_ts(r.try_get(4)?)?,
        last_used_at: opt_ts(r.try_get(5)?)?,
    })
}

const COLUMNS: &str = "id, label, role, created_at, revoked_at, last_used_at";

/// A valid token, read together with the catalog version at the same moment, so that a
/// request costs one store round trip before it can be answered.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub token: TokenInfo,
    /// The catalog version when the token was checked.
    pub catalog_version: i64,
}

pub(crate) async fn authenticate(
    pool: &AnyPool,
    secret: &str,
) -> Result<Option<Authenticated>, StoreError> {
    if !secret.starts_with(PREFIX) || secret.len() > 128 {
        return Ok(None);
    }
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, COALESCE((SELECT catalog_version FROM node WHERE id = 1), 0) \
         FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
    )))
    .bind(hash(secret))
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let info = info_from_row(&row)?;
    let catalog_version: i64 = row.try_get(6)?;
    // Record use at most once a minute, to keep authentication cheap.
    let stale = info
        .last_used_at
        .is_none_or(|t| Utc::now() - t > chrono::Duration::minutes(1));
    if stale {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now())
            .bind(&info.id)
            .execute(pool)
            .await?;
    }
    Ok(Some(Authenticated {
        token: info,
        catalog_version,
    }))
}

pub(crate) async fn list(pool: &AnyPool) -> Result<Vec<TokenInfo>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_tokens ORDER BY created_at, id"
    )))
    .fetch_all(pool)
    .await?;
    rows.iter().map(info_from_row).collect()
}

pub(crate) async fn revoke(pool: &AnyPool, id: &str) -> Result<TokenInfo, StoreError> {
    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now())
        .bind(id)
        .execute(pool)
        .await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(r) => info_from_row(&r),
        None => Err(StoreError::TokenNotFound(id.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order() {
        assert!(ApiRole::Admin.allows(ApiRole::Steward));
        assert!(ApiRole::Steward.allows(ApiRole::Analyst));
        assert!(!ApiRole::Analyst.allows(ApiRole::Steward));
        assert_eq!("steward".parse::<ApiRole>().unwrap(), ApiRole::Steward);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(hash("agora_x").len(), 64);
        assert_ne!(hash("agora_x"), hash("agora_y"));
    }
}
