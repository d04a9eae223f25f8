//! Negotiation steps from the other member's node: a request (or a request with other
//! terms, answering this owner's offer) and the steps that follow, applied to this side's
//! record or refused, which ends the negotiation on both sides.

use agora_model::{
    AccessRequest, Negotiation, NegotiationMessage, NegotiationRole, NegotiationState, Product,
    TrustedMember,
};
use agora_policy::PolicyAction;
use agora_store::StoreError;
use chrono::{DateTime, Utc};

use super::{NegotiationReply, event};
use crate::{Node, NodeError};

impl Node {
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

    /// A first request from a consumer: checked, decided by the policies (refused, left
    /// to a steward, or approved by rule), recorded, and, when approved by rule, agreed.
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
        let verdict = self.judge_request(peer, &n).await?;
        let auto = match verdict {
            Verdict::Refused(reason) => {
                n.state = NegotiationState::Terminated;
                n.reason = Some(reason);
                None
            }
            Verdict::ForSteward => None,
            Verdict::ApprovedByRule(why) => Some(why),
        };
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
                return Ok(reply(&n, n.state != NegotiationState::Terminated));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(negotiation = %id, consumer = %peer.id, product = %request.product, state = %n.state, "access request received");
        if n.state == NegotiationState::Terminated {
            return Ok(reply(&n, false));
        }
        let n = match auto {
            Some(why) => {
                let terms = n.request.terms.clone();
                self.agree(n, terms, &format!("approved by rule: {why}"), None)
                    .await?
            }
            None => n,
        };
        Ok(NegotiationReply {
            accepted: true,
            state: n.state,
            reason: None,
        })
    }

    /// What becomes of a first request: refused (its id, its validity or deadline, its
    /// terms against the product, or the policies), left to a steward, or approved by a
    /// rule. Both policy decisions are logged.
    async fn judge_request(
        &self,
        peer: &TrustedMember,
        n: &Negotiation,
    ) -> Result<Verdict, NodeError> {
        let (id, request, now) = (&n.id, &n.request, n.created_at);
        let checked: Result<Product, String> = async {
            if id.is_empty() || id.len() > 64 {
                return Err("the negotiation id must have 1 to 64 characters".to_owned());
            }
            request.validate(&peer.id, now).map_err(|e| e.to_string())?;
            if n.deadline <= now {
                return Err("its deadline has already passed".into());
            }
            self.product_for(request).await
        }
        .await;
        let product = match checked {
            Err(reason) => return Ok(Verdict::Refused(format!("refused: {reason}"))),
            Ok(p) => p,
        };
        let d = self
            .decide(PolicyAction::Request, n, &request.terms, &product.metadata)
            .await?;
        if !d.allowed {
            let admitted = &product.metadata.purposes;
            let hint = if admitted.contains(&request.purpose) {
                String::new()
            } else if admitted.is_empty() {
                format!(" ({} admits no purpose for requests)", product.name)
            } else {
                format!(
                    " ({} admits the purposes {}; {} is not among them)",
                    product.name,
                    admitted.join(", "),
                    request.purpose
                )
            };
            return Ok(Verdict::Refused(format!(
                "refused by policy: {}{hint}",
                d.explain()
            )));
        }
        let a = self
            .decide(
                PolicyAction::AutoApprove,
                n,
                &request.terms,
                &product.metadata,
            )
            .await?;
        Ok(if a.allowed {
            Verdict::ApprovedByRule(a.explain())
        } else {
            Verdict::ForSteward
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

    /// Moves this side's record as `message` says, or refuses with [`NodeError::Agreement`].
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
                self.on_offer(peer, n, terms, note).await
            }
            NegotiationMessage::Accept { .. } => self.on_acceptance(peer, n).await,
            NegotiationMessage::Agree {
                agreement,
                signature,
                ..
            } => {
                self.on_agreement(peer, peer_key, n, agreement, signature)
                    .await
            }
            NegotiationMessage::Verify { signature, .. } => {
                self.on_countersignature(peer, peer_key, n, signature).await
            }
            NegotiationMessage::Finalize { .. } => self.on_finalize(peer, n).await,
            NegotiationMessage::Request { .. } | NegotiationMessage::Terminate { .. } => {
                unreachable!("handled by the caller")
            }
        }
    }
}

/// What becomes of a first request.
enum Verdict {
    Refused(String),
    ForSteward,
    /// Approved by a rule, with the rule's explanation.
    ApprovedByRule(String),
}

/// The answer that reports this side's record.
fn reply(n: &Negotiation, accepted: bool) -> NegotiationReply {
    NegotiationReply {
        accepted,
        state: n.state,
        reason: n.reason.clone(),
    }
}
