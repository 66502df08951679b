//! Rows to Avro binary datums, written straight from Arrow arrays (no intermediate values).
//!
//! A [`RowWriter`] is compiled once from the table's columns and an Avro record schema (the
//! derived one, or the user's `avro-confluent.schema`): each column is matched with its Avro
//! field by name and a [`Plan`] says how its values are written (which union branch, which
//! unit conversion). Compiling is also the check that a user's schema fits the table, so it
//! runs when the table is validated.

use std::collections::HashMap;
use std::ops::Range;

use apache_avro::schema::{Name, Namespace, RecordSchema};
use apache_avro::Schema as AvroSchema;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Fields, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;

use super::registry::Registry;
use super::ValueError;
use crate::format::record::RecordEncoder;
use crate::{ConnectorError, Result};

/// Writes the rows of batches with a fixed set of columns as Avro datums of one record schema.
#[derive(Debug)]
pub(crate) struct RowWriter {
    fields: Vec<FieldPlan>,
}

impl RowWriter {
    /// Match `columns` with the fields of the record schema `avro`. `Err` says which column
    /// or field does not fit.
    pub(crate) fn compile(columns: &Fields, avro: &AvroSchema) -> Result<Self, String> {
        let names = names(avro)?;
        let compiler = Compiler { names: &names };
        match avro {
            AvroSchema::Record(record) => {
                let namespace = record.name.namespace.clone();
                Ok(Self { fields: compiler.record(columns, record, &namespace, "")? })
            }
            other => Err(format!("the Avro schema must be a record, not {}", kind(other))),
        }
    }

    /// Append the datum of row `row` of `batch` (whose columns are those compiled for).
    pub(crate) fn write(&self, batch: &RecordBatch, row: usize, out: &mut Vec<u8>) -> Result<(), ValueError> {
        for field in &self.fields {
            match field.column {
                Some(i) => field.plan.write(batch.column(i).as_ref(), row, out),
                None => field.plan.write_null(out),
            }
            .map_err(|e| e.at(&field.name))?;
        }
        Ok(())
    }
}

/// The `avro` format's encoder: one plain Avro datum per row.
pub(crate) struct AvroEncoder {
    pub(crate) table: String,
    pub(crate) rows: RowWriter,
}

impl RecordEncoder for AvroEncoder {
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>, rows: &mut Vec<Range<usize>>) -> Result<()> {
        for row in 0..batch.num_rows() {
            let start = out.len();
            self.rows.write(batch, row, out).map_err(|e| ConnectorError::options(&self.table, e.to_string()))?;
            rows.push(start..out.len());
        }
        Ok(())
    }
}

/// The `avro-confluent` format's encoder: the Confluent wire format (magic byte 0, the
/// schema id as 4 big-endian bytes, the datum). The schema is registered under the subject
/// (or, with `auto.register.schemas` false, looked up) on the first batch; the id is kept.
pub(crate) struct ConfluentEncoder {
    pub(crate) table: String,
    pub(crate) rows: RowWriter,
    /// The schema as registered (JSON text).
    pub(crate) schema: String,
    pub(crate) subject: String,
    pub(crate) auto_register: bool,
    pub(crate) registry: Registry,
    pub(crate) id: Option<u32>,
}

impl ConfluentEncoder {
    fn schema_id(&mut self) -> Result<u32> {
        if let Some(id) = self.id {
            return Ok(id);
        }
        let id = if self.auto_register {
            self.registry.register(&self.subject, &self.schema)?
        } else {
            self.registry.lookup(&self.subject, &self.schema)?.ok_or_else(|| {
                ConnectorError::options(
                    &self.table,
                    format!(
                        "the table's Avro schema is not registered under subject '{}' of the schema \
                         registry {} and 'avro-confluent.auto.register.schemas' is false",
                        self.subject,
                        self.registry.urls()
                    ),
                )
            })?
        };
        self.id = Some(id);
        Ok(id)
    }
}

impl RecordEncoder for ConfluentEncoder {
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>, rows: &mut Vec<Range<usize>>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let id = self.schema_id()?;
        for row in 0..batch.num_rows() {
            let start = out.len();
            out.push(0);
            out.extend_from_slice(&id.to_be_bytes());
            self.rows.write(batch, row, out).map_err(|e| ConnectorError::options(&self.table, e.to_string()))?;
            rows.push(start..out.len());
        }
        Ok(())
    }
}

