//! Checkpoints of the group aggregation: every key's group.
//!
//! ```text
//! meta                          batches (packed, see `operators::snapshot`)
//!   groups: Part           ──►    one row per key: key columns, row count
//!   ages: Option<Part>     ──►    with state TTL: per key, ms since its last write
//!   emitted: Part          ──►    per key that emitted: key's index, the values emitted
//!   aggregates: [               per aggregate:
//!     States {columns, part} ──►    accumulators: `Accumulator::state` per key
//!     Counts(part)           ──►    MIN/MAX, DISTINCT: key's index, value columns, count
//!   ]
//! ```
//!
//! With state TTL the keys are written oldest write first, so a restore rebuilds the expiry
//! order. Reading an accumulator's state may consume it (DataFusion's contract), so the
//! snapshot merges the state it read into a fresh accumulator, which goes on as the old one
//! would have. A DISTINCT aggregate's inner accumulator is not stored: it is rebuilt from
//! the values counted, which are exactly the values it has seen.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Int64Type, UInt32Type, UInt64Type};
use datafusion::common::ScalarValue;
use serde::{Deserialize, Serialize};

use super::native::NativeKind;
use super::state::{AggKind, AggPlan, AggState};
use super::{Group, GroupAggregateOperator};
use crate::checkpoint::StateSnapshot;
use crate::error::{EngineError, Result};
use crate::operators::snapshot::{check_types, from_meta, malformed, part_columns, to_meta, Packer, Part};
use crate::operators::ttl::{age_column, written_at};

#[derive(Serialize, Deserialize)]
struct Meta {
    /// Key columns and row count per key.
    groups: Part,
    /// With state TTL: per key, the age of its last write in ms.
    #[serde(default)]
    ages: Option<Part>,
    /// Index of the key, then the values it last emitted.
    emitted: Part,
    /// Per aggregate.
    aggregates: Vec<AggMeta>,
}

#[derive(Serialize, Deserialize)]
enum AggMeta {
    /// `Accumulator::state` per key: `columns` columns; `None` without keys.
    States { columns: usize, part: Option<Part> },
    /// Values counted: index of the key, the value's columns, its count.
    Counts(Part),
}

