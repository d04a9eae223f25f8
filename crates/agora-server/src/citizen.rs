//! The citizen portal's API: a resident signs in with their national identifier and a
//! one-time code (`POST /api/v1/citizen/sessions`, public) and uses the session's token as
//! a bearer token for their own history and consent — the same workflows as the portal's
//! pages (`agora_node::citizen`). A resident's token is not a staff token: the staff
//! routes refuse it, and these routes refuse staff tokens. Whose history is answered comes
//! from the token alone.

use std::net::SocketAddr;

use agora_node::citizen::{CitizenHistory, MemberConsent};
use agora_node::residents::CitizenSignIn;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiJson, ErrorBody};
use crate::{ApiError, AppState};

/// The resident a citizen token names.
#[derive(Debug, Clone)]
pub(crate) struct Resident {
    person_id: String,
    secret: String,
}

/// The public route: signing in.
pub(crate) fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sign_in))
}

/// The routes that need a resident's token.
pub(crate) fn resident_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(history))
        .routes(routes!(consent))
        .routes(routes!(sign_out))
}

/// Admits requests with a resident's token.
pub(crate) async fn require_resident(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let secret = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|s| s.trim().to_owned())
        .ok_or_else(|| {
            ApiError::unauthenticated(
                "sign in with POST /api/v1/citizen/sessions and send its token: \
                 Authorization: Bearer <token>",
            )
        })?;
    let session = state.node.citizen_session(&secret).await?.ok_or_else(|| {
        ApiError::unauthenticated("the token is unknown or has expired; sign in again")
    })?;
    req.extensions_mut().insert(Resident {
        person_id: session.person_id,
        secret,
    });
    Ok(next.run(req).await)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignInRequest {
    /// The national identification number (11 digits).
    person_id: String,
    /// The one-time code issued for it (8 digits).
    code: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ResidentSession {
    /// A bearer token for the other citizen routes.
    token: String,
    expires_at: DateTime<Utc>,
}

/// Signs a resident in with a one-time code (issued by `agora citizen code`). Failed
/// attempts are throttled per identifier and per client address.
#[utoipa::path(post, path = "/api/v1/citizen/sessions", tag = "citizen",
    request_body = SignInRequest, security(()),
    responses((status = 201, body = ResidentSession), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn sign_in(
    State(state): State<AppState>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    ApiJson(req): ApiJson<SignInRequest>,
) -> Result<Response, ApiError> {
    let client = connection.map(|c| c.0.0.ip());
    match state
        .node
        .citizen_sign_in(req.person_id.trim(), req.code.trim(), client)
        .await?
    {
        CitizenSignIn::SignedIn(token, session) => Ok((
            StatusCode::CREATED,
            Json(ResidentSession {
                token,
                expires_at: session.expires_at,
            }),
        )
            .into_response()),
        CitizenSignIn::Refused => Err(ApiError::unauthenticated(
            "the identification number or the code is not right, or the code was used or has expired",
        )),
        CitizenSignIn::Throttled(wait) => {
            let secs = wait.as_secs().max(1);
            let mut r = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many attempts have failed; try again in {secs} s"),
            )
            .into_response();
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&secs.to_string()).expect("digits"),
            );
            Ok(r)
        }
    }
}

/// The resident's history across the ecosystem: per member, the products holding records
/// about them and every access to their records, proven complete up to a witnessed
/// checkpoint (or why the member could not be checked).
#[utoipa::path(get, path = "/api/v1/citizen/history", tag = "citizen",
    responses((status = 200, body = HistoryView)))]
async fn history(
    State(state): State<AppState>,
    Extension(resident): Extension<Resident>,
) -> Result<Json<HistoryView>, ApiError> {
    let h = state.node.citizen_history(&resident.person_id).await?;
    Ok(Json(HistoryView::from(h)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsentRequest {
    /// A purpose of the ecosystem's vocabulary, such as `job_matching`.
    purpose: String,
    /// True to withdraw consent, false to give it again.
    withdrawn: bool,
}

/// One member's answer to a consent change.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConsentView {
    member: String,
    name: String,
    /// Whether the member holds the resident (and so applied the change); absent when it
    /// could not be asked.
    held: Option<bool>,
    problem: Option<String>,
}

/// Withdraws (or gives again) the resident's consent for a purpose at every member.
#[utoipa::path(post, path = "/api/v1/citizen/consent", tag = "citizen",
    request_body = ConsentRequest, responses((status = 200, body = Vec<ConsentView>)))]
async fn consent(
    State(state): State<AppState>,
    Extension(resident): Extension<Resident>,
    ApiJson(req): ApiJson<ConsentRequest>,
) -> Result<Json<Vec<ConsentView>>, ApiError> {
    let answers = state
        .node
        .citizen_consent(&resident.person_id, &req.purpose, req.withdrawn)
        .await?;
    Ok(Json(answers.into_iter().map(ConsentView::from).collect()))
}

/// Ends the resident's session.
#[utoipa::path(delete, path = "/api/v1/citizen/sessions/current", tag = "citizen",
    responses((status = 204)))]
async fn sign_out(
    State(state): State<AppState>,
    Extension(resident): Extension<Resident>,
) -> Result<StatusCode, ApiError> {
    state.node.citizen_sign_out(&resident.secret).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<MemberConsent> for ConsentView {
    fn from(c: MemberConsent) -> Self {
        let (held, problem) = match c.outcome {
            Ok(h) => (Some(h), None),
            Err(e) => (None, Some(e)),
        };
        Self {
            member: c.member.to_string(),
            name: c.name,
            held,
            problem,
        }
    }
}

/// A resident's history, member by member.
#[derive(Serialize, ToSchema)]
pub(crate) struct HistoryView {
    members: Vec<MemberView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MemberView {
    member: String,
    name: String,
    /// Titles of the member's products holding records about the resident.
    holdings: Option<Vec<String>>,
    /// Present when the member's answer was checked.
    verified: Option<VerifiedView>,
    /// Why the member could not be asked or checked.
    problem: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VerifiedView {
    /// No other access exists among the log's first `size` entries.
    size: u64,
    witnessed_at: DateTime<Utc>,
    /// The member's checkpoint, signed and cosigned.
    checkpoint: String,
    accesses: Vec<AccessView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AccessView {
    index: u64,
    #[schema(value_type = Object)]
    entry: agora_model::AuditEntry,
    /// The inclusion proof in the checkpoint (hex hashes).
    proof: Vec<String>,
}

impl From<CitizenHistory> for HistoryView {
    fn from(h: CitizenHistory) -> Self {
        let members = h
            .members
            .into_iter()
            .map(|m| {
                let (verified, problem) = match m.outcome {
                    Ok(v) => (
                        Some(VerifiedView {
                            size: v.size,
                            witnessed_at: v.witnessed_at,
                            checkpoint: v.checkpoint,
                            accesses: v
                                .accesses
                                .into_iter()
                                .map(|a| AccessView {
                                    index: a.index,
                                    entry: a.entry,
                                    proof: a.proof,
                                })
                                .collect(),
                        }),
                        None,
                    ),
                    Err(e) => (None, Some(e)),
                };
                MemberView {
                    member: m.member.to_string(),
                    name: m.name,
                    holdings: m.holdings.ok(),
                    verified,
                    problem,
                }
            })
            .collect();
        Self { members }
    }
}
