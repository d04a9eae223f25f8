//! The node's application layer: what an Agora node can do, independent of how it is asked
//! (HTTP in `agora-server`, the command line in `agora`). It ties the metadata store and the
//! query engine together and owns the workflows: registering a product all-or-nothing,
//! keeping the catalog, answering SQL.

pub mod access;
pub mod agreements;
mod binding;
pub mod citizen;
mod consent;
mod error;
pub mod exchange;
mod federation;
mod holdings;
pub mod location;
pub mod member_error;
pub use location::LocationPolicy;
pub mod register;
pub mod residents;
pub mod settings;
mod subjects;
mod throttle;
pub mod transparency;
pub mod trust;
pub mod users;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agora_engine::{Catalog, Engine, EngineConfig};
use agora_model::{MemberId, MetadataPatch, Page, PageRequest, Product, ProductName, SearchHit};
use agora_store::{NodeRecord, Store};

pub use access::{Accessor, Channel, LoggedQuery};
pub use agora_engine::{
    EngineError, LIMIT_MEMORY, LIMIT_TIME, OutputFormat, ProfileProgress, QueryLimits, QueryResult,
    TextPage, WORKER_STACK,
};
pub use agora_model::ApiRole;
pub use agora_store::{
    AccessRecord, CitizenSession, NewSession, NewToken, SearchFilter, StoreError, TokenInfo,
    UserInfo, WebSession,
};
pub use agora_trust::EnrolmentToken;
pub use error::{ErrorKind, NodeError};
pub use federation::{NEEDS_AGREEMENT, VisibleTable, product_needing_agreement};
pub use register::{Draft, RegisterRequest};
pub use users::SignIn;

/// An authenticated API caller: the token it presented, and the catalog version at the
/// moment the token was checked (what its request sees).
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: TokenInfo,
    catalog_version: i64,
}

impl Caller {
    pub fn role(&self) -> ApiRole {
        self.token.role
    }
}

/// Where a node keeps its state.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    /// A `postgres://` URL; by default the SQLite file `agora.db` in the data directory.
    pub store_url: Option<String>,
    pub engine: EngineConfig,
    pub trust: trust::TrustSettings,
    /// Where data may be registered from beyond local files.
    pub locations: LocationPolicy,
    /// How sign-in withstands guessing.
    pub sign_in: settings::SignInLimits,
    /// Which citizen portals the node answers (`node.toml` may change it).
    pub citizens: settings::CitizenSettings,
}

impl NodeConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            store_url: None,
            engine: EngineConfig::default(),
            trust: trust::TrustSettings::default(),
            locations: LocationPolicy::default(),
            sign_in: settings::SignInLimits::default(),
            citizens: settings::CitizenSettings::default(),
        }
    }
}

/// A running node: its identity, metadata store and query engine. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    identity: NodeRecord,
    store: Store,
    engine: Engine,
    data_dir: PathBuf,
    locations: LocationPolicy,
    /// The products (and other members' offers) as a query catalog, with the catalog
    /// version and offers generation it reflects.
    catalog: std::sync::RwLock<Option<((i64, u64), Catalog)>>,
    trust_settings: trust::TrustSettings,
    /// The node's membership of an ecosystem, once enrolled.
    trust: std::sync::RwLock<Option<Arc<trust::NodeTrust>>>,
    /// Changes whenever other members' offers were fetched (part of the catalog's key).
    offers_generation: std::sync::atomic::AtomicU64,
    /// What each other member's queries see, with the catalog version it reflects.
    member_catalogs: std::sync::RwLock<HashMap<MemberId, (i64, federation::MemberView)>>,
    /// The node's policies (the ecosystem's baseline and the owner's own).
    policies: agora_policy::PolicyEngine,
    /// One delivery round of the outbox at a time.
    outbox_lock: tokio::sync::Mutex<()>,
    flight_peers: federation::FlightPeers,
    /// The secret of aggregate agreements' record keys, once read.
    cell_key: std::sync::OnceLock<agora_engine::CellKeySecret>,
    subject_key: std::sync::OnceLock<agora_trust::tlog::SubjectKey>,
    /// One answer's record-level accounting at a time: however many answers end at once,
    /// tagging their subjects takes at most one core.
    accounting: tokio::sync::Semaphore,
    /// Subject tags and indexes kept between answers, and portals' lookups.
    subjects: subjects::Subjects,
    /// Products' subject tags, for portals asking which products hold a resident.
    holdings: holdings::Holdings,
    /// Which citizen portals the node answers.
    citizens: settings::CitizenSettings,
    throttle: throttle::Throttle,
    hashing: throttle::Hashing,
    /// Where negotiation steps go instead of the exchange channel, if set.
    courier: std::sync::OnceLock<Arc<dyn agreements::Courier>>,
    /// Completions of access records still being written.
    access_writes: tokio_util::task::TaskTracker,
    /// Where the log's witnessing stands (see `transparency`).
    witnessing: std::sync::Mutex<transparency::WitnessState>,
}

