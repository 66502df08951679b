//! A jdbc table as the lookup side of a lookup join (`JOIN t FOR SYSTEM_TIME AS OF
//! o.proctime ON o.k = t.k`): the rows of a key are read from the database when a row
//! with that key arrives, through a cache, with Flink's options:
//!
//! | option | meaning |
//! |---|---|
//! | `lookup.cache` | `NONE` (default) or `PARTIAL` (`FULL` is not built yet) |
//! | `lookup.partial-cache.max-rows` | keys cached at most (the oldest read goes first) |
//! | `lookup.partial-cache.expire-after-write` | a cached key is read again after this long |
//! | `lookup.partial-cache.expire-after-access` | ... or after this long unused |
//! | `lookup.partial-cache.cache-missing-key` | cache keys without rows too (default true) |
//! | `lookup.cache.max-rows`, `lookup.cache.ttl`, `lookup.cache.caching-missing-key` | the older names: a cache when both of the first two are set |
//! | `lookup.max-retries` | retries of a failed read, each on a new connection (default 3) |
//!
//! The operator calls [`JdbcLookup::lookup`] (through `crate::LookupTable`) from its (synchronous) batch processing, so the
//! database client runs on a thread of its own with its own runtime: a lookup blocks the
//! calling task until the answer comes, whatever runtime it runs on. Rows come back as the
//! database's text for each column (`NULL` as `None`), which the caller casts to the
//! columns' types; keys go out as SQL literals of the key values (see `literal`), one
//! SELECT per key not cached.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arrow::array::ArrayRef;

use super::literal::{ident, render_column};
use super::sink::{connect, pg_error, Connection};
use super::{Config, Dialect};
use crate::{ConnectorError, ConnectorTable, Result};

/// One row of the lookup table: each column's text.
pub type TextRow = Vec<Option<String>>;

/// Options of the lookup cache.
#[derive(Debug, Clone, PartialEq)]
struct CacheOptions {
    max_rows: usize,
    expire_after_write: Option<Duration>,
    expire_after_access: Option<Duration>,
    cache_missing: bool,
}

/// The lookup options of a jdbc table (`None` cache: every lookup reads the database).
fn cache_options(t: &ConnectorTable) -> Result<Option<CacheOptions>> {
    let o = &t.options;
    let name = &t.name;
    let legacy_rows = o.parse::<usize>(name, "lookup.cache.max-rows")?;
    let legacy_ttl = o.duration(name, "lookup.cache.ttl")?;
    let Some(mode) = o.get("lookup.cache") else {
        // Flink's older options: a cache when both max-rows and ttl are set.
        return Ok(match (legacy_rows, legacy_ttl) {
            (Some(max_rows), Some(ttl)) => Some(CacheOptions {
                max_rows,
                expire_after_write: Some(ttl),
                expire_after_access: None,
                cache_missing: o.parse::<bool>(name, "lookup.cache.caching-missing-key")?.unwrap_or(true),
            }),
            _ => None,
        });
    };
    match mode.to_ascii_uppercase().as_str() {
        "NONE" => Ok(None),
        "PARTIAL" => Ok(Some(CacheOptions {
            max_rows: o.parse::<usize>(name, "lookup.partial-cache.max-rows")?.or(legacy_rows).unwrap_or(usize::MAX),
            expire_after_write: o.duration(name, "lookup.partial-cache.expire-after-write")?.or(legacy_ttl),
            expire_after_access: o.duration(name, "lookup.partial-cache.expire-after-access")?,
            cache_missing: o.parse::<bool>(name, "lookup.partial-cache.cache-missing-key")?.unwrap_or(true),
        })),
        "FULL" => Err(ConnectorError::options(
            name,
            "option 'lookup.cache' = 'FULL' is not supported yet in this version of Eddy; use 'PARTIAL' with \
             'lookup.partial-cache.max-rows' and 'lookup.partial-cache.expire-after-write'",
        )),
        other => Err(ConnectorError::options(
            name,
            format!("option 'lookup.cache' = '{other}' is none of NONE, PARTIAL, FULL"),
        )),
    }
}

/// A cached key: its rows, and when they were read and last used.
struct Cached {
    rows: std::sync::Arc<Vec<TextRow>>,
    written: Instant,
    accessed: Instant,
}

