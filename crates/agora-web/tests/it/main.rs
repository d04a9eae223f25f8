//! The web interface over HTTP: sign-in, sessions, CSRF, authorisation and the catalog
//! pages, against a real node on an ephemeral port. (Journeys in a real browser, with
//! accessibility checks, run in `tests/browser`.)

use agora_model::MemberId;
use agora_node::{ApiRole, Node, NodeConfig, RegisterRequest};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

const PASSWORD: &str = "a long enough password";

struct Site {
    url: String,
    http: reqwest::Client,
    node: Node,
    _dir: tempfile::TempDir,
}

async fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let member = MemberId::parse("employment-agency").unwrap();
    let (node, _) = Node::init(
        &NodeConfig::new(dir.path().join("node")),
        &member,
        "National Employment Agency",
    )
    .await
    .unwrap();
    register_csv(
        &node,
        dir.path(),
        "job_seekers",
        "person_id,municipality,months_unemployed\n\
         10000000009,Northport,3\n10000000017,Southmoor,\n10000000025,Northport,12\n",
    )
    .await;
    let mut text = String::from("n,label\n");
    for i in 1..=120 {
        text.push_str(&format!("{i},row {i}\n"));
    }
    register_csv(&node, dir.path(), "numbers", &text).await;
    for (name, role) in [
        ("analyst", ApiRole::Analyst),
        ("steward", ApiRole::Steward),
        ("admin", ApiRole::Admin),
        ("auditor", ApiRole::Auditor),
    ] {
        node.create_user(
            name,
            &format!("Test {name}"),
            role,
            PASSWORD,
            &agora_node::Accessor::command_line(),
        )
        .await
        .unwrap();
    }
    // Stewards may publish from this folder (the operator's --allow-path).
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let app = agora_web::router(
        node.clone(),
        agora_web::WebConfig {
            secure_cookies: false,
            allowed_roots: vec![inbox],
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum_serve(listener, app).await });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Site {
        url,
        http,
        node,
        _dir: dir,
    }
}

async fn register_csv(node: &Node, dir: &std::path::Path, name: &str, text: &str) {
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(&path, text).unwrap();
    node.register(
        RegisterRequest {
            location: path.display().to_string(),
            name: Some(name.into()),
            ..Default::default()
        },
        &|_| {},
    )
    .await
    .unwrap();
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum::Router) {
    // As the node serves it: with connection details (the client's address).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).await.unwrap();
}

/// The value a response sets for a cookie.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let first = v.split(';').next()?;
            let (k, val) = first.split_once('=')?;
            (k == name).then(|| val.to_owned())
        })
}

/// The value of a hidden input in a page.
fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}

