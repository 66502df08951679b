//! Writing part files, as Flink's filesystem sink.
//!
//! ```text
//!  write_batch ─▶ split rows by partition (`k=v/` directories; none when unpartitioned)
//!     └─▶ open part: <dir>/.part-<uuid>-<subtask>-<n>.inprogress   (hidden while written)
//!     └─▶ roll when the part reaches `sink.rolling-policy.file-size` or gets older than
//!         `sink.rolling-policy.rollover-interval`; a rolled part waits, still hidden
//!  finish ─▶ close every part, rename each to <dir>/part-<uuid>-<subtask>-<n>  (the commit)
//! ```
//! Readers skip names starting with '.', so nothing is visible before the commit and a
//! failed job leaves no half-written visible file. Rows of a batch stay in order; a roll
//! happens only between rows.
//!
//! With checkpoints the commit is two-phase, as Flink's `FileSink`:
//! ```text
//!  pre_commit(e) ─▶ close every open part (later rows go to new ones); the parts closed
//!                   since the last checkpoint become pending for epoch e; the state lists
//!                   every pending part not yet committed
//!  commit(e)     ─▶ rename every part pending for an epoch <= e to its final name
//!  recover(state)─▶ after a restart: rename the parts the state lists (if not yet), delete
//!                   this subtask's other in-progress parts (rows after the checkpoint,
//!                   which the sources will send again), and go on naming parts after them
//! ```
//! The state (JSON) names the parts by their final path under the table's path:
//! `{"uuid": "…", "subtask": 0, "next_part": 4, "pending": [{"epoch": 7, "file": "dt=1/part-…-0-3"}]}`.
//! A recovered subtask keeps the uuid of the state, so its in-progress parts are told
//! apart from those of other jobs writing into the same directory.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, Int8Array, UInt32Array};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::partition_commit::{CommitConfig, CommitTracker};
use super::{escape_partition_value, Config};
use crate::format::{Format, LineEncoder};
use crate::text::{self, Style};
use crate::{ConnectorError, ConnectorTable, Result, RowKind, Sink, Split};

/// Flink's default `sink.rolling-policy.file-size`.
const DEFAULT_FILE_SIZE: u64 = 128 << 20;
/// Flink's default `sink.rolling-policy.rollover-interval`.
const DEFAULT_ROLLOVER: Duration = Duration::from_secs(30 * 60);
/// Rows handed to the parquet writer between size checks.
const PARQUET_SLICE: usize = 1024;

/// Sink-side settings.
struct SinkConfig {
    file_size: u64,
    rollover: Duration,
    /// Marker file written into each partition directory at commit (`success-file` policy).
    success_file: Option<String>,
    /// When a partition is committed (see `partition_commit`).
    commit: CommitConfig,
    compression: Compression,
}

fn sink_config(table: &ConnectorTable) -> Result<SinkConfig> {
    let name = table.name.as_str();
    let o = &table.options;
    let file_size = o.memory_size(name, "sink.rolling-policy.file-size")?.unwrap_or(DEFAULT_FILE_SIZE).max(1);
    let rollover = o.duration(name, "sink.rolling-policy.rollover-interval")?.unwrap_or(DEFAULT_ROLLOVER);
    for key in ["sink.rolling-policy.check-interval", "sink.rolling-policy.inactivity-interval"] {
        o.duration(name, key)?;
    }
    let commit = CommitConfig::parse(name, o)?;
    o.parse::<usize>(name, "sink.parallelism")?;
    let mut success_file = None;
    if let Some(kinds) = o.get("sink.partition-commit.policy.kind") {
        for kind in kinds.split(',').map(str::trim) {
            match kind {
                "success-file" => {
                    success_file =
                        Some(o.get("sink.partition-commit.success-file.name").unwrap_or("_SUCCESS").to_string())
                }
                other => {
                    return Err(ConnectorError::options(
                        name,
                        format!("partition commit policy '{other}' is not supported yet in this version of Eddy; use 'success-file'"),
                    ))
                }
            }
        }
    }
    let compression = match o.get("parquet.compression").map(str::to_ascii_uppercase).as_deref() {
        None | Some("SNAPPY") => Compression::SNAPPY,
        Some("UNCOMPRESSED") | Some("NONE") => Compression::UNCOMPRESSED,
        Some(other) => {
            return Err(ConnectorError::options(
                name,
                format!("'parquet.compression' = '{other}' is not supported; use 'SNAPPY' or 'UNCOMPRESSED'"),
            ))
        }
    };
    if !table.metadata.is_empty() {
        return Err(ConnectorError::options(name, "the filesystem sink does not write metadata columns"));
    }
    Ok(SinkConfig { file_size, rollover, success_file, commit, compression })
}

