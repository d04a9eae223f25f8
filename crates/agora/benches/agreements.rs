//! Agreements benchmark (issue 4): one run, same machine, same Parquet files.
//!
//! 1. Policy-enforced remote queries against the same queries on DataFusion used directly:
//!    the employment agency's node asks the tax office's node, over mutual TLS and signed
//!    Arrow Flight, under linkage agreements both signed (pseudonymised person ids, a date
//!    truncated to the month, a row filter), for a scan-filter-aggregate over
//!    `benefit_payments` and a join of `benefit_payments` with `annual_income` on the
//!    pseudonyms; DataFusion reads the same folders with the plain SQL. Medians of each
//!    and their ratio (target ≤ 1.15). The answers are checked equal.
//! 2. Aggregate mode: the statistics office's node asks the tax office's for tables of
//!    declared income by sector under an aggregate agreement (cell-key perturbation,
//!    minimum contributors, p % dominance), against the same aggregate unprotected on
//!    DataFusion directly (target ≤ 1.2).
//! 3. Pseudonymisation throughput on one core: HMAC-SHA256 pseudonyms of 11-digit person
//!    identifiers per second (target ≥ 3 000 000).
//!
//! Environment: AGORA_BENCH_SCALE (residents, default 1 000 000), AGORA_BENCH_REPS (default
//! 15), AGORA_BENCH_DIR (default $TMPDIR/agora-bench). Output: `name  metric  median  unit
//! min  max  n` lines like ../shared/peers, and `#` lines for notes.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_authority::{Authority, AuthorityConfig};
use agora_model::{
    AccessMode, AccessRequest, AgreementTerms, ColumnTerm, Endpoints, MemberId, NegotiationRole,
    NegotiationState, ProductName,
};
use agora_node::{Node, NodeConfig, RegisterRequest};
use datafusion::arrow::array::Array;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::TryStreamExt;

mod common;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use common::{emit, env_u64};

const Q1: &str = "SELECT benefit_type, count(*) AS n, sum(amount) AS total FROM {b} \
                  WHERE paid_on >= DATE '2025-01-01' GROUP BY benefit_type";
const Q2: &str = "SELECT b.benefit_type, count(*) AS n, avg(i.gross_income) AS income \
                  FROM {b} b JOIN {i} i ON i.person_id = b.person_id \
                  WHERE i.tax_year = 2025 GROUP BY b.benefit_type";

/// Aggregate-mode queries: people and total income by sector (the distinct count is part of
/// the question on both sides), and rows and mean income by sector.
const AGG_PEOPLE: &str = "SELECT sector, count(DISTINCT person_id) AS people, \
                          sum(gross_income) AS total FROM {i} WHERE tax_year = 2025 GROUP BY sector";
const AGG_ROWS: &str = "SELECT sector, count(*) AS n, avg(gross_income) AS mean FROM {i} \
                        WHERE tax_year = 2025 GROUP BY sector";

fn sql(template: &str, remote: bool) -> String {
    let (b, i) = if remote {
        (
            "\"tax-office\".benefit_payments",
            "\"tax-office\".annual_income",
        )
    } else {
        ("benefit_payments", "annual_income")
    };
    template.replace("{b}", b).replace("{i}", i)
}

