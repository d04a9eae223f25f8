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
