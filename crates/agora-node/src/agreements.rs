//! Sharing agreements: access requests and their negotiation with the other member's node
//! over the signed exchange channel, the outbox that delivers every step until the peer
//! acknowledged it, deadlines that end negotiations on both sides, and the agreements in
//! force that the catalogs bind.
//!
//! Each side keeps its own record of a negotiation (same id). A step is first stored, with
//! the message owed to the peer queued in the same store, then delivered; delivery is
//! retried with back-off until the peer acknowledges it. A peer that refuses a step ends the
//! negotiation on both sides: it terminates its own record and answers `accepted: false`,
//! and the sender terminates its record on reading that answer. Every negotiation has a
//! deadline both sides know (it travels with the request): one not finalized by then is
//! terminated by each side's own timer, so none is ever left half-open.

use std::collections::{BTreeMap, HashMap};

use agora_exchange::{ExchangeError, Signer};
use agora_model::{
    AccessRequest, Agreement, AgreementTerms, Classification, MemberId, Negotiation,
    NegotiationEvent, NegotiationMessage, NegotiationRole, NegotiationState, Product,
    ProductMetadata, TrustedMember, paths,
};
use agora_policy::{Decision, PolicyAction, RequestFacts};
use agora_store::{OutboxMessage, PolicyDecisionRecord, StoreError};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Node, NodeError};

/// The outbox message kind of negotiation steps.
const KIND: &str = "negotiation";
/// Longest wait between two delivery attempts.
const MAX_BACKOFF_SECONDS: i64 = 300;

/// A node's answer to a negotiation step.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// A negotiation with its history, as one side keeps it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct NegotiationRecord {
    #[serde(flatten)]
    pub negotiation: Negotiation,
    pub events: Vec<NegotiationEvent>,
    /// Steps still to be delivered to the other member.
    pub undelivered: usize,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Checks an Ed25519 signature given as base64 with a base64 public key.
pub fn signature_verifies(agreement: &Agreement, signature: &str, key: &str) -> bool {
    let (Some(sig), Some(key)) = (unb64(signature), unb64(key)) else {
        return false;
    };
    let Ok(key) = <[u8; 32]>::try_from(key) else {
        return false;
    };
    agora_trust::verify_signature(&key, &agreement.signing_bytes(), &sig).is_ok()
}

/// Why an agreement's signatures do not hold, if they do not.
pub fn check_signatures(n: &Negotiation) -> Result<&Agreement, String> {
    let a = n
        .agreement
        .as_ref()
        .ok_or_else(|| format!("negotiation {} holds no agreement", n.id))?;
    let s = &n.signatures;
    for (who, sig, key) in [
        ("owner", &s.owner, &s.owner_key),
        ("consumer", &s.consumer, &s.consumer_key),
    ] {
        let (Some(sig), Some(key)) = (sig, key) else {
            return Err(format!("agreement {} lacks the {who}'s signature", a.id));
        };
        if !signature_verifies(a, sig, key) {
            return Err(format!(
                "the {who}'s signature on agreement {} does not match its terms: the record \
                 was altered, and the agreement is not applied",
                a.id
            ));
        }
    }
    Ok(a)
}

fn event(state: NegotiationState, actor: &MemberId, note: impl Into<String>) -> NegotiationEvent {
    NegotiationEvent {
        at: Utc::now(),
        state,
        actor: actor.clone(),
        note: note.into(),
    }
}

fn not_found(id: &str) -> NodeError {
    NodeError::Store(StoreError::NegotiationNotFound(id.to_owned()))
}

impl Node {
    // ---- reading ----

    /// One negotiation with its history; `role` picks the side when this node's store
    /// holds both (otherwise whichever it holds).
    pub async fn negotiation(
        &self,
        id: &str,
        role: Option<NegotiationRole>,
    ) -> Result<NegotiationRecord, NodeError> {
        let n = self.find_negotiation(id, role).await?;
        let events = self.store().negotiation_events(&n.id, n.role).await?;
        let undelivered = self
            .store()
            .pending_messages()
            .await?
            .iter()
            .filter(|m| {
                serde_json::from_str::<NegotiationMessage>(&m.body_json)
                    .is_ok_and(|msg| msg.id() == n.id)
            })
            .count();
        Ok(NegotiationRecord {
            negotiation: n,
            events,
            undelivered,
        })
    }

    async fn find_negotiation(
        &self,
        id: &str,
        role: Option<NegotiationRole>,
    ) -> Result<Negotiation, NodeError> {
        let roles = match role {
            Some(r) => vec![r],
            None => vec![NegotiationRole::Provider, NegotiationRole::Consumer],
        };
        for r in roles {
            if let Some(n) = self.store().negotiation(id, r).await? {
                return Ok(n);
            }
        }
        Err(not_found(id))
    }

    /// Negotiations newest first, of one side or both, in one state or any.
    pub async fn negotiations(
        &self,
        role: Option<NegotiationRole>,
        state: Option<NegotiationState>,
        limit: u32,
    ) -> Result<Vec<Negotiation>, NodeError> {
        Ok(self.store().negotiations(role, state, limit).await?)
    }

