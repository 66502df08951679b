//! The `raw` format, as Flink's: a record's bytes are the value of the table's one column.
//!
//! Why so narrow: Flink's `raw` also reads numbers in a chosen byte order, but Kafka
//! records in practice carry text or opaque bytes, so Eddy supports one STRING or BYTES
//! column (and UTF-8 text) and says so clearly for anything else.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, GenericBinaryBuilder, GenericStringBuilder, OffsetSizeTrait};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::record::{self, DecodedRecords, RecordDecoder, RecordEncoder};
use crate::{ConnectorError, Options, Result};

/// Options of the raw format.
pub(crate) const OPTIONS: &[&str] = &["raw.charset", "raw.endianness"];

/// The one column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Utf8,
    LargeUtf8,
    Binary,
    LargeBinary,
}

/// Check the options and that `schema` is one STRING or BYTES column.
pub(crate) fn check(table: &str, options: &Options, schema: &SchemaRef) -> Result<()> {
    kind(table, options, schema).map(|_| ())
}

fn kind(table: &str, o: &Options, schema: &SchemaRef) -> Result<Kind> {
    if let Some(charset) = o.get("raw.charset") {
        if !matches!(charset.to_ascii_uppercase().as_str(), "UTF-8" | "UTF8") {
            return Err(ConnectorError::options(
                table,
                format!("option 'raw.charset' = '{charset}' is not supported in Eddy; only UTF-8 is"),
            ));
        }
    }
    if let Some(endianness) = o.get("raw.endianness") {
        if !matches!(endianness, "big-endian" | "little-endian") {
            return Err(ConnectorError::options(
                table,
                format!("option 'raw.endianness' = '{endianness}' must be 'big-endian' or 'little-endian'"),
            ));
        }
    }
    let unsupported = |what: String| {
        ConnectorError::options(table, format!("format 'raw' supports one STRING or BYTES column in Eddy; {what}"))
    };
    let [field] = schema.fields().as_ref() else {
        return Err(unsupported(format!("the table has {} columns", schema.fields().len())));
    };
    match field.data_type() {
        DataType::Utf8 => Ok(Kind::Utf8),
        DataType::LargeUtf8 => Ok(Kind::LargeUtf8),
        DataType::Binary => Ok(Kind::Binary),
        DataType::LargeBinary => Ok(Kind::LargeBinary),
        other => Err(unsupported(format!("column '{}' is of type {other}", field.name()))),
    }
}

/// Decodes each record into the value of the one column; text must be valid UTF-8.
pub(crate) struct RawDecoder {
    schema: SchemaRef,
    kind: Kind,
}

impl RawDecoder {
    /// A decoder producing `schema` (checked: one STRING or BYTES column).
    pub(crate) fn new(table: &str, options: &Options, schema: SchemaRef) -> Result<Self> {
        let kind = kind(table, options, &schema)?;
        Ok(Self { schema, kind })
    }
}

/// The records as a string column; records that are not UTF-8 are bad.
fn strings<O: OffsetSizeTrait>(records: &[&[u8]], bad: &mut Vec<(usize, String)>) -> ArrayRef {
    let bytes = records.iter().map(|r| r.len()).sum();
    let mut builder = GenericStringBuilder::<O>::with_capacity(records.len(), bytes);
    for (k, record) in records.iter().enumerate() {
        match std::str::from_utf8(record) {
            Ok(text) => builder.append_value(text),
            Err(e) => bad.push((k, format!("the record is not valid UTF-8: {e}"))),
        }
    }
    Arc::new(builder.finish())
}

fn binaries<O: OffsetSizeTrait>(records: &[&[u8]]) -> ArrayRef {
    let bytes = records.iter().map(|r| r.len()).sum();
    let mut builder = GenericBinaryBuilder::<O>::with_capacity(records.len(), bytes);
    for record in records {
        builder.append_value(record);
    }
    Arc::new(builder.finish())
}

impl RecordDecoder for RawDecoder {
    fn decode(&mut self, records: &[&[u8]]) -> Result<DecodedRecords> {
        let mut bad = Vec::new();
        let column = match self.kind {
            Kind::Utf8 => strings::<i32>(records, &mut bad),
            Kind::LargeUtf8 => strings::<i64>(records, &mut bad),
            Kind::Binary => binaries::<i32>(records),
            Kind::LargeBinary => binaries::<i64>(records),
        };
        let batch = RecordBatch::try_new(self.schema.clone(), vec![column])
            .map_err(|e| ConnectorError::arrow("format 'raw'", e))?;
        let sources = record::good(records.len(), &bad);
        Ok(DecodedRecords::new(batch, sources, bad, records.len(), false))
    }
}

/// Encodes each row as the bytes of its one column; a NULL value is an empty range (see
/// [`RecordEncoder`] on null records).
pub(crate) struct RawEncoder {
    table: String,
}

impl RawEncoder {
    /// An encoder for `schema` (checked: one STRING or BYTES column).
    pub(crate) fn new(table: &str, options: &Options, schema: &SchemaRef) -> Result<Self> {
        kind(table, options, schema)?;
        Ok(Self { table: table.to_string() })
    }
}

impl RecordEncoder for RawEncoder {
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>, rows: &mut Vec<Range<usize>>) -> Result<()> {
        let column = batch.column(0);
        let mut push = |value: Option<&[u8]>| {
            let start = out.len();
            out.extend_from_slice(value.unwrap_or_default());
            rows.push(start..out.len());
        };
        match column.data_type() {
            DataType::Utf8 => column.as_string::<i32>().iter().for_each(|v| push(v.map(str::as_bytes))),
            DataType::LargeUtf8 => column.as_string::<i64>().iter().for_each(|v| push(v.map(str::as_bytes))),
            DataType::Binary => column.as_binary::<i32>().iter().for_each(push),
            DataType::LargeBinary => column.as_binary::<i64>().iter().for_each(push),
            other => {
                return Err(ConnectorError::options(
                    &self.table,
                    format!("format 'raw' supports one STRING or BYTES column in Eddy, not {other}"),
                ))
            }
        }
        Ok(())
    }
}
