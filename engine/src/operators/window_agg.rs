//! Window aggregation for TUMBLE, HOP and CUMULATE: `GROUP BY window_start, window_end, k`
//! over a window table function, emitted append-only once the watermark passes a window's end
//! (or, with `spec.emit` set, as a changelog: see "Updating output" below).
//!
//! Why sliced: a HOP row belongs to size/slide windows and a CUMULATE row to up to size/step,
//! so aggregating it into each of its windows would make a row cost O(size/slide). As Flink's
//! slicing window operators do, each row is aggregated once into the *slice* it falls in
//! (TUMBLE: the window itself; HOP: gcd(size, slide); CUMULATE: step), one partial aggregate
//! per (slice, key), and a window is computed when it fires by merging its slices' partials.
//! Partials are DataFusion `GroupsAccumulator`s over interned keys, as in DataFusion's own
//! hash aggregation, so every DataFusion aggregate works here, vectorised.
//!
//! Life of a slice:
//!
//! ```text
//!   rows ──► live partial ──(a window containing it fires)──► frozen state arrays
//!                 ▲                                                │ merged into each
//!   late rows ────┘ (a new live partial, counted only in           ▼ window that fires
//!                    windows that had not fired when they came)  dropped after its last window
//! ```
//!
//! Lateness follows Flink's `AbstractWindowAggProcessor.processElement`, per row, under the
//! row's effective watermark `max(current watermark, arrival watermark)`: a row whose slice's
//! first window has not fired is added normally; one whose slice's last window has fired is
//! dropped and counted; otherwise (HOP, CUMULATE) it counts in the windows of its slice that
//! had not fired yet. Each partial remembers the first window end its rows count in
//! (`from_end`), which is how an already emitted window stays unchanged.
//!
//! ## Updating output (`spec.emit`)
//!
//! With the default [`EmitStrategy`](eddy_sql::plan::EmitStrategy) the output is append-only
//! and everything above holds as is. With allowed lateness `L` or early firing every `D` ms
//! the output is a changelog, every row carrying its [`RowKind`]:
//!
//! - Slices stay until every window holding them is past `window_end - 1 + L`; a row counts
//!   in every window of its slice with `end - 1 + L > effective watermark` (so `from_end`
//!   still describes where it counts), and is dropped only if there is none.
//! - The rows last emitted for a window are kept as arrays ([`Emitted`]: the window's keys
//!   and values, plus a `GroupValues` index from key to row) from its first emission until
//!   it expires at `window_end - 1 + L`.
//! - Windows whose result may have changed are marked dirty. After a batch, the dirty
//!   windows that have fired are recomputed and emitted at once (late firing); open ones
//!   wait for the early-fire timer; a window closing at the watermark is always computed.
//!   Emitting diffs the new result against [`Emitted`]: `+I` for a key not emitted yet,
//!   `-U` old / `+U` new for a key whose values changed, nothing for the others.
//! - Reading a window never consumes state: live partials are frozen into state arrays
//!   (which can be merged any number of times), and a slice's arrays for the same
//!   `from_end` are compacted into one so repeated reads stay proportional to its keys.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    make_comparator, Array, ArrayRef, AsArray, BooleanArray, Int64Array, Int8Array, TimestampMillisecondArray,
    UInt32Array,
};
use arrow::compute::{cast, concat_batches, interleave, prep_null_mask_filter, take, SortOptions};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};
use datafusion::physical_plan::aggregates::group_values::{new_group_values, GroupValues};
use datafusion::physical_plan::aggregates::order::GroupOrdering;
use eddy_connectors::RowKind;
use eddy_sql::plan::{WindowAggSpec, WindowKind, WindowOutput};

use super::watermark::to_millis;
use super::{OperatorContext, StreamOperator};
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message, Watermark};
use crate::metrics::LateRowCounter;

type DfResult<T> = std::result::Result<T, DataFusionError>;

/// Sliced aggregation of TUMBLE, HOP and CUMULATE windows (SESSION has its own operator).
///
/// State: a map of slices by slice end, each holding partial aggregates per key. A watermark
/// fires every window whose `window_end - 1` it reaches, in window-end order, emits one row
/// per key seen in the window, frees the slices no unfired window needs, then is forwarded.
/// End of input fires nothing by itself: the watermark assigner upstream turns it into
/// [`Watermark::MAX`] first, which fires every window. With `spec.emit` set the output rows
/// carry row kinds and windows are also emitted early and updated late (module docs).
pub struct WindowAggregateOperator {
    spec: WindowAggSpec,
    name: String,
    geometry: Geometry,
    output_schema: SchemaRef,
    late_rows: LateRowCounter,
    factory: PartialFactory,
    /// Per aggregate: its arguments then its ORDER BY expressions, the columns DataFusion's
    /// AggregateExec passes an accumulator (order-sensitive ones sort by the trailing ones).
    args: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    /// Slices by slice end; a slice stays until its last window fired.
    slices: BTreeMap<i64, Slice>,
    /// CUMULATE only: (period start, state of the last fired window of that period). The
    /// windows of a period are nested, so each one is the previous one plus one slice;
    /// carrying the state keeps a window's cost independent of size/step.
    cumulate_running: Option<(i64, Frozen)>,
    /// The last watermark handled, in ms.
    watermark: i64,
    warned_null_time: bool,
    /// Scratch for group indices, reused across batches.
    groups: Vec<usize>,
    /// `spec.emit` asks for updates: the output is a changelog (fields below are unused
    /// otherwise).
    updating: bool,
    /// Allowed lateness in ms (0 without).
    lateness: i64,
    /// Early firing period, if any.
    early_fire: Option<Duration>,
    /// Updating only: the rows last emitted per window end, kept from a window's first
    /// emission until it expires.
    emitted: BTreeMap<i64, Emitted>,
    /// Updating only: window ends whose result may have changed since last emitted. Between
    /// calls it holds open windows only (fired ones are emitted right after the batch).
    dirty: BTreeSet<i64>,
    /// When the next early fire is due (while `dirty` is not empty).
    early_due: Option<Instant>,
    /// The `now` of the last early fire.
    last_early_fire: Option<Instant>,
    /// Aggregates shown in the output: a key's row changed iff one of these did.
    compared: Vec<usize>,
}

impl WindowAggregateOperator {
    /// The operator for `spec` (TUMBLE, HOP or CUMULATE; SESSION is a plan error).
    pub fn new(spec: WindowAggSpec, ctx: OperatorContext) -> Result<Self> {
        let name = describe(&spec);
        let plan_err = |msg: String| EngineError::Plan(format!("{name}: {msg}"));
        let geometry = Geometry::new(spec.window).map_err(plan_err)?;
        let input = ctx.input_schema.as_ref();
        if spec.time_column >= input.fields().len() {
            return Err(plan_err(format!("time column {} is not in the input", spec.time_column)));
        }
        if spec.output.len() != ctx.output_schema.fields().len() {
            return Err(plan_err(format!(
                "{} output columns planned for a schema of {}",
                spec.output.len(),
                ctx.output_schema.fields().len()
            )));
        }
        for o in &spec.output {
            let ok = match *o {
                WindowOutput::Key(k) => k < spec.keys.len(),
                WindowOutput::Aggregate(a) => a < spec.aggregates.len(),
                WindowOutput::WindowStart | WindowOutput::WindowEnd | WindowOutput::WindowTime => true,
            };
            if !ok {
                return Err(plan_err(format!("output column {o:?} does not exist")));
            }
        }
        let expr_err = |source| EngineError::Expression { operator: name.clone(), source };
        let mut key_fields = Vec::with_capacity(spec.keys.len());
        for (i, k) in spec.keys.iter().enumerate() {
            let data_type = k.expr.data_type(input).map_err(expr_err)?;
            let nullable = k.expr.nullable(input).map_err(expr_err)?;
            key_fields.push(Field::new(format!("key_{i}"), data_type, nullable));
        }
        let factory = PartialFactory {
            key_schema: Arc::new(Schema::new(key_fields)),
            aggregates: spec.aggregates.iter().map(|a| a.function.clone()).collect(),
        };
        // Build one partial now so unsupported key types or aggregates fail the plan, not the
        // first batch.
        factory.create().map_err(expr_err)?;
        let args = spec
            .aggregates
            .iter()
            .map(|a| {
                let mut exprs = a.function.expressions();
                exprs.extend(a.function.order_bys().iter().map(|s| s.expr.clone()));
                exprs
            })
            .collect();
        if spec.emit.allowed_lateness_ms < 0 {
            return Err(plan_err(format!("negative allowed lateness {} ms", spec.emit.allowed_lateness_ms)));
        }
        let updating = spec.emit.is_updating();
        let lateness = spec.emit.allowed_lateness_ms;
        let early_fire =
            (spec.emit.early_fire_delay_ms > 0).then(|| Duration::from_millis(spec.emit.early_fire_delay_ms));
        let mut compared = Vec::new();
        for o in &spec.output {
            if let WindowOutput::Aggregate(a) = *o {
                if !compared.contains(&a) {
                    compared.push(a);
                }
            }
        }
        Ok(Self {
            spec,
            name,
            geometry,
            output_schema: ctx.output_schema,
            late_rows: ctx.late_rows,
            factory,
            args,
            slices: BTreeMap::new(),
            cumulate_running: None,
            watermark: Watermark::MIN.0,
            warned_null_time: false,
            groups: Vec::new(),
            updating,
            lateness,
            early_fire,
            emitted: BTreeMap::new(),
            dirty: BTreeSet::new(),
            early_due: None,
            last_early_fire: None,
            compared,
        })
    }

    /// Decides, per row, which partial it goes to: (slice end, first window end it counts
    /// in). Late rows and rows with a NULL time are counted, not routed.
    fn route(&self, times: &Int64Array, arrival: Option<&Int64Array>) -> Routing {
        let g = &self.geometry;
        let mut routing = Routing::default();
        let mut index: HashMap<(i64, i64), usize> = HashMap::new();
        // Rows of a batch are mostly in one slice: remember the last target to skip hashing.
        let mut last: Option<((i64, i64), usize)> = None;
        for row in 0..times.len() {
            if times.is_null(row) {
                routing.null_times += 1;
                continue;
            }
            let ts = times.value(row);
            let effective = match arrival {
                Some(a) if a.is_valid(row) => self.watermark.max(a.value(row)),
                _ => self.watermark,
            };
            // A window takes the row iff `end - 1 + lateness > effective`.
            let horizon = effective.saturating_sub(self.lateness);
            let slice_end = g.slice_end(ts);
            let first = g.first_window_end(slice_end);
            let last_end = g.last_window_end(slice_end);
            if first > last_end {
                // A HOP whose slide exceeds its size leaves gaps no window covers.
                continue;
            }
            let from_end = if first.saturating_sub(1) > horizon {
                first
            } else if last_end.saturating_sub(1) <= horizon {
                routing.late += 1;
                continue;
            } else {
                // Counts only in the windows that had not fired (or, with allowed lateness,
                // had not expired) when the row arrived.
                g.next_window_end_after(horizon.saturating_add(1))
            };
            let key = (slice_end, from_end);
            let target = match last {
                Some((k, t)) if k == key => t,
                _ => {
                    let targets = &mut routing.targets;
                    let t = *index.entry(key).or_insert_with(|| {
                        targets.push(Target { slice_end, from_end, rows: Vec::new() });
                        targets.len() - 1
                    });
                    last = Some((key, t));
                    t
                }
            };
            routing.targets[target].rows.push(row as u32);
        }
        routing
    }

