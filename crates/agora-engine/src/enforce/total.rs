//! Which expressions cannot fail on any value: the allow-list that decides what a
//! consumer's expression may do where an error would reveal a protected row.
//!
//! An expression evaluated on rows the consumer may not see (a condition moved below an
//! agreement's masks, or a group key, filter or aggregate argument of an aggregate
//! agreement, evaluated on every row of the product) must never fail: otherwise "error or
//! not" is a yes/no question about hidden rows, and a `CASE WHEN <guess> THEN <fails>`
//! asks it about one person. So such expressions are built only from what this module
//! accepts, and each entry is tested to be total — `tests` below evaluates every operator,
//! cast and function of the list on adversarial values (extremes of every type, NaN,
//! infinities, empty and long text, nulls) and fails if one of them errors.
//!
//! The list is explicit: an operator, cast or function not named here is not total.
//! Arguments that could make a function fail whatever the data (a negative substring
//! length, an unknown date unit, a literal that cannot be cast, a malformed regular
//! expression) must be literals whose values are checked here, so that the query is refused
//! at planning, before any row is read.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Operator};

/// Functions total on every value of their (coerced) argument types.
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
    "bit_length",
    "coalesce",
    "nullif",
    "nvl",
    "nvl2",
    "concat",
    "concat_ws",
    "starts_with",
    "ends_with",
    "strpos",
    "reverse",
    "initcap",
    "greatest",
    "least",
    "isnan",
    "iszero",
    "signum",
    // The pseudonym mask and the date truncation of masks and keys (not in the session's
    // registry: only the engine's rewrites produce them).
    "agora_pseudonym",
    "agora_trunc_date",
];

/// Functions total on numbers (integers or floats) only.
const NUMERIC_FUNCTIONS: &[&str] = &["floor", "ceil"];

/// Date units `date_part` and `date_trunc` accept as their first, literal argument.
const DATE_PART_UNITS: &[&str] = &[
    "year", "quarter", "month", "week", "day", "dow", "doy", "hour", "minute", "second",
];

/// Largest literal position or length accepted by the substring functions.
const MAX_TEXT_POSITION: i64 = 1 << 31;

/// Checks that evaluating `expr` on a row cannot fail because of the row's values; returns
/// what could make it fail otherwise.
pub(crate) fn check_total(expr: &Expr, schema: &DFSchema) -> Result<(), String> {
    let mut problem = None;
    expr.apply(|e| match node_verdict(e, schema) {
        Ok(()) => Ok(TreeNodeRecursion::Continue),
        Err(why) => {
            problem = Some(why);
            Ok(TreeNodeRecursion::Stop)
        }
    })
    .map_err(|e| e.to_string())?;
    problem.map_or(Ok(()), Err)
}

/// The value of a literal argument: a literal, or a literal under casts and a sign that can
/// be applied now (a cast that fails refuses the query here, not on some row).
pub(crate) fn literal_value(e: &Expr) -> Option<ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Cast(c) => literal_value(&c.expr)?.cast_to(c.field.data_type()).ok(),
        Expr::TryCast(c) => {
            let v = literal_value(&c.expr)?;
            Some(
                v.cast_to(c.field.data_type())
                    .unwrap_or(ScalarValue::try_from(c.field.data_type()).ok()?),
            )
        }
        Expr::Negative(inner) => literal_value(inner)?.arithmetic_negate().ok(),
        Expr::Alias(a) => literal_value(&a.expr),
        _ => None,
    }
}

