//! `MOD(a, b)`: the remainder of `a / b`, with the sign of the dividend `a`.
//!
//! DataFusion has the `%` operator but no `mod` function. Flink's rules:
//! - integers: Java's `%`, result typed like the divisor `b` (the remainder always fits);
//!   `b = 0` fails the query, as Java's `ArithmeticException: / by zero` does;
//! - with a `DECIMAL`: exact remainder, result `DECIMAL(min(p1 - s1, p2 - s2) + s, s)` with
//!   `s = max(s1, s2)` (integers count as `DECIMAL(19, 0)` etc.); division by zero fails;
//! - Flink rejects `FLOAT`/`DOUBLE`; we accept them leniently with IEEE `fmod` (sign of
//!   the dividend, NaN for a zero divisor).
//!
//! NULL if either argument is NULL.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Decimal128Builder, Float64Builder, PrimitiveBuilder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Decimal128Type, Int16Type, Int32Type, Int64Type, Int8Type};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::common::{check_arity, finish, output_shape, FloatArg, IntArg};

/// The `MOD` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Mod {
    signature: Signature,
}

impl Mod {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for Mod {
    fn default() -> Self {
        Self::new()
    }
}

/// Precision and scale of an exact numeric type.
fn exact_decimal(dt: &DataType) -> Option<(u8, i8)> {
    Some(match dt {
        DataType::Int8 | DataType::UInt8 => (3, 0),
        DataType::Int16 | DataType::UInt16 => (5, 0),
        DataType::Int32 | DataType::UInt32 => (10, 0),
        DataType::Int64 | DataType::UInt64 | DataType::Null => (19, 0),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => (*p, *s),
        DataType::Decimal256(p, s) if *p <= 38 => (*p, *s),
        _ => return None,
    })
}

fn is_decimal(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Decimal32(_, _) | DataType::Decimal64(_, _) | DataType::Decimal128(_, _) | DataType::Decimal256(_, _)
    )
}

/// Flink's `findModuloDecimalType`.
fn modulo_decimal_type(a: (u8, i8), b: (u8, i8)) -> (u8, i8) {
    let scale = a.1.max(b.1);
    let int_digits = (i16::from(a.0) - i16::from(a.1)).min(i16::from(b.0) - i16::from(b.1));
    let precision = (int_digits + i16::from(scale)).clamp(1, 38);
    (precision as u8, scale)
}

/// Integer types keep their width; unsigned ones widen to the next signed type.
fn signed_integer(dt: &DataType) -> DataType {
    match dt {
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 | DataType::Null => DataType::Int64,
        other => other.clone(),
    }
}

impl ScalarUDFImpl for Mod {
    fn name(&self) -> &str {
        "mod"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("MOD", arg_types, 2, 2)?;
        let (a, b) = (&arg_types[0], &arg_types[1]);
        for t in [a, b] {
            if !(t.is_numeric() || *t == DataType::Null) {
                return plan_err!("MOD expects numeric arguments, got {t}");
            }
        }
        if a.is_floating() || b.is_floating() {
            return Ok(vec![DataType::Float64, DataType::Float64]);
        }
        if is_decimal(a) || is_decimal(b) {
            let to_dec = |t: &DataType| match exact_decimal(t) {
                Some((p, s)) => Ok(DataType::Decimal128(p, s)),
                None => plan_err!("MOD: unsupported argument type {t}"),
            };
            return Ok(vec![to_dec(a)?, to_dec(b)?]);
        }
        Ok(vec![signed_integer(a), signed_integer(b)])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let (Some(a), Some(b)) = (arg_types.first(), arg_types.get(1)) else {
            return plan_err!("MOD expects 2 arguments");
        };
        if a.is_floating() || b.is_floating() {
            return Ok(DataType::Float64);
        }
        if is_decimal(a) || is_decimal(b) {
            return match (exact_decimal(a), exact_decimal(b)) {
                (Some(x), Some(y)) => {
                    let (p, s) = modulo_decimal_type(x, y);
                    Ok(DataType::Decimal128(p, s))
                }
                _ => plan_err!("MOD: unsupported argument types {a}, {b}"),
            };
        }
        Ok(signed_integer(b))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let return_type = args.return_type().clone();
        let args = &args.args;
        if args.len() != 2 {
            return exec_err!("MOD expects 2 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let array: ArrayRef = match &return_type {
            DataType::Float64 => {
                let (a, b) = (FloatArg::new(&args[0])?, FloatArg::new(&args[1])?);
                let mut out = Float64Builder::with_capacity(n);
                for i in 0..n {
                    out.append_option(a.get(i).zip(b.get(i)).map(|(a, b)| a % b));
                }
                Arc::new(out.finish())
            }
            DataType::Decimal128(p, s) => decimal_mod(args, n, *p, *s)?,
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                let (a, b) = (IntArg::new("MOD", &args[0])?, IntArg::new("MOD", &args[1])?);
                let mut values = Vec::with_capacity(n);
                for i in 0..n {
                    values.push(match (a.get(i), b.get(i)) {
                        (Some(_), Some(0)) => return exec_err!("MOD: / by zero"),
                        (Some(a), Some(b)) => Some(a.wrapping_rem(b)),
                        _ => None,
                    });
                }
                match &return_type {
                    DataType::Int8 => build::<Int8Type>(values, |v| v as i8),
                    DataType::Int16 => build::<Int16Type>(values, |v| v as i16),
                    DataType::Int32 => build::<Int32Type>(values, |v| v as i32),
                    _ => build::<Int64Type>(values, |v| v),
                }
            }
            other => return exec_err!("MOD: unsupported result type {other}"),
        };
        finish(array, all_scalar)
    }
}

