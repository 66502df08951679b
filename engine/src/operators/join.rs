//! Regular join (Flink's `StreamingJoinOperator`): inner, left, right and full equi-joins of
//! two streams, append-only or updating, with no time bound: a row joins every row of the
//! other side that is held, and is held until it is retracted (or its key's state expires
//! under `table.exec.state.ttl`).
//!
//! Both sides arrive as one tagged stream (see [`JoinSpec`]), hash-partitioned by the keys.
//! Per key and side the operator holds each distinct row with its multiplicity and, for a
//! side whose unmatched rows are emitted padded (the outer side), how many rows of the
//! other side it matches. What a row does, as in Flink:
//!
//! ```text
//!  +I/+U row r   matches m₁..mₖ of the other side
//!                  none, r's side outer         +I (r, NULL)
//!                  each m: m's side outer and m matched nothing before: -D (NULL, m)
//!                          then                +I (r, m)
//!  -D/-U row r   the same matches
//!                  none, r's side outer         -D (r, NULL)
//!                  each m:                      -D (r, m)
//!                          m's side outer and m now matches nothing: +I (NULL, m)
//! ```
//!
//! (Flink emits `+I`/`-D` for the join's own changes whatever the input's kind, and so does
//! this.) An inner join of two append-only inputs only ever emits `+I`. The rest of the ON
//! condition is evaluated on the candidate pairs, so it decides what matches (for outer
//! joins too). A NULL key matches nothing unless the join is on `IS NOT DISTINCT FROM`.
//!
//! Within a batch all rows normally come from one side (the Union forwards each input's
//! batches whole); the operator works on runs of rows of one side, during which the other
//! side's rows do not change, so the condition is evaluated once per run on every candidate
//! pair.
//!
//! State TTL is per key: a key's rows (both sides) expire once the key was last written
//! the TTL or more ago (Flink expires each side's rows separately; per key, a dimension
//! row stays as long as its key is written). Expiry emits nothing, as in Flink.
//!
//! In batch mode (`final_only`) rows only change the state, and the join's final result is
//! emitted, append-only, at the end of the input. A window join (both sides windowed, joined
//! on `window_end`, which is then one of the keys, so a key belongs to one window) works
//! the same per window: a window's keys are joined, emitted append-only and freed once the
//! watermark passes the window's end (`window_end - 1 <= watermark`, as Flink's
//! `WindowJoinOperator`), and a row of a window that has closed is late: dropped and
//! counted.

use std::collections::{BTreeMap, HashMap};
use std::mem::size_of;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int8Array, RecordBatch, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, SchemaRef, UInt64Type};
use arrow::error::ArrowError;
use arrow::row::{Row, Rows};
use eddy_connectors::RowKind;
use serde::{Deserialize, Serialize};

use super::join_rows::{Held, RowArena, SideRows};
use super::memory::{btree_bytes, hash_map_bytes, shrink_if_sparse};
use super::snapshot::{check_types, from_meta, malformed, part_columns, to_meta, Packer, Part};
use super::tagged::{TaggedInput, LEFT, RIGHT};
use super::ttl::{age_column, written_at, KeyExpiry, WriteId};
use super::windowing::event_times;
use super::{not_checkpointable, KeyHasher, OperatorContext, StreamOperator};
use crate::checkpoint::StateSnapshot;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message, Timestamp, Watermark};
use crate::metrics::LateRowCounter;
use eddy_sql::plan::JoinSpec;

/// The rows of one key, per side (see `join_rows`).
struct KeyState {
    sides: [SideRows; 2],
    /// Its last write in the TTL order (with state TTL).
    write: Option<WriteId>,
}

impl KeyState {
    /// Empty; a side in the appended form where `appended` says.
    fn new(appended: [bool; 2]) -> Self {
        Self { sides: appended.map(SideRows::new), write: None }
    }
}

/// What a snapshot's `meta` holds.
#[derive(Serialize, Deserialize)]
struct Meta {
    /// Per side: `[keys.., count, matches, columns..]` of every held row.
    sides: Vec<Part>,
    /// With state TTL: `[keys.., age ms]`, oldest write first.
    ages: Option<Part>,
    /// The input watermark (a window join drops the rows of windows it closed).
    #[serde(default)]
    watermark: Option<Timestamp>,
}

/// The output of a batch, built up in order: per row its kind and each side's row (a
/// padded side gets the all-NULL row); before those, batches already made (`done`).
struct Output {
    kinds: Vec<i8>,
    sides: [Rows; 2],
    done: Vec<Batch>,
}

