//! Integration tests of the query engine on real files.

mod accounting;
mod alloc;
mod federation;
mod limits;
mod policy;
mod tabulation;

use std::path::Path;
use std::sync::Mutex;

use agora_engine::{Engine, EngineConfig, EngineError, OutputFormat, TableBinding};
use agora_model::{ColumnSchema, DataSource, SourceFormat};
use futures::StreamExt;

fn engine() -> Engine {
    Engine::new(EngineConfig::default())
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

async fn binding(e: &Engine, name: &str, source: DataSource) -> TableBinding {
    let schema = e.inspect(&source).await.unwrap();
    TableBinding {
        name: name.into(),
        source,
        schema,
        version: "1".into(),
        refusal: None,
        enforcement: None,
    }
}

async fn collect(e: &Engine, tables: &[TableBinding], sql: &str, f: OutputFormat) -> Vec<u8> {
    let r = e.query(tables, sql).await.unwrap();
    let mut s = r.encode(f);
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

const PUMS: &str = include_str!("../../../../testdata/pums_1000.csv");

#[tokio::test]
async fn csv_with_exponent_numbers_is_read_and_profiled() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "pums.csv", PUMS);
    let e = engine();
    let src = DataSource::new(file_url(&p), SourceFormat::Csv).unwrap();
    let schema = e.inspect(&src).await.unwrap();
    let names: Vec<&str> = schema.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["age", "sex", "educ", "race", "income", "married"]);
    let income = &schema[4];
    assert_eq!(
        income.data_type, "Float64",
        "1e+05 makes the column numeric"
    );

    let seen = Mutex::new(Vec::new());
    let profile = e
        .profile(&src, &|p| seen.lock().unwrap().push(p))
        .await
        .unwrap();
    assert_eq!(profile.row_count, 1000);
    let age = &profile.columns[0];
    assert_eq!(age.null_count, 0);
    assert_eq!(age.min.as_deref(), Some("18"));
    assert!(
        (50..=90).contains(&age.distinct_estimate),
        "{}",
        age.distinct_estimate
    );
    let sex = &profile.columns[1];
    assert_eq!(sex.distinct_estimate, 2);
    let last = *seen.lock().unwrap().last().unwrap();
    assert_eq!(last.rows_done, 1000);

    // Known truths of the sample.
    let t = binding(&e, "pums", src).await;
    let out = collect(
        &e,
        &[t],
        "SELECT sum(age) AS a, sum(income) AS i FROM pums",
        OutputFormat::Csv,
    )
    .await;
    assert_eq!(String::from_utf8(out).unwrap(), "a,i\n44797,34380084.0\n");
}

#[tokio::test]
async fn parquet_folders_and_joins() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = agora_datagen::GenOptions::new(3_000, 1, tmp.path().join("d"));
    opts.chunk_residents = 1_000;
    agora_datagen::generate(&opts, &|_| {}).unwrap();
    let e = engine();
    let dir = |t: &str| {
        DataSource::new(
            format!("file://{}/", tmp.path().join("d").join(t).display()),
            SourceFormat::Parquet,
        )
        .unwrap()
    };
    let js = binding(&e, "job_seekers", dir("employment-agency/job_seekers")).await;
    let inc = binding(&e, "annual_income", dir("tax-office/annual_income")).await;
    assert_eq!(
        js.schema[0].data_type, "Utf8",
        "view types are shown as their logical type"
    );

    let profile = e.profile(&js.source, &|_| {}).await.unwrap();
    assert!(profile.row_count > 100);

    let out = collect(
        &e,
        &[js.clone(), inc.clone()],
        "SELECT count(*) AS n FROM job_seekers j JOIN annual_income i ON j.person_id = i.person_id WHERE i.tax_year = 2024",
        OutputFormat::Json,
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(v[0]["n"].as_i64().unwrap() > 0);

    // information_schema lists the registered tables.
    let out = collect(
        &e,
        &[js, inc],
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        OutputFormat::Csv,
    )
    .await;
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "table_name\nannual_income\njob_seekers\n"
    );
}

