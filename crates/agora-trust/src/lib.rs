//! Trust between members: Ed25519 keys, the ecosystem's X.509 authority, certificate
//! signing requests, the signed trust list, signed requests and responses, and TLS 1.3
//! configurations (rustls with the ring provider only).
//!
//! No network I/O and no storage: callers hand in bytes, clocks and files they chose.
//! Key files are the one exception, written here so that every key on disk gets mode 0600.

pub mod keys;
pub mod password;
pub mod pki;
pub mod secrets;
pub mod sign;
pub mod tlog;
pub mod tls;

pub use keys::{MemberKey, random_secret, verify_signature, write_private, write_public};
pub use pki::{
    CertInfo, CheckedCsr, EnrolmentToken, IssueRequest, RootCa, check_csr, inspect, make_csr,
};
pub use rustls_pki_types::CertificateDer;
pub use sign::{
    RequestSignature, RequestTarget, ResponseSignature, StreamDigest, digest_hex, sign_trust_list,
    verify_trust_list,
};
pub use tls::{ClientAuth, IdentityCell};

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{0}")]
    Key(String),
    #[error("{0}")]
    Certificate(String),
    #[error("signature refused: {0}")]
    BadSignature(String),
    #[error(
        "request refused: its timestamp is {skew_ms} ms away from this node's clock, beyond the tolerance of {tolerance_ms} ms; check both clocks (NTP)"
    )]
    ClockSkew { skew_ms: i64, tolerance_ms: i64 },
    #[error("trust list refused: {0}")]
    TrustList(String),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("cannot access {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
