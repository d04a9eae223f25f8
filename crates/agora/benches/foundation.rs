//! Foundation benchmark (issue 2): one run, same machine, same files.
//!
//! 1. demo-data generation rate at 1 000 000 residents;
//! 2. the same two queries through a node's query API (HTTP, token auth, CSV result) and
//!    through DataFusion directly on the same Parquet folders: medians and their ratio. The
//!    API client runs as a separate program would, on a thread and runtime of its own; the
//!    node and direct DataFusion share the bench's runtime. A breakdown line each gives the
//!    node's in-process latency, authentication, a bare authenticated round trip and
//!    `SELECT 1` on every path;
//! 3. `agora demo` time to ready (default scale), cold and warm.
//!
//! Environment: AGORA_BENCH_SCALE (residents, default 1 000 000), AGORA_BENCH_REPS (default
//! 30), AGORA_BENCH_DIR (default $TMPDIR/agora-bench), AGORA_BENCH_SKIP_DEMO=1.
//! Output: one tab-separated line per figure, `name  metric  median  unit  min  max  n`,
//! like ../shared/peers, and `#` lines for notes.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use agora_model::MemberId;
use agora_node::{Node, NodeConfig, RegisterRequest};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

mod common;

/// The same allocator as the `agora` binary, so both paths are measured as they run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use common::{emit, env_u64};

const Q1: &str = "SELECT municipality, count(*), avg(months_unemployed) FROM job_seekers \
                  WHERE education_level >= 3 GROUP BY municipality";
const Q2: &str = "SELECT j.municipality, avg(i.gross_income) FROM job_seekers j \
                  JOIN annual_income i ON j.person_id = i.person_id \
                  WHERE i.tax_year = 2024 GROUP BY j.municipality";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Canonical form of a two-or-three-column grouped result for comparing engines.
fn canon(rows: Vec<Vec<String>>) -> Vec<String> {
    let mut v: Vec<String> = rows.into_iter().map(|r| r.join("|")).collect();
    v.sort();
    v
}

fn round(x: f64) -> String {
    format!("{x:.6}")
}

async fn direct(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, Float64Type};
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut rows = Vec::new();
    for b in batches {
        let key = cast(b.column(0), &DataType::Utf8).unwrap();
        let key = key.as_string::<i32>();
        let nums: Vec<_> = (1..b.num_columns())
            .map(|c| cast(b.column(c), &DataType::Float64).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            let mut row = vec![key.value(r).to_owned()];
            for n in &nums {
                row.push(round(n.as_primitive::<Float64Type>().value(r)));
            }
            rows.push(row);
        }
    }
    rows
}

