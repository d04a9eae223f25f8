//! Residents signing in to the citizen portal: one-time codes (kept as digests, valid for
//! minutes, used once — the compare-and-set on `used_at` makes a code good for one session
//! however many requests race with it) and residents' sessions (kept as digests).

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::tokens::hash;
use crate::{Store, StoreError, now, parse_ts, ts};

/// What a resident's session cookie holds before its random part.
const CITIZEN_SESSION_PREFIX: &str = "agora_c_";

/// A resident's session, as a cookie names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitizenSession {
    pub person_id: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// The digest a code is kept under: of the code with the resident it was issued for, so a
/// code is good for that resident only.
fn code_hash(person_id: &str, code: &str) -> String {
    hash(&format!("{person_id}\n{code}"))
}

impl Store {
    /// Keeps a one-time code for `person_id` until `expires_at`; codes that ended are
    /// cleared on the way.
    pub async fn put_citizen_code(
        &self,
        person_id: &str,
        code: &str,
        issued_by: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM citizen_codes WHERE expires_at < $1")
            .bind(now())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO citizen_codes (code_hash, person_id, issued_by, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(code_hash(person_id, code))
        .bind(person_id)
        .bind(issued_by)
        .bind(now())
        .bind(ts(expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Uses the code `code` of `person_id`: true once, when it was issued for them, has not
    /// expired and was not used before.
    pub async fn use_citizen_code(&self, person_id: &str, code: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE citizen_codes SET used_at = $1 \
             WHERE code_hash = $2 AND person_id = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now())
        .bind(code_hash(person_id, code))
        .bind(person_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Starts a resident's session; sessions that ended are cleared on the way. Returns the
    /// cookie's secret and the session.
    pub async fn create_citizen_session(
        &self,
        person_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(String, CitizenSession), StoreError> {
        let secret = format!(
            "{CITIZEN_SESSION_PREFIX}{}",
            agora_trust::secrets::random_hex()
        );
        let csrf_token = agora_trust::secrets::random_hex();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM citizen_sessions WHERE expires_at < $1")
            .bind(now())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO citizen_sessions (id_hash, person_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash(&secret))
        .bind(person_id)
        .bind(&csrf_token)
        .bind(now())
        .bind(ts(expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((
            secret,
            CitizenSession {
                person_id: person_id.to_owned(),
                csrf_token,
                expires_at,
            },
        ))
    }

    /// The resident's session a cookie secret names, if it is in force.
    pub async fn citizen_session(
        &self,
        secret: &str,
    ) -> Result<Option<CitizenSession>, StoreError> {
        if !secret.starts_with(CITIZEN_SESSION_PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT person_id, csrf_token, expires_at FROM citizen_sessions \
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(hash(secret))
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(CitizenSession {
            person_id: r.try_get(0)?,
            csrf_token: r.try_get(1)?,
            expires_at: parse_ts(&r.try_get::<String, _>(2)?, "citizen session")?,
        }))
    }

    /// Ends a resident's session (signing out).
    pub async fn end_citizen_session(&self, secret: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM citizen_sessions WHERE id_hash = $1")
            .bind(hash(secret))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