fn is_integer(t: &DataType) -> bool {
    t.is_integer()
}

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64)
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Whether a cast from `from` to `to` succeeds for every value.
fn cast_is_total(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to || *from == Null {
        return true;
    }
    if is_text(to) {
        // Numbers, booleans and text always have a text form; dates and times outside the
        // calendar library's range do not, and bytes need not be UTF-8.
        return is_integer(from)
            || is_float(from)
            || is_text(from)
            || matches!(
                from,
                DataType::Boolean | DataType::Decimal128(_, _) | DataType::Decimal256(_, _)
            );
    }
    let signed_width = |t: &DataType| match t {
        Int8 => Some(8),
        Int16 => Some(16),
        Int32 => Some(32),
        Int64 => Some(64),
        UInt8 => Some(9),
        UInt16 => Some(17),
        UInt32 => Some(33),
        _ => None,
    };
    match to {
        Float64 => is_integer(from) || is_float(from),
        Int16 | Int32 | Int64 => match (signed_width(from), signed_width(to)) {
            (Some(f), Some(t)) => f <= t,
            _ => false,
        },
        // Days since 1970 fit in seconds and milliseconds of 64 bits for every 32-bit day.
        Timestamp(TimeUnit::Second | TimeUnit::Millisecond, _) | Date64 => {
            matches!(from, Date32)
        }
        // A truncation mask casts a nanosecond timestamp back to a day, which always fits.
        Date32 => matches!(from, Timestamp(_, _) | Date64),
        _ => false,
    }
}

fn node_verdict(e: &Expr, schema: &DFSchema) -> Result<(), String> {
    let type_of = |e: &Expr| e.get_type(schema).map_err(|err| err.to_string());
    match e {
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
        | Expr::Between(_)
        | Expr::InList(_)
        | Expr::Case(_)
        | Expr::TryCast(_) => Ok(()),
        // Negation wraps; only of plain numbers.
        Expr::Negative(inner) => {
            let t = type_of(inner)?;
            if is_integer(&t) || is_float(&t) {
                Ok(())
            } else {
                Err(format!("the negation of a value of type {t}"))
            }
        }
        Expr::Like(like) => {
            if like.escape_char.is_some() {
                return Err("a LIKE pattern with an ESCAPE character".into());
            }
            match literal_value(&like.pattern) {
                Some(_) => Ok(()),
                None => Err("a LIKE pattern taken from data".into()),
            }
        }
        Expr::BinaryExpr(b) => binary_verdict(b, schema),
        Expr::Cast(c) => {
            if literal_value(&c.expr).is_some() {
                // Applied now: a literal that cannot be cast is refused before any row.
                return match literal_value(e) {
                    Some(_) => Ok(()),
                    None => Err(format!(
                        "CAST of {} to {}, which fails",
                        c.expr,
                        c.field.data_type()
                    )),
                };
            }
            let from = type_of(&c.expr)?;
            if cast_is_total(&from, c.field.data_type()) {
                Ok(())
            } else {
                Err(format!(
                    "CAST from {from} to {} (it can fail; TRY_CAST cannot)",
                    c.field.data_type()
                ))
            }
        }
        Expr::ScalarFunction(f) => function_verdict(f.func.name(), &f.args, schema),
        Expr::ScalarSubquery(_)
        | Expr::Exists(_)
        | Expr::InSubquery(_)
        | Expr::SetComparison(_) => Err("a subquery".into()),
        Expr::AggregateFunction(_) | Expr::WindowFunction(_) => {
            Err("a nested aggregate or window function".into())
        }
        other => Err(format!("the expression {other}")),
    }
}

