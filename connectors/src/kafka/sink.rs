//! The Kafka sink: every row becomes one record of the table's topic.
//!
//! The key holds the key fields (`key.fields`, the PRIMARY KEY of `upsert-kafka`, or the
//! `DISTRIBUTED BY` columns), the value the value fields, and the `timestamp` / `headers`
//! metadata columns, when declared, become the record's timestamp and headers. For
//! `upsert-kafka`, `+I`/`+U` rows are upserts, `-D` rows tombstones (null value) and `-U`
//! rows are dropped, as in Flink.
//!
//! Records go through librdkafka's queue (a `ThreadedProducer` serves deliveries on its own
//! thread); the first failed delivery fails the next call. `finish` waits until the broker
//! has acknowledged every record, and so does `pre_commit` at each checkpoint barrier: a
//! checkpoint completes only once the rows before it are in Kafka, so a restart from it
//! loses none (at-least-once: rows after it may be written twice). The producer is
//! idempotent (see [`idempotence_fits`]), so a request retried after a broken connection
//! does not write its records twice.
//!
//! Why 'exactly-once' is refused: Flink commits each checkpoint's Kafka transaction after
//! the checkpoint completes, and after a crash in between it resumes that transaction (by
//! producer id and epoch) to commit it. librdkafka (2.12) cannot resume another producer's
//! transaction: `init_transactions` with the same `transactional.id` aborts it, which would
//! lose the rows of a completed checkpoint. The test broker (Tansu 0.6) also shows aborted
//! records to `read_committed` consumers, so it could not check the guarantee.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, AsArray, Int8Array, MapArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use super::client::{self, broker_error};
use super::layout::Metadata;
use super::{Config, Delivery, Flavor, Partitioner};
use crate::format::record::RecordEncoder;
use crate::{ConnectorError, Result, RowKind, Sink, Split};

/// How long `finish` waits for acknowledgements before giving up.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(300);

/// Keeps the first delivery failure for the sink to report.
#[derive(Default)]
struct DeliveryWatch {
    failure: Mutex<Option<String>>,
}

impl ClientContext for DeliveryWatch {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        client::log_librdkafka(level, facility, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        client::log_librdkafka_error(&error, reason);
    }
}

impl ProducerContext for DeliveryWatch {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if let Ok(mut f) = self.failure.lock() {
                f.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

struct Open {
    producer: ThreadedProducer<DeliveryWatch>,
    topic: String,
    partitions: i32,
    key: Option<Box<dyn RecordEncoder>>,
    value: Box<dyn RecordEncoder>,
}

pub(crate) struct KafkaSink {
    config: Arc<Config>,
    split: Split,
    open: Option<Open>,
    /// The producer being opened in the background since the sink was made: looking up the
    /// topic and, for an idempotent producer, the producer id take a broker round trip or
    /// more (the test broker takes ~0.5 s for the id), which would otherwise stall the
    /// first batch while the source already has rows waiting.
    opening: Option<tokio::task::JoinHandle<Result<Open>>>,
    /// The next partition of `round-robin`.
    next_partition: i32,
    key_bytes: Vec<u8>,
    key_rows: Vec<Range<usize>>,
    value_bytes: Vec<u8>,
    value_rows: Vec<Range<usize>>,
}

impl KafkaSink {
    pub(crate) fn new(config: Config, split: Split) -> Result<Self> {
        let config = Arc::new(config);
        // Outside a runtime (unit tests, `eddy check`), the first write opens it instead.
        let opening = tokio::runtime::Handle::try_current().ok().map(|rt| rt.spawn(Self::open(config.clone())));
        Ok(Self {
            config,
            split,
            open: None,
            opening,
            next_partition: split.index as i32,
            key_bytes: Vec::new(),
            key_rows: Vec::new(),
            value_bytes: Vec::new(),
            value_rows: Vec::new(),
        })
    }

    /// The open producer: the one opening in the background, or a new one.
    async fn ensure_open(&mut self) -> Result<()> {
        if self.open.is_some() {
            return Ok(());
        }
        let open = match self.opening.take() {
            Some(task) => task.await.map_err(|e| broker_error(&self.config, "cannot open the Kafka sink", e))??,
            None => Self::open(self.config.clone()).await?,
        };
        self.open = Some(open);
        Ok(())
    }

