//! Temporal join (`JOIN r FOR SYSTEM_TIME AS OF l.time ON l.k = r.k`): each left row joins
//! the version of its key's right row that was valid at the left row's time, as Flink's
//! `TemporalRowTimeJoinOperator` (event time) and its processing-time counterpart.
//!
//! Both sides arrive as one tagged stream (see [`TemporalJoinSpec`]), hash-partitioned by
//! the keys. The right side is a versioned table: per key, the operator holds versions by
//! their time (`+I`/`+U` starts a version, `-D` ends the key's row from its time on, `-U`
//! is followed by the `+U` that replaces it and changes nothing by itself).
//!
//! * **Event time.** A left row waits until the watermark reaches its time, then joins the
//!   last version at or before that time (a deleted or missing version: no match; a LEFT
//!   join pads). So the result does not depend on whether the version or the row arrived
//!   first. Then the versions no row to come can read are freed: per key, all but the last
//!   one at or before the watermark (and that one too if it is a delete). Rows are emitted
//!   before the watermark that released them is forwarded.
//! * **Processing time.** The right side keeps the latest version per key and a left row
//!   joins it at once.
//!
//! The output is append-only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::mem::size_of;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, UInt64Array};
use arrow::datatypes::{DataType, Int64Type, SchemaRef, UInt64Type};
use arrow::error::ArrowError;
use arrow::row::Row;
use eddy_connectors::RowKind;
use serde::{Deserialize, Serialize};

use super::memory::{btree_bytes, hash_map_bytes, shrink_if_sparse};
use super::snapshot::{from_meta, to_meta, Packer, Part};
use super::tagged::{TaggedInput, LEFT, RIGHT};
use super::windowing::event_times;
use super::{KeyHasher, OperatorContext, StreamOperator};
use crate::checkpoint::StateSnapshot;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message, Timestamp, Watermark};
use eddy_sql::plan::{JoinKind, TemporalJoinSpec};

/// A key's versions: time -> the row from then on (`None`: deleted from then on).
type Versions = BTreeMap<Timestamp, Option<Box<[u8]>>>;

/// A left row and its key, as row bytes.
type KeyedRow = (Box<[u8]>, Box<[u8]>);

/// A left row to join: its key, its row and the version it reads (if any).
type Probe<'a> = (&'a [u8], &'a [u8], Option<&'a [u8]>);

/// What a snapshot's `meta` holds.
#[derive(Serialize, Deserialize)]
struct Meta {
    watermark: Timestamp,
    next_seq: u64,
    /// Waiting left rows: `[keys.., time, seq, left columns..]`.
    waiting: Part,
    /// Versions: `[keys.., time, deleted, right columns..]`.
    versions: Part,
}

/// The temporal join operator.
pub struct TemporalJoinOperator {
    spec: TemporalJoinSpec,
    name: String,
    output_schema: SchemaRef,
    /// The input's layout, converters and the condition beyond the keys.
    tagged: TaggedInput,
    versions: HashMap<Box<[u8]>, Versions, KeyHasher>,
    /// Event time: left rows waiting for the watermark, by (time, arrival): (key, row).
    waiting: BTreeMap<(Timestamp, u64), KeyedRow>,
    next_seq: u64,
    /// Keys with versions that a watermark may free.
    dirty: HashSet<Box<[u8]>, KeyHasher>,
    watermark: Watermark,
    heap_bytes: usize,
}

fn version_bytes(key: &[u8], row: Option<&[u8]>) -> usize {
    key.len() + row.map_or(0, <[u8]>::len) + size_of::<(Timestamp, Option<Box<[u8]>>)>()
}

impl TemporalJoinOperator {
    /// An operator reading `ctx.input_schema` (the tagged schema).
    pub fn new(spec: TemporalJoinSpec, ctx: OperatorContext) -> Result<Self> {
        let name = format!("TemporalJoin[{} {}]", spec.kind.sql(), spec.display);
        if ctx.output_schema.fields().len() != spec.left_width + spec.right_width
            || spec.left_time.is_some_and(|t| t >= spec.left_width)
            || spec.right_time.is_some_and(|t| t >= spec.right_width)
        {
            return Err(EngineError::Plan(format!("{name}: the output or the time columns do not fit the join")));
        }
        let condition = spec.condition.as_ref().map(|c| c.expr.clone());
        let tagged = TaggedInput::new(
            &ctx.input_schema,
            spec.key_names.len(),
            [spec.left_width, spec.right_width],
            condition,
            &name,
        )?;
        Ok(Self {
            tagged,
            name,
            spec,
            output_schema: ctx.output_schema,
            versions: HashMap::default(),
            waiting: BTreeMap::new(),
            next_seq: 0,
            dirty: HashSet::default(),
            watermark: Watermark::MIN,
            heap_bytes: 0,
        })
    }

