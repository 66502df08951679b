//! Session window aggregation: `GROUP BY window_start, window_end, k` over
//! `SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), gap)`, emitted append-only when the
//! watermark passes a session's end.
//!
//! Semantics follow Flink's window-TVF session aggregate (`UnsliceWindowAggProcessor` with
//! a `SessionUnsliceAssigner`, merging through `MergingWindowProcessFunction` and
//! `MergingWindowSet`):
//!
//! * each row opens the window `[ts, ts + gap)` and merges with every open session of its
//!   key it *touches* (`TimeWindow.intersects` compares closed intervals), so rows exactly
//!   `gap` apart share a session and `gap + 1` apart do not;
//! * a session fires when `window_end - 1 <= watermark` and is then gone: a later row of
//!   that key starts a new session;
//! * a row is late when the *merged* window it lands in is already closed
//!   (`isWindowLate(actualWindow)` after `MergingWindowSet.addWindow`). So a row whose own
//!   window `[ts, ts + gap)` is closed is still kept when it touches an open session, and
//!   is dropped (counted in `late_rows`) only when it would open a session by itself.
//!
//! Rows are judged by their effective watermark (the operator's, or the finer one they
//! arrived under); a session closed under that watermark has fired as far as later rows
//! are concerned, even if the operator emits it only at its next watermark.
//!
//! Rows are buffered as Arrow arrays (keys, aggregate inputs and FILTER masks evaluated on
//! arrival); when sessions fire, their rows are gathered in one `interleave` per column,
//! each session becomes a group index, and every aggregate runs once over all of them
//! through DataFusion's `GroupsAccumulator`s.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::mem::size_of;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{cast, prep_null_mask_filter};
use arrow::datatypes::{DataType, SchemaRef, UInt32Type};
use arrow::row::{RowConverter, SortField};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};
use serde::{Deserialize, Serialize};

use super::memory::{hash_map_bytes, shrink_if_sparse};
use super::snapshot::{from_meta, malformed, part_columns, to_meta, Packer, Part};
use super::windowing::{
    check_window, effective_watermark, event_times, rebatch, require_append_only, timestamp_column, BufferedRows,
    RowRef,
};
use super::{KeyHasher, OperatorContext, StreamOperator};
use crate::checkpoint::StateSnapshot;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message, Timestamp, Watermark};
use crate::metrics::LateRowCounter;
use eddy_sql::plan::{WindowAggSpec, WindowKind, WindowOutput};

/// Per-key session windows with aggregation.
pub struct SessionWindowOperator {
    spec: WindowAggSpec,
    gap: i64,
    schema: SchemaRef,
    late_rows: LateRowCounter,
    watermark: Watermark,
    /// Per aggregate, the expressions it consumes: its arguments, then its ORDER BY keys
    /// (the order DataFusion's `AggregateExec` passes them in).
    agg_inputs: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    /// Per aggregate, where its inputs and its FILTER mask sit in the buffered columns
    /// (which start with the keys).
    agg_columns: Vec<AggColumns>,
    /// Encodes the grouping keys to bytes; `None` without keys (one key for all rows).
    key_encoder: Option<RowConverter>,
    key_ids: HashMap<Box<[u8]>, u64, KeyHasher>,
    keys: HashMap<u64, KeySessions, KeyHasher>,
    next_key: u64,
    /// `(window_end - 1, key)` of sessions created or extended; entries for sessions that
    /// later grew are stale and skipped when they pop.
    timers: BinaryHeap<Reverse<(Timestamp, u64)>>,
    rows: BufferedRows,
    /// Running counts for `state_bytes`: bytes of the keys (each held twice, in `key_ids`
    /// and `keys`), open sessions, and row references in them.
    key_bytes: usize,
    session_count: usize,
    row_refs: usize,
}

struct AggColumns {
    first: usize,
    count: usize,
    filter: Option<usize>,
}

/// The sessions of one key that have not fired yet.
struct KeySessions {
    key: Box<[u8]>,
    sessions: Vec<Session>,
}

struct Session {
    start: Timestamp,
    end: Timestamp,
    /// Closed under the watermark of a row that came later: it can no longer take rows.
    closed: bool,
    rows: Vec<RowRef>,
}

