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
//! watermark is emitted at most once per interval of wall-clock time; one held back goes out
//! on a timer when it is due, even if no more rows come. A split without rows for
//! `table.exec.source.idle-timeout` is declared idle (on a timer, or on an empty batch).

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
    /// When rows last arrived, and whether `Idle` was sent since.
    last_rows: Instant,
    idle: bool,
}

impl WatermarkOperator {
    /// A generator for `spec`.
    pub fn new(spec: WatermarkSpec) -> Self {
        Self {
            spec,
            current: Watermark::MIN,
            pending: Watermark::MIN,
            last_emit: None,
            last_rows: Instant::now(),
            idle: false,
        }
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

    /// Processing time: the watermark is the wall clock, 1 ms behind it.
    fn emit_clock(&mut self, now: Instant, out: &mut Vec<Message>) {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let clock = Watermark(millis - 1);
        self.last_emit = Some(now);
        if clock > self.current {
            self.current = clock;
            out.push(Message::Watermark(clock));
        }
    }

    /// When the split becomes idle without more rows (`table.exec.source.idle-timeout`);
    /// `None` if that is off or it already is.
    fn idle_at(&self) -> Option<Instant> {
        let timeout = self.spec.idle_timeout_ms;
        (timeout > 0 && !self.idle).then(|| self.last_rows + Duration::from_millis(timeout))
    }

    /// Declare the split idle once its timeout has passed without rows, so it stops holding
    /// back the watermark downstream.
    fn idle_if_due(&mut self, now: Instant, out: &mut Vec<Message>) {
        if self.idle_at().is_some_and(|at| now >= at) {
            self.idle = true;
            out.push(Message::Idle);
        }
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
        if self.spec.processing_time {
            // The rows' time was read from the clock before this point, so a watermark just
            // behind the clock never makes them late.
            out.push(Message::Data(batch));
            self.emit_clock(Instant::now(), out);
            return Ok(());
        }
        if batch.num_rows() == 0 {
            // A source waiting for data.
            self.idle_if_due(Instant::now(), out);
            return Ok(());
        }
        self.last_rows = Instant::now();
        self.idle = false;
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

    fn next_processing_time(&self) -> Option<Instant> {
        if self.spec.processing_time {
            let every = Duration::from_millis(self.spec.interval_ms.max(1));
            return Some(self.last_emit.map_or_else(Instant::now, |t| t + every));
        }
        // A watermark held back by the interval goes out when it is due, even if no more
        // rows come; a split with no rows for the idle timeout is declared idle.
        let periodic = (self.pending > self.current && self.spec.interval_ms > 0)
            .then(|| self.last_emit.map(|t| t + Duration::from_millis(self.spec.interval_ms)))
            .flatten();
        periodic.into_iter().chain(self.idle_at()).min()
    }

    fn on_processing_time(&mut self, now: Instant, out: &mut Vec<Message>) -> Result<()> {
        if self.spec.processing_time {
            self.emit_clock(now, out);
            return Ok(());
        }
        if self.pending > self.current
            && self.last_emit.is_some_and(|t| now >= t + Duration::from_millis(self.spec.interval_ms))
        {
            self.current = self.pending;
            self.last_emit = Some(now);
            out.push(Message::Watermark(self.current));
        }
        self.idle_if_due(now, out);
        Ok(())
    }

    fn on_end(&mut self, out: &mut Vec<Message>) -> Result<()> {
        self.current = Watermark::MAX;
        out.push(Message::Watermark(Watermark::MAX));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::TimestampMillisecondArray;
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;
    use datafusion::physical_expr::expressions::Column;
    use eddy_sql::plan::ExprSpec;

    use super::*;

    fn operator(interval_ms: u64, idle_timeout_ms: u64) -> WatermarkOperator {
        // WATERMARK FOR ts AS ts (the delay does not matter here).
        let expr = ExprSpec { expr: Arc::new(Column::new("ts", 0)), display: "ts".into() };
        WatermarkOperator::new(WatermarkSpec {
            rowtime_column: 0,
            expr,
            interval_ms,
            idle_timeout_ms,
            processing_time: false,
        })
    }

    fn batch(ts: &[Option<i64>]) -> Batch {
        let schema = Schema::new(vec![Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true)]);
        let col = TimestampMillisecondArray::from(ts.to_vec());
        Batch::append(RecordBatch::try_new(Arc::new(schema), vec![Arc::new(col)]).unwrap())
    }

    fn split(out: Vec<Message>) -> (Option<Vec<i64>>, Vec<i64>) {
        let mut arrivals = None;
        let mut wms = Vec::new();
        for m in out {
            match m {
                Message::Data(b) => arrivals = b.arrival_watermarks.map(|a| a.values().to_vec()),
                Message::Watermark(w) => wms.push(w.0),
                _ => {}
            }
        }
        (arrivals, wms)
    }

    #[test]
    fn per_row_arrival_watermarks_with_interval_zero() {
        let mut op = operator(0, 0);
        let mut out = Vec::new();
        op.process_batch(batch(&[Some(10), Some(30), None, Some(20), Some(40)]), &mut out).unwrap();
        let (arrivals, wms) = split(out);
        // The watermark before each row: the running max of the rows before it.
        assert_eq!(arrivals, Some(vec![i64::MIN, 10, 30, 30, 30]));
        assert_eq!(wms, vec![40]);
        // A batch that does not move the watermark needs no per-row values.
        let mut out = Vec::new();
        op.process_batch(batch(&[Some(35), Some(39)]), &mut out).unwrap();
        assert_eq!(split(out), (None, vec![]));
        // Only rows after an advance inside the batch see a newer watermark.
        let mut out = Vec::new();
        op.process_batch(batch(&[Some(41), Some(5)]), &mut out).unwrap();
        assert_eq!(split(out), (Some(vec![40, 41]), vec![41]));
        let mut out = Vec::new();
        op.on_end(&mut out).unwrap();
        assert_eq!(split(out).1, vec![i64::MAX]);
    }

    #[test]
    fn periodic_watermarks_apply_to_whole_batches() {
        let mut op = operator(60_000, 0);
        let mut out = Vec::new();
        op.process_batch(batch(&[Some(10), Some(30)]), &mut out).unwrap();
        assert_eq!(split(out), (None, vec![30]), "the first watermark goes out at once");
        let mut out = Vec::new();
        op.process_batch(batch(&[Some(50)]), &mut out).unwrap();
        assert_eq!(split(out), (None, vec![]), "then at most once per interval");
    }

    #[test]
    fn quiet_source_becomes_idle_once() {
        let mut op = operator(0, 1);
        let mut out = Vec::new();
        op.process_batch(batch(&[Some(10)]), &mut out).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let mut out = Vec::new();
        op.process_batch(batch(&[]), &mut out).unwrap();
        assert!(matches!(out.as_slice(), [Message::Idle]), "{out:?}");
        let mut out = Vec::new();
        op.process_batch(batch(&[]), &mut out).unwrap();
        assert!(out.is_empty(), "idle is said once");
        let mut out = Vec::new();
        op.process_batch(batch(&[Some(20)]), &mut out).unwrap();
        assert_eq!(split(out).1, vec![20]);
    }

    #[test]
    fn held_back_watermark_and_idleness_go_out_on_timers() {
        let mut op = operator(50, 200);
        let mut out = Vec::new();
        op.process_batch(batch(&[Some(10)]), &mut out).unwrap();
        op.process_batch(batch(&[Some(20)]), &mut out).unwrap();
        assert_eq!(split(out).1, vec![10], "20 is held back by the interval");
        let due = op.next_processing_time().expect("a timer for the held-back watermark");
        let mut out = Vec::new();
        op.on_processing_time(due, &mut out).unwrap();
        assert_eq!(split(out).1, vec![20]);
        // Nothing held back: the next timer is the idle timeout.
        let idle_at = op.next_processing_time().expect("idle timer");
        assert!(idle_at > due);
        let mut out = Vec::new();
        op.on_processing_time(idle_at, &mut out).unwrap();
        assert!(matches!(out.as_slice(), [Message::Idle]), "{out:?}");
        assert_eq!(op.next_processing_time(), None);
    }
}
