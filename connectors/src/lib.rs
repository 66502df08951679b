//! Eddy's connectors: where rows come from and where they go.
//!
//! Every connector is reached through two traits, [`Source`] and [`Sink`], and built by
//! [`create_source`] / [`create_sink`] from a [`ConnectorTable`] — the table's name, its
//! Arrow schema and its Flink `WITH (...)` options. The runtime never sees a connector's
//! internals (files, generators, later Kafka), and connectors never see operators: this keeps
//! the dependency arrow `engine -> connectors` one-way, as DESIGN.md draws it.
//!
//! Batches are Arrow [`RecordBatch`]es throughout. A changelog (updating) stream is given
//! to a sink together with the row kinds ([`RowKind`], Flink's `+I -U +U -D`).
//!
//! Where things are:
//!
//! | module | what |
//! |---|---|
//! | `registry` | `'connector'` name -> implementation; which may be a source or a sink |
//! | `datagen` | random / sequence rows (source) |
//! | `nexmark` | the Nexmark benchmark's events (source) |
//! | `filesystem` | files of a directory (source) and part files (sink) |
//! | `format` | `json`, `csv` (decoders and line encoders) and `parquet` |
//! | `kafka` | `kafka` and `upsert-kafka` (source and sink), over librdkafka |
//! | `print`, `blackhole` | sinks for looking at output and for discarding it |
//! | `text` | values as Flink/Java text (print, csv) |
//! | `rate` | the rate limiter of the generator sources |

pub mod changelog;
pub mod error;
pub mod options;

pub use changelog::RowKind;

pub use error::ConnectorError;
pub use jdbc::lookup::TextRow;
pub use kafka::RESUME_OPTION as KAFKA_RESUME_OPTION;
pub use options::Options;
pub use registry::LookupTable;

use arrow::array::Int8Array;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

/// Result type of every connector call.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// What a connector is told about the table it serves.
#[derive(Debug, Clone)]
pub struct ConnectorTable {
    /// Table name as written in SQL (for messages).
    pub name: String,
    /// For a source: the columns the connector must produce, in this order (the table's
    /// physical columns followed by its metadata columns, see `metadata`).
    /// For a sink: the columns of the rows it receives (physical columns, in order).
    pub schema: SchemaRef,
    /// Metadata columns: (index into `schema`, metadata key such as `file.path`).
    pub metadata: Vec<(usize, String)>,
    /// Primary key column names (empty when none declared).
    pub primary_key: Vec<String>,
    /// `PARTITIONED BY` column names.
    pub partition_keys: Vec<String>,
    /// `DISTRIBUTED [BY (cols)] INTO n BUCKETS` (Kafka: the key columns and the topic's
    /// partition count).
    pub distribution: Option<Distribution>,
    /// The `WITH (...)` options, keys as written.
    pub options: Options,
    /// For a source: the parts of `schema` the job never reads, as (column index, `None`
    /// for the whole column or `Some(field)` for a ROW column's field). A source may fill
    /// them with NULL instead of producing them; ignoring the hint is always correct.
    pub unread: Vec<(usize, Option<String>)>,
}

/// A table's `DISTRIBUTED BY (columns) INTO buckets BUCKETS` clause.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Distribution {
    /// Bucket key columns; empty for `DISTRIBUTED INTO n BUCKETS`.
    pub columns: Vec<String>,
    /// The number of buckets, when given.
    pub buckets: Option<u64>,
}

/// Which part of a source one parallel task reads: split `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// 0-based subtask index.
    pub index: usize,
    /// Number of parallel subtasks.
    pub count: usize,
}

/// A batch produced by a source split.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// Rows in `ConnectorTable::schema` order.
    pub batch: RecordBatch,
    /// Row kinds when the source produces a changelog (e.g. debezium-json); `None` = all `+I`.
    pub row_kinds: Option<Int8Array>,
    /// For a split that reads several partitions (Kafka), the partition these rows come
    /// from: each partition keeps its own watermark, and the split's watermark is the
    /// minimum over its partitions, as Flink's per-split watermarks. `None`: the split is
    /// one stream.
    pub partition: Option<PartitionMark>,
}

/// Which partition of a split a [`SourceBatch`] belongs to. A source announces each
/// partition it reads with an empty batch before its first rows, so a partition that has
/// no rows yet holds the watermark back (as in Flink) until it turns idle
/// (`table.exec.source.idle-timeout`) or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionMark {
    /// The partition's number within its source (unique across the source's topics).
    pub partition: u32,
    /// The partition has no more rows after this batch (bounded mode reached its end): it
    /// no longer holds the split's watermark back.
    pub ended: bool,
}

impl SourceBatch {
    /// Append-only rows of a split that is one stream.
    pub fn rows(batch: RecordBatch) -> Self {
        Self { batch, row_kinds: None, partition: None }
    }
}

