//! A job's sink into a result table: each batch is applied as a whole.
//!
//! In a checkpointing job the sink is exactly once: its rows carry its identity and epoch
//! ([`BatchOrigin`]), the table's log is made durable at every barrier, and after a restart
//! from checkpoint `n` it takes back what it wrote after `n` before the job writes it again.

use std::sync::Arc;

use arrow::array::{Int8Array, RecordBatch};
use eddy_connectors::{ConnectorError, Sink};
use serde::{Deserialize, Serialize};

use super::{BatchOrigin, ResultTable};

/// Writes a job's rows into a [`ResultTable`]; every subtask of the sink shares the table.
pub struct ResultTableSink {
    table: Arc<ResultTable>,
    /// Who writes, and the epoch the next rows belong to (writer 0: not checkpointing).
    origin: BatchOrigin,
}

/// What a checkpoint keeps of the sink: enough to take back later rows after a restart.
#[derive(Serialize, Deserialize)]
struct SinkState {
    writer: u64,
    epoch: u64,
}

impl ResultTableSink {
    /// A sink into `table` for a job without checkpoints.
    pub fn new(table: Arc<ResultTable>) -> Self {
        Self { table, origin: BatchOrigin::default() }
    }

    /// A sink into `table` for a checkpointing job; `writer` (not 0) names the sink subtask
    /// the same way in every run of the job. A run that does not resume from a checkpoint
    /// first takes back everything an earlier run of it wrote (it writes it again).
    pub fn checkpointed(table: Arc<ResultTable>, writer: u64, resuming: bool) -> Result<Self, ConnectorError> {
        let sink = Self { table, origin: BatchOrigin { writer, epoch: 1 } };
        if !resuming {
            sink.roll_back_after(0)?;
        }
        Ok(sink)
    }

    fn roll_back_after(&self, epoch: u64) -> Result<usize, ConnectorError> {
        self.table.roll_back(self.origin.writer, epoch).map_err(|e| self.error(e))
    }

    fn error(&self, e: super::ResultTableError) -> ConnectorError {
        ConnectorError::options(self.table.name(), format!("result table: {e}"))
    }
}

#[async_trait::async_trait]
impl Sink for ResultTableSink {
    async fn write_batch(&mut self, batch: &RecordBatch, row_kinds: Option<&Int8Array>) -> eddy_connectors::Result<()> {
        // In memory plus a buffered append: short enough to run on the task itself.
        self.table.apply_from(batch, row_kinds, self.origin).map_err(|e| self.error(e))
    }

    async fn finish(&mut self) -> eddy_connectors::Result<()> {
        Ok(())
    }

    async fn pre_commit(&mut self, epoch: u64) -> eddy_connectors::Result<Option<serde_json::Value>> {
        if self.origin.writer == 0 {
            return Ok(None);
        }
        let table = self.table.clone();
        tokio::task::spawn_blocking(move || table.sync())
            .await
            .map_err(|e| ConnectorError::options(self.table.name(), format!("result table: {e}")))?
            .map_err(|e| self.error(e))?;
        self.origin.epoch = epoch.saturating_add(1);
        let state = SinkState { writer: self.origin.writer, epoch };
        serde_json::to_value(state).map(Some).map_err(|e| ConnectorError::checkpoint(self.table.name(), e.to_string()))
    }

    async fn recover(&mut self, state: Option<serde_json::Value>) -> eddy_connectors::Result<()> {
        let Some(state) = state else { return Ok(()) };
        let state = SinkState::deserialize(&state).map_err(|e| {
            ConnectorError::checkpoint(self.table.name(), format!("result table sink state cannot be read: {e}"))
        })?;
        if state.writer != self.origin.writer {
            return Err(ConnectorError::checkpoint(
                self.table.name(),
                format!("the checkpoint is of writer {:x}, this sink is {:x}", state.writer, self.origin.writer),
            ));
        }
        self.roll_back_after(state.epoch)?;
        self.origin.epoch = state.epoch.saturating_add(1);
        Ok(())
    }
}
