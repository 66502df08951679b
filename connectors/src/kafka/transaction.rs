//! Exactly-once writing (`'sink.delivery-guarantee' = 'exactly-once'`): a write-ahead of each
//! checkpoint's records, published in one Kafka transaction once the checkpoint completes.
//!
//! ```text
//!  write_batch ──> buffer ──pre_commit(E)──> sealed epoch E ──commit(E)──> one transaction:
//!                  (rows since the         (kept in the        records of every sealed epoch <= E,
//!                   last barrier)           checkpoint)        then the marker, then commit
//! ```
//!
//! Why a write-ahead instead of Flink's transaction per checkpoint: Flink pre-commits by
//! flushing an open transaction and, after a crash, resumes it by producer id and epoch to
//! commit it. librdkafka cannot resume another producer's transaction (`init_transactions`
//! aborts it), so Eddy keeps the records themselves in the checkpoint and opens the
//! transaction only when the checkpoint is complete; after a crash it produces them again.
//!
//! **The marker** says which epochs are published, and is committed in the same transaction
//! as the records (so both or neither are visible): consumer group `<transactional id>`
//! holds, for each partition of the topic, the offset after the writer's last committed
//! record there, and group `<transactional id>.epoch` holds the last committed epoch as the
//! offset of partition 0 (`u64::MAX`, the final epoch, is stored as `i64::MAX`). Offsets
//! carry the marker because commit metadata strings are not kept by every broker (Tansu).
//!
//! **Recovery** ([`WriteAhead::recover`]) with the state of checkpoint C: the new producer's
//! `init_transactions` first aborts whatever transaction the dead one left open; epochs of
//! the state at or below the marker's epoch were published (a crash after the commit):
//! dropped. The others are produced and committed again, in one transaction, except for
//! records already in the topic: a broker that shows records of aborted transactions to
//! `read_committed` consumers (Tansu 0.6) keeps what the dead transaction wrote visible.
//! To find them, every record carries header [`TXN_HEADER`] = `<transactional id>:<epoch>:<n>`
//! (the `n`th record of that epoch), and recovery reads each partition from the marker's
//! offset to its end, `read_committed`. On Kafka the scan finds nothing (aborted records are
//! hidden) and everything is produced again.
//!
//! **A new run** (no `recover` before the first checkpoint) resets the marker to epoch 0
//! and the partitions' current ends, so epochs and leftovers of an earlier job with the
//! same `sink.transactional-id-prefix` are not taken for this one's.
//!
//! Limits: consumer group offsets expire (`offsets.retention.minutes`, 7 days by default,
//! counted from the writer's last commit); a job restored after that publishes its last
//! checkpoint's epochs again. On a broker that leaks aborted records, a scan stops where a
//! still-open transaction of another producer starts (the last stable offset), so with
//! several subtasks sharing a partition a leftover behind a sibling's dead transaction can
//! be written twice; Kafka itself is not affected.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::client::{broker_error, QuietContext};
use super::sink::DeliveryWatch;
use super::Config;
use crate::{ConnectorError, Result};

/// The header every record of an exactly-once sink carries: `<transactional id>:<epoch>:<n>`
/// for the `n`th record (from 0) of that epoch. Recovery looks for it (see the module doc).
pub(super) const TXN_HEADER: &str = "eddy.txn";

/// How long one transaction step (init, flush, offsets, commit) or a recovery scan may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(300);

/// `transaction.timeout.ms` unless the table sets it: Kafka's default
/// `transaction.max.timeout.ms` (15 min), so a large epoch is not aborted by the broker
/// while it is produced (librdkafka's 60 s would fail it at every restart).
pub(super) const TRANSACTION_TIMEOUT_MS: &str = "900000";

/// Bytes in the checkpoint state, as a base64 string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Bytes(pub(super) Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&base64_encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        base64_decode(&text).map(Bytes).ok_or_else(|| serde::de::Error::custom("not base64"))
    }
}

/// A record held until its epoch is committed: what the sink would have produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct HeldRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) key: Option<Bytes>,
    /// `None`: a tombstone (upsert-kafka's delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) value: Option<Bytes>,
    /// `None`: librdkafka's partitioner chooses (by key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) partition: Option<i32>,
    /// Milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) timestamp: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) headers: Vec<(String, Option<Bytes>)>,
}

