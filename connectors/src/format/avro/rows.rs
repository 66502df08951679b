//! Avro values to Arrow columns: [`RowsBuilder`] appends one decoded record at a time.
//!
//! The builders are Eddy's own rather than Arrow's so that a record can be taken back: a
//! record whose values do not fit the columns (a NULL in a NOT NULL column, a decimal too
//! wide) is rolled back from every column and reported by the decoder as a bad record, and
//! the rest of the batch is kept.

use std::sync::Arc;

use apache_avro::types::Value;
use arrow::array::{
    make_array, ArrayData, ArrayRef, BinaryArray, ListArray, MapArray, NullArray, PrimitiveArray, StringArray,
    StructArray,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Decimal128Type, FieldRef, Fields, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, SchemaRef, Time32MillisecondType, Time32SecondType, Time64MicrosecondType,
    Time64NanosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::ValueError;
use crate::{ConnectorError, Result};

/// Rows of a fixed schema, appended one record (`Value::Record`) at a time.
pub(crate) struct RowsBuilder {
    schema: SchemaRef,
    columns: Vec<Column>,
    rows: usize,
}

impl RowsBuilder {
    /// Builders for the columns of `schema`.
    pub(crate) fn new(schema: &SchemaRef) -> Result<Self> {
        let columns = schema
            .fields()
            .iter()
            .map(Column::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConnectorError::arrow("format 'avro'", ArrowError::NotYetImplemented(e)))?;
        Ok(Self { schema: schema.clone(), columns, rows: 0 })
    }

    /// Append a record; on error nothing of it is kept.
    pub(crate) fn append(&mut self, record: Value) -> Result<(), String> {
        let appended = match unwrap_union(record) {
            Value::Record(fields) => append_fields(&mut self.columns, fields),
            other => Err(ValueError::new(format!("expected an Avro record, found {}", value_kind(&other)))),
        };
        match appended {
            Ok(()) => {
                self.rows += 1;
                Ok(())
            }
            Err(e) => {
                for column in &mut self.columns {
                    column.builder.truncate(self.rows);
                }
                Err(e.to_string())
            }
        }
    }

    /// The rows appended so far.
    pub(crate) fn finish(self) -> Result<RecordBatch> {
        let arrays = self
            .columns
            .into_iter()
            .map(|c| c.builder.finish())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConnectorError::arrow("format 'avro'", e))?;
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        RecordBatch::try_new_with_options(self.schema, arrays, &options)
            .map_err(|e| ConnectorError::arrow("format 'avro'", e))
    }
}

/// Append the fields of a record to `columns`, matched by name (the position is tried
/// first: with the table's own schema the order is the same). A column the record does not
/// have is NULL.
fn append_fields(columns: &mut [Column], fields: Vec<(String, Value)>) -> Result<(), ValueError> {
    let mut values: Vec<Option<Value>> = (0..columns.len()).map(|_| None).collect();
    for (i, (name, value)) in fields.into_iter().enumerate() {
        let at = if columns.get(i).is_some_and(|c| c.name == name) {
            Some(i)
        } else {
            columns.iter().position(|c| c.name == name)
        };
        if let Some(at) = at {
            values[at] = Some(value);
        }
    }
    for (column, value) in columns.iter_mut().zip(values) {
        column.append(value.unwrap_or(Value::Null)).map_err(|e| e.at(&column.name))?;
    }
    Ok(())
}

/// A builder and the name and nullability of what it builds.
struct Column {
    name: String,
    nullable: bool,
    builder: Box<dyn Builder>,
}

impl Column {
    fn new(field: &FieldRef) -> Result<Self, String> {
        Ok(Self { name: field.name().clone(), nullable: field.is_nullable(), builder: builder(field.data_type())? })
    }

    fn append(&mut self, value: Value) -> Result<(), ValueError> {
        match unwrap_union(value) {
            Value::Null if self.nullable => {
                self.builder.append_null();
                Ok(())
            }
            Value::Null => Err(ValueError::new("NULL in a NOT NULL column")),
            value => self.builder.append(value),
        }
    }
}

/// Builds one array from non-null values and nulls, and can drop the values appended last.
trait Builder: Send {
    /// Append a (non-null) value.
    fn append(&mut self, value: Value) -> Result<(), ValueError>;
    /// Append a null (also a placeholder under a null struct or list).
    fn append_null(&mut self);
    /// Keep the first `len` values.
    fn truncate(&mut self, len: usize);
    fn finish(self: Box<Self>) -> Result<ArrayRef, ArrowError>;
}

