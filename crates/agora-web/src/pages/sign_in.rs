//! Signing in and out.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::Web;
use crate::layout::{FieldError, Frame, Section, error_summary, field_error, page};
use crate::session::{
    ClientAddress, MaybeViewer, SESSION_COOKIE, SIGN_IN_COOKIE, Viewer, cookie, random_token,
    same_secret, set_cookie,
};
use agora_node::SignIn as Outcome;

#[derive(Deserialize, Default)]
pub(crate) struct Next {
    next: Option<String>,
}

/// Only paths of this site are followed after signing in: a path of printable ASCII
/// without backslashes, starting with one `/`. Browsers drop tabs and line breaks from a
/// location and read `\\` as `/`, so `/<tab>/evil.example` would lead elsewhere; such
/// paths are refused, not cleaned.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.len() <= 2048
                && n.chars().all(|c| c.is_ascii_graphic() && c != '\\') =>
        {
            n
        }
        _ => "/",
    }
}

fn render(
    web: &Web,
    token: &str,
    next: &str,
    username: &str,
    errors: &[FieldError],
) -> maud::Markup {
    let frame = Frame {
        organisation: web.node.name(),
        viewer: None,
        section: Section::None,
    };
    let title = if errors.is_empty() {
        "Sign in".to_owned()
    } else {
        "Error: Sign in".to_owned()
    };
    let body = html! {
        (error_summary(errors))
        h1 { "Sign in" }
        p.lead { "Sign in to the Agora node of " (web.node.name()) " with the user name and password your administrator gave you." }
        form method="post" action="/sign-in" novalidate {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="next" value=(next);
            @let e = field_error(errors, "username");
            div class={ "field" @if e.is_some() { " field--error" } } {
                label for="username" { "User name" }
                @if let Some(e) = e { p.field__error id="username-error" { span.visually-hidden { "Error: " } (e.message) } }
                input #username type="text" name="username" value=(username)
                    autocomplete="username" spellcheck="false" autocapitalize="none"
                    aria-describedby=[e.map(|_| "username-error")];
            }
            @let e = field_error(errors, "password");
            div class={ "field" @if e.is_some() { " field--error" } } {
                label for="password" { "Password" }
                @if let Some(e) = e { p.field__error id="password-error" { span.visually-hidden { "Error: " } (e.message) } }
                input #password type="password" name="password" autocomplete="current-password"
                    aria-describedby=[e.map(|_| "password-error")];
            }
            button.button type="submit" { "Sign in" }
        }
    };
    page(&frame, &title, body)
}

/// The sign-in form; signed-in people go straight on.
pub(crate) async fn form(
    State(web): State<Web>,
    MaybeViewer(viewer): MaybeViewer,
    Query(q): Query<Next>,
) -> Response {
    let next = safe_next(q.next.as_deref()).to_owned();
    if viewer.is_some() {
        return Redirect::to(&next).into_response();
    }
    let token = random_token();
    (
        [(
            header::SET_COOKIE,
            set_cookie(&web, SIGN_IN_COOKIE, &token, 3600),
        )],
        Html(render(&web, &token, &next, "", &[]).into_string()),
    )
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct SignIn {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

pub(crate) async fn submit(
    State(web): State<Web>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    // The form must come from our own page (double-submit token, SameSite=Strict cookie).
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    if expected.is_empty() || !same_secret(expected, &f.csrf) {
        return crate::pages::problem(
            StatusCode::FORBIDDEN,
            "The form has expired",
            "Go back to the sign-in page, reload it and try again. Cookies must be allowed \
             for this site.",
        );
    }
    let next = safe_next(Some(&f.next)).to_owned();
    let username = f.username.trim().to_lowercase();
    let mut errors = Vec::new();
    if username.is_empty() {
        errors.push(FieldError {
            field: "username",
            message: "Enter your user name".into(),
        });
    }
    if f.password.is_empty() {
        errors.push(FieldError {
            field: "password",
            message: "Enter your password".into(),
        });
    }
    if errors.is_empty() {
        match web.node.sign_in(&username, &f.password, client).await {
            Ok(Outcome::SignedIn(user, session)) => {
                let max_age = (session.expires_at - chrono::Utc::now())
                    .num_seconds()
                    .max(0);
                // A page the role may not open (an auditor sent from a page of data) would
                // only be refused: the start page instead, which knows where they belong.
                let next = if crate::session::role_may_open(user.role, &next) {
                    next.as_str()
                } else {
                    "/"
                };
                let mut response = Redirect::to(next).into_response();
                let h = response.headers_mut();
                h.append(
                    header::SET_COOKIE,
                    set_cookie(&web, SESSION_COOKIE, &session.secret, max_age)
                        .parse()
                        .expect("cookie text is a valid header"),
                );
                h.append(
                    header::SET_COOKIE,
                    set_cookie(&web, SIGN_IN_COOKIE, "", 0)
                        .parse()
                        .expect("cookie text is a valid header"),
                );
                return response;
            }
            Ok(Outcome::Refused) => errors.push(FieldError {
                field: "username",
                message: "The user name or password is not right".into(),
            }),
            Ok(Outcome::Throttled(wait)) => {
                let message = format!(
                    "Too many attempts to sign in have failed. Wait {} and try again",
                    in_words(wait)
                );
                let errors = [FieldError {
                    field: "username",
                    message,
                }];
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, wait.as_secs().max(1).to_string())],
                    Html(render(&web, &f.csrf, &next, &username, &errors).into_string()),
                )
                    .into_response();
            }
            Ok(Outcome::Busy) => {
                let mut r = crate::pages::problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sorry, the service is busy",
                    "Too many people are signing in just now. Try again in a few seconds.",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                return r;
            }
            Err(e) => {
                tracing::error!(error = %e, "sign-in failed");
                return crate::pages::problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sorry, there is a problem with the service",
                    "You cannot sign in just now. Try again in a few minutes.",
                );
            }
        }
    }
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Html(render(&web, &f.csrf, &next, &username, &errors).into_string()),
    )
        .into_response()
}

/// A wait in words: seconds up to two minutes, minutes after.
fn in_words(wait: std::time::Duration) -> String {
    let secs = wait.as_secs().max(1);
    match secs {
        1 => "1 second".into(),
        2..=119 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

#[derive(Deserialize)]
pub(crate) struct SignOut {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn sign_out(
    State(web): State<Web>,
    viewer: Viewer,
    Form(f): Form<SignOut>,
) -> Response {
    if let Some(r) = viewer.csrf_refusal(&f.csrf) {
        return r;
    }
    if let Err(e) = web.node.sign_out(&viewer.secret).await {
        tracing::error!(error = %e, "cannot end a web session");
    }
    (
        [(header::SET_COOKIE, set_cookie(&web, SESSION_COOKIE, "", 0))],
        Redirect::to("/sign-in"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next(Some("/requests")), "/requests");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
        // Browsers drop tabs and line breaks, leaving `//evil.example/`.
        for bad in [
            "/\t/evil.example/",
            "/\n/evil.example",
            "/\r//evil.example",
            "/ /x",
            "/\u{a0}/x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(
            safe_next(Some("/requests?state=open#x")),
            "/requests?state=open#x"
        );
    }
}
