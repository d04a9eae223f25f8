//! Bearer-token authentication for every API route.

use agora_node::ApiRole;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use crate::{ApiError, AppState};

/// The authenticated caller, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct Caller(pub agora_node::Caller);

impl Caller {
    /// Refuses the request unless the caller's role includes `needed`.
    pub fn require(&self, needed: ApiRole) -> Result<(), ApiError> {
        let token = &self.0.token;
        if token.role.allows(needed) {
            Ok(())
        } else {
            tracing::warn!(token = %token.id, role = %token.role, needed = %needed, "access refused");
            Err(ApiError::forbidden(format!(
                "this needs a token with role {needed}; yours has role {}",
                token.role
            )))
        }
    }
}

pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthenticated(
                "this API needs a bearer token: send Authorization: Bearer <token>",
            )
        })?
        .to_str()
        .map_err(|_| ApiError::unauthenticated("the Authorization header is not valid text"))?;
    let secret = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::unauthenticated("use the Bearer scheme: Authorization: Bearer <token>")
        })?
        .trim();
    let info = state
        .node
        .authenticate(secret)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            tracing::warn!(path = %req.uri().path(), "request with unknown or revoked token");
            ApiError::unauthenticated("the token is unknown or has been revoked")
        })?;
    req.extensions_mut().insert(Caller(info));
    Ok(next.run(req).await)
}
