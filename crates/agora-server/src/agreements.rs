//! The API of sharing agreements: access requests, their negotiation, the agreements they
//! end in (with their ODRL form), re-identification by the owner, and the policy log.

use crate::api_types::NegotiationView;
use agora_model::{AccessRequest, AgreementTerms, Negotiation, NegotiationRole, NegotiationState};
use agora_node::ApiRole;
use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::{ApiError, AppState};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_negotiations, request_access))
        .routes(routes!(get_negotiation))
        .routes(routes!(approve))
        .routes(routes!(counter_offer))
        .routes(routes!(accept_offer))
        .routes(routes!(counter_request))
        .routes(routes!(terminate))
        .routes(routes!(odrl))
        .routes(routes!(reidentify))
        .routes(routes!(policy_decisions))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// `consumer` (this node asked) or `provider` (this node owns the product).
    role: Option<NegotiationRole>,
    /// A Dataspace Protocol state, e.g. `REQUESTED` or `FINALIZED`.
    state: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RoleParam {
    /// Which side's record, when this node holds both.
    role: Option<NegotiationRole>,
}

/// Negotiations and agreements, newest first.
#[utoipa::path(get, path = "/api/v1/negotiations", tag = "agreements", params(ListParams),
    responses((status = 200, body = Vec<Negotiation>), (status = 400, body = ErrorBody)))]
async fn list_negotiations(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<Vec<Negotiation>>, ApiError> {
    let wanted = match p.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<NegotiationState>()
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        ),
    };
    let limit = list_limit(p.limit)?;
    Ok(Json(state.node.negotiations(p.role, wanted, limit).await?))
}

/// Asks another member for one of its products, for a purpose (analysts and up).
#[utoipa::path(post, path = "/api/v1/negotiations", tag = "agreements", request_body = AccessRequest,
    responses((status = 201, body = Negotiation), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
async fn request_access(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<AccessRequest>,
) -> Result<(axum::http::StatusCode, Json<Negotiation>), ApiError> {
    caller.require(ApiRole::Analyst)?;
    let n = state.node.request_access(req).await?;
    tracing::info!(negotiation = %n.id, by = %caller.0.token.id, "access request made");
    Ok((axum::http::StatusCode::CREATED, Json(n)))
}

/// One negotiation with its history.
#[utoipa::path(get, path = "/api/v1/negotiations/{id}", tag = "agreements", params(("id" = String, Path, description = "The negotiation's id"), RoleParam),
    responses((status = 200, body = NegotiationView), (status = 404, body = ErrorBody)))]
async fn get_negotiation(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<RoleParam>,
) -> Result<Json<NegotiationView>, ApiError> {
    Ok(Json(state.node.negotiation(&id, p.role).await?.into()))
}

