//! End-to-end tests of the `agora` binary: CLI commands and the demo.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod api;
mod architecture;
mod audit;
mod resilience;
mod truthful;
mod unix;

/// Runs a future to its end on a runtime of its own (the tests here are synchronous).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Stops a process with SIGINT (Ctrl-C) and waits, at most 30 s, for it to end.
fn stop_with_sigint(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the process did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn agora() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_agora"));
    c.env_remove("AGORA_DATA_DIR").env_remove("AGORA_STORE_URL");
    c
}

fn run(args: &[&str]) -> Output {
    agora().args(args).output().expect("agora runs")
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "agora {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs a command that must fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert!(!o.status.success(), "agora {args:?} should have failed");
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(!err.contains("panicked"), "agora {args:?} panicked:\n{err}");
    err
}

fn init_node(dir: &Path) -> String {
    let out = ok(&[
        "node",
        "init",
        "--data-dir",
        s(dir),
        "--member",
        "employment-agency",
    ]);
    out.lines().last().unwrap().trim().to_owned()
}

/// Runs Python (`AGORA_PYTHON`, else `python3`) with these arguments; its standard output,
/// once it succeeded.
fn python(args: &[&str]) -> String {
    let python = std::env::var("AGORA_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        out.status.success(),
        "{python} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const JOBS_CSV: &str = "person_id,municipality,months_unemployed\n37605030299,Northport,3\n49403136526,Eastbridge,14\n";

#[test]
fn cli_registers_lists_searches_and_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let node = tmp.path().join("node");
    let token = init_node(&node);
    assert!(token.starts_with("agora_"));
    let csv = tmp.path().join("jobs.csv");
    std::fs::write(&csv, JOBS_CSV).unwrap();

    let out = ok(&[
        "product",
        "add",
        s(&csv),
        "--data-dir",
        s(&node),
        "--title",
        "Registered job seekers",
        "--classification",
        "personal",
        "--legal-basis",
        "Employment Services Act",
        "--keyword",
        "unemployment",
        "--theme",
        "ECON",
        "--role",
        "person_id=subject_id",
        "--retention",
        "P10Y",
    ]);
    assert!(out.contains("Registered jobs (2 rows, 3 columns)"), "{out}");

    let list: Value =
        serde_json::from_str(&ok(&["product", "list", "--data-dir", s(&node), "--json"])).unwrap();
    assert_eq!(list["total"], 1);
    let show = ok(&["product", "show", "jobs", "--data-dir", s(&node)]);
    assert!(
        show.contains("subject_id") && show.contains("P10Y"),
        "{show}"
    );
    let hits: Value = serde_json::from_str(&ok(&[
        "catalog",
        "search",
        "unemployment",
        "--data-dir",
        s(&node),
        "--json",
    ]))
    .unwrap();
    assert_eq!(hits["items"][0]["name"], "jobs");

    let csv_out = ok(&[
        "sql",
        "SELECT municipality FROM jobs ORDER BY 1",
        "--format",
        "csv",
        "--data-dir",
        s(&node),
    ]);
    assert_eq!(csv_out, "municipality\nEastbridge\nNorthport\n");
    let table = ok(&[
        "sql",
        "SELECT count(*) AS n FROM jobs",
        "--data-dir",
        s(&node),
    ]);
    assert!(
        table.contains("| 2 |") && table.contains("(1 row)\n"),
        "{table}"
    );

    ok(&[
        "product",
        "update",
        "jobs",
        "--title",
        "Job seekers",
        "--data-dir",
        s(&node),
    ]);
    assert!(ok(&["product", "show", "jobs", "--data-dir", s(&node)]).contains("Job seekers"));

    let created = ok(&[
        "token",
        "create",
        "--label",
        "reporting",
        "--role",
        "analyst",
        "--data-dir",
        s(&node),
    ]);
    let id = created.split_whitespace().nth(1).unwrap().to_owned();
    assert!(ok(&["token", "list", "--data-dir", s(&node)]).contains("reporting"));
    ok(&["token", "revoke", &id, "--data-dir", s(&node)]);

    ok(&["product", "remove", "jobs", "--data-dir", s(&node)]);
    assert!(csv.exists());
    let list: Value =
        serde_json::from_str(&ok(&["product", "list", "--data-dir", s(&node), "--json"])).unwrap();
    assert_eq!(list["total"], 0);
}

#[test]
fn cli_bad_input_gets_clear_errors_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let node = tmp.path().join("node");

    let err = fails(&["product", "list", "--data-dir", s(&node)]);
    assert!(err.contains("not initialised"), "{err}");
    init_node(&node);
    let err = fails(&[
        "node",
        "init",
        "--data-dir",
        s(&node),
        "--member",
        "tax-office",
    ]);
    assert!(err.contains("already initialised"), "{err}");
    let err = fails(&[
        "node",
        "init",
        "--data-dir",
        s(&tmp.path().join("x")),
        "--member",
        "Bad Member",
    ]);
    assert!(err.contains("invalid member id"), "{err}");

    let csv = tmp.path().join("jobs.csv");
    std::fs::write(&csv, JOBS_CSV).unwrap();
    ok(&["product", "add", s(&csv), "--data-dir", s(&node)]);

    // Each bad registration: (extra arguments to `product add`, what the error names).
    let bad: [(&[&str], &str); 5] = [
        (&[s(&csv)], "already exists"),
        (&["/no/such/file.csv"], "no such file or folder"),
        (
            &[s(&csv), "--name", "j2", "--role", "salary=sensitive"],
            "salary",
        ),
        (
            &[s(&csv), "--name", "j3", "--classification", "secret"],
            "unknown classification",
        ),
        (
            &[s(&csv), "--name", "j4", "--retention", "ten years"],
            "retention",
        ),
    ];
    for (extra, expected) in bad {
        let mut args = vec!["product", "add"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--data-dir", s(&node)]);
        let err = fails(&args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }

    let bad_sidecar = tmp.path().join("other.csv");
    std::fs::write(&bad_sidecar, JOBS_CSV).unwrap();
    std::fs::write(
        tmp.path().join("other.agora.toml"),
        "[columns.nope]\nrole = \"none\"\n",
    )
    .unwrap();
    let err = fails(&["product", "add", s(&bad_sidecar), "--data-dir", s(&node)]);
    assert!(
        err.contains("other.agora.toml") && err.contains("nope"),
        "{err}"
    );

    let err = fails(&["sql", "SELEC 1", "--data-dir", s(&node)]);
    assert!(err.contains("SQL syntax error"), "{err}");
    let err = fails(&["sql", "SELECT * FROM missing", "--data-dir", s(&node)]);
    assert!(err.contains("missing"), "{err}");
    let err = fails(&["sql", "SELECT 1", "--format", "xml", "--data-dir", s(&node)]);
    assert!(
        err.contains("invalid value 'xml'") && err.contains("table"),
        "{err}"
    );

    // A data directory that cannot be created.
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = fails(&[
        "node",
        "init",
        "--data-dir",
        s(&file.join("sub")),
        "--member",
        "tax-office",
    ]);
    assert!(err.contains("not writable"), "{err}");

    let list: Value =
        serde_json::from_str(&ok(&["product", "list", "--data-dir", s(&node), "--json"])).unwrap();
    assert_eq!(
        list["total"], 1,
        "only the first registration is in the catalog"
    );
}

/// Registration is one transaction at the end: a process killed while profiling leaves no
/// trace in the catalog, and the node works normally afterwards.
#[test]
fn registration_killed_midway_leaves_the_catalog_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let node = tmp.path().join("node");
    init_node(&node);
    let csv = tmp.path().join("big.csv");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
        writeln!(f, "id,name,score").unwrap();
        for i in 0..6_000_000u64 {
            writeln!(f, "{i},person-{},{}", i % 9973, i % 101).unwrap();
        }
    }
    let mut child = agora()
        .args(["product", "add", s(&csv), "--data-dir", s(&node)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(250));
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        still_running,
        "registration ended before it could be interrupted ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let list: Value =
        serde_json::from_str(&ok(&["product", "list", "--data-dir", s(&node), "--json"])).unwrap();
    assert_eq!(list["total"], 0, "{list}");
    let small = tmp.path().join("small.csv");
    std::fs::write(&small, JOBS_CSV).unwrap();
    ok(&["product", "add", s(&small), "--data-dir", s(&node)]);
}

/// A node served by `agora node start` on a free loopback port, stopped when dropped.
struct ServedNode {
    child: Child,
    url: String,
    token: String,
    dir: PathBuf,
}

impl ServedNode {
    /// Initialises a node in `root/node` and serves it; local data may be registered from
    /// `root`.
    fn start(root: &Path, extra: &[&str]) -> ServedNode {
        Self::start_in(root, extra, None)
    }

    /// The same, with this `node.toml` in the data directory.
    fn start_with_settings(root: &Path, settings: &str) -> ServedNode {
        Self::start_in(root, &[], Some(settings))
    }

    fn start_in(root: &Path, extra: &[&str], settings: Option<&str>) -> ServedNode {
        let dir = root.join("node");
        let token = init_node(&dir);
        if let Some(text) = settings {
            std::fs::write(dir.join("node.toml"), text).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = agora()
            .args(["node", "start", "--data-dir", s(&dir), "--listen", &listen])
            .args(["--allow-path", s(root)])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut node = ServedNode {
            child,
            url: format!("http://{listen}"),
            token,
            dir,
        };
        let started = Instant::now();
        while !node.ready() {
            assert!(
                node.child.try_wait().unwrap().is_none(),
                "the node exited while starting"
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the node did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        node
    }

    fn ready(&self) -> bool {
        block_on(async {
            reqwest::get(format!("{}/readyz", self.url))
                .await
                .is_ok_and(|r| r.status().is_success())
        })
    }

    /// POSTs JSON with the administrator token: the status and the body.
    fn post(&self, path: &str, body: &Value) -> (u16, String) {
        block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{}{path}", self.url))
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }

    /// The node still runs and answers.
    fn assert_alive(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "the node exited");
        assert!(self.ready(), "the node no longer answers");
    }
}

impl Drop for ServedNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed-in web session, for posting forms as a person would.
struct WebSession {
    http: reqwest::Client,
    url: String,
    session: String,
    csrf: String,
}

/// The value a response sets for a cookie.
fn response_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()?
                .strip_prefix(&format!("{name}="))
                .map(str::to_owned)
        })
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_field(body: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = body.find(marker).expect("a csrf field") + marker.len();
    body[at..].split('"').next().unwrap().to_owned()
}

impl WebSession {
    /// One sign-in attempt as a browser makes it (form, then post): the status.
    async fn attempt(http: &reqwest::Client, url: &str, user: &str, password: &str) -> u16 {
        let Ok(form) = http.get(format!("{url}/sign-in")).send().await else {
            return 0;
        };
        let pre = response_cookie(&form, "agora_sign_in").expect("a sign-in cookie");
        let csrf = csrf_field(&form.text().await.unwrap());
        let r = http
            .post(format!("{url}/sign-in"))
            .header("cookie", format!("agora_sign_in={pre}"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("next", "/catalog"),
                ("username", user),
                ("password", password),
            ])
            .send()
            .await;
        r.map_or(0, |r| r.status().as_u16())
    }

    fn sign_in(url: &str, user: &str, password: &str) -> WebSession {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (session, csrf) = block_on(async {
            let form = http.get(format!("{url}/sign-in")).send().await.unwrap();
            let pre = response_cookie(&form, "agora_sign_in").unwrap();
            let csrf = csrf_field(&form.text().await.unwrap());
            let signed = http
                .post(format!("{url}/sign-in"))
                .header("cookie", format!("agora_sign_in={pre}"))
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("next", "/query"),
                    ("username", user),
                    ("password", password),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(signed.status().as_u16(), 303, "sign-in as {user} failed");
            let session = response_cookie(&signed, "agora_session").unwrap();
            let page = http
                .get(format!("{url}/query"))
                .header("cookie", format!("agora_session={session}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            (session, csrf_field(&page))
        });
        WebSession {
            http,
            url: url.to_owned(),
            session,
            csrf,
        }
    }

    /// A page of this session: the status and the page.
    fn get(&self, path: &str) -> (u16, String) {
        block_on(async {
            let r = self
                .http
                .get(format!("{}{path}", self.url))
                .header("cookie", format!("agora_session={}", self.session))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }

    /// Posts a form of this session (its CSRF token added): the status and the page.
    fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut form: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        block_on(async {
            let r = self
                .http
                .post(format!("{}{path}", self.url))
                .header("cookie", format!("agora_session={}", self.session))
                .form(&form)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }
}

/// A query that may meet a node going down: status 0 when the connection failed.
fn post_query_lenient(url: &str, token: &str, sql: &str) -> (u16, String) {
    block_on(async {
        let sent = reqwest::Client::new()
            .post(format!("{url}/api/v1/query"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(30))
            .json(&serde_json::json!({"sql": sql, "format": "csv"}))
            .send()
            .await;
        match sent {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    })
}

struct Demo {
    child: Child,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_file(path: &Path, child: &mut Child, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            return v;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the demo exited early with {status}");
        }
        assert!(
            start.elapsed() < limit,
            "the demo was not ready within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(url: &str, token: &str) -> Value {
    block_on(async {
        let r = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        r.json::<Value>().await.unwrap()
    })
}

fn post_query(url: &str, token: &str, sql: &str) -> (u16, String) {
    block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{url}/api/v1/query"))
            .bearer_auth(token)
            .json(&serde_json::json!({"sql": sql, "format": "csv"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

/// Signs in to a node's web interface and returns the page at `path`.
fn web_page(url: &str, user: &str, password: &str, path: &str) -> String {
    let (status, page) = WebSession::sign_in(url, user, password).get(path);
    assert!((200..300).contains(&status), "{path}: {status}");
    page
}

/// Runs tests/interop/adbc_flight_sql.py against the running demo with the Python of
/// `AGORA_PYTHON` (scripts/test.sh prepares one with the ADBC driver installed).
fn adbc_interop(eco_path: &Path) {
    let python = std::env::var("AGORA_PYTHON").unwrap_or_else(|_| "python3".into());
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/adbc_flight_sql.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(eco_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; run the tests with scripts/test.sh"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the ADBC Flight SQL interoperability test failed (scripts/test.sh installs the driver):\n{stdout}\n{stderr}"
    );
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
}

/// Runs the browser journeys (tests/browser/journeys.mjs, Playwright driving Debian's
/// Chromium) against the running demo. `AGORA_BROWSER_TESTS` names their folder with its
/// npm packages installed (scripts/test.sh prepares it with scripts/browser-env.sh);
/// `AGORA_SCREENSHOTS`, if set, is where they save screenshots of the main pages.
fn browser_journeys(eco_path: &Path) {
    let dir = std::env::var("AGORA_BROWSER_TESTS")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser").to_owned());
    assert!(
        Path::new(&dir)
            .join("node_modules/playwright-core")
            .exists(),
        "the browser tests are not installed in {dir}: run scripts/browser-env.sh (or the \
         README's test command, scripts/test.sh)"
    );
    let out = Command::new("node")
        .arg("journeys.mjs")
        .current_dir(&dir)
        .env("AGORA_ECOSYSTEM", eco_path)
        .output()
        .expect("node runs the browser tests");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser journeys failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("every journey passed"), "{stdout}");
    eprintln!("{stdout}");
}

#[test]
fn demo_runs_every_member_with_its_products_and_restarts_warm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("demo");
    let eco_path = dir.join("ecosystem.json");
    let mut demo = Demo {
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
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    };
    let eco = wait_for_file(&eco_path, &mut demo.child, Duration::from_secs(180));
    let members = eco["members"].as_array().unwrap();
    let expected = [
        ("population-registry", vec!["residents"]),
        ("employment-agency", vec!["job_seekers"]),
        ("tax-office", vec!["annual_income", "benefit_payments"]),
        ("city-hospital", vec!["admissions", "vacancies"]),
        ("county-hospital", vec!["admissions"]),
        ("statistics-office", vec!["census_sample"]),
        ("city-council", vec!["incident_reports"]),
    ];
    assert_eq!(members.len(), expected.len());
    for (id, products) in &expected {
        let m = members
            .iter()
            .find(|m| m["id"] == *id)
            .unwrap_or_else(|| panic!("{id} missing"));
        let url = m["base_url"].as_str().unwrap();
        let token = m["token"].as_str().unwrap();
        let node = get(&format!("{url}/api/v1/node"), token);
        assert_eq!(node["member_id"], *id);
        let list = get(&format!("{url}/api/v1/products"), token);
        let mut names: Vec<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        let mut want: Vec<String> = products.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(names, want, "{id}");
        for p in list["items"].as_array().unwrap() {
            assert!(!p["metadata"]["description"].as_str().unwrap().is_empty());
            assert!(p["profile"]["row_count"].as_u64().unwrap() > 0, "{id}: {p}");
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&eco_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "ecosystem.json holds tokens");
    }
    let first_token = members[0]["token"].as_str().unwrap().to_owned();

    // The ecosystem runs over mutual TLS: an authority, an exchange endpoint and a client
    // certificate per member (its key readable only by its owner).
    assert!(
        eco["authority_url"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
    assert!(Path::new(eco["root_certificate"].as_str().unwrap()).exists());
    for m in members {
        assert!(m["exchange_url"].as_str().unwrap().starts_with("https://"));
        assert!(Path::new(m["client_certificate"].as_str().unwrap()).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = std::fs::metadata(m["client_key"].as_str().unwrap()).unwrap();
            assert_eq!(key.permissions().mode() & 0o777, 0o600);
        }
    }

    // Cross-member SQL through the API: an open product of another member is answered by
    // its owner; a personal one needs an agreement.
    let ea = members
        .iter()
        .find(|m| m["id"] == "employment-agency")
        .unwrap();
    let (url, token) = (
        ea["base_url"].as_str().unwrap(),
        ea["token"].as_str().unwrap(),
    );
    let (status, body) = post_query(
        url,
        token,
        "SELECT municipality, count(*) AS n FROM \"city-hospital\".vacancies GROUP BY 1",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.lines().count() > 1, "{body}");
    let (status, body) = post_query(url, token, "SELECT * FROM \"city-hospital\".admissions");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("agreement"), "{body}");

    // The demo played its scenarios under agreements both sides signed: job matching for
    // the hospital, fraud prevention for the agency (pseudonymised linkage).
    let finalized = |m: &Value| {
        let list = get(
            &format!(
                "{}/api/v1/negotiations?role=consumer&state=FINALIZED",
                m["base_url"].as_str().unwrap()
            ),
            m["token"].as_str().unwrap(),
        );
        let mut products: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                assert!(
                    n["signatures"]["owner"].is_string() && n["signatures"]["consumer"].is_string(),
                    "{n}"
                );
                format!(
                    "{}.{}",
                    n["request"]["owner"].as_str().unwrap(),
                    n["request"]["product"].as_str().unwrap()
                )
            })
            .collect();
        products.sort();
        products
    };
    let hospital = members.iter().find(|m| m["id"] == "city-hospital").unwrap();
    assert_eq!(finalized(hospital), ["employment-agency.job_seekers"]);
    assert_eq!(
        finalized(ea),
        ["tax-office.annual_income", "tax-office.benefit_payments"]
    );
    // Under the agency's agreement the tax office's identifiers are pseudonyms.
    let (status, body) = post_query(
        url,
        token,
        "SELECT person_id FROM \"tax-office\".annual_income LIMIT 1",
    );
    assert_eq!(status, 200, "{body}");
    let value = body.lines().nth(1).unwrap_or_default();
    assert_eq!(value.len(), 64, "{body}");

    let hits = get(&format!("{url}/api/v1/catalog/search?q=vacancies"), token);
    assert_eq!(hits["items"][0]["owner"], "city-hospital", "{hits}");

    // The web interface: the demo's administrator signs in and sees the node enrolled,
    // its trust list valid and every member on it.
    let admin = ea["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "admin")
        .expect("a demo admin user");
    let page = web_page(url, "admin", admin["password"].as_str().unwrap(), "/admin");
    assert!(page.contains(">valid<"), "{page}");
    for m in members {
        assert!(page.contains(m["id"].as_str().unwrap()), "{page}");
    }

    // A standard Flight SQL client (ADBC, from PyPI) lists and queries products with the
    // member's client certificate.
    adbc_interop(&eco_path);

    // What the command line says about access is true.
    truthful::the_cli_tells_the_truth_about_access(&eco);

    // Every member's transparency log verifies; an auditor sees who read what, and why.
    audit::every_log_verifies_and_an_auditor_sees_who_read_what(&eco);

    // Every journey of the web interface in Debian's headless Chromium, with axe-core
    // checks on every page (tests/browser).
    browser_journeys(&eco_path);

    // An agreement edited in the owner's store is shown as not in force.
    truthful::an_edited_agreement_is_shown_as_not_in_force(&eco);

    // Ctrl-C stops every node cleanly.
    let status = stop_with_sigint(&mut demo.child);
    assert!(status.success(), "{status}");
    // The guide told what each party of the scenarios saw.
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut demo.child.stdout.take().unwrap(), &mut printed).unwrap();
    assert!(
        printed.contains("Scenario 1 — job matching")
            && printed.contains("Scenario 2 — fraud prevention")
            && printed.contains("→  person "),
        "{printed}"
    );
    truthful::the_guide_can_be_followed(&printed);
    // Scenario 6: the resident's history was asked of every member and checked complete;
    // the owners of both scenarios hold accesses to their records.
    let citizen = printed
        .split("Scenario 6 — citizen transparency")
        .nth(1)
        .unwrap_or_else(|| panic!("scenario 6 in the guide:\n{printed}"));
    assert!(!citizen.contains("could not be checked"), "{citizen}");
    for owner in ["employment-agency", "tax-office"] {
        assert!(
            citizen.lines().any(|l| l.trim_start().starts_with(owner)
                && l.contains("access")
                && !l.contains("no access")),
            "{owner} holds no access in:\n{citizen}"
        );
    }
    assert!(citizen.contains("Citizen portal: sign in at"), "{citizen}");
    // The resident withdrew consent to job matching: the agency applied it, and the
    // hospital's next query saw one job seeker fewer.
    let line = citizen
        .lines()
        .find(|l| l.contains("The hospital's next query sees"))
        .unwrap_or_else(|| panic!("{citizen}"));
    assert!(line.contains("employment-agency"), "{citizen}");
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches('.').parse().ok())
        .collect();
    assert_eq!(numbers.len(), 2, "{line}");
    assert_eq!(numbers[0] + 1, numbers[1], "{line}");

    // A second start reuses the data and the registrations.
    let out = run(&[
        "demo",
        "--data-dir",
        s(&dir),
        "--scale",
        "3000",
        "--base-port",
        "0",
        "--no-serve",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Using demo data"), "{err}");
    let eco2: Value = serde_json::from_str(&std::fs::read_to_string(&eco_path).unwrap()).unwrap();
    assert_ne!(
        eco2["members"][0]["token"].as_str().unwrap(),
        first_token,
        "a fresh token per run"
    );

    // A member the authority revoked is reported and left out; the others still start.
    ok(&[
        "authority",
        "revoke",
        "--data-dir",
        s(&dir.join("authority")),
        "tax-office",
        "--reason",
        "left the ecosystem",
    ]);
    let out = run(&[
        "demo",
        "--data-dir",
        s(&dir),
        "--scale",
        "3000",
        "--base-port",
        "0",
        "--no-serve",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Leaving tax-office out of this run") && err.contains("left the ecosystem"),
        "{err}"
    );
    let eco3: Value = serde_json::from_str(&std::fs::read_to_string(&eco_path).unwrap()).unwrap();
    let ids: Vec<&str> = eco3["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&"tax-office") && ids.contains(&"employment-agency"),
        "{ids:?}"
    );

    // A log altered behind the node's back no longer verifies.
    audit::an_altered_log_fails_verification(&eco3);
}
