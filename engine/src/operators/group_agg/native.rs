//! COUNT, COUNT(DISTINCT BIGINT), SUM, MIN, MAX of a BIGINT and MIN, MAX of a STRING on an
//! append-only input, updated row by row.
//!
//! Why: a batch touches many groups with a row or two each (Nexmark q16 spreads half its
//! bids over 10,000 channels), and a DataFusion accumulator is fed a batch: per group and
//! aggregate, a slice of every argument column (an allocation each) and a dynamic call.
//! These, the commonest aggregates of such queries, read the rows in place instead.
//!
//! They are DataFusion accumulators too ([`Accumulator`]), with the same state as
//! DataFusion's `count`, distinct `count`, `sum`, `min` and `max` over `BIGINT` or `STRING` (a
//! count; a list of the values; the sum, minimum or maximum, NULL before the first value), so
//! checkpoints read and restore them like any other accumulator, and a checkpoint taken
//! with DataFusion's accumulators restores into these.

use std::collections::{HashMap, HashSet};
use std::mem::size_of;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

use crate::operators::memory::{hash_map_bytes, hash_set_bytes};

type ValueHasher = datafusion::common::hash_utils::RandomState;

/// Which aggregate; chosen by [`NativeKind::of`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum NativeKind {
    /// `COUNT(x)`, `COUNT(*)`: rows whose argument is not NULL.
    Count,
    /// `COUNT(DISTINCT x)` of a `BIGINT` column.
    CountDistinctInt64,
    /// `SUM(x)` of a `BIGINT` column (wrapping on overflow, as DataFusion and Flink).
    SumInt64,
    /// `MIN(x)` of a `BIGINT` column.
    MinInt64,
    /// `MAX(x)` of a `BIGINT` column.
    MaxInt64,
    /// `MIN(x)` of a `STRING` column (by bytes, as DataFusion's).
    MinUtf8,
    /// `MAX(x)` of a `STRING` column (q16's `MAX(DATE_FORMAT(..))`).
    MaxUtf8,
}

impl NativeKind {
    /// The native form of `function` over `arg_types`, if it has one.
    pub(super) fn of(function: &AggregateFunctionExpr, arg_types: &[DataType]) -> Option<Self> {
        if arg_types.len() != 1 || !function.order_bys().is_empty() {
            return None;
        }
        let int64 = arg_types[0] == DataType::Int64 && *function.field().data_type() == DataType::Int64;
        let utf8 = arg_types[0] == DataType::Utf8 && *function.field().data_type() == DataType::Utf8;
        match (function.fun().name(), function.is_distinct()) {
            ("count", false) => Some(Self::Count),
            ("count", true) if arg_types[0] == DataType::Int64 => Some(Self::CountDistinctInt64),
            ("sum", false) if int64 => Some(Self::SumInt64),
            ("min", false) if int64 => Some(Self::MinInt64),
            ("max", false) if int64 => Some(Self::MaxInt64),
            ("min", false) if utf8 => Some(Self::MinUtf8),
            ("max", false) if utf8 => Some(Self::MaxUtf8),
            _ => None,
        }
    }

    pub(super) fn create(self) -> NativeState {
        match self {
            Self::Count => NativeState::Count(0),
            Self::CountDistinctInt64 => NativeState::DistinctInt64(HashSet::default()),
            Self::SumInt64 => NativeState::Int64 { kind: Fold::Sum, value: None },
            Self::MinInt64 => NativeState::Int64 { kind: Fold::Min, value: None },
            Self::MaxInt64 => NativeState::Int64 { kind: Fold::Max, value: None },
            Self::MinUtf8 => NativeState::Utf8 { kind: Fold::Min, value: None },
            Self::MaxUtf8 => NativeState::Utf8 { kind: Fold::Max, value: None },
        }
    }

    /// Whether its value is a `BIGINT` (see [`NativeState::value`]).
    pub(super) fn is_int64(self) -> bool {
        !matches!(self, Self::MinUtf8 | Self::MaxUtf8)
    }
}

/// One group's state of a [`NativeKind`] aggregate.
#[derive(Debug)]
pub(super) enum NativeState {
    Count(i64),
    DistinctInt64(HashSet<i64, ValueHasher>),
    /// SUM, MIN or MAX: `None` until a value that is not NULL.
    Int64 {
        kind: Fold,
        value: Option<i64>,
    },
    /// MIN or MAX of a STRING: `None` until a value that is not NULL.
    Utf8 {
        kind: Fold,
        value: Option<String>,
    },
}

/// How [`NativeState::Int64`] takes a value in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Fold {
    Sum,
    Min,
    Max,
}

