//! Bounded work per query: SQL size and shape checked before planning (no input can
//! overflow the stack), memory through the query's pool, time through its deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_engine::{
    Engine, EngineConfig, EngineError, LIMIT_MEMORY, LIMIT_TIME, QueryLimits, TableBinding,
    WORKER_STACK,
};
use agora_model::{DataSource, SourceFormat};
use futures::StreamExt;
use proptest::prelude::*;

use super::{binding, file_url};

fn limited(limits: QueryLimits) -> Arc<Engine> {
    Arc::new(Engine::new(EngineConfig {
        limits,
        ..Default::default()
    }))
}

/// Runs `sql` to the end: its rows, or the first error.
async fn run(e: &Engine, tables: &[TableBinding], sql: &str) -> Result<usize, EngineError> {
    let mut stream = e.query(tables, sql).await?.into_batches();
    let mut rows = 0;
    while let Some(b) = stream.next().await {
        rows += b?.num_rows();
    }
    Ok(rows)
}

/// A runtime like the node's (worker threads with `WORKER_STACK`).
fn node_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(WORKER_STACK)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `sql` on a worker of `rt`, as the node's server would.
fn run_on(rt: &tokio::runtime::Runtime, e: &Arc<Engine>, sql: &str) -> Result<usize, EngineError> {
    run_over(rt, e, &[], sql)
}

/// Runs `sql` over `tables` on a worker of `rt`, as the node's server would (a panic in
/// the query fails the test).
fn run_over(
    rt: &tokio::runtime::Runtime,
    e: &Arc<Engine>,
    tables: &[TableBinding],
    sql: &str,
) -> Result<usize, EngineError> {
    let (e, tables, sql) = (Arc::clone(e), tables.to_vec(), sql.to_owned());
    rt.block_on(tokio::spawn(async move { run(&e, &tables, &sql).await }))
        .expect("the query does not panic the task")
}

/// `n` copies of `item` joined by `sep`, inside `open … close`.
fn chain(open: &str, item: &str, sep: &str, n: usize, close: &str) -> String {
    format!("{open}{}{close}", vec![item; n].join(sep))
}

/// Deep or long statements of every kind the parser and planner recurse on.
fn deep(kind: usize, n: usize) -> String {
    match kind {
        0 => chain("SELECT ", "1", " + ", n, ""),
        1 => chain("SELECT 1 WHERE ", "1 = 1", " AND ", n, ""),
        2 => chain("SELECT 1 WHERE ", "1 = 2", " OR ", n, ""),
        3 => chain("SELECT ", "'a'", " || ", n, ""),
        4 => chain("", "SELECT 1", " UNION ALL ", n, ""),
        5 => format!("SELECT {}1{}", "abs(".repeat(n), ")".repeat(n)),
        6 => format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n)),
        7 => format!(
            "SELECT {}1{}",
            "CASE WHEN true THEN ".repeat(n),
            " END".repeat(n)
        ),
        8 => format!("SELECT {}1", "NOT ".repeat(n)),
        9 => format!("SELECT {}1", "- ".repeat(n)),
        10 => format!(
            "{}SELECT 1{}",
            "SELECT * FROM (".repeat(n),
            ") AS t".repeat(n)
        ),
        11 => chain("SELECT ", "1", ", ", n, ""),
        12 => format!("SELECT 1 IN ({})", vec!["1"; n].join(", ")),
        _ => format!("SELECT {}1{}", "CAST(".repeat(n), " AS BIGINT)".repeat(n)),
    }
}

const KINDS: usize = 14;

/// What a bounded query may come to: an answer or a clear refusal, never a crash.
fn bounded(r: Result<usize, EngineError>, sql: &str) {
    if let Err(e) = r {
        assert!(
            matches!(
                e,
                EngineError::Limit(_)
                    | EngineError::Syntax(_)
                    | EngineError::Plan(_)
                    | EngineError::Evaluation(_)
            ),
            "{} …: {e:?}",
            &sql[..sql.len().min(80)]
        );
    }
}

#[test]
fn deep_and_long_statements_of_every_kind_are_answered_or_refused_never_crash() {
    let rt = node_runtime();
    let _in_runtime = rt.enter();
    let e = engine_default();
    for kind in 0..KINDS {
        for n in [1, 10, 150, 2_000, 5_000, 60_000] {
            let sql = deep(kind, n);
            let started = Instant::now();
            let r = run_on(&rt, &e, &sql);
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "kind {kind} × {n} took {:?}",
                started.elapsed()
            );
            let wide = kind == 11 || kind == 12;
            if (n > 1_000 && !wide) || n > 20_000 {
                // Too deep or too large for the defaults: refused before planning.
                assert!(
                    matches!(r, Err(EngineError::Limit(_) | EngineError::Syntax(_))),
                    "kind {kind} × {n}: {r:?}"
                );
            }
            bounded(r, &sql);
        }
    }
}

