//! Formats: how rows become bytes and back, as Flink's formats.
//!
//! Why a layer of its own: the filesystem connector and Kafka read and write the same
//! formats with the same `<format>.*` options. For files ([`Format::decoder`],
//! [`Format::encoder`]: `json`, `csv`, `parquet`), decoders turn a byte stream straight into
//! Arrow batches (no per-row `serde_json::Value`) and text encoders append one line per row
//! and report where each row ends, so a sink can roll files between rows. For records
//! framed by a broker ([`Format::record_decoder`], [`Format::record_encoder`], see
//! `record`): `json`, `csv`, `raw`, `debezium-json` (a changelog, read only), `avro` and
//! `avro-confluent` (with a Schema Registry client).
//!
//! | module | what |
//! |---|---|
//! | `json`, `csv` | the text formats: file decoders, record decoders, line encoders |
//! | `raw` | one STRING or BYTES column per record |
//! | `debezium` | Debezium change events (JSON) read as a changelog |
//! | `avro` | Avro datums, bare or in the Confluent framing, and the registry client |
//! | `record` | the record-level traits the Kafka connector uses |

pub(crate) mod avro;
pub(crate) mod csv;
pub(crate) mod debezium;
pub(crate) mod json;
mod json_direct;
#[cfg(test)]
mod json_direct_tests;
pub(crate) mod raw;
pub(crate) mod record;
#[cfg(test)]
mod record_tests;
#[cfg(test)]
mod tests;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use self::record::{LineRecords, RecordDecoder, RecordEncoder};
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
    /// A record's bytes as the one STRING or BYTES column (records only).
    Raw,
    /// Debezium change events in JSON, read as a changelog (records only, read only).
    DebeziumJson,
    /// Avro binary records (records only).
    Avro,
    /// Avro records with the Confluent Schema Registry framing (records only).
    AvroConfluent,
}

/// Every format, in the order error messages list them.
const ALL: &[Format] = &[
    Format::Json,
    Format::Csv,
    Format::Parquet,
    Format::Raw,
    Format::DebeziumJson,
    Format::Avro,
    Format::AvroConfluent,
];

impl Format {
    /// The format of a table (`format` is required).
    pub(crate) fn of(table: &str, options: &Options) -> Result<Self> {
        Self::named(table, options.required(table, "format")?)
    }

