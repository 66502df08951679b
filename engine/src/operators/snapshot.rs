//! What the stateful operators share to write their state into a [`StateSnapshot`] and
//! read it back.
//!
//! An operator's state is a small structure (watermarks, window ends, which rows belong to
//! what), kept as JSON in `meta`, and bulk rows and aggregate states, kept as Arrow arrays.
//! Operators hold their arrays in many small pieces (a partial aggregate per slice, a
//! result per window); each piece would be an Arrow IPC file of its own if it were a batch
//! of its own, so [`Packer`] appends pieces with the same column types into one batch and
//! `meta` refers to a piece as a [`Part`]: batch, first row, row count.
//!
//! Pieces are stored by value (decoded key columns, not `RowConverter` bytes): the row
//! format is not stable across Arrow releases, Arrow IPC is.

use std::fmt::Display;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// The error for a snapshot this operator cannot take: not one it made, or damaged.
pub(super) fn malformed(operator: &str, what: impl Display) -> EngineError {
    EngineError::Checkpoint(format!("{operator}: malformed state snapshot: {what}"))
}

/// `value` as the JSON of a snapshot's `meta`.
pub(super) fn to_meta<T: Serialize>(operator: &str, value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| EngineError::Checkpoint(format!("{operator}: cannot write state: {e}")))
}

/// A snapshot's `meta` read back.
pub(super) fn from_meta<T: DeserializeOwned>(operator: &str, meta: serde_json::Value) -> Result<T> {
    serde_json::from_value(meta).map_err(|e| malformed(operator, e))
}

/// Where a piece of state is: rows `offset..offset + rows` of batch `batch`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct Part {
    pub batch: usize,
    pub offset: usize,
    pub rows: usize,
}

/// Gathers pieces of state (columns of equal length) into batches, one per distinct list
/// of column types.
#[derive(Default)]
pub(super) struct Packer {
    /// Per batch: its column types, its pieces and their total rows.
    batches: Vec<(Vec<DataType>, Vec<RecordBatch>, usize)>,
}

impl Packer {
    /// Adds a piece of `rows` rows (the row count matters when there are no columns: a
    /// partial aggregate of a window without keys or aggregates still has its groups).
    pub(super) fn add(&mut self, columns: Vec<ArrayRef>, rows: usize) -> std::result::Result<Part, ArrowError> {
        let types: Vec<DataType> = columns.iter().map(|c| c.data_type().clone()).collect();
        let batch = match self.batches.iter().position(|(t, _, _)| *t == types) {
            Some(b) => b,
            None => {
                self.batches.push((types.clone(), Vec::new(), 0));
                self.batches.len() - 1
            }
        };
        let piece = RecordBatch::try_new_with_options(
            schema_of(&types),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        let (_, pieces, total) = &mut self.batches[batch];
        let part = Part { batch, offset: *total, rows };
        pieces.push(piece);
        *total += rows;
        Ok(part)
    }

    /// The batches, in the order `Part::batch` counts them.
    pub(super) fn finish(self) -> std::result::Result<Vec<RecordBatch>, ArrowError> {
        self.batches.into_iter().map(|(types, pieces, _)| concat_batches(&schema_of(&types), &pieces)).collect()
    }
}

/// Columns `c0, c1, ..`, all nullable: the meaning of a column is the operator's business.
fn schema_of(types: &[DataType]) -> Arc<Schema> {
    Arc::new(Schema::new(
        types.iter().enumerate().map(|(i, t)| Field::new(format!("c{i}"), t.clone(), true)).collect::<Vec<_>>(),
    ))
}

/// The columns of `part`, which must have `columns` columns.
/// Keys as arrow row bytes back to their columns, for a snapshot (`RowConverter` bytes are
/// not stable across Arrow releases). No converter (an operator without keys): no columns.
pub(super) fn key_columns<'a>(
    converter: Option<&arrow::row::RowConverter>,
    keys: impl IntoIterator<Item = &'a [u8]>,
) -> std::result::Result<Vec<ArrayRef>, ArrowError> {
    let Some(converter) = converter else { return Ok(Vec::new()) };
    let parser = converter.parser();
    converter.convert_rows(keys.into_iter().map(|k| parser.parse(k)))
}

/// Key columns of a restored snapshot as row bytes, one per row (empty keys without a
/// converter).
pub(super) fn key_bytes(
    converter: Option<&arrow::row::RowConverter>,
    columns: &[ArrayRef],
    rows: usize,
) -> std::result::Result<Vec<Box<[u8]>>, ArrowError> {
    let Some(converter) = converter else { return Ok(vec![Box::from([]); rows]) };
    let encoded = converter.convert_columns(columns)?;
    Ok(encoded.iter().map(|r| Box::from(r.data())).collect())
}

pub(super) fn part_columns(
    operator: &str,
    batches: &[RecordBatch],
    part: Part,
    columns: usize,
) -> Result<Vec<ArrayRef>> {
    let batch = batches.get(part.batch).ok_or_else(|| malformed(operator, format!("no batch {}", part.batch)))?;
    if batch.num_columns() != columns {
        return Err(malformed(
            operator,
            format!("batch {} has {} columns, expected {columns}", part.batch, batch.num_columns()),
        ));
    }
    if part.offset.checked_add(part.rows).is_none_or(|end| end > batch.num_rows()) {
        return Err(malformed(
            operator,
            format!("rows {}+{} past the {} rows of batch {}", part.offset, part.rows, batch.num_rows(), part.batch),
        ));
    }
    Ok(batch.columns().iter().map(|c| c.slice(part.offset, part.rows)).collect())
}

