//! Checkpoint behaviour of the Kafka source and sink against a real broker: the shared
//! test broker (`../shared/scripts/kafka-up`, Tansu on 127.0.0.1:19092), started by the
//! first test that needs it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

use super::transaction::{SavedState, TXN_HEADER};
use crate::test_util::table;
use crate::{ConnectorTable, Sink, Source, Split};

/// The shared broker's address, started once (the script returns at once if it runs).
fn broker() -> &'static str {
    static BROKER: OnceLock<String> = OnceLock::new();
    BROKER.get_or_init(|| {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/scripts/kafka-up");
        let out = std::process::Command::new(&script).output().unwrap_or_else(|e| panic!("{}: {e}", script.display()));
        assert!(out.status.success(), "kafka-up failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}

/// A topic name no other test or run uses.
fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{}-{}", std::process::id(), nanos % 1_000_000_000, N.fetch_add(1, Ordering::Relaxed))
}

fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker());
    c
}

async fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client_config().create().unwrap();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for r in admin.create_topics([&new], &AdminOptions::new()).await.unwrap() {
        r.unwrap();
    }
}

/// Produce `{"n": i}` for each `(partition, i)` and wait for the acknowledgements. One
/// record per batch: the test broker answers ListOffsets(latest) with the start of the
/// last batch + 1.
fn produce(topic: &str, records: &[(i32, i64)]) {
    let p: ThreadedProducer<DefaultProducerContext> = client_config().set("batch.num.messages", "1").create().unwrap();
    for (partition, n) in records {
        let value = format!("{{\"n\": {n}}}");
        p.send(BaseRecord::<[u8], [u8]>::to(topic).partition(*partition).payload(value.as_bytes())).unwrap();
    }
    p.flush(Duration::from_secs(20)).unwrap();
}

/// A record as a test reads it back.
#[derive(Debug)]
struct ReadRecord {
    /// The `n` of the value `{"n": n}`.
    n: i64,
    timestamp: Option<i64>,
    /// The exactly-once sink's `eddy.txn` header.
    tag: Option<String>,
}

/// Every record of `topic` (all partitions), read as `isolation`.
fn read_records(topic: &str, isolation: &str) -> Vec<ReadRecord> {
    let c: BaseConsumer = client_config()
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .create()
        .unwrap();
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let partitions = md.topics()[0].partitions().len();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut eofs = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while eofs < partitions && std::time::Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
                let tag = m.headers().and_then(|h| h.iter().find(|h| h.key == TXN_HEADER)).and_then(|h| h.value);
                out.push(ReadRecord {
                    n: v["n"].as_i64().unwrap(),
                    timestamp: m.timestamp().to_millis(),
                    tag: tag.map(|t| String::from_utf8_lossy(t).into_owned()),
                });
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eofs += 1,
            Some(Err(e)) => panic!("{e}"),
            None => {}
        }
    }
    out
}

/// Every value of `topic` (all partitions), as the `n` of `{"n": n}`, read as `isolation`.
fn read_topic(topic: &str, isolation: &str) -> Vec<i64> {
    read_records(topic, isolation).into_iter().map(|r| r.n).collect()
}

/// [`read_topic`] `read_committed`, sorted (partitions interleave).
fn committed_sorted(topic: &str) -> Vec<i64> {
    let mut all = read_topic(topic, "read_committed");
    all.sort();
    all
}

fn source_table(topic: &str, extra: &[(&str, &str)]) -> ConnectorTable {
    let mut options = vec![
        ("connector", "kafka"),
        ("topic", topic),
        ("properties.bootstrap.servers", broker()),
        ("format", "json"),
        ("scan.startup.mode", "earliest-offset"),
        ("scan.bounded.mode", "latest-offset"),
    ];
    options.extend_from_slice(extra);
    table(vec![Field::new("n", DataType::Int64, true)], &options)
}

fn ns(batch: &RecordBatch) -> Vec<i64> {
    batch.column(0).as_primitive::<Int64Type>().values().to_vec()
}

/// Pull batches until `rows` rows came back (or the source ended); the values read.
async fn read_rows(source: &mut dyn Source, rows: usize) -> Vec<i64> {
    let mut out = Vec::new();
    while out.len() < rows {
        match source.next_batch().await.unwrap() {
            Some(b) => out.extend(ns(&b.batch)),
            None => break,
        }
    }
    out
}

/// The values of records 0..n spread round-robin over `partitions`: (partition, n).
fn spread(n: i64, partitions: i32) -> Vec<(i32, i64)> {
    (0..n).map(|i| ((i % i64::from(partitions)) as i32, i)).collect()
}

