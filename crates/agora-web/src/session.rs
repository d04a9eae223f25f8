//! Sessions in cookies, the signed-in viewer, and CSRF tokens.

use agora_node::{ApiRole, Caller, WebSession};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::Web;

/// The session cookie: a random secret, `HttpOnly`, `SameSite=Strict`.
pub const SESSION_COOKIE: &str = "agora_session";
/// Before signing in: the double-submit token of the sign-in form.
pub(crate) const SIGN_IN_COOKIE: &str = "agora_sign_in";

/// The value of a cookie of the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for one of our cookies; `max_age` 0 deletes it.
pub(crate) fn set_cookie(web: &Web, name: &str, value: &str, max_age: i64) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if web.config.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    )
}

/// A random token (256 bits, hex).
pub(crate) fn random_token() -> String {
    agora_trust::secrets::random_hex()
}

/// Compares two secrets in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    agora_trust::secrets::same_secret(a, b)
}

/// The client's address as the connection shows it (never from headers, which the client
/// writes); `None` where the server was not given connection details.
pub(crate) struct ClientAddress(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The signed-in person: their session and the caller the node's workflows see.
pub(crate) struct Viewer {
    pub session: WebSession,
    pub caller: Caller,
    pub secret: String,
}

impl Viewer {
    pub fn role(&self) -> ApiRole {
        self.session.user.role
    }

    pub fn can(&self, needed: ApiRole) -> bool {
        self.role().allows(needed)
    }

    /// Checks a form's CSRF token against the session's: the page that refuses the form,
    /// or `None` when it may go on.
    pub fn csrf_refusal(&self, sent: &str) -> Option<Response> {
        if same_secret(sent, &self.session.csrf_token) {
            None
        } else {
            Some(crate::pages::problem(
                axum::http::StatusCode::FORBIDDEN,
                "The form has expired",
                "This form was not sent from this session, or the session has changed. Go \
                 back, reload the page and try again.",
            ))
        }
    }
}

/// Where a request without a session is sent: the sign-in page, then back.
fn to_sign_in(parts: &Parts) -> Response {
    let back = parts
        .uri
        .path_and_query()
        .map(|p| p.path())
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or("/");
    Redirect::to(&format!("/sign-in?next={}", urlencode(back))).into_response()
}

pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl FromRequestParts<Web> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_sign_in(parts));
        };
        match web.node.web_session(secret).await {
            Ok(Some((session, _))) if !role_may_open(session.user.role, parts.uri.path()) => {
                Err(crate::pages::problem(
                    axum::http::StatusCode::FORBIDDEN,
                    "Auditors read records, not data",
                    "As an auditor you read this node's records of what happened — its \
                     transparency log, accesses, decisions and agreements — and none of its \
                     data. This page is not one of them.",
                ))
            }
            Ok(Some((session, caller))) => Ok(Viewer {
                session,
                caller,
                secret: secret.to_owned(),
            }),
            Ok(None) => Err(to_sign_in(parts)),
            Err(e) => {
                tracing::error!(error = %e, "cannot read a web session");
                Err(crate::pages::problem(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "Sorry, there is a problem with the service",
                    "The node cannot read its store just now. Try again in a few minutes.",
                ))
            }
        }
    }
}

/// Whether a signed-in person of `role` may open `path`: an auditor opens only the pages
/// of records (deny by default: a page added later is closed to auditors until it is
/// listed here); every other role, every page (each checks what it needs).
pub(crate) fn role_may_open(role: agora_node::ApiRole, path: &str) -> bool {
    if role != agora_node::ApiRole::Auditor {
        return true;
    }
    path == "/" || path == "/sign-out" || path == "/audit" || path.starts_with("/audit/")
}

/// The viewer when signed in, `None` otherwise (for pages anyone may see).
pub(crate) struct MaybeViewer(pub Option<Viewer>);

impl FromRequestParts<Web> for MaybeViewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        if cookie(&parts.headers, SESSION_COOKIE).is_none() {
            return Ok(MaybeViewer(None));
        }
        Ok(MaybeViewer(
            Viewer::from_request_parts(parts, web).await.ok(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "x_agora_session=no; agora_session=yes; other=1"
                .parse()
                .unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("yes"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn return_paths_are_encoded() {
        assert_eq!(urlencode("/catalog?q=a b"), "/catalog%3Fq%3Da%20b");
    }
}
