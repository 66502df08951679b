//! Formats over message-framed records (Kafka): every record is one serialized row, decoded
//! and encoded on its own.
//!
//! The file formats of `format/mod.rs` read a byte stream and find the rows in it; a Kafka
//! record is already framed by the broker, so the same formats are reached here through
//! [`RecordDecoder`] / [`RecordEncoder`], built by `Format::record_decoder` /
//! `Format::record_encoder`. A decoder does not decide what happens to a record it cannot
//! read: it reports it ([`BadRecord`]) and the connector, which knows where the record lives
//! (topic/partition/offset), fails, skips and counts, or dead-letters it. The one exception
//! is a format's own `<format>.ignore-parse-errors`: as in Flink, the format then drops the
//! record itself and counts it ([`RecordDecoder::skipped`]).

use std::ops::Range;

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, Int8Array, StructArray};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::LineEncoder;
use crate::Result;

/// A record a decoder could not read: its index in the decoder's input and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRecord {
    /// Index into the `records` slice given to [`RecordDecoder::decode`].
    pub index: usize,
    /// What is wrong, for the error message and the dead-letter header.
    pub message: String,
}

/// The rows decoded from a slice of records.
#[derive(Debug, Clone)]
pub(crate) struct DecodedRecords {
    /// One row per record that decoded (a changelog format may give several rows per
    /// record, see `source_records`), in input order, in the decoder's schema.
    pub batch: RecordBatch,
    /// Records that did not decode, sorted by index.
    pub bad: Vec<BadRecord>,
    /// For a changelog format (`debezium-json`): the row kind of each row, as
    /// [`RowKind`](crate::RowKind) codes. `None` = all `+I`.
    pub row_kinds: Option<Int8Array>,
    /// The input record of each output row, when it is not simply "the records not in
    /// `bad`, one row each": a change event gives `-U` and `+U` rows from one record or none
    /// at all, and a record a format drops itself (`ignore-parse-errors`, a CSV comment)
    /// gives no row and is not in `bad`. Increasing. `None` = exactly one row per good
    /// record. [`DecodedRecords::record_of_rows`] gives it in every case.
    pub source_records: Option<Vec<usize>>,
}

impl DecodedRecords {
    /// The rows `batch` of an append-only format, row `k` from record `sources[k]`
    /// (increasing); the `bad` records (sorted) are reported — or, with `skip_bad` (the
    /// format's `ignore-parse-errors`), dropped without a report.
    pub(crate) fn new(
        batch: RecordBatch,
        sources: Vec<usize>,
        bad: Vec<(usize, String)>,
        records: usize,
        skip_bad: bool,
    ) -> Self {
        debug_assert_eq!(batch.num_rows(), sources.len());
        let bad: Vec<BadRecord> = match skip_bad {
            true => Vec::new(),
            false => bad.into_iter().map(|(index, message)| BadRecord { index, message }).collect(),
        };
        let source_records = (sources.len() + bad.len() != records).then_some(sources);
        Self { batch, bad, row_kinds: None, source_records }
    }

    /// The input record of each row of `batch`, for `records` input records.
    pub(crate) fn record_of_rows(&self, records: usize) -> Vec<usize> {
        match &self.source_records {
            Some(sources) => sources.clone(),
            None => without(records, self.bad.iter().map(|b| b.index)),
        }
    }
}

/// The indexes below `records` that are not in `bad` (sorted by index).
pub(crate) fn good(records: usize, bad: &[(usize, String)]) -> Vec<usize> {
    without(records, bad.iter().map(|(k, _)| *k))
}

/// The indexes below `records` that are not in the increasing `skip`.
fn without(records: usize, skip: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut skip = skip.peekable();
    (0..records)
        .filter(|&k| {
            while skip.next_if(|&s| s < k).is_some() {}
            skip.peek() != Some(&k)
        })
        .collect()
}

