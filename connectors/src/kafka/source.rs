//! The Kafka source: one split reads the partitions assigned to it.
//!
//! At the first call the split resolves its topics, takes every `count`-th partition of the
//! sorted list (partition `i` goes to split `i % count`), computes where each starts
//! (`scan.startup.mode`) and, in bounded mode, where it stops, and assigns them to its own
//! consumer. Then each call gathers what the consumer has ready (up to a batch), copies it
//! per partition, and decodes each partition's records into one batch tagged with that
//! partition, so the runtime keeps a watermark per partition. A partition that reaches its
//! stopping offset is paused and marked ended; the split ends when all have.
//!
//! Offsets are committed to `properties.group.id` (when set) every second and at the end:
//! what was handed to the job, which `group-offsets` resumes from.
//!
//! Checkpoints: the split's position is the next offset of every partition as far as the
//! batches already returned reach (records fetched and decoded but still queued do not
//! count), and, in bounded mode, where each partition stops (the end found at start may
//! have moved by the time the job resumes):
//! ```text
//! {"offsets": {"orders/0": 1042, "orders/3": 77}, "stops": {"orders/0": 5000, "orders/3": 81}}
//! ```
//! Resumed, a partition in `offsets` starts there (whatever `scan.startup.mode` says) and
//! one in `stops` stops there; the others start and stop as the options say. A partition
//! still looking for its first record at or after `scan.startup.timestamp-millis` is left
//! out, so it looks again.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::client::{self, broker_error, QuietContext};
use super::layout::Metadata;
use super::records::{assemble, Records, Wanted};
use super::{Bounded, Config, ResetTo, Startup};
use crate::format::record::RecordDecoder;
use crate::format::MAX_BATCH_ROWS;
use crate::{ConnectorError, PartitionMark, Result, Source, SourceBatch, Split};

/// How long one call waits for a first record before returning an empty batch (so the
/// runtime can run timers, notice idleness and stop).
const POLL_WAIT: Duration = Duration::from_millis(100);

/// How often offsets are committed to the group.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// One assigned partition.
struct PartitionReader {
    topic: Arc<str>,
    partition: i32,
    /// The partition's number among all the source's partitions (its watermark's name).
    mark: u32,
    /// Offset to stop before (bounded mode).
    stop: Option<i64>,
    /// `stop` is the partition's end as ListOffsets told it, to be confirmed by the high
    /// watermark of the first fetch (see [`PartitionReader::confirm_stop`]).
    stop_unconfirmed: bool,
    /// `scan.startup.mode` = 'timestamp': records before the first one at or after this
    /// time (ms) are passed over.
    start_time: Option<i64>,
    /// `scan.bounded.mode` = 'timestamp': the first record at or after this time ends the
    /// partition.
    stop_time: Option<i64>,
    /// The offset after the last record fetched (gathered, or passed over).
    next: i64,
    /// The offset after the records in batches already returned: the checkpoint position
    /// and what a commit records. Behind `next` while batches wait in the queue.
    handed: i64,
    committed: i64,
    ended: bool,
    /// Whether the runtime has been told it ended.
    end_sent: bool,
    records: Records,
}

impl PartitionReader {
    /// A partition read from `start` on, unbounded until the caller says otherwise.
    fn new(config: &Config, topic: Arc<str>, partition: i32, mark: u32, start: i64) -> Self {
        Self {
            topic,
            partition,
            mark,
            stop: None,
            stop_unconfirmed: false,
            start_time: match config.startup {
                Startup::Timestamp(t) => Some(t),
                _ => None,
            },
            stop_time: match config.bounded {
                Bounded::Timestamp(t) => Some(t),
                _ => None,
            },
            next: start,
            handed: start,
            committed: start,
            ended: false,
            end_sent: false,
            records: Records::default(),
        }
    }

    /// A stop at "the end of the partition" is the larger of the ListOffsets answer at start
    /// and the high watermark of the first fetch: some Kafka-compatible brokers (Tansu 0.6,
    /// the test broker) answer ListOffsets(latest) with the start of the last record batch
    /// plus one, short of the end. On Kafka the two agree but for records written in the few
    /// milliseconds between the two requests.
    fn confirm_stop(&mut self, consumer: &KafkaConsumer) {
        if !self.stop_unconfirmed {
            return;
        }
        if let Some(high) = cached_high_watermark(consumer, &self.topic, self.partition) {
            self.stop = self.stop.map(|s| s.max(high));
            self.stop_unconfirmed = false;
        }
    }
}

