//! The `nexmark` source: the Nexmark auction benchmark's event stream, as the
//! `nexmark` connector of github.com/nexmark/nexmark for Flink.
//!
//! Why: the Nexmark queries are the standard streaming benchmark, and a Flink user's
//! `ddl_gen.sql` should run unchanged. Events are the `nexmark` crate's (a port of the
//! same generator), produced column by column by `generator` (see there why). Every event's data is seeded by its id and its timestamp derives from
//! `base-time` and the configured rates, so output is reproducible given `base-time`;
//! emission is paced so that event time advances like wall-clock time (as Flink's
//! `NexmarkSourceFunction` sleeps until each event is due). Subtask `i` of `n` generates
//! events `i, i + n, ...` of the one global sequence, so parallelism does not change the data.
//!
//! Checkpoints: a split's position is the number of its next event in that global sequence
//! and the base time (`{"next_event": 42, "base_time": 1709287200000}`); the base time is
//! kept because without `base-time` it is the clock at start. Events are a function of
//! their number and the base time, so a resumed split emits exactly the events an
//! uninterrupted one would. Pacing starts again from the resumed event (the next event is
//! due at once, later ones at the configured rate): a restart does not burst through the
//! time the job was down.

mod columns;
mod generator;
#[cfg(test)]
mod tests;

use std::time::Duration;

use arrow::datatypes::SchemaRef;
use nexmark::config::{NexmarkConfig, RateShape};
use tokio::time::Instant;

use crate::{ConnectorError, ConnectorTable, Result, Source, SourceBatch, Split};
use columns::ColumnPlan;
use generator::Generator;

/// Options of the Flink nexmark connector that Eddy supports.
const OPTIONS: &[&str] = &[
    "connector",
    "rate.shape",
    "rate.period",
    "rate.limited",
    "first-event.rate",
    "next-event.rate",
    "person.avg-size",
    "auction.avg-size",
    "bid.avg-size",
    "person.proportion",
    "auction.proportion",
    "bid.proportion",
    "bid.hot-ratio.auctions",
    "bid.hot-ratio.bidders",
    "auction.hot-ratio.sellers",
    "events.num",
    "base-time",
];

/// Largest `*.avg-size` accepted.
const MAX_AVG_SIZE: u64 = 1 << 20;

/// Largest batch handed to the runtime.
const MAX_BATCH: usize = 8192;

/// String bytes at which a batch is closed early (its string offsets are 32-bit).
const MAX_BATCH_BYTES: usize = 256 << 20;

/// The checked options.
#[derive(Debug, Clone)]
struct Config {
    generator: NexmarkConfig,
    /// Total events over all subtasks; `None` = endless.
    events: Option<u64>,
}

impl Config {
    fn parse(table: &ConnectorTable) -> Result<Self> {
        let name = table.name.as_str();
        let o = &table.options;
        if let Some(key) = o.keys().find(|k| !OPTIONS.contains(k)) {
            return Err(ConnectorError::options(
                name,
                format!("unsupported option '{key}' for connector 'nexmark'; supported: {}", OPTIONS.join(", ")),
            ));
        }
        if let Some((_, key)) = table.metadata.first() {
            return Err(ConnectorError::options(name, format!("nexmark has no metadata key '{key}'")));
        }
        // Accepted as in Flink, where the source paces by event time whatever its value.
        o.bool_or(name, "rate.limited", false)?;
        let positive = |key: &str, default: usize| -> Result<usize> {
            match o.parse::<usize>(name, key)? {
                None => Ok(default),
                Some(0) => Err(ConnectorError::options(name, format!("option '{key}' must be greater than 0"))),
                Some(v) => Ok(v),
            }
        };
        let size = |key: &str, default: usize| -> Result<usize> {
            match o.memory_size(name, key)? {
                None => Ok(default),
                // Every event carries a string of about this size.
                Some(v) if v <= MAX_AVG_SIZE => Ok(v as usize),
                Some(_) => Err(ConnectorError::options(name, format!("option '{key}' must be at most 1 mb"))),
            }
        };
        let defaults = NexmarkConfig::default();
        let rate_shape = match o.get("rate.shape").map(str::to_ascii_lowercase).as_deref() {
            None | Some("square") => RateShape::Square,
            Some("sine") => RateShape::Sine,
            Some(other) => {
                return Err(ConnectorError::options(
                    name,
                    format!("option 'rate.shape' = '{other}' must be 'square' or 'sine'"),
                ))
            }
        };
        let first_rate = positive("first-event.rate", 10_000)?;
        let next_rate = positive("next-event.rate", 10_000)?;
        if rate_shape == RateShape::Sine && next_rate > first_rate {
            // The generator computes the sine's amplitude as first - next (unsigned).
            return Err(ConnectorError::options(
                name,
                "with 'rate.shape' = 'sine', 'next-event.rate' must not exceed 'first-event.rate' in Eddy",
            ));
        }
        let rate_period = o.duration(name, "rate.period")?.unwrap_or(Duration::from_secs(600)).as_secs();
        if rate_period == 0 {
            return Err(ConnectorError::options(name, "option 'rate.period' must be at least 1 s"));
        }
        let base_time = match o.parse::<i64>(name, "base-time")? {
            None | Some(0) => chrono::Utc::now().timestamp_millis(),
            Some(t) if t > 0 => t,
            Some(_) => return Err(ConnectorError::options(name, "option 'base-time' must be epoch milliseconds")),
        };
        let events = match o.parse::<i64>(name, "events.num")? {
            Some(n) if n > 0 => Some(n as u64),
            _ => None,
        };
        let generator = NexmarkConfig {
            rate_shape,
            rate_period: usize::try_from(rate_period).unwrap_or(usize::MAX),
            first_rate,
            next_rate,
            avg_person_byte_size: size("person.avg-size", 200)?,
            avg_auction_byte_size: size("auction.avg-size", 500)?,
            avg_bid_byte_size: size("bid.avg-size", 100)?,
            person_proportion: positive("person.proportion", 1)?,
            auction_proportion: positive("auction.proportion", 3)?,
            bid_proportion: positive("bid.proportion", 46)?,
            hot_auction_ratio: positive("bid.hot-ratio.auctions", 2)?,
            hot_bidder_ratio: positive("bid.hot-ratio.bidders", 4)?,
            hot_seller_ratio: positive("auction.hot-ratio.sellers", 4)?,
            base_time: base_time as u64,
            num_event_generators: 1,
            ..defaults
        };
        Ok(Self { generator, events })
    }
}

