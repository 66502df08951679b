//! `TIMESTAMPDIFF(unit, t1, t2)`, which the planner passes as `timestampdiff('UNIT', t1, t2)`:
//! the number of whole `unit`s from `t1` to `t2` as an `INT`.
//!
//! DataFusion has no such function. Flink's code generator computes it on epoch
//! milliseconds (sub-millisecond digits are dropped first):
//! - `SECOND` .. `WEEK`: `(int) ((t2 - t1) / unit_millis)`, Java division, so truncation
//!   toward zero (`-0.985 s` is `0` seconds);
//! - `MONTH`, `QUARTER`, `YEAR`: Calcite's `subtractMonths(t2, t1)` divided by 1, 3 or 12,
//!   which counts calendar months (with its quirk that a negative difference ending on the
//!   same day of month at an earlier time of day counts one month more);
//! - `DATE` arguments are midnight of that day.
//!
//! The result wraps to 32 bits like Java's `(int)` cast. NULL if any argument is NULL.

use std::sync::Arc;

use arrow::array::Int32Builder;
use arrow::datatypes::DataType;
use chrono::Datelike;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::common::{
    check_arity, coerce_string, coerce_temporal, finish, output_shape, unix_date_to_naive, ymd_to_unix_date, StrArg,
    TemporalArg, MILLIS_PER_DAY,
};
use super::time_unit::FlinkTimeUnit;

/// The `TIMESTAMPDIFF` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimestampDiff {
    signature: Signature,
}

