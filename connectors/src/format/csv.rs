//! The `csv` format, as Flink's: no header line, `csv.*` options for delimiter, quoting,
//! escaping, comments, a null literal and skipping bad rows.
//!
//! Decoding splits records with `csv-core` (quoted fields may span lines), gathers each
//! column's fields as strings, and converts whole columns with Arrow's cast kernels. A value
//! that does not convert is found by comparing nulls before and after the cast, so the error
//! can name its `file:line` and column — or, with `csv.ignore-parse-errors`, the row is
//! dropped and counted. As in Flink, an empty field of a non-string column is NULL, and a row
//! with too few fields is an error unless parse errors are ignored (then it is NULL-padded).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, StringArray, StringBuilder};
use arrow::compute::{cast_with_options, filter_record_batch, CastOptions};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use csv_core::{ReadRecordResult, ReaderBuilder};

use super::record::{DecodedRecords, RecordDecoder};
use super::{Decoder, LineEncoder, MAX_BATCH_ROWS};
use crate::text::{self, Style};
use crate::{ConnectorError, Options, Result};

/// Options of the csv format.
pub(crate) const OPTIONS: &[&str] = &[
    "csv.field-delimiter",
    "csv.quote-character",
    "csv.disable-quote-character",
    "csv.allow-comments",
    "csv.ignore-parse-errors",
    "csv.null-literal",
    "csv.escape-character",
];

/// The checked `csv.*` options.
#[derive(Debug, Clone)]
pub(crate) struct CsvOptions {
    delimiter: u8,
    /// `None` with `csv.disable-quote-character`.
    quote: Option<u8>,
    escape: Option<u8>,
    allow_comments: bool,
    ignore_parse_errors: bool,
    null_literal: Option<String>,
}

/// One ASCII character option; `\t`-style escapes are accepted as Flink documents.
fn single_char(table: &str, o: &Options, key: &str, default: Option<u8>) -> Result<Option<u8>> {
    let Some(v) = o.get(key) else { return Ok(default) };
    let c = match v {
        "\\t" => b'\t',
        "\\n" => b'\n',
        "\\r" => b'\r',
        "\\\\" => b'\\',
        s if s.len() == 1 && s.is_ascii() => s.as_bytes()[0],
        _ => {
            return Err(ConnectorError::options(
                table,
                format!("option '{key}' = '{v}' must be a single ASCII character"),
            ))
        }
    };
    Ok(Some(c))
}

impl CsvOptions {
    /// Read and check the options.
    pub(crate) fn parse(table: &str, o: &Options) -> Result<Self> {
        let delimiter = single_char(table, o, "csv.field-delimiter", Some(b','))?.unwrap_or(b',');
        let disable_quote = o.bool_or(table, "csv.disable-quote-character", false)?;
        if disable_quote && o.get("csv.quote-character").is_some() {
            return Err(ConnectorError::options(
                table,
                "'csv.quote-character' cannot be set when 'csv.disable-quote-character' is true",
            ));
        }
        let quote = if disable_quote { None } else { single_char(table, o, "csv.quote-character", Some(b'"'))? };
        if quote == Some(delimiter) {
            return Err(ConnectorError::options(table, "'csv.quote-character' must differ from 'csv.field-delimiter'"));
        }
        Ok(Self {
            delimiter,
            quote,
            escape: single_char(table, o, "csv.escape-character", None)?,
            allow_comments: o.bool_or(table, "csv.allow-comments", false)?,
            ignore_parse_errors: o.bool_or(table, "csv.ignore-parse-errors", false)?,
            null_literal: o.get("csv.null-literal").map(str::to_string),
        })
    }

    fn reader(&self) -> csv_core::Reader {
        let mut b = ReaderBuilder::new();
        b.delimiter(self.delimiter)
            .quoting(self.quote.is_some())
            .quote(self.quote.unwrap_or(b'"'))
            .escape(self.escape)
            .comment(self.allow_comments.then_some(b'#'));
        b.build()
    }
}

/// CSV fields into rows of a schema: the machinery shared by the file and record decoders.
struct CsvRows {
    options: CsvOptions,
    schema: SchemaRef,
}

/// Fields of the records gathered so far, one string column per table column.
struct Gathered {
    columns: Vec<StringBuilder>,
    rows: usize,
}

