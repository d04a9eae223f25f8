//! Cross-member SQL over Arrow Flight between real nodes on loopback: open products are
//! queried as `"member".product`, other products need an agreement, both sides log every
//! exchange, and a peer that cuts, forges or stalls its answer is reported — never taken
//! for a complete result.

use std::sync::Arc;
use std::time::Duration;

use agora_node::EngineError;
use agora_node::NodeError;
use agora_node::trust::TrustSettings;
use agora_trust::sign::REQUEST_HEADER;
use agora_trust::{RequestSignature, ResponseSignature, StreamDigest};
use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::ecosystem::{Member, member, member_with, register_csv, start_authority};

/// The node's exchange log once every record is complete (records of streams are
/// completed as the streams end, a moment after the last batch).
async fn settled_log(node: &agora_node::Node) -> Vec<agora_model::ExchangeRecord> {
    for _ in 0..100 {
        let log = node.store().exchanges(None, 50).await.unwrap();
        if log.iter().all(|r| r.outcome != "pending") {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("exchange records stay pending");
}

/// An authority, an owner (`tax-office`) with one product, and a consumer
/// (`employment-agency`) that knows the owner's offers.
struct Pair {
    tax: Member,
    ea: Member,
    dir: tempfile::TempDir,
    _authority: crate::ecosystem::TestAuthority,
}

async fn pair(product: &str, classification: &str) -> Pair {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let tax = member(&a, dir.path(), "tax-office").await;
    let ea = member(&a, dir.path(), "employment-agency").await;
    tax.node.trust().unwrap().refresh().await.unwrap();
    register_csv(&tax.node, dir.path(), product, classification).await;
    ea.node.refresh_offers().await.unwrap();
    Pair {
        tax,
        ea,
        dir,
        _authority: a,
    }
}

async fn text(m: &Member, sql: &str) -> Result<String, NodeError> {
    let r = m.node.query(sql).await?;
    Ok(r.to_text_table(100).await?.0)
}

#[tokio::test]
async fn open_products_are_queried_across_members_and_logged_by_both() {
    let p = pair("income_statistics", "open").await;
    let (tax, ea, dir) = (&p.tax, &p.ea, &p.dir);
    std::fs::create_dir_all(dir.path().join("ea")).unwrap();
    register_csv(
        &ea.node,
        &dir.path().join("ea"),
        "local_incomes",
        "internal",
    )
    .await;
    ea.node.refresh_offers().await.unwrap();

    let out = text(
        ea,
        "SELECT year, count(*) AS people, sum(income) AS total \
         FROM \"tax-office\".income_statistics GROUP BY year",
    )
    .await
    .unwrap();
    assert!(out.contains("2024") && out.contains("73000"), "{out}");

    // A join across members runs here, over rows filtered at the owner.
    let joined = text(
        ea,
        "SELECT l.person_id, t.income FROM local_incomes l \
         JOIN \"tax-office\".income_statistics t ON t.person_id = l.person_id \
         WHERE t.income > 40000",
    )
    .await
    .unwrap();
    assert!(
        joined.contains("10000017") && !joined.contains("10000009"),
        "{joined}"
    );

    // Both sides logged each query with the same nonce, digests and signatures.
    let outbound = settled_log(&ea.node).await;
    let inbound = settled_log(&tax.node).await;
    let flights: Vec<_> = outbound
        .iter()
        .filter(|r| r.operation.starts_with("flight DoGet"))
        .collect();
    assert_eq!(flights.len(), 2, "{outbound:#?}");
    for o in flights {
        let i = inbound
            .iter()
            .find(|r| r.nonce == o.nonce)
            .unwrap_or_else(|| panic!("no inbound record for {o:?} in {inbound:#?}"));
        assert_eq!((o.outcome.as_str(), i.outcome.as_str()), ("ok", "ok"));
        assert_eq!(o.request_digest, i.request_digest);
        assert_eq!(o.request_signature, i.request_signature);
        assert_eq!(o.response_digest, i.response_digest);
        assert_eq!(o.response_signature, i.response_signature);
        assert_eq!(o.rows, i.rows);
        assert!(
            o.rows >= 1 && o.bytes > 0 && o.bytes == i.bytes,
            "{o:?} {i:?}"
        );
        assert_eq!(
            o.peer_certificate,
            tax.node.trust().unwrap().material().info.fingerprint
        );
    }
}

#[tokio::test]
async fn products_other_than_open_need_an_agreement() {
    let p = pair("annual_income", "personal").await;
    let (tax, ea) = (&p.tax, &p.ea);

    let e = text(ea, "SELECT count(*) FROM \"tax-office\".annual_income")
        .await
        .unwrap_err();
    assert!(
        matches!(e, NodeError::Engine(EngineError::RemoteRefused(_))),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("tax-office") && msg.contains("sharing agreement"),
        "{msg}"
    );
    // Products the owner does not offer are unknown here.
    let e = text(ea, "SELECT * FROM \"tax-office\".secrets")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("secrets"), "{e}");
    // The refusal is on both logs.
    let out = settled_log(&ea.node).await;
    assert!(
        out[0].outcome.starts_with("failed:") && out[0].outcome.contains("agreement"),
        "{:?}",
        out[0]
    );
    let inn = settled_log(&tax.node).await;
    assert!(
        inn.iter()
            .any(|r| r.nonce == out[0].nonce && r.outcome.starts_with("refused: status 403")),
        "{inn:#?}"
    );
}

#[tokio::test]
async fn members_cannot_send_anything_but_a_select() {
    let p = pair("income_statistics", "open").await;
    let ea = &p.ea;
    for sql in [
        "EXPLAIN SELECT * FROM income_statistics",
        "SELECT 1; SELECT 2",
        "COPY income_statistics TO '/tmp/stolen.csv'",
    ] {
        let e = match ea.node.remote_query("tax-office", sql).await {
            Ok(mut s) => s.next().await.unwrap().unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("refused") && e.contains("SELECT"), "{sql}: {e}");
    }
    assert!(!std::path::Path::new("/tmp/stolen.csv").exists());
}

#[tokio::test]
async fn member_queries_beyond_the_limits_are_refused_and_the_owner_stays_up() {
    let p = pair("income_statistics", "open").await;
    let ea = &p.ea;
    let chain = |item: &str, sep: &str, n: usize| vec![item; n].join(sep);
    for (sql, words) in [
        (
            format!("SELECT {} FROM income_statistics", chain("1", "+", 2_000)),
            "deeper or larger",
        ),
        (
            format!(
                "SELECT * FROM income_statistics WHERE {}",
                chain("year = 1", " OR ", 3_000)
            ),
            "deeper or larger",
        ),
        (
            format!("SELECT {}1{}", "CAST(".repeat(40), " AS INT)".repeat(40)),
            "deeper or larger",
        ),
        (
            format!("SELECT '{}'", "x".repeat(300 * 1024)),
            "longer, deeper",
        ),
    ] {
        let e = match ea.node.remote_query("tax-office", &sql).await {
            Ok(mut s) => s.next().await.unwrap().unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("refused") && e.contains(words),
            "{:.60}: {e}",
            sql
        );
    }
    // The owner still answers, and logged every refusal as ended.
    let mut s = ea
        .node
        .remote_query("tax-office", "SELECT count(*) FROM income_statistics")
        .await
        .unwrap();
    assert!(s.next().await.unwrap().is_ok());
    drop(s);
    let log = settled_log(&p.tax.node).await;
    assert!(log.len() >= 5, "{log:#?}");
}

#[tokio::test]
async fn an_unreachable_owner_is_reported_with_its_name() {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let tax = member(&a, dir.path(), "tax-office").await;
    let ea = member(&a, dir.path(), "employment-agency").await;
    tax.node.trust().unwrap().refresh().await.unwrap();
    register_csv(&tax.node, dir.path(), "income_statistics", "open").await;
    ea.node.refresh_offers().await.unwrap();
    drop(tax);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let e = text(&ea, "SELECT * FROM \"tax-office\".income_statistics")
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("tax-office") && msg.contains("unreachable"),
        "{msg}"
    );
}

