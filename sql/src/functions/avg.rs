//! `AVG` with Flink's result type: the average of an integer column is an integer of the
//! same type (`AVG(BIGINT)` is BIGINT, the sum divided by the count and truncated, as Java's
//! long division does); floats, decimals and intervals average as in DataFusion.
//!
//! DataFusion's `avg` casts integers to DOUBLE and returns DOUBLE, so the same query would
//! print `2403.58` where Flink prints `2403`. This wrapper keeps DataFusion's `avg` for every
//! other type and adds an exact integer accumulator (BIGINT sum and count, like Flink's
//! `IntegralAvgAggFunction`).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{not_impl_err, plan_err, Result, ScalarValue};
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

/// Flink's `AVG`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FlinkAvg {
    signature: Signature,
}

impl FlinkAvg {
    /// The function.
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for FlinkAvg {
    fn default() -> Self {
        Self::new()
    }
}

/// DataFusion's `avg`, for the types it averages as Flink does.
fn inner() -> Arc<AggregateUDF> {
    avg_udaf()
}

impl AggregateUDFImpl for FlinkAvg {
    fn name(&self) -> &str {
        "avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [t] = arg_types else {
            return plan_err!("AVG takes one argument, got {}", arg_types.len());
        };
        Ok(vec![match t {
            t if t.is_integer() => t.clone(),
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Duration(_) => t.clone(),
            t if t.is_floating() || t == &DataType::Null => DataType::Float64,
            other => return plan_err!("AVG expects a numeric argument, got {other}"),
        }])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] if t.is_integer() => Ok(t.clone()),
            _ => inner().inner().return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let input = args.expr_fields[0].data_type().clone();
        if !input.is_integer() {
            return inner().inner().accumulator(args);
        }
        if args.is_distinct {
            return not_impl_err!("AVG(DISTINCT ..) of an integer column; CAST it to DOUBLE");
        }
        Ok(Box::new(IntAvg { sum: 0, count: 0, output: input }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let input = args.input_fields[0].data_type();
        if !input.is_integer() {
            return inner().inner().state_fields(args);
        }
        Ok(vec![
            Arc::new(Field::new(format!("{}[sum]", args.name), DataType::Int64, true)),
            Arc::new(Field::new(format!("{}[count]", args.name), DataType::Int64, true)),
        ])
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        if args.expr_fields[0].data_type().is_integer() {
            !args.is_distinct
        } else {
            inner().inner().groups_accumulator_supported(args)
        }
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        let input = args.expr_fields[0].data_type().clone();
        if !input.is_integer() {
            return inner().inner().create_groups_accumulator(args);
        }
        Ok(Box::new(IntAvgGroups { sums: Vec::new(), counts: Vec::new(), output: input }))
    }
}

/// `sum / count` truncated toward zero (Java's long division), as `output`; NULL if no rows.
fn average(sum: i64, count: i64, output: &DataType) -> Result<ScalarValue> {
    if count == 0 {
        return ScalarValue::try_from(output);
    }
    ScalarValue::Int64(Some(sum.wrapping_div(count))).cast_to(output)
}

/// One group's integer average.
#[derive(Debug)]
struct IntAvg {
    sum: i64,
    count: i64,
    output: DataType,
}

impl Accumulator for IntAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = cast(&values[0], &DataType::Int64)?;
        let v = v.as_primitive::<Int64Type>();
        for x in v.iter().flatten() {
            self.sum = self.sum.wrapping_add(x);
            self.count += 1;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        average(self.sum, self.count, &self.output)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(Some(self.sum)), ScalarValue::Int64(Some(self.count))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (sums, counts) = (states[0].as_primitive::<Int64Type>(), states[1].as_primitive::<Int64Type>());
        for i in 0..sums.len() {
            if sums.is_valid(i) && counts.is_valid(i) {
                self.sum = self.sum.wrapping_add(sums.value(i));
                self.count += counts.value(i);
            }
        }
        Ok(())
    }

    /// Takes rows back (a retracting input of a group aggregation), as Flink's
    /// `IntegralAvgAggFunction.retract`.
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = cast(&values[0], &DataType::Int64)?;
        let v = v.as_primitive::<Int64Type>();
        for x in v.iter().flatten() {
            self.sum = self.sum.wrapping_sub(x);
            self.count -= 1;
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }
}

/// Integer averages of many groups.
#[derive(Debug)]
struct IntAvgGroups {
    sums: Vec<i64>,
    counts: Vec<i64>,
    output: DataType,
}

impl IntAvgGroups {
    fn grow(&mut self, total: usize) {
        self.sums.resize(total, 0);
        self.counts.resize(total, 0);
    }
}

