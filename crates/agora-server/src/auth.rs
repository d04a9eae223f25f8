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

impl Caller {
    /// Refuses the request unless the caller's role includes one of `roles`.
    pub fn require_one_of(&self, roles: &[ApiRole]) -> Result<(), ApiError> {
        match roles.iter().find(|r| self.0.token.role.allows(**r)) {
            Some(_) => Ok(()),
            None => self.require(roles[0]),
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
    if !role_may_call(info.token.role, req.method(), req.uri().path()) {
        tracing::warn!(token = %info.token.id, path = %req.uri().path(), "auditor's token refused outside the records");
        return Err(ApiError::forbidden(
            "an auditor's token reads this node's records (the transparency log, accesses, policy decisions and agreements) and no data",
        ));
    }
    req.extensions_mut().insert(Caller(info));
    Ok(next.run(req).await)
}

/// Whether a token of `role` may make this call at all: an auditor's reads only the
/// records (deny by default: a route added later is closed to auditors until listed
/// here); every other role may call every route, each checking the role it needs.
///
/// A query (`/api/v1/query`), the catalog, products and every change are not records.
pub(crate) fn role_may_call(role: ApiRole, method: &axum::http::Method, path: &str) -> bool {
    if role != ApiRole::Auditor {
        return true;
    }
    let records = path == "/api/v1/node"
        || path == "/api/v1/accesses"
        || path == "/api/v1/policy-decisions"
        || path.starts_with("/api/v1/tlog/")
        || path.starts_with("/api/v1/audit/")
        || path == "/api/v1/negotiations"
        || (path.starts_with("/api/v1/negotiations/")
            && (path.matches('/').count() == 4 || path.ends_with("/odrl")));
    method == axum::http::Method::GET && records
}
