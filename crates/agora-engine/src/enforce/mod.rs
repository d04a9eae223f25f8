//! Agreement enforcement: what a consumer's SQL can see of a product under an agreement.
//!
//! An agreed product is not bound as the product's table but as an [`EnforcedTable`] whose
//! schema holds only the agreed columns, each computed from the product's row by its mask,
//! and whose rows are only those passing the agreement's row filter. A consumer's query is
//! planned over that table alone: whatever the SQL does (subqueries, CTEs, joins, UNION,
//! windows, CASE, arithmetic, functions), it starts from rows that were filtered and masked
//! before they reached it, because the table's scan is the only way to the data and its
//! plan is built here:
//!
//! ```text
//! ProjectionExec: masks of the requested agreed columns
//!   FilterExec: the agreement's row filter
//!     the product's own scan (only the columns the masks and the filter need)
//! ```
//!
//! The table accepts no filter pushdown: a consumer's condition is evaluated on masked,
//! filtered rows, never on raw ones (where it could fail, or succeed, on a row the
//! agreement hides and reveal it through an error).
//!
//! Pseudonyms are HMAC-SHA256 of the value's text under the agreement's linkage key, in
//! lower-case hex. The function computing them is not in the session's function registry,
//! so no SQL can call it with a key of its choosing.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use agora_model::{AccessMode, AgreementTerms, Mask};
use arrow::array::{Array, ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TableType, Volatility, cast, col, lit,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;

use crate::EngineError;

mod aggregate;
mod boundary;

pub(crate) use aggregate::AggregateAgreements;
use boundary::EnforcementBoundaryExec;

/// A secret key for pseudonyms, scoped to one linkage purpose and consumer.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LinkageKey([u8; 32]);

impl LinkageKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The pseudonym of one value's text.
    pub fn pseudonym(&self, value: &str) -> String {
        Pseudonymizer::new(self).pseudonym(value)
    }
}

impl fmt::Debug for LinkageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkageKey(…)")
    }
}

/// HMAC-SHA256 with the key schedule computed once.
pub struct Pseudonymizer(ring::hmac::Key);

impl Pseudonymizer {
    pub fn new(key: &LinkageKey) -> Self {
        Self(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key.0))
    }

    /// Lower-case hex of HMAC-SHA256(key, value).
    pub fn pseudonym(&self, value: &str) -> String {
        let mut out = String::with_capacity(64);
        self.write(value, &mut out);
        out
    }

    fn write(&self, value: &str, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let tag = ring::hmac::sign(&self.0, value.as_bytes());
        for b in tag.as_ref() {
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }

    /// Pseudonyms of a column of strings (nulls stay null).
    pub fn column(&self, values: &arrow::array::StringArray) -> ArrayRef {
        let mut builder = StringBuilder::with_capacity(values.len(), values.len() * 64);
        let mut buf = String::with_capacity(64);
        for v in values.iter() {
            match v {
                Some(v) => {
                    buf.clear();
                    self.write(v, &mut buf);
                    builder.append_value(&buf);
                }
                None => builder.append_null(),
            }
        }
        Arc::new(builder.finish())
    }
}

/// What the owner's node binds for one product under one agreement.
#[derive(Debug, Clone)]
pub struct Enforcement {
    /// The agreement's id, shown in plans and refusals.
    pub agreement: String,
    pub terms: AgreementTerms,
    /// The product's subject-identifier column (aggregate and linkage modes).
    pub subject: Option<String>,
    /// The key for pseudonym masks.
    pub linkage_key: Option<LinkageKey>,
}

/// The SQL-invisible pseudonym function.
#[derive(Debug)]
struct PseudonymUdf {
    key: LinkageKey,
    signature: Signature,
}

impl PartialEq for PseudonymUdf {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for PseudonymUdf {}
impl std::hash::Hash for PseudonymUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}

impl ScalarUDFImpl for PseudonymUdf {
    fn name(&self) -> &str {
        "agora_pseudonym"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let p = Pseudonymizer::new(&self.key);
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "agora_pseudonym takes one argument".into(),
            ));
        };
        let array = arg.to_array(args.number_rows)?;
        let array = arrow::compute::cast(&array, &DataType::Utf8)?;
        let strings = array
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .ok_or_else(|| DataFusionError::Internal("pseudonym input is not text".into()))?;
        Ok(ColumnarValue::Array(p.column(strings)))
    }
}