    /// Keys, aggregate arguments and FILTER masks of a whole batch.
    fn evaluate_inputs(&self, batch: &RecordBatch) -> Result<Inputs> {
        let rows = batch.num_rows();
        let expr_err = |source| EngineError::Expression { operator: self.name.clone(), source };
        let eval = |e: &Arc<dyn PhysicalExpr>| e.evaluate(batch).and_then(|v| v.into_array(rows));
        let keys = self.spec.keys.iter().map(|k| eval(&k.expr)).collect::<DfResult<Vec<_>>>().map_err(expr_err)?;
        let args = self
            .args
            .iter()
            .map(|exprs| exprs.iter().map(eval).collect::<DfResult<Vec<_>>>())
            .collect::<DfResult<Vec<_>>>()
            .map_err(expr_err)?;
        let mut filters = Vec::with_capacity(self.spec.aggregates.len());
        for a in &self.spec.aggregates {
            let Some(f) = &a.filter else {
                filters.push(None);
                continue;
            };
            let mask = eval(&f.expr).map_err(expr_err)?;
            let Some(mask) = mask.as_boolean_opt() else {
                return Err(EngineError::Plan(format!(
                    "{}: FILTER of {} is {}, not BOOLEAN",
                    self.name,
                    a.display,
                    mask.data_type()
                )));
            };
            // FILTER keeps rows where the predicate is TRUE: NULL counts as FALSE.
            filters.push(Some(if mask.null_count() > 0 { prep_null_mask_filter(mask) } else { mask.clone() }));
        }
        Ok(Inputs { rows, keys, args, filters })
    }

    /// Fires every window with `end - 1 <= wm` not fired yet, in end order, returning their
    /// rows; then frees the slices whose last window fired.
    fn fire(&mut self, wm: i64) -> Result<Vec<RecordBatch>> {
        let mut batches = Vec::new();
        if wm <= self.watermark {
            return Ok(batches);
        }
        // Windows ending at or before `done` have fired.
        let mut done = self.watermark.saturating_add(1);
        let limit = wm.saturating_add(1);
        loop {
            self.drop_expired(done);
            // Every slice left has an unfired window, and the earliest slice has the earliest
            // one: windows are found from the slices present, never by walking empty time.
            let Some(&first_slice) = self.slices.keys().next() else { break };
            let end = self.geometry.first_window_end(first_slice).max(self.geometry.next_window_end_after(done));
            if end > limit {
                break;
            }
            if let Some(batch) = self.fire_window(end)? {
                batches.push(batch);
            }
            done = end;
        }
        self.watermark = wm;
        Ok(batches)
    }

    /// Drops the slices whose last window ended at or before `done`.
    fn drop_expired(&mut self, done: i64) {
        while let Some(entry) = self.slices.first_entry() {
            if self.geometry.last_window_end(*entry.key()) > done {
                break;
            }
            entry.remove();
        }
        if let Some((period, _)) = &self.cumulate_running {
            if period.saturating_add(self.geometry.size) <= done {
                self.cumulate_running = None;
            }
        }
    }

    /// The rows of the window ending at `end`, `None` if it has none.
    fn fire_window(&mut self, end: i64) -> Result<Option<RecordBatch>> {
        let start = self.geometry.window_start(end);
        let finished = match self.geometry.kind {
            Kind::Tumble => self.finish_tumble(end),
            Kind::Hop => self.finish_hop(start, end),
            Kind::Cumulate => self.finish_cumulate(start, end),
        }
        .map_err(|source| EngineError::Expression { operator: self.name.clone(), source })?;
        if finished.rows == 0 {
            return Ok(None);
        }
        self.output_batch(start, end, finished).map(Some)
    }

    /// TUMBLE: the window is its only slice, whose partial is evaluated as is.
    fn finish_tumble(&mut self, end: i64) -> DfResult<Finished> {
        let Some(mut slice) = self.slices.remove(&end) else { return Ok(Finished::default()) };
        if slice.frozen.is_empty() && slice.live.len() == 1 {
            if let Some((_, partial)) = slice.live.pop() {
                return partial.finish();
            }
        }
        // Not reached with TUMBLE's routing (a slice gets one partial); merge to stay correct.
        slice.freeze_live()?;
        let mut merger = self.factory.create()?;
        for chunk in &slice.frozen {
            merger.merge(chunk, &mut self.groups)?;
        }
        merger.finish()
    }

    /// HOP: merge the frozen partials of the window's slices that count in it.
    fn finish_hop(&mut self, start: i64, end: i64) -> DfResult<Finished> {
        let mut merger = self.factory.create()?;
        for slice in self.slices.range_mut((Bound::Excluded(start), Bound::Included(end))).map(|(_, s)| s) {
            slice.freeze_live()?;
            for chunk in slice.frozen.iter().filter(|c| c.from_end <= end) {
                merger.merge(chunk, &mut self.groups)?;
            }
        }
        merger.finish()
    }

    /// CUMULATE: the previous window of the period plus the partials that count from this
    /// window on; those are folded into the running state and leave their slice.
    fn finish_cumulate(&mut self, start: i64, end: i64) -> DfResult<Finished> {
        let mut merger = self.factory.create()?;
        if let Some((period, running)) = self.cumulate_running.take() {
            if period == start {
                merger.merge(&running, &mut self.groups)?;
            }
        }
        for slice in self.slices.range_mut((Bound::Excluded(start), Bound::Included(end))).map(|(_, s)| s) {
            slice.freeze_live()?;
            let (now, later): (Vec<Frozen>, Vec<Frozen>) =
                std::mem::take(&mut slice.frozen).into_iter().partition(|c| c.from_end <= end);
            slice.frozen = later;
            for chunk in &now {
                merger.merge(chunk, &mut self.groups)?;
            }
        }
        if end >= start.saturating_add(self.geometry.size) {
            // The period's last window: nothing carries over.
            return merger.finish();
        }
        // Evaluating consumes an accumulator's state, so keep the state and evaluate a copy.
        let running = merger.freeze(end)?;
        let mut result = self.factory.create()?;
        result.merge(&running, &mut self.groups)?;
        self.cumulate_running = Some((start, running));
        result.finish()
    }

    /// Output rows of one window, in the output schema.
    fn output_batch(&self, start: i64, end: i64, finished: Finished) -> Result<RecordBatch> {
        let rows = finished.rows;
        let missing =
            |what: String| EngineError::Internal(format!("{}: {what} missing from a fired window", self.name));
        let mut columns = Vec::with_capacity(self.spec.output.len());
        for (o, field) in self.spec.output.iter().zip(self.output_schema.fields()) {
            let column = match *o {
                WindowOutput::Key(k) => finished.keys.get(k).cloned().ok_or_else(|| missing(format!("key {k}")))?,
                WindowOutput::Aggregate(a) => {
                    finished.values.get(a).cloned().ok_or_else(|| missing(format!("aggregate {a}")))?
                }
                WindowOutput::WindowStart => time_column(start, rows, field.data_type()),
                WindowOutput::WindowEnd => time_column(end, rows, field.data_type()),
                WindowOutput::WindowTime => time_column(end.saturating_sub(1), rows, field.data_type()),
            };
            let column = if column.data_type() == field.data_type() {
                column
            } else {
                cast(&column, field.data_type())
                    .map_err(|source| EngineError::Arrow { operator: self.name.clone(), source })?
            };
            columns.push(column);
        }
        RecordBatch::try_new(self.output_schema.clone(), columns)
            .map_err(|source| EngineError::Arrow { operator: self.name.clone(), source })
    }
}

/// Updating output (`spec.emit` set), see the module docs.
impl WindowAggregateOperator {
    /// After a batch: marks the windows it changed, emits the changed windows that already
    /// fired (late firing) and schedules an early fire for open ones.
    fn after_batch(&mut self, touched: &[(i64, i64)], out: &mut Vec<Message>) -> Result<()> {
        // Windows ending at or before this have fired.
        let fired_limit = self.watermark.saturating_add(1);
        let g = self.geometry;
        for &(slice_end, from_end) in touched {
            let last = g.last_window_end(slice_end);
            // Without early firing open windows are emitted when they close anyway.
            let stop = if self.early_fire.is_some() { last } else { last.min(fired_limit) };
            let mut end = from_end;
            while end <= stop {
                self.dirty.insert(end);
                match end.checked_add(g.grid) {
                    Some(next) => end = next,
                    None => break,
                }
            }
        }
        let fired: Vec<i64> = self.dirty.range(..=fired_limit).copied().collect();
        if !fired.is_empty() {
            for end in &fired {
                self.dirty.remove(end);
            }
            if let Some(batch) = self.emit_windows(&fired)? {
                out.push(Message::Data(batch));
            }
        }
        if let Some(delay) = self.early_fire {
            if !self.dirty.is_empty() && self.early_due.is_none() {
                // D after the first change since the last early fire (and never sooner than
                // D after that fire).
                let from = match self.last_early_fire {
                    Some(last) => last.max(Instant::now()),
                    None => Instant::now(),
                };
                self.early_due = Some(from + delay);
            }
        }
        Ok(())
    }

    /// Closes every window with `end - 1 <= wm`, emitting its changes against what it
    /// emitted early (all `+I` if nothing), then frees what expired and forwards `wm`.
    fn fire_updating(&mut self, wm: Watermark, out: &mut Vec<Message>) -> Result<()> {
        if wm.0 > self.watermark {
            let ends = self.windows_to_close(wm.0);
            if let Some(batch) = self.emit_windows(&ends)? {
                out.push(Message::Data(batch));
            }
            let limit = wm.0.saturating_add(1);
            while self.dirty.first().is_some_and(|end| *end <= limit) {
                self.dirty.pop_first();
            }
            if self.dirty.is_empty() {
                self.early_due = None;
            }
            self.watermark = wm.0;
            self.expire(wm.0);
        }
        out.push(Message::Watermark(wm));
        Ok(())
    }

