//! The physical boundary between an agreement's enforcement and the consumer's plan.

use std::fmt;
use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

/// Passes its input through unchanged and lets nothing of the plan above it in: the
/// consumer's filters (static ones, and the dynamic filters of joins and top-k sorts) and
/// projections stay above, so they only ever see filtered, masked rows. (Pushed below, a
/// consumer's predicate would run on rows the agreement hides, where an error or the time
/// it takes could reveal them.) [`ExecutionPlan`]'s defaults refuse every pushdown; this
/// type only has to keep them. (Conditions that cannot fail reach the scan another way,
/// chosen by the enforced table itself: see the `enforce` module.)
#[derive(Debug)]
pub(crate) struct EnforcementBoundaryExec {
    agreement: String,
    input: Arc<dyn ExecutionPlan>,
}

impl EnforcementBoundaryExec {
    pub(crate) fn new(agreement: String, input: Arc<dyn ExecutionPlan>) -> Self {
        Self { agreement, input }
    }
}

impl DisplayAs for EnforcementBoundaryExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnforcementBoundaryExec: agreement={}", self.agreement)
    }
}

impl ExecutionPlan for EnforcementBoundaryExec {
    fn name(&self) -> &str {
        "EnforcementBoundaryExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self {
                agreement: self.agreement.clone(),
                input,
            })),
            _ => Err(DataFusionError::Internal(
                "EnforcementBoundaryExec has exactly one child".into(),
            )),
        }
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    /// The input's row count and size, as estimates only, and nothing about its columns.
    /// The planner needs sizes to build a join's hash table on the smaller side; as
    /// estimates they can never stand in for an answer (an exact count would let
    /// `count(*)` be read from metadata, past the enforcement), and the columns' minima,
    /// maxima and null counts stay below the boundary with the rows.
    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.schema());
        if let Some(input) = input_stats.first() {
            stats.num_rows = input.num_rows.to_inexact();
            stats.total_byte_size = input.total_byte_size.to_inexact();
        }
        Ok(Arc::new(stats))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}
