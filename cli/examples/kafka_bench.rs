//! The raw-Kafka side of `benches/kafka.py`: a fast producer, a bare consumer (the broker's
//! ceiling for Eddy's source), and a produce-to-emit latency probe.
//!
//! Built with `cargo build --release -p eddy --example kafka_bench`; the same librdkafka as
//! Eddy (the `rdkafka` crate's bundled build). Every subcommand prints one summary line of
//! `key=value` fields for the script to read.
//!
//! ```text
//! kafka_bench [--bootstrap 127.0.0.1:19094] <subcommand>
//!   create  --topic T --partitions 4
//!   produce --topic T --partitions 4 [--file bids.jsonl] [--rows N] [--set k=v ...]
//!   drain   --topic T [--consumers 1] [--set k=v ...]
//!   watermarks --topic T
//!   latency --in T --out U --rate 50000 --seconds 20 [--drop-channel Google] [--set k=v ...]
//! ```
//!
//! `--set` adds librdkafka properties to the producer (`produce`) or to the consumer
//! (`drain`, and the reader of `latency`).
//!
//! The test broker (Tansu 0.6) answers ListOffsets(latest) with the start of the last record
//! batch + 1, short of the end when batches hold many records, and ListOffsets(earliest)
//! sometimes with an offset past the first batch (seen on a partition that two producers
//! wrote at once). So `drain` reads every partition from offset 0 until librdkafka reports
//! its end (`enable.partition.eof`), trusting no ListOffsets answer; `watermarks` prints
//! what the broker answers.

use std::collections::HashSet;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const CHANNELS: [&str; 6] = ["Google", "Facebook", "Baidu", "Apple", "channel-7", "channel-42"];
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(about = "Raw Kafka clients for benches/kafka.py")]
struct Cli {
    /// The broker.
    #[arg(long, default_value = "127.0.0.1:19094", global = true)]
    bootstrap: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a topic (nothing happens when it exists).
    Create {
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 4)]
        partitions: i32,
    },
    /// Write JSON bids, line i to partition i % partitions, as fast as the broker takes them.
    Produce {
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// JSON lines to send (benches' bids file); without it bids are generated.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        /// At most this many records (all of the file when not given).
        #[arg(long)]
        rows: Option<u64>,
        /// librdkafka producer properties on top of the bench's, `key=value`.
        #[arg(long = "set")]
        set: Vec<String>,
    },
    /// Print each partition's low and high watermarks as the broker answers ListOffsets.
    Watermarks {
        #[arg(long)]
        topic: String,
    },
    /// Read every partition from its beginning to its end, as fast as possible.
    Drain {
        #[arg(long)]
        topic: String,
        /// Consumers (threads); partition i goes to consumer i % consumers.
        #[arg(long, default_value_t = 1)]
        consumers: usize,
        /// librdkafka consumer properties on top of the defaults, `key=value`.
        #[arg(long = "set")]
        set: Vec<String>,
    },
    /// Produce bids stamped with their send time at a fixed rate into `--in`, read `--out`,
    /// and print the latency of each record that came out.
    Latency(LatencyArgs),
}

#[derive(clap::Args, Debug)]
struct LatencyArgs {
    #[arg(long = "in")]
    input: String,
    #[arg(long = "out")]
    output: String,
    #[arg(long, default_value_t = 50_000)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Records of this channel are not expected out (the pipeline's WHERE); "" for none.
    #[arg(long, default_value = "Google")]
    drop_channel: String,
    /// How long to wait for the last records after producing ends.
    #[arg(long, default_value_t = 10)]
    grace: u64,
    /// librdkafka properties of the reader of `--out`, `key=value` (by default it asks the
    /// broker to answer a fetch within 10 ms, to add little latency of its own).
    #[arg(long = "set")]
    set: Vec<String>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Create { topic, partitions } => create_topic(&cli.bootstrap, &topic, partitions),
        Command::Produce { topic, partitions, file, rows, set } => {
            produce(&cli.bootstrap, &topic, partitions, file, rows, &set)
        }
        Command::Watermarks { topic } => watermarks(&cli.bootstrap, &topic),
        Command::Drain { topic, consumers, set } => drain(&cli.bootstrap, &topic, consumers, &set),
        Command::Latency(args) => latency(&cli.bootstrap, &args),
    }
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client(bootstrap).create()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for r in rt.block_on(admin.create_topics([&new], &AdminOptions::new()))? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => bail!("cannot create topic {t}: {e}"),
        }
    }
    Ok(())
}

