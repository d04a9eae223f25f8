//! The node's transparency log over HTTP, in the C2SP `tlog-tiles` layout.
//!
//! - `/tlog/checkpoint` and `/tlog/tile/L/N[.p/W]`, to anyone: the signed (and, once
//!   witnessed, cosigned) checkpoint and the tiles of hashes. Hashes say nothing about
//!   what was logged; with them anyone can check that the log only grows.
//! - `/api/v1/tlog/…`, to auditors (and admins): the same, and the entry bundles
//!   (`tile/entries/N[.p/W]`), which say who exchanged what with whom, for what purpose.
//!   `agora audit verify --node URL` reads the whole log from here.
//! - `/api/v1/tlog/entries/{index}/proof`: an entry with the proof that it is in a signed
//!   checkpoint; `/api/v1/audit/entries`: the entries an auditor filters for.

use agora_model::EntryFilter;
use agora_node::transparency::InclusionProof;
use agora_node::{ApiRole, Node};
use agora_trust::tlog::{TilePath, parse_tile_path};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiQuery, ErrorBody};
use crate::{ApiError, AppState};

/// The log's routes open to anyone.
pub(crate) fn public_router() -> Router<AppState> {
    Router::new()
        .route("/tlog/checkpoint", get(public_checkpoint))
        .route("/tlog/tile/{*path}", get(public_tile))
}

/// The log's routes for auditors (the auth layer is added by `app`).
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    // A tile's path has several segments (`0/x001/234.p/5`): the route takes them all,
    // and the document names the operation once (see `routes::ApiDoc`).
    OpenApiRouter::new()
        .routes(routes!(checkpoint))
        .route("/api/v1/tlog/tile/{*path}", get(tile))
        .routes(routes!(entry_proof))
        .routes(routes!(entry_subjects))
        .routes(routes!(audit_entries))
        .routes(routes!(audit_entries_csv))
}

async fn checkpoint_response(node: &Node) -> Result<Response, ApiError> {
    let note = node.log_checkpoint().await?.ok_or_else(|| {
        ApiError::not_found(
            "the log has no checkpoint yet: the node signs one every second once it is enrolled and the log holds entries",
        )
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        note,
    )
        .into_response())
}

async fn tile_response(
    node: &Node,
    path: &str,
    entries_allowed: bool,
) -> Result<Response, ApiError> {
    let tile = parse_tile_path(path).map_err(|e| ApiError::not_found(e.to_string()))?;
    let data = match tile {
        TilePath::Hashes {
            level,
            index,
            width,
        } => node.log_tile(level, index, width).await?,
        TilePath::Entries { .. } if !entries_allowed => {
            return Err(ApiError::unauthenticated(
                "entry bundles say who exchanged what with whom: read them at /api/v1/tlog/tile/entries/… with an auditor's token",
            ));
        }
        TilePath::Entries { index, width } => node.log_bundle(index, width).await?,
    };
    let data =
        data.ok_or_else(|| ApiError::not_found(format!("the log has no tile {path} (yet)")))?;
    let full = matches!(
        tile,
        TilePath::Hashes { width: 256, .. } | TilePath::Entries { width: 256, .. }
    );
    // A full tile never changes; a partial one is replaced once the log grows.
    let cache = if full {
        "public, max-age=31536000, immutable"
    } else {
        "no-store"
    };
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        data,
    )
        .into_response())
}

async fn public_checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    checkpoint_response(&state.node).await
}

async fn public_tile(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    tile_response(&state.node, &path, false).await
}

/// The log's latest checkpoint: a C2SP signed note, signed by the node and — once
/// witnessed — cosigned by the ecosystem's authority.
#[utoipa::path(get, path = "/api/v1/tlog/checkpoint", tag = "transparency",
    responses((status = 200, body = String, content_type = "text/plain"), (status = 404, body = ErrorBody)))]
async fn checkpoint(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    caller.require(ApiRole::Auditor)?;
    checkpoint_response(&state.node).await
}

/// A tile of the log (C2SP `tlog-tiles`): `L/N[.p/W]` for hashes, `entries/N[.p/W]` for
/// the entries themselves (each a 16-bit big-endian length and its bytes).
#[utoipa::path(get, path = "/api/v1/tlog/tile/{path}", tag = "transparency",
    params(("path" = String, Path, description = "the tile's path after `tile/`, e.g. `0/x001/234.p/5` or `entries/000`")),
    responses((status = 200, body = Vec<u8>, content_type = "application/octet-stream"), (status = 404, body = ErrorBody)))]
pub(crate) async fn tile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(ApiRole::Auditor)?;
    tile_response(&state.node, &path, true).await
}

/// The proof that an entry is in the log.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = InclusionProof)]
pub(crate) struct ProofView {
    index: u64,
    /// The entry as logged (JSON text; its UTF-8 bytes are the leaf).
    entry: String,
    /// The signed checkpoint the proof leads to.
    checkpoint: String,
    size: u64,
    /// Hex SHA-256 hashes, from the leaf up.
    proof: Vec<String>,
}