/// A field of an Avro record and the column (or struct child) it is written from.
#[derive(Debug)]
struct FieldPlan {
    name: String,
    /// `None`: the table has no such column; the field is nullable and written as NULL.
    column: Option<usize>,
    plan: Plan,
}

/// How the values of one Arrow array are written as one Avro schema.
#[derive(Debug)]
enum Plan {
    /// A union: the branch written for NULL (when the union has `null`) and for values.
    Union {
        null: Option<i64>,
        branch: i64,
        value: Box<Plan>,
    },
    /// Avro `null` (for an Arrow `Null` column): nothing is written.
    Null,
    Boolean,
    /// `int`, `date`, `time-millis`: an integer, date or time value, converted by `Scale`.
    Int(Scale),
    /// `long`, `time-micros`, timestamps: an integer, time or timestamp value, converted.
    Long(Scale),
    Float,
    Double,
    String,
    /// An enum: the index of each symbol.
    Enum(HashMap<String, i64>),
    Bytes,
    Fixed(usize),
    /// A decimal as `bytes` (`None`) or as `fixed` of this size.
    Decimal(Option<usize>),
    Array(Box<Plan>),
    Map(Box<Plan>),
    Record(Vec<FieldPlan>),
}

/// A unit conversion: `value * mul / div` (division rounding down, for times before 1970).
#[derive(Debug, Clone, Copy)]
struct Scale {
    mul: i64,
    div: i64,
}

impl Scale {
    const ONE: Self = Self { mul: 1, div: 1 };

    fn between(from: TimeUnit, to: TimeUnit) -> Self {
        let per_second = |u: TimeUnit| match u {
            TimeUnit::Second => 1,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond => 1_000_000,
            TimeUnit::Nanosecond => 1_000_000_000_i64,
        };
        let (f, t) = (per_second(from), per_second(to));
        if t >= f {
            Self { mul: t / f, div: 1 }
        } else {
            Self { mul: 1, div: f / t }
        }
    }

    fn apply(self, value: i64) -> Result<i64, ValueError> {
        value
            .checked_mul(self.mul)
            .map(|v| v.div_euclid(self.div))
            .ok_or_else(|| ValueError::new(format!("{value} is out of range for its Avro type")))
    }
}