/// Check options and the table's columns.
pub(crate) fn validate(table: &ConnectorTable) -> Result<()> {
    Config::parse(table)?;
    ColumnPlan::new(&table.name, &table.schema, &[])?;
    Ok(())
}

/// Bounded iff `events.num` is set (> 0).
pub(crate) fn is_bounded(table: &ConnectorTable) -> Result<bool> {
    Ok(Config::parse(table)?.events.is_some())
}

/// Build one subtask of the source, at `position` (see the module docs) if given.
pub(crate) fn create_source(
    table: &ConnectorTable,
    split: Split,
    position: Option<&serde_json::Value>,
) -> Result<Box<dyn Source>> {
    let mut config = Config::parse(table)?;
    let plan = ColumnPlan::new(&table.name, &table.schema, &table.unread)?;
    let count = split.count.max(1) as u64;
    let index = split.index as u64;
    let first = match position {
        Some(p) => {
            let (next_event, base_time) = position_of(&table.name, p)?;
            if next_event < index || !(next_event - index).is_multiple_of(count) {
                return Err(ConnectorError::checkpoint(
                    &table.name,
                    format!(
                        "nexmark event {next_event} does not belong to split {index} of {count} (was the \
                         parallelism changed?)"
                    ),
                ));
            }
            config.generator.base_time = base_time;
            next_event
        }
        None => index,
    };
    // Events first, first + count, ... below the global `events.num`.
    let events_left = config.events.map(|n| if n > first { (n - first).div_ceil(count) } else { 0 });
    let base_time = config.generator.base_time;
    let generator = Generator::new(config.generator);
    // Fresh: event time runs from the base time. Resumed: from the next event's time.
    let pace_origin = if position.is_some() { generator.timestamp(first) } else { base_time };
    Ok(Box::new(NexmarkSource {
        schema: table.schema.clone(),
        plan,
        last_batch_rows: 0,
        generator,
        next_event: first,
        step: count,
        base_time,
        pace_origin,
        events_left,
        started: None,
    }))
}

/// The next event number and the base time, from a checkpoint position.
fn position_of(table: &str, position: &serde_json::Value) -> Result<(u64, u64)> {
    let field = |key: &str| position.get(key).and_then(serde_json::Value::as_u64);
    match (field("next_event"), field("base_time")) {
        (Some(next), Some(base)) => Ok((next, base)),
        _ => Err(ConnectorError::checkpoint(
            table,
            format!("nexmark position {position} lacks 'next_event' or 'base_time'"),
        )),
    }
}

/// One subtask of a nexmark source.
struct NexmarkSource {
    schema: SchemaRef,
    plan: ColumnPlan,
    /// Rows of the last batch.
    last_batch_rows: usize,
    generator: Generator,
    /// The number of the next event to emit (in the global sequence).
    next_event: u64,
    /// The number of splits: this one emits every `step`-th event.
    step: u64,
    /// The generator's base time (kept in the position).
    base_time: u64,
    /// The event time that `started` corresponds to.
    pace_origin: u64,
    events_left: Option<u64>,
    /// Wall-clock instant that corresponds to `pace_origin` in event time.
    started: Option<Instant>,
}

#[async_trait::async_trait]
impl Source for NexmarkSource {
    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        let limit = self.events_left.map_or(MAX_BATCH, |n| n.min(MAX_BATCH as u64) as usize);
        if limit == 0 {
            return Ok(None);
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        // Wait until the next event is due, then take every event that is due by now.
        let due = |ts: u64, base: u64| started + Duration::from_millis(ts.saturating_sub(base));
        tokio::time::sleep_until(due(self.generator.timestamp(self.next_event), self.pace_origin)).await;
        let elapsed = Instant::now().duration_since(started).as_millis() as u64;
        let horizon = self.pace_origin.saturating_add(elapsed);
        // Sized like the last batch: a paced source's batches are alike.
        let mut buffers = self.plan.buffers(limit.min(self.last_batch_rows.max(64)));
        while buffers.len() < limit
            && (buffers.len() == 0 || self.generator.timestamp(self.next_event) <= horizon)
            // Checked every 256 events: at most 1 MiB each, well below the 2 GiB offsets.
            && (buffers.len() % 256 != 0 || buffers.string_bytes() < MAX_BATCH_BYTES)
        {
            self.generator.write(self.next_event, &mut buffers);
            self.next_event += self.step;
        }
        if let Some(left) = &mut self.events_left {
            *left -= buffers.len() as u64;
        }
        self.last_batch_rows = buffers.len();
        let batch = self.plan.build(&self.schema, buffers)?;
        Ok(Some(SourceBatch::rows(batch)))
    }

    fn position(&self) -> Option<serde_json::Value> {
        // Every generated event went into the batch just returned.
        Some(serde_json::json!({ "next_event": self.next_event, "base_time": self.base_time }))
    }
}