impl HeldRecord {
    /// The record to produce, with its [`TXN_HEADER`] `tag` after the row's own headers.
    pub(super) fn base_record<'a>(&'a self, topic: &'a str, tag: &'a str) -> BaseRecord<'a, [u8], [u8]> {
        let mut headers = OwnedHeaders::new_with_capacity(self.headers.len() + 1);
        for (key, value) in &self.headers {
            headers = headers.insert(Header { key, value: value.as_ref().map(|v| v.0.as_slice()) });
        }
        headers = headers.insert(Header { key: TXN_HEADER, value: Some(tag.as_bytes()) });
        let mut record: BaseRecord<'a, [u8], [u8]> = BaseRecord::to(topic).headers(headers);
        if let Some(k) = &self.key {
            record = record.key(k.0.as_slice());
        }
        if let Some(v) = &self.value {
            record = record.payload(v.0.as_slice());
        }
        if let Some(p) = self.partition {
            record = record.partition(p);
        }
        if let Some(ts) = self.timestamp {
            record = record.timestamp(ts);
        }
        record
    }
}

/// The records of one pre-committed epoch, in the order they were written.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Sealed {
    pub(super) epoch: u64,
    pub(super) records: Vec<HeldRecord>,
}

/// The checkpoint state: every pre-committed epoch not known to be committed.
#[derive(Debug, Deserialize)]
pub(super) struct SavedState {
    pub(super) transactional_id: String,
    pub(super) epochs: Vec<Sealed>,
}

/// [`SavedState`] as written, borrowing the sealed epochs.
#[derive(Serialize)]
struct StateOut<'a> {
    transactional_id: &'a str,
    epochs: Vec<&'a Sealed>,
}

impl SavedState {
    pub(super) fn parse(table: &str, state: serde_json::Value, id: &str) -> Result<Self> {
        let saved: Self = serde_json::from_value(state)
            .map_err(|e| ConnectorError::checkpoint(table, format!("the Kafka sink's state is malformed: {e}")))?;
        if saved.transactional_id != id {
            return Err(ConnectorError::checkpoint(
                table,
                format!(
                    "the Kafka sink's state was written by transactional id '{}', this subtask writes as '{id}' \
                     (option 'sink.transactional-id-prefix' or the sink's parallelism changed)",
                    saved.transactional_id
                ),
            ));
        }
        Ok(saved)
    }
}

/// The [`TXN_HEADER`] value of record `n` of `epoch`.
pub(super) fn tag(id: &str, epoch: u64, n: usize) -> String {
    format!("{id}:{epoch}:{n}")
}

/// `(transactional id, epoch, n)` of a [`TXN_HEADER`] value (the id may hold ':').
pub(super) fn parse_tag(value: &[u8]) -> Option<(&str, u64, usize)> {
    let text = std::str::from_utf8(value).ok()?;
    let (rest, n) = text.rsplit_once(':')?;
    let (id, epoch) = rest.rsplit_once(':')?;
    Some((id, epoch.parse().ok()?, n.parse().ok()?))
}

