//! What the windowed operators share (window assignment, session aggregation, Top-N,
//! deduplication): window parameter checks and alignment, event-time columns, the
//! watermark a row is judged by, and rows buffered until their window fires.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, TimestampMillisecondArray};
use arrow::compute::{cast, interleave};
use arrow::datatypes::{DataType, Int64Type};
use arrow::error::ArrowError;

use super::watermark::to_millis;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Timestamp, Watermark};
use eddy_sql::plan::WindowKind;

/// Rejects window parameters Flink's assigners reject (sizes must be positive, a CUMULATE
/// size a multiple of its step), so the window arithmetic never divides by zero.
pub(super) fn check_window(window: &WindowKind) -> Result<()> {
    let ok = match *window {
        WindowKind::Tumble { size, .. } => size > 0,
        WindowKind::Hop { slide, size, .. } => slide > 0 && size > 0,
        WindowKind::Cumulate { step, size, .. } => step > 0 && size > 0 && size % step == 0,
        WindowKind::Session { gap } => gap > 0,
    };
    if ok {
        Ok(())
    } else {
        Err(EngineError::Plan(format!("invalid window {window}")))
    }
}

/// Start of the `size`-long window containing `ts`, windows being aligned to the epoch plus
/// `offset` (Flink's `TimeWindow.getWindowStartWithOffset`). `size` must be positive.
pub(super) fn window_start(ts: Timestamp, offset: i64, size: i64) -> Timestamp {
    ts.saturating_sub(ts.saturating_sub(offset).rem_euclid(size))
}

/// A time attribute column (a timestamp of any unit) as milliseconds; NULL stays NULL.
pub(super) fn event_times(column: &dyn Array) -> std::result::Result<Int64Array, ArrowError> {
    Ok(to_millis(column)?.as_primitive::<Int64Type>().clone())
}

/// Millisecond values as a column of `target` (a timestamp of any unit or time zone).
pub(super) fn timestamp_column(values: Vec<i64>, target: &DataType) -> std::result::Result<ArrayRef, ArrowError> {
    let ms: ArrayRef = Arc::new(TimestampMillisecondArray::from(values));
    if ms.data_type() == target {
        Ok(ms)
    } else {
        cast(&ms, target)
    }
}

/// The watermark a row is judged by: the operator's, or the finer one it arrived under.
pub(super) fn effective_watermark(batch: &Batch, row: usize, current: Watermark) -> Timestamp {
    match &batch.arrival_watermarks {
        Some(w) if w.is_valid(row) => w.value(row).max(current.0),
        _ => current.0,
    }
}

/// The windowed operators consume append-only streams (Flink plans them only there).
pub(super) fn require_append_only(batch: &Batch, operator: &str) -> Result<()> {
    let insert = eddy_connectors::RowKind::Insert.code();
    if let Some(kinds) = &batch.row_kinds {
        if kinds.iter().any(|k| k.is_some_and(|k| k != insert)) {
            return Err(EngineError::Plan(format!("{operator} needs an append-only input, got updates")));
        }
    }
    Ok(())
}

/// Where a buffered row is: (chunk id, row in the chunk). Ordering is arrival order.
pub(super) type RowRef = (u64, u32);

/// Rows buffered until their window fires: the columns of each incoming batch that the
/// operator needs later, kept as Arrow arrays and gathered with `interleave` on fire. A
/// chunk is freed once none of its rows is referenced any more.
#[derive(Default)]
pub(super) struct BufferedRows {
    /// Chunks by id, starting at `first_id`; `None` once freed.
    chunks: VecDeque<Option<Chunk>>,
    first_id: u64,
    /// Memory of the chunks held (their arrays' buffers).
    bytes: usize,
}

struct Chunk {
    columns: Vec<ArrayRef>,
    /// Rows of this chunk still referenced.
    live: usize,
    /// Memory of `columns`, as counted when the chunk came.
    bytes: usize,
}

impl BufferedRows {
    /// Store a chunk with no referenced rows yet; returns its id.
    pub(super) fn push(&mut self, columns: Vec<ArrayRef>) -> u64 {
        let bytes = columns.iter().map(|c| c.get_array_memory_size()).sum();
        self.bytes += bytes;
        self.chunks.push_back(Some(Chunk { columns, live: 0, bytes }));
        self.first_id + self.chunks.len() as u64 - 1
    }

    /// Memory of the rows held: the chunks' arrays (a chunk is held whole while any of
    /// its rows is), and the chunk list.
    pub(super) fn bytes(&self) -> usize {
        self.bytes + self.chunks.len() * std::mem::size_of::<Option<Chunk>>()
    }