#[tokio::test]
async fn every_output_format_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "t.csv", "id,name\n1,Anna\n2,\n3,Jan\n");
    let e = engine();
    let t = binding(
        &e,
        "t",
        DataSource::new(file_url(&p), SourceFormat::Csv).unwrap(),
    )
    .await;
    let tables = [t];
    let sql = "SELECT id, name FROM t ORDER BY id";

    let json = collect(&e, &tables, sql, OutputFormat::Json).await;
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"id":1,"name":"Anna"},{"id":2,"name":null},{"id":3,"name":"Jan"}])
    );

    let nd = String::from_utf8(collect(&e, &tables, sql, OutputFormat::Ndjson).await).unwrap();
    assert_eq!(nd.lines().count(), 3);

    let csv = String::from_utf8(collect(&e, &tables, sql, OutputFormat::Csv).await).unwrap();
    assert_eq!(csv, "id,name\n1,Anna\n2,\n3,Jan\n");

    let ipc = collect(&e, &tables, sql, OutputFormat::ArrowIpc).await;
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 3);

    // Empty results are still well-formed.
    let empty = "SELECT id FROM t WHERE id > 10";
    assert_eq!(collect(&e, &tables, empty, OutputFormat::Json).await, b"[]");
    assert_eq!(
        collect(&e, &tables, empty, OutputFormat::Csv).await,
        b"id\n"
    );
    let ipc = collect(&e, &tables, empty, OutputFormat::ArrowIpc).await;
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None).unwrap();
    assert_eq!(reader.schema().fields().len(), 1);

    let (table, total) = e
        .query(&tables, sql)
        .await
        .unwrap()
        .to_text_table(2)
        .await
        .unwrap();
    assert_eq!(total, 3);
    assert!(table.contains("Anna") && !table.contains("Jan"), "{table}");
}

#[tokio::test]
async fn bad_sql_is_refused_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "t.csv", "id\n1\n");
    let e = engine();
    let tables = [binding(
        &e,
        "t",
        DataSource::new(file_url(&p), SourceFormat::Csv).unwrap(),
    )
    .await];
    let err = |sql: &'static str| {
        let e = &e;
        let tables = &tables;
        async move { e.query(tables, sql).await.err().unwrap() }
    };

    let syntax = err("SELEC 1").await;
    assert!(matches!(syntax, EngineError::Syntax(_)), "{syntax}");
    assert!(
        syntax.to_string().starts_with("SQL syntax error: expected")
            || syntax.to_string().contains("SELEC"),
        "{syntax}"
    );

    let unknown = err("SELECT * FROM nope").await;
    assert!(matches!(unknown, EngineError::Plan(_)), "{unknown}");
    assert!(unknown.to_string().contains("nope"), "{unknown}");

    let column = err("SELECT missing FROM t").await;
    assert!(column.to_string().contains("missing"), "{column}");
    assert!(column.is_user_error());

    for sql in [
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "CREATE TABLE y AS SELECT 1",
        "INSERT INTO t VALUES (2)",
        "DROP TABLE t",
        "COPY t TO '/tmp/agora-copy-out.csv'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let e = err(sql).await;
        assert!(matches!(e, EngineError::NotReadOnly(_)), "{sql}: {e}");
    }
    assert!(!Path::new("/tmp/agora-copy-out.csv").exists());
}

#[tokio::test]
async fn unreadable_and_malformed_data_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let e = engine();

    let garbage = write(tmp.path(), "bad.parquet", "this is not parquet");
    let err = e
        .inspect(&DataSource::new(file_url(&garbage), SourceFormat::Parquet).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Source { .. }), "{err}");
    assert!(err.to_string().contains("bad.parquet"), "{err}");

    let empty_dir = tmp.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    let err = e
        .inspect(
            &DataSource::new(format!("{}/", file_url(&empty_dir)), SourceFormat::Parquet).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no parquet files found"), "{err}");

    // A ragged CSV: inference may pass, the full profiling scan must fail, naming the file.
    let mut text = String::from("a,b\n");
    for i in 0..20_000 {
        text.push_str(&format!("{i},x\n"));
    }
    text.push_str("1,2,3,4\n");
    let ragged = write(tmp.path(), "ragged.csv", &text);
    let src = DataSource::new(file_url(&ragged), SourceFormat::Csv).unwrap();
    let res = match e.inspect(&src).await {
        Err(err) => Err(err),
        Ok(_) => e.profile(&src, &|_| {}).await.map(|_| ()),
    };
    let err = res.unwrap_err();
    assert!(err.to_string().contains("ragged.csv"), "{err}");
}