impl Fold {
    fn fold(self, acc: i64, v: i64) -> i64 {
        match self {
            Fold::Sum => acc.wrapping_add(v),
            Fold::Min => acc.min(v),
            Fold::Max => acc.max(v),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Fold::Sum => "SUM",
            Fold::Min => "MIN",
            Fold::Max => "MAX",
        }
    }
}

/// The `BIGINT` values of `column`, or an internal error naming `what`.
fn int64s<'a>(column: &'a ArrayRef, what: &str) -> DfResult<&'a Int64Array> {
    column
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| DataFusionError::Internal(format!("{what} over {}", column.data_type())))
}

/// `value` with the strings `values` folded in (MIN or MAX), its buffer reused.
fn fold_in_str<'a>(kind: Fold, value: &mut Option<String>, values: impl Iterator<Item = &'a str>) {
    for v in values {
        let replace = match (value.as_deref(), kind) {
            (None, _) => true,
            (Some(acc), Fold::Max) => v > acc,
            (Some(acc), _) => v < acc,
        };
        if replace {
            let held = value.get_or_insert_with(String::new);
            held.clear();
            held.push_str(v);
        }
    }
}

/// The `STRING` values of `column`, or an internal error naming `what`.
fn strings<'a>(column: &'a ArrayRef, what: &str) -> DfResult<&'a arrow::array::StringArray> {
    column
        .as_string_opt::<i32>()
        .ok_or_else(|| DataFusionError::Internal(format!("{what} over {}", column.data_type())))
}

/// `value` with the values `values` folded in.
fn fold_in(kind: Fold, value: &mut Option<i64>, values: impl Iterator<Item = i64>) {
    for v in values {
        *value = Some(match *value {
            Some(acc) => kind.fold(acc, v),
            None => v,
        });
    }
}

impl NativeState {
    /// Adds rows `from..to` of `args` (the aggregate's one argument column).
    pub(super) fn update_rows(&mut self, args: &[ArrayRef], from: usize, to: usize) -> DfResult<()> {
        let [column] = args else {
            return Err(DataFusionError::Internal(format!("COUNT with {} arguments", args.len())));
        };
        match self {
            Self::Count(n) => {
                let nulls = column.logical_nulls();
                let valid = match &nulls {
                    Some(nulls) => (from..to).filter(|r| nulls.is_valid(*r)).count(),
                    None => to - from,
                };
                *n += valid as i64;
            }
            Self::DistinctInt64(values) => {
                let column = int64s(column, "COUNT(DISTINCT BIGINT)")?;
                for r in from..to {
                    if column.is_valid(r) {
                        values.insert(column.value(r));
                    }
                }
            }
            Self::Int64 { kind, value } => {
                let column = int64s(column, kind.name())?;
                let values = &column.values()[from..to];
                match column.nulls() {
                    Some(nulls) if nulls.null_count() > 0 => {
                        let valid = (from..to).filter(|r| nulls.is_valid(*r)).map(|r| column.value(r));
                        fold_in(*kind, value, valid)
                    }
                    _ => fold_in(*kind, value, values.iter().copied()),
                }
            }
            Self::Utf8 { kind, value } => {
                let column = strings(column, kind.name())?;
                fold_in_str(*kind, value, (from..to).filter(|r| column.is_valid(*r)).map(|r| column.value(r)));
            }
        }
        Ok(())
    }
}

impl NativeState {
    /// The aggregate's value (all are `BIGINT`): [`Accumulator::evaluate`] without a
    /// `ScalarValue`.
    pub(super) fn value(&self) -> Option<i64> {
        match self {
            Self::Count(n) => Some(*n),
            Self::DistinctInt64(values) => Some(values.len() as i64),
            Self::Int64 { value, .. } => *value,
            // Not a BIGINT: evaluated as a `ScalarValue` (see `NativeKind::is_int64`).
            Self::Utf8 { .. } => None,
        }
    }
}