/// Where an owner keeps its own Cedar policies (`*.cedar`), applied after the baseline.
pub const POLICY_DIR: &str = "policies";

/// The baseline policies and the owner's own from `DATA_DIR/policies/*.cedar`, validated
/// against the schema (a node with an invalid policy does not start).
fn load_policies(data_dir: &Path) -> Result<agora_policy::PolicyEngine, NodeError> {
    let dir = data_dir.join(POLICY_DIR);
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
            .collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|e| NodeError::BadLocation {
                path: p.display().to_string(),
                reason: format!("cannot read the policy file: {e}"),
            })?;
            files.push((p.display().to_string(), text));
        }
    }
    Ok(agora_policy::PolicyEngine::new(&files)?)
}

fn check_writable(dir: &Path) -> Result<(), NodeError> {
    let not_writable = |source| NodeError::DataDirNotWritable {
        path: dir.display().to_string(),
        source,
    };
    agora_store::private_dir(dir).map_err(not_writable)?;
    let probe = dir.join(format!(".agora-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(not_writable)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

async fn open_store(cfg: &NodeConfig) -> Result<Store, NodeError> {
    check_writable(&cfg.data_dir)?;
    Ok(match &cfg.store_url {
        Some(url) => Store::open(url).await?,
        None => Store::open_in_dir(&cfg.data_dir).await?,
    })
}

impl Node {
    /// The node's secret for aggregate agreements' record keys and cell noise.
    pub(crate) fn cell_key(&self) -> Result<agora_engine::CellKeySecret, NodeError> {
        if let Some(k) = self.inner.cell_key.get() {
            return Ok(k.clone());
        }
        let k = trust::cell_key(&self.inner.data_dir)?;
        Ok(self.inner.cell_key.get_or_init(|| k).clone())
    }

    /// The node's secret for subject tags (see [`trust::subject_key`]).
    pub(crate) fn subject_key(&self) -> Result<agora_trust::tlog::SubjectKey, NodeError> {
        if let Some(k) = self.inner.subject_key.get() {
            return Ok(k.clone());
        }
        let k = trust::subject_key(&self.inner.data_dir)?;
        Ok(self.inner.subject_key.get_or_init(|| k).clone())
    }

    /// Initialises a new node for `member`, returning it and its first administrator
    /// token (whose secret is not stored and cannot be shown again).
    pub async fn init(
        cfg: &NodeConfig,
        member: &MemberId,
        name: &str,
    ) -> Result<(Node, NewToken), NodeError> {
        let store = open_store(cfg).await?;
        let (identity, token) = store.init_node(member, name).await?;
        Ok((Self::assemble(cfg, store, identity)?, token))
    }

    /// Opens an initialised node. A data directory that holds no node (a mistyped
    /// `--data-dir`, say) is reported without anything being created in it.
    pub async fn open(cfg: &NodeConfig) -> Result<Node, NodeError> {
        if cfg.store_url.is_none() && !cfg.data_dir.join("agora.db").is_file() {
            return Err(NodeError::NotInitialised(
                cfg.data_dir.display().to_string(),
            ));
        }
        let store = open_store(cfg).await?;
        let identity = store
            .node()
            .await?
            .ok_or_else(|| NodeError::NotInitialised(cfg.data_dir.display().to_string()))?;
        Self::assemble(cfg, store, identity)
    }

    /// Opens the node, initialising it first if the data directory is new.
    pub async fn open_or_init(
        cfg: &NodeConfig,
        member: &MemberId,
        name: &str,
    ) -> Result<(Node, Option<NewToken>), NodeError> {
        let store = open_store(cfg).await?;
        match store.node().await? {
            Some(identity) => Ok((Self::assemble(cfg, store, identity)?, None)),
            None => {
                let (identity, token) = store.init_node(member, name).await?;
                Ok((Self::assemble(cfg, store, identity)?, Some(token)))
            }
        }
    }

    fn assemble(cfg: &NodeConfig, store: Store, identity: NodeRecord) -> Result<Node, NodeError> {
        let settings = settings::Settings::load(
            &cfg.data_dir,
            settings::Settings {
                queries: cfg.engine.limits.clone(),
                sign_in: cfg.sign_in.clone(),
                citizens: cfg.citizens.clone(),
            },
        )?;
        let trust = trust::NodeTrust::load(&cfg.data_dir, &identity.member_id, cfg.trust.clone())?
            .map(Arc::new);
        Ok(Node {
            inner: Arc::new(Inner {
                identity,
                store,
                engine: Engine::new(EngineConfig {
                    protected_dirs: vec![cfg.data_dir.clone()],
                    limits: settings.queries,
                    ..cfg.engine.clone()
                }),
                hashing: throttle::Hashing::new(&settings.sign_in),
                courier: Default::default(),
                witnessing: Default::default(),
                throttle: throttle::Throttle::new(settings.sign_in),
                data_dir: cfg.data_dir.clone(),
                locations: cfg.locations.clone(),
                catalog: std::sync::RwLock::new(None),
                trust_settings: cfg.trust.clone(),
                trust: std::sync::RwLock::new(trust),
                offers_generation: Default::default(),
                member_catalogs: Default::default(),
                policies: load_policies(&cfg.data_dir)?,
                outbox_lock: Default::default(),
                flight_peers: Default::default(),
                cell_key: Default::default(),
                subject_key: Default::default(),
                accounting: tokio::sync::Semaphore::new(1),
                subjects: Default::default(),
                holdings: Default::default(),
                citizens: settings.citizens,
                access_writes: Default::default(),
            }),
        })
    }

    // ---- membership of an ecosystem ----

    /// The node's membership, if it has enrolled.
    pub fn trust(&self) -> Option<Arc<trust::NodeTrust>> {
        self.inner.trust.read().expect("lock").clone()
    }

    /// The membership, or an error telling how to enrol.
    pub fn enrolled(&self) -> Result<Arc<trust::NodeTrust>, NodeError> {
        self.trust().ok_or(NodeError::NotEnrolled)
    }

    /// Enrols this node with an ecosystem authority (see [`trust::NodeTrust::enrol`]).
    pub async fn enrol(
        &self,
        authority_url: &str,
        token: &agora_trust::EnrolmentToken,
        endpoints: agora_model::Endpoints,
    ) -> Result<Arc<trust::NodeTrust>, NodeError> {
        let t = Arc::new(
            trust::NodeTrust::enrol(
                &self.inner.data_dir,
                self.member(),
                authority_url,
                token,
                endpoints,
                self.inner.trust_settings.clone(),
            )
            .await?,
        );
        *self.inner.trust.write().expect("lock") = Some(t.clone());
        Ok(t)
    }

    /// Enrols by handing the request to `issue` instead of an authority over HTTPS (an
    /// authority in the same process: the node's own tests, tools).
    pub async fn enrol_through(
        &self,
        token: &agora_trust::EnrolmentToken,
        endpoints: agora_model::Endpoints,
        issue: impl AsyncFnOnce(
            agora_model::EnrolRequest,
        ) -> Result<agora_model::IssuedBundle, NodeError>,
    ) -> Result<Arc<trust::NodeTrust>, NodeError> {
        let t = Arc::new(
            trust::NodeTrust::enrol_through(
                &self.inner.data_dir,
                self.member(),
                token,
                endpoints,
                self.inner.trust_settings.clone(),
                issue,
            )
            .await?,
        );
        *self.inner.trust.write().expect("lock") = Some(t.clone());
        Ok(t)
    }

    pub fn member(&self) -> &MemberId {
        &self.inner.identity.member_id
    }
    pub fn name(&self) -> &str {
        &self.inner.identity.name
    }
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }
    pub fn store(&self) -> &Store {
        &self.inner.store
    }
    /// The node's validated policies.
    pub fn policies(&self) -> &agora_policy::PolicyEngine {
        &self.inner.policies
    }

    /// Readiness: the store answers.
    pub async fn ready(&self) -> Result<(), NodeError> {
        Ok(self.inner.store.ping().await?)
    }

    // ---- products ----

    /// Checks a registration up to its profile and returns what it would register: the
    /// name, the data's schema and the metadata the sidecar and `req` give (see
    /// [`register::Draft`]). Reads the schema only; nothing is stored.
    pub async fn draft_registration(
        &self,
        req: &RegisterRequest,
    ) -> Result<register::Draft, NodeError> {
        register::draft(self, req).await
    }

    /// Registers a product in place: infers its schema, validates its metadata, profiles
    /// it, and records it in one transaction. Nothing is stored unless every step succeeds.
    pub async fn register(
        &self,
        req: RegisterRequest,
        progress: &(dyn Fn(ProfileProgress) + Send + Sync),
    ) -> Result<Product, NodeError> {
        register::register(self, req, progress).await
    }

    pub async fn products(&self, page: PageRequest) -> Result<Page<Product>, NodeError> {
        Ok(self.inner.store.list_products(page).await?)
    }

    pub async fn product(&self, name: &str) -> Result<Product, NodeError> {
        self.inner
            .store
            .get_product(name)
            .await?
            .ok_or_else(|| StoreError::ProductNotFound(name.to_owned()).into())
    }

    /// Changes a product's metadata. The result is validated against the schema first.
    pub async fn update_metadata(
        &self,
        name: &str,
        patch: MetadataPatch,
    ) -> Result<Product, NodeError> {
        let current = self.product(name).await?;
        let mut metadata = current.metadata.clone();
        metadata.apply(patch);
        metadata.validate(&current.schema)?;
        let name = ProductName::parse(name)?;
        Ok(self
            .inner
            .store
            .update_metadata(&name, &metadata, current.version)
            .await?)
    }

    /// Removes a product's registration. The data itself is not touched.
    pub async fn remove(&self, name: &str) -> Result<(), NodeError> {
        self.remove_product(name, false).await.map(|_| ())
    }

    /// Removes a product's registration. Agreements in force that other members read it
    /// under are not left to revive if a product of the same name is registered again:
    /// without `revoke_agreements` the removal is refused and names them; with it, each is
    /// revoked (both sides are told) before the product goes. Returns the revoked ids.
    pub async fn remove_product(
        &self,
        name: &str,
        revoke_agreements: bool,
    ) -> Result<Vec<String>, NodeError> {
        // Named like this only if it exists: a missing product is reported as such.
        let product = self.product(name).await?;
        let in_force: Vec<agora_model::Negotiation> = self
            .agreements_in_force(agora_model::NegotiationRole::Provider)
            .await?
            .into_values()
            .filter(|n| n.request.product == product.name)
            .collect();
        if !in_force.is_empty() && !revoke_agreements {
            let list: Vec<String> = in_force
                .iter()
                .map(|n| format!("{} ({} for {})", n.id, n.consumer, n.request.purpose))
                .collect();
            return Err(NodeError::Agreement(format!(
                "{} is read under {} agreement{} in force: {}; removing it revokes them (--revoke-agreements, or revoke_agreements=true in the API)",
                product.name,
                in_force.len(),
                if in_force.len() == 1 { "" } else { "s" },
                list.join(", ")
            )));
        }
        let mut revoked = Vec::new();
        for n in in_force {
            self.terminate(
                &n.id,
                &format!("{} was withdrawn by its owner", product.name),
            )
            .await?;
            revoked.push(n.id);
        }
        self.inner.store.delete_product(name).await?;
        self.inner.engine.forget(name);
        tracing::info!(product = %product.name, revoked = ?revoked, "product removed");
        Ok(revoked)
    }

    /// Searches the catalog: this node's products and, once the node has enrolled in an
    /// ecosystem, every other member's offers (see [`Node::search_ecosystem`]).
    pub async fn search(&self, q: &str, page: PageRequest) -> Result<Page<SearchHit>, NodeError> {
        self.search_ecosystem(q, page).await
    }

    // ---- queries ----

    /// Runs the owner's read-only SQL over this node's products, as the catalog is now.
    pub async fn query(&self, sql: &str) -> Result<QueryResult, NodeError> {
        // The query is planned over the catalog in memory while the store says whether
        // another process changed the products since; only then is it planned again.
        // (Planning reads no data: a remote query is sent when its stream is read.)
        let generation = self
            .inner
            .offers_generation
            .load(std::sync::atomic::Ordering::Acquire);
        let cached = self
            .inner
            .catalog
            .read()
            .expect("lock")
            .as_ref()
            .filter(|((_, g), _)| *g == generation)
            .map(|((v, _), c)| (*v, c.clone()));
        let Some((cached_version, catalog)) = cached else {
            let version = self.inner.store.catalog_version().await?;
            return self.query_at(version, sql).await;
        };
        let (version, planned) =
            tokio::join!(self.inner.store.catalog_version(), catalog.query(sql));
        let version = version?;
        if version == cached_version {
            return Ok(planned?);
        }
        drop(planned);
        self.query_at(version, sql).await
    }

    /// Runs read-only SQL for an authenticated caller, over the catalog as it was when
    /// the caller's token was checked (no further store round trip).
    pub async fn query_as(&self, caller: &Caller, sql: &str) -> Result<QueryResult, NodeError> {
        self.query_at(caller.catalog_version, sql).await
    }

    async fn query_at(&self, version: i64, sql: &str) -> Result<QueryResult, NodeError> {
        let catalog = self.catalog(version).await?;
        Ok(catalog.query(sql).await?)
    }

    /// The products as a query catalog, rebuilt only when the catalog version has moved
    /// (also when another process changed the catalog) or other members' offers changed.
    async fn catalog(&self, version: i64) -> Result<Catalog, NodeError> {
        let key = (
            version,
            self.inner
                .offers_generation
                .load(std::sync::atomic::Ordering::Acquire),
        );
        if let Some((k, c)) = self.inner.catalog.read().expect("lock").as_ref()
            && *k == key
        {
            return Ok(c.clone());
        }
        let products = self.inner.store.all_products().await?;
        let catalog = self.federated(binding::bindings(products)).await?;
        let mut slot = self.inner.catalog.write().expect("lock");
        // Never replace a newer catalog with an older one.
        if slot.as_ref().is_none_or(|(k, _)| *k <= key) {
            *slot = Some((key, catalog.clone()));
        }
        Ok(catalog)
    }

    /// Notes that other members' offers changed, so the next query sees them.
    pub(crate) fn offers_changed(&self) {
        self.inner
            .offers_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    // ---- tokens ----

    /// Checks a bearer token's secret; `None` when it is unknown or revoked.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Caller>, NodeError> {
        Ok(self
            .inner
            .store
            .authenticate(secret)
            .await?
            .map(|a| Caller {
                token: a.token,
                catalog_version: a.catalog_version,
            }))
    }
    /// Issues an API token; `by` is who issued it (its log entry names them).
    pub async fn create_token(
        &self,
        label: &str,
        role: ApiRole,
        by: &Accessor,
    ) -> Result<NewToken, NodeError> {
        Ok(self
            .inner
            .store
            .create_token(label, role, &by.principal)
            .await?)
    }
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, NodeError> {
        Ok(self.inner.store.list_tokens().await?)
    }
    pub async fn revoke_token(&self, id: &str, by: &Accessor) -> Result<TokenInfo, NodeError> {
        Ok(self.inner.store.revoke_token(id, &by.principal).await?)
    }
}
