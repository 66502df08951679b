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
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

use crate::test_util::table;
use crate::{ConnectorTable, Source, Split};

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

/// Every value of `topic` (all partitions), as the `n` of `{"n": n}`, read as `isolation`.
fn read_topic(topic: &str, isolation: &str) -> Vec<i64> {
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
                out.push(v["n"].as_i64().unwrap());
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eofs += 1,
            Some(Err(e)) => panic!("{e}"),
            None => {}
        }
    }
    out
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
