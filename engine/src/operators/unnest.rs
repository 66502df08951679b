//! Unnest: one output row per element of a list column (`CROSS JOIN UNNEST(arr)`).
//! Rows whose list is NULL or empty produce nothing, as in a SQL cross join.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Builder};
use arrow::compute::take;
use arrow::datatypes::{DataType, SchemaRef};

use super::StreamOperator;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message};
use eddy_sql::plan::UnnestSpec;

/// Expands a list column.
pub struct UnnestOperator {
    spec: UnnestSpec,
    schema: SchemaRef,
}

impl UnnestOperator {
    /// An unnest producing `schema`.
    pub fn new(spec: UnnestSpec, schema: SchemaRef) -> Self {
        Self { spec, schema }
    }
}

impl StreamOperator for UnnestOperator {
    fn name(&self) -> String {
        format!("Unnest[#{}]", self.spec.list_column)
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        let arrow_err = |source| EngineError::Arrow { operator: format!("Unnest[#{}]", self.spec.list_column), source };
        let list_col = batch.data.column(self.spec.list_column);
        let (values, offsets): (ArrayRef, Vec<(usize, usize)>) = match list_col.data_type() {
            DataType::List(_) => {
                let l = list_col.as_list::<i32>();
                let offs = (0..l.len())
                    .map(|i| {
                        if l.is_null(i) {
                            (0, 0)
                        } else {
                            (l.value_offsets()[i] as usize, l.value_offsets()[i + 1] as usize)
                        }
                    })
                    .collect();
                (l.values().clone(), offs)
            }
            DataType::LargeList(_) => {
                let l = list_col.as_list::<i64>();
                let offs = (0..l.len())
                    .map(|i| {
                        if l.is_null(i) {
                            (0, 0)
                        } else {
                            (l.value_offsets()[i] as usize, l.value_offsets()[i + 1] as usize)
                        }
                    })
                    .collect();
                (l.values().clone(), offs)
            }
            other => return Err(EngineError::Plan(format!("UNNEST of a {other} column"))),
        };
        let mut parent = UInt32Builder::new();
        let mut child = UInt32Builder::new();
        for (row, (start, end)) in offsets.iter().enumerate() {
            for e in *start..*end {
                parent.append_value(row as u32);
                child.append_value(e as u32);
            }
        }
        let parent = parent.finish();
        let child = child.finish();
        if parent.is_empty() {
            return Ok(());
        }
        let elements = take(values.as_ref(), &child, None).map_err(arrow_err)?;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for source in &self.spec.output_sources {
            if *source == self.spec.list_column {
                columns.push(elements.clone());
            } else {
                columns.push(take(batch.data.column(*source), &parent, None).map_err(arrow_err)?);
            }
        }
        let data = RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(arrow_err)?;
        out.push(Message::Data(batch.taken(data, &parent).map_err(arrow_err)?));
        Ok(())
    }
}