impl SessionWindowOperator {
    /// A session aggregation for `spec` (whose window must be SESSION), emitting
    /// `ctx.output_schema`.
    pub fn new(spec: WindowAggSpec, ctx: OperatorContext) -> Result<Self> {
        let WindowKind::Session { gap } = spec.window else {
            return Err(EngineError::Plan(format!("session aggregation of a {:?} window", spec.window)));
        };
        check_window(&spec.window)?;
        let fields = ctx.output_schema.fields();
        if spec.output.len() != fields.len() {
            return Err(EngineError::Plan(format!(
                "session aggregation: {} output columns described, schema has {}",
                spec.output.len(),
                fields.len()
            )));
        }
        for o in &spec.output {
            let ok = match *o {
                WindowOutput::Key(k) => k < spec.keys.len(),
                WindowOutput::Aggregate(a) => a < spec.aggregates.len(),
                _ => true,
            };
            if !ok {
                return Err(EngineError::Plan(format!("session aggregation: output {o:?} does not exist")));
            }
        }
        let expr_err = |source| EngineError::Expression { operator: "SessionWindowAggregate".into(), source };
        let key_encoder = if spec.keys.is_empty() {
            None
        } else {
            let sort_fields = spec
                .keys
                .iter()
                .map(|k| k.expr.data_type(&ctx.input_schema).map(SortField::new))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(expr_err)?;
            let encoder = RowConverter::new(sort_fields)
                .map_err(|source| EngineError::Arrow { operator: "SessionWindowAggregate".into(), source })?;
            Some(encoder)
        };
        let mut agg_inputs = Vec::with_capacity(spec.aggregates.len());
        let mut agg_columns = Vec::with_capacity(spec.aggregates.len());
        let mut next = spec.keys.len();
        for a in &spec.aggregates {
            let mut inputs = a.function.expressions();
            inputs.extend(a.function.order_bys().iter().map(|o| Arc::clone(&o.expr)));
            let count = inputs.len();
            let filter = a.filter.as_ref().map(|_| next + count);
            agg_columns.push(AggColumns { first: next, count, filter });
            next += count + usize::from(filter.is_some());
            agg_inputs.push(inputs);
        }
        Ok(Self {
            gap,
            schema: ctx.output_schema,
            late_rows: ctx.late_rows,
            watermark: Watermark::MIN,
            agg_inputs,
            agg_columns,
            key_encoder,
            key_ids: HashMap::default(),
            keys: HashMap::default(),
            next_key: 0,
            timers: BinaryHeap::new(),
            rows: BufferedRows::default(),
            key_bytes: 0,
            session_count: 0,
            row_refs: 0,
            spec,
        })
    }

    fn expr_err(&self) -> impl Fn(datafusion::error::DataFusionError) -> EngineError {
        let operator = self.name();
        move |source| EngineError::Expression { operator: operator.clone(), source }
    }

    fn arrow_err(&self) -> impl Fn(arrow::error::ArrowError) -> EngineError {
        let operator = self.name();
        move |source| EngineError::Arrow { operator: operator.clone(), source }
    }

    /// The columns buffered for a batch: keys, then per aggregate its inputs and FILTER mask.
    fn buffered_columns(&self, batch: &Batch) -> Result<Vec<ArrayRef>> {
        let n = batch.num_rows();
        let expr_err = self.expr_err();
        let eval = |e: &Arc<dyn PhysicalExpr>| e.evaluate(&batch.data).and_then(|v| v.into_array(n)).map_err(&expr_err);
        let mut columns = Vec::new();
        for k in &self.spec.keys {
            columns.push(eval(&k.expr)?);
        }
        for (a, inputs) in self.spec.aggregates.iter().zip(&self.agg_inputs) {
            for e in inputs {
                columns.push(eval(e)?);
            }
            if let Some(f) = &a.filter {
                let mask = eval(&f.expr)?;
                let Some(mask) = mask.as_boolean_opt() else {
                    return Err(EngineError::Plan(format!("{}: FILTER of {} is not BOOLEAN", self.name(), a.display)));
                };
                // NULL means "not selected", as in WHERE.
                let mask = if mask.null_count() > 0 { prep_null_mask_filter(mask) } else { mask.clone() };
                columns.push(Arc::new(mask));
            }
        }
        Ok(columns)
    }

    fn new_key(&mut self, key: Box<[u8]>) -> u64 {
        let id = self.next_key;
        self.next_key += 1;
        self.key_bytes += 2 * key.len();
        self.key_ids.insert(key.clone(), id);
        self.keys.insert(id, KeySessions { key, sessions: Vec::new() });
        id
    }

    /// Take the sessions that are final under `wm`, ordered by (end, start, key).
    fn take_fired(&mut self, wm: Watermark) -> Vec<Session> {
        let mut due = Vec::new();
        while let Some(Reverse((t, key))) = self.timers.peek().copied() {
            if t > wm.0 {
                break;
            }
            self.timers.pop();
            due.push(key);
        }
        due.sort_unstable();
        due.dedup();
        let mut fired = Vec::new();
        for key in due {
            let Some(state) = self.keys.get_mut(&key) else { continue };
            let (done, open): (Vec<Session>, Vec<Session>) =
                std::mem::take(&mut state.sessions).into_iter().partition(|s| s.end.saturating_sub(1) <= wm.0);
            state.sessions = open;
            self.session_count = self.session_count.saturating_sub(done.len());
            self.row_refs = self.row_refs.saturating_sub(done.iter().map(|s| s.rows.len()).sum());
            fired.extend(done.into_iter().map(|s| (key, s)));
            if state.sessions.is_empty() {
                if let Some(state) = self.keys.remove(&key) {
                    self.key_ids.remove(&state.key);
                    self.key_bytes = self.key_bytes.saturating_sub(2 * state.key.len());
                }
            }
        }
        if !fired.is_empty() {
            shrink_if_sparse(&mut self.keys);
            shrink_if_sparse(&mut self.key_ids);
        }
        fired.sort_by_key(|(key, s)| (s.end, s.start, *key));
        fired.into_iter().map(|(_, s)| s).collect()
    }

