//! People who sign in to the web interface, and their sessions.
//!
//! A user has a role (the API's: analyst, steward, admin) and a password kept only as the
//! hash its caller made (agora-trust's Argon2id). A session is a random secret given to the
//! browser once, in a cookie; the store keeps its SHA-256, the user, a CSRF token for the
//! session's forms, and when it ends.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use agora_model::ApiRole;

use crate::tokens::hash;
use crate::{Store, StoreError, now, parse_ts, ts};

/// A user as listed: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserInfo {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: ApiRole,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// A signed-in session, as a request finds it.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub user: UserInfo,
    /// The token every form of this session must send back.
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
    /// The catalog version when the session was read (as for API tokens).
    pub catalog_version: i64,
}

/// A new session: the cookie secret is shown once and not stored.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub secret: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

const SESSION_PREFIX: &str = "agora_s_";
const COLUMNS: &str = "u.id, u.username, u.display_name, u.role, u.created_at, u.disabled_at";

fn random_hex() -> String {
    agora_trust::secrets::random_hex()
}

fn user_from_row(r: &AnyRow) -> Result<UserInfo, StoreError> {
    let what = "user";
    Ok(UserInfo {
        id: r.try_get(0)?,
        username: r.try_get(1)?,
        display_name: r.try_get(2)?,
        role: r
            .try_get::<String, _>(3)?
            .parse()
            .map_err(|m| StoreError::Corrupt {
                what: what.into(),
                message: m,
            })?,
        created_at: parse_ts(&r.try_get::<String, _>(4)?, what)?,
        disabled_at: r
            .try_get::<Option<String>, _>(5)?
            .map(|s| parse_ts(&s, what))
            .transpose()?,
    })
}

impl Store {
    /// Adds a user; fails with [`StoreError::DuplicateUser`] when the name is taken.
    pub async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        role: ApiRole,
        password_hash: &str,
        actor: &str,
    ) -> Result<UserInfo, StoreError> {
        let id = uuid::Uuid::now_v7().simple().to_string()[..16].to_owned();
        let res = sqlx::query(
            "INSERT INTO users (id, username, display_name, role, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(username)
        .bind(display_name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now())
        .execute(&self.pool)
        .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::DuplicateUser(username.to_owned()));
            }
            other => {
                other?;
            }
        }
        let user = self
            .user(username)
            .await?
            .map(|(u, _)| u)
            .ok_or_else(|| StoreError::UserNotFound(username.to_owned()))?;
        self.log_user(username, "added", Some(role), actor).await?;
        Ok(user)
    }

    async fn log_user(
        &self,
        username: &str,
        what: &str,
        role: Option<ApiRole>,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut e = agora_model::AuditEntry::new(
            agora_model::AuditKind::User,
            format!("user:{username}"),
            actor,
        )
        .outcome(what);
        if let Some(r) = role {
            e = e.with("role", r.as_str());
        }
        self.log_one(e).await
    }

    /// A user and the password hash to check a sign-in against.
    pub async fn user(&self, username: &str) -> Result<Option<(UserInfo, String)>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, u.password_hash FROM users u WHERE u.username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.try_get(6)?)))
            .transpose()
    }

    pub async fn users(&self) -> Result<Vec<UserInfo>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM users u ORDER BY u.username"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Replaces a user's password hash and ends every session of the user.
    pub async fn set_password(
        &self,
        username: &str,
        password_hash: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        self.change_user(
            "UPDATE users SET password_hash = $1 WHERE username = $2",
            password_hash.to_owned(),
            username,
        )
        .await?;
        self.log_user(username, "password changed", None, actor)
            .await
    }

    /// Disables a user (who can no longer sign in) and ends their sessions.
    pub async fn disable_user(&self, username: &str, actor: &str) -> Result<(), StoreError> {
        self.change_user(
            "UPDATE users SET disabled_at = $1 WHERE username = $2 AND disabled_at IS NULL",
            now(),
            username,
        )
        .await?;
        self.log_user(username, "disabled", None, actor).await
    }

    /// Runs `update` (binding `value` and the user name) and ends the user's sessions, in
    /// one transaction; fails when no user was changed.
    async fn change_user(
        &self,
        update: &'static str,
        value: String,
        username: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(update)
            .bind(value)
            .bind(username)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UserNotFound(username.to_owned()));
        }
        sqlx::query(
            "DELETE FROM web_sessions WHERE user_id = (SELECT id FROM users WHERE username = $1)",
        )
        .bind(username)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts a session for a user (whose password the caller has checked); sessions that
    /// have ended are cleared on the way.
    pub async fn create_session(
        &self,
        user_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<NewSession, StoreError> {
        let secret = format!("{SESSION_PREFIX}{}", random_hex());
        let csrf_token = random_hex();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1")
            .bind(now())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash(&secret))
        .bind(user_id)
        .bind(&csrf_token)
        .bind(now())
        .bind(ts(expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(NewSession {
            secret,
            csrf_token,
            expires_at,
        })
    }

    /// The session a cookie secret names, if it is in force and its user is not disabled.
    pub async fn session(&self, secret: &str) -> Result<Option<WebSession>, StoreError> {
        if !secret.starts_with(SESSION_PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, s.csrf_token, s.expires_at, \
             COALESCE((SELECT catalog_version FROM node WHERE id = 1), 0) \
             FROM web_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL"
        )))
        .bind(hash(secret))
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(WebSession {
            user: user_from_row(&r)?,
            csrf_token: r.try_get(6)?,
            expires_at: parse_ts(&r.try_get::<String, _>(7)?, "session")?,
            catalog_version: r.try_get(8)?,
        }))
    }

    /// Ends a session (signing out).
    pub async fn end_session(&self, secret: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(hash(secret))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
