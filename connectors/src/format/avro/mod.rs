//! The `avro` and `avro-confluent` formats, as Flink's: each Kafka record is one Avro
//! binary datum of the table's row.
//!
//! Why they are record formats only: an Avro datum has no framing (no length, no line
//! break), so it is read where the transport frames the rows (a Kafka record), through
//! [`RecordDecoder`] / [`RecordEncoder`]. Avro container files are not written or read.
//!
//! - `avro`: the bare datum, written and read with the schema derived from the table
//!   (`schema.rs`, Flink's `AvroSchemaConverter`).
//! - `avro-confluent`: the Confluent wire format: magic byte `0`, the 4-byte big-endian id
//!   of the writer's schema in a Confluent Schema Registry, then the datum. The sink
//!   registers its schema under the subject (`<topic>-value` / `<topic>-key`, or
//!   `avro-confluent.subject`) and writes its id; the source fetches each writer schema by
//!   id (once) and resolves it to the table's schema, so producers that wrote with a
//!   compatible schema (more fields, another field order) are read correctly.
//!   As in Flink, `avro-confluent` uses the legacy timestamp mapping (it has no
//!   `timestamp_mapping.legacy` option).
//!
//! | file | what |
//! |---|---|
//! | `schema.rs` | the Avro schema of a table's columns |
//! | `encode.rs` | rows to datums, straight from Arrow arrays |
//! | `datum.rs` | one datum to an apache-avro value (strict about truncated input) |
//! | `decode.rs` | the record decoders (resolving writer to reader schema), bad records one by one |
//! | `rows.rs` | apache-avro values appended to Arrow columns, a bad record rolled back |
//! | `registry.rs` | the Schema Registry REST client (blocking, plain http) |

mod datum;
mod decode;
mod encode;
mod registry;
mod rows;
mod schema;
#[cfg(test)]
mod tests;

use apache_avro::Schema as AvroSchema;
use arrow::datatypes::SchemaRef;

use self::encode::RowWriter;
use self::registry::Registry;
use crate::format::record::{RecordDecoder, RecordEncoder};
use crate::{ConnectorError, Options, Result};

/// Options of the `avro` format (with their `avro.` prefix).
pub(crate) const AVRO_OPTIONS: &[&str] = &["avro.encoding", "avro.codec", "avro.timestamp_mapping.legacy"];

/// Options of the `avro-confluent` format (with their `avro-confluent.` prefix). The
/// `schema-registry.*` keys are Flink's older names of `url`, `subject` and `schema`; the
/// `properties.*` keys are the Confluent client settings Eddy understands.
pub(crate) const CONFLUENT_OPTIONS: &[&str] = &[
    "avro-confluent.url",
    "avro-confluent.subject",
    "avro-confluent.schema",
    "avro-confluent.schema-registry.url",
    "avro-confluent.schema-registry.subject",
    "avro-confluent.schema-registry.schema",
    "avro-confluent.auto.register.schemas",
    "avro-confluent.basic-auth.credentials-source",
    "avro-confluent.basic-auth.user-info",
    "avro-confluent.bearer-auth.credentials-source",
    "avro-confluent.bearer-auth.token",
    "avro-confluent.ssl.keystore.location",
    "avro-confluent.ssl.keystore.password",
    "avro-confluent.ssl.truststore.location",
    "avro-confluent.ssl.truststore.password",
    "avro-confluent.properties.basic.auth.credentials.source",
    "avro-confluent.properties.basic.auth.user.info",
    "avro-confluent.properties.bearer.auth.credentials.source",
    "avro-confluent.properties.bearer.auth.token",
];

/// Check the format's options and that the table's columns have an Avro schema (and, with
/// `avro-confluent.schema`, that the columns fit the user's schema).
pub(crate) fn validate(table: &str, options: &Options, schema: &SchemaRef, confluent: bool) -> Result<()> {
    if confluent {
        let config = ConfluentConfig::parse(table, options)?;
        table_schema(table, schema, config.schema.as_deref(), true, true).map(|_| ())
    } else {
        let legacy = avro_legacy_timestamps(table, options)?;
        table_schema(table, schema, None, legacy, false).map(|_| ())
    }
}

/// A decoder of records into rows of `schema`. `default_subject` is not needed to read
/// (schema ids are global) and is accepted for symmetry with [`encoder`].
pub(crate) fn decoder(
    table: &str,
    options: &Options,
    schema: SchemaRef,
    confluent: bool,
    _default_subject: &str,
) -> Result<Box<dyn RecordDecoder>> {
    if confluent {
        let config = ConfluentConfig::parse(table, options)?;
        let reader = table_schema(table, &schema, config.schema.as_deref(), true, true)?;
        Ok(Box::new(decode::ConfluentDecoder::new(schema, reader.avro, config.registry())))
    } else {
        let legacy = avro_legacy_timestamps(table, options)?;
        let avro = table_schema(table, &schema, None, legacy, false)?.avro;
        let datum = datum::DatumReader::new(avro).map_err(|e| ConnectorError::options(table, e))?;
        Ok(Box::new(decode::AvroDecoder { schema, datum }))
    }
}

