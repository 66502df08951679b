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
//!
//! Checkpoints: a split's position lists the file parts it has still to read, in order, the
//! current one first with how far it got: for text formats the byte offset of its next
//! line (and the number of lines before it, for messages; in a byte range not starting
//! the file, from its first line at `lines_from`), for parquet the rows returned.
//!
//! ```text
//! {"files": [{"path": "/in/b.csv", "at": {"offset": 1204, "line": 37}},
//!            {"path": "/in/big.json", "range": [4194304, 8388608],
//!             "at": {"offset": 6291502, "line": 8192, "lines_from": 4194351}},
//!            {"path": "/in/c.parquet", "at": {"rows": 16384}}]}
//! ```
//! Files finished are not in it. A resumed split reads exactly those parts, without
//! listing the directory again: files added since are not read (as at start, the listing is
//! taken once), and a split never takes over another's file.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek};

use super::parquet::ParquetReader;
use super::{unescape_partition_value, Config, METADATA_KEYS};
use crate::format::{Decoder, Format};
use crate::{ConnectorError, ConnectorTable, Options, Result, Source, SourceBatch, Split};

/// Bytes read from a file at a time.
const CHUNK: usize = 1 << 20;

/// A JSON-lines file at least this big is read by every subtask, each its own byte range,
/// so one big file is decoded in parallel (smaller files go whole to one subtask).
pub(super) const MIN_SPLIT_BYTES: u64 = 4 << 20;

/// A file, or a byte range of one, assigned to a subtask; also an entry of the position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FilePart {
    path: PathBuf,
    /// `[start, end)`: the lines whose first byte lies in it; `None` = the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    range: Option<(u64, u64)>,
    /// Where to go on in the part (a split resumed from a checkpoint); `None`: its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<At>,
}

/// How far a split had read a file part.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum At {
    /// Text formats: the byte offset of the next line, and the lines before it: in the
    /// file, or with `lines_from` from that offset (a byte range's first line, the lines
    /// before which are uncounted: see [`TextReader::uncounted`]).
    Text {
        offset: u64,
        line: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lines_from: Option<u64>,
    },
    /// Parquet: the rows already returned.
    Parquet { rows: u64 },
}

/// A split's checkpoint position: the parts left, the current one first.
#[derive(Debug, Serialize, Deserialize)]
struct Position {
    files: Vec<FilePart>,
}

/// Assign files to subtask `split.index`: big splittable files by byte range, the others
/// whole and round-robin.
fn assign(files: Vec<PathBuf>, splittable: bool, split: Split) -> Result<VecDeque<FilePart>> {
    let count = split.count.max(1) as u64;
    let index = split.index as u64;
    let mut mine = VecDeque::new();
    let mut whole = 0u64;
    for path in files {
        let size = std::fs::metadata(&path).map_err(|e| ConnectorError::io(path.display().to_string(), e))?.len();
        if splittable && count > 1 && size >= MIN_SPLIT_BYTES {
            mine.push_back(FilePart {
                range: Some((size * index / count, size * (index + 1) / count)),
                path,
                at: None,
            });
        } else {
            if whole % count == index {
                mine.push_back(FilePart { path, range: None, at: None });
            }
            whole += 1;
        }
    }
    Ok(mine)
}

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

/// Open the listing and build the subtask's source; resumed, the parts come from `position`.
pub(super) fn create(
    table: &ConnectorTable,
    config: Config,
    split: Split,
    position: Option<&serde_json::Value>,
) -> Result<Box<dyn Source>> {
    check(table, &config)?;
    let (columns, physical) = layout(table)?;
    let mine = match position {
        Some(p) => resume_parts(&table.name, &config, p)?,
        None => {
            let files = list_files(&config.path)?;
            // JSON lines never contain a raw newline inside a record; CSV may (quoted), so a
            // CSV file is never cut.
            assign(files, config.format == Format::Json, split)?
        }
    };
    Ok(Box::new(FileSource {
        opener: Opener {
            table: table.name.clone(),
            options: table.options.clone(),
            format: config.format,
            default_partition: config.default_partition,
            root: config.path,
            schema: table.schema.clone(),
            physical_unread: table
                .unread
                .iter()
                .filter_map(|(i, field)| match columns.get(*i) {
                    Some(ColumnSource::Physical(j)) => Some((*j, field.clone())),
                    _ => None,
                })
                .collect(),
            physical,
            columns,
        },
        files: mine,
        current: None,
        skipped_done: 0,
    }))
}

