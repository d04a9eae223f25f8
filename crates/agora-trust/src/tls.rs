//! TLS 1.3 configurations (rustls, ring provider only) for mutual TLS between members.
//!
//! Chains are verified with webpki against the ecosystem's root only; whether a verified
//! certificate's member is on the current trust list (and not revoked) is checked per request
//! by the caller with [`agora_model::TrustList::standing`], so refusals can name the member and
//! the reason, and take effect on open connections as soon as the list changes.

use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::TrustError;
use crate::keys::MemberKey;

/// The one crypto provider Agora uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> TrustError {
    TrustError::Tls(format!("{what}: {e}"))
}

/// A certificate chain and its key, replaceable while connections are served (renewal).
#[derive(Debug)]
pub struct IdentityCell {
    current: RwLock<Arc<CertifiedKey>>,
}

impl IdentityCell {
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: &MemberKey,
    ) -> Result<Arc<Self>, TrustError> {
        Ok(Arc::new(Self {
            current: RwLock::new(certified(chain, key)?),
        }))
    }

    /// Replaces the certificate and key used from the next handshake on.
    pub fn replace(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: &MemberKey,
    ) -> Result<(), TrustError> {
        let ck = certified(chain, key)?;
        *self.current.write().expect("identity lock") = ck;
        Ok(())
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().expect("identity lock").clone()
    }
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: &MemberKey,
) -> Result<Arc<CertifiedKey>, TrustError> {
    let ck = CertifiedKey::from_der(chain, PrivateKeyDer::Pkcs8(key.pkcs8_der()), &provider())
        .map_err(|e| tls_error("the certificate and key do not belong together", e))?;
    Ok(Arc::new(ck))
}

impl ResolvesServerCert for IdentityCell {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for IdentityCell {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

fn roots(root: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, TrustError> {
    let mut store = RootCertStore::empty();
    store
        .add(root.clone())
        .map_err(|e| tls_error("the ecosystem root certificate is unusable", e))?;
    Ok(Arc::new(store))
}

/// Whether a server demands a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Every connection must present a certificate chaining to the root (exchange listener).
    Required,
    /// Certificates are verified when presented (the authority: enrolment has none yet).
    Optional,
}

/// A TLS 1.3 server configuration presenting `identity` and verifying clients against
/// `root`. ALPN offers HTTP/2 (gRPC, Flight) and HTTP/1.1.
pub fn server_config(
    root: &CertificateDer<'static>,
    identity: Arc<IdentityCell>,
    auth: ClientAuth,
) -> Result<ServerConfig, TrustError> {
    let builder = WebPkiClientVerifier::builder_with_provider(roots(root)?, provider());
    let verifier = match auth {
        ClientAuth::Required => builder.build(),
        ClientAuth::Optional => builder.allow_unauthenticated().build(),
    }
    .map_err(|e| tls_error("cannot build the client verifier", e))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_error("TLS 1.3 is unavailable", e))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(identity);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A TLS 1.3 client configuration trusting only the ecosystem `root`, presenting
/// `identity` when given.
pub fn client_config(
    root: &CertificateDer<'static>,
    identity: Option<Arc<IdentityCell>>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, TrustError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_error("TLS 1.3 is unavailable", e))?
        .with_root_certificates(roots(root)?);
    let mut cfg = match identity {
        Some(id) => builder.with_client_cert_resolver(id),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

/// Explains a TLS failure in plain words (for errors that name the peer and the reason).
pub fn explain(e: &rustls::Error) -> String {
    use rustls::{CertificateError, Error};
    match e {
        Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "its certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "its certificate is not valid yet".into()
            }
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "its certificate was not issued by this ecosystem's authority".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "its certificate is not valid for the address called".into()
            }
            CertificateError::Revoked => "its certificate is revoked".into(),
            other => format!("its certificate is invalid ({other:?})"),
        },
        Error::AlertReceived(a) => format!("it refused the handshake ({a:?})"),
        Error::NoCertificatesPresented => "it presented no certificate".into(),
        other => other.to_string(),
    }
}

/// Verifies a server that presents, after its own certificate, a root whose fingerprint is
/// pinned (from an enrolment token): the chain is then checked with webpki against that
/// root as usual. Used once, to enrol, before the node has the root certificate.
#[derive(Debug)]
struct PinnedRootVerifier {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedRootVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let root = intermediates
            .iter()
            .find(|c| crate::pki::fingerprint(c) == self.fingerprint)
            .ok_or(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))?;
        let mut store = RootCertStore::empty();
        store.add(root.clone().into_owned())?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(store),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        // TLS 1.2 is never negotiated (the configuration offers TLS 1.3 only).
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS 1.3 client configuration for enrolment: the server must chain to the root whose
/// SHA-256 fingerprint is `root_fingerprint`. No client certificate (the node has none yet).
pub fn pinned_client_config(root_fingerprint: &str) -> Result<ClientConfig, TrustError> {
    let provider = provider();
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_error("TLS 1.3 is unavailable", e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedRootVerifier {
            fingerprint: root_fingerprint.to_ascii_lowercase(),
            provider,
        }))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}