impl Accumulator for NativeState {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let rows = values.first().map_or(0, |v| v.len());
        self.update_rows(values, 0, rows)
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(match self {
            Self::Utf8 { value, .. } => ScalarValue::Utf8(value.clone()),
            _ => ScalarValue::Int64(self.value()),
        })
    }

    fn size(&self) -> usize {
        size_of::<Self>()
            + match self {
                Self::Count(_) | Self::Int64 { .. } => 0,
                Self::Utf8 { value, .. } => value.as_ref().map_or(0, String::capacity),
                Self::DistinctInt64(values) => hash_set_bytes(values),
            }
    }

    /// As DataFusion's: the count; the values, as one list; the sum, minimum or maximum.
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![match self {
            Self::Count(n) => ScalarValue::Int64(Some(*n)),
            Self::DistinctInt64(values) => {
                let values: ArrayRef = Arc::new(Int64Array::from_iter_values(values.iter().copied()));
                SingleRowListArrayBuilder::new(values).build_list_scalar()
            }
            Self::Int64 { value, .. } => ScalarValue::Int64(*value),
            Self::Utf8 { value, .. } => ScalarValue::Utf8(value.clone()),
        }])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let [state] = states else {
            return Err(DataFusionError::Internal(format!("COUNT state of {} columns", states.len())));
        };
        match self {
            Self::Count(n) => {
                let Some(counts) = state.as_primitive_opt::<Int64Type>() else {
                    return Err(DataFusionError::Internal(format!("COUNT state of type {}", state.data_type())));
                };
                *n += counts.iter().flatten().sum::<i64>();
            }
            Self::Int64 { kind, value } => {
                let states = int64s(state, kind.name())?;
                fold_in(*kind, value, states.iter().flatten());
            }
            Self::Utf8 { kind, value } => {
                let states = strings(state, kind.name())?;
                fold_in_str(*kind, value, states.iter().flatten());
            }
            Self::DistinctInt64(values) => {
                let Some(lists) = state.as_list_opt::<i32>() else {
                    return Err(DataFusionError::Internal(format!(
                        "COUNT(DISTINCT) state of type {}",
                        state.data_type()
                    )));
                };
                for list in lists.iter().flatten() {
                    let Some(list) = list.as_primitive_opt::<Int64Type>() else {
                        return Err(DataFusionError::Internal(format!(
                            "COUNT(DISTINCT) values of type {}",
                            list.data_type()
                        )));
                    };
                    values.extend(list.iter().flatten());
                }
            }
        }
        Ok(())
    }
}

/// `COUNT(DISTINCT x)` aggregates of one group over the same `BIGINT` argument that differ
/// only in their FILTER (q16's `COUNT(DISTINCT bidder) FILTER (WHERE price < 10000)` beside
/// the unfiltered one): one set of the values, each with a bit per aggregate (its
/// *member*) whose rows held it, and each member's count of values with its bit.
///
/// Why: each row then probes one table per argument instead of one per aggregate that
/// takes it (Flink shares its distinct map the same way). A member's checkpoint state is
/// what [`NativeState::DistinctInt64`] would hold: its values, as one list.
#[derive(Debug)]
pub(super) struct SharedDistinct {
    values: HashMap<i64, u8, ValueHasher>,
    counts: Vec<i64>,
}

/// Most members of one [`SharedDistinct`]: the bits of a `u8`.
pub(super) const SHARED_MEMBERS: usize = 8;

impl SharedDistinct {
    pub(super) fn new(members: usize) -> Self {
        Self { values: HashMap::default(), counts: vec![0; members] }
    }

    /// Adds rows `from..to` of `column` to the members whose bit `bits` has for the row
    /// (no bits for a NULL).
    pub(super) fn add_rows(&mut self, column: &Int64Array, bits: &[u8], from: usize, to: usize) {
        for (value, bits) in column.values()[from..to].iter().zip(&bits[from..to]) {
            if *bits != 0 {
                self.insert(*value, *bits);
            }
        }
    }

    fn insert(&mut self, value: i64, bits: u8) {
        let held = self.values.entry(value).or_insert(0);
        let mut new = bits & !*held;
        *held |= bits;
        while new != 0 {
            self.counts[new.trailing_zeros() as usize] += 1;
            new &= new - 1;
        }
    }

    /// Member `member`'s count of distinct values.
    pub(super) fn count(&self, member: usize) -> i64 {
        self.counts.get(member).copied().unwrap_or(0)
    }

    /// Member `member`'s state, as DataFusion's distinct `count` has it: its values, as
    /// one list.
    pub(super) fn state(&self, member: usize) -> ScalarValue {
        let bit = 1u8 << member;
        let values = self.values.iter().filter(|(_, bits)| **bits & bit != 0).map(|(v, _)| *v);
        let values: ArrayRef = Arc::new(Int64Array::from_iter_values(values));
        SingleRowListArrayBuilder::new(values).build_list_scalar()
    }

