//! Event-time interval join (Flink's `IntervalJoin`): an inner join of two append-only
//! streams on equal keys, where `right time - left time` lies in `[lower, upper]`.
//!
//! Both sides arrive as one tagged stream (see [`IntervalJoinSpec`]): the planner merges them
//! with a Union, whose watermark is the minimum of both sides', hash-partitioned by the keys.
//! Per key, the operator buffers the rows of each side with their times. A row joins the
//! buffered rows of the other side within its bounds at once (a left row at `t` the right
//! rows in `[t + lower, t + upper]`, a right row at `t` the left rows in `[t - upper,
//! t - lower]`), and is buffered until no row to come can match it:
//!
//! ```text
//!   left row at t   freed once watermark >= t + upper
//!   right row at t  freed once watermark >= t - lower
//! ```
//!
//! since every row to come is later than the watermark. A row at or behind the watermark
//! (`t <= watermark`) is late: dropped and counted. (Flink still joins such a row with the
//! rows it happens to hold; dropping it instead makes the result the same whatever the
//! order of the rows and when watermarks arrive: exactly the matching pairs of rows that
//! were not late.) A row with a NULL key or time never matches and is dropped.
//!
//! Output rows carry both sides' times, up to `max(upper, -lower)` behind the input
//! watermark, so the output watermark is held back by that much (Flink's
//! `getMaxOutputDelay`). Keys are kept in Arrow's row format; a side's rows stay in the
//! Arrow arrays they came in (`BufferedRows`), referenced per key by (chunk, row), and are
//! gathered with `interleave` when they match. (Before, each buffered row was copied into
//! its own row-format allocation: Nexmark q7, which holds every bid for 10 s of event time,
//! spent most of its time allocating and copying them.) A snapshot stores them as columns.

use std::collections::{BTreeMap, HashMap};
use std::mem::size_of;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, Int8Type, SchemaRef};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use super::compact_key::CompactKey;
use super::memory::{btree_bytes, hash_map_bytes, shrink_if_sparse};
use super::snapshot::{check_types, from_meta, malformed, part_columns, to_meta, Packer, Part};
use super::windowing::{event_times, require_append_only, BufferedRows, RowRef};
use super::{OperatorContext, StreamOperator};
use crate::checkpoint::StateSnapshot;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message, Timestamp, Watermark};
use crate::metrics::LateRowCounter;
use eddy_sql::plan::IntervalJoinSpec;

type KeyHasher = datafusion::common::hash_utils::RandomState;

const LEFT: usize = 0;
const RIGHT: usize = 1;

/// A buffered row of a key: its time, and where it is in its side's columns.
#[derive(Clone, Copy, Debug)]
struct Held {
    time: Timestamp,
    chunk: u64,
    row: u32,
}

impl Held {
    fn at(&self) -> RowRef {
        (self.chunk, self.row)
    }
}

/// A key's buffered rows of one side, in arrival order. One row is held inline: most keys
/// of a join on a price or an id have one, and then cost no allocation of their own (with
/// millions of keys, the key table's size is what growing it costs). The sides are kept
/// apart, since a row is matched against the other side's rows only (a popular key may
/// hold many rows of one side).
#[derive(Debug)]
enum HeldRows {
    Many(Vec<Held>),
    One(Held),
}

impl Default for HeldRows {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl HeldRows {
    fn push(&mut self, held: Held) {
        match self {
            Self::Many(rows) if rows.is_empty() => *self = Self::One(held),
            Self::Many(rows) => rows.push(held),
            Self::One(first) => *self = Self::Many(vec![*first, held]),
        }
    }

