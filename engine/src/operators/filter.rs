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
        let arrow_err = |source| EngineError::Arrow { operator: self.name(), source };
        let data = filter_record_batch(&batch.data, mask).map_err(arrow_err)?;
        out.push(Message::Data(batch.filtered(data, mask).map_err(arrow_err)?));
        Ok(())
    }
}