#[tokio::test]
async fn source_position_counts_only_returned_batches_and_resumes_there() {
    let topic = unique("ckpt-src");
    create_topic(&topic, 3).await;
    produce(&topic, &spread(300, 3));
    let t = source_table(&topic, &[]);
    let split = Split { index: 0, count: 1 };
    let mut source = crate::create_source(&t, split).unwrap();
    // Before the first call nothing was read: an empty position (every partition as the
    // options say).
    assert_eq!(source.position(), Some(serde_json::json!({ "offsets": {} })));
    // Until every partition's end is confirmed (by a fetch from it) and some rows came.
    let mut first = Vec::new();
    let position = loop {
        first.extend(read_rows(source.as_mut(), 1).await);
        let position = source.position().unwrap();
        // One poll fetches several partitions; the batches still queued do not count.
        let offsets = position["offsets"].as_object().unwrap();
        assert_eq!(offsets.len(), 3, "{position}");
        let counted: i64 = offsets.values().map(|v| v.as_i64().unwrap()).sum();
        assert_eq!(counted, first.len() as i64, "{position}");
        if !first.is_empty() && position["stops"].as_object().is_some_and(|s| s.len() == 3) {
            break position;
        }
    };
    // Bounded: each partition's end is kept.
    assert_eq!(position["stops"][format!("{topic}/0")], 100, "{position}");
    drop(source);

    // Records written after the checkpoint are past the kept stops: not read.
    produce(&topic, &[(0, 1000), (1, 1001)]);
    let mut resumed = crate::create_source_at(&t, split, Some(&position)).unwrap();
    let rest = read_rows(resumed.as_mut(), usize::MAX).await;
    let mut all: Vec<i64> = first.iter().chain(&rest).copied().collect();
    all.sort();
    assert_eq!(all, (0..300).collect::<Vec<_>>(), "no record lost, none repeated");
    // Within a partition, order holds across the restart.
    for p in 0..3 {
        let of_p: Vec<i64> = first.iter().chain(&rest).copied().filter(|n| n % 3 == p).collect();
        assert!(of_p.windows(2).all(|w| w[0] < w[1]), "partition {p}: {of_p:?}");
    }
    // At the end, the position is every partition's end.
    let end = resumed.position().unwrap();
    assert_eq!(end["offsets"][format!("{topic}/2")], 100, "{end}");
}

#[tokio::test]
async fn partitions_missing_from_the_position_start_as_the_options_say() {
    let topic = unique("ckpt-src-missing");
    create_topic(&topic, 2).await;
    produce(&topic, &spread(40, 2));
    let t = source_table(&topic, &[]);
    // Partition 0 resumes after its 5th record (n = 8); partition 1 starts at the earliest.
    let position = serde_json::json!({ "offsets": { format!("{topic}/0"): 5 } });
    let mut source = crate::create_source_at(&t, Split { index: 0, count: 1 }, Some(&position)).unwrap();
    let mut got = read_rows(source.as_mut(), usize::MAX).await;
    got.sort();
    let expected: Vec<i64> = (0..40).filter(|n| n % 2 == 1 || *n >= 10).collect();
    assert_eq!(got, expected);

    let e =
        crate::create_source_at(&t, Split { index: 0, count: 1 }, Some(&serde_json::json!({ "offsets": { "x": 1 } })))
            .err()
            .unwrap()
            .to_string();
    assert!(e.contains("cannot resume from the checkpoint") && e.contains("'x'"), "{e}");
}

fn sink_table(topic: &str, extra: &[(&str, &str)]) -> ConnectorTable {
    let mut options =
        vec![("connector", "kafka"), ("topic", topic), ("properties.bootstrap.servers", broker()), ("format", "json")];
    options.extend_from_slice(extra);
    table(vec![Field::new("n", DataType::Int64, true)], &options)
}

fn rows(n: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(n))]).unwrap()
}

#[tokio::test]
async fn sink_pre_commit_waits_until_the_rows_are_in_kafka() {
    let topic = unique("ckpt-sink");
    create_topic(&topic, 1).await;
    // A long linger: without the wait, the records would still sit in the producer.
    let t = sink_table(&topic, &[("properties.linger.ms", "2000")]);
    let mut sink = crate::create_sink(&t, Split { index: 0, count: 1 }).unwrap();
    sink.write_batch(&rows(0..50), None).await.unwrap();
    assert_eq!(sink.pre_commit(1).await.unwrap(), None);
    assert_eq!(read_topic(&topic, "read_uncommitted"), (0..50).collect::<Vec<_>>());
    sink.commit(1).await.unwrap();
    sink.write_batch(&rows(50..60), None).await.unwrap();
    sink.finish().await.unwrap();
    assert_eq!(read_topic(&topic, "read_uncommitted").len(), 60);
}

