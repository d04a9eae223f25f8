//! Store tests. Every case runs on SQLite, and also on PostgreSQL when
//! `AGORA_TEST_POSTGRES_URL` is set (each case then gets its own schema).

mod tlog;

use agora_model::ApiRole;
use agora_model::{
    Classification, ColumnAnnotation, ColumnProfile, ColumnRole, ColumnSchema, DataSource,
    MemberId, PageRequest, Product, ProductMetadata, ProductName, ProductProfile, SourceFormat,
    Theme,
};
use agora_store::{Backend, SearchScope, Store, StoreError};
use chrono::Utc;

struct TestStore {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    cleanup: Option<(String, String)>,
}

async fn raw_execute(url: &str, sql: String) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

impl TestStore {
    async fn drop_schema(self) {
        self.store.close().await;
        if let Some((url, schema)) = self.cleanup {
            raw_execute(&url, format!("DROP SCHEMA {schema} CASCADE")).await;
        }
    }
}

/// SQLite always; PostgreSQL too when configured.
async fn stores() -> Vec<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open_in_dir(dir.path()).await.unwrap();
    assert_eq!(sqlite.backend(), Backend::Sqlite);
    let mut v = vec![TestStore {
        store: sqlite,
        _dir: Some(dir),
        cleanup: None,
    }];
    if let Ok(url) = std::env::var("AGORA_TEST_POSTGRES_URL") {
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        raw_execute(&url, format!("CREATE SCHEMA {schema}")).await;
        let sep = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{sep}options=-c%20search_path%3D{schema}");
        let pg = Store::open(&scoped).await.unwrap();
        assert_eq!(pg.backend(), Backend::Postgres);
        v.push(TestStore {
            store: pg,
            _dir: None,
            cleanup: Some((url, schema)),
        });
    }
    v
}

fn product(name: &str, title: &str, keywords: &[&str]) -> Product {
    let owner = MemberId::parse("employment-agency").unwrap();
    let mut m = ProductMetadata::new(title, owner, Classification::Personal);
    m.description = format!("{title} registered with the agency");
    m.keywords = keywords.iter().map(|s| s.to_string()).collect();
    m.themes = vec![Theme::Econ];
    m.legal_basis = Some("Employment Services Act".into());
    m.columns.insert(
        "person_id".into(),
        ColumnAnnotation {
            role: ColumnRole::SubjectId,
            description: None,
        },
    );
    let now = Utc::now();
    Product {
        id: uuid::Uuid::new_v4().simple().to_string(),
        name: ProductName::parse(name).unwrap(),
        source: DataSource::new(format!("file:///data/{name}/"), SourceFormat::Parquet).unwrap(),
        schema: vec![
            ColumnSchema::new("person_id", "Utf8", false),
            ColumnSchema::new("months_unemployed", "Int32", false),
        ],
        metadata: m,
        profile: ProductProfile {
            row_count: 10,
            columns: vec![ColumnProfile {
                name: "person_id".into(),
                null_count: 0,
                distinct_estimate: 10,
                min: Some("1".into()),
                max: Some("9".into()),
                histogram: None,
            }],
            computed_at: now,
        },
        created_at: now,
        updated_at: now,
        version: 1,
    }
}

#[tokio::test]
async fn node_identity_is_set_once_with_an_admin_token() {
    for t in stores().await {
        let s = &t.store;
        assert!(s.node().await.unwrap().is_none());
        let member = MemberId::parse("tax-office").unwrap();
        let (rec, token) = s.init_node(&member, "Tax Office").await.unwrap();
        assert_eq!(rec.member_id, member);
        assert_eq!(token.info.role, ApiRole::Admin);
        assert!(token.secret.starts_with("agora_"));
        let again = s.init_node(&member, "Tax Office").await.unwrap_err();
        assert!(matches!(again, StoreError::AlreadyInitialised(_)));
        assert_eq!(s.node().await.unwrap().unwrap().name, "Tax Office");
        t.drop_schema().await;
    }
}

#[tokio::test]
async fn products_round_trip_and_names_are_unique() {
    for t in stores().await {
        let s = &t.store;
        let p = product("job_seekers", "Registered job seekers", &["unemployment"]);
        s.insert_product(&p).await.unwrap();
        let back = s.get_product("job_seekers").await.unwrap().unwrap();
        assert_eq!(back.metadata, p.metadata);
        assert_eq!(back.schema, p.schema);
        assert_eq!(back.source, p.source);
        assert_eq!(back.profile.row_count, 10);

        let mut dup = product("job_seekers", "Other", &[]);
        dup.id = "other-id".into();
        let err = s.insert_product(&dup).await.unwrap_err();
        assert!(
            matches!(err, StoreError::DuplicateProduct(ref n) if n == "job_seekers"),
            "{err}"
        );
        // The failed insert left nothing behind: still one product, and its search terms.
        assert_eq!(
            s.list_products(PageRequest::default()).await.unwrap().total,
            1
        );
        assert_eq!(
            s.search("other", PageRequest::default(), SearchScope::Local)
                .await
                .unwrap()
                .total,
            0
        );
        t.drop_schema().await;
    }
}

