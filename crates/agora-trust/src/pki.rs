//! X.509: the ecosystem's root certificate authority, certificate signing requests made by
//! the key's owner, and certificates issued to members.
//!
//! A member certificate names the member in its subject: CN = member id, O = ecosystem id,
//! OU = `node` or `client`. The authority builds every certificate from its own records;
//! of a request it uses only the public key (after checking the request's signature), so a
//! member cannot ask for a name, a CA flag or a usage it was not given.

use std::net::IpAddr;

use agora_model::{CertificateKind, MemberId};
use chrono::{DateTime, TimeZone, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use crate::TrustError;
use crate::keys::MemberKey;

/// The organisational unit of the authority's own TLS certificate.
pub const AUTHORITY_UNIT: &str = "authority";
const ROOT_UNIT: &str = "root";

/// What a certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject common name: a member id, or the authority's name.
    pub common_name: String,
    /// Subject organisation: the ecosystem id.
    pub ecosystem: String,
    /// Subject organisational unit: `node`, `client`, `authority` or `root`.
    pub unit: String,
    /// Lower-case hex serial number.
    pub serial: String,
    /// Lower-case hex SHA-256 of the DER encoding.
    pub fingerprint: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// The subject's Ed25519 public key.
    pub public_key: [u8; 32],
    pub is_ca: bool,
}

impl CertInfo {
    /// The member and kind of a member certificate.
    pub fn member(&self) -> Result<(MemberId, CertificateKind), TrustError> {
        let kind = CertificateKind::parse(&self.unit).ok_or_else(|| {
            TrustError::Certificate(format!(
                "certificate {} is a {:?} certificate, not a member's",
                self.serial, self.unit
            ))
        })?;
        let member = MemberId::parse(&self.common_name).map_err(|_| {
            TrustError::Certificate(format!(
                "certificate {} names no valid member id ({:?})",
                self.serial, self.common_name
            ))
        })?;
        Ok((member, kind))
    }
}

/// Lower-case hex SHA-256 of a certificate's DER encoding.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn to_offset(t: DateTime<Utc>) -> Result<time::OffsetDateTime, TrustError> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .map_err(|e| TrustError::Certificate(format!("validity date {t} is out of range: {e}")))
}

/// Parses a DER certificate and reads what Agora needs from it.
pub fn inspect(der: &[u8]) -> Result<CertInfo, TrustError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TrustError::Certificate(format!("not an X.509 certificate: {e}")))?;
    let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let subject = cert.subject();
    let spki = cert.public_key();
    let key_bytes: &[u8] = &spki.subject_public_key.data;
    let public_key: [u8; 32] = key_bytes.try_into().map_err(|_| {
        TrustError::Certificate(
            "the certificate's key is not an Ed25519 key; Agora members use Ed25519".into(),
        )
    })?;
    let ts = |t: i64| {
        Utc.timestamp_opt(t, 0).single().ok_or_else(|| {
            TrustError::Certificate(format!("certificate validity {t} is out of range"))
        })
    };
    Ok(CertInfo {
        common_name: first(&mut subject.iter_common_name()),
        ecosystem: first(&mut subject.iter_organization()),
        unit: first(&mut subject.iter_organizational_unit()),
        serial: hex::encode(cert.raw_serial()),
        fingerprint: fingerprint(der),
        not_before: ts(cert.validity().not_before.timestamp())?,
        not_after: ts(cert.validity().not_after.timestamp())?,
        public_key,
        is_ca: cert.is_ca(),
    })
}

/// Reads every certificate of a PEM bundle, in order.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    use rustls_pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TrustError::Certificate(format!("cannot read PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(TrustError::Certificate(
            "the PEM text holds no certificate".into(),
        ));
    }
    Ok(certs)
}

pub fn cert_to_pem(der: &[u8]) -> String {
    crate::keys::pem_encode("CERTIFICATE", der)
}

/// Makes a certificate signing request for `member`'s key. The key never leaves its owner:
/// only the request (public key, proof of possession) is sent to the authority.
pub fn make_csr(
    key: &MemberKey,
    member: &MemberId,
    kind: CertificateKind,
) -> Result<String, TrustError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, member.as_str());
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, kind.as_str());
    let csr = params
        .serialize_request(&key.rcgen()?)
        .map_err(|e| TrustError::Certificate(format!("cannot make the signing request: {e}")))?;
    csr.pem()
        .map_err(|e| TrustError::Certificate(format!("cannot encode the signing request: {e}")))
}

/// A checked certificate signing request: its signature is valid (the requester holds the
/// key) and the key is Ed25519.
pub struct CheckedCsr {
    inner: CertificateSigningRequestParams,
    pub public_key: [u8; 32],
}

