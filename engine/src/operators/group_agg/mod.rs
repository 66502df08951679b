//! GroupAggregate: non-windowed `GROUP BY`, as Flink's `GroupAggregate`
//! (`GroupAggFunction`): per key, aggregates over every row so far.
//!
//! State per key ([`Group`]): the aggregates' states (see `state.rs`), the number of rows
//! added minus rows taken back (Flink's record counter), and the values last emitted.
//!
//! Each input batch, rows are applied per key in input order, in runs of the same kind:
//! `+I`/`+U` rows are added, `-U`/`-D` rows taken back. A retraction for a key with no
//! state is ignored (Flink: the row was never counted, or its state expired); when a key's
//! row count returns to 0 its state is dropped and a later row starts it afresh.
//!
//! Emission (`GroupEmit::Changelog`): after each batch, for each key the batch touched, in
//! order of first appearance:
//!
//! | before the batch | after the batch     | output                        |
//! |------------------|---------------------|-------------------------------|
//! | not emitted      | rows                | `+I` new                      |
//! | emitted old      | rows, values ≠ old  | `-U` old, `+U` new            |
//! | emitted old      | rows, values = old  | nothing                       |
//! | emitted old      | no rows             | `-D` old (the key is dropped) |
//!
//! This is Flink's mini-batch behaviour (`table.exec.mini-batch.enabled`): Flink without
//! mini-batch emits after every row, so it shows intermediate results a batch folds
//! together (a key added and updated in one batch is one `+I`), but the changelog ends in
//! the same rows. With `table.exec.state.ttl`, unchanged values are emitted as `-U`/`+U`
//! anyway, so downstream operators see the key written (Flink does the same), and a key
//! untouched for the TTL is dropped silently: its next row is a `+I` (see
//! `operators::ttl`).
//!
//! Batch mode (`GroupEmit::Final`): nothing is emitted until the end of the input, then
//! one `+I` row per key with its final values, in key order; a global aggregate (no keys)
//! emits its row even without input (`SELECT COUNT(*)` of nothing is 0), as SQL does.
//!
//! Watermarks pass through: the operator has no timers.

mod checkpoint;
mod native;
mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, Int8Array, RecordBatch, UInt32Array};
use arrow::compute::{cast, filter, prep_null_mask_filter, take};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::physical_expr::PhysicalExpr;
use eddy_connectors::RowKind;
use eddy_sql::plan::{GroupAggSpec, GroupEmit, Retraction};

use self::native::{NativeKind, SharedDistinct, SHARED_MEMBERS};
use self::state::{states_overhead, AggKind, AggPlan, AggState, Codec, Encoded};
use super::memory::{hash_map_bytes, shrink_if_sparse};
use super::ttl::{KeyExpiry, WriteId};
use super::{KeyHasher, OperatorContext, StreamOperator};
use crate::checkpoint::StateSnapshot;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message};

/// Most rows per batch emitted at the end of a batch-mode input.
const FINAL_BATCH_ROWS: usize = 8192;

/// Aggregates per key, emitted as a changelog (or, in batch mode, once at the end).
pub struct GroupAggregateOperator {
    name: String,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    aggregates: Vec<AggPlan>,
    key_codec: Codec,
    /// COUNT(DISTINCT BIGINT) aggregates that share one set of values per group.
    shared: Vec<SharedPlan>,
    /// Encodes the aggregates' output values (what is compared and emitted).
    value_codec: Codec,
    output_schema: SchemaRef,
    /// The input updates: rows may be taken back.
    retracting: bool,
    emit: GroupEmit,
    groups: HashMap<Box<[u8]>, Group, KeyHasher>,
    /// With `table.exec.state.ttl` (streaming only): keys in the order they were last written.
    expiry: Option<KeyExpiry>,
    /// Sum of the groups' `bytes`.
    heap_bytes: usize,
}

/// COUNT(DISTINCT x) aggregates over the same `BIGINT` argument `arg` on an append-only
/// input (2 to [`SHARED_MEMBERS`], told apart by their FILTERs): `members[m]` is the index
/// of the aggregate that is member `m` of the group's [`SharedDistinct`].
struct SharedPlan {
    arg: Arc<dyn PhysicalExpr>,
    members: Vec<usize>,
}

