//! Exchange benchmark (issue 3): one run, same machine, same data.
//!
//! An authority and two enrolled nodes on loopback: `city-hospital` owns two open products,
//! `employment-agency` consumes them.
//!
//! 1. Small request/response. The same one-row query through the consumer's API, which
//!    sends it to the owner over mutual TLS as a signed Arrow Flight call logged on both
//!    sides, against the owner's own query API directly. A load client on a thread and
//!    runtime of its own keeps AGORA_BENCH_CONCURRENCY requests in flight for
//!    AGORA_BENCH_SECONDS per round; rounds alternate between the two paths. Throughput
//!    (median of rounds), p50/p99 latency over every request, and the ratio.
//! 2. Bulk transfer. `SELECT *` of a 10 000 000-row product from the owner to the consumer
//!    over Flight: wire bytes (Arrow IPC, as logged by both sides) per second, and rows per
//!    second, median of AGORA_BENCH_REPS runs.
//!
//! Environment: AGORA_BENCH_DIR (default $TMPDIR/agora-bench), AGORA_BENCH_ROWS (bulk
//! rows, default 10 000 000), AGORA_BENCH_SECONDS (default 5), AGORA_BENCH_ROUNDS
//! (default 3), AGORA_BENCH_CONCURRENCY (default 8), AGORA_BENCH_REPS (default 3),
//! AGORA_BENCH_ONLY (`direct` or `federated`: load that path alone and stop, for
//! profiling one path; no ratio then).
//! Output: tab-separated `name  metric  median  unit  min  max  n` lines and `#` notes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_authority::{Authority, AuthorityConfig};
use agora_model::{Endpoints, MemberId};
use agora_node::{Node, NodeConfig, RegisterRequest};
use datafusion::arrow::array::{Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;

mod common;

/// The same allocator as the `agora` binary, so both paths are measured as they run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use common::{emit, env_u64};

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let i = ((s.len() as f64 - 1.0) * p).round() as usize;
    s[i]
}

const MUNICIPALITIES: &[&str] = &[
    "Northport",
    "Eastbridge",
    "Westfield",
    "Southvale",
    "Lakeside",
    "Hillcrest",
    "Riverton",
    "Stonehaven",
];

/// The small product: 1 000 vacancies (CSV).
fn write_vacancies(dir: &Path) -> PathBuf {
    let path = dir.join("vacancies.csv");
    let mut s = String::from("vacancy_id,occupation,municipality,salary\n");
    for i in 0..1000 {
        s.push_str(&format!(
            "{i},occupation {},{},{}\n",
            i % 37,
            MUNICIPALITIES[i % MUNICIPALITIES.len()],
            1500 + (i * 13) % 2500
        ));
    }
    std::fs::write(&path, s).unwrap();
    path
}

/// The bulk product: `rows` rows in Parquet, written once and reused.
fn write_extract(dir: &Path, rows: u64) -> PathBuf {
    let path = dir.join(format!("extract_{rows}.parquet"));
    if path.exists() {
        return path;
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("record_id", DataType::Int64, false),
        Field::new("municipality", DataType::Utf8, false),
        Field::new("year", DataType::Int32, false),
        Field::new("amount", DataType::Float64, false),
    ]));
    let tmp = path.with_extension("tmp");
    let file = std::fs::File::create(&tmp).unwrap();
    let mut w =
        datafusion::parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
    let chunk = 1_000_000u64;
    let mut start = 0;
    while start < rows {
        let n = chunk.min(rows - start);
        let ids: Vec<i64> = (start..start + n).map(|i| i as i64).collect();
        let m: Vec<&str> = (start..start + n)
            .map(|i| MUNICIPALITIES[(i * 7 % 8) as usize])
            .collect();
        let y: Vec<i32> = (start..start + n).map(|i| 2015 + (i % 10) as i32).collect();
        let a: Vec<f64> = (start..start + n)
            .map(|i| (i % 10_000) as f64 * 1.25)
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(m)),
                Arc::new(Int32Array::from(y)),
                Arc::new(Float64Array::from(a)),
            ],
        )
        .unwrap();
        w.write(&batch).unwrap();
        start += n;
    }
    w.close().unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

