//! Cross-member SQL: the node's side of federated queries.
//!
//! As a consumer, the node gives its query engine every other member's offers as tables
//! named `"member".product`, and a [`RemoteSource`] that sends the engine's remote subplans
//! to their owners over signed Arrow Flight calls; a product that is not `open` is seen as
//! the consumer's agreement in force lets it (the agreed columns, as masked), and refused
//! here without one. As an owner, it answers another member's SQL over its own products:
//! `open` ones as they are, others only through that member's agreement in force, bound as
//! the engine's [`agora_engine::Enforcement`]; any other product is refused with a reason
//! that says an agreement is needed.
//!
//! Cross-member SQL (`federation.rs`): the node's catalog (keyed by catalog version and an
//! offers generation bumped by every catalog refresh) holds its products and the other
//! members' offers; its `RemoteSource` finds the member on the current trust list and calls
//! it through a cached `FlightPeer`. As an owner it answers each member from that member's
//! own catalog (cached per member and catalog version, rebuilt when the earliest bound
//! agreement expires): `open` products as they are, others only under the member's
//! agreement in force that applies and whose two signatures verify, bound as an
//! `Enforcement` (aggregate ones with the node's cell-key secret); anything else is refused
//! with the reason (no agreement, expired, altered). Which agreement applies is decided by
//! one function both sides use, `agora_model::applicable_agreement`: per purpose the first
//! agreed, unless a later one explicitly supersedes it; across purposes the most recently
//! agreed of those. So a second agreement for the same product and purpose changes nothing
//! served unless the owner's steward approved it *with supersede* (`approve_superseding`,
//! CLI `--supersede`, API `"supersede": true`, a checkbox on the web page); the superseded
//! agreement is then revoked when the new one is finalized. Without supersede, approval is
//! refused while another agreement for the purpose is in force, and the policies are told
//! (`replaces_agreement_in_force`), which the baseline never approves automatically. As a
//! consumer it plans remote products under an agreement with the agreement's view
//! (`AgreementTerms::view_schema`).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use agora_engine::{
    Catalog, EngineError, QueryResult, RemoteBatches, RemoteBinding, RemoteSource, TableBinding,
};
use agora_exchange::{FlightPeer, Signer};
use agora_model::{AuditContext, MemberId, Product, TrustedMember};
use async_trait::async_trait;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};

use crate::binding::binding_of;
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

/// The refusal of a product read without an agreement. Front ends find the product in it
/// by [`product_needing_agreement`] to offer their own way to request access (a link, a
/// command).
fn needs_agreement_text(owner: &MemberId, p: &Product) -> String {
    format!(
        "{owner}.{}{NEEDS_AGREEMENT}{}: other members may query it only under a sharing \
         agreement with {owner}, and you have none in force; request access to it first",
        p.name, p.metadata.classification
    )
}

/// What follows `OWNER.PRODUCT` in the refusal of a product read without an agreement.
pub const NEEDS_AGREEMENT: &str = " is classified ";

/// The `(owner, product)` a refusal for want of an agreement names, if it is one.
pub fn product_needing_agreement(message: &str) -> Option<(String, String)> {
    let end = message.find(NEEDS_AGREEMENT)?;
    let named = message[..end]
        .rsplit(|c: char| c.is_whitespace() || c == ':')
        .next()?;
    let (owner, product) = named.split_once('.')?;
    let owner = MemberId::parse(owner.trim_matches('"')).ok()?;
    let product = agora_model::ProductName::parse(product).ok()?;
    Some((owner.to_string(), product.to_string()))
}

/// What another member's queries see: open products, and the others under its newest
/// agreement in force.
pub(crate) struct MemberView {
    catalog: Catalog,
    /// The agreement each product is bound under, by product name.
    bound: Arc<HashMap<String, Bound>>,
    /// The earliest end of validity among the agreements bound (the view is rebuilt then).
    valid_until: Option<chrono::DateTime<Utc>>,
}

