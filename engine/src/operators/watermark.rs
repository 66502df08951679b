//! Watermark assigner: turns the `WATERMARK FOR ts AS expr` strategy into watermarks.
//!
//! Per subtask (= per source split), the watermark is the maximum of `expr` over the rows
//! seen so far. End of input emits [`Watermark::MAX`] so every window fires.
//!
//! With `pipeline.auto-watermark-interval` = 0, Flink emits a watermark after every row
//! that advances it, so a row can be late relative to the rows just before it in the same
//! batch. The assigner keeps that exact: it records, per row, the watermark in effect when
//! the row arrived (a running maximum over the batch, `Batch::arrival_watermarks`), and
//! emits the batch's final watermark after the batch. With a non-zero interval the
//! watermark is emitted at most once per interval of wall-clock time.

use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};

use super::StreamOperator;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message, Watermark};
use eddy_sql::plan::WatermarkSpec;

/// Generates watermarks from the rowtime column.
pub struct WatermarkOperator {
    spec: WatermarkSpec,
    /// The last watermark emitted.
    current: Watermark,
    /// The largest watermark value seen (emitted once the interval allows).
    pending: Watermark,
    last_emit: Option<Instant>,
}

impl WatermarkOperator {
    /// A generator for `spec`.
    pub fn new(spec: WatermarkSpec) -> Self {
        Self { spec, current: Watermark::MIN, pending: Watermark::MIN, last_emit: None }
    }

    /// The watermark expression per row, in ms.
    fn values(&self, batch: &Batch) -> Result<Int64Array> {
        let value = self
            .spec
            .expr
            .expr
            .evaluate(&batch.data)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|source| EngineError::Expression { operator: self.name(), source })?;
        let millis =
            to_millis(value.as_ref()).map_err(|source| EngineError::Arrow { operator: self.name(), source })?;
        Ok(millis.as_primitive::<Int64Type>().clone())
    }

    fn emit_due(&self) -> bool {
        match (self.spec.interval_ms, self.last_emit) {
            (0, _) | (_, None) => true,
            (ms, Some(t)) => t.elapsed() >= Duration::from_millis(ms),
        }
    }
}

/// Timestamps of any unit as i64 milliseconds.
pub(crate) fn to_millis(a: &dyn Array) -> std::result::Result<arrow::array::ArrayRef, arrow::error::ArrowError> {
    let ms = cast(a, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    cast(&ms, &DataType::Int64)
}

impl StreamOperator for WatermarkOperator {
    fn name(&self) -> String {
        format!("WatermarkAssigner[{}]", self.spec.expr.display)
    }

    fn process_batch(&mut self, mut batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        let values = self.values(&batch)?;
        if self.spec.interval_ms == 0 {
            // The watermark before each row: the running maximum of the rows before it.
            let mut running = self.pending.0;
            let mut arrivals = Vec::with_capacity(values.len());
            let mut moved_inside = false;
            for v in values.iter() {
                arrivals.push(running);
                moved_inside |= running > self.current.0;
                if let Some(v) = v {
                    running = running.max(v);
                }
            }
            // Rows behind the current watermark need no per-row value: it applies.
            batch.arrival_watermarks = moved_inside.then(|| Int64Array::from(arrivals));
            self.pending = Watermark(running);
        } else {
            // Flink's periodic emission: rows see the last emitted watermark.
            batch.arrival_watermarks = None;
            if let Some(m) = arrow::compute::max(&values) {
                self.pending = self.pending.max(Watermark(m));
            }
        }
        out.push(Message::Data(batch));
        if self.pending > self.current && self.emit_due() {
            self.current = self.pending;
            self.last_emit = Some(Instant::now());
            out.push(Message::Watermark(self.current));
        }
        Ok(())
    }

    fn handle_watermark(&mut self, _wm: Watermark, _out: &mut Vec<Message>) -> Result<()> {
        // Watermarks from upstream (none for a source) are replaced by this assigner's.
        Ok(())
    }

    fn on_end(&mut self, out: &mut Vec<Message>) -> Result<()> {
        self.current = Watermark::MAX;
        out.push(Message::Watermark(Watermark::MAX));
        Ok(())
    }
}
