//! Queries to other members' nodes over Arrow Flight (gRPC over mutual TLS).
//!
//! A query is a `DoGet` whose ticket carries the SQL (a protobuf `Any` of type
//! [`paths::MEMBER_QUERY_TYPE_URL`] around a JSON [`FlightTicket`]); the request is signed like every
//! node-to-node request (the `agora-signature` metadata covers the gRPC path and the
//! ticket's digest). The owner streams Arrow record batches and ends the stream with one
//! message whose `app_metadata` is its signature over the digest of everything it sent
//! ([`StreamDigest`]). A stream that ends without that message, or whose digest does not
//! match, is an error — never a complete result. Every call is logged, with its outcome,
//! rows and bytes, when the stream ends (or is dropped).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use agora_model::{
    Direction, ExchangeEnd, ExchangeStart, FlightTicket, MemberId, Standing, TrustList,
    TrustedMember, paths,
};
use agora_trust::sign::{REQUEST_HEADER, RESPONSE_HEADER};
use agora_trust::{
    CertInfo, CertificateDer, IdentityCell, RequestSignature, RequestTarget, ResponseSignature,
    StreamDigest, digest_hex, inspect, tls,
};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{FlightData, Ticket};
use chrono::Utc;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::{ExchangeError, ExchangeJournal, Signer};

pub use arrow::array::RecordBatch;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 flow-control windows sized for bulk transfers on fast links.
const STREAM_WINDOW: u32 = 8 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

/// Record batches from a peer, verified as they arrive; the last item is an error unless
/// the peer's signed end verified.
pub type PeerBatches = BoxStream<'static, Result<RecordBatch, ExchangeError>>;

/// A connection to one member's Flight endpoint (its exchange listener). Cheap to clone;
/// the connection is made on first use and re-made when it breaks.
#[derive(Clone)]
pub struct FlightPeer {
    member: MemberId,
    client: FlightServiceClient<Channel>,
    /// The certificate the peer presented on the current connection.
    presented: Arc<Mutex<Option<Arc<CertInfo>>>>,
    /// How long the peer may stay silent before the call fails.
    idle: Duration,
}

