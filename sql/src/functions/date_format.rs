//! `DATE_FORMAT(value, pattern)`: formats a timestamp, date or timestamp string with a Java
//! date-time pattern.
//!
//! DataFusion's `date_format` is an alias of `to_char`, which takes chrono `%` patterns;
//! Flink queries use Java patterns, so this replaces it. Flink picks the Java engine by the
//! type of the first argument, and so do we:
//! - `TIMESTAMP` / `TIMESTAMP_LTZ`: `DateTimeFormatter` (the LTZ value is shown in its zone);
//! - `DATE`: `SimpleDateFormat` at midnight;
//! - `STRING`: parsed with `SimpleDateFormat("yyyy-MM-dd HH:mm:ss")` — leniently, so a
//!   trailing `.SSS` is ignored and milliseconds are lost, exactly as in Flink — then
//!   formatted with `SimpleDateFormat`. Unparseable strings give NULL.
//!
//! An invalid pattern fails the query, as Java's `IllegalArgumentException` fails the job.

use arrow::array::StringBuilder;
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use std::sync::Arc;

use super::common::{check_arity, coerce_string, finish, output_shape, StrArg, TemporalArg, TemporalKind};
use super::java_datetime_format::{Dialect, Formats, JavaDateFormat};
use super::java_timezone::arrow_zone;

/// The `DATE_FORMAT` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateFormat {
    signature: Signature,
}