/// A request to the client thread: the keys' literals; the answer: each key's rows.
type Request = (Vec<Vec<String>>, mpsc::Sender<std::result::Result<Vec<Vec<TextRow>>, String>>);

/// The lookup side of a lookup join over a jdbc table.
pub struct JdbcLookup {
    name: String,
    dialect: Dialect,
    cache: Option<CacheOptions>,
    cached: HashMap<Vec<String>, Cached>,
    /// Cached keys in the order they were read (for `max_rows`); may hold keys read again
    /// since (checked against `written`).
    order: VecDeque<(Vec<String>, Instant)>,
    requests: mpsc::Sender<Request>,
}

impl JdbcLookup {
    /// A lookup of `columns` (names, in this order) of the jdbc table `t` by equality on
    /// `keys` (column names).
    pub fn new(t: &ConnectorTable, columns: &[String], keys: &[String]) -> Result<Self> {
        let config = Config::from_table(t)?;
        let cache = cache_options(t)?;
        let max_retries = t.options.parse::<u32>(&t.name, "lookup.max-retries")?.unwrap_or(3);
        let dialect = config.dialect;
        let select: Vec<String> = columns.iter().map(|c| ident(c, dialect)).collect();
        let table: Vec<String> = config.table_name.iter().map(|p| ident(p, dialect)).collect();
        let prefix = format!("SELECT {} FROM {} WHERE ", select.join(", "), table.join("."));
        let key_columns: Vec<String> = keys.iter().map(|k| ident(k, dialect)).collect();
        let (requests, incoming) = mpsc::channel::<Request>();
        let describe = format!(
            "{}://{}:{}/{} table {}",
            if dialect == Dialect::Postgres { "postgresql" } else { "mysql" },
            config.host,
            config.port,
            config.database,
            t.name
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ConnectorError::options(&t.name, format!("cannot start the lookup client: {e}")))?;
        std::thread::Builder::new()
            .name(format!("lookup-{}", t.name))
            .spawn(move || {
                let mut client = Client { config, describe, connection: None, max_retries };
                while let Ok((keys, answer)) = incoming.recv() {
                    let statements: Vec<String> = keys
                        .iter()
                        .map(|k| {
                            let conditions: Vec<String> =
                                key_columns.iter().zip(k).map(|(c, v)| format!("{c} = {v}")).collect();
                            format!("{prefix}{}", conditions.join(" AND "))
                        })
                        .collect();
                    let _ = answer.send(runtime.block_on(client.query_all(&statements)));
                }
            })
            .map_err(|e| ConnectorError::options(&t.name, format!("cannot start the lookup client: {e}")))?;
        Ok(Self { name: t.name.clone(), dialect, cache, cached: HashMap::new(), order: VecDeque::new(), requests })
    }

    /// The rows of each key: `keys` are the key columns, `rows` the indices of the keys to
    /// look up (no NULLs among them). Cached keys are answered from the cache, the others
    /// read from the database, one SELECT each, in one request.
    pub fn lookup(&mut self, keys: &[ArrayRef], rows: &[usize]) -> Result<Vec<std::sync::Arc<Vec<TextRow>>>> {
        let rendered: Vec<Vec<String>> = keys
            .iter()
            .map(|k| render_column(k, self.dialect).map_err(|e| self.error(format!("a lookup key: {e}"))))
            .collect::<Result<_>>()?;
        let literals: Vec<Vec<String>> =
            rows.iter().map(|&i| rendered.iter().map(|c| c[i].clone()).collect()).collect();
        let now = Instant::now();
        self.evict(now);
        let mut missing: Vec<Vec<String>> = Vec::new();
        for key in &literals {
            if !self.cached.contains_key(key) && !missing.contains(key) {
                missing.push(key.clone());
            }
        }
        let mut read: HashMap<Vec<String>, std::sync::Arc<Vec<TextRow>>> = HashMap::new();
        if !missing.is_empty() {
            let (answer, reply) = mpsc::channel();
            self.requests.send((missing.clone(), answer)).map_err(|_| self.error("the lookup client stopped"))?;
            let found =
                reply.recv().map_err(|_| self.error("the lookup client stopped"))?.map_err(|e| self.error(e))?;
            for (key, rows) in missing.into_iter().zip(found) {
                let rows = std::sync::Arc::new(rows);
                if let Some(cache) = &self.cache {
                    if !rows.is_empty() || cache.cache_missing {
                        self.order.push_back((key.clone(), now));
                        self.cached.insert(key.clone(), Cached { rows: rows.clone(), written: now, accessed: now });
                    }
                }
                read.insert(key, rows);
            }
            self.trim();
        }
        Ok(literals
            .into_iter()
            .map(|key| match self.cached.get_mut(&key) {
                Some(c) => {
                    c.accessed = now;
                    c.rows.clone()
                }
                None => read.get(&key).cloned().unwrap_or_default(),
            })
            .collect())
    }

