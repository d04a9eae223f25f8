//! The query engine: the only crate that knows DataFusion.
//!
//! It reads data products in place (CSV or Parquet files and folders, on the local disk or
//! in object stores), infers their schema, profiles them, and runs SQL over them, returning
//! results as a stream of encoded chunks (JSON, NDJSON, CSV, Arrow IPC) or a terminal table.
//! Other crates talk to it only in terms of the domain model and bytes.

mod catalog;
mod csvcheck;
mod encode;
mod enforce;
mod files;
mod limits;
mod observe;
mod profile;
mod remote;
mod source;
mod steps;

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

pub use arrow::array::RecordBatch;
pub use arrow::datatypes::SchemaRef;
use catalog::{ProductSchema, TableCache};
pub use encode::{EncodedStream, OutputFormat, TextPage};
pub use enforce::{
    AccessLedger, CellKeySecret, EnforcedTable, Enforcement, Groups, LinkageKey, MAX_SUBJECTS,
    Pseudonymizer, SubjectDigest, subject_digest,
};
pub use limits::{
    MEMORY as LIMIT_MEMORY, QueryLimits, TIME as LIMIT_TIME, WORKER_STACK, last_memory_stop,
};
pub use observe::{OnEnd, StreamEnd};
pub use profile::ProfileProgress;
pub use remote::{RemoteBatches, RemoteBinding, RemoteSource};

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
    /// An expression of the query failed on a value (division by zero, a cast, a function
    /// given a value it does not take): the query's fault. Its message may quote the value;
    /// callers answering another member replace it with words of their own.
    #[error("the query failed while computing an expression: {0}")]
    Evaluation(String),
    #[error("cannot encode the result: {0}")]
    Encode(String),
    /// The result does not fit the format asked for (the message says what does).
    #[error("the result cannot be written in that format: {0}")]
    Format(String),
    /// Reading a product the caller may not read (the reason says why and what to do).
    #[error("{0}")]
    AccessDenied(String),
    /// A remote owner failed (the message names the member).
    #[error("{0}")]
    Remote(String),
    /// A remote owner refused the query (the message names the member and its reason).
    #[error("{0}")]
    RemoteRefused(String),
    /// Agreement terms that do not fit the product (unknown column, bad row filter).
    #[error("the agreement's terms do not fit the product: {0}")]
    Terms(String),
    /// The query is larger, deeper, hungrier or slower than the node's limits allow (the
    /// message names the limit and what to do).
    #[error("{0}")]
    Limit(String),
}

impl EngineError {
    /// True when the error is the caller's fault (bad SQL, unknown table or column).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::Syntax(_)
                | Self::Plan(_)
                | Self::NotReadOnly(_)
                | Self::AccessDenied(_)
                | Self::RemoteRefused(_)
                | Self::Terms(_)
                | Self::Limit(_)
                | Self::Evaluation(_)
                | Self::Format(_)
        )
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
            DataFusionError::Execution(m) => Self::Evaluation(tidy(m)),
            DataFusionError::ResourcesExhausted(m) => Self::Limit(limits::explain(m)),
            DataFusionError::ArrowError(a, _)
                if matches!(
                    a.as_ref(),
                    arrow::error::ArrowError::CastError(_)
                        | arrow::error::ArrowError::ComputeError(_)
                        | arrow::error::ArrowError::DivideByZero
                        | arrow::error::ArrowError::ArithmeticOverflow(_)
                        | arrow::error::ArrowError::InvalidArgumentError(_)
                        | arrow::error::ArrowError::ParseError(_)
                ) =>
            {
                Self::Evaluation(tidy(&a.to_string()))
            }
            _ => Self::Execution(tidy(&root.to_string())),
        }
    }
}

/// The tables a logical plan scans (its subqueries too), once each, in name order:
/// `(Some(member), table)` for `"member".table`, `(None, table)` for the node's own.
fn tables_read(plan: &datafusion::logical_expr::LogicalPlan) -> Vec<(Option<String>, String)> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let mut found = std::collections::BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let member = scan
                .table_name
                .schema()
                .filter(|s| *s != "public")
                .map(str::to_owned);
            found.insert((member, scan.table_name.table().to_owned()));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found.into_iter().collect()
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

/// The name of the one catalog queries see (`agora.public.product`,
/// `agora."member".product`).
pub const CATALOG: &str = "agora";

