//! Reading a directory of files: list, split over subtasks, decode, add partition and
//! metadata columns.
//!
//! ```text
//!  list files (sorted, recursive, skipping '.'/'_' names) ── every count-th from index
//!    └─▶ per file: read ~1 MiB chunks ─▶ format decoder ─▶ physical columns
//!          └─▶ + partition columns (from `k=v/` directories) + metadata (`file.*`) ─▶ batch
//! ```
//! Files are read through tokio so a slow disk does not block the runtime's threads.
//! Parquet files are read column-wise by [`ParquetReader`] instead of the byte decoders.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use tokio::io::AsyncReadExt;

use super::parquet::ParquetReader;
use super::{unescape_partition_value, Config, METADATA_KEYS};
use crate::format::{Decoder, Format};
use crate::{ConnectorError, ConnectorTable, Options, Result, Source, SourceBatch, Split};

/// Bytes read from a file at a time.
const CHUNK: usize = 1 << 20;

/// Where each output column comes from.
#[derive(Debug, Clone)]
enum ColumnSource {
    /// The n-th column the format decodes.
    Physical(usize),
    /// A partition column, from the file's `name=value` directory.
    Partition(String),
    /// A `file.*` metadata key.
    Metadata(String),
}

/// The output columns and the schema the format decodes.
fn layout(table: &ConnectorTable) -> Result<(Vec<ColumnSource>, SchemaRef)> {
    let mut sources = Vec::new();
    let mut physical = Vec::new();
    for (i, field) in table.schema.fields().iter().enumerate() {
        if let Some((_, key)) = table.metadata.iter().find(|(idx, _)| *idx == i) {
            if !METADATA_KEYS.contains(&key.as_str()) {
                return Err(ConnectorError::options(
                    &table.name,
                    format!(
                        "unknown metadata key '{key}' for connector 'filesystem'; available: {}",
                        METADATA_KEYS.join(", ")
                    ),
                ));
            }
            sources.push(ColumnSource::Metadata(key.clone()));
        } else if table.partition_keys.iter().any(|k| k == field.name()) {
            sources.push(ColumnSource::Partition(field.name().clone()));
        } else {
            sources.push(ColumnSource::Physical(physical.len()));
            physical.push(field.clone());
        }
    }
    Ok((sources, Arc::new(Schema::new(physical))))
}

/// Source-side checks (no file is opened).
pub(super) fn check(table: &ConnectorTable, config: &Config) -> Result<()> {
    let (columns, physical) = layout(table)?;
    for (column, field) in columns.iter().zip(table.schema.fields()) {
        if matches!(column, ColumnSource::Partition(_)) && field.data_type().is_nested() {
            return Err(ConnectorError::options(
                &table.name,
                format!("partition column '{}' cannot be of type {}", field.name(), field.data_type()),
            ));
        }
    }
    config.format.validate(&table.name, &table.options, &physical)?;
    // Building a decoder checks that the format can produce every column type.
    if config.format != Format::Parquet {
        config.format.decoder(&table.name, &table.options, physical, String::new())?;
    }
    Ok(())
}

/// Open the listing and build the subtask's source.
pub(super) fn create(table: &ConnectorTable, config: Config, split: Split) -> Result<Box<dyn Source>> {
    check(table, &config)?;
    let (columns, physical) = layout(table)?;
    let files = list_files(&config.path)?;
    let count = split.count.max(1);
    let mine = files.into_iter().enumerate().filter(|(i, _)| i % count == split.index).map(|(_, f)| f).collect();
    Ok(Box::new(FileSource {
        opener: Opener {
            table: table.name.clone(),
            options: table.options.clone(),
            format: config.format,
            default_partition: config.default_partition,
            root: config.path,
            schema: table.schema.clone(),
            physical,
            columns,
        },
        files: mine,
        current: None,
        skipped_done: 0,
    }))
}

