//! People who use the node through its web interface: user accounts with a role, password
//! sign-in and sessions. Passwords are hashed by agora-trust (Argon2id) on the hashing
//! workers (see `throttle`); the store keeps only hashes.

use std::net::IpAddr;
use std::time::Instant;

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

/// How a sign-in attempt ended.
#[derive(Debug)]
pub enum SignIn {
    /// The user signed in: a new session.
    SignedIn(UserInfo, NewSession),
    /// The name or password is wrong, or the user is disabled (the three are not told
    /// apart).
    Refused,
    /// Too many recent failures for this account or from this address: try again after
    /// the wait (the password was not checked).
    Throttled(std::time::Duration),
    /// Too many attempts are waiting to be checked: try again in a few seconds.
    Busy,
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
    /// Adds a user who signs in to the web interface with `password`; `by` is who added
    /// them (the log entry names them).
    pub async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        role: ApiRole,
        password: &str,
        by: &crate::Accessor,
    ) -> Result<UserInfo, NodeError> {
        check_username(username)?;
        let display_name = display_name.trim();
        if display_name.is_empty() || display_name.chars().count() > 120 {
            return Err(NodeError::BadUser(
                "the display name must have 1 to 120 characters".into(),
            ));
        }
        let hash = self.hash(password).await?;
        let user = self
            .store()
            .create_user(username, display_name, role, &hash, &by.principal)
            .await?;
        tracing::info!(user = %user.username, role = %user.role, "user created");
        Ok(user)
    }

    pub async fn users(&self) -> Result<Vec<UserInfo>, NodeError> {
        Ok(self.store().users().await?)
    }

    /// Sets a new password for a user; their sessions end.
    pub async fn set_password(
        &self,
        username: &str,
        password: &str,
        by: &crate::Accessor,
    ) -> Result<(), NodeError> {
        let hash = self.hash(password).await?;
        self.store()
            .set_password(username, &hash, &by.principal)
            .await?;
        tracing::info!(user = %username, "password changed");
        Ok(())
    }

    /// Disables a user; their sessions end.
    pub async fn disable_user(
        &self,
        username: &str,
        by: &crate::Accessor,
    ) -> Result<(), NodeError> {
        self.store().disable_user(username, &by.principal).await?;
        tracing::info!(user = %username, "user disabled");
        Ok(())
    }

    /// A password's hash, made on the hashing workers.
    async fn hash(&self, password: &str) -> Result<String, NodeError> {
        let password = password.to_owned();
        let hashed = self
            .inner
            .hashing
            .run(move || agora_trust::password::hash_password(&password))
            .await
            .map_err(|_| NodeError::Busy)?;
        Ok(hashed?)
    }

    /// Checks a user's password and starts a session, unless recent failures for the
    /// account or from `client` make the attempt wait. Every failure is recorded as a
    /// security event.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<SignIn, NodeError> {
        let address = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let throttle = &self.inner.throttle;
        if let Err(wait) = throttle.begin(username, client, Instant::now()) {
            self.security_event(
                "sign_in_throttled",
                username,
                &address,
                &format!("asked to wait {} s", wait.as_secs().max(1)),
            )
            .await;
            return Ok(SignIn::Throttled(wait));
        }
        let found = self.store().user(username).await?;
        let password = password.to_owned();
        let checked = match found {
            None => {
                self.inner
                    .hashing
                    .run(move || {
                        agora_trust::password::verify_nobody(&password);
                        None
                    })
                    .await
            }
            Some((user, hash)) => {
                self.inner
                    .hashing
                    .run(move || {
                        let ok = agora_trust::password::verify_password(&password, &hash);
                        Some((user, ok))
                    })
                    .await
            }
        };
        let Ok(checked) = checked else {
            self.security_event(
                "sign_in_busy",
                username,
                &address,
                "too many attempts waiting to be checked",
            )
            .await;
            return Ok(SignIn::Busy);
        };
        let reason = match &checked {
            None => Some("unknown user"),
            Some((_, false)) => Some("wrong password"),
            Some((u, true)) if u.disabled_at.is_some() => Some("disabled"),
            Some(_) => None,
        };
        if let Some(reason) = reason {
            tracing::info!(user = %username, client = %address, outcome = reason, "sign-in refused");
            self.security_event("sign_in_refused", username, &address, reason)
                .await;
            return Ok(SignIn::Refused);
        }
        let (user, _) = checked.expect("a known user");
        throttle.succeeded(username, client, Instant::now());
        let session = self
            .store()
            .create_session(&user.id, Utc::now() + Duration::hours(SESSION_HOURS))
            .await?;
        tracing::info!(user = %user.username, role = %user.role, "signed in");
        Ok(SignIn::SignedIn(user, session))
    }

    /// Records a security event; a store that cannot record it is logged, not fatal to
    /// the refusal it records.
    pub(crate) async fn security_event(
        &self,
        kind: &str,
        account: &str,
        client: &str,
        detail: &str,
    ) {
        if let Err(e) = self
            .store()
            .record_security_event(kind, account, client, detail)
            .await
        {
            tracing::error!(error = %e, kind, "cannot record a security event");
        }
    }

    /// The most recent security events, newest first.
    pub async fn security_events(
        &self,
        limit: u32,
    ) -> Result<Vec<agora_store::SecurityEvent>, NodeError> {
        Ok(self.store().security_events(limit).await?)
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