/// Rows as sorted text, numbers rounded, for comparing the two paths.
fn canon(batches: &[datafusion::arrow::array::RecordBatch]) -> Vec<String> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<_> = (0..b.num_columns())
            .map(|c| {
                datafusion::arrow::compute::cast(
                    b.column(c),
                    &if c == 0 {
                        datafusion::arrow::datatypes::DataType::Utf8
                    } else {
                        datafusion::arrow::datatypes::DataType::Float64
                    },
                )
                .unwrap()
            })
            .collect();
        for r in 0..b.num_rows() {
            let row: Vec<String> = cols
                .iter()
                .map(|a| {
                    let f = ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default()).unwrap();
                    let s = f.value(r).to_string();
                    s.parse::<f64>().map_or(s, |x| format!("{x:.4}"))
                })
                .collect();
            out.push(row.join("|"));
        }
    }
    out.sort();
    out
}

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// An authority, the tax office's node with its two products, the employment agency's node
/// holding linkage agreements on both, and the statistics office's node holding an aggregate
/// agreement on declared incomes.
async fn ecosystem(root: &Path, data: &Path) -> (Node, Node, Node, Arc<Authority>) {
    let run = root.join("agreements-run");
    let _ = std::fs::remove_dir_all(&run);
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
    for id in ["tax-office", "employment-agency", "statistics-office"] {
        let member = MemberId::parse(id).unwrap();
        let (node, _) = Node::init(&NodeConfig::new(run.join(id)), &member, id)
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
        nodes.push(node);
    }
    let statistics = nodes.pop().unwrap();
    let consumer = nodes.pop().unwrap();
    let owner = nodes.pop().unwrap();
    for t in ["benefit_payments", "annual_income"] {
        owner
            .register(
                RegisterRequest {
                    location: data.join("tax-office").join(t).display().to_string(),
                    name: Some(t.to_owned()),
                    ..Default::default()
                },
                &|_| {},
            )
            .await
            .unwrap();
    }
    for n in [&owner, &consumer, &statistics] {
        n.trust().unwrap().refresh().await.unwrap();
    }
    consumer.refresh_offers().await.unwrap();
    statistics.refresh_offers().await.unwrap();
    for (product, columns, filter) in [
        (
            "benefit_payments",
            "person_id=pseudonym,benefit_type,amount,paid_on=month",
            Some("amount > 0"),
        ),
        (
            "annual_income",
            "person_id=pseudonym,tax_year,gross_income",
            None,
        ),
    ] {
        let terms = AgreementTerms {
            columns: ColumnTerm::parse_list(columns).unwrap(),
            row_filter: filter.map(str::to_owned),
            mode: AccessMode::Linkage,
            min_group_size: 5,
            max_rows: None,
            measures: vec![],
            disclosure: None,
            query_limits: Default::default(),
        };
        negotiate(&consumer, &owner, product, "fraud_prevention", terms).await;
    }
    // The statistics office tabulates declared incomes (aggregate mode, standard
    // disclosure control).
    let terms = AgreementTerms {
        columns: ColumnTerm::parse_list("person_id,tax_year,sector,gross_income").unwrap(),
        row_filter: None,
        mode: AccessMode::Aggregate,
        min_group_size: 5,
        max_rows: None,
        measures: vec!["gross_income".into()],
        disclosure: Some(agora_model::DisclosureControl::standard()),
        query_limits: Default::default(),
    };
    negotiate(
        &statistics,
        &owner,
        "annual_income",
        "official_statistics",
        terms,
    )
    .await;
    statistics.refresh_offers().await.unwrap();
    consumer.refresh_offers().await.unwrap();
    (owner, consumer, statistics, authority)
}

