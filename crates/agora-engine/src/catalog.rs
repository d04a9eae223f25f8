//! The tables a query may see: a schema provider over the node's product bindings that
//! opens each product's listing table on first use and keeps it for later queries.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionState;

use crate::{EnforcedTable, EngineError, TableBinding, source};

struct CachedTable {
    version: String,
    source: agora_model::DataSource,
    provider: Arc<dyn TableProvider>,
}

/// Listing tables by product name, shared by every catalog of an engine, so that a new
/// catalog version does not re-read the footers of products that did not change.
#[derive(Default)]
pub(crate) struct TableCache(RwLock<HashMap<String, CachedTable>>);

impl TableCache {
    pub(crate) fn forget(&self, name: &str) {
        self.0.write().expect("lock").remove(name);
    }

    /// The listing table of a binding: cached while its version and source are unchanged;
    /// otherwise opened again and checked against the registered schema.
    pub(crate) async fn provider(
        &self,
        state: &SessionState,
        t: &TableBinding,
    ) -> Result<Arc<dyn TableProvider>, EngineError> {
        if let Some(c) = self.0.read().expect("lock").get(&t.name)
            && c.version == t.version
            && c.source == t.source
        {
            return Ok(Arc::clone(&c.provider));
        }
        let provider = source::listing_table(state, &t.source).await?;
        let found = source::columns(&provider.schema());
        source::check_drift(&t.name, &t.source, &t.schema, &found)?;
        self.0.write().expect("lock").insert(
            t.name.clone(),
            CachedTable {
                version: t.version.clone(),
                source: t.source.clone(),
                provider: Arc::clone(&provider),
            },
        );
        Ok(provider)
    }
}

/// The `public` schema of a catalog: exactly the bound products, opened lazily, so a
/// query pays only for the tables it names.
pub(crate) struct ProductSchema {
    /// A session without this schema (no reference cycle), for opening listing tables.
    state: SessionState,
    bindings: BTreeMap<String, TableBinding>,
    cache: Arc<TableCache>,
    /// Agreed products as their agreements let them be seen, built once per product
    /// table (the row filter is parsed and checked then).
    enforced: EnforcedTables,
}

type EnforcedTables = RwLock<HashMap<String, (Arc<dyn TableProvider>, Arc<dyn TableProvider>)>>;

impl ProductSchema {
    pub(crate) fn new(
        state: SessionState,
        bindings: Vec<TableBinding>,
        cache: Arc<TableCache>,
    ) -> Self {
        Self {
            state,
            bindings: bindings.into_iter().map(|b| (b.name.clone(), b)).collect(),
            cache,
            enforced: Default::default(),
        }
    }
}

impl std::fmt::Debug for ProductSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductSchema")
            .field("tables", &self.bindings.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[async_trait]
impl SchemaProvider for ProductSchema {
    /// The tables a query can read (information_schema lists these); a refused table is
    /// left out, and naming it gets its refusal.
    fn table_names(&self) -> Vec<String> {
        self.bindings
            .values()
            .filter(|b| b.refusal.is_none())
            .map(|b| b.name.clone())
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let Some(binding) = self.bindings.get(name) else {
            return Ok(None);
        };
        if let Some(reason) = &binding.refusal {
            return Err(DataFusionError::External(Box::new(
                EngineError::AccessDenied(reason.clone()),
            )));
        }
        let provider = self
            .cache
            .provider(&self.state, binding)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let Some(enforcement) = &binding.enforcement else {
            return Ok(Some(provider));
        };
        if let Some((inner, enforced)) = self.enforced.read().expect("lock").get(name)
            && Arc::ptr_eq(inner, &provider)
        {
            return Ok(Some(Arc::clone(enforced)));
        }
        let enforced: Arc<dyn TableProvider> = Arc::new(
            EnforcedTable::new(&self.state, Arc::clone(&provider), enforcement)
                .map_err(|e| DataFusionError::External(Box::new(e)))?,
        );
        self.enforced
            .write()
            .expect("lock")
            .insert(name.to_owned(), (provider, Arc::clone(&enforced)));
        Ok(Some(enforced))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.bindings.contains_key(name)
    }
}
