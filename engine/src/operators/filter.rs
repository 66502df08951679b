//! Filter: keeps the rows whose predicate is TRUE (NULL and FALSE drop the row, as in SQL).

use arrow::array::{Array, AsArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::DataType;

use super::StreamOperator;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message};
use eddy_sql::plan::ExprSpec;

/// `WHERE predicate`.
pub struct FilterOperator {
    predicate: ExprSpec,
}

impl FilterOperator {
    /// A filter on `predicate`.
    pub fn new(predicate: ExprSpec) -> Self {
        Self { predicate }
    }
}

impl StreamOperator for FilterOperator {
    fn name(&self) -> String {
        format!("Filter[{}]", self.predicate.display)
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        let value = self
            .predicate
            .expr
            .evaluate(&batch.data)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|source| EngineError::Expression { operator: self.name(), source })?;
        if value.data_type() != &DataType::Boolean {
            return Err(EngineError::Plan(format!("{}: predicate is {}, not BOOLEAN", self.name(), value.data_type())));
        }
        let mask = value.as_boolean();
        let kept = mask.true_count();
        if kept == batch.num_rows() {
            out.push(Message::Data(batch));
            return Ok(());
        }
        if kept == 0 && batch.partition.is_none() {
            // (A batch with a partition mark goes on empty: the mark may announce or end a
            // partition for the watermark assigner.)
            return Ok(());
        }
        // The kept rows in one run (a Nexmark view's entity, whose events the source groups
        // in a batch): a slice shares the batch's buffers instead of copying the values.
        if mask.null_count() == 0 {
            let mut runs = mask.values().set_slices();
            if let (Some((start, end)), None) = (runs.next(), runs.next()) {
                out.push(Message::Data(batch.slice(start, end - start)));
                return Ok(());
            }
        }
        let arrow_err = |source| EngineError::Arrow { operator: self.name(), source };
        let data = filter_record_batch(&batch.data, mask).map_err(arrow_err)?;
        out.push(Message::Data(batch.filtered(data, mask).map_err(arrow_err)?));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array, Int8Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{binary, col, lit};

    use super::*;

    /// Rows kept in one run come out as a slice sharing the input's buffers; scattered rows
    /// are copied. Either way the rows, and their row kinds, are the kept ones.
    #[test]
    fn one_run_of_kept_rows_is_a_slice() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let predicate = binary(col("t", &schema).unwrap(), Operator::Eq, lit(2i64), &schema).unwrap();
        let mut filter = FilterOperator::new(ExprSpec { expr: predicate, display: "t = 2".into() });
        let run = |filter: &mut FilterOperator, t: Vec<i64>| {
            let s: Vec<String> = (0..t.len()).map(|i| format!("s{i}")).collect();
            let data = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(t.clone())), Arc::new(StringArray::from(s))],
            )
            .unwrap();
            let kinds = Int8Array::from((0..t.len() as i8).collect::<Vec<_>>());
            let input = Batch { row_kinds: Some(kinds), ..Batch::append(data) };
            let mut out = Vec::new();
            filter.process_batch(input.clone(), &mut out).unwrap();
            let Some(Message::Data(b)) = out.pop() else { panic!("no rows") };
            let shares = b.data.column(1).to_data().buffers()[1].as_ptr()
                == input.data.column(1).to_data().buffers()[1].as_ptr();
            let strings: Vec<String> = b
                .data
                .column(1)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .iter()
                .flatten()
                .map(String::from)
                .collect();
            (strings, b.row_kinds.unwrap().values().to_vec(), shares)
        };
        let (rows, kinds, shares) = run(&mut filter, vec![0, 2, 2, 2, 1]);
        assert_eq!((rows, kinds), (vec!["s1".to_string(), "s2".into(), "s3".into()], vec![1, 2, 3]));
        assert!(shares, "a run of kept rows is a slice");
        let (rows, kinds, shares) = run(&mut filter, vec![2, 0, 2]);
        assert_eq!((rows, kinds), (vec!["s0".to_string(), "s2".into()], vec![0, 2]));
        assert!(!shares, "scattered rows are copied");
    }
}