impl CsvRows {
    fn gathered(&self) -> Gathered {
        let width = self.schema.fields().len();
        Gathered { columns: (0..width).map(|_| StringBuilder::with_capacity(1024, 16 * 1024)).collect(), rows: 0 }
    }

    /// Add one record's fields (`out[..ends[k]]`), or say why it cannot be a row. As in
    /// Flink, with `csv.ignore-parse-errors` a short row is padded with NULLs instead.
    fn gather(&self, g: &mut Gathered, out: &[u8], ends: &[usize]) -> Result<(), String> {
        let fields = self.schema.fields();
        if ends.len() < fields.len() && !self.options.ignore_parse_errors {
            return Err(format!("row length mismatch: {} fields expected but was {}", fields.len(), ends.len()));
        }
        let mut start = 0;
        let mut values = Vec::with_capacity(fields.len());
        for (k, field) in fields.iter().enumerate() {
            let Some(&end) = ends.get(k) else {
                values.push(None);
                continue;
            };
            let raw = &out[start..end];
            start = end;
            let Ok(s) = std::str::from_utf8(raw) else {
                return Err(format!("column '{}' is not valid UTF-8", field.name()));
            };
            let value = if self.options.null_literal.as_deref() == Some(s) {
                None
            } else if field.data_type() == &DataType::Utf8 {
                Some(s)
            } else {
                Some(s.trim()).filter(|t| !t.is_empty())
            };
            values.push(value);
        }
        for (column, value) in g.columns.iter_mut().zip(values) {
            column.append_option(value);
        }
        g.rows += 1;
        Ok(())
    }

    /// Convert the gathered strings to the table's types: a batch of every row, and the
    /// rows holding a value that does not convert (the first such value's message), sorted.
    fn convert(&self, mut g: Gathered) -> Result<(RecordBatch, Vec<(usize, String)>)> {
        let rows = g.rows;
        let mut arrays = Vec::with_capacity(g.columns.len());
        let safe = CastOptions { safe: true, ..Default::default() };
        let mut errors: Vec<Option<String>> = Vec::new();
        for (field, builder) in self.schema.fields().iter().zip(g.columns.iter_mut()) {
            let strings: ArrayRef = Arc::new(builder.finish());
            if field.data_type() == &DataType::Utf8 {
                arrays.push(strings);
                continue;
            }
            let converted = cast_with_options(&strings, field.data_type(), &safe)
                .map_err(|e| ConnectorError::arrow(format!("format 'csv': column '{}'", field.name()), e))?;
            if converted.null_count() != strings.null_count() {
                errors.resize(rows, None);
                for row in (0..rows).filter(|&r| converted.is_null(r) && strings.is_valid(r)) {
                    if errors[row].is_none() {
                        let text = strings.as_any().downcast_ref::<StringArray>().map(|s| s.value(row));
                        errors[row] = Some(format!(
                            "cannot parse '{}' as {} for column '{}'",
                            text.unwrap_or_default(),
                            field.data_type(),
                            field.name()
                        ));
                    }
                }
            }
            arrays.push(converted);
        }
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| ConnectorError::arrow("format 'csv': building batch", e))?;
        let bad = errors.into_iter().enumerate().filter_map(|(row, e)| e.map(|e| (row, e))).collect();
        Ok((batch, bad))
    }
}

/// `batch` without the rows `bad` (sorted).
fn drop_rows(batch: RecordBatch, bad: &[(usize, String)]) -> Result<RecordBatch> {
    if bad.is_empty() {
        return Ok(batch);
    }
    let mut keep = vec![true; batch.num_rows()];
    for (row, _) in bad {
        keep[*row] = false;
    }
    filter_record_batch(&batch, &BooleanArray::from(keep)).map_err(|e| ConnectorError::arrow("format 'csv'", e))
}

/// Decodes CSV records of one file.
pub(crate) struct CsvDecoder {
    rows: CsvRows,
    file: String,
    /// Lines consumed so far.
    line: u64,
    skipped: u64,
}

impl CsvDecoder {
    /// A decoder for `file`, producing `schema`.
    pub(crate) fn new(options: CsvOptions, schema: SchemaRef, file: String) -> Self {
        Self { rows: CsvRows { options, schema }, file, line: 0, skipped: 0 }
    }

    fn error(&self, line: u64, message: String) -> ConnectorError {
        ConnectorError::bad_record(format!("{}:{line}", self.file), message)
    }

