//! Shared plumbing for the Flink scalar functions: typed access to arguments that may be
//! scalars or arrays, argument coercion helpers, result packaging, epoch/calendar
//! conversions, and a small bounded cache for compiled patterns.
//!
//! Every function in this folder follows the same shape: wrap each argument in one of the
//! `*Arg` views below, loop over the rows once, append to an Arrow builder, and hand the
//! array to [`finish`], which turns a one-row result back into a scalar when every input
//! was a scalar. This keeps the per-function code about the Flink semantics only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, LargeStringArray, StringArray, StringViewArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::ColumnarValue;

/// Milliseconds in a day.
pub(crate) const MILLIS_PER_DAY: i64 = 86_400_000;

/// Number of rows to compute, and whether every argument is a scalar (then the result is a
/// scalar too and exactly one row is computed).
pub(crate) fn output_shape(args: &[ColumnarValue], number_rows: usize) -> (usize, bool) {
    match args.iter().find_map(|a| match a {
        ColumnarValue::Array(arr) => Some(arr.len()),
        ColumnarValue::Scalar(_) => None,
    }) {
        Some(len) => (len, false),
        None if args.is_empty() => (number_rows.max(1), number_rows <= 1),
        None => (1, true),
    }
}

/// Packages a computed array as the function result: a scalar when all inputs were scalars.
pub(crate) fn finish(array: ArrayRef, all_scalar: bool) -> Result<ColumnarValue> {
    if all_scalar && array.len() == 1 {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

/// Checks the argument count during type coercion.
pub(crate) fn check_arity(name: &str, arg_types: &[DataType], min: usize, max: usize) -> Result<()> {
    let n = arg_types.len();
    if n < min || n > max {
        let expected = if min == max { format!("{min}") } else { format!("{min} to {max}") };
        return plan_err!("{name} expects {expected} argument(s), got {n}");
    }
    Ok(())
}

/// Whether a type is one of Arrow's string types.
pub(crate) fn is_string(dt: &DataType) -> bool {
    matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Whether a type is an integer type.
pub(crate) fn is_integer(dt: &DataType) -> bool {
    dt.is_integer()
}

/// Coercion target for a string parameter: string types stay as they are, everything else
/// (NULL literals, dictionaries, numbers) is cast to `Utf8`.
pub(crate) fn coerce_string(dt: &DataType) -> DataType {
    if is_string(dt) {
        dt.clone()
    } else {
        DataType::Utf8
    }
}

/// Coercion target for an integer parameter (`Int64`).
pub(crate) fn coerce_integer(name: &str, dt: &DataType) -> Result<DataType> {
    if is_integer(dt) || matches!(dt, DataType::Null) {
        Ok(DataType::Int64)
    } else {
        plan_err!("{name} expects an integer argument, got {dt}")
    }
}

/// Coercion target for a temporal parameter: dates and timestamps stay, strings and NULL
/// become `TIMESTAMP(3)`.
pub(crate) fn coerce_temporal(name: &str, dt: &DataType) -> Result<DataType> {
    match dt {
        DataType::Timestamp(_, _) | DataType::Date32 => Ok(dt.clone()),
        DataType::Date64 | DataType::Null => Ok(DataType::Timestamp(TimeUnit::Millisecond, None)),
        d if is_string(d) => Ok(DataType::Timestamp(TimeUnit::Millisecond, None)),
        other => plan_err!("{name} expects a DATE or TIMESTAMP argument, got {other}"),
    }
}

/// A string argument, scalar or array.
pub(crate) enum StrArg<'a> {
    Scalar(Option<&'a str>),
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> StrArg<'a> {
    pub(crate) fn new(name: &str, value: &'a ColumnarValue) -> Result<Self> {
        match value {
            ColumnarValue::Scalar(s) => match s {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                    Ok(Self::Scalar(v.as_deref()))
                }
                ScalarValue::Null => Ok(Self::Scalar(None)),
                other => exec_err!("{name} expects a string argument, got {}", other.data_type()),
            },
            ColumnarValue::Array(a) => match a.data_type() {
                DataType::Utf8 => Ok(Self::Utf8(a.as_string::<i32>())),
                DataType::LargeUtf8 => Ok(Self::LargeUtf8(a.as_string::<i64>())),
                DataType::Utf8View => Ok(Self::View(a.as_string_view())),
                DataType::Null => Ok(Self::Scalar(None)),
                other => exec_err!("{name} expects a string argument, got {other}"),
            },
        }
    }

    /// The value at row `i` (NULL as `None`).
    pub(crate) fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Self::Scalar(v) => *v,
            Self::Utf8(a) => (!a.is_null(i)).then(|| a.value(i)),
            Self::LargeUtf8(a) => (!a.is_null(i)).then(|| a.value(i)),
            Self::View(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

/// An integer argument (any integer type), scalar or array, read as `i64`.
pub(crate) enum IntArg {
    Scalar(Option<i64>),
    Array(Int64Array),
}

impl IntArg {
    pub(crate) fn new(name: &str, value: &ColumnarValue) -> Result<Self> {
        match value {
            ColumnarValue::Scalar(s) => {
                if s.is_null() {
                    return Ok(Self::Scalar(None));
                }
                if !s.data_type().is_integer() {
                    return exec_err!("{name} expects an integer argument, got {}", s.data_type());
                }
                match s.cast_to(&DataType::Int64)? {
                    ScalarValue::Int64(v) => Ok(Self::Scalar(v)),
                    other => exec_err!("{name}: cannot read {other} as an integer"),
                }
            }
            ColumnarValue::Array(a) => {
                if !(a.data_type().is_integer() || a.data_type() == &DataType::Null) {
                    return exec_err!("{name} expects an integer argument, got {}", a.data_type());
                }
                let casted = cast(a, &DataType::Int64)?;
                Ok(Self::Array(casted.as_primitive().clone()))
            }
        }
    }

    pub(crate) fn get(&self, i: usize) -> Option<i64> {
        match self {
            Self::Scalar(v) => *v,
            Self::Array(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

/// A floating point argument, scalar or array, read as `f64`.
pub(crate) enum FloatArg {
    Scalar(Option<f64>),
    Array(Float64Array),
}

impl FloatArg {
    pub(crate) fn new(value: &ColumnarValue) -> Result<Self> {
        match value {
            ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Float64)? {
                ScalarValue::Float64(v) => Ok(Self::Scalar(v)),
                other => exec_err!("cannot read {other} as a double"),
            },
            ColumnarValue::Array(a) => {
                let casted = cast(a, &DataType::Float64)?;
                Ok(Self::Array(casted.as_primitive().clone()))
            }
        }
    }

    pub(crate) fn get(&self, i: usize) -> Option<f64> {
        match self {
            Self::Scalar(v) => *v,
            Self::Array(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

/// The physical representation of a temporal argument.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TemporalKind {
    /// Days since the epoch (`DATE`).
    Date,
    /// Epoch value in the given unit; a zone means `TIMESTAMP_LTZ` (an instant).
    Timestamp(TimeUnit, Option<Arc<str>>),
}

impl TemporalKind {
    /// Epoch milliseconds of a raw value (floor for sub-millisecond units), `None` on overflow.
    pub(crate) fn to_millis(&self, v: i64) -> Option<i64> {
        match self {
            Self::Date => v.checked_mul(MILLIS_PER_DAY),
            Self::Timestamp(TimeUnit::Second, _) => v.checked_mul(1000),
            Self::Timestamp(TimeUnit::Millisecond, _) => Some(v),
            Self::Timestamp(TimeUnit::Microsecond, _) => Some(v.div_euclid(1000)),
            Self::Timestamp(TimeUnit::Nanosecond, _) => Some(v.div_euclid(1_000_000)),
        }
    }

    /// Raw value of this kind for epoch milliseconds (floor to days/seconds).
    pub(crate) fn millis_to_raw(&self, ms: i64) -> Option<i64> {
        match self {
            Self::Date => Some(ms.div_euclid(MILLIS_PER_DAY)),
            Self::Timestamp(TimeUnit::Second, _) => Some(ms.div_euclid(1000)),
            Self::Timestamp(TimeUnit::Millisecond, _) => Some(ms),
            Self::Timestamp(TimeUnit::Microsecond, _) => ms.checked_mul(1000),
            Self::Timestamp(TimeUnit::Nanosecond, _) => ms.checked_mul(1_000_000),
        }
    }

    /// The UTC date-time of a raw value, with full sub-second precision.
    pub(crate) fn to_naive_utc(&self, v: i64) -> Option<NaiveDateTime> {
        let (secs, nanos) = match self {
            Self::Date => (v.checked_mul(86_400)?, 0),
            Self::Timestamp(TimeUnit::Second, _) => (v, 0),
            Self::Timestamp(TimeUnit::Millisecond, _) => (v.div_euclid(1000), v.rem_euclid(1000) * 1_000_000),
            Self::Timestamp(TimeUnit::Microsecond, _) => (v.div_euclid(1_000_000), v.rem_euclid(1_000_000) * 1000),
            Self::Timestamp(TimeUnit::Nanosecond, _) => (v.div_euclid(1_000_000_000), v.rem_euclid(1_000_000_000)),
        };
        DateTime::from_timestamp(secs, u32::try_from(nanos).ok()?).map(|d| d.naive_utc())
    }

    /// The zone of a `TIMESTAMP_LTZ` value, if any.
    pub(crate) fn zone(&self) -> Option<&str> {
        match self {
            Self::Timestamp(_, Some(tz)) => Some(tz),
            _ => None,
        }
    }
}

/// A `DATE` or `TIMESTAMP` argument, scalar or array, read as raw `i64` values.
pub(crate) struct TemporalArg {
    pub(crate) kind: TemporalKind,
    values: IntValues,
}

enum IntValues {
    Scalar(Option<i64>),
    Array(Int64Array),
}

impl TemporalArg {
    pub(crate) fn new(name: &str, value: &ColumnarValue) -> Result<Self> {
        let dt = value.data_type();
        let kind = match &dt {
            DataType::Date32 => TemporalKind::Date,
            DataType::Date64 => TemporalKind::Timestamp(TimeUnit::Millisecond, None),
            DataType::Timestamp(unit, tz) => TemporalKind::Timestamp(*unit, tz.clone()),
            DataType::Null => TemporalKind::Timestamp(TimeUnit::Millisecond, None),
            other => return exec_err!("{name} expects a DATE or TIMESTAMP argument, got {other}"),
        };
        let values = match value {
            ColumnarValue::Scalar(s) => IntValues::Scalar(match s {
                ScalarValue::Date32(v) => v.map(i64::from),
                ScalarValue::Date64(v)
                | ScalarValue::TimestampSecond(v, _)
                | ScalarValue::TimestampMillisecond(v, _)
                | ScalarValue::TimestampMicrosecond(v, _)
                | ScalarValue::TimestampNanosecond(v, _) => *v,
                _ => None,
            }),
            ColumnarValue::Array(a) => {
                let ints = match a.data_type() {
                    DataType::Date32 => cast(&cast(a, &DataType::Int32)?, &DataType::Int64)?,
                    DataType::Null => cast(a, &DataType::Int64)?,
                    _ => cast(a, &DataType::Int64)?,
                };
                IntValues::Array(ints.as_primitive().clone())
            }
        };
        Ok(Self { kind, values })
    }

    /// The raw value at row `i`.
    pub(crate) fn get(&self, i: usize) -> Option<i64> {
        match &self.values {
            IntValues::Scalar(v) => *v,
            IntValues::Array(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

/// Days since 1970-01-01 of a calendar date, computed like Flink's `ymdToUnixDate` (the
/// Julian day formula); months past 12 roll into the next year, as Flink relies on.
pub(crate) fn ymd_to_unix_date(year: i64, month: i64, day: i64) -> i64 {
    let a = (14 - month) / 12;
    let y = year + 4800 - a;
    let m = month + 12 * a - 3;
    let julian = day + (153 * m + 2) / 5 + 365 * y + y / 4 - y / 100 + y / 400 - 32045;
    julian - 2_440_588
}

/// Calendar date of days since 1970-01-01.
pub(crate) fn unix_date_to_naive(days: i64) -> Option<NaiveDate> {
    let days = i32::try_from(days.checked_add(719_163)?).ok()?;
    NaiveDate::from_num_days_from_ce_opt(days)
}

/// Days since 1970-01-01 of a calendar date.
pub(crate) fn naive_to_unix_date(date: NaiveDate) -> i64 {
    i64::from(date.num_days_from_ce()) - 719_163
}

/// A bounded map from pattern text to its compiled form, shared by all invocations of a
/// function, so each distinct pattern is compiled once rather than once per row or batch.
/// When full it is simply cleared: patterns are nearly always literals, so this only
/// matters for pathological per-row patterns.
pub(crate) struct PatternCache<T> {
    map: Mutex<HashMap<String, Arc<T>>>,
    capacity: usize,
}

impl<T> PatternCache<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { map: Mutex::new(HashMap::new()), capacity }
    }

    /// The compiled form of `key`, compiling it with `make` on a miss.
    pub(crate) fn get(&self, key: &str, make: impl FnOnce(&str) -> T) -> Arc<T> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = map.get(key) {
            return Arc::clone(v);
        }
        if map.len() >= self.capacity {
            map.clear();
        }
        let v = Arc::new(make(key));
        map.insert(key.to_string(), Arc::clone(&v));
        v
    }
}

/// Remembers the last pattern looked up during one batch so that a column of identical
/// patterns costs one cache lookup, not one per row.
pub(crate) struct LastPattern<'a, T> {
    last: Option<(&'a str, Arc<T>)>,
}

impl<'a, T> LastPattern<'a, T> {
    pub(crate) fn new() -> Self {
        Self { last: None }
    }

    pub(crate) fn get(&mut self, cache: &PatternCache<T>, key: &'a str, make: impl FnOnce(&str) -> T) -> Arc<T> {
        self.get_with(key, |key| cache.get(key, make))
    }

    /// As [`LastPattern::get`], looking a new pattern up with `lookup`.
    pub(crate) fn get_with(&mut self, key: &'a str, lookup: impl FnOnce(&str) -> Arc<T>) -> Arc<T> {
        if let Some((k, v)) = &self.last {
            if *k == key {
                return Arc::clone(v);
            }
        }
        let v = lookup(key);
        self.last = Some((key, Arc::clone(&v)));
        v
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers to invoke a UDF on columnar values in unit tests.

    use std::sync::Arc;

    use arrow::array::ArrayRef;
    use arrow::datatypes::Field;
    use datafusion::common::config::ConfigOptions;
    use datafusion::common::{Result, ScalarValue};
    use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl};

    /// Coerces argument types like the planner would, derives the return field, and
    /// invokes the function.
    pub(crate) fn invoke(udf: &dyn ScalarUDFImpl, args: Vec<ColumnarValue>) -> Result<ColumnarValue> {
        let number_rows = args
            .iter()
            .find_map(|a| match a {
                ColumnarValue::Array(arr) => Some(arr.len()),
                ColumnarValue::Scalar(_) => None,
            })
            .unwrap_or(1);
        let arg_fields: Vec<_> =
            args.iter().enumerate().map(|(i, a)| Arc::new(Field::new(format!("a{i}"), a.data_type(), true))).collect();
        let scalars: Vec<Option<&ScalarValue>> = args
            .iter()
            .map(|a| match a {
                ColumnarValue::Scalar(s) => Some(s),
                ColumnarValue::Array(_) => None,
            })
            .collect();
        let return_field =
            udf.return_field_from_args(ReturnFieldArgs { arg_fields: &arg_fields, scalar_arguments: &scalars })?;
        udf.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows,
            return_field,
            config_options: Arc::new(ConfigOptions::default()),
        })
    }

    /// Invokes and returns the result as an array.
    pub(crate) fn invoke_array(udf: &dyn ScalarUDFImpl, args: Vec<ColumnarValue>) -> ArrayRef {
        let n = args
            .iter()
            .find_map(|a| match a {
                ColumnarValue::Array(arr) => Some(arr.len()),
                ColumnarValue::Scalar(_) => None,
            })
            .unwrap_or(1);
        invoke(udf, args).unwrap().into_array(n).unwrap()
    }

    /// Invokes on scalars and returns the scalar result.
    pub(crate) fn invoke_scalar(udf: &dyn ScalarUDFImpl, args: Vec<ScalarValue>) -> ScalarValue {
        let args = args.into_iter().map(ColumnarValue::Scalar).collect();
        match invoke(udf, args).unwrap() {
            ColumnarValue::Scalar(s) => s,
            ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0).unwrap(),
        }
    }

    pub(crate) fn s(v: &str) -> ScalarValue {
        ScalarValue::Utf8(Some(v.to_string()))
    }

    pub(crate) fn null_str() -> ScalarValue {
        ScalarValue::Utf8(None)
    }

    pub(crate) fn i(v: i64) -> ScalarValue {
        ScalarValue::Int64(Some(v))
    }

    /// A `TIMESTAMP(3)` scalar from 'yyyy-MM-dd HH:mm:ss[.SSS]'.
    pub(crate) fn ts(v: &str) -> ScalarValue {
        ScalarValue::TimestampMillisecond(Some(ts_millis(v)), None)
    }

    pub(crate) fn ts_millis(v: &str) -> i64 {
        let fmt = if v.contains('.') { "%Y-%m-%d %H:%M:%S%.f" } else { "%Y-%m-%d %H:%M:%S" };
        chrono::NaiveDateTime::parse_from_str(v, fmt).unwrap().and_utc().timestamp_millis()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_date_round_trip() {
        assert_eq!(ymd_to_unix_date(1970, 1, 1), 0);
        assert_eq!(ymd_to_unix_date(2024, 3, 1), 19783);
        // Month 13 is January of the next year.
        assert_eq!(ymd_to_unix_date(2023, 13, 1), ymd_to_unix_date(2024, 1, 1));
        let d = unix_date_to_naive(19783).unwrap();
        assert_eq!(d, NaiveDate::from_ymd_opt(2024, 3, 1).unwrap());
        assert_eq!(naive_to_unix_date(d), 19783);
    }

    #[test]
    fn temporal_kind_conversions() {
        let k = TemporalKind::Timestamp(TimeUnit::Microsecond, None);
        assert_eq!(k.to_millis(-1), Some(-1));
        assert_eq!(k.millis_to_raw(5), Some(5000));
        let dt = k.to_naive_utc(1_500_000).unwrap();
        assert_eq!(dt.to_string(), "1970-01-01 00:00:01.500");
    }
}
