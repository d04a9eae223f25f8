//! Federation: products of other members, named `"member".product` in SQL, and the planning
//! that sends to each owner the largest parts of a query that touch only that owner's
//! products.
//!
//! After DataFusion has optimised a plan (filters and projections pushed towards the
//! scans), [`FederatingPlanner`] looks for the largest subtrees whose tables all belong to
//! one remote member and that contain nothing that must run here (subqueries, local
//! tables, extension nodes). Each such subtree is turned back into SQL with DataFusion's
//! unparser and replaced by a [`RemoteQuery`] node; its execution asks the owner through a
//! [`RemoteSource`] and streams the owner's record batches. Filters, projections, limits,
//! aggregates, sorts and joins between one owner's products thus run at the owner; joins
//! across members run here. The engine knows nothing of how a remote source reaches the
//! owner (that is the node's business).
//!
//! **Federation** (`remote.rs`). Other members' products are `RemoteTable`s in a schema
//! named after the member (`"member".product`, built from their offers' schemas) and read
//! through a `RemoteSource` the node provides. A `FederatingPlanner` runs after
//! DataFusion's logical optimiser (so filters and projections already sit next to the
//! scans): it replaces every largest subtree whose tables all belong to one remote member —
//! and that holds no subquery expression, local table or extension — by a `RemoteQuery`
//! node carrying that subtree turned back into SQL by DataFusion's unparser (aliases over
//! filtered scans are made derived tables first, which the unparser renders faithfully).
//! Its `RemoteExec` streams the owner's batches, conformed by position to the expected
//! schema (a wrong shape is an error). A query that reads only one remote member's products
//! (in its subqueries too) is sent to that owner as written, after logical planning only
//! (`remote::whole_query`: no optimiser, unparser or physical planner here — for small
//! requests that planning cost as much as answering them). So filters, projections, limits,
//! aggregates, sorts, windows and joins within one owner run at the owner; joins across
//! members and with local tables run here. `EXPLAIN` shows each `RemoteExec` with the SQL
//! it sends. As an owner, `member_catalog` names the node's products plainly and as
//! `"this-member".product`; `Catalog::query_for_member` accepts exactly one `SELECT`/`WITH`
//! statement (no `EXPLAIN`, which would reveal locations, no `SHOW`, no DDL); a
//! `TableBinding` with a `refusal` fails with `AccessDenied` when named.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, Result};
use datafusion::datasource::source_as_provider;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, Projection, SubqueryAlias, TableType, UserDefinedLogicalNode,
    UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::CustomDialectBuilder;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::EngineError;

/// Record batches from a remote owner, in the column order of the query sent.
pub type RemoteBatches = BoxStream<'static, Result<RecordBatch, EngineError>>;

/// How the engine reaches other members: runs read-only SQL at a member's node and
/// streams the result back. Implemented by the node (signed, over Arrow Flight).
#[async_trait]
pub trait RemoteSource: Send + Sync + 'static {
    async fn query(&self, member: &str, sql: &str) -> Result<RemoteBatches, EngineError>;
}

/// A product of another member as a query may name it: `"member".product`.
#[derive(Debug, Clone)]
pub struct RemoteBinding {
    pub member: String,
    pub name: String,
    pub schema: Vec<agora_model::ColumnSchema>,
}

/// The SQL dialect used to send subplans to owners: every identifier quoted, so names
/// with hyphens or capitals survive the trip.
fn unparser_dialect() -> datafusion::sql::unparser::dialect::CustomDialect {
    CustomDialectBuilder::new()
        .with_identifier_quote_style('"')
        .build()
}

