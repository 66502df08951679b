//! OVER aggregation: `f(..) OVER (PARTITION BY k ORDER BY t [frame])` on an append-only
//! stream, Flink's `StreamExecOverAggregate`. Every input row is emitted once, followed by
//! its calls' results, computed over the rows of its partition up to it in time order.
//!
//! Event time (the ORDER BY column is a rowtime attribute), as Flink's
//! `RowTime{Rows,Range}{Unbounded,Bounded}PrecedingFunction`s:
//!
//! * a row whose time is at or behind the watermark it arrives under is late: dropped and
//!   counted (`ts <= watermark`: Flink's `processElement`); a NULL time is dropped;
//! * other rows wait, buffered as the Arrow batches they came in, until the watermark
//!   reaches their time; then the due rows are processed in time order, rows of equal time
//!   in arrival order, and emitted with their results before the watermark is forwarded;
//! * the per-key computation (frames, peers, LAG) is in [`frame`].
//!
//! Processing time (ORDER BY a `PROCTIME()` column): rows are processed as they arrive, in
//! arrival order; a RANGE INTERVAL frame holds the rows whose processing time is within the
//! interval. (Flink waits a millisecond to make rows of the same millisecond peers; Eddy
//! does not: processing time is not reproducible anyway.)
//!
//! A key's state lives as long as the job (as in Flink without state TTL).

mod checkpoint;
mod frame;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use eddy_sql::plan::OverAggSpec;

use self::frame::{Calls, KeyState};
use super::memory::{btree_bytes, hash_map_bytes};
use super::windowing::{
    effective_watermark, event_times, require_append_only, BufferedRows, RowRef, OUTPUT_BATCH_ROWS,
};
use super::{KeyHasher, OperatorContext, StreamOperator};
use crate::checkpoint::StateSnapshot;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message, Timestamp, Watermark};
use crate::metrics::LateRowCounter;

/// Computes the OVER calls of each row, per partition key, in time order.
pub struct OverAggregateOperator {
    spec: OverAggSpec,
    name: String,
    input_schema: SchemaRef,
    schema: SchemaRef,
    late_rows: LateRowCounter,
    calls: Calls,
    watermark: Watermark,
    /// Encodes the partition keys to bytes; `None` without PARTITION BY (one key).
    key_encoder: Option<RowConverter>,
    /// Event time: rows waiting for the watermark, by (time, arrival sequence).
    pending: PendingRows,
    /// Arrival sequence of the next row.
    sequence: u64,
    /// The input columns of the pending rows.
    rows: BufferedRows,
    /// Per partition key, what its calls keep.
    keys: KeyStates,
    /// Bytes of the keys of `pending` and `keys`, and of the key states (`state_bytes`).
    key_bytes: usize,
}

/// Rows waiting for the watermark, by (time, arrival sequence): their firing order.
type PendingRows = BTreeMap<(Timestamp, u64), Pending>;

/// The state of every partition key, by encoded key.
type KeyStates = HashMap<Box<[u8]>, KeyState, KeyHasher>;

/// A key's rows in a batch being computed: (row, time), in time order.
type KeyRows<'a> = (&'a [u8], Vec<(usize, Timestamp)>);

/// A row waiting for the watermark.
struct Pending {
    key: Box<[u8]>,
    row: RowRef,
}

impl OverAggregateOperator {
    /// The operator for `spec`, emitting `ctx.output_schema`: the input columns, then one
    /// column per call.
    pub fn new(spec: OverAggSpec, ctx: OperatorContext) -> Result<Self> {
        let name = describe(&spec);
        let plan_err = |msg: String| EngineError::Plan(format!("{name}: {msg}"));
        let inputs = ctx.input_schema.fields().len();
        if ctx.output_schema.fields().len() != inputs + spec.calls.len() || spec.time_column >= inputs {
            return Err(plan_err(format!(
                "{} output columns for {inputs} input columns and {} calls",
                ctx.output_schema.fields().len(),
                spec.calls.len()
            )));
        }
        let expr_err = |source| EngineError::Expression { operator: name.clone(), source };
        let calls = Calls::new(&spec, &ctx.input_schema).map_err(expr_err)?;
        let key_encoder = if spec.partition_keys.is_empty() {
            None
        } else {
            let fields = spec
                .partition_keys
                .iter()
                .map(|k| k.expr.data_type(&ctx.input_schema).map(SortField::new))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(expr_err)?;
            Some(RowConverter::new(fields).map_err(|source| EngineError::Arrow { operator: name.clone(), source })?)
        };
        Ok(Self {
            spec,
            name,
            input_schema: ctx.input_schema,
            schema: ctx.output_schema,
            late_rows: ctx.late_rows,
            calls,
            watermark: Watermark::MIN,
            key_encoder,
            pending: BTreeMap::new(),
            sequence: 0,
            rows: BufferedRows::default(),
            keys: HashMap::default(),
            key_bytes: 0,
        })
    }

