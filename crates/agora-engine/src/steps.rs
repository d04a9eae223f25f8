//! Small steps for nested-loop joins. A nested-loop join (a cross join, or a join on a
//! condition that is not an equality) takes one batch of its probe side and evaluates it
//! against every row of the other side before it looks at its input again; when no pair
//! matches it never returns in between. Over large inputs one such step lasted tens of
//! seconds, in which neither the query's deadline nor a closed connection could stop it,
//! and the worker thread served nothing else.
//!
//! `ProbeSteps` feeds the probe side in slices of `STEP_ROWS` rows, checks the query's
//! deadline before each (a busy runtime's timer fires late: it is looked at only every
//! few dozen task polls) and, every `YIELD_AFTER` of work, hands the thread back to the
//! scheduler once (waking itself first), so the join returns between slices: the deadline
//! and cancellation take effect within one slice's work.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
    ReplaceChildrenOptions,
};
use futures::Stream;

/// Rows of the probe side evaluated per step.
const STEP_ROWS: usize = 2048;
/// How long a step may hold the thread before it is handed back.
const YIELD_AFTER: Duration = Duration::from_millis(20);

/// The probe side of a nested-loop join, in small steps.
#[derive(Debug)]
pub(crate) struct ProbeSteps {
    input: Arc<dyn ExecutionPlan>,
}

impl ProbeSteps {
    pub(crate) fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        Self { input }
    }
}

impl DisplayAs for ProbeSteps {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProbeSteps: rows={STEP_ROWS}")
    }
}

impl ExecutionPlan for ProbeSteps {
    fn name(&self) -> &str {
        "ProbeSteps"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The properties are the input's either way.
        Ok(Arc::new(Self::new(children.swap_remove(0))))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let deadline = context
            .session_config()
            .get_extension::<crate::limits::QueryDeadline>()
            .map(|d| *d);
        Ok(Box::pin(Steps {
            schema: self.input.schema(),
            input: self.input.execute(partition, context)?,
            slicing: None,
            since: Instant::now(),
            deadline,
        }))
    }
}

struct Steps {
    schema: SchemaRef,
    input: SendableRecordBatchStream,
    /// A batch being handed out in slices, and the offset of the next one.
    slicing: Option<(RecordBatch, usize)>,
    /// When the thread was last handed back.
    since: Instant,
    /// The query's deadline, checked at every step.
    deadline: Option<crate::limits::QueryDeadline>,
}

impl Stream for Steps {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(d) = self.deadline
            && Instant::now() >= d.0
        {
            self.slicing = None;
            return Poll::Ready(Some(Err(d.expired())));
        }
        if self.since.elapsed() >= YIELD_AFTER {
            self.since = Instant::now();
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some((batch, offset)) = self.slicing.take() {
            let len = STEP_ROWS.min(batch.num_rows() - offset);
            let slice = batch.slice(offset, len);
            if offset + len < batch.num_rows() {
                self.slicing = Some((batch, offset + len));
            }
            return Poll::Ready(Some(Ok(slice)));
        }
        match self.input.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(batch))) if batch.num_rows() > STEP_ROWS => {
                self.slicing = Some((batch, 0));
                self.poll_next(cx)
            }
            other => other,
        }
    }
}

impl RecordBatchStream for Steps {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}
