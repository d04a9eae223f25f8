//! The node's side of exchanges with other members: admitting signed inbound requests
//! (peer standing, signature, clock, replay) and recording them; calling peers; the
//! federated catalog of their offers.
//!
//! The exchange log has one writer, this module: inbound records directly, outbound ones
//! as the exchange clients report them through [`ExchangeJournal`].

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use agora_exchange::{ExchangeJournal, JournalError, PeerClient, Signer};
use agora_model::{
    Direction, ExchangeEnd, ExchangeStart, MemberId, Offer, Page, PageRequest, SearchHit,
    TrustedMember, paths,
};
use agora_store::{SearchScope, Store, StoreError};
use agora_trust::{CertInfo, RequestSignature, RequestTarget, ResponseSignature};
use chrono::Utc;

use crate::{Node, NodeError};

/// The exchange log as the exchange clients write to it: the node's store.
struct StoreJournal(Store);

#[async_trait::async_trait]
impl ExchangeJournal for StoreJournal {
    async fn opened(&self, start: &ExchangeStart) -> Result<i64, JournalError> {
        self.0
            .log_exchange(start, None)
            .await
            .map_err(|e| JournalError(e.to_string()))
    }

    async fn closed(
        &self,
        seq: i64,
        peer_certificate: &str,
        end: &ExchangeEnd,
    ) -> Result<(), JournalError> {
        self.0
            .finish_outbound(seq, peer_certificate, end)
            .await
            .map_err(|e| JournalError(e.to_string()))
    }

    async fn recorded(&self, start: &ExchangeStart, end: &ExchangeEnd) -> Result<(), JournalError> {
        self.0
            .log_exchange(start, Some(end))
            .await
            .map(drop)
            .map_err(|e| JournalError(e.to_string()))
    }
}

/// An admitted inbound request: who sent it, and its log record to complete.
#[derive(Debug)]
pub struct Inbound {
    pub peer: TrustedMember,
    /// The public key of the certificate the peer presented (it signed the request).
    pub peer_key: [u8; 32],
    pub nonce: String,
    /// The catalog version when the request was admitted (what it is served from).
    pub(crate) catalog_version: i64,
    /// Completes the record as cancelled if the request is dropped before it ended (the
    /// peer closed the connection, the server stopped).
    guard: Unfinished,
    /// What the request read, for its log entry (set when a query is planned).
    read: std::sync::Mutex<agora_model::AuditContext>,
    /// What its query read under agreements (complete once the answer has been sent).
    ledger: std::sync::Mutex<Option<std::sync::Arc<agora_engine::AccessLedger>>>,
}

impl Inbound {
    /// Notes what the request reads (its products and the agreements they are served
    /// under), for the transparency log.
    pub(crate) fn note_read(
        &self,
        context: agora_model::AuditContext,
        ledger: std::sync::Arc<agora_engine::AccessLedger>,
    ) {
        *self.read.lock().expect("lock") = context;
        *self.ledger.lock().expect("lock") = Some(ledger);
    }
}

/// The log record of an admitted request (its sequence number and start), completed as
/// cancelled if the request is dropped before its end is recorded.
#[derive(Debug)]
struct Unfinished {
    store: agora_store::Store,
    seq: i64,
    started: Instant,
    ended: std::sync::atomic::AtomicBool,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if self.ended.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        // Outside a runtime (a test dropping what it built) nothing can be written; the
        // next start-up marks the record interrupted.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let end = ExchangeEnd {
            outcome: CANCELLED.into(),
            duration_ms: self.started.elapsed().as_millis() as i64,
            ..Default::default()
        };
        let (store, seq) = (self.store.clone(), self.seq);
        tracing::info!(seq, "exchange cancelled before its end");
        rt.spawn(async move {
            if let Err(e) = store.finish_exchange(seq, &end).await {
                tracing::error!(seq, error = %e, "cannot record a cancelled exchange");
            }
        });
    }
}

/// The file whose modification time says when the exchange listener was last alive.
pub const HEARTBEAT: &str = "heartbeat";

/// The outcome of an exchange whose peer went away before it ended.
pub const CANCELLED: &str = "cancelled: the connection closed before the answer was complete";

