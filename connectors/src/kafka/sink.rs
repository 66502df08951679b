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
//! With `'sink.delivery-guarantee' = 'exactly-once'` (which needs
//! `'sink.transactional-id-prefix'`; subtask `i` writes as transactional id `<prefix>-<i>`),
//! rows are encoded the same way but held in memory instead of produced: at checkpoint
//! barrier E they become epoch E, which goes into the checkpoint (records as base64), and
//! once the checkpoint completes every held epoch up to it is produced and committed in one
//! Kafka transaction. As in Flink, `read_committed` consumers see a checkpoint's rows only
//! when it completes; unlike Flink, a subtask holds its output of a checkpoint interval or
//! more in memory (until the checkpoint completes), and each checkpoint stores it again, a
//! third larger as base64 (built as JSON at the barrier, briefly several times its size):
//! long intervals with heavy output cost memory and checkpoint time. After a crash, the restored checkpoint's epochs are published
//! again unless a marker committed with them (consumer group offsets) says they were. Each
//! record carries header `eddy.txn` = `<transactional id>:<epoch>:<n>`, which lets recovery
//! skip records a broker showed from the dead transaction: Tansu 0.6 shows records of
//! aborted transactions to `read_committed` consumers (Kafka hides them), and these are not
//! written twice. How it works, and its limits, in [`super::transaction`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, AsArray, Int8Array, MapArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use super::client::{self, broker_error};
use super::layout::{Layout, Metadata};
use super::transaction::{self, Bytes, HeldRecord, Transactions, WriteAhead};
use super::{Config, Delivery, Flavor, Partitioner};
use crate::format::record::RecordEncoder;
use crate::{ConnectorError, Result, RowKind, Sink, Split};

/// How long `finish` waits for acknowledgements before giving up.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(300);

/// Keeps the first delivery failure for the sink to report, and for a transactional
/// producer the offsets its records got.
#[derive(Default)]
pub(super) struct DeliveryWatch {
    failure: Mutex<Option<String>>,
    /// Exactly-once only: per partition, the highest offset delivered since the last
    /// [`DeliveryWatch::take_delivered`].
    delivered: Option<Mutex<BTreeMap<i32, i64>>>,
}

impl DeliveryWatch {
    fn tracking_offsets() -> Self {
        Self { failure: Mutex::default(), delivered: Some(Mutex::default()) }
    }

    /// The first failed delivery, if any.
    pub(super) fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Per partition, the highest offset delivered since the last call; cleared.
    pub(super) fn take_delivered(&self) -> BTreeMap<i32, i64> {
        let delivered = self.delivered.as_ref().and_then(|d| d.lock().ok());
        delivered.map(|mut d| std::mem::take(&mut *d)).unwrap_or_default()
    }
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
        match result {
            Err((e, _)) => {
                if let Ok(mut f) = self.failure.lock() {
                    f.get_or_insert_with(|| e.to_string());
                }
            }
            Ok(m) => {
                if let Some(mut delivered) = self.delivered.as_ref().and_then(|d| d.lock().ok()) {
                    let last = delivered.entry(m.partition()).or_insert(m.offset());
                    *last = (*last).max(m.offset());
                }
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
    /// Exactly-once: the producer's transactions and the writer's marker.
    transactions: Option<Arc<Transactions>>,
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
    /// Exactly-once: the records held until their checkpoint completes.
    write_ahead: Option<WriteAhead>,
}

impl KafkaSink {
    pub(crate) fn new(config: Config, split: Split) -> Result<Self> {
        let config = Arc::new(config);
        let transactional_id = config.transactional_id_prefix.as_ref().map(|p| format!("{p}-{}", split.index));
        // Outside a runtime (unit tests, `eddy check`), the first write opens it instead.
        let opening = tokio::runtime::Handle::try_current()
            .ok()
            .map(|rt| rt.spawn(Self::open(config.clone(), transactional_id.clone())));
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
            write_ahead: transactional_id.map(WriteAhead::new),
        })
    }