fn builder(data_type: &DataType) -> Result<Box<dyn Builder>, String> {
    let dt = data_type.clone();
    Ok(match data_type {
        DataType::Null => Box::new(NullBuilder(0)),
        DataType::Boolean => Box::new(BoolBuilder::default()),
        DataType::Int8 => Prim::<Int8Type>::boxed(dt, |v| narrow(integer(v)?)),
        DataType::Int16 => Prim::<Int16Type>::boxed(dt, |v| narrow(integer(v)?)),
        DataType::Int32 => Prim::<Int32Type>::boxed(dt, |v| narrow(integer(v)?)),
        DataType::Int64 => Prim::<Int64Type>::boxed(dt, integer),
        DataType::Float32 => Prim::<Float32Type>::boxed(dt, |v| float(v).map(|f| f as f32)),
        DataType::Float64 => Prim::<Float64Type>::boxed(dt, float),
        DataType::Decimal128(precision, _) => {
            let precision = *precision;
            Prim::<Decimal128Type>::boxed(dt, move |v| decimal(v, precision))
        }
        DataType::Date32 => Prim::<Date32Type>::boxed(dt, |v| match v {
            Value::Date(d) | Value::Int(d) => Ok(d),
            other => Err(mismatch("a date", &other)),
        }),
        DataType::Time32(TimeUnit::Second) => {
            Prim::<Time32SecondType>::boxed(dt, |v| narrow(time(v, TimeUnit::Second)?))
        }
        DataType::Time32(_) => Prim::<Time32MillisecondType>::boxed(dt, |v| narrow(time(v, TimeUnit::Millisecond)?)),
        DataType::Time64(TimeUnit::Microsecond) => {
            Prim::<Time64MicrosecondType>::boxed(dt, |v| time(v, TimeUnit::Microsecond))
        }
        DataType::Time64(_) => Prim::<Time64NanosecondType>::boxed(dt, |v| time(v, TimeUnit::Nanosecond)),
        DataType::Timestamp(TimeUnit::Second, _) => {
            Prim::<TimestampSecondType>::boxed(dt, |v| timestamp(v, TimeUnit::Second))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Prim::<TimestampMillisecondType>::boxed(dt, |v| timestamp(v, TimeUnit::Millisecond))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Prim::<TimestampMicrosecondType>::boxed(dt, |v| timestamp(v, TimeUnit::Microsecond))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Prim::<TimestampNanosecondType>::boxed(dt, |v| timestamp(v, TimeUnit::Nanosecond))
        }
        DataType::Utf8 => Box::new(BytesBuilder::new(true)),
        DataType::Binary => Box::new(BytesBuilder::new(false)),
        DataType::List(element) => {
            Box::new(ListBuilder { field: element.clone(), rows: NestedRows::default(), items: Column::new(element)? })
        }
        DataType::Map(entries, sorted) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(format!("malformed map type {data_type}"));
            };
            if kv.len() != 2 || *kv[0].data_type() != DataType::Utf8 {
                return Err(format!("Avro map keys are strings, not {}", kv[0].data_type()));
            }
            Box::new(MapBuilder {
                entries: entries.clone(),
                sorted: *sorted,
                rows: NestedRows::default(),
                keys: BytesBuilder::new(true),
                values: Column::new(&kv[1])?,
            })
        }
        DataType::Struct(fields) => Box::new(StructBuilder {
            fields: fields.clone(),
            valid: Vec::new(),
            children: fields.iter().map(Column::new).collect::<Result<_, _>>()?,
        }),
        other => return Err(format!("no Avro decoding into {other}")),
    })
}

/// Fixed-width values converted from Avro values by `convert`.
struct Prim<T: ArrowPrimitiveType> {
    data_type: DataType,
    values: Vec<T::Native>,
    valid: Vec<bool>,
    convert: Box<dyn Fn(Value) -> Result<T::Native, ValueError> + Send>,
}

impl<T: ArrowPrimitiveType> Prim<T> {
    fn boxed<F>(data_type: DataType, convert: F) -> Box<dyn Builder>
    where
        F: Fn(Value) -> Result<T::Native, ValueError> + Send + 'static,
    {
        Box::new(Self { data_type, values: Vec::new(), valid: Vec::new(), convert: Box::new(convert) })
    }
}

impl<T: ArrowPrimitiveType> Builder for Prim<T> {
    fn append(&mut self, value: Value) -> Result<(), ValueError> {
        self.values.push((self.convert)(value)?);
        self.valid.push(true);
        Ok(())
    }

