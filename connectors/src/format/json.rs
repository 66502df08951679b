//! The `json` format: one JSON object per line, as Flink's `json` format.
//!
//! Decoding is arrow-json's tape decoder over a whole chunk of lines at once (the fast path).
//! Only when that fails does the decoder go line by line, to name the bad line
//! (`file.jsonl:3`) or, with `json.ignore-parse-errors`, skip and count it. As in Flink, with
//! that option a value of the wrong type becomes NULL rather than dropping its row.
//! `json.fail-on-missing-field` needs each line's keys, so only then are keys scanned
//! separately (with serde, values skipped unparsed).

use std::fmt;

use arrow::datatypes::SchemaRef;
use arrow::json::reader::Decoder as ArrowDecoder;
use arrow::json::writer::LineDelimited;
use arrow::json::{ReaderBuilder, WriterBuilder};
use arrow::record_batch::RecordBatch;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{Decoder, LineEncoder, MAX_BATCH_ROWS};
use crate::{ConnectorError, Options, Result};

/// Options of the json format.
pub(crate) const OPTIONS: &[&str] = &[
    "json.ignore-parse-errors",
    "json.fail-on-missing-field",
    "json.timestamp-format.standard",
    "json.encode.ignore-null-fields",
    "json.encode.decimal-as-plain-number",
];

/// How TIMESTAMP values are written (`json.timestamp-format.standard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimestampStandard {
    /// `yyyy-MM-dd HH:mm:ss.SSS` (Flink's default).
    Sql,
    /// `yyyy-MM-ddTHH:mm:ss.SSS`.
    Iso8601,
}

/// The checked `json.*` options.
#[derive(Debug, Clone)]
pub(crate) struct JsonOptions {
    ignore_parse_errors: bool,
    fail_on_missing_field: bool,
    timestamps: TimestampStandard,
    ignore_null_fields: bool,
}

impl JsonOptions {
    /// Read and check the options.
    pub(crate) fn parse(table: &str, o: &Options) -> Result<Self> {
        let ignore_parse_errors = o.bool_or(table, "json.ignore-parse-errors", false)?;
        let fail_on_missing_field = o.bool_or(table, "json.fail-on-missing-field", false)?;
        if ignore_parse_errors && fail_on_missing_field {
            return Err(ConnectorError::options(
                table,
                "'json.fail-on-missing-field' and 'json.ignore-parse-errors' cannot both be true",
            ));
        }
        let timestamps = match o.get("json.timestamp-format.standard").map(str::to_ascii_uppercase).as_deref() {
            None | Some("SQL") => TimestampStandard::Sql,
            Some("ISO-8601") => TimestampStandard::Iso8601,
            Some(_) => {
                return Err(ConnectorError::options(
                    table,
                    "option 'json.timestamp-format.standard' must be 'SQL' or 'ISO-8601'",
                ))
            }
        };
        o.bool_or(table, "json.encode.decimal-as-plain-number", false)?;
        Ok(Self {
            ignore_parse_errors,
            fail_on_missing_field,
            timestamps,
            ignore_null_fields: o.bool_or(table, "json.encode.ignore-null-fields", false)?,
        })
    }
}

/// Decodes newline-delimited JSON of one file.
pub(crate) struct JsonDecoder {
    options: JsonOptions,
    schema: SchemaRef,
    /// The file, for error locations.
    file: String,
    /// Lines consumed so far.
    line: u64,
    skipped: u64,
}

impl JsonDecoder {
    /// A decoder for `file`, producing `schema`; fails when arrow-json cannot decode a column type.
    pub(crate) fn new(options: JsonOptions, schema: SchemaRef, file: String) -> Result<Self> {
        let decoder = Self { options, schema, file, line: 0, skipped: 0 };
        decoder.arrow_decoder(1).map_err(|e| ConnectorError::arrow("format 'json'", e))?;
        Ok(decoder)
    }

    fn arrow_decoder(&self, rows: usize) -> Result<ArrowDecoder, arrow::error::ArrowError> {
        ReaderBuilder::new(self.schema.clone())
            .with_batch_size(rows.max(1))
            // As Flink: a number or boolean read into a STRING column becomes its text.
            .with_coerce_primitive(true)
            .with_ignore_type_conflicts(self.options.ignore_parse_errors)
            .build_decoder()
    }