fn binary_verdict(b: &BinaryExpr, schema: &DFSchema) -> Result<(), String> {
    let BinaryExpr { left, op, right } = b;
    let numeric = |e: &Expr| {
        e.get_type(schema)
            .is_ok_and(|t| is_integer(&t) || is_float(&t))
    };
    match op {
        Operator::Eq
        | Operator::NotEq
        | Operator::Lt
        | Operator::LtEq
        | Operator::Gt
        | Operator::GtEq
        | Operator::And
        | Operator::Or
        | Operator::IsDistinctFrom
        | Operator::IsNotDistinctFrom
        | Operator::StringConcat => Ok(()),
        // Integer arithmetic wraps in DataFusion and floats saturate; dates and decimals
        // can overflow.
        Operator::Plus | Operator::Minus | Operator::Multiply => {
            if numeric(left) && numeric(right) {
                Ok(())
            } else {
                Err(format!("the operator {op} on other than plain numbers"))
            }
        }
        Operator::Divide | Operator::Modulo => {
            let divisor = literal_value(right);
            let safe = numeric(left)
                && divisor.as_ref().is_some_and(|v| {
                    !v.is_null()
                        && ScalarValue::new_zero(&v.data_type()).is_ok_and(|z| &z != v)
                        // MIN / -1 overflows.
                        && ScalarValue::new_negative_one(&v.data_type()).is_ok_and(|m| &m != v)
                });
            if safe {
                Ok(())
            } else {
                Err("division by anything but a number literal other than 0 and -1".into())
            }
        }
        Operator::LikeMatch
        | Operator::ILikeMatch
        | Operator::NotLikeMatch
        | Operator::NotILikeMatch => match literal_value(right) {
            Some(_) => Ok(()),
            None => Err("a LIKE pattern taken from data".into()),
        },
        Operator::RegexMatch
        | Operator::RegexIMatch
        | Operator::RegexNotMatch
        | Operator::RegexNotIMatch => {
            let Some(ScalarValue::Utf8(Some(p)) | ScalarValue::Utf8View(Some(p))) =
                literal_value(right)
            else {
                return Err("a regular expression taken from data".into());
            };
            let case_insensitive = matches!(op, Operator::RegexIMatch | Operator::RegexNotIMatch);
            regex::RegexBuilder::new(&p)
                .case_insensitive(case_insensitive)
                .build()
                .map(|_| ())
                .map_err(|e| format!("the regular expression {p:?}, which is not valid: {e}"))
        }
        other => Err(format!("the operator {other}")),
    }
}

fn function_verdict(name: &str, args: &[Expr], schema: &DFSchema) -> Result<(), String> {
    let name = name.to_ascii_lowercase();
    let first_type = || {
        args.first()
            .and_then(|a| a.get_type(schema).ok())
            .unwrap_or(DataType::Null)
    };
    let refuse = || Err(format!("the function {name} with these arguments"));
    let int_literal = |i: usize| {
        args.get(i)
            .and_then(literal_value)
            .and_then(|v| v.cast_to(&DataType::Int64).ok())
            .and_then(|v| match v {
                ScalarValue::Int64(Some(n)) => Some(n),
                _ => None,
            })
    };
    let text_literal = |i: usize| {
        args.get(i).and_then(literal_value).and_then(|v| match v {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)) => Some(s.to_ascii_lowercase()),
            _ => None,
        })
    };
    match name.as_str() {
        n if TOTAL_FUNCTIONS.contains(&n) => Ok(()),
        n if NUMERIC_FUNCTIONS.contains(&n) => {
            let t = first_type();
            if is_integer(&t) || is_float(&t) {
                Ok(())
            } else {
                refuse()
            }
        }
        "substr" | "substring" => {
            let start_ok = int_literal(1).is_some_and(|s| s.abs() <= MAX_TEXT_POSITION);
            let len_ok = args.len() == 2
                || int_literal(2).is_some_and(|l| (0..=MAX_TEXT_POSITION).contains(&l));
            if start_ok && len_ok && args.len() <= 3 {
                Ok(())
            } else {
                refuse()
            }
        }
        "left" | "right" => {
            if int_literal(1).is_some_and(|n| n.abs() <= MAX_TEXT_POSITION) {
                Ok(())
            } else {
                refuse()
            }
        }
        // Rounding floats cannot fail; rounding integers to tens, hundreds… can overflow
        // (the aggregate rewrite rounds such keys as floats instead).
        "round" | "trunc" => {
            let places_ok = args.len() == 1 || int_literal(1).is_some_and(|d| d.abs() <= 30);
            if places_ok && is_float(&first_type()) {
                Ok(())
            } else {
                refuse()
            }
        }
        // date_trunc casts a date to a nanosecond timestamp, which fails outside 1677–2262
        // (the aggregate rewrite truncates dates as dates instead).
        "date_part" | "datepart" => {
            let units = DATE_PART_UNITS;
            let data = args
                .get(1)
                .and_then(|a| a.get_type(schema).ok())
                .unwrap_or(DataType::Null);
            let unit_ok = text_literal(0).is_some_and(|u| units.contains(&u.as_str()));
            if unit_ok && args.len() == 2 && data == DataType::Date32 {
                Ok(())
            } else {
                refuse()
            }
        }
        _ => refuse(),
    }
}

