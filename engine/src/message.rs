//! The core vocabulary of a running stream.
#![deny(missing_docs)]

use arrow::array::Int8Array;
use arrow::record_batch::RecordBatch;

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
}

impl Batch {
    /// An append-only batch.
    pub fn append(data: RecordBatch) -> Self {
        Self { data, row_kinds: None }
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.data.num_rows()
    }
}

/// What travels on a channel between two tasks.
#[derive(Debug, Clone)]
pub enum Message {
    /// Rows.
    Data(Batch),
    /// Event time progress of the sending subtask.
    Watermark(Watermark),
    /// The sending subtask has no more data.
    End,
}