/// Regular files under `path` (or `path` itself), sorted, skipping hidden names.
fn list_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| ConnectorError::io(format!("{}", path.display()), e))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| ConnectorError::io(format!("{}", dir.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ConnectorError::io(format!("{}", dir.display()), e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Flink's hidden files: in-progress parts, _SUCCESS markers, .crc files.
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let p = entry.path();
            let ty = std::fs::metadata(&p).map_err(|e| ConnectorError::io(format!("{}", p.display()), e))?;
            if ty.is_dir() {
                dirs.push(p);
            } else if ty.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The file being read.
struct OpenFile {
    reader: Reader,
    /// The path, for messages.
    shown: String,
    /// One constant value per non-physical column (partition text or metadata array).
    constants: Vec<Option<Constant>>,
}

/// How a file's rows are read.
enum Reader {
    /// A text format: bytes in chunks through a decoder.
    Text { file: tokio::fs::File, buf: Vec<u8>, eof: bool, decoder: Box<dyn Decoder> },
    /// Parquet: column chunks through the parquet reader.
    Parquet(Box<ParquetReader>),
}

impl Reader {
    fn skipped(&self) -> u64 {
        match self {
            Self::Text { decoder, .. } => decoder.skipped(),
            Self::Parquet(_) => 0,
        }
    }

    /// The next decoded batch of this file, or `None` at its end.
    async fn next(&mut self, shown: &str) -> Result<Option<RecordBatch>> {
        let Self::Text { file, buf, eof, decoder } = self else {
            let Self::Parquet(reader) = self else { return Ok(None) };
            return reader.next().await;
        };
        loop {
            // Keep at least a chunk buffered so batches are full-sized, not cut at chunk ends.
            if !*eof && buf.len() < CHUNK {
                buf.reserve(CHUNK);
                *eof = file.read_buf(buf).await.map_err(|e| ConnectorError::io(shown, e))? == 0;
                continue;
            }
            let (batch, used) = decoder.decode(buf, *eof)?;
            buf.drain(..used);
            if let Some(batch) = batch.filter(|b| b.num_rows() > 0) {
                return Ok(Some(batch));
            }
            if *eof && (buf.is_empty() || used == 0) {
                return Ok(None);
            }
            if used == 0 {
                // A record longer than the buffer: read more before decoding again.
                buf.reserve(CHUNK);
                *eof = file.read_buf(buf).await.map_err(|e| ConnectorError::io(shown, e))? == 0;
            }
        }
    }
}

/// The value of a partition or metadata column for a whole file.
enum Constant {
    Text(Option<String>),
    Array(ArrayRef),
}

/// One subtask of a filesystem source.
struct FileSource {
    opener: Opener,
    files: VecDeque<PathBuf>,
    current: Option<OpenFile>,
    /// Records skipped in files already finished.
    skipped_done: u64,
}

/// What it takes to open a file and shape its rows (kept apart from the open file, so
/// opening borrows nothing that is not `Sync`).
struct Opener {
    table: String,
    options: Options,
    format: Format,
    default_partition: String,
    root: PathBuf,
    schema: SchemaRef,
    physical: SchemaRef,
    columns: Vec<ColumnSource>,
}

impl Opener {
    async fn open(&self, path: &Path) -> Result<OpenFile> {
        let shown = path.display().to_string();
        let file = tokio::fs::File::open(path).await.map_err(|e| ConnectorError::io(&shown, e))?;
        let meta = file.metadata().await.map_err(|e| ConnectorError::io(&shown, e))?;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64);
        let partitions = partition_values(&self.root, path);
        let constants = self
            .columns
            .iter()
            .map(|c| match c {
                ColumnSource::Physical(_) => None,
                ColumnSource::Partition(name) => {
                    let value = partitions.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                    Some(Constant::Text(value.filter(|v| *v != self.default_partition)))
                }
                ColumnSource::Metadata(key) => Some(Constant::Array(match key.as_str() {
                    "file.path" => Arc::new(StringArray::from(vec![absolute.display().to_string()])),
                    "file.name" => Arc::new(StringArray::from(vec![path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()])),
                    "file.size" => Arc::new(Int64Array::from(vec![meta.len() as i64])),
                    _ => Arc::new(TimestampMillisecondArray::from(vec![modified]).with_timezone("UTC")),
                })),
            })
            .collect();
        let reader = if self.format == Format::Parquet {
            Reader::Parquet(Box::new(ParquetReader::open(file, self.physical.clone(), shown.clone()).await?))
        } else {
            let decoder = self.format.decoder(&self.table, &self.options, self.physical.clone(), shown.clone())?;
            Reader::Text { file, buf: Vec::with_capacity(CHUNK), eof: false, decoder }
        };
        Ok(OpenFile { reader, shown, constants })
    }
}

/// Physical columns plus the file's constant columns, in table order.
fn assemble(
    table: &str,
    schema: &SchemaRef,
    columns: &[ColumnSource],
    decoded: RecordBatch,
    constants: &[Option<Constant>],
) -> Result<RecordBatch> {
    let rows = decoded.num_rows();
    let mut arrays = Vec::with_capacity(columns.len());
    for ((column, constant), field) in columns.iter().zip(constants).zip(schema.fields()) {
        let array = match (column, constant) {
            (ColumnSource::Physical(i), _) => decoded.column(*i).clone(),
            (_, Some(Constant::Text(None))) => new_null_array(field.data_type(), rows),
            (_, Some(Constant::Text(Some(text)))) => {
                let strings: ArrayRef = Arc::new(StringArray::from(vec![text.as_str(); rows]));
                cast(&strings, field.data_type()).map_err(|e| {
                    ConnectorError::arrow(format!("partition column '{}' value '{text}'", field.name()), e)
                })?
            }
            (_, Some(Constant::Array(one))) => {
                let indices = arrow::array::UInt32Array::from(vec![0u32; rows]);
                let repeated = arrow::compute::take(one.as_ref(), &indices, None)
                    .map_err(|e| ConnectorError::arrow("metadata column", e))?;
                cast(&repeated, field.data_type())
                    .map_err(|e| ConnectorError::arrow(format!("metadata column '{}'", field.name()), e))?
            }
            (_, None) => new_null_array(field.data_type(), rows),
        };
        arrays.push(array);
    }
    RecordBatch::try_new_with_options(schema.clone(), arrays, &RecordBatchOptions::new().with_row_count(Some(rows)))
        .map_err(|e| ConnectorError::arrow(format!("table '{}': building batch", table), e))
}

/// `name=value` directory components between `root` and `file`.
fn partition_values(root: &Path, file: &Path) -> Vec<(String, String)> {
    let rel = file.strip_prefix(root).unwrap_or(file);
    rel.parent()
        .map(|dir| {
            dir.components()
                .filter_map(|c| {
                    let text = c.as_os_str().to_string_lossy();
                    let (k, v) = text.split_once('=')?;
                    Some((unescape_partition_value(k), unescape_partition_value(v)))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl Source for FileSource {
    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        loop {
            let Some(current) = self.current.as_mut() else {
                let Some(path) = self.files.pop_front() else { return Ok(None) };
                self.current = Some(self.opener.open(&path).await?);
                continue;
            };
            match current.reader.next(&current.shown).await? {
                Some(batch) => {
                    let o = &self.opener;
                    let batch = assemble(&o.table, &o.schema, &o.columns, batch, &current.constants)?;
                    return Ok(Some(SourceBatch { batch, row_kinds: None }));
                }
                None => {
                    self.skipped_done += current.reader.skipped();
                    self.current = None;
                }
            }
        }
    }

    fn skipped_records(&self) -> u64 {
        self.skipped_done + self.current.as_ref().map_or(0, |c| c.reader.skipped())
    }
}