impl Site {
    /// Signs in; returns the session cookie.
    async fn sign_in(&self, user: &str, password: &str) -> Result<String, (StatusCode, String)> {
        let form = self
            .http
            .get(format!("{}/sign-in", self.url))
            .send()
            .await
            .unwrap();
        let pre = set_cookie(form.headers(), "agora_sign_in").expect("a sign-in cookie");
        let body = form.text().await.unwrap();
        let csrf = hidden(&body, "csrf");
        let r = self
            .http
            .post(format!("{}/sign-in", self.url))
            .header("cookie", format!("agora_sign_in={pre}"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("next", "/catalog"),
                ("username", user),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        match set_cookie(r.headers(), agora_web::SESSION_COOKIE) {
            Some(s) if r.status() == StatusCode::SEE_OTHER => Ok(s),
            _ => Err((r.status(), r.text().await.unwrap())),
        }
    }

    async fn get(&self, path: &str, session: Option<&str>) -> reqwest::Response {
        let mut r = self.http.get(format!("{}{path}", self.url));
        if let Some(s) = session {
            r = r.header("cookie", format!("{}={s}", agora_web::SESSION_COOKIE));
        }
        r.send().await.unwrap()
    }
}

#[tokio::test]
async fn pages_need_a_session_and_send_people_to_sign_in() {
    let s = site().await;
    for path in ["/catalog", "/catalog/employment-agency/job_seekers"] {
        let r = s.get(path, None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        let to = r.headers()[LOCATION].to_str().unwrap().to_owned();
        assert!(
            to.starts_with("/sign-in?next=%2Fcatalog") || to.starts_with("/sign-in?next=/catalog"),
            "{to}"
        );
    }
    // A made-up session is no session.
    let r = s.get("/catalog", Some("agora_s_0000")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(s.get("/", None).await.headers()[LOCATION], "/sign-in");
}

#[tokio::test]
async fn a_wrong_password_is_told_in_an_error_summary_that_links_to_the_field() {
    let s = site().await;
    let (status, body) = s.sign_in("analyst", "not the password").await.unwrap_err();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("There is a problem"), "{body}");
    assert!(body.contains("href=\"#username\""), "{body}");
    assert!(body.contains("The user name or password is not right"));
    assert!(body.contains("<title>Error: Sign in"), "{body}");
    // An unknown user gets the same answer.
    let (status, body2) = s.sign_in("nobody", PASSWORD).await.unwrap_err();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body2.contains("The user name or password is not right"));
    // Empty fields are named one by one.
    let (_, body3) = s.sign_in("", "").await.unwrap_err();
    assert!(body3.contains("Enter your user name") && body3.contains("Enter your password"));
}

#[tokio::test]
async fn guessing_passwords_is_slowed_per_account_and_per_address_and_recorded() {
    let s = site().await;
    // Five free attempts (the default), then each further one waits.
    for i in 0..5 {
        let (status, _) = s
            .sign_in("analyst", &format!("guess {i}"))
            .await
            .unwrap_err();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "attempt {i}");
    }
    let (status, _) = s.sign_in("analyst", "guess 5").await.unwrap_err();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // The sixth failure set a wait: now even the right password waits, and says so.
    let (status, body) = s.sign_in("analyst", PASSWORD).await.unwrap_err();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body.contains("Too many attempts to sign in have failed. Wait 1 second"),
        "{body}"
    );
    // The address is throttled too: another account from it waits as well.
    let (status, _) = s.sign_in("steward", PASSWORD).await.unwrap_err();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s.sign_in("analyst", PASSWORD)
        .await
        .expect("the wait is over");
    // Every refusal is a security event, with the account and the client's address.
    let events = s.node.security_events(100).await.unwrap();
    let refused = events
        .iter()
        .filter(|e| e.kind == "sign_in_refused")
        .count();
    let throttled = events
        .iter()
        .filter(|e| e.kind == "sign_in_throttled")
        .count();
    assert_eq!((refused, throttled), (6, 2), "{events:?}");
    assert!(events.iter().all(|e| e.client == "127.0.0.1"), "{events:?}");
    assert!(events.iter().any(|e| e.account == "steward"));
}