/// Sink-side checks (nothing is created).
pub(super) fn check(table: &ConnectorTable, config: &Config) -> Result<()> {
    sink_config(table)?;
    let (_, data) = split_schema(table);
    config.format.validate(&table.name, &table.options, &data)?;
    config.format.encoder(&table.name, &table.options)?;
    Ok(())
}

/// Partition column indexes, and the schema of what goes into the files (the rest).
fn split_schema(table: &ConnectorTable) -> (Vec<usize>, SchemaRef) {
    let fields = table.schema.fields();
    let partitions: Vec<usize> =
        table.partition_keys.iter().filter_map(|k| fields.iter().position(|f| f.name() == k)).collect();
    let data: Vec<_> =
        fields.iter().enumerate().filter(|(i, _)| !partitions.contains(i)).map(|(_, f)| f.clone()).collect();
    (partitions, Arc::new(Schema::new(data)))
}

/// Build one subtask of the sink; the output directory is created now.
pub(super) fn create(table: &ConnectorTable, config: Config, split: Split) -> Result<Box<dyn Sink>> {
    let settings = sink_config(table)?;
    check(table, &config)?;
    std::fs::create_dir_all(&config.path).map_err(|e| ConnectorError::io(config.path.display().to_string(), e))?;
    let (partitions, data_schema) = split_schema(table);
    let encoder = config.format.encoder(&table.name, &table.options)?;
    let commits = CommitTracker::new(settings.commit.clone());
    Ok(Box::new(FileSink {
        table: table.name.clone(),
        dir: config.path,
        format: config.format,
        default_partition: config.default_partition,
        settings,
        uuid: uuid(),
        subtask: split.index,
        counter: 0,
        partitions,
        partition_names: table.partition_keys.clone(),
        data_schema,
        encoder,
        open: HashMap::new(),
        rolled: Vec::new(),
        pending: Vec::new(),
        commits,
        scratch: Vec::new(),
        row_ends: Vec::new(),
    }))
}

/// A random version-4 UUID, as Flink names its part files.
fn uuid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A closed part, hidden until it is committed.
#[derive(Debug, Clone)]
struct Closed {
    in_progress: PathBuf,
    committed: PathBuf,
}

impl Closed {
    /// Make the part visible. Done already (a commit repeated after a restart) is fine.
    fn commit(&self) -> Result<()> {
        match std::fs::rename(&self.in_progress, &self.committed) {
            Ok(()) => Ok(()),
            Err(_) if !self.in_progress.exists() && self.committed.exists() => Ok(()),
            Err(e) => Err(ConnectorError::io(format!("committing {}", self.committed.display()), e)),
        }
    }
}

/// The in-progress name of the part whose final path is `committed`.
fn in_progress_of(committed: &std::path::Path) -> Option<PathBuf> {
    let name = committed.file_name()?.to_str()?;
    Some(committed.with_file_name(format!(".{name}.inprogress")))
}

/// What a checkpoint keeps of a sink subtask (see the module docs).
#[derive(Debug, Serialize, Deserialize)]
struct State {
    uuid: String,
    subtask: usize,
    next_part: u64,
    pending: Vec<PendingEntry>,
    /// Partitions (`k=v/..`) the checkpoint covers that are not committed yet.
    #[serde(default)]
    partitions: Vec<String>,
}

/// A part pre-committed for `epoch`, by its final path relative to the table's path.
#[derive(Debug, Serialize, Deserialize)]
struct PendingEntry {
    epoch: u64,
    file: String,
}

/// An open part file.
struct Part {
    writer: PartWriter,
    in_progress: PathBuf,
    committed: PathBuf,
    bytes: u64,
    opened: Instant,
}

enum PartWriter {
    Text(BufWriter<File>),
    Parquet(Box<ArrowWriter<File>>),
}

impl Part {
    /// Flush and close; the file stays hidden until committed.
    fn close(self) -> Result<Closed> {
        let shown = self.in_progress.display().to_string();
        match self.writer {
            PartWriter::Text(mut w) => w.flush().map_err(|e| ConnectorError::io(&shown, e))?,
            PartWriter::Parquet(w) => {
                w.close().map_err(|e| ConnectorError::parquet(&shown, e))?;
            }
        }
        Ok(Closed { in_progress: self.in_progress, committed: self.committed })
    }

    fn size(&self) -> u64 {
        match &self.writer {
            PartWriter::Text(_) => self.bytes,
            PartWriter::Parquet(w) => (w.bytes_written() + w.in_progress_size()) as u64,
        }
    }
}

