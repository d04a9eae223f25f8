//! Answers to a negotiation from its page: approve, accept, reject, withdraw or revoke,
//! and the forms for other terms (the owner's offer, the consumer's counter-request).

use agora_model::{Negotiation, NegotiationError, NegotiationRole, NegotiationState};
use agora_node::{ApiRole, NodeError};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::detail::render_detail;
use super::*;
use crate::Web;
use crate::layout::{FieldError, error_summary, form_page};
use crate::pages::terms::{self, TermsInput};
use crate::session::{Viewer, urlencode};

#[derive(Deserialize, Default)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    side: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    reason: String,
    /// Approve: replace the agreement in force for the same product and purpose.
    #[serde(default)]
    supersede: String,
}

/// Checks the form's token and the role an answer needs.
fn may_answer(viewer: &Viewer, f: &ActionForm) -> Option<Response> {
    if let Some(refusal) = viewer.csrf_refusal(&f.csrf) {
        return Some(refusal);
    }
    if !viewer.can(ApiRole::Steward) {
        return Some(forbidden(
            "Only data stewards answer, accept or end access requests.",
        ));
    }
    None
}

/// After an action: back to the negotiation with a confirmation, or the page again with
/// the node's reason for refusing.
async fn after(
    web: &Web,
    viewer: &Viewer,
    id: &str,
    f: &ActionForm,
    result: Result<Negotiation, NodeError>,
    done: &str,
) -> Response {
    match result {
        Ok(n) => Redirect::to(&format!("{}&done={done}", detail_link(&n))).into_response(),
        Err(e) if e.is_user_error() => match load(web, id, &f.side).await {
            Ok(r) => {
                let field = if done == "ended" { "reason" } else { "main" };
                let errors = [FieldError {
                    field,
                    message: e.to_string(),
                }];
                render_detail(web, viewer, &r, "", &errors, &f.reason).into_response()
            }
            Err(page) => page,
        },
        Err(e) => crate::pages::node_error(&e),
    }
}

pub(crate) async fn approve(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(r) = may_answer(&viewer, &f) {
        return r;
    }
    let result = web
        .node
        .approve_superseding(&id, f.note.trim(), !f.supersede.is_empty())
        .await;
    after(&web, &viewer, &id, &f, result, "approved").await
}

pub(crate) async fn accept(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(r) = may_answer(&viewer, &f) {
        return r;
    }
    let result = web.node.accept_offer(&id).await;
    after(&web, &viewer, &id, &f, result, "accepted").await
}

pub(crate) async fn end(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(r) = may_answer(&viewer, &f) {
        return r;
    }
    if f.reason.trim().is_empty() {
        return match load(&web, &id, &f.side).await {
            Ok(r) => {
                let errors = [FieldError {
                    field: "reason",
                    message: "Enter the reason: the other member sees it".into(),
                }];
                render_detail(&web, &viewer, &r, "", &errors, "").into_response()
            }
            Err(page) => page,
        };
    }
    let result = web.node.terminate(&id, f.reason.trim()).await;
    after(&web, &viewer, &id, &f, result, "ended").await
}

// ---- the counter-offer ----

/// The two answers with other terms: the owner's offer, and the consumer's answer to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Offer,
    Counter,
}

impl Answer {
    fn role(self) -> NegotiationRole {
        match self {
            Self::Offer => NegotiationRole::Provider,
            Self::Counter => NegotiationRole::Consumer,
        }
    }
    fn path(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Counter => "counter",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Self::Offer => "Offer other terms",
            Self::Counter => "Ask for other terms",
        }
    }
}

/// What an answer with other terms needs: the negotiation, and the product's description
/// and columns (the owner's own product, or its offer as the consumer knows it).
struct Answering {
    n: Negotiation,
    metadata: agora_model::ProductMetadata,
    schema: Vec<agora_model::ColumnSchema>,
}

fn answer_page(
    web: &Web,
    viewer: &Viewer,
    kind: Answer,
    a: &Answering,
    input: &TermsInput,
    note: &str,
    errors: &[FieldError],
) -> Response {
    let n = &a.n;
    let body = html! {
        (error_summary(errors))
        span.caption { "Access request " (n.id) }
        h1 { (kind.title()) }
        @match kind {
            Answer::Offer => p.lead { (n.consumer) " asked for " code { (n.request.product) } " for " (n.request.purpose.replace('_', " ")) ". The form starts with what they asked; change what your organisation can agree to." },
            Answer::Counter => p.lead { (n.request.owner) " offered other terms for " code { (n.request.product) } ". The form starts with its offer; change what your organisation needs. " (n.request.owner) " then approves, offers again or rejects." },
        }
        form method="post" action={ "/requests/" (urlencode(&n.id)) "/" (kind.path()) } novalidate {
            input type="hidden" name="csrf" value=(viewer.session.csrf_token);
            input type="hidden" name="side" value=(kind.role().as_str());
            (terms::fields(input, &a.metadata, &a.schema, errors))
            div.field {
                label for="note" { "Why these terms (optional)" }
                p.hint id="note-hint" { (n.peer()) " sees this note." }
                textarea id="note" name="note" rows="3" aria-describedby="note-hint" { (note) }
            }
            button.button type="submit" { @match kind { Answer::Offer => "Send the offer", Answer::Counter => "Send the request" } }
        }
        p { a href=(detail_link(n)) { "Back to the request" } }
    };
    form_page(&frame(web, viewer), kind.title(), errors, body)
}

