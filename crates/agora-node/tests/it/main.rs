//! The node's workflows without HTTP: members enrolled with an authority in the same
//! process, negotiation steps handed from node to node by an in-process courier (as the
//! exchange listener hands them over once it admitted a signed request), products
//! registered and queried in place. What is about HTTP, TLS and Flight is tested in
//! `agora-server`.

mod access;
mod agreements;
mod catalog;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agora_authority::{Authority, AuthorityConfig};
use agora_model::{
    AccessMode, AccessRequest, AgreementTerms, ColumnTerm, Endpoints, MemberId, Negotiation,
    NegotiationMessage, NegotiationRole, NegotiationState, ProductName, TrustedMember,
};
use agora_node::agreements::{Courier, NegotiationReply};
use agora_node::trust::TrustSettings;
use agora_node::{Node, NodeConfig, NodeError};

/// Hands negotiation steps straight to the receiving node.
#[derive(Default)]
pub struct InProcess {
    nodes: Mutex<HashMap<MemberId, Node>>,
}

#[async_trait::async_trait]
impl Courier for InProcess {
    async fn carry(
        &self,
        from: &Node,
        to: &TrustedMember,
        message: &NegotiationMessage,
    ) -> Result<NegotiationReply, NodeError> {
        let receiver = self.nodes.lock().unwrap().get(&to.id).cloned();
        let receiver = receiver.ok_or_else(|| NodeError::PeerRefused {
            peer: to.id.to_string(),
            reason: "not in this process".into(),
        })?;
        let list = receiver.enrolled()?.list();
        let sender = list
            .member(from.member())
            .cloned()
            .ok_or_else(|| NodeError::PeerRefused {
                peer: from.member().to_string(),
                reason: "not on the receiver's trust list".into(),
            })?;
        let key = from.enrolled()?.material().key.public();
        receiver
            .receive_negotiation(&sender, &key, message.clone())
            .await
    }
}

/// An authority and two members in one process: the tax office owns `annual_income`
/// (personal, admitted for fraud prevention); the employment agency knows its offers.
pub struct World {
    pub tax: Node,
    pub ea: Node,
    pub dir: tempfile::TempDir,
    pub authority: Authority,
}

impl World {
    /// Both members deliver negotiation steps in-process.
    pub async fn new(consumer: TrustSettings) -> Self {
        Self::with(consumer, true).await
    }

    /// `in_process` false: steps go to the members' exchange endpoints, where nothing
    /// listens.
    pub async fn with(consumer: TrustSettings, in_process: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let authority = Authority::init(
            AuthorityConfig::new(dir.path().join("authority")),
            "test-ecosystem",
            "https://127.0.0.1:9",
        )
        .await
        .unwrap();
        let courier = Arc::new(InProcess::default());
        let mut nodes = Vec::new();
        for (member, settings) in [
            ("tax-office", TrustSettings::default()),
            ("employment-agency", consumer),
        ] {
            let node = join(&authority, dir.path(), member, settings).await;
            if in_process {
                node.deliver_through(courier.clone()).unwrap();
                courier
                    .nodes
                    .lock()
                    .unwrap()
                    .insert(node.member().clone(), node.clone());
            }
            nodes.push(node);
        }
        let list = authority.trust_list().await.unwrap();
        for node in &nodes {
            node.enrolled().unwrap().accept_list(list.clone()).unwrap();
        }
        let (tax, ea) = (nodes.remove(0), nodes.remove(0));
        let w = Self {
            tax,
            ea,
            dir,
            authority,
        };
        w.register("annual_income", "personal", &["fraud_prevention"])
            .await;
        w
    }

    /// Registers `name` at the tax office (person ids, years and incomes, with `person_id`
    /// the subject identifier) and tells the employment agency of its offers.
    pub async fn register(&self, name: &str, classification: &str, purposes: &[&str]) {
        let path = self.dir.path().join(format!("{name}.csv"));
        let mut csv = String::from("person_id,year,income\n");
        for i in 0..40 {
            csv.push_str(&format!(
                "{},{},{}\n",
                10_000_000 + i,
                2020 + i % 4,
                20_000 + i * 1_000
            ));
        }
        std::fs::write(&path, csv).unwrap();
        let patch: agora_model::MetadataPatch = serde_json::from_value(serde_json::json!({
            "title": format!("Incomes {name}"),
            "description": "taxable income per person and year",
            "classification": classification,
            "legal_basis": "Income Tax Act",
            "purposes": purposes,
            "columns": {"person_id": {"role": "subject_id"}},
        }))
        .unwrap();
        self.tax
            .register(
                agora_node::RegisterRequest {
                    location: path.display().to_string(),
                    name: Some(name.into()),
                    metadata: patch,
                    ..Default::default()
                },
                &|_| {},
            )
            .await
            .unwrap();
        let offers = self.tax.offers().await.unwrap();
        self.ea
            .store()
            .replace_offers(self.tax.member(), &offers, chrono::Utc::now())
            .await
            .unwrap();
    }
}

/// A node for `member`, enrolled with `authority` in-process.
async fn join(authority: &Authority, dir: &Path, member: &str, settings: TrustSettings) -> Node {
    let mut cfg = NodeConfig::new(dir.join(member));
    cfg.trust = settings;
    let id = MemberId::parse(member).unwrap();
    let node = Node::init(&cfg, &id, member).await.unwrap().0;
    let token = authority.admit(&id, member).await.unwrap();
    let endpoints = Endpoints {
        // Nothing listens here: only the in-process courier reaches the node.
        exchange: Some("https://127.0.0.1:9".into()),
    };
    node.enrol_through(&token, endpoints, async |req| {
        authority
            .enrol(&req)
            .await
            .map_err(|e| NodeError::Settings(e.to_string()))
    })
    .await
    .unwrap();
    node
}

/// A request to the tax office for `product`.
pub fn request(product: &str, purpose: &str, columns: &str, mode: AccessMode) -> AccessRequest {
    let now = chrono::Utc::now();
    AccessRequest {
        owner: MemberId::parse("tax-office").unwrap(),
        product: ProductName::parse(product).unwrap(),
        purpose: purpose.into(),
        legal_basis: "public_task".into(),
        justification: "checking unemployment allowances against declared income".into(),
        terms: AgreementTerms {
            columns: ColumnTerm::parse_list(columns).unwrap(),
            row_filter: None,
            mode,
            min_group_size: 5,
            max_rows: Some(100),
            measures: vec![],
            disclosure: (mode == AccessMode::Aggregate)
                .then(agora_model::DisclosureControl::standard),
            query_limits: Default::default(),
        },
        valid_from: now - chrono::Duration::minutes(1),
        valid_until: now + chrono::Duration::days(30),
    }
}

/// Waits until `node`'s side of negotiation `id` is in `state` (steps travel on their own
/// tasks), and returns it.
pub async fn reaches(
    node: &Node,
    id: &str,
    role: NegotiationRole,
    state: NegotiationState,
) -> Negotiation {
    let mut last = None;
    for _ in 0..200 {
        if let Some(n) = node.store().negotiation(id, role).await.unwrap() {
            if n.state == state {
                return n;
            }
            last = Some(n);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("negotiation {id} ({role:?}) never reached {state}: {last:#?}");
}