impl TimestampDiff {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for TimestampDiff {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for TimestampDiff {
    fn name(&self) -> &str {
        "timestampdiff"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("TIMESTAMPDIFF", arg_types, 3, 3)?;
        Ok(vec![
            coerce_string(&arg_types[0]),
            coerce_temporal("TIMESTAMPDIFF", &arg_types[1])?,
            coerce_temporal("TIMESTAMPDIFF", &arg_types[2])?,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.len() != 3 {
            return exec_err!("TIMESTAMPDIFF expects 3 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let units = StrArg::new("TIMESTAMPDIFF", &args[0])?;
        let t1 = TemporalArg::new("TIMESTAMPDIFF", &args[1])?;
        let t2 = TemporalArg::new("TIMESTAMPDIFF", &args[2])?;
        let mut out = Int32Builder::with_capacity(n);
        let mut last: Option<(&str, FlinkTimeUnit)> = None;
        for i in 0..n {
            let Some(unit_text) = units.get(i) else {
                out.append_null();
                continue;
            };
            let unit = match last {
                Some((text, unit)) if text == unit_text => unit,
                _ => {
                    let Some(unit) = FlinkTimeUnit::parse(unit_text) else {
                        return exec_err!("TIMESTAMPDIFF: unsupported time unit '{unit_text}'");
                    };
                    last = Some((unit_text, unit));
                    unit
                }
            };
            let millis = |arg: &TemporalArg| arg.get(i).and_then(|v| arg.kind.to_millis(v));
            let (Some(a), Some(b)) = (millis(&t1), millis(&t2)) else {
                out.append_null();
                continue;
            };
            out.append_option(diff(unit, a, b)?);
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

/// Whole `unit`s from `t1` to `t2` (epoch milliseconds).
fn diff(unit: FlinkTimeUnit, t1: i64, t2: i64) -> Result<Option<i32>> {
    if let Some(months) = unit.months() {
        if months > 12 {
            return exec_err!("TIMESTAMPDIFF: unsupported time unit {unit:?}");
        }
        return Ok(subtract_months(t2, t1).map(|m| (m / months) as i32));
    }
    match unit.millis() {
        Some(ms) => Ok(Some((t2.wrapping_sub(t1) / ms) as i32)),
        None => exec_err!("TIMESTAMPDIFF: unsupported time unit {unit:?}"),
    }
}

/// Calcite's `subtractMonths(long t0, long t1)`: months from `t1` to `t0`.
fn subtract_months(t0: i64, t1: i64) -> Option<i64> {
    let millis0 = t0.rem_euclid(MILLIS_PER_DAY);
    let d0 = t0.div_euclid(MILLIS_PER_DAY);
    let millis1 = t1.rem_euclid(MILLIS_PER_DAY);
    let d1 = t1.div_euclid(MILLIS_PER_DAY);
    let mut x = subtract_months_dates(d0, d1)?;
    let d2 = add_months(d1, x)?;
    if d2 == d0 && millis0 < millis1 {
        x -= 1;
    }
    Some(x)
}

/// Calcite's `subtractMonths(int date0, int date1)` on days since the epoch.
fn subtract_months_dates(date0: i64, date1: i64) -> Option<i64> {
    if date0 < date1 {
        return subtract_months_dates(date1, date0).map(|m| -m);
    }
    // No month has more than 31 days, so this estimate is at most the true value.
    let mut m = (date0 - date1) / 31;
    loop {
        if add_months(date1, m)? >= date0 {
            return Some(m);
        }
        if add_months(date1, m + 1)? > date0 {
            return Some(m);
        }
        m += 1;
    }
}

/// Calcite's `addMonths(int date, int m)`: clamps the day to the target month's length.
pub(crate) fn add_months(date: i64, m: i64) -> Option<i64> {
    let d = unix_date_to_naive(date)?;
    let (y0, m0, d0) = (i64::from(d.year()), i64::from(d.month()) + m, i64::from(d.day()));
    let mut year = y0 + m0.div_euclid(12);
    let mut month = m0.rem_euclid(12);
    if month == 0 {
        year -= 1;
        month += 12;
    }
    let last = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    Some(ymd_to_unix_date(year, month, d0.min(last)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::common::test_util::{invoke, invoke_array, invoke_scalar, s, ts, ts_millis};
    use arrow::array::{Array, AsArray, TimestampMillisecondArray};
    use arrow::datatypes::Int32Type;
    use datafusion::common::ScalarValue;

    fn tsdiff(unit: &str, a: &str, b: &str) -> ScalarValue {
        invoke_scalar(&TimestampDiff::new(), vec![s(unit), ts(a), ts(b)])
    }

    fn int(v: i32) -> ScalarValue {
        ScalarValue::Int32(Some(v))
    }

    #[test]
    fn truncates_toward_zero() {
        assert_eq!(tsdiff("SECOND", "2024-03-01 22:30:07.885", "2024-03-01 22:30:06.900"), int(0));
        assert_eq!(tsdiff("SECOND", "2024-03-01 22:30:06.900", "2024-03-01 22:30:07.885"), int(0));
        assert_eq!(tsdiff("SECOND", "2024-03-01 22:30:00", "2024-03-01 22:31:01.999"), int(61));
        assert_eq!(tsdiff("MINUTE", "2024-03-01 22:31:00", "2024-03-01 22:30:00.001"), int(0));
        assert_eq!(tsdiff("HOUR", "2024-03-01 00:00:00", "2024-02-29 21:00:00"), int(-3));
        assert_eq!(tsdiff("DAY", "2003-01-02 10:00:00", "2003-01-03 10:00:00"), int(1));
        assert_eq!(tsdiff("WEEK", "2024-03-01 00:00:00", "2024-03-15 00:00:00"), int(2));
        assert_eq!(tsdiff("SQL_TSI_SECONDS", "2024-03-01 00:00:00", "2024-03-01 00:00:10"), int(10));
    }

    #[test]
    fn counts_calendar_months() {
        assert_eq!(tsdiff("MONTH", "2024-01-31 00:00:00", "2024-02-29 00:00:00"), int(1));
        assert_eq!(tsdiff("MONTH", "2024-01-15 12:00:00", "2024-02-15 11:59:59"), int(0));
        assert_eq!(tsdiff("MONTH", "2024-01-15 12:00:00", "2024-02-15 12:00:00"), int(1));
        assert_eq!(tsdiff("YEAR", "2020-02-29 00:00:00", "2024-02-28 00:00:00"), int(3));
        assert_eq!(tsdiff("YEAR", "2024-03-01 00:00:00", "2020-03-01 00:00:00"), int(-4));
        assert_eq!(tsdiff("QUARTER", "2024-01-01 00:00:00", "2024-12-31 00:00:00"), int(3));
        // Calcite's quirk for negative differences landing on the same day of month.
        assert_eq!(tsdiff("MONTH", "2024-02-01 12:00:00", "2024-01-01 10:00:00"), int(-2));
    }

    #[test]
    fn dates_mixed_and_nulls() {
        let d = |days| ScalarValue::Date32(Some(days));
        let r = invoke_scalar(&TimestampDiff::new(), vec![s("DAY"), d(19783), ts("2024-03-03 12:00:00")]);
        assert_eq!(r, int(2));
        let r = invoke_scalar(&TimestampDiff::new(), vec![s("MONTH"), d(19783), d(19783 + 31)]);
        assert_eq!(r, int(1));
        let r = invoke_scalar(
            &TimestampDiff::new(),
            vec![s("DAY"), ScalarValue::TimestampMillisecond(None, None), ts("2024-03-03 12:00:00")],
        );
        assert_eq!(r, ScalarValue::Int32(None));

        let t1 = TimestampMillisecondArray::from(vec![Some(ts_millis("2024-03-01 00:00:00")), None, Some(0)]);
        let out = invoke_array(
            &TimestampDiff::new(),
            vec![
                ColumnarValue::Scalar(s("MINUTE")),
                ColumnarValue::Array(Arc::new(t1)),
                ColumnarValue::Scalar(ts("2024-03-01 01:00:00")),
            ],
        );
        let out = out.as_primitive::<Int32Type>();
        assert_eq!(out.value(0), 60);
        assert!(out.is_null(1));
        // Java's (int) cast wraps.
        assert_eq!(out.value(2), (ts_millis("2024-03-01 01:00:00") / 60_000) as i32);
    }

    #[test]
    fn bad_unit_is_an_error() {
        let r = invoke(
            &TimestampDiff::new(),
            vec![
                ColumnarValue::Scalar(s("FORTNIGHT")),
                ColumnarValue::Scalar(ts("2024-03-01 00:00:00")),
                ColumnarValue::Scalar(ts("2024-03-01 00:00:00")),
            ],
        );
        assert!(r.is_err());
    }
}
