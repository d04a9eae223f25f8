//! Access requests and agreements: ask for a product from its page, follow the negotiation,
//! answer as the owner's steward (approve, counter-offer, reject), read the agreement with
//! its terms and signatures, and revoke it.
//!
//! Every action goes through the same node workflows as the API, with the same roles:
//! any signed-in user reads negotiations, analysts and up request access, stewards and up
//! answer, accept and end them.

use agora_model::{
    AccessRequest, LEGAL_BASES, MemberId, Negotiation, NegotiationError, NegotiationRole,
    NegotiationState, Offer, PURPOSES,
};
use agora_node::agreements::{NegotiationRecord, check_signatures};
use agora_node::{ApiRole, NodeError};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::terms::{self, TermsInput};
use crate::Web;
use crate::layout::{FieldError, Frame, Section, bar_chart, error_summary, field_error, page};
use crate::session::{Viewer, urlencode};

/// The most negotiations the list shows.
const LISTED: u32 = 200;

fn frame<'a>(web: &'a Web, viewer: &'a Viewer) -> Frame<'a> {
    Frame {
        organisation: web.node.name(),
        viewer: Some(viewer),
        section: Section::Requests,
    }
}

fn forbidden(what: &str) -> Response {
    super::problem(
        StatusCode::FORBIDDEN,
        "You cannot do this",
        &format!("{what} Ask an administrator of your organisation if you need to."),
    )
}

fn not_found() -> Response {
    super::problem(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no such access request on this node. Go to the list of requests and choose one from there.",
    )
}

/// A state as a tag with its word, and what it means in plain words.
fn state_tag(s: NegotiationState) -> Markup {
    html! { strong class={ "tag tag--state-" (s.as_str().to_ascii_lowercase()) } { (s.as_str().to_ascii_lowercase()) } }
}

fn state_words(n: &Negotiation) -> String {
    use NegotiationState::*;
    let owner = n.owner();
    let consumer = &n.consumer;
    let by = n.deadline.format("%-d %B %Y, %H:%M UTC");
    match (n.state, n.role) {
        (Requested, NegotiationRole::Consumer) => {
            format!("Waiting for {owner} to answer. Without an answer by {by}, the request ends.")
        }
        (Requested, NegotiationRole::Provider) => format!(
            "{consumer} asks for this product. A steward of your organisation approves it, offers other terms or rejects it, by {by}."
        ),
        (Offered, NegotiationRole::Consumer) => format!(
            "{owner} offers other terms. A steward of your organisation accepts them, asks for other terms or ends the request, by {by}."
        ),
        (Offered, NegotiationRole::Provider) => {
            format!("You offered other terms. Waiting for {consumer} to accept them, by {by}.")
        }
        (Accepted, NegotiationRole::Consumer) => {
            format!("You accepted the offer. Waiting for {owner} to sign the agreement.")
        }
        (Accepted, NegotiationRole::Provider) => format!(
            "{consumer} accepted your offer. A steward of your organisation approves it to sign the agreement."
        ),
        (Agreed, NegotiationRole::Consumer) => {
            format!("{owner} signed the agreement. Your node checks and countersigns it.")
        }
        (Agreed, NegotiationRole::Provider) => {
            format!("You signed the agreement. Waiting for {consumer} to countersign it.")
        }
        (Verified, _) => {
            "Both members have signed. The owner's node is closing the negotiation.".into()
        }
        (Finalized, _) => match n.agreement.as_ref().map(|a| a.validity(Utc::now())) {
            Some(agora_model::Validity::Valid) => "The agreement is in force.".into(),
            Some(agora_model::Validity::NotYet(t)) => format!(
                "The agreement is signed and comes into force on {}.",
                t.format("%-d %B %Y")
            ),
            Some(agora_model::Validity::Expired(t)) => {
                format!("The agreement expired on {}.", t.format("%-d %B %Y"))
            }
            None => "The negotiation is closed.".into(),
        },
        (Terminated, _) => format!(
            "Ended: {}.",
            n.reason.as_deref().unwrap_or("no reason recorded")
        ),
    }
}

fn detail_link(n: &Negotiation) -> String {
    format!("/requests/{}?side={}", urlencode(&n.id), n.role.as_str())
}

fn date(t: DateTime<Utc>) -> String {
    t.format("%-d %b %Y").to_string()
}

