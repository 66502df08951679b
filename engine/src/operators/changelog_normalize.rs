//! ChangelogNormalize: an upsert stream (Flink's `upsert-kafka` source) turned into a proper
//! changelog, as Flink's `ChangelogNormalize(key=[..])`, which runs
//! `ProcTimeDeduplicateKeepLastRowFunction` on a changelog input
//! (`DeduplicateFunctionHelper.processLastRowOnChangelog`).
//!
//! The state is the last row per key. Each input row, in order:
//!
//! | input                 | key's last row    | output                 | last row after |
//! |-----------------------|-------------------|------------------------|----------------|
//! | `+I`/`+U` row         | none              | `+I` row               | row            |
//! | `+I`/`+U` row         | equal to row      | nothing                | row            |
//! | `+I`/`+U` row         | old               | `-U` old, `+U` row     | row            |
//! | `-D`/`-U` (tombstone) | old               | `-D` old               | none           |
//! | `-D`/`-U` (tombstone) | none              | nothing                | none           |
//!
//! A delete outputs the stored row, not its input: a Kafka tombstone carries only the key
//! columns. Dropping a row equal to the last one is Flink's behaviour with state TTL off
//! (the default); with `table.exec.state.ttl` Flink emits `-U`/`+U` anyway so downstream
//! state is refreshed, and so does this operator.
//!
//! With `table.exec.state.ttl` (see `operators::ttl`) a key's last row is dropped, silently,
//! once it was last written (by an insert or update of the key) the TTL or more ago in
//! processing time; the key's next row is then a `+I`, as in Flink (downstream still holds
//! the old row: that is what TTL trades for bounded state).
//!
//! Rows are stored compactly: each as the bytes of an Arrow `RowConverter` over all columns,
//! keyed by the row encoding of its key columns, and decoded back into one batch per input
//! batch. The state grows with the number of distinct live keys (deleted keys are removed);
//! `table.exec.state.ttl` bounds it. Watermarks pass through: the operator has no timers.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int8Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{SchemaRef, UInt64Type};
use arrow::row::{OwnedRow, RowConverter, SortField};
use eddy_connectors::RowKind;
use serde::{Deserialize, Serialize};

use super::memory::{hash_map_bytes, shrink_if_sparse};
use super::snapshot::{from_meta, malformed, part_columns, to_meta, Packer, Part};
use super::ttl::{age_column, written_at, KeyExpiry, WriteId};
use super::{KeyHasher, OperatorContext, StreamOperator};
use crate::checkpoint::StateSnapshot;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message};
use eddy_sql::plan::ChangelogNormalizeSpec;

/// Keeps the last row per key and emits the changes between them.
pub struct ChangelogNormalizeOperator {
    spec: ChangelogNormalizeSpec,
    schema: SchemaRef,
    /// Encodes the key columns.
    key_encoder: RowConverter,
    /// Encodes (and decodes) whole rows.
    row_encoder: RowConverter,
    /// Per key, its last row.
    last: HashMap<Box<[u8]>, Last, KeyHasher>,
    /// With `table.exec.state.ttl`: the keys in the order they were last written.
    expiry: Option<KeyExpiry>,
    /// Bytes of the keys and rows in `last` (for `state_bytes`).
    heap_bytes: usize,
}

/// A key's last row.
struct Last {
    row: OwnedRow,
    /// Its write in `expiry` (0 without TTL).
    write: WriteId,
}

/// What a key and its row hold on the heap.
fn entry_bytes(key: &[u8], row: &OwnedRow) -> usize {
    key.len() + row.row().data().len()
}

