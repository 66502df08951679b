//! COUNT and COUNT(DISTINCT BIGINT) on an append-only input, updated row by row.
//!
//! Why: a batch touches many groups with a row or two each (Nexmark q16 spreads half its
//! bids over 10,000 channels), and a DataFusion accumulator is fed a batch: per group and
//! aggregate, a slice of every argument column (an allocation each) and a dynamic call.
//! These two, the commonest aggregates of such queries, read the rows in place instead.
//!
//! They are DataFusion accumulators too ([`Accumulator`]), with the same state as
//! DataFusion's `count` and distinct `count` over `BIGINT` (a count; a list of the values),
//! so checkpoints read and restore them like any other accumulator, and a checkpoint
//! taken with DataFusion's accumulators restores into these.

use std::collections::HashSet;
use std::mem::size_of;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

use crate::operators::memory::hash_set_bytes;

type ValueHasher = datafusion::common::hash_utils::RandomState;

/// Which aggregate; chosen by [`NativeKind::of`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum NativeKind {
    /// `COUNT(x)`, `COUNT(*)`: rows whose argument is not NULL.
    Count,
    /// `COUNT(DISTINCT x)` of a `BIGINT` column.
    CountDistinctInt64,
}

impl NativeKind {
    /// The native form of `function` over `arg_types`, if it has one.
    pub(super) fn of(function: &AggregateFunctionExpr, arg_types: &[DataType]) -> Option<Self> {
        if function.fun().name() != "count" || arg_types.len() != 1 || !function.order_bys().is_empty() {
            return None;
        }
        match (function.is_distinct(), &arg_types[0]) {
            (false, _) => Some(Self::Count),
            (true, DataType::Int64) => Some(Self::CountDistinctInt64),
            (true, _) => None,
        }
    }

    pub(super) fn create(self) -> NativeState {
        match self {
            Self::Count => NativeState::Count(0),
            Self::CountDistinctInt64 => NativeState::DistinctInt64(HashSet::default()),
        }
    }
}

/// One group's state of a [`NativeKind`] aggregate.
#[derive(Debug)]
pub(super) enum NativeState {
    Count(i64),
    DistinctInt64(HashSet<i64, ValueHasher>),
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
                let Some(column) = column.as_primitive_opt::<Int64Type>() else {
                    return Err(DataFusionError::Internal(format!(
                        "COUNT(DISTINCT BIGINT) over {}",
                        column.data_type()
                    )));
                };
                for r in from..to {
                    if column.is_valid(r) {
                        values.insert(column.value(r));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Accumulator for NativeState {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let rows = values.first().map_or(0, |v| v.len());
        self.update_rows(values, 0, rows)
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Int64(Some(match self {
            Self::Count(n) => *n,
            Self::DistinctInt64(values) => values.len() as i64,
        })))
    }

    fn size(&self) -> usize {
        size_of::<Self>()
            + match self {
                Self::Count(_) => 0,
                Self::DistinctInt64(values) => hash_set_bytes(values),
            }
    }

    /// As DataFusion's: the count; the values, as one list.
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![match self {
            Self::Count(n) => ScalarValue::Int64(Some(*n)),
            Self::DistinctInt64(values) => {
                let values: ArrayRef = Arc::new(Int64Array::from_iter_values(values.iter().copied()));
                SingleRowListArrayBuilder::new(values).build_list_scalar()
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::col;

    fn count(distinct: bool, data_type: DataType) -> (AggregateFunctionExpr, Box<dyn Accumulator>) {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new("v", data_type, true)]));
        let mut builder =
            AggregateExprBuilder::new(count_udaf(), vec![col("v", &schema).expect("v")]).schema(schema).alias("c");
        if distinct {
            builder = builder.distinct();
        }
        let function = builder.build().expect("count");
        let accumulator = function.create_accumulator().expect("accumulator");
        (function, accumulator)
    }

    #[test]
    fn counts_like_datafusion_and_shares_its_state() {
        let column: ArrayRef = Arc::new(Int64Array::from(vec![Some(3), None, Some(3), Some(7), Some(1), None]));
        for distinct in [false, true] {
            let (function, mut theirs) = count(distinct, DataType::Int64);
            let kind = NativeKind::of(&function, &[DataType::Int64]).expect("native");
            let mut ours = kind.create();
            // Rows 0..5 in two runs, then the same rows as DataFusion takes them.
            ours.update_rows(std::slice::from_ref(&column), 0, 2).expect("update");
            ours.update_rows(std::slice::from_ref(&column), 2, 5).expect("update");
            theirs.update_batch(&[column.slice(0, 5)]).expect("update");
            assert_eq!(ours.evaluate().expect("value"), theirs.evaluate().expect("value"));
            assert_eq!(ours.evaluate().expect("value"), ScalarValue::Int64(Some(if distinct { 3 } else { 4 })));
            // Each restores from the other's state.
            let to_arrays = |s: Vec<ScalarValue>| s.iter().map(|v| v.to_array().expect("array")).collect::<Vec<_>>();
            let mut restored = kind.create();
            restored.merge_batch(&to_arrays(theirs.state().expect("state"))).expect("merge");
            assert_eq!(restored.evaluate().expect("value"), theirs.evaluate().expect("value"));
            let (_, mut back) = count(distinct, DataType::Int64);
            back.merge_batch(&to_arrays(ours.state().expect("state"))).expect("merge");
            assert_eq!(back.evaluate().expect("value"), ours.evaluate().expect("value"));
        }
        // Not native: DISTINCT of another type.
        let (function, _) = count(true, DataType::Utf8);
        assert_eq!(NativeKind::of(&function, &[DataType::Utf8]), None);
    }
}
