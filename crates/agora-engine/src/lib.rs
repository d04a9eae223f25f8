//! The query engine: the only crate that knows DataFusion.
//!
//! It reads data products in place (CSV or Parquet files and folders, on the local disk or
//! in object stores), infers their schema, profiles them, and runs SQL over them, returning
//! results as a stream of encoded chunks (JSON, NDJSON, CSV, Arrow IPC) or a terminal table.
//! Other crates talk to it only in terms of the domain model and bytes.

mod catalog;
mod encode;
mod profile;
mod source;

use std::sync::Arc;

use agora_model::{ColumnSchema, DataSource};
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionState;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

use catalog::{ProductSchema, TableCache};
pub use encode::{EncodedStream, OutputFormat};
pub use profile::ProfileProgress;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("SQL syntax error: {0}")]
    Syntax(String),
    #[error("{0}")]
    Plan(String),
    #[error("only read-only queries (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE) are allowed: {0}")]
    NotReadOnly(String),
    #[error("cannot read data at {location}: {message}")]
    Source { location: String, message: String },
    #[error(
        "the data at {location} no longer matches the registered schema of {product:?} ({detail}); update the data or register the product again"
    )]
    SchemaDrift {
        product: String,
        location: String,
        detail: String,
    },
    #[error("query failed while reading data: {0}")]
    Execution(String),
    #[error("cannot encode the result: {0}")]
    Encode(String),
}

impl EngineError {
    /// True when the error is the caller's fault (bad SQL, unknown table or column).
    pub fn is_user_error(&self) -> bool {
        matches!(self, Self::Syntax(_) | Self::Plan(_) | Self::NotReadOnly(_))
    }

    pub(crate) fn from_df(e: DataFusionError) -> Self {
        let root = e.find_root();
        // Errors of our own raised inside DataFusion (opening a product's table) come
        // back as they were.
        if let DataFusionError::External(inner) = root
            && let Some(own) = inner.downcast_ref::<EngineError>()
        {
            return own.clone();
        }
        match root {
            DataFusionError::SQL(p, _) => Self::Syntax(
                p.to_string()
                    .trim_start_matches("sql parser error: ")
                    .to_owned(),
            ),
            DataFusionError::Plan(m) => Self::Plan(tidy(m)),
            DataFusionError::SchemaError(s, _) => Self::Plan(tidy(&s.to_string())),
            DataFusionError::NotImplemented(m) => Self::Plan(format!("not supported: {}", tidy(m))),
            DataFusionError::Configuration(m) => Self::Plan(tidy(m)),
            _ => Self::Execution(tidy(&root.to_string())),
        }
    }
}