    fn as_slice(&self) -> &[Held] {
        match self {
            Self::Many(rows) => rows,
            Self::One(held) => std::slice::from_ref(held),
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&Held) -> bool) {
        match self {
            Self::Many(rows) => rows.retain(|h| keep(h)),
            Self::One(held) => {
                if !keep(held) {
                    *self = Self::default();
                }
            }
        }
    }
}

/// `KeyState::timer` when the key has no cleanup registered.
const NO_TIMER: Timestamp = Timestamp::MAX;

/// The buffered rows of one key.
#[derive(Debug)]
struct KeyState {
    /// Per side.
    rows: [HeldRows; 2],
    /// The cleanup time registered in `timers` for this key (the earliest expiry), or
    /// [`NO_TIMER`].
    timer: Timestamp,
}

impl Default for KeyState {
    fn default() -> Self {
        Self { rows: [HeldRows::default(), HeldRows::default()], timer: NO_TIMER }
    }
}

/// What a snapshot's `meta` holds.
#[derive(Serialize, Deserialize)]
struct Meta {
    watermark: Timestamp,
    emitted: Timestamp,
    /// Per side: `[keys.., time, columns..]` of every buffered row.
    sides: Vec<Part>,
}

/// The interval join operator.
pub struct IntervalJoinOperator {
    spec: IntervalJoinSpec,
    output_schema: SchemaRef,
    late_rows: LateRowCounter,
    key_types: Vec<DataType>,
    side_types: [Vec<DataType>; 2],
    keys: RowConverter,
    /// Per side, the arrays the buffered rows are kept in.
    buffered: [BufferedRows; 2],
    /// Per key: its buffered rows. Hashed with DataFusion's fast fixed-seed hasher, as
    /// its own hash tables are (the default SipHash was a tenth of q7's time).
    state: HashMap<CompactKey, KeyState, KeyHasher>,
    /// Cleanup time -> keys to look at then (an entry is stale when the key's timer moved).
    timers: BTreeMap<Timestamp, Vec<CompactKey>>,
    /// The input watermark.
    watermark: Watermark,
    /// The last watermark emitted.
    emitted: Watermark,
    /// Bytes of the buffered rows' references and the keys (in `state` and `timers`); the
    /// rows' arrays are counted by `buffered`.
    row_bytes: usize,
}

fn arrow_err(source: ArrowError) -> EngineError {
    EngineError::Arrow { operator: "IntervalJoin".into(), source }
}

/// Bytes of one buffered row's entry in its key's list.
const HELD_BYTES: usize = size_of::<Held>();

impl IntervalJoinOperator {
    /// An operator reading `ctx.input_schema` (the tagged schema) and emitting the join's rows.
    pub fn new(spec: IntervalJoinSpec, ctx: OperatorContext) -> Result<Self> {
        let input = &ctx.input_schema;
        let width = spec.right_offset() + spec.right_width;
        if input.fields().len() != width
            || spec.left_time >= spec.left_width
            || spec.right_time >= spec.right_width
            || ctx.output_schema.fields().len() != spec.left_width + spec.right_width
        {
            return Err(EngineError::Plan(format!(
                "IntervalJoin: input of {} columns, output of {}, do not fit the join of {} and {} columns",
                input.fields().len(),
                ctx.output_schema.fields().len(),
                spec.left_width,
                spec.right_width
            )));
        }
        let types = |r: std::ops::Range<usize>| r.map(|i| input.field(i).data_type().clone()).collect::<Vec<_>>();
        let key_types = types(0..spec.key_names.len());
        let side_types = [types(spec.left_offset()..spec.right_offset()), types(spec.right_offset()..width)];
        let converter = |t: &[DataType]| {
            RowConverter::new(t.iter().map(|t| SortField::new(t.clone())).collect()).map_err(arrow_err)
        };
        Ok(Self {
            keys: converter(&key_types)?,
            buffered: [BufferedRows::default(), BufferedRows::default()],
            key_types,
            side_types,
            spec,
            output_schema: ctx.output_schema,
            late_rows: ctx.late_rows,
            state: HashMap::default(),
            timers: BTreeMap::new(),
            watermark: Watermark::MIN,
            emitted: Watermark::MIN,
            row_bytes: 0,
        })
    }

