//! What bounded queries cost and how fast they stop: the size and shape checks weighed
//! against a small query (target: under 1 %), the largest SQL the node accepts and how long
//! it takes, how long the largest refused statements take to refuse, and how soon a memory
//! bomb is stopped after it crosses its limit (target: within 1 s).
//!
//! Run with `cargo bench -p agora --bench limits`. Environment: AGORA_BENCH_REPS (default
//! 200) for the small-query and check timings.

use std::time::{Duration, Instant};

use agora_engine::{Engine, EngineConfig, EngineError, QueryLimits, TableBinding};
use agora_model::{DataSource, SourceFormat};
use futures::StreamExt;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn run(e: &Engine, t: &[TableBinding], sql: &str) -> Result<usize, EngineError> {
    let mut s = e.query(t, sql).await?.into_batches();
    let mut rows = 0;
    while let Some(b) = s.next().await {
        rows += b?.num_rows();
    }
    Ok(rows)
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let started = Instant::now();
    let out = f();
    (started.elapsed(), out)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let reps: usize = std::env::var("AGORA_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let mut text = String::from("k,v\n");
    for i in 0..200_000 {
        text.push_str(&format!("{},{i}\n", i % 10));
    }
    std::fs::write(&path, text).unwrap();
    let limits = QueryLimits {
        query_memory: 256 << 20,
        ..QueryLimits::default()
    };
    let engine = Engine::new(EngineConfig {
        limits: limits.clone(),
        ..Default::default()
    });
    let source = DataSource::new(format!("file://{}", path.display()), SourceFormat::Csv).unwrap();
    let schema = engine.inspect(&source).await.unwrap();
    let t = vec![TableBinding {
        name: "t".into(),
        source,
        schema,
        version: "1".into(),
        refusal: None,
        enforcement: None,
    }];

    // 1. The checks against a small query.
    let small =
        "SELECT k, count(*) AS n, sum(v) AS total FROM t WHERE v > 100 GROUP BY k ORDER BY k";
    run(&engine, &t, small).await.unwrap();
    let mut query = Vec::new();
    for _ in 0..reps {
        let started = Instant::now();
        run(&engine, &t, small).await.unwrap();
        query.push(started.elapsed());
    }
    let (mut checked, mut parsed) = (Vec::new(), Vec::new());
    for _ in 0..reps * 20 {
        checked.push(time(|| limits.check_sql(small).unwrap()).0);
        parsed.push(time(|| datafusion::sql::parser::DFParser::parse_sql(small).unwrap()).0);
    }
    let (q, c, p) = (median(query), median(checked), median(parsed));
    let extra = c.saturating_sub(p);
    println!("small query ({reps} runs, 200 000 rows): median {q:.2?}");
    println!(
        "  checks: {c:.2?} with the parse it needs anyway ({p:.2?}); the checks alone {extra:.2?} = {:.3} % of the query",
        100.0 * extra.as_secs_f64() / q.as_secs_f64()
    );

    // 2. The largest SQL accepted: an IN list as long as the size limit allows, its
    //    values written wide enough to fill the length limit.
    let head = "SELECT count(*) FROM t WHERE v IN (";
    let i = limits.max_plan_size - 10;
    let width = (limits.max_sql_bytes - head.len() - 2) / i - 1;
    let list: Vec<String> = (0..i).map(|n| format!("{:0width$}", n * 7)).collect();
    let largest = format!("{head}{})", list.join(","));
    let (d, r) = {
        let started = Instant::now();
        let r = run(&engine, &t, &largest).await;
        (started.elapsed(), r)
    };
    println!(
        "largest accepted: {} bytes ({i} values in one IN list) answered in {d:.2?} ({:?})",
        largest.len(),
        r.map(|_| "ok")
    );
    let deepest = format!(
        "SELECT {} FROM t",
        vec!["v"; limits.max_depth - 2].join(" + ")
    );
    let started = Instant::now();
    let r = run(&engine, &t, &deepest).await;
    println!(
        "deepest accepted: a chain of {} terms answered in {:.2?} ({:?})",
        limits.max_depth - 2,
        started.elapsed(),
        r.map(|_| "ok")
    );

    // 3. The largest refused statements, by kind.
    let body_limit = 4 << 20;
    let refused = [
        (
            "4 MiB of SQL (over the length limit)",
            "x".repeat(body_limit),
        ),
        (
            "256 KiB of nested brackets",
            format!("SELECT {}1", "(".repeat(limits.max_sql_bytes - 9)),
        ),
        (
            "256 KiB chain of + (over the depth limit)",
            format!("SELECT 1{}", "+1".repeat((limits.max_sql_bytes - 9) / 2)),
        ),
        (
            "256 KiB of ANDed comparisons",
            format!(
                "SELECT 1 WHERE 1=1{}",
                " AND 1=1".repeat((limits.max_sql_bytes - 20) / 8)
            ),
        ),
        (
            "17 nested CAST( with a wrong inner part",
            format!(
                "SELECT {}1 AS !{}",
                "CAST(".repeat(17),
                " AS INT)".repeat(17)
            ),
        ),
    ];
    for (what, sql) in refused {
        let started = Instant::now();
        let r = engine.query(&t, &sql).await;
        let d = started.elapsed();
        let ok = matches!(r, Err(EngineError::Limit(_)));
        println!("refused {what}: in {d:.2?} (refused as over a limit: {ok})");
    }

    // 4. What the small steps cost a nested-loop join: the same join through the engine
    //    and through DataFusion directly, same data, alternating.
    let nested = "SELECT count(*) FROM t a CROSS JOIN (SELECT v FROM t WHERE v < 20000) b WHERE a.v * b.v = -1";
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_csv("t", path.to_str().unwrap(), Default::default())
        .await
        .unwrap();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let started = Instant::now();
        run(&engine, &t, nested).await.unwrap();
        ours.push(started.elapsed());
        let started = Instant::now();
        ctx.sql(nested).await.unwrap().collect().await.unwrap();
        theirs.push(started.elapsed());
    }
    let (o, d) = (median(ours), median(theirs));
    println!(
        "nested-loop join, 200 000 x 20 000 pairs: in small steps {o:.2?}, DataFusion directly {d:.2?}, ratio {:.2}",
        o.as_secs_f64() / d.as_secs_f64()
    );

    // 5. A memory bomb: every value of a join of billions of rows in one list.
    let bomb = "SELECT cardinality(array_agg(a.v)) FROM t a JOIN t b ON a.k = b.k";
    let mut stops = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let r = run(&engine, &t, bomb).await;
        let total = started.elapsed();
        assert!(matches!(r, Err(EngineError::Limit(_))), "{r:?}");
        let stop = agora_engine::last_memory_stop().expect("a memory stop was timed");
        stops.push(stop);
        println!(
            "memory bomb (limit {} MiB): refused after {total:.2?}; from crossing the limit to the error {stop:.2?}",
            limits.query_memory >> 20
        );
    }
    println!(
        "memory bomb: worst time from crossing to error {:.2?} (target under 1 s)",
        stops.iter().max().unwrap()
    );
}