fn build<T: arrow::datatypes::ArrowPrimitiveType>(
    values: Vec<Option<i64>>,
    narrow: impl Fn(i64) -> T::Native,
) -> ArrayRef {
    let mut b = PrimitiveBuilder::<T>::with_capacity(values.len());
    b.extend(values.into_iter().map(|v| v.map(&narrow)));
    Arc::new(b.finish())
}

fn decimal_mod(args: &[ColumnarValue], n: usize, precision: u8, scale: i8) -> Result<ArrayRef> {
    let mut sides = Vec::with_capacity(2);
    for a in args {
        let arr = a.to_array(n)?;
        let (p, s) = exact_decimal(arr.data_type()).unwrap_or((38, 0));
        let dec = cast(&arr, &DataType::Decimal128(p.max(1), s))?;
        sides.push((dec, s));
    }
    let (a, sa) = (sides[0].0.as_primitive::<Decimal128Type>(), sides[0].1);
    let (b, sb) = (sides[1].0.as_primitive::<Decimal128Type>(), sides[1].1);
    let rescale =
        |v: i128, from: i8| -> Option<i128> { v.checked_mul(10i128.checked_pow(u32::try_from(scale - from).ok()?)?) };
    let mut out = Decimal128Builder::with_capacity(n).with_precision_and_scale(precision, scale)?;
    for i in 0..n {
        if arrow::array::Array::is_null(a, i) || arrow::array::Array::is_null(b, i) {
            out.append_null();
            continue;
        }
        let (x, y) = (rescale(a.value(i), sa), rescale(b.value(i), sb));
        match (x, y) {
            (_, Some(0)) => return exec_err!("MOD: division by zero"),
            (Some(x), Some(y)) => out.append_option(x.checked_rem(y)),
            _ => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::common::test_util::{i, invoke, invoke_scalar};
    use datafusion::common::ScalarValue;

    #[test]
    fn integer_remainders_take_the_dividend_sign() {
        let f = Mod::new();
        assert_eq!(invoke_scalar(&f, vec![i(7), i(3)]), i(1));
        assert_eq!(invoke_scalar(&f, vec![i(-7), i(3)]), i(-1));
        assert_eq!(invoke_scalar(&f, vec![i(7), i(-3)]), i(1));
        assert_eq!(invoke_scalar(&f, vec![i(7), ScalarValue::Int32(Some(3))]), ScalarValue::Int32(Some(1)));
        assert_eq!(invoke_scalar(&f, vec![i(7), ScalarValue::Int64(None)]), ScalarValue::Int64(None));
        assert!(invoke(&f, vec![ColumnarValue::Scalar(i(7)), ColumnarValue::Scalar(i(0))]).is_err());
    }

    #[test]
    fn decimals_and_doubles() {
        let f = Mod::new();
        let dec = |v: i128, p: u8, s: i8| ScalarValue::Decimal128(Some(v), p, s);
        // 7.5 % 2 = 1.5 as DECIMAL(min(3-1, 19-0) + 1, 1)
        assert_eq!(invoke_scalar(&f, vec![dec(75, 3, 1), i(2)]), dec(15, 3, 1));
        assert_eq!(invoke_scalar(&f, vec![dec(-75, 3, 1), dec(20, 3, 1)]), dec(-15, 3, 1));
        let r = invoke_scalar(&f, vec![ScalarValue::Float64(Some(-7.5)), i(2)]);
        assert_eq!(r, ScalarValue::Float64(Some(-1.5)));
    }
}
