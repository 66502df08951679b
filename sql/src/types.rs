//! Flink SQL data types and their Arrow representation.
//!
//! Eddy keeps the Flink type (for DESCRIBE, error messages and sink schemas) and maps it to
//! one Arrow type for execution: STRING -> Utf8, TIMESTAMP(3) -> Timestamp(ms),
//! TIMESTAMP_LTZ(3) -> Timestamp(ms, "UTC"), ROW -> Struct, and so on.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, IntervalUnit, TimeUnit};

/// A Flink SQL type with its nullability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlinkType {
    /// The type.
    pub kind: TypeKind,
    /// `false` when declared `NOT NULL`.
    pub nullable: bool,
}

/// The kinds of Flink SQL type Eddy supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeKind {
    /// `CHAR(n)`
    Char(u32),
    /// `VARCHAR(n)`; `STRING` is `VARCHAR(2147483647)`.
    Varchar(u32),
    /// `BOOLEAN`
    Boolean,
    /// `TINYINT`
    TinyInt,
    /// `SMALLINT`
    SmallInt,
    /// `INT`
    Int,
    /// `BIGINT`
    BigInt,
    /// `FLOAT`
    Float,
    /// `DOUBLE`
    Double,
    /// `DECIMAL(p, s)`
    Decimal(u8, i8),
    /// `DATE`
    Date,
    /// `TIME(p)`
    Time(u8),
    /// `TIMESTAMP(p)` (without time zone)
    Timestamp(u8),
    /// `TIMESTAMP_LTZ(p)` / `TIMESTAMP(p) WITH LOCAL TIME ZONE`
    TimestampLtz(u8),
    /// `BINARY(n)`
    Binary(u32),
    /// `VARBINARY(n)`; `BYTES` is `VARBINARY(2147483647)`.
    Varbinary(u32),
    /// `ARRAY<T>`
    Array(Box<FlinkType>),
    /// `MAP<K, V>`
    Map(Box<FlinkType>, Box<FlinkType>),
    /// `ROW<name T, ...>`
    Row(Vec<RowField>),
    /// `INTERVAL DAY TO SECOND(3)`-like types (durations).
    IntervalDayTime,
    /// `INTERVAL YEAR TO MONTH`-like types.
    IntervalYearMonth,
}

/// A field of a `ROW` type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowField {
    /// Field name.
    pub name: String,
    /// Field type.
    pub data_type: FlinkType,
}

/// Length Flink uses for `STRING` / `BYTES`.
pub const MAX_LENGTH: u32 = i32::MAX as u32;

impl FlinkType {
    /// A nullable type.
    pub fn nullable(kind: TypeKind) -> Self {
        Self { kind, nullable: true }
    }

    /// The Arrow type that carries values of this type.
    pub fn to_arrow(&self) -> DataType {
        match &self.kind {
            TypeKind::Char(_) | TypeKind::Varchar(_) => DataType::Utf8,
            TypeKind::Boolean => DataType::Boolean,
            TypeKind::TinyInt => DataType::Int8,
            TypeKind::SmallInt => DataType::Int16,
            TypeKind::Int => DataType::Int32,
            TypeKind::BigInt => DataType::Int64,
            TypeKind::Float => DataType::Float32,
            TypeKind::Double => DataType::Float64,
            TypeKind::Decimal(p, s) => DataType::Decimal128(*p, *s),
            TypeKind::Date => DataType::Date32,
            TypeKind::Time(p) => match p {
                0..=3 => DataType::Time32(TimeUnit::Millisecond),
                4..=6 => DataType::Time64(TimeUnit::Microsecond),
                _ => DataType::Time64(TimeUnit::Nanosecond),
            },
            TypeKind::Timestamp(p) => DataType::Timestamp(time_unit(*p), None),
            TypeKind::TimestampLtz(p) => DataType::Timestamp(time_unit(*p), Some("UTC".into())),
            TypeKind::Binary(_) | TypeKind::Varbinary(_) => DataType::Binary,
            TypeKind::Array(t) => DataType::List(Arc::new(Field::new("element", t.to_arrow(), t.nullable))),
            TypeKind::Map(k, v) => {
                let entries = Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", k.to_arrow(), false),
                        Field::new("value", v.to_arrow(), v.nullable),
                    ])),
                    false,
                );
                DataType::Map(Arc::new(entries), false)
            }
            TypeKind::Row(fields) => DataType::Struct(Fields::from(
                fields
                    .iter()
                    .map(|f| Field::new(&f.name, f.data_type.to_arrow(), f.data_type.nullable))
                    .collect::<Vec<_>>(),
            )),
            TypeKind::IntervalDayTime => DataType::Interval(IntervalUnit::MonthDayNano),
            TypeKind::IntervalYearMonth => DataType::Interval(IntervalUnit::YearMonth),
        }
    }

    /// An Arrow field of this type.
    pub fn to_field(&self, name: &str) -> Field {
        Field::new(name, self.to_arrow(), self.nullable)
    }

    /// The Flink type for an Arrow type (for results of expressions: DESCRIBE of views,
    /// CREATE TABLE AS SELECT).
    pub fn from_arrow(dt: &DataType, nullable: bool) -> Self {
        let kind = match dt {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => TypeKind::Varchar(MAX_LENGTH),
            DataType::Boolean => TypeKind::Boolean,
            DataType::Int8 => TypeKind::TinyInt,
            DataType::Int16 | DataType::UInt8 => TypeKind::SmallInt,
            DataType::Int32 | DataType::UInt16 => TypeKind::Int,
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => TypeKind::BigInt,
            DataType::Float16 | DataType::Float32 => TypeKind::Float,
            DataType::Float64 => TypeKind::Double,
            DataType::Decimal32(p, s)
            | DataType::Decimal64(p, s)
            | DataType::Decimal128(p, s)
            | DataType::Decimal256(p, s) => TypeKind::Decimal(*p, *s),
            DataType::Date32 | DataType::Date64 => TypeKind::Date,
            DataType::Time32(u) | DataType::Time64(u) => TypeKind::Time(precision(u)),
            DataType::Timestamp(u, None) => TypeKind::Timestamp(precision(u)),
            DataType::Timestamp(u, Some(_)) => TypeKind::TimestampLtz(precision(u)),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
                TypeKind::Varbinary(MAX_LENGTH)
            }
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) | DataType::ListView(f) => {
                TypeKind::Array(Box::new(Self::from_arrow(f.data_type(), f.is_nullable())))
            }
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => TypeKind::Map(
                    Box::new(Self::from_arrow(kv[0].data_type(), kv[0].is_nullable())),
                    Box::new(Self::from_arrow(kv[1].data_type(), kv[1].is_nullable())),
                ),
                _ => TypeKind::Varchar(MAX_LENGTH),
            },
            DataType::Struct(fields) => TypeKind::Row(
                fields
                    .iter()
                    .map(|f| RowField {
                        name: f.name().clone(),
                        data_type: Self::from_arrow(f.data_type(), f.is_nullable()),
                    })
                    .collect(),
            ),
            DataType::Interval(IntervalUnit::YearMonth) => TypeKind::IntervalYearMonth,
            DataType::Interval(_) | DataType::Duration(_) => TypeKind::IntervalDayTime,
            // Null (an untyped NULL literal) and anything exotic show as STRING.
            _ => TypeKind::Varchar(MAX_LENGTH),
        };
        Self { kind, nullable }
    }
}