    fn append_null(&mut self) {
        self.values.push(T::Native::default());
        self.valid.push(false);
    }

    fn truncate(&mut self, len: usize) {
        self.values.truncate(len);
        self.valid.truncate(len);
    }

    fn finish(self: Box<Self>) -> Result<ArrayRef, ArrowError> {
        let array = PrimitiveArray::<T>::try_new(ScalarBuffer::from(self.values), nulls(self.valid))?;
        Ok(Arc::new(array.with_data_type(self.data_type)))
    }
}

#[derive(Default)]
struct BoolBuilder {
    values: Vec<bool>,
    valid: Vec<bool>,
}

impl Builder for BoolBuilder {
    fn append(&mut self, value: Value) -> Result<(), ValueError> {
        match value {
            Value::Boolean(b) => self.values.push(b),
            other => return Err(mismatch("a boolean", &other)),
        }
        self.valid.push(true);
        Ok(())
    }

    fn append_null(&mut self) {
        self.values.push(false);
        self.valid.push(false);
    }

    fn truncate(&mut self, len: usize) {
        self.values.truncate(len);
        self.valid.truncate(len);
    }

    fn finish(self: Box<Self>) -> Result<ArrayRef, ArrowError> {
        Ok(Arc::new(arrow::array::BooleanArray::new(self.values.into(), nulls(self.valid))))
    }
}

/// Strings (`utf8`) or bytes.
struct BytesBuilder {
    utf8: bool,
    data: Vec<u8>,
    offsets: Vec<i32>,
    valid: Vec<bool>,
}

impl BytesBuilder {
    fn new(utf8: bool) -> Self {
        Self { utf8, data: Vec::new(), offsets: vec![0], valid: Vec::new() }
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), ValueError> {
        self.data.extend_from_slice(bytes);
        let end = i32::try_from(self.data.len()).map_err(|_| ValueError::new("more than 2 GiB of data in a batch"))?;
        self.offsets.push(end);
        self.valid.push(true);
        Ok(())
    }
}

impl Builder for BytesBuilder {
    fn append(&mut self, value: Value) -> Result<(), ValueError> {
        match value {
            Value::String(s) | Value::Enum(_, s) => self.push(s.as_bytes()),
            Value::Uuid(u) if self.utf8 => self.push(u.to_string().as_bytes()),
            Value::Bytes(b) | Value::Fixed(_, b) if !self.utf8 => self.push(&b),
            Value::Bytes(b) | Value::Fixed(_, b) => match std::str::from_utf8(&b) {
                Ok(s) => self.push(s.as_bytes()),
                Err(_) => Err(ValueError::new("bytes that are not UTF-8 in a STRING column")),
            },
            other => Err(mismatch(if self.utf8 { "a string" } else { "bytes" }, &other)),
        }
    }

    fn append_null(&mut self) {
        self.offsets.push(self.data.len() as i32);
        self.valid.push(false);
    }

    fn truncate(&mut self, len: usize) {
        self.offsets.truncate(len + 1);
        self.data.truncate(self.offsets[len] as usize);
        self.valid.truncate(len);
    }

    fn finish(self: Box<Self>) -> Result<ArrayRef, ArrowError> {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        let data = Buffer::from_vec(self.data);
        Ok(if self.utf8 {
            Arc::new(StringArray::try_new(offsets, data, nulls(self.valid))?)
        } else {
            Arc::new(BinaryArray::try_new(offsets, data, nulls(self.valid))?)
        })
    }
}

/// Where each row's entries start in a list or map column, and which rows are not NULL.
struct NestedRows {
    offsets: Vec<i32>,
    valid: Vec<bool>,
}

impl Default for NestedRows {
    fn default() -> Self {
        Self { offsets: vec![0], valid: Vec::new() }
    }
}

impl NestedRows {
    /// A row of `count` entries (appended by the caller), or a NULL row without any.
    fn push(&mut self, count: Option<usize>) {
        let last = self.offsets.last().copied().unwrap_or(0);
        self.offsets.push(last + count.unwrap_or(0) as i32);
        self.valid.push(count.is_some());
    }

    /// Keep the first `len` rows; how many entries they hold.
    fn truncate(&mut self, len: usize) -> usize {
        self.offsets.truncate(len + 1);
        self.valid.truncate(len);
        self.offsets[len] as usize
    }

