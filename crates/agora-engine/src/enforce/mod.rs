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
//! A consumer's condition reaches below the masks only when it is *total* — it cannot fail
//! on any value (no division by data, no CAST that can fail, no regular expression from
//! data; the same test as aggregate agreements' WHERE conditions). Such a condition is
//! rewritten over the product's row (each agreed column replaced by its mask) and evaluated
//! together with the row filter, so the scan reads, masks and pseudonymises only the rows
//! both keep, and the product's scan can skip files and row groups by their statistics.
//! The answer is the same as filtering the masked rows, and evaluating it on a row the
//! agreement hides shows nothing: it cannot fail, and the row is dropped either way. Any
//! other condition stays above the boundary and sees masked, filtered rows only.
//!
//! Pseudonyms are HMAC-SHA256 of the value's text under the agreement's linkage key, in
//! lower-case hex. The function computing them is not in the session's function registry,
//! so no SQL can call it with a key of its choosing.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use agora_model::{AccessMode, AgreementTerms, Mask};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{
    Expr, ExprSchemable, ScalarUDF, Signature, TableProviderFilterPushDown, TableType, Volatility,
    cast, col, lit,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;

use crate::EngineError;

mod aggregate;
mod boundary;
mod bounds;
mod dates;
mod ledger;
mod linkage;
mod pseudonym;
mod release;
mod tabulate;
mod total;

pub(crate) use aggregate::AggregateAgreements;
use boundary::EnforcementBoundaryExec;
pub(crate) use bounds::{limit_rows, query_bounds, row_limit};
use ledger::GroupSizes;
pub use ledger::{AccessLedger, Groups, MAX_SUBJECTS, SubjectDigest, subject_digest};
pub(crate) use linkage::LinkageJoins;
use pseudonym::PseudonymUdf;
pub use pseudonym::{LinkageKey, Pseudonymizer};
pub use tabulate::CellKeySecret;

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
    /// The owner's secret for record keys and cell noise (aggregate mode).
    pub cell_key: Option<CellKeySecret>,
    /// The subjects (identifiers as the subject column holds them, in text) whose rows
    /// this agreement may not read: those who withdrew the consent it relies on.
    pub excluded: Vec<String>,
}

/// A product as one agreement lets its consumer see it.
#[derive(Debug, Clone)]
pub struct EnforcedTable {
    inner: Arc<dyn TableProvider>,
    agreement: String,
    mode: AccessMode,
    max_rows: Option<u64>,
    /// What each query under the agreement may cost (on top of the node's limits).
    bounds: agora_model::QueryBounds,
    /// The subject-identifier column, by its name in this table (aggregate mode counts
    /// groups in distinct subjects).
    subject: Option<String>,
    /// The product's subject column, whether agreed or not: record-level modes account for
    /// the subjects whose rows they pass (see [`AccessLedger`]).
    accounted: Option<String>,
    /// Aggregate mode, on the copy the aggregate rewrite grants: where its aggregate notes
    /// the sizes of the groups it releases.
    groups: Option<Arc<GroupSizes>>,
    min_group_size: u32,
    /// Aggregate mode: the columns that may only be aggregated.
    measures: Vec<String>,
    /// Aggregate mode: how released cells are protected, and the owner's secret for it.
    disclosure: Option<agora_model::DisclosureControl>,
    cell_key: Option<CellKeySecret>,
    /// Aggregate mode: set only on the copy the aggregate rewrite puts under an aggregation
    /// that suppresses small groups; every other scan is refused.
    aggregation_granted: bool,
    /// The row filter over the product's columns.
    row_filter: Option<Expr>,
    /// Per agreed column: its name and the expression computing it from the product's row.
    columns: Vec<(String, Expr)>,
    /// Per agreed column, the mask its expression applies.
    masks: Vec<Option<Mask>>,
    /// The product's schema, for checking conditions rewritten over its row (made once).
    raw_schema: Arc<DFSchema>,
    schema: SchemaRef,
}

