//! What the agreements a plan reads under bound for the whole query: the most rows an
//! answer may have, and the time and memory one query may take.

use datafusion::error::DataFusionError;

use super::EnforcedTable;
use crate::EngineError;

/// The smallest row limit of the agreements a plan reads under, and that agreement.
pub(crate) fn row_limit(plan: &datafusion::logical_expr::LogicalPlan) -> Option<(u64, String)> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let mut found: Option<(u64, String)> = None;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source)
            && let Some(table) = provider.downcast_ref::<EnforcedTable>()
            && let Some(max) = table.max_rows
            && found.as_ref().is_none_or(|(f, _)| max < *f)
        {
            found = Some((max, table.agreement.clone()));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The tightest bounds the agreements of the tables `plan` reads put on one query.
pub(crate) fn query_bounds(
    plan: &datafusion::logical_expr::LogicalPlan,
) -> agora_model::QueryBounds {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let tighter = |a: Option<u32>, b: Option<u32>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut bounds = agora_model::QueryBounds::default();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source)
            && let Some(table) = provider.downcast_ref::<EnforcedTable>()
        {
            bounds.max_seconds = tighter(bounds.max_seconds, table.bounds.max_seconds);
            bounds.max_memory_mib = tighter(bounds.max_memory_mib, table.bounds.max_memory_mib);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    bounds
}

/// Passes at most `max` rows; a result with more fails (with no row beyond the limit sent)
/// and says which agreement limits it.
pub(crate) fn limit_rows(
    stream: datafusion::execution::SendableRecordBatchStream,
    max: u64,
    agreement: String,
) -> datafusion::execution::SendableRecordBatchStream {
    use futures::StreamExt;
    let schema = stream.schema();
    let mut seen: u64 = 0;
    let mut failed = false;
    let limited = stream.filter_map(move |batch| {
        let out = if failed {
            None
        } else {
            match batch {
                Ok(b) => {
                    seen += b.num_rows() as u64;
                    if seen > max {
                        failed = true;
                        Some(Err(DataFusionError::External(Box::new(
                            EngineError::AccessDenied(format!(
                                "the answer has more than {max} rows, the most agreement \
                                 {agreement} allows in one query; narrow it with a WHERE \
                                 condition or a LIMIT"
                            )),
                        ))))
                    } else {
                        Some(Ok(b))
                    }
                }
                Err(e) => Some(Err(e)),
            }
        };
        std::future::ready(out)
    });
    Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, limited))
}