pub fn check_csr(pem: &str) -> Result<CheckedCsr, TrustError> {
    let inner = CertificateSigningRequestParams::from_pem(pem).map_err(|e| {
        TrustError::Certificate(format!(
            "the certificate signing request is malformed or its signature is invalid: {e}"
        ))
    })?;
    if inner.public_key.algorithm() != &rcgen::PKCS_ED25519 {
        return Err(TrustError::Certificate(
            "the certificate signing request is not for an Ed25519 key; Agora members use Ed25519"
                .into(),
        ));
    }
    let raw: &[u8] = rcgen::PublicKeyData::der_bytes(&inner.public_key);
    let public_key: [u8; 32] = raw
        .try_into()
        .map_err(|_| TrustError::Certificate("the request's Ed25519 key is not 32 bytes".into()))?;
    Ok(CheckedCsr { inner, public_key })
}

/// What the authority certifies.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub ecosystem: String,
    pub common_name: String,
    pub unit: String,
    /// DNS names and IP addresses the certificate is valid for (TLS servers).
    pub hosts: Vec<String>,
    pub server: bool,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl IssueRequest {
    pub fn member(
        ecosystem: &str,
        member: &MemberId,
        kind: CertificateKind,
        hosts: Vec<String>,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Self {
        Self {
            ecosystem: ecosystem.to_owned(),
            common_name: member.to_string(),
            unit: kind.as_str().to_owned(),
            hosts,
            server: kind == CertificateKind::Node,
            not_before,
            not_after,
        }
    }
}

/// The ecosystem's root certificate authority.
pub struct RootCa {
    pub cert_der: CertificateDer<'static>,
    pub info: CertInfo,
    key: MemberKey,
}

impl std::fmt::Debug for RootCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCa").field("info", &self.info).finish()
    }
}

fn random_serial() -> SerialNumber {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[0] &= 0x7f; // positive
    b[0] |= 0x01; // no leading zero byte, so the encoding is exactly 16 bytes
    SerialNumber::from_slice(&b)
}

fn sans(hosts: &[String]) -> Result<Vec<SanType>, TrustError> {
    hosts
        .iter()
        .map(|h| match h.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => h
                .as_str()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| TrustError::Certificate(format!("{h:?} is not a valid host name"))),
        })
        .collect()
}

impl RootCa {
    /// Creates a new root: an Ed25519 key and a self-signed CA certificate.
    pub fn create(
        ecosystem: &str,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Result<Self, TrustError> {
        let key = MemberKey::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            format!("Agora root authority of {ecosystem}"),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, ecosystem);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, ROOT_UNIT);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        params.not_before = to_offset(not_before)?;
        params.not_after = to_offset(not_after)?;
        let cert = params
            .self_signed(&key.rcgen()?)
            .map_err(|e| TrustError::Certificate(format!("cannot create the root: {e}")))?;
        Self::load(cert.der().clone(), key)
    }

    /// Loads a root from its certificate and key, checking they belong together.
    pub fn load(cert_der: CertificateDer<'static>, key: MemberKey) -> Result<Self, TrustError> {
        let info = inspect(&cert_der)?;
        if !info.is_ca {
            return Err(TrustError::Certificate(
                "the authority certificate is not a CA certificate".into(),
            ));
        }
        if info.public_key != key.public() {
            return Err(TrustError::Certificate(
                "the authority key does not match the authority certificate".into(),
            ));
        }
        Ok(Self {
            cert_der,
            info,
            key,
        })
    }

    pub fn key(&self) -> &MemberKey {
        &self.key
    }

    pub fn ecosystem(&self) -> &str {
        &self.info.ecosystem
    }

    pub fn cert_pem(&self) -> String {
        cert_to_pem(&self.cert_der)
    }

    /// Issues a certificate for the key of a checked request.
    pub fn issue(
        &self,
        csr: &CheckedCsr,
        req: &IssueRequest,
    ) -> Result<CertificateDer<'static>, TrustError> {
        if req.ecosystem != self.info.ecosystem {
            return Err(TrustError::Certificate(format!(
                "this authority serves ecosystem {:?}, not {:?}",
                self.info.ecosystem, req.ecosystem
            )));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, req.common_name.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationName, req.ecosystem.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, req.unit.as_str());
        params.subject_alt_names = sans(&req.hosts)?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = if req.server {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        params.not_before = to_offset(req.not_before)?;
        params.not_after = to_offset(req.not_after)?;
        let signer = self.key.rcgen()?;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, signer)
            .map_err(|e| TrustError::Certificate(format!("cannot load the issuer: {e}")))?;
        let cert = params
            .signed_by(&csr.inner.public_key, &issuer)
            .map_err(|e| TrustError::Certificate(format!("cannot sign the certificate: {e}")))?;
        Ok(cert.der().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn issued_member_certificates_name_the_member_and_chain_to_the_root() {
        let ca = RootCa::create("demo", now(), now() + chrono::Duration::days(365)).unwrap();
        assert_eq!(ca.info.unit, "root");
        assert!(ca.info.is_ca);
        let key = MemberKey::generate().unwrap();
        let member = MemberId::parse("tax-office").unwrap();
        let csr = check_csr(&make_csr(&key, &member, CertificateKind::Node).unwrap()).unwrap();
        assert_eq!(csr.public_key, key.public());
        let req = IssueRequest::member(
            "demo",
            &member,
            CertificateKind::Node,
            vec!["127.0.0.1".into(), "localhost".into()],
            now(),
            now() + chrono::Duration::days(30),
        );
        let der = ca.issue(&csr, &req).unwrap();
        let info = inspect(&der).unwrap();
        assert_eq!(info.member().unwrap(), (member, CertificateKind::Node));
        assert_eq!(info.ecosystem, "demo");
        assert_eq!(info.public_key, key.public());
        assert!(!info.is_ca);
        assert_eq!(info.serial.len(), 32);
    }

    #[test]
    fn a_tampered_request_is_refused() {
        let key = MemberKey::generate().unwrap();
        let member = MemberId::parse("tax-office").unwrap();
        let pem = make_csr(&key, &member, CertificateKind::Client).unwrap();
        use rustls_pki_types::pem::PemObject;
        let mut der =
            rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec();
        let n = der.len();
        der[n - 5] ^= 0x40; // inside the signature
        let tampered = crate::keys::pem_encode("CERTIFICATE REQUEST", &der);
        let e = check_csr(&tampered).err().unwrap().to_string();
        assert!(e.contains("signature is invalid"), "{e}");
        assert!(check_csr("garbage").is_err());
    }

    #[test]
    fn root_and_key_must_match() {
        let ca = RootCa::create("demo", now(), now() + chrono::Duration::days(1)).unwrap();
        let other = MemberKey::generate().unwrap();
        let e = RootCa::load(ca.cert_der.clone(), other).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
    }
}