/// The row filter with the rows of excluded subjects left out (a row without a subject
/// is no one's to exclude).
fn with_exclusions(
    row_filter: Option<Expr>,
    enforcement: &Enforcement,
    raw: &Schema,
) -> Option<Expr> {
    let subject = enforcement
        .subject
        .as_deref()
        .filter(|s| raw.field_with_name(s).is_ok());
    let (Some(subject), false) = (subject, enforcement.excluded.is_empty()) else {
        return row_filter;
    };
    let column = Expr::Column(datafusion::common::Column::from_name(subject));
    let list = enforcement
        .excluded
        .iter()
        .map(|id| Expr::Literal(ScalarValue::Utf8(Some(id.clone())), None))
        .collect();
    let kept = column
        .clone()
        .is_null()
        .or(datafusion::logical_expr::cast(column, DataType::Utf8).in_list(list, true));
    Some(match row_filter {
        Some(f) => f.and(kept),
        None => kept,
    })
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
        Some(m @ (Mask::TruncateToMonth | Mask::TruncateToYear)) => {
            let unit = if m == Mask::TruncateToMonth {
                dates::DateUnit::Month
            } else {
                dates::DateUnit::Year
            };
            if *data_type == DataType::Date32 {
                // Truncated as a date: a cast to a nanosecond timestamp would fail on
                // dates outside 1677–2262.
                dates::trunc_date(unit, c)
            } else {
                let unit = if unit == dates::DateUnit::Month {
                    "month"
                } else {
                    "year"
                };
                cast(
                    datafusion::functions::expr_fn::date_trunc(lit(unit), c),
                    data_type.clone(),
                )
            }
        }
        Some(Mask::Band { width }) => cast(
            datafusion::functions::expr_fn::floor(cast(c, DataType::Float64) / lit(width))
                * lit(width),
            data_type.clone(),
        ),
        Some(Mask::Prefix { length }) => cast(
            datafusion::functions::expr_fn::left(c, lit(i64::from(length))),
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
        let row_filter = with_exclusions(row_filter, enforcement, raw.as_ref());
        let mut columns = Vec::new();
        let mut masks = Vec::new();
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
            masks.push(mask);
        }
        Ok(Self {
            inner,
            agreement: enforcement.agreement.clone(),
            mode: terms.mode,
            max_rows: terms.max_rows,
            bounds: terms.query_limits,
            subject: enforcement
                .subject
                .clone()
                .filter(|s| terms.columns.iter().any(|c| &c.name == s)),
            accounted: enforcement
                .subject
                .clone()
                .filter(|s| raw.field_with_name(s).is_ok()),
            groups: None,
            min_group_size: terms.min_group_size,
            measures: terms.measures.clone(),
            disclosure: terms.disclosure.clone(),
            cell_key: enforcement.cell_key.clone(),
            aggregation_granted: false,
            row_filter,
            columns,
            masks,
            raw_schema: Arc::new(df_schema),
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

    /// A consumer's condition over this table's columns as a condition over the product's
    /// row (each column replaced by its mask), when it may be evaluated below the masks:
    /// only in row-level modes, and only when it cannot fail on any value (see the module's
    /// documentation). `None` keeps it above the boundary.
    fn raw_condition(&self, filter: &Expr) -> Option<Expr> {
        if self.mode == AccessMode::Aggregate {
            // The aggregate rewrite owns WHERE conditions there (it counts what they leave
            // out); nothing moves below it.
            return None;
        }
        let mut unknown = false;
        let rewritten = filter
            .clone()
            .transform_down(|e| {
                if let Some(raw) = self.truncated_comparison(&e) {
                    // Already over the product's row: its column is not to be masked.
                    return Ok(Transformed::new(
                        raw,
                        true,
                        datafusion::common::tree_node::TreeNodeRecursion::Jump,
                    ));
                }
                Ok(match e {
                    // The mask reads the product's column of the same name: not to be
                    // rewritten again.
                    Expr::Column(c) => match self.columns.iter().find(|(n, _)| *n == c.name) {
                        Some((_, mask)) => Transformed::new(
                            mask.clone(),
                            true,
                            datafusion::common::tree_node::TreeNodeRecursion::Jump,
                        ),
                        None => {
                            unknown = true;
                            Transformed::no(Expr::Column(c))
                        }
                    },
                    other => Transformed::no(other),
                })
            })
            .ok()?
            .data;
        if unknown {
            return None;
        }
        total::check_total(&rewritten, &self.raw_schema).ok()?;
        Some(rewritten)
    }

    /// A comparison of a date truncated by its mask (to the month or year) with a date, as
    /// the equivalent comparison of the product's own date: `paid_on >= DATE '2025-01-01'`
    /// over months is `paid_on >= DATE '2025-01-01'` over days, and `= DATE '2025-03-01'`
    /// is the month's range. The answer is the same; no row is truncated to be compared,
    /// and the scan can skip row groups by the date's statistics.
    fn truncated_comparison(&self, e: &Expr) -> Option<Expr> {
        use chrono::{Datelike, NaiveDate};
        use datafusion::logical_expr::{BinaryExpr, Operator};
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
            return None;
        };
        let (column, op, value) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) => (c, *op, v),
            (Expr::Literal(v, _), Expr::Column(c)) => (c, op.swap()?, v),
            _ => return None,
        };
        let i = self.columns.iter().position(|(n, _)| *n == column.name)?;
        let by_month = match self.masks[i] {
            Some(Mask::TruncateToMonth) => true,
            Some(Mask::TruncateToYear) => false,
            _ => return None,
        };
        let raw = self.inner.schema();
        if raw.field_with_name(&column.name).ok()?.data_type() != &DataType::Date32 {
            return None;
        }
        let ScalarValue::Date32(Some(days)) = value else {
            return None;
        };
        const EPOCH_FROM_CE: i32 = 719_163;
        let day = NaiveDate::from_num_days_from_ce_opt(days.checked_add(EPOCH_FROM_CE)?)?;
        let (floor, next) = if by_month {
            let floor = day.with_day(1)?;
            let next = if floor.month() == 12 {
                NaiveDate::from_ymd_opt(floor.year().checked_add(1)?, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(floor.year(), floor.month() + 1, 1)?
            };
            (floor, next)
        } else {
            (
                NaiveDate::from_ymd_opt(day.year(), 1, 1)?,
                NaiveDate::from_ymd_opt(day.year().checked_add(1)?, 1, 1)?,
            )
        };
        let date = |d: NaiveDate| {
            lit(ScalarValue::Date32(Some(
                d.num_days_from_ce() - EPOCH_FROM_CE,
            )))
        };
        let at_start = floor == day;
        let ceil = if at_start { floor } else { next };
        let c = col(datafusion::common::Column::new_unqualified(&column.name));
        Some(match op {
            Operator::GtEq => c.gt_eq(date(ceil)),
            Operator::Gt => c.gt_eq(date(next)),
            Operator::Lt => c.lt(date(ceil)),
            Operator::LtEq => c.lt(date(next)),
            Operator::Eq if at_start => c.clone().gt_eq(date(floor)).and(c.lt(date(next))),
            // No truncated date equals a day that starts no month (or year).
            Operator::Eq => c.is_not_null().and(lit(false)),
            Operator::NotEq if at_start => c.clone().lt(date(floor)).or(c.gt_eq(date(next))),
            Operator::NotEq => c.is_not_null(),
            _ => return None,
        })
    }

    /// The copy whose scan feeds an aggregation that suppresses small groups.
    fn granted(&self, groups: Arc<GroupSizes>) -> Self {
        Self {
            aggregation_granted: true,
            groups: Some(groups),
            ..self.clone()
        }
    }

    /// A copy that also gives the product's column `raw`, as it is, as a last column named
    /// `name` (for [`LinkageJoins`], which adds it after the query's names are resolved and
    /// projects it away above the join it serves). Returns the copy and the column's index.
    fn with_link(&self, raw: &str, name: &str) -> Result<(Self, usize)> {
        let field = self.inner.schema().field_with_name(raw)?.clone();
        let mut copy = self.clone();
        copy.columns.push((
            name.to_owned(),
            col(datafusion::common::Column::new_unqualified(raw)),
        ));
        copy.masks.push(None);
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(name, field.data_type().clone(), true));
        copy.schema = Arc::new(Schema::new(fields));
        let index = copy.columns.len() - 1;
        Ok((copy, index))
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

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.raw_condition(f) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.mode == AccessMode::Aggregate && !self.aggregation_granted {
            // Aggregate agreements are read only through the aggregate rewrite, which
            // suppresses small groups; a plain scan would hand out rows.
            return Err(DataFusionError::External(Box::new(
                EngineError::AccessDenied(format!(
                    "agreement {} answers tables only, not rows: SELECT dimensions, COUNT(*), \
                     SUM(measure) or AVG(measure) FROM the product [WHERE condition on \
                     dimensions] GROUP BY dimensions (views and CTEs over the product alone \
                     are fine; joins, windows and limits below the GROUP BY are not)",
                    self.agreement
                )),
            )));
        }
        let ledger = state.config().get_extension::<AccessLedger>();
        if let (Some(ledger), Some(groups)) = (&ledger, &self.groups) {
            ledger.attach(Arc::clone(groups));
        }
        // Record-level modes account for the subjects of the rows they pass.
        let accounting = match (ledger, &self.accounted) {
            (Some(ledger), Some(subject)) if self.mode != AccessMode::Aggregate => {
                Some((ledger, subject.clone()))
            }
            _ => None,
        };
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.columns.len()).collect(),
        };
        // The consumer's conditions this table accepted, over the product's row.
        let conditions = filters
            .iter()
            .map(|f| {
                self.raw_condition(f).ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "a condition was pushed to agreement {}'s table that it did not \
                         accept: {f}",
                        self.agreement
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // The product's columns that the requested masks, the row filter and the
        // consumer's conditions read.
        let raw = self.inner.schema();
        let mut needed = BTreeSet::new();
        for expr in wanted
            .iter()
            .map(|&i| &self.columns[i].1)
            .chain(self.row_filter.iter())
            .chain(conditions.iter())
        {
            for c in expr.column_refs() {
                needed.insert(raw.index_of(&c.name)?);
            }
        }
        if let Some((_, subject)) = &accounting {
            needed.insert(raw.index_of(subject)?);
        }
        let needed: Vec<usize> = needed.into_iter().collect();
        // The product's scan may use the consumer's conditions to skip files and row groups
        // by their statistics (never to evaluate them on rows); every row it returns is
        // still filtered below.
        let hints: Vec<Expr> = {
            let refs: Vec<&Expr> = conditions.iter().collect();
            let support = self.inner.supports_filters_pushdown(&refs)?;
            conditions
                .iter()
                .zip(support)
                .filter(|(_, s)| *s != TableProviderFilterPushDown::Unsupported)
                .map(|(c, _)| c.clone())
                .collect()
        };
        let mut input = self.inner.scan(state, Some(&needed), &hints, None).await?;
        let input_schema = DFSchema::try_from(input.schema().as_ref().clone())?;
        // The owner's row filter strictly first: the consumer's conditions are evaluated
        // only on rows it keeps, as the THEN of a CASE on it (DataFusion evaluates a CASE
        // branch only on the rows its WHEN selects), never merged into one AND where they
        // could run on hidden rows.
        let predicate = match (
            self.row_filter.clone(),
            conditions.into_iter().reduce(Expr::and),
        ) {
            (Some(row_filter), Some(c)) => {
                Some(datafusion::logical_expr::when(row_filter, c).otherwise(lit(false))?)
            }
            (row_filter, c) => row_filter.or(c),
        };
        if let Some(p) = predicate {
            let predicate = state.create_physical_expr(p, &input_schema)?;
            input = Arc::new(FilterExec::try_new(predicate, input)?);
        }
        let mut exprs = wanted
            .iter()
            .map(|&i| {
                let (name, expr) = &self.columns[i];
                Ok((
                    state.create_physical_expr(expr.clone(), &input_schema)?,
                    name.clone(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        // The subject column, unmasked, last: the boundary notes it and drops it.
        if let Some((_, subject)) = &accounting {
            exprs.push((
                state.create_physical_expr(
                    col(datafusion::common::Column::new_unqualified(subject)),
                    &input_schema,
                )?,
                "__agora_subject".to_owned(),
            ));
        }
        Ok(Arc::new(EnforcementBoundaryExec::new(
            self.agreement.clone(),
            Arc::new(ProjectionExec::try_new(exprs, input)?),
            accounting.map(|(ledger, _)| ledger),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::pseudonym::tests::key;
    use super::*;

    /// A table of (id, city, n, d) under `terms_spec` in `mode`, row filter `city = 'A'`.
    fn enforced(mode: AccessMode, terms_spec: &str) -> EnforcedTable {
        use datafusion::datasource::MemTable;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("city", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
            Field::new("d", DataType::Date32, false),
        ]));
        let inner = Arc::new(MemTable::try_new(schema, vec![vec![]]).unwrap());
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_default_features()
            .build();
        let enforcement = Enforcement {
            agreement: "a-1".into(),
            terms: AgreementTerms {
                columns: agora_model::ColumnTerm::parse_list(terms_spec).unwrap(),
                row_filter: Some("city = 'A'".into()),
                mode,
                min_group_size: 5,
                max_rows: None,
                measures: vec![],
                disclosure: None,
                query_limits: Default::default(),
            },
            subject: Some("id".into()),
            linkage_key: Some(key(3)),
            cell_key: None,
            excluded: Vec::new(),
        };
        EnforcedTable::new(&state, inner, &enforcement).unwrap()
    }

    fn pushed(table: &EnforcedTable, filter: Expr) -> bool {
        table.supports_filters_pushdown(&[&filter]).unwrap()
            == vec![TableProviderFilterPushDown::Exact]
    }

    #[test]
    fn only_conditions_that_cannot_fail_reach_below_the_masks() {
        let t = enforced(AccessMode::Records, "id=pseudonym,city,n=band:10,d=month");
        let day = |d: i32| lit(ScalarValue::Date32(Some(d)));
        // Total: comparisons of plain, truncated and pseudonymised columns.
        assert!(pushed(&t, col("city").eq(lit("B"))));
        assert!(pushed(&t, col("d").gt_eq(day(20_000))));
        assert!(pushed(&t, col("id").not_eq(lit(""))));
        assert!(pushed(
            &t,
            col("city").in_list(vec![lit("A"), lit("B")], false)
        ));
        // Not total: division by data, a banded number (its mask's cast can fail), a
        // failing cast.
        assert!(!pushed(&t, (lit(1i64) / col("n")).eq(lit(1i64))));
        assert!(!pushed(&t, col("n").gt(lit(5i64))));
        assert!(!pushed(
            &t,
            cast(col("city"), DataType::Int64).eq(lit(1i64))
        ));
        // A column the table does not have is never rewritten.
        assert!(!pushed(&t, col("secret").eq(lit(1i64))));
        // The rewritten condition reads the product's row through the mask.
        let raw = t.raw_condition(&col("id").not_eq(lit(""))).unwrap();
        assert!(raw.to_string().contains("agora_pseudonym"), "{raw}");
    }

    #[test]
    fn comparisons_of_truncated_dates_become_comparisons_of_the_dates() {
        let t = enforced(AccessMode::Records, "id=pseudonym,city,d=month");
        let day = |y: i32, m: u32, d: u32| {
            let days = chrono::NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
                .num_days() as i32;
            lit(ScalarValue::Date32(Some(days)))
        };
        let raw = |e: Expr| t.raw_condition(&e).unwrap().to_string();
        // No truncation is left in them: the scan can compare the stored dates.
        for e in [
            col("d").gt_eq(day(2025, 1, 1)),
            col("d").lt(day(2025, 1, 15)),
            day(2025, 12, 1).lt_eq(col("d")),
            col("d").eq(day(2025, 12, 1)),
            col("d").not_eq(day(2025, 3, 2)),
        ] {
            assert!(
                !raw(e.clone()).contains("date_trunc"),
                "{e}: {}",
                raw(e.clone())
            );
        }
        // Bounds move to the next month where the day starts none.
        assert_eq!(
            raw(col("d").gt_eq(day(2025, 1, 15))),
            raw(col("d").gt_eq(day(2025, 2, 1)))
        );
        assert_eq!(
            raw(col("d").gt(day(2025, 1, 1))),
            raw(col("d").gt_eq(day(2025, 2, 1)))
        );
        // December's next month is January of the next year.
        assert!(raw(col("d").eq(day(2025, 12, 1))).contains(&day(2026, 1, 1).to_string()));
        let year = enforced(AccessMode::Records, "id,d=year");
        let r = year
            .raw_condition(&col("d").lt_eq(day(1969, 6, 30)))
            .unwrap();
        assert_eq!(r.to_string(), col("d").lt(day(1970, 1, 1)).to_string());
    }

    #[test]
    fn aggregate_agreements_keep_every_condition_above() {
        let t = enforced(AccessMode::Aggregate, "id,city,n");
        assert!(!pushed(&t, col("city").eq(lit("B"))));
    }

    #[test]
    fn a_linkage_key_is_never_printed() {
        assert_eq!(format!("{:?}", key(7)), "LinkageKey(…)");
    }
}
