//! Aggregate-mode agreements: the plan rewrite that suppresses small groups.
//!
//! An aggregate agreement's table refuses to be scanned (it would hand out rows) unless the
//! scan feeds an aggregation this rule has rewritten. The rule runs last in the analyzer,
//! after type coercion, on every plan and every subquery in it. It accepts one shape:
//!
//! ```text
//! Aggregate: group by G, aggregates A            SELECT G, A FROM product [AS x]
//!   [Filter: P]                                  [WHERE P] GROUP BY G [HAVING …]
//!     [SubqueryAlias: x]
//!       TableScan: product (aggregate agreement)
//! ```
//!
//! and turns it into
//!
//! ```text
//! Projection: G, A (with their original names)
//!   Filter: n_in >= k AND (n_all = n_in OR n_all - n_in >= k)
//!     Aggregate: group by G, aggregates A FILTER (WHERE P),
//!                count(DISTINCT subject) FILTER (WHERE P) AS n_in,
//!                count(DISTINCT subject) AS n_all
//!       [SubqueryAlias: x]
//!         TableScan: product (granted)
//! ```
//!
//! A group is shown only when at least k distinct subjects are in it (`n_in`) and, when the
//! query has a WHERE condition, the subjects of the group it left out are none or at least
//! k too (`n_all - n_in`): otherwise `WHERE person_id <> 'x'` (or any condition true for
//! all but one subject) would reveal the one left out by difference with the unfiltered
//! group. What the consumer does with the shown groups (HAVING, ORDER BY, LIMIT, joins,
//! arithmetic) is post-processing of safe answers and is not restricted.
//!
//! Because the WHERE condition, the group keys and the aggregates' arguments are evaluated
//! on every row of the group, including rows whose group is then suppressed, they are held
//! to expressions that cannot fail on a value (no division by a column, no CAST that can
//! fail, no regular expression from data): an error would tell the consumer that some row
//! has such a value. MIN and MAX are refused (they show one subject's value); so are
//! GROUPING SETS, ROLLUP and CUBE (their subtotals, minus the shown groups, give the
//! suppressed ones).

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, Result, ScalarValue};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Expr, ExprSchemable, Filter, LogicalPlan, Operator, Projection,
    SubqueryAlias, TableScan, lit,
};
use datafusion::optimizer::AnalyzerRule;

use super::EnforcedTable;
use crate::EngineError;
use agora_model::AccessMode;

/// Aggregate functions whose result over k or more subjects does not show any one of them.
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "mean",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "var",
    "var_pop",
    "var_samp",
    "var_population",
    "var_sample",
];

/// Scalar functions that return a value (or null) for every input value.
const TOTAL_FUNCTIONS: &[&str] = &[
    "lower",
    "upper",
    "btrim",
    "ltrim",
    "rtrim",
    "trim",
    "character_length",
    "char_length",
    "length",
    "octet_length",
    "coalesce",
    "nullif",
    "concat",
    "floor",
    "ceil",
    // The pseudonym mask (not in the session's registry: only masks produce it).
    "agora_pseudonym",
];

/// Scalar functions that are total when every argument after the first is a literal.
const LITERAL_TAIL_FUNCTIONS: &[&str] = &[
    "substr",
    "substring",
    "left",
    "right",
    "starts_with",
    "ends_with",
    "strpos",
    "round",
];

/// Scalar functions that are total when their first argument (a unit) is a literal.
const UNIT_FUNCTIONS: &[&str] = &["date_part", "date_trunc"];

/// The analyzer rule; see the module's documentation.
#[derive(Debug, Default)]
pub(crate) struct AggregateAgreements;

impl AnalyzerRule for AggregateAgreements {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(rewrite).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "agora_aggregate_agreements"
    }
}

fn denied(message: String) -> DataFusionError {
    DataFusionError::External(Box::new(EngineError::AccessDenied(message)))
}

/// The aggregate agreement's table a scan reads, if any (and not yet granted).
fn aggregate_table(scan: &TableScan) -> Option<Arc<dyn TableProvider>> {
    let provider = source_as_provider(&scan.source).ok()?;
    let table = provider.downcast_ref::<EnforcedTable>()?;
    (table.mode == AccessMode::Aggregate && !table.aggregation_granted).then_some(provider)
}

