//! The `json` format: one JSON object per line, as Flink's `json` format.
//!
//! A chunk of lines (or a poll's Kafka records) is first decoded by [`DirectDecoder`], which
//! parses straight into the schema's columns (the fast path). What it is not sure of, it
//! leaves to arrow-json's tape decoder over the whole chunk at once; only when that fails
//! too does the decoder go line by line, to name the bad line
//! (`file.jsonl:3`) or, with `json.ignore-parse-errors`, skip and count it. As in Flink, with
//! that option a value of the wrong type becomes NULL rather than dropping its row.
//! `json.fail-on-missing-field` needs each line's keys, so only then are keys scanned
//! separately (with serde, values skipped unparsed).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::json::reader::Decoder as ArrowDecoder;
use arrow::json::writer::LineDelimited;
use arrow::json::{ReaderBuilder, WriterBuilder};
use arrow::record_batch::RecordBatch;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::json_direct::{DirectDecoder, GiveUp};
use super::record::{self, DecodedRecords, RecordDecoder};
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
        let timestamps = timestamp_standard(table, o, "json.timestamp-format.standard")?;
        o.bool_or(table, "json.encode.decimal-as-plain-number", false)?;
        Ok(Self {
            ignore_parse_errors,
            fail_on_missing_field,
            timestamps,
            ignore_null_fields: o.bool_or(table, "json.encode.ignore-null-fields", false)?,
        })
    }
}

/// `<format>.timestamp-format.standard` (`key`): `SQL` (the default) or `ISO-8601`.
pub(super) fn timestamp_standard(table: &str, o: &Options, key: &str) -> Result<TimestampStandard> {
    match o.get(key).map(str::to_ascii_uppercase).as_deref() {
        None | Some("SQL") => Ok(TimestampStandard::Sql),
        Some("ISO-8601") => Ok(TimestampStandard::Iso8601),
        Some(_) => Err(ConnectorError::options(table, format!("option '{key}' must be 'SQL' or 'ISO-8601'"))),
    }
}

/// Turns JSON objects into rows of a schema with arrow-json: the machinery shared by the
/// file decoder, the record decoder and `debezium-json`.
pub(super) struct JsonRows {
    schema: SchemaRef,
    /// A value of the wrong type becomes NULL (`<format>.ignore-parse-errors`, as Flink).
    ignore_type_conflicts: bool,
    /// The fast path, when the schema's types are ones it builds.
    direct: Option<DirectDecoder>,
    /// Batches in a row the fast path gave up on. After `n`, it is not tried for the next
    /// `2^n - 1` batches (at most [`MAX_DIRECT_SKIP`]), so input it never decodes (say,
    /// numbers written as strings) costs little more than arrow-json alone.
    direct_give_ups: AtomicU32,
    /// Batches left before the fast path is tried again.
    direct_skip: AtomicU32,
}

/// See [`JsonRows::direct_give_ups`].
const MAX_DIRECT_SKIP: u32 = 1023;

impl JsonRows {
    /// Rows of `schema`; fails when arrow-json cannot decode a column type.
    pub(super) fn new(schema: SchemaRef, ignore_type_conflicts: bool) -> Result<Self> {
        let direct = DirectDecoder::new(schema.clone());
        let (direct_give_ups, direct_skip) = (AtomicU32::new(0), AtomicU32::new(0));
        let rows = Self { schema, ignore_type_conflicts, direct, direct_give_ups, direct_skip };
        rows.arrow_decoder(1).map_err(|e| ConnectorError::arrow("format 'json'", e))?;
        Ok(rows)
    }