    fn arrow_err(&self) -> impl Fn(ArrowError) -> EngineError + '_ {
        move |source| EngineError::Arrow { operator: self.name.clone(), source }
    }

    fn event_time(&self) -> bool {
        self.spec.left_time.is_some()
    }

    /// A new version of `key` at `t` (`None`: deleted from `t` on).
    fn add_version(&mut self, key: &[u8], t: Timestamp, row: Option<&[u8]>) {
        let event_time = self.event_time();
        let versions = match self.versions.get_mut(key) {
            Some(v) => v,
            None => self.versions.entry(key.into()).or_default(),
        };
        if !event_time {
            // Processing time: only the latest version is ever read.
            for (_, old) in std::mem::take(versions) {
                self.heap_bytes = self.heap_bytes.saturating_sub(version_bytes(key, old.as_deref()));
            }
        }
        self.heap_bytes += version_bytes(key, row);
        if let Some(old) = versions.insert(t, row.map(Into::into)) {
            self.heap_bytes = self.heap_bytes.saturating_sub(version_bytes(key, old.as_deref()));
        }
        if event_time {
            self.dirty.insert(key.into());
        } else if row.is_none() {
            self.versions.remove(key);
        }
    }

    /// The version of `key` valid at `t` (processing time: the latest).
    fn version_at(&self, key: &[u8], t: Timestamp) -> Option<&[u8]> {
        let versions = self.versions.get(key)?;
        let (_, row) =
            if self.event_time() { versions.range(..=t).next_back()? } else { versions.iter().next_back()? };
        row.as_deref()
    }

    /// Joins `rows` (key, left row, version) and appends the output to `out`.
    fn join(&self, rows: &[Probe<'_>], out: &mut Vec<Message>) -> Result<()> {
        let lp = self.tagged.sides[LEFT].parser();
        let rp = self.tagged.sides[RIGHT].parser();
        // The condition on every pair that has a version.
        let mut pairs = self.tagged.empty_pairs();
        for (_, l, r) in rows {
            if let Some(r) = r {
                pairs[LEFT].push(lp.parse(l));
                pairs[RIGHT].push(rp.parse(r));
            }
        }
        let holds = self.tagged.holds(&pairs)?;
        let mut output = self.tagged.empty_pairs();
        let mut at = 0;
        for (_, l, r) in rows {
            let matched = match r {
                Some(r) => {
                    at += 1;
                    holds[at - 1].then_some(rp.parse(r))
                }
                None => None,
            };
            match matched {
                Some(r) => {
                    output[LEFT].push(lp.parse(l));
                    output[RIGHT].push(r);
                }
                None if self.spec.kind == JoinKind::Left => {
                    output[LEFT].push(lp.parse(l));
                    output[RIGHT].push(self.tagged.null_rows[RIGHT].row());
                }
                None => {}
            }
        }
        if output[LEFT].num_rows() == 0 {
            return Ok(());
        }
        let data = self.tagged.pairs_batch(&output, &self.output_schema)?;
        out.push(Message::Data(Batch::append(data)));
        Ok(())
    }

    /// Event time: joins the left rows the watermark reached, then frees the versions no
    /// row to come can read.
    fn release(&mut self, out: &mut Vec<Message>) -> Result<()> {
        let wm = self.watermark.0;
        let mut ready = Vec::new();
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > wm {
                break;
            }
            let ((t, _), (key, row)) = entry.remove_entry();
            self.heap_bytes = self.heap_bytes.saturating_sub(key.len() + row.len() + 2 * size_of::<Box<[u8]>>() + 16);
            ready.push((t, key, row));
        }
        if !ready.is_empty() {
            let rows: Vec<Probe<'_>> = ready.iter().map(|(t, k, r)| (&**k, &**r, self.version_at(k, *t))).collect();
            self.join(&rows, out)?;
        }
        // Free the versions before the last one at or before the watermark.
        let dirty: Vec<Box<[u8]>> = self.dirty.iter().cloned().collect();
        for key in dirty {
            let Some(versions) = self.versions.get_mut(&key) else {
                self.dirty.remove(&key);
                continue;
            };
            let Some((&last, _)) = versions.range(..=wm).next_back() else { continue };
            let later = versions.split_off(&last);
            for (_, old) in std::mem::replace(versions, later) {
                self.heap_bytes = self.heap_bytes.saturating_sub(version_bytes(&key, old.as_deref()));
            }
            if versions.first_key_value().is_some_and(|(_, v)| v.is_none()) {
                if let Some((_, old)) = versions.pop_first() {
                    self.heap_bytes = self.heap_bytes.saturating_sub(version_bytes(&key, old.as_deref()));
                }
            }
            if versions.is_empty() {
                self.versions.remove(&key);
            }
            if self.versions.get(&key).is_none_or(|v| v.len() <= 1 && v.keys().all(|t| *t <= wm)) {
                self.dirty.remove(&key);
            }
        }
        shrink_if_sparse(&mut self.versions);
        Ok(())
    }

    fn snapshot(&self) -> Result<StateSnapshot> {
        let mut packer = Packer::default();
        let kp = self.tagged.keys.parser();
        let (lp, rp) = (self.tagged.sides[LEFT].parser(), self.tagged.sides[RIGHT].parser());
        let (mut keys, mut times, mut seqs, mut rows): (Vec<Row<'_>>, Vec<i64>, Vec<u64>, Vec<Row<'_>>) =
            Default::default();
        for ((t, seq), (key, row)) in &self.waiting {
            keys.push(kp.parse(key));
            times.push(*t);
            seqs.push(*seq);
            rows.push(lp.parse(row));
        }
        let n = times.len();
        let mut columns = self.tagged.keys.convert_rows(keys).map_err(self.arrow_err())?;
        columns.push(Arc::new(Int64Array::from(times)) as ArrayRef);
        columns.push(Arc::new(UInt64Array::from(seqs)) as ArrayRef);
        columns.extend(self.tagged.sides[LEFT].convert_rows(rows).map_err(self.arrow_err())?);
        let waiting = packer.add(columns, n).map_err(self.arrow_err())?;
        let (mut keys, mut times, mut deleted, mut rows): (Vec<Row<'_>>, Vec<i64>, Vec<u64>, Vec<Row<'_>>) =
            Default::default();
        for (key, versions) in &self.versions {
            for (t, row) in versions {
                keys.push(kp.parse(key));
                times.push(*t);
                deleted.push(u64::from(row.is_none()));
                rows.push(row.as_deref().map_or(self.tagged.null_rows[RIGHT].row(), |r| rp.parse(r)));
            }
        }
        let n = times.len();
        let mut columns = self.tagged.keys.convert_rows(keys).map_err(self.arrow_err())?;
        columns.push(Arc::new(Int64Array::from(times)) as ArrayRef);
        columns.push(Arc::new(UInt64Array::from(deleted)) as ArrayRef);
        columns.extend(self.tagged.sides[RIGHT].convert_rows(rows).map_err(self.arrow_err())?);
        let versions = packer.add(columns, n).map_err(self.arrow_err())?;
        let meta = Meta { watermark: self.watermark.0, next_seq: self.next_seq, waiting, versions };
        Ok(StateSnapshot { meta: to_meta(&self.name, &meta)?, batches: packer.finish().map_err(self.arrow_err())? })
    }

    fn restore(&mut self, snapshot: StateSnapshot) -> Result<()> {
        let name = self.name.clone();
        let meta: Meta = from_meta(&name, snapshot.meta)?;
        self.watermark = Watermark(meta.watermark);
        self.next_seq = meta.next_seq;
        for (side, part) in [(LEFT, meta.waiting), (RIGHT, meta.versions)] {
            let (keys, [times, flags], rows) =
                self.tagged.restore_part(&snapshot.batches, part, side, [DataType::Int64, DataType::UInt64])?;
            let times = times.as_primitive::<Int64Type>();
            let flags = flags.as_primitive::<UInt64Type>();
            for i in 0..times.len() {
                let (key, row) = (keys.row(i), rows.row(i));
                if side == LEFT {
                    self.heap_bytes += key.as_ref().len() + row.as_ref().len() + 2 * size_of::<Box<[u8]>>() + 16;
                    self.waiting.insert((times.value(i), flags.value(i)), (key.as_ref().into(), row.as_ref().into()));
                } else {
                    let row = (flags.value(i) == 0).then_some(row.as_ref());
                    self.add_version(key.as_ref(), times.value(i), row);
                }
            }
        }
        Ok(())
    }
}