    fn finish(self) -> (OffsetBuffer<i32>, Option<NullBuffer>) {
        (OffsetBuffer::new(ScalarBuffer::from(self.offsets)), nulls(self.valid))
    }
}

struct ListBuilder {
    field: FieldRef,
    rows: NestedRows,
    items: Column,
}

impl Builder for ListBuilder {
    fn append(&mut self, value: Value) -> Result<(), ValueError> {
        let Value::Array(items) = value else {
            return Err(mismatch("an array", &value));
        };
        let count = items.len();
        for (i, item) in items.into_iter().enumerate() {
            self.items.append(item).map_err(|e| e.at(&format!("[{i}]")))?;
        }
        self.rows.push(Some(count));
        Ok(())
    }

    fn append_null(&mut self) {
        self.rows.push(None);
    }

    fn truncate(&mut self, len: usize) {
        let entries = self.rows.truncate(len);
        self.items.builder.truncate(entries);
    }

    fn finish(self: Box<Self>) -> Result<ArrayRef, ArrowError> {
        let items = self.items.builder.finish()?;
        let (offsets, nulls) = self.rows.finish();
        Ok(Arc::new(ListArray::try_new(self.field, offsets, items, nulls)?))
    }
}

struct MapBuilder {
    entries: FieldRef,
    sorted: bool,
    rows: NestedRows,
    keys: BytesBuilder,
    values: Column,
}

impl Builder for MapBuilder {
    fn append(&mut self, value: Value) -> Result<(), ValueError> {
        let Value::Map(entries) = value else {
            return Err(mismatch("a map", &value));
        };
        // Avro maps are unordered; sorted keys make the rows deterministic.
        let mut entries: Vec<(String, Value)> = entries.into_iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let count = entries.len();
        for (key, value) in entries {
            self.keys.push(key.as_bytes())?;
            self.values.append(value).map_err(|e| e.at(&format!("['{key}']")))?;
        }
        self.rows.push(Some(count));
        Ok(())
    }

    fn append_null(&mut self) {
        self.rows.push(None);
    }

    fn truncate(&mut self, len: usize) {
        let entries = self.rows.truncate(len);
        self.keys.truncate(entries);
        self.values.builder.truncate(entries);
    }

    fn finish(self: Box<Self>) -> Result<ArrayRef, ArrowError> {
        let DataType::Struct(kv) = self.entries.data_type() else {
            return Err(ArrowError::InvalidArgumentError("malformed map type".into()));
        };
        let keys = Box::new(self.keys).finish()?;
        let values = self.values.builder.finish()?;
        let entries = StructArray::try_new(kv.clone(), vec![keys, values], None)?;
        let (offsets, nulls) = self.rows.finish();
        Ok(Arc::new(MapArray::try_new(self.entries, offsets, entries, nulls, self.sorted)?))
    }
}

struct StructBuilder {
    fields: Fields,
    valid: Vec<bool>,
    children: Vec<Column>,
}

impl Builder for StructBuilder {
    fn append(&mut self, value: Value) -> Result<(), ValueError> {
        let Value::Record(fields) = value else {
            return Err(mismatch("a record", &value));
        };
        append_fields(&mut self.children, fields)?;
        self.valid.push(true);
        Ok(())
    }

    fn append_null(&mut self) {
        for child in &mut self.children {
            child.builder.append_null();
        }
        self.valid.push(false);
    }

    fn truncate(&mut self, len: usize) {
        self.valid.truncate(len);
        for child in &mut self.children {
            child.builder.truncate(len);
        }
    }

    fn finish(self: Box<Self>) -> Result<ArrayRef, ArrowError> {
        let len = self.valid.len();
        let children = self.children.into_iter().map(|c| c.builder.finish()).collect::<Result<Vec<_>, _>>()?;
        if self.fields.is_empty() {
            let data = ArrayData::builder(DataType::Struct(self.fields)).len(len).build()?;
            return Ok(make_array(data));
        }
        Ok(Arc::new(StructArray::try_new(self.fields, children, nulls(self.valid))?))
    }
}

/// The Avro `null` type: only nulls.
struct NullBuilder(usize);

impl Builder for NullBuilder {
    fn append(&mut self, value: Value) -> Result<(), ValueError> {
        Err(mismatch("null", &value))
    }

    fn append_null(&mut self) {
        self.0 += 1;
    }

    fn truncate(&mut self, len: usize) {
        self.0 = self.0.min(len);
    }

    fn finish(self: Box<Self>) -> Result<ArrayRef, ArrowError> {
        Ok(Arc::new(NullArray::new(self.0)))
    }
}