/// How an inbound exchange ended, for its log record.
#[derive(Debug, Default)]
pub struct InboundEnd {
    pub status: u16,
    /// Hex SHA-256 of the response body, or of the whole stream.
    pub digest: String,
    pub bytes: i64,
    pub rows: i64,
    /// Why the response failed part-way, if it did (the log says so).
    pub failure: Option<String>,
}

impl InboundEnd {
    /// The end of a plain response with this body.
    pub fn body(status: u16, body: &[u8]) -> Self {
        Self {
            status,
            digest: agora_trust::digest_hex(body),
            bytes: body.len() as i64,
            ..Default::default()
        }
    }
}

impl Node {
    /// Decides whether a peer may talk to this node at all (certificate on the trust list,
    /// list not expired beyond grace), before any request is read.
    /// A member admitted moments ago is found by fetching the list at once.
    pub async fn admit_peer(&self, presented: &CertInfo) -> Result<TrustedMember, NodeError> {
        let trust = self.enrolled()?;
        let (member, kind) = trust.check_peer_fresh(presented, Utc::now()).await?;
        if kind != agora_model::CertificateKind::Node {
            return Err(NodeError::PeerRefused {
                peer: member.id.to_string(),
                reason: "node-to-node requests need the member's node certificate".into(),
            });
        }
        Ok(member)
    }

