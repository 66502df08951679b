//! A jdbc table as a source: a bounded scan of the database table, as Flink's jdbc source.
//!
//! | option | meaning |
//! |---|---|
//! | `scan.partition.column` | a numeric column to split the read by (with the three below) |
//! | `scan.partition.num` | how many ranges: `WHERE column BETWEEN lo AND hi` each |
//! | `scan.partition.lower-bound`, `scan.partition.upper-bound` | the first range's start and the last one's end |
//! | `scan.fetch-size` | rows per round trip and per batch (default, and `0`: 8192) |
//! | `scan.auto-commit` | accepted (Flink's driver setting); the read is one read-only transaction per range |
//!
//! As in Flink, with the partition options only rows whose column is within the bounds are
//! read (NULLs and values outside are not), the ranges are spread over the parallel
//! subtasks (range `i` to subtask `i % parallelism`), and without them subtask 0 reads the
//! whole table. The ranges are Flink's: `upper - lower + 1` values in `num` ranges, the
//! first ones one value longer when it does not divide.
//!
//! Rows are read as text (PostgreSQL: a cursor `FETCH`ed `scan.fetch-size` rows at a time,
//! MySQL: one streamed query) on a task of their own, a few batches ahead, and cast to the
//! columns' types; a value that does not cast fails the job with the column and the value,
//! as Flink's does. Columns the job never reads are selected as `NULL`.
//!
//! A checkpoint taken while a range is being read is declined (the read has no order to
//! resume in); between ranges the position is the next range.

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, StringArray};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, SchemaRef};
use tokio::sync::mpsc;

use super::literal::ident;
use super::lookup::{mysql_text, TextRow};
use super::sink::{connect, pg_error, Connection};
use super::{Config, Dialect};
use crate::{ConnectorError, ConnectorTable, Result, Source, SourceBatch, Split};

/// Rows per batch when `scan.fetch-size` is 0 or not set.
const DEFAULT_FETCH_SIZE: usize = 8192;

/// Batches read ahead of the job.
const READ_AHEAD: usize = 4;

/// The scan options of a jdbc table.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ScanOptions {
    /// (column, ranges) when the read is split.
    pub partition: Option<(String, Vec<(i64, i64)>)>,
    pub fetch_size: usize,
}

/// The scan options (checked).
pub(super) fn scan_options(t: &ConnectorTable) -> Result<ScanOptions> {
    let o = &t.options;
    let name = &t.name;
    let column = o.get("scan.partition.column");
    let num = o.parse::<u64>(name, "scan.partition.num")?;
    let lower = o.parse::<i64>(name, "scan.partition.lower-bound")?;
    let upper = o.parse::<i64>(name, "scan.partition.upper-bound")?;
    o.parse::<bool>(name, "scan.auto-commit")?;
    let fetch_size = match o.parse::<usize>(name, "scan.fetch-size")? {
        None | Some(0) => DEFAULT_FETCH_SIZE,
        Some(n) => n,
    };
    let partition = match (column, num, lower, upper) {
        (None, None, None, None) => None,
        (Some(column), Some(num), Some(lower), Some(upper)) => {
            let field = t.schema.field_with_name(column).map_err(|_| {
                ConnectorError::options(
                    name,
                    format!("'scan.partition.column' = '{column}' is not a column of the table"),
                )
            })?;
            if !field.data_type().is_integer() && !matches!(field.data_type(), DataType::Decimal128(_, 0)) {
                return Err(ConnectorError::options(
                    name,
                    format!(
                        "'scan.partition.column' = '{column}' has type {}; it must be an integer column, as the \
                         bounds are integers",
                        field.data_type()
                    ),
                ));
            }
            if num == 0 || lower > upper {
                return Err(ConnectorError::options(
                    name,
                    format!(
                        "'scan.partition.num' = {num} with bounds [{lower}, {upper}]: need at least one range and \
                         'scan.partition.lower-bound' <= 'scan.partition.upper-bound'"
                    ),
                ));
            }
            Some((column.to_string(), ranges(lower, upper, num)))
        }
        _ => {
            return Err(ConnectorError::options(
                name,
                "the options 'scan.partition.column', 'scan.partition.num', 'scan.partition.lower-bound' and \
                 'scan.partition.upper-bound' must all be set, or none",
            ))
        }
    };
    if !t.metadata.is_empty() {
        return Err(ConnectorError::options(name, "the jdbc source has no metadata columns"));
    }
    for (i, field) in t.schema.fields().iter().enumerate() {
        if !readable(field.data_type()) {
            return Err(ConnectorError::options(
                name,
                format!(
                    "column {} '{}' has type {}, which the jdbc source cannot read",
                    i + 1,
                    field.name(),
                    field.data_type()
                ),
            ));
        }
    }
    Ok(ScanOptions { partition, fetch_size })
}

/// Whether a column of this type can be read from the database's text: what the sink
/// writes, but for binary strings (their text is an escaped form, not the bytes).
fn readable(t: &DataType) -> bool {
    use DataType::*;
    super::literal::supported(t) && !matches!(t, Null | Binary | LargeBinary | BinaryView | FixedSizeBinary(_))
}