/// Requests `product` of `owner` for `purpose` on `terms` and has the owner approve it;
/// returns once the consumer holds the agreement in force.
async fn negotiate(
    consumer: &Node,
    owner: &Node,
    product: &str,
    purpose: &str,
    terms: AgreementTerms,
) {
    let now = chrono::Utc::now();
    let n = consumer
        .request_access(AccessRequest {
            owner: owner.member().clone(),
            product: ProductName::parse(product).unwrap(),
            purpose: purpose.into(),
            legal_basis: "public_task".into(),
            justification: "benchmark of enforced queries".into(),
            terms,
            valid_from: now,
            valid_until: now + chrono::Duration::days(1),
        })
        .await
        .unwrap();
    let mut approved = false;
    loop {
        let mine = consumer
            .store()
            .negotiation(&n.id, NegotiationRole::Consumer)
            .await
            .unwrap()
            .unwrap();
        match mine.state {
            NegotiationState::Finalized => break,
            NegotiationState::Terminated => panic!("refused: {:?}", mine.reason),
            _ => {}
        }
        if !approved
            && owner
                .store()
                .negotiation(&n.id, NegotiationRole::Provider)
                .await
                .unwrap()
                .is_some_and(|t| t.state == NegotiationState::Requested)
        {
            owner.approve(&n.id, "benchmark").await.unwrap();
            approved = true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn enforced(node: &Node, sql: &str) -> Vec<datafusion::arrow::array::RecordBatch> {
    node.query(sql)
        .await
        .unwrap()
        .into_batches()
        .try_collect()
        .await
        .unwrap()
}

/// Milliseconds of `reps` runs of `remote` at `node` and of `local` on DataFusion directly,
/// alternating.
async fn alternate(
    reps: usize,
    ctx: &SessionContext,
    local: &str,
    node: &Node,
    remote: &str,
) -> (Vec<f64>, Vec<f64>) {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let _ = ctx.sql(local).await.unwrap().collect().await.unwrap();
        theirs.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let _ = enforced(node, remote).await;
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (ours, theirs)
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
    let reps = env_u64("AGORA_BENCH_REPS", 15) as usize;
    let root = std::env::var("AGORA_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| std::env::temp_dir().join("agora-bench"));
    std::fs::create_dir_all(&root).unwrap();
    println!(
        "# host: {} cores; scale {scale} residents; {reps} runs per query after one warm-up",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let data = root.join("data");
    let opts = agora_datagen::GenOptions::new(scale, 42, &data);
    if !agora_datagen::is_complete(&opts) {
        agora_datagen::generate(&opts, &|_| {}).unwrap();
    }

    // 1. Enforced remote queries against DataFusion directly.
    let (_owner, consumer, statistics, _authority) = ecosystem(&root, &data).await;
    let ctx = SessionContext::new();
    for t in ["benefit_payments", "annual_income"] {
        ctx.register_parquet(
            t,
            data.join("tax-office").join(t).display().to_string(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    }
    let mut ratios = Vec::new();
    for (name, template) in [("scan_filter_aggregate", Q1), ("join", Q2)] {
        let remote = sql(template, true);
        let local = sql(template, false);
        // Same answer (the masks and the filter do not change these aggregates).
        let a = canon(&enforced(&consumer, &remote).await);
        let b = canon(&ctx.sql(&local).await.unwrap().collect().await.unwrap());
        assert_eq!(
            a, b,
            "{name}: the enforced answer differs from DataFusion's"
        );
        let (ours, theirs) = alternate(reps, &ctx, &local, &consumer, &remote).await;
        let o = emit("agora", &format!("enforced_remote_{name}_ms"), &ours, "ms");
        let d = emit("datafusion", &format!("direct_{name}_ms"), &theirs, "ms");
        println!("# {name}: enforced/direct ratio of medians {:.3}", o / d);
        ratios.push(o / d);
    }
    emit("agora", "enforced_over_direct_ratio", &ratios, "ratio");

    // 3. Aggregate mode (remote tabulation) against the same aggregate, unprotected, on
    //    DataFusion directly: the protected one adds record keys, per-cell contributors, the
    //    contributor and dominance rules and cell-key noise, and travels over Flight.
    let mut tab_ratios = Vec::new();
    for (name, query) in [
        ("tabulation_people_and_total", AGG_PEOPLE),
        ("tabulation_rows_and_mean", AGG_ROWS),
    ] {
        let remote = query.replace("{i}", "\"tax-office\".annual_income");
        let local = query.replace("{i}", "annual_income");
        let protected = enforced(&statistics, &remote).await;
        let plain = ctx.sql(&local).await.unwrap().collect().await.unwrap();
        let rows = |b: &[datafusion::arrow::array::RecordBatch]| {
            b.iter().map(|b| b.num_rows()).sum::<usize>()
        };
        assert_eq!(
            rows(&protected),
            rows(&plain),
            "{name}: every sector has thousands of people"
        );
        let (ours, theirs) = alternate(reps, &ctx, &local, &statistics, &remote).await;
        let o = emit("agora", &format!("protected_remote_{name}_ms"), &ours, "ms");
        let d = emit(
            "datafusion",
            &format!("unprotected_direct_{name}_ms"),
            &theirs,
            "ms",
        );
        println!(
            "# {name}: protected/unprotected ratio of medians {:.3}",
            o / d
        );
        tab_ratios.push(o / d);
    }
    emit(
        "agora",
        "tabulation_over_direct_ratio",
        &tab_ratios,
        "ratio",
    );

    // 2. Pseudonyms per second on one core.
    let ids: datafusion::arrow::array::StringArray = (0..2_000_000u64)
        .map(|i| Some(format!("{:011}", 10_000_000_000u64 + i * 7)))
        .collect();
    let p = agora_engine::Pseudonymizer::new(&agora_engine::LinkageKey::new([7; 32]));
    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = p.column(&ids);
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(out.len(), ids.len());
        rates.push(ids.len() as f64 / secs);
    }
    emit("agora", "pseudonyms_per_s_one_core", &rates, "ids/s");
}