fn time_unit(precision: u8) -> TimeUnit {
    match precision {
        0..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

fn precision(u: &TimeUnit) -> u8 {
    match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

impl fmt::Display for FlinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TypeKind::Char(n) => write!(f, "CHAR({n})")?,
            TypeKind::Varchar(n) if *n == MAX_LENGTH => write!(f, "STRING")?,
            TypeKind::Varchar(n) => write!(f, "VARCHAR({n})")?,
            TypeKind::Boolean => write!(f, "BOOLEAN")?,
            TypeKind::TinyInt => write!(f, "TINYINT")?,
            TypeKind::SmallInt => write!(f, "SMALLINT")?,
            TypeKind::Int => write!(f, "INT")?,
            TypeKind::BigInt => write!(f, "BIGINT")?,
            TypeKind::Float => write!(f, "FLOAT")?,
            TypeKind::Double => write!(f, "DOUBLE")?,
            TypeKind::Decimal(p, s) => write!(f, "DECIMAL({p}, {s})")?,
            TypeKind::Date => write!(f, "DATE")?,
            TypeKind::Time(p) => write!(f, "TIME({p})")?,
            TypeKind::Timestamp(p) => write!(f, "TIMESTAMP({p})")?,
            TypeKind::TimestampLtz(p) => write!(f, "TIMESTAMP_LTZ({p})")?,
            TypeKind::Binary(n) => write!(f, "BINARY({n})")?,
            TypeKind::Varbinary(n) if *n == MAX_LENGTH => write!(f, "BYTES")?,
            TypeKind::Varbinary(n) => write!(f, "VARBINARY({n})")?,
            TypeKind::Array(t) => write!(f, "ARRAY<{t}>")?,
            TypeKind::Map(k, v) => write!(f, "MAP<{k}, {v}>")?,
            TypeKind::Row(fields) => {
                write!(f, "ROW<")?;
                for (i, fl) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "`{}` {}", fl.name, fl.data_type)?;
                }
                write!(f, ">")?;
            }
            TypeKind::IntervalDayTime => write!(f, "INTERVAL SECOND(3)")?,
            TypeKind::IntervalYearMonth => write!(f, "INTERVAL YEAR TO MONTH")?,
        }
        if !self.nullable {
            write!(f, " NOT NULL")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_mapping_round_trips_through_display() {
        let t = FlinkType::nullable(TypeKind::Timestamp(3));
        assert_eq!(t.to_arrow(), DataType::Timestamp(TimeUnit::Millisecond, None));
        assert_eq!(FlinkType::from_arrow(&t.to_arrow(), true), t);
        let ltz = FlinkType::nullable(TypeKind::TimestampLtz(3));
        assert_eq!(ltz.to_string(), "TIMESTAMP_LTZ(3)");
        let row = FlinkType {
            kind: TypeKind::Row(vec![RowField {
                name: "a".into(),
                data_type: FlinkType::nullable(TypeKind::Array(Box::new(FlinkType::nullable(TypeKind::Int)))),
            }]),
            nullable: false,
        };
        assert_eq!(row.to_string(), "ROW<`a` ARRAY<INT>> NOT NULL");
    }
}