/// `key=value` properties on top of a configuration.
fn set_all(config: &mut ClientConfig, set: &[String]) -> Result<()> {
    for kv in set {
        let (k, v) = kv.split_once('=').with_context(|| format!("--set {kv}: expected key=value"))?;
        config.set(k, v);
    }
    Ok(())
}

fn partition_count(bootstrap: &str, topic: &str) -> Result<i32> {
    let c: BaseConsumer = client(bootstrap).create()?;
    let md = c.fetch_metadata(Some(topic), TIMEOUT)?;
    match md.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len() as i32),
        _ => bail!("topic {topic} does not exist"),
    }
}

/// Counts failed deliveries.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut f) = self.first_error.lock() {
                f.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Send one record, waiting while librdkafka's queue is full.
fn send(p: &ThreadedProducer<Deliveries>, topic: &str, partition: Option<i32>, payload: &[u8]) -> Result<()> {
    loop {
        let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(payload);
        if let Some(partition) = partition {
            r = r.partition(partition);
        }
        match p.send(r) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err((e, _)) => bail!("send to {topic}: {e}"),
        }
    }
}

fn finish_producing(p: &ThreadedProducer<Deliveries>) -> Result<()> {
    p.flush(Duration::from_secs(120))?;
    let ctx = p.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!(
            "{failed} records were not delivered; first error: {:?}",
            ctx.first_error.lock().ok().and_then(|f| f.clone())
        );
    }
    Ok(())
}

fn produce(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    file: Option<std::path::PathBuf>,
    rows: Option<u64>,
    set: &[String],
) -> Result<()> {
    create_topic(bootstrap, topic, partitions)?;
    let partitions = partition_count(bootstrap, topic)?;
    // Throughput, not latency: big batches, a long linger, a deep queue.
    let mut config = client(bootstrap);
    config
        .set("linger.ms", "50")
        .set("batch.num.messages", "100000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "2097151");
    set_all(&mut config, set)?;
    let p: ThreadedProducer<Deliveries> = config.create_with_context(Deliveries::default())?;
    let start = Instant::now();
    let limit = rows.unwrap_or(u64::MAX);
    let (mut n, mut bytes) = (0u64, 0u64);
    match file {
        Some(path) => {
            let f = std::fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
            for line in std::io::BufReader::with_capacity(1 << 20, f).lines() {
                if n >= limit {
                    break;
                }
                let line = line?;
                send(&p, topic, Some((n % partitions as u64) as i32), line.as_bytes())?;
                n += 1;
                bytes += line.len() as u64;
            }
        }
        None => {
            let mut gen = Bids::new(42);
            let base_ms = 1_700_000_000_000i64;
            while n < limit.min(1_000_000_000) {
                let ts = base_ms + n as i64 * 10 + gen.below(2001) as i64;
                let line = gen.bid(None, ts);
                send(&p, topic, Some((n % partitions as u64) as i32), line.as_bytes())?;
                n += 1;
                bytes += line.len() as u64;
            }
        }
    }
    finish_producing(&p)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "produce: topic={topic} partitions={partitions} records={n} bytes={bytes} seconds={secs:.3} events_per_s={:.0}",
        n as f64 / secs
    );
    Ok(())
}

fn watermarks(bootstrap: &str, topic: &str) -> Result<()> {
    let c: BaseConsumer = client(bootstrap).create()?;
    let mut parts = Vec::new();
    for p in 0..partition_count(bootstrap, topic)? {
        let (low, high) = c.fetch_watermarks(topic, p, TIMEOUT)?;
        parts.push(format!("{p}:{low}..{high}"));
    }
    println!("watermarks: topic={topic} partitions={}", parts.join(","));
    Ok(())
}

