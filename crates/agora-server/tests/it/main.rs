//! Integration tests: a real node on an ephemeral loopback port, driven over HTTP.

mod agreements;
mod citizen;
mod ecosystem;
mod federation;
mod transparency;
mod web;

use std::path::{Path, PathBuf};

use agora_model::MemberId;
use agora_node::{Node, NodeConfig};
use agora_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

struct TestNode {
    url: String,
    token: String,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    http: reqwest::Client,
}

impl TestNode {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = NodeConfig::new(dir.path().join("node"));
        let member = MemberId::parse("employment-agency").unwrap();
        let (node, token) = Node::init(&cfg, &member, "National Employment Agency")
            .await
            .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut config = ServerConfig {
            allowed_roots: vec![data],
            ..Default::default()
        };
        configure(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(agora_server::serve(node, listener, config, async move {
            let _ = rx.await;
        }));
        Self {
            url,
            token: token.secret,
            dir,
            stop: Some(tx),
            task: Some(task),
            http: reqwest::Client::new(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::GET, path)
    }
    async fn get_json(&self, path: &str) -> Value {
        self.get(path).send().await.unwrap().json().await.unwrap()
    }
    fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::POST, path).json(&body)
    }

    async fn register(&self, body: Value) -> (StatusCode, Value) {
        let r = self.post("/api/v1/products", body).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    async fn sql(&self, sql: &str, format: &str) -> (StatusCode, String) {
        let r = self
            .post("/api/v1/query", json!({"sql": sql, "format": format}))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {v}"))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const JOBS_CSV: &str = "person_id,municipality,months_unemployed\n37605030299,Northport,3\n49403136526,Eastbridge,14\n38001085718,Northport,7\n";

#[tokio::test]
async fn health_is_public_and_the_api_is_not() {
    let n = TestNode::start().await;
    let r = reqwest::get(format!("{}/healthz", n.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = reqwest::get(format!("{}/readyz", n.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["member"],
        "employment-agency"
    );

    let r = reqwest::get(format!("{}/api/v1/products", n.url))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    assert_eq!(error_code(&r.json().await.unwrap()), "unauthenticated");

    let r = n
        .http
        .get(format!("{}/api/v1/products", n.url))
        .bearer_auth("agora_0000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = n
        .http
        .get(format!("{}/api/v1/products", n.url))
        .header("Authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = n.get("/api/v1/node").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["member_id"],
        "employment-agency"
    );

    let r = n.get("/api/v1/nothing-here").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&r.json().await.unwrap()), "not_found");
    // A browser asking for a page that does not exist gets a page, with the pages' headers;
    // the API stays JSON whatever is accepted.
    let r = n
        .get("/no-such-page")
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(r.text().await.unwrap().contains("<h1>Page not found</h1>"));
    let r = n
        .get("/api/v1/nothing-here")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(&r.json().await.unwrap()), "not_found");
    let r = n
        .req(reqwest::Method::PUT, "/api/v1/products")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(error_code(&r.json().await.unwrap()), "method_not_allowed");
    n.stop().await;
}

#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let n = TestNode::start().await;
    let doc: Value = reqwest::get(format!("{}/api/v1/openapi.json", n.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/node",
        "/api/v1/products",
        "/api/v1/products/{name}",
        "/api/v1/catalog/search",
        "/api/v1/query",
        "/api/v1/tokens",
        "/api/v1/tokens/{id}",
        "/api/v1/citizen/sessions",
        "/api/v1/citizen/history",
        "/api/v1/citizen/consent",
    ] {
        assert!(paths.contains_key(p), "{p} is not documented");
    }
    // Every documented operation exists: the server never answers "no such route" or 405.
    for (path, ops) in paths {
        let concrete = path.replace("{name}", "nope").replace("{id}", "nope");
        for method in ops.as_object().unwrap().keys() {
            let m: reqwest::Method = method.to_uppercase().parse().unwrap();
            let r = n
                .req(m.clone(), &concrete)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body = r.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path}");
            assert!(
                !body.contains("no such route"),
                "{method} {path} is documented but not served"
            );
        }
    }
    n.stop().await;
}

#[tokio::test]
async fn registration_catalog_and_metadata_lifecycle() {
    let n = TestNode::start().await;
    let path = write(&n.data(), "job_seekers.csv", JOBS_CSV);
    write(
        &n.data(),
        "job_seekers.agora.toml",
        r#"
title = "Registered job seekers"
description = "People looking for work."
classification = "personal"
legal_basis = "Employment Services Act, section 7"
keywords = ["unemployment"]
themes = ["ECON"]
retention = "P10Y"
[columns.person_id]
role = "subject_id"
"#,
    );
    let (status, p) = n.register(json!({"location": path})).await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["name"], "job_seekers");
    assert_eq!(p["metadata"]["owner"], "employment-agency");
    assert_eq!(p["metadata"]["columns"]["person_id"]["role"], "subject_id");
    assert_eq!(p["profile"]["row_count"], 3);
    assert_eq!(p["source"]["format"], "csv");

    // Request metadata overrides the sidecar; the API returns the stored product.
    let (status, _) = n
        .register(json!({"location": path, "name": "jobs_copy", "metadata": {"title": "Copy", "classification": "internal"}}))
        .await;
    assert_eq!(status, 201);
    let copy: Value = n.get_json("/api/v1/products/jobs_copy").await;
    assert_eq!(copy["metadata"]["title"], "Copy");
    assert_eq!(copy["metadata"]["classification"], "internal");

    // Listing and paging.
    let page: Value = n.get_json("/api/v1/products?per_page=1&page=2").await;
    assert_eq!(page["total"], 2);
    assert_eq!(
        page["items"][0]["name"], "jobs_copy",
        "ordered by name: job_seekers, jobs_copy"
    );

    // Search.
    let hits: Value = n.get_json("/api/v1/catalog/search?q=unemployment").await;
    assert_eq!(hits["total"], 2, "the copy has the sidecar's keywords too");
    assert_eq!(hits["items"][0]["name"], "job_seekers");
    let hits: Value = n.get_json("/api/v1/catalog/search?q=municipality").await;
    assert_eq!(hits["total"], 2, "column names are searchable");
    let r = n.get("/api/v1/catalog/search?page=x").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r.json().await.unwrap()), "invalid_query_string");

    // Update.
    let r = n
        .req(reqwest::Method::PATCH, "/api/v1/products/job_seekers")
        .json(&json!({"keywords": ["jobs", "skills"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["metadata"]["title"], "Registered job seekers");
    let hits: Value = n.get_json("/api/v1/catalog/search?q=skills").await;
    assert_eq!(hits["total"], 1);
    let r = n
        .req(reqwest::Method::PATCH, "/api/v1/products/job_seekers")
        .json(&json!({"columns": {"salary": {"role": "sensitive"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("salary")
    );

    // Removal.
    let r = n
        .req(reqwest::Method::DELETE, "/api/v1/products/jobs_copy")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = n.get("/api/v1/products/jobs_copy").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        Path::new(&path).exists(),
        "the data itself is never touched"
    );
    n.stop().await;
}

#[tokio::test]
async fn bad_registrations_leave_the_catalog_unchanged() {
    let n = TestNode::start().await;
    let good = write(&n.data(), "jobs.csv", JOBS_CSV);
    assert_eq!(n.register(json!({"location": good})).await.0, 201);

    let cases: Vec<(Value, StatusCode, &str, &str)> = vec![
        (
            json!({"location": good}),
            StatusCode::CONFLICT,
            "already_exists",
            "already exists",
        ),
        (
            json!({"location": n.data().join("missing.csv")}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "no such file",
        ),
        (
            json!({"location": "/etc/passwd", "format": "csv"}),
            StatusCode::FORBIDDEN,
            "forbidden",
            "outside the folders",
        ),
        (
            json!({"location": write(&n.data(), "x.parquet", "not parquet at all")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable_data",
            "x.parquet",
        ),
        (
            json!({"location": write(&n.data(), "noext", "a\n1\n")}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "--format",
        ),
        (
            json!({"location": write(&n.data(), "open_quote.csv", "a,b\n1,2\n3,\"four\n5,6\n")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable_data",
            "opened on line 3 is never closed",
        ),
        (
            json!({"location": write(&n.data(), "ragged.csv", "a,b,c\n1,2,3\n4,5\n")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable_data",
            "line 3 has 2 fields but line 1 has 3",
        ),
        (
            json!({"location": write(&n.data(), "header_only.csv", "a,b\n")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable_data",
            "a header line and no rows",
        ),
        (
            json!({"location": good, "name": "Bad Name"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid product name",
        ),
        (
            json!({"location": good, "name": "jobs2", "metadata": {"classification": "personal"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_metadata",
            "legal basis",
        ),
        (
            json!({"location": good, "colour": "blue"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_json",
            "colour",
        ),
    ];
    for (body, status, code, text) in cases {
        let (s, v) = n.register(body.clone()).await;
        assert_eq!(s, status, "{body} → {v}");
        assert_eq!(error_code(&v), code, "{body} → {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(text),
            "{body} → {v}"
        );
    }

    // A sidecar naming an unknown column, and one contradicting the schema.
    let with_sidecar = |name: &str, sidecar: &str| {
        let p = write(&n.data(), &format!("{name}.csv"), JOBS_CSV);
        write(&n.data(), &format!("{name}.agora.toml"), sidecar);
        p
    };
    let p = with_sidecar("s1", "[columns.salary]\nrole = \"sensitive\"\n");
    let (s, v) = n.register(json!({"location": p})).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("salary"));
    let p = with_sidecar("s2", "[columns.months_unemployed]\ntype = \"Utf8\"\n");
    let (s, v) = n.register(json!({"location": p})).await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("Int64"),
        "{v}"
    );
    let p = with_sidecar("s3", "title = [\n");
    let (s, v) = n.register(json!({"location": p})).await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("s3.agora.toml"),
        "{v}"
    );

    // Malformed JSON and a wrong content type.
    let r = n
        .req(reqwest::Method::POST, "/api/v1/products")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r.json().await.unwrap()), "invalid_json");
    let r = n
        .req(reqwest::Method::POST, "/api/v1/products")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    let page: Value = n.get_json("/api/v1/products").await;
    assert_eq!(page["total"], 1, "nothing was half-registered: {page}");
    n.stop().await;
}

/// The node caches its table list by catalog version: a product registered by another
/// process (here a second `Node` on the same data directory, as the CLI does) is queryable
/// at once, and a removed one is gone at once.
#[tokio::test]
async fn catalog_changes_by_other_processes_are_seen_at_once() {
    let n = TestNode::start().await;
    let (s, _) = n.sql("SELECT count(*) FROM jobs", "csv").await;
    assert_eq!(s, 400, "no such table yet");
    let other = Node::open(&NodeConfig::new(n.dir.path().join("node")))
        .await
        .unwrap();
    // A node that queries in-process keeps its catalog in memory (and plans over it while
    // it checks the store's catalog version): it must see the other process's changes too.
    let reader = Node::open(&NodeConfig::new(n.dir.path().join("node")))
        .await
        .unwrap();
    async fn rows(node: &Node, sql: &str) -> Result<String, String> {
        let result = node.query(sql).await.map_err(|e| e.to_string())?;
        let (text, _) = result.to_text_table(10).await.map_err(|e| e.to_string())?;
        Ok(text)
    }
    assert!(
        rows(&reader, "SELECT count(*) AS n FROM jobs")
            .await
            .is_err()
    );
    let path = write(&n.data(), "jobs.csv", JOBS_CSV);
    other
        .register(
            agora_node::RegisterRequest {
                location: path,
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .unwrap();
    let (s, body) = n.sql("SELECT count(*) AS n FROM jobs", "csv").await;
    assert_eq!((s.as_u16(), body.as_str()), (200, "n\n3\n"));
    let seen = rows(&reader, "SELECT count(*) AS n FROM jobs")
        .await
        .unwrap();
    assert!(seen.contains('3'), "{seen}");
    other.remove("jobs").await.unwrap();
    let (s, _) = n.sql("SELECT count(*) FROM jobs", "csv").await;
    assert_eq!(s, 400, "removed products are gone at once");
    assert!(
        rows(&reader, "SELECT count(*) AS n FROM jobs")
            .await
            .is_err()
    );
    n.stop().await;
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let n = TestNode::start_with(|c| c.body_limit = 4096).await;
    let big = "x".repeat(10_000);
    let r = n
        .post("/api/v1/query", json!({"sql": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(&r.json().await.unwrap()), "payload_too_large");
    n.stop().await;
}

/// The 4 KB query that used to overflow a worker's stack and abort the whole process, and
/// its relatives: each refused with 422 `query_limit`, and the node keeps answering.
#[tokio::test]
async fn deep_queries_are_refused_and_the_node_stays_up() {
    let n = TestNode::start().await;
    let chain = |item: &str, sep: &str, count: usize| vec![item; count].join(sep);
    for sql in [
        format!("SELECT {}", chain("1", "+", 2_000)),
        format!("SELECT 1 WHERE {}", chain("1=1", " AND ", 5_000)),
        format!("SELECT {}", chain("'a'", " || ", 5_000)),
        chain("SELECT 1", " UNION ALL ", 3_000),
        format!(
            "SELECT {}1 AS !{}",
            "CAST(".repeat(40),
            " AS INT)".repeat(40)
        ),
    ] {
        let (status, body) = n.sql(&sql, "csv").await;
        assert_eq!(status, 422, "{:.40}: {body}", sql);
        assert!(body.contains("query_limit"), "{body}");
    }
    let (status, body) = n.sql("SELECT 1 AS one", "csv").await;
    assert_eq!(status, 200);
    assert_eq!(body, "one\n1\n");
    n.stop().await;
}

/// Expressions that fail on a value are the query's fault, told as such: never 500.
#[tokio::test]
async fn failing_expressions_are_the_callers_error() {
    let n = TestNode::start().await;
    for sql in [
        "SELECT 1/0",
        "SELECT CAST('x' AS INT)",
        "SELECT CAST('2024-13-45' AS DATE)",
        "SELECT 9223372036854775807 + 1",
        "SELECT CAST(n AS INT) / (n - n) FROM (VALUES (1), (2)) t(n)",
        "SELECT arrow_cast(1, 'Nope')",
        "SELECT sqrt('a')",
        "SELECT repeat('x', -1)",
        "SELECT make_date(2024, 14, 1)",
        "SELECT to_timestamp('yesterday')",
        "SELECT substr('abc', 1, -1)",
        "SELECT * FROM (VALUES (1)) t(n) LIMIT -1",
        "SELECT interval '1' nonsense",
    ] {
        for format in ["csv", "json", "arrow"] {
            let (status, body) = n.sql(sql, format).await;
            assert!(
                (400..500).contains(&status.as_u16()) || status == 200,
                "{sql} ({format}): {status} {body}"
            );
            assert!(!body.contains("\"internal\""), "{sql}: {body}");
        }
    }
    n.stop().await;
}

/// A small result that is ready at once goes out whole with its length; a large one
/// streams in chunks.
#[tokio::test]
async fn small_results_carry_their_length_and_large_ones_stream() {
    let n = TestNode::start().await;
    let r = n
        .post(
            "/api/v1/query",
            json!({"sql": "SELECT 1 AS one", "format": "csv"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.content_length(), Some(6));
    assert!(r.headers().get("transfer-encoding").is_none());
    assert_eq!(r.text().await.unwrap(), "one\n1\n");

    let sql = "SELECT value FROM generate_series(1, 300000)";
    let r = n
        .post("/api/v1/query", json!({"sql": sql, "format": "csv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    let body = r.text().await.unwrap();
    assert_eq!(body.lines().count(), 300_001);
    assert_eq!(body.lines().last(), Some("300000"));
    n.stop().await;
}

#[tokio::test]
async fn sql_over_http_in_every_format() {
    let n = TestNode::start().await;
    let path = write(&n.data(), "jobs.csv", JOBS_CSV);
    assert_eq!(n.register(json!({"location": path})).await.0, 201);

    let sql =
        "SELECT municipality, count(*) AS n FROM jobs GROUP BY municipality ORDER BY municipality";
    let (s, body) = n.sql(sql, "json").await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!([{"municipality": "Eastbridge", "n": 1}, {"municipality": "Northport", "n": 2}])
    );

    let (s, body) = n.sql(sql, "csv").await;
    assert_eq!(
        (s, body.as_str()),
        (
            StatusCode::OK,
            "municipality,n\nEastbridge,1\nNorthport,2\n"
        )
    );

    let (s, body) = n.sql(sql, "ndjson").await;
    assert_eq!(s, 200);
    assert_eq!(body.lines().count(), 2);

    // The Accept header chooses the format when the body does not.
    let r = n
        .post("/api/v1/query", json!({"sql": sql}))
        .header("accept", "application/vnd.apache.arrow.stream")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = r.bytes().await.unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    assert_eq!(reader.map(|b| b.unwrap().num_rows()).sum::<usize>(), 2);

    // The products a query read come from its plan: an alias or a comment misleads nothing.
    let r = n
        .post(
            "/api/v1/query",
            json!({"sql": "-- FROM \"tax-office\".annual_income\nSELECT count(*) FROM jobs AS \"other\"", "format": "csv"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["agora-tables"], "jobs");
    assert!(r.headers().get("agora-agreements").is_none());

    for (sql, status, code) in [
        ("SELEC 1", 400, "invalid_sql"),
        ("SELECT * FROM nowhere", 400, "invalid_sql"),
        ("SELECT nope FROM jobs", 400, "invalid_sql"),
        ("DROP TABLE jobs", 403, "read_only"),
        (
            "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
            403,
            "read_only",
        ),
    ] {
        let (s, body) = n.sql(sql, "json").await;
        assert_eq!(s.as_u16(), status, "{sql}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error_code(&v), code, "{sql}");
    }
    let (s, body) = n.sql("SELECT 1", "xml").await;
    assert_eq!(s, 400);
    assert!(body.contains("unknown result format"));
    n.stop().await;
}

#[tokio::test]
async fn roles_limit_what_tokens_may_do_and_revocation_is_immediate() {
    let n = TestNode::start().await;
    let path = write(&n.data(), "jobs.csv", JOBS_CSV);

    let r = n
        .post(
            "/api/v1/tokens",
            json!({"label": "analyst at the ministry", "role": "analyst"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let analyst = created["token"].as_str().unwrap().to_owned();
    let id = created["info"]["id"].as_str().unwrap().to_owned();
    let as_analyst = |m: reqwest::Method, p: &str| {
        n.http
            .request(m, format!("{}{p}", n.url))
            .bearer_auth(&analyst)
    };

    // Analysts may not register, change or remove products, nor manage tokens.
    let r = as_analyst(reqwest::Method::POST, "/api/v1/products")
        .json(&json!({"location": path}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("role steward"));
    let r = as_analyst(reqwest::Method::GET, "/api/v1/tokens")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // They may search and query.
    assert_eq!(n.register(json!({"location": path})).await.0, 201);
    let r = as_analyst(reqwest::Method::POST, "/api/v1/query")
        .json(&json!({"sql": "SELECT count(*) AS n FROM jobs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!([{"n": 3}]));

    // Listing tokens never shows secrets.
    let list = n
        .get("/api/v1/tokens")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&analyst) && !list.contains(&n.token));
    assert!(list.contains("analyst at the ministry"));

    let r = n
        .req(reqwest::Method::DELETE, &format!("/api/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = as_analyst(reqwest::Method::GET, "/api/v1/products")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = n
        .req(reqwest::Method::DELETE, "/api/v1/tokens/unknown")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    n.stop().await;
}

#[tokio::test]
async fn product_payload_snapshot() {
    let n = TestNode::start().await;
    let path = write(&n.data(), "jobs.csv", JOBS_CSV);
    let (s, p) = n
        .register(json!({
            "location": path,
            "metadata": {
                "title": "Registered job seekers",
                "description": "People looking for work.",
                "classification": "personal",
                "legal_basis": "Employment Services Act, section 7",
                "keywords": ["unemployment"],
                "themes": ["ECON", "SOCI"],
                "retention": "P10Y",
                "update_frequency": "daily",
                "columns": {"person_id": {"role": "subject_id"}, "municipality": {"role": "quasi_identifier"}}
            }
        }))
        .await;
    assert_eq!(s, 201);
    // Sorted: whether a parsed `serde_json::Value` keeps the payload's key order depends on
    // which crates are built together (serde_json's `preserve_order` feature is unified
    // across them); the snapshot must not.
    insta::with_settings!({sort_maps => true}, {
        insta::assert_json_snapshot!(p, {
            ".id" => "[id]",
            ".source.location" => "[location]",
            ".created_at" => "[time]",
            ".updated_at" => "[time]",
            ".profile.computed_at" => "[time]",
        });
    });
    n.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_and_frees_the_port() {
    let n = TestNode::start().await;
    let url = n.url.clone();
    n.stop().await;
    assert!(reqwest::get(format!("{url}/healthz")).await.is_err());
}

/// Regression: an auditor's token reads the node's records and nothing else — no query,
/// no product, no change (the API lets an auditor's token through to the records it lists
/// only, so a route added later stays closed to it).
#[tokio::test]
async fn an_auditors_token_reads_records_and_no_data() {
    let n = TestNode::start().await;
    let created: Value = n
        .post(
            "/api/v1/tokens",
            json!({"label": "audit office", "role": "auditor"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["token"].as_str().unwrap().to_owned();
    let as_auditor = |m: reqwest::Method, path: &str| {
        n.http
            .request(m, format!("{}{path}", n.url))
            .bearer_auth(&secret)
    };
    use reqwest::Method as M;
    for path in [
        "/api/v1/audit/entries",
        "/api/v1/accesses",
        "/api/v1/policy-decisions",
        "/api/v1/negotiations",
        "/api/v1/node",
    ] {
        let r = as_auditor(M::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    // The token issue is itself in the log, and the auditor sees it.
    let entries: Value = as_auditor(M::GET, "/api/v1/audit/entries?kind=token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(entries.to_string().contains("audit office"), "{entries}");
    // Who issued it is named: the administrator's token.
    assert!(
        entries[0]["entry"]["actor"]
            .as_str()
            .unwrap()
            .starts_with("token:"),
        "{entries}"
    );
    let csv = as_auditor(M::GET, "/api/v1/audit/entries.csv?kind=token")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("index,at,kind,"), "{csv}");
    assert!(csv.contains("audit office"), "{csv}");
    for (m, path) in [
        (M::POST, "/api/v1/query"),
        (M::GET, "/api/v1/products"),
        (M::GET, "/api/v1/products/odrl"),
        (M::GET, "/api/v1/catalog/search?q=x"),
        (M::GET, "/api/v1/tokens"),
        (M::POST, "/api/v1/negotiations"),
        (M::DELETE, "/api/v1/tokens/abc"),
    ] {
        let r = as_auditor(m.clone(), path)
            .json(&json!({"sql": "SELECT 1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{m} {path}");
        let body = r.text().await.unwrap();
        assert!(body.contains("auditor"), "{body}");
    }
}
