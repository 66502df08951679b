//! Formats over message-framed records (Kafka): every record is one serialized row, decoded
//! and encoded on its own.
//!
//! The file formats of `format/mod.rs` read a byte stream and find the rows in it; a Kafka
//! record is already framed by the broker, so the same formats are reached here through
//! [`RecordDecoder`] / [`RecordEncoder`]. A decoder does not decide what happens to a record
//! it cannot read: it reports it ([`BadRecord`]) and the connector, which knows where the
//! record lives (topic/partition/offset), fails, skips and counts, or dead-letters it.

use std::ops::Range;

use arrow::array::Int8Array;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

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
    /// record, see `rows_per_record`), in input order, in the decoder's schema.
    pub batch: RecordBatch,
    /// Records that did not decode, sorted by index.
    pub bad: Vec<BadRecord>,
    /// For a changelog format (`debezium-json`): the row kind of each row. `None` = all `+I`.
    pub row_kinds: Option<Int8Array>,
    /// For a changelog format, the input record of each output row (an update gives `-U`
    /// and `+U` rows from one record; a record may also give none). `None` = exactly one row
    /// per good record.
    pub source_records: Option<Vec<usize>>,
}

/// Decodes records, each a complete serialized row, into rows of a fixed schema.
pub(crate) trait RecordDecoder: Send {
    /// Decode `records` (no null records: the caller handles those).
    fn decode(&mut self, records: &[&[u8]]) -> Result<DecodedRecords>;
}

/// Encodes each row of a batch as one record.
pub(crate) trait RecordEncoder: Send {
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
