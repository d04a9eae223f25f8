//! Timers: negotiations not finalized by their deadline end on both sides, and the outbox
//! is delivered again, on a fixed beat.

use agora_model::NegotiationMessage;
use agora_store::StoreError;
use chrono::Utc;

use crate::{Node, NodeError};

impl Node {
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
}
