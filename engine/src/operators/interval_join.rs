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
//! `getMaxOutputDelay`). Keys are kept in Arrow's row format, each with the newest held row
//! of either side; a side's rows stay in the Arrow arrays they came in, listed per key
//! through that side's [`RowLog`] (rows held but not yet indexed are matched by comparing
//! keys: see [`Unindexed`]), and are gathered with `interleave` when they match.
//! Held rows are freed a batch at a time (see `row_log`); a key goes from the table once
//! neither side holds a row of it, looked for when the log has freed as many rows as there
//! are keys. A snapshot stores the rows as columns.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, Int8Type, SchemaRef};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use super::compact_key::CompactKey;
use super::memory::{hash_map_bytes, shrink_if_sparse};
use super::row_log::{RowLog, NO_ROW};
use super::snapshot::{check_types, from_meta, malformed, part_columns, to_meta, Packer, Part};
use super::windowing::{event_times, require_append_only, RowRef};
use super::{KeyHasher, OperatorContext, StreamOperator};
use crate::checkpoint::StateSnapshot;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message, Timestamp, Watermark};
use crate::metrics::LateRowCounter;
use eddy_sql::plan::IntervalJoinSpec;

const LEFT: usize = 0;
const RIGHT: usize = 1;

/// Per key, the index of its newest held row of each side in that side's log ([`NO_ROW`]:
/// none).
type Heads = [u64; 2];

/// How many times over a side's unindexed rows may be scanned before they are put in the
/// key table (see [`Unindexed`]).
const SCANS_BEFORE_INDEXING: usize = 4;

/// A side's held rows not yet in the key table: their keys, in log order from index `from`.
///
/// A row is not put in the key table when held, only once rows of the other side have
/// scanned the side's unindexed rows [`SCANS_BEFORE_INDEXING`] times over. Until then a row
/// of the other side finds its matches among them by comparing keys, one after the other.
/// Why: when one side is sparse (Nexmark q7 joins every bid to the highest bid of its
/// window, one row per window), its few rows scanning the other side's are far cheaper
/// than a random write into a table of millions of keys for every row, and the rows that
/// expire unindexed never cost one. Scanning costs at most that many comparisons per row
/// before the rows are indexed as before.
#[derive(Default)]
struct Unindexed {
    from: u64,
    keys: VecDeque<CompactKey>,
    /// Keys compared since the side was last indexed.
    scanned: usize,
    /// Memory of `keys`' entries and long keys.
    bytes: usize,
}

impl Unindexed {
    fn push(&mut self, index: u64, key: CompactKey) {
        if self.keys.is_empty() {
            self.from = index;
        }
        self.bytes += key.bytes();
        self.keys.push_back(key);
    }

    /// Forgets the rows before `first`, which the log freed.
    fn trim(&mut self, first: u64) {
        while self.from < first {
            let Some(key) = self.keys.pop_front() else { break };
            self.bytes -= key.bytes();
            self.from += 1;
        }
    }

    /// Whether its rows were scanned enough to be worth indexing.
    fn due(&self) -> bool {
        !self.keys.is_empty() && self.scanned >= SCANS_BEFORE_INDEXING * self.keys.len()
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
    /// Per side, its held rows.
    logs: [RowLog; 2],
    /// Per key: its newest held row of each side. Hashed with DataFusion's fast
    /// fixed-seed hasher, as its own hash tables are (the default SipHash was a tenth of
    /// q7's time).
    state: HashMap<CompactKey, Heads, KeyHasher>,
    /// Heap bytes of the keys in `state` (those too long to be inline).
    key_heap_bytes: usize,
    /// Per side, the held rows not yet in `state`.
    unindexed: [Unindexed; 2],
    /// Rows the logs freed since `state` was last swept of keys without rows.
    freed_since_sweep: usize,
    /// The input watermark.
    watermark: Watermark,
    /// The last watermark emitted.
    emitted: Watermark,
}

fn arrow_err(source: ArrowError) -> EngineError {
    EngineError::Arrow { operator: "IntervalJoin".into(), source }
}

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
            logs: [RowLog::default(), RowLog::default()],
            key_types,
            side_types,
            spec,
            output_schema: ctx.output_schema,
            late_rows: ctx.late_rows,
            state: HashMap::default(),
            key_heap_bytes: 0,
            unindexed: [Unindexed::default(), Unindexed::default()],
            freed_since_sweep: 0,
            watermark: Watermark::MIN,
            emitted: Watermark::MIN,
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