    /// `texts`, each one JSON object, decoded by the fast path; `None` when it is not
    /// used or gives up, and arrow-json is to decode them.
    fn decode_direct<'a>(&self, texts: impl ExactSizeIterator<Item = &'a [u8]>) -> Option<RecordBatch> {
        self.direct_or_not(|direct| direct.decode(texts))
    }

    /// As [`JsonRows::decode_direct`], the lines `start..end` of `chunk`.
    fn decode_direct_lines(
        &self,
        chunk: &[u8],
        lines: impl ExactSizeIterator<Item = (usize, usize)>,
    ) -> Option<RecordBatch> {
        self.direct_or_not(|direct| direct.decode_lines(chunk, lines))
    }

    fn direct_or_not(&self, decode: impl FnOnce(&DirectDecoder) -> Result<RecordBatch, GiveUp>) -> Option<RecordBatch> {
        let direct = self.direct.as_ref()?;
        let skip = self.direct_skip.load(Ordering::Relaxed);
        if skip > 0 {
            self.direct_skip.store(skip - 1, Ordering::Relaxed);
            return None;
        }
        match decode(direct) {
            Ok(batch) => {
                self.direct_give_ups.store(0, Ordering::Relaxed);
                Some(batch)
            }
            Err(_) => {
                let give_ups = self.direct_give_ups.fetch_add(1, Ordering::Relaxed) + 1;
                let skip = 1u32.checked_shl(give_ups).map_or(MAX_DIRECT_SKIP, |s| (s - 1).min(MAX_DIRECT_SKIP));
                self.direct_skip.store(skip, Ordering::Relaxed);
                None
            }
        }
    }

    fn arrow_decoder(&self, rows: usize) -> Result<ArrowDecoder, arrow::error::ArrowError> {
        ReaderBuilder::new(self.schema.clone())
            .with_batch_size(rows.max(1))
            // As Flink: a number or boolean read into a STRING column becomes its text.
            .with_coerce_primitive(true)
            .with_ignore_type_conflicts(self.ignore_type_conflicts)
            .build_decoder()
    }

    /// Decode `bytes` holding exactly `rows` JSON objects; any surprise is an error.
    pub(super) fn decode_exact(&self, bytes: &[u8], rows: usize) -> Result<RecordBatch, String> {
        let mut decoder = self.arrow_decoder(rows).map_err(|e| e.to_string())?;
        let mut used = 0;
        while used < bytes.len() {
            match decoder.decode(&bytes[used..]).map_err(|e| e.to_string())? {
                0 => break,
                n => used += n,
            }
        }
        if bytes[used..].iter().any(|b| !b.is_ascii_whitespace()) {
            return Err("more than one JSON value".into());
        }
        let batch = decoder.flush().map_err(|e| e.to_string())?;
        let batch = batch.unwrap_or_else(|| record::empty(&self.schema));
        if batch.num_rows() != rows {
            return Err(match rows {
                1 => "expected one JSON object".into(),
                _ => "a JSON object must be on one line".into(),
            });
        }
        Ok(batch)
    }

    /// Decode `texts`, each one JSON object (a Kafka record, or the `after` of a change
    /// event), in one arrow-json pass; when that fails, each alone to find the bad ones.
    /// Returns the rows of the good texts in order, and the bad texts (index, message)
    /// sorted by index. A blank text is bad. `scratch` is reused between calls.
    pub(super) fn decode_texts(
        &self,
        texts: &[&[u8]],
        scratch: &mut Vec<u8>,
    ) -> Result<(RecordBatch, Vec<(usize, String)>)> {
        // The arrow-json path makes line breaks spaces, also inside strings (see
        // `push_one_line`): texts with any are left to it, to decode to the same values.
        let one_line = texts.iter().all(|t| memchr::memchr2(b'\n', b'\r', t).is_none());
        if let Some(batch) = one_line.then(|| self.decode_direct(texts.iter().copied())).flatten() {
            return Ok((batch, Vec::new()));
        }
        let mut blank = Vec::new();
        scratch.clear();
        for (k, text) in texts.iter().enumerate() {
            if text.iter().all(u8::is_ascii_whitespace) {
                blank.push((k, "the record is empty".to_string()));
            } else {
                push_one_line(scratch, text);
            }
        }
        if let Ok(batch) = self.decode_exact(scratch, texts.len() - blank.len()) {
            return Ok((batch, blank));
        }
        let rest = texts.iter().enumerate().filter(|(_, t)| !t.iter().all(u8::is_ascii_whitespace));
        let (batch, mut bad) = self.decode_one_by_one(rest.map(|(k, t)| (k, *t)), scratch)?;
        bad.extend(blank);
        bad.sort_by_key(|(k, _)| *k);
        Ok((batch, bad))
    }

    /// The slow path: decode each `(index, text)` alone; returns the good rows (decoded
    /// again together) and the bad texts with `cannot parse JSON '...': why`.
    pub(super) fn decode_one_by_one<'a>(
        &self,
        texts: impl Iterator<Item = (usize, &'a [u8])>,
        scratch: &mut Vec<u8>,
    ) -> Result<(RecordBatch, Vec<(usize, String)>)> {
        let mut bad = Vec::new();
        let mut rows = 0;
        scratch.clear();
        for (k, text) in texts {
            match self.decode_exact(text, 1) {
                Ok(_) => {
                    push_one_line(scratch, text);
                    rows += 1;
                }
                Err(why) => bad.push((k, parse_error(text, &why))),
            }
        }
        let batch = self.decode_exact(scratch, rows).map_err(|m| ConnectorError::bad_record("format 'json'", m))?;
        Ok((batch, bad))
    }

    /// The first column that is not a top-level key of the object `text`
    /// (`json.fail-on-missing-field`); keys are read with serde, values skipped unparsed.
    pub(super) fn missing_field(&self, text: &[u8]) -> Result<Option<&str>, String> {
        let keys = serde_json::from_slice::<Keys>(text).map_err(|e| parse_error(text, &e))?;
        Ok(self.schema.fields().iter().find(|f| !keys.0.iter().any(|k| k == f.name())).map(|f| f.name().as_str()))
    }
}

