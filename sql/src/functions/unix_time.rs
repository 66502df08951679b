//! `UNIX_TIMESTAMP`, `FROM_UNIXTIME` and `CONVERT_TZ`: epoch seconds to and from strings
//! with `SimpleDateFormat` patterns (default `yyyy-MM-dd HH:mm:ss`) in the session time
//! zone, which is UTC for now.
//!
//! - `UNIX_TIMESTAMP()`: the current epoch second (volatile). `UNIX_TIMESTAMP(s [, fmt])`:
//!   `s` parsed leniently (trailing text ignored; a zone in the text, read by `z`/`Z`/`X`,
//!   wins over the session zone); when it cannot be parsed Flink returns
//!   `Long.MIN_VALUE` (-9223372036854775808), not NULL, and so do we.
//!   `UNIX_TIMESTAMP(ts)` is the timestamp's epoch second. DataFusion has no such function.
//! - `FROM_UNIXTIME(seconds [, fmt])`: a string. DataFusion's `from_unixtime` returns a
//!   timestamp, so this replaces it.
//! - `CONVERT_TZ(s, from_tz, to_tz)`: re-renders a `yyyy-MM-dd HH:mm:ss` string from one
//!   Java zone id to another (unknown ids mean GMT, as in Java); NULL if unparseable.
//!
//! Invalid patterns fail the query, as `new SimpleDateFormat(pattern)` throws in Flink.

use std::sync::Arc;

use arrow::array::{Int64Builder, StringBuilder};
use arrow::datatypes::DataType;
use chrono::{DateTime, Duration};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::common::{check_arity, coerce_string, finish, is_string, output_shape, IntArg, StrArg, TemporalArg};
use super::java_datetime_format::{Dialect, Formats, JavaDateFormat};
use super::java_timezone::zone_by_id;

/// Flink's default timestamp pattern.
const DEFAULT_PATTERN: &str = "yyyy-MM-dd HH:mm:ss";

fn compiled<'f>(name: &str, p: &str, c: &'f Result<JavaDateFormat, String>) -> Result<&'f JavaDateFormat> {
    match c {
        Ok(f) => Ok(f),
        Err(e) => exec_err!("{name}: invalid date-time pattern '{p}': {e}"),
    }
}

/// The `UNIX_TIMESTAMP` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UnixTimestamp {
    signature: Signature,
}

impl UnixTimestamp {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Volatile) }
    }
}