impl FlightPeer {
    /// Prepares a connection to `peer`'s exchange endpoint, authenticating with
    /// `identity` and accepting only a certificate of that member under `root`. A call
    /// fails when the peer stays silent for `idle` (connecting or mid-answer).
    pub fn new(
        root: &CertificateDer<'static>,
        identity: Arc<IdentityCell>,
        peer: &TrustedMember,
        idle: Duration,
    ) -> Result<Self, ExchangeError> {
        let who = peer.id.to_string();
        let base = peer
            .endpoints
            .exchange
            .as_deref()
            .ok_or_else(|| ExchangeError::Refused {
                peer: who.clone(),
                reason: "it publishes no exchange endpoint in the trust list".into(),
            })?;
        let host = agora_model::https_host(base).ok_or_else(|| ExchangeError::Refused {
            peer: who.clone(),
            reason: format!("its exchange endpoint {base:?} is not an https:// URL"),
        })?;
        let uri: Uri = base.parse().map_err(|e| ExchangeError::Refused {
            peer: who.clone(),
            reason: format!("its exchange endpoint {base:?} is not a valid URL: {e}"),
        })?;
        let port = uri.port_u16().unwrap_or(443);
        let tls = Arc::new(tls::client_config(root, Some(identity), &[b"h2"])?);
        let presented: Arc<Mutex<Option<Arc<CertInfo>>>> = Arc::default();
        let connector = Connector {
            tls: tokio_rustls::TlsConnector::from(tls),
            host: host.to_owned(),
            port,
            member: peer.id.clone(),
            presented: Arc::clone(&presented),
        };
        // The URI only names the authority for HTTP/2; the connector makes the TLS.
        let endpoint = Endpoint::from_shared(format!("http://{}:{port}", uri_host(&uri)))
            .map_err(|e| ExchangeError::Setup(format!("bad endpoint for {who}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT.min(idle))
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10));
        let channel = endpoint.connect_with_connector_lazy(connector);
        let client = FlightServiceClient::new(channel)
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(16 * 1024 * 1024);
        Ok(Self {
            member: peer.id.clone(),
            client,
            presented,
            idle,
        })
    }

    pub fn member(&self) -> &MemberId {
        &self.member
    }

    /// Runs read-only SQL at the peer and streams its answer. Refusals and failures before
    /// the first batch are returned here; later failures end the stream with an error.
    pub async fn query(
        &self,
        signer: &Signer<'_>,
        list: &TrustList,
        journal: &Arc<dyn ExchangeJournal>,
        sql: &str,
    ) -> Result<PeerBatches, ExchangeError> {
        let who = self.member.to_string();
        let json = serde_json::to_vec(&FlightTicket {
            sql: sql.to_owned(),
        })
        .map_err(|e| ExchangeError::Setup(format!("cannot encode the ticket: {e}")))?;
        let ticket = prost::Message::encode_to_vec(&arrow_flight::sql::Any {
            type_url: paths::MEMBER_QUERY_TYPE_URL.to_owned(),
            value: json.into(),
        });
        let body_digest = digest_hex(&ticket);
        let target = RequestTarget {
            method: "POST",
            path: paths::FLIGHT_DO_GET,
            body_digest: &body_digest,
        };
        let sig =
            RequestSignature::sign(signer.key, &target, signer.member, &self.member, Utc::now());
        let start = ExchangeStart {
            direction: Direction::Outbound,
            peer: self.member.clone(),
            peer_certificate: String::new(),
            operation: format!("flight DoGet {}", paths::FLIGHT_DO_GET),
            nonce: sig.nonce.clone(),
            requested_at: sig.timestamp,
            request_digest: body_digest,
            request_signature: sig.signature_b64(),
        };
        let mut request = tonic::Request::new(Ticket {
            ticket: ticket.into(),
        });
        let header = sig.header().parse().map_err(|_| {
            ExchangeError::Setup("the request signature is not valid metadata".into())
        })?;
        request.metadata_mut().insert(REQUEST_HEADER, header);
        let mut client = self.client.clone();
        // The pending record is written while the call is on its way, and nothing of the
        // answer is read before it is: a record that cannot be written drops the call.
        let (guard, response) = tokio::join!(
            LogGuard::begin(journal.clone(), start),
            tokio::time::timeout(self.idle, client.do_get(request))
        );
        let mut guard = guard?;
        let response = match response {
            Ok(Ok(r)) => r,
            Ok(Err(status)) => {
                let e = self.status_error(&status, &sig.nonce);
                guard.fail(&e);
                return Err(e);
            }
            Err(_) => {
                let e = ExchangeError::Unreachable {
                    peer: who,
                    reason: format!("no answer within {} s", self.idle.as_secs_f64()),
                };
                guard.fail(&e);
                return Err(e);
            }
        };
        // The peer must be the member we called, in good standing on our list.
        let cert = match self.check_presented(list) {
            Ok(c) => c,
            Err(e) => {
                guard.fail(&e);
                return Err(e);
            }
        };
        guard.start.peer_certificate = cert.fingerprint.clone();
        let progress = Arc::new(Mutex::new(Progress::default()));
        let verified = VerifiedFlight {
            inner: Box::pin(response.into_inner()),
            peer: self.member.clone(),
            public_key: cert.public_key,
            nonce: sig.nonce.clone(),
            progress: Arc::clone(&progress),
            idle: self.idle,
            sleep: None,
            finished: false,
        };
        let decoded = FlightRecordBatchStream::new_from_flight_data(verified);
        Ok(Box::pin(LoggedBatches {
            inner: decoded,
            peer: self.member.to_string(),
            progress,
            guard: Some(guard),
            rows: 0,
        }))
    }

    fn check_presented(&self, list: &TrustList) -> Result<Arc<CertInfo>, ExchangeError> {
        let who = self.member.to_string();
        let cert = self
            .presented
            .lock()
            .expect("lock")
            .clone()
            .ok_or_else(|| ExchangeError::Protocol {
                peer: who.clone(),
                reason: "no certificate on the connection".into(),
            })?;
        match list.standing(&self.member, &cert.fingerprint) {
            Standing::Trusted { .. } => Ok(cert),
            other => Err(ExchangeError::Refused {
                peer: who,
                reason: format!("its certificate is not in good standing ({other:?})"),
            }),
        }
    }

    /// Explains a gRPC error: a signed refusal, a transport failure, or an unsigned error.
    fn status_error(&self, status: &tonic::Status, nonce: &str) -> ExchangeError {
        let who = self.member.to_string();
        if status.code() == tonic::Code::Unavailable || status.code() == tonic::Code::Unknown {
            let reason = match find_tls(status) {
                Some(t) => format!("TLS handshake failed: {}", tls::explain(t)),
                None => status.message().to_owned(),
            };
            return ExchangeError::Unreachable { peer: who, reason };
        }
        if status.code() == tonic::Code::DeadlineExceeded || status.code() == tonic::Code::Cancelled
        {
            return ExchangeError::Unreachable {
                peer: who,
                reason: status.message().to_owned(),
            };
        }
        // A refusal must be signed by the peer over its code and message.
        let signed = status
            .metadata()
            .get(RESPONSE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| ResponseSignature::parse(h).ok());
        let cert = self.presented.lock().expect("lock").clone();
        let verified = match (signed, cert) {
            (Some(rsig), Some(cert)) => {
                rsig.from == self.member
                    && rsig
                        .verify(
                            &cert.public_key,
                            nonce,
                            refusal_status(status.code()),
                            &digest_hex(status.message().as_bytes()),
                        )
                        .is_ok()
            }
            _ => false,
        };
        if verified {
            ExchangeError::Refused {
                peer: who,
                reason: status.message().to_owned(),
            }
        } else {
            ExchangeError::Protocol {
                peer: who,
                reason: format!(
                    "an unsigned or wrongly signed error ({:?}): {}",
                    status.code(),
                    status.message()
                ),
            }
        }
    }
}

/// The HTTP-like status a refusal's signature covers, from its gRPC code.
pub fn refusal_status(code: tonic::Code) -> u16 {
    match code {
        tonic::Code::InvalidArgument => 400,
        tonic::Code::Unauthenticated => 401,
        tonic::Code::PermissionDenied => 403,
        tonic::Code::NotFound => 404,
        tonic::Code::Unavailable => 503,
        _ => 500,
    }
}

fn uri_host(uri: &Uri) -> String {
    uri.host().unwrap_or("localhost").to_owned()
}

fn find_tls(status: &tonic::Status) -> Option<&rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = cur {
        if let Some(t) = crate::find_tls_error(e) {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

/// Makes mutual-TLS connections to one member's endpoint and notes the certificate the
/// peer presents; a certificate of another member fails the connection.
#[derive(Clone)]
struct Connector {
    tls: tokio_rustls::TlsConnector,
    host: String,
    port: u16,
    member: MemberId,
    presented: Arc<Mutex<Option<Arc<CertInfo>>>>,
}

impl tower::Service<Uri> for Connector {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect((this.host.as_str(), this.port)).await?;
            tcp.set_nodelay(true)?;
            let name = rustls::pki_types::ServerName::try_from(this.host.clone())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let stream = this.tls.connect(name, tcp).await?;
            let der = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .ok_or_else(|| std::io::Error::other("the peer presented no certificate"))?;
            let cert = inspect(der).map_err(std::io::Error::other)?;
            let (member, _) = cert.member().map_err(std::io::Error::other)?;
            if member != this.member {
                return Err(std::io::Error::other(format!(
                    "the endpoint of {} answered with the certificate of member {member}",
                    this.member
                )));
            }
            *this.presented.lock().expect("lock") = Some(Arc::new(cert));
            Ok(hyper_util::rt::TokioIo::new(stream))
        })
    }
}

