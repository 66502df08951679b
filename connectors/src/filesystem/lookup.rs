//! A filesystem table as the lookup side of a lookup join (`JOIN side_input FOR SYSTEM_TIME
//! AS OF o.proctime AS s ON o.k = s.key`), as Flink's `FileSystemLookupFunction`: the whole
//! table is read into memory at the first lookup and read again once it is older than
//! `lookup.join.cache.ttl` (default 60 min), so a file replaced while the job runs is seen.
//!
//! Rows are kept as text per column, like the jdbc lookup's, so the operator casts both
//! kinds the same way; keys are compared as text too (Arrow's cast to a string of the
//! stream's key and of the table's column: equal numbers, strings, dates print alike). A
//! row whose key has a NULL never matches, as in SQL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;

use crate::{ConnectorError, ConnectorTable, Result, Split, TextRow};

/// Flink's default `lookup.join.cache.ttl`.
const DEFAULT_TTL: Duration = Duration::from_secs(60 * 60);

/// The options a filesystem table takes as a lookup table.
pub(crate) const LOOKUP_OPTIONS: &[&str] = &["lookup.join.cache.ttl"];

/// Key texts -> the rows of that key (columns' text, in the lookup's column order).
type RowsByKey = HashMap<Vec<String>, Arc<Vec<TextRow>>>;

/// The lookup side of a lookup join over a filesystem table.
pub(crate) struct FileLookup {
    table: ConnectorTable,
    columns: Vec<String>,
    keys: Vec<String>,
    ttl: Duration,
    /// The table's rows by key, and when they were read.
    loaded: Option<(RowsByKey, Instant)>,
}

impl FileLookup {
    /// A lookup of `columns` of the filesystem table `t` by equality on `keys`.
    pub(crate) fn new(t: &ConnectorTable, columns: &[String], keys: &[String]) -> Result<Self> {
        super::Config::parse(t)?;
        for c in columns.iter().chain(keys) {
            if t.schema.field_with_name(c).is_err() {
                return Err(ConnectorError::options(&t.name, format!("lookup column '{c}' is not a column")));
            }
        }
        let ttl = t.options.duration(&t.name, "lookup.join.cache.ttl")?.unwrap_or(DEFAULT_TTL);
        Ok(Self { table: t.clone(), columns: columns.to_vec(), keys: keys.to_vec(), ttl, loaded: None })
    }

    /// The rows of each key among `rows` of the key columns `keys`.
    pub(crate) fn lookup(&mut self, keys: &[ArrayRef], rows: &[usize]) -> Result<Vec<Arc<Vec<TextRow>>>> {
        if self.loaded.as_ref().is_none_or(|(_, at)| at.elapsed() >= self.ttl) {
            let started = Instant::now();
            let map = self.load()?;
            tracing::info!(table = %self.table.name, keys = map.len(), elapsed = ?started.elapsed(), "lookup table loaded");
            self.loaded = Some((map, Instant::now()));
        }
        let Some((map, _)) = &self.loaded else { return Ok(vec![Arc::default(); rows.len()]) };
        let texts = keys.iter().map(|k| text_column(&self.table.name, k)).collect::<Result<Vec<_>>>()?;
        Ok(rows
            .iter()
            .map(|&i| {
                let key: Option<Vec<String>> = texts.iter().map(|t| t[i].clone()).collect();
                key.and_then(|k| map.get(&k).cloned()).unwrap_or_default()
            })
            .collect())
    }

    /// Read the whole table: its source run to the end on a thread of its own (the caller
    /// may be inside an async runtime, which cannot block on another).
    fn load(&self) -> Result<RowsByKey> {
        let table = self.table.clone();
        let read = std::thread::Builder::new()
            .name(format!("lookup-{}", table.name))
            .spawn(move || -> Result<Vec<RecordBatch>> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| ConnectorError::options(&table.name, format!("cannot read the lookup table: {e}")))?;
                runtime.block_on(async {
                    let mut source = super::create_source(&table, Split { index: 0, count: 1 }, None)?;
                    let mut batches = Vec::new();
                    while let Some(b) = source.next_batch().await? {
                        batches.push(b.batch);
                    }
                    Ok(batches)
                })
            })
            .map_err(|e| ConnectorError::options(&self.table.name, format!("cannot read the lookup table: {e}")))?;
        let batches = read
            .join()
            .map_err(|_| ConnectorError::options(&self.table.name, "reading the lookup table panicked"))??;
        let mut map: HashMap<Vec<String>, Vec<TextRow>> = HashMap::new();
        for batch in batches {
            let column = |name: &str| -> Result<Vec<Option<String>>> {
                let c = batch.column_by_name(name).ok_or_else(|| {
                    ConnectorError::options(&self.table.name, format!("lookup column '{name}' was not read"))
                })?;
                text_column(&self.table.name, c)
            };
            let keys = self.keys.iter().map(|k| column(k)).collect::<Result<Vec<_>>>()?;
            let values = self.columns.iter().map(|c| column(c)).collect::<Result<Vec<_>>>()?;
            for row in 0..batch.num_rows() {
                let Some(key) = keys.iter().map(|k| k[row].clone()).collect::<Option<Vec<String>>>() else {
                    continue;
                };
                map.entry(key).or_default().push(values.iter().map(|v| v[row].clone()).collect());
            }
        }
        Ok(map.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}

/// A column as text per row (NULL as `None`).
fn text_column(table: &str, column: &ArrayRef) -> Result<Vec<Option<String>>> {
    let text = cast(column, &DataType::Utf8)
        .map_err(|e| ConnectorError::options(table, format!("a lookup value cannot be read as text: {e}")))?;
    let text = text.as_string::<i32>();
    Ok((0..text.len()).map(|i| text.is_valid(i).then(|| text.value(i).to_string())).collect())
}
