//! Bounds on the work one query may make a node do, wherever it comes from (the API, the
//! web, the CLI, Flight SQL, another member): the SQL's size and shape, checked before
//! planning; its memory, through DataFusion's memory pool (one budget per query inside one
//! for the node); its time.
//!
//! The shape check runs on a stack grown to fit the worst case the size limit allows, so
//! neither it nor dropping a refused statement can overflow; statements it accepts are
//! shallow enough for DataFusion's recursive planning.
//!
//! **Bounded work** (`limits.rs`). Every query, whatever door it came in by
//! (`Catalog::query` for the API, web, CLI and Flight SQL; `Catalog::query_for_member` for
//! other members), passes `QueryLimits` before planning: its length in bytes, its bracket
//! nesting (checked on tokens, before the parser, whose backtracking over nested special
//! forms such as `CAST(` costs four times more per level), then, on the parsed statement,
//! the depth of expressions and set operations (`a + b + c …` and `… UNION ALL …` chains
//! are as deep as they are long) and the number of expressions, tables and set operations.
//! The shape check and the destructor of a refused statement run on a stack grown to fit
//! the worst case the length limit allows; planning runs with at least 8 MiB of stack
//! (`on_big_stack`), and the binary's worker threads have `WORKER_STACK` (16 MiB, committed
//! only when used), so no statement can overflow a stack. Each query executes with a memory
//! pool of its own (`QueryPool`: the query's limit inside the node's total, shared by all
//! queries; operators that can spill do, the others fail with "the query needs more memory
//! than allowed"), and a deadline on its stream that ends it with a clear error and drops
//! (cancels) its work. Joins are wrapped so they yield to the scheduler between batches
//! (`YieldingJoins`): a join can produce endless output while the operator above it loops
//! without waiting, and without a yield neither the deadline nor a disconnected client
//! could stop it. A nested-loop join also gets its probe side in small steps (`steps.rs`,
//! `ProbeSteps`) that check the query's deadline, carried in the task's session config
//! (`QueryDeadline`), since a busy runtime's timers fire late. Limit errors are
//! `EngineError::Limit` (HTTP 422 `query_limit`; another member is told which kind of limit
//! in fixed words). `CASE … END` counts as a level of nesting with brackets (the parser
//! backtracks over it too). An agreement's `query_limits` tighten the time and memory of
//! every query whose plan reads a product under it (`enforce::query_bounds`, found in the
//! plan, never in the text). A panic inside DataFusion while planning (`BigStack`) or
//! executing (`Deadline`) is caught and ends that query with `EngineError::Execution`. CSV
//! sources are checked whole at registration (`csvcheck.rs`: unterminated quotes, ragged
//! lines, header only) with line numbers.

use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::{ChildrenPropertiesMode, ExecutionPlan, ReplaceChildrenOptions};
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{Expr, Query, SetExpr, TableFactor, Visit, Visitor};
use futures::Stream;

use crate::EngineError;

/// The limits of one node (and, where an agreement says so, of one member's queries).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryLimits {
    /// The longest SQL text, in bytes.
    pub max_sql_bytes: usize,
    /// The deepest nesting of brackets (`(`, `[`, `{`). The SQL parser backtracks over
    /// nested special forms (`CAST(`, `SUBSTRING(`, `NOT (`…) at a cost that grows fourfold
    /// per level: 16 levels parse in well under a second, 22 would take seconds.
    pub max_nesting: usize,
    /// The deepest nesting of expressions and set operations (`a + b + c` is a chain as deep
    /// as it is long).
    pub max_depth: usize,
    /// The most expressions, table references and set operations in one statement.
    pub max_plan_size: usize,
    /// The memory one query may hold (hash tables, sorts, buffers), in bytes.
    pub query_memory: usize,
    /// The memory all queries on the node may hold together, in bytes.
    pub node_memory: usize,
    /// The longest a query may take, from planning to its last row.
    pub query_time: Duration,
}