#[cfg(test)]
mod tests {
    //! Every entry of the allow-list, evaluated on adversarial values: none may fail.

    use super::*;
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
        StringArray, TimestampNanosecondArray,
    };
    use arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::{col, lit};
    use datafusion::prelude::SessionContext;
    use proptest::prelude::*;

    fn columns(
        ints: Vec<Option<i64>>,
        floats: Vec<Option<f64>>,
        texts: Vec<Option<String>>,
        days: Vec<Option<i32>>,
        nanos: Vec<Option<i64>>,
    ) -> RecordBatch {
        let n = ints.len();
        let small: Vec<Option<i32>> = ints.iter().map(|v| v.map(|x| x as i32)).collect();
        let bools: Vec<Option<bool>> = ints.iter().map(|v| v.map(|x| x % 2 == 0)).collect();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ints)),
            Arc::new(Int32Array::from(small)),
            Arc::new(Float64Array::from(floats[..n].to_vec())),
            Arc::new(StringArray::from(texts[..n].to_vec())),
            Arc::new(Date32Array::from(days[..n].to_vec())),
            Arc::new(TimestampNanosecondArray::from(nanos[..n].to_vec())),
            Arc::new(BooleanArray::from(bools)),
        ];
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("i", DataType::Int64, true),
                Field::new("s", DataType::Int32, true),
                Field::new("f", DataType::Float64, true),
                Field::new("t", DataType::Utf8, true),
                Field::new("d", DataType::Date32, true),
                Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
                Field::new("b", DataType::Boolean, true),
            ])),
            cols,
        )
        .unwrap()
    }

    /// The edge values every column is tested with, besides the generated ones.
    fn edges() -> RecordBatch {
        columns(
            vec![
                Some(i64::MIN),
                Some(i64::MAX),
                Some(0),
                Some(-1),
                Some(1),
                None,
                Some(i64::MIN + 1),
            ],
            vec![
                Some(f64::NAN),
                Some(f64::INFINITY),
                Some(f64::NEG_INFINITY),
                Some(-0.0),
                Some(f64::MAX),
                Some(f64::MIN_POSITIVE),
                None,
            ],
            vec![
                Some(String::new()),
                Some("é😀\u{0}x".repeat(50)),
                Some(" a ".into()),
                Some("%_\\".into()),
                Some("2025-01-01".into()),
                None,
                Some("x".repeat(10_000)),
            ],
            vec![
                Some(i32::MIN),
                Some(i32::MAX),
                Some(0),
                Some(-1),
                Some(20_000),
                None,
                Some(2_932_896),
            ],
            vec![
                Some(i64::MIN),
                Some(i64::MAX),
                Some(0),
                Some(-1),
                Some(1_700_000_000_000_000_000),
                None,
                Some(i64::MIN + 1),
            ],
        )
    }

    /// The expressions of the allow-list, over the test columns.
    fn total_expressions() -> Vec<Expr> {
        use datafusion::functions::expr_fn as f;
        let i = || col("i");
        let s = || col("s");
        let fl = || col("f");
        let t = || col("t");
        let d = || col("d");
        let ts = || col("ts");
        let mut v = vec![
            i() + lit(7i64),
            i() - i(),
            i() * i(),
            s() * s(),
            fl() * fl() - fl(),
            i() + fl(),
            -i(),
            -fl(),
            i() / lit(10i64),
            i() % lit(7i64),
            i() / lit(-2i64),
            fl() / lit(3.0),
            fl() % lit(2.5),
            t().eq(lit("x")),
            t().lt(lit("é")),
            i().between(lit(0i64), lit(10i64)),
            t().in_list(vec![lit("a"), lit("")], false),
            t().like(lit("%x_")),
            t().like(lit("\\")),
            t().ilike(lit("%É%")),
            t().not_like(lit("[")),
            d().gt_eq(lit(ScalarValue::Date32(Some(0)))),
            ts().lt(lit(ScalarValue::TimestampNanosecond(Some(0), None))),
            Expr::BinaryExpr(BinaryExpr::new(
                Box::new(t()),
                Operator::RegexMatch,
                Box::new(lit("^(a|b)+$")),
            )),
            Expr::BinaryExpr(BinaryExpr::new(
                Box::new(t()),
                Operator::RegexNotIMatch,
                Box::new(lit("x{2,}")),
            )),
            Expr::BinaryExpr(BinaryExpr::new(
                Box::new(t()),
                Operator::StringConcat,
                Box::new(t()),
            )),
            datafusion::logical_expr::cast(i(), DataType::Float64),
            datafusion::logical_expr::cast(s(), DataType::Int64),
            datafusion::logical_expr::cast(fl(), DataType::Utf8),
            super::super::dates::trunc_date(super::super::dates::DateUnit::Month, d()),
            super::super::dates::trunc_date(super::super::dates::DateUnit::Week, d()),
            datafusion::logical_expr::cast(d(), DataType::Timestamp(TimeUnit::Millisecond, None)),
            datafusion::logical_expr::cast(d(), DataType::Date64),
            datafusion::logical_expr::cast(ts(), DataType::Date32),
            datafusion::logical_expr::try_cast(t(), DataType::Int64),
            datafusion::logical_expr::when(t().eq(lit("a")), lit(1i64))
                .otherwise(i())
                .unwrap(),
            f::lower(t()),
            f::upper(t()),
            f::btrim(vec![t()]),
            f::ltrim(vec![t(), lit("a")]),
            f::character_length(t()),
            f::octet_length(t()),
            f::bit_length(t()),
            datafusion::functions::core::expr_fn::coalesce(vec![t(), lit("z")]),
            datafusion::functions::core::expr_fn::nullif(i(), lit(0i64)),
            datafusion::functions::core::expr_fn::greatest(vec![i(), lit(3i64)]),
            datafusion::functions::core::expr_fn::least(vec![fl(), lit(3.0)]),
            f::concat(vec![t(), lit("-"), t()]),
            f::concat_ws(lit(","), vec![t(), t()]),
            f::starts_with(t(), lit("a")),
            f::ends_with(t(), t()),
            f::strpos(t(), lit("x")),
            f::reverse(t()),
            f::initcap(t()),
            f::isnan(fl()),
            f::iszero(fl()),
            f::signum(fl()),
            f::floor(fl()),
            f::ceil(fl()),
            f::floor(i()),
            f::ceil(s()),
            f::round(vec![fl(), lit(2i64)]),
            f::round(vec![fl(), lit(-30i64)]),
            f::round(vec![fl(), lit(30i64)]),
            f::trunc(vec![fl(), lit(-3i64)]),
            f::substr(t(), lit(-(1i64 << 31))),
            f::substring(t(), lit(1i64 << 31), lit(1i64 << 31)),
            f::substring(t(), lit(2i64), lit(0i64)),
            f::left(t(), lit(-(1i64 << 31))),
            f::right(t(), lit(3i64)),
        ];
        for u in DATE_PART_UNITS {
            v.push(f::date_part(lit(*u), d()));
        }
        v
    }

    /// Evaluates `expr` on `batch` as a query would (analysed, type-coerced, optimised,
    /// planned, executed), after checking that the allow-list accepts it as analysed.
    fn evaluate(batch: &RecordBatch, expr: &Expr) -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let ctx = SessionContext::new();
            let df = ctx
                .read_batch(batch.clone())
                .unwrap()
                .select(vec![expr.clone().alias("x")])
                .map_err(|e| format!("cannot plan {expr}: {e}"))?;
            let state = ctx.state();
            let analyzed = state
                .analyzer()
                .execute_and_check(df.logical_plan().clone(), state.config_options(), |_, _| {})
                .map_err(|e| format!("cannot analyse {expr}: {e}"))?;
            let datafusion::logical_expr::LogicalPlan::Projection(p) = &analyzed else {
                return Err(format!("unexpected plan {analyzed}"));
            };
            let coerced = p.expr[0].clone().unalias();
            check_total(&coerced, p.input.schema())
                .map_err(|w| format!("not accepted ({w}): {coerced}"))?;
            df.collect()
                .await
                .map(|_| ())
                .map_err(|e| format!("{coerced} failed: {e}"))
        })
    }

    #[test]
    fn every_total_expression_survives_the_edge_values() {
        let batch = edges();
        let failures: Vec<String> = total_expressions()
            .iter()
            .filter_map(|e| evaluate(&batch, e).err())
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn every_total_expression_survives_random_values(
            ints in proptest::collection::vec(proptest::option::of(any::<i64>()), 8),
            floats in proptest::collection::vec(proptest::option::of(any::<f64>()), 8),
            texts in proptest::collection::vec(proptest::option::of(".{0,40}"), 8),
            days in proptest::collection::vec(proptest::option::of(any::<i32>()), 8),
            nanos in proptest::collection::vec(proptest::option::of(any::<i64>()), 8),
        ) {
            let batch = columns(ints, floats, texts, days, nanos);
            for e in total_expressions() {
                let r = evaluate(&batch, &e);
                prop_assert!(r.is_ok(), "{}", r.unwrap_err());
            }
        }
    }

    fn verdict(e: Expr) -> Result<(), String> {
        let batch = edges();
        let df_schema = DFSchema::try_from(batch.schema().as_ref().clone()).unwrap();
        check_total(&e, &df_schema)
    }

    #[test]
    fn what_can_fail_is_refused() {
        use datafusion::functions::expr_fn as f;
        let i = || col("i");
        let t = || col("t");
        // Casts that fail on some value, and literals that fail to cast whatever the data.
        assert!(verdict(datafusion::logical_expr::cast(t(), DataType::Int64)).is_err());
        assert!(verdict(datafusion::logical_expr::cast(i(), DataType::Int32)).is_err());
        assert!(verdict(datafusion::logical_expr::cast(lit("abc"), DataType::Int64)).is_err());
        assert!(
            verdict(datafusion::logical_expr::cast(
                col("d"),
                DataType::Timestamp(TimeUnit::Nanosecond, None)
            ))
            .is_err()
        );
        assert!(verdict(datafusion::logical_expr::cast(col("d"), DataType::Utf8)).is_err());
        // Division by data, by zero, by -1.
        assert!(verdict(lit(1i64) / i()).is_err());
        assert!(verdict(i() / lit(0i64)).is_err());
        assert!(verdict(i() / lit(-1i64)).is_err());
        assert!(verdict(i() % lit(-1i64)).is_err());
        // Arguments that fail whatever the data.
        assert!(verdict(f::substring(t(), lit(1i64), lit(-1i64))).is_err());
        assert!(verdict(f::date_trunc(lit("fortnight"), col("d"))).is_err());
        assert!(
            verdict(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(t()),
                Operator::RegexMatch,
                Box::new(lit("("))
            )))
            .is_err()
        );
        // Integer rounding to tens can overflow; functions not on the list.
        assert!(verdict(f::round(vec![i(), lit(-3i64)])).is_err());
        assert!(verdict(f::abs(i())).is_err());
        assert!(verdict(f::repeat(t(), lit(1_000_000i64))).is_err());
        assert!(verdict(f::lpad(vec![t(), lit(1_000_000_000i64)])).is_err());
        // Inside CASE too: every branch is checked.
        let guarded = datafusion::logical_expr::when(
            t().eq(lit("x")),
            datafusion::logical_expr::cast(lit("abc"), DataType::Int64),
        )
        .otherwise(lit(0i64))
        .unwrap();
        assert!(verdict(guarded).is_err());
    }
}