impl Plan {
    fn write(&self, array: &dyn Array, row: usize, out: &mut Vec<u8>) -> Result<(), ValueError> {
        let null = array.data_type() == &DataType::Null || array.is_null(row);
        match self {
            Self::Union { null: null_branch, branch, value } => {
                if null {
                    let b =
                        null_branch.ok_or_else(|| ValueError::new("NULL, but its Avro union has no 'null' branch"))?;
                    put_long(out, b);
                    Ok(())
                } else {
                    put_long(out, *branch);
                    value.write(array, row, out)
                }
            }
            Self::Null => Ok(()),
            _ if null => Err(ValueError::new("NULL, but its Avro type does not allow null")),
            Self::Boolean => {
                out.push(u8::from(array.as_boolean().value(row)));
                Ok(())
            }
            Self::Int(scale) => {
                let v = scale.apply(integer(array, row)?)?;
                let v = i32::try_from(v).map_err(|_| ValueError::new(format!("{v} is out of range for Avro int")))?;
                put_long(out, i64::from(v));
                Ok(())
            }
            Self::Long(scale) => {
                put_long(out, scale.apply(integer(array, row)?)?);
                Ok(())
            }
            Self::Float => {
                out.extend_from_slice(&array.as_primitive::<Float32Type>().value(row).to_le_bytes());
                Ok(())
            }
            Self::Double => {
                let v = match array.data_type() {
                    DataType::Float32 => f64::from(array.as_primitive::<Float32Type>().value(row)),
                    _ => array.as_primitive::<Float64Type>().value(row),
                };
                out.extend_from_slice(&v.to_le_bytes());
                Ok(())
            }
            Self::String => {
                put_bytes(out, array.as_string::<i32>().value(row).as_bytes());
                Ok(())
            }
            Self::Enum(symbols) => {
                let s = array.as_string::<i32>().value(row);
                let index =
                    symbols.get(s).ok_or_else(|| ValueError::new(format!("'{s}' is not a symbol of the Avro enum")))?;
                put_long(out, *index);
                Ok(())
            }
            Self::Bytes => {
                put_bytes(out, binary(array, row));
                Ok(())
            }
            Self::Fixed(size) => {
                let b = binary(array, row);
                if b.len() != *size {
                    return Err(ValueError::new(format!("{} bytes, but its Avro fixed type has {size}", b.len())));
                }
                out.extend_from_slice(b);
                Ok(())
            }
            Self::Decimal(fixed) => {
                let bytes = array.as_primitive::<Decimal128Type>().value(row).to_be_bytes();
                let minimal = minimal_twos_complement(&bytes);
                match fixed {
                    None => put_bytes(out, minimal),
                    Some(size) if minimal.len() > *size => {
                        return Err(ValueError::new(format!(
                            "the decimal does not fit its Avro fixed type of {size} bytes"
                        )))
                    }
                    Some(size) => {
                        let sign = if bytes[0] & 0x80 != 0 { 0xFF } else { 0 };
                        out.extend(std::iter::repeat_n(sign, size - minimal.len()));
                        out.extend_from_slice(minimal);
                    }
                }
                Ok(())
            }
            Self::Array(items) => {
                let list = array.as_list::<i32>();
                let offsets = list.value_offsets();
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                if end > start {
                    put_long(out, (end - start) as i64);
                    let values = list.values();
                    for i in start..end {
                        items.write(values.as_ref(), i, out).map_err(|e| e.at(&format!("[{}]", i - start)))?;
                    }
                }
                put_long(out, 0);
                Ok(())
            }
            Self::Map(values_plan) => {
                let map = array.as_map();
                let offsets = map.value_offsets();
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                if end > start {
                    put_long(out, (end - start) as i64);
                    let keys = map.keys().as_string::<i32>();
                    let values = map.values();
                    for i in start..end {
                        let key = keys.value(i);
                        put_bytes(out, key.as_bytes());
                        values_plan.write(values.as_ref(), i, out).map_err(|e| e.at(&format!("['{key}']")))?;
                    }
                }
                put_long(out, 0);
                Ok(())
            }
            Self::Record(fields) => {
                let s = array.as_struct();
                for field in fields {
                    match field.column {
                        Some(i) => field.plan.write(s.column(i).as_ref(), row, out),
                        None => field.plan.write_null(out),
                    }
                    .map_err(|e| e.at(&field.name))?;
                }
                Ok(())
            }
        }
    }

    /// Write NULL for a field the table does not have (compiled only for nullable fields).
    fn write_null(&self, out: &mut Vec<u8>) -> Result<(), ValueError> {
        match self {
            Self::Union { null: Some(b), .. } => {
                put_long(out, *b);
                Ok(())
            }
            Self::Null => Ok(()),
            _ => Err(ValueError::new("internal error: a non-nullable field without column")),
        }
    }
}

