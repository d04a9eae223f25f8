//! Joins on pseudonyms made with one linkage key, run on the identifiers they stand for.
//!
//! Under linkage agreements a subject column is seen as `HMAC-SHA256(key, id)` in hex. When
//! both sides of an inner equi-join are such columns of this owner's enforced tables and
//! their pseudonyms come from the same key, `pseudonym(a) = pseudonym(b)` holds exactly when
//! `a = b` (for the identifier types allowed here, whose text forms are one-to-one; an
//! HMAC-SHA256 collision is not a practical concern). The rule then gives each side's scan
//! one more column, the identifier itself, under a name no SQL can write (it is added after
//! the query's names were resolved), joins on those, and projects them away right above the
//! join: the join's output, and everything the query can see, is unchanged. The pseudonyms
//! are then computed only for rows the query outputs (none, for an aggregate over the join)
//! and the join hashes identifiers rather than 64-character strings.
//!
//! Anything else is left as it is: other join types, keys of different types, pseudonyms
//! under different keys (which must never join), aggregate agreements (their own rewrite
//! owns them), and inputs other than a scan of an enforced table under aliases.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, NullEquality, Result};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Join, JoinType, LogicalPlan, Operator, Projection, SubqueryAlias, TableScan,
    TableScanBuilder,
};
use datafusion::optimizer::AnalyzerRule;

use super::{EnforcedTable, PseudonymUdf};
use agora_model::AccessMode;

/// The analyzer rule; see the module's documentation.
#[derive(Debug, Default)]
pub(crate) struct LinkageJoins;

impl AnalyzerRule for LinkageJoins {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(rewrite).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "agora_linkage_joins"
    }
}

/// Prefix of the identifier columns the rule adds; unreachable from SQL.
const LINK: &str = "__agora_link_";

/// One side's linkable column: the pseudonym's function (its key), and the identifier it is
/// made from.
struct Link {
    udf: Arc<datafusion::logical_expr::ScalarUDF>,
    raw: String,
    raw_type: DataType,
}

/// Identifier types whose equality is their pseudonyms' equality (one-to-one text forms).
fn linkable_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// The scan under an input's aliases, with the aliases from the innermost out.
fn scan_of(plan: &LogicalPlan) -> Option<(&TableScan, Vec<datafusion::common::TableReference>)> {
    let mut aliases = Vec::new();
    let mut node = plan;
    while let LogicalPlan::SubqueryAlias(a) = node {
        aliases.push(a.alias.clone());
        node = a.input.as_ref();
    }
    aliases.reverse();
    match node {
        LogicalPlan::TableScan(s) => Some((s, aliases)),
        _ => None,
    }
}

/// The enforced table an input scans, if the rule may touch it.
fn enforced(scan: &TableScan) -> Option<EnforcedTable> {
    let provider = source_as_provider(&scan.source).ok()?;
    let table = provider.downcast_ref::<EnforcedTable>()?;
    (table.mode != AccessMode::Aggregate).then(|| table.clone())
}

/// The link behind `column` of `input`, if it is a pseudonym of an enforced table's
/// identifier.
fn link_of(input: &LogicalPlan, column: &Column) -> Option<Link> {
    let (scan, _) = scan_of(input)?;
    let table = enforced(scan)?;
    let index = input.schema().index_of_column(column).ok()?;
    let table_index = match &scan.projection {
        Some(p) => *p.get(index)?,
        None => index,
    };
    let (_, expr) = table.columns.get(table_index)?;
    let Expr::ScalarFunction(f) = expr else {
        return None;
    };
    f.func.inner().downcast_ref::<PseudonymUdf>()?;
    let [Expr::Column(raw)] = f.args.as_slice() else {
        return None;
    };
    let raw_type = table
        .inner
        .schema()
        .field_with_name(&raw.name)
        .ok()?
        .data_type()
        .clone();
    linkable_type(&raw_type).then(|| Link {
        udf: Arc::clone(&f.func),
        raw: raw.name.clone(),
        raw_type,
    })
}

/// The input with its scan's table giving the identifier as one more column, and that
/// column as the join will name it.
fn with_link(input: &LogicalPlan, link: &Link, name: &str) -> Result<(LogicalPlan, Column)> {
    let (scan, aliases) = scan_of(input).expect("checked by link_of");
    let table = enforced(scan).expect("checked by link_of");
    let (linked, index) = table.with_link(&link.raw, name)?;
    let projection = scan.projection.clone().map(|mut p| {
        p.push(index);
        p
    });
    let mut plan = LogicalPlan::TableScan(
        TableScanBuilder::new(
            scan.table_name.clone(),
            provider_as_source(Arc::new(linked)),
        )
        .with_projection(projection)
        .with_filters(scan.filters.clone())
        .with_fetch(scan.fetch)
        .build()?,
    );
    for alias in aliases {
        plan = LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(plan), alias)?);
    }
    let schema = plan.schema();
    let (qualifier, field) = schema.qualified_field(schema.fields().len() - 1);
    let column = Column::new(qualifier.cloned(), field.name());
    Ok((plan, column))
}