/// Tuning knobs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Rows per record batch.
    pub batch_size: usize,
    /// Parallelism of scans and aggregations (default: number of cores).
    pub target_partitions: usize,
    /// What one query may ask of the node.
    pub limits: QueryLimits,
    /// Folders no query may read (the node's own data directory).
    pub protected_dirs: Vec<std::path::PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: 8192,
            target_partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
            limits: QueryLimits::default(),
            protected_dirs: Vec::new(),
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
    /// When set, the product is known but may not be read; naming it fails with this
    /// reason (for example, that an agreement is needed).
    pub refusal: Option<String>,
    /// When set, the product is seen only as this agreement allows (see [`EnforcedTable`]).
    pub enforcement: Option<Enforcement>,
}

/// The query engine. Cheap to share (`Arc`); caches table providers and file metadata.
pub struct Engine {
    /// Built once (function registry, optimizer rules); cloned for each catalog.
    base_state: SessionState,
    tables: Arc<TableCache>,
    budget: limits::Budget,
}

/// A set of tables to query, prepared once and shared by every query over the same
/// bindings (cheap to clone). Tables open on first use; DDL and DML are refused, so
/// queries cannot change it or see anything beyond its bindings.
#[derive(Clone)]
pub struct Catalog {
    ctx: SessionContext,
    budget: limits::Budget,
}