// ---- the list ----

#[derive(Deserialize, Default)]
pub(crate) struct ListFilter {
    #[serde(default)]
    state: String,
}

pub(crate) async fn list(
    State(web): State<Web>,
    viewer: Viewer,
    Query(f): Query<ListFilter>,
) -> Response {
    let wanted = f.state.parse::<NegotiationState>().ok();
    let all = match web.node.negotiations(None, None, LISTED).await {
        Ok(a) => a,
        Err(e) => return super::node_error(&e),
    };
    let counts: Vec<(NegotiationState, usize)> = NegotiationState::ALL
        .iter()
        .map(|s| (*s, all.iter().filter(|n| n.state == *s).count()))
        .collect();
    let most = counts.iter().map(|c| c.1).max().unwrap_or(0).max(1);
    let bars: Vec<(String, f64, String)> = counts
        .iter()
        .map(|(s, c)| {
            (
                s.as_str().to_ascii_lowercase(),
                *c as f64 / most as f64,
                c.to_string(),
            )
        })
        .collect();
    let shown: Vec<&Negotiation> = all
        .iter()
        .filter(|n| wanted.is_none_or(|w| n.state == w))
        .collect();
    let table = |role: NegotiationRole, caption: &str, other: &str| {
        let rows: Vec<&&Negotiation> = shown.iter().filter(|n| n.role == role).collect();
        html! {
            @if rows.is_empty() {
                p { "None." }
            } @else {
                div.table-wrap {
                    table {
                        caption.visually-hidden { (caption) }
                        thead { tr {
                            th scope="col" { "Product" } th scope="col" { (other) }
                            th scope="col" { "Purpose" } th scope="col" { "State" } th scope="col" { "Last change" }
                        } }
                        tbody {
                            @for n in rows {
                                tr {
                                    th scope="row" { a href=(detail_link(n)) { code { (n.request.product) } } }
                                    td { (n.peer()) }
                                    td { (n.request.purpose.replace('_', " ")) }
                                    td { (state_tag(n.state)) }
                                    td { (date(n.updated_at)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        h1 { "Access requests and agreements" }
        p.lead { "Requests your organisation made for other members' data, and requests other members made for yours. A request ends in an agreement signed by both members, or is ended." }
        p { "To ask for a product, find it in the " a href="/catalog" { "catalog" } " and choose “Request access” on its page." }
        form.filters--inline method="get" action="/requests" {
            div.field {
                label for="state" { "Show" }
                select id="state" name="state" {
                    option value="" selected[wanted.is_none()] { "Every state" }
                    @for s in NegotiationState::ALL {
                        option value=(s.as_str()) selected[wanted == Some(s)] { (s.as_str().to_ascii_lowercase()) }
                    }
                }
            }
            button.button.button--secondary type="submit" { "Show" }
        }
        h2 { "Requests you made" }
        (table(NegotiationRole::Consumer, "Requests your organisation made", "Owner"))
        h2 { "Requests for your data" }
        (table(NegotiationRole::Provider, "Requests for your organisation's data", "Asked by"))
        h2 { "Activity" }
        (bar_chart("chart-states", "Negotiations by state (newest 200)", &bars))
    };
    Html(
        page(
            &frame(&web, &viewer),
            "Access requests and agreements",
            body,
        )
        .into_string(),
    )
    .into_response()
}

// ---- one negotiation ----

#[derive(Deserialize, Default)]
pub(crate) struct SideParam {
    #[serde(default)]
    side: String,
    /// What was just done, to confirm it (a fixed word, never data).
    #[serde(default)]
    done: String,
}

fn side(s: &str) -> Option<NegotiationRole> {
    match s {
        "consumer" => Some(NegotiationRole::Consumer),
        "provider" => Some(NegotiationRole::Provider),
        _ => None,
    }
}

async fn load(web: &Web, id: &str, s: &str) -> Result<NegotiationRecord, Response> {
    match web.node.negotiation(id, side(s)).await {
        Ok(r) => Ok(r),
        Err(e) if e.kind() == agora_node::ErrorKind::NotFound => Err(not_found()),
        Err(e) => Err(super::node_error(&e)),
    }
}

pub(crate) async fn detail(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(p): Query<SideParam>,
) -> Response {
    match load(&web, &id, &p.side).await {
        Ok(r) => render_detail(&web, &viewer, &r, &p.done, &[], "").into_response(),
        Err(e) => e,
    }
}

fn done_words(done: &str) -> Option<&'static str> {
    Some(match done {
        "requested" => "Your request was sent to the owner.",
        "approved" => {
            "You approved the request: your node signed the agreement and sent it for countersigning."
        }
        "offered" => "Your offer was sent.",
        "accepted" => "You accepted the offer: the owner's node signs the agreement next.",
        "countered" => "Your request for other terms was sent to the owner.",
        "ended" => "The negotiation was ended, and the other member is told.",
        _ => return None,
    })
}

fn steps(n: &Negotiation) -> Markup {
    use NegotiationState::*;
    let path: &[NegotiationState] = if n.offer.is_some() {
        &[Requested, Offered, Accepted, Agreed, Verified, Finalized]
    } else {
        &[Requested, Agreed, Verified, Finalized]
    };
    let at = path.iter().position(|s| *s == n.state);
    html! {
        ol.steps aria-label="Steps of the negotiation" {
            @for (i, s) in path.iter().enumerate() {
                @let status = match at {
                    Some(a) if i < a => "done",
                    Some(a) if i == a => "current",
                    _ => "todo",
                };
                li class={ "steps__step steps__step--" (status) } aria-current=[(status == "current").then_some("step")] {
                    (s.as_str().to_ascii_lowercase())
                    span.visually-hidden { @match status { "done" => " (done)", "current" => " (current step)", _ => " (not reached)" } }
                }
            }
        }
    }
}

fn render_detail(
    web: &Web,
    viewer: &Viewer,
    r: &NegotiationRecord,
    done: &str,
    errors: &[FieldError],
    reason: &str,
) -> (StatusCode, Html<String>) {
    let n = &r.negotiation;
    let title = if n.agreement.is_some() && n.state != NegotiationState::Terminated {
        "Agreement"
    } else {
        "Access request"
    };
    let rq = &n.request;
    let body = html! {
        (error_summary(errors))
        @if let Some(words) = done_words(done) {
            div.notice.notice--success role="status" { p { (words) } }
        }
        span.caption { (title) " " (n.id) }
        h1 { code { (rq.product) } " of " (rq.owner) }
        p { (state_tag(n.state)) " " (state_words(n)) }
        (steps(n))
        @if r.undelivered > 0 {
            p.notice { (r.undelivered) " step(s) are still on their way to " (n.peer()) ". Your node keeps sending them until they arrive." }
        }
        (answer(n, viewer))
        (what_was_asked(n))
        (agreement_section(n))
        (history(r))
        (end_form(n, viewer, errors, reason))
        p { a href="/requests" { "Back to access requests" } }
    };
    let heading = if errors.is_empty() {
        title.to_owned()
    } else {
        format!("Error: {title}")
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (
        status,
        Html(page(&frame(web, viewer), &heading, body).into_string()),
    )
}

/// Where a form about negotiation `n` posts to.
fn action(n: &agora_model::Negotiation, what: &str) -> String {
    format!("/requests/{}/{what}", urlencode(&n.id))
}

/// The steward's possible answers: approve, offer other terms, accept an offer, ask for
/// other terms.
fn answer(n: &agora_model::Negotiation, viewer: &Viewer) -> Markup {
    let steward = viewer.can(ApiRole::Steward);
    let provider = n.role == NegotiationRole::Provider;
    let side = n.role.as_str();
    let action = |what: &str| action(n, what);
    let can_approve = provider
        && matches!(
            n.state,
            NegotiationState::Requested | NegotiationState::Accepted
        );
    let can_offer = provider && n.state == NegotiationState::Requested;
    let can_accept = !provider && n.state == NegotiationState::Offered;
    html! {
    @if steward && (can_approve || can_offer || can_accept) {
        h2 { "Your answer" }
        div.actions {
            @if can_approve {
                form method="post" action=(action("approve")) {
                    input type="hidden" name="csrf" value=(viewer.session.csrf_token);
                    input type="hidden" name="side" value=(side);
                    div.field {
                        label for="note" { "Note for the history (optional)" }
                        input.input--wide type="text" id="note" name="note";
                    }
                    div.checkbox {
                        input type="checkbox" id="supersede" name="supersede" value="on" aria-describedby="supersede-hint";
                        label for="supersede" { "Replace the agreement in force for this product and purpose, if there is one" }
                        p.hint id="supersede-hint" { "Without this, approval is refused while another agreement with this member for the same purpose is in force. With it, that agreement is revoked once this one is in force." }
                    }
                    button.button type="submit" {
                        @if n.state == NegotiationState::Accepted { "Approve and sign the agreement" } @else { "Approve as asked and sign the agreement" }
                    }
                }
            }
            @if can_offer {
                p { a.button.button--secondary href={ (action("offer")) "?side=" (side) } { "Offer other terms" } }
            }
            @if can_accept {
                form method="post" action=(action("accept")) {
                    input type="hidden" name="csrf" value=(viewer.session.csrf_token);
                    input type="hidden" name="side" value=(side);
                    button.button type="submit" { "Accept the offered terms" }
                }
                p { a.button.button--secondary href={ (action("counter")) "?side=" (side) } { "Ask for other terms" } }
            }
        }
    } @else if !steward && (can_approve || can_offer || can_accept) {
        p.notice { "A data steward of your organisation answers this." }
    }
    }
}

fn what_was_asked(n: &agora_model::Negotiation) -> Markup {
    let rq = &n.request;
    html! {
    h2 { "What was asked" }
    dl.summary {
        div { dt { "Asked by" } dd { (n.consumer) } }
        div { dt { "Owner" } dd { (rq.owner) } }
        div { dt { "Product" } dd { a href={ "/catalog/" (rq.owner) "/" (rq.product) } { code { (rq.product) } } } }
        div { dt { "Purpose" } dd { (rq.purpose.replace('_', " ")) } }
        div { dt { "Legal basis" } dd { (rq.legal_basis.replace('_', " ")) } }
        div { dt { "Why" } dd { (rq.justification) } }
        div { dt { "For" } dd { (date(rq.valid_from)) " to " (date(rq.valid_until)) } }
        div { dt { "Asked on" } dd { (date(n.created_at)) } }
    }
    (terms::summary(&rq.terms, "Columns asked for"))
    @if let Some(offer) = &n.offer {
        h2 { "What the owner offered" }
        (terms::summary(offer, "Columns offered"))
    }
    }
}

/// The agreement, its terms and whether both signatures verify.
fn agreement_section(n: &agora_model::Negotiation) -> Markup {
    let side = n.role.as_str();
    let action = |what: &str| action(n, what);
    let signatures = n.agreement.as_ref().map(|_| check_signatures(n));
    html! {
    @if let Some(a) = &n.agreement {
        h2 { "The agreement" }
        dl.summary {
            div { dt { "Agreement" } dd { code { (a.id) } } }
            div { dt { "Ecosystem" } dd { (a.ecosystem) } }
            div { dt { "Between" } dd { (a.owner) " (owner) and " (a.consumer) " (consumer)" } }
            div { dt { "Purpose" } dd { (a.purpose.replace('_', " ")) ", on the legal basis of " (a.legal_basis.replace('_', " ")) } }
            div { dt { "In force" } dd { (date(a.valid_from)) " to " (date(a.valid_until)) } }
            div { dt { "Signed by the owner on" } dd { (a.agreed_at.format("%-d %B %Y, %H:%M UTC")) } }
            @if let Some(epoch) = a.linkage_epoch {
                div { dt { "Linkage keys" } dd { "Generation " (epoch) " of the ecosystem's keys for " (a.purpose.replace('_', " ")) } }
            }
        }
        (terms::summary(&a.terms, "Columns agreed"))
        h3 { "Signatures" }
        dl.summary {
            div { dt { "Owner (" (a.owner) ")" } dd { @match &n.signatures.owner { Some(s) => code.sig { (s) }, None => "Not signed yet" } } }
            div { dt { "Consumer (" (a.consumer) ")" } dd { @match &n.signatures.consumer { Some(s) => code.sig { (s) }, None => "Not signed yet" } } }
        }
        @match &signatures {
            Some(Ok(_)) => p.notice.notice--success { "Both Ed25519 signatures verify against the agreement's terms and the members' keys." },
            Some(Err(why)) => p.notice { (why) "." },
            None => {},
        }
        p { a href={ (action("odrl")) "?side=" (side) } download { "Download the agreement as ODRL (JSON-LD)" } }
    }
    }
}

fn history(r: &NegotiationRecord) -> Markup {
    html! {
    h2 { "History" }
    div.table-wrap {
        table {
            caption.visually-hidden { "History of the negotiation" }
            thead { tr { th scope="col" { "When" } th scope="col" { "State" } th scope="col" { "By" } th scope="col" { "Note" } } }
            tbody {
                @for e in &r.events {
                    tr {
                        td { (e.at.format("%-d %b %Y, %H:%M:%S")) }
                        td { (state_tag(e.state)) }
                        td { (e.actor) }
                        td { (e.note) }
                    }
                }
            }
        }
    }
    }
}

/// Rejecting, withdrawing or revoking, with the reason the other member will see.
fn end_form(
    n: &agora_model::Negotiation,
    viewer: &Viewer,
    errors: &[FieldError],
    reason: &str,
) -> Markup {
    let steward = viewer.can(ApiRole::Steward);
    let provider = n.role == NegotiationRole::Provider;
    let side = n.role.as_str();
    let action = |what: &str| action(n, what);
    let can_end = n.state != NegotiationState::Terminated;
    let (end_label, end_legend) = match (n.state, provider) {
        (NegotiationState::Finalized, _) => (
            "Revoke the agreement",
            "Revoke the agreement: it stops applying at once, on both sides",
        ),
        (_, true) => ("Reject the request", "Reject the request"),
        (_, false) => ("Withdraw the request", "Withdraw the request"),
    };
    let e_reason = field_error(errors, "reason");
    html! {
    @if steward && can_end {
        h2 { (end_label) }
        form method="post" action=(action("end")) {
            input type="hidden" name="csrf" value=(viewer.session.csrf_token);
            input type="hidden" name="side" value=(side);
            div class={ "field" @if e_reason.is_some() { " field--error" } } {
                label for="reason" { (end_legend) }
                p.hint id="reason-hint" { "Say why. " (n.peer()) " sees this reason." }
                @if let Some(e) = e_reason { p.field__error id="reason-error" { span.visually-hidden { "Error: " } (e.message) } }
                textarea id="reason" name="reason" rows="3"
                    aria-describedby={ "reason-hint" @if e_reason.is_some() { " reason-error" } } { (reason) }
            }
            button.button.button--warning type="submit" { (end_label) }
        }
    }
    }
}

/// The ODRL form of an agreement, as a download.
pub(crate) async fn odrl(
    State(web): State<Web>,
    _viewer: Viewer,
    Path(id): Path<String>,
    Query(p): Query<SideParam>,
) -> Response {
    let r = match load(&web, &id, &p.side).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let n = r.negotiation;
    let Some(a) = n.agreement.as_ref() else {
        return not_found();
    };
    let json =
        serde_json::to_string_pretty(&a.to_odrl(&n.signatures)).unwrap_or_else(|_| "{}".to_owned());
    (
        [
            (header::CONTENT_TYPE, "application/ld+json".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"agreement-{}.jsonld\"", a.id),
            ),
        ],
        json,
    )
        .into_response()
}

// ---- the answers ----

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
        Err(e) => super::node_error(&e),
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
    let title = if errors.is_empty() {
        kind.title().to_owned()
    } else {
        format!("Error: {}", kind.title())
    };
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
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (
        status,
        Html(page(&frame(web, viewer), &title, body).into_string()),
    )
        .into_response()
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
        return Err(super::problem(
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
            Err(e) => return Err(super::node_error(&e)),
        },
        Answer::Counter => match web
            .node
            .offer(&n.request.owner, n.request.product.as_str())
            .await
        {
            Ok(Some(o)) => (o.metadata, o.schema),
            Ok(None) => return Err(not_found()),
            Err(e) => return Err(super::node_error(&e)),
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
        Err(e) => super::node_error(&e),
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
fn node_error_field(e: &NodeError) -> &'static str {
    match e {
        NodeError::Negotiation(NegotiationError::UnknownPurpose(_)) => "purpose",
        NodeError::Negotiation(NegotiationError::UnknownLegalBasis(_)) => "legal_basis",
        NodeError::Negotiation(NegotiationError::Justification) => "justification",
        NodeError::Negotiation(NegotiationError::Validity(_)) => "valid_until",
        NodeError::Terms(_) => "columns",
        NodeError::Engine(_) => "row_filter",
        _ => "mode",
    }
}

// ---- the request ----

#[derive(Debug, Clone, Default)]
struct RequestInput {
    purpose: String,
    legal_basis: String,
    justification: String,
    valid_from: String,
    valid_until: String,
    terms: TermsInput,
}

async fn requestable(
    web: &Web,
    viewer: &Viewer,
    owner: &str,
    name: &str,
) -> Result<Offer, Response> {
    if !viewer.can(ApiRole::Analyst) {
        return Err(forbidden("You cannot request access."));
    }
    let Ok(member) = MemberId::parse(owner) else {
        return Err(not_found());
    };
    if &member == web.node.member() {
        return Err(super::problem(
            StatusCode::BAD_REQUEST,
            "This is your own product",
            "Your organisation owns this product: query it directly in the query workspace.",
        ));
    }
    match web.node.offer(&member, name).await {
        Ok(Some(o)) => Ok(o),
        Ok(None) => Err(super::problem(
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is no such data product in the catalog. It may have been withdrawn; search the catalog again.",
        )),
        Err(e) => Err(super::node_error(&e)),
    }
}

fn request_page(
    web: &Web,
    viewer: &Viewer,
    offer: &Offer,
    input: &RequestInput,
    errors: &[FieldError],
) -> Response {
    let m = &offer.metadata;
    let purposes: Vec<&str> = if m.purposes.is_empty() {
        PURPOSES.to_vec()
    } else {
        m.purposes.iter().map(String::as_str).collect()
    };
    let cls = |f: &str| {
        if field_error(errors, f).is_some() {
            "field field--error"
        } else {
            "field"
        }
    };
    let err = |f: &str| {
        html! {
            @if let Some(e) = field_error(errors, f) {
                p.field__error { span.visually-hidden { "Error: " } (e.message) }
            }
        }
    };
    let title = if errors.is_empty() {
        "Request access".to_owned()
    } else {
        "Error: Request access".to_owned()
    };
    let body = html! {
        (error_summary(errors))
        span.caption { (offer.owner) " · " code { (offer.name) } }
        h1 { "Request access to " (m.title) }
        p.lead { "Say why your organisation needs this data and what it needs. " (offer.owner) " answers: it approves, offers other terms or rejects. Its node then enforces the agreement on every query." }
        form method="post" action={ "/catalog/" (offer.owner) "/" (offer.name) "/request" } novalidate {
            input type="hidden" name="csrf" value=(viewer.session.csrf_token);
            div class=(cls("purpose")) {
                fieldset.fieldset {
                    legend { "What is the purpose?" }
                    @if !m.purposes.is_empty() { p.hint { "The purposes " (offer.owner) " admits for this product." } }
                    (err("purpose"))
                    div.radios {
                        @for (i, p) in purposes.iter().enumerate() {
                            @let id = if i == 0 { "purpose".to_owned() } else { format!("purpose-{i}") };
                            div.radio {
                                input type="radio" id=(id) name="purpose" value=(p) checked[input.purpose == *p];
                                label for=(id) { (p.replace('_', " ")) }
                            }
                        }
                    }
                }
            }
            div class=(cls("legal_basis")) {
                label for="legal_basis" { "Legal basis" }
                p.hint id="legal_basis-hint" { "Under article 6(1) of the GDPR. Public bodies usually rely on a public task or a legal obligation." }
                (err("legal_basis"))
                select id="legal_basis" name="legal_basis" aria-describedby="legal_basis-hint" {
                    option value="" selected[input.legal_basis.is_empty()] { "Choose a legal basis" }
                    @for b in LEGAL_BASES {
                        option value=(b) selected[input.legal_basis == *b] { (b.replace('_', " ")) }
                    }
                }
            }
            div class=(cls("justification")) {
                label for="justification" { "Why do you need it?" }
                p.hint id="justification-hint" { "In a sentence or more. " (offer.owner) " reads this to decide." }
                (err("justification"))
                textarea id="justification" name="justification" rows="4" aria-describedby="justification-hint" { (input.justification) }
            }
            (terms::fields(&input.terms, m, &offer.schema, errors))
            div class=(cls("valid_from")) {
                label for="valid_from" { "From" }
                p.hint id="valid_from-hint" { "A date, for example 2027-01-31" }
                (err("valid_from"))
                input type="date" id="valid_from" name="valid_from" value=(input.valid_from) aria-describedby="valid_from-hint";
            }
            div class=(cls("valid_until")) {
                label for="valid_until" { "Until" }
                p.hint id="valid_until-hint" { "At most five years after the start" }
                (err("valid_until"))
                input type="date" id="valid_until" name="valid_until" value=(input.valid_until) aria-describedby="valid_until-hint";
            }
            button.button type="submit" { "Send the request" }
        }
        p { a href={ "/catalog/" (offer.owner) "/" (offer.name) } { "Back to the product" } }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (
        status,
        Html(page(&frame(web, viewer), &title, body).into_string()),
    )
        .into_response()
}

pub(crate) async fn request_form(
    State(web): State<Web>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let offer = match requestable(&web, &viewer, &owner, &name).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let today = Utc::now().date_naive();
    let input = RequestInput {
        valid_from: today.to_string(),
        valid_until: (today + Duration::days(365)).to_string(),
        terms: TermsInput::blank(&offer.schema),
        ..Default::default()
    };
    request_page(&web, &viewer, &offer, &input, &[])
}

fn parse_day(s: &str) -> Option<DateTime<Utc>> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

pub(crate) async fn request_submit(
    State(web): State<Web>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| terms::form_value(&pairs, k);
    if let Some(refusal) = viewer.csrf_refusal(&get("csrf")) {
        return refusal;
    }
    let offer = match requestable(&web, &viewer, &owner, &name).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let input = RequestInput {
        purpose: get("purpose"),
        legal_basis: get("legal_basis"),
        justification: get("justification"),
        valid_from: get("valid_from"),
        valid_until: get("valid_until"),
        terms: TermsInput::from_form(&offer.schema, &pairs),
    };
    let mut errors = Vec::new();
    if input.purpose.is_empty() {
        errors.push(FieldError {
            field: "purpose",
            message: "Choose the purpose".into(),
        });
    }
    if input.legal_basis.is_empty() {
        errors.push(FieldError {
            field: "legal_basis",
            message: "Choose the legal basis".into(),
        });
    }
    if input.justification.chars().count() < 10 {
        errors.push(FieldError {
            field: "justification",
            message: "Say why you need the data, in a sentence or more".into(),
        });
    }
    let terms = match input.terms.to_terms() {
        Ok(t) => Some(t),
        Err(mut e) => {
            errors.append(&mut e);
            None
        }
    };
    let from = parse_day(&input.valid_from);
    if from.is_none() {
        errors.push(FieldError {
            field: "valid_from",
            message: "Enter the start as a date, for example 2027-01-31".into(),
        });
    }
    let until = parse_day(&input.valid_until);
    match (from, until) {
        (_, None) => errors.push(FieldError {
            field: "valid_until",
            message: "Enter the end as a date, for example 2027-12-31".into(),
        }),
        (Some(f), Some(u)) if u <= f => errors.push(FieldError {
            field: "valid_until",
            message: "The end must be after the start".into(),
        }),
        _ => {}
    }
    let (Some(terms), Some(valid_from), Some(valid_until), true) =
        (terms, from, until, errors.is_empty())
    else {
        return request_page(&web, &viewer, &offer, &input, &errors);
    };
    let request = AccessRequest {
        owner: offer.owner.clone(),
        product: offer.name.clone(),
        purpose: input.purpose.clone(),
        legal_basis: input.legal_basis.clone(),
        justification: input.justification.clone(),
        terms,
        valid_from,
        valid_until,
    };
    match web.node.request_access(request).await {
        Ok(n) => {
            tracing::info!(negotiation = %n.id, user = %viewer.session.user.username, "access requested from the web interface");
            Redirect::to(&format!("{}&done=requested", detail_link(&n))).into_response()
        }
        Err(e) if e.is_user_error() => {
            let errors = [FieldError {
                field: node_error_field(&e),
                message: e.to_string(),
            }];
            request_page(&web, &viewer, &offer, &input, &errors)
        }
        Err(e) => super::node_error(&e),
    }
}