/// Turns a plan into the SQL an owner runs.
///
/// An alias directly over a filtered or limited scan is unparsed by DataFusion with the
/// alias on the table but the filter still naming the table; giving every aliased input
/// its own projection makes it a derived table (`(SELECT ... WHERE ...) AS r`) instead,
/// which unparses faithfully.
fn to_sql(plan: &LogicalPlan) -> Result<String> {
    let plan = plan
        .clone()
        .transform_up(|node| match node {
            LogicalPlan::SubqueryAlias(alias)
                if !matches!(alias.input.as_ref(), LogicalPlan::Projection(_)) =>
            {
                let input = Arc::clone(&alias.input);
                let columns = input
                    .schema()
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                let projected = LogicalPlan::Projection(Projection::try_new(columns, input)?);
                Ok(Transformed::yes(LogicalPlan::SubqueryAlias(
                    SubqueryAlias::try_new(Arc::new(projected), alias.alias.clone())?,
                )))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    let dialect = unparser_dialect();
    let unparser = Unparser::new(&dialect);
    Ok(unparser.plan_to_sql(&plan)?.to_string())
}

pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A remote product: its schema is the owner's offer; reading it asks the owner.
pub(crate) struct RemoteTable {
    member: String,
    product: String,
    schema: SchemaRef,
    source: Arc<dyn RemoteSource>,
}

impl fmt::Debug for RemoteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteTable({}.{})", self.member, self.product)
    }
}

impl RemoteTable {
    pub(crate) fn new(
        binding: &RemoteBinding,
        source: Arc<dyn RemoteSource>,
    ) -> Result<Self, EngineError> {
        let fields = binding
            .schema
            .iter()
            .map(|c| {
                let dt = c.data_type.parse().map_err(|e| {
                    EngineError::Plan(format!(
                        "the offer of {}.{} has column {:?} of unknown type {}: {e}",
                        binding.member, binding.name, c.name, c.data_type
                    ))
                })?;
                Ok(arrow::datatypes::Field::new(&c.name, dt, c.nullable))
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        Ok(Self {
            member: binding.member.clone(),
            product: binding.name.clone(),
            schema: Arc::new(Schema::new(fields)),
            source,
        })
    }
}

#[async_trait]
impl TableProvider for RemoteTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Reached only when a scan could not be folded into a larger remote subplan (inside
    /// a subquery expression, say): asks the owner for the projected columns.
    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => Arc::clone(&self.schema),
        };
        let columns = if schema.fields().is_empty() {
            "1".to_owned()
        } else {
            schema
                .fields()
                .iter()
                .map(|f| quote(f.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sql = format!(
            "SELECT {columns} FROM {}.{}",
            quote(&self.member),
            quote(&self.product)
        );
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let exec = RemoteExec::new(self.member.clone(), sql, schema, Arc::clone(&self.source));
        // A query without columns (`count(*)`) still needs one row per remote row.
        Ok(Arc::new(exec))
    }
}

/// Where a subtree of a plan can run.
#[derive(Clone)]
enum Site {
    /// No tables at all (constants): anywhere.
    Anywhere,
    /// Only products of this remote member.
    Remote(String, Arc<dyn RemoteSource>),
    /// Here: local tables, several owners, or something that must not leave.
    Here,
}

impl Site {
    fn join(self, other: Site) -> Site {
        match (self, other) {
            (Site::Anywhere, s) | (s, Site::Anywhere) => s,
            (Site::Remote(a, s), Site::Remote(b, _)) if a == b => Site::Remote(a, s),
            _ => Site::Here,
        }
    }
}

fn site(plan: &LogicalPlan) -> Site {
    match plan {
        LogicalPlan::TableScan(scan) => {
            match source_as_provider(&scan.source).ok().and_then(|p| {
                (p.as_ref() as &dyn std::any::Any)
                    .downcast_ref::<RemoteTable>()
                    .map(|r| (r.member.clone(), Arc::clone(&r.source)))
            }) {
                Some((member, source)) => Site::Remote(member, source),
                None => Site::Here,
            }
        }
        LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => Site::Anywhere,
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Window(_)
        | LogicalPlan::Aggregate(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Join(_)
        | LogicalPlan::Union(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Distinct(_) => {
            if has_subquery(plan) {
                return Site::Here;
            }
            plan.inputs()
                .into_iter()
                .fold(Site::Anywhere, |acc, input| acc.join(site(input)))
        }
        // Everything else (extensions, subqueries, recursive queries, unnest, EXPLAIN,
        // statements) runs here; its inputs may still be sent.
        _ => Site::Here,
    }
}

fn has_subquery(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_subqueries(|_| {
        found = true;
        Ok(TreeNodeRecursion::Stop)
    });
    found
}

/// When every table a query reads, in subqueries too, is a product of one remote member,
/// the whole query can run at that owner exactly as the user wrote it: returns the plan
/// that streams the owner's answer, conformed to `plan`'s schema. This skips optimising,
/// unparsing and physical planning here, which for small requests cost as much as running
/// them. `plan` must be the plan of a plain query (not EXPLAIN, no statement).
pub(crate) fn whole_query(plan: &LogicalPlan, sql: &str) -> Option<Arc<dyn ExecutionPlan>> {
    let mut owner: Option<(String, Arc<dyn RemoteSource>)> = None;
    let mut pushable = true;
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                let remote = source_as_provider(&scan.source).ok().and_then(|p| {
                    (p.as_ref() as &dyn std::any::Any)
                        .downcast_ref::<RemoteTable>()
                        .map(|r| (r.member.clone(), Arc::clone(&r.source)))
                });
                match (remote, &owner) {
                    (Some((m, _)), Some((o, _))) if &m == o => {}
                    (Some(r), None) => owner = Some(r),
                    _ => pushable = false,
                }
            }
            // Anything of this node's own (extension nodes, statements) stays here.
            LogicalPlan::Extension(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::DescribeTable(_) => pushable = false,
            _ => {}
        }
        Ok(if pushable {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    let (member, source) = owner.filter(|_| pushable)?;
    Some(Arc::new(RemoteExec::new(
        member,
        sql.to_owned(),
        Arc::new(plan.schema().as_arrow().clone()),
        source,
    )))
}

/// Replaces the largest single-owner subtrees of `plan` by [`RemoteQuery`] nodes.
fn federate(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    // A subtree not expressible as SQL sends its parts instead.
    if let Site::Remote(member, source) = site(&plan)
        && let Ok(sql) = to_sql(&plan)
    {
        let node = RemoteQuery {
            member,
            sql,
            schema: Arc::clone(plan.schema()),
            source,
        };
        return Ok(Transformed::yes(LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        })));
    }
    plan.map_children(federate)
}

/// A subplan to be run by a remote owner, as SQL.
pub(crate) struct RemoteQuery {
    member: String,
    sql: String,
    schema: DFSchemaRef,
    source: Arc<dyn RemoteSource>,
}

impl fmt::Debug for RemoteQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteQuery: member={} sql={}", self.member, self.sql)
    }
}

impl PartialEq for RemoteQuery {
    fn eq(&self, other: &Self) -> bool {
        self.member == other.member && self.sql == other.sql
    }
}
impl Eq for RemoteQuery {}
impl Hash for RemoteQuery {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.member.hash(state);
        self.sql.hash(state);
    }
}
impl PartialOrd for RemoteQuery {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some((&self.member, &self.sql).cmp(&(&other.member, &other.sql)))
    }
}

impl UserDefinedLogicalNodeCore for RemoteQuery {
    fn name(&self) -> &str {
        "RemoteQuery"
    }
    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![]
    }
    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }
    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }
    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RemoteQuery: member={} sql={}", self.member, self.sql)
    }
    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, _inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(Self {
            member: self.member.clone(),
            sql: self.sql.clone(),
            schema: Arc::clone(&self.schema),
            source: Arc::clone(&self.source),
        })
    }
}

