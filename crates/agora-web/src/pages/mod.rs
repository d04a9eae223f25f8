//! The pages, one module per journey.

pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod catalog;
pub(crate) mod citizen;
pub(crate) mod publish;
pub(crate) mod query;
pub(crate) mod requests;
pub(crate) mod sign_in;
pub(crate) mod terms;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;

use crate::layout::{Frame, Section, page};
use crate::session::MaybeViewer;

/// The start page: the audit log for auditors, the catalog for others signed in, the
/// sign-in page for everyone else.
pub(crate) async fn home(MaybeViewer(viewer): MaybeViewer) -> Redirect {
    match viewer {
        Some(v) if v.role() == agora_node::ApiRole::Auditor => Redirect::to("/audit"),
        Some(_) => Redirect::to("/catalog"),
        None => Redirect::to("/sign-in"),
    }
}

/// A page that explains a problem in plain words.
pub(crate) fn problem(status: StatusCode, title: &str, text: &str) -> Response {
    let frame = Frame {
        organisation: "",
        viewer: None,
        section: Section::None,
    };
    let body = html! {
        h1 { (title) }
        p.lead { (text) }
        p { a href="/" { "Go to the start page" } }
    };
    (status, Html(page(&frame, title, body).into_string())).into_response()
}

/// The page number a form asked for (1 when none), if it can exist.
pub(crate) fn page_number(asked: Option<usize>) -> Option<usize> {
    let n = asked.unwrap_or(1);
    (1..=agora_model::PageRequest::MAX_PAGE as usize)
        .contains(&n)
        .then_some(n)
}

/// The page for a page number out of range.
pub(crate) fn no_such_page() -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "That page does not exist",
        &format!(
            "Page numbers go from 1 to {}. Go back and choose a page from the list.",
            agora_model::PageRequest::MAX_PAGE
        ),
    )
}

/// A page for an error of the node: the user's own mistakes in words, the rest as a
/// problem with the service (logged, details not shown).
pub(crate) fn node_error(e: &agora_node::NodeError) -> Response {
    if e.is_user_error() {
        problem(StatusCode::BAD_REQUEST, "That did not work", &e.to_string())
    } else {
        tracing::error!(error = %e, "web page failed");
        problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sorry, there is a problem with the service",
            "Try again later. The problem has been logged.",
        )
    }
}