/// One key's state.
struct Group {
    /// Rows added minus rows taken back; the key is dropped when it reaches 0.
    rows: i64,
    aggregates: Vec<AggState>,
    /// Per [`SharedPlan`], the set its members share.
    distinct: Vec<SharedDistinct>,
    /// The values last emitted (`value_codec` bytes); `None` before the first emission.
    emitted: Option<Box<[u8]>>,
    /// Its write in `expiry` (0 without TTL).
    write: WriteId,
    /// Memory held, as last counted (for `heap_bytes`).
    bytes: usize,
}

/// A batch's rows regrouped by key: `first_rows[k]` is the row of key `k`'s first
/// appearance, and its rows are `bounds[k]..bounds[k + 1]` of the permuted columns, in
/// input order.
struct ByKey {
    first_rows: Vec<usize>,
    bounds: Vec<usize>,
    /// Per permuted row, whether it adds (`+I`/`+U`) rather than takes back.
    adds: Vec<bool>,
    /// Per aggregate, its argument columns, permuted, without the rows its FILTER drops.
    args: Vec<Vec<ArrayRef>>,
    /// Per aggregate with a FILTER, for each permuted row the number of rows before it that
    /// the filter keeps (one entry more than rows): permuted rows `r..s` are rows
    /// `kept[r]..kept[s]` of its `args`. Aggregates with the same FILTER share it.
    kept: Vec<Option<Arc<[u32]>>>,
    /// Per [`SharedPlan`]: its argument, permuted, and per permuted row the bits of the
    /// members whose FILTER keeps the row (none where the argument is NULL).
    shared: Vec<(Int64Array, Vec<u8>)>,
}

/// A batch's aggregate arguments and FILTER masks, permuted into key order.
///
/// Aggregates often share arguments and FILTERs (`COUNT(DISTINCT a) FILTER (WHERE p)` beside
/// `COUNT(*) FILTER (WHERE p)`): each distinct one is evaluated and permuted once for the
/// whole batch; a group's rows are then slices of those (no kernel call per group and
/// aggregate).
struct Inputs<'a> {
    data: &'a RecordBatch,
    /// The rows in key order; `None` when that is their order already.
    order: Option<UInt32Array>,
    columns: Vec<(&'a Arc<dyn PhysicalExpr>, ArrayRef)>,
    masks: Vec<Mask<'a>>,
}

/// A FILTER, its rows to keep, and for each row the number kept before it (one entry more
/// than rows).
type Mask<'a> = (&'a Arc<dyn PhysicalExpr>, BooleanArray, Arc<[u32]>);

impl<'a> Inputs<'a> {
    fn permute(&self, op: &GroupAggregateOperator, a: ArrayRef) -> Result<ArrayRef> {
        match &self.order {
            Some(order) => take(&a, order, None).map_err(op.arrow_err()),
            None => Ok(a),
        }
    }

    /// The index in `columns` of argument `e`.
    fn column(&mut self, op: &GroupAggregateOperator, e: &'a Arc<dyn PhysicalExpr>) -> Result<usize> {
        if let Some(id) = self.columns.iter().position(|(seen, _)| *seen == e) {
            return Ok(id);
        }
        let column = self.permute(op, op.eval(e, self.data)?)?;
        self.columns.push((e, column));
        Ok(self.columns.len() - 1)
    }

    /// The index in `masks` of FILTER `f` (of aggregate `display`).
    fn mask(&mut self, op: &GroupAggregateOperator, f: &'a Arc<dyn PhysicalExpr>, display: &str) -> Result<usize> {
        if let Some(id) = self.masks.iter().position(|(seen, _, _)| *seen == f) {
            return Ok(id);
        }
        let mask = op.filter_mask(&op.eval(f, self.data)?, display)?;
        let mask = self.permute(op, Arc::new(mask))?.as_boolean().clone();
        let mut before = Vec::with_capacity(mask.len() + 1);
        let mut count = 0u32;
        before.push(0);
        for keep in mask.values() {
            count += u32::from(keep);
            before.push(count);
        }
        self.masks.push((f, mask, before.into()));
        Ok(self.masks.len() - 1)
    }
}