impl ChangelogNormalizeOperator {
    /// A normalization for `spec`; input and output have the same columns.
    pub fn new(spec: ChangelogNormalizeSpec, ctx: OperatorContext) -> Result<Self> {
        let name = format!("ChangelogNormalize[key=[{}]]", spec.key_names.join(", "));
        let input = &ctx.input_schema;
        if input.fields().len() != ctx.output_schema.fields().len() {
            return Err(EngineError::Plan(format!(
                "{name}: {} output columns for {} input columns",
                ctx.output_schema.fields().len(),
                input.fields().len()
            )));
        }
        if spec.keys.is_empty() || spec.keys.iter().any(|k| *k >= input.fields().len()) {
            return Err(EngineError::Plan(format!("{name}: key columns {:?} not in the input", spec.keys)));
        }
        let arrow_err = |source| EngineError::Arrow { operator: name.clone(), source };
        let key_fields = spec.keys.iter().map(|k| SortField::new(input.field(*k).data_type().clone())).collect();
        let row_fields = input.fields().iter().map(|f| SortField::new(f.data_type().clone())).collect();
        Ok(Self {
            key_encoder: RowConverter::new(key_fields).map_err(arrow_err)?,
            row_encoder: RowConverter::new(row_fields).map_err(arrow_err)?,
            spec,
            schema: ctx.output_schema,
            last: HashMap::default(),
            expiry: ctx.state_ttl.map(KeyExpiry::new),
            heap_bytes: 0,
        })
    }

    /// Reads processing time (for the state TTL) from `clock`.
    #[cfg(test)]
    fn set_clock(&mut self, clock: super::ttl::Clock) {
        if let Some(e) = &mut self.expiry {
            e.set_clock(clock);
        }
    }

    /// Drops the rows of the keys that expired (state TTL); returns the time now.
    fn expire(&mut self) -> Option<std::time::Instant> {
        let expiry = self.expiry.as_mut()?;
        let now = expiry.now();
        let mut dropped = false;
        while let Some(key) = expiry.pop_expired(now) {
            if let Some((key, last)) = self.last.remove_entry(&key) {
                self.heap_bytes = self.heap_bytes.saturating_sub(entry_bytes(&key, &last.row));
            }
            dropped = true;
        }
        if dropped {
            shrink_if_sparse(&mut self.last);
        }
        Some(now)
    }

    fn arrow_err(&self) -> impl Fn(arrow::error::ArrowError) -> EngineError {
        let operator = self.name();
        move |source| EngineError::Arrow { operator: operator.clone(), source }
    }

    /// The rows as a batch of the output schema.
    fn decode(&self, rows: &[OwnedRow]) -> Result<RecordBatch> {
        let arrow_err = self.arrow_err();
        let columns = self.row_encoder.convert_rows(rows.iter().map(|r| r.row())).map_err(&arrow_err)?;
        let columns = columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c) } else { cast(&c, f.data_type()) })
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()
            .map_err(&arrow_err)?;
        RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(arrow_err)
    }
}

/// A checkpoint of the normalization: the last row of every key, as input columns (the
/// keys are read back from their columns).
#[derive(Serialize, Deserialize)]
struct NormalizeState {
    /// With state TTL, oldest write first.
    last: Part,
    /// With state TTL: per row, the age of its write in ms (`operators::ttl`).
    #[serde(default)]
    ages: Option<Part>,
}

impl ChangelogNormalizeOperator {
    fn snapshot(&self) -> Result<StateSnapshot> {
        let arrow_err = self.arrow_err();
        // Without TTL in any order: each key has one row, and the order of keys never
        // shows. With TTL in last-write order, with ages.
        let (rows, ages) = match &self.expiry {
            Some(e) => {
                let mut rows = Vec::with_capacity(self.last.len());
                let mut ages = Vec::with_capacity(self.last.len());
                for (key, age) in e.oldest_first(e.now()) {
                    let Some(last) = self.last.get(key) else {
                        return Err(EngineError::Internal(format!("{}: a key to expire has no row", self.name())));
                    };
                    rows.push(last.row.row());
                    ages.push(age);
                }
                (rows, Some(age_column(ages)))
            }
            None => (self.last.values().map(|l| l.row.row()).collect(), None),
        };
        let count = rows.len();
        let columns = self.row_encoder.convert_rows(rows).map_err(&arrow_err)?;
        let mut packer = Packer::default();
        let last = packer.add(columns, count).map_err(&arrow_err)?;
        let ages = match ages {
            Some(ages) => Some(packer.add(vec![ages], count).map_err(&arrow_err)?),
            None => None,
        };
        let state = NormalizeState { last, ages };
        Ok(StateSnapshot { meta: to_meta(&self.name(), &state)?, batches: packer.finish().map_err(&arrow_err)? })
    }