/// Whether row `i` passes the optional FILTER mask (NULL counts as false).
fn passes(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

impl GroupsAccumulator for IntAvgGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let v = cast(&values[0], &DataType::Int64)?;
        let v = v.as_primitive::<Int64Type>();
        for (i, g) in group_indices.iter().enumerate() {
            if v.is_valid(i) && passes(opt_filter, i) {
                self.sums[*g] = self.sums[*g].wrapping_add(v.value(i));
                self.counts[*g] += 1;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        let avg: Int64Array = sums.iter().zip(&counts).map(|(s, c)| (*c > 0).then(|| s.wrapping_div(*c))).collect();
        Ok(cast(&avg, &self.output)?)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        Ok(vec![Arc::new(Int64Array::from(sums)), Arc::new(Int64Array::from(counts))])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.grow(total_num_groups);
        let (sums, counts) = (values[0].as_primitive::<Int64Type>(), values[1].as_primitive::<Int64Type>());
        for (i, g) in group_indices.iter().enumerate() {
            if sums.is_valid(i) && counts.is_valid(i) {
                self.sums[*g] = self.sums[*g].wrapping_add(sums.value(i));
                self.counts[*g] += counts.value(i);
            }
        }
        Ok(())
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let v = cast(&values[0], &DataType::Int64)?;
        let v = v.as_primitive::<Int64Type>();
        let counted = |i: usize| v.is_valid(i) && passes(opt_filter, i);
        let sums: Int64Array = (0..v.len()).map(|i| Some(if counted(i) { v.value(i) } else { 0 })).collect();
        let counts: Int64Array = (0..v.len()).map(|i| Some(i64::from(counted(i)))).collect();
        Ok(vec![Arc::new(sums), Arc::new(counts)])
    }

    fn size(&self) -> usize {
        (self.sums.capacity() + self.counts.capacity()) * std::mem::size_of::<i64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_average_truncates_like_java() {
        let mut g = IntAvgGroups { sums: vec![], counts: vec![], output: DataType::Int64 };
        let v: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(-3), Some(-4), Some(7)]));
        g.update_batch(&[v], &[0, 0, 0, 1, 1, 2], None, 4).unwrap();
        let out = g.evaluate(EmitTo::All).unwrap();
        let out = out.as_primitive::<Int64Type>();
        // (1+2)/2 = 1, (-3-4)/2 = -3 (toward zero), 7, no rows = NULL
        assert_eq!(out.iter().collect::<Vec<_>>(), vec![Some(1), Some(-3), Some(7), None]);
    }

    #[test]
    fn partial_states_merge() {
        let mut a = IntAvgGroups { sums: vec![], counts: vec![], output: DataType::Int32 };
        let v: ArrayRef = Arc::new(arrow::array::Int32Array::from(vec![10, 20, 30]));
        a.update_batch(&[v], &[0, 0, 1], None, 2).unwrap();
        let state = a.state(EmitTo::All).unwrap();
        let mut b = IntAvgGroups { sums: vec![], counts: vec![], output: DataType::Int32 };
        b.merge_batch(&state, &[0, 0], 1).unwrap();
        let out = b.evaluate(EmitTo::All).unwrap();
        assert_eq!(out.data_type(), &DataType::Int32);
        // (10 + 20 + 30) / 3
        assert_eq!(out.as_primitive::<arrow::datatypes::Int32Type>().value(0), 20);
    }

    #[test]
    fn retracted_rows_leave_the_average() {
        let mut a = IntAvg { sum: 0, count: 0, output: DataType::Int64 };
        let v: ArrayRef = Arc::new(Int64Array::from(vec![Some(10), Some(20), None, Some(31)]));
        a.update_batch(&[v]).unwrap();
        assert_eq!(a.evaluate().unwrap(), ScalarValue::Int64(Some(20)));
        let gone: ArrayRef = Arc::new(Int64Array::from(vec![Some(31), None]));
        a.retract_batch(&[gone]).unwrap();
        assert_eq!(a.evaluate().unwrap(), ScalarValue::Int64(Some(15)));
        let rest: ArrayRef = Arc::new(Int64Array::from(vec![10, 20]));
        a.retract_batch(&[rest]).unwrap();
        assert_eq!(a.evaluate().unwrap(), ScalarValue::Int64(None));
        assert!(a.supports_retract_batch());
    }

    #[test]
    fn types() {
        let f = FlinkAvg::new();
        assert_eq!(f.coerce_types(&[DataType::Int32]).unwrap(), vec![DataType::Int32]);
        assert_eq!(f.return_type(&[DataType::Int32]).unwrap(), DataType::Int32);
        assert_eq!(f.coerce_types(&[DataType::Float32]).unwrap(), vec![DataType::Float64]);
        assert_eq!(f.return_type(&[DataType::Float64]).unwrap(), DataType::Float64);
        assert!(f.coerce_types(&[DataType::Utf8]).is_err());
    }
}