/// Object-store URLs are read in place: here a Parquet file served over HTTP by a local
/// static file server (range requests, as object_store's HTTP store uses them).
#[tokio::test]
async fn parquet_over_http_is_read_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = agora_datagen::GenOptions::new(2_000, 5, tmp.path().join("d"));
    opts.chunk_residents = 2_000;
    agora_datagen::generate(&opts, &|_| {}).unwrap();
    let served = tmp.path().join("d/employment-agency/job_seekers");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback_service(tower_http::services::ServeDir::new(&served));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let e = engine();
    let src = DataSource::new(
        format!("http://{addr}/part-00000.parquet"),
        SourceFormat::Parquet,
    )
    .unwrap();
    let t = binding(&e, "job_seekers", src.clone()).await;
    assert_eq!(t.schema[0].name, "person_id");
    let profile = e.profile(&src, &|_| {}).await.unwrap();
    assert!(profile.row_count > 50);
    let out = collect(
        &e,
        &[t],
        "SELECT count(*) AS n FROM job_seekers",
        OutputFormat::Csv,
    )
    .await;
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("n\n{}\n", profile.row_count)
    );

    let missing =
        DataSource::new(format!("http://{addr}/nope.parquet"), SourceFormat::Parquet).unwrap();
    let err = e.inspect(&missing).await.unwrap_err();
    assert!(matches!(err, EngineError::Source { .. }), "{err}");
    assert!(err.to_string().contains("nope.parquet"), "{err}");
    server.abort();
}

/// Each query sees only the tables it was given, never those of earlier queries.
#[tokio::test]
async fn sessions_do_not_share_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "secret.csv", "id\n1\n");
    let e = engine();
    let t = binding(
        &e,
        "secret",
        DataSource::new(file_url(&p), SourceFormat::Csv).unwrap(),
    )
    .await;
    let out = collect(
        &e,
        &[t],
        "SELECT count(*) AS n FROM secret",
        OutputFormat::Csv,
    )
    .await;
    assert_eq!(out, b"n\n1\n");
    let err = e.query(&[], "SELECT * FROM secret").await.err().unwrap();
    assert!(matches!(err, EngineError::Plan(_)), "{err}");
    let out = collect(
        &e,
        &[],
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'secret'",
        OutputFormat::Csv,
    )
    .await;
    assert_eq!(out, b"n\n0\n");
}

/// A catalog opens a product's data only when a query names it: one unreadable product
/// does not break queries over the others, and a prepared catalog serves many queries.
#[tokio::test]
async fn queries_open_only_the_tables_they_name() {
    let tmp = tempfile::tempdir().unwrap();
    let good = write(tmp.path(), "good.csv", "id\n1\n2\n");
    let gone = write(tmp.path(), "gone.csv", "id\n1\n");
    let e = engine();
    let t = binding(
        &e,
        "good",
        DataSource::new(file_url(&good), SourceFormat::Csv).unwrap(),
    )
    .await;
    let g = binding(
        &e,
        "gone",
        DataSource::new(file_url(&gone), SourceFormat::Csv).unwrap(),
    )
    .await;
    std::fs::remove_file(&gone).unwrap();
    let catalog = e.catalog(vec![t, g]);
    for _ in 0..3 {
        let r = catalog
            .query("SELECT count(*) AS n FROM good")
            .await
            .unwrap();
        let mut s = r.encode(OutputFormat::Csv);
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        assert_eq!(out, b"n\n2\n");
    }
    let err = catalog.query("SELECT * FROM gone").await.err().unwrap();
    assert!(matches!(err, EngineError::Source { .. }), "{err}");
    assert!(err.to_string().contains("gone.csv"), "{err}");
}

#[tokio::test]
async fn schema_drift_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "t.csv", "id,name\n1,a\n");
    let e = engine();
    let src = DataSource::new(file_url(&p), SourceFormat::Csv).unwrap();
    let t = TableBinding {
        name: "t".into(),
        source: src,
        schema: vec![
            ColumnSchema::new("id", "Int64", true),
            ColumnSchema::new("age", "Int64", true),
        ],
        version: "1".into(),
        refusal: None,
        enforcement: None,
    };
    let err = e.query(&[t], "SELECT * FROM t").await.err().unwrap();
    assert!(matches!(err, EngineError::SchemaDrift { .. }), "{err}");
    assert!(err.to_string().contains("\"age\" is missing"), "{err}");
}