fn rewrite(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Aggregate(agg) = &plan else {
        return Ok(Transformed::no(plan));
    };
    let mut node = agg.input.as_ref();
    let mut predicate = None;
    if let LogicalPlan::Filter(f) = node {
        predicate = Some(f.predicate.clone());
        node = f.input.as_ref();
    }
    let mut aliases = Vec::new();
    while let LogicalPlan::SubqueryAlias(a) = node {
        aliases.push(a.alias.clone());
        node = a.input.as_ref();
    }
    let LogicalPlan::TableScan(scan) = node else {
        return Ok(Transformed::no(plan));
    };
    let Some(provider) = aggregate_table(scan) else {
        return Ok(Transformed::no(plan));
    };
    let table = provider
        .downcast_ref::<EnforcedTable>()
        .expect("aggregate_table returns enforced tables");
    let agreement = table.agreement.clone();
    let k = i64::from(table.min_group_size);
    let subject = table.subject.clone().ok_or_else(|| {
        denied(format!(
            "agreement {agreement} is for aggregates but names no subject column to count \
             groups in; the owner must fix its terms"
        ))
    })?;

    // The scan, granted, under the same aliases.
    let mut granted_scan = scan.clone();
    granted_scan.source = provider_as_source(Arc::new(table.granted()));
    let mut input = LogicalPlan::TableScan(granted_scan);
    for alias in aliases.into_iter().rev() {
        input = LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(input), alias)?);
    }
    let input = Arc::new(input);
    let schema = input.schema().as_ref().clone();

    let check = |e: &Expr, role: &str| {
        check_total(e, &schema).map_err(|why| {
            denied(format!(
                "agreement {agreement} allows aggregate queries only, and in them {role} \
                 may not use {why}: it is evaluated on every row, so an error would reveal a \
                 row's value"
            ))
        })
    };
    if let Some(p) = &predicate {
        check(p, "the WHERE condition")?;
    }
    for g in &agg.group_expr {
        if matches!(g, Expr::GroupingSet(_)) {
            return Err(denied(format!(
                "agreement {agreement} allows aggregate queries without GROUPING SETS, ROLLUP \
                 or CUBE (their subtotals would reveal the groups suppressed for having fewer \
                 than {k} subjects)"
            )));
        }
        check(g, "GROUP BY")?;
    }

    let mut aggregates = Vec::with_capacity(agg.aggr_expr.len() + 2);
    for (i, e) in agg.aggr_expr.iter().enumerate() {
        let inner = match e {
            Expr::Alias(a) => a.expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(f) = inner else {
            return Err(DataFusionError::Internal(format!(
                "unexpected aggregate expression {e}"
            )));
        };
        let name = f.func.name().to_ascii_lowercase();
        if !AGGREGATES.contains(&name.as_str()) {
            return Err(denied(format!(
                "agreement {agreement} allows aggregate queries with COUNT, SUM, AVG, STDDEV \
                 and VARIANCE only, not {} (it can show one subject's value)",
                name.to_uppercase()
            )));
        }
        if !f.params.order_by.is_empty() {
            return Err(denied(format!(
                "agreement {agreement} allows no ORDER BY inside an aggregate"
            )));
        }
        for a in &f.params.args {
            check(a, "an aggregate's argument")?;
        }
        if f.params.filter.is_some() {
            // Two aggregates of one group, with and without a FILTER, would show the
            // subjects the FILTER leaves out by difference, however few they are.
            return Err(denied(format!(
                "agreement {agreement} allows no FILTER clause on an aggregate (put the \
                 condition in WHERE, where groups it leaves fewer than {k} subjects out of \
                 are suppressed)"
            )));
        }
        let mut f: AggregateFunction = f.clone();
        f.params.filter = predicate.clone().map(Box::new);
        aggregates.push(Expr::AggregateFunction(f).alias(format!("__agora_aggregate_{i}")));
    }

    let (qualifier, _) = schema
        .qualified_field_with_unqualified_name(&subject)
        .map_err(|_| {
            denied(format!(
                "agreement {agreement} counts groups in column {subject}, which its table \
                 does not show; the owner must fix its terms"
            ))
        })?;
    let subject = Expr::Column(Column::new(qualifier.cloned(), &subject));
    let count_subjects = |filter: Option<Expr>| {
        let Expr::AggregateFunction(mut f) =
            datafusion::functions_aggregate::expr_fn::count_distinct(subject.clone())
        else {
            unreachable!("count_distinct builds an aggregate function")
        };
        f.params.filter = filter.map(Box::new);
        Expr::AggregateFunction(f)
    };
    let n_in = Expr::Column(Column::from_name("__agora_n_in"));
    let n_all = Expr::Column(Column::from_name("__agora_n_all"));
    aggregates.push(count_subjects(predicate.clone()).alias("__agora_n_in"));
    let shown = match &predicate {
        None => n_in.clone().gt_eq(lit(k)),
        Some(_) => {
            aggregates.push(count_subjects(None).alias("__agora_n_all"));
            n_in.clone().gt_eq(lit(k)).and(
                n_all
                    .clone()
                    .eq(n_in.clone())
                    .or((n_all - n_in).gt_eq(lit(k))),
            )
        }
    };
    let aggregate = Aggregate::try_new(input, agg.group_expr.clone(), aggregates)?;
    let new_schema = Arc::clone(&aggregate.schema);
    let filtered = Filter::try_new(shown, Arc::new(LogicalPlan::Aggregate(aggregate)))?;
    // The original output, column by column, under the original names.
    let exprs = agg
        .schema
        .iter()
        .enumerate()
        .map(|(i, (q, field))| {
            let (nq, nf) = new_schema.qualified_field(i);
            Expr::Column(Column::new(nq.cloned(), nf.name()))
                .alias_qualified(q.cloned(), field.name())
        })
        .collect();
    let projection = Projection::try_new_with_schema(
        exprs,
        Arc::new(LogicalPlan::Filter(filtered)),
        Arc::clone(&agg.schema),
    )?;
    Ok(Transformed::yes(LogicalPlan::Projection(projection)))
}