/// One subtask of a filesystem sink.
struct FileSink {
    table: String,
    dir: PathBuf,
    format: Format,
    default_partition: String,
    settings: SinkConfig,
    uuid: String,
    subtask: usize,
    /// Parts opened so far by this subtask (the `<n>` of the name).
    counter: u64,
    partitions: Vec<usize>,
    partition_names: Vec<String>,
    data_schema: SchemaRef,
    encoder: Option<Box<dyn LineEncoder>>,
    /// Open part per partition directory ("" when unpartitioned).
    open: HashMap<String, Part>,
    /// Parts closed (rolled) since the last checkpoint barrier.
    rolled: Vec<Closed>,
    /// Parts pre-committed at a checkpoint barrier, with its epoch, awaiting its commit.
    pending: Vec<(u64, Closed)>,
    /// Partition directories written to and not committed since (`k=v/..`, "" when
    /// unpartitioned), for success files.
    commits: CommitTracker,
    scratch: Vec<u8>,
    row_ends: Vec<usize>,
}

impl FileSink {
    fn open_part(&mut self, partition: &str) -> Result<Part> {
        let dir = if partition.is_empty() { self.dir.clone() } else { self.dir.join(partition) };
        std::fs::create_dir_all(&dir).map_err(|e| ConnectorError::io(dir.display().to_string(), e))?;
        // A name never taken over: after a restart, parts of the run before may exist with
        // these numbers (committed at the end of its input), and must not be overwritten.
        let (in_progress, committed) = loop {
            let name = format!("part-{}-{}-{}", self.uuid, self.subtask, self.counter);
            self.counter += 1;
            let in_progress = dir.join(format!(".{name}.inprogress"));
            let committed = dir.join(name);
            if !in_progress.exists() && !committed.exists() {
                break (in_progress, committed);
            }
        };
        let shown = in_progress.display().to_string();
        let file = File::create(&in_progress).map_err(|e| ConnectorError::io(&shown, e))?;
        let writer = match self.format {
            Format::Parquet => {
                let props = WriterProperties::builder().set_compression(self.settings.compression).build();
                let w = ArrowWriter::try_new(file, self.data_schema.clone(), Some(props))
                    .map_err(|e| ConnectorError::parquet(&shown, e))?;
                PartWriter::Parquet(Box::new(w))
            }
            _ => PartWriter::Text(BufWriter::with_capacity(1 << 16, file)),
        };
        Ok(Part { writer, in_progress, committed, bytes: 0, opened: Instant::now() })
    }

    /// The open part of `partition`, rolled first when it is full or too old.
    fn part(&mut self, partition: &str) -> Result<&mut Part> {
        let roll = self
            .open
            .get(partition)
            .is_some_and(|p| p.size() >= self.settings.file_size || p.opened.elapsed() >= self.settings.rollover);
        if roll {
            if let Some(old) = self.open.remove(partition) {
                self.rolled.push(old.close()?);
            }
        }
        if !self.open.contains_key(partition) {
            let part = self.open_part(partition)?;
            self.open.insert(partition.to_string(), part);
        }
        self.open.get_mut(partition).ok_or_else(|| ConnectorError::options(&self.table, "internal: part file vanished"))
    }

    /// Commit the partitions `dirs`: write the success file into each (`success-file`
    /// policy; without a policy a commit does nothing visible).
    fn commit_partitions(&self, dirs: &[String]) -> Result<()> {
        let Some(name) = &self.settings.success_file else { return Ok(()) };
        for dir in dirs {
            let marker = if dir.is_empty() { self.dir.join(name) } else { self.dir.join(dir).join(name) };
            File::create(&marker).map_err(|e| ConnectorError::io(marker.display().to_string(), e))?;
        }
        Ok(())
    }

    /// Write the rows of `data` (file columns only) into `partition`'s parts.
    fn write_rows(&mut self, partition: &str, data: &RecordBatch) -> Result<()> {
        self.commits.wrote(partition);
        let Some(encoder) = self.encoder.as_mut() else {
            return self.write_parquet(partition, data);
        };
        self.scratch.clear();
        self.row_ends.clear();
        encoder.encode(data, &mut self.scratch, &mut self.row_ends)?;
        let scratch = std::mem::take(&mut self.scratch);
        let row_ends = std::mem::take(&mut self.row_ends);
        let mut start = 0;
        let mut row = 0;
        let limit = self.settings.file_size;
        while row < row_ends.len() {
            let part = self.part(partition)?;
            // Rows up to and including the one that makes the part reach the limit.
            let mut end_row = row;
            while end_row + 1 < row_ends.len() && part.bytes + ((row_ends[end_row] - start) as u64) < limit {
                end_row += 1;
            }
            let end = row_ends[end_row];
            if let PartWriter::Text(w) = &mut part.writer {
                w.write_all(&scratch[start..end])
                    .map_err(|e| ConnectorError::io(part.in_progress.display().to_string(), e))?;
            }
            part.bytes += (end - start) as u64;
            start = end;
            row = end_row + 1;
        }
        self.scratch = scratch;
        self.row_ends = row_ends;
        Ok(())
    }

