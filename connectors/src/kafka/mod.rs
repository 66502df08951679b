//! The `kafka` and `upsert-kafka` connectors, as Flink's, over librdkafka (the `rdkafka`
//! crate).
//!
//! | module | what |
//! |---|---|
//! | `mod.rs` | the checked options shared by source and sink ([`Config`]) |
//! | `layout` | which table columns live in the record key, the value, and metadata |
//! | `client` | librdkafka configuration, metadata, topic creation (`DISTRIBUTED INTO n BUCKETS`) |
//! | `source` | reading: partitions spread over splits, startup/bounded offsets, decoding |
//! | `sink` | writing: partitioners, keys, tombstones (upsert), timestamps and headers |
//! | `transaction` | exactly-once writing: records held per checkpoint, published in a transaction |
//!
//! Why Eddy assigns partitions itself rather than subscribing with a consumer group: like
//! Flink's `KafkaSource`, a job must know which split reads which partition (each
//! partition keeps its own watermark), and a group rebalance takes many seconds on some
//! brokers. Offsets are still committed to `properties.group.id`, so `group-offsets`
//! resumes where a previous run stopped and lag tools see the job.

#[cfg(test)]
mod broker_tests;
mod client;
mod layout;
mod records;
mod sink;
mod source;
#[cfg(test)]
mod tests;
mod transaction;

use std::time::Duration;

use regex::Regex;

pub(crate) use layout::Layout;

use crate::{ConnectorError, ConnectorTable, Result, Sink, Source, Split};

/// Options of the connectors themselves; `properties.*` go to librdkafka and the formats
/// check their own.
const OPTIONS: &[&str] = &[
    "connector",
    "topic",
    "topic-pattern",
    "format",
    "key.format",
    "key.fields",
    "key.fields-prefix",
    "value.format",
    "value.fields-include",
    "scan.startup.mode",
    "scan.startup.specific-offsets",
    "scan.startup.timestamp-millis",
    "scan.bounded.mode",
    "scan.bounded.specific-offsets",
    "scan.bounded.timestamp-millis",
    "scan.topic-partition-discovery.interval",
    "scan.parallelism",
    "sink.partitioner",
    "sink.delivery-guarantee",
    "sink.semantic",
    "sink.transactional-id-prefix",
    "sink.parallelism",
    "sink.buffer-flush.max-rows",
    "sink.buffer-flush.interval",
    "eddy.dead-letter-topic",
    RESUME_OPTION,
];

/// Set by the engine on a job started again (a server restart): each partition starts at
/// the offset the job's group committed, where there is one, and at `scan.startup.mode`'s
/// position otherwise, so records the job already handed on are not read twice.
pub const RESUME_OPTION: &str = "eddy.resume-from-committed-offsets";

/// Which of the two connectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `kafka`: an append-only stream of records.
    Append,
    /// `upsert-kafka`: a changelog keyed by the PRIMARY KEY; a null value deletes the key.
    Upsert,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Self::Append => "kafka",
            Self::Upsert => "upsert-kafka",
        }
    }
}

/// The topics a table reads or writes.
#[derive(Debug, Clone)]
pub(crate) enum Topics {
    /// `topic` = 'a' or 'a;b'.
    List(Vec<String>),
    /// `topic-pattern`: every topic whose whole name matches, at start.
    Pattern(Regex),
}

/// Where reading starts in each partition (`scan.startup.mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Startup {
    Earliest,
    Latest,
    /// The group's committed offsets; `reset` is `properties.auto.offset.reset` for
    /// partitions without one (none: an error, as Flink).
    GroupOffsets {
        reset: Option<ResetTo>,
    },
    /// The first record with a timestamp at or after this (ms).
    Timestamp(i64),
    /// `partition:0,offset:42;partition:1,offset:300`; other partitions start at the earliest.
    Specific(Vec<(i32, i64)>),
}

/// `auto.offset.reset` for `group-offsets` without a committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetTo {
    Earliest,
    Latest,
}