async fn answerable(
    web: &Web,
    viewer: &Viewer,
    id: &str,
    kind: Answer,
) -> Result<Answering, Response> {
    if !viewer.can(ApiRole::Steward) {
        return Err(forbidden("Only data stewards answer with other terms."));
    }
    let r = load(web, id, kind.role().as_str()).await?;
    let n = r.negotiation;
    let waiting = match kind {
        Answer::Offer => NegotiationState::Requested,
        Answer::Counter => NegotiationState::Offered,
    };
    if n.role != kind.role() || n.state != waiting {
        return Err(crate::pages::problem(
            StatusCode::CONFLICT,
            "There is nothing to answer",
            match kind {
                Answer::Offer => {
                    "Only a request for one of your organisation's products, waiting for an answer, can get an offer."
                }
                Answer::Counter => {
                    "Only an offer made to your organisation, waiting for an answer, can be answered with other terms."
                }
            },
        ));
    }
    let (metadata, schema) = match kind {
        Answer::Offer => match web.node.product(n.request.product.as_str()).await {
            Ok(p) => (p.metadata, p.schema),
            Err(e) => return Err(crate::pages::node_error(&e)),
        },
        Answer::Counter => match web
            .node
            .offer(&n.request.owner, n.request.product.as_str())
            .await
        {
            Ok(Some(o)) => (o.metadata, o.schema),
            Ok(None) => return Err(not_found()),
            Err(e) => return Err(crate::pages::node_error(&e)),
        },
    };
    Ok(Answering {
        n,
        metadata,
        schema,
    })
}

async fn answer_form(web: Web, viewer: Viewer, id: String, kind: Answer) -> Response {
    match answerable(&web, &viewer, &id, kind).await {
        Ok(a) => {
            let start = match kind {
                Answer::Offer => &a.n.request.terms,
                Answer::Counter => a.n.offer.as_ref().unwrap_or(&a.n.request.terms),
            };
            let input = TermsInput::from_terms(&a.schema, start);
            answer_page(&web, &viewer, kind, &a, &input, "", &[])
        }
        Err(r) => r,
    }
}

async fn answer_submit(
    web: Web,
    viewer: Viewer,
    id: String,
    kind: Answer,
    pairs: Vec<(String, String)>,
) -> Response {
    let get = |k: &str| terms::form_value(&pairs, k);
    if let Some(refusal) = viewer.csrf_refusal(&get("csrf")) {
        return refusal;
    }
    let a = match answerable(&web, &viewer, &id, kind).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let input = TermsInput::from_form(&a.schema, &pairs);
    let note = get("note");
    let terms = match input.to_terms() {
        Ok(t) => t,
        Err(errors) => return answer_page(&web, &viewer, kind, &a, &input, &note, &errors),
    };
    let (result, done) = match kind {
        Answer::Offer => (
            web.node.counter_offer(&id, terms, note.trim()).await,
            "offered",
        ),
        Answer::Counter => (
            web.node.counter_request(&id, terms, note.trim()).await,
            "countered",
        ),
    };
    match result {
        Ok(n) => Redirect::to(&format!("{}&done={done}", detail_link(&n))).into_response(),
        Err(e) if e.is_user_error() => {
            let errors = [FieldError {
                field: node_error_field(&e),
                message: e.to_string(),
            }];
            answer_page(&web, &viewer, kind, &a, &input, &note, &errors)
        }
        Err(e) => crate::pages::node_error(&e),
    }
}

pub(crate) async fn offer_form(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    answer_form(web, viewer, id, Answer::Offer).await
}

pub(crate) async fn offer_submit(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    answer_submit(web, viewer, id, Answer::Offer, pairs).await
}

pub(crate) async fn counter_form(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    answer_form(web, viewer, id, Answer::Counter).await
}

pub(crate) async fn counter_submit(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    answer_submit(web, viewer, id, Answer::Counter, pairs).await
}

/// The field a refusal of the node is about.
pub(super) fn node_error_field(e: &NodeError) -> &'static str {
    match e {
        NodeError::Negotiation(NegotiationError::UnknownPurpose(_)) => "purpose",
        NodeError::Negotiation(NegotiationError::UnknownLegalBasis(_)) => "legal_basis",
        NodeError::Negotiation(NegotiationError::Justification(_)) => "justification",
        NodeError::Negotiation(NegotiationError::Validity(_)) => "valid_until",
        NodeError::Terms(_) => "columns",
        NodeError::Engine(_) => "row_filter",
        _ => "mode",
    }
}

// ---- the request ----