/// Decodes records, each a complete serialized row, into rows of a fixed schema.
pub(crate) trait RecordDecoder: Send + Sync {
    /// Decode `records` (no null records: the caller handles those). An `Err` is not about
    /// one record (those are in [`DecodedRecords::bad`]) but a failure of the decoder.
    fn decode(&mut self, records: &[&[u8]]) -> Result<DecodedRecords>;

    /// Records dropped so far by the format itself (`<format>.ignore-parse-errors`).
    fn skipped(&self) -> u64 {
        0
    }
}

/// Encodes each row of a batch as one record.
///
/// Null records: a row is never encoded as "no record". The one case where a row's value is
/// NULL as a whole is `raw` (its one column is NULL): its range is then empty, and a
/// connector that writes a null record (a Kafka tombstone, as Flink's `raw` does) tells it
/// from an empty string by that column's validity.
pub(crate) trait RecordEncoder: Send + Sync {
    /// Append the serialized rows of `batch` to `out`, and the byte range of each row to
    /// `rows` (one range per row, in order).
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>, rows: &mut Vec<Range<usize>>) -> Result<()>;
}

/// A line encoder used for records: each row is its line without the line break.
pub(crate) struct LineRecords(pub Box<dyn LineEncoder>);

impl RecordEncoder for LineRecords {
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>, rows: &mut Vec<Range<usize>>) -> Result<()> {
        let mut ends = Vec::with_capacity(batch.num_rows());
        let mut start = out.len();
        self.0.encode(batch, out, &mut ends)?;
        for end in ends {
            let mut content = end;
            while content > start && matches!(out[content - 1], b'\n' | b'\r') {
                content -= 1;
            }
            rows.push(start..content);
            start = end;
        }
        Ok(())
    }
}

/// The schema a record decoder for `schema` produces (for building empty results).
pub(crate) fn empty(schema: &SchemaRef) -> RecordBatch {
    RecordBatch::new_empty(schema.clone())
}

/// `schema` without the parts `unread` names ((column, `None`) a whole column, (column,
/// `Some(field)`) a field of a ROW column). NOT NULL parts are kept: NULL cannot stand in.
pub(crate) fn prune(schema: &Schema, unread: &[(usize, Option<String>)]) -> Schema {
    let mut fields = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        if field.is_nullable() && unread.contains(&(i, None)) {
            continue;
        }
        match field.data_type() {
            DataType::Struct(children) => {
                let read = |c: &&Arc<Field>| {
                    !c.is_nullable() || !unread.iter().any(|(at, f)| *at == i && f.as_deref() == Some(c.name()))
                };
                let kept: Fields = children.iter().filter(read).cloned().collect();
                fields.push(Arc::new(field.as_ref().clone().with_data_type(DataType::Struct(kept))));
            }
            _ => fields.push(field.clone()),
        }
    }
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// A batch of `prune(full, ..)` as a batch of `full`: what was left out is NULL.
pub(crate) fn widen(batch: RecordBatch, full: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let rows = batch.num_rows();
    let decoded = batch.schema();
    let mut columns = Vec::with_capacity(full.fields().len());
    for field in full.fields() {
        let Some((at, _)) = decoded.column_with_name(field.name()) else {
            columns.push(new_null_array(field.data_type(), rows));
            continue;
        };
        let column = batch.column(at);
        columns.push(match field.data_type() {
            DataType::Struct(children) if column.data_type() != field.data_type() => {
                let found = column.as_struct();
                let arrays: Vec<ArrayRef> = children
                    .iter()
                    .map(|c| {
                        found.column_by_name(c.name()).cloned().unwrap_or_else(|| new_null_array(c.data_type(), rows))
                    })
                    .collect();
                Arc::new(StructArray::try_new(children.clone(), arrays, found.nulls().cloned())?)
            }
            _ => column.clone(),
        });
    }
    RecordBatch::try_new_with_options(full.clone(), columns, &RecordBatchOptions::new().with_row_count(Some(rows)))
}