/// The parts a checkpoint position lists, checked against the table's path and format.
fn resume_parts(table: &str, config: &Config, position: &serde_json::Value) -> Result<VecDeque<FilePart>> {
    let bad = |message: String| ConnectorError::checkpoint(table, message);
    let parsed =
        Position::deserialize(position).map_err(|e| bad(format!("filesystem position cannot be read: {e}")))?;
    for part in &parsed.files {
        if !part.path.starts_with(&config.path) {
            return Err(bad(format!(
                "file '{}' is not under the table's path '{}'",
                part.path.display(),
                config.path.display()
            )));
        }
        let parquet = config.format == Format::Parquet;
        match part.at {
            Some(At::Text { .. }) if parquet => return Err(bad("a text file position for format 'parquet'".into())),
            Some(At::Parquet { .. }) if !parquet => {
                return Err(bad(format!("a parquet position for format '{}'", config.format.name())))
            }
            _ => {}
        }
    }
    Ok(parsed.files.into())
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
    /// Which part it is (for the position).
    part: FilePart,
    reader: Reader,
    /// The path, for messages.
    shown: String,
    /// One constant value per non-physical column (partition text or metadata array).
    constants: Vec<Option<Constant>>,
}

/// How a file's rows are read.
enum Reader {
    /// A text format: bytes in chunks through a decoder.
    Text(TextReader, Box<dyn Decoder>),
    /// Parquet: column chunks through the parquet reader.
    Parquet(Box<ParquetReader>),
}

impl Reader {
    fn skipped(&self) -> u64 {
        match self {
            Self::Text(_, decoder) => decoder.skipped(),
            Self::Parquet(_) => 0,
        }
    }

    /// How far the rows returned so far reach. The decoder is handed whole records and
    /// keeps none back, so the bytes consumed end exactly after the last row returned.
    fn at(&self) -> At {
        match self {
            Self::Text(text, decoder) => {
                At::Text { offset: text.buf_start, line: decoder.lines(), lines_from: text.uncounted }
            }
            Self::Parquet(reader) => At::Parquet { rows: reader.rows_read() },
        }
    }

    /// The next decoded batch of this file, or `None` at its end.
    async fn next(&mut self, shown: &str) -> Result<Option<RecordBatch>> {
        let Self::Text(text, decoder) = self else {
            let Self::Parquet(reader) = self else { return Ok(None) };
            return reader.next().await;
        };
        loop {
            // Keep at least a chunk buffered so batches are full-sized, not cut at chunk ends.
            if !text.eof && text.buf.len() < CHUNK {
                text.fill(shown).await?;
                continue;
            }
            let before = decoder.lines();
            let (batch, used) = match decoder.decode(&text.buf, text.eof) {
                Err(_) if text.uncounted.is_some() => {
                    // The error names a line counted from the range's start: count the
                    // lines before it now and decode again, for the line in the file.
                    let lines = text.count_uncounted(shown).await?;
                    decoder.set_lines(before + lines);
                    decoder.decode(&text.buf, text.eof)?
                }
                decoded => decoded?,
            };
            text.consume(used);
            if let Some(batch) = batch.filter(|b| b.num_rows() > 0) {
                return Ok(Some(batch));
            }
            if text.eof && (text.buf.is_empty() || used == 0) {
                return Ok(None);
            }
            if used == 0 {
                // A record longer than the buffer: read more before decoding again.
                text.fill(shown).await?;
            }
        }
    }
}