    /// Drops the cached keys that expired.
    fn evict(&mut self, now: Instant) {
        let Some(cache) = &self.cache else { return };
        let (write, access) = (cache.expire_after_write, cache.expire_after_access);
        if write.is_none() && access.is_none() {
            return;
        }
        self.cached.retain(|_, c| {
            write.is_none_or(|w| now.duration_since(c.written) < w)
                && access.is_none_or(|a| now.duration_since(c.accessed) < a)
        });
        let cached = &self.cached;
        self.order.retain(|(k, at)| cached.get(k).is_some_and(|c| c.written == *at));
    }

    /// Keeps at most `max_rows` keys, dropping the ones read longest ago.
    fn trim(&mut self) {
        let Some(cache) = &self.cache else { return };
        while self.cached.len() > cache.max_rows {
            let Some((key, at)) = self.order.pop_front() else { break };
            if self.cached.get(&key).is_some_and(|c| c.written == at) {
                self.cached.remove(&key);
            }
        }
    }

    fn error(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::Database { table: self.name.clone(), message: message.into() }
    }
}

/// The database side, on the client thread.
struct Client {
    config: Config,
    describe: String,
    connection: Option<Connection>,
    max_retries: u32,
}

impl Client {
    /// Each statement's rows, retrying on a new connection.
    async fn query_all(&mut self, statements: &[String]) -> std::result::Result<Vec<Vec<TextRow>>, String> {
        let mut attempt = 0;
        loop {
            match self.try_query_all(statements).await {
                Ok(rows) => return Ok(rows),
                Err(e) if attempt >= self.max_retries => {
                    return Err(format!("lookup in {} failed after {attempt} retries: {e}", self.describe))
                }
                Err(e) => {
                    tracing::warn!(table = %self.config.table, error = %e, "lookup failed; retrying on a new connection");
                    self.connection = None;
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
                }
            }
        }
    }

    async fn try_query_all(&mut self, statements: &[String]) -> std::result::Result<Vec<Vec<TextRow>>, String> {
        if self.connection.is_none() {
            self.connection = Some(connect(&self.config, &self.describe).await?);
        }
        let Some(connection) = self.connection.as_mut() else { return Err("not connected".into()) };
        let mut out = Vec::with_capacity(statements.len());
        for s in statements {
            let mut rows = Vec::new();
            match connection {
                Connection::Postgres(client) => {
                    for m in client.simple_query(s).await.map_err(|e| pg_error(&e))? {
                        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                            rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
                        }
                    }
                }
                Connection::MySql(conn) => {
                    use mysql_async::prelude::Queryable;
                    let result: Vec<mysql_async::Row> = conn.query(s.as_str()).await.map_err(|e| e.to_string())?;
                    rows.extend(result.iter().map(mysql_text));
                }
            }
            out.push(rows);
        }
        Ok(out)
    }
}

/// A MySQL/MariaDB row as each column's text (the text protocol sends every value as its
/// text; `NULL` as `None`).
pub(super) fn mysql_text(r: &mysql_async::Row) -> TextRow {
    (0..r.len())
        .map(|i| match r.as_ref(i) {
            None | Some(mysql_async::Value::NULL) => None,
            Some(mysql_async::Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Some(other) => Some(other.as_sql(true).trim_matches('\'').to_string()),
        })
        .collect()
}

/// The cache options as plain values, for the connector's tests.
#[cfg(test)]
pub(super) mod tests_support {
    use super::*;

    /// (max rows, expire after write, expire after access, cache missing keys).
    pub(in crate::jdbc) fn cache_of(
        t: &ConnectorTable,
    ) -> Result<Option<(usize, Option<Duration>, Option<Duration>, bool)>> {
        Ok(cache_options(t)?.map(|c| (c.max_rows, c.expire_after_write, c.expire_after_access, c.cache_missing)))
    }
}
