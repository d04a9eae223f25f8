//! The ecosystem's trust list (X-Road calls it the global configuration) and the
//! exchange-log record: plain data, signed and verified by `agora-trust`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::MemberId;

/// What a member certificate is for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateKind {
    /// A member's node: serves and calls other nodes (TLS server and client).
    Node,
    /// A member's client tool (Flight SQL, scripts): TLS client only.
    Client,
}

impl CertificateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Client => "client",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "node" => Some(Self::Node),
            "client" => Some(Self::Client),
            _ => None,
        }
    }
}

/// Where a member's node can be reached by other members.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Endpoints {
    /// Base URL of the exchange listener (mutual TLS): signed HTTPS and Arrow Flight,
    /// e.g. `https://127.0.0.1:7443`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<String>,
}

/// A certificate the authority issued to a member, as listed in the trust list.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedCertificate {
    /// Lower-case hex SHA-256 of the certificate's DER encoding.
    pub fingerprint: String,
    /// Lower-case hex serial number.
    pub serial: String,
    pub kind: CertificateKind,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

/// A member of the ecosystem as the trust list describes it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedMember {
    pub id: MemberId,
    pub name: String,
    pub endpoints: Endpoints,
    /// Certificates currently issued and not revoked.
    pub certificates: Vec<ListedCertificate>,
}

/// A revoked certificate (or a whole member, when every certificate of it is listed).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub member: MemberId,
    pub fingerprint: String,
    pub serial: String,
    pub revoked_at: DateTime<Utc>,
    pub reason: String,
}

/// The signed statement of who belongs to an ecosystem, published by its authority.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustList {
    /// Format version of this document (currently 1).
    pub format: u32,
    pub ecosystem: String,
    /// Increases with every change; a node never goes back to a lower sequence.
    pub sequence: i64,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Base URL of the authority (enrolment, renewal, trust-list publication).
    pub authority_url: String,
    pub members: Vec<TrustedMember>,
    pub revocations: Vec<Revocation>,
}

/// How a certificate presented by a peer stands against a trust list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing<'a> {
    /// Listed for this member and not revoked.
    Trusted {
        member: &'a TrustedMember,
        certificate: &'a ListedCertificate,
    },
    Revoked(&'a Revocation),
    /// The member is not on the list at all.
    UnknownMember,
    /// The member is listed, but not with this certificate.
    UnknownCertificate {
        member: &'a TrustedMember,
    },
}

impl TrustList {
    pub const FORMAT: u32 = 1;

    pub fn member(&self, id: &MemberId) -> Option<&TrustedMember> {
        self.members.iter().find(|m| &m.id == id)
    }

    /// Looks a certificate up by the member it names and its fingerprint.
    pub fn standing(&self, member: &MemberId, fingerprint: &str) -> Standing<'_> {
        if let Some(r) = self
            .revocations
            .iter()
            .find(|r| r.fingerprint == fingerprint)
        {
            return Standing::Revoked(r);
        }
        let Some(m) = self.member(member) else {
            return Standing::UnknownMember;
        };
        match m.certificates.iter().find(|c| c.fingerprint == fingerprint) {
            Some(c) => Standing::Trusted {
                member: m,
                certificate: c,
            },
            None => Standing::UnknownCertificate { member: m },
        }
    }

    /// How far past its expiry the list is at `now` (`None` while still valid).
    pub fn expired_for(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        (now > self.expires_at).then(|| now - self.expires_at)
    }
}

/// A trust list as published: the exact JSON text that was signed, and its signature by the
/// authority's root key. Verifying the text as received avoids any canonicalisation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTrustList {
    /// The `TrustList` as JSON text.
    pub payload: String,
    /// Base64 Ed25519 signature over `agora-trust-list-v1\n` followed by the payload.
    pub signature: String,
    /// Fingerprint of the root certificate whose key signed it.
    pub signer: String,
}

/// A node's request to join: its member id, the one-time token, a certificate signing
/// request for the key it generated, and where other members reach it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolRequest {
    pub member: MemberId,
    pub token: String,
    /// PEM certificate signing request.
    pub csr: String,
    #[serde(default)]
    pub endpoints: Endpoints,
}

/// A certificate issued by the authority, with its root and the current trust list.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedBundle {
    /// PEM certificate.
    pub certificate: String,
    /// PEM root certificate of the ecosystem.
    pub root_certificate: String,
    pub trust_list: SignedTrustList,
}

/// A member's request, authenticated by its current certificate, for a further certificate:
/// a renewal of its node certificate, or a certificate for one of its client tools.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRequest {
    pub kind: CertificateKind,
    /// PEM certificate signing request.
    pub csr: String,
    /// New endpoints to publish (node renewals only; kept when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
}

