//! A result table on disk: the batches applied to it, in Arrow IPC stream files.
//!
//! `<dir>/gen-<n>.arrow` holds the table's rows when generation `n` began (as inserts), then
//! every batch applied since, each with an `_eddy_kind` column of [`RowKind`] codes and
//! `_eddy_writer` / `_eddy_epoch` columns saying who wrote it ([`BatchOrigin`]; logs written
//! before those columns existed are read as written by no checkpointing writer).
//! Replaying the newest generation rebuilds the table. A generation is written under a
//! temporary name and renamed once its starting rows are on disk, so the newest file
//! that exists is always complete up to its last whole batch: a torn tail (the process
//! died mid-write) ends the replay there. Older generations are deleted after the rename.
//! A new generation starts at every open and when the log outgrows the live rows
//! ([`TableLog::wants_rotation`]), so an upsert table updated in place keeps a small file.
//!
//! [`RowKind`]: eddy_connectors::RowKind
//! [`BatchOrigin`]: super::store::BatchOrigin

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int8Array, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Int8Type, Schema, SchemaRef, UInt64Type};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use super::store::BatchOrigin;
use super::ResultTableError;

const KIND_COLUMN: &str = "_eddy_kind";
const WRITER_COLUMN: &str = "_eddy_writer";
const EPOCH_COLUMN: &str = "_eddy_epoch";

/// A batch read back: its rows, their kinds, who wrote them.
pub(crate) type LoggedBatch = (RecordBatch, Int8Array, BatchOrigin);

/// The log being written.
pub(crate) struct TableLog {
    dir: PathBuf,
    /// This generation's file.
    path: PathBuf,
    generation: u64,
    log_schema: SchemaRef,
    writer: StreamWriter<BufWriter<File>>,
    /// Rows written to this generation.
    rows_written: usize,
}

/// The table schema plus the row-kind and origin columns.
fn log_schema(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(KIND_COLUMN, DataType::Int8, false));
    fields.push(Field::new(WRITER_COLUMN, DataType::UInt64, false));
    fields.push(Field::new(EPOCH_COLUMN, DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

/// Whether a log file's columns are the table's plus the log's own: `origin` says whether
/// it has the origin columns (logs written before them have only the row kind).
fn log_fits(found: &Schema, schema: &SchemaRef, origin: bool) -> bool {
    let mut expected: Vec<DataType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
    expected.push(DataType::Int8);
    if origin {
        expected.extend([DataType::UInt64, DataType::UInt64]);
    }
    found.fields().len() == expected.len() && found.fields().iter().zip(&expected).all(|(f, t)| f.data_type() == t)
}

fn generation_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("gen-")?.strip_suffix(".arrow")?.parse().ok()
}

fn io(context: &Path) -> impl Fn(std::io::Error) -> ResultTableError + '_ {
    move |e| ResultTableError::Io { context: context.display().to_string(), source: e }
}

/// The newest complete generation in `dir`: its number and its batches (rows, kinds).
/// A missing directory is an empty table.
pub(crate) fn replay(dir: &Path, schema: &SchemaRef) -> Result<(u64, Vec<LoggedBatch>), ResultTableError> {
    let newest = match fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok()).filter_map(|e| generation_of(&e.path())).max(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(dir)(e)),
    };
    let Some(generation) = newest else { return Ok((0, Vec::new())) };
    let path = dir.join(format!("gen-{generation}.arrow"));
    let file = File::open(&path).map_err(io(&path))?;
    let reader = StreamReader::try_new(BufReader::new(file), None)
        .map_err(|e| ResultTableError::Corrupt(format!("{}: {e}", path.display())))?;
    let expected = log_schema(schema);
    let with_origin = log_fits(&reader.schema(), schema, true);
    if !with_origin && !log_fits(&reader.schema(), schema, false) {
        return Err(ResultTableError::Corrupt(format!(
            "{} holds columns ({}) that do not match the table's ({}); drop the table or move the directory away",
            path.display(),
            describe(&reader.schema()),
            describe(&expected)
        )));
    }
    let mut out = Vec::new();
    for batch in reader {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                // The process stopped while writing: what came before is whole.
                tracing::warn!(path = %path.display(), error = %e, "result table log ends with a partial batch; ignoring it");
                break;
            }
        };
        let n = schema.fields().len();
        let kinds = batch.column(n).as_primitive::<Int8Type>().clone();
        // Every row of a logged batch has the same origin.
        let origin = match with_origin && batch.num_rows() > 0 {
            true => BatchOrigin {
                writer: batch.column(n + 1).as_primitive::<UInt64Type>().value(0),
                epoch: batch.column(n + 2).as_primitive::<UInt64Type>().value(0),
            },
            false => BatchOrigin::default(),
        };
        let rows = RecordBatch::try_new(schema.clone(), batch.columns()[..n].to_vec())
            .map_err(|e| ResultTableError::Corrupt(format!("{}: {e}", path.display())))?;
        out.push((rows, kinds, origin));
    }
    Ok((generation, out))
}