    /// The policy decisions this node made, newest first.
    pub async fn policy_decisions(
        &self,
        limit: u32,
    ) -> Result<Vec<PolicyDecisionRecord>, NodeError> {
        Ok(self.store().policy_decisions(limit).await?)
    }

    // ---- the consumer's moves ----

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
                    "member {} offers no product {:?} (see `agora catalog search`)",
                    request.owner, request.product
                ))
            })?;
        request
            .terms
            .validate(request.product.as_str(), &offer.schema, &offer.metadata)?;
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

    // ---- the owner's moves ----

    /// Approves a request as asked, or the consumer's acceptance of an offer: the owner's
    /// node signs the agreement (AGREED) and sends it for countersigning.
    pub async fn approve(&self, id: &str, note: &str) -> Result<Negotiation, NodeError> {
        self.approve_superseding(id, note, false).await
    }

    /// Approves, and with `supersede` replaces the agreement in force for the same
    /// consumer, product and purpose (revoked once the new one is in force). Without it, an
    /// agreement in force for the same purpose makes the approval fail with what to do.
    pub async fn approve_superseding(
        &self,
        id: &str,
        note: &str,
        supersede: bool,
    ) -> Result<Negotiation, NodeError> {
        let n = self
            .find_negotiation(id, Some(NegotiationRole::Provider))
            .await?;
        let terms = match n.state {
            NegotiationState::Requested => n.request.terms.clone(),
            NegotiationState::Accepted => n.offer.clone().ok_or_else(|| {
                NodeError::Agreement(format!("negotiation {id} was accepted but holds no offer"))
            })?,
            other => {
                return Err(NodeError::Agreement(format!(
                    "negotiation {id} is {other}: only REQUESTED (or ACCEPTED) negotiations \
                     can be approved"
                )));
            }
        };
        let product = self.own_product(&n.request).await?;
        let decision = self
            .decide(PolicyAction::Request, &n, &terms, &product.metadata)
            .await?;
        if !decision.allowed {
            return Err(NodeError::Agreement(format!(
                "cannot approve: {}",
                decision.explain()
            )));
        }
        let current = self
            .in_force_for_purpose(&n.consumer, &n.request.product, &n.request.purpose, &n.id)
            .await?;
        let supersedes = match (current.first(), supersede) {
            (None, _) => None,
            (Some(old), true) => Some(old.clone()),
            (Some(old), false) => {
                return Err(NodeError::Agreement(format!(
                    "agreement {old} for {} and purpose {} is in force with {}; approving \
                     this request would replace it: approve with supersede (agora agreement \
                     approve --supersede) to revoke it once this one is in force, or reject \
                     this request",
                    n.request.product, n.request.purpose, n.consumer
                )));
            }
        };
        self.agree(n, terms, note, supersedes).await
    }

    /// Answers a request with other terms (OFFERED).
    pub async fn counter_offer(
        &self,
        id: &str,
        terms: AgreementTerms,
        note: &str,
    ) -> Result<Negotiation, NodeError> {
        let n = self
            .find_negotiation(id, Some(NegotiationRole::Provider))
            .await?;
        if n.state != NegotiationState::Requested {
            return Err(NodeError::Agreement(format!(
                "negotiation {id} is {}: only a REQUESTED negotiation can get an offer",
                n.state
            )));
        }
        let product = self.own_product(&n.request).await?;
        terms.validate(product.name.as_str(), &product.schema, &product.metadata)?;
        self.check_row_filter(&product, &terms).await?;
        let decision = self
            .decide(PolicyAction::Request, &n, &terms, &product.metadata)
            .await?;
        if !decision.allowed {
            return Err(NodeError::Agreement(format!(
                "cannot offer these terms: {}",
                decision.explain()
            )));
        }
        let reason = note.trim().to_owned();
        let note = if reason.is_empty() {
            "offered other terms".to_owned()
        } else {
            format!("offered other terms: {reason}")
        };
        let next = self
            .advance(&n, NegotiationState::Offered, self.member(), &note, |x| {
                x.offer = Some(terms.clone())
            })
            .await?;
        self.send(
            n.peer(),
            &NegotiationMessage::Offer {
                id: id.into(),
                terms,
                note: reason,
            },
        )
        .await?;
        self.current(&next).await
    }

    /// Ends a negotiation (a rejection by the owner, a withdrawal by the consumer) or
    /// revokes its agreement (either side): TERMINATED here at once, and on the other side
    /// when the message arrives.
    pub async fn terminate(&self, id: &str, reason: &str) -> Result<Negotiation, NodeError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(NodeError::Agreement(
                "say why the negotiation ends or the agreement is revoked (--reason)".into(),
            ));
        }
        let n = self.find_negotiation(id, None).await?;
        if n.state == NegotiationState::Terminated {
            return Err(NodeError::Agreement(format!(
                "negotiation {id} is already terminated ({})",
                n.reason.as_deref().unwrap_or("no reason recorded")
            )));
        }
        let what = if n.state == NegotiationState::Finalized {
            "revoked the agreement"
        } else {
            "ended the negotiation"
        };
        let next = self
            .end_locally(&n, self.member(), &format!("{what}: {reason}"))
            .await?;
        self.send(
            n.peer(),
            &NegotiationMessage::Terminate {
                id: id.into(),
                reason: format!("{} {what}: {reason}", self.member()),
            },
        )
        .await?;
        Ok(next)
    }

    // ---- steps shared by both sides ----

    /// Stores `n` moved to `state`, changed by `edit`, with the step's event, provided the
    /// stored record is still in `n`'s state; returns the new record.
    async fn advance(
        &self,
        n: &Negotiation,
        state: NegotiationState,
        actor: &MemberId,
        note: &str,
        edit: impl FnOnce(&mut Negotiation),
    ) -> Result<Negotiation, NodeError> {
        let mut next = n.clone();
        next.state = state;
        next.updated_at = Utc::now();
        edit(&mut next);
        self.store()
            .advance_negotiation(&next, n.state, &event(state, actor, note))
            .await?;
        Ok(next)
    }

    /// Stores the move to TERMINATED (no message).
    async fn end_locally(
        &self,
        n: &Negotiation,
        actor: &MemberId,
        reason: &str,
    ) -> Result<Negotiation, NodeError> {
        let next = self
            .advance(n, NegotiationState::Terminated, actor, reason, |x| {
                x.reason = Some(reason.to_owned())
            })
            .await?;
        tracing::info!(negotiation = %n.id, peer = %n.peer(), reason, "negotiation terminated");
        Ok(next)
    }

    async fn current(&self, n: &Negotiation) -> Result<Negotiation, NodeError> {
        Ok(self
            .store()
            .negotiation(&n.id, n.role)
            .await?
            .unwrap_or_else(|| n.clone()))
    }

    /// The product a request names, which must be this node's own.
    async fn own_product(&self, request: &AccessRequest) -> Result<Product, NodeError> {
        if &request.owner != self.member() {
            return Err(NodeError::Agreement(format!(
                "the request is for member {}'s product, not this node's ({})",
                request.owner,
                self.member()
            )));
        }
        self.store()
            .get_product(request.product.as_str())
            .await?
            .ok_or_else(|| {
                NodeError::Agreement(format!(
                    "member {} has no product {:?}",
                    self.member(),
                    request.product
                ))
            })
    }

    /// Checks that the terms' row filter is a valid condition over the product.
    async fn check_row_filter(
        &self,
        product: &Product,
        terms: &AgreementTerms,
    ) -> Result<(), NodeError> {
        if terms.row_filter.is_none() {
            return Ok(());
        }
        let binding = crate::federation::binding_of(product.clone(), None);
        self.engine()
            .check_enforcement(
                &binding,
                &agora_engine::Enforcement {
                    agreement: "check".into(),
                    terms: terms.clone(),
                    subject: AgreementTerms::subject_column(&product.metadata).map(str::to_owned),
                    linkage_key: Some(agora_engine::LinkageKey::new([0; 32])),
                    cell_key: None,
                },
            )
            .await?;
        Ok(())
    }

    /// Asks the policies and logs their decision.
    async fn decide(
        &self,
        action: PolicyAction,
        n: &Negotiation,
        terms: &AgreementTerms,
        metadata: &ProductMetadata,
    ) -> Result<Decision, NodeError> {
        let mut facts = RequestFacts::of(&n.consumer, &n.request, terms, metadata);
        facts.replaces_agreement_in_force = !self
            .in_force_for_purpose(&n.consumer, &n.request.product, &n.request.purpose, &n.id)
            .await?
            .is_empty();
        let decision = self.policies().decide(action, &facts)?;
        let record = PolicyDecisionRecord {
            seq: 0,
            at: Utc::now(),
            principal: n.consumer.to_string(),
            action: action.as_str().into(),
            resource: format!("{}/{}", n.request.owner, n.request.product),
            decision: if decision.allowed { "allow" } else { "deny" }.into(),
            policies: decision.policy_ids(),
            reasons: decision.explain(),
            context_json: serde_json::json!({"negotiation": n.id, "facts": facts}).to_string(),
        };
        self.store().log_policy_decision(&record).await?;
        tracing::info!(negotiation = %n.id, action = action.as_str(), allowed = decision.allowed, policies = ?decision.policy_ids(), "policy decision");
        Ok(decision)
    }

    /// The owner agrees to `terms`: builds the agreement, signs it, stores AGREED and sends
    /// it.
    async fn agree(
        &self,
        n: Negotiation,
        terms: AgreementTerms,
        note: &str,
        supersedes: Option<String>,
    ) -> Result<Negotiation, NodeError> {
        let trust = self.enrolled()?;
        let linkage_epoch = if terms.uses_pseudonyms() {
            let (epoch, _) = trust
                .linkage_key(&n.request.purpose, &n.consumer, None)
                .await?;
            Some(epoch)
        } else {
            None
        };
        let mut agreement = Agreement::from_request(
            n.id.clone(),
            trust.material().info.ecosystem.clone(),
            n.consumer.clone(),
            &n.request,
            terms,
            Utc::now(),
        );
        agreement.linkage_epoch = linkage_epoch;
        agreement.supersedes = supersedes;
        let material = trust.material();
        let signature = b64(&material.key.sign(&agreement.signing_bytes()));
        let note = if note.trim().is_empty() {
            "agreed and signed".to_owned()
        } else {
            format!("agreed and signed: {}", note.trim())
        };
        let next = self
            .advance(&n, NegotiationState::Agreed, self.member(), &note, |x| {
                x.agreement = Some(agreement.clone());
                x.signatures.owner = Some(signature.clone());
                x.signatures.owner_key = Some(b64(&material.key.public()));
            })
            .await?;
        tracing::info!(negotiation = %n.id, consumer = %n.consumer, "agreement signed by the owner");
        self.send(
            &n.consumer,
            &NegotiationMessage::Agree {
                id: n.id.clone(),
                agreement,
                signature,
            },
        )
        .await?;
        self.current(&next).await
    }

    // ---- messages from the other side ----

    /// Applies a negotiation step another member's node sent (an admitted, signed request;
    /// `peer_key` is the key of the certificate it came with).
    pub async fn receive_negotiation(
        &self,
        peer: &TrustedMember,
        peer_key: &[u8; 32],
        message: NegotiationMessage,
    ) -> Result<NegotiationReply, NodeError> {
        let id = message.id().to_owned();
        let role = match message.sender() {
            Some(NegotiationRole::Consumer) => Some(NegotiationRole::Provider),
            Some(NegotiationRole::Provider) => Some(NegotiationRole::Consumer),
            None => None,
        };
        let existing = match role {
            Some(r) => self.store().negotiation(&id, r).await?,
            None => {
                let mut found = None;
                for r in [NegotiationRole::Provider, NegotiationRole::Consumer] {
                    if let Some(n) = self.store().negotiation(&id, r).await?
                        && n.peer() == &peer.id
                    {
                        found = Some(n);
                        break;
                    }
                }
                found
            }
        };
        if let Some(n) = &existing
            && n.peer() != &peer.id
        {
            return Err(NodeError::PeerRefused {
                peer: peer.id.to_string(),
                reason: format!("negotiation {id} is not between this node and {}", peer.id),
            });
        }
        let NegotiationMessage::Request {
            request,
            deadline,
            note,
            ..
        } = &message
        else {
            let Some(n) = existing else {
                return Ok(NegotiationReply {
                    accepted: matches!(message, NegotiationMessage::Terminate { .. }),
                    state: NegotiationState::Terminated,
                    reason: Some(format!("this node has no negotiation {id}")),
                });
            };
            return self.apply_step(peer, peer_key, n, message).await;
        };
        if let Some(n) = existing {
            if &n.request != request
                && n.role == NegotiationRole::Provider
                && n.state == NegotiationState::Offered
            {
                return self
                    .receive_counter_request(peer, n, request.clone(), note)
                    .await;
            }
            // A repeated delivery of the request.
            let same = &n.request == request;
            return Ok(NegotiationReply {
                accepted: same && n.state != NegotiationState::Terminated,
                state: n.state,
                reason: if same {
                    n.reason
                } else {
                    Some(format!("negotiation {id} exists with another request"))
                },
            });
        }
        self.receive_request(peer, &id, request.clone(), *deadline)
            .await
    }

    /// The product an incoming request names, once its terms are checked against it (its
    /// columns and masks, and the row filter as the engine would apply it); the reason
    /// otherwise, as the refusal will say it.
    async fn product_for(&self, request: &AccessRequest) -> Result<Product, String> {
        let product = self.own_product(request).await.map_err(|e| e.to_string())?;
        request
            .terms
            .validate(product.name.as_str(), &product.schema, &product.metadata)
            .map_err(|e| e.to_string())?;
        self.check_row_filter(&product, &request.terms)
            .await
            .map_err(|e| e.to_string())?;
        Ok(product)
    }

    /// The consumer's answer to this owner's offer: a request with other terms. It is
    /// checked as a first request is; refused, the negotiation ends on both sides.
    async fn receive_counter_request(
        &self,
        peer: &TrustedMember,
        n: Negotiation,
        request: AccessRequest,
        note: &str,
    ) -> Result<NegotiationReply, NodeError> {
        let checked: Result<Product, String> = async {
            let before = &n.request;
            if request.owner != before.owner
                || request.product != before.product
                || request.purpose != before.purpose
                || request.legal_basis != before.legal_basis
            {
                return Err(
                    "an answer to an offer may change the terms, not the product, purpose or \
                     legal basis"
                        .to_owned(),
                );
            }
            request
                .validate(&peer.id, Utc::now())
                .map_err(|e| e.to_string())?;
            self.product_for(&request).await
        }
        .await;
        let refusal = match checked {
            Err(reason) => Some(format!("refused: {reason}")),
            Ok(product) => {
                let d = self
                    .decide(PolicyAction::Request, &n, &request.terms, &product.metadata)
                    .await?;
                (!d.allowed).then(|| format!("refused by policy: {}", d.explain()))
            }
        };
        if let Some(reason) = refusal {
            let ended = self.end_locally(&n, self.member(), &reason).await?;
            return Ok(NegotiationReply {
                accepted: false,
                state: ended.state,
                reason: ended.reason,
            });
        }
        let next = self
            .advance(
                &n,
                NegotiationState::Requested,
                &peer.id,
                &match note.trim() {
                    "" => "received a request with other terms".to_owned(),
                    why => format!("received a request with other terms: {why}"),
                },
                |x| {
                    x.request = request.clone();
                    x.offer = None;
                },
            )
            .await?;
        tracing::info!(negotiation = %n.id, consumer = %peer.id, "counter-request received");
        Ok(NegotiationReply {
            accepted: true,
            state: next.state,
            reason: None,
        })
    }

    async fn receive_request(
        &self,
        peer: &TrustedMember,
        id: &str,
        request: AccessRequest,
        deadline: DateTime<Utc>,
    ) -> Result<NegotiationReply, NodeError> {
        let now = Utc::now();
        let mut n = Negotiation {
            id: id.to_owned(),
            role: NegotiationRole::Provider,
            consumer: peer.id.clone(),
            state: NegotiationState::Requested,
            request: request.clone(),
            offer: None,
            agreement: None,
            signatures: Default::default(),
            reason: None,
            created_at: now,
            updated_at: now,
            deadline,
        };
        let checked: Result<Product, String> = async {
            if id.is_empty() || id.len() > 64 {
                return Err("the negotiation id must have 1 to 64 characters".to_owned());
            }
            request.validate(&peer.id, now).map_err(|e| e.to_string())?;
            if deadline <= now {
                return Err("its deadline has already passed".into());
            }
            self.product_for(&request).await
        }
        .await;
        let refuse = |n: &mut Negotiation, reason: String| {
            n.state = NegotiationState::Terminated;
            n.reason = Some(reason);
        };
        let mut auto = None;
        match checked {
            Err(reason) => refuse(&mut n, format!("refused: {reason}")),
            Ok(product) => {
                let d = self
                    .decide(PolicyAction::Request, &n, &request.terms, &product.metadata)
                    .await?;
                if !d.allowed {
                    refuse(&mut n, format!("refused by policy: {}", d.explain()));
                } else {
                    let a = self
                        .decide(
                            PolicyAction::AutoApprove,
                            &n,
                            &request.terms,
                            &product.metadata,
                        )
                        .await?;
                    if a.allowed {
                        auto = Some(a.explain());
                    }
                }
            }
        }
        let note = match &n.reason {
            Some(r) => r.clone(),
            None => format!(
                "request received: {} for {} ({})",
                request.product, request.purpose, request.legal_basis
            ),
        };
        match self
            .store()
            .insert_negotiation(&n, &event(n.state, &peer.id, note))
            .await
        {
            Ok(()) => {}
            Err(StoreError::NegotiationExists(_)) => {
                // Another delivery of the same request got here first.
                let n = self
                    .find_negotiation(id, Some(NegotiationRole::Provider))
                    .await?;
                return Ok(NegotiationReply {
                    accepted: n.state != NegotiationState::Terminated,
                    state: n.state,
                    reason: n.reason,
                });
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(negotiation = %id, consumer = %peer.id, product = %request.product, state = %n.state, "access request received");
        if n.state == NegotiationState::Terminated {
            return Ok(NegotiationReply {
                accepted: false,
                state: n.state,
                reason: n.reason,
            });
        }
        if let Some(why) = auto {
            let terms = n.request.terms.clone();
            let n = self
                .agree(n, terms, &format!("approved by rule: {why}"), None)
                .await?;
            return Ok(NegotiationReply {
                accepted: true,
                state: n.state,
                reason: None,
            });
        }
        Ok(NegotiationReply {
            accepted: true,
            state: n.state,
            reason: None,
        })
    }

    /// Applies a step other than a request to this side's record.
    async fn apply_step(
        &self,
        peer: &TrustedMember,
        peer_key: &[u8; 32],
        n: Negotiation,
        message: NegotiationMessage,
    ) -> Result<NegotiationReply, NodeError> {
        let target = message.state();
        let ok = |n: &Negotiation| NegotiationReply {
            accepted: true,
            state: n.state,
            reason: None,
        };
        if let NegotiationMessage::Terminate { reason, .. } = &message {
            if n.state == NegotiationState::Terminated {
                return Ok(ok(&n));
            }
            let next = self.end_locally(&n, &peer.id, reason).await?;
            return Ok(ok(&next));
        }
        // A step already applied (a repeated delivery) is acknowledged again.
        if n.state == target
            || (target == NegotiationState::Agreed && n.state == NegotiationState::Verified)
            || (target == NegotiationState::Agreed && n.state == NegotiationState::Finalized)
            || (target == NegotiationState::Verified && n.state == NegotiationState::Finalized)
        {
            return Ok(ok(&n));
        }
        if n.state == NegotiationState::Terminated {
            return Ok(NegotiationReply {
                accepted: false,
                state: n.state,
                reason: n.reason.clone(),
            });
        }
        let refused = match self.step(peer, peer_key, &n, message).await {
            Ok(next) => return Ok(ok(&next)),
            Err(NodeError::Agreement(why)) => why,
            Err(e) => return Err(e),
        };
        let next = self
            .end_locally(
                &n,
                self.member(),
                &format!("refused a step from {}: {refused}", peer.id),
            )
            .await?;
        Ok(NegotiationReply {
            accepted: false,
            state: next.state,
            reason: next.reason,
        })
    }

    async fn step(
        &self,
        peer: &TrustedMember,
        peer_key: &[u8; 32],
        n: &Negotiation,
        message: NegotiationMessage,
    ) -> Result<Negotiation, NodeError> {
        let target = message.state();
        if !n.state.can_move_to(target) {
            return Err(NodeError::Agreement(format!(
                "a negotiation in state {} cannot move to {target}",
                n.state
            )));
        }
        match message {
            NegotiationMessage::Offer { terms, note, .. } => {
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
            NegotiationMessage::Accept { .. } => {
                let next = self
                    .advance(
                        n,
                        target,
                        &peer.id,
                        "the consumer accepted the offer",
                        |_| {},
                    )
                    .await?;
                // The owner made the offer: its acceptance is agreed at once.
                let terms = next
                    .offer
                    .clone()
                    .ok_or_else(|| NodeError::Agreement("there was no offer to accept".into()))?;
                // An accepted offer never replaces an agreement in force for the same
                // purpose (only a steward's approval with supersede does).
                self.agree(next, terms, "the consumer accepted this node's offer", None)
                    .await
            }
            NegotiationMessage::Agree {
                agreement,
                signature,
                ..
            } => {
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
            NegotiationMessage::Verify { signature, .. } => {
                let agreement = n.agreement.clone().ok_or_else(|| {
                    NodeError::Agreement("there is no agreement to countersign".into())
                })?;
                let consumer_key = b64(peer_key);
                if !signature_verifies(&agreement, &signature, &consumer_key) {
                    return Err(NodeError::Agreement(
                        "the consumer's countersignature does not verify".into(),
                    ));
                }
                let next = self
                    .advance(n, target, &peer.id, "countersignature verified", |x| {
                        x.signatures.consumer = Some(signature);
                        x.signatures.consumer_key = Some(consumer_key);
                    })
                    .await?;
                let fin = self
                    .advance(
                        &next,
                        NegotiationState::Finalized,
                        self.member(),
                        "agreement in force",
                        |_| {},
                    )
                    .await?;
                tracing::info!(negotiation = %n.id, consumer = %n.consumer, product = %n.request.product, "agreement finalized");
                self.send(&peer.id, &NegotiationMessage::Finalize { id: n.id.clone() })
                    .await?;
                if let Some(old) = &agreement.supersedes
                    && let Err(e) = self
                        .terminate(old, &format!("superseded by agreement {}", n.id))
                        .await
                {
                    tracing::warn!(negotiation = %old, error = %e, "cannot revoke a superseded agreement");
                }
                Ok(fin)
            }
            NegotiationMessage::Finalize { .. } => {
                check_signatures(n).map_err(NodeError::Agreement)?;
                self.advance(n, target, &peer.id, "agreement in force", |_| {})
                    .await
            }
            NegotiationMessage::Request { .. } | NegotiationMessage::Terminate { .. } => {
                unreachable!("handled by the caller")
            }
        }
    }

    // ---- delivery ----

    /// Queues a step for `peer` and tries to deliver the queue at once (what cannot be
    /// delivered now is retried by [`Node::run_negotiations`]).
    async fn send(&self, peer: &MemberId, message: &NegotiationMessage) -> Result<(), NodeError> {
        let body = serde_json::to_string(message).expect("messages serialise");
        self.store()
            .enqueue_message(peer, KIND, &body, Utc::now())
            .await?;
        let node = self.clone();
        // Delivery may call back into this node (the peer answers with its own steps), so
        // it runs on its own task rather than inside the caller's request.
        tokio::spawn(async move {
            if let Err(e) = node.deliver_outbox().await {
                tracing::warn!(error = %e, "cannot deliver negotiation messages");
            }
        });
        Ok(())
    }

    /// Delivers the messages that are due, in order per peer (a peer's later messages wait
    /// while an earlier one fails). Returns how many were delivered.
    pub async fn deliver_outbox(&self) -> Result<usize, NodeError> {
        let _one_at_a_time = self.inner.outbox_lock.lock().await;
        let due = self.store().due_messages(Utc::now(), 200).await?;
        let mut by_peer: BTreeMap<MemberId, Vec<OutboxMessage>> = BTreeMap::new();
        for m in due {
            by_peer.entry(m.peer.clone()).or_default().push(m);
        }
        let mut delivered = 0;
        for (peer, messages) in by_peer {
            for m in messages {
                match self.deliver(&peer, &m).await {
                    Ok(()) => delivered += 1,
                    Err(e) => {
                        let wait = (1i64 << m.attempts.clamp(0, 8)).min(MAX_BACKOFF_SECONDS);
                        tracing::info!(peer = %peer, message = m.id, attempts = m.attempts + 1, error = %e, "negotiation message not delivered; will retry");
                        self.store()
                            .message_failed(
                                m.id,
                                &e.to_string(),
                                Utc::now() + chrono::Duration::seconds(wait),
                            )
                            .await?;
                        break;
                    }
                }
            }
        }
        Ok(delivered)
    }

    async fn deliver(&self, peer: &MemberId, m: &OutboxMessage) -> Result<(), NodeError> {
        let message: NegotiationMessage =
            serde_json::from_str(&m.body_json).map_err(|e| StoreError::Corrupt {
                what: format!("outbox message {}", m.id),
                message: e.to_string(),
            })?;
        let trust = self.enrolled()?;
        let list = trust.ensure_usable(Utc::now())?;
        let Some(member) = list.member(peer).cloned() else {
            // The peer left the ecosystem: nothing can reach it any more.
            self.store().message_delivered(m.id).await?;
            self.settle(
                &message,
                peer,
                &format!("member {peer} is no longer on the trust list"),
            )
            .await?;
            return Ok(());
        };
        let material = trust.material();
        let signer = Signer {
            member: self.member(),
            key: &material.key,
        };
        let resp = self
            .peer_client()?
            .call(
                &signer,
                &list,
                &member,
                reqwest_post(),
                paths::NEGOTIATIONS,
                m.body_json.clone().into_bytes(),
            )
            .await;
        let reply: NegotiationReply = match resp {
            Ok(r) => serde_json::from_slice(&r.body).map_err(|e| ExchangeError::Protocol {
                peer: peer.to_string(),
                reason: format!("its answer to a negotiation step is not understood: {e}"),
            })?,
            Err(e) => return Err(e.into()),
        };
        self.store().message_delivered(m.id).await?;
        if !reply.accepted {
            let why = reply.reason.unwrap_or_else(|| "no reason given".to_owned());
            self.settle(&message, peer, &format!("{peer} refused: {why}"))
                .await?;
        }
        Ok(())
    }

    /// Terminates this side's record after the peer refused a step (or cannot be reached
    /// any more), unless it is over already.
    async fn settle(
        &self,
        message: &NegotiationMessage,
        peer: &MemberId,
        reason: &str,
    ) -> Result<(), NodeError> {
        for role in [NegotiationRole::Consumer, NegotiationRole::Provider] {
            if let Some(n) = self.store().negotiation(message.id(), role).await?
                && n.peer() == peer
                && n.state != NegotiationState::Terminated
            {
                match self.end_locally(&n, peer, reason).await {
                    Ok(_) | Err(NodeError::Store(StoreError::NegotiationMoved { .. })) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Terminates every unfinished negotiation past its deadline, and tells the peer.
    pub async fn expire_negotiations(&self) -> Result<usize, NodeError> {
        let late = self.store().negotiations_past_deadline(Utc::now()).await?;
        let mut n_ended = 0;
        for n in late {
            let reason = format!(
                "no agreement was reached by the deadline {}",
                n.deadline.to_rfc3339()
            );
            match self.end_locally(&n, self.member(), &reason).await {
                Ok(_) => {}
                Err(NodeError::Store(StoreError::NegotiationMoved { .. })) => continue,
                Err(e) => return Err(e),
            }
            n_ended += 1;
            self.send(
                n.peer(),
                &NegotiationMessage::Terminate {
                    id: n.id.clone(),
                    reason: format!("{}: {reason}", self.member()),
                },
            )
            .await?;
        }
        Ok(n_ended)
    }

    /// Delivers owed messages and ends late negotiations every `every`, until `shutdown`.
    pub async fn run_negotiations(
        &self,
        every: std::time::Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            if self.trust().is_some() {
                if let Err(e) = self.expire_negotiations().await {
                    tracing::warn!(error = %e, "cannot end late negotiations");
                }
                if let Err(e) = self.deliver_outbox().await {
                    tracing::warn!(error = %e, "cannot deliver negotiation messages");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = &mut shutdown => return,
            }
        }
    }

    // ---- agreements in force ----

    /// This node's agreement in force on `role`'s side that applies, per peer and product
    /// (checked signatures and validity, others skipped and logged; among several, the one
    /// `applicable_agreement` chooses, as the owner does).
    pub async fn agreements_in_force(
        &self,
        role: NegotiationRole,
    ) -> Result<HashMap<(MemberId, String), Negotiation>, NodeError> {
        let now = Utc::now();
        let mut all: HashMap<(MemberId, String), Vec<Negotiation>> = HashMap::new();
        for n in self.store().agreements_in_force(role).await? {
            if let Err(why) = check_signatures(&n) {
                tracing::error!(negotiation = %n.id, reason = %why, "agreement not applied");
                continue;
            }
            let Some(a) = n.agreement_in_force(now) else {
                continue;
            };
            let key = (n.peer().clone(), a.product.to_string());
            all.entry(key).or_default().push(n);
        }
        Ok(all
            .into_iter()
            .filter_map(|(key, ns)| {
                let chosen = agora_model::applicable_agreement(
                    ns.iter().filter_map(|n| n.agreement.as_ref()),
                )?
                .id
                .clone();
                let n = ns.into_iter().find(|n| n.id == chosen)?;
                Some((key, n))
            })
            .collect())
    }

    /// The agreements in force between this owner and `consumer` for `product` and
    /// `purpose`, other than negotiation `except`.
    async fn in_force_for_purpose(
        &self,
        consumer: &MemberId,
        product: &agora_model::ProductName,
        purpose: &str,
        except: &str,
    ) -> Result<Vec<String>, NodeError> {
        let now = Utc::now();
        Ok(self
            .store()
            .agreements_with(NegotiationRole::Provider, consumer, None)
            .await?
            .into_iter()
            .filter(|n| n.id != except && check_signatures(n).is_ok())
            .filter_map(|n| {
                n.agreement_in_force(now)
                    .filter(|a| &a.product == product && a.purpose == purpose)
                    .map(|a| a.id.clone())
            })
            .collect())
    }

    /// Maps pseudonyms of an agreement back to the product's subject identifiers: only the
    /// owner can, from its own data and its linkage key. Unknown pseudonyms map to `None`.
    pub async fn reidentify(
        &self,
        id: &str,
        pseudonyms: &[String],
    ) -> Result<Vec<(String, Option<String>)>, NodeError> {
        let n = self
            .find_negotiation(id, Some(NegotiationRole::Provider))
            .await?;
        let a = n
            .agreement
            .as_ref()
            .ok_or_else(|| NodeError::Agreement(format!("negotiation {id} has no agreement")))?;
        let product = self.own_product(&n.request).await?;
        let subject = AgreementTerms::subject_column(&product.metadata)
            .ok_or_else(|| {
                NodeError::Agreement(format!(
                    "{} has no subject identifier column to map pseudonyms back to",
                    product.name
                ))
            })?
            .to_owned();
        let epoch = a
            .linkage_epoch
            .ok_or_else(|| NodeError::Agreement(format!("agreement {id} shares no pseudonyms")))?;
        let (_, key) = self
            .enrolled()?
            .linkage_key(&a.purpose, &a.consumer, Some(epoch))
            .await?;
        let wanted: std::collections::HashSet<&str> =
            pseudonyms.iter().map(String::as_str).collect();
        let binding = crate::federation::binding_of(product.clone(), None);
        let found = self
            .engine()
            .reidentify(
                &binding,
                &subject,
                &agora_engine::LinkageKey::new(key),
                &wanted,
            )
            .await?;
        let record = PolicyDecisionRecord {
            seq: 0,
            at: Utc::now(),
            principal: self.member().to_string(),
            action: "reidentify".into(),
            resource: format!("{}/{}", self.member(), product.name),
            decision: "allow".into(),
            policies: vec!["owner/reidentification".into()],
            reasons: format!(
                "the owner mapped {} pseudonyms of agreement {id} back ({} found)",
                pseudonyms.len(),
                found.len()
            ),
            context_json: serde_json::json!({"negotiation": id, "purpose": a.purpose}).to_string(),
        };
        self.store().log_policy_decision(&record).await?;
        Ok(pseudonyms
            .iter()
            .map(|p| (p.clone(), found.get(p.as_str()).cloned()))
            .collect())
    }
}

fn reqwest_post() -> agora_exchange::Method {
    agora_exchange::Method::POST
}

/// Whether a product needs an agreement to be read by another member.
pub(crate) fn needs_agreement(classification: Classification) -> bool {
    classification != Classification::Open
}

/// The linkage key an agreement's pseudonyms are made with (the owner's node holds it).
pub(crate) async fn linkage_key_of(
    node: &Node,
    a: &Agreement,
) -> Result<Option<agora_engine::LinkageKey>, NodeError> {
    if !a.terms.uses_pseudonyms() {
        return Ok(None);
    }
    let (_, key) = node
        .enrolled()?
        .linkage_key(&a.purpose, &a.consumer, a.linkage_epoch)
        .await?;
    Ok(Some(agora_engine::LinkageKey::new(key)))
}