/// Flink's ranges (`JdbcNumericBetweenParametersProvider`): `upper - lower + 1` values in
/// `num` ranges, the first ones one longer when it does not divide; never more ranges
/// than values.
fn ranges(lower: i64, upper: i64, num: u64) -> Vec<(i64, i64)> {
    let count = (upper as i128 - lower as i128 + 1) as u128;
    let num = (num as u128).min(count).max(1);
    let size = count.div_ceil(num);
    let big = count - (size - 1) * num;
    let mut out = Vec::with_capacity(num as usize);
    let mut start = lower as i128;
    for i in 0..num {
        let end = start + size as i128 - 1 - i128::from(i >= big);
        out.push((start as i64, end as i64));
        start = end + 1;
    }
    out
}

/// What the reading task sends.
enum Chunk {
    Rows(Vec<TextRow>),
    /// The range (query) ended.
    End,
}

/// One split of a jdbc scan.
pub(crate) struct JdbcSource {
    table: String,
    schema: SchemaRef,
    /// The split's queries (one per range), and the next to start.
    queries: Vec<String>,
    next_query: usize,
    /// Ranges fully returned.
    done: usize,
    /// Rows returned of the range being read (none: between ranges).
    in_range: bool,
    config: Config,
    fetch_size: usize,
    incoming: Option<mpsc::Receiver<std::result::Result<Chunk, String>>>,
}

impl JdbcSource {
    pub(crate) fn new(t: &ConnectorTable, split: Split, position: Option<&serde_json::Value>) -> Result<Self> {
        let config = Config::from_table(t)?;
        let scan = scan_options(t)?;
        let dialect = config.dialect;
        // Unread columns are selected as NULL (unless declared NOT NULL).
        let unread: Vec<usize> = t.unread.iter().filter(|(_, f)| f.is_none()).map(|(c, _)| *c).collect();
        let select: Vec<String> = t
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(
                |(i, f)| {
                    if unread.contains(&i) && f.is_nullable() {
                        "NULL".to_string()
                    } else {
                        ident(f.name(), dialect)
                    }
                },
            )
            .collect();
        let table: Vec<String> = config.table_name.iter().map(|p| ident(p, dialect)).collect();
        let base = format!("SELECT {} FROM {}", select.join(", "), table.join("."));
        let queries: Vec<String> = match &scan.partition {
            None if split.index == 0 => vec![base],
            None => Vec::new(),
            Some((column, ranges)) => ranges
                .iter()
                .enumerate()
                .filter(|(i, _)| i % split.count.max(1) == split.index)
                .map(|(_, (lo, hi))| format!("{base} WHERE {} BETWEEN {lo} AND {hi}", ident(column, dialect)))
                .collect(),
        };
        let done = match position {
            None => 0,
            Some(p) => p.get("ranges_done").and_then(|v| v.as_u64()).map(|n| n as usize).ok_or_else(|| {
                ConnectorError::checkpoint(&t.name, format!("jdbc source position {p} has no 'ranges_done'"))
            })?,
        };
        if done > queries.len() {
            return Err(ConnectorError::checkpoint(
                &t.name,
                format!("the checkpoint says {done} ranges were read, but this split has {}", queries.len()),
            ));
        }
        Ok(Self {
            table: t.name.clone(),
            schema: t.schema.clone(),
            queries,
            next_query: done,
            done,
            in_range: false,
            config,
            fetch_size: scan.fetch_size,
            incoming: None,
        })
    }

