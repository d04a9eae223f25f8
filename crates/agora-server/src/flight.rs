//! Arrow Flight on the exchange listener. Other members' nodes run read-only SQL over this
//! node's products with a signed `DoGet` (see `agora_exchange::flight` for the protocol);
//! this member's own tools (ADBC, JDBC, any Flight SQL client) connect with the member's
//! client certificate and speak Flight SQL: list the products of the whole ecosystem and
//! query them as the node's own queries do.
//!
//! The request is admitted like every node-to-node request (certificate on the trust list,
//! signature over the gRPC path and the ticket's digest, clock, fresh nonce) and logged
//! before it is served. The answer streams Arrow record batches and ends with a message
//! whose `app_metadata` is this member's signature over the digest of the whole stream.
//! Refusals are signed too (in the status metadata). The log record is completed when the
//! stream ends, fails, or the consumer goes away.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};

use agora_exchange::flight::refusal_status;
use agora_model::{FlightTicket, paths};
use agora_node::exchange::{Inbound, InboundEnd};
use agora_node::{EngineError, ErrorKind, Node, NodeError};
use agora_trust::sign::{REQUEST_HEADER, RESPONSE_HEADER};
use agora_trust::{RequestSignature, RequestTarget, StreamDigest, digest_hex};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    Any, CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Code, Request, Response, Status};

use crate::tls::PeerCertificate;

/// Largest Flight message sent (the encoder splits bigger batches).
const MAX_FLIGHT_DATA: usize = 4 * 1024 * 1024;

/// The Flight service of the exchange listener.
pub fn flight_service(node: Node) -> FlightServiceServer<ExchangeFlight> {
    FlightServiceServer::new(ExchangeFlight { node })
        .max_decoding_message_size(1024 * 1024)
        .max_encoding_message_size(2 * MAX_FLIGHT_DATA)
}

pub struct ExchangeFlight {
    node: Node,
}

