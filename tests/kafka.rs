//! The Kafka connectors against a real broker (`../shared/scripts/kafka-up`, Tansu): records
//! produced here with librdkafka, `eddy run` reading and writing them, results read back.
//!
//! Every test uses its own topics (unique names), so they share one broker and run in
//! parallel. The broker is started once by the first test that needs it (kafka-up is
//! idempotent); a machine without `../shared` fails these tests with a message saying so.

mod kafka_util;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use kafka_util::*;

fn run_sql(dir: &Path, sql: &str) -> Output {
    std::fs::write(dir.join("job.sql"), sql).unwrap();
    eddy(&["run", "job.sql"], dir)
}

fn ok(out: &Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "eddy failed:\n{stderr}\nstdout:\n{stdout}");
    (stdout, stderr)
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Bids of auctions 1 and 2 over two partitions, event time in the JSON.
fn produce_bids(bootstrap: &str, topic: &str) {
    let rows = [
        (0, r#"{"auction":1,"price":10,"ts":"2024-03-01 10:00:01.000"}"#),
        (1, r#"{"auction":2,"price":20,"ts":"2024-03-01 10:00:02.000"}"#),
        (0, r#"{"auction":1,"price":15,"ts":"2024-03-01 10:00:04.000"}"#),
        (1, r#"{"auction":1,"price":12,"ts":"2024-03-01 10:00:08.000"}"#),
        (0, r#"{"auction":2,"price":30,"ts":"2024-03-01 10:00:11.000"}"#),
        (1, r#"{"auction":2,"price":25,"ts":"2024-03-01 10:00:13.000"}"#),
    ];
    let records: Vec<Rec> = rows.iter().map(|(p, v)| Rec::value(v).partition(*p)).collect();
    produce(bootstrap, topic, &records);
}

#[test]
fn windowed_query_from_kafka_to_kafka_and_files() {
    let b = broker();
    let input = unique("bids");
    let output = unique("counts");
    create_topic(b, &input, 2);
    produce_bids(b, &input);
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE bids (auction BIGINT, price BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'kafka', 'topic' = '{input}', 'properties.bootstrap.servers' = '{b}',
      'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'json');
CREATE TABLE counts (auction BIGINT, window_start TIMESTAMP(3), n BIGINT, top BIGINT)
DISTRIBUTED INTO 1 BUCKETS
WITH ('connector' = 'kafka', 'topic' = '{output}', 'properties.bootstrap.servers' = '{b}', 'format' = 'json');
CREATE TABLE counts_csv (auction BIGINT, window_start TIMESTAMP(3), n BIGINT, top BIGINT)
WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
CREATE VIEW w AS SELECT auction, window_start, COUNT(*) AS n, MAX(price) AS top
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
INSERT INTO counts SELECT * FROM w;
INSERT INTO counts_csv SELECT * FROM w;
"
    );
    ok(&run_sql(dir.path(), &sql));
    let got: Vec<String> = consume_all(b, &output).into_iter().map(|r| r.value.unwrap_or_default()).collect();
    let mut got = got;
    got.sort();
    assert_eq!(
        got,
        [
            r#"{"auction":1,"window_start":"2024-03-01 10:00:00","n":3,"top":15}"#,
            r#"{"auction":2,"window_start":"2024-03-01 10:00:00","n":1,"top":20}"#,
            r#"{"auction":2,"window_start":"2024-03-01 10:00:10","n":2,"top":30}"#,
        ]
    );
    assert_eq!(
        sorted_lines(&read_dir_text(&dir.path().join("out"))),
        ["1,\"2024-03-01 10:00:00\",3,15", "2,\"2024-03-01 10:00:00\",1,20", "2,\"2024-03-01 10:00:10\",2,30"]
    );
}

/// Ten records `{"n":i}` in one partition, with record timestamps 1000 * i.
fn ten_records(b: &str, topic: &str) {
    create_topic(b, topic, 1);
    let records: Vec<Rec> =
        (0..10).map(|i| Rec::value(&format!(r#"{{"n":{i}}}"#)).partition(0).timestamp(1_000_000 + 1_000 * i)).collect();
    produce(b, topic, &records);
}

fn read_n(b: &str, topic: &str, options: &str) -> Result<Vec<String>, String> {
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE t (n INT) WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{b}',
  'format' = 'json'{options});
SELECT n FROM t;
"
    );
    let out = run_sql(dir.path(), &sql);
    if out.status.code() != Some(0) {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect())
}

#[test]
fn startup_and_bounded_modes() {
    let b = broker();
    let topic = unique("modes");
    ten_records(b, &topic);
    let rows = |o: &str| read_n(b, &topic, o).unwrap_or_else(|e| panic!("{o}: {e}"));
    let ns = |from: i32, to: i32| (from..to).map(|i| format!("+I[{i}]")).collect::<Vec<_>>();
    let bounded = ", 'scan.bounded.mode' = 'latest-offset'";
    assert_eq!(rows(&format!(", 'scan.startup.mode' = 'earliest-offset'{bounded}")), ns(0, 10));
    assert_eq!(
        rows(&format!(
            ", 'scan.startup.mode' = 'specific-offsets', 'scan.startup.specific-offsets' = 'partition:0,offset:7'{bounded}"
        )),
        ns(7, 10)
    );
    assert_eq!(
        rows(&format!(", 'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '1004500'{bounded}")),
        ns(5, 10)
    );
    assert_eq!(rows(&format!(", 'scan.startup.mode' = 'latest-offset'{bounded}")), ns(0, 0));
    // Bounded by offset and by time.
    assert_eq!(
        rows(", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'specific-offsets', 'scan.bounded.specific-offsets' = 'partition:0,offset:3'"),
        ns(0, 3)
    );
    assert_eq!(
        rows(", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'timestamp', 'scan.bounded.timestamp-millis' = '1006000'"),
        ns(0, 6)
    );
    // Group offsets: a first run commits, a second resumes after what it read.
    let group = unique("group");
    let g = format!(", 'properties.group.id' = '{group}', 'properties.auto.offset.reset' = 'earliest'{bounded}");
    assert_eq!(rows(&g), ns(0, 10));
    produce(b, &topic, &[Rec::value(r#"{"n":10}"#).partition(0), Rec::value(r#"{"n":11}"#).partition(0)]);
    assert_eq!(rows(&g), ns(10, 12));
    // Without a committed offset and without a reset policy: Flink's error, with the fix.
    let e = read_n(b, &topic, &format!(", 'properties.group.id' = '{}'{bounded}", unique("fresh"))).unwrap_err();
    assert!(e.contains("has no committed offset") && e.contains("properties.auto.offset.reset"), "{e}");
}

#[test]
fn metadata_columns_are_read_and_written() {
    let b = broker();
    let input = unique("meta-in");
    let output = unique("meta-out");
    create_topic(b, &input, 1);
    create_topic(b, &output, 1);
    produce(
        b,
        &input,
        &[
            Rec::value(r#"{"v":"x"}"#).partition(0).timestamp(1_709_287_200_000).header("trace", "t-1"),
            Rec::value(r#"{"v":"y"}"#).partition(0).timestamp(1_709_287_201_500),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE src (
  v STRING,
  tp STRING METADATA FROM 'topic' VIRTUAL,
  p INT METADATA FROM 'partition' VIRTUAL,
  o BIGINT METADATA FROM 'offset' VIRTUAL,
  ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
  tt STRING METADATA FROM 'timestamp-type' VIRTUAL,
  headers MAP<STRING, BYTES> METADATA
) WITH ('connector' = 'kafka', 'topic' = '{input}', 'properties.bootstrap.servers' = '{b}',
  'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'json');
CREATE TABLE dst (v STRING, ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp', headers MAP<STRING, BYTES> METADATA)
WITH ('connector' = 'kafka', 'topic' = '{output}', 'properties.bootstrap.servers' = '{b}', 'format' = 'json');
INSERT INTO dst SELECT UPPER(v), ts + INTERVAL '1' SECOND, headers FROM src;
SELECT v, tp = '{input}', p, o, ts, tt, CARDINALITY(headers) FROM src;
"
    );
    let (stdout, _) = ok(&run_sql(dir.path(), &sql));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        // TIMESTAMP_LTZ prints as Flink's print connector does (java.time.Instant).
        [
            "+I[x, true, 0, 0, 2024-03-01T10:00:00Z, CreateTime, 1]",
            "+I[y, true, 0, 1, 2024-03-01T10:00:01.500Z, CreateTime, 0]"
        ]
    );
    let out = consume_all(b, &output);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].value.as_deref(), Some(r#"{"v":"X"}"#));
    assert_eq!(out[0].timestamp, Some(1_709_287_201_000));
    assert_eq!(out[0].headers, [("trace".to_string(), Some(b"t-1".to_vec()))]);
    assert_eq!(out[1].timestamp, Some(1_709_287_202_500));
    assert!(out[1].headers.is_empty());
}

#[test]
fn distributed_by_creates_the_topic_and_keys_the_records() {
    let b = broker();
    let topic = unique("dist");
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE quotes (sym STRING, price DOUBLE)
DISTRIBUTED BY (sym) INTO 3 BUCKETS
WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{b}', 'format' = 'json');
INSERT INTO quotes VALUES ('A', 1.0), ('B', 2.0), ('A', 3.0), ('C', 4.0), ('B', 5.0), ('A', 6.0);
"
    );
    ok(&run_sql(dir.path(), &sql));
    assert_eq!(partition_count(b, &topic), Some(3));
    let recs = consume_all(b, &topic);
    assert_eq!(recs.len(), 6);
    // Same key, same partition; the key is the BY columns in the key format.
    for r in &recs {
        let key = r.key.clone().unwrap_or_default();
        let sym = &key[8..9];
        assert!(key.starts_with(r#"{"sym":""#), "{key}");
        assert!(r.value.as_deref().unwrap_or("").contains(&format!(r#""sym":"{sym}""#)));
        let same: Vec<i32> = recs.iter().filter(|o| o.key == r.key).map(|o| o.partition).collect();
        assert!(same.iter().all(|p| *p == r.partition), "{key} spread over {same:?}");
    }
    // An existing topic with another partition count is refused.
    let sql2 = sql.replace("INTO 3 BUCKETS", "INTO 4 BUCKETS");
    let out = run_sql(dir.path(), &sql2);
    assert_ne!(out.status.code(), Some(0));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains(&format!("topic '{topic}' exists with 3 partitions")) && e.contains("INTO 4 BUCKETS"), "{e}");
    // Without the clause a missing topic is an error.
    let sql3 = sql.replace("DISTRIBUTED BY (sym) INTO 3 BUCKETS", "").replace(&topic, &unique("missing"));
    let out = run_sql(dir.path(), &sql3);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("does not exist") && e.contains("DISTRIBUTED INTO n BUCKETS"), "{e}");
}

#[test]
fn upsert_kafka_round_trip_with_deletes() {
    let b = broker();
    let input = unique("users");
    let output = unique("users-copy");
    create_topic(b, &input, 1);
    create_topic(b, &output, 1);
    produce(
        b,
        &input,
        &[
            Rec::value(r#"{"id":1,"name":"ann"}"#).key(r#"{"id":1}"#).partition(0),
            Rec::value(r#"{"id":2,"name":"bob"}"#).key(r#"{"id":2}"#).partition(0),
            Rec::value(r#"{"id":1,"name":"anna"}"#).key(r#"{"id":1}"#).partition(0),
            Rec::tombstone(r#"{"id":2}"#).partition(0),
            Rec::tombstone(r#"{"id":3}"#).partition(0),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    // upsert-kafka reads to the end of what exists when bounded by the test's own offsets:
    // the job is stopped by reading a table with a bounded copy (see below).
    let sql = format!(
        "CREATE TABLE users (id BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
WITH ('connector' = 'upsert-kafka', 'topic' = '{input}', 'properties.bootstrap.servers' = '{b}',
      'key.format' = 'json', 'value.format' = 'json');
CREATE TABLE copy (id BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
WITH ('connector' = 'upsert-kafka', 'topic' = '{output}', 'properties.bootstrap.servers' = '{b}',
      'key.format' = 'json', 'value.format' = 'json');
INSERT INTO copy SELECT id, UPPER(name) FROM users;
SELECT * FROM users;
"
    );
    std::fs::write(dir.path().join("job.sql"), &sql).unwrap();
    // The upsert source is unbounded: run until the expected output arrived, then stop.
    let mut child = spawn_eddy(&["run", "job.sql"], dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut copy = Vec::new();
    while Instant::now() < deadline {
        copy = consume_all(b, &output);
        if copy.len() >= 4 {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("eddy ended early ({status}): {err}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let printed = stop_and_collect(&mut child);
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        ["+I[1, ann]", "+I[2, bob]", "-U[1, ann]", "+U[1, anna]", "-D[2, bob]"],
        "{printed}"
    );
    let summary: Vec<(Option<String>, Option<String>)> = copy.into_iter().map(|r| (r.key, r.value)).collect();
    assert_eq!(
        summary,
        [
            (Some(r#"{"id":1}"#.into()), Some(r#"{"id":1,"name":"ANN"}"#.into())),
            (Some(r#"{"id":2}"#.into()), Some(r#"{"id":2,"name":"BOB"}"#.into())),
            (Some(r#"{"id":1}"#.into()), Some(r#"{"id":1,"name":"ANNA"}"#.into())),
            (Some(r#"{"id":2}"#.into()), None),
        ]
    );
}

#[test]
fn bad_records_fail_with_their_place_or_are_skipped_or_dead_lettered() {
    let b = broker();
    let topic = unique("bad");
    let dlq = unique("dlq");
    create_topic(b, &topic, 1);
    create_topic(b, &dlq, 1);
    produce(
        b,
        &topic,
        &[
            Rec::value(r#"{"n":1}"#).partition(0),
            Rec::value(r#"{"n":"#).partition(0),
            Rec::value(r#"{"n":3}"#).partition(0),
        ],
    );
    let base = ", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'";
    let e = read_n(b, &topic, base).unwrap_err();
    assert!(e.contains(&format!("topic '{topic}' partition 0 offset 1")) && e.contains("cannot decode"), "{e}");

    let rows = read_n(b, &topic, &format!("{base}, 'json.ignore-parse-errors' = 'true'")).unwrap();
    assert_eq!(rows, ["+I[1]", "+I[3]"]);
    // Skipped, and counted in the job's summary.
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE t (n INT) WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{b}',
  'format' = 'json'{base}, 'json.ignore-parse-errors' = 'true');
SELECT n FROM t;
"
    );
    let (_, stderr) = ok(&run_sql(dir.path(), &sql));
    assert!(stderr.contains("1 malformed records skipped"), "{stderr}");

    let rows = read_n(b, &topic, &format!("{base}, 'eddy.dead-letter-topic' = '{dlq}'")).unwrap();
    assert_eq!(rows, ["+I[1]", "+I[3]"]);
    let dead = consume_all(b, &dlq);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some(r#"{"n":"#));
    let header = |k: &str| {
        dead[0]
            .headers
            .iter()
            .find(|(h, _)| h == k)
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    assert_eq!(header("eddy.offset").as_deref(), Some("1"));
    assert_eq!(header("eddy.topic").as_deref(), Some(topic.as_str()));
    assert!(header("eddy.error").is_some_and(|e| e.contains("cannot decode")), "{:?}", dead[0].headers);
}

#[test]
fn csv_and_raw_values() {
    let b = broker();
    let topic = unique("csv");
    create_topic(b, &topic, 1);
    produce(b, &topic, &[Rec::value("1,\"a,b\"").partition(0), Rec::value("2,c").partition(0)]);
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE c (id INT, s STRING) WITH ('connector' = 'kafka', 'topic' = '{topic}',
  'properties.bootstrap.servers' = '{b}', 'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset', 'format' = 'csv');
CREATE TABLE r (line STRING) WITH ('connector' = 'kafka', 'topic' = '{topic}',
  'properties.bootstrap.servers' = '{b}', 'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset', 'format' = 'raw');
SELECT id, s FROM c;
SELECT line FROM r;
"
    );
    let (stdout, _) = ok(&run_sql(dir.path(), &sql));
    assert_eq!(sorted_lines(&stdout), ["+I[1, a,b]", "+I[1,\"a,b\"]", "+I[2, c]", "+I[2,c]"]);
}

#[test]
fn topics_created_while_running_are_discovered() {
    let b = broker();
    let prefix = unique("disc");
    let first = format!("{prefix}-a");
    let later = format!("{prefix}-b");
    let output = unique("disc-out");
    create_topic(b, &first, 2);
    create_topic(b, &output, 1);
    produce(b, &first, &[Rec::value(r#"{"n":1}"#).partition(0), Rec::value(r#"{"n":2}"#).partition(1)]);
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "SET 'parallelism.default' = '2';
CREATE TABLE src (n INT, t STRING METADATA FROM 'topic' VIRTUAL)
WITH ('connector' = 'kafka', 'topic-pattern' = '{prefix}-.*', 'properties.bootstrap.servers' = '{b}',
      'scan.startup.mode' = 'earliest-offset', 'scan.topic-partition-discovery.interval' = '500 ms',
      'format' = 'json');
CREATE TABLE dst (n INT, t STRING) WITH ('connector' = 'kafka', 'topic' = '{output}',
      'properties.bootstrap.servers' = '{b}', 'format' = 'json');
INSERT INTO dst SELECT n * 10, t FROM src;
"
    );
    std::fs::write(dir.path().join("job.sql"), &sql).unwrap();
    let mut child = spawn_eddy(&["run", "job.sql"], dir.path());
    let wait_for = |n: usize, child: &mut std::process::Child| -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut got: Vec<String> = consume_all(b, &output).into_iter().filter_map(|r| r.value).collect();
            got.sort();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("eddy ended early ({status})");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert_eq!(wait_for(2, &mut child).len(), 2);
    // A new topic matching the pattern, with 3 partitions: its records are read from the start.
    create_topic(b, &later, 3);
    produce(
        b,
        &later,
        &[
            Rec::value(r#"{"n":3}"#).partition(0),
            Rec::value(r#"{"n":4}"#).partition(1),
            Rec::value(r#"{"n":5}"#).partition(2),
        ],
    );
    let got = wait_for(5, &mut child);
    stop_and_collect(&mut child);
    let expected: Vec<String> = [(1, &first), (2, &first), (3, &later), (4, &later), (5, &later)]
        .iter()
        .map(|(n, t)| format!(r#"{{"n":{},"t":"{t}"}}"#, n * 10))
        .collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn an_unreachable_broker_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = run_sql(
        dir.path(),
        "CREATE TABLE t (n INT) WITH ('connector' = 'kafka', 'topic' = 'x', 'properties.bootstrap.servers' = '127.0.0.1:1',
  'properties.socket.timeout.ms' = '2000', 'scan.startup.mode' = 'earliest-offset', 'format' = 'json');
SELECT n FROM t;
",
    );
    assert_ne!(out.status.code(), Some(0));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("cannot reach Kafka within 2000 ms") && e.contains("127.0.0.1:1"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}