// ---------------- owners that misbehave ----------------

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Sends a batch, then ends without the signed end.
    Cut,
    /// Signs a digest of something else.
    ForgedEnd,
    /// Sends a batch, then nothing.
    Stall,
}

struct Rogue {
    fault: Fault,
    material: Arc<agora_node::trust::Material>,
    member: agora_model::MemberId,
}

type Boxed<T> = BoxStream<'static, Result<T, Status>>;

#[tonic::async_trait]
impl FlightService for Rogue {
    type HandshakeStream = Boxed<HandshakeResponse>;
    type ListFlightsStream = Boxed<FlightInfo>;
    type DoGetStream = Boxed<FlightData>;
    type DoPutStream = Boxed<PutResult>;
    type DoExchangeStream = Boxed<FlightData>;
    type DoActionStream = Boxed<arrow_flight::Result>;
    type ListActionsStream = Boxed<ActionType>;

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn get_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn do_action(
        &self,
        _: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        Err(Status::unimplemented(""))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let nonce = request
            .metadata()
            .get(REQUEST_HEADER)
            .and_then(|v| RequestSignature::parse(v.to_str().unwrap()).ok())
            .unwrap()
            .nonce;
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let data: Vec<FlightData> = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::iter([Ok(batch)]))
            .try_collect()
            .await
            .unwrap();
        let mut digest = StreamDigest::default();
        for d in &data {
            digest.update(&d.data_header, &d.data_body);
        }
        let signed_digest = match self.fault {
            Fault::ForgedEnd => agora_trust::digest_hex(b"something else"),
            _ => digest.hex(),
        };
        let end = FlightData {
            app_metadata: ResponseSignature::sign(
                &self.material.key,
                &nonce,
                200,
                &signed_digest,
                &self.member,
                chrono::Utc::now(),
            )
            .header()
            .into_bytes()
            .into(),
            ..Default::default()
        };
        let fault = self.fault;
        let body = futures::stream::iter(data.into_iter().map(Ok));
        let stream: Boxed<FlightData> = match fault {
            Fault::Cut => body.boxed(),
            Fault::ForgedEnd => body.chain(futures::stream::iter([Ok(end)])).boxed(),
            Fault::Stall => body.chain(futures::stream::pending()).boxed(),
        };
        Ok(Response::new(stream))
    }
}

