//! Helpers shared by the connector tests.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;

use crate::{ConnectorTable, Options, Source};

/// A table named `t` with these columns and `WITH` options.
pub(crate) fn table(fields: Vec<Field>, options: &[(&str, &str)]) -> ConnectorTable {
    ConnectorTable {
        name: "t".to_string(),
        schema: Arc::new(Schema::new(fields)),
        metadata: vec![],
        primary_key: vec![],
        partition_keys: vec![],
        distribution: None,
        options: Options::new(options.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
        unread: vec![],
    }
}

/// Pull every batch until the source ends.
pub(crate) async fn drain(source: &mut dyn Source) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    while let Some(b) = source.next_batch().await.unwrap() {
        out.push(b.batch);
    }
    out
}

/// All batches concatenated into one.
pub(crate) fn concat(batches: &[RecordBatch]) -> RecordBatch {
    arrow::compute::concat_batches(&batches[0].schema(), batches).unwrap()
}