/// The high watermark of the partition's last fetch response, if one has arrived
/// (librdkafka's `rd_kafka_get_watermark_offsets`, which the `rdkafka` crate does not wrap).
fn cached_high_watermark(consumer: &KafkaConsumer, topic: &str, partition: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer lives as long as `consumer`; the call only reads the
    // consumer's cache and writes the two integers.
    let code = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (code == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

/// The source's consumer, its librdkafka messages logged by [`QuietContext`].
type KafkaConsumer = StreamConsumer<QuietContext>;

/// The key decoder (when the table has key columns) and the value decoder of a topic.
type Decoders = (Option<Box<dyn RecordDecoder>>, Box<dyn RecordDecoder>);

/// The consumer and the partitions, once started.
struct Running {
    consumer: Arc<KafkaConsumer>,
    parts: Vec<PartitionReader>,
    /// Topic, then partition: the index in `parts` (looked up by `&str` for each message).
    index: HashMap<Arc<str>, HashMap<i32, usize>>,
    /// Decoders per topic (a schema registry subject is per topic).
    decoders: HashMap<Arc<str>, Decoders>,
    dead_letter: Option<ThreadedProducer<DefaultProducerContext>>,
    last_commit: Instant,
    wanted: Wanted,
    /// Metadata client for partition discovery.
    meta: Arc<rdkafka::consumer::BaseConsumer>,
    /// The mark the next discovered partition gets.
    next_mark: u32,
    /// When to look for new partitions next (`None`: never).
    next_discovery: Option<Instant>,
}

/// The split that reads a partition: Flink's KafkaSourceEnumerator rule, so that adding
/// partitions or topics never moves a partition from one split to another (a topic's
/// partitions go round the splits from a start that depends on the topic's name).
fn split_owner(topic: &str, partition: i32, splits: usize) -> usize {
    let splits = splits.max(1) as i64;
    // Java's String.hashCode over UTF-16 code units.
    let hash = topic.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let start = i64::from(hash.wrapping_mul(31) & 0x7FFF_FFFF) % splits;
    ((start + i64::from(partition)) % splits) as usize
}

/// A split's checkpoint position (see the module docs); keys are `topic/partition`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Position {
    offsets: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    stops: BTreeMap<String, i64>,
}

impl Position {
    /// Read a position, checking its keys and offsets.
    pub(crate) fn parse(table: &str, value: &serde_json::Value) -> Result<Self> {
        let bad = |message: String| ConnectorError::checkpoint(table, message);
        let position = Self::deserialize(value).map_err(|e| bad(format!("kafka position cannot be read: {e}")))?;
        for (key, offset) in position.offsets.iter().chain(&position.stops) {
            let ok = key.rsplit_once('/').is_some_and(|(t, p)| !t.is_empty() && p.parse::<i32>().is_ok_and(|p| p >= 0));
            if !ok || *offset < 0 {
                return Err(bad(format!("kafka position entry '{key}': {offset} is not 'topic/partition': offset")));
            }
        }
        Ok(position)
    }

    fn key(topic: &str, partition: i32) -> String {
        format!("{topic}/{partition}")
    }

    /// Where a partition starts and stops, as far as the position says.
    fn given(&self, topic: &str, partition: i32) -> Given {
        let key = Self::key(topic, partition);
        Given { start: self.offsets.get(&key).copied(), stop: self.stops.get(&key).copied() }
    }
}

/// A partition's start and stop taken from a checkpoint position instead of the options.
#[derive(Debug, Clone, Copy, Default)]
struct Given {
    start: Option<i64>,
    stop: Option<i64>,
}

/// A batch waiting to be returned, with the partition offset it brings `handed` to.
struct Queued {
    batch: SourceBatch,
    /// (index in `Running::parts`, the offset after the batch's records).
    handed: Option<(usize, i64)>,
}

impl From<SourceBatch> for Queued {
    fn from(batch: SourceBatch) -> Self {
        Self { batch, handed: None }
    }
}

pub(crate) struct KafkaSource {
    config: Arc<Config>,
    split: Split,
    running: Option<Running>,
    ready: VecDeque<Queued>,
    skipped: u64,
    done: bool,
    /// Where to resume (a split restored from a checkpoint), until it is open.
    resume_at: Option<Position>,
}

impl KafkaSource {
    pub(crate) fn new(config: Config, split: Split, resume_at: Option<Position>) -> Result<Self> {
        Ok(Self {
            config: Arc::new(config),
            split,
            running: None,
            ready: VecDeque::new(),
            skipped: 0,
            done: false,
            resume_at,
        })
    }

    /// Resolve topics and partitions, compute offsets, assign.
    async fn open(&mut self) -> Result<Running> {
        let config = self.config.clone();
        let meta = client::metadata_client(&config)?;
        let topics = client::resolve_topics(&config, &meta).await?;
        let mut all: Vec<(Arc<str>, i32)> = Vec::new();
        for (t, n) in &topics {
            let t: Arc<str> = Arc::from(t.as_str());
            all.extend((0..*n).map(|p| (t.clone(), p)));
        }
        let mine: Vec<(u32, Arc<str>, i32)> = all
            .iter()
            .filter(|(t, p)| split_owner(t, *p, self.split.count) == self.split.index)
            .enumerate()
            .map(|(mark, (t, p))| (mark as u32, t.clone(), *p))
            .collect();
        let next_mark = mine.len() as u32;

        let timeout = config.client.open_timeout.as_millis().to_string();
        let group = config.client.group_id.clone().unwrap_or_else(|| format!("eddy-{}", config.table));
        let consumer: KafkaConsumer = config
            .client
            // fetch.queue.backoff.ms: librdkafka pauses fetching a partition for 1 s by
            // default once 100 k of its records wait unread; decoding catches up in far
            // less, and the pause cost half the throughput (benches/kafka.py).
            .config(&[
                ("socket.timeout.ms", &timeout),
                ("allow.auto.create.topics", "false"),
                ("fetch.queue.backoff.ms", "10"),
            ])
            .set("bootstrap.servers", &config.client.bootstrap)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .create_with_context(QuietContext)
            .map_err(|e| broker_error(&config, "cannot create a Kafka consumer", e))?;
        let consumer = Arc::new(consumer);

        let tps: Vec<(Arc<str>, i32)> = mine.iter().map(|(_, t, p)| (t.clone(), *p)).collect();
        // Kept (not taken): an open that fails can be tried again from the same position.
        let resume_at = self.resume_at.clone().unwrap_or_default();
        let given: Vec<Given> = tps.iter().map(|(t, p)| resume_at.given(t, *p)).collect();
        let bounds = offsets(&config, &consumer, &tps, &given).await?;
        let mut parts = Vec::with_capacity(mine.len());
        let mut assignment = TopicPartitionList::new();
        for (((mark, topic, partition), (start, stop, stop_at_end)), given) in mine.into_iter().zip(bounds).zip(given) {
            let ended = !stop_at_end && stop.is_some_and(|s| start >= s);
            if !ended {
                assignment
                    .add_partition_offset(&topic, partition, Offset::Offset(start))
                    .map_err(|e| broker_error(&config, "cannot assign partitions", e))?;
            }
            let mut part = PartitionReader::new(&config, topic, partition, mark, start);
            if given.start.is_some() {
                // It had found its first record at or after the startup time already.
                part.start_time = None;
            }
            part.stop = stop;
            part.stop_unconfirmed = stop_at_end;
            part.ended = ended;
            parts.push(part);
        }
        consumer.assign(&assignment).map_err(|e| broker_error(&config, "cannot assign partitions", e))?;
        tracing::info!(
            table = %config.table,
            split = self.split.index,
            partitions = ?parts
                .iter()
                .map(|p| match p.stop {
                    Some(stop) => format!("{}-{}@{}..{stop}", p.topic, p.partition, p.next),
                    None => format!("{}-{}@{}..", p.topic, p.partition, p.next),
                })
                .collect::<Vec<_>>(),
            "kafka source assigned"
        );
        let mut index: HashMap<Arc<str>, HashMap<i32, usize>> = HashMap::new();
        for (i, p) in parts.iter().enumerate() {
            index.entry(p.topic.clone()).or_default().insert(p.partition, i);
        }
        let wanted = Wanted {
            headers: config.layout.metadata.iter().any(|(_, m)| *m == Metadata::Headers),
            leader_epoch: config.layout.metadata.iter().any(|(_, m)| *m == Metadata::LeaderEpoch),
        };
        let dead_letter = match &config.dead_letter_topic {
            Some(_) => Some(
                config
                    .client
                    .config(&[])
                    .set("bootstrap.servers", &config.client.bootstrap)
                    .create::<ThreadedProducer<DefaultProducerContext>>()
                    .map_err(|e| broker_error(&config, "cannot create the dead-letter producer", e))?,
            ),
            None => None,
        };
        // Announce every partition, so one without records yet holds the watermark back.
        for p in &mut parts {
            self.ready.push_back(announce(&config, p.mark, p.ended).into());
            p.end_sent = p.ended;
        }
        if parts.is_empty() && config.bounded == Bounded::Unbounded {
            // More splits than partitions: this one reads nothing, and must not hold the
            // job's watermark back (Flink marks such a reader idle).
            self.ready.push_back(announce(&config, u32::MAX, true).into());
        }
        Ok(Running {
            consumer,
            meta,
            parts,
            index,
            decoders: HashMap::new(),
            dead_letter,
            last_commit: Instant::now(),
            wanted,
            next_mark,
            next_discovery: config.discovery_interval.map(|d| Instant::now() + d),
        })
    }

    /// Partition discovery: assign partitions (and, with `topic-pattern`, topics) that
    /// appeared since the last look and belong to this split, read from their beginning
    /// (as Flink's KafkaSource reads newly discovered partitions). A broker that does not
    /// answer is asked again at the next interval; the job goes on meanwhile.
    async fn discover(&mut self) -> Result<()> {
        let config = self.config.clone();
        let split = self.split;
        let Some(run) = self.running.as_mut() else { return Ok(()) };
        let (Some(due), Some(interval)) = (run.next_discovery, config.discovery_interval) else { return Ok(()) };
        if Instant::now() < due {
            return Ok(());
        }
        run.next_discovery = Some(Instant::now() + interval);
        let topics = match client::discover_topics(&config, &run.meta).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(table = %config.table, error = %e, "partition discovery failed; trying again later");
                return Ok(());
            }
        };
        let mut new: Vec<(Arc<str>, i32)> = Vec::new();
        for (topic, count) in &topics {
            let known = run.index.get(topic.as_str());
            for p in 0..*count {
                if known.is_some_and(|ps| ps.contains_key(&p)) || split_owner(topic, p, split.count) != split.index {
                    continue;
                }
                new.push((Arc::from(topic.as_str()), p));
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        // Their beginning, as a number: commits and `next` count from it.
        let consumer = run.consumer.clone();
        let tps = new.clone();
        let timeout = config.client.open_timeout;
        let lows = tokio::task::spawn_blocking(move || {
            tps.iter().map(|(t, p)| consumer.fetch_watermarks(t, *p, timeout).map(|(low, _)| low)).collect::<Vec<_>>()
        })
        .await
        .map_err(|e| broker_error(&config, "partition discovery failed", e))?;
        let mut assignment = TopicPartitionList::new();
        for ((topic, partition), low) in new.into_iter().zip(lows) {
            let Ok(low) = low else {
                // Not ready yet (a topic being created): the next discovery retries it.
                continue;
            };
            assignment
                .add_partition_offset(&topic, partition, Offset::Offset(low))
                .map_err(|e| broker_error(&config, "cannot assign partitions", e))?;
            let mark = run.next_mark;
            run.next_mark += 1;
            run.index.entry(topic.clone()).or_default().insert(partition, run.parts.len());
            run.parts.push(PartitionReader::new(&config, topic, partition, mark, low));
            // Announced before its rows, so it holds the watermark back from now on.
            self.ready.push_back(announce(&config, mark, false).into());
        }
        if assignment.count() == 0 {
            return Ok(());
        }
        run.consumer
            .incremental_assign(&assignment)
            .map_err(|e| broker_error(&config, "cannot assign discovered partitions", e))?;
        tracing::info!(
            table = %config.table,
            split = split.index,
            partitions = ?assignment.elements().iter().map(|e| format!("{}-{}", e.topic(), e.partition())).collect::<Vec<_>>(),
            "kafka source discovered new partitions"
        );
        Ok(())
    }

    /// Read what is ready (waiting up to [`POLL_WAIT`] for the first record) and queue the
    /// decoded batches.
    async fn fill(&mut self) -> Result<()> {
        let config = self.config.clone();
        let Some(run) = self.running.as_mut() else { return Ok(()) };
        let consumer = run.consumer.clone();
        let mut taken = 0usize;
        let mut eof = false;
        let first = tokio::time::timeout(POLL_WAIT, consumer.recv()).await;
        let mut next = first.ok();
        while let Some(m) = next.take() {
            match m {
                Ok(m) => {
                    if let Some(&i) = run.index.get(m.topic()).and_then(|ps| ps.get(&m.partition())) {
                        let p = &mut run.parts[i];
                        p.confirm_stop(&consumer);
                        let offset = m.offset();
                        let time = m.timestamp().to_millis();
                        // The time bounds hold record by record too: a broker's answer to
                        // "the offset for this time" may be approximate (the test broker's is).
                        let before_start = matches!((time, p.start_time), (Some(t), Some(s)) if t < s);
                        if before_start {
                            p.next = offset + 1;
                            // Passed over, not handed on; nothing of this partition waits in
                            // the queue (it is empty when fill runs), so it counts as handed.
                            p.handed = p.next;
                        } else {
                            p.start_time = None;
                            if matches!((time, p.stop_time), (Some(t), Some(s)) if t >= s) {
                                p.ended = true;
                            }
                            if !p.ended && p.stop.is_none_or(|s| offset < s) {
                                p.records.push(&m, run.wanted);
                                p.next = offset + 1;
                                taken += 1;
                            }
                        }
                        if !p.stop_unconfirmed && p.stop.is_some_and(|s| p.next >= s) {
                            p.ended = true;
                        }
                    }
                }
                Err(KafkaError::PartitionEOF(_)) => eof = true,
                Err(KafkaError::MessageConsumption(code)) => {
                    // Transient (broker down, connection reset): librdkafka reconnects by itself.
                    tracing::warn!(table = %config.table, error = %code, "kafka consumer error; retrying");
                }
                Err(e) => return Err(broker_error(&config, "reading failed", e)),
            }
            if taken >= MAX_BATCH_ROWS {
                break;
            }
            next = consumer.recv().now_or_never();
        }
        if eof {
            // At the end of a partition, records may be missing before the stopping offset
            // (compaction, transaction markers): the consumer's position says how far it is.
            for p in run.parts.iter_mut() {
                p.confirm_stop(&consumer);
            }
            if let Ok(positions) = consumer.position() {
                for p in run.parts.iter_mut().filter(|p| !p.ended && !p.stop_unconfirmed && p.stop.is_some()) {
                    // No position yet (nothing consumed): the start offset.
                    let pos = positions.find_partition(&p.topic, p.partition).map(|e| match e.offset() {
                        Offset::Offset(o) => o,
                        _ => p.next,
                    });
                    if let (Some(pos), Some(stop)) = (pos.or(Some(p.next)), p.stop) {
                        if pos >= stop {
                            p.ended = true;
                        }
                    }
                }
            }
        }
        // Decode what each partition gathered, and tell which partitions ended.
        let mut to_pause = TopicPartitionList::new();
        for i in 0..run.parts.len() {
            let has_records = !run.parts[i].records.is_empty();
            let newly_ended = run.parts[i].ended && !run.parts[i].end_sent;
            if !has_records && !newly_ended {
                continue;
            }
            let (batch, row_kinds) = if has_records {
                let records = std::mem::take(&mut run.parts[i].records);
                let (b, k, skipped) = decode_partition(&config, run, i, &records)?;
                self.skipped += skipped;
                (b, k)
            } else {
                (RecordBatch::new_empty(config.layout.schema.clone()), None)
            };
            let p = &mut run.parts[i];
            if newly_ended {
                p.end_sent = true;
                let _ = to_pause.add_partition(&p.topic, p.partition);
            }
            self.ready.push_back(Queued {
                batch: SourceBatch {
                    batch,
                    row_kinds,
                    partition: Some(PartitionMark { partition: p.mark, ended: newly_ended }),
                },
                handed: Some((i, p.next)),
            });
        }
        if to_pause.count() > 0 {
            // Stop fetching what will not be read; a failure only costs bandwidth.
            let _ = consumer.pause(&to_pause);
        }
        if run.last_commit.elapsed() >= COMMIT_INTERVAL {
            commit(&config, run, CommitMode::Async);
        }
        Ok(())
    }

    /// Whether a bounded read is complete (an unbounded one never is, even with no partitions).
    fn all_ended(&self) -> bool {
        self.config.bounded != Bounded::Unbounded
            && self.running.as_ref().is_some_and(|r| r.parts.iter().all(|p| p.ended && p.end_sent))
    }

    /// The end of a bounded read: commit and deliver what is pending.
    async fn close(&mut self) -> Result<()> {
        let config = self.config.clone();
        let Some(run) = self.running.as_mut() else { return Ok(()) };
        commit(&config, run, CommitMode::Sync);
        if let Some(producer) = run.dead_letter.take() {
            let p = Arc::new(producer);
            let flushed = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(30)))
                .await
                .map_err(|e| broker_error(&config, "dead-letter flush failed", e))?;
            flushed.map_err(|e| broker_error(&config, "writing to the dead-letter topic failed", e))?;
        }
        Ok(())
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        // A job that is stopped (not one whose bounded read ended: close() committed then)
        // commits how far it got, so a restart resumes there rather than up to a second
        // earlier. The job drains what it was handed before it ends.
        let config = self.config.clone();
        if let Some(run) = self.running.as_mut() {
            commit(&config, run, CommitMode::Sync);
        }
    }
}

