//! `ROUND(x [, d])` with Flink's rounding: HALF_UP on the *decimal* value.
//!
//! DataFusion's `round` scales the binary double and rounds it, so `ROUND(1.15, 1)` is 1.1
//! (1.15 is stored as 1.149999...). Flink rounds `BigDecimal.valueOf(x)` — the shortest
//! decimal string that reads back as `x` — half away from zero, so `ROUND(1.15, 1)` is
//! 1.2, `ROUND(2.675, 2)` is 2.68 and `ROUND(-2.25, 1)` is -2.3. This replaces it:
//! - `DOUBLE`: as above; `FLOAT` is widened to double first (as Flink does, so
//!   `ROUND(CAST(1.15 AS FLOAT), 1)` is 1.1). NaN and infinities fail like
//!   `BigDecimal.valueOf` does;
//! - integers: unchanged for `d >= 0`, otherwise rounded to tens, hundreds, ... and
//!   narrowed back to the input type with Java's wrap-around;
//! - `DECIMAL(p, s)`: half-up to `d` places; with a literal `d` the result type is Flink's
//!   `DECIMAL(1 + p - s + d, d)` (or `DECIMAL(p, s)` when `d >= s`, `DECIMAL(1 + p - s, 0)`
//!   when `d < 0`); NULL if the result does not fit.
//!
//! `ROUND(x)` is `ROUND(x, 0)`. NULL in, NULL out.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Decimal128Builder, Float32Builder, Float64Builder, PrimitiveBuilder};
use arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int16Type, Int32Type, Int64Type, Int8Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::common::{check_arity, coerce_integer, finish, output_shape, FloatArg, IntArg};

/// The `ROUND` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Round {
    signature: Signature,
}