    /// Convert the gathered rows (`lines` says where each ends); report the first bad one,
    /// or drop them all with `csv.ignore-parse-errors`.
    fn convert(&mut self, g: Gathered, lines: &[u64]) -> Result<RecordBatch> {
        let (batch, bad) = self.rows.convert(g)?;
        if let Some((row, message)) = bad.first().filter(|_| !self.rows.options.ignore_parse_errors) {
            return Err(self.error(lines[*row], message.clone()));
        }
        self.skipped += bad.len() as u64;
        drop_rows(batch, &bad)
    }
}

impl Decoder for CsvDecoder {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<(Option<RecordBatch>, usize)> {
        let mut reader = self.rows.options.reader();
        let width = self.rows.schema.fields().len();
        let mut g = self.rows.gathered();
        // Line of each gathered record (where it ends), for messages.
        let mut lines = Vec::new();
        let mut out = vec![0u8; 4096];
        let mut ends = vec![0usize; width + 8];
        let mut pos = 0;
        let mut records = 0;
        while records < MAX_BATCH_ROWS {
            let record_start = pos;
            let (mut nout, mut nends) = (0, 0);
            let complete = loop {
                let (result, nin, o, e) = reader.read_record(&buf[pos..], &mut out[nout..], &mut ends[nends..]);
                pos += nin;
                nout += o;
                nends += e;
                match result {
                    ReadRecordResult::InputEmpty if !eof => break false,
                    ReadRecordResult::InputEmpty => {}
                    ReadRecordResult::OutputFull => out.resize(out.len() * 2, 0),
                    ReadRecordResult::OutputEndsFull => ends.resize(ends.len() * 2, 0),
                    ReadRecordResult::Record => break true,
                    ReadRecordResult::End => break false,
                }
            };
            if !complete {
                // An unfinished record is re-read with more input on the next call.
                pos = record_start;
                break;
            }
            let newlines = buf[record_start..pos].iter().filter(|&&b| b == b'\n').count() as u64;
            let trailing = u64::from(pos > record_start && buf[pos - 1] == b'\n');
            let line = self.line + newlines + 1 - trailing;
            self.line += newlines;
            records += 1;
            match self.rows.gather(&mut g, &out[..nout], &ends[..nends]) {
                Ok(()) => lines.push(line),
                Err(_) if self.rows.options.ignore_parse_errors => self.skipped += 1,
                Err(message) => {
                    // Report a bad value on an earlier line first.
                    if g.rows > 0 {
                        self.convert(g, &lines)?;
                    }
                    return Err(self.error(line, message));
                }
            }
        }
        if eof && pos == buf.len() {
            // Count a last line without a newline, so later messages stay right.
            self.line += u64::from(!buf.is_empty() && buf[buf.len() - 1] != b'\n');
        }
        if g.rows == 0 {
            return Ok((None, pos));
        }
        Ok((Some(self.convert(g, &lines)?), pos))
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }

    fn set_lines(&mut self, lines: u64) {
        self.line = lines;
    }

    fn lines(&self) -> u64 {
        self.line
    }
}

/// Decodes Kafka records, each one CSV row (a quoted field may hold line breaks; no
/// header), as Flink's `csv` format does.
///
/// A record with too few fields or a value that does not convert is a
/// [`BadRecord`](super::record::BadRecord) (with `csv.ignore-parse-errors`: padded with
/// NULLs, or skipped and counted). A record that is only a comment (`csv.allow-comments`)
/// gives no row.
pub(crate) struct CsvRecordDecoder {
    rows: CsvRows,
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    skipped: u64,
}

impl CsvRecordDecoder {
    /// A decoder producing `schema`.
    pub(crate) fn new(options: CsvOptions, schema: SchemaRef) -> Self {
        let width = schema.fields().len();
        let reader = options.reader();
        Self { rows: CsvRows { options, schema }, reader, out: vec![0; 1024], ends: vec![0; width + 8], skipped: 0 }
    }