#[derive(Default)]
struct Progress {
    digest: StreamDigest,
    bytes: u64,
    /// The peer's verified end-of-stream signature.
    signature: Option<String>,
}

/// The peer's Flight messages, with the running digest, the idle timeout and the check of
/// the signed end. Ends with an error unless the signed end arrived and verified.
struct VerifiedFlight {
    inner: Pin<Box<tonic::codec::Streaming<FlightData>>>,
    peer: MemberId,
    public_key: [u8; 32],
    nonce: String,
    progress: Arc<Mutex<Progress>>,
    idle: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    finished: bool,
}

impl VerifiedFlight {
    fn protocol(&self, reason: String) -> FlightError {
        FlightError::ExternalError(Box::new(ExchangeError::Protocol {
            peer: self.peer.to_string(),
            reason,
        }))
    }
}

impl Stream for VerifiedFlight {
    type Item = Result<FlightData, FlightError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        let idle = this.idle;
        loop {
            let polled = this.inner.as_mut().poll_next(cx);
            let item = match polled {
                Poll::Pending => {
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                    if sleep.as_mut().poll(cx).is_ready() {
                        this.finished = true;
                        return Poll::Ready(Some(Err(FlightError::ExternalError(Box::new(
                            ExchangeError::Unreachable {
                                peer: this.peer.to_string(),
                                reason: format!(
                                    "it sent nothing for {} s in the middle of its answer",
                                    idle.as_secs_f64()
                                ),
                            },
                        )))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(item) => item,
            };
            this.sleep = None;
            match item {
                None => {
                    this.finished = true;
                    if this.progress.lock().expect("lock").signature.is_some() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(this.protocol(
                        "the stream ended before the owner's signed end: the result is incomplete"
                            .into(),
                    ))));
                }
                Some(Err(status)) => {
                    this.finished = true;
                    // A failure the owner signed (a query it refused while answering, such
                    // as an expression that failed) is its refusal, the consumer's error.
                    let signed = status
                        .metadata()
                        .get(RESPONSE_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|h| ResponseSignature::parse(h).ok())
                        .is_some_and(|rsig| {
                            rsig.from == this.peer
                                && rsig
                                    .verify(
                                        &this.public_key,
                                        &this.nonce,
                                        refusal_status(status.code()),
                                        &digest_hex(status.message().as_bytes()),
                                    )
                                    .is_ok()
                        });
                    if signed && status.code() == tonic::Code::InvalidArgument {
                        return Poll::Ready(Some(Err(FlightError::ExternalError(Box::new(
                            ExchangeError::Refused {
                                peer: this.peer.to_string(),
                                reason: status.message().to_owned(),
                            },
                        )))));
                    }
                    let reason = if status.code() == tonic::Code::Unknown
                        || status.code() == tonic::Code::Unavailable
                        || status.code() == tonic::Code::Cancelled
                        || status.code() == tonic::Code::Internal
                    {
                        format!("the stream broke off: {}", status.message())
                    } else {
                        status.message().to_owned()
                    };
                    return Poll::Ready(Some(Err(FlightError::ExternalError(Box::new(
                        ExchangeError::Unreachable {
                            peer: this.peer.to_string(),
                            reason,
                        },
                    )))));
                }
                Some(Ok(data)) => {
                    let mut progress = this.progress.lock().expect("lock");
                    if progress.signature.is_some() {
                        drop(progress);
                        this.finished = true;
                        return Poll::Ready(Some(Err(
                            this.protocol("it sent data after its signed end".into())
                        )));
                    }
                    if data.data_header.is_empty() && !data.app_metadata.is_empty() {
                        // The signed end.
                        let digest = progress.digest.hex();
                        let verdict = std::str::from_utf8(&data.app_metadata)
                            .map_err(|_| "the end signature is not text".to_owned())
                            .and_then(|h| ResponseSignature::parse(h).map_err(|e| e.to_string()))
                            .and_then(|rsig| {
                                if rsig.from != this.peer {
                                    return Err(format!("the stream is signed by {}", rsig.from));
                                }
                                rsig.verify(&this.public_key, &this.nonce, 200, &digest)
                                    .map_err(|e| e.to_string())?;
                                Ok(rsig.signature_b64())
                            });
                        match verdict {
                            Ok(sig) => {
                                progress.signature = Some(sig);
                                continue;
                            }
                            Err(reason) => {
                                drop(progress);
                                this.finished = true;
                                return Poll::Ready(Some(Err(this.protocol(reason))));
                            }
                        }
                    }
                    progress.digest.update(&data.data_header, &data.data_body);
                    progress.bytes += (data.data_header.len() + data.data_body.len()) as u64;
                    return Poll::Ready(Some(Ok(data)));
                }
            }
        }
    }
}

/// Decoded batches, logging the exchange when the stream ends, fails or is dropped.
struct LoggedBatches {
    inner: FlightRecordBatchStream,
    peer: String,
    progress: Arc<Mutex<Progress>>,
    guard: Option<LogGuard>,
    rows: i64,
}

impl LoggedBatches {
    fn finish(&mut self, outcome: String) {
        if let Some(mut g) = self.guard.take() {
            let p = self.progress.lock().expect("lock");
            g.end = Some(ExchangeEnd {
                response_digest: p.digest.hex(),
                response_signature: p.signature.clone().unwrap_or_default(),
                outcome,
                duration_ms: g.started.elapsed().as_millis() as i64,
                rows: self.rows,
                bytes: p.bytes as i64,
                ..Default::default()
            });
        }
    }
}

impl Stream for LoggedBatches {
    type Item = Result<RecordBatch, ExchangeError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(batch))) => {
                self.rows += batch.num_rows() as i64;
                Poll::Ready(Some(Ok(batch)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e = match e {
                    FlightError::ExternalError(inner) => match inner.downcast::<ExchangeError>() {
                        Ok(x) => *x,
                        Err(other) => ExchangeError::Protocol {
                            peer: self.peer.clone(),
                            reason: other.to_string(),
                        },
                    },
                    other => ExchangeError::Protocol {
                        peer: self.peer.clone(),
                        reason: format!("cannot decode its answer: {other}"),
                    },
                };
                self.finish(format!("failed: {e}"));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.finish("ok".into());
                Poll::Ready(None)
            }
        }
    }
}

