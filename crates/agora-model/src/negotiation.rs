//! Access requests, their negotiation and the agreements they end in.
//!
//! A negotiation follows the Dataspace Protocol's contract negotiation states. The consumer
//! asks (REQUESTED); the provider may counter-offer (OFFERED), which the consumer accepts
//! (ACCEPTED) or not; the provider agrees and signs (AGREED); the consumer checks the
//! provider's signature and countersigns (VERIFIED); the provider checks that and closes it
//! (FINALIZED). Either side can end it at any point before, and revoke it after
//! (TERMINATED). The agreement document is what both members sign: its canonical bytes are
//! [`Agreement::signing_bytes`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AccessMode, AgreementTerms, MemberId, PURPOSES, ProductName};

/// Legal bases for processing personal data (GDPR article 6(1)).
pub const LEGAL_BASES: &[&str] = &[
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
];

/// The longest validity an agreement may have.
pub const MAX_VALIDITY_DAYS: i64 = 5 * 366;

/// The state of a contract negotiation (Dataspace Protocol).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NegotiationState {
    Requested,
    Offered,
    Accepted,
    Agreed,
    Verified,
    Finalized,
    Terminated,
}

impl NegotiationState {
    pub const ALL: [Self; 7] = [
        Self::Requested,
        Self::Offered,
        Self::Accepted,
        Self::Agreed,
        Self::Verified,
        Self::Finalized,
        Self::Terminated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "REQUESTED",
            Self::Offered => "OFFERED",
            Self::Accepted => "ACCEPTED",
            Self::Agreed => "AGREED",
            Self::Verified => "VERIFIED",
            Self::Finalized => "FINALIZED",
            Self::Terminated => "TERMINATED",
        }
    }

    /// The Dataspace Protocol's name of the state (`dspace:REQUESTED`, …).
    pub fn dsp(self) -> String {
        format!("dspace:{}", self.as_str())
    }

    /// No move leads out of a terminated negotiation; a finalized one can only be
    /// terminated (revoked).
    pub fn is_final(self) -> bool {
        self == Self::Terminated
    }

    /// Whether the protocol allows moving from `self` to `next`.
    pub fn can_move_to(self, next: Self) -> bool {
        use NegotiationState::*;
        match (self, next) {
            (Terminated, _) => false,
            (_, Terminated) => true,
            (Requested, Offered | Agreed) => true,
            // A consumer may answer an offer with a new request.
            (Offered, Accepted | Requested) => true,
            (Accepted, Agreed) => true,
            (Agreed, Verified) => true,
            (Verified, Finalized) => true,
            _ => false,
        }
    }
}

impl fmt::Display for NegotiationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NegotiationState {
    type Err = NegotiationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_prefix("dspace:").unwrap_or(s);
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| NegotiationError::UnknownState(s.to_owned()))
    }
}

/// Which side of a negotiation a node is on.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NegotiationRole {
    /// The member asking for data.
    Consumer,
    /// The member owning the product.
    Provider,
}

impl NegotiationRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consumer => "consumer",
            Self::Provider => "provider",
        }
    }
}

impl fmt::Display for NegotiationRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NegotiationError {
    #[error(
        "unknown negotiation state {0:?}; use one of REQUESTED, OFFERED, ACCEPTED, AGREED, VERIFIED, FINALIZED, TERMINATED"
    )]
    UnknownState(String),
    #[error("unknown purpose {0:?}; use one of the purposes vocabulary: {list}", list = PURPOSES.join(", "))]
    UnknownPurpose(String),
    #[error("unknown legal basis {0:?}; use one of {list}", list = LEGAL_BASES.join(", "))]
    UnknownLegalBasis(String),
    #[error("{}", justification_problem(*.0))]
    Justification(usize),
    #[error("the validity period is not usable: {0}")]
    Validity(String),
    #[error("a member cannot request its own product")]
    OwnProduct,
    /// The owner would not admit the request as it stands (the text says why and what would be).
    #[error("{0}")]
    NotAdmitted(String),
}

