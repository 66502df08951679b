//! Top-N without a window (Flink's `Rank` with `ROW_NUMBER`): per partition, the first
//! `limit` rows by the ORDER BY of every row so far, as an updating changelog of
//! `(row, rank)`. Deduplication keeping the last row is the case `limit` = 1, ORDER BY the
//! time DESC, ties going to the newest row.
//!
//! Per partition the operator holds rows ordered by their sort key (Arrow's row format,
//! which compares as the ORDER BY with its directions and NULL order) and a sequence number
//! that breaks ties by arrival. From an append-only input it holds only the top `limit`
//! rows per partition (a row that falls out can never come back), in a short sorted `Vec`
//! with each row's sort key and bytes in one allocation: keep-last deduplication holds one
//! row for each of millions of keys, and a `BTreeMap` would give each key a node of ~450
//! bytes. From an updating input it holds every row in a `BTreeMap`, so that when a top
//! row is retracted the next one moves up (as Flink's `RetractableTopNFunction`).
//!
//! What it emits is computed per batch and partition: the top rows before the batch
//! against the top rows after it, rank by rank (a rank whose row changed: `-U` old, `+U`
//! new; a rank that filled: `+I`; a rank that emptied: `-D`). Flink emits the same per row;
//! per batch, a row that enters and leaves the top within one batch emits nothing, and the
//! changelog is shorter but leaves the same table.
//!
//! With `table.exec.state.ttl` a partition's rows expire once the partition was last
//! written the TTL or more ago; expiry emits nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::mem::size_of;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, Int8Array, RecordBatch, UInt64Array};
use arrow::compute::{cast, SortOptions};
use arrow::datatypes::{DataType, SchemaRef, UInt64Type};
use arrow::error::ArrowError;
use arrow::row::{Row, RowConverter, Rows, SortField};
use eddy_connectors::RowKind;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::memory::{btree_bytes, hash_map_bytes, shrink_if_sparse};
use super::snapshot::{check_types, from_meta, key_bytes, key_columns, malformed, part_columns, to_meta, Packer, Part};
use super::ttl::{age_column, written_at, KeyExpiry, WriteId};
use super::{KeyHasher, OperatorContext, StreamOperator};
use crate::checkpoint::StateSnapshot;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message};
use eddy_sql::plan::{TieBreak, TopNSpec};

/// Where a held row ranks: its sort key, then its sequence number.
type Place = (Box<[u8]>, u64);

/// One row held from an append-only input: its sort key and row bytes in one allocation.
struct Held {
    seq: u64,
    /// `sort key ++ row`.
    bytes: Box<[u8]>,
    sort_len: usize,
}

impl Held {
    fn new(sort: &[u8], seq: u64, row: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(sort.len() + row.len());
        bytes.extend_from_slice(sort);
        bytes.extend_from_slice(row);
        Self { seq, bytes: bytes.into_boxed_slice(), sort_len: sort.len() }
    }

    fn place(&self) -> (&[u8], u64) {
        (&self.bytes[..self.sort_len], self.seq)
    }

    fn row(&self) -> &[u8] {
        &self.bytes[self.sort_len..]
    }

    fn bytes(&self) -> usize {
        self.bytes.len() + size_of::<Self>()
    }
}

/// The rows of one partition, best first.
enum Ranked {
    /// From an append-only input: at most `limit` rows, sorted.
    /// Inline for one row: keep-first/keep-last dedup (`rownum <= 1`, Nexmark q18) has
    /// millions of partitions, each then without an allocation of its own.
    Top(SmallVec<[Held; 1]>),
    /// From an updating input: every row.
    All(BTreeMap<Place, Box<[u8]>>),
}

impl Ranked {
    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Ranked::Top(v) => v.len(),
            Ranked::All(m) => m.len(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Ranked::Top(v) => v.is_empty(),
            Ranked::All(m) => m.is_empty(),
        }
    }

    /// `(seq, row)` of every held row, best first.
    fn rows(&self) -> RankedRows<'_> {
        match self {
            Ranked::Top(v) => RankedRows::Top(v.iter()),
            Ranked::All(m) => RankedRows::All(m.iter()),
        }
    }

    /// Bytes of the held rows and their places.
    fn bytes(&self) -> usize {
        match self {
            Ranked::Top(v) => v.iter().map(Held::bytes).sum(),
            Ranked::All(m) => m.iter().map(|(place, row)| held_bytes(place, row)).sum(),
        }
    }
}

