//! The `blackhole` sink: accepts every row and keeps none, as Flink's `blackhole` connector.
//!
//! Why: benchmarks and pipeline tests need a sink that costs nothing, so the measured time is
//! the pipeline's own.

use arrow::array::Int8Array;
use arrow::record_batch::RecordBatch;

use crate::{ConnectorError, ConnectorTable, Result, Sink};

/// Check the options (`blackhole` takes none besides `connector`).
pub(crate) fn validate(table: &ConnectorTable) -> Result<()> {
    match table.options.keys().find(|k| !["connector", "sink.parallelism"].contains(k)) {
        Some(key) => Err(ConnectorError::options(
            &table.name,
            format!("unsupported option '{key}' for connector 'blackhole'; it takes no options"),
        )),
        None => Ok(()),
    }
}

/// Build one subtask of the sink.
pub(crate) fn create_sink(table: &ConnectorTable) -> Result<Box<dyn Sink>> {
    validate(table)?;
    Ok(Box::new(Blackhole))
}

struct Blackhole;

#[async_trait::async_trait]
impl Sink for Blackhole {
    async fn write_batch(&mut self, _batch: &RecordBatch, _row_kinds: Option<&Int8Array>) -> Result<()> {
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
