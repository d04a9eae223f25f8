//! A negotiation's page: its steps, what was asked and offered, the agreement with its
//! signatures checked, the history, the answers open to each side, and the ODRL download.

use agora_model::{Negotiation, NegotiationRole, NegotiationState};
use agora_node::ApiRole;
use agora_node::agreements::{NegotiationRecord, check_signatures};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::*;
use crate::Web;
use crate::layout::{FieldError, error_summary, field_error, form_page};
use crate::pages::terms::{self};
use crate::session::{Viewer, urlencode};

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
                    (super::plain_state(*s))
                    @match status {
                        "done" => span.steps__status { " (done)" },
                        "current" => span.visually-hidden { " (current step)" },
                        _ => span.visually-hidden { " (not reached)" },
                    }
                }
            }
        }
    }
}

pub(super) fn render_detail(
    web: &Web,
    viewer: &Viewer,
    r: &NegotiationRecord,
    done: &str,
    errors: &[FieldError],
    reason: &str,
) -> Response {
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
        p { (negotiation_tag(n)) " " (state_words(n)) }
        (steps(n))
        @if r.undelivered > 0 {
            p.notice { (crate::layout::plural(r.undelivered as u64, "step")) @if r.undelivered == 1 { " is" } @else { " are" } " still on their way to " (n.peer()) ". Your node keeps sending them until they arrive." }
        }
        (answer(n, viewer))
        (what_was_asked(n))
        (agreement_section(n))
        (history(r))
        (end_form(n, viewer, errors, reason))
        p { a href="/requests" { "Back to access requests" } }
    };
    form_page(&frame(web, viewer), title, errors, body)
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
