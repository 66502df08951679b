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
//!
//! **Partitions.** A split that reads several partitions (Kafka) marks its batches with the
//! partition they come from (`Batch::partition`). Then, as Flink's per-partition
//! watermarks, each partition keeps its own maximum, and the split's watermark is the
//! minimum over the partitions that are neither idle nor ended:
//!
//! ```text
//!  partition 0: rows .. 30        \
//!  partition 1: rows .. 20  (min) -+-> split watermark 20
//!  partition 2: idle or ended     /    (left out)
//! ```
//!
//! A partition is announced by an empty batch before its rows and holds the watermark back
//! from then on, even before its first row. The idle timeout applies per partition: one
//! without rows for that long is left out until it has rows again; when every partition left
//! is idle the split says `Idle`. An ended partition is left out for good; when all have
//! ended the split says `Idle` too (a split given no partition marks one as ended). Per-row arrival watermarks stay exact:
//! a row's is the minimum of its own partition's maximum before it and the other
//! partitions' watermarks. Watermarks only move forward: a partition announced (or back
//! from idleness) behind the emitted watermark holds it where it is. Marked empty batches
//! are consumed here; rows go on without their mark. A source marks all its batches or
//! none; an unmarked batch in a marked split counts as one more partition.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_expr::PhysicalExpr;

use serde::{Deserialize, Serialize};

use super::snapshot::{from_meta, to_meta};
use super::StreamOperator;
use crate::checkpoint::StateSnapshot;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message, Watermark};
use eddy_sql::plan::WatermarkSpec;

/// Generates watermarks from the rowtime column.
pub struct WatermarkOperator {
    spec: WatermarkSpec,
    /// The last watermark emitted.
    current: Watermark,
    /// The largest watermark value seen (emitted once the interval allows). With partitions:
    /// the minimum over the partitions that hold the watermark back (`current` when none do).
    pending: Watermark,
    last_emit: Option<Instant>,
    /// When rows last arrived (without partitions), and whether `Idle` was sent since.
    last_rows: Instant,
    idle: bool,
    /// Per partition (`None`: rows without a mark), once the source marks its batches;
    /// empty for a split that is one stream.
    partitions: BTreeMap<Option<u32>, PartitionState>,
    /// The expression only adds a constant to the rowtime (`ts - INTERVAL '5' SECOND`, or
    /// `ts`): a batch's largest value is the expression at the row of the largest rowtime,
    /// so periodic emission evaluates it on one row, not on every row.
    shifts_rowtime: bool,
}

/// One partition of a split: its own watermark and whether it holds the split's back.
#[derive(Debug, Clone, Copy)]
struct PartitionState {
    /// The largest watermark value of its rows.
    pending: Watermark,
    /// When its rows last arrived (or it was announced).
    last_rows: Instant,
    /// No rows for the idle timeout.
    idle: bool,
    /// No more rows will come.
    ended: bool,
}

impl PartitionState {
    fn new(now: Instant) -> Self {
        Self { pending: Watermark::MIN, last_rows: now, idle: false, ended: false }
    }

    /// Whether the split's watermark waits for this partition.
    fn holds_back(&self) -> bool {
        !self.idle && !self.ended
    }
}