fn drain(bootstrap: &str, topic: &str, consumers: usize, set: &[String]) -> Result<()> {
    let process_start = Instant::now();
    let partitions = partition_count(bootstrap, topic)?;
    let consumers = consumers.clamp(1, partitions as usize);
    let mut threads = Vec::new();
    for c in 0..consumers {
        let mine: Vec<i32> = (0..partitions).filter(|p| *p as usize % consumers == c).collect();
        let mut config = client(bootstrap);
        config
            .set("group.id", format!("kafka-bench-drain-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // From offset 0, falling back to the log's start when that is later (Kafka after
            // retention): not Offset::Beginning, as the test broker's ListOffsets(earliest)
            // sometimes answers past the first batch of a partition two producers wrote.
            .set("auto.offset.reset", "earliest");
        set_all(&mut config, set)?;
        let topic = topic.to_string();
        threads.push(std::thread::spawn(move || -> Result<(u64, u64, Instant, Vec<Span>)> {
            let consumer: BaseConsumer = config.create()?;
            // Connect and learn the leaders first (Eddy's source does, by its offset lookups):
            // assigned cold, librdkafka's first fetch waits ~0.5 s for its own metadata.
            consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
            let mut tpl = TopicPartitionList::new();
            for p in &mine {
                tpl.add_partition_offset(&topic, *p, Offset::Offset(0))?;
            }
            consumer.assign(&tpl)?;
            let mut at_end: HashSet<i32> = HashSet::new();
            let mut spans = vec![Span { count: 0, first: -1, next: -1, gaps: 0 }; partitions as usize];
            let (mut records, mut bytes, mut last) = (0u64, 0u64, Instant::now());
            let deadline = Instant::now() + Duration::from_secs(600);
            while at_end.len() < mine.len() {
                if Instant::now() > deadline {
                    bail!("drain of {topic} timed out; partitions at their end: {at_end:?}");
                }
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Ok(m)) => {
                        records += 1;
                        bytes += m.payload_len() as u64;
                        last = Instant::now();
                        let span = &mut spans[m.partition() as usize];
                        span.count += 1;
                        if span.next >= 0 && m.offset() != span.next {
                            span.gaps += 1;
                        }
                        span.first = if span.first < 0 { m.offset() } else { span.first };
                        span.next = m.offset() + 1;
                    }
                    Some(Err(KafkaError::PartitionEOF(p))) => {
                        at_end.insert(p);
                    }
                    Some(Err(e)) => bail!("reading {topic}: {e}"),
                }
            }
            Ok((records, bytes, last, spans))
        }));
    }
    let (mut records, mut bytes, mut last) = (0u64, 0u64, process_start);
    let mut spans: Vec<Span> = Vec::new();
    for t in threads {
        let (r, b, l, s) = t.join().map_err(|_| anyhow::anyhow!("drain thread panicked"))??;
        records += r;
        bytes += b;
        last = last.max(l);
        spans = if spans.is_empty() { s } else { spans.into_iter().zip(s).map(|(a, b)| a.max_by_count(b)).collect() };
    }
    // Per partition: records, first offset .. next offset, and offset jumps (a hole in the log).
    let layout: Vec<String> = spans
        .iter()
        .enumerate()
        .map(|(p, s)| {
            format!(
                "{p}:{}@{}..{}{}",
                s.count,
                s.first,
                s.next,
                if s.gaps > 0 { format!("!{}gaps", s.gaps) } else { String::new() }
            )
        })
        .collect();
    // Both from the start of the process. The end-of-partition notice comes a fetch round
    // after the last record: the broker holds a fetch at the log's end for up to
    // fetch.wait.max.ms (500 ms by default). So the ceiling is `seconds` (to the last record);
    // `eof_seconds` is when the consumer knew it had everything.
    let secs = (last - process_start).as_secs_f64();
    let eof = process_start.elapsed().as_secs_f64();
    println!(
        "drain: topic={topic} partitions={partitions} consumers={consumers} records={records} bytes={bytes} \
         seconds={secs:.3} eof_seconds={eof:.3} events_per_s={:.0} events_per_s_to_eof={:.0} partitions_read={}",
        records as f64 / secs,
        records as f64 / eof,
        layout.join(",")
    );
    Ok(())
}