impl Round {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for Round {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for Round {
    fn name(&self) -> &str {
        "round"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("ROUND", arg_types, 1, 2)?;
        let x = match &arg_types[0] {
            t @ (DataType::Float64
            | DataType::Float32
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Decimal128(_, _)) => t.clone(),
            DataType::Float16 => DataType::Float32,
            DataType::UInt8 => DataType::Int16,
            DataType::UInt16 => DataType::Int32,
            DataType::UInt32 | DataType::UInt64 => DataType::Int64,
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => DataType::Decimal128(*p, *s),
            DataType::Decimal256(p, s) if *p <= 38 => DataType::Decimal128(*p, *s),
            DataType::Null | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Float64,
            other => return plan_err!("ROUND expects a numeric argument, got {other}"),
        };
        let mut out = vec![x];
        if let Some(d) = arg_types.get(1) {
            out.push(coerce_integer("ROUND", d)?);
        }
        Ok(out)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(t) => Ok(t.clone()),
            None => plan_err!("ROUND expects 1 or 2 arguments"),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let Some(x) = args.arg_fields.first() else {
            return plan_err!("ROUND expects 1 or 2 arguments");
        };
        let dt = match x.data_type() {
            DataType::Decimal128(p, s) => {
                let digits = match args.scalar_arguments.get(1) {
                    None => Some(0),
                    Some(Some(v)) => scalar_to_i64(v),
                    Some(None) => None,
                };
                match digits {
                    Some(d) => {
                        let (p2, s2) = round_decimal_type(*p, *s, d);
                        DataType::Decimal128(p2, s2)
                    }
                    None => DataType::Decimal128(*p, *s),
                }
            }
            other => other.clone(),
        };
        Ok(Arc::new(Field::new(self.name(), dt, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let return_type = args.return_type().clone();
        let args = &args.args;
        if args.is_empty() || args.len() > 2 {
            return exec_err!("ROUND expects 1 or 2 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let digits = match args.get(1) {
            Some(d) => IntArg::new("ROUND", d)?,
            None => IntArg::Scalar(Some(0)),
        };
        let x_type = args[0].data_type();
        let array: ArrayRef = match &x_type {
            DataType::Float64 | DataType::Float32 | DataType::Null => {
                let x = FloatArg::new(&args[0])?;
                let mut f64s = Vec::with_capacity(n);
                for i in 0..n {
                    f64s.push(match (x.get(i), digits.get(i)) {
                        (Some(v), Some(d)) => match round_double(v, d) {
                            Some(r) => Some(r),
                            None => return exec_err!("ROUND: cannot round {v}"),
                        },
                        _ => None,
                    });
                }
                if x_type == DataType::Float32 {
                    let mut b = Float32Builder::with_capacity(n);
                    b.extend(f64s.into_iter().map(|v| v.map(|v| v as f32)));
                    Arc::new(b.finish())
                } else {
                    let mut b = Float64Builder::with_capacity(n);
                    b.extend(f64s);
                    Arc::new(b.finish())
                }
            }
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                let x = IntArg::new("ROUND", &args[0])?;
                let rounded = (0..n).map(|i| match (x.get(i), digits.get(i)) {
                    (Some(v), Some(d)) => Some(round_integer(i128::from(v), d)),
                    _ => None,
                });
                match x_type {
                    DataType::Int8 => build_int::<Int8Type>(rounded, |v| v as i8),
                    DataType::Int16 => build_int::<Int16Type>(rounded, |v| v as i16),
                    DataType::Int32 => build_int::<Int32Type>(rounded, |v| v as i32),
                    _ => build_int::<Int64Type>(rounded, |v| v as i64),
                }
            }
            DataType::Decimal128(_, s) => {
                let (p2, s2) = match &return_type {
                    DataType::Decimal128(p2, s2) => (*p2, *s2),
                    other => return exec_err!("ROUND: unexpected return type {other}"),
                };
                let x = args[0].to_array(n)?;
                let x = x.as_primitive::<Decimal128Type>();
                let mut b = Decimal128Builder::with_capacity(n).with_precision_and_scale(p2, s2)?;
                for i in 0..n {
                    let v = (!arrow::array::Array::is_null(x, i)).then(|| x.value(i));
                    match (v, digits.get(i)) {
                        (Some(v), Some(d)) => b.append_option(round_decimal(v, *s, d, p2, s2)),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            other => return exec_err!("ROUND: unsupported argument type {other}"),
        };
        finish(array, all_scalar)
    }
}

fn build_int<T: arrow::datatypes::ArrowPrimitiveType>(
    values: impl Iterator<Item = Option<i128>>,
    narrow: impl Fn(i128) -> T::Native,
) -> ArrayRef {
    let mut b = PrimitiveBuilder::<T>::new();
    b.extend(values.map(|v| v.map(&narrow)));
    Arc::new(b.finish())
}

fn scalar_to_i64(v: &ScalarValue) -> Option<i64> {
    if v.is_null() || !v.data_type().is_integer() {
        return None;
    }
    match v.cast_to(&DataType::Int64).ok()? {
        ScalarValue::Int64(v) => v,
        _ => None,
    }
}

/// Flink's `LogicalTypeMerging.findRoundDecimalType`.
fn round_decimal_type(precision: u8, scale: i8, digits: i64) -> (u8, i8) {
    let (p, s) = (i64::from(precision), i64::from(scale));
    if digits >= s {
        return (precision, scale);
    }
    if digits < 0 {
        return ((1 + p - s).clamp(1, 38) as u8, 0);
    }
    ((1 + p - s + digits).clamp(1, 38) as u8, digits as i8)
}

/// Rounds a double half away from zero at `d` decimal places of its shortest decimal
/// representation (Java's `BigDecimal.valueOf(x).setScale(d, HALF_UP)`); `None` for NaN
/// and infinities.
pub(crate) fn round_double(x: f64, d: i64) -> Option<f64> {
    if !x.is_finite() {
        return None;
    }
    if x == 0.0 {
        return Some(0.0);
    }
    // Shortest round-trip digits and exponent, e.g. 1.15 -> "1.15e0".
    let repr = format!("{:e}", x.abs());
    let (mantissa, exp) = repr.split_once('e')?;
    let exp: i64 = exp.parse().ok()?;
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let len = digits.len() as i64;
    let scale = len - 1 - exp; // digits after the decimal point
    if scale <= d {
        return Some(x);
    }
    let drop = scale - d;
    if drop > len {
        return Some(0.0);
    }
    let keep = (len - drop) as usize;
    let mut kept: Vec<u8> = digits[..keep].to_vec();
    if digits[keep] >= b'5' {
        increment(&mut kept);
    }
    if kept.iter().all(|&c| c == b'0') {
        return Some(0.0);
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let text = format!("{sign}{}e{}", String::from_utf8_lossy(&kept), -d);
    text.parse().ok()
}

/// Adds one to a decimal digit string.
fn increment(digits: &mut Vec<u8>) {
    for c in digits.iter_mut().rev() {
        if *c == b'9' {
            *c = b'0';
        } else {
            *c += 1;
            return;
        }
    }
    digits.insert(0, b'1');
}

/// Rounds an integer half away from zero to `d` decimal places (only `d < 0` changes it).
fn round_integer(x: i128, d: i64) -> i128 {
    if d >= 0 {
        return x;
    }
    if d < -38 {
        return 0;
    }
    let m = 10i128.pow((-d) as u32);
    let (q, r) = (x / m, x % m);
    let q = if r.abs() >= m - r.abs() { q + x.signum() } else { q };
    q.checked_mul(m).unwrap_or(0)
}

/// Rounds a decimal (`v` at `scale`) half away from zero to `d` places, returned at
/// `target_scale`; `None` if it does not fit `target_precision`.
fn round_decimal(v: i128, scale: i8, d: i64, target_precision: u8, target_scale: i8) -> Option<i128> {
    let (s, ts) = (i64::from(scale), i64::from(target_scale));
    let (q, q_scale) = if d >= s {
        (v, s)
    } else {
        let drop = s - d;
        if drop > 38 {
            (0, d)
        } else {
            let m = 10i128.pow(drop as u32);
            let (q, r) = (v / m, v % m);
            let q = if r.abs() >= m - r.abs() { q + v.signum() } else { q };
            (q, d)
        }
    };
    let value = if ts >= q_scale {
        let shift = u32::try_from(ts - q_scale).ok()?;
        q.checked_mul(10i128.checked_pow(shift)?)?
    } else {
        let shift = u32::try_from(q_scale - ts).ok()?;
        q / 10i128.checked_pow(shift)?
    };
    let limit = 10u128.checked_pow(u32::from(target_precision))?;
    (value.unsigned_abs() < limit).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::common::test_util::{i, invoke, invoke_array, invoke_scalar};
    use arrow::array::{Array, Float64Array};
    use arrow::datatypes::Float64Type;

    fn f(v: f64) -> ScalarValue {
        ScalarValue::Float64(Some(v))
    }

    fn round(x: ScalarValue, d: i64) -> ScalarValue {
        invoke_scalar(&Round::new(), vec![x, i(d)])
    }

    #[test]
    fn doubles_round_half_up_on_decimal_form() {
        assert_eq!(round(f(1.15), 1), f(1.2));
        assert_eq!(round(f(2.25), 1), f(2.3));
        assert_eq!(round(f(-2.25), 1), f(-2.3));
        assert_eq!(round(f(2.675), 2), f(2.68));
        assert_eq!(round(f(1.005), 2), f(1.01));
        assert_eq!(round(f(0.5), 0), f(1.0));
        assert_eq!(round(f(-0.5), 0), f(-1.0));
        assert_eq!(round(f(-0.4), 0), f(0.0));
        assert_eq!(round(f(1234.5678), -2), f(1200.0));
        assert_eq!(round(f(1.23456), 10), f(1.23456));
        assert_eq!(round(f(1e-7), 3), f(0.0));
        assert_eq!(round(f(9.995), 2), f(10.0));
        assert_eq!(round(f(123456789.98765432), 3), f(123456789.988));
        assert_eq!(invoke_scalar(&Round::new(), vec![f(2.5)]), f(3.0));
        assert_eq!(round(ScalarValue::Float32(Some(1.25)), 1), ScalarValue::Float32(Some(1.3)));
        // A float is widened first: 1.15f is 1.149999976158142.
        assert_eq!(round(ScalarValue::Float32(Some(1.15)), 1), ScalarValue::Float32(Some(1.1)));
    }

    #[test]
    fn integers_and_nulls() {
        assert_eq!(round(ScalarValue::Int32(Some(15)), -1), ScalarValue::Int32(Some(20)));
        assert_eq!(round(ScalarValue::Int32(Some(-15)), -1), ScalarValue::Int32(Some(-20)));
        assert_eq!(round(ScalarValue::Int32(Some(14)), -1), ScalarValue::Int32(Some(10)));
        assert_eq!(round(ScalarValue::Int64(Some(1234)), 2), ScalarValue::Int64(Some(1234)));
        assert_eq!(round(ScalarValue::Int8(Some(127)), -1), ScalarValue::Int8(Some(-126)));
        assert_eq!(round(ScalarValue::Float64(None), 1), ScalarValue::Float64(None));
        assert_eq!(invoke_scalar(&Round::new(), vec![f(1.5), ScalarValue::Int64(None)]), ScalarValue::Float64(None));
        let arr = Float64Array::from(vec![Some(1.15), None, Some(-2.25)]);
        let out = invoke_array(&Round::new(), vec![ColumnarValue::Array(Arc::new(arr)), ColumnarValue::Scalar(i(1))]);
        let out = out.as_primitive::<Float64Type>();
        assert_eq!(out.value(0), 1.2);
        assert!(out.is_null(1));
        assert_eq!(out.value(2), -2.3);
    }

    #[test]
    fn decimals_take_the_rounded_type() {
        let dec = |v: i128, p: u8, s: i8| ScalarValue::Decimal128(Some(v), p, s);
        assert_eq!(round(dec(12345, 10, 3), 2), dec(1235, 10, 2)); // 12.345 -> 12.35
        assert_eq!(round(dec(-12345, 10, 3), 2), dec(-1235, 10, 2));
        assert_eq!(round(dec(12344, 10, 3), 2), dec(1234, 10, 2));
        assert_eq!(round(dec(12345, 10, 3), 5), dec(12345, 10, 3));
        assert_eq!(round(dec(15678, 10, 2), -2), dec(200, 9, 0)); // 156.78 -> 200
        assert_eq!(invoke_scalar(&Round::new(), vec![dec(995, 5, 2)]), dec(10, 4, 0));
        // Full precision: 99.99 rounds to 100.0 which needs the extra digit.
        assert_eq!(round(dec(9999, 4, 2), 1), dec(1000, 4, 1));
    }

    #[test]
    fn nan_is_an_error() {
        let r = invoke(&Round::new(), vec![ColumnarValue::Scalar(f(f64::NAN)), ColumnarValue::Scalar(i(1))]);
        assert!(r.is_err());
    }
}
