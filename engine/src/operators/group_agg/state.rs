//! One aggregate's state within a group, and how it takes rows in and back.
//!
//! On an append-only input every aggregate is a DataFusion `Accumulator`, as DataFusion's own
//! aggregation builds it. On an updating input the state must also take back the rows a
//! `-U`/`-D` retracts ([`Retraction`]): SUM, COUNT, AVG and the like use DataFusion's
//! retracting accumulator; MIN and MAX keep a count per value in value order (the extreme
//! is the first or last value still held, so taking back the current extreme falls back to
//! the previous one); a DISTINCT call keeps a count per value and feeds its inner, plain
//! aggregate a value when its count leaves 0 and takes it back when it returns to 0.
//!
//! Values are held as arrow-row bytes ([`Codec`]), whose byte order is the values' order.

use std::collections::{BTreeMap, HashMap};
use std::mem::size_of;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::row::{RowConverter, RowParser, Rows, SortField};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;

use super::native::{NativeKind, NativeState};
use crate::operators::memory::btree_bytes;

/// Row encoding (arrow-row) of a list of columns. With no columns at all (the key of a
/// global aggregate, the values of a `GROUP BY` without aggregates) every row is the empty
/// byte string: arrow-row cannot count the rows of zero columns.
pub(super) struct Codec {
    /// `None` without columns.
    converter: Option<(RowConverter, RowParser)>,
    types: Vec<DataType>,
}

/// The rows of some columns, encoded.
pub(super) enum Encoded {
    Rows(Rows),
    Empty,
}

impl Encoded {
    /// The bytes of row `i`.
    pub(super) fn row(&self, i: usize) -> &[u8] {
        match self {
            Encoded::Rows(rows) => rows.row(i).data(),
            Encoded::Empty => &[],
        }
    }
}

impl Codec {
    pub(super) fn new(types: &[DataType]) -> Result<Self, ArrowError> {
        if types.is_empty() {
            return Ok(Self { converter: None, types: Vec::new() });
        }
        let converter = RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect())?;
        let parser = converter.parser();
        Ok(Self { converter: Some((converter, parser)), types: types.to_vec() })
    }

    /// The types of the columns.
    pub(super) fn types(&self) -> &[DataType] {
        &self.types
    }

    /// `columns` as row bytes.
    pub(super) fn encode(&self, columns: &[ArrayRef]) -> Result<Encoded, ArrowError> {
        match &self.converter {
            Some((c, _)) => c.convert_columns(columns).map(Encoded::Rows),
            None => Ok(Encoded::Empty),
        }
    }

    /// Rows made by [`Self::encode`] back into columns.
    pub(super) fn decode<'a>(&self, rows: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>, ArrowError> {
        match &self.converter {
            Some((c, parser)) => c.convert_rows(rows.into_iter().map(|r| parser.parse(r))),
            None => Ok(Vec::new()),
        }
    }
}

/// How one aggregate of the operator is computed (shared by every group).
pub(super) struct AggPlan {
    /// Argument expressions, on the input.
    pub(super) args: Vec<Arc<dyn PhysicalExpr>>,
    /// `FILTER (WHERE ..)`, on the input.
    pub(super) filter: Option<Arc<dyn PhysicalExpr>>,
    pub(super) kind: AggKind,
    /// The type of its output column.
    pub(super) output_type: DataType,
    /// How EXPLAIN shows it.
    pub(super) display: String,
}

pub(super) enum AggKind {
    /// COUNT or COUNT(DISTINCT BIGINT) on an append-only input, updated in place.
    Native(NativeKind),
    /// COUNT(DISTINCT BIGINT) on an append-only input, member `member` of the group's
    /// shared set `set` (see [`SharedDistinct`](super::native::SharedDistinct)); the operator
    /// updates and reads it, its own state is [`AggState::Shared`].
    SharedDistinct { set: usize, member: usize },
    /// A DataFusion accumulator; `retracting`: the one whose `retract_batch` works.
    Accumulator { function: Arc<AggregateFunctionExpr>, retracting: bool },
    /// MIN/MAX over an updating input: a count per value of the argument (`values`).
    Extreme { max: bool, values: Codec, null: ScalarValue },
    /// DISTINCT over an updating input: a count per argument tuple (`values`), `inner` fed
    /// the tuples as they appear and disappear.
    Distinct { values: Codec, inner: Arc<AggregateFunctionExpr> },
}

/// One aggregate's state in one group.
pub(super) enum AggState {
    Native(NativeState),
    /// Held in the group's shared set ([`AggKind::SharedDistinct`]).
    Shared,
    Accumulator(Box<dyn Accumulator>),
    Extreme(Counts<BTreeMap<Box<[u8]>, i64>>),
    Distinct {
        counts: Counts<HashMap<Box<[u8]>, i64>>,
        inner: Box<dyn Accumulator>,
    },
}