    /// Start reading the split's remaining ranges on a task of its own.
    fn start(&mut self) {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let queries = self.queries[self.next_query..].to_vec();
        self.next_query = self.queries.len();
        let config = self.config.clone();
        let fetch_size = self.fetch_size;
        tokio::spawn(async move {
            if let Err(e) = read_ranges(&config, &queries, fetch_size, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        self.incoming = Some(rx);
    }

    /// The rows as a batch of the table's columns.
    fn batch(&self, rows: &[TextRow]) -> Result<RecordBatch> {
        let strict = CastOptions { safe: false, ..Default::default() };
        let columns = self
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(c, field)| {
                let text: StringArray = rows.iter().map(|r| r.get(c).cloned().flatten()).collect();
                let target = field.data_type();
                cast_with_options(&text, target, &strict).map_err(|e| {
                    // Name the first value that does not cast.
                    let lenient = cast_with_options(&text, target, &CastOptions::default()).ok();
                    let bad = lenient.and_then(|l| (0..text.len()).find(|&i| text.is_valid(i) && l.is_null(i)));
                    let shown = bad.map(|i| format!(" (value '{}')", text.value(i))).unwrap_or_default();
                    ConnectorError::Database {
                        table: self.table.clone(),
                        message: format!("column '{}' does not read as {target}{shown}: {e}", field.name()),
                    }
                })
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        for (c, (field, column)) in self.schema.fields().iter().zip(&columns).enumerate() {
            if !field.is_nullable() && column.null_count() > 0 {
                return Err(ConnectorError::Database {
                    table: self.table.clone(),
                    message: format!(
                        "column {} '{}' is declared NOT NULL but the database has NULLs",
                        c + 1,
                        field.name()
                    ),
                });
            }
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(|e| ConnectorError::arrow(format!("jdbc source {}", self.table), e))
    }
}

#[async_trait::async_trait]
impl Source for JdbcSource {
    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        if self.done == self.queries.len() {
            return Ok(None);
        }
        let table = self.table.clone();
        if self.incoming.is_none() {
            self.start();
        }
        loop {
            let received = match self.incoming.as_mut() {
                Some(rx) => rx.recv().await,
                None => None,
            };
            match received {
                Some(Ok(Chunk::Rows(rows))) => {
                    self.in_range = true;
                    return self.batch(&rows).map(|b| Some(SourceBatch::rows(b)));
                }
                Some(Ok(Chunk::End)) => {
                    self.in_range = false;
                    self.done += 1;
                    if self.done == self.queries.len() {
                        return Ok(None);
                    }
                }
                Some(Err(message)) => return Err(ConnectorError::Database { table, message }),
                None => return Err(ConnectorError::Database { table, message: "the database reader stopped".into() }),
            }
        }
    }

    fn position(&self) -> Option<serde_json::Value> {
        (!self.in_range).then(|| serde_json::json!({ "ranges_done": self.done }))
    }
}

/// Read each query's rows, `fetch_size` at a time, into `tx` (each query's end marked).
async fn read_ranges(
    config: &Config,
    queries: &[String],
    fetch_size: usize,
    tx: &mpsc::Sender<std::result::Result<Chunk, String>>,
) -> std::result::Result<(), String> {
    let describe = format!(
        "{}://{}:{}/{} table {}",
        if config.dialect == Dialect::Postgres { "postgresql" } else { "mysql" },
        config.host,
        config.port,
        config.database,
        config.table
    );
    let mut connection = connect(config, &describe).await?;
    // The job stopped reading: stop quietly.
    let stopped = || String::from("stopped");
    for query in queries {
        match &mut connection {
            Connection::Postgres(client) => {
                // Timestamps with a zone print in UTC; a cursor reads fetch_size rows per trip.
                client
                    .batch_execute(&format!(
                        "BEGIN READ ONLY; SET LOCAL TIME ZONE 'UTC'; SET LOCAL DateStyle = 'ISO'; \
                         DECLARE eddy_scan NO SCROLL CURSOR FOR {query}"
                    ))
                    .await
                    .map_err(|e| format!("reading {describe}: {}", pg_error(&e)))?;
                loop {
                    let mut rows: Vec<TextRow> = Vec::with_capacity(fetch_size);
                    for m in client
                        .simple_query(&format!("FETCH {fetch_size} FROM eddy_scan"))
                        .await
                        .map_err(|e| format!("reading {describe}: {}", pg_error(&e)))?
                    {
                        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                            rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
                        }
                    }
                    let last = rows.len() < fetch_size;
                    if !rows.is_empty() && tx.send(Ok(Chunk::Rows(rows))).await.is_err() {
                        return Err(stopped());
                    }
                    if last {
                        break;
                    }
                }
                client.batch_execute("CLOSE eddy_scan; COMMIT").await.map_err(|e| pg_error(&e))?;
            }
            Connection::MySql(conn) => {
                use mysql_async::prelude::Queryable;
                conn.query_drop("SET time_zone = '+00:00'").await.map_err(|e| format!("reading {describe}: {e}"))?;
                let mut result =
                    conn.query_iter(query.as_str()).await.map_err(|e| format!("reading {describe}: {e}"))?;
                let mut rows: Vec<TextRow> = Vec::with_capacity(fetch_size);
                while let Some(r) = result.next().await.map_err(|e| format!("reading {describe}: {e}"))? {
                    rows.push(mysql_text(&r));
                    if rows.len() == fetch_size {
                        let full = std::mem::replace(&mut rows, Vec::with_capacity(fetch_size));
                        if tx.send(Ok(Chunk::Rows(full))).await.is_err() {
                            return Err(stopped());
                        }
                    }
                }
                if !rows.is_empty() && tx.send(Ok(Chunk::Rows(rows))).await.is_err() {
                    return Err(stopped());
                }
            }
        }
        if tx.send(Ok(Chunk::End)).await.is_err() {
            return Err(stopped());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn ranges_are_flinks() {
        // Flink: 10 values in 3 ranges -> [1,4] [5,7] [8,10].
        assert_eq!(ranges(1, 10, 3), vec![(1, 4), (5, 7), (8, 10)]);
        assert_eq!(ranges(0, 99, 4), vec![(0, 24), (25, 49), (50, 74), (75, 99)]);
        assert_eq!(ranges(5, 5, 3), vec![(5, 5)]);
        assert_eq!(ranges(-3, 2, 2), vec![(-3, -1), (0, 2)]);
        assert_eq!(ranges(i64::MIN, i64::MAX, 2), vec![(i64::MIN, -1), (0, i64::MAX)]);
    }
}
