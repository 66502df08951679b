//! Which columns of a Kafka table live where: in the record key, in the value, or in the
//! record's metadata (`METADATA FROM 'timestamp'`), as Flink's `key.fields`,
//! `value.fields-include` and metadata keys define it.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::{Config, Flavor};
use crate::format::record::{RecordDecoder, RecordEncoder};
use crate::format::Format;
use crate::{ConnectorError, ConnectorTable, Options, Result};

/// A Kafka record's metadata a column can read (`METADATA FROM '<key>'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Metadata {
    Topic,
    Partition,
    Offset,
    Timestamp,
    TimestampType,
    Headers,
    LeaderEpoch,
}

impl Metadata {
    const ALL: [Metadata; 7] = [
        Self::Topic,
        Self::Partition,
        Self::Headers,
        Self::LeaderEpoch,
        Self::Offset,
        Self::Timestamp,
        Self::TimestampType,
    ];

    fn key(self) -> &'static str {
        match self {
            Self::Topic => "topic",
            Self::Partition => "partition",
            Self::Offset => "offset",
            Self::Timestamp => "timestamp",
            Self::TimestampType => "timestamp-type",
            Self::Headers => "headers",
            Self::LeaderEpoch => "leader-epoch",
        }
    }

    /// Whether a sink writes it (Flink: only `timestamp` and `headers`).
    fn writable(self) -> bool {
        matches!(self, Self::Timestamp | Self::Headers)
    }
}

/// The columns one side of the record (key or value) carries, and its format.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) format: Format,
    /// The format's own options, without `key.` / `value.`.
    pub(crate) options: Options,
    /// Indices into the table's columns.
    pub(crate) columns: Vec<usize>,
    /// Those columns, named as in the record (`key.fields-prefix` removed).
    pub(crate) schema: SchemaRef,
    /// `key` or `value`, for messages and the default schema-registry subject.
    pub(crate) side: &'static str,
}