/// Approves a request (the owner's steward): the node signs the agreement.
#[utoipa::path(post, path = "/api/v1/negotiations/{id}/approve", tag = "agreements",
    params(("id" = String, Path, description = "The negotiation's id")),
    request_body = Approval,
    responses((status = 200, body = Negotiation), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn approve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    body: bytes::Bytes,
) -> Result<Json<Negotiation>, ApiError> {
    caller.require(ApiRole::Steward)?;
    let answer = if body.iter().all(u8::is_ascii_whitespace) {
        Approval::default()
    } else {
        serde_json::from_slice::<Approval>(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not an approval: {e}")))?
    };
    Ok(Json(
        state
            .node
            .approve_superseding(&id, &answer.note, answer.supersede)
            .await?,
    ))
}

/// A steward's approval.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Approval {
    /// Shown in the negotiation's history.
    #[serde(default)]
    note: String,
    /// Replace the agreement in force with the same member for the same product and
    /// purpose (revoked once this one is in force); without it, approval is refused while
    /// such an agreement is in force.
    #[serde(default)]
    supersede: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OfferBody {
    terms: AgreementTerms,
    #[serde(default)]
    note: String,
}

/// Answers a request with other terms (the owner's steward).
#[utoipa::path(post, path = "/api/v1/negotiations/{id}/offer", tag = "agreements",
    params(("id" = String, Path, description = "The negotiation's id")),
    request_body = OfferBody,
    responses((status = 200, body = Negotiation), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn counter_offer(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<OfferBody>,
) -> Result<Json<Negotiation>, ApiError> {
    caller.require(ApiRole::Steward)?;
    Ok(Json(
        state
            .node
            .counter_offer(&id, body.terms, &body.note)
            .await?,
    ))
}

/// Answers the owner's counter-offer with other terms (the consumer's steward): the
/// negotiation is REQUESTED again, for the owner to approve, offer again or reject.
#[utoipa::path(post, path = "/api/v1/negotiations/{id}/request", tag = "agreements",
    params(("id" = String, Path, description = "The negotiation's id")),
    request_body = OfferBody,
    responses((status = 200, body = Negotiation), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn counter_request(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<OfferBody>,
) -> Result<Json<Negotiation>, ApiError> {
    caller.require(ApiRole::Steward)?;
    Ok(Json(
        state
            .node
            .counter_request(&id, body.terms, &body.note)
            .await?,
    ))
}

/// Accepts the owner's counter-offer (the consumer's steward).
#[utoipa::path(post, path = "/api/v1/negotiations/{id}/accept", tag = "agreements",
    params(("id" = String, Path, description = "The negotiation's id")),
    responses((status = 200, body = Negotiation), (status = 409, body = ErrorBody)))]
async fn accept_offer(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Negotiation>, ApiError> {
    caller.require(ApiRole::Steward)?;
    Ok(Json(state.node.accept_offer(&id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

/// Rejects or withdraws a negotiation, or revokes its agreement (either side's steward);
/// effective here at once.
#[utoipa::path(post, path = "/api/v1/negotiations/{id}/terminate", tag = "agreements",
    params(("id" = String, Path, description = "The negotiation's id")),
    request_body = Reason,
    responses((status = 200, body = Negotiation), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn terminate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Reason>,
) -> Result<Json<Negotiation>, ApiError> {
    caller.require(ApiRole::Steward)?;
    let n = state.node.terminate(&id, &body.reason).await?;
    tracing::info!(negotiation = %id, by = %caller.0.token.id, "negotiation terminated by a steward");
    Ok(Json(n))
}

/// The agreement as an ODRL policy (JSON-LD), with both signatures.
#[utoipa::path(get, path = "/api/v1/negotiations/{id}/odrl", tag = "agreements", params(("id" = String, Path, description = "The negotiation's id"), RoleParam),
    responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorBody)))]
async fn odrl(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<RoleParam>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let r = state.node.negotiation(&id, p.role).await?;
    let n = r.negotiation;
    let a = n.agreement.as_ref().ok_or_else(|| {
        ApiError::not_found(format!(
            "negotiation {id} is {} and has no agreement yet",
            n.state
        ))
    })?;
    Ok(Json(a.to_odrl(&n.signatures)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Pseudonyms {
    /// Pseudonyms the consumer reported (at most 10 000).
    pseudonyms: Vec<String>,
}

#[derive(Serialize, ToSchema)]
struct Reidentified {
    pseudonym: String,
    /// The subject identifier, when the pseudonym is one of the product's.
    subject: Option<String>,
}

/// Maps an agreement's pseudonyms back to subject identifiers: only the owner's node can
/// (stewards; every use is logged).
#[utoipa::path(post, path = "/api/v1/negotiations/{id}/reidentify", tag = "agreements",
    params(("id" = String, Path, description = "The negotiation's id")),
    request_body = Pseudonyms,
    responses((status = 200, body = Vec<Reidentified>), (status = 403, body = ErrorBody)))]
async fn reidentify(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Pseudonyms>,
) -> Result<Json<Vec<Reidentified>>, ApiError> {
    caller.require(ApiRole::Steward)?;
    if body.pseudonyms.len() > 10_000 {
        return Err(ApiError::bad_request(
            "at most 10 000 pseudonyms per request; send them in parts",
        ));
    }
    let out = state.node.reidentify(&id, &body.pseudonyms).await?;
    tracing::info!(negotiation = %id, by = %caller.0.token.id, count = out.len(), "pseudonyms re-identified");
    Ok(Json(
        out.into_iter()
            .map(|(pseudonym, subject)| Reidentified { pseudonym, subject })
            .collect(),
    ))
}

#[derive(Serialize, ToSchema)]
struct DecisionView {
    seq: i64,
    at: chrono::DateTime<chrono::Utc>,
    principal: String,
    action: String,
    resource: String,
    decision: String,
    policies: Vec<String>,
    reasons: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct Limit {
    /// At most this many (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A list length asked for: 1 to 1000, 100 when not given.
fn list_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(100),
        Some(n @ 1..=1000) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit must be between 1 and 1000, not {n}"
        ))),
    }
}

/// The node's policy decisions, newest first, with the policies that decided them.
#[utoipa::path(get, path = "/api/v1/policy-decisions", tag = "agreements", params(Limit),
    responses((status = 200, body = Vec<DecisionView>)))]
async fn policy_decisions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(p): ApiQuery<Limit>,
) -> Result<Json<Vec<DecisionView>>, ApiError> {
    caller.require_one_of(&[ApiRole::Steward, ApiRole::Auditor])?;
    let limit = list_limit(p.limit)?;
    Ok(Json(
        state
            .node
            .policy_decisions(limit)
            .await?
            .into_iter()
            .map(|d| DecisionView {
                seq: d.seq,
                at: d.at,
                principal: d.principal,
                action: d.action,
                resource: d.resource,
                decision: d.decision,
                policies: d.policies,
                reasons: d.reasons,
            })
            .collect(),
    ))
}
