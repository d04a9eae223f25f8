//! The citizen portal: a resident signs in with their national identifier and a one-time
//! code, and sees, for every member of the ecosystem, every access to their records in
//! that member's log — each proven in the member's witnessed log, and the list proven
//! complete up to that checkpoint (see `agora_node::citizen`).
//!
//! Whose history is shown comes from the resident's session alone: no identifier travels
//! in a URL or a form after signing in, so changing one asks for nobody else's.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use std::collections::BTreeMap;

use agora_model::AuditKind;
use agora_node::citizen::{CitizenHistory, MemberHistory};
use agora_node::residents::CitizenSignIn;
use chrono::{DateTime, Utc};

use crate::Web;
use crate::layout::{FieldError, Frame, Section, error_summary, field_error, number, page};
use crate::session::{
    ClientAddress, SIGN_IN_COOKIE, cookie, random_token, same_secret, set_cookie,
};

/// A resident's session cookie (apart from the staff's).
pub(crate) const CITIZEN_COOKIE: &str = "agora_citizen";

fn frame(web: &Web) -> Frame<'_> {
    Frame {
        organisation: web.node.name(),
        viewer: None,
        section: Section::None,
    }
}

fn render_sign_in(web: &Web, token: &str, person_id: &str, errors: &[FieldError]) -> Markup {
    let title = if errors.is_empty() {
        "Sign in to see who used your data"
    } else {
        "Error: Sign in to see who used your data"
    };
    let body = html! {
        (error_summary(errors))
        h1 { "Sign in to see who used your data" }
        p.lead { "See which organisations read records about you, when and why, with proof that the list is complete." }
        form method="post" action="/citizen/sign-in" novalidate {
            input type="hidden" name="csrf" value=(token);
            @let e = field_error(errors, "person_id");
            div class={ "field" @if e.is_some() { " field--error" } } {
                label for="person_id" { "National identification number" }
                p.hint id="person_id-hint" { "11 digits, as on your identity card." }
                @if let Some(e) = e { p.field__error id="person_id-error" { span.visually-hidden { "Error: " } (e.message) } }
                input #person_id type="text" name="person_id" value=(person_id) inputmode="numeric"
                    autocomplete="off" spellcheck="false"
                    aria-describedby={ "person_id-hint" @if e.is_some() { " person_id-error" } };
            }
            @let e = field_error(errors, "code");
            div class={ "field" @if e.is_some() { " field--error" } } {
                label for="code" { "One-time code" }
                p.hint id="code-hint" { "The 8 digits you were given. A code works once, for 10 minutes." }
                @if let Some(e) = e { p.field__error id="code-error" { span.visually-hidden { "Error: " } (e.message) } }
                input #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code"
                    aria-describedby={ "code-hint" @if e.is_some() { " code-error" } };
            }
            button.button type="submit" { "Sign in" }
        }
    };
    page(&frame(web), title, body)
}

/// The sign-in form of the portal.
pub(crate) async fn sign_in_form(State(web): State<Web>) -> Response {
    let token = random_token();
    (
        [(
            header::SET_COOKIE,
            set_cookie(&web, SIGN_IN_COOKIE, &token, 3600),
        )],
        Html(render_sign_in(&web, &token, "", &[]).into_string()),
    )
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    person_id: String,
    #[serde(default)]
    code: String,
}

fn expired_form() -> Response {
    crate::pages::problem(
        StatusCode::FORBIDDEN,
        "The form has expired",
        "Go back to the sign-in page, reload it and try again. Cookies must be allowed for \
         this site.",
    )
}

pub(crate) async fn sign_in(
    State(web): State<Web>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Response {
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    if expected.is_empty() || !same_secret(expected, &f.csrf) {
        return expired_form();
    }
    let person_id: String = f.person_id.chars().filter(|c| !c.is_whitespace()).collect();
    let code: String = f.code.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut errors = Vec::new();
    if agora_node::residents::check_person_id(&person_id).is_err() {
        errors.push(FieldError {
            field: "person_id",
            message: "Enter your national identification number: 11 digits".into(),
        });
    }
    if code.len() != 8 {
        errors.push(FieldError {
            field: "code",
            message: "Enter the 8 digits of your one-time code".into(),
        });
    }
    let refuse = |status: StatusCode, errors: &[FieldError]| {
        (
            status,
            Html(render_sign_in(&web, &f.csrf, &person_id, errors).into_string()),
        )
            .into_response()
    };
    if !errors.is_empty() {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, &errors);
    }
    match web.node.citizen_sign_in(&person_id, &code, client).await {
        Ok(CitizenSignIn::SignedIn(secret, session)) => {
            let max_age = (session.expires_at - chrono::Utc::now())
                .num_seconds()
                .max(0);
            let mut response = Redirect::to("/citizen").into_response();
            let h = response.headers_mut();
            for c in [
                set_cookie(&web, CITIZEN_COOKIE, &secret, max_age),
                set_cookie(&web, SIGN_IN_COOKIE, "", 0),
            ] {
                h.append(
                    header::SET_COOKIE,
                    c.parse().expect("cookie text is a valid header"),
                );
            }
            response
        }
        Ok(CitizenSignIn::Refused) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            &[FieldError {
                field: "code",
                message: "The number or the code is not right, or the code was used or has \
                          expired. Ask for a new code"
                    .into(),
            }],
        ),
        Ok(CitizenSignIn::Throttled(wait)) => {
            let mut r = refuse(
                StatusCode::TOO_MANY_REQUESTS,
                &[FieldError {
                    field: "code",
                    message: format!(
                        "Too many attempts have failed. Wait {} seconds and try again",
                        wait.as_secs().max(1)
                    ),
                }],
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                wait.as_secs().max(1).to_string().parse().expect("digits"),
            );
            r
        }
        Err(e) => crate::pages::node_error(&e),
    }
}