/// Where reading ends (`scan.bounded.mode`); the job ends when every partition reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bounded {
    Unbounded,
    /// The latest offsets when the job starts.
    Latest,
    /// The group's committed offsets when the job starts.
    GroupOffsets,
    /// Records with a timestamp after this (ms) are not read.
    Timestamp(i64),
    /// Per partition, the offset to stop before; partitions not listed are read to their
    /// latest offset at start.
    Specific(Vec<(i32, i64)>),
}

/// `sink.partitioner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Partitioner {
    /// Kafka's: by key hash (murmur2, as the Java client) when there is a key, else spread.
    Default,
    /// Sink subtask `i` writes to partition `i % partitions`.
    Fixed,
    /// Record by record over all partitions.
    RoundRobin,
}

/// `sink.delivery-guarantee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Wait for the broker to acknowledge every record before the job ends.
    AtLeastOnce,
    /// Hold each checkpoint's records and publish them in a Kafka transaction once it
    /// completes (see `sink` and `transaction`).
    ExactlyOnce,
    /// Do not wait for acknowledgements (records may be lost).
    None,
}

/// The checked options of a Kafka table.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) table: String,
    pub(crate) flavor: Flavor,
    pub(crate) topics: Topics,
    pub(crate) client: client::ClientOptions,
    pub(crate) layout: Layout,
    pub(crate) startup: Startup,
    pub(crate) bounded: Bounded,
    pub(crate) partitioner: Partitioner,
    pub(crate) delivery: Delivery,
    /// `sink.transactional-id-prefix`, set exactly with 'exactly-once': sink subtask `i`
    /// writes as transactional id `<prefix>-<i>`.
    pub(crate) transactional_id_prefix: Option<String>,
    pub(crate) dead_letter_topic: Option<String>,
    /// `DISTRIBUTED ... INTO n BUCKETS`: the topic is created with `n` partitions if missing.
    pub(crate) buckets: Option<u64>,
    /// How often an unbounded source looks for new partitions (and, with `topic-pattern`,
    /// new topics); `None`: never.
    pub(crate) discovery_interval: Option<Duration>,
    /// Start at the group's committed offsets where there are some ([`RESUME_OPTION`]).
    pub(crate) resume: bool,
}

/// Flink's default `scan.topic-partition-discovery.interval`.
const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(5 * 60);