    fn write_parquet(&mut self, partition: &str, data: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < data.num_rows() {
            let len = PARQUET_SLICE.min(data.num_rows() - offset);
            let part = self.part(partition)?;
            if let PartWriter::Parquet(w) = &mut part.writer {
                w.write(&data.slice(offset, len))
                    .map_err(|e| ConnectorError::parquet(part.in_progress.display().to_string(), e))?;
            }
            offset += len;
        }
        Ok(())
    }

    /// The rows of `batch` grouped by partition directory (`k1=v1/k2=v2`), directories in
    /// first-seen order and rows in order within each.
    fn partition_groups(&self, batch: &RecordBatch) -> Result<Vec<(String, Vec<u32>)>> {
        let columns: Vec<&ArrayRef> = self.partitions.iter().map(|&c| batch.column(c)).collect();
        let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        // Rows of a stream mostly share the previous row's partition: its values are
        // compared first, and the directory name is only built for a new one.
        let mut values = vec![String::new(); columns.len()];
        let mut last_values = values.clone();
        let mut last_group = None;
        for row in 0..batch.num_rows() {
            for (value, array) in values.iter_mut().zip(&columns) {
                value.clear();
                if array.is_valid(row) {
                    text::write_value(value, array.as_ref(), row, Style::Sql)?;
                }
            }
            let g = match last_group {
                Some(g) if values == last_values => g,
                _ => {
                    let mut dir = String::new();
                    for (n, (value, name)) in values.iter().zip(&self.partition_names).enumerate() {
                        if n > 0 {
                            dir.push('/');
                        }
                        // NULL and '' both go to the default partition.
                        let shown = if value.is_empty() { self.default_partition.as_str() } else { value.as_str() };
                        dir.push_str(&format!("{}={}", escape_partition_value(name), escape_partition_value(shown)));
                    }
                    let g = *index.entry(dir).or_insert_with_key(|dir| {
                        groups.push((dir.clone(), Vec::new()));
                        groups.len() - 1
                    });
                    std::mem::swap(&mut values, &mut last_values);
                    last_group = Some(g);
                    g
                }
            };
            groups[g].1.push(row as u32);
        }
        Ok(groups)
    }
}

