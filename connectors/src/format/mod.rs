//! Formats: how rows become bytes and back (`json`, `csv`, `parquet`), as Flink's formats.
//!
//! Why a layer of its own: the filesystem connector today, and Kafka later, read and write
//! the same formats with the same `<format>.*` options. Decoders turn a byte stream straight
//! into Arrow batches (no per-row `serde_json::Value`); text encoders append one line per row
//! and report where each row ends, so a sink can roll files between rows.

pub(crate) mod csv;
pub(crate) mod json;
pub(crate) mod record;
#[cfg(test)]
mod tests;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::text::{self, Style};
use crate::{ConnectorError, Options, Result};

/// Most rows a decoder returns per call (the runtime's batch size).
pub(crate) const MAX_BATCH_ROWS: usize = 8192;

/// A format named by the `format` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Newline-delimited JSON objects.
    Json,
    /// Comma-separated values without a header line.
    Csv,
    /// Apache Parquet files.
    Parquet,
}

impl Format {
    /// The format of a table (`format` is required).
    pub(crate) fn of(table: &str, options: &Options) -> Result<Self> {
        match options.required(table, "format")? {
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            "parquet" => Ok(Self::Parquet),
            other => Err(ConnectorError::options(
                table,
                format!("unknown format '{other}'; supported formats: json, csv, parquet"),
            )),
        }
    }

    /// The format's name as written in `format`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }

    /// Option keys the format understands (with their `<format>.` prefix).
    pub(crate) fn known_options(self) -> &'static [&'static str] {
        match self {
            Self::Json => json::OPTIONS,
            Self::Csv => csv::OPTIONS,
            Self::Parquet => &["parquet.compression"],
        }
    }

    /// Whether `key` is one of this format's options.
    pub(crate) fn knows(self, key: &str) -> bool {
        self.known_options().contains(&key)
    }

    /// Check the format's options and that it can carry the columns in `schema`.
    pub(crate) fn validate(self, table: &str, options: &Options, schema: &SchemaRef) -> Result<()> {
        match self {
            Self::Json => json::JsonOptions::parse(table, options).map(|_| ()),
            Self::Csv => {
                csv::CsvOptions::parse(table, options)?;
                for field in schema.fields() {
                    if !text::supports(field.data_type(), Style::Sql) {
                        return Err(ConnectorError::options(
                            table,
                            format!(
                                "format 'csv' does not support column '{}' of type {} in Eddy; \
                                 use 'json' or 'parquet' for nested types",
                                field.name(),
                                field.data_type()
                            ),
                        ));
                    }
                }
                Ok(())
            }
            Self::Parquet => Ok(()),
        }
    }

    /// A decoder for one file (`file` names it in errors). Parquet has none: it is not a
    /// byte stream (the filesystem source reads it with the parquet reader).
    pub(crate) fn decoder(
        self,
        table: &str,
        options: &Options,
        schema: SchemaRef,
        file: String,
    ) -> Result<Box<dyn Decoder>> {
        match self {
            Self::Json => {
                Ok(Box::new(json::JsonDecoder::new(json::JsonOptions::parse(table, options)?, schema, file)?))
            }
            Self::Csv => Ok(Box::new(csv::CsvDecoder::new(csv::CsvOptions::parse(table, options)?, schema, file))),
            Self::Parquet => Err(ConnectorError::options(table, "format 'parquet' has no byte-stream decoder")),
        }
    }

    /// A line encoder for text formats; `None` for parquet (written by its own writer).
    pub(crate) fn encoder(self, table: &str, options: &Options) -> Result<Option<Box<dyn LineEncoder>>> {
        Ok(match self {
            Self::Json => Some(Box::new(json::JsonEncoder::new(json::JsonOptions::parse(table, options)?))),
            Self::Csv => Some(Box::new(csv::CsvEncoder::new(csv::CsvOptions::parse(table, options)?))),
            Self::Parquet => None,
        })
    }
}

/// Decodes the bytes of one file, in order, into batches of the table's physical columns.
pub(crate) trait Decoder: Send + Sync {
    /// Decode complete records from the start of `buf`, at most [`MAX_BATCH_ROWS`].
    /// `eof` says no bytes follow `buf`, so a last record without a newline is complete.
    /// Returns the rows (`None` when no complete record was found) and the bytes used;
    /// the caller drops those bytes and calls again with the rest plus more input.
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<(Option<RecordBatch>, usize)>;

    /// Records skipped as malformed (with `<format>.ignore-parse-errors`).
    fn skipped(&self) -> u64;

    /// The input starts after `lines` lines of the file (a byte-range split), so errors
    /// name the right line. Only formats that can be split need it.
    fn skip_lines(&mut self, _lines: u64) {}
}

/// Encodes batches as lines of text, one per row.
pub(crate) trait LineEncoder: Send + Sync {
    /// Append the rows of `batch` to `out`, and the offset in `out` just after each row to
    /// `row_ends` (so a file can be rolled between any two rows).
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>, row_ends: &mut Vec<usize>) -> Result<()>;
}
