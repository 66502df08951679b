//! The jdbc sink: buffers rows (the last change per key, for an upsert sink) and writes
//! them in one transaction when the buffer is full, when `sink.buffer-flush.interval` has
//! passed (a background timer, so rows of a quiet stream are not held), at every checkpoint
//! barrier and at the end. A failed write is retried `sink.max-retries` times on a new
//! connection, with a growing pause, before the job fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Int8Array, RecordBatch};
use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinHandle;

use super::literal::{ident, render_column};
use super::{Config, Dialect, ROWS_PER_STATEMENT};
use crate::{ConnectorError, ConnectorTable, Result, RowKind, Sink};

/// The last change of a key in the buffer.
enum Change {
    /// The row's literals.
    Upsert(Vec<String>),
    Delete,
}

/// Rows waiting to be written.
#[derive(Default)]
struct Buffer {
    /// Append mode: rows in order.
    appends: Vec<Vec<String>>,
    /// Upsert mode: key literals -> last change.
    changes: HashMap<Vec<String>, Change>,
}

impl Buffer {
    fn len(&self) -> usize {
        self.appends.len() + self.changes.len()
    }
}

/// A connection to the database.
pub(super) enum Connection {
    Postgres(tokio_postgres::Client),
    MySql(mysql_async::Conn),
}

/// What the sink and its timer share.
struct Writer {
    config: Config,
    /// Quoted column names and the target table.
    columns: Vec<String>,
    table: String,
    /// Primary key column indices (empty: append).
    key: Vec<usize>,
    buffer: Buffer,
    connection: Option<Connection>,
}

pub(crate) struct JdbcSink {
    writer: Arc<AsyncMutex<Writer>>,
    /// The first failure of a timed flush, reported by the sink's next call.
    failure: Arc<Mutex<Option<String>>>,
    timer: Option<JoinHandle<()>>,
    max_rows: usize,
    name: String,
}

impl JdbcSink {
    pub(crate) fn new(config: Config, t: &ConnectorTable) -> Result<Self> {
        let dialect = config.dialect;
        let columns = t.schema.fields().iter().map(|f| ident(f.name(), dialect)).collect();
        let table = config.table_name.iter().map(|p| ident(p, dialect)).collect::<Vec<_>>().join(".");
        let mut key = Vec::new();
        for k in &t.primary_key {
            key.push(
                t.schema.index_of(k).map_err(|_| {
                    ConnectorError::options(&t.name, format!("primary key column '{k}' is not a column"))
                })?,
            );
        }
        let max_rows = config.max_rows;
        let interval = config.interval;
        let writer = Arc::new(AsyncMutex::new(Writer {
            config,
            columns,
            table,
            key,
            buffer: Buffer::default(),
            connection: None,
        }));
        let failure = Arc::new(Mutex::new(None));
        let timer = interval.map(|every| tokio::spawn(flush_every(every, writer.clone(), failure.clone())));
        Ok(Self { writer, failure, timer, max_rows, name: t.name.clone() })
    }

    fn check_timer(&self) -> Result<()> {
        match self.failure.lock().ok().and_then(|mut f| f.take()) {
            Some(message) => Err(ConnectorError::Database { table: self.name.clone(), message }),
            None => Ok(()),
        }
    }
}

impl Drop for JdbcSink {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            t.abort();
        }
    }
}

/// Write the buffer every `every` (the rows of a quiet stream wait no longer than that).
async fn flush_every(every: Duration, writer: Arc<AsyncMutex<Writer>>, failure: Arc<Mutex<Option<String>>>) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let mut w = writer.lock().await;
        if w.buffer.len() == 0 {
            continue;
        }
        if let Err(e) = w.flush().await {
            if let Ok(mut f) = failure.lock() {
                f.get_or_insert(e.to_string());
            }
            return;
        }
    }
}

#[async_trait::async_trait]
impl Sink for JdbcSink {
    async fn write_batch(&mut self, batch: &RecordBatch, row_kinds: Option<&Int8Array>) -> Result<()> {
        self.check_timer()?;
        let mut w = self.writer.lock().await;
        w.buffer_rows(batch, row_kinds)?;
        if self.max_rows > 0 && w.buffer.len() >= self.max_rows {
            w.flush().await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        self.check_timer()?;
        self.writer.lock().await.flush().await
    }

    /// Every row before the barrier is in the database when the checkpoint completes.
    async fn pre_commit(&mut self, _epoch: u64) -> Result<Option<serde_json::Value>> {
        self.check_timer()?;
        self.writer.lock().await.flush().await?;
        Ok(None)
    }
}

impl Writer {
    fn error(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::Database { table: self.config.table.clone(), message: message.into() }
    }