#[tokio::test]
async fn a_flood_of_sign_ins_is_hashed_on_a_bounded_pool() {
    let s = std::sync::Arc::new(site().await);
    // 96 concurrent attempts on unknown names from one address: none may fail the
    // server; those past the hashing queue are turned away with 503 at once.
    let mut tasks = Vec::new();
    for i in 0..96 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.sign_in(&format!("nobody{i}"), "wrong")
                .await
                .unwrap_err()
                .0
        }));
    }
    let mut by_status = std::collections::BTreeMap::new();
    for t in tasks {
        *by_status.entry(t.await.unwrap().as_u16()).or_insert(0) += 1;
    }
    assert!(
        by_status.keys().all(|k| [422, 429, 503].contains(k)),
        "{by_status:?}"
    );
    assert!(
        by_status.get(&422).is_some_and(|n| *n >= 5),
        "{by_status:?}"
    );
    // The address is throttled now, for every account.
    let (status, _) = s.sign_in("admin", PASSWORD).await.unwrap_err();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_sign_in_form_not_from_this_site_is_refused() {
    let s = site().await;
    let r = s
        .http
        .post(format!("{}/sign-in", s.url))
        .form(&[
            ("csrf", "x"),
            ("username", "analyst"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(r.headers(), agora_web::SESSION_COOKIE).is_none());
}

#[tokio::test]
async fn session_cookies_are_http_only_and_strict() {
    let s = site().await;
    let form = s
        .http
        .get(format!("{}/sign-in", s.url))
        .send()
        .await
        .unwrap();
    let raw = form.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        raw.contains("HttpOnly") && raw.contains("SameSite=Strict"),
        "{raw}"
    );
    let session = s.sign_in("analyst", PASSWORD).await.unwrap();
    assert!(session.starts_with("agora_s_"));
    // The store knows only a hash of it.
    let users = s.node.users().await.unwrap();
    assert_eq!(users.len(), 4);
}

#[tokio::test]
async fn an_analyst_finds_a_product_and_reads_its_page() {
    let s = site().await;
    let session = s.sign_in("analyst", PASSWORD).await.unwrap();
    let r = s.get("/catalog?q=job", Some(&session)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("href=\"/catalog/employment-agency/job_seekers\""),
        "{body}"
    );
    assert!(body.contains("Signed in as Test analyst"));
    // Filters that leave nothing out and that leave everything out.
    let body = s
        .get("/catalog?classification=sensitive", Some(&session))
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains("No product matches"), "{body}");
    let r = s
        .get("/catalog/employment-agency/job_seekers", Some(&session))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    for expected in [
        "<h1>Job seekers</h1>",
        "This is one of your own products",
        "months_unemployed",
        "<svg",
        "66.7% filled",
        "Profile per column",
    ] {
        assert!(body.contains(expected), "{expected} missing from {body}");
    }
    // An analyst sees no administration link.
    assert!(!body.contains("href=\"/admin\""));
    let r = s
        .get("/catalog/employment-agency/no_such_product", Some(&session))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = s.get("/catalog/Not%20A%20Member/x", Some(&session)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn signing_out_needs_the_session_token_and_ends_the_session() {
    let s = site().await;
    let session = s.sign_in("steward", PASSWORD).await.unwrap();
    let page = s
        .get("/catalog", Some(&session))
        .await
        .text()
        .await
        .unwrap();
    let csrf = hidden(&page, "csrf");
    let cookie = format!("{}={session}", agora_web::SESSION_COOKIE);
    let forged = s
        .http
        .post(format!("{}/sign-out", s.url))
        .header("cookie", &cookie)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        s.get("/catalog", Some(&session)).await.status(),
        StatusCode::OK
    );
    let out = s
        .http
        .post(format!("{}/sign-out", s.url))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        s.get("/catalog", Some(&session)).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_disabled_user_is_signed_out_and_cannot_sign_in() {
    let s = site().await;
    let session = s.sign_in("analyst", PASSWORD).await.unwrap();
    s.node
        .disable_user("analyst", &agora_node::Accessor::command_line())
        .await
        .unwrap();
    assert_eq!(
        s.get("/catalog", Some(&session)).await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(s.sign_in("analyst", PASSWORD).await.is_err());
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let s = site().await;
    let session = s.sign_in("admin", PASSWORD).await.unwrap();
    for path in [
        "/sign-in",
        "/catalog",
        "/catalog/employment-agency/job_seekers",
    ] {
        let r = s.get(path, Some(&session)).await;
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
            "{path}: {csp}"
        );
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
    }
    let css = s.get("/assets/agora.css", None).await;
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}

impl Site {
    async fn post(&self, path: &str, session: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header("cookie", format!("{}={session}", agora_web::SESSION_COOKIE))
            .form(form)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn an_analyst_runs_sql_pages_through_results_and_downloads_them() {
    let s = site().await;
    let session = s.sign_in("analyst", PASSWORD).await.unwrap();
    let page = s.get("/query", Some(&session)).await.text().await.unwrap();
    let csrf = hidden(&page, "csrf");
    let sql = "SELECT n, label FROM numbers ORDER BY n";
    let r = s
        .post(
            "/query",
            &session,
            &[("csrf", &csrf), ("sql", sql), ("action", "run")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(body.contains("Rows 1 to 50 (more follow)"), "{body}");
    // Numbers are right-aligned (their column and cells are marked as numbers), text is not.
    assert!(
        body.contains("<th scope=\"col\" class=\"num\">n</th>")
            && body.contains("<td class=\"num\">50</td>"),
        "{body}"
    );
    assert!(body.contains("<td>row 50</td>") && !body.contains("<td>row 51</td>"));
    let r = s
        .post(
            "/query",
            &session,
            &[
                ("csrf", &csrf),
                ("sql", sql),
                ("page", "3"),
                ("action", "run"),
            ],
        )
        .await;
    let body = r.text().await.unwrap();
    assert!(body.contains("Rows 101 to 120."), "{body}");
    assert!(body.contains("<td>row 120</td>") && body.contains("Previous page"));
    assert!(!body.contains("Next page"));
    // Nulls are told in words, not left blank.
    let body = s
        .post(
            "/query",
            &session,
            &[
                ("csrf", &csrf),
                (
                    "sql",
                    "SELECT months_unemployed FROM job_seekers WHERE municipality = 'Southmoor'",
                ),
                ("action", "run"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains(">empty<"), "{body}");
    // Downloads are attachments of the whole result.
    let r = s
        .post(
            "/query",
            &session,
            &[("csrf", &csrf), ("sql", sql), ("action", "csv")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("query-result.csv")
    );
    let csv = r.text().await.unwrap();
    assert_eq!(csv.lines().count(), 121, "{csv}");
    assert!(csv.starts_with("n,label"));
}

#[tokio::test]
async fn a_bad_query_is_told_next_to_the_sql_and_nothing_runs_without_the_form_token() {
    let s = site().await;
    let session = s.sign_in("analyst", PASSWORD).await.unwrap();
    let page = s.get("/query", Some(&session)).await.text().await.unwrap();
    let csrf = hidden(&page, "csrf");
    let r = s
        .post(
            "/query",
            &session,
            &[("csrf", &csrf), ("sql", "SELECT nope FROM numbers")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("href=\"#sql\"") && body.contains("nope"),
        "{body}"
    );
    // The SQL stays in the box to be corrected.
    assert!(
        body.contains(">SELECT nope FROM numbers</textarea>"),
        "{body}"
    );
    for sql in ["", "DROP TABLE numbers"] {
        let r = s
            .post("/query", &session, &[("csrf", &csrf), ("sql", sql)])
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{sql}");
    }
    let r = s
        .post(
            "/query",
            &session,
            &[("csrf", "forged"), ("sql", "SELECT 1")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Without a session, the form sends people to sign in and runs nothing.
    let r = s
        .http
        .post(format!("{}/query", s.url))
        .form(&[("csrf", csrf.as_str()), ("sql", "SELECT 1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_web_query_is_in_the_access_log_the_administrator_reads() {
    let s = site().await;
    let session = s.sign_in("analyst", PASSWORD).await.unwrap();
    let page = s.get("/query", Some(&session)).await.text().await.unwrap();
    let csrf = hidden(&page, "csrf");
    let r = s
        .post(
            "/query",
            &session,
            &[
                ("csrf", &csrf),
                ("sql", "SELECT n FROM numbers WHERE n <= 7"),
                ("action", "run"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let _ = r.text().await.unwrap();
    // The answer's end is recorded as it is written: wait for it.
    let mut body = String::new();
    let admin = s.sign_in("admin", PASSWORD).await.unwrap();
    for _ in 0..100 {
        body = s.get("/admin", Some(&admin)).await.text().await.unwrap();
        if body.contains("answered") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        body.contains("Recent data accesses")
            && body.contains("user:analyst")
            && body.contains("<td>numbers</td>")
            && body.contains("<td class=\"num\">7</td>")
            && body.contains("answered"),
        "{body}"
    );
}

#[tokio::test]
async fn administration_is_for_administrators_only() {
    let s = site().await;
    for user in ["analyst", "steward"] {
        let session = s.sign_in(user, PASSWORD).await.unwrap();
        let r = s.get("/admin", Some(&session)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{user}");
        let catalog = s
            .get("/catalog", Some(&session))
            .await
            .text()
            .await
            .unwrap();
        assert!(!catalog.contains("href=\"/admin\""), "{user} sees the link");
    }
    let session = s.sign_in("admin", PASSWORD).await.unwrap();
    let r = s.get("/admin", Some(&session)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("Node health") && body.contains("working"),
        "{body}"
    );
    // This node has not joined an ecosystem, and says how to.
    assert!(body.contains("not enrolled in an ecosystem") && body.contains("agora node enroll"));
    assert!(
        body.contains("href=\"/admin\" aria-current=\"page\""),
        "{body}"
    );
    assert_eq!(s.get("/admin", None).await.status(), StatusCode::SEE_OTHER);
}

/// Every route of the interface, with what each role gets: (method, path, form,
/// [anonymous, analyst, steward, admin]). The catalog's own product cannot be requested
/// (400); an unknown negotiation is 404 to those allowed to act on it and 403 to others.
/// One route: method, path, form fields, and the status for each of the four viewers.
type Route = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    [u16; 4],
);

const ROUTES: &[Route] = &[
    ("GET", "/", &[], [303, 303, 303, 303]),
    ("GET", "/sign-in", &[], [200, 303, 303, 303]),
    ("GET", "/assets/agora.css", &[], [200, 200, 200, 200]),
    ("GET", "/catalog", &[], [303, 200, 200, 200]),
    (
        "GET",
        "/catalog?q=job&theme=economy&page=2",
        &[],
        [303, 200, 200, 200],
    ),
    (
        "GET",
        "/catalog/employment-agency/job_seekers",
        &[],
        [303, 200, 200, 200],
    ),
    (
        "GET",
        "/catalog/employment-agency/nothing",
        &[],
        [303, 404, 404, 404],
    ),
    (
        "GET",
        "/catalog/Not%20A%20Member/x",
        &[],
        [303, 404, 404, 404],
    ),
    (
        "GET",
        "/catalog/employment-agency/job_seekers/request",
        &[],
        [303, 400, 400, 400],
    ),
    (
        "GET",
        "/catalog/tax-office/annual_income/request",
        &[],
        [303, 404, 404, 404],
    ),
    (
        "POST",
        "/catalog/employment-agency/job_seekers/request",
        &[],
        [303, 400, 400, 400],
    ),
    ("GET", "/requests", &[], [303, 200, 200, 200]),
    (
        "GET",
        "/requests?state=FINALIZED",
        &[],
        [303, 200, 200, 200],
    ),
    (
        "GET",
        "/requests/no-such-id?side=consumer",
        &[],
        [303, 404, 404, 404],
    ),
    (
        "GET",
        "/requests/no-such-id/odrl?side=provider",
        &[],
        [303, 404, 404, 404],
    ),
    (
        "GET",
        "/requests/no-such-id/offer",
        &[],
        [303, 403, 404, 404],
    ),
    (
        "POST",
        "/requests/no-such-id/offer",
        &[("mode", "records")],
        [303, 403, 404, 404],
    ),
    (
        "POST",
        "/requests/no-such-id/approve",
        &[("side", "provider")],
        [303, 403, 404, 404],
    ),
    (
        "POST",
        "/requests/no-such-id/accept",
        &[("side", "consumer")],
        [303, 403, 404, 404],
    ),
    (
        "POST",
        "/requests/no-such-id/end",
        &[("reason", "done")],
        [303, 403, 404, 404],
    ),
    ("GET", "/query", &[], [303, 200, 200, 200]),
    (
        "POST",
        "/query",
        &[("sql", "SELECT 1")],
        [303, 200, 200, 200],
    ),
    ("GET", "/admin", &[], [303, 403, 403, 200]),
    // The audit pages are for auditors and administrators.
    ("GET", "/audit", &[], [303, 403, 403, 200]),
    (
        "GET",
        "/audit?kind=user&from=2020-01-01",
        &[],
        [303, 403, 403, 200],
    ),
    ("GET", "/audit?from=yesterday", &[], [303, 403, 403, 422]),
    ("GET", "/audit/export.csv", &[], [303, 403, 403, 200]),
    ("GET", "/audit/export.json", &[], [303, 403, 403, 200]),
    ("GET", "/audit/entries/0", &[], [303, 403, 403, 200]),
    ("GET", "/audit/entries/999999", &[], [303, 403, 403, 404]),
    ("GET", "/audit/entries/x", &[], [303, 403, 403, 404]),
    // Publishing, like registering through the API, is for stewards and up.
    ("GET", "/publish", &[], [303, 403, 200, 200]),
    (
        "POST",
        "/publish",
        &[("step", "inspect"), ("location", "")],
        [303, 403, 422, 422],
    ),
    ("GET", "/publish/no-such-job", &[], [303, 404, 404, 404]),
    ("GET", "/no-such-page", &[], [404, 404, 404, 404]),
];

#[tokio::test]
async fn a_steward_publishes_a_file_checked_as_registration_checks_it() {
    let s = site().await;
    let session = s.sign_in("steward", PASSWORD).await.unwrap();
    let page = s
        .get("/publish", Some(&session))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Where is the data?"), "{page}");
    let csrf = hidden(&page, "csrf");
    let file = s._dir.path().join("inbox").join("openings.csv");
    std::fs::write(
        &file,
        "person_id;municipality;hours\n10000000009;Northport;38\n10000000017;Southmoor;20\n",
    )
    .unwrap();
    let location = file.display().to_string();
    let step1 = |location: &str, delimiter: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("step", "inspect".to_owned()),
            ("location", location.to_owned()),
            ("delimiter", delimiter.to_owned()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let session = session.clone();
        let s = &s;
        async move {
            let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = s.post("/publish", &session, &form).await;
            (r.status(), r.headers().clone(), r.text().await.unwrap())
        }
    };
    // Outside the allowed folders, and a file whose delimiter was not given.
    let (status, _, body) = post(step1("/etc/hosts", "")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("outside the folders"), "{body}");
    let (status, _, body) = post(step1(&location, "")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("--delimiter &#39;;&#39;") || body.contains("--delimiter ';'"),
        "{body}"
    );
    // With it: the columns and a role for each.
    let (status, _, body) = post(step1(&location, ";")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Found 3 columns"), "{body}");
    assert!(body.contains("name=\"role:person_id\""), "{body}");
    assert!(body.contains("whole number"), "types in words: {body}");
    // Personal data without a legal basis is refused at the field, as registration would.
    let mut step2 = step1(&location, ";");
    step2[1].1 = "publish".into();
    step2.extend([
        ("name", "openings".to_owned()),
        ("title", "Open positions".to_owned()),
        ("classification", "personal".to_owned()),
        ("keywords", "vacancies, hours".to_owned()),
        ("purpose", "job_matching".to_owned()),
        ("role:person_id", "subject_id".to_owned()),
        ("role:municipality", "quasi_identifier".to_owned()),
    ]);
    let (status, _, body) = post(step2.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("must state a legal basis") && body.contains("href=\"#legal_basis\""),
        "{body}"
    );
    step2.push(("legal_basis", "Employment Services Act".to_owned()));
    let (status, headers, body) = post(step2).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let progress = headers[LOCATION].to_str().unwrap().to_owned();
    assert!(progress.starts_with("/publish/"));
    // The progress page until the profile is done.
    let mut page = String::new();
    for _ in 0..200 {
        page = s.get(&progress, Some(&session)).await.text().await.unwrap();
        if page.contains("Published") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        page.contains("Published") && page.contains("/catalog/employment-agency/openings"),
        "{page}"
    );
    let p = s.node.product("openings").await.unwrap();
    assert_eq!(p.metadata.title, "Open positions");
    assert_eq!(p.metadata.keywords, ["vacancies", "hours"]);
    assert_eq!(
        p.metadata.role_of("person_id"),
        agora_model::ColumnRole::SubjectId
    );
    assert_eq!(p.profile.row_count, 2);
    // Someone else's publication is not theirs to follow.
    let admin = s.sign_in("admin", PASSWORD).await.unwrap();
    assert_eq!(
        s.get(&progress, Some(&admin)).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn every_route_gives_each_role_what_the_api_would() {
    let s = site().await;
    let mut sessions = vec![None];
    for user in ["analyst", "steward", "admin"] {
        let session = s.sign_in(user, PASSWORD).await.unwrap();
        let page = s
            .get("/catalog", Some(&session))
            .await
            .text()
            .await
            .unwrap();
        sessions.push(Some((session, hidden(&page, "csrf"))));
    }
    let mut wrong = Vec::new();
    for (method, path, form, expected) in ROUTES {
        for (who, session) in sessions.iter().enumerate() {
            let url = format!("{}{path}", s.url);
            let mut fields: Vec<(&str, &str)> = form.to_vec();
            let mut r = match *method {
                "GET" => s.http.get(&url),
                _ => {
                    if let Some((_, csrf)) = session {
                        fields.push(("csrf", csrf));
                    }
                    s.http.post(&url).form(&fields)
                }
            };
            if let Some((cookie, _)) = session {
                r = r.header("cookie", format!("{}={cookie}", agora_web::SESSION_COOKIE));
            }
            let got = r.send().await.unwrap().status().as_u16();
            if got != expected[who] {
                wrong.push(format!(
                    "{method} {path} as {}: {got}, expected {}",
                    ["anonymous", "analyst", "steward", "admin"][who],
                    expected[who]
                ));
            }
            // Without the form's token, no signed-in POST does anything.
            if *method == "POST"
                && let Some((cookie, _)) = session
            {
                let got = s
                    .http
                    .post(&url)
                    .header("cookie", format!("{}={cookie}", agora_web::SESSION_COOKIE))
                    .form(form)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                if got != 403 {
                    wrong.push(format!(
                        "{method} {path} without a token: {got}, expected 403"
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Regression: a signed-in auditor opens no page of data or of changes (deny by default:
/// the session lets an auditor through to the pages of records only).
#[tokio::test]
async fn an_auditor_opens_no_page_of_data() {
    let s = site().await;
    let session = s.sign_in("auditor", PASSWORD).await.unwrap();
    let mut wrong = Vec::new();
    for (method, path, form, _) in ROUTES {
        if [
            "/",
            "/sign-in",
            "/sign-out",
            "/assets/agora.css",
            "/no-such-page",
        ]
        .contains(path)
            || path.starts_with("/audit")
        {
            continue;
        }
        let url = format!("{}{path}", s.url);
        let r = match *method {
            "GET" => s.http.get(&url),
            _ => s.http.post(&url).form(form),
        };
        let r = r
            .header("cookie", format!("{}={session}", agora_web::SESSION_COOKIE))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let page = r.text().await.unwrap();
        if status != 403 || !page.contains("Auditors read records, not data") {
            wrong.push(format!("{method} {path}: {status}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The auditor's journey: the start page is the audit log; it filters by kind and time
/// (a date that is not one is told next to its field), opens an entry with what it records,
/// and exports the same list as CSV and JSON, each entry naming who acted.
#[tokio::test]
async fn an_auditor_filters_the_log_opens_an_entry_and_exports_it() {
    let s = site().await;
    let session = s.sign_in("auditor", PASSWORD).await.unwrap();
    let home = s.get("/", Some(&session)).await;
    assert_eq!(home.status(), StatusCode::SEE_OTHER);
    assert_eq!(home.headers()[LOCATION], "/audit");

    let page = s.get("/audit?kind=user", Some(&session)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(
        page.contains(r#"href="/audit" aria-current="page""#),
        "{page}"
    );
    assert!(
        !page.contains(r#"href="/catalog""#) && !page.contains(r#"href="/query""#),
        "an auditor's navigation offers no page of data"
    );
    for user in ["analyst", "steward", "admin", "auditor"] {
        assert!(page.contains(&format!("user:{user}")), "{user} in {page}");
    }
    assert!(!page.contains("token:"), "the kind filter holds");
    assert!(page.contains("cli:"), "user changes name who made them");

    let bad = s.get("/audit?from=2026-02-30", Some(&session)).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad = bad.text().await.unwrap();
    assert!(bad.contains("<title>Error: Audit"));
    assert!(bad.contains(r##"href="#from""##) && bad.contains("must be a real date"));

    let future = s.get("/audit?from=2999-01-01", Some(&session)).await;
    assert!(future.text().await.unwrap().contains("No entry matches."));

    let link = page
        .split(r#"href="/audit/entries/"#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let entry = s
        .get(&format!("/audit/entries/{link}"), Some(&session))
        .await;
    assert_eq!(entry.status(), StatusCode::OK);
    let entry = entry.text().await.unwrap();
    assert!(
        entry.contains(&format!("<h1>Log entry {link}</h1>")),
        "{entry}"
    );
    assert!(
        entry.contains("No checkpoint holds this entry yet"),
        "unenrolled"
    );

    let csv = s.get("/audit/export.csv?kind=user", Some(&session)).await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("index,at,kind,reference,actor")
    );
    assert_eq!(lines.count(), 4, "{csv}");

    let json: Vec<serde_json::Value> = s
        .get("/audit/export.json?kind=user", Some(&session))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json.len(), 4);
    assert!(json.iter().all(|e| e["entry"]["kind"] == "user"
        && e["entry"]["actor"].as_str().unwrap().starts_with("cli:")));
}