    /// The ends of the windows with data that close when the watermark reaches `wm`, in
    /// order. As in [`Self::fire`], they are found from the slices present (which here
    /// include slices of fired windows kept for lateness: skipped).
    fn windows_to_close(&self, wm: i64) -> Vec<i64> {
        let g = &self.geometry;
        let mut ends = Vec::new();
        // Windows ending at or before `done` have fired.
        let mut done = self.watermark.saturating_add(1);
        let limit = wm.saturating_add(1);
        // A slice with a window ending after `done` ends after `done - size`.
        let lower = Bound::Excluded(done.saturating_sub(g.size));
        for &slice_end in self.slices.range((lower, Bound::Unbounded)).map(|(k, _)| k) {
            let last = g.last_window_end(slice_end);
            while last > done {
                let end = g.first_window_end(slice_end).max(g.next_window_end_after(done));
                if end > limit {
                    return ends;
                }
                ends.push(end);
                done = end;
            }
        }
        ends
    }

    /// Frees the emitted rows and slices of the windows with `end - 1 + lateness <= wm`.
    fn expire(&mut self, wm: i64) {
        let lateness = self.lateness;
        let expired = |end: i64| end.saturating_sub(1).saturating_add(lateness) <= wm;
        while let Some(entry) = self.emitted.first_entry() {
            if !expired(*entry.key()) {
                break;
            }
            entry.remove();
        }
        // A slice's last window end grows with the slice's end.
        while let Some(entry) = self.slices.first_entry() {
            if !expired(self.geometry.last_window_end(*entry.key())) {
                break;
            }
            entry.remove();
        }
    }

    /// Computes the windows ending at `ends` (ascending) and emits, for each, its changes
    /// since last emitted, remembering the new result; `None` if nothing changed.
    fn emit_windows(&mut self, ends: &[i64]) -> Result<Option<Batch>> {
        let results = self
            .compute_windows(ends)
            .map_err(|source| EngineError::Expression { operator: self.name.clone(), source })?;
        let mut batches = Vec::new();
        let mut kinds: Vec<i8> = Vec::new();
        for (&end, result) in ends.iter().zip(results) {
            if result.rows == 0 {
                continue;
            }
            let old = self.emitted.remove(&end);
            let (changes, emitted) = self.diff(result, old)?;
            self.emitted.insert(end, emitted);
            if let Some((rows, row_kinds)) = changes {
                batches.push(self.output_batch(self.geometry.window_start(end), end, rows)?);
                kinds.extend(row_kinds.into_iter().map(RowKind::code));
            }
        }
        let data = match batches.len() {
            0 => return Ok(None),
            1 => batches.pop().expect("one batch"),
            _ => concat_batches(&self.output_schema, &batches)
                .map_err(|source| EngineError::Arrow { operator: self.name.clone(), source })?,
        };
        Ok(Some(Batch { data, row_kinds: Some(Int8Array::from(kinds)), arrival_watermarks: None }))
    }

    /// The current results of the windows ending at `ends` (ascending), without consuming
    /// any state. CUMULATE computes the windows of a period in one pass, each the previous
    /// one plus the partials that count from it on.
    fn compute_windows(&mut self, ends: &[i64]) -> DfResult<Vec<Finished>> {
        let g = self.geometry;
        let (Some(&first), Some(&last)) = (ends.first(), ends.last()) else { return Ok(Vec::new()) };
        let lower = Bound::Excluded(g.window_start(first));
        for slice in self.slices.range_mut((lower, Bound::Included(last))).map(|(_, s)| s) {
            slice.compact(&self.factory, &mut self.groups)?;
        }
        let mut results = Vec::with_capacity(ends.len());
        match g.kind {
            Kind::Tumble | Kind::Hop => {
                for &end in ends {
                    let start = g.window_start(end);
                    let mut merger = self.factory.create()?;
                    for slice in self.slices.range((Bound::Excluded(start), Bound::Included(end))).map(|(_, s)| s) {
                        for chunk in slice.frozen.iter().filter(|c| c.from_end <= end) {
                            merger.merge(chunk, &mut self.groups)?;
                        }
                    }
                    results.push(merger.finish()?);
                }
            }
            Kind::Cumulate => {
                let mut i = 0;
                while i < ends.len() {
                    let start = g.window_start(ends[i]);
                    let mut j = i + 1;
                    while j < ends.len() && g.window_start(ends[j]) == start {
                        j += 1;
                    }
                    let period = &ends[i..j];
                    let period_last = period[period.len() - 1];
                    // A CUMULATE partial counts in every window of its period from its
                    // `from_end` on (its slice ends at or before that).
                    let mut chunks: Vec<&Frozen> = self
                        .slices
                        .range((Bound::Excluded(start), Bound::Included(period_last)))
                        .flat_map(|(_, s)| s.frozen.iter())
                        .filter(|c| c.from_end <= period_last)
                        .collect();
                    chunks.sort_by_key(|c| c.from_end);
                    let mut merger = self.factory.create()?;
                    let mut next = 0;
                    for (n, &end) in period.iter().enumerate() {
                        while next < chunks.len() && chunks[next].from_end <= end {
                            merger.merge(chunks[next], &mut self.groups)?;
                            next += 1;
                        }
                        if n + 1 < period.len() {
                            results.push(merger.snapshot(&self.factory, &mut self.groups)?);
                        }
                    }
                    results.push(merger.finish()?);
                    i = j;
                }
            }
        }
        Ok(results)
    }

    /// Diffs a window's new result against what it emitted before: the rows to emit with
    /// their kinds (`None` if nothing changed) and the new [`Emitted`].
    #[allow(clippy::type_complexity)]
    fn diff(&mut self, new: Finished, old: Option<Emitted>) -> Result<(Option<(Finished, Vec<RowKind>)>, Emitted)> {
        let expr_err = |source| EngineError::Expression { operator: self.name.clone(), source };
        let arrow_err = |source| EngineError::Arrow { operator: self.name.clone(), source };
        let Some(Emitted { mut index, result: old }) = old else {
            let mut index = self.factory.key_table().map_err(expr_err)?;
            index.intern(&new.keys, new.rows, &mut self.groups).map_err(expr_err)?;
            let kinds = vec![RowKind::Insert; new.rows];
            return Ok((Some((new.clone(), kinds)), Emitted { index, result: new }));
        };
        // Group of each new row in the index: below `old.rows` for a key emitted before.
        index.intern(&new.keys, new.rows, &mut self.groups).map_err(expr_err)?;
        let groups = std::mem::take(&mut self.groups);
        let equal: Vec<Box<dyn Fn(usize, usize) -> bool>> =
            self.compared.iter().map(|&a| values_equal(&old.values[a], &new.values[a])).collect();
        // Rows to emit as (0: old result, 1: new result; row).
        let mut pick: Vec<(usize, usize)> = Vec::new();
        let mut kinds = Vec::new();
        for (row, &group) in groups.iter().enumerate() {
            if group >= old.rows {
                pick.push((1, row));
                kinds.push(RowKind::Insert);
            } else if !equal.iter().all(|eq| eq(group, row)) {
                pick.extend([(0, group), (1, row)]);
                kinds.extend([RowKind::UpdateBefore, RowKind::UpdateAfter]);
            }
        }
        drop(equal);
        let changes = if pick.is_empty() {
            None
        } else {
            let pick_all = |olds: &[ArrayRef], news: &[ArrayRef]| -> Result<Vec<ArrayRef>> {
                olds.iter()
                    .zip(news)
                    .map(|(o, n)| interleave(&[o.as_ref(), n.as_ref()], &pick).map_err(arrow_err))
                    .collect()
            };
            let rows = Finished {
                rows: pick.len(),
                keys: pick_all(&old.keys, &new.keys)?,
                values: pick_all(&old.values, &new.values)?,
            };
            Some((rows, kinds))
        };
        // Keep the new result in the index's group order.
        let emitted = if index.len() != new.rows {
            // Not reached (a window's keys only grow): rebuild the index.
            let mut index = self.factory.key_table().map_err(expr_err)?;
            self.groups = groups;
            index.intern(&new.keys, new.rows, &mut self.groups).map_err(expr_err)?;
            Emitted { index, result: new }
        } else if groups.iter().enumerate().all(|(row, &group)| row == group) {
            self.groups = groups;
            Emitted { index, result: new }
        } else {
            let mut order = vec![0u32; new.rows];
            for (row, &group) in groups.iter().enumerate() {
                order[group] = row as u32;
            }
            self.groups = groups;
            let order = UInt32Array::from(order);
            let take_all = |arrays: &[ArrayRef]| -> Result<Vec<ArrayRef>> {
                arrays.iter().map(|a| take(a.as_ref(), &order, None).map_err(arrow_err)).collect()
            };
            let result = Finished { rows: new.rows, keys: take_all(&new.keys)?, values: take_all(&new.values)? };
            Emitted { index, result }
        };
        Ok((changes, emitted))
    }

    /// Windows whose emitted rows are kept (tests check state is freed).
    #[cfg(test)]
    fn retained_windows(&self) -> usize {
        self.emitted.len()
    }
}

/// Whether row `a` of `old` equals row `b` of `new` (NULL equals NULL).
fn values_equal<'a>(old: &'a ArrayRef, new: &'a ArrayRef) -> Box<dyn Fn(usize, usize) -> bool + 'a> {
    match make_comparator(old.as_ref(), new.as_ref(), SortOptions::default()) {
        Ok(cmp) => Box::new(move |a, b| cmp(a, b) == Ordering::Equal),
        // Types without an ordering: logical equality of the two one-row slices.
        Err(_) => Box::new(move |a, b| old.slice(a, 1).to_data() == new.slice(b, 1).to_data()),
    }
}