async fn via_api(http: &reqwest::Client, url: &str, token: &str, sql: &str) -> Vec<Vec<String>> {
    let r = http
        .post(format!("{url}/api/v1/query"))
        .bearer_auth(token)
        .json(&serde_json::json!({"sql": sql, "format": "csv"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let text = r.text().await.unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let mut fields = line.split(',');
            let mut row = vec![fields.next().unwrap().to_owned()];
            row.extend(fields.map(|f| round(f.parse::<f64>().unwrap())));
            row
        })
        .collect()
}

enum Call {
    Query(String, mpsc::Sender<(f64, Vec<Vec<String>>)>),
    GetNode(mpsc::Sender<f64>),
}

/// An API client as a separate program would be: a thread of its own driving its own
/// connection (one keep-alive connection, single-threaded runtime), so that its work does
/// not queue behind the node's tasks on the node's worker threads. It times each call
/// from its side: request out to response read.
struct ApiClient {
    tx: mpsc::Sender<Call>,
}

impl ApiClient {
    fn start(url: String, token: String) -> Self {
        let (tx, rx) = mpsc::channel::<Call>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let http = reqwest::Client::new();
            for call in rx {
                match call {
                    Call::Query(sql, reply) => {
                        let t = Instant::now();
                        let rows = rt.block_on(via_api(&http, &url, &token, &sql));
                        let _ = reply.send((ms(t.elapsed()), rows));
                    }
                    Call::GetNode(reply) => {
                        let t = Instant::now();
                        rt.block_on(async {
                            let r = http
                                .get(format!("{url}/api/v1/node"))
                                .bearer_auth(&token)
                                .send()
                                .await
                                .unwrap();
                            assert!(r.status().is_success());
                            std::hint::black_box(r.bytes().await.unwrap());
                        });
                        let _ = reply.send(ms(t.elapsed()));
                    }
                }
            }
        });
        Self { tx }
    }

    /// Runs `sql` through the node's API: latency in ms and the rows.
    fn query(&self, sql: &str) -> (f64, Vec<Vec<String>>) {
        let (reply, answer) = mpsc::channel();
        self.tx.send(Call::Query(sql.to_owned(), reply)).unwrap();
        answer.recv().unwrap()
    }

    /// An authenticated round trip to a handler that does almost nothing, in ms.
    fn get_node(&self) -> f64 {
        let (reply, answer) = mpsc::channel();
        self.tx.send(Call::GetNode(reply)).unwrap();
        answer.recv().unwrap()
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let scale = env_u64("AGORA_BENCH_SCALE", 1_000_000);
    let reps = env_u64("AGORA_BENCH_REPS", 30) as usize;
    let root = std::env::var("AGORA_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| std::env::temp_dir().join("agora-bench"));
    std::fs::create_dir_all(&root).unwrap();
    println!(
        "# host: {} cores; scale {scale} residents; {reps} runs per query after one warm-up",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // 1. Generation rate.
    let data = root.join("data");
    let opts = agora_datagen::GenOptions::new(scale, 42, &data);
    let t = Instant::now();
    let summary = agora_datagen::generate(&opts, &|_| {}).unwrap();
    let secs = t.elapsed().as_secs_f64();
    emit(
        "agora",
        "datagen_residents_per_s",
        &[scale as f64 / secs],
        "residents/s",
    );
    emit("agora", "datagen_seconds", &[secs], "s");
    println!("# generated {} rows in {:.2} s", summary.total_rows(), secs);
    for tbl in &summary.tables {
        println!("# {}/{}: {} rows", tbl.member, tbl.table, tbl.rows);
    }

    // 2. A node with the two products, serving on loopback.
    let node_dir = root.join("node");
    let _ = std::fs::remove_dir_all(&node_dir);
    let member = MemberId::parse("employment-agency").unwrap();
    let (node, token) = Node::init(&NodeConfig::new(&node_dir), &member, "bench")
        .await
        .unwrap();
    let folder = |m: &str, t: &str| data.join(m).join(t);
    for (m, t) in [
        ("employment-agency", "job_seekers"),
        ("tax-office", "annual_income"),
    ] {
        // The income table belongs to the tax office; for this single-node benchmark the
        // employment agency registers a view of the same files (hard links) as its own.
        let mut req = RegisterRequest {
            location: folder(m, t).display().to_string(),
            name: Some(t.to_owned()),
            ..Default::default()
        };
        req.metadata.title = Some(t.to_owned());
        if m != "employment-agency" {
            // The sidecar names the tax office as owner; take the registration's owner.
            let dir = root.join("income-view");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for e in std::fs::read_dir(folder(m, t)).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "parquet") {
                    // Hard links: the node reads files only at their real location, and
                    // a hard link is one (a symbolic link would be refused).
                    let to = dir.join(p.file_name().unwrap());
                    std::fs::hard_link(&p, &to)
                        .or_else(|_| std::fs::copy(&p, &to).map(drop))
                        .unwrap();
                }
            }
            req.location = dir.display().to_string();
            req.metadata.classification = Some(agora_model::Classification::Internal);
        }
        node.register(req, &|_| {}).await.unwrap();
    }
    let in_process = node.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(agora_server::serve(
        node,
        listener,
        agora_server::ServerConfig::default(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let client = ApiClient::start(url.clone(), token.secret.clone());

    // DataFusion directly on the same files.
    let ctx = SessionContext::new();
    let opts = ParquetReadOptions::default();
    ctx.register_parquet(
        "job_seekers",
        format!("{}/", folder("employment-agency", "job_seekers").display()),
        opts.clone(),
    )
    .await
    .unwrap();
    ctx.register_parquet(
        "annual_income",
        format!("{}/", folder("tax-office", "annual_income").display()),
        opts,
    )
    .await
    .unwrap();

    // Fixed costs of a request, for the breakdown: authentication alone (in process), an
    // authenticated round trip to a handler that does almost nothing, and `SELECT 1`.
    {
        let mut auth = Vec::new();
        let mut trip = Vec::new();
        let mut api1 = Vec::new();
        let mut proc1 = Vec::new();
        let mut df1 = Vec::new();
        for i in 0..=(reps * 10) {
            let t = Instant::now();
            std::hint::black_box(in_process.authenticate(&token.secret).await.unwrap());
            let ta = ms(t.elapsed());
            let tt = client.get_node();
            let (t1, _) = client.query("SELECT 1");
            let t = Instant::now();
            let result = in_process.query("SELECT 1").await.unwrap();
            std::hint::black_box(result.to_text_table(0).await.unwrap());
            let tp = ms(t.elapsed());
            let t = Instant::now();
            std::hint::black_box(ctx.sql("SELECT 1").await.unwrap().collect().await.unwrap());
            let td = ms(t.elapsed());
            if i > 0 {
                auth.push(ta);
                trip.push(tt);
                api1.push(t1);
                proc1.push(tp);
                df1.push(td);
            }
        }
        emit("agora-node-in-process", "authenticate_latency", &auth, "ms");
        emit("agora-node-api", "get_node_latency", &trip, "ms");
        emit("datafusion-direct", "select1_latency", &df1, "ms");
        emit("agora-node-in-process", "select1_latency", &proc1, "ms");
        emit("agora-node-api", "select1_latency", &api1, "ms");
    }

    for (name, sql) in [("Q1_filter_groupby", Q1), ("Q2_join_groupby", Q2)] {
        // Same answers from both.
        let a = canon(direct(&ctx, sql).await);
        let b = canon(client.query(sql).1);
        assert_eq!(a, b, "{name}: node and DataFusion disagree");
        println!(
            "# check {name}: node and DataFusion agree ({} groups)",
            a.len()
        );
        // Interleaved runs so that drift affects all sides alike.
        let mut d = Vec::new();
        let mut n = Vec::new();
        let mut p = Vec::new();
        for i in 0..=reps {
            let t = Instant::now();
            std::hint::black_box(direct(&ctx, sql).await);
            let td = ms(t.elapsed());
            let (tn, rows) = client.query(sql);
            std::hint::black_box(rows);
            // The node's own layer without HTTP and authentication, for the breakdown.
            let t = Instant::now();
            let result = in_process.query(sql).await.unwrap();
            std::hint::black_box(result.to_text_table(0).await.unwrap());
            let tp = ms(t.elapsed());
            if i > 0 {
                d.push(td);
                n.push(tn);
                p.push(tp);
            }
        }
        let md = emit("datafusion-direct", &format!("{name}_latency"), &d, "ms");
        let mn = emit("agora-node-api", &format!("{name}_latency"), &n, "ms");
        emit(
            "agora-node-in-process",
            &format!("{name}_latency"),
            &p,
            "ms",
        );
        emit(
            "agora/datafusion",
            &format!("{name}_ratio"),
            &[mn / md],
            "x",
        );
    }
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();

    // 3. Demo time to ready, cold then warm, with the release binary.
    if std::env::var("AGORA_BENCH_SKIP_DEMO").is_ok() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_agora");
    let demo_dir = root.join("demo");
    let _ = std::fs::remove_dir_all(&demo_dir);
    let time_demo = |dir: &Path| {
        let t = Instant::now();
        let out = Command::new(bin)
            .args(["demo", "--no-serve", "--base-port", "0", "--data-dir"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed().as_secs_f64()
    };
    let cold = time_demo(&demo_dir);
    let warm: Vec<f64> = (0..3).map(|_| time_demo(&demo_dir)).collect();
    emit("agora", "demo_ready_cold_100k", &[cold], "s");
    emit("agora", "demo_ready_warm_100k", &warm, "s");
}