/// The shortest and longest justification of a request, in characters.
pub const MIN_JUSTIFICATION: usize = 10;
pub const MAX_JUSTIFICATION: usize = 4000;

/// What is wrong with a justification of `chars` characters.
fn justification_problem(chars: usize) -> String {
    match chars {
        0 => format!(
            "the request needs a justification: say in a sentence or more why the data is needed (at least {MIN_JUSTIFICATION} characters)"
        ),
        n if n < MIN_JUSTIFICATION => format!(
            "the justification is too short ({n} characters): say in a sentence or more why the data is needed (at least {MIN_JUSTIFICATION})"
        ),
        n => format!(
            "the justification is too long ({n} characters): keep it to at most {MAX_JUSTIFICATION}"
        ),
    }
}

/// What a consumer asks for: one product, for one purpose, under proposed terms.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRequest {
    pub owner: MemberId,
    pub product: ProductName,
    /// From the purposes vocabulary ([`PURPOSES`]).
    pub purpose: String,
    /// From [`LEGAL_BASES`].
    pub legal_basis: String,
    /// Why the consumer needs the data, in its own words.
    pub justification: String,
    pub terms: AgreementTerms,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
}

impl AccessRequest {
    /// Checks what can be checked without the product: vocabulary, justification,
    /// validity period. The terms are checked against the product by its owner.
    pub fn validate(
        &self,
        consumer: &MemberId,
        now: DateTime<Utc>,
    ) -> Result<(), NegotiationError> {
        if &self.owner == consumer {
            return Err(NegotiationError::OwnProduct);
        }
        if !PURPOSES.contains(&self.purpose.as_str()) {
            return Err(NegotiationError::UnknownPurpose(self.purpose.clone()));
        }
        if !LEGAL_BASES.contains(&self.legal_basis.as_str()) {
            return Err(NegotiationError::UnknownLegalBasis(
                self.legal_basis.clone(),
            ));
        }
        let j = self.justification.trim().chars().count();
        if !(MIN_JUSTIFICATION..=MAX_JUSTIFICATION).contains(&j) {
            return Err(NegotiationError::Justification(j));
        }
        validate_validity(self.valid_from, self.valid_until, now)
    }
}

fn validate_validity(
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), NegotiationError> {
    if until <= from {
        return Err(NegotiationError::Validity(
            "it must end after it starts".into(),
        ));
    }
    if until <= now {
        return Err(NegotiationError::Validity("it has already ended".into()));
    }
    if (until - from).num_days() > MAX_VALIDITY_DAYS {
        return Err(NegotiationError::Validity(format!(
            "an agreement may last at most {} years; request a renewal later",
            MAX_VALIDITY_DAYS / 366
        )));
    }
    Ok(())
}

/// The document both members sign: who shares what with whom, why, and how.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    /// The negotiation's id, which is also the agreement's.
    pub id: String,
    /// The ecosystem both members belong to.
    pub ecosystem: String,
    pub owner: MemberId,
    pub consumer: MemberId,
    pub product: ProductName,
    pub purpose: String,
    pub legal_basis: String,
    pub justification: String,
    pub terms: AgreementTerms,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    /// When the owner agreed.
    pub agreed_at: DateTime<Utc>,
    /// The generation of the ecosystem's linkage keys the pseudonyms are made with (set
    /// when the terms share pseudonyms; see ARCHITECTURE.md, key management).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linkage_epoch: Option<u32>,
    /// The agreement this one replaces, for the same consumer, product and purpose, by the
    /// owner's steward's explicit decision (it is revoked once this one is in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
}

impl Agreement {
    /// One line on what a query read under this agreement, e.g. `agreement 0193… —
    /// "tax-office".annual_income for fraud_prevention (linkage), until 2027-12-01`.
    pub fn read_line(&self) -> String {
        format!(
            "agreement {} — \"{}\".{} for {} ({}), until {}",
            self.id,
            self.owner,
            self.product,
            self.purpose,
            self.terms.mode,
            self.valid_until.format("%Y-%m-%d")
        )
    }