    /// When a row of `side` at `t` can no longer match a row to come.
    fn expiry(&self, side: usize, t: Timestamp) -> Timestamp {
        if side == LEFT {
            t.saturating_add(self.spec.upper_ms)
        } else {
            t.saturating_sub(self.spec.lower_ms)
        }
    }

    /// Buffer a row of `side` at `t` under `key`, registering the key's cleanup.
    fn buffer(&mut self, key: &CompactKey, side: usize, t: Timestamp, row: RowRef) {
        let expiry = self.expiry(side, t);
        let state = match self.state.get_mut(key) {
            Some(s) => s,
            None => {
                self.row_bytes += key.bytes();
                self.state.entry(key.clone()).or_default()
            }
        };
        Self::hold(&mut self.timers, &mut self.row_bytes, &mut self.buffered[side], key, state, side, t, expiry, row);
    }

    /// Add a row to its key's `state`, registering the key's cleanup at `expiry` if earlier.
    /// (An associated function: the caller holds `state` borrowed from `self.state`.)
    #[allow(clippy::too_many_arguments)]
    fn hold(
        timers: &mut BTreeMap<Timestamp, Vec<CompactKey>>,
        row_bytes: &mut usize,
        buffered: &mut BufferedRows,
        key: &CompactKey,
        state: &mut KeyState,
        side: usize,
        t: Timestamp,
        expiry: Timestamp,
        row: RowRef,
    ) {
        buffered.acquire(row.0);
        *row_bytes += HELD_BYTES;
        state.rows[side].push(Held { time: t, chunk: row.0, row: row.1 });
        if expiry < state.timer {
            state.timer = expiry;
            *row_bytes += key.bytes();
            timers.entry(expiry).or_default().push(key.clone());
        }
    }

    /// Drop the rows the watermark made unmatchable.
    fn clean_up(&mut self) {
        let wm = self.watermark.0;
        if self.watermark == Watermark::MAX {
            // The input ended: every row goes, without looking at each.
            self.state = HashMap::default();
            self.timers.clear();
            self.buffered = [BufferedRows::default(), BufferedRows::default()];
            self.row_bytes = 0;
            return;
        }
        while let Some(entry) = self.timers.first_entry() {
            if *entry.key() > wm {
                break;
            }
            let (time, keys) = entry.remove_entry();
            for key in keys {
                self.row_bytes -= key.bytes();
                let Some(state) = self.state.get_mut(&key) else { continue };
                if state.timer != time {
                    continue;
                }
                let (upper, lower) = (self.spec.upper_ms, self.spec.lower_ms);
                let mut freed = 0;
                let mut next: Option<Timestamp> = None;
                for (side, rows) in state.rows.iter_mut().enumerate() {
                    let buffered = &mut self.buffered[side];
                    rows.retain(|h| {
                        let e = if side == LEFT { h.time.saturating_add(upper) } else { h.time.saturating_sub(lower) };
                        if e <= wm {
                            freed += HELD_BYTES;
                            buffered.release(h.chunk);
                            false
                        } else {
                            next = Some(next.map_or(e, |n| n.min(e)));
                            true
                        }
                    });
                }
                self.row_bytes -= freed;
                match next {
                    None => {
                        if let Some((k, _)) = self.state.remove_entry(&key) {
                            self.row_bytes -= k.bytes();
                        }
                    }
                    Some(n) => {
                        state.timer = n;
                        self.row_bytes += key.bytes();
                        self.timers.entry(n).or_default().push(key);
                    }
                }
            }
        }
        shrink_if_sparse(&mut self.state);
    }

