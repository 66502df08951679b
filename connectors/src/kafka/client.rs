//! Talking to the broker: librdkafka configuration from `properties.*`, metadata, and the
//! topic a `DISTRIBUTED INTO n BUCKETS` table needs.
//!
//! librdkafka's metadata calls block; they run on tokio's blocking pool so a job's other
//! tasks keep going while a broker is slow to answer.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientConfig;

use super::{Config, Topics};
use crate::{ConnectorError, Options, Result};

/// How long opening a connection may take when `properties.socket.timeout.ms` is not set.
const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The client side of a table's options.
#[derive(Debug, Clone)]
pub(crate) struct ClientOptions {
    pub(crate) bootstrap: String,
    pub(crate) group_id: Option<String>,
    /// `properties.*` without the prefix, for librdkafka.
    properties: Vec<(String, String)>,
    /// How long to wait for the broker at start (`properties.socket.timeout.ms`).
    pub(crate) open_timeout: Duration,
    /// Replication of topics Eddy creates (`properties.replication.factor`, default 1).
    replication: i32,
}

/// Java client properties that librdkafka does not know; Flink users' files carry them.
/// They are dropped (with the reason in the log) instead of failing librdkafka's config.
const JAVA_ONLY_PROPERTIES: &[&str] = &[
    "key.deserializer",
    "value.deserializer",
    "key.serializer",
    "value.serializer",
    "partition.discovery.interval.ms",
    "client.id.prefix",
    "register.consumer.metrics",
    "commit.offsets.on.checkpoint",
    "flink.partition-discovery.interval-millis",
    "default.api.timeout.ms",
    "request.timeout.ms",
    // Eddy's own: the replication of topics it creates.
    "replication.factor",
];