    fn restore(&mut self, snapshot: StateSnapshot) -> Result<()> {
        let name = self.name();
        let arrow_err = self.arrow_err();
        let state: NormalizeState = from_meta(&name, snapshot.meta)?;
        let columns = part_columns(&name, &snapshot.batches, state.last, self.schema.fields().len())?;
        let rows = self.row_encoder.convert_columns(&columns).map_err(&arrow_err)?;
        let key_columns: Vec<ArrayRef> = self
            .spec
            .keys
            .iter()
            .map(|k| columns.get(*k).cloned().ok_or_else(|| malformed(&name, format!("no key column {k}"))))
            .collect::<Result<_>>()?;
        let keys = self.key_encoder.convert_columns(&key_columns).map_err(&arrow_err)?;
        let ages = match state.ages {
            Some(part) if part.rows == rows.num_rows() => {
                let column = part_columns(&name, &snapshot.batches, part, 1)?;
                let Some(ages) = column[0].as_primitive_opt::<UInt64Type>().cloned() else {
                    return Err(malformed(&name, "ages of another type"));
                };
                Some(ages)
            }
            Some(_) => return Err(malformed(&name, "not one age per row")),
            None => None,
        };
        // With state TTL, the rows are taken as written as long before now as they were
        // before the snapshot (a snapshot without ages: now).
        if let Some(e) = &mut self.expiry {
            e.clear();
        }
        let now = self.expiry.as_ref().map(KeyExpiry::now);
        let mut last = HashMap::with_capacity_and_hasher(rows.num_rows(), KeyHasher::default());
        let mut heap_bytes = 0;
        for (i, (key, row)) in keys.iter().zip(rows.iter()).enumerate() {
            let write = match (&mut self.expiry, now) {
                (Some(e), Some(now)) => {
                    e.write(key.data(), None, written_at(now, ages.as_ref().map_or(0, |a| a.value(i))))
                }
                _ => 0,
            };
            let row = row.owned();
            heap_bytes += entry_bytes(key.data(), &row);
            if last.insert(Box::from(key.data()), Last { row, write }).is_some() {
                return Err(malformed(&name, "two rows of one key"));
            }
        }
        self.last = last;
        self.heap_bytes = heap_bytes;
        Ok(())
    }
}

