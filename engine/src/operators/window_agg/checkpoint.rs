//! Checkpoints of the window aggregation: its slices, CUMULATE's running state, and (updating
//! output) the rows last emitted per window and the windows waiting to be emitted.
//!
//! ```text
//! meta                                        batches (packed, see `operators::snapshot`)
//!   watermark                                   one row per group of a frozen partial:
//!   slices: [{end, frozen: [FrozenMeta]}]  ──►    key columns, then every aggregate's
//!   cumulate_running: (period, FrozenMeta)        state arrays (`states[i]` of them)
//!   emitted: [{end, part}]                 ──►  one row per key a window emitted:
//!   dirty: [window end]                           key columns, then one value per aggregate
//! ```
//!
//! Live partials are frozen at the snapshot: an accumulator's state can be read only by
//! consuming it, and a frozen partial is merged into its windows exactly as the live one
//! would have been (the order of a slice's partials, which order-sensitive aggregates
//! see, is kept). So the running operator goes on from the same state it wrote.
//!
//! Processing time is not part of the state: an early fire that was pending is due one
//! early-fire delay after the restore.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};

use super::{Emitted, Finished, Frozen, Slice, WindowAggregateOperator};
use crate::checkpoint::StateSnapshot;
use crate::error::{EngineError, Result};
use crate::operators::snapshot::{check_types, from_meta, malformed, part_columns, to_meta, Packer, Part};

#[derive(Serialize, Deserialize)]
struct Meta {
    /// The last watermark handled, in ms.
    watermark: i64,
    /// By slice end, ascending.
    slices: Vec<SliceMeta>,
    /// CUMULATE: the period start and the state of its last fired window.
    cumulate_running: Option<(i64, FrozenMeta)>,
    /// Updating output: the rows last emitted, by window end, ascending.
    emitted: Vec<EmittedMeta>,
    /// Updating output: the open windows changed since they were last emitted.
    dirty: Vec<i64>,
}

#[derive(Serialize, Deserialize)]
struct SliceMeta {
    end: i64,
    /// In the slice's order.
    frozen: Vec<FrozenMeta>,
}

#[derive(Serialize, Deserialize)]
struct FrozenMeta {
    from_end: i64,
    groups: usize,
    /// Per aggregate, how many state arrays it has (its columns follow the keys in this
    /// order).
    states: Vec<usize>,
    /// `None` for a partial without groups (which merges as nothing).
    part: Option<Part>,
}

#[derive(Serialize, Deserialize)]
struct EmittedMeta {
    end: i64,
    part: Part,
}

impl WindowAggregateOperator {
    /// The state, read without changing what the operator emits later (see the module docs).
    pub(super) fn snapshot(&mut self) -> Result<StateSnapshot> {
        let expr_err = |source| EngineError::Expression { operator: self.name.clone(), source };
        let arrow_err = |source| EngineError::Arrow { operator: self.name.clone(), source };
        let mut packer = Packer::default();
        let mut slices = Vec::with_capacity(self.slices.len());
        for (&end, slice) in self.slices.iter_mut() {
            // Reading a live accumulator consumes it: freeze it, as firing would (module docs).
            slice.freeze_live().map_err(expr_err)?;
            let frozen = slice.frozen.iter().map(|f| pack_frozen(&mut packer, f)).collect::<Result<_, _>>();
            slices.push(SliceMeta { end, frozen: frozen.map_err(arrow_err)? });
        }
        let cumulate_running = match &self.cumulate_running {
            Some((period, running)) => Some((*period, pack_frozen(&mut packer, running).map_err(arrow_err)?)),
            None => None,
        };
        let mut emitted = Vec::with_capacity(self.emitted.len());
        for (&end, e) in &self.emitted {
            // A window is remembered only once it emitted rows; one without rows would diff
            // exactly as one never emitted.
            if e.result.rows == 0 {
                continue;
            }
            let columns: Vec<ArrayRef> = e.result.keys.iter().chain(&e.result.values).cloned().collect();
            let part = packer.add(columns, e.result.rows).map_err(arrow_err)?;
            emitted.push(EmittedMeta { end, part });
        }
        let meta = Meta {
            watermark: self.watermark,
            slices,
            cumulate_running,
            emitted,
            dirty: self.dirty.iter().copied().collect(),
        };
        Ok(StateSnapshot { meta: to_meta(&self.name, &meta)?, batches: packer.finish().map_err(arrow_err)? })
    }