    /// Aggregate `sessions` into one output batch.
    fn emit(&mut self, mut sessions: Vec<Session>) -> Result<RecordBatch> {
        let arrow_err = self.arrow_err();
        let expr_err = self.expr_err();
        let groups = sessions.len();
        let mut refs = Vec::new();
        let mut group_of = Vec::new();
        let mut first = Vec::with_capacity(groups);
        for (g, s) in sessions.iter_mut().enumerate() {
            // Arrival order within the session, for order-sensitive aggregates.
            s.rows.sort_unstable();
            let Some(head) = s.rows.first() else {
                return Err(EngineError::Internal(format!("{}: a session without rows", self.name())));
            };
            first.push(*head);
            group_of.extend(std::iter::repeat_n(g, s.rows.len()));
            refs.extend_from_slice(&s.rows);
        }
        let mut aggregates = Vec::with_capacity(self.spec.aggregates.len());
        for (a, cols) in self.spec.aggregates.iter().zip(&self.agg_columns) {
            let values = (cols.first..cols.first + cols.count)
                .map(|c| self.rows.gather(c, &refs))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(&arrow_err)?;
            let filter = match cols.filter {
                Some(c) => Some(self.rows.gather(c, &refs).map_err(&arrow_err)?.as_boolean().clone()),
                None => None,
            };
            let mut acc = groups_accumulator(&a.function).map_err(&expr_err)?;
            acc.update_batch(&values, &group_of, filter.as_ref(), groups).map_err(&expr_err)?;
            aggregates.push(acc.evaluate(EmitTo::All).map_err(&expr_err)?);
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.spec.output.len());
        for (o, field) in self.spec.output.iter().zip(self.schema.fields()) {
            let column = match *o {
                WindowOutput::Key(k) => self.rows.gather(k, &first).map_err(&arrow_err)?,
                WindowOutput::WindowStart => {
                    timestamp_column(sessions.iter().map(|s| s.start).collect(), field.data_type())
                        .map_err(&arrow_err)?
                }
                WindowOutput::WindowEnd => {
                    timestamp_column(sessions.iter().map(|s| s.end).collect(), field.data_type()).map_err(&arrow_err)?
                }
                WindowOutput::WindowTime => {
                    let times = sessions.iter().map(|s| s.end.saturating_sub(1)).collect();
                    timestamp_column(times, field.data_type()).map_err(&arrow_err)?
                }
                WindowOutput::Aggregate(a) => match aggregates.get(a) {
                    Some(v) => Arc::clone(v),
                    None => return Err(EngineError::Internal(format!("{}: no aggregate {a}", self.name()))),
                },
            };
            columns.push(cast_to(column, field.data_type()).map_err(&arrow_err)?);
        }
        for (chunk, _) in &refs {
            self.rows.release(*chunk);
        }
        RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(arrow_err)
    }
}

/// A checkpoint of the session aggregation: the open sessions and their buffered rows.
///
/// Key ids are kept: sessions that fire together are emitted in (end, start, key id)
/// order. Timers are not: they are one per session, rebuilt from the sessions (the stale
/// ones of the running operator fire nothing).
#[derive(Serialize, Deserialize)]
struct SessionState {
    watermark: i64,
    /// The id of the next new key.
    next_key: u64,
    sessions: Vec<SessionCheckpoint>,
    /// The rows of every session, in arrival order (which order-sensitive aggregates see,
    /// also across sessions that merge later): the buffered columns, then the index of
    /// the row's session in `sessions`.
    rows: Option<Part>,
}

#[derive(Serialize, Deserialize)]
struct SessionCheckpoint {
    key: u64,
    start: i64,
    end: i64,
    closed: bool,
}

impl SessionWindowOperator {
    /// How many columns are buffered per row: keys, then per aggregate its inputs and mask.
    fn buffered_width(&self) -> usize {
        let aggs: usize = self.agg_columns.iter().map(|c| c.count + usize::from(c.filter.is_some())).sum();
        self.spec.keys.len() + aggs
    }