impl StreamOperator for ChangelogNormalizeOperator {
    fn name(&self) -> String {
        format!("ChangelogNormalize[key=[{}]]", self.spec.key_names.join(", "))
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        let now = self.expire();
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let arrow_err = self.arrow_err();
        let key_columns: Vec<ArrayRef> = self.spec.keys.iter().map(|k| Arc::clone(batch.data.column(*k))).collect();
        let keys = self.key_encoder.convert_columns(&key_columns).map_err(&arrow_err)?;
        let rows = self.row_encoder.convert_columns(batch.data.columns()).map_err(&arrow_err)?;
        let mut emitted: Vec<OwnedRow> = Vec::new();
        let mut kinds: Vec<i8> = Vec::new();
        for r in 0..n {
            let kind = match &batch.row_kinds {
                Some(k) if k.is_valid(r) => RowKind::from_code(k.value(r)).ok_or_else(|| {
                    EngineError::Plan(format!("{}: unknown row kind code {}", self.name(), k.value(r)))
                })?,
                _ => RowKind::Insert,
            };
            let key = keys.row(r).data();
            if kind.is_accumulate() {
                let row = rows.row(r);
                let ttl = self.expiry.as_mut().zip(now);
                match self.last.get_mut(key) {
                    None => {
                        let write = ttl.map_or(0, |(e, now)| e.write(key, None, now));
                        let row = row.owned();
                        self.heap_bytes += entry_bytes(key, &row);
                        emitted.push(row.clone());
                        kinds.push(RowKind::Insert.code());
                        self.last.insert(key.into(), Last { row, write });
                    }
                    // With TTL an equal row is a write too, and emitted as an update.
                    Some(old) if ttl.is_none() && old.row.row() == row => {}
                    Some(old) => {
                        if let Some((e, now)) = ttl {
                            old.write = e.write(key, Some(old.write), now);
                        }
                        let new = row.owned();
                        self.heap_bytes =
                            (self.heap_bytes + new.row().data().len()).saturating_sub(old.row.row().data().len());
                        emitted.push(std::mem::replace(&mut old.row, new.clone()));
                        kinds.push(RowKind::UpdateBefore.code());
                        emitted.push(new);
                        kinds.push(RowKind::UpdateAfter.code());
                    }
                }
            } else if let Some((key, old)) = self.last.remove_entry(key) {
                if let Some(e) = &mut self.expiry {
                    e.forget(old.write);
                }
                self.heap_bytes = self.heap_bytes.saturating_sub(entry_bytes(&key, &old.row));
                emitted.push(old.row);
                kinds.push(RowKind::Delete.code());
            }
        }
        if emitted.is_empty() {
            return Ok(());
        }
        let data = self.decode(&emitted)?;
        out.push(Message::Data(Batch { row_kinds: Some(Int8Array::from(kinds)), ..Batch::append(data) }));
        Ok(())
    }

