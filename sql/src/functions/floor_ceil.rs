//! `FLOOR(t TO unit)` and `CEIL(t TO unit)` on dates and timestamps, which the planner
//! passes as `floor_ts('UNIT', t)` and `ceil_ts('UNIT', t)`. The result has the input's
//! type (a `DATE` stays a `DATE`).
//!
//! DataFusion's `date_trunc` has no ceiling and starts weeks on Monday; Flink (Calcite)
//! starts weeks on **Sunday**. The algorithms are ported from Flink's `DateTimeUtils`
//! (`julianDateFloor`, `timestampFloor/Ceil`) and reproduce its results exactly,
//! including its quirks:
//! - up to `DAY` on a `TIMESTAMP`, plain arithmetic floor/ceil on epoch milliseconds
//!   (sub-millisecond digits are dropped first);
//! - `WEEK` and longer work on the *date* only, truncating the epoch milliseconds toward
//!   zero to days; so `CEIL` of `2024-03-01 10:00` `TO MONTH` is `2024-03-01 00:00`, and
//!   `CEIL(... TO QUARTER)` moves the first day of April, July or October one quarter on;
//! - a `TIMESTAMP_LTZ` is rounded in its time zone, with the offset at the input instant.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Builder, PrimitiveBuilder};
use arrow::datatypes::{
    DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::common::{
    check_arity, coerce_string, coerce_temporal, finish, output_shape, ymd_to_unix_date, StrArg, TemporalArg,
    TemporalKind, MILLIS_PER_DAY,
};
use super::java_timezone::arrow_zone;
use super::time_unit::FlinkTimeUnit;

/// Julian day number of 1970-01-01.
const EPOCH_JULIAN: i64 = 2_440_588;

/// `floor_ts` (`ceil: false`) or `ceil_ts` (`ceil: true`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeFloorCeil {
    ceil: bool,
    signature: Signature,
}

impl TimeFloorCeil {
    pub fn floor() -> Self {
        Self { ceil: false, signature: Signature::user_defined(Volatility::Immutable) }
    }

    pub fn ceil() -> Self {
        Self { ceil: true, signature: Signature::user_defined(Volatility::Immutable) }
    }

    fn sql_name(&self) -> &'static str {
        if self.ceil {
            "CEIL"
        } else {
            "FLOOR"
        }
    }
}