#[tokio::test]
async fn catalog_version_moves_with_every_catalog_change() {
    for t in stores().await {
        let s = &t.store;
        assert_eq!(s.catalog_version().await.unwrap(), 0);
        s.init_node(&MemberId::parse("tax-office").unwrap(), "Tax")
            .await
            .unwrap();
        let v0 = s.catalog_version().await.unwrap();
        let p = product("job_seekers", "Registered job seekers", &[]);
        s.insert_product(&p).await.unwrap();
        let v1 = s.catalog_version().await.unwrap();
        assert!(v1 > v0);
        // Authentication reads the same version in the same round trip.
        let tok = s
            .create_token("reader", ApiRole::Analyst, "cli:test")
            .await
            .unwrap();
        let auth = s.authenticate(&tok.secret).await.unwrap().unwrap();
        assert_eq!(auth.catalog_version, v1);
        // A failed change leaves it alone.
        assert!(s.insert_product(&p).await.is_err());
        assert_eq!(s.catalog_version().await.unwrap(), v1);
        s.update_metadata(&p.name, &p.metadata, 1).await.unwrap();
        let v2 = s.catalog_version().await.unwrap();
        assert!(v2 > v1);
        s.delete_product("job_seekers").await.unwrap();
        assert!(s.catalog_version().await.unwrap() > v2);
        t.drop_schema().await;
    }
}

#[tokio::test]
async fn listing_pages_by_name() {
    for t in stores().await {
        let s = &t.store;
        for i in 0..7 {
            s.insert_product(&product(&format!("p{i}"), &format!("Product {i}"), &[]))
                .await
                .unwrap();
        }
        let page = s
            .list_products(PageRequest::new(Some(2), Some(3)))
            .await
            .unwrap();
        assert_eq!(page.total, 7);
        assert_eq!(page.total_pages(), 3);
        let names: Vec<&str> = page.items.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["p3", "p4", "p5"]);
        let last = s
            .list_products(PageRequest::new(Some(3), Some(3)))
            .await
            .unwrap();
        assert_eq!(last.items.len(), 1);
        t.drop_schema().await;
    }
}

#[tokio::test]
async fn search_matches_every_word_by_prefix_and_ranks_titles_first() {
    for t in stores().await {
        let s = &t.store;
        s.insert_product(&product(
            "job_seekers",
            "Registered job seekers",
            &["unemployment", "skills"],
        ))
        .await
        .unwrap();
        s.insert_product(&product("annual_income", "Declared income", &["tax"]))
            .await
            .unwrap();
        let mut p = product("benefits", "Benefit payments", &["allowance"]);
        p.metadata.description = "payments to job seekers and others".into();
        p.metadata.classification = Classification::Open;
        s.insert_product(&p).await.unwrap();

        let hits = s
            .search("job seeker", PageRequest::default(), SearchScope::Local)
            .await
            .unwrap();
        let names: Vec<&str> = hits.items.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["job_seekers", "benefits"],
            "title match ranks first"
        );
        assert!(hits.items[0].score > hits.items[1].score);

        // Prefix and plural folding; all words must match.
        assert_eq!(
            s.search("unemploym", PageRequest::default(), SearchScope::Local)
                .await
                .unwrap()
                .total,
            1
        );
        assert_eq!(
            s.search("incomes", PageRequest::default(), SearchScope::Local)
                .await
                .unwrap()
                .total,
            1
        );
        assert_eq!(
            s.search("income skills", PageRequest::default(), SearchScope::Local)
                .await
                .unwrap()
                .total,
            0
        );
        // Column names and themes are searchable.
        assert_eq!(
            s.search("months", PageRequest::default(), SearchScope::Local)
                .await
                .unwrap()
                .total,
            3
        );
        assert_eq!(
            s.search("economy", PageRequest::default(), SearchScope::Local)
                .await
                .unwrap()
                .total,
            3
        );
        // Wildcards in the query are plain text, not patterns.
        assert_eq!(
            s.search("%", PageRequest::default(), SearchScope::Local)
                .await
                .unwrap()
                .total,
            3
        );
        assert_eq!(
            s.search("_x_", PageRequest::default(), SearchScope::Local)
                .await
                .unwrap()
                .total,
            0
        );
        // Paging of results.
        let p2 = s
            .search("", PageRequest::new(Some(2), Some(2)), SearchScope::Local)
            .await
            .unwrap();
        assert_eq!((p2.total, p2.items.len()), (3, 1));
        // Filters by owner and classification narrow the matches and their count.
        let filtered = |owner: Option<&str>, classification: Option<Classification>| {
            agora_store::SearchFilter {
                owner: owner.map(str::to_owned),
                classification,
            }
        };
        let open = s
            .search_filtered(
                "",
                PageRequest::default(),
                SearchScope::Local,
                &filtered(None, Some(Classification::Open)),
            )
            .await
            .unwrap();
        assert_eq!(open.total, 1);
        assert_eq!(open.items[0].name.as_str(), "benefits");
        let personal = s
            .search_filtered(
                "job seeker",
                PageRequest::default(),
                SearchScope::Local,
                &filtered(Some("employment-agency"), Some(Classification::Personal)),
            )
            .await
            .unwrap();
        let names: Vec<&str> = personal.items.iter().map(|h| h.name.as_str()).collect();
        assert_eq!((personal.total, names), (1, vec!["job_seekers"]));
        let elsewhere = s
            .search_filtered(
                "",
                PageRequest::default(),
                SearchScope::Local,
                &filtered(Some("tax-office"), None),
            )
            .await
            .unwrap();
        assert_eq!((elsewhere.total, elsewhere.items.len()), (0, 0));
        t.drop_schema().await;
    }
}

