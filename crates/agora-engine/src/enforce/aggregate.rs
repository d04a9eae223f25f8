//! Aggregate-mode agreements: remote tabulation, as statistical offices run it.
//!
//! An aggregate agreement's table refuses to be scanned (it would hand out rows) unless the
//! scan feeds a table this rule has rewritten. The rule runs last in the analyzer, after
//! type coercion, on every plan and every subquery in it, and accepts one query surface:
//!
//! ```text
//! SELECT keys…, COUNT(*) | COUNT(DISTINCT subject) | COUNT(c) | SUM(m) | AVG(m)…
//! FROM product [AS x]          -- or views, CTEs and derived tables over it alone
//! [WHERE condition]            -- over dimensions only
//! GROUP BY keys                -- over dimensions only
//! [HAVING …]                   -- over the released figures
//! ```
//!
//! *Dimensions* are the agreed columns other than the subject and the measures, at the
//! level their masks set (a band, a month, a prefix of a code); group keys and conditions
//! may use them, literals and the total operators and functions of [`super::total`] — so
//! they can coarsen a dimension further (bands of bands, years of months, `x / 10`,
//! `round(x, -3)`, `CASE` bands, shorter prefixes) but never look at the subject or a
//! measure row by row, and never fail. *Measures* appear only as the argument of `SUM`,
//! `AVG` or `COUNT`. The subject appears only in `COUNT(DISTINCT subject)`. Nothing else
//! goes inside an aggregate: no expression, no `FILTER`, no `DISTINCT` but that one, no
//! `MIN`/`MAX`/`MEDIAN`, no grouping sets.
//!
//! Whatever views the query goes through are inlined; the result is
//!
//! ```text
//! Projection: keys, get_field(cell, 'o0') AS …, …   (the original names and types)
//!   Filter: get_field(cell, 'shown')
//!     Aggregate: group by keys, agora_tabulate(subject, inputs…) AS cell
//!       [Filter: condition]
//!         TableScan: product (granted)
//! ```
//!
//! where `agora_tabulate` ([`super::tabulate`]) applies the minimum-contributor rule, the
//! dominance rule and cell-key perturbation. What the consumer does with the released
//! table (HAVING, ORDER BY, LIMIT, joins, arithmetic) is post-processing of protected
//! figures and is not restricted.
//!
//! **Aggregate mode's threat model and guarantee.** The adversary is a consumer holding an
//! aggregate agreement (and possibly other agreements, a modified node of its own, Flight
//! SQL and unlimited queries) who wants one person's value or presence. Aggregate mode
//! guarantees: no row and no expression per row leaves the owner; no released figure is
//! computed from fewer than k subjects; no sum dominated by one or two contributors is
//! released; no error or its absence depends on a protected value; and no exact figure of
//! any one subject can be obtained by differencing, complements or margins (total minus
//! shown cells), across one or many queries: each released figure carries noise fixed by
//! its contributor set, so repeating a query returns the same noise, and a difference of
//! two cells carries the noise of both. It is **not** differential privacy: many
//! *different* cells built around one subject give independent noise, which averages down
//! (a consumer who can form dozens of cells that differ only by one subject can estimate
//! whether that subject is in them); there is no budget. Agreements that must resist that
//! use differential privacy (a later capability).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, AggregateUDF, Distinct, Expr, ExprSchemable, Filter, LogicalPlan, Projection,
    TableScan, cast, try_cast,
};
use datafusion::optimizer::AnalyzerRule;

use super::EnforcedTable;
use super::tabulate::{Output, Protection, TabulateUdaf};
use super::total::{check_total, literal_value};
use crate::EngineError;
use agora_model::AccessMode;

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

/// A chain of views over one aggregate table, inlined: the scan, the conditions on the
/// way, and each output column of the chain's top as an expression over the scan.
struct Flat {
    scan: TableScan,
    provider: Arc<dyn TableProvider>,
    conditions: Vec<Expr>,
    columns: HashMap<Column, Expr>,
}