impl Config {
    pub(crate) fn parse(table: &ConnectorTable) -> Result<Self> {
        let name = table.name.as_str();
        let o = &table.options;
        let flavor = match o.get("connector") {
            Some("upsert-kafka") => Flavor::Upsert,
            _ => Flavor::Append,
        };
        let err = |m: String| ConnectorError::options(name, m);
        let topics = match (o.get("topic"), o.get("topic-pattern")) {
            (Some(_), Some(_)) => return Err(err("options 'topic' and 'topic-pattern' cannot both be set".into())),
            (Some(t), None) => {
                let list: Vec<String> =
                    t.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
                if list.is_empty() {
                    return Err(err("option 'topic' names no topic".into()));
                }
                Topics::List(list)
            }
            (None, Some(p)) if flavor == Flavor::Append => Topics::Pattern(
                Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| err(format!("option 'topic-pattern' = '{p}' is not a valid regex: {e}")))?,
            ),
            (None, Some(_)) => {
                return Err(err("connector 'upsert-kafka' needs option 'topic' (no 'topic-pattern')".into()))
            }
            (None, None) => return Err(err("missing required option 'topic' (or 'topic-pattern')".into())),
        };
        let layout = Layout::parse(table, flavor)?;
        let known =
            |key: &str| OPTIONS.contains(&key) || key.starts_with("properties.") || layout.knows_format_option(key);
        if let Some(key) = o.keys().find(|k| !known(k)) {
            return Err(err(format!(
                "unsupported option '{key}' for connector '{}'; supported: {}, 'properties.*' (passed to \
                 librdkafka) and the options of the key and value formats",
                flavor.name(),
                OPTIONS.join(", ")
            )));
        }
        // As Flink's KafkaSource: every 5 minutes unless set; '0' turns it off.
        let discovery_interval = match o.get("scan.topic-partition-discovery.interval") {
            None => Some(DEFAULT_DISCOVERY_INTERVAL),
            Some(v) => match crate::options::parse_duration(v) {
                Some(d) if d.is_zero() => None,
                Some(d) => Some(d),
                None => {
                    return Err(err(format!(
                        "option 'scan.topic-partition-discovery.interval' = '{v}' is not a duration \
                         (e.g. '30 s', '5 min'; '0' turns discovery off)"
                    )))
                }
            },
        };
        let single_topic = matches!(&topics, Topics::List(l) if l.len() == 1);
        if flavor == Flavor::Upsert && (o.get("scan.startup.mode").is_some() || o.get("scan.bounded.mode").is_some()) {
            // Flink's upsert-kafka always reads the whole compacted topic.
            return Err(err(
                "connector 'upsert-kafka' always reads from the earliest offset; options 'scan.startup.mode' \
                 and 'scan.bounded.mode' are not available for it (use connector 'kafka')"
                    .into(),
            ));
        }
        let (startup, bounded) = match flavor {
            Flavor::Upsert => (Startup::Earliest, Bounded::Unbounded),
            Flavor::Append => (parse_startup(name, o, single_topic)?, parse_bounded(name, o, single_topic)?),
        };
        let partitioner = match o.get("sink.partitioner") {
            None | Some("default") => Partitioner::Default,
            Some("fixed") => Partitioner::Fixed,
            Some("round-robin") => Partitioner::RoundRobin,
            Some(other) => {
                return Err(err(format!(
                    "option 'sink.partitioner' = '{other}': custom partitioner classes are not supported in \
                     Eddy; use 'default', 'fixed' or 'round-robin'"
                )))
            }
        };
        // With DISTRIBUTED INTO n BUCKETS and no BY columns, records are spread over the buckets.
        let partitioner = match (&table.distribution, o.get("sink.partitioner")) {
            (Some(d), None) if d.columns.is_empty() => Partitioner::RoundRobin,
            _ => partitioner,
        };
        let delivery = match o.get("sink.delivery-guarantee").or(o.get("sink.semantic")) {
            None | Some("at-least-once") | Some("at_least_once") => Delivery::AtLeastOnce,
            Some("exactly-once") | Some("exactly_once") => Delivery::ExactlyOnce,
            Some("none") => Delivery::None,
            Some(other) => {
                return Err(err(format!(
                    "option 'sink.delivery-guarantee' = '{other}' must be 'at-least-once', 'exactly-once' or 'none'"
                )))
            }
        };
        let transactional_id_prefix = parse_transactional_id_prefix(name, o, delivery)?;
        if flavor == Flavor::Append
            && (o.get("sink.buffer-flush.max-rows").is_some() || o.get("sink.buffer-flush.interval").is_some())
        {
            return Err(err("options 'sink.buffer-flush.*' belong to connector 'upsert-kafka'".into()));
        }
        for key in ["sink.buffer-flush.max-rows", "sink.buffer-flush.interval"] {
            if o.get(key).is_some_and(|v| v.trim() != "0" && v.trim() != "0 ms" && v.trim() != "0ms") {
                return Err(err(format!(
                    "option '{key}' (reducing updates per key before writing) is not supported yet in this \
                     version of Eddy; every change is written"
                )));
            }
        }
        let buckets = table.distribution.as_ref().and_then(|d| d.buckets);
        if let Some(0) = buckets {
            return Err(err("DISTRIBUTED INTO 0 BUCKETS: a topic needs at least one partition".into()));
        }
        if buckets.is_some() && !single_topic {
            return Err(err("DISTRIBUTED INTO n BUCKETS needs exactly one topic in option 'topic'".into()));
        }
        // A bounded read knows its partitions at start (as in Flink).
        let discovery_interval = discovery_interval.filter(|_| bounded == Bounded::Unbounded);
        Ok(Self {
            table: name.to_string(),
            flavor,
            topics,
            client: client::ClientOptions::parse(name, o)?,
            layout,
            startup,
            bounded,
            partitioner,
            delivery,
            transactional_id_prefix,
            dead_letter_topic: o.get("eddy.dead-letter-topic").map(str::to_string),
            resume: o.get(RESUME_OPTION).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            buckets,
            discovery_interval,
        })
    }

    /// The one topic a sink writes (sinks take exactly one).
    pub(crate) fn sink_topic(&self) -> Result<&str> {
        match &self.topics {
            Topics::List(l) if l.len() == 1 => Ok(&l[0]),
            _ => Err(ConnectorError::options(
                &self.table,
                "a Kafka sink writes exactly one topic: set option 'topic' to one name",
            )),
        }
    }
}

