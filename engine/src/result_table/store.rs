//! One managed result table in memory: the rows a query sees, changed batch by batch.
//!
//! Rows live in immutable segments (the batches the sink wrote), each with a mask of the
//! rows still live. An append-only table only adds segments. A table with a PRIMARY KEY
//! keeps an index from key to (segment, row): an insert or `+U` of a key that is there
//! kills the old row, `-D` kills it, `-U` is ignored (the `+U` after it carries the new
//! row), as Flink's upsert sinks do.
//!
//! Each segment remembers which checkpointed writer wrote it in which epoch
//! ([`BatchOrigin`]), so that a job restarted from a checkpoint can take back what it wrote
//! after it ([`TableRows::roll_back`]) before writing it again.
//!
//! Readers take a [`Snapshot`] under a read lock: the segments (shared, `Arc`) and copies of
//! their masks. A batch is applied under the write lock as a whole, so a query never sees
//! half of one.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int8Array, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use eddy_connectors::RowKind;

use super::ResultTableError;

/// Rows merged per compaction step (see [`TableRows::compact_if_sparse`]).
const COMPACT_ROWS: usize = 65_536;

/// Who wrote a batch: a job's sink subtask that checkpoints (`writer`, a stable hash of
/// its identity) and the epoch its rows belong to (the number of the next checkpoint
/// barrier). `writer` 0 is anything else: such rows are never rolled back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOrigin {
    /// The writing sink subtask; 0: not a checkpointing writer.
    pub writer: u64,
    /// The checkpoint epoch the rows belong to.
    pub epoch: u64,
}

/// Rows written together, and which of them are still live.
#[derive(Debug, Clone)]
struct Segment {
    batch: RecordBatch,
    origin: BatchOrigin,
    live: Vec<bool>,
    live_rows: usize,
    /// When it was written (insert-time retention).
    written: SystemTime,
    /// Oldest and newest event time (ms) of its rows, once event-time retention asked.
    times: Option<(i64, i64)>,
}

/// A consistent view of a table's rows.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The table's schema.
    pub schema: SchemaRef,
    /// The live rows.
    pub batches: Vec<RecordBatch>,
    /// The table's version when the snapshot was taken (one more per applied batch).
    pub version: u64,
}

impl Snapshot {
    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// The rows of one table.
pub(crate) struct TableRows {
    schema: SchemaRef,
    /// Primary key: column indices and the converter making comparable keys of them.
    key: Option<(Vec<usize>, RowConverter)>,
    segments: Vec<Segment>,
    /// Index of the first segment in `segments` (segments dropped by retention or
    /// compaction shift the rest; positions in `index` are absolute).
    first_segment: u64,
    /// Key (arrow's row format bytes) -> (segment, row) of its live row.
    index: HashMap<Box<[u8]>, (u64, u32)>,
    version: u64,
}

impl TableRows {
    /// An empty table; `primary_key` names columns of `schema` (empty: append-only).
    pub(crate) fn new(schema: SchemaRef, primary_key: &[String]) -> Result<Self, ResultTableError> {
        let key = if primary_key.is_empty() {
            None
        } else {
            let mut columns = Vec::with_capacity(primary_key.len());
            for name in primary_key {
                let i = schema.index_of(name).map_err(|_| {
                    ResultTableError::Invalid(format!("primary key column '{name}' is not a column of the table"))
                })?;
                columns.push(i);
            }
            let fields = columns.iter().map(|i| SortField::new(schema.field(*i).data_type().clone())).collect();
            let converter = RowConverter::new(fields).map_err(ResultTableError::arrow("primary key"))?;
            Some((columns, converter))
        };
        Ok(Self { schema, key, segments: Vec::new(), first_segment: 0, index: HashMap::new(), version: 0 })
    }