/// Which side of an exchange a log record was written by.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// This node sent the request.
    Outbound,
    /// This node answered the request.
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbound => "outbound",
            Self::Inbound => "inbound",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "outbound" => Some(Self::Outbound),
            "inbound" => Some(Self::Inbound),
            _ => None,
        }
    }
}

/// One request/response between members, as both sides record it in their exchange log.
/// The format is stable (documented in ARCHITECTURE.md): a later capability chains these
/// records into a tamper-evident log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeRecord {
    /// Position in this node's log (assigned by the store, starts at 1).
    pub seq: i64,
    pub direction: Direction,
    /// The other member of the exchange.
    pub peer: MemberId,
    /// Fingerprint of the certificate the peer presented (or was expected to present).
    pub peer_certificate: String,
    /// `POST /exchange/v1/catalog`, `flight:DoGet`, `flight-sql:DoGet`, ...
    pub operation: String,
    /// The request's nonce (unique per sender) and timestamp as signed.
    pub nonce: String,
    pub requested_at: DateTime<Utc>,
    /// Hex SHA-256 of the request body / ticket.
    pub request_digest: String,
    /// Base64 Ed25519 signature of the request (empty for unsigned client calls).
    pub request_signature: String,
    /// Hex SHA-256 of the response body / stream; empty when there was none.
    pub response_digest: String,
    /// Base64 Ed25519 signature of the response; empty when there was none.
    pub response_signature: String,
    /// `ok`, or `refused: ...` / `failed: ...` with the reason.
    pub outcome: String,
    pub duration_ms: i64,
    /// Rows and bytes of data returned, where the exchange carried data.
    pub rows: i64,
    pub bytes: i64,
}

/// The part of an exchange known when the request arrives (inbound) or is sent (outbound).
#[derive(Debug, Clone)]
pub struct ExchangeStart {
    pub direction: Direction,
    pub peer: MemberId,
    pub peer_certificate: String,
    pub operation: String,
    pub nonce: String,
    pub requested_at: DateTime<Utc>,
    pub request_digest: String,
    pub request_signature: String,
}

/// How an exchange ended.
#[derive(Debug, Clone, Default)]
pub struct ExchangeEnd {
    pub response_digest: String,
    pub response_signature: String,
    pub outcome: String,
    pub duration_ms: i64,
    pub rows: i64,
    pub bytes: i64,
    /// What the answer read, for the transparency log (not a column of the exchange log).
    pub context: crate::AuditContext,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> TrustList {
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let cert = |fp: &str| ListedCertificate {
            fingerprint: fp.into(),
            serial: "01".into(),
            kind: CertificateKind::Node,
            not_before: t,
            not_after: t + chrono::Duration::days(30),
        };
        TrustList {
            format: TrustList::FORMAT,
            ecosystem: "demo".into(),
            sequence: 3,
            issued_at: t,
            expires_at: t + chrono::Duration::hours(24),
            authority_url: "https://127.0.0.1:7400".into(),
            members: vec![TrustedMember {
                id: MemberId::parse("tax-office").unwrap(),
                name: "Tax Office".into(),
                endpoints: Endpoints::default(),
                certificates: vec![cert("aa")],
            }],
            revocations: vec![Revocation {
                member: MemberId::parse("tax-office").unwrap(),
                fingerprint: "bb".into(),
                serial: "02".into(),
                revoked_at: t,
                reason: "key compromise".into(),
            }],
        }
    }

    #[test]
    fn standing_distinguishes_every_case() {
        let l = list();
        let tax = MemberId::parse("tax-office").unwrap();
        let other = MemberId::parse("other-member").unwrap();
        assert!(matches!(l.standing(&tax, "aa"), Standing::Trusted { .. }));
        assert!(matches!(l.standing(&tax, "bb"), Standing::Revoked(_)));
        assert!(matches!(
            l.standing(&tax, "cc"),
            Standing::UnknownCertificate { .. }
        ));
        assert_eq!(l.standing(&other, "aa"), Standing::UnknownMember);
    }

    #[test]
    fn hosts_come_from_https_urls_only() {
        assert_eq!(
            https_host("https://127.0.0.1:7443").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            https_host("https://node.tax.example/x").as_deref(),
            Some("node.tax.example")
        );
        assert_eq!(https_host("https://[::1]:7443").as_deref(), Some("::1"));
        assert_eq!(https_host("http://127.0.0.1:7443"), None);
        assert_eq!(https_host("https://"), None);
        assert_eq!(https_host("https://user@host"), None);
    }