/// Decode partition `i`'s records; bad records fail the job, are skipped, or go to the
/// dead-letter topic. Returns the rows, their kinds, and how many records were skipped.
fn decode_partition(
    config: &Config,
    run: &mut Running,
    i: usize,
    records: &Records,
) -> Result<(RecordBatch, Option<arrow::array::Int8Array>, u64)> {
    let topic = run.parts[i].topic.clone();
    let partition = run.parts[i].partition;
    if !run.decoders.contains_key(&topic) {
        let report_all = config.dead_letter_topic.is_some();
        let key = match &config.layout.key {
            Some(k) => Some(k.decoder(&config.table, &topic, report_all)?),
            None => None,
        };
        let value = config.layout.value.decoder(&config.table, &topic, report_all)?;
        run.decoders.insert(topic.clone(), (key, value));
    }
    let Some((key_dec, value_dec)) = run.decoders.get_mut(&topic) else {
        return Err(ConnectorError::options(&config.table, "no decoder"));
    };
    // Records a format drops itself (`ignore-parse-errors`) are counted by the decoders.
    let dropped_before = key_dec.as_ref().map_or(0, |d| d.skipped()) + value_dec.skipped();
    let assembled = assemble(&config.layout, config.flavor, records, &topic, partition, key_dec.as_mut(), value_dec)?;
    let dropped_after = key_dec.as_ref().map_or(0, |d| d.skipped()) + value_dec.skipped();
    let mut skipped = dropped_after.saturating_sub(dropped_before);
    for bad in &assembled.bad {
        let offset = records.offsets[bad.record];
        let location = format!("topic '{topic}' partition {partition} offset {offset}");
        let part = if bad.side == "key" { config.layout.key.as_ref() } else { Some(&config.layout.value) };
        if let (Some(dlq), Some(dlq_topic)) = (&run.dead_letter, &config.dead_letter_topic) {
            let mut headers = rdkafka::message::OwnedHeaders::new();
            for (k, v) in [
                ("eddy.error", format!("{location}: cannot decode the record {}: {}", bad.side, bad.message)),
                ("eddy.table", config.table.clone()),
                ("eddy.topic", topic.to_string()),
                ("eddy.partition", partition.to_string()),
                ("eddy.offset", offset.to_string()),
            ] {
                headers = headers.insert(rdkafka::message::Header { key: k, value: Some(v.as_bytes()) });
            }
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(dlq_topic).headers(headers);
            if let Some(k) = records.key(bad.record) {
                record = record.key(k);
            }
            if let Some(v) = records.value(bad.record) {
                record = record.payload(v);
            }
            dlq.send(record).map_err(|(e, _)| {
                broker_error(config, &format!("cannot send to dead-letter topic '{dlq_topic}'"), e)
            })?;
            skipped += 1;
        } else if part.is_some_and(|p| p.ignores_parse_errors()) {
            skipped += 1;
        } else {
            return Err(ConnectorError::bad_record(
                format!("table '{}': {location}", config.table),
                format!("cannot decode the record {} ({}): {}", bad.side, format_name(config, bad.side), bad.message),
            ));
        }
    }
    if skipped > 0 {
        tracing::debug!(table = %config.table, %topic, partition, skipped, "malformed records skipped");
    }
    Ok((assembled.batch, assembled.row_kinds, skipped))
}