    /// For an aggregate agreement, what its disclosure control does to an answer, in
    /// words. How many groups were withheld is not said: with the consumer's own filters,
    /// that count would tell whether a group of fewer than k subjects exists.
    pub fn disclosure_notice(&self) -> Option<String> {
        if self.terms.mode != crate::AccessMode::Aggregate {
            return None;
        }
        let dominance = self
            .terms
            .disclosure
            .as_ref()
            .map(|d| format!("; {}", d.dominance.describe()))
            .unwrap_or_default();
        Some(format!(
            "\"{}\".{} is answered in aggregate only: groups of fewer than {} people are withheld{dominance}; \
             the figures shown carry small noise. An empty answer means no group reached the threshold \
             or none matched (how many groups were withheld is not said: that would tell whether small groups exist)",
            self.owner, self.product, self.terms.min_group_size
        ))
    }
}

/// Which of a consumer's agreements in force on one product applies to its queries: per
/// purpose, the first agreed, unless a later one explicitly supersedes it (and so on down
/// the chain) — a later agreement for the same purpose that supersedes nothing changes
/// nothing served; across purposes, the most recently agreed of those.
pub fn applicable_agreement<'a>(
    in_force: impl IntoIterator<Item = &'a Agreement>,
) -> Option<&'a Agreement> {
    let mut all: Vec<&Agreement> = in_force.into_iter().collect();
    all.sort_by(|a, b| a.agreed_at.cmp(&b.agreed_at).then_with(|| a.id.cmp(&b.id)));
    let mut per_purpose: Vec<&Agreement> = Vec::new();
    for a in all {
        match per_purpose.iter_mut().find(|c| c.purpose == a.purpose) {
            None => per_purpose.push(a),
            Some(current) => {
                if a.supersedes.as_deref() == Some(current.id.as_str()) {
                    *current = a;
                }
            }
        }
    }
    per_purpose
        .into_iter()
        .max_by(|a, b| a.agreed_at.cmp(&b.agreed_at).then_with(|| a.id.cmp(&b.id)))
}

/// The two members' signatures over an agreement's [`Agreement::signing_bytes`]
/// (Ed25519 with each member's node key, base64).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AgreementSignatures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// The owner's public key (base64) that made its signature: the key of the certificate
    /// the owner's node presented when it sent the agreement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_key: Option<String>,
    /// The consumer's public key (base64), likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_key: Option<String>,
}

/// One negotiation step, sent by one member's node to the other's as a signed `POST` to
/// [`crate::paths::NEGOTIATIONS`]. The sender is the member whose certificate the request
/// came with; a message that was already applied is acknowledged again (delivery is
/// retried until acknowledged, so the same message may arrive more than once).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NegotiationMessage {
    /// Consumer → owner: a request (REQUESTED), or a new one in answer to an offer.
    Request {
        id: String,
        request: AccessRequest,
        deadline: DateTime<Utc>,
        /// In answer to an offer: why the consumer asks for other terms.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        note: String,
    },
    /// Owner → consumer: a counter-offer (OFFERED), with the owner's reason for it.
    Offer {
        id: String,
        terms: AgreementTerms,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        note: String,
    },
    /// Consumer → owner: the consumer accepts the offer (ACCEPTED).
    Accept { id: String },
    /// Owner → consumer: the agreement, signed by the owner (AGREED).
    Agree {
        id: String,
        agreement: Agreement,
        signature: String,
    },
    /// Consumer → owner: the consumer checked the owner's signature and countersigns
    /// (VERIFIED).
    Verify { id: String, signature: String },
    /// Owner → consumer: the owner checked the countersignature; the agreement is in force
    /// (FINALIZED).
    Finalize { id: String },
    /// Either way: the negotiation ends, or the agreement is revoked (TERMINATED).
    Terminate { id: String, reason: String },
}

