//! Structured JSON errors: `{"error": {"code": "...", "message": "..."}}`.

use agora_node::{EngineError, NodeError};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code such as `not_found` or `invalid_sql`.
    pub code: String,
    /// What went wrong and what to do, for people.
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A page number or size out of range.
    pub fn invalid_paging(e: agora_model::PageError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_paging", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let mut resp = (
            self.status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code: self.code.to_owned(),
                    message: self.message,
                },
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"agora\""),
            );
        }
        resp
    }
}

impl ApiError {
    /// `e` as another member may see it (the exchange listener's answers): see
    /// `member_error`.
    pub fn for_member(e: &NodeError) -> Self {
        use crate::member_error::{MemberFault, for_member};
        let (fault, message) = for_member(e);
        let (status, code) = match fault {
            MemberFault::Internal => {
                tracing::error!(error = %e, "a member's request failed at this node");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            MemberFault::Unavailable
                if !matches!(
                    e,
                    NodeError::TrustListExpired { .. } | NodeError::NotEnrolled
                ) =>
            {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            _ => status_and_code(e),
        };
        Self::new(status, code, message)
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let (status, code) = status_and_code(&e);
        Self::new(status, code, e.to_string())
    }
}

/// The HTTP status and code of a node error.
fn status_and_code(e: &NodeError) -> (StatusCode, &'static str) {
    use agora_node::StoreError as S;
    {
        match e {
            NodeError::Store(S::ProductNotFound(_)) | NodeError::Store(S::TokenNotFound(_)) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            NodeError::Store(S::DuplicateProduct(_)) => (StatusCode::CONFLICT, "already_exists"),
            NodeError::Store(S::Conflict(_)) => (StatusCode::CONFLICT, "conflict"),
            NodeError::Store(S::NegotiationNotFound(_)) => (StatusCode::NOT_FOUND, "not_found"),
            NodeError::Store(S::NegotiationMoved { .. }) | NodeError::Agreement(_) => {
                (StatusCode::CONFLICT, "conflict")
            }
            NodeError::Negotiation(_) | NodeError::Terms(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
            }
            NodeError::Engine(EngineError::Syntax(_)) | NodeError::Engine(EngineError::Plan(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_sql")
            }
            NodeError::Engine(EngineError::NotReadOnly(_)) => (StatusCode::FORBIDDEN, "read_only"),
            NodeError::Engine(EngineError::AccessDenied(_)) => {
                (StatusCode::FORBIDDEN, "access_denied")
            }
            NodeError::Engine(EngineError::RemoteRefused(_)) => {
                (StatusCode::FORBIDDEN, "peer_refused")
            }
            NodeError::Engine(EngineError::Remote(_)) => (StatusCode::BAD_GATEWAY, "peer_failed"),
            NodeError::Engine(EngineError::Source { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unreadable_data")
            }
            NodeError::Engine(EngineError::SchemaDrift { .. }) => {
                (StatusCode::CONFLICT, "schema_drift")
            }
            NodeError::Metadata(_) | NodeError::Sidecar(_) | NodeError::ForeignOwner { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_metadata")
            }
            NodeError::Id(_) | NodeError::Source(_) | NodeError::BadLocation { .. } => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            NodeError::PeerRefused { .. } => (StatusCode::FORBIDDEN, "peer_refused"),
            NodeError::TrustListExpired { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "trust_list_expired")
            }
            NodeError::NotEnrolled => (StatusCode::SERVICE_UNAVAILABLE, "not_enrolled"),
            NodeError::Exchange(_) => (StatusCode::BAD_GATEWAY, "peer_failed"),
            NodeError::Engine(EngineError::Evaluation(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_sql")
            }
            NodeError::Engine(EngineError::Limit(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "query_limit")
            }
            NodeError::Engine(EngineError::Format(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_format")
            }
            _ if e.is_user_error() => (StatusCode::BAD_REQUEST, "bad_request"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "invalid_json",
        };
        let message = match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                "the request body is larger than this node accepts".to_owned()
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                "send the request body as JSON with Content-Type: application/json".to_owned()
            }
            _ => lower_first(&r.body_text()),
        };
        Self::new(status, code, message)
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// JSON body extractor whose rejections are structured errors.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(r) => Err(r.into()),
        }
    }
}

/// Query-string extractor whose rejections are structured errors.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(r) => Err(query_rejection(r)),
        }
    }
}

fn query_rejection(r: QueryRejection) -> ApiError {
    ApiError::new(
        r.status(),
        "invalid_query_string",
        lower_first(&r.body_text()),
    )
}

/// Path extractor whose rejections are structured errors.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(r) => Err(path_rejection(r)),
        }
    }
}

fn path_rejection(r: PathRejection) -> ApiError {
    ApiError::new(r.status(), "invalid_path", lower_first(&r.body_text()))
}
