//! The outbox: every step owed to the other member is stored with the step itself, then
//! delivered in order per peer and retried with back-off until the peer acknowledges it.

use std::collections::BTreeMap;
use std::sync::Arc;

use agora_exchange::{ExchangeError, Signer};
use agora_model::{
    MemberId, NegotiationMessage, NegotiationRole, NegotiationState, TrustList, TrustedMember,
    paths,
};
use agora_store::{OutboxMessage, StoreError};
use chrono::Utc;

use super::NegotiationReply;
use crate::{Node, NodeError};

/// The outbox message kind of negotiation steps.
const KIND: &str = "negotiation";
/// Longest wait between two delivery attempts.
const MAX_BACKOFF_SECONDS: i64 = 300;

/// How negotiation steps reach the other member's node. By default a node posts them over
/// the signed exchange channel; a program that holds the other member's node in the same
/// process (the node's own tests, tools) can hand them over directly instead.
#[async_trait::async_trait]
pub trait Courier: Send + Sync + 'static {
    /// Delivers `message` from `from` to member `to` and returns its answer.
    async fn carry(
        &self,
        from: &Node,
        to: &TrustedMember,
        message: &NegotiationMessage,
    ) -> Result<NegotiationReply, NodeError>;
}

impl Node {
    /// Queues a step for `peer` and tries to deliver the queue at once (what cannot be
    /// delivered now is retried by [`Node::run_negotiations`]).
    pub(super) async fn send(
        &self,
        peer: &MemberId,
        message: &NegotiationMessage,
    ) -> Result<(), NodeError> {
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

    pub(super) async fn deliver(
        &self,
        peer: &MemberId,
        m: &OutboxMessage,
    ) -> Result<(), NodeError> {
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
        let courier = self.inner.courier.get().cloned();
        let reply = match courier {
            Some(c) => c.carry(self, &member, &message).await?,
            None => self.post_step(&list, &member, m).await?,
        };
        self.store().message_delivered(m.id).await?;
        if !reply.accepted {
            let why = reply.reason.unwrap_or_else(|| "no reason given".to_owned());
            self.settle(&message, peer, &format!("{peer} refused: {why}"))
                .await?;
        }
        Ok(())
    }

    /// Posts a step to the peer's exchange listener as a signed request.
    async fn post_step(
        &self,
        list: &TrustList,
        member: &TrustedMember,
        m: &OutboxMessage,
    ) -> Result<NegotiationReply, NodeError> {
        let trust = self.enrolled()?;
        let material = trust.material();
        let signer = Signer {
            member: self.member(),
            key: &material.key,
        };
        let resp = self
            .peer_client()?
            .post(
                &signer,
                list,
                member,
                paths::NEGOTIATIONS,
                m.body_json.clone().into_bytes(),
            )
            .await?;
        Ok(
            serde_json::from_slice(&resp.body).map_err(|e| ExchangeError::Protocol {
                peer: member.id.to_string(),
                reason: format!("its answer to a negotiation step is not understood: {e}"),
            })?,
        )
    }

    /// Hands negotiation steps to `courier` instead of posting them over the exchange
    /// channel (set once, before the first step is sent).
    pub fn deliver_through(&self, courier: Arc<dyn Courier>) -> Result<(), NodeError> {
        self.inner.courier.set(courier).map_err(|_| {
            NodeError::Settings("this node already delivers through another courier".into())
        })
    }

    /// Terminates this side's record after the peer refused a step (or cannot be reached
    /// any more), unless it is over already.
    pub(super) async fn settle(
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
}