impl Default for QueryLimits {
    /// Safe for a 2-core node with 4 GB of memory.
    fn default() -> Self {
        Self {
            max_sql_bytes: 256 * 1024,
            max_nesting: 16,
            max_depth: 200,
            max_plan_size: 20_000,
            query_memory: 512 * 1024 * 1024,
            node_memory: 2 * 1024 * 1024 * 1024,
            query_time: Duration::from_secs(300),
        }
    }
}

impl QueryLimits {
    /// Checks `sql` as every query is checked before planning — length, nesting, then
    /// parsed depth and size — and parses it (the benchmarks weigh the checks against
    /// the parse a query needs anyway).
    pub fn check_sql(&self, sql: &str) -> Result<(), EngineError> {
        self.parse(sql, |sql| {
            datafusion::sql::parser::DFParser::parse_sql(sql)
                .map(Vec::from)
                .map_err(|e| EngineError::Syntax(e.to_string()))
        })
        .map(drop)
    }

    /// Parses `sql` (one or more statements) and checks its size and shape.
    pub(crate) fn parse(
        &self,
        sql: &str,
        parse: impl FnOnce(&str) -> Result<Vec<Statement>, EngineError>,
    ) -> Result<Vec<Statement>, EngineError> {
        if sql.len() > self.max_sql_bytes {
            return Err(EngineError::Limit(format!(
                "the query is {} bytes long; this node accepts at most {} — shorten it",
                sql.len(),
                self.max_sql_bytes
            )));
        }
        self.check_nesting(sql)?;
        // Every level of nesting takes at least two characters (`1+`), and each level
        // costs the checker and the destructor at most a few hundred bytes of stack.
        let stack = 256 * 1024 + sql.len() * 512;
        stacker::maybe_grow(stack, stack, || {
            let statements = parse(sql)?;
            for s in &statements {
                self.check(s)?;
            }
            Ok(statements)
        })
    }

    /// Refuses brackets and `CASE … END` nested deeper than `max_nesting`, before the
    /// parser sees them: the parser backtracks over each level of these (fourfold per
    /// bracketed special form, twofold per `CASE`). A text the tokenizer refuses is left
    /// to the parser, which explains it.
    fn check_nesting(&self, sql: &str) -> Result<(), EngineError> {
        use datafusion::sql::sqlparser::dialect::GenericDialect;
        use datafusion::sql::sqlparser::keywords::Keyword;
        use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
        let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
            return Ok(());
        };
        // What each open level waits for; `END` closes a level only where the parser
        // would read it as the end of a `CASE`.
        let mut open: Vec<bool> = Vec::new(); // true: a CASE
        for token in tokens {
            let case = match &token {
                Token::LParen | Token::LBracket | Token::LBrace => false,
                Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::CASE => true,
                Token::RParen | Token::RBracket | Token::RBrace => {
                    // Brackets close the CASE levels left open inside them too.
                    while open.pop() == Some(true) {}
                    continue;
                }
                Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::END => {
                    if open.last() == Some(&true) {
                        open.pop();
                    }
                    continue;
                }
                _ => continue,
            };
            open.push(case);
            if open.len() > self.max_nesting {
                return Err(EngineError::Limit(format!(
                    "the query nests brackets or CASE expressions more than {} deep; this node accepts at most that — move inner parts into a WITH clause or a view",
                    self.max_nesting
                )));
            }
        }
        Ok(())
    }

    fn check(&self, statement: &Statement) -> Result<(), EngineError> {
        let Statement::Statement(s) = statement else {
            return Ok(());
        };
        let mut shape = Shape {
            depth: 0,
            deepest: 0,
            size: 0,
            max_depth: self.max_depth,
        };
        if let ControlFlow::Break(e) = s.visit(&mut shape) {
            return Err(e);
        }
        if shape.size > self.max_plan_size {
            return Err(EngineError::Limit(format!(
                "the query has {} expressions, tables and set operations; this node accepts at most {} — split it into smaller queries",
                shape.size, self.max_plan_size
            )));
        }
        Ok(())
    }
}

/// The stack of the node's async worker threads: planning and evaluating an expression as
/// deep as `max_depth` allows recurses far below the default 2 MiB (pages are committed
/// only when used).
pub const WORKER_STACK: usize = 16 << 20;

