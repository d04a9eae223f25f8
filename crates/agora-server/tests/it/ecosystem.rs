//! An authority over HTTPS on loopback and nodes that enrol with it, renew, fetch trust
//! lists — positive and negative cases.

use std::sync::Arc;

use agora_authority::{Authority, AuthorityConfig};
use agora_model::{Endpoints, MemberId};
use agora_node::trust::{ListStatus, TrustSettings};
use agora_node::{EnrolmentToken, Node, NodeConfig, NodeError};

pub struct TestAuthority {
    pub url: String,
    pub authority: Arc<Authority>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestAuthority {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn start_authority(configure: impl FnOnce(&mut AuthorityConfig)) -> TestAuthority {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let mut cfg = AuthorityConfig::new(dir.path());
    configure(&mut cfg);
    let authority = Arc::new(Authority::init(cfg, "test-ecosystem", &url).await.unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(agora_server::serve_authority(
        authority.clone(),
        listener,
        vec!["127.0.0.1".into()],
        async move {
            let _ = rx.await;
        },
    ));
    TestAuthority {
        url,
        authority,
        _dir: dir,
        stop: Some(tx),
    }
}

pub async fn new_node(dir: &std::path::Path, member: &str, settings: TrustSettings) -> Node {
    let mut cfg = NodeConfig::new(dir.join(member));
    cfg.trust = settings;
    let m = MemberId::parse(member).unwrap();
    Node::init(&cfg, &m, member).await.unwrap().0
}

fn endpoints(port: u16) -> Endpoints {
    Endpoints {
        exchange: Some(format!("https://127.0.0.1:{port}")),
    }
}

pub async fn admit(a: &TestAuthority, member: &str) -> EnrolmentToken {
    a.authority
        .admit(&MemberId::parse(member).unwrap(), member)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_node_enrols_with_its_own_key_and_a_token_works_once() {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let node = new_node(dir.path(), "tax-office", TrustSettings::default()).await;
    let token = admit(&a, "tax-office").await;
    let t = node.enrol(&a.url, &token, endpoints(7443)).await.unwrap();

    let m = t.material();
    assert_eq!(m.info.member().unwrap().0.as_str(), "tax-office");
    assert_eq!(m.info.ecosystem, "test-ecosystem");
    assert_eq!(m.root_info.fingerprint, a.authority.root().info.fingerprint);
    // The private key was made here and is readable by its owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.path().join("tax-office/trust/node.key");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // The authority kept no private key of the member: only the certificate.
    let issued = a.authority.certificates().await.unwrap();
    assert_eq!(issued.len(), 1);
    assert!(!issued[0].cert_pem.contains("PRIVATE KEY"));
    // The trust list names the member, its endpoint and its certificate.
    let list = t.list();
    let me = list.member(node.member()).unwrap();
    assert_eq!(me.endpoints, endpoints(7443));
    assert_eq!(me.certificates[0].fingerprint, m.info.fingerprint);

    // The same token again, from another node of the same member: refused.
    let other = new_node(
        &dir.path().join("second"),
        "tax-office",
        TrustSettings::default(),
    )
    .await;
    let e = other
        .enrol(&a.url, &token, endpoints(7444))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already used"), "{e}");
    assert!(other.trust().is_none());

    // A token made for another member: refused before anything is sent.
    let e = other
        .enrol(&a.url, &admit(&a, "health-insurer").await, endpoints(7444))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("is for member health-insurer"),
        "{e}"
    );

    // A reopened node finds its membership on disk.
    drop(t);
    let cfg = NodeConfig::new(dir.path().join("tax-office"));
    let reopened = Node::open(&cfg).await.unwrap();
    assert_eq!(
        reopened.trust().unwrap().material().info.fingerprint,
        m.info.fingerprint
    );
}

#[tokio::test]
async fn enrolment_refuses_an_authority_other_than_the_pinned_root() {
    let a = start_authority(|_| {}).await;
    let impostor = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let node = new_node(dir.path(), "tax-office", TrustSettings::default()).await;
    let token = admit(&a, "tax-office").await;
    // The right token sent to another authority (say, a spoofed address).
    let e = node
        .enrol(&impostor.url, &token, endpoints(7443))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("TLS handshake failed")
            && e.contains("not issued by this ecosystem's authority"),
        "{e}"
    );
    assert!(node.trust().is_none());
    // Garbage and expired tokens.
    assert!(
        "agora-enrol-v1:tax-office:zz"
            .parse::<EnrolmentToken>()
            .is_err()
    );
    let short = start_authority(|c| c.token_validity = chrono::Duration::seconds(-1)).await;
    let expired = admit(&short, "tax-office").await;
    let e = node
        .enrol(&short.url, &expired, endpoints(7443))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("expired"), "{e}");
}

#[tokio::test]
async fn nodes_renew_get_client_certificates_and_lose_both_when_revoked() {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let node = new_node(dir.path(), "tax-office", TrustSettings::default()).await;
    let t = node
        .enrol(&a.url, &admit(&a, "tax-office").await, endpoints(7443))
        .await
        .unwrap();
    let first = t.material().info.clone();
    assert!(!t.renewal_due(chrono::Utc::now()));
    assert!(t.renewal_due(first.not_after - chrono::Duration::days(1)));

    t.renew(None).await.unwrap();
    let second = t.material().info.clone();
    assert_ne!(first.fingerprint, second.fingerprint);
    assert_ne!(
        first.public_key, second.public_key,
        "renewal makes a fresh key"
    );
    assert_eq!(
        t.identity().current().cert[0].as_ref(),
        t.material().cert.as_ref()
    );
    let listed: Vec<String> = t
        .list()
        .member(node.member())
        .unwrap()
        .certificates
        .iter()
        .map(|c| c.fingerprint.clone())
        .collect();
    assert!(listed.contains(&second.fingerprint));

    let out = dir.path().join("client");
    let files = t.client_certificate(&out).await.unwrap();
    let pem = std::fs::read_to_string(&files.certificate).unwrap();
    let info = agora_trust::inspect(&agora_trust::pki::certs_from_pem(&pem).unwrap()[0]).unwrap();
    assert_eq!(
        info.member().unwrap().1,
        agora_model::CertificateKind::Client
    );

    a.authority
        .revoke_member(node.member(), "test")
        .await
        .unwrap();
    let e = t.renew(None).await.unwrap_err().to_string();
    assert!(e.contains("revoked"), "{e}");
    // The next trust list no longer lists the member, and says why.
    t.refresh().await.unwrap();
    assert!(t.list().member(node.member()).is_none());
    assert!(
        t.list()
            .revocations
            .iter()
            .any(|r| r.fingerprint == second.fingerprint)
    );
}

#[tokio::test]
async fn trust_lists_refresh_and_tampered_or_older_lists_are_refused() {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let node = new_node(dir.path(), "tax-office", TrustSettings::default()).await;
    let t = node
        .enrol(&a.url, &admit(&a, "tax-office").await, endpoints(7443))
        .await
        .unwrap();
    let before = t.list().sequence;
    let old = t.signed_list();
    admit(&a, "health-insurer").await;
    assert!(t.refresh().await.unwrap());
    assert!(t.list().sequence > before);
    assert!(
        t.list()
            .member(&MemberId::parse("health-insurer").unwrap())
            .is_some()
    );

    // Rollback to an older, genuinely signed list.
    let e = t.accept_list(old).unwrap_err().to_string();
    assert!(e.contains("rollback"), "{e}");
    // A tampered list.
    let mut bad = t.signed_list();
    bad.payload = bad.payload.replace("health-insurer", "health-insurez");
    let e = t.accept_list(bad).unwrap_err().to_string();
    assert!(e.contains("does not match"), "{e}");
    // The list on disk is still the last good one.
    let on_disk: agora_model::SignedTrustList = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("tax-office/trust/trust-list.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(on_disk, t.signed_list());
}

#[tokio::test]
async fn an_expired_trust_list_stops_the_node_after_the_grace_period() {
    let a = start_authority(|c| c.list_validity = chrono::Duration::seconds(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = TrustSettings {
        grace: chrono::Duration::seconds(1),
        ..Default::default()
    };
    let node = new_node(dir.path(), "tax-office", settings).await;
    let t = node
        .enrol(&a.url, &admit(&a, "tax-office").await, endpoints(7443))
        .await
        .unwrap();
    let now = chrono::Utc::now();
    assert!(matches!(t.status(now), ListStatus::Valid { .. }));
    let expires = t.list().expires_at;
    assert!(matches!(
        t.status(expires + chrono::Duration::milliseconds(500)),
        ListStatus::Grace { .. }
    ));
    let late = expires + chrono::Duration::seconds(5);
    assert!(matches!(t.status(late), ListStatus::Expired { .. }));
    let e = t.ensure_usable(late).unwrap_err();
    assert!(matches!(e, NodeError::TrustListExpired { .. }));
    assert!(e.to_string().contains("grace period"), "{e}");
}

// ---------------- exchange between nodes ----------------

pub struct Member {
    pub node: Node,
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Member {
    /// A member whose listener is run by the test itself.
    pub fn detached(node: Node, url: String) -> Self {
        Self {
            node,
            url,
            stop: None,
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A node enrolled with `a` and serving its exchange listener on an ephemeral port.
pub async fn member(a: &TestAuthority, dir: &std::path::Path, id: &str) -> Member {
    member_with(a, dir, id, TrustSettings::default()).await
}

/// [`member`] with its own trust settings.
pub async fn member_with(
    a: &TestAuthority,
    dir: &std::path::Path,
    id: &str,
    settings: TrustSettings,
) -> Member {
    let node = new_node(dir, id, settings).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    node.enrol(&a.url, &admit(a, id).await, endpoints(port))
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(agora_server::serve_exchange(
        node.clone(),
        listener,
        async move {
            let _ = rx.await;
        },
    ));
    // The list at enrolment already names the members enrolled before this one.
    node.trust().unwrap().refresh().await.unwrap();
    Member {
        node,
        url: format!("https://127.0.0.1:{port}"),
        stop: Some(tx),
    }
}

pub async fn register_csv(node: &Node, dir: &std::path::Path, name: &str, classification: &str) {
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(
        &path,
        "person_id,year,income\n10000009,2024,31000\n10000017,2024,42000\n",
    )
    .unwrap();
    let patch: agora_model::MetadataPatch = serde_json::from_value(serde_json::json!({
        "title": format!("Annual {name}"),
        "description": "taxable income per person and year",
        "keywords": ["income", "tax"],
        "classification": classification,
        "legal_basis": "Income Tax Act",
        "columns": {"person_id": {"role": "subject_id"}},
    }))
    .unwrap();
    node.register(
        agora_node::RegisterRequest {
            location: path.display().to_string(),
            name: Some(name.into()),
            metadata: patch,
            ..Default::default()
        },
        &|_| {},
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn members_find_each_others_offers_through_signed_logged_exchanges() {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let tax = member(&a, dir.path(), "tax-office").await;
    let ea = member(&a, dir.path(), "employment-agency").await;
    tax.node.trust().unwrap().refresh().await.unwrap();
    register_csv(&tax.node, dir.path(), "annual_income", "personal").await;
    register_csv(&tax.node, dir.path(), "income_statistics", "open").await;

    assert_eq!(ea.node.refresh_offers().await.unwrap(), 1);
    let hits = ea
        .node
        .search_ecosystem("income", agora_model::PageRequest::default())
        .await
        .unwrap();
    assert_eq!(hits.total, 2, "{hits:?}");
    let open = hits
        .items
        .iter()
        .find(|h| h.name.as_str() == "income_statistics")
        .unwrap();
    assert_eq!(open.owner, "tax-office");
    assert_eq!(
        open.access.as_deref(),
        Some("open: query it as \"tax-office\".income_statistics")
    );
    let personal = hits
        .items
        .iter()
        .find(|h| h.name.as_str() == "annual_income")
        .unwrap();
    assert!(
        personal
            .access
            .as_deref()
            .unwrap()
            .contains("needs a sharing agreement")
    );
    // Offers carry metadata and schema, never where the data lives.
    let offer = ea
        .node
        .offer(tax.node.member(), "annual_income")
        .await
        .unwrap()
        .unwrap();
    assert!(!serde_json::to_string(&offer).unwrap().contains(".csv"));

    // Both sides logged the exchange, with the same nonce and digests.
    let out = ea.node.store().exchanges(None, 10).await.unwrap();
    let inn = tax.node.store().exchanges(None, 10).await.unwrap();
    let o = out
        .iter()
        .find(|r| r.peer.as_str() == "tax-office")
        .unwrap();
    let i = inn.iter().find(|r| r.nonce == o.nonce).unwrap();
    assert_eq!(o.direction, agora_model::Direction::Outbound);
    assert_eq!(i.direction, agora_model::Direction::Inbound);
    assert_eq!((o.outcome.as_str(), i.outcome.as_str()), ("ok", "ok"));
    assert_eq!(o.request_digest, i.request_digest);
    assert_eq!(o.response_digest, i.response_digest);
    assert_eq!(o.request_signature, i.request_signature);
    assert_eq!(o.response_signature, i.response_signature);
    assert!(!o.response_signature.is_empty());
    assert_eq!(
        i.peer_certificate,
        ea.node.trust().unwrap().material().info.fingerprint
    );
}

#[tokio::test]
async fn a_member_admitted_after_the_others_fetched_their_list_is_accepted_at_once() {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let tax = member(&a, dir.path(), "tax-office").await;
    register_csv(&tax.node, dir.path(), "income_statistics", "open").await;
    // The agency joins after the tax office fetched its list (which does not name it) and
    // before the tax office's next scheduled refresh, a minute away.
    let ea = member(&a, dir.path(), "employment-agency").await;
    let before = tax.node.trust().unwrap().list().sequence;
    assert!(
        tax.node
            .trust()
            .unwrap()
            .list()
            .member(ea.node.member())
            .is_none()
    );
    // Its first call is admitted: the tax office fetches the list when a caller is not on
    // its copy.
    assert_eq!(ea.node.refresh_offers().await.unwrap(), 1);
    assert!(tax.node.trust().unwrap().list().sequence > before);
    // A caller still unknown after the fetch is refused, with words that say why and that
    // a member admitted moments ago need only wait.
    let list = tax.node.trust().unwrap().list();
    let stranger = agora_trust::pki::CertInfo {
        common_name: "county-hospital".into(),
        ..ea.node.trust().unwrap().material().info.clone()
    };
    let e = tax
        .node
        .admit_peer(&stranger)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not on the trust list") && e.contains("admitted or renewed moments ago"),
        "{e}"
    );
    assert_eq!(tax.node.trust().unwrap().list().sequence, list.sequence);
}

/// A raw HTTPS client holding a member's node certificate, to send what a faulty or
/// malicious peer would.
fn raw_client(m: &Member) -> reqwest::Client {
    let t = m.node.trust().unwrap();
    let cfg =
        agora_trust::tls::client_config(&t.material().root, Some(t.identity()), &[b"http/1.1"])
            .unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .build()
        .unwrap()
}

fn sign_for(
    from: &Member,
    to: &str,
    path: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> agora_trust::RequestSignature {
    let digest = agora_trust::digest_hex(b"");
    agora_trust::RequestSignature::sign(
        &from.node.trust().unwrap().material().key,
        &agora_trust::RequestTarget {
            method: "GET",
            path,
            body_digest: &digest,
        },
        from.node.member(),
        &MemberId::parse(to).unwrap(),
        at,
    )
}

/// Sends a GET with `sig` as its signature header; returns the status and error message.
async fn send_signed(
    http: &reqwest::Client,
    url: &str,
    sig: &agora_trust::RequestSignature,
) -> (u16, String) {
    let resp = http
        .get(url)
        .header(agora_trust::sign::REQUEST_HEADER, sig.header())
        .send()
        .await
        .unwrap();
    error_of(resp).await
}

async fn error_of(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap();
    (
        status,
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn unsigned_tampered_replayed_and_stale_requests_are_refused() {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let tax = member(&a, dir.path(), "tax-office").await;
    let ea = member(&a, dir.path(), "employment-agency").await;
    tax.node.trust().unwrap().refresh().await.unwrap();
    let http = raw_client(&ea);
    let url = format!("{}{}", tax.url, agora_model::paths::OFFERS);
    let header = agora_trust::sign::REQUEST_HEADER;

    // Unsigned.
    let (s, m) = error_of(http.get(&url).send().await.unwrap()).await;
    assert_eq!(s, 403);
    assert!(m.contains("must be signed"), "{m}");

    // Signed for another path (tampered).
    let sig = sign_for(&ea, "tax-office", "/exchange/v1/other", chrono::Utc::now());
    let (s, m) = send_signed(&http, &url, &sig).await;
    assert_eq!(s, 403);
    assert!(m.contains("does not match"), "{m}");

    // Addressed to another member.
    let sig = sign_for(
        &ea,
        "health-insurer",
        agora_model::paths::OFFERS,
        chrono::Utc::now(),
    );
    let (_, m) = send_signed(&http, &url, &sig).await;
    assert!(m.contains("addressed to health-insurer"), "{m}");

    // Valid once, then replayed.
    let sig = sign_for(
        &ea,
        "tax-office",
        agora_model::paths::OFFERS,
        chrono::Utc::now(),
    );
    let first = http
        .get(&url)
        .header(header, sig.header())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert!(
        first
            .headers()
            .contains_key(agora_trust::sign::RESPONSE_HEADER)
    );
    let (s, m) = send_signed(&http, &url, &sig).await;
    assert_eq!(s, 403);
    assert!(m.contains("replayed"), "{m}");

    // Clock skew beyond the tolerance.
    let sig = sign_for(
        &ea,
        "tax-office",
        agora_model::paths::OFFERS,
        chrono::Utc::now() - chrono::Duration::minutes(5),
    );
    let (s, m) = send_signed(&http, &url, &sig).await;
    assert_eq!(s, 403);
    assert!(m.contains("clock"), "{m}");

    // The refusals are in the owner's log, with their reasons.
    let log = tax.node.store().exchanges(None, 20).await.unwrap();
    assert!(
        log.iter()
            .any(|r| r.outcome.starts_with("refused:") && r.outcome.contains("clock"))
    );
}

#[tokio::test]
async fn revoked_members_and_foreign_certificates_are_refused() {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let tax = member(&a, dir.path(), "tax-office").await;
    let ea = member(&a, dir.path(), "employment-agency").await;
    tax.node.trust().unwrap().refresh().await.unwrap();
    assert_eq!(ea.node.refresh_offers().await.unwrap(), 1);

    // A member of another ecosystem, with a certificate from another root.
    let other = start_authority(|_| {}).await;
    let stranger = member(&other, &dir.path().join("other"), "employment-agency").await;
    let http = raw_client(&stranger);
    let e = http
        .get(format!("{}{}", tax.url, agora_model::paths::OFFERS))
        .send()
        .await
        .unwrap_err();
    assert!(e.is_connect() || e.is_request(), "{e:?}");

    // Revocation reaches the owner with its next trust list: the member is refused.
    a.authority
        .revoke_member(ea.node.member(), "left")
        .await
        .unwrap();
    tax.node.trust().unwrap().refresh().await.unwrap();
    ea.node.refresh_offers().await.unwrap();
    let sources = ea.node.store().offer_sources().await.unwrap();
    let s = sources
        .iter()
        .find(|s| s.member.as_str() == "tax-office")
        .unwrap();
    assert!(
        s.outcome.contains("not on the trust list") || s.outcome.contains("revoked"),
        "{}",
        s.outcome
    );

    // The revoked node learns it from its own trust list, and says so in /readyz.
    ea.node.trust().unwrap().refresh().await.unwrap();
    let why = ea
        .node
        .trust()
        .unwrap()
        .own_standing_problem()
        .expect("revoked");
    assert!(
        why.contains("revoked this node's certificate") && why.contains("left"),
        "{why}"
    );
    assert!(tax.node.trust().unwrap().own_standing_problem().is_none());
    use tower::ServiceExt;
    let app = agora_server::app(ea.node.clone(), Default::default());
    let r = app
        .oneshot(
            axum::http::Request::get("/readyz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["status"], "not_ready");
    assert!(
        body["reason"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    drop(tax);
}

#[tokio::test]
async fn an_unreachable_member_keeps_its_last_offers() {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let tax = member(&a, dir.path(), "tax-office").await;
    let ea = member(&a, dir.path(), "employment-agency").await;
    tax.node.trust().unwrap().refresh().await.unwrap();
    register_csv(&tax.node, dir.path(), "income_statistics", "open").await;
    assert_eq!(ea.node.refresh_offers().await.unwrap(), 1);
    drop(tax);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(ea.node.refresh_offers().await.unwrap(), 0);
    let src = ea.node.store().offer_sources().await.unwrap();
    assert!(src[0].outcome.contains("unreachable"), "{}", src[0].outcome);
    assert_eq!(ea.node.store().offers(None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_renewal_interrupted_between_key_and_certificate_leaves_a_working_node() {
    let a = start_authority(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let node = new_node(dir.path(), "tax-office", TrustSettings::default()).await;
    let t = node
        .enrol(&a.url, &admit(&a, "tax-office").await, endpoints(7443))
        .await
        .unwrap();
    let before = t.material().info.fingerprint.clone();
    let trust = dir.path().join("tax-office/trust");
    // What a crash right after writing the new key would leave: old key kept aside, a new
    // key in place, the old certificate.
    std::fs::copy(trust.join("node.key"), trust.join("node.key.previous")).unwrap();
    agora_trust::MemberKey::generate()
        .unwrap()
        .write(&trust.join("node.key"))
        .unwrap();
    drop(t);
    let reopened = Node::open(&NodeConfig::new(dir.path().join("tax-office")))
        .await
        .unwrap();
    let t = reopened.trust().unwrap();
    assert_eq!(t.material().info.fingerprint, before);
    assert_eq!(t.material().key.public(), t.material().info.public_key);
}