/// The integer behind an integer, date, time or timestamp value.
fn integer(array: &dyn Array, row: usize) -> Result<i64, ValueError> {
    Ok(match array.data_type() {
        DataType::Int8 => i64::from(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => i64::from(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => i64::from(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row),
        DataType::Date32 => i64::from(array.as_primitive::<Date32Type>().value(row)),
        DataType::Time32(TimeUnit::Second) => i64::from(array.as_primitive::<Time32SecondType>().value(row)),
        DataType::Time32(_) => i64::from(array.as_primitive::<Time32MillisecondType>().value(row)),
        DataType::Time64(TimeUnit::Microsecond) => array.as_primitive::<Time64MicrosecondType>().value(row),
        DataType::Time64(_) => array.as_primitive::<Time64NanosecondType>().value(row),
        DataType::Timestamp(TimeUnit::Second, _) => array.as_primitive::<TimestampSecondType>().value(row),
        DataType::Timestamp(TimeUnit::Millisecond, _) => array.as_primitive::<TimestampMillisecondType>().value(row),
        DataType::Timestamp(TimeUnit::Microsecond, _) => array.as_primitive::<TimestampMicrosecondType>().value(row),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => array.as_primitive::<TimestampNanosecondType>().value(row),
        other => return Err(ValueError::new(format!("internal error: {other} is not an integer type"))),
    })
}

fn binary(array: &dyn Array, row: usize) -> &[u8] {
    match array.data_type() {
        DataType::FixedSizeBinary(_) => array.as_fixed_size_binary().value(row),
        _ => array.as_binary::<i32>().value(row),
    }
}

/// The shortest big-endian two's complement form of a number (as Java's
/// `BigInteger.toByteArray`, which Avro decimals use).
fn minimal_twos_complement(bytes: &[u8]) -> &[u8] {
    let mut start = 0;
    while start + 1 < bytes.len()
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xFF && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    &bytes[start..]
}

/// Avro `long`/`int`: zig-zag, then base-128 varint.
pub(crate) fn put_long(out: &mut Vec<u8>, value: i64) {
    let mut z = ((value << 1) ^ (value >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Avro `bytes`/`string`: the length, then the bytes.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

/// Named types of a schema by full name, for `Ref`s.
fn names(schema: &AvroSchema) -> Result<HashMap<Name, AvroSchema>, String> {
    let resolved = apache_avro::schema::ResolvedSchema::try_from(schema).map_err(|e| e.to_string())?;
    Ok(resolved.get_names().iter().map(|(n, s)| (n.clone(), (*s).clone())).collect())
}

/// A short name of a schema's kind, for messages.
pub(crate) fn kind(schema: &AvroSchema) -> String {
    match schema {
        AvroSchema::Record(r) => format!("record {}", r.name.name),
        AvroSchema::Enum(e) => format!("enum {}", e.name.name),
        AvroSchema::Fixed(f) => format!("fixed({})", f.size),
        AvroSchema::Decimal(d) => format!("decimal({}, {})", d.precision, d.scale),
        AvroSchema::Ref { name } => name.name.clone(),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase(),
    }
}

struct Compiler<'a> {
    names: &'a HashMap<Name, AvroSchema>,
}

impl Compiler<'_> {
    fn record(
        &self,
        columns: &Fields,
        record: &RecordSchema,
        namespace: &Namespace,
        path: &str,
    ) -> Result<Vec<FieldPlan>, String> {
        let column_name = |name: &str| if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
        for column in columns {
            if !record.lookup.contains_key(column.name()) {
                return Err(format!(
                    "column '{}' has no field in the Avro record {}",
                    column_name(column.name()),
                    record.name.name
                ));
            }
        }
        record
            .fields
            .iter()
            .map(|f| {
                let column = columns.iter().position(|c| c.name() == &f.name);
                let plan = match column {
                    Some(i) => self.plan(&columns[i], &f.schema, namespace, &column_name(&f.name))?,
                    None => {
                        let plan = self.plan(&Field::new(&f.name, DataType::Null, true), &f.schema, namespace, "")?;
                        if !matches!(plan, Plan::Union { null: Some(_), .. } | Plan::Null) {
                            return Err(format!(
                                "the Avro record {} has a field '{}' that is not nullable and not a column of the table",
                                record.name.name, f.name
                            ));
                        }
                        plan
                    }
                };
                Ok(FieldPlan { name: f.name.clone(), column, plan })
            })
            .collect()
    }

    /// How to write `field` as `schema`; `column` names it in errors.
    fn plan(&self, field: &Field, schema: &AvroSchema, namespace: &Namespace, column: &str) -> Result<Plan, String> {
        let dt = field.data_type();
        let mismatch = || format!("column '{column}' of type {dt} cannot be written as Avro {}", kind(schema));
        Ok(match (dt, schema) {
            (_, AvroSchema::Ref { name }) => {
                let full = name.fully_qualified_name(namespace);
                let target = self.names.get(&full).ok_or_else(|| format!("unknown Avro type '{}'", full.name))?;
                return self.plan(field, target, &full.namespace, column);
            }
            (_, AvroSchema::Union(union)) => {
                let variants = union.variants();
                let null = variants.iter().position(|v| matches!(v, AvroSchema::Null)).map(|i| i as i64);
                if *dt == DataType::Null {
                    let b = null.ok_or_else(mismatch)?;
                    return Ok(Plan::Union { null, branch: b, value: Box::new(Plan::Null) });
                }
                let mut first_error = None;
                for (i, variant) in variants.iter().enumerate() {
                    if matches!(variant, AvroSchema::Null) {
                        continue;
                    }
                    match self.plan(field, variant, namespace, column) {
                        Ok(p) => return Ok(Plan::Union { null, branch: i as i64, value: Box::new(p) }),
                        Err(e) => first_error = first_error.or(Some(e)),
                    }
                }
                return Err(first_error.unwrap_or_else(mismatch));
            }
            (DataType::Null, AvroSchema::Null) => Plan::Null,
            (DataType::Boolean, AvroSchema::Boolean) => Plan::Boolean,
            (DataType::Int8 | DataType::Int16 | DataType::Int32, AvroSchema::Int) => Plan::Int(Scale::ONE),
            (DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64, AvroSchema::Long) => {
                Plan::Long(Scale::ONE)
            }
            (DataType::Date32, AvroSchema::Date | AvroSchema::Int) => Plan::Int(Scale::ONE),
            (DataType::Time32(u) | DataType::Time64(u), AvroSchema::TimeMillis) => {
                Plan::Int(Scale::between(*u, TimeUnit::Millisecond))
            }
            (DataType::Time32(u) | DataType::Time64(u), AvroSchema::TimeMicros) => {
                Plan::Long(Scale::between(*u, TimeUnit::Microsecond))
            }
            (DataType::Timestamp(u, _), AvroSchema::TimestampMillis | AvroSchema::LocalTimestampMillis) => {
                Plan::Long(Scale::between(*u, TimeUnit::Millisecond))
            }
            (DataType::Timestamp(u, _), AvroSchema::TimestampMicros | AvroSchema::LocalTimestampMicros) => {
                Plan::Long(Scale::between(*u, TimeUnit::Microsecond))
            }
            (DataType::Timestamp(u, _), AvroSchema::TimestampNanos | AvroSchema::LocalTimestampNanos) => {
                Plan::Long(Scale::between(*u, TimeUnit::Nanosecond))
            }
            (DataType::Float32, AvroSchema::Float) => Plan::Float,
            (DataType::Float32 | DataType::Float64, AvroSchema::Double) => Plan::Double,
            (DataType::Utf8, AvroSchema::String | AvroSchema::Uuid) => Plan::String,
            (DataType::Utf8, AvroSchema::Enum(e)) => {
                Plan::Enum(e.symbols.iter().enumerate().map(|(i, s)| (s.clone(), i as i64)).collect())
            }
            (DataType::Binary | DataType::FixedSizeBinary(_), AvroSchema::Bytes) => Plan::Bytes,
            (DataType::Binary, AvroSchema::Fixed(f)) => Plan::Fixed(f.size),
            (DataType::FixedSizeBinary(n), AvroSchema::Fixed(f)) if *n as usize == f.size => Plan::Fixed(f.size),
            (DataType::Decimal128(_, scale), AvroSchema::Decimal(d)) => {
                if i64::from(*scale) != d.scale as i64 {
                    return Err(format!(
                        "column '{column}' of type {dt} has scale {scale} but its Avro decimal has scale {}",
                        d.scale
                    ));
                }
                match d.inner.as_ref() {
                    AvroSchema::Fixed(f) => Plan::Decimal(Some(f.size)),
                    _ => Plan::Decimal(None),
                }
            }
            (DataType::List(element), AvroSchema::Array(a)) => {
                Plan::Array(Box::new(self.plan(element, &a.items, namespace, &format!("{column}[]"))?))
            }
            (DataType::Map(entries, _), AvroSchema::Map(m)) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 && *kv[0].data_type() == DataType::Utf8 => {
                    Plan::Map(Box::new(self.plan(&kv[1], &m.types, namespace, &format!("{column}{{}}"))?))
                }
                _ => return Err(mismatch()),
            },
            (DataType::Struct(children), AvroSchema::Record(r)) => {
                Plan::Record(self.record(children, r, &r.name.namespace, column)?)
            }
            _ => return Err(mismatch()),
        })
    }
}