/// Lower-cases the first letter and trims DataFusion's prefixes from a message.
fn tidy(m: &str) -> String {
    let m = m.trim();
    let mut c = m.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Tuning knobs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Rows per record batch.
    pub batch_size: usize,
    /// Parallelism of scans and aggregations (default: number of cores).
    pub target_partitions: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: 8192,
            target_partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// A product as the engine needs it to answer queries.
#[derive(Debug, Clone)]
pub struct TableBinding {
    /// SQL table name.
    pub name: String,
    pub source: DataSource,
    /// The schema recorded at registration; a mismatch with the data is reported.
    pub schema: Vec<ColumnSchema>,
    /// Changes whenever the registration changes (cache key).
    pub version: String,
}

/// The query engine. Cheap to share (`Arc`); caches table providers and file metadata.
pub struct Engine {
    /// Built once (function registry, optimizer rules); cloned for each catalog.
    base_state: SessionState,
    tables: Arc<TableCache>,
}

/// A set of tables to query, prepared once and shared by every query over the same
/// bindings (cheap to clone). Tables open on first use; DDL and DML are refused, so
/// queries cannot change it or see anything beyond its bindings.
#[derive(Clone)]
pub struct Catalog {
    ctx: SessionContext,
}

/// A running query: column descriptions and a stream of record batches.
pub struct QueryResult {
    pub columns: Vec<ColumnSchema>,
    stream: SendableRecordBatchStream,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        let runtime: Arc<RuntimeEnv> = RuntimeEnvBuilder::new()
            .build_arc()
            .expect("default runtime environment builds");
        let session_config = SessionConfig::new()
            .with_batch_size(config.batch_size)
            .with_target_partitions(config.target_partitions)
            .with_information_schema(true);
        let base_state = SessionStateBuilder::new()
            .with_config(session_config)
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        Self {
            base_state,
            tables: Arc::new(TableCache::default()),
        }
    }

    /// A fresh session whose only tables are in `schema`, sharing the function registry,
    /// the runtime and its caches. (A plain clone of a `SessionState` would share the
    /// catalog list, and with it the tables of other sessions.)
    fn session(&self, schema: Arc<dyn SchemaProvider>) -> SessionContext {
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog
            .register_schema("public", schema)
            .expect("a new memory catalog accepts a schema");
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        catalogs.register_catalog("datafusion".to_owned(), catalog);
        // Swapping the catalog list in a clone is cheap; rebuilding the state would
        // re-register every function (about a millisecond).
        let mut state = self.base_state.clone();
        state.register_catalog_list(catalogs);
        SessionContext::new_with_state(state)
    }

    fn scratch_session(&self) -> SessionContext {
        self.session(Arc::new(MemorySchemaProvider::new()))
    }

    /// Reads the schema of the data at `source`.
    pub async fn inspect(&self, source: &DataSource) -> Result<Vec<ColumnSchema>, EngineError> {
        let provider = source::listing_table(&self.base_state, source).await?;
        Ok(source::columns(&provider.schema()))
    }

    /// Measures row count, nulls, distinct estimates and min/max per column.
    pub async fn profile(
        &self,
        source: &DataSource,
        progress: &(dyn Fn(ProfileProgress) + Send + Sync),
    ) -> Result<agora_model::ProductProfile, EngineError> {
        let ctx = self.scratch_session();
        let provider = source::listing_table(&ctx.state(), source).await?;
        profile::profile(&ctx, provider, source, progress).await
    }

    /// Forgets cached state about a table (after it is removed or re-registered).
    pub fn forget(&self, name: &str) {
        self.tables.forget(name);
    }

    /// Prepares a catalog of exactly these tables. Cheap: nothing is read until a query
    /// names a table.
    pub fn catalog(&self, tables: Vec<TableBinding>) -> Catalog {
        let schema = ProductSchema::new(self.base_state.clone(), tables, Arc::clone(&self.tables));
        Catalog {
            ctx: self.session(Arc::new(schema)),
        }
    }

    /// Plans and starts a read-only SQL query over the given tables (a one-off catalog;
    /// callers that query repeatedly keep a [`Catalog`]).
    pub async fn query(
        &self,
        tables: &[TableBinding],
        sql: &str,
    ) -> Result<QueryResult, EngineError> {
        self.catalog(tables.to_vec()).query(sql).await
    }
}

impl Catalog {
    /// Plans and starts a read-only SQL query.
    pub async fn query(&self, sql: &str) -> Result<QueryResult, EngineError> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self.ctx.sql_with_options(sql, options).await.map_err(|e| {
            let msg = e.find_root().to_string();
            if msg.contains("DDL not supported")
                || msg.contains("DML not supported")
                || msg.contains("Statement not supported")
            {
                EngineError::NotReadOnly(tidy(&msg))
            } else {
                EngineError::from_df(e)
            }
        })?;
        let columns = source::columns(df.schema().as_arrow());
        let stream = df.execute_stream().await.map_err(EngineError::from_df)?;
        Ok(QueryResult { columns, stream })
    }
}

impl QueryResult {
    /// Encodes the result as a stream of byte chunks, one or more per record batch.
    pub fn encode(self, format: OutputFormat) -> EncodedStream {
        encode::encode(self.stream, format)
    }

    /// Renders up to `max_rows` rows as a text table; returns it and the total row count.
    pub async fn to_text_table(self, max_rows: usize) -> Result<(String, u64), EngineError> {
        encode::text_table(self.stream, max_rows).await
    }
}