/// What [`JoinOperator::matches`] found: per row of the run, the matching indices among
/// the other side's rows of its key; with a condition, the candidate pairs it was
/// evaluated on.
struct Matches {
    found: Vec<Vec<usize>>,
    pairs: Option<Candidates>,
}

/// The candidate pairs of a run: per pair, the row of the batch and the held row of the
/// other side (an index into `held`, each distinct held row decoded once).
struct Candidates {
    /// Per row of the run, where its pairs start.
    starts: Vec<usize>,
    own: UInt32Array,
    other: UInt32Array,
    /// The other side's held rows the pairs name, as columns.
    held: Vec<ArrayRef>,
}

impl Output {
    /// Appends `pairs`, `+I` rows of the output schema, after the rows so far (which become
    /// a batch of their own first).
    fn seal(
        &mut self,
        tagged: &TaggedInput,
        schema: &SchemaRef,
        pairs: RecordBatch,
    ) -> std::result::Result<(), ArrowError> {
        if !self.kinds.is_empty() {
            let rows = self.rows_batch(tagged, schema)?;
            self.done.push(rows);
        }
        self.done.push(Batch::append(pairs));
        Ok(())
    }

    /// The rows in `kinds` and `sides` as a batch (append-only when they all are `+I`),
    /// leaving them empty.
    fn rows_batch(&mut self, tagged: &TaggedInput, schema: &SchemaRef) -> std::result::Result<Batch, ArrowError> {
        let mut columns = tagged.sides[LEFT].convert_rows(&self.sides[LEFT])?;
        if schema.fields().len() > columns.len() {
            columns.extend(tagged.sides[RIGHT].convert_rows(&self.sides[RIGHT])?);
        }
        let data = RecordBatch::try_new(schema.clone(), columns)?;
        let append = self.kinds.iter().all(|k| *k == RowKind::Insert.code());
        // Cloned, not taken: the buffers are kept for the next batch (see `new_output`).
        let row_kinds = (!append).then(|| Int8Array::from(self.kinds.clone()));
        self.kinds.clear();
        self.sides.iter_mut().for_each(Rows::clear);
        Ok(Batch { row_kinds, ..Batch::append(data) })
    }

    fn push(&mut self, kind: RowKind, left: Row<'_>, right: Row<'_>) {
        self.kinds.push(kind.code());
        self.sides[LEFT].push(left);
        self.sides[RIGHT].push(right);
    }
}

/// Most output rows whose buffers are kept for the next batch (each batch's output
/// buffers were fresh memory, which the kernel zeroes: 5 % of Nexmark q20's time).
const SPARE_OUTPUT_ROWS: usize = 1 << 16;

/// The regular join operator.
pub struct JoinOperator {
    spec: JoinSpec,
    name: String,
    output_schema: SchemaRef,
    /// The input's layout, converters and the condition beyond the keys.
    tagged: TaggedInput,
    state: HashMap<Box<[u8]>, KeyState, KeyHasher>,
    expiry: Option<KeyExpiry>,
    /// Batch mode: rows of an outer side whose key is NULL (they match nothing), to emit
    /// padded at the end.
    unkeyed: [SideRows; 2],
    /// A window join: the keys of each window by its end (each key has one window, its
    /// `window_end` being a key).
    windows: BTreeMap<Timestamp, Vec<Box<[u8]>>>,
    /// The input watermark.
    watermark: Watermark,
    late_rows: LateRowCounter,
    /// Late rows of the batch being processed (counted once per batch).
    late: u64,
    /// Bytes of the held rows and keys.
    heap_bytes: usize,
    /// The last batch's output buffers, for the next (see `new_output`).
    spare: Option<Output>,
    /// Per side, whether its rows are held in the appended form (see `join_rows`).
    appended: [bool; 2],
    /// Per side, the rows of its keys held in the appended form.
    arenas: [RowArena; 2],
}

