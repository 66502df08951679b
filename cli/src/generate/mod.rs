//! `eddy generate <example>`: the input of one of the examples under `examples/`, written
//! to Kafka or to files through Eddy's own sink connectors.
//!
//! A generator makes events one by one from a seeded ChaCha8 random stream (the same
//! `--seed` gives the same events, on any machine) with event times `--rate` per second from
//! `--start`; it writes them in batches, waiting for the wall clock unless `--fast`.

mod examples;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use eddy_connectors::{ConnectorTable, Distribution, Options, Split};

/// What `eddy generate` was asked.
#[derive(Debug, Clone)]
pub(crate) struct GenerateArgs {
    pub example: String,
    pub to: String,
    pub rate: f64,
    pub count: Option<u64>,
    pub seed: u64,
    pub start_ms: Option<i64>,
    pub fast: bool,
    pub format: String,
    pub registry: Option<String>,
    pub partitions: Option<u64>,
}

/// One example's event stream.
pub(crate) trait Generator {
    /// The events' columns.
    fn schema(&self) -> SchemaRef;
    /// The columns that key a Kafka record (and pick its partition).
    fn key(&self) -> &'static [&'static str] {
        &[]
    }
    /// The next `n` events, the first at event time `time_ms(i)` for event number `i`.
    fn batch(&mut self, first: u64, n: usize, time_ms: &dyn Fn(u64) -> i64) -> Result<RecordBatch>;
}

pub(crate) fn generate(args: &GenerateArgs) -> u8 {
    match run(args) {
        Ok(n) => {
            eprintln!("eddy generate: {n} {} events written to {}", args.example, args.to);
            0
        }
        Err(e) => {
            eprintln!("eddy generate: {e:#}");
            crate::EXIT_USAGE
        }
    }
}

fn run(args: &GenerateArgs) -> Result<u64> {
    let mut generator = examples::make(&args.example, args.seed)?;
    if !(args.rate > 0.0) {
        bail!("--rate must be a positive number of events per second");
    }
    let table = sink_table(args, generator.schema(), generator.key())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut sink = eddy_connectors::create_sink(&table, Split { index: 0, count: 1 })
            .with_context(|| format!("cannot write to {}", args.to))?;
        let start_ms = args.start_ms.unwrap_or_else(|| chrono::Utc::now().timestamp_millis() / 1000 * 1000);
        let step = 1000.0 / args.rate;
        let time_ms = move |i: u64| start_ms + (i as f64 * step) as i64;
        // Batches of about 100 ms of events, so a slow rate still flows smoothly.
        let per_batch = ((args.rate / 10.0).ceil() as u64).clamp(1, 10_000);
        let began = Instant::now();
        let mut written = 0u64;
        let stop = tokio::signal::ctrl_c();
        tokio::pin!(stop);
        loop {
            let n = match args.count {
                Some(c) if written >= c => break,
                Some(c) => per_batch.min(c - written),
                None => per_batch,
            };
            if !args.fast {
                let due = began + Duration::from_secs_f64(written as f64 / args.rate);
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = &mut stop => break,
                }
            }
            let batch = generator.batch(written, n as usize, &time_ms)?;
            sink.write_batch(&batch, None).await.with_context(|| format!("writing to {}", args.to))?;
            written += n;
        }
        sink.finish().await.with_context(|| format!("finishing {}", args.to))?;
        Ok(written)
    })
}

/// The sink table `--to` names: `kafka://host:port/topic` or `file:///dir` (`file://dir`).
fn sink_table(args: &GenerateArgs, schema: SchemaRef, key: &[&str]) -> Result<ConnectorTable> {
    let mut options: Vec<(String, String)> = Vec::new();
    let mut distribution = None;
    if let Some(rest) = args.to.strip_prefix("kafka://") {
        let (bootstrap, topic) = rest.split_once('/').context("--to kafka://HOST:PORT/TOPIC needs a topic")?;
        options.extend([
            ("connector".into(), "kafka".into()),
            ("topic".into(), topic.to_string()),
            ("properties.bootstrap.servers".into(), bootstrap.to_string()),
            ("format".into(), args.format.clone()),
        ]);
        if args.format == "avro-confluent" {
            let url = args.registry.clone().context("--format avro-confluent needs --registry URL")?;
            options.push(("avro-confluent.url".into(), url));
        }
        if !key.is_empty() {
            options.push(("key.format".into(), "json".into()));
            options.push(("key.fields".into(), key.join(";")));
            options.push(("value.fields-include".into(), "ALL".into()));
        }
        // A topic that does not exist is created with this many partitions.
        distribution = args
            .partitions
            .map(|n| Distribution { columns: key.iter().map(|k| k.to_string()).collect(), buckets: Some(n) });
    } else if let Some(path) = args.to.strip_prefix("file://") {
        options.extend([
            ("connector".into(), "filesystem".into()),
            ("path".into(), path.to_string()),
            ("format".into(), if args.format == "avro-confluent" { "json".into() } else { args.format.clone() }),
        ]);
    } else {
        bail!("--to must be kafka://HOST:PORT/TOPIC or file://DIRECTORY, not '{}'", args.to);
    }
    Ok(ConnectorTable {
        name: args.example.clone(),
        schema: Arc::clone(&schema),
        metadata: Vec::new(),
        primary_key: Vec::new(),
        partition_keys: Vec::new(),
        distribution,
        options: Options::new(options),
        unread: vec![],
    })
}

/// `--start`: `2024-03-01 10:00:00` (UTC), milliseconds since the epoch, or `now-1h` (also
/// `now`, `now-90s`, `now-30m`, `now-2d`: the current second minus that much).
pub(crate) fn parse_start(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Some(ago) = text.trim().strip_prefix("now") {
        let now = chrono::Utc::now().timestamp_millis() / 1000 * 1000;
        if ago.is_empty() {
            return Ok(now);
        }
        let bad = || format!("'{text}': write now-<n>s, now-<n>m, now-<n>h or now-<n>d");
        let ago = ago.strip_prefix('-').ok_or_else(bad)?;
        let (n, unit) = ago.split_at(ago.len().saturating_sub(1));
        let n: i64 = n.parse().map_err(|_| bad())?;
        let unit_ms = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        return Ok(now - n * unit_ms);
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .map(|t| t.and_utc().timestamp_millis())
        .map_err(|_| format!("'{text}' is neither 'YYYY-MM-DD HH:MM:SS', now-1h nor milliseconds since the epoch"))
}

#[cfg(test)]
mod tests {
    use super::parse_start;

    #[test]
    fn start_times() {
        assert_eq!(parse_start("2024-03-01 10:00:00"), Ok(1_709_287_200_000));
        assert_eq!(parse_start("1709287200000"), Ok(1_709_287_200_000));
        let now = parse_start("now").unwrap();
        assert_eq!(now % 1000, 0);
        let hour_ago = parse_start("now-1h").unwrap();
        assert!((now - hour_ago - 3_600_000).abs() <= 1000, "{now} {hour_ago}");
        assert!(parse_start("now-90s").is_ok() && parse_start("now-2d").is_ok());
        assert!(parse_start("now+1h").is_err() && parse_start("now-1y").is_err() && parse_start("yesterday").is_err());
    }
}