fn format_name(config: &Config, side: &str) -> &'static str {
    match (side, &config.layout.key) {
        ("key", Some(k)) => k.format.name(),
        _ => config.layout.value.format.name(),
    }
}

/// Commit the next offset of every partition that moved (nothing without a group): as
/// far as the batches returned reach, so a restart from the group's offsets does not skip
/// records that were still queued.
fn commit(config: &Config, run: &mut Running, mode: CommitMode) {
    run.last_commit = Instant::now();
    if config.client.group_id.is_none() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for p in run.parts.iter().filter(|p| p.handed > p.committed) {
        let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.handed));
    }
    if tpl.count() == 0 {
        return;
    }
    match run.consumer.commit(&tpl, mode) {
        Ok(()) => {
            for p in run.parts.iter_mut() {
                p.committed = p.committed.max(p.handed);
            }
        }
        // A failed commit is retried with the next one; reading goes on.
        Err(e) => tracing::warn!(table = %config.table, error = %e, "committing offsets failed"),
    }
}

/// An empty batch marked with a partition: announces it (it holds the watermark back from
/// then on) or says that it ended.
fn announce(config: &Config, mark: u32, ended: bool) -> SourceBatch {
    SourceBatch {
        batch: RecordBatch::new_empty(config.layout.schema.clone()),
        row_kinds: None,
        partition: Some(PartitionMark { partition: mark, ended }),
    }
}