    pub(crate) fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// Apply one batch of changes (`row_kinds` as [`RowKind`] codes; none: all inserts).
    pub(crate) fn apply(
        &mut self,
        batch: &RecordBatch,
        row_kinds: Option<&Int8Array>,
        origin: BatchOrigin,
    ) -> Result<(), ResultTableError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = self.conform(batch)?;
        let kind =
            |i: usize| row_kinds.map_or(RowKind::Insert, |k| RowKind::from_code(k.value(i)).unwrap_or(RowKind::Insert));
        let n = batch.num_rows();
        let Some((columns, converter)) = &self.key else {
            if let Some(i) = (0..n).find(|i| kind(*i) != RowKind::Insert) {
                return Err(ResultTableError::Invalid(format!(
                    "an append-only result table got a {} row; declare a PRIMARY KEY to keep an updating result",
                    kind(i)
                )));
            }
            self.segments.push(Segment {
                batch,
                origin,
                live: vec![true; n],
                live_rows: n,
                written: SystemTime::now(),
                times: None,
            });
            self.version += 1;
            return Ok(());
        };
        let key_arrays: Vec<ArrayRef> = columns.iter().map(|i| batch.column(*i).clone()).collect();
        let keys = converter.convert_columns(&key_arrays).map_err(ResultTableError::arrow("primary key"))?;
        let seg_no = self.first_segment + self.segments.len() as u64;
        let mut live = vec![false; n];
        let mut live_rows = 0usize;
        for i in 0..n {
            let k = kind(i);
            if k == RowKind::UpdateBefore {
                continue;
            }
            let key = keys.row(i);
            let old = match k {
                RowKind::Delete => self.index.remove(key.as_ref()),
                _ => self.index.insert(key.as_ref().into(), (seg_no, i as u32)),
            };
            if let Some((seg, row)) = old {
                if seg == seg_no {
                    // Replaced within this batch.
                    if live[row as usize] {
                        live[row as usize] = false;
                        live_rows -= 1;
                    }
                } else if let Some(s) = self.segments.get_mut((seg - self.first_segment) as usize) {
                    if s.live[row as usize] {
                        s.live[row as usize] = false;
                        s.live_rows -= 1;
                    }
                }
            }
            if k != RowKind::Delete {
                live[i] = true;
                live_rows += 1;
            }
        }
        self.segments.push(Segment { batch, origin, live, live_rows, written: SystemTime::now(), times: None });
        self.version += 1;
        self.compact_if_sparse();
        Ok(())
    }