    /// The heads of `key`, a new entry if it has none.
    fn heads<'a>(
        state: &'a mut HashMap<CompactKey, Heads, KeyHasher>,
        key_heap_bytes: &mut usize,
        key: CompactKey,
    ) -> &'a mut Heads {
        state.entry(key).or_insert_with_key(|k| {
            *key_heap_bytes += k.bytes() - std::mem::size_of::<CompactKey>();
            [NO_ROW; 2]
        })
    }

    /// Puts `side`'s unindexed rows in the key table, in the order they were held.
    fn index(&mut self, side: usize) {
        let unindexed = std::mem::take(&mut self.unindexed[side]);
        for (index, key) in (unindexed.from..).zip(unindexed.keys) {
            let heads = Self::heads(&mut self.state, &mut self.key_heap_bytes, key);
            self.logs[side].set_prev(index, heads[side]);
            heads[side] = index;
        }
    }

    /// Drop the rows the watermark made unmatchable, and then the keys left without rows.
    fn clean_up(&mut self) {
        let wm = self.watermark.0;
        if self.watermark == Watermark::MAX {
            // The input ended: every row goes, without looking at each.
            self.state = HashMap::default();
            self.logs = [RowLog::default(), RowLog::default()];
            self.key_heap_bytes = 0;
            self.unindexed = [Unindexed::default(), Unindexed::default()];
            return;
        }
        for (log, unindexed) in self.logs.iter_mut().zip(&mut self.unindexed) {
            self.freed_since_sweep += log.expire(wm);
            unindexed.trim(log.first());
        }
        // Looking at every key costs as much as the rows freed since the last time.
        if self.freed_since_sweep > 0 && self.freed_since_sweep >= self.state.len() {
            self.freed_since_sweep = 0;
            let (logs, key_heap_bytes) = (&self.logs, &mut self.key_heap_bytes);
            self.state.retain(|key, heads| {
                let keep = logs[LEFT].holds(heads[LEFT]) || logs[RIGHT].holds(heads[RIGHT]);
                if !keep {
                    *key_heap_bytes -= key.bytes() - std::mem::size_of::<CompactKey>();
                }
                keep
            });
            shrink_if_sparse(&mut self.state);
        }
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
            let log = &self.logs[side];
            for (key, heads) in &self.state {
                // The key's live rows, oldest first (as they are held again on restore).
                let live: Vec<(u64, Timestamp)> =
                    log.list(heads[side]).filter(|(_, t)| self.expiry(side, *t) > self.watermark.0).collect();
                for (index, time) in live.into_iter().rev() {
                    let Some(at) = log.row_ref(index) else { continue };
                    keys.push(parser.parse(key.as_slice()));
                    times.push(time);
                    rows.push(at);
                }
            }
            let n = times.len();
            let mut columns = self.keys.convert_rows(keys).map_err(arrow_err)?;
            columns.push(Arc::new(Int64Array::from(times)) as ArrayRef);
            for (c, data_type) in self.side_types[side].iter().enumerate() {
                columns.push(if rows.is_empty() {
                    arrow::array::new_empty_array(data_type)
                } else {
                    log.buffered().gather(c, &rows).map_err(arrow_err)?
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
            self.logs[side].open(columns[n + 1..].to_vec());
            let times = columns[n].as_primitive::<Int64Type>();
            for i in 0..times.len() {
                let (t, key) = (times.value(i), CompactKey::new(keys.row(i).as_ref()));
                let expiry = self.expiry(side, t);
                let index = self.logs[side].hold(NO_ROW, t, i as u32, expiry);
                self.unindexed[side].push(index, key);
            }
            self.logs[side].close();
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
        // This batch's columns of a side go into its log when a row of that side is first
        // matched or held; dropped at the end if no row of it is held.
        let mut chunks: [Option<u64>; 2] = [None, None];
        let mut matched: [Vec<RowRef>; 2] = [Vec::new(), Vec::new()];
        let mut late = 0u64;
        // A key's list, reused for every row.
        let mut list: Vec<(u64, Timestamp)> = Vec::new();
        let (lower, upper) = (self.spec.lower_ms, self.spec.upper_ms);
        let within = |l: Timestamp, r: Timestamp| {
            let d = i128::from(r) - i128::from(l);
            d >= i128::from(lower) && d <= i128::from(upper)
        };
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
            let chunk = match chunks[side] {
                Some(chunk) => chunk,
                None => *chunks[side].insert(self.logs[side].open(data.columns()[ranges[side].clone()].to_vec())),
            };
            let row: RowRef = (chunk, i as u32);
            let expiry = self.expiry(side, t);
            let other = 1 - side;
            if self.unindexed[other].due() {
                self.index(other);
            }
            let log = &self.logs[other];
            let mut matches = |index: u64, time: Timestamp| {
                let (l, r) = if side == LEFT { (t, time) } else { (time, t) };
                if within(l, r) {
                    if let Some(there) = log.row_ref(index) {
                        let (lrow, rrow) = if side == LEFT { (row, there) } else { (there, row) };
                        matched[LEFT].push(lrow);
                        matched[RIGHT].push(rrow);
                    }
                }
            };
            // The other side's rows of the key in the order they were held: the indexed
            // ones (their list runs newest first), then the unindexed ones.
            if let Some(heads) = self.state.get(&key).filter(|h| h[other] != NO_ROW) {
                list.clear();
                list.extend(log.list(heads[other]));
                for &(index, time) in list.iter().rev() {
                    matches(index, time);
                }
            }
            let unindexed = &mut self.unindexed[other];
            unindexed.scanned += unindexed.keys.len();
            for (index, held) in (unindexed.from..).zip(&unindexed.keys) {
                if *held == key {
                    if let Some(time) = log.time(index) {
                        matches(index, time);
                    }
                }
            }
            // No row to come can match a row expiring at the watermark: it is not held.
            if expiry > self.watermark.0 {
                let index = self.logs[side].hold(NO_ROW, t, i as u32, expiry);
                self.unindexed[side].push(index, key);
            }
        }
        if late > 0 {
            self.late_rows.add(late);
        }
        if !matched[LEFT].is_empty() {
            let mut columns = Vec::with_capacity(self.spec.left_width + self.spec.right_width);
            for (side, width) in [(LEFT, self.spec.left_width), (RIGHT, self.spec.right_width)] {
                for c in 0..width {
                    columns.push(self.logs[side].buffered().gather(c, &matched[side]).map_err(arrow_err)?);
                }
            }
            let joined = RecordBatch::try_new(self.output_schema.clone(), columns).map_err(arrow_err)?;
            out.push(Message::Data(Batch::append(joined)));
        }
        for (side, chunk) in chunks.into_iter().enumerate() {
            if chunk.is_some() {
                self.logs[side].close();
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

    /// Held rows (their entries and arrays), the key table and the long keys.
    fn state_bytes(&self) -> usize {
        self.logs.iter().map(RowLog::bytes).sum::<usize>()
            + hash_map_bytes(&self.state)
            + self.key_heap_bytes
            + self.unindexed.iter().map(|u| u.bytes).sum::<usize>()
    }

    fn snapshot_state(&mut self) -> Result<Option<StateSnapshot>> {
        // A snapshot lists the rows by key.
        self.index(LEFT);
        self.index(RIGHT);
        self.snapshot().map(Some)
    }

    fn restore_state(&mut self, state: StateSnapshot) -> Result<()> {
        self.restore(state)
    }
}

#[cfg(test)]
#[path = "interval_join_tests.rs"]
mod tests;