/// A running query: column descriptions and a stream of record batches.
pub struct QueryResult {
    pub columns: Vec<ColumnSchema>,
    /// The tables the query reads, as its plan names them: `(member, table)` for another
    /// member's product (`"member".table`), `(None, table)` for this node's own.
    pub tables: Vec<(Option<String>, String)>,
    /// What the query read under agreements (complete once the stream has ended).
    pub ledger: Arc<AccessLedger>,
    stream: SendableRecordBatchStream,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        let runtime: Arc<RuntimeEnv> = RuntimeEnvBuilder::new()
            .build_arc()
            .expect("default runtime environment builds");
        // Local files are read only at their real locations, never written.
        runtime.register_object_store(
            &url::Url::parse("file://").expect("a valid URL"),
            Arc::new(files::ConfinedFiles::new(&config.protected_dirs)),
        );
        let session_config = SessionConfig::new()
            .with_batch_size(config.batch_size)
            .with_target_partitions(config.target_partitions)
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG, "public");
        let base_state = SessionStateBuilder::new()
            .with_config(session_config)
            .with_runtime_env(runtime)
            .with_default_features()
            // Last, after type coercion: it checks expressions with their final types.
            .with_analyzer_rule(Arc::new(enforce::AggregateAgreements))
            // Joins on pseudonyms of one key run on the identifiers (output unchanged).
            .with_analyzer_rule(Arc::new(enforce::LinkageJoins))
            .with_query_planner(Arc::new(remote::FederatingPlanner))
            // Joins yield between batches, so deadlines and cancellation take effect.
            .with_physical_optimizer_rule(Arc::new(limits::YieldingJoins))
            .build();
        Self {
            base_state,
            tables: Arc::new(TableCache::default()),
            budget: limits::Budget::new(config.limits),
        }
    }

    /// A fresh session whose only tables are in `schema`, sharing the function registry,
    /// the runtime and its caches. (A plain clone of a `SessionState` would share the
    /// catalog list, and with it the tables of other sessions.)
    fn session(
        &self,
        schema: Arc<dyn SchemaProvider>,
        others: Vec<(String, Arc<dyn SchemaProvider>)>,
    ) -> SessionContext {
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog
            .register_schema("public", schema)
            .expect("a new memory catalog accepts a schema");
        for (name, schema) in others {
            catalog
                .register_schema(&name, schema)
                .expect("a memory catalog accepts a schema");
        }
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        catalogs.register_catalog(CATALOG.to_owned(), catalog);
        // Swapping the catalog list in a clone is cheap; rebuilding the state would
        // re-register every function (about a millisecond).
        let mut state = self.base_state.clone();
        state.register_catalog_list(catalogs);
        SessionContext::new_with_state(state)
    }

    fn scratch_session(&self) -> SessionContext {
        self.session(Arc::new(MemorySchemaProvider::new()), vec![])
    }

    /// Reads the schema of the data at `source`.
    pub async fn inspect(&self, source: &DataSource) -> Result<Vec<ColumnSchema>, EngineError> {
        source::check_csv_shape(&self.base_state, source).await?;
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
            ctx: self.session(Arc::new(schema), vec![]),
            budget: self.budget.clone(),
        }
    }

    /// Prepares a catalog of local tables plus other members' products, each named
    /// `"member".product` and read through `source`.
    pub fn federated_catalog(
        &self,
        tables: Vec<TableBinding>,
        remotes: Vec<RemoteBinding>,
        source: Arc<dyn RemoteSource>,
    ) -> Result<Catalog, EngineError> {
        let schema = ProductSchema::new(self.base_state.clone(), tables, Arc::clone(&self.tables));
        let mut members: std::collections::BTreeMap<String, Arc<MemorySchemaProvider>> =
            Default::default();
        for r in &remotes {
            let table = remote::RemoteTable::new(r, Arc::clone(&source))?;
            members
                .entry(r.member.clone())
                .or_default()
                .register_table(r.name.clone(), Arc::new(table))
                .map_err(EngineError::from_df)?;
        }
        let others = members
            .into_iter()
            .map(|(m, s)| (m, s as Arc<dyn SchemaProvider>))
            .collect();
        Ok(Catalog {
            ctx: self.session(Arc::new(schema), others),
            budget: self.budget.clone(),
        })
    }

    /// Prepares the catalog another member's queries see: these tables, named plainly or
    /// as `"member".product` with this node's member id.
    pub fn member_catalog(&self, member: &str, tables: Vec<TableBinding>) -> Catalog {
        let schema: Arc<dyn SchemaProvider> = Arc::new(ProductSchema::new(
            self.base_state.clone(),
            tables,
            Arc::clone(&self.tables),
        ));
        Catalog {
            ctx: self.session(Arc::clone(&schema), vec![(member.to_owned(), schema)]),
            budget: self.budget.clone(),
        }
    }

    /// Checks that `enforcement` can be applied to the product of `binding` (its row
    /// filter is a condition over the product's columns, its masks fit), without reading
    /// any data.
    pub async fn check_enforcement(
        &self,
        binding: &TableBinding,
        enforcement: &Enforcement,
    ) -> Result<(), EngineError> {
        let provider = self.tables.provider(&self.base_state, binding).await?;
        EnforcedTable::new(&self.base_state, provider, enforcement)?;
        Ok(())
    }

    /// The subject identifiers of `binding`'s product whose pseudonym under `key` is one of
    /// `wanted`, by pseudonym (the owner's re-identification of matched pseudonyms).
    pub async fn reidentify(
        &self,
        binding: &TableBinding,
        subject: &str,
        key: &LinkageKey,
        wanted: &std::collections::HashSet<&str>,
    ) -> Result<std::collections::HashMap<String, String>, EngineError> {
        use futures::StreamExt;
        let catalog = self.catalog(vec![binding.clone()]);
        let sql = format!(
            "SELECT DISTINCT CAST({} AS VARCHAR) FROM {}",
            remote::quote(subject),
            remote::quote(&binding.name)
        );
        let mut stream = catalog.query(&sql).await?.into_batches();
        let p = Pseudonymizer::new(key);
        let mut out = std::collections::HashMap::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let ids = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
                .map_err(|e| EngineError::Plan(e.to_string()))?;
            let ids = ids
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .ok_or_else(|| EngineError::Plan("subject identifiers are not text".into()))?;
            for id in ids.iter().flatten() {
                let pseudonym = p.pseudonym(id);
                if wanted.contains(pseudonym.as_str()) {
                    out.insert(pseudonym, id.to_owned());
                }
            }
        }
        Ok(out)
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

/// The schema of the table a "table 'agora.SCHEMA.TABLE' not found" message names, when
/// it names one.
fn missing_table_schema(message: &str) -> Option<String> {
    let start = message.find("table '")? + "table '".len();
    let rest = &message[start..];
    let name = &rest[..rest.find("' not found")?];
    let parts: Vec<&str> = name.split('.').collect();
    match parts[..] {
        [_, schema, _] | [schema, _] => Some(schema.to_owned()),
        _ => None,
    }
}