/// Append `text` and a line break, with line breaks inside `text` made spaces: outside
/// strings they are whitespace, inside strings they are invalid JSON anyway.
fn push_one_line(out: &mut Vec<u8>, text: &[u8]) {
    let start = out.len();
    out.extend_from_slice(text);
    for b in &mut out[start..] {
        if matches!(*b, b'\n' | b'\r') {
            *b = b' ';
        }
    }
    out.push(b'\n');
}

/// `cannot parse JSON '<the first 200 characters>': <why>`.
pub(super) fn parse_error(text: &[u8], why: &dyn fmt::Display) -> String {
    format!("cannot parse JSON '{}': {why}", shown(text))
}

/// The first 200 characters of `bytes` for a message (`...` when there are more).
pub(super) fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut shown: String = text.chars().take(200).collect();
    if shown.len() < text.len() {
        shown.push_str("...");
    }
    shown
}

/// `could not find field with name 'x'` (`json.fail-on-missing-field`).
fn missing_message(name: &str) -> String {
    format!("could not find field with name '{name}' (json.fail-on-missing-field is true)")
}

/// Decodes newline-delimited JSON of one file.
pub(crate) struct JsonDecoder {
    rows: JsonRows,
    /// The schema to produce when `rows` decodes fewer parts of it (see `without`).
    full: Option<SchemaRef>,
    options: JsonOptions,
    /// The file, for error locations.
    file: String,
    /// Lines consumed so far.
    line: u64,
    skipped: u64,
    scratch: Vec<u8>,
}

impl JsonDecoder {
    /// A decoder for `file`, producing `schema`; fails when arrow-json cannot decode a column type.
    pub(crate) fn new(options: JsonOptions, schema: SchemaRef, file: String) -> Result<Self> {
        let rows = JsonRows::new(schema, options.ignore_parse_errors)?;
        Ok(Self { rows, full: None, options, file, line: 0, skipped: 0, scratch: Vec::new() })
    }

    /// Decode only what is read: the `unread` columns and ROW fields (nullable ones) are
    /// left out of decoding and come out NULL.
    pub(crate) fn without(mut self, unread: &[(usize, Option<String>)]) -> Result<Self> {
        let full = self.rows.schema.clone();
        let pruned = record::prune(&full, unread);
        if pruned != *full {
            self.rows = JsonRows::new(Arc::new(pruned), self.rows.ignore_type_conflicts)?;
            self.full = Some(full);
        }
        Ok(self)
    }

    /// The slow path: find the bad lines, fail on the first or skip them all.
    fn decode_by_line(&mut self, buf: &[u8], lines: &[Line]) -> Result<RecordBatch> {
        let texts = lines.iter().enumerate().map(|(k, line)| (k, &buf[line.start..line.end]));
        let (batch, bad) = self.rows.decode_one_by_one(texts, &mut self.scratch)?;
        if let Some((k, message)) = bad.first().filter(|_| !self.options.ignore_parse_errors) {
            return Err(self.bad_line(&lines[*k], message.clone()));
        }
        self.skipped += bad.len() as u64;
        Ok(batch)
    }

    fn bad_line(&self, line: &Line, message: String) -> ConnectorError {
        ConnectorError::bad_record(format!("{}:{}", self.file, line.number), message)
    }