/// An outbound exchange's log record: written when the call starts, completed when it
/// ends; dropped unfinished, it records that the consumer stopped reading.
struct LogGuard {
    journal: Arc<dyn ExchangeJournal>,
    seq: i64,
    start: ExchangeStart,
    started: Instant,
    end: Option<ExchangeEnd>,
}

impl LogGuard {
    async fn begin(
        journal: Arc<dyn ExchangeJournal>,
        start: ExchangeStart,
    ) -> Result<Self, ExchangeError> {
        let seq = journal.opened(&start).await?;
        Ok(Self {
            journal,
            seq,
            start,
            started: Instant::now(),
            end: None,
        })
    }

    fn fail(&mut self, e: &ExchangeError) {
        self.end = Some(ExchangeEnd {
            outcome: format!("failed: {e}"),
            duration_ms: self.started.elapsed().as_millis() as i64,
            ..Default::default()
        });
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let end = self.end.take().unwrap_or_else(|| ExchangeEnd {
            outcome: "cancelled: the consumer stopped reading".into(),
            duration_ms: self.started.elapsed().as_millis() as i64,
            ..Default::default()
        });
        let journal = self.journal.clone();
        let seq = self.seq;
        let peer = self.start.peer.clone();
        let certificate = self.start.peer_certificate.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = journal.closed(seq, &certificate, &end).await {
                    tracing::error!(%peer, error = %e, "cannot record the end of an exchange");
                }
            });
        }
    }
}