/// A member whose listener answers Flight queries with `fault`, using its real certificate.
async fn rogue_owner(
    a: &crate::ecosystem::TestAuthority,
    dir: &std::path::Path,
    fault: Fault,
) -> (Member, tokio::sync::oneshot::Sender<()>) {
    // Enrol normally, then replace the listener by the rogue one on a new port is not
    // possible (the endpoint is in the trust list), so the rogue listener takes over the
    // member's own port after its real listener stops.
    let m = member(a, dir, "tax-office").await;
    let port: u16 = m.url.rsplit(':').next().unwrap().parse().unwrap();
    let node = m.node.clone();
    drop(m);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let trust = node.trust().unwrap();
    let tls = agora_trust::tls::server_config(
        &trust.material().root,
        trust.identity(),
        agora_trust::ClientAuth::Required,
    )
    .unwrap();
    let rogue = Rogue {
        fault,
        material: trust.material(),
        member: node.member().clone(),
    };
    let app = axum::Router::new().route_service(
        "/arrow.flight.protocol.FlightService/{*m}",
        FlightServiceServer::new(rogue),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(agora_server::serve_tls(
        listener,
        Arc::new(tls),
        app,
        async move {
            let _ = rx.await;
        },
    ));
    let url = format!("https://127.0.0.1:{port}");
    (Member::detached(node, url), tx)
}

async fn consume_from_rogue(fault: Fault) -> String {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (tax, _stop) = rogue_owner(&a, dir.path(), fault).await;
    let ea = member_with(
        &a,
        dir.path(),
        "employment-agency",
        TrustSettings {
            peer_timeout: chrono::Duration::milliseconds(500),
            ..Default::default()
        },
    )
    .await;
    let _ = tax;
    let mut stream = ea
        .node
        .remote_query("tax-office", "SELECT n FROM anything")
        .await
        .unwrap();
    let mut rows = 0;
    let mut error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => rows += b.num_rows(),
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    assert_eq!(rows, 3, "the data before the fault still arrives");
    let error = error.unwrap_or_else(|| panic!("{fault:?} was taken for a complete result"));
    // The consumer's log says the exchange failed.
    let log = settled_log(&ea.node).await;
    assert!(log[0].outcome.starts_with("failed:"), "{:?}", log[0]);
    error
}

#[tokio::test]
async fn a_stream_cut_before_its_signed_end_is_a_failure() {
    let e = consume_from_rogue(Fault::Cut).await;
    assert!(e.contains("tax-office") && e.contains("incomplete"), "{e}");
}

#[tokio::test]
async fn a_stream_whose_end_signature_does_not_match_is_a_failure() {
    let e = consume_from_rogue(Fault::ForgedEnd).await;
    assert!(
        e.contains("tax-office") && e.contains("does not match"),
        "{e}"
    );
}

#[tokio::test]
async fn a_stalled_stream_times_out_instead_of_hanging() {
    let e = consume_from_rogue(Fault::Stall).await;
    assert!(
        e.contains("tax-office") && e.contains("sent nothing"),
        "{e}"
    );
}

#[tokio::test]
async fn a_consumer_that_stops_reading_logs_the_query_as_cancelled() {
    let p = pair("income_statistics", "open").await;
    let (tax, ea) = (&p.tax, &p.ea);
    let stream = ea
        .node
        .remote_query("tax-office", "SELECT * FROM income_statistics")
        .await
        .unwrap();
    drop(stream);
    let log = settled_log(&ea.node).await;
    assert!(log[0].outcome.starts_with("cancelled"), "{:?}", log[0]);
    // The owner's record is complete too, whichever way its side ended.
    let owner = settled_log(&tax.node).await;
    assert!(owner.iter().any(|r| r.nonce == log[0].nonce), "{owner:#?}");
}

/// Regression: a consumer dropping the stream while the owner signs and logs its end
/// (right after the last batch) left the owner's record pending for ever.
#[tokio::test]
async fn a_stream_dropped_while_the_owner_signs_its_end_still_completes_the_owner_record() {
    let p = pair("income_statistics", "open").await;
    let (tax, ea) = (&p.tax, &p.ea);
    for _ in 0..10 {
        let mut stream = ea
            .node
            .remote_query("tax-office", "SELECT * FROM income_statistics")
            .await
            .unwrap();
        stream.next().await.unwrap().unwrap();
        drop(stream);
    }
    let consumer = settled_log(&ea.node).await;
    let owner = settled_log(&tax.node).await;
    for record in &consumer {
        assert!(owner.iter().any(|r| r.nonce == record.nonce), "{owner:#?}");
    }
}

#[tokio::test]
async fn queries_keep_working_after_the_consumer_renews_its_certificate() {
    let p = pair("income_statistics", "open").await;
    let (tax, ea) = (&p.tax, &p.ea);
    let sql = "SELECT count(*) FROM \"tax-office\".income_statistics";
    text(ea, sql).await.unwrap();
    // A renewal brings a new key: a connection made with the old certificate must not
    // carry requests signed with the new key.
    ea.node.trust().unwrap().renew(None).await.unwrap();
    tax.node.trust().unwrap().refresh().await.unwrap();
    let out = text(ea, sql).await.unwrap();
    assert!(out.contains('2'), "{out}");
}