/// The offset `list` has for each partition of `tps`, if any.
fn offsets_of(list: &TopicPartitionList, tps: &[(Arc<str>, i32)]) -> Vec<Option<i64>> {
    tps.iter()
        .map(|(t, p)| {
            list.find_partition(t, *p).and_then(|e| match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            })
        })
        .collect()
}

/// Start and stop offsets of each partition, as `given` (a checkpoint position) or else the
/// startup and bounded modes say, and whether the stop is the partition's end (to be
/// confirmed by the first fetch).
async fn offsets(
    config: &Config,
    consumer: &Arc<KafkaConsumer>,
    all: &[(Arc<str>, i32)],
    given: &[Given],
) -> Result<Vec<(i64, Option<i64>, bool)>> {
    let config_c = config.clone();
    let consumer = consumer.clone();
    let all = all.to_vec();
    let given = given.to_vec();
    let timeout = config.client.open_timeout;
    let result = tokio::task::spawn_blocking(move || -> Result<Vec<(i64, Option<i64>, bool)>> {
        let config = &config_c;
        let err = |what: &str, e: KafkaError| broker_error(config, what, e);
        let mut all_low_high = Vec::with_capacity(all.len());
        for (t, p) in &all {
            all_low_high
                .push(consumer.fetch_watermarks(t, *p, timeout).map_err(|e| client::unreachable_error(config, e))?);
        }
        // The startup mode is looked up only for partitions the position does not place (a
        // resumed split needs no committed offset, say, for a partition it has read).
        let todo: Vec<usize> = (0..all.len()).filter(|i| given.get(*i).is_none_or(|g| g.start.is_none())).collect();
        let tps: Vec<(Arc<str>, i32)> = todo.iter().map(|i| all[*i].clone()).collect();
        let low_high: Vec<(i64, i64)> = todo.iter().map(|i| all_low_high[*i]).collect();
        let committed_of = |tps: &[(Arc<str>, i32)]| -> Result<Vec<Option<i64>>> {
            if tps.is_empty() {
                return Ok(Vec::new());
            }
            let mut tpl = TopicPartitionList::new();
            for (t, p) in tps {
                tpl.add_partition(t, *p);
            }
            let c = consumer.committed_offsets(tpl, timeout).map_err(|e| err("cannot read committed offsets", e))?;
            Ok(offsets_of(&c, tps))
        };
        let committed = || committed_of(&tps);
        let for_time = |ts: i64| -> Result<Vec<Option<i64>>> {
            if tps.is_empty() {
                return Ok(Vec::new());
            }
            let mut tpl = TopicPartitionList::new();
            for (t, p) in &tps {
                tpl.add_partition_offset(t, *p, Offset::Offset(ts)).map_err(|e| err("bad timestamp", e))?;
            }
            let r = consumer.offsets_for_times(tpl, timeout).map_err(|e| err("cannot look up offsets by time", e))?;
            Ok(offsets_of(&r, &tps))
        };
        let specific = |list: &[(i32, i64)], p: i32| list.iter().find(|(q, _)| *q == p).map(|(_, o)| *o);
        let starts: Vec<i64> = match &config.startup {
            Startup::Earliest => low_high.iter().map(|(l, _)| *l).collect(),
            Startup::Latest => low_high.iter().map(|(_, h)| *h).collect(),
            Startup::GroupOffsets { reset } => {
                let c = committed()?;
                let mut out = Vec::with_capacity(c.len());
                for (i, o) in c.into_iter().enumerate() {
                    out.push(match (o, reset) {
                        (Some(o), _) => o,
                        (None, Some(ResetTo::Earliest)) => low_high[i].0,
                        (None, Some(ResetTo::Latest)) => low_high[i].1,
                        (None, None) => {
                            return Err(ConnectorError::options(
                                &config.table,
                                format!(
                                    "group '{}' has no committed offset for topic '{}' partition {} \
                                     ('scan.startup.mode' = 'group-offsets'); set 'properties.auto.offset.reset' \
                                     = 'earliest' or 'latest', or choose another 'scan.startup.mode'",
                                    config.client.group_id.as_deref().unwrap_or(""),
                                    tps[i].0,
                                    tps[i].1
                                ),
                            ))
                        }
                    });
                }
                out
            }
            Startup::Timestamp(ts) => {
                for_time(*ts)?.into_iter().zip(&low_high).map(|(o, (_, h))| o.unwrap_or(*h)).collect()
            }
            Startup::Specific(list) => {
                let c = if config.client.group_id.is_some() { committed()? } else { vec![None; tps.len()] };
                tps.iter().enumerate().map(|(i, (_, p))| specific(list, *p).or(c[i]).unwrap_or(low_high[i].0)).collect()
            }
        };
        // A job started again resumes where its group's commits say it got to.
        let starts: Vec<i64> = if config.resume {
            committed()?.into_iter().zip(starts).map(|(c, s)| c.unwrap_or(s)).collect()
        } else {
            starts
        };
        // Every partition's start: from the position, or as just looked up (in `todo` order).
        let mut looked_up = starts.into_iter();
        let starts: Vec<i64> = (0..all.len())
            .map(|i| match given.get(i).and_then(|g| g.start) {
                Some(start) => start,
                None => looked_up.next().unwrap_or(all_low_high[i].0),
            })
            .collect();
        // Per partition: the offset to stop before, or None for the partition's end.
        let stops: Vec<Option<i64>> = match &config.bounded {
            Bounded::Unbounded => vec![None; all.len()],
            Bounded::Latest => vec![None; all.len()],
            Bounded::GroupOffsets => {
                // The group's offsets move as the job commits: a resumed split keeps its stops.
                let unknown: Vec<usize> =
                    (0..all.len()).filter(|i| given.get(*i).is_none_or(|g| g.stop.is_none())).collect();
                let list: Vec<(Arc<str>, i32)> = unknown.iter().map(|i| all[*i].clone()).collect();
                let mut found = committed_of(&list)?.into_iter();
                (0..all.len()).map(|i| if unknown.contains(&i) { found.next().flatten() } else { None }).collect()
            }
            // The first record at or after the time ends the partition (checked record by
            // record: brokers' answers to ListOffsets(time) vary); at the latest, its end.
            Bounded::Timestamp(_) => vec![None; all.len()],
            Bounded::Specific(list) => all.iter().map(|(_, p)| specific(list, *p)).collect(),
        };
        let bounded = config.bounded != Bounded::Unbounded;
        // A start below the log's beginning (deleted records) starts at the beginning.
        Ok(starts
            .into_iter()
            .zip(stops)
            .zip(&all_low_high)
            .zip(&given)
            .map(|(((start, stop), (low, high)), given)| match (given.stop, stop) {
                (Some(stop), _) | (None, Some(stop)) => (start.max(*low), Some(stop), false),
                (None, None) if bounded => (start.max(*low), Some(*high), true),
                (None, None) => (start.max(*low), None, false),
            })
            .collect())
    })
    .await
    .map_err(|e| broker_error(config, "offset lookup failed", e))?;
    result
}