/// The resident's session, from their cookie.
async fn session(web: &Web, headers: &HeaderMap) -> Option<(String, agora_node::CitizenSession)> {
    let secret = cookie(headers, CITIZEN_COOKIE)?.to_owned();
    match web.node.citizen_session(&secret).await {
        Ok(Some(s)) => Some((secret, s)),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "cannot read a resident's session");
            None
        }
    }
}

/// The resident's history, or the sign-in page.
pub(crate) async fn history(State(web): State<Web>, headers: HeaderMap) -> Response {
    let Some((_, s)) = session(&web, &headers).await else {
        return Redirect::to("/citizen/sign-in").into_response();
    };
    let history = match web.node.citizen_history(&s.person_id).await {
        Ok(h) => h,
        Err(e) => return crate::pages::node_error(&e),
    };
    let tail = &s.person_id[s.person_id.len().saturating_sub(3)..];
    let body = html! {
        h1 { "Who used your data" }
        p.lead { "For each organisation in the ecosystem: every time another organisation read records about you, checked against the organisation's tamper-evident log." }
        p { "Signed in with the identification number ending in " (tail) ". "
            form.inline-form method="post" action="/citizen/sign-out" {
                input type="hidden" name="csrf" value=(s.csrf_token);
                button.button--secondary type="submit" { "Sign out" }
            }
        }
        (summary(&history))
        (consent_section(&history, &s.csrf_token))
        @for m in &history.members { (member_section(m, &history)) }
    };
    Html(page(&frame(&web), "Who used your data", body).into_string()).into_response()
}

fn summary(history: &CitizenHistory) -> Markup {
    let checked = history.members.iter().filter(|m| m.outcome.is_ok()).count();
    let accesses: usize = history
        .members
        .iter()
        .filter_map(|m| m.outcome.as_ref().ok())
        .map(|h| h.accesses.len())
        .sum();
    html! {
        div.notice {
            p { (if accesses == 1 { "1 access".to_owned() } else { format!("{} accesses", number(accesses as u64)) }) " to records about you, in the logs of "
                (checked) " of " (history.members.len()) " organisations, each proven complete." }
        }
    }
}

/// The purposes the resident's records are used for on the basis of their consent (from
/// the accesses' legal bases), with their latest consent change, if any.
fn consents(history: &CitizenHistory) -> BTreeMap<String, Option<(DateTime<Utc>, bool)>> {
    let mut out: BTreeMap<String, Option<(DateTime<Utc>, bool)>> = BTreeMap::new();
    for a in history
        .members
        .iter()
        .filter_map(|m| m.outcome.as_ref().ok())
        .flat_map(|h| h.accesses.iter())
    {
        let Some(purpose) = a.entry.purpose.clone() else {
            continue;
        };
        if a.entry.kind == AuditKind::Consent {
            let change = (a.entry.at, a.entry.outcome == "withdrawn");
            let latest = out.entry(purpose).or_insert(None);
            if latest.is_none_or(|(at, _)| at < change.0) {
                *latest = Some(change);
            }
        } else if a
            .entry
            .detail
            .get("legal_basis")
            .and_then(|v| v.as_str())
            .is_some_and(|b| b.contains("consent"))
        {
            out.entry(purpose).or_insert(None);
        }
    }
    out
}