/// An encoder of rows of `schema`, one record per row. `default_subject` (`<topic>-value`
/// or `<topic>-key`; empty when the connector has none) is the registry subject unless
/// `avro-confluent.subject` is set.
pub(crate) fn encoder(
    table: &str,
    options: &Options,
    schema: SchemaRef,
    confluent: bool,
    default_subject: &str,
) -> Result<Box<dyn RecordEncoder>> {
    if confluent {
        let config = ConfluentConfig::parse(table, options)?;
        let writer = table_schema(table, &schema, config.schema.as_deref(), true, true)?;
        let subject = match (&config.subject, default_subject) {
            (Some(subject), _) => subject.clone(),
            (None, subject) if !subject.is_empty() => subject.to_string(),
            (None, _) => {
                return Err(ConnectorError::options(
                    table,
                    "format 'avro-confluent' needs option 'avro-confluent.subject' to write",
                ))
            }
        };
        Ok(Box::new(encode::ConfluentEncoder {
            table: table.to_string(),
            rows: writer.rows,
            schema: writer.text,
            subject,
            auto_register: config.auto_register,
            registry: config.registry(),
            id: None,
        }))
    } else {
        let legacy = avro_legacy_timestamps(table, options)?;
        let rows = table_schema(table, &schema, None, legacy, false)?.rows;
        Ok(Box::new(encode::AvroEncoder { table: table.to_string(), rows }))
    }
}

/// The Avro schema of a table, parsed, and how its rows are written.
struct TableSchema {
    /// As JSON text (what is registered).
    text: String,
    avro: AvroSchema,
    rows: RowWriter,
}

/// The table's Avro schema: the user's (`user`, from `avro-confluent.schema`) or derived.
fn table_schema(
    table: &str,
    schema: &SchemaRef,
    user: Option<&str>,
    legacy_timestamps: bool,
    confluent: bool,
) -> Result<TableSchema> {
    let format = if confluent { "avro-confluent" } else { "avro" };
    let error = |message: String| ConnectorError::options(table, format!("format '{format}': {message}"));
    let text = match user {
        Some(text) => text.to_string(),
        None => schema::derive(schema.fields(), legacy_timestamps).map_err(error)?,
    };
    let avro = AvroSchema::parse_str(&text).map_err(|e| match user {
        Some(_) => error(format!("option 'avro-confluent.schema' is not a valid Avro schema: {e}")),
        None => error(format!("the table's columns give an invalid Avro schema: {e}")),
    })?;
    let rows = RowWriter::compile(schema.fields(), &avro).map_err(|e| match user {
        Some(_) => error(format!("the table does not match option 'avro-confluent.schema': {e}")),
        None => error(e),
    })?;
    Ok(TableSchema { text, avro, rows })
}

/// Check the `avro.*` options; returns `avro.timestamp_mapping.legacy`.
fn avro_legacy_timestamps(table: &str, options: &Options) -> Result<bool> {
    match options.get("avro.encoding").map(str::to_ascii_lowercase).as_deref() {
        None | Some("binary") => {}
        Some("json") => {
            return Err(ConnectorError::options(table, "'avro.encoding' = 'json' is not supported in Eddy yet"))
        }
        Some(other) => {
            return Err(ConnectorError::options(
                table,
                format!("option 'avro.encoding' = '{other}' must be 'binary' or 'json'"),
            ))
        }
    }
    // The codec compresses Avro container files (the filesystem connector); records are
    // never compressed by it, as in Flink. Checked only.
    if let Some(codec) = options.get("avro.codec") {
        if !["null", "deflate", "snappy", "bzip2", "xz", "zstandard"].contains(&codec.to_ascii_lowercase().as_str()) {
            return Err(ConnectorError::options(
                table,
                format!("option 'avro.codec' = '{codec}' must be one of null, deflate, snappy, bzip2, xz, zstandard"),
            ));
        }
    }
    options.bool_or(table, "avro.timestamp_mapping.legacy", true)
}

/// The checked `avro-confluent.*` options.
#[derive(Debug, Clone)]
struct ConfluentConfig {
    urls: Vec<String>,
    subject: Option<String>,
    /// The user's schema (`avro-confluent.schema`).
    schema: Option<String>,
    auto_register: bool,
    /// The `Authorization` header.
    authorization: Option<String>,
}