    fn snapshot(&self) -> Result<StateSnapshot> {
        let arrow_err = self.arrow_err();
        let mut ids: Vec<u64> = self.keys.keys().copied().collect();
        ids.sort_unstable();
        let mut sessions = Vec::new();
        let mut refs: Vec<(RowRef, u32)> = Vec::new();
        for id in ids {
            let Some(state) = self.keys.get(&id) else { continue };
            for s in &state.sessions {
                let index = u32::try_from(sessions.len())
                    .map_err(|_| EngineError::Checkpoint(format!("{}: too many sessions", self.name())))?;
                sessions.push(SessionCheckpoint { key: id, start: s.start, end: s.end, closed: s.closed });
                refs.extend(s.rows.iter().map(|r| (*r, index)));
            }
        }
        refs.sort_unstable();
        let mut packer = Packer::default();
        let rows = if refs.is_empty() {
            None
        } else {
            let at: Vec<RowRef> = refs.iter().map(|(r, _)| *r).collect();
            let mut columns = (0..self.buffered_width())
                .map(|c| self.rows.gather(c, &at))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(&arrow_err)?;
            columns.push(Arc::new(UInt32Array::from(refs.iter().map(|(_, s)| *s).collect::<Vec<_>>())));
            Some(packer.add(columns, refs.len()).map_err(&arrow_err)?)
        };
        let state = SessionState { watermark: self.watermark.0, next_key: self.next_key, sessions, rows };
        Ok(StateSnapshot { meta: to_meta(&self.name(), &state)?, batches: packer.finish().map_err(&arrow_err)? })
    }

    fn restore(&mut self, snapshot: StateSnapshot) -> Result<()> {
        let name = self.name();
        let state: SessionState = from_meta(&name, snapshot.meta)?;
        let mut rows = BufferedRows::default();
        let mut sessions: Vec<Session> = state
            .sessions
            .iter()
            .map(|s| Session { start: s.start, end: s.end, closed: s.closed, rows: Vec::new() })
            .collect();
        // Per session, the key bytes of its first row.
        let mut key_of: Vec<Option<Box<[u8]>>> = vec![None; sessions.len()];
        if let Some(part) = state.rows {
            let width = self.buffered_width();
            let mut columns = part_columns(&name, &snapshot.batches, part, width + 1)?;
            let Some(owner) = columns.pop().and_then(|c| c.as_primitive_opt::<UInt32Type>().cloned()) else {
                return Err(malformed(&name, "session column of another type"));
            };
            let keys = match &self.key_encoder {
                Some(enc) => Some(enc.convert_columns(&columns[..self.spec.keys.len()]).map_err(self.arrow_err())?),
                None => None,
            };
            let chunk = rows.push(columns);
            for (row, s) in owner.values().iter().enumerate() {
                let session = usize::try_from(*s).ok().and_then(|s| sessions.get_mut(s).zip(key_of.get_mut(s)));
                let Some((session, key)) = session else {
                    return Err(malformed(&name, format!("row of session {s}, which does not exist")));
                };
                let bytes: &[u8] = keys.as_ref().map(|k| k.row(row).data()).unwrap_or(&[]);
                if &**key.get_or_insert_with(|| bytes.into()) != bytes {
                    return Err(malformed(&name, format!("session {s} has rows of two keys")));
                }
                let row = u32::try_from(row).map_err(|_| malformed(&name, "too many rows"))?;
                session.rows.push((chunk, row));
                rows.acquire(chunk);
            }
            rows.free_if_unused(chunk);
        }
        let mut keys: HashMap<u64, KeySessions, KeyHasher> = HashMap::default();
        let mut key_ids = HashMap::default();
        let mut timers = BinaryHeap::new();
        for ((checkpoint, session), key) in state.sessions.iter().zip(sessions).zip(key_of) {
            let Some(key) = key else {
                return Err(malformed(&name, format!("session [{}, {}) without rows", session.start, session.end)));
            };
            if checkpoint.key >= state.next_key {
                return Err(malformed(&name, format!("key id {} not below the next one", checkpoint.key)));
            }
            timers.push(Reverse((session.end.saturating_sub(1), checkpoint.key)));
            let entry =
                keys.entry(checkpoint.key).or_insert_with(|| KeySessions { key: key.clone(), sessions: Vec::new() });
            if entry.key != key || key_ids.insert(key, checkpoint.key).is_some_and(|id| id != checkpoint.key) {
                return Err(malformed(&name, format!("key id {} for two keys, or two ids for a key", checkpoint.key)));
            }
            entry.sessions.push(session);
        }
        self.watermark = Watermark(state.watermark);
        self.next_key = state.next_key;
        self.keys = keys;
        self.key_ids = key_ids;
        self.timers = timers;
        self.rows = rows;
        self.key_bytes = self.key_ids.keys().map(|k| 2 * k.len()).sum();
        self.session_count = self.keys.values().map(|k| k.sessions.len()).sum();
        self.row_refs = self.keys.values().flat_map(|k| &k.sessions).map(|s| s.rows.len()).sum();
        Ok(())
    }
}