    /// Admits a signed node-to-node request: the sender's certificate stands on the trust
    /// list, the signature over method, path, body digest, timestamp and nonce verifies
    /// with that certificate's key, the time is within tolerance, and the nonce is new.
    /// The request is recorded before it is served.
    pub async fn begin_inbound(
        &self,
        presented: &CertInfo,
        signature: Option<&str>,
        target: &RequestTarget<'_>,
    ) -> Result<Inbound, NodeError> {
        let trust = self.enrolled()?;
        let peer = self.admit_peer(presented).await?;
        let refuse = |reason: String| NodeError::PeerRefused {
            peer: peer.id.to_string(),
            reason,
        };
        let header = signature.ok_or_else(|| {
            refuse("the request carries no agora-signature header; node-to-node requests must be signed".into())
        })?;
        let sig = RequestSignature::parse(header).map_err(|e| refuse(e.to_string()))?;
        if sig.from != peer.id {
            return Err(refuse(format!(
                "the request is signed as {} but the certificate is {}'s",
                sig.from, peer.id
            )));
        }
        if &sig.to != self.member() {
            return Err(refuse(format!(
                "the request is addressed to {}, not to {}",
                sig.to,
                self.member()
            )));
        }
        let outcome = sig.verify(
            &presented.public_key,
            target,
            Utc::now(),
            trust.settings().clock_tolerance,
        );
        let start = ExchangeStart {
            direction: Direction::Inbound,
            peer: peer.id.clone(),
            peer_certificate: presented.fingerprint.clone(),
            operation: format!("{} {}", target.method, target.path),
            nonce: sig.nonce.clone(),
            requested_at: sig.timestamp,
            request_digest: target.body_digest.to_owned(),
            request_signature: sig.signature_b64(),
        };
        if let Err(e) = outcome {
            let end = ExchangeEnd {
                outcome: format!("refused: {e}"),
                ..Default::default()
            };
            // A refused request is logged too (unless its nonce is a replay itself).
            let _ = self.store().log_exchange(&start, Some(&end)).await;
            return Err(refuse(e.to_string()));
        }
        let (seq, catalog_version) = match self.store().begin_exchange(&start).await {
            Ok(v) => v,
            Err(StoreError::Replay { .. }) => {
                tracing::warn!(peer = %peer.id, nonce = %sig.nonce, "replayed request refused");
                return Err(refuse(format!(
                    "nonce {} was already used: a replayed request",
                    sig.nonce
                )));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Inbound {
            peer,
            peer_key: presented.public_key,
            nonce: sig.nonce,
            catalog_version,
            guard: Unfinished {
                store: self.store().clone(),
                seq,
                started: Instant::now(),
                ended: Default::default(),
            },
            read: Default::default(),
            ledger: Default::default(),
        })
    }

    /// Marks the exchanges a previous run left pending as interrupted, with the time that
    /// run was last known alive (its heartbeat), and returns how many there were. Called
    /// by the exchange listener when it starts: only it opens inbound records.
    pub async fn reconcile_interrupted(&self) -> Result<u64, NodeError> {
        let last_alive = std::fs::metadata(self.data_dir().join(HEARTBEAT))
            .and_then(|m| m.modified())
            .ok()
            .map(chrono::DateTime::<Utc>::from);
        let outcome = match last_alive {
            Some(t) => format!(
                "interrupted: the node stopped at about {} before answering",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => "interrupted: the node stopped before answering".to_owned(),
        };
        let n = self.store().interrupt_pending(&outcome).await?;
        if n > 0 {
            tracing::warn!(records = n, last_alive = ?last_alive, "exchanges left pending by the previous run marked interrupted");
        }
        Ok(n)
    }

    /// Notes that the node is alive (the exchange listener does so every few seconds), so
    /// that a later start can tell when a crash happened.
    pub fn heartbeat(&self) -> Result<(), NodeError> {
        let path = self.data_dir().join(HEARTBEAT);
        std::fs::write(&path, Utc::now().to_rfc3339()).map_err(|e| NodeError::DataDirNotWritable {
            path: path.display().to_string(),
            source: e,
        })
    }

    /// Signs the response to an admitted request and completes its log record. Returns the
    /// response-signature header value.
    pub async fn end_inbound(
        &self,
        inbound: &Inbound,
        end: InboundEnd,
    ) -> Result<String, NodeError> {
        let (header, record) = self.sign_inbound_end(inbound, end)?;
        self.record_inbound_end(inbound, &record).await?;
        Ok(header)
    }

    /// Signs the response to an admitted request: the response-signature header value, and
    /// the end of its log record for [`Node::record_inbound_end`]. Streams send the
    /// signature as soon as it is made and complete the record alongside.
    pub fn sign_inbound_end(
        &self,
        inbound: &Inbound,
        end: InboundEnd,
    ) -> Result<(String, ExchangeEnd), NodeError> {
        let trust = self.enrolled()?;
        let material = trust.material();
        let digest = end.digest;
        let rsig = ResponseSignature::sign(
            &material.key,
            &inbound.nonce,
            end.status,
            &digest,
            self.member(),
            Utc::now(),
        );
        let record = ExchangeEnd {
            response_digest: digest,
            response_signature: rsig.signature_b64(),
            outcome: match (&end.failure, end.status) {
                (Some(why), _) => format!("failed: {why}"),
                (None, s) if !agora_exchange::is_refusal(s) => "ok".into(),
                (None, s) => format!("refused: status {s}"),
            },
            duration_ms: inbound.guard.started.elapsed().as_millis() as i64,
            rows: end.rows,
            bytes: end.bytes,
            context: inbound.read.lock().expect("lock").clone(),
        };
        Ok((rsig.header(), record))
    }

    /// Completes the log record of an inbound exchange, with whose records its answer
    /// carried (see [`Node::account`]).
    pub async fn record_inbound_end(
        &self,
        inbound: &Inbound,
        end: &ExchangeEnd,
    ) -> Result<(), NodeError> {
        let ledger = inbound.ledger.lock().expect("lock").take();
        let mut end = end.clone();
        if let Some(ledger) = ledger {
            self.account(&ledger, &mut end.context).await?;
        }
        self.store()
            .finish_exchange(inbound.guard.seq, &end)
            .await?;
        inbound
            .guard
            .ended
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// What this node offers to the other members: every product's metadata, never data.
    pub async fn offers(&self) -> Result<Vec<Offer>, NodeError> {
        Ok(self
            .store()
            .all_products()
            .await?
            .iter()
            .map(|p| p.offer())
            .collect())
    }

    /// The exchange log, for the exchange clients to record their calls in.
    pub(crate) fn journal(&self) -> Arc<dyn ExchangeJournal> {
        Arc::new(StoreJournal(self.store().clone()))
    }

    /// A client for calls to peers, with this node's current identity.
    pub fn peer_client(&self) -> Result<PeerClient, NodeError> {
        let trust = self.enrolled()?;
        let material = trust.material();
        Ok(PeerClient::new(
            &material.root,
            trust.identity(),
            self.journal(),
            StdDuration::from_secs(30),
        )?)
    }

    /// Fetches every other member's offers and replaces what was known of them. A peer
    /// that cannot be reached keeps its last known offers (with the failure noted).
    /// Returns how many members answered.
    pub async fn refresh_offers(&self) -> Result<usize, NodeError> {
        let trust = self.enrolled()?;
        let list = trust.ensure_usable(Utc::now())?;
        let client = self.peer_client()?;
        let material = trust.material();
        let signer = Signer {
            member: self.member(),
            key: &material.key,
        };
        let mut answered = 0;
        for peer in list.members.iter().filter(|m| &m.id != self.member()) {
            if peer.endpoints.exchange.is_none() {
                continue;
            }
            let result = client
                .get(&signer, &list, peer, paths::OFFERS)
                .await
                .map_err(NodeError::from)
                .and_then(|r| {
                    serde_json::from_slice::<Vec<Offer>>(&r.body).map_err(|e| {
                        NodeError::PeerRefused {
                            peer: peer.id.to_string(),
                            reason: format!("its offers are unreadable: {e}"),
                        }
                    })
                });
            match result {
                Ok(offers) => {
                    self.store()
                        .replace_offers(&peer.id, &offers, Utc::now())
                        .await?;
                    answered += 1;
                }
                Err(e) => {
                    tracing::warn!(peer = %peer.id, error = %e, "cannot fetch offers");
                    self.store()
                        .record_offer_failure(&peer.id, &format!("failed: {e}"))
                        .await?;
                }
            }
        }
        // Members that left the ecosystem take their offers with them.
        for source in self.store().offer_sources().await? {
            if list.member(&source.member).is_none() {
                self.store().forget_offers(&source.member).await?;
            }
        }
        self.offers_changed();
        Ok(answered)
    }

    /// Searches this node's products and, once enrolled, every member's offers.
    pub async fn search_ecosystem(
        &self,
        q: &str,
        page: PageRequest,
    ) -> Result<Page<SearchHit>, NodeError> {
        self.search_ecosystem_filtered(q, page, &Default::default())
            .await
    }

    /// [`Node::search_ecosystem`] narrowed to one owner and/or one classification.
    pub async fn search_ecosystem_filtered(
        &self,
        q: &str,
        page: PageRequest,
        filter: &agora_store::SearchFilter,
    ) -> Result<Page<SearchHit>, NodeError> {
        let scope = if self.trust().is_some() {
            SearchScope::Ecosystem
        } else {
            SearchScope::Local
        };
        let mut hits = self.store().search_filtered(q, page, scope, filter).await?;
        let held = if hits.items.iter().any(|h| h.owner != self.member().as_str()) {
            self.agreements_in_force(agora_model::NegotiationRole::Consumer)
                .await?
        } else {
            Default::default()
        };
        for h in &mut hits.items {
            let agreement = MemberId::parse(&h.owner)
                .ok()
                .and_then(|owner| held.get(&(owner, h.name.to_string())))
                .and_then(|n| n.agreement.as_ref());
            h.access = Some(access_hint(self.member(), h, agreement));
            h.agreement = agreement.map(|a| a.id.clone());
        }
        Ok(hits)
    }

    /// A remote member's offer, as last fetched.
    pub async fn offer(&self, member: &MemberId, name: &str) -> Result<Option<Offer>, NodeError> {
        Ok(self.store().offer(member, name).await?)
    }
}

/// How a catalog entry can be used from this node: its own, open, under the agreement in
/// force that this node holds for it, or to be requested.
fn access_hint(me: &MemberId, h: &SearchHit, held: Option<&agora_model::Agreement>) -> String {
    if h.owner == me.as_str() {
        format!("your own product: query it as {}", h.name)
    } else if !h.classification.needs_agreement() {
        format!("open: query it as \"{}\".{}", h.owner, h.name)
    } else if let Some(a) = held {
        format!(
            "under agreement {} ({}, for {}, until {}): query it as \"{}\".{}",
            a.id,
            a.terms.mode,
            a.purpose,
            a.valid_until.format("%Y-%m-%d"),
            h.owner,
            h.name
        )
    } else {
        format!(
            "{}: needs a sharing agreement with {}, which you do not hold (request access: agora agreement request --owner {} --product {})",
            h.classification, h.owner, h.owner, h.name
        )
    }
}

impl Node {
    /// Signs a response this node gives without having admitted the request (a refusal),
    /// so that the caller can still tell the refusal came from this member.
    pub fn sign_refusal(&self, request_nonce: &str, status: u16, body: &[u8]) -> Option<String> {
        let trust = self.trust()?;
        let material = trust.material();
        Some(
            ResponseSignature::sign(
                &material.key,
                request_nonce,
                status,
                &agora_trust::digest_hex(body),
                self.member(),
                Utc::now(),
            )
            .header(),
        )
    }

    /// Keeps the membership current until `shutdown`: fetches the trust list, renews the
    /// node certificate when a third of its life is left, and refreshes the federated
    /// catalog, every `refresh_every`. Failures are logged and retried at the next round.
    pub async fn run_membership(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Some(trust) = self.trust() {
                if let Err(e) = trust.refresh().await {
                    tracing::warn!(error = %e, "cannot refresh the trust list");
                }
                if trust.renewal_due(Utc::now())
                    && let Err(e) = trust.renew(None).await
                {
                    tracing::warn!(error = %e, "cannot renew the node certificate");
                }
                match self.refresh_offers().await {
                    Ok(n) => tracing::debug!(members = n, "federated catalog refreshed"),
                    Err(e) => tracing::warn!(error = %e, "cannot refresh the federated catalog"),
                }
            }
            let every = self
                .trust()
                .map(|t| t.settings().refresh_every)
                .unwrap_or_else(|| chrono::Duration::seconds(60));
            let sleep = tokio::time::sleep(every.to_std().unwrap_or(StdDuration::from_secs(60)));
            tokio::select! {
                () = sleep => {}
                () = &mut shutdown => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn node(dir: &std::path::Path) -> Node {
        let member = MemberId::parse("tax-office").unwrap();
        Node::init(&crate::NodeConfig::new(dir), &member, "Tax Office")
            .await
            .unwrap()
            .0
    }

    fn start(nonce: &str) -> ExchangeStart {
        ExchangeStart {
            direction: Direction::Inbound,
            peer: MemberId::parse("employment-agency").unwrap(),
            peer_certificate: "ab".into(),
            operation: "flight:DoGet".into(),
            nonce: nonce.into(),
            requested_at: Utc::now(),
            request_digest: "cd".into(),
            request_signature: "ef".into(),
        }
    }

    async fn outcome(node: &Node, seq: i64) -> String {
        let all = node.store().exchanges(None, 100).await.unwrap();
        all.into_iter().find(|r| r.seq == seq).unwrap().outcome
    }

    #[tokio::test]
    async fn an_exchange_dropped_before_its_end_is_recorded_as_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path()).await;
        let (seq, _) = node.store().begin_exchange(&start("n1")).await.unwrap();
        let guard = Unfinished {
            store: node.store().clone(),
            seq,
            started: Instant::now(),
            ended: Default::default(),
        };
        drop(guard);
        for _ in 0..100 {
            if outcome(&node, seq).await != "pending" {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
        assert_eq!(outcome(&node, seq).await, CANCELLED);
    }

    #[tokio::test]
    async fn records_a_crash_left_pending_are_marked_interrupted_with_the_last_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path()).await;
        node.heartbeat().unwrap();
        let (seq, _) = node.store().begin_exchange(&start("n2")).await.unwrap();
        let (done, _) = node.store().begin_exchange(&start("n3")).await.unwrap();
        node.store()
            .finish_exchange(
                done,
                &ExchangeEnd {
                    outcome: "ok".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(node.reconcile_interrupted().await.unwrap(), 1);
        let o = outcome(&node, seq).await;
        assert!(
            o.starts_with("interrupted: the node stopped at about 20"),
            "{o}"
        );
        assert_eq!(outcome(&node, done).await, "ok");
        assert_eq!(node.reconcile_interrupted().await.unwrap(), 0);
    }
}