impl ConfluentConfig {
    fn parse(table: &str, o: &Options) -> Result<Self> {
        let err = |message: String| ConnectorError::options(table, message);
        let get = |key: &str, fallback: &str| {
            o.get(&format!("avro-confluent.{key}")).or_else(|| o.get(&format!("avro-confluent.{fallback}")))
        };
        let url = get("url", "schema-registry.url")
            .ok_or_else(|| err("missing required option 'avro-confluent.url'".into()))?;
        let mut urls = Vec::new();
        let mut url_user_info = None;
        for url in url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let lower = url.to_ascii_lowercase();
            if lower.starts_with("https://") {
                return Err(err(format!(
                    "option 'avro-confluent.url' = '{url}': Eddy's schema registry client speaks plain http only; \
                     https is not supported yet"
                )));
            }
            let Some(rest) = lower.strip_prefix("http://").map(|_| &url["http://".len()..]) else {
                return Err(err(format!("option 'avro-confluent.url' = '{url}' must be an http:// URL")));
            };
            // `http://user:password@host:port` carries credentials (credentials source URL).
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            let host = match authority.rsplit_once('@') {
                Some((user_info, host)) => {
                    url_user_info = Some(percent_decode(user_info));
                    host
                }
                None => authority,
            };
            urls.push(format!("http://{host}{}", path.trim_end_matches('/')));
        }
        if urls.is_empty() {
            return Err(err("option 'avro-confluent.url' is empty".into()));
        }
        if let Some(key) = o.keys().find(|k| k.starts_with("avro-confluent.ssl.")) {
            return Err(err(format!(
                "option '{key}' is not supported: Eddy's schema registry client speaks plain http only"
            )));
        }

        let basic_source = get("basic-auth.credentials-source", "properties.basic.auth.credentials.source");
        let user_info = get("basic-auth.user-info", "properties.basic.auth.user.info");
        let basic = match basic_source.map(str::to_ascii_uppercase).as_deref() {
            Some("USER_INFO") => Some(user_info.map(str::to_string).ok_or_else(|| {
                err("'avro-confluent.basic-auth.credentials-source' = 'USER_INFO' needs option \
                     'avro-confluent.basic-auth.user-info' ('user:password')"
                    .into())
            })?),
            Some("URL") => url_user_info,
            // Confluent's default source is URL, which ignores a user-info option; taking the
            // user-info when it is given is what the user meant.
            None => user_info.map(str::to_string).or(url_user_info),
            Some(other) => {
                return Err(err(format!(
                    "option 'avro-confluent.basic-auth.credentials-source' = '{other}' is not supported; \
                     use 'USER_INFO' or 'URL'"
                )))
            }
        };
        let bearer_source = get("bearer-auth.credentials-source", "properties.bearer.auth.credentials.source");
        let token = get("bearer-auth.token", "properties.bearer.auth.token");
        let bearer = match (bearer_source.map(str::to_ascii_uppercase).as_deref(), token) {
            (None, None) => None,
            (None | Some("STATIC_TOKEN"), Some(token)) => Some(token.to_string()),
            (Some("STATIC_TOKEN"), None) => {
                return Err(err("'avro-confluent.bearer-auth.credentials-source' = 'STATIC_TOKEN' needs option \
                     'avro-confluent.bearer-auth.token'"
                    .into()))
            }
            (Some(other), _) => {
                return Err(err(format!(
                    "option 'avro-confluent.bearer-auth.credentials-source' = '{other}' is not supported; \
                     use 'STATIC_TOKEN'"
                )))
            }
        };
        let authorization = match (basic, bearer) {
            (Some(_), Some(_)) => {
                return Err(err("the schema registry takes basic auth or a bearer token, not both".into()))
            }
            (Some(user_info), None) => {
                if !user_info.contains(':') {
                    return Err(err("option 'avro-confluent.basic-auth.user-info' must be 'user:password'".into()));
                }
                Some(format!("Basic {}", registry::base64(user_info.as_bytes())))
            }
            (None, Some(token)) => Some(format!("Bearer {token}")),
            (None, None) => None,
        };

        Ok(Self {
            urls,
            subject: get("subject", "schema-registry.subject").map(str::to_string),
            schema: get("schema", "schema-registry.schema").map(str::to_string),
            auto_register: o.bool_or(table, "avro-confluent.auto.register.schemas", true)?,
            authorization,
        })
    }

    fn registry(&self) -> Registry {
        Registry::new(self.urls.clone(), self.authorization.clone())
    }
}

/// `%XX` escapes decoded (user info in a URL).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A value that does not fit its column or its Avro type, and where it is (`a.b[2]`).
#[derive(Debug)]
pub(crate) struct ValueError {
    path: String,
    message: String,
}

impl ValueError {
    fn new(message: impl Into<String>) -> Self {
        Self { path: String::new(), message: message.into() }
    }

    /// The error one level up: inside `segment` (a field name, `[i]` or `['key']`).
    fn at(mut self, segment: &str) -> Self {
        self.path = match (self.path.is_empty(), self.path.starts_with('[')) {
            (true, _) => segment.to_string(),
            (false, true) => format!("{segment}{}", self.path),
            (false, false) => format!("{segment}.{}", self.path),
        };
        self
    }
}

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "column '{}': {}", self.path, self.message)
        }
    }
}