    /// The open producer: the one opening in the background, or a new one.
    async fn ensure_open(&mut self) -> Result<()> {
        if self.open.is_some() {
            return Ok(());
        }
        let open = match self.opening.take() {
            Some(task) => task.await.map_err(|e| broker_error(&self.config, "cannot open the Kafka sink", e))??,
            None => {
                let id = self.write_ahead.as_ref().map(|w| w.id().to_string());
                Self::open(self.config.clone(), id).await?
            }
        };
        self.open = Some(open);
        Ok(())
    }

    /// The producer, and with `transactional_id` its transactions (a predecessor with the
    /// same id is fenced and its open transaction aborted).
    async fn open(config: Arc<Config>, transactional_id: Option<String>) -> Result<Open> {
        let meta = client::metadata_client(&config)?;
        let topics = client::resolve_topics(&config, &meta).await?;
        let (topic, partitions) = topics.into_iter().next().ok_or_else(|| {
            ConnectorError::options(&config.table, "a Kafka sink writes exactly one topic: set option 'topic'")
        })?;
        let producer = Self::producer(&config, transactional_id.as_deref())?;
        let key = match &config.layout.key {
            Some(k) => Some(k.encoder(&config.table, &topic)?),
            None => None,
        };
        let value = config.layout.value.encoder(&config.table, &topic)?;
        let transactions = match transactional_id {
            Some(id) => {
                let (c, producer, topic) = (config.clone(), producer.clone(), topic.clone());
                let opened =
                    tokio::task::spawn_blocking(move || Transactions::open(c, id, producer, topic, partitions)).await;
                Some(Arc::new(opened.map_err(|e| broker_error(&config, "cannot start transactions", e))??))
            }
            None => None,
        };
        Ok(Open { producer, topic, partitions, key, value, transactions })
    }

    fn producer(config: &Config, transactional_id: Option<&str>) -> Result<ThreadedProducer<DeliveryWatch>> {
        let idempotence = if transactional_id.is_some() || idempotence_fits(&config.client) { "true" } else { "false" };
        // Java's default partitioner, so Flink and Kafka clients agree on key -> partition.
        let mut defaults = vec![("partitioner", "murmur2_random"), ("enable.idempotence", idempotence)];
        if transactional_id.is_some() {
            defaults.push(("transaction.timeout.ms", transaction::TRANSACTION_TIMEOUT_MS));
        }
        let mut settings = config.client.config(&defaults);
        settings.set("bootstrap.servers", &config.client.bootstrap);
        let watch = match transactional_id {
            Some(id) => {
                settings.set("transactional.id", id);
                DeliveryWatch::tracking_offsets()
            }
            None => DeliveryWatch::default(),
        };
        settings.create_with_context(watch).map_err(|e| broker_error(config, "cannot create a Kafka producer", e))
    }

