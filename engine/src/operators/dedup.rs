//! Event-time deduplication keeping each key's first row:
//! `ROW_NUMBER() OVER (PARTITION BY k ORDER BY rowtime ASC) = 1` on an append-only stream,
//! which Flink plans as `Deduplicate(keep=[FirstRow], order=[ROWTIME], outputInsertOnly=[true])`
//! and runs with `RowTimeDeduplicateKeepFirstRowFunction`. Its behaviour, reproduced here:
//!
//! * a row with `rowtime < watermark` is late: dropped and counted (a row exactly at the
//!   watermark is not late);
//! * otherwise, once a key's row has been emitted, every later row of the key is ignored
//!   (not counted: it is not late, just not first);
//! * otherwise the row replaces the key's waiting row only if its rowtime is strictly
//!   smaller, so on equal rowtimes the first arrived wins;
//! * the waiting row is emitted, append-only, when the watermark reaches its rowtime (an
//!   event-time timer at `rowtime`), and the key is marked emitted, forever by default.
//!
//! With `table.exec.state.ttl` (see `operators::ttl`) the emitted mark expires once it was
//! set the TTL or more ago in processing time (rows of an emitted key write nothing, so
//! they do not keep it alive); a later row of the key is then first again and emitted
//! again, as in Flink. Waiting rows do not expire: like a window's rows, they are freed
//! when the watermark reaches them, and expiring one would lose its key's first row.
//!
//! Rows are buffered as the Arrow batches they came in; only the index of each key's
//! waiting row is kept per key, and emitted rows are gathered with one `interleave` per
//! column.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{Int64Type, SchemaRef, UInt64Type};
use arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use super::memory::{btree_bytes, hash_map_bytes, shrink_if_sparse};
use super::snapshot::{from_meta, malformed, part_columns, to_meta, Packer, Part};
use super::ttl::{age_column, written_at, KeyExpiry, WriteId};
use super::windowing::{effective_watermark, event_times, require_append_only, BufferedRows, RowRef};
use super::{KeyHasher, OperatorContext, StreamOperator};
use crate::checkpoint::StateSnapshot;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message, Timestamp, Watermark};
use crate::metrics::LateRowCounter;
use eddy_sql::plan::DeduplicateSpec;

/// Keeps the first row per key in event time.
pub struct DeduplicateOperator {
    spec: DeduplicateSpec,
    schema: SchemaRef,
    input_columns: usize,
    late_rows: LateRowCounter,
    watermark: Watermark,
    /// Encodes the keys to bytes; `None` without keys (one key for all rows).
    key_encoder: Option<RowConverter>,
    /// Per key, its row waiting for the watermark.
    waiting: HashMap<Box<[u8]>, Waiting, KeyHasher>,
    /// Waiting rows by (rowtime, arrival sequence): Flink's event-time timers, in firing order.
    timers: BTreeMap<(Timestamp, u64), Box<[u8]>>,
    /// Keys whose row has been emitted, with their write in `expiry` (0 without TTL).
    emitted: HashMap<Box<[u8]>, WriteId, KeyHasher>,
    /// With `table.exec.state.ttl`: the emitted keys in the order they were emitted.
    expiry: Option<KeyExpiry>,
    /// Arrival sequence of the next row.
    sequence: u64,
    rows: BufferedRows,
    /// Bytes of the keys held in `waiting`, `timers` and `emitted` (for `state_bytes`).
    key_bytes: usize,
}

struct Waiting {
    rowtime: Timestamp,
    sequence: u64,
    row: RowRef,
}

