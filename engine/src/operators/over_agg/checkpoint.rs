//! Checkpoints of the OVER aggregation: the rows waiting for the watermark and every key's
//! state.
//!
//! ```text
//! meta                       batches (packed, see `operators::snapshot`)
//!   watermark, sequence
//!   pending ────────────►  one row per waiting row, in firing order: the input columns,
//!                          the key columns, the time, the arrival sequence
//!   keys ───────────────►  one row per key: the key columns, rows seen, rows in the frame,
//!                          rows remembered, each aggregate's state columns, and the value
//!                          of each FIRST_VALUE/LAST_VALUE of an unbounded frame
//!   recent ─────────────►  the keys' remembered rows, key after key: the time, then one
//!                          column per argument
//! ```
//!
//! An aggregate's state is read with `Accumulator::state` and merged into a new accumulator
//! at a restore, except sliding MIN and MAX, whose state (the current extreme) could not
//! retract the frame's rows later: those take the frame's rows again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, UInt64Array};
use arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::common::ScalarValue;
use serde::{Deserialize, Serialize};

use super::frame::{Call, KeyState, RecentRow};
use super::{column_of, KeyStates, OverAggregateOperator, Pending, PendingRows};
use crate::checkpoint::StateSnapshot;
use crate::error::Result;
use crate::message::Watermark;
use crate::operators::snapshot::{check_types, from_meta, malformed, part_columns, to_meta, Packer, Part};
use crate::operators::windowing::BufferedRows;

#[derive(Serialize, Deserialize)]
struct Meta {
    watermark: i64,
    sequence: u64,
    pending: Option<Part>,
    keys: Option<Part>,
    recent: Option<Part>,
}

/// Where a key's columns are in the `keys` part.
struct KeyLayout {
    /// Per aggregate call: its state columns' types (empty when it replays the frame).
    states: Vec<Vec<DataType>>,
    /// Calls whose value is kept (FIRST_VALUE/LAST_VALUE of unbounded frames), with the
    /// type of that value.
    values: Vec<(usize, DataType)>,
}

impl OverAggregateOperator {
    /// The layout of the `keys` part. State columns are typed as a new accumulator's
    /// state is (a sliding accumulator's state is not its function's `state_fields`).
    fn key_layout(&self) -> Result<KeyLayout> {
        let mut fresh = self.calls.new_key().map_err(self.expr_err())?;
        let mut states = Vec::new();
        let mut values = Vec::new();
        for (c, call) in self.calls.calls.iter().enumerate() {
            match call {
                Call::Aggregate { function, .. } if self.calls.replays(function) => states.push(Vec::new()),
                Call::Aggregate { accumulator, .. } => {
                    let state = fresh.accumulators[*accumulator].state().map_err(self.expr_err())?;
                    states.push(state.iter().map(ScalarValue::data_type).collect());
                }
                Call::FirstValue { slot } | Call::LastValue { slot } if !self.calls.bounded() => {
                    values.push((c, self.calls.arg_types[*slot].clone()))
                }
                _ => {}
            }
        }
        Ok(KeyLayout { states, values })
    }

