//! The owner's side of a negotiation: a steward's approval, counter-offer and
//! re-identification, the policy decisions behind them, signing the agreement, and the
//! steps the consumer's node sends (its acceptance of an offer, its countersignature).

use agora_engine::{Enforcement, LinkageKey};
use agora_model::{
    AccessRequest, Agreement, AgreementTerms, Negotiation, NegotiationMessage, NegotiationRole,
    NegotiationState, Product, ProductMetadata, TrustedMember,
};
use agora_policy::{Decision, PolicyAction, RequestFacts};
use agora_store::PolicyDecisionRecord;
use chrono::Utc;

use super::signatures::{b64, signature_verifies};
use crate::{Node, NodeError};

impl Node {
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

    /// The product a request names, which must be this node's own.
    pub(super) async fn own_product(&self, request: &AccessRequest) -> Result<Product, NodeError> {
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
    pub(super) async fn check_row_filter(
        &self,
        product: &Product,
        terms: &AgreementTerms,
    ) -> Result<(), NodeError> {
        if terms.row_filter.is_none() {
            return Ok(());
        }
        let binding = crate::binding::binding_of(product.clone(), None);
        self.engine()
            .check_enforcement(
                &binding,
                &Enforcement {
                    agreement: "check".into(),
                    terms: terms.clone(),
                    subject: AgreementTerms::subject_column(&product.metadata).map(str::to_owned),
                    linkage_key: Some(LinkageKey::new([0; 32])),
                    cell_key: None,
                    excluded: Vec::new(),
                },
            )
            .await?;
        Ok(())
    }

    /// Asks the policies and logs their decision.
    pub(super) async fn decide(
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
    pub(super) async fn agree(
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

    /// The product an incoming request names, once its terms are checked against it (its
    /// columns and masks, and the row filter as the engine would apply it); the reason
    /// otherwise, as the refusal will say it.
    pub(super) async fn product_for(&self, request: &AccessRequest) -> Result<Product, String> {
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

    /// The consumer accepted this node's offer (ACCEPTED): agreed at once, on the offered
    /// terms.
    pub(super) async fn on_acceptance(
        &self,
        peer: &TrustedMember,
        n: &Negotiation,
    ) -> Result<Negotiation, NodeError> {
        let target = NegotiationState::Accepted;
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

    /// The consumer's countersignature (VERIFIED): checked with the key of the certificate
    /// it came with; the agreement is then in force (FINALIZED) and the one it supersedes,
    /// if any, revoked.
    pub(super) async fn on_countersignature(
        &self,
        peer: &TrustedMember,
        peer_key: &[u8; 32],
        n: &Negotiation,
        signature: String,
    ) -> Result<Negotiation, NodeError> {
        let target = NegotiationState::Verified;
        let agreement = n
            .agreement
            .clone()
            .ok_or_else(|| NodeError::Agreement("there is no agreement to countersign".into()))?;
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

    /// Maps pseudonyms of an agreement back to the product's subject identifiers: only the
    /// owner can, from its own data and its linkage key. Unknown pseudonyms map to `None`.
    pub async fn reidentify(
        &self,
        id: &str,
        pseudonyms: &[String],
    ) -> Result<Vec<(String, Option<String>)>, NodeError> {
        let n = match self
            .find_negotiation(id, Some(NegotiationRole::Provider))
            .await
        {
            Ok(n) => n,
            Err(e) => {
                // The consumer holds the same agreement, but never the key to reverse it.
                if let Ok(mine) = self
                    .find_negotiation(id, Some(NegotiationRole::Consumer))
                    .await
                {
                    return Err(NodeError::Forbidden(format!(
                        "only the owner of the data, {}, can re-identify pseudonyms of agreement {id}: \
                         this node is its consumer and holds no key to reverse them; ask {}'s steward",
                        mine.request.owner, mine.request.owner
                    )));
                }
                return Err(e);
            }
        };
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
        let binding = crate::binding::binding_of(product.clone(), None);
        let found = self
            .engine()
            .reidentify(&binding, &subject, &LinkageKey::new(key), &wanted)
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