/// One aggregate's state of every key, gathered for a snapshot.
enum Gathered<'a> {
    /// Per state column, per key.
    States(Vec<Vec<ScalarValue>>),
    /// (key index, value, count).
    Counts(Vec<(u32, &'a [u8], i64)>),
}

impl GroupAggregateOperator {
    /// The keys in the order a snapshot lists them (with TTL: oldest write first, with the
    /// age of that write).
    fn snapshot_order(&self) -> (Vec<Box<[u8]>>, Option<ArrayRef>) {
        match &self.expiry {
            Some(e) => {
                let (keys, ages): (Vec<Box<[u8]>>, Vec<_>) =
                    e.oldest_first(e.now()).map(|(k, age)| (Box::from(k), age)).unzip();
                (keys, Some(age_column(ages)))
            }
            None => (self.groups.keys().cloned().collect(), None),
        }
    }

    /// Reads the accumulators' states, replacing each accumulator by a fresh one that
    /// merged what was read (reading may consume the state).
    fn read_states(&mut self, keys: &[Box<[u8]>]) -> Result<Vec<Option<Vec<Vec<ScalarValue>>>>> {
        let expr_err = self.expr_err();
        let mut states: Vec<Option<Vec<Vec<ScalarValue>>>> =
            self.aggregates.iter().map(|a| if a.values().is_none() { Some(Vec::new()) } else { None }).collect();
        for key in keys {
            let Some(group) = self.groups.get_mut(key) else {
                return Err(EngineError::Internal(format!("{}: a key to expire has no state", self.name)));
            };
            for ((plan, state), columns) in self.aggregates.iter().zip(&mut group.aggregates).zip(&mut states) {
                if let (AggKind::SharedDistinct { set, member }, Some(columns)) = (&plan.kind, &mut *columns) {
                    // Its values, as its own set would list them.
                    let Some(set) = group.distinct.get(*set) else { continue };
                    columns.resize_with(1, Vec::new);
                    columns[0].push(set.state(*member));
                    continue;
                }
                let (Some(acc), Some(columns)) = (state.accumulator(), columns) else { continue };
                let read = acc.state().map_err(&expr_err)?;
                let arrays = read.iter().map(ScalarValue::to_array).collect::<std::result::Result<Vec<_>, _>>();
                let mut fresh = plan.create().map_err(&expr_err)?;
                if let Some(f) = fresh.accumulator() {
                    f.merge_batch(&arrays.map_err(&expr_err)?).map_err(&expr_err)?;
                }
                *state = fresh;
                columns.resize_with(read.len(), Vec::new);
                for (column, value) in columns.iter_mut().zip(read) {
                    column.push(value);
                }
            }
        }
        Ok(states)
    }

    pub(super) fn snapshot(&mut self) -> Result<StateSnapshot> {
        let name = self.name.clone();
        let arrow_err = |source| EngineError::Arrow { operator: name.clone(), source };
        let expr_err = self.expr_err();
        let (keys, ages) = self.snapshot_order();
        let states = self.read_states(&keys)?;
        let mut packer = Packer::default();
        let n = keys.len();
        let groups: Vec<&Group> = keys.iter().filter_map(|k| self.groups.get(k)).collect();
        let mut columns = self.key_codec.decode(keys.iter().map(|k| &**k)).map_err(&arrow_err)?;
        columns.push(Arc::new(Int64Array::from_iter_values(groups.iter().map(|g| g.rows))));
        let groups_part = packer.add(columns, n).map_err(&arrow_err)?;
        let ages = match ages {
            Some(a) => Some(packer.add(vec![a], n).map_err(&arrow_err)?),
            None => None,
        };
        let emitted: Vec<(u32, &[u8])> =
            groups.iter().enumerate().filter_map(|(i, g)| g.emitted.as_deref().map(|e| (i as u32, e))).collect();
        let mut columns: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from_iter_values(emitted.iter().map(|e| e.0)))];
        columns.extend(self.value_codec.decode(emitted.iter().map(|e| e.1)).map_err(&arrow_err)?);
        let emitted = packer.add(columns, emitted.len()).map_err(&arrow_err)?;
        let mut aggregates = Vec::with_capacity(self.aggregates.len());
        for (j, (plan, states)) in self.aggregates.iter().zip(states).enumerate() {
            let gathered = match states {
                Some(states) => Gathered::States(states),
                None => Gathered::Counts(
                    groups
                        .iter()
                        .enumerate()
                        .flat_map(|(i, g)| {
                            g.aggregates[j].counts().into_iter().flatten().map(move |(v, c)| (i as u32, v, c))
                        })
                        .collect(),
                ),
            };
            aggregates.push(pack_aggregate(&mut packer, plan, gathered, n).map_err(|e| match e {
                PackError::Arrow(source) => EngineError::Arrow { operator: name.clone(), source },
                PackError::DataFusion(source) => expr_err(source),
            })?);
        }
        let meta = Meta { groups: groups_part, ages, emitted, aggregates };
        Ok(StateSnapshot { meta: to_meta(&name, &meta)?, batches: packer.finish().map_err(arrow_err)? })
    }
}

enum PackError {
    Arrow(arrow::error::ArrowError),
    DataFusion(datafusion::error::DataFusionError),
}

fn pack_aggregate(
    packer: &mut Packer,
    plan: &AggPlan,
    gathered: Gathered<'_>,
    keys: usize,
) -> std::result::Result<AggMeta, PackError> {
    match gathered {
        Gathered::States(states) => {
            let columns = states.len();
            if keys == 0 || columns == 0 {
                return Ok(AggMeta::States { columns, part: None });
            }
            let arrays = states
                .into_iter()
                .map(ScalarValue::iter_to_array)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(PackError::DataFusion)?;
            Ok(AggMeta::States { columns, part: Some(packer.add(arrays, keys).map_err(PackError::Arrow)?) })
        }
        Gathered::Counts(entries) => {
            let mut columns: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from_iter_values(entries.iter().map(|e| e.0)))];
            if let Some(codec) = plan.values() {
                columns.extend(codec.decode(entries.iter().map(|e| e.1)).map_err(PackError::Arrow)?);
            }
            columns.push(Arc::new(Int64Array::from_iter_values(entries.iter().map(|e| e.2))));
            Ok(AggMeta::Counts(packer.add(columns, entries.len()).map_err(PackError::Arrow)?))
        }
    }
}