/// A key the batch touched: its state after the batch (`None`: it has no rows) and the
/// values emitted for it before.
struct Touched {
    key: Box<[u8]>,
    group: Option<Group>,
    before: Option<Box<[u8]>>,
}

impl GroupAggregateOperator {
    /// The operator for `spec`; the output has the keys, then one column per aggregate.
    pub fn new(spec: GroupAggSpec, ctx: OperatorContext) -> Result<Self> {
        let name = describe(&spec);
        let input = &ctx.input_schema;
        let output = &ctx.output_schema;
        let plan_err = |msg: String| EngineError::Plan(format!("{name}: {msg}"));
        if output.fields().len() != spec.keys.len() + spec.aggregates.len() {
            return Err(plan_err(format!(
                "{} output columns for {} keys and {} aggregates",
                output.fields().len(),
                spec.keys.len(),
                spec.aggregates.len()
            )));
        }
        let expr_err = |source| EngineError::Expression { operator: name.clone(), source };
        let arrow_err = |source| EngineError::Arrow { operator: name.clone(), source };
        let key_types = spec.keys.iter().map(|k| k.expr.data_type(input)).collect::<std::result::Result<Vec<_>, _>>();
        let key_codec = Codec::new(&key_types.map_err(expr_err)?).map_err(arrow_err)?;
        let mut aggregates = Vec::with_capacity(spec.aggregates.len());
        for (i, a) in spec.aggregates.iter().enumerate() {
            let output_type = output.field(spec.keys.len() + i).data_type().clone();
            let kind = aggregate_kind(&a.function, input, spec.input_updating)
                .map_err(|e| plan_err(format!("{} over an updating input: {e}", a.display)))?;
            let plan = AggPlan {
                args: a.function.expressions(),
                filter: a.filter.as_ref().map(|f| f.expr.clone()),
                kind,
                output_type,
                display: a.display.clone(),
            };
            // Build one state now so an unsupported aggregate fails the plan, not a batch.
            plan.create().map_err(expr_err)?;
            aggregates.push(plan);
        }
        let shared = share_distinct_sets(&mut aggregates);
        let value_types: Vec<DataType> = aggregates.iter().map(|a| a.output_type.clone()).collect();
        let value_codec = Codec::new(&value_types).map_err(arrow_err)?;
        let expiry = match spec.emit {
            GroupEmit::Changelog => ctx.state_ttl.map(KeyExpiry::new),
            // Batch mode keeps every key to the end.
            GroupEmit::Final => None,
        };
        Ok(Self {
            name,
            keys: spec.keys.iter().map(|k| k.expr.clone()).collect(),
            aggregates,
            key_codec,
            shared,
            value_codec,
            output_schema: ctx.output_schema,
            retracting: spec.input_updating,
            emit: spec.emit,
            groups: HashMap::default(),
            expiry,
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

    fn expr_err(&self) -> impl Fn(DataFusionError) -> EngineError {
        let operator = self.name.clone();
        move |source| EngineError::Expression { operator: operator.clone(), source }
    }

    fn arrow_err(&self) -> impl Fn(arrow::error::ArrowError) -> EngineError {
        let operator = self.name.clone();
        move |source| EngineError::Arrow { operator: operator.clone(), source }
    }

    /// Drops the groups of the keys that expired (state TTL); returns the time now.
    fn expire(&mut self) -> Option<std::time::Instant> {
        let expiry = self.expiry.as_mut()?;
        let now = expiry.now();
        let mut dropped = false;
        while let Some(key) = expiry.pop_expired(now) {
            if let Some(group) = self.groups.remove(&key) {
                self.heap_bytes = self.heap_bytes.saturating_sub(group.bytes);
            }
            dropped = true;
        }
        if dropped {
            shrink_if_sparse(&mut self.groups);
        }
        Some(now)
    }

    /// An empty group.
    fn new_group(&self) -> Result<Group> {
        let aggregates = self.aggregates.iter().map(AggPlan::create).collect::<std::result::Result<Vec<_>, _>>();
        let distinct = self.shared.iter().map(|s| SharedDistinct::new(s.members.len())).collect();
        Ok(Group {
            rows: 0,
            aggregates: aggregates.map_err(self.expr_err())?,
            distinct,
            emitted: None,
            write: 0,
            bytes: 0,
        })
    }

    /// Recounts what `group` of `key` holds, keeping `heap_bytes` in step.
    fn recount(&mut self, key: &[u8], group: &mut Group) {
        let bytes = key.len()
            + group.emitted.as_ref().map_or(0, |e| e.len())
            + states_overhead(group.aggregates.len())
            + group.aggregates.iter().map(AggState::size).sum::<usize>()
            + group.distinct.iter().map(SharedDistinct::size).sum::<usize>();
        self.heap_bytes = (self.heap_bytes + bytes).saturating_sub(group.bytes);
        group.bytes = bytes;
    }

    /// Evaluates keys, arguments and filters and regroups the rows by key.
    fn regroup(&self, batch: &Batch) -> Result<(Encoded, ByKey)> {
        let data = &batch.data;
        let n = data.num_rows();
        let arrow_err = self.arrow_err();
        let key_columns = self.keys.iter().map(|e| self.eval(e, data)).collect::<Result<Vec<_>>>()?;
        let keys = self.key_codec.encode(&key_columns).map_err(&arrow_err)?;
        let (first_rows, bounds, order) = order_by_key(&keys, n);
        // Rows of one key in input order need no permutation (a global aggregate's).
        let identity = order.iter().enumerate().all(|(i, r)| i == *r as usize);
        let order = UInt32Array::from(order);
        let row_adds = super::row_adds(batch, &self.name, self.retracting)?;
        let adds = order.values().iter().map(|r| row_adds[*r as usize]).collect();
        let mut inputs = Inputs { data, order: (!identity).then_some(order), columns: Vec::new(), masks: Vec::new() };
        let mut filtered: Vec<(usize, usize, ArrayRef)> = Vec::new();
        let mut args = Vec::with_capacity(self.aggregates.len());
        let mut kept = Vec::with_capacity(self.aggregates.len());
        for a in &self.aggregates {
            if matches!(a.kind, AggKind::SharedDistinct { .. }) {
                // Its rows go through the shared set (below).
                args.push(Vec::new());
                kept.push(None);
                continue;
            }
            let mut arg_ids = Vec::with_capacity(a.args.len());
            for e in &a.args {
                arg_ids.push(inputs.column(self, e)?);
            }
            let Some(f) = &a.filter else {
                args.push(arg_ids.iter().map(|id| Arc::clone(&inputs.columns[*id].1)).collect());
                kept.push(None);
                continue;
            };
            let mask_id = inputs.mask(self, f, &a.display)?;
            let mut filtered_args = Vec::with_capacity(arg_ids.len());
            for id in arg_ids {
                let column = match filtered.iter().find(|(c, m, _)| *c == id && *m == mask_id) {
                    Some((_, _, column)) => Arc::clone(column),
                    None => {
                        let column = filter(&inputs.columns[id].1, &inputs.masks[mask_id].1).map_err(&arrow_err)?;
                        filtered.push((id, mask_id, Arc::clone(&column)));
                        column
                    }
                };
                filtered_args.push(column);
            }
            args.push(filtered_args);
            kept.push(Some(Arc::clone(&inputs.masks[mask_id].2)));
        }
        let mut shared = Vec::with_capacity(self.shared.len());
        for set in &self.shared {
            let id = inputs.column(self, &set.arg)?;
            let Some(column) = inputs.columns[id].1.as_primitive_opt::<Int64Type>().cloned() else {
                return Err(EngineError::Internal(format!("{}: COUNT(DISTINCT) of a BIGINT is not BIGINT", self.name)));
            };
            let mut bits = vec![0u8; n];
            for (m, i) in set.members.iter().enumerate() {
                let a = &self.aggregates[*i];
                match &a.filter {
                    None => bits.iter_mut().for_each(|b| *b |= 1 << m),
                    Some(f) => {
                        let mask_id = inputs.mask(self, f, &a.display)?;
                        for (b, keep) in bits.iter_mut().zip(inputs.masks[mask_id].1.values()) {
                            *b |= u8::from(keep) << m;
                        }
                    }
                }
            }
            if let Some(nulls) = column.nulls() {
                for (b, valid) in bits.iter_mut().zip(nulls) {
                    if !valid {
                        *b = 0;
                    }
                }
            }
            shared.push((column, bits));
        }
        Ok((keys, ByKey { first_rows, bounds, adds, args, kept, shared }))
    }

    /// `e`'s value over `data`, as an array.
    fn eval(&self, e: &Arc<dyn PhysicalExpr>, data: &RecordBatch) -> Result<ArrayRef> {
        e.evaluate(data).and_then(|v| v.into_array(data.num_rows())).map_err(self.expr_err())
    }

    /// A FILTER's rows to keep: where the predicate is TRUE (NULL counts as FALSE).
    fn filter_mask(&self, mask: &ArrayRef, display: &str) -> Result<BooleanArray> {
        let Some(mask) = mask.as_boolean_opt() else {
            return Err(EngineError::Plan(format!("{}: FILTER of {display} is not BOOLEAN", self.name)));
        };
        Ok(if mask.null_count() > 0 { prep_null_mask_filter(mask) } else { mask.clone() })
    }

    /// Applies rows `from..to` of `rows` (all adding or all taking back) to `group`.
    fn apply_run(&self, group: &mut Group, rows: &ByKey, from: usize, to: usize, add: bool) -> Result<()> {
        let expr_err = self.expr_err();
        for ((column, bits), set) in rows.shared.iter().zip(&mut group.distinct) {
            if !add {
                // Shared sets are planned for append-only inputs only.
                return Err(EngineError::Internal(format!("{}: a retraction of a shared DISTINCT", self.name)));
            }
            set.add_rows(column, bits, from, to);
        }
        for (i, plan) in self.aggregates.iter().enumerate() {
            if matches!(plan.kind, AggKind::SharedDistinct { .. }) {
                continue;
            }
            let (from, to) = match &rows.kept[i] {
                Some(kept) => (kept[from] as usize, kept[to] as usize),
                None => (from, to),
            };
            if from == to {
                // No rows (or none its FILTER keeps): nothing to tell the aggregate.
                continue;
            }
            let state = &mut group.aggregates[i];
            if add {
                plan.update(state, &rows.args[i], from, to).map_err(&expr_err)?;
            } else {
                plan.retract(state, &rows.args[i], from, to).map_err(&expr_err)?;
            }
        }
        Ok(())
    }

    /// Applies one key's rows (`k`-th of `rows`) to its group, in runs of one kind.
    fn apply_key(&mut self, key: &[u8], rows: &ByKey, k: usize, now: Option<std::time::Instant>) -> Result<Touched> {
        let mut before = None;
        let mut owned = None;
        // The group, and whether `expiry` holds its last write.
        let mut slot: Option<(Group, bool)> = None;
        if let Some((stored, mut group)) = self.groups.remove_entry(key) {
            self.heap_bytes = self.heap_bytes.saturating_sub(group.bytes);
            group.bytes = 0;
            before = group.emitted.take();
            slot = Some((group, true));
            owned = Some(stored);
        }
        let (start, end) = (rows.bounds[k], rows.bounds[k + 1]);
        let mut from = start;
        while from < end {
            let add = rows.adds[from];
            let to = (from..end).find(|r| rows.adds[*r] != add).unwrap_or(end);
            match &mut slot {
                Some((group, _)) if add => {
                    self.apply_run(group, rows, from, to, true)?;
                    group.rows += (to - from) as i64;
                }
                None if add => {
                    let mut group = self.new_group()?;
                    self.apply_run(&mut group, rows, from, to, true)?;
                    group.rows = (to - from) as i64;
                    slot = Some((group, false));
                }
                Some((group, written)) => {
                    // Rows beyond the key's count retract nothing: the key is gone by then.
                    let n = (to - from).min(usize::try_from(group.rows).unwrap_or(0));
                    self.apply_run(group, rows, from, from + n, false)?;
                    group.rows -= n as i64;
                    if group.rows <= 0 {
                        if let (Some(e), true) = (&mut self.expiry, *written) {
                            e.forget(group.write);
                        }
                        slot = None;
                    }
                }
                // A retraction for a key without state: its rows were never counted here.
                None => {}
            }
            from = to;
        }
        let group = match slot {
            Some((mut group, written)) => {
                if let (Some(e), Some(now)) = (&mut self.expiry, now) {
                    group.write = e.write(key, written.then_some(group.write), now);
                }
                Some(group)
            }
            None => None,
        };
        Ok(Touched { key: owned.unwrap_or_else(|| Box::from(key)), group, before })
    }
}

/// A counting sort of `n` rows by their `keys`: the first row of each key, in order of
/// first appearance; each key's bounds in the order; and the order (row indices, key by key,
/// in input order within a key).
fn order_by_key(keys: &Encoded, n: usize) -> (Vec<usize>, Vec<usize>, Vec<u32>) {
    let mut index: HashMap<&[u8], usize, KeyHasher> = HashMap::default();
    let mut key_of_row = Vec::with_capacity(n);
    let mut first_rows = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    for r in 0..n {
        let k = *index.entry(keys.row(r)).or_insert_with(|| {
            first_rows.push(r);
            counts.push(0);
            counts.len() - 1
        });
        counts[k] += 1;
        key_of_row.push(k);
    }
    let mut bounds = Vec::with_capacity(counts.len() + 1);
    bounds.push(0);
    for c in &counts {
        bounds.push(bounds[bounds.len() - 1] + c);
    }
    let mut next = bounds.clone();
    let mut order = vec![0u32; n];
    for (r, k) in key_of_row.iter().enumerate() {
        order[next[*k]] = r as u32;
        next[*k] += 1;
    }
    (first_rows, bounds, order)
}

/// Emission.
impl GroupAggregateOperator {
    /// The current values of `groups`, encoded with `value_codec`.
    fn evaluate<'a>(&self, groups: impl Iterator<Item = &'a mut Group>, count: usize) -> Result<Encoded> {
        if count == 0 {
            // No rows to read (and DataFusion cannot build an array of no scalars).
            return Ok(Encoded::Empty);
        }
        let expr_err = self.expr_err();
        let arrow_err = self.arrow_err();
        // Native aggregates' BIGINTs go straight into their column, others through
        // `ScalarValue`s.
        let mut values: Vec<Values> = self
            .aggregates
            .iter()
            .map(|a| match a.kind {
                AggKind::Native(k) if k.is_int64() => Values::Int64(Vec::with_capacity(count)),
                AggKind::SharedDistinct { .. } => Values::Int64(Vec::with_capacity(count)),
                _ => Values::Scalars(Vec::with_capacity(count)),
            })
            .collect();
        for group in groups {
            for (i, (plan, column)) in self.aggregates.iter().zip(&mut values).enumerate() {
                match (column, &mut group.aggregates[i], &plan.kind) {
                    (Values::Int64(column), AggState::Native(native), _) => column.push(native.value()),
                    (Values::Int64(column), _, AggKind::SharedDistinct { set, member }) => {
                        column.push(group.distinct.get(*set).map(|s| s.count(*member)))
                    }
                    (Values::Scalars(column), state, _) => column.push(plan.evaluate(state).map_err(&expr_err)?),
                    (Values::Int64(_), _, _) => {
                        return Err(EngineError::Internal(format!(
                            "{}: {} has no native state",
                            self.name, plan.display
                        )))
                    }
                }
            }
        }
        let mut columns = Vec::with_capacity(self.aggregates.len());
        for (plan, values) in self.aggregates.iter().zip(values) {
            let array = match values {
                Values::Int64(values) => Arc::new(Int64Array::from(values)),
                Values::Scalars(scalars) => ScalarValue::iter_to_array(scalars).map_err(&expr_err)?,
            };
            let array = if array.data_type() == &plan.output_type {
                array
            } else {
                cast(&array, &plan.output_type).map_err(&arrow_err)?
            };
            columns.push(array);
        }
        self.value_codec.encode(&columns).map_err(arrow_err)
    }

    /// A batch of the output schema from encoded keys and values.
    fn output<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a [u8]>,
        values: impl IntoIterator<Item = &'a [u8]>,
        rows: usize,
    ) -> Result<RecordBatch> {
        let arrow_err = self.arrow_err();
        let mut columns = self.key_codec.decode(keys).map_err(&arrow_err)?;
        columns.extend(self.value_codec.decode(values).map_err(&arrow_err)?);
        let columns = columns
            .into_iter()
            .zip(self.output_schema.fields())
            .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c) } else { cast(&c, f.data_type()) })
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()
            .map_err(&arrow_err)?;
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(Arc::clone(&self.output_schema), columns, &options).map_err(arrow_err)
    }

    /// Emits what changed for the touched keys (module docs) and stores their groups back.
    fn emit_changes(&mut self, mut touched: Vec<Touched>, out: &mut Vec<Message>) -> Result<()> {
        let alive = touched.iter().filter(|t| t.group.is_some()).count();
        let new = self.evaluate(touched.iter_mut().filter_map(|t| t.group.as_mut()), alive)?;
        // With state TTL, unchanged values are emitted too (module docs).
        let always = self.expiry.is_some();
        // (kind, key, values) of each output row.
        let mut rows: Vec<(RowKind, &[u8], &[u8])> = Vec::new();
        let mut next = 0;
        for t in &touched {
            match (&t.group, &t.before) {
                (Some(_), before) => {
                    let value = new.row(next);
                    next += 1;
                    match before {
                        None => rows.push((RowKind::Insert, &t.key, value)),
                        Some(old) if always || **old != *value => {
                            rows.push((RowKind::UpdateBefore, &t.key, old));
                            rows.push((RowKind::UpdateAfter, &t.key, value));
                        }
                        Some(_) => {}
                    }
                }
                (None, Some(old)) => rows.push((RowKind::Delete, &t.key, old)),
                (None, None) => {}
            }
        }
        if !rows.is_empty() {
            let data = self.output(rows.iter().map(|r| r.1), rows.iter().map(|r| r.2), rows.len())?;
            let kinds = Int8Array::from_iter_values(rows.iter().map(|r| r.0.code()));
            out.push(Message::Data(Batch { row_kinds: Some(kinds), ..Batch::append(data) }));
        }
        let mut next = 0;
        for t in touched {
            let Some(mut group) = t.group else { continue };
            group.emitted = Some(Box::from(new.row(next)));
            next += 1;
            self.store(t.key, group);
        }
        Ok(())
    }

    /// Puts a group back into the state.
    fn store(&mut self, key: Box<[u8]>, mut group: Group) {
        self.recount(&key, &mut group);
        self.groups.insert(key, group);
    }

    /// Batch mode, at the end of the input: `+I` with the final values of every key, in key
    /// order, in batches of at most [`FINAL_BATCH_ROWS`].
    fn emit_final(&mut self, out: &mut Vec<Message>) -> Result<()> {
        let mut groups: Vec<(Box<[u8]>, Group)> = std::mem::take(&mut self.groups).into_iter().collect();
        self.heap_bytes = 0;
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        if groups.is_empty() && self.keys.is_empty() {
            // A global aggregate has a row even over no rows (COUNT(*) = 0), as in SQL.
            groups.push((Box::from(&[][..]), self.new_group()?));
        }
        for chunk in groups.chunks_mut(FINAL_BATCH_ROWS) {
            let rows = chunk.len();
            let values = self.evaluate(chunk.iter_mut().map(|(_, g)| g), rows)?;
            let data = self.output(chunk.iter().map(|(k, _)| &**k), (0..rows).map(|i| values.row(i)), rows)?;
            out.push(Message::Data(Batch::append(data)));
        }
        Ok(())
    }
}