/// The iterator of [`Ranked::rows`] (no `Box`: it is made twice per partition a batch touches).
enum RankedRows<'a> {
    Top(std::slice::Iter<'a, Held>),
    All(std::collections::btree_map::Iter<'a, Place, Box<[u8]>>),
}

impl<'a> Iterator for RankedRows<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            RankedRows::Top(it) => it.next().map(|h| (h.seq, h.row())),
            RankedRows::All(it) => it.next().map(|((_, seq), row)| (*seq, &**row)),
        }
    }
}

/// The rows of one partition.
struct Partition {
    ranked: Ranked,
    /// Its last write in the TTL order (with state TTL).
    write: Option<WriteId>,
}

/// What a snapshot's `meta` holds.
#[derive(Serialize, Deserialize)]
struct Meta {
    next_seq: u64,
    /// `[partition keys.., seq, input columns..]` of every held row.
    rows: Part,
    /// With state TTL: `[partition keys.., age ms]`, oldest write first.
    ages: Option<Part>,
}

/// The Top-N operator.
pub struct TopNOperator {
    spec: TopNSpec,
    name: String,
    input_schema: SchemaRef,
    output_schema: SchemaRef,
    /// Partition keys (`None`: one partition).
    keys: Option<RowConverter>,
    key_types: Vec<DataType>,
    sort: RowConverter,
    rows: RowConverter,
    partitions: HashMap<Box<[u8]>, Partition, KeyHasher>,
    next_seq: u64,
    expiry: Option<KeyExpiry>,
    /// Bytes of the held rows, their places and the keys.
    heap_bytes: usize,
}

fn held_bytes(place: &Place, row: &[u8]) -> usize {
    place.0.len() + row.len() + 2 * size_of::<Box<[u8]>>() + size_of::<u64>()
}

