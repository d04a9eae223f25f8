//! The consumer's side of a negotiation: its requests and answers to offers, and the steps
//! the owner's node sends it (an offer, the signed agreement to countersign, the news that
//! the agreement is in force).

use agora_model::{
    AccessRequest, AgreementTerms, Negotiation, NegotiationMessage, NegotiationRole,
    NegotiationState, TrustedMember,
};
use chrono::Utc;

use super::event;
use super::signatures::{b64, check_signatures, signature_verifies};
use crate::{Node, NodeError};

impl Node {
    /// Asks another member for one of its products: checks the request against the
    /// vocabulary and the product's offer, records it (REQUESTED) and sends it.
    pub async fn request_access(&self, request: AccessRequest) -> Result<Negotiation, NodeError> {
        let trust = self.enrolled()?;
        trust.ensure_usable(Utc::now())?;
        let now = Utc::now();
        request.validate(self.member(), now)?;
        let offer = self
            .store()
            .offer(&request.owner, request.product.as_str())
            .await?
            .ok_or_else(|| {
                NodeError::Agreement(format!(
                    "member {} offers no product {:?} to this node (see `agora catalog search`)",
                    request.owner, request.product
                ))
            })?;
        let admitted = &offer.metadata.purposes;
        if !admitted.contains(&request.purpose) {
            return Err(NodeError::Negotiation(
                agora_model::NegotiationError::NotAdmitted(if admitted.is_empty() {
                    format!(
                        "\"{}\".{} admits no purpose for requests: its owner would refuse any request; ask {} (see `agora catalog show`)",
                        request.owner, request.product, request.owner
                    )
                } else {
                    format!(
                        "\"{}\".{} admits the purposes {}; {:?} is not among them, and its owner would refuse the request: choose one of those",
                        request.owner,
                        request.product,
                        admitted.join(", "),
                        request.purpose
                    )
                }),
            ));
        }
        request
            .terms
            .validate(request.product.as_str(), &offer.schema, &offer.metadata)?;
        baseline_admits(self.member(), &request, &offer.metadata)?;
        let n = Negotiation {
            id: uuid::Uuid::new_v4().to_string(),
            role: NegotiationRole::Consumer,
            consumer: self.member().clone(),
            state: NegotiationState::Requested,
            request,
            offer: None,
            agreement: None,
            signatures: Default::default(),
            reason: None,
            created_at: now,
            updated_at: now,
            deadline: now + trust.settings().negotiation_timeout,
        };
        let ev = event(
            NegotiationState::Requested,
            self.member(),
            format!(
                "requested {} of {} for {}",
                n.request.product, n.request.owner, n.request.purpose
            ),
        );
        self.store().insert_negotiation(&n, &ev).await?;
        tracing::info!(negotiation = %n.id, owner = %n.request.owner, product = %n.request.product, purpose = %n.request.purpose, "access requested");
        self.send(
            &n.request.owner,
            &NegotiationMessage::Request {
                id: n.id.clone(),
                request: n.request.clone(),
                deadline: n.deadline,
                note: String::new(),
            },
        )
        .await?;
        self.current(&n).await
    }

    /// Accepts the owner's counter-offer (ACCEPTED); the owner's node then agrees.
    pub async fn accept_offer(&self, id: &str) -> Result<Negotiation, NodeError> {
        let n = self
            .find_negotiation(id, Some(NegotiationRole::Consumer))
            .await?;
        if n.state != NegotiationState::Offered {
            return Err(NodeError::Agreement(format!(
                "negotiation {id} is {}, not OFFERED: there is no offer to accept",
                n.state
            )));
        }
        let next = self
            .advance(
                &n,
                NegotiationState::Accepted,
                self.member(),
                "accepted the owner's offer",
                |_| {},
            )
            .await?;
        self.send(n.peer(), &NegotiationMessage::Accept { id: id.into() })
            .await?;
        self.current(&next).await
    }

    /// Answers the owner's counter-offer with other terms (REQUESTED again): the owner
    /// then approves, offers again or rejects, as for a first request.
    pub async fn counter_request(
        &self,
        id: &str,
        terms: AgreementTerms,
        note: &str,
    ) -> Result<Negotiation, NodeError> {
        let n = self
            .find_negotiation(id, Some(NegotiationRole::Consumer))
            .await?;
        if n.state != NegotiationState::Offered {
            return Err(NodeError::Agreement(format!(
                "negotiation {id} is {}, not OFFERED: there is no offer to answer",
                n.state
            )));
        }
        let offer = self
            .store()
            .offer(&n.request.owner, n.request.product.as_str())
            .await?
            .ok_or_else(|| {
                NodeError::Agreement(format!(
                    "member {} no longer offers {:?}",
                    n.request.owner, n.request.product
                ))
            })?;
        terms.validate(n.request.product.as_str(), &offer.schema, &offer.metadata)?;
        let mut request = n.request.clone();
        request.terms = terms;
        let reason = note.trim();
        request.validate(self.member(), Utc::now())?;
        let next = self
            .advance(
                &n,
                NegotiationState::Requested,
                self.member(),
                &if reason.is_empty() {
                    "asked for other terms".to_owned()
                } else {
                    format!("asked for other terms: {reason}")
                },
                |x| {
                    x.request = request.clone();
                    x.offer = None;
                },
            )
            .await?;
        self.send(
            n.peer(),
            &NegotiationMessage::Request {
                id: id.into(),
                request,
                deadline: n.deadline,
                note: reason.to_owned(),
            },
        )
        .await?;
        self.current(&next).await
    }

