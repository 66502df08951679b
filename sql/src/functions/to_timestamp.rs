//! String and number to date/time conversions: `TO_TIMESTAMP`, `TO_TIMESTAMP_LTZ` and
//! `TO_DATE`.
//!
//! DataFusion has `to_timestamp` and `to_date`, but with chrono `%` formats, a nanosecond
//! result and errors on bad input; Flink takes Java patterns, returns `TIMESTAMP(3)` and
//! gives NULL for input it cannot parse. These replace them.
//!
//! - `TO_TIMESTAMP(s)`: Flink's default parser, `yyyy-M[M]-d[d][ H[H]:m[m]:s[s][.f…]]`,
//!   fraction truncated to milliseconds.
//! - `TO_TIMESTAMP(s, fmt)`: `DateTimeFormatter` pattern, strict; when that fails Flink
//!   falls back to `java.sql.Timestamp.valueOf` (or `Date.valueOf` without a space), so
//!   `'2024-03-01 10:00:00'` parses whatever the pattern says.
//! - `TO_TIMESTAMP_LTZ(n[, precision])`: epoch seconds (precision 0) or milliseconds (3,
//!   the default); out of year 0000..9999 gives NULL; other precisions fail, as in Flink
//!   (we also accept 6 and 9, truncated to milliseconds). `TO_TIMESTAMP_LTZ(s[, fmt[, tz]])`
//!   parses like `TO_TIMESTAMP` in `tz` (default UTC). Result `TIMESTAMP_LTZ(3)`.
//! - `TO_DATE(s)`: Flink's lenient `yyyy[-m[-d]]` reader (a time part is ignored, invalid
//!   dates give NULL); `TO_DATE(s, fmt)`: `SimpleDateFormat` pattern, NULL when it does
//!   not parse (Flink returns a garbage date there).

use std::sync::Arc;

use arrow::array::{AsArray, Date32Builder, TimestampMillisecondBuilder};
use arrow::datatypes::{DataType, Decimal128Type, TimeUnit};
use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::common::{
    check_arity, coerce_integer, coerce_string, finish, is_string, naive_to_unix_date, output_shape, FloatArg, IntArg,
    StrArg,
};
use super::java_datetime_format::{Dialect, Formats};
use super::java_datetime_parse::ParsedZone;
use super::java_timezone::zone_by_id;

/// Earliest instant Flink accepts: 0000-01-01 00:00:00 UTC.
const MIN_EPOCH_MILLIS: i64 = -62_167_219_200_000;
/// Latest instant Flink accepts: 9999-12-31 23:59:59.999 UTC.
const MAX_EPOCH_MILLIS: i64 = 253_402_300_799_999;

/// `TO_TIMESTAMP(string [, format])`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToTimestamp {
    signature: Signature,
}