impl TopNOperator {
    /// A Top-N reading `ctx.input_schema` and emitting its columns and the rank.
    pub fn new(spec: TopNSpec, ctx: OperatorContext) -> Result<Self> {
        let name = format!("Rank[1..={}]", spec.limit);
        let input = &ctx.input_schema;
        let arrow_err = |source| EngineError::Arrow { operator: name.clone(), source };
        if ctx.output_schema.fields().len() != input.fields().len() + 1 || spec.limit == 0 {
            return Err(EngineError::Plan(format!(
                "{name}: output of {} columns does not fit an input of {}",
                ctx.output_schema.fields().len(),
                input.fields().len()
            )));
        }
        let types = |exprs: &mut dyn Iterator<Item = &eddy_sql::plan::ExprSpec>| -> Result<Vec<DataType>> {
            exprs
                .map(|e| {
                    e.expr.data_type(input).map_err(|e| EngineError::Expression { operator: name.clone(), source: e })
                })
                .collect()
        };
        let key_types = types(&mut spec.partition_keys.iter())?;
        let sort_types = types(&mut spec.order_by.iter().map(|k| &k.expr))?;
        let keys = if key_types.is_empty() {
            None
        } else {
            Some(RowConverter::new(key_types.iter().map(|t| SortField::new(t.clone())).collect()).map_err(arrow_err)?)
        };
        let sort_fields = spec
            .order_by
            .iter()
            .zip(sort_types)
            .map(|(k, t)| {
                SortField::new_with_options(t, SortOptions { descending: k.descending, nulls_first: k.nulls_first })
            })
            .collect();
        let sort = RowConverter::new(sort_fields).map_err(arrow_err)?;
        let rows = RowConverter::new(input.fields().iter().map(|f| SortField::new(f.data_type().clone())).collect())
            .map_err(arrow_err)?;
        Ok(Self {
            expiry: ctx.state_ttl.map(KeyExpiry::new),
            name,
            input_schema: ctx.input_schema,
            output_schema: ctx.output_schema,
            keys,
            key_types,
            sort,
            rows,
            spec,
            partitions: HashMap::default(),
            next_seq: 0,
            heap_bytes: 0,
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

    /// The next sequence number, which orders ties as `spec.ties` says.
    fn seq(&mut self) -> u64 {
        let n = self.next_seq;
        self.next_seq += 1;
        match self.spec.ties {
            TieBreak::Oldest => n,
            TieBreak::Newest => u64::MAX - n,
        }
    }

    /// Evaluates `exprs` on `batch` and encodes them as rows of `converter`.
    fn encode(
        &self,
        converter: &RowConverter,
        exprs: &[&eddy_sql::plan::ExprSpec],
        batch: &RecordBatch,
    ) -> Result<Rows> {
        let columns = exprs
            .iter()
            .map(|e| e.expr.evaluate(batch).and_then(|v| v.into_array(batch.num_rows())))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| EngineError::Expression { operator: self.name.clone(), source: e })?;
        converter.convert_columns(&columns).map_err(self.arrow_err())
    }

    /// The partition keys of `batch`'s rows (`None` without keys: one empty key).
    fn partition_keys(&self, batch: &RecordBatch) -> Result<Option<Rows>> {
        match &self.keys {
            None => Ok(None),
            Some(converter) => {
                let exprs: Vec<&_> = self.spec.partition_keys.iter().collect();
                self.encode(converter, &exprs, batch).map(Some)
            }
        }
    }

    fn sort_keys(&self, batch: &RecordBatch) -> Result<Rows> {
        let exprs: Vec<&_> = self.spec.order_by.iter().map(|k| &k.expr).collect();
        self.encode(&self.sort, &exprs, batch)
    }

    /// The rows of a partition's top, best first.
    fn top(&self, key: &[u8]) -> impl Iterator<Item = &[u8]> {
        self.partitions.get(key).into_iter().flat_map(|p| p.ranked.rows().map(|(_, row)| row)).take(self.spec.limit)
    }

    fn expire(&mut self) -> Option<std::time::Instant> {
        let expiry = self.expiry.as_mut()?;
        let now = expiry.now();
        let mut dropped = false;
        while let Some(key) = expiry.pop_expired(now) {
            if let Some((k, p)) = self.partitions.remove_entry(&key) {
                self.heap_bytes = self.heap_bytes.saturating_sub(p.ranked.bytes() + k.len() + size_of::<Partition>());
                dropped = true;
            }
        }
        if dropped {
            shrink_if_sparse(&mut self.partitions);
        }
        Some(now)
    }

    /// Holds `row` at `(sort, seq)` in partition `key`; from an append-only input, lets go
    /// of the row that fell out of the top (or does not take a row that would not enter).
    fn hold(&mut self, key: &[u8], sort: &[u8], seq: u64, row: &[u8], now: Option<std::time::Instant>) {
        if !self.partitions.contains_key(key) {
            self.heap_bytes += key.len() + size_of::<Partition>();
            let ranked =
                if self.spec.input_updating { Ranked::All(BTreeMap::new()) } else { Ranked::Top(SmallVec::new()) };
            self.partitions.insert(key.into(), Partition { ranked, write: None });
        }
        let Some(p) = self.partitions.get_mut(key) else { return };
        if let (Some(expiry), Some(now)) = (self.expiry.as_mut(), now) {
            p.write = Some(expiry.write(key, p.write, now));
        }
        match &mut p.ranked {
            Ranked::All(ranked) => {
                let place: Place = (sort.into(), seq);
                self.heap_bytes += held_bytes(&place, row);
                ranked.insert(place, row.into());
            }
            Ranked::Top(top) => {
                let at = top.partition_point(|h| h.place() < (sort, seq));
                if at >= self.spec.limit {
                    return;
                }
                if top.len() == self.spec.limit {
                    if let Some(out) = top.pop() {
                        self.heap_bytes = self.heap_bytes.saturating_sub(out.bytes());
                    }
                }
                let held = Held::new(sort, seq, row);
                self.heap_bytes += held.bytes();
                top.insert(at, held);
            }
        }
    }

    /// Takes back one held copy of `row` (sort key `sort`) from partition `key`.
    fn retract(&mut self, key: &[u8], sort: &[u8], row: &[u8], now: Option<std::time::Instant>) {
        let Some(p) = self.partitions.get_mut(key) else { return };
        if let (Some(expiry), Some(now)) = (self.expiry.as_mut(), now) {
            p.write = Some(expiry.write(key, p.write, now));
        }
        match &mut p.ranked {
            Ranked::All(ranked) => {
                let from: Place = (sort.into(), 0);
                let found = ranked.range(from..).take_while(|(place, _)| &*place.0 == sort).find(|(_, r)| &***r == row);
                if let Some((place, _)) = found {
                    let place = place.clone();
                    if let Some(r) = ranked.remove(&place) {
                        self.heap_bytes = self.heap_bytes.saturating_sub(held_bytes(&place, &r));
                    }
                }
            }
            // Not reached: an append-only input retracts nothing (`row_adds` refuses it).
            Ranked::Top(top) => {
                if let Some(at) = top.iter().position(|h| h.place().0 == sort && h.row() == row) {
                    let out = top.remove(at);
                    self.heap_bytes = self.heap_bytes.saturating_sub(out.bytes());
                }
            }
        }
        if p.ranked.is_empty() {
            if let Some((k, p)) = self.partitions.remove_entry(key) {
                self.heap_bytes = self.heap_bytes.saturating_sub(k.len() + size_of::<Partition>());
                if let (Some(e), Some(w)) = (self.expiry.as_mut(), p.write) {
                    e.forget(w);
                }
            }
        }
    }

    fn snapshot(&self) -> Result<StateSnapshot> {
        let mut packer = Packer::default();
        let (mut keys, mut seqs, mut rows): (Vec<&[u8]>, Vec<u64>, Vec<Row<'_>>) = (Vec::new(), Vec::new(), Vec::new());
        let parser = self.rows.parser();
        for (key, p) in &self.partitions {
            for (seq, row) in p.ranked.rows() {
                keys.push(key);
                seqs.push(seq);
                rows.push(parser.parse(row));
            }
        }
        let n = seqs.len();
        let mut columns = key_columns(self.keys.as_ref(), keys).map_err(self.arrow_err())?;
        columns.push(Arc::new(UInt64Array::from(seqs)) as ArrayRef);
        columns.extend(self.rows.convert_rows(rows).map_err(self.arrow_err())?);
        let rows = packer.add(columns, n).map_err(self.arrow_err())?;
        let ages = match &self.expiry {
            Some(e) => {
                let (keys, ages): (Vec<&[u8]>, Vec<_>) = e.oldest_first(e.now()).unzip();
                let n = keys.len();
                let mut columns = key_columns(self.keys.as_ref(), keys).map_err(self.arrow_err())?;
                columns.push(age_column(ages));
                Some(packer.add(columns, n).map_err(self.arrow_err())?)
            }
            None => None,
        };
        let meta = Meta { next_seq: self.next_seq, rows, ages };
        Ok(StateSnapshot { meta: to_meta(&self.name, &meta)?, batches: packer.finish().map_err(self.arrow_err())? })
    }

    fn restore(&mut self, snapshot: StateSnapshot) -> Result<()> {
        let name = self.name.clone();
        let meta: Meta = from_meta(&name, snapshot.meta)?;
        self.partitions.clear();
        self.heap_bytes = 0;
        self.next_seq = meta.next_seq;
        let nk = self.key_types.len();
        let width = self.input_schema.fields().len();
        let columns = part_columns(&name, &snapshot.batches, meta.rows, nk + 1 + width)?;
        let expected: Vec<DataType> = self
            .key_types
            .iter()
            .cloned()
            .chain([DataType::UInt64])
            .chain(self.input_schema.fields().iter().map(|f| f.data_type().clone()))
            .collect();
        check_types(&name, &columns, &expected)?;
        let n = columns[nk].len();
        let keys = key_bytes(self.keys.as_ref(), &columns[..nk], n).map_err(|e| malformed(&name, e))?;
        let seqs = columns[nk].as_primitive::<UInt64Type>();
        let batch = RecordBatch::try_new(self.input_schema.clone(), columns[nk + 1..].to_vec())
            .map_err(|e| malformed(&name, e))?;
        let sorts = self.sort_keys(&batch)?;
        let rows = self.rows.convert_columns(batch.columns()).map_err(|e| malformed(&name, e))?;
        for (i, key) in keys.iter().enumerate() {
            self.hold(key, sorts.row(i).as_ref(), seqs.value(i), rows.row(i).as_ref(), None);
        }
        if let Some(expiry) = self.expiry.as_mut() {
            expiry.clear();
            if let Some(part) = meta.ages {
                let columns = part_columns(&name, &snapshot.batches, part, nk + 1)?;
                check_types(&name, &columns, self.key_types.iter().chain([&DataType::UInt64]))?;
                let n = columns[nk].len();
                let keys = key_bytes(self.keys.as_ref(), &columns[..nk], n).map_err(|e| malformed(&name, e))?;
                let ages = columns[nk].as_primitive::<UInt64Type>();
                let now = expiry.now();
                for (i, key) in keys.iter().enumerate() {
                    if let Some(p) = self.partitions.get_mut(key) {
                        p.write = Some(expiry.write(key, None, written_at(now, ages.value(i))));
                    }
                }
            }
        }
        Ok(())
    }
}

impl StreamOperator for TopNOperator {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        let now = self.expire();
        let data = &batch.data;
        if data.num_rows() == 0 {
            return Ok(());
        }
        let adds = super::row_adds(&batch, &self.name, self.spec.input_updating)?;
        let keys = self.partition_keys(data)?;
        let key = |i: usize| keys.as_ref().map_or(&[][..], |k| k.row(i).data());
        let sorts = self.sort_keys(data)?;
        let rows = self.rows.convert_columns(data.columns()).map_err(self.arrow_err())?;
        // Each touched partition's top before the batch, in first-touch order.
        let mut before: Vec<(&[u8], Vec<Box<[u8]>>)> = Vec::new();
        let mut touched: HashSet<&[u8], KeyHasher> = HashSet::default();
        for (i, &add) in adds.iter().enumerate() {
            let key = key(i);
            if touched.insert(key) {
                before.push((key, self.top(key).map(Box::from).collect()));
            }
            let sort = sorts.row(i);
            let row = rows.row(i);
            if add {
                let seq = self.seq();
                self.hold(key, sort.as_ref(), seq, row.as_ref(), now);
            } else {
                self.retract(key, sort.as_ref(), row.as_ref(), now);
            }
        }
        let mut kinds: Vec<i8> = Vec::new();
        let mut ranks: Vec<i64> = Vec::new();
        let mut changed: Vec<&[u8]> = Vec::new();
        for (key, old) in &before {
            let mut new = self.top(key);
            let mut old = old.iter();
            for r in 1.. {
                let rank = i64::try_from(r).unwrap_or(i64::MAX);
                let mut emit = |kind: RowKind, row| {
                    kinds.push(kind.code());
                    ranks.push(rank);
                    changed.push(row);
                };
                match (old.next().map(|o| &**o), new.next()) {
                    (Some(o), Some(n)) if o != n => {
                        emit(RowKind::UpdateBefore, o);
                        emit(RowKind::UpdateAfter, n);
                    }
                    (None, Some(n)) => emit(RowKind::Insert, n),
                    (Some(o), None) => emit(RowKind::Delete, o),
                    (None, None) => break,
                    _ => {}
                }
            }
        }
        if kinds.is_empty() {
            return Ok(());
        }
        let parser = self.rows.parser();
        let mut columns = self.rows.convert_rows(changed.iter().map(|r| parser.parse(r))).map_err(self.arrow_err())?;
        let rank_type = self.output_schema.field(columns.len()).data_type().clone();
        let rank: ArrayRef = Arc::new(Int64Array::from(ranks));
        columns.push(cast(&rank, &rank_type).map_err(self.arrow_err())?);
        let data = RecordBatch::try_new(self.output_schema.clone(), columns).map_err(self.arrow_err())?;
        out.push(Message::Data(Batch { row_kinds: Some(Int8Array::from(kinds)), ..Batch::append(data) }));
        Ok(())
    }

    /// Held rows, their places and keys, the partition table and the TTL order.
    fn state_bytes(&self) -> usize {
        self.heap_bytes
            + hash_map_bytes(&self.partitions)
            + btree_bytes::<Place, Box<[u8]>>(0)
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
#[path = "topn_tests.rs"]
mod tests;