/// Planning runs where at least this much stack is left, on a fresh stack of
/// `WORKER_STACK` otherwise.
const PLAN_RED_ZONE: usize = 8 << 20;

/// `future`, each of whose polls runs with at least `PLAN_RED_ZONE` of stack.
pub(crate) fn on_big_stack<T, F: Future<Output = Result<T, EngineError>>>(
    future: F,
) -> impl Future<Output = F::Output> {
    BigStack(Box::pin(future))
}

struct BigStack<F>(Pin<Box<F>>);

impl<T, F: Future<Output = Result<T, EngineError>>> Future for BigStack<F> {
    type Output = F::Output;

    /// Polls with enough stack; a panic inside the engine while planning or starting the
    /// query ends it with an error, not the request or the process.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = self.0.as_mut();
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            stacker::maybe_grow(PLAN_RED_ZONE, WORKER_STACK, || inner.poll(cx))
        }));
        polled.unwrap_or_else(|panic| {
            tracing::error!(panic = %panic_text(&panic), "the query engine panicked while planning");
            Poll::Ready(Err(EngineError::Execution(ENGINE_FAILED.to_owned())))
        })
    }
}

/// What the shape check counts while it walks a statement.
struct Shape {
    depth: usize,
    deepest: usize,
    size: usize,
    max_depth: usize,
}

impl Shape {
    fn enter(&mut self, levels: usize) -> ControlFlow<EngineError> {
        self.depth += levels;
        self.deepest = self.deepest.max(self.depth);
        if self.depth > self.max_depth {
            return ControlFlow::Break(EngineError::Limit(format!(
                "the query nests expressions or set operations more than {} deep; this node accepts at most that — write long chains of AND, OR, + or UNION as IN lists, tables or several queries",
                self.max_depth
            )));
        }
        ControlFlow::Continue(())
    }
}

/// The depth of a chain of set operations (`a UNION b UNION c …`), without recursion.
fn set_depth(body: &SetExpr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(body, 1usize)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        if let SetExpr::SetOperation { left, right, .. } = e {
            stack.push((left, d + 1));
            stack.push((right, d + 1));
        }
    }
    deepest
}

impl Visitor for Shape {
    type Break = EngineError;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<EngineError> {
        let d = set_depth(&query.body);
        self.size += d;
        self.enter(d)
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<EngineError> {
        self.depth -= set_depth(&query.body);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, _: &TableFactor) -> ControlFlow<EngineError> {
        self.size += 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<EngineError> {
        self.size += 1;
        self.enter(1)
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<EngineError> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// A query's memory budget inside the node's: both must have room for every reservation.
#[derive(Debug)]
pub(crate) struct QueryPool {
    node: Arc<NodeMemory>,
    limit: usize,
    used: AtomicUsize,
    /// When a reservation was first refused (the query crossed a limit).
    refused_at: std::sync::OnceLock<std::time::Instant>,
}

/// The memory all queries on the node hold.
#[derive(Debug)]
pub(crate) struct NodeMemory {
    limit: usize,
    used: AtomicUsize,
}

impl NodeMemory {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    pub(crate) fn query(self: &Arc<Self>, limit: usize) -> QueryPool {
        QueryPool {
            node: Arc::clone(self),
            limit,
            used: AtomicUsize::new(0),
            refused_at: std::sync::OnceLock::new(),
        }
    }
}

/// Adds `n` to `used` unless that passes `limit`.
fn try_add(used: &AtomicUsize, n: usize, limit: usize) -> bool {
    used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
        u.checked_add(n).filter(|&t| t <= limit)
    })
    .is_ok()
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "query memory (limit {} bytes)", self.limit)
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "agora_query"
    }