/// A running source split. Pull-based: the runtime calls [`Source::next_batch`] in a loop.
#[async_trait::async_trait]
pub trait Source: Send {
    /// The next batch, or `Ok(None)` once a bounded source is exhausted. An unbounded source
    /// never returns `None`; a rate-limited one sleeps inside this call. A source that waits
    /// for data (a quiet Kafka partition) returns an empty batch every now and then instead
    /// of blocking forever, so the runtime can mark the split idle
    /// (`table.exec.source.idle-timeout`) and stop can take effect.
    async fn next_batch(&mut self) -> Result<Option<SourceBatch>>;

    /// Records skipped as malformed so far (with `*.ignore-parse-errors`), for metrics.
    fn skipped_records(&self) -> u64 {
        0
    }

    /// Where this split stands after the last batch it returned, for a checkpoint: given to
    /// [`create_source_at`], the split goes on with the first row it has not returned yet
    /// (Kafka: the next offset of every partition; files: the next line; generators: the
    /// next sequence number). `None`: the source cannot resume (a checkpoint is declined).
    fn position(&self) -> Option<serde_json::Value> {
        None
    }

    /// How far this split is behind the end of its input, per part it reads: (part, as
    /// `topic/partition`; records not returned yet). Kafka: the partition's high watermark
    /// (from the last fetch) minus the next offset to return — the consumer lag. Cheap: no
    /// call to the broker. Default: nothing to say.
    fn lag(&self) -> Vec<(String, i64)> {
        Vec::new()
    }
}

/// A running sink subtask.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// Write one batch. `row_kinds` is `None` for an append-only stream (all `+I`).
    async fn write_batch(&mut self, batch: &RecordBatch, row_kinds: Option<&Int8Array>) -> Result<()>;

    /// The input ended: flush and commit everything written (e.g. rename in-progress files).
    async fn finish(&mut self) -> Result<()>;

    /// The watermark reached the sink: no more rows with event time `<=` `watermark`
    /// (epoch milliseconds) are expected. A sink whose commits wait for event time (the
    /// filesystem sink's `partition-time` trigger) keeps it; default: nothing.
    fn watermark(&mut self, _watermark: i64) {}

    /// A checkpoint barrier `epoch` arrived, after every row before it was written: make
    /// those rows durable but not yet visible where the sink can (close the in-progress file,
    /// flush the transaction), so that [`Sink::commit`] can publish them. Returns what must
    /// be kept in the checkpoint to publish them after a crash (pending files, transaction
    /// ids), if anything. Default: flush nothing, keep nothing (at-least-once sinks).
    async fn pre_commit(&mut self, _epoch: u64) -> Result<Option<serde_json::Value>> {
        Ok(None)
    }

    /// Checkpoint `epoch` is complete: publish what was pre-committed for it (and for any
    /// earlier epoch not published yet).
    async fn commit(&mut self, _epoch: u64) -> Result<()> {
        Ok(())
    }

    /// After a restart from a checkpoint: `state` is what [`Sink::pre_commit`] returned at
    /// that checkpoint. The checkpoint is complete, so its pending output is published
    /// (if a crash came before that) and anything written after it is discarded.
    async fn recover(&mut self, _state: Option<serde_json::Value>) -> Result<()> {
        Ok(())
    }
}

/// Build one split of the source for `table` (checks the options).
pub fn create_source(table: &ConnectorTable, split: Split) -> Result<Box<dyn Source>> {
    registry::create_source(table, split, None)
}

/// Build one split of the source for `table`, resuming at `position` (what
/// [`Source::position`] returned at a checkpoint) instead of the start the options say.
pub fn create_source_at(
    table: &ConnectorTable,
    split: Split,
    position: Option<&serde_json::Value>,
) -> Result<Box<dyn Source>> {
    registry::create_source(table, split, position)
}

/// Build one subtask of the sink for `table` (checks the options).
pub fn create_sink(table: &ConnectorTable, split: Split) -> Result<Box<dyn Sink>> {
    registry::create_sink(table, split)
}

/// Check a table's options without building anything (used by `eddy check`).
/// `as_source` / `as_sink` say how the table is used in the job.
pub fn validate(table: &ConnectorTable, as_source: bool, as_sink: bool) -> Result<()> {
    registry::validate(table, as_source, as_sink)
}

/// Whether this connector's sink consumes updates (`-U`/`+U`/`-D`), not only inserts.
pub fn accepts_updates(table: &ConnectorTable) -> Result<bool> {
    registry::accepts_updates(table)
}

/// Whether this connector's source ends by itself (bounded) with these options.
pub fn is_bounded(table: &ConnectorTable) -> Result<bool> {
    registry::is_bounded(table)
}

mod blackhole;
mod datagen;
mod filesystem;
mod format;
mod jdbc;
mod kafka;
mod nexmark;
mod print;
mod rate;
mod registry;
#[cfg(test)]
mod test_util;
mod text;