/// Bytes of a text file (or of a byte range of it) in chunks.
struct TextReader {
    /// `None` only while a read has it on the blocking pool (or after that read was
    /// abandoned, when the source is being dropped).
    file: Option<std::fs::File>,
    buf: Vec<u8>,
    eof: bool,
    /// File offset of `buf[0]`.
    buf_start: u64,
    /// End of the byte range: reading stops after the line holding byte `end - 1`.
    end: Option<u64>,
    /// The file, to count lines in.
    path: PathBuf,
    /// The offset of a byte range's first line, while the lines before it are uncounted
    /// (and the decoder counts lines from there). They are counted only when an error
    /// must name a line: counting them at the start had every subtask but the first
    /// read its share of a big file and all of the file before it.
    uncounted: Option<u64>,
}

impl TextReader {
    fn new(file: std::fs::File, path: PathBuf) -> Self {
        Self {
            file: Some(file),
            buf: Vec::with_capacity(CHUNK),
            eof: false,
            buf_start: 0,
            end: None,
            path,
            uncounted: None,
        }
    }

    /// Run `io` on the file and the buffer on tokio's blocking pool, so a slow disk does
    /// not block the runtime's threads. (`tokio::fs::File` does the same, but reads into a
    /// buffer of its own and copies from there: a tenth of the time of a JSON file's job.)
    async fn blocking<T: Send + 'static>(
        &mut self,
        shown: &str,
        io: impl FnOnce(&mut std::fs::File, &mut Vec<u8>) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T> {
        let Some(mut file) = self.file.take() else {
            return Err(ConnectorError::io(shown, std::io::Error::other("an earlier read of the file was abandoned")));
        };
        let mut buf = std::mem::take(&mut self.buf);
        let (file, buf, result) = tokio::task::spawn_blocking(move || {
            let result = io(&mut file, &mut buf);
            (file, buf, result)
        })
        .await
        .map_err(|e| ConnectorError::io(shown, std::io::Error::other(e)))?;
        self.file = Some(file);
        self.buf = buf;
        result.map_err(|e| ConnectorError::io(shown, e))
    }

    /// Read another chunk; at the range's end keep only through the line that crosses it.
    async fn fill(&mut self, shown: &str) -> Result<()> {
        self.eof = self.blocking(shown, append_chunk).await? == 0;
        self.clip();
        Ok(())
    }

    /// At the range's end keep only the bytes through the line that crosses it.
    fn clip(&mut self) {
        let Some(end) = self.end else { return };
        if self.buf_start >= end {
            // No line starts inside what is left of the range.
            self.buf.clear();
            self.eof = true;
            return;
        }
        if self.buf_start + self.buf.len() as u64 >= end {
            let from = (end - 1 - self.buf_start) as usize;
            if let Some(k) = memchr::memchr(b'\n', &self.buf[from..]) {
                self.buf.truncate(from + k + 1);
                self.eof = true;
            }
        }
    }

    fn consume(&mut self, used: usize) {
        self.buf.drain(..used);
        self.buf_start += used as u64;
    }

    /// Go on at byte `offset`, which starts a line (a position from a checkpoint).
    async fn seek_to(&mut self, offset: u64, shown: &str) -> Result<()> {
        self.blocking(shown, move |file, buf| {
            buf.clear();
            file.seek(std::io::SeekFrom::Start(offset))
        })
        .await?;
        self.buf_start = offset;
        Ok(())
    }

    /// Position at the first line starting at or after `start` (a byte range's first
    /// line); the lines before it are left uncounted (see `uncounted`).
    async fn seek_to_line(&mut self, start: u64, shown: &str) -> Result<()> {
        if start == 0 {
            return Ok(());
        }
        let (buf_start, eof) = self
            .blocking(shown, move |file, buf| {
                // The line starting at `start` begins after a newline at `start - 1` or later.
                let mut offset = start - 1;
                file.seek(std::io::SeekFrom::Start(offset))?;
                loop {
                    buf.clear();
                    let n = append_chunk(file, buf)?;
                    if n == 0 {
                        return Ok((offset, true));
                    }
                    if let Some(k) = memchr::memchr(b'\n', buf) {
                        buf.drain(..=k);
                        return Ok((offset + k as u64 + 1, false));
                    }
                    offset += n as u64;
                }
            })
            .await?;
        self.buf_start = buf_start;
        self.eof = eof;
        self.uncounted = Some(buf_start);
        Ok(())
    }