type Boxed<T> = std::pin::Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The gRPC code and member-facing message of a failed query (see `member_error`: nothing
/// of the owner's inside crosses).
fn member_facing(e: &NodeError) -> (Code, String) {
    use agora_node::member_error::{MemberFault, for_member};
    let (fault, message) = for_member(e);
    let code = match fault {
        MemberFault::Invalid => Code::InvalidArgument,
        MemberFault::Denied => Code::PermissionDenied,
        MemberFault::Conflict => Code::FailedPrecondition,
        MemberFault::Unavailable => Code::Unavailable,
        MemberFault::Internal => Code::Internal,
    };
    (code, message)
}

impl ExchangeFlight {
    /// A refusal signed by this member over its code and message.
    fn refusal(&self, nonce: &str, code: Code, message: String) -> Status {
        let mut status = Status::new(code, message);
        if let Some(sig) =
            self.node
                .sign_refusal(nonce, refusal_status(code), status.message().as_bytes())
            && let Ok(v) = sig.parse()
        {
            status.metadata_mut().insert(RESPONSE_HEADER, v);
        }
        status
    }

    /// Refuses an admitted request: completes its log record, signs the refusal.
    async fn refuse_admitted(&self, inbound: &Inbound, code: Code, message: String) -> Status {
        let status_code = refusal_status(code);
        if let Err(e) = self
            .node
            .end_inbound(inbound, InboundEnd::body(status_code, message.as_bytes()))
            .await
        {
            tracing::error!(error = %e, "cannot record a refused exchange");
        }
        self.refusal(&inbound.nonce, code, message)
    }
}

#[tonic::async_trait]
impl FlightSqlService for ExchangeFlight {
    type FlightService = ExchangeFlight;

    /// Member queries from other nodes (signed tickets of our own type).
    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        if message.type_url != paths::MEMBER_QUERY_TYPE_URL {
            return Err(Status::invalid_argument(format!(
                "unknown ticket type {:?}",
                message.type_url
            )));
        }
        self.member_query(request).await
    }

    // ---- Flight SQL, for this member's own tools (client certificates) ----

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let who = self.own_tool(request.extensions())?;
        tracing::info!(client = %who, "flight sql statement planned");
        let result = self
            .node
            .query(&query.query)
            .await
            .map_err(|e| tool_status(&e))?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        let info = FlightInfo::new()
            .try_with_schema(&result.schema())
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(
                FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())),
            )
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let who = self.own_tool(request.extensions())?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("the statement handle is not UTF-8 SQL"))?;
        tracing::info!(client = %who, "flight sql statement run");
        let accessor = agora_node::Accessor {
            principal: format!("certificate:{who}"),
            channel: agora_node::Channel::Flight,
        };
        let result = self
            .node
            .query_logged(&accessor, None, &sql)
            .await
            .map_err(|e| tool_status(&e))?
            .result;
        let schema = result.schema();
        let batches = result
            .into_batches()
            .map_err(|e| FlightError::ExternalError(Box::new(e)));
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_max_flight_data_size(MAX_FLIGHT_DATA)
            .build(batches)
            .map_err(|e| match e {
                FlightError::ExternalError(inner) => match inner.downcast::<EngineError>() {
                    Ok(e) => tool_status(&NodeError::Engine(*e)),
                    Err(other) => Status::internal(other.to_string()),
                },
                other => Status::internal(other.to_string()),
            });
        Ok(Response::new(stream.boxed()))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.tool_info(request, query.as_any(), &schema)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.own_tool(request.extensions())?;
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        batch_stream(builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.tool_info(request, query.as_any(), &schema)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let tables = self.tool_tables(request.extensions()).await?;
        let mut builder = query.into_builder();
        let mut seen = std::collections::BTreeSet::new();
        for t in &tables {
            if seen.insert(t.schema.clone()) {
                builder.append(CATALOG, &t.schema);
            }
        }
        batch_stream(builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.tool_info(request, query.as_any(), &schema)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let tables = self.tool_tables(request.extensions()).await?;
        let mut builder = query.into_builder();
        for t in &tables {
            let fields = t
                .columns
                .iter()
                .map(|c| {
                    let dt = c
                        .data_type
                        .parse()
                        .unwrap_or(arrow::datatypes::DataType::Utf8);
                    arrow::datatypes::Field::new(&c.name, dt, c.nullable)
                })
                .collect::<Vec<_>>();
            builder
                .append(
                    CATALOG,
                    &t.schema,
                    &t.name,
                    "TABLE",
                    &arrow::datatypes::Schema::new(fields),
                )
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        batch_stream(builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.tool_info(request, query.as_any(), &schema)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.own_tool(request.extensions())?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        batch_stream(builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(sql_info()).schema();
        self.tool_info(request, query.as_any(), &schema)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.own_tool(request.extensions())?;
        batch_stream(query.into_builder(sql_info()).build())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// The one catalog a member's tools see: their node's products in `public`, every other
/// member's offers in a schema named by the member.
const CATALOG: &str = "agora";

fn sql_info() -> &'static SqlInfoData {
    static INFO: std::sync::OnceLock<SqlInfoData> = std::sync::OnceLock::new();
    INFO.get_or_init(|| {
        let mut b = SqlInfoDataBuilder::new();
        b.append(SqlInfo::FlightSqlServerName, "Agora");
        b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
        b.append(SqlInfo::FlightSqlServerReadOnly, true);
        b.append(SqlInfo::FlightSqlServerTransaction, 0_i32);
        b.build().expect("static SQL info builds")
    })
}

fn batch_stream(
    batch: Result<arrow::array::RecordBatch, impl std::fmt::Display>,
) -> Result<Response<Boxed<FlightData>>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(batch.schema())
        .build(futures::stream::iter([Ok(batch)]))
        .map_err(|e| Status::internal(e.to_string()));
    Ok(Response::new(stream.boxed()))
}

/// The gRPC status of a failed query from the member's own tool (it may see its own
/// node's details).
fn tool_status(e: &NodeError) -> Status {
    let code = match e.kind() {
        ErrorKind::AccessDenied
        | ErrorKind::PeerRefused
        | ErrorKind::ReadOnly
        | ErrorKind::Forbidden => Code::PermissionDenied,
        ErrorKind::PeerFailed => Code::Unavailable,
        ErrorKind::RateLimited => Code::ResourceExhausted,
        _ if e.is_user_error() => Code::InvalidArgument,
        _ => Code::Internal,
    };
    Status::new(code, e.to_string())
}

impl ExchangeFlight {
    /// A `FlightInfo` for a metadata command of a member's tool, answered by `DoGet` on
    /// the same endpoint.
    fn tool_info(
        &self,
        request: Request<FlightDescriptor>,
        command: Any,
        schema: &arrow::datatypes::Schema,
    ) -> Result<Response<FlightInfo>, Status> {
        self.own_tool(request.extensions())?;
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(command.encode_to_vec())))
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    /// The tables a member's tool may list.
    async fn tool_tables(
        &self,
        extensions: &axum::http::Extensions,
    ) -> Result<Vec<agora_node::VisibleTable>, Status> {
        self.own_tool(extensions)?;
        self.node
            .visible_tables()
            .await
            .map_err(|e| tool_status(&e))
    }

    /// Flight SQL is for the tools of this node's own member: a client (or node)
    /// certificate of this member, in good standing on the trust list.
    fn own_tool(&self, extensions: &axum::http::Extensions) -> Result<String, Status> {
        let cert = extensions
            .get::<PeerCertificate>()
            .and_then(|p| p.0.clone())
            .ok_or_else(|| {
                Status::unauthenticated("present your member certificate (mutual TLS)")
            })?;
        let trust = self
            .node
            .enrolled()
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let (member, _kind) = trust
            .check_peer(&cert, chrono::Utc::now())
            .map_err(|e| Status::permission_denied(e.to_string()))?;
        if &member.id != self.node.member() {
            return Err(Status::permission_denied(format!(
                "Flight SQL on this node is for the tools of {}; {} queries its products through its own node",
                self.node.member(),
                member.id
            )));
        }
        Ok(cert.common_name.clone())
    }

    /// A signed query from another member's node.
    async fn member_query(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let cert = request
            .extensions()
            .get::<PeerCertificate>()
            .and_then(|p| p.0.clone());
        let header = request
            .metadata()
            .get(REQUEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let nonce = RequestSignature::nonce_of(header.as_deref());
        let ticket = request.into_inner().ticket;
        let Some(cert) = cert else {
            return Err(self.refusal(
                &nonce,
                Code::Unauthenticated,
                "present your member certificate (mutual TLS)".into(),
            ));
        };
        let digest = digest_hex(&ticket);
        let target = RequestTarget {
            method: "POST",
            path: paths::FLIGHT_DO_GET,
            body_digest: &digest,
        };
        let inbound = match self
            .node
            .begin_inbound(&cert, header.as_deref(), &target)
            .await
        {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(peer = %cert.common_name, reason = %e, "flight request refused");
                let (code, message) = member_facing(&e);
                return Err(self.refusal(&nonce, code, message));
            }
        };
        let message = match <Any as prost::Message>::decode(&ticket[..]) {
            Ok(m) => m,
            Err(e) => {
                return Err(self
                    .refuse_admitted(
                        &inbound,
                        Code::InvalidArgument,
                        format!("the ticket is not an Agora query ticket: {e}"),
                    )
                    .await);
            }
        };
        let ticket: FlightTicket = match serde_json::from_slice(&message.value) {
            Ok(t) => t,
            Err(e) => {
                return Err(self
                    .refuse_admitted(
                        &inbound,
                        Code::InvalidArgument,
                        format!("the ticket is not an Agora query ticket: {e}"),
                    )
                    .await);
            }
        };
        let result = match self.node.query_for_member(&inbound, &ticket.sql).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(peer = %inbound.peer.id, reason = %e, "member query refused");
                let (code, message) = member_facing(&e);
                return Err(self.refuse_admitted(&inbound, code, message).await);
            }
        };
        let result = result.with_described_types();
        let rows = Arc::new(AtomicI64::new(0));
        let counted = Arc::clone(&rows);
        let schema = result.schema();
        let batches = result
            .into_batches()
            .map_ok(move |b| {
                counted.fetch_add(b.num_rows() as i64, Ordering::Relaxed);
                b
            })
            .map_err(|e| FlightError::ExternalError(Box::new(e)));
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_max_flight_data_size(MAX_FLIGHT_DATA)
            .build(batches);
        let stream = SignedStream {
            inner: encoded.boxed(),
            node: self.node.clone(),
            inbound: Some(inbound),
            digest: StreamDigest::default(),
            bytes: 0,
            rows,
            ending: None,
            done: false,
        };
        Ok(Response::new(stream.boxed()))
    }
}

