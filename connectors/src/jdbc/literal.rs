//! Arrow values as SQL literals of PostgreSQL or MySQL/MariaDB.
//!
//! Literals rather than bound parameters: the database casts a literal to its column's
//! type, so a BIGINT value goes into an INT column and a string into a VARCHAR, TEXT, JSON
//! or ENUM column, as a JDBC driver's `setObject` would — without Eddy knowing the target
//! table's column types. Strings are quoted by each dialect's rules (PostgreSQL doubles `'`
//! and, with `standard_conforming_strings` (its default since 9.1), takes `\` as is; MySQL
//! also escapes `\` and NUL), so no value can end its literal.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::Dialect;

/// Whether the sink can write a column of this type.
pub(super) fn supported(t: &DataType) -> bool {
    use DataType::*;
    matches!(
        t,
        Null | Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float32
            | Float64
            | Decimal128(_, _)
            | Decimal256(_, _)
            | Utf8
            | LargeUtf8
            | Utf8View
            | Date32
            | Date64
            | Time32(_)
            | Time64(_)
            | Timestamp(_, _)
            | Binary
            | LargeBinary
            | BinaryView
            | FixedSizeBinary(_)
    )
}

/// Every value of `array` as a literal (`NULL` for nulls).
pub(super) fn render_column(array: &ArrayRef, dialect: Dialect) -> Result<Vec<String>, String> {
    // TIMESTAMP_LTZ values are instants: written as their UTC time, without a zone, which
    // both a `timestamp` and a `timestamptz`/DATETIME column read as that time.
    let options = FormatOptions::default()
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_null("NULL");
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options).map_err(|e| e.to_string())?;
    let n = array.len();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if array.is_null(i) {
            out.push("NULL".to_string());
            continue;
        }
        let text = formatter.value(i).to_string();
        out.push(match array.data_type() {
            DataType::Boolean => if array.as_boolean().value(i) { "TRUE" } else { "FALSE" }.to_string(),
            DataType::Float32 => float(array.as_primitive::<Float32Type>().value(i) as f64, text, dialect),
            DataType::Float64 => float(array.as_primitive::<Float64Type>().value(i), text, dialect),
            t if t.is_integer() || matches!(t, DataType::Decimal128(_, _) | DataType::Decimal256(_, _)) => text,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
                bytes(&binary_value(array, i), dialect)
            }
            _ => quote(&text, dialect),
        });
    }
    Ok(out)
}

fn binary_value(array: &ArrayRef, i: usize) -> Vec<u8> {
    match array.data_type() {
        DataType::Binary => array.as_binary::<i32>().value(i).to_vec(),
        DataType::LargeBinary => array.as_binary::<i64>().value(i).to_vec(),
        DataType::BinaryView => array.as_binary_view().value(i).to_vec(),
        DataType::FixedSizeBinary(_) => array.as_fixed_size_binary().value(i).to_vec(),
        _ => Vec::new(),
    }
}

/// A finite float as Arrow prints it (shortest round-trip form); NaN and infinities as
/// PostgreSQL spells them, and NULL in MySQL, which has no such values.
fn float(v: f64, text: String, dialect: Dialect) -> String {
    if v.is_finite() {
        return text;
    }
    match dialect {
        Dialect::MySql => "NULL".to_string(),
        Dialect::Postgres if v.is_nan() => "'NaN'".to_string(),
        Dialect::Postgres if v > 0.0 => "'Infinity'".to_string(),
        Dialect::Postgres => "'-Infinity'".to_string(),
    }
}

/// A string literal.
pub(super) fn quote(s: &str, dialect: Dialect) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match (c, dialect) {
            ('\'', _) => out.push_str("''"),
            ('\\', Dialect::MySql) => out.push_str("\\\\"),
            ('\0', Dialect::MySql) => out.push_str("\\0"),
            (c, _) => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A binary literal.
fn bytes(b: &[u8], dialect: Dialect) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    match dialect {
        Dialect::Postgres => format!("'\\x{hex}'"),
        Dialect::MySql => format!("X'{hex}'"),
    }
}

/// A quoted identifier.
pub(super) fn ident(name: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        Dialect::MySql => format!("`{}`", name.replace('`', "``")),
    }
}
