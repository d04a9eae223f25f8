//! The node's exchange listener: what other members' nodes may ask, over mutual TLS with
//! signed requests and signed responses, every exchange recorded by both sides.

use std::future::Future;
use std::sync::Arc;

use agora_model::paths;
use agora_node::Node;
use agora_node::exchange::InboundEnd;
use agora_trust::sign::{REQUEST_HEADER, RESPONSE_HEADER};
use agora_trust::{RequestSignature, RequestTarget, digest_hex};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use tokio::net::TcpListener;

use crate::tls::PeerCertificate;
use crate::{ApiError, ServeError};

/// How often the listener notes that it is alive (a crash is dated to within this).
const HEARTBEAT_SECS: u64 = 5;

/// Largest signed request body read.
const BODY_LIMIT: usize = 1024 * 1024;

/// The member whose signed request is being served.
#[derive(Debug, Clone)]
pub struct PeerMember(pub agora_model::TrustedMember, pub [u8; 32]);

/// The exchange listener's application.
pub fn exchange_app(node: Node) -> Router {
    let signed = Router::new()
        .route(paths::OFFERS, get(offers))
        .route(paths::NEGOTIATIONS, axum::routing::post(negotiation_step))
        .route(paths::SUBJECT_TAG, axum::routing::post(subject_tag))
        .route(paths::SUBJECT_HISTORY, axum::routing::post(subject_history))
        .route(paths::SUBJECT_CONSENT, axum::routing::post(subject_consent))
        .route(
            paths::SUBJECT_HOLDINGS,
            axum::routing::post(subject_holdings),
        )
        .route_layer(axum::middleware::from_fn_with_state(node.clone(), signed));
    Router::new()
        .merge(signed)
        .route_service(
            "/arrow.flight.protocol.FlightService/{*method}",
            crate::flight::flight_service(node.clone()),
        )
        .route("/healthz", get(|| async { "ok" }))
        .fallback(crate::routes::not_found)
        .with_state(node)
}

async fn offers(
    State(node): State<Node>,
    Extension(peer): Extension<PeerMember>,
) -> Result<Response, ApiError> {
    tracing::info!(peer = %peer.0.id, "offers requested");
    let offers = node.offers().await.map_err(|e| ApiError::for_member(&e))?;
    Ok(Json(offers).into_response())
}

async fn negotiation_step(
    State(node): State<Node>,
    Extension(peer): Extension<PeerMember>,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let message: agora_model::NegotiationMessage = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a negotiation message: {e}")))?;
    tracing::info!(peer = %peer.0.id, negotiation = %message.id(), state = %message.state(), "negotiation step received");
    let reply = node
        .receive_negotiation(&peer.0, &peer.1, message)
        .await
        .map_err(|e| ApiError::for_member(&e))?;
    Ok(Json(reply).into_response())
}

/// A citizen portal asks for a subject's tag, blinded.
async fn subject_tag(
    State(node): State<Node>,
    Extension(peer): Extension<PeerMember>,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let req: agora_model::SubjectTagRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a subject tag request: {e}")))?;
    tracing::info!(peer = %peer.0.id, "subject tag evaluated");
    let answer = node
        .evaluate_subject_tag(&peer.0.id, &req)
        .await
        .map_err(|e| ApiError::for_member(&e))?;
    Ok(Json(answer).into_response())
}

/// A citizen portal asks for one bucket of the subject index.
async fn subject_history(
    State(node): State<Node>,
    Extension(peer): Extension<PeerMember>,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let req: agora_model::SubjectHistoryRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a subject history request: {e}")))?;
    tracing::info!(peer = %peer.0.id, bucket = req.bucket, "subject index bucket asked for");
    let answer = node
        .subject_history(&peer.0.id, &req)
        .await
        .map_err(|e| ApiError::for_member(&e))?;
    Ok(Json(answer).into_response())
}

