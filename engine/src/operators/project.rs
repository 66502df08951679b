//! Projection: one expression per output column (also computed columns and sink casts).

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;

use super::StreamOperator;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message};
use eddy_sql::plan::ProjectExpr;

/// `SELECT expr AS name, ...`
pub struct ProjectOperator {
    exprs: Vec<ProjectExpr>,
    schema: SchemaRef,
}

impl ProjectOperator {
    /// A projection producing `schema`.
    pub fn new(exprs: Vec<ProjectExpr>, schema: SchemaRef) -> Self {
        Self { exprs, schema }
    }
}

impl StreamOperator for ProjectOperator {
    fn name(&self) -> String {
        let cols: Vec<&str> = self.exprs.iter().map(|e| e.name.as_str()).collect();
        format!("Project[{}]", cols.join(", "))
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        let rows = batch.num_rows();
        let columns = self
            .exprs
            .iter()
            .map(|p| {
                p.expr.expr.evaluate(&batch.data).and_then(|v| v.into_array(rows)).map_err(|source| {
                    EngineError::Expression { operator: format!("{} AS {}", p.expr.display, p.name), source }
                })
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let data = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|source| EngineError::Arrow { operator: self.name(), source })?;
        out.push(Message::Data(Batch {
            data,
            row_kinds: batch.row_kinds,
            arrival_watermarks: batch.arrival_watermarks,
            partition: batch.partition,
        }));
        Ok(())
    }
}