    fn arrow_err(&self) -> impl Fn(arrow::error::ArrowError) -> EngineError {
        let operator = self.name.clone();
        move |source| EngineError::Arrow { operator: operator.clone(), source }
    }

    fn expr_err(&self) -> impl Fn(datafusion::error::DataFusionError) -> EngineError {
        let operator = self.name.clone();
        move |source| EngineError::Expression { operator: operator.clone(), source }
    }

    /// The partition key of every row of `data`, as bytes (empty without keys).
    fn encode_rows(&self, data: &RecordBatch) -> Result<Vec<Box<[u8]>>> {
        let Some(enc) = &self.key_encoder else { return Ok(vec![Box::from([]); data.num_rows()]) };
        let n = data.num_rows();
        let keys = self
            .spec
            .partition_keys
            .iter()
            .map(|k| k.expr.evaluate(data).and_then(|v| v.into_array(n)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.expr_err())?;
        let rows = enc.convert_columns(&keys).map_err(self.arrow_err())?;
        Ok(rows.iter().map(|r| Box::from(r.data())).collect())
    }

    /// Event time: buffer the rows of `batch` that are not late.
    fn buffer(&mut self, batch: &Batch) -> Result<()> {
        let times = event_times(batch.data.column(self.spec.time_column).as_ref()).map_err(self.arrow_err())?;
        let keys = self.encode_rows(&batch.data)?;
        let chunk = self.rows.push(batch.data.columns().to_vec());
        let mut late = 0;
        for (row, key) in keys.into_iter().enumerate() {
            if times.is_null(row) {
                continue;
            }
            let ts = times.value(row);
            if ts <= effective_watermark(batch, row, self.watermark) {
                late += 1;
                continue;
            }
            self.key_bytes += key.len();
            self.pending.insert((ts, self.sequence), Pending { key, row: (chunk, row as u32) });
            self.sequence += 1;
            self.rows.acquire(chunk);
        }
        self.rows.free_if_unused(chunk);
        self.late_rows.add(late);
        Ok(())
    }

    /// Event time: process and emit the pending rows whose time the watermark `wm` reached,
    /// in batches of about [`OUTPUT_BATCH_ROWS`] rows that never split rows of one time
    /// (peers are computed together).
    fn fire(&mut self, wm: Timestamp, out: &mut Vec<Message>) -> Result<()> {
        loop {
            let mut due = Vec::new();
            while let Some(entry) = self.pending.first_entry() {
                let ts = entry.key().0;
                let full = due.len() >= OUTPUT_BATCH_ROWS && due.last().is_none_or(|(t, _)| *t != ts);
                if ts > wm || full {
                    break;
                }
                due.push((ts, entry.remove()));
            }
            if due.is_empty() {
                return Ok(());
            }
            let refs: Vec<RowRef> = due.iter().map(|(_, p)| p.row).collect();
            let columns = (0..self.input_schema.fields().len())
                .map(|c| self.rows.gather(c, &refs))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(self.arrow_err())?;
            for r in &refs {
                self.rows.release(r.0);
            }
            let data = RecordBatch::try_new(self.input_schema.clone(), columns).map_err(self.arrow_err())?;
            let (times, keys): (Vec<Timestamp>, Vec<Box<[u8]>>) = due.into_iter().map(|(t, p)| (t, p.key)).unzip();
            self.key_bytes = self.key_bytes.saturating_sub(keys.iter().map(|k| k.len()).sum());
            out.push(Message::Data(Batch::append(self.compute(data, &keys, &times)?)));
        }
    }

    /// The output rows of `data` (rows of one or more keys, in time order per key): its
    /// columns followed by every call's results.
    fn compute(&mut self, data: RecordBatch, keys: &[Box<[u8]>], times: &[Timestamp]) -> Result<RecordBatch> {
        let n = data.num_rows();
        let args = self
            .calls
            .args
            .iter()
            .map(|a| a.evaluate(&data).and_then(|v| v.into_array(n)))
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()
            .map_err(self.expr_err())?;
        let mut results = vec![vec![ScalarValue::Null; n]; self.calls.calls.len()];
        let expr_err = self.expr_err();
        for (key, rows) in rows_by_key(keys, times) {
            let state = match self.keys.get_mut(key) {
                Some(state) => state,
                None => {
                    let state = self.calls.new_key().map_err(&expr_err)?;
                    self.key_bytes += key.len() + state.bytes();
                    self.keys.entry(key.into()).or_insert(state)
                }
            };
            let before = state.bytes();
            self.calls.process(state, &rows, &args, &mut results).map_err(&expr_err)?;
            self.key_bytes = self.key_bytes.saturating_sub(before) + state.bytes();
        }
        let mut columns = data.columns().to_vec();
        for (values, field) in results.into_iter().zip(self.schema.fields().iter().skip(data.num_columns())) {
            let array = ScalarValue::iter_to_array(values).map_err(&expr_err)?;
            columns.push(if array.data_type() == field.data_type() {
                array
            } else {
                cast(&array, field.data_type()).map_err(self.arrow_err())?
            });
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(self.arrow_err())
    }

    /// Processing time: process the rows of `batch` now, in arrival order.
    fn process_now(&mut self, batch: &Batch, out: &mut Vec<Message>) -> Result<()> {
        let times = event_times(batch.data.column(self.spec.time_column).as_ref()).map_err(self.arrow_err())?;
        let keys = self.encode_rows(&batch.data)?;
        // A NULL processing time cannot happen (the clock sets it); taken as 0 if it did.
        let times: Vec<Timestamp> =
            (0..times.len()).map(|r| if times.is_null(r) { 0 } else { times.value(r) }).collect();
        for start in (0..batch.num_rows()).step_by(OUTPUT_BATCH_ROWS) {
            let len = OUTPUT_BATCH_ROWS.min(batch.num_rows() - start);
            let data = batch.data.slice(start, len);
            let range = start..start + len;
            out.push(Message::Data(Batch::append(self.compute(data, &keys[range.clone()], &times[range])?)));
        }
        Ok(())
    }
}

impl StreamOperator for OverAggregateOperator {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        require_append_only(&batch, &self.name)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.spec.processing_time {
            self.process_now(&batch, out)
        } else {
            self.buffer(&batch)
        }
    }

    fn handle_watermark(&mut self, wm: Watermark, out: &mut Vec<Message>) -> Result<()> {
        self.watermark = self.watermark.max(wm);
        self.fire(self.watermark.0, out)?;
        out.push(Message::Watermark(wm));
        Ok(())
    }

    /// Rows still waiting are processed: the input ended, no later row can come before them.
    fn on_end(&mut self, out: &mut Vec<Message>) -> Result<()> {
        self.fire(Timestamp::MAX, out)
    }

    /// Buffered rows, the keys of pending rows, and each key's state and key.
    fn state_bytes(&self) -> usize {
        self.rows.bytes()
            + self.key_bytes
            + btree_bytes::<(Timestamp, u64), Pending>(self.pending.len())
            + hash_map_bytes(&self.keys)
    }

    fn snapshot_state(&mut self) -> Result<Option<StateSnapshot>> {
        self.snapshot().map(Some)
    }

    fn restore_state(&mut self, state: StateSnapshot) -> Result<()> {
        self.restore(state)
    }
}

/// Each key's rows (row, time), in order; keys in order of first appearance.
fn rows_by_key<'a>(keys: &'a [Box<[u8]>], times: &[Timestamp]) -> Vec<KeyRows<'a>> {
    let mut by_key: HashMap<&[u8], usize> = HashMap::new();
    let mut groups: Vec<KeyRows> = Vec::new();
    for (row, (key, ts)) in keys.iter().zip(times).enumerate() {
        let g = *by_key.entry(key).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push((row, *ts));
    }
    groups
}

/// As logs and errors name the operator.
fn describe(spec: &OverAggSpec) -> String {
    let keys: Vec<&str> = spec.partition_keys.iter().map(|k| k.display.as_str()).collect();
    let calls: Vec<&str> = spec.calls.iter().map(|c| c.display.as_str()).collect();
    format!(
        "OverAggregate[partitionBy=[{}], orderBy=[#{} ASC], {}, select=[{}]]",
        keys.join(", "),
        spec.time_column,
        spec.frame,
        calls.join(", ")
    )
}

/// The column of `values` as a typed array, for checkpoints.
fn column_of(values: Vec<ScalarValue>, data_type: &arrow::datatypes::DataType) -> datafusion::error::Result<ArrayRef> {
    if values.is_empty() {
        return Ok(arrow::array::new_empty_array(data_type));
    }
    ScalarValue::iter_to_array(values)
}