async fn register_open(node: &Node, path: &Path, name: &str) {
    let patch: agora_model::MetadataPatch = serde_json::from_value(serde_json::json!({
        "title": format!("Benchmark {name}"),
        "description": "synthetic open data for the exchange benchmark",
        "keywords": ["benchmark"],
        "classification": "open",
    }))
    .unwrap();
    node.register(
        RegisterRequest {
            location: path.display().to_string(),
            name: Some(name.into()),
            metadata: patch,
            ..Default::default()
        },
        &|_| {},
    )
    .await
    .unwrap();
}

struct Ecosystem {
    owner: Node,
    consumer: Node,
    owner_api: String,
    owner_token: String,
    consumer_api: String,
    consumer_token: String,
    _authority: Arc<Authority>,
}

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

async fn ecosystem(dir: &Path, rows: u64) -> Ecosystem {
    let _ = std::fs::remove_dir_all(dir.join("run"));
    let run = dir.join("run");
    let (al, aaddr) = listener().await;
    let url = format!("https://{aaddr}");
    let authority = Arc::new(
        Authority::init(AuthorityConfig::new(run.join("authority")), "bench", &url)
            .await
            .unwrap(),
    );
    tokio::spawn(agora_server::serve_authority(
        authority.clone(),
        al,
        vec!["127.0.0.1".into()],
        std::future::pending(),
    ));
    let mut nodes = Vec::new();
    for id in ["city-hospital", "employment-agency"] {
        let member = MemberId::parse(id).unwrap();
        let (node, token) = Node::init(&NodeConfig::new(run.join(id)), &member, id)
            .await
            .unwrap();
        let (xl, xaddr) = listener().await;
        let t = authority.admit(&member, id).await.unwrap();
        node.enrol(
            &url,
            &t,
            Endpoints {
                exchange: Some(format!("https://{xaddr}")),
            },
        )
        .await
        .unwrap();
        tokio::spawn(agora_server::serve_exchange(
            node.clone(),
            xl,
            std::future::pending(),
        ));
        let (hl, haddr) = listener().await;
        tokio::spawn(agora_server::serve(
            node.clone(),
            hl,
            agora_server::ServerConfig::default(),
            std::future::pending(),
        ));
        nodes.push((node, format!("http://{haddr}"), token.secret));
    }
    let (owner, owner_api, owner_token) = nodes.remove(0);
    let (consumer, consumer_api, consumer_token) = nodes.remove(0);
    eprintln!("# writing the bulk product ({rows} rows) if needed…");
    register_open(&owner, &write_vacancies(&run), "vacancies").await;
    register_open(&owner, &write_extract(dir, rows), "extract").await;
    for n in [&owner, &consumer] {
        n.trust().unwrap().refresh().await.unwrap();
    }
    consumer.refresh_offers().await.unwrap();
    Ecosystem {
        owner,
        consumer,
        owner_api,
        owner_token,
        consumer_api,
        consumer_token,
        _authority: authority,
    }
}

/// Keeps `concurrency` requests in flight for `seconds`; returns (requests/s, latencies ms).
fn load(
    url: String,
    token: String,
    sql: String,
    concurrency: usize,
    seconds: u64,
) -> (f64, Vec<f64>) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(concurrency)
                .build()
                .unwrap();
            let body = serde_json::json!({"sql": sql, "format": "csv"}).to_string();
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let client = client.clone();
                let url = format!("{url}/api/v1/query");
                let token = token.clone();
                let body = body.clone();
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let r = client
                            .post(&url)
                            .bearer_auth(&token)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await
                            .unwrap();
                        assert!(r.status().is_success(), "{}", r.status());
                        let text = r.text().await.unwrap();
                        assert!(text.lines().count() == 2, "{text}");
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    lat
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            let secs = started.elapsed().as_secs_f64();
            (all.len() as f64 / secs, all)
        })
    })
    .join()
    .unwrap()
}

