//! The tables a query may see: a schema provider over the node's product bindings that
//! opens each product's listing table on first use and keeps it for later queries.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionState;

use crate::{EngineError, TableBinding, source};

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
    async fn provider(
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
}

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
    fn table_names(&self) -> Vec<String> {
        self.bindings.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let Some(binding) = self.bindings.get(name) else {
            return Ok(None);
        };
        self.cache
            .provider(&self.state, binding)
            .await
            .map(Some)
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.bindings.contains_key(name)
    }
}
