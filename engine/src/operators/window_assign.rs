//! Window table function used directly (`SELECT * FROM TABLE(TUMBLE(..))`, not aggregated):
//! appends `window_start`, `window_end` and `window_time` to every row.
//!
//! TUMBLE gives one output row per input row; HOP and CUMULATE give one per window the row
//! falls in. This mirrors Flink's `AlignedWindowTableFunctionOperator`, which assigns and
//! emits per record: it never drops late rows (lateness is for the operators that close
//! windows), and it drops rows whose time attribute is NULL (Flink counts those under
//! `numNullRowTimeRecordsDropped`, not as late). Window order per row follows Flink's
//! assigners: HOP from the latest window start down, CUMULATE from the smallest window up.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::SchemaRef;

use super::windowing::{check_window, event_times, timestamp_column, window_start};
use super::{OperatorContext, StreamOperator};
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message, Timestamp};
use eddy_sql::plan::{WindowAssignSpec, WindowKind};

/// Appends the window columns of TUMBLE, HOP or CUMULATE to each row.
pub struct WindowAssignOperator {
    spec: WindowAssignSpec,
    schema: SchemaRef,
}

impl WindowAssignOperator {
    /// An assigner for `spec`, producing `ctx.output_schema` (the input columns, then
    /// `window_start`, `window_end`, `window_time`). SESSION is a set-semantics window and
    /// cannot be assigned row by row: it is a plan error here.
    pub fn new(spec: WindowAssignSpec, ctx: OperatorContext) -> Result<Self> {
        check_window(&spec.window)?;
        if matches!(spec.window, WindowKind::Session { .. }) {
            return Err(EngineError::Plan("SESSION windows can only be aggregated, not assigned to rows".into()));
        }
        let inputs = ctx.input_schema.fields().len();
        if ctx.output_schema.fields().len() != inputs + 3 {
            return Err(EngineError::Plan(format!(
                "window table function: output has {} columns, expected the {inputs} input columns and 3 window columns",
                ctx.output_schema.fields().len()
            )));
        }
        if spec.time_column >= inputs {
            return Err(EngineError::Plan(format!("window table function: no time column #{}", spec.time_column)));
        }
        Ok(Self { spec, schema: ctx.output_schema })
    }

    /// The windows of a row at `ts`, in Flink's order, as (start, end).
    fn windows(&self, ts: Timestamp, out: &mut Vec<(Timestamp, Timestamp)>) {
        match self.spec.window {
            WindowKind::Tumble { size, offset } => {
                let start = window_start(ts, offset, size);
                out.push((start, start.saturating_add(size)));
            }
            WindowKind::Hop { slide, size, offset } => {
                // Flink's SlidingWindowAssigner: from the last window start down to the first
                // window that still contains `ts`.
                let mut start = window_start(ts, offset, slide);
                let first_excluded = ts.saturating_sub(size);
                while start > first_excluded {
                    out.push((start, start.saturating_add(size)));
                    start = match start.checked_sub(slide) {
                        Some(s) => s,
                        None => break,
                    };
                }
            }
            WindowKind::Cumulate { step, size, offset } => {
                // Flink's CumulativeWindowAssigner: every window of the period whose end is
                // after `ts`, smallest first.
                let start = window_start(ts, offset, size);
                let last_end = start.saturating_add(size);
                let mut end = window_start(ts, offset, step).saturating_add(step);
                while end <= last_end {
                    out.push((start, end));
                    end = match end.checked_add(step) {
                        Some(e) => e,
                        None => break,
                    };
                }
            }
            WindowKind::Session { .. } => {}
        }
    }
}

