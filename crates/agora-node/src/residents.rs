//! Residents signing in to the citizen portal. In the demo and in this implementation a
//! resident proves who they are with their national identifier and a one-time code the
//! node's operator issued for that identifier (`agora citizen code`, or a counter clerk
//! through the same command): eight random digits, valid for
//! [`CODE_MINUTES`] minutes, used once, kept only as a digest. Attempts are throttled per
//! identifier and per client address, as passwords are. A national eID (OpenID Connect)
//! replaces the code by the identity provider's verified `sub` claim: the session below is
//! what either way yields (see `docs/citizens.md`).

use std::net::IpAddr;
use std::time::Instant;

use agora_store::CitizenSession;
use chrono::{DateTime, Duration, Utc};

use crate::access::Accessor;
use crate::{Node, NodeError};

/// How long a one-time code is valid.
pub const CODE_MINUTES: i64 = 10;

/// How long a resident's session lasts.
pub const CITIZEN_SESSION_MINUTES: i64 = 30;

/// Digits of a one-time code.
const CODE_DIGITS: usize = 8;

/// A code issued for a resident (shown once, to be handed to them).
#[derive(Debug, Clone)]
pub struct IssuedCode {
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

/// What came of a resident's attempt to sign in.
#[derive(Debug)]
pub enum CitizenSignIn {
    /// Signed in: the cookie's secret and the session.
    SignedIn(String, CitizenSession),
    /// The identifier or the code is wrong, expired or used (not told apart).
    Refused,
    /// Too many recent failures for this identifier or from this address.
    Throttled(std::time::Duration),
}

/// What the throttle and the security log call a resident (never the whole identifier).
fn account(person_id: &str) -> String {
    let tail = person_id
        .get(person_id.len().saturating_sub(3)..)
        .unwrap_or("");
    format!("resident …{tail}")
}

/// Checks the form of a national identifier (11 digits, the last a check digit).
pub fn check_person_id(person_id: &str) -> Result<(), NodeError> {
    if agora_model::person_id_is_valid(person_id) {
        Ok(())
    } else {
        Err(NodeError::BadInput(
            "a national identifier has 11 digits, the last a check digit".into(),
        ))
    }
}

impl Node {
    /// Issues a one-time code for the resident with identifier `person_id`.
    pub async fn issue_citizen_code(
        &self,
        person_id: &str,
        actor: &Accessor,
    ) -> Result<IssuedCode, NodeError> {
        check_person_id(person_id)?;
        let code = agora_trust::secrets::random_digits(CODE_DIGITS);
        let expires_at = Utc::now() + Duration::minutes(CODE_MINUTES);
        self.store()
            .put_citizen_code(person_id, &code, &actor.principal, expires_at)
            .await?;
        tracing::info!(by = %actor.principal, "one-time code issued for a resident");
        Ok(IssuedCode { code, expires_at })
    }

    /// Signs a resident in with their identifier and a one-time code.
    pub async fn citizen_sign_in(
        &self,
        person_id: &str,
        code: &str,
        client: Option<IpAddr>,
    ) -> Result<CitizenSignIn, NodeError> {
        let name = account(person_id);
        let address = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let throttle = &self.inner.throttle;
        let key = format!("citizen:{person_id}");
        if let Err(wait) = throttle.begin(&key, client, Instant::now()) {
            self.security_event(
                "citizen_sign_in_throttled",
                &name,
                &address,
                "asked to wait",
            )
            .await;
            return Ok(CitizenSignIn::Throttled(wait));
        }
        let well_formed = check_person_id(person_id).is_ok()
            && code.len() == CODE_DIGITS
            && code.bytes().all(|b| b.is_ascii_digit());
        if !well_formed || !self.store().use_citizen_code(person_id, code).await? {
            self.security_event("citizen_sign_in_refused", &name, &address, "wrong code")
                .await;
            return Ok(CitizenSignIn::Refused);
        }
        throttle.succeeded(&key, client, Instant::now());
        let (secret, session) = self
            .store()
            .create_citizen_session(
                person_id,
                Utc::now() + Duration::minutes(CITIZEN_SESSION_MINUTES),
            )
            .await?;
        tracing::info!(resident = %name, "resident signed in");
        Ok(CitizenSignIn::SignedIn(secret, session))
    }

    /// The resident's session a cookie secret names, if it is in force.
    pub async fn citizen_session(&self, secret: &str) -> Result<Option<CitizenSession>, NodeError> {
        Ok(self.store().citizen_session(secret).await?)
    }

    /// Ends a resident's session.
    pub async fn citizen_sign_out(&self, secret: &str) -> Result<(), NodeError> {
        Ok(self.store().end_citizen_session(secret).await?)
    }
}