/// A condition `l = r` between plain columns, as (left input's, right input's).
fn sides(e: &Expr, join: &Join) -> Option<(Column, Column)> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = e
    else {
        return None;
    };
    let (Expr::Column(a), Expr::Column(b)) = (left.as_ref(), right.as_ref()) else {
        return None;
    };
    let on_left = |c: &Column| join.left.schema().has_column(c);
    let on_right = |c: &Column| join.right.schema().has_column(c);
    if on_left(a) && on_right(b) {
        Some((a.clone(), b.clone()))
    } else if on_left(b) && on_right(a) {
        Some((b.clone(), a.clone()))
    } else {
        None
    }
}

fn rewrite(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Join(join) = &plan else {
        return Ok(Transformed::no(plan));
    };
    if join.join_type != JoinType::Inner
        || join.null_equality != NullEquality::NullEqualsNothing
        || join.null_aware
    {
        return Ok(Transformed::no(plan));
    }
    // The first condition that links the two inputs, from the equi-join keys or the
    // join's filter (where SQL's ON puts it before the optimiser extracts the keys).
    let keyed: Vec<(Option<usize>, Column, Column)> = join
        .on
        .iter()
        .enumerate()
        .filter_map(|(i, pair)| match pair {
            (Expr::Column(a), Expr::Column(b)) => Some((Some(i), a.clone(), b.clone())),
            _ => None,
        })
        .collect();
    let conjuncts = join
        .filter
        .clone()
        .map(split_conjunction_owned)
        .unwrap_or_default();
    let candidates = keyed.into_iter().chain(
        conjuncts
            .iter()
            .filter_map(|e| sides(e, join).map(|(a, b)| (None, a, b))),
    );
    let mut chosen = None;
    for (at, a, b) in candidates {
        let (Some(la), Some(lb)) = (link_of(&join.left, &a), link_of(&join.right, &b)) else {
            continue;
        };
        // The same key (pseudonyms of different keys never join), the same identifier type.
        if la.udf == lb.udf && la.raw_type == lb.raw_type {
            chosen = Some((at, a, b, la, lb));
            break;
        }
    }
    let Some((at, a, b, la, lb)) = chosen else {
        return Ok(Transformed::no(plan));
    };
    let (left, left_key) = with_link(&join.left, &la, &format!("{LINK}left"))?;
    let (right, right_key) = with_link(&join.right, &lb, &format!("{LINK}right"))?;
    let keys = (Expr::Column(left_key), Expr::Column(right_key));
    let mut on = join.on.clone();
    let mut filter = join.filter.clone();
    match at {
        Some(i) => on[i] = keys,
        None => {
            let kept: Vec<Expr> = conjuncts
                .into_iter()
                .filter(|e| sides(e, join) != Some((a.clone(), b.clone())))
                .collect();
            filter = conjunction(kept);
            on.push(keys);
        }
    }
    let linked = Join::try_new(
        Arc::new(left),
        Arc::new(right),
        on,
        filter,
        join.join_type,
        join.join_constraint,
        join.null_equality,
        join.null_aware,
    )?;
    // Exactly the original join's columns above it: the identifiers go no further.
    let columns = join
        .schema
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let projected = Projection::try_new(columns, Arc::new(LogicalPlan::Join(linked)))?;
    Ok(Transformed::yes(LogicalPlan::Projection(projected)))
}

#[cfg(test)]
mod tests {
    use super::super::{Enforcement, LinkageKey};
    use super::*;
    use agora_model::{AgreementTerms, ColumnTerm};
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    /// A session with the rule, and `t` (and `u`) under linkage agreements with the keys
    /// given, over the same ten people (`u` has ids 5–14).
    async fn session(key_t: u8, key_u: u8) -> SessionContext {
        session_of(key_t, key_u, 10, None).await
    }