/// Checks that `columns` have the types an operator expects (accumulators and key tables
/// downcast their inputs and would panic on others).
pub(super) fn check_types<'a>(
    operator: &str,
    columns: &[ArrayRef],
    expected: impl IntoIterator<Item = &'a DataType>,
) -> Result<()> {
    for (i, (c, t)) in columns.iter().zip(expected).enumerate() {
        if !c.data_type().equals_datatype(t) {
            return Err(malformed(operator, format!("column {i} is {}, expected {t}", c.data_type())));
        }
    }
    Ok(())
}

/// A snapshot as it comes back from a checkpoint directory: `meta` through JSON text, each
/// batch through an Arrow IPC file.
#[cfg(test)]
pub(super) fn through_files(state: crate::checkpoint::StateSnapshot) -> crate::checkpoint::StateSnapshot {
    use arrow::ipc::reader::FileReader;
    use arrow::ipc::writer::FileWriter;

    let meta = serde_json::from_str(&state.meta.to_string()).expect("meta as JSON");
    let batches = state
        .batches
        .iter()
        .map(|b| {
            let mut file = Vec::new();
            let mut writer = FileWriter::try_new(&mut file, &b.schema()).expect("ipc writer");
            writer.write(b).expect("ipc write");
            writer.finish().expect("ipc finish");
            drop(writer);
            let mut reader = FileReader::try_new(std::io::Cursor::new(file), None).expect("ipc reader");
            let read = reader.next().expect("one batch").expect("ipc read");
            assert!(reader.next().is_none(), "one batch per file");
            assert_eq!(read.num_rows(), b.num_rows(), "row count kept");
            read
        })
        .collect();
    crate::checkpoint::StateSnapshot { meta, batches }
}

/// One operator's output as text, in order: each batch with its row kinds and arrival
/// watermarks, each watermark, `Idle` and `End`.
#[cfg(test)]
pub(super) fn trace(out: &[crate::message::Message]) -> Vec<String> {
    use crate::message::Message;
    out.iter()
        .map(|m| match m {
            Message::Data(b) => format!(
                "kinds {:?} arrivals {:?}\n{}",
                b.row_kinds.as_ref().map(|k| k.values().to_vec()),
                b.arrival_watermarks.as_ref().map(|k| k.iter().collect::<Vec<_>>()),
                arrow::util::pretty::pretty_format_batches(std::slice::from_ref(&b.data)).expect("printable")
            ),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Runs `input` through one operator straight, and for every split point through one
/// snapshotted there (the snapshot going through checkpoint files) that goes on, and
/// through a fresh one restored from that snapshot: after the split, all three must emit
/// the same. Returns the straight run's output.
#[cfg(test)]
pub(super) fn assert_restores_everywhere<O: super::StreamOperator>(
    make: impl Fn() -> O,
    input: &[crate::message::Message],
) -> Vec<crate::message::Message> {
    use crate::message::Message;
    fn run(op: &mut dyn super::StreamOperator, input: &[Message]) -> Vec<Message> {
        let mut out = Vec::new();
        for m in input {
            match m.clone() {
                Message::Data(b) => op.process_batch(b, &mut out).expect("batch"),
                Message::Watermark(w) => op.handle_watermark(w, &mut out).expect("watermark"),
                Message::End => op.on_end(&mut out).expect("end"),
                _ => {}
            }
        }
        out
    }
    let mut straight = make();
    let mut expected = Vec::new();
    let mut after_each = Vec::new();
    for m in input {
        let out = run(&mut straight, std::slice::from_ref(m));
        after_each.push(trace(&out));
        expected.extend(out);
    }
    for split in 0..=input.len() {
        let mut original = make();
        run(&mut original, &input[..split]);
        let snapshot = original.snapshot_state().expect("snapshot").expect("a stateful operator has state");
        let mut restored = make();
        restored.restore_state(through_files(snapshot)).expect("restore");
        let want: Vec<String> = after_each[split..].iter().flatten().cloned().collect();
        assert_eq!(trace(&run(&mut original, &input[split..])), want, "snapshotted after message {split}");
        assert_eq!(trace(&run(&mut restored, &input[split..])), want, "restored after message {split}");
    }
    expected
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Int64Array, StringArray};

    use super::*;

    #[test]
    fn packer_joins_pieces_of_one_layout_and_keeps_row_counts_without_columns() {
        let mut packer = Packer::default();
        let ints = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
        let a = packer.add(vec![ints(vec![1, 2])], 2).expect("add");
        let b = packer.add(vec![Arc::new(StringArray::from(vec!["x"])) as ArrayRef], 1).expect("add");
        let c = packer.add(vec![ints(vec![3])], 1).expect("add");
        let d = packer.add(vec![], 3).expect("add");
        let e = packer.add(vec![], 0).expect("add");
        let batches = through_files(crate::checkpoint::StateSnapshot {
            meta: serde_json::Value::Null,
            batches: packer.finish().expect("finish"),
        })
        .batches;
        assert_eq!(batches.len(), 3);
        assert_eq!((a.batch, a.offset, c.batch, c.offset), (0, 0, 0, 2));
        let cols = part_columns("t", &batches, c, 1).expect("part");
        assert_eq!(cols[0].as_any().downcast_ref::<Int64Array>().expect("ints").value(0), 3);
        assert_eq!(part_columns("t", &batches, b, 1).expect("part")[0].len(), 1);
        assert_eq!((d.batch, e.batch, e.offset), (2, 2, 3));
        assert_eq!(batches[2].num_rows(), 3);
        assert!(part_columns("t", &batches, Part { batch: 0, offset: 2, rows: 2 }, 1).is_err());
        assert!(part_columns("t", &batches, a, 2).is_err());
        assert!(part_columns("t", &batches, Part { batch: 9, offset: 0, rows: 0 }, 1).is_err());
    }
}
