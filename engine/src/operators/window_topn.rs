//! Window Top-N: `ROW_NUMBER() OVER (PARTITION BY window_start, window_end, k ORDER BY ..)
//! <= n` over rows that already carry their window, emitted when the watermark passes the
//! window's end (`window_end - 1 <= watermark`), as Flink's `WindowRankProcessor` does.
//!
//! Rows are buffered per window as Arrow batches. When a window fires, its batches are
//! concatenated, sorted by (partition keys, ORDER BY) with a stable sort, so rows that tie
//! keep their arrival order as in Flink's `TopNBuffer`, and numbered per partition. A row
//! whose window has already fired under its effective watermark is dropped and counted
//! (Flink: `isWindowFired` in `processElement`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::kernels::sort::{LexicographicalComparator, SortColumn, SortOptions};
use arrow::compute::{cast, concat_batches, take, take_record_batch};
use arrow::datatypes::SchemaRef;
use serde::{Deserialize, Serialize};

use super::memory::btree_bytes;
use super::snapshot::{from_meta, malformed, part_columns, to_meta, Packer, Part};
use super::windowing::{effective_watermark, event_times, rebatch, require_append_only};
use super::{OperatorContext, StreamOperator};
use crate::checkpoint::StateSnapshot;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message, Timestamp, Watermark};
use crate::metrics::LateRowCounter;
use eddy_sql::plan::WindowTopNSpec;

/// Ranks the rows of each window and keeps the first `limit` per partition.
pub struct WindowTopNOperator {
    spec: WindowTopNSpec,
    input_schema: SchemaRef,
    schema: SchemaRef,
    late_rows: LateRowCounter,
    watermark: Watermark,
    /// Buffered rows by (window_end, window_start), so windows fire in end order.
    windows: BTreeMap<(Timestamp, Timestamp), Vec<RecordBatch>>,
    /// Memory of the batches in `windows` (for `state_bytes`).
    batch_bytes: usize,
}

/// Memory of a window's buffered batches.
fn batches_bytes(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::get_array_memory_size).sum()
}

impl WindowTopNOperator {
    /// A Top-N for `spec`, emitting `ctx.output_schema`: the input columns, plus the
    /// rank as a last Int64 column when `spec.emit_rank`.
    pub fn new(spec: WindowTopNSpec, ctx: OperatorContext) -> Result<Self> {
        let inputs = ctx.input_schema.fields().len();
        let expected = inputs + usize::from(spec.emit_rank);
        if ctx.output_schema.fields().len() != expected {
            return Err(EngineError::Plan(format!(
                "window Top-N: output has {} columns, expected {expected}",
                ctx.output_schema.fields().len()
            )));
        }
        if spec.window_start_column >= inputs || spec.window_end_column >= inputs {
            return Err(EngineError::Plan("window Top-N: window columns out of range".into()));
        }
        Ok(Self {
            spec,
            input_schema: ctx.input_schema,
            schema: ctx.output_schema,
            late_rows: ctx.late_rows,
            watermark: Watermark::MIN,
            windows: BTreeMap::new(),
            batch_bytes: 0,
        })
    }

    fn arrow_err(&self) -> impl Fn(arrow::error::ArrowError) -> EngineError {
        let operator = self.name();
        move |source| EngineError::Arrow { operator: operator.clone(), source }
    }