fn parse_startup(table: &str, o: &crate::Options, single_topic: bool) -> Result<Startup> {
    let err = |m: String| ConnectorError::options(table, m);
    let mode = o.get("scan.startup.mode").unwrap_or("group-offsets");
    Ok(match mode {
        "earliest-offset" => Startup::Earliest,
        "latest-offset" => Startup::Latest,
        "group-offsets" => {
            let reset = match o.get("properties.auto.offset.reset") {
                None | Some("none") => None,
                Some("earliest") | Some("smallest") | Some("beginning") => Some(ResetTo::Earliest),
                Some("latest") | Some("largest") | Some("end") => Some(ResetTo::Latest),
                Some(v) => {
                    return Err(err(format!(
                        "option 'properties.auto.offset.reset' = '{v}' must be 'earliest', 'latest' or 'none'"
                    )))
                }
            };
            Startup::GroupOffsets { reset }
        }
        "timestamp" => {
            Startup::Timestamp(o.parse::<i64>(table, "scan.startup.timestamp-millis")?.ok_or_else(|| {
                err("'scan.startup.mode' = 'timestamp' needs option 'scan.startup.timestamp-millis'".into())
            })?)
        }
        "specific-offsets" => {
            if !single_topic {
                return Err(err(
                    "'scan.startup.mode' = 'specific-offsets' needs exactly one topic in option 'topic'".into()
                ));
            }
            let text = o.required(table, "scan.startup.specific-offsets")?;
            Startup::Specific(parse_specific_offsets(table, "scan.startup.specific-offsets", text)?)
        }
        other => {
            return Err(err(format!(
                "option 'scan.startup.mode' = '{other}' must be one of earliest-offset, latest-offset, \
                 group-offsets, timestamp, specific-offsets"
            )))
        }
    })
}

/// `sink.transactional-id-prefix`: required by 'exactly-once' (as in Flink), refused otherwise.
fn parse_transactional_id_prefix(table: &str, o: &crate::Options, delivery: Delivery) -> Result<Option<String>> {
    let err = |m: &str| Err(ConnectorError::options(table, m));
    match (delivery, o.get("sink.transactional-id-prefix").map(str::trim)) {
        (Delivery::ExactlyOnce, Some(p)) if !p.is_empty() => Ok(Some(p.to_string())),
        (Delivery::ExactlyOnce, Some(_)) => err("option 'sink.transactional-id-prefix' must not be empty"),
        (Delivery::ExactlyOnce, None) => {
            err("'sink.delivery-guarantee' = 'exactly-once' needs option 'sink.transactional-id-prefix': a prefix no \
             other job writing to this Kafka cluster uses (sink subtask i writes as transactional id \
             '<prefix>-i'; keep it when the job is restarted from a checkpoint)")
        }
        (_, Some(_)) => err("option 'sink.transactional-id-prefix' needs 'sink.delivery-guarantee' = 'exactly-once'"),
        (_, None) => Ok(None),
    }
}