impl StreamOperator for WindowAggregateOperator {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if let Some(kinds) = &batch.row_kinds {
            let insert = RowKind::Insert.code();
            if kinds.iter().any(|k| k != Some(insert)) {
                return Err(EngineError::Plan(format!("{}: needs an append-only input, got a changelog", self.name)));
            }
        }
        let arrow_err = |source| EngineError::Arrow { operator: self.name.clone(), source };
        let Some(time) = batch.data.columns().get(self.spec.time_column) else {
            return Err(EngineError::Plan(format!(
                "{}: input batch has no column {}",
                self.name, self.spec.time_column
            )));
        };
        let times = to_millis(time.as_ref()).map_err(arrow_err)?;
        let routing = self.route(times.as_primitive::<Int64Type>(), batch.arrival_watermarks.as_ref());
        if routing.null_times > 0 && !self.warned_null_time {
            self.warned_null_time = true;
            tracing::warn!(operator = %self.name, "rows with a NULL time attribute are dropped (counted as late)");
        }
        self.late_rows.add(routing.late + routing.null_times);
        if routing.targets.is_empty() {
            return Ok(());
        }
        let inputs = self.evaluate_inputs(&batch.data)?;
        let whole = routing.targets.len() == 1 && routing.targets[0].rows.len() == inputs.rows;
        let touched: Vec<(i64, i64)> = if self.updating {
            routing.targets.iter().map(|t| (t.slice_end, t.from_end)).collect()
        } else {
            Vec::new()
        };
        for target in routing.targets {
            let taken;
            let part = if whole {
                &inputs
            } else {
                taken = inputs.take(&UInt32Array::from(target.rows)).map_err(arrow_err)?;
                &taken
            };
            let expr_err = |source| EngineError::Expression { operator: self.name.clone(), source };
            let slice = self.slices.entry(target.slice_end).or_default();
            let partial = match slice.live.iter().position(|(from, _)| *from == target.from_end) {
                Some(i) => &mut slice.live[i].1,
                None => {
                    slice.live.push((target.from_end, self.factory.create().map_err(expr_err)?));
                    let last = slice.live.len() - 1;
                    &mut slice.live[last].1
                }
            };
            partial.update(part, &mut self.groups).map_err(expr_err)?;
        }
        if self.updating {
            self.after_batch(&touched, out)?;
        }
        Ok(())
    }

    fn handle_watermark(&mut self, wm: Watermark, out: &mut Vec<Message>) -> Result<()> {
        if self.updating {
            return self.fire_updating(wm, out);
        }
        let batches = self.fire(wm.0)?;
        match batches.len() {
            0 => {}
            1 => out.extend(batches.into_iter().map(|b| Message::Data(Batch::append(b)))),
            _ => {
                let merged = concat_batches(&self.output_schema, &batches)
                    .map_err(|source| EngineError::Arrow { operator: self.name.clone(), source })?;
                out.push(Message::Data(Batch::append(merged)));
            }
        }
        out.push(Message::Watermark(wm));
        Ok(())
    }

    fn next_processing_time(&self) -> Option<Instant> {
        if self.dirty.is_empty() {
            None
        } else {
            self.early_due
        }
    }

    /// Early firing: every open window changed since last emitted emits its running result.
    /// The task calls this only once [`Self::next_processing_time`] is due; `now` is taken as
    /// the time of this fire (the next one is due `D` after it at the earliest).
    fn on_processing_time(&mut self, now: Instant, out: &mut Vec<Message>) -> Result<()> {
        if self.early_fire.is_none() {
            return Ok(());
        }
        self.early_due = None;
        if self.dirty.is_empty() {
            return Ok(());
        }
        let ends: Vec<i64> = std::mem::take(&mut self.dirty).into_iter().collect();
        if let Some(batch) = self.emit_windows(&ends)? {
            out.push(Message::Data(batch));
        }
        self.last_early_fire = Some(now);
        Ok(())
    }
}

/// `WindowAggregate[HOP(slide=2000ms, size=10000ms), keys=[k], aggs=[COUNT(*)]]`.
fn describe(spec: &WindowAggSpec) -> String {
    let window = match spec.window {
        WindowKind::Tumble { size, offset } => format!("TUMBLE(size={size}ms, offset={offset}ms)"),
        WindowKind::Hop { slide, size, offset } => format!("HOP(slide={slide}ms, size={size}ms, offset={offset}ms)"),
        WindowKind::Cumulate { step, size, offset } => {
            format!("CUMULATE(step={step}ms, size={size}ms, offset={offset}ms)")
        }
        WindowKind::Session { gap } => format!("SESSION(gap={gap}ms)"),
    };
    let keys: Vec<&str> = spec.keys.iter().map(|k| k.display.as_str()).collect();
    let aggs: Vec<&str> = spec.aggregates.iter().map(|a| a.display.as_str()).collect();
    format!("WindowAggregate[{window}, keys=[{}], aggs=[{}]]", keys.join(", "), aggs.join(", "))
}

/// A constant window-time column of the type the output schema asks for.
fn time_column(value: i64, rows: usize, data_type: &DataType) -> ArrayRef {
    let array = TimestampMillisecondArray::from_value(value, rows);
    match data_type {
        // Built with the schema's zone directly: casting a zoneless timestamp to a zone
        // would reinterpret it as local time.
        DataType::Timestamp(TimeUnit::Millisecond, tz) => Arc::new(array.with_timezone_opt(tz.clone())),
        _ => Arc::new(array),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tumble,
    Hop,
    Cumulate,
}

/// Where slices and windows lie, in ms. Windows end on a grid of `grid` aligned to `offset`;
/// a slice is the unit rows are aggregated in, and every window is a run of whole slices.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    kind: Kind,
    /// Window size (CUMULATE: the period).
    size: i64,
    /// Slice length.
    slice: i64,
    /// Distance between window ends.
    grid: i64,
    offset: i64,
}

impl Geometry {
    fn new(window: WindowKind) -> std::result::Result<Self, String> {
        let positive =
            |what: &str, v: i64| if v > 0 { Ok(()) } else { Err(format!("window {what} must be positive, got {v}")) };
        match window {
            WindowKind::Tumble { size, offset } => {
                positive("size", size)?;
                Ok(Self { kind: Kind::Tumble, size, slice: size, grid: size, offset })
            }
            WindowKind::Hop { slide, size, offset } => {
                positive("size", size)?;
                positive("slide", slide)?;
                Ok(Self { kind: Kind::Hop, size, slice: gcd(size, slide), grid: slide, offset })
            }
            WindowKind::Cumulate { step, size, offset } => {
                positive("size", size)?;
                positive("step", step)?;
                if size % step != 0 {
                    // Flink rejects this too: the last window would not end on a step.
                    return Err(format!("CUMULATE size {size} ms must be an integral multiple of step {step} ms"));
                }
                Ok(Self { kind: Kind::Cumulate, size, slice: step, grid: step, offset })
            }
            WindowKind::Session { .. } => Err("SESSION windows are not sliced".to_string()),
        }
    }

    /// End of the slice holding `ts`.
    fn slice_end(&self, ts: i64) -> i64 {
        align_down(ts, self.slice, self.offset).saturating_add(self.slice)
    }

    /// End of the first window holding the slice ending at `slice_end`.
    fn first_window_end(&self, slice_end: i64) -> i64 {
        match self.kind {
            Kind::Tumble | Kind::Cumulate => slice_end,
            Kind::Hop => align_up(slice_end, self.grid, self.offset),
        }
    }

    /// End of the last window holding the slice ending at `slice_end`.
    fn last_window_end(&self, slice_end: i64) -> i64 {
        let slice_start = slice_end.saturating_sub(self.slice);
        match self.kind {
            Kind::Tumble => slice_end,
            Kind::Hop => align_down(slice_start.saturating_add(self.size), self.grid, self.offset),
            Kind::Cumulate => align_down(slice_start, self.size, self.offset).saturating_add(self.size),
        }
    }

    /// Start of the window ending at `end`.
    fn window_start(&self, end: i64) -> i64 {
        match self.kind {
            Kind::Tumble | Kind::Hop => end.saturating_sub(self.size),
            Kind::Cumulate => align_down(end.saturating_sub(1), self.size, self.offset),
        }
    }

    /// The first window end after `t`.
    fn next_window_end_after(&self, t: i64) -> i64 {
        align_down(t, self.grid, self.offset).saturating_add(self.grid)
    }
}

/// The largest `offset + k*unit <= t` (in i128 so extreme times saturate, not overflow).
fn align_down(t: i64, unit: i64, offset: i64) -> i64 {
    let t = i128::from(t);
    let aligned = t - (t - i128::from(offset)).rem_euclid(i128::from(unit));
    i64::try_from(aligned).unwrap_or(i64::MIN)
}

