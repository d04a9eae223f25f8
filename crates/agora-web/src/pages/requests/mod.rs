//! Access requests and agreements: ask for a product from its page, follow the negotiation,
//! answer as the owner's steward (approve, counter-offer, reject), read the agreement with
//! its terms and signatures, and revoke it.
//!
//! Every action goes through the same node workflows as the API, with the same roles:
//! any signed-in user reads negotiations, analysts and up request access, stewards and up
//! answer, accept and end them.

use agora_model::{Negotiation, NegotiationRole, NegotiationState};
use agora_node::agreements::AgreementStatus;
use agora_node::agreements::NegotiationRecord;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use crate::Web;
pub(crate) use crate::layout::plain_state;
use crate::layout::{Frame, Section, bar_chart, page};
use crate::session::{Viewer, urlencode};

mod answer;
mod detail;
mod new;

pub(crate) use answer::{
    accept, approve, counter_form, counter_submit, end, offer_form, offer_submit,
};
pub(crate) use detail::{detail, odrl};
pub(crate) use new::{request_form, request_submit};

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
    html! { strong class={ "tag tag--state-" (s.as_str().to_ascii_lowercase()) } { (plain_state(s)) } }
}

/// A negotiation's tag: its state, except that an agreement verification does not hold in
/// force says so (an altered record keeps its state).
fn negotiation_tag(n: &Negotiation) -> Markup {
    match agora_node::agreements::agreement_status(n, Utc::now()) {
        Some(status) if n.state == NegotiationState::Finalized && !status.in_force() => {
            let word = match status {
                AgreementStatus::Expired { .. } => "expired",
                AgreementStatus::NotYet { .. } => "signed, not yet in force",
                _ => "not in force",
            };
            html! { strong class="tag tag--state-terminated" { (word) } }
        }
        _ => state_tag(n.state),
    }
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
        // From verification, never from the stored state alone: an altered record keeps
        // FINALIZED but its signatures no longer verify.
        (Finalized, _) => match agora_node::agreements::agreement_status(n, Utc::now()) {
            Some(AgreementStatus::InForce { .. }) => "The agreement is in force.".into(),
            Some(AgreementStatus::NotYet { from }) => format!(
                "The agreement is signed and comes into force on {}.",
                from.format("%-d %B %Y")
            ),
            Some(AgreementStatus::Expired { at }) => {
                format!("The agreement expired on {}.", at.format("%-d %B %Y"))
            }
            Some(AgreementStatus::Unverified { why }) => {
                format!("The agreement is not in force: {why}.")
            }
            Some(other) => format!("The agreement is {other}."),
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
                plain_state(*s).to_owned(),
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
                                    td { (negotiation_tag(n)) }
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
                        option value=(s.as_str()) selected[wanted == Some(s)] { (plain_state(s)) }
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
