//! Mutual TLS handshakes between real sockets with certificates made by the crate, and the
//! trust list's signature checks.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use agora_model::{
    CertificateKind, Endpoints, MemberId, SignedTrustList, TrustList, TrustedMember,
};
use agora_trust::pki::{cert_to_pem, certs_from_pem};
use agora_trust::{
    ClientAuth, IdentityCell, IssueRequest, MemberKey, RootCa, TrustError, check_csr, inspect,
    make_csr, sign_trust_list, tls, verify_trust_list,
};
use chrono::{Duration, Utc};
use rustls_pki_types::{CertificateDer, ServerName};

struct Issued {
    chain: Vec<CertificateDer<'static>>,
    key: MemberKey,
}

fn root(eco: &str) -> RootCa {
    RootCa::create(
        eco,
        Utc::now() - Duration::hours(1),
        Utc::now() + Duration::days(365),
    )
    .unwrap()
}

fn issue(ca: &RootCa, member: &str, kind: CertificateKind, valid: (i64, i64)) -> Issued {
    let key = MemberKey::generate().unwrap();
    let m = MemberId::parse(member).unwrap();
    let csr = check_csr(&make_csr(&key, &m, kind).unwrap()).unwrap();
    let req = IssueRequest::member(
        ca.ecosystem(),
        &m,
        kind,
        vec!["127.0.0.1".into(), "localhost".into()],
        Utc::now() + Duration::hours(valid.0),
        Utc::now() + Duration::hours(valid.1),
    );
    Issued {
        chain: vec![ca.issue(&csr, &req).unwrap()],
        key,
    }
}

/// Runs one handshake; returns what the server saw of the client (or the server's error)
/// and the client's result.
fn handshake(
    server_root: &RootCa,
    server: &Issued,
    client_root: &RootCa,
    client: Option<&Issued>,
) -> (Result<String, String>, Result<(), String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let scfg = tls::server_config(
        &server_root.cert_der,
        IdentityCell::new(server.chain.clone(), &server.key).unwrap(),
        ClientAuth::Required,
    )
    .unwrap();
    let srv = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(scfg)).unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        let mut buf = [0u8; 5];
        match s.read_exact(&mut buf) {
            Ok(()) => {
                let certs = s.conn.peer_certificates().unwrap_or_default();
                let info = inspect(&certs[0]).unwrap();
                s.write_all(b"world").unwrap();
                s.flush().unwrap();
                Ok(info.common_name)
            }
            Err(e) => Err(e.to_string()),
        }
    });
    let ccfg = tls::client_config(
        &client_root.cert_der,
        client.map(|c| IdentityCell::new(c.chain.clone(), &c.key).unwrap()),
        &[],
    )
    .unwrap();
    let conn = rustls::ClientConnection::new(
        Arc::new(ccfg),
        ServerName::try_from("127.0.0.1").unwrap().to_owned(),
    )
    .unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    let mut c = rustls::StreamOwned::new(conn, tcp);
    let client_result = (|| {
        c.write_all(b"hello")?;
        c.flush()?;
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf)?;
        Ok::<_, std::io::Error>(())
    })()
    .map_err(|e| e.to_string());
    drop(c);
    (srv.join().unwrap(), client_result)
}

#[test]
fn members_of_one_ecosystem_complete_a_mutual_tls_handshake() {
    let ca = root("demo");
    let owner = issue(&ca, "tax-office", CertificateKind::Node, (-1, 24));
    let client = issue(&ca, "employment-agency", CertificateKind::Client, (-1, 24));
    let (srv, cli) = handshake(&ca, &owner, &ca, Some(&client));
    assert_eq!(srv.unwrap(), "employment-agency");
    cli.unwrap();
}

#[test]
fn a_client_without_a_certificate_is_refused() {
    let ca = root("demo");
    let owner = issue(&ca, "tax-office", CertificateKind::Node, (-1, 24));
    let (srv, cli) = handshake(&ca, &owner, &ca, None);
    assert!(srv.is_err());
    assert!(cli.is_err());
}

