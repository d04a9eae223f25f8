//! The statistics office's real census sample (testdata/pums_1000.csv), as Parquet.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};

use crate::GenError;
use crate::tables::write_parquet;

pub const MEMBER: &str = "statistics-office";
pub const TABLE: &str = "census_sample";
const CSV: &str = include_str!("../../../testdata/pums_1000.csv");
const COLUMNS: [&str; 6] = ["age", "sex", "educ", "race", "income", "married"];

/// Parses the embedded sample. Numbers such as `1e+05` are read as floats and rounded.
pub fn parse() -> Result<arrow::array::RecordBatch, GenError> {
    let bad = |line: usize, msg: String| GenError::Encode {
        table: TABLE.into(),
        message: format!("line {line}: {msg}"),
    };
    let mut lines = CSV.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    if header != COLUMNS {
        return Err(bad(1, format!("unexpected header {header:?}")));
    }
    let mut builders: Vec<Int64Builder> = COLUMNS.iter().map(|_| Int64Builder::new()).collect();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != COLUMNS.len() {
            return Err(bad(n + 2, format!("{} fields", fields.len())));
        }
        for (b, f) in builders.iter_mut().zip(fields) {
            let v: f64 = f
                .trim()
                .parse()
                .map_err(|_| bad(n + 2, format!("not a number: {f:?}")))?;
            b.append_value(v.round() as i64);
        }
    }
    let schema = Arc::new(Schema::new(
        COLUMNS
            .iter()
            .map(|c| Field::new(*c, DataType::Int64, false))
            .collect::<Vec<_>>(),
    ));
    let cols: Vec<ArrayRef> = builders
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    RecordBatch::try_new(schema, cols).map_err(|e| bad(0, e.to_string()))
}

pub fn write_census(out: &Path) -> Result<u64, GenError> {
    let batch = parse()?;
    let dir = out.join(MEMBER).join(TABLE);
    std::fs::create_dir_all(&dir).map_err(|e| GenError::io(&dir, e))?;
    write_parquet(&dir.join("part-00000.parquet"), &batch, TABLE)?;
    Ok(batch.num_rows() as u64)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    #[test]
    fn census_sample_matches_published_truths() {
        let b = super::parse().unwrap();
        assert_eq!(b.num_rows(), 1000);
        let sum = |i: usize| -> i64 {
            b.column(i)
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.unwrap())
                .sum()
        };
        assert_eq!(sum(0), 44_797);
        assert_eq!(sum(4), 34_380_084);
        assert_eq!(sum(1), 514);
        assert_eq!(sum(5), 549);
        assert_eq!(b.column(0).null_count(), 0);
    }
}