    /// The lines before the range's first line, counted now (see `uncounted`).
    async fn count_uncounted(&mut self, shown: &str) -> Result<u64> {
        let Some(before) = self.uncounted.take() else { return Ok(0) };
        let path = self.path.clone();
        let count = move || -> std::io::Result<u64> {
            // A handle of its own: the reader's keeps its place.
            let mut file = std::fs::File::open(path)?.take(before);
            let mut chunk = vec![0u8; 4 * CHUNK];
            let mut lines = 0u64;
            loop {
                let n = file.read(&mut chunk)?;
                if n == 0 {
                    return Ok(lines);
                }
                lines += memchr::memchr_iter(b'\n', &chunk[..n]).count() as u64;
            }
        };
        tokio::task::spawn_blocking(count)
            .await
            .map_err(|e| ConnectorError::io(shown, std::io::Error::other(e)))?
            .map_err(|e| ConnectorError::io(shown, e))
    }
}

/// Append up to [`CHUNK`] more bytes of `file` to `buf` (fewer only at the end of the
/// file); returns how many.
fn append_chunk(file: &mut std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(CHUNK);
    file.take(CHUNK as u64).read_to_end(buf)
}

/// The value of a partition or metadata column for a whole file.
enum Constant {
    Text(Option<String>),
    Array(ArrayRef),
}

/// One subtask of a filesystem source.
struct FileSource {
    opener: Opener,
    files: VecDeque<FilePart>,
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
    /// The parts of `physical` the job never reads (`ConnectorTable::unread`).
    physical_unread: Vec<(usize, Option<String>)>,
    columns: Vec<ColumnSource>,
}

impl Opener {
    async fn open(&self, part: &FilePart) -> Result<OpenFile> {
        let path = part.path.as_path();
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
            let skip = match part.at {
                Some(At::Parquet { rows }) => rows,
                _ => 0,
            };
            Reader::Parquet(Box::new(ParquetReader::open(file, self.physical.clone(), shown.clone(), skip).await?))
        } else {
            let (schema, unread) = (self.physical.clone(), &self.physical_unread);
            let mut decoder = self.format.decoder_reading(&self.table, &self.options, schema, shown.clone(), unread)?;
            let mut text = TextReader::new(file.into_std().await, part.path.clone());
            match part.at {
                Some(At::Text { offset, line, lines_from }) => {
                    text.seek_to(offset, &shown).await?;
                    decoder.set_lines(line);
                    text.uncounted = lines_from;
                }
                _ => {
                    if let Some((start, _)) = part.range {
                        text.seek_to_line(start, &shown).await?;
                    }
                }
            }
            if let Some((_, end)) = part.range {
                text.end = Some(end);
                text.clip();
            }
            Reader::Text(text, decoder)
        };
        Ok(OpenFile { part: part.clone(), reader, shown, constants })
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
                let Some(part) = self.files.pop_front() else { return Ok(None) };
                self.current = Some(self.opener.open(&part).await?);
                continue;
            };
            match current.reader.next(&current.shown).await? {
                Some(batch) => {
                    let o = &self.opener;
                    let batch = assemble(&o.table, &o.schema, &o.columns, batch, &current.constants)?;
                    return Ok(Some(SourceBatch::rows(batch)));
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

    fn position(&self) -> Option<serde_json::Value> {
        let current = self.current.as_ref().map(|c| FilePart { at: Some(c.reader.at()), ..c.part.clone() });
        let files = current.into_iter().chain(self.files.iter().cloned()).collect();
        // A path that is not UTF-8 cannot be written as JSON: the checkpoint is declined.
        serde_json::to_value(Position { files }).ok()
    }
}