/// A product as one agreement lets its consumer see it.
#[derive(Debug, Clone)]
pub struct EnforcedTable {
    inner: Arc<dyn TableProvider>,
    agreement: String,
    mode: AccessMode,
    max_rows: Option<u64>,
    /// The subject-identifier column, by its name in this table (aggregate mode counts
    /// groups in distinct subjects).
    subject: Option<String>,
    min_group_size: u32,
    /// Aggregate mode: set only on the copy the aggregate rewrite puts under an aggregation
    /// that suppresses small groups; every other scan is refused.
    aggregation_granted: bool,
    /// The row filter over the product's columns.
    row_filter: Option<Expr>,
    /// Per agreed column: its name and the expression computing it from the product's row.
    columns: Vec<(String, Expr)>,
    schema: SchemaRef,
}

fn refused(e: impl fmt::Display) -> EngineError {
    EngineError::Terms(e.to_string())
}

fn mask_expr(
    column: &str,
    data_type: &DataType,
    mask: Option<Mask>,
    key: Option<&LinkageKey>,
) -> Result<Expr, EngineError> {
    let c = col(datafusion::common::Column::new_unqualified(column));
    Ok(match mask {
        None => c,
        Some(Mask::Redact) => {
            let null = ScalarValue::try_from(data_type).map_err(EngineError::from_df)?;
            lit(null)
        }
        Some(Mask::TruncateToMonth) | Some(Mask::TruncateToYear) => {
            let unit = if mask == Some(Mask::TruncateToMonth) {
                "month"
            } else {
                "year"
            };
            cast(
                datafusion::functions::expr_fn::date_trunc(lit(unit), c),
                data_type.clone(),
            )
        }
        Some(Mask::Band { width }) => cast(
            datafusion::functions::expr_fn::floor(cast(c, DataType::Float64) / lit(width))
                * lit(width),
            data_type.clone(),
        ),
        Some(Mask::Pseudonym) => {
            let key = key.ok_or_else(|| {
                refused("the agreement masks a column as a pseudonym but has no linkage key")
            })?;
            let udf = ScalarUDF::new_from_impl(PseudonymUdf {
                key: key.clone(),
                signature: Signature::any(1, Volatility::Immutable),
            });
            udf.call(vec![c])
        }
    })
}