impl StreamOperator for GroupAggregateOperator {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        let now = self.expire();
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let (keys, rows) = self.regroup(&batch)?;
        let mut touched = Vec::with_capacity(rows.first_rows.len());
        for (k, first) in rows.first_rows.iter().enumerate() {
            touched.push(self.apply_key(keys.row(*first), &rows, k, now)?);
        }
        match self.emit {
            GroupEmit::Changelog => self.emit_changes(touched, out),
            GroupEmit::Final => {
                for t in touched {
                    if let Some(group) = t.group {
                        self.store(t.key, group);
                    }
                }
                Ok(())
            }
        }
    }

    fn on_end(&mut self, out: &mut Vec<Message>) -> Result<()> {
        match self.emit {
            GroupEmit::Final => self.emit_final(out),
            GroupEmit::Changelog => Ok(()),
        }
    }

    /// The groups, their table, and the TTL order.
    fn state_bytes(&self) -> usize {
        self.heap_bytes + hash_map_bytes(&self.groups) + self.expiry.as_ref().map_or(0, KeyExpiry::bytes)
    }

    fn snapshot_state(&mut self) -> Result<Option<StateSnapshot>> {
        self.snapshot().map(Some)
    }

    fn restore_state(&mut self, state: StateSnapshot) -> Result<()> {
        self.restore(state)
    }
}