impl ClientOptions {
    pub(crate) fn parse(table: &str, o: &Options) -> Result<Self> {
        let bootstrap = o.required(table, "properties.bootstrap.servers")?.to_string();
        let open_timeout = match o.parse::<u64>(table, "properties.socket.timeout.ms")? {
            Some(ms) => Duration::from_millis(ms.max(1)),
            None => DEFAULT_OPEN_TIMEOUT,
        };
        let properties = o
            .with_prefix("properties.")
            .filter(|(k, _)| !JAVA_ONLY_PROPERTIES.contains(k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let replication = o.parse::<i32>(table, "properties.replication.factor")?.unwrap_or(1);
        Ok(Self {
            bootstrap,
            group_id: o.get("properties.group.id").map(str::to_string),
            properties,
            open_timeout,
            replication,
        })
    }

    /// The value the table gives librdkafka property `key` (`properties.<key>`), if any.
    pub(crate) fn property(&self, key: &str) -> Option<&str> {
        self.properties.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A librdkafka configuration with the table's properties; `defaults` apply unless the
    /// user set the same key.
    pub(crate) fn config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

/// An error talking to the broker, naming the table and the address.
pub(crate) fn broker_error(config: &Config, what: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Kafka {
        table: config.table.clone(),
        message: format!("{what} (bootstrap servers '{}'): {e}", config.client.bootstrap),
    }
}

/// A consumer-type client for metadata (consumers never auto-create topics).
pub(crate) fn metadata_client(config: &Config) -> Result<Arc<BaseConsumer>> {
    let timeout = config.client.open_timeout.as_millis().to_string();
    let c = config
        .client
        .config(&[("socket.timeout.ms", &timeout), ("allow.auto.create.topics", "false")])
        .set("bootstrap.servers", &config.client.bootstrap)
        .set("enable.auto.commit", "false")
        .create::<BaseConsumer>()
        .map_err(|e| broker_error(config, "cannot create a Kafka client", e))?;
    Ok(Arc::new(c))
}

/// Partition counts of topics; `None` for a topic the broker does not have.
pub(crate) async fn partition_counts(
    config: &Config,
    client: &Arc<BaseConsumer>,
    topics: &[String],
) -> Result<Vec<(String, Option<i32>)>> {
    let client = client.clone();
    let topics = topics.to_vec();
    let timeout = config.client.open_timeout;
    let result = tokio::task::spawn_blocking(move || -> std::result::Result<_, KafkaError> {
        let mut out = Vec::new();
        for t in topics {
            let md = client.fetch_metadata(Some(&t), timeout)?;
            let count = md.topics().iter().find(|m| m.name() == t).and_then(|m| match m.error() {
                None if !m.partitions().is_empty() => Some(m.partitions().len() as i32),
                _ => None,
            });
            out.push((t, count));
        }
        Ok(out)
    })
    .await
    .map_err(|e| broker_error(config, "metadata request failed", e))?;
    result.map_err(|e| unreachable_error(config, e))
}

/// Every topic name the broker has (for `topic-pattern`).
pub(crate) async fn all_topics(config: &Config, client: &Arc<BaseConsumer>) -> Result<Vec<(String, i32)>> {
    let client = client.clone();
    let timeout = config.client.open_timeout;
    let result = tokio::task::spawn_blocking(move || -> std::result::Result<_, KafkaError> {
        let md = client.fetch_metadata(None, timeout)?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect::<Vec<_>>())
    })
    .await
    .map_err(|e| broker_error(config, "metadata request failed", e))?;
    result.map_err(|e| unreachable_error(config, e))
}

/// The error for a broker that did not answer in time.
pub(crate) fn unreachable_error(config: &Config, e: KafkaError) -> ConnectorError {
    let timeout = config.client.open_timeout;
    broker_error(
        config,
        &format!(
            "cannot reach Kafka within {} ms (set by 'properties.socket.timeout.ms'); check \
             'properties.bootstrap.servers'",
            timeout.as_millis()
        ),
        e,
    )
}

/// The topics a table names, with their partition counts. A missing topic is created when
/// the table declares `DISTRIBUTED INTO n BUCKETS`; otherwise it is an error. An existing
/// topic with another partition count than the buckets is an error.
pub(crate) async fn resolve_topics(config: &Config, client: &Arc<BaseConsumer>) -> Result<Vec<(String, i32)>> {
    let names = match &config.topics {
        Topics::Pattern(re) => {
            let mut found: Vec<(String, i32)> =
                all_topics(config, client).await?.into_iter().filter(|(t, _)| re.is_match(t)).collect();
            found.sort();
            return Ok(found);
        }
        Topics::List(l) => l.clone(),
    };
    let mut out = Vec::new();
    for (topic, count) in partition_counts(config, client, &names).await? {
        let count = match (count, config.buckets) {
            (Some(c), Some(b)) if c as u64 != b => {
                return Err(ConnectorError::options(
                    &config.table,
                    format!(
                        "topic '{topic}' exists with {c} partitions, but the table declares DISTRIBUTED INTO {b} \
                         BUCKETS; make them agree (Kafka cannot change a topic's partitioning in place)"
                    ),
                ))
            }
            (Some(c), _) => c,
            (None, Some(b)) => create_topic(config, &topic, b as i32).await?,
            (None, None) => {
                return Err(ConnectorError::options(
                    &config.table,
                    format!(
                        "topic '{topic}' does not exist on '{}'; create it, or declare DISTRIBUTED INTO n BUCKETS \
                         on the table to let Eddy create it",
                        config.client.bootstrap
                    ),
                ))
            }
        };
        out.push((topic, count));
    }
    Ok(out)
}

/// The source's topics and their partition counts as the broker has them now, for
/// partition discovery: like [`resolve_topics`], but a listed topic that is missing is
/// left out and nothing is created or compared with DISTRIBUTED INTO n BUCKETS.
pub(crate) async fn discover_topics(config: &Config, client: &Arc<BaseConsumer>) -> Result<Vec<(String, i32)>> {
    match &config.topics {
        Topics::Pattern(_) => resolve_topics(config, client).await,
        Topics::List(names) => Ok(partition_counts(config, client, names)
            .await?
            .into_iter()
            .filter_map(|(topic, count)| count.map(|c| (topic, c)))
            .collect()),
    }
}

/// Create `topic` with `partitions` partitions (the broker's default replication); a
/// concurrent creation of the same topic by another task is fine.
async fn create_topic(config: &Config, topic: &str, partitions: i32) -> Result<i32> {
    let admin: AdminClient<DefaultClientContext> = config
        .client
        .config(&[])
        .set("bootstrap.servers", &config.client.bootstrap)
        .create()
        .map_err(|e| broker_error(config, "cannot create a Kafka admin client", e))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(config.client.replication));
    let options = AdminOptions::new().operation_timeout(Some(config.client.open_timeout));
    let results = admin
        .create_topics([&new], &options)
        .await
        .map_err(|e| broker_error(config, &format!("cannot create topic '{topic}'"), e))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(table = %config.table, topic, partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(broker_error(config, &format!("cannot create topic '{topic}'"), code)),
        }
    }
    Ok(partitions)
}

/// How librdkafka's own log lines and global errors reach Eddy's log. librdkafka reports
/// what it rides out by itself (a broker restarting, a connection reset, "all brokers
/// down" while they come back) as errors; Eddy fails the job when it cannot go on, so
/// these are warnings, and end-of-partition events (which the source asks for) are not
/// worth a line at all.
pub(crate) fn log_librdkafka(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
        | RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{facility}: {message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", "{facility}: {message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{facility}: {message}"),
    }
}

/// See [`log_librdkafka`].
pub(crate) fn log_librdkafka_error(error: &KafkaError, reason: &str) {
    match error {
        KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF) => {
            tracing::trace!(target: "librdkafka", "{reason}")
        }
        _ => tracing::warn!(target: "librdkafka", "{error}: {reason}"),
    }
}

/// The consumer's context: librdkafka's messages go through [`log_librdkafka`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_librdkafka_error(&error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for QuietContext {}