    fn buffer_rows(&mut self, batch: &RecordBatch, row_kinds: Option<&Int8Array>) -> Result<()> {
        let dialect = self.config.dialect;
        let mut columns = Vec::with_capacity(batch.num_columns());
        for c in batch.columns() {
            columns.push(render_column(c, dialect).map_err(|e| self.error(format!("cannot write a value: {e}")))?);
        }
        for i in 0..batch.num_rows() {
            let kind = row_kinds.map_or(Ok(RowKind::Insert), |k| {
                RowKind::from_code(k.value(i)).ok_or_else(|| self.error(format!("bad row kind {}", k.value(i))))
            })?;
            let row: Vec<String> = columns.iter().map(|c| c[i].clone()).collect();
            if self.key.is_empty() {
                if kind != RowKind::Insert {
                    return Err(self.error(format!(
                        "a jdbc sink without a PRIMARY KEY appends rows and got a {kind} row; declare the \
                         table's PRIMARY KEY to write updates and deletes"
                    )));
                }
                self.buffer.appends.push(row);
                continue;
            }
            let key: Vec<String> = self.key.iter().map(|k| row[*k].clone()).collect();
            match kind {
                // The +U after it carries the new row (Flink's upsert sinks do the same).
                RowKind::UpdateBefore => {}
                RowKind::Delete => {
                    self.buffer.changes.insert(key, Change::Delete);
                }
                RowKind::Insert | RowKind::UpdateAfter => {
                    self.buffer.changes.insert(key, Change::Upsert(row));
                }
            }
        }
        Ok(())
    }

    /// Write the buffer in one transaction, retrying on a new connection.
    async fn flush(&mut self) -> Result<()> {
        if self.buffer.len() == 0 {
            return Ok(());
        }
        let statements = self.statements();
        let mut attempt = 0;
        loop {
            match self.execute(&statements).await {
                Ok(()) => break,
                Err(e) if attempt < self.config.max_retries => {
                    attempt += 1;
                    tracing::warn!(table = %self.config.table, attempt, error = %e, "jdbc write failed; retrying");
                    self.connection = None;
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                }
                Err(e) => {
                    return Err(self.error(format!(
                        "writing {} rows to {} failed after {} retries: {e}",
                        self.buffer.len(),
                        self.describe(),
                        self.config.max_retries
                    )))
                }
            }
        }
        self.buffer = Buffer::default();
        Ok(())
    }

    fn describe(&self) -> String {
        let db = match self.config.dialect {
            Dialect::Postgres => "postgresql",
            Dialect::MySql => "mysql",
        };
        format!("{db}://{}:{}/{} table {}", self.config.host, self.config.port, self.config.database, self.table)
    }

    /// The buffer as SQL: deletes, then inserts or upserts, a statement per
    /// [`ROWS_PER_STATEMENT`] rows. (Keys are unique in the buffer, so the order between
    /// keys does not matter.)
    fn statements(&self) -> Vec<String> {
        let mut out = Vec::new();
        let values =
            |rows: &[&Vec<String>]| rows.iter().map(|r| format!("({})", r.join(", "))).collect::<Vec<_>>().join(", ");
        let into = format!("INSERT INTO {} ({}) VALUES ", self.table, self.columns.join(", "));
        let appends: Vec<&Vec<String>> = self.buffer.appends.iter().collect();
        for chunk in appends.chunks(ROWS_PER_STATEMENT) {
            out.push(format!("{into}{}", values(chunk)));
        }
        let mut deletes = Vec::new();
        let mut upserts = Vec::new();
        for (key, change) in &self.buffer.changes {
            match change {
                Change::Delete => deletes.push(key),
                Change::Upsert(row) => upserts.push(row),
            }
        }
        for chunk in deletes.chunks(ROWS_PER_STATEMENT) {
            let conditions: Vec<String> = chunk.iter().map(|key| self.key_condition(key)).collect();
            out.push(format!("DELETE FROM {} WHERE {}", self.table, conditions.join(" OR ")));
        }
        let on_conflict = self.on_conflict();
        for chunk in upserts.chunks(ROWS_PER_STATEMENT) {
            out.push(format!("{into}{}{on_conflict}", values(chunk)));
        }
        out
    }