fn consent_section(history: &CitizenHistory, csrf: &str) -> Markup {
    let consents = consents(history);
    html! {
        h2 { "Your consent" }
        @if consents.is_empty() {
            p { "No organisation uses records about you on the basis of your consent." }
        } @else {
            p { "These uses of records about you rely on your consent. You can withdraw it at any time: every organisation that holds records about you stops using them for that purpose before its next query." }
            dl.summary {
                @for (purpose, latest) in &consents {
                    div {
                        dt { (purpose.replace('_', " ")) }
                        dd {
                            @match latest {
                                Some((at, true)) => { "You withdrew your consent on " (at.format("%-d %B %Y at %H:%M UTC")) "." }
                                Some((at, false)) => { "You gave your consent again on " (at.format("%-d %B %Y at %H:%M UTC")) "." }
                                None => { "You have not withdrawn your consent." }
                            }
                        }
                        dd {
                            form.inline-form method="post" action="/citizen/consent" {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="purpose" value=(purpose);
                                @if matches!(latest, Some((_, true))) {
                                    input type="hidden" name="action" value="grant";
                                    button.button--secondary type="submit" { "Give consent for " (purpose.replace('_', " ")) " again" }
                                } @else {
                                    input type="hidden" name="action" value="withdraw";
                                    button.button--warning type="submit" { "Withdraw consent for " (purpose.replace('_', " ")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ConsentForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    action: String,
}

/// The resident withdraws or gives again their consent for a purpose, at every member.
pub(crate) async fn consent(
    State(web): State<Web>,
    headers: HeaderMap,
    Form(f): Form<ConsentForm>,
) -> Response {
    let Some((_, s)) = session(&web, &headers).await else {
        return Redirect::to("/citizen/sign-in").into_response();
    };
    if !same_secret(&s.csrf_token, &f.csrf) {
        return expired_form();
    }
    let withdrawn = match f.action.as_str() {
        "withdraw" => true,
        "grant" => false,
        _ => {
            return crate::pages::problem(
                StatusCode::BAD_REQUEST,
                "That did not work",
                "Choose to withdraw or to give your consent, from your page.",
            );
        }
    };
    let answers = match web
        .node
        .citizen_consent(&s.person_id, &f.purpose, withdrawn)
        .await
    {
        Ok(a) => a,
        Err(e) => return crate::pages::node_error(&e),
    };
    let title = if withdrawn {
        "Consent withdrawn"
    } else {
        "Consent given again"
    };
    let purpose = f.purpose.replace('_', " ");
    let body = html! {
        div.notice.notice--success role="status" {
            h1 { (title) }
            p { "For " (purpose) ", at every organisation that holds records about you." }
        }
        ul {
            @for a in &answers {
                li { strong { (a.name) } ": "
                    @match &a.outcome {
                        Ok(true) => { "done; it applies from its next query." }
                        Ok(false) => { "holds no records about you." }
                        Err(e) => { "could not be asked (" (e) "). Try again later." }
                    }
                }
            }
        }
        p { a href="/citizen" { "Back to who used your data" } }
    };
    Html(page(&frame(&web), title, body).into_string()).into_response()
}

fn member_section(m: &MemberHistory, all: &CitizenHistory) -> Markup {
    let name_of = |id: &str| {
        all.members
            .iter()
            .find(|x| x.member.as_str() == id)
            .map_or(id.to_owned(), |x| x.name.clone())
    };
    html! {
        section aria-labelledby=(format!("m-{}", m.member)) {
            h2 id=(format!("m-{}", m.member)) { (m.name) }
            @match &m.holdings {
                Ok(titles) if titles.is_empty() => p { "Holds no records about you." }
                Ok(titles) => p { "Holds records about you in: " (titles.join(", ")) "." }
                Err(_) => {}
            }
            @match &m.outcome {
                Ok(h) => {
                    p { "Checked: complete up to entry " (h.size) " of its log, witnessed by the ecosystem's authority on "
                        (h.witnessed_at.format("%-d %B %Y at %H:%M:%S UTC")) "." }
                    @if h.accesses.is_empty() {
                        p { "No organisation read records about you from " (m.name) "." }
                    } @else {
                        div.table-wrap {
                            table {
                                caption.visually-hidden { "Accesses to your records at " (m.name) }
                                thead { tr {
                                    th scope="col" { "When" }
                                    th scope="col" { "What" }
                                    th scope="col" { "Who" }
                                    th scope="col" { "Purpose" }
                                    th scope="col" { "Legal basis" }
                                    th scope="col" { "Agreement" }
                                    th scope="col" { "Log entry" }
                                } }
                                tbody {
                                    @for a in &h.accesses {
                                        tr {
                                            td { (a.entry.at.format("%-d %b %Y %H:%M")) }
                                            td { @if a.entry.kind == AuditKind::Consent { "Your consent " (a.entry.outcome) } @else { "Read your records" } }
                                            td { (a.entry.peer.as_deref().map(&name_of).unwrap_or_default()) }
                                            td { (a.entry.purpose.as_deref().unwrap_or("")) }
                                            td { (a.entry.detail.get("legal_basis").and_then(|v| v.as_str()).unwrap_or("")) }
                                            td { code { (a.entry.agreement.as_deref().unwrap_or("")) } }
                                            td { (a.index) " (proven)" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                Err(why) => {
                    div.error-summary role="region" aria-label=(format!("{} could not be checked", m.name)) {
                        p { strong { "This could not be checked. " } (why) }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn sign_out(
    State(web): State<Web>,
    headers: HeaderMap,
    Form(f): Form<SignOutForm>,
) -> Response {
    let Some((secret, s)) = session(&web, &headers).await else {
        return Redirect::to("/citizen/sign-in").into_response();
    };
    if !same_secret(&s.csrf_token, &f.csrf) {
        return expired_form();
    }
    if let Err(e) = web.node.citizen_sign_out(&secret).await {
        tracing::error!(error = %e, "cannot end a resident's session");
    }
    (
        [(header::SET_COOKIE, set_cookie(&web, CITIZEN_COOKIE, "", 0))],
        Redirect::to("/citizen/sign-in"),
    )
        .into_response()
}