/// Values and how many rows hold each, with the bytes of the values (kept as they change:
/// summing them at each batch would cost as much as the values).
#[derive(Default)]
pub(super) struct Counts<M> {
    pub(super) values: M,
    pub(super) bytes: usize,
}

/// Values and their counts, in the map's order.
pub(super) type Entries<'a> = Box<dyn Iterator<Item = (&'a [u8], i64)> + 'a>;

/// A map of values to counts.
pub(super) trait CountMap: Default {
    fn count_mut(&mut self, value: &[u8]) -> Option<&mut i64>;
    fn insert_new(&mut self, value: Box<[u8]>, count: i64);
    fn remove(&mut self, value: &[u8]);
    fn entries(&self) -> Entries<'_>;
    fn table_bytes(&self) -> usize;
}

impl CountMap for BTreeMap<Box<[u8]>, i64> {
    fn count_mut(&mut self, value: &[u8]) -> Option<&mut i64> {
        self.get_mut(value)
    }
    fn insert_new(&mut self, value: Box<[u8]>, count: i64) {
        self.insert(value, count);
    }
    fn remove(&mut self, value: &[u8]) {
        BTreeMap::remove(self, value);
    }
    fn entries(&self) -> Entries<'_> {
        Box::new(self.iter().map(|(k, v)| (&**k, *v)))
    }
    fn table_bytes(&self) -> usize {
        btree_bytes::<Box<[u8]>, i64>(self.len())
    }
}

impl CountMap for HashMap<Box<[u8]>, i64> {
    fn count_mut(&mut self, value: &[u8]) -> Option<&mut i64> {
        self.get_mut(value)
    }
    fn insert_new(&mut self, value: Box<[u8]>, count: i64) {
        self.insert(value, count);
    }
    fn remove(&mut self, value: &[u8]) {
        HashMap::remove(self, value);
    }
    fn entries(&self) -> Entries<'_> {
        Box::new(self.iter().map(|(k, v)| (&**k, *v)))
    }
    fn table_bytes(&self) -> usize {
        crate::operators::memory::hash_map_bytes(self)
    }
}

impl<M: CountMap> Counts<M> {
    /// One more row holds `value`; true when it is new.
    fn add(&mut self, value: &[u8]) -> bool {
        if let Some(c) = self.values.count_mut(value) {
            *c += 1;
            return *c == 1;
        }
        self.bytes += value.len();
        self.values.insert_new(value.into(), 1);
        true
    }

    /// One row less holds `value`; true when none does any more. A value not held is not
    /// taken back (a retraction of a row never counted, as after a state TTL).
    fn take_back(&mut self, value: &[u8]) -> bool {
        let Some(c) = self.values.count_mut(value) else { return false };
        *c -= 1;
        if *c > 0 {
            return false;
        }
        self.values.remove(value);
        self.bytes = self.bytes.saturating_sub(value.len());
        true
    }

    /// Restores an entry of a snapshot.
    pub(super) fn restore(&mut self, value: &[u8], count: i64) {
        self.bytes += value.len();
        self.values.insert_new(value.into(), count);
    }

    fn size(&self) -> usize {
        self.bytes + self.values.table_bytes()
    }
}

fn df_arrow(e: ArrowError) -> DataFusionError {
    DataFusionError::ArrowError(Box::new(e), None)
}

impl AggPlan {
    /// The encoding of the values it counts (MIN/MAX and DISTINCT over an updating input).
    pub(super) fn values(&self) -> Option<&Codec> {
        match &self.kind {
            AggKind::Native(_) | AggKind::SharedDistinct { .. } | AggKind::Accumulator { .. } => None,
            AggKind::Extreme { values, .. } | AggKind::Distinct { values, .. } => Some(values),
        }
    }

    /// An empty state.
    pub(super) fn create(&self) -> DfResult<AggState> {
        Ok(match &self.kind {
            AggKind::Native(kind) => AggState::Native(kind.create()),
            AggKind::SharedDistinct { .. } => AggState::Shared,
            AggKind::Accumulator { function, retracting: true } => {
                AggState::Accumulator(function.create_sliding_accumulator()?)
            }
            AggKind::Accumulator { function, retracting: false } => {
                AggState::Accumulator(function.create_accumulator()?)
            }
            AggKind::Extreme { .. } => AggState::Extreme(Counts::default()),
            AggKind::Distinct { inner, .. } => {
                AggState::Distinct { counts: Counts::default(), inner: inner.create_sliding_accumulator()? }
            }
        })
    }

