//! Outbound calls from a node to the rest of the ecosystem: the authority (enrolment,
//! certificates, trust lists) and other members' nodes (signed requests over mutual TLS,
//! Arrow Flight streams). Inbound requests are `agora-server`'s.

pub mod authority;
pub mod flight;
mod journal;
pub mod peer;

pub use authority::{AuthorityClient, Witnessing};
pub use flight::{FlightPeer, PeerBatches};
pub use journal::{ExchangeJournal, JournalError};
pub use peer::{PeerClient, PeerResponse, Signer};

use agora_trust::TrustError;

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Trust(#[from] TrustError),
    #[error("{peer} is unreachable: {reason}")]
    Unreachable { peer: String, reason: String },
    #[error("{peer} refused: {reason}")]
    Refused { peer: String, reason: String },
    #[error("{peer} answered wrongly: {reason}")]
    Protocol { peer: String, reason: String },
    #[error("cannot record the exchange in the exchange log: {0}")]
    Journal(#[from] JournalError),
}

/// Whether a response status is a refusal (the exchange protocol signs the status of every
/// answer; 400 and above refuse or fail the request).
pub fn is_refusal(status: u16) -> bool {
    status >= 400
}

impl ExchangeError {
    /// Explains a failed HTTP call in plain words: TLS refusals, timeouts, connection errors.
    pub(crate) fn unreachable(peer: &str, what: &str, e: &reqwest::Error) -> Self {
        let reason = if let Some(tls) = find_tls_error(e) {
            format!(
                "{what}: TLS handshake failed: {}",
                agora_trust::tls::explain(tls)
            )
        } else if e.is_timeout() {
            format!("{what}: no answer in time")
        } else if e.is_connect() {
            format!("{what}: cannot connect ({})", root_cause(e))
        } else {
            format!("{what}: {}", root_cause(e))
        };
        Self::Unreachable {
            peer: peer.to_owned(),
            reason,
        }
    }
}

/// The rustls error somewhere in an error's source chain.
pub(crate) fn find_tls_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            let inner: &(dyn std::error::Error + 'static) = inner;
            cur = Some(inner);
            continue;
        }
        cur = err.source();
    }
    None
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