    fn grow(&self, _: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::AcqRel);
        self.node.used.fetch_add(additional, Ordering::AcqRel);
    }

    fn shrink(&self, _: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::AcqRel);
        self.node.used.fetch_sub(shrink, Ordering::AcqRel);
    }

    fn try_grow(&self, _: &MemoryReservation, additional: usize) -> Result<()> {
        if !try_add(&self.used, additional, self.limit) {
            self.refused_at.get_or_init(std::time::Instant::now);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{MEMORY}: it needs more than the {} MiB one query may use on this node — narrow it (fewer rows, fewer joined rows, an aggregate) or ask the node's operator",
                self.limit >> 20,
            )));
        }
        if !try_add(&self.node.used, additional, self.node.limit) {
            self.used.fetch_sub(additional, Ordering::AcqRel);
            self.refused_at.get_or_init(std::time::Instant::now);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{MEMORY}: the node's queries together use all of the {} MiB it allows; try again when others have finished",
                self.node.limit >> 20
            )));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }

    fn register(&self, _: &MemoryConsumer) {}
}

/// The start of every memory-limit message (the error mapping looks for it).
pub const MEMORY: &str = "the query needs more memory than allowed";

/// The start of every time-limit message.
pub const TIME: &str = "the query took longer than allowed";

/// The words of a resources-exhausted error from DataFusion, ours or its own.
pub(crate) fn explain(m: &str) -> String {
    for prefix in [MEMORY, TIME] {
        if let Some(at) = m.find(prefix) {
            return m[at..].to_owned();
        }
    }
    let _ = m; // DataFusion's own words name its operators, not what the user can do.
    format!("{MEMORY}: the memory for this query ran out")
}

/// The limits of a catalog's queries and the node's memory they share.
#[derive(Clone)]
pub(crate) struct Budget {
    pub limits: Arc<QueryLimits>,
    memory: Arc<NodeMemory>,
}

impl Budget {
    pub(crate) fn new(limits: QueryLimits) -> Self {
        Self {
            memory: NodeMemory::new(limits.node_memory),
            limits: Arc::new(limits),
        }
    }

    /// The same, within what an agreement allows each query under it.
    pub(crate) fn bounded(&self, bounds: agora_model::QueryBounds) -> Self {
        if bounds.is_unbounded() {
            return self.clone();
        }
        let mut limits = (*self.limits).clone();
        if let Some(s) = bounds.max_seconds {
            limits.query_time = limits.query_time.min(Duration::from_secs(s.into()));
        }
        if let Some(m) = bounds.max_memory_mib {
            limits.query_memory = limits.query_memory.min((m as usize) << 20);
        }
        Self {
            limits: Arc::new(limits),
            memory: Arc::clone(&self.memory),
        }
    }

    /// The task context of one query: the session's, with a memory pool of its own.
    pub(crate) fn task(&self, state: &SessionState) -> (Arc<TaskContext>, Arc<QueryPool>) {
        let mut runtime = RuntimeEnv::clone(state.runtime_env());
        let pool = Arc::new(self.memory.query(self.limits.query_memory));
        runtime.memory_pool = Arc::clone(&pool) as Arc<dyn MemoryPool>;
        // Operators that may hold a thread for long (nested-loop joins, see `steps`) check
        // the deadline themselves: the timer of a busy runtime fires late.
        let due = QueryDeadline(
            std::time::Instant::now() + self.limits.query_time,
            self.limits.query_time,
        );
        let config = state.config().clone().with_extension(Arc::new(due));
        let task = TaskContext::from(state)
            .with_session_config(config)
            .with_runtime(Arc::new(runtime));
        (Arc::new(task), pool)
    }

    /// `stream`, ended with a clear error once the query's time is up (dropping the inner
    /// stream cancels its work); `pool` is the query's memory, whose refusal it times.
    pub(crate) fn deadline(
        &self,
        stream: SendableRecordBatchStream,
        pool: Arc<QueryPool>,
    ) -> SendableRecordBatchStream {
        let limit = self.limits.query_time;
        Box::pin(Deadline {
            schema: stream.schema(),
            inner: Some(stream),
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
            pool,
        })
    }
}

/// When the query's time is up (and its limit), for operators that check it themselves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueryDeadline(pub std::time::Instant, pub Duration);

impl QueryDeadline {
    /// The error of a query whose time is up.
    pub(crate) fn expired(&self) -> DataFusionError {
        DataFusionError::ResourcesExhausted(format!(
            "{TIME}: it was stopped after {} s, the most one query may take on this node — narrow it (fewer rows, a filter, an aggregate) or ask the node's operator",
            self.1.as_secs()
        ))
    }
}

