//! People who use the node through its web interface: user accounts with a role, password
//! sign-in and sessions. Passwords are hashed by agora-trust (Argon2id) on a blocking
//! thread; the store keeps only hashes.

use agora_store::{NewSession, UserInfo, WebSession};
use chrono::{Duration, Utc};

use crate::{ApiRole, Caller, Node, NodeError, TokenInfo};

/// How long a web session lasts without signing in again.
pub const SESSION_HOURS: i64 = 8;

/// Checks a user name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn check_username(name: &str) -> Result<(), NodeError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(NodeError::BadUser(format!(
            "the user name {name:?} is not valid: use 1 to 64 lower-case letters, digits, \
             dots, underscores and hyphens, starting with a letter or digit"
        )))
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("password hashing does not panic")
}

impl Caller {
    /// The caller a signed-in web session acts as: the user's role, the session's catalog
    /// version.
    pub fn for_session(session: &WebSession) -> Caller {
        Caller {
            token: TokenInfo {
                id: format!("user:{}", session.user.id),
                label: session.user.username.clone(),
                role: session.user.role,
                created_at: session.user.created_at,
                revoked_at: None,
                last_used_at: None,
            },
            catalog_version: session.catalog_version,
        }
    }
}

impl Node {
    /// Adds a user who signs in to the web interface with `password`.
    pub async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        role: ApiRole,
        password: &str,
    ) -> Result<UserInfo, NodeError> {
        check_username(username)?;
        let display_name = display_name.trim();
        if display_name.is_empty() || display_name.chars().count() > 120 {
            return Err(NodeError::BadUser(
                "the display name must have 1 to 120 characters".into(),
            ));
        }
        let password = password.to_owned();
        let hash = blocking(move || agora_trust::password::hash_password(&password)).await?;
        let user = self
            .store()
            .create_user(username, display_name, role, &hash)
            .await?;
        tracing::info!(user = %user.username, role = %user.role, "user created");
        Ok(user)
    }

    pub async fn users(&self) -> Result<Vec<UserInfo>, NodeError> {
        Ok(self.store().users().await?)
    }

    /// Sets a new password for a user; their sessions end.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), NodeError> {
        let password = password.to_owned();
        let hash = blocking(move || agora_trust::password::hash_password(&password)).await?;
        self.store().set_password(username, &hash).await?;
        tracing::info!(user = %username, "password changed");
        Ok(())
    }

    /// Disables a user; their sessions end.
    pub async fn disable_user(&self, username: &str) -> Result<(), NodeError> {
        self.store().disable_user(username).await?;
        tracing::info!(user = %username, "user disabled");
        Ok(())
    }

    /// Checks a user's password and starts a session; `None` when the name or password is
    /// wrong or the user is disabled (the three are not told apart).
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<(UserInfo, NewSession)>, NodeError> {
        let found = self.store().user(username).await?;
        let password = password.to_owned();
        let Some((user, hash)) = found else {
            blocking(move || agora_trust::password::verify_nobody(&password)).await;
            tracing::info!(user = %username, outcome = "unknown user", "sign-in refused");
            return Ok(None);
        };
        let matches =
            blocking(move || agora_trust::password::verify_password(&password, &hash)).await;
        if !matches || user.disabled_at.is_some() {
            tracing::info!(user = %username, outcome = if matches { "disabled" } else { "wrong password" }, "sign-in refused");
            return Ok(None);
        }
        let session = self
            .store()
            .create_session(&user.id, Utc::now() + Duration::hours(SESSION_HOURS))
            .await?;
        tracing::info!(user = %user.username, role = %user.role, "signed in");
        Ok(Some((user, session)))
    }

    /// The session a cookie secret names, with the caller it acts as.
    pub async fn web_session(
        &self,
        secret: &str,
    ) -> Result<Option<(WebSession, Caller)>, NodeError> {
        Ok(self.store().session(secret).await?.map(|s| {
            let caller = Caller::for_session(&s);
            (s, caller)
        }))
    }

    pub async fn sign_out(&self, secret: &str) -> Result<(), NodeError> {
        Ok(self.store().end_session(secret).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_plain_lower_case_words() {
        for ok in ["steward", "a.b-c_d", "9lives"] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Steward", "-x", "a b", "ä", &"x".repeat(65)] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }
}