impl From<InclusionProof> for ProofView {
    fn from(p: InclusionProof) -> Self {
        Self {
            index: p.index,
            entry: p.entry,
            checkpoint: p.checkpoint,
            size: p.size,
            proof: p.proof,
        }
    }
}

/// An entry with the proof that it is in a signed checkpoint of the log (RFC 9162
/// inclusion proof), verifiable offline: see docs/transparency.md.
#[utoipa::path(get, path = "/api/v1/tlog/entries/{index}/proof", tag = "transparency",
    params(("index" = u64, Path, description = "the entry's index, from 0")),
    responses((status = 200, body = ProofView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn entry_proof(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(index): Path<String>,
) -> Result<Json<ProofView>, ApiError> {
    caller.require(ApiRole::Auditor)?;
    let index: u64 = index.parse().map_err(|_| {
        ApiError::bad_request(format!("{index:?} is not an entry index (0, 1, 2, …)"))
    })?;
    Ok(Json(state.node.log_inclusion(index).await?.into()))
}

/// The subject tags an entry commits to, for an auditor to recompute its commitment and the
/// log's subject index (see docs/citizens.md). Tags are the node's VOPRF outputs: they name
/// nobody, but show which entries carried the same subject.
#[derive(Serialize, ToSchema)]
pub(crate) struct SubjectsView {
    index: u64,
    /// Hex, 64 bytes each, ascending.
    tags: Vec<String>,
}

/// The subject tags entry `index` commits to (404 when it commits to none).
#[utoipa::path(get, path = "/api/v1/tlog/entries/{index}/subjects", tag = "transparency",
    params(("index" = u64, Path, description = "the entry's index, from 0")),
    responses((status = 200, body = SubjectsView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn entry_subjects(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(index): Path<String>,
) -> Result<Json<SubjectsView>, ApiError> {
    caller.require(ApiRole::Auditor)?;
    let index: u64 = index.parse().map_err(|_| {
        ApiError::bad_request(format!("{index:?} is not an entry index (0, 1, 2, …)"))
    })?;
    let set = state
        .node
        .log_subjects(index)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("entry {index} commits to no subjects")))?;
    Ok(Json(SubjectsView {
        index,
        tags: set.tags().iter().map(hex::encode).collect(),
    }))
}

/// The largest entry index a request may name (10^18: more than a log ever holds).
const MAX_INDEX: u64 = 1_000_000_000_000_000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    /// What kind of event.
    kind: Option<agora_model::AuditKind>,
    /// The other member.
    peer: Option<String>,
    product: Option<String>,
    agreement: Option<String>,
    purpose: Option<String>,
    /// Outcomes starting with this (`refused` matches `refused: …`).
    outcome: Option<String>,
    /// RFC 3339 time: entries at or after it.
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// RFC 3339 time: entries before it.
    until: Option<chrono::DateTime<chrono::Utc>>,
    /// Entries with an index below it (the next page).
    #[param(minimum = 0, maximum = 1_000_000_000_000_000_u64)]
    before: Option<u64>,
    /// How many, newest first (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

impl AuditParams {
    pub(crate) fn filter(self) -> Result<EntryFilter, ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::bad_request("limit must be from 1 to 1000"));
        }
        if self.before.is_some_and(|b| b > MAX_INDEX) {
            return Err(ApiError::bad_request(format!(
                "before is at most {MAX_INDEX}"
            )));
        }
        // An empty field filters nothing.
        let given = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        Ok(EntryFilter {
            kind: self.kind.map(|k| k.as_str().to_owned()),
            peer: given(self.peer),
            product: given(self.product),
            agreement: given(self.agreement),
            purpose: given(self.purpose),
            outcome: given(self.outcome),
            from: self.from,
            until: self.until,
            reference: None,
            before: self.before,
            limit,
        })
    }
}

/// The same entries as CSV for a spreadsheet: one row each with the fields an auditor
/// filters on, and the whole entry as JSON in the last column.
#[utoipa::path(get, path = "/api/v1/audit/entries.csv", tag = "transparency", params(AuditParams),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn audit_entries_csv(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<axum::response::Response, ApiError> {
    caller.require(ApiRole::Auditor)?;
    let entries = state.node.audit_entries(&params.filter()?).await?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8; header=present",
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit-entries.csv\"",
            ),
        ],
        agora_model::entries_csv(&entries),
    )
        .into_response())
}

/// An entry of the log, with its index.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = AuditEntry)]
pub(crate) struct EntryView {
    index: u64,
    #[schema(value_type = Object)]
    entry: agora_model::AuditEntry,
}

/// The log's entries an auditor asks for, newest first: every exchange, access, policy
/// decision, negotiation step, signature, revocation and token or user change.
#[utoipa::path(get, path = "/api/v1/audit/entries", tag = "transparency", params(AuditParams),
    responses((status = 200, body = Vec<EntryView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn audit_entries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<Vec<EntryView>>, ApiError> {
    caller.require(ApiRole::Auditor)?;
    let entries = state.node.audit_entries(&params.filter()?).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| EntryView {
                index: e.index,
                entry: e.entry,
            })
            .collect(),
    ))
}
