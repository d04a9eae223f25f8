//! Column profiles: row count, nulls, distinct estimate (HyperLogLog), min and max, and a
//! histogram per column.

use std::sync::Arc;
use std::time::Duration;

use agora_model::{
    ColumnProfile, DataSource, Histogram, HistogramBin, ProductProfile, SourceFormat,
};
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
            histogram: None,
        });
    }
    histograms(ctx, &schema, &mut columns)
        .await
        .map_err(src_err)?;
    Ok(ProductProfile {
        row_count,
        columns,
        computed_at: Utc::now(),
    })
}

/// Bins of a range histogram (fewer for integers of a narrower range).
const RANGE_BINS: usize = 12;
/// Text columns with at most this many distinct values get a histogram of their values.
const VALUE_BINS: u64 = 12;

/// How a column's values are placed in range bins: as numbers, or as dates and times (by
/// their epoch seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scale {
    Integer,
    Real,
    Date,
    Time,
}

fn scale(t: &DataType) -> Option<Scale> {
    if t.is_integer() {
        Some(Scale::Integer)
    } else if t.is_floating() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) {
        Some(Scale::Real)
    } else if matches!(t, DataType::Date32 | DataType::Date64) {
        Some(Scale::Date)
    } else if matches!(t, DataType::Timestamp(..)) {
        Some(Scale::Time)
    } else {
        None
    }
}

/// A profile's min or max text as a position on the column's scale.
fn position(s: Scale, text: &str) -> Option<f64> {
    match s {
        Scale::Integer | Scale::Real => text.parse::<f64>().ok(),
        Scale::Date => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp() as f64),
        Scale::Time => {
            let t = text.trim_end_matches('Z').replace(' ', "T");
            chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc().timestamp() as f64)
        }
    }
}

fn label(s: Scale, lo: f64, hi: f64) -> String {
    let day = |x: f64| {
        chrono::DateTime::from_timestamp(x as i64, 0)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    match s {
        Scale::Integer if hi - lo <= 1.0 => format!("{lo}"),
        Scale::Integer => format!("{lo} – {}", hi - 1.0),
        Scale::Real => format!("{} – {}", round(lo), round(hi)),
        Scale::Date | Scale::Time => format!("{} – {}", day(lo), day(hi - 1.0)),
    }
}

fn round(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

/// Adds histograms to the profiled columns: one scan for every range histogram, one
/// grouping per text column of few values.
async fn histograms(
    ctx: &SessionContext,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    columns: &mut [ColumnProfile],
) -> Result<(), datafusion::error::DataFusionError> {
    // (column index, scale, low, bin width, bins)
    let mut ranged = Vec::new();
    let mut select = Vec::new();
    for (k, f) in schema.fields().iter().enumerate() {
        let c = &columns[k];
        let Some(s) = scale(f.data_type()) else {
            continue;
        };
        let (Some(lo), Some(hi)) = (
            c.min.as_deref().and_then(|t| position(s, t)),
            c.max.as_deref().and_then(|t| position(s, t)),
        ) else {
            continue;
        };
        if !(lo.is_finite() && hi.is_finite()) || hi < lo {
            continue;
        }
        let (bins, width) = match s {
            Scale::Integer if hi - lo < RANGE_BINS as f64 => ((hi - lo) as usize + 1, 1.0),
            Scale::Integer => (RANGE_BINS, ((hi - lo + 1.0) / RANGE_BINS as f64).ceil()),
            _ if hi == lo => (1, 1.0),
            _ => (RANGE_BINS, (hi - lo) / RANGE_BINS as f64),
        };
        let col = ident(f.name());
        let value = match s {
            Scale::Integer | Scale::Real => format!("CAST({col} AS DOUBLE)"),
            Scale::Date | Scale::Time => format!("CAST(date_part('epoch', {col}) AS DOUBLE)"),
        };
        let bin = format!(
            "least(greatest(CAST(floor(({value} - {lo:?}) / {width:?}) AS BIGINT), 0), {})",
            bins - 1
        );
        for i in 0..bins {
            select.push(format!("sum(CASE WHEN {bin} = {i} THEN 1 ELSE 0 END)"));
        }
        ranged.push((k, s, lo, width, bins));
    }
    if !select.is_empty() {
        let sql = format!("SELECT {} FROM profiled", select.join(", "));
        let batches = ctx.sql(&sql).await?.collect().await?;
        if let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) {
            let mut at = 0;
            for (k, s, lo, width, bins) in ranged {
                let mut out = Vec::with_capacity(bins);
                for i in 0..bins {
                    let count = int_at(batch, at + i).unwrap_or(0);
                    let from = lo + width * i as f64;
                    out.push(HistogramBin {
                        label: Some(label(s, from, from + width)),
                        count: Some(count),
                    });
                }
                at += bins;
                columns[k].histogram = Some(Histogram {
                    kind: "range".into(),
                    bins: out,
                });
            }
        }
    }
    for (k, f) in schema.fields().iter().enumerate() {
        let texty = matches!(
            f.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean
        );
        let c = &columns[k];
        if !texty || c.distinct_estimate == 0 || c.distinct_estimate > VALUE_BINS {
            continue;
        }
        let col = ident(f.name());
        let sql = format!(
            "SELECT CAST({col} AS VARCHAR), count(*) FROM profiled WHERE {col} IS NOT NULL \
             GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {}",
            VALUE_BINS + 1
        );
        let batches = ctx.sql(&sql).await?.collect().await?;
        let mut bins = Vec::new();
        for b in &batches {
            for r in 0..b.num_rows() {
                let one = b.slice(r, 1);
                bins.push(HistogramBin {
                    label: text_at(&one, 0).ok().flatten(),
                    count: int_at(&one, 1).ok(),
                });
            }
        }
        // The estimate was low: more values than a histogram of values shows.
        if !bins.is_empty() && bins.len() as u64 <= VALUE_BINS {
            columns[k].histogram = Some(Histogram {
                kind: "values".into(),
                bins,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_labels_read_as_ranges() {
        assert_eq!(label(Scale::Integer, 10.0, 20.0), "10 – 19");
        assert_eq!(label(Scale::Integer, 3.0, 4.0), "3");
        assert_eq!(label(Scale::Real, 0.5, 1.25), "0.5000 – 1.25");
        let jan = position(Scale::Date, "2024-01-01").unwrap();
        let feb = position(Scale::Date, "2024-02-01").unwrap();
        assert_eq!(label(Scale::Date, jan, feb), "2024-01-01 – 2024-01-31");
        assert_eq!(
            position(Scale::Time, "2024-01-01T00:00:00"),
            Some(jan),
            "timestamps are placed on the same scale as dates"
        );
        assert_eq!(position(Scale::Integer, "not a number"), None);
    }
}