    /// The ranked rows of one fired window, in the output schema.
    fn rank(&self, data: &RecordBatch) -> Result<Option<RecordBatch>> {
        let n = data.num_rows();
        let operator = self.name();
        let expr_err = |source| EngineError::Expression { operator: operator.clone(), source };
        let arrow_err = self.arrow_err();
        let eval = |e: &Arc<dyn datafusion::physical_expr::PhysicalExpr>| {
            e.evaluate(data).and_then(|v| v.into_array(n)).map_err(&expr_err)
        };
        let mut partition = Vec::with_capacity(self.spec.partition_keys.len());
        for k in &self.spec.partition_keys {
            // Any fixed order groups a partition's rows together.
            partition.push(SortColumn { values: eval(&k.expr)?, options: None });
        }
        let mut order = partition.clone();
        for k in &self.spec.order_by {
            let options = SortOptions { descending: k.descending, nulls_first: k.nulls_first };
            order.push(SortColumn { values: eval(&k.expr.expr)?, options: Some(options) });
        }
        let mut indices: Vec<usize> = (0..n).collect();
        if !order.is_empty() {
            let cmp = LexicographicalComparator::try_new(&order).map_err(&arrow_err)?;
            // Stable: rows that tie keep their arrival order.
            indices.sort_by(|a, b| cmp.compare(*a, *b));
        }
        let same_partition = if partition.is_empty() {
            None
        } else {
            Some(LexicographicalComparator::try_new(&partition).map_err(&arrow_err)?)
        };
        let mut kept = Vec::new();
        let mut ranks = Vec::new();
        let mut rank = 0i64;
        for (pos, &row) in indices.iter().enumerate() {
            let new_partition = match (&same_partition, pos) {
                (_, 0) => true,
                (None, _) => false,
                (Some(cmp), _) => cmp.compare(indices[pos - 1], row) != Ordering::Equal,
            };
            rank = if new_partition { 1 } else { rank + 1 };
            if rank as usize <= self.spec.limit {
                kept.push(row as u32);
                ranks.push(rank);
            }
        }
        if kept.is_empty() {
            return Ok(None);
        }
        let kept = UInt32Array::from(kept);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for c in data.columns() {
            columns.push(take(c.as_ref(), &kept, None).map_err(&arrow_err)?);
        }
        if self.spec.emit_rank {
            let ranks: ArrayRef = Arc::new(Int64Array::from(ranks));
            match self.schema.fields().last() {
                Some(f) if f.data_type() != ranks.data_type() => {
                    columns.push(cast(&ranks, f.data_type()).map_err(&arrow_err)?)
                }
                _ => columns.push(ranks),
            }
        }
        Ok(Some(RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(&arrow_err)?))
    }
}

/// A checkpoint of the Top-N: the watermark and the rows of each window not fired yet.
#[derive(Serialize, Deserialize)]
struct TopNState {
    watermark: i64,
    /// In firing order; a window's rows in arrival order (ties keep it), as input columns.
    windows: Vec<WindowRows>,
}

#[derive(Serialize, Deserialize)]
struct WindowRows {
    end: i64,
    start: i64,
    part: Part,
}

impl WindowTopNOperator {
    fn snapshot(&self) -> Result<StateSnapshot> {
        let arrow_err = self.arrow_err();
        let mut packer = Packer::default();
        let mut windows = Vec::with_capacity(self.windows.len());
        for (&(end, start), batches) in &self.windows {
            let rows = concat_batches(&self.input_schema, batches).map_err(&arrow_err)?;
            let part = packer.add(rows.columns().to_vec(), rows.num_rows()).map_err(&arrow_err)?;
            windows.push(WindowRows { end, start, part });
        }
        let state = TopNState { watermark: self.watermark.0, windows };
        Ok(StateSnapshot { meta: to_meta(&self.name(), &state)?, batches: packer.finish().map_err(&arrow_err)? })
    }

    fn restore(&mut self, snapshot: StateSnapshot) -> Result<()> {
        let name = self.name();
        let state: TopNState = from_meta(&name, snapshot.meta)?;
        let mut windows = BTreeMap::new();
        for w in state.windows {
            let columns = part_columns(&name, &snapshot.batches, w.part, self.input_schema.fields().len())?;
            // Checks the columns against the input schema, which ranking relies on.
            let rows = RecordBatch::try_new(Arc::clone(&self.input_schema), columns)
                .map_err(|e| malformed(&name, format!("window [{}, {}): {e}", w.start, w.end)))?;
            if windows.insert((w.end, w.start), vec![rows]).is_some() {
                return Err(malformed(&name, format!("window [{}, {}) twice", w.start, w.end)));
            }
        }
        self.watermark = Watermark(state.watermark);
        self.batch_bytes = windows.values().map(|b| batches_bytes(b)).sum();
        self.windows = windows;
        Ok(())
    }
}