impl JoinOperator {
    /// An operator reading `ctx.input_schema` (the tagged schema) and emitting the join's rows.
    pub fn new(spec: JoinSpec, ctx: OperatorContext) -> Result<Self> {
        let name = format!("Join[{} {}]", spec.kind.sql(), spec.display);
        let output_width = spec.left_width + if spec.kind.filtering().is_some() { 0 } else { spec.right_width };
        if ctx.output_schema.fields().len() != output_width {
            return Err(EngineError::Plan(format!(
                "{name}: output of {} columns does not fit the join of {} and {} columns",
                ctx.output_schema.fields().len(),
                spec.left_width,
                spec.right_width
            )));
        }
        let condition = spec.condition.as_ref().map(|c| c.expr.clone());
        let tagged = TaggedInput::new(
            &ctx.input_schema,
            spec.key_names.len(),
            [spec.left_width, spec.right_width],
            condition,
            &name,
        )?;
        // Rows only ever added, and kept to the end: an append-only side that is not outer,
        // streaming, without state TTL (which frees a key's rows) or windows (which free a
        // window's).
        let plain = !spec.final_only
            && ctx.state_ttl.is_none()
            && spec.window_end_key.is_none()
            && spec.kind.filtering().is_none();
        let appended = [LEFT, RIGHT].map(|side| plain && spec.append_only[side] && !spec.kind.keeps_unmatched(side));
        Ok(Self {
            tagged,
            appended,
            arenas: Default::default(),
            expiry: if spec.final_only { None } else { ctx.state_ttl.map(KeyExpiry::new) },
            name,
            spec,
            output_schema: ctx.output_schema,
            state: HashMap::default(),
            unkeyed: Default::default(),
            windows: BTreeMap::new(),
            watermark: Watermark::MIN,
            late_rows: ctx.late_rows,
            late: 0,
            heap_bytes: 0,
            spare: None,
        })
    }

