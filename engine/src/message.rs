//! The core vocabulary of a running stream.
#![deny(missing_docs)]

use arrow::array::{AsArray, BooleanArray, Int64Array, Int8Array, UInt32Array};
use arrow::compute::{filter, take};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
pub use eddy_connectors::PartitionMark;

/// Event time in milliseconds since the epoch.
pub type Timestamp = i64;

/// A watermark: no more rows with event time `<=` this value are expected.
/// Watermarks only move forward; [`Watermark::MAX`] (end of input) fires every window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Watermark(pub Timestamp);

impl Watermark {
    /// The watermark of a finished bounded input.
    pub const MAX: Watermark = Watermark(i64::MAX);
    /// No watermark yet.
    pub const MIN: Watermark = Watermark(i64::MIN);
}

/// Rows flowing between operators: a batch, plus the row kinds of a changelog stream.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The rows.
    pub data: RecordBatch,
    /// `None` for append-only streams (every row is `+I`), else one
    /// [`eddy_connectors::RowKind`] code per row.
    pub row_kinds: Option<Int8Array>,
    /// The watermark in effect when each row arrived, in ms, when it is finer than the
    /// receiving operator's current watermark. With `pipeline.auto-watermark-interval` = 0
    /// Flink emits a watermark after every row, so lateness is decided per row: the
    /// assigner fills this with the running maximum of the rows *before* each row, and
    /// windowed operators drop a row iff its window closed under
    /// `max(current watermark, arrival watermark)`. `None`: the current watermark applies.
    pub arrival_watermarks: Option<Int64Array>,
    /// For a source split that reads several partitions (Kafka), the partition the rows
    /// come from, as the source marked them: the watermark assigner keeps one watermark per
    /// partition and combines them (see `WatermarkOperator`). An empty batch with a mark
    /// announces a partition, or says it ended. `None`: the rows are one stream (every
    /// source that does not mark its batches, and every batch after the assigner).
    pub partition: Option<PartitionMark>,
}

impl Batch {
    /// An append-only batch.
    pub fn append(data: RecordBatch) -> Self {
        Self { data, row_kinds: None, arrival_watermarks: None, partition: None }
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.data.num_rows()
    }

    /// Rows `offset..offset + len`, sharing this batch's buffers.
    pub fn slice(&self, offset: usize, len: usize) -> Batch {
        Batch {
            data: self.data.slice(offset, len),
            row_kinds: self.row_kinds.as_ref().map(|k| k.slice(offset, len)),
            arrival_watermarks: self.arrival_watermarks.as_ref().map(|w| w.slice(offset, len)),
            partition: self.partition,
        }
    }

    /// `data` (rows already selected from `self` by `indices`) with the matching row kinds
    /// and arrival watermarks, from the same partition.
    pub fn taken(&self, data: RecordBatch, indices: &UInt32Array) -> Result<Batch, ArrowError> {
        let row_kinds = match &self.row_kinds {
            Some(k) => Some(take(k, indices, None)?.as_primitive().clone()),
            None => None,
        };
        let arrival_watermarks = match &self.arrival_watermarks {
            Some(w) => Some(take(w, indices, None)?.as_primitive().clone()),
            None => None,
        };
        Ok(Batch { data, row_kinds, arrival_watermarks, partition: self.partition })
    }

    /// `data` (rows already selected from `self` by `mask`) with the matching row kinds and
    /// arrival watermarks, from the same partition.
    pub fn filtered(&self, data: RecordBatch, mask: &BooleanArray) -> Result<Batch, ArrowError> {
        let row_kinds = match &self.row_kinds {
            Some(k) => Some(filter(k, mask)?.as_primitive().clone()),
            None => None,
        };
        let arrival_watermarks = match &self.arrival_watermarks {
            Some(w) => Some(filter(w, mask)?.as_primitive().clone()),
            None => None,
        };
        Ok(Batch { data, row_kinds, arrival_watermarks, partition: self.partition })
    }
}

/// What travels on a channel between two tasks.
// `Data` is by far the most common message; boxing it would cost an allocation per batch.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Message {
    /// Rows.
    Data(Batch),
    /// Event time progress of the sending subtask.
    Watermark(Watermark),
    /// The sending subtask has had no rows for `table.exec.source.idle-timeout`: leave it out
    /// of the watermark (min over inputs) until it sends rows or a watermark again.
    Idle,
    /// The sending subtask has no more data.
    End,
    /// Checkpoint barrier `epoch`: everything before it belongs to the checkpoint, nothing
    /// after it (see `crate::checkpoint`).
    Barrier(u64),
}