impl Catalog {
    /// Plans and starts a query from another member: one plain `SELECT` (or `WITH`)
    /// statement, nothing else — no EXPLAIN (plans name data locations), no SHOW.
    pub async fn query_for_member(&self, sql: &str) -> Result<QueryResult, EngineError> {
        use datafusion::sql::parser::Statement;
        use datafusion::sql::sqlparser::ast::Statement as Sql;
        let state = self.ctx.state();
        let mut statements = self.budget.limits.parse(sql, |sql| {
            datafusion::sql::parser::DFParser::parse_sql(sql)
                .map(Vec::from)
                .map_err(|e| EngineError::Syntax(e.to_string()))
        })?;
        let statement = match (statements.pop(), statements.is_empty()) {
            (Some(s @ Statement::Statement(_)), true) if matches!(&s, Statement::Statement(q) if matches!(**q, Sql::Query(_))) => {
                s
            }
            (Some(_), true) => {
                return Err(EngineError::NotReadOnly(
                    "other members may send only SELECT queries".into(),
                ));
            }
            _ => {
                return Err(EngineError::NotReadOnly(
                    "send exactly one SELECT statement".into(),
                ));
            }
        };
        limits::on_big_stack(async move {
            let plan = Self::plan(&state, statement).await?;
            self.start(state, plan).await
        })
        .await
    }

    /// Plans and starts a read-only SQL query.
    pub async fn query(&self, sql: &str) -> Result<QueryResult, EngineError> {
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = self
            .budget
            .limits
            .parse(sql, |sql| {
                state
                    .sql_to_statement(sql, &dialect)
                    .map(|s| vec![s])
                    .map_err(Self::planning_error)
            })?
            .pop()
            .ok_or_else(|| EngineError::Syntax("the query is empty".into()))?;
        let is_query = matches!(&statement, datafusion::sql::parser::Statement::Statement(s)
            if matches!(**s, datafusion::sql::sqlparser::ast::Statement::Query(_)));
        limits::on_big_stack(async move {
            let plan = Self::plan(&state, statement).await?;
            if is_query && let Some(exec) = remote::whole_query(&plan, sql) {
                let tables = tables_read(&plan);
                let columns = source::columns(&exec.schema());
                let (task, pool) = self.budget.task(&state);
                let stream = exec.execute(0, task).map_err(EngineError::from_df)?;
                let stream = self.budget.deadline(stream, pool);
                return Ok(QueryResult {
                    columns,
                    tables,
                    ledger: AccessLedger::new(),
                    stream,
                });
            }
            self.start(state, plan).await
        })
        .await
        .map_err(|e| self.name_the_members(e))
    }

    /// A table not found under a schema that is no member's gets the members listed: the
    /// likely mistake is the member's name (`"tax-ofice".annual_income`).
    fn name_the_members(&self, e: EngineError) -> EngineError {
        let EngineError::Plan(message) = &e else {
            return e;
        };
        let Some(schema) = missing_table_schema(message) else {
            return e;
        };
        let Some(catalog) = self.ctx.catalog(CATALOG) else {
            return e;
        };
        let mut members: Vec<String> = catalog
            .schema_names()
            .into_iter()
            .filter(|s| s != "public" && s != "information_schema")
            .collect();
        if members.contains(&schema) || schema == "public" {
            return e;
        }
        members.sort();
        let known = if members.is_empty() {
            "this node sees no other member's products (has it joined an ecosystem?)".to_owned()
        } else {
            format!(
                "members whose products this node sees: {}",
                members.join(", ")
            )
        };
        EngineError::Plan(format!(
            "{message}: there is no member named {schema:?}; {known}"
        ))
    }