impl DeduplicateOperator {
    /// A deduplication for `spec`, emitting `ctx.output_schema`: the input columns, plus
    /// the rank (always 1) as a last Int64 column when `spec.emit_rank`.
    pub fn new(spec: DeduplicateSpec, ctx: OperatorContext) -> Result<Self> {
        let input_columns = ctx.input_schema.fields().len();
        let expected = input_columns + usize::from(spec.emit_rank);
        if ctx.output_schema.fields().len() != expected || spec.time_column >= input_columns {
            return Err(EngineError::Plan(format!(
                "deduplication: output has {} columns for {input_columns} input columns{}",
                ctx.output_schema.fields().len(),
                if spec.emit_rank { " and the rank" } else { "" }
            )));
        }
        let key_encoder = if spec.keys.is_empty() {
            None
        } else {
            let fields = spec
                .keys
                .iter()
                .map(|k| k.expr.data_type(&ctx.input_schema).map(SortField::new))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|source| EngineError::Expression { operator: "Deduplicate".into(), source })?;
            Some(
                RowConverter::new(fields)
                    .map_err(|source| EngineError::Arrow { operator: "Deduplicate".into(), source })?,
            )
        };
        Ok(Self {
            spec,
            schema: ctx.output_schema,
            input_columns,
            late_rows: ctx.late_rows,
            watermark: Watermark::MIN,
            key_encoder,
            waiting: HashMap::default(),
            timers: BTreeMap::new(),
            emitted: HashMap::default(),
            expiry: ctx.state_ttl.map(KeyExpiry::new),
            sequence: 0,
            rows: BufferedRows::default(),
            key_bytes: 0,
        })
    }

    /// Reads processing time (for the state TTL) from `clock`.
    #[cfg(test)]
    fn set_clock(&mut self, clock: super::ttl::Clock) {
        if let Some(e) = &mut self.expiry {
            e.set_clock(clock);
        }
    }

    /// Drops the emitted marks that expired (state TTL).
    fn expire(&mut self) {
        let Some(expiry) = &mut self.expiry else { return };
        let now = expiry.now();
        let mut dropped = false;
        while let Some(key) = expiry.pop_expired(now) {
            if let Some((key, _)) = self.emitted.remove_entry(&key) {
                self.key_bytes = self.key_bytes.saturating_sub(key.len());
            }
            dropped = true;
        }
        if dropped {
            shrink_if_sparse(&mut self.emitted);
        }
    }

    /// Marks `key` emitted (at `now`, for the state TTL).
    fn mark_emitted(&mut self, key: Box<[u8]>, now: Option<std::time::Instant>) {
        let previous = self.emitted.get(&key).copied();
        let write = match (&mut self.expiry, now) {
            (Some(e), Some(now)) => e.write(&key, previous, now),
            _ => 0,
        };
        if previous.is_some() {
            // The key stays; this copy is dropped.
            self.key_bytes = self.key_bytes.saturating_sub(key.len());
        }
        self.emitted.insert(key, write);
    }

    fn arrow_err(&self) -> impl Fn(arrow::error::ArrowError) -> EngineError {
        let operator = self.name();
        move |source| EngineError::Arrow { operator: operator.clone(), source }
    }

    /// The waiting rows whose rowtime the watermark has reached, in timer order; their
    /// keys become emitted.
    fn take_due(&mut self, wm: Watermark) -> Vec<RowRef> {
        let now = self.expiry.as_ref().map(KeyExpiry::now);
        let mut due = Vec::new();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > wm.0 {
                break;
            }
            let key = entry.remove();
            if let Some(w) = self.waiting.remove(&key) {
                self.key_bytes = self.key_bytes.saturating_sub(key.len());
                due.push(w.row);
            }
            self.mark_emitted(key, now);
        }
        if !due.is_empty() {
            shrink_if_sparse(&mut self.waiting);
        }
        due
    }
}

/// A checkpoint of the deduplication (its bulk parts: see [`DeduplicateOperator::snapshot`]).
#[derive(Serialize, Deserialize)]
struct DedupState {
    watermark: i64,
    /// Arrival sequence of the next row (ties between equal rowtimes fire in arrival order).
    sequence: u64,
    /// The waiting rows in timer order: the input columns, then the key columns, the
    /// rowtime and the arrival sequence.
    waiting: Option<Part>,
    /// The keys whose row was emitted, as key columns (without keys: 0 or 1 row); with
    /// state TTL, oldest mark first.
    emitted: Part,
    /// With state TTL: per emitted key, the age of its mark in ms (`operators::ttl`).
    #[serde(default)]
    emitted_ages: Option<Part>,
}