fn is_literal(e: &Expr) -> bool {
    matches!(e, Expr::Literal(..))
}

/// Whether a cast from `from` to `to` succeeds for every value.
fn cast_is_total(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to || matches!(to, Utf8 | LargeUtf8 | Utf8View) {
        return true;
    }
    let int = |t: &DataType| matches!(t, Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32);
    match to {
        Float64 => int(from) || matches!(from, Float32 | Float16 | Float64 | UInt64),
        Int64 => int(from),
        Timestamp(_, _) | Date64 => matches!(from, Date32),
        // Nanoseconds since 1970 always fit in 32-bit days (what a truncation mask makes).
        Date32 => matches!(from, Timestamp(arrow::datatypes::TimeUnit::Nanosecond, _)),
        _ => false,
    }
}

/// Checks that evaluating `expr` on a row cannot fail because of the row's values; returns
/// what makes it fail if it could.
pub(super) fn check_total(expr: &Expr, schema: &DFSchema) -> Result<(), String> {
    let mut problem = None;
    expr.apply(|e| {
        let verdict: Result<(), String> = match e {
            Expr::Column(_) | Expr::Literal(..) | Expr::Alias(_) => Ok(()),
            Expr::Not(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsUnknown(_)
            | Expr::IsNotTrue(_)
            | Expr::IsNotFalse(_)
            | Expr::IsNotUnknown(_)
            | Expr::Negative(_)
            | Expr::Between(_)
            | Expr::InList(_)
            | Expr::Case(_)
            | Expr::TryCast(_) => Ok(()),
            Expr::Like(like) if is_literal(&like.pattern) => Ok(()),
            Expr::Like(_) => Err("a LIKE pattern taken from data".into()),
            Expr::BinaryExpr(BinaryExpr { op, right, .. }) => match op {
                Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
                | Operator::Plus
                | Operator::Minus
                | Operator::Multiply
                | Operator::And
                | Operator::Or
                | Operator::IsDistinctFrom
                | Operator::IsNotDistinctFrom
                | Operator::LikeMatch
                | Operator::ILikeMatch
                | Operator::NotLikeMatch
                | Operator::NotILikeMatch
                | Operator::StringConcat => Ok(()),
                Operator::Divide | Operator::Modulo => match right.as_ref() {
                    Expr::Literal(v, _) if !v.is_null() && !is_zero(v) => Ok(()),
                    _ => Err("division by anything but a non-zero number".into()),
                },
                Operator::RegexMatch
                | Operator::RegexIMatch
                | Operator::RegexNotMatch
                | Operator::RegexNotIMatch
                    if is_literal(right) =>
                {
                    Ok(())
                }
                other => Err(format!("the operator {other}")),
            },
            Expr::Cast(c) => {
                if is_literal(&c.expr) {
                    Ok(())
                } else {
                    match c.expr.get_type(schema) {
                        Ok(from) if cast_is_total(&from, c.field.data_type()) => Ok(()),
                        Ok(from) => Err(format!(
                            "CAST from {from} to {} (it can fail; TRY_CAST cannot)",
                            c.field.data_type()
                        )),
                        Err(e) => Err(e.to_string()),
                    }
                }
            }
            Expr::ScalarFunction(f) => {
                let name = f.func.name().to_ascii_lowercase();
                let args = &f.args;
                if TOTAL_FUNCTIONS.contains(&name.as_str())
                    || (LITERAL_TAIL_FUNCTIONS.contains(&name.as_str())
                        && args.iter().skip(1).all(is_literal))
                    || (UNIT_FUNCTIONS.contains(&name.as_str())
                        && args.first().is_some_and(is_literal))
                {
                    Ok(())
                } else {
                    Err(format!("the function {name} with these arguments"))
                }
            }
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => {
                Err("a subquery".into())
            }
            Expr::AggregateFunction(_) | Expr::WindowFunction(_) => {
                Err("a nested aggregate or window function".into())
            }
            other => Err(format!("the expression {other}")),
        };
        match verdict {
            Ok(()) => Ok(TreeNodeRecursion::Continue),
            Err(why) => {
                problem = Some(why);
                Ok(TreeNodeRecursion::Stop)
            }
        }
    })
    .map_err(|e| e.to_string())?;
    problem.map_or(Ok(()), Err)
}

fn is_zero(v: &ScalarValue) -> bool {
    ScalarValue::new_zero(&v.data_type()).is_ok_and(|z| &z == v)
}