    /// The batch with the table's schema (names and nullability as declared; the sink's
    /// input has the same types in the same order).
    fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch, ResultTableError> {
        if batch.schema() == self.schema {
            return Ok(batch.clone());
        }
        if batch.num_columns() != self.schema.fields().len() {
            return Err(ResultTableError::Invalid(format!(
                "got rows of {} columns for a table of {}",
                batch.num_columns(),
                self.schema.fields().len()
            )));
        }
        let columns: Vec<ArrayRef> = batch.columns().to_vec();
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )
        .map_err(ResultTableError::arrow("rows do not fit the table"))
    }

    /// Drop leading segments with no live row, and merge one run of consecutive segments
    /// (about [`COMPACT_ROWS`] rows) in which most rows are dead into one: an upsert table
    /// updated in place would otherwise grow without end. One run per applied batch keeps
    /// the work under the write lock small (readers wait for it), however big the table.
    ///
    /// Segment numbers in the index are positions from `first_segment`: the merged rows go
    /// into the run's last position and the others stay as empty segments, so no other
    /// segment's number changes.
    fn compact_if_sparse(&mut self) {
        while self.segments.first().is_some_and(|s| s.live_rows == 0) {
            self.segments.remove(0);
            self.first_segment += 1;
        }
        let (mut start, mut rows, mut live) = (0usize, 0usize, 0usize);
        let mut run = None;
        for (i, s) in self.segments.iter().enumerate() {
            // A merged segment has one origin: a run ends where the origin changes.
            if i > start && s.origin != self.segments[start].origin {
                (start, rows, live) = (i, 0, 0);
            }
            rows += s.batch.num_rows();
            live += s.live_rows;
            if rows >= COMPACT_ROWS {
                if live * 2 <= rows && i > start {
                    run = Some((start, i + 1));
                    break;
                }
                (start, rows, live) = (i + 1, 0, 0);
            }
        }
        let Some((from, to)) = run else { return };
        let mut parts = Vec::with_capacity(to - from);
        for s in &self.segments[from..to] {
            if s.live_rows == s.batch.num_rows() {
                parts.push(s.batch.clone());
            } else if s.live_rows > 0 {
                match filter_record_batch(&s.batch, &BooleanArray::from(s.live.clone())) {
                    Ok(b) => parts.push(b),
                    Err(e) => {
                        tracing::warn!(error = %e, "result table compaction failed; keeping the segments");
                        return;
                    }
                }
            }
        }
        let merged = match arrow::compute::concat_batches(&self.schema, &parts) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "result table compaction failed; keeping the segments");
                return;
            }
        };
        let written = self.segments[to - 1].written;
        let origin = self.segments[to - 1].origin;
        let seg_no = self.first_segment + (to - 1) as u64;
        let n = merged.num_rows();
        if let Some((columns, converter)) = &self.key {
            let arrays: Vec<ArrayRef> = columns.iter().map(|i| merged.column(*i).clone()).collect();
            match converter.convert_columns(&arrays) {
                Ok(keys) => {
                    for i in 0..n {
                        self.index.insert(keys.row(i).as_ref().into(), (seg_no, i as u32));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "result table compaction failed; keeping the segments");
                    return;
                }
            }
        }
        let empty = RecordBatch::new_empty(self.schema.clone());
        for s in &mut self.segments[from..to - 1] {
            *s = Segment {
                batch: empty.clone(),
                origin: s.origin,
                live: Vec::new(),
                live_rows: 0,
                written: s.written,
                times: None,
            };
        }
        self.segments[to - 1] =
            Segment { batch: merged, origin, live: vec![true; n], live_rows: n, written, times: None };
        while self.segments.first().is_some_and(|s| s.live_rows == 0) {
            self.segments.remove(0);
            self.first_segment += 1;
        }
    }

    /// Drop rows written before `now - keep` (insert-time retention); whole segments.
    pub(crate) fn expire(&mut self, keep: Duration) -> usize {
        let Some(cutoff) = SystemTime::now().checked_sub(keep) else { return 0 };
        let mut dropped = 0;
        while self.segments.first().is_some_and(|s| s.written < cutoff) {
            let s = self.segments.remove(0);
            self.first_segment += 1;
            dropped += s.live_rows;
            if let Some((columns, converter)) = &self.key {
                let arrays: Vec<ArrayRef> = columns.iter().map(|i| s.batch.column(*i).clone()).collect();
                if let Ok(keys) = converter.convert_columns(&arrays) {
                    for i in (0..s.batch.num_rows()).filter(|i| s.live[*i]) {
                        self.index.remove(keys.row(i).as_ref());
                    }
                }
            }
        }
        if dropped > 0 {
            self.version += 1;
        }
        dropped
    }

    /// Drop rows whose `column` (a timestamp) is older than the newest value minus `keep`
    /// (event-time retention).
    pub(crate) fn expire_by_time(&mut self, column: usize, keep: Duration) -> Result<usize, ResultTableError> {
        let as_ms = |a: &ArrayRef| -> Result<ArrayRef, ResultTableError> {
            arrow::compute::cast(
                a,
                &arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
            )
            .map_err(ResultTableError::arrow("retention"))
        };
        // Each segment's time range once (segments do not change), so an applied batch
        // costs a pass over the new segment, not over the table.
        for s in self.segments.iter_mut().filter(|s| s.times.is_none()) {
            let ms = as_ms(s.batch.column(column))?;
            let ms = ms.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
            s.times = Some((arrow::compute::min(ms).unwrap_or(i64::MAX), arrow::compute::max(ms).unwrap_or(i64::MIN)));
        }
        let newest = self.segments.iter().filter_map(|s| s.times).map(|(_, max)| max).max().unwrap_or(i64::MIN);
        if newest == i64::MIN {
            return Ok(0);
        }
        let cutoff = newest - keep.as_millis() as i64;
        let mut dropped = 0;
        for (k, s) in self.segments.iter_mut().enumerate() {
            if s.live_rows == 0 || s.times.is_some_and(|(min, _)| min >= cutoff) {
                continue;
            }
            let ms = as_ms(s.batch.column(column))?;
            let ms = ms.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
            let arrays: Option<Vec<ArrayRef>> =
                self.key.as_ref().map(|(columns, _)| columns.iter().map(|i| s.batch.column(*i).clone()).collect());
            let keys = match (&self.key, &arrays) {
                (Some((_, converter)), Some(a)) => {
                    Some(converter.convert_columns(a).map_err(ResultTableError::arrow("retention"))?)
                }
                _ => None,
            };
            for i in 0..s.batch.num_rows() {
                if s.live[i] && ms.is_valid(i) && ms.value(i) < cutoff {
                    s.live[i] = false;
                    s.live_rows -= 1;
                    dropped += 1;
                    if let Some(keys) = &keys {
                        let seg_no = self.first_segment + k as u64;
                        if self.index.get(keys.row(i).as_ref()) == Some(&(seg_no, i as u32)) {
                            self.index.remove(keys.row(i).as_ref());
                        }
                    }
                }
            }
        }
        if dropped > 0 {
            self.version += 1;
            self.compact_if_sparse();
        }
        Ok(dropped)
    }

    /// Take back the rows `writer` wrote in epochs after `epoch` (what a job restarted from
    /// checkpoint `epoch` is about to write again). Only an append-only table needs this:
    /// in an upsert table the rows written again overwrite themselves. Returns the number
    /// of rows removed.
    pub(crate) fn roll_back(&mut self, writer: u64, epoch: u64) -> usize {
        if self.key.is_some() || writer == 0 {
            return 0;
        }
        let before = self.num_rows();
        self.segments.retain(|s| !(s.origin.writer == writer && s.origin.epoch > epoch));
        let removed = before - self.num_rows();
        if removed > 0 {
            self.version += 1;
        }
        removed
    }

    /// The live rows, one batch per segment that has any.
    fn live_batches(&self) -> Vec<RecordBatch> {
        self.live_batches_with_origin().into_iter().map(|(b, _)| b).collect()
    }

    /// The live rows with who wrote them, for a new log generation.
    pub(crate) fn live_batches_with_origin(&self) -> Vec<(RecordBatch, BatchOrigin)> {
        let mut out = Vec::with_capacity(self.segments.len());
        for s in &self.segments {
            if s.live_rows == 0 {
                continue;
            }
            if s.live_rows == s.batch.num_rows() {
                out.push((s.batch.clone(), s.origin));
                continue;
            }
            let mask = BooleanArray::from(s.live.clone());
            match filter_record_batch(&s.batch, &mask) {
                Ok(b) => out.push((b, s.origin)),
                // Cannot happen (mask and batch have the same length); keep the rows visible
                // rather than lose them from every query.
                Err(e) => tracing::warn!(error = %e, "result table: cannot filter a segment"),
            }
        }
        out
    }

    /// A consistent view of the live rows.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot { schema: self.schema.clone(), batches: self.live_batches(), version: self.version }
    }

    /// The live row with this key (the key columns' values as a one-row batch), if any.
    pub(crate) fn lookup(&self, key: &[ArrayRef]) -> Result<Option<RecordBatch>, ResultTableError> {
        let Some((_, converter)) = &self.key else { return Ok(None) };
        let keys = converter.convert_columns(key).map_err(ResultTableError::arrow("primary key lookup"))?;
        if keys.num_rows() != 1 {
            return Ok(None);
        }
        let Some((seg, row)) = self.index.get(keys.row(0).as_ref()) else { return Ok(None) };
        let Some(s) = self.segments.get((seg - self.first_segment) as usize) else { return Ok(None) };
        Ok(Some(s.batch.slice(*row as usize, 1)))
    }

    /// Number of live rows.
    pub(crate) fn num_rows(&self) -> usize {
        self.segments.iter().map(|s| s.live_rows).sum()
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }
}