    /// Keys as their columns (`RowConverter` bytes are not stable across Arrow releases).
    fn decode_keys<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        crate::operators::snapshot::key_columns(self.key_encoder.as_ref(), keys).map_err(self.arrow_err())
    }

    /// Key columns back to bytes, one per row (`rows` empty keys without keys).
    fn encode_keys(&self, columns: &[ArrayRef], rows: usize) -> Result<Vec<Box<[u8]>>> {
        crate::operators::snapshot::key_bytes(self.key_encoder.as_ref(), columns, rows).map_err(self.arrow_err())
    }

    pub(super) fn snapshot(&mut self) -> Result<StateSnapshot> {
        let mut packer = Packer::default();
        let pending = self.snapshot_pending(&mut packer)?;
        let (keys, recent) = self.snapshot_keys(&mut packer)?;
        let meta = Meta { watermark: self.watermark.0, sequence: self.sequence, pending, keys, recent };
        Ok(StateSnapshot { meta: to_meta(&self.name, &meta)?, batches: packer.finish().map_err(self.arrow_err())? })
    }

    fn snapshot_pending(&self, packer: &mut Packer) -> Result<Option<Part>> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let refs: Vec<_> = self.pending.values().map(|p| p.row).collect();
        let mut columns = (0..self.input_schema.fields().len())
            .map(|c| self.rows.gather(c, &refs))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.arrow_err())?;
        columns.extend(self.decode_keys(self.pending.values().map(|p| &*p.key))?);
        columns.push(Arc::new(Int64Array::from_iter_values(self.pending.keys().map(|k| k.0))));
        columns.push(Arc::new(UInt64Array::from_iter_values(self.pending.keys().map(|k| k.1))));
        Ok(Some(packer.add(columns, refs.len()).map_err(self.arrow_err())?))
    }

    fn snapshot_keys(&mut self, packer: &mut Packer) -> Result<(Option<Part>, Option<Part>)> {
        if self.keys.is_empty() {
            return Ok((None, None));
        }
        let layout = self.key_layout()?;
        let expr_err = self.expr_err();
        let keys: Vec<&Box<[u8]>> = self.keys.keys().collect();
        let mut columns = self.decode_keys(keys.iter().map(|k| &***k))?;
        let states: Vec<&KeyState> = keys.iter().map(|k| &self.keys[*k]).collect();
        columns.push(Arc::new(UInt64Array::from_iter_values(states.iter().map(|s| s.rows_seen))));
        columns.push(Arc::new(UInt64Array::from_iter_values(states.iter().map(|s| s.in_frame as u64))));
        columns.push(Arc::new(UInt64Array::from_iter_values(states.iter().map(|s| s.recent.len() as u64))));
        let key_order: Vec<Box<[u8]>> = keys.into_iter().cloned().collect();
        // Aggregate states: read each accumulator once, then one column per state field.
        for (a, types) in layout.states.iter().enumerate() {
            let mut per_field: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(key_order.len()); types.len()];
            for key in &key_order {
                let Some(state) = self.keys.get_mut(key) else { continue };
                if types.is_empty() {
                    continue;
                }
                for (f, v) in state.accumulators[a].state().map_err(&expr_err)?.into_iter().enumerate() {
                    if let Some(field) = per_field.get_mut(f) {
                        field.push(v);
                    }
                }
            }
            for (values, t) in per_field.into_iter().zip(types) {
                columns.push(column_of(values, t).map_err(&expr_err)?);
            }
        }
        for (c, t) in &layout.values {
            let values = key_order
                .iter()
                .map(|k| match self.keys.get(k).and_then(|s| s.values[*c].clone()) {
                    Some(v) => Ok(v),
                    None => ScalarValue::try_from(t),
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(&expr_err)?;
            columns.push(column_of(values, t).map_err(&expr_err)?);
        }
        let keys_part = packer.add(columns, key_order.len()).map_err(self.arrow_err())?;
        let recent: Vec<&RecentRow> =
            key_order.iter().filter_map(|k| self.keys.get(k)).flat_map(|s| &s.recent).collect();
        let recent_part = if recent.is_empty() {
            None
        } else {
            let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(recent.iter().map(|r| r.ts)))];
            for (slot, t) in self.calls.arg_types.iter().enumerate() {
                let values = recent.iter().map(|r| r.args[slot].clone()).collect();
                columns.push(column_of(values, t).map_err(&expr_err)?);
            }
            Some(packer.add(columns, recent.len()).map_err(self.arrow_err())?)
        };
        Ok((Some(keys_part), recent_part))
    }

    /// Takes the state of [`Self::snapshot`] of an operator of the same spec.
    pub(super) fn restore(&mut self, snapshot: StateSnapshot) -> Result<()> {
        let meta: Meta = from_meta(&self.name, snapshot.meta)?;
        let (pending, rows, mut key_bytes) = self.restore_pending(&snapshot.batches, meta.pending)?;
        let (keys, state_bytes) = match meta.keys {
            Some(part) => self.restore_keys(&snapshot.batches, part, meta.recent)?,
            None => (HashMap::default(), 0),
        };
        key_bytes += state_bytes;
        self.watermark = Watermark(meta.watermark);
        self.sequence = meta.sequence;
        self.pending = pending;
        self.rows = rows;
        self.keys = keys;
        self.key_bytes = key_bytes;
        Ok(())
    }

    fn restore_pending(
        &self,
        batches: &[arrow::array::RecordBatch],
        part: Option<Part>,
    ) -> Result<(PendingRows, BufferedRows, usize)> {
        let mut rows = BufferedRows::default();
        let mut pending = BTreeMap::new();
        let Some(part) = part else { return Ok((pending, rows, 0)) };
        let inputs = self.input_schema.fields().len();
        let key_count = self.spec.partition_keys.len();
        let mut columns = part_columns(&self.name, batches, part, inputs + key_count + 2)?;
        check_types(&self.name, &columns, self.input_schema.fields().iter().map(|f| f.data_type()))?;
        let mut rest = columns.split_off(inputs);
        let (Some(times), Some(sequences)) = (
            rest[key_count].as_primitive_opt::<Int64Type>().cloned(),
            rest[key_count + 1].as_primitive_opt::<UInt64Type>().cloned(),
        ) else {
            return Err(malformed(&self.name, "times or sequences of another type"));
        };
        rest.truncate(key_count);
        let keys = self.encode_keys(&rest, part.rows)?;
        let chunk = rows.push(columns);
        let mut key_bytes = 0;
        for (row, key) in keys.into_iter().enumerate() {
            let at = u32::try_from(row).map_err(|_| malformed(&self.name, "too many waiting rows"))?;
            key_bytes += key.len();
            pending.insert((times.value(row), sequences.value(row)), Pending { key, row: (chunk, at) });
            rows.acquire(chunk);
        }
        rows.free_if_unused(chunk);
        Ok((pending, rows, key_bytes))
    }

    fn restore_keys(
        &self,
        batches: &[arrow::array::RecordBatch],
        part: Part,
        recent: Option<Part>,
    ) -> Result<(KeyStates, usize)> {
        let layout = self.key_layout()?;
        let key_count = self.spec.partition_keys.len();
        let width = key_count + 3 + layout.states.iter().map(Vec::len).sum::<usize>() + layout.values.len();
        let mut columns = part_columns(&self.name, batches, part, width)?;
        let rest = columns.split_off(key_count);
        let keys = self.encode_keys(&columns, part.rows)?;
        let counts = |i: usize| {
            rest[i]
                .as_primitive_opt::<UInt64Type>()
                .cloned()
                .ok_or_else(|| malformed(&self.name, "counts of another type"))
        };
        let (seen, in_frame, remembered) = (counts(0)?, counts(1)?, counts(2)?);
        let extra = rest[3..].to_vec();
        let expected = layout.states.iter().flatten().chain(layout.values.iter().map(|(_, t)| t));
        check_types(&self.name, &extra, expected)?;
        let recent_columns = match recent {
            Some(p) => part_columns(&self.name, batches, p, 1 + self.calls.arg_types.len())?,
            None => Vec::new(),
        };
        if let Some(slots) = recent_columns.get(1..) {
            check_types(&self.name, slots, &self.calls.arg_types)?;
        }
        let mut restored = HashMap::with_capacity_and_hasher(keys.len(), crate::operators::KeyHasher::default());
        let mut bytes = 0;
        let mut offset = 0;
        for (k, key) in keys.into_iter().enumerate() {
            let mut state = self.calls.new_key().map_err(self.expr_err())?;
            state.rows_seen = seen.value(k);
            let count = usize::try_from(remembered.value(k)).map_err(|_| malformed(&self.name, "row count"))?;
            state.in_frame = usize::try_from(in_frame.value(k)).map_err(|_| malformed(&self.name, "row count"))?;
            if state.in_frame > count || offset + count > recent_columns.first().map_or(0, |c| c.len()) {
                return Err(malformed(&self.name, "more rows in a frame than remembered"));
            }
            let rows: Vec<ArrayRef> = recent_columns.iter().map(|c| c.slice(offset, count)).collect();
            offset += count;
            self.restore_key(&mut state, &layout, &extra, k, &rows)?;
            bytes += key.len() + state.bytes();
            if restored.insert(key, state).is_some() {
                return Err(malformed(&self.name, "a key twice"));
            }
        }
        Ok((restored, bytes))
    }

    /// Restore key `k`'s accumulators, values and remembered `rows` (time, then the slots).
    fn restore_key(
        &self,
        state: &mut KeyState,
        layout: &KeyLayout,
        extra: &[ArrayRef],
        k: usize,
        rows: &[ArrayRef],
    ) -> Result<()> {
        let expr_err = self.expr_err();
        let mut column = 0;
        for (a, types) in layout.states.iter().enumerate() {
            if types.is_empty() {
                continue;
            }
            let states: Vec<ArrayRef> = extra[column..column + types.len()].iter().map(|c| c.slice(k, 1)).collect();
            state.accumulators[a].merge_batch(&states).map_err(&expr_err)?;
            column += types.len();
        }
        for (c, _) in &layout.values {
            let v = ScalarValue::try_from_array(&extra[column], k).map_err(&expr_err)?;
            state.values[*c] = (!v.is_null()).then_some(v);
            column += 1;
        }
        let Some((times, slots)) = rows.split_first() else { return Ok(()) };
        let Some(times) = times.as_primitive_opt::<Int64Type>() else {
            return Err(malformed(&self.name, "times of another type"));
        };
        for r in 0..times.len() {
            let args = slots.iter().map(|s| ScalarValue::try_from_array(s, r)).collect::<Result<Vec<_>, _>>();
            state.push_recent(RecentRow { ts: times.value(r), args: args.map_err(&expr_err)? });
        }
        // Sliding MIN/MAX: the frame's rows again, oldest first.
        let frame_start = times.len() - state.in_frame;
        for call in &self.calls.calls {
            let Call::Aggregate { function, slots: s, accumulator } = call else { continue };
            if self.calls.replays(function) {
                let values: Vec<ArrayRef> =
                    slots[s.clone()].iter().map(|c| c.slice(frame_start, state.in_frame)).collect();
                state.accumulators[*accumulator].update_batch(&values).map_err(&expr_err)?;
            }
        }
        Ok(())
    }
}
