//! The node's web interface: server-rendered HTML pages (maud) for every role, in one
//! design, working without JavaScript.
//!
//! People sign in with a user name and password (users are made by `agora user add` or by
//! `agora demo`); a session is a random secret in an `HttpOnly`, `SameSite=Strict` cookie,
//! known to the store only by its hash, and every form carries the session's CSRF token.
//! Each page checks the same role as the API route doing the same thing, through the same
//! node workflows. Responses carry a strict Content Security Policy (no inline script, no
//! framing), `Referrer-Policy: no-referrer` and `nosniff`; nothing personal travels in a
//! URL (queries are sent in form bodies).

mod layout;
mod pages;
mod session;

use agora_node::Node;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

pub use session::SESSION_COOKIE;

/// The page for an address that does not exist, for the node's fallback route.
pub fn not_found_page() -> axum::response::Response {
    let mut response = pages::problem(
        axum::http::StatusCode::NOT_FOUND,
        "Page not found",
        "If you typed the web address, check it is correct. If you pasted it, check you \
         copied the entire address.",
    );
    let h = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        h.insert(*name, HeaderValue::from_static(value));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Web interface settings.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark cookies `Secure` (sent over HTTPS only). Browsers also accept secure cookies
    /// from `http://localhost` and `http://127.0.0.1`, so this stays on unless the node is
    /// reached over plain HTTP on another address.
    pub secure_cookies: bool,
    /// Local folders whose files stewards may publish from the web pages (the API's
    /// `--allow-path` folders). Empty means none: only object-store URLs the node allows.
    pub allowed_roots: Vec<std::path::PathBuf>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            secure_cookies: true,
            allowed_roots: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Web {
    pub node: Node,
    pub config: WebConfig,
    /// Publications being profiled, followed on their progress pages.
    pub publishing: pages::publish::Jobs,
}

/// The stylesheet, written for the project.
const CSS: &str = include_str!("../assets/agora.css");

/// The web interface's routes, with their security headers.
pub fn router<S>(node: Node, config: WebConfig) -> Router<S> {
    let web = Web {
        node,
        config,
        publishing: Default::default(),
    };
    Router::new()
        .route("/", get(pages::home))
        .route(
            "/sign-in",
            get(pages::sign_in::form).post(pages::sign_in::submit),
        )
        .route("/sign-out", post(pages::sign_in::sign_out))
        .route("/catalog", get(pages::catalog::search))
        .route("/catalog/{owner}/{product}", get(pages::catalog::product))
        .route(
            "/catalog/{owner}/{product}/request",
            get(pages::requests::request_form).post(pages::requests::request_submit),
        )
        .route("/requests", get(pages::requests::list))
        .route("/requests/{id}", get(pages::requests::detail))
        .route("/requests/{id}/approve", post(pages::requests::approve))
        .route("/requests/{id}/accept", post(pages::requests::accept))
        .route("/requests/{id}/end", post(pages::requests::end))
        .route(
            "/requests/{id}/offer",
            get(pages::requests::offer_form).post(pages::requests::offer_submit),
        )
        .route(
            "/requests/{id}/counter",
            get(pages::requests::counter_form).post(pages::requests::counter_submit),
        )
        .route("/requests/{id}/odrl", get(pages::requests::odrl))
        .route("/query", get(pages::query::form).post(pages::query::run))
        .route(
            "/publish",
            get(pages::publish::start).post(pages::publish::submit),
        )
        .route("/publish/{job}", get(pages::publish::progress))
        .route("/admin", get(pages::admin::overview))
        .route("/audit", get(pages::audit::list))
        .route("/audit/export.csv", get(pages::audit::export_csv))
        .route("/audit/export.json", get(pages::audit::export_json))
        .route("/audit/entries/{index}", get(pages::audit::entry))
        .route(
            "/audit/entries/{index}/proof.json",
            get(pages::audit::proof_json),
        )
        .route("/citizen", get(pages::citizen::history))
        .route(
            "/citizen/sign-in",
            get(pages::citizen::sign_in_form).post(pages::citizen::sign_in),
        )
        .route("/citizen/sign-out", post(pages::citizen::sign_out))
        .route("/citizen/consent", post(pages::citizen::consent))
        .route("/assets/agora.css", get(stylesheet))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(web)
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
}

/// Headers every page carries.
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        h.insert(*name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show what the signed-in person may see: never kept by shared caches.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The headers of every page: no script, no framing, no referrer, no sniffing.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    ),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
];
