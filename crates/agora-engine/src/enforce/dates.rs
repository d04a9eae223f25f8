//! A date truncation that cannot fail: `agora_trunc_date(unit, date)`.
//!
//! DataFusion's `date_trunc` works on nanosecond timestamps, so a date is first cast to one,
//! and that cast fails for dates outside 1677–2262. Where an error would reveal a row (an
//! agreement's month and year masks, the keys of aggregate agreements) dates are truncated
//! here instead, day by day in the proleptic Gregorian calendar: every 32-bit day gives its
//! truncation, or null where the calendar library has no such date. Not in the session's
//! registry: only masks and the aggregate rewrite produce it.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Date32Array};
use arrow::datatypes::{DataType, Date32Type};
use chrono::{Datelike, NaiveDate};
use datafusion::common::{Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, lit,
};

/// The units a date can be truncated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DateUnit {
    Year,
    Quarter,
    Month,
    Week,
    Day,
}

impl DateUnit {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "year" => Self::Year,
            "quarter" => Self::Quarter,
            "month" => Self::Month,
            "week" => Self::Week,
            "day" => Self::Day,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Year => "year",
            Self::Quarter => "quarter",
            Self::Month => "month",
            Self::Week => "week",
            Self::Day => "day",
        }
    }
}

const EPOCH_FROM_CE: i32 = 719_163;

/// The first day of the unit holding `days` (days since 1970), if the calendar has it.
pub(crate) fn truncate(unit: DateUnit, days: i32) -> Option<i32> {
    let date = NaiveDate::from_num_days_from_ce_opt(days.checked_add(EPOCH_FROM_CE)?)?;
    let first = match unit {
        DateUnit::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1)?,
        DateUnit::Quarter => NaiveDate::from_ymd_opt(date.year(), (date.month0() / 3) * 3 + 1, 1)?,
        DateUnit::Month => date.with_day(1)?,
        DateUnit::Week => date.checked_sub_days(chrono::Days::new(u64::from(
            date.weekday().num_days_from_monday(),
        )))?,
        DateUnit::Day => date,
    };
    first.num_days_from_ce().checked_sub(EPOCH_FROM_CE)
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TruncDate {
    signature: Signature,
}

impl ScalarUDFImpl for TruncDate {
    fn name(&self) -> &str {
        "agora_trunc_date"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [unit, dates] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "agora_trunc_date takes a unit and a date".into(),
            ));
        };
        let unit = match unit {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(u))) => DateUnit::parse(u),
            _ => None,
        }
        .ok_or_else(|| DataFusionError::Internal("agora_trunc_date needs a known unit".into()))?;
        let dates = dates.to_array(args.number_rows)?;
        let dates = arrow::compute::cast(&dates, &DataType::Date32)?;
        let out: Date32Array = dates
            .as_primitive::<Date32Type>()
            .iter()
            .map(|d| d.and_then(|d| truncate(unit, d)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out) as Arc<dyn Array>))
    }
}

/// `agora_trunc_date(unit, date)`.
pub(crate) fn trunc_date(unit: DateUnit, date: Expr) -> Expr {
    ScalarUDF::new_from_impl(TruncDate {
        signature: Signature::any(2, Volatility::Immutable),
    })
    .call(vec![lit(unit.as_str()), date])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(y: i32, m: u32, d: u32) -> i32 {
        NaiveDate::from_ymd_opt(y, m, d).unwrap().num_days_from_ce() - EPOCH_FROM_CE
    }

    #[test]
    fn dates_truncate_to_the_first_day_of_their_unit() {
        let d = day(2025, 8, 14); // a Thursday
        assert_eq!(truncate(DateUnit::Year, d), Some(day(2025, 1, 1)));
        assert_eq!(truncate(DateUnit::Quarter, d), Some(day(2025, 7, 1)));
        assert_eq!(truncate(DateUnit::Month, d), Some(day(2025, 8, 1)));
        assert_eq!(truncate(DateUnit::Week, d), Some(day(2025, 8, 11)));
        assert_eq!(truncate(DateUnit::Day, d), Some(d));
        assert_eq!(
            truncate(DateUnit::Month, day(1969, 12, 31)),
            Some(day(1969, 12, 1))
        );
    }

    proptest! {
        #[test]
        fn truncation_never_fails_and_never_moves_forward(d in any::<i32>()) {
            for unit in [DateUnit::Year, DateUnit::Quarter, DateUnit::Month, DateUnit::Week, DateUnit::Day] {
                if let Some(t) = truncate(unit, d) {
                    prop_assert!(t <= d);
                    prop_assert_eq!(truncate(unit, t), Some(t));
                }
            }
        }
    }
}