/// Inlines Projection, SubqueryAlias and Filter nodes down to one aggregate table's scan;
/// `None` for any other shape (joins, unions, windows, limits…).
fn flatten(node: &LogicalPlan) -> Result<Option<Flat>> {
    match node {
        LogicalPlan::TableScan(scan) => {
            let Some(provider) = aggregate_table(scan) else {
                return Ok(None);
            };
            let columns = scan
                .projected_schema
                .columns()
                .into_iter()
                .map(|c| (c.clone(), Expr::Column(c)))
                .collect();
            Ok(Some(Flat {
                scan: scan.clone(),
                provider,
                conditions: Vec::new(),
                columns,
            }))
        }
        LogicalPlan::SubqueryAlias(a) => {
            let Some(mut flat) = flatten(&a.input)? else {
                return Ok(None);
            };
            let inner = a.input.schema().columns();
            let mut columns = HashMap::new();
            for (outer, inner) in a.schema.columns().into_iter().zip(inner) {
                let e = flat.columns.get(&inner).cloned().ok_or_else(|| {
                    DataFusionError::Internal(format!("no column {inner} below an alias"))
                })?;
                columns.insert(outer, e);
            }
            flat.columns = columns;
            Ok(Some(flat))
        }
        LogicalPlan::Projection(p) => {
            let Some(mut flat) = flatten(&p.input)? else {
                return Ok(None);
            };
            let mut columns = HashMap::new();
            for (outer, e) in p.schema.columns().into_iter().zip(&p.expr) {
                columns.insert(outer, substitute(e.clone().unalias(), &flat.columns)?);
            }
            flat.columns = columns;
            Ok(Some(flat))
        }
        LogicalPlan::Filter(f) => {
            let Some(mut flat) = flatten(&f.input)? else {
                return Ok(None);
            };
            let c = substitute(f.predicate.clone(), &flat.columns)?;
            flat.conditions.push(c);
            Ok(Some(flat))
        }
        _ => Ok(None),
    }
}

/// `e` with each column replaced by its expression over the scan.
fn substitute(e: Expr, columns: &HashMap<Column, Expr>) -> Result<Expr> {
    e.transform_up(|e| match &e {
        Expr::Column(c) => match columns.get(c) {
            Some(x) => Ok(Transformed::yes(x.clone())),
            None => Err(DataFusionError::Internal(format!(
                "no column {c} in the inlined view"
            ))),
        },
        _ => Ok(Transformed::no(e)),
    })
    .map(|t| t.data)
}

/// Rewrites keys and conditions that could fail on extreme values into ones that cannot,
/// with the same answer wherever the original would not fail: integer rounding to tens,
/// hundreds… rounds as a float (it could overflow as an integer), and `date_trunc` of a
/// date truncates the date itself (the cast to a nanosecond timestamp fails outside
/// 1677–2262); values that would have failed give null.
fn totalise(e: Expr, schema: &DFSchema) -> Result<Expr> {
    e.transform_up(|e| {
        let Expr::ScalarFunction(f) = &e else {
            return Ok(Transformed::no(e));
        };
        let name = f.func.name();
        if matches!(name, "date_trunc" | "datetrunc")
            && let [unit, Expr::Cast(c)] = f.args.as_slice()
            && c.expr.get_type(schema)? == DataType::Date32
            && let Some(unit) = literal_value(unit).and_then(|u| match u {
                datafusion::common::ScalarValue::Utf8(Some(u))
                | datafusion::common::ScalarValue::Utf8View(Some(u)) => {
                    super::dates::DateUnit::parse(&u)
                }
                _ => None,
            })
        {
            let t = e.get_type(schema)?;
            return Ok(Transformed::yes(try_cast(
                super::dates::trunc_date(unit, c.expr.as_ref().clone()),
                t,
            )));
        }
        if !(name == "round" || name == "trunc") || f.args.is_empty() {
            return Ok(Transformed::no(e));
        }
        let t = f.args[0].get_type(schema)?;
        if !t.is_integer() {
            return Ok(Transformed::no(e));
        }
        let mut args = f.args.clone();
        args[0] = cast(args[0].clone(), DataType::Float64);
        let float = Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction {
            func: Arc::clone(&f.func),
            args,
        });
        Ok(Transformed::yes(try_cast(float, t)))
    })
    .map(|t| t.data)
}

fn rewrite(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    // SELECT DISTINCT over the table is a table of its keys, without figures.
    if let LogicalPlan::Distinct(Distinct::All(input)) = &plan
        && flatten(input)?.is_some()
    {
        let keys = input
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let agg = Aggregate::try_new(Arc::clone(input), keys, vec![])?;
        return rewrite(LogicalPlan::Aggregate(agg));
    }
    let LogicalPlan::Aggregate(agg) = &plan else {
        return Ok(Transformed::no(plan));
    };
    let Some(flat) = flatten(&agg.input)? else {
        return Ok(Transformed::no(plan));
    };
    tabulate(agg, flat).map(Transformed::yes)
}

/// How the agreement's columns may be used in a table.
struct Surface<'a> {
    table: &'a EnforcedTable,
    agreement: &'a str,
    subject: String,
    schema: DFSchema,
}