impl Default for UnixTimestamp {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for UnixTimestamp {
    fn name(&self) -> &str {
        "unix_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("UNIX_TIMESTAMP", arg_types, 0, 2)?;
        match arg_types {
            [t @ (DataType::Timestamp(_, _) | DataType::Date32)] => Ok(vec![t.clone()]),
            [t, ..] if t.is_numeric() => {
                plan_err!("UNIX_TIMESTAMP expects a string or timestamp, got {t}")
            }
            _ => Ok(arg_types.iter().map(coerce_string).collect()),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let number_rows = args.number_rows;
        let args = &args.args;
        if args.is_empty() {
            let now = chrono::Utc::now().timestamp_millis() / 1000;
            return Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::Int64(Some(now))));
        }
        let (n, all_scalar) = output_shape(args, number_rows);
        let mut out = Int64Builder::with_capacity(n);
        if !is_string(&args[0].data_type()) && args[0].data_type() != DataType::Null {
            let values = TemporalArg::new("UNIX_TIMESTAMP", &args[0])?;
            for i in 0..n {
                out.append_option(values.get(i).and_then(|v| values.kind.to_millis(v)).map(|ms| ms / 1000));
            }
            return finish(Arc::new(out.finish()), all_scalar);
        }
        let values = StrArg::new("UNIX_TIMESTAMP", &args[0])?;
        let patterns = match args.get(1) {
            Some(p) => StrArg::new("UNIX_TIMESTAMP", p)?,
            None => StrArg::Scalar(Some(DEFAULT_PATTERN)),
        };
        let mut formats = Formats::new(Dialect::SimpleDateFormat);
        for i in 0..n {
            let (Some(v), Some(p)) = (values.get(i), patterns.get(i)) else {
                out.append_null();
                continue;
            };
            let c = formats.get(p);
            let fmt = compiled("UNIX_TIMESTAMP", p, &c)?;
            let secs = fmt
                .parse(v)
                .and_then(|parsed| parsed.to_utc(None))
                .map(|utc| utc.and_utc().timestamp_millis() / 1000)
                .unwrap_or(i64::MIN);
            out.append_value(secs);
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

/// The `FROM_UNIXTIME` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FromUnixtime {
    signature: Signature,
}

impl FromUnixtime {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for FromUnixtime {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for FromUnixtime {
    fn name(&self) -> &str {
        "from_unixtime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("FROM_UNIXTIME", arg_types, 1, 2)?;
        let first = &arg_types[0];
        if !(first.is_numeric() || *first == DataType::Null) {
            return plan_err!("FROM_UNIXTIME expects a numeric argument, got {first}");
        }
        let mut out = vec![DataType::Int64];
        if let Some(t) = arg_types.get(1) {
            out.push(coerce_string(t));
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.is_empty() || args.len() > 2 {
            return exec_err!("FROM_UNIXTIME expects 1 or 2 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let values = IntArg::new("FROM_UNIXTIME", &args[0])?;
        let patterns = match args.get(1) {
            Some(p) => StrArg::new("FROM_UNIXTIME", p)?,
            None => StrArg::Scalar(Some(DEFAULT_PATTERN)),
        };
        let mut formats = Formats::new(Dialect::SimpleDateFormat);
        let mut out = StringBuilder::with_capacity(n, n * 19);
        for i in 0..n {
            let (Some(secs), Some(p)) = (values.get(i), patterns.get(i)) else {
                out.append_null();
                continue;
            };
            let c = formats.get(p);
            let fmt = compiled("FROM_UNIXTIME", p, &c)?;
            let utc = secs.checked_mul(1000).and_then(DateTime::from_timestamp_millis).map(|d| d.naive_utc());
            out.append_option(utc.map(|t| fmt.format(&t, 0)));
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

/// The `CONVERT_TZ` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ConvertTz {
    signature: Signature,
}

impl ConvertTz {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for ConvertTz {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for ConvertTz {
    fn name(&self) -> &str {
        "convert_tz"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("CONVERT_TZ", arg_types, 3, 3)?;
        Ok(arg_types.iter().map(coerce_string).collect())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.len() != 3 {
            return exec_err!("CONVERT_TZ expects 3 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let values = StrArg::new("CONVERT_TZ", &args[0])?;
        let from = StrArg::new("CONVERT_TZ", &args[1])?;
        let to = StrArg::new("CONVERT_TZ", &args[2])?;
        let mut formats = Formats::new(Dialect::SimpleDateFormat);
        let c = formats.get(DEFAULT_PATTERN);
        let fmt = compiled("CONVERT_TZ", DEFAULT_PATTERN, &c)?;
        let mut out = StringBuilder::with_capacity(n, n * 19);
        for i in 0..n {
            let (Some(v), Some(from), Some(to)) = (values.get(i), from.get(i), to.get(i)) else {
                out.append_null();
                continue;
            };
            let (from, to) = (zone_by_id(from), zone_by_id(to));
            let converted = fmt.parse(v).and_then(|p| p.to_utc(Some(&from))).and_then(|utc| {
                let offset = to.offset_at_utc(&utc);
                let local = utc.checked_add_signed(Duration::seconds(i64::from(offset)))?;
                Some(fmt.format(&local, offset))
            });
            out.append_option(converted);
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::common::test_util::{i, invoke, invoke_scalar, null_str, s, ts};
    use datafusion::common::ScalarValue;

    fn big(v: i64) -> ScalarValue {
        ScalarValue::Int64(Some(v))
    }

    #[test]
    fn unix_timestamp_parses_strings() {
        let f = UnixTimestamp::new();
        assert_eq!(invoke_scalar(&f, vec![s("1970-01-01 00:00:44")]), big(44));
        assert_eq!(invoke_scalar(&f, vec![s("2024-03-01 22:30:07")]), big(1_709_332_207));
        assert_eq!(invoke_scalar(&f, vec![s("2024-03-01 22:30:07.885")]), big(1_709_332_207));
        assert_eq!(invoke_scalar(&f, vec![s("2024/03/01"), s("yyyy/MM/dd")]), big(1_709_251_200));
        assert_eq!(invoke_scalar(&f, vec![s("1970-01-01 08:00:01.001 +0800"), s("yyyy-MM-dd HH:mm:ss.SSS X")]), big(1));
        assert_eq!(invoke_scalar(&f, vec![s("2024-03-01")]), big(i64::MIN));
        assert_eq!(invoke_scalar(&f, vec![null_str()]), ScalarValue::Int64(None));
        assert_eq!(invoke_scalar(&f, vec![ts("2024-03-01 22:30:07.885")]), big(1_709_332_207));
        match invoke(&f, vec![]).unwrap() {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(now))) => assert!(now > 1_700_000_000),
            other => panic!("unexpected {other:?}"),
        }
        assert!(invoke(&f, vec![ColumnarValue::Scalar(s("x")), ColumnarValue::Scalar(s("yyyy-T"))]).is_err());
    }

    #[test]
    fn from_unixtime_formats() {
        let f = FromUnixtime::new();
        assert_eq!(invoke_scalar(&f, vec![i(44)]), s("1970-01-01 00:00:44"));
        assert_eq!(invoke_scalar(&f, vec![i(1_709_332_207)]), s("2024-03-01 22:30:07"));
        assert_eq!(invoke_scalar(&f, vec![i(1_709_332_207), s("yyyyMMdd HH")]), s("20240301 22"));
        assert_eq!(invoke_scalar(&f, vec![i(-1)]), s("1969-12-31 23:59:59"));
        assert_eq!(invoke_scalar(&f, vec![ScalarValue::Int64(None)]), null_str());
        assert_eq!(invoke_scalar(&f, vec![i(i64::MAX)]), null_str());
    }

    #[test]
    fn convert_tz_between_zones() {
        let f = ConvertTz::new();
        let run = |v: &str, a: &str, b: &str| invoke_scalar(&f, vec![s(v), s(a), s(b)]);
        assert_eq!(run("1970-01-01 00:00:00", "UTC", "America/Los_Angeles"), s("1969-12-31 16:00:00"));
        assert_eq!(run("2024-03-01 12:00:00", "Asia/Shanghai", "UTC"), s("2024-03-01 04:00:00"));
        assert_eq!(run("2024-07-01 12:00:00", "UTC", "PST"), s("2024-07-01 05:00:00"));
        assert_eq!(run("2024-03-01 12:00:00", "GMT+08:00", "GMT-01:00"), s("2024-03-01 03:00:00"));
        assert_eq!(run("2024-03-01 12:00:00", "Nowhere", "UTC"), s("2024-03-01 12:00:00"));
        assert_eq!(run("garbage", "UTC", "UTC"), null_str());
    }
}