    /// Exactly-once: the held records and the transactions publishing them (the producer
    /// opened first); `None` for the other guarantees.
    async fn exactly_once(&mut self) -> Result<Option<(&mut WriteAhead, &Arc<Transactions>)>> {
        if self.write_ahead.is_none() {
            return Ok(None);
        }
        self.ensure_open().await?;
        let transactions = self.open.as_ref().and_then(|o| o.transactions.as_ref());
        Ok(self.write_ahead.as_mut().zip(transactions))
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
    match open.producer.context().failure() {
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
        self.encode(batch)?;
        let metadata = RowMetadata::of(&config.layout, batch)?;
        // A held record without a timestamp column gets the time it was written, not the
        // later time its checkpoint completes (nor a new one when published again).
        let now = self.write_ahead.is_some().then(now_ms);
        let Some(open) = self.open.as_ref() else { return Ok(()) };
        for row in 0..batch.num_rows() {
            let Some(value) = value_of(&config, row_kinds, row, &self.value_bytes, &self.value_rows)? else {
                continue;
            };
            let partition = choose_partition(&config, self.split, &mut self.next_partition, open.partitions);
            let record = Outgoing {
                key: self.key_rows.get(row).map(|r| &self.key_bytes[r.clone()]),
                value,
                partition,
                timestamp: metadata.timestamp(row),
                headers: metadata.headers(row),
            };
            match self.write_ahead.as_mut() {
                Some(held) => held.hold(record.held(now)),
                None => send(&config, open, &record).await?,
            }
        }
        check_deliveries(&config, open)
    }

    async fn finish(&mut self) -> Result<()> {
        // Even when nothing was written: the topic is checked (and created if declared).
        self.ensure_open().await?;
        if let Some((held, transactions)) = self.exactly_once().await? {
            return held.finish(transactions).await;
        }
        self.await_deliveries().await
    }

    async fn pre_commit(&mut self, epoch: u64) -> Result<Option<serde_json::Value>> {
        if let Some((held, transactions)) = self.exactly_once().await? {
            return held.pre_commit(transactions, epoch).await.map(Some);
        }
        // Nothing written yet (the producer may still be opening): nothing to wait for.
        if self.open.is_some() {
            self.await_deliveries().await?;
        }
        Ok(None)
    }

    async fn commit(&mut self, epoch: u64) -> Result<()> {
        match self.exactly_once().await? {
            Some((held, transactions)) => held.commit(transactions, epoch).await,
            None => Ok(()),
        }
    }

    async fn recover(&mut self, state: Option<serde_json::Value>) -> Result<()> {
        match self.exactly_once().await? {
            Some((held, transactions)) => held.recover(transactions, state).await,
            None => Ok(()),
        }
    }
}

impl KafkaSink {
    /// Encode the key and value parts of `batch` into `key_bytes` / `value_bytes`, one
    /// range per row.
    fn encode(&mut self, batch: &RecordBatch) -> Result<()> {
        let layout = &self.config.layout;
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
        )
    }

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

/// One record about to be written, borrowing the encoded row.
struct Outgoing<'a> {
    key: Option<&'a [u8]>,
    /// `None`: a tombstone.
    value: Option<&'a [u8]>,
    partition: Option<i32>,
    timestamp: Option<i64>,
    /// The `headers` column and the row, when declared and not null.
    headers: Option<(&'a MapArray, usize)>,
}

impl Outgoing<'_> {
    /// Built anew on each try: a record (its headers) cannot be held across a wait.
    fn base_record<'r>(&'r self, topic: &'r str) -> BaseRecord<'r, [u8], [u8]> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(k) = self.key {
            record = record.key(k);
        }
        if let Some(v) = self.value {
            record = record.payload(v);
        }
        if let Some(p) = self.partition {
            record = record.partition(p);
        }
        if let Some(ts) = self.timestamp {
            record = record.timestamp(ts);
        }
        if let Some((h, row)) = self.headers {
            record = record.headers(owned_headers(h, row));
        }
        record
    }

    /// The record to hold until its checkpoint completes; `now` stamps it if it has no
    /// timestamp of its own.
    fn held(&self, now: Option<i64>) -> HeldRecord {
        HeldRecord {
            key: self.key.map(|k| Bytes(k.to_vec())),
            value: self.value.map(|v| Bytes(v.to_vec())),
            partition: self.partition,
            timestamp: self.timestamp.or(now),
            headers: self.headers.map(|(h, row)| header_pairs(h, row)).unwrap_or_default(),
        }
    }
}

/// Produce `record` now (at-least-once and none), waiting while librdkafka's queue is full.
async fn send(config: &Config, open: &Open, record: &Outgoing<'_>) -> Result<()> {
    loop {
        match open.producer.send(record.base_record(&open.topic)) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                // Wait for the broker to take some.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err((e, _)) => return Err(broker_error(config, &format!("cannot write to topic '{}'", open.topic), e)),
        }
    }
}