    fn snapshot(&self) -> Result<StateSnapshot> {
        let name = self.name();
        let mut packer = Packer::default();
        let mut sides = Vec::with_capacity(2);
        let parser = self.keys.parser();
        for side in [LEFT, RIGHT] {
            let mut keys: Vec<arrow::row::Row<'_>> = Vec::new();
            let mut times: Vec<i64> = Vec::new();
            let mut rows: Vec<RowRef> = Vec::new();
            for (key, state) in &self.state {
                for held in state.rows[side].as_slice() {
                    keys.push(parser.parse(key.as_slice()));
                    times.push(held.time);
                    rows.push(held.at());
                }
            }
            let n = times.len();
            let mut columns = self.keys.convert_rows(keys).map_err(arrow_err)?;
            columns.push(Arc::new(Int64Array::from(times)) as ArrayRef);
            for (c, data_type) in self.side_types[side].iter().enumerate() {
                columns.push(if rows.is_empty() {
                    arrow::array::new_empty_array(data_type)
                } else {
                    self.buffered[side].gather(c, &rows).map_err(arrow_err)?
                });
            }
            sides.push(packer.add(columns, n).map_err(arrow_err)?);
        }
        let meta = Meta { watermark: self.watermark.0, emitted: self.emitted.0, sides };
        Ok(StateSnapshot { meta: to_meta(&name, &meta)?, batches: packer.finish().map_err(arrow_err)? })
    }