fn exactly_once_table(topic: &str, prefix: &str, extra: &[(&str, &str)]) -> ConnectorTable {
    let mut options = vec![("sink.delivery-guarantee", "exactly-once"), ("sink.transactional-id-prefix", prefix)];
    options.extend_from_slice(extra);
    sink_table(topic, &options)
}

fn exactly_once_sink(t: &ConnectorTable) -> Box<dyn Sink> {
    crate::create_sink(t, Split { index: 0, count: 1 }).unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test]
async fn exactly_once_rows_are_visible_once_their_checkpoint_completes() {
    let topic = unique("eo-visible");
    create_topic(&topic, 2).await;
    let prefix = unique("eo-visible-txn");
    let mut sink = exactly_once_sink(&exactly_once_table(&topic, &prefix, &[]));
    sink.write_batch(&rows(0..30), None).await.unwrap();
    let written = now_ms();
    let state = sink.pre_commit(1).await.unwrap().unwrap();
    assert_eq!(state["transactional_id"], format!("{prefix}-0"));
    assert_eq!(state["epochs"][0]["epoch"], 1);
    assert_eq!(state["epochs"][0]["records"].as_array().unwrap().len(), 30);
    // Rows after the barrier belong to the next epoch.
    sink.write_batch(&rows(30..40), None).await.unwrap();
    assert_eq!(read_topic(&topic, "read_committed"), Vec::<i64>::new(), "nothing before the checkpoint completes");

    tokio::time::sleep(Duration::from_millis(50)).await;
    sink.commit(1).await.unwrap();
    let published = read_records(&topic, "read_committed");
    let mut ns: Vec<i64> = published.iter().map(|r| r.n).collect();
    ns.sort();
    assert_eq!(ns, (0..30).collect::<Vec<_>>());
    // Each record names its writer, epoch and place in the epoch; it keeps the time it was
    // written, not the commit's.
    let mut tags: Vec<String> = published.iter().map(|r| r.tag.clone().unwrap()).collect();
    tags.sort();
    let mut expected: Vec<String> = (0..30).map(|n| format!("{prefix}-0:1:{n}")).collect();
    expected.sort();
    assert_eq!(tags, expected);
    assert!(published.iter().all(|r| r.timestamp.is_some_and(|t| t <= written)), "{published:?}");
    // A later commit of the same epoch (or an empty one) publishes nothing again.
    sink.commit(1).await.unwrap();

    // `finish` publishes what is still held, even without a checkpoint.
    sink.finish().await.unwrap();
    assert_eq!(committed_sorted(&topic), (0..40).collect::<Vec<_>>());
}

/// What a sink that died half-way through its commit of `epoch` leaves behind: the first
/// `records` records of the epoch produced, the marker added, and no commit.
fn die_while_committing(id: &str, topic: &str, state: &serde_json::Value, epoch: u64, records: usize) {
    let saved = SavedState::parse("t", state.clone(), id).unwrap();
    let sealed = saved.epochs.iter().find(|s| s.epoch == epoch).unwrap();
    let producer: ThreadedProducer<DefaultProducerContext> =
        client_config().set("transactional.id", id).create().unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    producer.begin_transaction().unwrap();
    for (n, record) in sealed.records.iter().take(records).enumerate() {
        let tag = super::transaction::tag(id, epoch, n);
        producer.send(record.base_record(topic, &tag)).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(20)).unwrap();
    let group: BaseConsumer = client_config().set("group.id", format!("{id}.epoch")).create().unwrap();
    let mut marker = rdkafka::TopicPartitionList::new();
    marker.add_partition_offset(topic, 0, rdkafka::Offset::Offset(epoch as i64)).unwrap();
    producer.send_offsets_to_transaction(&marker, &group.group_metadata().unwrap(), Duration::from_secs(20)).unwrap();
    drop(producer);
}

/// What the broker does when a writer with `id` starts again: the open transaction of the
/// dead one is aborted.
fn abort_open_transaction(id: &str) {
    let producer: ThreadedProducer<DefaultProducerContext> =
        client_config().set("transactional.id", id).create().unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
}

