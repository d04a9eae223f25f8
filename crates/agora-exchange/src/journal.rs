//! Where outbound exchanges are recorded. The exchange log has one writer, the node: this
//! crate says what happened on a call (its start, its end) through [`ExchangeJournal`],
//! and the node writes it to its store alongside the inbound records it keeps itself.

use agora_model::{ExchangeEnd, ExchangeStart};

/// Why an exchange could not be recorded (the store's words, already lower-case).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JournalError(pub String);

/// The node's exchange log, as the clients in this crate report to it.
#[async_trait::async_trait]
pub trait ExchangeJournal: Send + Sync + 'static {
    /// Records a call that has started and not ended; returns its record's number. Nothing
    /// of the answer is read before this returns.
    async fn opened(&self, start: &ExchangeStart) -> Result<i64, JournalError>;
    /// Completes record `seq` with the certificate the peer presented and how it ended.
    async fn closed(
        &self,
        seq: i64,
        peer_certificate: &str,
        end: &ExchangeEnd,
    ) -> Result<(), JournalError>;
    /// Records a whole call at once.
    async fn recorded(&self, start: &ExchangeStart, end: &ExchangeEnd) -> Result<(), JournalError>;
}
