//! A new access request, from a product's page.

use agora_model::{AccessRequest, LEGAL_BASES, MemberId, Offer, PURPOSES};
use agora_node::ApiRole;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use maud::html;

use super::answer::node_error_field;
use super::*;
use crate::Web;
use crate::layout::{FieldError, error_summary, field_class, field_message, form_page};
use crate::pages::terms::{self, TermsInput};
use crate::session::Viewer;

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
        return Err(crate::pages::problem(
            StatusCode::BAD_REQUEST,
            "This is your own product",
            "Your organisation owns this product: query it directly in the query workspace.",
        ));
    }
    match web.node.offer(&member, name).await {
        Ok(Some(o)) => Ok(o),
        Ok(None) => Err(crate::pages::problem(
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is no such data product in the catalog. It may have been withdrawn; search the catalog again.",
        )),
        Err(e) => Err(crate::pages::node_error(&e)),
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
    let cls = |f: &str| field_class(errors, f);
    let err = |f: &str| field_message(errors, f);
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
                p.hint id="valid_from-hint" { "Year-month-day, for example 2027-01-31" }
                (err("valid_from"))
                // Text in the hint's format, not a date picker whose format depends on the browser.
                input.input--short type="text" inputmode="numeric" autocomplete="off" id="valid_from" name="valid_from" value=(input.valid_from) aria-describedby="valid_from-hint";
            }
            div class=(cls("valid_until")) {
                label for="valid_until" { "Until" }
                p.hint id="valid_until-hint" { "Year-month-day, at most five years after the start" }
                (err("valid_until"))
                input.input--short type="text" inputmode="numeric" autocomplete="off" id="valid_until" name="valid_until" value=(input.valid_until) aria-describedby="valid_until-hint";
            }
            button.button type="submit" { "Send the request" }
        }
        p { a href={ "/catalog/" (offer.owner) "/" (offer.name) } { "Back to the product" } }
    };
    form_page(&frame(web, viewer), "Request access", errors, body)
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
        Err(e) => crate::pages::node_error(&e),
    }
}