    /// The keys and rows, their table, and the TTL order.
    fn state_bytes(&self) -> usize {
        self.heap_bytes + hash_map_bytes(&self.last) + self.expiry.as_ref().map_or(0, KeyExpiry::bytes)
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
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use std::time::Duration;

    use super::*;
    use crate::metrics::LateRowCounter;
    use crate::operators::ttl::ManualClock;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn operator() -> ChangelogNormalizeOperator {
        operator_with_ttl(None)
    }

    fn operator_with_ttl(state_ttl: Option<Duration>) -> ChangelogNormalizeOperator {
        let spec = ChangelogNormalizeSpec { keys: vec![1], key_names: vec!["id".into()] };
        let ctx = OperatorContext {
            input_schema: schema(),
            output_schema: schema(),
            late_rows: LateRowCounter::detached(),
            state_ttl,
        };
        ChangelogNormalizeOperator::new(spec, ctx).expect("operator")
    }

    /// Upsert rows (kind, name, id, v); a tombstone has only its key.
    fn batch(rows: &[(RowKind, Option<&str>, i64, Option<i64>)]) -> Batch {
        let data = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
            ],
        )
        .expect("batch");
        let kinds = Int8Array::from(rows.iter().map(|r| r.0.code()).collect::<Vec<_>>());
        Batch { row_kinds: Some(kinds), ..Batch::append(data) }
    }

    /// `+I[a, 1, 10]` per output row.
    fn changes(out: &[Message]) -> Vec<String> {
        let mut rows = Vec::new();
        for m in out {
            let Message::Data(b) = m else { continue };
            let kinds = b.row_kinds.as_ref().expect("a changelog");
            let names = b.data.column(0).as_string::<i32>();
            let ids = b.data.column(1).as_primitive::<Int64Type>();
            let vs = b.data.column(2).as_primitive::<Int64Type>();
            for r in 0..b.num_rows() {
                let kind = RowKind::from_code(kinds.value(r)).expect("kind");
                let name = if names.is_null(r) { "null".to_string() } else { names.value(r).to_string() };
                let v = if vs.is_null(r) { "null".to_string() } else { vs.value(r).to_string() };
                rows.push(format!("{kind}[{name}, {}, {v}]", ids.value(r)));
            }
        }
        rows
    }

    fn run(op: &mut ChangelogNormalizeOperator, b: Batch) -> Vec<String> {
        let mut out = Vec::new();
        op.process_batch(b, &mut out).expect("process");
        changes(&out)
    }

    #[test]
    fn upserts_and_tombstones_become_a_changelog() {
        use RowKind::{Delete as D, UpdateAfter as U};
        let mut op = operator();
        // First values of two keys, then an update of key 1 within the same batch.
        let out = run(
            &mut op,
            batch(&[(U, Some("a"), 1, Some(10)), (U, Some("b"), 2, Some(20)), (U, Some("a"), 1, Some(11))]),
        );
        assert_eq!(out, ["+I[a, 1, 10]", "+I[b, 2, 20]", "-U[a, 1, 10]", "+U[a, 1, 11]"]);
        // The same value again: nothing.
        assert!(run(&mut op, batch(&[(U, Some("a"), 1, Some(11))])).is_empty());
        // A tombstone (key only) deletes the full stored row; one for an absent key is ignored.
        let out = run(&mut op, batch(&[(D, None, 2, None), (D, None, 3, None), (D, None, 2, None)]));
        assert_eq!(out, ["-D[b, 2, 20]"]);
        // A deleted key comes back as an insert; NULL values are values.
        let out = run(&mut op, batch(&[(U, Some("b"), 2, None), (U, None, 2, None)]));
        assert_eq!(out, ["+I[b, 2, null]", "-U[b, 2, null]", "+U[null, 2, null]"]);
        // Watermarks pass through.
        let mut out = Vec::new();
        op.handle_watermark(crate::message::Watermark(5), &mut out).expect("watermark");
        assert!(matches!(out.as_slice(), [Message::Watermark(crate::message::Watermark(5))]));
    }

    #[test]
    fn rows_without_kinds_are_inserts_and_minus_u_deletes() {
        let mut op = operator();
        let mut plain = batch(&[(RowKind::Insert, Some("a"), 1, Some(1))]);
        plain.row_kinds = None;
        assert_eq!(run(&mut op, plain), ["+I[a, 1, 1]"]);
        // A lone -U (a retract stream's) removes the row, as in Flink.
        let out = run(&mut op, batch(&[(RowKind::UpdateBefore, Some("a"), 1, Some(1))]));
        assert_eq!(out, ["-D[a, 1, 1]"]);
    }

    #[test]
    fn restores_at_every_message() {
        use RowKind::{Delete as D, Insert as I, UpdateAfter as U, UpdateBefore as B};
        let input = vec![
            Message::Data(batch(&[(U, Some("a"), 1, Some(10)), (U, Some("b"), 2, Some(20)), (I, None, 3, None)])),
            Message::Data(batch(&[(U, Some("a"), 1, Some(11)), (U, Some("b"), 2, Some(20))])),
            Message::Watermark(crate::message::Watermark(5)),
            Message::Data(batch(&[(D, None, 2, None), (D, None, 4, None), (U, Some("c"), 4, Some(1))])),
            Message::Data(batch(&[(U, Some("b"), 2, None), (B, Some("a"), 1, Some(11)), (U, None, 3, Some(3))])),
            Message::Data(batch(&[(D, None, 1, None), (D, None, 2, None), (D, None, 3, None), (D, None, 4, None)])),
        ];
        let out = crate::operators::snapshot::assert_restores_everywhere(operator, &input);
        let deletes = changes(&out).iter().filter(|c| c.starts_with("-D")).count();
        assert_eq!(deletes, 5);
        // With a TTL nothing reaches (the snapshot then has the rows' ages).
        let make = || operator_with_ttl(Some(Duration::from_secs(3600)));
        let out = crate::operators::snapshot::assert_restores_everywhere(make, &input);
        let deletes = changes(&out).iter().filter(|c| c.starts_with("-D")).count();
        assert_eq!(deletes, 5);
    }

    #[test]
    fn state_bytes_follow_the_keys() {
        use RowKind::{Delete as D, UpdateAfter as U};
        let mut op = operator();
        assert_eq!(op.state_bytes(), 0);
        run(&mut op, batch(&[(U, Some("a"), 1, Some(10)), (U, Some("b"), 2, Some(20))]));
        let two = op.state_bytes();
        run(&mut op, batch(&[(U, Some("c"), 3, Some(30)), (U, Some("a long name"), 1, Some(11))]));
        let three = op.state_bytes();
        assert!(three > two && two > 0, "{three} > {two} > 0");
        run(&mut op, batch(&[(D, None, 1, None), (D, None, 2, None), (D, None, 3, None)]));
        assert!(op.state_bytes() < three);
        assert_eq!(op.heap_bytes, 0);
    }

    #[test]
    fn with_state_ttl_an_expired_key_is_inserted_again() {
        use RowKind::UpdateAfter as U;
        let clock = ManualClock::new();
        let run_with = |state_ttl: Option<Duration>| {
            let mut op = operator_with_ttl(state_ttl);
            op.set_clock(clock.clock());
            let mut out = run(&mut op, batch(&[(U, Some("a"), 1, Some(10)), (U, Some("b"), 2, Some(20))]));
            clock.advance(Duration::from_secs(6));
            // Key 1 written again (same value): its state lives on; key 2 is not written.
            out.extend(run(&mut op, batch(&[(U, Some("a"), 1, Some(10))])));
            clock.advance(Duration::from_secs(4));
            out.extend(run(&mut op, batch(&[(U, Some("a"), 1, Some(12)), (U, Some("b"), 2, Some(21))])));
            let before = op.state_bytes();
            clock.advance(Duration::from_secs(10));
            out.extend(run(&mut op, batch(&[(U, Some("c"), 3, Some(30))])));
            (out, before, op.state_bytes(), op.last.len())
        };
        // Key 2 expired 10 s after its last write: its next row is an insert. With TTL an
        // unchanged row is emitted as an update, as in Flink.
        let (out, before, after, keys) = run_with(Some(Duration::from_secs(10)));
        assert_eq!(
            out,
            [
                "+I[a, 1, 10]",
                "+I[b, 2, 20]",
                "-U[a, 1, 10]",
                "+U[a, 1, 10]",
                "-U[a, 1, 10]",
                "+U[a, 1, 12]",
                "+I[b, 2, 21]",
                "+I[c, 3, 30]"
            ]
        );
        assert_eq!(keys, 1, "only c is left");
        assert!(after < before, "{after} < {before}");
        // Without TTL, nothing expires and an unchanged row emits nothing.
        let (out, _, _, keys) = run_with(None);
        assert_eq!(
            out,
            [
                "+I[a, 1, 10]",
                "+I[b, 2, 20]",
                "-U[a, 1, 10]",
                "+U[a, 1, 12]",
                "-U[b, 2, 20]",
                "+U[b, 2, 21]",
                "+I[c, 3, 30]"
            ]
        );
        assert_eq!(keys, 3);
    }

    #[test]
    fn state_ttl_ages_survive_a_restore() {
        use RowKind::UpdateAfter as U;
        let clock = ManualClock::new();
        let make = || {
            let mut op = operator_with_ttl(Some(Duration::from_secs(10)));
            op.set_clock(clock.clock());
            op
        };
        let mut op = make();
        run(&mut op, batch(&[(U, Some("a"), 1, Some(10))]));
        clock.advance(Duration::from_secs(5));
        run(&mut op, batch(&[(U, Some("b"), 2, Some(20))]));
        clock.advance(Duration::from_secs(2));
        let snapshot = op.snapshot_state().expect("snapshot").expect("state");
        let mut restored = make();
        restored.restore_state(crate::operators::snapshot::through_files(snapshot)).expect("restore");
        assert_eq!(restored.heap_bytes, op.heap_bytes);
        // Key 1 was written 10 s ago, key 2 5 s ago: only key 1 is new again, in both.
        clock.advance(Duration::from_secs(3));
        for op in [&mut op, &mut restored] {
            let out = run(op, batch(&[(U, Some("a"), 1, Some(11)), (U, Some("b"), 2, Some(21))]));
            assert_eq!(out, ["+I[a, 1, 11]", "-U[b, 2, 20]", "+U[b, 2, 21]"]);
        }
    }
}