    fn chunk_mut(&mut self, id: u64) -> Option<&mut Chunk> {
        let pos = usize::try_from(id.checked_sub(self.first_id)?).ok()?;
        self.chunks.get_mut(pos)?.as_mut()
    }

    /// One more reference to a row of chunk `id`.
    pub(super) fn acquire(&mut self, id: u64) {
        if let Some(c) = self.chunk_mut(id) {
            c.live += 1;
        }
    }

    /// One reference less to a row of chunk `id`; frees the chunk at zero.
    pub(super) fn release(&mut self, id: u64) {
        if let Some(c) = self.chunk_mut(id) {
            c.live = c.live.saturating_sub(1);
        }
        self.free_if_unused(id);
    }

    /// Free chunk `id` if none of its rows is referenced (e.g. all were late).
    pub(super) fn free_if_unused(&mut self, id: u64) {
        let Some(pos) = id.checked_sub(self.first_id).and_then(|p| usize::try_from(p).ok()) else {
            return;
        };
        if let Some(slot) = self.chunks.get_mut(pos) {
            if slot.as_ref().is_some_and(|c| c.live == 0) {
                if let Some(chunk) = slot.take() {
                    self.bytes = self.bytes.saturating_sub(chunk.bytes);
                }
            }
        }
        while matches!(self.chunks.front(), Some(None)) {
            self.chunks.pop_front();
            self.first_id += 1;
        }
    }

    /// Column `column` of the rows `refs`, in that order.
    pub(super) fn gather(&self, column: usize, refs: &[RowRef]) -> std::result::Result<ArrayRef, ArrowError> {
        let mut arrays: Vec<&dyn Array> = Vec::new();
        let mut position = vec![usize::MAX; self.chunks.len()];
        for (pos, chunk) in self.chunks.iter().enumerate() {
            if let Some(c) = chunk {
                let col = c
                    .columns
                    .get(column)
                    .ok_or_else(|| ArrowError::InvalidArgumentError(format!("no buffered column {column}")))?;
                position[pos] = arrays.len();
                arrays.push(col.as_ref());
            }
        }
        let mut indices = Vec::with_capacity(refs.len());
        for (id, row) in refs {
            let at = id
                .checked_sub(self.first_id)
                .and_then(|p| usize::try_from(p).ok())
                .and_then(|p| position.get(p).copied())
                .filter(|a| *a != usize::MAX)
                .ok_or_else(|| ArrowError::InvalidArgumentError(format!("buffered chunk {id} was freed")))?;
            indices.push((at, *row as usize));
        }
        interleave(&arrays, &indices)
    }
}

/// Rows per output batch of a windowed operator. Many windows often fire on one watermark;
/// one batch of them all would make downstream buffers (a sink's encoded text) as large as
/// the whole result.
pub(super) const OUTPUT_BATCH_ROWS: usize = 8192;

/// Re-cut fired results into batches of about [`OUTPUT_BATCH_ROWS`] rows, in order.
pub(super) fn rebatch(
    schema: &arrow::datatypes::SchemaRef,
    batches: Vec<arrow::record_batch::RecordBatch>,
) -> std::result::Result<Vec<arrow::record_batch::RecordBatch>, ArrowError> {
    if batches.len() == 1 && batches[0].num_rows() <= OUTPUT_BATCH_ROWS {
        return Ok(batches);
    }
    let mut coalescer = arrow::compute::BatchCoalescer::new(schema.clone(), OUTPUT_BATCH_ROWS);
    for b in batches {
        coalescer.push_batch(b)?;
    }
    coalescer.finish_buffered_batch()?;
    let mut out = Vec::new();
    while let Some(b) = coalescer.next_completed_batch() {
        out.push(b);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use arrow::array::Int32Array;

    use super::*;

    #[test]
    fn buffered_rows_gather_across_chunks_and_free() {
        let mut rows = BufferedRows::default();
        let a = rows.push(vec![Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef]);
        let b = rows.push(vec![Arc::new(Int32Array::from(vec![3])) as ArrayRef]);
        let held = rows.bytes();
        assert!(held > 12, "{held}");
        rows.acquire(a);
        rows.acquire(b);
        let got = rows.gather(0, &[(b, 0), (a, 1)]).expect("gather");
        assert_eq!(got.as_primitive::<arrow::datatypes::Int32Type>().values().to_vec(), vec![3, 2]);
        rows.release(a);
        assert!(rows.gather(0, &[(a, 0)]).is_err());
        assert!(rows.bytes() < held);
        rows.release(b);
        assert!(rows.chunks.is_empty());
        assert_eq!(rows.bytes(), 0);
    }
}