impl Part {
    /// Whether the format skips malformed records (`<format>.ignore-parse-errors`).
    pub(crate) fn ignores_parse_errors(&self) -> bool {
        let key = format!("{}.ignore-parse-errors", self.format.name());
        self.options.get(&key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The decoder of this part for records of `topic`. With `report_all` (a dead-letter
    /// topic is set) the format reports every bad record, even under `ignore-parse-errors`,
    /// so that the source can forward it.
    pub(crate) fn decoder(&self, table: &str, topic: &str, report_all: bool) -> Result<Box<dyn RecordDecoder>> {
        let subject = format!("{topic}-{}", self.side);
        let options = if report_all {
            let ignore = format!("{}.ignore-parse-errors", self.format.name());
            crate::Options::new(
                self.options.iter().filter(|(k, _)| *k != ignore).map(|(k, v)| (k.to_string(), v.to_string())),
            )
        } else {
            self.options.clone()
        };
        self.format.record_decoder(table, &options, self.schema.clone(), &subject)
    }

    pub(crate) fn encoder(&self, table: &str, topic: &str) -> Result<Box<dyn RecordEncoder>> {
        let subject = format!("{topic}-{}", self.side);
        self.format.record_encoder(table, &self.options, self.schema.clone(), &subject)
    }

    fn validate(&self, table: &str) -> Result<()> {
        self.format.validate(table, &self.options, &self.schema)
    }

    fn knows(&self, key: &str) -> bool {
        self.format.knows(key)
    }
}

/// Where each column of a Kafka table comes from or goes to.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The table's columns (`ConnectorTable::schema`).
    pub(crate) schema: SchemaRef,
    pub(crate) key: Option<Part>,
    pub(crate) value: Part,
    /// Metadata columns: (index into `schema`, what).
    pub(crate) metadata: Vec<(usize, Metadata)>,
    /// Whether `value.format` was given as `format` (its options have no `value.` prefix).
    bare_value_format: bool,
}

impl Layout {
    pub(crate) fn parse(table: &ConnectorTable, flavor: Flavor) -> Result<Self> {
        let name = table.name.as_str();
        let o = &table.options;
        let err = |m: String| ConnectorError::options(name, m);
        let schema = table.schema.clone();
        let mut metadata = Vec::new();
        for (index, key) in &table.metadata {
            let Some(m) = Metadata::ALL.iter().find(|m| m.key() == key) else {
                return Err(err(format!(
                    "unknown metadata key '{key}' for column '{}'; connector '{}' provides: {}",
                    schema.fields().get(*index).map(|f| f.name().as_str()).unwrap_or("?"),
                    flavor.name(),
                    Metadata::ALL.iter().map(|m| m.key()).collect::<Vec<_>>().join(", ")
                )));
            };
            metadata.push((*index, *m));
        }
        let physical: Vec<usize> =
            (0..schema.fields().len()).filter(|i| !metadata.iter().any(|(m, _)| m == i)).collect();
        let column = |n: &str| {
            physical
                .iter()
                .copied()
                .find(|i| schema.field(*i).name() == n)
                .ok_or_else(|| err(format!("key field '{n}' is not a physical column of the table")))
        };

        // The value format: `format` or `value.format`.
        let (value_format, bare_value_format) = match (o.get("format"), o.get("value.format")) {
            (Some(_), Some(_)) => return Err(err("options 'format' and 'value.format' cannot both be set".into())),
            (Some(f), None) if flavor == Flavor::Append => (f, true),
            (None, Some(f)) => (f, false),
            (Some(_), None) => {
                return Err(err(
                    "connector 'upsert-kafka' needs options 'key.format' and 'value.format' (not 'format')".into(),
                ))
            }
            (None, None) => return Err(err("missing required option 'value.format' (or 'format')".into())),
        };

        // The key columns.
        let listed: Option<Vec<String>> = o
            .get("key.fields")
            .map(|s| s.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect());
        let distributed_by: Option<Vec<String>> =
            table.distribution.as_ref().map(|d| d.columns.clone()).filter(|c| !c.is_empty());
        let key_names: Vec<String> = match flavor {
            Flavor::Upsert => {
                if table.primary_key.is_empty() {
                    return Err(err(
                        "'upsert-kafka' tables require to define a PRIMARY KEY constraint. The PRIMARY KEY \
                         specifies which columns should be read from or write to the Kafka message key. The \
                         PRIMARY KEY also defines records in the 'upsert-kafka' table should update or delete \
                         on which keys."
                            .into(),
                    ));
                }
                if listed.is_some() {
                    return Err(err(
                        "connector 'upsert-kafka' takes its key fields from the PRIMARY KEY; remove option 'key.fields'"
                            .into(),
                    ));
                }
                table.primary_key.clone()
            }
            Flavor::Append => match (listed, distributed_by) {
                (Some(l), Some(d)) if l != d => {
                    return Err(err(format!(
                        "option 'key.fields' = '{}' differs from DISTRIBUTED BY ({}); the bucket key is the \
                         Kafka key, so they must be the same",
                        l.join(";"),
                        d.join(", ")
                    )))
                }
                (Some(l), _) => l,
                (None, Some(d)) => d,
                (None, None) => Vec::new(),
            },
        };
        let key_format = match (o.get("key.format"), key_names.is_empty()) {
            (Some(_), true) => {
                return Err(err(
                    "A key format 'key.format' requires the declaration of one or more of key fields using \
                     'key.fields'."
                        .into(),
                ))
            }
            (None, false) if table.distribution.is_some() && flavor == Flavor::Append => Some(value_format),
            (None, false) => {
                return Err(err(format!(
                    "the key fields ({}) need option 'key.format' to say how the record key is written",
                    key_names.join(", ")
                )))
            }
            (f, _) => f,
        };
        let prefix = o.get("key.fields-prefix").unwrap_or("");
        let except_key = match o.get("value.fields-include").map(str::to_ascii_uppercase).as_deref() {
            None | Some("ALL") => false,
            Some("EXCEPT_KEY") => true,
            Some(_) => return Err(err("option 'value.fields-include' must be 'ALL' or 'EXCEPT_KEY'".into())),
        };
        if !prefix.is_empty() && !except_key {
            return Err(err(
                "A key prefix is not allowed when option 'value.fields-include' is set to 'ALL'. Set it to \
                 'EXCEPT_KEY' instead to avoid field overlaps."
                    .into(),
            ));
        }
        let key_columns = key_names.iter().map(|n| column(n)).collect::<Result<Vec<_>>>()?;
        // As in Flink, PRIMARY KEY columns are NOT NULL. The Avro formats carry it on the
        // wire (Flink derives `"int"` for such a column, not `["null", "int"]`); the other
        // formats keep the table's nullability.
        let primary: Vec<usize> = table.primary_key.iter().filter_map(|n| column(n).ok()).collect();
        let part_field = |i: usize, format: Format| {
            let field = schema.field(i).as_ref().clone();
            match format {
                Format::Avro | Format::AvroConfluent if primary.contains(&i) => field.with_nullable(false),
                _ => field,
            }
        };
        let key = match key_format {
            Some(f) => {
                let options = side_options(o, "key.", f);
                let format = Format::of(name, &options)?;
                let mut fields = Vec::with_capacity(key_columns.len());
                for i in &key_columns {
                    let field = schema.field(*i);
                    let Some(stripped) = field.name().strip_prefix(prefix) else {
                        return Err(err(format!(
                            "All fields in 'key.fields' must be prefixed with '{prefix}' when option \
                             'key.fields-prefix' is set but field '{}' is not prefixed.",
                            field.name()
                        )));
                    };
                    fields.push(part_field(*i, format).with_name(stripped));
                }
                Some(Part {
                    format,
                    options,
                    columns: key_columns.clone(),
                    schema: Arc::new(Schema::new(fields)),
                    side: "key",
                })
            }
            None => None,
        };
        let value_columns: Vec<usize> =
            physical.iter().copied().filter(|i| !(except_key && key_columns.contains(i))).collect();
        let value_options =
            if bare_value_format { bare_options(o, value_format) } else { side_options(o, "value.", value_format) };
        let format = Format::of(name, &value_options)?;
        let value = Part {
            format,
            options: value_options,
            schema: Arc::new(Schema::new(value_columns.iter().map(|i| part_field(*i, format)).collect::<Vec<Field>>())),
            columns: value_columns,
            side: "value",
        };
        Ok(Self { schema, key, value, metadata, bare_value_format })
    }

    /// Whether `key` is an option of the key or value format (with its prefix).
    pub(crate) fn knows_format_option(&self, key: &str) -> bool {
        if let Some(rest) = key.strip_prefix("key.") {
            return self.key.as_ref().is_some_and(|k| k.knows(rest));
        }
        if self.bare_value_format {
            return self.value.knows(key);
        }
        key.strip_prefix("value.").is_some_and(|rest| self.value.knows(rest))
    }

    /// Checks for a table read by a source.
    pub(crate) fn check_source(&self, config: &Config) -> Result<()> {
        let table = config.table.as_str();
        self.value.validate(table)?;
        if let Some(k) = &self.key {
            k.validate(table)?;
            if k.format.is_changelog() {
                return Err(ConnectorError::options(
                    table,
                    format!("format '{}' cannot be the key format", k.format.name()),
                ));
            }
        }
        if self.value.format.is_changelog() && config.flavor == Flavor::Upsert {
            return Err(ConnectorError::options(
                table,
                format!(
                    "connector 'upsert-kafka' reads plain values; format '{}' is a changelog format (use \
                     connector 'kafka')",
                    self.value.format.name()
                ),
            ));
        }
        for (i, m) in &self.metadata {
            let field = self.schema.field(*i);
            if *m == Metadata::Headers && !is_headers_type(field.data_type()) {
                return Err(ConnectorError::options(
                    table,
                    format!(
                        "metadata column '{}' FROM 'headers' must be MAP<STRING, BYTES>, not {}",
                        field.name(),
                        field.data_type()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks for a table written by a sink.
    pub(crate) fn check_sink(&self, config: &Config) -> Result<()> {
        let table = config.table.as_str();
        if self.value.format.is_changelog() {
            return Err(ConnectorError::options(
                table,
                format!("format '{}' can only be read in Eddy, not written", self.value.format.name()),
            ));
        }
        self.value.validate(table)?;
        if let Some(k) = &self.key {
            k.validate(table)?;
        }
        for (i, m) in &self.metadata {
            if !m.writable() {
                return Err(ConnectorError::options(
                    table,
                    format!(
                        "metadata key '{}' of column '{}' cannot be written; a Kafka sink writes 'timestamp' and \
                         'headers' (declare the column VIRTUAL to read it only)",
                        m.key(),
                        self.schema.field(*i).name()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `MAP<STRING, BYTES>`.
pub(crate) fn is_headers_type(t: &DataType) -> bool {
    match t {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                matches!(kv[0].data_type(), DataType::Utf8)
                    && matches!(kv[1].data_type(), DataType::Binary | DataType::LargeBinary)
            }
            _ => false,
        },
        _ => false,
    }
}

/// The options of one side given with `key.format` / `value.format`: every `<side>*` key
/// with the side's prefix removed (`value.json.x` -> `json.x`), and `format`.
fn side_options(o: &Options, prefix: &str, format: &str) -> Options {
    let mut pairs: Vec<(String, String)> = o
        .with_prefix(prefix)
        .filter(|(k, _)| *k != "fields" && *k != "fields-include" && *k != "fields-prefix")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pairs.retain(|(k, _)| k != "format");
    pairs.push(("format".to_string(), format.to_string()));
    Options::new(pairs)
}

/// The options of a value format given as `format`: its own `<format>.*` keys.
fn bare_options(o: &Options, format: &str) -> Options {
    let own = format!("{format}.");
    let mut pairs: Vec<(String, String)> =
        o.iter().filter(|(k, _)| k.starts_with(&own)).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    pairs.push(("format".to_string(), format.to_string()));
    Options::new(pairs)
}
