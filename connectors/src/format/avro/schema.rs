//! The Avro schema of a table's row type, as Flink's `AvroSchemaConverter` derives it.
//!
//! The row becomes a record named `record` in namespace `org.apache.flink.avro.generated`;
//! a nested `ROW` field `f` becomes a record named `record_f` (its path from the top joined
//! by `_`), the elements of an `ARRAY` and the values of a `MAP` keep the name of the field
//! that holds them. A nullable type `T` becomes the union `["null", T]`, and a nullable field
//! has `"default": null`, so a reader with this schema can read data written without it.
//!
//! Timestamps follow `avro.timestamp_mapping.legacy` (Flink's default `true`): in the legacy
//! mapping both `TIMESTAMP` and `TIMESTAMP_LTZ` are `timestamp-millis`; otherwise `TIMESTAMP`
//! is `local-timestamp-millis` and `TIMESTAMP_LTZ` is `timestamp-millis`. Where Flink refuses
//! a type that has a natural Avro counterpart (precision 6: `timestamp-micros`, `time-micros`;
//! `TIMESTAMP_LTZ` in the legacy mapping) Eddy maps it rather than failing.

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};

/// Namespace of the top-level record, as Flink.
pub(crate) const NAMESPACE: &str = "org.apache.flink.avro.generated";

/// The Avro schema (JSON text) for rows of `fields`; `Err` names the column that has no
/// Avro type.
pub(crate) fn derive(fields: &Fields, legacy_timestamps: bool) -> Result<String, String> {
    let mut out = String::with_capacity(64 + 48 * fields.len());
    out.push_str(r#"{"type":"record","name":"record","namespace":""#);
    out.push_str(NAMESPACE);
    out.push_str(r#"","fields":"#);
    Deriver { legacy_timestamps, out: &mut out }.fields(fields, "record", "")?;
    out.push('}');
    Ok(out)
}

/// Whether `name` is a valid Avro name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_avro_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Deriver<'a> {
    legacy_timestamps: bool,
    out: &'a mut String,
}

impl Deriver<'_> {
    /// The `fields` array of a record named `record_name`; `path` is the column path so far.
    fn fields(&mut self, fields: &Fields, record_name: &str, path: &str) -> Result<(), String> {
        self.out.push('[');
        for (i, field) in fields.iter().enumerate() {
            let column = if path.is_empty() { field.name().clone() } else { format!("{path}.{}", field.name()) };
            if !is_avro_name(field.name()) {
                return Err(format!(
                    "column '{column}': '{}' is not a valid Avro field name (letters, digits and '_', \
                     not starting with a digit)",
                    field.name()
                ));
            }
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(r#"{"name":"#);
            push_json_string(self.out, field.name());
            self.out.push_str(r#","type":"#);
            self.field_type(field, &format!("{record_name}_{}", field.name()), &column)?;
            if field.is_nullable() {
                self.out.push_str(r#","default":null"#);
            }
            self.out.push('}');
        }
        self.out.push(']');
        Ok(())
    }

    /// The type of `field`: a `["null", T]` union when it is nullable.
    fn field_type(&mut self, field: &Field, record_name: &str, column: &str) -> Result<(), String> {
        let union = field.is_nullable() && *field.data_type() != DataType::Null;
        if union {
            self.out.push_str(r#"["null","#);
        }
        self.data_type(field.data_type(), record_name, column)?;
        if union {
            self.out.push(']');
        }
        Ok(())
    }

    fn data_type(&mut self, data_type: &DataType, record_name: &str, column: &str) -> Result<(), String> {
        let unsupported = |why: &str| format!("column '{column}' of type {data_type}: {why}");
        match data_type {
            DataType::Null => self.out.push_str(r#""null""#),
            DataType::Boolean => self.out.push_str(r#""boolean""#),
            DataType::Int8 | DataType::Int16 | DataType::Int32 => self.out.push_str(r#""int""#),
            DataType::Int64 => self.out.push_str(r#""long""#),
            DataType::Float32 => self.out.push_str(r#""float""#),
            DataType::Float64 => self.out.push_str(r#""double""#),
            DataType::Utf8 => self.out.push_str(r#""string""#),
            DataType::Binary => self.out.push_str(r#""bytes""#),
            DataType::Decimal128(precision, scale) => {
                if *scale < 0 {
                    return Err(unsupported("a negative scale has no Avro decimal"));
                }
                self.out.push_str(&format!(
                    r#"{{"type":"bytes","logicalType":"decimal","precision":{precision},"scale":{scale}}}"#
                ));
            }
            DataType::Date32 => self.out.push_str(r#"{"type":"int","logicalType":"date"}"#),
            DataType::Time32(_) => self.out.push_str(r#"{"type":"int","logicalType":"time-millis"}"#),
            DataType::Time64(TimeUnit::Microsecond) => {
                self.out.push_str(r#"{"type":"long","logicalType":"time-micros"}"#)
            }
            DataType::Time64(_) => return Err(unsupported("Avro has no TIME with precision above 6")),
            DataType::Timestamp(unit, tz) => {
                let local = !self.legacy_timestamps && tz.is_none();
                let logical = match (local, unit) {
                    (false, TimeUnit::Second | TimeUnit::Millisecond) => "timestamp-millis",
                    (false, TimeUnit::Microsecond) => "timestamp-micros",
                    (false, TimeUnit::Nanosecond) => "timestamp-nanos",
                    (true, TimeUnit::Second | TimeUnit::Millisecond) => "local-timestamp-millis",
                    (true, TimeUnit::Microsecond) => "local-timestamp-micros",
                    (true, TimeUnit::Nanosecond) => "local-timestamp-nanos",
                };
                self.out.push_str(&format!(r#"{{"type":"long","logicalType":"{logical}"}}"#));
            }
            DataType::List(element) => {
                self.out.push_str(r#"{"type":"array","items":"#);
                self.field_type(element, record_name, &format!("{column}[]"))?;
                self.out.push('}');
            }
            DataType::Map(entries, _) => {
                let DataType::Struct(kv) = entries.data_type() else {
                    return Err(unsupported("malformed map type"));
                };
                if kv.len() != 2 || *kv[0].data_type() != DataType::Utf8 {
                    return Err(unsupported("Avro map keys are strings; the key type must be STRING"));
                }
                self.out.push_str(r#"{"type":"map","values":"#);
                self.field_type(&kv[1], record_name, &format!("{column}{{}}"))?;
                self.out.push('}');
            }
            DataType::Struct(fields) => {
                self.out.push_str(r#"{"type":"record","name":"#);
                push_json_string(self.out, record_name);
                self.out.push_str(r#","fields":"#);
                self.fields(fields, record_name, column)?;
                self.out.push('}');
            }
            _ => return Err(unsupported("not supported by the Avro formats")),
        }
        Ok(())
    }
}

/// Append `text` as a JSON string literal.
fn push_json_string(out: &mut String, text: &str) {
    out.push_str(&serde_json::Value::from(text).to_string());
}