impl NegotiationMessage {
    pub fn id(&self) -> &str {
        match self {
            Self::Request { id, .. }
            | Self::Offer { id, .. }
            | Self::Accept { id }
            | Self::Agree { id, .. }
            | Self::Verify { id, .. }
            | Self::Finalize { id }
            | Self::Terminate { id, .. } => id,
        }
    }

    /// The state the message moves its negotiation to.
    pub fn state(&self) -> NegotiationState {
        match self {
            Self::Request { .. } => NegotiationState::Requested,
            Self::Offer { .. } => NegotiationState::Offered,
            Self::Accept { .. } => NegotiationState::Accepted,
            Self::Agree { .. } => NegotiationState::Agreed,
            Self::Verify { .. } => NegotiationState::Verified,
            Self::Finalize { .. } => NegotiationState::Finalized,
            Self::Terminate { .. } => NegotiationState::Terminated,
        }
    }

    /// Which side sends it (`Terminate` either).
    pub fn sender(&self) -> Option<NegotiationRole> {
        match self {
            Self::Request { .. } | Self::Accept { .. } | Self::Verify { .. } => {
                Some(NegotiationRole::Consumer)
            }
            Self::Offer { .. } | Self::Agree { .. } | Self::Finalize { .. } => {
                Some(NegotiationRole::Provider)
            }
            Self::Terminate { .. } => None,
        }
    }
}

/// Whether an agreement allows a query now, and if not why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validity {
    Valid,
    NotYet(DateTime<Utc>),
    Expired(DateTime<Utc>),
}

