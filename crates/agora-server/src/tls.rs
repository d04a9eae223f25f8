//! Serving an axum application over TLS 1.3 with client certificates: each connection's
//! verified peer certificate is read once, after the handshake, and handed to every request
//! on that connection as a [`PeerCertificate`] extension. Identity never comes from headers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agora_trust::CertInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// The verified certificate the client presented on this connection, if any.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Option<Arc<CertInfo>>);

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` with `tls` until `shutdown` completes, then lets open
/// connections finish (at most ten seconds).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            conn = listener.accept() => match conn {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    log_handshake_failure(remote, &e);
                    return;
                }
                Err(_) => {
                    tracing::warn!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| agora_trust::inspect(c).ok())
                .map(Arc::new);
            let svc = app
                .layer(axum::Extension(PeerCertificate(peer)))
                .map_request(|req: hyper::Request<hyper::body::Incoming>| {
                    req.map(axum::body::Body::new)
                });
            let conn = Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc))
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish in time; closing them");
    }
    Ok(())
}

fn log_handshake_failure(remote: SocketAddr, e: &std::io::Error) {
    let reason = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(agora_trust::tls::explain)
        .unwrap_or_else(|| e.to_string());
    tracing::warn!(%remote, reason = %reason, "TLS handshake refused");
}