/// How one aggregate keeps its state: plain DataFusion accumulators on an append-only input,
/// else as [`Retraction`] says.
fn aggregate_kind(
    function: &Arc<datafusion::physical_expr::aggregate::AggregateFunctionExpr>,
    input: &SchemaRef,
    retracting: bool,
) -> std::result::Result<AggKind, DataFusionError> {
    let arg_types =
        function.expressions().iter().map(|e| e.data_type(input)).collect::<std::result::Result<Vec<_>, _>>()?;
    if !retracting {
        if let Some(native) = NativeKind::of(function, &arg_types) {
            return Ok(AggKind::Native(native));
        }
        return Ok(AggKind::Accumulator { function: Arc::clone(function), retracting: false });
    }
    let codec = |types: &[DataType]| Codec::new(types).map_err(|e| DataFusionError::ArrowError(Box::new(e), None));
    Ok(match Retraction::of(function, input)? {
        Retraction::Accumulator => AggKind::Accumulator { function: Arc::clone(function), retracting: true },
        // The value of no rows: NULL of the argument's type, the type the values decode to
        // (the column is cast to the output type with the others).
        Retraction::Extreme { max } => match arg_types.first() {
            Some(t) => AggKind::Extreme { max, values: codec(&arg_types)?, null: ScalarValue::try_from(t)? },
            None => return Err(DataFusionError::Plan("MIN/MAX without an argument".into())),
        },
        Retraction::Distinct { inner } => AggKind::Distinct { values: codec(&arg_types)?, inner },
    })
}

