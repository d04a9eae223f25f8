//! The authority's HTTPS interface: enrolment (one-time token + signing request), further
//! certificates for members authenticated by their current certificate, the signed trust
//! list and the root certificate.

use std::sync::Arc;

use agora_authority::{Authority, AuthorityError, AuthorityErrorKind};
use agora_model::paths::{CERTIFICATES, ENROL, LINKAGE_KEYS, ROOT, TRUST_LIST, WITNESS};
use agora_model::{
    CertificateRequest, EnrolRequest, IssuedBundle, LinkageKeyGrant, LinkageKeyRequest,
    SignedTrustList, WITNESSED_SIZE_HEADER, WitnessReply, WitnessRequest,
};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use crate::ApiError;
use crate::error::ApiJson;
use crate::tls::PeerCertificate;

impl From<AuthorityError> for ApiError {
    fn from(e: AuthorityError) -> Self {
        use AuthorityErrorKind as K;
        let message = e.to_string();
        let (status, code) = match e.kind() {
            K::EnrolmentRefused => (StatusCode::FORBIDDEN, "enrolment_refused"),
            K::Revoked => (StatusCode::FORBIDDEN, "revoked"),
            K::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            K::Refused => (StatusCode::FORBIDDEN, "refused"),
            K::BadRequest => (StatusCode::BAD_REQUEST, "bad_request"),
            K::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            K::Conflict => (StatusCode::CONFLICT, "witnessed_size_differs"),
            K::Inconsistent => (StatusCode::UNPROCESSABLE_ENTITY, "log_inconsistent"),
        };
        if status.is_client_error() {
            tracing::warn!(code, reason = %message, "authority request refused");
        }
        ApiError::new(status, code, message)
    }
}

/// The authority's application.
pub fn authority_app(authority: Arc<Authority>) -> Router {
    Router::new()
        .route(ENROL, post(enrol))
        .route(CERTIFICATES, post(certificates))
        .route(LINKAGE_KEYS, post(linkage_keys))
        .route(WITNESS, post(witness))
        .route(TRUST_LIST, get(trust_list))
        .route(ROOT, get(root))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .fallback(crate::routes::not_found)
        .with_state(authority)
        .layer(DefaultBodyLimit::max(64 * 1024))
}

async fn enrol(
    State(a): State<Arc<Authority>>,
    ApiJson(req): ApiJson<EnrolRequest>,
) -> Result<Json<IssuedBundle>, ApiError> {
    Ok(Json(a.enrol(&req).await?))
}

async fn certificates(
    State(a): State<Arc<Authority>>,
    Extension(peer): Extension<PeerCertificate>,
    ApiJson(req): ApiJson<CertificateRequest>,
) -> Result<Json<IssuedBundle>, ApiError> {
    let presented = peer.0.ok_or_else(|| {
        ApiError::unauthenticated(
            "present your member certificate (mutual TLS) to ask for further certificates",
        )
    })?;
    Ok(Json(a.issue_further(&presented, &req).await?))
}

async fn linkage_keys(
    State(a): State<Arc<Authority>>,
    Extension(peer): Extension<PeerCertificate>,
    ApiJson(req): ApiJson<LinkageKeyRequest>,
) -> Result<Json<LinkageKeyGrant>, ApiError> {
    let presented = peer.0.ok_or_else(|| {
        ApiError::unauthenticated("present your member node certificate (mutual TLS)")
    })?;
    Ok(Json(a.issue_linkage_key(&presented, &req).await?))
}

async fn witness(
    State(a): State<Arc<Authority>>,
    Extension(peer): Extension<PeerCertificate>,
    ApiJson(req): ApiJson<WitnessRequest>,
) -> Result<Json<WitnessReply>, axum::response::Response> {
    let presented = peer.0.ok_or_else(|| {
        ApiError::unauthenticated("present your member node certificate (mutual TLS)")
            .into_response()
    })?;
    match a.witness(&presented, &req).await {
        Ok(reply) => Ok(Json(reply)),
        Err(e) => {
            let size = e.witnessed_size();
            let mut resp = ApiError::from(e).into_response();
            if let Some(n) = size {
                resp.headers_mut()
                    .insert(WITNESSED_SIZE_HEADER, header::HeaderValue::from(n));
            }
            Err(resp)
        }
    }
}

async fn trust_list(State(a): State<Arc<Authority>>) -> Result<Json<SignedTrustList>, ApiError> {
    Ok(Json(a.trust_list().await?))
}

async fn root(State(a): State<Arc<Authority>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        a.root().cert_pem(),
    )
}

/// Ready, and — as the witness of the members' transparency logs — the inconsistencies
/// it detected, one line each (the authority itself still serves).
async fn ready(State(a): State<Arc<Authority>>) -> Result<String, ApiError> {
    a.record().await?;
    let mut out = String::from("ready\n");
    for alert in a.witness_alerts(20).await? {
        out.push_str(&format!(
            "warning: transparency log of {} inconsistent (detected {}): {}\n",
            alert.member,
            alert
                .detected_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            alert.reason
        ));
    }
    Ok(out)
}