    fn restore(&mut self, snapshot: StateSnapshot) -> Result<()> {
        let name = self.name();
        let meta: Meta = from_meta(&name, snapshot.meta)?;
        if meta.sides.len() != 2 {
            return Err(malformed(&name, format!("{} sides", meta.sides.len())));
        }
        self.watermark = Watermark(meta.watermark);
        self.emitted = Watermark(meta.emitted);
        let n = self.key_types.len();
        for side in [LEFT, RIGHT] {
            let width = n + 1 + self.side_types[side].len();
            let columns = part_columns(&name, &snapshot.batches, meta.sides[side], width)?;
            let expected: Vec<DataType> = self
                .key_types
                .iter()
                .cloned()
                .chain([DataType::Int64])
                .chain(self.side_types[side].iter().cloned())
                .collect();
            check_types(&name, &columns, &expected)?;
            let keys = self.keys.convert_columns(&columns[..n]).map_err(|e| malformed(&name, e))?;
            let chunk = self.buffered[side].push(columns[n + 1..].to_vec());
            let times = columns[n].as_primitive::<Int64Type>();
            for i in 0..times.len() {
                self.buffer(&CompactKey::new(keys.row(i).as_ref()), side, times.value(i), (chunk, i as u32));
            }
            self.buffered[side].free_if_unused(chunk);
        }
        Ok(())
    }
}

impl StreamOperator for IntervalJoinOperator {
    fn name(&self) -> String {
        format!("IntervalJoin[{}]", self.spec.display)
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        require_append_only(&batch, &self.name())?;
        let data = &batch.data;
        if data.num_rows() == 0 {
            return Ok(());
        }
        let n = self.spec.key_names.len();
        let key_columns = &data.columns()[..n];
        let keys = self.keys.convert_columns(key_columns).map_err(arrow_err)?;
        let Some(side_column) = data.column(self.spec.side_column()).as_primitive_opt::<Int8Type>() else {
            return Err(EngineError::Plan(format!("{}: the side column is not Int8", self.name())));
        };
        let ranges = [
            self.spec.left_offset()..self.spec.right_offset(),
            self.spec.right_offset()..self.spec.right_offset() + self.spec.right_width,
        ];
        let times = [
            event_times(data.column(self.spec.left_offset() + self.spec.left_time).as_ref()).map_err(arrow_err)?,
            event_times(data.column(self.spec.right_offset() + self.spec.right_time).as_ref()).map_err(arrow_err)?,
        ];
        // This batch's columns of a side become a chunk when a row of that side is first
        // matched or buffered; freed at the end if no row of it stays buffered.
        let mut chunks: [Option<u64>; 2] = [None, None];
        let mut matched: [Vec<RowRef>; 2] = [Vec::new(), Vec::new()];
        let mut late = 0u64;
        for i in 0..data.num_rows() {
            if key_columns.iter().any(|k| k.is_null(i)) || side_column.is_null(i) {
                continue;
            }
            let side = usize::from(side_column.value(i) != 0);
            if times[side].is_null(i) {
                continue;
            }
            let t = times[side].value(i);
            if t <= self.watermark.0 {
                late += 1;
                continue;
            }
            let key = CompactKey::new(keys.row(i).as_ref());
            let chunk = *chunks[side]
                .get_or_insert_with(|| self.buffered[side].push(data.columns()[ranges[side].clone()].to_vec()));
            let row: RowRef = (chunk, i as u32);
            let expiry = self.expiry(side, t);
            let (lower, upper) = (self.spec.lower_ms, self.spec.upper_ms);
            let within = |l: Timestamp, r: Timestamp| {
                let d = i128::from(r) - i128::from(l);
                d >= i128::from(lower) && d <= i128::from(upper)
            };
            // One lookup of the key: match against the other side, then hold the row there.
            match self.state.get_mut(&key) {
                Some(state) => {
                    for other in state.rows[1 - side].as_slice() {
                        let (l, r) = if side == LEFT { (t, other.time) } else { (other.time, t) };
                        if within(l, r) {
                            let (lrow, rrow) = if side == LEFT { (row, other.at()) } else { (other.at(), row) };
                            matched[LEFT].push(lrow);
                            matched[RIGHT].push(rrow);
                        }
                    }
                    if expiry > self.watermark.0 {
                        let buffered = &mut self.buffered[side];
                        Self::hold(&mut self.timers, &mut self.row_bytes, buffered, &key, state, side, t, expiry, row);
                    }
                }
                None if expiry > self.watermark.0 => self.buffer(&key, side, t, row),
                None => {}
            }
        }
        if late > 0 {
            self.late_rows.add(late);
        }
        if !matched[LEFT].is_empty() {
            let mut columns = Vec::with_capacity(self.spec.left_width + self.spec.right_width);
            for (side, width) in [(LEFT, self.spec.left_width), (RIGHT, self.spec.right_width)] {
                for c in 0..width {
                    columns.push(self.buffered[side].gather(c, &matched[side]).map_err(arrow_err)?);
                }
            }
            let joined = RecordBatch::try_new(self.output_schema.clone(), columns).map_err(arrow_err)?;
            out.push(Message::Data(Batch::append(joined)));
        }
        for (side, chunk) in chunks.into_iter().enumerate() {
            if let Some(chunk) = chunk {
                self.buffered[side].free_if_unused(chunk);
            }
        }
        Ok(())
    }

    fn handle_watermark(&mut self, wm: Watermark, out: &mut Vec<Message>) -> Result<()> {
        if wm <= self.watermark {
            return Ok(());
        }
        self.watermark = wm;
        self.clean_up();
        let held = if wm == Watermark::MAX { wm } else { Watermark(wm.0.saturating_sub(self.spec.output_delay_ms())) };
        if held > self.emitted {
            self.emitted = held;
            out.push(Message::Watermark(held));
        }
        Ok(())
    }

    /// Buffered rows and keys (timer entries included), the key table and the timer map.
    fn state_bytes(&self) -> usize {
        self.row_bytes
            + self.buffered.iter().map(BufferedRows::bytes).sum::<usize>()
            + hash_map_bytes(&self.state)
            + btree_bytes::<Timestamp, Vec<CompactKey>>(self.timers.len())
    }

    fn snapshot_state(&mut self) -> Result<Option<StateSnapshot>> {
        self.snapshot().map(Some)
    }

    fn restore_state(&mut self, state: StateSnapshot) -> Result<()> {
        self.restore(state)
    }
}

#[cfg(test)]
#[path = "interval_join_tests.rs"]
mod tests;