/// What a query that met a panic inside the engine is told.
pub(crate) const ENGINE_FAILED: &str = "the query engine failed on this query (the failure is logged for the node's operator); rewrite the query, e.g. without CROSS JOIN, or report it";

/// The message of a caught panic.
pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// A stream with a time limit.
struct Deadline {
    inner: Option<SendableRecordBatchStream>,
    schema: SchemaRef,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    pool: Arc<QueryPool>,
}

/// How long the last query stopped for memory took from crossing its limit to its error,
/// in microseconds (what the benchmarks report; `u64::MAX` before any).
static LAST_MEMORY_STOP_MICROS: AtomicU64 = AtomicU64::new(u64::MAX);

/// How long the most recent query stopped for memory took from the refused reservation to
/// the error its caller received.
pub fn last_memory_stop() -> Option<Duration> {
    match LAST_MEMORY_STOP_MICROS.load(Ordering::Acquire) {
        u64::MAX => None,
        us => Some(Duration::from_micros(us)),
    }
}

impl Stream for Deadline {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        // A panic inside the engine (a bug of DataFusion's on some plan shape) ends this
        // query with an error, not the request or the process.
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inner.as_mut().poll_next(cx)
        }));
        match polled {
            Ok(Poll::Ready(item)) => {
                if item.is_none() {
                    self.inner = None;
                }
                if matches!(item, Some(Err(_)))
                    && let Some(at) = self.pool.refused_at.get()
                {
                    let us = at.elapsed().as_micros().min(u128::from(u64::MAX - 1)) as u64;
                    LAST_MEMORY_STOP_MICROS.store(us, Ordering::Release);
                    tracing::info!(after_us = us, "query stopped at its memory limit");
                }
                return Poll::Ready(item);
            }
            Ok(Poll::Pending) => {}
            Err(panic) => {
                self.inner = None;
                let what = panic_text(&panic);
                tracing::error!(panic = %what, "the query engine panicked; the query was ended");
                return Poll::Ready(Some(Err(DataFusionError::External(Box::new(
                    EngineError::Execution(ENGINE_FAILED.to_owned()),
                )))));
            }
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            // Drop the work (the schema stays for callers that ask after the end).
            self.inner = None;
            return Poll::Ready(Some(Err(QueryDeadline(
                std::time::Instant::now(),
                self.limit,
            )
            .expired())));
        }
        Poll::Pending
    }
}

impl RecordBatchStream for Deadline {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// Makes every join yield to the scheduler between batches (and nested-loop joins take
/// their probe side in small steps, see `steps`). A join can produce endless
/// output from one input batch while the operator above it loops without ever waiting;
/// without a yield, neither the deadline nor a cancelled client could stop the query until
/// the loop ends.
#[derive(Debug)]
pub(crate) struct YieldingJoins;

impl PhysicalOptimizerRule for YieldingJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        use datafusion::physical_plan::joins::{
            CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec,
            SymmetricHashJoinExec,
        };
        plan.transform_up(|p| {
            let nested_loop = p.is::<NestedLoopJoinExec>() || p.is::<CrossJoinExec>();
            let join = nested_loop
                || p.is::<HashJoinExec>()
                || p.is::<SortMergeJoinExec>()
                || p.is::<SymmetricHashJoinExec>();
            if !join {
                return Ok(Transformed::no(p));
            }
            // A nested-loop join takes its probe (right) side in small steps.
            let p = match p.children().as_slice() {
                [left, right] if nested_loop => {
                    let (left, right) = (Arc::clone(left), Arc::clone(right));
                    let steps = Arc::new(crate::steps::ProbeSteps::new(right));
                    Arc::clone(&p).replace_children(
                        vec![left, steps],
                        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
                    )?
                }
                _ => p,
            };
            Ok(Transformed::yes(
                Arc::new(CooperativeExec::new(p)) as Arc<dyn ExecutionPlan>
            ))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "agora_yielding_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
