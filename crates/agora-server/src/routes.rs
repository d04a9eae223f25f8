//! Handlers and their OpenAPI descriptions.

use std::sync::Arc;

use agora_model::{MetadataPatch, Page, PageRequest, Product, SearchHit};
use agora_node::{ApiRole, OutputFormat};

use crate::api_types::{AccessView, RegisterBody, TokenView};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::{ApiError, AppState};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Agora node API",
        description = "Data products, catalog and SQL of one Agora node. Every route under /api/v1 (except this document) needs `Authorization: Bearer <token>`.",
        license(name = "Apache-2.0")
    ),
    paths(crate::tlog::tile),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;
impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Routes that need a token (the auth layer is added by `app`).
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(node_info))
        .routes(routes!(list_products, register_product))
        .routes(routes!(get_product, update_product, delete_product))
        .routes(routes!(search_catalog))
        .routes(routes!(run_query))
        .routes(routes!(list_accesses))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .merge(crate::agreements::router())
        .merge(crate::tlog::api_router())
}

/// Routes anyone may call.
pub(crate) fn public_router(doc: Arc<utoipa::openapi::OpenApi>) -> Router<AppState> {
    Router::new()
        .merge(crate::tlog::public_router())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = Arc::clone(&doc);
                async move { Json(doc.as_ref().clone()) }
            }),
        )
}

/// No such route: a page for browsers asking for anything but the API, a JSON error
/// otherwise.
pub(crate) async fn not_found(uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html && !uri.path().starts_with("/api/") {
        return agora_web::not_found_page();
    }
    ApiError::not_found("no such route; see /api/v1/openapi.json for the API").into_response()
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method; see /api/v1/openapi.json",
    )
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let membership = state.node.trust().map(|t| t.status(chrono::Utc::now()));
    let mut body = serde_json::json!({"member": state.node.member()});
    if let Some(m) = &membership {
        body["trust_list"] = serde_json::to_value(m).unwrap_or_default();
        // Where the witnessing of the transparency log stands; an inconsistency the
        // authority found is reported, the node still serves.
        body["transparency"] = serde_json::to_value(state.node.witness_state()).unwrap_or_default();
    }
    let problem = match state.node.ready().await {
        Err(e) => Some(e.to_string()),
        Ok(()) => match (membership, state.node.trust()) {
            (Some(m), _) if !m.usable() => Some(
                "the trust list expired beyond its grace period: this node serves no other member until the authority is reachable again".to_owned(),
            ),
            (_, Some(t)) => t.own_standing_problem(),
            _ => None,
        },
    };
    match problem {
        None => {
            body["status"] = "ready".into();
            Json(body).into_response()
        }
        Some(reason) => {
            body["status"] = "not_ready".into();
            body["reason"] = reason.into();
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

#[derive(Serialize, ToSchema)]
struct NodeInfo {
    member_id: String,
    name: String,
    version: String,
}

/// Who this node is.
#[utoipa::path(get, path = "/api/v1/node", tag = "node",
    responses((status = 200, body = NodeInfo), (status = 401, body = ErrorBody)))]
async fn node_info(State(state): State<AppState>) -> Json<NodeInfo> {
    Json(NodeInfo {
        member_id: state.node.member().to_string(),
        name: state.node.name().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct Paging {
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<u32>,
    /// Items per page (1–200, default 20).
    #[param(minimum = 1, maximum = 200)]
    per_page: Option<u32>,
}

/// Lists this node's data products, by name.
#[utoipa::path(get, path = "/api/v1/products", tag = "products", params(Paging),
    responses((status = 200, body = Page<Product>), (status = 401, body = ErrorBody)))]
async fn list_products(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<Paging>,
) -> Result<Json<Page<Product>>, ApiError> {
    Ok(Json(
        state
            .node
            .products(PageRequest::checked(p.page, p.per_page).map_err(ApiError::invalid_paging)?)
            .await?,
    ))
}

/// Registers a data product in place (the data is not copied). Local paths must lie in a
/// folder the node's operator allowed with `--allow-path`.
#[utoipa::path(post, path = "/api/v1/products", tag = "products", request_body = RegisterBody,
    responses((status = 201, body = Product), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn register_product(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<RegisterBody>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    caller.require(ApiRole::Steward)?;
    agora_node::location::check_client_location(&req.location, &state.config.allowed_roots)?;
    let product = state.node.register(req.into(), &|_| {}).await?;
    Ok((StatusCode::CREATED, Json(product)))
}

/// One data product: source, schema, metadata and profile.
#[utoipa::path(get, path = "/api/v1/products/{name}", tag = "products",
    params(("name" = String, Path, description = "Product name")),
    responses((status = 200, body = Product), (status = 404, body = ErrorBody)))]