fn engine_default() -> Arc<Engine> {
    Arc::new(Engine::new(EngineConfig::default()))
}

#[test]
fn chains_within_the_depth_limit_are_answered() {
    let rt = node_runtime();
    let _in_runtime = rt.enter();
    let e = engine_default();
    for kind in [0, 1, 2, 3, 4, 12] {
        let sql = deep(kind, 150);
        let r = run_on(&rt, &e, &sql);
        assert!(r.is_ok(), "kind {kind}: {sql:.60}: {r:?}");
    }
    // Nested special forms up to the bracket limit.
    let sql = format!("SELECT {}1{}", "CAST(".repeat(16), " AS BIGINT)".repeat(16));
    assert_eq!(run_on(&rt, &e, &sql).unwrap(), 1);
}

#[test]
fn nested_special_forms_parse_in_bounded_time() {
    // The parser backtracks fourfold per level of these when the innermost part is wrong.
    let rt = node_runtime();
    let _in_runtime = rt.enter();
    let e = engine_default();
    let forms = [
        ("CAST(", " AS BIGINT)"),
        ("TRY_CAST(", " AS INT)"),
        ("SUBSTRING(", " FROM 1 FOR 2)"),
        ("CEIL(", ")"),
        ("ARRAY[", "]"),
        ("NOT (", ")"),
        ("OVERLAY(", " PLACING 'x' FROM 1)"),
        ("CONVERT(", ", INT)"),
        // No brackets, but backtracked over twice per level.
        ("CASE WHEN true THEN ", " END"),
        ("1 + CASE WHEN (true) THEN ", " ELSE 2 END"),
    ];
    for (open, close) in forms {
        for n in [16, 17, 40, 200] {
            let sql = format!("SELECT {}1 AS !{}", open.repeat(n), close.repeat(n));
            let started = Instant::now();
            let r = run_on(&rt, &e, &sql);
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{open} × {n}: {:?}",
                started.elapsed()
            );
            if n > 16 {
                assert!(
                    matches!(&r, Err(EngineError::Limit(m)) if m.contains("nests brackets")),
                    "{open} × {n}: {r:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn limit_messages_say_which_limit_and_what_to_do() {
    let e = engine_default();
    let long = format!("SELECT 1 -- {}", "x".repeat(300 * 1024));
    let Err(EngineError::Limit(m)) = run(&e, &[], &long).await else {
        panic!("a 300 KiB query must be refused");
    };
    assert!(m.contains("bytes long") && m.contains("262144"), "{m}");
    let Err(EngineError::Limit(m)) = run(&e, &[], &deep(0, 2_000)).await else {
        panic!("a 2 000-term chain must be refused");
    };
    assert!(m.contains("200 deep") && m.contains("IN lists"), "{m}");
    let small = limited(QueryLimits {
        max_plan_size: 100,
        ..Default::default()
    });
    let Err(EngineError::Limit(m)) = run(&small, &[], &deep(11, 200)).await else {
        panic!("200 columns must pass a plan size of 100");
    };
    assert!(m.contains("at most 100"), "{m}");
}

/// A CSV of `rows` rows: `k` in 0..10, `v` distinct.
fn numbers(dir: &std::path::Path, rows: usize) -> DataSource {
    let mut text = String::from("k,v\n");
    for i in 0..rows {
        text.push_str(&format!("{},{i}\n", i % 10));
    }
    let p = dir.join("numbers.csv");
    std::fs::write(&p, text).unwrap();
    DataSource::new(file_url(&p), SourceFormat::Csv).unwrap()
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_at_its_limit_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let e = limited(QueryLimits {
        query_memory: 4 << 20,
        ..Default::default()
    });
    let t = binding(&e, "t", numbers(tmp.path(), 200_000)).await;
    // The join's hash table on 200 000 distinct values needs more than 4 MiB.
    let started = Instant::now();
    let r = run(
        &e,
        std::slice::from_ref(&t),
        "SELECT count(*) FROM t a JOIN t b ON a.v = b.v",
    )
    .await;
    let Err(EngineError::Limit(m)) = r else {
        panic!("expected the memory limit, got {r:?}");
    };
    assert!(m.starts_with(LIMIT_MEMORY) && m.contains("4 MiB"), "{m}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The memory came back: a small query runs.
    assert_eq!(run(&e, &[t], "SELECT count(*) FROM t").await.unwrap(), 1);
}

#[tokio::test]
async fn the_node_total_bounds_queries_together() {
    let tmp = tempfile::tempdir().unwrap();
    let e = limited(QueryLimits {
        node_memory: 2 << 20,
        ..Default::default()
    });
    let t = binding(&e, "t", numbers(tmp.path(), 200_000)).await;
    let r = run(&e, &[t], "SELECT count(*) FROM t a JOIN t b ON a.v = b.v").await;
    let Err(EngineError::Limit(m)) = r else {
        panic!("expected the node's memory limit, got {r:?}");
    };
    assert!(m.starts_with(LIMIT_MEMORY) && m.contains("together"), "{m}");
}

/// `t` as a member sees it under a records agreement with these bounds.
fn under_agreement(t: &TableBinding, bounds: agora_model::QueryBounds) -> TableBinding {
    let mut t = t.clone();
    t.enforcement = Some(agora_engine::Enforcement {
        agreement: "agreement-7".into(),
        terms: agora_model::AgreementTerms {
            columns: agora_model::ColumnTerm::parse_list("k,v").unwrap(),
            row_filter: None,
            mode: agora_model::AccessMode::Records,
            min_group_size: 5,
            max_rows: None,
            measures: vec![],
            disclosure: None,
            query_limits: bounds,
        },
        subject: None,
        linkage_key: None,
        cell_key: None,
        excluded: Vec::new(),
    });
    t
}

async fn run_for_member(c: &agora_engine::Catalog, sql: &str) -> Result<usize, EngineError> {
    let mut stream = c.query_for_member(sql).await?.into_batches();
    let mut rows = 0;
    while let Some(b) = stream.next().await {
        rows += b?.num_rows();
    }
    Ok(rows)
}

#[tokio::test]
async fn an_agreement_gives_its_member_less_memory_than_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let e = engine_default();
    let t = binding(&e, "t", numbers(tmp.path(), 200_000)).await;
    let bomb = "SELECT count(*) FROM t a JOIN t b ON a.v = b.v";
    // Under the node's own limits the join runs.
    let open = e.member_catalog("owner", vec![under_agreement(&t, Default::default())]);
    assert_eq!(run_for_member(&open, bomb).await.unwrap(), 1);
    // Under an agreement of 4 MiB per query it is stopped, and says so.
    let tight = agora_model::QueryBounds {
        max_memory_mib: Some(4),
        max_seconds: None,
    };
    let c = e.member_catalog("owner", vec![under_agreement(&t, tight)]);
    let r = run_for_member(&c, bomb).await;
    let Err(EngineError::Limit(m)) = r else {
        panic!("expected the agreement's memory limit, got {r:?}");
    };
    assert!(m.starts_with(LIMIT_MEMORY) && m.contains("4 MiB"), "{m}");
}

#[test]
fn an_agreement_gives_its_member_less_time_than_the_node() {
    let rt = node_runtime();
    let _in_runtime = rt.enter();
    let tmp = tempfile::tempdir().unwrap();
    let e = engine_default();
    let t = rt.block_on(binding(&e, "t", numbers(tmp.path(), 20_000)));
    let bounds = agora_model::QueryBounds {
        max_seconds: Some(1),
        max_memory_mib: None,
    };
    let c = e.member_catalog("owner", vec![under_agreement(&t, bounds)]);
    let started = Instant::now();
    let r = rt
        .block_on(tokio::spawn(async move {
            run_for_member(
                &c,
                "SELECT count(*) FROM t a JOIN t b ON a.k = b.k JOIN t c ON b.k = c.k",
            )
            .await
        }))
        .unwrap();
    let Err(EngineError::Limit(m)) = r else {
        panic!("expected the agreement's time limit, got {r:?}");
    };
    assert!(m.starts_with(LIMIT_TIME) && m.contains("after 1 s"), "{m}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_time_bomb_is_stopped_at_its_deadline() {
    let rt = node_runtime();
    let _in_runtime = rt.enter();
    let tmp = tempfile::tempdir().unwrap();
    let e = limited(QueryLimits {
        query_time: Duration::from_millis(300),
        ..Default::default()
    });
    let t = rt.block_on(binding(&e, "t", numbers(tmp.path(), 20_000)));
    // 40 million joined rows per key value: minutes of work.
    let started = Instant::now();
    let r = run_over(
        &rt,
        &e,
        &[t],
        "SELECT count(*) FROM t a JOIN t b ON a.k = b.k JOIN t c ON b.k = c.k",
    );
    let Err(EngineError::Limit(m)) = r else {
        panic!("expected the time limit, got {r:?}");
    };
    assert!(m.starts_with(LIMIT_TIME), "{m}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A nested-loop join evaluates a whole probe batch against the other side in one step;
/// in small steps, its deadline stops it within one of them.
#[test]
fn a_nested_loop_time_bomb_is_stopped_at_its_deadline() {
    let rt = node_runtime();
    let _in_runtime = rt.enter();
    let tmp = tempfile::tempdir().unwrap();
    let e = limited(QueryLimits {
        query_time: Duration::from_millis(500),
        ..Default::default()
    });
    let t = rt.block_on(binding(&e, "t", numbers(tmp.path(), 200_000)));
    let started = Instant::now();
    let r = run_over(
        &rt,
        &e,
        &[t],
        "SELECT count(*) FROM t a CROSS JOIN t b WHERE a.v * b.v = -1",
    );
    let Err(EngineError::Limit(m)) = r else {
        panic!("expected the time limit, got {r:?}");
    };
    assert!(m.starts_with(LIMIT_TIME), "{m}");
    // Forty billion pairs take most of a minute even in a release build; one step of
    // 2 048 × 200 000 well under a second. Without the steps the deadline fired after
    // 15 – 56 s: the timer of a runtime whose workers are busy is looked at rarely.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// An expression tree of the given depth from the grammar's operators, functions, CASE,
/// casts, IN, subqueries and set operations.
fn tree() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("1".to_owned()),
        Just("'a'".to_owned()),
        Just("NULL".to_owned()),
        Just("true".to_owned()),
    ];
    leaf.prop_recursive(400, 4_000, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} + {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} = {b}) AND true")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} || {b}")),
            inner.clone().prop_map(|a| format!("abs({a})")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner
                .clone()
                .prop_map(|a| format!("CASE WHEN {a} IS NULL THEN 1 ELSE 2 END")),
            inner.clone().prop_map(|a| format!("CAST({a} AS VARCHAR)")),
            inner.clone().prop_map(|a| format!("NOT ({a} IS NULL)")),
            inner.clone().prop_map(|a| format!("{a} IN (1, 2, 3)")),
            inner.clone().prop_map(|a| format!("(SELECT {a})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("{a} - {b} * 2")),
        ]
    })
}

#[test]
fn generated_deep_and_wide_expressions_never_crash_the_engine() {
    use proptest::test_runner::{Config, TestRunner};
    // The generator itself recurses deeply: it gets a big stack of its own; the engine
    // runs on the node-like runtime's workers.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            let rt = node_runtime();
            let _in_runtime = rt.enter();
            let _in_runtime = rt.enter();
            let e = engine_default();
            let mut runner = TestRunner::new(Config {
                cases: 48,
                ..Config::default()
            });
            runner
                .run(&(tree(), 1usize..400), |(expr, union)| {
                    for sql in [
                        format!("SELECT {expr}"),
                        format!("SELECT 1 WHERE {expr} IS NOT NULL"),
                        chain("", &format!("SELECT {expr}"), " UNION ALL ", union, ""),
                    ] {
                        let started = Instant::now();
                        bounded(run_on(&rt, &e, &sql), &sql);
                        prop_assert!(started.elapsed() < Duration::from_secs(10));
                    }
                    Ok(())
                })
                .unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
}

/// DataFusion 55 panics ("partition not used yet") on a nested-loop join over a cross
/// join of a repartitioned input (the class of apache/datafusion#5022). Whatever panics
/// inside the engine ends that query with an error; the node goes on.
#[test]
fn a_panic_inside_the_engine_ends_the_query_not_the_node() {
    let rt = node_runtime();
    let _in_runtime = rt.enter();
    let tmp = tempfile::tempdir().unwrap();
    let e = engine_default();
    let t = rt.block_on(binding(&e, "t", numbers(tmp.path(), 60_000)));
    let r = run_over(
        &rt,
        &e,
        std::slice::from_ref(&t),
        "SELECT count(*) FROM t a CROSS JOIN t b CROSS JOIN t c WHERE a.v + b.v + c.v = -1",
    );
    let Err(EngineError::Execution(m)) = r else {
        panic!("expected the engine's failure, got {r:?}");
    };
    assert!(m.contains("query engine failed"), "{m}");
    let n = run_over(&rt, &e, &[t], "SELECT count(*) FROM t").unwrap();
    assert_eq!(n, 1);
}