impl DeduplicateOperator {
    /// Keys as their columns (`RowConverter` bytes are not stable across Arrow releases).
    fn decode_keys<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        super::snapshot::key_columns(self.key_encoder.as_ref(), keys).map_err(self.arrow_err())
    }

    /// Key columns back to bytes, one per row (`rows` empty keys without keys).
    fn encode_keys(&self, columns: &[ArrayRef], rows: usize) -> Result<Vec<Box<[u8]>>> {
        super::snapshot::key_bytes(self.key_encoder.as_ref(), columns, rows).map_err(self.arrow_err())
    }

    fn snapshot(&self) -> Result<StateSnapshot> {
        let arrow_err = self.arrow_err();
        let mut packer = Packer::default();
        let mut refs = Vec::with_capacity(self.timers.len());
        let mut keys = Vec::with_capacity(self.timers.len());
        let mut rowtimes = Vec::with_capacity(self.timers.len());
        let mut sequences = Vec::with_capacity(self.timers.len());
        for ((rowtime, sequence), key) in &self.timers {
            let Some(w) = self.waiting.get(key) else { continue };
            refs.push(w.row);
            keys.push(&**key);
            rowtimes.push(*rowtime);
            sequences.push(*sequence);
        }
        let waiting = if refs.is_empty() {
            None
        } else {
            let mut columns = (0..self.input_columns)
                .map(|c| self.rows.gather(c, &refs))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(&arrow_err)?;
            columns.extend(self.decode_keys(keys)?);
            columns.push(Arc::new(Int64Array::from(rowtimes)));
            columns.push(Arc::new(UInt64Array::from(sequences)));
            Some(packer.add(columns, refs.len()).map_err(&arrow_err)?)
        };
        let (emitted_keys, ages): (Vec<&[u8]>, _) = match &self.expiry {
            Some(e) => {
                let (keys, ages): (Vec<&[u8]>, Vec<_>) = e.oldest_first(e.now()).unzip();
                (keys, Some(age_column(ages)))
            }
            None => (self.emitted.keys().map(|k| &**k).collect(), None),
        };
        let rows = emitted_keys.len();
        let emitted = packer.add(self.decode_keys(emitted_keys)?, rows).map_err(&arrow_err)?;
        let emitted_ages = match ages {
            Some(ages) => Some(packer.add(vec![ages], rows).map_err(&arrow_err)?),
            None => None,
        };
        let state = DedupState { watermark: self.watermark.0, sequence: self.sequence, waiting, emitted, emitted_ages };
        Ok(StateSnapshot { meta: to_meta(&self.name(), &state)?, batches: packer.finish().map_err(&arrow_err)? })
    }

    fn restore(&mut self, snapshot: StateSnapshot) -> Result<()> {
        let name = self.name();
        let state: DedupState = from_meta(&name, snapshot.meta)?;
        let key_count = self.spec.keys.len();
        if self.key_encoder.is_none() && state.emitted.rows > 1 {
            return Err(malformed(&name, "several emitted keys without keys"));
        }
        let emitted_keys = part_columns(&name, &snapshot.batches, state.emitted, key_count)?;
        let emitted_keys = self.encode_keys(&emitted_keys, state.emitted.rows)?;
        let ages = match state.emitted_ages {
            Some(part) if part.rows == emitted_keys.len() => {
                let column = part_columns(&name, &snapshot.batches, part, 1)?;
                let Some(ages) = column[0].as_primitive_opt::<UInt64Type>().cloned() else {
                    return Err(malformed(&name, "ages of another type"));
                };
                Some(ages)
            }
            Some(_) => return Err(malformed(&name, "not one age per emitted key")),
            None => None,
        };
        // With state TTL, the marks are taken as set as long before now as they were
        // before the snapshot (a snapshot without ages: now).
        if let Some(e) = &mut self.expiry {
            e.clear();
        }
        let now = self.expiry.as_ref().map(KeyExpiry::now);
        let mut emitted = HashMap::with_capacity_and_hasher(emitted_keys.len(), KeyHasher::default());
        let mut key_bytes = 0;
        for (i, key) in emitted_keys.into_iter().enumerate() {
            let write = match (&mut self.expiry, now) {
                (Some(e), Some(now)) => {
                    let age = ages.as_ref().map_or(0, |a| a.value(i));
                    e.write(&key, None, written_at(now, age))
                }
                _ => 0,
            };
            key_bytes += key.len();
            if emitted.insert(key, write).is_some() {
                return Err(malformed(&name, "a key emitted twice"));
            }
        }
        let mut rows = BufferedRows::default();
        let mut waiting = HashMap::default();
        let mut timers = BTreeMap::new();
        if let Some(part) = state.waiting {
            let mut columns = part_columns(&name, &snapshot.batches, part, self.input_columns + key_count + 2)?;
            let mut rest = columns.split_off(self.input_columns);
            let (Some(rowtimes), Some(sequences)) = (
                rest[key_count].as_primitive_opt::<Int64Type>().cloned(),
                rest[key_count + 1].as_primitive_opt::<UInt64Type>().cloned(),
            ) else {
                return Err(malformed(&name, "rowtimes or sequences of another type"));
            };
            rest.truncate(key_count);
            let keys = self.encode_keys(&rest, part.rows)?;
            let chunk = rows.push(columns);
            for (row, key) in keys.into_iter().enumerate() {
                let (rowtime, sequence) = (rowtimes.value(row), sequences.value(row));
                let row = u32::try_from(row).map_err(|_| malformed(&name, "too many waiting rows"))?;
                key_bytes += 2 * key.len();
                timers.insert((rowtime, sequence), key.clone());
                if waiting.insert(key, Waiting { rowtime, sequence, row: (chunk, row) }).is_some() {
                    return Err(malformed(&name, "two waiting rows of one key"));
                }
                rows.acquire(chunk);
            }
            rows.free_if_unused(chunk);
        }
        self.watermark = Watermark(state.watermark);
        self.sequence = state.sequence;
        self.emitted = emitted;
        self.waiting = waiting;
        self.timers = timers;
        self.rows = rows;
        self.key_bytes = key_bytes;
        Ok(())
    }
}

