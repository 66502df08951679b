//! Helpers of the Kafka tests: the broker, producing records and reading topics back with
//! librdkafka, and running the `eddy` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The port of the shared test broker.
pub const PORT: u16 = 19092;

const TIMEOUT: Duration = Duration::from_secs(20);

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared/scripts/<name>`, or a panic saying what is missing.
pub fn shared_script(name: &str) -> PathBuf {
    let p = repo().join("../shared/scripts").join(name);
    assert!(p.exists(), "{} is missing: the Kafka tests need ../shared beside the repository", p.display());
    p
}

/// Start (once) the broker on `port`; its bootstrap address.
pub fn broker_on(port: u16) -> String {
    let out = Command::new(shared_script("kafka-up")).arg(port.to_string()).output().expect("run kafka-up");
    assert!(out.status.success(), "kafka-up failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The shared broker.
pub fn broker() -> &'static str {
    static BROKER: OnceLock<String> = OnceLock::new();
    BROKER.get_or_init(|| broker_on(PORT))
}

/// A topic (or group) name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{}-{}", std::process::id(), nanos % 1_000_000_000, N.fetch_add(1, Ordering::Relaxed))
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create().expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let r = rt.block_on(admin.create_topics([&new], &AdminOptions::new())).expect("create topic");
    for x in r {
        x.unwrap_or_else(|e| panic!("create topic {topic}: {e:?}"));
    }
}

pub fn partition_count(bootstrap: &str, topic: &str) -> Option<usize> {
    let c: BaseConsumer = config(bootstrap).create().expect("consumer");
    let md = c.fetch_metadata(Some(topic), TIMEOUT).ok()?;
    md.topics().iter().find(|t| t.name() == topic).filter(|t| t.error().is_none()).map(|t| t.partitions().len())
}

/// A record to produce, or one read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rec {
    pub key: Option<String>,
    pub value: Option<String>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Rec {
    pub fn value(v: &str) -> Self {
        Self { value: Some(v.to_string()), partition: -1, ..Default::default() }
    }
    pub fn tombstone(key: &str) -> Self {
        Self { key: Some(key.to_string()), partition: -1, ..Default::default() }
    }
    pub fn key(mut self, k: &str) -> Self {
        self.key = Some(k.to_string());
        self
    }
    pub fn partition(mut self, p: i32) -> Self {
        self.partition = p;
        self
    }
    pub fn timestamp(mut self, t: i64) -> Self {
        self.timestamp = Some(t);
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), Some(v.as_bytes().to_vec())));
        self
    }
}

/// A record with binary key and value (Avro, Confluent framing), to produce or as read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BinRec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl BinRec {
    pub fn value(v: &[u8]) -> Self {
        Self { value: Some(v.to_vec()), partition: -1, ..Default::default() }
    }
    pub fn key(mut self, k: &[u8]) -> Self {
        self.key = Some(k.to_vec());
        self
    }
    pub fn partition(mut self, p: i32) -> Self {
        self.partition = p;
        self
    }
    /// The value of header `key`, as text.
    pub fn header(&self, key: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

impl From<&Rec> for BinRec {
    fn from(r: &Rec) -> Self {
        Self {
            key: r.key.as_ref().map(|k| k.as_bytes().to_vec()),
            value: r.value.as_ref().map(|v| v.as_bytes().to_vec()),
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            headers: r.headers.clone(),
        }
    }
}

impl From<BinRec> for Rec {
    fn from(r: BinRec) -> Self {
        Self {
            key: r.key.map(|k| String::from_utf8_lossy(&k).into_owned()),
            value: r.value.map(|v| String::from_utf8_lossy(&v).into_owned()),
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            headers: r.headers,
        }
    }
}

/// Produce `records` in order and wait until all are acknowledged.
///
/// One record per batch: the test broker (Tansu 0.6) answers ListOffsets(latest) with the
/// start of the last batch + 1, which is the log's end only when batches hold one record.
/// (Eddy's own source does not rely on it; `latest-offset` startup does, as in Flink.)
pub fn produce(bootstrap: &str, topic: &str, records: &[Rec]) {
    let records: Vec<BinRec> = records.iter().map(BinRec::from).collect();
    produce_bytes(bootstrap, topic, &records);
}

/// [`produce`] for records with binary keys and values.
pub fn produce_bytes(bootstrap: &str, topic: &str, records: &[BinRec]) {
    let p: ThreadedProducer<DefaultProducerContext> =
        config(bootstrap).set("batch.num.messages", "1").create().expect("producer");
    for r in records {
        let mut br: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(k) = &r.key {
            br = br.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            br = br.payload(v.as_slice());
        }
        if r.partition >= 0 {
            br = br.partition(r.partition);
        }
        if let Some(t) = r.timestamp {
            br = br.timestamp(t);
        }
        if !r.headers.is_empty() {
            let mut h = OwnedHeaders::new();
            for (k, v) in &r.headers {
                h = h.insert(Header { key: k, value: v.as_deref() });
            }
            br = br.headers(h);
        }
        // librdkafka's queue holds 100,000 records: wait for room when it is full.
        loop {
            match p.send(br) {
                Ok(()) => break,
                Err((rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    br = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => panic!("send: {e}"),
            }
        }
    }
    // One record per batch makes a big input slow to acknowledge on a busy broker.
    p.flush(TIMEOUT * 4).expect("flush");
}

/// Every record of every partition of `topic` up to its current end, by partition then offset.
///
/// The end is where each partition reports end-of-partition while reading, not the
/// ListOffsets answer: the test broker (Tansu 0.6) answers ListOffsets(latest) with the
/// start of the last record batch + 1.
pub fn consume_all(bootstrap: &str, topic: &str) -> Vec<Rec> {
    consume_all_bytes(bootstrap, topic).into_iter().map(Rec::from).collect()
}

/// [`consume_all`] keeping keys and values as bytes.
pub fn consume_all_bytes(bootstrap: &str, topic: &str) -> Vec<BinRec> {
    read_topic(bootstrap, topic, "read_uncommitted")
}

/// [`consume_all`] as a consumer with `isolation.level` = `read_committed` sees it (what
/// an exactly-once sink's readers use).
pub fn consume_committed(bootstrap: &str, topic: &str) -> Vec<Rec> {
    read_topic(bootstrap, topic, "read_committed").into_iter().map(Rec::from).collect()
}

fn read_topic(bootstrap: &str, topic: &str, isolation: &str) -> Vec<BinRec> {
    let Some(n) = partition_count(bootstrap, topic) else { return Vec::new() };
    let c: BaseConsumer = config(bootstrap)
        .set("group.id", unique("reader"))
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..n as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("offset");
    }
    c.assign(&tpl).expect("assign");
    let mut at_end = vec![false; n];
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while at_end.iter().any(|e| !e) {
        assert!(std::time::Instant::now() < deadline, "reading {topic} timed out; ends reached: {at_end:?}");
        let Some(m) = c.poll(Duration::from_millis(200)) else { continue };
        let m = match m {
            Ok(m) => m,
            Err(rdkafka::error::KafkaError::PartitionEOF(p)) => {
                at_end[p as usize] = true;
                continue;
            }
            Err(e) => panic!("reading {topic}: {e}"),
        };
        let headers = m
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect())
            .unwrap_or_default();
        out.push(BinRec {
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            headers,
        });
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}

pub fn eddy(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eddy")).args(args).current_dir(dir).output().expect("run eddy")
}

pub fn spawn_eddy(args: &[&str], dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn eddy")
}

/// Ctrl-C the job and return what it printed.
pub fn stop_and_collect(child: &mut Child) -> String {
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let mut stdout = String::new();
    if let Some(mut s) = child.stdout.take() {
        use std::io::Read;
        let _ = s.read_to_string(&mut stdout);
    }
    let _ = child.wait();
    stdout
}

/// The text of every visible file under `dir`, concatenated.
pub fn read_dir_text(dir: &Path) -> String {
    let mut out = String::new();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    files.sort();
    for f in files {
        if f.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        if f.is_dir() {
            out.push_str(&read_dir_text(&f));
        } else {
            out.push_str(&std::fs::read_to_string(&f).unwrap_or_default());
        }
    }
    out
}
