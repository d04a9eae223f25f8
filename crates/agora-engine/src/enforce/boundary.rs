//! The physical boundary between an agreement's enforcement and the consumer's plan.

use std::fmt;
use std::sync::Arc;

use super::ledger::AccessLedger;
use datafusion::common::Result;
use datafusion::common::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use futures::StreamExt;

/// Passes its input through unchanged and lets nothing of the plan above it in: the
/// consumer's filters (static ones, and the dynamic filters of joins and top-k sorts) and
/// projections stay above, so they only ever see filtered, masked rows. (Pushed below, a
/// consumer's predicate would run on rows the agreement hides, where an error or the time
/// it takes could reveal them.) [`ExecutionPlan`]'s defaults refuse every pushdown; this
/// type only has to keep them. (Conditions that cannot fail reach the scan another way,
/// chosen by the enforced table itself: see the `enforce` module.)
///
/// When it accounts for a query ([`AccessLedger`]), its input's last column is the
/// product's subject column: it notes each batch's subjects in the ledger and passes the
/// batch on without that column.
#[derive(Debug)]
pub(crate) struct EnforcementBoundaryExec {
    agreement: String,
    input: Arc<dyn ExecutionPlan>,
    ledger: Option<Arc<AccessLedger>>,
    /// The input's properties, or without the subject column when accounting.
    properties: Arc<PlanProperties>,
}

impl EnforcementBoundaryExec {
    pub(crate) fn new(
        agreement: String,
        input: Arc<dyn ExecutionPlan>,
        ledger: Option<Arc<AccessLedger>>,
    ) -> Result<Self> {
        let properties = match &ledger {
            None => Arc::clone(input.properties()),
            Some(_) => {
                let schema = input.schema();
                let kept: Vec<usize> = (0..schema.fields().len().saturating_sub(1)).collect();
                let schema = Arc::new(schema.project(&kept)?);
                Arc::new(PlanProperties::new(
                    EquivalenceProperties::new(schema),
                    Partitioning::UnknownPartitioning(
                        input.output_partitioning().partition_count(),
                    ),
                    input.pipeline_behavior(),
                    input.boundedness(),
                ))
            }
        };
        Ok(Self {
            agreement,
            input,
            ledger,
            properties,
        })
    }
}

impl DisplayAs for EnforcementBoundaryExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnforcementBoundaryExec: agreement={}", self.agreement)?;
        if self.ledger.is_some() {
            write!(f, ", accounts=subjects")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for EnforcementBoundaryExec {
    fn name(&self) -> &str {
        "EnforcementBoundaryExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
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
            (Some(input), true) => Ok(Arc::new(Self::new(
                self.agreement.clone(),
                input,
                self.ledger.clone(),
            )?)),
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
        let stream = self.input.execute(partition, context)?;
        let Some(ledger) = self.ledger.clone() else {
            return Ok(stream);
        };
        let schema = self.schema();
        let agreement = self.agreement.clone();
        let kept: Vec<usize> = (0..schema.fields().len()).collect();
        let accounted = stream.map(move |batch| {
            let batch = batch?;
            let subjects = batch.column(batch.num_columns() - 1);
            ledger.note_subjects(&agreement, subjects)?;
            Ok(batch.project(&kept)?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, accounted)))
    }
}