#[tokio::test]
async fn exactly_once_recovery_publishes_the_restored_epochs_once() {
    let topic = unique("eo-crash");
    create_topic(&topic, 3).await;
    let prefix = unique("eo-crash-txn");
    let id = format!("{prefix}-0");
    let t = exactly_once_table(&topic, &prefix, &[("sink.partitioner", "round-robin")]);
    let mut first = exactly_once_sink(&t);
    first.write_batch(&rows(0..10), None).await.unwrap();
    first.pre_commit(1).await.unwrap();
    first.commit(1).await.unwrap();
    first.write_batch(&rows(10..40), None).await.unwrap();
    let state = first.pre_commit(2).await.unwrap().unwrap();
    // Checkpoint 2 completes, and the sink dies while committing it: 12 of its 30 records
    // (4 in each partition) were written.
    drop(first);
    die_while_committing(&id, &topic, &state, 2, 12);
    abort_open_transaction(&id);
    let visible = committed_sorted(&topic);
    let leaked: Vec<i64> = (10..22).collect();
    // Kafka hides the aborted records; the test broker (Tansu) shows them.
    assert!(visible == (0..10).collect::<Vec<_>>() || visible == [(0..10).collect(), leaked].concat(), "{visible:?}");

    eprintln!("records of the dead transaction visible: {}", visible.len() - 10);
    let mut second = exactly_once_sink(&t);
    second.recover(Some(state.clone())).await.unwrap();
    assert_eq!(
        committed_sorted(&topic),
        (0..40).collect::<Vec<_>>(),
        "every row once (leaked: {})",
        visible.len() > 10
    );
    // Within each partition the rows keep their order.
    let records = read_records(&topic, "read_committed");
    for p in 0..3 {
        let of_p: Vec<i64> = records.iter().map(|r| r.n).filter(|n| n % 3 == p).collect();
        assert!(of_p.windows(2).all(|w| w[0] < w[1]), "partition {p}: {of_p:?}");
    }
    assert!(records.iter().all(|r| r.tag.as_deref().is_some_and(|t| t.starts_with(&format!("{id}:")))));

    // The recovered sink goes on.
    second.write_batch(&rows(40..45), None).await.unwrap();
    second.pre_commit(3).await.unwrap();
    second.commit(3).await.unwrap();
    assert_eq!(committed_sorted(&topic), (0..45).collect::<Vec<_>>());
}

#[tokio::test]
async fn exactly_once_recovery_of_a_committed_checkpoint_publishes_nothing() {
    let topic = unique("eo-done");
    create_topic(&topic, 2).await;
    let prefix = unique("eo-done-txn");
    let t = exactly_once_table(&topic, &prefix, &[]);
    let mut sink = exactly_once_sink(&t);
    sink.write_batch(&rows(0..20), None).await.unwrap();
    let state = sink.pre_commit(1).await.unwrap().unwrap();
    sink.commit(1).await.unwrap();
    // The job ends as the engine ends it: the final checkpoint, its commit, finish.
    sink.write_batch(&rows(20..25), None).await.unwrap();
    let last = sink.pre_commit(u64::MAX).await.unwrap().unwrap();
    assert_eq!(last["epochs"][0]["epoch"], u64::MAX);
    sink.commit(u64::MAX).await.unwrap();
    sink.finish().await.unwrap();
    drop(sink);
    assert_eq!(committed_sorted(&topic), (0..25).collect::<Vec<_>>());

    // Restarted from either checkpoint (a crash after the commit), nothing is written again.
    for state in [state, last] {
        let mut again = exactly_once_sink(&t);
        again.recover(Some(state)).await.unwrap();
        again.finish().await.unwrap();
    }
    assert_eq!(committed_sorted(&topic), (0..25).collect::<Vec<_>>());
}

#[tokio::test]
async fn exactly_once_a_new_run_with_the_same_prefix_starts_its_own_marker() {
    let topic = unique("eo-rerun");
    create_topic(&topic, 1).await;
    let prefix = unique("eo-rerun-txn");
    let t = exactly_once_table(&topic, &prefix, &[]);
    // An earlier job with this prefix got to epoch 7.
    let mut earlier = exactly_once_sink(&t);
    earlier.write_batch(&rows(0..5), None).await.unwrap();
    earlier.pre_commit(7).await.unwrap();
    earlier.commit(7).await.unwrap();
    drop(earlier);

    // A new job (no recover) counts epochs from 1 again; it dies before committing epoch 1.
    let mut new = exactly_once_sink(&t);
    new.write_batch(&rows(5..10), None).await.unwrap();
    let state = new.pre_commit(1).await.unwrap().unwrap();
    drop(new);
    // Restarted from its checkpoint 1: epoch 1 is not taken for the earlier job's.
    let mut restarted = exactly_once_sink(&t);
    restarted.recover(Some(state)).await.unwrap();
    assert_eq!(committed_sorted(&topic), (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn exactly_once_refuses_a_state_of_another_writer() {
    let topic = unique("eo-other");
    create_topic(&topic, 1).await;
    let mut sink = exactly_once_sink(&exactly_once_table(&topic, &unique("eo-other-txn"), &[]));
    let state = serde_json::json!({ "transactional_id": "someone-else-0", "epochs": [] });
    let e = sink.recover(Some(state)).await.unwrap_err().to_string();
    assert!(e.contains("cannot resume from the checkpoint") && e.contains("'someone-else-0'"), "{e}");
}