async fn get_product(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Product>, ApiError> {
    Ok(Json(state.node.product(&name).await?))
}

/// Changes a product's metadata; fields left out stay as they are.
#[utoipa::path(patch, path = "/api/v1/products/{name}", tag = "products",
    params(("name" = String, Path, description = "Product name")),
    request_body = MetadataPatch,
    responses((status = 200, body = Product), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_product(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiJson(patch): ApiJson<MetadataPatch>,
) -> Result<Json<Product>, ApiError> {
    caller.require(ApiRole::Steward)?;
    Ok(Json(state.node.update_metadata(&name, patch).await?))
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RemoveParams {
    /// Revoke the agreements in force that other members read the product under (without
    /// it, removal is refused while there are any).
    #[serde(default)]
    revoke_agreements: bool,
}

/// Removes a product's registration (the data itself is not touched).
#[utoipa::path(delete, path = "/api/v1/products/{name}", tag = "products",
    params(("name" = String, Path, description = "Product name"), RemoveParams),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, description = "Agreements in force read the product (code `conflict`)", body = ErrorBody)))]
async fn delete_product(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<RemoveParams>,
) -> Result<StatusCode, ApiError> {
    caller.require(ApiRole::Steward)?;
    state
        .node
        .remove_product(&name, params.revoke_agreements)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    /// Words to look for in titles, descriptions, keywords, themes and column names.
    /// Every word must match (as a prefix). Empty lists everything.
    #[param(max_length = 500)]
    q: Option<String>,
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<u32>,
    /// Items per page (1–200, default 20).
    #[param(minimum = 1, maximum = 200)]
    per_page: Option<u32>,
}

/// Full-text search of the catalog.
#[utoipa::path(get, path = "/api/v1/catalog/search", tag = "catalog", params(SearchParams),
    responses((status = 200, body = Page<SearchHit>), (status = 401, body = ErrorBody)))]
async fn search_catalog(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<SearchParams>,
) -> Result<Json<Page<SearchHit>>, ApiError> {
    let q = p.q.unwrap_or_default();
    if q.len() > 500 {
        return Err(ApiError::bad_request(
            "the search text is longer than 500 characters",
        ));
    }
    Ok(Json(
        state
            .node
            .search(
                &q,
                PageRequest::checked(p.page, p.per_page).map_err(ApiError::invalid_paging)?,
            )
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    /// A read-only SQL query over this node's products.
    sql: String,
    /// `json` (default), `ndjson`, `csv` or `arrow`; or send an `Accept` header.
    format: Option<String>,
}

/// What a query read: its plan's tables, the agreements it read other members' products
/// under, and what aggregate agreements' disclosure control did (for the response headers
/// and the log).
struct ReadUnder {
    tables: String,
    agreements: String,
    disclosure: String,
}

impl ReadUnder {
    fn of(q: &agora_node::LoggedQuery) -> Self {
        Self {
            tables: q.products.join(", "),
            agreements: q.agreement_ids(),
            disclosure: q.disclosure_notices().join(" | "),
        }
    }

    fn set_headers(&self, response: &mut Response) {
        for (name, value) in [
            ("agora-tables", &self.tables),
            ("agora-agreements", &self.agreements),
            ("agora-disclosure-control", &self.disclosure),
        ] {
            if let (false, Ok(v)) = (value.is_empty(), HeaderValue::from_str(value)) {
                response.headers_mut().insert(name, v);
            }
        }
    }
}

/// Runs SQL over this node's products. The result streams: JSON array of objects, NDJSON,
/// CSV or an Arrow IPC stream.
#[utoipa::path(post, path = "/api/v1/query", tag = "query", request_body = QueryRequest,
    responses(
        (status = 200, description = "Query result", content(
            (serde_json::Value = "application/json"),
            (String = "application/x-ndjson"),
            (String = "text/csv"),
            (Vec<u8> = "application/vnd.apache.arrow.stream")),
            headers(
                ("agora-tables" = String, description = "The products the query's plan read, as named in SQL, comma-separated"),
                ("agora-agreements" = String, description = "The ids of the agreements other members' products were read under, comma-separated (absent when there were none)"),
                ("agora-disclosure-control" = String, description = "For products read under aggregate agreements: what their disclosure control withheld and perturbed, in words (groups below the minimum size are withheld, and their number is not disclosed)"))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, description = "The query passed one of the node's limits (code `query_limit`)", body = ErrorBody)))]
