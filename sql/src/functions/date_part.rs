//! `YEAR`, `QUARTER`, `MONTH`, `WEEK`, `DAYOFYEAR`, `DAYOFMONTH`, `DAYOFWEEK`, `HOUR`,
//! `MINUTE` and `SECOND` of a `DATE` or `TIMESTAMP`, each `EXTRACT(... FROM x)` as a
//! `BIGINT`.
//!
//! DataFusion only has `date_part('year', x)`; these are Flink's shorthand names. `WEEK`
//! is the ISO-8601 week, `DAYOFWEEK` counts from Sunday = 1 to Saturday = 7, `SECOND` is
//! the whole second. A `TIMESTAMP_LTZ` is read in its time zone; the time parts of a
//! `DATE` are 0.

use std::sync::Arc;

use arrow::array::Int64Builder;
use arrow::datatypes::DataType;
use chrono::{Datelike, Duration, NaiveDateTime, Timelike};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::common::{check_arity, coerce_temporal, finish, output_shape, TemporalArg};
use super::java_timezone::arrow_zone;

/// Which field to extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatePartKind {
    Year,
    Quarter,
    Month,
    Week,
    DayOfYear,
    DayOfMonth,
    DayOfWeek,
    Hour,
    Minute,
    Second,
}

impl DatePartKind {
    /// All the functions, for registration.
    pub const ALL: [DatePartKind; 10] = [
        Self::Year,
        Self::Quarter,
        Self::Month,
        Self::Week,
        Self::DayOfYear,
        Self::DayOfMonth,
        Self::DayOfWeek,
        Self::Hour,
        Self::Minute,
        Self::Second,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Year => "year",
            Self::Quarter => "quarter",
            Self::Month => "month",
            Self::Week => "week",
            Self::DayOfYear => "dayofyear",
            Self::DayOfMonth => "dayofmonth",
            Self::DayOfWeek => "dayofweek",
            Self::Hour => "hour",
            Self::Minute => "minute",
            Self::Second => "second",
        }
    }

    fn extract(self, t: &NaiveDateTime) -> i64 {
        i64::from(match self {
            Self::Year => return i64::from(t.year()),
            Self::Quarter => t.month0() / 3 + 1,
            Self::Month => t.month(),
            Self::Week => t.iso_week().week(),
            Self::DayOfYear => t.ordinal(),
            Self::DayOfMonth => t.day(),
            Self::DayOfWeek => t.weekday().num_days_from_sunday() + 1,
            Self::Hour => t.hour(),
            Self::Minute => t.minute(),
            Self::Second => t.second(),
        })
    }
}

/// The UDF for one [`DatePartKind`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DatePart {
    kind: DatePartKind,
    signature: Signature,
}

impl DatePart {
    pub fn new(kind: DatePartKind) -> Self {
        Self { kind, signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for DatePart {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.kind.name(), arg_types, 1, 1)?;
        Ok(vec![coerce_temporal(self.kind.name(), &arg_types[0])?])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.len() != 1 {
            return exec_err!("{} expects 1 argument, got {}", self.kind.name(), args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let values = TemporalArg::new(self.kind.name(), &args[0])?;
        let zone = values.kind.zone().map(arrow_zone);
        let mut out = Int64Builder::with_capacity(n);
        for i in 0..n {
            let local = values.get(i).and_then(|v| values.kind.to_naive_utc(v)).and_then(|utc| match &zone {
                Some(z) => utc.checked_add_signed(Duration::seconds(i64::from(z.offset_at_utc(&utc)))),
                None => Some(utc),
            });
            out.append_option(local.map(|t| self.kind.extract(&t)));
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::common::test_util::{invoke_array, invoke_scalar, ts, ts_millis};
    use arrow::array::{Array, AsArray, TimestampMillisecondArray};
    use arrow::datatypes::Int64Type;
    use datafusion::common::ScalarValue;

    fn part(kind: DatePartKind, v: ScalarValue) -> Option<i64> {
        match invoke_scalar(&DatePart::new(kind), vec![v]) {
            ScalarValue::Int64(v) => v,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn extracts_fields() {
        let v = ts("1994-09-27 13:14:15.678");
        assert_eq!(part(DatePartKind::Year, v.clone()), Some(1994));
        assert_eq!(part(DatePartKind::Quarter, v.clone()), Some(3));
        assert_eq!(part(DatePartKind::Month, v.clone()), Some(9));
        assert_eq!(part(DatePartKind::Week, v.clone()), Some(39));
        assert_eq!(part(DatePartKind::DayOfYear, v.clone()), Some(270));
        assert_eq!(part(DatePartKind::DayOfMonth, v.clone()), Some(27));
        assert_eq!(part(DatePartKind::DayOfWeek, v.clone()), Some(3));
        assert_eq!(part(DatePartKind::Hour, v.clone()), Some(13));
        assert_eq!(part(DatePartKind::Minute, v.clone()), Some(14));
        assert_eq!(part(DatePartKind::Second, v), Some(15));
        // ISO week of 2021-01-01 (a Friday) is week 53 of 2020.
        assert_eq!(part(DatePartKind::Week, ts("2021-01-01 00:00:00")), Some(53));
        assert_eq!(part(DatePartKind::DayOfWeek, ts("2024-03-03 00:00:00")), Some(1));
    }

    #[test]
    fn dates_zones_and_nulls() {
        let date = ScalarValue::Date32(Some(19783)); // 2024-03-01
        assert_eq!(part(DatePartKind::DayOfMonth, date.clone()), Some(1));
        assert_eq!(part(DatePartKind::Hour, date), Some(0));
        let ltz = ScalarValue::TimestampMillisecond(Some(ts_millis("2024-03-01 22:30:00")), Some("+08:00".into()));
        assert_eq!(part(DatePartKind::Hour, ltz.clone()), Some(6));
        assert_eq!(part(DatePartKind::DayOfMonth, ltz), Some(2));
        assert_eq!(part(DatePartKind::Year, ScalarValue::TimestampMillisecond(None, None)), None);

        let values = TimestampMillisecondArray::from(vec![Some(ts_millis("2024-03-01 22:30:00")), None]);
        let out = invoke_array(&DatePart::new(DatePartKind::Minute), vec![ColumnarValue::Array(Arc::new(values))]);
        let out = out.as_primitive::<Int64Type>();
        assert_eq!(out.value(0), 30);
        assert!(out.is_null(1));
    }
}
