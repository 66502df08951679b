//! `'connector' = 'jdbc'`: a sink into a PostgreSQL or MySQL/MariaDB table, with Flink's
//! options, the lookup side of lookup joins (see [`lookup`]) and a bounded scan of the
//! table as a source (see `source`).
//!
//! | option | meaning |
//! |---|---|
//! | `url` | `jdbc:postgresql://host[:port]/db`, `jdbc:mysql://...` or `jdbc:mariadb://...` (`?user=..&password=..` allowed) |
//! | `table-name` | the table in the database (`schema.table` allowed) |
//! | `username`, `password` | credentials (override the URL's) |
//! | `sink.buffer-flush.max-rows` | rows buffered before a write (default 100; 0: no limit) |
//! | `sink.buffer-flush.interval` | the longest a row waits in the buffer (default 1 s; 0: only at max-rows and checkpoints) |
//! | `sink.max-retries` | retries of a failed write before the job fails (default 3) |
//!
//! With a PRIMARY KEY the sink is an upsert sink, as Flink's: `+I`/`+U` rows are upserts
//! (`INSERT .. ON CONFLICT (key) DO UPDATE` / `ON DUPLICATE KEY UPDATE`), `-D` rows delete
//! by key, `-U` rows are skipped; the buffer keeps the last change per key. Without one it
//! appends (`INSERT`) and takes only inserts. Every checkpoint barrier writes the buffer,
//! so a restarted job loses nothing; upserts written again after a restart overwrite
//! themselves (exactly the final table), appends may be written twice (at-least-once).
//!
//! Rows are written as SQL literals in one statement per up to [`ROWS_PER_STATEMENT`] rows,
//! inside one transaction per flush: the database converts each literal to its column's
//! type, so any column type that accepts the value's text works, with one round trip per
//! statement (see [`literal`]).

mod literal;
pub mod lookup;
mod sink;
mod source;

use std::time::Duration;

use crate::{ConnectorError, ConnectorTable, Result, Sink, Split};

pub(crate) use sink::JdbcSink;

/// Rows per INSERT statement.
const ROWS_PER_STATEMENT: usize = 500;

/// The database's SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    MySql,
}

/// Where and how to write.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub table: String,
    pub dialect: Dialect,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The target table, as parts (`schema`, `table`).
    pub table_name: Vec<String>,
    pub max_rows: usize,
    pub interval: Option<Duration>,
    pub max_retries: u32,
}

const KNOWN: &[&str] = &[
    "connector",
    "url",
    "table-name",
    "username",
    "password",
    "driver",
    "sink.buffer-flush.max-rows",
    "sink.buffer-flush.interval",
    "sink.max-retries",
    "sink.parallelism",
    "connection.max-retry-timeout",
    "lookup.cache",
    "lookup.partial-cache.max-rows",
    "lookup.partial-cache.expire-after-write",
    "lookup.partial-cache.expire-after-access",
    "lookup.partial-cache.cache-missing-key",
    "lookup.cache.max-rows",
    "lookup.cache.ttl",
    "lookup.cache.caching-missing-key",
    "lookup.max-retries",
    "scan.partition.column",
    "scan.partition.num",
    "scan.partition.lower-bound",
    "scan.partition.upper-bound",
    "scan.fetch-size",
    "scan.auto-commit",
];