impl StreamOperator for TemporalJoinOperator {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        let data = &batch.data;
        if data.num_rows() == 0 {
            return Ok(());
        }
        let key_columns = &data.columns()[..self.spec.key_names.len()];
        let decoded = self.tagged.decode(data)?;
        let (keys, rows) = (&decoded.keys, &decoded.rows);
        let time = |side: usize, column: Option<usize>| match column {
            Some(t) => event_times(self.tagged.side_column(data, side, t).as_ref()).map(Some).map_err(self.arrow_err()),
            None => Ok(None),
        };
        let times = [time(LEFT, self.spec.left_time)?, time(RIGHT, self.spec.right_time)?];
        let kinds = batch.row_kinds.as_ref();
        // Processing time: left rows joined at once, in order with the versions.
        let mut now: Vec<KeyedRow> = Vec::new();
        for i in 0..data.num_rows() {
            let side = decoded.side[i];
            let keyed = key_columns.iter().all(|k| k.is_valid(i));
            let kind =
                kinds.filter(|k| k.is_valid(i)).and_then(|k| RowKind::from_code(k.value(i))).unwrap_or(RowKind::Insert);
            let key = keys.row(i);
            let row = rows[side].row(i);
            if side == RIGHT {
                if !keyed || kind == RowKind::UpdateBefore {
                    continue;
                }
                let t = match &times[RIGHT] {
                    Some(ts) if ts.is_valid(i) => ts.value(i),
                    Some(_) => continue,
                    None => 0,
                };
                if !self.event_time() && !now.is_empty() {
                    // Left rows before this version join the one before it.
                    self.flush_now(&mut now, out)?;
                }
                let version = (kind != RowKind::Delete).then_some(row.as_ref());
                self.add_version(key.as_ref(), t, version);
                continue;
            }
            if !kind.is_accumulate() {
                return Err(EngineError::Plan(format!(
                    "{}: the stream side is append-only, got a {} row",
                    self.name,
                    kind.short_string()
                )));
            }
            let key_bytes: Box<[u8]> = if keyed { key.as_ref().into() } else { Box::from([]) };
            match &times[LEFT] {
                Some(ts) => {
                    if !ts.is_valid(i) {
                        continue;
                    }
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    let row: Box<[u8]> = row.as_ref().into();
                    self.heap_bytes += key_bytes.len() + row.len() + 2 * size_of::<Box<[u8]>>() + 16;
                    // A NULL key can only be padded: it waits like the others, with no key.
                    self.waiting.insert((ts.value(i), seq), (key_bytes, row));
                }
                None => now.push((key_bytes, row.as_ref().into())),
            }
        }
        self.flush_now(&mut now, out)
    }

    fn handle_watermark(&mut self, wm: Watermark, out: &mut Vec<Message>) -> Result<()> {
        if wm > self.watermark {
            self.watermark = wm;
            if self.event_time() {
                self.release(out)?;
            }
        }
        out.push(Message::Watermark(wm));
        Ok(())
    }

    /// Waiting rows, versions, the tables holding them.
    fn state_bytes(&self) -> usize {
        self.heap_bytes + hash_map_bytes(&self.versions) + btree_bytes::<(Timestamp, u64), KeyedRow>(self.waiting.len())
    }

    fn snapshot_state(&mut self) -> Result<Option<StateSnapshot>> {
        self.snapshot().map(Some)
    }

    fn restore_state(&mut self, state: StateSnapshot) -> Result<()> {
        self.restore(state)
    }
}

impl TemporalJoinOperator {
    /// Processing time: joins the left rows gathered so far with the latest versions.
    fn flush_now(&mut self, now: &mut Vec<KeyedRow>, out: &mut Vec<Message>) -> Result<()> {
        if now.is_empty() {
            return Ok(());
        }
        let rows: Vec<Probe<'_>> =
            now.iter().map(|(k, r)| (&**k, &**r, if k.is_empty() { None } else { self.version_at(k, 0) })).collect();
        self.join(&rows, out)?;
        now.clear();
        Ok(())
    }
}

#[cfg(test)]
#[path = "temporal_join_tests.rs"]
mod tests;