    /// With `json.fail-on-missing-field`: every column must be a key of every line.
    fn check_fields(&self, buf: &[u8], lines: &[Line]) -> Result<()> {
        for line in lines {
            match self.rows.missing_field(&buf[line.start..line.end]) {
                Ok(None) => {}
                Ok(Some(name)) => return Err(self.bad_line(line, missing_message(name))),
                Err(message) => return Err(self.bad_line(line, message)),
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
            let end = match memchr::memchr(b'\n', &buf[pos..]) {
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
        // Up to the last line's end: the rest of `buf` may end inside a character.
        let chunk = &buf[..last.end];
        let direct = self.rows.decode_direct_lines(chunk, lines.iter().map(|line| (line.start, line.end)));
        let batch = match direct {
            Some(batch) => batch,
            None => match self.rows.decode_exact(&buf[first.start..last.end], lines.len()) {
                Ok(batch) => batch,
                Err(_) => self.decode_by_line(buf, &lines)?,
            },
        };
        if self.options.fail_on_missing_field {
            self.check_fields(buf, &lines)?;
        }
        let batch = match &self.full {
            Some(full) => record::widen(batch, full).map_err(|e| ConnectorError::arrow("format 'json'", e))?,
            None => batch,
        };
        Ok((Some(batch), pos))
    }

    fn set_lines(&mut self, lines: u64) {
        self.line = lines;
    }

    fn lines(&self) -> u64 {
        self.line
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// Decodes Kafka records, each one JSON object, as Flink's `json` format does.
///
/// A record that is not one JSON object (or, with `json.fail-on-missing-field`, lacks a
/// column) is a [`BadRecord`](super::record::BadRecord); with `json.ignore-parse-errors` it is skipped and counted
/// instead, and a value of the wrong type becomes NULL.
pub(crate) struct JsonRecordDecoder {
    rows: JsonRows,
    options: JsonOptions,
    skipped: u64,
    scratch: Vec<u8>,
}

impl JsonRecordDecoder {
    /// A decoder producing `schema`; fails when arrow-json cannot decode a column type.
    pub(crate) fn new(options: JsonOptions, schema: SchemaRef) -> Result<Self> {
        let rows = JsonRows::new(schema, options.ignore_parse_errors)?;
        Ok(Self { rows, options, skipped: 0, scratch: Vec::new() })
    }
}

impl RecordDecoder for JsonRecordDecoder {
    fn decode(&mut self, records: &[&[u8]]) -> Result<DecodedRecords> {
        let mut bad = Vec::new();
        let mut kept: Vec<usize> = Vec::with_capacity(records.len());
        if self.options.fail_on_missing_field {
            for (k, record) in records.iter().enumerate() {
                match self.rows.missing_field(record) {
                    Ok(None) => kept.push(k),
                    Ok(Some(name)) => bad.push((k, missing_message(name))),
                    Err(message) => bad.push((k, message)),
                }
            }
        } else {
            kept.extend(0..records.len());
        }
        let texts: Vec<&[u8]> = kept.iter().map(|&k| records[k]).collect();
        let (batch, bad_texts) = self.rows.decode_texts(&texts, &mut self.scratch)?;
        bad.extend(bad_texts.into_iter().map(|(t, message)| (kept[t], message)));
        bad.sort_by_key(|(k, _)| *k);
        let skip = self.options.ignore_parse_errors;
        if skip {
            self.skipped += bad.len() as u64;
        }
        let sources = record::good(records.len(), &bad);
        Ok(DecodedRecords::new(batch, sources, bad, records.len(), skip))
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

/// `batch` with its top-level TIMESTAMP columns as the text the writer would make of them
/// (`%Y-%m-%d<sep>%H:%M:%S%.f`, `Z` after an instant), formatted without chrono: its format
/// string parser took a third of a Kafka sink's time (benches/kafka.py). Values outside
/// years 0..=9999 and nested timestamps are left to the writer.
fn timestamps_as_text(batch: &RecordBatch, sep: u8) -> Result<RecordBatch> {
    use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    if !batch.schema().fields().iter().any(|f| matches!(f.data_type(), DataType::Timestamp(_, _))) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    'columns: for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let DataType::Timestamp(unit, tz) = field.data_type() else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        };
        let (per_sec, nanos_per) = match unit {
            TimeUnit::Second => (1, 1_000_000_000),
            TimeUnit::Millisecond => (1_000, 1_000_000),
            TimeUnit::Microsecond => (1_000_000, 1_000),
            TimeUnit::Nanosecond => (1_000_000_000, 1),
        };
        let values =
            column.as_primitive_opt::<arrow::datatypes::Int64Type>().map(|a| a.values().clone()).or_else(|| {
                arrow::compute::cast(column, &DataType::Int64)
                    .ok()
                    .map(|a| a.as_primitive::<arrow::datatypes::Int64Type>().values().clone())
            });
        let Some(values) = values else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        };
        let mut text = StringBuilder::with_capacity(column.len(), column.len() * 24);
        let mut buf = Vec::with_capacity(32);
        for (i, v) in values.iter().enumerate() {
            if column.is_null(i) {
                text.append_null();
                continue;
            }
            buf.clear();
            let (secs, frac) = (v.div_euclid(per_sec), v.rem_euclid(per_sec));
            if !crate::text::push_timestamp(&mut buf, secs, (frac * nanos_per) as u32, sep) {
                // A year the fast path does not write: the writer formats this column.
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
                continue 'columns;
            }
            if tz.is_some() {
                buf.push(b'Z');
            }
            // Digits and punctuation only.
            text.append_value(std::str::from_utf8(&buf).unwrap_or_default());
        }
        fields.push(Field::new(field.name(), DataType::Utf8, field.is_nullable()));
        columns.push(std::sync::Arc::new(text.finish()));
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
        .map_err(|e| ConnectorError::arrow("format 'json': writing", e))
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
        let batch = &timestamps_as_text(batch, sep.as_bytes()[0])?;
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
