//! A node under hostile input, as the binary serves it: generated deep, wide and long
//! statements and memory and time bombs at every door a person's query enters (the API,
//! the web query page, the command line), concurrent sign-in floods, and a node killed
//! during cross-member load whose exchange records are all reconciled after restart.
//! Member queries and Flight SQL go through the same engine entry points; their doors are
//! tested in agora-server (federation) and by the ADBC interoperability test.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Demo, ServedNode, agora, ok, run, s, wait_for_file};

/// Limits small enough for bombs to go off quickly on a test machine.
const NODE_TOML: &str = "[queries]\nmax_seconds = 8\nmax_memory_mib = 64\n";

/// A CSV of `rows` rows: `k` in 0..10, `v` distinct.
fn numbers(path: &Path, rows: usize) {
    let mut text = String::from("k,v\n");
    for i in 0..rows {
        text.push_str(&format!("{},{i}\n", i % 10));
    }
    std::fs::write(path, text).unwrap();
}

/// Hostile statements of every kind the parser and planner recurse on, at sizes around
/// and far beyond the limits (generated, not listed).
fn hostile_statements() -> Vec<String> {
    let chains = [
        ("1", "+"),
        ("1", "*"),
        ("1=1", " AND "),
        ("1=1", " OR "),
        ("'a'", " || "),
        ("k", " - "),
    ];
    let nests = [
        ("(", ")"),
        ("CAST(", " AS INT)"),
        ("TRY_CAST(", " AS INT)"),
        ("-(", ")"),
        ("NOT (", ")"),
        ("abs(", ")"),
        ("coalesce(", ", 1)"),
        ("[", "]"),
        ("CASE WHEN true THEN ", " END"),
        ("(SELECT ", ")"),
    ];
    let mut out = Vec::new();
    for n in [150, 1_500, 15_000, 60_000] {
        for (item, sep) in chains {
            out.push(format!("SELECT {} FROM t", vec![item; n].join(sep)));
        }
        out.push(vec!["SELECT 1"; n / 10 + 2].join(" UNION ALL "));
        out.push(format!(
            "SELECT * FROM t WHERE k IN ({})",
            (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        ));
    }
    for depth in [15, 17, 25, 60, 500, 5_000] {
        for (open, close) in nests {
            out.push(format!(
                "SELECT {}1{}",
                open.repeat(depth),
                close.repeat(depth)
            ));
            // The innermost part wrong: the parser's worst case.
            out.push(format!(
                "SELECT {}1 AS !{}",
                open.repeat(depth),
                close.repeat(depth)
            ));
        }
    }
    out
}

/// Every value of a join that yields millions of rows gathered into one list: one
/// aggregate state that outgrows any small limit (it cannot spill).
const MEMORY_BOMB: &str = "SELECT cardinality(array_agg(a.v)) FROM t a JOIN t b ON a.k = b.k";
/// A hash join whose four billion rows must each be looked at, in little memory.
const TIME_BOMB: &str = "SELECT count(*) FROM t a JOIN t b ON a.k = b.k WHERE a.v + b.v = -1";

fn api_query(node: &ServedNode, sql: &str) -> (u16, String) {
    node.post(
        "/api/v1/query",
        &serde_json::json!({"sql": sql, "format": "csv"}),
    )
}

#[test]
fn hostile_queries_at_every_door_are_refused_and_the_node_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    // The operator's limits, read when the node starts.
    std::fs::create_dir_all(tmp.path().join("node")).unwrap();
    let mut node = ServedNode::start_with_settings(tmp.path(), NODE_TOML);
    numbers(&tmp.path().join("t.csv"), 200_000);
    let (status, body) = node.post(
        "/api/v1/products",
        &serde_json::json!({"location": s(&tmp.path().join("t.csv")), "name": "t"}),
    );
    assert_eq!(status, 201, "{body}");

    // The API: every hostile statement is answered (small ones) or refused with a 4xx
    // that names the limit; none fails the server or the connection.
    let mut refused = 0;
    for sql in hostile_statements() {
        let (status, body) = api_query(&node, &sql);
        assert!(
            status == 200 || (400..500).contains(&status),
            "{:.60}…: {status} {body:.300}",
            sql
        );
        if body.contains("\"query_limit\"") {
            assert_eq!(status, 422, "{body:.300}");
            refused += 1;
        }
    }
    assert!(refused > 50, "only {refused} refused as over a limit");
    node.assert_alive();

    // Memory and time bombs, stopped at the operator's limits with words that say so.
    let started = Instant::now();
    let (status, body) = api_query(&node, MEMORY_BOMB);
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("more memory than allowed") && body.contains("64 MiB"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let started = Instant::now();
    let (status, body) = api_query(&node, TIME_BOMB);
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("took longer than allowed") && body.contains("8 s"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // A statement on which DataFusion itself fails (it panics on this plan shape without a
    // memory limit, and reports an internal error with one) ends with an error; the node
    // goes on.
    let (status, body) = api_query(
        &node,
        "SELECT count(*) FROM t a CROSS JOIN t b CROSS JOIN t c WHERE a.v + b.v + c.v = -1",
    );
    assert!(
        status == 500 && body.contains("\"internal\""),
        "{status} {body}"
    );
    node.assert_alive();

    // The command line: the same limits, the same words, a failing exit and no panic.
    for (sql, words) in [
        (MEMORY_BOMB, "more memory than allowed"),
        (TIME_BOMB, "took longer than allowed"),
        (
            &*format!("SELECT {}", vec!["1"; 5_000].join("+")),
            "nests expressions",
        ),
    ] {
        let o = run(&["sql", "--data-dir", s(&node.dir), sql]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{sql:.40}");
        assert!(err.contains(words) && !err.contains("panicked"), "{err}");
    }

    // The web query page.
    let password = "a long enough test password";
    let o = agora()
        .args([
            "user",
            "add",
            "analyst",
            "--name",
            "Ann Analyst",
            "--data-dir",
            s(&node.dir),
        ])
        .env("AGORA_PASSWORD", password)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let web = super::WebSession::sign_in(&node.url, "analyst", password);
    for (sql, words) in [
        (MEMORY_BOMB.to_owned(), "more memory than allowed"),
        (
            format!("SELECT {}", vec!["1=1"; 5_000].join(" AND ")),
            "nests expressions",
        ),
    ] {
        let (status, page) = web.post_form("/query", &[("sql", &sql), ("action", "run")]);
        assert!((400..500).contains(&status) || status == 200, "{status}");
        assert!(page.contains(words), "{page:.2000}");
    }
    node.assert_alive();
}

#[test]
fn sign_in_floods_from_many_addresses_are_throttled_and_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = ServedNode::start(tmp.path(), &[]);
    let password = "a long enough test password";
    let o = agora()
        .args([
            "user",
            "add",
            "steward",
            "--name",
            "Sam Steward",
            "--role",
            "steward",
        ])
        .args(["--data-dir", s(&node.dir)])
        .env("AGORA_PASSWORD", password)
        .output()
        .unwrap();
    assert!(o.status.success());
    // 160 concurrent guesses from 16 loopback addresses: each is refused, throttled or
    // turned away at the hashing queue; the node's memory stays bounded and it keeps
    // answering.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let statuses = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..160u32 {
            let url = node.url.clone();
            tasks.push(tokio::spawn(async move {
                let from: std::net::IpAddr = format!("127.0.0.{}", 2 + i % 16).parse().unwrap();
                let http = reqwest::Client::builder()
                    .local_address(from)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap();
                super::WebSession::attempt(&http, &url, "steward", &format!("guess {i}")).await
            }));
        }
        let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
        for t in tasks {
            *by_status.entry(t.await.unwrap()).or_default() += 1;
        }
        by_status
    });
    assert!(
        statuses.keys().all(|s| [422, 429, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains_key(&429),
        "no attempt was throttled: {statuses:?}"
    );
    let rss = rss_kib(node.child.id());
    assert!(rss < 1_500_000, "the node grew to {rss} KiB");
    node.assert_alive();
    // The account is throttled now, even with the right password, and says for how long.
    let http = reqwest::Client::new();
    let status = rt.block_on(super::WebSession::attempt(
        &http, &node.url, "steward", password,
    ));
    assert_eq!(status, 429);
}

/// The resident memory of a process, in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_node_killed_during_cross_member_load_reconciles_every_record_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let eco_path = dir.join("ecosystem.json");
    let start = || Demo {
        child: agora()
            .args([
                "demo",
                "--data-dir",
                s(&dir),
                "--scale",
                "3000",
                "--base-port",
                "0",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    };
    let mut demo = start();
    let eco = wait_for_file(&eco_path, &mut demo.child, Duration::from_secs(180));
    let member = |id: &str| -> Value {
        eco["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()
            .clone()
    };
    // The hospital queries the employment agency's job seekers under its agreement, from
    // eight clients at once; the whole ecosystem is killed in the middle.
    let hospital = member("city-hospital");
    let url = hospital["base_url"].as_str().unwrap().to_owned();
    let token = hospital["token"].as_str().unwrap().to_owned();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (url, token, stop, answered) =
                (url.clone(), token.clone(), stop.clone(), answered.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (status, _) = super::post_query_lenient(
                        &url,
                        &token,
                        "SELECT j.municipality, count(*) FROM \"employment-agency\".job_seekers j \
                         CROSS JOIN \"employment-agency\".job_seekers k GROUP BY 1",
                    );
                    if status == 200 {
                        answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Meanwhile the agency's administrator issues tokens as fast as the node answers:
    // each one acknowledged (201) must be in the transparency log after the kill.
    let agency_member = member("employment-agency");
    let (agency_url, agency_token) = (
        agency_member["base_url"].as_str().unwrap().to_owned(),
        agency_member["token"].as_str().unwrap().to_owned(),
    );
    let issued = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let issuers: Vec<_> = (0..8)
        .map(|_| {
            let (url, token, stop, issued) = (
                agency_url.clone(),
                agency_token.clone(),
                stop.clone(),
                issued.clone(),
            );
            std::thread::spawn(move || {
                super::block_on(async move {
                    let http = reqwest::Client::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let r = http
                            .post(format!("{url}/api/v1/tokens"))
                            .bearer_auth(&token)
                            .json(&serde_json::json!({"label": "load", "role": "analyst"}))
                            .send()
                            .await;
                        let Ok(r) = r else { break };
                        if r.status().as_u16() == 201
                            && let Ok(v) = r.json::<Value>().await
                        {
                            let id = v["info"]["id"].as_str().unwrap_or_default().to_owned();
                            issued.lock().unwrap().push(id);
                        }
                    }
                })
            })
        })
        .collect();
    let started = Instant::now();
    while answered.load(std::sync::atomic::Ordering::Relaxed) < 4
        && started.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    demo.child.kill().unwrap();
    demo.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients.into_iter().chain(issuers) {
        c.join().unwrap();
    }
    assert!(answered.load(std::sync::atomic::Ordering::Relaxed) >= 4);
    let issued = issued.lock().unwrap().clone();
    assert!(issued.len() >= 10, "only {} tokens issued", issued.len());

    // Restart: the exchange listeners reconcile what the kill left pending.
    std::fs::remove_file(&eco_path).unwrap();
    let mut demo = start();
    wait_for_file(&eco_path, &mut demo.child, Duration::from_secs(180));
    // Stopped cleanly (Ctrl-C), so that the exchanges of the new run have ended too.
    assert!(super::stop_with_sigint(&mut demo.child).success());
    let agency = dir.join("nodes").join("employment-agency");
    let log = ok(&[
        "node",
        "exchanges",
        "--data-dir",
        s(&agency),
        "--json",
        "--limit",
        "10000",
    ]);
    let records: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(records.len() > 4, "{log}");
    let pending: Vec<_> = records
        .iter()
        .filter(|r| r["outcome"] == "pending")
        .collect();
    assert!(pending.is_empty(), "records left pending: {pending:#?}");
    for r in &records {
        let o = r["outcome"].as_str().unwrap();
        assert!(
            o == "ok"
                || o.starts_with("interrupted: the node stopped at about")
                || o.starts_with("cancelled")
                || o.starts_with("refused")
                || o.starts_with("failed"),
            "{o}"
        );
    }
    // Every log verifies after the kill and the restart, and every token the agency
    // acknowledged before the kill is in its log.
    for id in ["employment-agency", "city-hospital", "tax-office"] {
        let out = ok(&[
            "audit",
            "verify",
            "--data-dir",
            s(&dir.join("nodes").join(id)),
        ]);
        assert!(out.contains("The log verifies."), "{id}: {out}");
    }
    let logged = ok(&[
        "audit",
        "entries",
        "--kind",
        "token",
        "--limit",
        "10000",
        "--json",
        "--data-dir",
        s(&agency),
    ]);
    let missing: Vec<&String> = issued
        .iter()
        .filter(|id| !logged.contains(&format!("\"token:{id}\"")))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not logged: {missing:?}"
    );
    eprintln!(
        "{} records; {} marked interrupted, {} cancelled",
        records.len(),
        records
            .iter()
            .filter(|r| r["outcome"].as_str().unwrap().starts_with("interrupted"))
            .count(),
        records
            .iter()
            .filter(|r| r["outcome"].as_str().unwrap().starts_with("cancelled"))
            .count()
    );
}