    /// Takes the state of [`Self::snapshot`] of an operator of the same spec.
    pub(super) fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        let name = self.name.clone();
        let meta: Meta = from_meta(&name, state.meta)?;
        let layout = Layout::new(self)?;
        let batches = &state.batches;
        let mut slices = BTreeMap::new();
        for s in meta.slices {
            let frozen = s.frozen.into_iter().map(|f| layout.frozen(batches, f)).collect::<Result<Vec<_>>>()?;
            if slices.insert(s.end, Slice { live: Vec::new(), frozen }).is_some() {
                return Err(malformed(&name, format!("slice {} twice", s.end)));
            }
        }
        let cumulate_running = match meta.cumulate_running {
            Some((period, f)) => Some((period, layout.frozen(batches, f)?)),
            None => None,
        };
        let mut emitted = BTreeMap::new();
        for e in meta.emitted {
            // Keys, then one value per aggregate.
            let mut columns = part_columns(&name, batches, e.part, layout.keys.len() + layout.states.len())?;
            check_types(&name, &columns, &layout.keys)?;
            let values = columns.split_off(layout.keys.len());
            let result = Finished { rows: e.part.rows, keys: columns, values };
            // The index maps a key to its row: interning the keys in row order rebuilds it.
            let expr_err = |source| EngineError::Expression { operator: name.clone(), source };
            let mut index = self.factory.key_table().map_err(expr_err)?;
            index.intern(&result.keys, result.rows, &mut self.groups).map_err(expr_err)?;
            if index.len() != result.rows || self.groups.iter().enumerate().any(|(row, &group)| row != group) {
                return Err(malformed(&name, format!("window {} emitted a key twice", e.end)));
            }
            if emitted.insert(e.end, Emitted { index, result }).is_some() {
                return Err(malformed(&name, format!("window {} emitted twice", e.end)));
            }
        }
        self.watermark = meta.watermark;
        self.slices = slices;
        self.cumulate_running = cumulate_running;
        self.emitted = emitted;
        self.dirty = meta.dirty.into_iter().collect::<BTreeSet<_>>();
        self.last_early_fire = None;
        self.early_due = match self.early_fire {
            Some(delay) if !self.dirty.is_empty() => Some(Instant::now() + delay),
            _ => None,
        };
        Ok(())
    }
}

/// A frozen partial as key columns then state arrays.
fn pack_frozen(packer: &mut Packer, f: &Frozen) -> std::result::Result<FrozenMeta, arrow::error::ArrowError> {
    let (states, part) = if f.groups == 0 {
        (Vec::new(), None)
    } else {
        let columns: Vec<ArrayRef> = f.keys.iter().chain(f.states.iter().flatten()).cloned().collect();
        (f.states.iter().map(Vec::len).collect(), Some(packer.add(columns, f.groups)?))
    };
    Ok(FrozenMeta { from_end: f.from_end, groups: f.groups, states, part })
}

/// The column types a snapshot of this operator must have.
struct Layout {
    name: String,
    keys: Vec<DataType>,
    /// Per aggregate, the types of its state arrays.
    states: Vec<Vec<DataType>>,
}

impl Layout {
    fn new(op: &WindowAggregateOperator) -> Result<Self> {
        let keys = op.factory.key_schema.fields().iter().map(|f| f.data_type().clone()).collect();
        let states = op
            .factory
            .aggregates
            .iter()
            .map(|a| a.state_fields().map(|fields| fields.iter().map(|f| f.data_type().clone()).collect()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|source| EngineError::Expression { operator: op.name.clone(), source })?;
        Ok(Self { name: op.name.clone(), keys, states })
    }

    fn frozen(&self, batches: &[arrow::array::RecordBatch], f: FrozenMeta) -> Result<Frozen> {
        let Some(part) = f.part else {
            if f.groups != 0 {
                return Err(malformed(&self.name, format!("{} groups without their arrays", f.groups)));
            }
            return Ok(Frozen { from_end: f.from_end, groups: 0, keys: Vec::new(), states: Vec::new() });
        };
        let counts_ok = f.states.len() == self.states.len()
            && f.states.iter().zip(&self.states).all(|(n, types)| *n == types.len());
        if !counts_ok || part.rows != f.groups {
            return Err(malformed(&self.name, "a partial aggregate of other aggregates"));
        }
        let mut columns = part_columns(&self.name, batches, part, self.keys.len() + f.states.iter().sum::<usize>())?;
        check_types(&self.name, &columns, self.keys.iter().chain(self.states.iter().flatten()))?;
        let mut rest = columns.split_off(self.keys.len());
        let mut states = Vec::with_capacity(f.states.len());
        for n in f.states {
            let tail = rest.split_off(n);
            states.push(std::mem::replace(&mut rest, tail));
        }
        Ok(Frozen { from_end: f.from_end, groups: f.groups, keys: columns, states })
    }
}