async fn run_query(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<QueryRequest>,
) -> Result<Response, ApiError> {
    let format = match req.format.as_deref() {
        Some(f) => f.parse::<OutputFormat>().map_err(ApiError::bad_request)?,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .and_then(|accept| accept.split(',').find_map(OutputFormat::from_media_type))
            .unwrap_or(OutputFormat::Json),
    };
    let started = std::time::Instant::now();
    let who = agora_node::Accessor::token(&caller.0.token);
    let logged = state
        .node
        .query_logged(&who, Some(&caller.0), &req.sql)
        .await?;
    let read = ReadUnder::of(&logged);
    let mut stream = logged.result.encode(format);
    // Wait for the first chunk so that errors at the start get a proper status; a small
    // result that is complete by then goes out in one piece, with its length.
    let mut head: Vec<Bytes> = Vec::new();
    let mut head_len = 0;
    let complete = loop {
        if head_len >= SMALL_RESULT_BYTES {
            break false;
        }
        let next = if head.is_empty() {
            stream.next().await
        } else {
            match futures::FutureExt::now_or_never(stream.next()) {
                Some(next) => next,
                None => break false,
            }
        };
        match next {
            Some(Ok(b)) => {
                head_len += b.len();
                head.push(b);
            }
            Some(Err(e)) => return Err(agora_node::NodeError::from(e).into()),
            None => break true,
        }
    };
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        format = format.as_str(),
        complete,
        tables = %read.tables,
        agreements = %read.agreements,
        token = %caller.0.token.id,
        "query answered"
    );
    let content_type = [(header::CONTENT_TYPE, format.content_type())];
    if complete {
        let mut response = (content_type, head.concat()).into_response();
        read.set_headers(&mut response);
        return Ok(response);
    }
    let body = futures::stream::iter(head.into_iter().map(Ok)).chain(stream.map(|r| {
        r.map_err(|e| {
            tracing::error!(error = %e, "query failed while streaming");
            std::io::Error::other(e.to_string())
        })
    }));
    let mut response = (content_type, Body::from_stream(body)).into_response();
    read.set_headers(&mut response);
    Ok(response)
}

/// Results up to this size are sent whole when they are ready at once.
const SMALL_RESULT_BYTES: usize = 256 * 1024;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AccessParams {
    /// How many records, newest first (1–10000, default 100).
    #[param(minimum = 1, maximum = 10_000)]
    limit: Option<u32>,
}

/// The access log: queries by this node's own people and tools that read data products
/// (other members' queries are in the exchange log), newest first.
#[utoipa::path(get, path = "/api/v1/accesses", tag = "query", params(AccessParams),
    responses((status = 200, body = Vec<AccessView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_accesses(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<AccessParams>,
) -> Result<Json<Vec<AccessView>>, ApiError> {
    caller.require(ApiRole::Auditor)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit must be from 1 to 10000".to_owned(),
        ));
    }
    let records = state.node.accesses(limit).await?;
    Ok(Json(records.into_iter().map(AccessView::from).collect()))
}

/// Lists API tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenView>), (status = 403, body = ErrorBody)))]
async fn list_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    caller.require(ApiRole::Admin)?;
    let tokens = state.node.tokens().await?;
    Ok(Json(tokens.into_iter().map(TokenView::from).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTokenRequest {
    /// What the token is for, e.g. "reporting job".
    label: String,
    role: ApiRole,
}

#[derive(Serialize, ToSchema)]
struct CreatedToken {
    /// The secret: shown this once, stored only as a hash.
    token: String,
    info: TokenView,
}

/// Issues a new API token.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    caller.require(ApiRole::Admin)?;
    let label = req.label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "the label must have 1 to 100 characters",
        ));
    }
    let t = state
        .node
        .create_token(
            label,
            req.role,
            &agora_node::Accessor::token(&caller.0.token),
        )
        .await?;
    tracing::info!(token = %t.info.id, role = %t.info.role, by = %caller.0.token.id, "api token issued");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: t.secret,
            info: t.info.into(),
        }),
    ))
}

/// Revokes an API token at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = TokenView), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TokenView>, ApiError> {
    caller.require(ApiRole::Admin)?;
    let t = state
        .node
        .revoke_token(&id, &agora_node::Accessor::token(&caller.0.token))
        .await?;
    tracing::info!(token = %t.id, by = %caller.0.token.id, "api token revoked");
    Ok(Json(t.into()))
}