impl EnforcedTable {
    /// Wraps the product's table; checks that the terms fit its schema and that the row
    /// filter is a condition over its columns.
    pub fn new(
        state: &SessionState,
        inner: Arc<dyn TableProvider>,
        enforcement: &Enforcement,
    ) -> Result<Self, EngineError> {
        let raw = inner.schema();
        let df_schema = DFSchema::try_from(raw.as_ref().clone()).map_err(EngineError::from_df)?;
        let terms = &enforcement.terms;
        let row_filter = match &terms.row_filter {
            None => None,
            Some(sql) => {
                let expr = state
                    .create_logical_expr(sql, &df_schema)
                    .map_err(|e| refused(format!("the row filter {sql:?} is not valid: {e}")))?;
                let t = expr
                    .get_type(&df_schema)
                    .map_err(|e| refused(format!("the row filter {sql:?} is not valid: {e}")))?;
                if t != DataType::Boolean {
                    return Err(refused(format!(
                        "the row filter {sql:?} must be a condition (true or false), not {t}"
                    )));
                }
                let mut uses_subquery_or_aggregate = false;
                expr.apply(|e| {
                    if matches!(
                        e,
                        Expr::ScalarSubquery(_)
                            | Expr::Exists(_)
                            | Expr::InSubquery(_)
                            | Expr::AggregateFunction(_)
                            | Expr::WindowFunction(_)
                    ) {
                        uses_subquery_or_aggregate = true;
                    }
                    Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
                })
                .map_err(EngineError::from_df)?;
                if uses_subquery_or_aggregate {
                    return Err(refused(format!(
                        "the row filter {sql:?} may use only the product's columns, \
                         not subqueries or aggregates"
                    )));
                }
                Some(expr)
            }
        };
        let mut columns = Vec::new();
        let mut fields = Vec::new();
        for term in &terms.columns {
            let field = raw.field_with_name(&term.name).map_err(|_| {
                refused(format!(
                    "the agreement names column {:?}, which the product does not have",
                    term.name
                ))
            })?;
            let mask = if terms.mode == AccessMode::Linkage
                && enforcement.subject.as_deref() == Some(term.name.as_str())
            {
                Some(Mask::Pseudonym)
            } else {
                term.mask
            };
            let expr = mask_expr(
                &term.name,
                field.data_type(),
                mask,
                enforcement.linkage_key.as_ref(),
            )?;
            let (_, field) = expr.to_field(&df_schema).map_err(EngineError::from_df)?;
            fields.push(Field::new(
                &term.name,
                field.data_type().clone(),
                field.is_nullable() || mask == Some(Mask::Redact),
            ));
            columns.push((term.name.clone(), expr));
        }
        Ok(Self {
            inner,
            agreement: enforcement.agreement.clone(),
            mode: terms.mode,
            max_rows: terms.max_rows,
            subject: enforcement
                .subject
                .clone()
                .filter(|s| terms.columns.iter().any(|c| &c.name == s)),
            min_group_size: terms.min_group_size,
            aggregation_granted: false,
            row_filter,
            columns,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// The agreement this table enforces.
    pub fn agreement(&self) -> &str {
        &self.agreement
    }

    pub fn mode(&self) -> AccessMode {
        self.mode
    }

    /// The most rows one query may return.
    pub fn max_rows(&self) -> Option<u64> {
        self.max_rows
    }

    /// The copy whose scan feeds an aggregation that suppresses small groups.
    fn granted(&self) -> Self {
        Self {
            aggregation_granted: true,
            ..self.clone()
        }
    }
}

#[async_trait]
impl TableProvider for EnforcedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.mode == AccessMode::Aggregate && !self.aggregation_granted {
            // Aggregate agreements are read only through the aggregate rewrite, which
            // suppresses small groups; a plain scan would hand out rows.
            return Err(DataFusionError::External(Box::new(
                EngineError::AccessDenied(format!(
                    "agreement {} allows aggregate queries only (GROUP BY with COUNT, SUM, \
                     AVG…), not rows",
                    self.agreement
                )),
            )));
        }
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.columns.len()).collect(),
        };
        // The product's columns that the requested masks and the row filter read.
        let raw = self.inner.schema();
        let mut needed = BTreeSet::new();
        for expr in wanted
            .iter()
            .map(|&i| &self.columns[i].1)
            .chain(self.row_filter.iter())
        {
            for c in expr.column_refs() {
                needed.insert(raw.index_of(&c.name)?);
            }
        }
        let needed: Vec<usize> = needed.into_iter().collect();
        let input = self.inner.scan(state, Some(&needed), &[], None).await?;
        let input_schema = DFSchema::try_from(input.schema().as_ref().clone())?;
        let input: Arc<dyn ExecutionPlan> = match &self.row_filter {
            Some(f) => {
                let predicate = state.create_physical_expr(f.clone(), &input_schema)?;
                Arc::new(FilterExec::try_new(predicate, input)?)
            }
            None => input,
        };
        let exprs = wanted
            .iter()
            .map(|&i| {
                let (name, expr) = &self.columns[i];
                Ok((
                    state.create_physical_expr(expr.clone(), &input_schema)?,
                    name.clone(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(EnforcementBoundaryExec::new(
            self.agreement.clone(),
            Arc::new(ProjectionExec::try_new(exprs, input)?),
        )))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(first: u8) -> LinkageKey {
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = first + i as u8;
        }
        LinkageKey::new(k)
    }

    #[test]
    fn pseudonyms_are_hmac_sha256_in_lower_hex() {
        // Expected values from Python's hmac module (an independent implementation).
        assert_eq!(
            key(0).pseudonym("P00000001"),
            "fa44fc0c01626a90eb117fd6b24d1aac29a50318ef5f838d008f1080fe9edb17"
        );
        assert_eq!(
            key(1).pseudonym("P00000001"),
            "0c5be02298669889cf100aebde9d7f62bc369a67c27ef93fa83c5871c92143a0"
        );
    }

    #[test]
    fn pseudonyms_of_a_column_keep_nulls_and_match_one_by_one() {
        let p = Pseudonymizer::new(&key(0));
        let values = arrow::array::StringArray::from(vec![Some("P00000001"), None, Some("")]);
        let out = p.column(&values);
        let out = out
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(out.value(0), p.pseudonym("P00000001"));
        assert!(out.is_null(1));
        assert_eq!(out.value(2), p.pseudonym(""));
    }

    #[test]
    fn a_linkage_key_is_never_printed() {
        assert_eq!(format!("{:?}", key(7)), "LinkageKey(…)");
    }
}
