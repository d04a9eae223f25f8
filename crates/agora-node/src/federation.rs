//! Cross-member SQL: the node's side of federated queries.
//!
//! As a consumer, the node gives its query engine every other member's offers as tables
//! named `"member".product`, and a [`RemoteSource`] that sends the engine's remote subplans
//! to their owners over signed Arrow Flight calls. As an owner, it answers other members'
//! SQL over its own products — only `open` ones until agreements exist; any other product
//! is refused with a reason that says an agreement is needed.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use agora_engine::{
    Catalog, EngineError, QueryResult, RemoteBatches, RemoteBinding, RemoteSource, TableBinding,
};
use agora_exchange::{FlightPeer, Signer};
use agora_model::{Classification, MemberId, Product, TrustedMember};
use async_trait::async_trait;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};

use crate::{Inner, Node, NodeError};

/// Connections to other members' Flight endpoints, by member, endpoint URL and the
/// fingerprint of this node's certificate (a connection made before a renewal presents the
/// old certificate, while requests are signed with the new key).
#[derive(Default)]
pub(crate) struct FlightPeers(std::sync::Mutex<HashMap<(MemberId, String, String), FlightPeer>>);

/// The engine's way to other members: through this node's membership.
pub(crate) struct NodeRemote(pub(crate) Weak<Inner>);

#[async_trait]
impl RemoteSource for NodeRemote {
    async fn query(&self, member: &str, sql: &str) -> Result<RemoteBatches, EngineError> {
        let inner = self
            .0
            .upgrade()
            .ok_or_else(|| EngineError::Remote("the node is shutting down".into()))?;
        let node = Node { inner };
        node.remote_query(member, sql).await.map_err(|e| match e {
            NodeError::PeerRefused { .. }
            | NodeError::Exchange(agora_exchange::ExchangeError::Refused { .. }) => {
                EngineError::RemoteRefused(e.to_string())
            }
            _ => EngineError::Remote(e.to_string()),
        })
    }
}

pub(crate) fn bindings(
    products: Vec<Product>,
    refuse_non_open: Option<&MemberId>,
) -> Vec<TableBinding> {
    products
        .into_iter()
        .map(|p| {
            let refusal = match refuse_non_open {
                Some(owner) if p.metadata.classification != Classification::Open => Some(format!(
                    "{owner}.{} is classified {}: other members may query it only under a sharing agreement with {owner}; request access to it first",
                    p.name, p.metadata.classification
                )),
                _ => None,
            };
            TableBinding {
                name: p.name.to_string(),
                version: format!("{}:{}", p.id, p.version),
                source: p.source,
                schema: p.schema,
                refusal,
                enforcement: None,
            }
        })
        .collect()
}

/// A table a query on this node can name: `public` for the node's own products, the
/// owner's member id for other members' offers.
#[derive(Debug, Clone)]
pub struct VisibleTable {
    pub schema: String,
    pub name: String,
    pub columns: Vec<agora_model::ColumnSchema>,
}

impl Node {
    /// Every table this node's queries can name, for tools that list them.
    pub async fn visible_tables(&self) -> Result<Vec<VisibleTable>, NodeError> {
        let mut out: Vec<VisibleTable> = self
            .store()
            .all_products()
            .await?
            .into_iter()
            .map(|p| VisibleTable {
                schema: "public".into(),
                name: p.name.to_string(),
                columns: p.schema,
            })
            .collect();
        out.extend(
            self.other_offers()
                .await?
                .into_iter()
                .map(|o| VisibleTable {
                    schema: o.owner.to_string(),
                    name: o.name.to_string(),
                    columns: o.schema,
                }),
        );
        Ok(out)
    }

    /// Other members' offers as last fetched; none before the node has enrolled.
    async fn other_offers(&self) -> Result<Vec<agora_model::Offer>, NodeError> {
        if self.trust().is_none() {
            return Ok(Vec::new());
        }
        let mut offers = self.store().offers(None).await?;
        offers.retain(|o| &o.owner != self.member());
        Ok(offers)
    }