/// Plans queries with federation: optimised plan → remote subplans → physical plan.
#[derive(Debug, Default)]
pub(crate) struct FederatingPlanner;

#[async_trait]
impl QueryPlanner for FederatingPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = federate(logical_plan.clone())?.data;
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(RemotePlanner)])
            .create_physical_plan(&plan, session)
            .await
    }
}

struct RemotePlanner;

#[async_trait]
impl ExtensionPlanner for RemotePlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        _physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(q) = node.as_any().downcast_ref::<RemoteQuery>() else {
            return Ok(None);
        };
        Ok(Some(Arc::new(RemoteExec::new(
            q.member.clone(),
            q.sql.clone(),
            Arc::new(q.schema.as_arrow().clone()),
            Arc::clone(&q.source),
        ))))
    }
}

/// Runs SQL at a remote owner and streams its answer, conformed to the expected schema.
pub(crate) struct RemoteExec {
    member: String,
    sql: String,
    schema: SchemaRef,
    source: Arc<dyn RemoteSource>,
    properties: Arc<PlanProperties>,
}

impl RemoteExec {
    fn new(member: String, sql: String, schema: SchemaRef, source: Arc<dyn RemoteSource>) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            member,
            sql,
            schema,
            source,
            properties,
        }
    }
}

impl fmt::Debug for RemoteExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteExec: member={} sql={}", self.member, self.sql)
    }
}

impl DisplayAs for RemoteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RemoteExec: member={} sql={}", self.member, self.sql)
    }
}

impl ExecutionPlan for RemoteExec {
    fn name(&self) -> &str {
        "RemoteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "RemoteExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let source = Arc::clone(&self.source);
        let member = self.member.clone();
        let sql = self.sql.clone();
        let schema = Arc::clone(&self.schema);
        let target = Arc::clone(&schema);
        let stream = futures::stream::once(async move { source.query(&member, &sql).await })
            .try_flatten()
            .map(move |batch| conform(batch?, &target))
            .map_err(|e| DataFusionError::External(Box::new(e)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Gives a remote batch the schema the plan expects: same columns by position, cast where
/// the owner's types differ in representation only.
fn conform(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, EngineError> {
    if batch.num_columns() != schema.fields().len() {
        return Err(EngineError::Remote(format!(
            "the owner answered with {} columns where {} were expected",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(col, field)| {
            if col.data_type() == field.data_type() {
                Ok(Arc::clone(col))
            } else {
                cast(col, field.data_type()).map_err(|e| {
                    EngineError::Remote(format!(
                        "the owner's column {:?} is {} where {} was expected: {e}",
                        field.name(),
                        col.data_type(),
                        field.data_type()
                    ))
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
        .map_err(|e| EngineError::Remote(format!("the owner's answer does not fit the query: {e}")))
}
