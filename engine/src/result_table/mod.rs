//! Managed result tables: a `CREATE TABLE` with no `connector` is kept by Eddy.
//!
//! [`ResultTables`] is the set of them under one state directory
//! (`<state-dir>/tables/<name>/`). A job's sink into one applies its batches to the
//! table's rows in memory ([`store`]) and to its log on disk ([`log`]); queries read a
//! consistent [`Snapshot`] at any time, so a row a job emits is visible as soon as its
//! batch is applied. Without a PRIMARY KEY a table is append-only; with one, `+I`/`+U`
//! upsert and `-D` deletes. `'retention' = '1 h'` keeps an append-only table from growing
//! forever: rows older than that go, by the table's event-time column when it declares a
//! WATERMARK, by insert time otherwise.
//!
//! Exactly once: a checkpointing job's sink tags what it writes with its identity and the
//! epoch ([`BatchOrigin`]) and makes the log durable at each checkpoint barrier. Restarted
//! from checkpoint `n`, it first takes back the rows it wrote after `n`
//! ([`ResultTable::roll_back`]), which it is about to write again. Rows stay visible as soon
//! as they are written (readers do not wait for a checkpoint); after a crash, rows written
//! after the last checkpoint vanish until the job writes them again.

mod log;
mod sink;
mod source;
mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arrow::array::{ArrayRef, Int8Array, RecordBatch};
use arrow::datatypes::SchemaRef;
use thiserror::Error;
use tokio::sync::watch;

pub use sink::ResultTableSink;
pub use source::ResultTableSource;
pub use store::{BatchOrigin, Snapshot};

use store::TableRows;

/// Why a result table failed.
#[derive(Debug, Error)]
pub enum ResultTableError {
    /// Rows that do not fit, updates to an append-only table, bad options.
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing its files.
    #[error("{context}: {source}")]
    Io {
        /// The path.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Arrow refused rows or files.
    #[error("{context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// Its files are not what this table expects.
    #[error("{0}")]
    Corrupt(String),
}

impl ResultTableError {
    fn arrow(context: &'static str) -> impl Fn(arrow::error::ArrowError) -> Self {
        move |source| Self::Arrow { context: context.to_string(), source }
    }
}

/// How a table is declared: enough to open it.
#[derive(Debug, Clone)]
pub struct TableShape {
    /// Name (as in SQL).
    pub name: String,
    /// Columns the table stores (physical columns, as a sink receives them).
    pub schema: SchemaRef,
    /// `PRIMARY KEY` columns (empty: append-only).
    pub primary_key: Vec<String>,
    /// `'retention'`, with the event-time column it applies to (none: insert time).
    pub retention: Option<(Duration, Option<String>)>,
}

/// The result tables under one state directory.
#[derive(Debug)]
pub struct ResultTables {
    dir: PathBuf,
    tables: Mutex<HashMap<String, Arc<ResultTable>>>,
}

impl ResultTables {
    /// Tables stored under `<state_dir>/tables`; nothing is read or created until a table is
    /// opened.
    pub fn new(state_dir: impl Into<PathBuf>) -> Arc<Self> {
        Arc::new(Self { dir: state_dir.into().join("tables"), tables: Mutex::new(HashMap::new()) })
    }

    /// The state directory's `tables` folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The table, opened (its rows replayed from disk) on first use. A table already open
    /// with other columns is an error.
    pub fn open(&self, shape: &TableShape) -> Result<Arc<ResultTable>, ResultTableError> {
        let mut tables = self.tables.lock().map_err(|_| ResultTableError::Invalid("result tables poisoned".into()))?;
        if let Some(t) = tables.get(&shape.name) {
            if !same_columns(&t.schema, &shape.schema) || t.primary_key != shape.primary_key {
                return Err(ResultTableError::Invalid(format!(
                    "result table '{}' is open with other columns or another primary key",
                    shape.name
                )));
            }
            return Ok(t.clone());
        }
        let table = Arc::new(ResultTable::open(&self.dir.join(dir_name(&shape.name)), shape)?);
        tables.insert(shape.name.clone(), table.clone());
        Ok(table)
    }