    async fn open(config: Arc<Config>) -> Result<Open> {
        let config = &config;
        let meta = client::metadata_client(config)?;
        let topics = client::resolve_topics(config, &meta).await?;
        let (topic, partitions) = topics.into_iter().next().ok_or_else(|| {
            ConnectorError::options(&config.table, "a Kafka sink writes exactly one topic: set option 'topic'")
        })?;
        let idempotence = if idempotence_fits(&config.client) { "true" } else { "false" };
        let producer: ThreadedProducer<DeliveryWatch> = config
            .client
            // Java's default partitioner, so Flink and Kafka clients agree on key -> partition.
            .config(&[("partitioner", "murmur2_random"), ("enable.idempotence", idempotence)])
            .set("bootstrap.servers", &config.client.bootstrap)
            .create_with_context(DeliveryWatch::default())
            .map_err(|e| broker_error(config, "cannot create a Kafka producer", e))?;
        let key = match &config.layout.key {
            Some(k) => Some(k.encoder(&config.table, &topic)?),
            None => None,
        };
        let value = config.layout.value.encoder(&config.table, &topic)?;
        Ok(Open { producer, topic, partitions, key, value })
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        // A job that failed before its first write does not leave a producer opening.
        if let Some(task) = &self.opening {
            task.abort();
        }
    }
}

/// Whether the producer is idempotent by default: yes, as the Java client's (and so
/// Flink's) since Kafka 3.0, unless the table's properties ask for what an idempotent
/// producer cannot do (acks other than all, more than 5 requests in flight, no retries),
/// where the Java client turns it off too; `properties.enable.idempotence` decides over both.
///
/// Without it, a produce request whose answer is lost (a broken connection, a broker
/// restart) is sent again and its records are written twice; with it, the broker
/// recognises the retry by the producer id and sequence number and writes them once.
pub(super) fn idempotence_fits(client: &client::ClientOptions) -> bool {
    let set = |keys: [&str; 2]| keys.into_iter().filter_map(|k| client.property(k)).map(str::trim).collect::<Vec<_>>();
    let acks_all = set(["acks", "request.required.acks"]).iter().all(|a| matches!(*a, "all" | "-1"));
    let in_flight_ok = set(["max.in.flight.requests.per.connection", "max.in.flight"])
        .iter()
        .all(|n| n.parse::<u32>().is_ok_and(|n| n <= 5));
    let retries = set(["retries", "message.send.max.retries"]).iter().all(|n| *n != "0");
    acks_all && in_flight_ok && retries
}

/// The first failed delivery, as the sink's error.
fn check_deliveries(config: &Config, open: &Open) -> Result<()> {
    let failure = open.producer.context().failure.lock().ok().and_then(|f| f.clone());
    match failure {
        Some(f) => Err(broker_error(config, &format!("writing to topic '{}' failed", open.topic), f)),
        None => Ok(()),
    }
}

/// The rows of `batch` at `columns` (a key or value part), as a batch of the part's schema.
fn project(batch: &RecordBatch, columns: &[usize], schema: &arrow::datatypes::SchemaRef) -> Result<RecordBatch> {
    let arrays = columns.iter().map(|i| batch.column(*i).clone()).collect();
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| ConnectorError::arrow("kafka sink", e))
}

#[async_trait::async_trait]
impl Sink for KafkaSink {
    async fn write_batch(&mut self, batch: &RecordBatch, row_kinds: Option<&Int8Array>) -> Result<()> {
        self.ensure_open().await?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let config = self.config.clone();
        let layout = &config.layout;
        let Some(open) = self.open.as_mut() else { return Ok(()) };

        self.key_bytes.clear();
        self.key_rows.clear();
        self.value_bytes.clear();
        self.value_rows.clear();
        if let (Some(enc), Some(part)) = (open.key.as_mut(), &layout.key) {
            enc.encode(&project(batch, &part.columns, &part.schema)?, &mut self.key_bytes, &mut self.key_rows)?;
        }
        open.value.encode(
            &project(batch, &layout.value.columns, &layout.value.schema)?,
            &mut self.value_bytes,
            &mut self.value_rows,
        )?;

        let timestamps = match layout.metadata.iter().find(|(_, m)| *m == Metadata::Timestamp) {
            Some((i, _)) => {
                let ms = cast(batch.column(*i), &DataType::Timestamp(TimeUnit::Millisecond, None))
                    .and_then(|a| cast(&a, &DataType::Int64))
                    .map_err(|e| ConnectorError::arrow("kafka sink: timestamp metadata", e))?;
                Some(ms.as_primitive::<arrow::datatypes::Int64Type>().clone())
            }
            None => None,
        };
        let headers: Option<&MapArray> = layout
            .metadata
            .iter()
            .find(|(_, m)| *m == Metadata::Headers)
            .and_then(|(i, _)| batch.column(*i).as_map_opt());

        for row in 0..batch.num_rows() {
            let kind =
                row_kinds.map_or(RowKind::Insert, |k| RowKind::from_code(k.value(row)).unwrap_or(RowKind::Insert));
            let payload = match (config.flavor, kind) {
                (Flavor::Upsert, RowKind::UpdateBefore) => continue,
                (Flavor::Upsert, RowKind::Delete) => None,
                (Flavor::Append, k) if k != RowKind::Insert => {
                    return Err(ConnectorError::options(
                        &config.table,
                        format!(
                            "connector 'kafka' writes only inserts but got a {k} row; use connector 'upsert-kafka' \
                             with a PRIMARY KEY for an updating query"
                        ),
                    ))
                }
                _ => Some(&self.value_bytes[self.value_rows[row].clone()]),
            };
            let key = self.key_rows.get(row).map(|r| &self.key_bytes[r.clone()]);
            let partition = match config.partitioner {
                Partitioner::Default => None,
                Partitioner::Fixed => Some(self.split.index as i32 % open.partitions.max(1)),
                Partitioner::RoundRobin => {
                    let p = self.next_partition % open.partitions.max(1);
                    self.next_partition = (self.next_partition + 1) % open.partitions.max(1);
                    Some(p)
                }
            };
            let timestamp = timestamps.as_ref().filter(|ts| ts.is_valid(row)).map(|ts| ts.value(row));
            loop {
                // Built anew on each try: a record (its headers) cannot be held across a wait.
                let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&open.topic);
                if let Some(k) = key {
                    record = record.key(k);
                }
                if let Some(p) = payload {
                    record = record.payload(p);
                }
                if let Some(p) = partition {
                    record = record.partition(p);
                }
                if let Some(ts) = timestamp {
                    record = record.timestamp(ts);
                }
                if let Some(h) = headers.filter(|h| h.is_valid(row)) {
                    record = record.headers(owned_headers(h, row));
                }
                let full = match open.producer.send(record) {
                    Ok(()) => false,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => true,
                    Err((e, _)) => {
                        return Err(broker_error(&config, &format!("cannot write to topic '{}'", open.topic), e))
                    }
                };
                if !full {
                    break;
                }
                // librdkafka's queue is full: wait for the broker to take some.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        check_deliveries(&config, open)
    }

    async fn finish(&mut self) -> Result<()> {
        // Even when nothing was written: the topic is checked (and created if declared).
        self.ensure_open().await?;
        self.await_deliveries().await
    }

    async fn pre_commit(&mut self, _epoch: u64) -> Result<Option<serde_json::Value>> {
        // Nothing written yet (the producer may still be opening): nothing to wait for.
        if self.open.is_some() {
            self.await_deliveries().await?;
        }
        Ok(None)
    }
}

impl KafkaSink {
    /// Wait until the broker has acknowledged every record sent so far (unless the delivery
    /// guarantee is 'none'), and report the first failed delivery. The producer's own
    /// thread sends and serves the reports; this only watches its count, so the runtime's
    /// thread is not blocked as `flush` would block it.
    async fn await_deliveries(&self) -> Result<()> {
        let Some(open) = self.open.as_ref() else { return Ok(()) };
        if self.config.delivery != Delivery::None {
            let start = std::time::Instant::now();
            loop {
                let in_flight = open.producer.in_flight_count();
                if in_flight == 0 {
                    break;
                }
                // A failed record will not be retried: no use waiting for the others.
                check_deliveries(&self.config, open)?;
                if start.elapsed() > FLUSH_TIMEOUT {
                    return Err(broker_error(
                        &self.config,
                        "writing failed",
                        format!("{in_flight} records not acknowledged within {} s", FLUSH_TIMEOUT.as_secs()),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        check_deliveries(&self.config, open)
    }
}

/// The headers of one row of a `MAP<STRING, BYTES>` column.
fn owned_headers(map: &MapArray, row: usize) -> OwnedHeaders {
    let mut out = OwnedHeaders::new();
    let entries = map.value(row);
    let keys = entries.column(0);
    let values = entries.column(1);
    let (Some(keys), Some(values)) = (keys.as_string_opt::<i32>(), values.as_binary_opt::<i32>()) else {
        return out;
    };
    for i in 0..keys.len() {
        let value = values.is_valid(i).then(|| values.value(i));
        out = out.insert(Header { key: keys.value(i), value });
    }
    out
}