#[tokio::test]
async fn metadata_updates_are_versioned_and_reindexed() {
    for t in stores().await {
        let s = &t.store;
        let p = product("job_seekers", "Registered job seekers", &[]);
        s.insert_product(&p).await.unwrap();
        let mut m = p.metadata.clone();
        m.title = "Jobseeker register".into();
        m.classification = Classification::Sensitive;
        let updated = s.update_metadata(&p.name, &m, 1).await.unwrap();
        assert_eq!(updated.version, 2);
        assert_eq!(updated.metadata.title, "Jobseeker register");
        assert_eq!(
            s.search("jobseeker", PageRequest::default(), SearchScope::Local)
                .await
                .unwrap()
                .total,
            1
        );
        assert_eq!(
            s.search("registered", PageRequest::default(), SearchScope::Local)
                .await
                .unwrap()
                .total,
            1,
            "description still matches"
        );
        // A stale version is refused.
        let err = s.update_metadata(&p.name, &m, 1).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        let missing = ProductName::parse("nope").unwrap();
        let err = s.update_metadata(&missing, &m, 1).await.unwrap_err();
        assert!(matches!(err, StoreError::ProductNotFound(_)), "{err}");
        t.drop_schema().await;
    }
}

#[tokio::test]
async fn removal_deletes_product_and_terms() {
    for t in stores().await {
        let s = &t.store;
        s.insert_product(&product("job_seekers", "Registered job seekers", &[]))
            .await
            .unwrap();
        s.delete_product("job_seekers").await.unwrap();
        assert!(s.get_product("job_seekers").await.unwrap().is_none());
        assert_eq!(
            s.search("seekers", PageRequest::default(), SearchScope::Local)
                .await
                .unwrap()
                .total,
            0
        );
        let err = s.delete_product("job_seekers").await.unwrap_err();
        assert!(matches!(err, StoreError::ProductNotFound(_)));
        t.drop_schema().await;
    }
}

#[tokio::test]
async fn tokens_authenticate_until_revoked() {
    for t in stores().await {
        let s = &t.store;
        let tok = s
            .create_token("reporting", ApiRole::Analyst, "cli:test")
            .await
            .unwrap();
        let auth = s.authenticate(&tok.secret).await.unwrap().unwrap();
        assert_eq!(auth.token.role, ApiRole::Analyst);
        assert_eq!(auth.token.id, tok.info.id);
        assert!(s.authenticate("agora_wrong").await.unwrap().is_none());
        assert!(s.authenticate("").await.unwrap().is_none());
        let listed = s.list_tokens().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].last_used_at.is_some());
        let revoked = s.revoke_token(&tok.info.id, "cli:test").await.unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(s.authenticate(&tok.secret).await.unwrap().is_none());
        assert!(matches!(
            s.revoke_token("missing", "cli:test").await.unwrap_err(),
            StoreError::TokenNotFound(_)
        ));
        t.drop_schema().await;
    }
}

#[tokio::test]
async fn web_sessions_last_until_expiry_sign_out_password_change_or_disabling() {
    for t in stores().await {
        let s = &t.store;
        let u = s
            .create_user(
                "jdoe",
                "Jane Doe",
                ApiRole::Steward,
                "$argon2id$stub",
                "cli:test",
            )
            .await
            .unwrap();
        assert!(matches!(
            s.create_user("jdoe", "Other", ApiRole::Analyst, "x", "cli:test")
                .await
                .unwrap_err(),
            StoreError::DuplicateUser(_)
        ));
        let (found, hash) = s.user("jdoe").await.unwrap().unwrap();
        assert_eq!(
            (found.role, hash.as_str()),
            (ApiRole::Steward, "$argon2id$stub")
        );
        let later = Utc::now() + chrono::Duration::hours(1);
        // A session is found by its secret only, never by what the store keeps.
        let a = s.create_session(&u.id, later).await.unwrap();
        let seen = s.session(&a.secret).await.unwrap().unwrap();
        assert_eq!(
            (seen.user.username.as_str(), seen.csrf_token.as_str()),
            ("jdoe", a.csrf_token.as_str())
        );
        assert!(s.session("agora_s_wrong").await.unwrap().is_none());
        assert!(s.session(&a.csrf_token).await.unwrap().is_none());
        // Expired sessions are not sessions.
        let old = s
            .create_session(&u.id, Utc::now() - chrono::Duration::seconds(1))
            .await
            .unwrap();
        assert!(s.session(&old.secret).await.unwrap().is_none());
        // Signing out ends one session; a new password ends them all.
        let b = s.create_session(&u.id, later).await.unwrap();
        s.end_session(&a.secret).await.unwrap();
        assert!(s.session(&a.secret).await.unwrap().is_none());
        assert!(s.session(&b.secret).await.unwrap().is_some());
        s.set_password("jdoe", "$argon2id$new", "cli:test")
            .await
            .unwrap();
        assert!(s.session(&b.secret).await.unwrap().is_none());
        // Disabling ends sessions and is refused twice.
        let c = s.create_session(&u.id, later).await.unwrap();
        s.disable_user("jdoe", "cli:test").await.unwrap();
        assert!(s.session(&c.secret).await.unwrap().is_none());
        assert!(matches!(
            s.disable_user("jdoe", "cli:test").await.unwrap_err(),
            StoreError::UserNotFound(_)
        ));
        assert!(matches!(
            s.set_password("nobody", "x", "cli:test").await.unwrap_err(),
            StoreError::UserNotFound(_)
        ));
        assert_eq!(s.users().await.unwrap().len(), 1);
        t.drop_schema().await;
    }
}