impl StreamOperator for WindowTopNOperator {
    fn name(&self) -> String {
        let keys: Vec<&str> = self.spec.partition_keys.iter().map(|k| k.display.as_str()).collect();
        let order: Vec<String> = self
            .spec
            .order_by
            .iter()
            .map(|k| format!("{} {}", k.expr.display, if k.descending { "DESC" } else { "ASC" }))
            .collect();
        format!(
            "WindowRank[partitionBy=[{}], orderBy=[{}], rowNumber<={}]",
            keys.join(", "),
            order.join(", "),
            self.spec.limit
        )
    }

    fn process_batch(&mut self, batch: Batch, _out: &mut Vec<Message>) -> Result<()> {
        require_append_only(&batch, &self.name())?;
        let arrow_err = self.arrow_err();
        let starts = event_times(batch.data.column(self.spec.window_start_column).as_ref()).map_err(&arrow_err)?;
        let ends = event_times(batch.data.column(self.spec.window_end_column).as_ref()).map_err(&arrow_err)?;
        let mut by_window: HashMap<(Timestamp, Timestamp), Vec<u32>> = HashMap::new();
        let mut late = 0;
        for row in 0..batch.num_rows() {
            // Rows without a window cannot be ranked in one (Flink fails on them; the
            // window TVF upstream never produces them).
            if starts.is_null(row) || ends.is_null(row) {
                continue;
            }
            let end = ends.value(row);
            if end.saturating_sub(1) <= effective_watermark(&batch, row, self.watermark) {
                late += 1;
                continue;
            }
            by_window.entry((end, starts.value(row))).or_default().push(row as u32);
        }
        self.late_rows.add(late);
        for (window, rows) in by_window {
            let data = if rows.len() == batch.num_rows() {
                batch.data.clone()
            } else {
                take_record_batch(&batch.data, &UInt32Array::from(rows)).map_err(&arrow_err)?
            };
            self.batch_bytes += data.get_array_memory_size();
            self.windows.entry(window).or_default().push(data);
        }
        Ok(())
    }

    fn handle_watermark(&mut self, wm: Watermark, out: &mut Vec<Message>) -> Result<()> {
        self.watermark = self.watermark.max(wm);
        let arrow_err = self.arrow_err();
        let mut ranked = Vec::new();
        while let Some(entry) = self.windows.first_entry() {
            if entry.key().0.saturating_sub(1) > self.watermark.0 {
                break;
            }
            let batches = entry.remove();
            self.batch_bytes = self.batch_bytes.saturating_sub(batches_bytes(&batches));
            let data = concat_batches(&self.input_schema, &batches).map_err(&arrow_err)?;
            if let Some(b) = self.rank(&data)? {
                ranked.push(b);
            }
        }
        for data in rebatch(&self.schema, ranked).map_err(&arrow_err)? {
            out.push(Message::Data(Batch::append(data)));
        }
        out.push(Message::Watermark(wm));
        Ok(())
    }

    /// The buffered batches and the window map.
    fn state_bytes(&self) -> usize {
        self.batch_bytes + btree_bytes::<(Timestamp, Timestamp), Vec<RecordBatch>>(self.windows.len())
    }

    fn snapshot_state(&mut self) -> Result<Option<StateSnapshot>> {
        self.snapshot().map(Some)
    }