    /// Runs `sql` at `member`'s node and streams the verified answer.
    pub async fn remote_query(&self, member: &str, sql: &str) -> Result<RemoteBatches, NodeError> {
        let trust = self.enrolled()?;
        let list = trust.ensure_usable(Utc::now())?;
        let member = MemberId::parse(member)?;
        let peer = list
            .member(&member)
            .ok_or_else(|| NodeError::PeerRefused {
                peer: member.to_string(),
                reason: "it is not a member on the current trust list".into(),
            })?
            .clone();
        let flight = self.flight_peer(&peer)?;
        let material = trust.material();
        let signer = Signer {
            member: self.member(),
            key: &material.key,
        };
        let stream = flight.query(&signer, &list, self.store(), sql).await?;
        Ok(stream
            .map_err(|e| match e {
                agora_exchange::ExchangeError::Refused { .. } => {
                    EngineError::RemoteRefused(e.to_string())
                }
                _ => EngineError::Remote(e.to_string()),
            })
            .boxed())
    }

    fn flight_peer(&self, peer: &TrustedMember) -> Result<FlightPeer, NodeError> {
        let trust = self.enrolled()?;
        let key = (
            peer.id.clone(),
            peer.endpoints.exchange.clone().unwrap_or_default(),
            trust.material().info.fingerprint.clone(),
        );
        let mut peers = self.inner.flight_peers.0.lock().expect("lock");
        if let Some(p) = peers.get(&key) {
            return Ok(p.clone());
        }
        // Connections of an older certificate or endpoint of this peer are dropped.
        peers.retain(|(member, _, _), _| member != &peer.id);
        let idle = trust
            .settings()
            .peer_timeout
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(30));
        let p = FlightPeer::new(&trust.material().root, trust.identity(), peer, idle)?;
        peers.insert(key, p.clone());
        Ok(p)
    }

    /// The catalog another member's SQL runs against: this node's products, named plainly
    /// or as `"this-member".product`; only open ones can be read.
    async fn member_catalog(&self) -> Result<Catalog, NodeError> {
        let version = self.store().catalog_version().await?;
        if let Some((v, c)) = self.inner.member_catalog.read().expect("lock").as_ref()
            && *v == version
        {
            return Ok(c.clone());
        }
        let products = self.store().all_products().await?;
        let catalog = self.engine().member_catalog(
            self.member().as_str(),
            bindings(products, Some(self.member())),
        );
        let mut slot = self.inner.member_catalog.write().expect("lock");
        if slot.as_ref().is_none_or(|(v, _)| *v <= version) {
            *slot = Some((version, catalog.clone()));
        }
        Ok(catalog)
    }

    /// Runs another member's read-only SQL over this node's products (an admitted,
    /// signed request: see [`Node::begin_inbound`]).
    pub async fn query_for_member(
        &self,
        peer: &TrustedMember,
        sql: &str,
    ) -> Result<QueryResult, NodeError> {
        tracing::info!(peer = %peer.id, "query from a member");
        let catalog = self.member_catalog().await?;
        Ok(catalog.query_for_member(sql).await?)
    }

    /// The engine's catalog for this node's own queries: its products and, once enrolled,
    /// every other member's offers as `"member".product`.
    pub(crate) async fn federated(&self, local: Vec<TableBinding>) -> Result<Catalog, NodeError> {
        let Some(_) = self.trust() else {
            return Ok(self.engine().catalog(local));
        };
        let remotes = self
            .other_offers()
            .await?
            .into_iter()
            .map(|o| RemoteBinding {
                member: o.owner.to_string(),
                name: o.name.to_string(),
                schema: o.schema,
            })
            .collect();
        let source = Arc::new(NodeRemote(Arc::downgrade(&self.inner)));
        Ok(self.engine().federated_catalog(local, remotes, source)?)
    }
}