/// The smallest `offset + k*unit >= t`.
fn align_up(t: i64, unit: i64, offset: i64) -> i64 {
    let down = align_down(t, unit, offset);
    if down == t {
        t
    } else {
        down.saturating_add(unit)
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Where the rows of one batch go.
#[derive(Default)]
struct Routing {
    targets: Vec<Target>,
    late: u64,
    null_times: u64,
}

/// Rows of a batch bound for one partial.
struct Target {
    slice_end: i64,
    /// The first window end these rows count in.
    from_end: i64,
    rows: Vec<u32>,
}

/// The evaluated inputs of a batch (or of some of its rows).
struct Inputs {
    rows: usize,
    keys: Vec<ArrayRef>,
    /// Per aggregate, its argument columns.
    args: Vec<Vec<ArrayRef>>,
    /// Per aggregate, its FILTER mask (no NULLs).
    filters: Vec<Option<BooleanArray>>,
}

impl Inputs {
    fn take(&self, indices: &UInt32Array) -> std::result::Result<Inputs, arrow::error::ArrowError> {
        let take_all = |arrays: &[ArrayRef]| arrays.iter().map(|a| take(a.as_ref(), indices, None)).collect();
        Ok(Inputs {
            rows: indices.len(),
            keys: take_all(&self.keys)?,
            args: self.args.iter().map(|a| take_all(a)).collect::<std::result::Result<_, _>>()?,
            filters: self
                .filters
                .iter()
                .map(|f| f.as_ref().map(|f| take(f, indices, None).map(|a| a.as_boolean().clone())).transpose())
                .collect::<std::result::Result<_, _>>()?,
        })
    }
}

/// One slice's partial aggregates.
#[derive(Default)]
struct Slice {
    /// Partials still taking rows, by the first window end their rows count in.
    live: Vec<(i64, Partial)>,
    /// Partials turned into state arrays once a window needed them.
    frozen: Vec<Frozen>,
}

impl Slice {
    /// Freezes every live partial, so a window can merge them (state arrays can be merged into
    /// any number of windows; a live accumulator's state can be read only once).
    fn freeze_live(&mut self) -> DfResult<()> {
        for (from_end, partial) in std::mem::take(&mut self.live) {
            let frozen = partial.freeze(from_end)?;
            if frozen.groups > 0 {
                self.frozen.push(frozen);
            }
        }
        Ok(())
    }
}

impl Slice {
    /// Freezes the live partials and merges the frozen ones with the same `from_end` into
    /// one, so reading the slice again and again stays proportional to its keys.
    fn compact(&mut self, factory: &PartialFactory, groups: &mut Vec<usize>) -> DfResult<()> {
        self.freeze_live()?;
        if self.frozen.len() < 2 {
            return Ok(());
        }
        let mut chunks = std::mem::take(&mut self.frozen);
        chunks.sort_by_key(|c| c.from_end);
        let mut chunks = chunks.into_iter().peekable();
        while let Some(chunk) = chunks.next() {
            let from_end = chunk.from_end;
            if chunks.peek().is_none_or(|next| next.from_end != from_end) {
                self.frozen.push(chunk);
                continue;
            }
            let mut merger = factory.create()?;
            merger.merge(&chunk, groups)?;
            while let Some(next) = chunks.next_if(|next| next.from_end == from_end) {
                merger.merge(&next, groups)?;
            }
            self.frozen.push(merger.freeze(from_end)?);
        }
        Ok(())
    }
}

/// The rows a window emitted last: its result (keys and values, row `i` being group `i`)
/// and the index from key to group.
struct Emitted {
    index: KeyTable,
    result: Finished,
}

/// Partial aggregates frozen into arrays: `GroupsAccumulator::state` per aggregate, with the
/// keys of its groups.
struct Frozen {
    /// The first window end these rows count in.
    from_end: i64,
    groups: usize,
    keys: Vec<ArrayRef>,
    states: Vec<Vec<ArrayRef>>,
}

/// Builds empty partials.
struct PartialFactory {
    key_schema: SchemaRef,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
}

impl PartialFactory {
    fn key_table(&self) -> DfResult<KeyTable> {
        Ok(if self.key_schema.fields().is_empty() {
            KeyTable::Global { groups: 0 }
        } else {
            KeyTable::Grouped(new_group_values(self.key_schema.clone(), &GroupOrdering::None)?)
        })
    }

    fn create(&self) -> DfResult<Partial> {
        let keys = self.key_table()?;
        let accumulators = self
            .aggregates
            .iter()
            .map(|f| -> DfResult<Box<dyn GroupsAccumulator>> {
                if f.groups_accumulator_supported() {
                    f.create_groups_accumulator()
                } else {
                    let f = f.clone();
                    Ok(Box::new(GroupsAccumulatorAdapter::new(move || f.create_accumulator())))
                }
            })
            .collect::<DfResult<Vec<_>>>()?;
        Ok(Partial { keys, accumulators })
    }
}

/// Keys interned to group indices. Without keys every row is group 0; DataFusion's
/// `GroupValues` needs at least one column.
enum KeyTable {
    Global { groups: usize },
    Grouped(Box<dyn GroupValues>),
}

impl KeyTable {
    fn intern(&mut self, keys: &[ArrayRef], rows: usize, groups: &mut Vec<usize>) -> DfResult<()> {
        groups.clear();
        match self {
            KeyTable::Global { groups: n } => {
                groups.resize(rows, 0);
                if rows > 0 {
                    *n = 1;
                }
                Ok(())
            }
            KeyTable::Grouped(values) => values.intern(keys, groups),
        }
    }

    fn len(&self) -> usize {
        match self {
            KeyTable::Global { groups } => *groups,
            KeyTable::Grouped(values) => values.len(),
        }
    }

    fn emit(&mut self) -> DfResult<Vec<ArrayRef>> {
        match self {
            KeyTable::Global { groups } => {
                *groups = 0;
                Ok(Vec::new())
            }
            KeyTable::Grouped(values) => values.emit(EmitTo::All),
        }
    }
}

/// Aggregates of some rows, per key.
struct Partial {
    keys: KeyTable,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
}

/// A fired window's keys and aggregate values, one row per group.
#[derive(Default, Clone)]
struct Finished {
    rows: usize,
    keys: Vec<ArrayRef>,
    values: Vec<ArrayRef>,
}

impl Partial {
    /// Aggregates input rows.
    fn update(&mut self, input: &Inputs, groups: &mut Vec<usize>) -> DfResult<()> {
        self.keys.intern(&input.keys, input.rows, groups)?;
        let total = self.keys.len();
        for ((acc, args), filter) in self.accumulators.iter_mut().zip(&input.args).zip(&input.filters) {
            acc.update_batch(args, groups, filter.as_ref(), total)?;
        }
        Ok(())
    }

    /// Adds frozen partial aggregates.
    fn merge(&mut self, frozen: &Frozen, groups: &mut Vec<usize>) -> DfResult<()> {
        if frozen.groups == 0 {
            return Ok(());
        }
        self.keys.intern(&frozen.keys, frozen.groups, groups)?;
        let total = self.keys.len();
        for (acc, state) in self.accumulators.iter_mut().zip(&frozen.states) {
            acc.merge_batch(state, groups, total)?;
        }
        Ok(())
    }

    /// The partial as state arrays.
    fn freeze(mut self, from_end: i64) -> DfResult<Frozen> {
        let groups = self.keys.len();
        let keys = self.keys.emit()?;
        let states = self.accumulators.iter_mut().map(|a| a.state(EmitTo::All)).collect::<DfResult<Vec<_>>>()?;
        Ok(Frozen { from_end, groups, keys, states })
    }

    /// Final values per group, leaving the partial as it was (evaluating consumes an
    /// accumulator's state: the state is read, merged back into a fresh partial that
    /// replaces this one, and a copy evaluated).
    fn snapshot(&mut self, factory: &PartialFactory, groups: &mut Vec<usize>) -> DfResult<Finished> {
        let state = std::mem::replace(self, factory.create()?).freeze(0)?;
        self.merge(&state, groups)?;
        let mut copy = factory.create()?;
        copy.merge(&state, groups)?;
        copy.finish()
    }

    /// Final values per group.
    fn finish(mut self) -> DfResult<Finished> {
        let rows = self.keys.len();
        let keys = self.keys.emit()?;
        let values = self.accumulators.iter_mut().map(|a| a.evaluate(EmitTo::All)).collect::<DfResult<Vec<_>>>()?;
        Ok(Finished { rows, keys, values })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{StringArray, TimestampMillisecondArray};
    use arrow::util::display::array_value_to_string;
    use datafusion::functions_aggregate::average::avg_udaf;
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::functions_aggregate::min_max::max_udaf;
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::logical_expr::{AggregateUDF, Operator as BinaryOp};
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::{binary, cast as expr_cast, col, lit};
    use eddy_sql::plan::{AggregateSpec, EmitStrategy, ExprSpec};

    use super::*;

    type Row<'a> = (i64, &'a str, i64);

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
        ]))
    }

    fn batch(rows: &[Row]) -> Batch {
        let ts = TimestampMillisecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
        let k = StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
        let v = Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>());
        Batch::append(RecordBatch::try_new(input_schema(), vec![Arc::new(ts), Arc::new(k), Arc::new(v)]).unwrap())
    }

    /// A batch whose rows arrived under the given watermarks.
    fn batch_arriving(rows: &[Row], arrival: &[i64]) -> Batch {
        Batch { arrival_watermarks: Some(Int64Array::from(arrival.to_vec())), ..batch(rows) }
    }

    fn agg(udaf: Arc<AggregateUDF>, distinct: bool, filter: Option<Arc<dyn PhysicalExpr>>) -> AggregateSpec {
        agg_of(udaf, col("v", &input_schema()).unwrap(), distinct, filter)
    }

    fn agg_of(
        udaf: Arc<AggregateUDF>,
        arg: Arc<dyn PhysicalExpr>,
        distinct: bool,
        filter: Option<Arc<dyn PhysicalExpr>>,
    ) -> AggregateSpec {
        let schema = input_schema();
        let name = format!("{}{}(v)", udaf.name(), if distinct { "_distinct" } else { "" });
        let function = AggregateExprBuilder::new(udaf, vec![arg])
            .schema(schema)
            .alias(name.clone())
            .with_distinct(distinct)
            .build()
            .unwrap();
        let filter = filter.map(|expr| ExprSpec { expr, display: "filter".into() });
        AggregateSpec { function: Arc::new(function), filter, display: name }
    }

    /// `v > n`.
    fn v_greater_than(n: i64) -> Arc<dyn PhysicalExpr> {
        let schema = input_schema();
        binary(col("v", &schema).unwrap(), BinaryOp::Gt, lit(n), &schema).unwrap()
    }

    /// Output: [k,] window_start, window_end, window_time, aggregates...
    fn operator(
        window: WindowKind,
        keyed: bool,
        aggregates: Vec<AggregateSpec>,
    ) -> (WindowAggregateOperator, LateRowCounter) {
        operator_with(window, keyed, aggregates, EmitStrategy::default())
    }

    fn operator_with(
        window: WindowKind,
        keyed: bool,
        aggregates: Vec<AggregateSpec>,
        emit: EmitStrategy,
    ) -> (WindowAggregateOperator, LateRowCounter) {
        let schema = input_schema();
        let ts_type = DataType::Timestamp(TimeUnit::Millisecond, None);
        let mut fields = Vec::new();
        let mut output = Vec::new();
        let mut keys = Vec::new();
        if keyed {
            keys.push(ExprSpec { expr: col("k", &schema).unwrap(), display: "k".into() });
            fields.push(Field::new("k", DataType::Utf8, false));
            output.push(WindowOutput::Key(0));
        }
        for (name, o) in [
            ("window_start", WindowOutput::WindowStart),
            ("window_end", WindowOutput::WindowEnd),
            ("window_time", WindowOutput::WindowTime),
        ] {
            fields.push(Field::new(name, ts_type.clone(), false));
            output.push(o);
        }
        for (i, a) in aggregates.iter().enumerate() {
            fields.push(a.function.field().as_ref().clone());
            output.push(WindowOutput::Aggregate(i));
        }
        let late = LateRowCounter::detached();
        let ctx = OperatorContext {
            input_schema: schema,
            output_schema: Arc::new(Schema::new(fields)),
            late_rows: late.clone(),
        };
        let spec = WindowAggSpec { window, time_column: 0, keys, aggregates, output, emit };
        (WindowAggregateOperator::new(spec, ctx).unwrap(), late)
    }

    fn feed(op: &mut WindowAggregateOperator, input: Vec<Message>) -> Vec<Message> {
        let mut out = Vec::new();
        for m in input {
            match m {
                Message::Data(b) => op.process_batch(b, &mut out).unwrap(),
                Message::Watermark(w) => op.handle_watermark(w, &mut out).unwrap(),
                Message::End => op.on_end(&mut out).unwrap(),
                Message::Idle => {}
            }
        }
        out
    }

    /// Output rows as sorted `k|start|end|agg..` strings (times in ms); checks window_time.
    fn rows(out: &[Message]) -> Vec<String> {
        let mut rows = Vec::new();
        for m in out {
            let Message::Data(b) = m else { continue };
            rows.extend(row_strings(b));
        }
        rows.sort();
        rows
    }

    /// Changelog output as sorted `kind|k|start|end|agg..` strings; checks that every row has
    /// a kind and that each `-U` is directly followed by the `+U` of its key and window.
    fn changes(out: &[Message]) -> Vec<String> {
        let mut all = Vec::new();
        for m in out {
            let Message::Data(b) = m else { continue };
            let kinds = b.row_kinds.as_ref().expect("updating output carries row kinds");
            let rows = row_strings(b);
            assert_eq!(kinds.len(), rows.len());
            let kinds: Vec<RowKind> = kinds.iter().map(|k| RowKind::from_code(k.unwrap()).unwrap()).collect();
            for (i, kind) in kinds.iter().enumerate() {
                if *kind == RowKind::UpdateBefore {
                    assert_eq!(kinds.get(i + 1), Some(&RowKind::UpdateAfter), "-U without +U: {rows:?}");
                    // Keys, window_start and window_end: the columns before window_time.
                    let time_idx = b.data.schema().index_of("window_time").unwrap();
                    let window = |r: &str| r.split('|').take(time_idx).collect::<Vec<_>>().join("|");
                    assert_eq!(window(&rows[i]), window(&rows[i + 1]));
                }
                all.push(format!("{kind}|{}", rows[i]));
            }
        }
        all.sort();
        all
    }

    /// One batch's rows as `k|start|end|agg..` strings, in order; checks window_time.
    fn row_strings(b: &Batch) -> Vec<String> {
        let columns: Vec<ArrayRef> = b
            .data
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Timestamp(..) => cast(c, &DataType::Int64).unwrap(),
                _ => c.clone(),
            })
            .collect();
        let time_idx = b.data.schema().index_of("window_time").unwrap();
        let mut rows = Vec::new();
        for r in 0..b.num_rows() {
            let end = columns[time_idx - 1].as_primitive::<Int64Type>().value(r);
            assert_eq!(columns[time_idx].as_primitive::<Int64Type>().value(r), end - 1);
            let cells: Vec<String> = columns
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != time_idx)
                .map(|(_, c)| if c.is_null(r) { "NULL".into() } else { array_value_to_string(c, r).unwrap() })
                .collect();
            rows.push(cells.join("|"));
        }
        rows
    }

    fn sorted(rows: &[&str]) -> Vec<String> {
        let mut rows: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
        rows.sort();
        rows
    }

    /// COUNT(v) and SUM(v) per key and window, computed row by row over every window of a row.
    fn brute_force(rows: &[Row], windows: impl Fn(i64) -> Vec<(i64, i64)>) -> Vec<String> {
        let mut acc: BTreeMap<(String, i64, i64), (i64, i64)> = BTreeMap::new();
        for (ts, k, v) in rows {
            for (start, end) in windows(*ts) {
                let e = acc.entry((k.to_string(), start, end)).or_default();
                e.0 += 1;
                e.1 += v;
            }
        }
        let mut out: Vec<String> = acc.into_iter().map(|((k, s, e), (c, v))| format!("{k}|{s}|{e}|{c}|{v}")).collect();
        out.sort();
        out
    }

    fn hop_windows(ts: i64, slide: i64, size: i64) -> Vec<(i64, i64)> {
        let mut end = ts.div_euclid(slide) * slide + slide;
        let mut out = Vec::new();
        while end - size <= ts {
            out.push((end - size, end));
            end += slide;
        }
        out
    }

    fn cumulate_windows(ts: i64, step: i64, size: i64) -> Vec<(i64, i64)> {
        let period = ts.div_euclid(size) * size;
        (1..=size / step).map(|n| (period, period + n * step)).filter(|(_, end)| ts < *end).collect()
    }

    /// Rows in roughly increasing time, up to 1.9 s out of order, over keys a..d.
    fn generated_rows(n: usize) -> Vec<(i64, &'static str, i64)> {
        let keys = ["a", "b", "c", "d"];
        let mut seed: u64 = 42;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            seed >> 33
        };
        (0..n)
            .map(|i| (i as i64 * 97 + (next() % 1900) as i64, keys[(next() % 4) as usize], (next() % 100) as i64))
            .collect()
    }

    /// Feeds `rows` in batches of 17, each followed by the watermark max(ts) - 2 s (so no row
    /// is late), then the end-of-input watermark.
    fn feed_in_order(op: &mut WindowAggregateOperator, rows: &[Row]) -> Vec<Message> {
        let mut input = Vec::new();
        let mut max_ts = i64::MIN;
        for chunk in rows.chunks(17) {
            input.push(Message::Data(batch(chunk)));
            max_ts = chunk.iter().map(|r| r.0).fold(max_ts, i64::max);
            input.push(Message::Watermark(Watermark(max_ts - 2000)));
        }
        input.push(Message::Watermark(Watermark::MAX));
        feed(op, input)
    }

    fn count_sum() -> Vec<AggregateSpec> {
        vec![agg(count_udaf(), false, None), agg(sum_udaf(), false, None)]
    }

    #[test]
    fn tumble_count_and_sum_per_key() {
        let (mut op, late) = operator(WindowKind::Tumble { size: 10_000, offset: 0 }, true, count_sum());
        let rows_in = [(1000, "a", 1), (2000, "b", 2), (9999, "a", 3), (10_000, "a", 4), (25_000, "b", 5)];
        let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark(9999))]);
        assert_eq!(rows(&out), sorted(&["a|0|10000|2|4", "b|0|10000|1|2"]));
        assert!(matches!(out.last(), Some(Message::Watermark(Watermark(9999)))));
        let out = feed(&mut op, vec![Message::Watermark(Watermark::MAX)]);
        assert_eq!(rows(&out), sorted(&["a|10000|20000|1|4", "b|20000|30000|1|5"]));
        assert_eq!(late.get(), 0);
        assert!(op.slices.is_empty());
    }

    #[test]
    fn tumble_with_offset() {
        let (mut op, _) = operator(WindowKind::Tumble { size: 10_000, offset: 3000 }, true, count_sum());
        let rows_in = [(2999, "a", 1), (3000, "a", 2), (12_999, "a", 4)];
        let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark::MAX)]);
        assert_eq!(rows(&out), sorted(&["a|-7000|3000|1|1", "a|3000|13000|2|6"]));
    }

    #[test]
    fn hop_matches_brute_force() {
        let (mut op, late) = operator(WindowKind::Hop { slide: 2000, size: 10_000, offset: 0 }, true, count_sum());
        let rows_in = generated_rows(600);
        let out = rows(&feed_in_order(&mut op, &rows_in));
        assert_eq!(out, brute_force(&rows_in, |ts| hop_windows(ts, 2000, 10_000)));
        // Every row lands in size / slide = 5 windows.
        let counted: i64 = out.iter().map(|r| r.split('|').nth(3).unwrap().parse::<i64>().unwrap()).sum();
        assert_eq!(counted, 5 * rows_in.len() as i64);
        assert_eq!(late.get(), 0);
        assert!(op.slices.is_empty());
    }

    #[test]
    fn hop_slide_not_dividing_size_matches_brute_force() {
        let (mut op, _) = operator(WindowKind::Hop { slide: 4000, size: 10_000, offset: 1000 }, true, count_sum());
        let rows_in = generated_rows(300);
        let out = rows(&feed_in_order(&mut op, &rows_in));
        let windows =
            |ts: i64| hop_windows(ts - 1000, 4000, 10_000).into_iter().map(|(s, e)| (s + 1000, e + 1000)).collect();
        assert_eq!(out, brute_force(&rows_in, windows));
    }

    #[test]
    fn cumulate_matches_brute_force() {
        let (mut op, late) = operator(WindowKind::Cumulate { step: 2000, size: 10_000, offset: 0 }, true, count_sum());
        let rows_in = generated_rows(600);
        let out = rows(&feed_in_order(&mut op, &rows_in));
        assert_eq!(out, brute_force(&rows_in, |ts| cumulate_windows(ts, 2000, 10_000)));
        assert_eq!(late.get(), 0);
        assert!(op.slices.is_empty() && op.cumulate_running.is_none());
    }

    #[test]
    fn late_row_dropped_by_its_arrival_watermark() {
        let (mut op, late) = operator(WindowKind::Tumble { size: 10_000, offset: 0 }, true, count_sum());
        // The third row arrives after the watermark reached 12 s: its window [0, 10 s) closed.
        let b = batch_arriving(&[(1000, "a", 1), (12_000, "a", 2), (3000, "a", 4)], &[i64::MIN, 1000, 12_000]);
        let out = feed(&mut op, vec![Message::Data(b), Message::Watermark(Watermark::MAX)]);
        assert_eq!(rows(&out), sorted(&["a|0|10000|1|1", "a|10000|20000|1|2"]));
        assert_eq!(late.get(), 1);
    }

    #[test]
    fn late_row_dropped_by_the_current_watermark() {
        let (mut op, late) = operator(WindowKind::Tumble { size: 10_000, offset: 0 }, true, count_sum());
        let out = feed(
            &mut op,
            vec![
                Message::Data(batch(&[(1000, "a", 1)])),
                Message::Watermark(Watermark(10_000)),
                Message::Data(batch(&[(9999, "a", 2), (10_000, "a", 4)])),
                Message::Watermark(Watermark::MAX),
            ],
        );
        assert_eq!(rows(&out), sorted(&["a|0|10000|1|1", "a|10000|20000|1|4"]));
        assert_eq!(late.get(), 1);
    }

    #[test]
    fn null_time_dropped_and_counted() {
        let (mut op, late) = operator(WindowKind::Tumble { size: 10_000, offset: 0 }, true, count_sum());
        let ts = TimestampMillisecondArray::from(vec![Some(1000), None]);
        let data = RecordBatch::try_new(
            input_schema(),
            vec![Arc::new(ts), Arc::new(StringArray::from(vec!["a", "a"])), Arc::new(Int64Array::from(vec![1, 2]))],
        )
        .unwrap();
        let out = feed(&mut op, vec![Message::Data(Batch::append(data)), Message::Watermark(Watermark::MAX)]);
        assert_eq!(rows(&out), sorted(&["a|0|10000|1|1"]));
        assert_eq!(late.get(), 1);
    }

    #[test]
    fn late_hop_row_counts_only_in_unfired_windows() {
        let (mut op, late) = operator(WindowKind::Hop { slide: 5000, size: 10_000, offset: 0 }, true, count_sum());
        let out = feed(&mut op, vec![Message::Data(batch(&[(1000, "a", 1)])), Message::Watermark(Watermark(5000))]);
        assert_eq!(rows(&out), sorted(&["a|-5000|5000|1|1"]));
        let out = feed(
            &mut op,
            vec![
                // Window [-5 s, 5 s) fired: 2000 still counts in [0, 10 s); -3000 has no window left.
                Message::Data(batch(&[(2000, "a", 10), (-3000, "a", 100)])),
                // Per row: 7000 arrives once the watermark is 12 s, after [0, 10 s) closed, so it
                // counts only in [5 s, 15 s).
                Message::Data(batch_arriving(&[(12_000, "b", 1000), (7000, "b", 10_000)], &[i64::MIN, 12_000])),
                Message::Watermark(Watermark::MAX),
            ],
        );
        assert_eq!(rows(&out), sorted(&["a|0|10000|2|11", "b|5000|15000|2|11000", "b|10000|20000|1|1000"]));
        assert_eq!(late.get(), 1);
    }

    #[test]
    fn late_cumulate_row_counts_only_in_unfired_windows() {
        let (mut op, late) = operator(WindowKind::Cumulate { step: 2000, size: 10_000, offset: 0 }, true, count_sum());
        let out = feed(&mut op, vec![Message::Data(batch(&[(1000, "a", 1)])), Message::Watermark(Watermark(3999))]);
        assert_eq!(rows(&out), sorted(&["a|0|2000|1|1", "a|0|4000|1|1"]));
        let out = feed(
            &mut op,
            vec![Message::Data(batch(&[(500, "a", 10), (3000, "a", 100)])), Message::Watermark(Watermark::MAX)],
        );
        assert_eq!(rows(&out), sorted(&["a|0|6000|3|111", "a|0|8000|3|111", "a|0|10000|3|111"]));
        assert_eq!(late.get(), 0);
    }

    #[test]
    fn count_distinct_merges_across_slices() {
        let aggs = vec![agg(count_udaf(), true, None), agg(count_udaf(), false, None)];
        let (mut op, _) = operator(WindowKind::Hop { slide: 5000, size: 10_000, offset: 0 }, true, aggs);
        let rows_in = [(1000, "a", 1), (2000, "a", 1), (6000, "a", 1), (7000, "a", 2), (8000, "a", 2)];
        let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark::MAX)]);
        assert_eq!(rows(&out), sorted(&["a|-5000|5000|1|2", "a|0|10000|2|5", "a|5000|15000|2|3"]));
    }

    #[test]
    fn filter_clause_keeps_keys_whose_rows_are_all_filtered_out() {
        let aggs =
            vec![agg(count_udaf(), false, Some(v_greater_than(10))), agg(sum_udaf(), false, Some(v_greater_than(10)))];
        let (mut op, _) = operator(WindowKind::Tumble { size: 10_000, offset: 0 }, true, aggs);
        let rows_in = [(1000, "a", 5), (2000, "a", 20), (3000, "b", 3)];
        let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark::MAX)]);
        assert_eq!(rows(&out), sorted(&["a|0|10000|1|20", "b|0|10000|0|NULL"]));
    }

    #[test]
    fn filter_clause_through_hop_merge() {
        let aggs =
            vec![agg(count_udaf(), false, Some(v_greater_than(10))), agg(max_udaf(), false, Some(v_greater_than(10)))];
        let (mut op, _) = operator(WindowKind::Hop { slide: 5000, size: 10_000, offset: 0 }, true, aggs);
        let rows_in = [(1000, "a", 5), (6000, "a", 20)];
        let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark::MAX)]);
        assert_eq!(rows(&out), sorted(&["a|-5000|5000|0|NULL", "a|0|10000|1|20", "a|5000|15000|1|20"]));
    }

    #[test]
    fn global_aggregation_without_keys() {
        // DataFusion averages floats: the planner casts the argument, as here.
        let v_double = expr_cast(col("v", &input_schema()).unwrap(), &input_schema(), DataType::Float64).unwrap();
        let aggs = vec![
            agg(count_udaf(), false, None),
            agg(sum_udaf(), false, None),
            agg_of(avg_udaf(), v_double, false, None),
        ];
        let (mut op, _) = operator(WindowKind::Hop { slide: 5000, size: 10_000, offset: 0 }, false, aggs);
        let rows_in = [(1000, "a", 1), (6000, "b", 2), (30_000, "c", 3)];
        let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark::MAX)]);
        assert_eq!(
            rows(&out),
            sorted(&[
                "-5000|5000|1|1|1.0",
                "0|10000|2|3|1.5",
                "5000|15000|1|2|2.0",
                "25000|35000|1|3|3.0",
                "30000|40000|1|3|3.0"
            ])
        );

        let aggs = vec![agg(count_udaf(), false, None)];
        let (mut op, _) = operator(WindowKind::Tumble { size: 10_000, offset: 0 }, false, aggs);
        let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark::MAX)]);
        assert_eq!(rows(&out), sorted(&["0|10000|2", "30000|40000|1"]));
    }

    #[test]
    fn one_large_batch_with_long_and_short_hops() {
        let keys = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"];
        let rows_in: Vec<Row> = (0..100_000).map(|i| (i as i64 * 7, keys[i % 10], (i % 100) as i64)).collect();
        for size in [60_000, 10_000] {
            let (mut op, _) = operator(WindowKind::Hop { slide: 1000, size, offset: 0 }, true, count_sum());
            let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark::MAX)]);
            assert_eq!(rows(&out), brute_force(&rows_in, |ts| hop_windows(ts, 1000, size)), "size {size}");
        }
    }

    fn lateness(ms: i64) -> EmitStrategy {
        EmitStrategy { allowed_lateness_ms: ms, early_fire_delay_ms: 0 }
    }

    fn early_fire(ms: u64) -> EmitStrategy {
        EmitStrategy { allowed_lateness_ms: 0, early_fire_delay_ms: ms }
    }

    fn tick(op: &mut WindowAggregateOperator, now: Instant) -> Vec<Message> {
        let mut out = Vec::new();
        op.on_processing_time(now, &mut out).unwrap();
        out
    }

    const NONE: [&str; 0] = [];

    #[test]
    fn default_emit_stays_append_only() {
        let (mut op, late) = operator(WindowKind::Hop { slide: 5000, size: 10_000, offset: 0 }, true, count_sum());
        let out = feed(
            &mut op,
            vec![
                Message::Data(batch(&[(1000, "a", 1), (6000, "b", 2)])),
                Message::Watermark(Watermark(9999)),
                Message::Data(batch(&[(2000, "a", 4)])),
                Message::Watermark(Watermark::MAX),
            ],
        );
        assert_eq!(rows(&out), sorted(&["a|-5000|5000|1|1", "a|0|10000|1|1", "b|0|10000|1|2", "b|5000|15000|1|2"]));
        assert_eq!(out.iter().filter(|m| matches!(m, Message::Data(b) if b.row_kinds.is_none())).count(), 2);
        assert!(out.iter().all(|m| !matches!(m, Message::Data(b) if b.row_kinds.is_some())));
        assert_eq!(late.get(), 1);
        assert_eq!(op.next_processing_time(), None);
        assert!(op.emitted.is_empty() && op.dirty.is_empty() && op.slices.is_empty());
    }

    #[test]
    fn allowed_lateness_updates_a_fired_tumble_window_until_it_expires() {
        let window = WindowKind::Tumble { size: 10_000, offset: 0 };
        let (mut op, late) = operator_with(window, true, count_sum(), lateness(5000));
        let out = feed(
            &mut op,
            vec![Message::Data(batch(&[(1000, "a", 1), (2000, "b", 2)])), Message::Watermark(Watermark(9999))],
        );
        assert_eq!(changes(&out), sorted(&["+I|a|0|10000|1|1", "+I|b|0|10000|1|2"]));
        assert!(matches!(out.last(), Some(Message::Watermark(Watermark(9999)))));
        assert_eq!(op.retained_windows(), 1);
        assert_eq!(op.next_processing_time(), None);

        // Late for [0, 10 s) but within its lateness: an update. 15 s goes to the open window.
        let out = feed(
            &mut op,
            vec![Message::Watermark(Watermark(12_000)), Message::Data(batch(&[(3000, "a", 10), (15_000, "a", 7)]))],
        );
        assert_eq!(changes(&out), sorted(&["-U|a|0|10000|1|1", "+U|a|0|10000|2|11"]));
        // A key the window has not emitted yet: an insert.
        let out = feed(&mut op, vec![Message::Data(batch(&[(4000, "c", 5)]))]);
        assert_eq!(changes(&out), sorted(&["+I|c|0|10000|1|5"]));
        // Still within 9999 + 5000: two rows of a batch, one update.
        let out = feed(
            &mut op,
            vec![Message::Watermark(Watermark(14_998)), Message::Data(batch(&[(6000, "b", 1), (7000, "b", 1)]))],
        );
        assert_eq!(changes(&out), sorted(&["-U|b|0|10000|1|2", "+U|b|0|10000|3|4"]));
        assert_eq!(late.get(), 0);

        // At 10_000 - 1 + 5000 the window expires: its state is freed, its rows dropped.
        let out = feed(&mut op, vec![Message::Watermark(Watermark(14_999)), Message::Data(batch(&[(5000, "a", 100)]))]);
        assert_eq!(changes(&out), NONE);
        assert_eq!(late.get(), 1);
        assert_eq!(op.retained_windows(), 0);
        assert_eq!(op.slices.keys().copied().collect::<Vec<_>>(), vec![20_000]);

        let out = feed(&mut op, vec![Message::Watermark(Watermark::MAX)]);
        assert_eq!(changes(&out), sorted(&["+I|a|10000|20000|1|7"]));
        assert!(op.slices.is_empty() && op.retained_windows() == 0);
    }

    #[test]
    fn allowed_lateness_with_hop_updates_fired_windows_and_counts_in_open_ones() {
        let window = WindowKind::Hop { slide: 5000, size: 10_000, offset: 0 };
        let (mut op, late) = operator_with(window, true, count_sum(), lateness(5000));
        let out = feed(&mut op, vec![Message::Data(batch(&[(1000, "a", 1)])), Message::Watermark(Watermark(4999))]);
        assert_eq!(changes(&out), sorted(&["+I|a|-5000|5000|1|1"]));

        // 2000 is in [-5 s, 5 s), fired but within lateness (updated), and in [0, 10 s), open
        // (counted, emitted when it closes).
        let out = feed(&mut op, vec![Message::Watermark(Watermark(7000)), Message::Data(batch(&[(2000, "a", 10)]))]);
        assert_eq!(changes(&out), sorted(&["-U|a|-5000|5000|1|1", "+U|a|-5000|5000|2|11"]));

        // [0, 10 s) closes; [-5 s, 5 s) expires (4999 + 5000 <= 9999).
        let out = feed(&mut op, vec![Message::Watermark(Watermark(9999))]);
        assert_eq!(changes(&out), sorted(&["+I|a|0|10000|2|11"]));
        assert_eq!(op.retained_windows(), 1);

        // 3000: [-5 s, 5 s) expired, [0, 10 s) updated. 6000: [0, 10 s) gets a new key,
        // [5 s, 15 s) is open. -1000: both its windows expired, dropped.
        let out = feed(&mut op, vec![Message::Data(batch(&[(3000, "a", 100), (6000, "b", 1000), (-1000, "a", 5)]))]);
        assert_eq!(changes(&out), sorted(&["-U|a|0|10000|2|11", "+U|a|0|10000|3|111", "+I|b|0|10000|1|1000"]));
        assert_eq!(late.get(), 1);

        let out = feed(&mut op, vec![Message::Watermark(Watermark::MAX)]);
        assert_eq!(changes(&out), sorted(&["+I|b|5000|15000|1|1000"]));
        assert!(op.slices.is_empty() && op.retained_windows() == 0);
    }

    #[test]
    fn early_fire_emits_running_results_then_only_changes() {
        let window = WindowKind::Tumble { size: 10_000, offset: 0 };
        let (mut op, _) = operator_with(window, true, count_sum(), early_fire(1000));
        let second = Duration::from_secs(1);
        let t0 = Instant::now();
        assert_eq!(op.next_processing_time(), None);
        let out = feed(&mut op, vec![Message::Data(batch(&[(1000, "a", 1), (2000, "b", 2), (3000, "a", 3)]))]);
        assert!(out.is_empty());
        let due = op.next_processing_time().expect("an early fire is scheduled");
        assert!(due >= t0 + second && due <= Instant::now() + second);

        let out = tick(&mut op, t0 + second);
        assert_eq!(changes(&out), sorted(&["+I|a|0|10000|2|4", "+I|b|0|10000|1|2"]));
        assert_eq!(op.next_processing_time(), None);
        // Nothing changed: nothing emitted, nothing scheduled.
        assert!(tick(&mut op, t0 + 2 * second).is_empty());
        assert_eq!(op.next_processing_time(), None);

        let out = feed(&mut op, vec![Message::Data(batch(&[(4000, "a", 5), (12_000, "c", 7)]))]);
        assert!(out.is_empty());
        // Due D after the last early fire at the earliest.
        assert!(op.next_processing_time().unwrap() >= t0 + 2 * second);
        let out = tick(&mut op, t0 + 3 * second);
        // b did not change: no rows for it.
        assert_eq!(changes(&out), sorted(&["-U|a|0|10000|2|4", "+U|a|0|10000|3|9", "+I|c|10000|20000|1|7"]));
        assert_eq!(op.next_processing_time(), None);

        // Closing [0, 10 s): b changed since the last early fire, d was never emitted, a is
        // unchanged.
        let out = feed(
            &mut op,
            vec![Message::Data(batch(&[(5000, "b", 3), (6000, "d", 1)])), Message::Watermark(Watermark(9999))],
        );
        assert_eq!(changes(&out), sorted(&["-U|b|0|10000|1|2", "+U|b|0|10000|2|5", "+I|d|0|10000|1|1"]));
        assert_eq!(op.next_processing_time(), None);
        assert_eq!(op.retained_windows(), 1);

        // [10 s, 20 s) closes as it was emitted early: nothing.
        let out = feed(&mut op, vec![Message::Watermark(Watermark::MAX)]);
        assert!(matches!(out.as_slice(), [Message::Watermark(Watermark::MAX)]));
        assert!(op.slices.is_empty() && op.retained_windows() == 0);
    }

    #[test]
    fn early_fire_hop_without_keys() {
        let window = WindowKind::Hop { slide: 5000, size: 10_000, offset: 0 };
        let (mut op, _) = operator_with(window, false, vec![agg(count_udaf(), false, None)], early_fire(1000));
        let t0 = Instant::now();
        feed(&mut op, vec![Message::Data(batch(&[(1000, "a", 1), (6000, "b", 2)]))]);
        let out = tick(&mut op, t0 + Duration::from_secs(1));
        assert_eq!(changes(&out), sorted(&["+I|-5000|5000|1", "+I|0|10000|2", "+I|5000|15000|1"]));
        feed(&mut op, vec![Message::Data(batch(&[(7000, "c", 3)]))]);
        let out = tick(&mut op, t0 + Duration::from_secs(2));
        assert_eq!(changes(&out), sorted(&["-U|0|10000|2", "+U|0|10000|3", "-U|5000|15000|1", "+U|5000|15000|2"]));
        let out = feed(&mut op, vec![Message::Watermark(Watermark::MAX)]);
        assert!(matches!(out.as_slice(), [Message::Watermark(Watermark::MAX)]));
        assert!(op.slices.is_empty() && op.retained_windows() == 0);
    }

    #[test]
    fn cumulate_with_lateness_and_early_fire() {
        let emit = EmitStrategy { allowed_lateness_ms: 3000, early_fire_delay_ms: 1000 };
        let window = WindowKind::Cumulate { step: 2000, size: 6000, offset: 0 };
        let (mut op, late) = operator_with(window, true, count_sum(), emit);
        let second = Duration::from_secs(1);
        let t0 = Instant::now();
        feed(&mut op, vec![Message::Data(batch(&[(1000, "a", 1)]))]);
        let out = tick(&mut op, t0 + second);
        assert_eq!(changes(&out), sorted(&["+I|a|0|2000|1|1", "+I|a|0|4000|1|1", "+I|a|0|6000|1|1"]));

        // [0, 2 s) closes as emitted early (nothing); [0, 4 s) closes with 3000 added.
        let out = feed(&mut op, vec![Message::Data(batch(&[(3000, "a", 10)])), Message::Watermark(Watermark(3999))]);
        assert_eq!(changes(&out), sorted(&["-U|a|0|4000|1|1", "+U|a|0|4000|2|11"]));

        // Late for both fired windows (within lateness: updated at once), counted in the
        // open one (emitted by the next early fire).
        let out = feed(&mut op, vec![Message::Data(batch(&[(500, "a", 100)]))]);
        assert_eq!(
            changes(&out),
            sorted(&["-U|a|0|2000|1|1", "+U|a|0|2000|2|101", "-U|a|0|4000|2|11", "+U|a|0|4000|3|111"])
        );
        let out = tick(&mut op, t0 + 2 * second);
        assert_eq!(changes(&out), sorted(&["-U|a|0|6000|1|1", "+U|a|0|6000|3|111"]));

        // [0, 2 s) expires at 1999 + 3000; 1500 now counts in [0, 4 s) and [0, 6 s) only.
        let out = feed(&mut op, vec![Message::Watermark(Watermark(5000)), Message::Data(batch(&[(1500, "a", 1000)]))]);
        assert_eq!(changes(&out), sorted(&["-U|a|0|4000|3|111", "+U|a|0|4000|4|1111"]));
        assert_eq!(op.retained_windows(), 2);
        assert_eq!(late.get(), 0);

        let out = feed(&mut op, vec![Message::Watermark(Watermark::MAX)]);
        assert_eq!(changes(&out), sorted(&["-U|a|0|6000|3|111", "+U|a|0|6000|4|1111"]));
        assert!(op.slices.is_empty() && op.retained_windows() == 0);
        assert_eq!(op.next_processing_time(), None);
    }

    /// With lateness covering the disorder no row is dropped, so however the changelog is
    /// split into early, closing and late results, it must end at the brute-force windows.
    #[test]
    fn updating_changelog_converges_to_brute_force() {
        let emit = EmitStrategy { allowed_lateness_ms: 2000, early_fire_delay_ms: 1000 };
        let cases: [(WindowKind, Box<dyn Fn(i64) -> Vec<(i64, i64)>>); 3] = [
            (WindowKind::Tumble { size: 3000, offset: 0 }, Box::new(|ts| hop_windows(ts, 3000, 3000))),
            (WindowKind::Hop { slide: 2000, size: 10_000, offset: 0 }, Box::new(|ts| hop_windows(ts, 2000, 10_000))),
            (
                WindowKind::Cumulate { step: 2000, size: 10_000, offset: 0 },
                Box::new(|ts| cumulate_windows(ts, 2000, 10_000)),
            ),
        ];
        for (window, windows) in cases {
            let (mut op, late) = operator_with(window, true, count_sum(), emit);
            let rows_in = generated_rows(400);
            let t0 = Instant::now();
            let mut out = Vec::new();
            let mut max_ts = i64::MIN;
            for (n, chunk) in rows_in.chunks(17).enumerate() {
                out.extend(feed(&mut op, vec![Message::Data(batch(chunk))]));
                if n % 3 == 0 {
                    out.extend(tick(&mut op, t0 + Duration::from_secs(n as u64)));
                }
                max_ts = chunk.iter().map(|r| r.0).fold(max_ts, i64::max);
                out.extend(feed(&mut op, vec![Message::Watermark(Watermark(max_ts - 500))]));
            }
            out.extend(feed(&mut op, vec![Message::Watermark(Watermark::MAX)]));
            let mut state: BTreeMap<String, String> = BTreeMap::new();
            changes(&out); // checks -U/+U pairing
                           // Applied in output order, checking retractions match what was emitted.
            for m in &out {
                let Message::Data(b) = m else { continue };
                let kinds = b.row_kinds.as_ref().unwrap();
                for (kind, row) in kinds.iter().zip(row_strings(b)) {
                    let (window_key, values) = {
                        let cut = row.match_indices('|').nth(2).unwrap().0;
                        (row[..cut].to_string(), row[cut + 1..].to_string())
                    };
                    match RowKind::from_code(kind.unwrap()).unwrap() {
                        RowKind::Insert | RowKind::UpdateAfter => {
                            assert!(state.insert(window_key, values).is_none(), "{window:?}: double insert");
                        }
                        RowKind::UpdateBefore => {
                            assert_eq!(state.remove(&window_key), Some(values), "{window:?}: wrong retraction")
                        }
                        RowKind::Delete => panic!("no deletes expected"),
                    }
                }
            }
            let mut result: Vec<String> = state.into_iter().map(|(k, v)| format!("{k}|{v}")).collect();
            result.sort();
            assert_eq!(result, brute_force(&rows_in, windows), "{window:?}");
            assert_eq!(late.get(), 0);
            assert!(op.slices.is_empty() && op.retained_windows() == 0 && op.dirty.is_empty());
        }
    }
}