/// Results stream: encoding a result hundreds of times larger than a batch keeps the heap
/// flat. (A regression to collecting batches would hold the whole result in memory.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_results_do_not_grow_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let mut text = String::from("id,name\n");
    for i in 0..3_000 {
        text.push_str(&format!("{i},resident-number-{i:06}\n"));
    }
    let p = write(tmp.path(), "people.csv", &text);
    let e = Engine::new(EngineConfig {
        batch_size: 8192,
        ..Default::default()
    });
    let t = binding(
        &e,
        "people",
        DataSource::new(file_url(&p), SourceFormat::Csv).unwrap(),
    )
    .await;

    // 9 million rows, about 300 MB of CSV.
    let sql = "SELECT a.id, b.id AS other, a.name FROM people a CROSS JOIN people b";
    let r = e.query(&[t], sql).await.unwrap();
    let mut stream = r.encode(OutputFormat::Csv);
    let before = alloc::current();
    alloc::reset_peak();
    let mut bytes = 0usize;
    let mut rows = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        rows += chunk.iter().filter(|b| **b == b'\n').count();
        bytes += chunk.len();
    }
    let peak_growth = alloc::peak().saturating_sub(before);
    assert_eq!(rows, 9_000_000 + 1);
    assert!(bytes > 250_000_000, "result is {bytes} bytes");
    assert!(
        peak_growth < 64 * 1024 * 1024,
        "heap grew by {} MB while streaming a {} MB result",
        peak_growth / (1024 * 1024),
        bytes / (1024 * 1024)
    );
}

/// A steward's folder holding a symbolic link to a file outside it (the node's key, say),
/// or a file swapped for such a link after registration: the engine reads neither.
#[tokio::test]
async fn files_are_read_only_at_their_real_locations() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = write(tmp.path(), "secret.csv", "key\nhunter2\n");
    let folder = tmp.path().join("shared");
    std::fs::create_dir(&folder).unwrap();
    write(&folder, "a.csv", "key\nvisible\n");
    let e = engine();
    let src = DataSource::new(format!("file://{}/", folder.display()), SourceFormat::Csv).unwrap();
    let t = binding(&e, "t", src).await;
    let rows = String::from_utf8(
        collect(
            &e,
            std::slice::from_ref(&t),
            "SELECT * FROM t",
            OutputFormat::Csv,
        )
        .await,
    )
    .unwrap();
    assert_eq!(rows, "key\nvisible\n");

    // A link inside the folder, pointing outside it.
    std::os::unix::fs::symlink(&secret, folder.join("b.csv")).unwrap();
    let e = engine();
    let mut stream = match e.query(std::slice::from_ref(&t), "SELECT * FROM t").await {
        Ok(r) => r.into_batches(),
        Err(err) => {
            assert!(err.to_string().contains("symbolic link"), "{err}");
            return;
        }
    };
    let mut seen = String::new();
    let mut failed = None;
    while let Some(b) = stream.next().await {
        match b {
            Ok(b) => seen.push_str(&format!("{b:?}")),
            Err(err) => failed = Some(err.to_string()),
        }
    }
    assert!(!seen.contains("hunter2"), "the secret was read: {seen}");
    let failed = failed.expect("reading through the link must fail");
    assert!(failed.contains("symbolic link"), "{failed}");

    // A registered file swapped for a link later.
    let file = write(tmp.path(), "c.csv", "key\nfine\n");
    let src = DataSource::new(file_url(&file), SourceFormat::Csv).unwrap();
    let e = engine();
    let c = binding(&e, "c", src).await;
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&secret, &file).unwrap();
    let e = engine();
    let r = e.query(std::slice::from_ref(&c), "SELECT * FROM c").await;
    let err = match r {
        Err(err) => err.to_string(),
        Ok(r) => {
            let mut s = r.into_batches();
            let mut err = String::new();
            while let Some(b) = s.next().await {
                if let Err(x) = b {
                    err = x.to_string();
                } else {
                    assert!(!format!("{b:?}").contains("hunter2"));
                }
            }
            err
        }
    };
    assert!(err.contains("symbolic link"), "{err}");
}