    /// An open table.
    pub fn get(&self, name: &str) -> Option<Arc<ResultTable>> {
        self.tables.lock().ok()?.get(name).cloned()
    }

    /// Names of the open tables.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tables.lock().map(|t| t.keys().cloned().collect()).unwrap_or_default();
        names.sort();
        names
    }

    /// Forget a table and delete its rows (`DROP TABLE`).
    pub fn drop_table(&self, name: &str) -> Result<(), ResultTableError> {
        if let Ok(mut t) = self.tables.lock() {
            t.remove(name);
        }
        let dir = self.dir.join(dir_name(name));
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ResultTableError::Io { context: dir.display().to_string(), source: e }),
        }
    }
}

fn same_columns(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields()).all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// A directory name for a table name: letters, digits, `_` and `-` kept, the rest `%XX`.
fn dir_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One result table: rows in memory, log on disk.
pub struct ResultTable {
    name: String,
    schema: SchemaRef,
    primary_key: Vec<String>,
    retention: Option<(Duration, Option<usize>)>,
    rows: RwLock<TableRows>,
    log: Mutex<log::TableLog>,
    /// The version after each applied batch, for readers that wait for fresh rows.
    version: watch::Sender<u64>,
    /// Jobs reading the table's changes (see [`ResultTable::subscribe`]).
    subscribers: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Change>>>,
}

/// One applied batch, as a reading job receives it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The rows.
    pub batch: RecordBatch,
    /// Their kinds ([`eddy_connectors::RowKind`] codes); `None`: all inserts.
    pub row_kinds: Option<Int8Array>,
}