    /// `session`, with `rows_u` people in `u` (ids from 5) and a row filter on `t`.
    async fn session_of(
        key_t: u8,
        key_u: u8,
        rows_u: i64,
        filter_t: Option<&str>,
    ) -> SessionContext {
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_analyzer_rule(Arc::new(LinkageJoins))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let schema = Arc::new(Schema::new(vec![
            Field::new("person_id", DataType::Utf8, false),
            Field::new("income", DataType::Int64, false),
        ]));
        for (name, key, first, rows, filter) in
            [("t", key_t, 0, 10, filter_t), ("u", key_u, 5, rows_u, None)]
        {
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(
                        (first..first + rows).map(|i| format!("P{i:08}")),
                    )),
                    Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i * 1000))),
                ],
            )
            .unwrap();
            let inner = Arc::new(MemTable::try_new(schema.clone(), vec![vec![batch]]).unwrap());
            let enforcement = Enforcement {
                agreement: format!("agreement-{name}"),
                terms: AgreementTerms {
                    columns: ColumnTerm::parse_list("person_id,income").unwrap(),
                    row_filter: filter.map(str::to_owned),
                    mode: AccessMode::Linkage,
                    min_group_size: 5,
                    max_rows: None,
                    measures: vec![],
                    disclosure: None,
                    query_limits: Default::default(),
                },
                subject: Some("person_id".into()),
                linkage_key: Some(LinkageKey::new([key; 32])),
                cell_key: None,
                excluded: Vec::new(),
            };
            let table = EnforcedTable::new(&ctx.state(), inner, &enforcement).unwrap();
            ctx.register_table(name, Arc::new(table)).unwrap();
        }
        ctx
    }

    async fn run(ctx: &SessionContext, sql: &str) -> (String, Vec<RecordBatch>) {
        let df = ctx.sql(sql).await.unwrap();
        let plan = df
            .clone()
            .into_optimized_plan()
            .unwrap()
            .display_indent()
            .to_string();
        (plan, df.collect().await.unwrap())
    }

    fn count(batches: &[RecordBatch]) -> i64 {
        batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    }

    #[tokio::test]
    async fn a_join_on_pseudonyms_of_one_key_runs_on_the_identifiers() {
        let ctx = session(1, 1).await;
        let (plan, out) = run(
            &ctx,
            "SELECT count(*), sum(t.income) FROM t JOIN u ON t.person_id = u.person_id",
        )
        .await;
        assert!(plan.contains("__agora_link_left"), "{plan}");
        assert!(
            !plan.contains("agora_pseudonym"),
            "no pseudonym is computed: {plan}"
        );
        assert_eq!(count(&out), 5);
        // What the query outputs is still pseudonyms, and nothing else.
        let (_, out) = run(
            &ctx,
            "SELECT * FROM t a JOIN u b ON a.person_id = b.person_id ORDER BY a.income",
        )
        .await;
        assert_eq!(out[0].num_columns(), 4);
        let ids = out[0]
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(ids.value(0).len(), 64);
        assert_eq!(
            ids.value(0),
            out[0]
                .column(2)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(0)
        );
        // The identifier column cannot be named.
        assert!(
            ctx.sql("SELECT a.__agora_link_left FROM t a JOIN u b ON a.person_id = b.person_id")
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn pseudonyms_of_different_keys_never_join_and_are_left_alone() {
        let ctx = session(1, 2).await;
        let (plan, out) = run(
            &ctx,
            "SELECT count(*) FROM t JOIN u ON t.person_id = u.person_id",
        )
        .await;
        assert!(!plan.contains("__agora_link"), "{plan}");
        assert_eq!(count(&out), 0);
        // Outer joins keep their pseudonyms too.
        let (plan, out) = run(
            &ctx,
            "SELECT count(*) FROM t LEFT JOIN t AS v ON t.person_id = v.person_id",
        )
        .await;
        assert!(!plan.contains("__agora_link"), "{plan}");
        assert_eq!(count(&out), 10);
    }

    /// Regression: the enforcement boundary hid every size, so a join of two enforced
    /// tables built its hash table on whichever side the SQL named first (2.6 M rows
    /// instead of 0.5 M in the agreements benchmark).
    #[tokio::test]
    async fn joins_of_enforced_tables_build_on_the_smaller_side() {
        let ctx = session_of(1, 1, 5_000, None).await;
        for sql in [
            "SELECT count(*) FROM u JOIN t ON u.person_id = t.person_id",
            "SELECT count(*) FROM t JOIN u ON t.person_id = u.person_id",
        ] {
            let df = ctx.sql(sql).await.unwrap();
            let plan = df.clone().create_physical_plan().await.unwrap();
            let text = datafusion::physical_plan::displayable(plan.as_ref())
                .indent(true)
                .to_string();
            let join = text.find("HashJoinExec").expect("a hash join");
            let small = text[join..].find("agreement=agreement-t").unwrap();
            let large = text[join..].find("agreement=agreement-u").unwrap();
            assert!(small < large, "the build side is t's 10 rows: {text}");
            assert_eq!(count(&df.collect().await.unwrap()), 5);
        }
    }

    /// Regression guard for the sizes the boundary passes up: they are estimates, so an
    /// aggregate is never read from them, past the agreement's row filter.
    #[tokio::test]
    async fn counts_are_never_read_from_statistics_past_the_row_filter() {
        let ctx = session_of(1, 1, 10, Some("income >= 4000")).await;
        let (plan, out) = run(&ctx, "SELECT count(*) FROM t").await;
        assert_eq!(count(&out), 6, "{plan}");
        let (plan, out) = run(&ctx, "SELECT count(*) FROM u").await;
        assert_eq!(count(&out), 10, "{plan}");
    }
}
