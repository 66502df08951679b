//! The `debezium-json` format, as Flink's: each record is a Debezium change event, read as
//! a changelog.
//!
//! ```text
//! {"before": {...} | null, "after": {...} | null, "op": "c" | "r" | "u" | "d", "source": ..., "ts_ms": ...}
//! {"schema": {...}, "payload": {"before": ..., "after": ..., "op": ...}}   (debezium-json.schema-include)
//! ```
//!
//! `c`/`r` give `+I(after)`, `u` gives `-U(before)` and `+U(after)`, `d` gives `-D(before)`.
//! The envelope is read with serde, keeping the text of `before` and `after` unparsed
//! (`RawValue`); those texts are then decoded into rows with the `json` format's arrow-json
//! machinery, all of a call's events in one pass. Eddy only reads this format.

use std::borrow::Cow;

use arrow::array::{BooleanArray, Int8Array};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{self, JsonRows};
use super::record::{BadRecord, DecodedRecords, RecordDecoder};
use crate::{ConnectorError, Options, Result, RowKind};

/// Options of the debezium-json format.
pub(crate) const OPTIONS: &[&str] = &[
    "debezium-json.schema-include",
    "debezium-json.ignore-parse-errors",
    "debezium-json.timestamp-format.standard",
    "debezium-json.map-null-key.mode",
    "debezium-json.map-null-key.literal",
    "debezium-json.encode.decimal-as-plain-number",
    "debezium-json.encode.ignore-null-fields",
];

/// The checked `debezium-json.*` options (those about writing are checked and ignored).
#[derive(Debug, Clone)]
pub(crate) struct DebeziumOptions {
    schema_include: bool,
    ignore_parse_errors: bool,
}

impl DebeziumOptions {
    /// Read and check the options.
    pub(crate) fn parse(table: &str, o: &Options) -> Result<Self> {
        json::timestamp_standard(table, o, "debezium-json.timestamp-format.standard")?;
        if let Some(mode) = o.get("debezium-json.map-null-key.mode") {
            if !matches!(mode.to_ascii_uppercase().as_str(), "FAIL" | "DROP" | "LITERAL") {
                return Err(ConnectorError::options(
                    table,
                    format!("option 'debezium-json.map-null-key.mode' = '{mode}' must be 'FAIL', 'DROP' or 'LITERAL'"),
                ));
            }
        }
        o.bool_or(table, "debezium-json.encode.decimal-as-plain-number", false)?;
        o.bool_or(table, "debezium-json.encode.ignore-null-fields", false)?;
        Ok(Self {
            schema_include: o.bool_or(table, "debezium-json.schema-include", false)?,
            ignore_parse_errors: o.bool_or(table, "debezium-json.ignore-parse-errors", false)?,
        })
    }
}

/// A change event; `before`/`after` are kept as JSON text.
#[derive(Deserialize)]
struct Change<'a> {
    #[serde(borrow)]
    before: Option<&'a RawValue>,
    #[serde(borrow)]
    after: Option<&'a RawValue>,
    #[serde(borrow)]
    op: Option<Cow<'a, str>>,
    /// Only to say what is wrong when a schema envelope is read without `schema-include`.
    payload: Option<IgnoredAny>,
}

/// `{"schema": ..., "payload": <change>}` (`debezium-json.schema-include`).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    payload: Option<Change<'a>>,
}

/// Flink's message for an update or delete without its old row.
fn replica_identity(what: &str) -> String {
    format!(
        "The \"before\" field of {what} message is null, if you are using Debezium Postgres Connector, \
         please check the Postgres table has been set REPLICA IDENTITY to FULL level."
    )
}

/// Decodes Debezium change events (JSON) into a changelog of the table's rows.
pub(crate) struct DebeziumDecoder {
    rows: JsonRows,
    options: DebeziumOptions,
    skipped: u64,
    scratch: Vec<u8>,
}

impl DebeziumDecoder {
    /// A decoder producing `schema`; fails when arrow-json cannot decode a column type.
    pub(crate) fn new(options: DebeziumOptions, schema: SchemaRef) -> Result<Self> {
        let rows = JsonRows::new(schema, options.ignore_parse_errors)?;
        Ok(Self { rows, options, skipped: 0, scratch: Vec::new() })
    }