#[tokio::test]
async fn sqlite_store_uses_wal_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open_in_dir(dir.path()).await.unwrap();
        s.insert_product(&product("job_seekers", "Registered job seekers", &[]))
            .await
            .unwrap();
        s.close().await;
    }
    // WAL mode is recorded in the database file itself.
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", dir.path().join("agora.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let mode: String = sqlx::Row::get(
        &sqlx::query("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .unwrap(),
        0,
    );
    assert_eq!(mode, "wal");
    pool.close().await;
    let s = Store::open_in_dir(dir.path()).await.unwrap();
    assert!(s.get_product("job_seekers").await.unwrap().is_some());
}

#[cfg(unix)]
#[tokio::test]
async fn store_files_are_private_to_the_nodes_user() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let s = Store::open_in_dir(&dir).await.unwrap();
    s.insert_product(&product("job_seekers", "Registered job seekers", &[]))
        .await
        .unwrap();
    assert_eq!(mode(&dir), 0o700);
    for f in ["agora.db", "agora.db-wal", "agora.db-shm"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    s.close().await;
    // A database an older version left readable by all is narrowed when opened.
    std::fs::set_permissions(dir.join("agora.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let s = Store::open_in_dir(&dir).await.unwrap();
    assert_eq!(mode(&dir.join("agora.db")), 0o600);
    s.close().await;
}

#[tokio::test]
async fn unsupported_urls_and_unwritable_places_are_named() {
    let err = Store::open("mysql://x").await.unwrap_err();
    assert!(err.to_string().contains("unsupported store URL"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open_in_dir(&file.join("sub")).await.unwrap_err();
    assert!(
        err.to_string().contains("cannot create the data directory"),
        "{err}"
    );
}

fn member(s: &str) -> MemberId {
    MemberId::parse(s).unwrap()
}

fn cert(fp: &str, m: &str) -> agora_store::IssuedCertificate {
    let now = Utc::now();
    agora_store::IssuedCertificate {
        fingerprint: fp.into(),
        serial: format!("serial-{fp}"),
        member: member(m),
        kind: agora_model::CertificateKind::Node,
        not_before: now,
        not_after: now + chrono::Duration::days(30),
        issued_at: now,
        cert_pem: "PEM".into(),
        revoked_at: None,
        revoked_reason: None,
    }
}

#[tokio::test]
async fn enrolment_tokens_work_once_and_revocation_reaches_every_certificate() {
    for t in stores().await {
        let s = &t.store;
        s.init_authority("demo", "https://127.0.0.1:7300")
            .await
            .unwrap();
        assert!(matches!(
            s.init_authority("demo", "x").await,
            Err(StoreError::AlreadyInitialised(_))
        ));
        let seq0 = s.authority().await.unwrap().unwrap().list_sequence;
        let secret = s
            .admit_member(
                &member("tax-office"),
                "Tax Office",
                chrono::Duration::hours(1),
            )
            .await
            .unwrap();
        assert_eq!(
            s.enrolment_member(&secret).await.unwrap().name,
            "Tax Office"
        );
        assert!(matches!(
            s.enrolment_member("nope").await,
            Err(StoreError::EnrolmentRefused(_))
        ));
        let ep = agora_model::Endpoints {
            exchange: Some("https://127.0.0.1:7443".into()),
        };
        s.complete_enrolment(&secret, &ep, &cert("aa", "tax-office"))
            .await
            .unwrap();
        // The token is spent: neither check nor completion accepts it again.
        let e = s.enrolment_member(&secret).await.unwrap_err();
        assert!(e.to_string().contains("already used"), "{e}");
        assert!(matches!(
            s.complete_enrolment(&secret, &ep, &cert("bb", "tax-office"))
                .await,
            Err(StoreError::EnrolmentRefused(_))
        ));
        assert!(s.issued_certificate("bb").await.unwrap().is_none());
        let m = s
            .admitted_member(&member("tax-office"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.endpoints, ep);

        s.record_certificate(&cert("cc", "tax-office"), None)
            .await
            .unwrap();
        let n = s
            .revoke_member(&member("tax-office"), "left the ecosystem")
            .await
            .unwrap();
        assert_eq!(n, 2);
        for c in s.issued_certificates().await.unwrap() {
            assert!(c.revoked_at.is_some());
            assert_eq!(c.revoked_reason.as_deref(), Some("left the ecosystem"));
        }
        assert!(matches!(
            s.revoke_member(&member("tax-office"), "again").await,
            Err(StoreError::MemberRevoked(_))
        ));
        assert!(matches!(
            s.revoke_member(&member("nobody-here"), "x").await,
            Err(StoreError::MemberNotFound(_))
        ));
        assert!(matches!(
            s.admit_member(&member("tax-office"), "Tax", chrono::Duration::hours(1))
                .await,
            Err(StoreError::MemberRevoked(_))
        ));
        // Every change moved the trust list's sequence.
        assert!(s.authority().await.unwrap().unwrap().list_sequence >= seq0 + 4);
        t.drop_schema().await;
    }
}

#[tokio::test]
async fn expired_enrolment_tokens_are_refused() {
    for t in stores().await {
        let s = &t.store;
        s.init_authority("demo", "https://a").await.unwrap();
        let secret = s
            .admit_member(&member("tax-office"), "Tax", chrono::Duration::seconds(-1))
            .await
            .unwrap();
        let e = s.enrolment_member(&secret).await.unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        t.drop_schema().await;
    }
}

fn start(nonce: &str, peer: &str) -> agora_model::ExchangeStart {
    agora_model::ExchangeStart {
        direction: agora_model::Direction::Inbound,
        peer: member(peer),
        peer_certificate: "fp".into(),
        operation: "GET /exchange/v1/offers".into(),
        nonce: nonce.into(),
        requested_at: Utc::now(),
        request_digest: "d".into(),
        request_signature: "s".into(),
    }
}

#[tokio::test]
async fn the_exchange_log_numbers_records_and_refuses_replayed_nonces() {
    for t in stores().await {
        let s = &t.store;
        let a = s
            .log_exchange(&start("n1", "tax-office"), None)
            .await
            .unwrap();
        let b = s
            .log_exchange(&start("n2", "tax-office"), None)
            .await
            .unwrap();
        assert_eq!((a, b), (1, 2));
        // Same nonce from the same peer: a replay.
        assert!(matches!(
            s.log_exchange(&start("n1", "tax-office"), None).await,
            Err(StoreError::Replay { .. })
        ));
        // The same nonce from another peer is that peer's own.
        s.log_exchange(&start("n1", "health-insurer"), None)
            .await
            .unwrap();
        s.finish_exchange(
            a,
            &agora_model::ExchangeEnd {
                response_digest: "rd".into(),
                response_signature: "rs".into(),
                outcome: "ok".into(),
                duration_ms: 3,
                rows: 10,
                bytes: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let all = s.exchanges(None, 10).await.unwrap();
        assert_eq!(all.len(), 3);
        let first = all.iter().find(|r| r.seq == a).unwrap();
        assert_eq!(
            (first.outcome.as_str(), first.rows, first.bytes),
            ("ok", 10, 100)
        );
        assert_eq!(all.iter().find(|r| r.seq == b).unwrap().outcome, "pending");
        assert_eq!(
            s.exchanges(Some(&member("health-insurer")), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        // Concurrent writers get distinct, gap-free sequence numbers.
        let mut handles = Vec::new();
        for i in 0..20 {
            let s = s.clone();
            handles.push(tokio::spawn(async move {
                s.log_exchange(&start(&format!("c{i}"), "tax-office"), None)
                    .await
                    .unwrap()
            }));
        }
        let mut seqs = Vec::new();
        for h in handles {
            seqs.push(h.await.unwrap());
        }
        seqs.sort();
        assert_eq!(seqs, (4..24).collect::<Vec<i64>>());
        t.drop_schema().await;
    }
}

/// Regression: queued exchange records are written as one statement. A replayed nonce
/// among them fails its own request only, and each completion lands on its own record.
#[tokio::test]
async fn exchange_records_written_together_keep_replays_and_completions_apart() {
    for t in stores().await {
        let s = &t.store;
        assert_eq!(
            s.log_exchange(&start("seen", "tax-office"), None)
                .await
                .unwrap(),
            1
        );
        // Sent at once, so the writer finds them queued together: ten new nonces, a replay
        // of an old one, and one nonce twice.
        let mut nonces: Vec<String> = (0..10).map(|i| format!("new{i}")).collect();
        nonces.insert(3, "seen".into());
        nonces.insert(6, "twice".into());
        nonces.push("twice".into());
        let handles: Vec<_> = nonces
            .iter()
            .map(|n| {
                let (s, n) = (s.clone(), n.clone());
                tokio::spawn(async move { s.log_exchange(&start(&n, "tax-office"), None).await })
            })
            .collect();
        let mut seqs = Vec::new();
        let mut replays = Vec::new();
        for (n, h) in nonces.iter().zip(handles) {
            match h.await.unwrap() {
                Ok(seq) => seqs.push(seq),
                Err(StoreError::Replay { nonce, .. }) => replays.push(nonce),
                Err(e) => panic!("{n}: {e}"),
            }
        }
        replays.sort();
        assert_eq!(replays, ["seen", "twice"]);
        seqs.sort();
        assert_eq!(seqs, (2..=12).collect::<Vec<i64>>());
        // Completed at once: every record gets its own end.
        let handles: Vec<_> = seqs
            .iter()
            .map(|&seq| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.finish_outbound(
                        seq,
                        &format!("cert{seq}"),
                        &agora_model::ExchangeEnd {
                            outcome: "ok".into(),
                            rows: seq * 10,
                            ..Default::default()
                        },
                    )
                    .await
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap().unwrap();
        }
        for r in s.exchanges(None, 100).await.unwrap() {
            if r.seq == 1 {
                assert_eq!((r.outcome.as_str(), r.rows), ("pending", 0));
                assert_eq!(r.peer_certificate, "fp");
            } else {
                assert_eq!((r.outcome.as_str(), r.rows), ("ok", r.seq * 10));
                assert_eq!(r.peer_certificate, format!("cert{}", r.seq));
            }
        }
        // A completed record is not completed again.
        s.finish_exchange(
            2,
            &agora_model::ExchangeEnd {
                outcome: "failed: late".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let two = s.exchanges(None, 100).await.unwrap();
        assert_eq!(two.iter().find(|r| r.seq == 2).unwrap().outcome, "ok");
        t.drop_schema().await;
    }
}

/// Two stores on one SQLite file (two processes of one node) write the exchange log
/// together: distinct, gap-free numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_number_the_exchange_log_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open_in_dir(dir.path()).await.unwrap();
    let b = Store::open_in_dir(dir.path()).await.unwrap();
    let mut handles = Vec::new();
    for i in 0..30 {
        for (name, s) in [("a", &a), ("b", &b)] {
            let s = s.clone();
            handles.push(tokio::spawn(async move {
                s.log_exchange(&start(&format!("{name}{i}"), "tax-office"), None)
                    .await
                    .unwrap()
            }));
        }
    }
    let mut seqs = Vec::new();
    for h in handles {
        seqs.push(h.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=60).collect::<Vec<i64>>());
}

/// Regression: the exchange log's writer runs on the runtime that opened the store; a
/// store used after that runtime ended still writes (a writer starts on the new one).
#[test]
fn a_store_still_writes_its_exchange_log_after_the_runtime_that_opened_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let first = tokio::runtime::Runtime::new().unwrap();
    let s = first.block_on(async {
        let s = Store::open_in_dir(dir.path()).await.unwrap();
        s.log_exchange(&start("n1", "tax-office"), None)
            .await
            .unwrap();
        s
    });
    drop(first);
    let second = tokio::runtime::Runtime::new().unwrap();
    let seq = second
        .block_on(s.log_exchange(&start("n2", "tax-office"), None))
        .unwrap();
    assert_eq!(seq, 2);
}

#[tokio::test]
async fn federated_search_covers_own_products_and_other_members_offers() {
    for t in stores().await {
        let s = &t.store;
        s.insert_product(&product(
            "job_seekers",
            "Registered job seekers",
            &["skills"],
        ))
        .await
        .unwrap();
        let mut remote = product("annual_income", "Annual taxable income", &["income"]);
        remote.metadata.owner = member("tax-office");
        let offers = vec![remote.offer()];
        s.replace_offers(&member("tax-office"), &offers, Utc::now())
            .await
            .unwrap();

        let local = s
            .search("income", PageRequest::default(), SearchScope::Local)
            .await
            .unwrap();
        assert_eq!(local.total, 0);
        let eco = s
            .search("income", PageRequest::default(), SearchScope::Ecosystem)
            .await
            .unwrap();
        assert_eq!(eco.total, 1);
        assert_eq!(eco.items[0].owner, "tax-office");
        let all = s
            .search("", PageRequest::default(), SearchScope::Ecosystem)
            .await
            .unwrap();
        assert_eq!(all.total, 2);

        // A new fetch replaces the old offers entirely.
        s.replace_offers(&member("tax-office"), &[], Utc::now())
            .await
            .unwrap();
        assert_eq!(
            s.search("income", PageRequest::default(), SearchScope::Ecosystem)
                .await
                .unwrap()
                .total,
            0
        );
        // An offer that names another owner is refused, and nothing changes.
        let mut wrong = product("x", "X", &[]).offer();
        wrong.owner = member("health-insurer");
        assert!(
            s.replace_offers(&member("tax-office"), &[wrong], Utc::now())
                .await
                .is_err()
        );
        s.record_offer_failure(&member("tax-office"), "failed: unreachable")
            .await
            .unwrap();
        let src = s.offer_sources().await.unwrap();
        assert_eq!(src[0].outcome, "failed: unreachable");
        t.drop_schema().await;
    }
}

#[test]
fn offers_never_reveal_where_data_lives_nor_extremes_of_personal_data() {
    let mut p = product("job_seekers", "Registered job seekers", &[]);
    p.profile.columns = vec![ColumnProfile {
        name: "age".into(),
        null_count: 0,
        distinct_estimate: 50,
        min: Some("16".into()),
        max: Some("99".into()),
        histogram: Some(agora_model::Histogram {
            kind: "range".into(),
            bins: [("16 – 40", 3), ("41 – 70", 40), ("71 – 99", 7)]
                .into_iter()
                .map(|(l, c)| agora_model::HistogramBin {
                    label: Some(l.into()),
                    count: Some(c),
                })
                .collect(),
        }),
    }];
    let o = p.offer();
    let text = serde_json::to_string(&o).unwrap();
    assert!(!text.contains("/data/"), "{text}");
    assert_eq!(o.profile.columns[0].max, None);
    // The shape of the spread only: no labels (they would give the extremes away), and
    // no count below the smallest group.
    let shape = o.profile.columns[0].histogram.as_ref().unwrap();
    assert!(shape.bins.iter().all(|b| b.label.is_none()));
    let counts: Vec<Option<u64>> = shape.bins.iter().map(|b| b.count).collect();
    assert_eq!(counts, [None, Some(40), Some(7)]);
    p.metadata.classification = Classification::Open;
    let open = p.offer();
    assert_eq!(open.profile.columns[0].max.as_deref(), Some("99"));
    assert_eq!(
        open.profile.columns[0].histogram.as_ref().unwrap().bins[0]
            .label
            .as_deref(),
        Some("16 – 40")
    );
}

mod negotiations {
    use super::stores;
    use agora_model::{
        AccessMode, AccessRequest, Agreement, AgreementTerms, ColumnTerm, MemberId, Negotiation,
        NegotiationEvent, NegotiationRole, NegotiationState, ProductName,
    };
    use agora_store::{PolicyDecisionRecord, StoreError};
    use chrono::{Duration, Utc};

    fn negotiation(id: &str, role: NegotiationRole) -> Negotiation {
        // The store keeps record times to the microsecond.
        let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
        Negotiation {
            id: id.into(),
            role,
            consumer: MemberId::parse("city-hospital").unwrap(),
            state: NegotiationState::Requested,
            request: AccessRequest {
                owner: MemberId::parse("employment-agency").unwrap(),
                product: ProductName::parse("job_seekers").unwrap(),
                purpose: "job_matching".into(),
                legal_basis: "public_task".into(),
                justification: "matching job seekers to vacancies".into(),
                terms: AgreementTerms {
                    columns: vec![ColumnTerm {
                        name: "skills".into(),
                        mask: None,
                    }],
                    row_filter: None,
                    mode: AccessMode::Records,
                    min_group_size: 5,
                    max_rows: None,
                    measures: vec![],
                    disclosure: None,
                    query_limits: Default::default(),
                },
                valid_from: now,
                valid_until: now + Duration::days(30),
            },
            offer: None,
            agreement: None,
            signatures: Default::default(),
            reason: None,
            created_at: now,
            updated_at: now,
            deadline: now + Duration::minutes(10),
        }
    }

    fn event(state: NegotiationState, note: &str) -> NegotiationEvent {
        NegotiationEvent {
            at: Utc::now(),
            state,
            actor: MemberId::parse("city-hospital").unwrap(),
            note: note.into(),
        }
    }

    #[tokio::test]
    async fn a_negotiation_moves_only_from_the_state_it_is_in() {
        for t in stores().await {
            let s = &t.store;
            let mut n = negotiation("neg-1", NegotiationRole::Provider);
            s.insert_negotiation(&n, &event(NegotiationState::Requested, "asked"))
                .await
                .unwrap();
            assert!(matches!(
                s.insert_negotiation(&n, &event(NegotiationState::Requested, "again"))
                    .await,
                Err(StoreError::NegotiationExists(_))
            ));
            // The other side's record of the same negotiation can live in the same store.
            let consumer_side = negotiation("neg-1", NegotiationRole::Consumer);
            s.insert_negotiation(&consumer_side, &event(NegotiationState::Requested, "sent"))
                .await
                .unwrap();

            n.state = NegotiationState::Agreed;
            n.agreement = Some(Agreement::from_request(
                n.id.clone(),
                "demo".into(),
                n.consumer.clone(),
                &n.request,
                n.request.terms.clone(),
                Utc::now(),
            ));
            n.signatures.owner = Some("c2ln".into());
            s.advance_negotiation(
                &n,
                NegotiationState::Requested,
                &event(NegotiationState::Agreed, "approved"),
            )
            .await
            .unwrap();
            // A second move from REQUESTED loses: the record is AGREED now.
            let mut late = n.clone();
            late.state = NegotiationState::Terminated;
            let err = s
                .advance_negotiation(
                    &late,
                    NegotiationState::Requested,
                    &event(NegotiationState::Terminated, "rejected"),
                )
                .await
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::NegotiationMoved { actual, .. } if actual == "AGREED"),
                "{err}"
            );
            let stored = s
                .negotiation("neg-1", NegotiationRole::Provider)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(stored, n);
            let events = s
                .negotiation_events("neg-1", NegotiationRole::Provider)
                .await
                .unwrap();
            assert_eq!(
                events.iter().map(|e| e.state).collect::<Vec<_>>(),
                [NegotiationState::Requested, NegotiationState::Agreed]
            );
            assert_eq!(events[1].note, "approved");
            assert!(matches!(
                s.advance_negotiation(
                    &negotiation("neg-404", NegotiationRole::Provider),
                    NegotiationState::Requested,
                    &event(NegotiationState::Agreed, "x"),
                )
                .await,
                Err(StoreError::NegotiationNotFound(_))
            ));
            t.drop_schema().await;
        }
    }

    #[tokio::test]
    async fn negotiations_are_listed_by_side_state_deadline_and_agreement() {
        for t in stores().await {
            let s = &t.store;
            let mut late = negotiation("neg-late", NegotiationRole::Consumer);
            late.deadline = Utc::now() - Duration::minutes(1);
            s.insert_negotiation(&late, &event(NegotiationState::Requested, "asked"))
                .await
                .unwrap();
            let mut done = negotiation("neg-done", NegotiationRole::Provider);
            done.state = NegotiationState::Finalized;
            done.deadline = Utc::now() - Duration::minutes(1);
            s.insert_negotiation(&done, &event(NegotiationState::Finalized, "imported"))
                .await
                .unwrap();
            let past = s.negotiations_past_deadline(Utc::now()).await.unwrap();
            assert_eq!(
                past.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
                ["neg-late"]
            );
            let consumers = s
                .negotiations(Some(NegotiationRole::Consumer), None, 10)
                .await
                .unwrap();
            assert_eq!(consumers.len(), 1);
            let finalized = s
                .negotiations(None, Some(NegotiationState::Finalized), 10)
                .await
                .unwrap();
            assert_eq!(finalized[0].id, "neg-done");
            let hospital = MemberId::parse("city-hospital").unwrap();
            let agreed = s
                .agreements_with(NegotiationRole::Provider, &hospital, Some("job_seekers"))
                .await
                .unwrap();
            assert_eq!(agreed.len(), 1);
            assert!(
                s.agreements_with(NegotiationRole::Provider, &hospital, Some("residents"))
                    .await
                    .unwrap()
                    .is_empty()
            );
            t.drop_schema().await;
        }
    }

    #[tokio::test]
    async fn outbox_messages_wait_until_delivered() {
        for t in stores().await {
            let s = &t.store;
            let peer = MemberId::parse("tax-office").unwrap();
            let now = Utc::now();
            let a = s
                .enqueue_message(&peer, "terminate", "{}", now)
                .await
                .unwrap();
            let b = s.enqueue_message(&peer, "agree", "{}", now).await.unwrap();
            assert_eq!(s.due_messages(now, 10).await.unwrap().len(), 2);
            s.message_failed(a, "peer unreachable", now + Duration::seconds(30))
                .await
                .unwrap();
            let due = s.due_messages(now, 10).await.unwrap();
            assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [b]);
            s.message_delivered(b).await.unwrap();
            let pending = s.pending_messages().await.unwrap();
            assert_eq!(pending.len(), 1);
            assert_eq!(pending[0].attempts, 1);
            assert_eq!(pending[0].last_error.as_deref(), Some("peer unreachable"));
            t.drop_schema().await;
        }
    }

    #[tokio::test]
    async fn policy_decisions_are_logged_in_order() {
        for t in stores().await {
            let s = &t.store;
            for (i, decision) in ["allow", "deny"].into_iter().enumerate() {
                let seq = s
                    .log_policy_decision(&PolicyDecisionRecord {
                        seq: 0,
                        at: Utc::now(),
                        principal: "Member::\"city-hospital\"".into(),
                        action: "Action::\"request\"".into(),
                        resource: "Product::\"job_seekers\"".into(),
                        decision: decision.into(),
                        policies: vec![format!("policy{i}")],
                        reasons: "because".into(),
                        context_json: "{}".into(),
                    })
                    .await
                    .unwrap();
                assert_eq!(seq, i as i64 + 1);
            }
            let log = s.policy_decisions(10).await.unwrap();
            assert_eq!(log[0].decision, "deny");
            assert_eq!(log[1].policies, ["policy0"]);
            t.drop_schema().await;
        }
    }
}

#[tokio::test]
async fn accesses_are_recorded_when_they_start_and_completed_when_they_end() {
    for t in stores().await {
        let s = &t.store;
        let access = agora_store::AccessStart {
            principal: "token:abc (reporting)".into(),
            channel: "api".into(),
            products: "jobs, \"tax-office\".annual_income".into(),
            agreements: "n-1".into(),
            sql_digest: "ab".repeat(32),
            outcome: None,
            purposes: "fraud_prevention".into(),
        };
        let id = s.begin_access(&access).await.unwrap();
        let refused = s
            .begin_access(&agora_store::AccessStart {
                principal: "user:ada".into(),
                channel: "web".into(),
                sql_digest: "cd".repeat(32),
                outcome: Some("refused: no agreement".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let log = s.accesses(10).await.unwrap();
        assert_eq!(log.len(), 2);
        let running = log.iter().find(|a| a.id == id).unwrap();
        assert_eq!(
            (running.outcome.as_str(), running.finished_at),
            ("running", None)
        );
        assert!(
            log.iter()
                .find(|a| a.id == refused)
                .unwrap()
                .finished_at
                .is_some()
        );
        s.finish_access(&id, &access, "answered", 42).await.unwrap();
        // Each write has its entry in the transparency log, durable before it returned.
        let entries = s
            .log_entries(&agora_model::EntryFilter {
                kind: Some("access".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let outcomes: Vec<&str> = entries.iter().map(|e| e.entry.outcome.as_str()).collect();
        assert_eq!(outcomes, ["answered", "refused: no agreement", "started"]);
        let finished = &entries[0].entry;
        assert_eq!(finished.reference, format!("access:{id}"));
        assert_eq!(finished.purpose.as_deref(), Some("fraud_prevention"));
        assert_eq!(finished.detail["rows"], 42);
        let done = s.accesses(10).await.unwrap();
        let done = done.iter().find(|a| a.id == id).unwrap();
        assert_eq!(
            (done.outcome.as_str(), done.rows_returned),
            ("answered", 42)
        );
        assert_eq!(done.products, "jobs, \"tax-office\".annual_income");
        assert!(done.finished_at.is_some());
        // Newest first.
        assert_eq!(s.accesses(1).await.unwrap()[0].id, refused);
        t.drop_schema().await;
    }
}