impl Surface<'_> {
    fn role(&self, name: &str) -> &'static str {
        if name == self.subject {
            "subject"
        } else if self.table.measures.iter().any(|m| m == name) {
            "measure"
        } else {
            "dimension"
        }
    }

    fn dimensions(&self) -> String {
        let dims: Vec<&str> = self
            .table
            .columns
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| self.role(n) == "dimension")
            .collect();
        if dims.is_empty() {
            "none: totals only".into()
        } else {
            dims.join(", ")
        }
    }

    /// A group key or condition: total, over dimensions only.
    fn check_key(&self, e: &Expr, what: &str) -> Result<()> {
        for c in e.column_refs() {
            match self.role(&c.name) {
                "dimension" => {}
                role => {
                    return Err(denied(format!(
                        "agreement {} answers tables only, grouped and filtered by its \
                         dimensions ({}); {what} uses {}, the {role}{}",
                        self.agreement,
                        self.dimensions(),
                        c.name,
                        if role == "subject" {
                            ", which may only be counted with COUNT(DISTINCT …)"
                        } else {
                            ", which may only be summed, averaged or counted"
                        }
                    )));
                }
            }
        }
        check_total(e, &self.schema).map_err(|why| {
            denied(format!(
                "agreement {} answers tables only, and {what} may not use {why}: it is \
                 evaluated on every row, so an error would reveal a row's value",
                self.agreement
            ))
        })
    }

    /// A column that is an aggregate's argument, as it is or under a numeric cast.
    fn argument_column<'e>(&self, e: &'e Expr) -> Option<&'e Column> {
        match e {
            Expr::Column(c) => Some(c),
            Expr::Cast(c) if c.field.data_type().is_numeric() => self.argument_column(&c.expr),
            Expr::TryCast(c) if c.field.data_type().is_numeric() => self.argument_column(&c.expr),
            Expr::Alias(a) => self.argument_column(&a.expr),
            _ => None,
        }
    }

    /// What one aggregate of the query releases; `inputs` collects the columns it needs.
    fn output(&self, f: &AggregateFunction, inputs: &mut Vec<String>) -> Result<Output> {
        let name = f.func.name().to_ascii_lowercase();
        let refuse = |why: &str| {
            Err(denied(format!(
                "agreement {} answers tables of COUNT(*), COUNT(DISTINCT {}), COUNT(column), \
                 SUM(measure) and AVG(measure) only; {why}",
                self.agreement, self.subject
            )))
        };
        if f.params.filter.is_some() {
            return refuse("no FILTER clause (put the condition in WHERE, over the dimensions)");
        }
        if !f.params.order_by.is_empty() {
            return refuse("no ORDER BY inside an aggregate");
        }
        let args = &f.params.args;
        let column = match args.as_slice() {
            [a] => self.argument_column(a),
            _ => None,
        };
        let mut input = |c: &Column| {
            inputs.iter().position(|n| *n == c.name).unwrap_or_else(|| {
                inputs.push(c.name.clone());
                inputs.len() - 1
            })
        };
        match (name.as_str(), f.params.distinct, column) {
            ("count", true, Some(c)) if c.name == self.subject => Ok(Output::Subjects),
            ("count", true, _) => refuse("no COUNT(DISTINCT …) but of the subject"),
            ("count", false, None)
                if args.len() == 1 && literal_value(&args[0]).is_some_and(|v| !v.is_null()) =>
            {
                Ok(Output::Rows)
            }
            ("count", false, Some(c)) if self.role(&c.name) != "subject" => {
                Ok(Output::Values(input(c)))
            }
            ("sum" | "avg" | "mean", false, Some(c)) if self.role(&c.name) == "measure" => {
                let i = input(c);
                Ok(if name == "sum" {
                    Output::Sum(i)
                } else {
                    Output::Avg(i)
                })
            }
            ("sum" | "avg" | "mean", false, Some(c)) => refuse(&format!(
                "{} is not a measure of the agreement ({})",
                c.name,
                if self.table.measures.is_empty() {
                    "it has none".to_owned()
                } else {
                    self.table.measures.join(", ")
                }
            )),
            ("sum" | "avg" | "mean" | "count", _, _) => refuse(&format!(
                "the argument of {} must be a column as it is, not an expression",
                name.to_uppercase()
            )),
            (other, _, _) => refuse(&format!(
                "not {} (it can show one subject's value, or is not a protected figure)",
                other.to_uppercase()
            )),
        }
    }
}

