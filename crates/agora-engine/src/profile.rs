//! Column profiles: row count, nulls, distinct estimate (HyperLogLog), min and max.

use std::sync::Arc;
use std::time::Duration;

use agora_model::{ColumnProfile, DataSource, ProductProfile, SourceFormat};
use chrono::Utc;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;

use crate::EngineError;

/// Progress of a profiling scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileProgress {
    pub rows_done: u64,
    /// Known up front for Parquet (from file metadata); unknown for CSV.
    pub rows_total: Option<u64>,
}

/// Quotes an SQL identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn orderable(t: &DataType) -> bool {
    t.is_numeric()
        || t.is_temporal()
        || matches!(
            t,
            DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
}

fn distinct_expr(t: &DataType, col: &str) -> Option<String> {
    if t.is_floating() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) {
        Some(format!("approx_distinct(CAST({col} AS VARCHAR))"))
    } else if orderable(t) {
        Some(format!("approx_distinct({col})"))
    } else {
        None
    }
}

fn int_at(batch: &RecordBatch, i: usize) -> Result<u64, EngineError> {
    let col: ArrayRef = cast(batch.column(i), &DataType::Int64)
        .map_err(|e| EngineError::Execution(e.to_string()))?;
    let a = col.as_primitive::<Int64Type>();
    Ok(if a.is_null(0) {
        0
    } else {
        a.value(0).max(0) as u64
    })
}

fn text_at(batch: &RecordBatch, i: usize) -> Result<Option<String>, EngineError> {
    let col: ArrayRef = cast(batch.column(i), &DataType::Utf8)
        .map_err(|e| EngineError::Execution(e.to_string()))?;
    let a = col.as_string::<i32>();
    Ok((!a.is_null(0)).then(|| {
        let v = a.value(0);
        // Keep profiles small: long text values are cut.
        if v.chars().count() > 80 {
            format!("{}…", v.chars().take(80).collect::<String>())
        } else {
            v.to_owned()
        }
    }))
}

fn leaves(plan: &Arc<dyn ExecutionPlan>) -> Vec<Arc<dyn ExecutionPlan>> {
    let mut out = Vec::new();
    let _ = plan.apply(|p| {
        if p.children().is_empty() {
            out.push(Arc::clone(p));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

pub async fn profile(
    ctx: &SessionContext,
    provider: Arc<dyn TableProvider>,
    source: &DataSource,
    progress: &(dyn Fn(ProfileProgress) + Send + Sync),
) -> Result<ProductProfile, EngineError> {
    let src_err = |e: datafusion::error::DataFusionError| EngineError::Source {
        location: crate::source::display_location(&source.location),
        message: crate::tidy(&e.find_root().to_string()),
    };
    let schema = provider.schema();
    ctx.register_table("profiled", provider)
        .map_err(EngineError::from_df)?;

    let rows_total = if source.format == SourceFormat::Parquet {
        let b = ctx
            .sql("SELECT count(*) FROM profiled")
            .await
            .map_err(src_err)?
            .collect()
            .await
            .map_err(src_err)?;
        b.first().map(|b| int_at(b, 0)).transpose()?
    } else {
        None
    };

    let mut select = vec!["count(*)".to_owned()];
    for f in schema.fields() {
        let c = ident(f.name());
        let t = f.data_type();
        select.push(format!("count({c})"));
        select.push(distinct_expr(t, &c).unwrap_or_else(|| "0".into()));
        if orderable(t) {
            select.push(format!("CAST(min({c}) AS VARCHAR)"));
            select.push(format!("CAST(max({c}) AS VARCHAR)"));
        } else {
            select.push("CAST(NULL AS VARCHAR)".into());
            select.push("CAST(NULL AS VARCHAR)".into());
        }
    }
    let sql = format!("SELECT {} FROM profiled", select.join(", "));
    let df = ctx.sql(&sql).await.map_err(EngineError::from_df)?;
    let plan = df.create_physical_plan().await.map_err(src_err)?;
    let scans = leaves(&plan);
    let task = ctx.task_ctx();
    let run = collect(Arc::clone(&plan), task);
    tokio::pin!(run);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let batches = loop {
        tokio::select! {
            r = &mut run => break r.map_err(src_err)?,
            _ = tick.tick() => {
                let rows_done: u64 = scans
                    .iter()
                    .filter_map(|s| s.metrics().and_then(|m| m.output_rows()))
                    .map(|n| n as u64)
                    .sum();
                progress(ProfileProgress { rows_done, rows_total });
            }
        }
    };
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| EngineError::Execution("profile query returned no row".into()))?;
    let row_count = int_at(batch, 0)?;
    progress(ProfileProgress {
        rows_done: row_count,
        rows_total: Some(row_count),
    });
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (k, f) in schema.fields().iter().enumerate() {
        let base = 1 + 4 * k;
        let non_null = int_at(batch, base)?;
        columns.push(ColumnProfile {
            name: f.name().clone(),
            null_count: row_count.saturating_sub(non_null),
            distinct_estimate: int_at(batch, base + 1)?.min(non_null),
            min: text_at(batch, base + 2)?,
            max: text_at(batch, base + 3)?,
        });
    }
    Ok(ProductProfile {
        row_count,
        columns,
        computed_at: Utc::now(),
    })
}
