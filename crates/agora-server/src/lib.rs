//! The node's HTTP interface: with `agora-web` (its pages, merged here), the only crate
//! that knows HTTP.
//!
//! REST API under `/api/v1` (documented by the OpenAPI 3.1 document it serves at
//! `/api/v1/openapi.json`, generated from the same handlers that serve the routes),
//! `/healthz` and `/readyz`. Every API route needs a bearer token; roles decide what a
//! token may do (analyst < steward < admin).

mod agreements;
mod api_types;
mod auth;
mod authority;
mod citizen;
mod error;
pub mod exchange;
mod flight;
mod openapi;
mod routes;
mod tlog;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use agora_node::Node;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use authority::authority_app;
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use exchange::{exchange_app, serve_exchange};
pub use tls::{PeerCertificate, serve_tls};

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Local folders whose files may be registered as products through the API. Empty
    /// means none: API clients can then register only object-store URLs, and local files
    /// are registered by the operator with the CLI.
    pub allowed_roots: Vec<PathBuf>,
    /// The web interface's settings.
    pub web: agora_web::WebConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            allowed_roots: Vec::new(),
            web: agora_web::WebConfig::default(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub node: Node,
    pub config: Arc<ServerConfig>,
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_parts().doc
}

/// The API's routes and their OpenAPI document, with the statuses every operation can
/// answer with documented.
/// The API's routes: those that need a staff token, those that need a resident's token,
/// and the resident's sign-in; with the document of all of them.
struct ApiParts {
    staff: axum::Router<AppState>,
    resident: axum::Router<AppState>,
    public: axum::Router<AppState>,
    doc: utoipa::openapi::OpenApi,
}

fn api_parts() -> ApiParts {
    let (staff, mut doc) = routes::api_router().split_for_parts();
    let (resident, resident_doc) = citizen::resident_router().split_for_parts();
    let (public, public_doc) = citizen::public_router().split_for_parts();
    doc.merge(resident_doc);
    doc.merge(public_doc);
    openapi::document_common_responses(&mut doc);
    ApiParts {
        staff,
        resident,
        public,
        doc,
    }
}

/// The complete HTTP application for a node.
pub fn app(node: Node, config: ServerConfig) -> Router {
    let body_limit = config.body_limit;
    // Stewards publish from the web pages under the same folders as API clients.
    let web_config = agora_web::WebConfig {
        allowed_roots: config.allowed_roots.clone(),
        ..config.web.clone()
    };
    let web = agora_web::router(node.clone(), web_config);
    let state = AppState {
        node,
        config: Arc::new(config),
    };
    let parts = api_parts();
    let doc = Arc::new(parts.doc);
    let api = parts
        .staff
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let resident = parts
        .resident
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            citizen::require_resident,
        ));
    Router::new()
        .merge(api)
        .merge(resident)
        .merge(parts.public)
        .merge(routes::public_router(doc))
        .merge(web)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<_>| {
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

/// Serves the node on `listener` until `shutdown` completes, then drains open requests.
pub async fn serve(
    node: Node,
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, member = %node.member(), "node listening");
    // Responses stream in several writes; without TCP_NODELAY, Nagle's algorithm and the
    // client's delayed ACK add about 40 ms to every small response.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    // Connection details give sign-in throttling the client's address.
    let app = app(node, config).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves an ecosystem authority over HTTPS on `listener`: a fresh TLS certificate for
/// `hosts` from the root, client certificates verified when presented.
pub async fn serve_authority(
    authority: Arc<agora_authority::Authority>,
    listener: TcpListener,
    hosts: Vec<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let identity = authority.server_identity(hosts)?;
    let tls = agora_trust::tls::server_config(
        &authority.root().cert_der,
        identity,
        agora_trust::ClientAuth::Optional,
    )?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, ecosystem = authority.ecosystem(), "authority listening");
    serve_tls(listener, Arc::new(tls), authority_app(authority), shutdown).await?;
    Ok(())
}

/// Why a server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Trust(#[from] agora_trust::TrustError),
    #[error("{0}")]
    Authority(#[from] agora_authority::AuthorityError),
    #[error("{0}")]
    Node(#[from] agora_node::NodeError),
}
