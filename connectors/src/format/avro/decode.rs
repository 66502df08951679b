//! The record decoders: `avro` (a bare datum of the table's schema) and `avro-confluent`
//! (framed with a schema id; the writer schema is fetched from the registry and resolved to
//! the table's). Each record becomes an apache-avro `Value` (`datum.rs`), appended to the
//! rows (`rows.rs`); a record that fails anywhere is a [`BadRecord`] of its own.

use std::collections::HashMap;

use apache_avro::types::Value;
use apache_avro::Schema as AvroSchema;
use arrow::datatypes::SchemaRef;

use super::datum::DatumReader;
use super::registry::Registry;
use super::rows::RowsBuilder;
use crate::format::record::{BadRecord, DecodedRecords, RecordDecoder};
use crate::Result;

/// The `avro` format's decoder: each record is one datum of the table's derived schema.
pub(crate) struct AvroDecoder {
    pub(crate) schema: SchemaRef,
    pub(crate) datum: DatumReader,
}

impl RecordDecoder for AvroDecoder {
    fn decode(&mut self, records: &[&[u8]]) -> Result<DecodedRecords> {
        let mut rows = RowsBuilder::new(&self.schema)?;
        let mut bad = Vec::new();
        for (index, record) in records.iter().enumerate() {
            if let Err(message) = self.datum.read(record).and_then(|v| rows.append(v)) {
                bad.push(BadRecord { index, message });
            }
        }
        Ok(DecodedRecords { batch: rows.finish()?, bad, row_kinds: None, source_records: None })
    }
}

/// What is known of a writer schema id.
enum Writer {
    /// Same binary layout as the reader schema (equal canonical forms): read directly.
    Same(DatumReader),
    /// Another schema: read with it, then resolve to the reader schema.
    Resolve(DatumReader),
    /// Not usable (not Avro, or unparseable): records with this id are bad.
    Unusable(String),
    /// The registry does not know the id (kept for one batch only).
    Unknown(String),
}

/// The `avro-confluent` format's decoder: each record is the magic byte 0, a schema id (4
/// bytes, big-endian) and a datum written with that schema, which is fetched from the
/// registry once per id.
pub(crate) struct ConfluentDecoder {
    schema: SchemaRef,
    /// The reader schema (derived from the table, or the user's `avro-confluent.schema`).
    reader: AvroSchema,
    reader_form: String,
    registry: Registry,
    writers: HashMap<u32, Writer>,
}

impl ConfluentDecoder {
    /// A decoder reading into `schema` with the reader schema `reader`.
    pub(crate) fn new(schema: SchemaRef, reader: AvroSchema, registry: Registry) -> Self {
        let reader_form = reader.canonical_form();
        Self { schema, reader, reader_form, registry, writers: HashMap::new() }
    }

    /// Fetch writer schema `id` unless it is known.
    fn fetch(&mut self, id: u32) -> Result<()> {
        if self.writers.contains_key(&id) {
            return Ok(());
        }
        let writer = match self.registry.schema(id)? {
            None => Writer::Unknown(format!("schema id {id} is not in the schema registry {}", self.registry.urls())),
            Some(stored) if !stored.schema_type.eq_ignore_ascii_case("AVRO") => {
                Writer::Unusable(format!("schema id {id} is a {} schema, not Avro", stored.schema_type))
            }
            Some(stored) => match AvroSchema::parse_str(&stored.schema).map_err(|e| e.to_string()) {
                Ok(s) => {
                    let same = s.canonical_form() == self.reader_form;
                    match DatumReader::new(s) {
                        Ok(d) if same => Writer::Same(d),
                        Ok(d) => Writer::Resolve(d),
                        Err(e) => Writer::Unusable(format!("schema id {id} cannot be used: {e}")),
                    }
                }
                Err(e) => Writer::Unusable(format!("schema id {id} cannot be parsed: {e}")),
            },
        };
        self.writers.insert(id, writer);
        Ok(())
    }

    fn read(&self, id: u32, datum: &[u8]) -> Result<Value, String> {
        match self.writers.get(&id) {
            Some(Writer::Same(writer)) => writer.read(datum),
            Some(Writer::Resolve(writer)) => writer
                .read(datum)?
                .resolve(&self.reader)
                .map_err(|e| format!("the writer's schema (id {id}) does not resolve to the table's: {e}")),
            Some(Writer::Unusable(message) | Writer::Unknown(message)) => Err(message.clone()),
            None => Err(format!("schema id {id} was not fetched")),
        }
    }
}

impl RecordDecoder for ConfluentDecoder {
    fn decode(&mut self, records: &[&[u8]]) -> Result<DecodedRecords> {
        let mut rows = RowsBuilder::new(&self.schema)?;
        let mut bad = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let result = match frame(record) {
                Err(message) => Err(message),
                Ok((id, datum)) => {
                    self.fetch(id)?;
                    self.read(id, datum)
                }
            };
            if let Err(message) = result.and_then(|v| rows.append(v)) {
                bad.push(BadRecord { index, message });
            }
        }
        // An unknown id may be registered later: ask again in the next batch.
        self.writers.retain(|_, w| !matches!(w, Writer::Unknown(_)));
        Ok(DecodedRecords { batch: rows.finish()?, bad, row_kinds: None, source_records: None })
    }
}

/// The schema id and the datum of a record in the Confluent wire format.
fn frame(record: &[u8]) -> Result<(u32, &[u8]), String> {
    if record.len() < 5 {
        return Err(format!(
            "a record of {} bytes is too short for the Confluent wire format (magic byte and 4-byte schema id)",
            record.len()
        ));
    }
    if record[0] != 0 {
        return Err(format!("unknown magic byte {}: not the Confluent Schema Registry wire format", record[0]));
    }
    Ok((u32::from_be_bytes([record[1], record[2], record[3], record[4]]), &record[5..]))
}
