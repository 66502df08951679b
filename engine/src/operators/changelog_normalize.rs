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
//! state is refreshed, which applies here once Eddy has state TTL.
//!
//! Rows are stored compactly: each as the bytes of an Arrow `RowConverter` over all columns,
//! keyed by the row encoding of its key columns, and decoded back into one batch per input
//! batch. The state grows with the number of distinct live keys (deleted keys are removed);
//! `table.exec.state.ttl` is what will bound it (not built yet). Watermarks pass through:
//! the operator has no timers.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int8Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, RowConverter, SortField};
use eddy_connectors::RowKind;
use serde::{Deserialize, Serialize};

use super::snapshot::{from_meta, malformed, part_columns, to_meta, Packer, Part};
use super::{OperatorContext, StreamOperator};
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
    last: HashMap<Box<[u8]>, OwnedRow>,
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
            last: HashMap::new(),
        })
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
    last: Part,
}

impl ChangelogNormalizeOperator {
    fn snapshot(&self) -> Result<StateSnapshot> {
        let arrow_err = self.arrow_err();
        // In any order: each key has one row, and the order of keys never shows.
        let columns = self.row_encoder.convert_rows(self.last.values().map(|r| r.row())).map_err(&arrow_err)?;
        let mut packer = Packer::default();
        let last = packer.add(columns, self.last.len()).map_err(&arrow_err)?;
        let state = NormalizeState { last };
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
        let mut last = HashMap::with_capacity(rows.num_rows());
        for (key, row) in keys.iter().zip(rows.iter()) {
            if last.insert(Box::from(key.data()), row.owned()).is_some() {
                return Err(malformed(&name, "two rows of one key"));
            }
        }
        self.last = last;
        Ok(())
    }
}

impl StreamOperator for ChangelogNormalizeOperator {
    fn name(&self) -> String {
        format!("ChangelogNormalize[key=[{}]]", self.spec.key_names.join(", "))
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
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
                match self.last.get_mut(key) {
                    None => {
                        emitted.push(row.owned());
                        kinds.push(RowKind::Insert.code());
                        self.last.insert(key.into(), row.owned());
                    }
                    Some(old) if old.row() == row => {}
                    Some(old) => {
                        let new = row.owned();
                        emitted.push(std::mem::replace(old, new.clone()));
                        kinds.push(RowKind::UpdateBefore.code());
                        emitted.push(new);
                        kinds.push(RowKind::UpdateAfter.code());
                    }
                }
            } else if let Some(old) = self.last.remove(key) {
                emitted.push(old);
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

    use super::*;
    use crate::metrics::LateRowCounter;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn operator() -> ChangelogNormalizeOperator {
        let spec = ChangelogNormalizeSpec { keys: vec![1], key_names: vec!["id".into()] };
        let ctx = OperatorContext {
            input_schema: schema(),
            output_schema: schema(),
            late_rows: LateRowCounter::detached(),
            state_ttl: None,
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
    }
}