/// The record value of `row`: `None` when the row is not written at all (`-U` of
/// upsert-kafka), `Some(None)` for a tombstone (its `-D`). An update to an append-only
/// topic is an error.
fn value_of<'a>(
    config: &Config,
    row_kinds: Option<&Int8Array>,
    row: usize,
    bytes: &'a [u8],
    rows: &[Range<usize>],
) -> Result<Option<Option<&'a [u8]>>> {
    let kind = row_kinds.map_or(RowKind::Insert, |k| RowKind::from_code(k.value(row)).unwrap_or(RowKind::Insert));
    match (config.flavor, kind) {
        (Flavor::Upsert, RowKind::UpdateBefore) => Ok(None),
        (Flavor::Upsert, RowKind::Delete) => Ok(Some(None)),
        (Flavor::Append, k) if k != RowKind::Insert => Err(ConnectorError::options(
            &config.table,
            format!(
                "connector 'kafka' writes only inserts but got a {k} row; use connector 'upsert-kafka' with a \
                 PRIMARY KEY for an updating query"
            ),
        )),
        _ => Ok(Some(Some(&bytes[rows[row].clone()]))),
    }
}

/// The partition `sink.partitioner` gives the next record; `None`: librdkafka's (by key).
fn choose_partition(config: &Config, split: Split, next: &mut i32, partitions: i32) -> Option<i32> {
    let partitions = partitions.max(1);
    match config.partitioner {
        Partitioner::Default => None,
        Partitioner::Fixed => Some(split.index as i32 % partitions),
        Partitioner::RoundRobin => {
            let p = *next % partitions;
            *next = (*next + 1) % partitions;
            Some(p)
        }
    }
}

/// The metadata columns of a batch that become parts of the record.
struct RowMetadata<'a> {
    /// `timestamp`, in ms.
    timestamps: Option<arrow::array::Int64Array>,
    headers: Option<&'a MapArray>,
}

impl<'a> RowMetadata<'a> {
    fn of(layout: &Layout, batch: &'a RecordBatch) -> Result<Self> {
        let timestamps = match layout.metadata.iter().find(|(_, m)| *m == Metadata::Timestamp) {
            Some((i, _)) => {
                let ms = cast(batch.column(*i), &DataType::Timestamp(TimeUnit::Millisecond, None))
                    .and_then(|a| cast(&a, &DataType::Int64))
                    .map_err(|e| ConnectorError::arrow("kafka sink: timestamp metadata", e))?;
                Some(ms.as_primitive::<arrow::datatypes::Int64Type>().clone())
            }
            None => None,
        };
        let headers = layout
            .metadata
            .iter()
            .find(|(_, m)| *m == Metadata::Headers)
            .and_then(|(i, _)| batch.column(*i).as_map_opt());
        Ok(Self { timestamps, headers })
    }

    fn timestamp(&self, row: usize) -> Option<i64> {
        self.timestamps.as_ref().filter(|ts| ts.is_valid(row)).map(|ts| ts.value(row))
    }

    fn headers(&self, row: usize) -> Option<(&'a MapArray, usize)> {
        self.headers.filter(|h| h.is_valid(row)).map(|h| (h, row))
    }
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// The headers of one row of a `MAP<STRING, BYTES>` column.
fn owned_headers(map: &MapArray, row: usize) -> OwnedHeaders {
    let mut out = OwnedHeaders::new();
    for_each_header(map, row, |key, value| out = std::mem::take(&mut out).insert(Header { key, value }));
    out
}

/// [`owned_headers`], owned for holding.
fn header_pairs(map: &MapArray, row: usize) -> Vec<(String, Option<Bytes>)> {
    let mut out = Vec::new();
    for_each_header(map, row, |key, value| out.push((key.to_string(), value.map(|v| Bytes(v.to_vec())))));
    out
}

fn for_each_header(map: &MapArray, row: usize, mut each: impl FnMut(&str, Option<&[u8]>)) {
    let entries = map.value(row);
    let (Some(keys), Some(values)) =
        (entries.column(0).as_string_opt::<i32>(), entries.column(1).as_binary_opt::<i32>())
    else {
        return;
    };
    for i in 0..keys.len() {
        each(keys.value(i), values.is_valid(i).then(|| values.value(i)));
    }
}