#[async_trait::async_trait]
impl Sink for FileSink {
    async fn write_batch(&mut self, batch: &RecordBatch, row_kinds: Option<&Int8Array>) -> Result<()> {
        if let Some(kinds) = row_kinds {
            if kinds.iter().any(|k| k.and_then(RowKind::from_code).is_some_and(|k| k != RowKind::Insert)) {
                return Err(ConnectorError::options(
                    &self.table,
                    "the filesystem sink only accepts inserts (append-only), but received updates or deletes",
                ));
            }
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // The file columns, in the table's declared types (the parquet writer insists on them).
        let columns = (0..batch.num_columns())
            .filter(|i| !self.partitions.contains(i))
            .zip(self.data_schema.fields())
            .map(|(i, field)| {
                let column = batch.column(i);
                if column.data_type() == field.data_type() {
                    return Ok(column.clone());
                }
                arrow::compute::cast(column, field.data_type())
                    .map_err(|e| ConnectorError::arrow(format!("filesystem sink: column '{}'", field.name()), e))
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let data = RecordBatch::try_new_with_options(self.data_schema.clone(), columns, &rows)
            .map_err(|e| ConnectorError::arrow("filesystem sink: batch does not match the table", e))?;
        if self.partitions.is_empty() {
            return self.write_rows("", &data);
        }
        for (dir, rows) in self.partition_groups(batch)? {
            let rows = arrow::compute::take_record_batch(&data, &UInt32Array::from(rows))
                .map_err(|e| ConnectorError::arrow("filesystem sink: partitioning", e))?;
            self.write_rows(&dir, &rows)?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        for (_, part) in self.open.drain() {
            self.rolled.push(part.close()?);
        }
        for (_, closed) in std::mem::take(&mut self.pending) {
            closed.commit()?;
        }
        for closed in std::mem::take(&mut self.rolled) {
            closed.commit()?;
        }
        let partitions = self.commits.finish();
        self.commit_partitions(&partitions)
    }

    fn watermark(&mut self, watermark: i64) {
        self.commits.watermark(watermark);
    }

    async fn pre_commit(&mut self, epoch: u64) -> Result<Option<serde_json::Value>> {
        // Rows go on into new parts; the closed ones stay hidden until the commit.
        for (_, part) in self.open.drain() {
            self.rolled.push(part.close()?);
        }
        self.pending.extend(self.rolled.drain(..).map(|closed| (epoch, closed)));
        let mut pending = Vec::with_capacity(self.pending.len());
        for (epoch, closed) in &self.pending {
            let file = closed.committed.strip_prefix(&self.dir).ok().and_then(|p| p.to_str()).ok_or_else(|| {
                ConnectorError::checkpoint(
                    &self.table,
                    format!("part {} cannot be named in the checkpoint", closed.committed.display()),
                )
            })?;
            pending.push(PendingEntry { epoch: *epoch, file: file.to_string() });
        }
        let partitions = self.commits.barrier(epoch);
        let state =
            State { uuid: self.uuid.clone(), subtask: self.subtask, next_part: self.counter, pending, partitions };
        serde_json::to_value(state).map(Some).map_err(|e| ConnectorError::checkpoint(&self.table, e.to_string()))
    }

    async fn commit(&mut self, epoch: u64) -> Result<()> {
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().partition(|(e, _)| *e <= epoch);
        self.pending = later;
        let mut due = due.into_iter();
        while let Some((e, closed)) = due.next() {
            if let Err(error) = closed.commit() {
                // Keep what is not committed yet for the next commit (or finish).
                let mut left: Vec<_> = std::iter::once((e, closed)).chain(due).collect();
                left.append(&mut self.pending);
                self.pending = left;
                return Err(error);
            }
        }
        let partitions = self.commits.completed(epoch);
        self.commit_partitions(&partitions)
    }

    async fn recover(&mut self, state: Option<serde_json::Value>) -> Result<()> {
        let Some(state) = state else { return Ok(()) };
        let bad = |message: String| ConnectorError::checkpoint(&self.table, message);
        let state =
            State::deserialize(&state).map_err(|e| bad(format!("filesystem sink state cannot be read: {e}")))?;
        if state.subtask != self.subtask {
            return Err(bad(format!(
                "the state of sink subtask {} was given to subtask {}",
                state.subtask, self.subtask
            )));
        }
        if !self.open.is_empty() || !self.rolled.is_empty() || !self.pending.is_empty() {
            return Err(bad("the sink must recover before it writes".into()));
        }
        // Publish what the (complete) checkpoint pre-committed.
        let mut keep = HashSet::new();
        for entry in &state.pending {
            let committed = self.dir.join(&entry.file);
            let in_progress =
                in_progress_of(&committed).ok_or_else(|| bad(format!("'{}' is not a part file name", entry.file)))?;
            if !in_progress.exists() && !committed.exists() {
                return Err(bad(format!(
                    "part {} of the checkpoint is gone (neither in progress nor committed)",
                    committed.display()
                )));
            }
            Closed { in_progress: in_progress.clone(), committed: committed.clone() }.commit()?;
            keep.insert(in_progress);
        }
        // The partitions the checkpoint covered and had not committed (older states only
        // list the parts: their directories).
        let mut partitions = state.partitions.clone();
        for entry in &state.pending {
            let dir = entry.file.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            if !partitions.iter().any(|p| p == dir) {
                partitions.push(dir.to_string());
            }
        }
        self.commits.recovered(&partitions);
        // Rows written after the checkpoint are written again by the replay: drop their parts.
        let prefix = format!(".part-{}-{}-", state.uuid, self.subtask);
        for path in files_under(&self.dir)? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let ours = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".inprogress"))
                .is_some_and(|n| n.parse::<u64>().is_ok());
            if ours && !keep.contains(&path) {
                std::fs::remove_file(&path)
                    .map_err(|e| ConnectorError::io(format!("removing {}", path.display()), e))?;
            }
        }
        self.uuid = state.uuid;
        self.counter = state.next_part;
        Ok(())
    }
}

/// Every file under `dir`, in its partition directories too.
fn files_under(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| ConnectorError::io(d.display().to_string(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ConnectorError::io(d.display().to_string(), e))?;
            let kind = entry.file_type().map_err(|e| ConnectorError::io(entry.path().display().to_string(), e))?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    Ok(out)
}