impl GroupAggregateOperator {
    /// Takes the state of [`Self::snapshot`] of an operator of the same spec.
    pub(super) fn restore(&mut self, snapshot: StateSnapshot) -> Result<()> {
        let name = self.name.clone();
        let arrow_err = |source| EngineError::Arrow { operator: name.clone(), source };
        let meta: Meta = from_meta(&name, snapshot.meta)?;
        let batches = &snapshot.batches;
        let width = self.key_codec.types().len();
        let columns = part_columns(&name, batches, meta.groups, width + 1)?;
        check_types(&name, &columns[..width], self.key_codec.types())?;
        let Some(rows) = columns[width].as_primitive_opt::<Int64Type>() else {
            return Err(malformed(&name, "row counts of another type"));
        };
        let n = rows.len();
        let keys = self.key_codec.encode(&columns[..width]).map_err(&arrow_err)?;
        let mut groups = Vec::with_capacity(n);
        for i in 0..n {
            let mut group = self.new_group()?;
            group.rows = rows.value(i);
            groups.push(group);
        }
        self.restore_emitted(batches, meta.emitted, &mut groups)?;
        if meta.aggregates.len() != self.aggregates.len() {
            return Err(malformed(
                &name,
                format!("{} aggregates, planned {}", meta.aggregates.len(), self.aggregates.len()),
            ));
        }
        for (j, agg) in meta.aggregates.into_iter().enumerate() {
            self.restore_aggregate(batches, j, agg, &mut groups)?;
        }
        let ages = match meta.ages {
            Some(part) if part.rows == n => {
                let column = part_columns(&name, batches, part, 1)?;
                let Some(ages) = column[0].as_primitive_opt::<UInt64Type>().cloned() else {
                    return Err(malformed(&name, "ages of another type"));
                };
                Some(ages)
            }
            Some(_) => return Err(malformed(&name, "not one age per key")),
            None => None,
        };
        // With state TTL, the keys are taken as written as long before now as they were
        // before the snapshot (a snapshot without ages: now).
        if let Some(e) = &mut self.expiry {
            e.clear();
        }
        let now = self.expiry.as_ref().map(|e| e.now());
        self.groups = HashMap::with_capacity_and_hasher(n, Default::default());
        self.heap_bytes = 0;
        for (i, mut group) in groups.into_iter().enumerate() {
            let key = keys.row(i);
            if let (Some(e), Some(now)) = (&mut self.expiry, now) {
                group.write = e.write(key, None, written_at(now, ages.as_ref().map_or(0, |a| a.value(i))));
            }
            if self.groups.contains_key(key) {
                return Err(malformed(&name, "two groups of one key"));
            }
            self.store(Box::from(key), group);
        }
        Ok(())
    }

    fn restore_emitted(&self, batches: &[arrow::array::RecordBatch], part: Part, groups: &mut [Group]) -> Result<()> {
        let name = &self.name;
        let types = self.value_codec.types();
        let columns = part_columns(name, batches, part, types.len() + 1)?;
        check_types(name, &columns[1..], types)?;
        let indices = key_indices(name, &columns[0], groups.len())?;
        let values = self
            .value_codec
            .encode(&columns[1..])
            .map_err(|source| EngineError::Arrow { operator: name.clone(), source })?;
        for (r, i) in indices.iter().enumerate() {
            groups[*i].emitted = Some(Box::from(values.row(r)));
        }
        Ok(())
    }