impl std::fmt::Debug for ResultTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultTable").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ResultTable {
    fn open(dir: &Path, shape: &TableShape) -> Result<Self, ResultTableError> {
        let mut rows = TableRows::new(shape.schema.clone(), &shape.primary_key)?;
        let (generation, batches) = log::replay(dir, &shape.schema)?;
        for (batch, kinds, origin) in &batches {
            rows.apply(batch, Some(kinds), *origin)?;
        }
        let retention = match &shape.retention {
            Some((keep, Some(column))) => {
                let i = shape.schema.index_of(column).map_err(|_| {
                    ResultTableError::Invalid(format!("retention column '{column}' is not a column of the table"))
                })?;
                Some((*keep, Some(i)))
            }
            Some((keep, None)) => Some((*keep, None)),
            None => None,
        };
        // Event-time retention holds for the rows replayed too (insert times are not
        // logged: replayed rows count as inserted now).
        if let Some((keep, Some(c))) = retention {
            rows.expire_by_time(c, keep)?;
        }
        let log = log::TableLog::start(dir, generation + 1, &shape.schema, &rows.live_batches_with_origin())?;
        tracing::debug!(table = %shape.name, rows = rows.num_rows(), generation = log.generation(), "result table opened");
        let version = watch::channel(rows.version()).0;
        Ok(Self {
            name: shape.name.clone(),
            schema: shape.schema.clone(),
            primary_key: shape.primary_key.clone(),
            retention,
            rows: RwLock::new(rows),
            log: Mutex::new(log),
            version,
            subscribers: Mutex::new(Vec::new()),
        })
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Columns.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// `PRIMARY KEY` columns (empty: append-only).
    pub fn primary_key(&self) -> &[String] {
        &self.primary_key
    }

    /// Apply one batch of changes: visible to the next snapshot, and logged.
    pub fn apply(&self, batch: &RecordBatch, row_kinds: Option<&Int8Array>) -> Result<(), ResultTableError> {
        self.apply_from(batch, row_kinds, BatchOrigin::default())
    }

    /// [`ResultTable::apply`] for a checkpointing writer: the rows remember `origin`, so
    /// that [`ResultTable::roll_back`] can take them back.
    pub fn apply_from(
        &self,
        batch: &RecordBatch,
        row_kinds: Option<&Int8Array>,
        origin: BatchOrigin,
    ) -> Result<(), ResultTableError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let poisoned = || ResultTableError::Invalid(format!("result table '{}' is unusable after a panic", self.name));
        let conformed = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())
            .map_err(ResultTableError::arrow("result table rows"))?;
        // The log's lock first: it orders the writers (the log's order is the order
        // applied), while readers wait only for the rows' lock, which is held just for the
        // change in memory — not for the disk writes below.
        let mut log = self.log.lock().map_err(|_| poisoned())?;
        let (version, live_rows) = {
            let mut rows = self.rows.write().map_err(|_| poisoned())?;
            rows.apply(&conformed, row_kinds, origin)?;
            if let Some((keep, column)) = self.retention {
                match column {
                    Some(c) => {
                        rows.expire_by_time(c, keep)?;
                    }
                    None => {
                        rows.expire(keep);
                    }
                }
            }
            // Sent under the rows' lock, so a reader that subscribed took its snapshot
            // either before this batch (and gets it here) or after it (and does not).
            if let Ok(mut subscribers) = self.subscribers.lock() {
                if !subscribers.is_empty() {
                    let change = Change { batch: conformed.clone(), row_kinds: row_kinds.cloned() };
                    subscribers.retain(|s| s.send(change.clone()).is_ok());
                }
            }
            (rows.version(), rows.num_rows())
        };
        self.version.send_replace(version);
        let kinds = match row_kinds {
            Some(k) => k.clone(),
            None => store::insert_kinds(batch.num_rows()),
        };
        log.append(&conformed, &kinds, origin)?;
        if log.wants_rotation(live_rows) {
            // The rows are taken in a moment under the read lock; writing them happens outside.
            log.rotate(&self.schema, &self.rows_with_origin()?)?;
        }
        Ok(())
    }

    fn rows_with_origin(&self) -> Result<Vec<(RecordBatch, BatchOrigin)>, ResultTableError> {
        let rows = self.rows.read().map_err(|_| self.poisoned())?;
        Ok(rows.live_batches_with_origin())
    }

    fn poisoned(&self) -> ResultTableError {
        ResultTableError::Invalid(format!("result table '{}' is unusable after a panic", self.name))
    }

    /// Take back the rows `writer` wrote in epochs after `epoch`, in memory and on disk (a
    /// new log generation without them). Only append-only tables hold such rows (see
    /// [`BatchOrigin`]); jobs reading the table's changes are not told. Returns how many
    /// rows went.
    pub fn roll_back(&self, writer: u64, epoch: u64) -> Result<usize, ResultTableError> {
        let mut log = self.log.lock().map_err(|_| self.poisoned())?;
        let (removed, version) = {
            let mut rows = self.rows.write().map_err(|_| self.poisoned())?;
            (rows.roll_back(writer, epoch), rows.version())
        };
        if removed > 0 {
            self.version.send_replace(version);
            log.rotate(&self.schema, &self.rows_with_origin()?)?;
            tracing::info!(table = %self.name, rows = removed, epoch, "result table: rows written after the checkpoint taken back");
        }
        Ok(removed)
    }

    /// Make every applied batch durable: a checkpoint that counts these rows as written
    /// must not lose them to a machine crash.
    pub fn sync(&self) -> Result<(), ResultTableError> {
        // The lock only for the flush: writers go on while the disk catches up.
        let (file, path) = self.log.lock().map_err(|_| self.poisoned())?.flushed_file()?;
        file.sync_data().map_err(|e| ResultTableError::Io { context: path.display().to_string(), source: e })
    }

    /// The live rows now.
    pub fn snapshot(&self) -> Snapshot {
        match self.rows.read() {
            Ok(rows) => rows.snapshot(),
            Err(_) => Snapshot { schema: self.schema.clone(), batches: Vec::new(), version: 0 },
        }
    }

    /// The live row whose primary key is `key` (one value per key column), if any.
    pub fn lookup(&self, key: &[ArrayRef]) -> Result<Option<RecordBatch>, ResultTableError> {
        match self.rows.read() {
            Ok(rows) => rows.lookup(key),
            Err(_) => Ok(None),
        }
    }

    /// Number of live rows.
    pub fn num_rows(&self) -> usize {
        self.rows.read().map(|r| r.num_rows()).unwrap_or(0)
    }

    /// Whether it has a primary key (updates allowed).
    pub fn is_upsert(&self) -> bool {
        self.rows.read().map(|r| r.has_key()).unwrap_or(false)
    }

    /// The rows now and every change after them: how a job reads a result table (its
    /// changelog), so views can be chained.
    pub fn subscribe(&self) -> (Snapshot, tokio::sync::mpsc::UnboundedReceiver<Change>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // The read lock keeps batches from being applied between the snapshot and the
        // subscription.
        let Ok(rows) = self.rows.read() else {
            return (Snapshot { schema: self.schema.clone(), batches: Vec::new(), version: 0 }, rx);
        };
        let snapshot = rows.snapshot();
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.push(tx);
        }
        drop(rows);
        (snapshot, rx)
    }

    /// Versions as batches are applied (one more per batch).
    pub fn versions(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use eddy_connectors::RowKind;

    fn shape(key: bool) -> TableShape {
        TableShape {
            name: "totals by/key".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, false),
                Field::new("v", DataType::Int64, true),
            ])),
            primary_key: if key { vec!["k".into()] } else { vec![] },
            retention: None,
        }
    }

    fn batch(s: &TableShape, rows: &[(&str, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            s.schema.clone(),
            vec![
                Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    fn contents(t: &ResultTable) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for b in t.snapshot().batches {
            for i in 0..b.num_rows() {
                out.push((
                    b.column(0).as_string::<i32>().value(i).to_string(),
                    b.column(1).as_primitive::<Int64Type>().value(i),
                ));
            }
        }
        out.sort();
        out
    }

    /// Rows written before event-time retention applied (or before a restart) are dropped
    /// when the table opens, not only at its next write.
    #[test]
    fn event_time_retention_applies_to_the_rows_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let plain = shape(false);
        {
            let tables = ResultTables::new(dir.path());
            let t = tables.open(&plain).unwrap();
            t.apply(&batch(&plain, &[("a", 1), ("b", 100), ("c", 95)]), None).unwrap();
        }
        let kept = TableShape { retention: Some((Duration::from_millis(10), Some("v".into()))), ..plain };
        let tables = ResultTables::new(dir.path());
        let t = tables.open(&kept).unwrap();
        assert_eq!(contents(&t), vec![("b".into(), 100), ("c".into(), 95)]);
    }

    #[test]
    fn rows_survive_reopening_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let s = shape(true);
        {
            let tables = ResultTables::new(dir.path());
            let t = tables.open(&s).unwrap();
            t.apply(&batch(&s, &[("a", 1), ("b", 2)]), None).unwrap();
            let kinds = Int8Array::from(vec![RowKind::UpdateAfter.code(), RowKind::Delete.code()]);
            t.apply(&batch(&s, &[("a", 5), ("b", 2)]), Some(&kinds)).unwrap();
            assert_eq!(contents(&t), vec![("a".into(), 5)]);
        }
        // The table's folder name is safe for any table name.
        let folder = dir.path().join("tables").join("totals%20by%2Fkey");
        assert!(folder.is_dir(), "{folder:?}");
        // A half-written batch at the end (the process died mid-write) is ignored.
        let file = std::fs::read_dir(&folder).unwrap().next().unwrap().unwrap().path();
        let mut bytes = std::fs::read(&file).unwrap();
        let whole = bytes.len();
        let tables = ResultTables::new(dir.path());
        let t = tables.open(&s).unwrap();
        t.apply(&batch(&s, &[("c", 7)]), None).unwrap();
        drop(t);
        drop(tables);
        let file = std::fs::read_dir(&folder).unwrap().next().unwrap().unwrap().path();
        bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 20]).unwrap();
        assert!(bytes.len() > whole / 2);
        let tables = ResultTables::new(dir.path());
        let t = tables.open(&s).unwrap();
        assert_eq!(contents(&t), vec![("a".into(), 5)], "the torn batch is dropped, the rest kept");
        assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1, "one generation on disk");
    }

    #[test]
    fn rows_written_after_a_checkpoint_are_taken_back_and_stay_gone_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let s = shape(false);
        let from = |writer, epoch| BatchOrigin { writer, epoch };
        {
            let tables = ResultTables::new(dir.path());
            let t = tables.open(&s).unwrap();
            t.apply(&batch(&s, &[("manual", 0)]), None).unwrap();
            t.apply_from(&batch(&s, &[("a", 1)]), None, from(7, 1)).unwrap();
            t.apply_from(&batch(&s, &[("other writer", 2)]), None, from(8, 2)).unwrap();
            t.apply_from(&batch(&s, &[("b", 2), ("c", 2)]), None, from(7, 2)).unwrap();
            t.sync().unwrap();
        }
        // Reopened (the origins come back from the log), restarted from checkpoint 1.
        let tables = ResultTables::new(dir.path());
        let t = tables.open(&s).unwrap();
        let version = *t.versions().borrow();
        assert_eq!(t.roll_back(7, 1).unwrap(), 2);
        assert!(*t.versions().borrow() > version, "readers waiting for changes are woken");
        assert_eq!(contents(&t), vec![("a".into(), 1), ("manual".into(), 0), ("other writer".into(), 2)]);
        assert_eq!(t.roll_back(7, 1).unwrap(), 0, "nothing more to take back");
        t.apply_from(&batch(&s, &[("b", 2)]), None, from(7, 2)).unwrap();
        drop(t);
        drop(tables);
        let tables = ResultTables::new(dir.path());
        let t = tables.open(&s).unwrap();
        let want: Vec<(String, i64)> =
            vec![("a".into(), 1), ("b".into(), 2), ("manual".into(), 0), ("other writer".into(), 2)];
        assert_eq!(contents(&t), want, "the rollback is on disk too");
        // A fresh run of writer 7 takes back all it wrote; rows of no writer are never taken.
        assert_eq!(t.roll_back(7, 0).unwrap(), 2);
        assert_eq!(t.roll_back(0, 0).unwrap(), 0);
        assert_eq!(contents(&t), vec![("manual".into(), 0), ("other writer".into(), 2)]);
    }

    #[test]
    fn an_upsert_table_is_not_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = shape(true);
        let tables = ResultTables::new(dir.path());
        let t = tables.open(&s).unwrap();
        t.apply_from(&batch(&s, &[("a", 1)]), None, BatchOrigin { writer: 7, epoch: 3 }).unwrap();
        assert_eq!(t.roll_back(7, 1).unwrap(), 0, "rows written again overwrite themselves");
        assert_eq!(contents(&t), vec![("a".into(), 1)]);
    }

    #[test]
    fn append_table_keeps_order_and_refuses_other_columns() {
        let dir = tempfile::tempdir().unwrap();
        let s = shape(false);
        let tables = ResultTables::new(dir.path());
        let t = tables.open(&s).unwrap();
        t.apply(&batch(&s, &[("a", 1)]), None).unwrap();
        t.apply(&batch(&s, &[("a", 1)]), None).unwrap();
        assert_eq!(t.num_rows(), 2);
        assert_eq!(*t.versions().borrow(), 2);
        let mut other = shape(false);
        other.schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, false)]));
        assert!(tables.open(&other).is_err());
        tables.drop_table(&s.name).unwrap();
        assert!(tables.get(&s.name).is_none());
        assert!(!dir.path().join("tables").join("totals%20by%2Fkey").exists());
    }
}