/// What `drain` read of one partition.
#[derive(Clone, Copy, Debug)]
struct Span {
    count: u64,
    first: i64,
    next: i64,
    gaps: u64,
}

impl Span {
    /// Of two consumers' views of a partition, the one that read it.
    fn max_by_count(self, other: Span) -> Span {
        if other.count > self.count {
            other
        } else {
            self
        }
    }
}

/// Wall-clock microseconds (the producer and the consumer are threads of one process).
fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// The integer after `"field":` in a JSON object.
fn json_int(text: &str, field: &str) -> Option<i64> {
    let key = format!("\"{field}\":");
    let at = text.find(&key)? + key.len();
    let rest = text[at..].trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '-')).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn latency(bootstrap: &str, args: &LatencyArgs) -> Result<()> {
    let LatencyArgs { input, output, rate, seconds, drop_channel, grace, set } = args;
    let (input, output, rate, seconds, grace) = (input.as_str(), output.as_str(), *rate, *seconds, *grace);
    let out_partitions = partition_count(bootstrap, output)?;
    // The input as the pipeline sees it; each record goes where the default partitioner puts it.
    let p: ThreadedProducer<Deliveries> = client(bootstrap)
        .set("linger.ms", "1")
        .set("queue.buffering.max.messages", "2000000")
        .create_with_context(Deliveries::default())?;

    // The reader: every output record from the beginning (the topic is fresh); the latency
    // of each measured record is the time it was polled minus its sent_us.
    let mut config = client(bootstrap);
    config
        .set("group.id", format!("kafka-bench-latency-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10");
    set_all(&mut config, set)?;
    let consumer: BaseConsumer = config.create()?;
    let mut tpl = TopicPartitionList::new();
    for part in 0..out_partitions {
        tpl.add_partition_offset(output, part, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let probe_seen = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    // Records sent before this run (an output topic used again) are passed over.
    let run_start = now_us();
    let reader = {
        let (probe_seen, stop, count) = (probe_seen.clone(), stop.clone(), count.clone());
        let output = output.to_string();
        let dropped = (!drop_channel.is_empty()).then(|| format!("\"channel\":\"{drop_channel}\""));
        std::thread::spawn(move || -> Result<(Vec<i64>, u64, u64, u64)> {
            let mut lat = Vec::new();
            let mut seen = HashSet::new();
            let (mut duplicates, mut probes, mut unexpected) = (0u64, 0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(5)) {
                    None => {}
                    Some(Ok(m)) => {
                        let at = now_us();
                        let text = std::str::from_utf8(m.payload().unwrap_or_default()).unwrap_or_default();
                        let (Some(seq), Some(sent)) = (json_int(text, "seq"), json_int(text, "sent_us")) else {
                            bail!("{output}: a record without seq/sent_us: {text}");
                        };
                        if sent < run_start {
                            continue;
                        }
                        if dropped.as_deref().is_some_and(|d| text.contains(d)) {
                            unexpected += 1;
                        }
                        if seq < 0 {
                            probes += 1;
                            probe_seen.store(true, Ordering::Relaxed);
                        } else if seen.insert(seq) {
                            lat.push(at - sent);
                            count.fetch_add(1, Ordering::Relaxed);
                        } else {
                            duplicates += 1;
                        }
                    }
                    Some(Err(e)) => bail!("reading {output}: {e}"),
                }
            }
            Ok((lat, duplicates, probes, unexpected))
        })
    };

    // Warm-up: a probe every 100 ms until one comes out, so the job is reading before the
    // measured records start.
    let mut gen = Bids::new(7);
    let warm = Instant::now();
    let mut probe = -1i64;
    while !probe_seen.load(Ordering::Relaxed) {
        if warm.elapsed() > Duration::from_secs(60) {
            stop.store(true, Ordering::Relaxed);
            bail!("no probe record came out of {output} within 60 s: is the pipeline running?");
        }
        let line = gen.bid(Some((probe, now_us())), now_us() / 1000);
        // A probe must pass the pipeline's filter.
        let line = if !drop_channel.is_empty() { line.replace(drop_channel, "probe") } else { line };
        send(&p, input, None, line.as_bytes())?;
        probe -= 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let warmup_secs = warm.elapsed().as_secs_f64();

    // Measured: `rate` records a second, paced per millisecond.
    let total = rate * seconds;
    let mut expected = 0u64;
    let start = Instant::now();
    let mut seq = 0u64;
    while seq < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while seq < due {
            let sent = now_us();
            let line = gen.bid(Some((seq as i64, sent)), sent / 1000);
            if drop_channel.is_empty() || !line.contains(&format!("\"channel\":\"{drop_channel}\"")) {
                expected += 1;
            }
            send(&p, input, None, line.as_bytes())?;
            seq += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let produce_secs = start.elapsed().as_secs_f64();
    finish_producing(&p)?;

    // Wait for the rest: until all expected records came out, the output has been quiet
    // for two seconds, or `grace` seconds passed.
    let deadline = Instant::now() + Duration::from_secs(grace);
    let (mut last, mut last_change) = (count.load(Ordering::Relaxed), Instant::now());
    while Instant::now() < deadline && count.load(Ordering::Relaxed) < expected && !reader.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        let now = count.load(Ordering::Relaxed);
        if now != last {
            (last, last_change) = (now, Instant::now());
        } else if last_change.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (mut lat, duplicates, probes, unexpected) = reader.join().map_err(|_| anyhow::anyhow!("reader panicked"))??;
    lat.sort_unstable();
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1000.0
    };
    let received = lat.len() as u64;
    println!(
        "latency: in={input} out={output} rate={rate} seconds={seconds} sent={total} produced_per_s={:.0} \
         expected={expected} received={received} lost={} unexpected={unexpected} duplicates={duplicates} probes={probes} warmup_s={warmup_secs:.2} \
         p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2}",
        total as f64 / produce_secs,
        expected.saturating_sub(received),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
    Ok(())
}

/// Nexmark-like bids, as `benches/filter_project.py` writes them (auction, bidder, price,
/// channel, url, date_time 'yyyy-MM-dd HH:mm:ss.SSS', extra), from a small deterministic PRNG.
struct Bids {
    state: u64,
}

impl Bids {
    fn new(seed: u64) -> Self {
        Self { state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1 }
    }

    /// xorshift64*.
    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// One bid at event time `ts_ms`; `stamp` = (seq, sent_us) adds those two fields first.
    fn bid(&mut self, stamp: Option<(i64, i64)>, ts_ms: i64) -> String {
        let head = match stamp {
            Some((seq, sent)) => format!("\"seq\":{seq},\"sent_us\":{sent},"),
            None => String::new(),
        };
        format!(
            "{{{head}\"auction\":{},\"bidder\":{},\"price\":{},\"channel\":\"{}\",\
             \"url\":\"https://www.nexmark.com/{}/item.htm?query={}\",\"date_time\":\"{}\",\"extra\":\"{}\"}}",
            1000 + self.below(10_000),
            2000 + self.below(50_000),
            100 + self.below(10_000_000),
            CHANNELS[self.below(6) as usize],
            ["a", "b", "c"][self.below(3) as usize],
            self.below(1000),
            timestamp(ts_ms),
            "x".repeat(self.below(21) as usize),
        )
    }
}

/// Epoch milliseconds as 'yyyy-MM-dd HH:mm:ss.SSS' (UTC).
fn timestamp(ms: i64) -> String {
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{milli:03}", sod / 3600, sod % 3600 / 60, sod % 60)
}