impl StreamOperator for WindowAssignOperator {
    fn name(&self) -> String {
        format!("WindowTableFunction[{}]", self.spec.window)
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        let arrow_err = |source| EngineError::Arrow { operator: self.name(), source };
        let times = event_times(batch.data.column(self.spec.time_column).as_ref()).map_err(arrow_err)?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        let mut starts = Vec::with_capacity(batch.num_rows());
        let mut ends = Vec::with_capacity(batch.num_rows());
        let mut windows = Vec::new();
        for row in 0..batch.num_rows() {
            if times.is_null(row) {
                continue;
            }
            windows.clear();
            self.windows(times.value(row), &mut windows);
            for (start, end) in &windows {
                rows.push(row as u32);
                starts.push(*start);
                ends.push(*end);
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let times: Vec<i64> = ends.iter().map(|e| e.saturating_sub(1)).collect();
        let indices = UInt32Array::from(rows);
        let fields = self.schema.fields();
        let inputs = batch.data.num_columns();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.len());
        for c in batch.data.columns() {
            columns.push(take(c.as_ref(), &indices, None).map_err(arrow_err)?);
        }
        columns.push(timestamp_column(starts, fields[inputs].data_type()).map_err(arrow_err)?);
        columns.push(timestamp_column(ends, fields[inputs + 1].data_type()).map_err(arrow_err)?);
        columns.push(timestamp_column(times, fields[inputs + 2].data_type()).map_err(arrow_err)?);
        let data = RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(arrow_err)?;
        out.push(Message::Data(batch.taken(data, &indices).map_err(arrow_err)?));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int32Array, Int64Array, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use crate::message::Watermark;
    use crate::metrics::LateRowCounter;

    fn ts_type() -> DataType {
        DataType::Timestamp(TimeUnit::Millisecond, None)
    }

    fn schemas() -> (SchemaRef, SchemaRef) {
        let input = Schema::new(vec![Field::new("id", DataType::Int32, false), Field::new("ts", ts_type(), true)]);
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("window_start", ts_type(), false));
        fields.push(Field::new("window_end", ts_type(), false));
        fields.push(Field::new("window_time", ts_type(), false));
        (Arc::new(input), Arc::new(Schema::new(fields)))
    }

    fn run(window: WindowKind, ids: Vec<i32>, ts: Vec<Option<i64>>) -> Vec<(i32, i64, i64, i64, i64)> {
        let (input, output) = schemas();
        let ctx = OperatorContext {
            input_schema: input.clone(),
            output_schema: output,
            late_rows: LateRowCounter::detached(),
            state_ttl: None,
        };
        let mut op = WindowAssignOperator::new(WindowAssignSpec { window, time_column: 1 }, ctx).expect("valid");
        let data = RecordBatch::try_new(
            input,
            vec![Arc::new(Int32Array::from(ids)), Arc::new(TimestampMillisecondArray::from(ts))],
        )
        .expect("batch");
        let mut out = Vec::new();
        op.process_batch(Batch::append(data), &mut out).expect("process");
        let mut rows = Vec::new();
        for m in out {
            let Message::Data(b) = m else { continue };
            let col = |i: usize| b.data.column(i).as_primitive::<arrow::datatypes::TimestampMillisecondType>().clone();
            let ids = b.data.column(0).as_primitive::<arrow::datatypes::Int32Type>().clone();
            let (ts, s, e, t) = (col(1), col(2), col(3), col(4));
            for r in 0..b.num_rows() {
                rows.push((ids.value(r), ts.value(r), s.value(r), e.value(r), t.value(r)));
            }
        }
        rows
    }

    #[test]
    fn tumble_one_row_per_row_and_null_time_dropped() {
        let rows =
            run(WindowKind::Tumble { size: 10, offset: 0 }, vec![1, 2, 3, 4], vec![Some(0), Some(9), Some(10), None]);
        assert_eq!(rows, vec![(1, 0, 0, 10, 9), (2, 9, 0, 10, 9), (3, 10, 10, 20, 19)]);
    }

    #[test]
    fn tumble_with_offset_and_negative_time() {
        let rows = run(WindowKind::Tumble { size: 10, offset: 3 }, vec![1, 2], vec![Some(2), Some(-8)]);
        assert_eq!(rows, vec![(1, 2, -7, 3, 2), (2, -8, -17, -7, -8)]);
    }

    #[test]
    fn hop_expands_latest_window_first() {
        // size 10, slide 5: ts 7 is in [5, 15) and [0, 10); ts 10 in [10, 20) and [5, 15).
        let rows = run(WindowKind::Hop { slide: 5, size: 10, offset: 0 }, vec![1, 2], vec![Some(7), Some(10)]);
        assert_eq!(rows, vec![(1, 7, 5, 15, 14), (1, 7, 0, 10, 9), (2, 10, 10, 20, 19), (2, 10, 5, 15, 14)]);
    }

    #[test]
    fn hop_size_not_a_multiple_of_slide() {
        // size 10, slide 4: ts 9 is in [8, 18), [4, 14), [0, 10).
        let rows = run(WindowKind::Hop { slide: 4, size: 10, offset: 0 }, vec![1], vec![Some(9)]);
        assert_eq!(rows, vec![(1, 9, 8, 18, 17), (1, 9, 4, 14, 13), (1, 9, 0, 10, 9)]);
    }

    #[test]
    fn cumulate_expands_windows_ending_after_the_row() {
        // step 5, size 15: ts 6 is in [0, 10) and [0, 15); ts 0 in all three; ts 15 starts a new period.
        let rows =
            run(WindowKind::Cumulate { step: 5, size: 15, offset: 0 }, vec![1, 2, 3], vec![Some(6), Some(0), Some(15)]);
        assert_eq!(
            rows,
            vec![
                (1, 6, 0, 10, 9),
                (1, 6, 0, 15, 14),
                (2, 0, 0, 5, 4),
                (2, 0, 0, 10, 9),
                (2, 0, 0, 15, 14),
                (3, 15, 15, 20, 19),
                (3, 15, 15, 25, 24),
                (3, 15, 15, 30, 29)
            ]
        );
    }

    #[test]
    fn arrival_watermarks_follow_the_expanded_rows_and_late_rows_stay() {
        let (input, output) = schemas();
        let ctx = OperatorContext {
            input_schema: input.clone(),
            output_schema: output,
            late_rows: LateRowCounter::detached(),
            state_ttl: None,
        };
        let late_rows = ctx.late_rows.clone();
        let mut op = WindowAssignOperator::new(
            WindowAssignSpec { window: WindowKind::Hop { slide: 5, size: 10, offset: 0 }, time_column: 1 },
            ctx,
        )
        .expect("valid");
        let data = RecordBatch::try_new(
            input,
            vec![Arc::new(Int32Array::from(vec![1, 2])), Arc::new(TimestampMillisecondArray::from(vec![100, 3]))],
        )
        .expect("batch");
        let batch = Batch { arrival_watermarks: Some(Int64Array::from(vec![None, Some(100)])), ..Batch::append(data) };
        let mut out = Vec::new();
        op.handle_watermark(Watermark(100), &mut out).expect("wm");
        op.process_batch(batch, &mut out).expect("process");
        let Some(Message::Data(b)) = out.get(1) else { panic!("no data: {out:?}") };
        assert_eq!(b.num_rows(), 4);
        let wms: Vec<Option<i64>> = b.arrival_watermarks.as_ref().expect("kept").iter().collect();
        assert_eq!(wms, vec![None, None, Some(100), Some(100)]);
        assert_eq!(late_rows.get(), 0);
    }

    #[test]
    fn session_is_a_plan_error() {
        let (input, output) = schemas();
        let ctx = OperatorContext {
            input_schema: input,
            output_schema: output,
            late_rows: LateRowCounter::detached(),
            state_ttl: None,
        };
        let err =
            WindowAssignOperator::new(WindowAssignSpec { window: WindowKind::Session { gap: 5 }, time_column: 1 }, ctx);
        assert!(matches!(err, Err(EngineError::Plan(_))));
    }
}