    fn restore_aggregate(
        &self,
        batches: &[arrow::array::RecordBatch],
        j: usize,
        meta: AggMeta,
        groups: &mut [Group],
    ) -> Result<()> {
        let name = &self.name;
        let Some(plan) = self.aggregates.get(j) else {
            return Err(malformed(name, format!("aggregate {j} is not planned")));
        };
        let expr_err = self.expr_err();
        match (meta, plan.values()) {
            (AggMeta::States { part: None, .. }, None) => Ok(()),
            (AggMeta::States { columns, part: Some(part) }, None) => {
                let states = part_columns(name, batches, part, columns)?;
                // A fresh accumulator's state has the types a snapshot of it has (a shared
                // set's member: those of its own set).
                let mut probe = match plan.kind {
                    AggKind::SharedDistinct { .. } => AggState::Native(NativeKind::CountDistinctInt64.create()),
                    _ => plan.create().map_err(&expr_err)?,
                };
                let Some(acc) = probe.accumulator() else {
                    return Err(malformed(name, format!("aggregate {j} is not an accumulator")));
                };
                let types: Vec<DataType> = acc.state().map_err(&expr_err)?.iter().map(|s| s.data_type()).collect();
                check_types(name, &states, &types)?;
                if states.len() != types.len() || part.rows != groups.len() {
                    return Err(malformed(name, format!("aggregate {j} has states of another shape")));
                }
                for (i, group) in groups.iter_mut().enumerate() {
                    let row: Vec<ArrayRef> = states.iter().map(|c| c.slice(i, 1)).collect();
                    if let AggKind::SharedDistinct { set, member } = plan.kind {
                        let Some(set) = group.distinct.get_mut(set) else { continue };
                        set.merge(member, &row).map_err(&expr_err)?;
                        continue;
                    }
                    let Some(acc) = group.aggregates[j].accumulator() else { continue };
                    acc.merge_batch(&row).map_err(&expr_err)?;
                }
                Ok(())
            }
            (AggMeta::Counts(part), Some(codec)) => {
                let width = codec.types().len();
                let columns = part_columns(name, batches, part, width + 2)?;
                check_types(name, &columns[1..=width], codec.types())?;
                let indices = key_indices(name, &columns[0], groups.len())?;
                let Some(counts) = columns[width + 1].as_primitive_opt::<Int64Type>() else {
                    return Err(malformed(name, "value counts of another type"));
                };
                let values = columns[1..=width].to_vec();
                let encoded =
                    codec.encode(&values).map_err(|source| EngineError::Arrow { operator: name.clone(), source })?;
                // A DISTINCT aggregate's inner accumulator sees each value held once.
                let mut distinct: Vec<Vec<u32>> = vec![Vec::new(); groups.len()];
                for (r, i) in indices.iter().enumerate() {
                    match &mut groups[*i].aggregates[j] {
                        AggState::Extreme(c) => c.restore(encoded.row(r), counts.value(r)),
                        AggState::Distinct { counts: c, .. } => {
                            c.restore(encoded.row(r), counts.value(r));
                            distinct[*i].push(r as u32);
                        }
                        AggState::Native(_) | AggState::Shared | AggState::Accumulator(_) => {
                            return Err(malformed(name, "counts of an accumulator"))
                        }
                    }
                }
                for (group, rows) in groups.iter_mut().zip(distinct) {
                    let AggState::Distinct { inner, .. } = &mut group.aggregates[j] else { continue };
                    if rows.is_empty() {
                        continue;
                    }
                    let indices = UInt32Array::from(rows);
                    let taken =
                        values.iter().map(|v| take(v, &indices, None)).collect::<std::result::Result<Vec<_>, _>>();
                    let taken = taken.map_err(|source| EngineError::Arrow { operator: name.clone(), source })?;
                    inner.update_batch(&taken).map_err(&expr_err)?;
                }
                Ok(())
            }
            _ => Err(malformed(name, format!("aggregate {j} has state of another kind"))),
        }
    }
}

/// A column of key indices, each below `keys`.
fn key_indices(operator: &str, column: &ArrayRef, keys: usize) -> Result<Vec<usize>> {
    let Some(indices) = column.as_primitive_opt::<UInt32Type>() else {
        return Err(malformed(operator, "key indices of another type"));
    };
    let indices: Vec<usize> = indices.values().iter().map(|i| *i as usize).collect();
    if indices.iter().any(|i| *i >= keys) || column.null_count() > 0 {
        return Err(malformed(operator, "a key index out of range"));
    }
    Ok(indices)
}