    /// The logical plan of one read-only statement.
    async fn plan(
        state: &SessionState,
        statement: datafusion::sql::parser::Statement,
    ) -> Result<datafusion::logical_expr::LogicalPlan, EngineError> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(Self::planning_error)?;
        options.verify_plan(&plan).map_err(Self::planning_error)?;
        Ok(plan)
    }

    /// Optimises, plans physically and starts a logical plan (one copy of the session
    /// state per query: it carries the query's start time, which `now()` reads), within
    /// the query's memory and time.
    async fn start(
        &self,
        mut state: SessionState,
        plan: datafusion::logical_expr::LogicalPlan,
    ) -> Result<QueryResult, EngineError> {
        let ledger = AccessLedger::new();
        state.config_mut().set_extension(Arc::clone(&ledger));
        let row_limit = enforce::row_limit(&plan);
        let tables = tables_read(&plan);
        let budget = self.budget.bounded(enforce::query_bounds(&plan));
        let columns = source::columns(plan.schema().as_arrow());
        let physical = state
            .create_physical_plan(&plan)
            .await
            .map_err(EngineError::from_df)?;
        let (task, pool) = budget.task(&state);
        let mut stream = datafusion::physical_plan::execute_stream(physical, task)
            .map_err(EngineError::from_df)?;
        if let Some((max, agreement)) = row_limit {
            stream = enforce::limit_rows(stream, max, agreement);
        }
        let stream = budget.deadline(stream, pool);
        Ok(QueryResult {
            columns,
            tables,
            ledger,
            stream,
        })
    }

    fn planning_error(e: DataFusionError) -> EngineError {
        let msg = e.find_root().to_string();
        if msg.contains("DDL not supported")
            || msg.contains("DML not supported")
            || msg.contains("Statement not supported")
        {
            EngineError::NotReadOnly(tidy(&msg))
        } else {
            EngineError::from_df(e)
        }
    }
}

impl QueryResult {
    /// The result's Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        self.stream.schema()
    }

    /// The result with the types its columns are described by (`columns`, and the
    /// offers other members plan with): string and binary views and their large variants
    /// become plain `Utf8` and `Binary`. This is the form answers take on the wire: the
    /// consumer then plans with exactly the types it receives, and plain strings are checked
    /// as UTF-8 in one pass over a buffer rather than one check per view.
    pub fn with_described_types(self) -> Self {
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = self.stream.schema();
        let plain = |t: &DataType| match t {
            DataType::Utf8View | DataType::LargeUtf8 => Some(DataType::Utf8),
            DataType::BinaryView | DataType::LargeBinary => Some(DataType::Binary),
            _ => None,
        };
        if !schema
            .fields()
            .iter()
            .any(|f| plain(f.data_type()).is_some())
        {
            return self;
        }
        let target: SchemaRef = Arc::new(Schema::new_with_metadata(
            schema
                .fields()
                .iter()
                .map(|f| match plain(f.data_type()) {
                    Some(t) => Arc::new(Field::new(f.name(), t, f.is_nullable())),
                    None => Arc::clone(f),
                })
                .collect::<Vec<_>>(),
            schema.metadata().clone(),
        ));
        let to = Arc::clone(&target);
        let stream = futures::StreamExt::map(self.stream, move |batch| {
            let batch = batch?;
            let columns = batch
                .columns()
                .iter()
                .zip(to.fields())
                .map(|(c, f)| {
                    if c.data_type() == f.data_type() {
                        Ok(Arc::clone(c))
                    } else {
                        arrow::compute::cast(c, f.data_type())
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            let options =
                arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            Ok(RecordBatch::try_new_with_options(
                Arc::clone(&to),
                columns,
                &options,
            )?)
        });
        Self {
            columns: self.columns,
            tables: self.tables,
            ledger: self.ledger,
            stream: Box::pin(
                datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(target, stream),
            ),
        }
    }

    /// The same result, calling `on_end` once when its stream ends: read to the end,
    /// failed, or dropped by its reader (with the rows delivered until then).
    pub fn observe(self, on_end: OnEnd) -> Self {
        Self {
            columns: self.columns,
            tables: self.tables,
            ledger: self.ledger,
            stream: Box::pin(observe::Observed::new(self.stream, on_end)),
        }
    }

    /// The result as a stream of record batches.
    pub fn into_batches(self) -> RemoteBatches {
        use futures::TryStreamExt;
        Box::pin(self.stream.map_err(EngineError::from_df))
    }

    /// Encodes the result as a stream of byte chunks, one or more per record batch.
    pub fn encode(self, format: OutputFormat) -> EncodedStream {
        encode::encode(self.stream, format)
    }

    /// One page of rows as text cells: skips `skip` rows, keeps `take`, and says whether
    /// more follow (computing no further than one row past the page).
    pub async fn text_page(self, skip: usize, take: usize) -> Result<TextPage, EngineError> {
        encode::text_page(self.stream, skip, take).await
    }

    /// Renders up to `max_rows` rows as a text table; returns it and the total row count.
    pub async fn to_text_table(self, max_rows: usize) -> Result<(String, u64), EngineError> {
        encode::text_table(self.stream, max_rows).await
    }
}