#[test]
fn a_certificate_from_another_authority_is_refused() {
    let ca = root("demo");
    let owner = issue(&ca, "tax-office", CertificateKind::Node, (-1, 24));
    // A root of another ecosystem: no issuer of that name is trusted.
    let other = root("elsewhere");
    let intruder = issue(&other, "employment-agency", CertificateKind::Node, (-1, 24));
    let (srv, _) = handshake(&ca, &owner, &ca, Some(&intruder));
    let e = srv.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
    // A rogue root that copies the real root's name: the signature gives it away.
    let rogue = root("demo");
    let intruder = issue(&rogue, "employment-agency", CertificateKind::Node, (-1, 24));
    let (srv, _) = handshake(&ca, &owner, &ca, Some(&intruder));
    let e = srv.unwrap_err();
    assert!(e.contains("BadSignature"), "{e}");
    // And a server certificate from another authority is refused by the client.
    let fake_owner = issue(&rogue, "tax-office", CertificateKind::Node, (-1, 24));
    let client = issue(&ca, "employment-agency", CertificateKind::Node, (-1, 24));
    let (_, cli) = handshake(&rogue, &fake_owner, &ca, Some(&client));
    let e = cli.unwrap_err();
    assert!(
        e.contains("BadSignature") || e.contains("UnknownIssuer"),
        "{e}"
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let ca = root("demo");
    let owner = issue(&ca, "tax-office", CertificateKind::Node, (-1, 24));
    let expired = issue(&ca, "employment-agency", CertificateKind::Node, (-48, -24));
    let (srv, _) = handshake(&ca, &owner, &ca, Some(&expired));
    let e = srv.unwrap_err();
    assert!(e.to_lowercase().contains("expired"), "{e}");
}

#[test]
fn a_client_certificate_cannot_serve() {
    // Client certificates lack the server-auth usage: a member's laptop cannot pose as a node.
    let ca = root("demo");
    let laptop = issue(&ca, "tax-office", CertificateKind::Client, (-1, 24));
    let client = issue(&ca, "employment-agency", CertificateKind::Node, (-1, 24));
    let (_, cli) = handshake(&ca, &laptop, &ca, Some(&client));
    assert!(cli.is_err());
}

fn list(ca: &RootCa) -> TrustList {
    TrustList {
        format: TrustList::FORMAT,
        ecosystem: ca.ecosystem().into(),
        sequence: 1,
        issued_at: Utc::now(),
        expires_at: Utc::now() + Duration::hours(1),
        authority_url: "https://127.0.0.1:1".into(),
        members: vec![TrustedMember {
            id: MemberId::parse("tax-office").unwrap(),
            name: "Tax Office".into(),
            endpoints: Endpoints::default(),
            certificates: vec![],
        }],
        revocations: vec![],
    }
}

#[test]
fn trust_lists_verify_only_unchanged_and_from_their_root() {
    let ca = root("demo");
    let signed = sign_trust_list(&list(&ca), &ca);
    assert_eq!(
        verify_trust_list(&signed, &ca.info).unwrap(),
        list_with_times(&signed)
    );

    let mut tampered = signed.clone();
    tampered.payload = tampered.payload.replace("Tax Office", "Tax 0ffice");
    let e = verify_trust_list(&tampered, &ca.info).unwrap_err();
    assert!(matches!(e, TrustError::TrustList(_)));
    assert!(e.to_string().contains("does not match"), "{e}");

    let other = root("demo");
    let e = verify_trust_list(&signed, &other.info)
        .unwrap_err()
        .to_string();
    assert!(e.contains("signed by root"), "{e}");

    // Signed by another root but claiming ours.
    let mut forged = sign_trust_list(&list(&ca), &other);
    forged.signer = ca.info.fingerprint.clone();
    assert!(verify_trust_list(&forged, &ca.info).is_err());

    let mut garbage = signed.clone();
    garbage.signature = "***".into();
    assert!(verify_trust_list(&garbage, &ca.info).is_err());
}

fn list_with_times(s: &SignedTrustList) -> TrustList {
    serde_json::from_str(&s.payload).unwrap()
}

#[test]
fn certificates_round_trip_through_pem() {
    let ca = root("demo");
    let pem = ca.cert_pem();
    let back = certs_from_pem(&pem).unwrap();
    assert_eq!(back[0], ca.cert_der);
    assert_eq!(cert_to_pem(&back[0]), pem);
    assert!(certs_from_pem("nothing here").is_err());
    let e = inspect(b"not der").unwrap_err().to_string();
    assert!(e.contains("not an X.509 certificate"), "{e}");
}