impl DateFormat {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for DateFormat {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("DATE_FORMAT", arg_types, 2, 2)?;
        let value = match &arg_types[0] {
            t @ (DataType::Timestamp(_, _) | DataType::Date32) => t.clone(),
            DataType::Date64 => DataType::Timestamp(TimeUnit::Millisecond, None),
            t => coerce_string(t),
        };
        Ok(vec![value, coerce_string(&arg_types[1])])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.len() != 2 {
            return exec_err!("DATE_FORMAT expects 2 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let patterns = StrArg::new("DATE_FORMAT", &args[1])?;
        let mut out = StringBuilder::with_capacity(n, n * 20);
        match args[0].data_type() {
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
                let values = TemporalArg::new("DATE_FORMAT", &args[0])?;
                format_temporal(&values, &patterns, n, &mut out)?;
            }
            _ => {
                let values = StrArg::new("DATE_FORMAT", &args[0])?;
                format_strings(&values, &patterns, n, &mut out)?;
            }
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

fn compiled_or_err<'f>(p: &str, compiled: &'f Result<JavaDateFormat, String>) -> Result<&'f JavaDateFormat> {
    match compiled {
        Ok(f) => Ok(f),
        Err(e) => exec_err!("DATE_FORMAT: invalid date-time pattern '{p}': {e}"),
    }
}

fn format_temporal(values: &TemporalArg, patterns: &StrArg, n: usize, out: &mut StringBuilder) -> Result<()> {
    let dialect = match values.kind {
        TemporalKind::Date => Dialect::SimpleDateFormat,
        TemporalKind::Timestamp(_, _) => Dialect::DateTimeFormatter,
    };
    let zone = values.kind.zone().map(arrow_zone);
    let mut formats = Formats::new(dialect);
    // Rows in time order repeat values (a stream has many events per millisecond): a row
    // with the last row's value and pattern takes its text instead of formatting again.
    let mut last: Option<(i64, &str)> = None;
    let mut last_text = String::new();
    for i in 0..n {
        let (Some(v), Some(p)) = (values.get(i), patterns.get(i)) else {
            out.append_null();
            continue;
        };
        if last == Some((v, p)) {
            out.append_value(&last_text);
            continue;
        }
        last = None;
        let compiled = formats.get(p);
        let fmt = compiled_or_err(p, &compiled)?;
        let Some(utc) = values.kind.to_naive_utc(v) else {
            out.append_null();
            continue;
        };
        let offset = zone.as_ref().map_or(0, |z| z.offset_at_utc(&utc));
        match utc.checked_add_signed(chrono::Duration::seconds(i64::from(offset))) {
            Some(local) => {
                last_text = fmt.format(&local, offset);
                out.append_value(&last_text);
                last = Some((v, p));
            }
            None => out.append_null(),
        }
    }
    Ok(())
}

fn format_strings(values: &StrArg, patterns: &StrArg, n: usize, out: &mut StringBuilder) -> Result<()> {
    let mut parsers = Formats::new(Dialect::SimpleDateFormat);
    let mut formats = Formats::new(Dialect::SimpleDateFormat);
    for i in 0..n {
        let (Some(v), Some(p)) = (values.get(i), patterns.get(i)) else {
            out.append_null();
            continue;
        };
        let compiled = formats.get(p);
        let fmt = compiled_or_err(p, &compiled)?;
        let parser = parsers.get("yyyy-MM-dd HH:mm:ss");
        match (*parser).as_ref().ok().and_then(|parser| parser.parse(v)) {
            Some(parsed) => out.append_value(fmt.format(&parsed.local, 0)),
            None => out.append_null(),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::common::test_util::{invoke, invoke_array, invoke_scalar, null_str, s, ts, ts_millis};
    use arrow::array::{Array, AsArray, TimestampMillisecondArray};
    use datafusion::common::ScalarValue;

    fn fmt(value: ScalarValue, pattern: &str) -> ScalarValue {
        invoke_scalar(&DateFormat::new(), vec![value, s(pattern)])
    }

    #[test]
    fn formats_timestamps() {
        let v = ts("2024-03-01 22:30:07.885");
        assert_eq!(fmt(v.clone(), "yyyy-MM-dd HH:mm"), s("2024-03-01 22:30"));
        assert_eq!(fmt(v.clone(), "yyyy-MM-dd HH:mm:ss.SSS"), s("2024-03-01 22:30:07.885"));
        assert_eq!(fmt(v.clone(), "EEE dd MMM yyyy hh:mm:ss a"), s("Fri 01 Mar 2024 10:30:07 PM"));
        assert_eq!(fmt(v, "yyyyMMdd'T'HHmmss"), s("20240301T223007"));
        let micros = ScalarValue::TimestampMicrosecond(Some(ts_millis("2024-03-01 22:30:07.885") * 1000 + 123), None);
        assert_eq!(fmt(micros, "ss.SSSSSS"), s("07.885123"));
    }

    #[test]
    fn formats_ltz_in_its_zone_and_dates() {
        let ltz = ScalarValue::TimestampMillisecond(Some(ts_millis("2024-03-01 22:30:07.885")), Some("UTC".into()));
        assert_eq!(fmt(ltz, "yyyy-MM-dd HH:mm:ss"), s("2024-03-01 22:30:07"));
        let shanghai =
            ScalarValue::TimestampMillisecond(Some(ts_millis("2024-03-01 22:30:07.885")), Some("+08:00".into()));
        assert_eq!(fmt(shanghai, "yyyy-MM-dd HH:mm XXX"), s("2024-03-02 06:30 +08:00"));
        let date = ScalarValue::Date32(Some(19783));
        assert_eq!(fmt(date, "yyyy/MM/dd HH:mm"), s("2024/03/01 00:00"));
    }

    #[test]
    fn formats_strings_like_simple_date_format() {
        assert_eq!(fmt(s("2024-03-01 22:30:07.885"), "yyyy-MM-dd HH:mm:ss.SSS"), s("2024-03-01 22:30:07.000"));
        assert_eq!(fmt(s("2024-03-01 22:30:07"), "MM/dd/yy"), s("03/01/24"));
        assert_eq!(fmt(s("2024-03-01"), "yyyy"), null_str());
        assert_eq!(fmt(s("garbage"), "yyyy"), null_str());
    }

    #[test]
    fn handles_arrays_and_nulls() {
        let values = TimestampMillisecondArray::from(vec![
            Some(ts_millis("2024-03-01 22:30:07.885")),
            None,
            Some(ts_millis("1969-12-31 23:59:59.999")),
        ]);
        let out = invoke_array(
            &DateFormat::new(),
            vec![ColumnarValue::Array(Arc::new(values)), ColumnarValue::Scalar(s("yyyy-MM-dd HH:mm:ss.SSS"))],
        );
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), "2024-03-01 22:30:07.885");
        assert!(out.is_null(1));
        assert_eq!(out.value(2), "1969-12-31 23:59:59.999");
        assert_eq!(fmt(ts("2024-03-01 00:00:00"), "yyyy").data_type(), DataType::Utf8);
        // Repeated values (the last row's text is reused), then others, nulls between.
        let t = ts_millis("2024-03-01 22:30:07.885");
        let repeated = TimestampMillisecondArray::from(vec![Some(t), Some(t), None, Some(t), Some(t + 60_000), Some(t)]);
        let out = invoke_array(
            &DateFormat::new(),
            vec![ColumnarValue::Array(Arc::new(repeated)), ColumnarValue::Scalar(s("HH:mm"))],
        );
        let out: Vec<Option<&str>> = out.as_string::<i32>().iter().collect();
        assert_eq!(out, [Some("22:30"), Some("22:30"), None, Some("22:30"), Some("22:31"), Some("22:30")]);
        assert_eq!(invoke_scalar(&DateFormat::new(), vec![ts("2024-03-01 00:00:00"), null_str()]), null_str());
    }

    #[test]
    fn invalid_pattern_is_an_error() {
        let r = invoke(
            &DateFormat::new(),
            vec![ColumnarValue::Scalar(ts("2024-03-01 00:00:00")), ColumnarValue::Scalar(s("yyyy-bb"))],
        );
        assert!(r.unwrap_err().to_string().contains("Unknown pattern letter: b"));
    }
}