    /// `(k1 = v1 AND k2 IS NULL)` for one key.
    fn key_condition(&self, key: &[String]) -> String {
        let parts: Vec<String> = self
            .key
            .iter()
            .zip(key)
            .map(|(k, v)| match v.as_str() {
                "NULL" => format!("{} IS NULL", self.columns[*k]),
                v => format!("{} = {v}", self.columns[*k]),
            })
            .collect();
        format!("({})", parts.join(" AND "))
    }

    /// The upsert clause: every non-key column takes the new value.
    fn on_conflict(&self) -> String {
        let others: Vec<&String> =
            self.columns.iter().enumerate().filter(|(i, _)| !self.key.contains(i)).map(|(_, c)| c).collect();
        match self.config.dialect {
            Dialect::Postgres => {
                let keys: Vec<&str> = self.key.iter().map(|k| self.columns[*k].as_str()).collect();
                if others.is_empty() {
                    format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", "))
                } else {
                    let set: Vec<String> = others.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect();
                    format!(" ON CONFLICT ({}) DO UPDATE SET {}", keys.join(", "), set.join(", "))
                }
            }
            Dialect::MySql => {
                // With only key columns, a no-op update keeps the duplicate from failing.
                let set: Vec<String> = match others.is_empty() {
                    true => vec![format!("{0} = {0}", self.columns[self.key[0]])],
                    false => others.iter().map(|c| format!("{c} = VALUES({c})")).collect(),
                };
                format!(" ON DUPLICATE KEY UPDATE {}", set.join(", "))
            }
        }
    }

    /// Run `statements` in one transaction.
    async fn execute(&mut self, statements: &[String]) -> std::result::Result<(), String> {
        if self.connection.is_none() {
            self.connection = Some(self.connect().await?);
        }
        let Some(connection) = self.connection.as_mut() else { return Err("not connected".into()) };
        match connection {
            Connection::Postgres(client) => {
                let tx = client.transaction().await.map_err(|e| pg_error(&e))?;
                for s in statements {
                    tx.batch_execute(s).await.map_err(|e| pg_error(&e))?;
                }
                tx.commit().await.map_err(|e| pg_error(&e))
            }
            Connection::MySql(conn) => {
                use mysql_async::prelude::Queryable;
                let mut tx = conn.start_transaction(mysql_async::TxOpts::default()).await.map_err(|e| e.to_string())?;
                for s in statements {
                    tx.query_drop(s).await.map_err(|e| e.to_string())?;
                }
                tx.commit().await.map_err(|e| e.to_string())
            }
        }
    }

    async fn connect(&self) -> std::result::Result<Connection, String> {
        connect(&self.config, &self.describe()).await
    }
}

/// A connection to the database of `c` (`describe` names it in errors).
pub(super) async fn connect(c: &Config, describe: &str) -> std::result::Result<Connection, String> {
    match c.dialect {
        Dialect::Postgres => {
            let mut pg = tokio_postgres::Config::new();
            pg.host(&c.host).port(c.port).dbname(&c.database).connect_timeout(Duration::from_secs(10));
            if let Some(u) = &c.user {
                pg.user(u);
            }
            if let Some(p) = &c.password {
                pg.password(p);
            }
            let (client, connection) = pg
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("cannot connect to {describe}: {}", pg_error(&e)))?;
            let table = c.table.clone();
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%table, error = %e, "jdbc connection closed");
                }
            });
            Ok(Connection::Postgres(client))
        }
        Dialect::MySql => {
            let opts = mysql_async::OptsBuilder::default()
                .ip_or_hostname(c.host.clone())
                .tcp_port(c.port)
                .db_name((!c.database.is_empty()).then(|| c.database.clone()))
                .user(c.user.clone())
                .pass(c.password.clone());
            let conn = mysql_async::Conn::new(opts).await.map_err(|e| format!("cannot connect to {describe}: {e}"))?;
            Ok(Connection::MySql(conn))
        }
    }
}

/// The database's own message (tokio-postgres' Display says only "db error").
pub(super) fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}