/// A batch's rows as `+I` kinds, for callers that need an explicit kind column.
pub(crate) fn insert_kinds(rows: usize) -> Int8Array {
    Int8Array::from(vec![RowKind::Insert.code(); rows])
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, false), Field::new("v", DataType::Int64, true)]))
    }

    fn batch(rows: &[(&str, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    fn rows(t: &TableRows) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for b in t.snapshot().batches {
            let k = b.column(0).as_string::<i32>();
            let v = b.column(1).as_primitive::<arrow::datatypes::Int64Type>();
            for i in 0..b.num_rows() {
                out.push((k.value(i).to_string(), v.value(i)));
            }
        }
        out.sort();
        out
    }

    fn kinds(k: &[RowKind]) -> Int8Array {
        Int8Array::from(k.iter().map(|k| k.code()).collect::<Vec<_>>())
    }

    #[test]
    fn append_only_keeps_every_row_and_refuses_updates() {
        let mut t = TableRows::new(schema(), &[]).unwrap();
        t.apply(&batch(&[("a", 1), ("a", 2)]), None, BatchOrigin::default()).unwrap();
        t.apply(&batch(&[("b", 3)]), None, BatchOrigin::default()).unwrap();
        assert_eq!(rows(&t), vec![("a".into(), 1), ("a".into(), 2), ("b".into(), 3)]);
        assert_eq!(t.version(), 2);
        let err = t.apply(&batch(&[("a", 1)]), Some(&kinds(&[RowKind::Delete])), BatchOrigin::default()).unwrap_err();
        assert!(err.to_string().contains("PRIMARY KEY"), "{err}");
    }

    #[test]
    fn upsert_replaces_and_deletes_by_key() {
        let mut t = TableRows::new(schema(), &["k".to_string()]).unwrap();
        t.apply(&batch(&[("a", 1), ("b", 2), ("a", 3)]), None, BatchOrigin::default()).unwrap();
        assert_eq!(rows(&t), vec![("a".into(), 3), ("b".into(), 2)]);
        let k = kinds(&[RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Delete]);
        t.apply(&batch(&[("a", 3), ("a", 4), ("b", 2)]), Some(&k), BatchOrigin::default()).unwrap();
        assert_eq!(rows(&t), vec![("a".into(), 4)]);
        assert_eq!(t.num_rows(), 1);
        let key: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec!["a"]))];
        let hit = t.lookup(&key).unwrap().unwrap();
        assert_eq!(hit.column(1).as_primitive::<arrow::datatypes::Int64Type>().value(0), 4);
        let miss: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec!["b"]))];
        assert!(t.lookup(&miss).unwrap().is_none());
    }

    #[test]
    fn many_updates_of_few_keys_stay_small() {
        let mut t = TableRows::new(schema(), &["k".to_string()]).unwrap();
        for round in 0..2000 {
            let names: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
            let rows: Vec<(&str, i64)> = names.iter().map(|n| (n.as_str(), round)).collect();
            t.apply(&batch(&rows), None, BatchOrigin::default()).unwrap();
        }
        assert_eq!(t.num_rows(), 100);
        let held: usize = t.segments.iter().map(|s| s.batch.num_rows()).sum();
        assert!(held < 2 * COMPACT_ROWS + 200, "held {held} rows for 100 live ones");
        assert!(rows(&t).iter().all(|(_, v)| *v == 1999));
        // The index still finds rows after compaction (200 k rows written: several runs).
        let key: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec!["k7"]))];
        assert_eq!(
            t.lookup(&key).unwrap().unwrap().column(1).as_primitive::<arrow::datatypes::Int64Type>().value(0),
            1999
        );
        // Deletes after compaction find the merged rows.
        let k = kinds(&[RowKind::Delete]);
        t.apply(&batch(&[("k7", 0)]), Some(&k), BatchOrigin::default()).unwrap();
        assert_eq!(t.num_rows(), 99);
        assert!(t.lookup(&key).unwrap().is_none());
    }

    #[test]
    fn event_time_retention_drops_old_rows() {
        use arrow::array::TimestampMillisecondArray;
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("ts", DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None), false),
        ]));
        let mut t = TableRows::new(schema.clone(), &[]).unwrap();
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["old", "new", "newer"])),
                Arc::new(TimestampMillisecondArray::from(vec![0, 3_000_000, 3_600_000])),
            ],
        )
        .unwrap();
        t.apply(&b, None, BatchOrigin::default()).unwrap();
        assert_eq!(t.expire_by_time(1, Duration::from_secs(3600)).unwrap(), 0);
        assert_eq!(t.expire_by_time(1, Duration::from_secs(1000)).unwrap(), 1);
        assert_eq!(t.num_rows(), 2);
    }
}