/// A citizen portal asks which products hold a resident, by one bucket of tags.
async fn subject_holdings(
    State(node): State<Node>,
    Extension(peer): Extension<PeerMember>,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let req: agora_model::SubjectHoldingsRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a holdings request: {e}")))?;
    tracing::info!(peer = %peer.0.id, bucket = req.bucket, "subject holdings asked for");
    let answer = node
        .subject_holdings(&peer.0.id, &req)
        .await
        .map_err(|e| ApiError::for_member(&e))?;
    Ok(Json(answer).into_response())
}

/// A citizen portal passes on a resident's consent change.
async fn subject_consent(
    State(node): State<Node>,
    Extension(peer): Extension<PeerMember>,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let req: agora_model::SubjectConsentRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a consent change: {e}")))?;
    tracing::info!(peer = %peer.0.id, purpose = %req.purpose, "consent change received");
    let answer = node
        .receive_consent(&peer.0.id, &req)
        .await
        .map_err(|e| ApiError::for_member(&e))?;
    Ok(Json(answer).into_response())
}

fn with_signature(mut resp: Response, header: Option<String>) -> Response {
    if let Some(h) = header.and_then(|h| HeaderValue::from_str(&h).ok()) {
        resp.headers_mut().insert(RESPONSE_HEADER, h);
    }
    resp
}

/// Admits, logs and signs every request of the routes it wraps.
async fn signed(
    State(node): State<Node>,
    Extension(peer): Extension<PeerCertificate>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let header = parts
        .headers
        .get(REQUEST_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let nonce = RequestSignature::nonce_of(header.as_deref());
    let refuse = |e: ApiError| {
        let status = e.status.as_u16();
        let resp = e.into_response();
        let (p, b) = resp.into_parts();
        let node = node.clone();
        let nonce = nonce.clone();
        async move {
            let bytes = axum::body::to_bytes(b, usize::MAX)
                .await
                .unwrap_or_default();
            let sig = node.sign_refusal(&nonce, status, &bytes);
            with_signature(Response::from_parts(p, Body::from(bytes)), sig)
        }
    };
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("signed requests are limited to {BODY_LIMIT} bytes"),
            ))
            .await;
        }
    };
    let Some(cert) = peer.0 else {
        return refuse(ApiError::unauthenticated(
            "present your member certificate (mutual TLS)",
        ))
        .await;
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let digest = digest_hex(&bytes);
    let target = RequestTarget {
        method: parts.method.as_str(),
        path: &path,
        body_digest: &digest,
    };
    let inbound = match node.begin_inbound(&cert, header.as_deref(), &target).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(peer = %cert.common_name, reason = %e, "exchange request refused");
            return refuse(ApiError::for_member(&e)).await;
        }
    };
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut()
        .insert(PeerMember(inbound.peer.clone(), inbound.peer_key));
    let resp = next.run(req).await;
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let sig = node
        .end_inbound(&inbound, InboundEnd::body(parts.status.as_u16(), &body))
        .await;
    match sig {
        Ok(h) => with_signature(Response::from_parts(parts, Body::from(body)), Some(h)),
        Err(e) => ApiError::for_member(&e).into_response(),
    }
}

/// Serves the exchange listener of an enrolled node until `shutdown`.
pub async fn serve_exchange(
    node: Node,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let trust = node.enrolled()?;
    let tls = agora_trust::tls::server_config(
        &trust.material().root,
        trust.identity(),
        agora_trust::ClientAuth::Required,
    )?;
    let addr = listener.local_addr()?;
    // Exchanges a previous run left pending are marked interrupted before new ones begin.
    node.reconcile_interrupted().await?;
    let beating = node.clone();
    let heartbeat = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(HEARTBEAT_SECS));
        loop {
            tick.tick().await;
            if let Err(e) = beating.heartbeat() {
                tracing::warn!(error = %e, "cannot write the heartbeat");
            }
        }
    });
    tracing::info!(%addr, member = %node.member(), "exchange listener up");
    let served = crate::serve_tls(listener, Arc::new(tls), exchange_app(node), shutdown).await;
    heartbeat.abort();
    served?;
    Ok(())
}