impl ScalarUDFImpl for TimeFloorCeil {
    fn name(&self) -> &str {
        if self.ceil {
            "ceil_ts"
        } else {
            "floor_ts"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.sql_name(), arg_types, 2, 2)?;
        Ok(vec![coerce_string(&arg_types[0]), coerce_temporal(self.sql_name(), &arg_types[1])?])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.get(1) {
            Some(t) => coerce_temporal(self.sql_name(), t),
            None => exec_err!("{} expects 2 arguments", self.sql_name()),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.len() != 2 {
            return exec_err!("{} expects 2 arguments, got {}", self.sql_name(), args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let units = StrArg::new(self.sql_name(), &args[0])?;
        let values = TemporalArg::new(self.sql_name(), &args[1])?;
        let zone = values.kind.zone().map(arrow_zone);
        let mut results: Vec<Option<i64>> = Vec::with_capacity(n);
        let mut last: Option<(&str, FlinkTimeUnit)> = None;
        for i in 0..n {
            let (Some(text), Some(v)) = (units.get(i), values.get(i)) else {
                results.push(None);
                continue;
            };
            let unit = match last {
                Some((t, u)) if t == text => u,
                _ => {
                    let Some(u) = FlinkTimeUnit::parse(text) else {
                        return exec_err!("{}: unsupported time unit '{text}'", self.sql_name());
                    };
                    last = Some((text, u));
                    u
                }
            };
            let r = match &values.kind {
                TemporalKind::Date => Some(round_date(unit, v, self.ceil)),
                kind => {
                    let offset_ms = match &zone {
                        Some(z) => kind.to_naive_utc(v).map_or(0, |utc| i64::from(z.offset_at_utc(&utc)) * 1000),
                        None => 0,
                    };
                    kind.to_millis(v)
                        .and_then(|ms| round_timestamp(unit, ms, offset_ms, self.ceil))
                        .and_then(|ms| kind.millis_to_raw(ms))
                }
            };
            results.push(r);
        }
        finish(build(&values.kind, results), all_scalar)
    }
}

fn build(kind: &TemporalKind, values: Vec<Option<i64>>) -> ArrayRef {
    fn ts<T: arrow::datatypes::ArrowTimestampType>(values: Vec<Option<i64>>, tz: Option<Arc<str>>) -> ArrayRef {
        let mut b = PrimitiveBuilder::<T>::with_capacity(values.len()).with_timezone_opt(tz);
        b.extend(values);
        Arc::new(b.finish())
    }
    match kind {
        TemporalKind::Date => {
            let mut b = Date32Builder::with_capacity(values.len());
            b.extend(values.into_iter().map(|v| v.and_then(|d| i32::try_from(d).ok())));
            Arc::new(b.finish())
        }
        TemporalKind::Timestamp(unit, tz) => match unit {
            TimeUnit::Second => ts::<TimestampSecondType>(values, tz.clone()),
            TimeUnit::Millisecond => ts::<TimestampMillisecondType>(values, tz.clone()),
            TimeUnit::Microsecond => ts::<TimestampMicrosecondType>(values, tz.clone()),
            TimeUnit::Nanosecond => ts::<TimestampNanosecondType>(values, tz.clone()),
        },
    }
}

/// Floor or ceiling of a `DATE` (days since the epoch): units below a week leave it as is.
fn round_date(unit: FlinkTimeUnit, days: i64, ceil: bool) -> i64 {
    match unit {
        FlinkTimeUnit::Millisecond
        | FlinkTimeUnit::Second
        | FlinkTimeUnit::Minute
        | FlinkTimeUnit::Hour
        | FlinkTimeUnit::Day => days,
        _ => julian_date_floor(unit, days + EPOCH_JULIAN, !ceil),
    }
}

/// Floor or ceiling of epoch milliseconds; `offset_ms` is the zone offset of a
/// `TIMESTAMP_LTZ` (0 for `TIMESTAMP`).
fn round_timestamp(unit: FlinkTimeUnit, ms: i64, offset_ms: i64, ceil: bool) -> Option<i64> {
    let local = ms.checked_add(offset_ms)?;
    match unit {
        FlinkTimeUnit::Millisecond | FlinkTimeUnit::Second | FlinkTimeUnit::Minute => {
            let step = unit.millis()?;
            Some(if ceil { ceil_div(ms, step) } else { floor_div(ms, step) })
        }
        FlinkTimeUnit::Hour | FlinkTimeUnit::Day => {
            let step = unit.millis()?;
            let r = if ceil { ceil_div(local, step) } else { floor_div(local, step) };
            r.checked_sub(offset_ms)
        }
        _ => {
            // Flink truncates toward zero here (`(int) (ts / MILLIS_PER_DAY)`).
            let days = local / MILLIS_PER_DAY;
            julian_date_floor(unit, days + EPOCH_JULIAN, !ceil).checked_mul(MILLIS_PER_DAY)?.checked_sub(offset_ms)
        }
    }
}

/// Largest multiple of `step` not above `v`.
fn floor_div(v: i64, step: i64) -> i64 {
    v - v.rem_euclid(step)
}

/// Smallest multiple of `step` not below `v` (saturating at the top of the range).
fn ceil_div(v: i64, step: i64) -> i64 {
    let r = v.rem_euclid(step);
    if r == 0 {
        v
    } else {
        v.saturating_add(step - r)
    }
}

/// Flink's `julianDateFloor` ("Astronomical Algorithms", Meeus): floor (or, with
/// `floor == false`, Flink's ceiling) of a Julian day to `unit`, as days since the epoch.
fn julian_date_floor(unit: FlinkTimeUnit, julian: i64, floor: bool) -> i64 {
    let (b, c) = if julian > 2_299_160 {
        let a = julian + 32044;
        let b = (4 * a + 3) / 146_097;
        (b, a - b * 146_097 / 4)
    } else {
        (0, julian + 32082)
    };
    let d = (4 * c + 3) / 1461;
    let e = c - (1461 * d) / 4;
    let m = (5 * e + 2) / 153;
    let day = e - (153 * m + 2) / 5 + 1;
    let mut month = m + 3 - 12 * (m / 10);
    let mut quarter = (month + 2) / 3;
    let mut year = b * 100 + d - 4800 + (m / 10);
    match unit {
        FlinkTimeUnit::Millennium => {
            let base = 1000 * ((year + 999) / 1000);
            ymd_to_unix_date(if floor { base - 999 } else { base + 1 }, 1, 1)
        }
        FlinkTimeUnit::Century => {
            let base = 100 * ((year + 99) / 100);
            ymd_to_unix_date(if floor { base - 99 } else { base + 1 }, 1, 1)
        }
        FlinkTimeUnit::Decade => ymd_to_unix_date(if floor { 10 * (year / 10) } else { 10 * (1 + year / 10) }, 1, 1),
        FlinkTimeUnit::Year => {
            if !floor && (month > 1 || day > 1) {
                year += 1;
            }
            ymd_to_unix_date(year, 1, 1)
        }
        FlinkTimeUnit::Month => {
            if !floor && day > 1 {
                month += 1;
            }
            ymd_to_unix_date(year, month, 1)
        }
        FlinkTimeUnit::Quarter => {
            if !floor && (month > 1 || day > 1) {
                quarter += 1;
            }
            ymd_to_unix_date(year, quarter * 3 - 2, 1)
        }
        FlinkTimeUnit::Week => {
            let dow = (julian + 1).rem_euclid(7); // Sunday = 0
            let mut offset = dow;
            if !floor && offset > 0 {
                offset -= 7;
            }
            ymd_to_unix_date(year, month, day) - offset
        }
        _ => {
            let res = ymd_to_unix_date(year, month, day);
            if floor {
                res
            } else {
                res + 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::common::test_util::{invoke_array, invoke_scalar, s, ts, ts_millis};
    use arrow::array::{Array, AsArray, TimestampMillisecondArray};
    use datafusion::common::ScalarValue;

    fn floor(unit: &str, v: &str) -> ScalarValue {
        invoke_scalar(&TimeFloorCeil::floor(), vec![s(unit), ts(v)])
    }

    fn ceil(unit: &str, v: &str) -> ScalarValue {
        invoke_scalar(&TimeFloorCeil::ceil(), vec![s(unit), ts(v)])
    }

    #[test]
    fn floors_timestamps() {
        let v = "2024-03-01 22:30:07.885";
        assert_eq!(floor("MILLISECOND", v), ts(v));
        assert_eq!(floor("SECOND", v), ts("2024-03-01 22:30:07"));
        assert_eq!(floor("MINUTE", v), ts("2024-03-01 22:30:00"));
        assert_eq!(floor("HOUR", v), ts("2024-03-01 22:00:00"));
        assert_eq!(floor("DAY", v), ts("2024-03-01 00:00:00"));
        // 2024-03-01 is a Friday; Flink weeks start on Sunday.
        assert_eq!(floor("WEEK", v), ts("2024-02-25 00:00:00"));
        assert_eq!(floor("MONTH", v), ts("2024-03-01 00:00:00"));
        assert_eq!(floor("QUARTER", "2024-05-17 10:00:00"), ts("2024-04-01 00:00:00"));
        assert_eq!(floor("YEAR", v), ts("2024-01-01 00:00:00"));
        assert_eq!(floor("DECADE", v), ts("2020-01-01 00:00:00"));
        assert_eq!(floor("MINUTE", "1969-12-31 23:59:30"), ts("1969-12-31 23:59:00"));
    }

    #[test]
    fn ceils_timestamps() {
        let v = "2024-03-01 22:30:07.885";
        assert_eq!(ceil("SECOND", v), ts("2024-03-01 22:30:08"));
        assert_eq!(ceil("MINUTE", v), ts("2024-03-01 22:31:00"));
        assert_eq!(ceil("MINUTE", "2024-03-01 22:31:00"), ts("2024-03-01 22:31:00"));
        assert_eq!(ceil("HOUR", v), ts("2024-03-01 23:00:00"));
        assert_eq!(ceil("DAY", v), ts("2024-03-02 00:00:00"));
        assert_eq!(ceil("WEEK", v), ts("2024-03-03 00:00:00"));
        assert_eq!(ceil("MONTH", "2024-03-15 10:00:00"), ts("2024-04-01 00:00:00"));
        assert_eq!(ceil("YEAR", "2024-03-15 10:00:00"), ts("2025-01-01 00:00:00"));
        assert_eq!(ceil("QUARTER", "2024-02-15 10:00:00"), ts("2024-04-01 00:00:00"));
        // Flink's date-only ceiling for months and longer.
        assert_eq!(ceil("MONTH", "2024-03-01 10:00:00"), ts("2024-03-01 00:00:00"));
        assert_eq!(ceil("QUARTER", "2024-04-01 00:00:00"), ts("2024-07-01 00:00:00"));
    }

    #[test]
    fn keeps_the_input_type() {
        let d = ScalarValue::Date32(Some(19783)); // 2024-03-01, a Friday
        let r = invoke_scalar(&TimeFloorCeil::floor(), vec![s("WEEK"), d.clone()]);
        assert_eq!(r, ScalarValue::Date32(Some(19783 - 5)));
        let r = invoke_scalar(&TimeFloorCeil::ceil(), vec![s("MONTH"), ScalarValue::Date32(Some(19784))]);
        assert_eq!(r, ScalarValue::Date32(Some(19783 + 31)));
        let r = invoke_scalar(&TimeFloorCeil::floor(), vec![s("DAY"), d.clone()]);
        assert_eq!(r, d);

        let micros = ScalarValue::TimestampMicrosecond(Some(ts_millis("2024-03-01 22:30:07.885") * 1000 + 1), None);
        let r = invoke_scalar(&TimeFloorCeil::floor(), vec![s("SECOND"), micros]);
        assert_eq!(r, ScalarValue::TimestampMicrosecond(Some(ts_millis("2024-03-01 22:30:07") * 1000), None));

        let ltz = ScalarValue::TimestampMillisecond(Some(ts_millis("2024-03-01 22:30:07")), Some("+08:00".into()));
        let r = invoke_scalar(&TimeFloorCeil::floor(), vec![s("DAY"), ltz]);
        // 22:30 UTC is 06:30 the next day in +08:00; the local day starts at 16:00 UTC.
        assert_eq!(r, ScalarValue::TimestampMillisecond(Some(ts_millis("2024-03-01 16:00:00")), Some("+08:00".into())));
    }

    #[test]
    fn arrays_with_nulls() {
        let values = TimestampMillisecondArray::from(vec![Some(ts_millis("2024-03-01 22:30:07.885")), None]);
        let out = invoke_array(
            &TimeFloorCeil::floor(),
            vec![ColumnarValue::Scalar(s("HOUR")), ColumnarValue::Array(Arc::new(values))],
        );
        let out = out.as_primitive::<TimestampMillisecondType>();
        assert_eq!(out.value(0), ts_millis("2024-03-01 22:00:00"));
        assert!(out.is_null(1));
    }
}