async fn bulk(consumer: &Node, rows: u64) -> (f64, u64, u64) {
    let started = Instant::now();
    let result = consumer
        .query("SELECT * FROM \"city-hospital\".extract")
        .await
        .unwrap();
    let mut stream = result.into_batches();
    let mut got = 0u64;
    while let Some(b) = stream.next().await {
        got += b.unwrap().num_rows() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(got, rows);
    // The wire bytes, as the consumer logged them (its record completes as the stream ends).
    let mut bytes = 0;
    for _ in 0..100 {
        let log = consumer.store().exchanges(None, 1).await.unwrap();
        if log[0].outcome == "ok" {
            bytes = log[0].bytes as u64;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (secs, got, bytes)
}

fn main() {
    let dir = std::env::var("AGORA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("agora-bench"))
        .join("exchange");
    std::fs::create_dir_all(&dir).unwrap();
    let rows = env_u64("AGORA_BENCH_ROWS", 10_000_000);
    let seconds = env_u64("AGORA_BENCH_SECONDS", 5);
    let rounds = env_u64("AGORA_BENCH_ROUNDS", 3);
    let concurrency = env_u64("AGORA_BENCH_CONCURRENCY", 8) as usize;
    let reps = env_u64("AGORA_BENCH_REPS", 3);
    let only = std::env::var("AGORA_BENCH_ONLY").ok();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let eco = rt.block_on(ecosystem(&dir, rows));
    println!(
        "# {} cores; {concurrency} requests in flight, {rounds} rounds of {seconds} s per path",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // 1. Small request/response.
    let direct_sql = "SELECT occupation, municipality FROM vacancies WHERE vacancy_id = 42";
    let remote_sql =
        "SELECT occupation, municipality FROM \"city-hospital\".vacancies WHERE vacancy_id = 42";
    // Warm both paths (connections, catalogs).
    load(
        eco.owner_api.clone(),
        eco.owner_token.clone(),
        direct_sql.into(),
        2,
        1,
    );
    load(
        eco.consumer_api.clone(),
        eco.consumer_token.clone(),
        remote_sql.into(),
        2,
        1,
    );
    let (mut d_rps, mut f_rps, mut d_lat, mut f_lat) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        if only.as_deref() == Some("federated") {
            f_rps.push(
                load(
                    eco.consumer_api.clone(),
                    eco.consumer_token.clone(),
                    remote_sql.into(),
                    concurrency,
                    seconds,
                )
                .0,
            );
            continue;
        }
        let (r, l) = load(
            eco.owner_api.clone(),
            eco.owner_token.clone(),
            direct_sql.into(),
            concurrency,
            seconds,
        );
        d_rps.push(r);
        d_lat.extend(l);
        if only.is_some() {
            continue;
        }
        let (r, l) = load(
            eco.consumer_api.clone(),
            eco.consumer_token.clone(),
            remote_sql.into(),
            concurrency,
            seconds,
        );
        f_rps.push(r);
        f_lat.extend(l);
    }
    if let Some(path) = only {
        let rps = if d_rps.is_empty() { &f_rps } else { &d_rps };
        emit(
            "small_request",
            &format!("{path}_only_throughput"),
            rps,
            "req/s",
        );
        return;
    }
    let d = emit(
        "small_request",
        "direct_owner_api_throughput",
        &d_rps,
        "req/s",
    );
    let f = emit(
        "small_request",
        "via_consumer_node_throughput",
        &f_rps,
        "req/s",
    );
    println!("small_request\tthroughput_ratio\t{:.3}\tratio\t\t\t", f / d);
    for (name, lat) in [("direct_owner_api", &d_lat), ("via_consumer_node", &f_lat)] {
        println!(
            "small_request\t{name}_latency_p50\t{:.3}\tms\t\t\t{}",
            percentile(lat, 0.5),
            lat.len()
        );
        println!(
            "small_request\t{name}_latency_p99\t{:.3}\tms\t\t\t{}",
            percentile(lat, 0.99),
            lat.len()
        );
    }
    let logged = rt.block_on(async {
        (
            eco.consumer.store().exchanges(None, 1).await.unwrap()[0].clone(),
            eco.owner.store().exchanges(None, 1).await.unwrap()[0].clone(),
        )
    });
    println!(
        "# every federated request was signed and logged on both sides (last: consumer {} / owner {})",
        logged.0.outcome, logged.1.outcome
    );

    // 2. Bulk transfer over Flight.
    let (mut mbs, mut rps) = (vec![], vec![]);
    let mut wire = 0;
    rt.block_on(bulk(&eco.consumer, rows)); // warm
    for _ in 0..reps {
        let (secs, got, bytes) = rt.block_on(bulk(&eco.consumer, rows));
        wire = bytes;
        mbs.push(bytes as f64 / 1e6 / secs);
        rps.push(got as f64 / secs);
    }
    emit("bulk_flight", "wire_throughput", &mbs, "MB/s");
    emit("bulk_flight", "rows_per_second", &rps, "rows/s");
    println!(
        "# bulk: {rows} rows, {:.1} MB of Arrow IPC on the wire per transfer",
        wire as f64 / 1e6
    );
}