/// What a member's query read: its products and the agreements they are served under.
fn read_context(
    tables: &[(Option<String>, String)],
    bound: &HashMap<String, Bound>,
) -> AuditContext {
    let mut products = Vec::new();
    let mut agreements = Vec::new();
    let mut purposes = Vec::new();
    let mut bases = Vec::new();
    for (_, table) in tables {
        products.push(table.clone());
        if let Some(b) = bound.get(table) {
            agreements.push(b.agreement.clone());
            purposes.push(b.purpose.clone());
            bases.push(b.legal_basis.clone());
        }
    }
    for v in [&mut products, &mut agreements, &mut purposes, &mut bases] {
        v.sort();
        v.dedup();
    }
    AuditContext {
        products: products.join(", "),
        agreements: agreements.join(", "),
        purposes: purposes.join(", "),
        legal_bases: bases.join(", "),
        subjects: None,
        groups: Vec::new(),
        subject_tags: Vec::new(),
    }
}

/// The agreement a product is served to a member under.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    agreement: String,
    purpose: String,
    legal_basis: String,
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
        let stream = flight.query(&signer, &list, &self.journal(), sql).await?;
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

    /// The catalog `peer`'s SQL runs against, at catalog version `version`: this node's
    /// products, named plainly or as `"this-member".product`; open ones as they are, others
    /// only as the peer's agreement in force lets it see them.
    async fn member_catalog(
        &self,
        peer: &MemberId,
        version: i64,
    ) -> Result<(Catalog, Arc<HashMap<String, Bound>>), NodeError> {
        let now = Utc::now();
        if let Some((v, view)) = self.inner.member_catalogs.read().expect("lock").get(peer)
            && *v == version
            && view.valid_until.is_none_or(|t| now < t)
        {
            return Ok((view.catalog.clone(), view.bound.clone()));
        }
        let mut bound = HashMap::new();
        let products = self.store().all_products().await?;
        let agreements = self
            .store()
            .agreements_with(agora_model::NegotiationRole::Provider, peer, None)
            .await?;
        let me = self.member().clone();
        let mut tables = Vec::with_capacity(products.len());
        let mut valid_until: Option<chrono::DateTime<Utc>> = None;
        for p in products {
            if !p.metadata.classification.needs_agreement() {
                tables.push(binding_of(p, None));
                continue;
            }
            // The agreement in force on this product whose signatures hold and that
            // applies (see `applicable_agreement`: a later one for the same purpose only by
            // explicit supersession).
            let mut in_force: Vec<&agora_model::Negotiation> = Vec::new();
            let mut problem = None;
            for n in agreements.iter().filter(|n| n.request.product == p.name) {
                if let Err(why) = crate::agreements::check_signatures(n) {
                    tracing::error!(negotiation = %n.id, peer = %peer, reason = %why, "agreement not applied");
                    problem = Some(why);
                    continue;
                }
                if n.agreement_in_force(now).is_none() {
                    if let Some(a) = &n.agreement {
                        problem = Some(match a.validity(now) {
                            agora_model::Validity::Expired(t) => {
                                format!("agreement {} on {me}.{} expired at {t}", a.id, p.name)
                            }
                            agora_model::Validity::NotYet(t) => {
                                format!(
                                    "agreement {} on {me}.{} is valid only from {t}",
                                    a.id, p.name
                                )
                            }
                            agora_model::Validity::Valid => continue,
                        });
                    }
                    continue;
                }
                in_force.push(n);
            }
            let chosen = agora_model::applicable_agreement(
                in_force.iter().filter_map(|n| n.agreement.as_ref()),
            )
            .map(|a| a.id.clone());
            let best = in_force
                .into_iter()
                .find(|n| Some(&n.id) == chosen.as_ref());
            let Some(n) = best else {
                let text = match problem {
                    Some(why) => format!("{why}; request access again"),
                    None => needs_agreement_text(&me, &p),
                };
                tables.push(binding_of(p, Some(text)));
                continue;
            };
            let a = n.agreement.as_ref().expect("an agreement in force");
            valid_until = Some(valid_until.map_or(a.valid_until, |t| t.min(a.valid_until)));
            let enforcement = agora_engine::Enforcement {
                agreement: a.id.clone(),
                terms: a.terms.clone(),
                subject: agora_model::AgreementTerms::subject_column(&p.metadata)
                    .map(str::to_owned),
                linkage_key: crate::agreements::linkage_key_of(self, a).await?,
                cell_key: if a.terms.mode == agora_model::AccessMode::Aggregate {
                    Some(self.cell_key()?)
                } else {
                    None
                },
                // An agreement that relies on consent reads no one who withdrew it.
                excluded: if a.legal_basis == "consent" {
                    self.store().consent_withdrawn(&a.purpose).await?
                } else {
                    Vec::new()
                },
            };
            tracing::debug!(peer = %peer, product = %p.name, agreement = %a.id, mode = a.terms.mode.as_str(), "agreement bound");
            bound.insert(
                p.name.to_string(),
                Bound {
                    agreement: a.id.clone(),
                    purpose: n.request.purpose.clone(),
                    legal_basis: n.request.legal_basis.clone(),
                },
            );
            let mut b = binding_of(p, None);
            b.enforcement = Some(enforcement);
            tables.push(b);
        }
        let catalog = self.engine().member_catalog(me.as_str(), tables);
        let bound = Arc::new(bound);
        let mut slot = self.inner.member_catalogs.write().expect("lock");
        if slot.get(peer).is_none_or(|(v, _)| *v <= version) {
            slot.insert(
                peer.clone(),
                (
                    version,
                    MemberView {
                        catalog: catalog.clone(),
                        bound: bound.clone(),
                        valid_until,
                    },
                ),
            );
        }
        Ok((catalog, bound))
    }

    /// Runs another member's read-only SQL over this node's products (an admitted,
    /// signed request: see [`Node::begin_inbound`]).
    pub async fn query_for_member(
        &self,
        inbound: &crate::exchange::Inbound,
        sql: &str,
    ) -> Result<QueryResult, NodeError> {
        let (catalog, bound) = self
            .member_catalog(&inbound.peer.id, inbound.catalog_version)
            .await?;
        let result = catalog.query_for_member(sql).await;
        match &result {
            Ok(r) => {
                tracing::info!(peer = %inbound.peer.id, tables = ?r.tables, "query from a member");
                inbound.note_read(read_context(&r.tables, &bound), Arc::clone(&r.ledger));
            }
            Err(e) => {
                tracing::info!(peer = %inbound.peer.id, error = %e, "query from a member refused")
            }
        }
        Ok(result?)
    }

    /// The engine's catalog for this node's own queries: its products and, once enrolled,
    /// every other member's offers as `"member".product`.
    pub(crate) async fn federated(&self, local: Vec<TableBinding>) -> Result<Catalog, NodeError> {
        let Some(_) = self.trust() else {
            return Ok(self.engine().catalog(local));
        };
        let agreements = self
            .agreements_in_force(agora_model::NegotiationRole::Consumer)
            .await?;
        let remotes = self
            .other_offers()
            .await?
            .into_iter()
            .map(|o| {
                let key = (o.owner.clone(), o.name.to_string());
                // Under an agreement, the product is seen as the agreement shows it; the
                // owner decides, and refuses what no agreement of its own allows.
                let schema = match agreements.get(&key).and_then(|n| n.agreement.as_ref()) {
                    Some(a) if o.metadata.classification.needs_agreement() => {
                        let subject = agora_model::AgreementTerms::subject_column(&o.metadata);
                        a.terms.view_schema(&o.schema, subject)
                    }
                    _ => o.schema,
                };
                RemoteBinding {
                    member: o.owner.to_string(),
                    name: o.name.to_string(),
                    schema,
                }
            })
            .collect();
        let source = Arc::new(NodeRemote(Arc::downgrade(&self.inner)));
        Ok(self.engine().federated_catalog(local, remotes, source)?)
    }
}