fn tabulate(agg: &Aggregate, flat: Flat) -> Result<LogicalPlan> {
    let table = flat
        .provider
        .downcast_ref::<EnforcedTable>()
        .expect("flatten returns enforced tables");
    let agreement = table.agreement.clone();
    let subject = table.subject.clone().ok_or_else(|| {
        denied(format!(
            "agreement {agreement} is for aggregates but names no subject column to count \
             groups in; the owner must fix its terms"
        ))
    })?;
    let (control, secret) = match (&table.disclosure, &table.cell_key) {
        (Some(c), Some(s)) => (c.clone(), s.clone()),
        _ => {
            return Err(denied(format!(
                "agreement {agreement} is for aggregates but its owner has no disclosure \
                 control configured for it; the owner must fix its terms"
            )));
        }
    };
    let groups = super::GroupSizes::new(&agreement);
    let mut granted_scan = flat.scan.clone();
    granted_scan.source = provider_as_source(Arc::new(table.granted(Arc::clone(&groups))));
    let scan = LogicalPlan::TableScan(granted_scan);
    let surface = Surface {
        table,
        agreement: &agreement,
        subject: subject.clone(),
        schema: scan.schema().as_ref().clone(),
    };

    let mut input = scan;
    let conditions = flat
        .conditions
        .into_iter()
        .map(|c| totalise(c, &surface.schema))
        .collect::<Result<Vec<_>>>()?;
    for c in &conditions {
        surface.check_key(c, "the WHERE condition")?;
    }
    if let Some(p) = conditions.into_iter().reduce(Expr::and) {
        input = LogicalPlan::Filter(Filter::try_new(p, Arc::new(input))?);
    }

    let mut keys = Vec::with_capacity(agg.group_expr.len());
    for g in &agg.group_expr {
        if matches!(g, Expr::GroupingSet(_)) {
            return Err(denied(format!(
                "agreement {agreement} answers tables without GROUPING SETS, ROLLUP or CUBE; \
                 ask for the margins as tables of their own"
            )));
        }
        let k = totalise(substitute(g.clone(), &flat.columns)?, &surface.schema)?;
        surface.check_key(&k, "GROUP BY")?;
        keys.push(k);
    }

    let mut inputs: Vec<String> = Vec::new();
    let mut outputs = Vec::with_capacity(agg.aggr_expr.len());
    for e in &agg.aggr_expr {
        let inner = substitute(e.clone().unalias(), &flat.columns)?;
        let Expr::AggregateFunction(f) = &inner else {
            return Err(DataFusionError::Internal(format!(
                "unexpected aggregate expression {e}"
            )));
        };
        outputs.push(surface.output(f, &mut inputs)?);
    }
    let qualified = |name: &str| -> Result<Expr> {
        let (q, _) = surface
            .schema
            .qualified_field_with_unqualified_name(name)
            .map_err(|_| {
                denied(format!(
                    "agreement {agreement} counts groups in column {name}, which its table \
                     does not show; the owner must fix its terms"
                ))
            })?;
        Ok(Expr::Column(Column::new(q.cloned(), name)))
    };
    let mut args = vec![qualified(&subject)?];
    let mut input_types = Vec::with_capacity(inputs.len());
    for name in &inputs {
        let c = qualified(name)?;
        let t = c.get_type(&surface.schema)?;
        input_types.push((name.clone(), t.is_integer() || t == DataType::Boolean));
        args.push(c);
    }
    let protection = Protection {
        agreement: agreement.clone(),
        min_contributors: u64::from(table.min_group_size),
        control,
        secret,
        inputs: input_types,
        outputs,
        groups,
    };
    let udaf = AggregateUDF::new_from_impl(TabulateUdaf::new(protection));
    let cell_call = udaf.call(args).alias("__agora_cell");
    let aggregate = Aggregate::try_new(Arc::new(input), keys, vec![cell_call])?;
    let new_schema = Arc::clone(&aggregate.schema);
    let cell = Expr::Column(Column::from_name("__agora_cell"));
    let field = |name: &str| datafusion::functions::core::expr_fn::get_field(cell.clone(), name);
    let shown = Filter::try_new(field("shown"), Arc::new(LogicalPlan::Aggregate(aggregate)))?;
    let shown = LogicalPlan::Filter(shown);
    // The original output, column by column, under the original names and types.
    let n_keys = agg.group_expr.len();
    let mut exprs = Vec::with_capacity(agg.schema.fields().len());
    for (i, (q, f)) in agg.schema.iter().enumerate() {
        let e = if i < n_keys {
            let (nq, nf) = new_schema.qualified_field(i);
            Expr::Column(Column::new(nq.cloned(), nf.name()))
        } else {
            let released = field(&format!("o{}", i - n_keys));
            let t = released.get_type(shown.schema())?;
            if &t == f.data_type() {
                released
            } else {
                try_cast(released, f.data_type().clone())
            }
        };
        exprs.push(e.alias_qualified(q.cloned(), f.name()));
    }
    let projection =
        Projection::try_new_with_schema(exprs, Arc::new(shown), Arc::clone(&agg.schema))?;
    Ok(LogicalPlan::Projection(projection))
}