    /// The format called `name` (the value of `format`, `key.format` or `value.format`).
    pub(crate) fn named(table: &str, name: &str) -> Result<Self> {
        ALL.iter().copied().find(|f| f.name() == name).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|f| f.name()).collect();
            ConnectorError::options(table, format!("unknown format '{name}'; supported formats: {}", names.join(", ")))
        })
    }

    /// The format's name as written in `format`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
            Self::Raw => "raw",
            Self::DebeziumJson => "debezium-json",
            Self::Avro => "avro",
            Self::AvroConfluent => "avro-confluent",
        }
    }

    /// Whether the filesystem connector can read and write the format in Eddy.
    pub(crate) fn is_file_format(self) -> bool {
        matches!(self, Self::Json | Self::Csv | Self::Parquet)
    }

    /// `self` if it is a file format, else the error the filesystem connector gives.
    pub(crate) fn for_files(self, table: &str) -> Result<Self> {
        match self.is_file_format() {
            true => Ok(self),
            false => Err(self.not_for_files(table)),
        }
    }

    fn not_for_files(self, table: &str) -> ConnectorError {
        ConnectorError::options(
            table,
            format!(
                "format '{}' cannot be used with the filesystem connector in Eddy; use json, csv or parquet",
                self.name()
            ),
        )
    }

    /// Whether the format reads a changelog (`+I -U +U -D` rows) rather than inserts.
    pub(crate) fn is_changelog(self) -> bool {
        matches!(self, Self::DebeziumJson)
    }

    /// Option keys the format understands (with their `<format>.` prefix).
    pub(crate) fn known_options(self) -> &'static [&'static str] {
        match self {
            Self::Json => json::OPTIONS,
            Self::Csv => csv::OPTIONS,
            Self::Parquet => &["parquet.compression"],
            Self::Raw => raw::OPTIONS,
            Self::DebeziumJson => debezium::OPTIONS,
            Self::Avro => avro::AVRO_OPTIONS,
            Self::AvroConfluent => avro::CONFLUENT_OPTIONS,
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
            Self::Raw => raw::check(table, options, schema),
            Self::DebeziumJson => debezium::DebeziumOptions::parse(table, options).map(|_| ()),
            Self::Avro | Self::AvroConfluent => avro::validate(table, options, schema, self == Self::AvroConfluent),
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
        self.decoder_reading(table, options, schema, file, &[])
    }

    /// As `decoder`, told the parts of `schema` that are never read (see
    /// `ConnectorTable::unread`, here indexing `schema`): JSON leaves them NULL without
    /// decoding them, as Flink's JSON format does with a projected row type.
    pub(crate) fn decoder_reading(
        self,
        table: &str,
        options: &Options,
        schema: SchemaRef,
        file: String,
        unread: &[(usize, Option<String>)],
    ) -> Result<Box<dyn Decoder>> {
        match self {
            Self::Json => {
                let options = json::JsonOptions::parse(table, options)?;
                Ok(Box::new(json::JsonDecoder::new(options, schema, file)?.without(unread)?))
            }
            Self::Csv => Ok(Box::new(csv::CsvDecoder::new(csv::CsvOptions::parse(table, options)?, schema, file))),
            Self::Parquet => Err(ConnectorError::options(table, "format 'parquet' has no byte-stream decoder")),
            Self::Raw | Self::DebeziumJson | Self::Avro | Self::AvroConfluent => Err(self.not_for_files(table)),
        }
    }

    /// A line encoder for text formats; `None` for parquet (written by its own writer).
    pub(crate) fn encoder(self, table: &str, options: &Options) -> Result<Option<Box<dyn LineEncoder>>> {
        Ok(match self {
            Self::Json => Some(Box::new(json::JsonEncoder::new(json::JsonOptions::parse(table, options)?))),
            Self::Csv => Some(Box::new(csv::CsvEncoder::new(csv::CsvOptions::parse(table, options)?))),
            Self::Parquet => None,
            Self::Raw | Self::DebeziumJson | Self::Avro | Self::AvroConfluent => return Err(self.not_for_files(table)),
        })
    }

    /// A decoder of message-framed records (Kafka), each one serialized row of `schema`.
    /// `options` holds the format's own keys without any `key.`/`value.` prefix; `subject`
    /// is the Schema Registry subject of these records (`<topic>-value`), for avro-confluent.
    pub(crate) fn record_decoder(
        self,
        table: &str,
        options: &Options,
        schema: SchemaRef,
        subject: &str,
    ) -> Result<Box<dyn RecordDecoder>> {
        Ok(match self {
            Self::Json => Box::new(json::JsonRecordDecoder::new(json::JsonOptions::parse(table, options)?, schema)?),
            Self::Csv => {
                self.validate(table, options, &schema)?;
                Box::new(csv::CsvRecordDecoder::new(csv::CsvOptions::parse(table, options)?, schema))
            }
            Self::Raw => Box::new(raw::RawDecoder::new(table, options, schema)?),
            Self::DebeziumJson => {
                Box::new(debezium::DebeziumDecoder::new(debezium::DebeziumOptions::parse(table, options)?, schema)?)
            }
            Self::Parquet => return Err(self.not_for_records(table)),
            Self::Avro | Self::AvroConfluent => {
                return avro::decoder(table, options, schema, self == Self::AvroConfluent, subject)
            }
        })
    }

    /// An encoder of rows of `schema` as message-framed records (Kafka), one per row.
    /// `options` holds the format's own keys without any `key.`/`value.` prefix; `subject`
    /// is the Schema Registry subject to register the writer schema under (avro-confluent).
    pub(crate) fn record_encoder(
        self,
        table: &str,
        options: &Options,
        schema: SchemaRef,
        subject: &str,
    ) -> Result<Box<dyn RecordEncoder>> {
        self.validate(table, options, &schema)?;
        Ok(match self {
            Self::Json | Self::Csv => {
                let Some(lines) = self.encoder(table, options)? else { return Err(self.not_for_records(table)) };
                Box::new(LineRecords(lines))
            }
            Self::Raw => Box::new(raw::RawEncoder::new(table, options, &schema)?),
            Self::DebeziumJson => {
                return Err(ConnectorError::options(table, "format 'debezium-json' can only be used to read in Eddy"))
            }
            Self::Parquet => return Err(self.not_for_records(table)),
            Self::Avro | Self::AvroConfluent => {
                return avro::encoder(table, options, schema, self == Self::AvroConfluent, subject)
            }
        })
    }

    fn not_for_records(self, table: &str) -> ConnectorError {
        ConnectorError::options(
            table,
            format!(
                "format '{}' is a file format and cannot be used for records in Eddy; use json, csv, raw, \
                 debezium-json, avro or avro-confluent",
                self.name()
            ),
        )
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

    /// The input goes on after `lines` lines (of a file resumed from a checkpoint, or of
    /// one whose lines before a byte range were counted after an error), so errors name
    /// the right line.
    fn set_lines(&mut self, lines: u64);

    /// Lines consumed so far, counting those set by [`Decoder::set_lines`] (kept in a
    /// checkpoint position with the byte offset).
    fn lines(&self) -> u64;
}

/// Encodes batches as lines of text, one per row.
pub(crate) trait LineEncoder: Send + Sync {
    /// Append the rows of `batch` to `out`, and the offset in `out` just after each row to
    /// `row_ends` (so a file can be rolled between any two rows).
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>, row_ends: &mut Vec<usize>) -> Result<()>;
}