    fn restore_state(&mut self, state: StateSnapshot) -> Result<()> {
        self.restore(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int32Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, TimeUnit};
    use datafusion::physical_expr::expressions::Column;
    use eddy_sql::plan::{ExprSpec, SortKey};

    fn input_schema() -> SchemaRef {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        Arc::new(Schema::new(vec![
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            Field::new("cat", DataType::Utf8, true),
            Field::new("item", DataType::Int32, false),
            Field::new("price", DataType::Int64, true),
        ]))
    }

    fn column(name: &str, index: usize) -> ExprSpec {
        ExprSpec { expr: Arc::new(Column::new(name, index)), display: name.to_string() }
    }

    /// Top 2 items by price (highest first) per window and category.
    fn operator(emit_rank: bool) -> (WindowTopNOperator, LateRowCounter) {
        let input = input_schema();
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        if emit_rank {
            fields.push(Field::new("rownum", DataType::Int64, false));
        }
        let spec = WindowTopNSpec {
            window_start_column: 0,
            window_end_column: 1,
            partition_keys: vec![column("cat", 2)],
            order_by: vec![SortKey { expr: column("price", 4), descending: true, nulls_first: false }],
            limit: 2,
            emit_rank,
        };
        let late_rows = LateRowCounter::detached();
        let ctx = OperatorContext {
            input_schema: input,
            output_schema: Arc::new(Schema::new(fields)),
            late_rows: late_rows.clone(),
            state_ttl: None,
        };
        (WindowTopNOperator::new(spec, ctx).expect("operator"), late_rows)
    }

    /// Rows (window_start, cat, item, price) of 10 ms windows.
    fn batch(rows: &[(i64, &str, i32, i64)]) -> Batch {
        let data = RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(TimestampMillisecondArray::from(rows.iter().map(|r| r.0 + 10).collect::<Vec<_>>())),
                Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                Arc::new(Int32Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
            ],
        )
        .expect("batch");
        Batch::append(data)
    }

    /// (window_start, cat, item, rank) of the output; rank 0 when not emitted.
    fn rows_of(out: &[Message]) -> Vec<(i64, String, i32, i64)> {
        let mut rows = Vec::new();
        for m in out {
            let Message::Data(b) = m else { continue };
            let d = &b.data;
            let starts = d.column(0).as_primitive::<arrow::datatypes::TimestampMillisecondType>();
            let cats = d.column(2).as_string::<i32>();
            let items = d.column(3).as_primitive::<Int32Type>();
            let ranks = d.columns().get(5).map(|c| c.as_primitive::<Int64Type>().clone());
            for r in 0..d.num_rows() {
                let rank = ranks.as_ref().map_or(0, |k| k.value(r));
                rows.push((starts.value(r), cats.value(r).to_string(), items.value(r), rank));
            }
        }
        rows
    }

    type Ranked = Vec<(i64, String, i32, i64)>;

    fn run(emit_rank: bool) -> (Ranked, Ranked, u64) {
        let (mut op, late) = operator(emit_rank);
        let mut out = Vec::new();
        // Window [0, 10): A has 1 (5), 3 (9), 4 (9, ties with 3 and arrived later); B has 2 (7).
        op.process_batch(batch(&[(0, "A", 1, 5), (0, "B", 2, 7), (10, "A", 5, 1), (0, "A", 3, 9)]), &mut out)
            .expect("process");
        op.process_batch(batch(&[(0, "A", 4, 9), (10, "B", 6, 3), (10, "B", 7, 8)]), &mut out).expect("process");
        op.handle_watermark(Watermark(8), &mut out).expect("watermark");
        assert!(rows_of(&out).is_empty());
        op.handle_watermark(Watermark(9), &mut out).expect("watermark");
        let first = rows_of(&out);
        assert!(matches!(out.last(), Some(Message::Watermark(Watermark(9)))));
        out.clear();
        // [0, 10) has fired: a row for it is late. [10, 20) is still open.
        op.process_batch(batch(&[(0, "A", 8, 100), (10, "A", 9, 2)]), &mut out).expect("process");
        op.handle_watermark(Watermark::MAX, &mut out).expect("watermark");
        (first, rows_of(&out), late.get())
    }