#[async_trait::async_trait]
impl Source for KafkaSource {
    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        if self.running.is_none() && !self.done {
            let running = self.open().await?;
            self.running = Some(running);
        }
        loop {
            if let Some(queued) = self.ready.pop_front() {
                // Its records are handed on now: the position moves past them.
                if let (Some((i, offset)), Some(run)) = (queued.handed, self.running.as_mut()) {
                    if let Some(p) = run.parts.get_mut(i) {
                        p.handed = p.handed.max(offset);
                    }
                }
                return Ok(Some(queued.batch));
            }
            if self.done {
                return Ok(None);
            }
            if self.all_ended() {
                self.close().await?;
                self.done = true;
                return Ok(None);
            }
            self.discover().await?;
            self.fill().await?;
            if self.ready.is_empty() {
                // Nothing arrived: let the runtime run its timers.
                return Ok(Some(SourceBatch::rows(RecordBatch::new_empty(self.config.layout.schema.clone()))));
            }
        }
    }

    fn skipped_records(&self) -> u64 {
        self.skipped
    }

    fn lag(&self) -> Vec<(String, i64)> {
        let Some(run) = &self.running else { return Vec::new() };
        run.parts
            .iter()
            .filter(|p| !p.ended)
            .filter_map(|p| {
                let high = cached_high_watermark(&run.consumer, &p.topic, p.partition)?;
                Some((format!("{}/{}", p.topic, p.partition), (high - p.handed).max(0)))
            })
            .collect()
    }

    fn position(&self) -> Option<serde_json::Value> {
        let position = match &self.running {
            // Not open yet: nothing was read, so the position it was given (if any) holds.
            None => self.resume_at.clone().unwrap_or_default(),
            Some(run) => {
                let mut position = Position::default();
                for p in &run.parts {
                    let key = Position::key(&p.topic, p.partition);
                    if p.start_time.is_none() {
                        position.offsets.insert(key.clone(), p.handed);
                    }
                    // An ended partition stops where its reading stopped (queued records
                    // included); a bounded one where it will, once that is certain.
                    if p.ended {
                        position.stops.insert(key, p.next);
                    } else if let (Some(stop), false) = (p.stop, p.stop_unconfirmed) {
                        position.stops.insert(key, stop);
                    }
                }
                position
            }
        };
        serde_json::to_value(position).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::split_owner;

    #[test]
    fn split_owner_is_flinks_rule_and_spreads_a_topic_evenly() {
        // Java: "abc".hashCode() = 96354; (96354 * 31) & 0x7FFFFFFF = 2986974; % 4 = 2.
        assert_eq!(split_owner("abc", 0, 4), 2);
        assert_eq!(split_owner("abc", 1, 4), 3);
        assert_eq!(split_owner("abc", 2, 4), 0);
        // Every split gets the same share of a topic's partitions.
        let mut counts = [0; 3];
        for p in 0..12 {
            counts[split_owner("bids", p, 3)] += 1;
        }
        assert_eq!(counts, [4, 4, 4]);
        assert_eq!(split_owner("any", 7, 1), 0);
    }
}