fn describe(schema: &Schema) -> String {
    schema.fields().iter().map(|f| format!("{} {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
}

impl TableLog {
    /// Start generation `generation` in `dir` holding `rows` (the live rows, as inserts,
    /// with who wrote them), and delete the older ones.
    pub(crate) fn start(
        dir: &Path,
        generation: u64,
        schema: &SchemaRef,
        rows: &[(RecordBatch, BatchOrigin)],
    ) -> Result<Self, ResultTableError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let log_schema = log_schema(schema);
        let path = dir.join(format!("gen-{generation}.arrow"));
        let tmp = dir.join(format!("gen-{generation}.arrow.tmp"));
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let mut writer = StreamWriter::try_new(BufWriter::new(file), &log_schema)
            .map_err(|e| ResultTableError::Arrow { context: tmp.display().to_string(), source: e })?;
        let mut rows_written = 0;
        for (b, origin) in rows {
            write_batch(&mut writer, &log_schema, b, &super::store::insert_kinds(b.num_rows()), *origin, &tmp)?;
            rows_written += b.num_rows();
        }
        writer.get_mut().flush().map_err(io(&tmp))?;
        writer.get_ref().get_ref().sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.filter_map(|e| e.ok()) {
                let p = e.path();
                let stale = generation_of(&p).is_some_and(|g| g < generation)
                    || p.extension().is_some_and(|x| x == "tmp") && p != tmp;
                if stale {
                    let _ = fs::remove_file(&p);
                }
            }
        }
        Ok(Self { dir: dir.to_path_buf(), path, generation, log_schema, writer, rows_written })
    }

    /// Append one applied batch; it is in the OS's hands when this returns.
    pub(crate) fn append(
        &mut self,
        batch: &RecordBatch,
        kinds: &Int8Array,
        origin: BatchOrigin,
    ) -> Result<(), ResultTableError> {
        write_batch(&mut self.writer, &self.log_schema, batch, kinds, origin, &self.path)?;
        self.writer.get_mut().flush().map_err(io(&self.path))?;
        self.rows_written += batch.num_rows();
        Ok(())
    }

    /// Hand what was appended to the OS and return the file, for the caller to make it
    /// durable (`sync_data`) without holding up writers meanwhile. A later rotation syncs
    /// the new generation itself.
    pub(crate) fn flushed_file(&mut self) -> Result<(File, PathBuf), ResultTableError> {
        self.writer.get_mut().flush().map_err(io(&self.path))?;
        let file = self.writer.get_ref().get_ref().try_clone().map_err(io(&self.path))?;
        Ok((file, self.path.clone()))
    }

    /// Whether the log holds far more rows than the table (updates and deletes of an
    /// upsert table, rows expired by retention): then a new generation is cheaper to replay.
    pub(crate) fn wants_rotation(&self, live_rows: usize) -> bool {
        self.rows_written > 100_000 && self.rows_written > live_rows.saturating_mul(4)
    }

    /// Start the next generation with `rows`.
    pub(crate) fn rotate(
        &mut self,
        schema: &SchemaRef,
        rows: &[(RecordBatch, BatchOrigin)],
    ) -> Result<(), ResultTableError> {
        let next = Self::start(&self.dir, self.generation + 1, schema, rows)?;
        *self = next;
        Ok(())
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

fn write_batch(
    writer: &mut StreamWriter<BufWriter<File>>,
    log_schema: &SchemaRef,
    batch: &RecordBatch,
    kinds: &Int8Array,
    origin: BatchOrigin,
    path: &Path,
) -> Result<(), ResultTableError> {
    let n = batch.num_rows();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(kinds.clone()));
    columns.push(Arc::new(UInt64Array::from(vec![origin.writer; n])));
    columns.push(Arc::new(UInt64Array::from(vec![origin.epoch; n])));
    let b = RecordBatch::try_new(log_schema.clone(), columns)
        .map_err(|e| ResultTableError::Arrow { context: path.display().to_string(), source: e })?;
    writer.write(&b).map_err(|e| ResultTableError::Arrow { context: path.display().to_string(), source: e })
}