fn parse_bounded(table: &str, o: &crate::Options, single_topic: bool) -> Result<Bounded> {
    let err = |m: String| ConnectorError::options(table, m);
    Ok(match o.get("scan.bounded.mode").unwrap_or("unbounded") {
        "unbounded" => Bounded::Unbounded,
        "latest-offset" => Bounded::Latest,
        "group-offsets" => {
            if o.get("properties.group.id").is_none() {
                return Err(err("'scan.bounded.mode' = 'group-offsets' needs option 'properties.group.id'".into()));
            }
            Bounded::GroupOffsets
        }
        "timestamp" => {
            Bounded::Timestamp(o.parse::<i64>(table, "scan.bounded.timestamp-millis")?.ok_or_else(|| {
                err("'scan.bounded.mode' = 'timestamp' needs option 'scan.bounded.timestamp-millis'".into())
            })?)
        }
        "specific-offsets" => {
            if !single_topic {
                return Err(err(
                    "'scan.bounded.mode' = 'specific-offsets' needs exactly one topic in option 'topic'".into()
                ));
            }
            let text = o.required(table, "scan.bounded.specific-offsets")?;
            Bounded::Specific(parse_specific_offsets(table, "scan.bounded.specific-offsets", text)?)
        }
        other => {
            return Err(err(format!(
                "option 'scan.bounded.mode' = '{other}' must be one of unbounded, latest-offset, group-offsets, \
                 timestamp, specific-offsets"
            )))
        }
    })
}

/// Flink's `partition:0,offset:42;partition:1,offset:300`.
pub(crate) fn parse_specific_offsets(table: &str, key: &str, text: &str) -> Result<Vec<(i32, i64)>> {
    let bad = |part: &str| {
        ConnectorError::options(
            table,
            format!(
                "option '{key}' = '{text}': cannot read '{part}'; expected 'partition:0,offset:42;partition:1,offset:300'"
            ),
        )
    };
    let mut out = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let mut partition = None;
        let mut offset = None;
        for kv in part.split(',') {
            let (k, v) = kv.split_once(':').ok_or_else(|| bad(part))?;
            match k.trim() {
                "partition" => partition = Some(v.trim().parse::<i32>().map_err(|_| bad(part))?),
                "offset" => offset = Some(v.trim().parse::<i64>().map_err(|_| bad(part))?),
                _ => return Err(bad(part)),
            }
        }
        match (partition, offset) {
            (Some(p), Some(o)) if p >= 0 && o >= 0 => out.push((p, o)),
            _ => return Err(bad(part)),
        }
    }
    if out.is_empty() {
        return Err(bad(text));
    }
    Ok(out)
}

impl Config {
    /// Checks that only matter when the table is read.
    fn check_source(&self) -> Result<()> {
        if matches!(self.startup, Startup::GroupOffsets { .. }) && self.client.group_id.is_none() {
            return Err(ConnectorError::options(
                &self.table,
                "'scan.startup.mode' = 'group-offsets' (the default) needs option 'properties.group.id'; or set \
                 'scan.startup.mode' = 'earliest-offset'",
            ));
        }
        self.layout.check_source(self)
    }
}

pub(crate) fn validate(table: &ConnectorTable, as_source: bool, as_sink: bool) -> Result<()> {
    let config = Config::parse(table)?;
    if as_source {
        config.check_source()?;
    }
    if as_sink {
        config.sink_topic()?;
        config.layout.check_sink(&config)?;
    }
    Ok(())
}

pub(crate) fn is_bounded(table: &ConnectorTable) -> Result<bool> {
    Ok(Config::parse(table)?.bounded != Bounded::Unbounded)
}

pub(crate) fn create_source(
    table: &ConnectorTable,
    split: Split,
    position: Option<&serde_json::Value>,
) -> Result<Box<dyn Source>> {
    let config = Config::parse(table)?;
    config.check_source()?;
    let resume_at = position.map(|p| source::Position::parse(&table.name, p)).transpose()?;
    Ok(Box::new(source::KafkaSource::new(config, split, resume_at)?))
}

pub(crate) fn create_sink(table: &ConnectorTable, split: Split) -> Result<Box<dyn Sink>> {
    let config = Config::parse(table)?;
    config.sink_topic()?;
    config.layout.check_sink(&config)?;
    Ok(Box::new(sink::KafkaSink::new(config, split)?))
}
