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
use crate::checkpoint::StateSnapshot;
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
    /// Memory of the slices, CUMULATE's running state and the emitted rows (see `size.rs`).
    state_bytes: usize,
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
            state_bytes: 0,
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
            self.recount_state_bytes();
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
        let data = if batches.len() > 1 {
            concat_batches(&self.output_schema, &batches)
                .map_err(|source| EngineError::Arrow { operator: self.name.clone(), source })?
        } else {
            match batches.pop() {
                Some(b) => b,
                None => return Ok(None),
            }
        };
        Ok(Some(Batch { data, row_kinds: Some(Int8Array::from(kinds)), arrival_watermarks: None, partition: None }))
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
            let (partial, before) = match slice.live.iter().position(|(from, _)| *from == target.from_end) {
                Some(i) => {
                    let partial = &mut slice.live[i].1;
                    let before = partial.size();
                    (partial, before)
                }
                None => {
                    slice.live.push((target.from_end, self.factory.create().map_err(expr_err)?));
                    let last = slice.live.len() - 1;
                    (&mut slice.live[last].1, 0)
                }
            };
            partial.update(part, &mut self.groups).map_err(expr_err)?;
            // Only this partial changed: the figure follows it without a recount.
            self.state_bytes = (self.state_bytes + partial.size()).saturating_sub(before);
        }
        if self.updating {
            self.after_batch(&touched, out)?;
        }
        Ok(())
    }

    fn handle_watermark(&mut self, wm: Watermark, out: &mut Vec<Message>) -> Result<()> {
        // A watermark that does not advance changes no state.
        let advances = wm.0 > self.watermark;
        if self.updating {
            self.fire_updating(wm, out)?;
        } else {
            let batches = self.fire(wm.0)?;
            let batches = super::windowing::rebatch(&self.output_schema, batches)
                .map_err(|source| EngineError::Arrow { operator: self.name.clone(), source })?;
            out.extend(batches.into_iter().map(|b| Message::Data(Batch::append(b))));
            out.push(Message::Watermark(wm));
        }
        if advances {
            self.recount_state_bytes();
        }
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
        self.recount_state_bytes();
        self.last_early_fire = Some(now);
        Ok(())
    }

    fn state_bytes(&self) -> usize {
        self.total_state_bytes()
    }

    fn snapshot_state(&mut self) -> Result<Option<StateSnapshot>> {
        // Snapshotting freezes live partials, which changes their size.
        let snapshot = self.snapshot();
        self.recount_state_bytes();
        snapshot.map(Some)
    }

    fn restore_state(&mut self, state: StateSnapshot) -> Result<()> {
        self.restore(state)?;
        self.recount_state_bytes();
        Ok(())
    }
}

/// `WindowAggregate[HOP(slide=2000ms, size=10000ms), keys=[k], aggs=[COUNT(*)]]`.
fn describe(spec: &WindowAggSpec) -> String {
    let window = spec.window;
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
    // In i64 when nothing overflows (an i128 remainder is a library call: 4 % of Nexmark q5).
    if let Some(aligned) = t.checked_sub(offset).and_then(|d| t.checked_sub(d.rem_euclid(unit))) {
        return aligned;
    }
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

mod checkpoint;
mod size;
#[cfg(test)]
mod tests;