impl StreamOperator for DeduplicateOperator {
    fn name(&self) -> String {
        let keys: Vec<&str> = self.spec.keys.iter().map(|k| k.display.as_str()).collect();
        format!("Deduplicate[keep=[FirstRow], key=[{}], order=[ROWTIME]]", keys.join(", "))
    }

    fn process_batch(&mut self, batch: Batch, _out: &mut Vec<Message>) -> Result<()> {
        require_append_only(&batch, &self.name())?;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        self.expire();
        let arrow_err = self.arrow_err();
        let operator = self.name();
        let times = event_times(batch.data.column(self.spec.time_column).as_ref()).map_err(&arrow_err)?;
        let encoded = match &self.key_encoder {
            Some(enc) => {
                let keys = self
                    .spec
                    .keys
                    .iter()
                    .map(|k| k.expr.evaluate(&batch.data).and_then(|v| v.into_array(n)))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|source| EngineError::Expression { operator: operator.clone(), source })?;
                Some(enc.convert_columns(&keys).map_err(&arrow_err)?)
            }
            None => None,
        };
        let chunk = self.rows.push(batch.data.columns().to_vec());
        let mut late = 0;
        for row in 0..n {
            // A NULL rowtime cannot be ordered; such rows are dropped like Flink's window
            // TVFs drop them.
            if times.is_null(row) {
                continue;
            }
            let rowtime = times.value(row);
            let sequence = self.sequence;
            self.sequence += 1;
            if rowtime < effective_watermark(&batch, row, self.watermark) {
                late += 1;
                continue;
            }
            let key: &[u8] = encoded.as_ref().map(|k| k.row(row).data()).unwrap_or(&[]);
            if self.emitted.contains_key(key) {
                continue;
            }
            let replaced = match self.waiting.get(key) {
                // Strictly earlier only: on a tie the row that came first stays.
                Some(w) if rowtime >= w.rowtime => continue,
                Some(w) => Some((w.rowtime, w.sequence, w.row.0)),
                None => None,
            };
            let key: Box<[u8]> = key.into();
            if replaced.is_none() {
                // A new key in `waiting` and in `timers`; a replaced one keeps its key in
                // `waiting` and changes its timer.
                self.key_bytes += 2 * key.len();
            }
            self.timers.insert((rowtime, sequence), key.clone());
            self.waiting.insert(key, Waiting { rowtime, sequence, row: (chunk, row as u32) });
            // Acquired before the replaced row is released: when both are of this chunk
            // and it held no other row, releasing first would free it.
            self.rows.acquire(chunk);
            if let Some((old_time, old_sequence, old_chunk)) = replaced {
                self.timers.remove(&(old_time, old_sequence));
                self.rows.release(old_chunk);
            }
        }
        self.rows.free_if_unused(chunk);
        self.late_rows.add(late);
        Ok(())
    }

    fn handle_watermark(&mut self, wm: Watermark, out: &mut Vec<Message>) -> Result<()> {
        self.watermark = self.watermark.max(wm);
        self.expire();
        let due = self.take_due(self.watermark);
        if !due.is_empty() {
            let arrow_err = self.arrow_err();
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
            for c in 0..self.input_columns {
                columns.push(self.rows.gather(c, &due).map_err(&arrow_err)?);
            }
            if self.spec.emit_rank {
                let ranks: ArrayRef = Arc::new(Int64Array::from(vec![1i64; due.len()]));
                match self.schema.fields().last() {
                    Some(f) if f.data_type() != ranks.data_type() => {
                        columns.push(cast(&ranks, f.data_type()).map_err(&arrow_err)?)
                    }
                    _ => columns.push(ranks),
                }
            }
            let data = RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(&arrow_err)?;
            for (chunk, _) in &due {
                self.rows.release(*chunk);
            }
            out.push(Message::Data(Batch::append(data)));
        }
        out.push(Message::Watermark(wm));
        Ok(())
    }

    /// Buffered rows, the keys of waiting rows (twice: by key and in timer order) and of
    /// emitted ones, and the TTL order.
    fn state_bytes(&self) -> usize {
        self.rows.bytes()
            + self.key_bytes
            + hash_map_bytes(&self.waiting)
            + hash_map_bytes(&self.emitted)
            + btree_bytes::<(Timestamp, u64), Box<[u8]>>(self.timers.len())
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
mod tests {
    use super::*;
    use arrow::array::{AsArray, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit, TimestampMillisecondType};
    use datafusion::physical_expr::expressions::Column;
    use eddy_sql::plan::ExprSpec;
    use std::time::Duration;

    use crate::operators::ttl::ManualClock;

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn operator(emit_rank: bool) -> (DeduplicateOperator, LateRowCounter) {
        operator_with_ttl(emit_rank, None)
    }

    fn operator_with_ttl(emit_rank: bool, state_ttl: Option<Duration>) -> (DeduplicateOperator, LateRowCounter) {
        let input = input_schema();
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        if emit_rank {
            fields.push(Field::new("rownum", DataType::Int64, false));
        }
        let spec = DeduplicateSpec {
            keys: vec![ExprSpec { expr: Arc::new(Column::new("k", 0)), display: "k".into() }],
            time_column: 1,
            emit_rank,
        };
        let late_rows = LateRowCounter::detached();
        let ctx = OperatorContext {
            input_schema: input,
            output_schema: Arc::new(Schema::new(fields)),
            late_rows: late_rows.clone(),
            state_ttl,
        };
        (DeduplicateOperator::new(spec, ctx).expect("operator"), late_rows)
    }

    /// Rows (k, ts, v).
    fn batch(rows: &[(&str, i64, i64)]) -> Batch {
        let data = RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(TimestampMillisecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
            ],
        )
        .expect("batch");
        Batch::append(data)
    }

    /// (k, ts, v, rank or 0).
    fn rows_of(out: &[Message]) -> Vec<(String, i64, i64, i64)> {
        let mut rows = Vec::new();
        for m in out {
            let Message::Data(b) = m else { continue };
            let d = &b.data;
            let keys = d.column(0).as_string::<i32>();
            let ts = d.column(1).as_primitive::<TimestampMillisecondType>();
            let vs = d.column(2).as_primitive::<Int64Type>();
            let ranks = d.columns().get(3).map(|c| c.as_primitive::<Int64Type>().clone());
            for r in 0..d.num_rows() {
                let rank = ranks.as_ref().map_or(0, |k| k.value(r));
                rows.push((keys.value(r).to_string(), ts.value(r), vs.value(r), rank));
            }
        }
        rows
    }

    fn row(k: &str, ts: i64, v: i64, rank: i64) -> (String, i64, i64, i64) {
        (k.to_string(), ts, v, rank)
    }

    #[test]
    fn earliest_row_wins_even_when_it_arrives_second() {
        let (mut op, late) = operator(true);
        let mut out = Vec::new();
        // a's earliest row (7) arrives after a later one (10), within the watermark delay.
        op.process_batch(batch(&[("a", 10, 1), ("b", 9, 2)]), &mut out).expect("process");
        op.process_batch(batch(&[("a", 7, 3)]), &mut out).expect("process");
        op.handle_watermark(Watermark(8), &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![row("a", 7, 3, 1)]);
        assert!(matches!(out.last(), Some(Message::Watermark(Watermark(8)))));
        out.clear();
        // b@8: at the watermark, not late, and earlier than b's waiting 9: replaces it.
        // b@6: behind the watermark: late. a@20: a was emitted: ignored, not counted.
        // c@15 twice: the first arrived wins the tie.
        op.process_batch(batch(&[("b", 8, 4), ("b", 6, 5), ("a", 20, 6), ("c", 15, 7), ("c", 15, 8)]), &mut out)
            .expect("process");
        op.handle_watermark(Watermark::MAX, &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![row("b", 8, 4, 1), row("c", 15, 7, 1)]);
        assert_eq!(late.get(), 1);
    }

    #[test]
    fn without_rank_and_with_arrival_watermarks() {
        let (mut op, late) = operator(false);
        let mut out = Vec::new();
        // The second row arrived under a watermark of 12: 11 is late for it.
        let mut input = batch(&[("a", 12, 1), ("a", 11, 2), ("b", 12, 3)]);
        input.arrival_watermarks = Some(Int64Array::from(vec![None, Some(12), Some(12)]));
        op.process_batch(input, &mut out).expect("process");
        op.handle_watermark(Watermark(12), &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![row("a", 12, 1, 0), row("b", 12, 3, 0)]);
        assert_eq!(late.get(), 1);
    }

    #[test]
    fn a_waiting_row_replaced_by_one_of_its_own_batch_stays_buffered() {
        let (mut op, _) = operator(false);
        let mut out = Vec::new();
        op.process_batch(batch(&[("a", 10, 1), ("a", 7, 2)]), &mut out).expect("process");
        op.handle_watermark(Watermark::MAX, &mut out).expect("watermark");
        assert_eq!(rows_of(&out), vec![row("a", 7, 2, 0)]);
    }

    /// Input covering every case: replaced waiting rows, ties, late rows, rows of emitted
    /// keys, arrival watermarks.
    fn dedup_input() -> Vec<Message> {
        let mut arriving = batch(&[("c", 30, 9), ("d", 29, 10), ("c", 28, 11)]);
        arriving.arrival_watermarks = Some(Int64Array::from(vec![None, Some(29), Some(29)]));
        vec![
            Message::Data(batch(&[("a", 10, 1), ("b", 9, 2), ("a", 7, 3)])),
            Message::Data(batch(&[("b", 9, 4), ("c", 15, 5)])),
            Message::Watermark(Watermark(8)),
            Message::Data(batch(&[("b", 8, 6), ("b", 6, 7), ("a", 20, 8), ("c", 15, 9)])),
            Message::Watermark(Watermark(12)),
            Message::Data(arriving),
            Message::Watermark(Watermark(28)),
            Message::Data(batch(&[("e", 40, 12), ("b", 50, 13)])),
            Message::Watermark(Watermark::MAX),
        ]
    }

    #[test]
    fn restores_at_every_message() {
        for emit_rank in [true, false] {
            let out = crate::operators::snapshot::assert_restores_everywhere(|| operator(emit_rank).0, &dedup_input());
            assert_eq!(rows_of(&out).len(), 5);
        }
        // With a TTL nothing reaches (the snapshot then has the marks' ages).
        let make = || operator_with_ttl(true, Some(Duration::from_secs(3600))).0;
        let out = crate::operators::snapshot::assert_restores_everywhere(make, &dedup_input());
        assert_eq!(rows_of(&out).len(), 5);
    }

    #[test]
    fn restores_without_keys() {
        let make = || {
            let (op, late_rows) = operator(false);
            let spec = DeduplicateSpec { keys: Vec::new(), ..op.spec };
            let ctx =
                OperatorContext { input_schema: input_schema(), output_schema: op.schema, late_rows, state_ttl: None };
            DeduplicateOperator::new(spec, ctx).expect("operator")
        };
        let out = crate::operators::snapshot::assert_restores_everywhere(make, &dedup_input());
        assert_eq!(rows_of(&out), vec![row("a", 7, 3, 0)]);
    }

    #[test]
    fn state_bytes_follow_waiting_rows_and_emitted_keys() {
        let (mut op, _) = operator(false);
        let mut out = Vec::new();
        assert_eq!(op.state_bytes(), 0);
        op.process_batch(batch(&[("a", 10, 1), ("b", 11, 2)]), &mut out).expect("process");
        let two = op.state_bytes();
        assert!(two > 0);
        op.process_batch(batch(&[("c", 12, 3), ("d", 13, 4)]), &mut out).expect("process");
        let four = op.state_bytes();
        assert!(four > two, "{four} > {two}");
        // Emitted: the buffered rows are freed, the marks of the four keys stay.
        op.handle_watermark(Watermark::MAX, &mut out).expect("watermark");
        let marks = op.state_bytes();
        assert!(0 < marks && marks < four, "0 < {marks} < {four}");
        // The running figure matches the one a restore counts from scratch.
        let snapshot = op.snapshot_state().expect("snapshot").expect("state");
        let (mut restored, _) = operator(false);
        restored.restore_state(snapshot).expect("restore");
        assert_eq!(restored.key_bytes, op.key_bytes);
    }

    #[test]
    fn with_state_ttl_an_expired_key_is_first_again() {
        let clock = ManualClock::new();
        let ttl = Some(Duration::from_secs(10));
        let run = |state_ttl: Option<Duration>| {
            let (mut op, _) = operator_with_ttl(false, state_ttl);
            op.set_clock(clock.clock());
            let mut emitted = Vec::new();
            let mut step = |op: &mut DeduplicateOperator, rows: &[(&str, i64, i64)], wm: i64| {
                let mut out = Vec::new();
                op.process_batch(batch(rows), &mut out).expect("process");
                op.handle_watermark(Watermark(wm), &mut out).expect("watermark");
                emitted.extend(rows_of(&out));
            };
            step(&mut op, &[("a", 10, 1), ("b", 10, 2)], 10);
            clock.advance(Duration::from_secs(6));
            // Rows of emitted keys write nothing: they do not keep the marks alive.
            step(&mut op, &[("a", 20, 3)], 20);
            clock.advance(Duration::from_secs(4));
            step(&mut op, &[("a", 30, 4), ("c", 30, 5)], 30);
            let before = op.state_bytes();
            clock.advance(Duration::from_secs(20));
            step(&mut op, &[], 40);
            let keys_left = op.emitted.len() + op.expiry.as_ref().map_or(0, KeyExpiry::len);
            (emitted, before, op.state_bytes(), keys_left)
        };
        // 10 s after a and b were emitted, their marks expire: a's next row is first again.
        let (emitted, before, after, keys_left) = run(ttl);
        assert_eq!(emitted, vec![row("a", 10, 1, 0), row("b", 10, 2, 0), row("a", 30, 4, 0), row("c", 30, 5, 0)]);
        assert!(after < before, "{after} < {before}");
        assert_eq!(keys_left, 0);
        // Without TTL, nothing changes.
        let (emitted, before, after, keys_left) = run(None);
        assert_eq!(emitted, vec![row("a", 10, 1, 0), row("b", 10, 2, 0), row("c", 30, 5, 0)]);
        assert_eq!((after, keys_left), (before, 3));
    }

    #[test]
    fn state_ttl_ages_survive_a_restore() {
        let clock = ManualClock::new();
        let make = || {
            let (mut op, _) = operator_with_ttl(false, Some(Duration::from_secs(10)));
            op.set_clock(clock.clock());
            op
        };
        let mut op = make();
        let mut out = Vec::new();
        op.process_batch(batch(&[("a", 10, 1)]), &mut out).expect("process");
        op.handle_watermark(Watermark(10), &mut out).expect("watermark");
        clock.advance(Duration::from_secs(5));
        op.process_batch(batch(&[("b", 20, 2)]), &mut out).expect("process");
        op.handle_watermark(Watermark(20), &mut out).expect("watermark");
        clock.advance(Duration::from_secs(2));
        let snapshot = op.snapshot_state().expect("snapshot").expect("state");
        let mut restored = make();
        restored.restore_state(crate::operators::snapshot::through_files(snapshot)).expect("restore");
        assert_eq!(restored.key_bytes, op.key_bytes);
        // a's mark is 10 s old, b's 5 s: only a is first again, in both.
        clock.advance(Duration::from_secs(3));
        for op in [&mut op, &mut restored] {
            let mut out = Vec::new();
            op.process_batch(batch(&[("a", 30, 3), ("b", 30, 4)]), &mut out).expect("process");
            op.handle_watermark(Watermark(30), &mut out).expect("watermark");
            assert_eq!(rows_of(&out), vec![row("a", 30, 3, 0)]);
        }
    }
}