/// The signed end of an answer: no data, the response signature as application metadata.
fn end_frame(signature: String) -> FlightData {
    FlightData {
        app_metadata: signature.into_bytes().into(),
        ..Default::default()
    }
}

/// The encoded answer, digested as it goes, ending with the signed end message.
struct SignedStream {
    inner: BoxStream<'static, Result<FlightData, FlightError>>,
    node: Node,
    inbound: Option<Inbound>,
    digest: StreamDigest,
    bytes: i64,
    rows: Arc<AtomicI64>,
    /// Signing and logging the end, once the data is out.
    ending: Option<BoxFuture<'static, Result<String, NodeError>>>,
    done: bool,
}

impl SignedStream {
    fn end(&self, failure: Option<String>) -> InboundEnd {
        InboundEnd {
            status: if failure.is_some() { 500 } else { 200 },
            digest: self.digest.hex(),
            bytes: self.bytes,
            rows: self.rows.load(Ordering::Relaxed),
            failure,
        }
    }

    fn finish(&mut self, failure: Option<String>) -> BoxFuture<'static, Result<String, NodeError>> {
        let end = self.end(failure);
        let node = self.node.clone();
        let inbound = self.inbound.take();
        // The record is completed by a task of its own: the consumer may drop the
        // stream while the end is being signed and logged, and the record must not
        // stay pending because the future writing it was dropped half-way.
        let task = tokio::spawn(async move {
            match inbound {
                Some(i) => node.end_inbound(&i, end).await,
                None => Err(NodeError::Exchange(agora_exchange::ExchangeError::Setup(
                    "the exchange already ended".into(),
                ))),
            }
        });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(NodeError::Exchange(agora_exchange::ExchangeError::Setup(
                    format!("the task recording the end of the exchange failed: {e}"),
                )))
            })
        }
        .boxed()
    }
}

