//! The `datagen` source: rows of random or sequential values, as Flink's `datagen` connector.
//!
//! Why: pipelines need input before any real system is wired up, and benchmarks need an
//! endless, cheap stream. Options follow Flink (`rows-per-second`, `number-of-rows`,
//! `fields.<f>.kind|min|max|length|var-len|start|end|null-rate|max-past`); Eddy adds `seed`
//! for reproducible output. Each subtask gets its share of the rate and of the rows, and a
//! stride of every sequence, so the union over subtasks is what one subtask would produce.

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

/// Build one subtask of the source.
pub(crate) fn create_source(table: &ConnectorTable, split: Split) -> Result<Box<dyn Source>> {
    let config = Config::parse(table)?;
    let count = split.count.max(1);
    let share = |total: u64| total / count as u64 + u64::from((split.index as u64) < total % count as u64);
    let rng = match config.seed {
        // Distinct but reproducible streams per subtask.
        Some(seed) => SmallRng::seed_from_u64(seed ^ (split.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        None => SmallRng::from_os_rng(),
    };
    Ok(Box::new(DatagenSource {
        schema: table.schema.clone(),
        generators: generators(table, split)?,
        rows_left: config.number_of_rows.map(share),
        limiter: RateLimiter::new(config.rows_per_second / count as f64),
        rng,
    }))
}

/// One subtask of a datagen source.
struct DatagenSource {
    schema: SchemaRef,
    generators: Vec<FieldGen>,
    /// This subtask's share of `number-of-rows`, counting down.
    rows_left: Option<u64>,
    limiter: RateLimiter,
    rng: SmallRng,
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
        let columns =
            self.generators.iter_mut().map(|g| g.generate(n, &mut self.rng, now_ms)).collect::<Result<Vec<_>>>()?;
        let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(|e| ConnectorError::arrow("datagen: building batch", e))?;
        if let Some(left) = &mut self.rows_left {
            *left -= n as u64;
        }
        Ok(Some(SourceBatch::rows(batch)))
    }
}