    /// Split `record` into fields (into `self.out` / `self.ends`), returning the bytes and
    /// field ends used; `None` when it holds no row (a comment).
    fn read(&mut self, record: &[u8]) -> Result<Option<(usize, usize)>, String> {
        if record.iter().all(|b| matches!(b, b'\n' | b'\r')) {
            // An empty line is one empty field.
            self.ends[0] = 0;
            return Ok(Some((0, 1)));
        }
        if self.rows.options.allow_comments && record.first() == Some(&b'#') {
            return Ok(None);
        }
        self.reader.reset();
        let (mut pos, mut nout, mut nends) = (0, 0, 0);
        loop {
            let (result, nin, o, e) =
                self.reader.read_record(&record[pos..], &mut self.out[nout..], &mut self.ends[nends..]);
            pos += nin;
            nout += o;
            nends += e;
            match result {
                // The next call, with no input left, ends the record.
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => self.out.resize(self.out.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record => break,
                ReadRecordResult::End => return Ok(None),
            }
        }
        if record[pos..].iter().any(|b| !matches!(b, b'\n' | b'\r')) {
            return Err("more than one CSV row in the record".into());
        }
        Ok(Some((nout, nends)))
    }
}

impl RecordDecoder for CsvRecordDecoder {
    fn decode(&mut self, records: &[&[u8]]) -> Result<DecodedRecords> {
        let mut g = self.rows.gathered();
        let mut sources = Vec::with_capacity(records.len());
        let mut bad = Vec::new();
        for (k, record) in records.iter().enumerate() {
            match self.read(record) {
                Ok(Some((nout, nends))) => match self.rows.gather(&mut g, &self.out[..nout], &self.ends[..nends]) {
                    Ok(()) => sources.push(k),
                    Err(message) => bad.push((k, message)),
                },
                Ok(None) => {}
                Err(message) => bad.push((k, message)),
            }
        }
        let (batch, bad_rows) = self.rows.convert(g)?;
        let batch = drop_rows(batch, &bad_rows)?;
        if !bad_rows.is_empty() {
            bad.extend(bad_rows.iter().map(|(row, message)| (sources[*row], message.clone())));
            bad.sort_by_key(|(k, _)| *k);
            let mut keep = vec![true; sources.len()];
            for (row, _) in &bad_rows {
                keep[*row] = false;
            }
            sources = sources.into_iter().zip(keep).filter_map(|(k, keep)| keep.then_some(k)).collect();
        }
        let skip = self.rows.options.ignore_parse_errors;
        if skip {
            self.skipped += bad.len() as u64;
        }
        Ok(DecodedRecords::new(batch, sources, bad, records.len(), skip))
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// Writes rows as CSV lines as Flink's `csv` format (Jackson's CSV writer) does: numbers
/// and booleans bare; text — strings, timestamps, dates — quoted when it may need it
/// (see [`CsvEncoder::needs_quotes`]); NULL as the null literal (empty by default);
/// timestamps as `2024-03-01 22:30:07.885`, doubles as Java prints them.
pub(crate) struct CsvEncoder {
    options: CsvOptions,
    field: String,
    /// Bytes per row of the last batch, to size the buffer of the next.
    row_bytes: usize,
}

/// How a column is written: the common types directly into the output bytes (this is the
/// sink's hot loop), the rest through the general text form.
enum Column<'a> {
    Int64(&'a arrow::array::Int64Array),
    TimestampMillis(&'a arrow::array::TimestampMillisecondArray),
    Utf8(&'a StringArray),
    Other(&'a dyn Array),
}

impl<'a> Column<'a> {
    fn of(a: &'a ArrayRef) -> Self {
        use arrow::array::AsArray;
        match a.data_type() {
            DataType::Int64 => Column::Int64(a.as_primitive()),
            DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None) => {
                Column::TimestampMillis(a.as_primitive())
            }
            DataType::Utf8 => Column::Utf8(a.as_string()),
            _ => Column::Other(a.as_ref()),
        }
    }
}

impl CsvEncoder {
    /// An encoder with these options.
    pub(crate) fn new(options: CsvOptions) -> Self {
        Self { options, field: String::new(), row_bytes: 32 }
    }

    /// Jackson's quick ("loose") check, which Flink keeps: text longer than 24 characters,
    /// or holding any character below the delimiter and the quote character (a space, say),
    /// or the escape character, is quoted.
    fn needs_quotes(&self, bytes: &[u8]) -> bool {
        const MAX_QUOTE_CHECK: usize = 24;
        let min_safe = self.options.delimiter.max(self.options.quote.unwrap_or(0)).saturating_add(1);
        let long = bytes.len() > MAX_QUOTE_CHECK && utf16_len(bytes) > MAX_QUOTE_CHECK;
        long || bytes.iter().any(|b| *b < min_safe || Some(*b) == self.options.escape)
    }

    /// One text field, quoted (or, without a quote character, escaped) when needed.
    fn write_text(&self, out: &mut Vec<u8>, bytes: &[u8]) {
        let d = self.options.delimiter;
        let special = |b: &u8| *b == d || *b == b'\n' || *b == b'\r' || Some(*b) == self.options.quote;
        match self.options.quote {
            Some(q) if self.needs_quotes(bytes) => {
                out.reserve(bytes.len() + 2);
                out.push(q);
                let mut rest = bytes;
                while let Some(k) = memchr::memchr(q, rest) {
                    // Doubled quote, or the escape character before it when one is set.
                    out.extend_from_slice(&rest[..k]);
                    out.push(self.options.escape.unwrap_or(q));
                    out.push(q);
                    rest = &rest[k + 1..];
                }
                out.extend_from_slice(rest);
                out.push(q);
            }
            None if bytes.iter().any(special) && self.options.escape.is_some() => {
                let esc = self.options.escape.unwrap_or(b'\\');
                for &b in bytes {
                    if special(&b) || b == esc {
                        out.push(esc);
                    }
                    out.push(b);
                }
            }
            _ => out.extend_from_slice(bytes),
        }
    }

    fn write_general(&mut self, out: &mut Vec<u8>, a: &dyn Array, row: usize) -> Result<()> {
        let mut field = std::mem::take(&mut self.field);
        field.clear();
        let written = text::write_value(&mut field, a, row, Style::Sql);
        if is_number_or_boolean(a.data_type()) {
            out.extend_from_slice(field.as_bytes());
        } else {
            self.write_text(out, field.as_bytes());
        }
        self.field = field;
        written
    }
}

/// The UTF-16 length (Java's `String.length()`) of UTF-8 text: a code unit per character,
/// two for one of four bytes. Not checked to be UTF-8: it is text of a string column
/// or written by `text::write_value`.
fn utf16_len(bytes: &[u8]) -> usize {
    bytes.iter().map(|&b| usize::from(b & 0xC0 != 0x80) + usize::from(b >= 0xF0)).sum()
}

/// Types Jackson writes as numbers or booleans, never quoted.
fn is_number_or_boolean(t: &DataType) -> bool {
    t.is_numeric() || matches!(t, DataType::Boolean | DataType::Null)
}

impl LineEncoder for CsvEncoder {
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>, row_ends: &mut Vec<usize>) -> Result<()> {
        let null = self.options.null_literal.clone().unwrap_or_default();
        let columns: Vec<(Column, Option<arrow::buffer::NullBuffer>)> =
            batch.columns().iter().map(|c| (Column::of(c), c.logical_nulls())).collect();
        let start = out.len();
        out.reserve(batch.num_rows() * self.row_bytes);
        // The last timestamp written per column and its text: window bounds repeat for every
        // row of a window, so most are copies.
        let mut last_time: Vec<(i64, Vec<u8>)> = vec![(i64::MIN, Vec::new()); columns.len()];
        for row in 0..batch.num_rows() {
            for (k, (column, nulls)) in columns.iter().enumerate() {
                if k > 0 {
                    out.push(self.options.delimiter);
                }
                if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                    out.extend_from_slice(null.as_bytes());
                    continue;
                }
                match column {
                    Column::Int64(a) => text::push_i64(out, a.value(row)),
                    Column::TimestampMillis(a) => {
                        let (last, bytes) = &mut last_time[k];
                        let v = a.value(row);
                        if *last != v {
                            bytes.clear();
                            let mut plain = Vec::with_capacity(24);
                            if text::push_sql_timestamp_millis(&mut plain, v) {
                                self.write_text(bytes, &plain);
                            } else {
                                self.write_general(bytes, *a, row)?;
                            }
                            *last = v;
                        }
                        out.extend_from_slice(bytes);
                    }
                    Column::Utf8(a) => self.write_text(out, a.value(row).as_bytes()),
                    Column::Other(a) => self.write_general(out, *a, row)?,
                }
            }
            out.push(b'\n');
            row_ends.push(out.len());
        }
        if batch.num_rows() > 0 {
            self.row_bytes = (out.len() - start) / batch.num_rows() + 1;
        }
        Ok(())
    }
}