    fn arrow_err(&self) -> impl Fn(ArrowError) -> EngineError + '_ {
        move |source| EngineError::Arrow { operator: self.name.clone(), source }
    }

    #[cfg(test)]
    fn set_clock(&mut self, clock: super::ttl::Clock) {
        if let Some(e) = &mut self.expiry {
            e.set_clock(clock);
        }
    }

    /// Drops the state of the keys that expired.
    fn expire(&mut self) -> Option<std::time::Instant> {
        let expiry = self.expiry.as_mut()?;
        let now = expiry.now();
        let mut dropped = false;
        while let Some(key) = expiry.pop_expired(now) {
            if let Some((k, state)) = self.state.remove_entry(&key) {
                self.heap_bytes = self.heap_bytes.saturating_sub(key_state_bytes(&k, &state, &self.arenas));
                dropped = true;
            }
        }
        if dropped {
            shrink_if_sparse(&mut self.state);
        }
        Some(now)
    }

    /// For each row `r` of `run` (rows of `side`), the indices among the other side's rows
    /// of `r`'s key that it matches (the other side does not change during the run). With a
    /// condition, also the candidate pairs it was evaluated on.
    fn matches(&self, run: &[usize], side: usize, keys: &Rows, data: &RecordBatch, keyed: &[bool]) -> Result<Matches> {
        let other = 1 - side;
        let mut found: Vec<Vec<usize>> = Vec::with_capacity(run.len());
        if !self.tagged.has_condition() {
            for &i in run {
                let n = match self.state.get(keys.row(i).as_ref()) {
                    Some(s) if keyed[i] => s.sides[other].len(),
                    _ => 0,
                };
                found.push((0..n).collect());
            }
            return Ok(Matches { found, pairs: None });
        }
        // Every candidate pair, in the run's order, evaluated at once: the batch's row and
        // the held row, each distinct held row decoded once (a held row is at one place
        // for the whole run, so its address names it).
        let parser = self.tagged.sides[other].parser();
        let mut distinct: HashMap<(usize, usize), u32, KeyHasher> = HashMap::default();
        let mut held_rows = self.tagged.sides[other].empty_rows(0, 0);
        let (mut own, mut theirs) = (Vec::new(), Vec::new());
        let mut starts = Vec::with_capacity(run.len());
        for &i in run {
            starts.push(own.len());
            let held = match self.state.get(keys.row(i).as_ref()) {
                Some(s) if keyed[i] => &s.sides[other],
                _ => continue,
            };
            for (row, _) in held.rows(&self.arenas[other]) {
                let next = distinct.len() as u32;
                let at = *distinct.entry((row.as_ptr() as usize, row.len())).or_insert_with(|| {
                    held_rows.push(parser.parse(row));
                    next
                });
                own.push(i as u32);
                theirs.push(at);
            }
        }
        let held = self.tagged.sides[other].convert_rows(&held_rows).map_err(self.arrow_err())?;
        let (own_indices, their_indices) = (UInt32Array::from(own), UInt32Array::from(theirs));
        let mut columns = [self.tagged.side_columns(data, side), held.as_slice()];
        let mut indices = [&own_indices, &their_indices];
        if side == RIGHT {
            columns.swap(LEFT, RIGHT);
            indices.swap(LEFT, RIGHT);
        }
        let mask = self.tagged.holds_at(columns, indices)?;
        for (n, &start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(mask.len());
            // NULL is not true: no match.
            found.push((0..end - start).filter(|j| mask[start + j]).collect());
        }
        let pairs = Candidates { starts, own: own_indices, other: their_indices, held };
        Ok(Matches { found, pairs: Some(pairs) })
    }

    /// Applies a run of rows of `side` in order, emitting the changes into `out`.
    #[allow(clippy::too_many_arguments)]
    fn apply_run(
        &mut self,
        run: &[usize],
        side: usize,
        adds: &[bool],
        data: &RecordBatch,
        keys: &Rows,
        own: &Rows,
        keyed: &[bool],
        ends: &[Option<Timestamp>],
        now: Option<std::time::Instant>,
        out: &mut Output,
    ) -> Result<()> {
        let deferred = self.spec.deferred();
        let Matches { found, pairs } = if deferred {
            Matches { found: Vec::new(), pairs: None }
        } else {
            self.matches(run, side, keys, data, keyed)?
        };
        let other = 1 - side;
        let own_outer = self.spec.kind.keeps_unmatched(side);
        let other_outer = self.spec.kind.keeps_unmatched(other);
        // An inner join's run of added rows emits only `+I` pairs, each one of the candidate
        // pairs the condition was evaluated on: they are gathered from the batch and the
        // held rows decoded for the condition, instead of being encoded into the output
        // rows and decoded again.
        let inner = !own_outer && !other_outer && self.spec.kind.filtering().is_none();
        let mut from_pairs = pairs.filter(|_| inner && run.iter().all(|&i| adds[i])).map(|c| (c, Vec::new()));
        let parser = self.tagged.sides[other].parser();
        for (n, &i) in run.iter().enumerate() {
            let row = own.row(i);
            let add = adds[i];
            let end = ends.get(i).copied().flatten();
            if self.spec.window_end_key.is_some() {
                // A window join: the window's rows were joined when it closed.
                if end.is_some_and(|end| end.saturating_sub(1) <= self.watermark.0) {
                    self.late += 1;
                    continue;
                }
            }
            if !keyed[i] {
                // A NULL key matches nothing.
                if self.spec.final_only {
                    if own_outer {
                        let arena = &mut self.arenas[side];
                        self.unkeyed[side].change(arena, row.as_ref(), add, 0, &mut self.heap_bytes);
                    }
                } else if own_outer {
                    let kind = if add { RowKind::Insert } else { RowKind::Delete };
                    push_padded(out, kind, side, row, self.tagged.null_rows[other].row());
                }
                continue;
            }
            let key = keys.row(i);
            if !self.state.contains_key(key.as_ref()) {
                if !add && (deferred || found[n].is_empty()) {
                    // Taking back a row never held (its state expired) with nothing to
                    // take back from the other side: only its padded row, if any.
                    if own_outer && !deferred {
                        push_padded(out, RowKind::Delete, side, row, self.tagged.null_rows[other].row());
                    }
                    continue;
                }
                let k: Box<[u8]> = key.as_ref().into();
                self.heap_bytes += k.len() + size_of::<KeyState>();
                if let Some(end) = end {
                    self.heap_bytes += k.len() + size_of::<Box<[u8]>>();
                    self.windows.entry(end).or_default().push(k.clone());
                }
                self.state.insert(k, KeyState::new(self.appended));
            }
            let Some(state) = self.state.get_mut(key.as_ref()) else { continue };
            if let (Some(expiry), Some(now)) = (self.expiry.as_mut(), now) {
                state.write = Some(expiry.write(key.as_ref(), state.write, now));
            }
            if deferred {
                state.sides[side].change(&mut self.arenas[side], row.as_ref(), add, 0, &mut self.heap_bytes);
                continue;
            }
            let [left, right] = &mut state.sides;
            let (mine, theirs) = if side == LEFT { (left, right) } else { (right, left) };
            let [left_arena, right_arena] = &mut self.arenas;
            let (my_arena, their_arena) =
                if side == LEFT { (left_arena, &*right_arena) } else { (right_arena, &*left_arena) };
            let matched = &found[n];
            if let Some(semi) = self.spec.kind.filtering() {
                // Semi/anti: only left rows go out (padded; the padding is dropped at the
                // end), a left row while it has matches (semi) or none (anti).
                let (shown, hidden) =
                    if semi { (RowKind::Insert, RowKind::Delete) } else { (RowKind::Delete, RowKind::Insert) };
                let nulls = self.tagged.null_rows[RIGHT].row();
                let mut total = 0u64;
                for &j in matched {
                    // A semi or anti join holds its sides distinct (see `new`).
                    let Some((other_row, Some(held))) = theirs.entry_mut(j, their_arena) else { continue };
                    if side == LEFT {
                        total += held.count;
                        continue;
                    }
                    let left_row = parser.parse(other_row);
                    if add {
                        if held.matches == 0 {
                            (0..held.count).for_each(|_| push_padded(out, shown, LEFT, left_row, nulls));
                        }
                        held.matches += 1;
                    } else if held.matches > 0 {
                        held.matches -= 1;
                        if held.matches == 0 {
                            (0..held.count).for_each(|_| push_padded(out, hidden, LEFT, left_row, nulls));
                        }
                    }
                }
                if side == LEFT && (total > 0) == semi {
                    push_padded(out, if add { RowKind::Insert } else { RowKind::Delete }, LEFT, row, nulls);
                }
                mine.change(my_arena, row.as_ref(), add, total, &mut self.heap_bytes);
                self.drop_if_empty(key.as_ref());
                continue;
            }
            let mut total = 0u64;
            if let Some((Candidates { starts, .. }, taken)) = &mut from_pairs {
                for &j in matched {
                    let Some((_, held)) = theirs.entry_mut(j, their_arena) else { continue };
                    let copies = held.map_or(1, |h| {
                        h.matches += 1;
                        h.count
                    });
                    total += copies;
                    taken.extend(std::iter::repeat_n((starts[n] + j) as u32, copies as usize));
                }
                mine.change(my_arena, row.as_ref(), add, total, &mut self.heap_bytes);
                continue;
            }
            for &j in matched {
                let Some((other_row, held)) = theirs.entry_mut(j, their_arena) else { continue };
                let other_row = parser.parse(other_row);
                let Some(held) = held else {
                    // An appended row: one copy, of a side that is not outer.
                    total += 1;
                    let kind = if add { RowKind::Insert } else { RowKind::Delete };
                    push_pair(out, kind, side, row, other_row);
                    continue;
                };
                total += held.count;
                if add {
                    if other_outer && held.matches == 0 {
                        for _ in 0..held.count {
                            push_padded(out, RowKind::Delete, other, other_row, self.tagged.null_rows[side].row());
                        }
                    }
                    held.matches += 1;
                    for _ in 0..held.count {
                        push_pair(out, RowKind::Insert, side, row, other_row);
                    }
                } else {
                    for _ in 0..held.count {
                        push_pair(out, RowKind::Delete, side, row, other_row);
                    }
                    if other_outer && held.matches > 0 {
                        held.matches -= 1;
                        if held.matches == 0 {
                            for _ in 0..held.count {
                                push_padded(out, RowKind::Insert, other, other_row, self.tagged.null_rows[side].row());
                            }
                        }
                    }
                }
            }
            if own_outer && matched.is_empty() {
                let kind = if add { RowKind::Insert } else { RowKind::Delete };
                push_padded(out, kind, side, row, self.tagged.null_rows[other].row());
            }
            mine.change(my_arena, row.as_ref(), add, total, &mut self.heap_bytes);
            self.drop_if_empty(key.as_ref());
        }
        if let Some((pairs, taken)) = from_pairs {
            if !taken.is_empty() {
                let taken = self.gather_pairs(data, side, &pairs, &taken).map_err(self.arrow_err())?;
                out.seal(&self.tagged, &self.output_schema, taken).map_err(self.arrow_err())?;
            }
        }
        Ok(())
    }

    /// The candidate pairs `taken` (indices into `pairs`) as output rows: the run's own
    /// columns from `data`, the other side's from the held rows decoded for the condition.
    fn gather_pairs(
        &self,
        data: &RecordBatch,
        side: usize,
        pairs: &Candidates,
        taken: &[u32],
    ) -> std::result::Result<RecordBatch, ArrowError> {
        let own = UInt32Array::from_iter_values(taken.iter().map(|&t| pairs.own.value(t as usize)));
        let theirs = UInt32Array::from_iter_values(taken.iter().map(|&t| pairs.other.value(t as usize)));
        let gather = |columns: &[ArrayRef], indices: &UInt32Array| {
            columns
                .iter()
                .map(|c| arrow::compute::take(c.as_ref(), indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()
        };
        let (own, theirs) = (gather(self.tagged.side_columns(data, side), &own)?, gather(&pairs.held, &theirs)?);
        let columns = if side == LEFT { [own, theirs].concat() } else { [theirs, own].concat() };
        RecordBatch::try_new(Arc::clone(&self.output_schema), columns)
    }

    /// Forgets `key` once neither side holds a row of it.
    fn drop_if_empty(&mut self, key: &[u8]) {
        if !self.state.get(key).is_some_and(|s| s.sides[LEFT].is_empty() && s.sides[RIGHT].is_empty()) {
            return;
        }
        if let Some((k, s)) = self.state.remove_entry(key) {
            self.heap_bytes = self.heap_bytes.saturating_sub(k.len() + size_of::<KeyState>());
            if let (Some(e), Some(write)) = (self.expiry.as_mut(), s.write) {
                e.forget(write);
            }
        }
    }

    /// Batch mode, at the end: every key's pairs, and the padded rows of the outer sides.
    fn emit_final(&mut self, out: &mut Output) -> Result<()> {
        let mut keys: Vec<&Box<[u8]>> = self.state.keys().collect();
        keys.sort();
        for key in keys {
            self.emit_key(&self.state[key], out)?;
        }
        for side in [LEFT, RIGHT] {
            let parser = self.tagged.sides[side].parser();
            for (row, held) in self.unkeyed[side].rows(&self.arenas[side]) {
                for _ in 0..held.count {
                    push_padded(out, RowKind::Insert, side, parser.parse(row), self.tagged.null_rows[1 - side].row());
                }
            }
        }
        Ok(())
    }

    /// A window join: joins and frees the keys of the windows the watermark closed.
    fn close_windows(&mut self, out: &mut Output) -> Result<()> {
        while let Some(entry) = self.windows.first_entry() {
            if entry.key().saturating_sub(1) > self.watermark.0 {
                break;
            }
            for key in entry.remove() {
                self.heap_bytes = self.heap_bytes.saturating_sub(key.len() + size_of::<Box<[u8]>>());
                if let Some((k, state)) = self.state.remove_entry(&key) {
                    self.emit_key(&state, out)?;
                    self.heap_bytes = self.heap_bytes.saturating_sub(key_state_bytes(&k, &state, &self.arenas));
                }
            }
        }
        shrink_if_sparse(&mut self.state);
        Ok(())
    }

    /// The complete join result of one key's rows: the matching pairs, and the padded rows
    /// of the outer sides that match nothing.
    fn emit_key(&self, state: &KeyState, out: &mut Output) -> Result<()> {
        let [left, right] = &state.sides;
        let [left_arena, right_arena] = &self.arenas;
        let lp = self.tagged.sides[LEFT].parser();
        let rp = self.tagged.sides[RIGHT].parser();
        // Which (left, right) pairs match, by the condition.
        let mut pairs = self.tagged.empty_pairs();
        for (l, _) in left.rows(left_arena) {
            for (r, _) in right.rows(right_arena) {
                pairs[LEFT].push(lp.parse(l));
                pairs[RIGHT].push(rp.parse(r));
            }
        }
        let mask = self.tagged.holds(&pairs)?;
        if let Some(semi) = self.spec.kind.filtering() {
            for (li, (l, lh)) in left.rows(left_arena).enumerate() {
                let any = (0..right.len()).any(|ri| mask[li * right.len() + ri]);
                if any == semi {
                    for _ in 0..lh.count {
                        out.push(RowKind::Insert, lp.parse(l), self.tagged.null_rows[RIGHT].row());
                    }
                }
            }
            return Ok(());
        }
        let mut right_matched = vec![false; right.len()];
        for (li, (l, lh)) in left.rows(left_arena).enumerate() {
            let mut any = false;
            for (ri, (r, rh)) in right.rows(right_arena).enumerate() {
                if mask[li * right.len() + ri] {
                    any = true;
                    right_matched[ri] = true;
                    for _ in 0..lh.count * rh.count {
                        out.push(RowKind::Insert, lp.parse(l), rp.parse(r));
                    }
                }
            }
            if !any && self.spec.kind.keeps_unmatched(LEFT) {
                for _ in 0..lh.count {
                    out.push(RowKind::Insert, lp.parse(l), self.tagged.null_rows[RIGHT].row());
                }
            }
        }
        if self.spec.kind.keeps_unmatched(RIGHT) {
            for ((r, rh), matched) in right.rows(right_arena).zip(right_matched) {
                if !matched {
                    for _ in 0..rh.count {
                        out.push(RowKind::Insert, self.tagged.null_rows[LEFT].row(), rp.parse(r));
                    }
                }
            }
        }
        Ok(())
    }

    /// An empty output: the last batch's buffers, cleared, when there are any.
    fn new_output(&mut self) -> Output {
        match self.spare.take() {
            Some(mut output) => {
                output.kinds.clear();
                output.sides.iter_mut().for_each(Rows::clear);
                output
            }
            None => Output {
                kinds: Vec::new(),
                sides: [self.tagged.sides[LEFT].empty_rows(0, 0), self.tagged.sides[RIGHT].empty_rows(0, 0)],
                done: Vec::new(),
            },
        }
    }

    /// The output rows as a batch (append-only when the join's output is).
    fn flush(&mut self, mut output: Output, out: &mut Vec<Message>) -> Result<()> {
        out.extend(output.done.drain(..).map(Message::Data));
        if output.kinds.is_empty() {
            self.spare = Some(output);
            return Ok(());
        }
        let rows = output.kinds.len();
        let batch = output.rows_batch(&self.tagged, &self.output_schema).map_err(self.arrow_err())?;
        out.push(Message::Data(batch));
        // Kept for the next batch, unless one batch's output was unusually large.
        if rows <= SPARE_OUTPUT_ROWS {
            self.spare = Some(output);
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<StateSnapshot> {
        if self.spec.final_only {
            return Err(not_checkpointable(&self.name));
        }
        let mut packer = Packer::default();
        let key_parser = self.tagged.keys.parser();
        let mut sides = Vec::with_capacity(2);
        for side in [LEFT, RIGHT] {
            let parser = self.tagged.sides[side].parser();
            let (mut keys, mut counts, mut matches, mut rows) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (key, state) in &self.state {
                for (row, held) in state.sides[side].rows(&self.arenas[side]) {
                    keys.push(key_parser.parse(key));
                    counts.push(held.count);
                    matches.push(held.matches);
                    rows.push(parser.parse(row));
                }
            }
            let n = counts.len();
            let mut columns = self.tagged.keys.convert_rows(keys).map_err(self.arrow_err())?;
            columns.push(Arc::new(UInt64Array::from(counts)) as ArrayRef);
            columns.push(Arc::new(UInt64Array::from(matches)) as ArrayRef);
            columns.extend(self.tagged.sides[side].convert_rows(rows).map_err(self.arrow_err())?);
            sides.push(packer.add(columns, n).map_err(self.arrow_err())?);
        }
        let ages = match &self.expiry {
            Some(e) => {
                let (keys, ages): (Vec<Row<'_>>, Vec<_>) =
                    e.oldest_first(e.now()).map(|(k, age)| (key_parser.parse(k), age)).unzip();
                let n = keys.len();
                let mut columns = self.tagged.keys.convert_rows(keys).map_err(self.arrow_err())?;
                columns.push(age_column(ages));
                Some(packer.add(columns, n).map_err(self.arrow_err())?)
            }
            None => None,
        };
        let meta = Meta { sides, ages, watermark: Some(self.watermark.0) };
        Ok(StateSnapshot { meta: to_meta(&self.name, &meta)?, batches: packer.finish().map_err(self.arrow_err())? })
    }

    fn restore(&mut self, snapshot: StateSnapshot) -> Result<()> {
        let name = self.name.clone();
        let meta: Meta = from_meta(&name, snapshot.meta)?;
        if meta.sides.len() != 2 {
            return Err(malformed(&name, format!("{} sides", meta.sides.len())));
        }
        self.watermark = Watermark(meta.watermark.unwrap_or(i64::MIN));
        self.state.clear();
        self.windows.clear();
        self.arenas = Default::default();
        self.heap_bytes = 0;
        for side in [LEFT, RIGHT] {
            let (keys, [counts, matches], rows) = self.tagged.restore_part(
                &snapshot.batches,
                meta.sides[side],
                side,
                [DataType::UInt64, DataType::UInt64],
            )?;
            let counts = counts.as_primitive::<UInt64Type>();
            let matches = matches.as_primitive::<UInt64Type>();
            let key_columns = self.tagged.keys.convert_rows(&keys).map_err(|e| malformed(&name, e))?;
            let ends = match self.spec.window_end_key {
                Some(k) => Some(event_times(key_columns[k].as_ref()).map_err(|e| malformed(&name, e))?),
                None => None,
            };
            for i in 0..counts.len() {
                let key = keys.row(i);
                if !self.state.contains_key(key.as_ref()) {
                    self.heap_bytes += key.as_ref().len() + size_of::<KeyState>();
                    let k: Box<[u8]> = key.as_ref().into();
                    if let Some(end) = ends.as_ref().filter(|e| e.is_valid(i)).map(|e| e.value(i)) {
                        self.heap_bytes += k.len() + size_of::<Box<[u8]>>();
                        self.windows.entry(end).or_default().push(k.clone());
                    }
                    self.state.insert(k, KeyState::new(self.appended));
                }
                let Some(state) = self.state.get_mut(key.as_ref()) else { continue };
                let held = Held { count: counts.value(i), matches: matches.value(i) };
                self.heap_bytes += state.sides[side].restore(&mut self.arenas[side], rows.row(i).as_ref(), held);
            }
        }
        if let Some(expiry) = self.expiry.as_mut() {
            expiry.clear();
            if let Some(part) = meta.ages {
                let n = self.tagged.key_types.len();
                let columns = part_columns(&name, &snapshot.batches, part, n + 1)?;
                check_types(&name, &columns, self.tagged.key_types.iter().chain([&DataType::UInt64]))?;
                let keys = self.tagged.keys.convert_columns(&columns[..n]).map_err(|e| malformed(&name, e))?;
                let ages = columns[n].as_primitive::<UInt64Type>();
                let now = expiry.now();
                for i in 0..ages.len() {
                    let key = keys.row(i);
                    if let Some(state) = self.state.get_mut(key.as_ref()) {
                        state.write = Some(expiry.write(key.as_ref(), None, written_at(now, ages.value(i))));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Bytes a key's state holds.
fn key_state_bytes(key: &[u8], state: &KeyState, arenas: &[RowArena; 2]) -> usize {
    key.len() + size_of::<KeyState>() + state.sides.iter().zip(arenas).map(|(s, a)| s.bytes(a)).sum::<usize>()
}

/// `row` of `side` paired with `other` of the other side.
fn push_pair(out: &mut Output, kind: RowKind, side: usize, row: Row<'_>, other: Row<'_>) {
    if side == LEFT {
        out.push(kind, row, other);
    } else {
        out.push(kind, other, row);
    }
}

/// `row` of `side` padded with the other side's NULL row.
fn push_padded(out: &mut Output, kind: RowKind, side: usize, row: Row<'_>, nulls: Row<'_>) {
    push_pair(out, kind, side, row, nulls);
}

impl StreamOperator for JoinOperator {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        let now = self.expire();
        let data = &batch.data;
        if data.num_rows() == 0 {
            return Ok(());
        }
        let adds = super::row_adds(&batch, &self.name, true)?;
        let nk = self.spec.key_names.len();
        let key_columns = &data.columns()[..nk];
        let decoded = self.tagged.decode(data)?;
        let keyed: Vec<bool> =
            (0..data.num_rows()).map(|i| self.spec.nulls_equal || key_columns.iter().all(|k| k.is_valid(i))).collect();
        let ends: Vec<Option<Timestamp>> = match self.spec.window_end_key {
            Some(k) => {
                let times = event_times(key_columns[k].as_ref()).map_err(self.arrow_err())?;
                times.iter().collect()
            }
            None => Vec::new(),
        };
        let side_of = |i: usize| decoded.side[i];
        let mut output = self.new_output();
        let mut start = 0;
        while start < data.num_rows() {
            let side = side_of(start);
            let mut end = start + 1;
            while end < data.num_rows() && side_of(end) == side {
                end += 1;
            }
            let run: Vec<usize> = (start..end).collect();
            self.apply_run(
                &run,
                side,
                &adds,
                data,
                &decoded.keys,
                &decoded.rows[side],
                &keyed,
                &ends,
                now,
                &mut output,
            )?;
            start = end;
        }
        if self.late > 0 {
            self.late_rows.add(std::mem::take(&mut self.late));
        }
        self.flush(output, out)
    }

    fn handle_watermark(&mut self, wm: Watermark, out: &mut Vec<Message>) -> Result<()> {
        if wm > self.watermark {
            self.watermark = wm;
            if self.spec.window_end_key.is_some() {
                let mut output = self.new_output();
                self.close_windows(&mut output)?;
                self.flush(output, out)?;
            }
        }
        out.push(Message::Watermark(wm));
        Ok(())
    }

    fn on_end(&mut self, out: &mut Vec<Message>) -> Result<()> {
        if self.spec.final_only {
            let mut output = self.new_output();
            self.emit_final(&mut output)?;
            self.flush(output, out)?;
        }
        Ok(())
    }

    /// Held rows and keys, the key table and the TTL order.
    fn state_bytes(&self) -> usize {
        self.heap_bytes
            + hash_map_bytes(&self.state)
            + btree_bytes::<Timestamp, Vec<Box<[u8]>>>(self.windows.len())
            + self.expiry.as_ref().map_or(0, KeyExpiry::bytes)
    }

    fn snapshot_state(&mut self) -> Result<Option<StateSnapshot>> {
        self.snapshot().map(Some)
    }

    fn restore_state(&mut self, state: StateSnapshot) -> Result<()> {
        self.restore(state)
    }
}

#[cfg(test)]
#[path = "join_tests.rs"]
mod tests;