impl Agreement {
    /// Builds the agreement a request leads to, under the terms finally agreed.
    pub fn from_request(
        id: String,
        ecosystem: String,
        consumer: MemberId,
        request: &AccessRequest,
        terms: AgreementTerms,
        agreed_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            ecosystem,
            owner: request.owner.clone(),
            consumer,
            product: request.product.clone(),
            purpose: request.purpose.clone(),
            legal_basis: request.legal_basis.clone(),
            justification: request.justification.clone(),
            terms,
            valid_from: request.valid_from,
            valid_until: request.valid_until,
            agreed_at,
            linkage_epoch: None,
            supersedes: None,
        }
    }

    /// The bytes both members sign: a domain-separation line, then the agreement as JSON
    /// with its fields in declaration order (serde's order for structs, stable across
    /// versions of this type that only add optional fields at the end).
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = b"agora-agreement-v1\n".to_vec();
        out.extend(serde_json::to_vec(self).expect("an agreement serialises to JSON"));
        out
    }

    pub fn validity(&self, now: DateTime<Utc>) -> Validity {
        if now < self.valid_from {
            Validity::NotYet(self.valid_from)
        } else if now >= self.valid_until {
            Validity::Expired(self.valid_until)
        } else {
            Validity::Valid
        }
    }

    /// The agreement as an ODRL 2.2 policy of type `Agreement` in JSON-LD, in the shape the
    /// Dataspace Protocol exchanges: permission to `use` the product, constrained by
    /// purpose, time and the access mode; duties for masks and row limits.
    pub fn to_odrl(&self, signatures: &AgreementSignatures) -> serde_json::Value {
        use serde_json::json;
        let target = format!(
            "urn:agora:{}:{}:{}",
            self.ecosystem, self.owner, self.product
        );
        let mut constraints = vec![
            json!({"leftOperand": "purpose", "operator": "eq",
                   "rightOperand": {"@id": format!("agora:purpose/{}", self.purpose)}}),
            json!({"leftOperand": "dateTime", "operator": "gteq",
                   "rightOperand": {"@value": self.valid_from.to_rfc3339(), "@type": "xsd:dateTime"}}),
            json!({"leftOperand": "dateTime", "operator": "lt",
                   "rightOperand": {"@value": self.valid_until.to_rfc3339(), "@type": "xsd:dateTime"}}),
            json!({"leftOperand": "agora:accessMode", "operator": "eq",
                   "rightOperand": self.terms.mode.as_str()}),
        ];
        if self.terms.mode == AccessMode::Aggregate {
            constraints.push(
                json!({"leftOperand": "agora:minGroupSize", "operator": "gteq",
                                    "rightOperand": self.terms.min_group_size}),
            );
            if !self.terms.measures.is_empty() {
                constraints.push(
                    json!({"leftOperand": "agora:measures", "operator": "isAllOf",
                                        "rightOperand": self.terms.measures}),
                );
            }
            if let Some(d) = &self.terms.disclosure {
                constraints.push(
                    json!({"leftOperand": "agora:disclosureControl", "operator": "eq",
                                        "rightOperand": d.to_string()}),
                );
            }
        }
        if let Some(max) = self.terms.max_rows {
            constraints.push(
                json!({"leftOperand": "count", "operator": "lteq", "rightOperand": max,
                       "unit": {"@id": "agora:rowsPerQuery"}}),
            );
        }
        if let Some(secs) = self.terms.query_limits.max_seconds {
            constraints.push(json!({"leftOperand": "elapsedTime", "operator": "lteq",
                                    "rightOperand": format!("PT{secs}S"),
                                    "unit": {"@id": "agora:perQuery"}}));
        }
        if let Some(mib) = self.terms.query_limits.max_memory_mib {
            constraints.push(
                json!({"leftOperand": "agora:queryMemory", "operator": "lteq",
                                    "rightOperand": mib, "unit": {"@id": "agora:mebibytes"}}),
            );
        }
        if let Some(filter) = &self.terms.row_filter {
            constraints.push(json!({"leftOperand": "agora:rowFilter", "operator": "eq",
                                    "rightOperand": filter}));
        }
        let columns: Vec<_> = self
            .terms
            .columns
            .iter()
            .map(|c| {
                let mut v = json!({"agora:column": c.name});
                if let Some(m) = &c.mask {
                    v["agora:mask"] = json!(m.label());
                }
                v
            })
            .collect();
        let mut duties =
            vec![json!({"action": "agora:restrictToColumns", "agora:columns": columns})];
        if self.terms.columns.iter().any(|c| c.mask.is_some()) {
            duties.push(json!({"action": "anonymize", "agora:appliedBy": self.owner.as_str()}));
        }
        json!({
            "@context": [
                "http://www.w3.org/ns/odrl.jsonld",
                {"dspace": "https://w3id.org/dspace/2024/1/",
                 "agora": "https://agora.example/ns/",
                 "xsd": "http://www.w3.org/2001/XMLSchema#"}
            ],
            "@type": "Agreement",
            "uid": format!("urn:agora:agreement:{}", self.id),
            "assigner": format!("urn:agora:{}:{}", self.ecosystem, self.owner),
            "assignee": format!("urn:agora:{}:{}", self.ecosystem, self.consumer),
            "target": target,
            "dspace:timestamp": self.agreed_at.to_rfc3339(),
            "agora:legalBasis": self.legal_basis,
            "agora:justification": self.justification,
            "permission": [{
                "action": "use",
                "target": target,
                "constraint": [{"and": constraints}],
                "duty": duties
            }],
            "prohibition": [
                {"action": "distribute", "target": target},
                {"action": "agora:reidentify", "target": target}
            ],
            "agora:signatures": {
                "algorithm": "Ed25519",
                "owner": signatures.owner,
                "consumer": signatures.consumer
            }
        })
    }
}

/// One negotiation as one side records it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Negotiation {
    /// The same on both sides.
    pub id: String,
    /// This node's side.
    pub role: NegotiationRole,
    pub consumer: MemberId,
    pub state: NegotiationState,
    /// What the consumer asked (it names the owner and the product).
    pub request: AccessRequest,
    /// The provider's counter-offer, if it made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<AgreementTerms>,
    /// The agreement, once the provider agreed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<Agreement>,
    #[serde(default)]
    pub signatures: AgreementSignatures,
    /// Why it was terminated (or revoked), and by whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A negotiation not finalized by then is terminated by both sides on their own.
    pub deadline: DateTime<Utc>,
}