    #[test]
    fn top_two_per_window_and_partition_with_rank() {
        let (first, second, late) = run(true);
        let row = |s: i64, c: &str, i: i32, r: i64| (s, c.to_string(), i, r);
        assert_eq!(first, vec![row(0, "A", 3, 1), row(0, "A", 4, 2), row(0, "B", 2, 1)]);
        assert_eq!(second, vec![row(10, "A", 9, 1), row(10, "A", 5, 2), row(10, "B", 7, 1), row(10, "B", 6, 2)]);
        assert_eq!(late, 1);
    }

    #[test]
    fn top_two_per_window_and_partition_without_rank() {
        let (first, second, late) = run(false);
        let row = |s: i64, c: &str, i: i32| (s, c.to_string(), i, 0);
        assert_eq!(first, vec![row(0, "A", 3), row(0, "A", 4), row(0, "B", 2)]);
        assert_eq!(second, vec![row(10, "A", 9), row(10, "A", 5), row(10, "B", 7), row(10, "B", 6)]);
        assert_eq!(late, 1);
    }

    #[test]
    fn arrival_watermark_makes_a_row_late() {
        let (mut op, late) = operator(true);
        let mut out = Vec::new();
        let mut input = batch(&[(0, "A", 1, 5), (0, "A", 2, 6)]);
        input.arrival_watermarks = Some(Int64Array::from(vec![Some(8), Some(9)]));
        op.process_batch(input, &mut out).expect("process");
        op.handle_watermark(Watermark::MAX, &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![(0, "A".to_string(), 1, 1)]);
        assert_eq!(late.get(), 1);
    }

    #[test]
    fn restores_at_every_message() {
        let mut arriving = batch(&[(20, "A", 10, 4), (20, "A", 11, 6)]);
        arriving.arrival_watermarks = Some(Int64Array::from(vec![Some(28), Some(29)]));
        let input = vec![
            Message::Data(batch(&[(0, "A", 1, 5), (0, "B", 2, 7), (10, "A", 5, 1), (0, "A", 3, 9)])),
            Message::Data(batch(&[(0, "A", 4, 9), (10, "B", 6, 3), (10, "B", 7, 8)])),
            Message::Watermark(Watermark(9)),
            Message::Data(batch(&[(0, "A", 8, 100), (10, "A", 9, 2), (20, "B", 12, 1)])),
            Message::Data(arriving),
            Message::Watermark(Watermark(19)),
            Message::Data(batch(&[(20, "B", 13, 1), (10, "B", 14, 50)])),
            Message::Watermark(Watermark::MAX),
        ];
        for emit_rank in [true, false] {
            let out = crate::operators::snapshot::assert_restores_everywhere(|| operator(emit_rank).0, &input);
            assert_eq!(rows_of(&out).len(), 10);
        }
    }

    #[test]
    fn state_bytes_grow_with_buffered_rows_and_drop_when_windows_fire() {
        let (mut op, _) = operator(true);
        let mut out = Vec::new();
        assert_eq!(op.state_bytes(), 0);
        op.process_batch(batch(&[(0, "A", 1, 5), (10, "B", 2, 7)]), &mut out).expect("process");
        let two_windows = op.state_bytes();
        op.process_batch(batch(&[(0, "A", 3, 9), (0, "A", 4, 1)]), &mut out).expect("process");
        let more = op.state_bytes();
        assert!(more > two_windows && two_windows > 0, "{more} > {two_windows} > 0");
        // [0, 10) fires: only [10, 20) is left.
        op.handle_watermark(Watermark(9), &mut out).expect("watermark");
        let one_window = op.state_bytes();
        assert!(0 < one_window && one_window < more, "0 < {one_window} < {more}");
        op.handle_watermark(Watermark::MAX, &mut out).expect("watermark");
        assert_eq!(op.state_bytes(), 0);
    }
}