    /// The owner's counter-offer: recorded (OFFERED) when its terms fit the product's offer.
    pub(super) async fn on_offer(
        &self,
        peer: &TrustedMember,
        n: &Negotiation,
        terms: AgreementTerms,
        note: String,
    ) -> Result<Negotiation, NodeError> {
        let target = NegotiationState::Offered;
        let offer = self
            .store()
            .offer(&n.request.owner, n.request.product.as_str())
            .await?;
        if let Some(o) = offer {
            terms
                .validate(o.name.as_str(), &o.schema, &o.metadata)
                .map_err(|e| NodeError::Agreement(format!("the offer is invalid: {e}")))?;
        }
        let note = match note.trim() {
            "" => "received a counter-offer".to_owned(),
            why => format!("received a counter-offer: {why}"),
        };
        self.advance(n, target, &peer.id, &note, |x| x.offer = Some(terms))
            .await
    }

    /// The agreement the owner signed: checked against what was asked or offered, its
    /// signature verified with the owner's certificate key, then countersigned (VERIFIED).
    pub(super) async fn on_agreement(
        &self,
        peer: &TrustedMember,
        peer_key: &[u8; 32],
        n: &Negotiation,
        agreement: agora_model::Agreement,
        signature: String,
    ) -> Result<Negotiation, NodeError> {
        let target = NegotiationState::Agreed;
        let expected_terms = match n.state {
            NegotiationState::Accepted => n.offer.clone(),
            _ => Some(n.request.terms.clone()),
        };
        let r = &n.request;
        let mismatch = if agreement.id != n.id {
            Some("names another negotiation")
        } else if agreement.owner != r.owner || agreement.consumer != n.consumer {
            Some("names other members")
        } else if agreement.product != r.product
            || agreement.purpose != r.purpose
            || agreement.legal_basis != r.legal_basis
            || agreement.valid_from != r.valid_from
            || agreement.valid_until != r.valid_until
        {
            Some("differs from the request (product, purpose, legal basis or validity)")
        } else if Some(&agreement.terms) != expected_terms.as_ref() {
            Some("has other terms than were requested or offered")
        } else {
            None
        };
        if let Some(why) = mismatch {
            return Err(NodeError::Agreement(format!("the agreement {why}")));
        }
        let owner_key = b64(peer_key);
        if !signature_verifies(&agreement, &signature, &owner_key) {
            return Err(NodeError::Agreement(
                "the owner's signature on the agreement does not verify".into(),
            ));
        }
        let next = self
            .advance(
                n,
                target,
                &peer.id,
                "received the agreement signed by the owner; signature verified",
                |x| {
                    x.agreement = Some(agreement.clone());
                    x.signatures.owner = Some(signature);
                    x.signatures.owner_key = Some(owner_key);
                },
            )
            .await?;
        // The consumer asked for exactly these terms: it countersigns.
        let trust = self.enrolled()?;
        let material = trust.material();
        let countersignature = b64(&material.key.sign(&agreement.signing_bytes()));
        let verified = self
            .advance(
                &next,
                NegotiationState::Verified,
                self.member(),
                "countersigned",
                |x| {
                    x.signatures.consumer = Some(countersignature.clone());
                    x.signatures.consumer_key = Some(b64(&material.key.public()));
                },
            )
            .await?;
        self.send(
            &peer.id,
            &NegotiationMessage::Verify {
                id: n.id.clone(),
                signature: countersignature,
            },
        )
        .await?;
        Ok(verified)
    }

    /// The owner's word that the agreement is in force (FINALIZED), once both signatures
    /// verify here too.
    pub(super) async fn on_finalize(
        &self,
        peer: &TrustedMember,
        n: &Negotiation,
    ) -> Result<Negotiation, NodeError> {
        check_signatures(n).map_err(NodeError::Agreement)?;
        self.advance(
            n,
            NegotiationState::Finalized,
            &peer.id,
            "agreement in force",
            |_| {},
        )
        .await
    }
}

/// The ecosystem's baseline policies are the same on every node: a request they forbid
/// for the product as offered would be refused by its owner, so it is refused here, in the
/// owner's words, before anything is sent. (The owner still decides, with its own
/// policies too, on the product as it really is.)
fn baseline_admits(
    consumer: &agora_model::MemberId,
    request: &AccessRequest,
    offered: &agora_model::ProductMetadata,
) -> Result<(), NodeError> {
    let facts = agora_policy::RequestFacts::of(consumer, request, &request.terms, offered);
    let d = agora_policy::PolicyEngine::new(&[])?
        .decide(agora_policy::PolicyAction::Request, &facts)?;
    if d.allowed || d.determining.is_empty() {
        // Nothing forbids it (an owner's own policy may still permit what no baseline
        // policy permits: that is the owner's to decide).
        return Ok(());
    }
    Err(NodeError::Negotiation(
        agora_model::NegotiationError::NotAdmitted(format!(
            "{} would refuse this request: {} — change the terms (the mode or the masks) and ask again",
            request.owner,
            d.explain()
        )),
    ))
}