/// An epoch as the offset that stores it in group `<id>.epoch`: offsets are `i64`, so the
/// final epoch (`u64::MAX`) is `i64::MAX` (epochs never come near that otherwise).
pub(super) fn epoch_offset(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

/// The epoch [`epoch_offset`] stored as `offset`.
pub(super) fn offset_epoch(offset: i64) -> u64 {
    match offset {
        i64::MAX => u64::MAX,
        o => o.max(0) as u64,
    }
}

/// What the broker says this writer has published.
#[derive(Debug)]
pub(super) struct Marker {
    /// The last committed epoch; `None` when the group has no offset (never written, or expired).
    pub(super) epoch: Option<u64>,
    /// Per partition, the offset after the writer's last committed record (where it has one).
    pub(super) next: BTreeMap<i32, i64>,
}

/// The broker side of one exactly-once sink subtask: its transactional producer and the
/// two consumer groups of its marker. Every method blocks: call them through [`blocking`].
pub(super) struct Transactions {
    config: Arc<Config>,
    id: String,
    producer: ThreadedProducer<DeliveryWatch>,
    topic: String,
    partitions: i32,
    /// Group `<id>`: per partition, the offset after the writer's last committed record.
    offsets_group: BaseConsumer<QuietContext>,
    /// Group `<id>.epoch`: the last committed epoch, as the offset of partition 0.
    epoch_group: BaseConsumer<QuietContext>,
}

impl Transactions {
    /// Take over transactional id `id` with `producer` (made with it): `init_transactions`
    /// fences a predecessor with the same id and aborts the transaction it left open.
    pub(super) fn open(
        config: Arc<Config>,
        id: String,
        producer: ThreadedProducer<DeliveryWatch>,
        topic: String,
        partitions: i32,
    ) -> Result<Self> {
        let started = Instant::now();
        producer
            .init_transactions(TXN_TIMEOUT)
            .map_err(|e| broker_error(&config, &format!("cannot start transactions as '{id}'"), e))?;
        let offsets_group = group_client(&config, &id)?;
        let epoch_group = group_client(&config, &format!("{id}.epoch"))?;
        tracing::debug!(table = %config.table, %id, ms = started.elapsed().as_millis() as u64, "transactions started");
        Ok(Self { config, id, producer, topic, partitions, offsets_group, epoch_group })
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> ConnectorError {
        broker_error(&self.config, &format!("{what} (topic '{}', transactional id '{}')", self.topic, self.id), e)
    }

    /// The marker as committed.
    pub(super) fn read_marker(&self) -> Result<Marker> {
        let epoch = self.committed(&self.epoch_group, &[0])?.remove(&0).map(offset_epoch);
        let partitions: Vec<i32> = (0..self.partitions).collect();
        Ok(Marker { epoch, next: self.committed(&self.offsets_group, &partitions)? })
    }

    fn committed(&self, group: &BaseConsumer<QuietContext>, partitions: &[i32]) -> Result<BTreeMap<i32, i64>> {
        let mut list = TopicPartitionList::new();
        for p in partitions {
            list.add_partition(&self.topic, *p);
        }
        let got = group.committed_offsets(list, TXN_TIMEOUT).map_err(|e| self.error("cannot read the marker", e))?;
        Ok(got
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) if o >= 0 => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
    }

    /// Every partition's current end (high watermark).
    fn end_offsets(&self) -> Result<BTreeMap<i32, i64>> {
        let mut ends = BTreeMap::new();
        for p in 0..self.partitions {
            let (_, high) = self
                .offsets_group
                .fetch_watermarks(&self.topic, p, TXN_TIMEOUT)
                .map_err(|e| self.error("cannot read the topic's end offsets", e))?;
            ends.insert(p, high);
        }
        Ok(ends)
    }

    /// A new run's marker: epoch 0, and every partition's current end. Returns the offsets.
    pub(super) fn start_marker(&self) -> Result<BTreeMap<i32, i64>> {
        let ends = self.end_offsets()?;
        self.in_transaction(|| self.send_marker(&ends, 0))?;
        Ok(ends)
    }

    /// Publish `epochs` in one transaction, except the records in `published` (`(epoch, n)`),
    /// and move the marker to `through` and past the new records; `offsets` is the marker's
    /// offsets before. Returns them after.
    pub(super) fn publish(
        &self,
        epochs: &[Arc<Sealed>],
        published: &HashSet<(u64, usize)>,
        mut offsets: BTreeMap<i32, i64>,
        through: u64,
    ) -> Result<BTreeMap<i32, i64>> {
        self.producer.context().take_delivered();
        let started = Instant::now();
        let (mut produced, mut flushed) = (Duration::ZERO, Duration::ZERO);
        let result = self.in_transaction(|| {
            self.produce(epochs, published)?;
            produced = started.elapsed();
            self.await_deliveries()?;
            flushed = started.elapsed();
            if let Some(failure) = self.producer.context().failure() {
                return Err(self.error("writing the transaction failed", failure));
            }
            for (partition, last) in self.producer.context().take_delivered() {
                offsets.insert(partition, last + 1);
            }
            self.send_marker(&offsets, through)
        });
        tracing::debug!(
            id = %self.id,
            through,
            produced_ms = produced.as_millis() as u64,
            flushed_ms = flushed.as_millis() as u64,
            committed_ms = started.elapsed().as_millis() as u64,
            "transaction published"
        );
        result?;
        Ok(offsets)
    }

    /// Wait until the broker acknowledged every record sent. Not `flush`: with the threaded
    /// producer's own poll thread serving deliveries, rdkafka's flush notices the end only
    /// every 100 ms, which made every checkpoint's commit last hundreds of milliseconds.
    fn await_deliveries(&self) -> Result<()> {
        let deadline = Instant::now() + TXN_TIMEOUT;
        loop {
            if let Some(failure) = self.producer.context().failure() {
                return Err(self.error("writing the transaction failed", failure));
            }
            let in_flight = self.producer.in_flight_count();
            if in_flight == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                let what = format!("{in_flight} records not acknowledged within {} s", TXN_TIMEOUT.as_secs());
                return Err(self.error("writing the transaction failed", what));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Run `body` in a transaction and commit it; abort it if `body` fails, so readers of
    /// the topic are not held back until the broker times it out.
    fn in_transaction(&self, body: impl FnOnce() -> Result<()>) -> Result<()> {
        self.producer.begin_transaction().map_err(|e| self.error("cannot begin a transaction", e))?;
        let done = body().and_then(|()| {
            self.producer.commit_transaction(TXN_TIMEOUT).map_err(|e| self.error("cannot commit the transaction", e))
        });
        if done.is_err() {
            if let Err(e) = self.producer.abort_transaction(TXN_TIMEOUT) {
                tracing::warn!(table = %self.config.table, id = %self.id, "cannot abort the transaction: {e}");
            }
        }
        done
    }

    fn produce(&self, epochs: &[Arc<Sealed>], published: &HashSet<(u64, usize)>) -> Result<()> {
        for sealed in epochs {
            for (n, record) in sealed.records.iter().enumerate() {
                if !published.contains(&(sealed.epoch, n)) {
                    self.send(record, &tag(&self.id, sealed.epoch, n))?;
                }
            }
        }
        Ok(())
    }

    fn send(&self, record: &HeldRecord, tag: &str) -> Result<()> {
        loop {
            match self.producer.send(record.base_record(&self.topic, tag)) {
                Ok(()) => return Ok(()),
                // librdkafka's queue is full: wait for the broker to take some.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                Err((e, _)) => return Err(self.error("cannot write the transaction", e)),
            }
        }
    }

    /// Add the marker to the open transaction: `offsets` to group `<id>`, `epoch` to `<id>.epoch`.
    fn send_marker(&self, offsets: &BTreeMap<i32, i64>, epoch: u64) -> Result<()> {
        let mut next = TopicPartitionList::new();
        for (p, o) in offsets {
            next.add_partition_offset(&self.topic, *p, Offset::Offset(*o)).map_err(|e| self.error("bad offset", e))?;
        }
        let mut last_epoch = TopicPartitionList::new();
        last_epoch
            .add_partition_offset(&self.topic, 0, Offset::Offset(epoch_offset(epoch)))
            .map_err(|e| self.error("bad offset", e))?;
        for (group, list) in [(&self.offsets_group, &next), (&self.epoch_group, &last_epoch)] {
            let metadata = group.group_metadata().ok_or_else(|| self.error("no consumer group metadata", "none"))?;
            self.producer
                .send_offsets_to_transaction(list, &metadata, TXN_TIMEOUT)
                .map_err(|e| self.error("cannot add the marker to the transaction", e))?;
        }
        Ok(())
    }

    /// The records of `epochs` this writer already has in the topic at or after `from`
    /// (per partition; the beginning where missing), as `read_committed` consumers see them:
    /// leftovers of an aborted transaction on a broker that does not hide them.
    pub(super) fn find_published(
        &self,
        from: &BTreeMap<i32, i64>,
        epochs: &HashSet<u64>,
    ) -> Result<HashSet<(u64, usize)>> {
        // Everything this writer wrote is below each partition's end now; a read_committed
        // reader reaches it only once other writers' open transactions there have ended
        // (the end it reports first may be that of the committed records).
        let ends = self.end_offsets()?;
        let reader = self.reader(from)?;
        let mut found = HashSet::new();
        let mut ended = HashSet::new();
        let deadline = Instant::now() + TXN_TIMEOUT;
        while ended.len() < self.partitions as usize {
            if Instant::now() > deadline {
                return Err(self.error("reading the topic's last records took too long", TXN_TIMEOUT.as_secs()));
            }
            match reader.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => found.extend(self.own_record(&m, epochs)),
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    // At the end of what it may read: done unless that is short of `ends`.
                    if self.position(&reader, p)?.is_none_or(|at| at >= ends.get(&p).copied().unwrap_or(0)) {
                        ended.insert(p);
                    }
                }
                Some(Err(e)) => return Err(self.error("cannot read the topic's last records", e)),
                // Quiet: the end may have been passed over control records alone, which
                // bring no new end-of-partition event.
                None => {
                    for p in 0..self.partitions {
                        let end = ends.get(&p).copied().unwrap_or(0);
                        if !ended.contains(&p) && self.position(&reader, p)?.is_some_and(|at| at >= end) {
                            ended.insert(p);
                        }
                    }
                }
            }
        }
        Ok(found)
    }

    /// How far `reader` has read partition `p` (its next offset: control records count,
    /// which a message count would miss); `None` before its first fetch.
    fn position(&self, reader: &BaseConsumer<QuietContext>, p: i32) -> Result<Option<i64>> {
        let positions = reader.position().map_err(|e| self.error("cannot read the topic's last records", e))?;
        Ok(match positions.find_partition(&self.topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        })
    }

    /// A `read_committed` consumer assigned every partition from `from`.
    fn reader(&self, from: &BTreeMap<i32, i64>) -> Result<BaseConsumer<QuietContext>> {
        let reader: BaseConsumer<QuietContext> = self
            .config
            .client
            .config(&[])
            .set("bootstrap.servers", &self.config.client.bootstrap)
            .set("group.id", &self.id)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .create_with_context(QuietContext)
            .map_err(|e| self.error("cannot create a Kafka consumer", e))?;
        let mut list = TopicPartitionList::new();
        for p in 0..self.partitions {
            let start = from.get(&p).map_or(Offset::Beginning, |o| Offset::Offset(*o));
            list.add_partition_offset(&self.topic, p, start).map_err(|e| self.error("bad offset", e))?;
        }
        reader.assign(&list).map_err(|e| self.error("cannot read the topic", e))?;
        Ok(reader)
    }

    /// `(epoch, n)` of a record this writer wrote for one of `epochs`. The last
    /// [`TXN_HEADER`] counts: a row's own headers may carry one copied from elsewhere.
    fn own_record(&self, m: &BorrowedMessage<'_>, epochs: &HashSet<u64>) -> Option<(u64, usize)> {
        let value = m.headers()?.iter().filter(|h| h.key == TXN_HEADER).last()?.value?;
        let (id, epoch, n) = parse_tag(value)?;
        (id == self.id && epochs.contains(&epoch)).then_some((epoch, n))
    }
}

/// A client of consumer group `group` for its committed offsets and its metadata (the
/// transaction's offsets go to it); it never joins the group.
fn group_client(config: &Config, group: &str) -> Result<BaseConsumer<QuietContext>> {
    config
        .client
        .config(&[])
        .set("bootstrap.servers", &config.client.bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        // Committed offsets of a transaction still open are not returned as if committed.
        .set("isolation.level", "read_committed")
        .create_with_context(QuietContext)
        .map_err(|e| broker_error(config, "cannot create a Kafka consumer", e))
}

/// Run a blocking call of `txns` on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    txns: &Arc<Transactions>,
    call: impl FnOnce(&Transactions) -> Result<T> + Send + 'static,
) -> Result<T> {
    let t = txns.clone();
    tokio::task::spawn_blocking(move || call(&t)).await.map_err(|e| txns.error("a transaction step failed", e))?
}

/// What an exactly-once sink subtask holds between checkpoints.
pub(super) struct WriteAhead {
    id: String,
    /// Records of the rows written since the last barrier.
    buffer: Vec<HeldRecord>,
    /// Pre-committed epochs not committed yet, oldest first.
    sealed: Vec<Arc<Sealed>>,
    /// The marker's offsets (see the module doc).
    next_offsets: BTreeMap<i32, i64>,
    /// The marker belongs to this run: read by `recover`, or reset for a new run.
    marker_ready: bool,
}

impl WriteAhead {
    pub(super) fn new(id: String) -> Self {
        Self { id, buffer: Vec::new(), sealed: Vec::new(), next_offsets: BTreeMap::new(), marker_ready: false }
    }

    /// The transactional id this subtask writes as.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    pub(super) fn hold(&mut self, record: HeldRecord) {
        self.buffer.push(record);
    }

    /// Barrier `epoch`: the rows since the last one become epoch `epoch`. Returns the state
    /// to keep in the checkpoint: every epoch not committed yet, with its records.
    pub(super) async fn pre_commit(&mut self, txns: &Arc<Transactions>, epoch: u64) -> Result<serde_json::Value> {
        self.ensure_marker(txns).await?;
        // An epoch without rows needs no transaction.
        if !self.buffer.is_empty() {
            let records = std::mem::take(&mut self.buffer);
            self.sealed.push(Arc::new(Sealed { epoch, records }));
        }
        let state = StateOut { transactional_id: &self.id, epochs: self.sealed.iter().map(Arc::as_ref).collect() };
        serde_json::to_value(state).map_err(|e| txns.error("cannot save the pending records", e))
    }

    /// Checkpoint `epoch` is complete: publish every sealed epoch up to it.
    pub(super) async fn commit(&mut self, txns: &Arc<Transactions>, epoch: u64) -> Result<()> {
        let due: Vec<Arc<Sealed>> = self.sealed.iter().filter(|s| s.epoch <= epoch).cloned().collect();
        if due.is_empty() {
            return Ok(());
        }
        self.publish(txns, due, epoch, HashSet::new()).await
    }

    /// The input ended: publish what is still held (the engine's final checkpoint has
    /// usually done so already), as the final epoch.
    pub(super) async fn finish(&mut self, txns: &Arc<Transactions>) -> Result<()> {
        if !self.buffer.is_empty() {
            let records = std::mem::take(&mut self.buffer);
            self.sealed.push(Arc::new(Sealed { epoch: u64::MAX, records }));
        }
        self.commit(txns, u64::MAX).await
    }

    /// Restarted from a checkpoint whose state is `state`: publish its epochs the marker
    /// does not cover (see the module doc). `None`: nothing was pre-committed; a new run.
    pub(super) async fn recover(&mut self, txns: &Arc<Transactions>, state: Option<serde_json::Value>) -> Result<()> {
        let Some(state) = state else { return Ok(()) };
        let saved = SavedState::parse(&txns.config.table, state, &self.id)?;
        let marker = blocking(txns, Transactions::read_marker).await?;
        self.next_offsets = marker.next.clone();
        self.marker_ready = true;
        let pending: Vec<Arc<Sealed>> =
            saved.epochs.into_iter().filter(|s| marker.epoch.is_none_or(|m| s.epoch > m)).map(Arc::new).collect();
        let Some(last) = pending.last().map(|s| s.epoch) else { return Ok(()) };
        let epochs: HashSet<u64> = pending.iter().map(|s| s.epoch).collect();
        let from = marker.next;
        let published = blocking(txns, move |t| t.find_published(&from, &epochs)).await?;
        tracing::info!(
            table = %txns.config.table,
            id = %self.id,
            epochs = pending.len(),
            already_visible = published.len(),
            "publishing the epochs of the restored checkpoint"
        );
        self.sealed = pending.clone();
        self.publish(txns, pending, last, published).await
    }

    async fn publish(
        &mut self,
        txns: &Arc<Transactions>,
        due: Vec<Arc<Sealed>>,
        through: u64,
        published: HashSet<(u64, usize)>,
    ) -> Result<()> {
        self.ensure_marker(txns).await?;
        let offsets = self.next_offsets.clone();
        self.next_offsets = blocking(txns, move |t| t.publish(&due, &published, offsets, through)).await?;
        self.sealed.retain(|s| s.epoch > through);
        Ok(())
    }

    /// A run that did not recover starts its own marker, before its first checkpoint.
    async fn ensure_marker(&mut self, txns: &Arc<Transactions>) -> Result<()> {
        if !self.marker_ready {
            self.next_offsets = blocking(txns, Transactions::start_marker).await?;
            self.marker_ready = true;
        }
        Ok(())
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648).
pub(super) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The bytes of [`base64_encode`]'s text; `None` if it is not such text.
pub(super) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for (i, quad) in text.chunks(4).enumerate() {
        let last = i + 1 == text.len() / 4;
        let padding = quad.iter().rev().take_while(|c| **c == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for c in &quad[..4 - padding] {
            n = (n << 6) | base64_digit(*c)?;
        }
        n <<= 6 * padding as u32;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - padding]);
    }
    Some(out)
}

fn base64_digit(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}
