//! Structured JSON errors: `{"error": {"code": "...", "message": "..."}}`.

use agora_node::{ErrorKind, NodeError};
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
    /// `agora_node::member_error`.
    pub fn for_member(e: &NodeError) -> Self {
        use agora_node::member_error::{MemberFault, for_member};
        let (fault, message) = for_member(e);
        let kind = e.kind();
        let (status, code) = match fault {
            MemberFault::Internal => {
                tracing::error!(error = %e, "a member's request failed at this node");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            MemberFault::Unavailable
                if !matches!(kind, ErrorKind::TrustListExpired | ErrorKind::NotEnrolled) =>
            {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            _ => (status_of(kind), kind.code()),
        };
        Self::new(status, code, message)
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let kind = e.kind();
        Self::new(status_of(kind), kind.code(), e.to_string())
    }
}

/// The HTTP status of a kind of node error.
fn status_of(kind: ErrorKind) -> StatusCode {
    use ErrorKind as K;
    match kind {
        K::NotFound => StatusCode::NOT_FOUND,
        K::AlreadyExists | K::Conflict | K::SchemaDrift => StatusCode::CONFLICT,
        K::InvalidRequest
        | K::UnreadableData
        | K::InvalidMetadata
        | K::QueryLimit
        | K::UnsupportedFormat => StatusCode::UNPROCESSABLE_ENTITY,
        K::InvalidSql | K::BadRequest => StatusCode::BAD_REQUEST,
        K::ReadOnly | K::AccessDenied | K::PeerRefused | K::Forbidden => StatusCode::FORBIDDEN,
        K::PeerFailed => StatusCode::BAD_GATEWAY,
        K::TrustListExpired | K::NotEnrolled => StatusCode::SERVICE_UNAVAILABLE,
        K::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        K::Internal => StatusCode::INTERNAL_SERVER_ERROR,
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