/// DataFusion's vectorised accumulator for `f`, or its row accumulator behind an adapter.
fn groups_accumulator(f: &Arc<AggregateFunctionExpr>) -> datafusion::error::Result<Box<dyn GroupsAccumulator>> {
    if f.groups_accumulator_supported() {
        f.create_groups_accumulator()
    } else {
        let f = Arc::clone(f);
        Ok(Box::new(GroupsAccumulatorAdapter::new(move || f.create_accumulator())))
    }
}

fn cast_to(a: ArrayRef, to: &DataType) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
    if a.data_type() == to {
        Ok(a)
    } else {
        cast(&a, to)
    }
}

impl StreamOperator for SessionWindowOperator {
    fn name(&self) -> String {
        let keys: Vec<&str> = self.spec.keys.iter().map(|k| k.display.as_str()).collect();
        let aggs: Vec<&str> = self.spec.aggregates.iter().map(|a| a.display.as_str()).collect();
        format!(
            "SessionWindowAggregate[gap={}ms, groupBy=[{}], select=[{}]]",
            self.gap,
            keys.join(", "),
            aggs.join(", ")
        )
    }

    fn process_batch(&mut self, batch: Batch, _out: &mut Vec<Message>) -> Result<()> {
        require_append_only(&batch, &self.name())?;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let arrow_err = self.arrow_err();
        let times = event_times(batch.data.column(self.spec.time_column).as_ref()).map_err(&arrow_err)?;
        let columns = self.buffered_columns(&batch)?;
        let encoded = match &self.key_encoder {
            Some(enc) => Some(enc.convert_columns(&columns[..self.spec.keys.len()]).map_err(&arrow_err)?),
            None => None,
        };
        let chunk = self.rows.push(columns);
        let mut late = 0;
        for row in 0..n {
            // A NULL time attribute has no window; Flink's window TVFs drop such rows too.
            if times.is_null(row) {
                continue;
            }
            let ts = times.value(row);
            let wm = effective_watermark(&batch, row, self.watermark);
            let (mut start, mut end) = (ts, ts.saturating_add(self.gap));
            let own_late = end.saturating_sub(1) <= wm;
            let key_bytes: &[u8] = encoded.as_ref().map(|k| k.row(row).data()).unwrap_or(&[]);
            let key = match self.key_ids.get(key_bytes) {
                Some(k) => *k,
                // No open session to merge into: the row's own window decides.
                None if own_late => {
                    late += 1;
                    continue;
                }
                None => self.new_key(key_bytes.into()),
            };
            let Some(state) = self.keys.get_mut(&key) else { continue };
            for s in state.sessions.iter_mut() {
                if s.end.saturating_sub(1) <= wm {
                    s.closed = true;
                }
            }
            let touches = |s: &Session, start: Timestamp, end: Timestamp| !s.closed && s.start <= end && start <= s.end;
            if own_late && !state.sessions.iter().any(|s| touches(s, start, end)) {
                late += 1;
                continue;
            }
            // Merge until nothing touches: the merged window can reach sessions the row's
            // own window did not. The row joins the first session it touches, and sessions
            // merge into the one with more rows: a key's rows usually extend one long
            // session, and copying its rows for each new row was quadratic.
            let (mut merged, mut timer) = match state.sessions.iter().position(|s| touches(s, start, end)) {
                Some(i) => (state.sessions.swap_remove(i), false),
                None => {
                    self.session_count += 1;
                    (Session { start, end, closed: false, rows: Vec::new() }, true)
                }
            };
            merged.rows.push((chunk, row as u32));
            // A session's timer is at its end: one is needed only when the row's window
            // reaches past every merged session's end.
            timer |= end > merged.end;
            (start, end) = (start.min(merged.start), end.max(merged.end));
            while let Some(i) = state.sessions.iter().position(|s| touches(s, start, end)) {
                let mut s = state.sessions.swap_remove(i);
                timer &= end > s.end;
                start = start.min(s.start);
                end = end.max(s.end);
                if s.rows.len() > merged.rows.len() {
                    std::mem::swap(&mut s.rows, &mut merged.rows);
                }
                merged.rows.extend(s.rows);
                self.session_count -= 1;
            }
            (merged.start, merged.end) = (start, end);
            state.sessions.push(merged);
            self.row_refs += 1;
            if timer {
                self.timers.push(Reverse((end.saturating_sub(1), key)));
            }
            self.rows.acquire(chunk);
        }
        self.rows.free_if_unused(chunk);
        self.late_rows.add(late);
        Ok(())
    }

