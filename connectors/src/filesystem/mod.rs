//! The `filesystem` connector: reads files of a directory (or one file) and writes part
//! files, as Flink's `filesystem` connector.
//!
//! Why: files are how batch data arrives and how results leave a pipeline with no other
//! system around; Flink's layout (hidden in-progress files, `part-<uuid>-<subtask>-<n>`,
//! `k=v/` partition directories) keeps the output readable by the same tools. This module
//! holds what source and sink share: options, the path, and partition directory names.

#[cfg(test)]
mod checkpoint_tests;
pub(crate) mod lookup;
#[cfg(test)]
mod lookup_tests;
mod parquet;
mod partition_commit;
mod sink;
mod source;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use crate::format::Format;
use crate::{ConnectorError, ConnectorTable, Result, Sink, Source, Split};

/// Options of the connector itself (format options come from the format).
const OPTIONS: &[&str] = &[
    "connector",
    "path",
    "format",
    "partition.default-name",
    "sink.rolling-policy.file-size",
    "sink.rolling-policy.rollover-interval",
    "sink.rolling-policy.check-interval",
    "sink.rolling-policy.inactivity-interval",
    "sink.partition-commit.policy.kind",
    "sink.partition-commit.success-file.name",
    "sink.parallelism",
];

/// Metadata keys the source provides, as Flink's filesystem source.
pub(crate) const METADATA_KEYS: &[&str] = &["file.path", "file.name", "file.size", "file.modification-time"];

/// Flink's name for the partition directory of a NULL or empty value.
const DEFAULT_PARTITION_NAME: &str = "__DEFAULT_PARTITION__";

/// The checked options shared by source and sink.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) path: PathBuf,
    pub(crate) format: Format,
    pub(crate) default_partition: String,
}

impl Config {
    pub(crate) fn parse(table: &ConnectorTable) -> Result<Self> {
        let name = table.name.as_str();
        let o = &table.options;
        let format = Format::of(name, o)?.for_files(name)?;
        if o.get("source.monitor-interval").is_some() {
            return Err(ConnectorError::options(
                name,
                "option 'source.monitor-interval' (watching a directory for new files) is not supported \
                 yet in this version of Eddy; the filesystem source reads the files present at start",
            ));
        }
        for key in o.keys() {
            if !OPTIONS.contains(&key)
                && !partition_commit::OPTIONS.contains(&key)
                && !lookup::LOOKUP_OPTIONS.contains(&key)
                && !format.knows(key)
            {
                return Err(ConnectorError::options(
                    name,
                    format!(
                        "unsupported option '{key}' for connector 'filesystem' with format '{}'; supported: {}",
                        format.name(),
                        OPTIONS
                            .iter()
                            .chain(partition_commit::OPTIONS)
                            .chain(lookup::LOOKUP_OPTIONS)
                            .chain(format.known_options())
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        for key in &table.partition_keys {
            if table.schema.field_with_name(key).is_err() {
                return Err(ConnectorError::options(name, format!("partition column '{key}' is not a column")));
            }
        }
        Ok(Self {
            path: local_path(name, o.required(name, "path")?)?,
            format,
            default_partition: o.get("partition.default-name").unwrap_or(DEFAULT_PARTITION_NAME).to_string(),
        })
    }
}

/// A local path from `path` (plain, or a `file:` URI); other schemes are not supported yet.
fn local_path(table: &str, path: &str) -> Result<PathBuf> {
    if let Some(rest) = path.strip_prefix("file://") {
        return Ok(PathBuf::from(rest));
    }
    if let Some(rest) = path.strip_prefix("file:") {
        return Ok(PathBuf::from(rest));
    }
    match path.split_once("://") {
        Some((scheme, _)) if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()) => {
            Err(ConnectorError::options(
                table,
                format!("path scheme '{scheme}://' is not supported yet in this version of Eddy; use a local path"),
            ))
        }
        _ => Ok(PathBuf::from(path)),
    }
}

/// Check options (no file is opened).
pub(crate) fn validate(table: &ConnectorTable, as_source: bool, as_sink: bool) -> Result<()> {
    let config = Config::parse(table)?;
    if as_source {
        source::check(table, &config)?;
    }
    if as_sink {
        sink::check(table, &config)?;
    }
    Ok(())
}

/// Build one subtask of the source, resumed at `position` if given.
pub(crate) fn create_source(
    table: &ConnectorTable,
    split: Split,
    position: Option<&serde_json::Value>,
) -> Result<Box<dyn Source>> {
    let config = Config::parse(table)?;
    source::create(table, config, split, position)
}

/// Build one subtask of the sink.
pub(crate) fn create_sink(table: &ConnectorTable, split: Split) -> Result<Box<dyn Sink>> {
    let config = Config::parse(table)?;
    sink::create(table, config, split)
}

/// Whether a partition value byte must be written as `%XX` in a directory name
/// (Flink's `PartitionPathUtils.escapePathName`).
fn needs_escape(c: char) -> bool {
    c < ' '
        || matches!(c, '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '\u{7f}' | '{' | '[' | ']' | '^')
}

/// A partition value as a directory-name component.
pub(crate) fn escape_partition_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if needs_escape(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of a partition directory-name component (`%XX` decoded).
pub(crate) fn unescape_partition_value(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| char::from(b).to_digit(16);
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
