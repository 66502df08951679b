//! Reading Parquet files for the filesystem source.
//!
//! Parquet is columnar and self-describing, so it does not fit the byte-stream
//! [`Decoder`](crate::format::Decoder) of the text formats: the file's footer says where
//! each column is. The table's columns are matched to the file's by name; only those are
//! read, a column missing from the file is NULL (as Flink's reader does), and a column stored
//! in another type is cast to the declared one.

use arrow::array::new_null_array;
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use futures::StreamExt;
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};

use crate::format::MAX_BATCH_ROWS;
use crate::{ConnectorError, Result};

/// An open Parquet file producing batches of the table's physical columns.
pub(super) struct ParquetReader {
    stream: ParquetRecordBatchStream<tokio::fs::File>,
    schema: SchemaRef,
    /// For each table column, its index in the batches the stream yields.
    columns: Vec<Option<usize>>,
    shown: String,
    /// Rows of the file passed over or returned so far (the checkpoint position).
    rows: u64,
}

impl ParquetReader {
    /// Open `file` (named `shown` in errors) for the columns of `schema`, passing over its
    /// first `skip` rows (a split resumed from a checkpoint).
    pub(super) async fn open(file: tokio::fs::File, schema: SchemaRef, shown: String, skip: u64) -> Result<Self> {
        let builder =
            ParquetRecordBatchStreamBuilder::new(file).await.map_err(|e| ConnectorError::parquet(&shown, e))?;
        let file_fields = builder.schema().fields().clone();
        let mut wanted: Vec<usize> =
            schema.fields().iter().filter_map(|f| file_fields.iter().position(|g| g.name() == f.name())).collect();
        wanted.sort_unstable();
        wanted.dedup();
        // Projected batches hold the chosen root columns in file order.
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                let in_file = file_fields.iter().position(|g| g.name() == f.name())?;
                wanted.iter().position(|&w| w == in_file)
            })
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
        // Row groups wholly before `skip` are not read at all; the rest of it is an offset
        // into the first group read.
        let mut before = 0u64;
        let mut groups = Vec::new();
        for (i, group) in builder.metadata().row_groups().iter().enumerate() {
            let rows = u64::try_from(group.num_rows()).unwrap_or(0);
            if groups.is_empty() && before + rows <= skip {
                before += rows;
            } else {
                groups.push(i);
            }
        }
        let offset = usize::try_from(skip.saturating_sub(before)).unwrap_or(usize::MAX);
        let mut builder = builder.with_projection(mask).with_batch_size(MAX_BATCH_ROWS);
        if skip > 0 {
            builder = builder.with_row_groups(groups).with_offset(offset);
        }
        let stream = builder.build().map_err(|e| ConnectorError::parquet(&shown, e))?;
        // A position past the end (the file shrank) reads nothing more.
        let rows = skip;
        Ok(Self { stream, schema, columns, shown, rows })
    }

    /// Rows of the file before the next batch.
    pub(super) fn rows_read(&self) -> u64 {
        self.rows
    }

    /// The next batch, or `None` at the end of the file.
    pub(super) async fn next(&mut self) -> Result<Option<RecordBatch>> {
        let Some(batch) = self.stream.next().await else { return Ok(None) };
        let batch = batch.map_err(|e| ConnectorError::parquet(&self.shown, e))?;
        let rows = batch.num_rows();
        self.rows += rows as u64;
        let arrays = self
            .columns
            .iter()
            .zip(self.schema.fields())
            .map(|(index, field)| match index {
                None => Ok(new_null_array(field.data_type(), rows)),
                Some(i) if batch.column(*i).data_type() == field.data_type() => Ok(batch.column(*i).clone()),
                Some(i) => cast(batch.column(*i), field.data_type())
                    .map_err(|e| ConnectorError::arrow(format!("{}: column '{}'", self.shown, field.name()), e)),
            })
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map(Some)
        .map_err(|e| ConnectorError::arrow(&self.shown, e))
    }
}