    fn handle_watermark(&mut self, wm: Watermark, out: &mut Vec<Message>) -> Result<()> {
        self.watermark = self.watermark.max(wm);
        let fired = self.take_fired(self.watermark);
        if !fired.is_empty() {
            let data = self.emit(fired)?;
            let batches = rebatch(&self.schema, vec![data])
                .map_err(|source| EngineError::Arrow { operator: self.name(), source })?;
            out.extend(batches.into_iter().map(|b| Message::Data(Batch::append(b))));
        }
        out.push(Message::Watermark(wm));
        Ok(())
    }

    /// Buffered rows, keys, sessions with their row references, and timers.
    fn state_bytes(&self) -> usize {
        self.rows.bytes()
            + self.key_bytes
            + hash_map_bytes(&self.key_ids)
            + hash_map_bytes(&self.keys)
            + self.session_count * size_of::<Session>()
            + self.row_refs * size_of::<RowRef>()
            + self.timers.capacity() * size_of::<Reverse<(Timestamp, u64)>>()
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
    use arrow::array::{BooleanArray, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit, TimestampMillisecondType};
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::Column;
    use eddy_sql::plan::{AggregateSpec, EmitStrategy, ExprSpec};

    fn ts_type() -> DataType {
        DataType::Timestamp(TimeUnit::Millisecond, None)
    }

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("ts", ts_type(), true),
            Field::new("v", DataType::Int64, true),
            Field::new("keep", DataType::Boolean, true),
        ]))
    }

    fn column(name: &str, index: usize) -> ExprSpec {
        ExprSpec { expr: Arc::new(Column::new(name, index)), display: name.to_string() }
    }

    /// `SELECT [k,] window_start, window_end, window_time, COUNT(v), SUM(v) [FILTER (WHERE keep)]`.
    fn operator(gap: i64, keyed: bool, filtered: bool) -> (SessionWindowOperator, LateRowCounter) {
        let input = input_schema();
        let agg = |udaf, alias: &str| {
            let f = AggregateExprBuilder::new(udaf, vec![Arc::new(Column::new("v", 2)) as Arc<dyn PhysicalExpr>])
                .schema(input.clone())
                .alias(alias)
                .build()
                .expect("aggregate");
            Arc::new(f)
        };
        let aggregates = vec![
            AggregateSpec { function: agg(count_udaf(), "cnt"), filter: None, display: "COUNT(v)".into() },
            AggregateSpec {
                function: agg(sum_udaf(), "total"),
                filter: filtered.then(|| column("keep", 3)),
                display: "SUM(v)".into(),
            },
        ];
        let mut fields = Vec::new();
        let mut output = Vec::new();
        if keyed {
            fields.push(Field::new("k", DataType::Utf8, true));
            output.push(WindowOutput::Key(0));
        }
        for (name, o) in [
            ("window_start", WindowOutput::WindowStart),
            ("window_end", WindowOutput::WindowEnd),
            ("window_time", WindowOutput::WindowTime),
        ] {
            fields.push(Field::new(name, ts_type(), false));
            output.push(o);
        }
        fields.push(Field::new("cnt", DataType::Int64, false));
        output.push(WindowOutput::Aggregate(0));
        fields.push(Field::new("total", DataType::Int64, true));
        output.push(WindowOutput::Aggregate(1));
        let spec = WindowAggSpec {
            window: WindowKind::Session { gap },
            time_column: 1,
            keys: if keyed { vec![column("k", 0)] } else { Vec::new() },
            aggregates,
            output,
            emit: EmitStrategy::default(),
        };
        let late_rows = LateRowCounter::detached();
        let ctx = OperatorContext {
            input_schema: input,
            output_schema: Arc::new(Schema::new(fields)),
            late_rows: late_rows.clone(),
            state_ttl: None,
        };
        (SessionWindowOperator::new(spec, ctx).expect("operator"), late_rows)
    }

    /// Rows (k, ts, v), all with keep = v > 1.
    fn batch(rows: &[(&str, i64, i64)]) -> Batch {
        let data = RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(TimestampMillisecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
                Arc::new(BooleanArray::from(rows.iter().map(|r| r.2 > 1).collect::<Vec<_>>())),
            ],
        )
        .expect("batch");
        Batch::append(data)
    }

    /// (key, start, end, time, count, sum) of the keyed output.
    type Row = (String, i64, i64, i64, i64, Option<i64>);

    fn rows_of(out: &[Message]) -> Vec<Row> {
        let mut rows = Vec::new();
        for m in out {
            let Message::Data(b) = m else { continue };
            let d = &b.data;
            let keys = d.column(0).as_string::<i32>();
            let t = |i: usize| d.column(i).as_primitive::<TimestampMillisecondType>().clone();
            let (s, e, w) = (t(1), t(2), t(3));
            let cnt = d.column(4).as_primitive::<arrow::datatypes::Int64Type>();
            let sum = d.column(5).as_primitive::<arrow::datatypes::Int64Type>();
            for r in 0..d.num_rows() {
                let total = sum.is_valid(r).then(|| sum.value(r));
                rows.push((keys.value(r).to_string(), s.value(r), e.value(r), w.value(r), cnt.value(r), total));
            }
        }
        rows
    }

    fn row(k: &str, start: i64, end: i64, cnt: i64, sum: i64) -> Row {
        (k.to_string(), start, end, end - 1, cnt, Some(sum))
    }

    #[test]
    fn rows_gap_apart_share_a_session_gap_plus_one_do_not() {
        let (mut op, late) = operator(10, true, false);
        let mut out = Vec::new();
        // a: 9 apart (gap - 1), b: 10 apart (gap), c: 11 apart (gap + 1).
        let input = batch(&[("a", 0, 1), ("b", 0, 1), ("c", 0, 1), ("a", 9, 2), ("b", 10, 2), ("c", 11, 2)]);
        op.process_batch(input, &mut out).expect("process");
        assert!(out.is_empty());
        op.handle_watermark(Watermark::MAX, &mut out).expect("watermark");
        assert_eq!(
            rows_of(&out),
            vec![row("c", 0, 10, 1, 1), row("a", 0, 19, 2, 3), row("b", 0, 20, 2, 3), row("c", 11, 21, 1, 2)]
        );
        assert!(matches!(out.last(), Some(Message::Watermark(Watermark::MAX))));
        assert_eq!(late.get(), 0);
    }

    #[test]
    fn session_fires_when_watermark_reaches_end_minus_one_then_is_gone() {
        let (mut op, late) = operator(10, true, false);
        let mut out = Vec::new();
        op.process_batch(batch(&[("a", 0, 1), ("a", 5, 2)]), &mut out).expect("process");
        op.handle_watermark(Watermark(13), &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![]);
        op.handle_watermark(Watermark(14), &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![row("a", 0, 15, 2, 3)]);
        // 15 would have touched [0, 15), but that session has fired: a new one starts.
        out.clear();
        op.process_batch(batch(&[("a", 15, 4)]), &mut out).expect("process");
        op.handle_watermark(Watermark::MAX, &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![row("a", 15, 25, 1, 4)]);
        assert_eq!(late.get(), 0);
    }

    #[test]
    fn late_row_dropped_unless_it_merges_into_an_open_session() {
        let (mut op, late) = operator(10, true, false);
        let mut out = Vec::new();
        op.process_batch(batch(&[("a", 0, 1)]), &mut out).expect("process");
        op.handle_watermark(Watermark(20), &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![row("a", 0, 10, 1, 1)]);
        out.clear();
        // 5: its window [5, 15) closed and nothing open to merge with: dropped.
        // 15: opens [15, 25). 8: its own window [8, 18) is closed, but it touches the open
        // [15, 25) and Flink judges the merged window [8, 25): kept.
        op.process_batch(batch(&[("a", 5, 10), ("a", 15, 4), ("a", 8, 2)]), &mut out).expect("process");
        op.handle_watermark(Watermark::MAX, &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![row("a", 8, 25, 2, 6)]);
        assert_eq!(late.get(), 1);
    }

    #[test]
    fn arrival_watermark_closes_a_session_for_later_rows() {
        let (mut op, late) = operator(10, true, false);
        let mut out = Vec::new();
        // Under a per-row watermark of 20, [0, 10) has fired before 8 arrives: 8 cannot
        // join it, and its own window [8, 18) is closed. 30 opens a new session.
        let mut input = batch(&[("a", 0, 1), ("a", 30, 2), ("a", 8, 4)]);
        input.arrival_watermarks = Some(Int64Array::from(vec![None, Some(20), Some(20)]));
        op.process_batch(input, &mut out).expect("process");
        op.handle_watermark(Watermark::MAX, &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![row("a", 0, 10, 1, 1), row("a", 30, 40, 1, 2)]);
        assert_eq!(late.get(), 1);
    }

    #[test]
    fn merging_bridges_two_sessions_and_keys_stay_apart() {
        let (mut op, _) = operator(10, true, false);
        let mut out = Vec::new();
        op.process_batch(batch(&[("a", 0, 1), ("a", 18, 2), ("b", 12, 100)]), &mut out).expect("process");
        // [9, 19) touches [0, 10) and [18, 28) of a: one session [0, 28).
        op.process_batch(batch(&[("a", 9, 4)]), &mut out).expect("process");
        op.handle_watermark(Watermark::MAX, &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![row("b", 12, 22, 1, 100), row("a", 0, 28, 3, 7)]);
    }

    #[test]
    fn a_merged_session_fires_at_its_end_whichever_row_or_session_set_it() {
        let (mut op, _) = operator(10, true, false);
        let mut out = Vec::new();
        op.process_batch(batch(&[("a", 0, 1), ("a", 18, 2)]), &mut out).expect("process");
        // 9 joins [0, 10) and bridges it to [18, 28); 5 falls inside: the end stays 28,
        // set by the second session.
        op.process_batch(batch(&[("a", 9, 4), ("a", 5, 8)]), &mut out).expect("process");
        op.handle_watermark(Watermark(26), &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![]);
        op.handle_watermark(Watermark(27), &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![row("a", 0, 28, 4, 15)]);
        // A long session: each row one after the last extends it.
        out.clear();
        let rows: Vec<(&str, i64, i64)> = (100..1100).map(|t| ("b", t, 1)).collect();
        op.process_batch(batch(&rows), &mut out).expect("process");
        op.handle_watermark(Watermark(1107), &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![]);
        op.handle_watermark(Watermark(1108), &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![row("b", 100, 1109, 1000, 1000)]);
    }

    #[test]
    fn without_keys_and_with_a_filter() {
        let (mut op, _) = operator(10, false, true);
        let mut out = Vec::new();
        op.process_batch(batch(&[("x", 0, 1), ("y", 5, 2), ("z", 30, 1)]), &mut out).expect("process");
        op.handle_watermark(Watermark::MAX, &mut out).expect("watermark");
        let Some(Message::Data(b)) = out.first() else { panic!("no output") };
        let col = |i: usize| b.data.column(i).as_primitive::<arrow::datatypes::Int64Type>().clone();
        let starts = b.data.column(0).as_primitive::<TimestampMillisecondType>().values().to_vec();
        assert_eq!(starts, vec![0, 30]);
        assert_eq!(col(3).values().to_vec(), vec![2, 1]);
        // SUM(v) FILTER (WHERE v > 1): 2, and NULL for a session with no selected row.
        assert_eq!(col(4).iter().collect::<Vec<_>>(), vec![Some(2), None]);
    }

    #[test]
    fn restores_at_every_message() {
        let mut arriving = batch(&[("a", 100, 1), ("a", 130, 2), ("a", 108, 4)]);
        arriving.arrival_watermarks = Some(Int64Array::from(vec![None, Some(120), Some(120)]));
        let input = vec![
            Message::Data(batch(&[("a", 0, 1), ("b", 0, 1), ("c", 0, 1), ("a", 18, 2), ("b", 10, 2)])),
            Message::Data(batch(&[("c", 11, 2), ("b", 12, 100), ("d", 3, 3)])),
            Message::Watermark(Watermark(12)),
            // 9 bridges a's two sessions; 5 is late for c's first session.
            Message::Data(batch(&[("a", 9, 4), ("c", 5, 9), ("e", 40, 1)])),
            Message::Watermark(Watermark(30)),
            Message::Data(batch(&[("a", 35, 5), ("e", 45, 6), ("b", 29, 7)])),
            Message::Data(arriving),
            Message::Watermark(Watermark(60)),
            Message::Data(batch(&[("f", 200, 8)])),
            Message::Watermark(Watermark::MAX),
        ];
        for (keyed, filtered) in [(true, false), (true, true), (false, true)] {
            let make = || operator(10, keyed, filtered).0;
            let out = crate::operators::snapshot::assert_restores_everywhere(make, &input);
            assert!(out.iter().filter(|m| matches!(m, Message::Data(_))).count() >= 2);
        }
    }

    #[test]
    fn state_bytes_grow_with_sessions_and_drop_when_they_fire() {
        let (mut op, _) = operator(10, true, false);
        let mut out = Vec::new();
        assert_eq!(op.state_bytes(), 0);
        op.process_batch(batch(&[("a", 0, 1), ("b", 0, 1)]), &mut out).expect("process");
        let two = op.state_bytes();
        op.process_batch(batch(&[("a", 5, 2), ("c", 40, 3)]), &mut out).expect("process");
        let three = op.state_bytes();
        assert!(three > two && two > 0, "{three} > {two} > 0");
        // Three keys (of one encoded length), each held twice.
        let key = op.key_bytes / 6;
        assert_eq!((op.key_bytes, op.session_count, op.row_refs), (6 * key, 3, 4));
        // a's and b's sessions fire; c's is left.
        op.handle_watermark(Watermark(20), &mut out).expect("watermark");
        assert_eq!((op.key_bytes, op.session_count, op.row_refs), (2 * key, 1, 1));
        let one = op.state_bytes();
        assert!(one < three, "{one} < {three}");
        // The running counts match the ones a restore counts from scratch.
        let snapshot = op.snapshot_state().expect("snapshot").expect("state");
        let (mut restored, _) = operator(10, true, false);
        restored.restore_state(snapshot).expect("restore");
        assert_eq!((restored.key_bytes, restored.session_count, restored.row_refs), (2 * key, 1, 1));
        op.handle_watermark(Watermark::MAX, &mut out).expect("watermark");
        assert_eq!((op.key_bytes, op.session_count, op.row_refs, op.rows.bytes()), (0, 0, 0, 0));
    }
}