/// A one-time enrolment token as handed to a member's operator: the member, the secret,
/// and the fingerprint of the ecosystem's root, with which the node authenticates the
/// authority before it has the root (like a pinned CA hash).
/// Text form: `agora-enrol-v1:MEMBER:SECRET:ROOT-FINGERPRINT`.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrolmentToken {
    pub member: MemberId,
    pub secret: String,
    pub root_fingerprint: String,
}

impl std::fmt::Debug for EnrolmentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolmentToken")
            .field("member", &self.member)
            .field("root_fingerprint", &self.root_fingerprint)
            .finish_non_exhaustive()
    }
}

const TOKEN_PREFIX: &str = "agora-enrol-v1";

impl std::fmt::Display for EnrolmentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{TOKEN_PREFIX}:{}:{}:{}",
            self.member, self.secret, self.root_fingerprint
        )
    }
}

impl std::str::FromStr for EnrolmentToken {
    type Err = TrustError;
    fn from_str(s: &str) -> Result<Self, TrustError> {
        let bad = |why: &str| {
            TrustError::Certificate(format!(
                "malformed enrolment token ({why}); paste the whole token printed by `agora authority admit`"
            ))
        };
        let parts: Vec<&str> = s.trim().split(':').collect();
        let [prefix, member, secret, fp] = parts.as_slice() else {
            return Err(bad("expected four parts separated by ':'"));
        };
        if *prefix != TOKEN_PREFIX {
            return Err(bad("it does not start with agora-enrol-v1"));
        }
        let hex64 = |x: &str| x.len() == 64 && x.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex64(secret) || !hex64(fp) {
            return Err(bad(
                "the secret and the fingerprint must be 64 hex digits each",
            ));
        }
        Ok(Self {
            member: MemberId::parse(member).map_err(|_| bad("the member id is invalid"))?,
            secret: secret.to_ascii_lowercase(),
            root_fingerprint: fp.to_ascii_lowercase(),
        })
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn enrolment_tokens_round_trip_and_hide_their_secret_in_debug() {
        let t = EnrolmentToken {
            member: MemberId::parse("tax-office").unwrap(),
            secret: "ab".repeat(32),
            root_fingerprint: "cd".repeat(32),
        };
        let back: EnrolmentToken = t.to_string().parse().unwrap();
        assert_eq!(back, t);
        assert!(!format!("{t:?}").contains(&t.secret));
        for bad in ["", "agora-enrol-v1:tax-office", "x:tax-office:aa:bb"] {
            assert!(bad.parse::<EnrolmentToken>().is_err());
        }
    }
}
