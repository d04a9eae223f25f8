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
//!
//! Modules: `consumer` (the consumer's moves and the steps it receives), `owner` (the
//! steward's moves, policy decisions, signing, re-identification), `inbound` (steps from
//! the other node, applied or refused), `outbox` (delivery and the [`Courier`] seam),
//! `timers` (deadlines), `signatures`.
//!
//! The workflows: the consumer's `request_access` (checked against the
//! vocabulary and the owner's offer before anything is sent) and `accept_offer` or
//! `counter_request` (an offer answered with other terms: the same `Request` message with
//! the same id, which the owner checks as a first request and moves back to REQUESTED; only
//! the terms may change), the owner's `approve`, `counter_offer`, either side's `terminate`
//! (reject, withdraw, revoke), and `receive_negotiation` for the steps the other node sends
//! (`NegotiationMessage` as a signed `POST /exchange/v1/negotiations`; the sender is the
//! certificate's member, its key the one that must verify its signature). Every step is
//! stored first, with the message owed to the peer queued in the outbox, then delivered in
//! order per peer by `deliver_outbox` with exponential back-off (at most 5 minutes); a
//! repeated delivery is acknowledged without effect. A refused step ends the negotiation on
//! both sides: the receiver terminates its record and answers `accepted: false`, the sender
//! terminates its own on reading it. The deadline travels with the request, and
//! `expire_negotiations` on each side ends what is not finalized by then. On a request the
//! owner asks its `PolicyEngine` (baseline plus `DATA_DIR/policies/*.cedar`, validated when
//! the node opens) whether it may be made and whether it is approved automatically, and
//! logs both decisions. `run_negotiations` delivers and expires every few seconds.

mod consumer;
mod inbound;
mod outbox;
mod owner;
mod signatures;
mod timers;

use std::collections::HashMap;

use agora_model::{
    Agreement, MemberId, Negotiation, NegotiationEvent, NegotiationMessage, NegotiationRole,
    NegotiationState,
};
use agora_store::{PolicyDecisionRecord, StoreError};
use chrono::Utc;
use serde::Serialize;

use crate::{Node, NodeError};

pub use agora_model::NegotiationReply;
pub use outbox::Courier;
pub use signatures::{AgreementStatus, agreement_status, check_signatures, signature_verifies};

/// A negotiation with its history, as one side keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct NegotiationRecord {
    #[serde(flatten)]
    pub negotiation: Negotiation,
    pub events: Vec<NegotiationEvent>,
    /// Steps still to be delivered to the other member.
    pub undelivered: usize,
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

    /// The agreements in force this node read other members' products under, for the
    /// tables a query's plan scanned (`QueryResult::tables`: aliases, CTEs and comments
    /// do not mislead it), as (the product as named in SQL, its agreement), by name.
    pub async fn agreements_read(
        &self,
        tables: &[(Option<String>, String)],
    ) -> Result<Vec<(String, Agreement)>, NodeError> {
        if tables.iter().all(|(member, _)| member.is_none()) {
            return Ok(Vec::new());
        }
        let mut out: Vec<(String, Agreement)> = self
            .agreements_in_force(NegotiationRole::Consumer)
            .await?
            .into_iter()
            .filter_map(|((owner, product), n)| {
                let read = tables
                    .iter()
                    .any(|(m, t)| m.as_deref() == Some(owner.as_str()) && *t == product.as_str());
                let a = n.agreement?;
                read.then(|| (format!("\"{owner}\".{product}"), a))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
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