impl Stream for SignedStream {
    type Item = Result<FlightData, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(ending) = this.ending.as_mut() {
            return match ending.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(result) => {
                    this.done = true;
                    match result {
                        Ok(signature) => Poll::Ready(Some(Ok(end_frame(signature)))),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot sign the end of an answer");
                            Poll::Ready(Some(Err(Status::internal(
                                "the owner could not sign its answer",
                            ))))
                        }
                    }
                }
            };
        }
        match this.inner.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(data))) => {
                this.digest.update(&data.data_header, &data.data_body);
                this.bytes += (data.data_header.len() + data.data_body.len()) as i64;
                Poll::Ready(Some(Ok(data)))
            }
            Poll::Ready(Some(Err(e))) => {
                let (code, message) = match &e {
                    FlightError::ExternalError(inner) => {
                        match inner.downcast_ref::<EngineError>() {
                            Some(engine) => member_facing(&NodeError::Engine(engine.clone())),
                            None => (
                                Code::Unavailable,
                                "the owner failed while answering".to_owned(),
                            ),
                        }
                    }
                    _ => (
                        Code::Unavailable,
                        "the owner failed while answering".to_owned(),
                    ),
                };
                tracing::warn!(error = %e, "a member query failed while streaming");
                // Signed like a refusal, so the consumer can tell the owner's word on its
                // query (its own error) from a broken stream.
                let mut status = Status::new(code, message.clone());
                if let Some(inbound) = &this.inbound
                    && let Some(sig) = this.node.sign_refusal(
                        &inbound.nonce,
                        refusal_status(code),
                        status.message().as_bytes(),
                    )
                    && let Ok(v) = sig.parse()
                {
                    status.metadata_mut().insert(RESPONSE_HEADER, v);
                }
                let ending = this.finish(Some(message));
                tokio::spawn(async move {
                    if let Err(e) = ending.await {
                        tracing::error!(error = %e, "cannot record a failed exchange");
                    }
                });
                this.done = true;
                Poll::Ready(Some(Err(status)))
            }
            Poll::Ready(None) => {
                // The signature goes out as soon as it is made; the log record is
                // completed by a task of its own, so the consumer does not wait for the
                // store (and a consumer gone after the signed end does not stop it).
                let end = this.end(None);
                let Some(inbound) = this.inbound.take() else {
                    this.done = true;
                    return Poll::Ready(None);
                };
                match this.node.sign_inbound_end(&inbound, end) {
                    Ok((signature, record)) => {
                        let node = this.node.clone();
                        tokio::spawn(async move {
                            if let Err(e) = node.record_inbound_end(&inbound, &record).await {
                                tracing::error!(peer = %inbound.peer.id, error = %e, "cannot record the end of an exchange");
                            }
                        });
                        this.done = true;
                        Poll::Ready(Some(Ok(end_frame(signature))))
                    }
                    Err(e) => {
                        this.inbound = Some(inbound);
                        this.ending = Some(this.finish(Some(format!("cannot sign: {e}"))));
                        self.poll_next(cx)
                    }
                }
            }
        }
    }
}

impl Drop for SignedStream {
    fn drop(&mut self) {
        // Outside a runtime (a test dropping a stream it built) there is nobody to log to.
        if self.inbound.is_some() && tokio::runtime::Handle::try_current().is_ok() {
            let ending = self.finish(Some("cancelled: the consumer stopped reading".into()));
            tokio::spawn(async move {
                if let Err(e) = ending.await {
                    tracing::error!(error = %e, "cannot record a cancelled exchange");
                }
            });
        }
    }
}