impl ToTimestamp {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for ToTimestamp {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for ToTimestamp {
    fn name(&self) -> &str {
        "to_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("TO_TIMESTAMP", arg_types, 1, 2)?;
        Ok(arg_types.iter().map(coerce_string).collect())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.is_empty() || args.len() > 2 {
            return exec_err!("TO_TIMESTAMP expects 1 or 2 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let values = StrArg::new("TO_TIMESTAMP", &args[0])?;
        let formats = args.get(1).map(|f| StrArg::new("TO_TIMESTAMP", f)).transpose()?;
        let mut out = TimestampMillisecondBuilder::with_capacity(n);
        let mut parser = Formats::new(Dialect::DateTimeFormatter);
        for i in 0..n {
            let parsed = match (&formats, values.get(i)) {
                (_, None) => None,
                (None, Some(v)) => parse_flink_timestamp(v),
                (Some(f), Some(v)) => match f.get(i) {
                    None => None,
                    Some(fmt) => parse_with_format(&mut parser, v, fmt),
                },
            };
            out.append_option(parsed.map(|t| t.and_utc().timestamp_millis()));
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

/// `DateTimeUtils.parseTimestampData(str, format)`: the pattern, else the JDBC fallbacks.
/// An invalid pattern gives NULL (Flink wraps the call in a try/catch).
fn parse_with_format<'a>(parser: &mut Formats<'a>, value: &str, format: &'a str) -> Option<NaiveDateTime> {
    let compiled = parser.get(format);
    let parsed = match compiled.as_ref() {
        Ok(f) => f.parse(value).map(|p| p.local),
        Err(_) => return None,
    };
    parsed.or_else(|| {
        let trimmed = value.trim_matches(|c: char| c <= ' ');
        if trimmed.contains(' ') {
            java_timestamp_value_of(trimmed)
        } else {
            java_date_value_of(trimmed).map(|d| d.and_time(NaiveTime::MIN))
        }
    })
}

/// `TO_TIMESTAMP_LTZ(numeric [, precision])` and `TO_TIMESTAMP_LTZ(string [, format [, zone]])`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToTimestampLtz {
    signature: Signature,
}

impl ToTimestampLtz {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for ToTimestampLtz {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for ToTimestampLtz {
    fn name(&self) -> &str {
        "to_timestamp_ltz"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("TO_TIMESTAMP_LTZ", arg_types, 1, 3)?;
        let first = &arg_types[0];
        if is_string(first) {
            return Ok(arg_types.iter().map(coerce_string).collect());
        }
        if arg_types.len() > 2 {
            return plan_err!("TO_TIMESTAMP_LTZ(numeric, precision) takes 2 arguments");
        }
        let value = match first {
            t if t.is_integer() => DataType::Int64,
            DataType::Null => DataType::Int64,
            DataType::Decimal128(_, _) => first.clone(),
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => DataType::Decimal128(*p, *s),
            t if t.is_floating() => DataType::Float64,
            other => return plan_err!("TO_TIMESTAMP_LTZ expects a numeric or string argument, got {other}"),
        };
        let mut out = vec![value];
        if let Some(p) = arg_types.get(1) {
            out.push(coerce_integer("TO_TIMESTAMP_LTZ", p)?);
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.is_empty() || args.len() > 3 {
            return exec_err!("TO_TIMESTAMP_LTZ expects 1 to 3 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let mut out = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
        let first_type = args[0].data_type();
        if is_string(&first_type) {
            let values = StrArg::new("TO_TIMESTAMP_LTZ", &args[0])?;
            let formats = args.get(1).map(|a| StrArg::new("TO_TIMESTAMP_LTZ", a)).transpose()?;
            let zones = args.get(2).map(|a| StrArg::new("TO_TIMESTAMP_LTZ", a)).transpose()?;
            let mut parser = Formats::new(Dialect::DateTimeFormatter);
            for i in 0..n {
                let Some(v) = values.get(i) else {
                    out.append_null();
                    continue;
                };
                let local = match &formats {
                    None => parse_flink_timestamp(v),
                    Some(f) => match f.get(i) {
                        Some(fmt) => parse_with_format(&mut parser, v, fmt),
                        None => None,
                    },
                };
                let zone: Option<ParsedZone> = match &zones {
                    None => None,
                    Some(z) => match z.get(i) {
                        Some(id) => Some(zone_by_id(id)),
                        None => {
                            out.append_null();
                            continue;
                        }
                    },
                };
                let millis = local.and_then(|l| {
                    let offset = zone.map_or(0, |z| z.offset_at(&l));
                    l.checked_sub_signed(Duration::seconds(i64::from(offset)))
                        .map(|utc| utc.and_utc().timestamp_millis())
                });
                out.append_option(millis);
            }
            return finish(Arc::new(out.finish()), all_scalar);
        }

        let precisions = match args.get(1) {
            Some(p) => IntArg::new("TO_TIMESTAMP_LTZ", p)?,
            None => IntArg::Scalar(Some(3)),
        };
        enum Values<'a> {
            Int(IntArg),
            Float(FloatArg),
            Decimal(&'a arrow::array::Decimal128Array, i8),
        }
        let owned;
        let values = match &first_type {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Values::Float(FloatArg::new(&args[0])?),
            DataType::Decimal128(_, s) => {
                owned = args[0].to_array(n)?;
                Values::Decimal(owned.as_primitive::<Decimal128Type>(), *s)
            }
            _ => Values::Int(IntArg::new("TO_TIMESTAMP_LTZ", &args[0])?),
        };
        for i in 0..n {
            let Some(precision) = precisions.get(i) else {
                out.append_null();
                continue;
            };
            if !matches!(precision, 0 | 3 | 6 | 9) {
                return exec_err!(
                    "The precision value '{precision}' for function TO_TIMESTAMP_LTZ(numeric, precision) is unsupported, the supported value is '0' for second or '3' for millisecond."
                );
            }
            let millis = match &values {
                Values::Int(a) => a.get(i).and_then(|v| epoch_to_millis(v, precision)),
                Values::Float(a) => a.get(i).and_then(|v| match precision {
                    // Java's (long) cast: truncation toward zero, saturating; NaN is 0.
                    0 => {
                        let secs_ok = (MIN_EPOCH_MILLIS / 1000) as f64 <= v && v <= (MAX_EPOCH_MILLIS / 1000) as f64;
                        secs_ok.then_some((v * 1000.0) as i64)
                    }
                    3 => Some(v as i64),
                    6 => Some((v / 1000.0) as i64),
                    _ => Some((v / 1_000_000.0) as i64),
                }),
                Values::Decimal(a, scale) => (!arrow::array::Array::is_null(*a, i)).then(|| a.value(i)).and_then(|v| {
                    let whole = v / 10i128.checked_pow(u32::try_from(*scale).ok()?)?;
                    let whole = i64::try_from(whole).ok()?;
                    match precision {
                        0 => whole.checked_mul(1000),
                        3 => Some(whole),
                        6 => Some(whole / 1000),
                        _ => Some(whole / 1_000_000),
                    }
                }),
            };
            out.append_option(millis.filter(|ms| (MIN_EPOCH_MILLIS..=MAX_EPOCH_MILLIS).contains(ms)));
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

/// Epoch value at `precision` (0 = seconds, 3 = millis, 6 = micros, 9 = nanos) to millis.
fn epoch_to_millis(v: i64, precision: i64) -> Option<i64> {
    match precision {
        0 => v.checked_mul(1000),
        3 => Some(v),
        6 => Some(v.div_euclid(1000)),
        _ => Some(v.div_euclid(1_000_000)),
    }
}

/// `TO_DATE(string [, format])`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToDate {
    signature: Signature,
}

impl ToDate {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for ToDate {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for ToDate {
    fn name(&self) -> &str {
        "to_date"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("TO_DATE", arg_types, 1, 2)?;
        Ok(arg_types.iter().map(coerce_string).collect())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.is_empty() || args.len() > 2 {
            return exec_err!("TO_DATE expects 1 or 2 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let values = StrArg::new("TO_DATE", &args[0])?;
        let formats = args.get(1).map(|f| StrArg::new("TO_DATE", f)).transpose()?;
        let mut out = Date32Builder::with_capacity(n);
        let mut parser = Formats::new(Dialect::SimpleDateFormat);
        for i in 0..n {
            let days = match (values.get(i), &formats) {
                (None, _) => None,
                (Some(v), None) => parse_flink_date(v),
                (Some(v), Some(f)) => match f.get(i) {
                    None => None,
                    Some(fmt) => {
                        let compiled = parser.get(fmt);
                        let parser = match compiled.as_ref() {
                            Ok(p) => p,
                            Err(e) => return exec_err!("TO_DATE: invalid date-time pattern '{fmt}': {e}"),
                        };
                        parser.parse(v).and_then(|p| p.to_utc(None)).map(|utc| naive_to_unix_date(utc.date()))
                    }
                },
            };
            out.append_option(days.and_then(|d| i32::try_from(d).ok()));
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

/// Consumes `min..=max` ASCII digits at `*pos`.
fn take_digits(b: &[u8], pos: &mut usize, min: usize, max: usize) -> Option<i64> {
    let start = *pos;
    while *pos < b.len() && *pos - start < max && b[*pos].is_ascii_digit() {
        *pos += 1;
    }
    if *pos - start < min {
        return None;
    }
    std::str::from_utf8(&b[start..*pos]).ok()?.parse().ok()
}

fn expect(b: &[u8], pos: &mut usize, c: u8) -> Option<()> {
    (b.get(*pos) == Some(&c)).then(|| *pos += 1)
}

/// Flink's `DEFAULT_TIMESTAMP_FORMATTER`: `yyyy-[MM][M]-[dd][d]`, optionally followed by
/// ` [HH][H]:[mm][m]:[ss][s]` and a fraction of up to nine digits. Days past the end of
/// the month are clamped (the SMART resolver).
pub(crate) fn parse_flink_timestamp(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    let mut pos = 0;
    let year = take_digits(b, &mut pos, 4, 9)?;
    expect(b, &mut pos, b'-')?;
    let month = take_digits(b, &mut pos, 1, 2)?;
    expect(b, &mut pos, b'-')?;
    let day = take_digits(b, &mut pos, 1, 2)?;
    let date = clamped_date(year, month, day)?;
    if pos == b.len() {
        return Some(date.and_time(NaiveTime::MIN));
    }
    expect(b, &mut pos, b' ')?;
    let hour = take_digits(b, &mut pos, 1, 2)?;
    expect(b, &mut pos, b':')?;
    let minute = take_digits(b, &mut pos, 1, 2)?;
    expect(b, &mut pos, b':')?;
    let second = take_digits(b, &mut pos, 1, 2)?;
    let mut nanos = 0;
    if pos < b.len() {
        expect(b, &mut pos, b'.')?;
        let start = pos;
        let frac = take_digits(b, &mut pos, 0, 9).unwrap_or(0);
        nanos = frac * 10i64.pow(9 - (pos - start) as u32);
    }
    if pos != b.len() {
        return None;
    }
    let time = NaiveTime::from_hms_nano_opt(
        u32::try_from(hour).ok()?,
        u32::try_from(minute).ok()?,
        u32::try_from(second).ok()?,
        u32::try_from(nanos).ok()?,
    )?;
    Some(date.and_time(time))
}

fn clamped_date(year: i64, month: i64, day: i64) -> Option<NaiveDate> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let year = i32::try_from(year).ok()?;
    let month = month as u32;
    let mut d = day as u32;
    loop {
        if let Some(date) = NaiveDate::from_ymd_opt(year, month, d) {
            return Some(date);
        }
        d = d.checked_sub(1).filter(|d| *d >= 28)?;
    }
}

/// `yyyy-[m]m-[d]d` as `java.sql.Date.valueOf` reads it; days past the month end roll
/// over like the lenient `java.util.Date` constructor.
fn java_date_value_of(s: &str) -> Option<NaiveDate> {
    let (y, rest) = s.split_once('-')?;
    let (m, d) = rest.split_once('-')?;
    if y.len() != 4 || !(1..=2).contains(&m.len()) || !(1..=2).contains(&d.len()) {
        return None;
    }
    let (y, m, d): (i32, u32, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    NaiveDate::from_ymd_opt(y, m, 1)?.checked_add_signed(Duration::days(d - 1))
}

/// `yyyy-[m]m-[d]d hh:mm:ss[.f...]` as `java.sql.Timestamp.valueOf` reads it.
fn java_timestamp_value_of(s: &str) -> Option<NaiveDateTime> {
    let (date_s, time_s) = s.split_once(' ')?;
    let date = java_date_value_of(date_s)?;
    let (h, rest) = time_s.split_once(':')?;
    let (m, sec) = rest.split_once(':')?;
    if h.is_empty() || sec.is_empty() {
        return None;
    }
    let (sec, nanos) = match sec.split_once('.') {
        Some((sec, frac)) => {
            if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let f: i64 = frac.parse().ok()?;
            (sec, f * 10i64.pow(9 - frac.len() as u32))
        }
        None => (sec, 0),
    };
    let (h, m, sec): (i64, i64, i64) = (h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?);
    if !(0..=23).contains(&h) || !(0..=59).contains(&m) || !(0..=59).contains(&sec) {
        return None;
    }
    let time = NaiveTime::from_hms_nano_opt(h as u32, m as u32, sec as u32, nanos as u32)?;
    Some(date.and_time(time))
}

/// Flink's `DateTimeUtils.parseDate(String)`: `y[-m[-d]]` with an optional time part,
/// digits only, valid calendar dates in years 0..9999, as days since the epoch.
pub(crate) fn parse_flink_date(s: &str) -> Option<i64> {
    let s = match s.find(' ') {
        Some(i) if i > 0 => &s[..i],
        _ => s,
    };
    let int = |t: &str| -> Option<i64> {
        let t = t.trim_matches(|c: char| c <= ' ');
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let mut parts = s.splitn(3, '-');
    let y = int(parts.next()?)?;
    let m = parts.next().map_or(Some(1), int)?;
    let d = parts.next().map_or(Some(1), int)?;
    if !(0..=9999).contains(&y) {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, u32::try_from(m).ok()?, u32::try_from(d).ok()?)?;
    Some(naive_to_unix_date(date))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::common::test_util::{i, invoke, invoke_array, invoke_scalar, null_str, s, ts_millis};
    use arrow::array::{Array, StringArray};
    use arrow::datatypes::TimestampMillisecondType;
    use datafusion::common::ScalarValue;

    fn ts3(v: &str) -> ScalarValue {
        ScalarValue::TimestampMillisecond(Some(ts_millis(v)), None)
    }

    fn ltz(v: &str) -> ScalarValue {
        ScalarValue::TimestampMillisecond(Some(ts_millis(v)), Some("UTC".into()))
    }

    #[test]
    fn to_timestamp_default_format() {
        let f = ToTimestamp::new();
        assert_eq!(invoke_scalar(&f, vec![s("2024-03-01 22:30:07")]), ts3("2024-03-01 22:30:07"));
        assert_eq!(invoke_scalar(&f, vec![s("2024-03-01 22:30:07.885123")]), ts3("2024-03-01 22:30:07.885"));
        assert_eq!(invoke_scalar(&f, vec![s("2024-3-1 2:3:4")]), ts3("2024-03-01 02:03:04"));
        assert_eq!(invoke_scalar(&f, vec![s("2024-03-01")]), ts3("2024-03-01 00:00:00"));
        let null = ScalarValue::TimestampMillisecond(None, None);
        assert_eq!(invoke_scalar(&f, vec![s("2024-03-01 22:30")]), null);
        assert_eq!(invoke_scalar(&f, vec![s("2024-03-01T22:30:07")]), null);
        assert_eq!(invoke_scalar(&f, vec![s("not a date")]), null);
        assert_eq!(invoke_scalar(&f, vec![null_str()]), null);
    }

    #[test]
    fn to_timestamp_with_format() {
        let f = ToTimestamp::new();
        let run = |v: &str, fmt: &str| invoke_scalar(&f, vec![s(v), s(fmt)]);
        assert_eq!(run("01/03/2024 22:30", "dd/MM/yyyy HH:mm"), ts3("2024-03-01 22:30:00"));
        assert_eq!(run("20240301223007885", "yyyyMMddHHmmssSSS"), ts3("2024-03-01 22:30:07.885"));
        // Pattern mismatch: Flink falls back to Timestamp.valueOf.
        assert_eq!(run("2024-03-01 22:30:07", "yyyy/MM/dd"), ts3("2024-03-01 22:30:07"));
        assert_eq!(run("2024-03-01", "yyyy/MM/dd"), ts3("2024-03-01 00:00:00"));
        assert_eq!(run("garbage", "yyyy/MM/dd"), ScalarValue::TimestampMillisecond(None, None));
        assert_eq!(run("2024", "yyyy-bb"), ScalarValue::TimestampMillisecond(None, None));

        let values = StringArray::from(vec![Some("2024-03-01 00:00:01"), None, Some("x")]);
        let out = invoke_array(&f, vec![ColumnarValue::Array(Arc::new(values))]);
        let out = out.as_primitive::<TimestampMillisecondType>();
        assert_eq!(out.value(0), 1_709_251_201_000);
        assert!(out.is_null(1) && out.is_null(2));
    }

    #[test]
    fn to_timestamp_ltz_from_numbers() {
        let f = ToTimestampLtz::new();
        assert_eq!(invoke_scalar(&f, vec![i(1_709_332_207), i(0)]), ltz("2024-03-01 22:30:07"));
        assert_eq!(invoke_scalar(&f, vec![i(1_709_332_207_885), i(3)]), ltz("2024-03-01 22:30:07.885"));
        assert_eq!(invoke_scalar(&f, vec![i(1_709_332_207_885)]), ltz("2024-03-01 22:30:07.885"));
        assert_eq!(
            invoke_scalar(&f, vec![ScalarValue::Float64(Some(1_709_332_207.885)), i(0)]),
            ltz("2024-03-01 22:30:07.885")
        );
        assert_eq!(
            invoke_scalar(&f, vec![ScalarValue::Decimal128(Some(1_709_332_207_885), 13, 3), i(0)]),
            ltz("2024-03-01 22:30:07")
        );
        let null = ScalarValue::TimestampMillisecond(None, Some("UTC".into()));
        assert_eq!(invoke_scalar(&f, vec![i(i64::MAX), i(0)]), null);
        assert_eq!(invoke_scalar(&f, vec![ScalarValue::Int64(None), i(0)]), null);
        let r = invoke(&f, vec![ColumnarValue::Scalar(i(1)), ColumnarValue::Scalar(i(2))]);
        assert!(r.is_err());
    }

    #[test]
    fn to_timestamp_ltz_from_strings() {
        let f = ToTimestampLtz::new();
        assert_eq!(invoke_scalar(&f, vec![s("2024-03-01 22:30:07.885")]), ltz("2024-03-01 22:30:07.885"));
        assert_eq!(invoke_scalar(&f, vec![s("01/03/2024 22:30"), s("dd/MM/yyyy HH:mm")]), ltz("2024-03-01 22:30:00"));
        assert_eq!(
            invoke_scalar(&f, vec![s("2024-03-01 22:30:00"), s("yyyy-MM-dd HH:mm:ss"), s("Asia/Shanghai")]),
            ltz("2024-03-01 14:30:00")
        );
    }

    #[test]
    fn to_date() {
        let f = ToDate::new();
        let d = |days| ScalarValue::Date32(Some(days));
        assert_eq!(invoke_scalar(&f, vec![s("2024-03-01")]), d(19783));
        assert_eq!(invoke_scalar(&f, vec![s("2024-3-1 10:00:00")]), d(19783));
        assert_eq!(invoke_scalar(&f, vec![s("2024")]), d(19723));
        assert_eq!(invoke_scalar(&f, vec![s("2023-02-29")]), ScalarValue::Date32(None));
        assert_eq!(invoke_scalar(&f, vec![s("abc")]), ScalarValue::Date32(None));
        assert_eq!(invoke_scalar(&f, vec![s("01/03/2024"), s("dd/MM/yyyy")]), d(19783));
        assert_eq!(invoke_scalar(&f, vec![s("20240301"), s("yyyyMMdd")]), d(19783));
        assert_eq!(invoke_scalar(&f, vec![s("nope"), s("yyyyMMdd")]), ScalarValue::Date32(None));
    }
}