impl WatermarkOperator {
    /// A generator for `spec`.
    pub fn new(spec: WatermarkSpec) -> Self {
        Self {
            shifts_rowtime: shifts_column(spec.expr.expr.as_ref(), spec.rowtime_column),
            spec,
            current: Watermark::MIN,
            pending: Watermark::MIN,
            last_emit: None,
            last_rows: Instant::now(),
            idle: false,
            partitions: BTreeMap::new(),
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

    /// The largest watermark value of the batch's rows (`None`: all null).
    fn batch_max(&self, batch: &Batch) -> Result<Option<i64>> {
        if !self.shifts_rowtime {
            return Ok(arrow::compute::max(&self.values(batch)?));
        }
        let rowtime = batch.data.column(self.spec.rowtime_column);
        let rowtime =
            to_millis(rowtime.as_ref()).map_err(|source| EngineError::Arrow { operator: self.name(), source })?;
        let rowtime = rowtime.as_primitive::<Int64Type>();
        let mut latest: Option<(usize, i64)> = None;
        for (i, v) in rowtime.iter().enumerate() {
            if let Some(v) = v {
                if latest.is_none_or(|(_, m)| v > m) {
                    latest = Some((i, v));
                }
            }
        }
        let Some((row, _)) = latest else { return Ok(None) };
        let one = Batch::append(batch.data.slice(row, 1));
        Ok(self.values(&one)?.iter().next().flatten())
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

    /// When the split (or, with partitions, the next partition) becomes idle without more
    /// rows (`table.exec.source.idle-timeout`); `None` if that is off or it already is.
    fn idle_at(&self) -> Option<Instant> {
        let timeout = self.spec.idle_timeout_ms;
        if self.partitions.is_empty() {
            return (timeout > 0 && !self.idle).then(|| self.last_rows + Duration::from_millis(timeout));
        }
        if timeout == 0 {
            return None;
        }
        self.partitions.values().filter(|p| p.holds_back()).map(|p| p.last_rows + Duration::from_millis(timeout)).min()
    }

    /// Declare the split (or, with partitions, each partition) idle once its timeout has
    /// passed without rows, so it stops holding back the watermark downstream (or the
    /// other partitions).
    fn idle_if_due(&mut self, now: Instant, out: &mut Vec<Message>) {
        if self.partitions.is_empty() {
            if self.idle_at().is_some_and(|at| now >= at) {
                self.idle = true;
                out.push(Message::Idle);
            }
            return;
        }
        if self.spec.idle_timeout_ms > 0 {
            let timeout = Duration::from_millis(self.spec.idle_timeout_ms);
            for p in self.partitions.values_mut() {
                if p.holds_back() && now >= p.last_rows + timeout {
                    p.idle = true;
                }
            }
        }
        self.advance_partitions(now, out);
    }

    /// With partitions: emit the split's watermark, the minimum over the partitions that
    /// hold it back, if it moved forward and the interval allows; say `Idle` once when every
    /// partition left is idle.
    fn advance_partitions(&mut self, now: Instant, out: &mut Vec<Message>) {
        self.pending =
            self.partitions.values().filter(|p| p.holds_back()).map(|p| p.pending).min().unwrap_or(self.current);
        if self.pending > self.current && self.emit_due_at(now) {
            self.current = self.pending;
            self.last_emit = Some(now);
            out.push(Message::Watermark(self.current));
        }
        // Every partition idle or ended: the split holds nobody back. This is also how a
        // split with no partition at all (more tasks than partitions) leaves the
        // downstream watermarks alone, as an idle split does in Flink.
        let all_quiet = self.partitions.values().all(|p| !p.holds_back());
        if all_quiet && !self.partitions.is_empty() && !self.idle {
            self.idle = true;
            out.push(Message::Idle);
        }
    }

    /// A batch of a split whose source marks partitions (see the module doc).
    fn process_partitioned(&mut self, mut batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        let now = Instant::now();
        let mark = batch.partition.take();
        let key = mark.map(|m| m.partition);
        // A partition seen for the first time holds the watermark back from now on.
        let mut state = self.partitions.remove(&key).unwrap_or_else(|| PartitionState::new(now));
        if batch.num_rows() > 0 {
            state.last_rows = now;
            state.idle = false;
            self.idle = false;
            let values = self.values(&batch)?;
            if self.spec.interval_ms == 0 {
                // The watermark before each row: its partition's running maximum, held back
                // by the other partitions.
                let others = self.partitions.values().filter(|p| p.holds_back()).map(|p| p.pending.0).min();
                let cap = others.unwrap_or(i64::MAX);
                let mut running = state.pending.0;
                let mut arrivals = Vec::with_capacity(values.len());
                let mut moved_inside = false;
                for v in values.iter() {
                    let arrival = running.min(cap);
                    arrivals.push(arrival);
                    moved_inside |= arrival > self.current.0;
                    if let Some(v) = v {
                        running = running.max(v);
                    }
                }
                batch.arrival_watermarks = moved_inside.then(|| Int64Array::from(arrivals));
                state.pending = Watermark(running);
            } else {
                batch.arrival_watermarks = None;
                if let Some(m) = self.batch_max(&batch)? {
                    state.pending = state.pending.max(Watermark(m));
                }
            }
            out.push(Message::Data(batch));
        }
        if mark.is_some_and(|m| m.ended) {
            state.ended = true;
        }
        self.partitions.insert(key, state);
        self.idle_if_due(now, out);
        Ok(())
    }

    fn emit_due(&self) -> bool {
        match (self.spec.interval_ms, self.last_emit) {
            (0, _) | (_, None) => true,
            (ms, Some(t)) => t.elapsed() >= Duration::from_millis(ms),
        }
    }

    fn emit_due_at(&self, now: Instant) -> bool {
        match (self.spec.interval_ms, self.last_emit) {
            (0, _) | (_, None) => true,
            (ms, Some(t)) => now >= t + Duration::from_millis(ms),
        }
    }
}

/// A checkpoint of the assigner: its watermarks, and per partition its own one and whether
/// it holds the split's back.
///
/// Wall-clock state is not kept: after a restore the idle timeouts and the emission
/// interval start again from the restore. Nor is whether the split said `Idle`: the
/// downstream subtasks restart without knowing it, so a restored split says it again once
/// it is quiet (at once, on the next batch or timer, if every partition left is idle).
#[derive(Serialize, Deserialize)]
struct WatermarkState {
    /// The last watermark emitted.
    current: i64,
    /// The largest watermark value seen (without partitions).
    pending: i64,
    /// Whether a watermark was emitted yet (the first one goes out at once).
    emitted: bool,
    partitions: Vec<PartitionCheckpoint>,
}

#[derive(Serialize, Deserialize)]
struct PartitionCheckpoint {
    /// `None`: the rows without a mark.
    partition: Option<u32>,
    pending: i64,
    idle: bool,
    ended: bool,
}

/// Whether `expr` is column `column`, or it plus or minus a literal.
fn shifts_column(expr: &dyn PhysicalExpr, column: usize) -> bool {
    fn any(e: &dyn PhysicalExpr) -> &dyn std::any::Any {
        e
    }
    let is_column = |e: &dyn PhysicalExpr| any(e).downcast_ref::<Column>().is_some_and(|c| c.index() == column);
    if is_column(expr) {
        return true;
    }
    let Some(binary) = any(expr).downcast_ref::<BinaryExpr>() else { return false };
    matches!(binary.op(), Operator::Minus | Operator::Plus)
        && is_column(binary.left().as_ref())
        && any(binary.right().as_ref()).downcast_ref::<Literal>().is_some()
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
            // behind the clock never makes them late. (Partitions do not matter here.)
            if batch.partition.take().is_none() || batch.num_rows() > 0 {
                out.push(Message::Data(batch));
            }
            self.emit_clock(Instant::now(), out);
            return Ok(());
        }
        if batch.num_rows() == 0 && batch.partition.is_none() {
            // A source waiting for data.
            self.idle_if_due(Instant::now(), out);
            return Ok(());
        }
        if batch.partition.is_some() || !self.partitions.is_empty() {
            return self.process_partitioned(batch, out);
        }
        self.last_rows = Instant::now();
        self.idle = false;
        if self.spec.interval_ms == 0 {
            let values = self.values(&batch)?;
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
            if let Some(m) = self.batch_max(&batch)? {
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

    fn snapshot_state(&mut self) -> Result<Option<StateSnapshot>> {
        let state = WatermarkState {
            current: self.current.0,
            pending: self.pending.0,
            emitted: self.last_emit.is_some(),
            partitions: self
                .partitions
                .iter()
                .map(|(partition, p)| PartitionCheckpoint {
                    partition: *partition,
                    pending: p.pending.0,
                    idle: p.idle,
                    ended: p.ended,
                })
                .collect(),
        };
        Ok(Some(StateSnapshot::meta(to_meta(&self.name(), &state)?)))
    }

    fn restore_state(&mut self, state: StateSnapshot) -> Result<()> {
        let state: WatermarkState = from_meta(&self.name(), state.meta)?;
        let now = Instant::now();
        self.current = Watermark(state.current);
        self.pending = Watermark(state.pending);
        self.last_emit = state.emitted.then_some(now);
        self.last_rows = now;
        self.idle = false;
        self.partitions = state
            .partitions
            .into_iter()
            .map(|p| {
                let restored =
                    PartitionState { pending: Watermark(p.pending), last_rows: now, idle: p.idle, ended: p.ended };
                (p.partition, restored)
            })
            .collect();
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
    fn periodic_watermark_of_a_shifted_rowtime_is_taken_at_the_latest_row() {
        use arrow::datatypes::IntervalDayTime;
        use datafusion::common::ScalarValue;
        use datafusion::physical_expr::expressions::{BinaryExpr, Literal};
        let schema = Schema::new(vec![Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true)]);
        let ts = || Arc::new(Column::new("ts", 0));
        let five_s = || Arc::new(Literal::new(ScalarValue::IntervalDayTime(Some(IntervalDayTime::new(0, 5000)))));
        let minus: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(ts(), Operator::Minus, five_s()));
        // Not a shift of the rowtime: every row is evaluated (CAST keeps the value).
        let cast: Arc<dyn PhysicalExpr> = Arc::new(datafusion::physical_expr::expressions::CastExpr::new(
            minus.clone(),
            DataType::Timestamp(TimeUnit::Millisecond, None),
            None,
        ));
        let mut watermarks = Vec::new();
        for expr in [minus, cast] {
            let mut op = WatermarkOperator::new(WatermarkSpec {
                rowtime_column: 0,
                expr: ExprSpec { expr, display: "ts - INTERVAL '5' SECOND".into() },
                interval_ms: 200,
                idle_timeout_ms: 0,
                processing_time: false,
            });
            let col = TimestampMillisecondArray::from(vec![Some(9000), None, Some(17000), Some(12000)]);
            let b = Batch::append(RecordBatch::try_new(Arc::new(schema.clone()), vec![Arc::new(col)]).unwrap());
            let mut out = Vec::new();
            op.process_batch(b, &mut out).unwrap();
            watermarks.push((op.shifts_rowtime, split(out).1));
        }
        assert_eq!(watermarks, vec![(true, vec![12000]), (false, vec![12000])]);
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

    /// Rows of `partition` (an empty `ts` announces it; `ended` says it has no more rows).
    fn part(partition: u32, ts: &[Option<i64>], ended: bool) -> Batch {
        Batch { partition: Some(crate::message::PartitionMark { partition, ended }), ..batch(ts) }
    }

    fn run(op: &mut WatermarkOperator, b: Batch) -> Vec<Message> {
        let mut out = Vec::new();
        op.process_batch(b, &mut out).unwrap();
        out
    }

    #[test]
    fn partitions_watermark_is_the_minimum() {
        let mut op = operator(0, 0);
        for p in [0, 1] {
            let out = run(&mut op, part(p, &[], false));
            assert!(out.is_empty(), "an announcement is not passed on: {out:?}");
        }
        assert_eq!(split(run(&mut op, part(0, &[Some(10), Some(30)], false))).1, Vec::<i64>::new(), "1 has none");
        assert_eq!(split(run(&mut op, part(1, &[Some(20)], false))).1, vec![20]);
        assert_eq!(split(run(&mut op, part(1, &[Some(40)], false))).1, vec![30]);
        assert_eq!(split(run(&mut op, part(0, &[Some(50)], false))).1, vec![40]);
        // Rows go on without their mark.
        let out = run(&mut op, part(0, &[Some(60)], false));
        assert!(out.iter().all(|m| !matches!(m, Message::Data(b) if b.partition.is_some())), "{out:?}");
        let mut out = Vec::new();
        op.on_end(&mut out).unwrap();
        assert_eq!(split(out).1, vec![i64::MAX]);
    }

    #[test]
    fn ended_partition_stops_holding_back_and_all_ended_is_idle() {
        let mut op = operator(0, 0);
        run(&mut op, part(0, &[], false));
        run(&mut op, part(1, &[], false));
        run(&mut op, part(0, &[Some(10)], false));
        assert_eq!(split(run(&mut op, part(1, &[Some(5)], false))).1, vec![5]);
        // Partition 1 ends: partition 0 alone drives the watermark.
        assert_eq!(split(run(&mut op, part(1, &[], true))).1, vec![10]);
        assert_eq!(split(run(&mut op, part(0, &[Some(20)], false))).1, vec![20]);
        // The last rows of a partition come with its end: nothing is left to hold back, so
        // the split says Idle (downstream stops waiting for it) until end of input.
        let out = run(&mut op, part(0, &[Some(30)], true));
        assert_eq!(split(out.clone()).1, Vec::<i64>::new());
        assert!(matches!(out.last(), Some(Message::Idle)), "Idle last: {out:?}");
        assert!(run(&mut op, part(0, &[], true)).iter().all(|m| !matches!(m, Message::Idle)), "Idle once");
        let mut out = Vec::new();
        op.on_end(&mut out).unwrap();
        assert_eq!(split(out).1, vec![i64::MAX]);
    }

    #[test]
    fn announced_partition_without_rows_holds_back_and_watermarks_never_go_back() {
        let mut op = operator(0, 0);
        run(&mut op, part(0, &[], false));
        run(&mut op, part(1, &[], false));
        assert_eq!(split(run(&mut op, part(0, &[Some(100)], false))).1, Vec::<i64>::new());
        assert_eq!(split(run(&mut op, part(1, &[Some(20)], false))).1, vec![20]);
        // A partition announced later holds the watermark where it is...
        assert!(run(&mut op, part(2, &[], false)).is_empty());
        assert_eq!(split(run(&mut op, part(1, &[Some(50)], false))).1, Vec::<i64>::new());
        // ...and rows of it behind the emitted watermark do not move it back.
        assert_eq!(split(run(&mut op, part(2, &[Some(10)], false))).1, Vec::<i64>::new());
        assert_eq!(split(run(&mut op, part(2, &[Some(70)], false))).1, vec![50]);
    }

    #[test]
    fn idleness_is_per_partition() {
        let mut op = operator(0, 200);
        run(&mut op, part(0, &[], false));
        run(&mut op, part(1, &[], false));
        run(&mut op, part(0, &[Some(10)], false));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(split(run(&mut op, part(1, &[Some(50)], false))).1, vec![10]);
        // Partition 0 is quiet for the timeout first: partition 1 alone drives it.
        let due = op.next_processing_time().expect("idle timer of partition 0");
        let mut out = Vec::new();
        op.on_processing_time(due, &mut out).unwrap();
        assert!(matches!(out.as_slice(), [Message::Watermark(Watermark(50))]), "{out:?}");
        assert_eq!(split(run(&mut op, part(1, &[Some(60)], false))).1, vec![60]);
        // Then partition 1 too: every partition is idle, and the split says so once.
        let due = op.next_processing_time().expect("idle timer of partition 1");
        let mut out = Vec::new();
        op.on_processing_time(due, &mut out).unwrap();
        assert!(matches!(out.as_slice(), [Message::Idle]), "{out:?}");
        assert_eq!(op.next_processing_time(), None);
        // Partition 0 comes back behind the watermark: its rows go on, the watermark stays,
        // and it holds the watermark back again.
        let out = run(&mut op, part(0, &[Some(30)], false));
        assert_eq!(split(out), (None, vec![]));
        assert_eq!(split(run(&mut op, part(0, &[Some(70)], false))).1, vec![70], "partition 1 is still idle");
    }

    #[test]
    fn arrival_watermarks_per_row_across_partitions() {
        let mut op = operator(0, 0);
        run(&mut op, part(0, &[], false));
        run(&mut op, part(1, &[], false));
        // Partition 1 has no rows: nothing moves inside the batch.
        assert_eq!(split(run(&mut op, part(0, &[Some(10), Some(30)], false))), (None, vec![]));
        // Each row: min(partition 1's maximum before it, partition 0's 30).
        let out = run(&mut op, part(1, &[Some(20), Some(25), Some(40), Some(5)], false));
        assert_eq!(split(out), (Some(vec![i64::MIN, 20, 25, 30]), vec![30]));
        // Partition 0 again, held back by partition 1's 40.
        let out = run(&mut op, part(0, &[Some(35), Some(50), Some(45)], false));
        assert_eq!(split(out), (Some(vec![30, 35, 40]), vec![40]));
    }

    #[test]
    fn periodic_emission_with_partitions() {
        let mut op = operator(60_000, 0);
        run(&mut op, part(0, &[], false));
        run(&mut op, part(1, &[], false));
        run(&mut op, part(0, &[Some(10)], false));
        assert_eq!(split(run(&mut op, part(1, &[Some(30)], false))), (None, vec![10]), "the first goes out at once");
        // Partition 0 ends: 30 is due, but held back by the interval until its timer.
        assert_eq!(split(run(&mut op, part(0, &[], true))).1, Vec::<i64>::new());
        let due = op.next_processing_time().expect("a timer for the held-back watermark");
        let mut out = Vec::new();
        op.on_processing_time(due, &mut out).unwrap();
        assert_eq!(split(out).1, vec![30]);
    }

    /// Snapshots `op` (through checkpoint files) into a fresh operator of the same spec.
    fn restored(op: &mut WatermarkOperator, interval_ms: u64, idle_timeout_ms: u64) -> WatermarkOperator {
        let snapshot = op.snapshot_state().expect("snapshot").expect("state");
        let mut fresh = operator(interval_ms, idle_timeout_ms);
        fresh.restore_state(crate::operators::snapshot::through_files(snapshot)).expect("restore");
        fresh
    }

    /// Output without `Idle` (a restored split says it again, see `WatermarkState`).
    fn without_idle(out: Vec<Message>) -> Vec<String> {
        crate::operators::snapshot::trace(&out).into_iter().filter(|m| m != "Idle").collect()
    }

    #[test]
    fn restores_watermarks_at_every_message() {
        let input = || {
            vec![
                Message::Data(batch(&[Some(10), Some(30), None])),
                Message::Data(batch(&[Some(20), Some(35)])),
                Message::Data(batch(&[])),
                Message::Data(batch(&[Some(50), Some(40), Some(60)])),
                Message::End,
            ]
        };
        crate::operators::snapshot::assert_restores_everywhere(|| operator(0, 0), &input());
        // Periodic: the first watermark goes out at once, the later ones wait for the interval.
        let out = crate::operators::snapshot::assert_restores_everywhere(|| operator(60_000, 0), &input());
        assert_eq!(split(out).1, vec![30, i64::MAX]);
    }

    #[test]
    fn restores_partition_watermarks_and_idleness() {
        let later = || Instant::now() + Duration::from_secs(3600);
        // A timeout long enough that only partition 2, left alone for it, goes idle.
        let mut op = operator(0, 1000);
        run(&mut op, part(2, &[], false));
        std::thread::sleep(Duration::from_millis(1100));
        run(&mut op, part(0, &[], false));
        run(&mut op, part(1, &[], false));
        // Partition 2 had no rows for the timeout: idle (found on the next batch).
        assert_eq!(split(run(&mut op, part(0, &[Some(10), Some(50)], false))).1, Vec::<i64>::new());
        assert_eq!(split(run(&mut op, part(1, &[Some(20)], false))).1, vec![20]);
        assert_eq!(split(run(&mut op, part(1, &[Some(30)], false))).1, vec![30]);
        run(&mut op, part(0, &[Some(60)], false));
        run(&mut op, part(3, &[Some(5)], true));
        let mut back = restored(&mut op, 0, 1000);
        let rest = [part(1, &[Some(40)], false), part(0, &[Some(70), Some(45)], false), part(1, &[Some(90)], true)];
        for b in rest {
            let (a, r) = (run(&mut op, b.clone()), run(&mut back, b));
            assert_eq!(without_idle(r), without_idle(a));
        }
        // Partition 0 alone holds the watermark back now; then it goes idle too.
        let (mut a, mut r) = (Vec::new(), Vec::new());
        op.on_processing_time(later(), &mut a).expect("timer");
        back.on_processing_time(later(), &mut r).expect("timer");
        assert_eq!(split(r.clone()).1, Vec::<i64>::new());
        assert!(matches!(r.as_slice(), [Message::Idle]), "{r:?}");
        assert_eq!(without_idle(r), without_idle(a));
        let (mut a, mut r) = (Vec::new(), Vec::new());
        op.on_end(&mut a).expect("end");
        back.on_end(&mut r).expect("end");
        assert_eq!(split(r).1, vec![i64::MAX]);
    }

    #[test]
    fn restored_idle_split_says_idle_again() {
        let mut op = operator(0, 1);
        run(&mut op, batch(&[Some(10)]));
        let mut out = Vec::new();
        op.on_processing_time(Instant::now() + Duration::from_secs(1), &mut out).expect("timer");
        assert!(matches!(out.as_slice(), [Message::Idle]), "{out:?}");
        let mut back = restored(&mut op, 0, 1);
        let due = back.next_processing_time().expect("an idle timer again");
        let mut out = Vec::new();
        back.on_processing_time(due, &mut out).expect("timer");
        assert!(matches!(out.as_slice(), [Message::Idle]), "{out:?}");
        // The watermark stays where it was.
        assert_eq!(split(run(&mut back, batch(&[Some(5)]))).1, Vec::<i64>::new());
        assert_eq!(split(run(&mut back, batch(&[Some(11)]))).1, vec![11]);
    }
}