    /// The rows of one event (their JSON text and kind), appended to `out`.
    fn event<'a>(&self, record: &'a [u8], out: &mut Vec<(&'a [u8], RowKind)>) -> Result<(), String> {
        let corrupt = |e: serde_json::Error| format!("corrupt Debezium JSON message '{}': {e}", json::shown(record));
        let change = if self.options.schema_include {
            let envelope: Envelope = serde_json::from_slice(record).map_err(corrupt)?;
            envelope.payload.ok_or_else(|| {
                format!(
                    "the Debezium JSON message '{}' has no \"payload\"; set 'debezium-json.schema-include' = \
                     'false' for messages without the schema envelope",
                    json::shown(record)
                )
            })?
        } else {
            serde_json::from_slice::<Change>(record).map_err(corrupt)?
        };
        let Some(op) = change.op else {
            let hint = match change.payload {
                Some(_) => {
                    "; it has a \"payload\": set 'debezium-json.schema-include' = 'true' for messages with \
                     the schema envelope (Kafka Connect's 'value.converter.schemas.enable')"
                }
                None => "",
            };
            return Err(format!("the Debezium JSON message '{}' has no \"op\"{hint}", json::shown(record)));
        };
        let before = change.before.map(|v| v.get().as_bytes());
        let after = change.after.map(|v| v.get().as_bytes());
        let no_after = |what: &str| format!("The \"after\" field of {what} message is null");
        match op.as_ref() {
            "c" | "r" => out.push((after.ok_or_else(|| no_after("INSERT"))?, RowKind::Insert)),
            "u" => {
                let before = before.ok_or_else(|| replica_identity("UPDATE"))?;
                let after = after.ok_or_else(|| no_after("UPDATE"))?;
                out.push((before, RowKind::UpdateBefore));
                out.push((after, RowKind::UpdateAfter));
            }
            "d" => out.push((before.ok_or_else(|| replica_identity("DELETE"))?, RowKind::Delete)),
            other => {
                return Err(format!(
                    "unknown \"op\" value \"{other}\"; the Debezium JSON message is '{}'",
                    json::shown(record)
                ))
            }
        }
        Ok(())
    }
}

impl RecordDecoder for DebeziumDecoder {
    fn decode(&mut self, records: &[&[u8]]) -> Result<DecodedRecords> {
        let mut bad: Vec<(usize, String)> = Vec::new();
        // Each output row: its JSON text and kind, and the record it comes from.
        let mut rows: Vec<(&[u8], RowKind)> = Vec::with_capacity(records.len());
        let mut sources: Vec<usize> = Vec::with_capacity(records.len());
        for (k, record) in records.iter().enumerate() {
            if record.is_empty() {
                // As Flink: an empty message is no change.
                continue;
            }
            let before = rows.len();
            match self.event(record, &mut rows) {
                Ok(()) => sources.resize(rows.len(), k),
                Err(message) => {
                    rows.truncate(before);
                    bad.push((k, message));
                }
            }
        }
        let texts: Vec<&[u8]> = rows.iter().map(|(text, _)| *text).collect();
        let (mut batch, bad_texts) = self.rows.decode_texts(&texts, &mut self.scratch)?;
        let mut kinds: Vec<i8> = rows.iter().map(|(_, kind)| kind.code()).collect();
        if !bad_texts.is_empty() {
            // A record with a bad row gives none: drop its other rows too (an update's pair).
            let mut bad_records: Vec<usize> = Vec::new();
            for (t, message) in &bad_texts {
                let field =
                    if RowKind::from_code(kinds[*t]).is_some_and(RowKind::is_accumulate) { "after" } else { "before" };
                if bad_records.last() != Some(&sources[*t]) {
                    bad_records.push(sources[*t]);
                    bad.push((sources[*t], format!("\"{field}\": {message}")));
                }
            }
            let decoded: Vec<usize> = super::record::good(texts.len(), &bad_texts);
            let keep: Vec<bool> = decoded.iter().map(|&t| bad_records.binary_search(&sources[t]).is_err()).collect();
            batch = filter_record_batch(&batch, &BooleanArray::from(keep))
                .map_err(|e| ConnectorError::arrow("format 'debezium-json'", e))?;
            let kept = |t: &usize| bad_records.binary_search(&sources[*t]).is_err();
            let rows_kept: Vec<usize> = (0..texts.len()).filter(kept).collect();
            kinds = rows_kept.iter().map(|&t| kinds[t]).collect();
            sources = rows_kept.iter().map(|&t| sources[t]).collect();
            bad.sort_by_key(|(k, _)| *k);
        }
        let bad = if self.options.ignore_parse_errors {
            self.skipped += bad.len() as u64;
            Vec::new()
        } else {
            bad.into_iter().map(|(index, message)| BadRecord { index, message }).collect()
        };
        Ok(DecodedRecords { batch, bad, row_kinds: Some(Int8Array::from(kinds)), source_records: Some(sources) })
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}