impl Negotiation {
    pub fn owner(&self) -> &MemberId {
        &self.request.owner
    }

    /// The other member.
    pub fn peer(&self) -> &MemberId {
        match self.role {
            NegotiationRole::Consumer => &self.request.owner,
            NegotiationRole::Provider => &self.consumer,
        }
    }

    /// The agreement if the negotiation ended in one that is in force (finalized, signed by
    /// both, and within its validity period).
    pub fn agreement_in_force(&self, now: DateTime<Utc>) -> Option<&Agreement> {
        let a = self.agreement.as_ref()?;
        (self.state == NegotiationState::Finalized
            && self.signatures.owner.is_some()
            && self.signatures.consumer.is_some()
            && a.validity(now) == Validity::Valid)
            .then_some(a)
    }
}

/// One step in a negotiation's history.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegotiationEvent {
    pub at: DateTime<Utc>,
    pub state: NegotiationState,
    /// The member whose action (or whose node's timer) made the step.
    pub actor: MemberId,
    pub note: String,
}

/// A node's answer to a negotiation step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegotiationReply {
    /// False when the receiver refused the step; it has then terminated its record, and
    /// the sender terminates its own.
    pub accepted: bool,
    /// The receiver's state of the negotiation after the step.
    pub state: NegotiationState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ColumnTerm, Mask};

    #[test]
    fn a_later_agreement_for_the_same_purpose_applies_only_if_it_supersedes() {
        let base = Agreement::from_request(
            "a-1".into(),
            "eco".into(),
            MemberId::parse("city-hospital").unwrap(),
            &request(),
            request().terms,
            at(2026, 1, 1),
        );
        let mut wider = base.clone();
        wider.id = "a-2".into();
        wider.agreed_at = at(2026, 2, 1);
        // Not superseding: the first stays the one served.
        assert_eq!(applicable_agreement([&base, &wider]).unwrap().id, "a-1");
        assert_eq!(applicable_agreement([&wider, &base]).unwrap().id, "a-1");
        // Superseding by the steward's decision: the new one.
        wider.supersedes = Some("a-1".into());
        assert_eq!(applicable_agreement([&base, &wider]).unwrap().id, "a-2");
        // Another purpose: the most recent of the purposes' own.
        let mut other = base.clone();
        other.id = "a-3".into();
        other.purpose = "official_statistics".into();
        other.agreed_at = at(2026, 3, 1);
        assert_eq!(applicable_agreement([&base, &other]).unwrap().id, "a-3");
        assert!(applicable_agreement([]).is_none());
    }
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    fn request() -> AccessRequest {
        AccessRequest {
            owner: MemberId::parse("employment-agency").unwrap(),
            product: ProductName::parse("job_seekers").unwrap(),
            purpose: "job_matching".into(),
            legal_basis: "public_task".into(),
            justification: "matching job seekers to hospital vacancies".into(),
            terms: AgreementTerms {
                columns: vec![
                    ColumnTerm {
                        name: "person_id".into(),
                        mask: Some(Mask::Pseudonym),
                    },
                    ColumnTerm {
                        name: "skills".into(),
                        mask: None,
                    },
                ],
                row_filter: Some("municipality = 'Northport'".into()),
                mode: AccessMode::Records,
                min_group_size: 5,
                max_rows: Some(1000),
                measures: vec![],
                disclosure: None,
                query_limits: Default::default(),
            },
            valid_from: at(2026, 1, 1),
            valid_until: at(2027, 1, 1),
        }
    }

    #[test]
    fn dsp_state_machine_allows_the_protocol_paths_only() {
        use NegotiationState::*;
        let happy = [
            Requested, Offered, Accepted, Agreed, Verified, Finalized, Terminated,
        ];
        for w in happy.windows(2) {
            assert!(w[0].can_move_to(w[1]), "{} -> {}", w[0], w[1]);
        }
        assert!(Requested.can_move_to(Agreed));
        assert!(!Requested.can_move_to(Finalized));
        assert!(!Agreed.can_move_to(Finalized));
        assert!(!Finalized.can_move_to(Agreed));
        for s in NegotiationState::ALL {
            assert!(!Terminated.can_move_to(s));
            assert_eq!(s.dsp().parse::<NegotiationState>().unwrap(), s);
        }
        assert!("STUCK".parse::<NegotiationState>().is_err());
    }

    #[test]
    fn requests_are_checked_against_the_vocabularies() {
        let consumer = MemberId::parse("city-hospital").unwrap();
        let now = at(2026, 6, 1);
        assert_eq!(request().validate(&consumer, now), Ok(()));
        let mut r = request();
        r.purpose = "curiosity".into();
        assert!(matches!(
            r.validate(&consumer, now),
            Err(NegotiationError::UnknownPurpose(_))
        ));
        let mut r = request();
        r.legal_basis = "because".into();
        assert!(matches!(
            r.validate(&consumer, now),
            Err(NegotiationError::UnknownLegalBasis(_))
        ));
        let mut r = request();
        r.justification = " ".into();
        assert_eq!(
            r.validate(&consumer, now),
            Err(NegotiationError::Justification(0))
        );
        // A justification that is there but too short is not reported as missing.
        let mut r = request();
        r.justification = "jobs".into();
        let e = r.validate(&consumer, now).unwrap_err();
        assert_eq!(e, NegotiationError::Justification(4));
        assert!(e.to_string().contains("too short (4 characters)"), "{e}");
        let mut r = request();
        r.valid_until = r.valid_from;
        assert!(matches!(
            r.validate(&consumer, now),
            Err(NegotiationError::Validity(_))
        ));
        let mut r = request();
        r.valid_until = at(2040, 1, 1);
        assert!(matches!(
            r.validate(&consumer, now),
            Err(NegotiationError::Validity(_))
        ));
        assert!(matches!(
            request().validate(&consumer, at(2027, 2, 1)),
            Err(NegotiationError::Validity(_))
        ));
        let owner = MemberId::parse("employment-agency").unwrap();
        assert_eq!(
            request().validate(&owner, now),
            Err(NegotiationError::OwnProduct)
        );
    }

    fn agreement() -> Agreement {
        Agreement::from_request(
            "neg-0001".into(),
            "demo".into(),
            MemberId::parse("city-hospital").unwrap(),
            &request(),
            request().terms,
            at(2026, 1, 2),
        )
    }

    #[test]
    fn signing_bytes_change_with_every_term() {
        let a = agreement();
        let mut b = agreement();
        b.terms.columns[1].mask = Some(Mask::Redact);
        assert_ne!(a.signing_bytes(), b.signing_bytes());
        let mut c = agreement();
        c.valid_until = at(2027, 1, 2);
        assert_ne!(a.signing_bytes(), c.signing_bytes());
        assert_eq!(a.signing_bytes(), agreement().signing_bytes());
        assert!(a.signing_bytes().starts_with(b"agora-agreement-v1\n"));
    }

    #[test]
    fn validity_has_a_start_and_an_end() {
        let a = agreement();
        assert_eq!(a.validity(at(2025, 12, 31)), Validity::NotYet(a.valid_from));
        assert_eq!(a.validity(at(2026, 6, 1)), Validity::Valid);
        assert_eq!(a.validity(at(2027, 1, 1)), Validity::Expired(a.valid_until));
    }

    #[test]
    fn odrl_export() {
        let sigs = AgreementSignatures {
            owner: Some("b3duZXI=".into()),
            consumer: Some("Y29uc3VtZXI=".into()),
            ..Default::default()
        };
        // Sorted: whether serde_json keeps insertion order depends on which crates are
        // built together (feature unification), the snapshot must not.
        insta::with_settings!({sort_maps => true}, {
            insta::assert_json_snapshot!(agreement().to_odrl(&sigs));
        });
    }
}