    /// Adds rows `from..to` of `args` (this aggregate's argument columns, FILTER applied).
    pub(super) fn update(&self, state: &mut AggState, args: &[ArrayRef], from: usize, to: usize) -> DfResult<()> {
        if let AggState::Native(native) = state {
            // In place: no slice of the columns.
            return native.update_rows(args, from, to);
        }
        let args: Vec<ArrayRef> = args.iter().map(|a| a.slice(from, to - from)).collect();
        self.apply(state, &args, true)
    }

    /// Takes rows `from..to` of `args` back.
    pub(super) fn retract(&self, state: &mut AggState, args: &[ArrayRef], from: usize, to: usize) -> DfResult<()> {
        let args: Vec<ArrayRef> = args.iter().map(|a| a.slice(from, to - from)).collect();
        self.apply(state, &args, false)
    }

    fn apply(&self, state: &mut AggState, args: &[ArrayRef], add: bool) -> DfResult<()> {
        let rows = args.first().map_or(0, |a| a.len());
        match (state, &self.kind) {
            (AggState::Accumulator(acc), _) if add => acc.update_batch(args),
            (AggState::Accumulator(acc), _) => acc.retract_batch(args),
            (AggState::Extreme(counts), AggKind::Extreme { values, .. }) => {
                let encoded = values.encode(args).map_err(df_arrow)?;
                for row in (0..rows).filter(|r| args.iter().all(|a| a.is_valid(*r))) {
                    if add {
                        counts.add(encoded.row(row));
                    } else {
                        counts.take_back(encoded.row(row));
                    }
                }
                Ok(())
            }
            (AggState::Distinct { counts, inner }, AggKind::Distinct { values, .. }) => {
                // Only the tuples that appear or disappear reach the inner aggregate.
                let encoded = values.encode(args).map_err(df_arrow)?;
                let mut changed = Vec::new();
                for row in (0..rows).filter(|r| args.iter().all(|a| a.is_valid(*r))) {
                    let flips = if add { counts.add(encoded.row(row)) } else { counts.take_back(encoded.row(row)) };
                    if flips {
                        changed.push(row as u32);
                    }
                }
                if changed.is_empty() {
                    return Ok(());
                }
                let indices = UInt32Array::from(changed);
                let taken = args.iter().map(|a| take(a, &indices, None)).collect::<Result<Vec<_>, _>>();
                let taken = taken.map_err(df_arrow)?;
                if add {
                    inner.update_batch(&taken)
                } else {
                    inner.retract_batch(&taken)
                }
            }
            _ => Err(DataFusionError::Internal(format!("{}: state of another kind", self.display))),
        }
    }

    /// The aggregate's current value.
    pub(super) fn evaluate(&self, state: &mut AggState) -> DfResult<ScalarValue> {
        match (state, &self.kind) {
            (AggState::Native(native), _) => native.evaluate(),
            (AggState::Accumulator(acc), _) => acc.evaluate(),
            (AggState::Extreme(counts), AggKind::Extreme { max, values, null }) => {
                let extreme = if *max { counts.values.last_key_value() } else { counts.values.first_key_value() };
                let Some((value, _)) = extreme else { return Ok(null.clone()) };
                let column = values.decode([&**value]).map_err(df_arrow)?;
                match column.first() {
                    Some(c) => ScalarValue::try_from_array(c, 0),
                    None => Ok(null.clone()),
                }
            }
            (AggState::Distinct { inner, .. }, _) => inner.evaluate(),
            _ => Err(DataFusionError::Internal(format!("{}: state of another kind", self.display))),
        }
    }
}

impl AggState {
    /// Memory held (DataFusion's `Accumulator::size`, or the counted values and their map).
    pub(super) fn size(&self) -> usize {
        match self {
            AggState::Native(native) => native.size(),
            // Counted with the shared set.
            AggState::Shared => 0,
            AggState::Accumulator(acc) => acc.size(),
            AggState::Extreme(counts) => counts.size(),
            AggState::Distinct { counts, inner } => counts.size() + inner.size(),
        }
    }

    /// The accumulator, for a snapshot (`None` for counted values and a shared set's
    /// member).
    pub(super) fn accumulator(&mut self) -> Option<&mut dyn Accumulator> {
        match self {
            AggState::Native(native) => Some(native),
            AggState::Accumulator(acc) => Some(acc.as_mut()),
            AggState::Shared | AggState::Extreme(_) | AggState::Distinct { .. } => None,
        }
    }

    /// The values counted, for a snapshot (`None` for an accumulator).
    pub(super) fn counts(&self) -> Option<Entries<'_>> {
        match self {
            AggState::Native(_) | AggState::Shared | AggState::Accumulator(_) => None,
            AggState::Extreme(counts) => Some(counts.values.entries()),
            AggState::Distinct { counts, .. } => Some(counts.values.entries()),
        }
    }
}

/// What a group's `Vec` of states takes besides their own sizes.
pub(super) fn states_overhead(aggregates: usize) -> usize {
    aggregates * size_of::<AggState>()
}