fn nulls(valid: Vec<bool>) -> Option<NullBuffer> {
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

/// The value inside a union.
fn unwrap_union(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => unwrap_union(*inner),
        other => other,
    }
}

fn mismatch(expected: &str, found: &Value) -> ValueError {
    ValueError::new(format!("expected {expected}, found Avro {}", value_kind(found)))
}

fn value_kind(value: &Value) -> String {
    format!("{:?}", apache_avro::schema::SchemaKind::from(value)).to_lowercase()
}

fn integer(value: Value) -> Result<i64, ValueError> {
    match value {
        Value::Int(i) => Ok(i64::from(i)),
        Value::Long(l) => Ok(l),
        other => Err(mismatch("an integer", &other)),
    }
}

fn narrow<T: TryFrom<i64>>(value: i64) -> Result<T, ValueError> {
    T::try_from(value).map_err(|_| ValueError::new(format!("{value} is out of range for the column's type")))
}

fn float(value: Value) -> Result<f64, ValueError> {
    match value {
        Value::Float(f) => Ok(f64::from(f)),
        Value::Double(d) => Ok(d),
        Value::Int(i) => Ok(f64::from(i)),
        Value::Long(l) => Ok(l as f64),
        other => Err(mismatch("a number", &other)),
    }
}

/// A decimal's unscaled value, checked against the column's precision.
fn decimal(value: Value, precision: u8) -> Result<i128, ValueError> {
    let bytes = match value {
        Value::Decimal(d) => {
            Vec::<u8>::try_from(&d).map_err(|e| ValueError::new(format!("invalid Avro decimal: {e}")))?
        }
        Value::Bytes(b) | Value::Fixed(_, b) => b,
        other => return Err(mismatch("a decimal", &other)),
    };
    let unscaled = from_twos_complement(&bytes).ok_or_else(|| ValueError::new("decimal wider than 128 bits"))?;
    if unscaled.unsigned_abs() >= 10u128.pow(u32::from(precision)) {
        return Err(ValueError::new(format!("decimal has more than {precision} digits")));
    }
    Ok(unscaled)
}

/// A big-endian two's complement integer of any length, if it fits `i128`.
pub(super) fn from_twos_complement(bytes: &[u8]) -> Option<i128> {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let sign = if negative { 0xFF } else { 0 };
    let (extra, rest) = bytes.split_at(bytes.len().saturating_sub(16));
    // Bytes beyond 16 must be sign extension only.
    if !extra.is_empty() && (extra.iter().any(|b| *b != sign) || (rest[0] & 0x80 != 0) != negative) {
        return None;
    }
    let mut buf = [sign; 16];
    buf[16 - rest.len()..].copy_from_slice(rest);
    Some(i128::from_be_bytes(buf))
}

/// A time of day in `unit`.
fn time(value: Value, unit: TimeUnit) -> Result<i64, ValueError> {
    let (v, from) = match value {
        Value::TimeMillis(t) | Value::Int(t) => (i64::from(t), TimeUnit::Millisecond),
        Value::TimeMicros(t) | Value::Long(t) => (t, TimeUnit::Microsecond),
        other => return Err(mismatch("a time", &other)),
    };
    convert(v, from, unit)
}

/// A timestamp in `unit` (a plain `long` is taken to be in `unit` already).
fn timestamp(value: Value, unit: TimeUnit) -> Result<i64, ValueError> {
    let (v, from) = match value {
        Value::TimestampMillis(t) | Value::LocalTimestampMillis(t) => (t, TimeUnit::Millisecond),
        Value::TimestampMicros(t) | Value::LocalTimestampMicros(t) => (t, TimeUnit::Microsecond),
        Value::TimestampNanos(t) | Value::LocalTimestampNanos(t) => (t, TimeUnit::Nanosecond),
        Value::Long(t) => (t, unit),
        Value::Int(t) => (i64::from(t), unit),
        other => return Err(mismatch("a timestamp", &other)),
    };
    convert(v, from, unit)
}

fn convert(value: i64, from: TimeUnit, to: TimeUnit) -> Result<i64, ValueError> {
    let per_second = |u: TimeUnit| match u {
        TimeUnit::Second => 1_i64,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let (f, t) = (per_second(from), per_second(to));
    if t >= f {
        value
            .checked_mul(t / f)
            .ok_or_else(|| ValueError::new(format!("{value} is out of range for the column's type")))
    } else {
        Ok(value.div_euclid(f / t))
    }
}