    /// Decode `bytes` holding exactly `rows` JSON objects; any surprise is an error.
    fn decode_exact(&self, bytes: &[u8], rows: usize) -> Result<RecordBatch, String> {
        let mut decoder = self.arrow_decoder(rows).map_err(|e| e.to_string())?;
        let mut used = 0;
        while used < bytes.len() {
            match decoder.decode(&bytes[used..]).map_err(|e| e.to_string())? {
                0 => break,
                n => used += n,
            }
        }
        if bytes[used..].iter().any(|b| !b.is_ascii_whitespace()) {
            return Err("more than one JSON value on the line".into());
        }
        let batch = decoder.flush().map_err(|e| e.to_string())?;
        let batch = batch.unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone()));
        if batch.num_rows() != rows {
            return Err("a JSON object must be on one line".into());
        }
        Ok(batch)
    }

    /// The slow path: find the bad lines, fail on the first or skip them all.
    fn decode_by_line(&mut self, buf: &[u8], lines: &[Line]) -> Result<RecordBatch> {
        let mut good = Vec::with_capacity(buf.len());
        let mut rows = 0;
        for line in lines {
            let bytes = &buf[line.start..line.end];
            match self.decode_exact(bytes, 1) {
                Ok(_) => {
                    good.extend_from_slice(bytes);
                    good.push(b'\n');
                    rows += 1;
                }
                Err(_) if self.options.ignore_parse_errors => self.skipped += 1,
                Err(message) => return Err(self.bad_line(line, bytes, &message)),
            }
        }
        self.decode_exact(&good, rows).map_err(|m| ConnectorError::bad_record(&self.file, m))
    }

    fn bad_line(&self, line: &Line, bytes: &[u8], message: &dyn fmt::Display) -> ConnectorError {
        let text = String::from_utf8_lossy(bytes);
        let shown: String = text.chars().take(200).collect();
        let more = if shown.len() < text.len() { "..." } else { "" };
        ConnectorError::bad_record(
            format!("{}:{}", self.file, line.number),
            format!("cannot parse JSON '{shown}{more}': {message}"),
        )
    }

    /// With `json.fail-on-missing-field`: every column must be a key of every line.
    fn check_fields(&self, buf: &[u8], lines: &[Line]) -> Result<()> {
        for line in lines {
            let bytes = &buf[line.start..line.end];
            let keys = serde_json::from_slice::<Keys>(bytes).map_err(|e| self.bad_line(line, bytes, &e))?;
            if let Some(missing) = self.schema.fields().iter().find(|f| !keys.0.iter().any(|k| k == f.name())) {
                return Err(ConnectorError::bad_record(
                    format!("{}:{}", self.file, line.number),
                    format!("could not find field with name '{}' (json.fail-on-missing-field is true)", missing.name()),
                ));
            }
        }
        Ok(())
    }
}

/// A non-blank line of the current chunk.
struct Line {
    number: u64,
    start: usize,
    end: usize,
}

impl Decoder for JsonDecoder {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<(Option<RecordBatch>, usize)> {
        let mut lines = Vec::new();
        let mut pos = 0;
        while lines.len() < MAX_BATCH_ROWS && pos < buf.len() {
            let end = match buf[pos..].iter().position(|&b| b == b'\n') {
                Some(k) => pos + k,
                None if eof => buf.len(),
                None => break,
            };
            self.line += 1;
            let mut content = end;
            while content > pos && buf[content - 1].is_ascii_whitespace() {
                content -= 1;
            }
            if buf[pos..content].iter().any(|b| !b.is_ascii_whitespace()) {
                lines.push(Line { number: self.line, start: pos, end: content });
            }
            pos = (end + 1).min(buf.len());
        }
        let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
            return Ok((None, pos));
        };
        let batch = match self.decode_exact(&buf[first.start..last.end], lines.len()) {
            Ok(batch) => batch,
            Err(_) => self.decode_by_line(buf, &lines)?,
        };
        if self.options.fail_on_missing_field {
            self.check_fields(buf, &lines)?;
        }
        Ok((Some(batch), pos))
    }

    fn skip_lines(&mut self, lines: u64) {
        self.line += lines;
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// The top-level keys of a JSON object (values skipped without building them).
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(Keys(keys))
            }
        }
        deserializer.deserialize_map(KeysVisitor)
    }
}

/// Writes one JSON object per line: `{"id":1,"ts":"2024-03-01 10:00:00.123"}`.
pub(crate) struct JsonEncoder {
    options: JsonOptions,
}

impl JsonEncoder {
    /// An encoder with these options.
    pub(crate) fn new(options: JsonOptions) -> Self {
        Self { options }
    }
}

impl LineEncoder for JsonEncoder {
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>, row_ends: &mut Vec<usize>) -> Result<()> {
        let sep = match self.options.timestamps {
            TimestampStandard::Sql => " ",
            TimestampStandard::Iso8601 => "T",
        };
        let start = out.len();
        let mut writer = WriterBuilder::new()
            .with_explicit_nulls(!self.options.ignore_null_fields)
            .with_timestamp_format(format!("%Y-%m-%d{sep}%H:%M:%S%.f"))
            .with_timestamp_tz_format(format!("%Y-%m-%d{sep}%H:%M:%S%.fZ"))
            .with_date_format("%Y-%m-%d".to_string())
            .with_time_format("%H:%M:%S%.f".to_string())
            .build::<_, LineDelimited>(&mut *out);
        writer.write(batch).map_err(|e| ConnectorError::arrow("format 'json': writing", e))?;
        writer.finish().map_err(|e| ConnectorError::arrow("format 'json': writing", e))?;
        // Strings escape their newlines, so every '\n' ends a row.
        row_ends.extend(out[start..].iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| start + i + 1));
        Ok(())
    }
}
