//! The `datagen` source: rows of random or sequential values, as Flink's `datagen` connector.
//!
//! Why: pipelines need input before any real system is wired up, and benchmarks need an
//! endless, cheap stream. Options follow Flink (`rows-per-second`, `number-of-rows`,
//! `fields.<f>.kind|min|max|length|var-len|start|end|null-rate|max-past`); Eddy adds `seed`
//! for reproducible output. Each subtask gets its share of the rate and of the rows, and a
//! stride of every sequence, so the union over subtasks is what one subtask would produce.
//!
//! Checkpoints: a split's position is the number of rows it has emitted (`{"rows": n}`).
//! Resumed there, it emits the remaining share of `number-of-rows` and every sequence goes
//! on with its next value. With `seed`, each batch's random values come from a generator
//! seeded by the seed, the split and the index of the batch's first row, so a resumed split
//! emits the same values as an uninterrupted one (batches start at multiples of the batch
//! size, which only `rows-per-second` and the parallelism decide). Without `seed`, values
//! are random anyway and differ after a resume; random timestamps and dates follow the wall
//! clock, so they differ too.

mod fields;
#[cfg(test)]
mod tests;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::rate::RateLimiter;
use crate::{ConnectorError, ConnectorTable, Result, Source, SourceBatch, Split};
use fields::{field_paths, FieldGen, FIELD_OPTIONS};

/// Options of `datagen` other than `fields.*`.
const OPTIONS: &[&str] = &["connector", "rows-per-second", "number-of-rows", "seed"];

/// Flink's default rate.
const DEFAULT_ROWS_PER_SECOND: f64 = 10_000.0;

/// The checked options of a datagen table.
#[derive(Debug)]
struct Config {
    rows_per_second: f64,
    number_of_rows: Option<u64>,
    seed: Option<u64>,
}

impl Config {
    fn parse(table: &ConnectorTable) -> Result<Self> {
        let name = table.name.as_str();
        let o = &table.options;
        check_keys(table)?;
        if let Some((_, key)) = table.metadata.first() {
            return Err(ConnectorError::options(name, format!("datagen has no metadata key '{key}'")));
        }
        let rows_per_second = o.parse::<f64>(name, "rows-per-second")?.unwrap_or(DEFAULT_ROWS_PER_SECOND);
        if !(rows_per_second > 0.0 && rows_per_second.is_finite()) {
            return Err(ConnectorError::options(name, "option 'rows-per-second' must be greater than 0"));
        }
        Ok(Self {
            rows_per_second,
            number_of_rows: o.parse::<u64>(name, "number-of-rows")?,
            seed: o.parse::<u64>(name, "seed")?,
        })
    }
}

/// Reject option keys datagen does not know (as Flink does), naming the closest place.
fn check_keys(table: &ConnectorTable) -> Result<()> {
    let paths = field_paths(table.schema.fields());
    for key in table.options.keys() {
        if OPTIONS.contains(&key) {
            continue;
        }
        let known = key
            .strip_prefix("fields.")
            .and_then(|rest| rest.rsplit_once('.'))
            .is_some_and(|(path, opt)| paths.iter().any(|p| p == path) && FIELD_OPTIONS.contains(&opt));
        if !known {
            return Err(ConnectorError::options(
                &table.name,
                format!(
                    "unsupported option '{key}' for connector 'datagen'; supported: {}, and \
                     'fields.<column>.<{}>'",
                    OPTIONS.join(", "),
                    FIELD_OPTIONS.join("|")
                ),
            ));
        }
    }
    Ok(())
}

fn generators(table: &ConnectorTable, split: Split) -> Result<Vec<FieldGen>> {
    table.schema.fields().iter().map(|f| FieldGen::new(&table.name, &table.options, f.name(), f, split)).collect()
}

/// Check options and field generators without generating anything.
pub(crate) fn validate(table: &ConnectorTable) -> Result<()> {
    Config::parse(table)?;
    generators(table, Split { index: 0, count: 1 })?;
    Ok(())
}

