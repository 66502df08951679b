//! A job's sink into a result table: each batch is applied as a whole.

use std::sync::Arc;

use arrow::array::{Int8Array, RecordBatch};
use eddy_connectors::{ConnectorError, Sink};

use super::ResultTable;

/// Writes a job's rows into a [`ResultTable`]; every subtask of the sink shares the table.
pub struct ResultTableSink {
    table: Arc<ResultTable>,
}

impl ResultTableSink {
    /// A sink into `table`.
    pub fn new(table: Arc<ResultTable>) -> Self {
        Self { table }
    }
}

#[async_trait::async_trait]
impl Sink for ResultTableSink {
    async fn write_batch(&mut self, batch: &RecordBatch, row_kinds: Option<&Int8Array>) -> eddy_connectors::Result<()> {
        // In memory plus a buffered append: short enough to run on the task itself.
        self.table
            .apply(batch, row_kinds)
            .map_err(|e| ConnectorError::options(self.table.name(), format!("result table: {e}")))
    }

    async fn finish(&mut self) -> eddy_connectors::Result<()> {
        Ok(())
    }
}