/// One aggregate's values of the groups being emitted.
enum Values {
    Int64(Vec<Option<i64>>),
    Scalars(Vec<ScalarValue>),
}

/// Makes the COUNT(DISTINCT BIGINT) aggregates of `aggregates` on an append-only input that
/// share an argument members of one [`SharedPlan`] (in sets of at most [`SHARED_MEMBERS`]).
fn share_distinct_sets(aggregates: &mut [AggPlan]) -> Vec<SharedPlan> {
    let mut sets: Vec<SharedPlan> = Vec::new();
    for (i, a) in aggregates.iter().enumerate() {
        let (AggKind::Native(NativeKind::CountDistinctInt64), [arg]) = (&a.kind, a.args.as_slice()) else {
            continue;
        };
        match sets.iter_mut().find(|s| &s.arg == arg && s.members.len() < SHARED_MEMBERS) {
            Some(set) => set.members.push(i),
            None => sets.push(SharedPlan { arg: Arc::clone(arg), members: vec![i] }),
        }
    }
    // One member alone is as well off with its own set.
    sets.retain(|s| s.members.len() > 1);
    for (set, plan) in sets.iter().enumerate() {
        for (member, i) in plan.members.iter().enumerate() {
            aggregates[*i].kind = AggKind::SharedDistinct { set, member };
        }
    }
    sets
}

/// `GroupAggregate[keys=[k], aggs=[COUNT(*)]]`.
fn describe(spec: &GroupAggSpec) -> String {
    let keys: Vec<&str> = spec.keys.iter().map(|k| k.display.as_str()).collect();
    let aggs: Vec<&str> = spec.aggregates.iter().map(|a| a.display.as_str()).collect();
    format!("GroupAggregate[keys=[{}], aggs=[{}]]", keys.join(", "), aggs.join(", "))
}