    #[test]
    fn expiry_is_measured_from_expires_at() {
        let l = list();
        assert_eq!(l.expired_for(l.expires_at), None);
        assert_eq!(
            l.expired_for(l.expires_at + chrono::Duration::minutes(5)),
            Some(chrono::Duration::minutes(5))
        );
    }
}

/// The host of an `https://host:port/...` URL (IPv6 literals without brackets); `None` for
/// anything else. Member endpoints and the authority are reached over HTTPS only.
pub fn https_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') {
        return None;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?.to_owned()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_owned()
    };
    (!host.is_empty()).then_some(host)
}

/// Paths of the ecosystem protocols, shared by the servers and clients that speak them.
pub mod paths {
    /// Authority: `POST` an [`super::EnrolRequest`], get an [`super::IssuedBundle`].
    pub const ENROL: &str = "/authority/v1/enrol";
    /// Authority: `POST` a [`super::CertificateRequest`] over mutual TLS.
    pub const CERTIFICATES: &str = "/authority/v1/certificates";
    /// Authority: `GET` the current [`super::SignedTrustList`].
    pub const TRUST_LIST: &str = "/authority/v1/trust-list";
    /// Authority: `GET` the root certificate (PEM).
    pub const ROOT: &str = "/authority/v1/root";
    /// Authority: `POST` a [`super::LinkageKeyRequest`] over mutual TLS, get a
    /// [`super::LinkageKeyGrant`].
    pub const LINKAGE_KEYS: &str = "/authority/v1/linkage-keys";
    /// Authority: `POST` a [`crate::WitnessRequest`] over mutual TLS; the authority checks
    /// the member's checkpoint against the one it last witnessed and cosigns it
    /// ([`crate::WitnessReply`]), or answers 409 with the size it last witnessed.
    pub const WITNESS: &str = "/authority/v1/witness";
    /// Node exchange listener: `GET` the offers of the node's member (signed).
    pub const OFFERS: &str = "/exchange/v1/offers";
    /// Node exchange listener: `POST` a [`crate::NegotiationMessage`] (signed).
    pub const NEGOTIATIONS: &str = "/exchange/v1/negotiations";
    /// Node exchange listener: `POST` a [`crate::SubjectTagRequest`] (signed; citizen
    /// portals the node answers only): the blind evaluation of a subject's tag.
    pub const SUBJECT_TAG: &str = "/exchange/v1/subjects/tag";
    /// Node exchange listener: `POST` a [`crate::SubjectHistoryRequest`] (signed; citizen
    /// portals the node answers only): one bucket of the subject index, with its proofs.
    pub const SUBJECT_HISTORY: &str = "/exchange/v1/subjects/history";
    /// Node exchange listener: `POST` a [`crate::SubjectConsentRequest`] (signed; citizen
    /// portals the node answers only): a resident's consent for a purpose, by their tag.
    pub const SUBJECT_CONSENT: &str = "/exchange/v1/subjects/consent";
    /// Node exchange listener: `POST` a [`crate::SubjectHoldingsRequest`] (signed; citizen
    /// portals the node answers only): one bucket of the tags its products' subjects have.
    pub const SUBJECT_HOLDINGS: &str = "/exchange/v1/subjects/holdings";
    /// Node exchange listener: Arrow Flight `DoGet` with a [`super::FlightTicket`]; the
    /// request signature covers this path and the ticket's SHA-256.
    pub const FLIGHT_DO_GET: &str = "/arrow.flight.protocol.FlightService/DoGet";
    /// The protobuf `Any` type URL of a member query ticket (its value is the JSON
    /// [`super::FlightTicket`]), so the same Flight endpoint also speaks Flight SQL.
    pub const MEMBER_QUERY_TYPE_URL: &str = "type.googleapis.com/agora.v1.MemberQuery";
}

/// The ticket of a member's Flight `DoGet`: read-only SQL for the owner to run (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlightTicket {
    pub sql: String,
}

/// An owner's request for the key that makes pseudonyms for one linkage purpose and one
/// consumer (sent to the authority over mutual TLS; the authority refuses the consumer
/// itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkageKeyRequest {
    pub purpose: String,
    pub consumer: crate::MemberId,
    /// The key generation wanted; the current one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u32>,
}

/// The authority's answer: the key (64 hex digits) and its generation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkageKeyGrant {
    pub purpose: String,
    pub consumer: crate::MemberId,
    pub epoch: u32,
    pub key_hex: String,
}

impl std::fmt::Debug for LinkageKeyGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkageKeyGrant")
            .field("purpose", &self.purpose)
            .field("consumer", &self.consumer)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}
