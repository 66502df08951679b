//! A job reading a result table: its rows now, then every change applied to it (an upsert
//! table's changes are upserts; the planner normalizes them as it does `upsert-kafka`'s).
//! Unbounded: the job follows the table until it is stopped.

use std::collections::VecDeque;
use std::sync::Arc;

use eddy_connectors::{Source, SourceBatch, Split};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{Change, ResultTable};

/// Reads one result table; only the first split reads (a table is one stream of changes),
/// the others end at once.
pub struct ResultTableSource {
    table: Arc<ResultTable>,
    split: Split,
    started: bool,
    snapshot: VecDeque<SourceBatch>,
    changes: Option<UnboundedReceiver<Change>>,
}

impl ResultTableSource {
    /// A reader of `table` for `split`.
    pub fn new(table: Arc<ResultTable>, split: Split) -> Self {
        Self { table, split, started: false, snapshot: VecDeque::new(), changes: None }
    }
}

#[async_trait::async_trait]
impl Source for ResultTableSource {
    async fn next_batch(&mut self) -> eddy_connectors::Result<Option<SourceBatch>> {
        if self.split.index != 0 {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            let (snapshot, changes) = self.table.subscribe();
            self.snapshot = snapshot.batches.into_iter().map(SourceBatch::rows).collect();
            self.changes = Some(changes);
        }
        if let Some(b) = self.snapshot.pop_front() {
            return Ok(Some(b));
        }
        let Some(changes) = self.changes.as_mut() else { return Ok(None) };
        Ok(changes.recv().await.map(|c| SourceBatch { batch: c.batch, row_kinds: c.row_kinds, partition: None }))
    }
}