    /// Adds a state of [`Self::state`] (or of DataFusion's distinct `count`) to `member`.
    pub(super) fn merge(&mut self, member: usize, states: &[ArrayRef]) -> DfResult<()> {
        let mut values = NativeState::DistinctInt64(HashSet::default());
        values.merge_batch(states)?;
        let NativeState::DistinctInt64(values) = values else { return Ok(()) };
        self.values.reserve(values.len());
        for v in values {
            self.insert(v, 1 << member);
        }
        Ok(())
    }

    /// Memory held.
    pub(super) fn size(&self) -> usize {
        size_of::<Self>() + hash_map_bytes(&self.values) + self.counts.len() * size_of::<i64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::functions_aggregate::min_max::{max_udaf, min_udaf};
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::logical_expr::AggregateUDF;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::col;

    fn aggregate(
        udaf: Arc<AggregateUDF>,
        distinct: bool,
        data_type: DataType,
    ) -> (AggregateFunctionExpr, Box<dyn Accumulator>) {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new("v", data_type, true)]));
        let mut builder =
            AggregateExprBuilder::new(udaf, vec![col("v", &schema).expect("v")]).schema(schema).alias("c");
        if distinct {
            builder = builder.distinct();
        }
        let function = builder.build().expect("aggregate");
        let accumulator = function.create_accumulator().expect("accumulator");
        (function, accumulator)
    }

    #[test]
    fn aggregates_like_datafusion_and_shares_its_state() {
        let column: ArrayRef = Arc::new(Int64Array::from(vec![Some(3), None, Some(-3), Some(7), Some(1), None]));
        let nulls: ArrayRef = Arc::new(Int64Array::from(vec![None, None]));
        let cases = [
            (count_udaf(), false, Some(4), Some(0)),
            (count_udaf(), true, Some(4), Some(0)),
            (sum_udaf(), false, Some(8), None),
            (min_udaf(), false, Some(-3), None),
            (max_udaf(), false, Some(7), None),
        ];
        for (udaf, distinct, value, of_nulls) in cases {
            let name = format!("{}{}", udaf.name(), if distinct { " distinct" } else { "" });
            let (function, mut theirs) = aggregate(udaf.clone(), distinct, DataType::Int64);
            let kind = NativeKind::of(&function, &[DataType::Int64]).expect("native");
            let mut ours = kind.create();
            // Rows 0..5 in two runs, then the same rows as DataFusion takes them.
            ours.update_rows(std::slice::from_ref(&column), 0, 2).expect("update");
            ours.update_rows(std::slice::from_ref(&column), 2, 5).expect("update");
            theirs.update_batch(&[column.slice(0, 5)]).expect("update");
            assert_eq!(ours.evaluate().expect("value"), theirs.evaluate().expect("value"), "{name}");
            assert_eq!(ours.evaluate().expect("value"), ScalarValue::Int64(value), "{name}");
            // Each restores from the other's state.
            let to_arrays = |s: Vec<ScalarValue>| s.iter().map(|v| v.to_array().expect("array")).collect::<Vec<_>>();
            let mut restored = kind.create();
            restored.merge_batch(&to_arrays(theirs.state().expect("state"))).expect("merge");
            assert_eq!(restored.evaluate().expect("value"), theirs.evaluate().expect("value"), "{name}");
            let (_, mut back) = aggregate(udaf.clone(), distinct, DataType::Int64);
            back.merge_batch(&to_arrays(ours.state().expect("state"))).expect("merge");
            assert_eq!(back.evaluate().expect("value"), ours.evaluate().expect("value"), "{name}");
            // Only NULLs: a count of 0, else NULL, also after a restore of that state.
            let (_, mut theirs) = aggregate(udaf, distinct, DataType::Int64);
            let mut ours = kind.create();
            ours.update_rows(std::slice::from_ref(&nulls), 0, 2).expect("update");
            theirs.update_batch(std::slice::from_ref(&nulls)).expect("update");
            assert_eq!(ours.evaluate().expect("value"), ScalarValue::Int64(of_nulls), "{name}");
            assert_eq!(ours.evaluate().expect("value"), theirs.evaluate().expect("value"), "{name}");
            let mut restored = kind.create();
            restored.merge_batch(&to_arrays(ours.state().expect("state"))).expect("merge");
            assert_eq!(restored.evaluate().expect("value"), ScalarValue::Int64(of_nulls), "{name}");
        }
        // Not native: DISTINCT of another type, SUM of a DOUBLE.
        let (function, _) = aggregate(count_udaf(), true, DataType::Utf8);
        assert_eq!(NativeKind::of(&function, &[DataType::Utf8]), None);
        let (function, _) = aggregate(sum_udaf(), false, DataType::Float64);
        assert_eq!(NativeKind::of(&function, &[DataType::Float64]), None);
    }
}