impl Config {
    pub(crate) fn from_table(t: &ConnectorTable) -> Result<Self> {
        let o = &t.options;
        let name = &t.name;
        if let Some(key) = o.keys().find(|k| !KNOWN.contains(k)) {
            return Err(ConnectorError::options(
                name,
                format!("unknown option '{key}' for connector 'jdbc'; known options: {}", KNOWN.join(", ")),
            ));
        }
        let url = o.required(name, "url")?;
        let mut config = parse_url(name, url)?;
        if let Some(u) = o.get("username") {
            config.user = Some(u.to_string());
        }
        if let Some(p) = o.get("password") {
            config.password = Some(p.to_string());
        }
        config.table_name = o.required(name, "table-name")?.split('.').map(str::to_string).collect();
        if config.table_name.iter().any(|p| p.trim().is_empty()) {
            return Err(ConnectorError::options(name, "option 'table-name' is empty or has an empty part"));
        }
        config.max_rows = o.parse::<usize>(name, "sink.buffer-flush.max-rows")?.unwrap_or(100);
        config.interval = match o.duration(name, "sink.buffer-flush.interval")? {
            None => Some(Duration::from_secs(1)),
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
        };
        config.max_retries = o.parse::<u32>(name, "sink.max-retries")?.unwrap_or(3);
        for (i, field) in t.schema.fields().iter().enumerate() {
            if !literal::supported(field.data_type()) {
                return Err(ConnectorError::options(
                    name,
                    format!(
                        "column {} '{}' has type {}, which the jdbc sink cannot write",
                        i + 1,
                        field.name(),
                        field.data_type()
                    ),
                ));
            }
        }
        for k in &t.primary_key {
            if t.schema.index_of(k).is_err() {
                return Err(ConnectorError::options(name, format!("primary key column '{k}' is not a column")));
            }
        }
        Ok(config)
    }
}

/// `jdbc:postgresql://host:port/db?user=u&password=p` and the MySQL/MariaDB forms.
fn parse_url(table: &str, url: &str) -> Result<Config> {
    let bad = |why: &str| {
        ConnectorError::options(
            table,
            format!(
                "option 'url' = '{url}' {why}; expected e.g. 'jdbc:postgresql://127.0.0.1:5432/db' or \
                 'jdbc:mysql://127.0.0.1:3306/db'"
            ),
        )
    };
    let rest = url.trim().strip_prefix("jdbc:").ok_or_else(|| bad("does not start with 'jdbc:'"))?;
    let (scheme, rest) = rest.split_once("://").ok_or_else(|| bad("has no '://'"))?;
    let (dialect, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "postgresql" | "postgres" => (Dialect::Postgres, 5432),
        "mysql" | "mariadb" => (Dialect::MySql, 3306),
        other => {
            return Err(bad(&format!("names database '{other}', which Eddy cannot write (PostgreSQL, MySQL, MariaDB)")))
        }
    };
    let (address, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let (database, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, port) = match address.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad(&format!("has port '{p}', not a number")))?),
        None => (address, default_port),
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let (mut user, mut password) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("user", v)) => user = Some(v.to_string()),
            Some(("password", v)) => password = Some(v.to_string()),
            // Driver settings (sslmode, useSSL, ...) mean nothing to Eddy's clients.
            _ => tracing::debug!(table, setting = pair, "jdbc url setting ignored"),
        }
    }
    Ok(Config {
        table: table.to_string(),
        dialect,
        host: host.to_string(),
        port,
        database: database.to_string(),
        user,
        password,
        table_name: Vec::new(),
        max_rows: 100,
        interval: None,
        max_retries: 3,
    })
}

pub(crate) fn validate(t: &ConnectorTable, as_source: bool) -> Result<()> {
    Config::from_table(t)?;
    if as_source {
        source::scan_options(t)?;
    }
    Ok(())
}

pub(crate) fn create_source(
    t: &ConnectorTable,
    split: Split,
    position: Option<&serde_json::Value>,
) -> Result<Box<dyn crate::Source>> {
    Ok(Box::new(source::JdbcSource::new(t, split, position)?))
}

pub(crate) fn create_sink(t: &ConnectorTable, _split: Split) -> Result<Box<dyn Sink>> {
    Ok(Box::new(JdbcSink::new(Config::from_table(t)?, t)?))
}

/// An upsert sink (PRIMARY KEY) consumes a changelog; without a key it appends.
pub(crate) fn accepts_updates(t: &ConnectorTable) -> bool {
    !t.primary_key.is_empty()
}

#[cfg(test)]
mod tests;