/// Bounded when `number-of-rows` is set or a sequence column will run out (Flink stops the
/// source when any sequence is exhausted).
pub(crate) fn is_bounded(table: &ConnectorTable) -> Result<bool> {
    let config = Config::parse(table)?;
    let gens = generators(table, Split { index: 0, count: 1 })?;
    Ok(config.number_of_rows.is_some() || gens.iter().any(|g| g.remaining().is_some()))
}

/// Build one subtask of the source, at `position` (rows already emitted) if given.
pub(crate) fn create_source(
    table: &ConnectorTable,
    split: Split,
    position: Option<&serde_json::Value>,
) -> Result<Box<dyn Source>> {
    let config = Config::parse(table)?;
    let count = split.count.max(1);
    let share = |total: u64| total / count as u64 + u64::from((split.index as u64) < total % count as u64);
    let mut generators = generators(table, split)?;
    let mut rows_left = config.number_of_rows.map(share);
    let emitted = match position {
        Some(p) => rows_of(&table.name, p)?,
        None => 0,
    };
    if emitted > 0 {
        if let Some(left) = &mut rows_left {
            *left = left.checked_sub(emitted).ok_or_else(|| {
                ConnectorError::checkpoint(
                    &table.name,
                    format!(
                        "split {} emitted {emitted} rows, more than its share {left} of 'number-of-rows'",
                        split.index
                    ),
                )
            })?;
        }
        for g in &mut generators {
            g.skip(emitted).map_err(|message| ConnectorError::checkpoint(&table.name, message))?;
        }
    }
    Ok(Box::new(DatagenSource {
        schema: table.schema.clone(),
        generators,
        rows_left,
        limiter: RateLimiter::new(config.rows_per_second / count as f64),
        emitted,
        // Distinct but reproducible streams per subtask.
        seed: config.seed.map(|seed| seed ^ (split.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        rng: SmallRng::from_os_rng(),
    }))
}

/// The rows a split had emitted, from its checkpoint position `{"rows": n}`.
fn rows_of(table: &str, position: &serde_json::Value) -> Result<u64> {
    position.get("rows").and_then(serde_json::Value::as_u64).ok_or_else(|| {
        ConnectorError::checkpoint(table, format!("datagen position {position} has no row count ('rows')"))
    })
}

/// One subtask of a datagen source.
struct DatagenSource {
    schema: SchemaRef,
    generators: Vec<FieldGen>,
    /// This subtask's share of `number-of-rows`, counting down.
    rows_left: Option<u64>,
    limiter: RateLimiter,
    /// Rows emitted so far (the checkpoint position).
    emitted: u64,
    /// With `seed`: this split's seed, from which each batch's generator is derived.
    seed: Option<u64>,
    /// Without `seed`: one random stream for the split's life.
    rng: SmallRng,
}

/// A well-mixed 64-bit hash (SplitMix64's finalizer), so nearby seeds and row indexes give
/// unrelated generator states.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[async_trait::async_trait]
impl Source for DatagenSource {
    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        let mut n = self.limiter.batch_hint() as u64;
        if let Some(left) = self.rows_left {
            n = n.min(left);
        }
        if let Some(left) = self.generators.iter().filter_map(FieldGen::remaining).min() {
            n = n.min(left);
        }
        if n == 0 {
            return Ok(None);
        }
        let n = n as usize;
        self.limiter.acquire(n).await;
        let now_ms = chrono::Utc::now().timestamp_millis();
        // Seeded: the batch's values depend only on the seed, the split and its first row,
        // so a split resumed at this row makes them again.
        let mut seeded = self.seed.map(|seed| SmallRng::seed_from_u64(mix(seed ^ mix(self.emitted))));
        let rng = seeded.as_mut().unwrap_or(&mut self.rng);
        let columns = self.generators.iter_mut().map(|g| g.generate(n, rng, now_ms)).collect::<Result<Vec<_>>>()?;
        let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(|e| ConnectorError::arrow("datagen: building batch", e))?;
        if let Some(left) = &mut self.rows_left {
            *left -= n as u64;
        }
        self.emitted += n as u64;
        Ok(Some(SourceBatch::rows(batch)))
    }

    fn position(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "rows": self.emitted }))
    }
}
